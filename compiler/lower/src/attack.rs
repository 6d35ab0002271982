//! Evaluation under attack (`dnnc eval --attack`): before the train block's loss and
//! metrics are lowered, its float batch fields are replaced by adversarial versions
//! made by the `.dnn` attacks of `std::adversarial` (FGSM, PGD) against the block's
//! own loss — exactly what a program calling them would compute.

use std::collections::{HashMap, HashSet};

use dnnc_ir::NodeId;
use dnnc_syntax::ast::{TrainDef, TrainItemKind};

use crate::emit::Res;
use crate::error::LowerError;
use crate::lowerer::Lowerer;
use crate::value::Val;

/// An attack on the inputs of evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Attack {
    pub kind: AttackKind,
    /// The budget in the max-norm (per element).
    pub eps: f64,
    /// The float fields to perturb, each with the range its values are clamped to.
    pub fields: Vec<(String, f64, f64)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttackKind {
    /// One step of size `eps` along the gradient's sign.
    Fgsm,
    /// `steps` steps of size `step`, projected into the `eps`-ball; from a uniform
    /// random point of the ball when `random_start`.
    Pgd {
        steps: usize,
        step: f64,
        random_start: bool,
    },
}

impl AttackKind {
    pub fn name(&self) -> &'static str {
        match self {
            AttackKind::Fgsm => "fgsm",
            AttackKind::Pgd { .. } => "pgd",
        }
    }
}

/// Rebinds `attack.fields` to their adversarial versions.
pub fn perturb_fields(lw: &mut Lowerer<'_, '_>, def: &TrainDef, attack: &Attack) -> Res<()> {
    if def
        .items
        .iter()
        .any(|i| matches!(i.kind, TrainItemKind::Step { .. }))
    {
        return Err(LowerError::NotApplicable(
            "--attack evaluates train blocks of the single-model form".into(),
        ));
    }
    // The clean loss, noting what the model is applied to: only the fields its input
    // is computed from are attacked (an image, not a regression target).
    lw.model_inputs = Some(Vec::new());
    let clean_loss = loss_of(lw, def)?;
    let model_inputs = lw.model_inputs.take().unwrap_or_default();
    let feeding = ancestors(lw.em.g, &model_inputs);
    let mut fields = Vec::new();
    let mut clean = Vec::new();
    for (f, lo, hi) in &attack.fields {
        if let Val::T(t) = lw.lookup(f)? {
            if feeding.contains(&t) {
                fields.push((f.clone(), *lo, *hi));
                clean.push(t);
            }
        }
    }
    if fields.is_empty() {
        return Err(LowerError::NotApplicable(
            "--attack perturbs the float fields the model's input is computed from, and no float field reaches it".into(),
        ));
    }
    let attack = &Attack {
        fields,
        ..attack.clone()
    };
    let range = |k: usize| {
        let (_, lo, hi) = attack.fields[k];
        [Val::Float(lo), Val::Float(hi)]
    };
    let mut current = clean.clone();
    match attack.kind {
        AttackKind::Fgsm => {
            let loss = clean_loss;
            for (k, x) in current.iter_mut().enumerate() {
                let [lo, hi] = range(k);
                let args = vec![Val::T(loss), Val::T(*x), Val::Float(attack.eps), lo, hi];
                *x = crate::calls::call_std(lw, "adversarial", "fgsm", args)?;
            }
        }
        AttackKind::Pgd {
            steps,
            step,
            random_start,
        } => {
            if random_start {
                for (k, x) in current.iter_mut().enumerate() {
                    let [lo, hi] = range(k);
                    let args = vec![Val::T(*x), Val::Float(attack.eps), lo, hi];
                    *x = crate::calls::call_std(lw, "adversarial", "pgd_start", args)?;
                }
                rebind(lw, attack, &current);
            }
            for _ in 0..steps {
                let loss = loss_of(lw, def)?;
                let mut next = Vec::with_capacity(current.len());
                for (k, (&x, &x0)) in current.iter().zip(&clean).enumerate() {
                    let [lo, hi] = range(k);
                    let args = vec![
                        Val::T(loss),
                        Val::T(x),
                        Val::T(x0),
                        Val::Float(attack.eps),
                        Val::Float(step),
                        lo,
                        hi,
                    ];
                    next.push(crate::calls::call_std(lw, "adversarial", "pgd_step", args)?);
                }
                current = next;
                rebind(lw, attack, &current);
            }
        }
    }
    rebind(lw, attack, &current);
    Ok(())
}

/// Every node `roots` are computed from, and the roots.
fn ancestors(g: &dnnc_ir::Graph, roots: &[NodeId]) -> HashSet<NodeId> {
    let mut seen = HashSet::new();
    let mut stack = roots.to_vec();
    while let Some(n) = stack.pop() {
        if seen.insert(n) {
            stack.extend(g.operands(n));
        }
    }
    seen
}

fn rebind(lw: &mut Lowerer<'_, '_>, attack: &Attack, values: &[NodeId]) {
    for ((f, _, _), &x) in attack.fields.iter().zip(values) {
        lw.bind(f, Val::T(x));
    }
}

/// The block's `loss` for the fields as bound now (its `let`s evaluated in a scope of
/// their own).
fn loss_of(lw: &mut Lowerer<'_, '_>, def: &TrainDef) -> Res<NodeId> {
    lw.scopes.push(HashMap::new());
    let mut loss = None;
    for it in &def.items {
        match &it.kind {
            TrainItemKind::Let(l) => {
                let v = crate::eval::expr(lw, &l.value)?;
                crate::eval::bind_pattern(lw, &l.pattern, v)?;
            }
            TrainItemKind::Field(n, e) if n.text == "loss" => {
                loss = Some(crate::model::float_tensor(lw, e)?);
            }
            _ => {}
        }
    }
    lw.scopes.pop();
    loss.ok_or_else(|| "the train block has no `loss`".into())
}
