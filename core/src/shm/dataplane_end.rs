//! The dataplane's end of the channel: commands in, counters and events out.

#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::codec::{
    self, Reader, Writer, CMD_ADD_POLICY, CMD_ADD_SA, CMD_EXPECT_SPI, CMD_FLUSH, CMD_REMOVE_POLICY,
    CMD_REMOVE_SA, CMD_SYNC, EVT_SA,
};
use super::layout::{hw, Geometry, SA_DP_WORDS, WORKER_WORDS};
use super::region::{self, monotonic_ns, Mapping, Role};
use super::ring::Ring;
use super::slots::{
    encode_sa_slot, encode_worker, seq_write, RefuseReason, SaSlotView, SaStats, SlotState,
    WorkerStats, WorkerView, SA_DP_DATA, WORKER_DATA,
};
use super::tap::TapWriter;
use super::{Command, ShmError};
use crate::sa::{Direction, SaEvent};

#[derive(Clone, Copy, Debug)]
struct SlotMeta {
    spi: u32,
    direction: Direction,
    tunnel_id: u32,
    key_id: u64,
    installed_ns: u64,
    removed_ns: u64,
}

/// The dataplane's handle on its region. Used by the management thread only
/// (workers get a [`TapWriter`] each).
pub struct DataplaneEnd {
    map: Arc<Mapping>,
    cmds: Ring,
    events: Ring,
    generation: u64,
    buf: Zeroizing<Vec<u8>>,
    slots: Vec<Option<SlotMeta>>,
    discarded: u64,
}

impl DataplaneEnd {
    /// Attaches to the region at `path`, creating it with the default
    /// [`Geometry`] if it does not exist yet.
    pub fn attach(path: &Path) -> Result<DataplaneEnd, ShmError> {
        Self::attach_with(path, &Geometry::default())
    }

    /// Attaches, creating the region with `geometry` if needed. Takes the
    /// dataplane role lock (refused if another dataplane is attached), bumps
    /// the dataplane generation and drops (zeroing) any commands a previous
    /// dataplane left unread: the control process re-sends everything when it
    /// sees the new generation.
    pub fn attach_with(path: &Path, geometry: &Geometry) -> Result<DataplaneEnd, ShmError> {
        let map = region::open_or_create(path, geometry)?;
        map.lock_role(Role::Dataplane)?;
        let g = map.geometry;
        let cmds = Ring::new(
            map.clone(),
            map.offsets.cmd_off,
            g.cmd_ring_bytes,
            "command",
        );
        let events = Ring::new(
            map.clone(),
            map.offsets.evt_off,
            g.event_ring_bytes,
            "event",
        );
        map.hdr(hw::DP_ATTACHED_NS)
            .store(monotonic_ns(), Ordering::Release);
        let discarded = cmds.discard_all();
        map.hdr(hw::DP_PID)
            .store(u64::from(std::process::id()), Ordering::Relaxed);
        map.hdr(hw::DP_HEARTBEAT)
            .store(monotonic_ns(), Ordering::Relaxed);
        let generation = map.hdr(hw::DP_GENERATION).fetch_add(1, Ordering::AcqRel) + 1;
        Ok(DataplaneEnd {
            slots: vec![None; g.max_sas as usize],
            map,
            cmds,
            events,
            generation,
            buf: Zeroizing::new(Vec::with_capacity(4096)),
            discarded,
        })
    }

    /// The layout version of the region this attach replaced: the file had
    /// another layout version and no live process held it (an upgrade), so
    /// it was recreated empty. None: the region was opened or created.
    pub fn replaced_layout(&self) -> Option<u64> {
        self.map.replaced_version
    }

    /// This dataplane instance's generation (1 for the first ever).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Bytes of unread commands from a previous dataplane dropped at attach.
    pub fn discarded_at_attach(&self) -> u64 {
        self.discarded
    }

    /// The region's sizes.
    pub fn geometry(&self) -> Geometry {
        self.map.geometry
    }

    /// True while a control process is attached.
    pub fn control_alive(&self) -> bool {
        self.map.role_alive(Role::Control)
    }

    /// Records how many workers run (shown by `espresso status`).
    pub fn set_workers(&self, n: u32) {
        self.map
            .hdr(hw::DP_WORKERS)
            .store(u64::from(n), Ordering::Relaxed);
    }

