//! Latency histograms: recording, summaries, the HdrHistogram interval log, and the
//! percentile distribution text (`.hgrm`).
//!
//! Values are nanoseconds. One [`Histogram<u64>`] per stream (and one for the run's total),
//! created by [`new_hist`]: 1 ns to 100 s at 3 significant digits, so any recorded value is
//! reported within 0.1 % (the bucket holding 1 234 567 ns is 1 024 ns wide) in 28 672
//! counters (224 KiB). A value outside the range is clamped and counted by the caller
//! ([`record`] says when), never dropped and never a reason to fail.
//!
//! ## The interval log
//!
//! [`IntervalLog`] writes what Java's `HistogramLogWriter` writes (and what the C, Go, Python,
//! Rust and JavaScript ports read): comment lines, a `StartTime` and a `BaseTime` header,
//! the legend, then one line per interval histogram, optionally tagged with the stream's
//! name:
//!
//! ```text
//! #skiff sink
//! #[Histogram log format version 1.3]
//! #[StartTime: 1700000000.123 (seconds since epoch), Tue Nov 14 22:13:20 UTC 2023]
//! #[BaseTime: 1700000000.123 (seconds since epoch)]
//! "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
//! 0.000,1.000,0.352,HISTFAAAADx4nAExAM7/HISTEwAAAAkAAAAAAAAAAwAAAAAAAAABAAAAF0h26AA/8AAAAAAAAKV9Av0EApUTAoXjBxE=
//! Tag=video,0.000,1.000,0.198,HISTFAAAACd4nJNpmSzMwMDAxgABzFCaEYjFPcpeMNh/gAhML2f6KcAEAG/sBlg=
//! ```
//!
//! Per interval: the start as an offset from `BaseTime` (s, 3 decimals), its length (s),
//! its largest value in milliseconds (ns / 10^6: Java's default "max value unit ratio" for
//! nanosecond values; the column is for people, readers ignore it), and the histogram in
//! the V2 encoding, zlib-compressed (cookie `0x1c849314`, hence the `HISTF` prefix of its
//! base64). `BaseTime` equals `StartTime`, so every reader takes the timestamps as offsets
//! without Java's "more than a year before StartTime" guess.
//!
//! [`read_log`] reads such logs back from any of those writers, tags kept, with absolute
//! start times so that logs of several runs or hosts can be ordered and merged. It never
//! panics on its input: anything that is not a well-formed log is a [`LogError`] naming the
//! input, the line and what was wrong.
//!
//! Non-goals: the V0/V1 encodings of old Java versions (V2 is what every current
//! implementation writes), and histograms of `f64` (`DoubleHistogram`).

use std::{
    fmt,
    fs::File,
    io::{self, BufRead, BufReader, Write},
    path::Path,
};

use hdrhistogram::{
    serialization::{Deserializer, Serializer, V2DeflateSerializer},
    Histogram,
};
use serde::{Deserialize, Serialize};

/// Lowest recordable latency: 1 ns.
pub const LOW_NS: u64 = 1;
/// Highest: 100 s (the issue asks for at least 10 s); larger values are clamped to it and
/// counted.
pub const HIGH_NS: u64 = 100_000_000_000;
/// 3 significant digits: values kept within 0.1 %.
pub const SIGFIG: u8 = 3;
/// What the interval log's `Interval_Max` column divides values by: 10^6, so that a
/// histogram of nanoseconds shows its maximum in milliseconds (Java's and Python's default).
pub const MAX_VALUE_UNIT_RATIO: f64 = 1e6;
/// Largest total count [`read_log`] accepts in one interval histogram: 2^62, some 1 400
/// years of samples at 100 Mpps. Bounding it keeps every cumulative count (and the sum of
/// a few thousand such intervals) inside `u64`, which hdrhistogram's percentile scan needs.
pub const MAX_COUNT: u64 = 1 << 62;
/// Version written in the `#[Histogram log format version ...]` comment (Java's current).
const LOG_FORMAT_VERSION: &str = "1.3";
/// The legend line.
const LEGEND: &str =
    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"";
/// Java's percentile output steps: 5 ticks per half distance to 100 % (its default, and
/// what every `.hgrm` in the wild uses).
const TICKS_PER_HALF_DISTANCE: u32 = 5;
/// Cookie of the zlib-compressed V2 encoding (V2 compressed base `0x1c849304` | word size
/// flag `0x10`).
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;
/// Cookie of the plain V2 encoding.
const V2_COOKIE: u32 = 0x1c84_9313;
/// Header bytes of the plain V2 encoding before its counts payload.
const V2_HEADER_LEN: usize = 40;
/// Java's reader takes interval timestamps as offsets from StartTime when they are more
/// than this many seconds (a year) before it.
const YEAR_S: f64 = 365.0 * 24.0 * 3600.0;

/// A histogram for nanosecond latencies: [`LOW_NS`] to [`HIGH_NS`] at [`SIGFIG`] digits,
/// without auto-resize (its memory is fixed; [`record`] clamps instead).
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(LOW_NS, HIGH_NS, SIGFIG)
        .expect("LOW_NS >= 1, HIGH_NS >= 2 * LOW_NS and SIGFIG <= 5 are valid bounds")
}

/// Records `v` nanoseconds: 0 is recorded as 1 ([`LOW_NS`]), anything above [`HIGH_NS`] as
/// [`HIGH_NS`]. Returns true if `v` was clamped down (the caller counts those). Never
/// fails: a count that would overflow saturates.
pub fn record(h: &mut Histogram<u64>, v: u64) -> bool {
    let clamped = v > HIGH_NS;
    h.saturating_record(v.clamp(LOW_NS, HIGH_NS));
    clamped
}

/// The numbers a report shows for one histogram, in the histogram's unit (ns).
///
/// Percentiles follow HdrHistogram's `value_at_quantile` (Java's `getValueAtPercentile`):
/// `pN` is the highest value equivalent to the smallest recorded value with at least
/// ⌈N/100 · count⌉ values at or below it, i.e. the upper end of the bucket holding the
/// nearest-rank sample, at most 0.1 % above it for [`SIGFIG`] = 3. `min` is the lowest and
/// `max` the highest value equivalent to the smallest and largest recorded values; `mean`
/// and `stdev` (population) weigh each bucket at its middle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of recorded values.
    pub count: u64,
    /// Smallest recorded value.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// 99.99th percentile.
    pub p9999: u64,
    /// Largest recorded value.
    pub max: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Standard deviation (population).
    pub stdev: f64,
}

impl LatencySummary {
    /// Summarises `h`; all zero for an empty histogram.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        LatencySummary {
            count: h.len(),
            min: h.min(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
            mean: h.mean(),
            stdev: h.stdev(),
        }
    }
}

