//! Field variation: per frame, new source/destination addresses and ports (the ICMP echo
//! identifier for ICMP templates) written over a frame freshly copied from its template,
//! as pktgen's `IPSRC_INC` / `UDPSRC_INC` / `*_RND` flags do.
//!
//! The checksums are fixed incrementally (RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m')), never
//! recomputed: the template's field values m are known, so Σ~m is computed once in
//! [`Varier::new`] and each frame only adds the new words m' and folds once per checksum.
//! The IPv4 header checksum covers the addresses; the UDP, TCP and ICMPv6 checksums cover
//! them through the pseudo-header (ICMPv4's does not); the L4 checksum covers the ports.
//!
//! Only the low 32 bits of an IPv6 address vary (the high 96 are the same for the whole
//! range), so every varied field is one 16- or 32-bit write.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rand::distributions::{Distribution, Uniform};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::wire::checksum;
use crate::wire::template::TemplateSpec;

/// How the varied fields move from frame to frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VaryMode {
    /// Each field steps through its range by one, wrapping, independently of the others
    /// (pktgen's `*_INC`): a deterministic tuple sequence.
    #[default]
    Increment,
    /// Each field uniform in its range, from a `SmallRng` seeded with `seed`: the same seed
    /// gives the same sequence.
    Random {
        /// RNG seed.
        seed: u64,
    },
}

/// Examples for address-range error messages.
const ADDR_EXAMPLES: &str =
    "e.g. 198.18.0.1, 198.18.0.1-198.18.0.200, 198.18.0.0/24, 2001:2::1-2001:2::ff or 2001:2::/120";

/// An inclusive range of IPv4 addresses, or of IPv6 addresses that share their high 96 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrRange {
    /// IPv6: the high 96 bits, the same for the whole range; `None` for IPv4.
    high: Option<[u8; 12]>,
    /// First value of the varying 32 bits (the whole IPv4 address, an IPv6 one's low 32).
    lo: u32,
    /// Last value, `lo <= hi`.
    hi: u32,
}

impl AddrRange {
    /// One address.
    pub fn single(a: IpAddr) -> Self {
        let (high, low) = split(a);
        AddrRange {
            high,
            lo: low,
            hi: low,
        }
    }

    /// `first..=last`: same family, `first <= last`, and for IPv6 at most 2^32 addresses
    /// within one /96.
    pub fn new(first: IpAddr, last: IpAddr) -> Result<Self, String> {
        let ((h1, lo), (h2, hi)) = (split(first), split(last));
        if first.is_ipv6() != last.is_ipv6() {
            return Err(format!(
                "address range {first}-{last} mixes IPv4 and IPv6 ({ADDR_EXAMPLES})"
            ));
        }
        if first > last {
            return Err(format!(
                "address range {first}-{last} runs backwards: the first address must not be above the last ({ADDR_EXAMPLES})"
            ));
        }
        if h1 != h2 {
            // first <= last (checked above), so this cannot underflow.
            let last_offset = ip6_u128(last) - ip6_u128(first);
            return Err(if last_offset >= 1 << 32 {
                format!(
                    "IPv6 range {first}-{last} spans more than 2^32 addresses: only the low 32 bits of an IPv6 address vary ({ADDR_EXAMPLES})"
                )
            } else {
                format!(
                    "IPv6 range {first}-{last} crosses a /96 boundary: only the low 32 bits of an IPv6 address vary, so the first 96 bits must be the same ({ADDR_EXAMPLES})"
                )
            });
        }
        Ok(AddrRange { high: h1, lo, hi })
    }

