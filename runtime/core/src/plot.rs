//! Training curves as a self-contained SVG picture, written by hand (no plotting crate).
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

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::Path;

/// Series colours (Tableau 10), in the order series first appear in a panel.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Width of one panel, in pixels.
const PANEL_W: f64 = 480.0;
/// Height of the title band above the panels.
const TITLE_H: f64 = 36.0;
/// Margins of the plotting area within a panel.
const LEFT: f64 = 64.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 28.0;
const PLOT_H: f64 = 260.0;
/// Space below the plotting area for tick labels and the axis label.
const BELOW: f64 = 48.0;
/// Height of one legend row.
const LEGEND_ROW: f64 = 18.0;

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
    let rows = panels.iter().map(|(_, s)| s.len()).max().unwrap_or(0) as f64;
    let width = PANEL_W * panels.len() as f64;
    let height = TITLE_H + TOP + PLOT_H + BELOW + rows * LEGEND_ROW + 12.0;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r#"<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        width / 2.0,
        escape(title)
    );
    for (i, (label, series)) in panels.iter().enumerate() {
        panel(&mut out, i as f64 * PANEL_W, label, series, (first, last));
    }
    out.push_str("</svg>\n");
    Ok(out)
}

/// Draws one panel whose left edge is at `x0`.
fn panel(out: &mut String, x0: f64, label: &str, series: &[Series], epochs: (f64, f64)) {
    let left = x0 + LEFT;
    let right = x0 + PANEL_W - RIGHT;
    let top = TITLE_H + TOP;
    let bottom = top + PLOT_H;

    // The x axis: whole epochs, widened around a single one.
    let (mut x_lo, mut x_hi) = epochs;
    if x_hi <= x_lo {
        x_lo -= 1.0;
        x_hi += 1.0;
    }
    let x_step = nice_step((x_hi - x_lo) / 8.0).max(1.0).round();
    // A little room so the first and last points sit clear of the frame.
    let x_pad = (x_hi - x_lo) * 0.03;
    x_lo -= x_pad;
    x_hi += x_pad;
    // The y axis: the finite values, widened when they are all equal (or absent).
    let values = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (mut y_min, mut y_max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    if y_max - y_min <= f64::EPSILON * y_max.abs().max(1.0) {
        let pad = (y_max.abs() * 0.1).max(0.05);
        y_min -= pad;
        y_max += pad;
    }
    let y_step = nice_step((y_max - y_min) / 5.0);
    let y_lo = (y_min / y_step).floor() * y_step;
    let y_hi = (y_max / y_step).ceil() * y_step;

    let sx = |x: f64| left + (x - x_lo) / (x_hi - x_lo) * (right - left);
    let sy = |y: f64| bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top);

    let _ = writeln!(out, r#"<g class="panel" data-panel="{label}">"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="13" font-weight="bold">{label}</text>"#,
        (left + right) / 2.0,
        top - 10.0
    );
    // Grid lines and tick labels.
    let decimals = decimals_for(y_step);
    let mut k = 0.0;
    while y_lo + k * y_step <= y_hi + y_step * 1e-9 {
        let v = y_lo + k * y_step;
        let y = sy(v);
        let _ = writeln!(
            out,
            r##"<line x1="{left:.1}" y1="{y:.1}" x2="{right:.1}" y2="{y:.1}" stroke="#e5e5e5"/>"##
        );
        let shown = format!(
            "{:.*}",
            decimals,
            if v.abs() < y_step * 1e-9 { 0.0 } else { v }
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{shown}</text>"#,
            left - 6.0,
            y + 4.0
        );
        k += 1.0;
    }
    // Ticks on whole epochs of the run only (a single epoch gets one tick).
    let mut e = (epochs.0 / x_step).ceil() * x_step + 0.0;
    while e <= epochs.1 + 1e-9 {
        let x = sx(e);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{bottom:.1}" x2="{x:.1}" y2="{:.1}" stroke="#333"/>"##,
            bottom + 4.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{e}</text>"#,
            bottom + 18.0
        );
        e += x_step;
    }
    // Axes.
    let _ = writeln!(
        out,
        r##"<polyline class="axis" points="{left:.1},{top:.1} {left:.1},{bottom:.1} {right:.1},{bottom:.1}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">epoch</text>"#,
        (left + right) / 2.0,
        bottom + 36.0
    );
    // The series: a line through the points, and a dot on each.
    for (i, s) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let name = escape(&s.name);
        let _ = writeln!(out, r#"<g class="series" data-series="{name}">"#);
        if !s.points.is_empty() {
            let pts: Vec<String> = s
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            let _ = writeln!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                pts.join(" ")
            );
            for &(x, y) in &s.points {
                let _ = writeln!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                    sx(x),
                    sy(y)
                );
            }
        }
        // The legend row under the axis label.
        let ly = bottom + BELOW + i as f64 * LEGEND_ROW + 6.0;
        let _ = writeln!(
            out,
            r#"<line x1="{left:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="2"/>"#,
            left + 22.0
        );
        let _ = writeln!(
            out,
            r#"<circle cx="{:.1}" cy="{ly:.1}" r="3" fill="{colour}"/>"#,
            left + 11.0
        );
        let note = if s.points.is_empty() {
            " (no finite values)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}">{name}{note}</text>"#,
            left + 30.0,
            ly + 4.0
        );
        out.push_str("</g>\n");
    }
    out.push_str("</g>\n");
}

