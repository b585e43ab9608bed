//! `skiff hist`: reads HdrHistogram interval logs (skiff's, or any HdrHistogram writer's:
//! Java, C, Go, Python, Rust) and shows, merges or plots them.
//!
//! A log holds interval histograms of latency in nanoseconds. Untagged intervals are the
//! run's total over all streams and are named `total`; a tagged interval belongs to the
//! stream its tag names. Every command first adds up, per name, all intervals of all the
//! logs given (HdrHistogram addition is exact: the sum of two histograms is the histogram
//! of both value sets), so `skiff hist show a.hlog b.hlog` reports what one sink receiving
//! everything would have measured.
//!
//! - `show`: per input, its interval count and time span; then a table (count, min, p50 ..
//!   p99.99, max, mean, stdev) and a terminal percentile chart, one row / line per name;
//!   `--json` for a machine-readable report, `--hgrm FILE` for the percentile distribution
//!   text that HdrHistogram's online plotter reads.
//! - `merge`: the sums as a new interval log, one interval per name spanning from its
//!   earliest start to its latest end (e.g. the logs of several generator hosts into one).
//! - `plot`: the percentile distribution of each name as an SVG or PNG.
//!
//! Non-goals: time-windowed views of a log (every interval is added) and coordinated
//! omission correction (the recorder's job, where the send schedule is known).

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use serde::Serialize;
use skiff_engine::latency::hist::{
    format_utc, read_log_file, write_hgrm, IntervalLog, LatencySummary, LogInterval, MAX_COUNT,
};

use crate::plot::{self, Series};

/// Name of the untagged intervals: the run's total over all streams.
pub const TOTAL: &str = "total";
/// `--hgrm` values are divided by this: ns to µs, the unit latency plots are usually read
/// in (the plotter's files carry no unit).
const HGRM_SCALE: f64 = 1000.0;
/// Terminal chart size when `COLUMNS` does not say: the classic 80 columns, and 20 rows,
/// enough for the 4-6 latency ticks with room between them.
const CHART_WIDTH: usize = 80;
/// Rows of the terminal chart's plot area.
const CHART_HEIGHT: usize = 20;
/// Widest chart drawn, whatever `COLUMNS` says (beyond it the percentile axis only
/// stretches).
const CHART_MAX_WIDTH: usize = 160;

#[derive(Debug, Subcommand)]
pub enum HistCmd {
    /// Print the table and the terminal percentile chart of one or more logs (all intervals
    /// added up per tag; untagged intervals, the run's total, are named "total").
    Show(ShowArgs),
    /// Merge logs (e.g. from several generator hosts) into one: per tag, all intervals
    /// added.
    Merge(MergeArgs),
    /// Plot the percentile distribution to FILE.svg or FILE.png, one line per tag (per
    /// stream).
    Plot(PlotArgs),
}

