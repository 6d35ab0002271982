#!/usr/bin/env python3
"""Benchmark: dnnc against its peers on the MNIST MLP and CNN, side by side.

Runs the same three workloads in dnnc and in PyTorch eager, torch.compile, JAX jit and
ONNX Runtime, interleaved and repeated, and prints a table of medians with ratios, per
model. See bench/PEERS.md for installation, method and caveats.

    python3 bench/peers.py                  # both models, 5 rounds, 2 threads
    python3 bench/peers.py --quick          # 1 round, few iterations (smoke test)
    python3 bench/peers.py --model cnn --threads 1 --rounds 9 --json target/bench/peers.json
    python3 bench/peers.py --systems dnnc,jax --dnnc target/debug/dnnc
    python3 bench/peers.py --dnnc-backends cranelift   # no dnnc-llvm column

Models (`--model mlp`, `cnn` or `all`, the default):
  mlp - examples/mnist_mlp.dnn: MLP 784-256-256-10, ReLU; train batch 128.
  cnn - examples/mnist_cnn.dnn: x [B,28,28] -> [B,1,28,28] -> Conv2d(1,8,5) -> ReLU ->
        max pool 2x2 -> Conv2d(8,16,5) -> ReLU -> max pool 2x2 -> flatten (NCHW, 256) ->
        Dense(256,120) -> ReLU -> Dense(120,10); train batch 64.
Both: softmax cross-entropy with integer labels averaged over the batch, Adam lr=1e-3,
betas (0.9, 0.999), eps=1e-8, no weight decay.

Workloads, per model:
  train  - one training step at the train block's batch: forward, backward, Adam update
           of all parameters (ms);
  b1     - inference (the logits) of one image (us);
  b256   - inference of 256 images (us).

dnnc is timed by `dnnc bench FILE --json --backend B` (its own medians; run once per
round as a subprocess), one column per backend of `--dnnc-backends`: `dnnc` for
cranelift, `dnnc-llvm` for llvm (only in a dnnc built with `--features llvm`; a binary
without a backend gets no column for it, with a note). Each peer runs in its own
long-lived worker process per model (this script started with `--worker NAME`), so that
the peers' thread pools, environment variables (XLA_FLAGS, OMP_NUM_THREADS) and
libraries do not interfere; the driver talks to the workers with one JSON object per
line. In every round each system runs each workload `--iters-*` times and reports the
median; the table shows the median over rounds. The order of the systems rotates from
round to round. The models run one after the other, each with its own workers.

All systems start from the same weights: generated once per model with numpy (seed 0,
PyTorch's default Linear / Conv2d init U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b),
written to target/bench/peers/MODEL/weights.safetensors under dnnc's names and layouts
(Dense `W` is [in, out], x @ W; Conv2d `W` is [out, in, kh, kw]), and loaded by every
peer (and by dnnc when its `bench` has `--weights`).

Before timing, the peers' batch-256 logits (initial weights), the loss of the first
training step and the parameters after it are compared across peers, and dnnc's
batch-256 logits (`dnnc predict` with the same weights and images) with the peers'.

Requires numpy and safetensors; torch, jax, onnxruntime (and onnx) are optional: a
peer whose package is missing is skipped with a note.
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
WORK = os.path.join(ROOT, "target", "bench", "peers")

# The models: the .dnn file dnnc runs, the train block's batch, one image's shape, and
# the parameters in dnnc's names, shapes and order (fan_in: PyTorch's init bound).
MODELS = {
    "mlp": {
        "file": "examples/mnist_mlp.dnn",
        "title": "MNIST MLP 784-256-256-10",
        "train_batch": 128,
        "image": (784,),
        "layers": [("fc1", "dense", (784, 256)), ("fc2", "dense", (256, 256)),
                   ("head", "dense", (256, 10))],
    },
    "cnn": {
        "file": "examples/mnist_cnn.dnn",
        "title": "MNIST CNN conv5x5(8)-pool-conv5x5(16)-pool-256-120-10",
        "train_batch": 64,
        "image": (28, 28),
        "layers": [("conv1", "conv", (8, 1, 5, 5)), ("conv2", "conv", (16, 8, 5, 5)),
                   ("fc", "dense", (256, 120)), ("head", "dense", (120, 10))],
    },
}
INFER_BATCH = 256
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8

WORKLOADS = ["train", "b1", "b256"]
LABELS = {
    "train": "train step (ms)",  # replaced per model by train step bN
    "b1": "infer b1 (us)",
    "b256": "infer b256 (us)",
    "compile": "compile (ms)",
}
SCALE = {"train": 1e-6, "b1": 1e-3, "b256": 1e-3}  # nanoseconds -> ms / us
DNNC_KEYS = {"train": "train_step_ms", "b1": "infer_b1_us", "b256": "infer_b256_us"}

# Peers: option key -> (column name, modules the peer needs, workloads it runs).
PEERS = {
    "torch": ("torch", ["torch"], WORKLOADS),
    "compile": ("torch.compile", ["torch"], WORKLOADS),
    "jax": ("jax.jit", ["jax"], WORKLOADS),
    "ort": ("onnxruntime", ["onnxruntime"], ["b1", "b256"]),
}
ALL_SYSTEMS = ["dnnc"] + list(PEERS)
DEFAULT_DNNC_BACKENDS = "cranelift,llvm"

CHECK_TOL = 1e-4  # max |difference| between peers' logits / parameters
SETUP_TIMEOUT = 900.0  # seconds for a worker to start, load, compile and check
ROUND_TIMEOUT = 900.0  # seconds for a worker to run one round


def labels(model):
    """Row labels of `model`'s tables (the train row names its batch)."""
    return {**LABELS, "train": f"train step b{MODELS[model]['train_batch']} (ms)"}