/// A step of 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    let f = raw / p;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * p
}

/// Decimals that show multiples of `step` exactly (at most 6).
fn decimals_for(step: f64) -> usize {
    if step >= 1.0 {
        0
    } else {
        ((-step.log10()).ceil() as usize).min(6)
    }
}

/// Escapes text for SVG element content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Writes `bytes` to `<path>.tmp-<pid>` and renames it over `path`; the temporary file
/// is removed when a step fails.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let Some(file_name) = path.file_name() else {
        return Err(format!("{}: the path does not name a file", path.display()));
    };
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("{}: cannot write the curves: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The number of points of each series' polyline, by series name (escaped).
    fn series_points(svg: &str) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for part in svg.split(r#"<g class="series" data-series=""#).skip(1) {
            let name = part[..part.find('"').unwrap()].to_string();
            let body = &part[..part.find("</g>").unwrap()];
            let n = match body.find(r#"<polyline points=""#) {
                Some(i) => {
                    let pts = &body[i + 18..];
                    pts[..pts.find('"').unwrap()].split(' ').count()
                }
                None => 0,
            };
            out.push((name, n));
        }
        out
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
        assert_eq!(
            series_points(&svg),
            vec![
                ("train_loss".to_string(), 4),
                ("test_loss".to_string(), 4),
                ("train_accuracy".to_string(), 4),
                ("test_accuracy".to_string(), 4),
            ]
        );
        assert!(svg.contains(r#"data-panel="loss""#));
        assert!(svg.contains(r#"data-panel="metrics""#));
        for name in ["train_loss", "test_loss", "train_accuracy", "test_accuracy"] {
            assert!(
                svg.contains(&format!(">{name}</text>")),
                "no legend for {name}"
            );
        }
        assert!(svg.contains("mlp &lt;&amp;&gt; run"));
        assert!(svg.contains(">epoch</text>"));
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
        assert_eq!(
            series_points(&svg),
            vec![("loss".to_string(), 2), ("a&lt;b&gt;&amp;c".to_string(), 3)]
        );
        assert!(svg.contains(">a&lt;b&gt;&amp;c</text>"));
        assert!(!svg.contains("a<b"));
    }

    #[test]
    fn a_single_epoch_and_a_single_panel() {
        let svg = render("one", &[ep(1, &[("train_loss", 0.3)])]).unwrap();
        assert_balanced(&svg);
        assert_eq!(series_points(&svg), vec![("train_loss".to_string(), 1)]);
        assert!(!svg.contains(r#"data-panel="metrics""#));
        assert!(!svg.contains("NaN"));
        // The one tick on the x axis is the epoch itself.
        assert!(svg.contains(r#"text-anchor="middle">1</text>"#));
        assert!(!svg.contains(">0</text>") && !svg.contains(">-0</text>"));
        assert!(!svg.contains(">2</text>"));
        // Only one panel wide.
        assert!(svg.starts_with(&format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{PANEL_W}""#
        )));
    }

    #[test]
    fn a_series_with_no_finite_value_has_a_legend_but_no_line() {
        let svg = render(
            "t",
            &[ep(1, &[("loss", f64::NAN)]), ep(2, &[("loss", f64::NAN)])],
        )
        .unwrap();
        assert_balanced(&svg);
        assert_eq!(series_points(&svg), vec![("loss".to_string(), 0)]);
        assert!(svg.contains("loss (no finite values)"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn empty_input_is_an_error_and_writes_nothing() {
        let dir = std::env::temp_dir().join(format!("dnnc-plot-empty-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.svg");
        let e = write_curves(&path, "t", &[]).unwrap_err();
        assert!(e.contains("no epochs"), "{e}");
        let e = write_curves(&path, "t", &[(1, vec![])]).unwrap_err();
        assert!(e.contains("no metrics"), "{e}");
        assert!(!path.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writes_atomically_and_replaces_the_file() {
        let dir = std::env::temp_dir().join(format!("dnnc-plot-write-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.svg");
        fs::write(&path, "old").unwrap();
        write_curves(
            &path,
            "t",
            &[ep(1, &[("loss", 1.0)]), ep(2, &[("loss", 0.5)])],
        )
        .unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("<svg"));
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "a temporary file was left: {names:?}");
        let e = write_curves(
            &dir.join("missing").join("c.svg"),
            "t",
            &[ep(1, &[("loss", 1.0)])],
        )
        .unwrap_err();
        assert!(e.contains("missing"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nice_steps_and_decimals() {
        assert_eq!(nice_step(0.13), 0.2);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(decimals_for(0.2), 1);
        assert_eq!(decimals_for(0.05), 2);
        assert_eq!(decimals_for(5.0), 0);
    }
}
