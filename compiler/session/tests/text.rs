//! Text end to end on a tiny corpus: the `text` loader's windows, training a
//! character-level LSTM (the vocabulary saved with the weights), `dnnc sample
//! --prompt` reproducible from its seed, and its errors.

mod support;

use std::path::Path;

use dnnc_session::generate::{generate, TextSample};
use dnnc_session::{BackendKind, PassOptions, RunError, TrainOptions};
use dnnc_testing::files::Scratch;
use support::with_job;

const SRC: &str = "use std::nn::{Embedding, LSTM, Dense}
use std::losses::cross_entropy
model Lm(vocab: Int) {
    embed = Embedding(vocab, 8)
    lstm = LSTM(8, 16)
    head = Dense(16, vocab)
    fn forward(x: i32[B, T]) -> [B, T, vocab] {
        let (seq, state) = lstm(embed(x))
        head(seq)
    }
}
dataset corpus {
    train = (chars: text(\"corpus.txt\", window = 9, to = 0.8))
    test = (chars: text(\"corpus.txt\", window = 9, from = 0.8))
}
train Lm(vocab = 5) on corpus {
    batch = 4
    epochs = 20
    let logits = model(chars[:, 0:8])
    loss = cross_entropy(logits, chars[:, 1:9])
    optimizer = adam(lr = 3e-2)
    metrics = [accuracy(logits, chars[:, 1:9])]
}
";

fn setup() -> Scratch {
    let dir = Scratch::new("text");
    // Five characters: ' ', 'a', 'b', 'c', 'd' (ids in that order).
    std::fs::write(dir.path("corpus.txt"), "abcd abcd ".repeat(40)).unwrap();
    std::fs::write(dir.path("lm.dnn"), SRC).unwrap();
    dir
}

fn sample(path: &Path, weights: &Path, prompt: &str, seed: u64) -> Result<String, RunError> {
    let s = TextSample {
        prompt,
        length: 20,
        temperature: 0.5,
        top_k: Some(2),
        seed,
        incremental: true,
    };
    with_job(path, |job| {
        generate(
            job,
            weights,
            &s,
            BackendKind::Cranelift,
            &PassOptions::default(),
        )
        .map(|g| g.text)
    })
}

#[test]
fn a_char_lstm_learns_a_cycle_and_continues_it() {
    let dir = setup();
    let path = dir.path("lm.dnn");
    let weights = dir.path("lm.safetensors");
    let summary = with_job(&path, |job| {
        dnnc_session::train(
            job,
            &TrainOptions::quiet(BackendKind::Cranelift, weights.clone()),
        )
        .unwrap()
    });
    let acc = summary.get("test_accuracy").unwrap();
    assert!(
        acc > 0.95,
        "the cycle is predictable: {:?}",
        summary.metrics
    );
    let meta = dnnc_runtime::checkpoint::metadata(&weights).unwrap();
    assert_eq!(
        meta.get("dnnc.vocabulary").map(String::as_str),
        Some(" abcd")
    );
    let text = sample(&path, &weights, "abc", 7).unwrap();
    assert!(text.starts_with("abcd abcd abcd"), "{text:?}");
    assert_eq!(text.len(), 23);
    assert_eq!(
        sample(&path, &weights, "abc", 7).unwrap(),
        text,
        "same seed, same text"
    );
    let e = sample(&path, &weights, "abx", 7).unwrap_err().to_string();
    assert!(
        e.contains("'x' is not in the model's vocabulary of 5 characters"),
        "{e}"
    );
    // Weights without a vocabulary.
    let bare = dir.path("bare.safetensors");
    let tensors = dnnc_runtime::checkpoint::load(&weights).unwrap();
    let refs: Vec<(String, &dnnc_tensor::Tensor)> =
        tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
    dnnc_runtime::checkpoint::save(&bare, &refs).unwrap();
    let e = sample(&path, &bare, "abc", 7).unwrap_err().to_string();
    assert!(e.contains("no vocabulary"), "{e}");
}
