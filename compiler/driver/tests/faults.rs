//! Regression tests for the faults found by trying dnnc as a hostile user would
//! (issue 20's list): each bad input or situation ends with a clear error naming the
//! file or the step, a non-zero exit, and nothing half-written — never a crash, an
//! abort or a silent wrong answer.

use dnnc_testing::files::{self, read_npy, write_npy};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn dnnc_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dnnc"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run dnnc")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A scratch folder with a link to the MNIST data (`data/mnist`), removed on drop.
struct Scratch(files::Scratch);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let s = files::Scratch::new(&format!("faults-{tag}"));
        std::fs::create_dir_all(s.path("data")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            root().join("examples/data/mnist").canonicalize().unwrap(),
            s.path("data/mnist"),
        )
        .unwrap();
        Scratch(s)
    }

    fn dir(&self) -> &Path {
        self.0.dir()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path(name)
    }

    fn write(&self, name: &str, text: &str) -> String {
        self.0.write(name, text)
    }

    fn run(&self, args: &[&str]) -> Output {
        dnnc_in(self.dir(), args)
    }

    /// One training step of the MNIST example, weights to `out`; must succeed.
    fn one_step(&self, out: &Path) {
        let mlp = root().join("examples/mnist_mlp.dnn").display().to_string();
        let out = out.display().to_string();
        let run = self.run(&[
            "train",
            &mlp,
            "--steps",
            "1",
            "--out",
            &out,
            "--quiet",
            "--no-plot",
        ]);
        assert!(run.status.success(), "{}", text(&run.stderr));
    }
}

/// The tensors of a safetensors file: name → f32 values (the header is JSON).
fn read_safetensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = text(&bytes[8..8 + n]);
    let data = &bytes[8 + n..];
    let mut out = Vec::new();
    for entry in header.split("},") {
        let Some(name) = entry.split('"').nth(1) else {
            continue;
        };
        if name == "__metadata__" || !entry.contains("data_offsets") {
            continue;
        }
        let offs = entry.split("data_offsets").nth(1).unwrap();
        let nums: Vec<usize> = offs
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        let vals = data[nums[0]..nums[1]]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push((name.to_string(), vals));
    }
    out
}

const HEADER: &str =
    "use std::nn::Dense\nuse std::losses::{cross_entropy, mse}\nuse std::shape::flatten\n";

const MNIST: &str = r#"
dataset mnist {
    train = (image: idx("data/mnist/train-images-idx3-ubyte.gz") / 255.0 |> flatten,
             label: idx("data/mnist/train-labels-idx1-ubyte.gz"))
    test  = (image: idx("data/mnist/test-images-idx3-ubyte.gz") / 255.0 |> flatten,
             label: idx("data/mnist/test-labels-idx1-ubyte.gz"))
}
"#;

/// A train block over MNIST for a model `M` taking `[B, 784]`.
fn mnist_train(model: &str, extra: &str) -> String {
    format!(
        "{HEADER}{model}{MNIST}\ntrain M() on mnist {{\n    batch = 128\n    epochs = 1\n    let logits = model(image)\n    loss = cross_entropy(logits, label)\n    optimizer = sgd(lr = 0.1)\n    metrics = [accuracy(logits, label)]\n{extra}}}\n"
    )
}