/// Writer of the standard HdrHistogram interval log (see the [module docs](self)): V2
/// compressed histograms, one line per interval, as Java's `HistogramLogWriter` writes
/// them.
///
/// It keeps no buffer of its own (each line goes to `W` in one `write_all`); wrap a file in
/// a `BufWriter` and call [`flush`](Self::flush) after each interval if another process
/// reads the log while it grows.
pub struct IntervalLog<W: Write> {
    w: W,
    serializer: V2DeflateSerializer,
    encoded: Vec<u8>,
    line: String,
    intervals: u64,
}

impl<W: Write> fmt::Debug for IntervalLog<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntervalLog")
            .field("intervals", &self.intervals)
            .finish_non_exhaustive()
    }
}

impl<W: Write> IntervalLog<W> {
    /// Starts a log on `w`: `comment` (each of its lines as a `#` line), the format version,
    /// `StartTime` and `BaseTime` = `start_epoch_s` (seconds since the Unix epoch, written
    /// to the millisecond), and the legend. Interval start times are then offsets from
    /// `start_epoch_s`. Fails with `InvalidInput` if `start_epoch_s` is negative or not
    /// finite.
    pub fn new(mut w: W, start_epoch_s: f64, comment: Option<&str>) -> io::Result<Self> {
        check_seconds("start time", start_epoch_s)?;
        let mut head = String::new();
        if let Some(c) = comment {
            for l in c.lines() {
                head.push('#');
                head.push_str(l);
                head.push('\n');
            }
        }
        head.push_str(&format!(
            "#[Histogram log format version {LOG_FORMAT_VERSION}]\n\
             #[StartTime: {start_epoch_s:.3} (seconds since epoch), {}]\n\
             #[BaseTime: {start_epoch_s:.3} (seconds since epoch)]\n\
             {LEGEND}\n",
            java_date(start_epoch_s),
        ));
        w.write_all(head.as_bytes())?;
        Ok(IntervalLog {
            w,
            serializer: V2DeflateSerializer::new(),
            encoded: Vec::new(),
            line: String::new(),
            intervals: 0,
        })
    }

    /// Writes one interval: `h` recorded from `start_offset_s` seconds after the log's start
    /// time, for `duration_s` seconds, tagged `tag` (a stream name; `None` for the run's
    /// total). A tag must be non-empty and free of `,`, space, CR and LF, and both times
    /// finite and not negative, else `InvalidInput`.
    pub fn write(
        &mut self,
        tag: Option<&str>,
        start_offset_s: f64,
        duration_s: f64,
        h: &Histogram<u64>,
    ) -> io::Result<()> {
        check_seconds("interval start", start_offset_s)?;
        check_seconds("interval length", duration_s)?;
        self.line.clear();
        if let Some(t) = tag {
            if t.is_empty() || t.contains([',', ' ', '\r', '\n']) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("bad interval log tag {t:?}: non-empty, without ',', space, CR or LF"),
                ));
            }
            self.line.push_str("Tag=");
            self.line.push_str(t);
            self.line.push(',');
        }
        // `max()` of an empty histogram is 0, as in Java.
        let max = if h.is_empty() { 0 } else { h.max() };
        self.line.push_str(&format!(
            "{start_offset_s:.3},{duration_s:.3},{:.3},",
            max as f64 / MAX_VALUE_UNIT_RATIO
        ));
        self.encoded.clear();
        self.serializer
            .serialize(h, &mut self.encoded)
            .map_err(io::Error::other)?;
        base64_encode(&self.encoded, &mut self.line);
        self.line.push('\n');
        self.w.write_all(self.line.as_bytes())?;
        self.intervals += 1;
        Ok(())
    }

    /// Number of intervals written so far.
    pub fn intervals(&self) -> u64 {
        self.intervals
    }

    /// Flushes `W`.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// Flushes `W` and returns it.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }

    /// Returns `W` without flushing it (everything written is already in `W`).
    pub fn into_inner(self) -> W {
        self.w
    }
}

fn check_seconds(what: &str, s: f64) -> io::Result<()> {
    if s.is_finite() && s >= 0.0 {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} {s} s: must be finite and not negative"),
        ))
    }
}

/// One interval read back from a log.
#[derive(Debug, Clone)]
pub struct LogInterval {
    /// The `Tag=` of its line: a stream name; `None` for the run's total.
    pub tag: Option<String>,
    /// Absolute start, seconds since the epoch when the log has a `StartTime` or `BaseTime`
    /// (or absolute timestamps), else the line's own timestamp.
    pub start_s: f64,
    /// Length in seconds.
    pub duration_s: f64,
    /// The histogram, with the bounds and precision it was written with.
    pub hist: Histogram<u64>,
}

/// Why an input is not a readable interval log. Every variant names the input; those about
/// its content the 1-based line ([`LogError::NotALog`] inside `why` when one line is to
/// blame).
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file could not be opened.
    #[error("{name}: cannot open: {error}")]
    Open {
        /// The input.
        name: String,
        /// The error (in the message, not chained as a source, so that `{:#}` does not
        /// repeat it).
        error: io::Error,
    },
    /// Reading the input failed.
    #[error("{name}:{line}: read error: {error}")]
    Io {
        /// The input.
        name: String,
        /// Line being read.
        line: usize,
        /// The error.
        error: io::Error,
    },
    /// Nothing in the input is an interval log: empty, only comments, or its first line
    /// that is not a comment is neither a header nor an interval.
    #[error("{name}: not a histogram log ({why})")]
    NotALog {
        /// The input.
        name: String,
        /// What was found instead.
        why: String,
    },
    /// A line that does not parse, after the input was recognised as a log.
    #[error("{name}:{line}: {what}")]
    BadLine {
        /// The input.
        name: String,
        /// The line.
        line: usize,
        /// What was wrong.
        what: String,
    },
    /// An interval line whose histogram does not decode: truncated, corrupt, or in an
    /// encoding other than V2.
    #[error("{name}:{line}: histogram does not decode: {what}")]
    BadHistogram {
        /// The input.
        name: String,
        /// The line.
        line: usize,
        /// What was wrong.
        what: String,
    },
}

/// One line of a log, parsed.
enum Line<'a> {
    /// Blank, a comment, or the legend.
    Ignored,
    StartTime(f64),
    BaseTime(f64),
    Interval {
        tag: Option<&'a str>,
        timestamp_s: f64,
        duration_s: f64,
        encoded: &'a str,
    },
}

