#!/usr/bin/env python3
"""Benchmark: mixed-precision (bf16) training against f32, in dnnc and in PyTorch.

Times the training step (and inference) of the MNIST MLP and CNN examples in f32 and in
bf16 mixed precision, side by side in one run: dnnc with `--precision f32|bf16`, PyTorch
eager in f32 and under `torch.autocast("cpu", dtype=torch.bfloat16)`; optionally trains
both examples in dnnc at both precisions and compares their test accuracies.

    python3 bench/precision.py                 # both models, 5 rounds, 2 threads
    python3 bench/precision.py --quick         # 1 round, few iterations (smoke test)
    python3 bench/precision.py --model mlp --rounds 9 --json target/bench/precision.json
    python3 bench/precision.py --parts timing,accuracy   # + full training, both precisions
    python3 bench/precision.py --parts accuracy --seeds 1,2,3 --threads 1
    python3 bench/precision.py --systems dnnc --dnnc target/debug/dnnc

Models (`--model mlp`, `cnn` or `all`, the default):
  mlp - examples/mnist_mlp.dnn: MLP 784-256-256-10, ReLU; train batch 128.
  cnn - examples/mnist_cnn.dnn: x [B,28,28] -> [B,1,28,28] -> Conv2d(1,8,5) -> ReLU ->
        max pool 2x2 -> Conv2d(8,16,5) -> ReLU -> max pool 2x2 -> flatten (NCHW, 256) ->
        Dense(256,120) -> ReLU -> Dense(120,10); train batch 64 (the file's own).
Both: softmax cross-entropy with integer labels averaged over the batch, Adam lr 1e-3,
betas (0.9, 0.999), eps 1e-8, no weight decay.

Part `timing` (the default; `--rounds` interleaved rounds, the order of the four
columns rotating from round to round, both models in every round; the table shows the
median over rounds of each round's median, in ms):
  dnnc f32 / bf16   `dnnc bench FILE --precision f32|bf16 --json --threads T --runs N`
                    (a subprocess per round): its own medians of the training step
                    (`train_step_ms`), inference of one image (`infer_b1_us`) and of 256
                    (`infer_b256_us`), on its own random weights and data. `bf16`
                    rounds the operands of every matrix product and convolution
                    (forward, backward, evaluation) to bfloat16 and accumulates in f32;
                    parameters, Adam's state and everything else stay f32;
  PyTorch f32       a long-lived worker process per model and precision (this script
                    with `--worker`; torch.set_num_threads(T), OMP_NUM_THREADS=T):
                    zero_grad, forward, cross-entropy, backward, Adam step (fused) on a
                    fixed random batch (images uniform in [0, 1), labels 0..9),
                    PyTorch's default init; 10 warm-up steps (3 more each round), then
                    the median of `--iters-train` steps; inference: the logits under
                    torch.inference_mode(), medians of `--iters-b1` / `--iters-b256`
                    calls;
  PyTorch bf16      the same with forward + loss (and inference) inside
                    torch.autocast("cpu", dtype=torch.bfloat16): Linear and Conv2d run
                    in bf16 (oneDNN), their outputs are bf16 too, parameters and Adam
                    stay f32 (the usual "AMP" recipe).
  Printed: the table, and ratio lines with the targets of the dnnc project:
    dnnc bf16 / dnnc f32 step, MLP: target <= 0.4; CNN: target <= 0.5;
    PyTorch bf16 autocast step / dnnc bf16 step, MLP: target >= 3;
  and, for context without a target, PyTorch bf16 / f32 and PyTorch f32 / dnnc f32.

Part `accuracy` (not in the default set: it trains every model twice for its full
epochs): `dnnc train FILE --precision f32|bf16 --out target/bench/precision/... --log
....jsonl --threads T --quiet --no-plot` (the file's own epochs and seed unless
`--epochs` / `--seeds`; `--quick`: 1 epoch), per model and seed, f32 and bf16 in
alternating order; reads the log's last record (`test_accuracy`, `test_loss`,
`train_loss`, `seconds` per epoch) and prints both precisions' test accuracy and loss
(mean over seeds) and bf16 - f32.

Caveats: this machine is an AMD EPYC with AVX-512 BF16 but no AMX: dnnc's bf16
products run as `vdpbf16ps` (pairs of bf16 products accumulated in f32: at most about
twice the multiply-adds of an f32 FMA of the same width), and PyTorch's bf16 autocast
runs oneDNN's AVX-512 BF16 kernels. The targets above were set assuming an Intel CPU
with AMX (tile matrix multiplies, several times the AVX-512 bf16 throughput); without
AMX the bf16 / f32 ratios cannot approach them on compute alone, so read them as "what
this CPU gives", and on small models (the MLP step takes well under a millisecond) the
rounding, packing and element-wise work that bf16 does not speed up weighs heavily.
PyTorch's autocast also rounds the products' outputs to bf16 (dnnc keeps them f32), so
the two bf16 columns are not the same arithmetic. The PyTorch workers wait passively
(OMP_WAIT_POLICY=PASSIVE) so that their threads do not spin while dnnc runs; the
machine's other load shows in the timings (with --threads below the CPUs allowed, every
process is restricted to the first N CPUs unless --no-pin).

The driver needs only the standard library; the workers need torch (and numpy).
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "bench", "precision")

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sequence  # noqa: E402  (process helpers and the worker handle)

MODELS = {
    "mlp": {"file": "examples/mnist_mlp.dnn", "title": "MNIST MLP 784-256-256-10",
            "name": "MLP", "batch": 128, "image": (784,)},
    "cnn": {"file": "examples/mnist_cnn.dnn",
            "title": "MNIST CNN conv5x5(8)-pool-conv5x5(16)-pool-256-120-10",
            "name": "CNN", "batch": 64, "image": (28, 28)},
}
PRECISIONS = ["f32", "bf16"]
INFER_BATCH = 256
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8
WORKLOADS = ["train", "b1", "b256"]
DNNC_KEYS = {"train": ("train_step_ms", 1.0), "b1": ("infer_b1_us", 1e-3),
             "b256": ("infer_b256_us", 1e-3)}  # key of `dnnc bench --json`, to ms

# Columns: (system, precision).
COLUMNS = [("dnnc", "f32"), ("dnnc", "bf16"), ("torch", "f32"), ("torch", "bf16")]
COLUMN_LABELS = {("dnnc", "f32"): "dnnc f32", ("dnnc", "bf16"): "dnnc bf16",
                 ("torch", "f32"): "PyTorch f32", ("torch", "bf16"): "PyTorch bf16"}

# Ratios of training steps: (model, name) -> (numerator column, denominator column,
# target or None). A target is (">=" or "<=", value).
RATIOS = [
    ("dnnc bf16 / dnnc f32 step", ("dnnc", "bf16"), ("dnnc", "f32"),
     {"mlp": ("<=", 0.4), "cnn": ("<=", 0.5)}),
    ("PyTorch bf16 autocast step / dnnc bf16 step", ("torch", "bf16"), ("dnnc", "bf16"),
     {"mlp": (">=", 3.0)}),
    ("PyTorch bf16 autocast / PyTorch f32 step", ("torch", "bf16"), ("torch", "f32"), {}),
    ("PyTorch f32 step / dnnc f32 step", ("torch", "f32"), ("dnnc", "f32"), {}),
]


# =================================================================================
# Worker: PyTorch, one process per model and precision
# =================================================================================


def torch_net(torch, model):
    nn = torch.nn
    if model == "mlp":
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                             nn.Linear(256, 10))
    return nn.Sequential(
        nn.Unflatten(1, (1, 28)),  # [B, 28, 28] -> [B, 1, 28, 28]
        nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2),  # [B, 8, 12, 12]
        nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2),  # [B, 16, 4, 4]
        nn.Flatten(),  # NCHW order, 256
        nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 10),
    )


def worker_time(args):
    """Long-lived: one JSON line when ready, then one JSON line of medians (ms) per
    command line on stdin, on the protocol channel (stdout; prints go to stderr)."""
    import contextlib

    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(msg):
        proto.write(json.dumps(msg) + "\n")
        proto.flush()

    try:
        import torch

        started = time.perf_counter()
        torch.set_num_threads(args.threads)
        torch.set_num_interop_threads(1)
        torch.manual_seed(0)
        spec = MODELS[args.model]
        bf16 = args.precision == "bf16"
        net = torch_net(torch, args.model)
        try:
            opt = torch.optim.Adam(net.parameters(), lr=LR, betas=(BETA1, BETA2), eps=EPS,
                                   fused=True)
            fused = True
        except (TypeError, RuntimeError):
            opt = torch.optim.Adam(net.parameters(), lr=LR, betas=(BETA1, BETA2), eps=EPS)
            fused = False
        gen = torch.Generator().manual_seed(1)
        images = torch.rand((INFER_BATCH,) + spec["image"], generator=gen)
        x_train = images[:spec["batch"]].clone()
        y_train = torch.randint(0, 10, (spec["batch"],), generator=gen)
        x_b1 = images[:1].clone()
        loss_fn = torch.nn.functional.cross_entropy

        def amp():
            if bf16:
                return torch.autocast("cpu", dtype=torch.bfloat16)
            return contextlib.nullcontext()

        def step():
            opt.zero_grad(set_to_none=True)
            with amp():
                loss = loss_fn(net(x_train), y_train)
            loss.backward()
            opt.step()
            return loss

        def infer(x):
            with torch.inference_mode(), amp():
                return net(x)

        def median_ms(fn, n):
            times = []
            for _ in range(n):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            return statistics.median(times) * 1e3

        for _ in range(10):
            loss = step()
        for _ in range(5):
            logits = infer(x_b1)
            infer(images)
        try:
            bf16_hw = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except Exception:  # noqa: BLE001
            bf16_hw = None
        send({"ready": True, "torch": torch.__version__, "fused_adam": fused,
              "logits_dtype": str(logits.dtype).removeprefix("torch."),
              "loss": float(loss), "mkldnn_bf16": bf16_hw,
              "warmup_s": time.perf_counter() - started})
    except Exception as e:  # noqa: BLE001
        send({"error": f"{type(e).__name__}: {e}"})
        return

    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("cmd") != "round":
            break
        for _ in range(3):
            step()
        send({"train": median_ms(step, msg["iters_train"]),
              "b1": median_ms(lambda: infer(x_b1), msg["iters_b1"]),
              "b256": median_ms(lambda: infer(images), msg["iters_b256"])})


# =================================================================================
# Driver
# =================================================================================


pin_cpus = sequence.pin_cpus
run_timed = sequence.run_timed


def torch_env(threads):
    """sequence.py's, with passive OpenMP waits: an idle worker's threads must not spin
    while dnnc runs."""
    return {**sequence.torch_env(threads), "OMP_WAIT_POLICY": "PASSIVE"}


def dnnc_bench(args, cpus, model, precision):
    """`dnnc bench` once; returns {workload: ms}."""
    spec = MODELS[model]
    cmd = [args.dnnc, "bench", spec["file"], "--precision", precision, "--json",
           "--threads", str(args.threads), "--runs", str(args.dnnc_runs)]
    _, proc = run_timed(cmd, cpus, args.timeout)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if res.get("batch") not in (None, spec["batch"]):
        raise RuntimeError(f"`dnnc bench` ran batch {res['batch']}, not {spec['batch']}")
    return {w: float(res[key]) * scale for w, (key, scale) in DNNC_KEYS.items()}


class TimeWorker(sequence.JsonWorker):
    """The driver's handle on a PyTorch timing worker of one model and precision."""

    def __init__(self, args, cpus, model, precision):
        super().__init__(args, cpus, f"{model}_{precision}", __file__,
                         ["--model", model, "--precision", precision],
                         env=torch_env(args.threads))


