//! Shared-memory channel between the control process and one dataplane.
//!
//! One file per dataplane (e.g. `/dev/shm/espresso-gw1` or
//! `/run/espresso/gw1.shm`), mode 0600 (looser modes and foreign owners are
//! refused: the command ring carries SA keys), with a versioned header
//! (magic, layout version, geometry, CRC) followed by:
//!
//! - a **command ring** (control → dataplane): add/replace/remove SA
//!   ([`crate::sa::SaParams`] with keys), add/remove [`crate::sa::Policy`],
//!   flush, sync barriers. Records are CRC-32 checked; the dataplane zeroes
//!   each record as it reads it, so keys stay in shared memory only until the
//!   dataplane has taken them (and a restarted dataplane zeroes what its
//!   predecessor left unread).
//! - an **event ring** (dataplane → control): [`crate::sa::SaEvent`]s
//!   (soft/hard expire, sequence exhausted, acquire). A full ring drops the
//!   event and counts it (`events_lost`); lifetimes are also enforced by the
//!   control process from the counters, so a lost event delays nothing.
//! - **counters** the dataplane publishes: per SA slot (packets, bytes, drops
//!   by [`crate::drop::DropReason`], sequence high-water mark) and per worker,
//!   each slot under a seqlock with a CRC.
//! - **control records**: what the control process installed in each slot,
//!   its tunnels (stable ids, admin state) and policies, and a ledger of
//!   outbound sequence numbers by key, so that a restarted control process
//!   can resynchronise without disturbing traffic.
//! - per-worker **tap rings** for the decrypted-traffic tap ([`TapWriter`]).
//!
//! # Liveness and restarts
//! Each side holds an OFD lock on one byte of the file (dataplane: byte 0,
//! control: byte 1). The kernel releases it when the process dies, however
//! it dies, so each side sees at once whether the other is alive; a second
//! dataplane (or control process) for the same region is refused. Each attach
//! bumps that side's generation number; heartbeats (CLOCK_MONOTONIC ns) show
//! a hung peer.
//!
//! - `kill -9` of the control process: the dataplane keeps its SAs and goes on
//!   forwarding. The restarted control process reads its records back,
//!   compares them with the configuration and sends only the differences.
//! - `kill -9` of the dataplane: its successor attaches (generation + 1),
//!   zeroes and drops unread commands, and starts empty; the control process
//!   sees the new generation and sends a flush and every SA and policy again.
//!
//! # Outbound sequence numbers are never reused under one key
//! The dataplane publishes each outbound SA's next sequence number with its
//! CLOCK_MONOTONIC time ([`DataplaneEnd::publish_sa`], at least every few ms).
//! An SA cannot send faster than [`SEQ_RATE_BOUND_PPS`] packets per second, so
//! at any later time `t` its next sequence number is at most
//! `published + SEQ_RATE_BOUND_PPS * (t - published_at)`. When the control
//! process sees the dataplane die (its lock released) it freezes that bound at
//! the time of detection (the SA cannot send once its process is gone) and
//! stores it in the ledger; it re-installs the SA with
//! `initial_seq = bound + SEQ_MARGIN` ([`SEQ_MARGIN`] covers bursts in flight
//! when an SA is removed). With the control process polling every 10 ms and
//! the dataplane publishing every 1 ms the gap is about 1.7 million numbers at
//! the 150 Mpps bound, whatever the actual rate. The alternative, the counter
//! itself living in shared memory, would make the runtime SA depend on this
//! module; the bound needs nothing from the hot path.
//! A replacement of a live outbound SA (same SPI) must carry the counter on:
//! the dataplane installs it with `max(params.initial_seq, old.next_seq())`.
//!
//! # Dataplane side
//! ```no_run
//! use espresso_core::shm::{Command, DataplaneEnd, SaStats, TapDirection, WorkerStats};
//! # fn main() -> Result<(), espresso_core::shm::ShmError> {
//! let mut dp = DataplaneEnd::attach("/dev/shm/espresso-gw1".as_ref())?;
//! dp.set_workers(2);
//! // One tap writer per worker, moved into the worker thread.
//! let mut tap = dp.tap_writer(0)?;
//! // Management thread loop (every ~1 ms):
//! loop {
//!     while let Some(cmd) = dp.next_command()? {
//!         match cmd {
//!             // Upsert by (spi, direction). For a replaced outbound SA use
//!             // initial_seq = max(params.initial_seq, old.next_seq()).
//!             Command::AddSa { slot, params } => { /* build Sa, insert, remember slot */ }
//!             // Remove, then publish the SA's final counters for its slot.
//!             Command::RemoveSa { slot, spi, direction } => { /* remove */ }
//!             Command::AddPolicy(policy) => { /* upsert by policy.id */ }
//!             Command::RemovePolicy { id } => { /* remove */ }
//!             Command::Flush => { /* remove every SA and policy */ }
//!             // An inbound SPI the control plane handed out: ESP for it that
//!             // comes before its AddSa may be held briefly.
//!             Command::ExpectSpi { spi } => { /* expect `spi` */ }
//!         }
//!     }
//!     // For every installed SA (slot from its AddSa):
//!     dp.publish_sa(0, &SaStats { packets: 10, bytes: 1000, seq: 11, ..Default::default() })?;
//!     dp.publish_worker(0, &WorkerStats::default())?;
//!     // Events raised by SAs: dp.push_event(&ev);
//!     dp.heartbeat();
//! #   break;
//! }
//! // In a worker, once per burst:
//! if tap.active() {
//!     let (tunnel_id, packet) = (1u32, &[0x45u8, 0][..]);
//!     if tap.wants(tunnel_id) {
//!         tap.capture(tunnel_id, TapDirection::In, packet);
//!     }
//! }
//! # Ok(()) }
//! ```

