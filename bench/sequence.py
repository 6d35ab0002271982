#!/usr/bin/env python3
"""Benchmark: the character-level LSTM language model in dnnc and in PyTorch.

Trains examples/shakespeare_lstm.dnn for a fixed number of steps in dnnc and in PyTorch
eager and compares the test losses, checks that both compute the same step from the
same weights, and times the training step (dnnc, PyTorch eager, torch.compile).

    python3 bench/sequence.py                  # 300 steps, 1 seed, 5 timing rounds
    python3 bench/sequence.py --quick          # 20 steps, 1 round, few iterations (smoke test)
    python3 bench/sequence.py --steps 384 --seeds 3 --rounds 9 --json target/bench/sequence.json
    python3 bench/sequence.py --parts timing --threads 1 --dnnc target/debug/dnnc
    python3 bench/sequence.py --parts timing --compile-rnn  # + torch.compile, LSTM traced

The model and recipe (the same in both systems): Embedding(76, 64) -> LSTM(64, 256)
(one layer, h0 = c0 = 0, PyTorch's gate order i, f, g, o) -> Dense(256, 76) at every
position; the data examples/data/shakespeare/plays.txt, ids = indices into the sorted
distinct characters of the whole file; training part = the first 90 % of the characters,
test part = the last 10 % (positions floor(len * ppm / 1e6), as dnnc's `text(...)`);
each part cut into windows of 65 characters starting every 64 (window i =
chars[start + 64 i : start + 64 i + 65], (len(part) - 1) // 64 of them: 12257 training,
1361 test windows); input = the first 64 characters, targets = the last 64; loss = mean
softmax cross-entropy over all 32 x 64 positions; batch 32 (1 epoch = 384 steps, the last
one of a single window), the windows shuffled every epoch; Adam lr 2e-3, betas (0.9,
0.999), eps 1e-8. Test loss = mean cross-entropy over every position of the test
windows (batch 32, no shuffling), the number `dnnc train` logs as `test_loss`.

Part `parity` (a correctness check, run first): one set of initial weights (PyTorch's
default init, torch.manual_seed(0)), written in dnnc's names and layouts to
target/bench/sequence/parity_init.safetensors (`embed.W` [76, 64]; `lstm.weight_ih_l0`
[1024, 64], `lstm.weight_hh_l0` [1024, 256], `lstm.bias_ih_l0`, `lstm.bias_hh_l0`
[1024] as PyTorch's; `head.W` [256, 76] = Linear.weight transposed, x @ W; `head.b`
[76]). dnnc trains from it (`dnnc train --init FILE --seed 1 --steps K`, K = 1 and
`--parity-steps`) and PyTorch from the same weights over the same batches: this script
reproduces dnnc's shuffle (runtime/core/src/batches.rs `epoch_order`: Fisher-Yates
driven by SplitMix64, Lemire's bounded draws) exactly. Compared: the first step's loss
(dnnc's `train_loss` at `--steps 1`: the loss of the first batch on the initial
weights), the test loss after 1 and after K steps, the mean training loss of the K
steps, and the weights after 1 and after K steps (max |dnnc - PyTorch| per tensor, in
units of lr; after one Adam step every parameter with a non-zero gradient moves by
about +-lr, so a wrong gradient sign shows as a difference of ~2 lr).

Part `loss` (per seed, `--seeds N` = seeds 1 .. N or a comma-separated list):
  dnnc     `dnnc train examples/shakespeare_lstm.dnn --steps N --seed S --out
           target/bench/sequence/lstm_sS.safetensors --log ..._sS.jsonl --threads T
           --quiet --no-plot` (and `--epochs ceil(N / 384)` beyond one epoch): dnnc's own
           init (embed.W normal(0, 1), LSTM U(+-1/16), head.W Glorot uniform, head.b
           zeros) and shuffle; its log's last `test_loss` (evaluated after the N-th
           step) and `train_loss` (the mean over that epoch's steps);
  PyTorch  this script as a worker (`--worker train`): nn.Embedding, nn.LSTM(64, 256,
           batch_first=True), nn.Linear(256, 76), PyTorch's default init
           (torch.manual_seed(S): Embedding normal(0, 1), LSTM and Linear weights and
           biases U(+-1/16)), the windows shuffled by torch.randperm with a generator
           seeded S, torch.optim.Adam (fused where available); the same two numbers.
  Printed: both test losses (mean over seeds) and dnnc - PyTorch (target of the dnnc
  project: at most +0.03, dnnc no worse than PyTorch by more than that).

Part `timing` (`--rounds` interleaved rounds, the order of the systems rotating; the
table shows medians over rounds):
  dnnc           `dnnc bench examples/shakespeare_lstm.dnn --json --threads T --runs 21`:
                 `train_step_ms` (its own median, its own random weights and data) and
                 `infer_b1_us`: the logits of one 64-character window (the whole
                 sequence, all 64 positions; "inference b1"), reported as is;
  PyTorch eager  a long-lived worker process (`--worker time`, torch.set_num_threads(T),
                 OMP_NUM_THREADS=T): zero_grad, forward, cross-entropy, backward, Adam
                 step, loss and accuracy read back (as dnnc's step returns them), on the
                 first 32 training windows; 5 warm-up steps (3 more each round), then the
                 median of `--iters` steps; inference b1 = the logits of one window under
                 torch.no_grad(), median of 5 x `--iters` calls. On the CPU, PyTorch runs
                 nn.LSTM (forward and backward) as oneDNN's fused RNN primitive
                 (aten::mkldnn_rnn_layer, mkldnn_rnn_layer_backward);
  eager, no oneDNN  the same with torch.backends.mkldnn.enabled = False: PyTorch's own
                 LSTM (a cell per time step, autograd through 64 steps); a column for
                 context, without a target;
  torch.compile  the same with `torch.compile(model)` (default mode) in its own worker;
                 its compile time is the warm-up's; a worker that fails, or is not ready
                 within `--compile-timeout` seconds (default 300), is reported as
                 unavailable. NOTE: by default TorchDynamo does not trace RNN modules
                 (torch._dynamo.config.allow_rnn is False): nn.LSTM runs as the eager
                 ATen kernel and only the embedding, head and their backward are
                 compiled. `--compile-rnn` adds a column with allow_rnn = True (the LSTM
                 decomposed into 64 unrolled steps and compiled by Inductor; slow to
                 compile).
  Printed: ms per step, each peer's time / dnnc's (target: at least 1.5 for PyTorch
  eager and torch.compile).

Caveats: in part `loss` the two systems draw different initial weights (dnnc's head is
Glorot uniform with zero bias, PyTorch's U(+-1/16) for both) and visit the windows in
different orders, so the test losses differ by chance: use several seeds (`--seeds`)
before reading much into a difference of a few hundredths; part `parity` is the
like-for-like check. dnnc's `bench` times its step on its own random weights and data,
PyTorch on real windows; an LSTM step's cost does not depend on the values. The
machine's other load shows in the timings; use --threads below the number of idle cores
(with --threads below the CPUs allowed, every process is restricted to the first N
CPUs unless --no-pin).

The driver needs only the standard library (and numpy for part `parity`); the workers
need numpy and torch. No safetensors package is needed: a minimal reader and writer of
the format are built in.
"""

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "bench", "sequence")
DNN_FILE = os.path.join(ROOT, "examples", "shakespeare_lstm.dnn")
TEXT = os.path.join(ROOT, "examples", "data", "shakespeare", "plays.txt")

