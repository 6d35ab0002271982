#!/usr/bin/env python3
"""Benchmark: the training step of examples/shakespeare_gpt.dnn, dnnc beside PyTorch.

nanoGPT's "baby GPT" as the example declares it: 4 pre-norm Transformer layers
(causal self-attention with 4 heads of 32, a 512-wide GELU feed-forward network),
learned token and position embeddings of 128, a final LayerNorm and a linear head over
the 76 characters; batch 12 of 64 characters; AdamW (lr 1e-3, beta2 0.99, weight decay
0.1). PyTorch runs the same architecture with nn.TransformerEncoderLayer(norm_first=True,
activation="gelu", dropout=0) and a causal mask, eagerly and under torch.compile, in
worker processes of their own; dnnc is timed by `dnnc bench FILE --json` (its own
median). Rounds are interleaved and the table shows medians over rounds, in ms.

Caveats: the PyTorch workers wait passively (OMP_WAIT_POLICY=PASSIVE) so that their
threads do not spin while dnnc runs; random data (the step's cost does not depend on it); PyTorch's AdamW is the
fused one; the machine is shared, so run it when nothing else does.

    python3 bench/gpt.py                # 3 rounds, 2 threads
    python3 bench/gpt.py --quick        # 1 round, few steps
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "shakespeare_gpt.dnn")


def worker(variant, threads, iters):
    import torch
    import torch.nn as nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)

    class Gpt(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(76, 128)
            self.pos = nn.Embedding(64, 128)
            self.blocks = nn.ModuleList(
                nn.TransformerEncoderLayer(128, 4, 512, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
                for _ in range(4))
            self.ln = nn.LayerNorm(128)
            self.head = nn.Linear(128, 76)
            self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(64))

        def forward(self, x):
            h = self.tok(x) + self.pos(torch.arange(64))
            for b in self.blocks:
                h = b(h, src_mask=self.mask, is_causal=True)
            return self.head(self.ln(h))

    model = Gpt()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99),
                            weight_decay=0.1, fused=True)
    run = torch.compile(model) if variant == "compile" else model
    x = torch.randint(0, 76, (12, 64))
    y = torch.randint(0, 76, (12, 64))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(run(x).reshape(-1, 76), y.reshape(-1))
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    for line in sys.stdin:
        times = []
        for _ in range(iters):
            t = time.perf_counter()
            step()
            times.append((time.perf_counter() - t) * 1e3)
        print(json.dumps({"train_ms": statistics.median(times)}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dnnc", default=os.path.join(ROOT, "target", "release", "dnnc"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worker")
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.threads, args.iters)
    if args.quick:
        args.rounds, args.iters = 1, 5
    workers = {}
    for v in ("eager", "compile"):
        # Passive OpenMP waits: an idle worker's threads must not spin while dnnc runs.
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
        workers[v] = subprocess.Popen(
            [sys.executable, __file__, "--worker", v, "--threads", str(args.threads),
             "--iters", str(args.iters)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    results = {"dnnc": [], "eager": [], "compile": []}
    for r in range(args.rounds):
        out = subprocess.run(
            [args.dnnc, "bench", EXAMPLE, "--json", "--threads", str(args.threads),
             "--runs", str(max(args.iters, 5))],
            capture_output=True, text=True, check=True).stdout
        results["dnnc"].append(json.loads(out.strip().splitlines()[-1])["train_step_ms"])
        for v, p in workers.items():
            p.stdin.write("go\n")
            p.stdin.flush()
            results[v].append(json.loads(p.stdout.readline())["train_ms"])
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    for p in workers.values():
        p.stdin.close()
        p.wait()
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\nGPT train step b12 x 64, median of {args.rounds} round(s), {args.threads} thread(s)")
    print(f"{'':24}{'dnnc':>10}{'PyTorch eager':>16}{'torch.compile':>16}")
    print(f"{'train step (ms)':24}{med['dnnc']:>10.1f}{med['eager']:>16.1f}{med['compile']:>16.1f}")
    print(f"PyTorch eager / dnnc: {med['eager'] / med['dnnc']:.2f}x;  "
          f"torch.compile / dnnc: {med['compile'] / med['dnnc']:.2f}x (target >= 1.5)")


if __name__ == "__main__":
    main()
