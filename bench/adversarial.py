#!/usr/bin/env python3
"""Adversarial training, side by side: dnnc (examples/mnist_fgsm.dnn) against PyTorch.

Trains the CNN of examples/mnist_cnn.dnn plainly and adversarially (FGSM, as
examples/mnist_fgsm.dnn does) in dnnc and in PyTorch eager, evaluates every trained
model on clean, FGSM and PGD test images, and times one training step of each kind.

    python3 bench/adversarial.py                  # 10 epochs, 3 seeds, 5 timing rounds
    python3 bench/adversarial.py --quick          # 1 epoch, 1 seed, 1 round (smoke test)
    python3 bench/adversarial.py --parts timing --rounds 9 --threads 1
    python3 bench/adversarial.py --seeds 42,7 --epochs 5 --json target/bench/adversarial.json

The recipe (the same in both systems): the examples' 8000 training / 2000 test digits
(examples/data/mnist/*.gz, images / 255.0); the CNN x [B,28,28] -> [B,1,28,28] ->
Conv2d(1,8,5) -> ReLU -> max pool 2 -> Conv2d(8,16,5) -> ReLU -> max pool 2 -> flatten
(256) -> Dense(256,120) -> ReLU -> Dense(120,10); batch 64 (125 steps an epoch), Adam
lr 1e-3, betas (0.9, 0.999), eps 1e-8; 10 epochs (`--epochs`); the training set
shuffled every epoch by the run's seed.
  plain        minimises CE(model(x), y) (mean softmax cross-entropy);
  adversarial  minimises 0.5 CE(model(x), y) + 0.5 CE(model(x_adv), y), x_adv =
               clamp(x + 0.1 sign(d CE(model(x), y) / dx), 0, 1), a constant (FGSM,
               eps 0.1, Goodfellow et al. 2015): examples/mnist_fgsm.dnn.
After every epoch both systems evaluate the block's loss and metrics on the test split
(dnnc's `train` does; for the adversarial block that includes FGSM on the test batches),
and every step reads its loss and metrics back, as dnnc does.

Part `accuracy` (per seed, `--seeds N` = seeds 42 .. 42+N-1 or a list; interleaved):
  dnnc     `dnnc train examples/mnist_cnn.dnn|mnist_fgsm.dnn --seed S --epochs E --out W
           --quiet --no-plot --log L --threads T`, then, for each trained W, with
           examples/mnist_cnn.dnn (the plain loss and metrics): `dnnc eval FILE --weights
           W` (clean), `--attack fgsm --eps 0.1`, `--attack pgd --eps 0.1 --steps 10`,
           reading `test_accuracy` from `--log`;
  PyTorch  this script as a worker process (`--worker train`): PyTorch's default init
           (torch.manual_seed(S)), the recipe, then clean, FGSM (eps 0.1) and PGD
           accuracy on the 2000 test images. PGD as dnnc's (Madry et al. 2018): a random
           start uniform in the eps-ball, 10 steps of 2.5 eps / 10 along the gradient's
           sign, each projected into the ball and [0, 1]; the last point is evaluated.
  The table shows the mean over seeds (and the spread, max - min, with 2+ seeds), and
  per run: process = the whole process's wall time; loop = the epochs' time (training
  and the per-epoch test evaluation; dnnc: the sum of the `seconds` of its --log lines,
  which includes compiling its steps on first use).

Part `timing` (`--rounds` interleaved rounds, the order rotating; the medians of rounds):
  dnnc     `dnnc bench examples/mnist_cnn.dnn|mnist_fgsm.dnn --json --threads T --runs R`:
           its `train_step_ms` (its own median of R steps, after its warm-up; its own
           random weights and data);
  PyTorch  one long-lived worker process (`--worker time`, torch.set_num_threads(T),
           OMP_NUM_THREADS=T): the plain and the adversarial step (zero_grad, forward,
           backward, Adam(fused=True) step, loss and metrics read back) on the first 64
           training images, 5 warm-up steps (3 more before each kind in each round),
           then the median of `--iters` steps. The adversarial step takes two backward
           passes: autograd.grad(CE(clean), [x] + params) gives the FGSM direction and
           the clean loss's parameter gradients at once, autograd.grad(CE(x_adv),
           params) the rest (about 15% faster here than the textbook
           autograd.grad(clean, x, retain_graph=True) then loss.backward(), which
           differentiates the clean forward twice; the updates are identical).
  Printed ratios (targets of the dnnc project): dnnc adversarial / dnnc plain step
  (target <= 2.2: the adversarial step has about two forwards and two backwards) and
  PyTorch adversarial / dnnc adversarial step (target >= 1.5).

Caveats: the two systems draw different initial weights (even from different
distributions: dnnc's Conv2d W is He uniform and Dense W Glorot uniform, biases zero;
PyTorch's default is U(+-1/sqrt(fan_in)) for W and b), shuffles and PGD starts, so
only means over seeds are comparable (both systems' attacks agree on the same
weights: this script's PyTorch FGSM / PGD give dnnc's `eval --attack` accuracies to
within ~0.3% on dnnc-trained weights), and 2000 test images put ~0.5% noise on an
accuracy. Max-pool windows with tied maxima (common on MNIST's black background) route
their gradient to the last maximum in dnnc and to the first in PyTorch (both valid):
the input gradients, hence the FGSM / PGD perturbations on background pixels, differ in
where they fall (see bench/explain.py). The machine's other load shows in the timings;
use --threads below the number of idle cores. dnnc's `eval` has no thread option: with
--threads below the CPUs allowed, every dnnc and PyTorch process is restricted to the
first N CPUs (unless --no-pin).

The driver needs only the standard library; the workers need numpy and torch.
"""

