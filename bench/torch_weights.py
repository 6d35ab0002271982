#!/usr/bin/env python3
"""Check `dnnc convert` against real PyTorch: weights trained in PyTorch, evaluated by dnnc.

For each model (`--models`, default both):
  mlp    - examples/mnist_mlp.dnn: nn.Linear 784-256-256-10 (fc1, fc2, head), ReLU;
           Adam lr 1e-3, batch 128.
  cnn_bn - examples/mnist_cnn_bn.dnn: x [B,1,28,28] -> conv1 Conv2d(1,8,5) -> bn1
           BatchNorm2d(8) -> ReLU -> pool1 MaxPool2d(2) -> conv2 Conv2d(8,16,5) -> bn2
           BatchNorm2d(16) -> ReLU -> pool2 MaxPool2d(2) -> flatten (256) -> fc
           Linear(256,120) -> ReLU -> drop Dropout(0.25) -> head Linear(120,10);
           AdamW lr 3e-3, weight decay 1e-4, cosine schedule with 1 epoch of linear
           warm-up (per step), batch 64, no augmentation.
The PyTorch modules' attribute names are the .dnn files' binding names, so their
state_dict keys are what `dnnc convert` maps (`fc1.weight` <-> `fc1.W` transposed, ...).

  1. train in PyTorch for `--epochs` epochs (seed 42) on the 8000 training digits of
     examples/data/mnist (images / 255.0, integer labels), then evaluate in eval mode on
     the 2000 test digits: mean cross-entropy (float64 over the float32 logits) and
     accuracy;
  2. save the state_dict with safetensors.torch.save_file to
     target/bench/torch_weights/NAME.torch.safetensors;
  3. `dnnc convert examples/NAME.dnn --from-torch NAME.torch.safetensors
      -o NAME.dnnc.safetensors`, then `dnnc eval examples/NAME.dnn --weights
     NAME.dnnc.safetensors --log NAME.eval.json`; dnnc's test accuracy must equal
     PyTorch's up to one digit of 2000 (0.0005) and its test loss must be within 1e-4
     relative of PyTorch's;
  4. round trip: `dnnc convert examples/NAME.dnn --to-torch NAME.dnnc.safetensors
     -o NAME.back.safetensors`; it must hold exactly the state_dict's keys, every tensor
     equal to the original bit for bit (same dtype and shape), except BatchNorm's
     `num_batches_tracked`, which need only be present as int64 (dnnc may write 0);
     and a fresh module's `load_state_dict(back, strict=True)` must succeed.
Prints a table (model, PyTorch acc/loss, dnnc acc/loss, differences, OK/FAIL) and the
round-trip results; exits 1 on any failure (a dnnc without `convert` included: the
PyTorch half still runs, so `--fixture` works without it).

`--fixture DIR` also writes the CnnBn state_dict to DIR/cnn_bn.torch.safetensors and
DIR/cnn_bn.torch.json = {"test_accuracy", "test_loss", "torch", "epochs"} (PyTorch's
numbers), a fixture for dnnc's own tests.

Run from anywhere (paths are relative to the repository root), with a Python that has
torch, numpy and safetensors (`/tmp/venv-torch/bin/pip install safetensors`):

    /tmp/venv-torch/bin/python bench/torch_weights.py
    /tmp/venv-torch/bin/python bench/torch_weights.py --models cnn_bn --epochs 1
    /tmp/venv-torch/bin/python bench/torch_weights.py --fixture compiler/driver/tests/filetests/data
    /tmp/venv-torch/bin/python bench/torch_weights.py --dnnc target/release/dnnc --threads 4

Options: --dnnc PATH (default: the newer of target/release/dnnc and target/debug/dnnc),
--models mlp,cnn_bn, --epochs N (default 2), --threads T (torch.set_num_threads,
default 2), --fixture DIR.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "examples", "data", "mnist")
OUT = os.path.join(ROOT, "target", "bench", "torch_weights")
SEED = 42
ACC_TOL = 0.0005  # one digit of 2000
LOSS_RTOL = 1e-4
MODELS = ("mlp", "cnn_bn")
DNN_FILES = {"mlp": "examples/mnist_mlp.dnn", "cnn_bn": "examples/mnist_cnn_bn.dnn"}
TIMEOUT = 1200.0  # seconds for one dnnc command (debug builds are slow)


# =================================================================================
# Data
# =================================================================================


# The IDX reader of train_race.py (the MNIST files of examples/data/mnist).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_race import load_idx  # noqa: E402


def load_mnist():
    """(x_train, y_train, x_test, y_test): float32 [N, 28, 28] in [0, 1], int64 labels."""
    import numpy as np
    import torch

    out = []
    for split in ("train", "test"):
        images = load_idx(f"{split}-images-idx3-ubyte.gz")
        labels = load_idx(f"{split}-labels-idx1-ubyte.gz")
        x = torch.from_numpy(images.astype(np.float32)) / 255.0
        y = torch.from_numpy(labels.astype(np.int64))
        out += [x, y]
    return tuple(out)


# =================================================================================
# Models (attribute names = the .dnn files' binding names)
# =================================================================================


def make_model(name):
    import torch
    from torch import nn

    if name == "mlp":
        class Mlp(nn.Module):
            """examples/mnist_mlp.dnn: 784-256-256-10, ReLU."""

            def __init__(self, hidden=256):
                super().__init__()
                self.fc1 = nn.Linear(784, hidden)
                self.fc2 = nn.Linear(hidden, hidden)
                self.head = nn.Linear(hidden, 10)

            def forward(self, x):  # x: [B, 28, 28] or [B, 784]
                x = torch.flatten(x, 1)
                x = torch.relu(self.fc1(x))
                x = torch.relu(self.fc2(x))
                return self.head(x)

        return Mlp()

    class CnnBn(nn.Module):
        """examples/mnist_cnn_bn.dnn."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 5)
            self.bn1 = nn.BatchNorm2d(8)
            self.pool1 = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(8, 16, 5)
            self.bn2 = nn.BatchNorm2d(16)
            self.pool2 = nn.MaxPool2d(2)
            self.fc = nn.Linear(16 * 4 * 4, 120)
            self.drop = nn.Dropout(0.25)
            self.head = nn.Linear(120, 10)

        def forward(self, x):  # x: [B, 28, 28]
            x = x.reshape(x.shape[0], 1, 28, 28)
            x = self.pool1(torch.relu(self.bn1(self.conv1(x))))  # [B, 8, 12, 12]
            x = self.pool2(torch.relu(self.bn2(self.conv2(x))))  # [B, 16, 4, 4]
            x = torch.relu(self.fc(torch.flatten(x, 1)))
            return self.head(self.drop(x))

    return CnnBn()


