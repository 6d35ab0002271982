#!/usr/bin/env python3
"""Writes the PyTorch reference data of compiler/session/tests/recurrent.rs.

For each of RNN, LSTM and GRU (input 3, hidden 4, batch_first), from PyTorch's own
random initialisation (seed 0): inputs x [2, 5, 3], weights r [2, 5, 4] of the loss
sum(y * r) + sum(h_n * q) (q [2, 4]), and PyTorch's outputs y, h_n and the gradients of
the loss with respect to every parameter; then the same for a bidirectional LSTM
(BiLSTM: r [2, 5, 8], q and h_n [2, 2, 4], seed 1 for its weights), and three-layer
RNN, LSTM and GRU (RNN3, LSTM3, GRU3, seed 2 for their weights) and bidirectional LSTM
(BiLSTM3, seed 3), whose c_n (batch-first, with weights qc) is in the loss too: their h_n and q are
batch-first [2, 3, 4], and the parameters of layers 1 and 2 are also written stacked as
dnnc stores them, and only so (`rnn.weight_ih_stack` [2, ...] = weight_ih_l1, weight_ih_l2; the same
for the gradients); and the three stacks again from non-zero initial states (RNN3s, LSTM3s,
GRU3s, seed 4; BiLSTM3s, seed 6, [6, 1, 4]): h0 (and c0) [3, 1, 4] expanded over the
batch, with their gradients;
and stacks with dropout 1 between the layers (LSTM3d, GRU3d, seed 5: the training
step's gradients, the evaluation's outputs). Each tensor is an .npy file named KIND.NAME.npy; the stacks'
state_dicts (PyTorch's names) are KIND.state_dict.safetensors too. Run with a Python that has torch and numpy:

    python3 compiler/session/tests/data/recurrent/generate.py
"""
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3)
    r = torch.randn(2, 5, 4)
    q = torch.randn(2, 4)
    for kind in ("RNN", "LSTM", "GRU"):
        layer = getattr(torch.nn, kind)(3, 4, batch_first=True)
        y, state = layer(x)
        h_n = (state[0] if kind == "LSTM" else state)[0]
        loss = (y * r).sum() + (h_n * q).sum()
        loss.backward()
        out = {"x": x, "r": r, "q": q, "y": y, "h_n": h_n}
        for name, p in layer.named_parameters():
            out["rnn." + name] = p
            out["grad.rnn." + name] = p.grad
        for name, t in out.items():
            np.save(os.path.join(HERE, f"{kind}.{name}.npy"), t.detach().numpy().astype(np.float32))
    # The bidirectional LSTM: y [2, 5, 8] and h_n [2 directions, 2, 4].
    torch.manual_seed(1)
    layer = torch.nn.LSTM(3, 4, batch_first=True, bidirectional=True)
    r2 = torch.randn(2, 5, 8)
    q2 = torch.randn(2, 2, 4)
    y, (h_n, _) = layer(x)
    loss = (y * r2).sum() + (h_n * q2).sum()
    loss.backward()
    out = {"x": x, "r": r2, "q": q2, "y": y, "h_n": h_n}
    for name, p in layer.named_parameters():
        out["rnn." + name] = p
        out["grad.rnn." + name] = p.grad
    for name, t in out.items():
        np.save(os.path.join(HERE, f"BiLSTM.{name}.npy"), t.detach().numpy().astype(np.float32))

    # Three stacked layers: h_n [3 layers, 2, 4] written batch-first.
    torch.manual_seed(2)
    q3 = torch.randn(2, 3, 4)
    qc3 = torch.randn(2, 3, 4)
    for kind in ("RNN", "LSTM", "GRU"):
        layer = getattr(torch.nn, kind)(3, 4, num_layers=3, batch_first=True)
        y, state = layer(x)
        h_n = (state[0] if kind == "LSTM" else state).transpose(0, 1)
        loss = (y * r).sum() + (h_n * q3).sum()
        out = {"x": x, "r": r, "q": q3, "y": y, "h_n": h_n}
        if kind == "LSTM":
            # The LSTM's c_n [3, 2, 4] too, batch-first, in the loss with its own weights.
            c_n = state[1].transpose(0, 1)
            loss = loss + (c_n * qc3).sum()
            out.update({"qc": qc3, "c_n": c_n})
        loss.backward()
        stacked(out, layer, ("",))
        for name, t in out.items():
            np.save(os.path.join(HERE, f"{kind}3.{name}.npy"), t.detach().numpy().astype(np.float32))
        state_dict(layer, f"{kind}3")
    # Three stacked bidirectional LSTM layers (BiLSTM3): y [2, 5, 8], h_n [6, 2, 4]
    # written batch-first [2, 6, 4] (layer 0 forward, layer 0 backward, layer 1 ...).
    torch.manual_seed(3)
    layer = torch.nn.LSTM(3, 4, num_layers=3, batch_first=True, bidirectional=True)
    r6 = torch.randn(2, 5, 8)
    q6 = torch.randn(2, 6, 4)
    qc6 = torch.randn(2, 6, 4)
    y, (h_n, c_n) = layer(x)
    h_n, c_n = h_n.transpose(0, 1), c_n.transpose(0, 1)
    loss = (y * r6).sum() + (h_n * q6).sum() + (c_n * qc6).sum()
    loss.backward()
    out = {"x": x, "r": r6, "q": q6, "y": y, "h_n": h_n, "qc": qc6, "c_n": c_n}
    stacked(out, layer, ("", "_reverse"))
    for name, t in out.items():
        np.save(os.path.join(HERE, f"BiLSTM3.{name}.npy"), t.detach().numpy().astype(np.float32))
    state_dict(layer, "BiLSTM3")

    # Three stacked layers from non-zero initial states (RNN3s, LSTM3s, GRU3s): the
    # states are parameters h0 (and c0) [3, 1, 4], expanded over the batch of 2, so
    # their gradients (summed over the batch) are compared too.
    torch.manual_seed(4)
    for kind in ("RNN", "LSTM", "GRU"):
        layer = getattr(torch.nn, kind)(3, 4, num_layers=3, batch_first=True)
        h0 = torch.randn(3, 1, 4, requires_grad=True)
        c0 = torch.randn(3, 1, 4, requires_grad=True)
        if kind == "LSTM":
            y, (h_n, c_n) = layer(x, (h0.expand(3, 2, 4), c0.expand(3, 2, 4)))
        else:
            y, h_n = layer(x, h0.expand(3, 2, 4))
        h_n = h_n.transpose(0, 1)
        loss = (y * r).sum() + (h_n * q3).sum()
        out = {"x": x, "r": r, "q": q3, "y": y, "h_n": h_n, "h0": h0}
        if kind == "LSTM":
            c_n = c_n.transpose(0, 1)
            loss = loss + (c_n * qc3).sum()
            out.update({"qc": qc3, "c_n": c_n, "c0": c0})
        loss.backward()
        out["grad.h0"] = h0.grad
        if kind == "LSTM":
            out["grad.c0"] = c0.grad
        stacked(out, layer, ("",))
        for name, t in out.items():
            np.save(os.path.join(HERE, f"{kind}3s.{name}.npy"), t.detach().numpy().astype(np.float32))

    # Three stacked bidirectional layers from non-zero initial states (BiLSTM3s, seed
    # 6): h0, c0 [6, 1, 4] (layer 0 forward, layer 0 backward, ...) expanded over the
    # batch.
    torch.manual_seed(6)
    layer = torch.nn.LSTM(3, 4, num_layers=3, batch_first=True, bidirectional=True)
    h0 = torch.randn(6, 1, 4, requires_grad=True)
    c0 = torch.randn(6, 1, 4, requires_grad=True)
    r6 = torch.randn(2, 5, 8)
    q6 = torch.randn(2, 6, 4)
    qc6 = torch.randn(2, 6, 4)
    y, (h_n, c_n) = layer(x, (h0.expand(6, 2, 4), c0.expand(6, 2, 4)))
    h_n, c_n = h_n.transpose(0, 1), c_n.transpose(0, 1)
    loss = (y * r6).sum() + (h_n * q6).sum() + (c_n * qc6).sum()
    loss.backward()
    out = {"x": x, "r": r6, "q": q6, "y": y, "h_n": h_n, "qc": qc6, "c_n": c_n,
           "h0": h0, "c0": c0, "grad.h0": h0.grad, "grad.c0": c0.grad}
    stacked(out, layer, ("", "_reverse"))
    for name, t in out.items():
        np.save(os.path.join(HERE, f"BiLSTM3s.{name}.npy"), t.detach().numpy().astype(np.float32))

    # Three stacked layers with dropout 1 between them (LSTM3d, GRU3d, seed 5): while
    # training the upper layers read zeros (PyTorch's dropout with p = 1), so the
    # gradients are deterministic; y, h_n (and c_n) are the evaluation's, without
    # dropout.
    torch.manual_seed(5)
    for kind in ("LSTM", "GRU"):
        layer = getattr(torch.nn, kind)(3, 4, num_layers=3, batch_first=True, dropout=1.0)
        layer.eval()
        with torch.no_grad():
            y, state = layer(x)
        h_n = (state[0] if kind == "LSTM" else state).transpose(0, 1)
        out = {"x": x, "r": r, "q": q3, "y": y, "h_n": h_n}
        layer.train()
        yt, st = layer(x)
        loss = (yt * r).sum() + ((st[0] if kind == "LSTM" else st).transpose(0, 1) * q3).sum()
        if kind == "LSTM":
            out.update({"qc": qc3, "c_n": state[1].transpose(0, 1)})
            loss = loss + (st[1].transpose(0, 1) * qc3).sum()
        loss.backward()
        stacked(out, layer, ("",))
        for name, t in out.items():
            np.save(os.path.join(HERE, f"{kind}3d.{name}.npy"), t.detach().numpy().astype(np.float32))


