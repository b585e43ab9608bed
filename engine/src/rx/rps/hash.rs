//! Flow hashing for steering: which worker a frame's flow belongs to (RPS, done here in
//! software), and which RX queue the NIC put it on (RSS, done in hardware).
//!
//! Three steps, each usable alone:
//!
//! 1. [`flow_key`] reads a raw Ethernet frame (up to two VLAN tags, IPv4 with options, IPv6
//!    with extension headers) into a [`FlowKey`]: the two addresses, and the two ports of
//!    TCP, UDP and SCTP when the packet is not a fragment. Every read is bounds-checked;
//!    anything that is not IP or does not parse gives `None`, never a panic.
//! 2. [`FlowHasher`] hashes the key. [`HashKind::Toeplitz`] is the NIC's RSS hash
//!    (Microsoft's RSS specification, "RSS hashing functions"), so with the NIC's key
//!    (`ethtool -x` prints it) it gives the value the NIC wrote into the descriptor.
//!    [`HashKind::Cheap`] is a multiply/xor-shift mix that matches no NIC. Either can be
//!    made symmetric (both directions of a connection hash the same).
//! 3. The hash picks a place: [`RpsMap::pick`] scales it over a queue's worker list with
//!    [`reciprocal_scale`], as the kernel's `get_rps_cpu` (net/core/dev.c) does with
//!    `rps_cpus`; [`rss_queue`] is the NIC's default indirection table.
//!
//! The Toeplitz input is exactly what NICs hash (Microsoft "RSS hashing functions"; Intel
//! 82599 / I210 datasheets, "RSS hash function"), all fields in network byte order:
//!
//! | packet                          | input                                      | bytes |
//! |---------------------------------|--------------------------------------------|-------|
//! | IPv4 TCP/UDP/SCTP, not fragment | src addr, dst addr, src port, dst port     | 12    |
//! | IPv4 other, or a fragment       | src addr, dst addr                         | 8     |
//! | IPv6 TCP/UDP/SCTP, not fragment | src addr, dst addr, src port, dst port     | 36    |
//! | IPv6 other, or a fragment       | src addr, dst addr                         | 32    |
//!
//! Fragments hash on the addresses only (Microsoft "RSS hashing types": fragmented IP
//! packets, the first fragment included, use the addresses-only hash type), so every
//! fragment of a datagram lands on the same worker, where it can be reassembled.
//!
//! Non-goals: inner headers of tunnels (VXLAN, GRE, GTP-U), the NDIS "IPv6 EX" hash types
//! (which substitute addresses from the Home Address option or a type 2 routing header),
//! the IPv6 flow label, and the kernel's hexadecimal cpumask syntax for `rps_cpus` (the
//! list syntax of `taskset -c` is taken instead, see [`RpsMap::parse`]).

use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
};

use crate::wire::{
    udp::{IPV4_HLEN, IPV6_HLEN},
    ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETH_HLEN, IPPROTO_TCP,
    IPPROTO_UDP, VLAN_HLEN,
};

/// The Microsoft RSS default key: the key of Microsoft's "Verifying the RSS Hash
/// Calculation" vectors and of the RSS verification suites in Intel's NIC datasheets.
pub const MS_RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// Longest hash input: an IPv6 source (16) and destination (16) address and two 2-byte
/// ports.
pub const MAX_INPUT_LEN: usize = 16 + 16 + 2 + 2;

/// Shortest Toeplitz key accepted. Each input bit XORs in the 32-bit key window that starts
/// at that bit, so the last bit of a [`MAX_INPUT_LEN`]-byte input needs the key to go on for
/// 4 bytes past it: 36 + 4 = 40, the length of [`MS_RSS_KEY`] and of most NICs' keys.
pub const MIN_KEY_LEN: usize = MAX_INPUT_LEN + 4;

/// Longest Toeplitz key accepted: room above the longest keys Linux drivers report (52
/// bytes for Intel ice / i40e). Bytes past [`MIN_KEY_LEN`] never reach the hash of an IP
/// flow, so a longer key hashes as its first 40 bytes.
pub const MAX_KEY_LEN: usize = 64;

/// Entries of the RSS indirection table that [`rss_queue`] models by default: the 128-entry
/// RETA of Intel 82599 / I210 (indexed by the hash's 7 low bits, datasheet "Indirection
/// Table"). Other NICs have 256 or 512 entries: `ethtool -x DEV` prints the size.
pub const DEFAULT_INDIR_TABLE_LEN: u32 = 128;

/// At most this many VLAN tags are skipped: 802.1ad QinQ is an S-tag and a C-tag.
const MAX_VLAN_TAGS: usize = 2;

/// At most this many IPv6 extension headers are walked. RFC 8200 §4.1 lets each occur once,
/// Destination Options twice, so a conforming packet has at most 5 headers of the 4 kinds
/// walked here (hop-by-hop, destination options, routing, fragment, destination options); 8 allows
/// some harmless repetition while bounding the work per frame. A longer chain is hashed on
/// its addresses.
const MAX_EXT_HEADERS: usize = 8;

/// IPv4 "more fragments" flag in the flags/fragment-offset word (RFC 791).
const IPV4_MF: u16 = 0x2000;
/// IPv4 fragment offset, the word's low 13 bits (RFC 791).
const IPV4_OFFSET_MASK: u16 = 0x1fff;
/// SCTP's IP protocol number (RFC 4960); its common header starts with the two ports.
pub const IPPROTO_SCTP: u8 = 132;
/// IPv6 Hop-by-Hop Options header (RFC 8200 §4.3).
const IPV6_HOPOPTS: u8 = 0;
/// IPv6 Routing header (RFC 8200 §4.4).
const IPV6_ROUTING: u8 = 43;
/// IPv6 Fragment header (RFC 8200 §4.5).
const IPV6_FRAGMENT: u8 = 44;
/// IPv6 Destination Options header (RFC 8200 §4.6).
const IPV6_DSTOPTS: u8 = 60;
/// Fixed length of the IPv6 Fragment header.
const IPV6_FRAG_HLEN: usize = 8;
/// Hop-by-hop, routing and destination-options lengths count 8-octet units beyond the
/// first 8 octets (RFC 8200 §4.3).
const IPV6_EXT_UNIT: usize = 8;

/// Errors building a hasher or parsing a key or a steering map (set-up time only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// The Toeplitz key has the wrong length.
    #[error(
        "RSS key is {len} bytes; it must be {MIN_KEY_LEN} to {MAX_KEY_LEN} bytes \
         (a {MAX_INPUT_LEN}-byte IPv6 4-tuple needs {MIN_KEY_LEN})"
    )]
    KeyLength {
        /// Bytes given.
        len: usize,
    },
    /// A key in hex has a character that is not a hex digit or a separator.
    #[error("RSS key: {found:?} at character {at} is not a hex digit (separators ':', '-', ' ' are allowed)")]
    KeyHexDigit {
        /// The character.
        found: char,
        /// Its index in the string.
        at: usize,
    },
    /// A key in hex has an odd number of digits.
    #[error("RSS key: {digits} hex digits is an odd number (two per byte)")]
    KeyHexOdd {
        /// Digits given.
        digits: usize,
    },
}

/// Errors parsing or building an [`RpsMap`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpsMapError {
    /// No queues: the map needs at least one.
    #[error("an RPS map needs at least one RX queue")]
    NoQueues,
    /// More queues than [`RpsMap::MAX_QUEUES`].
    #[error("{queues} RX queues is more than the {max} an RPS map takes")]
    TooManyQueues {
        /// Queues asked for.
        queues: u32,
        /// The bound.
        max: u32,
    },
    /// A queue has an empty worker list.
    #[error("queue {queue}: empty worker list (e.g. `0-3` or `0,2,4`)")]
    EmptyList {
        /// The queue.
        queue: u32,
    },
    /// An item of a worker list is not `N` or `N-M` with N <= M.
    #[error("{item:?} is not a worker number or range N-M with N <= M (e.g. `0-3`, `0,2,4`)")]
    BadItem {
        /// The item.
        item: String,
    },
    /// A worker index beyond [`RpsMap::MAX_WORKERS`].
    #[error("worker {worker} is beyond the largest worker index {max}")]
    WorkerTooLarge {
        /// The index.
        worker: u64,
        /// The largest accepted.
        max: usize,
    },
    /// A per-queue part is not `Q:LIST`.
    #[error("{part:?} is not QUEUE:LIST (per-queue form: `0:0-1;1:2-3`)")]
    BadQueuePart {
        /// The part.
        part: String,
    },
    /// A queue named in the per-queue form does not exist.
    #[error("queue {queue} named in the RPS map, but there are only {queues} RX queue(s)")]
    QueueOutOfRange {
        /// The queue named.
        queue: u32,
        /// How many there are.
        queues: u32,
    },
    /// A queue is named twice in the per-queue form.
    #[error("queue {queue} is named twice in the RPS map")]
    DuplicateQueue {
        /// The queue.
        queue: u32,
    },
    /// A queue is not named in the per-queue form.
    #[error("queue {queue} has no worker list in the per-queue RPS map (every queue 0..{queues} needs one)")]
    MissingQueue {
        /// The queue.
        queue: u32,
        /// How many there are.
        queues: u32,
    },
}