WINDOW, BATCH, VOCAB, EMBED, HIDDEN = 65, 32, 76, 64, 256
TRAIN_PPM, TEST_PPM = (0, 900_000), (900_000, 1_000_000)
LR, BETA1, BETA2, ADAM_EPS = 2e-3, 0.9, 0.999, 1e-8
PARITY_INIT_SEED, PARITY_SEED = 0, 1
TARGET_LOSS_DIFF = 0.03  # dnnc test loss - PyTorch test loss, at most
TARGET_SPEEDUP = 1.5  # each peer's step time / dnnc's, at least
PARAMS = ["embed.W", "lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0",
          "lstm.bias_hh_l0", "head.W", "head.b"]
VARIANT_LABELS = {"eager": "PyTorch eager", "native": "eager, no oneDNN",
                  "compile": "torch.compile", "compile_rnn": "torch.compile+rnn"}
CONTEXT_VARIANTS = {"native"}  # columns for context, without a target


# =================================================================================
# Data, dnnc's shuffle, safetensors (numpy)
# =================================================================================


def load_text():
    """(ids int64 [len], vocabulary string): ids index the sorted distinct characters."""
    import numpy as np

    with open(TEXT, encoding="utf-8") as f:
        text = f.read()
    vocab = "".join(sorted(set(text)))
    lut = {c: i for i, c in enumerate(vocab)}
    return np.array([lut[c] for c in text], dtype=np.int64), vocab


def windows(ids, part):
    """The windows of a part (from, to in millionths of the length), as dnnc's
    runtime/data/src/text.rs cuts them: int64 [N, WINDOW]."""
    import numpy as np

    n = len(ids)
    a, b = (n * part[0]) // 1_000_000, (n * part[1]) // 1_000_000
    count = (b - a - 1) // (WINDOW - 1)
    starts = a + (WINDOW - 1) * np.arange(count)
    return ids[starts[:, None] + np.arange(WINDOW)[None, :]]


MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15
SHUFFLE_STREAM = 0x0053_4855_4646_4C45


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def dnnc_epoch_order(n, seed, epoch):
    """dnnc's `epoch_order(n, seed, epoch, shuffle = true)` (runtime/core/src/batches.rs):
    Fisher-Yates with SplitMix64(seed ^ mix64(epoch ^ SHUFFLE)) and Lemire's method."""
    state = (seed ^ mix64((epoch ^ SHUFFLE_STREAM) & MASK64)) & MASK64

    def next_u64():
        nonlocal state
        state = (state + GOLDEN_GAMMA) & MASK64
        return mix64(state)

    def below(bound):
        m = next_u64() * bound
        if (m & MASK64) < bound:
            threshold = ((-bound) & MASK64) % bound
            while (m & MASK64) < threshold:
                m = next_u64() * bound
        return m >> 64

    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = below(i + 1)
        order[i], order[j] = order[j], order[i]
    return order