# =================================================================================
# Shared data: weights and inputs
# =================================================================================


def param_specs(model):
    """(name, shape, fan_in) of every parameter, in dnnc's names and layouts."""
    specs = []
    for name, kind, shape in MODELS[model]["layers"]:
        if kind == "dense":  # W [in, out]
            fan_in, out = shape[0], shape[1]
        else:  # conv: W [out, in, kh, kw]
            fan_in, out = shape[1] * shape[2] * shape[3], shape[0]
        specs.append((f"{name}.W", shape, fan_in))
        specs.append((f"{name}.b", (out,), fan_in))
    return specs


def make_weights(model):
    """Initial weights, dnnc layout, PyTorch's default Linear / Conv2d init."""
    import numpy as np

    rng = np.random.default_rng(0)
    weights = {}
    for name, shape, fan_in in param_specs(model):
        bound = 1.0 / np.sqrt(fan_in)
        weights[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
    return weights


def make_inputs(model):
    """A fixed batch: images uniform in [0, 1), labels 0..9."""
    import numpy as np

    spec = MODELS[model]
    rng = np.random.default_rng(1)
    images = rng.random((INFER_BATCH,) + spec["image"], dtype=np.float32)
    labels = rng.integers(0, 10, size=(spec["train_batch"],), dtype=np.int64)
    return images, labels


def write_shared(work, model):
    """Writes weights.safetensors, inputs.npz and images256.npy (for `dnnc predict`)
    under `work`; returns the weights' path."""
    import numpy as np
    from safetensors.numpy import save_file

    os.makedirs(work, exist_ok=True)
    weights_path = os.path.join(work, "weights.safetensors")
    save_file(make_weights(model), weights_path)
    images, labels = make_inputs(model)
    np.savez(os.path.join(work, "inputs.npz"), images=images, labels=labels)
    np.save(os.path.join(work, "images256.npy"), images)
    return weights_path


def load_shared(work):
    import numpy as np
    from safetensors.numpy import load_file

    weights = load_file(os.path.join(work, "weights.safetensors"))
    with np.load(os.path.join(work, "inputs.npz")) as data:
        images, labels = data["images"], data["labels"]
    return weights, images, labels


# =================================================================================
# Workers: one process per peer and model
# =================================================================================


def torch_model(torch, model, weights):
    """The model in PyTorch with the given (dnnc-layout) weights; returns (module,
    {dnnc layer name: torch layer})."""
    nn = torch.nn
    layers = {}
    for name, kind, shape in MODELS[model]["layers"]:
        if kind == "dense":
            layer = nn.Linear(shape[0], shape[1])
            w = weights[f"{name}.W"].T  # torch: [out, in]
        else:
            layer = nn.Conv2d(shape[1], shape[0], (shape[2], shape[3]))
            w = weights[f"{name}.W"]  # same [out, in, kh, kw] layout
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(w.copy()))
            layer.bias.copy_(torch.from_numpy(weights[f"{name}.b"].copy()))
        layers[name] = layer
    if model == "mlp":
        module = nn.Sequential(layers["fc1"], nn.ReLU(), layers["fc2"], nn.ReLU(),
                               layers["head"])
    else:
        module = nn.Sequential(
            nn.Unflatten(1, (1, 28)),  # [B, 28, 28] -> [B, 1, 28, 28]
            layers["conv1"], nn.ReLU(), nn.MaxPool2d(2),  # [B, 8, 12, 12]
            layers["conv2"], nn.ReLU(), nn.MaxPool2d(2),  # [B, 16, 4, 4]
            nn.Flatten(),  # NCHW order, 256
            layers["fc"], nn.ReLU(), layers["head"],
        )
    return module, layers


class TorchPeer:
    """PyTorch eager (`compiled=False`) or torch.compile (`compiled=True`)."""

    def __init__(self, threads, work, model, compiled):
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        self.torch, self.compiled = torch, compiled
        self.version = f"torch {torch.__version__}"
        weights, images, labels = load_shared(work)
        batch = MODELS[model]["train_batch"]
        self.x_train = torch.from_numpy(images[:batch].copy())
        self.y_train = torch.from_numpy(labels.copy())
        self.x_b1 = torch.from_numpy(images[:1].copy())
        self.x_b256 = torch.from_numpy(images.copy())

        # trained by the train workload
        self.model, self.layers = torch_model(torch, model, weights)
        # stays at init
        self.infer_model = torch_model(torch, model, weights)[0].requires_grad_(False)
        loss_fn = torch.nn.functional.cross_entropy
        net = self.model
        # Adam: the fused CPU kernel, the fastest of PyTorch's Adam implementations here
        # (for-loop, `foreach`, `fused`, and `foreach` compiled by torch.compile).
        self.opt = torch.optim.Adam(
            net.parameters(), lr=LR, betas=(BETA1, BETA2), eps=EPS, fused=True
        )
        if compiled:
            # Forward + loss compiled as one graph (AOTAutograd compiles the matching
            # backward), static shapes; inference: the model compiled per batch size.
            self.fwd_loss = torch.compile(lambda x, y: loss_fn(net(x), y), dynamic=False)
            self.infer_fn = torch.compile(self.infer_model, dynamic=False)
            self.grad_ctx = torch.no_grad
        else:
            self.fwd_loss = lambda x, y: loss_fn(net(x), y)
            self.infer_fn = self.infer_model
            self.grad_ctx = torch.inference_mode

    def train(self):
        self.opt.zero_grad(set_to_none=True)
        loss = self.fwd_loss(self.x_train, self.y_train)
        loss.backward()
        self.opt.step()
        return loss

    def infer(self, x):
        with self.grad_ctx():
            return self.infer_fn(x)

    def b1(self):
        return self.infer(self.x_b1)

    def b256(self):
        return self.infer(self.x_b256)

    def params(self):
        out = {}
        for name, layer in self.layers.items():
            w = layer.weight.detach().numpy()
            out[f"{name}.W"] = (w.T if isinstance(layer, self.torch.nn.Linear) else w).copy()
            out[f"{name}.b"] = layer.bias.detach().numpy().copy()
        return out

    def export_onnx(self, path):
        """Exports the (initial-weight) inference model; returns a note on how."""
        torch = self.torch
        kwargs = dict(
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
        )
        args = (self.x_b256,)
        try:  # the TorchScript exporter needs no onnxscript
            torch.onnx.export(self.infer_model, args, path, dynamo=False, **kwargs)
        except TypeError:  # torch too old for `dynamo=`
            torch.onnx.export(self.infer_model, args, path, **kwargs)
        return "exported from the torch model"


