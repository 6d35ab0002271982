#!/usr/bin/env python3
"""Benchmark: examples/shakespeare_gpt.dnn in dnnc beside PyTorch: the training step's
time (part `timing`) and the test loss after the example's whole training run (part
`loss`).

nanoGPT's "baby GPT" as the example declares it: 4 pre-norm Transformer layers
(causal self-attention with 4 heads of 32, a 512-wide GELU feed-forward network),
learned token and position embeddings of 128, a final LayerNorm and a linear head over
the 76 characters; batch 12 of 64 characters; AdamW (lr 1e-3, beta2 0.99, weight decay
0.1). PyTorch runs the same architecture with nn.TransformerEncoderLayer(norm_first=True,
activation="gelu", dropout=0) and a causal mask (exact, erf-based GELU and LayerNorm eps
1e-5, as dnnc's std::nn).

    python3 bench/gpt.py                       # part timing: 3 rounds, 2 threads
    python3 bench/gpt.py --quick               # part timing: 1 round, few steps
    python3 bench/gpt.py --parts loss          # part loss: the whole run (2044 steps)
    python3 bench/gpt.py --parts loss --steps 20    # part loss, shortened (smoke test)
    python3 bench/gpt.py --parts timing,loss   # both
    python3 bench/gpt.py --parts decode        # part decode: one character at a time

Part `timing` (the default): PyTorch eagerly and under torch.compile, in worker
processes of their own; dnnc is timed by `dnnc bench FILE --json` (its own median).
Rounds are interleaved and the table shows medians over rounds, in ms. The PyTorch
workers keep PyTorch's default (actively waiting) OpenMP threads, which its step relies
on, and are stopped (SIGSTOP) while another system is timed, so that their spinning
threads take no core from it; random data (the step's cost does not depend on it);
PyTorch's AdamW is the fused one.

Part `loss`: the example's training run in both systems, one after the other, and the
test loss at its end side by side (target of the dnnc project: dnnc's test loss at most
PyTorch eager's + 0.03).
  dnnc     `dnnc train examples/shakespeare_gpt.dnn --out
           target/bench/gpt/dnnc_loss.safetensors --log target/bench/gpt/dnnc_loss.jsonl
           --threads T --seed S --quiet --no-plot` (plus `--steps N` with --steps): its
           own init and shuffle; the `test_loss` of its log's last line (evaluated after
           the last step).
  PyTorch  this script as a worker (`--worker loss`), PyTorch eager, the recipe as dnnc
           defines it:
    data   bench/sequence.py's reproduction of dnnc's `text(...)` loader:
           examples/data/shakespeare/plays.txt, ids = indices into the sorted distinct
           characters of the whole file (76); training part = the first 90 % of the
           characters, test part = the last 10 % (positions floor(len * ppm / 1e6));
           windows of 65 characters starting every 64 (12257 training, 1361 test
           windows); input = the first 64 characters, targets = the last 64; loss = mean
           cross-entropy over the 12 x 64 positions; batch 12, the last batch of an
           epoch partial (1022 steps per epoch); 2 epochs = 2044 steps (or `--steps`);
           the training windows shuffled every epoch by torch.randperm with a generator
           seeded S (not dnnc's order);
    init   PyTorch's defaults, torch.manual_seed(S) (dnnc draws its own: Glorot uniform
           for the in-projections and the head's weight, zeros for their biases, ...);
    AdamW  torch.optim.AdamW(lr 1e-3, betas (0.9, 0.99), eps 1e-8, weight_decay 0.1),
           fused where available, over every parameter, as dnnc's adamw decays every
           trainable parameter (embeddings, biases and LayerNorm scales and shifts
           included; compiler/passes/src/optimizer.rs: p' = p - lr/c1 * m'/(sqrt(v')/
           sqrt(c2) + eps) - lr * wd * p, PyTorch's AdamW);
    lr     dnnc's cosine(warmup_steps = 100, decay_steps = 2000, min_lr = 1e-4) per step,
           exactly (compiler/passes/src/optimizer.rs `learning_rate`): at step s = 0, 1,
           ... (the optimizer's counter before the step), lr = 1e-3 * (s + 1) / 100 for
           s < 100, else 1e-4 + (1e-3 - 1e-4) * (1 + cos(pi * min(s - 100, 1900) /
           1900)) / 2 (1e-4 from step 2000 on); --steps shortens the run, not the
           schedule;
    test   mean cross-entropy over every position of the 1361 test windows, at the end
           of each epoch and after the last step (as dnnc logs `test_loss`).
  Printed: both test losses, dnnc - PyTorch against the target, each side's last
  epoch's mean training loss, and wall times (the process, and the training loop with
  its test evaluations).

Part `decode`: generating one character after another, each from the characters
before it (the issue's target: at most 100 us per character with a cache).
  dnnc     `dnnc sample examples/shakespeare_gpt.dnn --weights
           examples/shakespeare_gpt.safetensors --prompt "ROMEO:" --length 2000 --time`:
           its `decode` method (a key/value cache per layer, one position added per
           run); the mean time per run of `decode` (what `--time` prints; the runs
           include the restarts of the context every 32 characters, which `--time`'s
           per-character figure counts on top).
  PyTorch  the same model (random weights: the cost does not depend on them), eager,
           no_grad, in a worker with --threads threads: (a) with a key/value cache
           written in place at each position (`decode_step` below: each layer's
           in-projection of the new position, attention over the positions so far),
           checked against the full forward's logits; the median over rounds of the
           mean time per character over positions 0..63; and (b) re-running the whole
           window for each character, as nanoGPT's `generate` does.

Caveats: the two systems draw different initial weights and visit the windows in
different orders, so the test losses differ by chance by a few hundredths; the machine
is shared, so run it when nothing else does.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "shakespeare_gpt.dnn")
WORK = os.path.join(ROOT, "target", "bench", "gpt")

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sequence  # noqa: E402  (dnnc's `text(...)` loader, reproduced; process helpers)

VOCAB, BLOCK, BATCH, EPOCHS = 76, 64, 12, 2
LR, BETAS, EPS, WEIGHT_DECAY = 1e-3, (0.9, 0.99), 1e-8, 0.1
WARMUP_STEPS, DECAY_STEPS, MIN_LR = 100, 2000, 1e-4
TARGET_LOSS_DIFF = 0.03  # dnnc test loss - PyTorch test loss, at most


def make_gpt(torch):
    """The model with PyTorch's default init (from the global generator)."""
    nn = torch.nn

    class Gpt(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(VOCAB, 128)
            self.pos = nn.Embedding(BLOCK, 128)
            self.blocks = nn.ModuleList(
                nn.TransformerEncoderLayer(128, 4, 512, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
                for _ in range(4))
            self.ln = nn.LayerNorm(128)
            self.head = nn.Linear(128, VOCAB)
            self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(BLOCK))

        def forward(self, x):
            h = self.tok(x) + self.pos(torch.arange(BLOCK))
            for b in self.blocks:
                h = b(h, src_mask=self.mask, is_causal=True)
            return self.head(self.ln(h))

    return Gpt()


def worker(variant, threads, iters):
    import torch
    import torch.nn as nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)

    model = make_gpt(torch)
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


