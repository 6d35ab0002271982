#!/usr/bin/env python3
"""Benchmark: int8 inference of the MNIST CNN in dnnc and in onnxruntime, beside f32.

From the trained CNN (`examples/cnn.safetensors`: train examples/mnist_cnn.dnn first),
side by side in one run:

  dnnc f32     `dnnc bench examples/mnist_cnn.dnn --weights cnn.safetensors --json`
  dnnc int8    the same with the weights of `dnnc quantize` (calibrated on `--calibrate`
               training images, per-channel int8 weights, per-tensor activations):
               its products run as int8 kernels (AVX-512 VNNI here)
  ORT f32      onnxruntime on `dnnc compile --weights cnn.safetensors -o cnn.onnx`
  ORT int8     onnxruntime on `quantize_static` of that ONNX model (QDQ, per-channel
               int8 weights, int8 activations, MinMax calibration on the same training
               images): onnxruntime's own int8 kernels

Accuracy: every system on the 2,000 test images (dnnc with `dnnc eval`). Timing: the
median time of one image (batch 1) and of 256 images, `--rounds` interleaved rounds
(the systems' order rotating), each round's median over its runs, then the median over
rounds; dnnc's numbers are `dnnc bench`'s own medians (`infer_b1_us`,
`infer_b256_us`, in a subprocess per round). onnxruntime runs in this process with
`--threads` intra-op threads and spinning off, so that its idle threads take no core
from dnnc's subprocess. Printed: accuracies, the table (µs), and the ratios the
project's targets are about: int8 / f32 at batch 256 (target <= 0.4), dnnc int8 / ORT
int8 and dnnc int8 / ORT f32 at batch 256 (target < 1), int8 / f32 at batch 1
(target <= 1).

    /tmp/venv-onnx/bin/python bench/quantize.py            # 5 rounds, 2 threads
    /tmp/venv-onnx/bin/python bench/quantize.py --quick    # 1 round (smoke test)

Needs numpy and onnxruntime (its `quantization` package comes with it).
"""

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import logging

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "mnist_cnn.dnn"
WEIGHTS = ROOT / "examples" / "cnn.safetensors"
DATA = ROOT / "examples" / "data" / "mnist"


def idx(name: str) -> np.ndarray:
    """An IDX file of examples/data/mnist."""
    raw = gzip.open(DATA / name).read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def run(cmd: list[str]) -> str:
    out = subprocess.run(cmd, cwd=ROOT / "examples", capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"`{' '.join(cmd)}` failed:\n{out.stderr}")
    return out.stdout


class Images(CalibrationDataReader):
    """The calibration images for onnxruntime, one batch of 1 at a time."""

    def __init__(self, name: str, images: np.ndarray):
        self.items = iter([{name: images[i : i + 1]} for i in range(len(images))])

    def get_next(self):
        return next(self.items, None)