/// Parses a Toeplitz key written in hex: two digits per byte, optionally separated by `:`,
/// `-` or whitespace (`ethtool -x` prints `6d:5a:56:...`). Checks the length too.
pub fn parse_key_hex(s: &str) -> Result<Vec<u8>, HashError> {
    let mut nibbles = Vec::with_capacity(2 * MAX_KEY_LEN);
    for (at, c) in s.chars().enumerate() {
        if c == ':' || c == '-' || c.is_whitespace() {
            continue;
        }
        // `to_digit(16)` is below 16, so it fits a u8.
        let d = c
            .to_digit(16)
            .ok_or(HashError::KeyHexDigit { found: c, at })?;
        nibbles.push(d as u8);
    }
    if nibbles.len() % 2 != 0 {
        return Err(HashError::KeyHexOdd {
            digits: nibbles.len(),
        });
    }
    let key: Vec<u8> = nibbles.chunks_exact(2).map(|p| p[0] << 4 | p[1]).collect();
    if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
        return Err(HashError::KeyLength { len: key.len() });
    }
    Ok(key)
}

/// The Toeplitz hash of Microsoft's RSS specification, table-driven.
///
/// The hash of input bits b0 b1 ... (most significant bit of the first byte first) is the
/// XOR, over the set bits bi, of the 32 key bits starting at key bit i. That is linear in
/// the input, so the contribution of one input byte at position i is a function of the
/// byte alone: `tables[i][byte]`, 256 entries precomputed per position. A hash is then one
/// load and one XOR per input byte: 12 for an IPv4 4-tuple, 36 for IPv6. The tables take
/// 36 x 256 x 4 bytes = 36 KiB, allocated once when the hasher is built.
#[derive(Clone)]
pub struct Toeplitz {
    key: [u8; MAX_KEY_LEN],
    key_len: usize,
    tables: Box<[[u32; 256]; MAX_INPUT_LEN]>,
}

impl fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Toeplitz")
            .field("key", &KeyHex(self.key()))
            .finish_non_exhaustive()
    }
}

/// Formats a key as `6d:5a:...`.
struct KeyHex<'a>(&'a [u8]);

impl fmt::Debug for KeyHex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Toeplitz {
    /// A hasher for `key`, [`MIN_KEY_LEN`] to [`MAX_KEY_LEN`] bytes long (40 for most NICs,
    /// 52 for Intel ice / i40e).
    pub fn new(key: &[u8]) -> Result<Self, HashError> {
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
            return Err(HashError::KeyLength { len: key.len() });
        }
        Ok(Self::build(key))
    }

    /// A hasher for [`MS_RSS_KEY`].
    pub fn ms_rss() -> Self {
        Self::build(&MS_RSS_KEY)
    }

    /// Builds the tables; `key` is [`MIN_KEY_LEN`]..=[`MAX_KEY_LEN`] bytes (checked by the
    /// callers).
    fn build(key: &[u8]) -> Self {
        let mut stored = [0u8; MAX_KEY_LEN];
        for (d, s) in stored.iter_mut().zip(key) {
            *d = *s;
        }
        let mut tables = Box::new([[0u32; 256]; MAX_INPUT_LEN]);
        for (i, table) in tables.iter_mut().enumerate() {
            // Key bits 8i .. 8i+40 in the low 40 bits of `k`: the windows of all eight bits
            // of input byte i. `stored` is MAX_KEY_LEN >= i + 5 bytes long.
            let k = stored
                .iter()
                .skip(i)
                .take(5)
                .fold(0u64, |a, &b| a << 8 | u64::from(b));
            // The input bit of value 1 << j is bit 7 - j of the byte, so its window starts
            // 7 - j bits into `k`: its low 32 bits after a shift of 40 - 32 - (7 - j).
            let mut single = [0u32; 8];
            for (j, w) in single.iter_mut().enumerate() {
                *w = (k >> (j + 1)) as u32;
            }
            // table[b] = table[b without its lowest set bit] ^ window of that bit.
            for b in 1..256usize {
                table[b] = table[b & (b - 1)] ^ single[b.trailing_zeros() as usize];
            }
        }
        Self {
            key: stored,
            key_len: key.len(),
            tables,
        }
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        self.key.get(..self.key_len).unwrap_or(&self.key)
    }

    /// Whether the key is [`MS_RSS_KEY`], possibly zero-padded to a longer key length (as
    /// Intel's X710 datasheet writes it at 52 bytes).
    pub fn is_ms_rss_key(&self) -> bool {
        self.key().get(..MS_RSS_KEY.len()) == Some(&MS_RSS_KEY[..])
            && self.key().iter().skip(MS_RSS_KEY.len()).all(|&b| b == 0)
    }

    /// The Toeplitz hash of `input`. Bytes beyond [`MAX_INPUT_LEN`] are not hashed (no IP
    /// flow has more). Allocation-free, one table load per byte.
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        input
            .iter()
            .zip(self.tables.iter())
            .fold(0, |h, (&b, t)| h ^ t[usize::from(b)])
    }
}

/// Multiplier of the cheap hash: 2^64 divided by the golden ratio, made odd (Knuth's
/// multiplicative "Fibonacci hashing", TAOCP vol. 3 §6.4). Odd, so multiplying by it is a
/// bijection on u64 and loses no input bits.
const CHEAP_MUL: u64 = 0x9e37_79b9_7f4a_7c15;

/// The cheap flow hash: the input read as big-endian 64-bit words (the last one
/// zero-padded), each XORed into the state, multiplied by [`CHEAP_MUL`] and folded
/// (`h ^= h >> 32`, which brings the well-mixed high half of the product down to the low
/// half); then one more multiply, and the high 32 bits are the hash.
///
/// Why cheaper than Toeplitz: one multiply per 8 input bytes (3 for an IPv4 4-tuple, 6 for
/// IPv6) instead of one table load per byte (12 or 36) from 36 KiB of tables that compete
/// with the packet data for L1, and no per-hasher state at all. Its output bits depend on
/// every input bit and it spreads flows evenly (a test checks), but it is unkeyed (an
/// attacker who knows it can aim many flows at one worker) and it does NOT match NIC RSS:
/// use [`HashKind::Toeplitz`] to predict or follow the NIC's choice of queue.
#[inline]
pub fn cheap_hash(input: &[u8]) -> u32 {
    // Seeded with the length, so an IPv4 2-tuple and the same bytes zero-padded differ.
    let mut h = input.len() as u64;
    // 8 bytes: one u64 word per multiply.
    for chunk in input.chunks(8) {
        let mut w = [0u8; 8];
        for (d, s) in w.iter_mut().zip(chunk) {
            *d = *s;
        }
        h = (h ^ u64::from_be_bytes(w)).wrapping_mul(CHEAP_MUL);
        h ^= h >> 32;
    }
    (h.wrapping_mul(CHEAP_MUL) >> 32) as u32
}

/// Which hash a [`FlowHasher`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashKind {
    /// Microsoft RSS Toeplitz: what NICs compute, so it predicts their queue choice.
    Toeplitz,
    /// [`cheap_hash`]: fewer operations, matches no NIC.
    Cheap,
}

impl HashKind {
    /// Lower-case name (`toeplitz`, `cheap`), as the CLI takes it.
    pub fn name(self) -> &'static str {
        match self {
            HashKind::Toeplitz => "toeplitz",
            HashKind::Cheap => "cheap",
        }
    }
}

/// The two addresses of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowAddrs {
    /// IPv4.
    V4 {
        /// Source.
        src: Ipv4Addr,
        /// Destination.
        dst: Ipv4Addr,
    },
    /// IPv6.
    V6 {
        /// Source.
        src: Ipv6Addr,
        /// Destination.
        dst: Ipv6Addr,
    },
}

/// Source and destination port of TCP, UDP or SCTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ports {
    /// Source port.
    pub src: u16,
    /// Destination port.
    pub dst: u16,
}

/// What a flow hash is computed over: the addresses, and the ports when the protocol has
/// them and the packet is not a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source and destination address.
    pub addrs: FlowAddrs,
    /// Ports: TCP, UDP and SCTP packets that are not fragments; `None` hashes the
    /// addresses only.
    pub ports: Option<Ports>,
    /// IP protocol number (after IPv6 extension headers: the first header not walked; for
    /// an IPv6 fragment, the Fragment header's next header). For display only: it is not
    /// part of the hash input, as it is not for NICs.
    pub proto: u8,
    /// The packet is an IP fragment (IPv4 MF set or offset non-zero; IPv6 with a Fragment
    /// header), so the ports are not hashed.
    pub fragment: bool,
}

/// The bytes a flow is hashed over, at most [`MAX_INPUT_LEN`], held inline (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashInput {
    buf: [u8; MAX_INPUT_LEN],
    len: usize,
}

impl HashInput {
    /// Appends `bytes` (callers never exceed [`MAX_INPUT_LEN`] in total).
    fn push(&mut self, bytes: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.len..self.len + bytes.len()) {
            dst.copy_from_slice(bytes);
            self.len += bytes.len();
        }
    }

    /// The input bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

