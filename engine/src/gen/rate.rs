//! Rates with units: packets per second, or bits per second counted at layer 1 or layer 2.
//!
//! A [`Rate`] is what the user asked for (`--rate 250kpps`, `--rate 10Gbit`); the pacing
//! and shaping code turns it into a *cost* per frame in picoseconds ([`Rate::cost_ps`]), so
//! one integer budget serves both kinds of rate: a token bucket holding picoseconds of
//! budget works the same whether a frame costs `1e12 / pps` or its bits on the wire.
//!
//! Bit rates count what a link carries, not what the socket is handed: a frame given to
//! the socket has no FCS, and short frames are padded by the NIC to the Ethernet minimum.
//!
//! | layer | counted per frame                                                  |
//! |-------|--------------------------------------------------------------------|
//! | L2    | `max(len, 60) + 4` bytes: the frame, padding, FCS                 |
//! | L1    | the L2 bytes `+ 20`: preamble (7) + SFD (1) + inter-frame gap (12) |
//!
//! So a minimum frame (60 bytes from the socket) is 64 bytes = 512 bits at L2 and
//! 84 bytes = 672 bits at L1, and 10 Gbit/s at L1 is the familiar 14.88 Mpps.

use std::fmt;

/// The layer at which a bit rate is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// The physical layer: L2 plus preamble, SFD and inter-frame gap (20 bytes a frame).
    L1,
    /// The Ethernet frame including its 4-byte FCS (and padding to the 64-byte minimum).
    L2,
}

/// Ethernet FCS (CRC-32) appended by the NIC: 4 bytes (IEEE 802.3 §3.1.1).
const FCS_LEN: usize = 4;
/// Minimum frame without FCS (`ETH_ZLEN`): 64-byte minimum frame − 4-byte FCS; shorter
/// frames are padded by the NIC to this length before they go on the wire.
const ETH_ZLEN: usize = 60;
/// Per-frame physical overhead: preamble 7 + SFD 1 + minimum inter-frame gap 12 = 20 bytes.
const L1_OVERHEAD: usize = 20;
/// Picoseconds per second.
const PS_PER_S: f64 = 1e12;

impl Layer {
    /// Bytes a frame of `frame_len` bytes (as handed to the socket, without FCS) occupies
    /// at this layer: padded to 60, plus the 4-byte FCS, plus 20 bytes at L1.
    pub fn wire_len(self, frame_len: usize) -> usize {
        let l2 = frame_len.max(ETH_ZLEN).saturating_add(FCS_LEN);
        match self {
            Layer::L2 => l2,
            Layer::L1 => l2.saturating_add(L1_OVERHEAD),
        }
    }

    /// Bits a frame of `frame_len` bytes occupies at this layer (`wire_len * 8`).
    pub fn wire_bits(self, frame_len: usize) -> f64 {
        self.wire_len(frame_len) as f64 * 8.0
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::L1 => "L1",
            Layer::L2 => "L2",
        })
    }
}

/// A sending rate: packets per second, or bits per second at a given layer.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Rate {
    /// Packets per second, whatever their size.
    Pps(f64),
    /// Bits per second counted at `layer`.
    Bits {
        /// Bits per second.
        bps: f64,
        /// The layer the bits are counted at.
        layer: Layer,
    },
}

/// The fastest standard Ethernet link: 1.6 Tbit/s (IEEE 802.3dj). No rate above it can be
/// carried by any one link, so a larger number is a typo.
pub const MAX_BPS: f64 = 1.6e12;
/// The largest packet rate any link can carry: [`MAX_BPS`] / 672 bits, the L1 size of a
/// minimum frame (64 bytes + 20 bytes of preamble, SFD and gap = 84 bytes = 672 bits),
/// ≈ 2.38 Gpps.
pub const MAX_PPS: f64 = MAX_BPS / 672.0;

/// Why a rate string was refused.
#[derive(Debug, thiserror::Error)]
pub enum RateError {
    /// Nothing to parse.
    #[error("empty rate: give a packet rate such as 250kpps, 1.5Mpps or 100000, or a bit rate such as 10Gbit or 400Mbit/s")]
    Empty,
    /// The input does not start with a number.
    #[error("rate {input:?} does not start with a number: write e.g. 250kpps, 1.5Mpps, 10Gbit")]
    NoNumber {
        /// The input as given.
        input: String,
    },
    /// The numeric part does not parse.
    #[error("rate {input:?}: {number:?} is not a number: write e.g. 250kpps, 1.5Mpps, 10Gbit")]
    BadNumber {
        /// The input as given.
        input: String,
        /// The numeric part.
        number: String,
    },
    /// The unit is not one of the accepted ones.
    #[error("rate {input:?}: unknown unit {unit:?}: use pps, kpps, Mpps, Gpps (packets/s; a bare number or k/M/G also means packets/s) or bit, kbit, Mbit, Gbit, Tbit (also written Mbit/s or Mbps)")]
    UnknownUnit {
        /// The input as given.
        input: String,
        /// The unit part.
        unit: String,
    },
    /// Zero or negative.
    #[error("rate {input:?} must be greater than zero (e.g. 250kpps or 10Gbit)")]
    NotPositive {
        /// The input as given.
        input: String,
    },
    /// More than any link could carry.
    #[error("rate {input:?} is more than any link carries (at most {max}); e.g. 14.88Mpps is 10 Gbit/s line rate for 64-byte frames")]
    TooHigh {
        /// The input as given.
        input: String,
        /// The limit, formatted.
        max: String,
    },
}

