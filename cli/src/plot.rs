//! Latency plots: a text table, an ASCII percentile chart for terminals, SVG and PNG.
//!
//! Every chart is drawn from one [`Model`]: each histogram becomes a percentile curve in the
//! coordinates of HdrHistogram's plotter, x = log10(1/(1-p)) (the "number of nines" of the
//! percentile p) and y = latency in nanoseconds, and the axes (percentile ticks "0%", "90%",
//! "99%", ... and 4-6 linear latency ticks in one unit) are computed once. The backends only
//! map those coordinates onto characters, SVG elements or pixels.
//!
//! The PNG backend is a tiny rasteriser of its own (rectangles, Bresenham lines and a built-in
//! 5x7 bitmap font) over an RGB buffer, encoded with the `png` crate, so the CLI needs no
//! drawing library.
//!
//! Non-goals: logarithmic latency axes, anti-aliasing, colour in terminals, fonts beyond
//! printable ASCII (the PNG draws 'µ' as 'u' and other characters as '?').

use std::path::Path;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;

/// One line of a plot / one row of a table.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    /// Legend entry or row label.
    pub name: &'a str,
    /// Recorded latencies, in nanoseconds.
    pub hist: &'a Histogram<u64>,
}

// ---------------------------------------------------------------------------------------------
// Units and number formatting
// ---------------------------------------------------------------------------------------------

/// Nanoseconds per microsecond.
const NS_PER_US: f64 = 1e3;
/// Nanoseconds per millisecond.
const NS_PER_MS: f64 = 1e6;
/// Nanoseconds per second.
const NS_PER_S: f64 = 1e9;
/// Significant digits of a formatted latency: the histograms keep 3, more would be noise.
const SIG_DIGITS: i32 = 3;
/// Relative slack for float comparisons that should be exact (1.0 / 0.2 is 5.000000000000001).
const FLOAT_SLACK: f64 = 1e-9;

/// The time unit of a label: the largest of ns, µs, ms, s that keeps the number >= 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Ns,
    Us,
    Ms,
    S,
}

impl Unit {
    /// The unit for a value of `ns` nanoseconds.
    fn for_ns(ns: f64) -> Unit {
        if ns < NS_PER_US {
            Unit::Ns
        } else if ns < NS_PER_MS {
            Unit::Us
        } else if ns < NS_PER_S {
            Unit::Ms
        } else {
            Unit::S
        }
    }

    /// Nanoseconds in one of this unit.
    fn ns(self) -> f64 {
        match self {
            Unit::Ns => 1.0,
            Unit::Us => NS_PER_US,
            Unit::Ms => NS_PER_MS,
            Unit::S => NS_PER_S,
        }
    }

    /// The unit's symbol.
    fn symbol(self) -> &'static str {
        match self {
            Unit::Ns => "ns",
            Unit::Us => "µs",
            Unit::Ms => "ms",
            Unit::S => "s",
        }
    }

    /// The unit's symbol in plain ASCII, for terminals.
    fn ascii(self) -> &'static str {
        match self {
            Unit::Us => "us",
            other => other.symbol(),
        }
    }
}

/// Rounds `x` to [`SIG_DIGITS`] significant digits.
fn round_sig(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let magnitude = x.abs().log10().floor() as i32;
    let scale = 10f64.powi(SIG_DIGITS - 1 - magnitude);
    (x * scale).round() / scale
}

/// Formats a latency with a unit chosen for this value and 3 significant digits ("850 ns",
/// "12.3 µs", "1.25 ms"; 4 digits only for "1000"-style carries and whole nanoseconds stay
/// whole). `sep` goes between number and unit.
pub fn fmt_latency(ns: f64, sep: &str) -> String {
    if !ns.is_finite() {
        return "-".to_string();
    }
    let rounded = round_sig(ns);
    let unit = Unit::for_ns(rounded);
    let v = rounded / unit.ns();
    let whole = (v - v.round()).abs() < FLOAT_SLACK;
    let decimals = if v >= 100.0 || (unit == Unit::Ns && whole) {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.decimals$}{sep}{}", unit.symbol())
}

/// Replaces control characters, which would break a table row or a chart line, with '?'.
fn printable(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `name` in printable ASCII only ('µ' as 'u', anything else outside ASCII as '?'), for
/// terminal charts that must survive any log.
fn ascii_only(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            ' ' => c,
            'µ' => 'u',
            c if c.is_ascii_graphic() => c,
            _ => '?',
        })
        .collect()
}

/// Shortens `s` to at most `max` characters, marking a cut with `ellipsis`.
fn truncate(s: &str, max: usize, ellipsis: &str) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let keep = max.saturating_sub(ellipsis.chars().count());
    let mut out: String = s.chars().take(keep).collect();
    out.push_str(ellipsis);
    out.chars().take(max).collect()
}

// ---------------------------------------------------------------------------------------------
// Table
// ---------------------------------------------------------------------------------------------

/// Widest table that still fits a classic terminal.
const TABLE_WIDTH: usize = 80;
/// Names longer than this are cut: 10 + count (6 digits) + 9 value columns of 6 + 10 spaces
/// is exactly [`TABLE_WIDTH`].
const TABLE_NAME_MAX: usize = 10;
/// Narrowest name column, used when very large counts need the room: the header "name".
const TABLE_NAME_MIN: usize = 4;
/// Column headers, in order.
const TABLE_HEADERS: [&str; 11] = [
    "name", "count", "min", "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean", "stdev",
];
/// Quantiles of the p50 .. p99.99 columns.
const TABLE_QUANTILES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 0.9999];

/// Text table, one row per series: name, count, min, p50, p90, p99, p99.9, p99.99, max, mean,
/// stdev; values in a readable unit chosen per cell with 3 significant digits ("12.3µs",
/// "850ns", "1.25ms": no space before the unit, which is what lets 11 columns fit 80). Fits 80
/// columns for names up to 10 characters and counts up to 6 digits; longer names are cut with
/// an ellipsis. Empty histograms show "-" cells and count 0.
pub fn table(series: &[Series]) -> String {
    let rows: Vec<(String, Vec<String>)> = series
        .iter()
        .map(|s| (printable(s.name), table_cells(s.hist)))
        .collect();

    let mut widths: Vec<usize> = TABLE_HEADERS[1..].iter().map(|h| h.len()).collect();
    for (_, cells) in &rows {
        for (w, cell) in widths.iter_mut().zip(cells) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // Each value column is preceded by one space.
    let values_width: usize = widths.iter().map(|w| w + 1).sum();
    let longest = rows
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    let room = TABLE_WIDTH.saturating_sub(values_width).max(TABLE_NAME_MIN);
    let name_w = longest.clamp(TABLE_NAME_MIN, TABLE_NAME_MAX.min(room));

    let mut out = String::new();
    let header: Vec<String> = TABLE_HEADERS[1..].iter().map(|h| h.to_string()).collect();
    push_table_row(&mut out, TABLE_HEADERS[0], &header, name_w, &widths);
    for (name, cells) in &rows {
        push_table_row(
            &mut out,
            &truncate(name, name_w, "…"),
            cells,
            name_w,
            &widths,
        );
    }
    out
}

/// The count and value cells of one table row.
fn table_cells(h: &Histogram<u64>) -> Vec<String> {
    let values = TABLE_HEADERS.len() - 2;
    if h.is_empty() {
        let mut cells = vec!["0".to_string()];
        cells.extend(std::iter::repeat_n("-".to_string(), values));
        return cells;
    }
    let mut cells = vec![h.len().to_string(), fmt_latency(h.min() as f64, "")];
    cells.extend(
        TABLE_QUANTILES
            .iter()
            .map(|&q| fmt_latency(h.value_at_quantile(q) as f64, "")),
    );
    cells.push(fmt_latency(h.max() as f64, ""));
    cells.push(fmt_latency(h.mean(), ""));
    cells.push(fmt_latency(h.stdev(), ""));
    cells
}

/// Appends one table line: the name left-aligned, every other cell right-aligned.
fn push_table_row(out: &mut String, name: &str, cells: &[String], name_w: usize, widths: &[usize]) {
    out.push_str(&format!("{name:<name_w$}"));
    for (cell, w) in cells.iter().zip(widths) {
        out.push_str(&format!(" {cell:>w$}"));
    }
    out.push('\n');
}

// ---------------------------------------------------------------------------------------------
// The shared model: percentile curves and axes
// ---------------------------------------------------------------------------------------------

/// Percentile points per halving of the remaining tail in `iter_quantiles`: a decade of
/// 1/(1-p) is log2(10) = 3.3 halvings, so 16 gives about 53 points per decade, smooth at
/// 900 px across the 5-10 decades a run's count supports.
const QUANTILE_TICKS_PER_HALF_DISTANCE: u32 = 16;
/// Shortest percentile axis, in decades of 1/(1-p): keeps a chart of fewer than 10 samples
/// from collapsing into a vertical line.
const MIN_X_DECADES: f64 = 1.0;
/// Most intervals on the latency axis. With steps from the 1-2-5 ladder the first step that
/// gives at most 5 intervals gives at least 3 (the step before it was at most 2.5 times
/// smaller and gave more than 5), so the axis always has 4-6 ticks counting 0.
const MAX_Y_INTERVALS: f64 = 5.0;
/// Mantissas of the latency tick step, in increasing order within a decade.
const Y_STEP_MANTISSAS: [f64; 3] = [1.0, 2.0, 5.0];

/// One series as a percentile curve.
#[derive(Debug)]
struct Curve<'a> {
    name: &'a str,
    /// (log10(1/(1-p)), latency in ns), x non-decreasing; empty when the series has no data.
    points: Vec<(f64, f64)>,
}

