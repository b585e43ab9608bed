//! The TCP header (RFC 9293 §3.1): parse, emit, and the checksum over the IPv4 or IPv6
//! pseudo-header, with the options Linux sends and reads: MSS (RFC 9293 §3.2), window
//! scale and timestamps (RFC 7323 §2.2, §3.2), SACK-permitted and SACK (RFC 2018 §2, §3).
//!
//! # Where the rules come from
//!
//! Read through the `search` tool in `codesnas/linux-6.18.y`:
//!
//! - Emitting follows `tcp_options_write` (`net/ipv4/tcp_output.c`) byte for byte: MSS
//!   first; SACK-permitted packed into the timestamp word (`SACK_PERM,2,TS,10`) when both
//!   are sent, `NOP,NOP,TS,10` for timestamps alone, `NOP,NOP,SACK_PERM,2` for
//!   SACK-permitted alone; window scale as `NOP,WS,3,shift`; SACK blocks as
//!   `NOP,NOP,SACK,len` + blocks. Every option word is 32-bit aligned, so no trailing
//!   padding is ever needed. As `tcp_established_options` does, only as many SACK blocks
//!   are sent as fit the 40 option bytes after the other options.
//! - Parsing follows `tcp_parse_options` (`net/ipv4/tcp_input.c`): EOL ends the list, NOP
//!   is skipped, unknown kinds are skipped by their length, and a known option whose length
//!   is not its fixed size is ignored (not an error), as the kernel ignores it. Where the
//!   kernel silently stops at a malformed length (`opsize < 2`, "silly options", or an
//!   option running past the header, "don't parse partial options"), skiff returns
//!   [`TcpError::BadOptionLength`] so the caller can count the segment.
//!
//! # Where skiff differs
//!
//! - The parser reports what is on the wire; the kernel's *semantic* filters belong to
//!   the TCP state machine (`tx::tcp`), not to the header view: MSS, window scale and
//!   SACK-permitted are only honoured on a SYN, an MSS of 0 is ignored, a shift above 14
//!   is clamped (RFC 7323 §2.3), SACK blocks only count once SACK was negotiated.
//! - Options skiff's TCP does not use (MD5, AO, Fast Open, MPTCP, AccECN) are skipped
//!   like unknown ones and never emitted.
//! - The reserved bits and the AccECN `AE` bit (byte 12, low nibble) are ignored on parse
//!   and written as zero.

use super::{checksum, IPPROTO_TCP};
use crate::tx::tcp::Seq;

/// TCP flag bits as they sit in byte 13 of the header (RFC 9293 §3.1; ECE and CWR from
/// RFC 3168 §6.1).
pub mod flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field is significant.
    pub const URG: u8 = 0x20;
    /// ECN-Echo (RFC 3168 §6.1).
    pub const ECE: u8 = 0x40;
    /// Congestion Window Reduced (RFC 3168 §6.1).
    pub const CWR: u8 = 0x80;
}

/// Byte offsets of the fixed header's fields (RFC 9293 §3.1 figure 1).
pub mod field {
    /// Source port (16 bits).
    pub const SRC_PORT: usize = 0;
    /// Destination port (16 bits).
    pub const DST_PORT: usize = 2;
    /// Sequence number (32 bits).
    pub const SEQ: usize = 4;
    /// Acknowledgment number (32 bits).
    pub const ACK: usize = 8;
    /// Data offset (high nibble, in 32-bit words) and reserved bits.
    pub const DATA_OFFSET: usize = 12;
    /// Control bits ([`super::flags`]).
    pub const FLAGS: usize = 13;
    /// Window (16 bits).
    pub const WINDOW: usize = 14;
    /// Checksum (16 bits).
    pub const CHECKSUM: usize = 16;
    /// Urgent pointer (16 bits).
    pub const URGENT: usize = 18;
}

/// Header length without options: five 32-bit words (RFC 9293 §3.1, data offset ≥ 5).
pub const TCP_HLEN: usize = 20;
/// Most option bytes: the 4-bit data offset allows 15 words = 60 bytes, less the 20 fixed
/// ones (`MAX_TCP_OPTION_SPACE` in `include/net/tcp.h`).
pub const MAX_OPTIONS_LEN: usize = 40;
/// Most SACK blocks an option can carry: (40 − 2) / 8 = 4 (RFC 2018 §3).
pub const MAX_SACK_BLOCKS: usize = 4;

