//! Data-parallel training under `mpirun` (a `dnnc` built with `--features mpi`; CI
//! installs OpenMPI and runs these with `cargo test -p dnnc --features mpi --test
//! mpi`): N processes train as one process does on the same batches, a process that
//! dies or hangs ends the run within seconds, and processes holding different files
//! refuse to start. Without the feature, only the refusal to run under a launcher is
//! tested (no `mpirun` needed).

use std::path::{Path, PathBuf};
use std::process::Command;

use dnnc_testing::files;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A scratch folder holding the MNIST example and a link to its data.
fn scratch(tag: &str) -> files::Scratch {
    let s = files::Scratch::new(&format!("mpi-{tag}"));
    std::fs::create_dir_all(s.path("data")).unwrap();
    std::os::unix::fs::symlink(
        root().join("examples/data/mnist").canonicalize().unwrap(),
        s.path("data/mnist"),
    )
    .unwrap();
    let src = std::fs::read_to_string(root().join("examples/mnist_mlp.dnn")).unwrap();
    s.write("mlp.dnn", &src);
    s
}

#[cfg(not(feature = "mpi"))]
#[test]
fn without_mpi_a_launched_process_says_how_to_build_one() {
    let s = scratch("none");
    // What `mpirun -n 2` sets for its processes; nothing else of MPI is needed.
    let out = Command::new(env!("CARGO_BIN_EXE_dnnc"))
        .args(["train", "mlp.dnn", "--epochs", "1", "--no-plot"])
        .current_dir(s.dir())
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error[E1600]") && err.contains("--features mpi"),
        "{err}"
    );
    assert!(!s.path("mlp.safetensors").exists(), "nothing is trained");
    // Other commands are refused under a launcher too (they would run N times).
    let out = Command::new(env!("CARGO_BIN_EXE_dnnc"))
        .args(["check", "mlp.dnn"])
        .current_dir(s.dir())
        .env("PMI_SIZE", "4")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("only `dnnc train`"), "{err}");
}

#[cfg(feature = "mpi")]
mod with_mpi {
    use super::*;
    use std::collections::HashMap;
    use std::process::{Child, Output, Stdio};
    use std::time::{Duration, Instant};

    use dnnc_tensor::Tensor;

    /// `mpirun -n N dnnc ARGS...` in `dir` (as root too, more processes than cores).
    fn mpirun(dir: &Path, n: usize, args: &[&str]) -> Command {
        let mut c = Command::new("mpirun");
        c.args(["--oversubscribe", "-n", &n.to_string()])
            .arg(env!("CARGO_BIN_EXE_dnnc"))
            .args(args)
            .current_dir(dir)
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .env("NO_COLOR", "1");
        c
    }

