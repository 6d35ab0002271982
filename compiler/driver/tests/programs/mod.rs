//! Random well-typed `.dnn` programs for the check-to-run test, with their data: a
//! multilayer perceptron (normalisation, dropout, a user layer and function, pruning, a
//! layer loaded `from` a checkpoint), a sequence model (stacked and bidirectional
//! recurrent layers, Transformer layers, attention), an image model (convolutions,
//! pooling, batch norm, augmentation), or a multi-model plan (a frozen teacher loaded
//! `from` a file, or two models updated by two steps) — each with a random loss,
//! optimizer, schedule and settings. Every program is meant to check cleanly: one that
//! does not is a bug of the checker or of this generator, and the test says which.

use std::path::Path;

use dnnc_tensor::Tensor;
use dnnc_testing::{files, Rng};

/// A generated program and what `dnnc predict` reads for it.
pub struct Program {
    pub src: String,
    /// Model inputs, one sample per row, in the program's folder.
    pub input: &'static str,
}

/// One of `options`, drawn by `g`.
fn pick<'a>(g: &mut Rng, options: &[&'a str]) -> &'a str {
    options[g.below(options.len())]
}

/// `n` values uniform in `[-1, 1)`.
fn uniform(g: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| g.below(1000) as f32 / 500.0 - 1.0).collect()
}

/// Writes `x.npy` of `shape` (random values) and, for `classes` classes, `y.npy` of
/// labels (as floats: the dataset casts them).
fn write_data(g: &mut Rng, dir: &Path, shape: &[usize], classes: usize) {
    let x = uniform(g, shape.iter().product());
    files::write_npy(&dir.join("x.npy"), shape, &x);
    let y: Vec<f32> = (0..shape[0]).map(|_| g.below(classes) as f32).collect();
    files::write_npy(&dir.join("y.npy"), &[shape[0]], &y);
}

/// A checkpoint of random `f32` tensors (what `from` loads).
fn write_checkpoint(g: &mut Rng, path: &Path, tensors: &[(&str, Vec<usize>)]) {
    let made: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(name, shape)| {
            let v = uniform(g, shape.iter().product());
            (name.to_string(), Tensor::f32(shape.clone(), v).unwrap())
        })
        .collect();
    let refs: Vec<(String, &Tensor)> = made.iter().map(|(n, t)| (n.clone(), t)).collect();
    dnnc_runtime::checkpoint::save(path, &refs).unwrap();
}

const OPTIMIZERS: &[&str] = &[
    "sgd(lr = 0.05)",
    "sgd(lr = 0.05, momentum = 0.9, nesterov = true, weight_decay = 1e-4)",
    "adam(lr = 1e-2)",
    "adam(lr = 1e-2, weight_decay = 1e-3, clip_norm = 1.0)",
    "adamw(lr = 1e-2, beta2 = 0.99)",
    "rmsprop(lr = 1e-3, momentum = 0.5)",
];

const SCHEDULES: &[&str] = &[
    "constant()",
    "step(every = 1, gamma = 0.5)",
    "multistep(milestones = [1, 2])",
    "exponential(gamma = 0.9)",
    "cosine(warmup_epochs = 1)",
    "cosine(warmup_steps = 2, decay_steps = 5, min_lr = 1e-4)",
    "reduce_on_plateau(metric = \"test_loss\", patience = 0)",
];

/// `batch`, `epochs`, `seed` and some of `shuffle`, `early_stop`, `precision`.
fn settings(g: &mut Rng, early_stop_on_loss: bool) -> Vec<String> {
    let mut s = vec![
        format!("    batch = {}", 3 + g.below(10)),
        format!("    epochs = {}", 2 + g.below(2)),
        format!("    seed = {}", g.below(100)),
    ];
    if g.below(2) == 0 {
        s.push("    shuffle = false".into());
    }
    if early_stop_on_loss && g.below(3) == 0 {
        s.push("    early_stop = (monitor = test.loss, patience = 1)".into());
    }
    if g.below(4) == 0 {
        s.push("    precision = bf16".into());
    }
    s
}

/// A random program of one of the four families, its data written to `dir`.
pub fn random_program(g: &mut Rng, dir: &Path) -> Program {
    match g.below(4) {
        0 => perceptron(g, dir),
        1 => sequence(g, dir),
        2 => images(g, dir),
        _ => plan(g, dir),
    }
}

