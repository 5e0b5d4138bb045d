//! The daemon's state: tunnels and policies from the configuration, what is
//! installed in the dataplane, and the rules that keep the two in step
//! (install, remove, reload, resynchronise after either process restarts,
//! lifetimes). No sockets here: [`Engine`] is driven by `daemon::run` and by tests.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use espresso_core::drop::DropReason;
use espresso_core::sa::{Direction, Policy, PolicyAction, SaEvent};
use espresso_core::shm::{
    monotonic_ns, seq_bound, ControlEnd, LedgerEntry, PolicyRecord, RecordState, SaRecord,
    SaSlotView, ShmError, SlotState, TapPacket, TunnelRecord, SEQ_MARGIN,
};
use tracing::{error, info, warn};

use super::api::{self, exit, Response, SaStatus, Status, TunnelStatus, WorkerStatus};
use crate::config::{Config, ConfigErrors, PolicyRule, StartMode, Tunnel};

/// Marks an installation error that only new keys can cure.
const EXHAUSTED: &str = "\u{1}exhausted:";

/// How long the engine waits for the dataplane to apply commands before it
/// computes sequence numbers that depend on them.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// A tunnel or a policy rule from the configuration.
#[derive(Clone, Debug)]
pub enum ItemCfg {
    /// Manual tunnel.
    Tunnel(Box<Tunnel>),
    /// Bypass/discard rule.
    Policy(PolicyRule),
}

impl ItemCfg {
    fn name(&self) -> &str {
        match self {
            ItemCfg::Tunnel(t) => &t.name,
            ItemCfg::Policy(p) => &p.name,
        }
    }
    fn start(&self) -> StartMode {
        match self {
            ItemCfg::Tunnel(t) => t.start,
            ItemCfg::Policy(p) => p.start,
        }
    }
    fn config_hash(&self) -> u64 {
        match self {
            ItemCfg::Tunnel(t) => t.config_hash(),
            ItemCfg::Policy(p) => p.config_hash(),
        }
    }
    fn policies(&self, id: u32) -> Vec<Policy> {
        match self {
            ItemCfg::Tunnel(t) => t.policies(id),
            ItemCfg::Policy(p) => p.to_policies(id),
        }
    }
}

/// Runtime state of one tunnel or policy.
#[derive(Debug)]
pub struct Item {
    /// Its configuration.
    pub cfg: ItemCfg,
    /// Tunnel id (stable across control restarts).
    pub id: u32,
    /// The operator wants it installed.
    pub admin_up: bool,
    /// SA slots (inbound, outbound) for tunnels.
    pub slots: Option<(u32, u32)>,
    /// Why it cannot run until new keys are loaded (expired lifetime,
    /// sequence space used up).
    pub expired: Option<String>,
    /// Why the last installation failed (transient: retried by `up`,
    /// `reload` and when a dataplane attaches).
    pub error: Option<String>,
    /// Soft lifetime warning given.
    pub soft_warned: bool,
    /// CLOCK_MONOTONIC ns of the installation.
    pub installed_ns: Option<u64>,
}

struct TapSub {
    tunnel_id: u32,
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
}

/// The daemon's state.
pub struct Engine {
    config_path: PathBuf,
    shm: ControlEnd,
    items: Vec<Item>,
    free_slots: BTreeSet<u32>,
    free_ids: BTreeSet<u32>,
    free_precs: BTreeSet<u32>,
    /// Policy id -> (record index, hash) of what is installed.
    policy_recs: HashMap<u32, (u32, u64)>,
    dp_alive: bool,
    /// Synced generation whose death has been accounted for in the ledger.
    frozen_for: u64,
    started: Instant,
    last_lifetime_check: Instant,
    taps: Vec<TapSub>,
    warnings: Vec<String>,
    /// `[daemon] allow_key_export` of the configuration loaded last.
    allow_key_export: bool,
    /// IKE connections and their engine.
    pub(super) ike: super::ike::IkeState,
}

fn policy_hash(p: &Policy) -> u64 {
    let text = format!("{p:?}");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x1000_0000_01b3);
    }
    h
}

impl Engine {
    /// Attaches to the dataplane's region and resynchronises with what a
    /// previous control process left there.
    pub fn new(config_path: &Path, mut config: Config) -> Result<Engine, ShmError> {
        let conns = std::mem::take(&mut config.connections);
        let shm = ControlEnd::attach(&config.daemon.shm, &espresso_core::shm::Geometry::default())?;
        let g = shm.geometry();
        let mut e = Engine {
            config_path: config_path.to_path_buf(),
            free_slots: (0..g.max_sas).collect(),
            free_ids: (1..=g.max_tunnels).collect(),
            free_precs: (0..g.max_policies).collect(),
            shm,
            items: Vec::new(),
            policy_recs: HashMap::new(),
            dp_alive: false,
            frozen_for: 0,
            started: Instant::now(),
            last_lifetime_check: Instant::now(),
            taps: Vec::new(),
            warnings: config.warnings.clone(),
            allow_key_export: config.daemon.allow_key_export,
            ike: super::ike::IkeState::new(),
        };
        for w in &config.warnings {
            warn!("{w}");
        }
        e.reattach(config);
        e.remove_stale_slots();
        e.ike_init(conns);
        Ok(e)
    }

    /// The configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Warnings of the last configuration load.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The shared-memory end (tests).
    pub fn shm(&self) -> &ControlEnd {
        &self.shm
    }

    /// Items in configuration order.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// SAs a previous control process installed for IKE (slots no tunnel
    /// record owns): their IKE SAs died with it, so they go.
    fn remove_stale_slots(&mut self) {
        let free: Vec<u32> = self.free_slots.iter().copied().collect();
        let mut n = 0;
        for s in free {
            if self
                .read_record(s)
                .is_some_and(|r| r.state == RecordState::Installed)
            {
                self.remove_sa_slot(s);
                n += 1;
            }
        }
        if n > 0 {
            info!("removed {n} SA(s) of IKE SAs of the previous control process");
        }
    }

    pub(super) fn alloc_tunnel_id(&mut self) -> Option<u32> {
        self.alloc_id()
    }

    pub(super) fn free_tunnel_id(&mut self, id: u32) {
        let _ = self.shm.clear_tunnel(id);
        self.taps.retain(|s| s.tunnel_id != id);
        self.shm.set_tap(id, false);
        self.free_ids.insert(id);
    }

    pub(super) fn alloc_sa_slot(&mut self) -> Option<u32> {
        self.alloc_slot()
    }