class JaxPeer:
    """JAX: the whole train step (hand-written Adam) in one jax.jit; jitted inference."""

    def __init__(self, threads, work, model):
        import warnings

        import jax
        import jax.numpy as jnp
        from jax import lax

        warnings.filterwarnings("ignore", message=".*[Dd]onat.*")
        self.jax = jax
        self.version = f"jax {jax.__version__} ({jax.default_backend()})"
        weights, images, labels = load_shared(work)
        batch = MODELS[model]["train_batch"]
        cpu = jax.devices("cpu")[0]
        put = lambda a: jax.device_put(a, cpu)  # noqa: E731
        self.x_train = put(images[:batch])
        self.y_train = put(labels.astype("int32"))
        self.x_b1 = put(images[:1])
        self.x_b256 = put(images)
        self.infer_params = {k: put(v) for k, v in weights.items()}
        params = {k: put(v.copy()) for k, v in weights.items()}
        # Adam's moments: distinct buffers, since the state is donated.
        m0 = {k: jnp.zeros_like(a) for k, a in params.items()}
        v0 = {k: jnp.zeros_like(a) for k, a in params.items()}
        self.state = (params, m0, v0, jnp.zeros((), jnp.int32))

        def mlp(p, x):
            h = jax.nn.relu(x @ p["fc1.W"] + p["fc1.b"])
            h = jax.nn.relu(h @ p["fc2.W"] + p["fc2.b"])
            return h @ p["head.W"] + p["head.b"]

        def conv_relu_pool(p, name, h):
            h = lax.conv_general_dilated(h, p[f"{name}.W"], (1, 1), "VALID",
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
            h = jax.nn.relu(h + p[f"{name}.b"][None, :, None, None])
            return lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2),
                                     "VALID")

        def cnn(p, x):
            h = x.reshape(x.shape[0], 1, 28, 28)
            h = conv_relu_pool(p, "conv1", h)  # [B, 8, 12, 12]
            h = conv_relu_pool(p, "conv2", h)  # [B, 16, 4, 4]
            h = h.reshape(h.shape[0], -1)  # NCHW order, 256
            h = jax.nn.relu(h @ p["fc.W"] + p["fc.b"])
            return h @ p["head.W"] + p["head.b"]

        forward = mlp if model == "mlp" else cnn

        def loss_fn(p, x, y):
            logp = jax.nn.log_softmax(forward(p, x), axis=-1)
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

        def step(state, x, y):
            p, m, v, t = state
            loss, g = jax.value_and_grad(loss_fn)(p, x, y)
            t = t + 1
            tf = t.astype(jnp.float32)
            c1 = 1.0 - BETA1**tf
            c2 = 1.0 - BETA2**tf
            m = {k: BETA1 * m[k] + (1.0 - BETA1) * g[k] for k in p}
            v = {k: BETA2 * v[k] + (1.0 - BETA2) * g[k] * g[k] for k in p}
            p = {k: p[k] - LR * (m[k] / c1) / (jnp.sqrt(v[k] / c2) + EPS) for k in p}
            return (p, m, v, t), loss

        self.step = jax.jit(step, donate_argnums=0)
        self.forward = jax.jit(forward)

    def train(self):
        self.state, loss = self.step(self.state, self.x_train, self.y_train)
        self.jax.block_until_ready((self.state, loss))
        return loss

    def b1(self):
        return self.jax.block_until_ready(self.forward(self.infer_params, self.x_b1))

    def b256(self):
        return self.jax.block_until_ready(self.forward(self.infer_params, self.x_b256))

    def params(self):
        import numpy as np

        return {k: np.asarray(v) for k, v in self.state[0].items()}


