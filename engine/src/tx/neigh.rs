//! The neighbour subsystem: IPv4 over ARP and IPv6 over Neighbor Discovery, one table
//! keyed by next-hop address, each entry caching the 14-byte Ethernet header its packets
//! get (the kernel's `hh_cache`).
//!
//! # What it follows
//!
//! Linux's net/core/neighbour.c, net/ipv4/arp.c and net/ipv6/ndisc.c (read through the
//! `search` tool, the 6.18 tree `codesnas/linux-6.18.y` for arp.c and a 4.x/5.x
//! neighbour.c whose state machine 6.18 keeps), simplified to one interface:
//!
//! - States `INCOMPLETE`, `REACHABLE`, `STALE`, `DELAY`, `PROBE`, `FAILED`, `PERMANENT`
//!   and `NOARP` ([`NeighState`]), with `neigh_timer_handler`'s transitions: REACHABLE
//!   stays while `confirmed + reachable_time` lies ahead, then goes to DELAY if used within
//!   `delay_first_probe_time` or to STALE; a STALE entry in use goes to DELAY
//!   (`__neigh_event_send`), DELAY back to REACHABLE if confirmed meanwhile, else to PROBE;
//!   INCOMPLETE and PROBE solicit every `retrans_time` until `neigh_max_probes`, then
//!   FAILED. STALE, DELAY and PROBE entries stay usable (their header is handed out).
//! - Probe budget (`neigh_max_probes`): INCOMPLETE starts at `ucast_solicit` probes and
//!   sends `mcast_solicit` broadcast/multicast solicitations (3, one a second: failure
//!   3 s after the first); PROBE starts at 0 and sends `ucast_solicit` unicast ones to the
//!   cached address (`arp_solicit` / `ndisc_solicit`: `probes < ucast_probes` → unicast).
//! - `neigh_update`'s rules for learned addresses: override needed to change a cached
//!   address, WEAK_OVERRIDE demoting a REACHABLE entry to STALE instead, STALE not
//!   downgrading a valid entry with the same address, `confirmed` refreshed on REACHABLE.
//! - `arp_process`: a request for our address creates/updates the sender as STALE
//!   (`neigh_event_ns`) and is answered; other requests and replies only update an existing
//!   entry (`arp_accept` = 0), REACHABLE for a reply to our MAC, STALE otherwise, the first
//!   of several replies within `locktime` (1 s) winning; a request from 0.0.0.0 (RFC 5227
//!   probe) is answered without learning.
//! - `ndisc_recv_ns` / `ndisc_recv_na`: an NS for our address is answered with a solicited
//!   NA (Override and the target link-layer option only when the NS was multicast); a DAD
//!   probe (source ::) with an unsolicited NA to ff02::1; the NS's sender is learned STALE
//!   (created only for a unicast NS or one with a source link-layer option); an NA updates
//!   an existing, non-FAILED entry (`accept_untracked_na` = 0), REACHABLE if solicited.
//! - Defaults of `arp_tbl` / `nd_tbl` ([`NeighConfig::new`]), the reachable time drawn
//!   from [base/2, 3·base/2) (`neigh_rand_reach_time`) and re-drawn every 300 s, the
//!   periodic GC (`neigh_periodic_work`) and the forced GC at `gc_thresh2` / `gc_thresh3`
//!   (`neigh_alloc`, `neigh_forced_gc`).
//!
//! # Where it differs
//!
//! - No packet queue: [`Resolve::Pending`] tells the caller to hold or drop the packet
//!   (TCP retransmits). The kernel reports a failure to the packets queued when the entry
//!   fails (`neigh_invalidate` → `arp_error_report`, which ends a connecting socket with
//!   EHOSTUNREACH); here a FAILED entry answers [`Resolve::Failed`] for
//!   [`NeighConfig::failed_hold_ns`] (3 s), and only a use after that restarts resolution
//!   (the kernel restarts on the next packet).
//! - Reference counts are approximated by use: GC spares entries used within 5 s.
//! - A unicast NS without a source link-layer option from an unknown sender is answered
//!   to the frame's Ethernet source (the kernel would resolve the sender first).
//! - Replies echo the VLAN tag of the request; the cached header and solicitations are
//!   untagged.
//! - Multicast and limited-broadcast next hops get NOARP entries with the mapped MAC
//!   (`arp_constructor`); a subnet's directed broadcast is not recognised (the table does
//!   not know prefixes).
//! - No `app_solicit` (user-space helper) probes, no proxy ARP/NDP, one address per family.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::wire::arp::{
    build_frame, ipv4_multicast_mac, ipv6_multicast_mac, parse_frame, solicited_node,
    solicited_node_mac, ArpOp, ArpRepr, EthInfo, NaFlags, NdMsg, NdpRepr, NeighFrame, NeighInvalid,
    NeighMsg, VlanTag, BROADCAST_MAC, IPV6_ALL_NODES,
};
use crate::wire::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_HLEN};

/// One second in nanoseconds.
const SEC: u64 = 1_000_000_000;
/// Shortest timer re-arm: `HZ/100` (10 ms), the floor `neigh_timer_handler` and
/// `__neigh_event_send` put under the retransmission timer.
const MIN_TIMER_NS: u64 = SEC / 100;
/// How often the reachable time is re-drawn: every 300 s (`neigh_periodic_work`:
/// `time_after(jiffies, tbl->last_rand + 300 * HZ)`).
const RAND_INTERVAL_NS: u64 = 300 * SEC;
/// Age under which an entry counts as in use for GC (`neigh_forced_gc`'s `tref = jiffies -
/// 5 * HZ`; skiff also applies it to `used`, standing in for the reference count).
const GC_RECENT_NS: u64 = 5 * SEC;

/// Neighbour table settings. [`NeighConfig::new`] gives Linux's defaults.
#[derive(Debug, Clone)]
pub struct NeighConfig {
    /// Our MAC address.
    pub mac: [u8; 6],
    /// Our IPv4 address (answers ARP for it; source of our ARP requests).
    pub ipv4: Option<[u8; 4]>,
    /// Our IPv6 address (answers NS for it; source of our NS).
    pub ipv6: Option<[u8; 16]>,
    /// Time between solicitations: `retrans_time` = 1 s (`arp_tbl`, `ND_RETRANS_TIMER`).
    pub retrans_ns: u64,
    /// `base_reachable_time` = 30 s (`arp_tbl`, `ND_REACHABLE_TIME`, RFC 4861 §10
    /// REACHABLE_TIME); the effective reachable time is drawn from [base/2, 3·base/2).
    pub reachable_ns: u64,
    /// Broadcast/multicast solicitations before INCOMPLETE fails: `mcast_solicit` = 3
    /// (RFC 4861 §10 MAX_MULTICAST_SOLICIT).
    pub max_solicit: u32,
    /// Unicast probes before PROBE fails: `ucast_solicit` = 3 (RFC 4861 §10
    /// MAX_UNICAST_SOLICIT).
    pub ucast_solicit: u32,
    /// Broadcast/multicast solicitations added to PROBE's budget: `mcast_resolicit` = 0.
    pub mcast_resolicit: u32,
    /// Time in DELAY before probing: `delay_first_probe_time` = 5 s (RFC 4861 §10
    /// DELAY_FIRST_PROBE_TIME).
    pub delay_probe_ns: u64,
    /// An unused STALE entry older than this may be collected: `gc_stale_time` = 60 s.
    pub gc_stale_ns: u64,
    /// ARP replies within this time of the last update cannot change the cached address
    /// ("use the FIRST one"): `locktime` = 1 s (`arp_tbl`).
    pub locktime_ns: u64,
    /// How long a FAILED entry answers [`Resolve::Failed`] before a use restarts
    /// resolution: skiff's stand-in for the kernel's error report to queued packets, set to
    /// one resolution attempt (`max_solicit` × `retrans`, 3 s) so that a caller
    /// retransmitting at TCP's initial 1 s RTO sees the failure.
    pub failed_hold_ns: u64,
    /// No periodic GC below this many entries: `gc_thresh1` = 128.
    pub gc_thresh1: usize,
    /// Forced GC from this many entries (at most every 5 s): `gc_thresh2` = 512.
    pub gc_thresh2: usize,
    /// Hard limit; creation fails ("neighbor table overflow"): `gc_thresh3` = 1024.
    pub gc_thresh3: usize,
    /// Seed of the reachable-time draw (the kernel uses `get_random_u32_below`).
    pub seed: u64,
}

impl NeighConfig {
    /// Linux's defaults for an Ethernet interface (`arp_tbl` in net/ipv4/arp.c, `nd_tbl`
    /// in net/ipv6/ndisc.c; the two agree on every value used here).
    pub fn new(mac: [u8; 6], ipv4: Option<[u8; 4]>, ipv6: Option<[u8; 16]>) -> Self {
        let retrans_ns = SEC;
        let max_solicit = 3;
        NeighConfig {
            mac,
            ipv4,
            ipv6,
            retrans_ns,
            reachable_ns: 30 * SEC,
            max_solicit,
            ucast_solicit: 3,
            mcast_resolicit: 0,
            delay_probe_ns: 5 * SEC,
            gc_stale_ns: 60 * SEC,
            locktime_ns: SEC,
            failed_hold_ns: retrans_ns * u64::from(max_solicit),
            gc_thresh1: 128,
            gc_thresh2: 512,
            gc_thresh3: 1024,
            seed: u64::from_be_bytes([0, 0, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]]),
        }
    }
}

