#!/usr/bin/env python3
"""Benchmark: how long `dnnc check` takes on a ~10,000-line .dnn file.

This is a benchmark, not a test: it fails only if the generated file is not accepted
(or the broken variant is not rejected), never because it is slow. The goal is a
median under 200 ms for the release binary.

    python3 bench/check_10k.py                  # 11 timed runs
    python3 bench/check_10k.py --quick          # 3 timed runs (CI)
    python3 bench/check_10k.py --dnnc target/debug/dnnc --runs 21

What it does:
1. generates target/bench/big.dnn: many functions and layers, a model made of
   stages of residual blocks, the MNIST dataset of examples/data/mnist (by absolute
   path) and a train block;
2. checks that `dnnc check big.dnn` accepts it (exit 0, no output);
3. generates target/bench/big_error.dnn, the same file with a single shape error in
   the middle, and checks that dnnc rejects it (exit 1) with exactly one error;
4. times `dnnc check big.dnn` (each run is a fresh process: parse, resolve and check
   everything, including reading the data files' headers) and prints the minimum,
   median and maximum wall time and the lines per second at the median.

Standard library only; the generated file is deterministic.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST = os.path.join(ROOT, "examples", "data", "mnist")

WIDTH = 128  # the model's feature width
HIDDEN = 256  # the hidden width of the MLP blocks
BLOCKS_PER_STAGE = 8


# ---------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------

def gen_function(j):
    """A top-level function; five shapes of function in rotation."""
    kind = j % 5
    if kind == 0:
        return f"""/// Leaky gate number {j}: elementwise, any shape.
fn act{j}(x: [..S], slope: Float = 0.0{j % 9 + 1}) -> [..S] {{
    let y = select(x > 0.0, x, slope * x)
    y * sigmoid(y)
}}
"""
    if kind == 1:
        return f"""/// Soft clipping number {j}: `c * tanh(x / c)`.
fn clip{j}(x: [..S], c: Float = {j % 7 + 1}.0) -> [..S] {{
    let inner = x / c
    c * tanh(inner)
}}
"""
    if kind == 2:
        return f"""/// Row normalisation number {j}: zero mean and unit variance over the last axis.
fn norm{j}(x: [B, N]) -> [B, N] {{
    let xc = x - mean(x, axis = -1, keepdims = true)
    let v = mean(xc ** 2.0, axis = -1, keepdims = true)
    xc * rsqrt(v + 1e-5)
}}
"""
    if kind == 3:
        return f"""/// Pairwise mixing number {j} on a fixed width of 16.
fn mix{j}(x: [B, 16]) -> [B, 8] {{
    let left = x[:, 0:8]
    let right = x[:, 8:16]
    left * sigmoid(right) + 0.{j % 10} * maximum(left, right)
}}
"""
    return f"""/// Pooling number {j} over the middle axis, then a stable softmax.
fn pool{j}(x: [B, T, D]) -> [B, D] {{
    let m = max(x, axis = 1)
    let s = sum(exp(x - stop_grad(max(x, axis = 1, keepdims = true))), axis = 1)
    softmax(m + log(s))
}}
"""


def act_fn(i, nfuncs):
    """The name of an elementwise (shape-preserving) function defined above."""
    kinds = [j for j in range(nfuncs) if j % 5 in (0, 1)]
    j = kinds[i % len(kinds)]
    return f"act{j}" if j % 5 == 0 else f"clip{j}"


def gen_block(i, nfuncs):
    """A layer `Block{i}` that maps `[B, WIDTH]` to `[B, WIDTH]`, and how to build it."""
    act = act_fn(i, nfuncs)
    kind = i % 5
    if kind == 0:
        body = f"""/// Block {i}: a residual MLP with a learned gain.
layer Block{i}(dim: Int, hidden: Int, scale: Float = 0.5) {{
    up   = Dense(dim, hidden)
    down = Dense(hidden, dim)
    /// Per-feature gain of the residual branch.
    param g: [dim] = ones

    fn forward(x: [B, dim]) -> [B, dim] {{
        let h = x |> up |> {act}
        let y = h |> dropout(0.1) |> down
        x + scale * y * g
    }}
}}
"""
        return body, f"Block{i}({WIDTH}, {HIDDEN})"
    if kind == 1:
        body = f"""/// Block {i}: a gated unit with an optional gate.
layer Block{i}(dim: Int, hidden: Int, gated: Bool = true) {{
    a = Dense(dim, hidden)
    b = Dense(dim, hidden)
    o = Dense(hidden, dim, bias = false)

    fn gate(x: [B, dim]) -> [B, hidden] {{
        if gated {{ sigmoid(a(x)) * b(x) }} else {{ relu(a(x)) }}
    }}

    fn forward(x: [B, dim]) -> [B, dim] {{
        x + o(gate(x))
    }}
}}
"""
        return body, f"Block{i}({WIDTH}, {HIDDEN}, gated = {'true' if i % 2 else 'false'})"
    if kind == 2:
        body = f"""/// Block {i}: per-head mixing through a reshape to `[B, heads, hd]`.