impl FlowKey {
    /// A key with the given addresses and optional ports; `proto` is for display.
    pub fn new(addrs: FlowAddrs, ports: Option<Ports>, proto: u8) -> Self {
        Self {
            addrs,
            ports,
            proto,
            fragment: false,
        }
    }

    /// The Toeplitz input NICs use: source address, destination address, then (when
    /// present) source port and destination port, all in network byte order.
    pub fn hash_input(&self) -> HashInput {
        let mut input = HashInput {
            buf: [0; MAX_INPUT_LEN],
            len: 0,
        };
        match self.addrs {
            FlowAddrs::V4 { src, dst } => {
                input.push(&src.octets());
                input.push(&dst.octets());
            }
            FlowAddrs::V6 { src, dst } => {
                input.push(&src.octets());
                input.push(&dst.octets());
            }
        }
        if let Some(p) = self.ports {
            input.push(&p.src.to_be_bytes());
            input.push(&p.dst.to_be_bytes());
        }
        input
    }

    /// The same flow seen from the other end: source and destination swapped.
    pub fn reversed(self) -> Self {
        let addrs = match self.addrs {
            FlowAddrs::V4 { src, dst } => FlowAddrs::V4 { src: dst, dst: src },
            FlowAddrs::V6 { src, dst } => FlowAddrs::V6 { src: dst, dst: src },
        };
        let ports = self.ports.map(|p| Ports {
            src: p.dst,
            dst: p.src,
        });
        Self {
            addrs,
            ports,
            ..self
        }
    }

    /// The key with its endpoints in canonical order: the (address, port) pair that sorts
    /// first becomes the source. `k.canonical() == k.reversed().canonical()`, which is what
    /// makes a symmetric hash symmetric.
    pub fn canonical(self) -> Self {
        let (sp, dp) = self.ports.map_or((0, 0), |p| (p.src, p.dst));
        let swap = match self.addrs {
            FlowAddrs::V4 { src, dst } => (src, sp) > (dst, dp),
            FlowAddrs::V6 { src, dst } => (src, sp) > (dst, dp),
        };
        if swap {
            self.reversed()
        } else {
            self
        }
    }

    /// `4-tuple` with ports, `2-tuple` without.
    pub fn tuple_name(&self) -> &'static str {
        if self.ports.is_some() {
            "4-tuple"
        } else {
            "2-tuple"
        }
    }
}

/// Name of an IP protocol number, for display.
pub fn proto_name(proto: u8) -> Option<&'static str> {
    match proto {
        IPPROTO_TCP => Some("tcp"),
        IPPROTO_UDP => Some("udp"),
        IPPROTO_SCTP => Some("sctp"),
        crate::wire::IPPROTO_ICMP => Some("icmp"),
        crate::wire::IPPROTO_ICMPV6 => Some("icmpv6"),
        _ => None,
    }
}

impl fmt::Display for FlowKey {
    /// `tcp 66.9.149.187:2794 -> 161.142.100.80:1766`, `[v6]:port` for IPv6, addresses
    /// alone without ports, ` (fragment)` for fragments.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match proto_name(self.proto) {
            Some(n) => write!(f, "{n} ")?,
            None => write!(f, "proto {} ", self.proto)?,
        }
        match (self.addrs, self.ports) {
            (FlowAddrs::V4 { src, dst }, Some(p)) => {
                write!(f, "{src}:{} -> {dst}:{}", p.src, p.dst)?
            }
            (FlowAddrs::V6 { src, dst }, Some(p)) => {
                write!(f, "[{src}]:{} -> [{dst}]:{}", p.src, p.dst)?
            }
            (FlowAddrs::V4 { src, dst }, None) => write!(f, "{src} -> {dst}")?,
            (FlowAddrs::V6 { src, dst }, None) => write!(f, "{src} -> {dst}")?,
        }
        if self.fragment {
            f.write_str(" (fragment)")?;
        }
        Ok(())
    }
}

/// The algorithm behind a [`FlowHasher`].
#[derive(Debug, Clone)]
enum Algo {
    Toeplitz(Toeplitz),
    Cheap,
}

/// Hashes flows for steering: Toeplitz or cheap, optionally symmetric.
///
/// Symmetric hashing orders the endpoints canonically ([`FlowKey::canonical`]) before
/// hashing, so A→B and B→A land on the same worker whatever the key. (The other way to get
/// symmetry, which NICs can do too, is a Toeplitz key repeating a 16-bit pattern such as
/// `6d5a6d5a...`: then the key windows of source and destination fields coincide.) A
/// symmetric Toeplitz hash equals the NIC's hash only for the direction already in
/// canonical order.
#[derive(Debug, Clone)]
pub struct FlowHasher {
    algo: Algo,
    symmetric: bool,
}

impl FlowHasher {
    /// Toeplitz with the given hasher (its key), not symmetric.
    pub fn toeplitz(t: Toeplitz) -> Self {
        Self {
            algo: Algo::Toeplitz(t),
            symmetric: false,
        }
    }

    /// Toeplitz with [`MS_RSS_KEY`], not symmetric.
    pub fn ms_rss() -> Self {
        Self::toeplitz(Toeplitz::ms_rss())
    }

    /// The cheap hash ([`cheap_hash`]), not symmetric.
    pub fn cheap() -> Self {
        Self {
            algo: Algo::Cheap,
            symmetric: false,
        }
    }

    /// The same hasher, symmetric or not.
    pub fn with_symmetric(self, symmetric: bool) -> Self {
        Self { symmetric, ..self }
    }

    /// Which hash this is.
    pub fn kind(&self) -> HashKind {
        match self.algo {
            Algo::Toeplitz(_) => HashKind::Toeplitz,
            Algo::Cheap => HashKind::Cheap,
        }
    }

    /// Whether both directions of a flow hash the same.
    pub fn is_symmetric(&self) -> bool {
        self.symmetric
    }

    /// The Toeplitz hasher (and so its key), if this is one.
    pub fn toeplitz_hasher(&self) -> Option<&Toeplitz> {
        match &self.algo {
            Algo::Toeplitz(t) => Some(t),
            Algo::Cheap => None,
        }
    }

    /// The key this hasher actually hashes: canonical order when symmetric.
    pub fn effective_key(&self, key: &FlowKey) -> FlowKey {
        if self.symmetric {
            key.canonical()
        } else {
            *key
        }
    }

    /// The hash of a flow. Allocation-free.
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u32 {
        let input = self.effective_key(key).hash_input();
        match &self.algo {
            Algo::Toeplitz(t) => t.hash(input.as_bytes()),
            Algo::Cheap => cheap_hash(input.as_bytes()),
        }
    }

    /// The hash of a frame's flow, `None` when [`flow_key`] finds none (not IP, or
    /// malformed): the caller decides where those go (the kernel keeps them on the
    /// receiving CPU).
    #[inline]
    pub fn hash_frame(&self, frame: &[u8]) -> Option<u32> {
        flow_key(frame).map(|k| self.hash(&k))
    }
}

/// Byte offsets of the header fields read here (IEEE 802.3, RFC 791, RFC 8200).
mod field {
    /// EtherType (or a VLAN TPID), after the two 6-byte MAC addresses.
    pub const ETHERTYPE: usize = 12;
    /// In a VLAN tag: the next EtherType, after the 2-byte TPID and the 2-byte TCI.
    pub const VLAN_NEXT: usize = 2;
    /// IPv4: version (high nibble) and IHL (low nibble, in 32-bit words).
    pub const V4_VIHL: usize = 0;
    /// IPv4 total length.
    pub const V4_TOTAL_LEN: usize = 2;
    /// IPv4 flags (3 bits) and fragment offset (13 bits).
    pub const V4_FRAG: usize = 6;
    /// IPv4 protocol.
    pub const V4_PROTO: usize = 9;
    /// IPv4 source address.
    pub const V4_SRC: usize = 12;
    /// IPv4 destination address.
    pub const V4_DST: usize = 16;
    /// IPv6: version (high nibble of the first byte).
    pub const V6_VERSION: usize = 0;
    /// IPv6 payload length.
    pub const V6_PAYLOAD_LEN: usize = 4;
    /// IPv6 next header.
    pub const V6_NEXT: usize = 6;
    /// IPv6 source address.
    pub const V6_SRC: usize = 8;
    /// IPv6 destination address.
    pub const V6_DST: usize = 24;
    /// In an IPv6 extension header: next header.
    pub const EXT_NEXT: usize = 0;
    /// In a hop-by-hop / routing / destination-options header: length in 8-octet units,
    /// not counting the first 8 octets.
    pub const EXT_LEN: usize = 1;
    /// L4 source port (TCP, UDP, SCTP).
    pub const SRC_PORT: usize = 0;
    /// L4 destination port.
    pub const DST_PORT: usize = 2;
}

/// IP version field of IPv4 (RFC 791).
const IP_VERSION_4: u8 = 4;
/// IP version field of IPv6 (RFC 8200).
const IP_VERSION_6: u8 = 6;
/// IPv4 IHL counts 32-bit words: bytes per unit.
const IPV4_IHL_UNIT: usize = 4;