/// Neighbour Unreachability Detection state (`NUD_*`, include/uapi/linux/neighbour.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighState {
    /// Created, never resolved (`NUD_NONE`).
    None,
    /// Solicitations out, no answer yet.
    Incomplete,
    /// Confirmed within the reachable time.
    Reachable,
    /// Address known, reachability not confirmed lately; usable.
    Stale,
    /// Used while STALE; waiting for an upper-layer confirmation before probing.
    Delay,
    /// Unicast probes out; usable meanwhile.
    Probe,
    /// Resolution failed.
    Failed,
    /// Configured (`--dst-mac`); never changed by the wire.
    Permanent,
    /// Multicast / broadcast: address mapped, never resolved.
    NoArp,
}

impl NeighState {
    /// `NUD_VALID`: the cached address may be used.
    pub fn is_valid(self) -> bool {
        matches!(
            self,
            NeighState::Reachable
                | NeighState::Stale
                | NeighState::Delay
                | NeighState::Probe
                | NeighState::Permanent
                | NeighState::NoArp
        )
    }

    /// `NUD_CONNECTED`: known good without probing.
    pub fn is_connected(self) -> bool {
        matches!(
            self,
            NeighState::Reachable | NeighState::Permanent | NeighState::NoArp
        )
    }

    /// Name as `ip neigh` prints it.
    pub fn name(self) -> &'static str {
        match self {
            NeighState::None => "NONE",
            NeighState::Incomplete => "INCOMPLETE",
            NeighState::Reachable => "REACHABLE",
            NeighState::Stale => "STALE",
            NeighState::Delay => "DELAY",
            NeighState::Probe => "PROBE",
            NeighState::Failed => "FAILED",
            NeighState::Permanent => "PERMANENT",
            NeighState::NoArp => "NOARP",
        }
    }
}

/// What [`NeighTable::resolve`] found.
#[derive(Debug)]
pub enum Resolve<'a> {
    /// The Ethernet header to put in front of the packet: destination MAC, our MAC,
    /// EtherType 0x0800 or 0x86dd.
    Ready(&'a [u8; 14]),
    /// Resolution in progress; try again later (a solicitation may have been queued).
    Pending,
    /// Resolution failed (or the table is full): the kernel's EHOSTUNREACH.
    Failed,
}

/// What the neighbour subsystem did, by reason.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct NeighCounters {
    /// ARP requests we sent (broadcast solicitations and unicast probes).
    pub arp_requests_sent: u64,
    /// ARP replies we sent.
    pub arp_replies_sent: u64,
    /// Valid ARP requests received (for any address).
    pub arp_requests_received: u64,
    /// Valid ARP replies received.
    pub arp_replies_received: u64,
    /// ARP requests for our address that we answered (RFC 5227 probes included).
    pub arp_requests_answered: u64,
    /// Neighbor Solicitations we sent.
    pub ns_sent: u64,
    /// Neighbor Advertisements we sent.
    pub na_sent: u64,
    /// Valid NS received.
    pub ns_received: u64,
    /// Valid NA received.
    pub na_received: u64,
    /// NS for our address that we answered (DAD probes included).
    pub ns_answered: u64,
    /// NS for our address we could not answer: multicast, without a source link-layer
    /// option, from a sender we do not know (the kernel does not answer either).
    pub ns_unanswered: u64,
    /// Entries that got an address after INCOMPLETE / NONE / FAILED.
    pub resolved: u64,
    /// Entries that went FAILED (INCOMPLETE or PROBE out of probes).
    pub failed: u64,
    /// Entries not created because the table was at `gc_thresh3` ("neighbor table
    /// overflow", the kernel's `table_fulls`).
    pub table_full: u64,
    /// Entries removed by GC.
    pub gc_removed: u64,
    /// Frames for another host's MAC (`PACKET_OTHERHOST`, dropped by `arp_rcv`).
    pub ignored_other_host: u64,
    /// Requests / solicitations for another address, replies / advertisements for an
    /// address we do not track, and sources that cannot be right (our own, martian).
    pub ignored_not_for_us: u64,
    /// NA for our own address ("someone advertises our address").
    pub addr_conflicts: u64,
    /// Updates that would have changed a cached address but were refused (no override,
    /// or within the ARP locktime).
    pub updates_refused: u64,
    /// Invalid: truncated.
    pub invalid_truncated: u64,
    /// Invalid: ARP hardware type or address length.
    pub invalid_arp_hardware: u64,
    /// Invalid: ARP protocol type or address length.
    pub invalid_arp_protocol: u64,
    /// Invalid: ARP opcode.
    pub invalid_arp_op: u64,
    /// Invalid: ARP target multicast or loopback.
    pub invalid_arp_target: u64,
    /// Invalid: IPv6 version.
    pub invalid_ipv6_header: u64,
    /// Invalid: NDP hop limit not 255.
    pub invalid_hop_limit: u64,
    /// Invalid: ICMPv6 checksum.
    pub invalid_checksum: u64,
    /// Invalid: ICMPv6 code not 0.
    pub invalid_icmp_code: u64,
    /// Invalid: NS / NA shorter than 24 bytes.
    pub invalid_short_message: u64,
    /// Invalid: multicast target.
    pub invalid_multicast_target: u64,
    /// Invalid: ND option.
    pub invalid_bad_option: u64,
    /// Invalid: DAD probe to a wrong destination or with a source link-layer option.
    pub invalid_bad_dad: u64,
    /// Invalid: solicited NA to a multicast address.
    pub invalid_solicited_multicast: u64,
}

impl NeighCounters {
    /// All invalid frames.
    pub fn invalid(&self) -> u64 {
        NeighInvalid::ALL.iter().map(|&r| self.invalid_of(r)).sum()
    }

    /// Invalid frames of one reason.
    pub fn invalid_of(&self, why: NeighInvalid) -> u64 {
        match why {
            NeighInvalid::Truncated => self.invalid_truncated,
            NeighInvalid::ArpHardware => self.invalid_arp_hardware,
            NeighInvalid::ArpProtocol => self.invalid_arp_protocol,
            NeighInvalid::ArpOp => self.invalid_arp_op,
            NeighInvalid::ArpTarget => self.invalid_arp_target,
            NeighInvalid::Ipv6Header => self.invalid_ipv6_header,
            NeighInvalid::HopLimit => self.invalid_hop_limit,
            NeighInvalid::Checksum => self.invalid_checksum,
            NeighInvalid::IcmpCode => self.invalid_icmp_code,
            NeighInvalid::ShortMessage => self.invalid_short_message,
            NeighInvalid::MulticastTarget => self.invalid_multicast_target,
            NeighInvalid::BadOption => self.invalid_bad_option,
            NeighInvalid::BadDad => self.invalid_bad_dad,
            NeighInvalid::SolicitedMulticast => self.invalid_solicited_multicast,
        }
    }

    fn count_invalid(&mut self, why: NeighInvalid) {
        let c = match why {
            NeighInvalid::Truncated => &mut self.invalid_truncated,
            NeighInvalid::ArpHardware => &mut self.invalid_arp_hardware,
            NeighInvalid::ArpProtocol => &mut self.invalid_arp_protocol,
            NeighInvalid::ArpOp => &mut self.invalid_arp_op,
            NeighInvalid::ArpTarget => &mut self.invalid_arp_target,
            NeighInvalid::Ipv6Header => &mut self.invalid_ipv6_header,
            NeighInvalid::HopLimit => &mut self.invalid_hop_limit,
            NeighInvalid::Checksum => &mut self.invalid_checksum,
            NeighInvalid::IcmpCode => &mut self.invalid_icmp_code,
            NeighInvalid::ShortMessage => &mut self.invalid_short_message,
            NeighInvalid::MulticastTarget => &mut self.invalid_multicast_target,
            NeighInvalid::BadOption => &mut self.invalid_bad_option,
            NeighInvalid::BadDad => &mut self.invalid_bad_dad,
            NeighInvalid::SolicitedMulticast => &mut self.invalid_solicited_multicast,
        };
        *c += 1;
    }
}

/// One neighbour (`struct neighbour`, reduced).
#[derive(Debug, Clone)]
struct Entry {
    state: NeighState,
    /// Cached link-layer address (`ha`).
    mac: [u8; 6],
    /// Cached Ethernet header (`hh`).
    hh: [u8; ETH_HLEN],
    /// Solicitations counted toward `neigh_max_probes`.
    probes: u32,
    /// When the timer fires, if armed (`NUD_IN_TIMER` states).
    timer: Option<u64>,
    /// Last reachability confirmation.
    confirmed: u64,
    /// Last use for output.
    used: u64,
    /// Last state or address change.
    updated: u64,
}

/// How an update may change a cached address (`NEIGH_UPDATE_F_*`).
#[derive(Debug, Clone, Copy)]
struct Override {
    /// `NEIGH_UPDATE_F_OVERRIDE`.
    strong: bool,
    /// `NEIGH_UPDATE_F_WEAK_OVERRIDE`.
    weak: bool,
}

/// Where a received frame was addressed (`skb->pkt_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PktType {
    /// Our MAC (`PACKET_HOST`).
    Host,
    /// Broadcast or multicast.
    Group,
    /// Someone else's MAC (`PACKET_OTHERHOST`).
    OtherHost,
}

