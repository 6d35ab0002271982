#!/usr/bin/env python3
"""End-to-end check of `dnnc compile --weights W -o MODEL.onnx` against `dnnc predict`.

For each example model in `examples/` this script:

1. trains it for two steps (`dnnc train --steps 2 --quiet --no-plot --out ...`) to get
   weights that are not the seed's initialisation;
2. exports it to ONNX (`dnnc compile NAME.dnn --weights NAME.safetensors -o NAME.onnx`);
3. validates the file: `onnx.checker.check_model(..., full_check=True)`, a default-domain
   opset of at least 17, exactly one graph input whose first dimension is symbolic (a
   `dim_param` such as "batch") and whose other dimensions are concrete;
4. makes a seeded random input of batch 3 (2 with `--quick`) of the ONNX input's dtype
   (floats uniform in [0, 1), integers in [0, 10)) and saves it as `NAME.input.npy`;
5. runs `dnnc predict` on it; a model with one output writes `NAME.out.npy` (ONNX output
   "output"), one with several writes `NAME.out.<part>.npy` for ONNX output
   "output.<part>";
6. runs onnxruntime (CPU, one intra-op thread) on the same input and on its first row
   alone (batch 1, which proves the batch dimension is dynamic) and compares every
   output with dnnc's: equal shapes; for float outputs
   max |onnx - dnnc| <= tol * max(1, max |dnnc|); integer outputs equal by value.

It prints one line per example and a summary, and exits 1 if any example failed; a
failing example prints its reason (and a traceback for unexpected errors) and the rest
still run.

Needs python3 with numpy, onnx and onnxruntime. Run it from the repository root:

    python3 compiler/driver/tests/onnx_export.py --dnnc target/debug/dnnc
    python3 compiler/driver/tests/onnx_export.py --quick --examples mnist_mlp,mnist_cnn

Options: --dnnc PATH (default: the newer of target/release/dnnc and target/debug/dnnc),
--work DIR (default: target/onnx-export), --examples NAME,... (default: all of
EXAMPLES below), --quick (batch 2 instead of 3), --tol T (default: 1e-5).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

REPO_ROOT = Path(__file__).resolve().parents[3]

EXAMPLES = [
    "mnist_mlp",
    "mnist_cnn",
    "mnist_cnn_bn",
    "mnist_mlp_pruned",
    "mnist_autoencoder",
    "mnist_vae",
    "mnist_fgsm",
    "regression",
    "custom_layer",
    "shakespeare_lstm",
    "shakespeare_gpt",
    "mnist_gan",
    # These two read checkpoints other runs write (examples/cnn.safetensors, the
    # teacher; examples/transfer/base.safetensors, the pretrained body): CI trains
    # those first.
    "mnist_distill",
    "mnist_transfer",
    "onnx/gru",
    "onnx/rnn",
    "onnx/lstm3",
    "onnx/bilstm2",
    "onnx/topk",
]

# Layers that must become ONNX's own ops (not their unrolled time steps): op type →
# how many nodes, per example. A silent fallback to the unrolled form would still
# compute the same numbers, so the counts are checked too.
EXPECTED_OPS = {
    "shakespeare_lstm": {"LSTM": 1},
    "onnx/gru": {"GRU": 1},
    "onnx/rnn": {"RNN": 1},
    "onnx/lstm3": {"LSTM": 3},
    "onnx/bilstm2": {"LSTM": 2},
}

MIN_OPSET = 17
COMMAND_TIMEOUT_S = 300
TRAIN_STEPS = 2
INT_HIGH = 10  # integer inputs (token ids, class labels) are drawn from [0, INT_HIGH)

FLOAT_TYPES = {
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.DOUBLE,
    onnx.TensorProto.BFLOAT16,
}
INT_TYPES = {onnx.TensorProto.INT32, onnx.TensorProto.INT64}


class CheckFailed(Exception):
    """An expected kind of failure: its message is the whole story, no traceback."""


@dataclass
class Comparison:
    """How one output of one run compares with dnnc's."""

    output: str
    run: str
    max_abs: float = 0.0
    max_rel: float = 0.0
    problems: list[str] = field(default_factory=list)


