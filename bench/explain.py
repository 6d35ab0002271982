#!/usr/bin/env python3
"""Check: dnnc's attribution maps (`dnnc attribute`) against PyTorch autograd.

For the CNN of examples/mnist_cnn.dnn and one set of trained weights, computes every
attribution method of `std::explain` in dnnc and in PyTorch (eager autograd, same
weights, same images) and prints, per method, how far apart the maps are; exits
non-zero when a method's maps disagree by more than the tolerance. Trains nothing.

    python3 bench/explain.py                      # 64 test images, 2 threads
    python3 bench/explain.py --quick              # 8 images (smoke test)
    python3 bench/explain.py --count 256 --threads 1 --json target/bench/explain.json
    python3 bench/explain.py --weights my_cnn.safetensors --dnnc target/debug/dnnc
    python3 bench/explain.py --ties last          # reference: ties to the last maximum

Weights: `--weights` (default examples/cnn.safetensors, the example's checkpoint). If
that default is missing, it is trained first: `dnnc train examples/mnist_cnn.dnn
--epochs 1 --out target/bench/explain/cnn.safetensors` (a missing explicit --weights
is an error). dnnc's names and layouts: Dense `W` [in, out] (x @ W + b), Conv2d `W`
[out, in, kh, kw], `b` [out].

Samples: the first N (`--count`) images of the test split (examples/data/mnist/
test-images-idx3-ubyte.gz, in file order, / 255.0), as dnnc's `--split test` takes
them. The explained class of each sample is its predicted class (dnnc's default
`--target predicted`); the script also compares dnnc's logits (`dnnc predict`) and
predicted classes with PyTorch's, since the maps are only comparable when the targets
match. score = sum over samples i of logit[i, target_i]; x = the [N, 28, 28] images.

Methods (dnnc: `dnnc attribute examples/mnist_cnn.dnn --weights W --method M --count N
--out X.npy`; PyTorch: the formula):
  saliency             |d score / d x|                                  [N, 28, 28]
  gradxinput           x * d score / d x                                [N, 28, 28]
  integrated_gradients (x - 0) * mean_k d score / d x (at alpha_k x), alpha_k = k/steps,
                       k = 1..steps (right Riemann sum, zero baseline; --steps 50)
  gradcam (pool2)      the default layer (the last one with [B, C, H, W] maps): A = the
                       max-pool output [N, 16, 4, 4]; alpha = spatial mean of
                       d score / d A; cam = relu(sum_k alpha_k A_k)     [N, 4, 4]
  gradcam (conv2)      `--layer conv2`: A = the convolution's output before its ReLU
                       [N, 16, 8, 8]                                    [N, 8, 8]

Per method the table shows:
  max rel   max|dnnc - torch| / max|torch| over the whole map array; asserted <= --tol
            (default 1e-4): the exit status is 1 when any method exceeds it;
  elem rel  max over the significant elements (|torch| >= 1% of max|torch|) of
            |dnnc - torch| / |torch|;
  agree     the share of elements with |dnnc - torch| <= 1e-3 |torch| + 1e-6 max|torch|;
  f32 floor max|torch f32 - torch f64| / max|torch f64|: PyTorch's own float32 rounding
            noise, for scale (the float64 maps use the same weights and images);
  last-tie  (first-tie with --ties last) max rel against PyTorch with the other rule
            for tied max-pool windows (see the caveat), informational;
  dnnc (s)  wall time of the `dnnc attribute` process (start-up, compiling, loading
            the data and weights, the computation, writing the .npy), informational;
  torch (ms) the PyTorch computation alone (median of --repeats runs, after one warm-up;
            model and data already in memory), informational: the two columns do not
            measure the same thing.

Caveats: ReLU at exactly 0 and max-pool windows with tied maxima have no unique
derivative. Ties are common on MNIST: on the black background a convolution's output
is its bias alone, and inside strokes of saturated (1.0) pixels whole patches are
equal; about half of pool1's windows tie. PyTorch's conventions are ReLU'(0) = 0 and
the whole gradient of a pooling window to its first maximum (row-major). dnnc (as of
this script) gives the window's gradient to its last maximum: its max pooling is a
chain of elementwise `max(acc, slice)` over the window's offsets in row-major order,
and the VJP of `max` gives a tie to the second operand (compiler/lower/src/conv.rs
pool2d, compiler/passes/src/vjp.rs BinaryOp::Max). Both are valid subgradients, and
the parameter gradients agree (tied positions have identical input patches), but the
input gradients differ: the gradient lands on the patch of another position of the
window, so saliency (nonzero on the background) differs by ~50% of its maximum and,
where strokes saturate, gradient x input and integrated gradients by ~15-20% (64
images, examples/cnn.safetensors).
Grad-CAM is unaffected (it averages the gradient over the map). The `last-tie` column,
and `--ties last` (the reference then routes ties to the last maximum, by pooling the
maps flipped along H and W), tell this convention apart from a real bug; the
default `--ties first` asserts agreement with PyTorch's own rule.

Requires numpy and torch (safetensors is optional: a small built-in reader is used
when it is missing). dnnc runs with the CPUs of `--threads` (its `attribute` has no
thread option: the process is restricted to the first N CPUs unless --no-pin).
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
WORK = os.path.join(ROOT, "target", "bench", "explain")
MODEL = os.path.join(ROOT, "examples", "mnist_cnn.dnn")
DATA = os.path.join(ROOT, "examples", "data", "mnist")
DEFAULT_WEIGHTS = os.path.join(ROOT, "examples", "cnn.safetensors")

# (row label, dnnc method, extra dnnc flags)
METHODS = [
    ("saliency", "saliency", []),
    ("gradxinput", "gradxinput", []),
    ("integrated_gradients", "integrated_gradients", None),  # + --steps
    ("gradcam (pool2)", "gradcam", []),
    ("gradcam (conv2)", "gradcam", ["--layer", "conv2"]),
]
SIGNIFICANT = 1e-2  # elements with |torch| >= this * max|torch| count for `elem rel`


# ---------------------------------------------------------------------------------
# Data and weights


def load_idx(name, count=None):
    """One IDX file (gzip, unsigned bytes) as a numpy array; the first `count` rows."""
    import numpy as np

    with gzip.open(os.path.join(DATA, name), "rb") as f:
        raw = f.read()
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != 0x08:
        raise ValueError(f"{name}: only unsigned-byte IDX files are supported")
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    a = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    return a if count is None else a[:count]


def load_safetensors(path):
    """{name: numpy array}; with the safetensors package if installed, else a minimal
    reader of the format (8-byte little-endian header size, JSON header, raw data)."""
    import numpy as np

    try:
        from safetensors.numpy import load_file

        return load_file(path)
    except ImportError:
        pass
    dtypes = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64,
              "I32": np.int32, "U8": np.uint8, "I8": np.int8}
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]]).reshape(
            info["shape"]).copy()
    return out


def pin(cpus):
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


def pin_cpus(threads, no_pin):
    """The CPUs dnnc is restricted to (the first `threads` allowed), or None."""
    if no_pin or not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[:threads] if threads < len(allowed) else None


def run(cmd, cpus=None, timeout=1800):
    """Runs a dnnc command in the repository root; returns (wall seconds, stdout)."""
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                         preexec_fn=pin(cpus))
    wall = time.perf_counter() - start
    if out.returncode != 0:
        tail = "\n".join((out.stderr or out.stdout).strip().splitlines()[-10:])
        raise RuntimeError(f"`{' '.join(cmd)}` exited with {out.returncode}:\n{tail}")
    return wall, out.stdout + out.stderr


# ---------------------------------------------------------------------------------
# PyTorch


class TorchCnn:
    """The CNN of examples/mnist_cnn.dnn as explicit functional code (so that the
    intermediate maps of conv2 and pool2 are at hand), at dnnc's weights."""

    def __init__(self, torch, weights, dtype, ties="first"):
        self.torch, self.F = torch, torch.nn.functional
        self.p = {k: torch.from_numpy(v.copy()).to(dtype) for k, v in weights.items()}
        self.ties = ties

    def pool(self, h):
        """2x2 max pooling. ties="first": PyTorch's own (a window's gradient goes to
        its first maximum, row-major); "last": to its last maximum (the pooling of the
        input flipped along H and W, flipped back: the windows tile the even-sized maps
        exactly, so they are the same windows, scanned backwards)."""
        if self.ties == "first":
            return self.F.max_pool2d(h, 2)
        assert h.shape[-1] % 2 == 0 and h.shape[-2] % 2 == 0
        return self.F.max_pool2d(h.flip(-1, -2), 2).flip(-1, -2)

    def forward(self, x, tap=None):
        """Logits of x [M, 28, 28]; with `tap` ("conv2" or "pool2"), returns
        (logits, that layer's output) where the output is a leaf of the rest of the
        graph's gradient (d logits / d output is what autograd computes for it)."""
        F, p = self.F, self.p
        h = x.reshape(x.shape[0], 1, 28, 28)
        h = self.pool(F.relu(F.conv2d(h, p["conv1.W"], p["conv1.b"])))
        a = F.conv2d(h, p["conv2.W"], p["conv2.b"])  # [M, 16, 8, 8]
        taps = {"conv2": a}
        h = self.pool(F.relu(a))  # [M, 16, 4, 4]
        taps["pool2"] = h
        h = F.relu(h.flatten(1) @ p["fc.W"] + p["fc.b"])
        logits = h @ p["head.W"] + p["head.b"]
        return (logits, taps[tap]) if tap else logits

    def score(self, logits, target):
        return logits.gather(-1, target.reshape([1] * (logits.dim() - 2) + [-1, 1])
                             .expand(*logits.shape[:-1], 1)).sum()

    def input_grad(self, x, target):
        x = x.detach().clone().requires_grad_(True)
        (g,) = self.torch.autograd.grad(self.score(self.forward(x), target), x)
        return g

    def saliency(self, x, target, steps):
        return self.input_grad(x, target).abs()

    def gradxinput(self, x, target, steps):
        return self.input_grad(x, target) * x

    def integrated_gradients(self, x, target, steps):
        torch = self.torch
        baseline = torch.zeros_like(x)
        alphas = (torch.arange(steps, dtype=x.dtype) + 1) / steps  # k/steps, k = 1..steps
        path = baseline + alphas.reshape(steps, 1, 1, 1) * (x - baseline)  # [S, N, 28, 28]
        path = path.detach().requires_grad_(True)
        logits = self.forward(path.reshape(-1, 28, 28)).reshape(steps, x.shape[0], -1)
        (g,) = torch.autograd.grad(self.score(logits, target), path)
        return (x - baseline) * g.mean(0)

    def gradcam(self, x, target, layer):
        torch = self.torch
        # x requires grad only so that the graph exists; the gradient is taken wrt `a`.
        logits, a = self.forward(x.detach().clone().requires_grad_(True), tap=layer)
        (g,) = torch.autograd.grad(self.score(logits, target), a)
        alpha = g.mean(dim=(2, 3), keepdim=True)
        return torch.relu((alpha * a).sum(1)).detach()

    def compute(self, method, layer, x, target, steps):
        if method == "gradcam":
            return self.gradcam(x, target, layer)
        return getattr(self, method)(x, target, steps).detach()


