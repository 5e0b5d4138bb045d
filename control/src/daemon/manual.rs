//! Manually keyed tunnels and policy rules (`[[tunnel]]`, `[[policy]]`):
//! what the configuration asks for, what is installed through the
//! [`Installer`], and the rules that keep the two in step (install, hold on
//! `down`, reload, resynchronise after either process restarts, lifetimes:
//! manual keys do not rekey, so a hard lifetime takes the tunnel down until
//! new keys are loaded).

use std::collections::BTreeSet;
use std::time::Duration;

use espresso_core::sa::{Direction, Policy, PolicyAction, SaEvent};
use espresso_core::shm::{monotonic_ns, RecordState, SlotState, TunnelRecord, SEQ_MARGIN};
use tracing::{error, info, warn};

use super::api::{self, exit, Response};
use super::installer::{policy_id, Installer, Leftovers, Resume};
use crate::config::{Config, PolicyRule, StartMode, Tunnel};

/// Why an installation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Only new keys can cure it (sequence space used up).
    Exhausted(String),
    /// Transient: retried by `up`, `reload` and when a dataplane attaches.
    Transient(String),
}

impl Failure {
    fn text(&self) -> &str {
        match self {
            Failure::Exhausted(s) | Failure::Transient(s) => s,
        }
    }
}

/// A tunnel or a policy rule from the configuration.
#[derive(Clone, Debug)]
pub enum ItemCfg {
    /// Manual tunnel.
    Tunnel(Box<Tunnel>),
    /// Bypass/discard rule.
    Policy(PolicyRule),
}

