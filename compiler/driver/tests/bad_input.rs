//! `dnnc check` on hostile and broken input: every run must end in time with exit
//! status 1, a located diagnostic with an error code, and no panic or crash.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dnnc_testing::files::Scratch;

const TIMEOUT: Duration = Duration::from_secs(20);

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Writes `bytes` to `name` in `dir`; returns its path.
fn write(dir: &Scratch, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.path(name);
    std::fs::write(&path, bytes).expect("write temp file");
    path
}

/// Runs `dnnc` with `args` in `cwd`, killing it after [`TIMEOUT`]. Output is read on
/// threads so that a child writing more than a pipe buffer never blocks.
fn dnnc(args: &[&str], cwd: &Path) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dnnc"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start dnnc");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for dnnc") {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dnnc {args:?} did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out_reader.join().expect("stdout reader")).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().expect("stderr reader")).into_owned(),
    }
}

/// `dnnc check FILE` with the file named relative to its directory.
fn check_file(dir: &Scratch, file: &str) -> Run {
    dnnc(&["check", file], dir.dir())
}

/// Whether `s` holds `.dnn:LINE:COLUMN`.
fn has_location(s: &str) -> bool {
    s.match_indices(".dnn:").any(|(i, m)| {
        let rest = &s[i + m.len()..];
        let line = rest.bytes().take_while(u8::is_ascii_digit).count();
        if line == 0 || rest.as_bytes().get(line) != Some(&b':') {
            return false;
        }
        rest[line + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count()
            > 0
    })
}

/// The error codes `E0ddd` in `s`, in order.
fn codes(s: &str) -> Vec<&str> {
    s.match_indices("E0")
        .filter_map(|(i, _)| {
            let code = s.get(i..i + 5)?;
            code[2..]
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then_some(code)
        })
        .collect()
}

/// The checks every bad input must pass; `code` is the error code expected, if known.
fn assert_clean_failure(what: &str, run: &Run, code: Option<&str>) {
    let shown: String = if run.stderr.len() > 4000 {
        let head: String = run.stderr.chars().take(4000).collect();
        format!("{head}... ({} bytes)", run.stderr.len())
    } else {
        run.stderr.clone()
    };
    assert_eq!(
        run.code,
        Some(1),
        "{what}: expected exit status 1; stderr:\n{shown}"
    );
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "overflow",
        "internal compiler error",
    ] {
        assert!(
            !run.stderr.contains(bad),
            "{what}: stderr mentions `{bad}`:\n{shown}"
        );
    }
    assert!(
        has_location(&run.stderr),
        "{what}: no `FILE.dnn:LINE:COLUMN` in stderr:\n{shown}"
    );
    let found = codes(&run.stderr);
    assert!(
        !found.is_empty(),
        "{what}: no error code in stderr:\n{shown}"
    );
    if let Some(code) = code {
        assert!(
            run.stderr.contains(&format!("error[{code}]")),
            "{what}: expected error[{code}], found {found:?}:\n{shown}"
        );
    }
}

/// Writes `source` to a fresh file and checks it.
fn check_source(name: &str, source: impl AsRef<[u8]>, code: Option<&str>) -> Run {
    let dir = Scratch::new(name);
    let file = format!("{name}.dnn");
    write(&dir, &file, source);
    let run = check_file(&dir, &file);
    assert_clean_failure(name, &run, code);
    run
}

/// Deterministic pseudo-random bytes.
fn garbage(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = dnnc_testing::Rng(seed);
    (0..len).map(|_| (rng.next_u64() >> 56) as u8).collect()
}

fn in_fn(body: &str) -> String {
    format!("fn f(x: [N]) -> [N] {{\n    {body}\n}}\n")
}

#[test]
fn helpers_work() {
    assert!(has_location("  ┌─ a.dnn:3:14\n"));
    assert!(!has_location("a.dnn: nothing"));
    assert!(!has_location("a.dnn:3:"));
    assert_eq!(codes("error[E0300]: x E0 E01 E0401"), ["E0300", "E0401"]);
    assert_eq!(garbage(4, 1), garbage(4, 1));
    assert_ne!(garbage(64, 1), garbage(64, 2));
}