/// Big-endian u16 at `at`, if the bytes are there.
#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at.checked_add(1)?)?,
    ]))
}

/// `N` bytes at `at`, if they are there.
#[inline]
fn array_at<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Whether the protocol's header starts with a source and a destination port that NICs
/// hash: TCP, UDP, SCTP.
#[inline]
fn has_ports(proto: u8) -> bool {
    matches!(proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP)
}

/// The ports at the start of an L4 header.
#[inline]
fn ports_at(l4: &[u8]) -> Option<Ports> {
    Some(Ports {
        src: be16(l4, field::SRC_PORT)?,
        dst: be16(l4, field::DST_PORT)?,
    })
}

/// The flow key of a raw Ethernet frame: `None` for non-IP frames and for IP packets that
/// are malformed or truncated (bad version, IPv4 IHL below 5, lengths beyond the frame, an
/// L4 header too short for its ports). Never panics, never allocates.
///
/// Skips up to two VLAN tags (0x8100, 0x88a8). IPv4 options are skipped by IHL. IPv6
/// hop-by-hop, routing, destination-options and fragment headers are walked (at most 8);
/// any other next header ends the walk and is hashed on the addresses only.
pub fn flow_key(frame: &[u8]) -> Option<FlowKey> {
    let mut ethertype = be16(frame, field::ETHERTYPE)?;
    let mut l3 = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
            break;
        }
        // A tag is TPID (already read) + TCI, then the next EtherType.
        ethertype = be16(frame, l3 + field::VLAN_NEXT)?;
        l3 += VLAN_HLEN;
    }
    let ip = frame.get(l3..)?;
    match ethertype {
        ETHERTYPE_IPV4 => ipv4_key(ip),
        ETHERTYPE_IPV6 => ipv6_key(ip),
        _ => None,
    }
}

/// Flow key of an IPv4 packet (RFC 791) starting at `ip[0]`.
fn ipv4_key(ip: &[u8]) -> Option<FlowKey> {
    let vihl = *ip.get(field::V4_VIHL)?;
    if vihl >> 4 != IP_VERSION_4 {
        return None;
    }
    let ihl = usize::from(vihl & 0x0f) * IPV4_IHL_UNIT;
    if ihl < IPV4_HLEN {
        return None;
    }
    let total = usize::from(be16(ip, field::V4_TOTAL_LEN)?);
    if total < ihl {
        return None;
    }
    // Bytes past `total` are Ethernet padding; fewer bytes than `total` is truncation.
    let pkt = ip.get(..total)?;
    let frag = be16(pkt, field::V4_FRAG)?;
    let fragment = frag & (IPV4_MF | IPV4_OFFSET_MASK) != 0;
    let proto = *pkt.get(field::V4_PROTO)?;
    let src = Ipv4Addr::from(array_at::<4>(pkt, field::V4_SRC)?);
    let dst = Ipv4Addr::from(array_at::<4>(pkt, field::V4_DST)?);
    let ports = if fragment || !has_ports(proto) {
        None
    } else {
        Some(ports_at(pkt.get(ihl..)?)?)
    };
    Some(FlowKey {
        addrs: FlowAddrs::V4 { src, dst },
        ports,
        proto,
        fragment,
    })
}

/// Flow key of an IPv6 packet (RFC 8200) starting at `ip[0]`.
fn ipv6_key(ip: &[u8]) -> Option<FlowKey> {
    let h = ip.get(..IPV6_HLEN)?;
    if h.get(field::V6_VERSION)? >> 4 != IP_VERSION_6 {
        return None;
    }
    let payload = usize::from(be16(h, field::V6_PAYLOAD_LEN)?);
    let mut nh = *h.get(field::V6_NEXT)?;
    // Payload length 0 with a hop-by-hop header is a jumbogram (RFC 2675): its length is in
    // an option; the frame's end bounds it here.
    let end = if payload == 0 && nh == IPV6_HOPOPTS {
        ip.len()
    } else {
        IPV6_HLEN + payload
    };
    let pkt = ip.get(..end)?;
    let src = Ipv6Addr::from(array_at::<16>(h, field::V6_SRC)?);
    let dst = Ipv6Addr::from(array_at::<16>(h, field::V6_DST)?);
    let mut off = IPV6_HLEN;
    let mut fragment = false;
    for _ in 0..MAX_EXT_HEADERS {
        match nh {
            IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS => {
                let next = *pkt.get(off + field::EXT_NEXT)?;
                let len = (usize::from(*pkt.get(off + field::EXT_LEN)?) + 1) * IPV6_EXT_UNIT;
                pkt.get(off..off + len)?;
                nh = next;
                off += len;
            }
            IPV6_FRAGMENT => {
                let fh = pkt.get(off..off + IPV6_FRAG_HLEN)?;
                nh = *fh.get(field::EXT_NEXT)?;
                fragment = true;
                break;
            }
            _ => break,
        }
    }
    // After a chain longer than MAX_EXT_HEADERS, `nh` is still an extension header, which
    // has no ports: hashed on the addresses, `proto` names the header where the walk stopped.
    let ports = if fragment || !has_ports(nh) {
        None
    } else {
        Some(ports_at(pkt.get(off..)?)?)
    };
    Some(FlowKey {
        addrs: FlowAddrs::V6 { src, dst },
        ports,
        proto: nh,
        fragment,
    })
}

/// Scales a 32-bit hash into `0..n` with a multiply and a shift instead of a division:
/// `(hash * n) >> 32`, as the kernel's `reciprocal_scale()` that `get_rps_cpu` uses
/// (`map->cpus[reciprocal_scale(hash, map->len)]`). It uses the hash's high bits, so a hash
/// whose low bits already chose the RSS queue still spreads over that queue's workers.
/// `n == 0` gives 0.
#[inline]
pub const fn reciprocal_scale(hash: u32, n: u32) -> u32 {
    ((hash as u64 * n as u64) >> 32) as u32
}

/// The RX queue a NIC with `queues` queues and the driver's default indirection table of
/// `table_len` entries ([`DEFAULT_INDIR_TABLE_LEN`] unless `ethtool -x` says otherwise)
/// puts a hash on: entry `i` holds queue `i % queues` (the kernel's
/// `ethtool_rxfh_indir_default()`, which most drivers fill their table with), and the
/// table is indexed with the hash's low bits, `hash & (table_len - 1)` (`hash % table_len`
/// for a length that is not a power of two). 0 when `queues` or `table_len` is 0.
#[inline]
pub fn rss_queue(hash: u32, queues: u32, table_len: u32) -> u32 {
    if queues == 0 || table_len == 0 {
        return 0;
    }
    let index = if table_len.is_power_of_two() {
        hash & (table_len - 1)
    } else {
        hash % table_len
    };
    index % queues
}

/// Per RX queue, the workers its frames may be steered to: the kernel's `rps_map`, which
/// `/sys/class/net/DEV/queues/rx-N/rps_cpus` sets, with skiff's worker indices for CPUs.
/// Every queue has a non-empty list, sorted and without duplicates (a set, as a cpumask).
///
/// [`RpsMap::pick`] steers exactly as `get_rps_cpu` does: the worker at
/// `reciprocal_scale(hash, list.len())` in the queue's list. A hash of 0 lands on the
/// list's first worker; the kernel instead reads hash 0 as "no hash" and keeps the packet
/// on the receiving CPU, but skiff always has a hash for the frames it steers (frames
/// without a [`flow_key`] are the caller's to place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpsMap {
    lists: Vec<Vec<usize>>,
}

impl RpsMap {
    /// Most RX queues a map takes: far above any NIC's channel count (a few hundred at
    /// most), low enough that a mistyped count cannot allocate gigabytes.
    pub const MAX_QUEUES: u32 = 4096;
    /// Largest worker index: 8191, for the 8192 CPUs of a kernel built with
    /// `CONFIG_MAXSMP` (x86-64's largest `NR_CPUS`).
    pub const MAX_WORKERS: usize = 8191;

    /// A map from explicit per-queue lists (queue i is `lists[i]`), each sorted and
    /// de-duplicated here.
    pub fn new(lists: Vec<Vec<usize>>) -> Result<Self, RpsMapError> {
        let queues = u32::try_from(lists.len()).unwrap_or(u32::MAX);
        Self::check_queues(queues)?;
        let mut out = Vec::with_capacity(lists.len());
        for (queue, mut list) in (0u32..).zip(lists) {
            if list.is_empty() {
                return Err(RpsMapError::EmptyList { queue });
            }
            if let Some(&worker) = list.iter().find(|&&w| w > Self::MAX_WORKERS) {
                return Err(RpsMapError::WorkerTooLarge {
                    worker: worker as u64,
                    max: Self::MAX_WORKERS,
                });
            }
            list.sort_unstable();
            list.dedup();
            out.push(list);
        }
        Ok(Self { lists: out })
    }

