//! The management side of the dataplane process (not a worker): applies the
//! control process's commands from shared memory to the SAD/SPD, and
//! publishes per-SA and per-worker counters and SA events back.
//!
//! Workers never see these operations except through the lock-free
//! snapshots of [`Sad`] and [`Spd`], so commands apply without stopping them.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::crypto::Backend as CryptoBackend;
use crate::drop::DropReason;
use crate::sa::{Direction, Sa, SaEvent, Sad, SadOp, Spd};
use crate::shm::{self, Command, DataplaneEnd, SaStats, ShmError};

use super::spihold::ExpectedSpis;
use super::WorkerCounters;

/// The SA tables the management thread keeps up to date.
#[derive(Clone)]
pub struct Tables {
    /// Outbound policies.
    pub spd: Arc<Spd>,
    /// Inbound SAs.
    pub sad_in: Arc<Sad>,
    /// Outbound SAs.
    pub sad_out: Arc<Sad>,
    /// Crypto backend for new SAs.
    pub crypto: CryptoBackend,
}

impl Tables {
    fn sad(&self, d: Direction) -> &Sad {
        match d {
            Direction::Inbound => &self.sad_in,
            Direction::Outbound => &self.sad_out,
        }
    }
}

/// Applies shared-memory commands and publishes counters.
pub struct Manager {
    dp: DataplaneEnd,
    tables: Tables,
    /// (spi, direction) -> counter slot.
    slots: HashMap<(u32, Direction), u32>,
    events: Vec<SaEvent>,
    /// Commands applied (for tests and logs).
    pub applied: u64,
    /// Commands refused (bad SA parameters: logged, not installed).
    pub refused: u64,
    /// Inbound SPIs announced by the control process (shared with the workers).
    expected: Arc<ExpectedSpis>,
}

impl Manager {
    /// Attaches to the region at `path` as its dataplane.
    pub fn attach(
        path: &std::path::Path,
        tables: Tables,
        workers: u32,
    ) -> Result<Manager, ShmError> {
        let dp = DataplaneEnd::attach(path)?;
        if let Some(old) = dp.replaced_layout() {
            tracing::warn!(
                "shm {}: the region had layout version {old} and no process held it; recreated it (mode 0600) with layout version {}, the version this program speaks",
                path.display(),
                shm::LAYOUT_VERSION
            );
        }
        dp.set_workers(workers);
        Ok(Manager {
            dp,
            tables,
            slots: HashMap::new(),
            events: Vec::new(),
            applied: 0,
            refused: 0,
            expected: Arc::default(),
        })
    }

    /// Shares the announced inbound SPIs with the workers
    /// ([`super::Shared::expected_spis`]).
    pub fn set_expected_spis(&mut self, e: Arc<ExpectedSpis>) {
        self.expected = e;
    }

    /// The shared-memory end (tap writers, generation).
    pub fn end(&self) -> &DataplaneEnd {
        &self.dp
    }