def train(name, epochs, data):
    """A model trained from seed SEED, in eval mode; and the seconds training took."""
    import torch
    import torch.nn.functional as F

    x_train, y_train = data[0], data[1]
    torch.manual_seed(SEED)
    model = make_model(name)
    if name == "mlp":
        batch = 128
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        sched = None
    else:
        batch = 64
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
        steps_per_epoch = math.ceil(len(x_train) / batch)
        warmup, total = steps_per_epoch, steps_per_epoch * epochs

        def lr_factor(step):  # linear warm-up over one epoch, then cosine to 0
            if step < warmup:
                return (step + 1) / warmup
            t = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    gen = torch.Generator().manual_seed(SEED)
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(perm), batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
    seconds = time.perf_counter() - start
    model.eval()
    return model, seconds


def evaluate(model, x, y):
    """(accuracy, mean cross-entropy) in eval mode; the loss in float64 over f32 logits."""
    import torch
    import torch.nn.functional as F

    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 500]) for i in range(0, len(x), 500)])
    loss = F.cross_entropy(logits.double(), y, reduction="mean").item()
    acc = (logits.argmax(1) == y).double().mean().item()
    return acc, loss


def save_state_dict(model, path):
    """The state_dict (contiguous copies) saved with safetensors; returns that dict."""
    from safetensors.torch import save_file

    sd = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file(sd, path)
    os.chmod(path, 0o644)  # safetensors creates 0600 files
    return sd