def decode_worker(args):
    """Times decoding one character at a time in PyTorch eager; prints one JSON line."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = make_gpt(torch).eval()
    heads, dim = 4, 32

    def decode_step(x, t, caches):
        """The logits after character `x` at position `t`; writes its keys and values
        into `caches` (per layer `[2, 1, heads, BLOCK, dim]`) at `t`."""
        h = model.tok(x) + model.pos(torch.tensor([t]))
        for b, cache in zip(model.blocks, caches):
            a = b.norm1(h)
            q, k, v = F.linear(a, b.self_attn.in_proj_weight, b.self_attn.in_proj_bias).split(128, -1)
            cache[0, :, :, t] = k.view(1, heads, dim)
            cache[1, :, :, t] = v.view(1, heads, dim)
            keys, values = cache[0, :, :, :t + 1], cache[1, :, :, :t + 1]
            w = torch.softmax(q.view(1, heads, 1, dim) @ keys.transpose(-1, -2) / dim ** 0.5, -1)
            h = h + b.self_attn.out_proj((w @ values).reshape(1, 128))
            h = h + b.linear2(F.gelu(b.linear1(b.norm2(h))))
        return model.head(model.ln(h))

    ids = torch.randint(0, VOCAB, (1, BLOCK))
    with torch.no_grad():
        # The cache gives what the whole window gives, at every position.
        full = model(ids)[0]
        caches = [torch.zeros(2, 1, heads, BLOCK, dim) for _ in model.blocks]
        for t in range(BLOCK):
            got = decode_step(ids[:, t], t, caches)[0]
            err = float((got - full[t]).abs().max())
            if err > 1e-4:
                raise SystemExit(f"decode_step differs from forward at {t}: {err}")
        for line in sys.stdin:
            per = []
            for _ in range(args.iters):
                caches = [torch.zeros(2, 1, heads, BLOCK, dim) for _ in model.blocks]
                t0 = time.perf_counter()
                for t in range(BLOCK):
                    decode_step(ids[:, t], t, caches)
                per.append((time.perf_counter() - t0) / BLOCK * 1e6)
            window = []
            for _ in range(max(args.iters // 4, 2)):
                t0 = time.perf_counter()
                for _ in range(8):
                    model(ids)[0, -1]
                window.append((time.perf_counter() - t0) / 8 * 1e6)
            print(json.dumps({"cache_us": statistics.median(per),
                              "window_us": statistics.median(window)}), flush=True)


def part_decode(args):
    import re
    import signal

    worker = subprocess.Popen(
        [sys.executable, __file__, "--worker", "decode", "--threads", str(args.threads),
         "--iters", str(args.iters)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=sequence.torch_env(args.threads))
    weights = os.path.join(ROOT, "examples", "shakespeare_gpt.safetensors")
    cmd = [args.dnnc, "sample", EXAMPLE, "--weights", weights, "--prompt", "ROMEO:",
           "--length", "2000", "--time", "--seed", "1"]
    results = {"dnnc": [], "dnnc_char": [], "cache": [], "window": []}
    for r in range(args.rounds):
        os.kill(worker.pid, signal.SIGSTOP)
        err = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
        m = re.search(r"\(([0-9.]+) µs each\): ([0-9]+) runs of `decode` \(([0-9.]+) µs each\)", err)
        if not m:
            raise RuntimeError(f"dnnc sample --time printed no timing: {err!r}")
        results["dnnc_char"].append(float(m.group(1)))
        results["dnnc"].append(float(m.group(3)))
        os.kill(worker.pid, signal.SIGCONT)
        worker.stdin.write("go\n")
        worker.stdin.flush()
        line = worker.stdout.readline()
        if not line:
            raise RuntimeError("the PyTorch decode worker stopped")
        got = json.loads(line)
        results["cache"].append(got["cache_us"])
        results["window"].append(got["window_us"])
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    worker.stdin.close()
    worker.wait()
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\nGPT decoding, one character per run, median of {args.rounds} round(s) (us)")
    print(f"{'dnnc decode (cache)':36}{med['dnnc']:>10.1f}   (target <= 100: "
          f"{'met' if med['dnnc'] <= 100 else 'MISSED'})")
    print(f"{'dnnc per character, with restarts':36}{med['dnnc_char']:>10.1f}")
    print(f"{'PyTorch eager, cache':36}{med['cache']:>10.1f}   ({args.threads} thread(s))")
    print(f"{'PyTorch eager, whole window':36}{med['window']:>10.1f}")
    print(f"PyTorch cache / dnnc decode: {med['cache'] / med['dnnc']:.2f}x")


# =================================================================================
# Part loss
# =================================================================================


def dnnc_lr(step):
    """dnnc's cosine(warmup_steps, decay_steps, min_lr) at the optimizer's step counter
    `step` (0 for the first step): compiler/passes/src/optimizer.rs `learning_rate`."""
    warm = float(WARMUP_STEPS)
    total = max(float(DECAY_STEPS), warm + 1.0)
    if step < warm:
        return LR * (step + 1) / max(warm, 1.0)
    t = min(step - warm, total - warm)
    return MIN_LR + 0.5 * (LR - MIN_LR) * (1.0 + math.cos(math.pi * t / (total - warm)))


def steps_per_epoch(n_train):
    return math.ceil(n_train / BATCH)


def train_windows():
    """The number of training windows, as sequence.windows cuts them (no numpy)."""
    with open(sequence.TEXT, encoding="utf-8") as f:
        n = len(f.read())
    a, b = (n * sequence.TRAIN_PPM[0]) // 1_000_000, (n * sequence.TRAIN_PPM[1]) // 1_000_000
    return (b - a - 1) // (sequence.WINDOW - 1)


def loss_worker(args):
    """Trains the recipe for `--steps` steps (default: 2 epochs); prints one JSON line."""
    import torch

    ce = torch.nn.functional.cross_entropy
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    ids, vocab = sequence.load_text()
    if len(vocab) != VOCAB:
        raise SystemExit(f"the text has {len(vocab)} distinct characters, not {VOCAB}")
    train = torch.from_numpy(sequence.windows(ids, sequence.TRAIN_PPM))
    test = torch.from_numpy(sequence.windows(ids, sequence.TEST_PPM))
    n = len(train)
    steps = args.steps or EPOCHS * steps_per_epoch(n)
    torch.manual_seed(args.seed)
    model = make_gpt(torch)
    kw = dict(lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY)
    try:
        opt, fused = torch.optim.AdamW(model.parameters(), fused=True, **kw), True
    except (RuntimeError, TypeError, ValueError):
        opt, fused = torch.optim.AdamW(model.parameters(), **kw), False

    def evaluate():
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(test), 128):
                w = test[i:i + 128]
                logits = model(w[:, :-1])
                total += float(ce(logits.reshape(-1, VOCAB), w[:, 1:].reshape(-1),
                                  reduction="sum"))
                count += w[:, 1:].numel()
        model.train()
        return total / count

    gen = torch.Generator().manual_seed(args.seed)
    history = []
    started = time.perf_counter()
    done, epoch = 0, 0
    while done < steps:
        order = torch.randperm(n, generator=gen)
        loss_sum, seen = 0.0, 0
        for i in range(0, n, BATCH):
            if done >= steps:
                break
            w = train[order[i:i + BATCH]]
            for group in opt.param_groups:
                group["lr"] = dnnc_lr(done)
            opt.zero_grad(set_to_none=True)
            loss = ce(model(w[:, :-1]).reshape(-1, VOCAB), w[:, 1:].reshape(-1))
            loss.backward()
            opt.step()
            done += 1
            loss_sum, seen = loss_sum + float(loss.detach()) * len(w), seen + len(w)
        epoch += 1
        history.append({"epoch": epoch, "steps": done, "train_loss": loss_sum / seen,
                        "test_loss": evaluate(), "seconds": time.perf_counter() - started})
    print(json.dumps({"steps": done, "history": history, "test_loss": history[-1]["test_loss"],
                      "train_loss": history[-1]["train_loss"],
                      "loop_s": time.perf_counter() - started,
                      "windows": [n, len(test)], "torch": torch.__version__,
                      "fused_adamw": fused}), flush=True)


def part_loss(args):
    os.makedirs(WORK, exist_ok=True)
    label = f"{args.steps} steps" if args.steps else f"{EPOCHS} epochs"
    print(f"== loss: the example's training run ({label}), dnnc then PyTorch eager, "
          f"{args.threads} thread(s), seed {args.seed}", flush=True)

    weights = os.path.join(WORK, "dnnc_loss.safetensors")
    log = os.path.join(WORK, "dnnc_loss.jsonl")
    sequence.fresh(weights, log)
    cmd = [args.dnnc, "train", os.path.relpath(EXAMPLE, ROOT), "--out",
           os.path.relpath(weights, ROOT), "--log", os.path.relpath(log, ROOT),
           "--threads", str(args.threads), "--seed", str(args.seed), "--quiet", "--no-plot"]
    if args.steps:
        cmd += ["--steps", str(args.steps)]
        # Beyond the example's 2 epochs (1022 steps each), more epochs.
        epochs = math.ceil(args.steps / steps_per_epoch(train_windows()))
        if epochs > EPOCHS:
            cmd += ["--epochs", str(epochs)]
    print("  dnnc:    " + " ".join(cmd), flush=True)
    dn_wall, _ = sequence.run_timed(cmd, None, args.timeout)
    dn_hist = sequence.read_log(log)
    dn = {"test_loss": dn_hist[-1]["test_loss"], "train_loss": dn_hist[-1]["train_loss"],
          "process_s": dn_wall, "loop_s": sum(h["seconds"] for h in dn_hist)}
    print(f"  dnnc:    test loss {dn['test_loss']:.4f}, process {dn_wall:.1f} s", flush=True)

    tcmd = [sys.executable, os.path.abspath(__file__), "--worker", "loss", "--threads",
            str(args.threads), "--seed", str(args.seed)]
    if args.steps:
        tcmd += ["--steps", str(args.steps)]
    print("  PyTorch: " + " ".join(tcmd), flush=True)
    pt_wall, proc = sequence.run_timed(tcmd, None, args.timeout,
                                       sequence.torch_env(args.threads))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError("the PyTorch worker printed no result")
    pt = json.loads(lines[-1])
    pt["process_s"] = pt_wall
    print(f"  PyTorch: test loss {pt['test_loss']:.4f}, process {pt_wall:.1f} s "
          f"(torch {pt['torch']}, fused AdamW {pt['fused_adamw']}, windows "
          f"{pt['windows'][0]} train / {pt['windows'][1]} test)", flush=True)

    d = dn["test_loss"] - pt["test_loss"]
    verdict = "met" if d <= TARGET_LOSS_DIFF else "MISSED"
    print(f"\nGPT test loss after {pt['steps']} steps: dnnc {dn['test_loss']:.4f}, PyTorch "
          f"eager {pt['test_loss']:.4f}  (dnnc - PyTorch = {d:+.4f}; target <= "
          f"+{TARGET_LOSS_DIFF}: {verdict})")
    print(f"last epoch's mean train loss: dnnc {dn['train_loss']:.4f}, PyTorch eager "
          f"{pt['train_loss']:.4f}")
    print(f"wall time: dnnc {dn['process_s']:.1f} s (training loop and test evaluations "
          f"{dn['loop_s']:.1f} s), PyTorch eager {pt['process_s']:.1f} s ({pt['loop_s']:.1f} s)")
    return {"dnnc": dn, "torch": pt, "diff": d}


# =================================================================================
# Part timing
# =================================================================================


def part_timing(args):
    import signal

    workers = {}
    for v in ("eager", "compile"):
        workers[v] = subprocess.Popen(
            [sys.executable, __file__, "--worker", v, "--threads", str(args.threads),
             "--iters", str(args.iters)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def stop_all_but(name):
        # An idle PyTorch keeps its OpenMP threads spinning a while: stopped, they
        # take no core from the system being timed.
        for v, p in workers.items():
            os.kill(p.pid, signal.SIGCONT if v == name else signal.SIGSTOP)

    results = {"dnnc": [], "eager": [], "compile": []}
    for r in range(args.rounds):
        stop_all_but("dnnc")
        out = subprocess.run(
            [args.dnnc, "bench", EXAMPLE, "--json", "--threads", str(args.threads),
             "--runs", str(max(args.iters, 5))],
            capture_output=True, text=True, check=True).stdout
        results["dnnc"].append(json.loads(out.strip().splitlines()[-1])["train_step_ms"])
        for v, p in workers.items():
            stop_all_but(v)
            p.stdin.write("go\n")
            p.stdin.flush()
            results[v].append(json.loads(p.stdout.readline())["train_ms"])
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    for p in workers.values():
        os.kill(p.pid, signal.SIGCONT)
    for p in workers.values():
        p.stdin.close()
        p.wait()
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\nGPT train step b12 x 64, median of {args.rounds} round(s), {args.threads} thread(s)")
    print(f"{'':24}{'dnnc':>10}{'PyTorch eager':>16}{'torch.compile':>16}")
    print(f"{'train step (ms)':24}{med['dnnc']:>10.1f}{med['eager']:>16.1f}{med['compile']:>16.1f}")
    print(f"PyTorch eager / dnnc: {med['eager'] / med['dnnc']:.2f}x;  "
          f"torch.compile / dnnc: {med['compile'] / med['dnnc']:.2f}x (target >= 1.5)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dnnc", default=os.path.join(ROOT, "target", "release", "dnnc"))
    ap.add_argument("--parts", default="timing",
                   help="comma-separated subset of timing,loss,decode (default timing)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="part timing: rounds")
    ap.add_argument("--iters", type=int, default=20, help="part timing: steps per round")
    ap.add_argument("--quick", action="store_true", help="part timing: 1 round, 5 steps")
    ap.add_argument("--steps", type=int, default=0,
                    help="part loss: stop both systems after this many steps (default: the "
                    "example's 2 epochs, 2044 steps); the schedule is unchanged")
    ap.add_argument("--seed", type=int, default=1,
                    help="part loss: the seed of both systems (default 1, the example's)")
    ap.add_argument("--timeout", type=float, default=7200.0,
                    help="part loss: seconds one training process may take")
    ap.add_argument("--worker")
    args = ap.parse_args()
    if args.worker == "loss":
        return loss_worker(args)
    if args.worker == "decode":
        return decode_worker(args)
    if args.worker:
        return worker(args.worker, args.threads, args.iters)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if not parts or not set(parts) <= {"timing", "loss", "decode"}:
        ap.error("--parts: a subset of timing,loss,decode")
    if args.steps < 0 or args.threads < 1:
        ap.error("--steps may not be negative, --threads must be at least 1")
    if args.quick:
        args.rounds, args.iters = 1, 5
    for i, part in enumerate(parts):
        if i:
            print()
        {"timing": part_timing, "loss": part_loss, "decode": part_decode}[part](args)


if __name__ == "__main__":
    main()
