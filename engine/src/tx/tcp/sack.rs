//! The sender's SACK scoreboard: which bytes above `SND.UNA` the receiver has reported
//! holding (RFC 2018), and the loss-recovery queries RFC 6675 builds on it (`IsLost`,
//! `NextSeg` rule 1, `SetPipe`). Blocks are checked as the kernel checks them
//! (`tcp_is_sackblock_valid`, `tcp_sacktag_write_queue` in `net/ipv4/tcp_input.c`) and
//! D-SACKs are recognised as RFC 2883 §4 and the kernel's `tcp_check_dsack` do.
//!
//! [`super::conn`] finds losses with RACK ([`super::rack`]) and keeps SACK state per
//! segment in its retransmit queue, so of this module it uses only [`is_dsack`]. The
//! scoreboard is kept, tested, for a sender that recovers by RFC 6675 alone; no data path
//! keeps one now (a connection used to update it on every ACK and read nothing but the
//! D-SACK flag from it).
//!
//! The scoreboard keeps byte ranges, not per-segment marks: a sorted list of disjoint,
//! non-touching `[start, end)` ranges with `SND.UNA < start < end <= SND.NXT`. The list is
//! a `Vec` reserved once for [`MAX_RANGES`] entries and reused, so steady state does not
//! allocate; a few dozen holes is already a very bad window.
//!
//! Where this differs from the kernel, and why:
//! - No `undo_marker`: a D-SACK for data below `SND.UNA` is reported
//!   ([`SackUpdate::dsack`]) but never applied (there is nothing above `SND.UNA` to mark);
//!   deciding whether it proves a retransmission spurious is the caller's job. The
//!   "dubious D-SACK" bound uses the largest possible window (2^30) instead of the peer's
//!   `max_window`, and the kernel's "more D-SACKed than retransmitted" check is left to
//!   the caller, which counts retransmissions.
//! - A cumulative ACK that stops at or inside a SACKed range means the receiver dropped
//!   data it had SACKed (reneging, RFC 2018 §8; the kernel's `FLAG_SACK_RENEGING`). The
//!   kernel waits a little and then clears all SACK state on a timeout; here that range
//!   is forgotten at once (counted in [`SackStats::reneged`]), which can only cause a
//!   retransmission, never a missed one.
//! - "Discontiguous SACKed sequences" of `IsLost` are counted as ranges: contiguous small
//!   segments merged into one range count once (the byte rule still applies to them).
//! - Beyond [`MAX_RANGES`] the highest range is forgotten (counted in
//!   [`SackStats::ranges_dropped`]): the lowest holes are the ones recovery needs next,
//!   and forgetting SACK information is always safe (RFC 2018 §8 calls it advisory).

use super::Seq;

/// RFC 6675 §2 `DupThresh`: 3, like the kernel's `TCP_FASTRETRANS_THRESH`
/// (`include/net/tcp.h`) and RFC 5681's three duplicate ACKs.
pub const DUP_THRESH: u32 = 3;

/// Most ranges the scoreboard remembers: 64. Each ACK carries at most 4 blocks (RFC 2018
/// §3), and a window with 64 separate holes is already a collapse that an RTO is better
/// at; 64 × 8 bytes is one 512-byte allocation per connection.
pub const MAX_RANGES: usize = 64;

/// A D-SACK longer than this is dubious and ignored: 2^30, the largest window (RFC 7323
/// §2.3); the kernel compares with the peer's `max_window` (`tcp_dsack_seen`).
const MAX_DSACK_LEN: u32 = 1 << 30;

/// What one ACK's SACK blocks did to the scoreboard.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SackUpdate {
    /// Bytes SACKed by this ACK that were not SACKed before.
    pub newly_sacked: u32,
    /// The first block was a D-SACK (RFC 2883 §4): below the cumulative ACK, or inside
    /// the second block.
    pub dsack: bool,
    /// Blocks ignored as outside `(SND.UNA, SND.NXT]` or malformed.
    pub invalid_blocks: u32,
}

/// Counters since the scoreboard was made (never reset by [`Scoreboard::reset`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SackStats {
    /// SACK blocks received.
    pub blocks: u64,
    /// Blocks ignored as out of range or malformed (the kernel's `TCPSACKDiscard`).
    pub invalid_blocks: u64,
    /// ACKs whose first block was a D-SACK (`TCPDSACKRecv` + `TCPDSACKOfoRecv`).
    pub dsacks: u64,
    /// Ranges forgotten because the scoreboard held [`MAX_RANGES`].
    pub ranges_dropped: u64,
    /// SACKed ranges forgotten because the cumulative ACK stopped at or inside them.
    pub reneged: u64,
}

/// How one received block is treated (`tcp_is_sackblock_valid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// Inside `(SND.UNA, SND.NXT]`: applied.
    Apply,
    /// A D-SACK wholly below `SND.UNA`, or an old block on a reordered ACK: nothing to do,
    /// not counted as invalid.
    Ignore,
    /// Malformed or out of range: counted.
    Invalid,
}

