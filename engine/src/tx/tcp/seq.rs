//! TCP sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4; the kernel's `before()` /
//! `after()` in `include/net/tcp.h`): two numbers compare by the sign of their 32-bit
//! difference, so the order holds across the wrap as long as they are less than 2^31
//! apart, which the window (at most 2^30, RFC 7323 §2.3) guarantees for every pair TCP
//! compares.

use std::fmt;

/// A sequence (or acknowledgement) number. No `Ord`: the order is only defined between
/// numbers less than 2^31 apart, so it is spelled out with [`Seq::lt`] and friends.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq(pub u32);

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seq({})", self.0)
    }
}

impl Seq {
    /// `self + n`, wrapping.
    #[expect(
        clippy::should_implement_trait,
        reason = "wrapping arithmetic on a u32 count, not `Add<Seq>`: spelled out on purpose"
    )]
    #[inline]
    #[must_use]
    pub fn add(self, n: u32) -> Seq {
        Seq(self.0.wrapping_add(n))
    }
    /// `self - n`, wrapping.
    #[expect(
        clippy::should_implement_trait,
        reason = "wrapping arithmetic on a u32 count, not `Sub<Seq>`: spelled out on purpose"
    )]
    #[inline]
    #[must_use]
    pub fn sub(self, n: u32) -> Seq {
        Seq(self.0.wrapping_sub(n))
    }
    /// Signed distance `self - other` (positive when `self` is after `other`).
    #[inline]
    pub fn diff(self, other: Seq) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }
    /// Bytes from `other` up to `self`, for `self` at or after `other`; 0 otherwise.
    #[inline]
    pub fn since(self, other: Seq) -> u32 {
        self.diff(other).max(0) as u32
    }
    /// `self` before `other` (the kernel's `before(self, other)`).
    #[inline]
    pub fn lt(self, other: Seq) -> bool {
        self.diff(other) < 0
    }
    /// `self` before or equal to `other`.
    #[inline]
    pub fn le(self, other: Seq) -> bool {
        self.diff(other) <= 0
    }
    /// `self` after `other` (the kernel's `after(self, other)`).
    #[inline]
    pub fn gt(self, other: Seq) -> bool {
        self.diff(other) > 0
    }
    /// `self` after or equal to `other`.
    #[inline]
    pub fn ge(self, other: Seq) -> bool {
        self.diff(other) >= 0
    }
    /// The later of the two.
    #[inline]
    #[must_use]
    pub fn max(self, other: Seq) -> Seq {
        if self.ge(other) {
            self
        } else {
            other
        }
    }
    /// The earlier of the two.
    #[inline]
    #[must_use]
    pub fn min(self, other: Seq) -> Seq {
        if self.le(other) {
            self
        } else {
            other
        }
    }
    /// `lo <= self < hi` (the kernel's `between(self, lo, hi - 1)` for a non-empty range;
    /// false for an empty one).
    #[inline]
    pub fn in_range(self, lo: Seq, hi: Seq) -> bool {
        self.ge(lo) && self.lt(hi)
    }
}

#[cfg(test)]
mod tests {
    use super::Seq;
    use proptest::prelude::*;

    #[test]
    fn wraps() {
        let a = Seq(u32::MAX - 10);
        let b = a.add(20);
        assert_eq!(b, Seq(9));
        assert!(a.lt(b) && b.gt(a) && a.le(a) && a.ge(a));
        assert_eq!(b.diff(a), 20);
        assert_eq!(a.diff(b), -20);
        assert_eq!(b.since(a), 20);
        assert_eq!(a.since(b), 0);
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
        assert!(Seq(0).in_range(a, b) && !b.in_range(a, b) && !a.in_range(a, a));
    }

    proptest! {
        #[test]
        fn order_is_translation_invariant(base: u32, d in 1u32..(1 << 31), shift: u32) {
            let a = Seq(base);
            let b = a.add(d);
            prop_assert!(a.lt(b) && b.gt(a) && !b.lt(a) && !a.gt(b));
            let (a2, b2) = (a.add(shift), b.add(shift));
            prop_assert_eq!(a2.lt(b2), a.lt(b));
            prop_assert_eq!(b2.diff(a2), d as i32);
            prop_assert_eq!(b.sub(d), a);
        }

        #[test]
        fn since_and_range(base: u32, d in 0u32..(1 << 30), e in 0u32..(1 << 30)) {
            let lo = Seq(base);
            let hi = lo.add(d);
            let x = lo.add(e);
            prop_assert_eq!(x.in_range(lo, hi), e < d);
            prop_assert_eq!(hi.since(lo), d);
            prop_assert_eq!(x.max(lo), x);
        }
    }
}
