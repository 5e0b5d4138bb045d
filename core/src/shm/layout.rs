//! Byte layout of the shared-memory region (one region per dataplane).
//!
//! ```text
//! offset        size                    written by   contents
//! 0             HEADER_SIZE (4 KiB)     both         static geometry (crc), liveness words, tap bitmap
//! cmd_off       RING_HDR + cmd_cap      control      command ring (control -> dataplane)
//! evt_off       RING_HDR + evt_cap      dataplane    event ring (dataplane -> control)
//! sa_ctl_off    max_sas * 128           control      what control installed in each SA slot
//! sa_dp_off     max_sas * 640           dataplane    per-SA counters, sequence high-water marks
//! worker_off    max_workers * 768       dataplane    per-worker totals
//! tunnel_off    max_tunnels * 128       control      tunnel ids, names, admin state
//! policy_off    max_policies * 64       control      policies control installed
//! ledger_off    ledger_entries * 32     control      outbound sequence ledger (by key)
//! tap_off       max_workers * (RING_HDR + tap_cap)   decrypted-traffic tap rings, one per worker
//! ```
//! Every area starts on a 4 KiB boundary. All shared words are accessed as
//! `AtomicU64`; ring payload bytes are ordered by the ring's head/tail atomics.

#![forbid(unsafe_code)]

/// First eight bytes of every region.
pub const MAGIC: [u8; 8] = *b"ESPRSHM\0";
/// Layout version; a region of another version is refused (by both
/// processes, with a message that names both versions).
/// 2: drop-reason arrays 32 -> 64 wide, SA and worker counter slots 48 -> 80
/// words, worker slots carry ICMP and neighbour counters.
/// 3: command kind 8 (`ExpectSpi`: an inbound SPI announced before its SA),
/// worker slots 80 -> 96 words carrying the held-ESP counters.
pub const LAYOUT_VERSION: u64 = 3;
/// Size of the header page.
pub const HEADER_SIZE: usize = 4096;
/// Width of the per-SA and per-worker drop counter arrays (>= `DropReason::COUNT`).
pub const MAX_DROP_REASONS: usize = 64;
/// Tunnel ids below this can be tapped (bitmap size).
pub const TAP_MAX_TUNNELS: u32 = 4096;
/// Bytes in front of each ring's data area (head and tail on their own cache lines).
pub const RING_HDR: usize = 128;

const _: () = assert!(crate::drop::DropReason::COUNT <= MAX_DROP_REASONS);

// Header words (index into the header as `[AtomicU64]`).
pub(crate) mod hw {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 1;
    pub const TOTAL_SIZE: usize = 2;
    pub const MAX_SAS: usize = 3;
    pub const MAX_WORKERS: usize = 4;
    pub const MAX_TUNNELS: usize = 5;
    pub const MAX_POLICIES: usize = 6;
    pub const LEDGER_ENTRIES: usize = 7;
    pub const DROP_REASONS: usize = 8;
    pub const CMD_OFF: usize = 9;
    pub const CMD_CAP: usize = 10;
    pub const EVT_OFF: usize = 11;
    pub const EVT_CAP: usize = 12;
    pub const SA_CTL_OFF: usize = 13;
    pub const SA_DP_OFF: usize = 14;
    pub const WORKER_OFF: usize = 15;
    pub const TUNNEL_OFF: usize = 16;
    pub const POLICY_OFF: usize = 17;
    pub const LEDGER_OFF: usize = 18;
    pub const TAP_OFF: usize = 19;
    pub const TAP_CAP: usize = 20;
    pub const CREATED_NS: usize = 21;
    /// Number of static words covered by the header checksum.
    pub const STATIC_WORDS: usize = 31;
    pub const STATIC_CRC: usize = 31;

    // Control process (cache line 4).
    pub const CP_GENERATION: usize = 32;
    pub const CP_PID: usize = 33;
    pub const CP_HEARTBEAT: usize = 34;
    pub const CP_SYNCED_DP_GEN: usize = 35;
    pub const CP_LEDGER_NEXT: usize = 36;
    pub const CP_SYNC_TOKEN: usize = 37;
    /// Written by the dataplane at attach (CLOCK_MONOTONIC ns), before its generation.
    pub const DP_ATTACHED_NS: usize = 38;

    // Dataplane process (cache line 5).
    pub const DP_GENERATION: usize = 40;
    pub const DP_PID: usize = 41;
    pub const DP_HEARTBEAT: usize = 42;
    pub const DP_EVENTS_LOST: usize = 43;
    pub const DP_TAP_LOST: usize = 44;
    pub const DP_CMD_CORRUPT: usize = 45;
    pub const DP_SYNC_TOKEN: usize = 46;
    pub const DP_WORKERS: usize = 47;

    // Tap control (cache lines 6..).
    pub const TAP_ACTIVE: usize = 48;
    pub const TAP_BITMAP: usize = 64;
    pub const TAP_BITMAP_WORDS: usize = (super::TAP_MAX_TUNNELS / 64) as usize;
}

