//! The typed values of a `train` block's settings: the optimizer, the learning-rate
//! schedule, clipping, early stopping, parameter initialisers and data augmentations.
//!
//! The checker (`dnnc-sema`) resolves each setting once, from its table of names,
//! parameters and defaults, into these values; the optimizer pass, the session and the
//! runtime consume them. No later stage reads a setting by name or knows a default.
//! A leaf crate: it depends on nothing.

/// An optimizer with its hyperparameters (PyTorch's `torch.optim` formulas).
#[derive(Clone, Debug, PartialEq)]
pub enum Optimizer {
    Sgd {
        lr: f64,
        momentum: f64,
        nesterov: bool,
        weight_decay: f64,
    },
    /// Adam, or AdamW when `decoupled` (weight decay applied to the parameter, not
    /// added to the gradient).
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        decoupled: bool,
    },
    RmsProp {
        lr: f64,
        alpha: f64,
        eps: f64,
        momentum: f64,
        weight_decay: f64,
    },
}

impl Optimizer {
    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            Optimizer::Sgd { lr, .. }
            | Optimizer::Adam { lr, .. }
            | Optimizer::RmsProp { lr, .. } => *lr,
        }
    }
}

/// An optimizer as a `train` block or a `step` gives it: the rule and its gradient
/// clipping.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerSetting {
    pub optimizer: Optimizer,
    /// Scale the gradients so their global L2 norm is at most this (PyTorch's
    /// `clip_grad_norm_`); 0 turns clipping off.
    pub clip_norm: f64,
}

/// The learning-rate schedule, in epochs.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        every: usize,
        gamma: f64,
    },
    /// Multiply by `gamma` every epoch.
    Exponential {
        gamma: f64,
    },
    /// Linear warm-up over `warmup_epochs` (or `warmup_steps` steps when that is not
    /// 0), then a half cosine down to `min_lr` at the end of training (or after
    /// `decay_steps` steps in all when that is not 0, staying at `min_lr` from there:
    /// nanoGPT's schedule).
    Cosine {
        warmup_epochs: usize,
        min_lr: f64,
        warmup_steps: usize,
        decay_steps: usize,
    },
    /// Multiply by `gamma` at each milestone epoch (PyTorch's `MultiStepLR`): the rate
    /// in epoch `e` is `lr * gamma^(milestones ≤ e)`. Sorted.
    MultiStep {
        milestones: Vec<usize>,
        gamma: f64,
    },
    /// Multiply by `factor` when `metric` has not improved for more than `patience`
    /// epochs (PyTorch's `ReduceLROnPlateau`, relative threshold). The host keeps this
    /// state and feeds the graph a learning-rate scale.
    ReduceOnPlateau {
        metric: String,
        patience: usize,
        factor: f64,
        min_lr: f64,
        maximize: bool,
        threshold: f64,
    },
}

/// Stop training when a logged metric has not improved for `patience` epochs.
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStop {
    /// The split the metric is computed on (`test`, `train`).
    pub split: String,
    /// The metric (`loss`, `accuracy`, ...).
    pub metric: String,
    pub patience: usize,
    /// `true` when larger is better.
    pub maximize: bool,
    pub min_delta: f64,
}

/// How a parameter's initial value is drawn. Fans follow the usual conventions
/// (`[in, out]`: in and out; `[out_c, in_c, k...]`: `in_c·∏k` and `out_c·∏k`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Zeros,
    Ones,
    Constant {
        value: f64,
    },
    Uniform {
        low: f64,
        high: f64,
    },
    Normal {
        mean: f64,
        std: f64,
    },
    GlorotUniform,
    GlorotNormal,
    HeUniform,
    HeNormal,
    LecunUniform,
    LecunNormal,
    /// Uniform on `±1/sqrt(fan)` for a given `fan` (PyTorch's default for recurrent
    /// layers' weights and biases, `fan` = the hidden size).
    UniformFan {
        fan: f64,
    },
}