/// Axis ranges and ticks, shared by every backend.
#[derive(Debug)]
struct Axes {
    /// Right end of the percentile axis, in decades of 1/(1-p).
    x_end: f64,
    /// Percentile ticks: position in decades and label ("0%", "90%", "99%", ...).
    x_ticks: Vec<(f64, String)>,
    /// Top of the latency axis, ns; the axis starts at 0.
    y_top: f64,
    /// Latency ticks: value in ns and label as a number in `unit`.
    y_ticks: Vec<(f64, String)>,
    /// Unit of every latency tick label, chosen from the data's max.
    unit: Unit,
}

/// Everything a chart needs: curves in series order, and axes unless no series has data.
#[derive(Debug)]
struct Model<'a> {
    curves: Vec<Curve<'a>>,
    axes: Option<Axes>,
}

impl<'a> Model<'a> {
    fn new(series: &[Series<'a>]) -> Model<'a> {
        let curves = series
            .iter()
            .map(|s| Curve {
                name: s.name,
                points: curve_points(s.hist),
            })
            .collect();
        let max_count = series.iter().map(|s| s.hist.len()).max().unwrap_or(0);
        let max_ns = series
            .iter()
            .filter(|s| !s.hist.is_empty())
            .map(|s| s.hist.max())
            .max()
            .unwrap_or(0);
        let axes = (max_count > 0).then(|| Axes::new(max_count, max_ns as f64));
        Model { curves, axes }
    }
}

/// Samples the percentile curve of `h` with `iter_quantiles`. A point at percentile p has
/// x = log10(1/(1-p)), capped at log10(count): beyond it the count cannot tell percentiles
/// apart, and p = 1.0 (the max) sits exactly there.
fn curve_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let cap = (h.len() as f64).log10();
    let mut points: Vec<(f64, f64)> = Vec::new();
    for v in h.iter_quantiles(QUANTILE_TICKS_PER_HALF_DISTANCE) {
        let q = v.quantile_iterated_to();
        let x = if q >= 1.0 {
            cap
        } else {
            (-(1.0 - q).log10()).clamp(0.0, cap)
        };
        let point = (x, v.value_iterated_to() as f64);
        if points.last() != Some(&point) {
            points.push(point);
        }
    }
    if let Some(&(x, y)) = points.last() {
        if x < cap {
            points.push((cap, y));
        }
    }
    points
}

/// The label of the percentile tick at `k` decades: "0%", "90%", "99%", "99.9%", ...
fn percentile_label(k: u32) -> String {
    match k {
        0 => "0%".to_string(),
        1 => "90%".to_string(),
        2 => "99%".to_string(),
        _ => format!("99.{}%", "9".repeat(k as usize - 2)),
    }
}

impl Axes {
    /// Axes for series of at most `max_count` samples and at most `max_ns` latency.
    fn new(max_count: u64, max_ns: f64) -> Axes {
        let x_end = (max_count as f64).log10().max(MIN_X_DECADES);
        // A tick at k decades needs 10^k samples: 1/(1-p) may not exceed the count.
        let x_ticks = (0u32..)
            .take_while(|&k| 10u64.checked_pow(k).is_some_and(|p| p <= max_count))
            .map(|k| (f64::from(k), percentile_label(k)))
            .collect();

        let max_ns = if max_ns > 0.0 { max_ns } else { 1.0 };
        let unit = Unit::for_ns(max_ns);
        let span = max_ns / unit.ns();
        // Start a decade below the span's, where every step still gives > 5 intervals.
        let mut exp = span.log10().floor() as i32 - 1;
        let (step, intervals) = loop {
            let fit = Y_STEP_MANTISSAS.iter().find_map(|m| {
                let step = m * 10f64.powi(exp);
                let n = (span / step * (1.0 - FLOAT_SLACK)).ceil();
                (n <= MAX_Y_INTERVALS).then_some((step, n as u32))
            });
            if let Some(fit) = fit {
                break fit;
            }
            exp += 1;
        };
        let decimals = (-exp).max(0) as usize;
        let y_ticks = (0..=intervals)
            .map(|i| {
                let v = f64::from(i) * step;
                (v * unit.ns(), format!("{v:.decimals$}"))
            })
            .collect();
        Axes {
            x_end,
            x_ticks,
            y_top: f64::from(intervals) * step * unit.ns(),
            y_ticks,
            unit,
        }
    }
}

/// Latency at decade `x` on a curve, linear between samples.
fn interpolate(points: &[(f64, f64)], x: f64) -> f64 {
    let i = points.partition_point(|p| p.0 < x);
    if i == 0 {
        return points[0].1;
    }
    let Some(&(xb, yb)) = points.get(i) else {
        return points[points.len() - 1].1;
    };
    let (xa, ya) = points[i - 1];
    ya + (yb - ya) * (x - xa) / (xb - xa)
}

/// Lowest and highest latency of a curve over decades `x0..=x1` (x0 <= x1).
fn span_range(points: &[(f64, f64)], x0: f64, x1: f64) -> (f64, f64) {
    let ends = [interpolate(points, x0), interpolate(points, x1)];
    let inside = points
        .iter()
        .filter(|p| p.0 >= x0 && p.0 <= x1)
        .map(|p| p.1);
    ends.into_iter()
        .chain(inside)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
            (lo.min(y), hi.max(y))
        })
}

// ---------------------------------------------------------------------------------------------
// Terminal chart
// ---------------------------------------------------------------------------------------------

/// Plot glyphs, one per series, cycling.
const TERM_GLYPHS: [char; 6] = ['*', 'o', '+', 'x', '#', '@'];
/// Fewest plot rows that still show a rise (a 0 row, a middle and a top).
const TERM_MIN_ROWS: usize = 3;
/// Fewest plot columns, even when `width` is too small for the labels (lines are cut to width).
const TERM_MIN_COLS: usize = 10;
/// Columns kept free right of the plot so the last percentile label can centre on its tick.
const TERM_RIGHT_MARGIN: usize = 3;
/// Spaces between legend entries.
const TERM_LEGEND_GAP: &str = "   ";

