#!/usr/bin/env python3
"""Writes the PyTorch reference data of compiler/session/tests/recurrent.rs.

For each of RNN, LSTM and GRU (input 3, hidden 4, batch_first), from PyTorch's own
random initialisation (seed 0): inputs x [2, 5, 3], weights r [2, 5, 4] of the loss
sum(y * r) + sum(h_n * q) (q [2, 4]), and PyTorch's outputs y, h_n and the gradients of
the loss with respect to every parameter; then the same for a bidirectional LSTM
(BiLSTM: r [2, 5, 8], q and h_n [2, 2, 4], seed 1 for its weights). Each tensor is an .npy file named
KIND.NAME.npy. Run with a Python that has torch and numpy:

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


if __name__ == "__main__":
    main()