def verdict(value, target):
    if target is None:
        return "context, no target"
    op, bound = target
    ok = value <= bound if op == "<=" else value >= bound
    return f"target {op} {bound:g}: {'met' if ok else 'MISSED'}"


def part_timing(args, cpus, systems, notes):
    print(f"\n== timing: {args.rounds} round(s); dnnc `bench --runs {args.dnnc_runs}`, "
          f"PyTorch medians of {args.iters_train} steps / {args.iters_b1} b1 / "
          f"{args.iters_b256} b256 calls", flush=True)
    workers, info = {}, {}
    if "torch" in systems:
        pending = {}
        for model in args.models:  # started together; their warm-ups are not timed
            for p in PRECISIONS:
                pending[(model, p)] = TimeWorker(args, cpus, model, p)
        for (model, p), w in pending.items():
            try:
                msg = w.recv(args.timeout)
            except (RuntimeError, ValueError) as e:
                msg = {"error": str(e)}
            if "error" in msg:
                notes.append(f"PyTorch {model} {p}: unavailable ({msg['error']})")
                print(f"  PyTorch {model} {p}: unavailable ({msg['error']})", flush=True)
                w.proc.kill()
                w.close()
                continue
            workers[(model, p)], info[f"{model}/{p}"] = w, msg
            print(f"  PyTorch {model} {p} ready (warm-up {msg['warmup_s']:.1f} s, logits "
                  f"{msg['logits_dtype']})", flush=True)
            if p == "bf16" and msg.get("logits_dtype") != "bfloat16":
                notes.append(f"PyTorch {model} bf16: autocast gave {msg['logits_dtype']} "
                             "logits, not bfloat16")
    columns = {m: [c for c in COLUMNS if (c[0] == "dnnc" and "dnnc" in systems)
                   or (c[0] == "torch" and (m, c[1]) in workers)] for m in args.models}
    samples = {(m, c, w): [] for m in args.models for c in columns[m] for w in WORKLOADS}
    for rnd in range(args.rounds):
        for m in args.models:
            order = columns[m]
            shift = rnd % len(order) if order else 0
            for c in order[shift:] + order[:shift]:
                try:
                    if c[0] == "dnnc":
                        res = dnnc_bench(args, cpus, m, c[1])
                    else:
                        workers[(m, c[1])].send(
                            {"cmd": "round", "iters_train": args.iters_train,
                             "iters_b1": args.iters_b1, "iters_b256": args.iters_b256})
                        res = workers[(m, c[1])].recv(args.timeout)
                    for w in WORKLOADS:
                        samples[(m, c, w)].append(float(res[w]))
                except (RuntimeError, OSError, ValueError, KeyError,
                        subprocess.TimeoutExpired) as e:
                    notes.append(f"timing {m} {COLUMN_LABELS[c]}, round {rnd + 1}: "
                                 f"FAILED: {e}")
        print(f"round {rnd + 1}/{args.rounds} done", flush=True)
    for w in workers.values():
        w.close()

    med = {k: statistics.median(v) for k, v in samples.items() if v}
    report = {}
    for m in args.models:
        spec = MODELS[m]
        cols = [c for c in columns[m] if (m, c, "train") in med]
        title = (f"{spec['title']}, median of {args.rounds} round(s), "
                 f"{args.threads} thread(s), ms")
        print(f"\n{title}")
        width = 26
        print("".ljust(width) + "".join(f"{COLUMN_LABELS[c]:>14}" for c in cols))
        rows = [("train", f"train step b{spec['batch']}", "{:.3f}"),
                ("b1", "inference b1", "{:.4f}"), ("b256", "inference b256", "{:.3f}")]
        for w, label, fmt in rows:
            print(label.ljust(width) + "".join(
                f"{fmt.format(med[(m, c, w)]):>14}" if (m, c, w) in med else f"{'-':>14}"
                for c in cols))
        ratios = {}
        print()
        for name, num, den, targets in RATIOS:
            if (m, num, "train") not in med or (m, den, "train") not in med:
                continue
            r = med[(m, num, "train")] / med[(m, den, "train")]
            target = targets.get(m)
            ratios[name] = {"value": r, "target": list(target) if target else None}
            print(f"{spec['name']}: {name}: {r:.2f}x ({verdict(r, target)})")
        for w, label in (("b1", "inference b1"), ("b256", "inference b256")):
            num, den = ("dnnc", "bf16"), ("dnnc", "f32")
            if (m, num, w) in med and (m, den, w) in med:
                r = med[(m, num, w)] / med[(m, den, w)]
                ratios[f"dnnc bf16 / dnnc f32 {label}"] = {"value": r, "target": None}
                print(f"{spec['name']}: dnnc bf16 / dnnc f32 {label}: {r:.2f}x "
                      "(context, no target)")
        report[m] = {
            "medians_ms": {f"{COLUMN_LABELS[c]}/{w}": med[(m, c, w)] for c in cols
                           for w in WORKLOADS if (m, c, w) in med},
            "rounds_ms": {f"{COLUMN_LABELS[c]}/{w}": samples[(m, c, w)] for c in columns[m]
                          for w in WORKLOADS},
            "ratios": ratios,
        }
    for key, m in info.items():
        print(f"PyTorch {key}: torch {m.get('torch')}, Adam fused={m.get('fused_adam')}, "
              f"logits {m.get('logits_dtype')}, oneDNN bf16 supported={m.get('mkldnn_bf16')}")
    return {"models": report, "workers": info}