/// The neighbour table of one interface.
#[derive(Debug)]
pub struct NeighTable {
    cfg: NeighConfig,
    entries: BTreeMap<IpAddr, Entry>,
    counters: NeighCounters,
    /// Effective reachable time (`parms->reachable_time`).
    reachable_ns: u64,
    last_rand: u64,
    next_gc: u64,
    last_flush: u64,
    rng: SmallRng,
}

impl NeighTable {
    /// An empty table.
    pub fn new(cfg: NeighConfig) -> Self {
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let reachable_ns = rand_reach_time(&mut rng, cfg.reachable_ns);
        NeighTable {
            cfg,
            entries: BTreeMap::new(),
            counters: NeighCounters::default(),
            reachable_ns,
            last_rand: 0,
            next_gc: 0,
            last_flush: 0,
            rng,
        }
    }

    /// The settings.
    pub fn config(&self) -> &NeighConfig {
        &self.cfg
    }

    /// The current effective reachable time, drawn from [base/2, 3·base/2).
    pub fn reachable_time_ns(&self) -> u64 {
        self.reachable_ns
    }

    /// The state of the entry for `ip`, if there is one.
    pub fn state(&self, ip: IpAddr) -> Option<NeighState> {
        self.entries.get(&ip).map(|e| e.state)
    }

    /// The cached MAC of `ip`, if valid.
    pub fn lladdr(&self, ip: IpAddr) -> Option<[u8; 6]> {
        self.entries
            .get(&ip)
            .filter(|e| e.state.is_valid())
            .map(|e| e.mac)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The counters.
    pub fn counters(&self) -> NeighCounters {
        self.counters
    }

    /// Handles one received frame if it is ARP or NDP (NS/NA): answers requests and
    /// solicitations for our own addresses (reply frames pushed to `out`, complete
    /// Ethernet frames ready to transmit), learns/updates the sender as the kernel does
    /// (`arp_process`: a request for us creates/updates the sender's entry; a reply
    /// updates an existing one), confirms pending entries. Returns true if the frame was
    /// ARP/NDP (consumed, valid or not), false for anything else.
    pub fn input(&mut self, frame: &[u8], now_ns: u64, out: &mut Vec<Vec<u8>>) -> bool {
        let f = match parse_frame(frame) {
            Ok(Some(f)) => f,
            Ok(None) => return false,
            Err(why) => {
                self.counters.count_invalid(why);
                return true;
            }
        };
        let pkt = if f.eth.dst == self.cfg.mac {
            PktType::Host
        } else if f.eth.dst[0] & 1 != 0 {
            PktType::Group
        } else {
            PktType::OtherHost
        };
        match f.msg {
            NeighMsg::Arp(a) => {
                match a.op {
                    ArpOp::Request => self.counters.arp_requests_received += 1,
                    ArpOp::Reply => self.counters.arp_replies_received += 1,
                }
                if pkt == PktType::OtherHost {
                    self.counters.ignored_other_host += 1;
                } else {
                    self.arp_input(&f.eth, &a, pkt, now_ns, out);
                }
            }
            NeighMsg::Ndp(n) => {
                match n.msg {
                    NdMsg::Solicit { .. } => self.counters.ns_received += 1,
                    NdMsg::Advert { .. } => self.counters.na_received += 1,
                }
                if pkt == PktType::OtherHost {
                    self.counters.ignored_other_host += 1;
                } else {
                    match n.msg {
                        NdMsg::Solicit {
                            target,
                            source_lladdr,
                        } => self.ns_input(&f.eth, &n, target, source_lladdr, now_ns, out),
                        NdMsg::Advert {
                            target,
                            flags,
                            target_lladdr,
                        } => self.na_input(&n, target, flags, target_lladdr, now_ns),
                    }
                }
            }
        }
        true
    }

    /// `arp_process` after the header checks.
    fn arp_input(
        &mut self,
        eth: &EthInfo,
        a: &ArpRepr,
        pkt: PktType,
        now: u64,
        out: &mut Vec<Vec<u8>>,
    ) {
        let Some(ours) = self.cfg.ipv4 else {
            self.counters.ignored_not_for_us += 1;
            return;
        };
        let (sip, tip) = (a.sender_ip, a.target_ip);
        // Special case: an RFC 5227 probe (sender 0.0.0.0) for our address is answered,
        // to the prober's MAC with target IP 0, and teaches nothing.
        if sip == [0; 4] {
            if a.op == ArpOp::Request && tip == ours {
                self.send_arp_reply(eth, a, ours, out);
            } else {
                self.counters.ignored_not_for_us += 1;
            }
            return;
        }
        // A martian or our own source would fail ip_route_input_noref: never learned.
        if sip == ours || is_martian_v4(sip) {
            self.counters.ignored_not_for_us += 1;
            return;
        }
        let sip_key = IpAddr::from(sip);
        if a.op == ArpOp::Request && tip == ours {
            // neigh_event_ns: create or update the sender as STALE, then reply.
            if self.get_or_create(sip_key, now) {
                self.update(
                    sip_key,
                    Some(a.sender_mac),
                    NeighState::Stale,
                    Override {
                        strong: true,
                        weak: false,
                    },
                    now,
                );
                self.send_arp_reply(eth, a, ours, out);
            }
            return;
        }
        // "Update our ARP tables": only an existing entry (arp_accept = 0).
        let Some(e) = self.entries.get(&sip_key) else {
            self.counters.ignored_not_for_us += 1;
            return;
        };
        let is_garp = sip == tip && (a.op == ArpOp::Request || a.target_mac == a.sender_mac);
        let strong = now > e.updated.saturating_add(self.cfg.locktime_ns) || is_garp;
        // Broadcast replies and requests do not assert reachability.
        let state = if a.op == ArpOp::Reply && pkt == PktType::Host {
            NeighState::Reachable
        } else {
            NeighState::Stale
        };
        self.update(
            sip_key,
            Some(a.sender_mac),
            state,
            Override {
                strong,
                weak: false,
            },
            now,
        );
    }

    fn send_arp_reply(
        &mut self,
        eth: &EthInfo,
        a: &ArpRepr,
        ours: [u8; 4],
        out: &mut Vec<Vec<u8>>,
    ) {
        // arp_send_dst(ARPOP_REPLY, ..., dest_ip = sip, src_ip = tip, dest_hw = sha,
        // src_hw = dev_addr, target_hw = sha).
        let reply = NeighFrame {
            eth: EthInfo {
                dst: a.sender_mac,
                src: self.cfg.mac,
                vlan: eth.vlan,
            },
            msg: NeighMsg::Arp(ArpRepr {
                op: ArpOp::Reply,
                sender_mac: self.cfg.mac,
                sender_ip: ours,
                target_mac: a.sender_mac,
                target_ip: a.sender_ip,
            }),
        };
        out.push(build_frame(&reply));
        self.counters.arp_replies_sent += 1;
        self.counters.arp_requests_answered += 1;
    }

    /// `ndisc_recv_ns` after the validity checks.
    fn ns_input(
        &mut self,
        eth: &EthInfo,
        n: &NdpRepr,
        target: [u8; 16],
        lladdr: Option<[u8; 6]>,
        now: u64,
        out: &mut Vec<Vec<u8>>,
    ) {
        let Some(ours) = self.cfg.ipv6 else {
            self.counters.ignored_not_for_us += 1;
            return;
        };
        // For our address, and delivered to us: our unicast address or a group we are in
        // (solicited-node, all-nodes).
        let to_us = n.dst == ours || n.dst == solicited_node(ours) || n.dst == IPV6_ALL_NODES;
        if target != ours || !to_us || n.src == ours {
            self.counters.ignored_not_for_us += 1;
            return;
        }
        if n.src == [0; 16] {
            // DAD probe: unsolicited NA with Override to all-nodes (RFC 4861 §7.2.4).
            let flags = NaFlags {
                router: false,
                solicited: false,
                overrides: true,
            };
            let dst_mac = ipv6_multicast_mac(IPV6_ALL_NODES);
            self.send_na(eth.vlan, IPV6_ALL_NODES, dst_mac, flags, true, out);
            return;
        }
        let inc = n.dst[0] == 0xff;
        let key = IpAddr::from(n.src);
        if !self.entries.contains_key(&key) {
            // __neigh_lookup(..., create = !inc || lladdr): a multicast NS without a
            // source option from a stranger gets no entry, and so no answer.
            if inc && lladdr.is_none() {
                self.counters.ns_unanswered += 1;
                return;
            }
            if !self.get_or_create(key, now) {
                return;
            }
        }
        self.update(
            key,
            lladdr,
            NeighState::Stale,
            Override {
                strong: true,
                weak: true,
            },
            now,
        );
        let dst_mac = self
            .entries
            .get(&key)
            .filter(|e| e.state.is_valid())
            .map_or(eth.src, |e| e.mac);
        // Solicited; Override and the target link-layer option only for a multicast NS
        // (ndisc_send_na(dev, saddr, target, router, true, ifp && inc, inc)).
        let flags = NaFlags {
            router: false,
            solicited: true,
            overrides: inc,
        };
        self.send_na(eth.vlan, n.src, dst_mac, flags, inc, out);
    }

    /// `ndisc_send_na`: from our address, hop limit 255, on the request's VLAN.
    fn send_na(
        &mut self,
        vlan: Option<VlanTag>,
        dst: [u8; 16],
        dst_mac: [u8; 6],
        flags: NaFlags,
        with_lladdr: bool,
        out: &mut Vec<Vec<u8>>,
    ) {
        let Some(ours) = self.cfg.ipv6 else {
            return;
        };
        let na = NeighFrame {
            eth: EthInfo {
                dst: dst_mac,
                src: self.cfg.mac,
                vlan,
            },
            msg: NeighMsg::Ndp(NdpRepr {
                src: ours,
                dst,
                msg: NdMsg::Advert {
                    target: ours,
                    flags,
                    target_lladdr: with_lladdr.then_some(self.cfg.mac),
                },
            }),
        };
        out.push(build_frame(&na));
        self.counters.na_sent += 1;
        self.counters.ns_answered += 1;
    }

    /// `ndisc_recv_na` after the validity checks.
    fn na_input(
        &mut self,
        n: &NdpRepr,
        target: [u8; 16],
        flags: NaFlags,
        lladdr: Option<[u8; 6]>,
        now: u64,
    ) {
        if self.cfg.ipv6 == Some(target) {
            self.counters.addr_conflicts += 1;
            return;
        }
        let to_us = self.cfg.ipv6 == Some(n.dst) || n.dst[0] == 0xff;
        let key = IpAddr::from(target);
        let tracked = self
            .entries
            .get(&key)
            .is_some_and(|e| e.state != NeighState::Failed);
        if !to_us || !tracked {
            self.counters.ignored_not_for_us += 1;
            return;
        }
        let state = if flags.solicited {
            NeighState::Reachable
        } else {
            NeighState::Stale
        };
        self.update(
            key,
            lladdr,
            state,
            Override {
                strong: flags.overrides,
                weak: true,
            },
            now,
        );
    }

    /// Looks up `ip`, creating a NONE entry if needed and there is room. False when the
    /// table is full (`neigh_alloc` → "neighbor table overflow").
    fn get_or_create(&mut self, ip: IpAddr, now: u64) -> bool {
        if self.entries.contains_key(&ip) {
            return true;
        }
        if !self.make_room(now) {
            self.counters.table_full += 1;
            return false;
        }
        let ethertype = ethertype_of(ip);
        self.entries.insert(
            ip,
            Entry {
                state: NeighState::None,
                mac: [0; 6],
                hh: header([0; 6], self.cfg.mac, ethertype),
                probes: 0,
                timer: None,
                // neigh_alloc: confirmed = now - 2 × base_reachable_time.
                confirmed: now.saturating_sub(self.cfg.reachable_ns.saturating_mul(2)),
                used: now,
                updated: now,
            },
        );
        true
    }

    /// `neigh_alloc`'s GC: forced at `gc_thresh3`, or at `gc_thresh2` if the last forced
    /// GC is more than 5 s old. True if an entry may be added.
    fn make_room(&mut self, now: u64) -> bool {
        let n = self.entries.len();
        let due = n >= self.cfg.gc_thresh3
            || (n >= self.cfg.gc_thresh2 && now > self.last_flush.saturating_add(GC_RECENT_NS));
        if due {
            // neigh_forced_gc: drop unreferenced entries that are FAILED or were not
            // updated (here: nor used) in the last 5 s, down to gc_thresh2.
            self.last_flush = now;
            let mut to_clean = n.saturating_sub(self.cfg.gc_thresh2).max(1);
            let tref = now.saturating_sub(GC_RECENT_NS);
            let before = self.entries.len();
            self.entries.retain(|_, e| {
                let exempt = matches!(e.state, NeighState::Permanent | NeighState::NoArp);
                let idle = e.state == NeighState::Failed || (e.updated < tref && e.used < tref);
                if to_clean > 0 && !exempt && idle {
                    to_clean -= 1;
                    false
                } else {
                    true
                }
            });
            self.counters.gc_removed += (before - self.entries.len()) as u64;
        }
        self.entries.len() < self.cfg.gc_thresh3
    }

    /// `neigh_update` for learned addresses (never with `NEIGH_UPDATE_F_ADMIN`).
    fn update(
        &mut self,
        ip: IpAddr,
        lladdr: Option<[u8; 6]>,
        new: NeighState,
        ov: Override,
        now: u64,
    ) {
        let reachable = self.reachable_ns;
        let base2 = self.cfg.reachable_ns.saturating_mul(2);
        let our_mac = self.cfg.mac;
        let Some(e) = self.entries.get_mut(&ip) else {
            return;
        };
        let old = e.state;
        if matches!(old, NeighState::Permanent | NeighState::NoArp) {
            return;
        }
        // No address supplied: use the cached one if valid, else nothing to do.
        let mut lladdr = match lladdr {
            Some(m) => m,
            None if old.is_valid() => e.mac,
            None => return,
        };
        let mut new = new;
        let mut changed = !(old.is_valid() && lladdr == e.mac);
        if old.is_valid() {
            if changed && !ov.strong {
                if ov.weak && old.is_connected() {
                    lladdr = e.mac;
                    changed = false;
                    new = NeighState::Stale;
                } else {
                    self.counters.updates_refused += 1;
                    return;
                }
            } else if !changed && new == NeighState::Stale {
                // "If entry was valid and address is not changed, do not change entry
                // state, if new one is STALE."
                new = old;
            }
        }
        if new != old || changed {
            if new.is_connected() {
                e.confirmed = now;
            }
            e.updated = now;
        }
        if new != old {
            e.timer = match new {
                NeighState::Reachable => Some(now.saturating_add(reachable)),
                NeighState::Delay | NeighState::Probe | NeighState::Incomplete => Some(now),
                _ => None,
            };
            if new == NeighState::Probe {
                e.probes = 0;
            }
            e.state = new;
            if !old.is_valid() {
                self.counters.resolved += 1;
            }
        }
        if changed {
            e.mac = lladdr;
            e.hh = header(lladdr, our_mac, ethertype_of(ip));
            if !new.is_connected() {
                e.confirmed = now.saturating_sub(base2);
            }
        }
    }

    /// The cached L2 header for `next_hop`; if unknown, creates an INCOMPLETE entry and
    /// pushes a broadcast ARP request / multicast NS into `out`.
    pub fn resolve(
        &mut self,
        next_hop: IpAddr,
        now_ns: u64,
        out: &mut Vec<Vec<u8>>,
    ) -> Resolve<'_> {
        let now = now_ns;
        if !self.entries.contains_key(&next_hop) {
            if let Some(mac) = noarp_mac(next_hop) {
                self.insert_fixed(next_hop, mac, NeighState::NoArp, now);
            } else if !self.get_or_create(next_hop, now) {
                return Resolve::Failed;
            }
        }
        let Some(e) = self.entries.get_mut(&next_hop) else {
            return Resolve::Failed;
        };
        // neigh_event_send_probe: note the use, then __neigh_event_send.
        e.used = now;
        match e.state {
            NeighState::Reachable
            | NeighState::Delay
            | NeighState::Probe
            | NeighState::Permanent
            | NeighState::NoArp => {}
            NeighState::Stale => {
                e.state = NeighState::Delay;
                e.updated = now;
                e.timer = Some(now.saturating_add(self.cfg.delay_probe_ns));
            }
            NeighState::Incomplete => return Resolve::Pending,
            NeighState::Failed if now < e.updated.saturating_add(self.cfg.failed_hold_ns) => {
                return Resolve::Failed;
            }
            NeighState::None | NeighState::Failed => {
                if self.cfg.max_solicit == 0 {
                    e.state = NeighState::Failed;
                    e.updated = now;
                    return Resolve::Failed;
                }
                e.probes = self.cfg.ucast_solicit;
                e.state = NeighState::Incomplete;
                e.updated = now;
                e.timer = Some(now.saturating_add(self.cfg.retrans_ns.max(MIN_TIMER_NS)));
                // Immediate probe (neigh_probe): solicit, then count it.
                solicit(&self.cfg, &mut self.counters, next_hop, e, out);
                e.probes += 1;
                return Resolve::Pending;
            }
        }
        Resolve::Ready(&e.hh)
    }