/// Option kinds (RFC 9293 §3.2, RFC 7323, RFC 2018; `TCPOPT_*` in `include/net/tcp.h`):
/// end of option list.
const OPT_EOL: u8 = 0;
/// No-operation (padding).
const OPT_NOP: u8 = 1;
/// Maximum segment size, length 4 (`TCPOLEN_MSS`).
const OPT_MSS: u8 = 2;
/// Window scale, length 3 (`TCPOLEN_WINDOW`).
const OPT_WSCALE: u8 = 3;
/// SACK permitted, length 2 (`TCPOLEN_SACK_PERM`).
const OPT_SACK_PERM: u8 = 4;
/// SACK, length 2 + 8 per block (`TCPOLEN_SACK_BASE`, `TCPOLEN_SACK_PERBLOCK`).
const OPT_SACK: u8 = 5;
/// Timestamps, length 10 (`TCPOLEN_TIMESTAMP`).
const OPT_TIMESTAMP: u8 = 8;

/// Bytes per SACK block: two sequence numbers (`TCPOLEN_SACK_PERBLOCK`).
const SACK_PERBLOCK: usize = 8;
/// The aligned SACK option head `NOP,NOP,SACK,len` (`TCPOLEN_SACK_BASE_ALIGNED`).
const SACK_BASE_ALIGNED: usize = 4;

/// The options of one segment. Blocks past `sack_len` are zero (as [`push_sack`] and the
/// parser leave them), so the derived equality compares what is on the wire.
///
/// [`push_sack`]: TcpOptions::push_sack
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpOptions {
    /// Maximum segment size (SYN only, RFC 9293 §3.7.1).
    pub mss: Option<u16>,
    /// Window scale shift (SYN only, RFC 7323 §2.2).
    pub wscale: Option<u8>,
    /// SACK permitted (SYN only, RFC 2018 §2).
    pub sack_permitted: bool,
    /// Timestamps (TSval, TSecr) (RFC 7323 §3.2).
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks (left edge, right edge), the first `sack_len` in use (RFC 2018 §3).
    pub sack: [(Seq, Seq); MAX_SACK_BLOCKS],
    /// Blocks in use in `sack`.
    pub sack_len: u8,
}

impl TcpOptions {
    /// The SACK blocks in use.
    pub fn sack_blocks(&self) -> &[(Seq, Seq)] {
        let n = usize::from(self.sack_len).min(MAX_SACK_BLOCKS);
        self.sack.get(..n).unwrap_or(&[])
    }

    /// Appends a SACK block; `false` when all four are in use.
    pub fn push_sack(&mut self, start: Seq, end: Seq) -> bool {
        match self.sack.get_mut(usize::from(self.sack_len)) {
            Some(b) => {
                *b = (start, end);
                self.sack_len += 1;
                true
            }
            None => false,
        }
    }