import argparse
import gzip
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "bench", "adversarial")
DATA = os.path.join(ROOT, "examples", "data", "mnist")
FILES = {"plain": os.path.join(ROOT, "examples", "mnist_cnn.dnn"),
         "adv": os.path.join(ROOT, "examples", "mnist_fgsm.dnn")}
EVAL_FILE = FILES["plain"]
MODES = ["plain", "adv"]
MODE_LABELS = {"plain": "plain CNN", "adv": "FGSM-trained CNN"}
ATTACKS = ["clean", "fgsm", "pgd"]
ATTACK_LABELS = {"clean": "clean", "fgsm": "FGSM .1", "pgd": "PGD .1x10"}

BATCH, LR, BETA1, BETA2, ADAM_EPS = 64, 1e-3, 0.9, 0.999, 1e-8
EPS, PGD_STEPS = 0.1, 10
PGD_STEP = 2.5 * EPS / PGD_STEPS
FIRST_SEED = 42
TARGET_DNNC_RATIO = 2.2  # dnnc adv step / dnnc plain step, at most
TARGET_TORCH_RATIO = 1.5  # PyTorch adv step / dnnc adv step, at least


# =================================================================================
# Workers (this script started with --worker train|time), PyTorch
# =================================================================================


def load_idx(name):
    """One IDX file (gzip, unsigned bytes) as a numpy array of its stored shape."""
    import numpy as np

    with gzip.open(os.path.join(DATA, name), "rb") as f:
        raw = f.read()
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != 0x08:
        raise ValueError(f"{name}: only unsigned-byte IDX files are supported")
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist(torch):
    """(x_train, y_train, x_test, y_test): float32 [N, 28, 28] in [0, 1], int64 labels."""
    import numpy as np

    out = []
    for split in ("train", "test"):
        x = load_idx(f"{split}-images-idx3-ubyte.gz").astype(np.float32) / np.float32(255.0)
        y = load_idx(f"{split}-labels-idx1-ubyte.gz").astype(np.int64)
        out += [torch.from_numpy(x.copy()), torch.from_numpy(y.copy())]
    return tuple(out)