    /// Every one of `queues` queues steers over workers `0..workers` (the kernel with
    /// `rps_cpus` set to all CPUs).
    pub fn all(workers: usize, queues: u32) -> Result<Self, RpsMapError> {
        if workers == 0 {
            return Err(RpsMapError::EmptyList { queue: 0 });
        }
        if workers > Self::MAX_WORKERS + 1 {
            return Err(RpsMapError::WorkerTooLarge {
                worker: workers as u64 - 1,
                max: Self::MAX_WORKERS,
            });
        }
        Self::check_queues(queues)?;
        let list: Vec<usize> = (0..workers).collect();
        Self::new(vec![list; queues as usize])
    }

    fn check_queues(queues: u32) -> Result<(), RpsMapError> {
        if queues == 0 {
            return Err(RpsMapError::NoQueues);
        }
        if queues > Self::MAX_QUEUES {
            return Err(RpsMapError::TooManyQueues {
                queues,
                max: Self::MAX_QUEUES,
            });
        }
        Ok(())
    }

    /// Parses a `--rps-cpus` value for `queues` RX queues. Two forms:
    ///
    /// - `LIST`, one list for every queue: comma-separated worker indices and inclusive
    ///   ranges, as `taskset -c` takes CPUs: `0-3`, `0,2,4`, `0-1,6-7`.
    /// - per queue, `Q:LIST` parts separated by `;`: `0:0-1;1:2-3`. Every queue
    ///   `0..queues` must be named exactly once.
    ///
    /// Whitespace around items is ignored; duplicates collapse (a list is a set).
    pub fn parse(spec: &str, queues: u32) -> Result<Self, RpsMapError> {
        Self::check_queues(queues)?;
        if !spec.contains(':') {
            let list = parse_list(spec, 0)?;
            return Self::new(vec![list; queues as usize]);
        }
        let mut lists: Vec<Option<Vec<usize>>> = vec![None; queues as usize];
        for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (q, list) = part
                .split_once(':')
                .ok_or_else(|| RpsMapError::BadQueuePart {
                    part: part.to_string(),
                })?;
            let queue: u32 = q.trim().parse().map_err(|_| RpsMapError::BadQueuePart {
                part: part.to_string(),
            })?;
            let slot = lists
                .get_mut(queue as usize)
                .ok_or(RpsMapError::QueueOutOfRange { queue, queues })?;
            if slot.is_some() {
                return Err(RpsMapError::DuplicateQueue { queue });
            }
            *slot = Some(parse_list(list, queue)?);
        }
        let mut out = Vec::with_capacity(lists.len());
        for (queue, list) in (0u32..).zip(lists) {
            out.push(list.ok_or(RpsMapError::MissingQueue { queue, queues })?);
        }
        Self::new(out)
    }

    /// Number of RX queues.
    pub fn queues(&self) -> u32 {
        u32::try_from(self.lists.len()).unwrap_or(u32::MAX)
    }

    /// The workers of `queue` (empty for a queue the map does not have).
    pub fn workers(&self, queue: u32) -> &[usize] {
        self.lists.get(queue as usize).map_or(&[], Vec::as_slice)
    }

    /// The worker a frame with `hash` received on `queue` goes to:
    /// `list[reciprocal_scale(hash, list.len())]`. A queue beyond the map wraps around
    /// (`queue % queues()`), so the hot path has no failure; set-up code checks
    /// [`RpsMap::queues`] against the device. Allocation-free.
    #[inline]
    pub fn pick(&self, queue: u32, hash: u32) -> usize {
        let q = (queue as usize).checked_rem(self.lists.len()).unwrap_or(0);
        let Some(list) = self.lists.get(q) else {
            return 0;
        };
        // Lists hold at most MAX_WORKERS + 1 entries, so the length fits u32.
        let i = reciprocal_scale(hash, list.len() as u32) as usize;
        list.get(i).copied().unwrap_or(0)
    }
}

/// Parses `0-3,5` into `[0, 1, 2, 3, 5]` (for error messages, `queue` is the list's queue).
fn parse_list(s: &str, queue: u32) -> Result<Vec<usize>, RpsMapError> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim) {
        if item.is_empty() {
            continue;
        }
        let bad = || RpsMapError::BadItem {
            item: item.to_string(),
        };
        let num = |t: &str| -> Result<usize, RpsMapError> {
            let n: u64 = t.trim().parse().map_err(|_| bad())?;
            usize::try_from(n)
                .ok()
                .filter(|&w| w <= RpsMap::MAX_WORKERS)
                .ok_or(RpsMapError::WorkerTooLarge {
                    worker: n,
                    max: RpsMap::MAX_WORKERS,
                })
        };
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(num(item)?),
        }
    }
    if out.is_empty() {
        return Err(RpsMapError::EmptyList { queue });
    }
    Ok(out)
}

/// Microsoft "Verifying the RSS Hash Calculation" (also Intel 82599 datasheet
/// §7.1.2.8.3 "RSS Verification Suite"; DPDK's app/test/test_thash.c carries the same
/// table): source, source port, destination, destination port, addresses-only hash,
/// hash with ports, under [`MS_RSS_KEY`].
pub const RSS_VERIFICATION_VECTORS: [(&str, u16, &str, u16, u32, u32); 8] = [
    (
        "66.9.149.187",
        2794,
        "161.142.100.80",
        1766,
        0x323e8fc2,
        0x51ccc178,
    ),
    (
        "199.92.111.2",
        14230,
        "65.69.140.83",
        4739,
        0xd718262a,
        0xc626b0ea,
    ),
    (
        "24.19.198.95",
        12898,
        "12.22.207.184",
        38024,
        0xd2d0a5de,
        0x5c2b394a,
    ),
    (
        "38.27.205.30",
        48228,
        "209.142.163.6",
        2217,
        0x82989176,
        0xafc7327f,
    ),
    (
        "153.39.163.191",
        44251,
        "202.188.127.2",
        1303,
        0x5d1809c5,
        0x10e828a2,
    ),
    (
        "3ffe:2501:200:1fff::7",
        2794,
        "3ffe:2501:200:3::1",
        1766,
        0x2cc18cd5,
        0x40207d3d,
    ),
    (
        "3ffe:501:8::260:97ff:fe40:efab",
        14230,
        "ff02::1",
        4739,
        0x0f0c461c,
        0xdde51bbf,
    ),
    (
        "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
        44251,
        "fe80::200:f8ff:fe21:67cf",
        38024,
        0x4b61e985,
        0x02d1feef,
    ),
];