    /// Bytes of every option but SACK, in `tcp_options_write`'s layout: MSS 4, timestamps
    /// 12 (SACK-permitted packed in), SACK-permitted alone 4, window scale 4.
    fn base_len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        match (self.timestamps.is_some(), self.sack_permitted) {
            (true, _) => n += 12,
            (false, true) => n += 4,
            (false, false) => {}
        }
        if self.wscale.is_some() {
            n += 4;
        }
        n
    }

    /// SACK blocks that are sent: as many as fit after the other options
    /// (`tcp_established_options`: at least `TCPOLEN_SACK_BASE_ALIGNED +
    /// TCPOLEN_SACK_PERBLOCK` left, then `(remaining − 4) / 8` blocks at most).
    fn sack_sent(&self) -> usize {
        let room = MAX_OPTIONS_LEN - self.base_len();
        if room < SACK_BASE_ALIGNED + SACK_PERBLOCK {
            return 0;
        }
        self.sack_blocks()
            .len()
            .min((room - SACK_BASE_ALIGNED) / SACK_PERBLOCK)
    }

    /// Encoded length: always a multiple of 4 (every option word is aligned) and at most
    /// [`MAX_OPTIONS_LEN`] (SACK blocks that do not fit are left out).
    pub fn encoded_len(&self) -> usize {
        let blocks = self.sack_sent();
        let sack = if blocks > 0 {
            SACK_BASE_ALIGNED + blocks * SACK_PERBLOCK
        } else {
            0
        };
        self.base_len() + sack
    }

    /// Writes the options in `tcp_options_write`'s order and layout into
    /// `out[..encoded_len()]` and returns that length; 0 (nothing written) if `out` is
    /// shorter.
    pub fn emit(&self, out: &mut [u8]) -> usize {
        let len = self.encoded_len();
        let Some(dst) = out.get_mut(..len) else {
            return 0;
        };
        let mut w = Writer { buf: dst, at: 0 };
        if let Some(mss) = self.mss {
            let [hi, lo] = mss.to_be_bytes();
            w.put(&[OPT_MSS, 4, hi, lo]);
        }
        match (self.timestamps, self.sack_permitted) {
            (Some((tsval, tsecr)), sack_perm) => {
                if sack_perm {
                    w.put(&[OPT_SACK_PERM, 2, OPT_TIMESTAMP, 10]);
                } else {
                    w.put(&[OPT_NOP, OPT_NOP, OPT_TIMESTAMP, 10]);
                }
                w.put(&tsval.to_be_bytes());
                w.put(&tsecr.to_be_bytes());
            }
            (None, true) => w.put(&[OPT_NOP, OPT_NOP, OPT_SACK_PERM, 2]),
            (None, false) => {}
        }
        if let Some(shift) = self.wscale {
            w.put(&[OPT_NOP, OPT_WSCALE, 3, shift]);
        }
        let blocks = self.sack_sent();
        if blocks > 0 {
            // 2 + 8 × ≤ 4 blocks ≤ 34: fits the length byte.
            let optlen = (2 + blocks * SACK_PERBLOCK) as u8;
            w.put(&[OPT_NOP, OPT_NOP, OPT_SACK, optlen]);
            for (start, end) in self.sack_blocks().iter().take(blocks) {
                w.put(&start.0.to_be_bytes());
                w.put(&end.0.to_be_bytes());
            }
        }
        w.at
    }
}

/// Sequential writer into a slice sized beforehand; a write that would not fit is
/// dropped (cannot happen: the slice is `encoded_len` long).
struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if let Some(d) = self.buf.get_mut(self.at..self.at + bytes.len()) {
            d.copy_from_slice(bytes);
            self.at += bytes.len();
        }
    }
}

/// A TCP header: the fixed fields and the options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpHeader {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: Seq,
    /// Acknowledgment number.
    pub ack: Seq,
    /// Control bits ([`flags`]).
    pub flags: u8,
    /// Receive window (unscaled, as on the wire).
    pub window: u16,
    /// Checksum field as parsed (ignored by [`TcpHeader::emit`], which writes 0).
    pub checksum: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Options.
    pub options: TcpOptions,
}

impl TcpHeader {
    /// Header length with options: 20 + [`TcpOptions::encoded_len`] (≤ 60).
    pub fn header_len(&self) -> usize {
        TCP_HLEN + self.options.encoded_len()
    }

    /// Writes the header with options and a zero checksum field (fill it with
    /// [`fill_checksum_v4`] / [`fill_checksum_v6`] once the payload is behind it); returns
    /// its length (0, nothing written, if `out` is too short).
    pub fn emit(&self, out: &mut [u8]) -> usize {
        let len = self.header_len();
        let Some(h) = out.get_mut(..len) else {
            return 0;
        };
        let (fixed, opts) = h.split_at_mut(TCP_HLEN);
        let mut w = Writer { buf: fixed, at: 0 };
        w.put(&self.src_port.to_be_bytes());
        w.put(&self.dst_port.to_be_bytes());
        w.put(&self.seq.0.to_be_bytes());
        w.put(&self.ack.0.to_be_bytes());
        // Data offset in words (≤ 15) in the high nibble; reserved bits and AE zero.
        w.put(&[((len / 4) as u8) << 4, self.flags]);
        w.put(&self.window.to_be_bytes());
        w.put(&[0, 0]);
        w.put(&self.urgent.to_be_bytes());
        self.options.emit(opts);
        len
    }
}

/// A parsed segment: header, its length with options, and the payload.
#[derive(Debug)]
pub struct TcpSegment<'a> {
    /// The header.
    pub header: TcpHeader,
    /// Data offset × 4: where the payload starts.
    pub header_len: usize,
    /// The payload.
    pub payload: &'a [u8],
}