ST_DTYPES = {"F32": "float32", "F64": "float64", "F16": "float16", "I64": "int64",
             "I32": "int32", "U8": "uint8", "I8": "int8"}


def load_safetensors(path):
    """{name: numpy array} (8-byte little-endian header size, JSON header, raw data)."""
    import numpy as np

    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype=ST_DTYPES[info["dtype"]]).reshape(
            info["shape"]).copy()
    return out


def save_safetensors(path, tensors, metadata=None):
    """Writes {name: float32 numpy array} as safetensors (names sorted)."""
    import numpy as np

    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        raw = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


# =================================================================================
# Workers (this script started with --worker train|time), PyTorch
# =================================================================================


def make_model(torch, seed):
    """The model with PyTorch's default init drawn from torch.manual_seed(seed)."""
    nn = torch.nn

    class CharLstm(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, EMBED)
            self.lstm = nn.LSTM(EMBED, HIDDEN, batch_first=True)
            self.head = nn.Linear(HIDDEN, VOCAB)

        def forward(self, x):
            seq, _ = self.lstm(self.embed(x))
            return self.head(seq)

    torch.manual_seed(seed)
    return CharLstm()


def to_dnnc(model):
    """The model's parameters in dnnc's names and layouts (numpy float32)."""
    sd = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
    out = {"embed.W": sd["embed.weight"], "head.W": sd["head.weight"].T.copy(),
           "head.b": sd["head.bias"]}
    for k in PARAMS[1:5]:
        out[k] = sd[k]
    return out


def from_dnnc(torch, model, weights):
    """Loads dnnc-layout weights into the model."""
    sd = {"embed.weight": weights["embed.W"], "head.weight": weights["head.W"].T,
          "head.bias": weights["head.b"]}
    for k in PARAMS[1:5]:
        sd[k] = weights[k]
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in sd.items()})


def make_adam(torch, params):
    kw = dict(lr=LR, betas=(BETA1, BETA2), eps=ADAM_EPS)
    try:
        return torch.optim.Adam(params, fused=True, **kw), True
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, **kw), False


def make_step(torch, model, opt):
    """One training step on windows [B, 65]; returns (loss, accuracy) read back."""
    ce = torch.nn.functional.cross_entropy

    def step(w):
        x, y = w[:, :-1], w[:, 1:]
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = ce(logits.reshape(-1, VOCAB), y.reshape(-1))
        loss.backward()
        opt.step()
        acc = (logits.detach().argmax(-1) == y).float().mean()
        return float(loss.detach()), float(acc)

    return step


def evaluate(torch, model, test):
    """Mean cross-entropy and accuracy over every position of the test windows."""
    ce = torch.nn.functional.cross_entropy
    model.eval()
    loss_sum, correct, n = 0.0, 0.0, 0
    with torch.no_grad():
        for i in range(0, len(test), BATCH):
            w = test[i:i + BATCH]
            x, y = w[:, :-1], w[:, 1:]
            logits = model(x)
            loss_sum += float(ce(logits.reshape(-1, VOCAB), y.reshape(-1), reduction="sum"))
            correct += float((logits.argmax(-1) == y).sum())
            n += y.numel()
    model.train()
    return loss_sum / n, correct / n


def worker_train(args):
    """Trains `--steps` steps; prints one JSON line: per-step losses and, at each of
    `--checkpoints` (and the last step), the epoch's mean train loss, the test loss and
    accuracy, and the weights (dnnc layout) saved to WORK/{tag}_k{K}.safetensors."""
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    ids, vocab = load_text()
    train = torch.from_numpy(windows(ids, TRAIN_PPM))
    test = torch.from_numpy(windows(ids, TEST_PPM))
    model = make_model(torch, args.seed)
    if args.init:
        from_dnnc(torch, model, load_safetensors(args.init))
    opt, fused = make_adam(torch, list(model.parameters()))
    step = make_step(torch, model, opt)
    n = len(train)
    marks = sorted({int(k) for k in args.checkpoints.split(",") if k.strip()} | {args.steps})
    gen = torch.Generator().manual_seed(args.seed)
    losses, points = [], {}
    started = time.perf_counter()
    done, epoch = 0, 0
    while done < args.steps:
        if args.order == "dnnc":
            order = torch.tensor(dnnc_epoch_order(n, args.seed, epoch), dtype=torch.int64)
        else:
            order = torch.randperm(n, generator=gen)
        loss_sum, acc_sum, seen = 0.0, 0.0, 0
        for i in range(0, n, BATCH):
            if done >= args.steps:
                break
            idx = order[i:i + BATCH]
            loss, acc = step(train[idx])
            done += 1
            losses.append(loss)
            loss_sum, acc_sum, seen = loss_sum + loss * len(idx), acc_sum + acc * len(idx), \
                seen + len(idx)
            if done in marks:
                t_loss, t_acc = evaluate(torch, model, test)
                path = os.path.join(args.work, f"{args.tag}_k{done}.safetensors")
                save_safetensors(path, to_dnnc(model), {"dnnc.vocabulary": vocab})
                points[done] = {"train_loss": loss_sum / seen, "train_accuracy": acc_sum / seen,
                                "test_loss": t_loss, "test_accuracy": t_acc, "weights": path,
                                "epoch": epoch + 1}
        epoch += 1
    loop = time.perf_counter() - started
    print(json.dumps({"losses": losses, "points": points, "loop_s": loop,
                      "info": {"torch": torch.__version__, "fused_adam": fused,
                               "windows": [len(train), len(test)]}}), flush=True)