/// What the unit part of a rate string means.
#[derive(Clone, Copy)]
enum Unit {
    Packets,
    Bits,
}

/// SI prefix multipliers accepted in front of a unit (case-sensitive; `k` and `K` both
/// mean 1e3, `m` is not accepted since it would mean milli).
fn prefix(c: char) -> Option<f64> {
    match c {
        'k' | 'K' => Some(1e3),
        'M' => Some(1e6),
        'G' => Some(1e9),
        'T' => Some(1e12),
        _ => None,
    }
}

/// Parses a unit without its prefix.
fn base_unit(s: &str) -> Option<Unit> {
    match s {
        "" | "pps" => Some(Unit::Packets),
        "bit" | "bit/s" | "bps" => Some(Unit::Bits),
        _ => None,
    }
}

/// Splits a unit into its multiplier and kind.
fn unit(s: &str) -> Option<(f64, Unit)> {
    if let Some(u) = base_unit(s) {
        return Some((1.0, u));
    }
    let mut chars = s.chars();
    let mult = prefix(chars.next()?)?;
    base_unit(chars.as_str()).map(|u| (mult, u))
}

impl Rate {
    /// Parses a rate. Packet rates: `250kpps`, `1.5Mpps`, `100000` or `100k` (a bare number
    /// or a bare prefix means packets/s). Bit rates, counted at `layer`: `10Gbit`,
    /// `400Mbit`, `1.5Gbit/s`, `400Mbps` (bits, as iperf writes it; note that `tc` reads
    /// `bps` as *bytes*/s), `64kbit`, `1000bit`. Prefixes k/K, M, G, T are case-sensitive;
    /// whitespace may separate number and unit. Refuses unknown units, zero, negative,
    /// non-finite numbers, and rates above [`MAX_BPS`] or [`MAX_PPS`].
    pub fn parse(s: &str, layer: Layer) -> Result<Rate, RateError> {
        let input = s.trim();
        if input.is_empty() {
            return Err(RateError::Empty);
        }
        let split = input
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
            .unwrap_or(input.len());
        let (number, rest) = input.split_at(split);
        let unit_str = rest.trim_start();
        if number.is_empty() {
            return Err(RateError::NoNumber {
                input: input.to_owned(),
            });
        }
        let value: f64 = number.parse().map_err(|_| RateError::BadNumber {
            input: input.to_owned(),
            number: number.to_owned(),
        })?;
        let Some((mult, kind)) = unit(unit_str) else {
            return Err(RateError::UnknownUnit {
                input: input.to_owned(),
                unit: unit_str.to_owned(),
            });
        };
        let v = value * mult;
        // The number syntax admits no NaN or inf spelling, but check anyway; a number too
        // long for f64 becomes +inf and is refused below as too high.
        if v.is_nan() || v <= 0.0 {
            return Err(RateError::NotPositive {
                input: input.to_owned(),
            });
        }
        let (rate, max) = match kind {
            Unit::Packets => (Rate::Pps(v), Rate::Pps(MAX_PPS)),
            Unit::Bits => (
                Rate::Bits { bps: v, layer },
                Rate::Bits {
                    bps: MAX_BPS,
                    layer,
                },
            ),
        };
        let too_high = match kind {
            Unit::Packets => v > MAX_PPS,
            Unit::Bits => v > MAX_BPS,
        };
        if too_high {
            return Err(RateError::TooHigh {
                input: input.to_owned(),
                max: max.to_string(),
            });
        }
        Ok(rate)
    }

    /// Picoseconds of budget one frame of `frame_len` bytes (as handed to the socket, no
    /// FCS) uses: `1e12 / pps` for a packet rate, `wire_bits(frame_len) * 1e12 / bps` for a
    /// bit rate (see [`Layer::wire_len`]). Rounded to the nearest picosecond, at least 1,
    /// saturating at `u64::MAX` (≈ 213 days) for absurdly slow rates.
    pub fn cost_ps(&self, frame_len: usize) -> u64 {
        let ps = match *self {
            Rate::Pps(pps) => PS_PER_S / pps,
            Rate::Bits { bps, layer } => layer.wire_bits(frame_len) * PS_PER_S / bps,
        };
        // `as` saturates (inf → u64::MAX) and maps NaN to 0, hence the max(1).
        (ps.round() as u64).max(1)
    }