    fn run(mut c: Command) -> Output {
        let out = c.output().expect("mpirun runs (is OpenMPI installed?)");
        assert!(
            out.status.success(),
            "{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    fn weights(path: &Path) -> HashMap<String, Tensor> {
        dnnc_runtime::checkpoint::load(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .into_iter()
            .collect()
    }

    /// Every number of every JSONL line of `path`, by key, in order.
    fn log(path: &Path) -> Vec<HashMap<String, f64>> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object()
                    .unwrap()
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                    .collect()
            })
            .collect()
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-6)
    }

    /// Trains `mlp.dnn` as one process and as `n`, with the same global batches, and
    /// compares every epoch's losses and metrics (to 1e-4 relative) and the final
    /// weights (to 5e-4 of the largest weight of each parameter).
    fn same_as_one_process(tag: &str, n: usize, edits: &[(&str, &str)], extra: &[&str]) {
        let s = scratch(tag);
        for (from, to) in edits {
            let src = std::fs::read_to_string(s.path("mlp.dnn")).unwrap();
            let changed = src.replace(from, to);
            assert_ne!(src, changed);
            s.write("mlp.dnn", &changed);
        }
        let common = ["train", "mlp.dnn", "--threads", "1", "--no-plot", "--quiet"];
        let one = [
            &common[..],
            &["--out", "one.safetensors", "--log", "one.jsonl"],
            extra,
        ]
        .concat();
        let out = Command::new(env!("CARGO_BIN_EXE_dnnc"))
            .args(&one)
            .current_dir(s.dir())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let many = [
            &common[..],
            &["--out", "many.safetensors", "--log", "many.jsonl"],
            extra,
        ]
        .concat();
        let out = run(mpirun(s.dir(), n, &many));
        // Only the first process prints and writes.
        let printed = text(&out.stdout);
        assert_eq!(printed.matches("trained").count(), 1, "{printed}");
        let (a, b) = (log(&s.path("one.jsonl")), log(&s.path("many.jsonl")));
        assert_eq!(a.len(), b.len());
        for (ea, eb) in a.iter().zip(&b) {
            for (k, va) in ea {
                if k == "seconds" {
                    continue;
                }
                let vb = eb[k];
                assert!(
                    close(*va, vb, 1e-4),
                    "epoch {}: {k} {va} vs {vb}",
                    ea["epoch"]
                );
            }
        }
        let (wa, wb) = (
            weights(&s.path("one.safetensors")),
            weights(&s.path("many.safetensors")),
        );
        assert_eq!(wa.len(), wb.len());
        for (name, ta) in &wa {
            let (x, y) = (ta.to_f32_vec(), wb[name].to_f32_vec());
            let scale = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = x
                .iter()
                .zip(&y)
                .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            // Sums over shards round differently from sums over the whole batch, and
            // 63 steps of SGD with momentum 0.9 amplify that to about 1.4e-4 of the
            // largest weight; weighting the shards wrongly (a third each) moves the
            // test loss alone by 6.5e-3 of itself.
            assert!(
                worst <= 5e-4 * scale,
                "{name}: differs by {worst} (largest |w| {scale})"
            );
        }
    }

    #[test]
    fn two_processes_train_as_one_does() {
        same_as_one_process("two", 2, &[], &["--epochs", "2"]);
    }

    #[test]
    fn uneven_shards_average_correctly() {
        // 128 samples over 3 processes: shards of 43, 43 and 42, and 8000 % 128 = 64
        // in the epoch's last batch (22, 21, 21). With SGD the weights follow the
        // gradients linearly, so shards weighted wrongly (a third each) would show
        // (Adam's normalised steps hide much of it).
        same_as_one_process("three", 3, &[SGD], &["--epochs", "1"]);
    }

    /// Adam's normalised steps hide much of a wrong weighting; SGD shows it.
    const SGD: (&str, &str) = ("adam(lr = 1e-3)", "sgd(lr = 0.05, momentum = 0.9)");

    #[test]
    fn a_process_with_an_empty_shard_still_takes_part() {
        // Batches of 3999: the epoch's last batch has 8000 - 2 · 3999 = 2 samples, so
        // the third process gets none of it.
        let edits = [SGD, ("batch      = 128", "batch      = 3999")];
        same_as_one_process("empty", 3, &edits, &["--epochs", "1"]);
    }

    /// The processes `mpirun` (`pid`) started, by their parent.
    fn children(pid: u32) -> Vec<u32> {
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // `pid (comm) state ppid ...`: the fields after the last `)`.
            let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
            let ppid: Option<u32> = after.split_whitespace().nth(1).and_then(|v| v.parse().ok());
            if ppid == Some(pid) {
                out.push(p);
            }
        }
        out.sort();
        out
    }

    /// Starts a long run and returns it once its first epoch is saved.
    fn long_run(s: &files::Scratch, extra: &[&str]) -> Child {
        let args = [
            &[
                "train",
                "mlp.dnn",
                "--epochs",
                "500",
                "--threads",
                "1",
                "--no-plot",
                "--out",
                "w.safetensors",
                "--log",
                "log.jsonl",
            ][..],
            extra,
        ]
        .concat();
        let child = mpirun(s.dir(), 2, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while !s.path("log.jsonl").exists() || log(&s.path("log.jsonl")).is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "no epoch ended"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// Waits for `child` at most `limit`; its exit status and stderr.
    fn wait_at_most(mut child: Child, limit: Duration) -> (Option<i32>, String, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return (status.code(), err, started.elapsed());
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                panic!("the run did not end within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_killed_process_ends_the_run_within_seconds() {
        let s = scratch("kill");
        let child = long_run(&s, &[]);
        let ranks = children(child.id());
        assert_eq!(ranks.len(), 2, "{ranks:?}");
        // Mid-epoch: the first epoch is saved and the second is running.
        std::thread::sleep(Duration::from_millis(150));
        let _ = Command::new("kill")
            .args(["-9", &ranks[1].to_string()])
            .status();
        let (code, err, took) = wait_at_most(child, Duration::from_secs(30));
        assert_ne!(code, Some(0), "{err}");
        assert!(took < Duration::from_secs(10), "took {took:?}");
        assert!(err.contains("exited on signal 9"), "{err}");
        // The checkpoint of the last complete epoch is whole: `--init` resumes.
        let w = weights(&s.path("w.safetensors"));
        assert_eq!(w.len(), 6);
        for r in ranks {
            assert!(
                !Path::new(&format!("/proc/{r}")).exists()
                    || std::fs::read_to_string(format!("/proc/{r}/stat"))
                        .map_or(true, |st| st.contains(") Z")),
                "rank {r} still runs"
            );
        }
    }

    #[test]
    fn a_hung_process_ends_the_run_after_the_timeout() {
        let s = scratch("hang");
        let child = long_run(&s, &["--mpi-timeout", "2"]);
        let ranks = children(child.id());
        assert_eq!(ranks.len(), 2, "{ranks:?}");
        let _ = Command::new("kill")
            .args(["-STOP", &ranks[1].to_string()])
            .status();
        let (code, err, took) = wait_at_most(child, Duration::from_secs(30));
        // The stopped process is ended too (SIGKILL reaches stopped processes).
        let _ = Command::new("kill")
            .args(["-9", &ranks[1].to_string()])
            .status();
        assert_ne!(code, Some(0), "{err}");
        assert!(took < Duration::from_secs(10), "took {took:?}");
        assert!(
            err.contains("error[E1600]: rank 0 of 2: waited 2 s for the other processes"),
            "{err}"
        );
    }

    #[test]
    fn processes_with_different_files_refuse_to_start() {
        let s = scratch("differ");
        let src = std::fs::read_to_string(s.path("mlp.dnn")).unwrap();
        s.write(
            "other.dnn",
            &src.replace("hidden: Int = 256", "hidden: Int = 128"),
        );
        let mut c = mpirun(
            s.dir(),
            1,
            &["train", "mlp.dnn", "--epochs", "1", "--no-plot"],
        );
        c.args([":", "-n", "1", env!("CARGO_BIN_EXE_dnnc")]).args([
            "train",
            "other.dnn",
            "--epochs",
            "1",
            "--no-plot",
        ]);
        let out = c.output().unwrap();
        let err = text(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("error[E1600]: rank 0 of 2: the 2 processes do not hold the same `.dnn` file: rank 1 differs from rank 0"),
            "{err}"
        );
        assert!(!s.path("mlp.safetensors").exists());
        // Different seeds give different initial weights: refused too.
        let mut c = mpirun(
            s.dir(),
            1,
            &["train", "mlp.dnn", "--seed", "1", "--no-plot"],
        );
        c.args([":", "-n", "1", env!("CARGO_BIN_EXE_dnnc")]).args([
            "train",
            "mlp.dnn",
            "--seed",
            "2",
            "--no-plot",
        ]);
        let out = c.output().unwrap();
        let err = text(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("do not hold the same command-line options"),
            "{err}"
        );
    }
}