def pool_ties(torch, model, x):
    """How many 2x2 pooling windows (pool1, pool2) have a tied maximum, of how many."""
    F, p = model.F, model.p
    with torch.no_grad():
        h1 = F.relu(F.conv2d(x.reshape(-1, 1, 28, 28), p["conv1.W"], p["conv1.b"]))
        h2 = F.relu(F.conv2d(F.max_pool2d(h1, 2), p["conv2.W"], p["conv2.b"]))
    out = []
    for h in (h1, h2):
        n, c, hh, ww = h.shape
        w = h.reshape(n, c, hh // 2, 2, ww // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(
            n, c, hh // 2, ww // 2, 4)
        top = w.max(-1, keepdim=True).values
        ties = ((w == top).sum(-1) > 1).sum().item()
        out.append((ties, w.shape[0] * w.shape[1] * w.shape[2] * w.shape[3]))
    return out


# ---------------------------------------------------------------------------------
# Comparison


def compare(a, b, b64):
    """The statistics of dnnc's maps `a` against PyTorch's float32 maps `b` (and
    PyTorch's float64 maps `b64` for the float32 floor)."""
    import numpy as np

    a, b, b64 = (np.asarray(v, dtype=np.float64) for v in (a, b, b64))
    scale = float(np.max(np.abs(b)))
    diff = np.abs(a - b)
    max_rel = float(np.max(diff)) / scale if scale > 0 else float(np.max(diff))
    sig = np.abs(b) >= SIGNIFICANT * scale
    elem_rel = float(np.max(diff[sig] / np.abs(b[sig]))) if sig.any() else 0.0
    agree = float(np.mean(diff <= 1e-3 * np.abs(b) + 1e-6 * scale))
    scale64 = float(np.max(np.abs(b64)))
    floor = float(np.max(np.abs(b - b64))) / scale64 if scale64 > 0 else 0.0
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return {"max_rel": max_rel, "elem_rel": elem_rel, "agree": agree, "f32_floor": floor,
            "max_abs_torch": scale, "max_abs_diff": float(np.max(diff)),
            "worst_index": [int(i) for i in worst],
            "worst": [float(a[worst]), float(b[worst])],
            "samples_off": int(np.sum(np.max(diff.reshape(len(a), -1), 1) > 1e-4 * scale))}


def fmt(v, kind):
    if v is None:
        return "-"
    if kind == "e":
        return f"{v:.1e}"
    if kind == "%":
        return f"{100 * v:.2f}%"
    if kind == "s":
        return f"{v:.2f}"
    return f"{v:.1f}"


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="dnnc attribute (saliency, gradxinput, integrated gradients, "
        "Grad-CAM) against PyTorch autograd on the MNIST CNN.")
    p.add_argument("--dnnc", help="dnnc binary (default: target/release/dnnc if built, "
                   "else target/debug/dnnc)")
    p.add_argument("--weights", help="the CNN's weights (default examples/cnn.safetensors; "
                   "trained for 1 epoch into target/bench/explain/ if missing)")
    p.add_argument("--count", type=int, default=64, help="samples (default 64)")
    p.add_argument("--steps", type=int, default=50,
                   help="integrated gradients' steps (default 50)")
    p.add_argument("--threads", type=int, default=2, help="threads (default 2)")
    p.add_argument("--repeats", type=int, default=5,
                   help="timed repetitions of each PyTorch computation (default 5)")
    p.add_argument("--tol", type=float, default=1e-4,
                   help="max allowed max|dnnc - torch| / max|torch| (default 1e-4)")
    p.add_argument("--ties", choices=["first", "last"], default="first",
                   help="the reference's rule for max-pool windows with tied maxima: "
                   "the gradient goes to the first (PyTorch's own, default) or the last "
                   "maximum, row-major")
    p.add_argument("--quick", action="store_true", help="8 samples, 1 repetition")
    p.add_argument("--no-pin", action="store_true",
                   help="do not restrict dnnc to the first N CPUs")
    p.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    p.add_argument("--work", default=WORK, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.count, args.repeats = 8, 1
    if args.dnnc is None:
        release = os.path.join(ROOT, "target", "release", "dnnc")
        args.dnnc = release if os.path.exists(release) else os.path.join(
            ROOT, "target", "debug", "dnnc")
    if args.count < 1 or args.steps < 1 or args.threads < 1 or args.repeats < 1:
        p.error("--count, --steps, --threads and --repeats must be at least 1")
    return args


def main(argv):
    args = parse_args(argv)
    try:
        import numpy as np
        import torch
    except ImportError as e:
        print(f"explain.py: needs numpy and torch ({e})", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    cpus = pin_cpus(args.threads, args.no_pin)
    notes = []
    if not os.path.exists(args.dnnc):
        print(f"explain.py: no dnnc binary at {args.dnnc}", file=sys.stderr)
        return 2

    # Weights.
    weights_path = args.weights or DEFAULT_WEIGHTS
    if not os.path.exists(weights_path):
        if args.weights:
            print(f"explain.py: no weights at {args.weights}", file=sys.stderr)
            return 2
        weights_path = os.path.join(args.work, "cnn.safetensors")
        print(f"{DEFAULT_WEIGHTS} is missing: training 1 epoch into {weights_path} ...",
              flush=True)
        run([args.dnnc, "train", MODEL, "--epochs", "1", "--out", weights_path, "--quiet",
             "--no-plot", "--threads", str(args.threads)], cpus)
        notes.append(f"weights: trained for 1 epoch ({weights_path})")
    weights = load_safetensors(weights_path)
    print(f"explain.py: {os.path.relpath(MODEL, ROOT)}, weights {weights_path}, "
          f"{args.count} test images, IG steps {args.steps}, {args.threads} thread(s), "
          f"dnnc {args.dnnc}, torch {torch.__version__}")

    images = load_idx("test-images-idx3-ubyte.gz", args.count).astype(np.float32) \
        / np.float32(255.0)
    if len(images) < args.count:
        print(f"explain.py: the test split has only {len(images)} images", file=sys.stderr)
        return 2
    m32 = TorchCnn(torch, weights, torch.float32, args.ties)
    m64 = TorchCnn(torch, weights, torch.float64, args.ties)
    other_ties = "last" if args.ties == "first" else "first"
    m_alt = TorchCnn(torch, weights, torch.float32, other_ties)
    x32 = torch.from_numpy(images.copy())
    x64 = x32.to(torch.float64)

    # Targets: the predicted classes; dnnc's logits and predictions for comparison.
    with torch.no_grad():
        logits = m32.forward(x32)
    target = logits.argmax(1)
    images_path = os.path.join(args.work, "images.npy")
    logits_path = os.path.join(args.work, "dnnc_logits.npy")
    np.save(images_path, images)
    ok = True
    try:
        run([args.dnnc, "predict", MODEL, "--weights", weights_path, "--input", images_path,
             "--output", logits_path], cpus)
        dl = np.load(logits_path)
        dlog = float(np.max(np.abs(dl - logits.numpy())))
        same = int(np.sum(dl.argmax(1) == target.numpy()))
        print(f"check: logits max|dnnc - torch| {dlog:.1e}; predicted classes agree on "
              f"{same}/{args.count} samples")
        if same != args.count:
            notes.append("the predicted classes differ: the maps of those samples explain "
                         "different classes")
            ok = False
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        notes.append(f"no dnnc logits ({e})")

    ties = pool_ties(torch, m32, x32)
    results, rows = {}, []
    for label, method, extra in METHODS:
        flags = list(extra) if extra is not None else ["--steps", str(args.steps)]
        out_path = os.path.join(args.work, f"dnnc_{label.replace(' ', '_').strip('()')}.npy"
                                .replace("(", "").replace(")", ""))
        if os.path.exists(out_path):
            os.remove(out_path)
        cmd = [args.dnnc, "attribute", MODEL, "--weights", weights_path, "--method", method,
               "--count", str(args.count), "--out", out_path] + flags
        try:
            wall, _ = run(cmd, cpus)
            ours = np.load(out_path)
        except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as e:
            notes.append(f"{label}: dnnc failed: {e}")
            rows.append((label, None, None))
            ok = False
            continue
        layer = extra[1] if extra else "pool2"
        ref = m32.compute(method, layer, x32, target, args.steps).numpy()
        ref64 = m64.compute(method, layer, x64, target, args.steps).numpy()
        alt = m_alt.compute(method, layer, x32, target, args.steps).numpy()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            m32.compute(method, layer, x32, target, args.steps)
            times.append(time.perf_counter() - start)
        torch_ms = statistics.median(times) * 1e3
        if ours.shape != ref.shape:
            notes.append(f"{label}: dnnc's maps have shape {list(ours.shape)}, PyTorch's "
                         f"{list(ref.shape)}")
            rows.append((label, None, {"dnnc_s": wall, "torch_ms": torch_ms}))
            ok = False
            continue
        stats = compare(ours, ref, ref64)
        stats["other_ties_rel"] = float(np.max(np.abs(ours.astype(np.float64) - alt))
                                        / max(float(np.max(np.abs(alt))), 1e-30))
        stats.update({"dnnc_s": wall, "torch_ms": torch_ms, "shape": list(ref.shape),
                      "command": " ".join(cmd)})
        passed = stats["max_rel"] <= args.tol
        stats["ok"] = passed
        ok &= passed
        results[label] = stats
        rows.append((label, stats, None))
        if not passed:
            w = stats["worst_index"]
            notes.append(f"{label}: max|dnnc - torch| {stats['max_abs_diff']:.3e} at "
                         f"{w} (dnnc {stats['worst'][0]:.4e}, torch {stats['worst'][1]:.4e}); "
                         f"{stats['samples_off']}/{args.count} samples off by more than "
                         f"1e-4 max|torch|")

    # Table.
    cols = [("max rel", "max_rel", "e"), ("elem rel", "elem_rel", "e"),
            ("agree", "agree", "%"), ("f32 floor", "f32_floor", "e"),
            (f"{other_ties}-tie", "other_ties_rel", "e"),
            ("dnnc (s)", "dnnc_s", "s"), ("torch (ms)", "torch_ms", "f"), ("", "ok", None)]
    width = max(len(r[0]) for r in rows) + 2
    print()
    print("method".ljust(width) + "".join(f"{h:>11}" for h, _, _ in cols))
    for label, stats, partial in rows:
        line = label.ljust(width)
        for h, key, kind in cols:
            src = stats or partial or {}
            if key == "ok":
                cell = "" if stats is None and partial is None else (
                    "ok" if stats and stats["ok"] else "FAIL")
                if stats is None:
                    cell = "FAIL"
            else:
                cell = fmt(src.get(key), kind)
            line += f"{cell:>11}"
        print(line)
    print(f"(tolerance: max rel <= {args.tol:g}; dnnc (s) = the whole `dnnc attribute` "
          "process, torch (ms) = the computation alone)")
    print(f"pooling windows with tied maxima in these images: pool1 {ties[0][0]}/{ties[0][1]}, "
          f"pool2 {ties[1][0]}/{ties[1][1]}; reference: PyTorch with a tied window's "
          f"gradient to its {args.ties} maximum{' (its own rule)' if args.ties == 'first' else ''}"
          f"; {other_ties}-tie = max rel against the {other_ties}-maximum rule")
    for label, stats, _ in rows:
        if stats and not stats["ok"] and stats["other_ties_rel"] <= args.tol:
            notes.append(f"{label}: dnnc agrees with the {other_ties}-maximum rule for tied "
                         f"pooling windows ({stats['other_ties_rel']:.1e}): the maps differ "
                         f"only by that convention (--ties {other_ties} checks against it)")
    for n in notes:
        print(f"note: {n}")
    print("OK" if ok else "MISMATCH")

    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"config": {"count": args.count, "steps": args.steps,
                                  "threads": args.threads, "weights": weights_path,
                                  "ties": args.ties,
                                  "dnnc": args.dnnc, "tol": args.tol},
                       "methods": results, "pool_ties": ties, "notes": notes, "ok": ok},
                      f, indent=2)
        print(f"wrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