#[test]
fn non_utf8_bytes() {
    check_source(
        "non_utf8",
        b"fn f(x: [N]) -> [N] { x } // \xff\xfe caf\xe9\n",
        Some("E0001"),
    );
}

#[test]
fn nul_bytes() {
    check_source("nul", b"fn f(x: [N]) -> [N] {\x00\x00 x }\n", Some("E0001"));
}

#[test]
fn random_binary_garbage() {
    for seed in [1u64, 2, 3, 0xdead_beef] {
        check_source(&format!("garbage_{seed}"), garbage(4096, seed), None);
    }
}

#[test]
fn garbage_after_valid_code() {
    let mut src = b"fn f(x: [N]) -> [N] { x }\n".to_vec();
    src.extend(garbage(1024, 7));
    check_source("garbage_tail", src, None);
}

#[test]
fn unterminated_block_comment() {
    check_source(
        "open_comment",
        "fn f(x: [N]) -> [N] { x }\n/* never closed\nfn g(x: [N]) -> [N] { x }\n",
        Some("E0003"),
    );
}

#[test]
fn unterminated_string() {
    check_source(
        "open_string",
        "dataset d {\n    train = (x: npy(\"data.npy))\n}\n",
        Some("E0004"),
    );
}

#[test]
fn deeply_nested_parentheses() {
    let n = 100_000;
    let body = format!("{}x{}", "(".repeat(n), ")".repeat(n));
    check_source("nested_parens", in_fn(&body), Some("E0005"));
}

#[test]
fn deeply_nested_mixed_brackets() {
    let n = 100_000;
    let body = format!("{}x{}", "[(".repeat(n / 2), ")]".repeat(n / 2));
    check_source("nested_mixed", in_fn(&body), None);
}

#[test]
fn unbalanced_brackets_at_depth() {
    let n = 100_000;
    check_source("unbalanced_deep", in_fn(&"(".repeat(n)), None);
}

// The long chains below end in the unknown name `y`, so that the file is wrong however
// deep a chain the checker accepts: the run must end in a diagnostic either way.

#[test]
fn many_unary_minus() {
    check_source(
        "unary_minus",
        in_fn(&format!("{}y", "-".repeat(100_000))),
        None,
    );
}

#[test]
fn many_unary_not() {
    check_source(
        "unary_not",
        "fn f(x: Bool) -> Bool { ".to_string() + &"!".repeat(100_000) + "y }\n",
        None,
    );
}

#[test]
fn long_postfix_chains() {
    for (name, post) in [("fields", ".a"), ("calls", "(x)"), ("indices", "[0]")] {
        check_source(
            &format!("postfix_{name}"),
            in_fn(&format!("y{}", post.repeat(100_000))),
            None,
        );
    }
}

#[test]
fn long_flat_sum() {
    let sum = vec!["1"; 100_000].join("+");
    check_source("long_sum", in_fn(&format!("x * ({sum} + y)")), None);
}

#[test]
fn long_chains_of_binary_operators() {
    for (name, op) in [("pow", "**"), ("mul", "*"), ("and", "&&"), ("pipe", "|>")] {
        let chain = vec!["x"; 100_000].join(op);
        check_source(
            &format!("chain_{name}"),
            in_fn(&format!("{chain}{op}y")),
            None,
        );
    }
}

#[test]
fn unknown_layer() {
    let run = check_source(
        "unknown_layer",
        "model M {\n    fc = Dense2(784, 10)\n    fn forward(x: [B, 784]) -> [B, 10] { fc(x) }\n}\n",
        Some("E0103"),
    );
    assert!(run.stderr.contains("Dense2"), "{}", run.stderr);
}

#[test]
fn wrong_argument_count() {
    check_source(
        "arg_count",
        "fn g(a: [N]) -> [N] { a }\nfn f(x: [N]) -> [N] { g(x, x, x) }\n",
        Some("E0200"),
    );
}

#[test]
fn matmul_mismatch() {
    let run = check_source(
        "matmul",
        "fn f(x: [B, 784], w: [100, 10]) -> [B, 10] {\n    x @ w\n}\n",
        Some("E0300"),
    );
    assert!(run.stderr.contains("matmul.dnn:2:"), "{}", run.stderr);
}