/// Dense layers with a random activation (a user function), normalisation, dropout or a
/// user layer between them, for classification or regression; perhaps pruned, perhaps
/// with its first layer loaded `from` a checkpoint (frozen or not).
fn perceptron(g: &mut Rng, dir: &Path) -> Program {
    let (n, features) = (24, 2 + g.below(6));
    let classify = g.below(3) != 0;
    let classes = 2 + g.below(4);
    write_data(g, dir, &[n, features], classes);
    let out = if classify { classes } else { 1 + g.below(3) };
    if !classify {
        let y = (0..n * out)
            .map(|_| g.below(1000) as f32 / 1000.0)
            .collect::<Vec<_>>();
        files::write_npy(&dir.join("y.npy"), &[n, out], &y);
    }
    let hidden = 3 + g.below(8);
    let act = pick(g, &["relu", "gelu", "tanh", "sigmoid", "silu", "softplus"]);
    let (middle_decl, middle_use) = match g.below(5) {
        0 => ("    mid = LayerNorm(hidden)\n", " |> mid"),
        1 => ("    mid = BatchNorm1d(hidden)\n", " |> mid"),
        2 => ("    mid = Dropout(0.25)\n", " |> mid"),
        3 => ("    mid = Scale(hidden)\n", " |> mid"),
        _ => ("", ""),
    };
    // The first layer from a checkpoint of its own (`W`, `b` at the top) or of a whole
    // model (`at "l0"`).
    let from = match g.below(4) {
        0 => {
            let shapes = [("W", vec![features, hidden]), ("b", vec![hidden])];
            write_checkpoint(g, &dir.join("l0.safetensors"), &shapes);
            " from \"l0.safetensors\"".to_string()
        }
        1 => {
            let shapes = [("l0.W", vec![features, hidden]), ("l0.b", vec![hidden])];
            write_checkpoint(g, &dir.join("base.safetensors"), &shapes);
            let frozen = if g.below(2) == 0 { " frozen" } else { "" };
            format!(" from \"base.safetensors\" at \"l0\"{frozen}")
        }
        _ => String::new(),
    };
    let y = if classify {
        "cast(npy(\"y.npy\"), i32)"
    } else {
        "npy(\"y.npy\")"
    };
    let loss = if classify {
        pick(
            g,
            &[
                "cross_entropy(out, y)",
                "cross_entropy(out, y) + 1e-4 * sum(out * out)",
            ],
        )
    } else {
        pick(
            g,
            &["mse(out, y)", "mae(out, y)", "huber(out, y, delta = 0.5)"],
        )
    };
    let mut settings = settings(g, true);
    if classify {
        settings.push("    metrics = [accuracy(out, y)]".into());
    }
    if g.below(3) == 0 {
        let scope = pick(g, &["\"layer\"", "\"global\""]);
        let sparsity = pick(g, &["0.5", "0.8", "0.0"]);
        settings.push(format!(
            "    prune = magnitude(sparsity = {sparsity}, start_epoch = 1, end_epoch = 2, scope = {scope})"
        ));
    }
    let src = format!(
        "use std::nn::{{Dense, LayerNorm, BatchNorm1d, Dropout}}
use std::activations::{{relu, gelu, sigmoid, silu, softplus}}
use std::losses::{{cross_entropy, mse, mae, huber}}

/// A learned scale per feature.
layer Scale(n: Int) {{
    param g: [n] = ones
    fn forward(x: [B, n]) -> [B, n] {{ x * g }}
}}

fn act(x: [..S]) -> [..S] {{ {act}(x) }}

model Net(hidden: Int) {{
    l0 = Dense({features}, hidden){from}
{middle_decl}    l1 = Dense(hidden, {out})
    fn forward(x: [B, {features}]) -> [B, {out}] {{
        x |> l0 |> act{middle_use} |> l1
    }}
}}

dataset d {{
    train = (x: npy(\"x.npy\"), y: {y})
    test  = (x: npy(\"x.npy\")[0:8], y: {y}[0:8])
}}

train Net(hidden = {hidden}) on d {{
    let out = model(x)
    loss = {loss}
    optimizer = {optimizer}
    schedule = {schedule}
{settings}
}}
",
        optimizer = pick(g, OPTIMIZERS),
        schedule = pick(g, SCHEDULES),
        settings = settings.join("\n")
    );
    Program {
        src,
        input: "x.npy",
    }
}

/// The dataset (`x.npy`, integer labels `y.npy`, the first 8 samples as the test split,
/// then `augment`) and a train block of `Net` for classification, with a random
/// optimizer, schedule and settings.
fn classifier_training(g: &mut Rng, augment: &str) -> String {
    format!(
        "dataset d {{
    train = (x: npy(\"x.npy\"), y: cast(npy(\"y.npy\"), i32))
    test  = (x: npy(\"x.npy\")[0:8], y: cast(npy(\"y.npy\"), i32)[0:8])
{augment}}}

train Net on d {{
    let out = model(x)
    loss = cross_entropy(out, y)
    optimizer = {optimizer}
    schedule = {schedule}
    metrics = [accuracy(out, y)]
{settings}
}}
",
        optimizer = pick(g, OPTIMIZERS),
        schedule = pick(g, SCHEDULES),
        settings = settings(g, true).join("\n")
    )
}

/// A recurrent layer (RNN, LSTM or GRU, one to three layers, or a bidirectional LSTM,
/// perhaps with dropout between the layers)
/// over `[B, T, F]`, perhaps a Transformer layer over its sequence, and a dense head
/// over the mean or last state, for sequence classification.
fn sequence(g: &mut Rng, dir: &Path) -> Program {
    let (n, t, features, classes) = (16, 2 + g.below(5), 1 + g.below(4), 2 + g.below(3));
    write_data(g, dir, &[n, t, features], classes);
    let hidden = 2 + g.below(6);
    let layers = 1 + g.below(3);
    // PyTorch's inter-layer dropout, now and then (all of it, at times).
    let layers = match g.below(4) {
        0 => format!("{layers}, dropout = {}", pick(g, &["0.25", "0.5", "1.0"])),
        _ => layers.to_string(),
    };
    let (rnn, width, state) = match g.below(4) {
        0 => (
            format!("LSTM({features}, {hidden}, num_layers = {layers})"),
            hidden,
            "(h, c)",
        ),
        1 => (
            format!("GRU({features}, {hidden}, num_layers = {layers})"),
            hidden,
            "h",
        ),
        2 => (
            format!("RNN({features}, {hidden}, num_layers = {layers})"),
            hidden,
            "h",
        ),
        _ => (
            format!("BiLSTM({features}, {hidden}, num_layers = {layers})"),
            2 * hidden,
            "(h, c)",
        ),
    };
    let (heads, head_dim) = (1 + g.below(2), 2 + g.below(3));
    let (attention_decl, attention_use) = match g.below(3) {
        0 => (
            format!(
                "    proj = Linear({width}, {e})\n    att = TransformerEncoderLayer({heads}, {head_dim}, {ff}, norm_first = {nf}, use_gelu = {gelu})\n",
                e = heads * head_dim,
                ff = 4 + g.below(8),
                nf = pick(g, &["true", "false"]),
                gelu = pick(g, &["true", "false"]),
            ),
            format!(
                "let seq = att(proj(seq), causal = {})\n        ",
                pick(g, &["true", "false"])
            ),
        ),
        1 => (
            format!(
                "    proj = Linear({width}, {e})\n    att = MultiheadAttention({heads}, {head_dim})\n",
                e = heads * head_dim
            ),
            "let seq = att(proj(seq))\n        ".to_string(),
        ),
        _ => (String::new(), String::new()),
    };
    let head_in = if attention_decl.is_empty() {
        width
    } else {
        heads * head_dim
    };
    let pooled = pick(
        g,
        &["mean(seq, axis = 1)", "seq[:, 0]", "max(seq, axis = 1)"],
    );
    let src = format!(
        "use std::nn::{{Dense, RNN, LSTM, GRU, BiLSTM, Linear, MultiheadAttention, TransformerEncoderLayer}}
use std::losses::cross_entropy

model Net {{
    rnn = {rnn}
{attention_decl}    head = Dense({head_in}, {classes})
    fn forward(x: [B, {t}, {features}]) -> [B, {classes}] {{
        let (seq, {state}) = rnn(x)
        {attention_use}head({pooled})
    }}
}}

{}",
        classifier_training(g, "")
    );
    Program {
        src,
        input: "x.npy",
    }
}

/// A convolution (plain or `same`, perhaps batch-normalised), pooling and a dense head
/// over `[B, C, H, W]` images with a random list of augmentations.
fn images(g: &mut Rng, dir: &Path) -> Program {
    let (n, c, size, classes) = (16, 1 + g.below(3), 4 + 2 * g.below(3), 2 + g.below(3));
    write_data(g, dir, &[n, c, size, size], classes);
    let k = 2 + g.below(4);
    let conv = pick(
        g,
        &[
            "Conv2d({c}, {k}, 3, padding = 1)",
            "Conv2dSame({c}, {k}, 3)",
            "Conv2d({c}, {k}, 3, padding = 1, groups = {c})",
        ],
    )
    .replace("{c}", &c.to_string())
    .replace("{k}", &(k * c).to_string());
    let channels = k * c;
    let norm = if g.below(2) == 0 {
        format!("    bn = BatchNorm2d({channels})\n")
    } else {
        String::new()
    };
    let norm_use = if norm.is_empty() { "" } else { " |> bn" };
    let (pool, flat) = match g.below(3) {
        0 => ("MaxPool2d(2)", channels * (size / 2) * (size / 2)),
        1 => ("AvgPool2d(2)", channels * (size / 2) * (size / 2)),
        _ => ("GlobalAvgPool2d", channels),
    };
    let all = [
        "random_crop(padding = 1)",
        "hflip()",
        "hflip(p = 0.2)",
        "rotate(degrees = 10.0)",
        "noise(std = 0.05)",
        "brightness(amount = 0.2)",
        "contrast(amount = 0.3)",
    ];
    let chosen: Vec<&str> = all.iter().copied().filter(|_| g.below(3) == 0).collect();
    let augment = if chosen.is_empty() {
        String::new()
    } else {
        format!("    augment = (x: [{}])\n", chosen.join(", "))
    };
    let src = format!(
        "use std::nn::{{Conv2d, Conv2dSame, BatchNorm2d, MaxPool2d, AvgPool2d, GlobalAvgPool2d, Dense}}
use std::activations::relu
use std::shape::flatten
use std::losses::cross_entropy

model Net {{
    conv = {conv}
{norm}    pool = {pool}
    head = Dense({flat}, {classes})
    fn forward(x: [B, {c}, {size}, {size}]) -> [B, {classes}] {{
        flatten(x |> conv{norm_use} |> relu |> pool) |> head
    }}
}}

{}",
        classifier_training(g, &augment)
    );
    Program {
        src,
        input: "x.npy",
    }
}

/// The multi-model form: a student distilled from a frozen teacher loaded `from` a
/// checkpoint, or two models trained by two steps (one learns the labels, the other
/// the first's outputs).
fn plan(g: &mut Rng, dir: &Path) -> Program {
    let (n, features, classes) = (24, 2 + g.below(5), 2 + g.below(3));
    write_data(g, dir, &[n, features], classes);
    let hidden = 3 + g.below(6);
    let distill = g.below(2) == 0;
    let (bindings, steps) = if distill {
        let shapes = [
            ("l0.W", vec![features, hidden]),
            ("l0.b", vec![hidden]),
            ("l1.W", vec![hidden, classes]),
            ("l1.b", vec![classes]),
        ];
        write_checkpoint(g, &dir.join("teacher.safetensors"), &shapes);
        let t = pick(g, &["4.0", "1.0"]);
        (
            format!(
                "    model S = Net(hidden = {})\n    model T = Net(hidden = {hidden}) from \"teacher.safetensors\" frozen\n",
                2 + g.below(4)
            ),
            format!(
                "    step learn {{
        let s = S(x)
        loss = kl_div(log_softmax(s / {t}), softmax(T(x) / {t})) + cross_entropy(s, y)
        update S with {}
    }}\n",
                pick(g, OPTIMIZERS)
            ),
        )
    } else {
        (
            format!("    model S = Net(hidden = {hidden})\n    model U = Net(hidden = {hidden})\n"),
            format!(
                "    step first {{
        loss = cross_entropy(S(x), y)
        update S with {}
    }}
    step second {{
        loss = mse(U(x), stop_grad(S(x)))
        update U with {}
    }}\n",
                pick(g, OPTIMIZERS),
                pick(g, OPTIMIZERS)
            ),
        )
    };
    let mut settings = settings(g, false);
    settings.push("    metrics = [accuracy(S(x), y)]".into());
    if g.below(3) == 0 {
        settings.push(format!("    schedule = {}", pick(g, &SCHEDULES[..6])));
    }
    let src = format!(
        "use std::nn::Dense
use std::activations::{{relu, log_softmax, softmax}}
use std::losses::{{cross_entropy, mse, kl_div}}

model Net(hidden: Int) {{
    l0 = Dense({features}, hidden)
    l1 = Dense(hidden, {classes})
    fn forward(x: [B, {features}]) -> [B, {classes}] {{
        x |> l0 |> relu |> l1
    }}
}}

dataset d {{
    train = (x: npy(\"x.npy\"), y: cast(npy(\"y.npy\"), i32))
    test  = (x: npy(\"x.npy\")[0:8], y: cast(npy(\"y.npy\"), i32)[0:8])
}}

train plan on d {{
{bindings}{settings}

{steps}}}
",
        settings = settings.join("\n")
    );
    Program {
        src,
        input: "x.npy",
    }
}
