//! The receiving side: probes in, per-stream histograms and sequence accounting out.
//!
//! A [`Collector`] is shared by a receiver's pollers behind one mutex, taken once per
//! received batch (not per frame): a stream's probes may arrive on any queue, and its
//! sequence accounting must see them all. Each probe's stream id is `stream << 6 | queue`
//! (`gen::stream::probe_wire_id`): sequences are tracked per id (a queue is one sender),
//! histograms and counts are reported per stream (the ids with the same `stream` part) and
//! in total.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{
    hist::{new_hist, record, LatencySummary},
    probe::{Found, Probe, ProbeError},
    tracker::{SeqCounts, SeqTracker},
};
use crate::gen::stream::PROBE_QUEUE_BITS;

/// (session, wire stream id).
pub type Key = (u32, u16);

/// What one sender (one wire id of one session) delivered.
#[derive(Debug, Clone)]
pub struct SubStream {
    /// Loss, reordering, duplication.
    pub seq: SeqTracker,
    /// Latency from the probe's actual transmit time.
    pub latency: Histogram<u64>,
    /// Latency from the probe's scheduled send time (coordinated omission corrected);
    /// empty if the sender had no schedule.
    pub latency_sched: Histogram<u64>,
    /// `latency` since the last [`Collector::take_intervals`].
    interval: Histogram<u64>,
}

/// Probe bytes that failed a check, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BadProbes {
    /// Shorter than a probe.
    pub too_short: u64,
    /// An unknown version.
    pub bad_version: u64,
    /// The check value does not match: corrupted, or not a probe at all.
    pub bad_check: u64,
}

impl BadProbes {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.too_short + self.bad_version + self.bad_check
    }
}

/// Collects probes for a receiver (sink, pinger).
#[derive(Debug)]
pub struct Collector {
    subs: BTreeMap<Key, SubStream>,
    late_ns: u64,
    window: u32,
    /// Frames that looked like probes (the signature) and failed a check: counted, never
    /// recorded as latency.
    pub bad: BadProbes,
    /// Probes received before their transmit time: sender and receiver do not share a
    /// clock. Counted for loss and order; no latency recorded.
    pub clock_skewed: u64,
    /// Latencies above the histograms' top (100 s), recorded as the top.
    pub clamped: u64,
    /// Probes of streams beyond [`Collector::MAX_SUBSTREAMS`]: counted only.
    pub untracked: u64,
}

/// One stream's report (or the total's): counts and latency summaries.
#[derive(Debug, Clone, Serialize)]
pub struct StreamLatencyReport {
    /// `s<stream>`, or `s<stream>@<session>` when several sender runs were seen; "total".
    pub name: String,
    /// Sequence counts, summed over the stream's senders.
    #[serde(flatten)]
    pub counts: SeqCounts,
    /// Latency from the actual transmit time.
    pub latency_ns: LatencySummary,
    /// Latency from the scheduled send time, if the sender had a rate schedule.
    pub latency_sched_ns: Option<LatencySummary>,
}

impl Collector {
    /// Most senders tracked: 4096 (each holds three histograms of ~230 KB).
    pub const MAX_SUBSTREAMS: usize = 4096;

    /// A collector that counts probes slower than `late_ns` as late, and tracks sequences
    /// over `window` numbers ([`SeqTracker::DEFAULT_WINDOW`] is a good default).
    pub fn new(late_ns: u64, window: u32) -> Self {
        Collector {
            subs: BTreeMap::new(),
            late_ns,
            window,
            bad: BadProbes::default(),
            clock_skewed: 0,
            clamped: 0,
            untracked: 0,
        }
    }

    /// Records what [`super::probe::find`] said of a frame received at `rx_ns`.
    #[inline]
    pub fn found(&mut self, f: Found, rx_ns: u64) {
        match f {
            Found::NotProbe => {}
            Found::Invalid(e) => self.bad(e),
            Found::Probe(p) => self.record(&p, rx_ns),
        }
    }

    /// Counts a probe that failed a check.
    pub fn bad(&mut self, e: ProbeError) {
        match e {
            ProbeError::TooShort => self.bad.too_short += 1,
            ProbeError::BadVersion(_) => self.bad.bad_version += 1,
            // A frame without the signature is not a probe at all and never gets here.
            ProbeError::BadCheck | ProbeError::BadMagic => self.bad.bad_check += 1,
        }
    }