class OrtPeer:
    """ONNX Runtime, inference only, on the model exported by the torch worker."""

    def __init__(self, threads, work, model):
        import onnxruntime as ort

        self.version = f"onnxruntime {ort.__version__}"
        weights, images, _ = load_shared(work)
        path = os.path.join(work, "model.onnx")
        if os.path.exists(path):
            self.note = "model exported from torch"
        else:
            self.note = "model built with onnx.helper (no model exported by the torch worker)"
            build_onnx(model, weights, path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        start = time.perf_counter()
        self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.session_ms = (time.perf_counter() - start) * 1e3
        self.input = self.sess.get_inputs()[0].name
        self.x_b1 = images[:1].copy()
        self.x_b256 = images.copy()

    def b1(self):
        return self.sess.run(None, {self.input: self.x_b1})[0]

    def b256(self):
        return self.sess.run(None, {self.input: self.x_b256})[0]


def build_onnx(model, weights, path):
    """The model as an ONNX graph (MatMul + Add + Relu; Unsqueeze, Conv, MaxPool and
    Flatten for the CNN), for when torch is absent."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, h = [], [], "x"
    layers = MODELS[model]["layers"]
    if model == "cnn":
        inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
        nodes.append(helper.make_node("Unsqueeze", ["x", "axis1"], ["x4"]))
        h = "x4"
    for i, (name, kind, _) in enumerate(layers):
        inits.append(numpy_helper.from_array(weights[f"{name}.W"], f"{name}.W"))
        inits.append(numpy_helper.from_array(weights[f"{name}.b"], f"{name}.b"))
        last = i + 1 == len(layers)
        out = "logits" if last else f"{name}.out"
        if kind == "conv":
            nodes.append(helper.make_node("Conv", [h, f"{name}.W", f"{name}.b"],
                                          [f"{name}.conv"]))
            nodes.append(helper.make_node("Relu", [f"{name}.conv"], [f"{name}.relu"]))
            nodes.append(helper.make_node("MaxPool", [f"{name}.relu"], [out],
                                          kernel_shape=[2, 2], strides=[2, 2]))
            h = out
            if layers[i + 1][1] == "dense":
                nodes.append(helper.make_node("Flatten", [h], [f"{name}.flat"], axis=1))
                h = f"{name}.flat"
            continue
        nodes.append(helper.make_node("MatMul", [h, f"{name}.W"], [f"{name}.mm"]))
        nodes.append(helper.make_node("Add", [f"{name}.mm", f"{name}.b"], [out]))
        if not last:
            nodes.append(helper.make_node("Relu", [out], [f"{name}.relu"]))
            h = f"{name}.relu"
    image = list(MODELS[model]["image"])
    graph = helper.make_graph(
        nodes,
        model,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch"] + image)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(onnx_model, path)


def timed_ms(fn):
    start = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - start) * 1e3


def median_ns(fn, iters, warmup=2):
    """Median wall time of `fn()` over `iters` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    clock = time.perf_counter_ns
    for _ in range(iters):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def worker_setup(name, threads, work, model):
    """Builds the peer, records the check values, warms up; returns (peer, ready msg)."""
    import numpy as np

    info = {}
    if name in ("torch", "compile"):
        peer = TorchPeer(threads, work, model, compiled=name == "compile")
    elif name == "jax":
        peer = JaxPeer(threads, work, model)
    elif name == "ort":
        peer = OrtPeer(threads, work, model)
        info["compile_ms"] = peer.session_ms
        info["note"] = peer.note
    else:
        raise ValueError(f"unknown peer {name}")
    info["version"] = peer.version

    # Check values: batch-256 logits at the initial weights (the first call, so it
    # also compiles), the first training step's loss and the parameters after it.
    check = {}
    logits, first_b256 = timed_ms(peer.b256)
    check["logits256"] = np.asarray(logits, dtype=np.float32)
    _, first_b1 = timed_ms(peer.b1)
    first = first_b1 + first_b256
    if hasattr(peer, "train"):
        loss, first_train = timed_ms(peer.train)
        first += first_train
        check["loss1"] = np.asarray(float(loss), dtype=np.float64)
        for k, v in peer.params().items():
            check[f"param:{k}"] = v
    if name in ("compile", "jax"):
        info["compile_ms"] = first  # first calls: tracing + compiling (+ one run)
    np.savez(os.path.join(work, f"check_{name}.npz"), **check)
    if name == "torch":
        try:
            peer.export_onnx(os.path.join(work, "model.onnx"))
        except Exception as e:  # noqa: BLE001 - ORT then builds the graph itself
            info["note"] = f"ONNX export failed ({type(e).__name__}: {e})"

    # Warm-up (compiled code, caches, thread pools, allocator).
    for w in PEERS[name][2]:
        for _ in range(3):
            getattr(peer, w)()
    return peer, info


def worker_main(name, threads, work, model):
    """A worker: answers one JSON line on stdout per command line read from stdin."""
    import gc
    import traceback

    # Keep the protocol channel clean of whatever the libraries print to stdout.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(msg):
        proto.write(json.dumps(msg) + "\n")
        proto.flush()

    try:
        peer, info = worker_setup(name, threads, work, model)
    except Exception as e:  # noqa: BLE001 - reported to the driver, which skips us
        traceback.print_exc()
        send({"error": f"{type(e).__name__}: {e}"})
        return
    send({"ready": True, **info})

    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "quit":
            break
        result = {}
        gc.collect()
        gc.disable()
        try:
            for w in PEERS[name][2]:
                result[w] = median_ns(getattr(peer, w), msg["iters"][w])
        finally:
            gc.enable()
        send(result)


# =================================================================================
# Driver
# =================================================================================


class Worker:
    """The driver's handle on one worker process."""

    def __init__(self, key, args, model, work, env, log_path):
        self.key, self.column = key, PEERS[key][0]
        self.log_path = log_path
        self.log = open(log_path, "w")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", key]
        cmd += ["--threads", str(args.threads), "--work", work, "--model", model]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
            text=True,
            bufsize=1,
        )

    def recv(self, timeout):
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError("worker exited or timed out; log: " + self.log_path)
        return json.loads(line)

    def send(self, msg):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def close(self):
        try:
            self.send({"cmd": "quit"})
            self.proc.wait(timeout=30)
        except Exception:  # noqa: BLE001
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def log_tail(self, lines=8):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