/// The sender's SACK scoreboard; see the module docs.
#[derive(Debug, Default, Clone)]
pub struct Scoreboard {
    /// Sorted, disjoint, non-touching, inside `(SND.UNA, SND.NXT]`.
    ranges: Vec<(Seq, Seq)>,
    /// Sum of the ranges' lengths.
    sacked: u32,
    /// RFC 6675 `HighRxt`, exclusive: bytes below it were retransmitted in this recovery.
    high_rxt: Option<Seq>,
    /// Counters.
    stats: SackStats,
}

/// RFC 6675 §4 `IsLost` from what lies above a sequence number: `DupThresh` discontiguous
/// SACKed ranges, or more than `(DupThresh - 1) * SMSS` SACKed bytes.
fn lost(ranges_above: usize, bytes_above: u64, mss: u32) -> bool {
    ranges_above >= DUP_THRESH as usize || bytes_above > u64::from(DUP_THRESH - 1) * u64::from(mss)
}

impl Scoreboard {
    /// Applies the SACK blocks of one ACK. `ack` is its acknowledgement number; `snd_una`
    /// and `snd_nxt` the sender's before it. An `ack` inside `(snd_una, snd_nxt]` first
    /// advances the scoreboard, as the kernel updates `snd_una` before
    /// `tcp_sacktag_write_queue` runs.
    ///
    /// The first block is a D-SACK when it starts below `ack`, or lies inside the second
    /// block (`tcp_check_dsack`; RFC 2883 §4), and is well formed and not longer than the
    /// largest window. A block is applied when `SND.UNA < start < end <= SND.NXT`; a
    /// D-SACK wholly below `SND.UNA` is reported but not applied; everything else is
    /// ignored and counted invalid, except old blocks on a reordered ACK (`ack` before
    /// `SND.UNA`), which the kernel also skips without counting.
    pub fn on_ack(
        &mut self,
        ack: Seq,
        blocks: &[(Seq, Seq)],
        snd_una: Seq,
        snd_nxt: Seq,
    ) -> SackUpdate {
        let mut una = snd_una;
        if ack.gt(snd_una) && ack.le(snd_nxt) {
            self.advance(ack);
            una = ack;
        }
        self.clip_above(snd_nxt);

        let mut up = SackUpdate {
            dsack: is_dsack(ack, blocks),
            ..SackUpdate::default()
        };
        if up.dsack {
            self.stats.dsacks += 1;
        }
        for (i, &(start, end)) in blocks.iter().enumerate() {
            self.stats.blocks += 1;
            match classify(start, end, una, snd_nxt, i == 0 && up.dsack, ack) {
                Block::Apply => {
                    up.newly_sacked = up.newly_sacked.saturating_add(self.mark(start, end));
                }
                Block::Ignore => {}
                Block::Invalid => {
                    up.invalid_blocks += 1;
                    self.stats.invalid_blocks += 1;
                }
            }
        }
        up
    }

    /// Forgets everything below the new cumulative ACK `snd_una`. A range that starts at
    /// or before it is forgotten whole: the receiver would have acknowledged through its
    /// end had it kept it (reneging, see the module docs). `HighRxt` below `snd_una` is
    /// raised to it (everything outstanding is then unretransmitted, as before).
    pub fn advance(&mut self, snd_una: Seq) {
        let gone = self.ranges.partition_point(|r| r.0.le(snd_una));
        for &(s, e) in &self.ranges[..gone] {
            self.sacked -= e.since(s);
            if e.gt(snd_una) {
                self.stats.reneged += 1;
            }
        }
        self.ranges.drain(..gone);
        if let Some(h) = self.high_rxt {
            self.high_rxt = Some(h.max(snd_una));
        }
    }

    /// The whole of `[start, end)` is SACKed (false for an empty or reversed range).
    pub fn is_sacked(&self, start: Seq, end: Seq) -> bool {
        if !start.lt(end) {
            return false;
        }
        let i = self.ranges.partition_point(|r| r.0.le(start));
        i.checked_sub(1)
            .and_then(|i| self.ranges.get(i))
            .is_some_and(|r| r.1.ge(end))
    }

    /// Bytes SACKed above `SND.UNA`.
    pub fn sacked_bytes(&self) -> u32 {
        self.sacked
    }

    /// One past the highest SACKed byte (the end of the highest range; the kernel's
    /// `tcp_highest_sack_seq`), if anything is SACKed.
    pub fn highest_sacked(&self) -> Option<Seq> {
        self.ranges.last().map(|r| r.1)
    }

    /// The SACKed ranges, sorted.
    pub fn ranges(&self) -> &[(Seq, Seq)] {
        &self.ranges
    }