    pub(super) fn release_sa_slot(&mut self, slot: u32) {
        self.free_slots.insert(slot);
    }

    pub(super) fn shm_command_head(&self) -> u64 {
        self.shm.command_head()
    }

    pub(super) fn write_sa_record(&self, slot: u32, rec: &SaRecord) {
        if let Err(e) = self.shm.write_record(slot, rec) {
            error!("recording SA spi {:#010x}: {e}", rec.spi);
        }
    }

    pub(super) fn send_sa(&mut self, slot: u32, key_id: u64, p: &espresso_core::sa::SaParams) {
        let r = self.shm.add_sa(slot, key_id, p);
        self.send("an SA", r);
    }

    pub(super) fn read_slot_view(&self, slot: u32) -> Option<SaSlotView> {
        self.read_view(slot)
    }

    /// Highest sequence number an outbound SA may have reached (any dataplane).
    pub(super) fn slot_seq_bound(&self, slot: u32, key_id: u64, now: u64) -> Option<u64> {
        self.slot_bound(slot, key_id, now, false)
    }

    fn alloc_id(&mut self) -> Option<u32> {
        let id = *self.free_ids.iter().next()?;
        self.free_ids.remove(&id);
        Some(id)
    }

    fn alloc_slot(&mut self) -> Option<u32> {
        let s = *self.free_slots.iter().next()?;
        self.free_slots.remove(&s);
        Some(s)
    }

    fn new_item(&mut self, cfg: ItemCfg, admin_up: bool) -> Option<Item> {
        let id = self.alloc_id()?;
        let slots = match cfg {
            ItemCfg::Tunnel(_) => Some((self.alloc_slot()?, self.alloc_slot()?)),
            ItemCfg::Policy(_) => None,
        };
        Some(Item {
            cfg,
            id,
            admin_up,
            slots,
            expired: None,
            error: None,
            soft_warned: false,
            installed_ns: None,
        })
    }

    fn save_record(&self, it: &Item) {
        let (slot_in, slot_out) = it.slots.unwrap_or((u32::MAX, u32::MAX));
        let r = TunnelRecord {
            name: it.cfg.name().to_string(),
            id: it.id,
            admin_up: it.admin_up,
            config_hash: it.cfg.config_hash(),
            slot_in,
            slot_out,
        };
        if let Err(e) = self.shm.write_tunnel(&r) {
            error!("recording tunnel {}: {e}", r.name);
        }
    }

    fn items_from_config(config: Config) -> Vec<ItemCfg> {
        let mut v: Vec<ItemCfg> = config
            .tunnels
            .into_iter()
            .map(|t| ItemCfg::Tunnel(Box::new(t)))
            .collect();
        v.extend(config.policies.into_iter().map(ItemCfg::Policy));
        v
    }

