//! Latency output shared by `skiff sink` and `skiff ping`: the interval log as the run
//! goes, the `.hgrm` and plot files at the end, the JSON fields, and the terminal table
//! and chart.

use std::{
    fs::File,
    io::BufWriter,
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};
use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use skiff_engine::latency::{
    collect::{BadProbes, Collector, StreamLatencyReport},
    hist::{IntervalLog, LatencySummary},
    tracker::SeqCounts,
};

use crate::{
    common::parse_duration,
    plot::{self, Series},
};

/// Latency output flags.
#[derive(Debug, Args, Clone)]
pub struct LatencyArgs {
    /// Write the HdrHistogram interval log (V2, compressed; one line per interval and
    /// stream, tagged with the stream's name; untagged lines are the total). Readable by
    /// `skiff hist` and by the HdrHistogram tools of other languages.
    #[arg(long, value_name = "FILE")]
    pub hist_log: Option<PathBuf>,
    /// Write the total's percentile distribution (HdrHistogram `.hgrm` text, in µs).
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<PathBuf>,
    /// Write a percentile plot, one line per stream: FILE.svg or FILE.png.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Length of the log's intervals (and of the progress lines' latency figures).
    #[arg(long, default_value = "1s")]
    pub interval: String,
    /// A probe slower than this is counted late (still recorded; RFC 2680 would call it
    /// lost).
    #[arg(long, default_value = "1s")]
    pub late_after: String,
}

/// What a latency run reports in JSON, at the top level of `sink` and `ping`.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyJson {
    /// How the latency is measured: one-way on one host's shared clock, or round trip.
    pub measurement: &'static str,
    /// Probes received (duplicates included).
    pub probes: u64,
    /// Latency from the probes' actual transmit time.
    pub latency_ns: LatencySummary,
    /// Latency from their scheduled send time (coordinated omission corrected), if the
    /// sender had a rate schedule.
    pub latency_sched_ns: Option<LatencySummary>,
    /// Sequence counts of all streams.
    #[serde(flatten)]
    pub counts: SeqCounts,
    /// Per stream.
    pub latency_streams: Vec<StreamLatencyReport>,
    /// Frames with the probe signature that failed a check (never recorded as latency).
    pub bad_probes: BadProbes,
    /// Probes that arrived before they were sent (clocks not shared).
    pub clock_skewed: u64,
    /// Latencies above 100 s, recorded as 100 s.
    pub clamped: u64,
    /// Probes of senders beyond the collector's limit (counted, not tracked).
    pub untracked: u64,
}

/// The run's latency outputs.
pub struct LatencyOut {
    args: LatencyArgs,
    log: Option<IntervalLog<BufWriter<File>>>,
    /// Interval length.
    pub interval: Duration,
    /// Late threshold, ns.
    pub late_ns: u64,
    last_cut: f64,
    /// The last complete interval's total, for progress lines.
    pub last_interval: Option<LatencySummary>,
}

impl LatencyOut {
    /// Checks the flags and opens the log.
    pub fn open(args: &LatencyArgs, comment: &str) -> Result<Self> {
        let interval = parse_duration(&args.interval).context("--interval")?;
        if interval < Duration::from_millis(10) {
            anyhow::bail!(
                "--interval {:?} is too short (at least 10ms)",
                args.interval
            );
        }
        let late = parse_duration(&args.late_after).context("--late-after")?;
        if let Some(p) = &args.plot {
            // Refused before the run, not after it.
            let ext = p
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            if !matches!(ext.as_deref(), Some("svg" | "png")) {
                anyhow::bail!("--plot {}: the file must end in .svg or .png", p.display());
            }
        }
        let log = match &args.hist_log {
            Some(p) => {
                let f = File::create(p)
                    .with_context(|| format!("creating the histogram log {}", p.display()))?;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                Some(
                    IntervalLog::new(BufWriter::new(f), now, Some(comment))
                        .with_context(|| format!("writing {}", p.display()))?,
                )
            }
            None => None,
        };
        Ok(LatencyOut {
            args: args.clone(),
            log,
            interval,
            late_ns: late.as_nanos().min(u128::from(u64::MAX)) as u64,
            last_cut: 0.0,
            last_interval: None,
        })
    }

    /// Cuts an interval at `t_s` seconds into the run: writes it to the log, keeps its
    /// total for the progress line.
    pub fn cut(&mut self, c: &mut Collector, t_s: f64) -> Result<()> {
        let iv = c.take_intervals();
        let len = (t_s - self.last_cut).max(0.0);
        for (tag, h) in &iv {
            if tag.is_none() {
                self.last_interval = Some(LatencySummary::of(h));
            }
            if let Some(log) = &mut self.log {
                log.write(tag.as_deref(), self.last_cut, len, h)
                    .context("writing the histogram log")?;
            }
        }
        self.last_cut = t_s;
        Ok(())
    }