    /// Upper-layer confirmation (`dst_confirm` / `neigh_confirm`: TCP saw forward
    /// progress): refreshes `confirmed`, which keeps a REACHABLE entry REACHABLE at its
    /// timer and sends a DELAY entry back to REACHABLE instead of PROBE.
    pub fn confirm(&mut self, ip: IpAddr, now_ns: u64) {
        if let Some(e) = self.entries.get_mut(&ip) {
            if e.state.is_valid() {
                e.confirmed = now_ns;
            }
        }
    }

    /// Timers: resend solicitations every retrans time, FAILED after `max_solicit`;
    /// REACHABLE → STALE (or DELAY if in use) after the reachable time; a STALE entry in
    /// use is re-probed by unicast after DELAY (and stays usable meanwhile, as the
    /// kernel's DELAY/PROBE keep transmitting). Also the periodic GC and the re-draw of
    /// the reachable time.
    pub fn poll(&mut self, now_ns: u64, out: &mut Vec<Vec<u8>>) {
        let now = now_ns;
        let Self {
            cfg,
            entries,
            counters,
            reachable_ns,
            ..
        } = self;
        for (&ip, e) in entries.iter_mut() {
            if e.timer.is_some_and(|t| t <= now) {
                timer_handler(cfg, counters, *reachable_ns, ip, e, now, out);
            }
        }
        if now >= self.next_gc {
            self.periodic_work(now);
        }
    }

