//! The standard library's sources, embedded in the binary so `dnnc` works anywhere.
//!
//! `use std::nn` resolves to `stdlib/nn.dnn` here; the files are parsed and checked
//! like user code. Their display name is `<std>/NAME.dnn`.

/// `(module name, source text)` for every std module.
pub const MODULES: &[(&str, &str)] = &[
    ("nn", include_str!("../../../stdlib/nn.dnn")),
    (
        "activations",
        include_str!("../../../stdlib/activations.dnn"),
    ),
    ("losses", include_str!("../../../stdlib/losses.dnn")),
    (
        "regularization",
        include_str!("../../../stdlib/regularization.dnn"),
    ),
    ("shape", include_str!("../../../stdlib/shape.dnn")),
    ("explain", include_str!("../../../stdlib/explain.dnn")),
    (
        "adversarial",
        include_str!("../../../stdlib/adversarial.dnn"),
    ),
];

pub fn source(module: &str) -> Option<&'static str> {
    MODULES.iter().find(|(m, _)| *m == module).map(|(_, s)| *s)
}