def session(path: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_accuracy(s: ort.InferenceSession, x: np.ndarray, y: np.ndarray) -> float:
    name = s.get_inputs()[0].name
    logits = np.concatenate([s.run(None, {name: x[i : i + 250]})[0] for i in range(0, len(x), 250)])
    return float((logits.argmax(1) == y).mean())


def ort_times(s: ort.InferenceSession, x: np.ndarray, runs: int) -> tuple[float, float]:
    """Median µs of a batch of 1 and of 256."""
    name = s.get_inputs()[0].name
    out = []
    for batch in (x[:1], x[:256]):
        for _ in range(3):
            s.run(None, {name: batch})
        t = []
        for _ in range(runs if len(batch) == 1 else max(3, runs // 10)):
            t0 = time.perf_counter()
            s.run(None, {name: batch})
            t.append(time.perf_counter() - t0)
        out.append(statistics.median(t) * 1e6)
    return out[0], out[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dnnc", default=str(ROOT / "target" / "release" / "dnnc"))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calibrate", type=int, default=256)
    p.add_argument("--runs", type=int, default=200, help="batch-1 runs per round")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.rounds, a.runs = 1, 40
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime's advice on pre-processing
    dnnc = a.dnnc if Path(a.dnnc).exists() else str(ROOT / "target" / "debug" / "dnnc")
    if not WEIGHTS.exists():
        sys.exit(f"{WEIGHTS} is missing: run `dnnc train examples/mnist_cnn.dnn` first")
    work = ROOT / "target" / "bench" / "quantize"
    work.mkdir(parents=True, exist_ok=True)
    q, f32_onnx, int8_onnx = work / "cnn_q.safetensors", work / "cnn.onnx", work / "cnn_int8.onnx"
    run([dnnc, "quantize", str(EXAMPLE), "--weights", str(WEIGHTS), "--calibrate", str(a.calibrate), "-o", str(q)])
    run([dnnc, "compile", str(EXAMPLE), "--weights", str(WEIGHTS), "-o", str(f32_onnx)])
    train = idx("train-images-idx3-ubyte.gz")[: a.calibrate].astype(np.float32) / 255.0
    test_x = idx("test-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    test_y = idx("test-labels-idx1-ubyte.gz").astype(np.int64)
    name = session(f32_onnx, 1).get_inputs()[0].name
    quantize_static(
        str(f32_onnx),
        str(int8_onnx),
        Images(name, train),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )
    sessions = {"ORT f32": session(f32_onnx, a.threads), "ORT int8": session(int8_onnx, a.threads)}

    accuracy = {}
    for label, w in (("dnnc f32", WEIGHTS), ("dnnc int8", q)):
        out = run([dnnc, "eval", str(EXAMPLE), "--weights", str(w)])
        accuracy[label] = float(out.split("test_accuracy")[1].split()[0])
    for label, s in sessions.items():
        accuracy[label] = ort_accuracy(s, test_x, test_y)

    systems = ["dnnc f32", "dnnc int8", "ORT f32", "ORT int8"]
    times: dict[str, list[tuple[float, float]]] = {s: [] for s in systems}
    for r in range(a.rounds):
        for k in range(len(systems)):
            label = systems[(r + k) % len(systems)]
            if label.startswith("dnnc"):
                w = WEIGHTS if label == "dnnc f32" else q
                out = run([dnnc, "bench", str(EXAMPLE), "--weights", str(w), "--json",
                           "--threads", str(a.threads), "--runs", str(max(5, a.runs // 10))])
                j = json.loads(out.strip().splitlines()[-1])
                times[label].append((j["infer_b1_us"], j["infer_b256_us"]))
            else:
                times[label].append(ort_times(sessions[label], test_x, a.runs))
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)

    med = {s: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v)) for s, v in times.items()}
    print(f"MNIST CNN, {a.threads} threads, {a.rounds} rounds; onnxruntime {ort.__version__}")
    print(f"{'':12}{'test accuracy':>15}{'batch 1 (us)':>15}{'batch 256 (us)':>16}")
    for s in systems:
        print(f"{s:12}{accuracy[s]:>15.4f}{med[s][0]:>15.1f}{med[s][1]:>16.1f}")
    ratio = lambda x, y, i: med[x][i] / med[y][i]
    print(f"dnnc int8 / dnnc f32, batch 256: {ratio('dnnc int8', 'dnnc f32', 1):.2f} (target <= 0.4)")
    print(f"dnnc int8 / ORT int8, batch 256: {ratio('dnnc int8', 'ORT int8', 1):.2f} (target < 1)")
    print(f"dnnc int8 / ORT f32,  batch 256: {ratio('dnnc int8', 'ORT f32', 1):.2f} (target < 1)")
    print(f"dnnc int8 / dnnc f32, batch 1:   {ratio('dnnc int8', 'dnnc f32', 0):.2f} (target <= 1)")
    print(f"accuracy drop, dnnc int8 against f32: {accuracy['dnnc f32'] - accuracy['dnnc int8']:+.4f} (target <= 0.003)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