impl ItemCfg {
    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            ItemCfg::Tunnel(t) => &t.name,
            ItemCfg::Policy(p) => &p.name,
        }
    }
    /// Its start mode.
    pub fn start(&self) -> StartMode {
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
    /// The tunnels and policy rules of a configuration, in its order.
    pub fn all(config: Config) -> Vec<ItemCfg> {
        let mut v: Vec<ItemCfg> = config
            .tunnels
            .into_iter()
            .map(|t| ItemCfg::Tunnel(Box::new(t)))
            .collect();
        v.extend(config.policies.into_iter().map(ItemCfg::Policy));
        v
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

impl Item {
    fn wants_installed(&self) -> bool {
        self.admin_up && self.expired.is_none() && self.cfg.start() != StartMode::Ignore
    }
}

/// The manual tunnels and policy rules, in configuration order.
#[derive(Default)]
pub struct Manual {
    items: Vec<Item>,
}

impl Manual {
    /// Items in configuration order.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// The item called `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.items.iter().position(|i| i.cfg.name() == name)
    }

    /// The outbound slots of the tunnels (whose keys the ledger covers).
    pub fn outbound_slots(&self) -> Vec<u32> {
        self.items
            .iter()
            .filter_map(|it| it.slots.map(|(_, o)| o))
            .collect()
    }

    fn new_item(inst: &mut Installer, cfg: ItemCfg, admin_up: bool) -> Option<Item> {
        let id = inst.alloc_tunnel_id()?;
        let slots = match cfg {
            ItemCfg::Tunnel(_) => Some((inst.alloc_slot()?, inst.alloc_slot()?)),
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

    fn save_record(inst: &Installer, it: &Item) {
        let (slot_in, slot_out) = it.slots.unwrap_or((u32::MAX, u32::MAX));
        inst.save_tunnel(&TunnelRecord {
            name: it.cfg.name().to_string(),
            id: it.id,
            admin_up: it.admin_up,
            config_hash: it.cfg.config_hash(),
            slot_in,
            slot_out,
        });
    }

    /// Builds the items from the configuration and the records a previous
    /// control process left (`left`), then brings the dataplane in line.
    pub fn attach(inst: &mut Installer, cfgs: Vec<ItemCfg>, left: Leftovers) -> Manual {
        let Leftovers {
            tunnels: mut recs,
            damaged,
        } = left;
        let reattached = !recs.is_empty();
        let mut m = Manual::default();
        for cfg in cfgs {
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
                        Self::orphan(inst, r);
                    }
                    let up = cfg.start() == StartMode::Start;
                    match Self::new_item(inst, cfg, up) {
                        Some(i) => i,
                        None => {
                            error!("out of tunnel ids or SA slots in the shared-memory region");
                            continue;
                        }
                    }
                }
            };
            Self::save_record(inst, &item);
            m.items.push(item);
        }
        // Records of tunnels no longer configured.
        for (_, r) in recs {
            Self::orphan(inst, r);
        }
        match inst.resume(damaged, reattached, &m.outbound_slots()) {
            Resume::Incremental => m.incremental_sync(inst),
            Resume::Full => {
                if let Some(generation) = inst.begin_full_sync() {
                    m.full_sync(inst);
                    inst.end_full_sync(generation);
                }
            }
            Resume::Wait => {}
        }
        m
    }

    /// Removes what a record of a tunnel no longer configured installed.
    fn orphan(inst: &mut Installer, r: TunnelRecord) {
        info!("tunnel {} is no longer configured: removing it", r.name);
        for id in inst.policy_ids(|id| policy_id::manual_owner(id) == r.id) {
            inst.remove_policy(id);
        }
        if r.slot_in != u32::MAX {
            for s in [r.slot_in, r.slot_out] {
                inst.remove_sa(s);
                inst.release_slot(s);
            }
        }
        inst.free_tunnel_id(r.id);
    }

    /// Installs (or replaces) everything of item `i`.
    fn install(&mut self, inst: &mut Installer, i: usize) -> Result<(), Failure> {
        let id = self.items[i].id;
        if let ItemCfg::Tunnel(t) = &self.items[i].cfg {
            let t = t.clone();
            let (slot_in, slot_out) = self.items[i]
                .slots
                .ok_or_else(|| Failure::Transient("tunnel without SA slots".into()))?;
            Self::install_sa(inst, &t, id, Direction::Inbound, slot_in)?;
            Self::install_sa(inst, &t, id, Direction::Outbound, slot_out)?;
        }
        let want = self.items[i].cfg.policies(id);
        for p in &want {
            if !inst.add_policy(p) {
                return Err(Failure::Transient(
                    "policy could not be sent to the dataplane".into(),
                ));
            }
        }
        let stale = inst.policy_ids(|pid| {
            policy_id::manual_owner(pid) == id && !want.iter().any(|p| p.id == pid)
        });
        for pid in stale {
            inst.remove_policy(pid);
        }
        let it = &mut self.items[i];
        it.installed_ns = Some(monotonic_ns());
        it.soft_warned = false;
        it.error = None;
        Ok(())
    }

    fn install_sa(
        inst: &mut Installer,
        t: &Tunnel,
        id: u32,
        dir: Direction,
        slot: u32,
    ) -> Result<(), Failure> {
        let key_id = t.key_id(dir);
        let spi = if dir == Direction::Inbound {
            t.spi_in
        } else {
            t.spi_out
        };
        let mut pending_removal = false;
        if let Some(r) = inst.read_record(slot) {
            if r.state == RecordState::Installed && r.spi != spi {
                // A new SPI: the old SA goes first.
                inst.remove_sa(slot);
                pending_removal = true;
            } else if r.state == RecordState::Removed && r.key_id == key_id {
                pending_removal = true;
            }
        }
        if dir == Direction::Outbound && pending_removal && inst.dp_live() && !inst.wait_applied() {
            return Err(Failure::Transient(
                "the dataplane did not apply the removal of the previous SA in time".into(),
            ));
        }
        let initial_seq = inst.next_seq(slot, key_id, dir);
        let limit = if t.esn {
            u64::MAX - SEQ_MARGIN
        } else {
            u64::from(u32::MAX)
        };
        if initial_seq >= limit {
            return Err(Failure::Exhausted(format!(
                "outbound sequence numbers of this key are used up (next would be {initial_seq}): \
                 install new keys (espresso genkey) and reload{}",
                if t.esn {
                    ""
                } else {
                    ", or turn on esn on both gateways"
                }
            )));
        }
        let params = t.sa_params(dir, id, initial_seq);
        inst.install_sa(slot, key_id, t.params_hash(dir), &params)
            .map_err(|e| Failure::Transient(e.to_string()))?;
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
    fn uninstall(&mut self, inst: &mut Installer, i: usize) {
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
        let stale = inst.policy_ids(|pid| {
            policy_id::manual_owner(pid) == id && !hold.iter().any(|p| p.id == pid)
        });
        for pid in stale {
            inst.remove_policy(pid);
        }
        for p in &hold {
            inst.add_policy(p);
        }
        if let Some((a, b)) = self.items[i].slots {
            inst.remove_sa(b);
            inst.remove_sa(a);
        }
        self.items[i].installed_ns = None;
    }

    /// Removes everything of item `i` (it leaves the configuration).
    fn purge(&mut self, inst: &mut Installer, i: usize) {
        let id = self.items[i].id;
        for pid in inst.policy_ids(|pid| policy_id::manual_owner(pid) == id) {
            inst.remove_policy(pid);
        }
        if let Some((a, b)) = self.items[i].slots {
            inst.remove_sa(b);
            inst.remove_sa(a);
        }
        self.items[i].installed_ns = None;
    }

    /// Gives back the ids and slots of a removed item.
    fn release(inst: &mut Installer, it: Item) {
        if let Some((a, b)) = it.slots {
            inst.release_slot(a);
            inst.release_slot(b);
        }
        inst.free_tunnel_id(it.id);
    }

    /// An installation failed: keys used up (needs new keys), or a
    /// transient problem (retried by `up`, `reload`, a dataplane attach).
    fn fail(&mut self, inst: &mut Installer, i: usize, why: Failure) {
        let name = self.items[i].cfg.name().to_string();
        error!("{name}: {}", why.text());
        match why {
            Failure::Exhausted(w) => self.items[i].expired = Some(w),
            Failure::Transient(w) => self.items[i].error = Some(w),
        }
        self.uninstall(inst, i);
    }

    fn install_or_fail(&mut self, inst: &mut Installer, i: usize) -> Result<(), Failure> {
        let r = self.install(inst, i);
        if let Err(e) = &r {
            self.fail(inst, i, e.clone());
        }
        r
    }

    /// After a control restart with the same dataplane: send only differences.
    fn incremental_sync(&mut self, inst: &mut Installer) {
        let head = inst.shm().command_head();
        for i in 0..self.items.len() {
            if !self.items[i].wants_installed() {
                self.uninstall(inst, i);
                continue;
            }
            let mut same = true;
            if let (ItemCfg::Tunnel(t), Some((si, so))) = (&self.items[i].cfg, self.items[i].slots)
            {
                let mut at = None;
                for (slot, dir) in [(si, Direction::Inbound), (so, Direction::Outbound)] {
                    match inst.read_record(slot) {
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
            if !self.items[i]
                .cfg
                .policies(id)
                .iter()
                .all(|p| inst.has_policy(p))
            {
                same = false;
            }
            if !same {
                let name = self.items[i].cfg.name().to_string();
                info!("{name}: differs from what the dataplane holds: installing");
                let _ = self.install_or_fail(inst, i);
            }
        }
        // Policies recorded for ids no item owns (engines' policies included:
        // their SAs died with the previous control process).
        let owned: BTreeSet<u32> = self.items.iter().map(|i| i.id).collect();
        for pid in inst.policy_ids(|pid| !owned.contains(&policy_id::manual_owner(pid))) {
            inst.remove_policy(pid);
        }
    }

    /// A new dataplane was flushed ([`Installer::begin_full_sync`]): install
    /// everything that should run.
    pub fn full_sync(&mut self, inst: &mut Installer) {
        for i in 0..self.items.len() {
            if let Some((a, b)) = self.items[i].slots {
                // The flush removed the SAs: mark their records so.
                inst.mark_flushed(a);
                inst.mark_flushed(b);
            }
            if self.items[i].wants_installed() {
                let _ = self.install_or_fail(inst, i);
            } else {
                self.uninstall(inst, i);
            }
        }
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

    /// A dataplane event about a manual tunnel's SA.
    pub fn event(&mut self, inst: &mut Installer, ev: SaEvent) {
        match ev {
            SaEvent::SoftExpire {
                spi,
                direction,
                kind,
            } => {
                if let Some(i) = self.item_by_spi(spi, direction) {
                    self.soft(
                        i,
                        format!("soft {kind:?} lifetime of {direction:?} SA spi {spi:#x} reached")
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
                    let why = format!(
                        "hard {kind:?} lifetime of {direction:?} SA spi {spi:#x} reached (dataplane)"
                    )
                    .to_lowercase();
                    self.expire(inst, i, why);
                }
            }
            SaEvent::SeqExhausted { spi } => {
                if let Some(i) = self.item_by_spi(spi, Direction::Outbound) {
                    self.expire(
                        inst,
                        i,
                        format!(
                            "outbound SA spi {spi:#x} used up its sequence numbers: install new keys"
                        ),
                    );
                }
            }
            SaEvent::Acquire {
                policy_id,
                src,
                dst,
                proto,
            } => {
                info!(
                    "acquire for policy {policy_id:#x}: {src} -> {dst} proto {proto} (needs IKE)"
                );
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

    fn expire(&mut self, inst: &mut Installer, i: usize, why: String) {
        if self.items[i].expired.is_some() {
            return;
        }
        warn!(
            "{}: expired: {why}; traffic stops until new keys are loaded",
            self.items[i].cfg.name()
        );
        self.items[i].expired = Some(why);
        self.uninstall(inst, i);
    }

    /// The hard or soft limit item `i` passed, if any (counters of both SAs
    /// as the dataplane publishes them, and the time since installation).
    fn lifetime_passed(
        &self,
        inst: &Installer,
        i: usize,
        now: u64,
    ) -> (Option<String>, Option<String>) {
        let it = &self.items[i];
        let (ItemCfg::Tunnel(t), Some((si, so)), Some(at)) = (&it.cfg, it.slots, it.installed_ns)
        else {
            return (None, None);
        };
        let l = t.lifetime;
        let mut hard = None;
        let mut soft = None;
        for (slot, dir) in [(si, "inbound"), (so, "outbound")] {
            let Some(v) = inst.read_view(slot) else {
                continue;
            };
            let Some(rec) = inst.read_record(slot) else {
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
        (hard, soft)
    }

    /// Checks every running tunnel's lifetimes (byte, packet, time).
    pub fn lifetimes(&mut self, inst: &mut Installer) {
        let now = monotonic_ns();
        for i in 0..self.items.len() {
            if self.items[i].expired.is_some() || !self.items[i].admin_up {
                continue;
            }
            match self.lifetime_passed(inst, i, now) {
                (Some(h), _) => self.expire(inst, i, h),
                (None, Some(s)) => self.soft(i, s),
                (None, None) => {}
            }
        }
    }

    /// `espresso up NAME` for item `i`.
    pub fn up(&mut self, inst: &mut Installer, i: usize) -> Response {
        let name = self.items[i].cfg.name().to_string();
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
        Self::save_record(inst, &self.items[i]);
        if !inst.dp_live() {
            info!("{name}: up (installed when the dataplane attaches)");
            return Response::ok(format!("{name}: up; waiting for the dataplane to attach"));
        }
        match self.install_or_fail(inst, i) {
            Ok(()) => {
                info!("{name}: up");
                Response::ok(format!("{name}: up"))
            }
            Err(e) => Response::err(exit::FAILED, format!("{name}: {}", e.text())),
        }
    }

    /// `espresso down NAME` for item `i`.
    pub fn down(&mut self, inst: &mut Installer, i: usize) -> Response {
        let name = self.items[i].cfg.name().to_string();
        self.items[i].admin_up = false;
        Self::save_record(inst, &self.items[i]);
        self.uninstall(inst, i);
        info!("{name}: down");
        Response::ok(format!("{name}: down"))
    }

    fn keys_differ(a: &ItemCfg, b: &ItemCfg) -> bool {
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

    /// `espresso reload NAME` for a tunnel or policy rule: `cfg` is its new
    /// configuration (`None`: no longer configured); `None` back if `name`
    /// is neither loaded nor configured.
    pub fn reload_one(
        &mut self,
        inst: &mut Installer,
        name: &str,
        cfg: Option<ItemCfg>,
    ) -> Option<Response> {
        let old = self.find(name);
        let cfg = match (old, cfg) {
            (None, None) => return None,
            (Some(i), None) => {
                self.purge(inst, i);
                let it = self.items.remove(i);
                Self::release(inst, it);
                info!("{name}: removed (no longer in the configuration)");
                return Some(Response::ok(format!(
                    "{name}: removed (no longer in the configuration)"
                )));
            }
            (_, Some(cfg)) => cfg,
        };
        if let Some(conflict) = self.spi_conflict(&cfg, name) {
            return Some(Response::err(
                exit::CONFIG,
                format!("{name}: {conflict}; nothing was changed"),
            ));
        }
        let i = match old {
            Some(i) => {
                let keys_changed = Self::keys_differ(&self.items[i].cfg, &cfg);
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
                let Some(it) = Self::new_item(inst, cfg, up) else {
                    return Some(Response::err(exit::FAILED, "out of tunnel ids or SA slots"));
                };
                self.items.push(it);
                self.items.len() - 1
            }
        };
        Self::save_record(inst, &self.items[i]);
        if !self.items[i].wants_installed() {
            self.uninstall(inst, i);
            return Some(Response::ok(format!("{name}: reloaded (down)")));
        }
        if !inst.dp_live() {
            return Some(Response::ok(format!(
                "{name}: reloaded; installed when the dataplane attaches"
            )));
        }
        if let Err(e) = self.install_or_fail(inst, i) {
            return Some(Response::err(exit::FAILED, format!("{name}: {}", e.text())));
        }
        info!("{name}: reloaded and re-installed");
        Some(Response::ok(format!("{name}: reloaded")))
    }

    /// `espresso reload` of every tunnel and policy rule: `new` is the whole
    /// new set. Returns what changed (`NAME: removed|changed|added`), or the
    /// error response when ids or slots ran out.
    pub fn reload_all(
        &mut self,
        inst: &mut Installer,
        new: Vec<ItemCfg>,
    ) -> Result<Vec<String>, Box<Response>> {
        let mut changed = Vec::new();
        // Removed items first (their SPIs may move to other tunnels).
        let mut i = 0;
        while i < self.items.len() {
            let name = self.items[i].cfg.name().to_string();
            if new.iter().any(|c| c.name() == name) {
                i += 1;
                continue;
            }
            self.purge(inst, i);
            let it = self.items.remove(i);
            Self::release(inst, it);
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
                    if Self::keys_differ(&self.items[i].cfg, &cfg) {
                        self.items[i].expired = None;
                    }
                    let was_start = self.items[i].cfg.start();
                    if cfg.start() == StartMode::Ignore {
                        self.items[i].admin_up = false;
                    } else if was_start == StartMode::Ignore && cfg.start() == StartMode::Start {
                        self.items[i].admin_up = true;
                    }
                    self.uninstall(inst, i);
                    self.items[i].cfg = cfg;
                    Self::save_record(inst, &self.items[i]);
                    changed.push(format!("{name}: changed"));
                    order.push(i);
                }
                None => {
                    let up = cfg.start() == StartMode::Start;
                    let Some(it) = Self::new_item(inst, cfg, up) else {
                        return Err(Box::new(Response::err(
                            exit::FAILED,
                            "out of tunnel ids or SA slots",
                        )));
                    };
                    Self::save_record(inst, &it);
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
            if self.items[i].wants_installed()
                && inst.dp_live()
                && self.items[i].installed_ns.is_none()
            {
                let _ = self.install_or_fail(inst, i);
            }
        }
        Ok(changed)
    }

    /// The keys of the running tunnels (`i`: only that item), for `espresso
    /// keys`. Nothing here is logged.
    pub fn keys(&self, only: Option<usize>) -> Result<Vec<api::SaKeys>, Box<Response>> {
        if let Some(i) = only {
            let it = &self.items[i];
            let n = it.cfg.name();
            if !matches!(it.cfg, ItemCfg::Tunnel(_)) {
                return Err(Box::new(Response::err(
                    exit::STATE,
                    format!("{n} is a policy, not a tunnel: it has no keys"),
                )));
            }
            if it.installed_ns.is_none() {
                return Err(Box::new(Response::err(
                    exit::STATE,
                    format!("{n} is not running: it has no SAs installed"),
                )));
            }
        }
        let mut keys = Vec::new();
        for (i, it) in self.items.iter().enumerate() {
            if only.is_some_and(|o| o != i) {
                continue;
            }
            let ItemCfg::Tunnel(t) = &it.cfg else {
                continue;
            };
            if it.installed_ns.is_none() {
                continue;
            }
            for dir in [Direction::Inbound, Direction::Outbound] {
                keys.push(api::SaKeys::of(&t.name, &t.sa_params(dir, it.id, 0)));
            }
        }
        Ok(keys)
    }

    /// The tunnel id of item `i`, if it is a tunnel (a policy has nothing to tap).
    pub fn tunnel_id(&self, i: usize) -> Result<u32, Box<Response>> {
        let it = &self.items[i];
        match it.cfg {
            ItemCfg::Tunnel(_) => Ok(it.id),
            ItemCfg::Policy(_) => Err(Box::new(Response::err(
                exit::STATE,
                format!(
                    "{} is a policy, not a tunnel: nothing is decrypted there",
                    it.cfg.name()
                ),
            ))),
        }
    }
}