def worker_time(args):
    """Long-lived: answers each command line on stdin with one JSON line of medians (ns)
    on the protocol channel."""
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
        ids, _ = load_text()
        w = torch.from_numpy(windows(ids, TRAIN_PPM)[:BATCH].copy())
        x1 = w[:1, :-1].clone()
        model = make_model(torch, PARITY_INIT_SEED)
        run = model
        started = time.perf_counter()
        if args.variant == "native":
            torch.backends.mkldnn.enabled = False  # PyTorch's own LSTM kernels
        if args.variant in ("compile", "compile_rnn"):
            if args.variant == "compile_rnn":
                import torch._dynamo

                torch._dynamo.config.allow_rnn = True
            run = torch.compile(model)
        opt, fused = make_adam(torch, list(model.parameters()))
        step = make_step(torch, run, opt)
        for _ in range(5):
            step(w)

        def infer():
            with torch.no_grad():
                return run(x1)

        for _ in range(5):
            infer()
        warm = time.perf_counter() - started
    except Exception as e:  # noqa: BLE001 - reported to the driver
        import traceback

        traceback.print_exc()
        send({"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"})
        return
    send({"ready": True, "torch": torch.__version__, "fused_adam": fused, "warmup_s": warm})
    clock = time.perf_counter_ns
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "quit":
            break
        gc.collect()
        gc.disable()
        try:
            for _ in range(3):
                step(w)
            times = []
            for _ in range(msg["iters"]):
                start = clock()
                step(w)
                times.append(clock() - start)
            inf = []
            for _ in range(5 * msg["iters"]):
                start = clock()
                infer()
                inf.append(clock() - start)
        finally:
            gc.enable()
        send({"train": statistics.median(times), "infer_b1": statistics.median(inf)})


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


def run_timed(cmd, cpus, timeout, env=None, retries=3):
    """Runs cmd in the repository root; returns (wall seconds, CompletedProcess), or
    raises RuntimeError with the tail of its output when it fails. A binary being
    rebuilt (ETXTBSY) is retried after a pause."""
    preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    for attempt in range(retries + 1):
        started = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=timeout, preexec_fn=preexec)
        except OSError as e:
            if e.errno == 26 and attempt < retries:  # ETXTBSY
                time.sleep(5)
                continue
            raise
        break
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-8:])
        raise RuntimeError(f"`{' '.join(cmd)}` exited with {proc.returncode}\n{tail}")
    return wall, proc


def read_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def fresh(*paths):
    for p in paths:
        if os.path.exists(p):
            os.remove(p)


def dnnc_train(args, cpus, tag, seed, steps, init=None):
    """`dnnc train` for `steps` steps; returns its record (the log's last line)."""
    weights = os.path.join(args.work, f"{tag}.safetensors")
    log = os.path.join(args.work, f"{tag}.jsonl")
    fresh(weights, log)
    cmd = [args.dnnc, "train", os.path.relpath(DNN_FILE, ROOT), "--steps", str(steps),
           "--seed", str(seed), "--out", weights, "--log", log, "--threads", str(args.threads),
           "--quiet", "--no-plot"]
    epochs = math.ceil(steps / args.steps_per_epoch)
    if epochs > 1:
        cmd += ["--epochs", str(epochs)]
    if init:
        cmd += ["--init", init]
    wall, _ = run_timed(cmd, cpus, args.timeout)
    history = read_log(log)
    last = history[-1]
    return {"process_s": wall, "loop_s": sum(h["seconds"] for h in history),
            "train_loss": last["train_loss"], "test_loss": last["test_loss"],
            "test_accuracy": last.get("test_accuracy"), "weights": weights,
            "history": history, "command": " ".join(cmd)}


def torch_train(args, cpus, tag, seed, steps, init=None, order="torch", checkpoints=""):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "train", "--seed", str(seed),
           "--steps", str(steps), "--threads", str(args.threads), "--order", order,
           "--tag", tag, "--checkpoints", checkpoints, "--work", args.work]
    if init:
        cmd += ["--init", init]
    wall, proc = run_timed(cmd, cpus, args.timeout, torch_env(args.threads))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError("the PyTorch worker printed no result")
    msg = json.loads(lines[-1])
    msg["points"] = {int(k): v for k, v in msg["points"].items()}
    msg["process_s"] = wall
    return msg