/// Reads a whole interval log from `r`; `name` (a path) goes into errors.
///
/// Tags are kept. Start times are absolute, as Java's `HistogramLogReader` computes them:
/// a line's timestamp plus `BaseTime` if the log has one; else plus `StartTime` if the
/// timestamp is more than a year before `StartTime` (an offset); else as it stands
/// (absolute, or relative to nothing in a log without headers). A header that appears
/// again applies to the lines after it.
///
/// Fails on an empty input or one without interval lines ([`LogError::NotALog`]), a line
/// that is none of comment, header, legend and interval, a histogram that does not decode
/// (a truncated last line included), a total count above [`MAX_COUNT`], and read errors.
/// Never panics. A histogram is decoded with the bounds it was written with, so memory
/// follows the input (at most some 50 MB for one with 5 digits over the whole `u64`
/// range).
pub fn read_log(mut r: impl BufRead, name: &str) -> Result<Vec<LogInterval>, LogError> {
    let mut out = Vec::new();
    let mut raw = Vec::new();
    let mut line_no = 0usize;
    // Seen a header, the legend or an interval: the input is a log, and a bad line is
    // reported as such rather than as "not a histogram log".
    let mut recognised = false;
    let mut start_time: Option<f64> = None;
    let mut base_time: Option<f64> = None;
    let mut deserializer = Deserializer::new();
    loop {
        raw.clear();
        line_no += 1;
        let n = r
            .read_until(b'\n', &mut raw)
            .map_err(|error| LogError::Io {
                name: name.to_owned(),
                line: line_no,
                error,
            })?;
        if n == 0 {
            break;
        }
        let bad = |what: String, recognised: bool| {
            if recognised {
                LogError::BadLine {
                    name: name.to_owned(),
                    line: line_no,
                    what,
                }
            } else {
                LogError::NotALog {
                    name: name.to_owned(),
                    why: format!("line {line_no}: {what}"),
                }
            }
        };
        let text = std::str::from_utf8(&raw)
            .map_err(|e| bad(format!("not UTF-8 text ({e})"), recognised))?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        match parse_line(text).map_err(|what| bad(what, recognised))? {
            Line::Ignored => {
                if text.starts_with('"') {
                    recognised = true;
                }
            }
            Line::StartTime(t) => {
                recognised = true;
                start_time = Some(t);
            }
            Line::BaseTime(t) => {
                recognised = true;
                base_time = Some(t);
            }
            Line::Interval {
                tag,
                timestamp_s,
                duration_s,
                encoded,
            } => {
                let hist = decode_histogram(encoded, &mut deserializer).map_err(|what| {
                    if recognised {
                        LogError::BadHistogram {
                            name: name.to_owned(),
                            line: line_no,
                            what,
                        }
                    } else {
                        LogError::NotALog {
                            name: name.to_owned(),
                            why: format!("line {line_no}: histogram does not decode: {what}"),
                        }
                    }
                })?;
                recognised = true;
                let start = *start_time.get_or_insert(timestamp_s);
                let base = *base_time.get_or_insert(if timestamp_s < start - YEAR_S {
                    start
                } else {
                    0.0
                });
                out.push(LogInterval {
                    tag: tag.map(str::to_owned),
                    start_s: timestamp_s + base,
                    duration_s,
                    hist,
                });
            }
        }
    }
    if out.is_empty() {
        let why = if line_no == 1 {
            "empty".to_owned()
        } else {
            "no interval lines".to_owned()
        };
        return Err(LogError::NotALog {
            name: name.to_owned(),
            why,
        });
    }
    Ok(out)
}

/// Reads the interval log at `path` (see [`read_log`]).
pub fn read_log_file(path: &Path) -> Result<Vec<LogInterval>, LogError> {
    let name = path.display().to_string();
    let f = File::open(path).map_err(|error| LogError::Open {
        name: name.clone(),
        error,
    })?;
    read_log(BufReader::new(f), &name)
}

fn parse_line(text: &str) -> Result<Line<'_>, String> {
    if let Some(rest) = text.strip_prefix("#[StartTime: ") {
        return header_seconds(rest).map(Line::StartTime);
    }
    if let Some(rest) = text.strip_prefix("#[BaseTime: ") {
        return header_seconds(rest).map(Line::BaseTime);
    }
    if text.starts_with('#') || text.trim().is_empty() || text.starts_with("\"StartTimestamp\"") {
        return Ok(Line::Ignored);
    }
    let (tag, rest) = match text.strip_prefix("Tag=") {
        Some(t) => {
            let (tag, rest) = t
                .split_once(',')
                .ok_or_else(|| "a Tag= without the interval after it".to_owned())?;
            ((!tag.is_empty()).then_some(tag), rest)
        }
        None => (None, text),
    };
    let mut fields = rest.splitn(4, ',');
    let (Some(ts), Some(len), Some(max), Some(encoded)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(format!(
            "not an interval line (StartTimestamp,Interval_Length,Interval_Max,Histogram): {:?}",
            clip(text)
        ));
    };
    let timestamp_s = seconds_field("StartTimestamp", ts)?;
    let duration_s = seconds_field("Interval_Length", len)?;
    seconds_field("Interval_Max", max)?;
    if encoded.is_empty() {
        return Err("empty histogram field".to_owned());
    }
    Ok(Line::Interval {
        tag,
        timestamp_s,
        duration_s,
        encoded,
    })
}

/// The number at the start of a `StartTime` / `BaseTime` header, up to a space or `]`.
fn header_seconds(rest: &str) -> Result<f64, String> {
    let num = rest.split([' ', ']']).next().unwrap_or("");
    seconds_field("header time", num)
}

fn seconds_field(what: &str, s: &str) -> Result<f64, String> {
    // Only plain decimals (what every writer writes): f64's parser would also take "inf",
    // "NaN" and exponents.
    let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    match s.parse::<f64>() {
        Ok(v) if plain && v.is_finite() => Ok(v),
        _ => Err(format!(
            "{what} {:?} is not a non-negative decimal number",
            clip(s)
        )),
    }
}