@dataclass
class Result:
    name: str
    ok: bool = False
    opset: int | None = None
    nodes: int | None = None
    ops: str = ""
    max_abs: float | None = None
    max_rel: float | None = None
    error: str = ""


# ---------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Check dnnc's ONNX export against `dnnc predict` with onnxruntime.",
    )
    parser.add_argument(
        "--dnnc",
        type=Path,
        help="the dnnc binary (default: the newer of target/release/dnnc and "
        "target/debug/dnnc)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("target/onnx-export"),
        help="where weights, models, inputs and outputs go (default: target/onnx-export)",
    )
    parser.add_argument(
        "--examples",
        type=lambda s: [n.strip() for n in s.split(",") if n.strip()],
        default=list(EXAMPLES),
        help="comma-separated example names (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="batch 2 instead of 3")
    parser.add_argument(
        "--tol",
        type=float,
        default=1e-5,
        help="float outputs pass when max |a-b| <= tol * max(1, max |b|) (default: 1e-5)",
    )
    args = parser.parse_args(argv)
    if not args.examples:
        parser.error("--examples names no example")
    if args.tol < 0:
        parser.error("--tol must not be negative")
    return args


def repo_path(path: Path) -> Path:
    """`path` as given if it exists relative to the current directory, else relative to
    the repository root; absolute either way."""
    if path.is_absolute() or path.exists():
        return path.resolve()
    return (REPO_ROOT / path).resolve()


def find_dnnc(given: Path | None) -> Path:
    if given is not None:
        dnnc = repo_path(given)
        if not dnnc.is_file():
            raise SystemExit(f"error: --dnnc {given}: no such file")
        return dnnc
    candidates = [
        REPO_ROOT / "target" / profile / "dnnc" for profile in ("release", "debug")
    ]
    built = [c for c in candidates if c.is_file()]
    if not built:
        raise SystemExit(
            "error: no dnnc in target/release or target/debug; build it or pass --dnnc"
        )
    return max(built, key=lambda c: c.stat().st_mtime)


# ---------------------------------------------------------------------------------------
# Running dnnc


def run_dnnc(dnnc: Path, args: list[str]) -> None:
    """Runs dnnc from the repository root; raises CheckFailed with its output if it
    fails or takes longer than COMMAND_TIMEOUT_S."""
    cmd = [str(dnnc), *args]
    shown = " ".join(cmd)
    try:
        proc = subprocess.run(
            cmd,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as e:
        raise CheckFailed(
            f"`{shown}` took longer than {COMMAND_TIMEOUT_S} s\n"
            + describe_output(e.stdout, e.stderr)
        ) from None
    if proc.returncode != 0:
        raise CheckFailed(
            f"`{shown}` exited with {proc.returncode}\n"
            + describe_output(proc.stdout, proc.stderr)
        )


def describe_output(stdout: str | bytes | None, stderr: str | bytes | None) -> str:
    parts = []
    for label, text in (("stdout", stdout), ("stderr", stderr)):
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        if text and text.strip():
            parts.append(f"--- {label} ---\n{text.rstrip()}")
    return "\n".join(parts) if parts else "(no output)"


@dataclass
class Paths:
    """The files of one example."""

    model: Path
    weights: Path
    onnx: Path
    input: Path
    output: Path

    @staticmethod
    def of(name: str, work: Path) -> "Paths":
        # `onnx/gru` names compiler/driver/tests/onnx/gru.dnn (models beside the
        # examples: the GRU, the Elman RNN and sorting, which no example uses).
        if name.startswith("onnx/"):
            model = Path(__file__).resolve().parent / f"{name}.dnn"
            name = name.replace("/", "_")
        else:
            model = REPO_ROOT / "examples" / f"{name}.dnn"
        return Paths(
            model=model,
            weights=work / f"{name}.safetensors",
            onnx=work / f"{name}.onnx",
            input=work / f"{name}.input.npy",
            output=work / f"{name}.out.npy",
        )

    def remove_stale(self) -> None:
        """Deletes what an earlier run left, so that a step that writes nothing fails."""
        stale = [self.weights, self.onnx, self.input, self.output]
        stale += self.output.parent.glob(f"{self.output.stem}.*.npy")
        for path in stale:
            path.unlink(missing_ok=True)

    def dnnc_output(self, onnx_name: str) -> Path:
        """Where `dnnc predict` writes the output that ONNX calls `onnx_name`: `output`
        is the --output path itself, `output.PART` is `STEM.PART.npy` beside it."""
        if onnx_name == "output":
            return self.output
        prefix = "output."
        if not onnx_name.startswith(prefix) or len(onnx_name) == len(prefix):
            raise CheckFailed(
                f"ONNX output `{onnx_name}` is neither `output` nor `output.<part>`"
            )
        part = onnx_name[len(prefix) :]
        return self.output.with_name(f"{self.output.stem}.{part}{self.output.suffix}")


def train(dnnc: Path, p: Paths) -> None:
    run_dnnc(
        dnnc,
        [
            "train",
            str(p.model),
            "--steps",
            str(TRAIN_STEPS),
            "--quiet",
            "--no-plot",
            "--out",
            str(p.weights),
        ],
    )
    require_file(p.weights, "dnnc train")


def export(dnnc: Path, p: Paths) -> None:
    run_dnnc(
        dnnc,
        ["compile", str(p.model), "--weights", str(p.weights), "-o", str(p.onnx)],
    )
    require_file(p.onnx, "dnnc compile")


def predict(dnnc: Path, p: Paths) -> None:
    run_dnnc(
        dnnc,
        [
            "predict",
            str(p.model),
            "--weights",
            str(p.weights),
            "--input",
            str(p.input),
            "--output",
            str(p.output),
        ],
    )


def require_file(path: Path, step: str) -> None:
    if not path.is_file():
        raise CheckFailed(f"{step} succeeded but wrote no {path}")


# ---------------------------------------------------------------------------------------
# The ONNX file


def default_opset(model: onnx.ModelProto) -> int:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise CheckFailed("the model imports no default-domain (ai.onnx) opset")
    return max(versions)


def check_onnx(model: onnx.ModelProto) -> int:
    """Validates the model; returns its default-domain opset."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise CheckFailed(f"onnx.checker rejects the model: {e}") from None
    opset = default_opset(model)
    if opset < MIN_OPSET:
        raise CheckFailed(f"default-domain opset {opset} < {MIN_OPSET}")
    check_input(model.graph)
    return opset


def check_input(graph: onnx.GraphProto) -> None:
    inputs = list(graph.input)
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise CheckFailed(f"the graph has {len(inputs)} inputs ({names}), not 1")
    x = inputs[0]
    if not x.type.HasField("tensor_type"):
        raise CheckFailed(f"input `{x.name}` is not a tensor")
    dims = list(x.type.tensor_type.shape.dim)
    if not dims:
        raise CheckFailed(f"input `{x.name}` has no dimensions (no batch)")
    batch = dims[0]
    if batch.WhichOneof("value") != "dim_param" or not batch.dim_param:
        raise CheckFailed(
            f"input `{x.name}`'s first dimension is {describe_dim(batch)}, "
            "not symbolic (dim_param)"
        )
    for k, d in enumerate(dims[1:], start=1):
        if d.WhichOneof("value") != "dim_value" or d.dim_value <= 0:
            raise CheckFailed(
                f"input `{x.name}`'s dimension {k} is {describe_dim(d)}, not concrete"
            )


def describe_dim(d: onnx.TensorShapeProto.Dimension) -> str:
    kind = d.WhichOneof("value")
    if kind == "dim_value":
        return str(d.dim_value)
    if kind == "dim_param":
        return repr(d.dim_param)
    return "unknown"


def op_counts(graph: onnx.GraphProto) -> str:
    """`Gemm×3, Relu×2`: the top-level graph's op types, most used first."""
    counts = collections.Counter(
        f"{n.domain}:{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
        for n in graph.node
    )
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{op}×{count}" for op, count in ordered)


# ---------------------------------------------------------------------------------------
# Inputs and outputs


def make_input(graph: onnx.GraphProto, name: str, batch: int) -> np.ndarray:
    """A random input of the graph's input type with `batch` rows, seeded by `name`."""
    ttype = graph.input[0].type.tensor_type
    shape = [batch] + [d.dim_value for d in ttype.shape.dim[1:]]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(ttype.elem_type)
    rng = np.random.default_rng(seed=zlib.crc32(name.encode("utf-8")))
    if ttype.elem_type in FLOAT_TYPES:
        return rng.random(shape, dtype=np.float64).astype(dtype)
    if ttype.elem_type in INT_TYPES:
        return rng.integers(0, INT_HIGH, size=shape).astype(dtype)
    type_name = onnx.TensorProto.DataType.Name(ttype.elem_type)
    raise CheckFailed(f"input element type {type_name} is neither float nor int32/int64")


def load_dnnc_outputs(p: Paths, names: list[str]) -> dict[str, np.ndarray]:
    outputs = {}
    for name in names:
        path = p.dnnc_output(name)
        if not path.is_file():
            raise CheckFailed(f"dnnc predict wrote no {path} (for ONNX output `{name}`)")
        outputs[name] = np.load(path)
    return outputs


def ort_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def run_ort(
    session: ort.InferenceSession, input_name: str, x: np.ndarray, names: list[str]
) -> dict[str, np.ndarray]:
    values = session.run(names, {input_name: x})
    return dict(zip(names, values))


def compare(output: str, run: str, got: np.ndarray, want: np.ndarray, tol: float):
    """Compares onnxruntime's `got` with dnnc's `want` (float32)."""
    c = Comparison(output=output, run=run)
    if got.shape != want.shape:
        c.problems.append(f"shape {list(got.shape)} != dnnc's {list(want.shape)}")
        return c
    if got.size == 0:
        return c
    if np.issubdtype(got.dtype, np.floating):
        compare_floats(c, got.astype(np.float64), want.astype(np.float64), tol)
    else:
        compare_ints(c, got, want)
    return c


def compare_floats(c: Comparison, got: np.ndarray, want: np.ndarray, tol: float) -> None:
    finite = np.isfinite(got) & np.isfinite(want)
    same_nonfinite = np.array_equal(got[~finite], want[~finite], equal_nan=True)
    if not same_nonfinite:
        bad = int(np.count_nonzero(~finite))
        c.problems.append(f"{bad} non-finite values differ")
    if finite.any():
        diff = np.abs(got[finite] - want[finite])
        scale = max(1.0, float(np.max(np.abs(want[finite]))))
        c.max_abs = float(np.max(diff))
        c.max_rel = c.max_abs / scale
        if c.max_abs > tol * scale:
            with np.errstate(invalid="ignore"):
                where = np.where(finite, np.abs(got - want), -1.0)
            at = np.unravel_index(int(np.argmax(where)), got.shape)
            c.problems.append(
                f"max |diff| {c.max_abs:.3g} > {tol:g} * {scale:.3g} "
                f"(at {list(map(int, at))}: onnx {got[at]:.9g}, dnnc {want[at]:.9g})"
            )


def compare_ints(c: Comparison, got: np.ndarray, want: np.ndarray) -> None:
    if not np.all(np.isfinite(want)) or not np.array_equal(want, np.round(want)):
        c.problems.append("dnnc's values for an integer ONNX output are not integers")
        return
    got_f = got.astype(np.float64)
    mismatched = got_f != want
    if mismatched.any():
        c.max_abs = float(np.max(np.abs(got_f - want)))
        c.max_rel = c.max_abs
        c.problems.append(
            f"{int(np.count_nonzero(mismatched))} of {got.size} integer values differ"
        )


# ---------------------------------------------------------------------------------------
# One example


def check_example(
    result: Result, dnnc: Path, work: Path, batch: int, tol: float
) -> None:
    """Runs every step for `result.name`, filling in `result` as it goes (so that a
    failure still reports what was learnt before it); raises on failure."""
    name = result.name
    p = Paths.of(name, work)
    if not p.model.is_file():
        raise CheckFailed(f"no model file {p.model}")
    p.remove_stale()

    train(dnnc, p)
    export(dnnc, p)

    model = onnx.load(str(p.onnx))
    result.opset = check_onnx(model)
    result.nodes = len(model.graph.node)
    result.ops = op_counts(model.graph)
    for op, n in EXPECTED_OPS.get(name, {}).items():
        found = sum(1 for node in model.graph.node if node.op_type == op)
        if found != n:
            raise CheckFailed(f"{found} `{op}` nodes, expected {n} (the layer was unrolled?)")

    x = make_input(model.graph, name, batch)
    np.save(p.input, x)
    predict(dnnc, p)

    session = ort_session(p.onnx)
    input_name = model.graph.input[0].name
    names = [o.name for o in session.get_outputs()]
    graph_names = [o.name for o in model.graph.output]
    if names != graph_names:
        raise CheckFailed(f"onnxruntime's outputs {names} != the graph's {graph_names}")
    want = load_dnnc_outputs(p, names)

    full = run_ort(session, input_name, x, names)
    first_row = run_ort(session, input_name, x[:1], names)
    comparisons = []
    for out in names:
        comparisons.append(compare(out, f"batch {batch}", full[out], want[out], tol))
        comparisons.append(compare(out, "batch 1", first_row[out], want[out][:1], tol))

    result.max_abs = max(c.max_abs for c in comparisons)
    result.max_rel = max(c.max_rel for c in comparisons)
    problems = [
        f"output `{c.output}` ({c.run}): {problem}"
        for c in comparisons
        for problem in c.problems
    ]
    if problems:
        raise CheckFailed("\n".join(problems))
    result.ok = True


def run_example(name: str, dnnc: Path, work: Path, batch: int, tol: float) -> Result:
    """check_example, with any failure recorded in the result instead of raised."""
    result = Result(name=name)
    try:
        check_example(result, dnnc, work, batch, tol)
    except CheckFailed as e:
        result.error = str(e)
    except Exception:  # noqa: BLE001 - reported in full, and the example fails
        result.error = traceback.format_exc().rstrip()
    return result


# ---------------------------------------------------------------------------------------
# Report


def report_line(r: Result, width: int) -> str:
    fields = [r.name.ljust(width)]
    if r.opset is not None:
        fields.append(f"opset {r.opset}")
    if r.nodes is not None:
        fields.append(f"{r.nodes} nodes")
    if r.ops:
        fields.append(f"[{r.ops}]")
    if r.max_abs is not None:
        fields.append(f"max diff {r.max_abs:.3g} (rel {r.max_rel:.3g})")
    fields.append("OK" if r.ok else "FAIL")
    return "  ".join(fields)


def print_failure(r: Result) -> None:
    for line in r.error.splitlines():
        print(f"    {line}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    dnnc = find_dnnc(args.dnnc)
    work = repo_path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    batch = 2 if args.quick else 3
    print(
        f"dnnc: {dnnc}\nwork: {work}\nonnx {onnx.__version__}, "
        f"onnxruntime {ort.__version__}, numpy {np.__version__}; "
        f"batch {batch}, tol {args.tol:g}",
        flush=True,
    )

    width = max(len(n) for n in args.examples)
    results = []
    for name in args.examples:
        r = run_example(name, dnnc, work, batch, args.tol)
        results.append(r)
        print(report_line(r, width), flush=True)
        if not r.ok:
            print_failure(r)
            sys.stdout.flush()

    failed = [r.name for r in results if not r.ok]
    passed = len(results) - len(failed)
    print(f"\n{passed} of {len(results)} examples passed", end="")
    print(f"; failed: {', '.join(failed)}" if failed else "")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