    /// Builds the item list from the configuration and the records a previous
    /// control process left, then brings the dataplane in line.
    fn reattach(&mut self, config: Config) {
        let mut recs: HashMap<String, TunnelRecord> = HashMap::new();
        let mut damaged = false;
        for (id, r) in self.shm.tunnels() {
            match r {
                Ok(r) => {
                    self.free_ids.remove(&r.id);
                    for s in [r.slot_in, r.slot_out] {
                        self.free_slots.remove(&s);
                    }
                    recs.insert(r.name.clone(), r);
                }
                Err(e) => {
                    warn!("tunnel record {id} is damaged ({e}): resynchronising the dataplane in full");
                    damaged = true;
                    let _ = self.shm.clear_tunnel(id);
                }
            }
        }
        for (i, r) in self.shm.policy_records() {
            self.free_precs.remove(&i);
            match r {
                Ok(p) => {
                    self.policy_recs.insert(p.id, (i, p.hash));
                }
                Err(e) => {
                    warn!(
                        "policy record {i} is damaged ({e}): resynchronising the dataplane in full"
                    );
                    damaged = true;
                    let _ = self.shm.clear_policy_record(i);
                    self.free_precs.insert(i);
                }
            }
        }
        let reattached = !recs.is_empty();
        for cfg in Self::items_from_config(config) {
            let item = match recs.remove(cfg.name()) {
                Some(r) if r.slot_in != u32::MAX || matches!(cfg, ItemCfg::Policy(_)) => Item {
                    admin_up: r.admin_up && cfg.start() != StartMode::Ignore,
                    slots: match cfg {
                        ItemCfg::Tunnel(_) => Some((r.slot_in, r.slot_out)),
                        ItemCfg::Policy(_) => None,
                    },
                    cfg,
                    id: r.id,
                    expired: None,
                    error: None,
                    soft_warned: false,
                    installed_ns: None,
                },
                other => {
                    if let Some(r) = other {
                        // A policy became a tunnel (or the other way): start afresh.
                        self.orphan(r);
                    }
                    let up = cfg.start() == StartMode::Start;
                    match self.new_item(cfg, up) {
                        Some(i) => i,
                        None => {
                            error!("out of tunnel ids or SA slots in the shared-memory region");
                            continue;
                        }
                    }
                }
            };
            self.save_record(&item);
            self.items.push(item);
        }
        // Records of tunnels no longer configured.
        for (_, r) in recs {
            self.orphan(r);
        }
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
            self.incremental_sync();
        } else {
            // The dataplane we last installed into is gone (or unknown): bound
            // what it may have sent, and install everything when one attaches.
            if synced != 0 {
                self.freeze();
            }
            self.frozen_for = synced;
            self.dp_alive = false;
            if damaged && info.alive && info.generation == synced {
                self.full_sync();
            }
        }
    }

    /// Removes what a record of a tunnel no longer configured installed.
    fn orphan(&mut self, r: TunnelRecord) {
        info!("tunnel {} is no longer configured: removing it", r.name);
        let ids: Vec<u32> = self
            .policy_recs
            .keys()
            .copied()
            .filter(|id| id >> 16 == r.id)
            .collect();
        for id in ids {
            self.remove_policy(id);
        }
        if r.slot_in != u32::MAX {
            for s in [r.slot_in, r.slot_out] {
                self.remove_sa_slot(s);
                self.free_slots.insert(s);
            }
        }
        let _ = self.shm.clear_tunnel(r.id);
        self.free_ids.insert(r.id);
    }

    pub(super) fn dp_live(&self) -> bool {
        self.dp_alive
    }

    fn read_record(&self, slot: u32) -> Option<SaRecord> {
        match self.shm.read_record(slot) {
            Ok(Ok(r)) => r,
            _ => None,
        }
    }

    fn read_view(&self, slot: u32) -> Option<SaSlotView> {
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
    fn slot_bound(&self, slot: u32, key_id: u64, now: u64, current_only: bool) -> Option<u64> {
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

    /// Records in the ledger what every outbound SA of the last synced
    /// dataplane may have sent: that dataplane is gone, so the bounds stop growing.
    fn freeze(&mut self) {
        let now = monotonic_ns();
        let mut n = 0;
        for it in &self.items {
            let Some((_, slot)) = it.slots else { continue };
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

    /// Sends a barrier and waits (bounded) until the dataplane has applied
    /// everything before it. False if it did not (dead or too slow).
    pub(super) fn wait_applied(&mut self) -> bool {
        let Ok(token) = self.shm.sync() else {
            return false;
        };
        let until = Instant::now() + APPLY_TIMEOUT;
        while Instant::now() < until {
            if self.shm.synced(token) {
                return true;
            }
            if !self.shm.dataplane().alive {
                return false;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        false
    }

    fn send<T>(&self, what: &str, r: Result<T, ShmError>) -> bool {
        match r {
            Ok(_) => true,
            Err(e) => {
                error!("sending {what} to the dataplane: {e}");
                false
            }
        }
    }

    pub(super) fn remove_sa_slot(&mut self, slot: u32) {
        let Some(mut rec) = self.read_record(slot) else {
            return;
        };
        if rec.state != RecordState::Installed {
            return;
        }
        rec.state = RecordState::Removed;
        rec.cmd_pos = self.shm.command_head();
        let _ = self.shm.write_record(slot, &rec);
        if self.dp_live() {
            let r = self.shm.remove_sa(slot, rec.spi, rec.direction);
            self.send("an SA removal", r);
        }
    }

    pub(super) fn remove_policy(&mut self, id: u32) {
        if let Some((idx, _)) = self.policy_recs.remove(&id) {
            let _ = self.shm.clear_policy_record(idx);
            self.free_precs.insert(idx);
            if self.dp_live() {
                let r = self.shm.remove_policy(id);
                self.send("a policy removal", r);
            }
        }
    }

    pub(super) fn add_policy(&mut self, p: &Policy) -> bool {
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
        if self.dp_live() {
            let r = self.shm.add_policy(p);
            return self.send("a policy", r);
        }
        true
    }

    /// Installs (or replaces) everything of item `i`.
    fn install(&mut self, i: usize) -> Result<(), String> {
        let id = self.items[i].id;
        if let ItemCfg::Tunnel(t) = &self.items[i].cfg {
            let t = t.clone();
            let (slot_in, slot_out) = self.items[i].slots.ok_or("tunnel without SA slots")?;
            self.install_sa(&t, id, Direction::Inbound, slot_in)?;
            self.install_sa(&t, id, Direction::Outbound, slot_out)?;
        }
        let want = self.items[i].cfg.policies(id);
        for p in &want {
            if !self.add_policy(p) {
                return Err("policy could not be sent to the dataplane".into());
            }
        }
        let stale: Vec<u32> = self
            .policy_recs
            .keys()
            .copied()
            .filter(|pid| pid >> 16 == id && !want.iter().any(|p| p.id == *pid))
            .collect();
        for pid in stale {
            self.remove_policy(pid);
        }
        let it = &mut self.items[i];
        it.installed_ns = Some(monotonic_ns());
        it.soft_warned = false;
        it.error = None;
        Ok(())
    }

    fn install_sa(&mut self, t: &Tunnel, id: u32, dir: Direction, slot: u32) -> Result<(), String> {
        let key_id = t.key_id(dir);
        let spi = if dir == Direction::Inbound {
            t.spi_in
        } else {
            t.spi_out
        };
        let rec = self.read_record(slot);
        let mut pending_removal = false;
        if let Some(r) = &rec {
            if r.state == RecordState::Installed && r.spi != spi {
                // A new SPI: the old SA goes first.
                self.remove_sa_slot(slot);
                pending_removal = true;
            } else if r.state == RecordState::Removed && r.key_id == key_id {
                pending_removal = true;
            }
        }
        if dir == Direction::Outbound && pending_removal && self.dp_live() && !self.wait_applied() {
            return Err(
                "the dataplane did not apply the removal of the previous SA in time".into(),
            );
        }
        let now = monotonic_ns();
        let current_only = self.dp_live();
        let initial_seq = match dir {
            Direction::Outbound => {
                let b = [
                    self.shm.ledger_bound(key_id, now),
                    self.slot_bound(slot, key_id, now, current_only),
                ]
                .into_iter()
                .flatten()
                .max();
                match b {
                    None => 1,
                    Some(b) => b.saturating_add(SEQ_MARGIN),
                }
            }
            // Above the highest sequence number received under this key
            // (as last published, also by a dataplane that died since): the
            // replay window starts there, so packets captured before are
            // refused after a reinstall.
            Direction::Inbound => self
                .read_view(slot)
                .filter(|v| v.key_id == key_id && v.direction == Direction::Inbound)
                .map_or(0, |v| if v.stats.seq > 0 { v.stats.seq + 1 } else { 0 }),
        };
        let limit = if t.esn {
            u64::MAX - SEQ_MARGIN
        } else {
            u64::from(u32::MAX)
        };
        if initial_seq >= limit {
            return Err(format!(
                "{EXHAUSTED}outbound sequence numbers of this key are used up (next would be {initial_seq}): \
                 install new keys (espresso genkey) and reload{}",
                if t.esn {
                    ""
                } else {
                    ", or turn on esn on both gateways"
                }
            ));
        }
        let params = t.sa_params(dir, id, initial_seq);
        let r = SaRecord {
            state: RecordState::Installed,
            direction: dir,
            tunnel_id: id,
            spi,
            key_id,
            params_hash: t.params_hash(dir),
            initial_seq,
            sent_ns: now,
            cmd_pos: self.shm.command_head(),
        };
        self.shm
            .write_record(slot, &r)
            .map_err(|e| format!("recording the SA: {e}"))?;
        if self.dp_live() {
            self.shm
                .add_sa(slot, key_id, &params)
                .map_err(|e| format!("sending the SA to the dataplane: {e}"))?;
        }
        if dir == Direction::Outbound && initial_seq > 1 {
            info!(
                "tunnel {}: outbound SA spi {spi:#x} continues at sequence {initial_seq} (keys used before)",
                t.name
            );
        }
        Ok(())
    }

    /// Takes item `i` out of service. A configured tunnel's traffic is then
    /// held: its policies turn to discard (as FreeS/WAN keeps the route into
    /// KLIPS after `down`), so nothing meant for the tunnel leaves in the
    /// clear. Policy rules, and tunnels with `start = "ignore"`, are removed.
    fn uninstall(&mut self, i: usize) {
        let id = self.items[i].id;
        let hold: Vec<Policy> = match &self.items[i].cfg {
            ItemCfg::Tunnel(t) if t.start != StartMode::Ignore => t
                .policies(id)
                .into_iter()
                .map(|mut p| {
                    p.action = PolicyAction::Discard;
                    p
                })
                .collect(),
            _ => Vec::new(),
        };
        let stale: Vec<u32> = self
            .policy_recs
            .keys()
            .copied()
            .filter(|pid| pid >> 16 == id && !hold.iter().any(|p| p.id == *pid))
            .collect();
        for pid in stale {
            self.remove_policy(pid);
        }
        for p in &hold {
            self.add_policy(p);
        }
        if let Some((a, b)) = self.items[i].slots {
            self.remove_sa_slot(b);
            self.remove_sa_slot(a);
        }
        self.items[i].installed_ns = None;
    }

    /// Removes everything of item `i` (it leaves the configuration).
    fn purge(&mut self, i: usize) {
        let id = self.items[i].id;
        let ids: Vec<u32> = self
            .policy_recs
            .keys()
            .copied()
            .filter(|pid| pid >> 16 == id)
            .collect();
        for pid in ids {
            self.remove_policy(pid);
        }
        if let Some((a, b)) = self.items[i].slots {
            self.remove_sa_slot(b);
            self.remove_sa_slot(a);
        }
        self.items[i].installed_ns = None;
    }

    fn wants_installed(it: &Item) -> bool {
        it.admin_up && it.expired.is_none() && it.cfg.start() != StartMode::Ignore
    }

    /// After a control restart with the same dataplane: send only differences.
    fn incremental_sync(&mut self) {
        let head = self.shm.command_head();
        for i in 0..self.items.len() {
            if !Self::wants_installed(&self.items[i]) {
                self.uninstall(i);
                continue;
            }
            let mut same = true;
            if let (ItemCfg::Tunnel(t), Some((si, so))) = (&self.items[i].cfg, self.items[i].slots)
            {
                let mut at = None;
                for (slot, dir) in [(si, Direction::Inbound), (so, Direction::Outbound)] {
                    match self.read_record(slot) {
                        Some(r)
                            if r.state == RecordState::Installed
                                && r.params_hash == t.params_hash(dir)
                                && r.cmd_pos < head =>
                        {
                            at = Some(r.sent_ns);
                        }
                        _ => same = false,
                    }
                }
                if same {
                    self.items[i].installed_ns = at;
                }
            }
            let id = self.items[i].id;
            let want = self.items[i].cfg.policies(id);
            if !want.iter().all(|p| {
                self.policy_recs
                    .get(&p.id)
                    .is_some_and(|(_, h)| *h == policy_hash(p))
            }) {
                same = false;
            }
            if !same {
                let name = self.items[i].cfg.name().to_string();
                info!("{name}: differs from what the dataplane holds: installing");
                if let Err(e) = self.install(i) {
                    self.fail(i, e);
                }
            }
        }
        // Policies recorded for ids no item owns.
        let owned: BTreeSet<u32> = self.items.iter().map(|i| i.id).collect();
        let stray: Vec<u32> = self
            .policy_recs
            .keys()
            .copied()
            .filter(|pid| !owned.contains(&(pid >> 16)))
            .collect();
        for pid in stray {
            self.remove_policy(pid);
        }
    }

    /// A new dataplane: flush whatever it holds and install everything.
    fn full_sync(&mut self) {
        let info = self.shm.dataplane();
        info!(
            "dataplane pid {} (generation {}) attached: installing every SA and policy",
            info.pid, info.generation
        );
        self.dp_alive = true;
        let flushed = self.shm.flush();
        if !self.send("a flush", flushed) || !self.wait_applied() {
            warn!("the dataplane did not take the flush; will retry");
            self.dp_alive = false;
            return;
        }
        // Forget policy records: the dataplane holds none now.
        for (_, (idx, _)) in std::mem::take(&mut self.policy_recs) {
            let _ = self.shm.clear_policy_record(idx);
            self.free_precs.insert(idx);
        }
        for i in 0..self.items.len() {
            if let Some((a, b)) = self.items[i].slots {
                // The flush removed the SAs: mark their records so.
                for s in [a, b] {
                    if let Some(mut r) = self.read_record(s) {
                        if r.state == RecordState::Installed {
                            r.state = RecordState::Removed;
                            let _ = self.shm.write_record(s, &r);
                        }
                    }
                }
            }
            if Self::wants_installed(&self.items[i]) {
                if let Err(e) = self.install(i) {
                    self.fail(i, e);
                }
            } else {
                self.uninstall(i);
            }
        }
        self.ike_resync();
        self.shm.set_synced_generation(info.generation);
        self.frozen_for = 0;
    }

    /// An installation failed: keys used up (needs new keys), or a
    /// transient problem (retried by `up`, `reload`, a dataplane attach).
    fn fail(&mut self, i: usize, why: String) {
        let name = self.items[i].cfg.name().to_string();
        error!("{name}: {}", why.trim_start_matches(EXHAUSTED));
        if let Some(w) = why.strip_prefix(EXHAUSTED) {
            self.items[i].expired = Some(w.to_string());
        } else {
            self.items[i].error = Some(why);
        }
        self.uninstall(i);
    }

    /// Periodic work: liveness, events, lifetimes, taps. Call every ~10 ms.
    pub fn tick(&mut self) {
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
                self.freeze();
                self.frozen_for = synced;
            }
        } else if info.generation != synced || !self.dp_alive {
            if synced != 0 && self.frozen_for != synced {
                self.freeze();
                self.frozen_for = synced;
            }
            self.full_sync();
        }
        self.events();
        self.ike_tick();
        if self.last_lifetime_check.elapsed() >= Duration::from_millis(100) {
            self.last_lifetime_check = Instant::now();
            self.lifetimes();
        }
        self.taps();
    }

    fn item_by_spi(&self, spi: u32, dir: Direction) -> Option<usize> {
        self.items.iter().position(|it| match &it.cfg {
            ItemCfg::Tunnel(t) => match dir {
                Direction::Inbound => t.spi_in == spi,
                Direction::Outbound => t.spi_out == spi,
            },
            ItemCfg::Policy(_) => false,
        })
    }

    fn events(&mut self) {
        for _ in 0..256 {
            let ev = match self.shm.pop_event() {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => {
                    warn!("event ring: {e}");
                    break;
                }
            };
            if self.ike_event(&ev) {
                continue;
            }
            match ev {
                SaEvent::SoftExpire {
                    spi,
                    direction,
                    kind,
                } => {
                    if let Some(i) = self.item_by_spi(spi, direction) {
                        self.soft(
                            i,
                            format!(
                                "soft {kind:?} lifetime of {direction:?} SA spi {spi:#x} reached"
                            )
                            .to_lowercase(),
                        );
                    }
                }
                SaEvent::HardExpire {
                    spi,
                    direction,
                    kind,
                } => {
                    if let Some(i) = self.item_by_spi(spi, direction) {
                        let why = format!("hard {kind:?} lifetime of {direction:?} SA spi {spi:#x} reached (dataplane)").to_lowercase();
                        self.expire(i, why);
                    }
                }
                SaEvent::SeqExhausted { spi } => {
                    if let Some(i) = self.item_by_spi(spi, Direction::Outbound) {
                        self.expire(i, format!("outbound SA spi {spi:#x} used up its sequence numbers: install new keys"));
                    }
                }
                SaEvent::Acquire {
                    policy_id,
                    src,
                    dst,
                    proto,
                } => {
                    info!("acquire for policy {policy_id:#x}: {src} -> {dst} proto {proto} (needs IKE)");
                }
            }
        }
    }

    fn soft(&mut self, i: usize, why: String) {
        if !self.items[i].soft_warned {
            self.items[i].soft_warned = true;
            warn!(
                "{}: {why}: manual keys do not rekey; install new keys before the hard lifetime",
                self.items[i].cfg.name()
            );
        }
    }

    fn expire(&mut self, i: usize, why: String) {
        if self.items[i].expired.is_some() {
            return;
        }
        warn!(
            "{}: expired: {why}; traffic stops until new keys are loaded",
            self.items[i].cfg.name()
        );
        self.items[i].expired = Some(why);
        self.uninstall(i);
    }

    fn lifetimes(&mut self) {
        let now = monotonic_ns();
        for i in 0..self.items.len() {
            let it = &self.items[i];
            let (ItemCfg::Tunnel(t), Some((si, so)), Some(at)) =
                (&it.cfg, it.slots, it.installed_ns)
            else {
                continue;
            };
            if it.expired.is_some() || !it.admin_up {
                continue;
            }
            let l = t.lifetime;
            let mut hard = None;
            let mut soft = None;
            for (slot, dir) in [(si, "inbound"), (so, "outbound")] {
                let Some(v) = self.read_view(slot) else {
                    continue;
                };
                let Some(rec) = self.read_record(slot) else {
                    continue;
                };
                if v.key_id != rec.key_id || v.spi != rec.spi || v.installed_ns < rec.sent_ns {
                    continue;
                }
                if v.state == SlotState::Dead {
                    hard.get_or_insert(format!(
                        "the dataplane stopped the {dir} SA spi {:#x}",
                        v.spi
                    ));
                }
                for (val, h, s, what) in [
                    (v.stats.bytes, l.hard_bytes, l.soft_bytes, "byte"),
                    (v.stats.packets, l.hard_packets, l.soft_packets, "packet"),
                ] {
                    if h > 0 && val >= h {
                        hard.get_or_insert(format!(
                            "hard {what} lifetime {h} reached by the {dir} SA spi {:#x}",
                            v.spi
                        ));
                    } else if s > 0 && val >= s {
                        soft.get_or_insert(format!(
                            "soft {what} lifetime {s} reached by the {dir} SA spi {:#x}",
                            v.spi
                        ));
                    }
                }
            }
            let age = Duration::from_nanos(now.saturating_sub(at));
            if let Some(h) = l.hard_time {
                if age >= h {
                    hard.get_or_insert(format!("hard time lifetime {}s reached", h.as_secs_f64()));
                }
            }
            if let Some(s) = l.soft_time {
                if age >= s {
                    soft.get_or_insert(format!("soft time lifetime {}s reached", s.as_secs_f64()));
                }
            }
            if let Some(h) = hard {
                self.expire(i, h);
            } else if let Some(s) = soft {
                self.soft(i, s);
            }
        }
    }

    fn taps(&mut self) {
        if self.taps.is_empty() {
            return;
        }
        let mut pkts: Vec<TapPacket> = Vec::new();
        if let Err(e) = self.shm.drain_taps(4096, &mut pkts) {
            warn!("tap ring: {e}");
        }
        let mut gone = Vec::new();
        for (n, sub) in self.taps.iter().enumerate() {
            let mut buf = Vec::new();
            for p in pkts.iter().filter(|p| p.tunnel_id == sub.tunnel_id) {
                super::pcap::record(&mut buf, p);
            }
            // An empty message probes whether the reader is still there.
            match sub.tx.try_send(buf) {
                Ok(()) | Err(std::sync::mpsc::TrySendError::Full(_)) => {}
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => gone.push(n),
            }
        }
        for n in gone.into_iter().rev() {
            let sub = self.taps.remove(n);
            if !self.taps.iter().any(|s| s.tunnel_id == sub.tunnel_id) {
                self.shm.set_tap(sub.tunnel_id, false);
                info!("tap of tunnel id {} stopped", sub.tunnel_id);
            }
        }
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.items.iter().position(|i| i.cfg.name() == name)
    }

    fn not_found(&self, name: &str) -> Response {
        let names: Vec<&str> = self
            .items
            .iter()
            .map(|i| i.cfg.name())
            .chain(self.ike.conns.iter().map(|c| c.cfg.name.as_str()))
            .collect();
        Response::err(
            exit::NOT_FOUND,
            if names.is_empty() {
                format!("no tunnel, policy or connection named {name:?} (none configured)")
            } else {
                format!(
                    "no tunnel, policy or connection named {name:?} (configured: {})",
                    names.join(", ")
                )
            },
        )
    }

    /// `espresso up NAME`.
    pub fn up(&mut self, name: &str) -> Response {
        let Some(i) = self.find(name) else {
            if self.is_ike(name) {
                return self.ike_up(name);
            }
            return self.not_found(name);
        };
        if self.items[i].cfg.start() == StartMode::Ignore {
            return Response::err(
                exit::STATE,
                format!("{name} has start = \"ignore\": change it to add or start and reload"),
            );
        }
        if let Some(why) = &self.items[i].expired {
            return Response::err(exit::STATE, format!("{name} cannot come up: {why}"));
        }
        self.items[i].admin_up = true;
        self.save_record(&self.items[i]);
        if !self.dp_live() {
            info!("{name}: up (installed when the dataplane attaches)");
            return Response::ok(format!("{name}: up; waiting for the dataplane to attach"));
        }
        match self.install(i) {
            Ok(()) => {
                info!("{name}: up");
                Response::ok(format!("{name}: up"))
            }
            Err(e) => {
                self.fail(i, e.clone());
                Response::err(
                    exit::FAILED,
                    format!("{name}: {}", e.trim_start_matches(EXHAUSTED)),
                )
            }
        }
    }

    /// `espresso down NAME`.
    pub fn down(&mut self, name: &str) -> Response {
        let Some(i) = self.find(name) else {
            if self.is_ike(name) {
                return self.ike_down(name);
            }
            return self.not_found(name);
        };
        self.items[i].admin_up = false;
        self.save_record(&self.items[i]);
        self.uninstall(i);
        info!("{name}: down");
        Response::ok(format!("{name}: down"))
    }

    /// `espresso reload [NAME]`. The whole configuration must load; if it
    /// does not, nothing changes.
    pub fn reload(&mut self, name: Option<&str>) -> Response {
        let config = match Config::load(&self.config_path) {
            Ok(c) => c,
            Err(ConfigErrors(errs)) => {
                let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
                warn!(
                    "reload refused: {} error(s) in the configuration; nothing changed",
                    lines.len()
                );
                for l in &lines {
                    warn!("{l}");
                }
                return Response {
                    code: exit::CONFIG,
                    message: format!(
                        "configuration has {} error(s); nothing was changed",
                        lines.len()
                    ),
                    lines,
                    ..Default::default()
                };
            }
        };
        if config.daemon.shm != *self.shm.path() {
            return Response::err(exit::CONFIG, format!(
                "daemon.shm changed to {}: restart the daemon to move to another dataplane; nothing was changed",
                config.daemon.shm.display()
            ));
        }
        self.warnings = config.warnings.clone();
        self.allow_key_export = config.daemon.allow_key_export;
        let mut config = config;
        let conns = std::mem::take(&mut config.connections);
        let new: Vec<ItemCfg> = Self::items_from_config(config);
        match name {
            Some(n) if self.is_ike(n) || conns.iter().any(|c| c.name == n) => {
                let changed = self.ike_reload(conns, Some(n));
                info!(
                    "{n}: reloaded ({})",
                    if changed.is_empty() {
                        "no changes".to_string()
                    } else {
                        changed.join(", ")
                    }
                );
                Response::ok(if changed.is_empty() {
                    format!("{n}: reloaded: no changes")
                } else {
                    format!("reloaded: {}", changed.join(", "))
                })
            }
            Some(n) => self.reload_one(n, new),
            None => {
                let changed = self.ike_reload(conns, None);
                let mut r = self.reload_all(new);
                if !changed.is_empty() {
                    info!("connections reloaded: {}", changed.join(", "));
                    r.message = if r.message == "reloaded: no changes" {
                        format!("reloaded: {}", changed.join(", "))
                    } else {
                        format!("{}, {}", r.message, changed.join(", "))
                    };
                }
                r
            }
        }
    }

    fn reload_one(&mut self, name: &str, new: Vec<ItemCfg>) -> Response {
        let cfg = new.into_iter().find(|c| c.name() == name);
        let old = self.find(name);
        match (old, cfg) {
            (None, None) => self.not_found(name),
            (Some(i), None) => {
                self.purge(i);
                let it = self.items.remove(i);
                self.release(it);
                info!("{name}: removed (no longer in the configuration)");
                Response::ok(format!("{name}: removed (no longer in the configuration)"))
            }
            (old, Some(cfg)) => {
                if let Some(conflict) = self.spi_conflict(&cfg, name) {
                    return Response::err(
                        exit::CONFIG,
                        format!("{name}: {conflict}; nothing was changed"),
                    );
                }
                let i = match old {
                    Some(i) => {
                        let keys_changed = self.keys_differ(&self.items[i].cfg, &cfg);
                        let it = &mut self.items[i];
                        if keys_changed {
                            it.expired = None;
                        }
                        if cfg.start() == StartMode::Ignore {
                            it.admin_up = false;
                        }
                        it.cfg = cfg;
                        i
                    }
                    None => {
                        let up = cfg.start() == StartMode::Start;
                        let Some(it) = self.new_item(cfg, up) else {
                            return Response::err(exit::FAILED, "out of tunnel ids or SA slots");
                        };
                        self.items.push(it);
                        self.items.len() - 1
                    }
                };
                self.save_record(&self.items[i]);
                if Self::wants_installed(&self.items[i]) {
                    if !self.dp_live() {
                        return Response::ok(format!(
                            "{name}: reloaded; installed when the dataplane attaches"
                        ));
                    }
                    if let Err(e) = self.install(i) {
                        self.fail(i, e.clone());
                        return Response::err(
                            exit::FAILED,
                            format!("{name}: {}", e.trim_start_matches(EXHAUSTED)),
                        );
                    }
                    info!("{name}: reloaded and re-installed");
                    Response::ok(format!("{name}: reloaded"))
                } else {
                    self.uninstall(i);
                    Response::ok(format!("{name}: reloaded (down)"))
                }
            }
        }
    }

    fn keys_differ(&self, a: &ItemCfg, b: &ItemCfg) -> bool {
        match (a, b) {
            (ItemCfg::Tunnel(a), ItemCfg::Tunnel(b)) => {
                a.key_id(Direction::Outbound) != b.key_id(Direction::Outbound)
                    || a.key_id(Direction::Inbound) != b.key_id(Direction::Inbound)
            }
            _ => true,
        }
    }

    /// An SPI of `cfg` used by another installed tunnel.
    fn spi_conflict(&self, cfg: &ItemCfg, name: &str) -> Option<String> {
        let ItemCfg::Tunnel(t) = cfg else { return None };
        for it in &self.items {
            let ItemCfg::Tunnel(o) = &it.cfg else {
                continue;
            };
            if o.name == name || o.start == StartMode::Ignore {
                continue;
            }
            if o.spi_in == t.spi_in {
                return Some(format!("spi_in {:#x} is used by tunnel {} as loaded now (reload everything to move SPIs between tunnels)", t.spi_in, o.name));
            }
            if o.spi_out == t.spi_out {
                return Some(format!("spi_out {:#x} is used by tunnel {} as loaded now (reload everything to move SPIs between tunnels)", t.spi_out, o.name));
            }
        }
        None
    }

    fn release(&mut self, it: Item) {
        if let Some((a, b)) = it.slots {
            self.free_slots.insert(a);
            self.free_slots.insert(b);
        }
        let _ = self.shm.clear_tunnel(it.id);
        self.free_ids.insert(it.id);
        self.taps.retain(|s| s.tunnel_id != it.id);
        self.shm.set_tap(it.id, false);
    }

    fn reload_all(&mut self, new: Vec<ItemCfg>) -> Response {
        let mut changed = Vec::new();
        // Removed items first (their SPIs may move to other tunnels).
        let mut i = 0;
        while i < self.items.len() {
            let name = self.items[i].cfg.name().to_string();
            if new.iter().any(|c| c.name() == name) {
                i += 1;
                continue;
            }
            self.purge(i);
            let it = self.items.remove(i);
            self.release(it);
            changed.push(format!("{name}: removed"));
        }
        // Changed items whose SPIs move must leave the way before others take them.
        let mut order = Vec::new();
        for cfg in new {
            let name = cfg.name().to_string();
            match self.find(&name) {
                Some(i) if self.items[i].cfg.config_hash() == cfg.config_hash() => {
                    self.items[i].cfg = cfg;
                    order.push(i);
                }
                Some(i) => {
                    if self.keys_differ(&self.items[i].cfg, &cfg) {
                        self.items[i].expired = None;
                    }
                    let was_start = self.items[i].cfg.start();
                    if cfg.start() == StartMode::Ignore {
                        self.items[i].admin_up = false;
                    } else if was_start == StartMode::Ignore && cfg.start() == StartMode::Start {
                        self.items[i].admin_up = true;
                    }
                    self.uninstall(i);
                    self.items[i].cfg = cfg;
                    self.save_record(&self.items[i]);
                    changed.push(format!("{name}: changed"));
                    order.push(i);
                }
                None => {
                    let up = cfg.start() == StartMode::Start;
                    let Some(it) = self.new_item(cfg, up) else {
                        return Response::err(exit::FAILED, "out of tunnel ids or SA slots");
                    };
                    self.save_record(&it);
                    self.items.push(it);
                    changed.push(format!("{name}: added"));
                    order.push(self.items.len() - 1);
                }
            }
        }
        // Keep configuration order.
        let mut items: Vec<Option<Item>> = std::mem::take(&mut self.items)
            .into_iter()
            .map(Some)
            .collect();
        self.items = order.iter().filter_map(|&i| items[i].take()).collect();
        for i in 0..self.items.len() {
            if Self::wants_installed(&self.items[i])
                && self.dp_live()
                && self.items[i].installed_ns.is_none()
            {
                if let Err(e) = self.install(i) {
                    self.fail(i, e);
                }
            }
        }
        info!(
            "configuration reloaded: {}",
            if changed.is_empty() {
                "no changes".to_string()
            } else {
                changed.join(", ")
            }
        );
        Response {
            code: exit::OK,
            message: if changed.is_empty() {
                "reloaded: no changes".into()
            } else {
                format!("reloaded: {}", changed.join(", "))
            },
            lines: self.warnings.clone(),
            ..Default::default()
        }
    }

    /// Starts a tap on tunnel `name`; the receiver gets pcap record bytes.
    pub fn tap(&mut self, name: &str) -> Result<std::sync::mpsc::Receiver<Vec<u8>>, Box<Response>> {
        let Some(i) = self.find(name) else {
            return Err(Box::new(self.not_found(name)));
        };
        let id = self.items[i].id;
        if !matches!(self.items[i].cfg, ItemCfg::Tunnel(_)) {
            return Err(Box::new(Response::err(
                exit::STATE,
                format!("{name} is a policy, not a tunnel: nothing is decrypted there"),
            )));
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(256);
        if !self.taps.iter().any(|s| s.tunnel_id == id) {
            self.shm.discard_taps();
        }
        self.taps.push(TapSub { tunnel_id: id, tx });
        self.shm.set_tap(id, true);
        info!("{name}: tap started");
        Ok(rx)
    }

    /// `espresso keys [NAME]`: both SAs of every running tunnel (or of
    /// `name`) with their keys. Refused unless the configuration has
    /// `[daemon] allow_key_export = true`. Nothing here is logged.
    pub fn keys(&self, name: Option<&str>) -> Response {
        if !self.allow_key_export {
            return Response::err(
                exit::STATE,
                "key export is off: set `allow_key_export = true` in [daemon] of the configuration \
                 and reload (anyone who can read the keys can decrypt the tunnels' traffic)",
            );
        }
        let ike_only = name.is_some_and(|n| self.is_ike(n));
        let idx: Vec<usize> = match name {
            Some(_) if ike_only => Vec::new(),
            Some(n) => match self.find(n) {
                None => return self.not_found(n),
                Some(i) => {
                    let it = &self.items[i];
                    if !matches!(it.cfg, ItemCfg::Tunnel(_)) {
                        return Response::err(
                            exit::STATE,
                            format!("{n} is a policy, not a tunnel: it has no keys"),
                        );
                    }
                    if it.installed_ns.is_none() {
                        return Response::err(
                            exit::STATE,
                            format!("{n} is not running: it has no SAs installed"),
                        );
                    }
                    vec![i]
                }
            },
            None => (0..self.items.len()).collect(),
        };
        let mut keys = Vec::new();
        for i in idx {
            let it = &self.items[i];
            let ItemCfg::Tunnel(t) = &it.cfg else {
                continue;
            };
            if it.installed_ns.is_none() {
                continue;
            }
            for dir in [Direction::Inbound, Direction::Outbound] {
                let p = t.sa_params(dir, it.id, 0);
                let (src, dst, ports) = match dir {
                    Direction::Inbound => (
                        t.remote,
                        t.local,
                        t.encap.map(|e| (e.remote_port, e.local_port)),
                    ),
                    Direction::Outbound => (
                        t.local,
                        t.remote,
                        t.encap.map(|e| (e.local_port, e.remote_port)),
                    ),
                };
                keys.push(api::SaKeys {
                    tunnel: t.name.clone(),
                    direction: if dir == Direction::Inbound {
                        "in"
                    } else {
                        "out"
                    }
                    .into(),
                    src: src.to_string(),
                    dst: dst.to_string(),
                    spi: p.spi,
                    mode: format!("{:?}", t.mode).to_lowercase(),
                    encr: t.suite.encr.name().into(),
                    enc_key: hex_lower(p.enc_key.bytes()),
                    integ: t.suite.integ.name().into(),
                    auth_key: hex_lower(p.auth_key.bytes()),
                    esn: t.esn,
                    udp_ports: ports,
                });
            }
        }
        if name.is_none() || ike_only {
            self.ike_keys(name, &mut keys);
        }
        if ike_only && keys.is_empty() {
            return Response::err(
                exit::STATE,
                format!("{} has no child SA installed", name.unwrap_or_default()),
            );
        }
        info!(
            "keys of {} SA(s) exported to the CLI{}",
            keys.len(),
            name.map(|n| format!(" (tunnel {n})")).unwrap_or_default()
        );
        Response {
            keys,
            ..Response::ok("")
        }
    }

    /// Everything `espresso status` shows.
    pub fn status(&self) -> Status {
        let info = self.shm.dataplane();
        let now = monotonic_ns();
        let mut st = Status {
            control: api::ControlStatus {
                pid: std::process::id(),
                generation: self.shm.generation(),
                config: self.config_path.display().to_string(),
                shm: self.shm.path().display().to_string(),
                uptime_s: self.started.elapsed().as_secs(),
            },
            dataplane: api::DataplaneStatus {
                alive: info.alive,
                generation: info.generation,
                pid: info.pid,
                workers: info.workers,
                heartbeat_age_ms: now.saturating_sub(info.heartbeat_ns) / 1_000_000,
                events_lost: info.events_lost,
                tap_lost: info.tap_lost,
                cmd_corrupt: info.cmd_corrupt,
                cmd_pending: self.shm.command_pending(),
            },
            ..Default::default()
        };
        for it in &self.items {
            st.tunnels
                .push(self.item_status(it, info.alive, info.generation, now));
        }
        self.ike_status(&mut st, info.alive, info.generation);
        for w in 0..(info.workers.min(u64::from(self.shm.geometry().max_workers)) as u32) {
            if let Ok(Some(v)) = self.shm.read_worker(w) {
                st.workers.push(WorkerStatus {
                    worker: w,
                    rx_packets: v.stats.rx_packets,
                    rx_bytes: v.stats.rx_bytes,
                    tx_packets: v.stats.tx_packets,
                    tx_bytes: v.stats.tx_bytes,
                    drops_by_reason: drops_map(&v.stats.drops),
                });
            }
        }
        st
    }

    fn item_status(&self, it: &Item, alive: bool, gen: u64, now: u64) -> TunnelStatus {
        let mut ts = TunnelStatus {
            name: it.cfg.name().to_string(),
            id: it.id,
            start: format!("{:?}", it.cfg.start()).to_lowercase(),
            soft_expired: it.soft_warned,
            ..Default::default()
        };
        let synced = self.shm.synced_generation() == gen;
        let mut active = true;
        match &it.cfg {
            ItemCfg::Tunnel(t) => {
                ts.kind = "tunnel".into();
                ts.local = t.local.to_string();
                ts.remote = t.remote.to_string();
                ts.local_subnets = t.local_subnets.iter().map(|n| n.to_string()).collect();
                ts.remote_subnets = t.remote_subnets.iter().map(|n| n.to_string()).collect();
                ts.mode = format!("{:?}", t.mode).to_lowercase();
                ts.suite = t.suite.to_string();
                if let Some((si, so)) = it.slots {
                    let installed = it.installed_ns.is_some();
                    for (slot, spi, dir) in [
                        (si, t.spi_in, Direction::Inbound),
                        (so, t.spi_out, Direction::Outbound),
                    ] {
                        let v = self.read_view(slot).filter(|v| {
                            installed
                                && v.spi == spi
                                && v.direction == dir
                                && v.generation == gen
                                && v.key_id == t.key_id(dir)
                        });
                        let sa = match v {
                            Some(v) => SaStatus {
                                spi,
                                spi_hex: format!("{spi:#x}"),
                                packets: v.stats.packets,
                                bytes: v.stats.bytes,
                                drops: v.stats.drops.iter().sum(),
                                drops_by_reason: drops_map(&v.stats.drops),
                                seq: v.stats.seq,
                                active: v.state == SlotState::Active && alive,
                            },
                            None => SaStatus {
                                spi,
                                spi_hex: format!("{spi:#x}"),
                                ..Default::default()
                            },
                        };
                        active &= sa.active;
                        if dir == Direction::Inbound {
                            ts.inbound = Some(sa);
                        } else {
                            ts.outbound = Some(sa);
                        }
                    }
                }
            }
            ItemCfg::Policy(p) => {
                ts.kind = "policy".into();
                ts.local_subnets = p.local_subnets.iter().map(|n| n.to_string()).collect();
                ts.remote_subnets = p.remote_subnets.iter().map(|n| n.to_string()).collect();
                ts.mode = format!("{:?}", p.action).to_lowercase();
            }
        }
        ts.age_s = it
            .installed_ns
            .map(|t| now.saturating_sub(t) / 1_000_000_000);
        let refused = match (&it.cfg, it.slots, it.installed_ns) {
            (ItemCfg::Tunnel(t), Some((si, so)), Some(_)) => [(si, t.spi_in), (so, t.spi_out)]
                .iter()
                .find_map(|&(slot, spi)| {
                    self.read_view(slot).filter(|v| {
                        v.generation == gen && v.spi == spi && v.state == SlotState::Refused
                    })
                }),
            _ => None,
        };
        let (state, reason) = if let Some(why) = &it.expired {
            ("expired", Some(why.clone()))
        } else if let (Some(why), None) = (&it.error, it.installed_ns) {
            ("error", Some(why.clone()))
        } else if let (Some(v), true) = (&refused, it.admin_up) {
            (
                "error",
                Some(format!(
                    "the dataplane refused the {} SA spi {:#x}: {}",
                    if v.direction == Direction::Inbound {
                        "inbound"
                    } else {
                        "outbound"
                    },
                    v.spi,
                    v.refused
                        .map_or_else(|| "its log says why".to_string(), |r| r.describe())
                )),
            )
        } else if it.cfg.start() == StartMode::Ignore {
            ("down", Some("start = ignore".to_string()))
        } else if !it.admin_up {
            ("down", None)
        } else if !alive {
            ("pending", Some("dataplane not running".into()))
        } else if !synced || !active {
            ("pending", Some("dataplane has not applied it yet".into()))
        } else {
            ("up", None)
        };
        ts.state = state.into();
        ts.reason = reason;
        ts
    }
}

pub(super) fn hex_lower(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

pub(super) fn drops_map(d: &[u64]) -> BTreeMap<String, u64> {
    DropReason::ALL
        .iter()
        .filter(|r| d[r.index()] > 0)
        .map(|r| (r.as_str().to_string(), d[r.index()]))
        .collect()
}
