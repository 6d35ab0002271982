//! Training curves as a self-contained SVG picture, drawn with the `plotters` crate
//! (its SVG backend only: no fonts or image libraries are needed).
//!
//! [`write_curves`] draws the per-epoch metrics of a run in up to two panels side by
//! side: the **losses** (every metric whose name ends in `loss`, e.g. `train_loss` and
//! `test_loss`) and the **other metrics** (`train_accuracy`, `test_accuracy`, `mae`, ...),
//! each against the epoch, with axes, tick labels, a legend, one colour per series and
//! a point per epoch joined by lines. A panel with no series is left out.
//!
//! Values that are NaN or infinite are skipped (the series simply has no point at that
//! epoch). A single epoch is drawn as single points on a widened axis. Input with no
//! epochs, or with no metric at all, is an error and writes no file.
//!
//! The picture is written atomically: to `<path>.tmp-<pid>` first, then renamed over
//! `path`, so a reader (a browser refreshing the file during a long run) never sees a
//! half-written picture.
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("dnnc-plot-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("run.svg");
//! let epochs = vec![
//!     (1, vec![("train_loss".to_string(), 0.9), ("test_accuracy".to_string(), 0.7)]),
//!     (2, vec![("train_loss".to_string(), 0.5), ("test_accuracy".to_string(), 0.8)]),
//! ];
//! dnnc_runtime::plot::write_curves(&path, "mlp.dnn", &epochs).unwrap();
//! assert!(std::fs::read_to_string(&path).unwrap().starts_with("<svg"));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::path::Path;

use plotters::prelude::*;

/// Series colours (Tableau 10), in the order series first appear in a panel.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// Width of one panel and height of the picture, in pixels.
const PANEL_W: u32 = 480;
const HEIGHT: u32 = 400;

/// One named series: `(epoch, value)` points with finite values only.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

/// Writes the curves of `epochs` — `(epoch number, [(metric name, value)])` in order —
/// to `path` as an SVG picture titled `title`.
///
/// Returns an error (and writes nothing) when `epochs` is empty or holds no metric, and
/// when the file cannot be written; the message names the file.
pub fn write_curves(
    path: &Path,
    title: &str,
    epochs: &[(usize, Vec<(String, f64)>)],
) -> Result<(), String> {
    let svg = render(title, epochs).map_err(|e| format!("{}: {e}", path.display()))?;
    write_atomically(path, svg.as_bytes())
}

/// The SVG text of the curves of `epochs`; see [`write_curves`].
pub fn render(title: &str, epochs: &[(usize, Vec<(String, f64)>)]) -> Result<String, String> {
    if epochs.is_empty() {
        return Err("there are no epochs to plot".to_string());
    }
    let mut losses: Vec<Series> = Vec::new();
    let mut others: Vec<Series> = Vec::new();
    for (epoch, metrics) in epochs {
        for (name, value) in metrics {
            let group = if name.ends_with("loss") {
                &mut losses
            } else {
                &mut others
            };
            let i = match group.iter().position(|s| s.name == *name) {
                Some(i) => i,
                None => {
                    group.push(Series {
                        name: name.clone(),
                        points: Vec::new(),
                    });
                    group.len() - 1
                }
            };
            if value.is_finite() {
                group[i].points.push((*epoch as f64, *value));
            }
        }
    }
    let panels: Vec<(&str, &[Series])> = [("loss", &losses[..]), ("metrics", &others[..])]
        .into_iter()
        .filter(|(_, s)| !s.is_empty())
        .collect();
    if panels.is_empty() {
        return Err("the epochs hold no metrics to plot".to_string());
    }
    let first = epochs.iter().map(|(e, _)| *e).min().unwrap_or(0) as f64;
    let last = epochs.iter().map(|(e, _)| *e).max().unwrap_or(0) as f64;

    let mut out = String::new();
    {
        let size = (PANEL_W * panels.len() as u32, HEIGHT);
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let root = root
            .titled(title, ("sans-serif", 22).into_font().style(FontStyle::Bold))
            .map_err(draw_error)?;
        let areas = root.split_evenly((1, panels.len()));
        for (area, (label, series)) in areas.iter().zip(&panels) {
            panel(area, label, series, (first, last))?;
        }
        root.present().map_err(draw_error)?;
    }
    Ok(out)
}

fn draw_error<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
    format!("cannot draw the curves: {e}")
}

