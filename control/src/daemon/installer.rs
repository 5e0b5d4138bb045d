//! The SA and policy installer: the control process's one writer of the
//! shared-memory region. Everything that installs SAs or policies in the
//! dataplane does it through an [`Installer`]: the manual tunnels
//! ([`super::manual`]) and every keying engine (IKEv2 through
//! [`super::ike`]; a second engine such as IKEv1 takes an [`EngineSas`] of
//! its own and a policy-id range of [`policy_id`], and changes nothing here).
//!
//! It owns what must stay consistent across both processes' restarts:
//! - SA slots (where a dataplane publishes an SA's counters) and their
//!   records (what was installed, with which key and initial sequence
//!   number, at which command position);
//! - tunnel ids and their records (stable across control restarts);
//! - policy records (which policy ids are installed, by hash);
//! - the ledger of outbound sequence numbers per key, frozen when a
//!   dataplane dies, so that a key never sends a sequence number twice;
//! - whether the dataplane is alive and in step ([`Installer::watch`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use espresso_core::sa::{Direction, Policy, PolicyAction, SaEvent, SaParams};
use espresso_core::shm::{
    monotonic_ns, seq_bound, ControlEnd, Geometry, LedgerEntry, PolicyRecord, RecordState,
    SaRecord, SaSlotView, ShmError, SlotState, TunnelRecord, SEQ_MARGIN,
};
use tracing::{error, info, warn};

/// How long the installer waits for the dataplane to apply commands before
/// it computes sequence numbers that depend on them.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// Dataplane policy ids: each owner has its own range, so that owners never
/// collide and a restarted control process knows whose a recorded policy was.
pub mod policy_id {
    /// The top three bits name the owner.
    pub const OWNER_MASK: u32 = 0xE000_0000;
    /// A keying engine's own ids must stay below this (they are or-ed with a base).
    pub const ENGINE_ID_MASK: u32 = !OWNER_MASK;
    /// IKEv2 engine policies: `IKEV2 | id`.
    pub const IKEV2: u32 = 0x8000_0000;
    /// Free for the next keying engine (IKEv1): `NEXT_ENGINE | id`.
    pub const NEXT_ENGINE: u32 = 0xA000_0000;
    /// Hold (discard) policies of IKEv2 connections without a child SA:
    /// `IKEV2_HOLD | tunnel id << 8 | n`.
    pub const IKEV2_HOLD: u32 = 0xC000_0000;
    /// Free for the next keying engine's hold policies.
    pub const NEXT_ENGINE_HOLD: u32 = 0xE000_0000;

    /// Policy `n` of manual tunnel or policy rule `tunnel_id` (below 0x8000).
    pub const fn manual(tunnel_id: u32, n: u32) -> u32 {
        tunnel_id << 16 | n
    }
    /// The manual tunnel a policy id belongs to (meaningless for engine ids).
    pub const fn manual_owner(id: u32) -> u32 {
        id >> 16
    }
    /// Hold policy `n` of tunnel `tunnel_id` in the hold range `base`.
    pub const fn hold(base: u32, tunnel_id: u32, n: u32) -> u32 {
        base | tunnel_id << 8 | n
    }
    /// The tunnel of a hold policy id (in any hold range).
    pub const fn hold_owner(id: u32) -> u32 {
        (id & !OWNER_MASK) >> 8
    }
    /// True if `id` is in the range `base`.
    pub const fn is_in(id: u32, base: u32) -> bool {
        id & OWNER_MASK == base
    }
}

/// Why an SA could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Its record could not be written.
    #[error("recording the SA: {0}")]
    Record(ShmError),
    /// The dataplane's command ring did not take it.
    #[error("sending the SA to the dataplane: {0}")]
    Send(ShmError),
    /// No free SA slot in the shared-memory region.
    #[error("out of SA slots in the shared-memory region")]
    OutOfSlots,
    /// Another SA (of another tunnel, or another child SA) holds this SPI in
    /// this direction: installing it would replace that SA in the dataplane.
    #[error("{dir:?} SPI {spi:#010x} is in use by another SA (tunnel id {owner_tunnel}, slot {owner_slot})", dir = .direction)]
    SpiInUse {
        /// The SPI.
        spi: u32,
        /// Its direction.
        direction: Direction,
        /// The slot of the SA that holds it.
        owner_slot: u32,
        /// That SA's tunnel id.
        owner_tunnel: u32,
    },
}

/// What a previous control process left in the region (its tunnel records),
/// read by [`Installer::attach`].
pub struct Leftovers {
    /// Tunnel records by name.
    pub tunnels: HashMap<String, TunnelRecord>,
    /// A record was damaged: the dataplane is resynchronised in full.
    pub damaged: bool,
}

/// How to bring the dataplane in line after attaching ([`Installer::resume`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    /// The dataplane we installed into is alive and in step: send differences.
    Incremental,
    /// It is gone (or unknown): everything is installed when one attaches.
    Wait,
    /// Records were damaged: flush it and install everything now.
    Full,
}

/// What [`Installer::watch`] saw of the dataplane.
#[derive(Debug, PartialEq, Eq)]
pub enum Watch {
    /// Nothing to do.
    Steady,
    /// A new dataplane attached (or ours needs everything again): full sync.
    NewDataplane,
}

