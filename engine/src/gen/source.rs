//! The frame source a TX loop calls once per frame: a template, a size distribution and a
//! field varier put together.
//!
//! Every size of one template is a prefix of the largest one, except four 16-bit words: the
//! IP length, the IPv4 header checksum, the UDP length and the L4 checksum (the payload
//! fill depends only on the position in the payload). So the source keeps one frame, the
//! largest, and per size those four words; [`FrameSource::next_into`] is a `memcpy` of the
//! prefix, up to four 16-bit patches, and the varier's few writes with incremental
//! checksums. Nothing is allocated per frame.

use crate::wire::template::TemplateSpec;
use crate::wire::FCS_LEN;

use super::size::{SizePicker, SizeSpec};
use super::vary::{Variation, Varier};

/// What differs between sizes of one template: the frame length and the words at the
/// source's patch offsets.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Frame length without FCS; 0 for a size the distribution never picks.
    len: u16,
    /// The words to write at `FrameSource::patch_at`.
    words: [u16; 4],
}

/// Builds one stream's frames into caller-provided buffers.
#[derive(Debug, Clone)]
pub struct FrameSource {
    /// The frame for the largest size; every other size is its prefix plus patches.
    frame: Vec<u8>,
    /// Per size from `base` up, its length and patch words.
    by_size: Vec<Slot>,
    /// The smallest size the picker can return.
    base: usize,
    /// Offsets of the per-size words (IP length, IPv4 checksum, UDP length, L4 checksum),
    /// the first `n_patch` of them used.
    patch_at: [usize; 4],
    n_patch: usize,
    picker: SizePicker,
    varier: Varier,
    /// How many distinct requested sizes were below the template's minimum and raised.
    raised: usize,
    /// The largest frame written (no FCS).
    max_len: usize,
}

impl FrameSource {
    /// Prebuilds the frames of `spec` for every size `sizes` can pick (sizes below
    /// `spec.min_size()` are raised to it: see [`FrameSource::raised_sizes`]), with `var`
    /// applied per frame. `seed` seeds the size picker (a uniform distribution);
    /// `var.mode` carries the varier's own seed.
    pub fn new(
        spec: &TemplateSpec,
        var: &Variation,
        sizes: &SizeSpec,
        seed: u64,
    ) -> Result<Self, String> {
        spec.validate().map_err(|e| e.to_string())?;
        sizes.validate()?;
        let varier = Varier::new(var, spec)?;
        let requested = sizes.distinct();
        let (Some(&base), Some(&top)) = (requested.first(), requested.last()) else {
            return Err("no frame sizes to send (e.g. 64, 64-1518 or imix)".into());
        };
        let min = spec.min_size();
        let raised = requested.iter().filter(|&&n| n < min).count();
        let frame = spec.build(top.max(min)).map_err(|e| e.to_string())?;
        let lay = spec.layout();
        let mut patch_at = [0usize; 4];
        let mut n_patch = 0;
        for at in [
            Some(lay.ip_len),
            lay.ip_csum,
            lay.udp_len,
            Some(lay.l4_csum),
        ]
        .into_iter()
        .flatten()
        {
            patch_at[n_patch] = at;
            n_patch += 1;
        }
        let mut by_size = vec![Slot::default(); top - base + 1];
        let mut last: Option<(usize, Slot)> = None;
        for &n in &requested {
            let eff = n.max(min);
            let slot = match last {
                Some((m, s)) if m == eff => s,
                _ => {
                    let f = spec.build(eff).map_err(|e| e.to_string())?;
                    let mut words = [0u16; 4];
                    for (w, &at) in words.iter_mut().zip(&patch_at[..n_patch]) {
                        *w = u16::from_be_bytes([f[at], f[at + 1]]);
                    }
                    // MAX_FRAME_WITH_FCS (9022) bounds every length: fits 16 bits.
                    let slot = Slot {
                        len: f.len() as u16,
                        words,
                    };
                    // The prefix-plus-patches scheme must give exactly the built frame.
                    let mut g = frame[..f.len()].to_vec();
                    patch(&mut g, &patch_at[..n_patch], &slot.words);
                    if g != f {
                        return Err(format!(
                            "internal error: the {} frame of size {eff} is not a prefix of the size-{} one",
                            spec.kind,
                            top.max(min)
                        ));
                    }
                    slot
                }
            };
            last = Some((eff, slot));
            by_size[n - base] = slot;
        }
        Ok(FrameSource {
            max_len: frame.len(),
            frame,
            by_size,
            base,
            patch_at,
            n_patch,
            picker: SizePicker::new(sizes, seed),
            varier,
            raised,
        })
    }

