//! Incrementality: an edit inside one definition does not re-check other files.

use dnnc_sema::{file_diagnostics, RootDatabase};
use dnnc_testing::files::Scratch;

const LIB: &str = "\
fn scale(x: [B, 4], k: Float) -> [B, 4] {
    x * k
}
";

const USER: &str = "\
use lib::scale
fn twice(x: [B, 4]) -> [B, 4] {
    scale(x, 2.0)
}
";

#[test]
fn body_edit_in_one_file_does_not_recheck_another() {
    let dir = Scratch::new("incr");
    std::fs::write(dir.path("lib.dnn"), LIB).unwrap();
    std::fs::write(dir.path("user.dnn"), USER).unwrap();
    let (mut db, log) = RootDatabase::with_query_log();
    let user = db.open(&dir.path("user.dnn")).unwrap();
    assert!(
        file_diagnostics(&db, user).is_empty(),
        "{:#?}",
        file_diagnostics(&db, user)
    );
    let lib = db.open(&dir.path("lib.dnn")).unwrap();

    // Edit inside `scale`'s body: its signature is unchanged.
    log.lock().unwrap().clear();
    db.set_text(lib, LIB.replace("x * k", "k * x + x * 0.0"));
    assert!(file_diagnostics(&db, user).is_empty());
    let ran = log.lock().unwrap().clone();
    assert!(
        ran.iter().any(|q| q.starts_with("fn_sig")),
        "the edited file's signature is recomputed: {ran:?}"
    );
    assert!(
        !ran.iter().any(|q| q.starts_with("check_item")),
        "no body of user.dnn was re-checked: {ran:?}"
    );
    assert!(
        !ran.iter().any(|q| q.starts_with("file_diagnostics"))
            || ran.iter().filter(|q| q.starts_with("parse")).count() == 1
    );

    // A signature edit does re-check the user, and finds the mismatch.
    db.set_text(
        lib,
        LIB.replace("[B, 4] {", "[B, 5] {")
            .replace("x: [B, 4]", "x: [B, 5]"),
    );
    let diags = file_diagnostics(&db, user);
    assert!(diags.iter().any(|d| d.code.0 == "E0303"), "{diags:#?}");
}