    /// `neigh_periodic_work`: re-draw the reachable time every 300 s; above `gc_thresh1`
    /// entries, drop FAILED ones and those unused for `gc_stale_time` (not those in a
    /// timer state, PERMANENT or NOARP).
    fn periodic_work(&mut self, now: u64) {
        // Cycle every base_reachable_time / 2.
        self.next_gc = now.saturating_add((self.cfg.reachable_ns / 2).max(MIN_TIMER_NS));
        if now >= self.last_rand.saturating_add(RAND_INTERVAL_NS) {
            self.last_rand = now;
            self.reachable_ns = rand_reach_time(&mut self.rng, self.cfg.reachable_ns);
        }
        if self.entries.len() < self.cfg.gc_thresh1 {
            return;
        }
        let stale = self.cfg.gc_stale_ns;
        let before = self.entries.len();
        self.entries.retain(|_, e| {
            let keep =
                matches!(e.state, NeighState::Permanent | NeighState::NoArp) || e.timer.is_some();
            if keep {
                return true;
            }
            if e.used < e.confirmed && e.confirmed <= now {
                e.used = e.confirmed;
            }
            !(e.state == NeighState::Failed || now >= e.used.saturating_add(stale))
        });
        self.counters.gc_removed += (before - self.entries.len()) as u64;
    }

    /// When [`poll`](Self::poll) next has work: the earliest entry timer or the next GC
    /// cycle.
    pub fn next_timer_ns(&self) -> Option<u64> {
        let timers = self.entries.values().filter_map(|e| e.timer).min();
        Some(timers.map_or(self.next_gc, |t| t.min(self.next_gc)))
    }

    /// A permanent entry (`NUD_PERMANENT`, e.g. from `--dst-mac`): always ready, never
    /// changed by what arrives.
    pub fn insert_static(&mut self, ip: IpAddr, mac: [u8; 6]) {
        self.insert_fixed(ip, mac, NeighState::Permanent, 0);
    }

    fn insert_fixed(&mut self, ip: IpAddr, mac: [u8; 6], state: NeighState, now: u64) {
        self.entries.insert(
            ip,
            Entry {
                state,
                mac,
                hh: header(mac, self.cfg.mac, ethertype_of(ip)),
                probes: 0,
                timer: None,
                confirmed: now,
                used: now,
                updated: now,
            },
        );
    }
}

/// `neigh_timer_handler` for one due entry.
fn timer_handler(
    cfg: &NeighConfig,
    counters: &mut NeighCounters,
    reachable: u64,
    ip: IpAddr,
    e: &mut Entry,
    now: u64,
    out: &mut Vec<Vec<u8>>,
) {
    let retrans = cfg.retrans_ns.max(MIN_TIMER_NS);
    let next = match e.state {
        NeighState::Reachable => {
            if now <= e.confirmed.saturating_add(reachable) {
                e.confirmed.saturating_add(reachable)
            } else if now <= e.used.saturating_add(cfg.delay_probe_ns) {
                e.state = NeighState::Delay;
                e.updated = now;
                now.saturating_add(cfg.delay_probe_ns)
            } else {
                e.state = NeighState::Stale;
                e.updated = now;
                e.timer = None;
                return;
            }
        }
        NeighState::Delay => {
            if now <= e.confirmed.saturating_add(cfg.delay_probe_ns) {
                e.state = NeighState::Reachable;
                e.updated = now;
                e.confirmed.saturating_add(reachable)
            } else {
                e.state = NeighState::Probe;
                e.updated = now;
                e.probes = 0;
                now.saturating_add(retrans)
            }
        }
        NeighState::Incomplete | NeighState::Probe => now.saturating_add(retrans),
        _ => {
            e.timer = None;
            return;
        }
    };
    let probing = matches!(e.state, NeighState::Incomplete | NeighState::Probe);
    if probing && e.probes >= max_probes(cfg, e.state) {
        e.state = NeighState::Failed;
        e.updated = now;
        e.timer = None;
        counters.failed += 1;
        return;
    }
    e.timer = Some(next.max(now.saturating_add(MIN_TIMER_NS)));
    if probing {
        solicit(cfg, counters, ip, e, out);
        e.probes += 1;
    }
}

/// `neigh_max_probes`: ucast + app (0) + (PROBE ? mcast_resolicit : mcast_solicit).
fn max_probes(cfg: &NeighConfig, state: NeighState) -> u32 {
    cfg.ucast_solicit
        + if state == NeighState::Probe {
            cfg.mcast_resolicit
        } else {
            cfg.max_solicit
        }
}

/// `arp_solicit` / `ndisc_solicit`: unicast to the cached address while `probes <
/// ucast_solicit`, else broadcast (ARP) or to the solicited-node group (NS).
fn solicit(
    cfg: &NeighConfig,
    counters: &mut NeighCounters,
    target: IpAddr,
    e: &Entry,
    out: &mut Vec<Vec<u8>>,
) {
    let unicast = (e.probes < cfg.ucast_solicit).then_some(e.mac);
    match target {
        IpAddr::V4(t) => {
            let f = NeighFrame {
                eth: EthInfo {
                    dst: unicast.unwrap_or(BROADCAST_MAC),
                    src: cfg.mac,
                    vlan: None,
                },
                msg: NeighMsg::Arp(ArpRepr {
                    op: ArpOp::Request,
                    sender_mac: cfg.mac,
                    // inet_select_addr; 0.0.0.0 (a probe) without an address.
                    sender_ip: cfg.ipv4.unwrap_or([0; 4]),
                    target_mac: [0; 6],
                    target_ip: t.octets(),
                }),
            };
            out.push(build_frame(&f));
            counters.arp_requests_sent += 1;
        }
        IpAddr::V6(t) => {
            let t = t.octets();
            let (dst, dst_mac) = match unicast {
                Some(mac) => (t, mac),
                None => (solicited_node(t), solicited_node_mac(t)),
            };
            let src = cfg.ipv6.unwrap_or([0; 16]);
            let f = NeighFrame {
                eth: EthInfo {
                    dst: dst_mac,
                    src: cfg.mac,
                    vlan: None,
                },
                msg: NeighMsg::Ndp(NdpRepr {
                    src,
                    dst,
                    msg: NdMsg::Solicit {
                        target: t,
                        // ndisc_send_ns: the option only with a specified source.
                        source_lladdr: (src != [0; 16]).then_some(cfg.mac),
                    },
                }),
            };
            out.push(build_frame(&f));
            counters.ns_sent += 1;
        }
    }
}

/// `neigh_rand_reach_time`: uniform in [base/2, 3·base/2).
fn rand_reach_time(rng: &mut SmallRng, base: u64) -> u64 {
    if base == 0 {
        0
    } else {
        rng.gen_range(0..base) + base / 2
    }
}

fn ethertype_of(ip: IpAddr) -> u16 {
    match ip {
        IpAddr::V4(_) => ETHERTYPE_IPV4,
        IpAddr::V6(_) => ETHERTYPE_IPV6,
    }
}