def part_parity(args, cpus, notes):
    """Same weights, same batches: dnnc and PyTorch after 1 and K steps."""
    import numpy as np

    k = args.parity_steps
    print(f"\n== parity: the same initial weights and batches (dnnc's shuffle, seed "
          f"{PARITY_SEED}), 1 and {k} step(s)", flush=True)
    init = os.path.join(args.work, "parity_init.safetensors")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "init", "--work", args.work]
    run_timed(cmd, cpus, args.timeout, torch_env(args.threads))
    marks = sorted({1, k})
    dn = {}
    for m in marks:
        dn[m] = dnnc_train(args, cpus, f"parity_dnnc_k{m}", PARITY_SEED, m, init=init)
    pt = torch_train(args, cpus, "parity_torch", PARITY_SEED, k, init=init, order="dnnc",
                     checkpoints=",".join(map(str, marks)))
    rows, result = [], {"steps": marks}

    def row(name, a, b, tol):
        d = a - b
        ok = abs(d) <= tol
        rows.append((name, a, b, d, ok))
        result[name] = {"dnnc": a, "torch": b, "diff": d, "agree": ok}

    first_torch = pt["losses"][0]
    row("first step's loss (initial weights)", dn[1]["train_loss"], first_torch, 1e-4)
    for m in marks:
        row(f"test loss after {m} step(s)", dn[m]["test_loss"], pt["points"][m]["test_loss"],
            1e-3 if m == 1 else 5e-3)
        if m > 1:
            row(f"mean train loss of the {m} steps", dn[m]["train_loss"],
                pt["points"][m]["train_loss"], 5e-3)
    width = max(len(r[0]) for r in rows) + 2
    print("".ljust(width) + f"{'dnnc':>12}{'PyTorch':>12}{'difference':>14}")
    for name, a, b, d, ok in rows:
        print(name.ljust(width) + f"{a:12.6f}{b:12.6f}{d:+14.2e}  {'ok' if ok else 'DIFFERS'}")

    w0 = load_safetensors(init)
    print(f"weights after the step(s): max |dnnc - PyTorch| in units of lr = {LR:g} "
          f"(and, after 1 step, how many elements moved differently by more than lr / 2):")
    result["weights"] = {}
    for m in marks:
        wd, wt = load_safetensors(dn[m]["weights"]), load_safetensors(pt["points"][m]["weights"])
        cells, entry = [], {}
        for name in PARAMS:
            diff = np.abs(wd[name].astype(np.float64) - wt[name].astype(np.float64))
            moved = np.abs(wt[name].astype(np.float64) - w0[name]).max() / LR
            far = int((diff > LR / 2).sum())
            entry[name] = {"max_diff_lr": float(diff.max() / LR), "far": far,
                           "torch_max_move_lr": float(moved)}
            cells.append(f"{name} {diff.max() / LR:.3g}" + (f" ({far})" if m == 1 else ""))
        result["weights"][m] = entry
        print(f"  after {m:>3}: " + ", ".join(cells))
    bad = [r[0] for r in rows if not r[4]]
    far1 = sum(v["far"] for v in result["weights"][1].values())
    if bad:
        notes.append("parity: dnnc and PyTorch differ on: " + "; ".join(bad))
    if far1:
        notes.append(f"parity: after one step {far1} weight element(s) moved differently by "
                     "more than lr / 2 in dnnc and PyTorch (a gradient of a different sign, "
                     "or one at the scale of Adam's eps)")
    print("(tolerances: 1e-4 for the first loss, 1e-3 for the test loss after 1 step, 5e-3 "
          f"after {k}; f32 rounding differences grow with the steps)")
    result["info"] = pt["info"]
    return result


