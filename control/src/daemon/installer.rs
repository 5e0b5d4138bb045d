//! The SA and policy installer: the control process's one writer of the
//! shared-memory region. Everything that installs SAs or policies in the
//! dataplane does it through an [`Installer`]: the manual tunnels
//! ([`super::manual`]) and every keying engine (IKEv2 through
//! [`super::ike`], IKEv1 through [`super::ikev1`], each recording its SAs in
//! an [`super::engine_sas::EngineSas`] of its own with a policy-id range of
//! [`policy_id`]; a new engine changes nothing here).
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

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use espresso_core::sa::{Direction, Policy, SaEvent, SaParams};
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
        if let Some(old) = shm.replaced_layout() {
            warn!(
                "shm {}: the region had layout version {old} and no process held it; recreated it (mode 0600) with layout version {}, the version this program speaks",
                path.display(),
                espresso_core::shm::LAYOUT_VERSION
            );
        }
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

    /// Counts an SA refused because another SA holds its SPI (a keying
    /// engine's, [`super::engine_sas`]).
    pub fn count_spi_refusal(&mut self) {
        self.spi_refusals += 1;
    }

    /// Counts an outbound SA not installed again because its sequence
    /// numbers would start past their limit.
    pub fn count_seq_refusal(&mut self) {
        self.seq_refusals += 1;
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
