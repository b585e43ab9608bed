//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// One's-complement sum of `data` as big-endian 16-bit words, folded to 16 bits, added to
/// `initial` (an unfolded partial sum, e.g. a pseudo-header's).
#[inline]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = initial as u64;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u64) << 8;
    }
    fold(acc)
}

/// Folds carries until the sum fits 16 bits.
#[inline]
pub fn fold(mut acc: u64) -> u32 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

/// The checksum field value for `data` (with the field itself zeroed) and a partial sum.
#[inline]
pub fn checksum(data: &[u8], initial: u32) -> u16 {
    !(sum(data, initial) as u16)
}

/// IPv4 pseudo-header partial sum for UDP/TCP (RFC 768, RFC 793).
#[inline]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: u16) -> u32 {
    let mut acc = 0u64;
    acc +=
        u16::from_be_bytes([src[0], src[1]]) as u64 + u16::from_be_bytes([src[2], src[3]]) as u64;
    acc +=
        u16::from_be_bytes([dst[0], dst[1]]) as u64 + u16::from_be_bytes([dst[2], dst[3]]) as u64;
    acc += proto as u64 + l4_len as u64;
    fold(acc)
}

/// RFC 1624 eqn. 3: the new checksum when one 16-bit word changes from `old` to `new`:
/// HC' = ~(~HC + ~m + m').
#[inline]
pub fn update(check: u16, old: u16, new: u16) -> u16 {
    let acc = (!check as u64) + (!old as u64 & 0xffff) + new as u64;
    !(fold(acc) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 example bytes: 00 01 f2 03 f4 f5 f6 f7 → sum 0xddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&d, 0), 0xddf2);
        assert_eq!(checksum(&d, 0), !0xddf2u16);
    }

    #[test]
    fn known_ipv4_header() {
        // A classic header (Wikipedia's IPv4 checksum example): checksum 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h, 0), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(
            sum(&h, 0),
            0xffff,
            "a header with its checksum sums to all ones"
        );
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0xab], 0), 0xab00);
        assert_eq!(sum(&[], 0), 0);
    }

    proptest::proptest! {
        #[test]
        fn incremental_update_matches_recompute(mut data in proptest::collection::vec(proptest::num::u8::ANY, 4..64), idx in 0usize..30, new in proptest::num::u16::ANY) {
            let words = data.len() / 2;
            let i = (idx % words.max(1)) * 2;
            let old_ck = checksum(&data, 0);
            let old = u16::from_be_bytes([data[i], data[i + 1]]);
            data[i..i + 2].copy_from_slice(&new.to_be_bytes());
            let recomputed = checksum(&data, 0);
            let incremental = update(old_ck, old, new);
            // 0x0000 and 0xffff are the same number in one's complement.
            proptest::prop_assert!(incremental == recomputed || (incremental ^ recomputed) == 0xffff && (incremental == 0 || incremental == 0xffff));
        }
    }
}