def part_loss(args, cpus, systems, notes):
    n = args.steps
    print(f"\n== loss after {n} steps: seeds {', '.join(map(str, args.seeds))}; each system "
          "its own init and shuffle", flush=True)
    runs = {s: [] for s in systems}
    for i, seed in enumerate(args.seeds):
        order = systems if i % 2 == 0 else systems[::-1]
        for s in order:
            try:
                if s == "dnnc":
                    r = dnnc_train(args, cpus, f"lstm_s{seed}", seed, n)
                else:
                    t = torch_train(args, cpus, f"torch_s{seed}", seed, n)
                    p = t["points"][n]
                    r = {"process_s": t["process_s"], "loop_s": t["loop_s"],
                         "train_loss": p["train_loss"], "test_loss": p["test_loss"],
                         "test_accuracy": p["test_accuracy"], "first_loss": t["losses"][0],
                         "info": t["info"]}
            except (RuntimeError, OSError, ValueError, KeyError,
                    subprocess.TimeoutExpired) as e:
                notes.append(f"loss {s} seed {seed}: FAILED: {e}")
                print(f"  {s:<6} seed {seed}: FAILED: {e}", file=sys.stderr)
                continue
            r["seed"] = seed
            runs[s].append(r)
            print(f"  {s:<6} seed {seed}: test loss {r['test_loss']:.4f}  train loss "
                  f"{r['train_loss']:.4f}  process {r['process_s']:6.1f} s  loop "
                  f"{r['loop_s']:6.1f} s", flush=True)
    label = {"dnnc": "dnnc", "torch": "PyTorch eager"}
    cols = [s for s in systems if runs[s]]
    summary = {}
    for s in cols:
        summary[s] = {k: statistics.mean(r[k] for r in runs[s])
                      for k in ("test_loss", "train_loss", "test_accuracy", "process_s",
                                "loop_s")}
        if len(runs[s]) > 1:
            tl = [r["test_loss"] for r in runs[s]]
            summary[s]["test_loss_spread"] = max(tl) - min(tl)
    title = f"after {n} steps, mean over {len(args.seeds)} seed(s)"
    width = max(len(title), 34)
    print()
    print(title.ljust(width) + "".join(f"{label[s]:>16}" for s in cols)
          + (f"{'dnnc - PyTorch':>16}" if len(cols) == 2 else ""))
    for key, name, fmt in (("test_loss", "test loss (1361 windows)", "{:.4f}"),
                           ("test_accuracy", "test accuracy", "{:.4f}"),
                           ("train_loss", f"train loss (mean of the {n} steps)" if
                            n <= args.steps_per_epoch else "train loss (last epoch's mean)",
                            "{:.4f}"),
                           ("loop_s", "training loop (s)", "{:.1f}")):
        cells = [fmt.format(summary[s][key]) for s in cols]
        if len(cols) == 2 and key != "loop_s":
            cells.append(f"{summary['dnnc'][key] - summary['torch'][key]:+.4f}")
        print(name.ljust(width) + "".join(f"{c:>16}" for c in cells))
    if any("test_loss_spread" in v for v in summary.values()):
        print("test loss spread (max - min over seeds): " + ", ".join(
            f"{label[s]} {summary[s]['test_loss_spread']:.4f}" for s in cols
            if "test_loss_spread" in summary[s]))
    if len(cols) == 2:
        d = summary["dnnc"]["test_loss"] - summary["torch"]["test_loss"]
        summary["test_loss_diff"] = d
        print(f"\ndnnc test loss - PyTorch test loss: {d:+.4f} (target <= {TARGET_LOSS_DIFF}: "
              f"{'met' if d <= TARGET_LOSS_DIFF else 'MISSED'})")
    return summary, runs


class JsonWorker:
    """The driver's handle on a worker process (`script --worker time EXTRA...`)
    that answers one JSON line per request; its stderr goes to worker_NAME.log."""

    def __init__(self, args, cpus, name, script, extra, env=None):
        self.log_path = os.path.join(args.work, f"worker_{name}.log")
        self.log = open(self.log_path, "w")
        cmd = [sys.executable, os.path.abspath(script), "--worker", "time", *extra,
               "--threads", str(args.threads)]
        preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=env or torch_env(args.threads), text=True,
                                     bufsize=1, preexec_fn=preexec, cwd=ROOT)

    def recv(self, timeout):
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(("not ready within {:.0f} s".format(timeout) if not ready
                                else "the worker exited") + "; log: " + self.log_path)
        return json.loads(line)

    def send(self, msg):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def pause(self):
        """Stops the worker (and its threads, spinning or not) until `resume`."""
        import signal

        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        import signal

        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def close(self):
        try:
            self.send({"cmd": "quit"})
            self.proc.wait(timeout=30)
        except Exception:  # noqa: BLE001
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class TimeWorker(JsonWorker):
    """The driver's handle on a PyTorch timing worker."""

    def __init__(self, args, cpus, variant):
        self.variant = variant
        super().__init__(args, cpus, variant, __file__, ["--variant", variant])


def dnnc_bench(args, cpus):
    cmd = [args.dnnc, "bench", os.path.relpath(DNN_FILE, ROOT), "--json", "--threads",
           str(args.threads), "--runs", str(args.dnnc_runs)]
    _, proc = run_timed(cmd, cpus, args.timeout)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if res.get("batch") not in (None, BATCH):
        raise RuntimeError(f"`dnnc bench` ran batch {res['batch']}, not {BATCH}")
    return res


