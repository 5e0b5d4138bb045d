//! The control process's end of the channel: commands out; counters, events,
//! tapped packets in; its own records for resynchronisation after a restart.

#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::codec::{
    self, Reader, Writer, CMD_ADD_POLICY, CMD_ADD_SA, CMD_EXPECT_SPI, CMD_FLUSH, CMD_REMOVE_POLICY,
    CMD_REMOVE_SA, CMD_SYNC, EVT_SA,
};
use super::layout::{
    hw, Geometry, LEDGER_WORDS, POLICY_WORDS, SA_CTL_WORDS, SA_DP_WORDS, TUNNEL_WORDS, WORKER_WORDS,
};
use super::region::{self, monotonic_ns, Mapping, Role};
use super::ring::Ring;
use super::seq::seq_bound;
use super::slots::{
    crc_words, decode_policy, decode_record, decode_sa_slot, decode_tunnel, decode_worker,
    encode_policy, encode_record, encode_tunnel, rec_read, rec_write, seq_read, LedgerEntry,
    PolicyRecord, SaRecord, SaSlotView, SlotError, TunnelRecord, WorkerView, LEDGER_DATA,
    POLICY_DATA, SA_CTL_DATA, SA_DP_DATA, TUNNEL_DATA, WORKER_DATA,
};
use super::tap::{self, decode_tap, TapPacket, KIND_TAP};
use super::ShmError;
use crate::sa::{Direction, Policy, SaEvent, SaParams};

/// The control process's handle on one dataplane's region.
pub struct ControlEnd {
    map: Arc<Mapping>,
    cmds: Ring,
    events: Ring,
    taps: Vec<Ring>,
    generation: u64,
    buf: Vec<u8>,
}

/// Liveness of the dataplane as seen from the control process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataplaneInfo {
    /// A dataplane process holds its lock.
    pub alive: bool,
    /// Its generation (number of dataplane attaches so far).
    pub generation: u64,
    /// Pid it recorded.
    pub pid: u64,
    /// Its last heartbeat (CLOCK_MONOTONIC ns).
    pub heartbeat_ns: u64,
    /// When it attached (CLOCK_MONOTONIC ns): commands sent before belong to
    /// an earlier dataplane.
    pub attached_ns: u64,
    /// Workers it runs.
    pub workers: u64,
    /// Events it could not queue.
    pub events_lost: u64,
    /// Tapped packets it could not queue.
    pub tap_lost: u64,
    /// Damaged command records it found.
    pub cmd_corrupt: u64,
}

impl ControlEnd {
    /// Attaches to the region at `path` (creating it with `geometry` if
    /// needed), takes the control role lock, bumps the control generation and
    /// clears tap flags left by a previous control process.
    pub fn attach(path: &Path, geometry: &Geometry) -> Result<ControlEnd, ShmError> {
        let map = region::open_or_create(path, geometry)?;
        map.lock_role(Role::Control)?;
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
        let taps = (0..g.max_workers).map(|w| tap::tap_ring(&map, w)).collect();
        tap::clear_taps(&map);
        map.hdr(hw::CP_PID)
            .store(u64::from(std::process::id()), Ordering::Relaxed);
        map.hdr(hw::CP_HEARTBEAT)
            .store(monotonic_ns(), Ordering::Relaxed);
        let generation = map.hdr(hw::CP_GENERATION).fetch_add(1, Ordering::AcqRel) + 1;
        Ok(ControlEnd {
            map,
            cmds,
            events,
            taps,
            generation,
            buf: Vec::with_capacity(4096),
        })
    }

    /// The layout version of the region this attach replaced: the file had
    /// another layout version and no live process held it (an upgrade), so
    /// it was recreated empty. None: the region was opened or created.
    pub fn replaced_layout(&self) -> Option<u64> {
        self.map.replaced_version
    }

    /// Region path.
    pub fn path(&self) -> &Path {
        &self.map.path
    }

    /// The region's sizes.
    pub fn geometry(&self) -> Geometry {
        self.map.geometry
    }

    /// This control instance's generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Records that the control process is alive.
    pub fn heartbeat(&self) {
        self.map
            .hdr(hw::CP_HEARTBEAT)
            .store(monotonic_ns(), Ordering::Relaxed);
    }