    /// RFC 6675 §4 `IsLost(seq)`: `DupThresh` (3) discontiguous SACKed ranges above `seq`,
    /// or more than `(DupThresh - 1) * mss` SACKed bytes above it. False when `seq` itself
    /// is SACKed.
    pub fn is_lost(&self, seq: Seq, mss: u32) -> bool {
        let (mut n, mut bytes) = (0usize, 0u64);
        for &(s, e) in self.ranges.iter().rev() {
            if !e.gt(seq) {
                break;
            }
            if s.le(seq) {
                return false;
            }
            n += 1;
            bytes += u64::from(e.since(s));
        }
        lost(n, bytes, mss)
    }

    /// RFC 6675 §4 `NextSeg` rule 1: the first unSACKed range `[start, end)` at or after
    /// `from` (and `snd_una`) that is above `HighRxt` (not yet retransmitted in this
    /// recovery), below the highest SACKed byte, and lost; `None` if there is none.
    ///
    /// Every byte of one hole has the same SACKed data above it, so the rule holds for a
    /// whole hole or none of it; the whole remaining hole is returned and the caller cuts
    /// it into segments (the RFC returns one segment of up to SMSS). `IsLost` only grows
    /// downwards, so the first hole that is not lost ends the search.
    pub fn next_lost(&self, from: Seq, snd_una: Seq, snd_nxt: Seq, mss: u32) -> Option<(Seq, Seq)> {
        let mut floor = from.max(snd_una);
        if let Some(h) = self.high_rxt {
            floor = floor.max(h);
        }
        let mut above_n = self.ranges.len();
        let mut above_bytes = u64::from(self.sacked);
        let mut hole_start = snd_una;
        for &(s, e) in &self.ranges {
            let (a, b) = (hole_start.max(floor), s.min(snd_nxt));
            if a.lt(b) {
                return lost(above_n, above_bytes, mss).then_some((a, b));
            }
            above_n -= 1;
            above_bytes -= u64::from(e.since(s));
            hole_start = hole_start.max(e);
        }
        None
    }

    /// Sets RFC 6675 `HighRxt`: `seq` is one past the last byte retransmitted in this
    /// recovery (bytes below it count as retransmitted).
    pub fn set_high_rxt(&mut self, seq: Seq) {
        self.high_rxt = Some(seq);
    }

    /// `HighRxt`, if set since the last [`Scoreboard::reset`].
    pub fn high_rxt(&self) -> Option<Seq> {
        self.high_rxt
    }

    /// Forgets all SACK information and `HighRxt` (after an RTO, RFC 6675 §5.1, or at the
    /// end of recovery); keeps the counters and the memory.
    pub fn reset(&mut self) {
        self.ranges.clear();
        self.sacked = 0;
        self.high_rxt = None;
    }

    /// RFC 6675 §4 `SetPipe`, in bytes: every unSACKed byte of `[snd_una, snd_nxt)` counts
    /// once unless `IsLost`, and once more if retransmitted (below `HighRxt`).
    pub fn pipe(&self, snd_una: Seq, snd_nxt: Seq, mss: u32) -> u32 {
        let hole = |a: Seq, b: Seq, is_lost: bool| -> u64 {
            if !a.lt(b) {
                return 0;
            }
            let mut n = if is_lost { 0 } else { u64::from(b.since(a)) };
            if let Some(h) = self.high_rxt {
                n += u64::from(b.min(h).since(a));
            }
            n
        };
        let mut pipe = 0u64;
        let mut above_n = self.ranges.len();
        let mut above_bytes = u64::from(self.sacked);
        let mut hole_start = snd_una;
        for &(s, e) in &self.ranges {
            pipe += hole(hole_start, s.min(snd_nxt), lost(above_n, above_bytes, mss));
            above_n -= 1;
            above_bytes -= u64::from(e.since(s));
            hole_start = hole_start.max(e);
        }
        // Above the highest SACKed byte nothing is lost.
        pipe += hole(hole_start, snd_nxt, false);
        u32::try_from(pipe).unwrap_or(u32::MAX)
    }

    /// Nothing SACKed.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> SackStats {
        self.stats
    }

    /// Marks `[start, end)` (already validated) SACKed; returns the bytes it added.
    fn mark(&mut self, start: Seq, end: Seq) -> u32 {
        if self.ranges.capacity() < MAX_RANGES {
            self.ranges.reserve_exact(MAX_RANGES - self.ranges.len());
        }
        // The ranges it overlaps or touches: from the first ending at or after `start`,
        // while they start at or before `end`.
        let i = self.ranges.partition_point(|r| r.1.lt(start));
        let (mut s, mut e, mut had) = (start, end, 0u32);
        let mut j = i;
        while let Some(&(rs, re)) = self.ranges.get(j) {
            if !rs.le(end) {
                break;
            }
            s = s.min(rs);
            e = e.max(re);
            had += re.since(rs);
            j += 1;
        }
        if i == j {
            // A new range.
            if self.ranges.len() >= MAX_RANGES {
                self.stats.ranges_dropped += 1;
                if i == self.ranges.len() {
                    // It would be the highest: it is the one forgotten.
                    return 0;
                }
                if let Some((hs, he)) = self.ranges.pop() {
                    self.sacked -= he.since(hs);
                }
            }
            self.ranges.insert(i, (s, e));
        } else {
            self.ranges[i] = (s, e);
            self.ranges.drain(i + 1..j);
        }
        let added = e.since(s) - had;
        self.sacked += added;
        added
    }

    /// Drops what lies at or above `snd_nxt` (only after `SND.NXT` moved back, which the
    /// caller should pair with [`Scoreboard::reset`]; kept so the invariant never breaks).
    fn clip_above(&mut self, snd_nxt: Seq) {
        while let Some(&(s, e)) = self.ranges.last() {
            if e.le(snd_nxt) {
                break;
            }
            self.ranges.pop();
            self.sacked -= e.since(s);
            if s.lt(snd_nxt) {
                self.ranges.push((s, snd_nxt));
                self.sacked += snd_nxt.since(s);
                break;
            }
        }
    }
}