    /// The packet rate this rate means for frames of `frame_len` bytes.
    pub fn pps_for(&self, frame_len: usize) -> f64 {
        match *self {
            Rate::Pps(pps) => pps,
            Rate::Bits { bps, layer } => bps / layer.wire_bits(frame_len),
        }
    }

    /// The bit rate at `layer` this rate means for frames of `frame_len` bytes (e.g. what
    /// 1 Mpps of 60-byte frames is at L1: 672 Mbit/s). Call it twice for the L1 and L2
    /// figures of a report.
    pub fn bps_for(&self, frame_len: usize, layer: Layer) -> f64 {
        self.pps_for(frame_len) * layer.wire_bits(frame_len)
    }

    /// The share of one of `parts` queues: this rate divided by `parts` (0 counts as 1).
    pub fn divided(&self, parts: usize) -> Rate {
        let n = parts.max(1) as f64;
        match *self {
            Rate::Pps(pps) => Rate::Pps(pps / n),
            Rate::Bits { bps, layer } => Rate::Bits {
                bps: bps / n,
                layer,
            },
        }
    }

    /// Whether this is a bit rate.
    pub fn is_bits(&self) -> bool {
        matches!(self, Rate::Bits { .. })
    }
}

/// Formats `v` scaled by the largest SI prefix that keeps it ≥ 1, with at most three
/// decimals and no trailing zeros: `250 k`, `1.5 M`, `10 G`.
fn si(f: &mut fmt::Formatter<'_>, v: f64, unit: &str) -> fmt::Result {
    const PREFIXES: [(f64, &str); 4] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    let (scale, p) = PREFIXES
        .iter()
        .copied()
        .find(|&(s, _)| v.abs() >= s)
        .unwrap_or((1.0, ""));
    let s = format!("{:.3}", v / scale);
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s.as_str()
    };
    write!(f, "{s} {p}{unit}")
}

