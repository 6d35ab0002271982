//! Turning a loss into a training step: gradients of every trainable parameter, the
//! learning-rate schedule, and the optimizer's update of parameters and its state, all
//! in the graph. Parameters and optimizer state are `state` nodes; their new values
//! are the graph's `update`s, so a backend can update them in place.
//!
//! The formulas follow PyTorch (`torch.optim`): SGD with momentum and Nesterov, Adam
//! with bias correction, AdamW with decoupled weight decay, RMSProp with optional
//! momentum. Coupled weight decay adds `weight_decay * p` to the gradient.
//!
//! Each optimizer keeps its own state under its namespace (`NS.m.fc1.W`, ...) and its
//! own step counter, the `i64` state `NS.step` (0 before its first step), which the
//! step advances; bias corrections and schedules read it, so optimizers that run at
//! different rates (a GAN's critic and generator) each count their own steps.
//!
//! A step whose loss is not finite changes no state: every new value of a parameter,
//! moment or buffer is `select(|loss| < inf, new, old)` (`Em::keep_if_finite`).

use crate::error::PassError;
use dnnc_ir::{BinaryOp, DType, Graph, NodeId, Op, Port, ReduceKind, UnaryOp};

use crate::autodiff::gradients;

type Res<T> = Result<T, PassError>;

pub use dnnc_settings::{Optimizer, Schedule};

/// What the step needs to know about the run.
#[derive(Clone, Debug)]
pub struct StepConfig {
    pub optimizer: Optimizer,
    /// Scale the gradients so their global L2 norm is at most this (PyTorch's
    /// `clip_grad_norm_`); 0 turns clipping off.
    pub clip_norm: f64,
    pub schedule: Schedule,
    pub steps_per_epoch: usize,
    pub epochs: usize,
    /// The prefix of the optimizer's states (`opt`: `opt.m.fc1.W`, `opt.step`).
    pub namespace: String,
}

impl StepConfig {
    /// The name of the optimizer's state `what` (`m.fc1.W`, `step`).
    fn state(&self, what: &str) -> String {
        format!("{}.{what}", self.namespace)
    }
}

struct Em<'g> {
    g: &'g mut Graph,
    /// Broadcasts made so far, by operand and shape: every parameter of one shape
    /// shares them (thousands of parameters would otherwise make thousands of equal
    /// nodes for CSE to merge).
    broadcasts: std::collections::HashMap<(NodeId, Vec<usize>), NodeId>,
    /// Scalar constants made so far, by value bits.
    constants: std::collections::HashMap<u64, NodeId>,
}

