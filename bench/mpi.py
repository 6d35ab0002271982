#!/usr/bin/env python3
"""Data-parallel training on MPI, measured and modelled (issue 19).

Measures, on this machine, side by side in interleaved rounds:
  * one epoch of the MNIST MLP and CNN as 1 process x 2 threads, 2 processes x 1
    thread (`mpirun -n 2`) and 1 process x 1 thread (medians of the epochs after the
    first, from `--log`);
  * the all-reduce of each model's gradients between 2 processes
    (`runtime/dist/examples/allreduce.rs`);
  * each model's training step as one process (`dnnc bench`, 2 threads and 1).
Then prints the scaling model of the README: a step on N nodes takes
compute/N + allreduce(bytes, N), with the all-reduce MPI libraries use for these sizes
(Rabenseifner's: a reduce-scatter and an all-gather by recursive halving and doubling,
2 (N-1)/N bytes / bandwidth + 2 log2(N) latency) over 25 Gb/s Ethernet with 25 us per
message, for 2, 8 and 64 nodes, for the MLP, the CNN and the Shakespeare GPT.

Needs a release `dnnc` built with `--features mpi` and the all-reduce example:
    cargo build --release --features mpi
    cargo build --release -p dnnc-dist --features mpi --example allreduce
    python3 bench/mpi.py [--rounds 3] [--epochs 3]
Nothing else may run meanwhile (2 cores).
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {
    # name: (example, parameters, batch)
    "mlp": ("examples/mnist_mlp.dnn", 269_322, 128),
    "cnn": ("examples/mnist_cnn.dnn", 35_474, 128),
    "gpt": ("examples/shakespeare_gpt.dnn", 821_068, 12),
}
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
LINK_BYTES_PER_S = 25e9 / 8
LATENCY_S = 25e-6


def epoch_seconds(dnnc, example, epochs, procs, threads, tmp):
    log = os.path.join(tmp, "log.jsonl")
    if os.path.exists(log):
        os.remove(log)
    cmd = [dnnc, "train", os.path.join(ROOT, example), "--epochs", str(epochs),
           "--threads", str(threads), "--no-plot", "--quiet",
           "--out", os.path.join(tmp, "w.safetensors"), "--log", log]
    if procs > 1:
        cmd = ["mpirun", "--oversubscribe", "-n", str(procs)] + cmd
    subprocess.run(cmd, check=True, env=ENV, stdout=subprocess.DEVNULL)
    with open(log) as f:
        secs = [json.loads(l)["seconds"] for l in f if l.strip()]
    return statistics.median(secs[1:] if len(secs) > 1 else secs)


def allreduce_us(example_bin, floats):
    out = subprocess.run(["mpirun", "--oversubscribe", "-n", "2", example_bin, str(floats), "1000"],
                         check=True, env=ENV, capture_output=True, text=True).stdout
    return float(out.split("median ")[1].split(" us")[0])


def step_ms(dnnc, example, threads):
    out = subprocess.run([dnnc, "bench", os.path.join(ROOT, example), "--threads", str(threads),
                          "--runs", "20", "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["train_step_ms"]


def allreduce_model_s(nbytes, n):
    return 2 * (n - 1) / n * nbytes / LINK_BYTES_PER_S + 2 * math.log2(n) * LATENCY_S


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dnnc", default=os.path.join(ROOT, "target/release/dnnc"))
    ap.add_argument("--allreduce", default=os.path.join(ROOT, "target/release/examples/allreduce"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    a = ap.parse_args()
    configs = [("1 process x 2 threads", 1, 2), ("2 processes x 1 thread", 2, 1),
               ("1 process x 1 thread", 1, 1)]
    times = {(m, c[0]): [] for m in ("mlp", "cnn") for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for m in ("mlp", "cnn"):
                for name, procs, threads in configs:
                    s = epoch_seconds(a.dnnc, MODELS[m][0], a.epochs, procs, threads, tmp)
                    times[(m, name)].append(s)
            print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    print("Epoch time (8000 MNIST samples + 2000 evaluated), median of rounds:")
    for m in ("mlp", "cnn"):
        base = statistics.median(times[(m, configs[0][0])])
        for name, _, _ in configs:
            t = statistics.median(times[(m, name)])
            print(f"  {m}  {name:24s} {t:6.3f} s   {t / base:5.2f}x of 1 process x 2 threads")
    print()
    print("All-reduce of the gradients between 2 processes on this machine (shared memory):")
    measured = {}
    for m, (_, params, _) in MODELS.items():
        measured[m] = allreduce_us(a.allreduce, params)
        print(f"  {m}  {params:9,d} floats ({params * 4 / 1e6:5.2f} MB): {measured[m]:7.1f} us")
    print()
    print("Step time as one process on this machine (dnnc bench): 2 threads, 1 thread")
    steps = {}
    for m, (ex, _, batch) in MODELS.items():
        steps[m] = (step_ms(a.dnnc, ex, 2), step_ms(a.dnnc, ex, 1))
        print(f"  {m}  batch {batch:3d}: {steps[m][0]:7.2f} ms, {steps[m][1]:7.2f} ms")
    print()
    print("Model: step on N nodes (each a machine like this one, 2 threads) over 25 Gb/s "
          "Ethernet, Rabenseifner's all-reduce, 25 us per message:")
    print("  model  N   compute/N   all-reduce   step     speed-up  (same global batch)"
          "   weak scaling (batch x N): efficiency")
    for m, (_, params, _) in MODELS.items():
        c = steps[m][0] / 1e3
        for n in (2, 8, 64):
            comm = allreduce_model_s(params * 4, n)
            strong = c / n + comm
            weak_eff = c / (c + comm)
            print(f"  {m}  {n:3d}  {c / n * 1e3:8.3f} ms  {comm * 1e3:8.3f} ms  {strong * 1e3:7.3f} ms"
                  f"  {c / strong:6.2f}x                     {weak_eff * 100:5.1f} %")


if __name__ == "__main__":
    main()