/// One augmentation of training batches with its arguments (the semantics are
/// `dnnc_runtime::augment`'s).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Augmentation {
    /// `random_crop(padding)`: zero-pad by `padding` on every side and crop back to
    /// `H × W` at a uniformly random offset — a shift by integers `dy`, `dx` drawn
    /// uniformly from `[-padding, padding]`, with zero fill (torchvision's
    /// `RandomCrop(size, padding)`).
    RandomCrop {
        /// Pixels of zero padding on each side.
        padding: usize,
    },
    /// `hflip(p)`: mirror the width axis with probability `p`
    /// (`RandomHorizontalFlip`).
    HFlip {
        /// The probability of a flip, in `[0, 1]`.
        p: f32,
    },
    /// `rotate(degrees)`: rotate about the image centre by an angle drawn uniformly
    /// from `[-degrees, degrees]` (positive is counter-clockwise), bilinear
    /// interpolation, zero fill (`RandomRotation(degrees, BILINEAR)`).
    Rotate {
        /// The largest angle, in degrees.
        degrees: f32,
    },
    /// `noise(std)`: add `N(0, std²)` noise to every element.
    Noise {
        /// The standard deviation of the noise.
        std: f32,
    },
    /// `brightness(amount)`: multiply by a factor drawn uniformly from
    /// `[1 − amount, 1 + amount]` (`ColorJitter(brightness)` without clamping).
    Brightness {
        /// How far the factor may be from 1, in `[0, 1]`.
        amount: f32,
    },
    /// `contrast(amount)`: `mean + f · (x − mean)` with `f` drawn uniformly from
    /// `[1 − amount, 1 + amount]` and `mean` the mean of the sample over all its
    /// channels (`ColorJitter(contrast)` takes the mean of the grey image instead).
    Contrast {
        /// How far the factor may be from 1, in `[0, 1]`.
        amount: f32,
    },
}

/// One optimizer of a step and the models it updates.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    /// The models' binding names (`model` in the single-model form).
    pub models: Vec<String>,
    pub optimizer: OptimizerSetting,
}

/// A step of a training plan: one loss, the optimizers that update models from it.
#[derive(Clone, Debug, PartialEq)]
pub struct StepSetting {
    /// The step's name (`train` in the single-model form).
    pub name: String,
    pub updates: Vec<Update>,
}

/// Everything a `train` block sets, with the checker's defaults filled in. The
/// single-model form is a plan of one step, `train`, updating `model`.
#[derive(Clone, Debug, PartialEq)]
pub struct Training {
    pub batch: usize,
    pub epochs: usize,
    pub seed: u64,
    pub shuffle: bool,
    /// The steps each batch runs, in order.
    pub steps: Vec<StepSetting>,
    /// Whether the block has the multi-model form (`model NAME = ...`, `step`s).
    pub multi: bool,
    /// Whether the block has a `sample` expression (`dnnc sample`, sample grids).
    pub sample: bool,
    /// Applied to every optimizer.
    pub schedule: Schedule,
    /// The metrics logged besides the loss (`accuracy`).
    pub metrics: Vec<String>,
    pub early_stop: Option<EarlyStop>,
    /// Where checkpoints go, relative to the file.
    pub checkpoint: Option<String>,
    /// The precision of matrix products (`precision = bf16`).
    pub precision: Precision,
    /// Magnitude pruning during training (`prune = magnitude(...)`).
    pub prune: Option<Prune>,
}

/// Gradual magnitude pruning (Zhu & Gupta, 2017): the weights of every trainable
/// parameter of rank 2 or more (the matrices of `Dense`, the kernels of `Conv2d`)
/// with the smallest magnitudes are set to zero and kept there. The target sparsity
/// rises as `s(t) = sparsity · (1 − (1 − (t − t₀)/(t₁ − t₀))³)` from 0 at the first
/// step of `start_epoch` (`t₀`) to `sparsity` at the end of `end_epoch` (`t₁`); masks
/// are recomputed every `every` steps in between, and at `t₁`.
#[derive(Clone, Debug, PartialEq)]
pub struct Prune {
    /// The final fraction of zeros, in `[0, 1)`.
    pub sparsity: f64,
    /// First epoch (1-based) of pruning.
    pub start_epoch: usize,
    /// Last epoch (1-based) of the ramp; `None`: the run's last epoch.
    pub end_epoch: Option<usize>,
    /// Smallest magnitudes over all pruned parameters together (`true`) or per
    /// parameter (`false`, each at the target sparsity).
    pub global: bool,
    /// Steps between mask updates.
    pub every: usize,
}

/// The precision of matrix products and convolutions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// `f32` operands.
    #[default]
    F32,
    /// Mixed precision: operands rounded to `bf16`, products accumulated in `f32`;
    /// everything else (and the master weights) `f32`.
    Bf16,
}

impl Precision {
    /// `f32` or `bf16` (the language's and the command line's spelling).
    pub fn parse(s: &str) -> Option<Precision> {
        match s {
            "f32" => Some(Precision::F32),
            "bf16" => Some(Precision::Bf16),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}