/// Percentile chart for a terminal: x axis = percentile on the log scale of 1/(1-p) (ticks
/// labelled 0%, 90%, 99%, 99.9%, ... as far as the data's count supports), y axis = latency
/// (linear from 0, labelled with units, 4-6 ticks), one glyph per series ('*', 'o', '+', 'x',
/// '#', '@' cycling) with a legend line. Total width <= `width` columns, plot area `height`
/// rows (at least 3). Plain ASCII only (no colour codes, no braille; 'µs' is written "us"), so
/// it survives logs and CI output.
pub fn terminal_chart(series: &[Series], width: usize, height: usize) -> String {
    let model = Model::new(series);
    let mut lines = match &model.axes {
        Some(axes) => terminal_plot(&model, axes, width, height),
        None => vec!["no data".to_string()],
    };
    lines.extend(terminal_legend(&model, width));
    let mut out = String::new();
    for line in lines {
        let fitted: String = line.chars().take(width).collect();
        out.push_str(fitted.trim_end());
        out.push('\n');
    }
    out
}

/// The plot rows, the percentile axis and its labels.
fn terminal_plot(model: &Model, axes: &Axes, width: usize, height: usize) -> Vec<String> {
    let rows = height.max(TERM_MIN_ROWS);
    let labels: Vec<String> = axes
        .y_ticks
        .iter()
        .map(|(_, l)| format!("{l} {}", axes.unit.ascii()))
        .collect();
    let label_w = labels.iter().map(String::len).max().unwrap_or(0);
    // "<label> |" before every plot row.
    let prefix = label_w + 2;
    let cols = width
        .saturating_sub(prefix + TERM_RIGHT_MARGIN)
        .max(TERM_MIN_COLS);
    let row_of = |y: f64| -> usize {
        let r = ((1.0 - y / axes.y_top) * (rows - 1) as f64).round();
        r.clamp(0.0, (rows - 1) as f64) as usize
    };
    let col_of = |x: f64| -> usize { (x / axes.x_end * (cols - 1) as f64).round() as usize };

    let mut grid = vec![vec![' '; cols]; rows];
    // Each column covers half a column's worth of decades on either side of its centre.
    let half = axes.x_end / (cols - 1) as f64 / 2.0;
    for (i, curve) in model.curves.iter().enumerate() {
        let Some(&(last_x, _)) = curve.points.last() else {
            continue;
        };
        let glyph = TERM_GLYPHS[i % TERM_GLYPHS.len()];
        for c in 0..cols {
            let centre = c as f64 * 2.0 * half;
            let x0 = (centre - half).max(0.0);
            if x0 > last_x {
                break;
            }
            let (lo, hi) = span_range(&curve.points, x0, (centre + half).min(last_x));
            for row in grid.iter_mut().take(row_of(lo) + 1).skip(row_of(hi)) {
                row[c] = glyph;
            }
        }
    }

    let mut row_labels = vec![String::new(); rows];
    for ((v, _), label) in axes.y_ticks.iter().zip(labels) {
        let slot = &mut row_labels[row_of(*v)];
        if slot.is_empty() {
            *slot = label;
        }
    }

    let mut lines = vec!["latency".to_string()];
    for (label, row) in row_labels.iter().zip(&grid) {
        lines.push(format!(
            "{label:>label_w$} |{}",
            row.iter().collect::<String>()
        ));
    }
    let mut axis = vec!['-'; cols];
    let mut tick_line = vec![' '; prefix + cols + TERM_RIGHT_MARGIN];
    let mut free_from = 0;
    for (x, label) in &axes.x_ticks {
        let col = col_of(*x);
        // Column 0 sits next to the corner '+', which already marks it.
        if col > 0 {
            axis[col] = '+';
        }
        let start = (prefix + col)
            .saturating_sub(label.len() / 2)
            .min(tick_line.len().saturating_sub(label.len()));
        if start < free_from {
            continue;
        }
        for (slot, ch) in tick_line[start..].iter_mut().zip(label.chars()) {
            *slot = ch;
        }
        free_from = start + label.len() + 1;
    }
    lines.push(format!(
        "{:>label_w$} +{}",
        "",
        axis.iter().collect::<String>()
    ));
    lines.push(tick_line.iter().collect());
    let title = "percentile";
    lines.push(format!(
        "{:>w$}",
        title,
        w = prefix + (cols + title.len()) / 2
    ));
    lines
}

/// Legend entries "<glyph> <name>", wrapped to `width`.
fn terminal_legend(model: &Model, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for (i, curve) in model.curves.iter().enumerate() {
        let mut entry = format!(
            "{} {}",
            TERM_GLYPHS[i % TERM_GLYPHS.len()],
            ascii_only(curve.name)
        );
        if curve.points.is_empty() {
            entry.push_str(" (no data)");
        }
        let entry = truncate(&entry, width, "...");
        if !line.is_empty() && line.len() + TERM_LEGEND_GAP.len() + entry.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push_str(TERM_LEGEND_GAP);
        }
        line.push_str(&entry);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

// ---------------------------------------------------------------------------------------------
// Image layout shared by SVG and PNG
// ---------------------------------------------------------------------------------------------

/// Image width, px.
const IMAGE_W: usize = 900;
/// Image height, px.
const IMAGE_H: usize = 560;
/// Top of the plot area: below a title of up to 21 px starting at [`TITLE_TOP`].
const PLOT_TOP: f64 = 56.0;
/// Top of the title text, px.
const TITLE_TOP: f64 = 16.0;
/// Room right of the plot area for half of the last percentile label.
const PLOT_RIGHT_MARGIN: f64 = 48.0;
/// Room below the plot area: tick labels and the axis title, 14 px each, with gaps.
const PLOT_BOTTOM_MARGIN: f64 = 64.0;
/// Band left of the tick labels for the vertical axis title.
const Y_TITLE_BAND: f64 = 36.0;
/// Gap between tick labels (or the legend's edge) and what they label.
const LABEL_GAP: f64 = 8.0;
/// Top of the percentile tick labels below the plot area.
const X_LABELS_BELOW: f64 = 10.0;
/// Top of the percentile axis title below the plot area.
const X_TITLE_BELOW: f64 = 36.0;
/// Left edge of the vertical axis title.
const Y_TITLE_LEFT: f64 = 12.0;
/// Legend inset from the plot area's top-left corner.
const LEGEND_INSET: f64 = 12.0;
/// Height of one legend entry.
const LEGEND_ENTRY_H: f64 = 20.0;
/// Padding inside the legend box.
const LEGEND_PAD: f64 = 4.0;
/// Length of the coloured line sample in front of a legend name.
const LEGEND_SAMPLE_W: f64 = 24.0;
/// Series colours (Tableau 10 minus grey and olive, which vanish on the grid), cycling.
const PALETTE: [[u8; 3]; 8] = [
    [0x1f, 0x77, 0xb4],
    [0xd6, 0x27, 0x28],
    [0x2c, 0xa0, 0x2c],
    [0xff, 0x7f, 0x0e],
    [0x94, 0x67, 0xbd],
    [0x8c, 0x56, 0x4b],
    [0xe3, 0x77, 0xc2],
    [0x17, 0xbe, 0xcf],
];
/// Background.
const WHITE: [u8; 3] = [0xff, 0xff, 0xff];
/// Axes frame and text.
const INK: [u8; 3] = [0x22, 0x22, 0x22];
/// Grid lines.
const GRID: [u8; 3] = [0xdd, 0xdd, 0xdd];
/// Legend frame and "(no data)" entries.
const MUTED: [u8; 3] = [0x99, 0x99, 0x99];
/// Title of the percentile axis.
const X_TITLE: &str = "Percentile";

/// The plot area of an image, px.
#[derive(Debug, Clone, Copy)]
struct Frame {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

impl Frame {
    /// The plot area when the widest latency tick label is `label_w` px wide.
    fn new(label_w: f64) -> Frame {
        Frame {
            left: Y_TITLE_BAND + label_w + LABEL_GAP,
            top: PLOT_TOP,
            right: IMAGE_W as f64 - PLOT_RIGHT_MARGIN,
            bottom: IMAGE_H as f64 - PLOT_BOTTOM_MARGIN,
        }
    }

    /// Pixel x of `x` decades.
    fn px(&self, axes: &Axes, x: f64) -> f64 {
        self.left + x / axes.x_end * (self.right - self.left)
    }

    /// Pixel y of a latency of `ns`.
    fn py(&self, axes: &Axes, ns: f64) -> f64 {
        self.bottom - ns / axes.y_top * (self.bottom - self.top)
    }
}

/// Title of the latency axis.
fn y_title(axes: &Axes) -> String {
    format!("Latency ({})", axes.unit.symbol())
}

/// Legend text of a curve.
fn legend_text(curve: &Curve) -> String {
    let name = printable(curve.name);
    if curve.points.is_empty() {
        format!("{name} (no data)")
    } else {
        name
    }
}

/// `rgb` as an SVG colour.
fn hex(rgb: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2])
}