    /// Parses `198.18.0.1`, `198.18.0.1-198.18.0.200`, `198.18.0.0/24` (network to broadcast
    /// inclusive; host bits are ignored; /32 is one address) and the IPv6 forms
    /// `2001:2::1-2001:2::ff`, `2001:2::/120` (a prefix of /96 or longer).
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let addr = |a: &str| -> Result<IpAddr, String> {
            a.trim().parse::<IpAddr>().map_err(|_| {
                format!("bad address range {s:?}: {a:?} is not an IPv4 or IPv6 address ({ADDR_EXAMPLES})")
            })
        };
        if let Some((a, p)) = t.split_once('/') {
            let a = addr(a)?;
            let max = if a.is_ipv6() { 128 } else { 32 };
            let prefix: u32 = p.trim().parse().ok().filter(|&n| n <= max).ok_or_else(|| {
                format!("bad address range {s:?}: prefix length {p:?} is not a number in 0..={max} ({ADDR_EXAMPLES})")
            })?;
            let host_bits = max - prefix;
            if host_bits > 32 {
                return Err(format!(
                    "bad address range {s:?}: a /{prefix} spans 2^{host_bits} addresses, more than 2^32: only the low 32 bits of an IPv6 address vary, use /96 or longer ({ADDR_EXAMPLES})"
                ));
            }
            let (high, low) = split(a);
            // host_bits ≤ 32 here: a mask of that many low bits, computed in 64 bits so /0
            // of IPv4 (32 host bits) does not overflow the shift.
            let host_mask = ((1u64 << host_bits) - 1) as u32;
            return Ok(AddrRange {
                high,
                lo: low & !host_mask,
                hi: low | host_mask,
            });
        }
        if let Some((a, b)) = t.split_once('-') {
            return AddrRange::new(addr(a)?, addr(b)?)
                .map_err(|e| format!("bad address range {s:?}: {e}"));
        }
        addr(t).map(AddrRange::single)
    }

    /// Whether these are IPv6 addresses.
    pub fn is_v6(&self) -> bool {
        self.high.is_some()
    }

    /// How many addresses (1..=2^32).
    pub fn len(&self) -> u64 {
        u64::from(self.hi - self.lo) + 1
    }

    /// Never true: a range holds at least one address (here for `len`'s sake).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The first address.
    pub fn first(&self) -> IpAddr {
        self.join(self.lo)
    }

    /// The last address.
    pub fn last(&self) -> IpAddr {
        self.join(self.hi)
    }

    /// Whether `a` is in the range.
    pub fn contains(&self, a: IpAddr) -> bool {
        let (high, low) = split(a);
        high == self.high && (self.lo..=self.hi).contains(&low)
    }

    /// The address with these varying 32 bits.
    fn join(&self, low: u32) -> IpAddr {
        match self.high {
            None => IpAddr::V4(Ipv4Addr::from(low)),
            Some(h) => {
                let mut o = [0u8; 16];
                o[..12].copy_from_slice(&h);
                o[12..].copy_from_slice(&low.to_be_bytes());
                IpAddr::V6(Ipv6Addr::from(o))
            }
        }
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.first())
        } else {
            write!(f, "{}-{}", self.first(), self.last())
        }
    }
}

/// An address as (IPv6 high 96 bits, low 32 bits) — the whole address for IPv4.
fn split(a: IpAddr) -> (Option<[u8; 12]>, u32) {
    match a {
        IpAddr::V4(a) => (None, u32::from(a)),
        IpAddr::V6(a) => {
            let o = a.octets();
            let mut high = [0u8; 12];
            high.copy_from_slice(&o[..12]);
            (Some(high), u32::from_be_bytes([o[12], o[13], o[14], o[15]]))
        }
    }
}

fn ip6_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// An inclusive range of ports (or ICMP echo identifiers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port, `>= lo`.
    pub hi: u16,
}

impl PortRange {
    /// Parses `9000` or `9000-9099`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let port = |p: &str| -> Result<u16, String> {
            p.trim().parse::<u16>().map_err(|_| {
                format!("bad port range {s:?}: {p:?} is not a port number 0..=65535 (e.g. 9000 or 9000-9099)")
            })
        };
        let r = match s.split_once('-') {
            Some((a, b)) => PortRange {
                lo: port(a)?,
                hi: port(b)?,
            },
            None => {
                let p = port(s)?;
                PortRange { lo: p, hi: p }
            }
        };
        r.check()
            .map_err(|e| format!("bad port range {s:?}: {e}"))?;
        Ok(r)
    }

    /// How many ports (1..=65536).
    pub fn len(&self) -> u32 {
        u32::from(self.hi.saturating_sub(self.lo)) + 1
    }

    /// Never true: a range holds at least one port (here for `len`'s sake).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `p` is in the range.
    pub fn contains(&self, p: u16) -> bool {
        (self.lo..=self.hi).contains(&p)
    }

    fn check(&self) -> Result<(), String> {
        if self.lo > self.hi {
            return Err(format!(
                "{}-{} runs backwards: the first port must not be above the last (e.g. 9000-9099)",
                self.lo, self.hi
            ));
        }
        Ok(())
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// Which fields vary, over which ranges, and how. A field without a range keeps the
/// template's value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Variation {
    /// Source addresses.
    pub src_ip: Option<AddrRange>,
    /// Destination addresses.
    pub dst_ip: Option<AddrRange>,
    /// Source ports; the echo identifier for ICMP templates.
    pub src_port: Option<PortRange>,
    /// Destination ports (UDP/TCP only).
    pub dst_port: Option<PortRange>,
    /// Increment or random.
    pub mode: VaryMode,
}