#[test]
fn integer_literal_too_large() {
    check_source(
        "big_int",
        in_fn("x * 99999999999999999999999"),
        Some("E0006"),
    );
}

#[test]
fn cyclic_use() {
    let dir = Scratch::new("cycle");
    write(&dir, "a.dnn", "use b::g\nfn f(x: [N]) -> [N] { g(x) }\n");
    write(&dir, "b.dnn", "use a::f\nfn g(x: [N]) -> [N] { f(x) }\n");
    for file in ["a.dnn", "b.dnn"] {
        let run = check_file(&dir, file);
        assert_clean_failure(file, &run, Some("E0102"));
    }
    // Both files at once: still one clean failure.
    let run = dnnc(&["check", "a.dnn", "b.dnn"], dir.dir());
    assert_clean_failure("a.dnn b.dnn", &run, Some("E0102"));
}

#[test]
fn missing_file() {
    let dir = Scratch::new("missing");
    let run = check_file(&dir, "does_not_exist.dnn");
    assert_clean_failure("missing file", &run, Some("E0010"));
    assert!(run.stderr.contains("does_not_exist.dnn"), "{}", run.stderr);
}

#[test]
fn directory_instead_of_file() {
    let dir = Scratch::new("directory");
    std::fs::create_dir_all(dir.path("folder.dnn")).expect("mkdir");
    let run = check_file(&dir, "folder.dnn");
    assert_clean_failure("directory", &run, Some("E0010"));
}

#[test]
fn missing_file_among_good_ones() {
    let dir = Scratch::new("mixed");
    write(&dir, "good.dnn", "fn f(x: [N]) -> [N] { x }\n");
    let run = dnnc(&["check", "good.dnn", "gone.dnn"], dir.dir());
    assert_clean_failure("good + missing", &run, Some("E0010"));
}

#[test]
fn usage_errors_exit_2() {
    let dir = Scratch::new("usage");
    for args in [
        &["check"][..],
        &["frobnicate"],
        &["check", "--message-format", "xml", "a.dnn"],
    ] {
        let run = dnnc(args, dir.dir());
        assert_eq!(run.code, Some(2), "dnnc {args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}

#[test]
fn json_messages() {
    let dir = Scratch::new("json");
    write(
        &dir,
        "matmul.dnn",
        "fn f(x: [B, 784], w: [100, 10]) -> [B, 10] { x @ w }\n",
    );
    write(&dir, "garbage.dnn", garbage(2048, 11));
    write(&dir, "parse.dnn", "fn f(x: [N]) -> [N] { x + }\n");
    write(&dir, "unknown.dnn", "fn f(x: [N]) -> [N] { relu(x) + y }\n");
    let run = dnnc(
        &[
            "check",
            "--message-format",
            "json",
            "matmul.dnn",
            "garbage.dnn",
            "parse.dnn",
            "unknown.dnn",
            "missing.dnn",
        ],
        dir.dir(),
    );
    assert_eq!(run.code, Some(1), "stderr:\n{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines.len() >= 5,
        "expected a diagnostic per file:\n{}",
        run.stdout
    );
    for line in &lines {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not a JSON object: {line}"
        );
        assert!(line.contains("\"code\":\"E0"), "no code: {line}");
        assert!(line.contains("\"line\":"), "no line: {line}");
        assert!(line.contains("\"file\":\""), "no file: {line}");
    }
    for (file, code) in [
        ("matmul.dnn", "E0300"),
        ("garbage.dnn", "E0001"),
        ("parse.dnn", "E0002"),
        ("unknown.dnn", "E0103"),
        ("missing.dnn", "E0010"),
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("\"file\":\"{file}\""))
                    && l.contains(&format!("\"code\":\"{code}\""))),
            "no {code} for {file}:\n{}",
            run.stdout
        );
    }
}

#[test]
fn json_clean_file_prints_nothing() {
    let dir = Scratch::new("json_clean");
    write(&dir, "ok.dnn", "fn f(x: [N]) -> [N] { x }\n");
    let run = dnnc(&["check", "--message-format", "json", "ok.dnn"], dir.dir());
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.trim().is_empty(), "{}", run.stdout);
}