// ---------------------------------------------------------------------------------------------
// SVG
// ---------------------------------------------------------------------------------------------

/// SVG text size, px.
const SVG_FONT_PX: f64 = 14.0;
/// SVG title size, px.
const SVG_TITLE_PX: f64 = 18.0;
/// Estimated advance of one character at [`SVG_FONT_PX`] in a sans-serif face (digits are
/// 0.556 em in Helvetica and Arial), for margins and the legend box.
const SVG_CHAR_W: f64 = 8.0;
/// Stroke width of the series lines.
const SVG_LINE_PX: f64 = 1.5;
/// Radius of the dot drawn for a curve that is a single point (one distinct sample).
const SVG_DOT_R: f64 = 3.0;
/// Stroke width of the line samples in the legend (heavier than the curves, to show colour).
const SVG_LEGEND_LINE_PX: f64 = 2.0;
/// Baseline shift, in em, that centres a line of text on a y position: half the height of
/// digits and capitals in common sans-serif faces (about 0.7 em).
const SVG_CENTRE_SHIFT_EM: f64 = 0.35;

/// Escapes text for XML content and attributes; characters XML 1.0 forbids become '?'.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// SVG percentile plot: same axes as the terminal chart (HdrHistogram plotter style: x =
/// percentile on a log 1/(1-p) scale with labels "0%", "90%", "99%", ... ; y = latency in a unit
/// chosen from the data's max), one polyline per series with data in distinct colours, legend,
/// axis titles, `title` at the top. Valid standalone SVG 1.1 (xmlns set; names and title
/// escaped).
pub fn svg(series: &[Series], title: &str) -> String {
    let model = Model::new(series);
    let (w, h) = (IMAGE_W as f64, IMAGE_H as f64);
    let mut s = String::new();
    s.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{IMAGE_W}\" \
         height=\"{IMAGE_H}\" viewBox=\"0 0 {IMAGE_W} {IMAGE_H}\" font-family=\"sans-serif\" \
         font-size=\"{SVG_FONT_PX}\" fill=\"{}\">\n",
        hex(INK)
    ));
    s.push_str(&format!(
        "<rect width=\"{w}\" height=\"{h}\" fill=\"{}\"/>\n",
        hex(WHITE)
    ));
    s.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"{SVG_TITLE_PX}\" \
         font-weight=\"bold\">{}</text>\n",
        w / 2.0,
        TITLE_TOP + SVG_TITLE_PX,
        xml_escape(title)
    ));

    let label_w = model.axes.as_ref().map_or(0.0, |a| {
        a.y_ticks
            .iter()
            .map(|(_, l)| l.len() as f64 * SVG_CHAR_W)
            .fold(0.0, f64::max)
    });
    let f = Frame::new(label_w);
    let baseline = SVG_FONT_PX * SVG_CENTRE_SHIFT_EM;

    match &model.axes {
        Some(axes) => {
            s.push_str(&format!(
                "<g stroke=\"{}\" stroke-width=\"1\">\n",
                hex(GRID)
            ));
            for (x, _) in &axes.x_ticks {
                let px = f.px(axes, *x);
                s.push_str(&format!(
                    "<line x1=\"{px:.1}\" y1=\"{:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\"/>\n",
                    f.top, f.bottom
                ));
            }
            for (v, _) in &axes.y_ticks {
                let py = f.py(axes, *v);
                s.push_str(&format!(
                    "<line x1=\"{:.1}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\"/>\n",
                    f.left, f.right
                ));
            }
            s.push_str("</g>\n");
            for (x, label) in &axes.x_ticks {
                s.push_str(&format!(
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                    f.px(axes, *x),
                    f.bottom + X_LABELS_BELOW + SVG_FONT_PX,
                    xml_escape(label)
                ));
            }
            for (v, label) in &axes.y_ticks {
                s.push_str(&format!(
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
                    f.left - LABEL_GAP,
                    f.py(axes, *v) + baseline,
                    xml_escape(label)
                ));
            }
            s.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{X_TITLE}</text>\n",
                (f.left + f.right) / 2.0,
                f.bottom + X_TITLE_BELOW + SVG_FONT_PX
            ));
            let (tx, ty) = (Y_TITLE_LEFT + SVG_FONT_PX, (f.top + f.bottom) / 2.0);
            s.push_str(&format!(
                "<text x=\"{tx:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\" \
                 transform=\"rotate(-90 {tx:.1} {ty:.1})\">{}</text>\n",
                xml_escape(&y_title(axes))
            ));
            for (i, curve) in model.curves.iter().enumerate() {
                if curve.points.is_empty() {
                    continue;
                }
                let colour = hex(PALETTE[i % PALETTE.len()]);
                let points: Vec<String> = curve
                    .points
                    .iter()
                    .map(|&(x, y)| format!("{:.1},{:.1}", f.px(axes, x), f.py(axes, y)))
                    .collect();
                s.push_str(&format!(
                    "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"{SVG_LINE_PX}\" \
                     stroke-linejoin=\"round\" points=\"{}\"/>\n",
                    points.join(" ")
                ));
                if let [(x, y)] = curve.points[..] {
                    s.push_str(&format!(
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{SVG_DOT_R}\" fill=\"{colour}\"/>\n",
                        f.px(axes, x),
                        f.py(axes, y)
                    ));
                }
            }
        }
        None => {
            s.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">no data</text>\n",
                (f.left + f.right) / 2.0,
                (f.top + f.bottom) / 2.0
            ));
        }
    }
    s.push_str(&format!(
        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" \
         stroke=\"{}\"/>\n",
        f.left,
        f.top,
        f.right - f.left,
        f.bottom - f.top,
        hex(INK)
    ));

    if !model.curves.is_empty() {
        let texts: Vec<String> = model.curves.iter().map(legend_text).collect();
        let longest = texts.iter().map(|t| t.chars().count()).max().unwrap_or(0);
        let (lx, ly) = (f.left + LEGEND_INSET, f.top + LEGEND_INSET);
        let box_w =
            LABEL_GAP + LEGEND_SAMPLE_W + LABEL_GAP + longest as f64 * SVG_CHAR_W + LABEL_GAP;
        let box_h = 2.0 * LEGEND_PAD + texts.len() as f64 * LEGEND_ENTRY_H;
        s.push_str(&format!(
            "<rect x=\"{lx:.1}\" y=\"{ly:.1}\" width=\"{box_w:.1}\" height=\"{box_h:.1}\" \
             fill=\"{}\" fill-opacity=\"0.9\" stroke=\"{}\"/>\n",
            hex(WHITE),
            hex(MUTED)
        ));
        for (i, (curve, text)) in model.curves.iter().zip(&texts).enumerate() {
            let mid = ly + LEGEND_PAD + (i as f64 + 0.5) * LEGEND_ENTRY_H;
            let sample_x = lx + LABEL_GAP;
            let text_x = sample_x + LEGEND_SAMPLE_W + LABEL_GAP;
            if curve.points.is_empty() {
                s.push_str(&format!(
                    "<text x=\"{text_x:.1}\" y=\"{:.1}\" fill=\"{}\">{}</text>\n",
                    mid + baseline,
                    hex(MUTED),
                    xml_escape(text)
                ));
            } else {
                s.push_str(&format!(
                    "<line x1=\"{sample_x:.1}\" y1=\"{mid:.1}\" x2=\"{:.1}\" y2=\"{mid:.1}\" \
                     stroke=\"{}\" stroke-width=\"{SVG_LEGEND_LINE_PX}\"/>\n",
                    sample_x + LEGEND_SAMPLE_W,
                    hex(PALETTE[i % PALETTE.len()])
                ));
                s.push_str(&format!(
                    "<text x=\"{text_x:.1}\" y=\"{:.1}\">{}</text>\n",
                    mid + baseline,
                    xml_escape(text)
                ));
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

// ---------------------------------------------------------------------------------------------
// PNG: a tiny rasteriser
// ---------------------------------------------------------------------------------------------

/// Glyph width of [`FONT`], px.
const GLYPH_W: usize = 5;
/// Glyph height of [`FONT`], px.
const GLYPH_H: usize = 7;
/// Horizontal advance per character: the glyph and one column of spacing.
const GLYPH_ADVANCE: usize = GLYPH_W + 1;
/// Scale of labels and legend: 10x14 px glyphs, legible at 900 px without zooming.
const TEXT_SCALE: usize = 2;
/// Scale of the title.
const TITLE_SCALE: usize = 3;
/// Width of the series lines, px.
const PNG_LINE_PX: usize = 2;
/// Side of the square drawn for a curve that is a single point, px.
const PNG_DOT_PX: usize = 6;
/// First character of [`FONT`].
const FONT_FIRST: char = ' ';

/// A 5x7 bitmap font for printable ASCII (' ' ..= '~'), drawn for this module. One entry per
/// character, one byte per row from the top, bit 4 the leftmost pixel and bit 0 the rightmost.
#[rustfmt::skip]
const FONT: [[u8; GLYPH_H]; 95] = [
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // ' '
    [0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04], // '!'
    [0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00], // '"'
    [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A], // '#'
    [0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04], // '$'
    [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03], // '%'
    [0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D], // '&'
    [0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00], // "'"
    [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02], // '('
    [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08], // ')'
    [0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00], // '*'
    [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00], // '+'
    [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08], // ','
    [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00], // '-'
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C], // '.'
    [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00], // '/'
    [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], // '0'
    [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E], // '1'
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], // '2'
    [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E], // '3'
    [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], // '4'
    [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E], // '5'
    [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], // '6'
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08], // '7'
    [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], // '8'
    [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C], // '9'
    [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00], // ':'
    [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08], // ';'
    [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02], // '<'
    [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00], // '='
    [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08], // '>'
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04], // '?'
    [0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E], // '@'
    [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], // 'A'
    [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E], // 'B'
    [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E], // 'C'
    [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C], // 'D'
    [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F], // 'E'
    [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10], // 'F'
    [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F], // 'G'
    [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], // 'H'
    [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], // 'I'
    [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C], // 'J'
    [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11], // 'K'
    [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F], // 'L'
    [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11], // 'M'
    [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11], // 'N'
    [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], // 'O'
    [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10], // 'P'
    [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D], // 'Q'
    [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11], // 'R'
    [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E], // 'S'
    [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04], // 'T'
    [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], // 'U'
    [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04], // 'V'
    [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A], // 'W'
    [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11], // 'X'
    [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04], // 'Y'
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F], // 'Z'
    [0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E], // '['
    [0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00], // '\'
    [0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E], // ']'
    [0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00], // '^'
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F], // '_'
    [0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00], // '`'
    [0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F], // 'a'
    [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E], // 'b'
    [0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E], // 'c'
    [0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F], // 'd'
    [0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E], // 'e'
    [0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08], // 'f'
    [0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E], // 'g'
    [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11], // 'h'
    [0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E], // 'i'
    [0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C], // 'j'
    [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12], // 'k'
    [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], // 'l'
    [0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11], // 'm'
    [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11], // 'n'
    [0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E], // 'o'
    [0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10], // 'p'
    [0x00, 0x00, 0x0D, 0x13, 0x0F, 0x01, 0x01], // 'q'
    [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10], // 'r'
    [0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E], // 's'
    [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06], // 't'
    [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D], // 'u'
    [0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04], // 'v'
    [0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A], // 'w'
    [0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11], // 'x'
    [0x00, 0x00, 0x11, 0x11, 0x0F, 0x01, 0x0E], // 'y'
    [0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F], // 'z'
    [0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02], // '{'
    [0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04], // '|'
    [0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08], // '}'
    [0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00], // '~'
];