impl Variation {
    /// `--flows N`: source ports `base_port..=base_port + N - 1`, one flow per port.
    pub fn flows(n: u32, base_port: u16) -> Result<PortRange, String> {
        if n == 0 {
            return Err("--flows 0: give at least one flow (e.g. --flows 64)".into());
        }
        let last = u64::from(base_port) + u64::from(n - 1);
        let hi = u16::try_from(last).map_err(|_| {
            format!(
                "--flows {n} from source port {base_port} needs ports up to {last}, beyond 65535: lower --flows (at most {}) or the source port",
                65536 - u64::from(base_port)
            )
        })?;
        Ok(PortRange { lo: base_port, hi })
    }

    /// Whether nothing varies.
    pub fn is_empty(&self) -> bool {
        self.src_ip.is_none()
            && self.dst_ip.is_none()
            && self.src_port.is_none()
            && self.dst_port.is_none()
    }

    /// Checks the variation against the template: address families, port ranges, and no
    /// destination-port variation for ICMP (an echo request has no ports; the source port
    /// range varies its identifier).
    pub fn validate(&self, spec: &TemplateSpec) -> Result<(), String> {
        let kind = spec.kind;
        for (name, r) in [("source", self.src_ip), ("destination", self.dst_ip)] {
            if let Some(r) = r {
                if r.is_v6() != kind.is_v6() {
                    return Err(format!(
                        "{name} address range {r} is not {}, which template {kind} needs (e.g. {})",
                        kind.family(),
                        if kind.is_v6() {
                            "2001:2::1-2001:2::ff"
                        } else {
                            "198.18.0.1-198.18.0.200"
                        }
                    ));
                }
            }
        }
        for (name, r) in [("source", self.src_port), ("destination", self.dst_port)] {
            if let Some(r) = r {
                r.check().map_err(|e| format!("{name} port range {e}"))?;
            }
        }
        if kind.is_icmp() && self.dst_port.is_some() {
            return Err(format!(
                "template {kind} (an ICMP echo request) has no destination port to vary; a source port range varies the echo identifier instead (e.g. --src-port 1-100)"
            ));
        }
        Ok(())
    }
}

/// One varied field.
#[derive(Debug, Clone)]
struct Field {
    /// Offset of the varying bytes: 4 for an address's (low) 32 bits, 2 for a port.
    at: usize,
    /// 32 bits (an address) or 16 (a port).
    wide: bool,
    /// Range, inclusive.
    lo: u32,
    hi: u32,
    /// Random mode: uniform in `lo..=hi`, its rejection zone computed once (built only
    /// after `Variation::validate` made sure `lo <= hi`, which `new_inclusive` asserts).
    uniform: Uniform<u32>,
    /// Increment mode: the next offset from `lo`, in `0..=hi - lo`.
    step: u32,
    /// Whether the IPv4 header checksum covers the field.
    in_ip: bool,
    /// Whether the L4 checksum covers the field (directly, or via the pseudo-header).
    in_l4: bool,
}

impl Field {
    /// Writes `v` at the field's offset (inside `frame`: the caller checked its length)
    /// and adds its words to the sums of the checksums that cover it.
    #[inline(always)]
    fn write(&self, frame: &mut [u8], v: u32, ip: &mut u64, l4: &mut u64) {
        let words = if self.wide {
            frame[self.at..self.at + 4].copy_from_slice(&v.to_be_bytes());
            u64::from(v >> 16) + u64::from(v & 0xffff)
        } else {
            frame[self.at..self.at + 2].copy_from_slice(&(v as u16).to_be_bytes());
            u64::from(v)
        };
        if self.in_ip {
            *ip += words;
        }
        if self.in_l4 {
            *l4 += words;
        }
    }
}