    /// The dataplane's liveness and health counters.
    pub fn dataplane(&self) -> DataplaneInfo {
        let h = |i| self.map.hdr(i).load(Ordering::Acquire);
        DataplaneInfo {
            alive: self.map.role_alive(Role::Dataplane),
            generation: h(hw::DP_GENERATION),
            pid: h(hw::DP_PID),
            heartbeat_ns: h(hw::DP_HEARTBEAT),
            attached_ns: h(hw::DP_ATTACHED_NS),
            workers: h(hw::DP_WORKERS),
            events_lost: h(hw::DP_EVENTS_LOST),
            tap_lost: h(hw::DP_TAP_LOST),
            cmd_corrupt: h(hw::DP_CMD_CORRUPT),
        }
    }

    /// Dataplane generation the control process last installed everything into.
    pub fn synced_generation(&self) -> u64 {
        self.map.hdr(hw::CP_SYNCED_DP_GEN).load(Ordering::Acquire)
    }

    /// Records the dataplane generation everything was installed into.
    pub fn set_synced_generation(&self, g: u64) {
        self.map
            .hdr(hw::CP_SYNCED_DP_GEN)
            .store(g, Ordering::Release);
    }

    fn push(&mut self, kind: u16, w: &Writer) -> Result<u64, ShmError> {
        self.cmds.push(kind, 0, &w.buf)
    }

    /// Position the next command will be written at.
    pub fn command_head(&self) -> u64 {
        self.cmds.head_pos()
    }

    /// Command bytes sent and not yet taken by the dataplane.
    pub fn command_pending(&self) -> u64 {
        self.cmds.pending()
    }

    /// Position up to which the dataplane has taken commands.
    pub fn command_tail(&self) -> u64 {
        self.cmds.tail_pos()
    }

    /// Sends an add (or replace) of an SA. `key_id` identifies its keys
    /// (echoed in the counters). Returns the command's ring position.
    pub fn add_sa(&mut self, slot: u32, key_id: u64, params: &SaParams) -> Result<u64, ShmError> {
        self.check_slot(slot)?;
        let mut w = Writer::default();
        w.u32(slot);
        w.u64(key_id);
        codec::put_sa(&mut w, params);
        self.push(CMD_ADD_SA, &w)
    }

    /// Sends the removal of an SA.
    pub fn remove_sa(
        &mut self,
        slot: u32,
        spi: u32,
        direction: Direction,
    ) -> Result<u64, ShmError> {
        self.check_slot(slot)?;
        let mut w = Writer::default();
        w.u32(slot);
        w.u32(spi);
        w.u8(codec::dir_code(direction));
        self.push(CMD_REMOVE_SA, &w)
    }

    /// Sends an add (or replace) of a policy.
    pub fn add_policy(&mut self, p: &Policy) -> Result<u64, ShmError> {
        let mut w = Writer::default();
        codec::put_policy(&mut w, p);
        self.push(CMD_ADD_POLICY, &w)
    }

    /// Sends the removal of a policy.
    pub fn remove_policy(&mut self, id: u32) -> Result<u64, ShmError> {
        let mut w = Writer::default();
        w.u32(id);
        self.push(CMD_REMOVE_POLICY, &w)
    }

    /// Sends a flush (remove every SA and policy).
    pub fn flush(&mut self) -> Result<u64, ShmError> {
        self.push(CMD_FLUSH, &Writer::default())
    }

    /// Announces an inbound SPI the control process offered a peer for an
    /// SA not installed yet: ESP with it that arrives before the SA is
    /// briefly held by the dataplane rather than dropped as `unknown_spi`.
    pub fn expect_spi(&mut self, spi: u32) -> Result<u64, ShmError> {
        let mut w = Writer::default();
        w.u32(spi);
        self.push(CMD_EXPECT_SPI, &w)
    }

    /// Sends a barrier; [`ControlEnd::synced`] tells when the dataplane has
    /// applied everything sent before it. Returns its token.
    pub fn sync(&mut self) -> Result<u64, ShmError> {
        let token = self
            .map
            .hdr(hw::CP_SYNC_TOKEN)
            .fetch_add(1, Ordering::AcqRel)
            + 1;
        let mut w = Writer::default();
        w.u64(token);
        self.push(CMD_SYNC, &w)?;
        Ok(token)
    }

    /// True once the dataplane has passed the barrier `token`.
    pub fn synced(&self, token: u64) -> bool {
        self.map.hdr(hw::DP_SYNC_TOKEN).load(Ordering::Acquire) >= token
    }

    fn check_slot(&self, slot: u32) -> Result<(), ShmError> {
        if slot >= self.map.geometry.max_sas {
            return Err(ShmError::SlotIndex {
                slot,
                max: self.map.geometry.max_sas,
            });
        }
        Ok(())
    }