    /// Ends the run: the last interval, the files; returns the JSON block and the
    /// histograms (name, actual, scheduled) for the terminal.
    pub fn finish(
        mut self,
        c: &mut Collector,
        t_s: f64,
        measurement: &'static str,
        expected: impl Fn(u32, u16) -> Option<u64>,
    ) -> Result<(LatencyJson, Hists)> {
        self.cut(c, t_s)?;
        if let Some(log) = self.log.take() {
            let w = log.finish().context("writing the histogram log")?;
            w.into_inner()
                .map_err(|e| e.into_error())
                .context("writing the histogram log")?;
        }
        let (streams, total) = c.report(expected);
        let hists = Hists {
            per_stream: c.histograms(),
        };
        let all = hists.total();
        if let Some(p) = &self.args.hgrm {
            let mut f = BufWriter::new(
                File::create(p).with_context(|| format!("creating {}", p.display()))?,
            );
            skiff_engine::latency::hist::write_hgrm(&mut f, &all.0, 1000.0)
                .and_then(|_| std::io::Write::flush(&mut f))
                .with_context(|| format!("writing {}", p.display()))?;
        }
        if let Some(p) = &self.args.plot {
            let series = hists.series();
            plot::write_plot(p, &series, &format!("skiff latency ({measurement})"))?;
        }
        Ok((
            LatencyJson {
                measurement,
                probes: total.counts.received,
                latency_ns: total.latency_ns,
                latency_sched_ns: total.latency_sched_ns,
                counts: total.counts,
                latency_streams: streams,
                bad_probes: c.bad,
                clock_skewed: c.clock_skewed,
                clamped: c.clamped,
                untracked: c.untracked,
            },
            hists,
        ))
    }
}

/// A run's histograms, for the terminal.
#[derive(Debug, Default)]
pub struct Hists {
    /// (name, from actual send, from scheduled send).
    pub per_stream: Vec<(String, Histogram<u64>, Histogram<u64>)>,
}

impl Hists {
    /// All streams added.
    pub fn total(&self) -> (Histogram<u64>, Histogram<u64>) {
        let mut a = skiff_engine::latency::hist::new_hist();
        let mut b = skiff_engine::latency::hist::new_hist();
        for (_, x, y) in &self.per_stream {
            let _ = a.add(x);
            let _ = b.add(y);
        }
        (a, b)
    }

    /// One series per stream (actual send time).
    pub fn series(&self) -> Vec<Series<'_>> {
        self.per_stream
            .iter()
            .map(|(n, h, _)| Series { name: n, hist: h })
            .collect()
    }
}

/// Prints the table (per stream, the total, and the schedule-based total when there is
/// one) and the percentile chart.
pub fn print_terminal(j: &LatencyJson, h: &Hists, what: &str) {
    if j.probes == 0 {
        println!("  latency    no probes received");
        return;
    }
    let (total, sched) = h.total();
    let mut rows = h.series();
    if rows.len() > 1 {
        rows.push(Series {
            name: "total",
            hist: &total,
        });
    }
    let with_sched = !sched.is_empty();
    if with_sched {
        rows.push(Series {
            name: "total@sched",
            hist: &sched,
        });
    }
    println!("  latency    {what}, ns unless marked:");
    for line in plot::table(&rows).lines() {
        println!("{line}");
    }
    if with_sched {
        println!(
            "    (@sched: from each probe's scheduled send time, coordinated omission included)"
        );
    }
    let c = &j.counts;
    println!(
        "  probes     received {}  lost {}  reordered {}  duplicated {}  late {}  bad {}{}",
        c.received,
        c.lost,
        c.reordered,
        c.duplicated,
        c.late,
        j.bad_probes.total(),
        if j.clock_skewed > 0 {
            format!("  clock_skewed {}", j.clock_skewed)
        } else {
            String::new()
        }
    );
    let chart_rows = h.series();
    print!("{}", plot::terminal_chart(&chart_rows, 80, 16));
}

/// The progress line's latency part: the last interval's p50/p99/max.
pub fn progress_part(last: &Option<LatencySummary>) -> String {
    match last {
        Some(s) if s.count > 0 => format!(
            "  lat p50 {} p99 {} max {}",
            plot::fmt_latency(s.p50 as f64, " "),
            plot::fmt_latency(s.p99 as f64, " "),
            plot::fmt_latency(s.max as f64, " ")
        ),
        _ => String::new(),
    }
}