/// The Σ(~m) of RFC 1624 eqn. 3 for the template's value of a 16- or 32-bit field.
fn not_words(v: u32, wide: bool) -> u64 {
    let lo = u64::from(!(v as u16));
    if wide {
        lo + u64::from(!((v >> 16) as u16))
    } else {
        lo
    }
}

/// Writes varied fields into frames copied from one template, with incremental checksums.
#[derive(Debug, Clone)]
pub struct Varier {
    /// At most four: source and destination address, source and destination port.
    fields: Vec<Field>,
    /// `Some` in random mode.
    rng: Option<SmallRng>,
    /// IPv4 header checksum offset, if any varied field is in the IPv4 header.
    ip_csum: Option<usize>,
    /// L4 checksum offset, if any varied field is covered by it.
    l4_csum: Option<usize>,
    /// Σ~m over the template's values of the fields in each checksum (RFC 1624 eqn. 3),
    /// plus the constant change of an IPv6 range's high 96 bits.
    ip_base: u64,
    l4_base: u64,
    /// IPv6 ranges whose high 96 bits differ from the template's: (offset, bytes) to write.
    high: Vec<(usize, [u8; 12])>,
    /// A UDP checksum that comes to 0 is sent as 0xffff.
    udp_zero_is_ffff: bool,
    /// Frames shorter than the headers are left alone.
    min_len: usize,
}

impl Varier {
    /// A varier for frames built from `spec` (any size).
    pub fn new(v: &Variation, spec: &TemplateSpec) -> Result<Self, String> {
        spec.validate().map_err(|e| e.to_string())?;
        v.validate(spec)?;
        let lay = spec.layout();
        let mut me = Varier {
            fields: Vec::new(),
            rng: match v.mode {
                VaryMode::Increment => None,
                VaryMode::Random { seed } => Some(SmallRng::seed_from_u64(seed)),
            },
            ip_csum: None,
            l4_csum: None,
            ip_base: 0,
            l4_base: 0,
            high: Vec::new(),
            udp_zero_is_ffff: lay.udp_zero_is_ffff,
            min_len: lay.payload,
        };
        let in_ip = lay.ip_csum.is_some();
        let addrs = [
            (v.src_ip, spec.src_ip, lay.src_ip),
            (v.dst_ip, spec.dst_ip, lay.dst_ip),
        ];
        for (range, addr, at) in addrs {
            let Some(r) = range else { continue };
            let (high, low) = split(addr);
            // The varying 32 bits are the whole IPv4 address or an IPv6 one's last 4 bytes.
            let low_at = at + lay.addr_len - 4;
            if let (Some(want), Some(have)) = (r.high, high) {
                if want != have {
                    // The range's /96 is not the template's: write it too, a constant change.
                    for (n, o) in want.chunks_exact(2).zip(have.chunks_exact(2)) {
                        me.l4_base += checksum::delta16(
                            u16::from_be_bytes([o[0], o[1]]),
                            u16::from_be_bytes([n[0], n[1]]),
                        );
                    }
                    me.high.push((at, want));
                }
            }
            me.push(
                Field {
                    at: low_at,
                    wide: true,
                    lo: r.lo,
                    hi: r.hi,
                    uniform: Uniform::new_inclusive(r.lo, r.hi),
                    step: 0,
                    in_ip,
                    in_l4: lay.l4_csum_covers_pseudo,
                },
                low,
                lay.ip_csum,
                lay.l4_csum,
            );
        }
        // ICMP: the source port range varies the echo identifier (validate refused a
        // destination port range).
        let ports = [
            (v.src_port, spec.src_port, lay.src_port.or(lay.icmp_id)),
            (v.dst_port, spec.dst_port, lay.dst_port),
        ];
        for (range, port, at) in ports {
            let (Some(r), Some(at)) = (range, at) else {
                continue;
            };
            me.push(
                Field {
                    at,
                    wide: false,
                    lo: u32::from(r.lo),
                    hi: u32::from(r.hi),
                    uniform: Uniform::new_inclusive(u32::from(r.lo), u32::from(r.hi)),
                    step: 0,
                    in_ip: false,
                    in_l4: true,
                },
                u32::from(port),
                lay.ip_csum,
                lay.l4_csum,
            );
        }
        Ok(me)
    }

    fn push(&mut self, f: Field, old: u32, ip_csum: Option<usize>, l4_csum: usize) {
        if f.in_ip {
            self.ip_base += not_words(old, f.wide);
            self.ip_csum = ip_csum;
        }
        if f.in_l4 {
            self.l4_base += not_words(old, f.wide);
            self.l4_csum = Some(l4_csum);
        }
        self.fields.push(f);
    }

