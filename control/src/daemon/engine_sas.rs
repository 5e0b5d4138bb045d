//! The SAs and policies one keying engine installed through the
//! [`Installer`] ([`EngineSas`]): what must be installed again in a new
//! dataplane, which SAs were refused (their outbound SPI held by another
//! SA), and the steps both bridges ([`super::ike`], [`super::ikev1`]) take
//! with them, over the [`KeyingEngine`] trait the engines implement.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Display;
use std::time::Instant;

use espresso_core::sa::{Direction, Policy, PolicyAction, SaParams};
use espresso_core::shm::{monotonic_ns, SEQ_MARGIN};
use tracing::{error, warn};

use super::installer::{policy_id, InstallError, Installer};
use crate::ike::DataplaneOp;

/// What [`EngineSas`] and the bridges need of a keying engine (IKEv2's and
/// IKEv1's `Engine`): its children's SPIs, deleting or rekeying one, and
/// deleting a connection's IKE SAs.
pub trait KeyingEngine {
    /// Why a child could not be deleted or rekeyed.
    type Error: Display;
    /// `(inbound SPI, outbound SPI)` of every child SA.
    fn child_spis(&self) -> Vec<(u32, u32)>;
    /// Deletes the child with this inbound SPI (and tells the peer).
    fn terminate_child(&mut self, inbound_spi: u32, now: Instant) -> Result<(), Self::Error>;
    /// Rekeys the child with this inbound SPI.
    fn rekey_child(&mut self, inbound_spi: u32, now: Instant) -> Result<(), Self::Error>;
    /// The ids of connection `conn`'s IKE (ISAKMP) SAs.
    fn sa_ids(&self, conn: &str) -> Vec<u64>;
    /// Deletes an IKE (ISAKMP) SA and its children (and tells the peer).
    fn terminate_ike(&mut self, id: u64, now: Instant) -> Result<(), Self::Error>;

    /// Deletes every IKE (ISAKMP) SA of connection `name`; returns how many.
    fn terminate_conn(&mut self, name: &str) -> usize {
        let now = Instant::now();
        let ids = self.sa_ids(name);
        for id in &ids {
            if let Err(e) = self.terminate_ike(*id, now) {
                warn!("{name}: {e}");
            }
        }
        ids.len()
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
                inst.count_spi_refusal();
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
            inst.count_seq_refusal();
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

    /// Applies one of a keying engine's dataplane operations; the engine's
    /// policy ids are placed in its range (`base`, one of [`policy_id`]'s).
    /// An SA the installer refused (its SPI held by another SA) is counted
    /// there and returned as the error (its policies discard meanwhile).
    pub fn apply(
        &mut self,
        inst: &mut Installer,
        op: DataplaneOp,
        base: u32,
    ) -> Result<(), InstallError> {
        match op {
            DataplaneOp::InstallSa(p) => return self.install_sa(inst, p),
            DataplaneOp::RemoveSa { spi, direction } => self.remove_sa(inst, spi, direction),
            DataplaneOp::MoveSa {
                spi,
                direction,
                local_addr,
                remote_addr,
                encap,
            } => {
                self.move_sa(inst, spi, direction, local_addr, remote_addr, encap);
            }
            DataplaneOp::InstallPolicy(mut p) => {
                p.id = base | (p.id & policy_id::ENGINE_ID_MASK);
                self.add_policy(inst, p);
            }
            DataplaneOp::RemovePolicy { id } => {
                self.remove_policy(inst, base | (id & policy_id::ENGINE_ID_MASK));
            }
        }
        Ok(())
    }

    /// Deletes the engine's children whose outbound SA the installer refused
    /// (their policies discard meanwhile): the engines check SPIs before they
    /// accept a child, so this only catches what changed in between. `what`
    /// names the engine's children in the log ("IKEv1 IPsec SA"). Returns
    /// whether any was deleted (the engine then has output to drain).
    pub fn delete_refused(&mut self, engine: &mut impl KeyingEngine, what: &str) -> bool {
        if self.refused_out.len() == self.refused_deleting.len() {
            return false;
        }
        let doomed = self.take_refused(engine.child_spis());
        let now = Instant::now();
        for &(inbound, outbound) in &doomed {
            warn!(
                "deleting {what} {inbound:#010x}/{outbound:#010x}: its outbound SPI is held by another SA"
            );
            // The engine's delete removes its SAs; the refused one is forgotten.
            if let Err(e) = engine.terminate_child(inbound, now) {
                warn!("deleting {what} {inbound:#010x}: {e}");
            }
        }
        !doomed.is_empty()
    }

    /// After a dataplane (re)attached and was flushed: [`EngineSas::resync`],
    /// then the children whose outbound sequence numbers had to jump get
    /// fresh keys. Returns the number of SAs and of policies installed.
    pub fn resync_engine(
        &mut self,
        inst: &mut Installer,
        engine: &mut impl KeyingEngine,
    ) -> (usize, usize) {
        let jumped = self.resync(inst);
        if !jumped.is_empty() {
            let children = engine.child_spis();
            let t = Instant::now();
            for out_spi in jumped {
                if let Some(&(inbound, _)) = children.iter().find(|(_, o)| *o == out_spi) {
                    let _ = engine.rekey_child(inbound, t);
                }
            }
        }
        self.counts()
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
                    inst.shm().ledger_bound(kid, now),
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
                    inst.count_seq_refusal();
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
    use espresso_core::shm::{LedgerEntry, RecordState, TunnelRecord};

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
        inst.shm_mut().write_record(s4, &r).unwrap();
        // What the dead dataplane may have sent, as frozen in the ledger.
        let top = u64::from(u32::MAX);
        for (k, seq) in [(kn, 1000), (kf, top - 10), (ke, top - 10)] {
            inst.shm_mut().ledger_append(&LedgerEntry {
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