impl<'g> Em<'g> {
    fn new(g: &'g mut Graph) -> Em<'g> {
        Em {
            g,
            broadcasts: std::collections::HashMap::new(),
            constants: std::collections::HashMap::new(),
        }
    }
    fn c(&mut self, v: f64) -> Res<NodeId> {
        if let Some(&c) = self.constants.get(&v.to_bits()) {
            return Ok(c);
        }
        let c = self.g.add(
            Op::Const {
                value: v,
                dtype: DType::F32,
            },
            &[],
        )?;
        self.constants.insert(v.to_bits(), c);
        Ok(c)
    }
    fn splat(&mut self, v: f64, like: NodeId) -> Res<NodeId> {
        let c = self.c(v)?;
        self.bcast(c, like)
    }
    fn bcast(&mut self, x: NodeId, like: NodeId) -> Res<NodeId> {
        let s = self.g.ty(like).shape.clone();
        if self.g.ty(x).shape == s {
            return Ok(x);
        }
        if let Some(&b) = self.broadcasts.get(&(x, s.clone())) {
            return Ok(b);
        }
        let b = self.g.add(Op::Broadcast(s.clone()), &[x])?;
        self.broadcasts.insert((x, s), b);
        Ok(b)
    }
    fn bin(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Res<NodeId> {
        Ok(self.g.add(Op::Binary(op), &[a, b])?)
    }
    fn add(&mut self, a: NodeId, b: NodeId) -> Res<NodeId> {
        self.bin(BinaryOp::Add, a, b)
    }
    fn sub(&mut self, a: NodeId, b: NodeId) -> Res<NodeId> {
        self.bin(BinaryOp::Sub, a, b)
    }
    fn mul(&mut self, a: NodeId, b: NodeId) -> Res<NodeId> {
        self.bin(BinaryOp::Mul, a, b)
    }
    fn div(&mut self, a: NodeId, b: NodeId) -> Res<NodeId> {
        self.bin(BinaryOp::Div, a, b)
    }
    /// `k * x` for a static `k`.
    fn scale(&mut self, x: NodeId, k: f64) -> Res<NodeId> {
        let c = self.splat(k, x)?;
        self.mul(x, c)
    }
    /// `a * x + b * y` for static `a`, `b`.
    fn lerp(&mut self, a: f64, x: NodeId, b: f64, y: NodeId) -> Res<NodeId> {
        let ax = self.scale(x, a)?;
        let by = self.scale(y, b)?;
        self.add(ax, by)
    }
    /// `select(|loss| < inf, new, old)`, given `magnitude = |loss|`: the new value of a
    /// state only when the step's loss is finite. The comparison is of two splats, so
    /// it becomes a lane mask inside the loop that computes `new`; a finite loss selects
    /// `new` exactly.
    fn keep_if_finite(&mut self, magnitude: NodeId, new: NodeId, old: NodeId) -> Res<NodeId> {
        let m = self.bcast(magnitude, new)?;
        let inf = self.splat(f64::INFINITY, new)?;
        let finite = self.bin(BinaryOp::Lt, m, inf)?;
        Ok(self.g.add(Op::Select, &[finite, new, old])?)
    }
    /// `x` as `dtype` (itself when it has that type already).
    fn as_type(&mut self, x: NodeId, dtype: DType) -> Res<NodeId> {
        if self.g.ty(x).dtype == dtype {
            return Ok(x);
        }
        Ok(self.g.add(Op::Cast(dtype), &[x])?)
    }

    /// `x` as f32, the type updates are computed in.
    fn widened(&mut self, x: NodeId) -> Res<NodeId> {
        self.as_type(x, DType::F32)
    }

    fn state(&mut self, name: String, like: NodeId) -> Res<NodeId> {
        let ty = self.g.ty(like).clone();
        Ok(self.g.add(
            Op::State {
                name,
                dtype: ty.dtype,
                shape: ty.shape,
            },
            &[],
        )?)
    }
}

/// The gradients scaled by `min(1, max_norm / (‖g‖ + 1e-6))`, where `‖g‖` is the L2
/// norm of all of them together (PyTorch's `clip_grad_norm_`).
fn clip_by_global_norm(em: &mut Em<'_>, grads: &[NodeId], max_norm: f64) -> Res<Vec<NodeId>> {
    let mut total: Option<NodeId> = None;
    for &gr in grads {
        let sq = em.mul(gr, gr)?;
        let rank = em.g.ty(gr).shape.len();
        let s = em.g.add(
            Op::Reduce {
                kind: ReduceKind::Sum,
                axes: (0..rank).collect(),
                keepdims: false,
            },
            &[sq],
        )?;
        total = Some(match total {
            Some(t) => em.add(t, s)?,
            None => s,
        });
    }
    let Some(total) = total else {
        return Ok(Vec::new());
    };
    let norm = em.g.add(Op::Unary(UnaryOp::Sqrt), &[total])?;
    let eps = em.c(1e-6)?;
    let denom = em.add(norm, eps)?;
    let max = em.c(max_norm)?;
    let ratio = em.div(max, denom)?;
    let one = em.c(1.0)?;
    let coef = em.bin(BinaryOp::Min, ratio, one)?;
    grads
        .iter()
        .map(|&gr| {
            let c = em.bcast(coef, gr)?;
            em.mul(gr, c)
        })
        .collect()
}

/// The learning rate at the current step, a scalar node.
fn learning_rate(em: &mut Em<'_>, step_f: NodeId, base: f64, cfg: &StepConfig) -> Res<NodeId> {
    let spe = cfg.steps_per_epoch.max(1) as f64;
    let base_c = em.c(base)?;
    let epoch = {
        let s = em.c(1.0 / spe)?;
        let e = em.mul(step_f, s)?;
        em.g.add(Op::Unary(UnaryOp::Floor), &[e])?
    };
    match &cfg.schedule {
        Schedule::Constant => Ok(base_c),
        Schedule::Step { every, gamma } => {
            let inv = em.c(1.0 / (*every).max(1) as f64)?;
            let k = em.mul(epoch, inv)?;
            let k = em.g.add(Op::Unary(UnaryOp::Floor), &[k])?;
            let gmm = em.c(*gamma)?;
            let f = em.bin(BinaryOp::Pow, gmm, k)?;
            em.mul(base_c, f)
        }
        Schedule::MultiStep { milestones, gamma } => {
            // One factor per milestone: 1 before it, gamma from it on.
            let mut lr = base_c;
            for &m in milestones {
                let mc = em.c(m as f64)?;
                let before = em.bin(BinaryOp::Lt, epoch, mc)?;
                let one = em.c(1.0)?;
                let gmm = em.c(*gamma)?;
                let f = em.g.add(Op::Select, &[before, one, gmm])?;
                lr = em.mul(lr, f)?;
            }
            Ok(lr)
        }
        Schedule::ReduceOnPlateau { .. } => {
            let scale = em.g.add(
                Op::Input {
                    name: Port::LrScale.name().into(),
                    dtype: DType::F32,
                    shape: vec![],
                },
                &[],
            )?;
            em.mul(base_c, scale)
        }
        Schedule::Exponential { gamma } => {
            let gmm = em.c(*gamma)?;
            let f = em.bin(BinaryOp::Pow, gmm, epoch)?;
            em.mul(base_c, f)
        }
        Schedule::Cosine {
            warmup_epochs,
            min_lr,
            warmup_steps,
            decay_steps,
        } => {
            let warm = if *warmup_steps > 0 {
                *warmup_steps as f64
            } else {
                (*warmup_epochs as f64 * spe).max(0.0)
            };
            let total = if *decay_steps > 0 {
                *decay_steps as f64
            } else {
                cfg.epochs as f64 * spe
            }
            .max(warm + 1.0);
            // Warm-up: base * (step + 1) / warm.
            let one = em.c(1.0)?;
            let s1 = em.add(step_f, one)?;
            let inv_w = em.c(1.0 / warm.max(1.0))?;
            let wf = em.mul(s1, inv_w)?;
            let warm_lr = em.mul(base_c, wf)?;
            // Cosine: min + (base - min) * (1 + cos(pi * (step - warm) / (total - warm))) / 2.
            let wc = em.c(warm)?;
            let t = em.sub(step_f, wc)?;
            // From `total` on, the rate stays at `min_lr`.
            let span_c = em.c(total - warm)?;
            let t = em.bin(BinaryOp::Min, t, span_c)?;
            let k = em.c(std::f64::consts::PI / (total - warm))?;
            let ang = em.mul(t, k)?;
            let cos = em.g.add(Op::Unary(UnaryOp::Cos), &[ang])?;
            let one2 = em.c(1.0)?;
            let up = em.add(cos, one2)?;
            let half = em.c(0.5 * (base - min_lr))?;
            let span = em.mul(up, half)?;
            let minc = em.c(*min_lr)?;
            let cos_lr = em.add(span, minc)?;
            let wc2 = em.c(warm)?;
            let in_warmup = em.bin(BinaryOp::Lt, step_f, wc2)?;
            Ok(em.g.add(Op::Select, &[in_warmup, warm_lr, cos_lr])?)
        }
    }
}

/// The gradients of the `loss` output with respect to the named trainable parameters
/// (`state` nodes), added to `g`: the `autodiff` stage of a training step.
pub struct Gradients {
    /// `(parameter name, its state node, its gradient)`.
    pub of: Vec<(String, NodeId, NodeId)>,
}

/// Adds the gradients of the `loss` output with respect to the `trainable` states.
pub fn add_gradients(g: &mut Graph, trainable: &[String]) -> Res<Gradients> {
    let loss = g
        .output(Port::Loss.name())
        .ok_or_else(|| PassError::Missing("the graph has no `loss` output".into()))?;
    let params: Vec<(String, NodeId)> = g
        .states()
        .into_iter()
        .filter_map(|n| match &g.node(n).op {
            Op::State { name, .. } if trainable.contains(name) => Some((name.clone(), n)),
            _ => None,
        })
        .collect();
    let nodes: Vec<NodeId> = params.iter().map(|(_, n)| *n).collect();
    let grads = gradients(g, loss, &nodes)?;
    Ok(Gradients {
        of: params
            .into_iter()
            .zip(grads)
            .map(|((name, p), gr)| (name, p, gr))
            .collect(),
    })
}

/// Adds gradients and optimizer updates for the named trainable parameters (`state`
/// nodes) to a graph whose `loss` output is set. Returns the number of parameters
/// updated.
pub fn add_training_step(g: &mut Graph, trainable: &[String], cfg: &StepConfig) -> Res<usize> {
    let grads = add_gradients(g, trainable)?;
    add_updates(g, grads, cfg)
}

/// Adds the learning-rate schedule and the optimizer's updates of the parameters (and
/// of its own state) from their gradients: the `optimizer` stage of a training step.
/// Returns the number of parameters updated.
pub fn add_updates(g: &mut Graph, grads: Gradients, cfg: &StepConfig) -> Res<usize> {
    add_optimizers(g, vec![(grads, cfg.clone())])
}

/// The state that carries parameter `name`'s gradient from the first half of a
/// data-parallel step (forward and backward) to the second (the update); the host
/// averages it over the processes in between. (`#` keeps it apart from the
/// program's names.)
pub fn gradient_state(name: &str) -> String {
    format!("#grad.{name}")
}

/// The first half of a data-parallel step: every gradient of `groups` written to its
/// [`gradient_state`]; the graph's other updates (batch-norm statistics) are kept
/// only when its loss is finite, as in a whole step. Returns the number of
/// gradients.
pub fn add_gradient_updates(g: &mut Graph, groups: &[Gradients]) -> Res<usize> {
    let loss = g
        .output(Port::Loss.name())
        .ok_or_else(|| PassError::Missing("the graph has no `loss` output".into()))?;
    let mut em = Em::new(g);
    let magnitude = em.g.add(Op::Unary(UnaryOp::Abs), &[loss])?;
    guard_remaining_updates(&mut em, magnitude, &std::collections::HashSet::new())?;
    let mut count = 0;
    for grads in groups {
        for (name, _, grad) in &grads.of {
            // In f32 (the update widens every gradient anyway); the verifier wants a
            // state for every update.
            let grad = em.widened(*grad)?;
            em.state(gradient_state(name), grad)?;
            em.g.add_update(gradient_state(name), grad);
            count += 1;
        }
    }
    Ok(count)
}

/// A parameter a step trains: its name, element type and shape.
pub type TrainedParam = (String, DType, Vec<usize>);

/// The second half of a data-parallel step: a graph that reads each parameter of
/// `groups` (`(name, element type, shape)`, per optimizer) and its gradient from the
/// [`gradient_state`]s, the batch's loss from the input [`Port::GlobalLoss`], and
/// applies the optimizers as [`add_optimizers`] does (clipping, schedules, the
/// finite-loss guard). Returns the graph and the number of parameters updated.
pub fn update_graph(groups: &[(Vec<TrainedParam>, StepConfig)]) -> Res<(Graph, usize)> {
    let mut g = Graph::new("update");
    let loss = g.add(
        Op::Input {
            name: Port::GlobalLoss.name().into(),
            dtype: DType::F32,
            shape: vec![],
        },
        &[],
    )?;
    g.set_output(Port::Loss.name(), loss);
    let mut with_grads = Vec::new();
    for (params, cfg) in groups {
        let mut of = Vec::new();
        for (name, dtype, shape) in params {
            let mut state = |name: String, dtype: DType| {
                let shape = shape.clone();
                g.add(Op::State { name, dtype, shape }, &[])
            };
            let p = state(name.clone(), *dtype)?;
            let grad = state(gradient_state(name), DType::F32)?;
            of.push((name.clone(), p, grad));
        }
        with_grads.push((Gradients { of }, cfg.clone()));
    }
    let n = add_optimizers(&mut g, with_grads)?;
    Ok((g, n))
}

/// [`add_updates`] for several optimizers in one step, each updating its own
/// parameters from the same loss (`update G with adam(...)`, `update H with sgd(...)`);
/// the graph's `lr` output is the first optimizer's rate. Returns the number of
/// parameters updated.
pub fn add_optimizers(g: &mut Graph, groups: Vec<(Gradients, StepConfig)>) -> Res<usize> {
    let loss = g
        .output(Port::Loss.name())
        .ok_or_else(|| PassError::Missing("the graph has no `loss` output".into()))?;
    let mut em = Em::new(g);
    // Every new state value is guarded by the loss being finite (`keep_if_finite`);
    // moments are guarded before the parameter's update reads them, so the whole
    // update of one parameter stays one fused loop.
    let magnitude = em.g.add(Op::Unary(UnaryOp::Abs), &[loss])?;
    let mut guarded: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut count = 0;
    let mut first_lr = None;
    for (grads, cfg) in &groups {
        let lr = optimizer_updates(&mut em, magnitude, &mut guarded, grads, cfg)?;
        first_lr.get_or_insert(lr);
        count += grads.of.len();
    }
    if let Some(lr) = first_lr {
        em.g.set_output(Port::LearningRate.name(), lr);
    }
    guard_remaining_updates(&mut em, magnitude, &guarded)?;
    Ok(count)
}

/// One optimizer's counter, rate and updates; returns its learning-rate node.
fn optimizer_updates(
    em: &mut Em<'_>,
    magnitude: NodeId,
    guarded: &mut std::collections::HashSet<String>,
    grads: &Gradients,
    cfg: &StepConfig,
) -> Res<NodeId> {
    let params: Vec<(String, NodeId)> = grads.of.iter().map(|(n, p, _)| (n.clone(), *p)).collect();
    // Updates are computed in f32 whatever the parameter's type (a `bf16` or `f16`
    // parameter is read widened and its new value rounded once, at the end), so the
    // optimizer's state is f32 too.
    let grads: Vec<NodeId> = grads
        .of
        .iter()
        .map(|(_, _, gr)| em.widened(*gr))
        .collect::<Res<_>>()?;
    let grads = if cfg.clip_norm > 0.0 {
        clip_by_global_norm(em, &grads, cfg.clip_norm)?
    } else {
        grads
    };
    // The optimizer's own step counter: read before, advanced by one (when the loss is
    // finite) after.
    let counter = cfg.state("step");
    let step = em.g.add(
        Op::State {
            name: counter.clone(),
            dtype: DType::I64,
            shape: vec![],
        },
        &[],
    )?;
    let one_i = em.g.add(
        Op::Const {
            value: 1.0,
            dtype: DType::I64,
        },
        &[],
    )?;
    let next = em.g.add(Op::Binary(BinaryOp::Add), &[step, one_i])?;
    let next = em.keep_if_finite(magnitude, next, step)?;
    em.g.add_update(counter.clone(), next);
    guarded.insert(counter);
    let step_f = em.g.add(Op::Cast(DType::F32), &[step])?;
    let lr = learning_rate(em, step_f, cfg.optimizer.lr(), cfg)?;
    for ((name, stored), grad) in params.iter().zip(grads) {
        let p = em.widened(*stored)?;
        let lr_b = em.bcast(lr, p)?;
        let new_p = match &cfg.optimizer {
            Optimizer::Sgd {
                momentum,
                nesterov,
                weight_decay,
                ..
            } => {
                let gr = if *weight_decay > 0.0 {
                    em_decay(em, grad, p, *weight_decay)?
                } else {
                    grad
                };
                let dir = if *momentum > 0.0 {
                    let buf = em.state(cfg.state(&format!("momentum.{name}")), p)?;
                    let nb = em.lerp(*momentum, buf, 1.0, gr)?;
                    let nb = em.keep_if_finite(magnitude, nb, buf)?;
                    em.g.add_update(cfg.state(&format!("momentum.{name}")), nb);
                    guarded.insert(cfg.state(&format!("momentum.{name}")));
                    if *nesterov {
                        em.lerp(1.0, gr, *momentum, nb)?
                    } else {
                        nb
                    }
                } else {
                    gr
                };
                let d = em.mul(lr_b, dir)?;
                em.sub(p, d)?
            }
            Optimizer::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                decoupled,
                ..
            } => {
                let gr = if *weight_decay > 0.0 && !decoupled {
                    em_decay(em, grad, p, *weight_decay)?
                } else {
                    grad
                };
                let m = em.state(cfg.state(&format!("m.{name}")), p)?;
                let v = em.state(cfg.state(&format!("v.{name}")), p)?;
                let nm = em.lerp(*beta1, m, 1.0 - beta1, gr)?;
                let nm = em.keep_if_finite(magnitude, nm, m)?;
                let g2 = em.mul(gr, gr)?;
                let nv = em.lerp(*beta2, v, 1.0 - beta2, g2)?;
                let nv = em.keep_if_finite(magnitude, nv, v)?;
                em.g.add_update(cfg.state(&format!("m.{name}")), nm);
                em.g.add_update(cfg.state(&format!("v.{name}")), nv);
                guarded.insert(cfg.state(&format!("m.{name}")));
                guarded.insert(cfg.state(&format!("v.{name}")));
                // Bias corrections with t = step + 1.
                let one = em.c(1.0)?;
                let t = em.add(step_f, one)?;
                let b1 = em.c(*beta1)?;
                let b2 = em.c(*beta2)?;
                let b1t = em.bin(BinaryOp::Pow, b1, t)?;
                let b2t = em.bin(BinaryOp::Pow, b2, t)?;
                let one_a = em.c(1.0)?;
                let c1 = em.sub(one_a, b1t)?;
                let one_b = em.c(1.0)?;
                let c2 = em.sub(one_b, b2t)?;
                // PyTorch's arrangement: scalars first, then one square root and one
                // division per element.
                //   step_size = lr / c1,  denom = √v' · (1/√c2) + ε,
                //   p' = p − step_size · m' / denom
                let step_size = em.div(lr, c1)?;
                let sqrt_c2 = em.g.add(Op::Unary(UnaryOp::Sqrt), &[c2])?;
                let one_c = em.c(1.0)?;
                let inv_sqrt_c2 = em.div(one_c, sqrt_c2)?;
                let sq = em.g.add(Op::Unary(UnaryOp::Sqrt), &[nv])?;
                let inv_b = em.bcast(inv_sqrt_c2, p)?;
                let scaled = em.mul(sq, inv_b)?;
                let e = em.splat(*eps, p)?;
                let den = em.add(scaled, e)?;
                let upd = em.div(nm, den)?;
                let step_b = em.bcast(step_size, p)?;
                let d = em.mul(step_b, upd)?;
                let mut np = em.sub(p, d)?;
                if *weight_decay > 0.0 && *decoupled {
                    let wd = em.scale(p, *weight_decay)?;
                    let d2 = em.mul(lr_b, wd)?;
                    np = em.sub(np, d2)?;
                }
                np
            }
            Optimizer::RmsProp {
                alpha,
                eps,
                momentum,
                weight_decay,
                ..
            } => {
                let gr = if *weight_decay > 0.0 {
                    em_decay(em, grad, p, *weight_decay)?
                } else {
                    grad
                };
                let sq = em.state(cfg.state(&format!("square_avg.{name}")), p)?;
                let g2 = em.mul(gr, gr)?;
                let nsq = em.lerp(*alpha, sq, 1.0 - alpha, g2)?;
                let nsq = em.keep_if_finite(magnitude, nsq, sq)?;
                em.g.add_update(cfg.state(&format!("square_avg.{name}")), nsq);
                guarded.insert(cfg.state(&format!("square_avg.{name}")));
                let root = em.g.add(Op::Unary(UnaryOp::Sqrt), &[nsq])?;
                let e = em.splat(*eps, p)?;
                let avg = em.add(root, e)?;
                let step_dir = em.div(gr, avg)?;
                let dir = if *momentum > 0.0 {
                    let buf = em.state(cfg.state(&format!("momentum.{name}")), p)?;
                    let nb = em.lerp(*momentum, buf, 1.0, step_dir)?;
                    let nb = em.keep_if_finite(magnitude, nb, buf)?;
                    em.g.add_update(cfg.state(&format!("momentum.{name}")), nb);
                    guarded.insert(cfg.state(&format!("momentum.{name}")));
                    nb
                } else {
                    step_dir
                };
                let d = em.mul(lr_b, dir)?;
                em.sub(p, d)?
            }
        };
        let new_p = em.as_type(new_p, em.g.ty(*stored).dtype)?;
        let new_p = em.keep_if_finite(magnitude, new_p, *stored)?;
        em.g.add_update(name.clone(), new_p);
        guarded.insert(name.clone());
    }
    Ok(lr)
}

/// Guards the updates the optimizer did not make itself (buffers such as batch norm's
/// running statistics, assigned in the forward pass) like [`Em::keep_if_finite`].
fn guard_remaining_updates(
    em: &mut Em<'_>,
    magnitude: NodeId,
    guarded: &std::collections::HashSet<String>,
) -> Res<()> {
    let states: std::collections::HashMap<String, NodeId> =
        em.g.states()
            .into_iter()
            .filter_map(|n| match &em.g.node(n).op {
                Op::State { name, .. } => Some((name.clone(), n)),
                _ => None,
            })
            .collect();
    for (name, new) in em.g.updates().to_vec() {
        if guarded.contains(&name) {
            continue;
        }
        let Some(&old) = states.get(&name) else {
            return Err(PassError::Missing(format!(
                "the update of `{name}` has no state"
            )));
        };
        let kept = em.keep_if_finite(magnitude, new, old)?;
        em.g.add_update(name, kept);
    }
    Ok(())
}

fn em_decay(em: &mut Em<'_>, grad: NodeId, p: NodeId, wd: f64) -> Res<NodeId> {
    let d = em.scale(p, wd)?;
    em.add(grad, d)
}

/// The state holding parameter `param`'s pruning mask: 1 where a weight is pruned, 0
/// where it is kept (so a mask that was never set prunes nothing).
pub fn pruning_mask(param: &str) -> String {
    format!("prune.{param}")
}

/// Magnitude pruning: each of `params` leaves the step as its update with the weights
/// its mask ([`pruning_mask`], a state the run sets) prunes set to zero — the mask is
/// applied after every update, so a pruned weight stays zero whatever its gradient
/// and optimizer state say. Returns how many updates were masked.
pub fn mask_updates(g: &mut Graph, params: &[String]) -> Res<usize> {
    let mut em = Em::new(g);
    let updates: Vec<(String, NodeId)> = em.g.updates().to_vec();
    let mut masked = 0;
    for (name, update) in updates {
        if !params.contains(&name) || em.g.ty(update).dtype != DType::F32 {
            continue;
        }
        let ty = em.g.ty(update).clone();
        let mask = em.g.add(
            Op::State {
                name: pruning_mask(&name),
                dtype: DType::F32,
                shape: ty.shape,
            },
            &[],
        )?;
        let half = em.splat(0.5, mask)?;
        let pruned = em.bin(BinaryOp::Gt, mask, half)?;
        let zero = em.splat(0.0, update)?;
        let kept = em.g.add(Op::Select, &[pruned, zero, update])?;
        em.g.add_update(name, kept);
        masked += 1;
    }
    Ok(masked)
}
