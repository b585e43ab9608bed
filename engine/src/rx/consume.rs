//! What the sink does with received frames, wherever it runs: in the poller itself, or in
//! an RPS worker the poller steered them to. It counts frames by class, reads latency
//! probes, runs GRO (`--gro`) and writes the capture (`--pcap-out`: the frames, or with
//! GRO the merged packets as a GRO receiver's tcpdump shows them). Frames it is done with
//! go back through `release`, to the poller that owns them.

use std::sync::{Arc, Mutex};

use crate::{
    latency::{
        collect::Collector,
        probe::{self, Found},
    },
    pcap::SharedPcap,
    rx::gro::{Gro, GroConfig, GroCounters, GroPacket},
    stats::RxCounters,
    sys::{monotonic_ns, Frame, UmemArea},
    wire::{self, Classified},
};

/// A received frame in a consumer's hands, with the index of the queue (poller) whose
/// UMEM it belongs to, so it can be read there and handed back there.
#[derive(Debug)]
pub struct Rx {
    /// Index of the owning queue in the consumer's area list.
    pub src: u16,
    /// The frame.
    pub frame: Frame,
    /// Its flow hash, when RPS computed one (GRO's bucket; RFS's key).
    pub hash: Option<u32>,
}

/// The per-thread consumer: classification counters, probes, GRO, capture.
#[derive(Debug)]
pub struct Consumer {
    areas: Vec<Arc<UmemArea>>,
    /// Frames by class: `udp`, `tcp`, `other_ip`, `not_ip`, `malformed` (the poller
    /// counts the frames and bytes it takes from the ring).
    pub counters: RxCounters,
    lat: Option<Arc<Mutex<Collector>>>,
    tap: Option<SharedPcap>,
    gro: Option<Gro<Rx>>,
    found: Vec<Found>,
    out: Vec<GroPacket<Rx>>,
    scratch: Vec<u8>,
}

impl Consumer {
    /// A consumer reading frames of `areas` (indexed by [`Rx::src`]).
    pub fn new(
        areas: Vec<Arc<UmemArea>>,
        lat: Option<Arc<Mutex<Collector>>>,
        tap: Option<SharedPcap>,
        gro: Option<GroConfig>,
    ) -> Self {
        Consumer {
            areas,
            counters: RxCounters::default(),
            lat,
            tap,
            gro: gro.map(Gro::new),
            found: Vec::new(),
            out: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// GRO's counters, if GRO is on.
    pub fn gro_counters(&self) -> Option<GroCounters> {
        self.gro.as_ref().map(|g| *g.counters())
    }

    /// Frames GRO holds (they go back at [`Consumer::end_round`]).
    pub fn held(&self) -> usize {
        self.gro.as_ref().map_or(0, |g| g.held_frames())
    }

    fn bytes<'a>(areas: &'a [Arc<UmemArea>], rx: &'a Rx) -> &'a [u8] {
        areas
            .get(rx.src as usize)
            .map_or(&[], |a| a.bytes(&rx.frame))
    }

    /// Consumes (drains) a batch taken from the rings together: one clock read for its
    /// probes, one capture call for its frames. `release` takes back every frame the
    /// consumer is done with, now or at a later call.
    pub fn consume(&mut self, batch: &mut Vec<Rx>, release: &mut impl FnMut(Rx)) {
        let rx_ns = if self.lat.is_some() {
            monotonic_ns()
        } else {
            0
        };
        // Without GRO the frames are captured as they came; with it, as GRO delivers them.
        if let (Some(t), None) = (&self.tap, &self.gro) {
            if t.wants_more() {
                let ts = wall_ns();
                let areas = &self.areas;
                let _ = t.offer_batch(batch.iter().map(|rx| (ts, Self::bytes(areas, rx))));
            }
        }
        for rx in batch.drain(..) {
            let bytes = Self::bytes(&self.areas, &rx);
            let c = &mut self.counters;
            match wire::classify(bytes) {
                Ok(Classified::Udp { payload, .. }) => {
                    c.udp += 1;
                    if self.lat.is_some() {
                        // classify has parsed the headers: only the payload is read.
                        let p = probe::in_payload(bytes.get(payload..).unwrap_or(&[]));
                        if p != Found::NotProbe {
                            self.found.push(p);
                        }
                    }
                }
                Ok(Classified::Tcp) => c.tcp += 1,
                Ok(Classified::OtherIp) => c.other_ip += 1,
                Ok(Classified::NotIp) => c.not_ip += 1,
                Err(m) => c.malformed[m.index()] += 1,
            }
            match &mut self.gro {
                Some(g) => {
                    let hash = rx.hash;
                    g.receive_with(rx, &self.areas[..], Self::bytes, hash, &mut self.out);
                }
                None => release(rx),
            }
        }
        if let (Some(l), false) = (&self.lat, self.found.is_empty()) {
            // A poisoned lock (a panicked peer thread) still holds valid counts.
            let mut g = l.lock().unwrap_or_else(|e| e.into_inner());
            for p in self.found.drain(..) {
                g.found(p, rx_ns);
            }
        }
        self.deliver(release);
    }

    /// End of a poll round: GRO flushes what it holds (the napi_complete analogue).
    pub fn end_round(&mut self, release: &mut impl FnMut(Rx)) {
        if let Some(g) = &mut self.gro {
            g.flush(&mut self.out);
        }
        self.deliver(release);
    }

    /// Hands GRO's finished packets on: captured if asked, then their frames released.
    fn deliver(&mut self, release: &mut impl FnMut(Rx)) {
        let ts = if self.tap.is_some() && !self.out.is_empty() {
            wall_ns()
        } else {
            0
        };
        for p in self.out.drain(..) {
            match p {
                GroPacket::Single(rx) => {
                    if let Some(t) = &self.tap {
                        if t.wants_more() {
                            let b = Self::bytes(&self.areas, &rx);
                            let _ = t.offer_batch(std::iter::once((ts, b)));
                        }
                    }
                    release(rx);
                }
                GroPacket::Merged(m) => {
                    if let Some(t) = &self.tap {
                        if t.wants_more() {
                            self.scratch.clear();
                            let areas = &self.areas;
                            m.write_to(|r: &Rx| Self::bytes(areas, r), &mut self.scratch);
                            let _ = t.offer_batch(std::iter::once((ts, &self.scratch[..])));
                        }
                    }
                    // GRO keeps the packet's frame vector for the next merge: no
                    // allocation per packet.
                    match &mut self.gro {
                        Some(g) => g.release(m, &mut *release),
                        None => m.into_frames().into_iter().for_each(&mut *release),
                    }
                }
            }
        }
    }
}

/// Wall-clock ns for capture timestamps.
fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
