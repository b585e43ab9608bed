//! A stream, as TRex's stateless streams: what one queue sends for it (a synthetic frame
//! source or a replayed capture), how many, until when, with which priority. Its rate is
//! not here: the qdisc enforces it (`tx::qdisc`), with the stream index as the flow key.

use std::time::Instant;

use super::{replay::ReplaySource, source::FrameSource};

/// Where a stream's frames come from.
#[derive(Debug)]
pub enum StreamSource {
    /// Template, field variation and sizes.
    Synth(Box<FrameSource>),
    /// A capture being replayed.
    Replay(ReplaySource),
}

impl StreamSource {
    /// Writes the next frame into `buf`: (length, earliest departure time in ns from the
    /// run's origin, 0 for none). Length 0: nothing written (exhausted, or `buf` too small).
    #[inline]
    pub fn next_into(&mut self, buf: &mut [u8]) -> (usize, u64) {
        match self {
            StreamSource::Synth(s) => (s.next_into(buf), 0),
            StreamSource::Replay(r) => r.next_into(buf),
        }
    }

    /// The departure time of the next frame, if it has one (a replay at original timing).
    #[inline]
    pub fn peek_edt(&self) -> Option<u64> {
        match self {
            StreamSource::Synth(_) => None,
            StreamSource::Replay(r) => r.peek_edt(),
        }
    }

    /// True when the source has nothing more to send (a replay whose loops are done).
    pub fn exhausted(&self) -> bool {
        match self {
            StreamSource::Synth(_) => false,
            StreamSource::Replay(r) => r.exhausted(),
        }
    }
}

/// One stream as one queue runs it.
#[derive(Debug)]
pub struct QueueStream {
    /// The frames.
    pub source: StreamSource,
    /// `skb->priority` analogue for the `prio` qdisc (from the stream's DSCP).
    pub priority: u8,
    /// This queue's share of the stream's count.
    pub count: Option<u64>,
    /// When the stream stops producing (its duration).
    pub deadline: Option<Instant>,
}

impl QueueStream {
    /// Whether the stream still produces, having built `built` frames, at `now`.
    #[inline]
    pub fn active(&self, built: u64, now: Instant) -> bool {
        !self.source.exhausted()
            && self.count.is_none_or(|c| built < c)
            && self.deadline.is_none_or(|d| now < d)
    }
}