def worker_env(key, threads, cpus):
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no bench/__pycache__ when torch imports us
    if key in ("torch", "compile"):
        env["OMP_NUM_THREADS"] = str(threads)
        env["MKL_NUM_THREADS"] = str(threads)
        env["TORCHINDUCTOR_COMPILE_THREADS"] = "1"
        # Cold compiles every run (no on-disk inductor caches): comparable compile times.
        env["TORCHINDUCTOR_FORCE_DISABLE_CACHES"] = "1"
    elif key == "jax":
        env["JAX_PLATFORMS"] = "cpu"
        flags = env.get("XLA_FLAGS", "")
        if threads == 1:
            flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        env["XLA_FLAGS"] = flags.strip()
    elif key == "ort":
        env["OMP_NUM_THREADS"] = str(threads)
    if cpus is not None:
        env["PEERS_BENCH_CPUS"] = ",".join(map(str, cpus))
    return env


def pin_cpus(threads, no_pin):
    """The CPUs every system is restricted to (the first `threads` allowed), or None."""
    if no_pin or not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[:threads] if threads < len(allowed) else None


def dnnc_flags(dnnc):
    """The options `dnnc bench --help` lists (--threads/--weights may be missing)."""
    out = subprocess.run([dnnc, "bench", "--help"], capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    known = ("--threads", "--weights", "--runs", "--json", "--backend")
    return {f for f in known if f in text}


def dnnc_column(backend):
    """The table column of a dnnc backend: `dnnc` for cranelift, else `dnnc-BACKEND`."""
    return "dnnc" if backend == "cranelift" else f"dnnc-{backend}"


def is_dnnc(column):
    return column == "dnnc" or column.startswith("dnnc-")


def backend_unsupported(text):
    """Whether dnnc's error text says that it lacks the backend (not some other error)."""
    return ("not in this build" in text or "--features" in text
            or "unknown backend" in text)


def probe_backend(dnnc, backend, flags):
    """None if `dnnc` has `backend`, else why not. Cheap: the backend is parsed before
    the file is read, so a missing file answers at once; an error about the backend
    means it is absent (a run that fails for it later is caught by its error text)."""
    if "--backend" not in flags:
        return None if backend == "cranelift" else "`dnnc bench` has no --backend"
    missing = os.path.join(WORK, "no-such-model.dnn")
    out = subprocess.run([dnnc, "bench", missing, "--backend", backend],
                         capture_output=True, text=True, timeout=60)
    text = (out.stdout + out.stderr).strip()
    if backend_unsupported(text):
        return text.splitlines()[-1].removeprefix("error: ")
    return None


def run_dnnc(args, backend, flags, file, weights_path, cpus, iters_train):
    cmd = [args.dnnc, "bench", file, "--json"]
    if "--backend" in flags:
        cmd += ["--backend", backend]
    if "--threads" in flags:
        cmd += ["--threads", str(args.threads)]
    if "--weights" in flags:
        cmd += ["--weights", weights_path]
    if "--runs" in flags:
        cmd += ["--runs", str(iters_train)]
    preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=args.dnnc_timeout,
        preexec_fn=preexec,
    )
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise RuntimeError(
            f"`{' '.join(cmd)}` exited with {out.returncode}: {out.stderr.strip()[-500:]}"
        )
    res = json.loads(lines[-1])
    if "--backend" in flags and res.get("backend", backend) != backend:
        raise ValueError(f"asked for backend {backend}, `dnnc bench` ran {res['backend']}")
    return res, cmd


def dnnc_logits(args, backend, flags, file, work):
    """dnnc's batch-256 logits at the shared weights (`dnnc predict`), or raises
    RuntimeError with dnnc's message (e.g. a weight name or shape that does not match)."""
    import numpy as np

    out_path = os.path.join(work, f"dnnc_logits_{backend}.npy")
    cmd = [args.dnnc, "predict", file, "--weights", os.path.join(work, "weights.safetensors"),
           "--input", os.path.join(work, "images256.npy"), "--output", out_path]
    if "--backend" in flags:
        cmd += ["--backend", backend]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                         timeout=args.dnnc_timeout)
    if out.returncode != 0:
        msg = (out.stderr.strip() or out.stdout.strip()).splitlines()
        raise RuntimeError(f"`dnnc predict` exited with {out.returncode}: "
                           f"{msg[-1] if msg else ''}")
    return np.load(out_path)


def check_name(key):
    return PEERS[key][0] if key in PEERS else key


def check_peers(work, columns, dnnc_checks):
    """Compares the check values the peers saved, and dnnc's logits (`dnnc_checks`:
    column -> {"logits256": array}), with the first peer's; returns (lines, summary)."""
    import numpy as np

    checks = {}
    for key in columns:
        path = os.path.join(work, f"check_{key}.npz")
        if os.path.exists(path):
            with np.load(path) as data:
                checks[key] = {k: data[k] for k in data.files}
    checks.update(dnnc_checks)
    if len(checks) < 2:
        return ["check: fewer than two systems ran; nothing to compare"], {}
    ref = next(iter(checks))
    lines, summary, ok = [], {"reference": check_name(ref)}, True
    parts = []
    for key, c in checks.items():
        if key == ref:
            continue
        a, b = c["logits256"], checks[ref]["logits256"]
        if a.shape != b.shape:
            summary[f"logits256 shape {check_name(key)}"] = list(a.shape)
            ok = False
            parts.append(f"{check_name(key)} shape {list(a.shape)} != {list(b.shape)}")
            continue
        d = float(np.max(np.abs(a - b)))
        summary[f"logits256 max|diff| {check_name(key)}"] = d
        ok &= d < CHECK_TOL
        parts.append(f"{check_name(key)} {d:.1e}")
    lines.append(f"check: b256 logits max|diff| vs {check_name(ref)}: " + ", ".join(parts))

    trainers = [k for k, c in checks.items() if "loss1" in c]
    if len(trainers) >= 2:
        tref = trainers[0]
        losses = ", ".join(f"{check_name(k)} {float(checks[k]['loss1']):.6f}"
                           for k in trainers)
        pdiffs = []
        for key in trainers[1:]:
            dl = abs(float(checks[key]["loss1"]) - float(checks[tref]["loss1"]))
            dp = max(
                float(np.max(np.abs(checks[key][k] - checks[tref][k])))
                for k in checks[tref]
                if k.startswith("param:")
            )
            summary[f"loss1 |diff| {check_name(key)}"] = dl
            summary[f"params after step 1 max|diff| {check_name(key)}"] = dp
            ok &= dl < CHECK_TOL and dp < CHECK_TOL
            pdiffs.append(f"{check_name(key)} {dp:.1e}")
        lines.append(f"check: first-step loss: {losses}")
        lines.append(
            f"check: params after one Adam step max|diff| vs {check_name(tref)}: "
            + ", ".join(pdiffs)
        )
    summary["ok"] = bool(ok)
    lines.append(f"check: {'OK' if ok else 'MISMATCH'} (tolerance {CHECK_TOL:g})")
    return lines, summary