/// The body of the `flow_key` fuzz target (engine/fuzz): flow-key extraction over
/// arbitrary bytes never panics, and a key found hashes the same twice, both ways.
pub fn fuzz_one(data: &[u8]) {
    let Some(key) = flow_key(data) else {
        return;
    };
    for h in [
        FlowHasher::ms_rss(),
        FlowHasher::cheap().with_symmetric(true),
    ] {
        assert_eq!(h.hash(&key), h.hash_frame(data).unwrap_or(!h.hash(&key)));
    }
    let sym = FlowHasher::ms_rss().with_symmetric(true);
    assert_eq!(sym.hash(&key), sym.hash(&key.reversed()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;
    use std::net::IpAddr;

    use super::RSS_VERIFICATION_VECTORS as VECTORS;

    /// Microsoft's pseudocode, bit by bit: for each input bit from the left, if set XOR in
    /// the key's leftmost 32 bits; shift the key left by one bit.
    fn toeplitz_slow(key: &[u8], input: &[u8]) -> u32 {
        let key_bit = |i: usize| -> u32 {
            key.get(i / 8)
                .map_or(0, |b| u32::from(b >> (7 - i % 8) & 1))
        };
        let mut result = 0u32;
        for i in 0..input.len() * 8 {
            if input[i / 8] >> (7 - i % 8) & 1 == 1 {
                let window = (0..32).fold(0u32, |w, k| w << 1 | key_bit(i + k));
                result ^= window;
            }
        }
        result
    }

    fn addrs(src: &str, dst: &str) -> FlowAddrs {
        match (src.parse().unwrap(), dst.parse().unwrap()) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => FlowAddrs::V4 { src, dst },
            (IpAddr::V6(src), IpAddr::V6(dst)) => FlowAddrs::V6 { src, dst },
            _ => panic!("mixed families in a vector: {src} {dst}"),
        }
    }

    const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

    /// A TCP or UDP frame of the flow, with an optional VLAN stack, built by etherparse.
    fn frame(src: &str, sp: u16, dst: &str, dp: u16, udp: bool, vlans: &[u16]) -> Vec<u8> {
        use etherparse::VlanId;
        let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
        let id = |v: u16| VlanId::try_new(v).unwrap();
        let payload = [0xa5u8; 11];
        let mut out = Vec::new();
        macro_rules! finish {
            ($step:expr) => {{
                let step = match (
                    src.parse::<IpAddr>().unwrap(),
                    dst.parse::<IpAddr>().unwrap(),
                ) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => $step.ipv4(s.octets(), d.octets(), 64),
                    (IpAddr::V6(s), IpAddr::V6(d)) => $step.ipv6(s.octets(), d.octets(), 64),
                    _ => panic!("mixed families"),
                };
                if udp {
                    step.udp(sp, dp).write(&mut out, &payload).unwrap();
                } else {
                    step.tcp(sp, dp, 1, 1000).write(&mut out, &payload).unwrap();
                }
            }};
        }
        match vlans {
            [] => finish!(eth),
            [a] => finish!(eth.single_vlan(id(*a))),
            [a, b] => finish!(eth.double_vlan(id(*a), id(*b))),
            _ => panic!("at most two tags"),
        }
        out
    }

    /// An ICMP (v4) / ICMPv6 echo frame of the addresses: no ports.
    fn icmp_frame(src: &str, dst: &str) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
        let mut out = Vec::new();
        match (
            src.parse::<IpAddr>().unwrap(),
            dst.parse::<IpAddr>().unwrap(),
        ) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth
                .ipv4(s.octets(), d.octets(), 64)
                .icmpv4_echo_request(7, 1)
                .write(&mut out, &[1, 2, 3])
                .unwrap(),
            (IpAddr::V6(s), IpAddr::V6(d)) => eth
                .ipv6(s.octets(), d.octets(), 64)
                .icmpv6_echo_request(7, 1)
                .write(&mut out, &[1, 2, 3])
                .unwrap(),
            _ => panic!("mixed families"),
        }
        out
    }

    /// Ethernet + IPv6 with hand-made extension headers `exts` (next header, body of
    /// 8n - 2 bytes, or a raw fragment header), then `l4` under protocol `proto`.
    fn v6_frame_with_exts(
        src: &str,
        dst: &str,
        exts: &[(u8, Vec<u8>)],
        proto: u8,
        l4: &[u8],
    ) -> Vec<u8> {
        let (s, d): (Ipv6Addr, Ipv6Addr) = (src.parse().unwrap(), dst.parse().unwrap());
        // Chain: IPv6 next header = exts[0].0, each ext's next header = the following kind.
        let mut body = Vec::new();
        for (i, (_, ext)) in exts.iter().enumerate() {
            let next = exts.get(i + 1).map_or(proto, |e| e.0);
            body.push(next);
            body.extend_from_slice(ext);
        }
        body.extend_from_slice(l4);
        let first = exts.first().map_or(proto, |e| e.0);
        let mut f = Vec::new();
        f.extend_from_slice(&MAC_B);
        f.extend_from_slice(&MAC_A);
        f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(body.len() as u16).to_be_bytes());
        f.extend_from_slice(&[first, 64]);
        f.extend_from_slice(&s.octets());
        f.extend_from_slice(&d.octets());
        f.extend_from_slice(&body);
        f
    }

    /// An options-style extension header body (after its next-header byte): length byte
    /// `n` and 8n + 6 bytes of PadN-ish filler.
    fn opts_ext(kind: u8, n: u8) -> (u8, Vec<u8>) {
        let mut v = vec![n];
        v.extend(std::iter::repeat_n(0u8, 8 * n as usize + 6));
        (kind, v)
    }

    /// A fragment header body (after its next-header byte).
    fn frag_ext(offset: u16, more: bool) -> (u8, Vec<u8>) {
        let word = offset << 3 | u16::from(more);
        let mut v = vec![0];
        v.extend_from_slice(&word.to_be_bytes());
        v.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        (IPV6_FRAGMENT, v)
    }

    /// Offset of the IP header in an untagged frame.
    const L3: usize = ETH_HLEN;

    #[test]
    fn ms_key_is_the_published_key() {
        let hex =
            "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa";
        assert_eq!(parse_key_hex(hex).unwrap(), MS_RSS_KEY.to_vec());
        assert!(Toeplitz::ms_rss().is_ms_rss_key());
    }

    #[test]
    fn microsoft_vectors_table_and_reference() {
        let t = Toeplitz::ms_rss();
        for (src, sp, dst, dp, h2, h4) in VECTORS {
            let ctx = format!("{src}:{sp} -> {dst}:{dp}");
            let a = addrs(src, dst);
            let k2 = FlowKey::new(a, None, IPPROTO_TCP);
            let k4 = FlowKey::new(a, Some(Ports { src: sp, dst: dp }), IPPROTO_TCP);
            let (i2, i4) = (k2.hash_input(), k4.hash_input());
            assert_eq!(t.hash(i2.as_bytes()), h2, "{ctx}: table, addresses only");
            assert_eq!(t.hash(i4.as_bytes()), h4, "{ctx}: table, with ports");
            assert_eq!(
                toeplitz_slow(&MS_RSS_KEY, i2.as_bytes()),
                h2,
                "{ctx}: reference, 2-tuple"
            );
            assert_eq!(
                toeplitz_slow(&MS_RSS_KEY, i4.as_bytes()),
                h4,
                "{ctx}: reference, 4-tuple"
            );
            let hasher = FlowHasher::ms_rss();
            assert_eq!(hasher.hash(&k2), h2, "{ctx}: FlowHasher 2-tuple");
            assert_eq!(hasher.hash(&k4), h4, "{ctx}: FlowHasher 4-tuple");
        }
    }

    #[test]
    fn microsoft_vectors_through_frames() {
        let h = FlowHasher::ms_rss();
        for (src, sp, dst, dp, h2, h4) in VECTORS {
            for udp in [false, true] {
                for vlans in [&[][..], &[100], &[200, 300]] {
                    let ctx = format!("{src}:{sp} -> {dst}:{dp} udp={udp} vlans={vlans:?}");
                    let f = frame(src, sp, dst, dp, udp, vlans);
                    let k = flow_key(&f).unwrap_or_else(|| panic!("{ctx}: no flow key"));
                    assert_eq!(k.ports, Some(Ports { src: sp, dst: dp }), "{ctx}");
                    assert_eq!(k.addrs, addrs(src, dst), "{ctx}");
                    assert_eq!(
                        k.proto,
                        if udp { IPPROTO_UDP } else { IPPROTO_TCP },
                        "{ctx}"
                    );
                    assert!(!k.fragment, "{ctx}");
                    assert_eq!(h.hash_frame(&f), Some(h4), "{ctx}");
                }
            }
            let f = icmp_frame(src, dst);
            let k = flow_key(&f).expect("ICMP flow key");
            assert_eq!(k.ports, None, "{src} -> {dst}: ICMP has no ports");
            assert_eq!(
                h.hash_frame(&f),
                Some(h2),
                "{src} -> {dst}: ICMP, addresses only"
            );
        }
    }

    #[test]
    fn sctp_has_ports() {
        let (src, sp, dst, dp, _, h4) = VECTORS[0];
        let mut f = frame(src, sp, dst, dp, true, &[]);
        f[L3 + 9] = IPPROTO_SCTP;
        let k = flow_key(&f).unwrap();
        assert_eq!(k.proto, IPPROTO_SCTP);
        assert_eq!(FlowHasher::ms_rss().hash(&k), h4);
        assert_eq!(
            k.to_string(),
            "sctp 66.9.149.187:2794 -> 161.142.100.80:1766"
        );
    }

    #[test]
    fn ipv4_fragments_hash_addresses_only() {
        let h = FlowHasher::ms_rss();
        for (src, sp, dst, dp, h2, h4) in VECTORS.iter().copied().filter(|v| !v.0.contains(':')) {
            // (flags/offset word, is a fragment)
            for (word, frag) in [
                (0x2000u16, true), // MF: the first fragment
                (0x2005, true),    // MF + offset: a middle fragment
                (0x0005, true),    // offset: the last fragment
                (0x4000, false),   // DF only
                (0x0000, false),
            ] {
                let ctx = format!("{src} -> {dst} frag word {word:#06x}");
                let mut f = frame(src, sp, dst, dp, true, &[]);
                f[L3 + 6..L3 + 8].copy_from_slice(&word.to_be_bytes());
                let k = flow_key(&f).unwrap();
                assert_eq!(k.fragment, frag, "{ctx}");
                assert_eq!(k.ports.is_none(), frag, "{ctx}");
                assert_eq!(k.proto, IPPROTO_UDP, "{ctx}");
                assert_eq!(h.hash(&k), if frag { h2 } else { h4 }, "{ctx}");
            }
        }
    }

    #[test]
    fn ipv6_extension_headers_and_fragments() {
        let h = FlowHasher::ms_rss();
        let l4 = [0u8; 8]; // overwritten with the ports below
        for (src, sp, dst, dp, h2, h4) in VECTORS.iter().copied().filter(|v| v.0.contains(':')) {
            let mut udp = l4;
            udp[..2].copy_from_slice(&sp.to_be_bytes());
            udp[2..4].copy_from_slice(&dp.to_be_bytes());
            // Walked headers, then UDP: ports found.
            let exts = vec![
                opts_ext(IPV6_HOPOPTS, 0),
                opts_ext(IPV6_DSTOPTS, 1),
                opts_ext(IPV6_ROUTING, 2),
                opts_ext(IPV6_DSTOPTS, 0),
            ];
            let f = v6_frame_with_exts(src, dst, &exts, IPPROTO_UDP, &udp);
            let k = flow_key(&f).unwrap();
            assert_eq!(
                k.ports,
                Some(Ports { src: sp, dst: dp }),
                "{src}: through ext headers"
            );
            assert_eq!(h.hash(&k), h4, "{src}: through ext headers");
            // Fragments, first, middle and last, also behind other headers: addresses only.
            for exts in [
                vec![frag_ext(0, true)],
                vec![frag_ext(100, true)],
                vec![frag_ext(100, false)],
                vec![opts_ext(IPV6_HOPOPTS, 0), frag_ext(0, true)],
            ] {
                let f = v6_frame_with_exts(src, dst, &exts, IPPROTO_UDP, &udp);
                let k = flow_key(&f).unwrap();
                assert!(k.fragment, "{src}: {exts:?}");
                assert_eq!(k.ports, None, "{src}: {exts:?}");
                assert_eq!(k.proto, IPPROTO_UDP, "{src}: {exts:?}");
                assert_eq!(h.hash(&k), h2, "{src}: fragment hashes like the addresses");
            }
            // A header that is not walked (AH, 51): addresses only, named in `proto`.
            let f = v6_frame_with_exts(src, dst, &[opts_ext(51, 1)], IPPROTO_UDP, &udp);
            let k = flow_key(&f).unwrap();
            assert_eq!((k.ports, k.proto, k.fragment), (None, 51, false));
            assert_eq!(h.hash(&k), h2);
            // A chain longer than MAX_EXT_HEADERS: addresses only, no panic.
            let exts = vec![opts_ext(IPV6_DSTOPTS, 0); MAX_EXT_HEADERS + 1];
            let f = v6_frame_with_exts(src, dst, &exts, IPPROTO_UDP, &udp);
            let k = flow_key(&f).unwrap();
            assert_eq!((k.ports, k.proto), (None, IPV6_DSTOPTS));
            assert_eq!(h.hash(&k), h2);
            // Exactly MAX_EXT_HEADERS walked headers still reach the ports.
            let exts = vec![opts_ext(IPV6_DSTOPTS, 0); MAX_EXT_HEADERS];
            let f = v6_frame_with_exts(src, dst, &exts, IPPROTO_UDP, &udp);
            assert_eq!(h.hash_frame(&f), Some(h4));
        }
    }

    #[test]
    fn ipv4_options_are_skipped_by_ihl() {
        let (src, sp, dst, dp, _, h4) = VECTORS[1];
        let mut f = frame(src, sp, dst, dp, true, &[]);
        // Insert 8 bytes of NOP options after the 20-byte header; IHL 5 -> 7, total += 8.
        let at = L3 + IPV4_HLEN;
        f.splice(at..at, [1u8; 8]);
        f[L3] = 0x47;
        let total = u16::from_be_bytes([f[L3 + 2], f[L3 + 3]]) + 8;
        f[L3 + 2..L3 + 4].copy_from_slice(&total.to_be_bytes());
        assert_eq!(FlowHasher::ms_rss().hash_frame(&f), Some(h4));
    }

    #[test]
    fn malformed_ip_headers_are_rejected() {
        let (src, sp, dst, dp, ..) = VECTORS[0];
        let good = frame(src, sp, dst, dp, true, &[]);
        assert!(flow_key(&good).is_some());
        for (what, at, byte) in [
            ("IHL 4", L3, 0x44u8),
            ("IHL 0", L3, 0x40),
            ("version 6 in an IPv4 EtherType", L3, 0x65),
            ("version 0", L3, 0x05),
            ("IHL beyond total length", L3, 0x4f),
        ] {
            let mut f = good.clone();
            f[at] = byte;
            assert_eq!(flow_key(&f), None, "{what}");
        }
        // Total length beyond the frame (truncated) and below the header.
        for total in [good.len() as u16, 19, 0] {
            let mut f = good.clone();
            f[L3 + 2..L3 + 4].copy_from_slice(&total.to_be_bytes());
            assert_eq!(flow_key(&f), None, "total length {total}");
        }
        // Ethernet padding after the IP packet is fine.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 20]);
        assert_eq!(flow_key(&padded), flow_key(&good));
        // IPv6 with a wrong version, and with a payload length beyond the frame.
        let v6 = frame(VECTORS[5].0, 1, VECTORS[5].2, 2, true, &[]);
        let mut f = v6.clone();
        f[L3] = 0x40;
        assert_eq!(flow_key(&f), None, "IPv6 version 4");
        let mut f = v6.clone();
        f[L3 + 4..L3 + 6].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(flow_key(&f), None, "IPv6 payload length beyond the frame");
        // Not IP, and three VLAN tags.
        let mut arp = good.clone();
        arp[12..14].copy_from_slice(&crate::wire::ETHERTYPE_ARP.to_be_bytes());
        assert_eq!(flow_key(&arp), None);
        let mut f = frame(src, sp, dst, dp, true, &[1, 2]);
        f.splice(22..22, [0x81, 0x00, 0x00, 0x03]);
        f[20..22].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        assert_eq!(flow_key(&f), None, "three tags");
    }

    #[test]
    fn every_prefix_of_a_valid_frame_is_safe() {
        let v6_exts = v6_frame_with_exts(
            VECTORS[6].0,
            VECTORS[6].2,
            &[opts_ext(IPV6_HOPOPTS, 1), frag_ext(0, true)],
            IPPROTO_UDP,
            &[0; 8],
        );
        let frames = [
            frame(VECTORS[0].0, 1, VECTORS[0].2, 2, false, &[]),
            frame(VECTORS[2].0, 1, VECTORS[2].2, 2, true, &[5, 6]),
            frame(VECTORS[7].0, 1, VECTORS[7].2, 2, false, &[9]),
            icmp_frame(VECTORS[5].0, VECTORS[5].2),
            v6_exts,
        ];
        for f in frames {
            let full = flow_key(&f).expect("the whole frame parses");
            for n in 0..f.len() {
                // The IP length fields reach the end of these frames, so any cut truncates.
                assert_eq!(
                    flow_key(&f[..n]),
                    None,
                    "prefix of {n} of {} bytes ({full})",
                    f.len()
                );
            }
        }
    }

    #[test]
    fn symmetric_toeplitz_key_pattern() {
        // A key repeating 16 bits makes plain Toeplitz symmetric (the alternative that NICs
        // can do too), for IPv4 and IPv6, with and without ports.
        let key: Vec<u8> = [0x6d, 0x5a].repeat(20);
        let h = FlowHasher::toeplitz(Toeplitz::new(&key).unwrap());
        for (src, sp, dst, dp, ..) in VECTORS {
            for ports in [None, Some(Ports { src: sp, dst: dp })] {
                let k = FlowKey::new(addrs(src, dst), ports, IPPROTO_TCP);
                assert_eq!(h.hash(&k), h.hash(&k.reversed()), "{k}");
            }
        }
    }

    #[test]
    fn symmetric_option_matches_nic_for_canonical_direction() {
        let h = FlowHasher::ms_rss().with_symmetric(true);
        // 66.9.149.187 < 161.142.100.80: already canonical, so the NIC's hash.
        let (src, sp, dst, dp, _, h4) = VECTORS[0];
        let k = FlowKey::new(
            addrs(src, dst),
            Some(Ports { src: sp, dst: dp }),
            IPPROTO_TCP,
        );
        assert_eq!(h.hash(&k), h4);
        assert_eq!(h.hash(&k.reversed()), h4);
        // Equal addresses: the ports decide.
        let a: Ipv4Addr = "10.0.0.1".parse().unwrap();
        let k = FlowKey::new(
            FlowAddrs::V4 { src: a, dst: a },
            Some(Ports { src: 9, dst: 7 }),
            17,
        );
        assert_eq!(k.canonical().ports, Some(Ports { src: 7, dst: 9 }));
    }

    #[test]
    fn key_lengths() {
        assert!(Toeplitz::new(&[0; 39]).is_err());
        assert!(Toeplitz::new(&[0; 40]).is_ok());
        assert!(Toeplitz::new(&[0; 52]).is_ok());
        assert!(Toeplitz::new(&[0; 64]).is_ok());
        assert_eq!(
            Toeplitz::new(&[0; 65]).unwrap_err(),
            HashError::KeyLength { len: 65 }
        );
        // A 52-byte key (ice) hashes as its first 40 bytes.
        let mut long = MS_RSS_KEY.to_vec();
        long.extend_from_slice(&[0xff; 12]);
        let t = Toeplitz::new(&long).unwrap();
        assert_eq!(t.hash(&[66, 9, 149, 187, 161, 142, 100, 80]), 0x323e8fc2);
        assert!(!t.is_ms_rss_key());
        assert!(parse_key_hex("6d:5a")
            .unwrap_err()
            .to_string()
            .contains("40 to 64 bytes"));
        assert_eq!(
            parse_key_hex("6d:5x"),
            Err(HashError::KeyHexDigit { found: 'x', at: 4 })
        );
        assert_eq!(
            parse_key_hex("6d5"),
            Err(HashError::KeyHexOdd { digits: 3 })
        );
        let spaced = MS_RSS_KEY
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(parse_key_hex(&spaced).unwrap(), MS_RSS_KEY.to_vec());
    }

    #[test]
    fn reciprocal_scale_as_the_kernel() {
        assert_eq!(reciprocal_scale(0, 4), 0);
        assert_eq!(reciprocal_scale(u32::MAX, 4), 3);
        assert_eq!(reciprocal_scale(0x4000_0000, 4), 1);
        assert_eq!(reciprocal_scale(0x3fff_ffff, 4), 0);
        assert_eq!(reciprocal_scale(0x51ccc178, 4), 1);
        assert_eq!(reciprocal_scale(12345, 0), 0);
        assert_eq!(reciprocal_scale(u32::MAX, 1), 0);
    }

    #[test]
    fn rss_queue_default_table() {
        assert_eq!(rss_queue(130, 3, 128), 2); // 130 & 127 = 2, 2 % 3
        assert_eq!(rss_queue(127, 3, 128), 1); // 127 % 3
        assert_eq!(rss_queue(0x51ccc178, 8, DEFAULT_INDIR_TABLE_LEN), 0x78 % 8);
        assert_eq!(rss_queue(1234, 7, 100), 6); // not a power of two: 1234 % 100 = 34, 34 % 7
        assert_eq!(rss_queue(5, 0, 128), 0);
        assert_eq!(rss_queue(5, 4, 0), 0);
    }

    #[test]
    fn rps_map_parse_and_pick() {
        let m = RpsMap::parse("0-3", 2).unwrap();
        assert_eq!(
            (m.queues(), m.workers(0), m.workers(1)),
            (2, &[0, 1, 2, 3][..], &[0, 1, 2, 3][..])
        );
        assert_eq!(
            m.pick(0, 0),
            0,
            "hash 0 stays on the first worker of the set"
        );
        assert_eq!(m.pick(1, u32::MAX), 3);
        assert_eq!(
            m.pick(0, 0x51ccc178),
            reciprocal_scale(0x51ccc178, 4) as usize
        );
        assert_eq!(m.pick(7, u32::MAX), 3, "a queue beyond the map wraps");
        let m = RpsMap::parse(" 4, 0,2 ,2", 1).unwrap();
        assert_eq!(m.workers(0), &[0, 2, 4]);
        assert_eq!(m.pick(0, u32::MAX), 4);
        let m = RpsMap::parse("0:0-1; 1:2-3", 2).unwrap();
        assert_eq!((m.workers(0), m.workers(1)), (&[0, 1][..], &[2, 3][..]));
        assert_eq!(m.pick(1, 0), 2);
        assert_eq!(m.pick(1, u32::MAX), 3);
        assert_eq!(RpsMap::all(4, 2).unwrap(), RpsMap::parse("0-3", 2).unwrap());
        assert_eq!(
            RpsMap::parse("", 1),
            Err(RpsMapError::EmptyList { queue: 0 })
        );
        assert!(matches!(
            RpsMap::parse("3-1", 1),
            Err(RpsMapError::BadItem { .. })
        ));
        assert!(matches!(
            RpsMap::parse("a", 1),
            Err(RpsMapError::BadItem { .. })
        ));
        assert!(matches!(
            RpsMap::parse("99999", 1),
            Err(RpsMapError::WorkerTooLarge { .. })
        ));
        assert_eq!(RpsMap::parse("0", 0), Err(RpsMapError::NoQueues));
        assert!(matches!(
            RpsMap::parse("0", 5000),
            Err(RpsMapError::TooManyQueues { .. })
        ));
        assert_eq!(
            RpsMap::parse("0:0;0:1", 2),
            Err(RpsMapError::DuplicateQueue { queue: 0 })
        );
        assert_eq!(
            RpsMap::parse("0:0", 2),
            Err(RpsMapError::MissingQueue {
                queue: 1,
                queues: 2
            })
        );
        assert_eq!(
            RpsMap::parse("0:0;1:1;2:2", 2),
            Err(RpsMapError::QueueOutOfRange {
                queue: 2,
                queues: 2
            })
        );
        assert!(matches!(
            RpsMap::parse("x:0", 1),
            Err(RpsMapError::BadQueuePart { .. })
        ));
        assert_eq!(
            RpsMap::new(vec![vec![1], vec![]]),
            Err(RpsMapError::EmptyList { queue: 1 })
        );
    }

    /// Both hashes spread distinct flows evenly over workers (high bits, reciprocal_scale)
    /// and over RSS queues (low bits).
    #[test]
    fn hashes_spread_flows_evenly() {
        const FLOWS: u32 = 64_000;
        const BUCKETS: u32 = 8;
        for h in [FlowHasher::ms_rss(), FlowHasher::cheap()] {
            let mut by_worker = [0u32; BUCKETS as usize];
            let mut by_queue = [0u32; BUCKETS as usize];
            for i in 0..FLOWS {
                let k = FlowKey::new(
                    FlowAddrs::V4 {
                        src: Ipv4Addr::from(0x0a00_0000 | (i >> 6)),
                        dst: Ipv4Addr::new(192, 168, 1, 1),
                    },
                    Some(Ports {
                        src: 1024 + (i & 63) as u16,
                        dst: 443,
                    }),
                    IPPROTO_TCP,
                );
                let x = h.hash(&k);
                by_worker[reciprocal_scale(x, BUCKETS) as usize] += 1;
                by_queue[rss_queue(x, BUCKETS, DEFAULT_INDIR_TABLE_LEN) as usize] += 1;
            }
            let fair = FLOWS / BUCKETS;
            for (what, counts) in [("worker", by_worker), ("queue", by_queue)] {
                for c in counts {
                    assert!(
                        c.abs_diff(fair) < fair / 10,
                        "{:?} by {what}: {counts:?} (fair {fair})",
                        h.kind()
                    );
                }
            }
        }
    }

    fn arb_key() -> impl Strategy<Value = FlowKey> {
        let v4 = (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(s, d)| FlowAddrs::V4 {
            src: s.into(),
            dst: d.into(),
        });
        let v6 = (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(s, d)| FlowAddrs::V6 {
            src: s.into(),
            dst: d.into(),
        });
        (
            prop_oneof![v4, v6],
            proptest::option::of((any::<u16>(), any::<u16>())),
            any::<u8>(),
        )
            .prop_map(|(addrs, ports, proto)| {
                FlowKey::new(addrs, ports.map(|(src, dst)| Ports { src, dst }), proto)
            })
    }

    fn hashers() -> [FlowHasher; 2] {
        [FlowHasher::ms_rss(), FlowHasher::cheap()]
    }

    proptest! {
        #[test]
        fn table_agrees_with_reference(
            key in proptest::collection::vec(any::<u8>(), MIN_KEY_LEN..=MAX_KEY_LEN),
            input in proptest::collection::vec(any::<u8>(), 0..=MAX_INPUT_LEN),
        ) {
            let t = Toeplitz::new(&key).unwrap();
            prop_assert_eq!(t.hash(&input), toeplitz_slow(&key, &input));
        }

        #[test]
        fn symmetric_hash_is_direction_free(k in arb_key()) {
            for h in hashers() {
                let h = h.with_symmetric(true);
                prop_assert_eq!(h.hash(&k), h.hash(&k.reversed()), "{:?} {}", h.kind(), k);
                prop_assert_eq!(k.canonical(), k.reversed().canonical());
            }
        }

        #[test]
        fn hash_is_stable_and_ignores_other_bytes(
            k in arb_key(),
            macs in any::<([u8; 6], [u8; 6])>(),
            ttl in any::<u8>(),
            seq in any::<u32>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            udp in any::<bool>(),
        ) {
            let ports = k.ports.unwrap_or(Ports { src: 1, dst: 2 });
            let b = PacketBuilder::ethernet2(macs.0, macs.1);
            let mut f = Vec::new();
            let b = match k.addrs {
                FlowAddrs::V4 { src, dst } => b.ipv4(src.octets(), dst.octets(), ttl),
                FlowAddrs::V6 { src, dst } => b.ipv6(src.octets(), dst.octets(), ttl),
            };
            if udp {
                b.udp(ports.src, ports.dst).write(&mut f, &payload).unwrap();
            } else {
                b.tcp(ports.src, ports.dst, seq, 100).write(&mut f, &payload).unwrap();
            }
            let parsed = flow_key(&f).unwrap();
            let expect = FlowKey::new(k.addrs, Some(ports), if udp { IPPROTO_UDP } else { IPPROTO_TCP });
            prop_assert_eq!(parsed, expect);
            for h in hashers() {
                prop_assert_eq!(h.hash_frame(&f), Some(h.hash(&expect)));
                prop_assert_eq!(h.hash(&expect), h.hash(&expect));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = flow_key(&bytes);
        }

        #[test]
        fn arbitrary_ip_bytes_never_panic(
            ethertype in prop_oneof![
                Just(ETHERTYPE_IPV4), Just(ETHERTYPE_IPV6), Just(ETHERTYPE_VLAN), Just(ETHERTYPE_QINQ)
            ],
            version in 0u8..16,
            rest in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            // Past the EtherType so that the IP and extension-header paths get exercised.
            let mut f = vec![0u8; 12];
            f.extend_from_slice(&ethertype.to_be_bytes());
            f.push(version << 4 | 5);
            f.extend_from_slice(&rest);
            if let Some(k) = flow_key(&f) {
                for h in hashers() {
                    let _ = h.hash(&k);
                }
            }
        }
    }
}