/// The installer (see the module docs).
pub struct Installer {
    shm: ControlEnd,
    free_slots: BTreeSet<u32>,
    free_ids: BTreeSet<u32>,
    free_precs: BTreeSet<u32>,
    /// Policy id -> (record index, hash) of what is installed.
    policy_recs: HashMap<u32, (u32, u64)>,
    dp_alive: bool,
    /// Synced generation whose death has been accounted for in the ledger.
    frozen_for: u64,
    /// Tunnel ids freed since [`Installer::take_freed_ids`].
    freed_ids: Vec<u32>,
    /// Which slot holds each (SPI, direction) in the dataplane: the
    /// dataplane finds SAs by SPI alone, so one SPI per direction belongs to
    /// one SA, whoever installs it (manual tunnels, every keying engine).
    held: HashMap<(u32, Direction), u32>,
    /// The SPI of each slot in `held` (to let go when a slot changes SPI).
    slot_spi: HashMap<u32, (u32, Direction)>,
    /// Bumped whenever `held` changes (engines refresh their view of it).
    spi_generation: u64,
    /// SAs refused because their SPI was held by another SA.
    spi_refusals: u64,
    /// Outbound SAs not installed again because their sequence numbers
    /// would have started past their limit.
    seq_refusals: u64,
}

/// Stable digest of a policy (what its record holds).
fn policy_hash(p: &Policy) -> u64 {
    let text = format!("{p:?}");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x1000_0000_01b3);
    }
    h
}

impl Installer {
    /// Attaches to the region at `path` and takes back the tunnel ids, slots
    /// and policy records a previous control process left there.
    pub fn attach(path: &Path) -> Result<(Installer, Leftovers), ShmError> {
        let shm = ControlEnd::attach(path, &Geometry::default())?;
        let g = shm.geometry();
        let mut inst = Installer {
            free_slots: (0..g.max_sas).collect(),
            free_ids: (1..=g.max_tunnels).collect(),
            free_precs: (0..g.max_policies).collect(),
            shm,
            policy_recs: HashMap::new(),
            dp_alive: false,
            frozen_for: 0,
            freed_ids: Vec::new(),
            held: HashMap::new(),
            slot_spi: HashMap::new(),
            spi_generation: 0,
            spi_refusals: 0,
            seq_refusals: 0,
        };
        let mut left = Leftovers {
            tunnels: HashMap::new(),
            damaged: false,
        };
        for (id, r) in inst.shm.tunnels() {
            match r {
                Ok(r) => {
                    inst.free_ids.remove(&r.id);
                    for s in [r.slot_in, r.slot_out] {
                        inst.free_slots.remove(&s);
                    }
                    left.tunnels.insert(r.name.clone(), r);
                }
                Err(e) => {
                    warn!("tunnel record {id} is damaged ({e}): resynchronising the dataplane in full");
                    left.damaged = true;
                    let _ = inst.shm.clear_tunnel(id);
                }
            }
        }
        for (i, r) in inst.shm.policy_records() {
            inst.free_precs.remove(&i);
            match r {
                Ok(p) => {
                    inst.policy_recs.insert(p.id, (i, p.hash));
                }
                Err(e) => {
                    warn!(
                        "policy record {i} is damaged ({e}): resynchronising the dataplane in full"
                    );
                    left.damaged = true;
                    let _ = inst.shm.clear_policy_record(i);
                    inst.free_precs.insert(i);
                }
            }
        }
        // What a previous control process installed holds its SPIs until
        // it is removed ([`Installer::remove_stale_slots`]) or taken over.
        for slot in 0..g.max_sas {
            if let Some(r) = inst
                .read_record(slot)
                .filter(|r| r.state == RecordState::Installed)
            {
                inst.hold(slot, r.spi, r.direction);
            }
        }
        Ok((inst, left))
    }

    // ------------------------------------------------------------ SPIs

    fn hold(&mut self, slot: u32, spi: u32, dir: Direction) {
        if let Some(prev) = self.slot_spi.insert(slot, (spi, dir)) {
            if prev != (spi, dir) && self.held.get(&prev) == Some(&slot) {
                self.held.remove(&prev);
            }
        }
        self.held.insert((spi, dir), slot);
        self.spi_generation += 1;
    }

    fn let_go(&mut self, slot: u32) {
        if let Some(k) = self.slot_spi.remove(&slot) {
            if self.held.get(&k) == Some(&slot) {
                self.held.remove(&k);
            }
            self.spi_generation += 1;
        }
    }

    /// The slot whose SA holds `spi` in direction `dir`.
    pub fn spi_owner(&self, spi: u32, dir: Direction) -> Option<u32> {
        self.held.get(&(spi, dir)).copied()
    }

    /// Changes whenever an SPI is taken or given back.
    pub fn spi_generation(&self) -> u64 {
        self.spi_generation
    }