impl fmt::Display for Rate {
    /// `250 kpps`, `1.5 Mpps`, `10 Gbit/s L1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Rate::Pps(pps) => si(f, pps, "pps"),
            Rate::Bits { bps, layer } => {
                si(f, bps, "bit/s")?;
                write!(f, " {layer}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_good_inputs() {
        let l2 = Layer::L2;
        let bits = |bps: f64| Rate::Bits { bps, layer: l2 };
        let table: &[(&str, Rate)] = &[
            ("250kpps", Rate::Pps(250e3)),
            ("250Kpps", Rate::Pps(250e3)),
            ("1.5Mpps", Rate::Pps(1.5e6)),
            ("100000", Rate::Pps(1e5)),
            ("100k", Rate::Pps(1e5)),
            ("2G", Rate::Pps(2e9)),
            ("10 pps", Rate::Pps(10.0)),
            ("  7 kpps ", Rate::Pps(7e3)),
            ("0.5", Rate::Pps(0.5)),
            ("10Gbit", bits(10e9)),
            ("400Mbit", bits(400e6)),
            ("1.5Gbit/s", bits(1.5e9)),
            ("400Mbps", bits(400e6)),
            ("64kbit", bits(64e3)),
            ("1000bit", bits(1000.0)),
            ("1.6Tbit", bits(1.6e12)),
            ("100 Mbit/s", bits(100e6)),
        ];
        for (s, want) in table {
            let got = Rate::parse(s, l2).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            assert_eq!(got, *want, "{s:?}");
        }
        assert_eq!(
            Rate::parse("10Gbit", Layer::L1).unwrap(),
            Rate::Bits {
                bps: 10e9,
                layer: Layer::L1
            }
        );
    }

    #[test]
    fn refuses_bad_inputs() {
        let table = [
            "",
            "   ",
            "10Gbyte",
            "5xyz",
            "kpps",
            "Mbit",
            "0",
            "0pps",
            "0.0Gbit",
            "-5kpps",
            "-1",
            "NaN",
            "inf",
            "infinity",
            "1e5",
            "1.2.3kpps",
            "10mbit",
            "10 Mbit/sec",
            "1.7Tbit",
            "3Gpps",
            "2.4Gpps",
            "1T",
            "10GBit",
            "10 G bit",
            "--5",
        ];
        for s in table {
            assert!(
                Rate::parse(s, Layer::L2).is_err(),
                "{s:?} should be refused"
            );
        }
        let long = "9".repeat(400);
        assert!(matches!(
            Rate::parse(&long, Layer::L2),
            Err(RateError::TooHigh { .. })
        ));
    }

    #[test]
    fn errors_name_the_input_and_give_examples() {
        let e = Rate::parse("10Gbyte", Layer::L2).unwrap_err().to_string();
        assert!(
            e.contains("10Gbyte") && e.contains("Gbyte") && e.contains("Mbit"),
            "{e}"
        );
        let e = Rate::parse("0", Layer::L2).unwrap_err().to_string();
        assert!(e.contains("\"0\"") && e.contains("250kpps"), "{e}");
        let e = Rate::parse("2Tbit", Layer::L1).unwrap_err().to_string();
        assert!(e.contains("2Tbit") && e.contains("1.6 Tbit/s L1"), "{e}");
    }

    #[test]
    fn max_pps_is_line_rate_of_minimum_frames() {
        let line = Rate::Bits {
            bps: MAX_BPS,
            layer: Layer::L1,
        };
        assert!((line.pps_for(60) - MAX_PPS).abs() < 1.0);
        assert!(Rate::parse("2.38Gpps", Layer::L1).is_ok());
    }

    #[test]
    fn cost_ps_table() {
        let l1 = |bps| Rate::Bits {
            bps,
            layer: Layer::L1,
        };
        let l2 = |bps| Rate::Bits {
            bps,
            layer: Layer::L2,
        };
        let table: &[(Rate, usize, u64)] = &[
            (Rate::Pps(1e6), 60, 1_000_000),
            (Rate::Pps(1e6), 1500, 1_000_000),
            (Rate::Pps(3e6), 60, 333_333),
            (Rate::Pps(1.5e6), 60, 666_667),
            (l1(10e9), 60, 67_200),
            (l2(10e9), 60, 51_200),
            (l1(10e9), 1514, 1_230_400),
            (l2(10e9), 1514, 1_214_400),
            // Short frames are padded to 60 on the wire.
            (l2(10e9), 42, 51_200),
            (l1(1e9), 0, 672_000),
            (Rate::Pps(MAX_PPS), 60, 420),
            (Rate::Pps(1e13), 60, 1),
            (Rate::Pps(0.0), 60, u64::MAX),
            (Rate::Pps(f64::NAN), 60, 1),
        ];
        for &(r, len, want) in table {
            assert_eq!(r.cost_ps(len), want, "{r} len {len}");
        }
    }

    #[test]
    fn conversions() {
        let r = Rate::Bits {
            bps: 10e9,
            layer: Layer::L1,
        };
        assert!((r.pps_for(60) - 14_880_952.38).abs() < 0.01);
        assert!((r.bps_for(60, Layer::L2) - 10e9 * 512.0 / 672.0).abs() < 1.0);
        let p = Rate::Pps(1e6);
        assert_eq!(p.pps_for(1500), 1e6);
        assert_eq!(p.bps_for(60, Layer::L1), 672e6);
        assert_eq!(p.bps_for(60, Layer::L2), 512e6);
        assert_eq!(p.divided(4), Rate::Pps(250e3));
        assert_eq!(p.divided(0), p);
        assert_eq!(
            r.divided(2),
            Rate::Bits {
                bps: 5e9,
                layer: Layer::L1
            }
        );
        assert!(r.is_bits() && !p.is_bits());
    }

    #[test]
    fn display() {
        let table: &[(Rate, &str)] = &[
            (Rate::Pps(250e3), "250 kpps"),
            (Rate::Pps(1.5e6), "1.5 Mpps"),
            (Rate::Pps(100.0), "100 pps"),
            (Rate::Pps(0.5), "0.5 pps"),
            (Rate::Pps(1_234_567.0), "1.235 Mpps"),
            (
                Rate::Bits {
                    bps: 10e9,
                    layer: Layer::L1,
                },
                "10 Gbit/s L1",
            ),
            (
                Rate::Bits {
                    bps: 400e6,
                    layer: Layer::L2,
                },
                "400 Mbit/s L2",
            ),
        ];
        for (r, want) in table {
            assert_eq!(r.to_string(), *want);
        }
        // Display output parses back (without the space and layer).
        for s in ["250kpps", "1.5Mpps", "10Gbit"] {
            let r = Rate::parse(s, Layer::L1).unwrap();
            let shown = r.to_string().replace(' ', "").replace("/sL1", "");
            assert_eq!(Rate::parse(&shown, Layer::L1).unwrap(), r, "{shown}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,16}") {
            let _ = Rate::parse(&s, Layer::L1);
        }

        #[test]
        fn cost_is_positive_and_monotonic_in_size(bps in 1.0f64..1.6e12, a in 0usize..10_000, b in 0usize..10_000) {
            let r = Rate::Bits { bps, layer: Layer::L2 };
            let (lo, hi) = (a.min(b), a.max(b));
            proptest::prop_assert!(r.cost_ps(lo) >= 1);
            proptest::prop_assert!(r.cost_ps(lo) <= r.cost_ps(hi));
        }
    }
}
