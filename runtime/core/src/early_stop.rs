//! Early stopping: stop training when a monitored value stops improving.
//!
//! The rule follows the `early_stop` setting of a `train` block: training stops when the
//! monitored value has not improved by more than `min_delta` for `patience` epochs in a
//! row. With `patience = 0` it stops at the first epoch that does not improve.

/// What [`EarlyStopping::observe`] concludes from one epoch's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The value is the best so far (by more than `min_delta`); keep training.
    Improved,
    /// The value did not improve, but patience is not exhausted; keep training.
    NoImprovement {
        /// Epochs in a row without improvement, this one included.
        epochs_without: usize,
    },
    /// Patience is exhausted: stop training.
    Stop,
}

/// The early-stopping state of one training run.
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStopping {
    /// Epochs in a row without improvement that are tolerated before stopping.
    pub patience: usize,
    /// Whether higher values are better (`mode = "max"`); otherwise lower values are.
    pub maximize: bool,
    /// How much a value must beat the best one to count as an improvement (negative or
    /// NaN values count as 0).
    pub min_delta: f64,
    best: Option<(usize, f64)>,
    epochs_without: usize,
}

impl EarlyStopping {
    /// A fresh state: no value observed yet.
    pub fn new(patience: usize, maximize: bool, min_delta: f64) -> EarlyStopping {
        EarlyStopping {
            patience,
            maximize,
            min_delta,
            best: None,
            epochs_without: 0,
        }
    }

    /// Records the monitored value of `epoch` and decides whether to go on.
    ///
    /// The first value that is not NaN is always an improvement; later values improve
    /// when they beat the best one by more than `min_delta`. NaN never improves.
    pub fn observe(&mut self, epoch: usize, value: f64) -> Decision {
        let delta = self.min_delta.max(0.0);
        let improved = !value.is_nan()
            && match self.best {
                None => true,
                Some((_, best)) if self.maximize => value - best > delta,
                Some((_, best)) => best - value > delta,
            };
        if improved {
            self.best = Some((epoch, value));
            self.epochs_without = 0;
            return Decision::Improved;
        }
        self.epochs_without += 1;
        if self.epochs_without >= self.patience {
            Decision::Stop
        } else {
            Decision::NoImprovement {
                epochs_without: self.epochs_without,
            }
        }
    }

    /// The best value so far and the epoch it was observed in.
    pub fn best(&self) -> Option<(usize, f64)> {
        self.best
    }

    /// Epochs in a row without improvement so far.
    pub fn epochs_without(&self) -> usize {
        self.epochs_without
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;

    fn run(stopper: &mut EarlyStopping, values: &[f64]) -> Vec<Decision> {
        values
            .iter()
            .enumerate()
            .map(|(e, &v)| stopper.observe(e, v))
            .collect()
    }

    #[test]
    fn max_mode() {
        let mut s = EarlyStopping::new(2, true, 0.0);
        let got = run(&mut s, &[0.5, 0.7, 0.7, 0.8, 0.6, 0.65]);
        assert_eq!(
            got,
            vec![
                Improved,
                Improved,
                NoImprovement { epochs_without: 1 },
                Improved,
                NoImprovement { epochs_without: 1 },
                Stop
            ]
        );
        assert_eq!(s.best(), Some((3, 0.8)));
    }

    #[test]
    fn min_mode() {
        let mut s = EarlyStopping::new(3, false, 0.0);
        let got = run(&mut s, &[1.0, 0.9, 0.95, 0.9, 0.8, 0.85, 0.85, 0.85]);
        let n = |k| NoImprovement { epochs_without: k };
        assert_eq!(
            got,
            vec![Improved, Improved, n(1), n(2), Improved, n(1), n(2), Stop]
        );
        assert_eq!(s.best(), Some((4, 0.8)));
    }

    #[test]
    fn patience_zero_stops_at_first_non_improvement() {
        let mut s = EarlyStopping::new(0, false, 0.0);
        assert_eq!(
            run(&mut s, &[3.0, 2.0, 2.0]),
            vec![Improved, Improved, Stop]
        );
    }

    #[test]
    fn min_delta_requires_a_strictly_larger_gain() {
        let mut s = EarlyStopping::new(5, true, 0.1);
        let got = run(&mut s, &[0.5, 0.6, 0.55, 0.75]);
        let n = |k| NoImprovement { epochs_without: k };
        // 0.6 - 0.5 is not more than 0.1 (in floating point it is even slightly less).
        assert_eq!(got, vec![Improved, n(1), n(2), Improved]);
        let mut s = EarlyStopping::new(1, false, -1.0);
        assert_eq!(
            run(&mut s, &[1.0, 1.0]),
            vec![Improved, Stop],
            "negative min_delta acts as 0"
        );
    }

    #[test]
    fn nan_never_improves() {
        let mut s = EarlyStopping::new(2, true, 0.0);
        let n = |k| NoImprovement { epochs_without: k };
        assert_eq!(
            run(&mut s, &[f64::NAN, 0.1, f64::NAN, f64::NAN]),
            vec![n(1), Improved, n(1), Stop]
        );
        assert_eq!(s.best(), Some((1, 0.1)));
        let mut s = EarlyStopping::new(3, false, f64::NAN);
        assert_eq!(run(&mut s, &[1.0, 0.5]), vec![Improved, Improved]);
    }
}