/// `tcp_check_dsack`: the first block starts below the cumulative ACK (RFC 2883 §4.1.1,
/// §4.1.2), or lies inside the second (§4.1.3); and `tcp_dsack_seen` drops reversed or
/// over-long ones as dubious.
pub(crate) fn is_dsack(ack: Seq, blocks: &[(Seq, Seq)]) -> bool {
    let Some(&(s0, e0)) = blocks.first() else {
        return false;
    };
    let shaped = s0.lt(ack)
        || blocks
            .get(1)
            .is_some_and(|&(s1, e1)| !e0.gt(e1) && !s0.lt(s1));
    shaped && s0.lt(e0) && e0.since(s0) <= MAX_DSACK_LEN
}

/// `tcp_is_sackblock_valid` without `undo_marker` (see the module docs), plus the
/// kernel's silent skip of old blocks on reordered ACKs (`tcp_sacktag_write_queue`).
fn classify(start: Seq, end: Seq, una: Seq, nxt: Seq, dsack: bool, ack: Seq) -> Block {
    // Too far in the future, or reversed / empty.
    if end.gt(nxt) || !start.lt(end) {
        return Block::Invalid;
    }
    // Start wrapped past SND.NXT while end did not (the comment above
    // tcp_is_sackblock_valid draws it).
    if !start.lt(nxt) {
        return Block::Invalid;
    }
    // In the outstanding window; start == SND.UNA would be reneging and is refused.
    if start.gt(una) {
        return Block::Apply;
    }
    if dsack {
        // A D-SACK must lie wholly below SND.UNA.
        return if end.le(una) {
            Block::Ignore
        } else {
            Block::Invalid
        };
    }
    if ack != una && end.le(una) {
        return Block::Ignore;
    }
    Block::Invalid
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MSS: u32 = 1000;

    fn s(n: u32) -> Seq {
        Seq(n)
    }

    fn blk(list: &[(u32, u32)]) -> Vec<(Seq, Seq)> {
        list.iter().map(|&(a, b)| (Seq(a), Seq(b))).collect()
    }

    fn ranges(sb: &Scoreboard) -> Vec<(u32, u32)> {
        sb.ranges().iter().map(|r| (r.0 .0, r.1 .0)).collect()
    }

    #[test]
    fn one_loss_three_sacked_above_is_lost() {
        // Five 1000-byte segments 1000:6000 in flight; 1000:2000 is lost, the receiver
        // SACKs the next three one by one (RFC 6675 §5: DupThresh = 3).
        let (una, nxt) = (s(1000), s(6000));
        let mut sb = Scoreboard::default();
        let u = sb.on_ack(una, &blk(&[(2000, 3000)]), una, nxt);
        assert_eq!(
            u,
            SackUpdate {
                newly_sacked: 1000,
                dsack: false,
                invalid_blocks: 0
            }
        );
        assert!(!sb.is_lost(una, MSS));
        // pipe: 1000:2000 not lost yet (1) + 3000:6000 (3).
        assert_eq!(sb.pipe(una, nxt, MSS), 4000);
        sb.on_ack(una, &blk(&[(2000, 4000)]), una, nxt);
        // 2000 bytes above is not *more than* (3 - 1) * SMSS.
        assert!(!sb.is_lost(una, MSS));
        assert_eq!(sb.next_lost(una, una, nxt, MSS), None);
        assert_eq!(sb.pipe(una, nxt, MSS), 3000);
        let u = sb.on_ack(una, &blk(&[(2000, 5000)]), una, nxt);
        assert_eq!(u.newly_sacked, 1000);
        assert!(sb.is_lost(una, MSS));
        assert!(!sb.is_lost(s(2500), MSS), "SACKed bytes are not lost");
        assert!(!sb.is_lost(s(5000), MSS), "nothing SACKed above the tail");
        // pipe: the hole is lost (0) + 5000:6000 (1).
        assert_eq!(sb.pipe(una, nxt, MSS), 1000);
        assert_eq!(sb.next_lost(una, una, nxt, MSS), Some((s(1000), s(2000))));
        // Retransmit it: HighRxt 2000, it counts in pipe again and NextSeg moves on.
        sb.set_high_rxt(s(2000));
        assert_eq!(sb.pipe(una, nxt, MSS), 2000);
        assert_eq!(sb.next_lost(una, una, nxt, MSS), None);
        // The retransmission arrives: ACK 5000 clears the scoreboard.
        let u = sb.on_ack(s(5000), &[], una, nxt);
        assert_eq!(u, SackUpdate::default());
        assert!(sb.is_empty() && sb.sacked_bytes() == 0);
        assert_eq!(sb.high_rxt(), Some(s(5000)));
        assert_eq!(sb.pipe(s(5000), nxt, MSS), 1000);
    }

    #[test]
    fn three_discontiguous_ranges_make_a_loss() {
        // Small segments: three separate 100-byte SACKed ranges above 1000 (200 bytes
        // below the byte rule) still mark it lost.
        let (una, nxt) = (s(1000), s(9000));
        let mut sb = Scoreboard::default();
        sb.on_ack(
            una,
            &blk(&[(1500, 1600), (2000, 2100), (2500, 2600)]),
            una,
            nxt,
        );
        assert_eq!(ranges(&sb), vec![(1500, 1600), (2000, 2100), (2500, 2600)]);
        assert!(sb.is_lost(s(1000), MSS));
        assert!(!sb.is_lost(s(1600), MSS), "only two ranges above 1600");
        // The first hole is lost, the second is not: next_lost stops there.
        assert_eq!(sb.next_lost(una, una, nxt, MSS), Some((s(1000), s(1500))));
        assert_eq!(sb.next_lost(s(1500), una, nxt, MSS), None);
        // pipe = 0 (lost hole) + 400 + 400 + 6400 (tail).
        assert_eq!(sb.pipe(una, nxt, MSS), 7200);
    }

    #[test]
    fn next_lost_skips_what_was_retransmitted() {
        // Holes 1000:2000 and 3000:4000, 4 segments SACKed above both.
        let (una, nxt) = (s(1000), s(10_000));
        let mut sb = Scoreboard::default();
        sb.on_ack(una, &blk(&[(2000, 3000), (4000, 7000)]), una, nxt);
        assert_eq!(sb.next_lost(una, una, nxt, MSS), Some((s(1000), s(2000))));
        sb.set_high_rxt(s(1500));
        assert_eq!(sb.next_lost(una, una, nxt, MSS), Some((s(1500), s(2000))));
        sb.set_high_rxt(s(2000));
        assert_eq!(sb.next_lost(una, una, nxt, MSS), Some((s(3000), s(4000))));
        assert_eq!(
            sb.next_lost(s(3500), una, nxt, MSS),
            Some((s(3500), s(4000)))
        );
        // pipe: holes lost; 1000 bytes retransmitted below HighRxt; tail 7000:10000.
        assert_eq!(sb.pipe(una, nxt, MSS), 4000);
        sb.reset();
        assert!(sb.is_empty() && sb.high_rxt().is_none());
        assert_eq!(sb.pipe(una, nxt, MSS), 9000);
    }

    #[test]
    fn bogus_blocks_are_ignored_and_counted() {
        let (una, nxt) = (s(10_000), s(20_000));
        let mut sb = Scoreboard::default();
        let bad = blk(&[
            (15_000, 15_000),                             // empty
            (16_000, 15_000),                             // reversed
            (19_000, 21_000),                             // beyond SND.NXT
            (10_000, 11_000),                             // starts at SND.UNA
            (9_000, 11_000),                              // straddles SND.UNA
            (20_000 + (1 << 31) - 5, 20_005 + (1 << 31)), // start wrapped past SND.NXT
        ]);
        // The 6th block: start is "after" snd_nxt, end (2^31 + 5 later) is "before" it.
        assert!(s(20_000 + (1 << 31) - 5).gt(nxt) && s(20_005 + (1 << 31)).lt(nxt));
        let u = sb.on_ack(una, &bad, una, nxt);
        assert_eq!(
            u,
            SackUpdate {
                newly_sacked: 0,
                dsack: false,
                invalid_blocks: 6
            }
        );
        assert!(sb.is_empty());
        assert_eq!(sb.stats().invalid_blocks, 6);
        assert_eq!(sb.stats().blocks, 6);
        // Good blocks next to bad ones still count.
        let u = sb.on_ack(
            una,
            &blk(&[(12_000, 13_000), (19_000, 21_000), (19_000, 20_000)]),
            una,
            nxt,
        );
        assert_eq!(u.newly_sacked, 2000);
        assert_eq!(u.invalid_blocks, 1);
        // An old ACK (reordered) with an old block: skipped silently (the kernel does too).
        let u = sb.on_ack(s(9_000), &blk(&[(9_200, 9_500)]), una, nxt);
        assert_eq!(u, SackUpdate::default());
    }

    #[test]
    fn dsack_rfc2883_example_1_ack_dropped() {
        // RFC 2883 §4.1.1: 3000:3500 and 3500:4000 arrive, both ACKs are lost, the
        // sender retransmits 3000:3500. The receiver answers ACK 4000, SACK 3000:3500.
        let mut sb = Scoreboard::default();
        let u = sb.on_ack(s(4000), &blk(&[(3000, 3500)]), s(3000), s(4000));
        assert_eq!(
            u,
            SackUpdate {
                newly_sacked: 0,
                dsack: true,
                invalid_blocks: 0
            }
        );
        assert!(sb.is_empty());
        assert_eq!(sb.stats().dsacks, 1);
    }

    #[test]
    fn dsack_rfc2883_example_2_with_out_of_order_block() {
        // §4.1.2: 4000:4500 is lost, 4500:5000 arrives (ACK 4000 SACK 4500:5000 lost),
        // the sender retransmits 3000:3500: ACK 4000, SACK 3000:3500 4500:5000.
        let mut sb = Scoreboard::default();
        let u = sb.on_ack(
            s(4000),
            &blk(&[(3000, 3500), (4500, 5000)]),
            s(3000),
            s(5000),
        );
        assert_eq!(
            u,
            SackUpdate {
                newly_sacked: 500,
                dsack: true,
                invalid_blocks: 0
            }
        );
        assert_eq!(ranges(&sb), vec![(4500, 5000)]);
    }

    #[test]
    fn dsack_rfc2883_example_3_duplicate_of_out_of_order_segment() {
        // §4.1.3: 4000:4500 lost; ACK 4000 SACK 4500:5000, then SACK 4500:5500; a
        // duplicate 5000:5500 brings ACK 4000 SACK 5000:5500 4500:5500.
        let (una, nxt) = (s(4000), s(5500));
        let mut sb = Scoreboard::default();
        assert!(!sb.on_ack(una, &blk(&[(4500, 5000)]), una, nxt).dsack);
        assert_eq!(
            sb.on_ack(una, &blk(&[(4500, 5500)]), una, nxt).newly_sacked,
            500
        );
        let u = sb.on_ack(una, &blk(&[(5000, 5500), (4500, 5500)]), una, nxt);
        assert_eq!(
            u,
            SackUpdate {
                newly_sacked: 0,
                dsack: true,
                invalid_blocks: 0
            }
        );
        assert_eq!(ranges(&sb), vec![(4500, 5500)]);
    }

    #[test]
    fn dsack_rfc2883_partial_duplicate_subsegment() {
        // §4.2.1-style: 1000:1500 arrives late after a 1000-byte retransmission 1000:2000:
        // ACK 2500, SACK 1000:1500 (below the ACK).
        let mut sb = Scoreboard::default();
        sb.on_ack(s(1000), &blk(&[(2000, 2500)]), s(1000), s(2500));
        let u = sb.on_ack(s(2500), &blk(&[(1000, 1500)]), s(1500), s(2500));
        assert!(u.dsack && u.invalid_blocks == 0);
        assert!(sb.is_empty());
    }

    #[test]
    fn not_a_dsack() {
        let (una, nxt) = (s(4000), s(9000));
        let mut sb = Scoreboard::default();
        // First block above the ACK and not inside the second.
        let u = sb.on_ack(una, &blk(&[(6000, 6500), (4500, 5000)]), una, nxt);
        assert!(!u.dsack);
        assert_eq!(u.newly_sacked, 1000);
        // First block overlapping the second but sticking out.
        let u = sb.on_ack(una, &blk(&[(4500, 5500), (4500, 5000)]), una, nxt);
        assert!(!u.dsack);
        // Below the ACK but reversed: dubious, not a D-SACK, and invalid.
        let u = sb.on_ack(una, &blk(&[(3500, 3000)]), una, nxt);
        assert!(!u.dsack && u.invalid_blocks == 1);
    }

    #[test]
    fn advance_forgets_below_and_reneged_ranges() {
        let (una, nxt) = (s(1000), s(9000));
        let mut sb = Scoreboard::default();
        sb.on_ack(
            una,
            &blk(&[(2000, 3000), (4000, 5000), (6000, 7000)]),
            una,
            nxt,
        );
        assert_eq!(sb.sacked_bytes(), 3000);
        assert_eq!(sb.highest_sacked(), Some(s(7000)));
        // The hole 1000:2000 filled: the receiver acknowledges through 3000.
        sb.advance(s(3000));
        assert_eq!(ranges(&sb), vec![(4000, 5000), (6000, 7000)]);
        assert_eq!(sb.sacked_bytes(), 2000);
        assert!(sb.is_sacked(s(4000), s(5000)) && !sb.is_sacked(s(3000), s(5000)));
        assert_eq!(sb.stats().reneged, 0);
        // An ACK that stops inside 4000:5000: the receiver dropped what it SACKed.
        sb.on_ack(s(4500), &[], s(3000), nxt);
        assert_eq!(ranges(&sb), vec![(6000, 7000)]);
        assert_eq!(sb.stats().reneged, 1);
        // One that stops exactly at a range's start: reneging too.
        sb.advance(s(6000));
        assert!(sb.is_empty() && sb.sacked_bytes() == 0);
        assert_eq!(sb.stats().reneged, 2);
    }

    #[test]
    fn blocks_merge_and_wrap() {
        // Around the wrap: SND.UNA just below 2^32.
        let una = s(u32::MAX - 5499);
        let nxt = una.add(20_000);
        let mut sb = Scoreboard::default();
        let b = |o: u32, l: u32| (una.add(o), una.add(o + l));
        sb.on_ack(una, &[b(1000, 1000), b(5000, 1000)], una, nxt); // 5000 straddles 0
        assert_eq!(sb.ranges().len(), 2);
        // Touching blocks merge; overlapping ones add only what is new.
        let u = sb.on_ack(una, &[b(2000, 3000)], una, nxt);
        assert_eq!(u.newly_sacked, 3000);
        assert_eq!(sb.ranges(), &[b(1000, 5000)]);
        let u = sb.on_ack(una, &[b(500, 7000)], una, nxt);
        assert_eq!(u.newly_sacked, 2000);
        assert_eq!(sb.ranges(), &[b(500, 7000)]);
        assert!(sb.is_sacked(s(0), s(100)));
        assert_eq!(sb.highest_sacked(), Some(una.add(7500)));
    }

    #[test]
    fn full_scoreboard_drops_the_highest() {
        let (una, nxt) = (s(0), s(1_000_000));
        let mut sb = Scoreboard::default();
        for i in 0..MAX_RANGES as u32 {
            sb.on_ack(una, &blk(&[(1000 + 100 * i, 1050 + 100 * i)]), una, nxt);
        }
        assert_eq!(sb.ranges().len(), MAX_RANGES);
        let cap = sb.ranges().as_ptr();
        // A new highest range is the one forgotten.
        let u = sb.on_ack(una, &blk(&[(500_000, 500_100)]), una, nxt);
        assert_eq!(u.newly_sacked, 0);
        assert_eq!(sb.highest_sacked(), Some(s(1050 + 100 * 63)));
        // A new lower one pushes the highest out.
        let u = sb.on_ack(una, &blk(&[(100, 200)]), una, nxt);
        assert_eq!(u.newly_sacked, 100);
        assert_eq!(sb.ranges().len(), MAX_RANGES);
        assert_eq!(sb.highest_sacked(), Some(s(1050 + 100 * 62)));
        assert_eq!(sb.sacked_bytes(), 100 + 50 * 63);
        assert_eq!(sb.stats().ranges_dropped, 2);
        // Extending an existing range still works when full, and nothing reallocated.
        let u = sb.on_ack(una, &blk(&[(1050, 1100)]), una, nxt);
        assert_eq!(u.newly_sacked, 50);
        assert_eq!(sb.ranges().as_ptr(), cap);
    }

    /// The RFC's definitions applied octet by octet to a bitmap of `[una, nxt)` offsets.
    struct Model {
        sacked: Vec<bool>,
    }

    impl Model {
        /// (ranges above, bytes above) for each offset from `una` to `nxt`.
        fn above(&self, una: usize, nxt: usize) -> Vec<(usize, u64)> {
            let mut out = vec![(0, 0); nxt + 1];
            let (mut n, mut bytes) = (0usize, 0u64);
            for x in (una..nxt).rev() {
                out[x] = (n, bytes);
                if self.sacked[x] {
                    bytes += 1;
                    if x + 1 == nxt || !self.sacked[x + 1] {
                        n += 1;
                    }
                }
            }
            out
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Send(usize),
        Ack {
            ack_off: usize,
            old: bool,
            blocks: Vec<(u16, i64)>,
            garbage: Vec<(u32, u32)>,
        },
        Advance(usize),
        Rxt(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1usize..800).prop_map(Op::Send),
            (
                0usize..1000,
                any::<bool>(),
                proptest::collection::vec((any::<u16>(), 1i64..300), 0..5),
                proptest::collection::vec((any::<u32>(), any::<u32>()), 0..2)
            )
                .prop_map(|(ack_off, old, blocks, garbage)| Op::Ack {
                    ack_off,
                    old,
                    blocks,
                    garbage
                }),
            (0usize..600).prop_map(Op::Advance),
            (0usize..2000).prop_map(Op::Rxt),
        ]
    }

    proptest! {
        #[test]
        fn ranges_stay_sorted_disjoint_and_in_window(
            base: u32,
            ops in proptest::collection::vec(op(), 1..60),
            mss in 1u32..300,
        ) {
            const LEN: usize = 2048;
            let at = |o: usize| Seq(base).add(o as u32);
            let (mut una, mut nxt) = (0usize, 0usize);
            let mut sb = Scoreboard::default();
            let mut m = Model { sacked: vec![false; LEN + 1] };
            for op in ops {
                let mut newly_model = None;
                let mut newly = 0;
                match op {
                    Op::Send(n) => nxt = (nxt + n).min(LEN),
                    Op::Advance(n) => {
                        let new_una = (una + n).min(nxt);
                        sb.advance(at(new_una));
                        // Reneged: a SACKed run through new_una is forgotten.
                        let mut x = new_una;
                        while x < nxt && m.sacked[x] { m.sacked[x] = false; x += 1; }
                        una = new_una;
                    }
                    Op::Rxt(o) => sb.set_high_rxt(at(una + o % (nxt - una + 1))),
                    Op::Ack { ack_off, old, blocks, garbage } => {
                        // Mostly duplicate ACKs; some old (reordered), some advancing.
                        let ack = if old {
                            Seq(base).add(una as u32).sub((ack_off % 50) as u32)
                        } else if ack_off < 700 {
                            at(una)
                        } else {
                            at(una + ack_off % (nxt - una + 1))
                        };
                        // Blocks placed anywhere from 50 below SND.UNA to 50 above SND.NXT.
                        let span = (nxt - una + 100) as i64;
                        let mut wire: Vec<(Seq, Seq)> = blocks
                            .iter()
                            .map(|&(f, l)| {
                                let s = una as i64 - 50 + i64::from(f) * span / 65536;
                                (Seq(base).add(s as u32), Seq(base).add((s + l) as u32))
                            })
                            .collect();
                        wire.extend(garbage.iter().map(|&(s, e)| (Seq(s), Seq(e))));
                        let (una_s, nxt_s) = (at(una), at(nxt));
                        let up = sb.on_ack(ack, &wire, una_s, nxt_s);
                        newly = up.newly_sacked;
                        // Model: advance, then mark what is strictly inside (una, nxt].
                        if ack.gt(una_s) && ack.le(nxt_s) {
                            let new_una = una + ack.since(una_s) as usize;
                            let mut x = new_una;
                            while x < nxt && m.sacked[x] { m.sacked[x] = false; x += 1; }
                            una = new_una;
                        }
                        let mut count = 0u32;
                        for &(s, e) in &wire {
                            let (so, eo) = (s.diff(Seq(base)) as i64, e.diff(Seq(base)) as i64);
                            if so > una as i64 && so < eo && eo <= nxt as i64 {
                                for x in so as usize..eo as usize {
                                    if !m.sacked[x] { m.sacked[x] = true; count += 1; }
                                }
                            }
                        }
                        newly_model = Some(count);
                    }
                }
                // Forget model bits below una.
                for b in m.sacked.iter_mut().take(una) { *b = false; }

                // Structure: sorted, disjoint, not touching, inside (una, nxt].
                let r = sb.ranges();
                prop_assert!(r.len() <= MAX_RANGES);
                let mut sum = 0u32;
                for (k, &(s, e)) in r.iter().enumerate() {
                    prop_assert!(s.lt(e) && s.gt(at(una)) && e.le(at(nxt)), "{:?} outside ({}, {}]", (s, e), una, nxt);
                    if let Some(&(s2, _)) = r.get(k + 1) {
                        prop_assert!(e.lt(s2));
                    }
                    sum += e.since(s);
                }
                prop_assert_eq!(sum, sb.sacked_bytes());

                if sb.stats().ranges_dropped > 0 {
                    continue;
                }
                // Same bytes as the model.
                for x in una..nxt {
                    prop_assert_eq!(sb.is_sacked(at(x), at(x + 1)), m.sacked[x], "offset {}", x);
                }
                if let Some(c) = newly_model {
                    prop_assert_eq!(newly, c);
                }
                // SetPipe and NextSeg octet by octet.
                let above = m.above(una, nxt);
                let is_lost = |x: usize| lost(above[x].0, above[x].1, mss);
                let hr = sb.high_rxt().map(|h| h.since(Seq(base)) as usize);
                let mut pipe = 0u32;
                for x in una..nxt {
                    if !m.sacked[x] {
                        if !is_lost(x) { pipe += 1; }
                        if hr.is_some_and(|h| x < h) { pipe += 1; }
                    }
                }
                prop_assert_eq!(sb.pipe(at(una), at(nxt), mss), pipe);
                for x in una..nxt {
                    if !m.sacked[x] {
                        prop_assert_eq!(sb.is_lost(at(x), mss), is_lost(x), "IsLost({})", x);
                    }
                }
                let highest = (una..nxt).rev().find(|&x| m.sacked[x]).map(|x| x + 1);
                let floor = hr.map_or(una, |h| h.max(una));
                let expect = (floor..highest.unwrap_or(0))
                    .find(|&x| !m.sacked[x])
                    .filter(|&x| is_lost(x))
                    .map(|x| {
                        let end = (x..nxt).find(|&y| m.sacked[y]).unwrap_or(nxt);
                        (at(x), at(end))
                    });
                prop_assert_eq!(sb.next_lost(at(una), at(una), at(nxt), mss), expect);
            }
        }
    }
}