    /// Applies every pending command. Returns how many were applied.
    pub fn apply_commands(&mut self) -> Result<usize, ShmError> {
        let mut n = 0;
        while let Some(cmd) = self.dp.next_command()? {
            self.apply(cmd);
            n += 1;
        }
        Ok(n)
    }

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::AddSa { slot, params } => {
                let (spi, dir) = (params.spi, params.direction);
                let mut params = params;
                let sad = self.tables.sad(dir);
                let old = sad.get(spi);
                if let Some(o) = old
                    .as_ref()
                    .filter(|o| dir == Direction::Outbound && o.tunnel_id() != params.tunnel_id)
                {
                    // Outbound SAs are found by SPI alone: another tunnel's SA
                    // with this SPI is never replaced (its traffic would go to
                    // this SA's peer). The control process checks first; this
                    // holds whatever sends the command.
                    self.refused += 1;
                    tracing::warn!(
                        "SA {spi:#010x} {dir:?} of tunnel {} refused: tunnel {} has an outbound SA with this SPI",
                        params.tunnel_id,
                        o.tunnel_id()
                    );
                    if let Err(e) = self.dp.refuse_sa(slot, shm::RefuseReason::SpiInUse) {
                        tracing::warn!("reporting the refusal of SA {spi:#010x}: {e}");
                    }
                    return;
                }
                if dir == Direction::Outbound {
                    // A replaced outbound SA carries its counter on: never
                    // send a sequence number twice under one key.
                    if let Some(o) = &old {
                        params.initial_seq = params.initial_seq.max(o.next_seq());
                    }
                }
                match Sa::new(params, self.tables.crypto) {
                    Ok(sa) => {
                        sad.insert(Arc::new(sa));
                        if dir == Direction::Inbound {
                            // held ESP for it goes to decap now; no more holds
                            self.expected.forget(spi);
                        }
                        if let Some(prev) = self.slots.insert((spi, dir), slot) {
                            if prev != slot {
                                if let Some(o) = &old {
                                    let _ = self.dp.publish_sa(prev, &sa_stats(o));
                                }
                            }
                        }
                        self.applied += 1;
                        tracing::info!("SA {spi:#010x} {dir:?} installed (slot {slot})");
                    }
                    Err(e) => {
                        self.refused += 1;
                        tracing::warn!("SA {spi:#010x} {dir:?} refused: {e}");
                        let why = e.refuse_reason();
                        if let Err(e) = self.dp.refuse_sa(slot, why) {
                            tracing::warn!("reporting the refusal of SA {spi:#010x}: {e}");
                        }
                    }
                }
            }
            Command::RemoveSa {
                slot,
                spi,
                direction,
            } => {
                if let Some(old) = self.tables.sad(direction).remove(spi) {
                    let _ = self.dp.publish_sa(slot, &sa_stats(&old));
                }
                self.slots.remove(&(spi, direction));
                self.applied += 1;
                tracing::info!("SA {spi:#010x} {direction:?} removed");
            }
            Command::AddPolicy(p) => {
                self.tables.spd.insert([p]);
                self.applied += 1;
            }
            Command::RemovePolicy { id } => {
                self.tables.spd.remove(id);
                self.applied += 1;
            }
            Command::ExpectSpi { spi } => {
                self.expected
                    .announce(spi, espresso_core::shm::monotonic_ns());
                self.applied += 1;
            }
            Command::Flush => {
                for d in [Direction::Inbound, Direction::Outbound] {
                    let sad = self.tables.sad(d);
                    let spis: Vec<u32> = sad.load().iter().map(|s| s.spi()).collect();
                    sad.apply(spis.into_iter().map(SadOp::Remove));
                }
                let ids: Vec<u32> = self.tables.spd.load().iter().map(|p| p.id).collect();
                for id in ids {
                    self.tables.spd.remove(id);
                }
                self.slots.clear();
                self.applied += 1;
                tracing::info!("flushed every SA and policy");
            }
        }
    }

    /// Publishes SA and worker counters, SA events and a heartbeat.
    pub fn publish(&mut self, workers: &[Arc<WorkerCounters>]) {
        for d in [Direction::Inbound, Direction::Outbound] {
            let t = self.tables.sad(d).load();
            for sa in t.iter() {
                if let Some(slot) = self.slots.get(&(sa.spi(), d)) {
                    let _ = self.dp.publish_sa(*slot, &sa_stats(sa));
                }
            }
        }
        for (i, w) in workers.iter().enumerate() {
            let mut s = shm::WorkerStats {
                rx_packets: w.rx.load(Ordering::Relaxed),
                rx_bytes: w.rx_bytes.load(Ordering::Relaxed),
                tx_packets: w.tx.load(Ordering::Relaxed),
                tx_bytes: w.tx_bytes.load(Ordering::Relaxed),
                bursts: w.bursts.load(Ordering::Relaxed),
                idle_polls: w.idle_polls.load(Ordering::Relaxed),
                icmp_errors: w.icmp_errors.load(Ordering::Relaxed),
                icmp_rate_limited: w.icmp_rate_limited.load(Ordering::Relaxed),
                resolve_requests: w.resolve_requests.load(Ordering::Relaxed),
                neighbour_held: w.neighbour_held.load(Ordering::Relaxed),
                neighbour_stale: w.neighbour_stale.load(Ordering::Relaxed),
                esp_held: w.esp_held.load(Ordering::Relaxed),
                esp_held_released: w.esp_held_released.load(Ordering::Relaxed),
                ..Default::default()
            };
            for r in DropReason::ALL {
                if let Some(d) = s.drops.get_mut(r.index()) {
                    *d = w.drops.get(*r);
                }
            }
            let _ = self.dp.publish_worker(i as u32, &s);
        }
        self.events.clear();
        self.tables.sad_in.collect_events(&mut self.events);
        self.tables.sad_out.collect_events(&mut self.events);
        self.tables.spd.load().take_acquires(&mut self.events);
        for ev in &self.events {
            self.dp.push_event(ev);
        }
        self.dp.heartbeat();
    }
}