def fmt(value):
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def print_table(title, rows, columns, cells, row_labels=LABELS):
    width = max(len(title), *(len(row_labels.get(r, r)) for r in rows))
    colw = [max(len(c), 9) for c in columns]
    print(title.ljust(width) + "".join("  " + c.rjust(w) for c, w in zip(columns, colw)))
    for r in rows:
        line = row_labels.get(r, r).ljust(width)
        line += "".join("  " + fmt(cells.get((r, c))).rjust(w) for c, w in zip(columns, colw))
        print(line)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="dnnc against PyTorch, torch.compile, JAX and ONNX Runtime "
        "on the MNIST MLP and CNN (see bench/PEERS.md)."
    )
    p.add_argument("--threads", type=int, default=2, help="threads per system (default 2)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--iters-train", type=int, default=50, help="train steps per round")
    p.add_argument("--iters-b1", type=int, default=500, help="b1 inferences per round")
    p.add_argument("--iters-b256", type=int, default=50, help="b256 inferences per round")
    p.add_argument("--quick", action="store_true", help="1 round, few iterations (smoke test)")
    p.add_argument("--json", metavar="PATH", help="also write all medians to PATH")
    p.add_argument("--dnnc", help="dnnc binary (default: target/release/dnnc if built, "
                   "else target/debug/dnnc)")
    p.add_argument("--model", default="all",
                   help="mlp (examples/mnist_mlp.dnn), cnn (examples/mnist_cnn.dnn), "
                   "or all (default: both, one after the other); the path of one of "
                   "these two files also works")
    p.add_argument("--dnnc-file", metavar="FILE",
                   help="the .dnn file dnnc runs instead of the model's example (one "
                   "model only; the peers still run the model of --model)")
    p.add_argument("--systems", default=",".join(ALL_SYSTEMS),
                   help=f"comma-separated subset of {','.join(ALL_SYSTEMS)}")
    p.add_argument("--no-pin", action="store_true",
                   help="do not restrict every system to the first N CPUs")
    p.add_argument("--dnnc-backends", default=DEFAULT_DNNC_BACKENDS,
                   help="comma-separated dnnc backends, one column each: `dnnc` for "
                   "cranelift, `dnnc-B` for B (default cranelift,llvm; a backend the "
                   "binary lacks is skipped with a note)")
    p.add_argument("--dnnc-timeout", type=float, default=1800.0,
                   help="seconds one `dnnc bench` run may take")
    p.add_argument("--work", default=WORK, help=argparse.SUPPRESS)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:  # started by the driver: --model is one model's name
        return args
    if args.quick:
        args.rounds, args.iters_train, args.iters_b1, args.iters_b256 = 1, 5, 50, 5
    if args.dnnc is None:
        release = os.path.join(ROOT, "target", "release", "dnnc")
        args.dnnc = release if os.path.exists(release) else os.path.join(
            ROOT, "target", "debug", "dnnc")
    model = args.model.strip()
    by_file = {os.path.realpath(os.path.join(ROOT, m["file"])): k for k, m in MODELS.items()}
    if model in ("all", "both"):
        args.models = list(MODELS)
    elif model in MODELS:
        args.models = [model]
    elif os.path.realpath(model) in by_file:
        args.models = [by_file[os.path.realpath(model)]]
    else:
        p.error(f"--model {model}: choose mlp, cnn or all (the peers implement only these "
                "two models; --dnnc-file FILE runs another file in dnnc)")
    if args.dnnc_file and len(args.models) != 1:
        p.error("--dnnc-file needs one model (--model mlp or --model cnn)")
    if args.dnnc_file:  # dnnc runs in the repository root
        args.dnnc_file = os.path.abspath(args.dnnc_file)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in ALL_SYSTEMS]
    if unknown:
        p.error(f"unknown systems {unknown}; choose from {ALL_SYSTEMS}")
    args.systems = systems
    backends = [b.strip() for b in args.dnnc_backends.split(",") if b.strip()]
    if "dnnc" in systems and not backends:
        p.error("--dnnc-backends is empty")
    args.dnnc_backends = list(dict.fromkeys(backends))
    if args.threads < 1 or args.rounds < 1:
        p.error("--threads and --rounds must be at least 1")
    return args