/// Why a segment could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TcpError {
    /// Shorter than the fixed 20-byte header.
    #[error("TCP segment shorter than its 20-byte header")]
    Truncated,
    /// Data offset below 5 words, or past the end of the segment.
    #[error("TCP data offset below 5 or past the end of the segment")]
    BadDataOffset,
    /// An option's length byte is below 2 or runs past the header (or is missing).
    #[error("TCP option {kind} has an impossible length")]
    BadOptionLength {
        /// The option's kind byte.
        kind: u8,
    },
}

/// Reads the big-endian u16 at `at`, `None` past the end.
#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Reads the big-endian u32 at `at`, `None` past the end.
#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    let w: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(w))
}

/// Parses `segment`: the TCP header and payload exactly (the length comes from the IP
/// header, so Ethernet padding must already be cut off). Never panics.
pub fn parse(segment: &[u8]) -> Result<TcpSegment<'_>, TcpError> {
    let fixed = segment.get(..TCP_HLEN).ok_or(TcpError::Truncated)?;
    let rd16 = |at| be16(fixed, at).ok_or(TcpError::Truncated);
    let rd32 = |at| be32(fixed, at).ok_or(TcpError::Truncated);
    let doff_byte = *fixed.get(field::DATA_OFFSET).ok_or(TcpError::Truncated)?;
    let header_len = usize::from(doff_byte >> 4) * 4;
    if header_len < TCP_HLEN {
        return Err(TcpError::BadDataOffset);
    }
    let (Some(opts), Some(payload)) =
        (segment.get(TCP_HLEN..header_len), segment.get(header_len..))
    else {
        return Err(TcpError::BadDataOffset);
    };
    let header = TcpHeader {
        src_port: rd16(field::SRC_PORT)?,
        dst_port: rd16(field::DST_PORT)?,
        seq: Seq(rd32(field::SEQ)?),
        ack: Seq(rd32(field::ACK)?),
        flags: *fixed.get(field::FLAGS).ok_or(TcpError::Truncated)?,
        window: rd16(field::WINDOW)?,
        checksum: rd16(field::CHECKSUM)?,
        urgent: rd16(field::URGENT)?,
        options: parse_options(opts)?,
    };
    Ok(TcpSegment {
        header,
        header_len,
        payload,
    })
}

/// Parses the option bytes (`tcp_parse_options`, see the module docs). A repeated option
/// replaces the earlier one, as in the kernel (which also remembers only the last SACK
/// option's offset).
fn parse_options(mut rest: &[u8]) -> Result<TcpOptions, TcpError> {
    let mut o = TcpOptions::default();
    while let Some((&kind, after_kind)) = rest.split_first() {
        match kind {
            OPT_EOL => break,
            OPT_NOP => {
                rest = after_kind;
                continue;
            }
            _ => {}
        }
        // `length < 2` (no length byte), `opsize < 2`, `opsize > length`: the kernel stops
        // parsing; skiff reports it.
        let Some(&len) = after_kind.first() else {
            return Err(TcpError::BadOptionLength { kind });
        };
        let len = usize::from(len);
        if len < 2 {
            return Err(TcpError::BadOptionLength { kind });
        }
        let (Some(body), Some(next)) = (rest.get(2..len), rest.get(len..)) else {
            return Err(TcpError::BadOptionLength { kind });
        };
        // Known kinds with another length than their fixed size fall through to `_` and are
        // skipped, as `tcp_parse_options` ignores them (`opsize == TCPOLEN_*` checks).
        match (kind, body) {
            (OPT_MSS, &[hi, lo]) => o.mss = Some(u16::from_be_bytes([hi, lo])),
            (OPT_WSCALE, &[shift]) => o.wscale = Some(shift),
            (OPT_SACK_PERM, &[]) => o.sack_permitted = true,
            (OPT_TIMESTAMP, &[a, b, c, d, e, f, g, h]) => {
                o.timestamps = Some((
                    u32::from_be_bytes([a, b, c, d]),
                    u32::from_be_bytes([e, f, g, h]),
                ));
            }
            // `opsize >= TCPOLEN_SACK_BASE + TCPOLEN_SACK_PERBLOCK` and a whole number of
            // blocks; at most 4 fit in 40 bytes.
            (OPT_SACK, b) if !b.is_empty() && b.len().is_multiple_of(SACK_PERBLOCK) => {
                o.sack = [(Seq(0), Seq(0)); MAX_SACK_BLOCKS];
                o.sack_len = 0;
                for blk in b.chunks_exact(SACK_PERBLOCK) {
                    if let (Some(s), Some(e)) = (be32(blk, 0), be32(blk, 4)) {
                        o.push_sack(Seq(s), Seq(e));
                    }
                }
            }
            _ => {}
        }
        rest = next;
    }
    Ok(o)
}