class Trainer:
    """The CNN, its Adam optimizer and the two training steps, in PyTorch eager."""

    def __init__(self, torch, seed):
        nn = torch.nn
        self.torch = torch
        self.ce = nn.functional.cross_entropy
        torch.manual_seed(seed)  # PyTorch's default Linear / Conv2d init
        self.model = nn.Sequential(
            nn.Unflatten(1, (1, 28)),  # [B, 28, 28] -> [B, 1, 28, 28]
            nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2),  # [B, 8, 12, 12]
            nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2),  # [B, 16, 4, 4]
            nn.Flatten(),  # NCHW order, 256
            nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 10),
        )
        self.params = list(self.model.parameters())
        adam = dict(lr=LR, betas=(BETA1, BETA2), eps=ADAM_EPS)
        try:
            self.opt = torch.optim.Adam(self.params, fused=True, **adam)
            self.fused = True
        except (RuntimeError, TypeError, ValueError):
            self.opt = torch.optim.Adam(self.params, **adam)
            self.fused = False

    def fgsm(self, loss, x, eps=EPS, retain=False):
        """clamp(x + eps sign(d loss / dx), 0, 1), detached."""
        (g,) = self.torch.autograd.grad(loss, x, retain_graph=retain)
        return (x.detach() + eps * g.sign()).clamp_(0.0, 1.0)

    def plain_losses(self, x, y):
        """(loss, {metric: logits}) of the plain block."""
        logits = self.model(x)
        return self.ce(logits, y), {"accuracy": logits}

    def adv_losses(self, x, y, create=True):
        """(loss, {metric: logits}) of the adversarial block: 0.5 CE(clean) + 0.5
        CE(FGSM examples), the examples constants."""
        x = x.detach().requires_grad_(True)
        logits = self.model(x)
        clean = self.ce(logits, y)
        x_adv = self.fgsm(clean, x, retain=create)
        robust = self.model(x_adv)
        loss = 0.5 * clean + 0.5 * self.ce(robust, y)
        return loss, {"accuracy": logits, "fgsm_accuracy": robust}

    def adv_grads(self, x, y):
        """The adversarial step's loss, logits and parameter gradients in two
        backward passes: the first gives d CE(clean) / dx (for FGSM) and the clean
        loss's parameter gradients together, the second the FGSM loss's."""
        torch = self.torch
        x = x.detach().requires_grad_(True)
        logits = self.model(x)
        clean = self.ce(logits, y)
        g = torch.autograd.grad(clean, [x] + self.params)
        x_adv = (x.detach() + EPS * g[0].sign()).clamp_(0.0, 1.0)
        robust = self.model(x_adv)
        adv = self.ce(robust, y)
        grads = torch._foreach_mul(list(g[1:]), 0.5)
        torch._foreach_add_(grads, list(torch.autograd.grad(adv, self.params)), alpha=0.5)
        loss = 0.5 * clean.detach() + 0.5 * adv.detach()
        return loss, {"accuracy": logits, "fgsm_accuracy": robust}, grads

    def step(self, mode, x, y):
        """One training step; returns the loss and metrics, read back (as dnnc does)."""
        if mode == "plain":
            self.opt.zero_grad(set_to_none=True)
            loss, outs = self.plain_losses(x, y)
            loss.backward()
        else:
            loss, outs, grads = self.adv_grads(x, y)
            for p, g in zip(self.params, grads):
                p.grad = g
        self.opt.step()
        return float(loss.detach()), {k: float((v.detach().argmax(1) == y).float().mean())
                                      for k, v in outs.items()}

    def evaluate(self, mode, x_te, y_te):
        """The block's test loss and metrics, averaged over samples (batch 64)."""
        torch = self.torch
        sums, n = {}, len(x_te)
        for i in range(0, n, BATCH):
            xb, yb = x_te[i:i + BATCH], y_te[i:i + BATCH]
            if mode == "plain":
                with torch.no_grad():
                    loss, outs = self.plain_losses(xb, yb)
            else:
                loss, outs = self.adv_losses(xb, yb, create=False)
            vals = {"loss": float(loss)}
            vals.update({k: float((v.argmax(1) == yb).float().sum()) / len(yb)
                         for k, v in outs.items()})
            for k, v in vals.items():
                sums[k] = sums.get(k, 0.0) + v * len(yb)
        return {k: v / n for k, v in sums.items()}

    def attacked_accuracy(self, attack, x_te, y_te, seed):
        """Accuracy on clean, FGSM or PGD versions of the test images (batch 64)."""
        torch = self.torch
        gen = torch.Generator().manual_seed(seed)
        correct = 0
        for i in range(0, len(x_te), BATCH):
            x0, yb = x_te[i:i + BATCH], y_te[i:i + BATCH]
            x = x0
            if attack == "fgsm":
                x = x0.clone().requires_grad_(True)
                x = self.fgsm(self.ce(self.model(x), yb), x)
            elif attack == "pgd":
                noise = torch.rand(x0.shape, generator=gen) * (2 * EPS) - EPS
                x = (x0 + noise).clamp(0.0, 1.0)
                for _ in range(PGD_STEPS):
                    x = x.detach().requires_grad_(True)
                    moved = self.fgsm(self.ce(self.model(x), yb), x, eps=PGD_STEP)
                    x = torch.minimum(torch.maximum(moved, x0 - EPS), x0 + EPS).clamp(0.0, 1.0)
            with torch.no_grad():
                correct += int((self.model(x.detach()).argmax(1) == yb).sum())
        return correct / len(x_te)