/// The glyph drawn for `c`: 'µ' as 'u', anything outside printable ASCII as '?'.
fn glyph(c: char) -> &'static [u8; GLYPH_H] {
    let c = if c == 'µ' { 'u' } else { c };
    let index = (c as usize)
        .checked_sub(FONT_FIRST as usize)
        .filter(|&i| i < FONT.len())
        .unwrap_or('?' as usize - FONT_FIRST as usize);
    &FONT[index]
}

/// Width of `s` drawn at `scale`, px.
fn text_width(s: &str, scale: usize) -> usize {
    s.chars().count() * GLYPH_ADVANCE * scale
}

/// An RGB image with clipped drawing primitives.
#[derive(Debug)]
struct Canvas {
    width: usize,
    height: usize,
    /// Row-major RGB triples.
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: usize, height: usize, background: [u8; 3]) -> Canvas {
        Canvas {
            width,
            height,
            pixels: background.repeat(width * height),
        }
    }

    /// Fills the rectangle of `w` x `h` px at (`x`, `y`), clipped to the canvas.
    fn fill_rect(&mut self, x: i64, y: i64, w: usize, h: usize, rgb: [u8; 3]) {
        let clip = |v: i64, limit: usize| v.clamp(0, limit as i64) as usize;
        let (x0, x1) = (clip(x, self.width), clip(x + w as i64, self.width));
        let (y0, y1) = (clip(y, self.height), clip(y + h as i64, self.height));
        for row in y0..y1 {
            let start = (row * self.width + x0) * rgb.len();
            let end = (row * self.width + x1) * rgb.len();
            for px in self.pixels[start..end].chunks_exact_mut(rgb.len()) {
                px.copy_from_slice(&rgb);
            }
        }
    }

    /// Outlines a rectangle with 1 px lines.
    fn stroke_rect(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, rgb: [u8; 3]) {
        let (l, t, r, b) = (
            x0.round() as i64,
            y0.round() as i64,
            x1.round() as i64,
            y1.round() as i64,
        );
        let (w, h) = ((r - l + 1) as usize, (b - t + 1) as usize);
        self.fill_rect(l, t, w, 1, rgb);
        self.fill_rect(l, b, w, 1, rgb);
        self.fill_rect(l, t, 1, h, rgb);
        self.fill_rect(r, t, 1, h, rgb);
    }

    /// Draws a line `thickness` px wide from `a` to `b` (Bresenham, a square brush).
    fn line(&mut self, a: (f64, f64), b: (f64, f64), thickness: usize, rgb: [u8; 3]) {
        let (mut x, mut y) = (a.0.round() as i64, a.1.round() as i64);
        let (x1, y1) = (b.0.round() as i64, b.1.round() as i64);
        let (dx, dy) = ((x1 - x).abs(), -(y1 - y).abs());
        let (sx, sy) = (if x < x1 { 1 } else { -1 }, if y < y1 { 1 } else { -1 });
        let offset = (thickness / 2) as i64;
        let mut err = dx + dy;
        loop {
            self.fill_rect(x - offset, y - offset, thickness, thickness, rgb);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Draws `s` left to right with its top-left corner at (`x`, `y`).
    fn text(&mut self, x: f64, y: f64, s: &str, scale: usize, rgb: [u8; 3]) {
        let (x, y) = (x.round() as i64, y.round() as i64);
        for (i, c) in s.chars().enumerate() {
            let gx = x + (i * GLYPH_ADVANCE * scale) as i64;
            self.glyph(c, scale, rgb, |col, row| {
                (gx + (col * scale) as i64, y + (row * scale) as i64)
            });
        }
    }

    /// Draws `s` bottom to top (rotated a quarter turn anticlockwise) with the bottom-left
    /// corner of its first character at (`x`, `y`).
    fn text_up(&mut self, x: f64, y: f64, s: &str, scale: usize, rgb: [u8; 3]) {
        let (x, y) = (x.round() as i64, y.round() as i64);
        for (i, c) in s.chars().enumerate() {
            let gy = y - (i * GLYPH_ADVANCE * scale) as i64;
            self.glyph(c, scale, rgb, |col, row| {
                (x + (row * scale) as i64, gy - ((col + 1) * scale) as i64)
            });
        }
    }

    /// Draws the glyph of `c`, placing the pixel at glyph column `col`, row `row` where `at`
    /// says.
    fn glyph(
        &mut self,
        c: char,
        scale: usize,
        rgb: [u8; 3],
        at: impl Fn(usize, usize) -> (i64, i64),
    ) {
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..GLYPH_W {
                if bits & (1 << (GLYPH_W - 1 - col)) != 0 {
                    let (px, py) = at(col, row);
                    self.fill_rect(px, py, scale, scale, rgb);
                }
            }
        }
    }

    /// Encodes the canvas as an 8-bit RGB PNG.
    fn encode(&self) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().context("writing PNG header")?;
        writer
            .write_image_data(&self.pixels)
            .context("writing PNG image data")?;
        writer.finish().context("finishing PNG")?;
        Ok(out)
    }
}