/// Draws one panel: its series against the epoch, with a grid, axis labels and a
/// legend.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    label: &str,
    series: &[Series],
    epochs: (f64, f64),
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    // The x axis: whole epochs, widened around a single one.
    let (mut x_lo, mut x_hi) = epochs;
    if x_hi <= x_lo {
        x_lo -= 1.0;
        x_hi += 1.0;
    }
    let x_pad = (x_hi - x_lo) * 0.03;
    // The y axis: the finite values, widened when they are all equal (or absent).
    let values = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (mut y_min, mut y_max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    let y_pad = if y_max - y_min <= f64::EPSILON * y_max.abs().max(1.0) {
        (y_max.abs() * 0.1).max(0.05)
    } else {
        (y_max - y_min) * 0.05
    };
    let mut chart = ChartBuilder::on(area)
        .caption(label, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(
            (x_lo - x_pad)..(x_hi + x_pad),
            (y_min - y_pad)..(y_max + y_pad),
        )
        .map_err(draw_error)?;
    let epochs_shown = (x_hi - x_lo).round() as usize + 1;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(label)
        .x_labels(epochs_shown.min(10))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .x_label_formatter(&|x| {
            // Only whole epochs get a tick label.
            if (x - x.round()).abs() < 1e-6 && *x >= epochs.0 && *x <= epochs.1 {
                format!("{}", x.round() as i64)
            } else {
                String::new()
            }
        })
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(draw_error)?;
    for (i, s) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let name = if s.points.is_empty() {
            format!("{} (no finite values)", s.name)
        } else {
            s.name.clone()
        };
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(draw_error)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 14, y + 4)], colour.filled()));
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
            .map_err(draw_error)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        // Losses fall and accuracies rise: keep the legend off the curves' ends.
        .position(if label == "loss" {
            SeriesLabelPosition::UpperRight
        } else {
            SeriesLabelPosition::LowerRight
        })
        .draw()
        .map_err(draw_error)?;
    Ok(())
}