    /// Records a valid probe received at `rx_ns` (CLOCK_MONOTONIC).
    pub fn record(&mut self, p: &Probe, rx_ns: u64) {
        let key = (p.session, p.stream);
        if !self.subs.contains_key(&key) && self.subs.len() >= Self::MAX_SUBSTREAMS {
            self.untracked += 1;
            return;
        }
        let window = self.window;
        let s = self.subs.entry(key).or_insert_with(|| SubStream {
            seq: SeqTracker::new(window),
            latency: new_hist(),
            latency_sched: new_hist(),
            interval: new_hist(),
        });
        let Some(lat) = rx_ns.checked_sub(p.tx_ns) else {
            self.clock_skewed += 1;
            s.seq.observe(p.seq, false);
            return;
        };
        s.seq.observe(p.seq, lat > self.late_ns);
        let mut clamped = record(&mut s.latency, lat);
        record(&mut s.interval, lat);
        if let Some(sched) = p.sched_ns {
            // The schedule is never after the actual send; if clocks make it look so, the
            // latency from it is the actual one's floor.
            clamped |= record(&mut s.latency_sched, rx_ns.saturating_sub(sched).max(lat));
        }
        self.clamped += u64::from(clamped);
    }

    /// Valid probes recorded so far.
    pub fn probes(&self) -> u64 {
        self.subs
            .values()
            .map(|s| s.seq.counts(None).received)
            .sum()
    }

    /// The latency histograms of the interval since the last call, per stream name and
    /// in total (name None), and resets them. Streams with nothing in the interval are
    /// left out; the total is always there.
    pub fn take_intervals(&mut self) -> Vec<(Option<String>, Histogram<u64>)> {
        let names = self.names();
        let mut per: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
        let mut total = new_hist();
        for (k, s) in &mut self.subs {
            if s.interval.is_empty() {
                continue;
            }
            let name = names.get(k).cloned().unwrap_or_default();
            let h = per.entry(name).or_insert_with(new_hist);
            // Same bounds everywhere: adding cannot fail.
            let _ = h.add(&s.interval);
            let _ = total.add(&s.interval);
            s.interval.reset();
        }
        let mut out: Vec<_> = per.into_iter().map(|(n, h)| (Some(n), h)).collect();
        out.push((None, total));
        out
    }

    /// Per stream: its name, and for each of its senders the key and the data.
    fn names(&self) -> BTreeMap<Key, String> {
        let sessions: std::collections::BTreeSet<u32> = self.subs.keys().map(|k| k.0).collect();
        self.subs
            .keys()
            .map(|&(session, id)| {
                let stream = id >> PROBE_QUEUE_BITS;
                let name = if sessions.len() > 1 {
                    format!("s{stream}@{session:08x}")
                } else {
                    format!("s{stream}")
                };
                ((session, id), name)
            })
            .collect()
    }

    /// The whole run's histograms per stream name (actual, scheduled) and in total.
    pub fn histograms(&self) -> Vec<(String, Histogram<u64>, Histogram<u64>)> {
        let names = self.names();
        let mut per: BTreeMap<String, (Histogram<u64>, Histogram<u64>)> = BTreeMap::new();
        for (k, s) in &self.subs {
            let name = names.get(k).cloned().unwrap_or_default();
            let (a, b) = per.entry(name).or_insert_with(|| (new_hist(), new_hist()));
            let _ = a.add(&s.latency);
            let _ = b.add(&s.latency_sched);
        }
        per.into_iter().map(|(n, (a, b))| (n, a, b)).collect()
    }

