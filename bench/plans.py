#!/usr/bin/env python3
"""Benchmark: dnnc's training plans (several models and optimizers) against PyTorch.

    python3 bench/plans.py                 # everything: speed, VAE loss, distillation
    python3 bench/plans.py --part speed    # GAN and VAE training steps, interleaved rounds
    python3 bench/plans.py --part vae      # VAE test loss after 10 epochs, same recipe
    python3 bench/plans.py --part distill  # distilled student vs the student alone, 3 seeds
    python3 bench/plans.py --quick         # fewer rounds, iterations, seeds (smoke test)

Parts:
  speed   - one training batch of examples/mnist_gan.dnn (the critic's step and the
            generator's, batch 64) and of examples/mnist_vae.dnn (batch 128), timed by
            `dnnc bench --json` (median of its runs: the whole batch, every step) and by
            the same architecture in PyTorch eager (median of as many iterations), in
            interleaved rounds (the order alternates) with 2 threads; prints the median
            over rounds and PyTorch / dnnc.
  vae     - trains examples/mnist_vae.dnn (dnnc train, the log's last test_loss) and the
            same recipe in PyTorch (pytorch/examples vae: 784-400-20x2, 20-400-784,
            BCE summed over pixels + KL, averaged over the batch; Adam 1e-3, batch 128,
            10 epochs) on the same 8000/2000 digits, for each seed; prints both test
            losses and their ratio.
  distill - for each seed: the CNN teacher (examples/mnist_cnn.dnn, trained once by
            dnnc; PyTorch trains its own with the same recipe), the distilled student
            (examples/mnist_distill.dnn: T = 4, alpha = 0.9) and the same student trained
            alone (bench/distill_alone.dnn), in dnnc and in PyTorch; prints the test
            accuracies.

PyTorch runs in a subprocess per measurement (this script with --worker), so its
OpenMP threads never spin beside a dnnc run. Requires numpy and torch (a CPU build is
enough); dnnc is target/release/dnnc if it exists, else target/debug/dnnc (--dnnc).
"""

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "examples", "data", "mnist")
WORK = os.path.join(ROOT, "target", "bench", "plans")


def dnnc_binary(given):
    if given:
        return given
    release = os.path.join(ROOT, "target", "release", "dnnc")
    return release if os.path.exists(release) else os.path.join(ROOT, "target", "debug", "dnnc")


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return r.stdout


# --- data -------------------------------------------------------------------------------

def idx(name):
    import numpy as np

    raw = gzip.open(os.path.join(DATA, name)).read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