    /// Next command, in the order sent. The caller applies each command
    /// before asking for the next (sync barriers rely on it). A damaged record
    /// drains the ring, is counted (`cmd_corrupt`) and returned as an error;
    /// the control process then re-sends everything.
    pub fn next_command(&mut self) -> Result<Option<Command>, ShmError> {
        loop {
            let rec = match self.cmds.pop(&mut self.buf) {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(None),
                Err(e) => {
                    self.map
                        .hdr(hw::DP_CMD_CORRUPT)
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            };
            let decoded = self.decode(rec.kind);
            // The payload may hold keys: wipe it now.
            self.buf.iter_mut().for_each(|b| *b = 0);
            let decoded = match decoded {
                Ok(d) => d,
                Err(source) => {
                    self.map
                        .hdr(hw::DP_CMD_CORRUPT)
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(ShmError::Decode {
                        ring: "command",
                        kind: rec.kind,
                        pos: rec.pos,
                        source,
                    });
                }
            };
            match decoded {
                Decoded::Cmd(c) => return Ok(Some(c)),
                Decoded::Internal => continue,
            }
        }
    }

    fn decode(&mut self, kind: u16) -> Result<Decoded, codec::DecodeError> {
        let mut r = Reader::new(&self.buf);
        let bad = |f: &'static str, why: String| codec::DecodeError { field: f, why };
        let cmd = match kind {
            CMD_ADD_SA => {
                let slot = r.u32("slot")?;
                let key_id = r.u64("key_id")?;
                let params = codec::get_sa(&mut r)?;
                r.finish("add_sa")?;
                if slot >= self.map.geometry.max_sas {
                    return Err(bad(
                        "slot",
                        format!("{slot} >= {}", self.map.geometry.max_sas),
                    ));
                }
                let meta = SlotMeta {
                    spi: params.spi,
                    direction: params.direction,
                    tunnel_id: params.tunnel_id,
                    key_id,
                    installed_ns: monotonic_ns(),
                    removed_ns: 0,
                };
                self.slots[slot as usize] = Some(meta);
                let stats = SaStats {
                    seq: if params.direction == Direction::Outbound {
                        params.initial_seq.max(1)
                    } else {
                        // Highest received: the replay floor the SA starts with.
                        params.initial_seq.saturating_sub(1)
                    },
                    ..SaStats::default()
                };
                self.write_slot(slot, &meta, SlotState::Active, &stats, monotonic_ns());
                Command::AddSa { slot, params }
            }
            CMD_REMOVE_SA => {
                let slot = r.u32("slot")?;
                let spi = r.u32("spi")?;
                let direction = codec::dir_from(r.u8("direction")?)?;
                r.finish("remove_sa")?;
                if slot >= self.map.geometry.max_sas {
                    return Err(bad(
                        "slot",
                        format!("{slot} >= {}", self.map.geometry.max_sas),
                    ));
                }
                self.mark_removed(slot);
                Command::RemoveSa {
                    slot,
                    spi,
                    direction,
                }
            }
            CMD_ADD_POLICY => {
                let p = codec::get_policy(&mut r)?;
                r.finish("add_policy")?;
                Command::AddPolicy(p)
            }
            CMD_REMOVE_POLICY => {
                let id = r.u32("policy.id")?;
                r.finish("remove_policy")?;
                Command::RemovePolicy { id }
            }
            CMD_FLUSH => {
                r.finish("flush")?;
                for slot in 0..self.slots.len() {
                    self.mark_removed(slot as u32);
                }
                Command::Flush
            }
            CMD_EXPECT_SPI => {
                let spi = r.u32("expect.spi")?;
                r.finish("expect_spi")?;
                Command::ExpectSpi { spi }
            }
            CMD_SYNC => {
                let token = r.u64("sync.token")?;
                r.finish("sync")?;
                // Every earlier command has been returned and (by contract) applied.
                self.map
                    .hdr(hw::DP_SYNC_TOKEN)
                    .store(token, Ordering::Release);
                return Ok(Decoded::Internal);
            }
            k => return Err(bad("kind", format!("unknown command kind {k}"))),
        };
        Ok(Decoded::Cmd(cmd))
    }

    fn mark_removed(&mut self, slot: u32) {
        let Some(meta) = self.slots[slot as usize].as_mut() else {
            return;
        };
        if meta.removed_ns != 0 {
            return;
        }
        meta.removed_ns = monotonic_ns();
        let meta = *meta;
        // Keep the last published counters and their time; the caller's final
        // publish (after taking the SA out of its tables) updates them.
        let (last, at) = self
            .read_slot(slot)
            .filter(|v| v.generation == self.generation && v.spi == meta.spi)
            .map(|v| (v.stats, v.published_ns))
            .unwrap_or((SaStats::default(), meta.installed_ns));
        self.write_slot(slot, &meta, SlotState::Removed, &last, at);
    }

    fn read_slot(&self, slot: u32) -> Option<SaSlotView> {
        let w = self.slot_words(slot);
        super::slots::seq_read::<SA_DP_DATA>(w)
            .ok()
            .and_then(|d| super::slots::decode_sa_slot(&d).ok())
    }

    fn slot_words(&self, slot: u32) -> &[std::sync::atomic::AtomicU64] {
        self.map.words(
            self.map.offsets.sa_dp_off + u64::from(slot) * (SA_DP_WORDS as u64 * 8),
            SA_DP_WORDS,
        )
    }

    fn write_slot(
        &self,
        slot: u32,
        meta: &SlotMeta,
        state: SlotState,
        stats: &SaStats,
        published_ns: u64,
    ) {
        self.write_slot_why(slot, meta, state, stats, published_ns, None);
    }

    fn write_slot_why(
        &self,
        slot: u32,
        meta: &SlotMeta,
        state: SlotState,
        stats: &SaStats,
        published_ns: u64,
        refused: Option<RefuseReason>,
    ) {
        let view = SaSlotView {
            generation: self.generation,
            spi: meta.spi,
            direction: meta.direction,
            state,
            tunnel_id: meta.tunnel_id,
            key_id: meta.key_id,
            published_ns,
            installed_ns: meta.installed_ns,
            removed_ns: meta.removed_ns,
            stats: stats.clone(),
            refused,
        };
        seq_write::<SA_DP_DATA>(self.slot_words(slot), &encode_sa_slot(&view));
    }

    /// Publishes the counters of the SA installed in `slot` (call at least
    /// every few ms for every SA, and once more after removing one). Slots
    /// with nothing installed by this dataplane are left alone.
    pub fn publish_sa(&self, slot: u32, stats: &SaStats) -> Result<(), ShmError> {
        let meta = self.slots.get(slot as usize).ok_or(ShmError::SlotIndex {
            slot,
            max: self.map.geometry.max_sas,
        })?;
        let Some(meta) = meta else {
            return Ok(());
        };
        let state = if meta.removed_ns != 0 {
            SlotState::Removed
        } else if stats.dead {
            SlotState::Dead
        } else {
            SlotState::Active
        };
        self.write_slot(slot, meta, state, stats, monotonic_ns());
        Ok(())
    }

    /// Reports that the SA sent for `slot` could not be installed (its
    /// parameters were refused): the control process shows the tunnel in
    /// error instead of waiting for it, with `why`. Log the full reason on
    /// the dataplane side.
    pub fn refuse_sa(&mut self, slot: u32, why: RefuseReason) -> Result<(), ShmError> {
        let max = self.map.geometry.max_sas;
        let meta = self
            .slots
            .get_mut(slot as usize)
            .ok_or(ShmError::SlotIndex { slot, max })?;
        let Some(m) = meta.take() else {
            return Ok(());
        };
        self.write_slot_why(
            slot,
            &m,
            SlotState::Refused,
            &SaStats::default(),
            monotonic_ns(),
            Some(why),
        );
        Ok(())
    }

    /// Publishes one worker's totals.
    pub fn publish_worker(&self, worker: u32, stats: &WorkerStats) -> Result<(), ShmError> {
        if worker >= self.map.geometry.max_workers {
            return Err(ShmError::WorkerIndex {
                worker,
                max: self.map.geometry.max_workers,
            });
        }
        let w = self.map.words(
            self.map.offsets.worker_off + u64::from(worker) * (WORKER_WORDS as u64 * 8),
            WORKER_WORDS,
        );
        let view = WorkerView {
            generation: self.generation,
            published_ns: monotonic_ns(),
            stats: stats.clone(),
        };
        seq_write::<WORKER_DATA>(w, &encode_worker(&view));
        Ok(())
    }

    /// Queues an event for the control process. Returns false (and counts
    /// `events_lost`) if the ring is full.
    pub fn push_event(&self, ev: &SaEvent) -> bool {
        let mut w = Writer::default();
        codec::put_event(&mut w, ev);
        match self.events.push(EVT_SA, 0, &w.buf) {
            Ok(_) => true,
            Err(_) => {
                self.map
                    .hdr(hw::DP_EVENTS_LOST)
                    .fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Records that the management thread is alive.
    pub fn heartbeat(&self) {
        self.map
            .hdr(hw::DP_HEARTBEAT)
            .store(monotonic_ns(), Ordering::Relaxed);
    }

    /// The tap writer for worker `worker` (one per worker thread).
    pub fn tap_writer(&self, worker: u32) -> Result<TapWriter, ShmError> {
        TapWriter::new(self.map.clone(), worker)
    }
}

enum Decoded {
    Cmd(Command),
    Internal,
}
