//! One stream's description, the same whether it comes from `skiff gen`'s flags or from a
//! `[[stream]]` table of a profile file, and its resolution into what the engine runs.
//!
//! Every field is kept as the user wrote it (a string) until [`StreamDef::resolve`], which
//! names the field in its error, so a profile error can point at the field's line.

use std::{
    net::{IpAddr, Ipv6Addr},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use skiff_engine::{
    gen::{
        rate::{Layer, Rate},
        replay::{ReplayFrame, ReplayTiming},
        size::SizeSpec,
        vary::{AddrRange, PortRange, Variation, VaryMode},
    },
    tx::qdisc::tos_to_priority,
    wire::{
        template::{Payload, TemplateKind, TemplateSpec, Vlan},
        FCS_LEN,
    },
};

use crate::common::{parse_count, parse_duration};

/// A stream as written: every field optional, every value a string. The same struct is
/// `skiff gen`'s stream flags (clap) and a profile's `[[stream]]` table.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StreamDef {
    /// Packet template: udp4, udp6, tcp-syn4, tcp-syn6, icmp4, icmp6.
    #[arg(long, help_heading = "Stream")]
    pub template: Option<String>,
    /// Frame size(s), FCS included (RFC 2544): 64 | 64-1518 (uniform) | imix (64:7,594:4,1518:1) | SIZE:WEIGHT,...
    /// Default: 64 (the template's smallest frame if larger).
    #[arg(long, help_heading = "Stream")]
    pub size: Option<String>,
    /// Payload: zero | pattern (0,1,2,...) | text:STRING | hex:BYTES.
    #[arg(long, help_heading = "Stream")]
    pub payload: Option<String>,
    /// Source address, or a range to vary over: 198.18.0.1 | 198.18.0.1-198.18.0.99 | 198.18.0.0/24 (IPv6 alike).
    /// Default: the interface's IPv4 address; 2001:2::1 for IPv6 (RFC 5180).
    #[arg(long, help_heading = "Stream")]
    pub src_ip: Option<String>,
    /// Destination address or range (as --src-ip). IPv6 default: 2001:2::2.
    #[arg(long, help_heading = "Stream")]
    pub dst_ip: Option<String>,
    /// UDP/TCP source port or range (9000-9099); the ICMP echo identifier. Default 9000.
    #[arg(long, help_heading = "Stream")]
    pub src_port: Option<String>,
    /// UDP/TCP destination port or range. Default 9000 (skiff sink matches 9000-9099).
    #[arg(long, help_heading = "Stream")]
    pub dst_port: Option<String>,
    /// N flows: source ports --src-port .. --src-port+N-1 (shorthand for a range).
    #[arg(long, help_heading = "Stream")]
    pub flows: Option<String>,
    /// How ranges are walked: inc (each field steps, like pktgen's *_INC) or random.
    #[arg(long, help_heading = "Stream")]
    pub vary: Option<String>,
    /// Seed for random variation and uniform sizes (same seed, same frames).
    #[arg(long, help_heading = "Stream")]
    pub seed: Option<String>,
    /// 802.1Q VLAN ID (0..=4094).
    #[arg(long, help_heading = "Stream")]
    pub vlan: Option<String>,
    /// 802.1Q priority (PCP, 0..=7), with --vlan.
    #[arg(long, help_heading = "Stream")]
    pub vlan_prio: Option<String>,
    /// DSCP (0..=63); also picks the prio qdisc's band, as pfifo_fast does from the TOS.
    #[arg(long, help_heading = "Stream")]
    pub dscp: Option<String>,
    /// IPv4 TTL / IPv6 hop limit. Default 64.
    #[arg(long, help_heading = "Stream")]
    pub ttl: Option<String>,
    /// The stream's name in reports.
    #[arg(long, help_heading = "Stream")]
    pub name: Option<String>,
    /// Stop after this many frames in total (e.g. 1000, 10k, 2M), over all queues.
    #[arg(long, help_heading = "Amount and rate")]
    pub count: Option<String>,
    /// Stop after this long (10, 10s, 500ms). With --rate and no --count: exactly ⌊rate·duration⌋ frames.
    /// Without --count or --duration: until Ctrl-C.
    #[arg(long, help_heading = "Amount and rate")]
    pub duration: Option<String>,
    /// Total rate over all queues: 250kpps, 1.5Mpps, 100k (packets/s) or 10Gbit, 400Mbit (bits/s at --rate-layer).
    /// Default: as fast as possible.
    #[arg(long, help_heading = "Amount and rate")]
    pub rate: Option<String>,
    /// Replay a pcap/pcapng capture instead of a template.
    #[arg(long, help_heading = "Replay")]
    pub pcap_in: Option<String>,
    /// Replay timing: original (the capture's gaps) or top (as fast as possible). With --rate: that rate.
    #[arg(long, help_heading = "Replay")]
    pub replay_timing: Option<String>,
    /// Times to send the capture (0 = until stopped). Default 1.
    #[arg(long, help_heading = "Replay")]
    pub loops: Option<String>,
    /// Rewrite the replayed frames' MACs to this interface's and --dst-mac's (or ARP's), and
    /// the IPv4 addresses to --src-ip/--dst-ip when given (checksums updated).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", help_heading = "Replay")]
    pub rewrite: Option<String>,
}