layer Block{i}(heads: Int, hd: Int) {{
    param W: [heads * hd, heads * hd] = glorot_uniform
    param bias: [hd] = zeros

    fn forward(x: [B, heads * hd]) -> [B, heads * hd] {{
        let h = reshape(x @ W, [B, heads, hd]) + bias
        let w = softmax(h)
        let s = sum(w * h, axis = -1, keepdims = true)
        x + reshape({act}(h - s), [B, heads * hd])
    }}
}}
"""
        return body, f"Block{i}(4, {WIDTH // 4})"
    if kind == 3:
        body = f"""/// Block {i}: two branches joined with `concat`.
layer Block{i}(dim: Int) {{
    l = Dense(dim, dim)
    r = Dense(dim, dim)
    m = Dense(2 * dim, dim)

    fn forward(x: [B, dim]) -> [B, dim] {{
        let both = concat([{act}(l(x)), gelu(r(x))], axis = 1)
        x + m(both)
    }}
}}
"""
        return body, f"Block{i}({WIDTH})"
    body = f"""/// Block {i}: layer normalisation, then a transposed-weight projection.
layer Block{i}(n: Int) {{
    param gamma: [n] = ones
    param beta: [n] = zeros
    param W: [n, n] = he_normal

    fn forward(x: [B, n]) -> [B, n] {{
        let xc = x - mean(x, axis = -1, keepdims = true)
        let v = mean(xc ** 2.0, axis = -1, keepdims = true)
        let y = xc * rsqrt(v + 1e-5) * gamma + beta
        x + leaky_relu(y @ transpose(W), slope = 0.1)
    }}
}}
"""
    return body, f"Block{i}({WIDTH})"


def gen_stage(k, blocks):
    """A layer `Stage{k}` that chains the given (name, constructor) blocks."""
    lines = [f"/// Stage {k}: {len(blocks)} blocks in a row.", f"layer Stage{k} {{"]
    for n, (_, ctor) in enumerate(blocks):
        lines.append(f"    b{n} = {ctor}")
    lines.append("")
    lines.append(f"    fn forward(x: [B, {WIDTH}]) -> [B, {WIDTH}] {{")
    chain = " |> ".join(f"b{n}" for n in range(len(blocks)))
    lines.append(f"        x |> {chain}")
    lines.append("    }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def gen_model(nstages):
    lines = [
        "/// The whole network: a stem, every stage, a head.",
        "model Big(classes: Int = 10) {",
        f"    stem = Dense(784, {WIDTH})",
    ]
    for k in range(nstages):
        lines.append(f"    s{k} = Stage{k}")
    lines.append(f"    head = Dense({WIDTH}, classes)")
    lines.append("")
    lines.append(f"    fn forward(x: [B, 784]) -> [B, classes] {{")
    lines.append("        let h0 = x |> stem |> relu")
    # Chain the stages in groups of 8 so that no single expression gets too long.
    prev = "h0"
    for g in range(0, nstages, 8):
        names = " |> ".join(f"s{k}" for k in range(g, min(g + 8, nstages)))
        cur = f"h{g // 8 + 1}"
        lines.append(f"        let {cur} = {prev} |> {names}")
        prev = cur
    lines.append(f"        {prev} |> head")
    lines.append("    }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def dnn_string(path):
    if '"' in path or "\\" in path or "\n" in path:
        sys.exit(f"check_10k.py: cannot put this path in a .dnn string: {path!r}")
    return f'"{path}"'


def gen_tail():
    def p(name):
        return dnn_string(os.path.join(MNIST, name))

    return f"""/// MNIST, by absolute path (the generated file does not live next to the data).
dataset mnist {{
    train = (image: idx({p("train-images-idx3-ubyte.gz")}) / 255.0 |> flatten,
             label: idx({p("train-labels-idx1-ubyte.gz")}))
    test  = (image: idx({p("test-images-idx3-ubyte.gz")}) / 255.0 |> flatten,
             label: idx({p("test-labels-idx1-ubyte.gz")}))
}}

train Big on mnist {{
    batch      = 64
    epochs     = 5
    let logits = model(image)
    loss       = cross_entropy(logits, label) + 1e-4 * sum(model.head.W ** 2.0)
    optimizer  = adamw(lr = 1e-3, weight_decay = 0.01)
    schedule   = cosine(warmup_epochs = 1)
    metrics    = [accuracy(logits, label), top_k_accuracy(logits, label, k = 3)]
    early_stop = (monitor = test.accuracy, patience = 2)
    seed       = 1
}}
"""


HEADER = """// Generated by bench/check_10k.py: a large, valid .dnn file for timing `dnnc check`.
// Do not edit; rerun the script.
use std::nn::Dense
use std::activations::{relu, leaky_relu, sigmoid, gelu, softmax}
use std::losses::cross_entropy
use std::regularization::dropout
use std::shape::flatten