/// PNG of the same plot as [`svg`] (900x560 RGB), rendered by this module's rasteriser: axes,
/// grid lines, the curves (2 px, distinct colours), title, tick labels and legend in the
/// built-in 5x7 font ('µ' drawn as 'u'), encoded with the `png` crate.
pub fn png(series: &[Series], title: &str) -> anyhow::Result<Vec<u8>> {
    let model = Model::new(series);
    let mut canvas = Canvas::new(IMAGE_W, IMAGE_H, WHITE);
    let text_h = (GLYPH_H * TEXT_SCALE) as f64;

    let title = truncate(
        &printable(title),
        IMAGE_W / (GLYPH_ADVANCE * TITLE_SCALE),
        "...",
    );
    let title_x = (IMAGE_W as f64 - text_width(&title, TITLE_SCALE) as f64) / 2.0;
    canvas.text(title_x, TITLE_TOP, &title, TITLE_SCALE, INK);

    let label_w = model.axes.as_ref().map_or(0, |a| {
        a.y_ticks
            .iter()
            .map(|(_, l)| text_width(l, TEXT_SCALE))
            .max()
            .unwrap_or(0)
    });
    let f = Frame::new(label_w as f64);

    match &model.axes {
        Some(axes) => {
            for (x, _) in &axes.x_ticks {
                let px = f.px(axes, *x);
                canvas.line((px, f.top), (px, f.bottom), 1, GRID);
            }
            for (v, _) in &axes.y_ticks {
                let py = f.py(axes, *v);
                canvas.line((f.left, py), (f.right, py), 1, GRID);
            }
            let mut free_from = 0.0;
            for (x, label) in &axes.x_ticks {
                let w = text_width(label, TEXT_SCALE) as f64;
                let lx = (f.px(axes, *x) - w / 2.0).clamp(0.0, IMAGE_W as f64 - w);
                if lx < free_from {
                    continue;
                }
                canvas.text(lx, f.bottom + X_LABELS_BELOW, label, TEXT_SCALE, INK);
                free_from = lx + w + LABEL_GAP;
            }
            for (v, label) in &axes.y_ticks {
                let w = text_width(label, TEXT_SCALE) as f64;
                let y = f.py(axes, *v) - text_h / 2.0;
                canvas.text(f.left - LABEL_GAP - w, y, label, TEXT_SCALE, INK);
            }
            let x_title_w = text_width(X_TITLE, TEXT_SCALE) as f64;
            canvas.text(
                (f.left + f.right - x_title_w) / 2.0,
                f.bottom + X_TITLE_BELOW,
                X_TITLE,
                TEXT_SCALE,
                INK,
            );
            let y_title = y_title(axes);
            let y_title_w = text_width(&y_title, TEXT_SCALE) as f64;
            canvas.text_up(
                Y_TITLE_LEFT,
                (f.top + f.bottom + y_title_w) / 2.0,
                &y_title,
                TEXT_SCALE,
                INK,
            );
            for (i, curve) in model.curves.iter().enumerate() {
                let colour = PALETTE[i % PALETTE.len()];
                let pixels: Vec<(f64, f64)> = curve
                    .points
                    .iter()
                    .map(|&(x, y)| (f.px(axes, x), f.py(axes, y)))
                    .collect();
                for pair in pixels.windows(2) {
                    canvas.line(pair[0], pair[1], PNG_LINE_PX, colour);
                }
                if let [(x, y)] = pixels[..] {
                    let half = (PNG_DOT_PX / 2) as f64;
                    canvas.fill_rect(
                        (x - half).round() as i64,
                        (y - half).round() as i64,
                        PNG_DOT_PX,
                        PNG_DOT_PX,
                        colour,
                    );
                }
            }
        }
        None => {
            let w = text_width("no data", TEXT_SCALE) as f64;
            canvas.text(
                (f.left + f.right - w) / 2.0,
                (f.top + f.bottom - text_h) / 2.0,
                "no data",
                TEXT_SCALE,
                INK,
            );
        }
    }
    canvas.stroke_rect(f.left, f.top, f.right, f.bottom, INK);

    if !model.curves.is_empty() {
        let texts: Vec<String> = model.curves.iter().map(legend_text).collect();
        let longest = texts
            .iter()
            .map(|t| text_width(t, TEXT_SCALE))
            .max()
            .unwrap_or(0);
        let (lx, ly) = (f.left + LEGEND_INSET, f.top + LEGEND_INSET);
        let box_w = LABEL_GAP + LEGEND_SAMPLE_W + LABEL_GAP + longest as f64 + LABEL_GAP;
        let box_h = 2.0 * LEGEND_PAD + texts.len() as f64 * LEGEND_ENTRY_H;
        canvas.fill_rect(
            lx.round() as i64,
            ly.round() as i64,
            box_w.round() as usize,
            box_h.round() as usize,
            WHITE,
        );
        canvas.stroke_rect(lx, ly, lx + box_w, ly + box_h, MUTED);
        for (i, (curve, text)) in model.curves.iter().zip(&texts).enumerate() {
            let mid = ly + LEGEND_PAD + (i as f64 + 0.5) * LEGEND_ENTRY_H;
            let sample_x = lx + LABEL_GAP;
            let text_x = sample_x + LEGEND_SAMPLE_W + LABEL_GAP;
            let ink = if curve.points.is_empty() {
                MUTED
            } else {
                let colour = PALETTE[i % PALETTE.len()];
                canvas.line(
                    (sample_x, mid),
                    (sample_x + LEGEND_SAMPLE_W, mid),
                    PNG_LINE_PX,
                    colour,
                );
                INK
            };
            canvas.text(text_x, mid - text_h / 2.0, text, TEXT_SCALE, ink);
        }
    }
    canvas.encode()
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

/// Writes svg or png by the path's extension (.svg / .png, case-insensitive); any other
/// extension is an error naming the accepted ones; I/O errors name the path.
pub fn write_plot(path: &Path, series: &[Series], title: &str) -> anyhow::Result<()> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let bytes = match extension.as_deref() {
        Some("svg") => svg(series, title).into_bytes(),
        Some("png") => {
            png(series, title).with_context(|| format!("rendering {}", path.display()))?
        }
        _ => bail!(
            "cannot write plot {}: unknown extension (accepted: .svg, .png)",
            path.display()
        ),
    };
    std::fs::write(path, bytes).with_context(|| format!("writing plot {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bounds of every latency histogram in skiff: 1 ns .. 100 s, 3 significant digits.
    fn new_hist() -> Histogram<u64> {
        Histogram::new_with_bounds(1, 100 * NS_PER_S as u64, 3).expect("valid bounds")
    }

    /// Values 1, 2, ..., 1000 µs, one each.
    fn one_to_thousand_us() -> Histogram<u64> {
        let mut h = new_hist();
        for us in 1..=1000u64 {
            h.record(us * NS_PER_US as u64).expect("in range");
        }
        h
    }

    /// `n` samples with a heavy tail: `base_ns` at the median-ish, growing as (1/(1-u))^`tail`.
    fn tailed(n: u64, base_ns: f64, tail: f64) -> Histogram<u64> {
        let mut h = new_hist();
        for i in 0..n {
            let u = (i as f64 + 0.5) / n as f64;
            h.record((base_ns * (1.0 / (1.0 - u)).powf(tail)) as u64)
                .expect("in range");
        }
        h
    }

    /// Character offsets where the whitespace-separated tokens of `line` end.
    fn token_ends(line: &str) -> Vec<usize> {
        let chars: Vec<char> = line.chars().collect();
        (0..chars.len())
            .filter(|&i| {
                !chars[i].is_whitespace() && chars.get(i + 1).is_none_or(|c| c.is_whitespace())
            })
            .map(|i| i + 1)
            .collect()
    }

    #[test]
    fn latency_formatting_picks_a_unit_per_value() {
        let cases = [
            (0.0, "0 ns"),
            (1.0, "1 ns"),
            (850.0, "850 ns"),
            (5.5, "5.50 ns"),
            (999.7, "1.00 µs"),
            (12_345.0, "12.3 µs"),
            (500_223.0, "500 µs"),
            (1_250_000.0, "1.25 ms"),
            (2.5e9, "2.50 s"),
            (100e9, "100 s"),
        ];
        for (ns, want) in cases {
            assert_eq!(fmt_latency(ns, " "), want, "formatting {ns} ns");
        }
        assert_eq!(fmt_latency(12_345.0, ""), "12.3µs");
        assert_eq!(fmt_latency(f64::NAN, ""), "-");
    }

    #[test]
    fn percentile_labels_count_nines() {
        let labels: Vec<String> = (0..6).map(percentile_label).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
    }

    #[test]
    fn latency_axis_has_four_to_six_ticks_above_the_max() {
        let mut max = 1.0;
        while max < 200e9 {
            let axes = Axes::new(1000, max);
            let n = axes.y_ticks.len();
            assert!(
                (4..=6).contains(&n),
                "{n} ticks for max {max} ns: {:?}",
                axes.y_ticks
            );
            assert!(axes.y_top >= max, "top {} below max {max}", axes.y_top);
            assert_eq!(axes.y_ticks[0].0, 0.0);
            max *= 1.37;
        }
        let exact = Axes::new(1000, 1000.0);
        let labels: Vec<&str> = exact.y_ticks.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        assert_eq!(exact.unit, Unit::Us);
    }

    #[test]
    fn percentile_axis_stops_where_the_count_does() {
        let ticks = |count| -> Vec<String> {
            Axes::new(count, 1e3)
                .x_ticks
                .into_iter()
                .map(|(_, l)| l)
                .collect()
        };
        assert_eq!(ticks(1), ["0%"]);
        assert_eq!(ticks(999), ["0%", "90%", "99%"]);
        assert_eq!(ticks(1000), ["0%", "90%", "99%", "99.9%"]);
        assert_eq!(
            ticks(250_000),
            ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        );
        assert_eq!(ticks(u64::MAX).len(), 20);
    }

    #[test]
    fn curve_runs_from_zero_to_log_count_and_never_falls() {
        let h = one_to_thousand_us();
        let points = curve_points(&h);
        assert_eq!(points.first().map(|p| p.0), Some(0.0));
        let last = *points.last().expect("points");
        assert!((last.0 - 3.0).abs() < FLOAT_SLACK, "last point {last:?}");
        assert_eq!(last.1, h.max() as f64);
        for pair in points.windows(2) {
            assert!(pair[0].0 <= pair[1].0 && pair[0].1 <= pair[1].1, "{pair:?}");
        }
        assert!(points.len() > 100, "only {} points", points.len());
        assert!(curve_points(&new_hist()).is_empty());
    }

    #[test]
    fn table_columns_line_up_with_the_right_percentiles() {
        let h = one_to_thousand_us();
        let empty = new_hist();
        let table = table(&[
            Series {
                name: "loopback",
                hist: &h,
            },
            Series {
                name: "empty",
                hist: &empty,
            },
            Series {
                name: "a-very-long-series-name",
                hist: &h,
            },
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        let header = token_ends(lines[0]);
        assert_eq!(header.len(), TABLE_HEADERS.len(), "{table}");
        for line in &lines {
            assert!(line.chars().count() <= TABLE_WIDTH, "too wide: {line:?}");
            let ends = token_ends(line);
            assert_eq!(ends.len(), header.len(), "{line:?}");
            // Every column but the left-aligned name ends where its header does.
            assert_eq!(ends[1..], header[1..], "misaligned:\n{table}");
        }
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "loopback", "1000", "1.00µs", "500µs", "900µs", "990µs", "999µs", "1.00ms",
                "1.00ms", "501µs", "289µs"
            ],
            "{table}"
        );
        let empty_cells: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(empty_cells[..2], ["empty", "0"]);
        assert!(empty_cells[2..].iter().all(|c| *c == "-"), "{table}");
        assert!(lines[3].starts_with("a-very-lo… "), "{table}");
    }

    #[test]
    fn table_shrinks_names_for_huge_counts_to_stay_in_80_columns() {
        let mut h = new_hist();
        h.record_n(1000, 123_456_789).expect("in range");
        let table = table(&[Series {
            name: "ten-chars!",
            hist: &h,
        }]);
        for line in table.lines() {
            assert!(line.chars().count() <= TABLE_WIDTH, "too wide: {line:?}");
        }
        assert!(table.contains("123456789"), "{table}");
    }

    #[test]
    fn terminal_chart_fits_the_width_and_has_a_legend() {
        let fast = one_to_thousand_us();
        let slow = tailed(50_000, 20e3, 0.4);
        let empty = new_hist();
        let series = [
            Series {
                name: "fast",
                hist: &fast,
            },
            Series {
                name: "slow µ",
                hist: &slow,
            },
            Series {
                name: "idle",
                hist: &empty,
            },
        ];
        for (width, height) in [(80, 20), (60, 12), (40, 5), (12, 1)] {
            let chart = terminal_chart(&series, width, height);
            for line in chart.lines() {
                assert!(
                    line.chars().count() <= width,
                    "wider than {width}: {line:?}\n{chart}"
                );
                assert!(line.is_ascii(), "not ASCII: {line:?}");
            }
            if width >= 40 {
                assert!(chart.contains("* fast"), "{chart}");
                assert!(chart.contains("o slow u"), "{chart}");
                assert!(chart.contains("+ idle (no data)"), "{chart}");
            }
        }
        let chart = terminal_chart(&series, 80, 20);
        assert_eq!(chart.lines().count(), 1 + 20 + 3 + 1, "{chart}");
        for label in [
            "0%",
            "90%",
            "99%",
            "99.9%",
            "99.99%",
            " ms |",
            "0.0 ms |",
            "percentile",
        ] {
            assert!(chart.contains(label), "no {label:?} in\n{chart}");
        }
        assert!(
            !chart.contains("99.999%"),
            "50 000 samples cannot show 99.999%:\n{chart}"
        );
        assert!(chart.contains('*') && chart.contains('o'), "{chart}");
    }

    #[test]
    fn terminal_chart_without_data_says_so() {
        assert_eq!(terminal_chart(&[], 80, 20), "no data\n");
        let empty = new_hist();
        let chart = terminal_chart(
            &[Series {
                name: "idle",
                hist: &empty,
            }],
            80,
            20,
        );
        assert_eq!(chart, "no data\n* idle (no data)\n");
    }

    /// Checks that `svg` is one balanced tree of tags with nothing unescaped in text.
    fn assert_well_formed(svg: &str) {
        assert!(svg.starts_with("<svg "), "{svg}");
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            assert!(!text.contains('>'), "stray '>' in {text:?}");
            for (i, _) in text.match_indices('&') {
                let entity = &text[i..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                        .iter()
                        .any(|e| entity.starts_with(e)),
                    "raw '&' in {text:?}"
                );
            }
            let close = rest[open..].find('>').expect("unclosed tag") + open;
            let tag = &rest[open + 1..close];
            assert!(!tag.contains('<'), "'<' inside tag {tag:?}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().expect("tag name");
                stack.push(name);
            }
            rest = &rest[close + 1..];
        }
        assert!(stack.is_empty(), "unclosed {stack:?}");
        assert!(rest.trim().is_empty(), "trailing {rest:?}");
    }

    #[test]
    fn svg_is_balanced_escaped_and_draws_one_polyline_per_series() {
        let fast = one_to_thousand_us();
        let slow = tailed(10_000, 20e3, 0.4);
        let empty = new_hist();
        let svg = svg(
            &[
                Series {
                    name: "fast & <loose>",
                    hist: &fast,
                },
                Series {
                    name: "slow",
                    hist: &slow,
                },
                Series {
                    name: "idle",
                    hist: &empty,
                },
            ],
            "p99 < 1 ms & \"done\"",
        );
        assert_well_formed(&svg);
        assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains("fast &amp; &lt;loose&gt;"), "{svg}");
        assert!(
            svg.contains("p99 &lt; 1 ms &amp; &quot;done&quot;"),
            "{svg}"
        );
        assert!(svg.contains("idle (no data)"), "{svg}");
        for label in [
            ">0%<",
            ">90%<",
            ">99%<",
            ">99.9%<",
            ">99.99%<",
            "Latency (ms)",
            "Percentile",
        ] {
            assert!(svg.contains(label), "no {label:?}");
        }
    }

    #[test]
    fn svg_without_series_says_no_data() {
        let svg = svg(&[], "nothing");
        assert_well_formed(&svg);
        assert!(svg.contains(">no data<"));
        assert!(!svg.contains("<polyline"));
    }

    /// Decodes a PNG, returning its size and RGB pixels.
    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(bytes);
        let mut reader = decoder.read_info().expect("PNG header");
        let mut buf = vec![0; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut buf).expect("PNG frame");
        assert_eq!(frame.color_type, png::ColorType::Rgb);
        buf.truncate(frame.buffer_size());
        (frame.width, frame.height, buf)
    }

    #[test]
    fn png_decodes_to_the_image_size_with_series_colours() {
        let fast = one_to_thousand_us();
        let slow = tailed(10_000, 20e3, 0.4);
        let bytes = png(
            &[
                Series {
                    name: "fast",
                    hist: &fast,
                },
                Series {
                    name: "slow",
                    hist: &slow,
                },
            ],
            "latency",
        )
        .expect("render");
        assert!(bytes.starts_with(&[0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n']));
        let (w, h, pixels) = decode(&bytes);
        assert_eq!((w as usize, h as usize), (IMAGE_W, IMAGE_H));
        for colour in &PALETTE[..2] {
            let n = pixels.chunks_exact(3).filter(|px| px == colour).count();
            assert!(n > 500, "only {n} pixels of {colour:?}");
        }
    }

    #[test]
    fn png_without_data_still_renders() {
        let empty = new_hist();
        let bytes = png(
            &[Series {
                name: "idle",
                hist: &empty,
            }],
            "",
        )
        .expect("render");
        let (w, h, _) = decode(&bytes);
        assert_eq!((w as usize, h as usize), (IMAGE_W, IMAGE_H));
    }

    #[test]
    fn font_covers_printable_ascii_and_falls_back() {
        assert_eq!(glyph('u'), glyph('µ'));
        assert_eq!(glyph('?'), glyph('\u{263a}'));
        assert_eq!(glyph(' '), &[0; GLYPH_H]);
        for c in '!'..='~' {
            assert!(glyph(c).iter().any(|&row| row != 0), "{c:?} is blank");
            assert!(
                glyph(c).iter().all(|&row| row < 1 << GLYPH_W),
                "{c:?} too wide"
            );
        }
    }

    #[test]
    fn write_plot_picks_the_format_by_extension() {
        let h = one_to_thousand_us();
        let series = [Series {
            name: "fast",
            hist: &h,
        }];
        let dir = std::env::temp_dir().join(format!("skiff-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let svg_path = dir.join("out.SVG");
        write_plot(&svg_path, &series, "t").expect("svg");
        let text = std::fs::read_to_string(&svg_path).expect("read svg");
        assert!(text.starts_with("<svg"));
        let png_path = dir.join("out.png");
        write_plot(&png_path, &series, "t").expect("png");
        assert!(std::fs::read(&png_path)
            .expect("read png")
            .starts_with(b"\x89PNG"));

        let err = write_plot(&dir.join("out.jpg"), &series, "t").expect_err("jpg");
        let msg = format!("{err:#}");
        assert!(
            msg.contains(".svg") && msg.contains(".png") && msg.contains("out.jpg"),
            "{msg}"
        );
        assert!(!dir.join("out.jpg").exists());

        let missing = dir.join("no-such-dir").join("out.svg");
        let err = write_plot(&missing, &series, "t").expect_err("missing dir");
        assert!(
            format!("{err:#}").contains(&missing.display().to_string()),
            "{err:#}"
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    /// Renders /tmp/plot-sample.{png,svg} and prints the table and terminal chart, to look at:
    /// `cargo test -p skiff --bins plot::tests::render_sample -- --ignored --nocapture`.
    #[test]
    #[ignore = "writes sample files to /tmp for a person to look at"]
    fn render_sample() {
        let loopback = tailed(1_000_000, 8e3, 0.25);
        let veth = tailed(100_000, 20e3, 0.35);
        let fixed = one_to_thousand_us();
        let empty = new_hist();
        let series = [
            Series {
                name: "loopback",
                hist: &loopback,
            },
            Series {
                name: "veth & xdp",
                hist: &veth,
            },
            Series {
                name: "1..1000 µs",
                hist: &fixed,
            },
            Series {
                name: "idle",
                hist: &empty,
            },
        ];
        let title = "skiff latency: loopback vs veth";
        write_plot(Path::new("/tmp/plot-sample.png"), &series, title).expect("png");
        write_plot(Path::new("/tmp/plot-sample.svg"), &series, title).expect("svg");
        println!("{}", table(&series));
        println!("{}", terminal_chart(&series, 80, 20));
    }
}
