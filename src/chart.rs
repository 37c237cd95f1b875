//! `curves.png`: loss and accuracy per epoch, drawn with plotters and the embedded DejaVu Sans.

use kiln::error::{Error, Result};
use kiln::train::metrics::EpochMetrics;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::OnceLock;

/// DejaVu Sans (Debian's `fonts-dejavu-core`; licence in `assets/fonts/LICENSE-DejaVu.txt`).
/// The chart's file name in a run's output directory.
pub const CURVES_FILE: &str = "curves.png";

static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Unsupported {
            what: "the embedded chart font could not be parsed".into(),
        })
    }
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::io("draw chart", path, std::io::Error::other(e.to_string()))
}

type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    series: &[Series<'_>],
    epochs: usize,
    path: &Path,
) -> Result<()> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (_, _, pts) in series {
        for &(_, y) in pts {
            if y.is_finite() {
                lo = lo.min(y);
                hi = hi.max(y);
            }
        }
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(1f64..(epochs.max(2) as f64), (lo - pad)..(hi + pad))
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc(y_label)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    for (name, color, pts) in series {
        let color = *color;
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| plot_err(path, e))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| plot_err(path, e))?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    Ok(())
}

/// Draws train/test loss (left) and train/test accuracy (right) against the epoch into a
/// 1200×500 PNG at `path`.
///
/// # Errors
/// `K0002` when the file cannot be written.
pub fn write_curves(metrics: &[EpochMetrics], path: &Path) -> Result<()> {
    register_font()?;
    let xy = |f: fn(&EpochMetrics) -> f64| -> Vec<(f64, f64)> {
        metrics.iter().map(|m| (m.epoch as f64, f(m))).collect()
    };
    let epochs = metrics.iter().map(|m| m.epoch).max().unwrap_or(1);
    {
        let root = BitMapBackend::new(path, (1200, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let (left, right) = root.split_horizontally(600);
        panel(
            &left,
            "loss",
            "cross-entropy",
            &[
                ("train", BLUE, xy(|m| m.train_loss)),
                ("test", RED, xy(|m| m.test_loss)),
            ],
            epochs,
            path,
        )?;
        panel(
            &right,
            "accuracy",
            "accuracy",
            &[
                ("train", BLUE, xy(|m| m.train_acc)),
                ("test", RED, xy(|m| m.test_acc)),
            ],
            epochs,
            path,
        )?;
        root.present().map_err(|e| plot_err(path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("curves.png");
        let m: Vec<EpochMetrics> = (1..=3)
            .map(|e| EpochMetrics {
                epoch: e,
                train_loss: 1.0 / e as f64,
                test_loss: 1.2 / e as f64,
                test_acc: 0.5 + 0.1 * e as f64,
                lr: 1e-3,
                seconds: 1.0,
                train_acc: 0.6 + 0.1 * e as f64,
                global_step: 10 * e as u64,
                metrics: Default::default(),
                grad_norm: None,
            })
            .collect();
        write_curves(&m, &p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }
}