def mnist():
    import numpy as np

    x = idx("train-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = idx("train-labels-idx1-ubyte.gz").astype(np.int64)
    tx = idx("test-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    ty = idx("test-labels-idx1-ubyte.gz").astype(np.int64)
    return x, y, tx, ty


# --- PyTorch workers --------------------------------------------------------------------

def torch_models(kind):
    import torch.nn as nn

    if kind == "gan":
        g = nn.Sequential(nn.Linear(64, 256), nn.LeakyReLU(0.2), nn.Linear(256, 512),
                          nn.LeakyReLU(0.2), nn.Linear(512, 784), nn.Tanh())
        d = nn.Sequential(nn.Linear(784, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256),
                          nn.LeakyReLU(0.2), nn.Linear(256, 1))
        return g, d

    class Vae(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc, self.mean, self.logvar = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
            self.dec1, self.dec2 = nn.Linear(20, 400), nn.Linear(400, 784)

        def forward(self, x):
            import torch

            h = torch.relu(self.enc(x))
            m, lv = self.mean(h), self.logvar(h)
            z = m + torch.exp(0.5 * lv) * torch.randn_like(m)
            return self.dec2(torch.relu(self.dec1(z))), m, lv

    return Vae()


def vae_loss(logits, x, m, lv):
    import torch
    import torch.nn.functional as F

    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = -0.5 * torch.sum(1 + lv - m * m - lv.exp())
    return (bce + kl) / x.shape[0]


def worker_speed(kind, iters, threads):
    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x, _, _, _ = mnist()
    if kind == "gan":
        batch = 64
        images = torch.from_numpy(x[:batch].reshape(batch, 784) * 2.0 - 1.0)
        g, d = torch_models("gan")
        og = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
        od = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
        ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)

        def step():
            fake = g(torch.randn(batch, 64)).detach()
            loss = F.binary_cross_entropy_with_logits(d(images), ones) + \
                F.binary_cross_entropy_with_logits(d(fake), zeros)
            od.zero_grad()
            loss.backward()
            od.step()
            loss = F.binary_cross_entropy_with_logits(d(g(torch.randn(batch, 64))), ones)
            og.zero_grad()
            loss.backward()
            og.step()
    else:
        batch = 128
        images = torch.from_numpy(x[:batch].reshape(batch, 784))
        model = torch_models("vae")
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step():
            logits, m, lv = model(images)
            loss = vae_loss(logits, images, m, lv)
            opt.zero_grad()
            loss.backward()
            opt.step()

    for _ in range(5):
        step()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    print(json.dumps({"train_step_ms": statistics.median(times) * 1e3}))


def worker_vae_loss(seed, epochs):
    import numpy as np
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(seed)
    x, _, tx, _ = mnist()
    x = torch.from_numpy(x.reshape(-1, 784))
    tx = torch.from_numpy(tx.reshape(-1, 784))
    model = torch_models("vae")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        model.train()
        for i in torch.randperm(len(x)).split(128):
            logits, m, lv = model(x[i])
            loss = vae_loss(logits, x[i], m, lv)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        total = 0.0
        for i in torch.arange(len(tx)).split(128):
            logits, m, lv = model(tx[i])
            total += vae_loss(logits, tx[i], m, lv).item() * len(i)
    print(json.dumps({"test_loss": total / len(tx)}))


def worker_distill(seed, epochs):
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(2)
    x, y, tx, ty = mnist()
    x, y, tx, ty = map(torch.from_numpy, (x, y, tx, ty))

    def cnn():
        return nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 10))

    def student():
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))

    def accuracy(m):
        with torch.no_grad():
            return (m(tx.reshape(-1, 784)).argmax(1) == ty).float().mean().item()

    def fit(m, loss_of, batch, epochs, seed):
        torch.manual_seed(seed)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        for _ in range(epochs):
            for i in torch.randperm(len(x)).split(batch):
                loss = loss_of(m, x[i].reshape(-1, 784), y[i])
                opt.zero_grad()
                loss.backward()
                opt.step()

    torch.manual_seed(42)
    teacher = cnn()
    fit(teacher, lambda m, xb, yb: F.cross_entropy(m(xb), yb), 64, 10, 42)
    teacher.eval()
    t = 4.0

    def distill_loss(m, xb, yb):
        s = m(xb)
        with torch.no_grad():
            soft_t = F.softmax(teacher(xb) / t, dim=1)
        soft = F.kl_div(F.log_softmax(s / t, dim=1), soft_t, reduction="batchmean")
        return 0.9 * t * t * soft + 0.1 * F.cross_entropy(s, yb)

    torch.manual_seed(seed)
    distilled = student()
    fit(distilled, distill_loss, 128, epochs, seed)
    torch.manual_seed(seed)
    alone = student()
    fit(alone, lambda m, xb, yb: F.cross_entropy(m(xb), yb), 128, epochs, seed)
    print(json.dumps({"teacher": accuracy(teacher), "distilled": accuracy(distilled),
                      "alone": accuracy(alone)}))


def worker(args):
    name = args.worker
    if name in ("gan", "vae"):
        worker_speed(name, args.iters, args.threads)
    elif name == "vae-loss":
        worker_vae_loss(args.seed, args.epochs)
    elif name == "distill":
        worker_distill(args.seed, args.epochs)


def torch_run(args, *extra):
    out = run([sys.executable, os.path.abspath(__file__), "--worker", *extra])
    return json.loads(out.strip().splitlines()[-1])


# --- the parts --------------------------------------------------------------------------