/// At most 40 characters of `s`, for error messages.
fn clip(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

/// Decodes the base64 V2 (compressed or plain) histogram of an interval line.
fn decode_histogram(
    encoded: &str,
    deserializer: &mut Deserializer,
) -> Result<Histogram<u64>, String> {
    let bytes = base64_decode(encoded)?;
    // The deserializer reads only as much as the headers promise and never checks that the
    // bytes were all there (a zlib stream cut inside its checksum still inflates), nor caps
    // the plain payload length before allocating it: check both here.
    let cookie = be_u32(&bytes, 0).ok_or("shorter than a histogram header")?;
    let len = be_u32(&bytes, 4).ok_or("shorter than a histogram header")? as usize;
    let needed = match cookie {
        V2_COMPRESSED_COOKIE => 8usize.saturating_add(len),
        V2_COOKIE => V2_HEADER_LEN.saturating_add(len),
        other => {
            return Err(format!(
                "unknown encoding cookie {other:#010x} (only V2, cookie 0x1c849313 or 0x1c849314)"
            ))
        }
    };
    if bytes.len() < needed {
        return Err(format!(
            "truncated: {} bytes where its header says {needed}",
            bytes.len()
        ));
    }
    if cookie == V2_COOKIE {
        check_v2_counts(&bytes[V2_HEADER_LEN.min(bytes.len())..needed])?;
    }
    // hdrhistogram 7.5/7.6 negates a run-of-zeros count without checking it, which
    // overflows (a panic in debug builds) on the one value i64::MIN. The plain encoding is
    // checked above; a compressed one can only be seen inflated, inside the deserializer:
    // a panic there is caught and reported like any other bad histogram.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        deserializer.deserialize::<u64, _>(&mut &bytes[..])
    }));
    let h = match decoded {
        Ok(r) => r.map_err(|e| e.to_string())?,
        Err(_) => {
            *deserializer = Deserializer::new();
            return Err("corrupt counts (the decoder gave up)".to_owned());
        }
    };
    if h.len() > MAX_COUNT {
        return Err(format!(
            "total count {} above the {MAX_COUNT} accepted",
            h.len()
        ));
    }
    Ok(h)
}

/// Rejects the counts of a plain V2 encoding that hdrhistogram's decoder cannot take
/// without overflowing: a LEB128-64b9B varint (zig-zag encoded) of i64::MIN as a run of
/// zeros.
fn check_v2_counts(payload: &[u8]) -> Result<(), String> {
    let mut at = 0;
    while at < payload.len() {
        let mut v = 0u64;
        let mut i = 0;
        loop {
            let Some(&b) = payload.get(at + i) else {
                return Err("counts end inside a number".to_owned());
            };
            if i == 8 {
                v |= u64::from(b) << 56;
                i += 1;
                break;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        // zig-zag: u64::MAX decodes to i64::MIN.
        if v == u64::MAX {
            return Err(format!("corrupt counts at byte {at}"));
        }
        at += i;
    }
    Ok(())
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Writes the percentile distribution of `h` as Java's `outputPercentileDistribution(out,
/// 5, scale)` does (the `.hgrm` text that HdrHistogram's online plotter and `hdr-plot`
/// read): the header, a line per percentile step with 5 ticks per half distance to 100 %
/// (value / `scale` with as many decimals as the histogram's significant digits, the
/// percentile as a fraction, the cumulative count, 1/(1−percentile)), the last line at
/// percentile 1.0 without the last column, then the mean / standard deviation, max / total
/// count and bucket footer. `scale` divides values: 1000.0 turns ns into µs. An empty
/// histogram has no percentile lines. `InvalidInput` if `scale` is not positive and
/// finite.
pub fn write_hgrm(w: &mut impl Write, h: &Histogram<u64>, scale: f64) -> io::Result<()> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("hgrm value scale {scale}: must be positive and finite"),
        ));
    }
    let d = usize::from(h.sigfig());
    let mut s = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total = total.saturating_add(v.count_since_last_iteration());
            let value = v.value_iterated_to() as f64 / scale;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                s.push_str(&format!(
                    "{value:12.d$} {q:2.12} {total:10} {:14.2}\n",
                    1.0 / (1.0 - q)
                ));
            } else {
                s.push_str(&format!("{value:12.d$} {q:2.12} {total:10}\n"));
            }
        }
    }
    let max = if h.is_empty() { 0 } else { h.max() };
    // Java's subBucketCount: the power of two that gives unit resolution up to
    // 2 * 10^digits.
    let sub_buckets = (2 * 10u32.pow(u32::from(h.sigfig()))).next_power_of_two();
    s.push_str(&format!(
        "#[Mean    = {:12.d$}, StdDeviation   = {:12.d$}]\n\
         #[Max     = {:12.d$}, Total count    = {:12}]\n\
         #[Buckets = {:12}, SubBuckets     = {:12}]\n",
        h.mean() / scale,
        h.stdev() / scale,
        max as f64 / scale,
        h.len(),
        h.buckets(),
        sub_buckets,
    ));
    w.write_all(s.as_bytes())
}

