//! Every example's train block lowers to graphs that pass the IR verifier, for the
//! training step, evaluation and inference.

use std::path::Path;

use dnnc_lower::{lower, lower_split, Mode};
use dnnc_sema::{file_diagnostics, RootDatabase};
use dnnc_syntax::ast::ItemKind;

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

#[test]
fn examples_lower_and_verify() {
    for name in ["mnist_mlp.dnn", "regression.dnn", "custom_layer.dnn"] {
        let db = RootDatabase::new();
        let file = db.open(&example(name)).unwrap();
        assert!(
            file_diagnostics(&db, file).is_empty(),
            "{name} does not check"
        );
        let items = &dnnc_sema::scope::parse(&db, file).module.items;
        let train = items
            .iter()
            .position(|i| matches!(i.kind, ItemKind::Train(_)))
            .unwrap() as u32;
        for mode in [Mode::Train(0), Mode::Eval, Mode::Predict] {
            let l =
                lower(&db, file, train, mode, 4).unwrap_or_else(|e| panic!("{name} {mode:?}: {e}"));
            if let Err(errors) = dnnc_ir::verify(&l.graph) {
                panic!(
                    "{name} {mode:?}: {errors:#?}\n{}",
                    dnnc_ir::text::to_text(&l.graph)
                );
            }
            assert!(!l.params.is_empty());
            if name == "mnist_mlp.dnn" && mode == Mode::Train(0) {
                let names: Vec<&str> = l.params.iter().map(|p| p.name.as_str()).collect();
                assert_eq!(
                    names,
                    ["fc1.W", "fc1.b", "fc2.W", "fc2.b", "head.W", "head.b"]
                );
                eprintln!("{}", dnnc_ir::text::to_text(&l.graph));
            }
        }
        let (ds, sig) = {
            let (_, sig) = dnnc_lower::model::train_item(&db, file, train).unwrap();
            (
                dnnc_lower::model::dataset_item(&db, file, sig).unwrap(),
                sig.clone(),
            )
        };
        let _ = sig;
        let split = lower_split(&db, ds, "train").unwrap();
        assert!(dnnc_ir::verify(&split.graph).is_ok());
        assert!(!split.loaders.is_empty());
    }
}