#[test]
fn a_tensor_beyond_the_address_space_is_refused_at_check() {
    let s = Scratch::new("huge");
    let f = s.write(
        "huge.dnn",
        &mnist_train(
            "model M() {\n    fc = Dense(784, 10)\n    fn forward(x: [B, 784]) -> [B, 10] {\n        let z = zeros([4611686018427387904])\n        fc(x) + sum(z)\n    }\n}\n",
            "",
        ),
    );
    for cmd in ["check", "train"] {
        let out = s.run(&[cmd, &f]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        let err = text(&out.stderr);
        assert!(
            err.contains("error[E0310]") && err.contains("16.00 EiB"),
            "{err}"
        );
    }
    // A parameter of an instance too: `Dense(1 << 30, 1 << 30)` needs 4 EiB.
    let f = s.write(
        "param.dnn",
        &mnist_train(
            "model M() {\n    fc = Dense(784, 10)\n    big = Dense(1073741824, 1073741824)\n    fn forward(x: [B, 784]) -> [B, 10] { fc(x) }\n}\n",
            "",
        ),
    );
    let out = s.run(&["check", &f]);
    assert!(
        text(&out.stderr).contains("error[E0310]"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn models_larger_than_memory_are_refused_before_allocating() {
    let s = Scratch::new("mem");
    let f = s.write(
        "big.dnn",
        &mnist_train(
            "model M() {\n    a = Dense(784, 1000000)\n    b = Dense(1000000, 1000000)\n    c = Dense(1000000, 10)\n    fn forward(x: [B, 784]) -> [B, 10] { x |> a |> b |> c }\n}\n",
            "",
        ),
    );
    let w = s.path("w.safetensors").display().to_string();
    for args in [
        vec!["train", &f, "--out", &w],
        vec!["train", &f, "--backend", "interp", "--out", &w],
        vec!["bench", &f, "--runs", "1"],
        vec!["compile", &f, "--emit", "schedule"],
    ] {
        let started = Instant::now();
        let out = s.run(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("would need") && (err.contains("TiB") || err.contains("GiB")),
            "{args:?}: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{args:?} took too long"
        );
    }
    assert!(!s.path("w.safetensors").exists());
    // Absurd command-line sizes are refused with a message, not an abort.
    let mlp = root().join("examples/mnist_mlp.dnn").display().to_string();
    for (args, says) in [
        (
            vec!["compile", &mlp, "--batch", "4611686018427387904"],
            "at most",
        ),
        (vec!["compile", &mlp, "--batch", "0"], "at least 1"),
        (vec!["train", &mlp, "--epochs", "0"], "at least 1"),
        (vec!["train", &mlp, "--threads", "100000"], "limit of 1024"),
    ] {
        let out = s.run(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn accuracy_counts_neither_ties_nor_nan_as_hits() {
    let s = Scratch::new("acc");
    let f = s.write(
        "zero.dnn",
        &mnist_train(
            "model M() {\n    param W: [784, 10] = zeros\n    fn forward(x: [B, 784]) -> [B, 10] { x @ W }\n}\n",
            "",
        ),
    );
    // All-zero weights: every logit ties, so the prediction is class 0 (as argmax
    // breaks ties), and the accuracy is the share of zeros among the test labels.
    let w = s.path("zero.safetensors");
    let header = r#"{"W":{"dtype":"F32","shape":[784,10],"data_offsets":[0,31360]}}"#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend(header.as_bytes());
    file.extend(vec![0u8; 31360]);
    std::fs::write(&w, file).unwrap();
    let labels = {
        let mut gz =
            flate2_free_gunzip(&root().join("examples/data/mnist/test-labels-idx1-ubyte.gz"));
        gz.drain(..8);
        gz
    };
    let zeros = labels.iter().filter(|&&l| l == 0).count() as f64 / labels.len() as f64;
    for backend in ["cranelift", "interp"] {
        let out = s.run(&[
            "eval",
            &f,
            "--weights",
            &w.display().to_string(),
            "--backend",
            backend,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let line = text(&out.stdout);
        let acc: f64 = line
            .split("test_accuracy ")
            .nth(1)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no accuracy in {line}"));
        assert!((acc - zeros).abs() < 1e-4, "{backend}: {acc} vs {zeros}");
    }
}

/// The bytes of a gzip file, through the system's `gzip` (the test does not link a
/// decompressor).
fn flate2_free_gunzip(path: &Path) -> Vec<u8> {
    let out = Command::new("gzip").arg("-dc").arg(path).output().unwrap();
    assert!(out.status.success());
    out.stdout
}

#[cfg(unix)]
#[test]
fn weights_never_replace_devices_and_follow_links() {
    use std::os::unix::fs::FileTypeExt;
    let s = Scratch::new("dev");
    let mlp = root().join("examples/mnist_mlp.dnn").display().to_string();
    let out = s.run(&[
        "train",
        &mlp,
        "--steps",
        "1",
        "--out",
        "/dev/null",
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("a device"),
        "{}",
        text(&out.stderr)
    );
    assert!(std::fs::symlink_metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    // Through a link: the link stays, its target gets the weights.
    let target = s.path("real.safetensors");
    let link = s.path("link.safetensors");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    s.one_step(&link);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(read_safetensors(&target).len() == 6);
}

#[test]
fn nan_inputs_give_nan_on_every_backend() {
    let s = Scratch::new("nan");
    for (example, shape) in [
        ("mnist_mlp.dnn", vec![3, 784]),
        ("mnist_cnn.dnn", vec![3, 28, 28]),
    ] {
        let file = root().join("examples").join(example).display().to_string();
        let w = s.path("w.safetensors").display().to_string();
        let out = s.run(&[
            "train",
            &file,
            "--steps",
            "2",
            "--out",
            &w,
            "--quiet",
            "--no-plot",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let n: usize = shape.iter().product();
        let mut x = vec![0.5f32; n];
        x[..n / 3].fill(f32::NAN); // the first sample only
        write_npy(&s.path("x.npy"), &shape, &x);
        let mut results = Vec::new();
        for backend in ["cranelift", "interp"] {
            let y = s.path(&format!("y-{backend}.npy"));
            let out = s.run(&[
                "predict",
                &file,
                "--weights",
                &w,
                "--input",
                &s.path("x.npy").display().to_string(),
                "--output",
                &y.display().to_string(),
                "--backend",
                backend,
            ]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            results.push(read_npy(&y));
        }
        for r in &results {
            assert!(
                r[..10].iter().all(|v| v.is_nan()),
                "{example}: {:?}",
                &r[..10]
            );
            assert!(r[10..].iter().all(|v| v.is_finite()), "{example}");
        }
    }
}

#[test]
fn labels_out_of_range_are_refused_at_load_naming_the_file() {
    let s = Scratch::new("labels");
    let x: Vec<f32> = (0..8 * 4).map(|i| i as f32 / 32.0).collect();
    write_npy(&s.path("x.npy"), &[8, 4], &x);
    for (bad, shown) in [(10.0f32, "is 10"), (200.0, "is 200"), (-1.0, "is -1")] {
        let mut y = vec![1.0f32; 8];
        y[5] = bad;
        write_npy(&s.path("y.npy"), &[8], &y);
        let f = s.write(
            "m.dnn",
            &format!(
                "{HEADER}model M() {{\n    fc = Dense(4, 10)\n    fn forward(x: [B, 4]) -> [B, 10] {{ fc(x) }}\n}}\ndataset d {{\n    train = (x: npy(\"x.npy\"), y: cast(npy(\"y.npy\"), i32))\n}}\ntrain M() on d {{\n    batch = 4\n    epochs = 1\n    loss = cross_entropy(model(x), y)\n    optimizer = sgd(lr = 0.1)\n}}\n"
            ),
        );
        let out = s.run(&[
            "train",
            &f,
            "--out",
            &s.path("w.safetensors").display().to_string(),
        ]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("sample 5") && err.contains(shown) && err.contains("0 to 9"),
            "{err}"
        );
        assert!(!err.contains("epoch 1"), "refused before training: {err}");
    }
}

/// A regression whose loss doubles every step: `mse(x @ w, 0)` with `x = 1` and SGD at
/// a rate of 1.2 multiplies `w` by -1.4 per step, until the loss overflows to
/// infinity after ~130 steps (epoch ~33 at 4 steps per epoch).
fn diverging(s: &Scratch, extra: &str) -> String {
    write_npy(&s.path("x.npy"), &[16, 1], &[1.0; 16]);
    write_npy(&s.path("t.npy"), &[16, 1], &[0.0; 16]);
    s.write(
        "div.dnn",
        &format!(
            "{HEADER}model M() {{\n    param w: [1, 1] = ones\n    fn forward(x: [B, 1]) -> [B, 1] {{ x @ w }}\n}}\ndataset d {{\n    train = (x: npy(\"x.npy\"), t: npy(\"t.npy\"))\n    test = (x: npy(\"x.npy\"), t: npy(\"t.npy\"))\n}}\ntrain M() on d {{\n    batch = 4\n    epochs = 100\n    shuffle = false\n    loss = mse(model(x), t)\n    optimizer = sgd(lr = 1.2)\n{extra}}}\n"
        ),
    )
}

#[test]
fn a_loss_that_overflows_stops_the_run_keeping_good_weights() {
    let s = Scratch::new("diverge");
    let w = s.path("w.safetensors");
    // Without early stopping: the last good weights (finite), and the step named.
    let f = diverging(&s, "");
    for backend in ["cranelift", "interp"] {
        let out = s.run(&[
            "train",
            &f,
            "--out",
            &w.display().to_string(),
            "--backend",
            backend,
            "--quiet",
        ]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("the loss became inf at step"), "{err}");
        assert!(err.contains("last good weights were saved"), "{err}");
        let saved = read_safetensors(&w);
        let v = saved.iter().find(|(n, _)| n == "w").unwrap().1[0];
        assert!(v.is_finite() && v.abs() > 1e15, "{backend}: {v}");
    }
    // With early stopping on the test loss: the best epoch's weights, epoch 1's
    // `w = (-1.4)^4`.
    let f = diverging(
        &s,
        "    early_stop = (monitor = test.loss, patience = 1000)\n",
    );
    let out = s.run(&["train", &f, "--out", &w.display().to_string(), "--quiet"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("best epoch's weights were saved"), "{err}");
    let v = read_safetensors(&w)
        .iter()
        .find(|(n, _)| n == "w")
        .unwrap()
        .1[0];
    assert!((v - 1.4f32.powi(4)).abs() < 1e-3, "{v}");
}

#[test]
fn bad_data_and_outputs_are_found_before_training() {
    let s = Scratch::new("early");
    let mlp = root().join("examples/mnist_mlp.dnn").display().to_string();
    // A folder as `--out`: refused before the first epoch.
    std::fs::create_dir_all(s.path("outdir")).unwrap();
    let out = s.run(&[
        "train",
        &mlp,
        "--out",
        &s.path("outdir").display().to_string(),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("a folder") && !err.contains("epoch 1"),
        "{err}"
    );
    // Temporary files of a killed run are cleaned up at the start.
    let stale = s.path("w.safetensors.tmp-4194000");
    std::fs::write(&stale, "partial").unwrap();
    let out = s.run(&[
        "train",
        &mlp,
        "--steps",
        "1",
        "--out",
        &s.path("w.safetensors").display().to_string(),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!stale.exists());
    // NaN in a data file: named with the file and the sample.
    let mut x = vec![0.5f32; 8 * 4];
    x[13] = f32::NAN;
    write_npy(&s.path("x.npy"), &[8, 4], &x);
    write_npy(&s.path("t.npy"), &[8, 1], &[0.0; 8]);
    let body = "model M() {\n    fc = Dense(4, 1)\n    fn forward(x: [B, 4]) -> [B, 1] { fc(x) }\n}\ndataset d {\n    train = (x: npy(\"x.npy\"), t: npy(\"t.npy\"))\n}\ntrain M() on d {\n    batch = 4\n    epochs = 1\n    loss = mse(model(x), t)\n    optimizer = sgd(lr = 0.1)\n}\n";
    let f = s.write("nan.dnn", &format!("{HEADER}{body}"));
    let out = s.run(&["train", &f]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("x.npy: element 13 (sample 3) is NaN"), "{err}");
    // An empty training split.
    write_npy(&s.path("x.npy"), &[0, 4], &[]);
    write_npy(&s.path("t.npy"), &[0, 1], &[]);
    let out = s.run(&["train", &f]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no samples"), "{err}");
}

#[test]
fn predict_on_no_rows_writes_no_rows() {
    let s = Scratch::new("norows");
    let mlp = root().join("examples/mnist_mlp.dnn").display().to_string();
    let w = s.path("w.safetensors").display().to_string();
    s.one_step(Path::new(&w));
    write_npy(&s.path("x.npy"), &[0, 784], &[]);
    let y = s.path("y.npy");
    let out = s.run(&[
        "predict",
        &mlp,
        "--weights",
        &w,
        "--input",
        &s.path("x.npy").display().to_string(),
        "--output",
        &y.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&std::fs::read(&y).unwrap()).contains("(0, 10)"));
}

#[test]
fn checkpoints_with_duplicate_names_or_nan_are_refused() {
    let s = Scratch::new("ckpt");
    let mlp = root().join("examples/mnist_mlp.dnn").display().to_string();
    let good = s.path("good.safetensors");
    s.one_step(&good);
    let bytes = std::fs::read(&good).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = text(&bytes[8..8 + n]);
    // The header with `fc1.b`'s entry written twice.
    let entry_start = header.find("\"fc1.b\"").unwrap();
    let entry_end = entry_start + header[entry_start..].find('}').unwrap() + 1;
    let entry = header[entry_start..entry_end].to_string();
    let dup = header.replacen(&entry, &format!("{entry},{entry}"), 1);
    let mut file = (dup.len() as u64).to_le_bytes().to_vec();
    file.extend(dup.as_bytes());
    file.extend(&bytes[8 + n..]);
    let bad = s.path("dup.safetensors");
    std::fs::write(&bad, file).unwrap();
    let out = s.run(&["eval", &mlp, "--weights", &bad.display().to_string()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("names tensor `fc1.b` twice"), "{err}");
    // A NaN weight: refused naming the tensor.
    let mut nan = bytes.clone();
    nan[8 + n..8 + n + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&bad, nan).unwrap();
    let out = s.run(&["eval", &mlp, "--weights", &bad.display().to_string()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("holds NaN at element 0"), "{err}");
    // Devices and FIFOs are not read.
    let out = s.run(&["eval", &mlp, "--weights", "/dev/zero"]);
    assert!(
        text(&out.stderr).contains("a device"),
        "{}",
        text(&out.stderr)
    );
    let out = s.run(&["check", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("a device"),
        "{}",
        text(&out.stderr)
    );
}

/// `dnnc train` killed with SIGKILL at random moments while it writes a checkpoint
/// after every epoch: whatever is on disk is always a complete checkpoint.
#[cfg(unix)]
#[test]
fn kill_9_during_checkpoints_leaves_a_complete_file() {
    let s = Scratch::new("kill");
    // A 3 MB model on 64 samples: each epoch is one step and one checkpoint write.
    write_npy(&s.path("x.npy"), &[64, 784], &vec![0.25; 64 * 784]);
    write_npy(&s.path("t.npy"), &[64, 1], &[0.5; 64]);
    let f = s.write(
        "k.dnn",
        &format!(
            "{HEADER}model M() {{\n    a = Dense(784, 1000)\n    b = Dense(1000, 1)\n    fn forward(x: [B, 784]) -> [B, 1] {{ x |> a |> b }}\n}}\ndataset d {{\n    train = (x: npy(\"x.npy\"), t: npy(\"t.npy\"))\n}}\ntrain M() on d {{\n    batch = 64\n    epochs = 100000\n    loss = mse(model(x), t)\n    optimizer = sgd(lr = 0.0001)\n}}\n"
        ),
    );
    let w = s.path("w.safetensors");
    let mut seed: u64 = 0x2545F4914F6CDD1D;
    let mut complete = 0;
    for _ in 0..20 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dnnc"))
            .args([
                "train",
                &f,
                "--out",
                &w.display().to_string(),
                "--quiet",
                "--no-plot",
            ])
            .current_dir(s.dir())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(300 + seed % 1500));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(status.code().is_none() || err.is_empty(), "{err}");
        if w.exists() {
            let tensors = read_safetensors(&w);
            let sizes: Vec<usize> = tensors.iter().map(|(_, v)| v.len()).collect();
            let mut sorted = sizes.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![1, 1000, 1000, 784000], "{sizes:?}");
            complete += 1;
        }
    }
    assert!(complete > 0, "no checkpoint was ever written");
}

/// A disk that fills up (a file-size limit, as a small disk would give): the error
/// names the file, the previous checkpoint stays as it was, no temporary file stays.
#[cfg(unix)]
#[test]
fn a_full_disk_keeps_the_previous_checkpoint() {
    let s = Scratch::new("full");
    let mlp = root().join("examples/mnist_mlp.dnn").display().to_string();
    let w = s.path("w.safetensors");
    s.one_step(&w);
    let before = std::fs::read(&w).unwrap();
    // 200 KiB at most per file: the 1 MB checkpoint cannot be written.
    let script = format!(
        "ulimit -f 400; trap '' XFSZ; exec '{}' train '{mlp}' --steps 1 --out '{}' --quiet --no-plot",
        env!("CARGO_BIN_EXE_dnnc"),
        w.display()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(s.dir())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("w.safetensors") && err.contains("cannot write"),
        "{err}"
    );
    assert_eq!(std::fs::read(&w).unwrap(), before);
    let left: Vec<_> = std::fs::read_dir(s.dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Layers nested deeper than the checker allows are refused by `check` (E0108); a
/// chain within the limit checks and trains.
#[test]
fn check_and_train_agree_on_nesting() {
    let s = Scratch::new("nest");
    write_npy(&s.path("x.npy"), &[4, 4], &[0.5; 16]);
    let nested = |n: usize| {
        let mut src = String::from(HEADER);
        src.push_str("layer L0() {\n    fc = Dense(4, 4)\n    fn forward(x: [B, 4]) -> [B, 4] { fc(x) }\n}\n");
        for i in 1..n {
            src.push_str(&format!(
                "layer L{i}() {{\n    inner = L{}()\n    fn forward(x: [B, 4]) -> [B, 4] {{ inner(x) }}\n}}\n",
                i - 1
            ));
        }
        src.push_str(&format!(
            "model M() {{\n    top = L{}()\n    fn forward(x: [B, 4]) -> [B, 4] {{ top(x) }}\n}}\ndataset d {{\n    train = (x: npy(\"x.npy\"), y: npy(\"x.npy\"))\n}}\ntrain M() on d {{\n    batch = 2\n    epochs = 1\n    loss = mse(model(x), y)\n    optimizer = sgd(lr = 0.1)\n}}\n",
            n - 1
        ));
        src
    };
    let deep = s.write("deep.dnn", &nested(1001));
    let out = s.run(&["check", &deep]);
    assert!(
        text(&out.stderr).contains("error[E0108]"),
        "{}",
        text(&out.stderr)
    );
    let ok = s.write("ok.dnn", &nested(900));
    let out = s.run(&[
        "train",
        &ok,
        "--out",
        &s.path("w.safetensors").display().to_string(),
        "--quiet",
        "--no-plot",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
