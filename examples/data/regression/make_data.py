#!/usr/bin/env python3
"""Writes the small synthetic regression dataset used by examples/regression.dnn.

Standard library only, fixed seed: running it again produces byte-identical files.

    python3 examples/data/regression/make_data.py

Each row has 8 features x0..x7, drawn uniformly from [-1, 1), and a target

    y = sin(pi * x0) + 0.5 * x1 * x2 + x3 ** 2 - 0.8 * x4 + 0.3 * exp(x5) * x6 + noise

where noise ~ Normal(0, 0.05). Feature x7 is pure distraction (it does not enter y).
"""

import math
import os
import random

SEED = 20240607
TRAIN_ROWS = 512
TEST_ROWS = 128
FEATURES = 8
NOISE_STD = 0.05

HERE = os.path.dirname(os.path.abspath(__file__))


def target(x):
    return (math.sin(math.pi * x[0])
            + 0.5 * x[1] * x[2]
            + x[3] ** 2
            - 0.8 * x[4]
            + 0.3 * math.exp(x[5]) * x[6])


def rows(rng, n):
    for _ in range(n):
        x = [rng.uniform(-1.0, 1.0) for _ in range(FEATURES)]
        y = target(x) + rng.gauss(0.0, NOISE_STD)
        yield x + [y]


def write(name, rng, n):
    path = os.path.join(HERE, name)
    header = ",".join([f"x{i}" for i in range(FEATURES)] + ["y"])
    # newline="\n": the same bytes on every platform.
    with open(path, "w", newline="\n") as f:
        f.write(header + "\n")
        for row in rows(rng, n):
            f.write(",".join(f"{v:.6f}" for v in row) + "\n")
    print(f"wrote {path}: {n} rows, {FEATURES} features + 1 target")


def main():
    rng = random.Random(SEED)
    # One stream, train first: the test rows are the continuation of the same sequence.
    write("train.csv", rng, TRAIN_ROWS)
    write("test.csv", rng, TEST_ROWS)


if __name__ == "__main__":
    main()