#[derive(Debug, Args, Clone)]
pub struct ShowArgs {
    /// HdrHistogram interval logs to read (values in nanoseconds).
    #[arg(required = true, value_name = "LOG")]
    pub logs: Vec<PathBuf>,
    /// Only this tag (a stream name, or "total" for the untagged intervals); repeatable.
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// Print JSON: {"histograms": {NAME: summary in ns}, "intervals": N, "inputs": [...]}.
    #[arg(long)]
    pub json: bool,
    /// Also write the percentile distribution (.hgrm, values in µs) to FILE, for
    /// HdrHistogram's online plotter: of the one tag shown, or of "total" when several are.
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct MergeArgs {
    /// HdrHistogram interval logs to merge.
    #[arg(required = true, value_name = "LOG")]
    pub logs: Vec<PathBuf>,
    /// Interval log to write: per tag one interval, from its earliest start to its latest
    /// end.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Print the merged summaries as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct PlotArgs {
    /// HdrHistogram interval logs to plot.
    #[arg(required = true, value_name = "LOG")]
    pub logs: Vec<PathBuf>,
    /// Image to write, by extension: FILE.svg or FILE.png.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Only this tag (a stream name, or "total"); repeatable.
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// Title above the plot (default: the names of the logs).
    #[arg(long)]
    pub title: Option<String>,
}

pub fn run(cmd: HistCmd) -> Result<()> {
    match cmd {
        HistCmd::Show(a) => show(&a),
        HistCmd::Merge(a) => merge(&a),
        HistCmd::Plot(a) => plot_cmd(&a),
    }
}

/// One input log, read.
#[derive(Debug)]
struct Input {
    path: String,
    intervals: Vec<LogInterval>,
}

/// All intervals of one name (tag) from every input, added up.
#[derive(Debug)]
pub struct Merged {
    hist: Histogram<u64>,
    /// Earliest start, seconds (since the epoch for logs with a StartTime).
    start_s: f64,
    /// Latest end.
    end_s: f64,
    pub intervals: usize,
}

/// Merged histograms by tag; `None` (the untagged total) sorts first.
pub type ByTag = BTreeMap<Option<String>, Merged>;

/// What an input held, as `show` reports it.
#[derive(Debug, Serialize)]
struct InputReport {
    path: String,
    intervals: usize,
    /// Earliest interval start, seconds.
    start_s: f64,
    /// Latest interval end, seconds.
    end_s: f64,
    /// `start_s` as UTC date and time.
    start_utc: String,
    /// Names found, "total" first.
    names: Vec<String>,
}

/// The JSON of `show` and `merge`.
#[derive(Debug, Serialize)]
struct Report {
    /// Summary per name, nanoseconds.
    histograms: BTreeMap<String, LatencySummary>,
    /// Intervals added up.
    intervals: usize,
    inputs: Vec<InputReport>,
}

fn name_of(tag: &Option<String>) -> &str {
    tag.as_deref().unwrap_or(TOTAL)
}

fn read_inputs(paths: &[PathBuf]) -> Result<Vec<Input>> {
    paths
        .iter()
        .map(|p| {
            Ok(Input {
                path: p.display().to_string(),
                intervals: read_log_file(p)?,
            })
        })
        .collect()
}

/// Adds up the intervals of `inputs` per tag, keeping only the names in `only` (all when
/// empty). Fails if nothing is left, naming what there is.
fn merge_inputs(inputs: &[Input], only: &[String]) -> Result<ByTag> {
    let mut by: ByTag = BTreeMap::new();
    for input in inputs {
        for (i, iv) in input.intervals.iter().enumerate() {
            if !only.is_empty() && !only.iter().any(|t| t == name_of(&iv.tag)) {
                continue;
            }
            let end_s = iv.start_s + iv.duration_s;
            match by.get_mut(&iv.tag) {
                None => {
                    let mut hist = iv.hist.clone();
                    // Intervals of other writers may reach further than this one's bounds.
                    hist.auto(true);
                    by.insert(
                        iv.tag.clone(),
                        Merged {
                            hist,
                            start_s: iv.start_s,
                            end_s,
                            intervals: 1,
                        },
                    );
                }
                Some(m) => {
                    let what =
                        || format!("{}: interval {} ({})", input.path, i + 1, name_of(&iv.tag));
                    if m.hist.len().saturating_add(iv.hist.len()) > MAX_COUNT {
                        bail!("{}: more than {MAX_COUNT} values in all", what());
                    }
                    m.hist
                        .add(&iv.hist)
                        .map_err(|e| anyhow::anyhow!("{}: cannot be added: {e:?}", what()))?;
                    m.start_s = m.start_s.min(iv.start_s);
                    m.end_s = m.end_s.max(end_s);
                    m.intervals += 1;
                }
            }
        }
    }
    if by.is_empty() {
        let mut have: Vec<&str> = inputs
            .iter()
            .flat_map(|i| i.intervals.iter().map(|iv| name_of(&iv.tag)))
            .collect();
        have.sort_unstable();
        have.dedup();
        bail!(
            "no intervals tagged {} in {} (tags there: {})",
            only.join(" or "),
            inputs
                .iter()
                .map(|i| i.path.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            have.join(", ")
        );
    }
    Ok(by)
}

/// Logs read and added up per tag: what `show`, `merge` and `plot` print (and the demo).
pub fn load(paths: &[PathBuf]) -> Result<ByTag> {
    merge_inputs(&read_inputs(paths)?, &[])
}

/// One series per tag ("total" for the untagged intervals).
pub fn series(by: &ByTag) -> Vec<Series<'_>> {
    by.iter()
        .map(|(tag, m)| Series {
            name: name_of(tag),
            hist: &m.hist,
        })
        .collect()
}

fn input_report(input: &Input) -> InputReport {
    let start_s = input
        .intervals
        .iter()
        .map(|iv| iv.start_s)
        .fold(f64::INFINITY, f64::min);
    let end_s = input
        .intervals
        .iter()
        .map(|iv| iv.start_s + iv.duration_s)
        .fold(f64::NEG_INFINITY, f64::max);
    let mut tags: Vec<&Option<String>> = input.intervals.iter().map(|iv| &iv.tag).collect();
    tags.sort_unstable();
    tags.dedup();
    InputReport {
        path: input.path.clone(),
        intervals: input.intervals.len(),
        start_s,
        end_s,
        start_utc: format_utc(start_s),
        names: tags.into_iter().map(|t| name_of(t).to_owned()).collect(),
    }
}

fn report(inputs: &[Input], by: &ByTag) -> Report {
    Report {
        histograms: by
            .iter()
            .map(|(tag, m)| (name_of(tag).to_owned(), LatencySummary::of(&m.hist)))
            .collect(),
        intervals: by.values().map(|m| m.intervals).sum(),
        inputs: inputs.iter().map(input_report).collect(),
    }
}

/// "a.hlog: 12 intervals, 2023-11-14T22:13:20.500Z + 12.000 s (total, s1)".
fn input_line(r: &InputReport) -> String {
    format!(
        "{}: {} interval{}, {} + {:.3} s ({})",
        r.path,
        r.intervals,
        if r.intervals == 1 { "" } else { "s" },
        r.start_utc,
        r.end_s - r.start_s,
        r.names.join(", ")
    )
}

/// Chart width: `COLUMNS` when the shell exports it, else 80.
fn chart_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c >= 40)
        .map_or(CHART_WIDTH, |c| c.min(CHART_MAX_WIDTH))
}