def read_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def dnnc_train(args, cpus, model, precision, seed):
    """`dnnc train` for the file's epochs (or --epochs); returns its last record."""
    tag = f"{model}_{precision}" + (f"_s{seed}" if seed is not None else "")
    weights = os.path.join(args.work, f"{tag}.safetensors")
    log = os.path.join(args.work, f"{tag}.jsonl")
    for p in (weights, log):
        if os.path.exists(p):
            os.remove(p)
    cmd = [args.dnnc, "train", MODELS[model]["file"], "--precision", precision, "--out",
           weights, "--log", log, "--threads", str(args.threads), "--quiet", "--no-plot"]
    if args.epochs:
        cmd += ["--epochs", str(args.epochs)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    wall, proc = run_timed(cmd, cpus, args.timeout)
    history = read_log(log)
    if not history:
        raise RuntimeError(f"`{' '.join(cmd)}` wrote no log records")
    last = history[-1]
    if "test_accuracy" not in last:
        raise RuntimeError(f"the log's last record has no test_accuracy: {last}")
    summary = [ln for ln in proc.stdout.splitlines() if ln.startswith("trained ")]
    return {"test_accuracy": last["test_accuracy"], "test_loss": last.get("test_loss"),
            "train_loss": last.get("train_loss"), "epochs": last.get("epoch", len(history)),
            "loop_s": sum(h.get("seconds", 0.0) for h in history), "process_s": wall,
            "summary": summary[-1] if summary else None, "command": " ".join(cmd)}


def part_accuracy(args, cpus, notes):
    seeds = args.seeds or [None]
    print(f"\n== accuracy: `dnnc train` in f32 and bf16, "
          f"{'epochs ' + str(args.epochs) if args.epochs else 'the files own epochs'}, "
          f"seed(s) {', '.join('file' if s is None else str(s) for s in seeds)}", flush=True)
    report = {}
    for m in args.models:
        runs = {p: [] for p in PRECISIONS}
        for i, seed in enumerate(seeds):
            for p in (PRECISIONS if i % 2 == 0 else PRECISIONS[::-1]):
                try:
                    r = dnnc_train(args, cpus, m, p, seed)
                except (RuntimeError, OSError, ValueError, KeyError,
                        subprocess.TimeoutExpired) as e:
                    notes.append(f"accuracy {m} {p} seed {seed}: FAILED: {e}")
                    print(f"  {m} {p}: FAILED: {e}", file=sys.stderr)
                    continue
                r["seed"] = seed
                runs[p].append(r)
                print(f"  {m} {p:<4} seed {'file' if seed is None else seed}: "
                      f"{r['epochs']} epoch(s), test accuracy {r['test_accuracy']:.4f}  "
                      f"test loss {r['test_loss']:.4f}  loop {r['loop_s']:.1f} s  "
                      f"process {r['process_s']:.1f} s", flush=True)
        cols = [p for p in PRECISIONS if runs[p]]
        summary = {p: {k: statistics.mean(r[k] for r in runs[p])
                       for k in ("test_accuracy", "test_loss", "loop_s")} for p in cols}
        report[m] = {"mean": summary, "runs": runs}
    print()
    title = f"dnnc train, mean over {len(seeds)} seed(s)"
    width = max(len(title), 26)
    print(title.ljust(width) + f"{'f32':>10}{'bf16':>10}{'bf16 - f32':>12}")
    for m in args.models:
        s = report[m]["mean"]
        for key, label, fmt in (("test_accuracy", "test accuracy", "{:.4f}"),
                                ("test_loss", "test loss", "{:.4f}"),
                                ("loop_s", "training loop (s)", "{:.2f}")):
            cells = [fmt.format(s[p][key]) if p in s else "-" for p in PRECISIONS]
            diff = (f"{s['bf16'][key] - s['f32'][key]:+.4f}"
                    if len(s) == 2 and key != "loop_s" else "")
            print(f"{MODELS[m]['name']} {label}".ljust(width)
                  + "".join(f"{c:>10}" for c in cells) + f"{diff:>12}")
        if len(s) == 2:
            report[m]["accuracy_diff"] = s["bf16"]["test_accuracy"] - s["f32"]["test_accuracy"]
    return report


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Mixed-precision (bf16) training against f32: dnnc --precision and "
        "PyTorch autocast, on the MNIST MLP and CNN.")
    p.add_argument("--dnnc", help="dnnc binary (default: target/release/dnnc if built, "
                   "else target/debug/dnnc)")
    p.add_argument("--threads", type=int, default=2, help="threads per system (default 2)")
    p.add_argument("--rounds", type=int, default=5, help="timing rounds (default 5)")
    p.add_argument("--model", default="all", choices=["mlp", "cnn", "all"],
                   help="which model (default all)")
    p.add_argument("--parts", default="timing",
                   help="comma-separated subset of timing,accuracy (default timing)")
    p.add_argument("--systems", default="dnnc,torch", help="subset of dnnc,torch")
    p.add_argument("--iters-train", type=int, default=50,
                   help="PyTorch timed steps per round (default 50)")
    p.add_argument("--iters-b1", type=int, default=300,
                   help="PyTorch batch-1 inferences per round (default 300)")
    p.add_argument("--iters-b256", type=int, default=30,
                   help="PyTorch batch-256 inferences per round (default 30)")
    p.add_argument("--dnnc-runs", type=int, default=21,
                   help="`dnnc bench --runs` per round (default 21)")
    p.add_argument("--epochs", type=int,
                   help="part accuracy: override the files' epochs (--quick: 1)")
    p.add_argument("--seeds", default="",
                   help="part accuracy: comma-separated seeds (default: the files' seed)")
    p.add_argument("--quick", action="store_true",
                   help="1 round, few iterations, 1 epoch in part accuracy (smoke test)")
    p.add_argument("--no-pin", action="store_true",
                   help="do not restrict every process to the first N CPUs")
    p.add_argument("--timeout", type=float, default=1800.0,
                   help="seconds one process may take (default 1800)")
    p.add_argument("--json", metavar="PATH", help="also write all results to PATH")
    p.add_argument("--work", default=WORK, help=argparse.SUPPRESS)
    p.add_argument("--worker", choices=["time"], help=argparse.SUPPRESS)
    p.add_argument("--precision", choices=PRECISIONS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        args.model = args.model if args.model != "all" else "mlp"
        return args
    if args.quick:
        args.rounds, args.dnnc_runs = 1, 5
        args.iters_train, args.iters_b1, args.iters_b256 = 10, 50, 5
        args.epochs = args.epochs or 1
    if args.dnnc is None:
        release = os.path.join(ROOT, "target", "release", "dnnc")
        args.dnnc = release if os.path.exists(release) else os.path.join(
            ROOT, "target", "debug", "dnnc")
    args.dnnc = os.path.abspath(args.dnnc)
    args.models = list(MODELS) if args.model == "all" else [args.model]
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        p.error("--seeds: a comma-separated list of integers")
    args.parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not set(args.parts) <= {"timing", "accuracy"} or not args.parts:
        p.error("--parts: a subset of timing,accuracy")
    if not set(args.systems) <= {"dnnc", "torch"} or not args.systems:
        p.error("--systems: a subset of dnnc,torch")
    if min(args.threads, args.rounds, args.iters_train, args.iters_b1, args.iters_b256,
           args.dnnc_runs, args.epochs or 1) < 1:
        p.error("--threads, --rounds, --iters-*, --dnnc-runs and --epochs must be at "
                "least 1")
    return args


def main(argv):
    args = parse_args(argv)
    if args.worker:
        worker_time(args)
        return 0

    notes, systems = [], []
    for s in args.systems:
        if s == "dnnc":
            if not os.path.exists(args.dnnc):
                notes.append(f"dnnc: skipped (no binary at {args.dnnc}; "
                             "cargo build --release -p dnnc)")
                continue
            help_text = subprocess.run([args.dnnc, "bench", "--help"], capture_output=True,
                                       text=True, timeout=60).stdout
            if "--precision" not in help_text:
                notes.append(f"dnnc: skipped ({args.dnnc} has no --precision; rebuild it)")
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
    parts = [p for p in args.parts if p == "timing" or "dnnc" in systems]
    if "accuracy" in args.parts and "accuracy" not in parts:
        notes.append("accuracy: skipped (needs dnnc)")
    if not systems or not parts:
        print("precision.py: nothing to run", *notes, sep="\n", file=sys.stderr)
        return 2
    os.makedirs(args.work, exist_ok=True)
    cpus = pin_cpus(args.threads, args.no_pin)
    cpu_name = ""
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
        cpu_name = next((ln.split(":", 1)[1].strip() for ln in lines
                         if ln.startswith("model name")), "")
        flags = next((ln.split(":", 1)[1].split() for ln in lines
                      if ln.startswith("flags")), [])
        cpu_name += (f" (avx512_bf16 {'yes' if 'avx512_bf16' in flags else 'no'}, "
                     f"amx_bf16 {'yes' if 'amx_bf16' in flags else 'no'})")
    except OSError:
        pass
    print(f"precision.py: models {', '.join(args.models)}, systems {', '.join(systems)}, "
          f"parts {', '.join(parts)}, {args.threads} thread(s), CPUs "
          f"{','.join(map(str, cpus)) if cpus else 'all allowed'}, "
          f"dnnc {args.dnnc if 'dnnc' in systems else '-'}", flush=True)
    if cpu_name:
        print(f"CPU: {cpu_name}", flush=True)

    report = {"config": {"threads": args.threads, "rounds": args.rounds,
                         "models": args.models, "iters_train": args.iters_train,
                         "iters_b1": args.iters_b1, "iters_b256": args.iters_b256,
                         "dnnc_runs": args.dnnc_runs, "dnnc": args.dnnc, "cpus": cpus,
                         "cpu": cpu_name, "epochs": args.epochs, "seeds": args.seeds,
                         "units": "ms"}}
    started = time.perf_counter()
    if "timing" in parts:
        report["timing"] = part_timing(args, cpus, systems, notes)
    if "accuracy" in parts:
        report["accuracy"] = part_accuracy(args, cpus, notes)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    for n in notes:
        print(f"note: {n}")
    report["notes"] = notes
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=str)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