# =================================================================================
# dnnc
# =================================================================================


def default_dnnc():
    """The newer of target/release/dnnc and target/debug/dnnc (whichever exists)."""
    found = [p for p in (os.path.join(ROOT, "target", prof, "dnnc")
                         for prof in ("release", "debug")) if os.path.exists(p)]
    if not found:
        return os.path.join(ROOT, "target", "debug", "dnnc")
    return max(found, key=os.path.getmtime)


def run_dnnc(dnnc, args):
    """(ok, combined output) of `dnnc ARGS`, run in the repository root."""
    cmd = [dnnc] + args
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {TIMEOUT:.0f} s: {' '.join(cmd)}"
    except OSError as e:
        return False, f"cannot run {dnnc}: {e}"
    out = (p.stdout + p.stderr).strip()
    if p.returncode != 0:
        return False, f"`{' '.join(rel(c) for c in cmd)}` exited {p.returncode}:\n{out}"
    return True, out


def check_convert(dnnc):
    """None if `dnnc convert` exists, else why not (a clear message)."""
    if not os.path.exists(dnnc):
        return f"no dnnc binary at {rel(dnnc)} (cargo build -p dnnc, or pass --dnnc)"
    try:
        p = subprocess.run([dnnc, "convert", "--help"], cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot run {rel(dnnc)}: {e}"
    text = p.stdout + p.stderr
    if p.returncode != 0:
        if "unrecognized subcommand" in text or "invalid subcommand" in text:
            return (f"{rel(dnnc)} has no `convert` subcommand (an older build? rebuild it "
                    "or pass --dnnc)")
        return f"`{rel(dnnc)} convert --help` exited {p.returncode}:\n{text.strip()}"
    missing = [f for f in ("--from-torch", "--to-torch") if f not in text]
    if missing:
        return f"`{rel(dnnc)} convert` has no {' / '.join(missing)} option"
    return None


def dnnc_eval(dnnc, dnn_file, weights, log):
    """(accuracy, loss, None) from `dnnc eval`, or (None, None, error)."""
    if os.path.exists(log):
        os.remove(log)
    ok, out = run_dnnc(dnnc, ["eval", dnn_file, "--weights", weights, "--log", log])
    if not ok:
        return None, None, out
    try:
        with open(log) as f:
            res = json.load(f)
        return float(res["test_accuracy"]), float(res["test_loss"]), None
    except (OSError, ValueError, KeyError):
        pass
    # Fall back to the printed line (4 decimals only): `test_loss L  test_accuracy A`.
    m = re.search(r"test_loss\s+([-+0-9.eE]+)\s+test_accuracy\s+([-+0-9.eE]+)", out)
    if not m:
        return None, None, f"cannot find test_loss / test_accuracy in dnnc eval's output:\n{out}"
    return float(m.group(2)), float(m.group(1)), None


def round_trip(name, sd, back_path):
    """The problems of the --to-torch file against the original state_dict (empty: OK)."""
    import torch
    from safetensors.torch import load_file

    try:
        back = load_file(back_path)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a failure
        return [f"cannot load {rel(back_path)}: {e}"]
    problems = []
    missing = sorted(set(sd) - set(back))
    extra = sorted(set(back) - set(sd))
    if missing:
        problems.append(f"missing keys: {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected keys: {', '.join(extra)}")
    for key in sorted(set(sd) & set(back)):
        a, b = sd[key], back[key]
        if key.endswith("num_batches_tracked"):
            if b.dtype != torch.int64:
                problems.append(f"{key}: dtype {b.dtype}, expected torch.int64")
            continue
        if a.dtype != b.dtype or tuple(a.shape) != tuple(b.shape):
            problems.append(f"{key}: {b.dtype} {list(b.shape)}, expected "
                            f"{a.dtype} {list(a.shape)}")
            continue
        ab, bb = a.contiguous().numpy().tobytes(), b.contiguous().numpy().tobytes()
        if ab != bb:
            diff = (a.double() - b.double()).abs()
            n = int((a.contiguous().view(-1).numpy() != b.contiguous().view(-1).numpy()).sum())
            problems.append(f"{key}: {n} of {a.numel()} elements differ "
                            f"(max |diff| {diff.max().item():.3g})")
    try:
        make_model(name).load_state_dict(back, strict=True)
    except Exception as e:  # noqa: BLE001
        problems.append(f"load_state_dict(strict=True) failed: {e}")
    return problems


def rel(path):
    try:
        r = os.path.relpath(path, ROOT)
    except ValueError:
        return path
    return path if r.startswith("..") else r


# =================================================================================
# Main
# =================================================================================


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Train the MNIST MLP and CnnBn in PyTorch, convert their state_dicts "
        "with `dnnc convert --from-torch`, evaluate them with `dnnc eval` against "
        "PyTorch's numbers, and check `--to-torch` round-trips them bit for bit.")
    p.add_argument("--dnnc", help="dnnc binary (default: the newer of target/release/dnnc "
                   "and target/debug/dnnc)")
    p.add_argument("--models", default=",".join(MODELS),
                   help="comma-separated subset of mlp,cnn_bn (default both)")
    p.add_argument("--epochs", type=int, default=2, help="PyTorch epochs (default 2)")
    p.add_argument("--threads", type=int, default=2,
                   help="torch.set_num_threads (default 2)")
    p.add_argument("--fixture", metavar="DIR",
                   help="also write DIR/cnn_bn.torch.safetensors and DIR/cnn_bn.torch.json")
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.models or not set(args.models) <= set(MODELS):
        p.error("--models: a comma-separated subset of mlp,cnn_bn")
    args.models = [m for m in MODELS if m in args.models]
    if args.epochs < 1 or args.threads < 1:
        p.error("--epochs and --threads must be at least 1")
    if args.fixture and "cnn_bn" not in args.models:
        p.error("--fixture writes the CnnBn state_dict: --models must include cnn_bn")
    args.dnnc = os.path.abspath(args.dnnc) if args.dnnc else default_dnnc()
    return args


