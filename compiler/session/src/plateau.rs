//! `reduce_on_plateau`: the learning-rate cuts the host decides between epochs (the
//! graph multiplies its base rate by the `#lr_scale` input).

use dnnc_settings::Schedule;

/// `ReduceLROnPlateau`'s state, kept by the host: PyTorch's rule in `rel` threshold
/// mode without cooldown. The graph's rate is its base times [`Plateau::scale`].
pub(crate) struct Plateau {
    pub(crate) patience: usize,
    factor: f64,
    min_lr: f64,
    maximize: bool,
    threshold: f64,
    base: f64,
    lr: f64,
    best: f64,
    bad_epochs: usize,
}

impl Plateau {
    pub(crate) fn new(schedule: &Schedule, base: f64) -> Option<Plateau> {
        match schedule {
            Schedule::ReduceOnPlateau {
                patience,
                factor,
                min_lr,
                maximize,
                threshold,
                ..
            } => Some(Plateau {
                patience: *patience,
                factor: *factor,
                min_lr: *min_lr,
                maximize: *maximize,
                threshold: *threshold,
                base,
                lr: base,
                best: if *maximize {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                },
                bad_epochs: 0,
            }),
            _ => None,
        }
    }

    pub(crate) fn scale(&self) -> f64 {
        self.lr / self.base
    }

    /// Takes an epoch's value of the metric; returns the new rate when it was cut.
    pub(crate) fn observe(&mut self, v: f64) -> Option<f64> {
        // A NaN compares false: it never improves.
        let better = if self.maximize {
            v > self.best * (1.0 + self.threshold)
        } else {
            v < self.best * (1.0 - self.threshold)
        };
        if better {
            self.best = v;
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        if self.bad_epochs > self.patience {
            self.bad_epochs = 0;
            let new = (self.lr * self.factor).max(self.min_lr);
            // PyTorch's `eps`: changes smaller than 1e-8 are ignored.
            if self.lr - new > 1e-8 {
                self.lr = new;
                return Some(new);
            }
        }
        None
    }
}
