//! Initialisers are typed by the checker and instantiated with each layer's
//! hyperparameters: `constant(value = v)` inside a layer reads the `v` the model passes
//! (it used to read nothing and give zeros), and the settings of a `train` block come
//! out typed with the checker's defaults.

use dnnc_lower::Mode;
use dnnc_sema::{file_diagnostics, RootDatabase};
use dnnc_session::PassOptions;
use dnnc_settings::{Init, Optimizer, Schedule};
use dnnc_testing::files::Scratch;

const SOURCE: &str = "use std::losses::mse
layer Scale(v: Float, n: Int) {
    param w: [1, 1] = constant(value = v)
    param c: [1] = constant(n)
    param u: [3] = uniform(high = v)
    fn forward(x: [B, 1]) -> [B, 1] { x @ w + c + sum(u) }
}
model M() {
    s = Scale(3.0, 7)
    fn forward(x: [B, 1]) -> [B, 1] { s(x) }
}
dataset d {
    train = (x: csv(\"t.csv\")[:, 0:1], t: csv(\"t.csv\")[:, 1:2])
}
train M() on d {
    batch = 1
    loss = mse(model(x), t)
    optimizer = adamw(lr = 0.01)
    schedule = step(every = 2)
}
";

#[test]
fn layer_hyperparameters_reach_initialisers_and_settings_are_typed() {
    let dir = Scratch::new("initialisers");
    dir.write("t.csv", "x,t\n1,2\n");
    let path = dir.write("m.dnn", SOURCE);
    let db = RootDatabase::new();
    let file = db.open(std::path::Path::new(&path)).unwrap();
    let diags = file_diagnostics(&db, file);
    assert!(diags.is_empty(), "{diags:?}");
    let job = dnnc_session::job(&db, file).unwrap();
    let opts = PassOptions {
        verify: true,
        dump_after: None,
        precision: None,
        int8: Vec::new(),
    };
    let l =
        dnnc_session::steps::forward(job.db, job.file, job.item, Mode::Predict, 1, &opts).unwrap();
    let init = |name: &str| l.params.iter().find(|p| p.name == name).unwrap().init;
    assert_eq!(init("s.w"), Init::Constant { value: 3.0 });
    assert_eq!(init("s.c"), Init::Constant { value: 7.0 });
    assert_eq!(
        init("s.u"),
        Init::Uniform {
            low: -0.05,
            high: 3.0
        }
    );
    // AdamW's defaults and the step schedule's `gamma`, filled in by the checker.
    assert_eq!(
        job.cfg.steps[0].updates[0].optimizer.optimizer,
        Optimizer::Adam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            decoupled: true,
        }
    );
    assert_eq!(job.cfg.steps[0].updates[0].optimizer.clip_norm, 0.0);
    assert_eq!(
        job.cfg.schedule,
        Schedule::Step {
            every: 2,
            gamma: 0.1
        }
    );
    assert_eq!((job.cfg.batch, job.cfg.epochs, job.cfg.seed), (1, 1, 0));
}