/// `epoch_s` as an ISO 8601 UTC date and time to the millisecond,
/// `2023-11-14T22:13:20.123Z` (for reports of log time spans). Times before the epoch or
/// not finite are clamped to the epoch.
pub fn format_utc(epoch_s: f64) -> String {
    let ms = if epoch_s.is_finite() && epoch_s > 0.0 {
        (epoch_s * 1000.0).round() as u64
    } else {
        0
    };
    let (secs, milli) = (ms / 1000, ms % 1000);
    let (y, mo, d) = civil_from_days(secs / 86_400);
    let t = secs % 86_400;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// `epoch_s` as Java's `Date.toString()` writes it, in UTC: `Tue Nov 14 22:13:20 UTC 2023`.
fn java_date(epoch_s: f64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = if epoch_s.is_finite() && epoch_s > 0.0 {
        epoch_s.floor() as u64
    } else {
        0
    };
    let days = secs / 86_400;
    let (y, mo, d) = civil_from_days(days);
    let t = secs % 86_400;
    format!(
        "{} {} {d:02} {:02}:{:02}:{:02} UTC {y}",
        DAYS[(days % 7) as usize],
        MONTHS[(mo - 1) as usize],
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// (year, month 1..=12, day 1..=31) of `days` since 1970-01-01, proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648 §4) with padding, appended to `out`.
fn base64_encode(bytes: &[u8], out: &mut String) {
    out.reserve(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}

/// Decodes standard base64 with its padding (the length a multiple of 4, as every
/// HdrHistogram writer produces; a line cut inside its last group is then caught here).
fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    fn sextet(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return Err(format!(
            "base64 of {} characters, not a multiple of 4 (truncated?)",
            b.len()
        ));
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    let groups = b.len() / 4;
    for (gi, g) in b.chunks(4).enumerate() {
        let pad = g.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && gi + 1 != groups) {
            return Err("misplaced base64 padding".to_owned());
        }
        let mut n = 0u32;
        for (i, &c) in g.iter().enumerate() {
            let v = if i >= 4 - pad {
                0
            } else {
                sextet(c).ok_or_else(|| {
                    format!(
                        "not base64: character {:?} at {}",
                        char::from(c),
                        gi * 4 + i
                    )
                })?
            };
            n = (n << 6) | v;
        }
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, Rng, SeedableRng};

    /// A histogram of `n` values spread over 7 decades (like latencies with a tail).
    fn sample(seed: u64, n: usize) -> Histogram<u64> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut h = new_hist();
        for _ in 0..n {
            let exp: f64 = rng.gen_range(0.0..7.0);
            record(&mut h, 10f64.powf(exp) as u64 * 100);
        }
        h
    }

    fn write_log(items: &[(Option<&str>, f64, f64, &Histogram<u64>)], start: f64) -> Vec<u8> {
        let mut log =
            IntervalLog::new(Vec::new(), start, Some("skiff test\nsecond line")).expect("new log");
        for (tag, off, len, h) in items {
            log.write(*tag, *off, *len, h).expect("write interval");
        }
        assert_eq!(log.intervals(), items.len() as u64);
        log.finish().expect("finish")
    }

    fn assert_same(a: &Histogram<u64>, b: &Histogram<u64>) {
        assert_eq!(a, b, "histograms differ");
        assert_eq!(LatencySummary::of(a), LatencySummary::of(b));
        for i in 0..=1000 {
            let q = f64::from(i) / 1000.0;
            assert_eq!(a.value_at_quantile(q), b.value_at_quantile(q), "q {q}");
        }
        let av: Vec<_> = a
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        let bv: Vec<_> = b
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        assert_eq!(av, bv);
    }

    #[test]
    fn round_trip_untagged_intervals() {
        let hs: Vec<_> = (0..5).map(|i| sample(i, 1000 + 500 * i as usize)).collect();
        let items: Vec<_> = hs
            .iter()
            .enumerate()
            .map(|(i, h)| (None, i as f64, 1.0, h))
            .collect();
        let start = 1_700_000_000.125;
        let bytes = write_log(&items, start);
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        assert!(
            text.starts_with("#skiff test\n#second line\n#[Histogram log format version 1.3]\n")
        );
        assert!(text.contains(
            "#[StartTime: 1700000000.125 (seconds since epoch), Tue Nov 14 22:13:20 UTC 2023]\n"
        ));
        assert!(text.contains("#[BaseTime: 1700000000.125 (seconds since epoch)]\n"));
        assert!(text.contains(&format!("{LEGEND}\n")));
        let back = read_log(&bytes[..], "t.hlog").expect("read back");
        assert_eq!(back.len(), hs.len());
        for (i, (iv, h)) in back.iter().zip(&hs).enumerate() {
            assert_eq!(iv.tag, None);
            assert!(
                (iv.start_s - (start + i as f64)).abs() < 1e-6,
                "{}",
                iv.start_s
            );
            assert_eq!(iv.duration_s, 1.0);
            assert_same(&iv.hist, h);
        }
    }

    #[test]
    fn round_trip_tagged_and_untagged() {
        let total = sample(10, 3000);
        let a = sample(11, 2000);
        let b = sample(12, 1000);
        let empty = new_hist();
        let items = [
            (None, 0.0, 0.5, &total),
            (Some("video"), 0.0, 0.5, &a),
            (Some("voice-1"), 0.0, 0.5, &b),
            (None, 0.5, 0.5, &b),
            (Some("video"), 0.5, 0.5, &empty),
        ];
        let bytes = write_log(&items, 1_000_000_000.0);
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        assert!(text.contains("\nTag=video,0.000,0.500,"));
        assert!(text.contains("\n0.500,0.500,"));
        let back = read_log(&bytes[..], "t.hlog").expect("read back");
        assert_eq!(back.len(), items.len());
        for (iv, (tag, off, len, h)) in back.iter().zip(&items) {
            assert_eq!(iv.tag.as_deref(), *tag);
            assert!((iv.start_s - (1_000_000_000.0 + off)).abs() < 1e-6);
            assert_eq!(iv.duration_s, *len);
            assert_same(&iv.hist, h);
        }
        assert!(back[4].hist.is_empty());
        assert_eq!(LatencySummary::of(&back[4].hist), LatencySummary::default());
    }

    #[test]
    fn max_column_is_in_milliseconds() {
        let mut h = new_hist();
        record(&mut h, 2_500_000); // 2.5 ms
        let text = String::from_utf8(write_log(&[(None, 0.0, 1.0, &h)], 0.0)).expect("utf-8");
        let line = text.lines().last().expect("a line");
        let max: f64 = line
            .split(',')
            .nth(2)
            .expect("max")
            .parse()
            .expect("number");
        assert!(
            (max - h.max() as f64 / 1e6).abs() < 1e-3 && (max - 2.5).abs() < 0.01,
            "{line}"
        );
        assert!(line
            .split(',')
            .nth(3)
            .expect("histogram")
            .starts_with("HISTF"));
    }

    #[test]
    fn writer_rejects_bad_tags_and_times() {
        let h = sample(1, 10);
        let mut log = IntervalLog::new(Vec::new(), 0.0, None).expect("new");
        for t in ["", "a,b", "a b", "a\nb"] {
            let e = log.write(Some(t), 0.0, 1.0, &h).expect_err(t);
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        }
        for (s, d) in [(-1.0, 1.0), (f64::NAN, 1.0), (0.0, f64::INFINITY)] {
            assert!(log.write(None, s, d, &h).is_err());
        }
        assert!(IntervalLog::new(Vec::new(), -5.0, None).is_err());
        assert_eq!(log.intervals(), 0);
        // Nothing but the header was written: it reads as a log without intervals.
        let e = read_log(&log.into_inner()[..], "h").expect_err("no intervals");
        assert!(
            e.to_string()
                .contains("not a histogram log (no interval lines)"),
            "{e}"
        );
    }

    #[test]
    fn truncated_at_every_offset_fails_or_reads_a_prefix() {
        let hs: Vec<_> = (0..3).map(|i| sample(20 + i, 300)).collect();
        let items: Vec<_> = hs
            .iter()
            .enumerate()
            .map(|(i, h)| (if i == 1 { Some("s1") } else { None }, i as f64, 1.0, h))
            .collect();
        let full = write_log(&items, 1_700_000_000.0);
        // Byte ranges of the interval lines, without their '\n'.
        let text = std::str::from_utf8(&full).expect("utf-8");
        let mut lines = Vec::new();
        let mut at = 0;
        for l in text.split_inclusive('\n') {
            if !l.starts_with('#') && !l.starts_with('"') {
                lines.push((at, at + l.len() - 1));
            }
            at += l.len();
        }
        assert_eq!(lines.len(), 3);
        for cut in 0..full.len() {
            let r = read_log(&full[..cut], "cut.hlog");
            let complete = lines.iter().filter(|&&(_, e)| e <= cut).count();
            let partial = lines.iter().any(|&(s, e)| s < cut && cut < e);
            match r {
                Ok(ivs) => {
                    assert!(!partial && complete > 0, "cut at {cut} read as a log");
                    assert_eq!(ivs.len(), complete, "cut at {cut}");
                    for (iv, h) in ivs.iter().zip(&hs) {
                        assert_same(&iv.hist, h);
                    }
                }
                Err(e) => {
                    assert!(partial || complete == 0, "cut at {cut}: {e}");
                    let msg = e.to_string();
                    assert!(msg.starts_with("cut.hlog"), "{msg}");
                    if partial {
                        // 6 header lines, then the complete intervals, then the cut one.
                        let at = format!("cut.hlog:{}: ", 7 + complete);
                        assert!(msg.starts_with(&at), "cut at {cut}: {msg}");
                    }
                    if cut < lines[0].0 && !msg.contains("not a histogram log") {
                        // Cut inside a header line (after the first one that marks a log).
                        let line: usize = msg["cut.hlog:".len()..]
                            .split(':')
                            .next()
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0);
                        assert!((4..=6).contains(&line), "cut at {cut}: {msg}");
                    }
                }
            }
        }
    }

    #[test]
    fn mutated_logs_never_panic() {
        // A small fixed-seed version of the 150 000-mutation run done by hand: flips,
        // base64 substitutions and deletions anywhere, histograms included.
        let mut rng = SmallRng::seed_from_u64(1);
        let h = sample(30, 2000);
        let good = write_log(&[(None, 0.0, 1.0, &h), (Some("a"), 1.0, 1.0, &h)], 1.0);
        let mut failed = 0;
        for _ in 0..2000 {
            let mut b = good.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..b.len());
                match rng.gen_range(0..3) {
                    0 => b[i] ^= 1 << rng.gen_range(0..8),
                    1 => b[i] = B64[rng.gen_range(0..64)],
                    _ => {
                        b.remove(i);
                    }
                }
            }
            failed += usize::from(read_log(&b[..], "m").is_err());
        }
        assert!(failed > 1500, "{failed}");
    }

    #[test]
    fn empty_and_comment_only_inputs_are_not_logs() {
        let e = read_log(&b""[..], "empty.hlog").expect_err("empty");
        assert!(matches!(e, LogError::NotALog { .. }));
        assert_eq!(e.to_string(), "empty.hlog: not a histogram log (empty)");
        let e = read_log(&b"#just a comment\n\n"[..], "c").expect_err("comments");
        assert_eq!(e.to_string(), "c: not a histogram log (no interval lines)");
    }

    #[test]
    fn read_and_open_errors_name_the_input() {
        struct Failing(usize);
        impl io::Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let line = b"#[StartTime: 1.000 (seconds since epoch), x]\n";
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                self.0 -= 1;
                buf[..line.len()].copy_from_slice(line);
                Ok(line.len())
            }
        }
        let e = read_log(BufReader::new(Failing(2)), "f").expect_err("read error");
        assert_eq!(e.to_string(), "f:3: read error: disk on fire");
        let e = read_log_file(Path::new("/nonexistent/skiff.hlog")).expect_err("missing");
        assert!(
            e.to_string()
                .starts_with("/nonexistent/skiff.hlog: cannot open: "),
            "{e}"
        );
    }

    #[test]
    fn random_text_and_bytes_are_errors() {
        let mut rng = SmallRng::seed_from_u64(7);
        for round in 0..300 {
            let len = rng.gen_range(0..400);
            let bytes: Vec<u8> = if round % 3 == 0 {
                (0..len).map(|_| rng.gen()).collect()
            } else {
                // Printable text in lines, with the characters of the log format.
                let alphabet = b"0123456789.,=#[]\" \nTagHISTFabcxyz+/-";
                (0..len)
                    .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                    .collect()
            };
            assert!(
                read_log(&bytes[..], "r").is_err(),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
        let e = read_log(&b"hello world\nthis is not a log\n"[..], "notes.txt").expect_err("text");
        assert!(
            e.to_string()
                .starts_with("notes.txt: not a histogram log (line 1: "),
            "{e}"
        );
        let e = read_log(&b"\xff\xfe\x00binary"[..], "bin").expect_err("binary");
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }

    #[test]
    fn bad_lines_after_the_header_name_the_line() {
        let h = sample(3, 50);
        let good = write_log(&[(None, 0.0, 1.0, &h)], 1_700_000_000.0);
        let good = String::from_utf8(good).expect("utf-8");
        let lines = good.lines().count();
        let cases = [
            ("0.0,1.0,0.1\n", "not an interval line"),
            ("x.0,1.0,0.1,HISTFAAA\n", "StartTimestamp \"x.0\""),
            ("0.0,inf,0.1,HISTFAAA\n", "Interval_Length"),
            ("0.0,1.0,0.1,HIST!AAA\n", "not base64"),
            ("0.0,1.0,0.1,HISTFAA\n", "multiple of 4"),
            ("0.0,1.0,0.1,AAAAAAAAAAAA\n", "unknown encoding cookie"),
            ("0.0,1.0,0.1,HISTFAA=\n", "shorter than a histogram header"),
            ("0.0,1.0,0.1,HISTFAAAAAA=\n", "incomplete deflate stream"),
            ("Tag=x\n", "Tag= without"),
            ("0.0,1.0,0.1,\n", "empty histogram field"),
        ];
        for (bad, want) in cases {
            let text = format!("{good}{bad}");
            let e = read_log(text.as_bytes(), "f.hlog").expect_err(bad);
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("f.hlog:{}: ", lines + 1)), "{msg}");
            assert!(msg.contains(want), "{bad:?}: {msg}");
        }
        // A valid-looking header whose compressed body is garbage.
        let mut bytes = V2_COMPRESSED_COOKIE.to_be_bytes().to_vec();
        bytes.extend_from_slice(&6u32.to_be_bytes());
        bytes.extend_from_slice(b"abcdef");
        let mut enc = String::new();
        base64_encode(&bytes, &mut enc);
        let text = format!("{good}1.0,1.0,0.1,{enc}\n");
        let e = read_log(text.as_bytes(), "f.hlog").expect_err("garbage body");
        assert!(matches!(e, LogError::BadHistogram { .. }), "{e}");
    }

    /// A V2 encoding (plain) of a 1..=2000 histogram at 3 digits whose counts are `counts`.
    fn plain_v2(counts: &[u8]) -> Vec<u8> {
        let mut b = V2_COOKIE.to_be_bytes().to_vec();
        b.extend_from_slice(&(counts.len() as u32).to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes()); // normalizing offset
        b.extend_from_slice(&3u32.to_be_bytes()); // significant digits
        b.extend_from_slice(&1u64.to_be_bytes()); // lowest
        b.extend_from_slice(&2000u64.to_be_bytes()); // highest
        b.extend_from_slice(&1f64.to_be_bytes()); // integer to double ratio
        b.extend_from_slice(counts);
        b
    }

    /// `data` as a zlib stream of one stored (uncompressed) deflate block (RFC 1950/1951).
    fn zlib_stored(data: &[u8]) -> Vec<u8> {
        let len = data.len() as u16;
        let mut z = vec![0x78, 0x01, 0x01];
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(data);
        let (mut a, mut b) = (1u32, 0u32);
        for &x in data {
            a = (a + u32::from(x)) % 65_521;
            b = (b + a) % 65_521;
        }
        z.extend_from_slice(&((b << 16) | a).to_be_bytes());
        z
    }

    fn interval_line(bytes: &[u8]) -> String {
        let mut enc = String::new();
        base64_encode(bytes, &mut enc);
        format!("0.000,1.000,0.000,{enc}\n")
    }

    #[test]
    fn crafted_counts_that_overflow_the_decoder_are_errors() {
        // Counts: 5 x value-index 0 (zig-zag 10), then the i64::MIN run of zeros.
        let good = [10u8, 0x02];
        let evil = [10u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        let ok = read_log(interval_line(&plain_v2(&good)).as_bytes(), "p").expect("plain");
        assert_eq!(ok[0].hist.len(), 6);
        let e = read_log(interval_line(&plain_v2(&evil)).as_bytes(), "p").expect_err("plain");
        assert!(e.to_string().contains("corrupt counts"), "{e}");

        let compressed = |inner: &[u8]| {
            let z = zlib_stored(inner);
            let mut b = V2_COMPRESSED_COOKIE.to_be_bytes().to_vec();
            b.extend_from_slice(&(z.len() as u32).to_be_bytes());
            b.extend_from_slice(&z);
            b
        };
        let ok = read_log(interval_line(&compressed(&plain_v2(&good))).as_bytes(), "z")
            .expect("compressed");
        assert_eq!(ok[0].hist.len(), 6);
        let e = read_log(interval_line(&compressed(&plain_v2(&evil))).as_bytes(), "z")
            .expect_err("compressed");
        // Debug builds overflow inside the decoder (caught); release builds wrap, and the
        // decoder rejects the length.
        assert!(
            matches!(e, LogError::BadHistogram { .. } | LogError::NotALog { .. }),
            "{e}"
        );
        eprintln!("compressed i64::MIN run: {e}");
    }

    #[test]
    fn timestamps_follow_java_reader_rules() {
        let h = sample(4, 10);
        let mut enc = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&h, &mut enc)
            .expect("serialize");
        let mut b = String::new();
        base64_encode(&enc, &mut b);
        // No headers: timestamps stand as they are.
        let ivs = read_log(format!("12.500,1.0,0.0,{b}\n").as_bytes(), "a").expect("read");
        assert_eq!(ivs[0].start_s, 12.5);
        // StartTime only, offsets: added to it.
        let t =
            format!("#[StartTime: 1700000000.000 (seconds since epoch), x]\n2.000,1.0,0.0,{b}\n");
        assert_eq!(
            read_log(t.as_bytes(), "a").expect("read")[0].start_s,
            1_700_000_002.0
        );
        // StartTime only, absolute timestamps: kept.
        let t = format!(
            "#[StartTime: 1700000000.000 (seconds since epoch), x]\n1700000005.000,1.0,0.0,{b}\n"
        );
        assert_eq!(
            read_log(t.as_bytes(), "a").expect("read")[0].start_s,
            1_700_000_005.0
        );
        // BaseTime: always added.
        let t = format!("#[BaseTime: 100.000 (seconds since epoch)]\n2.000,1.0,0.0,{b}\r\n");
        assert_eq!(read_log(t.as_bytes(), "a").expect("read")[0].start_s, 102.0);
    }

    #[test]
    fn reads_logs_of_the_hdrhistogram_crate_and_it_parses_ours() {
        use hdrhistogram::serialization::interval_log::{
            IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
        };
        use std::time::{Duration, UNIX_EPOCH};
        let a = sample(5, 500);
        let b = sample(6, 700);
        let mut buf = Vec::new();
        let mut ser = V2DeflateSerializer::new();
        {
            let mut w = IntervalLogWriterBuilder::new()
                .add_comment("by the hdrhistogram crate")
                .with_start_time(UNIX_EPOCH + Duration::from_secs(1_600_000_000))
                .with_base_time(UNIX_EPOCH + Duration::from_secs(1_600_000_000))
                .with_max_value_divisor(1e6)
                .begin_log_with(&mut buf, &mut ser)
                .expect("begin");
            w.write_histogram(&a, Duration::from_secs(1), Duration::from_secs(1), None)
                .expect("a");
            w.write_histogram(
                &b,
                Duration::from_secs(2),
                Duration::from_secs(1),
                Tag::new("s"),
            )
            .expect("b");
        }
        let ivs = read_log(&buf[..], "crate.hlog").expect("read");
        assert_eq!(ivs.len(), 2);
        assert_same(&ivs[0].hist, &a);
        assert_same(&ivs[1].hist, &b);
        assert_eq!(ivs[1].tag.as_deref(), Some("s"));
        assert_eq!(ivs[1].start_s, 1_600_000_002.0);

        let ours = write_log(
            &[(None, 1.0, 1.0, &a), (Some("s"), 2.0, 1.0, &b)],
            1_600_000_000.0,
        );
        let entries: Vec<_> = IntervalLogIterator::new(&ours)
            .collect::<Result<_, _>>()
            .expect("the crate parses our log");
        assert!(
            matches!(entries[0], LogEntry::StartTime(d) if d == Duration::from_secs(1_600_000_000))
        );
        assert!(
            matches!(entries[1], LogEntry::BaseTime(d) if d == Duration::from_secs(1_600_000_000))
        );
        let LogEntry::Interval(ref iv) = entries[3] else {
            panic!("not an interval: {:?}", entries[3])
        };
        assert_eq!(iv.tag().map(|t| t.as_str()), Some("s"));
        assert_eq!(iv.start_timestamp(), Duration::from_secs(2));
        assert_eq!(entries.len(), 4);
    }

    /// Written by Python's `hdrh` 0.10.8 (`HistogramLogWriter`, its `%f` timestamps and
    /// floored max column; the tag and StartTime lines added by hand as its writer has
    /// neither): 6 values at 3 digits, then 3 at 2 digits from a lowest of 1000.
    const PYTHON_LOG: &str = "\
#[Histogram log format version 1.2]
#[StartTime: 1600000000.250000 (seconds since epoch), Sun Sep 13 12:26:40 UTC 2020]
\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"
Tag=s1,2.000000,1.000000,5.000000,HISTFAAAACx4nJNpmSzMwMDAwwABzFCaEYjFPcpeMNh/gAowMZ3kZ9qfx/Q5hAUAk3AHnA==
3.000000,1.500000,77309.000000,HISTFAAAACl4nJNpmSzMwMDAwQABTBCK+QUQuxnsWMBg/wEqwvSQm2mzHBMAkJcHAg==
";

    #[test]
    fn reads_a_log_written_by_python_hdrh() {
        let ivs = read_log(PYTHON_LOG.as_bytes(), "py.hlog").expect("read");
        assert_eq!(ivs.len(), 2);
        let (a, b) = (&ivs[0], &ivs[1]);
        assert_eq!(a.tag.as_deref(), Some("s1"));
        assert_eq!(b.tag, None);
        // Offsets more than a year before StartTime: added to it, as Java and Python do.
        assert_eq!((a.start_s, a.duration_s), (1_600_000_002.25, 1.0));
        assert_eq!((b.start_s, b.duration_s), (1_600_000_003.25, 1.5));
        // Python's own readings of the same histograms: total, min, max, count per value.
        assert_eq!(
            (a.hist.len(), a.hist.min(), a.hist.max()),
            (6, 1, 5_001_215)
        );
        for (v, c) in [(1, 1), (2, 1), (1000, 1), (123_456, 1), (5_000_000, 2)] {
            assert_eq!(a.hist.count_at(v), c, "{v}");
        }
        assert_eq!(a.hist.highest_equivalent(123_456), 123_519);
        let mut same = new_hist();
        for v in [1, 2, 1000, 123_456, 5_000_000, 5_000_000] {
            record(&mut same, v);
        }
        assert_same(&a.hist, &same);
        assert_eq!((b.hist.low(), b.hist.sigfig()), (1000, 2));
        assert_eq!(
            (b.hist.len(), b.hist.min(), b.hist.max()),
            (3, 1024, 77_309_411_327)
        );
        for v in [1500, 2_000_000, 77_000_000_000] {
            assert_eq!(b.hist.count_at(v), 1, "{v}");
        }
        assert_eq!(LatencySummary::of(&b.hist).p50, 2_007_039);
    }

    #[test]
    fn hgrm_has_java_header_lines_and_footer() {
        let mut h = new_hist();
        for v in 1..=10_000u64 {
            record(&mut h, v * 1000);
        }
        let mut out = Vec::new();
        write_hgrm(&mut out, &h, 1000.0).expect("hgrm");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        let n = lines.len();
        assert!(lines[n - 3].starts_with("#[Mean    = "), "{}", lines[n - 3]);
        assert!(lines[n - 3].contains(", StdDeviation   = "));
        assert_eq!(
            lines[n - 2],
            format!(
                "#[Max     = {:12.3}, Total count    = {:12}]",
                h.max() as f64 / 1000.0,
                10_000
            )
        );
        assert_eq!(
            lines[n - 1],
            format!(
                "#[Buckets = {:12}, SubBuckets     = {:12}]",
                h.buckets(),
                2048
            )
        );
        let body = &lines[2..n - 3];
        // The first line is the minimum at percentile 0, the last reaches 1.0 with every
        // sample and has no 1/(1-p) column.
        assert_eq!(
            body[0],
            "       1.000 0.000000000000          1           1.00"
        );
        let last: Vec<&str> = body[body.len() - 1].split_whitespace().collect();
        assert_eq!(
            last,
            [
                format!("{:.3}", h.max() as f64 / 1000.0).as_str(),
                "1.000000000000",
                "10000"
            ]
        );
        let mut prev = (0.0, 0.0, 0u64);
        for l in body {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert!(f.len() == 4 || l == &body[body.len() - 1], "{l}");
            let v: f64 = f[0].parse().expect("value");
            let p: f64 = f[1].parse().expect("percentile");
            let c: u64 = f[2].parse().expect("count");
            assert!(v >= prev.0 && p >= prev.1 && c >= prev.2, "{l}");
            prev = (v, p, c);
        }
        // 5 ticks per half distance: 0.1 steps up to 0.5, then 0.05 up to 0.75.
        assert!(body.iter().any(|l| l.contains(" 0.550000000000 ")));
        assert!(body.iter().any(|l| l.contains(" 0.990625000000 ")));
        // The median line: the value below which half the samples are, in µs.
        let median = format!(
            "{:12.3} 0.500000000000       5001           2.00",
            h.value_at_quantile(0.5) as f64 / 1000.0
        );
        assert!(body.contains(&median.as_str()), "{median}\n{text}");

        let mut out = Vec::new();
        write_hgrm(&mut out, &new_hist(), 1.0).expect("empty");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(text.contains("Total count    =            0]"));
        assert!(write_hgrm(&mut Vec::new(), &h, 0.0).is_err());
    }

    #[test]
    fn record_clamps_above_high_and_zero_to_low() {
        let mut h = new_hist();
        assert!(!record(&mut h, 0));
        assert!(!record(&mut h, HIGH_NS));
        assert!(record(&mut h, HIGH_NS + 1));
        assert!(record(&mut h, u64::MAX));
        assert_eq!(h.len(), 4);
        assert_eq!(h.count_at(0), 0);
        assert_eq!(h.count_at(1), 1);
        assert_eq!(h.min(), 1);
        assert!(h.equivalent(h.max(), HIGH_NS));
        assert_eq!(h.count_at(HIGH_NS), 3);
        let s = LatencySummary::of(&h);
        assert_eq!(
            (s.count, s.min, s.p50),
            (4, 1, h.highest_equivalent(HIGH_NS))
        );
        assert!(!h.is_auto_resize());
    }

    #[test]
    fn summary_percentiles_are_value_at_quantile() {
        let mut h = new_hist();
        for v in 1..=100_000u64 {
            record(&mut h, v);
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 100_000);
        assert_eq!(s.min, 1);
        assert_eq!(s.p50, h.value_at_quantile(0.5));
        assert!(
            h.equivalent(s.p50, 50_000)
                && h.equivalent(s.p99, 99_000)
                && h.equivalent(s.p9999, 99_990)
        );
        assert!(h.equivalent(s.max, 100_000));
        assert!((s.mean - 50_000.5).abs() / 50_000.0 < 1e-3);
        assert!((s.stdev - 28_867.5).abs() / 28_867.5 < 1e-2, "{}", s.stdev);
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, enc) in vectors {
            let mut s = String::new();
            base64_encode(plain.as_bytes(), &mut s);
            assert_eq!(s, enc);
            assert_eq!(base64_decode(enc).expect(enc), plain.as_bytes());
        }
        let all: Vec<u8> = (0..=255).collect();
        let mut s = String::new();
        base64_encode(&all, &mut s);
        assert_eq!(base64_decode(&s).expect("all bytes"), all);
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zm9v!A==", "=AAA"] {
            assert!(base64_decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(format_utc(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(1_700_000_000.123_4), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_utc(951_782_400.0), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_utc(-5.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(java_date(0.0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(1_700_000_000.9), "Tue Nov 14 22:13:20 UTC 2023");
    }
}