    /// Whether the varier changes nothing.
    pub fn is_noop(&self) -> bool {
        self.fields.is_empty()
    }

    /// Writes the next tuple into `frame`, a fresh copy of a template built from the spec
    /// given to `new`, and fixes the IPv4 header and L4 checksums incrementally. A frame
    /// shorter than the headers is left as it is.
    #[inline]
    pub fn apply(&mut self, frame: &mut [u8]) {
        if self.fields.is_empty() || frame.len() < self.min_len {
            return;
        }
        // Every offset below is inside the headers, so inside `frame`: no index can fail.
        let (mut ip, mut l4) = (self.ip_base, self.l4_base);
        for (at, bytes) in &self.high {
            frame[*at..*at + 12].copy_from_slice(bytes);
        }
        match &mut self.rng {
            None => {
                for f in &mut self.fields {
                    let v = f.lo + f.step; // ≤ hi: step ≤ hi - lo
                    f.step = if v == f.hi { 0 } else { f.step + 1 };
                    f.write(frame, v, &mut ip, &mut l4);
                }
            }
            Some(rng) => {
                for f in &mut self.fields {
                    let v = f.uniform.sample(rng);
                    f.write(frame, v, &mut ip, &mut l4);
                }
            }
        }
        if let Some(at) = self.ip_csum {
            let old = u16::from_be_bytes([frame[at], frame[at + 1]]);
            let ck = checksum::update_with(old, ip);
            frame[at..at + 2].copy_from_slice(&ck.to_be_bytes());
        }
        if let Some(at) = self.l4_csum {
            let old = u16::from_be_bytes([frame[at], frame[at + 1]]);
            let mut ck = checksum::update_with(old, l4);
            if ck == 0 && self.udp_zero_is_ffff {
                ck = 0xffff; // RFC 768: a computed zero is sent as all ones
            }
            frame[at..at + 2].copy_from_slice(&ck.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::template::{check_checksums, TemplateKind};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addr_range_parses() {
        let good: [(&str, &str, &str, u64); 9] = [
            ("198.18.0.1", "198.18.0.1", "198.18.0.1", 1),
            (
                " 198.18.0.1-198.18.0.200 ",
                "198.18.0.1",
                "198.18.0.200",
                200,
            ),
            ("198.18.0.0/24", "198.18.0.0", "198.18.0.255", 256),
            ("198.18.0.77/24", "198.18.0.0", "198.18.0.255", 256),
            ("198.18.0.7/32", "198.18.0.7", "198.18.0.7", 1),
            ("0.0.0.0/0", "0.0.0.0", "255.255.255.255", 1 << 32),
            ("2001:2::1-2001:2::ff", "2001:2::1", "2001:2::ff", 255),
            ("2001:2::/120", "2001:2::", "2001:2::ff", 256),
            ("2001:2::/96", "2001:2::", "2001:2::ffff:ffff", 1 << 32),
        ];
        for (s, first, last, len) in good {
            let r = AddrRange::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(
                (r.first(), r.last(), r.len()),
                (ip(first), ip(last), len),
                "{s}"
            );
            assert_eq!(r.is_v6(), s.contains(':'));
            assert!(r.contains(ip(first)) && r.contains(ip(last)));
        }
        let r = AddrRange::parse("198.18.0.10-198.18.0.20").unwrap();
        assert!(!r.contains(ip("198.18.0.9")) && !r.contains(ip("2001:2::10")));
        assert_eq!(r.to_string(), "198.18.0.10-198.18.0.20");
        let bad = [
            ("", "is not an IPv4 or IPv6"),
            ("198.18.0", "is not an IPv4 or IPv6"),
            ("198.18.0.1-", "is not an IPv4 or IPv6"),
            ("198.18.0.9-198.18.0.1", "runs backwards"),
            ("198.18.0.1-2001:2::1", "mixes IPv4 and IPv6"),
            ("198.18.0.0/33", "prefix length \"33\""),
            ("198.18.0.0/x", "prefix length"),
            ("2001:2::/95", "more than 2^32"),
            ("2001:2::/64", "spans 2^64"),
            ("2001:2::1-2001:3::1", "more than 2^32"),
            (
                "2001:2::ffff:ffff-2001:2:0:0:0:1::1",
                "crosses a /96 boundary",
            ),
        ];
        for (s, why) in bad {
            let e = AddrRange::parse(s).unwrap_err();
            assert!(e.contains(why) && e.contains("e.g."), "{s:?}: {e}");
            assert!(
                e.contains(&format!("{s:?}")) || e.contains(s.trim()),
                "{s:?}: {e}"
            );
        }
    }

    #[test]
    fn port_range_and_flows() {
        assert_eq!(
            PortRange::parse("9000"),
            Ok(PortRange { lo: 9000, hi: 9000 })
        );
        assert_eq!(
            PortRange::parse("9000-9099"),
            Ok(PortRange { lo: 9000, hi: 9099 })
        );
        assert_eq!(PortRange::parse("0-65535").unwrap().len(), 65536);
        for (s, why) in [
            ("", "is not a port"),
            ("65536", "is not a port"),
            ("-1", "is not a port"),
            ("9000-", "is not a port"),
            ("a-b", "is not a port"),
            ("9099-9000", "runs backwards"),
        ] {
            let e = PortRange::parse(s).unwrap_err();
            assert!(
                e.contains(why) && e.contains("e.g.") && e.contains(&format!("{s:?}")),
                "{s:?}: {e}"
            );
        }
        assert_eq!(
            Variation::flows(100, 9000),
            Ok(PortRange { lo: 9000, hi: 9099 })
        );
        assert_eq!(
            Variation::flows(1, 65535),
            Ok(PortRange {
                lo: 65535,
                hi: 65535
            })
        );
        assert_eq!(
            Variation::flows(65536, 0),
            Ok(PortRange { lo: 0, hi: 65535 })
        );
        assert!(Variation::flows(0, 9000)
            .unwrap_err()
            .contains("at least one"));
        let e = Variation::flows(2, 65535).unwrap_err();
        assert!(e.contains("beyond 65535") && e.contains("at most 1"), "{e}");
        assert!(Variation::flows(u32::MAX, 65535).is_err());
    }

    fn spec(kind: TemplateKind) -> TemplateSpec {
        let (s, d) = if kind.is_v6() {
            (ip("2001:2::1"), ip("2001:2::2"))
        } else {
            (ip("198.18.0.1"), ip("198.18.0.2"))
        };
        TemplateSpec::new(kind, s, d)
    }

    #[test]
    fn validate_refuses_what_cannot_vary() {
        let v = Variation {
            dst_port: Some(PortRange { lo: 1, hi: 2 }),
            ..Default::default()
        };
        assert!(v.validate(&spec(TemplateKind::Udp4)).is_ok());
        let e = v.validate(&spec(TemplateKind::Icmp6)).unwrap_err();
        assert!(
            e.contains("no destination port") && e.contains("echo identifier"),
            "{e}"
        );
        let v = Variation {
            src_port: Some(PortRange { lo: 1, hi: 2 }),
            ..Default::default()
        };
        assert!(v.validate(&spec(TemplateKind::Icmp4)).is_ok());
        let v = Variation {
            src_ip: Some(AddrRange::parse("198.18.0.0/24").unwrap()),
            ..Default::default()
        };
        let e = v.validate(&spec(TemplateKind::TcpSyn6)).unwrap_err();
        assert!(e.contains("not IPv6") && e.contains("tcp-syn6"), "{e}");
        assert!(Varier::new(&v, &spec(TemplateKind::TcpSyn6)).is_err());
        let v = Variation {
            src_port: Some(PortRange { lo: 5, hi: 4 }),
            ..Default::default()
        };
        assert!(v
            .validate(&spec(TemplateKind::Udp4))
            .unwrap_err()
            .contains("backwards"));
        assert!(Variation::default().is_empty());
    }

    #[test]
    fn increment_steps_each_field_independently() {
        let t = spec(TemplateKind::Udp4);
        let v = Variation {
            src_ip: Some(AddrRange::parse("10.0.0.254-10.0.1.1").unwrap()),
            src_port: Some(PortRange { lo: 7, hi: 9 }),
            ..Default::default()
        };
        let mut var = Varier::new(&v, &t).unwrap();
        let lay = t.layout();
        let tpl = t.build(64).unwrap();
        let mut seen = Vec::new();
        for _ in 0..6 {
            let mut f = tpl.clone();
            var.apply(&mut f);
            check_checksums(&t, &f).unwrap();
            let a = &f[lay.src_ip..lay.src_ip + 4];
            let p = u16::from_be_bytes([f[lay.l4], f[lay.l4 + 1]]);
            seen.push((a[2], a[3], p));
        }
        assert_eq!(
            seen,
            [
                (0, 254, 7),
                (0, 255, 8),
                (1, 0, 9),
                (1, 1, 7),
                (0, 254, 8),
                (0, 255, 9)
            ]
        );
    }

    #[test]
    fn random_is_seeded_and_in_range() {
        let t = spec(TemplateKind::Udp6);
        let range = AddrRange::parse("2001:2::1:0-2001:2::1:ff").unwrap();
        let run = |seed| {
            let v = Variation {
                dst_ip: Some(range),
                dst_port: Some(PortRange { lo: 100, hi: 103 }),
                mode: VaryMode::Random { seed },
                ..Default::default()
            };
            let mut var = Varier::new(&v, &t).unwrap();
            let tpl = t.build(100).unwrap();
            (0..200)
                .map(|_| {
                    let mut f = tpl.clone();
                    var.apply(&mut f);
                    check_checksums(&t, &f).unwrap();
                    f
                })
                .collect::<Vec<_>>()
        };
        let (a, b, c) = (run(1), run(1), run(2));
        assert_eq!(a, b, "same seed, same frames");
        assert_ne!(a, c, "another seed, other frames");
        let lay = t.layout();
        let mut ports = std::collections::BTreeSet::new();
        for f in &a {
            let d: [u8; 16] = f[lay.dst_ip..lay.dst_ip + 16].try_into().unwrap();
            assert!(range.contains(IpAddr::from(d)));
            let p = u16::from_be_bytes([f[lay.l4 + 2], f[lay.l4 + 3]]);
            ports.insert(p);
        }
        assert_eq!(ports.into_iter().collect::<Vec<_>>(), [100, 101, 102, 103]);
    }

    #[test]
    fn another_slash_96_is_written_whole() {
        // The template's address is in 2001:2::/96, the range in 2001:db8::/120.
        let t = spec(TemplateKind::Icmp6);
        let v = Variation {
            src_ip: Some(AddrRange::parse("2001:db8::/120").unwrap()),
            ..Default::default()
        };
        let mut var = Varier::new(&v, &t).unwrap();
        let tpl = t.build(80).unwrap();
        let lay = t.layout();
        for i in 0..300u32 {
            let mut f = tpl.clone();
            var.apply(&mut f);
            check_checksums(&t, &f).unwrap();
            let s: [u8; 16] = f[lay.src_ip..lay.src_ip + 16].try_into().unwrap();
            assert_eq!(IpAddr::from(s), ip(&format!("2001:db8::{:x}", i % 256)));
        }
    }

    #[test]
    fn udp_zero_checksum_goes_out_as_ffff() {
        // Every source port once: the sum takes every value, so one frame's checksum
        // computes to 0 and must be sent as 0xffff; none may carry 0x0000.
        for kind in [TemplateKind::Udp4, TemplateKind::Udp6] {
            let t = spec(kind);
            let v = Variation {
                src_port: Some(PortRange { lo: 0, hi: 65535 }),
                ..Default::default()
            };
            let mut var = Varier::new(&v, &t).unwrap();
            let tpl = t.build(t.min_size()).unwrap();
            let at = t.layout().l4_csum;
            let mut ffff = 0;
            for _ in 0..65536 {
                let mut f = tpl.clone();
                var.apply(&mut f);
                check_checksums(&t, &f).unwrap();
                assert_ne!(&f[at..at + 2], &[0, 0]);
                ffff += usize::from(f[at..at + 2] == [0xff, 0xff]);
            }
            assert_eq!(ffff, 1, "{kind}");
        }
    }

    #[test]
    fn short_frames_are_left_alone() {
        let t = spec(TemplateKind::TcpSyn4);
        let v = Variation {
            dst_port: Some(PortRange { lo: 1, hi: 9 }),
            ..Default::default()
        };
        let mut var = Varier::new(&v, &t).unwrap();
        let tpl = t.build(64).unwrap();
        for cut in 0..t.layout().payload {
            let mut f = tpl[..cut].to_vec();
            var.apply(&mut f);
            assert_eq!(f, &tpl[..cut]);
        }
    }
}