    /// Reports per stream and the total. `expected(session, wire_id)` is how many probes
    /// that sender sent, if the caller knows (a pinger does); else the highest sequence
    /// seen + 1 is used, and losses after the last arrival are invisible.
    pub fn report(
        &self,
        expected: impl Fn(u32, u16) -> Option<u64>,
    ) -> (Vec<StreamLatencyReport>, StreamLatencyReport) {
        let names = self.names();
        let mut per: BTreeMap<String, (SeqCounts, Histogram<u64>, Histogram<u64>)> =
            BTreeMap::new();
        for (k, s) in &self.subs {
            let name = names.get(k).cloned().unwrap_or_default();
            let e = per
                .entry(name)
                .or_insert_with(|| (SeqCounts::default(), new_hist(), new_hist()));
            add_counts(&mut e.0, &s.seq.counts(expected(k.0, k.1)));
            let _ = e.1.add(&s.latency);
            let _ = e.2.add(&s.latency_sched);
        }
        let mut total = (SeqCounts::default(), new_hist(), new_hist());
        let mut out = Vec::with_capacity(per.len());
        for (name, (c, a, b)) in per {
            add_counts(&mut total.0, &c);
            let _ = total.1.add(&a);
            let _ = total.2.add(&b);
            out.push(make_report(name, c, &a, &b));
        }
        let t = make_report("total".into(), total.0, &total.1, &total.2);
        (out, t)
    }
}

fn make_report(
    name: String,
    counts: SeqCounts,
    a: &Histogram<u64>,
    b: &Histogram<u64>,
) -> StreamLatencyReport {
    StreamLatencyReport {
        name,
        counts,
        latency_ns: LatencySummary::of(a),
        latency_sched_ns: (!b.is_empty()).then(|| LatencySummary::of(b)),
    }
}

fn add_counts(t: &mut SeqCounts, c: &SeqCounts) {
    t.received += c.received;
    t.unique += c.unique;
    t.lost += c.lost;
    t.reordered += c.reordered;
    t.duplicated += c.duplicated;
    t.late += c.late;
    t.too_old += c.too_old;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(stream: u16, seq: u64, tx: u64, sched: Option<u64>) -> Probe {
        Probe {
            stream,
            session: 7,
            seq,
            tx_ns: tx,
            sched_ns: sched,
        }
    }

    #[test]
    fn streams_group_queues_and_count_exactly() {
        let mut c = Collector::new(1_000_000_000, SeqTracker::DEFAULT_WINDOW);
        // Stream 0 on queues 0 and 1 (ids 0 and 1), stream 1 on queue 0 (id 64).
        for seq in [0, 1, 3, 2, 2] {
            c.record(&probe(0, seq, 1000, Some(900)), 1500);
        }
        for seq in 0..4 {
            c.record(&probe(1, seq, 1000, None), 1200);
        }
        c.record(&probe(64, 0, 1000, None), 3000);
        let (per, total) = c.report(|_, _| None);
        assert_eq!(per.len(), 2);
        let s0 = &per[0];
        assert_eq!(s0.name, "s0");
        assert_eq!(s0.counts.received, 9);
        assert_eq!(s0.counts.duplicated, 1);
        assert_eq!(s0.counts.reordered, 1);
        assert_eq!(s0.counts.lost, 0);
        assert_eq!(s0.latency_ns.count, 9);
        assert_eq!(s0.latency_sched_ns.map(|l| l.count), Some(5));
        assert_eq!(per[1].name, "s1");
        assert_eq!(total.counts.received, 10);
        assert_eq!(total.latency_ns.count, 10);
        assert_eq!(total.latency_ns.max, 2000);
    }

    #[test]
    fn skewed_clocks_count_but_record_no_latency() {
        let mut c = Collector::new(u64::MAX, 64);
        c.record(&probe(0, 0, 5000, None), 4000);
        let (_, t) = c.report(|_, _| Some(2));
        assert_eq!(c.clock_skewed, 1);
        assert_eq!(t.counts.received, 1);
        assert_eq!(t.counts.lost, 1);
        assert_eq!(t.latency_ns.count, 0);
    }

    #[test]
    fn intervals_reset_and_total_is_the_sum() {
        let mut c = Collector::new(u64::MAX, 64);
        c.record(&probe(0, 0, 0, None), 100);
        c.record(&probe(64, 0, 0, None), 300);
        let iv = c.take_intervals();
        assert_eq!(iv.len(), 3);
        assert_eq!(
            iv.last().map(|(n, h)| (n.is_none(), h.len())),
            Some((true, 2))
        );
        let iv = c.take_intervals();
        assert_eq!(iv.len(), 1, "only the (empty) total after a reset");
        assert_eq!(iv[0].1.len(), 0);
    }
}