def stacked(out, layer, directions):
    """Adds a three-layer `layer`'s parameters and their gradients to `out` as dnnc
    stores them: layer 0's under PyTorch's names, layers 1 and 2 stacked
    (`rnn.weight_ih_stack` = weight_ih_l1, weight_ih_l2), for each direction suffix."""
    params = dict(layer.named_parameters())
    for suffix in directions:
        for base in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            first = params[f"{base}_l0{suffix}"]
            out[f"rnn.{base}_l0{suffix}"] = first
            out[f"grad.rnn.{base}_l0{suffix}"] = first.grad
            upper = [params[f"{base}_l{k}{suffix}"] for k in (1, 2)]
            out[f"rnn.{base}_stack{suffix}"] = torch.stack(upper)
            out[f"grad.rnn.{base}_stack{suffix}"] = torch.stack([p.grad for p in upper])


def state_dict(layer, kind):
    """The layer's state_dict as PyTorch saves it, bound as `rnn` (`rnn.weight_ih_l1`,
    ...): what `dnnc convert --from-torch` reads in the test."""
    from safetensors.torch import save_file

    tensors = {f"rnn.{k}": v.detach().contiguous() for k, v in layer.state_dict().items()}
    save_file(tensors, os.path.join(HERE, f"{kind}.state_dict.safetensors"))


if __name__ == "__main__":
    main()
