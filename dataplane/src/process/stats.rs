//! The counters file (`--stats-file FILE`): per worker, per SA and totals
//! of drops by reason, as JSON, replaced atomically (written to `FILE.tmp`,
//! then renamed) every `--stats-interval-ms`. Tests and benchmarks read it.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

use crate::drop::DropReason;
use crate::sa::Sad;
use crate::worker::WorkerCounters;

/// One worker's counters.
#[derive(Serialize)]
pub struct WorkerOut {
    /// The core it runs on.
    pub core: usize,
    /// Packets received.
    pub rx: u64,
    /// Packets sent.
    pub tx: u64,
    /// Packets forwarded in the clear.
    pub forwarded: u64,
    /// Packets encapsulated.
    pub encrypted: u64,
    /// Packets decapsulated.
    pub decrypted: u64,
    /// ICMP errors sent.
    pub icmp_errors: u64,
    /// ICMP errors not sent: over the worker's rate limit.
    pub icmp_rate_limited: u64,
    /// Packets handed to the kernel.
    pub to_kernel: u64,
    /// Neighbour resolutions asked for.
    pub resolve_requests: u64,
    /// Packets held while their next hop was being resolved.
    pub neighbour_held: u64,
    /// Packets sent through a stale neighbour entry being resolved again.
    pub neighbour_stale: u64,
    /// Packets fragmented.
    pub fragmented: u64,
    /// Datagrams reassembled from ESP / ESP-in-UDP fragments on the WAN.
    pub reassembled: u64,
    /// ESP held for an announced SPI before its SA was installed.
    pub esp_held: u64,
    /// Held ESP decapsulated once its SA was installed.
    pub esp_held_released: u64,
    /// Drops by reason (non-zero only).
    pub drops: BTreeMap<&'static str, u64>,
}

/// One SA's counters.
#[derive(Serialize)]
pub struct SaOut {
    /// SPI.
    pub spi: u32,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// Tunnel id.
    pub tunnel_id: u32,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Drops by reason (non-zero only).
    pub drops: BTreeMap<&'static str, u64>,
}

/// The whole file.
#[derive(Serialize)]
pub struct StatsOut {
    /// Per worker.
    pub workers: Vec<WorkerOut>,
    /// Drops by reason, all workers.
    pub drops: BTreeMap<&'static str, u64>,
    /// Per SA, inbound then outbound, by SPI.
    pub sas: Vec<SaOut>,
}

fn ld(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// A snapshot of the workers' (`(core, counters)`) and SAs' counters.
pub fn collect(workers: &[(usize, Arc<WorkerCounters>)], sad_in: &Sad, sad_out: &Sad) -> StatsOut {
    let mut total = BTreeMap::new();
    let workers = workers
        .iter()
        .map(|(core, s)| {
            let mut drops = BTreeMap::new();
            for r in DropReason::ALL {
                let v = s.drops.get(*r);
                if v != 0 {
                    drops.insert(r.as_str(), v);
                    *total.entry(r.as_str()).or_insert(0) += v;
                }
            }
            WorkerOut {
                core: *core,
                rx: ld(&s.rx),
                tx: ld(&s.tx),
                forwarded: ld(&s.forwarded),
                encrypted: ld(&s.encrypted),
                decrypted: ld(&s.decrypted),
                icmp_errors: ld(&s.icmp_errors),
                icmp_rate_limited: ld(&s.icmp_rate_limited),
                to_kernel: ld(&s.to_kernel),
                resolve_requests: ld(&s.resolve_requests),
                neighbour_held: ld(&s.neighbour_held),
                neighbour_stale: ld(&s.neighbour_stale),
                fragmented: ld(&s.fragmented),
                reassembled: ld(&s.reassembled),
                esp_held: ld(&s.esp_held),
                esp_held_released: ld(&s.esp_held_released),
                drops,
            }
        })
        .collect();
    let mut sas = Vec::new();
    for (dir, sad) in [("inbound", sad_in), ("outbound", sad_out)] {
        let t = sad.load();
        for sa in t.iter() {
            let c = sa.counters();
            let mut drops = BTreeMap::new();
            for r in DropReason::ALL {
                let v = c.drops(*r);
                if v != 0 {
                    drops.insert(r.as_str(), v);
                }
            }
            sas.push(SaOut {
                spi: sa.spi(),
                direction: dir,
                tunnel_id: sa.tunnel_id(),
                packets: ld(&c.packets),
                bytes: ld(&c.bytes),
                drops,
            });
        }
    }
    sas.sort_by_key(|s| (s.direction, s.spi));
    StatsOut {
        workers,
        drops: total,
        sas,
    }
}

/// Writes `s` to `path` atomically (best effort: the counters are advisory).
pub fn write(path: &Path, s: &StatsOut) {
    let tmp = path.with_extension("tmp");
    if let Ok(text) = serde_json::to_string_pretty(s) {
        if fs::write(&tmp, text).is_ok() {
            let _ = fs::rename(&tmp, path);
        }
    }
}
