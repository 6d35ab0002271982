//! Incremental decoding: a language model's `decode` method, its state (an LSTM's
//! `(h, c)`, a Transformer's key/value caches) carried from character to character,
//! gives the logits `forward` gives on the same context — at every position up to the
//! context length, and after each restart from the last half of it — on the
//! interpreter and on Cranelift; both the pre-norm and post-norm encoder layers.

mod support;

use std::path::{Path, PathBuf};

use dnnc_session::generate::{generate, open, TextSample};
use dnnc_session::{BackendKind, PassOptions, TrainOptions};
use dnnc_testing::files::Scratch;
use support::{rel, with_job};

const DATA: &str = "dataset corpus {
    train = (chars: text(\"corpus.txt\", window = 9, to = 0.8))
    test = (chars: text(\"corpus.txt\", window = 9, from = 0.8))
}
train Lm(vocab = 5) on corpus {
    batch = 4
    epochs = 2
    let logits = model(chars[:, 0:8])
    loss = cross_entropy(logits, chars[:, 1:9])
    optimizer = adam(lr = 3e-2)
}
";

const LSTM: &str = "use std::nn::{Embedding, LSTM, Dense}
use std::losses::cross_entropy
model Lm(vocab: Int) {
    embed = Embedding(vocab, 8)
    lstm = LSTM(8, 16)
    head = Dense(16, vocab)
    fn forward(x: i32[B, T]) -> [B, T, vocab] {
        let (seq, state) = lstm(embed(x))
        head(seq)
    }
    fn decode(x: i32[B], h: [1, B, 16], c: [1, B, 16]) -> ([B, vocab], [1, B, 16], [1, B, 16]) {
        let (seq, (h, c)) = lstm.run(reshape(embed(x), [B, 1, 8]), h, c)
        (head(h[-1]), h, c)
    }
}
";

const GPT: &str = "use std::nn::{Embedding, TransformerEncoderLayer, LayerNorm, Dense}
use std::losses::cross_entropy
model Lm(vocab: Int) {
    tok = Embedding(vocab, 8)
    pos = Embedding(8, 8)
    h0 = TransformerEncoderLayer(2, 4, 16, norm_first = true, use_gelu = true)
    h1 = TransformerEncoderLayer(2, 4, 16)
    ln = LayerNorm(8)
    head = Dense(8, vocab)
    fn forward(x: i32[B, 8]) -> [B, 8, vocab] {
        tok(x) + pos(arange(8)) |> h0(causal = true) |> h1(causal = true) |> ln |> head
    }
    fn decode(x: i32[B], t: i64[B], kv0: [2, B, 2, 8, 4], kv1: [2, B, 2, 8, 4]) -> ([B, vocab], i64[B], [2, B, 2, 8, 4], [2, B, 2, 8, 4]) {
        let (h, kv0) = h0.decode(tok(x) + pos(t), t, kv0)
        let (h, kv1) = h1.decode(h, t, kv1)
        (head(ln(h)), t + 1, kv0, kv1)
    }
}
";

/// The trained model's folder (removed when dropped), source and weights.
fn trained(name: &str, model: &str) -> (Scratch, PathBuf, PathBuf) {
    let dir = Scratch::new(&format!("decode-{name}"));
    std::fs::write(dir.path("corpus.txt"), "abcd dcba abd ".repeat(30)).unwrap();
    let path = dir.path("lm.dnn");
    std::fs::write(&path, format!("{model}{DATA}")).unwrap();
    let weights = dir.path("lm.safetensors");
    with_job(&path, |job| {
        dnnc_session::train(
            job,
            &TrainOptions::quiet(BackendKind::Cranelift, weights.clone()),
        )
        .unwrap()
    });
    (dir, path, weights)
}

/// `decode`'s logits after each prefix of 20 characters against `forward`'s on the
/// context the decoder keeps (all of it up to the context length `t`, then from its
/// restarts on the last `t / 2`).
fn decoding_agrees(path: &Path, weights: &Path, backend: BackendKind) {
    let passes = PassOptions::default();
    with_job(path, |job| {
        let mut dec = open(job, weights, true, backend, &passes).unwrap();
        let mut win = open(job, weights, false, backend, &passes).unwrap();
        assert!(dec.incremental && !win.incremental);
        // The GPT's context is its `forward`'s; the LSTM's the dataset's window.
        let t = dec.context;
        assert!(t == 8 || t == 9, "{t}");
        let ids: Vec<i32> = "abd dcba abcd abd dc"
            .chars()
            .map(|c| dec.vocab.iter().position(|&v| v == c).unwrap() as i32)
            .collect();
        let mut start = 0;
        for n in 1..=ids.len() {
            if n - start > t {
                start = n - t / 2;
            }
            let got = dec.model.next_logits(&ids[..n]).unwrap();
            let want = win.model.next_logits(&ids[start..n]).unwrap();
            let err = rel(&got, &want);
            assert!(err < 1e-5, "{backend:?}, {n} characters: {err}");
        }
    });
}

#[test]
fn an_lstm_decodes_with_its_carried_state() {
    let (_dir, path, weights) = trained("lstm", LSTM);
    decoding_agrees(&path, &weights, BackendKind::Interp);
    decoding_agrees(&path, &weights, BackendKind::Cranelift);
}

#[test]
fn a_transformer_decodes_with_key_value_caches() {
    let (_dir, path, weights) = trained("gpt", GPT);
    decoding_agrees(&path, &weights, BackendKind::Interp);
    decoding_agrees(&path, &weights, BackendKind::Cranelift);
    // Sampling gives the same text either way while the context fits.
    let text = |incremental| {
        let s = TextSample {
            prompt: "ab",
            length: 6,
            temperature: 1.0,
            top_k: None,
            seed: 3,
            incremental,
        };
        with_job(&path, |job| {
            generate(
                job,
                &weights,
                &s,
                BackendKind::Cranelift,
                &PassOptions::default(),
            )
            .unwrap()
        })
    };
    let (fast, slow) = (text(true), text(false));
    assert!(fast.incremental && !slow.incremental);
    assert_eq!(fast.text, slow.text);
}
