#!/usr/bin/env python3
"""Race: `dnnc train examples/mnist_mlp.dnn` against the same recipe in PyTorch (and JAX).

Trains the MNIST MLP of examples/mnist_mlp.dnn end to end, each system in its own
process, interleaved and repeated, and prints the medians of wall time and final test
accuracy side by side. See bench/PEERS.md ("Training race") for method and caveats.

    python3 bench/train_race.py                 # 3 rounds, 2 threads
    python3 bench/train_race.py --quick         # 1 round
    python3 bench/train_race.py --threads 1 --rounds 5 --json target/bench/train_race.json
    python3 bench/train_race.py --systems dnnc,torch --dnnc target/debug/dnnc

The recipe (that of the example): 8000 training / 2000 test digits from
examples/data/mnist/*.gz (IDX, gzip), images / 255.0 flattened to 784; MLP
Linear(784,256)-ReLU-Linear(256,256)-ReLU-Linear(256,10), mean softmax cross-entropy,
Adam lr 1e-3 (betas 0.9/0.999, eps 1e-8), batch 128 (the last batch of an epoch holds
the remaining 64), shuffled every epoch (seed 42), 10 epochs; after every epoch the
test split is evaluated in batches of 128 (loss and accuracy), and every step reads
back its loss and batch accuracy, as dnnc does.

Per run and system:
  process - wall time of the whole process: start-up, imports, data loading,
            compilation, training, evaluation, saving (dnnc writes its weights);
  loop    - the training loop: the sum of the epochs' times, each including that
            epoch's test evaluation (dnnc: the `seconds` of its --log lines, which
            also include compiling its steps on first use; JAX likewise includes jit);
  epoch   - loop / epochs;
  epoch 2+ - the median time of epochs 2..E (without first-use compilation);
  outside - process - loop (start-up, imports, data loading, saving);
  test acc - the test accuracy after the last epoch.

dnnc runs as `dnnc train FILE --quiet --log LOG --out OUT --threads N`. The peers run
as this script started with `--worker torch|jax` (same Python interpreter), so their
process time includes importing the framework. PyTorch: eager, torch.set_num_threads(N),
Adam(fused=True) where the build supports it on CPU. JAX: the whole step (forward,
backward, hand-written Adam) under one jax.jit, the evaluation under another.

The driver itself needs only the standard library; the workers need numpy and torch /
jax. A peer whose packages are missing is skipped with a note.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "examples", "data", "mnist")
MODEL = os.path.join(ROOT, "examples", "mnist_mlp.dnn")

HIDDEN, CLASSES, FEATURES = 256, 10, 784
BATCH, LR, BETA1, BETA2, EPS, SEED = 128, 1e-3, 0.9, 0.999, 1e-8, 42

ALL_SYSTEMS = ["dnnc", "torch", "jax"]
PEER_MODULES = {"torch": ["numpy", "torch"], "jax": ["numpy", "jax"]}
LABELS = {"dnnc": "dnnc", "torch": "PyTorch eager", "jax": "JAX jit"}
METRICS = [  # (key, column header, format)
    ("process_s", "process (s)", "{:.2f}"),
    ("loop_s", "loop (s)", "{:.2f}"),
    ("epoch_s", "epoch (s)", "{:.3f}"),
    ("later_epoch_s", "epoch 2+ (s)", "{:.3f}"),
    ("outside_s", "outside (s)", "{:.2f}"),
    ("test_accuracy", "test acc", "{:.4f}"),
]
RATIO_METRICS = ["process_s", "loop_s", "epoch_s", "later_epoch_s"]


# ---------------------------------------------------------------------------------
# Workers (run in their own process: `train_race.py --worker NAME`)


def load_idx(name):
    """One IDX file (gzip) as a numpy array of its stored shape."""
    import gzip

    import numpy as np

    with gzip.open(os.path.join(DATA, name), "rb") as f:
        raw = f.read()
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != 0x08:
        raise ValueError(f"{name}: only unsigned-byte IDX files are supported")
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist():
    """(x_train, y_train, x_test, y_test): float32 [N, 784] in [0, 1], int64 labels."""
    import numpy as np

    out = []
    for split in ("train", "test"):
        x = load_idx(f"{split}-images-idx3-ubyte.gz").astype(np.float32) / np.float32(255.0)
        y = load_idx(f"{split}-labels-idx1-ubyte.gz").astype(np.int64)
        out += [x.reshape(len(x), -1), y]
    return tuple(out)


def torch_worker(threads, epochs):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    x_tr, y_tr, x_te, y_te = (torch.from_numpy(a.copy()) for a in load_mnist())
    model = torch.nn.Sequential(
        torch.nn.Linear(FEATURES, HIDDEN), torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, CLASSES),
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    adam = dict(lr=LR, betas=(BETA1, BETA2), eps=EPS)
    try:
        opt = torch.optim.Adam(model.parameters(), fused=True, **adam)
        fused = True
    except (RuntimeError, TypeError, ValueError):
        opt = torch.optim.Adam(model.parameters(), **adam)
        fused = False
    gen = torch.Generator().manual_seed(SEED)
    n, n_test = len(x_tr), len(x_te)
    history = []
    for epoch in range(epochs):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=gen)
        loss_sum = correct = 0.0
        for i in range(0, n, BATCH):
            idx = order[i:i + BATCH]
            xb, yb = x_tr[idx], y_tr[idx]
            logits = model(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
        model.eval()
        test_loss = test_correct = 0.0
        with torch.no_grad():
            for i in range(0, n_test, BATCH):
                xb, yb = x_te[i:i + BATCH], y_te[i:i + BATCH]
                logits = model(xb)
                test_loss += loss_fn(logits, yb).item() * len(yb)
                test_correct += (logits.argmax(1) == yb).sum().item()
        history.append({
            "epoch": epoch + 1, "seconds": time.perf_counter() - started,
            "train_loss": loss_sum / n, "train_accuracy": correct / n,
            "test_loss": test_loss / n_test, "test_accuracy": test_correct / n_test,
        })
    return history, {"torch": torch.__version__, "fused_adam": fused}


def jax_worker(threads, epochs):
    import jax
    import jax.numpy as jnp
    import numpy as np

    x_tr, y_tr, x_te, y_te = load_mnist()
    y_tr, y_te = y_tr.astype(np.int32), y_te.astype(np.int32)

    # PyTorch's default Linear init: W and b uniform in +-1/sqrt(fan_in); W is [in, out].
    keys = jax.random.split(jax.random.PRNGKey(SEED), 6)
    params = []
    for li, (fan_in, fan_out) in enumerate([(FEATURES, HIDDEN), (HIDDEN, HIDDEN),
                                            (HIDDEN, CLASSES)]):
        bound = 1.0 / np.sqrt(fan_in)
        w = jax.random.uniform(keys[2 * li], (fan_in, fan_out), jnp.float32, -bound, bound)
        b = jax.random.uniform(keys[2 * li + 1], (fan_out,), jnp.float32, -bound, bound)
        params.append((w, b))

    def forward(p, x):
        for w, b in p[:-1]:
            x = jax.nn.relu(x @ w + b)
        w, b = p[-1]
        return x @ w + b

    def loss_and_logits(p, x, y):
        logits = forward(p, x)
        logp = jax.nn.log_softmax(logits)
        loss = -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
        return loss, logits

    def metrics(loss, logits, y):
        return loss, jnp.mean((jnp.argmax(logits, axis=1) == y).astype(jnp.float32))

    @jax.jit
    def train_step(state, x, y):
        p, m, v, t = state
        (loss, logits), g = jax.value_and_grad(loss_and_logits, has_aux=True)(p, x, y)
        t = t + 1
        m = jax.tree_util.tree_map(lambda m_, g_: BETA1 * m_ + (1 - BETA1) * g_, m, g)
        v = jax.tree_util.tree_map(lambda v_, g_: BETA2 * v_ + (1 - BETA2) * g_ * g_, v, g)
        c1, c2 = 1 - BETA1 ** t, 1 - BETA2 ** t
        p = jax.tree_util.tree_map(
            lambda p_, m_, v_: p_ - LR * (m_ / c1) / (jnp.sqrt(v_ / c2) + EPS), p, m, v)
        return (p, m, v, t), metrics(loss, logits, y)

    @jax.jit
    def eval_step(p, x, y):
        return metrics(*loss_and_logits(p, x, y), y)

    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    state = (params, zeros, zeros, jnp.zeros((), jnp.float32))
    rng = np.random.RandomState(SEED)
    n, n_test = len(x_tr), len(x_te)
    history = []
    for epoch in range(epochs):
        started = time.perf_counter()
        order = rng.permutation(n)
        loss_sum = correct = 0.0
        for i in range(0, n, BATCH):
            idx = order[i:i + BATCH]
            state, (loss, acc) = train_step(state, x_tr[idx], y_tr[idx])
            loss_sum += float(loss) * len(idx)  # reads back every step, as dnnc does
            correct += float(acc) * len(idx)
        test_loss = test_correct = 0.0
        for i in range(0, n_test, BATCH):
            loss, acc = eval_step(state[0], x_te[i:i + BATCH], y_te[i:i + BATCH])
            k = len(y_te[i:i + BATCH])
            test_loss += float(loss) * k
            test_correct += float(acc) * k
        history.append({
            "epoch": epoch + 1, "seconds": time.perf_counter() - started,
            "train_loss": loss_sum / n, "train_accuracy": correct / n,
            "test_loss": test_loss / n_test, "test_accuracy": test_correct / n_test,
        })
    return history, {"jax": jax.__version__, "backend": jax.default_backend()}


WORKERS = {"torch": torch_worker, "jax": jax_worker}


def worker_main(name, threads, epochs):
    """Train, then print one JSON line: {"history": [...], "info": {...}}."""
    history, info = WORKERS[name](threads, epochs)
    print(json.dumps({"history": history, "info": info}), flush=True)


# ---------------------------------------------------------------------------------
# Driver


def pin_cpus(threads, no_pin):
    """The CPUs every system is restricted to (the first `threads` allowed), or None."""
    if no_pin or not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[:threads] if threads < len(allowed) else None


def peer_env(name, threads):
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if name == "torch":
        env["OMP_NUM_THREADS"] = str(threads)
        env["MKL_NUM_THREADS"] = str(threads)
    elif name == "jax":
        env["JAX_PLATFORMS"] = "cpu"
        if threads == 1:
            flags = env.get("XLA_FLAGS", "")
            flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
            env["XLA_FLAGS"] = flags.strip()
    return env


def run_timed(cmd, env, cpus, timeout):
    """Run cmd; return (wall seconds, CompletedProcess)."""
    preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec)
    return time.perf_counter() - started, proc


def summarise(wall, history, epochs):
    if len(history) != epochs:
        raise RuntimeError(f"expected {epochs} epochs, got {len(history)}")
    seconds = [h["seconds"] for h in history]
    loop = sum(seconds)
    return {
        "process_s": wall, "loop_s": loop, "epoch_s": loop / epochs,
        "later_epoch_s": statistics.median(seconds[1:] or seconds),
        "outside_s": wall - loop, "test_accuracy": history[-1]["test_accuracy"],
        "history": history,
    }


def failure(proc):
    tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-8:])
    return RuntimeError(f"exit status {proc.returncode}\n{tail}")


def run_dnnc(args, cpus, tmp):
    log, out = os.path.join(tmp, "log.jsonl"), os.path.join(tmp, "w.safetensors")
    for f in (log, out):
        if os.path.exists(f):
            os.remove(f)
    cmd = [args.dnnc, "train", args.model, "--quiet", "--log", log, "--out", out,
           "--threads", str(args.threads)]
    if args.epochs is not None:
        cmd += ["--epochs", str(args.epochs)]
    wall, proc = run_timed(cmd, dict(os.environ), cpus, args.timeout)
    if proc.returncode != 0:
        raise failure(proc)
    with open(log) as f:
        history = [json.loads(line) for line in f if line.strip()]
    return summarise(wall, history, args.epochs or len(history)), None


def run_peer(name, args, cpus):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name,
           "--threads", str(args.threads), "--epochs", str(args.epochs or 10)]
    wall, proc = run_timed(cmd, peer_env(name, args.threads), cpus, args.timeout)
    if proc.returncode != 0:
        raise failure(proc)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError("the worker printed no result")
    msg = json.loads(lines[-1])
    return summarise(wall, msg["history"], args.epochs or 10), msg["info"]


def fmt_table(systems, medians):
    headers = [h for _, h, _ in METRICS]
    width = max(len("system"), *(len(LABELS[s]) for s in systems))
    colw = [max(len(h), 8) for h in headers]
    lines = ["system".ljust(width) + "".join("  " + h.rjust(w) for h, w in zip(headers, colw))]
    for s in systems:
        cells = [f.format(medians[s][k]) for k, _, f in METRICS]
        lines.append(LABELS[s].ljust(width)
                     + "".join("  " + c.rjust(w) for c, w in zip(cells, colw)))
    return lines


def fmt_ratios(systems, medians):
    peers = [s for s in systems if s != "dnnc"]
    if "dnnc" not in medians or not peers:
        return []
    heads = {"process_s": "process", "loop_s": "loop", "epoch_s": "epoch",
             "later_epoch_s": "epoch 2+"}
    width = max(len("peer / dnnc"), *(len(LABELS[s]) for s in peers))
    lines = ["peer / dnnc".ljust(width)
             + "".join("  " + heads[k].rjust(8) for k in RATIO_METRICS)]
    for s in peers:
        cells = [f"{medians[s][k] / medians['dnnc'][k]:.2f}x" for k in RATIO_METRICS]
        lines.append(LABELS[s].ljust(width) + "".join("  " + c.rjust(8) for c in cells))
    return lines


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Wall time and test accuracy of `dnnc train examples/mnist_mlp.dnn` "
        "against PyTorch (and JAX) training the same MLP (see bench/PEERS.md).")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--quick", action="store_true", help="one round")
    p.add_argument("--threads", type=int, default=2, help="threads per system (default 2)")
    p.add_argument("--epochs", type=int, default=None,
                   help="override the epochs (default: the example's 10)")
    p.add_argument("--systems", default=",".join(ALL_SYSTEMS),
                   help=f"comma-separated subset of {','.join(ALL_SYSTEMS)}")
    p.add_argument("--dnnc", help="dnnc binary (default: target/release/dnnc if built, "
                   "else target/debug/dnnc)")
    p.add_argument("--model", default=MODEL, help=argparse.SUPPRESS)
    p.add_argument("--json", metavar="PATH", help="also write all results to PATH")
    p.add_argument("--no-pin", action="store_true",
                   help="do not restrict every system to the first N CPUs")
    p.add_argument("--timeout", type=float, default=900.0,
                   help="seconds one training run may take (default 900)")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.rounds = 1
    if args.dnnc is None:
        release = os.path.join(ROOT, "target", "release", "dnnc")
        args.dnnc = release if os.path.exists(release) else os.path.join(
            ROOT, "target", "debug", "dnnc")
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in args.systems if s not in ALL_SYSTEMS]
    if unknown:
        p.error(f"unknown systems {unknown}; choose from {ALL_SYSTEMS}")
    if args.threads < 1 or args.rounds < 1 or (args.epochs is not None and args.epochs < 1):
        p.error("--threads, --rounds and --epochs must be at least 1")
    return args


def main(argv):
    args = parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.threads, args.epochs or 10)
        return 0

    notes, systems = [], []
    for s in args.systems:
        if s == "dnnc":
            if os.path.exists(args.dnnc):
                systems.append(s)
                if "debug" in os.path.relpath(args.dnnc, ROOT).split(os.sep):
                    notes.append("dnnc: a debug build; use a release build for numbers")
            else:
                notes.append(f"dnnc: skipped (no binary at {args.dnnc}; "
                             "cargo build --release -p dnnc)")
            continue
        absent = [m for m in PEER_MODULES[s] if importlib.util.find_spec(m) is None]
        if absent:
            notes.append(f"{LABELS[s]}: skipped ({', '.join(absent)} not installed in "
                         f"{sys.executable})")
        else:
            systems.append(s)
    if not systems:
        print("train_race.py: nothing to run", *notes, sep="\n", file=sys.stderr)
        return 2

    cpus = pin_cpus(args.threads, args.no_pin)
    epochs = args.epochs or 10
    print(f"train_race.py: {args.rounds} round(s), {args.threads} thread(s), {epochs} epochs, "
          f"CPUs {','.join(map(str, cpus)) if cpus else 'all allowed'}", flush=True)
    runs = {s: [] for s in systems}
    info = {}
    with tempfile.TemporaryDirectory(prefix="train_race_") as tmp:
        for r in range(args.rounds):
            order = systems[r % len(systems):] + systems[:r % len(systems)]
            for s in order:
                try:
                    if s == "dnnc":
                        res, extra = run_dnnc(args, cpus, tmp)
                    else:
                        res, extra = run_peer(s, args, cpus)
                except (RuntimeError, OSError, ValueError, KeyError,
                        subprocess.TimeoutExpired) as e:
                    print(f"  round {r + 1} {LABELS[s]}: FAILED: {e}", file=sys.stderr)
                    continue
                runs[s].append(res)
                if extra:
                    info[s] = extra
                print(f"  round {r + 1} {LABELS[s]:<14} process {res['process_s']:6.2f} s  "
                      f"loop {res['loop_s']:6.2f} s  test acc {res['test_accuracy']:.4f}",
                      flush=True)

    done = [s for s in systems if runs[s]]
    # Each column's median is taken on its own (they may come from different rounds).
    medians = {s: {k: statistics.median(run[k] for run in runs[s]) for k, _, _ in METRICS}
               for s in done}
    print()
    print(f"medians over {args.rounds} round(s):")
    for line in fmt_table(done, medians) if done else []:
        print(line)
    ratios = fmt_ratios(done, medians)
    if ratios:
        print()
        print("ratios (peer / dnnc; above 1, dnnc is faster):")
        for line in ratios:
            print(line)
    if "torch" in info:
        notes.append(f"PyTorch {info['torch']['torch']}, Adam fused="
                     f"{info['torch']['fused_adam']}")
    if "jax" in info:
        notes.append(f"JAX {info['jax']['jax']} ({info['jax']['backend']})")
    if notes:
        print()
        for n in notes:
            print(f"note: {n}")

    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({
                "rounds": args.rounds, "threads": args.threads, "epochs": epochs,
                "cpus": cpus, "dnnc": args.dnnc, "python": sys.executable,
                "medians": medians, "runs": runs, "info": info, "notes": notes,
            }, f, indent=2)
        print(f"wrote {args.json}")
    return 0 if len(done) == len(systems) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
