//! Quick parser checks on the sketch's examples.
use std::sync::Arc;

#[test]
fn parses_examples() {
    let src = r#"
/// Fully connected layer.
layer Dense(inp: Int, out: Int, bias: Bool = true) {
    param W: [inp, out] = glorot_uniform
    param b: [out] = zeros

    fn forward(x: [B, inp]) -> [B, out] {
        if bias { x @ W + b } else { x @ W }
    }
}
use std::nn::{Dense}
model Mlp(hidden: Int = 256) {
    fc1  = Dense(784, hidden)
    fc2  = Dense(hidden, hidden) from "w.safetensors" frozen
    head = Dense(hidden, 10)
    fn forward(x: [B, 784]) -> [B, 10] {
        let y: f32[B, 10] = x |> fc1 |> relu |> dropout(0.2) |> fc2 |> relu |> head
        y[:, 1:3:2] ** -2 + x[..., -1]
    }
}
dataset mnist {
    train = (image: idx("data/mnist/train-images-idx3-ubyte.gz") / 255.0 |> flatten,
             label: idx("data/mnist/train-labels-idx1-ubyte.gz"))
}
train Mlp(hidden = 256) on mnist {
    batch      = 128
    let logits = model(image)
    loss       = cross_entropy(logits, label)
    optimizer  = adam(lr = 1e-3)
    metrics    = [accuracy(logits, label)]
    seed       = 42
}
train gan on mnist {
    model G = Generator(latent = 64)
    step critic {
        let fake = stop_grad(G(normal([B, 64])))
        loss = bce_logits(D(image), 1.0) + bce_logits(D(fake), 0.0)
        update D with adam(lr = 2e-4, beta1 = 0.5)
    }
}
fn rnn(xs: [T, B, N]) -> [B, N] { scan(x in xs, h = zeros) { h + x } }
"#;
    let p = dnnc_syntax::parse(&Arc::from("t.dnn"), src);
    assert!(p.diagnostics.is_empty(), "{:#?}", p.diagnostics);
    assert_eq!(p.module.items.len(), 7);
}

#[test]
fn recovers_between_items() {
    let src = "layer A { param W: [2] = zeros }\nlayer B { fn f(x: [2]) -> [2] { x + } }\nfn g(x: [2]) -> [2] { x }\n";
    let p = dnnc_syntax::parse(&Arc::from("t.dnn"), src);
    assert_eq!(p.diagnostics.len(), 1, "{:#?}", p.diagnostics);
    assert_eq!(p.module.items.len(), 3);
    assert!(
        matches!(&p.module.items[1].kind, dnnc_syntax::ast::ItemKind::Error { name: Some(n) } if n.text == "B")
    );
    eprintln!("{}", p.diagnostics[0].message);
}

#[test]
fn cached_parsing_equals_fresh_parsing() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cache = dnnc_syntax::ChunkCache::default();
    let name: Arc<str> = Arc::from("m.dnn");
    for f in [
        "examples/mnist_mlp.dnn",
        "examples/custom_layer.dnn",
        "stdlib/activations.dnn",
    ] {
        let text = std::fs::read_to_string(root.join(f)).unwrap();
        // Edits at several places: the cache must reuse unchanged declarations correctly.
        for at in [0, text.len() / 3, text.len() / 2, text.len()] {
            let mut at = at.min(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            for insert in ["", "\n", " x", "/* c */"] {
                let edited = format!("{}{}{}", &text[..at], insert, &text[at..]);
                let fresh = dnnc_syntax::parse(&name, &edited);
                let cached = dnnc_syntax::parse_cached(&name, &edited, &cache);
                assert_eq!(
                    fresh.module, cached.module,
                    "{f} edited at {at} with {insert:?}"
                );
                let key = |p: &dnnc_syntax::Parsed| {
                    let mut v: Vec<_> = p
                        .diagnostics
                        .iter()
                        .map(|d| (d.primary.span, d.message.clone()))
                        .collect();
                    v.sort();
                    v
                };
                assert_eq!(
                    key(&fresh),
                    key(&cached),
                    "{f} edited at {at} with {insert:?}"
                );
            }
        }
    }
}