def setup_dnnc(args):
    """Probes the dnnc binary; returns (flags, {column: backend}, notes)."""
    notes, dnnc_backend = [], {}
    if "dnnc" not in args.systems:
        return None, dnnc_backend, notes
    if not os.path.exists(args.dnnc):
        notes.append(f"dnnc: skipped (no binary at {args.dnnc}; cargo build -p dnnc)")
        return None, dnnc_backend, notes
    debug = os.path.join(ROOT, "target", "debug", "dnnc")
    if os.path.exists(debug) and os.path.realpath(args.dnnc) != os.path.realpath(debug) \
            and os.path.getmtime(args.dnnc) < os.path.getmtime(debug):
        notes.append(f"dnnc: {args.dnnc} is older than target/debug/dnnc; rebuild it "
                     "(cargo build --release -p dnnc [--features llvm]) or pass --dnnc")
    flags = dnnc_flags(args.dnnc)
    for backend in args.dnnc_backends:
        column = dnnc_column(backend)
        why = probe_backend(args.dnnc, backend, flags)
        if why is not None:
            hint = "; see bench/PEERS.md" if backend == "llvm" else ""
            notes.append(f"{column}: skipped ({args.dnnc}: {why}{hint})")
            continue
        dnnc_backend[column] = backend
    missing = [f for f in ("--threads", "--weights") if f not in flags]
    if missing and dnnc_backend:
        notes.append(f"dnnc: `dnnc bench` has no {' / '.join(missing)} yet; run "
                     "without (its own thread count / its own initial weights)")
    return flags, dnnc_backend, notes


def bench_model(args, model, cpus, iters, dnnc_flagset, dnnc_backend):
    """Sets up, checks and times one model on every system; prints its tables and
    returns its JSON report."""
    spec = MODELS[model]
    work = os.path.join(args.work, model)
    file = args.dnnc_file or spec["file"]
    row_labels = labels(model)
    # Stale check files, dnnc logits or ONNX model from an earlier run must not be used.
    os.makedirs(work, exist_ok=True)
    for f in os.listdir(work):
        if f.startswith(("check_", "dnnc_logits_")) or f == "model.onnx":
            os.remove(os.path.join(work, f))
    weights_path = write_shared(work, model)
    notes, columns, meta = [], [], {}
    dnnc_backend = dict(dnnc_backend)

    print()
    print(f"== {model}: {spec['title']} (dnnc: {file}; train batch {spec['train_batch']})",
          flush=True)

    # dnnc: its logits at the shared weights, for the check (also catches weights whose
    # names or shapes do not match the model: dnnc then says which).
    dnnc_checks = {}
    for column, backend in list(dnnc_backend.items()):
        columns.append(column)
        meta[column] = {"binary": args.dnnc, "model": file, "backend": backend}
        if "--weights" not in dnnc_flagset:
            continue
        try:
            dnnc_checks[column] = {"logits256": dnnc_logits(args, backend, dnnc_flagset,
                                                            file, work)}
        except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as e:
            notes.append(f"{column}: no logits for the check ({e})")

    # Peers: start the workers one at a time (torch before ort: it exports the model).
    workers = []
    for key in [k for k in PEERS if k in args.systems]:
        column, modules, _ = PEERS[key]
        absent = [m for m in modules if importlib.util.find_spec(m) is None]
        if absent:
            notes.append(f"{column}: skipped ({', '.join(absent)} not installed)")
            continue
        print(f"setting up {column} ...", flush=True)
        w = Worker(key, args, model, work, worker_env(key, args.threads, cpus),
                   os.path.join(work, f"worker_{key}.log"))
        try:
            msg = w.recv(SETUP_TIMEOUT)
        except RuntimeError as e:
            msg = {"error": str(e)}
        if "error" in msg:
            notes.append(f"{column}: skipped ({msg['error']}); see {w.log_path}")
            tail = w.log_tail()
            if tail:
                print(tail, file=sys.stderr)
            w.close()
            continue
        meta[key] = {k: v for k, v in msg.items() if k != "ready"}
        if "note" in msg:
            notes.append(f"{column}: {msg['note']}")
        workers.append(w)
        columns.append(column)

    # The reference of the check is the first peer (torch when it runs), then dnnc.
    check_lines, check_summary = check_peers(work, [w.key for w in workers], dnnc_checks)
    for line in check_lines:
        print(line)
    if "--weights" not in (dnnc_flagset or ()) and dnnc_backend:
        print("check: dnnc not compared (its `bench` has no --weights)")

    # Rounds: every system runs every workload once per round; the order rotates.
    samples = {c: {w: [] for w in WORKLOADS + ["compile"]} for c in columns}
    order = list(dnnc_backend) + workers
    failed = set()
    for rnd in range(args.rounds):
        shift = rnd % len(order) if order else 0
        for system in order[shift:] + order[:shift]:
            if isinstance(system, str):  # a dnnc column
                if system in failed:
                    continue
                backend = dnnc_backend[system]
                try:
                    res, cmd = run_dnnc(args, backend, dnnc_flagset, file, weights_path,
                                        cpus, iters["train"])
                except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
                    if backend_unsupported(str(e)):
                        notes.append(f"{system}: skipped ({args.dnnc} has no backend "
                                     f"{backend}): {e}")
                    else:
                        notes.append(f"{system}: failed in round {rnd + 1}: {e}")
                    failed.add(system)
                    continue
                meta[system]["command"] = " ".join(cmd)
                if res.get("batch") is not None and res["batch"] != spec["train_batch"] \
                        and "batch" not in meta[system]:
                    notes.append(f"{system}: `dnnc bench` trained at batch {res['batch']}, "
                                 f"the peers at {spec['train_batch']}")
                meta[system]["batch"] = res.get("batch")
                for w, key in list(DNNC_KEYS.items()) + [("compile", "compile_ms")]:
                    if res.get(key) is not None:
                        samples[system][w].append(float(res[key]))
            else:
                if system.column in failed:
                    continue
                try:
                    system.send({"cmd": "round", "iters": iters})
                    res = system.recv(ROUND_TIMEOUT)
                except (RuntimeError, OSError) as e:
                    notes.append(f"{system.column}: failed in round {rnd + 1}: {e}")
                    failed.add(system.column)
                    continue
                for w, ns in res.items():
                    samples[system.column][w].append(ns * SCALE[w])
        print(f"round {rnd + 1}/{args.rounds} done", flush=True)
    for w in workers:
        w.close()

    medians = {}
    cells = {}
    for c in columns:
        medians[c] = {}
        for w, vals in samples[c].items():
            if vals:
                medians[c][w] = statistics.median(vals)
                cells[(w, c)] = medians[c][w]
    for w in workers:
        if "compile_ms" in meta.get(w.key, {}):
            cells[("compile", w.column)] = meta[w.key]["compile_ms"]
            medians[w.column]["compile"] = meta[w.key]["compile_ms"]

    # The best (fastest) peer per workload.
    peer_columns = [c for c in columns if not is_dnnc(c)]
    best = {}
    for w in WORKLOADS:
        timed = [(cells[(w, c)], c) for c in peer_columns if cells.get((w, c))]
        if timed:
            best[w] = min(timed)[1]
            cells[(w, "best peer")] = min(timed)[0]

    print()
    print_table(f"{model}: median over rounds", WORKLOADS + ["compile"], columns, cells,
                row_labels)
    if best:
        print("  best peer: " + ", ".join(f"{row_labels[w].split(' (')[0]} {best[w]}"
                                          for w in WORKLOADS if w in best))
    # Ratio tables, one per dnnc column: X's time / that column's time, X = each peer and
    # the best peer of each row. The tables of the other backends also compare with
    # cranelift's `dnnc` column.
    speedups = {}
    ran = [c for c in dnnc_backend if any(samples[c][w] for w in WORKLOADS)]
    for d in ran:
        others = list(peer_columns) + (["best peer"] if best else [])
        if d != "dnnc" and "dnnc" in ran:
            others = ["dnnc"] + others
        if not others:
            continue
        print()
        ratio_cells, speedups[d] = {}, {}
        for c in others:
            speedups[d][c] = {}
            for w in WORKLOADS:
                t_d, t_c = cells.get((w, d)), cells.get((w, c))
                if t_d and t_c:
                    ratio_cells[(w, c)] = speedups[d][c][w] = t_c / t_d
        print_table(f"{model}: {d} speedup over (X/{d})", WORKLOADS, others, ratio_cells,
                    row_labels)
        print(f"  (>1: {d} is faster)")
    versions = [meta[w.key]["version"] for w in workers if "version" in meta.get(w.key, {})]
    if versions:
        print("versions: " + ", ".join(dict.fromkeys(versions)))
    for c in dnnc_backend:
        if "command" in meta[c]:
            print(f"{c}: {meta[c]['command']}")
    for n in notes:
        print(f"note: {model}: {n}")

    return {
        "file": file,
        "train_batch": spec["train_batch"],
        "labels": {w: row_labels[w] for w in WORKLOADS + ["compile"]},
        "medians": medians,
        "rounds": samples,
        "best_peer": best,
        "speedup_of_dnnc": speedups.get("dnnc", {}),
        "speedup": speedups,
        "check": check_summary,
        "meta": meta,
        "notes": notes,
    }