    /// Every SPI held in direction `dir`.
    pub fn held_spis(&self, dir: Direction) -> impl Iterator<Item = u32> + '_ {
        self.held
            .keys()
            .filter(move |(_, d)| *d == dir)
            .map(|(s, _)| *s)
    }

    /// SAs refused because another SA held their SPI.
    pub fn spi_refusals(&self) -> u64 {
        self.spi_refusals
    }

    /// Outbound SAs not installed again because their sequence numbers would
    /// have started past their limit (they are rekeyed instead).
    pub fn seq_refusals(&self) -> u64 {
        self.seq_refusals
    }

    /// The region (reads: counters, workers, dataplane info; taps). SAs and
    /// policies go through the installer's own methods, which keep the
    /// records and the ledger in step.
    pub fn shm(&self) -> &ControlEnd {
        &self.shm
    }

    /// The region, for the decrypted-traffic tap.
    pub fn shm_mut(&mut self) -> &mut ControlEnd {
        &mut self.shm
    }

    /// True while the dataplane we installed into is alive and in step.
    pub fn dp_live(&self) -> bool {
        self.dp_alive
    }

    // ------------------------------------------------------------ ids, slots

    /// A free tunnel id.
    pub fn alloc_tunnel_id(&mut self) -> Option<u32> {
        let id = *self.free_ids.iter().next()?;
        self.free_ids.remove(&id);
        Some(id)
    }

    /// Gives a tunnel id back (its record and tap go).
    pub fn free_tunnel_id(&mut self, id: u32) {
        let _ = self.shm.clear_tunnel(id);
        self.shm.set_tap(id, false);
        self.free_ids.insert(id);
        self.freed_ids.push(id);
    }

    /// Tunnel ids freed since the last call (their taps end).
    pub fn take_freed_ids(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.freed_ids)
    }

    /// A free SA slot.
    pub fn alloc_slot(&mut self) -> Option<u32> {
        let s = *self.free_slots.iter().next()?;
        self.free_slots.remove(&s);
        Some(s)
    }

    /// Gives an SA slot back (remove its SA first: [`Installer::remove_sa`]).
    pub fn release_slot(&mut self, slot: u32) {
        self.let_go(slot);
        self.free_slots.insert(slot);
    }

    /// Records a tunnel (name, id, admin state, slots) for a restarted control process.
    pub fn save_tunnel(&self, r: &TunnelRecord) {
        if let Err(e) = self.shm.write_tunnel(r) {
            error!("recording tunnel {}: {e}", r.name);
        }
    }

    /// SAs a previous control process installed in slots no tunnel record
    /// owns (those of keying engines: their SAs died with it): they go.
    pub fn remove_stale_slots(&mut self) {
        let free: Vec<u32> = self.free_slots.iter().copied().collect();
        let mut n = 0;
        for s in free {
            if self
                .read_record(s)
                .is_some_and(|r| r.state == RecordState::Installed)
            {
                self.remove_sa(s);
                n += 1;
            }
        }
        if n > 0 {
            info!("removed {n} SA(s) of IKE SAs of the previous control process");
        }
    }

    // ------------------------------------------------------- SA records

    /// What was installed in `slot` (if its record reads).
    pub fn read_record(&self, slot: u32) -> Option<SaRecord> {
        match self.shm.read_record(slot) {
            Ok(Ok(r)) => r,
            _ => None,
        }
    }

    /// Marks `slot`'s record (if installed) as flushed by the dataplane.
    pub fn mark_flushed(&self, slot: u32) {
        if let Some(mut r) = self.read_record(slot) {
            if r.state == RecordState::Installed {
                r.state = RecordState::Removed;
                let _ = self.shm.write_record(slot, &r);
            }
        }
    }

    /// What the dataplane publishes for `slot` (if it reads).
    pub fn read_view(&self, slot: u32) -> Option<SaSlotView> {
        match self.shm.read_sa(slot) {
            Ok(Ok(v)) => Some(v),
            _ => None,
        }
    }

    /// Upper bound on the next sequence number the outbound SA with key
    /// `key_id` recorded in `slot` can have reached, from its record and the
    /// dataplane's publication. With `current_only`, only what belongs to the
    /// dataplane attached now counts (earlier dataplanes are covered by the
    /// ledger entries written when they stopped).
    pub fn slot_bound(&self, slot: u32, key_id: u64, now: u64, current_only: bool) -> Option<u64> {
        let info = self.shm.dataplane();
        let rec = self
            .read_record(slot)
            .filter(|r| r.key_id == key_id && r.direction == Direction::Outbound)
            .filter(|r| !current_only || r.sent_ns >= info.attached_ns);
        let view = self
            .read_view(slot)
            .filter(|v| {
                v.key_id == key_id
                    && v.direction == Direction::Outbound
                    && v.state != SlotState::Empty
            })
            .filter(|v| !current_only || v.generation == info.generation);
        match (rec, view) {
            (None, None) => None,
            (None, Some(v)) => Some(v.seq_bound(now)),
            (Some(r), Some(v)) if v.published_ns >= r.sent_ns => Some(v.seq_bound(now)),
            (Some(r), v) => Some(
                seq_bound(r.initial_seq, r.sent_ns, now).max(v.map_or(0, |v| v.seq_bound(now))),
            ),
        }
    }

    /// The first sequence number an SA with key `key_id` in `slot` may use:
    /// outbound, above every number the key may have sent (ledger and slot,
    /// plus [`SEQ_MARGIN`]); inbound, above the highest number received under
    /// the key (as last published, also by a dataplane that died since), so
    /// that packets captured before are refused after a reinstall.
    pub fn next_seq(&self, slot: u32, key_id: u64, dir: Direction) -> u64 {
        let now = monotonic_ns();
        match dir {
            Direction::Outbound => {
                let b = [
                    self.shm.ledger_bound(key_id, now),
                    self.slot_bound(slot, key_id, now, self.dp_alive),
                ]
                .into_iter()
                .flatten()
                .max();
                match b {
                    None => 1,
                    Some(b) => b.saturating_add(SEQ_MARGIN),
                }
            }
            Direction::Inbound => self
                .read_view(slot)
                .filter(|v| v.key_id == key_id && v.direction == Direction::Inbound)
                .map_or(0, |v| {
                    if v.stats.seq > 0 {
                        v.stats.seq.saturating_add(1)
                    } else {
                        0
                    }
                }),
        }
    }

    /// Records `params` in `slot` (with `key_id` and `params_hash`, which
    /// resynchronisation compares) and sends it when the dataplane is live.
    pub fn install_sa(
        &mut self,
        slot: u32,
        key_id: u64,
        params_hash: u64,
        params: &SaParams,
    ) -> Result<(), InstallError> {
        if let Some(owner) = self.spi_owner(params.spi, params.direction) {
            if owner != slot {
                self.spi_refusals += 1;
                let owner_tunnel = self.read_record(owner).map_or(0, |r| r.tunnel_id);
                return Err(InstallError::SpiInUse {
                    spi: params.spi,
                    direction: params.direction,
                    owner_slot: owner,
                    owner_tunnel,
                });
            }
        }
        let r = SaRecord {
            state: RecordState::Installed,
            direction: params.direction,
            tunnel_id: params.tunnel_id,
            spi: params.spi,
            key_id,
            params_hash,
            initial_seq: params.initial_seq,
            sent_ns: monotonic_ns(),
            cmd_pos: self.shm.command_head(),
        };
        self.shm
            .write_record(slot, &r)
            .map_err(InstallError::Record)?;
        self.hold(slot, params.spi, params.direction);
        if self.dp_alive {
            self.shm
                .add_sa(slot, key_id, params)
                .map_err(InstallError::Send)?;
        }
        Ok(())
    }

    /// Removes the SA installed in `slot` (its record says which).
    pub fn remove_sa(&mut self, slot: u32) {
        self.let_go(slot);
        let Some(mut rec) = self.read_record(slot) else {
            return;
        };
        if rec.state != RecordState::Installed {
            return;
        }
        rec.state = RecordState::Removed;
        rec.cmd_pos = self.shm.command_head();
        let _ = self.shm.write_record(slot, &rec);
        if self.dp_alive {
            let r = self.shm.remove_sa(slot, rec.spi, rec.direction);
            self.sent("an SA removal", r);
        }
    }

    // ------------------------------------------------------------ policies

    /// Installs (or replaces) a policy; false if it could not be recorded or sent.
    pub fn add_policy(&mut self, p: &Policy) -> bool {
        let h = policy_hash(p);
        if self.policy_recs.get(&p.id).is_some_and(|(_, ph)| *ph == h) {
            return true;
        }
        let idx = match self.policy_recs.get(&p.id) {
            Some((i, _)) => *i,
            None => match self.free_precs.iter().next().copied() {
                Some(i) => {
                    self.free_precs.remove(&i);
                    i
                }
                None => {
                    error!("out of policy records in the shared-memory region");
                    return false;
                }
            },
        };
        let rec = PolicyRecord {
            id: p.id,
            tunnel_id: p.tunnel_id,
            hash: h,
            cmd_pos: self.shm.command_head(),
        };
        let _ = self.shm.write_policy_record(idx, &rec);
        self.policy_recs.insert(p.id, (idx, h));
        if self.dp_alive {
            let r = self.shm.add_policy(p);
            return self.sent("a policy", r);
        }
        true
    }

    /// Removes a policy (if installed).
    pub fn remove_policy(&mut self, id: u32) {
        if let Some((idx, _)) = self.policy_recs.remove(&id) {
            let _ = self.shm.clear_policy_record(idx);
            self.free_precs.insert(idx);
            if self.dp_alive {
                let r = self.shm.remove_policy(id);
                self.sent("a policy removal", r);
            }
        }
    }

    /// Ids of the installed policies that `keep` selects.
    pub fn policy_ids(&self, keep: impl Fn(u32) -> bool) -> Vec<u32> {
        self.policy_recs
            .keys()
            .copied()
            .filter(|id| keep(*id))
            .collect()
    }

    /// True if exactly `p` is installed.
    pub fn has_policy(&self, p: &Policy) -> bool {
        self.policy_recs
            .get(&p.id)
            .is_some_and(|(_, h)| *h == policy_hash(p))
    }

    // ------------------------------------------------------- dataplane state

    /// The next dataplane event, if any.
    pub fn pop_event(&mut self) -> Option<SaEvent> {
        match self.shm.pop_event() {
            Ok(e) => e,
            Err(e) => {
                warn!("event ring: {e}");
                None
            }
        }
    }

    /// Sends a barrier and waits (bounded) until the dataplane has applied
    /// everything before it. False if it did not (dead or too slow).
    pub fn wait_applied(&mut self) -> bool {
        let Ok(token) = self.shm.sync() else {
            return false;
        };
        let start = Instant::now();
        let until = start + APPLY_TIMEOUT;
        while Instant::now() < until {
            if self.shm.synced(token) {
                let took = start.elapsed();
                if took >= Duration::from_millis(250) {
                    // the control loop (and every IKE timer) waited meanwhile
                    warn!(
                        "the dataplane took {:.0} ms to apply SA changes",
                        took.as_secs_f64() * 1e3
                    );
                }
                return true;
            }
            if !self.shm.dataplane().alive {
                return false;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        false
    }

    fn sent<T>(&self, what: &str, r: Result<T, ShmError>) -> bool {
        match r {
            Ok(_) => true,
            Err(e) => {
                error!("sending {what} to the dataplane: {e}");
                false
            }
        }
    }

    /// Records in the ledger what the outbound SAs in `outbound_slots` of the
    /// last synced dataplane may have sent: that dataplane is gone, so the
    /// bounds stop growing.
    fn freeze(&mut self, outbound_slots: &[u32]) {
        let now = monotonic_ns();
        let mut n = 0;
        for &slot in outbound_slots {
            let Some(rec) = self.read_record(slot) else {
                continue;
            };
            if let Some(b) = self.slot_bound(slot, rec.key_id, now, false) {
                self.shm.ledger_append(&LedgerEntry {
                    key_id: rec.key_id,
                    seq: b,
                    at_ns: u64::MAX,
                });
                n += 1;
            }
        }
        if n > 0 {
            info!("recorded sequence bounds of {n} outbound SA(s) of the stopped dataplane");
        }
    }

    /// After attaching: how to bring the dataplane in line with what the
    /// records say (`outbound_slots`: the slots whose keys the ledger must
    /// cover if that dataplane is gone).
    pub fn resume(&mut self, damaged: bool, reattached: bool, outbound_slots: &[u32]) -> Resume {
        let info = self.shm.dataplane();
        let synced = self.shm.synced_generation();
        if info.alive && synced != 0 && info.generation == synced && !damaged {
            if reattached {
                info!(
                    "reattached to dataplane pid {} (generation {}): resynchronising",
                    info.pid, info.generation
                );
            }
            self.dp_alive = true;
            self.frozen_for = 0;
            return Resume::Incremental;
        }
        // The dataplane we last installed into is gone (or unknown): bound
        // what it may have sent, and install everything when one attaches.
        if synced != 0 {
            self.freeze(outbound_slots);
        }
        self.frozen_for = synced;
        self.dp_alive = false;
        if damaged && info.alive && info.generation == synced {
            Resume::Full
        } else {
            Resume::Wait
        }
    }

    /// Heartbeat and liveness, every tick: a dataplane that stopped has the
    /// bounds of `outbound_slots` frozen in the ledger; a new one needs a
    /// full sync ([`Installer::begin_full_sync`]).
    pub fn watch(&mut self, outbound_slots: &[u32]) -> Watch {
        self.shm.heartbeat();
        let info = self.shm.dataplane();
        let synced = self.shm.synced_generation();
        if !info.alive {
            if self.dp_alive {
                warn!(
                    "dataplane pid {} stopped: its SAs are re-installed when it returns",
                    info.pid
                );
                self.dp_alive = false;
            }
            if synced != 0 && self.frozen_for != synced {
                self.freeze(outbound_slots);
                self.frozen_for = synced;
            }
            Watch::Steady
        } else if info.generation != synced || !self.dp_alive {
            if synced != 0 && self.frozen_for != synced {
                self.freeze(outbound_slots);
                self.frozen_for = synced;
            }
            Watch::NewDataplane
        } else {
            Watch::Steady
        }
    }

    /// Starts a full sync with a new dataplane: flushes whatever it holds and
    /// forgets the policy records. Returns its generation, for
    /// [`Installer::end_full_sync`] once every owner installed its SAs and
    /// policies again; `None` if the dataplane did not take the flush.
    pub fn begin_full_sync(&mut self) -> Option<u64> {
        let info = self.shm.dataplane();
        info!(
            "dataplane pid {} (generation {}) attached: installing every SA and policy",
            info.pid, info.generation
        );
        self.dp_alive = true;
        let flushed = self.shm.flush();
        if !self.sent("a flush", flushed) || !self.wait_applied() {
            warn!("the dataplane did not take the flush; will retry");
            self.dp_alive = false;
            return None;
        }
        // Forget policy records: the dataplane holds none now.
        for (_, (idx, _)) in std::mem::take(&mut self.policy_recs) {
            let _ = self.shm.clear_policy_record(idx);
            self.free_precs.insert(idx);
        }
        Some(info.generation)
    }

    /// Ends a full sync: the dataplane of `generation` is in step.
    pub fn end_full_sync(&mut self, generation: u64) {
        self.shm.set_synced_generation(generation);
        self.frozen_for = 0;
    }
}

/// The highest sequence number an SA may send: 2^32 - 1 without ESN
/// (RFC 4303 §3.3.3: never wrap; rekey), 2^64 - 1 with it.
pub fn seq_limit(esn: bool) -> u64 {
    if esn {
        u64::MAX
    } else {
        u64::from(u32::MAX)
    }
}

/// One SA a keying engine installed.
pub struct EngineSa {
    /// Its slot.
    pub slot: u32,
    /// Its key id.
    pub key_id: u64,
    /// What was installed (keys included, for `espresso keys`).
    pub params: Box<SaParams>,
}

/// The SAs and policies one keying engine (IKEv2; IKEv1 next) installed
/// through the [`Installer`]: what must be installed again in a new
/// dataplane, and which events and counters are the engine's.
#[derive(Default)]
pub struct EngineSas {
    sas: HashMap<(u32, Direction), EngineSa>,
    policies: BTreeMap<u32, Policy>,
    /// Outbound SPIs whose SA was refused (another SA holds the SPI): the
    /// policies that name them discard instead, and the engine deletes the
    /// child ([`EngineSas::take_refused`]).
    refused_out: HashSet<u32>,
    /// Of those, the ones already handed to the engine for deletion.
    refused_deleting: HashSet<u32>,
}

/// Key id of an engine's SA: a digest of its SPI and keys.
fn key_id(p: &SaParams) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"espresso ike key id");
    h.update(p.spi.to_be_bytes());
    h.update(p.enc_key.bytes());
    h.update(p.auth_key.bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

impl EngineSas {
    /// Installs an SA (again: the same SPI, direction and keys replace the
    /// SA in its slot). An SA whose SPI another SA holds in that direction
    /// (another tunnel's, another child's of this engine, or with other keys)
    /// is refused and not recorded: it must never replace that SA.
    pub fn install_sa(
        &mut self,
        inst: &mut Installer,
        p: Box<SaParams>,
    ) -> Result<(), InstallError> {
        let (spi, dir) = (p.spi, p.direction);
        let r = self.install(inst, p);
        if r.is_err() && dir == Direction::Outbound {
            self.refused_out.insert(spi);
        }
        r
    }

    fn install(&mut self, inst: &mut Installer, p: Box<SaParams>) -> Result<(), InstallError> {
        let k = (p.spi, p.direction);
        let kid = key_id(&p);
        let slot = match self.sas.get(&k) {
            Some(s) if s.key_id == kid => Some(s.slot),
            Some(s) => {
                inst.spi_refusals += 1;
                let e = InstallError::SpiInUse {
                    spi: p.spi,
                    direction: p.direction,
                    owner_slot: s.slot,
                    owner_tunnel: s.params.tunnel_id,
                };
                error!("SA not installed: {e}");
                return Err(e);
            }
            None => inst.alloc_slot(),
        };
        let Some(slot) = slot else {
            error!(
                "out of SA slots in the shared-memory region: SA spi {:#010x} not installed",
                p.spi
            );
            return Err(InstallError::OutOfSlots);
        };
        match inst.install_sa(slot, kid, 0, &p) {
            Err(e @ InstallError::SpiInUse { .. }) => {
                inst.release_slot(slot);
                error!("SA not installed: {e}");
                return Err(e);
            }
            Err(e) => error!("installing SA spi {:#010x}: {e}", p.spi),
            Ok(()) => {}
        }
        self.sas.insert(
            k,
            EngineSa {
                slot,
                key_id: kid,
                params: p,
            },
        );
        Ok(())
    }

    /// Moves an installed SA to new outer addresses (MOBIKE, RFC 4555): the
    /// same slot, SPI and keys, installed again with the new addresses and
    /// UDP encapsulation. Outbound, it continues above every sequence number
    /// the key may have used; inbound, it refuses what it accepted before.
    /// False if the SA is not installed (or its numbers are used up).
    pub fn move_sa(
        &mut self,
        inst: &mut Installer,
        spi: u32,
        dir: Direction,
        local: std::net::IpAddr,
        remote: std::net::IpAddr,
        encap: Option<espresso_core::sa::UdpEncap>,
    ) -> bool {
        if dir == Direction::Outbound && self.refused_out.contains(&spi) {
            // never installed: the SA with this SPI is another's
            return false;
        }
        let Some(s) = self.sas.get_mut(&(spi, dir)) else {
            warn!("moving SA spi {spi:#010x} {dir:?}: not installed");
            return false;
        };
        let mut p = s.params.clone();
        p.local_addr = local;
        p.remote_addr = remote;
        p.encap = encap;
        p.initial_seq = inst.next_seq(s.slot, s.key_id, dir).max(p.initial_seq);
        if dir == Direction::Outbound && p.initial_seq > seq_limit(p.esn) {
            inst.seq_refusals += 1;
            warn!(
                "outbound SA spi {spi:#010x} not moved: its sequence numbers would start at {}, past its limit",
                p.initial_seq
            );
            return false;
        }
        if let Err(e) = inst.install_sa(s.slot, s.key_id, 0, &p) {
            error!("moving SA spi {spi:#010x} {dir:?} to {local} <-> {remote}: {e}");
            return false;
        }
        s.params = p;
        true
    }

    /// Removes an SA (if installed).
    pub fn remove_sa(&mut self, inst: &mut Installer, spi: u32, dir: Direction) {
        if dir == Direction::Outbound && self.refused_out.remove(&spi) {
            // Never installed: the SA with this SPI is another's.
            self.refused_deleting.remove(&spi);
            return;
        }
        if let Some(s) = self.sas.remove(&(spi, dir)) {
            inst.remove_sa(s.slot);
            inst.release_slot(s.slot);
        }
    }

    /// Installs a policy (its id already in the engine's range). A policy
    /// naming a refused outbound SPI discards: it never points at another
    /// tunnel's SA.
    pub fn add_policy(&mut self, inst: &mut Installer, mut p: Policy) {
        if let PolicyAction::Protect { spi } = p.action {
            if self.refused_out.contains(&spi) {
                p.action = PolicyAction::Discard;
            }
        }
        inst.add_policy(&p);
        self.policies.insert(p.id, p);
    }

    /// Removes a policy (if installed).
    pub fn remove_policy(&mut self, inst: &mut Installer, id: u32) {
        self.policies.remove(&id);
        inst.remove_policy(id);
    }

    /// Of the engine's children `(inbound SPI, outbound SPI)`, those whose
    /// outbound SA was refused and that were not yet handed out: the engine
    /// must delete them. Each is returned once.
    pub fn take_refused(
        &mut self,
        children: impl IntoIterator<Item = (u32, u32)>,
    ) -> Vec<(u32, u32)> {
        if self.refused_out.len() == self.refused_deleting.len() {
            return Vec::new();
        }
        let doomed: Vec<(u32, u32)> = children
            .into_iter()
            .filter(|(_, o)| self.refused_out.contains(o) && !self.refused_deleting.contains(o))
            .collect();
        self.refused_deleting.extend(doomed.iter().map(|(_, o)| *o));
        doomed
    }

    /// Ids of the installed policies that `keep` selects.
    pub fn policy_ids(&self, keep: impl Fn(u32) -> bool) -> Vec<u32> {
        self.policies
            .keys()
            .copied()
            .filter(|id| keep(*id))
            .collect()
    }

    /// The SA installed with this SPI and direction.
    pub fn get(&self, spi: u32, dir: Direction) -> Option<&EngineSa> {
        self.sas.get(&(spi, dir))
    }

    /// Every installed SA, by tunnel and SPI.
    pub fn sorted(&self) -> Vec<&EngineSa> {
        let mut v: Vec<&EngineSa> = self.sas.values().collect();
        v.sort_by_key(|s| (s.params.tunnel_id, s.params.spi));
        v
    }

    /// Number of SAs and of policies.
    pub fn counts(&self) -> (usize, usize) {
        (self.sas.len(), self.policies.len())
    }

    /// After a full sync with a new dataplane: installs every SA and policy
    /// again, inbound first. Outbound SAs continue above the highest sequence
    /// number the old dataplane may have used; their SPIs are returned (the
    /// engine rekeys them: fresh keys instead of jumped numbers). An outbound
    /// SA whose numbers would start past its limit (2^32 - 1 without ESN:
    /// never wrap) is not installed at all, only rekeyed.
    pub fn resync(&mut self, inst: &mut Installer) -> Vec<u32> {
        let now = monotonic_ns();
        let mut keys: Vec<(u32, Direction)> = self.sas.keys().copied().collect();
        keys.sort_by_key(|(spi, d)| (*d == Direction::Outbound, *spi));
        let mut jumped = Vec::new();
        for k in keys {
            let (slot, kid, mut p) = {
                let s = &self.sas[&k];
                (s.slot, s.key_id, s.params.clone())
            };
            if k.1 == Direction::Outbound {
                // Everything the key may have sent: what the old dataplane
                // published (growing since, at line rate) and the ledger.
                let b = [
                    inst.shm.ledger_bound(kid, now),
                    inst.slot_bound(slot, kid, now, false),
                ]
                .into_iter()
                .flatten()
                .max();
                if let Some(b) = b {
                    p.initial_seq = b.saturating_add(SEQ_MARGIN).max(p.initial_seq);
                    jumped.push(k.0);
                }
                let limit = seq_limit(p.esn);
                if p.initial_seq > limit {
                    inst.seq_refusals += 1;
                    warn!(
                        "outbound SA spi {:#010x} not installed again: its sequence numbers would \
                         start at {}, past its limit {limit}{}; rekeying",
                        p.spi,
                        p.initial_seq,
                        if p.esn { "" } else { " (no ESN)" }
                    );
                    continue;
                }
            }
            if let Err(e) = inst.install_sa(slot, kid, 0, &p) {
                error!("installing SA spi {:#010x} again: {e}", p.spi);
            }
        }
        let pols: Vec<Policy> = self.policies.values().cloned().collect();
        for p in &pols {
            inst.add_policy(p);
        }
        jumped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use espresso_core::alg::{EncrAlg, IntegAlg, Suite};
    use espresso_core::key::Key;
    use espresso_core::sa::{DfMode, Lifetime, Mode};

    fn params(spi: u32, direction: Direction, tunnel_id: u32, key: u8) -> Box<SaParams> {
        Box::new(SaParams {
            spi,
            direction,
            mode: Mode::Tunnel,
            suite: Suite {
                encr: EncrAlg::AesGcm128,
                integ: IntegAlg::None,
            },
            enc_key: Key::new(vec![key; 20]),
            auth_key: Key::default(),
            esn: false,
            replay_window: 64,
            local_addr: "192.0.2.1".parse().unwrap(),
            remote_addr: "192.0.2.2".parse().unwrap(),
            encap: None,
            selectors: Vec::new(),
            lifetime: Lifetime::default(),
            df: DfMode::Copy,
            copy_dscp: false,
            initial_seq: 1,
            allow_legacy: false,
            tunnel_id,
        })
    }

    fn installer() -> (tempfile::TempDir, Installer) {
        let dir = tempfile::tempdir().unwrap();
        let (inst, _) = Installer::attach(&dir.path().join("r.shm")).unwrap();
        (dir, inst)
    }

    const SPI: u32 = 0x2000;

    #[test]
    fn an_ike_child_never_takes_a_manual_tunnels_outbound_spi() {
        let (_d, mut inst) = installer();
        // Manual tunnel 1: spi_out SPI in its own slot.
        let slot = inst.alloc_slot().unwrap();
        inst.install_sa(slot, 11, 0, &params(SPI, Direction::Outbound, 1, 1))
            .unwrap();
        // An IKE child (tunnel 2) whose peer chose the same SPI.
        let mut eng = EngineSas::default();
        let e = eng
            .install_sa(&mut inst, params(SPI, Direction::Outbound, 2, 2))
            .unwrap_err();
        assert!(
            matches!(e, InstallError::SpiInUse { spi: SPI, owner_slot, owner_tunnel: 1, .. } if owner_slot == slot),
            "{e}"
        );
        assert_eq!(eng.counts().0, 0);
        assert_eq!(inst.spi_refusals(), 1);
        // The manual tunnel's record is untouched; the child's removal is a no-op.
        let r = inst.read_record(slot).unwrap();
        assert_eq!(
            (r.tunnel_id, r.key_id, r.state),
            (1, 11, RecordState::Installed)
        );
        eng.remove_sa(&mut inst, SPI, Direction::Outbound);
        assert_eq!(
            inst.read_record(slot).unwrap().state,
            RecordState::Installed
        );
        assert_eq!(inst.spi_owner(SPI, Direction::Outbound), Some(slot));
        // The same SPI inbound is another SA (another table in the dataplane).
        eng.install_sa(&mut inst, params(SPI, Direction::Inbound, 2, 2))
            .unwrap();
        // Once the manual tunnel lets it go, the SPI is free again.
        inst.remove_sa(slot);
        inst.release_slot(slot);
        eng.install_sa(&mut inst, params(SPI, Direction::Outbound, 2, 2))
            .unwrap();
        assert_eq!(eng.counts().0, 2);
    }

    #[test]
    fn a_manual_tunnel_added_later_never_takes_an_ike_childs_outbound_spi() {
        let (_d, mut inst) = installer();
        let mut eng = EngineSas::default();
        eng.install_sa(&mut inst, params(SPI, Direction::Outbound, 2, 2))
            .unwrap();
        let child_slot = eng.get(SPI, Direction::Outbound).unwrap().slot;
        let g = inst.spi_generation();
        // A reload adds manual tunnel 3 with spi_out = SPI.
        let slot = inst.alloc_slot().unwrap();
        let e = inst
            .install_sa(slot, 33, 0, &params(SPI, Direction::Outbound, 3, 3))
            .unwrap_err();
        assert!(
            matches!(
                e,
                InstallError::SpiInUse {
                    owner_tunnel: 2,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("0x00002000"), "{e}");
        assert!(inst.read_record(slot).is_none());
        assert_eq!(inst.spi_owner(SPI, Direction::Outbound), Some(child_slot));
        assert_eq!(inst.spi_generation(), g);
        assert_eq!(
            inst.held_spis(Direction::Outbound).collect::<Vec<_>>(),
            vec![SPI]
        );
    }

    #[test]
    fn two_ike_children_never_share_an_outbound_spi() {
        let (_d, mut inst) = installer();
        let mut one = EngineSas::default();
        let mut two = EngineSas::default();
        one.install_sa(&mut inst, params(SPI, Direction::Outbound, 2, 2))
            .unwrap();
        // Another engine (IKEv1), or another child of the same engine with
        // other keys: refused either way.
        assert!(two
            .install_sa(&mut inst, params(SPI, Direction::Outbound, 4, 4))
            .is_err());
        assert!(one
            .install_sa(&mut inst, params(SPI, Direction::Outbound, 5, 5))
            .is_err());
        let s = one.get(SPI, Direction::Outbound).unwrap();
        assert_eq!(s.params.tunnel_id, 2);
        // The same SA installed again (same keys) replaces itself in its slot.
        let slot = s.slot;
        one.install_sa(&mut inst, params(SPI, Direction::Outbound, 2, 2))
            .unwrap();
        assert_eq!(one.get(SPI, Direction::Outbound).unwrap().slot, slot);
        assert_eq!(inst.spi_refusals(), 2);
    }

    #[test]
    fn a_new_control_process_knows_which_spis_are_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.shm");
        let slot = {
            // A manual tunnel (its record keeps its slots across restarts).
            let (mut inst, _) = Installer::attach(&path).unwrap();
            let id = inst.alloc_tunnel_id().unwrap();
            let (si, so) = (inst.alloc_slot().unwrap(), inst.alloc_slot().unwrap());
            inst.save_tunnel(&TunnelRecord {
                name: "manual".into(),
                id,
                admin_up: true,
                config_hash: 1,
                slot_in: si,
                slot_out: so,
            });
            inst.install_sa(so, 11, 0, &params(SPI, Direction::Outbound, id, 1))
                .unwrap();
            so
        };
        let (mut inst, left) = Installer::attach(&path).unwrap();
        assert!(left.tunnels.contains_key("manual"));
        inst.remove_stale_slots();
        assert_eq!(inst.spi_owner(SPI, Direction::Outbound), Some(slot));
        let mut eng = EngineSas::default();
        assert!(eng
            .install_sa(&mut inst, params(SPI, Direction::Outbound, 2, 2))
            .is_err());
    }

    /// After a dataplane restart, an IKE child's outbound SA whose bound has
    /// grown past 2^32 - 1 (no ESN) is not installed again (it would wrap)
    /// but rekeyed; one below is installed above the bound; the inbound SA
    /// is installed in any case.
    #[test]
    fn resync_never_installs_an_outbound_sa_past_its_sequence_limit() {
        let (_d, mut inst) = installer();
        let mut eng = EngineSas::default();
        let near = params(0x3001, Direction::Outbound, 2, 1);
        let far = params(0x3002, Direction::Outbound, 2, 2);
        let mut esn = params(0x3003, Direction::Outbound, 2, 3);
        esn.esn = true;
        let (kn, kf, ke) = (key_id(&near), key_id(&far), key_id(&esn));
        for p in [near, far, esn, params(0x4001, Direction::Inbound, 2, 4)] {
            eng.install_sa(&mut inst, p).unwrap();
        }
        // Another one, recorded as installed long ago (its bound grew at line
        // rate since: 2^32 numbers take under 30 s at 150 Mpps).
        let old = params(0x3004, Direction::Outbound, 2, 5);
        eng.install_sa(&mut inst, old).unwrap();
        let s4 = eng.get(0x3004, Direction::Outbound).unwrap().slot;
        let mut r = inst.read_record(s4).unwrap();
        r.sent_ns = monotonic_ns().saturating_sub(60_000_000_000);
        inst.shm.write_record(s4, &r).unwrap();
        // What the dead dataplane may have sent, as frozen in the ledger.
        let top = u64::from(u32::MAX);
        for (k, seq) in [(kn, 1000), (kf, top - 10), (ke, top - 10)] {
            inst.shm.ledger_append(&LedgerEntry {
                key_id: k,
                seq,
                at_ns: u64::MAX,
            });
        }
        let mut jumped = eng.resync(&mut inst);
        jumped.sort_unstable();
        assert_eq!(jumped, vec![0x3001, 0x3002, 0x3003, 0x3004]);
        assert_eq!(inst.seq_refusals(), 2);
        let rec = |spi: u32| {
            inst.read_record(eng.get(spi, Direction::Outbound).unwrap().slot)
                .unwrap()
        };
        // (the record's own bound grows with time too: at least the ledger's)
        let n = rec(0x3001).initial_seq;
        assert!(n >= 1000 + SEQ_MARGIN && n < top, "{n}");
        assert!(rec(0x3003).initial_seq >= top - 10 + SEQ_MARGIN);
        // 0x3002's and 0x3004's records are still the first installation's.
        assert_eq!(rec(0x3002).initial_seq, 1);
        assert_eq!(rec(0x3004).initial_seq, 1);
    }
}