/// The histogram `--hgrm` writes: the only one, else the total.
fn hgrm_choice(by: &ByTag) -> Result<(&str, &Histogram<u64>)> {
    if by.len() == 1 {
        let (tag, m) = by.iter().next().expect("one entry");
        return Ok((name_of(tag), &m.hist));
    }
    match by.get(&None) {
        Some(m) => Ok((TOTAL, &m.hist)),
        None => bail!(
            "--hgrm writes one histogram and there are {} without a total ({}): choose one \
             with --tag",
            by.len(),
            by.keys().map(name_of).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn write_hgrm_file(path: &Path, h: &Histogram<u64>) -> Result<()> {
    let write = || -> std::io::Result<()> {
        let mut w = BufWriter::new(File::create(path)?);
        write_hgrm(&mut w, h, HGRM_SCALE)?;
        w.flush()
    };
    write().with_context(|| format!("writing {}", path.display()))
}

fn show(a: &ShowArgs) -> Result<()> {
    let inputs = read_inputs(&a.logs)?;
    let by = merge_inputs(&inputs, &a.tags)?;
    let hgrm = match &a.hgrm {
        Some(path) => {
            let (name, h) = hgrm_choice(&by)?;
            write_hgrm_file(path, h)?;
            Some((name, path))
        }
        None => None,
    };
    let rep = report(&inputs, &by);
    if a.json {
        println!("{}", serde_json::to_string(&rep)?);
        return Ok(());
    }
    for r in &rep.inputs {
        println!("{}", input_line(r));
    }
    let s = series(&by);
    println!();
    print!("{}", plot::table(&s));
    println!();
    print!("{}", plot::terminal_chart(&s, chart_width(), CHART_HEIGHT));
    if let Some((name, path)) = hgrm {
        println!(
            "percentile distribution of {name} (µs) written to {}",
            path.display()
        );
    }
    Ok(())
}

/// Writes `by` as an interval log: StartTime = the earliest start of all, then per name
/// one interval from its earliest start to its latest end, "total" untagged and first.
fn write_merged<W: Write>(w: W, by: &ByTag, sources: &[String]) -> std::io::Result<W> {
    let start = by
        .values()
        .map(|m| m.start_s)
        .fold(f64::INFINITY, f64::min)
        .max(0.0);
    let comment = format!("skiff hist merge of {}", sources.join(" "));
    let mut log = IntervalLog::new(w, start, Some(&comment))?;
    for (tag, m) in by {
        log.write(
            tag.as_deref(),
            (m.start_s - start).max(0.0),
            (m.end_s - m.start_s).max(0.0),
            &m.hist,
        )?;
    }
    log.finish()
}

fn merge(a: &MergeArgs) -> Result<()> {
    let inputs = read_inputs(&a.logs)?;
    let by = merge_inputs(&inputs, &[])?;
    let sources: Vec<String> = inputs.iter().map(|i| i.path.clone()).collect();
    let write = || -> std::io::Result<()> {
        let f = File::create(&a.out)?;
        write_merged(BufWriter::new(f), &by, &sources)?;
        Ok(())
    };
    write().with_context(|| format!("writing {}", a.out.display()))?;
    if a.json {
        println!("{}", serde_json::to_string(&report(&inputs, &by))?);
    } else {
        let n: usize = by.values().map(|m| m.intervals).sum();
        println!(
            "merged {n} interval{} of {} log{} into {} ({})",
            if n == 1 { "" } else { "s" },
            inputs.len(),
            if inputs.len() == 1 { "" } else { "s" },
            a.out.display(),
            by.keys().map(name_of).collect::<Vec<_>>().join(", ")
        );
        println!();
        print!("{}", plot::table(&series(&by)));
    }
    Ok(())
}

fn plot_cmd(a: &PlotArgs) -> Result<()> {
    let ext = a
        .out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if !matches!(ext.as_deref(), Some("svg" | "png")) {
        bail!(
            "--out {}: the plot is written as .svg or .png, by extension",
            a.out.display()
        );
    }
    let inputs = read_inputs(&a.logs)?;
    let by = merge_inputs(&inputs, &a.tags)?;
    let title = a.title.clone().unwrap_or_else(|| {
        let names: Vec<String> = a
            .logs
            .iter()
            .map(|p| {
                p.file_name()
                    .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
            })
            .collect();
        format!("Latency by percentile: {}", names.join(", "))
    });
    plot::write_plot(&a.out, &series(&by), &title)?;
    println!(
        "{} ({}) written to {}",
        title,
        by.keys().map(name_of).collect::<Vec<_>>().join(", "),
        a.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};
    use skiff_engine::latency::hist::{new_hist, read_log, record};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: HistCmd,
    }

    /// A directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let p = std::env::temp_dir().join(format!("skiff-hist-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).expect("create temp dir");
            TempDir(p)
        }
        fn path(&self, f: &str) -> PathBuf {
            self.0.join(f)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// `n` latencies from a seeded LCG over 6 decades, different per seed.
    fn values(seed: u64, n: usize) -> Vec<u64> {
        let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let e = (x >> 11) as f64 / (1u64 << 53) as f64 * 6.0;
                10f64.powf(e) as u64 * 50
            })
            .collect()
    }

    fn hist_of(vs: &[&[u64]]) -> Histogram<u64> {
        let mut h = new_hist();
        for v in vs.iter().flat_map(|s| s.iter()) {
            record(&mut h, *v);
        }
        h
    }

    /// Writes a log of `(tag, start offset, values)` intervals of 1 s from `start`.
    fn write_log(path: &Path, start: f64, intervals: &[(Option<&str>, f64, &[u64])]) {
        let f = File::create(path).expect("create log");
        let mut log = IntervalLog::new(BufWriter::new(f), start, None).expect("log");
        for (tag, off, vs) in intervals {
            log.write(*tag, *off, 1.0, &hist_of(&[vs])).expect("write");
        }
        log.finish().expect("finish");
    }

    fn assert_same(a: &Histogram<u64>, b: &Histogram<u64>) {
        assert_eq!(a.len(), b.len());
        assert_eq!(LatencySummary::of(a), LatencySummary::of(b));
        for i in 0..=10_000 {
            let q = f64::from(i) / 10_000.0;
            assert_eq!(
                a.value_at_quantile(q),
                b.value_at_quantile(q),
                "quantile {q}"
            );
        }
        let recorded = |h: &Histogram<u64>| -> Vec<(u64, u64)> {
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect()
        };
        assert_eq!(recorded(a), recorded(b));
    }

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
        let c = Cli::try_parse_from(["t", "merge", "a", "b", "--out", "m.hlog", "--json"])
            .expect("merge parses");
        assert!(matches!(c.cmd, HistCmd::Merge(ref m) if m.logs.len() == 2 && m.json));
        let c = Cli::try_parse_from(["t", "show", "a", "--tag", "s1", "--tag", "total"])
            .expect("show parses");
        assert!(matches!(c.cmd, HistCmd::Show(ref s) if s.tags == ["s1", "total"]));
        assert!(
            Cli::try_parse_from(["t", "merge", "a"]).is_err(),
            "--out is required"
        );
        assert!(
            Cli::try_parse_from(["t", "show"]).is_err(),
            "a log is required"
        );
    }

    #[test]
    fn merge_of_two_logs_equals_one_histogram_of_both_value_sets() {
        let dir = TempDir::new("merge");
        let (a_total, a_s1, b_total, b_s1, b_s2) = (
            values(1, 5000),
            values(2, 700),
            values(3, 3000),
            values(4, 900),
            values(5, 1234),
        );
        // Host a: two 1 s intervals from t0; host b: starts 10 s later.
        let t0 = 1_700_000_000.0;
        let (a_t1, a_t2) = a_total.split_at(2000);
        write_log(
            &dir.path("a.hlog"),
            t0,
            &[
                (None, 0.0, a_t1),
                (Some("s1"), 0.0, &a_s1),
                (None, 1.0, a_t2),
            ],
        );
        write_log(
            &dir.path("b.hlog"),
            t0 + 10.0,
            &[
                (None, 0.0, &b_total),
                (Some("s1"), 0.0, &b_s1),
                (Some("s2"), 2.0, &b_s2),
            ],
        );
        let out = dir.path("m.hlog");
        run(HistCmd::Merge(MergeArgs {
            logs: vec![dir.path("a.hlog"), dir.path("b.hlog")],
            out: out.clone(),
            json: true,
        }))
        .expect("merge");

        let merged = read_log_file(&out).expect("merged log reads back");
        assert_eq!(merged.len(), 3);
        let want: [(Option<&str>, Histogram<u64>, f64, f64); 3] = [
            (None, hist_of(&[&a_total, &b_total]), t0, 11.0),
            (Some("s1"), hist_of(&[&a_s1, &b_s1]), t0, 11.0),
            (Some("s2"), hist_of(&[&b_s2]), t0 + 12.0, 1.0),
        ];
        for (iv, (tag, h, start, len)) in merged.iter().zip(&want) {
            assert_eq!(iv.tag.as_deref(), *tag);
            assert_same(&iv.hist, h);
            assert!(
                (iv.start_s - start).abs() < 1e-3,
                "{} vs {start}",
                iv.start_s
            );
            assert!(
                (iv.duration_s - len).abs() < 1e-3,
                "{} vs {len}",
                iv.duration_s
            );
        }
        let text = std::fs::read_to_string(&out).expect("read");
        assert!(text.starts_with(&format!(
            "#skiff hist merge of {}",
            dir.path("a.hlog").display()
        )));

        // show's report over the same two logs gives the same sums.
        let inputs = read_inputs(&[dir.path("a.hlog"), dir.path("b.hlog")]).expect("read");
        let by = merge_inputs(&inputs, &[]).expect("merge");
        let rep = report(&inputs, &by);
        assert_eq!(rep.intervals, 6);
        assert_eq!(rep.histograms["total"], LatencySummary::of(&want[0].1));
        assert_eq!(rep.histograms["s1"], LatencySummary::of(&want[1].1));
        assert_eq!(rep.inputs[0].intervals, 3);
        assert_eq!(rep.inputs[0].names, ["total", "s1"]);
        assert_eq!(rep.inputs[1].start_utc, "2023-11-14T22:13:30.000Z");
        assert!((rep.inputs[1].end_s - rep.inputs[1].start_s - 3.0).abs() < 1e-9);
        let json: serde_json::Value = serde_json::to_value(&rep).expect("json");
        assert_eq!(json["histograms"]["s2"]["count"], 1234);
        assert_eq!(json["intervals"], 6);
        assert!(json["histograms"]["total"]["p9999"].is_u64());
    }

    #[test]
    fn merging_a_merged_log_again_changes_nothing() {
        let dir = TempDir::new("idem");
        write_log(
            &dir.path("a.hlog"),
            100.0,
            &[
                (None, 0.0, &values(8, 100)),
                (Some("x"), 1.0, &values(9, 50)),
            ],
        );
        let m1 = dir.path("m1.hlog");
        let m2 = dir.path("m2.hlog");
        for (inp, out) in [(dir.path("a.hlog"), &m1), (m1.clone(), &m2)] {
            run(HistCmd::Merge(MergeArgs {
                logs: vec![inp],
                out: out.clone(),
                json: true,
            }))
            .expect("merge");
        }
        let (a, b) = (
            read_log_file(&m1).expect("m1"),
            read_log_file(&m2).expect("m2"),
        );
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.tag, y.tag);
            assert_same(&x.hist, &y.hist);
            assert!((x.start_s - y.start_s).abs() < 1e-3);
        }
    }

    #[test]
    fn tag_selection_and_hgrm() {
        let dir = TempDir::new("tags");
        let log = dir.path("a.hlog");
        write_log(
            &log,
            1_700_000_000.0,
            &[
                (None, 0.0, &values(1, 300)),
                (Some("s1"), 0.0, &values(2, 200)),
            ],
        );
        let inputs = read_inputs(std::slice::from_ref(&log)).expect("read");
        let only_s1 = merge_inputs(&inputs, &["s1".to_owned()]).expect("s1");
        assert_eq!(only_s1.keys().collect::<Vec<_>>(), [&Some("s1".to_owned())]);
        let only_total = merge_inputs(&inputs, &["total".to_owned()]).expect("total");
        assert_eq!(only_total.keys().collect::<Vec<_>>(), [&None]);
        let e = merge_inputs(&inputs, &["nope".to_owned()]).expect_err("no such tag");
        assert!(e.to_string().contains("tags there: s1, total"), "{e}");

        let hgrm = dir.path("a.hgrm");
        run(HistCmd::Show(ShowArgs {
            logs: vec![log.clone()],
            tags: vec!["s1".into()],
            json: true,
            hgrm: Some(hgrm.clone()),
        }))
        .expect("show");
        let text = std::fs::read_to_string(&hgrm).expect("hgrm");
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
        assert!(text.contains("Total count    =          200]"), "{text}");
        // Several tags: --hgrm takes the total.
        let all = merge_inputs(&inputs, &[]).expect("all");
        let (name, h) = hgrm_choice(&all).expect("choice");
        assert_eq!((name, h.len()), ("total", 300));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let dir = TempDir::new("errors");
        let missing = dir.path("missing.hlog");
        let e = run(HistCmd::Show(ShowArgs {
            logs: vec![missing.clone()],
            tags: vec![],
            json: false,
            hgrm: None,
        }))
        .expect_err("missing file");
        assert!(
            format!("{e:#}").contains(&missing.display().to_string()),
            "{e:#}"
        );

        let bad = dir.path("bad.hlog");
        write_log(&bad, 0.0, &[(None, 0.0, &values(1, 10))]);
        let mut text = std::fs::read_to_string(&bad).expect("read");
        text.push_str("1.000,1.000,0.1,HISTFAAAAAAA\n");
        std::fs::write(&bad, text).expect("write");
        let e = run(HistCmd::Merge(MergeArgs {
            logs: vec![bad.clone()],
            out: dir.path("out.hlog"),
            json: false,
        }))
        .expect_err("bad line");
        let msg = format!("{e:#}");
        assert!(msg.starts_with(&format!("{}:6: ", bad.display())), "{msg}");
        assert!(
            !dir.path("out.hlog").exists(),
            "nothing written on a bad input"
        );

        let empty = dir.path("empty.hlog");
        std::fs::write(&empty, "").expect("write");
        let e = read_inputs(std::slice::from_ref(&empty)).expect_err("empty");
        assert!(format!("{e:#}").contains("not a histogram log"), "{e:#}");

        let e = run(HistCmd::Plot(PlotArgs {
            logs: vec![bad],
            out: dir.path("x.jpg"),
            tags: vec![],
            title: None,
        }))
        .expect_err("jpg");
        assert!(format!("{e:#}").contains(".svg or .png"), "{e:#}");
    }

    #[test]
    fn plot_writes_svg() {
        let dir = TempDir::new("plot");
        let log = dir.path("a.hlog");
        write_log(
            &log,
            0.0,
            &[
                (None, 0.0, &values(1, 1000)),
                (Some("s1"), 0.0, &values(2, 500)),
            ],
        );
        let out = dir.path("p.svg");
        run(HistCmd::Plot(PlotArgs {
            logs: vec![log],
            out: out.clone(),
            tags: vec![],
            title: Some("t".into()),
        }))
        .expect("plot");
        let svg = std::fs::read_to_string(&out).expect("svg");
        assert!(svg.contains("<svg"), "{}", &svg[..svg.len().min(200)]);
    }

    #[test]
    fn merged_log_in_memory_round_trips() {
        let mut by = ByTag::new();
        let h = hist_of(&[&values(3, 400)]);
        by.insert(
            Some("v".into()),
            Merged {
                hist: h.clone(),
                start_s: 50.5,
                end_s: 60.5,
                intervals: 2,
            },
        );
        let bytes = write_merged(Vec::new(), &by, &["x".into()]).expect("write");
        let back = read_log(&bytes[..], "mem").expect("read");
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].tag.as_deref(), Some("v"));
        assert_eq!((back[0].start_s, back[0].duration_s), (50.5, 10.0));
        assert_same(&back[0].hist, &h);
    }
}