def worker_train(args):
    """Trains one model; prints one JSON line: history, accuracies, info."""
    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    mode, seed = args.mode, args.seed
    x_tr, y_tr, x_te, y_te = load_mnist(torch)
    t = Trainer(torch, seed)
    gen = torch.Generator().manual_seed(seed)
    n = len(x_tr)
    history = []
    for epoch in range(args.epochs):
        started = time.perf_counter()
        t.model.train()
        order = torch.randperm(n, generator=gen)
        sums = {}
        for i in range(0, n, BATCH):
            idx = order[i:i + BATCH]
            loss, metrics = t.step(mode, x_tr[idx], y_tr[idx])
            for k, v in [("loss", loss)] + list(metrics.items()):
                sums[k] = sums.get(k, 0.0) + v * len(idx)
        t.model.eval()
        test = t.evaluate(mode, x_te, y_te)
        row = {"epoch": epoch + 1, "seconds": time.perf_counter() - started}
        row.update({f"train_{k}": v / n for k, v in sums.items()})
        row.update({f"test_{k}": v for k, v in test.items()})
        history.append(row)
    started = time.perf_counter()
    acc = {a: t.attacked_accuracy(a, x_te, y_te, seed) for a in ATTACKS}
    info = {"torch": torch.__version__, "fused_adam": t.fused,
            "eval_seconds": time.perf_counter() - started}
    print(json.dumps({"history": history, "accuracy": acc, "info": info}), flush=True)


def worker_time(args):
    """Long-lived: answers each command line on stdin with one JSON line of step
    medians (ns) on the protocol channel."""
    import gc

    import torch

    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(msg):
        proto.write(json.dumps(msg) + "\n")
        proto.flush()

    try:
        torch.set_num_threads(args.threads)
        torch.set_num_interop_threads(1)
        x_tr, y_tr, _, _ = load_mnist(torch)
        x, y = x_tr[:BATCH].clone(), y_tr[:BATCH].clone()
        trainers = {m: Trainer(torch, FIRST_SEED) for m in MODES}
        for m in MODES:
            for _ in range(5):
                trainers[m].step(m, x, y)
    except Exception as e:  # noqa: BLE001 - reported to the driver
        import traceback

        traceback.print_exc()
        send({"error": f"{type(e).__name__}: {e}"})
        return
    send({"ready": True, "torch": torch.__version__, "fused_adam": trainers["plain"].fused})
    clock = time.perf_counter_ns
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "quit":
            break
        result = {}
        gc.collect()
        gc.disable()
        try:
            for m in msg.get("order", MODES):
                tr = trainers[m]
                for _ in range(3):  # warm-up after the other step's run
                    tr.step(m, x, y)
                times = []
                for _ in range(msg["iters"]):
                    start = clock()
                    tr.step(m, x, y)
                    times.append(clock() - start)
                result[m] = statistics.median(times)
        finally:
            gc.enable()
        send(result)


# =================================================================================
# Driver
# =================================================================================


def pin_cpus(threads, no_pin):
    """The CPUs every system is restricted to (the first `threads` allowed), or None."""
    if no_pin or not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[:threads] if threads < len(allowed) else None


def torch_env(threads):
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["OMP_NUM_THREADS"] = str(threads)
    env["MKL_NUM_THREADS"] = str(threads)
    return env