def main(argv):
    args = parse_args(argv)
    if args.worker:
        cpus = os.environ.get("PEERS_BENCH_CPUS")
        if cpus and hasattr(os, "sched_setaffinity"):  # before the peer's imports
            os.sched_setaffinity(0, [int(c) for c in cpus.split(",")])
        worker_main(args.worker, args.threads, args.work, args.model)
        return 0

    for mod in ("numpy", "safetensors"):
        if importlib.util.find_spec(mod) is None:
            print(f"peers.py: needs `{mod}` (pip install numpy safetensors); see bench/PEERS.md",
                  file=sys.stderr)
            return 2
    cpus = pin_cpus(args.threads, args.no_pin)
    iters = {"train": args.iters_train, "b1": args.iters_b1, "b256": args.iters_b256}

    print(f"peers.py: models {', '.join(args.models)}, {args.rounds} round(s), "
          f"{args.threads} thread(s), iterations "
          f"train {iters['train']} / b1 {iters['b1']} / b256 {iters['b256']}, "
          f"CPUs {','.join(map(str, cpus)) if cpus else 'all allowed'}")
    dnnc_flagset, dnnc_backend, notes = setup_dnnc(args)

    reports = {}
    for model in args.models:
        reports[model] = bench_model(args, model, cpus, iters, dnnc_flagset, dnnc_backend)

    print()
    print(f"compile: {', '.join(dnnc_backend) or 'dnnc'} = `compile_ms` of `dnnc bench` "
          "(the train step); torch.compile, "
          "jax.jit = first calls of the three workloads (cold tracing + compiling); "
          "onnxruntime = session creation")
    for n in notes:
        print(f"note: {n}")

    if args.json:
        report = {
            "config": {
                "threads": args.threads,
                "rounds": args.rounds,
                "iters": iters,
                "cpus": cpus,
                "models": args.models,
                "dnnc": args.dnnc,
                "dnnc_backends": dnnc_backend,
                "units": {"train": "ms", "b1": "us", "b256": "us", "compile": "ms"},
            },
            "models": reports,
            "notes": notes,
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
