//! Averaging per-batch metrics over an epoch.
//!
//! A compiled step returns each metric as the mean over its batch. Weighting each batch
//! mean by the batch size makes the epoch value the mean over all samples, even when
//! the last batch is smaller.

/// Sums of batch means weighted by batch size, one per metric name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricAccumulator {
    /// `(name, sum of value · batch size, sum of batch sizes)`, in insertion order.
    entries: Vec<(String, f64, f64)>,
}

impl MetricAccumulator {
    /// An empty accumulator.
    pub fn new() -> MetricAccumulator {
        MetricAccumulator::default()
    }

    /// Adds the mean `value` of metric `name` over a batch of `batch_size` samples.
    /// A name seen for the first time is appended to the order.
    pub fn add(&mut self, name: &str, value: f64, batch_size: usize) {
        let w = batch_size as f64;
        match self.entries.iter_mut().find(|(n, _, _)| n == name) {
            Some((_, sum, weight)) => {
                *sum += value * w;
                *weight += w;
            }
            None => self.entries.push((name.to_string(), value * w, w)),
        }
    }

    /// Adds several metrics of one batch of `batch_size` samples.
    pub fn add_batch(&mut self, batch_size: usize, values: &[(String, f64)]) {
        for (name, value) in values {
            self.add(name, *value, batch_size);
        }
    }

    /// The sample-weighted mean of every metric, in insertion order. A metric that has
    /// only been given empty batches is NaN; a NaN batch value makes its mean NaN.
    pub fn values(&self) -> Vec<(String, f64)> {
        self.entries
            .iter()
            .map(|(name, sum, weight)| {
                let mean = if *weight > 0.0 {
                    sum / weight
                } else {
                    f64::NAN
                };
                (name.clone(), mean)
            })
            .collect()
    }

    /// The mean of one metric, if it has been added.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.values()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The number of samples a metric has been averaged over.
    pub fn samples(&self, name: &str) -> Option<usize> {
        self.entries
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|&(_, _, w)| w as usize)
    }

    /// Forgets everything, for the next epoch.
    pub fn reset(&mut self) {
        self.entries.clear();
    }

    /// Whether no metric has been added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_by_batch_size() {
        let mut m = MetricAccumulator::new();
        // Samples with losses 1, 1, 1, 1 and 6: batches of 4 (mean 1) and 1 (mean 6).
        m.add("loss", 1.0, 4);
        m.add("loss", 6.0, 1);
        assert_eq!(m.value("loss"), Some(2.0));
        assert_eq!(m.samples("loss"), Some(5));
    }

    #[test]
    fn names_keep_insertion_order() {
        let mut m = MetricAccumulator::new();
        m.add_batch(2, &[("loss".into(), 0.5), ("accuracy".into(), 1.0)]);
        m.add_batch(
            2,
            &[
                ("accuracy".into(), 0.0),
                ("loss".into(), 1.5),
                ("mse".into(), 3.0),
            ],
        );
        let v = m.values();
        let names: Vec<&str> = v.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["loss", "accuracy", "mse"]);
        assert_eq!(v[0].1, 1.0);
        assert_eq!(v[1].1, 0.5);
        assert_eq!(v[2].1, 3.0);
    }

    #[test]
    fn empty_batches_nan_and_reset() {
        let mut m = MetricAccumulator::new();
        assert!(m.is_empty());
        m.add("a", 3.0, 0);
        assert!(m.value("a").unwrap().is_nan());
        m.add("b", f64::NAN, 2);
        m.add("b", 1.0, 2);
        assert!(m.value("b").unwrap().is_nan());
        assert_eq!(m.value("missing"), None);
        m.reset();
        assert!(m.is_empty() && m.values().is_empty());
    }
}