/// The counters of one SA as published to the control process.
pub fn sa_stats(sa: &Sa) -> SaStats {
    let c = sa.counters();
    let mut s = SaStats {
        packets: c.packets.load(Ordering::Relaxed),
        bytes: c.bytes.load(Ordering::Relaxed),
        seq: match sa.direction() {
            Direction::Outbound => sa.next_seq(),
            Direction::Inbound => sa.replay().top(),
        },
        dead: sa.is_dead(),
        ..Default::default()
    };
    for r in DropReason::ALL {
        if let Some(d) = s.drops.get_mut(r.index()) {
            *d = c.drops(*r);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{EncrAlg, IntegAlg, Key, Suite};
    use crate::sa::{
        DfMode, Lifetime, Mode, Policy, PolicyAction, PortRange, SaParams, TrafficSelector,
    };
    use crate::shm::{ControlEnd, Geometry};

    fn params(spi: u32, direction: Direction, initial_seq: u64) -> SaParams {
        SaParams {
            spi,
            direction,
            mode: Mode::Tunnel,
            suite: Suite {
                encr: EncrAlg::AesGcm128,
                integ: IntegAlg::None,
            },
            enc_key: Key::new((0..20u8).collect()),
            auth_key: Key::default(),
            esn: false,
            replay_window: 1024,
            local_addr: "192.0.2.1".parse().unwrap(),
            remote_addr: "192.0.2.2".parse().unwrap(),
            encap: None,
            selectors: vec![TrafficSelector {
                local: "10.1.0.0/24".parse().unwrap(),
                remote: "10.2.0.0/24".parse().unwrap(),
                proto: 0,
                local_ports: PortRange::ANY,
                remote_ports: PortRange::ANY,
            }],
            lifetime: Lifetime::default(),
            df: DfMode::Copy,
            copy_dscp: false,
            initial_seq,
            allow_legacy: false,
            tunnel_id: 1,
        }
    }

    #[test]
    fn applies_commands_and_publishes_counters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.shm");
        let geo = Geometry::default();
        let mut ctl = ControlEnd::attach(&path, &geo).unwrap();
        let tables = Tables {
            spd: Arc::new(Spd::new()),
            sad_in: Arc::new(Sad::default()),
            sad_out: Arc::new(Sad::default()),
            crypto: CryptoBackend::Auto,
        };
        let mut m = Manager::attach(&path, tables.clone(), 1).unwrap();

        ctl.add_sa(3, 1, &params(0x1001, Direction::Outbound, 1))
            .unwrap();
        ctl.add_sa(4, 2, &params(0x2002, Direction::Inbound, 1))
            .unwrap();
        let pol = Policy {
            id: 7,
            tunnel_id: 1,
            selector: params(1000, Direction::Outbound, 1).selectors[0].clone(),
            action: PolicyAction::Protect { spi: 0x1001 },
            priority: 10,
        };
        ctl.add_policy(&pol).unwrap();
        assert_eq!(m.apply_commands().unwrap(), 3);
        assert!(tables.sad_out.get(0x1001).is_some());
        assert!(tables.sad_in.get(0x2002).is_some());
        assert_eq!(tables.spd.load().len(), 1);

        // The outbound SA "sent" 41 packets: replacing it (same SPI) must not
        // rewind its sequence numbers, whatever initial_seq says.
        let sa = tables.sad_out.get(0x1001).unwrap();
        sa.reserve_seq(41);
        let next = sa.next_seq();
        assert_eq!(next, 42);
        ctl.add_sa(3, 5, &params(0x1001, Direction::Outbound, 1))
            .unwrap();
        m.apply_commands().unwrap();
        assert_eq!(tables.sad_out.get(0x1001).unwrap().next_seq(), 42);

        let ws = vec![Arc::new(WorkerCounters::default())];
        ws[0].drops.add(DropReason::NoRoute);
        m.publish(&ws);
        let v = ctl.read_sa(3).unwrap().unwrap();
        assert_eq!(v.spi, 0x1001);
        let w = ctl.read_worker(0).unwrap().unwrap();
        assert_eq!(w.stats.drops[DropReason::NoRoute.index()], 1);

        ctl.flush().unwrap();
        m.apply_commands().unwrap();
        assert!(tables.sad_out.is_empty() && tables.sad_in.is_empty());
        assert!(tables.spd.load().is_empty());
    }

    #[test]
    fn never_replaces_another_tunnels_outbound_sa() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.shm");
        let mut ctl = ControlEnd::attach(&path, &Geometry::default()).unwrap();
        let tables = Tables {
            spd: Arc::new(Spd::new()),
            sad_in: Arc::new(Sad::default()),
            sad_out: Arc::new(Sad::default()),
            crypto: CryptoBackend::Auto,
        };
        let mut m = Manager::attach(&path, tables.clone(), 1).unwrap();
        ctl.add_sa(3, 1, &params(0x1001, Direction::Outbound, 1))
            .unwrap();
        m.apply_commands().unwrap();
        // Tunnel 2 (say an IKE child whose peer chose the SPI) asks for the
        // same outbound SPI: refused, tunnel 1's SA stays.
        let mut other = params(0x1001, Direction::Outbound, 1);
        other.tunnel_id = 2;
        other.remote_addr = "192.0.2.99".parse().unwrap();
        ctl.add_sa(9, 2, &other).unwrap();
        m.apply_commands().unwrap();
        let sa = tables.sad_out.get(0x1001).unwrap();
        assert_eq!(sa.tunnel_id(), 1);
        assert_eq!(sa.remote_addr().to_string(), "192.0.2.2");
        assert_eq!(m.refused, 1);
        let v = ctl.read_sa(9).unwrap().unwrap();
        assert_eq!(v.refused, Some(shm::RefuseReason::SpiInUse));
        // The same tunnel may still replace its own SA.
        ctl.add_sa(3, 1, &params(0x1001, Direction::Outbound, 1))
            .unwrap();
        m.apply_commands().unwrap();
        assert_eq!(m.refused, 1);
    }

    #[test]
    fn a_corrupt_initial_sequence_number_is_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.shm");
        let mut ctl = ControlEnd::attach(&path, &Geometry::default()).unwrap();
        let tables = Tables {
            spd: Arc::new(Spd::new()),
            sad_in: Arc::new(Sad::default()),
            sad_out: Arc::new(Sad::default()),
            crypto: CryptoBackend::Auto,
        };
        let mut m = Manager::attach(&path, tables.clone(), 1).unwrap();
        // Without ESN the last number is 2^32 - 1: starting above would wrap.
        for (slot, seq) in [(3, u64::from(u32::MAX) + 1), (4, u64::MAX)] {
            ctl.add_sa(slot, 1, &params(0x1001, Direction::Outbound, seq))
                .unwrap();
        }
        m.apply_commands().unwrap();
        assert!(tables.sad_out.get(0x1001).is_none());
        assert_eq!(m.refused, 2);
        for slot in [3, 4] {
            let v = ctl.read_sa(slot).unwrap().unwrap();
            assert_eq!(v.refused, Some(shm::RefuseReason::InitialSeq));
        }
    }
}
