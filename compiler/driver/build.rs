//! Builds the runtime archive that `dnnc compile` bundles into static libraries
//! (`libdnnc_capi.a`: the C API over compiled programs, `cargo build --profile capi -p
//! dnnc-capi`) and leaves it in `OUT_DIR` for `src/runtime_archive.rs` to embed, so a
//! `dnnc` copied alone to another folder, or installed with `cargo install --path
//! compiler/driver`, builds working libraries.
//!
//! The archive is built by a nested cargo in a target directory of its own (cargo locks
//! one per build), `embedded-runtime/` beside the outer build's profile directories,
//! shared by debug and release builds of `dnnc`; cargo rebuilds it only when the
//! runtime's sources change. `DNNC_EMBED_RUNTIME=0` skips it (quicker builds while
//! working on the compiler; such a `dnnc` finds the archive as before: `--runtime`,
//! `$DNNC_RUNTIME`, or next to the binary).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest.join("..").join("..");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let dest = out.join("libdnnc_capi.a");
    println!("cargo:rerun-if-env-changed=DNNC_EMBED_RUNTIME");
    println!("cargo:rerun-if-env-changed=CARGO_PROFILE_CAPI_LTO");
    println!("cargo:rerun-if-changed=build.rs");
    // What the archive is built from: the C API crate and everything it depends on.
    for path in [
        "Cargo.toml",
        "Cargo.lock",
        "runtime",
        "compiler/capi",
        "compiler/exec",
        "compiler/ir",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    if env::var("DNNC_EMBED_RUNTIME").is_ok_and(|v| v == "0") {
        // Empty: nothing embedded.
        std::fs::write(&dest, b"").expect("OUT_DIR is writable");
        return;
    }
    // OUT_DIR is TARGET/PROFILE/build/dnnc-HASH/out.
    let target = out
        .ancestors()
        .nth(4)
        .map(|t| t.join("embedded-runtime"))
        .unwrap_or_else(|| out.join("embedded-runtime"));
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // The archive is for the machine dnnc runs on: dnnc's own target.
    let triple = env::var("TARGET").expect("set by cargo");
    let mut build = Command::new(cargo);
    build
        .args(["build", "--profile", "capi", "-p", "dnnc-capi", "--locked"])
        .args(["--target", &triple]);
    if env::var_os("CARGO_NET_OFFLINE").is_some() {
        build.arg("--offline");
    }
    let status = build
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        // The user's flags for the compiler (`target-cpu=native`, ...) must not reach
        // an archive that libraries ship with, and a `cargo clippy` outside is no
        // reason to lint the archive's build again.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "building the runtime archive (`cargo build --profile capi -p dnnc-capi`) failed: {s}; \
             set DNNC_EMBED_RUNTIME=0 to build dnnc without it"
        ),
        Err(e) => panic!("could not run cargo to build the runtime archive: {e}"),
    }
    let built = target.join(&triple).join("capi").join("libdnnc_capi.a");
    std::fs::copy(&built, &dest).unwrap_or_else(|e| panic!("{}: {e}", built.display()));
}
