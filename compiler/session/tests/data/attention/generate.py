#!/usr/bin/env python3
"""Writes the PyTorch reference data of compiler/session/tests/attention.rs.

From PyTorch's own initialisation (seed 0), for x [2, 5, 6] and loss weights r
[2, 5, 6] (loss = sum(y * r)): a MultiheadAttention(6, 2, batch_first) with a causal
mask, the same with a key padding mask (sample 0 pads its last two positions), and
TransformerEncoderLayer(6, 2, 8, dropout=0, batch_first) post-norm with ReLU and pre-norm
with GELU and a causal mask; the outputs y and every parameter's gradient. Files are
KIND.NAME.npy with dnnc's parameter names (LayerNorm's weight/bias are gamma/beta).

    python3 compiler/session/tests/data/attention/generate.py
"""
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def dnnc_name(name):
    return name.replace("norm1.weight", "norm1.gamma").replace("norm1.bias", "norm1.beta") \
        .replace("norm2.weight", "norm2.gamma").replace("norm2.bias", "norm2.beta")


def save(kind, tensors):
    for name, t in tensors.items():
        np.save(os.path.join(HERE, f"{kind}.{name}.npy"), t.detach().numpy().astype(np.float32))


def main():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6)
    r = torch.randn(2, 5, 6)
    pad = torch.zeros(2, 5, dtype=torch.bool)
    pad[0, 3:] = True
    causal = torch.nn.Transformer.generate_square_subsequent_mask(5)
    cases = []
    mha = torch.nn.MultiheadAttention(6, 2, batch_first=True)
    cases.append(("MHA_causal", mha, lambda m: m(x, x, x, attn_mask=causal, need_weights=False)[0]))
    mha2 = torch.nn.MultiheadAttention(6, 2, batch_first=True)
    cases.append(("MHA_pad", mha2, lambda m: m(x, x, x, key_padding_mask=pad, need_weights=False)[0]))
    post = torch.nn.TransformerEncoderLayer(6, 2, 8, dropout=0.0, batch_first=True)
    cases.append(("TEL_post", post, lambda m: m(x)))
    pre = torch.nn.TransformerEncoderLayer(6, 2, 8, dropout=0.0, batch_first=True,
                                           activation="gelu", norm_first=True)
    cases.append(("TEL_pre", pre, lambda m: m(x, src_mask=causal, is_causal=True)))
    for kind, module, run in cases:
        y = run(module)
        (y * r).sum().backward()
        out = {"x": x, "r": r, "pad": pad.float(), "y": y}
        for name, p in module.named_parameters():
            out["net." + dnnc_name(name)] = p
            out["grad.net." + dnnc_name(name)] = p.grad
        save(kind, out)


if __name__ == "__main__":
    main()