/// Words per control-written SA record.
pub const SA_CTL_WORDS: usize = 16;
/// Words per dataplane-written SA counter slot.
pub const SA_DP_WORDS: usize = 80;
/// Words per worker slot.
pub const WORKER_WORDS: usize = 96;
/// Words per tunnel record.
pub const TUNNEL_WORDS: usize = 16;
/// Words per policy record.
pub const POLICY_WORDS: usize = 8;
/// Words per ledger entry.
pub const LEDGER_WORDS: usize = 4;

const _: () = assert!(hw::TAP_BITMAP + hw::TAP_BITMAP_WORDS <= HEADER_SIZE / 8);

/// Sizes of a region, fixed when it is created (an attaching process uses the
/// sizes found in the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// SA slots (each SA, one direction, takes one).
    pub max_sas: u32,
    /// Worker slots (counters and tap rings).
    pub max_workers: u32,
    /// Tunnel records (tunnel ids are `1..=max_tunnels`, at most [`TAP_MAX_TUNNELS`] - 1).
    pub max_tunnels: u32,
    /// Policy records.
    pub max_policies: u32,
    /// Outbound sequence ledger entries.
    pub ledger_entries: u32,
    /// Command ring data bytes (multiple of 16).
    pub cmd_ring_bytes: u64,
    /// Event ring data bytes (multiple of 16).
    pub event_ring_bytes: u64,
    /// Tap ring data bytes per worker (multiple of 16).
    pub tap_ring_bytes: u64,
}

impl Default for Geometry {
    fn default() -> Self {
        Geometry {
            max_sas: 4096,
            max_workers: 16,
            max_tunnels: 1024,
            max_policies: 16384,
            ledger_entries: 4096,
            cmd_ring_bytes: 1 << 20,
            event_ring_bytes: 256 << 10,
            tap_ring_bytes: 512 << 10,
        }
    }
}

/// Byte offsets of every area, computed from a [`Geometry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Offsets {
    pub cmd_off: u64,
    pub evt_off: u64,
    pub sa_ctl_off: u64,
    pub sa_dp_off: u64,
    pub worker_off: u64,
    pub tunnel_off: u64,
    pub policy_off: u64,
    pub ledger_off: u64,
    pub tap_off: u64,
    pub total: u64,
}

fn page(x: u64) -> u64 {
    x.div_ceil(4096) * 4096
}

impl Geometry {
    /// Checks the sizes; returns the reason for the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        let ring = |name: &str, v: u64| -> Result<(), String> {
            if v < 4096 || !v.is_multiple_of(16) || v > (1 << 32) {
                Err(format!(
                    "{name} = {v}: must be a multiple of 16 between 4096 and 2^32"
                ))
            } else {
                Ok(())
            }
        };
        ring("cmd_ring_bytes", self.cmd_ring_bytes)?;
        ring("event_ring_bytes", self.event_ring_bytes)?;
        ring("tap_ring_bytes", self.tap_ring_bytes)?;
        let count = |name: &str, v: u32, max: u32| -> Result<(), String> {
            if v == 0 || v > max {
                Err(format!("{name} = {v}: must be 1..={max}"))
            } else {
                Ok(())
            }
        };
        count("max_sas", self.max_sas, 1 << 22)?;
        count("max_workers", self.max_workers, 256)?;
        count("max_tunnels", self.max_tunnels, TAP_MAX_TUNNELS - 1)?;
        count("max_policies", self.max_policies, 1 << 22)?;
        count("ledger_entries", self.ledger_entries, 1 << 22)?;
        Ok(())
    }

    pub(crate) fn offsets(&self) -> Offsets {
        let mut at = HEADER_SIZE as u64;
        let mut take = |size: u64| {
            let off = at;
            at = page(at + size);
            off
        };
        let cmd_off = take(RING_HDR as u64 + self.cmd_ring_bytes);
        let evt_off = take(RING_HDR as u64 + self.event_ring_bytes);
        let sa_ctl_off = take(u64::from(self.max_sas) * (SA_CTL_WORDS as u64 * 8));
        let sa_dp_off = take(u64::from(self.max_sas) * (SA_DP_WORDS as u64 * 8));
        let worker_off = take(u64::from(self.max_workers) * (WORKER_WORDS as u64 * 8));
        let tunnel_off = take(u64::from(self.max_tunnels) * (TUNNEL_WORDS as u64 * 8));
        let policy_off = take(u64::from(self.max_policies) * (POLICY_WORDS as u64 * 8));
        let ledger_off = take(u64::from(self.ledger_entries) * (LEDGER_WORDS as u64 * 8));
        let tap_off = take(u64::from(self.max_workers) * (RING_HDR as u64 + self.tap_ring_bytes));
        Offsets {
            cmd_off,
            evt_off,
            sa_ctl_off,
            sa_dp_off,
            worker_off,
            tunnel_off,
            policy_off,
            ledger_off,
            tap_off,
            total: at,
        }
    }
}