mod codec;
mod control_end;
mod dataplane_end;
#[cfg(any(fuzzing, test))]
pub mod fuzz;
pub mod huge;
pub mod keyed;
mod layout;
mod region;
mod ring;
mod seq;
mod slots;
mod tap;

use std::path::PathBuf;

pub use codec::DecodeError;
pub use control_end::{ControlEnd, DataplaneInfo};
pub use dataplane_end::DataplaneEnd;
pub use layout::{Geometry, LAYOUT_VERSION, MAX_DROP_REASONS, TAP_MAX_TUNNELS};
pub use region::{monotonic_ns, Role};
pub use seq::{seq_bound, SEQ_MARGIN, SEQ_RATE_BOUND_PPS};
pub use slots::{
    LedgerEntry, PolicyRecord, RecordState, RefuseReason, SaRecord, SaSlotView, SaStats, SlotError,
    SlotState, TunnelRecord, WorkerStats, WorkerView, MAX_TUNNEL_NAME,
};
pub use tap::{TapDirection, TapPacket, TapWriter, TAP_SNAPLEN};

use crate::sa::{Direction, Policy, SaParams};

/// A command for the dataplane, in the order the control process sent it.
#[derive(Debug)]
pub enum Command {
    /// Install an SA, or replace the one with the same SPI and direction.
    /// `slot` is where its counters go ([`DataplaneEnd::publish_sa`]).
    AddSa {
        /// Counter slot.
        slot: u32,
        /// The SA, keys included.
        params: SaParams,
    },
    /// Remove an SA.
    RemoveSa {
        /// Counter slot it used.
        slot: u32,
        /// SPI.
        spi: u32,
        /// Direction.
        direction: Direction,
    },
    /// Install a policy, or replace the one with the same id.
    AddPolicy(Policy),
    /// Remove a policy.
    RemovePolicy {
        /// Policy id.
        id: u32,
    },
    /// Remove every SA and policy.
    Flush,
    /// An inbound SPI offered to a peer whose SA is not installed yet
    /// ([`ControlEnd::expect_spi`]).
    ExpectSpi {
        /// SPI.
        spi: u32,
    },
}