/// Writes the picture through [`dnnc_data::files::write_atomically`].
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    dnnc_data::files::write_atomically(path, bytes)
        .map_err(|e| format!("{}: cannot write the curves: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::fs;

    fn ep(e: usize, m: &[(&str, f64)]) -> (usize, Vec<(String, f64)>) {
        (e, m.iter().map(|(k, v)| (k.to_string(), *v)).collect())
    }

    /// Checks that every tag we emit is closed in order (self-closing or paired).
    fn assert_balanced(svg: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(i) = rest.find('<') {
            let end = rest[i..].find('>').expect("unterminated tag") + i;
            let tag = &rest[i + 1..end];
            assert!(!tag.contains('<'), "`<` inside a tag: {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "unbalanced </{name}>");
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().unwrap();
                stack.push(name.to_string());
            }
            rest = &rest[end + 1..];
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }

    /// The number of points of each series' line, in drawing order: plotters draws a
    /// series as one `<polyline>` in its palette colour (axes and ticks are black
    /// polylines, legend samples filled rectangles).
    fn lines(svg: &str) -> Vec<(String, usize)> {
        let palette: Vec<String> = (0..PALETTE.len()).map(hex).collect();
        let mut out = Vec::new();
        for part in svg.split("<polyline").skip(1) {
            let tag = &part[..part.find("/>").unwrap()];
            let colour = tag
                .split("stroke=\"")
                .nth(1)
                .map(|c| c[..c.find('"').unwrap()].to_string())
                .unwrap_or_default();
            if !palette.contains(&colour) {
                continue;
            }
            let points = tag.split("points=\"").nth(1).unwrap();
            let points = &points[..points.find('"').unwrap()];
            out.push((colour, points.split_whitespace().count()));
        }
        out
    }

    fn hex(i: usize) -> String {
        let RGBColor(r, g, b) = PALETTE[i];
        format!("#{r:02X}{g:02X}{b:02X}")
    }

    #[test]
    fn draws_losses_and_metrics_in_two_panels() {
        let epochs: Vec<_> = (1..=4)
            .map(|e| {
                let f = e as f64;
                ep(
                    e,
                    &[
                        ("train_loss", 1.0 / f),
                        ("train_accuracy", 0.5 + f / 10.0),
                        ("test_loss", 1.2 / f),
                        ("test_accuracy", 0.4 + f / 10.0),
                    ],
                )
            })
            .collect();
        let svg = render("mlp <&> run", &epochs).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_balanced(&svg);
        // Two panels, two series each, four points per line.
        assert_eq!(
            lines(&svg),
            vec![(hex(0), 4), (hex(1), 4), (hex(0), 4), (hex(1), 4)]
        );
        assert!(svg.contains(&format!("width=\"{}\"", 2 * PANEL_W)));
        for name in [
            "train_loss",
            "test_loss",
            "train_accuracy",
            "test_accuracy",
            "loss",
            "metrics",
            "epoch",
        ] {
            assert!(
                svg.contains(&format!("\n{name}\n</text>")),
                "no text {name}"
            );
        }
        assert!(svg.contains("mlp &lt;&amp;&gt; run"));
    }

    #[test]
    fn skips_non_finite_values_and_escapes_names() {
        let epochs = vec![
            ep(1, &[("loss", 2.0), ("a<b>&c", f64::NAN)]),
            ep(2, &[("loss", f64::INFINITY), ("a<b>&c", 0.5)]),
            ep(3, &[("loss", 1.0), ("a<b>&c", 0.7)]),
            ep(4, &[("loss", f64::NEG_INFINITY), ("a<b>&c", 0.6)]),
        ];
        let svg = render("t", &epochs).unwrap();
        assert_balanced(&svg);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        assert_eq!(lines(&svg), vec![(hex(0), 2), (hex(0), 3)]);
        assert!(svg.contains("a&lt;b&gt;&amp;c"));
        assert!(!svg.contains("a<b"));
    }

    #[test]
    fn a_single_epoch_and_a_single_panel() {
        let svg = render("one", &[ep(1, &[("train_loss", 0.3)])]).unwrap();
        assert_balanced(&svg);
        assert_eq!(lines(&svg), vec![(hex(0), 1)]);
        assert!(svg.contains(&format!("width=\"{PANEL_W}\"")));
        assert!(!svg.contains("metrics"));
        assert!(!svg.contains("NaN"));
        // The one tick label on the x axis is the epoch itself.
        assert!(svg.contains("\n1\n</text>"));
        assert!(!svg.contains("\n0\n</text>") && !svg.contains("\n2\n</text>"));
    }

    #[test]
    fn a_series_with_no_finite_value_has_a_legend_but_no_line() {
        let svg = render(
            "t",
            &[ep(1, &[("loss", f64::NAN)]), ep(2, &[("loss", f64::NAN)])],
        )
        .unwrap();
        assert_balanced(&svg);
        assert!(lines(&svg).iter().all(|(_, n)| *n == 0));
        assert!(svg.contains("loss (no finite values)"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn empty_input_is_an_error_and_writes_nothing() {
        let dir = TempDir::new("plot-empty");
        let path = dir.path().join("c.svg");
        let e = write_curves(&path, "t", &[]).unwrap_err();
        assert!(e.contains("no epochs"), "{e}");
        let e = write_curves(&path, "t", &[(1, vec![])]).unwrap_err();
        assert!(e.contains("no metrics"), "{e}");
        assert!(!path.exists());
    }

    #[test]
    fn writes_atomically_and_replaces_the_file() {
        let dir = TempDir::new("plot-write");
        let path = dir.path().join("c.svg");
        fs::write(&path, "old").unwrap();
        write_curves(
            &path,
            "t",
            &[ep(1, &[("loss", 1.0)]), ep(2, &[("loss", 0.5)])],
        )
        .unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("<svg"));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "a temporary file was left: {names:?}");
        let e = write_curves(
            &dir.path().join("missing").join("c.svg"),
            "t",
            &[ep(1, &[("loss", 1.0)])],
        )
        .unwrap_err();
        assert!(e.contains("missing"), "{e}");
    }
}