def part_speed(args, dnnc):
    rows = []
    for kind, file in (("gan", "examples/mnist_gan.dnn"), ("vae", "examples/mnist_vae.dnn")):
        ours, theirs = [], []
        for r in range(args.rounds):
            order = ["dnnc", "torch"] if r % 2 == 0 else ["torch", "dnnc"]
            for system in order:
                if system == "dnnc":
                    out = run([dnnc, "bench", os.path.join(ROOT, file), "--json", "--runs",
                               str(args.iters), "--threads", str(args.threads)])
                    ours.append(json.loads(out.strip().splitlines()[-1])["train_step_ms"])
                else:
                    theirs.append(torch_run(args, kind, "--iters", str(args.iters),
                                            "--threads", str(args.threads))["train_step_ms"])
                time.sleep(1.0)
        a, b = statistics.median(ours), statistics.median(theirs)
        rows.append((kind, a, b))
        print(f"{kind}: one training batch, dnnc {a:.3f} ms, PyTorch eager {b:.3f} ms, "
              f"PyTorch / dnnc {b / a:.2f}x  (medians of {args.rounds} rounds)", flush=True)
    return rows


def dnnc_train(dnnc, file, seed, log, extra=()):
    run([dnnc, "train", os.path.join(ROOT, file), "--seed", str(seed), "--log", log,
         "--quiet", "--no-plot", "--out", log.replace(".jsonl", ".safetensors"), *extra])
    lines = [json.loads(l) for l in open(log) if l.strip()]
    return lines[-1]


def part_vae(args, dnnc):
    os.makedirs(WORK, exist_ok=True)
    ours, theirs = [], []
    for seed in range(1, args.seeds + 1):
        last = dnnc_train(dnnc, "examples/mnist_vae.dnn", seed, os.path.join(WORK, f"vae{seed}.jsonl"))
        ours.append(last["test_loss"])
        theirs.append(torch_run(args, "vae-loss", "--seed", str(seed), "--epochs", "10")["test_loss"])
        print(f"vae seed {seed}: test loss dnnc {ours[-1]:.3f}, PyTorch {theirs[-1]:.3f}", flush=True)
    a, b = statistics.mean(ours), statistics.mean(theirs)
    print(f"vae: mean test loss over {args.seeds} seed(s): dnnc {a:.3f}, PyTorch {b:.3f}, "
          f"dnnc / PyTorch {a / b:.4f} ({(a / b - 1) * 100:+.2f} %)")
    return a, b


def part_distill(args, dnnc):
    os.makedirs(WORK, exist_ok=True)
    # The teacher: examples/cnn.safetensors, as `dnnc train examples/mnist_cnn.dnn` writes.
    run([dnnc, "train", os.path.join(ROOT, "examples/mnist_cnn.dnn"), "--quiet", "--no-plot"])
    results = {"dnnc": {"distilled": [], "alone": []}, "torch": {"distilled": [], "alone": [], "teacher": []}}
    for seed in range(1, args.seeds + 1):
        d = dnnc_train(dnnc, "examples/mnist_distill.dnn", seed, os.path.join(WORK, f"distill{seed}.jsonl"))
        a = dnnc_train(dnnc, "bench/distill_alone.dnn", seed, os.path.join(WORK, f"alone{seed}.jsonl"))
        results["dnnc"]["distilled"].append(d["test_accuracy"])
        results["dnnc"]["alone"].append(a["test_accuracy"])
        t = torch_run(args, "distill", "--seed", str(seed), "--epochs", "20")
        for k in ("distilled", "alone", "teacher"):
            results["torch"][k].append(t[k])
        print(f"distill seed {seed}: dnnc distilled {d['test_accuracy']:.4f} alone "
              f"{a['test_accuracy']:.4f}; PyTorch distilled {t['distilled']:.4f} alone "
              f"{t['alone']:.4f} (teacher {t['teacher']:.4f})", flush=True)
    for system, r in results.items():
        print(f"{system}: distilled {statistics.mean(r['distilled']):.4f}, student alone "
              f"{statistics.mean(r['alone']):.4f} (mean of {args.seeds} seeds)")
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["all", "speed", "vae", "distill"], default="all")
    p.add_argument("--dnnc")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json")
    p.add_argument("--worker")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--epochs", type=int, default=10)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    if args.quick:
        args.rounds, args.iters, args.seeds = 1, 5, 1
    dnnc = dnnc_binary(args.dnnc)
    out = {}
    if args.part in ("all", "speed"):
        out["speed"] = part_speed(args, dnnc)
    if args.part in ("all", "vae"):
        out["vae"] = part_vae(args, dnnc)
    if args.part in ("all", "distill"):
        out["distill"] = part_distill(args, dnnc)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        json.dump(out, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