/// The field names a profile's `[[stream]]` table may use (the flags' names, with `_`).
pub const FIELDS: &[&str] = &[
    "name",
    "template",
    "size",
    "src_ip",
    "dst_ip",
    "src_port",
    "dst_port",
    "flows",
    "vary",
    "seed",
    "vlan",
    "vlan_prio",
    "dscp",
    "ttl",
    "payload",
    "rate",
    "count",
    "duration",
    "pcap_in",
    "replay_timing",
    "loops",
    "rewrite",
];

impl StreamDef {
    /// Sets a field by its name; false for an unknown name.
    pub fn set(&mut self, field: &str, v: String) -> bool {
        match self.slot(field) {
            Some(slot) => {
                *slot = Some(v);
                true
            }
            None => false,
        }
    }

    /// Whether a field was given.
    pub fn given(&self, field: &str) -> bool {
        self.clone().slot(field).is_some_and(|s| s.is_some())
    }

    fn slot(&mut self, field: &str) -> Option<&mut Option<String>> {
        Some(match field {
            "name" => &mut self.name,
            "template" => &mut self.template,
            "size" => &mut self.size,
            "src_ip" => &mut self.src_ip,
            "dst_ip" => &mut self.dst_ip,
            "src_port" => &mut self.src_port,
            "dst_port" => &mut self.dst_port,
            "flows" => &mut self.flows,
            "vary" => &mut self.vary,
            "seed" => &mut self.seed,
            "vlan" => &mut self.vlan,
            "vlan_prio" => &mut self.vlan_prio,
            "dscp" => &mut self.dscp,
            "ttl" => &mut self.ttl,
            "payload" => &mut self.payload,
            "rate" => &mut self.rate,
            "count" => &mut self.count,
            "duration" => &mut self.duration,
            "pcap_in" => &mut self.pcap_in,
            "replay_timing" => &mut self.replay_timing,
            "loops" => &mut self.loops,
            "rewrite" => &mut self.rewrite,
            _ => return None,
        })
    }
}

/// A field that did not resolve: which, and why.
#[derive(Debug)]
pub struct FieldError {
    pub field: &'static str,
    pub msg: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.msg)
    }
}

fn ferr(field: &'static str, msg: impl std::fmt::Display) -> FieldError {
    FieldError {
        field,
        msg: msg.to_string(),
    }
}

/// What the interface and the run give every stream.
#[derive(Debug, Clone)]
pub struct Context {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// The interface's IPv4 address, the default IPv4 source.
    pub iface_ipv4: Option<[u8; 4]>,
    pub layer: Layer,
    /// Largest frame the interface takes, FCS included, without and with a VLAN tag.
    pub max_size: usize,
    /// Largest frame a UMEM frame holds (no FCS).
    pub umem_room: usize,
    /// Replay: the largest frame the MTU allows (no FCS), tagged frames 4 more.
    pub mtu: usize,
}