def run_timed(cmd, cpus, timeout, env=None):
    """Runs cmd in the repository root; returns (wall seconds, CompletedProcess), or
    raises RuntimeError with the tail of its output when it fails."""
    preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-8:])
        raise RuntimeError(f"`{' '.join(cmd)}` exited with {proc.returncode}\n{tail}")
    return wall, proc


def dnnc_run(args, cpus, mode, seed):
    """Trains with dnnc and evaluates the weights; returns the run's record."""
    tag = f"dnnc_{mode}_s{seed}"
    weights = os.path.join(args.work, f"{tag}.safetensors")
    log = os.path.join(args.work, f"{tag}.jsonl")
    for f in (weights, log):
        if os.path.exists(f):
            os.remove(f)
    cmd = [args.dnnc, "train", FILES[mode], "--seed", str(seed), "--epochs", str(args.epochs),
           "--out", weights, "--quiet", "--no-plot", "--log", log,
           "--threads", str(args.threads)]
    wall, _ = run_timed(cmd, cpus, args.timeout)
    with open(log) as f:
        history = [json.loads(line) for line in f if line.strip()]
    acc = {}
    started = time.perf_counter()
    for attack in ATTACKS:
        elog = os.path.join(args.work, f"{tag}_eval_{attack}.json")
        if os.path.exists(elog):
            os.remove(elog)
        ecmd = [args.dnnc, "eval", EVAL_FILE, "--weights", weights, "--log", elog]
        if attack == "fgsm":
            ecmd += ["--attack", "fgsm", "--eps", str(EPS)]
        elif attack == "pgd":
            ecmd += ["--attack", "pgd", "--eps", str(EPS), "--steps", str(PGD_STEPS)]
        run_timed(ecmd, cpus, args.timeout)
        with open(elog) as f:
            acc[attack] = float(json.load(f)["test_accuracy"])
    return {"process_s": wall, "loop_s": sum(h["seconds"] for h in history),
            "epochs": len(history), "accuracy": acc, "history": history,
            "eval_s": time.perf_counter() - started, "command": " ".join(cmd)}


def torch_run(args, cpus, mode, seed):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "train", "--mode", mode,
           "--seed", str(seed), "--epochs", str(args.epochs), "--threads", str(args.threads)]
    wall, proc = run_timed(cmd, cpus, args.timeout, torch_env(args.threads))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError("the PyTorch worker printed no result")
    msg = json.loads(lines[-1])
    history = msg["history"]
    loop = sum(h["seconds"] for h in history)
    return {"process_s": wall - msg["info"]["eval_seconds"], "loop_s": loop,
            "epochs": len(history), "accuracy": msg["accuracy"], "history": history,
            "eval_s": msg["info"]["eval_seconds"], "info": msg["info"]}


class TimeWorker:
    """The driver's handle on the PyTorch timing worker."""

    def __init__(self, args, cpus):
        self.log_path = os.path.join(args.work, "worker_time.log")
        self.log = open(self.log_path, "w")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "time",
               "--threads", str(args.threads)]
        preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=torch_env(args.threads), text=True,
                                     bufsize=1, preexec_fn=preexec, cwd=ROOT)

    def recv(self, timeout):
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError("the PyTorch timing worker exited or timed out; log: "
                               + self.log_path)
        return json.loads(line)

    def send(self, msg):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def close(self):
        try:
            self.send({"cmd": "quit"})
            self.proc.wait(timeout=30)
        except Exception:  # noqa: BLE001
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def dnnc_bench(args, cpus, mode):
    cmd = [args.dnnc, "bench", FILES[mode], "--json", "--threads", str(args.threads),
           "--runs", str(args.dnnc_runs)]
    _, proc = run_timed(cmd, cpus, args.timeout)
    lines = proc.stdout.strip().splitlines()
    res = json.loads(lines[-1])
    if res.get("batch") not in (None, BATCH):
        raise RuntimeError(f"`dnnc bench` ran batch {res['batch']}, not {BATCH}")
    return float(res["train_step_ms"]), res