    /// Reads the counters the dataplane published for `slot`.
    pub fn read_sa(&self, slot: u32) -> Result<Result<SaSlotView, SlotError>, ShmError> {
        self.check_slot(slot)?;
        let w = self.map.words(
            self.map.offsets.sa_dp_off + u64::from(slot) * (SA_DP_WORDS as u64 * 8),
            SA_DP_WORDS,
        );
        Ok(seq_read::<SA_DP_DATA>(w).and_then(|d| decode_sa_slot(&d)))
    }

    /// Reads one worker's totals (`Ok(None)` if never published).
    pub fn read_worker(&self, worker: u32) -> Result<Option<WorkerView>, ShmError> {
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
        if w[0].load(Ordering::Acquire) == 0 {
            return Ok(None);
        }
        match seq_read::<WORKER_DATA>(w) {
            Ok(d) => Ok(Some(decode_worker(&d))),
            Err(_) => Ok(None),
        }
    }

    /// Next event from the dataplane.
    pub fn pop_event(&mut self) -> Result<Option<SaEvent>, ShmError> {
        loop {
            let Some(rec) = self.events.pop(&mut self.buf)? else {
                return Ok(None);
            };
            if rec.kind != EVT_SA {
                continue;
            }
            let mut r = Reader::new(&self.buf);
            return codec::get_event(&mut r)
                .map(Some)
                .map_err(|source| ShmError::Decode {
                    ring: "event",
                    kind: rec.kind,
                    pos: rec.pos,
                    source,
                });
        }
    }

    /// Turns the tap of a tunnel on or off. The flag lives in the header,
    /// where workers check it; it survives a dataplane restart.
    pub fn set_tap(&self, tunnel_id: u32, on: bool) {
        tap::set_tap(&self.map, tunnel_id, on);
    }