/// Where a resolved stream's frames come from.
#[derive(Debug, Clone)]
pub enum Kind {
    Synth {
        spec: TemplateSpec,
        var: Variation,
        sizes: SizeSpec,
        seed: u64,
    },
    Replay {
        frames: Arc<[ReplayFrame]>,
        timing: ReplayTiming,
        loops: Option<u64>,
        /// Frames that cannot be sent: larger than the MTU allows or a UMEM frame holds,
        /// or shorter than an Ethernet header.
        skipped_oversize: u64,
        /// Frames the capture holds only in part (captured length < original length).
        snap_cut: u64,
    },
}

/// A stream ready to run.
#[derive(Debug, Clone)]
pub struct StreamPlan {
    pub name: String,
    pub kind: Kind,
    pub rate: Option<Rate>,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub priority: u8,
    /// Mean frame length (no FCS), for a bit rate's packet rate and the ideal gap.
    pub mean_len: f64,
    /// Largest frame length (no FCS): a token bucket must hold at least one.
    pub max_len: usize,
    /// What the frames are, in a few words.
    pub describe: String,
    /// The count is ⌊rate · duration⌋, not given.
    pub count_from_rate: bool,
}

impl StreamPlan {
    /// Whether its frames carry departure times (a replay at original timing): only a
    /// qdisc that honours them (fq) may carry it.
    pub fn has_departure_times(&self) -> bool {
        matches!(
            self.kind,
            Kind::Replay {
                timing: ReplayTiming::Original,
                ..
            }
        )
    }

    /// The requested packet rate.
    pub fn requested_pps(&self) -> Option<f64> {
        self.rate.map(|r| match r {
            Rate::Pps(p) => p,
            Rate::Bits { .. } => r.pps_for(self.mean_len.round() as usize),
        })
    }
}

/// RFC 5180's IPv6 benchmarking prefix 2001:2::/48, the IPv6 twin of 198.18.0.0/15.
const V6_SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const V6_DST: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

fn num<T: std::str::FromStr>(
    field: &'static str,
    v: &Option<String>,
    what: &str,
) -> Result<Option<T>, FieldError> {
    v.as_deref()
        .map(|s| {
            s.trim()
                .parse::<T>()
                .map_err(|_| ferr(field, format!("{s:?} is not {what}")))
        })
        .transpose()
}

impl StreamDef {
    /// Resolves the stream (stream number `index`, for its default name and seed).
    pub fn resolve(&self, index: usize, ctx: &Context) -> Result<StreamPlan, FieldError> {
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("stream{index}"));
        let rate = self
            .rate
            .as_deref()
            .map(|s| Rate::parse(s, ctx.layer).map_err(|e| ferr("rate", e)))
            .transpose()?;
        let count = self
            .count
            .as_deref()
            .map(|s| parse_count(s).map_err(|e| ferr("count", format!("{e:#}"))))
            .transpose()?;
        if count == Some(0) {
            return Err(ferr("count", "0: nothing to send"));
        }
        let duration = self
            .duration
            .as_deref()
            .map(|s| parse_duration(s).map_err(|e| ferr("duration", format!("{e:#}"))))
            .transpose()?;
        let dscp: u8 = num("dscp", &self.dscp, "a DSCP value (0..=63)")?.unwrap_or(0);
        if dscp > 63 {
            return Err(ferr("dscp", format!("{dscp}: 0..=63")));
        }
        let priority = tos_to_priority(dscp << 2);

        if let Some(path) = &self.pcap_in {
            return self.resolve_replay(
                name,
                PathBuf::from(path),
                rate,
                count,
                duration,
                priority,
                ctx,
            );
        }
        for (f, v) in [
            ("replay_timing", &self.replay_timing),
            ("loops", &self.loops),
            ("rewrite", &self.rewrite),
        ] {
            if v.is_some() {
                return Err(ferr(f, "only with pcap_in (--pcap-in)"));
            }
        }