"""


def generate(target_lines):
    """Returns (text, error_text): the valid file and the variant with one error."""
    nfuncs = 150
    funcs = [gen_function(j) for j in range(nfuncs)]
    fixed = HEADER.count("\n") + sum(f.count("\n") + 1 for f in funcs) + 50
    # Add blocks (with their share of stage lines) until the target is reached.
    blocks = []
    total = fixed
    while total < target_lines or len(blocks) % BLOCKS_PER_STAGE or not blocks:
        body, ctor = gen_block(len(blocks), nfuncs)
        blocks.append((body, ctor))
        total += body.count("\n") + 1 + 1  # the block, a blank line, its stage binding
        if len(blocks) % BLOCKS_PER_STAGE == 0:
            total += 7 + 1  # stage boilerplate and the model's binding
    stages = [blocks[s:s + BLOCKS_PER_STAGE] for s in range(0, len(blocks), BLOCKS_PER_STAGE)]

    parts = [HEADER]
    parts += [f + "\n" for f in funcs]
    parts += [b + "\n" for b, _ in blocks]
    parts += [gen_stage(k, st) + "\n" for k, st in enumerate(stages)]
    parts.append(gen_model(len(stages)) + "\n")
    parts.append(gen_tail())
    text = "".join(parts)

    # The error: in the middle block, the residual branch comes back at the wrong width.
    mid = len(blocks) // 2
    mid -= mid % 5  # a residual-MLP block
    good = blocks[mid][0]
    bad = good.replace("down = Dense(hidden, dim)", "down = Dense(hidden, hidden)")
    assert bad != good
    error_text = text.replace(good, bad, 1)
    return text, error_text


# ---------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------

def default_dnnc():
    for profile in ("release", "debug"):
        exe = os.path.join(ROOT, "target", profile, "dnnc")
        if os.path.exists(exe):
            return exe
    return os.path.join(ROOT, "target", "debug", "dnnc")


def run_check(dnnc, path, json_format=False):
    cmd = [dnnc, "check", path]
    if json_format:
        cmd[2:2] = ["--message-format", "json"]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def fail(msg, proc=None):
    print(f"check_10k.py: FAILED: {msg}", file=sys.stderr)
    if proc is not None:
        out = (proc.stdout + proc.stderr).strip()
        if out:
            print(out[:4000], file=sys.stderr)
    sys.exit(1)


def count_errors(proc):
    """Counts the error diagnostics in `--message-format json` output (one per line)."""
    n = 0
    for line in (proc.stdout + "\n" + proc.stderr).splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if d.get("severity") == "error":
            n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dnnc", default=None,
                    help="the dnnc binary (default: target/release/dnnc if it exists, "
                         "else target/debug/dnnc)")
    ap.add_argument("--runs", type=int, default=None, help="timed runs (default 11)")
    ap.add_argument("--quick", action="store_true", help="3 timed runs, for CI")
    ap.add_argument("--lines", type=int, default=10_000, help="approximate file size")
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "bench"),
                    help="where to write the generated files (default target/bench)")
    args = ap.parse_args()

    dnnc = os.path.abspath(args.dnnc or default_dnnc())
    runs = args.runs if args.runs is not None else (3 if args.quick else 11)
    if runs < 1:
        ap.error("--runs must be at least 1")
    if not os.access(dnnc, os.X_OK):
        fail(f"{dnnc} is not an executable; build it first with `cargo build -p dnnc`")
    if not os.path.isdir(MNIST):
        fail(f"{MNIST} is missing")

    os.makedirs(args.out, exist_ok=True)
    text, error_text = generate(args.lines)
    big = os.path.join(args.out, "big.dnn")
    big_error = os.path.join(args.out, "big_error.dnn")
    for path, content in ((big, text), (big_error, error_text)):
        with open(path, "w", newline="\n") as f:
            f.write(content)
    lines = text.count("\n")
    print(f"dnnc:      {dnnc}")
    shown = os.path.relpath(big, ROOT)
    if shown.startswith(".."):
        shown = os.path.abspath(big)
    print(f"generated: {shown} ({lines} lines, {len(text)} bytes)")

    proc = run_check(dnnc, big)
    if proc.returncode != 0 or proc.stdout or proc.stderr:
        fail(f"`dnnc check {big}` should accept the file silently, "
             f"exit status {proc.returncode}", proc)
    print("valid file:    exit 0, no output")

    proc = run_check(dnnc, big_error, json_format=True)
    nerr = count_errors(proc)
    if proc.returncode != 1 or nerr != 1:
        fail(f"`dnnc check {big_error}` should report exactly one error and exit 1; "
             f"exit status {proc.returncode}, {nerr} errors", proc)
    print("one-error file: exit 1, 1 error")

    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = run_check(dnnc, big)
        dt = time.perf_counter() - t0
        if proc.returncode != 0:
            fail("a timed run failed", proc)
        times.append(dt * 1000.0)
    med = statistics.median(times)
    print(f"runs:      {runs}")
    print(f"wall ms:   min {min(times):.1f}  median {med:.1f}  max {max(times):.1f}")
    print(f"lines/s:   {lines / (med / 1000.0):,.0f} (at the median)")


if __name__ == "__main__":
    main()