    /// Takes up to `max` tapped packets from every worker's ring.
    pub fn drain_taps(&mut self, max: usize, out: &mut Vec<TapPacket>) -> Result<(), ShmError> {
        for ring in &self.taps {
            while out.len() < max {
                match ring.pop(&mut self.buf)? {
                    None => break,
                    Some(rec) if rec.kind == KIND_TAP => {
                        if let Some(p) = decode_tap(&self.buf) {
                            out.push(p);
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    /// Drops everything queued in the tap rings.
    pub fn discard_taps(&self) {
        for ring in &self.taps {
            ring.discard_all();
        }
    }

    fn ctl_words(&self, slot: u32) -> &[AtomicU64] {
        self.map.words(
            self.map.offsets.sa_ctl_off + u64::from(slot) * (SA_CTL_WORDS as u64 * 8),
            SA_CTL_WORDS,
        )
    }

    /// Records what is being installed in (or removed from) `slot`. Write it
    /// before sending the command.
    pub fn write_record(&self, slot: u32, rec: &SaRecord) -> Result<(), ShmError> {
        self.check_slot(slot)?;
        rec_write::<SA_CTL_DATA>(self.ctl_words(slot), &encode_record(rec));
        Ok(())
    }

    /// Forgets the record of `slot`.
    pub fn clear_record(&self, slot: u32) -> Result<(), ShmError> {
        self.check_slot(slot)?;
        for w in self.ctl_words(slot) {
            w.store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Reads the record of `slot` (`Ok(None)`: never written or cleared).
    pub fn read_record(&self, slot: u32) -> Result<Result<Option<SaRecord>, SlotError>, ShmError> {
        self.check_slot(slot)?;
        Ok(rec_read::<SA_CTL_DATA>(self.ctl_words(slot))
            .and_then(|o| o.map(|d| decode_record(&d)).transpose()))
    }

    fn tunnel_words(&self, id: u32) -> Result<&[AtomicU64], ShmError> {
        if id == 0 || id > self.map.geometry.max_tunnels {
            return Err(ShmError::Record {
                what: format!(
                    "tunnel id {id} out of range 1..={}",
                    self.map.geometry.max_tunnels
                ),
            });
        }
        Ok(self.map.words(
            self.map.offsets.tunnel_off + u64::from(id - 1) * (TUNNEL_WORDS as u64 * 8),
            TUNNEL_WORDS,
        ))
    }

    /// Records a tunnel (by its id).
    pub fn write_tunnel(&self, t: &TunnelRecord) -> Result<(), ShmError> {
        let d = encode_tunnel(t).ok_or_else(|| ShmError::Record {
            what: format!("tunnel name {:?}: 1 to 63 bytes", t.name),
        })?;
        rec_write::<TUNNEL_DATA>(self.tunnel_words(t.id)?, &d);
        Ok(())
    }

    /// Forgets tunnel `id`.
    pub fn clear_tunnel(&self, id: u32) -> Result<(), ShmError> {
        for w in self.tunnel_words(id)? {
            w.store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Every tunnel record (damaged ones are reported with their id).
    pub fn tunnels(&self) -> Vec<(u32, Result<TunnelRecord, SlotError>)> {
        let mut out = Vec::new();
        for id in 1..=self.map.geometry.max_tunnels {
            let Ok(w) = self.tunnel_words(id) else {
                continue;
            };
            match rec_read::<TUNNEL_DATA>(w) {
                Ok(None) => {}
                Ok(Some(d)) => out.push((id, decode_tunnel(&d))),
                Err(e) => out.push((id, Err(e))),
            }
        }
        out
    }

    fn policy_words(&self, index: u32) -> Result<&[AtomicU64], ShmError> {
        if index >= self.map.geometry.max_policies {
            return Err(ShmError::Record {
                what: format!(
                    "policy record {index} out of range (region has {})",
                    self.map.geometry.max_policies
                ),
            });
        }
        Ok(self.map.words(
            self.map.offsets.policy_off + u64::from(index) * (POLICY_WORDS as u64 * 8),
            POLICY_WORDS,
        ))
    }

    /// Records an installed policy at `index`.
    pub fn write_policy_record(&self, index: u32, p: &PolicyRecord) -> Result<(), ShmError> {
        rec_write::<POLICY_DATA>(self.policy_words(index)?, &encode_policy(p));
        Ok(())
    }

    /// Forgets the policy record at `index`.
    pub fn clear_policy_record(&self, index: u32) -> Result<(), ShmError> {
        for w in self.policy_words(index)? {
            w.store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Every policy record, with its index.
    pub fn policy_records(&self) -> Vec<(u32, Result<PolicyRecord, SlotError>)> {
        let mut out = Vec::new();
        for i in 0..self.map.geometry.max_policies {
            let Ok(w) = self.policy_words(i) else {
                continue;
            };
            match rec_read::<POLICY_DATA>(w) {
                Ok(None) => {}
                Ok(Some(d)) => out.push((i, Ok(decode_policy(&d)))),
                Err(e) => out.push((i, Err(e))),
            }
        }
        out
    }

    /// Appends a sequence observation to the ledger (a ring of entries: a
    /// torn entry loses only itself, older entries for the key still bound it).
    pub fn ledger_append(&self, e: &LedgerEntry) {
        let n = u64::from(self.map.geometry.ledger_entries);
        let i = self
            .map
            .hdr(hw::CP_LEDGER_NEXT)
            .fetch_add(1, Ordering::AcqRel)
            % n;
        let w = self.map.words(
            self.map.offsets.ledger_off + i * (LEDGER_WORDS as u64 * 8),
            LEDGER_WORDS,
        );
        rec_write::<LEDGER_DATA>(w, &[e.key_id, e.seq, e.at_ns]);
    }

    /// The highest sequence bound the ledger holds for `key_id` at time
    /// `now_ns` (see [`super::SEQ_RATE_BOUND_PPS`]); `None` if the key is unknown.
    pub fn ledger_bound(&self, key_id: u64, now_ns: u64) -> Option<u64> {
        let n = self.map.geometry.ledger_entries;
        let mut best: Option<u64> = None;
        for i in 0..n {
            let w = self.map.words(
                self.map.offsets.ledger_off + u64::from(i) * (LEDGER_WORDS as u64 * 8),
                LEDGER_WORDS,
            );
            let Ok(Some(d)) = rec_read::<LEDGER_DATA>(w) else {
                continue;
            };
            if d[0] != key_id {
                continue;
            }
            let e = LedgerEntry {
                key_id: d[0],
                seq: d[1],
                at_ns: d[2],
            };
            let b = seq_bound(e.seq, e.at_ns, now_ns);
            best = Some(best.map_or(b, |x| x.max(b)));
        }
        best
    }

    /// Test and diagnostics helper: CRC of a word list as the slots use it.
    #[doc(hidden)]
    pub fn crc_of(words: &[u64]) -> u32 {
        crc_words(words)
    }

    #[cfg(test)]
    pub(crate) fn command_ring(&self) -> &Ring {
        &self.cmds
    }

    #[cfg(test)]
    pub(crate) fn raw_words(&self, off: u64, n: usize) -> &[AtomicU64] {
        self.map.words(off, n)
    }

    #[cfg(test)]
    pub(crate) fn offsets_for_test(&self) -> super::layout::Offsets {
        self.map.offsets
    }
}