        let kind = match self.template.as_deref() {
            None => TemplateKind::Udp4,
            Some(t) => TemplateKind::parse(t).ok_or_else(|| {
                ferr(
                    "template",
                    format!("unknown template {t:?}: udp4, udp6, tcp-syn4, tcp-syn6, icmp4, icmp6"),
                )
            })?,
        };
        let v6 = kind.is_v6();
        let parse_range = |field: &'static str, s: &str| -> Result<AddrRange, FieldError> {
            let r = AddrRange::parse(s).map_err(|e| ferr(field, e))?;
            if r.is_v6() != v6 {
                return Err(ferr(
                    field,
                    format!(
                        "{s:?} is IPv{}, the {} template IPv{}",
                        if r.is_v6() { 6 } else { 4 },
                        kind.name(),
                        if v6 { 6 } else { 4 }
                    ),
                ));
            }
            Ok(r)
        };
        let src_range = self
            .src_ip
            .as_deref()
            .map(|s| parse_range("src_ip", s))
            .transpose()?;
        let dst_range = self
            .dst_ip
            .as_deref()
            .map(|s| parse_range("dst_ip", s))
            .transpose()?;
        let src_ip = match &src_range {
            Some(r) => r.first(),
            None if v6 => IpAddr::V6(V6_SRC),
            None => IpAddr::from(ctx.iface_ipv4.ok_or_else(|| {
                ferr("src_ip", "the interface has no IPv4 address; give --src-ip")
            })?),
        };
        let dst_ip = match &dst_range {
            Some(r) => r.first(),
            None if v6 => IpAddr::V6(V6_DST),
            None => return Err(ferr("dst_ip", "give --dst-ip (the receiver's address)")),
        };
        let port =
            |field: &'static str, v: &Option<String>| -> Result<Option<PortRange>, FieldError> {
                v.as_deref()
                    .map(|s| PortRange::parse(s).map_err(|e| ferr(field, e)))
                    .transpose()
            };
        let src_ports = port("src_port", &self.src_port)?;
        let dst_ports = port("dst_port", &self.dst_port)?;
        let src_port = src_ports.map_or(9000, |p| p.lo);
        let dst_port = dst_ports.map_or(9000, |p| p.lo);
        let flows: Option<u32> = num("flows", &self.flows, "a number of flows")?;
        let src_ports = match flows {
            Some(0) => return Err(ferr("flows", "0: at least one flow")),
            Some(n) => {
                if src_ports.is_some_and(|p| p.hi > p.lo) {
                    return Err(ferr(
                        "flows",
                        "give --flows or a --src-port range, not both",
                    ));
                }
                Some(Variation::flows(n, src_port).map_err(|e| ferr("flows", e))?)
            }
            None => src_ports,
        };
        let seed: u64 = num("seed", &self.seed, "a number")?.unwrap_or(index as u64 + 1);
        let mode = match self.vary.as_deref() {
            None | Some("inc") | Some("increment") => VaryMode::Increment,
            Some("random") | Some("rand") => VaryMode::Random { seed },
            Some(o) => return Err(ferr("vary", format!("{o:?}: inc or random"))),
        };
        let multi = |r: &Option<PortRange>| r.filter(|p| p.hi > p.lo);
        let var = Variation {
            src_ip: src_range.filter(|r| r.len() > 1),
            dst_ip: dst_range.filter(|r| r.len() > 1),
            src_port: multi(&src_ports),
            dst_port: multi(&dst_ports),
            mode,
        };
        let vlan_id: Option<u16> = num("vlan", &self.vlan, "a VLAN ID (0..=4094)")?;
        let pcp: u8 = num("vlan_prio", &self.vlan_prio, "a priority (0..=7)")?.unwrap_or(0);
        if pcp > 7 {
            return Err(ferr("vlan_prio", format!("{pcp}: 0..=7")));
        }
        if vlan_id.is_none() && self.vlan_prio.is_some() {
            return Err(ferr("vlan_prio", "only with --vlan"));
        }
        let vlan = match vlan_id {
            Some(id) if id > 4094 => return Err(ferr("vlan", format!("{id}: 0..=4094"))),
            Some(id) => Some(Vlan { id, pcp }),
            None => None,
        };
        let ttl: u8 = num("ttl", &self.ttl, "a TTL (1..=255)")?.unwrap_or(64);
        if ttl == 0 {
            return Err(ferr("ttl", "0: 1..=255"));
        }
        let payload = match self.payload.as_deref() {
            None => Payload::Zero,
            Some(p) => Payload::parse(p).map_err(|e| ferr("payload", e))?,
        };
        let spec = TemplateSpec {
            kind,
            dst_mac: ctx.dst_mac,
            src_mac: ctx.src_mac,
            vlan,
            src_ip,
            dst_ip,
            src_port,
            dst_port,
            dscp,
            ttl,
            payload,
        };
        spec.validate().map_err(|e| ferr("template", e))?;
        var.validate(&spec).map_err(|e| ferr("src_port", e))?;
        let sizes = match self.size.as_deref() {
            None => SizeSpec::Fixed(spec.min_size().max(64)),
            Some(s) => SizeSpec::parse(s).map_err(|e| ferr("size", e))?,
        };
        if let SizeSpec::Fixed(n) = sizes {
            if n < spec.min_size() {
                return Err(ferr(
                    "size",
                    format!(
                        "{n} is below the {} template's smallest frame, {} bytes (FCS included)",
                        kind.name(),
                        spec.min_size()
                    ),
                ));
            }
        }
        let max_allowed = ctx.max_size
            + if vlan.is_some() {
                skiff_engine::wire::VLAN_HLEN
            } else {
                0
            };
        if sizes.max() > max_allowed {
            return Err(ferr("size", format!("{} is larger than the interface's MTU allows: {max_allowed} (MTU + 14 Ethernet{} + 4 FCS)", sizes.max(), if vlan.is_some() { " + 4 VLAN" } else { "" })));
        }
        if sizes.max() - FCS_LEN > ctx.umem_room {
            return Err(ferr(
                "size",
                format!(
                    "{} does not fit a UMEM frame ({} bytes of room); use --frame-size 4096",
                    sizes.max(),
                    ctx.umem_room
                ),
            ));
        }
        let mean_len = mean_size(&sizes, spec.min_size()) - FCS_LEN as f64;
        let max_len = sizes.max().max(spec.min_size()) - FCS_LEN;
        let describe = format!(
            "{} {}{}{}",
            kind.name(),
            sizes.describe(),
            vlan.map(|v| format!(" vlan {}", v.id)).unwrap_or_default(),
            if var.is_empty() {
                String::new()
            } else {
                " with field variation".into()
            }
        );
        Ok(StreamPlan {
            name,
            kind: Kind::Synth {
                spec,
                var,
                sizes,
                seed,
            },
            rate,
            count,
            duration,
            priority,
            mean_len,
            max_len,
            describe,
            count_from_rate: false,
        })
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the resolved fields of one stream"
    )]
    fn resolve_replay(
        &self,
        name: String,
        path: PathBuf,
        rate: Option<Rate>,
        count: Option<u64>,
        duration: Option<Duration>,
        priority: u8,
        ctx: &Context,
    ) -> Result<StreamPlan, FieldError> {
        for (f, v) in [
            ("template", &self.template),
            ("size", &self.size),
            ("flows", &self.flows),
            ("vary", &self.vary),
            ("vlan", &self.vlan),
            ("payload", &self.payload),
            ("src_port", &self.src_port),
            ("dst_port", &self.dst_port),
        ] {
            if v.is_some() {
                return Err(ferr(
                    f,
                    "not with pcap_in: a replay sends the capture's frames",
                ));
            }
        }
        let timing = match (self.replay_timing.as_deref(), rate) {
            (None, None) | (Some("original"), None) => ReplayTiming::Original,
            (None, Some(_)) | (Some("top"), None) => ReplayTiming::Unpaced,
            (Some("original"), Some(_)) => {
                return Err(ferr(
                    "replay_timing",
                    "original timing and a rate exclude each other",
                ))
            }
            (Some("top"), Some(_)) => {
                return Err(ferr(
                    "replay_timing",
                    "top speed and a rate exclude each other",
                ))
            }
            (Some(o), _) => {
                return Err(ferr(
                    "replay_timing",
                    format!("{o:?}: original or top (or give a rate)"),
                ))
            }
        };
        let loops: Option<u64> = match self.loops.as_deref() {
            None => Some(1),
            Some("0") | Some("inf") | Some("forever") => None,
            Some(s) => {
                Some(parse_count(s).map_err(|e| ferr("loops", format!("{e:#} (0 = forever)")))?)
            }
        };
        let rewrite = match self.rewrite.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(o) => return Err(ferr("rewrite", format!("{o:?}: true or false"))),
        };
        let src_ip = self
            .src_ip
            .as_deref()
            .map(|s| {
                skiff_engine::wire::parse_ipv4(s).ok_or_else(|| {
                    ferr(
                        "src_ip",
                        format!("{s:?}: a replay rewrites to one IPv4 address"),
                    )
                })
            })
            .transpose()?;
        let dst_ip = self
            .dst_ip
            .as_deref()
            .map(|s| {
                skiff_engine::wire::parse_ipv4(s).ok_or_else(|| {
                    ferr(
                        "dst_ip",
                        format!("{s:?}: a replay rewrites to one IPv4 address"),
                    )
                })
            })
            .transpose()?;
        if !rewrite && (src_ip.is_some() || dst_ip.is_some()) {
            return Err(ferr(
                "rewrite",
                "--src-ip/--dst-ip with --pcap-in rewrite addresses: add --rewrite",
            ));
        }
        // A capture of up to 1M frames is loaded in memory (at most ~1.5 GB of 1518-byte
        // frames; a typical test capture is far smaller).
        const MAX_FRAMES: usize = 1 << 20;
        let records =
            skiff_engine::pcap::read_all(&path, MAX_FRAMES).map_err(|e| ferr("pcap_in", e))?;
        if records.is_empty() {
            return Err(ferr("pcap_in", format!("{}: no frames", path.display())));
        }
        let t0 = records.iter().map(|r| r.ts_ns).min().unwrap_or(0);
        let mut frames = Vec::with_capacity(records.len());
        let mut skipped = 0u64;
        let mut cut = 0u64;
        let mut bytes = 0u64;
        for r in records {
            let mut data = r.data;
            let limit = ctx.mtu
                + skiff_engine::wire::ETH_HLEN
                + if skiff_engine::gen::replay::is_vlan_tagged(&data) {
                    skiff_engine::wire::VLAN_HLEN
                } else {
                    0
                };
            if data.len() > limit.min(ctx.umem_room) || data.len() < skiff_engine::wire::ETH_HLEN {
                skipped += 1;
                continue;
            }
            if (r.orig_len as usize) > data.len() {
                cut += 1;
            }
            if rewrite {
                skiff_engine::gen::replay::rewrite(
                    &mut data,
                    ctx.src_mac,
                    ctx.dst_mac,
                    src_ip,
                    dst_ip,
                );
            }
            bytes += data.len() as u64;
            frames.push(ReplayFrame {
                offset_ns: r.ts_ns.saturating_sub(t0),
                data,
            });
        }
        if frames.is_empty() {
            return Err(ferr("pcap_in", format!("{}: none of its {skipped} frames can be sent (each larger than the MTU allows or than a UMEM frame holds, or shorter than an Ethernet header)", path.display())));
        }
        let max_len = frames.iter().map(|f| f.data.len()).max().unwrap_or(0);
        let mean_len = bytes as f64 / frames.len() as f64;
        let describe = format!(
            "replay of {} ({} frames{})",
            path.display(),
            frames.len(),
            if skipped > 0 {
                format!(", {skipped} over the MTU skipped")
            } else {
                String::new()
            }
        );
        Ok(StreamPlan {
            name,
            kind: Kind::Replay {
                frames: frames.into(),
                timing,
                loops,
                skipped_oversize: skipped,
                snap_cut: cut,
            },
            rate,
            count,
            duration,
            priority,
            mean_len,
            max_len,
            describe,
            count_from_rate: false,
        })
    }
}

/// Mean size (FCS included) of a size distribution, each size raised to `min`.
fn mean_size(s: &SizeSpec, min: usize) -> f64 {
    match s {
        SizeSpec::Fixed(n) => (*n).max(min) as f64,
        SizeSpec::Uniform { lo, hi } => {
            let n = (hi - lo + 1) as f64;
            (*lo..=*hi).map(|x| x.max(min) as f64).sum::<f64>() / n
        }
        SizeSpec::Weighted(w) => {
            let total: f64 = w.iter().map(|&(_, k)| k as f64).sum();
            w.iter()
                .map(|&(s, k)| s.max(min) as f64 * k as f64)
                .sum::<f64>()
                / total
        }
    }
}
