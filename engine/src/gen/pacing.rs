//! A pacing clock: how many packets are due at a given time for a given rate. Computed
//! from the start of the run (not from the last send), so rounding and late wake-ups
//! never accumulate into a rate error: the count due at time t is ⌊rate·t⌋.

use std::time::Duration;

/// Packets-per-second pacing from a fixed origin.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    /// Packets per second (> 0).
    rate: f64,
}

impl Pacer {
    /// A pacer for `rate` packets/s; `None` for a rate that is not positive and finite.
    pub fn new(rate: f64) -> Option<Self> {
        (rate.is_finite() && rate > 0.0).then_some(Pacer { rate })
    }

    /// The rate.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Packets due by `elapsed` since the origin, minus those `sent` already.
    #[inline]
    pub fn due(&self, elapsed: Duration, sent: u64) -> u64 {
        let total = (self.rate * elapsed.as_secs_f64()).floor() as u64;
        total.saturating_sub(sent)
    }

    /// Frames worth `span` of time at this rate, clamped to `1..=max`.
    #[inline]
    pub fn burst(&self, span: Duration, max: usize) -> usize {
        ((self.rate * span.as_secs_f64()) as usize).clamp(1, max.max(1))
    }

    /// When, measured from the origin, packet number `sent + 1` becomes due.
    #[inline]
    pub fn next_due(&self, sent: u64) -> Duration {
        Duration::from_secs_f64((sent + 1) as f64 / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_is_floor_of_rate_times_time() {
        let p = Pacer::new(100_000.0).unwrap();
        assert_eq!(p.due(Duration::from_millis(0), 0), 0);
        assert_eq!(p.due(Duration::from_micros(10), 0), 1);
        assert_eq!(p.due(Duration::from_millis(1), 0), 100);
        assert_eq!(p.due(Duration::from_millis(1), 60), 40);
        assert_eq!(
            p.due(Duration::from_millis(1), 200),
            0,
            "ahead of schedule: nothing due"
        );
        assert_eq!(p.due(Duration::from_secs(10), 0), 1_000_000);
        assert_eq!(p.next_due(0), Duration::from_micros(10));
        assert_eq!(p.burst(Duration::from_micros(100), 64), 10);
        assert_eq!(
            Pacer::new(10.0)
                .unwrap()
                .burst(Duration::from_micros(100), 64),
            1
        );
        assert_eq!(
            Pacer::new(1e9)
                .unwrap()
                .burst(Duration::from_micros(100), 64),
            64
        );
    }

    #[test]
    fn rejects_bad_rates() {
        assert!(Pacer::new(0.0).is_none());
        assert!(Pacer::new(-1.0).is_none());
        assert!(Pacer::new(f64::NAN).is_none());
        assert!(Pacer::new(f64::INFINITY).is_none());
    }
}