def mean_spread(vals):
    if not vals:
        return None, None
    return statistics.mean(vals), (max(vals) - min(vals) if len(vals) > 1 else None)


def part_accuracy(args, cpus, systems, notes):
    runs = {(s, m): [] for s in systems for m in MODES}
    jobs = [(seed, m) for seed in args.seeds for m in MODES]
    print(f"\n== accuracy: {len(jobs)} trainings per system ({', '.join(MODES)} x seeds "
          f"{', '.join(map(str, args.seeds))}), {args.epochs} epoch(s)", flush=True)
    for k, (seed, mode) in enumerate(jobs):
        order = systems[k % len(systems):] + systems[:k % len(systems)]
        for s in order:
            try:
                res = (dnnc_run if s == "dnnc" else torch_run)(args, cpus, mode, seed)
            except (RuntimeError, OSError, ValueError, KeyError,
                    subprocess.TimeoutExpired) as e:
                notes.append(f"{s} {mode} seed {seed}: FAILED: {e}")
                print(f"  {s:<7} {mode:<5} seed {seed}: FAILED: {e}", file=sys.stderr)
                continue
            res["seed"] = seed
            runs[(s, mode)].append(res)
            a = res["accuracy"]
            print(f"  {s:<7} {mode:<5} seed {seed}: process {res['process_s']:7.2f} s  loop "
                  f"{res['loop_s']:7.2f} s  clean {a['clean']:.4f}  FGSM {a['fgsm']:.4f}  "
                  f"PGD {a['pgd']:.4f}", flush=True)

    label = {"dnnc": "dnnc", "torch": "PyTorch"}
    rows = [(m, s) for m in MODES for s in systems if runs[(s, m)]]
    n_seeds = len(args.seeds)
    title = f"test accuracy (2000 images), mean over {n_seeds} seed(s)"
    width = max(len(title), *(len(f"{MODE_LABELS[m]}, {label[s]}") for m, s in rows)) \
        if rows else len(title)
    heads = [ATTACK_LABELS[a] for a in ATTACKS] + ["process (s)", "loop (s)"]
    print()
    print(title.ljust(width) + "".join(f"{h:>16}" for h in heads))
    summary = {}
    for m, s in rows:
        rs = runs[(s, m)]
        cells, entry = [], {}
        for a in ATTACKS:
            mean, spread = mean_spread([r["accuracy"][a] for r in rs])
            entry[a] = {"mean": mean, "spread": spread}
            cells.append(f"{mean:.4f}" + (f" ±{spread / 2:.3f}" if spread is not None else ""))
        for key in ("process_s", "loop_s"):
            mean, _ = mean_spread([r[key] for r in rs])
            entry[key] = mean
            cells.append(f"{mean:.2f}")
        summary[f"{s}/{m}"] = entry
        print(f"{MODE_LABELS[m]}, {label[s]}".ljust(width) + "".join(f"{c:>16}" for c in cells))
    print("(± half the spread max - min over seeds; process: the training process's wall "
          "time (PyTorch: without its final attack evaluation), loop: its epochs' time)")
    return summary, {f"{s}/{m}": v for (s, m), v in runs.items()}