    /// Writes the next frame (no FCS) at the start of `buf` and returns its length; 0 if
    /// `buf` is too small for it (the size pick and nothing else is used up then).
    #[inline]
    pub fn next_into(&mut self, buf: &mut [u8]) -> usize {
        let size = self.picker.next();
        let Some(slot) = self.by_size.get(size.wrapping_sub(self.base)) else {
            return 0;
        };
        let len = usize::from(slot.len);
        let (Some(dst), Some(src)) = (buf.get_mut(..len), self.frame.get(..len)) else {
            return 0;
        };
        dst.copy_from_slice(src);
        patch(dst, &self.patch_at[..self.n_patch], &slot.words);
        self.varier.apply(dst);
        len
    }

    /// The largest frame `next_into` writes (no FCS): the room a buffer needs.
    pub fn max_frame_len(&self) -> usize {
        self.max_len
    }

    /// The largest size (FCS included) sent.
    pub fn max_size(&self) -> usize {
        self.max_len + FCS_LEN
    }

    /// How many distinct requested sizes were below the template's minimum and are sent
    /// at the minimum instead (for the CLI to warn about).
    pub fn raised_sizes(&self) -> usize {
        self.raised
    }
}

/// Writes `words` big-endian at the offsets `at` (skipping any that do not fit).
#[inline]
fn patch(frame: &mut [u8], at: &[usize], words: &[u16; 4]) {
    for (&at, w) in at.iter().zip(words) {
        if let Some(p) = frame.get_mut(at..at + 2) {
            p.copy_from_slice(&w.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::vary::{AddrRange, PortRange, VaryMode};
    use crate::wire::template::{check_checksums, Payload, TemplateKind, Vlan};
    use std::net::IpAddr;

    fn spec(kind: TemplateKind, vlan: bool, payload: Payload) -> TemplateSpec {
        let (s, d): (IpAddr, IpAddr) = if kind.is_v6() {
            ("2001:2::1".parse().unwrap(), "2001:2::2".parse().unwrap())
        } else {
            ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap())
        };
        let mut t = TemplateSpec::new(kind, s, d);
        t.vlan = vlan.then_some(Vlan { id: 10, pcp: 1 });
        t.payload = payload;
        t
    }

    #[test]
    fn unvaried_frames_equal_built_templates() {
        for kind in TemplateKind::ALL {
            for vlan in [false, true] {
                let t = spec(kind, vlan, Payload::Bytes(b"skiff!!".to_vec()));
                let sizes = SizeSpec::Uniform { lo: 64, hi: 300 };
                let mut src = FrameSource::new(&t, &Variation::default(), &sizes, 3).unwrap();
                assert_eq!(src.max_frame_len(), 296);
                let raised = (64..t.min_size()).count();
                assert_eq!(src.raised_sizes(), raised, "{kind} vlan={vlan}");
                let mut buf = [0u8; 400];
                for _ in 0..2000 {
                    let n = src.next_into(&mut buf);
                    let want = t.build((n + FCS_LEN).max(t.min_size())).unwrap();
                    assert_eq!(&buf[..n], &want[..], "{kind} vlan={vlan} len={n}");
                }
            }
        }
    }

    #[test]
    fn small_buffer_gives_zero() {
        let t = spec(TemplateKind::Udp4, false, Payload::Zero);
        let mut src =
            FrameSource::new(&t, &Variation::default(), &SizeSpec::Fixed(128), 0).unwrap();
        assert_eq!(src.next_into(&mut [0u8; 123]), 0);
        assert_eq!(src.next_into(&mut []), 0);
        assert_eq!(src.next_into(&mut [0u8; 124]), 124);
        assert_eq!(src.max_size(), 128);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let t = spec(TemplateKind::Icmp4, false, Payload::Zero);
        let v = Variation {
            dst_port: Some(PortRange { lo: 1, hi: 2 }),
            ..Default::default()
        };
        assert!(FrameSource::new(&t, &v, &SizeSpec::Fixed(64), 0).is_err());
        let v = Variation::default();
        assert!(FrameSource::new(&t, &v, &SizeSpec::Weighted(vec![]), 0).is_err());
        assert!(FrameSource::new(&t, &v, &SizeSpec::Fixed(9023), 0).is_err());
    }

    #[test]
    fn imix_exact_through_the_source() {
        let t = spec(TemplateKind::TcpSyn6, true, Payload::Pattern);
        let mut src = FrameSource::new(
            &t,
            &Variation::default(),
            &SizeSpec::parse("imix").unwrap(),
            0,
        )
        .unwrap();
        let mut buf = vec![0u8; 2048];
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..120_000 {
            *counts.entry(src.next_into(&mut buf) + FCS_LEN).or_insert(0) += 1;
        }
        // 64 is below tcp-syn6-over-VLAN's 86-byte minimum: raised, counted once.
        assert_eq!(src.raised_sizes(), 1);
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            [(86, 70_000), (594, 40_000), (1518, 10_000)]
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        /// The RFC 1624 check: every varied frame's checksums equal a full recomputation,
        /// and every varied field stays in its range.
        #[test]
        fn varied_frames_checksum_like_a_recompute(
            k in 0usize..6, vlan: bool, pay in 0usize..3, random: bool, seed: u64,
            src_ip in proptest::option::of((proptest::num::u32::ANY, 0u32..70_000)),
            dst_ip in proptest::option::of((proptest::num::u32::ANY, 0u32..70_000)),
            high in proptest::num::u128::ANY,
            src_port in proptest::option::of((proptest::num::u16::ANY, proptest::num::u16::ANY)),
            dst_port in proptest::option::of((proptest::num::u16::ANY, proptest::num::u16::ANY)),
            lo in 64usize..200, span in 0usize..100,
        ) {
            let kind = TemplateKind::ALL[k];
            let payload = [Payload::Zero, Payload::Pattern, Payload::Bytes(vec![0xff, 0xfe, 1])][pay].clone();
            let t = spec(kind, vlan, payload);
            let range = |(start, len): (u32, u32)| {
                let end = start.saturating_add(len);
                if kind.is_v6() {
                    let h = high & !0xffff_ffffu128;
                    AddrRange::new(
                        IpAddr::from((h | u128::from(start)).to_be_bytes()),
                        IpAddr::from((h | u128::from(end)).to_be_bytes()),
                    ).unwrap()
                } else {
                    AddrRange::new(IpAddr::from(start.to_be_bytes()), IpAddr::from(end.to_be_bytes())).unwrap()
                }
            };
            let ports = |(a, b): (u16, u16)| PortRange { lo: a.min(b), hi: a.max(b) };
            let v = Variation {
                src_ip: src_ip.map(range),
                dst_ip: dst_ip.map(range),
                src_port: src_port.map(ports),
                dst_port: if kind.is_icmp() { None } else { dst_port.map(ports) },
                mode: if random { VaryMode::Random { seed } } else { VaryMode::Increment },
            };
            let sizes = SizeSpec::Uniform { lo, hi: lo + span };
            let mut src = FrameSource::new(&t, &v, &sizes, seed).unwrap();
            let lay = t.layout();
            let mut buf = [0u8; 400];
            for i in 0..64 {
                let n = src.next_into(&mut buf);
                proptest::prop_assert!(n + FCS_LEN >= lo.max(t.min_size()) && n + FCS_LEN <= (lo + span).max(t.min_size()));
                let f = &buf[..n];
                if let Err(e) = check_checksums(&t, f) {
                    proptest::prop_assert!(false, "frame {}: {}", i, e);
                }
                let addr = |at: usize| -> IpAddr {
                    if kind.is_v6() {
                        IpAddr::from(<[u8; 16]>::try_from(&f[at..at + 16]).unwrap())
                    } else {
                        IpAddr::from(<[u8; 4]>::try_from(&f[at..at + 4]).unwrap())
                    }
                };
                let port = |at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
                let sa = v.src_ip.map_or(t.src_ip == addr(lay.src_ip), |r| r.contains(addr(lay.src_ip)));
                let da = v.dst_ip.map_or(t.dst_ip == addr(lay.dst_ip), |r| r.contains(addr(lay.dst_ip)));
                proptest::prop_assert!(sa && da);
                let sp_at = lay.src_port.or(lay.icmp_id).unwrap();
                proptest::prop_assert!(v.src_port.map_or(port(sp_at) == t.src_port, |r| r.contains(port(sp_at))));
                if let Some(at) = lay.dst_port {
                    proptest::prop_assert!(v.dst_port.map_or(port(at) == t.dst_port, |r| r.contains(port(at))));
                }
            }
        }
    }
}