/// Whether `segment` (TCP header + payload, exactly) carries a correct checksum for the
/// IPv4 pseudo-header (RFC 9293 §3.1): the one's-complement sum over pseudo-header and
/// segment, checksum included, is all ones. `false` for a segment longer than an IPv4
/// packet can carry.
pub fn checksum_ok_v4(src: [u8; 4], dst: [u8; 4], segment: &[u8]) -> bool {
    let Ok(len) = u16::try_from(segment.len()) else {
        return false;
    };
    checksum::sum(segment, checksum::pseudo_v4(src, dst, IPPROTO_TCP, len)) == 0xffff
}

/// [`checksum_ok_v4`] with the IPv6 pseudo-header (RFC 8200 §8.1).
pub fn checksum_ok_v6(src: [u8; 16], dst: [u8; 16], segment: &[u8]) -> bool {
    let Ok(len) = u32::try_from(segment.len()) else {
        return false;
    };
    checksum::sum(segment, checksum::pseudo_v6(src, dst, IPPROTO_TCP, len)) == 0xffff
}

/// Writes the checksum field of `segment` (TCP header + payload, exactly) over the IPv4
/// pseudo-header, header and payload. A computed zero is sent as zero: unlike UDP, TCP has
/// no "no checksum" value. Returns `false` (nothing written) for a segment shorter than a
/// TCP header or longer than an IPv4 packet can carry.
pub fn fill_checksum_v4(src: [u8; 4], dst: [u8; 4], segment: &mut [u8]) -> bool {
    match u16::try_from(segment.len()) {
        Ok(len) => fill(segment, checksum::pseudo_v4(src, dst, IPPROTO_TCP, len)),
        Err(_) => false,
    }
}

/// [`fill_checksum_v4`] with the IPv6 pseudo-header (RFC 8200 §8.1).
pub fn fill_checksum_v6(src: [u8; 16], dst: [u8; 16], segment: &mut [u8]) -> bool {
    match u32::try_from(segment.len()) {
        Ok(len) => fill(segment, checksum::pseudo_v6(src, dst, IPPROTO_TCP, len)),
        Err(_) => false,
    }
}