fn header(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> [u8; ETH_HLEN] {
    let mut h = [0u8; ETH_HLEN];
    h[0..6].copy_from_slice(&dst);
    h[6..12].copy_from_slice(&src);
    h[12..14].copy_from_slice(&ethertype.to_be_bytes());
    h
}

/// The mapped MAC of a next hop that needs no resolution (`arp_constructor`: multicast →
/// `ip_eth_mc_map`, limited broadcast → `dev->broadcast`; IPv6 multicast → 33:33:...).
fn noarp_mac(ip: IpAddr) -> Option<[u8; 6]> {
    match ip {
        IpAddr::V4(a) if a.is_multicast() => Some(ipv4_multicast_mac(a.octets())),
        IpAddr::V4(a) if a.is_broadcast() => Some(BROADCAST_MAC),
        IpAddr::V6(a) if a.is_multicast() => Some(ipv6_multicast_mac(a.octets())),
        _ => None,
    }
}

/// Sources `ip_route_input` rejects as martian: multicast, limited broadcast, loopback,
/// 0.0.0.0/8 (the all-zero probe is handled before).
fn is_martian_v4(a: [u8; 4]) -> bool {
    a[0] & 0xf0 == 0xe0 || a == [255; 4] || a[0] == 127 || a[0] == 0
}

/// Sources no TCP peer can have: IPv4's martians ([`is_martian_v4`]); IPv6 multicast
/// (`ipv6_rcv` drops them), loopback, unspecified, and IPv4-mapped (`tcp_v6_rcv` leaves
/// those to IPv4).
pub(crate) fn is_martian(src: IpAddr) -> bool {
    match src {
        IpAddr::V4(a) => is_martian_v4(a.octets()),
        IpAddr::V6(a) => {
            a.is_multicast()
                || a.is_loopback()
                || a.is_unspecified()
                || a.to_ipv4_mapped().is_some()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::{Ipv4Addr, Ipv6Addr};

    use crate::wire::checksum;

    const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    const OTHER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];
    const OUR_IP: [u8; 4] = [198, 18, 0, 1];
    const PEER_IP: [u8; 4] = [198, 18, 0, 2];
    const MS: u64 = 1_000_000;
    const TICK: u64 = MIN_TIMER_NS;

    fn our6() -> [u8; 16] {
        "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets()
    }

    fn peer6() -> [u8; 16] {
        "2001:db8::2:3".parse::<Ipv6Addr>().unwrap().octets()
    }

    fn peer() -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(PEER_IP))
    }

    fn peer_v6() -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(peer6()))
    }

    fn table() -> NeighTable {
        NeighTable::new(NeighConfig::new(OUR_MAC, Some(OUR_IP), Some(our6())))
    }

    fn arp(
        op: u16,
        eth_dst: [u8; 6],
        sha: [u8; 6],
        sip: [u8; 4],
        tha: [u8; 6],
        tip: [u8; 4],
    ) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&eth_dst);
        f.extend_from_slice(&sha);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4]);
        f.extend_from_slice(&op.to_be_bytes());
        f.extend_from_slice(&sha);
        f.extend_from_slice(&sip);
        f.extend_from_slice(&tha);
        f.extend_from_slice(&tip);
        f.resize(60, 0);
        f
    }

    fn ndp(
        eth_dst: [u8; 6],
        eth_src: [u8; 6],
        src: [u8; 16],
        dst: [u8; 16],
        msg: NdMsg,
    ) -> Vec<u8> {
        build_frame(&NeighFrame {
            eth: EthInfo {
                dst: eth_dst,
                src: eth_src,
                vlan: None,
            },
            msg: NeighMsg::Ndp(NdpRepr { src, dst, msg }),
        })
    }

    fn ready(r: Resolve<'_>) -> [u8; 14] {
        match r {
            Resolve::Ready(h) => *h,
            other => panic!("expected Ready, got {other:?}"),
        }
    }

    #[test]
    fn answers_an_arp_request_for_us_byte_exact() {
        let mut t = table();
        let mut out = Vec::new();
        let req = arp(1, BROADCAST_MAC, PEER_MAC, PEER_IP, [0; 6], OUR_IP);
        assert!(t.input(&req, 0, &mut out));
        assert_eq!(out.len(), 1);
        let want: Vec<u8> = vec![
            0x02, 0, 0, 0, 0, 0x02, // to the requester's sha
            0x02, 0, 0, 0, 0, 0x01, // from us
            0x08, 0x06, // ARP
            0x00, 0x01, 0x08, 0x00, 6, 4, // Ethernet, IPv4
            0x00, 0x02, // reply
            0x02, 0, 0, 0, 0, 0x01, 198, 18, 0, 1, // we are at OUR_MAC
            0x02, 0, 0, 0, 0, 0x02, 198, 18, 0, 2, // to the requester
        ];
        assert_eq!(out[0], want);
        // The requester was learned STALE (neigh_event_ns) with its header ready.
        assert_eq!(t.state(peer()), Some(NeighState::Stale));
        let c = t.counters();
        assert_eq!(
            (
                c.arp_requests_received,
                c.arp_replies_sent,
                c.arp_requests_answered
            ),
            (1, 1, 1)
        );
        // Using it now: STALE → DELAY, ready without a solicitation.
        out.clear();
        let hh = ready(t.resolve(peer(), MS, &mut out));
        assert_eq!(hh, [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        assert!(out.is_empty());
        assert_eq!(t.state(peer()), Some(NeighState::Delay));
    }

    #[test]
    fn ignores_requests_for_other_addresses_and_other_hosts() {
        let mut t = table();
        let mut out = Vec::new();
        let req = arp(
            1,
            BROADCAST_MAC,
            PEER_MAC,
            PEER_IP,
            [0; 6],
            [198, 18, 0, 99],
        );
        assert!(
            t.input(&req, 0, &mut out),
            "ARP is consumed even if not for us"
        );
        assert!(out.is_empty());
        assert_eq!(t.state(peer()), None, "no entry created (arp_accept = 0)");
        assert_eq!(t.counters().ignored_not_for_us, 1);
        // Unicast to another MAC: PACKET_OTHERHOST.
        let req = arp(1, OTHER_MAC, PEER_MAC, PEER_IP, [0; 6], OUR_IP);
        assert!(t.input(&req, 0, &mut out));
        assert!(out.is_empty());
        assert_eq!(t.counters().ignored_other_host, 1);
        // An unsolicited reply does not create an entry either.
        let rep = arp(2, OUR_MAC, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP);
        assert!(t.input(&rep, 0, &mut out));
        assert_eq!(t.state(peer()), None);
        // Not ARP/NDP at all: not consumed.
        let mut ip = rep.clone();
        ip[12..14].copy_from_slice(&[0x08, 0x00]);
        assert!(!t.input(&ip, 0, &mut out));
        assert!(!t.input(&[], 0, &mut out));
    }

    #[test]
    fn rfc5227_probe_is_answered_without_learning() {
        let mut t = table();
        let mut out = Vec::new();
        let probe = arp(1, BROADCAST_MAC, PEER_MAC, [0; 4], [0; 6], OUR_IP);
        assert!(t.input(&probe, 0, &mut out));
        assert_eq!(out.len(), 1);
        let r = parse_frame(&out[0]).unwrap().unwrap();
        assert_eq!(
            r.msg,
            NeighMsg::Arp(ArpRepr {
                op: ArpOp::Reply,
                sender_mac: OUR_MAC,
                sender_ip: OUR_IP,
                target_mac: PEER_MAC,
                target_ip: [0; 4],
            })
        );
        assert!(t.is_empty());
    }

    #[test]
    fn resolves_by_arp() {
        let mut t = table();
        let mut out = Vec::new();
        assert!(matches!(t.resolve(peer(), 0, &mut out), Resolve::Pending));
        // Broadcast request, byte for byte (arp_create: tha zero, no padding).
        let want: Vec<u8> = vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06, 0x00, 0x01,
            0x08, 0x00, 6, 4, 0x00, 0x01, 0x02, 0, 0, 0, 0, 0x01, 198, 18, 0, 1, 0, 0, 0, 0, 0, 0,
            198, 18, 0, 2,
        ];
        assert_eq!(out, vec![want]);
        assert_eq!(t.state(peer()), Some(NeighState::Incomplete));
        // Asking again while INCOMPLETE sends nothing more.
        out.clear();
        assert!(matches!(
            t.resolve(peer(), 100 * MS, &mut out),
            Resolve::Pending
        ));
        assert!(out.is_empty());
        // The reply, unicast to us: REACHABLE.
        let rep = arp(2, OUR_MAC, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP);
        assert!(t.input(&rep, 200 * MS, &mut out));
        assert!(out.is_empty(), "replies are not answered");
        assert_eq!(t.state(peer()), Some(NeighState::Reachable));
        assert_eq!(t.lladdr(peer()), Some(PEER_MAC));
        let hh = ready(t.resolve(peer(), 300 * MS, &mut out));
        assert_eq!(hh, [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let c = t.counters();
        assert_eq!(
            (c.arp_requests_sent, c.resolved, c.arp_replies_received),
            (1, 1, 1)
        );
        // No more solicitations: the next timer is the reachable timer.
        t.poll(1000 * MS, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn retries_then_fails_on_time() {
        let mut t = table();
        let mut out = Vec::new();
        assert!(matches!(t.resolve(peer(), 0, &mut out), Resolve::Pending));
        let mut sent_at = vec![0];
        // Step the clock by 10 ms to 5 s, polling whenever a timer is due.
        let mut failed_at = None;
        for ms in (10..5000).step_by(10) {
            let now = ms * MS;
            out.clear();
            if t.next_timer_ns().is_some_and(|n| n <= now) {
                t.poll(now, &mut out);
            }
            for f in &out {
                assert_eq!(f[0..6], BROADCAST_MAC, "INCOMPLETE probes are broadcast");
                sent_at.push(ms);
            }
            if failed_at.is_none() && t.state(peer()) == Some(NeighState::Failed) {
                failed_at = Some(ms);
            }
        }
        // mcast_solicit = 3 requests, one per retrans_time, FAILED a retrans_time later.
        assert_eq!(sent_at, vec![0, 1000, 2000]);
        assert_eq!(failed_at, Some(3000));
        assert_eq!(t.counters().failed, 1);
        assert_eq!(t.counters().arp_requests_sent, 3);
        // FAILED is reported during failed_hold (3 s), without new requests.
        out.clear();
        assert!(matches!(
            t.resolve(peer(), 5000 * MS, &mut out),
            Resolve::Failed
        ));
        assert!(out.is_empty());
        // After it, a use restarts resolution (__neigh_event_send from NUD_FAILED).
        assert!(matches!(
            t.resolve(peer(), 6000 * MS, &mut out),
            Resolve::Pending
        ));
        assert_eq!(out.len(), 1);
        assert_eq!(t.state(peer()), Some(NeighState::Incomplete));
    }

    #[test]
    fn reachable_goes_stale_then_reprobes_by_unicast() {
        let mut t = table();
        let mut out = Vec::new();
        let _ = t.resolve(peer(), 0, &mut out);
        let rep = arp(2, OUR_MAC, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP);
        t.input(&rep, 0, &mut out);
        out.clear();
        let rt = t.reachable_time_ns();
        assert!((15 * SEC..45 * SEC).contains(&rt), "reachable time {rt}");
        // Still REACHABLE up to and at the reachable time (time_before_eq).
        t.poll(rt - 1, &mut out);
        t.poll(rt, &mut out);
        assert_eq!(t.state(peer()), Some(NeighState::Reachable));
        // Unused: STALE once past it (the timer re-armed a tick later).
        t.poll(rt + TICK, &mut out);
        assert_eq!(t.state(peer()), Some(NeighState::Stale));
        assert_eq!(
            t.next_timer_ns(),
            Some(t.next_gc),
            "no entry timer in STALE"
        );
        // Used while STALE: DELAY, header still handed out.
        let now = rt + SEC;
        ready(t.resolve(peer(), now, &mut out));
        assert_eq!(t.state(peer()), Some(NeighState::Delay));
        assert!(out.is_empty());
        // No confirmation within delay_first_probe_time: PROBE, unicast request now.
        let now = now + 5 * SEC;
        t.poll(now, &mut out);
        assert_eq!(t.state(peer()), Some(NeighState::Probe));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0][0..6], PEER_MAC, "PROBE asks the cached address");
        assert_eq!(out[0][38..42], PEER_IP);
        ready(t.resolve(peer(), now, &mut out));
        // Two more unicast probes, then FAILED (ucast_solicit = 3, mcast_resolicit = 0).
        t.poll(now + SEC, &mut out);
        t.poll(now + 2 * SEC, &mut out);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|f| f[0..6] == PEER_MAC));
        t.poll(now + 3 * SEC, &mut out);
        assert_eq!(t.state(peer()), Some(NeighState::Failed));
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn probe_answered_goes_reachable() {
        let mut t = table();
        let mut out = Vec::new();
        let _ = t.resolve(peer(), 0, &mut out);
        let rep = arp(2, OUR_MAC, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP);
        t.input(&rep, 0, &mut out);
        let rt = t.reachable_time_ns();
        // In use just before expiry: REACHABLE → DELAY directly.
        ready(t.resolve(peer(), rt - SEC, &mut out));
        t.poll(rt, &mut out);
        t.poll(rt + TICK, &mut out);
        assert_eq!(t.state(peer()), Some(NeighState::Delay));
        t.poll(rt + TICK + 5 * SEC, &mut out);
        assert_eq!(t.state(peer()), Some(NeighState::Probe));
        // The answer to the unicast probe: REACHABLE again.
        t.input(&rep, rt + 5 * SEC + 100 * MS, &mut out);
        assert_eq!(t.state(peer()), Some(NeighState::Reachable));
    }

    #[test]
    fn confirm_keeps_reachable() {
        let mut t = table();
        let mut out = Vec::new();
        let _ = t.resolve(peer(), 0, &mut out);
        t.input(
            &arp(2, OUR_MAC, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP),
            0,
            &mut out,
        );
        let rt = t.reachable_time_ns();
        let mut now = 0;
        // TCP confirms every 10 s for 4 minutes (before the 300 s re-draw of the reachable
        // time): never leaves REACHABLE.
        while now < 240 * SEC {
            now += 10 * SEC;
            t.confirm(peer(), now);
            t.poll(now, &mut out);
            assert_eq!(t.state(peer()), Some(NeighState::Reachable), "at {now}");
        }
        // Without confirmations it goes STALE one reachable time after the last one.
        t.poll(now + rt + 1, &mut out);
        assert_eq!(t.state(peer()), Some(NeighState::Stale));
        assert_eq!(t.counters().arp_requests_sent, 1);
        // A DELAY entry confirmed in time returns to REACHABLE without probing.
        let now = now + rt + 2 * SEC;
        ready(t.resolve(peer(), now, &mut out));
        t.confirm(peer(), now + SEC);
        t.poll(now + 5 * SEC, &mut out);
        assert_eq!(t.state(peer()), Some(NeighState::Reachable));
        assert_eq!(t.counters().arp_requests_sent, 1);
    }

    #[test]
    fn locktime_keeps_the_first_reply() {
        let mut t = table();
        let mut out = Vec::new();
        let _ = t.resolve(peer(), 0, &mut out);
        t.input(
            &arp(2, OUR_MAC, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP),
            0,
            &mut out,
        );
        // A second, different reply within 1 s is refused.
        let other = arp(2, OUR_MAC, OTHER_MAC, PEER_IP, OUR_MAC, OUR_IP);
        t.input(&other, 500 * MS, &mut out);
        assert_eq!(t.lladdr(peer()), Some(PEER_MAC));
        assert_eq!(t.counters().updates_refused, 1);
        // After locktime it overrides (and the header follows).
        t.input(&other, 1500 * MS, &mut out);
        assert_eq!(t.lladdr(peer()), Some(OTHER_MAC));
        let hh = ready(t.resolve(peer(), 1600 * MS, &mut out));
        assert_eq!(hh[0..6], OTHER_MAC);
    }

    #[test]
    fn static_entries_are_ready_and_fixed() {
        let mut t = table();
        let mut out = Vec::new();
        t.insert_static(peer(), OTHER_MAC);
        let hh = ready(t.resolve(peer(), 0, &mut out));
        assert_eq!(hh[0..6], OTHER_MAC);
        t.input(
            &arp(1, BROADCAST_MAC, PEER_MAC, PEER_IP, [0; 6], OUR_IP),
            2 * SEC,
            &mut out,
        );
        assert_eq!(out.len(), 1, "still answered");
        assert_eq!(t.state(peer()), Some(NeighState::Permanent));
        assert_eq!(t.lladdr(peer()), Some(OTHER_MAC), "not changed by the wire");
        t.poll(3600 * SEC, &mut out);
        assert_eq!(t.state(peer()), Some(NeighState::Permanent));
        // Multicast and broadcast next hops map without resolution.
        let hh = ready(t.resolve(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 251)), 0, &mut out));
        assert_eq!(hh[0..6], [0x01, 0x00, 0x5e, 0, 0, 251]);
        let hh = ready(t.resolve(IpAddr::V4(Ipv4Addr::BROADCAST), 0, &mut out));
        assert_eq!(hh[0..6], BROADCAST_MAC);
        let hh = ready(t.resolve("ff02::1".parse().unwrap(), 0, &mut out));
        assert_eq!(hh, [0x33, 0x33, 0, 0, 0, 1, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]);
    }

    #[test]
    fn resolves_by_ns_to_the_solicited_node_group() {
        let mut t = table();
        let mut out = Vec::new();
        assert!(matches!(
            t.resolve(peer_v6(), 0, &mut out),
            Resolve::Pending
        ));
        assert_eq!(out.len(), 1);
        let ns = &out[0];
        assert_eq!(ns.len(), 86);
        // 33:33:ff + the target's low 24 bits (00:02:00:03 → ff:00:00:03).
        assert_eq!(ns[0..6], [0x33, 0x33, 0xff, 0x02, 0x00, 0x03]);
        assert_eq!(ns[6..14], [2, 0, 0, 0, 0, 1, 0x86, 0xdd]);
        assert_eq!(ns[14..22], [0x60, 0, 0, 0, 0, 32, 58, 255]);
        assert_eq!(ns[22..38], our6());
        assert_eq!(
            ns[38..54],
            [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0x02, 0x00, 0x03]
        );
        assert_eq!(ns[54..58], [135, 0, ns[56], ns[57]]);
        assert_eq!(ns[58..62], [0, 0, 0, 0]);
        assert_eq!(ns[62..78], peer6());
        assert_eq!(
            ns[78..86],
            [1, 1, 2, 0, 0, 0, 0, 1],
            "source link-layer option"
        );
        let pseudo = checksum::pseudo_v6(our6(), ns[38..54].try_into().unwrap(), 58, 32);
        assert_eq!(
            checksum::sum(&ns[54..], pseudo),
            0xffff,
            "checksum verifies"
        );
        // The solicited NA with Override and the target option: REACHABLE.
        let na = ndp(
            OUR_MAC,
            PEER_MAC,
            peer6(),
            our6(),
            NdMsg::Advert {
                target: peer6(),
                flags: NaFlags {
                    router: false,
                    solicited: true,
                    overrides: true,
                },
                target_lladdr: Some(PEER_MAC),
            },
        );
        out.clear();
        assert!(t.input(&na, 10 * MS, &mut out));
        assert!(out.is_empty());
        assert_eq!(t.state(peer_v6()), Some(NeighState::Reachable));
        let hh = ready(t.resolve(peer_v6(), 20 * MS, &mut out));
        assert_eq!(hh, [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]);
        assert_eq!(t.counters().ns_sent, 1);
    }

    #[test]
    fn answers_ns_for_us() {
        let mut t = table();
        let mut out = Vec::new();
        // Multicast NS with a source option: NA solicited + override + target option.
        let ns = ndp(
            solicited_node_mac(our6()),
            PEER_MAC,
            peer6(),
            solicited_node(our6()),
            NdMsg::Solicit {
                target: our6(),
                source_lladdr: Some(PEER_MAC),
            },
        );
        assert!(t.input(&ns, 0, &mut out));
        assert_eq!(out.len(), 1);
        let want = ndp(
            PEER_MAC,
            OUR_MAC,
            our6(),
            peer6(),
            NdMsg::Advert {
                target: our6(),
                flags: NaFlags {
                    router: false,
                    solicited: true,
                    overrides: true,
                },
                target_lladdr: Some(OUR_MAC),
            },
        );
        assert_eq!(out[0], want);
        assert_eq!(out[0][58], 0x60, "S and O flags");
        assert_eq!(
            t.state(peer_v6()),
            Some(NeighState::Stale),
            "sender learned"
        );
        // Unicast NS (a peer's PROBE), no option: S only, no target option.
        out.clear();
        let ns = ndp(
            OUR_MAC,
            PEER_MAC,
            peer6(),
            our6(),
            NdMsg::Solicit {
                target: our6(),
                source_lladdr: None,
            },
        );
        assert!(t.input(&ns, SEC, &mut out));
        let r = parse_frame(&out[0]).unwrap().unwrap();
        assert_eq!(r.eth.dst, PEER_MAC);
        assert_eq!(
            r.msg,
            NeighMsg::Ndp(NdpRepr {
                src: our6(),
                dst: peer6(),
                msg: NdMsg::Advert {
                    target: our6(),
                    flags: NaFlags {
                        router: false,
                        solicited: true,
                        overrides: false
                    },
                    target_lladdr: None,
                },
            })
        );
        // DAD probe: unsolicited NA with override to all-nodes.
        out.clear();
        let dad = ndp(
            solicited_node_mac(our6()),
            OTHER_MAC,
            [0; 16],
            solicited_node(our6()),
            NdMsg::Solicit {
                target: our6(),
                source_lladdr: None,
            },
        );
        assert!(t.input(&dad, SEC, &mut out));
        let r = parse_frame(&out[0]).unwrap().unwrap();
        assert_eq!(r.eth.dst, [0x33, 0x33, 0, 0, 0, 1]);
        assert!(matches!(
            r.msg,
            NeighMsg::Ndp(NdpRepr {
                dst: IPV6_ALL_NODES,
                msg: NdMsg::Advert {
                    flags: NaFlags {
                        solicited: false,
                        overrides: true,
                        ..
                    },
                    target_lladdr: Some(OUR_MAC),
                    ..
                },
                ..
            })
        ));
        assert_eq!(t.counters().ns_answered, 3);
        // NS for another address: ignored.
        out.clear();
        let other = ndp(
            solicited_node_mac(peer6()),
            OTHER_MAC,
            "2001:db8::99".parse::<Ipv6Addr>().unwrap().octets(),
            solicited_node(peer6()),
            NdMsg::Solicit {
                target: peer6(),
                source_lladdr: Some(OTHER_MAC),
            },
        );
        assert!(t.input(&other, SEC, &mut out));
        assert!(out.is_empty());
        // A multicast NS without a source option from a stranger cannot be answered.
        let anon = ndp(
            solicited_node_mac(our6()),
            OTHER_MAC,
            "2001:db8::77".parse::<Ipv6Addr>().unwrap().octets(),
            solicited_node(our6()),
            NdMsg::Solicit {
                target: our6(),
                source_lladdr: None,
            },
        );
        assert!(t.input(&anon, SEC, &mut out));
        assert!(out.is_empty());
        assert_eq!(t.counters().ns_unanswered, 1);
    }

    #[test]
    fn unsolicited_na_does_not_create_and_weak_override_demotes() {
        let mut t = table();
        let mut out = Vec::new();
        let na = |mac: [u8; 6], solicited: bool, overrides: bool| {
            ndp(
                OUR_MAC,
                mac,
                peer6(),
                our6(),
                NdMsg::Advert {
                    target: peer6(),
                    flags: NaFlags {
                        router: false,
                        solicited,
                        overrides,
                    },
                    target_lladdr: Some(mac),
                },
            )
        };
        assert!(t.input(&na(PEER_MAC, true, true), 0, &mut out));
        assert_eq!(t.state(peer_v6()), None, "accept_untracked_na = 0");
        let _ = t.resolve(peer_v6(), 0, &mut out);
        t.input(&na(PEER_MAC, true, true), 0, &mut out);
        assert_eq!(t.state(peer_v6()), Some(NeighState::Reachable));
        // A different address without Override: REACHABLE demoted to STALE, address kept.
        t.input(&na(OTHER_MAC, true, false), SEC, &mut out);
        assert_eq!(t.state(peer_v6()), Some(NeighState::Stale));
        assert_eq!(t.lladdr(peer_v6()), Some(PEER_MAC));
        // Again without Override while STALE: refused.
        t.input(&na(OTHER_MAC, true, false), SEC, &mut out);
        assert_eq!(t.lladdr(peer_v6()), Some(PEER_MAC));
        assert_eq!(t.counters().updates_refused, 1);
        // With Override: taken.
        t.input(&na(OTHER_MAC, false, true), SEC, &mut out);
        assert_eq!(t.lladdr(peer_v6()), Some(OTHER_MAC));
        assert_eq!(t.state(peer_v6()), Some(NeighState::Stale));
        // An NA for our own address is a conflict.
        let mine = ndp(
            OUR_MAC,
            OTHER_MAC,
            peer6(),
            our6(),
            NdMsg::Advert {
                target: our6(),
                flags: NaFlags::default(),
                target_lladdr: Some(OTHER_MAC),
            },
        );
        t.input(&mine, SEC, &mut out);
        assert_eq!(t.counters().addr_conflicts, 1);
    }

    #[test]
    fn invalid_ndp_is_consumed_and_counted() {
        let mut t = table();
        let mut out = Vec::new();
        let good = ndp(
            solicited_node_mac(our6()),
            PEER_MAC,
            peer6(),
            solicited_node(our6()),
            NdMsg::Solicit {
                target: our6(),
                source_lladdr: Some(PEER_MAC),
            },
        );
        let mut bad_ck = good.clone();
        bad_ck[57] ^= 0xff;
        assert!(t.input(&bad_ck, 0, &mut out));
        let mut hop = good.clone();
        hop[21] = 64;
        assert!(t.input(&hop, 0, &mut out));
        assert!(t.input(&good[..70], 0, &mut out));
        let mut bad_arp = arp(1, BROADCAST_MAC, PEER_MAC, PEER_IP, [0; 6], OUR_IP);
        bad_arp[18] = 8;
        assert!(t.input(&bad_arp, 0, &mut out));
        assert!(out.is_empty(), "nothing answered");
        assert!(t.is_empty(), "nothing learned");
        let c = t.counters();
        assert_eq!(
            (
                c.invalid_checksum,
                c.invalid_hop_limit,
                c.invalid_truncated,
                c.invalid_arp_hardware
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(c.invalid(), 4);
        assert_eq!(c.invalid_of(NeighInvalid::HopLimit), 1);
        assert!(t.input(&good, 0, &mut out), "the good one is answered");
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn vlan_request_gets_a_tagged_reply() {
        let mut t = table();
        let mut out = Vec::new();
        let plain = arp(1, BROADCAST_MAC, PEER_MAC, PEER_IP, [0; 6], OUR_IP);
        let mut f = plain[..12].to_vec();
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
        f.extend_from_slice(&plain[12..42]);
        assert!(t.input(&f, 0, &mut out));
        assert_eq!(out[0].len(), 46);
        assert_eq!(out[0][12..16], [0x81, 0x00, 0x00, 0x07]);
        assert_eq!(out[0][16..18], [0x08, 0x06]);
    }

    #[test]
    fn table_limits_and_gc() {
        let mut cfg = NeighConfig::new(OUR_MAC, Some(OUR_IP), None);
        cfg.gc_thresh1 = 2;
        cfg.gc_thresh2 = 3;
        cfg.gc_thresh3 = 4;
        let mut t = NeighTable::new(cfg);
        let mut out = Vec::new();
        let ip = |i: u8| IpAddr::V4(Ipv4Addr::new(198, 18, 1, i));
        for i in 0..4 {
            assert!(matches!(t.resolve(ip(i), 0, &mut out), Resolve::Pending));
        }
        // Full of fresh INCOMPLETE entries: the fifth cannot be created.
        assert!(matches!(t.resolve(ip(9), MS, &mut out), Resolve::Failed));
        assert_eq!(t.counters().table_full, 1);
        // Once they have failed, forced GC makes room.
        for s in 1..=3 {
            t.poll(s * SEC, &mut out);
        }
        assert_eq!(t.counters().failed, 4);
        assert!(matches!(
            t.resolve(ip(9), 4 * SEC, &mut out),
            Resolve::Pending
        ));
        assert!(t.len() <= 4);
        // Periodic GC above gc_thresh1 drops the FAILED ones.
        t.poll(4 * SEC + t.config().reachable_ns, &mut out);
        assert!(t.counters().gc_removed >= 2);
        assert!(t.len() < 4);
    }

    proptest::proptest! {
        #[test]
        fn random_frames_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..120), kind in 0u8..4, now in 0u64..1_000_000_000_000) {
            let mut t = table();
            let mut out = Vec::new();
            let mut f = data;
            if f.len() >= 14 {
                match kind {
                    0 => f[12..14].copy_from_slice(&[0x08, 0x06]),
                    1 => {
                        f[12..14].copy_from_slice(&[0x86, 0xdd]);
                        if f.len() > 21 { f[14] = 0x60; f[20] = 58; f[21] = 255; }
                    }
                    2 => f[0..6].copy_from_slice(&OUR_MAC),
                    _ => {}
                }
            }
            let _ = t.input(&f, now, &mut out);
            t.poll(now, &mut out);
            let _ = t.next_timer_ns();
        }

        #[test]
        fn mutated_valid_frames_never_panic(at in 0usize..86, v in proptest::num::u8::ANY, arp_frame in proptest::bool::ANY) {
            let mut t = table();
            let mut out = Vec::new();
            let mut f = if arp_frame {
                arp(1, BROADCAST_MAC, PEER_MAC, PEER_IP, [0; 6], OUR_IP)
            } else {
                ndp(solicited_node_mac(our6()), PEER_MAC, peer6(), solicited_node(our6()), NdMsg::Solicit { target: our6(), source_lladdr: Some(PEER_MAC) })
            };
            if let Some(b) = f.get_mut(at) { *b = v; }
            let _ = t.input(&f, 0, &mut out);
            t.poll(SEC, &mut out);
            for r in &out {
                proptest::prop_assert!(parse_frame(r).is_ok_and(|p| p.is_some()), "our replies parse");
            }
        }
    }
}