def part_timing(args, cpus, systems, notes):
    print(f"\n== timing: {args.rounds} round(s); dnnc `bench --runs {args.dnnc_runs}`, "
          f"PyTorch median of {args.iters} steps", flush=True)
    variants = []
    if "torch" in systems:
        variants = ["eager", "native", "compile"] + (["compile_rnn"] if args.compile_rnn
                                                     else [])
    workers, info = {}, {}
    for v in variants:  # started one after the other: compiling takes the CPUs
        w = TimeWorker(args, cpus, v)
        limit = args.compile_timeout if v != "eager" else args.timeout
        try:
            msg = w.recv(limit)
        except (RuntimeError, ValueError) as e:
            msg = {"error": str(e)}
        if "error" in msg:
            notes.append(f"{VARIANT_LABELS[v]}: unavailable ({msg['error']})")
            print(f"  {VARIANT_LABELS[v]}: unavailable ({msg['error']})", flush=True)
            w.proc.kill()
            w.close()
            continue
        workers[v], info[v] = w, msg
        print(f"  {VARIANT_LABELS[v]} ready (warm-up, including any compiling: "
              f"{msg['warmup_s']:.1f} s)", flush=True)
    order = (["dnnc"] if "dnnc" in systems else []) + list(workers)
    samples = {(s, k): [] for s in order for k in ("train", "infer_b1")}
    for rnd in range(args.rounds):
        shift = rnd % len(order) if order else 0
        for s in order[shift:] + order[:shift]:
            # The other systems' workers are stopped (SIGSTOP) while one is timed: an
            # idle PyTorch keeps its OpenMP threads spinning for a while after its
            # work (its default, which its own step relies on), and those took a core
            # from dnnc's 2-thread step (53 ms instead of 42).
            for name, w in workers.items():
                if name != s:
                    w.pause()
            try:
                if s == "dnnc":
                    res = dnnc_bench(args, cpus)
                    samples[(s, "train")].append(float(res["train_step_ms"]))
                    samples[(s, "infer_b1")].append(float(res["infer_b1_us"]) * 1e-3)
                else:
                    workers[s].send({"cmd": "round", "iters": args.iters})
                    res = workers[s].recv(args.timeout)
                    samples[(s, "train")].append(res["train"] * 1e-6)
                    samples[(s, "infer_b1")].append(res["infer_b1"] * 1e-6)
            except (RuntimeError, OSError, ValueError, KeyError,
                    subprocess.TimeoutExpired) as e:
                notes.append(f"timing {s}, round {rnd + 1}: FAILED: {e}")
            finally:
                for w in workers.values():
                    w.resume()
        print(f"round {rnd + 1}/{args.rounds} done", flush=True)
    for w in workers.values():
        w.close()

    med = {k: statistics.median(v) for k, v in samples.items() if v}
    cols = [s for s in order if (s, "train") in med]
    label = dict(VARIANT_LABELS, dnnc="dnnc")
    title = f"median of {args.rounds} round(s), {args.threads} thread(s)"
    width = max(len(title), 38)
    print()
    print(title.ljust(width) + "".join(f"{label[s]:>19}" for s in cols))
    print(f"train step b{BATCH} (ms)".ljust(width)
          + "".join(f"{med[(s, 'train')]:>19.2f}" for s in cols))
    print("inference b1, one 64-char window (ms)".ljust(width)
          + "".join(f"{med[(s, 'infer_b1')]:>19.3f}" if (s, "infer_b1") in med else f"{'-':>19}"
                    for s in cols))
    ratios = {}
    if "dnnc" in cols:
        print()
        for s in cols:
            if s == "dnnc":
                continue
            r = ratios[f"{s}_over_dnnc"] = med[(s, "train")] / med[("dnnc", "train")]
            verdict = ("context, no target" if s in CONTEXT_VARIANTS else
                       f"target >= {TARGET_SPEEDUP}: "
                       + ("met" if r >= TARGET_SPEEDUP else "MISSED"))
            print(f"{label[s]} train step / dnnc train step: {r:.2f}x ({verdict})")
        for v in variants:
            if v not in workers:
                print(f"{VARIANT_LABELS[v]}: unavailable (see the notes)")
    print("(inference b1: dnnc's `bench` \"inference b1\", the logits of all 64 positions of "
          "one window, as it reports it; PyTorch's the same under no_grad)")
    for v, m in info.items():
        print(f"{VARIANT_LABELS[v]}: torch {m.get('torch')}, Adam fused={m.get('fused_adam')}, "
              f"warm-up {m.get('warmup_s', 0):.1f} s")
    return {"medians_ms": {f"{s}/{k}": v for (s, k), v in med.items()},
            "rounds_ms": {f"{s}/{k}": v for (s, k), v in samples.items()},
            "ratios": ratios, "workers": info}