def part_timing(args, cpus, systems, notes):
    print(f"\n== timing: {args.rounds} round(s); dnnc `bench --runs {args.dnnc_runs}`, "
          f"PyTorch median of {args.iters} steps", flush=True)
    samples = {(s, m): [] for s in systems for m in MODES}
    worker, info = None, {}
    if "torch" in systems:
        worker = TimeWorker(args, cpus)
        try:
            msg = worker.recv(args.timeout)
        except RuntimeError as e:
            msg = {"error": str(e)}
        if "error" in msg:
            notes.append(f"PyTorch timing: skipped ({msg['error']}); see {worker.log_path}")
            worker.close()
            worker = None
        else:
            info = msg
    order = [s for s in systems if s != "torch" or worker]
    for rnd in range(args.rounds):
        shift = rnd % len(order) if order else 0
        for s in order[shift:] + order[:shift]:
            modes = MODES if rnd % 2 == 0 else MODES[::-1]
            try:
                if s == "dnnc":
                    for m in modes:
                        ms, _ = dnnc_bench(args, cpus, m)
                        samples[(s, m)].append(ms)
                else:
                    worker.send({"cmd": "round", "iters": args.iters, "order": modes})
                    res = worker.recv(args.timeout)
                    for m in modes:
                        samples[(s, m)].append(res[m] * 1e-6)
            except (RuntimeError, OSError, ValueError, KeyError,
                    subprocess.TimeoutExpired) as e:
                notes.append(f"timing {s}, round {rnd + 1}: FAILED: {e}")
        print(f"round {rnd + 1}/{args.rounds} done", flush=True)
    if worker:
        worker.close()

    med = {k: statistics.median(v) for k, v in samples.items() if v}
    label = {"dnnc": "dnnc", "torch": "PyTorch eager"}
    cols = [s for s in systems if any((s, m) in med for m in MODES)]
    print()
    title = f"train step b{BATCH} (ms), median of {args.rounds} round(s)"
    width = len(title)
    heads = [label[s] for s in cols] + (["PyTorch/dnnc"] if len(cols) == 2 else [])
    print(title.ljust(width) + "".join(f"{h:>15}" for h in heads))
    for m, name in (("plain", "plain step"), ("adv", "adversarial step (FGSM)")):
        cells = [f"{med[(s, m)]:.3f}" if (s, m) in med else "-" for s in cols]
        if len(cols) == 2 and ("dnnc", m) in med and ("torch", m) in med:
            cells.append(f"{med[('torch', m)] / med[('dnnc', m)]:.2f}x")
        print(name.ljust(width) + "".join(f"{c:>15}" for c in cells))
    cells = [f"{med[(s, 'adv')] / med[(s, 'plain')]:.2f}x"
             if (s, "adv") in med and (s, "plain") in med else "-" for s in cols]
    print("adversarial / plain".ljust(width) + "".join(f"{c:>15}" for c in cells))

    ratios = {}
    print()
    if ("dnnc", "adv") in med and ("dnnc", "plain") in med:
        r = ratios["dnnc_adv_over_plain"] = med[("dnnc", "adv")] / med[("dnnc", "plain")]
        print(f"dnnc adversarial step / dnnc plain step: {r:.2f} (target <= "
              f"{TARGET_DNNC_RATIO}: {'met' if r <= TARGET_DNNC_RATIO else 'MISSED'})")
    if ("dnnc", "adv") in med and ("torch", "adv") in med:
        r = ratios["torch_adv_over_dnnc_adv"] = med[("torch", "adv")] / med[("dnnc", "adv")]
        print(f"PyTorch adversarial step / dnnc adversarial step: {r:.2f} (target >= "
              f"{TARGET_TORCH_RATIO}: {'met' if r >= TARGET_TORCH_RATIO else 'MISSED'})")
    if info:
        print(f"PyTorch {info.get('torch')}, Adam fused={info.get('fused_adam')}")
    return {"medians_ms": {f"{s}/{m}": v for (s, m), v in med.items()},
            "rounds_ms": {f"{s}/{m}": v for (s, m), v in samples.items()},
            "ratios": ratios}


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Plain and FGSM adversarial training of the MNIST CNN in dnnc "
        "(examples/mnist_cnn.dnn, mnist_fgsm.dnn) and PyTorch: robust accuracy and "
        "step time.")
    p.add_argument("--dnnc", help="dnnc binary (default: target/release/dnnc if built, "
                   "else target/debug/dnnc)")
    p.add_argument("--threads", type=int, default=2, help="threads per system (default 2)")
    p.add_argument("--epochs", type=int, default=10, help="epochs per training (default 10)")
    p.add_argument("--seeds", default="3",
                   help="N (seeds 42 .. 42+N-1, default 3) or a comma-separated list")
    p.add_argument("--rounds", type=int, default=5, help="timing rounds (default 5)")
    p.add_argument("--iters", type=int, default=50,
                   help="PyTorch timed steps per round and kind (default 50)")
    p.add_argument("--dnnc-runs", type=int, default=51,
                   help="`dnnc bench --runs` per round (default 51)")
    p.add_argument("--parts", default="accuracy,timing",
                   help="comma-separated subset of accuracy,timing")
    p.add_argument("--systems", default="dnnc,torch", help="subset of dnnc,torch")
    p.add_argument("--quick", action="store_true",
                   help="1 epoch, 1 seed, 1 timing round, fewer steps (smoke test)")
    p.add_argument("--no-pin", action="store_true",
                   help="do not restrict every process to the first N CPUs")
    p.add_argument("--timeout", type=float, default=3600.0,
                   help="seconds one process may take (default 3600)")
    p.add_argument("--json", metavar="PATH", help="also write all results to PATH")
    p.add_argument("--work", default=WORK, help=argparse.SUPPRESS)
    p.add_argument("--worker", choices=["train", "time"], help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=FIRST_SEED, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    if args.quick:
        args.epochs, args.seeds, args.rounds = 1, "1", 1
        args.iters, args.dnnc_runs = 20, 21
    if args.dnnc is None:
        release = os.path.join(ROOT, "target", "release", "dnnc")
        args.dnnc = release if os.path.exists(release) else os.path.join(
            ROOT, "target", "debug", "dnnc")
    try:
        if "," in args.seeds:
            args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        else:
            args.seeds = [FIRST_SEED + i for i in range(int(args.seeds))]
    except ValueError:
        p.error("--seeds: a count or a comma-separated list of integers")
    args.parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not set(args.parts) <= {"accuracy", "timing"} or not args.parts:
        p.error("--parts: a subset of accuracy,timing")
    if not set(args.systems) <= {"dnnc", "torch"} or not args.systems:
        p.error("--systems: a subset of dnnc,torch")
    if min(args.threads, args.epochs, args.rounds, args.iters, args.dnnc_runs,
           len(args.seeds)) < 1:
        p.error("--threads, --epochs, --seeds, --rounds, --iters and --dnnc-runs must be "
                "at least 1")
    return args


def main(argv):
    args = parse_args(argv)
    if args.worker == "train":
        worker_train(args)
        return 0
    if args.worker == "time":
        worker_time(args)
        return 0

    notes, systems = [], []
    for s in args.systems:
        if s == "dnnc":
            if not os.path.exists(args.dnnc):
                notes.append(f"dnnc: skipped (no binary at {args.dnnc}; "
                             "cargo build --release -p dnnc)")
                continue
            systems.append(s)
            rel = os.path.relpath(args.dnnc, ROOT).split(os.sep)
            debug = os.path.join(ROOT, "target", "debug", "dnnc")
            if "debug" in rel:
                notes.append("dnnc: a debug build; use a release build for numbers")
            elif os.path.exists(debug) and os.path.getmtime(args.dnnc) < os.path.getmtime(debug):
                notes.append(f"dnnc: {args.dnnc} is older than target/debug/dnnc; rebuild "
                             "it (cargo build --release -p dnnc) or pass --dnnc")
        else:
            absent = [m for m in ("numpy", "torch") if importlib.util.find_spec(m) is None]
            if absent:
                notes.append(f"PyTorch: skipped ({', '.join(absent)} not installed in "
                             f"{sys.executable})")
            else:
                systems.append(s)
    if not systems:
        print("adversarial.py: nothing to run", *notes, sep="\n", file=sys.stderr)
        return 2
    os.makedirs(args.work, exist_ok=True)
    cpus = pin_cpus(args.threads, args.no_pin)
    print(f"adversarial.py: systems {', '.join(systems)}, parts {', '.join(args.parts)}, "
          f"{args.threads} thread(s), CPUs {','.join(map(str, cpus)) if cpus else 'all allowed'}"
          f", dnnc {args.dnnc if 'dnnc' in systems else '-'}", flush=True)

    report = {"config": {"threads": args.threads, "epochs": args.epochs, "seeds": args.seeds,
                         "rounds": args.rounds, "iters": args.iters,
                         "dnnc_runs": args.dnnc_runs, "dnnc": args.dnnc, "cpus": cpus}}
    if "accuracy" in args.parts:
        report["accuracy"], report["runs"] = part_accuracy(args, cpus, systems, notes)
    if "timing" in args.parts:
        report["timing"] = part_timing(args, cpus, systems, notes)
    for n in notes:
        print(f"note: {n}")
    report["notes"] = notes
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