/// Zeroes the checksum field, sums `segment` onto `pseudo` and writes the result.
fn fill(segment: &mut [u8], pseudo: u32) -> bool {
    if segment.len() < TCP_HLEN {
        return false;
    }
    let Some(c) = segment.get_mut(field::CHECKSUM..field::CHECKSUM + 2) else {
        return false;
    };
    c.fill(0);
    let ck = checksum::checksum(segment, pseudo);
    if let Some(c) = segment.get_mut(field::CHECKSUM..field::CHECKSUM + 2) {
        c.copy_from_slice(&ck.to_be_bytes());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::flags::*;
    use super::*;
    use proptest::prelude::*;

    const SRC4: [u8; 4] = [10, 0, 0, 1];
    const DST4: [u8; 4] = [10, 0, 0, 2];
    const SRC6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    /// A Linux SYN (`connect()` with the default sysctls: tcp_timestamps, tcp_sack and
    /// tcp_window_scaling on) from 10.0.0.1:42178 to 10.0.0.2:80, as tcpdump shows it:
    /// `Flags [S], seq 474390962, win 64240, options [mss 1460,sackOK,TS val 4016731 ecr
    /// 0,nop,wscale 7], length 0`. The checksum 0x8b69 was computed separately (Python,
    /// RFC 1071).
    const LINUX_SYN: [u8; 40] = [
        0xa4, 0xc2, 0x00, 0x50, // ports
        0x1c, 0x46, 0xa1, 0xb2, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0xa0, 0x02, 0xfa, 0xf0, // doff 10, SYN, window 64240
        0x8b, 0x69, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        0x04, 0x02, 0x08, 0x0a, // SACK_PERM, TS
        0x00, 0x3d, 0x4a, 0x5b, // TSval
        0x00, 0x00, 0x00, 0x00, // TSecr
        0x01, 0x03, 0x03, 0x07, // NOP, WS 7
    ];

    fn linux_syn_header() -> TcpHeader {
        TcpHeader {
            src_port: 42178,
            dst_port: 80,
            seq: Seq(474_390_962),
            ack: Seq(0),
            flags: SYN,
            window: 64240,
            checksum: 0x8b69,
            urgent: 0,
            options: TcpOptions {
                mss: Some(1460),
                wscale: Some(7),
                sack_permitted: true,
                timestamps: Some((4_016_731, 0)),
                ..TcpOptions::default()
            },
        }
    }

    fn emit_vec(h: &TcpHeader) -> Vec<u8> {
        let mut out = vec![0u8; 60];
        let n = h.emit(&mut out);
        assert_eq!(n, h.header_len());
        out.truncate(n);
        out
    }

    #[test]
    fn linux_syn_byte_exact() {
        let h = linux_syn_header();
        let mut bytes = emit_vec(&h);
        let mut want = LINUX_SYN;
        want[16] = 0;
        want[17] = 0;
        assert_eq!(bytes, want, "emit writes a zero checksum");
        assert!(fill_checksum_v4(SRC4, DST4, &mut bytes));
        assert_eq!(bytes, LINUX_SYN);
        assert!(checksum_ok_v4(SRC4, DST4, &LINUX_SYN));
        let seg = parse(&LINUX_SYN).expect("parses");
        assert_eq!(seg.header, h);
        assert_eq!(seg.header_len, 40);
        assert!(seg.payload.is_empty());
    }

    #[test]
    fn linux_layouts() {
        // SYN with timestamps off: `mss 1460,nop,nop,sackOK,nop,wscale 7`.
        let o = TcpOptions {
            mss: Some(1460),
            wscale: Some(7),
            sack_permitted: true,
            ..TcpOptions::default()
        };
        let mut b = [0u8; 40];
        assert_eq!(o.emit(&mut b), 12);
        assert_eq!(b[..12], [2, 4, 5, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7]);
        // A data segment: `nop,nop,TS val 1 ecr 2`.
        let o = TcpOptions {
            timestamps: Some((1, 2)),
            ..TcpOptions::default()
        };
        assert_eq!(o.emit(&mut b), 12);
        assert_eq!(b[..12], [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        // A duplicate ACK: `nop,nop,TS val 1 ecr 2,nop,nop,sack 1 {100:200}`.
        let mut o = o;
        assert!(o.push_sack(Seq(100), Seq(200)));
        assert_eq!(o.emit(&mut b), 24);
        assert_eq!(
            b[..24],
            [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1, 5, 10, 0, 0, 0, 100, 0, 0, 0, 200]
        );
        // Nothing at all.
        assert_eq!(TcpOptions::default().encoded_len(), 0);
    }

    #[test]
    fn sack_blocks_limited_to_the_option_space() {
        let mut o = TcpOptions::default();
        for k in 0..4 {
            assert!(o.push_sack(Seq(k * 10), Seq(k * 10 + 5)));
        }
        assert!(!o.push_sack(Seq(1), Seq(2)), "four blocks at most");
        assert_eq!(o.encoded_len(), 4 + 32);
        // With timestamps: 3 blocks, as tcp_established_options computes (40 − 12 − 4) / 8.
        o.timestamps = Some((7, 8));
        assert_eq!(o.encoded_len(), 12 + 4 + 24);
        // Everything a SYN can carry leaves room for 2.
        o.mss = Some(1460);
        o.wscale = Some(7);
        o.sack_permitted = true;
        assert_eq!(o.encoded_len(), 40);
        let h = TcpHeader {
            options: o,
            ..linux_syn_header()
        };
        let parsed = parse(&emit_vec(&h)).expect("parses").header.options;
        assert_eq!(parsed.sack_blocks(), &o.sack_blocks()[..2]);
    }

    #[test]
    fn emit_into_short_buffers_writes_nothing() {
        let h = linux_syn_header();
        let mut out = [0xeeu8; 39];
        assert_eq!(h.emit(&mut out), 0);
        assert!(out.iter().all(|&b| b == 0xee));
        assert_eq!(h.options.emit(&mut out[..19]), 0);
    }

    #[test]
    fn impossible_lengths() {
        assert_eq!(parse(&[]).unwrap_err(), TcpError::Truncated);
        assert_eq!(parse(&LINUX_SYN[..19]).unwrap_err(), TcpError::Truncated);
        // Data offset 4 words.
        let mut s = LINUX_SYN;
        s[12] = 0x40;
        assert_eq!(parse(&s).unwrap_err(), TcpError::BadDataOffset);
        // Data offset 11 words, past the 40-byte segment.
        s[12] = 0xb0;
        assert_eq!(parse(&s).unwrap_err(), TcpError::BadDataOffset);
        // Header cut inside the options.
        assert_eq!(
            parse(&LINUX_SYN[..36]).unwrap_err(),
            TcpError::BadDataOffset
        );
    }

    /// A 20-byte header followed by `opts` (padded with EOL to a word) and `data offset`
    /// covering them.
    fn with_options(opts: &[u8]) -> Vec<u8> {
        let mut s = LINUX_SYN[..20].to_vec();
        s.extend_from_slice(opts);
        while !s.len().is_multiple_of(4) {
            s.push(0);
        }
        s[12] = ((s.len() / 4) as u8) << 4;
        s
    }

    #[test]
    fn malformed_option_lengths() {
        for (opts, kind) in [
            (&[2u8, 0, 0, 0][..], 2), // opsize 0
            (&[1, 1, 8, 1][..], 8),   // opsize 1
            (&[1, 1, 1, 30][..], 30), // kind in the last byte, no length byte
            (&[8, 10, 0, 0][..], 8),  // timestamps past the end
            (&[1, 1, 99, 7][..], 99), // an unknown kind past the end
        ] {
            assert_eq!(
                parse(&with_options(opts)).unwrap_err(),
                TcpError::BadOptionLength { kind },
                "{opts:?}"
            );
        }
    }

    #[test]
    fn kernel_tolerance() {
        // Unknown kinds are skipped by length; a wrong-size MSS, window scale, SACK_PERM,
        // timestamp or SACK is ignored (the kernel's `opsize == TCPOLEN_*` checks).
        let s = with_options(&[
            99, 4, 0xaa, 0xbb, // unknown
            2, 6, 5, 0xb4, 0, 0, // MSS of length 6
            3, 4, 7, 0, // WS of length 4
            4, 3, 0, // SACK_PERM of length 3
            8, 6, 1, 2, 3, 4, // timestamps of length 6
            5, 6, 1, 2, 3, 4, // SACK of length 6 (no whole block)
            1, 1, 3, 3, 9, // NOP NOP, WS 9 (the one that counts)
        ]);
        let o = parse(&s).expect("parses").header.options;
        assert_eq!(
            o,
            TcpOptions {
                wscale: Some(9),
                ..TcpOptions::default()
            }
        );
        // EOL ends the list: even garbage after it is not read.
        let s = with_options(&[2, 4, 1, 0, 0, 0xff, 0xff, 0]);
        let o = parse(&s).expect("parses").header.options;
        assert_eq!(o.mss, Some(256));
        // A repeated option: the last one counts.
        let s = with_options(&[2, 4, 1, 0, 2, 4, 2, 0]);
        assert_eq!(parse(&s).expect("parses").header.options.mss, Some(512));
        // The payload is what follows the data offset.
        let mut s = with_options(&[1, 1, 1, 1]);
        s.extend_from_slice(b"data");
        let seg = parse(&s).expect("parses");
        assert_eq!(seg.header_len, 24);
        assert_eq!(seg.payload, b"data");
    }

    #[test]
    fn reserved_bits_ignored() {
        let mut s = LINUX_SYN;
        s[12] |= 0x0f;
        assert_eq!(parse(&s).expect("parses").header, linux_syn_header());
    }

    #[test]
    fn checksums() {
        let h = TcpHeader {
            flags: ACK | PSH,
            options: TcpOptions {
                timestamps: Some((123, 456)),
                ..TcpOptions::default()
            },
            ..linux_syn_header()
        };
        for payload_len in [0usize, 1, 2, 3, 1447, 1448] {
            let mut seg = emit_vec(&h);
            seg.extend((0..payload_len).map(|k| (k * 31 + 7) as u8));
            assert!(fill_checksum_v4(SRC4, DST4, &mut seg));
            assert!(checksum_ok_v4(SRC4, DST4, &seg), "{payload_len}");
            assert!(!checksum_ok_v4(DST4, [10, 0, 0, 3], &seg));
            let mut v6 = seg.clone();
            assert!(fill_checksum_v6(SRC6, DST6, &mut v6));
            assert!(checksum_ok_v6(SRC6, DST6, &v6), "{payload_len}");
            assert!(!checksum_ok_v6(SRC6, SRC6, &v6));
            // Any flipped bit is caught.
            let last = seg.len() - 1;
            seg[last] ^= 0x10;
            assert!(!checksum_ok_v4(SRC4, DST4, &seg));
            // Cross-check with etherparse's independent implementation.
            let th = etherparse::TcpHeader::from_slice(&v6)
                .expect("etherparse")
                .0;
            let ck = th
                .calc_checksum_ipv6_raw(SRC6, DST6, &v6[h.header_len()..])
                .expect("checksum");
            assert_eq!(ck.to_be_bytes(), [v6[16], v6[17]]);
        }
        assert!(!fill_checksum_v4(SRC4, DST4, &mut [0u8; 19]));
        assert!(!checksum_ok_v4(SRC4, DST4, &vec![0u8; 65536]));
    }

    fn arb_options() -> impl Strategy<Value = TcpOptions> {
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u8>()),
            any::<bool>(),
            proptest::option::of((any::<u32>(), any::<u32>())),
            proptest::collection::vec((any::<u32>(), any::<u32>()), 0..=4),
        )
            .prop_map(|(mss, wscale, sack_permitted, timestamps, blocks)| {
                let mut o = TcpOptions {
                    mss,
                    wscale,
                    sack_permitted,
                    timestamps,
                    ..TcpOptions::default()
                };
                for (s, e) in blocks {
                    o.push_sack(Seq(s), Seq(e));
                }
                o
            })
    }

    fn arb_header() -> impl Strategy<Value = TcpHeader> {
        (
            (any::<u16>(), any::<u16>(), any::<u32>(), any::<u32>()),
            (any::<u8>(), any::<u16>(), any::<u16>()),
            arb_options(),
        )
            .prop_map(
                |((src_port, dst_port, seq, ack), (flags, window, urgent), options)| TcpHeader {
                    src_port,
                    dst_port,
                    seq: Seq(seq),
                    ack: Seq(ack),
                    flags,
                    window,
                    checksum: 0,
                    urgent,
                    options,
                },
            )
    }

    proptest! {
        #[test]
        fn round_trip(h in arb_header(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut seg = emit_vec(&h);
            prop_assert_eq!(seg.len() % 4, 0);
            prop_assert!(seg.len() <= TCP_HLEN + MAX_OPTIONS_LEN);
            seg.extend_from_slice(&payload);
            let p = parse(&seg).expect("parses what it emits");
            // Only the SACK blocks that fit were sent.
            let mut want = h;
            want.options.sack_len = h.options.sack_sent() as u8;
            for b in want.options.sack.iter_mut().skip(usize::from(want.options.sack_len)) {
                *b = (Seq(0), Seq(0));
            }
            prop_assert_eq!(p.header, want);
            prop_assert_eq!(p.header_len, h.header_len());
            prop_assert_eq!(p.payload, &payload[..]);
            // And the re-emitted bytes are the same.
            prop_assert_eq!(emit_vec(&p.header), seg[..p.header_len].to_vec());
        }

        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = parse(&bytes);
            let _ = checksum_ok_v4(SRC4, DST4, &bytes);
            let _ = checksum_ok_v6(SRC6, DST6, &bytes);
        }

        #[test]
        fn never_panics_on_options(opts in proptest::collection::vec(any::<u8>(), 0..=40), tail in 0usize..8) {
            // A header whose data offset covers random option bytes: reaches the option
            // parser every time.
            let mut s = with_options(&opts);
            s.extend(std::iter::repeat_n(0xab, tail));
            match parse(&s) {
                Ok(p) => prop_assert_eq!(p.payload.len(), tail),
                Err(e) => prop_assert!(matches!(e, TcpError::BadOptionLength { .. }), "{:?}", e),
            }
        }
    }
}
