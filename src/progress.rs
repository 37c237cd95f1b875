//! The console view of a run: an `indicatif` progress bar per epoch (loss, accuracy,
//! samples/s) on stderr when it is a terminal, and one summary line per epoch on stdout.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln::error::Result;
use kiln::train::hooks::{Hook, StepReport};
use kiln::train::metrics::EpochMetrics;
use kiln::train::trainer::Trainer;
use std::io::IsTerminal;

/// Prints progress; quiet mode prints nothing.
pub struct Progress {
    bar: Option<ProgressBar>,
    show_bar: bool,
    print_epochs: bool,
    loss_sum: f64,
    correct: usize,
    seen: usize,
    seconds: f64,
}

impl Progress {
    /// A progress view: the bar only when `!quiet` and stderr is a terminal; the per-epoch
    /// lines unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        Progress {
            bar: None,
            show_bar: !quiet && std::io::stderr().is_terminal(),
            print_epochs: !quiet,
            loss_sum: 0.0,
            correct: 0,
            seen: 0,
            seconds: 0.0,
        }
    }
}

impl Hook for Progress {
    fn on_epoch_start(&mut self, t: &Trainer) -> Result<()> {
        (self.loss_sum, self.correct, self.seen, self.seconds) = (0.0, 0, 0, 0.0);
        if self.print_epochs && t.state.step_in_epoch == 0 {
            for s in t
                .unfreeze
                .steps()
                .iter()
                .filter(|s| s.epoch == t.state.epoch)
            {
                println!(
                    "epoch {:>3}: unfroze {} parameters ({} …) as a new group with lr {:.3e}",
                    s.epoch + 1,
                    s.names.len(),
                    s.names.first().map_or("", String::as_str),
                    s.lr
                );
            }
        }
        if self.show_bar {
            let total = t.train_loader.num_batches() as u64;
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("epoch {prefix} [{bar:20}] {pos}/{len} {msg}")
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(format!("{}/{}", t.state.epoch + 1, t.epochs));
            bar.set_position(t.state.step_in_epoch as u64);
            self.bar = Some(bar);
        }
        Ok(())
    }

    fn on_step(&mut self, _t: &Trainer, s: &StepReport) -> Result<()> {
        self.loss_sum += s.loss * s.batch_len as f64;
        self.correct += s.correct;
        self.seen += s.batch_len;
        self.seconds += s.seconds;
        if let Some(bar) = &self.bar {
            let n = self.seen.max(1) as f64;
            bar.set_message(format!(
                "loss {:.3} acc {:.1}% {:.0} samples/s",
                self.loss_sum / n,
                100.0 * self.correct as f64 / n,
                self.seen as f64 / self.seconds.max(1e-9)
            ));
            bar.inc(1);
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, t: &Trainer, m: &EpochMetrics) -> Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.print_epochs {
            println!(
                "epoch {:>3}/{}  train_loss {:.4}  train_acc {:.2}%  test_loss {:.4}  test_acc {:.2}%  lr {:.3e}  {:.0} samples/s  {:.2}s",
                m.epoch,
                t.epochs,
                m.train_loss,
                100.0 * m.train_acc,
                m.test_loss,
                100.0 * m.test_acc,
                m.lr,
                self.seen as f64 / self.seconds.max(1e-9),
                m.seconds
            );
        }
        Ok(())
    }
}