/// Errors of the shared-memory channel.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// A system call on the region failed.
    #[error("shm {path}: {what}: {source}")]
    Io {
        /// Region path.
        path: PathBuf,
        /// Operation.
        what: &'static str,
        /// OS error.
        source: std::io::Error,
    },
    /// The region file can be read or written by others.
    #[error("shm {path}: mode {mode:04o} is too open (others could read SA keys): must be 0600")]
    Permissions {
        /// Region path.
        path: PathBuf,
        /// Mode found.
        mode: u32,
    },
    /// The region file belongs to another user.
    #[error("shm {path}: owned by uid {uid}, not by us (uid {euid})")]
    Owner {
        /// Region path.
        path: PathBuf,
        /// Owner found.
        uid: u32,
        /// Our effective uid.
        euid: u32,
    },
    /// The path is not a regular file.
    #[error("shm {path}: not a regular file")]
    NotRegular {
        /// Region path.
        path: PathBuf,
    },
    /// The region was made by another layout version and a live process
    /// holds it (without one, attaching replaces the region).
    #[error("shm {path}: layout version {found}, this program speaks version {expected}{}", version_holder(.holder, .expected))]
    Version {
        /// Region path.
        path: PathBuf,
        /// Version in the file.
        found: u64,
        /// Our version.
        expected: u64,
        /// The live process that holds it: its role and the pid it recorded
        /// (None: not known).
        holder: Option<(&'static str, u64)>,
    },
    /// The header is damaged or not ours.
    #[error("shm {path}: {what}")]
    Corrupt {
        /// Region path.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Requested sizes are invalid.
    #[error("shm geometry: {what}")]
    Geometry {
        /// What is wrong.
        what: String,
    },
    /// Another live process holds this role.
    #[error("shm {path}: another {role} process (pid {pid}) is attached")]
    RoleTaken {
        /// Region path.
        path: PathBuf,
        /// Role.
        role: &'static str,
        /// Pid it recorded.
        pid: u64,
    },
    /// A ring has no room now.
    #[error("{ring} ring full: need {need} bytes, {free} free")]
    RingFull {
        /// Ring name.
        ring: &'static str,
        /// Bytes needed.
        need: u64,
        /// Bytes free.
        free: u64,
    },
    /// A record larger than half the ring.
    #[error("{ring} ring: record of {len} bytes too large for capacity {cap}")]
    RecordTooLarge {
        /// Ring name.
        ring: &'static str,
        /// Payload length.
        len: usize,
        /// Ring capacity.
        cap: u64,
    },
    /// A damaged record (bad length or checksum); the ring was drained.
    #[error("{ring} ring: bad record at position {pos}: {why}")]
    BadRecord {
        /// Ring name.
        ring: &'static str,
        /// Position.
        pos: u64,
        /// What is wrong.
        why: String,
    },
    /// A record whose contents do not decode.
    #[error("{ring} ring: record kind {kind:#06x} at position {pos}: {source}")]
    Decode {
        /// Ring name.
        ring: &'static str,
        /// Record kind.
        kind: u16,
        /// Position.
        pos: u64,
        /// Decoding error.
        source: DecodeError,
    },
    /// SA slot index out of range.
    #[error("sa slot {slot} out of range (region has {max})")]
    SlotIndex {
        /// Slot.
        slot: u32,
        /// Number of slots.
        max: u32,
    },
    /// Worker index out of range.
    #[error("worker {worker} out of range (region has {max} worker slots)")]
    WorkerIndex {
        /// Worker.
        worker: u32,
        /// Number of worker slots.
        max: u32,
    },
    /// Record index out of range or name too long.
    #[error("{what}")]
    Record {
        /// What is wrong.
        what: String,
    },
}

/// The end of [`ShmError::Version`]'s message: who holds the region, what to do.
fn version_holder(holder: &Option<(&'static str, u64)>, expected: &u64) -> String {
    match holder {
        Some((role, pid)) => format!(
            ", and a {role} process of that version (pid {pid}) is attached to it: stop the old version's processes; the first process of version {expected} then recreates the region"
        ),
        None => ": stop both processes and remove the file".into(),
    }
}

#[cfg(test)]
mod tests;