def main(argv):
    args = parse_args(argv)
    try:
        import numpy  # noqa: F401
        import safetensors  # noqa: F401
        import torch
    except ImportError as e:
        print(f"torch_weights.py: {e} (in {sys.executable}); use a Python with torch, "
              "numpy and safetensors, e.g. /tmp/venv-torch/bin/python "
              "(/tmp/venv-torch/bin/pip install safetensors)", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    os.makedirs(OUT, exist_ok=True)

    convert_error = check_convert(args.dnnc)
    if convert_error:
        sys.stdout.flush()
        print(f"error: {convert_error}\n  (running the PyTorch half only; the dnnc checks "
              "FAIL)\n", file=sys.stderr)
    print(f"dnnc: {rel(args.dnnc)}   torch {torch.__version__}   threads {args.threads}   "
          f"epochs {args.epochs}   seed {SEED}")

    data = load_mnist()
    x_test, y_test = data[2], data[3]
    rows, failures = [], []
    for name in args.models:
        model, seconds = train(name, args.epochs, data)
        t_acc, t_loss = evaluate(model, x_test, y_test)
        print(f"{name}: PyTorch trained {args.epochs} epoch(s) in {seconds:.1f} s: "
              f"test accuracy {t_acc:.4f}, loss {t_loss:.6f}")
        torch_path = os.path.join(OUT, f"{name}.torch.safetensors")
        sd = save_state_dict(model, torch_path)

        if args.fixture and name == "cnn_bn":
            os.makedirs(args.fixture, exist_ok=True)
            save_state_dict(model, os.path.join(args.fixture, "cnn_bn.torch.safetensors"))
            meta = {"test_accuracy": t_acc, "test_loss": t_loss,
                    "torch": torch.__version__, "epochs": args.epochs}
            with open(os.path.join(args.fixture, "cnn_bn.torch.json"), "w") as f:
                json.dump(meta, f, indent=2)
                f.write("\n")
            print(f"{name}: fixture written to {rel(args.fixture)}/cnn_bn.torch."
                  "{safetensors,json}")

        row = {"model": name, "t_acc": t_acc, "t_loss": t_loss, "d_acc": None,
               "d_loss": None, "ok": False, "rt": "not run"}
        rows.append(row)
        if convert_error:
            failures.append(f"{name}: {convert_error.splitlines()[0]}")
            continue

        dnn_file = DNN_FILES[name]
        dnnc_path = os.path.join(OUT, f"{name}.dnnc.safetensors")
        back_path = os.path.join(OUT, f"{name}.back.safetensors")
        for p in (dnnc_path, back_path):
            if os.path.exists(p):
                os.remove(p)
        ok, out = run_dnnc(args.dnnc, ["convert", dnn_file, "--from-torch", torch_path,
                                       "-o", dnnc_path])
        if not ok:
            failures.append(f"{name}: convert --from-torch failed: {out}")
            continue
        d_acc, d_loss, err = dnnc_eval(args.dnnc, dnn_file, dnnc_path,
                                       os.path.join(OUT, f"{name}.eval.json"))
        if err:
            failures.append(f"{name}: dnnc eval failed: {err}")
        else:
            row["d_acc"], row["d_loss"] = d_acc, d_loss
            acc_ok = abs(d_acc - t_acc) <= ACC_TOL + 1e-12
            loss_ok = abs(d_loss - t_loss) <= LOSS_RTOL * abs(t_loss)
            row["ok"] = acc_ok and loss_ok
            if not acc_ok:
                failures.append(f"{name}: dnnc accuracy {d_acc:.4f} vs PyTorch "
                                f"{t_acc:.4f} (tolerance {ACC_TOL})")
            if not loss_ok:
                failures.append(f"{name}: dnnc loss {d_loss:.6f} vs PyTorch {t_loss:.6f} "
                                f"(relative tolerance {LOSS_RTOL:g})")

        ok, out = run_dnnc(args.dnnc, ["convert", dnn_file, "--to-torch", dnnc_path,
                                       "-o", back_path])
        if not ok:
            row["rt"] = "FAIL"
            failures.append(f"{name}: convert --to-torch failed: {out}")
            continue
        problems = round_trip(name, sd, back_path)
        row["rt"] = "OK" if not problems else "FAIL"
        failures += [f"{name}: round trip: {p}" for p in problems]

    def fmt(v, spec):
        return "-" if v is None else format(v, spec)

    print()
    print(f"{'model':<8} {'torch acc':>9} {'torch loss':>11} {'dnnc acc':>9} "
          f"{'dnnc loss':>11} {'acc diff':>9} {'loss rel':>9} {'eval':>5} {'round trip':>10}")
    for r in rows:
        both = r["d_acc"] is not None
        acc_diff = r["d_acc"] - r["t_acc"] if both else None
        loss_rel = (r["d_loss"] - r["t_loss"]) / abs(r["t_loss"]) if both else None
        print(f"{r['model']:<8} {r['t_acc']:>9.4f} {r['t_loss']:>11.6f} "
              f"{fmt(r['d_acc'], '.4f'):>9} {fmt(r['d_loss'], '.6f'):>11} "
              f"{fmt(acc_diff, '+.4f'):>9} {fmt(loss_rel, '+.1e'):>9} "
              f"{'OK' if r['ok'] else 'FAIL':>5} {r['rt']:>10}")
    print(f"(tolerances: accuracy {ACC_TOL} = 1 digit of {len(y_test)}, loss {LOSS_RTOL:g} "
          "relative; round trip bit for bit + load_state_dict(strict=True))")
    if failures:
        sys.stdout.flush()
        print("\nFAILED:", *(f"  {f}" for f in failures), sep="\n", file=sys.stderr)
        return 1
    print("\nall OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
