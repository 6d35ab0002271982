//! Progress reporting during training.
//!
//! On a terminal, a progress bar on stderr follows the steps of the current epoch and
//! shows the running mean of the loss; each finished epoch leaves one summary line. When
//! stderr is not a terminal (CI, pipes, files), only the summary lines are printed, for
//! example:
//!
//! ```text
//! epoch 1/10  train_loss 0.4123  test_loss 0.3011  test_accuracy 0.9120  1.23s
//! ```

use std::io::{self, IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
enum Output {
    /// Nothing at all.
    Quiet,
    /// Summary lines only, to this writer.
    Lines(Box<dyn Write + Send>),
    /// A progress bar per epoch (created at its first step) and summary lines, on stderr.
    Bar(Option<ProgressBar>),
}

/// Reports the progress of a training run.
pub struct Progress {
    epochs: usize,
    steps_per_epoch: usize,
    output: Output,
    /// The epoch in progress, counting from 0.
    epoch: usize,
    loss_sum: f64,
    loss_steps: usize,
}

impl Progress {
    /// A reporter for `epochs` epochs of `steps_per_epoch` steps each, writing to stderr:
    /// a bar if stderr is a terminal, summary lines otherwise, nothing if `quiet`.
    pub fn new(epochs: usize, steps_per_epoch: usize, quiet: bool) -> Progress {
        let output = if quiet {
            Output::Quiet
        } else if io::stderr().is_terminal() {
            Output::Bar(None)
        } else {
            Output::Lines(Box::new(io::stderr()))
        };
        Progress::with_output(epochs, steps_per_epoch, output)
    }

    /// A reporter that writes only the summary lines, to `writer` (a file, a buffer).
    pub fn with_writer(
        epochs: usize,
        steps_per_epoch: usize,
        writer: Box<dyn Write + Send>,
    ) -> Progress {
        Progress::with_output(epochs, steps_per_epoch, Output::Lines(writer))
    }

    fn with_output(epochs: usize, steps_per_epoch: usize, output: Output) -> Progress {
        Progress {
            epochs,
            steps_per_epoch,
            output,
            epoch: 0,
            loss_sum: 0.0,
            loss_steps: 0,
        }
    }

    /// Records one finished step of the current epoch and its loss.
    pub fn step(&mut self, loss: f64) {
        self.loss_sum += loss;
        self.loss_steps += 1;
        if let Output::Bar(slot) = &mut self.output {
            let bar = slot.get_or_insert_with(|| {
                new_bar(
                    self.steps_per_epoch,
                    format!("epoch {}/{}", self.epoch + 1, self.epochs),
                )
            });
            bar.inc(1);
            bar.set_message(format!(
                "loss {}",
                format_value(self.loss_sum / self.loss_steps as f64)
            ));
        }
    }

    /// The mean loss of the steps of the current epoch so far (NaN before the first).
    pub fn mean_loss(&self) -> f64 {
        if self.loss_steps == 0 {
            f64::NAN
        } else {
            self.loss_sum / self.loss_steps as f64
        }
    }

    /// Ends epoch `epoch` (counting from 0): clears the bar and prints the summary line
    /// with `metrics` and the epoch's duration in `seconds`.
    pub fn end_epoch(&mut self, epoch: usize, metrics: &[(String, f64)], seconds: f64) {
        let line = epoch_line(epoch, self.epochs, metrics, seconds);
        match &mut self.output {
            Output::Quiet => {}
            Output::Lines(w) => {
                // A report that cannot be written is not worth stopping training for.
                let _ = writeln!(w, "{line}").and_then(|()| w.flush());
            }
            Output::Bar(slot) => {
                if let Some(bar) = slot.take() {
                    bar.finish_and_clear();
                }
                eprintln!("{line}");
            }
        }
        self.epoch = epoch + 1;
        self.loss_sum = 0.0;
        self.loss_steps = 0;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Output::Bar(Some(bar)) = &self.output {
            bar.finish_and_clear();
        }
    }
}

fn new_bar(steps: usize, prefix: String) -> ProgressBar {
    let style =
        ProgressStyle::with_template("{prefix} {wide_bar} {pos}/{len} {msg} [{elapsed}<{eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr())
        .with_style(style)
        .with_prefix(prefix)
}

/// The summary line of epoch `epoch` (counting from 0) of `epochs`:
/// `epoch 1/10  train_loss 0.4123  test_accuracy 0.9120  1.23s`.
pub fn epoch_line(epoch: usize, epochs: usize, metrics: &[(String, f64)], seconds: f64) -> String {
    let mut line = format!("epoch {}/{epochs}", epoch + 1);
    for (name, value) in metrics {
        line.push_str(&format!("  {name} {}", format_value(*value)));
    }
    line.push_str(&format!("  {seconds:.2}s"));
    line
}

/// Four decimals for ordinary magnitudes, scientific notation for very small or large ones.
fn format_value(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 || !v.is_finite() || (1e-3..1e5).contains(&a) {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn summary_line_format() {
        let metrics = vec![
            ("train_loss".to_string(), 0.41234),
            ("test_loss".to_string(), 0.30111),
            ("test_accuracy".to_string(), 0.912),
        ];
        assert_eq!(
            epoch_line(0, 10, &metrics, 1.234),
            "epoch 1/10  train_loss 0.4123  test_loss 0.3011  test_accuracy 0.9120  1.23s"
        );
        assert_eq!(epoch_line(9, 10, &[], 0.0), "epoch 10/10  0.00s");
        assert_eq!(format_value(1.5e-5), "1.500e-5");
        assert_eq!(format_value(0.0), "0.0000");
        assert_eq!(format_value(f64::NAN), "NaN");
    }

    #[test]
    fn lines_mode_prints_only_epoch_ends() {
        let buf = Shared::default();
        let mut p = Progress::with_writer(2, 3, Box::new(buf.clone()));
        for loss in [1.0, 2.0, 3.0] {
            p.step(loss);
        }
        assert!(buf.0.lock().unwrap().is_empty());
        assert_eq!(p.mean_loss(), 2.0);
        p.end_epoch(0, &[("train_loss".into(), p.mean_loss())], 0.5);
        assert!(p.mean_loss().is_nan());
        p.step(0.25);
        p.end_epoch(1, &[("train_loss".into(), p.mean_loss())], 0.25);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "epoch 1/2  train_loss 2.0000  0.50s\nepoch 2/2  train_loss 0.2500  0.25s\n"
        );
    }

    #[test]
    fn quiet_and_bar_modes_do_not_fail() {
        let mut p = Progress::new(1, 2, true);
        p.step(1.0);
        p.end_epoch(0, &[], 0.1);
        // A bar drawing to a hidden target exercises the terminal path in tests.
        let mut p = Progress::with_output(2, 2, Output::Bar(None));
        p.step(0.5);
        if let Output::Bar(Some(bar)) = &p.output {
            bar.set_draw_target(ProgressDrawTarget::hidden());
            assert_eq!(bar.position(), 1);
        } else {
            panic!("the first step creates a bar");
        }
        p.step(f64::NAN);
        assert!(matches!(p.output, Output::Bar(Some(_))));
        drop(p);
    }
}
