//! The losses of `std::losses` against their PyTorch definitions, computed here in
//! `f64` from the same numbers: `bce` (`BCELoss`, logs clamped at -100), `nll`
//! (`NLLLoss`), `kl_div` (`kl_div(..., reduction="batchmean")`, `0 · log 0 = 0`) and
//! `huber` (`HuberLoss`).

use std::collections::HashMap;

use dnnc_lower::Mode;
use dnnc_sema::{file_diagnostics, RootDatabase};
use dnnc_session::steps::{forward, PassOptions};
use dnnc_tensor::{DType, Data, Tensor};
use dnnc_testing::files::Scratch;

/// The value of `loss` (an expression of `p`, `q`: `[2, 3]` floats and `y`: `i32[2]`)
/// for the given values, through a train block's evaluation graph on the interpreter.
fn loss_of(loss: &str, p: &[f32], q: &[f32], y: &[i32]) -> f64 {
    let s = Scratch::new("losses");
    s.write("d.csv", "a,b,c,d,e,f,g\n0,0,0,0,0,0,0\n");
    let src = format!(
        "use std::losses::{{bce, nll, kl_div, huber}}
use std::activations::{{log_softmax, softmax, sigmoid}}
model M {{
    param w: [1] = zeros
    fn forward(x: [B, 3]) -> [B, 3] {{ x + w }}
}}
dataset d {{
    train = (p: csv(\"d.csv\")[:, 0:3], q: csv(\"d.csv\")[:, 3:6], y: cast(csv(\"d.csv\")[:, 6], i32))
}}
train M() on d {{
    batch = 2
    let z = model(p)
    loss = {loss}
    optimizer = sgd(lr = 0.1)
}}
"
    );
    let path = s.write("l.dnn", &src);
    let db = RootDatabase::new();
    let file = db.open(std::path::Path::new(&path)).unwrap();
    assert!(
        file_diagnostics(&db, file).is_empty(),
        "{loss}: {:?}",
        file_diagnostics(&db, file)
    );
    let job = dnnc_session::job(&db, file).unwrap();
    let opts = PassOptions {
        verify: true,
        dump_after: None,
        precision: None,
        int8: Vec::new(),
    };
    let l = forward(job.db, job.file, job.item, Mode::Eval, 2, &opts).unwrap();
    let mut inputs = HashMap::new();
    inputs.insert(
        "p".to_string(),
        Tensor::f32(vec![2, 3], p.to_vec()).unwrap(),
    );
    inputs.insert(
        "q".to_string(),
        Tensor::f32(vec![2, 3], q.to_vec()).unwrap(),
    );
    inputs.insert(
        "y".to_string(),
        Tensor::new(DType::I32, vec![2], Data::I32(y.to_vec())).unwrap(),
    );
    let mut states = HashMap::new();
    states.insert("w".to_string(), Tensor::f32(vec![1], vec![0.0]).unwrap());
    let out = dnnc_interp::run(&l.graph, &inputs, &states).unwrap();
    out.output("loss").unwrap().data.to_f64_vec()[0]
}

const P: [f32; 6] = [0.2, 0.7, 0.1, 0.9, 0.05, 0.05];
const Q: [f32; 6] = [0.0, 1.0, 0.0, 1.0, 0.0, 0.0];

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * (1.0 + b.abs())
}

#[test]
fn bce_is_binary_cross_entropy_on_probabilities() {
    let want: f64 = P
        .iter()
        .zip(Q)
        .map(|(&p, t)| {
            let (p, t) = (f64::from(p), f64::from(t));
            -(t * p.ln().max(-100.0) + (1.0 - t) * (1.0 - p).ln().max(-100.0))
        })
        .sum::<f64>()
        / 6.0;
    let got = loss_of("bce(z, q)", &P, &Q, &[0, 0]);
    assert!(close(got, want), "{got} vs {want}");
    // A probability of exactly 0 for a target of 1 is clamped, not infinite.
    let got = loss_of("bce(z, q)", &[0.0; 6], &Q, &[0, 0]);
    assert!(close(got, 200.0 / 6.0), "{got}");
}

fn log_softmax(row: &[f32]) -> Vec<f64> {
    let m = row.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
    let lse = row
        .iter()
        .map(|&x| (f64::from(x) - m).exp())
        .sum::<f64>()
        .ln()
        + m;
    row.iter().map(|&x| f64::from(x) - lse).collect()
}

#[test]
fn nll_and_kl_div_follow_pytorch() {
    let rows = [log_softmax(&P[..3]), log_softmax(&P[3..])];
    let nll = -(rows[0][2] + rows[1][0]) / 2.0;
    assert!(close(
        loss_of("nll(log_softmax(z), y)", &P, &Q, &[2, 0]),
        nll
    ));
    // batchmean: the sum over every element, divided by the batch size (2).
    let targets = [
        log_softmax(&Q[..3])
            .iter()
            .map(|x| x.exp())
            .collect::<Vec<_>>(),
        log_softmax(&Q[3..])
            .iter()
            .map(|x| x.exp())
            .collect::<Vec<_>>(),
    ];
    let mut kl = 0.0;
    for r in 0..2 {
        for c in 0..3 {
            let t = targets[r][c];
            kl += t * (t.ln() - rows[r][c]);
        }
    }
    let got = loss_of("kl_div(log_softmax(z), softmax(q))", &P, &Q, &[0, 0]);
    assert!(close(got, kl / 2.0), "{got} vs {}", kl / 2.0);
    // A target of 0 contributes nothing (0 · log 0 = 0), as in PyTorch.
    let got = loss_of("kl_div(log_softmax(z), q)", &P, &Q, &[0, 0]);
    assert!(close(got, -(rows[0][1] + rows[1][0]) / 2.0), "{got}");
}

#[test]
fn huber_is_quadratic_near_zero_and_linear_beyond_delta() {
    let q = [0.0, 1.0, 0.5, -2.0, 0.05, 3.0];
    for delta in [1.0f64, 0.3] {
        let want: f64 = P
            .iter()
            .zip(q)
            .map(|(&p, t)| {
                let d = (f64::from(p) - f64::from(t)).abs();
                if d < delta {
                    0.5 * d * d
                } else {
                    delta * (d - 0.5 * delta)
                }
            })
            .sum::<f64>()
            / 6.0;
        let got = loss_of(&format!("huber(z, q, delta = {delta:?})"), &P, &q, &[0, 0]);
        assert!(close(got, want), "delta {delta}: {got} vs {want}");
    }
}

#[test]
fn softmax_and_log_softmax_take_an_axis() {
    // Along axis 0 (the batch of 2): each column of `z` is normalised on its own.
    let mut nll = 0.0;
    let mut soft = 0.0;
    for c in 0..3 {
        let col = log_softmax(&[P[c], P[3 + c]]);
        nll -= col[0] * f64::from(Q[c]) + col[1] * f64::from(Q[3 + c]);
        soft += col[0].exp() * f64::from(Q[c]) + col[1].exp() * f64::from(Q[3 + c]);
    }
    let got = loss_of("-sum(log_softmax(z, axis = 0) * q)", &P, &Q, &[2, 0]);
    assert!(close(got, nll), "{got} vs {nll}");
    let got = loss_of("sum(softmax(z, axis = -2) * q)", &P, &Q, &[2, 0]);
    assert!(close(got, soft), "{got} vs {soft}");
    // A list of one axis, as `sum` takes, is accepted too.
    let got = loss_of("-sum(log_softmax(z, axis = [0]) * q)", &P, &Q, &[2, 0]);
    assert!(close(got, nll), "{got} vs {nll}");
    // The default is the last axis.
    let rows = [log_softmax(&P[..3]), log_softmax(&P[3..])];
    let last: f64 = rows.iter().flatten().sum();
    let got = loss_of("sum(log_softmax(z))", &P, &Q, &[2, 0]);
    assert!(close(got, last), "{got} vs {last}");
}