def worker_init(args):
    """Writes the parity run's initial weights (PyTorch default init, dnnc layout)."""
    import torch

    _, vocab = load_text()
    model = make_model(torch, PARITY_INIT_SEED)
    save_safetensors(os.path.join(args.work, "parity_init.safetensors"), to_dnnc(model),
                     {"dnnc.vocabulary": vocab})


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="The character-level LSTM (examples/shakespeare_lstm.dnn) in dnnc and "
        "PyTorch: test loss after N steps, a same-weights parity check, step time.")
    p.add_argument("--dnnc", help="dnnc binary (default: target/release/dnnc if built, "
                   "else target/debug/dnnc)")
    p.add_argument("--threads", type=int, default=2, help="threads per system (default 2)")
    p.add_argument("--rounds", type=int, default=5, help="timing rounds (default 5)")
    p.add_argument("--steps", type=int, default=300,
                   help="training steps of part `loss` (default 300; 384 = one epoch)")
    p.add_argument("--seeds", default="1",
                   help="N (seeds 1 .. N, default 1) or a comma-separated list")
    p.add_argument("--parity-steps", type=int, default=20,
                   help="steps of the longer parity run (default 20)")
    p.add_argument("--iters", type=int, default=30,
                   help="PyTorch timed steps per round (default 30)")
    p.add_argument("--dnnc-runs", type=int, default=21,
                   help="`dnnc bench --runs` per round (default 21)")
    p.add_argument("--compile-timeout", type=float, default=300.0,
                   help="seconds torch.compile's worker may take to be ready (default 300)")
    p.add_argument("--compile-rnn", action="store_true",
                   help="also time torch.compile with torch._dynamo.config.allow_rnn = True")
    p.add_argument("--parts", default="parity,loss,timing",
                   help="comma-separated subset of parity,loss,timing")
    p.add_argument("--systems", default="dnnc,torch", help="subset of dnnc,torch")
    p.add_argument("--quick", action="store_true",
                   help="20 steps, 1 seed, 5 parity steps, 1 round, 10 iterations (smoke test)")
    p.add_argument("--no-pin", action="store_true",
                   help="do not restrict every process to the first N CPUs")
    p.add_argument("--timeout", type=float, default=3600.0,
                   help="seconds one process may take (default 3600)")
    p.add_argument("--json", metavar="PATH", help="also write all results to PATH")
    p.add_argument("--work", default=WORK, help=argparse.SUPPRESS)
    p.add_argument("--worker", choices=["train", "time", "init"], help=argparse.SUPPRESS)
    p.add_argument("--variant", choices=list(VARIANT_LABELS), help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--init", help=argparse.SUPPRESS)
    p.add_argument("--order", choices=["torch", "dnnc"], default="torch", help=argparse.SUPPRESS)
    p.add_argument("--tag", default="torch", help=argparse.SUPPRESS)
    p.add_argument("--checkpoints", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.steps_per_epoch = math.ceil(12257 / BATCH)
    if args.worker:
        return args
    if args.quick:
        args.steps, args.seeds, args.rounds, args.parity_steps, args.iters = 20, "1", 1, 5, 10
    if args.dnnc is None:
        release = os.path.join(ROOT, "target", "release", "dnnc")
        args.dnnc = release if os.path.exists(release) else os.path.join(
            ROOT, "target", "debug", "dnnc")
    try:
        if "," in args.seeds:
            args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        else:
            args.seeds = list(range(1, int(args.seeds) + 1))
    except ValueError:
        p.error("--seeds: a count or a comma-separated list of integers")
    args.parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not set(args.parts) <= {"parity", "loss", "timing"} or not args.parts:
        p.error("--parts: a subset of parity,loss,timing")
    if not set(args.systems) <= {"dnnc", "torch"} or not args.systems:
        p.error("--systems: a subset of dnnc,torch")
    if min(args.threads, args.steps, args.rounds, args.iters, args.dnnc_runs,
           args.parity_steps, len(args.seeds)) < 1:
        p.error("--threads, --steps, --seeds, --rounds, --iters, --parity-steps and "
                "--dnnc-runs must be at least 1")
    return args


def main(argv):
    args = parse_args(argv)
    if args.worker:
        {"train": worker_train, "time": worker_time, "init": worker_init}[args.worker](args)
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
        print("sequence.py: nothing to run", *notes, sep="\n", file=sys.stderr)
        return 2
    os.makedirs(args.work, exist_ok=True)
    cpus = pin_cpus(args.threads, args.no_pin)
    print(f"sequence.py: systems {', '.join(systems)}, parts {', '.join(args.parts)}, "
          f"{args.threads} thread(s), CPUs {','.join(map(str, cpus)) if cpus else 'all allowed'}"
          f", dnnc {args.dnnc if 'dnnc' in systems else '-'}", flush=True)

    report = {"config": {"threads": args.threads, "steps": args.steps, "seeds": args.seeds,
                         "rounds": args.rounds, "iters": args.iters,
                         "parity_steps": args.parity_steps, "dnnc_runs": args.dnnc_runs,
                         "dnnc": args.dnnc, "cpus": cpus}}
    if "parity" in args.parts:
        if set(systems) == {"dnnc", "torch"}:
            try:
                report["parity"] = part_parity(args, cpus, notes)
            except (RuntimeError, OSError, ValueError, KeyError,
                    subprocess.TimeoutExpired) as e:
                notes.append(f"parity: FAILED: {e}")
        else:
            notes.append("parity: skipped (needs both dnnc and PyTorch)")
    if "loss" in args.parts:
        report["loss"], report["loss_runs"] = part_loss(args, cpus, systems, notes)
    if "timing" in args.parts:
        report["timing"] = part_timing(args, cpus, systems, notes)
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
