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

/// SAs whose counters each [`Manager::publish`] call publishes at least
/// (all of them up to this many: every SA every call, every 2 ms).
pub const PUBLISH_SLICE: usize = 2048;

/// Calls of [`Manager::publish`] in which every SA's counters are published
/// at least once, whatever the count: the slice grows past
/// [`PUBLISH_SLICE`] to `1 / PUBLISH_ROUNDS` of the SAs (at one call per
/// 2 ms: every SA within 1 s; 64k SAs within 32 calls, 64 ms).
pub const PUBLISH_ROUNDS: usize = 500;

/// An installed SA whose counters are published, and where.
#[derive(Clone, Copy)]
struct Published {
    spi: u32,
    dir: Direction,
    /// Its shm counter slot.
    slot: u32,
}

/// Applies shared-memory commands and publishes counters.
pub struct Manager {
    dp: DataplaneEnd,
    tables: Tables,
    /// (spi, direction) -> index in `published`.
    slots: HashMap<(u32, Direction), usize>,
    /// The SAs installed through commands, at stable indices (a removed
    /// one leaves a hole, reused by the next install): what `publish`
    /// walks round-robin, without a map lookup.
    published: Vec<Option<Published>>,
    /// Holes of `published`.
    free: Vec<usize>,
    /// Where the next `publish` call goes on in `published`.
    cursor: usize,
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
            published: Vec::new(),
            free: Vec::new(),
            cursor: 0,
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
                        if let Some(prev) = self.track(spi, dir, slot) {
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
                self.untrack(spi, direction);
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
                self.published.clear();
                self.free.clear();
                self.cursor = 0;
                self.applied += 1;
                tracing::info!("flushed every SA and policy");
            }
        }
    }

    /// Records that the SA (spi, dir) publishes to `slot`; the slot it
    /// published to before, if it was installed.
    fn track(&mut self, spi: u32, dir: Direction, slot: u32) -> Option<u32> {
        let entry = Published { spi, dir, slot };
        if let Some(&i) = self.slots.get(&(spi, dir)) {
            let e = self.published.get_mut(i)?;
            return e.replace(entry).map(|p| p.slot);
        }
        let i = match self.free.pop() {
            Some(i) => {
                if let Some(e) = self.published.get_mut(i) {
                    *e = Some(entry);
                }
                i
            }
            None => {
                self.published.push(Some(entry));
                self.published.len() - 1
            }
        };
        self.slots.insert((spi, dir), i);
        None
    }

    /// The SA (spi, dir) was removed: its counters are no longer published.
    fn untrack(&mut self, spi: u32, dir: Direction) {
        if let Some(i) = self.slots.remove(&(spi, dir)) {
            if let Some(e) = self.published.get_mut(i) {
                *e = None;
                self.free.push(i);
            }
        }
    }

    /// How many entries of the SA list one [`Manager::publish`] call
    /// publishes: [`PUBLISH_SLICE`], or `1 / PUBLISH_ROUNDS` of the list.
    pub fn publish_slice(&self) -> usize {
        slice_for(self.published.len())
    }

    /// Publishes the counters of `n` entries of the SA list from the
    /// cursor on (wrapping; holes count), each SA found in its SAD by SPI.
    fn publish_sas(&mut self, n: usize) {
        let len = self.published.len();
        if len == 0 {
            return;
        }
        let (t_in, t_out) = (self.tables.sad_in.load(), self.tables.sad_out.load());
        let mut i = self.cursor % len;
        for _ in 0..n.min(len) {
            if let Some(Some(e)) = self.published.get(i) {
                let t = match e.dir {
                    Direction::Inbound => &t_in,
                    Direction::Outbound => &t_out,
                };
                if let Some(sa) = t.get(e.spi) {
                    let _ = self.dp.publish_sa(e.slot, &sa_stats(sa));
                }
            }
            i += 1;
            if i == len {
                i = 0;
            }
        }
        self.cursor = i;
    }

    /// [`Manager::publish`] with every SA's counters published (when the
    /// dataplane stops).
    pub fn publish_all(&mut self, workers: &[Arc<WorkerCounters>]) {
        self.publish_sas(self.published.len());
        self.publish_rest(workers);
    }

    /// Publishes SA counters (a slice: [`Manager::publish_slice`] SAs,
    /// round-robin, every SA at least once per [`PUBLISH_ROUNDS`] calls,
    /// all of them every call up to [`PUBLISH_SLICE`]), worker counters,
    /// SA events (walking the SADs only when some SA raised one) and a
    /// heartbeat.
    pub fn publish(&mut self, workers: &[Arc<WorkerCounters>]) {
        self.publish_sas(self.publish_slice());
        self.publish_rest(workers);
    }

    fn publish_rest(&mut self, workers: &[Arc<WorkerCounters>]) {
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

/// The publish slice for a list of `len` entries (holes included).
fn slice_for(len: usize) -> usize {
    PUBLISH_SLICE.max(len.div_ceil(PUBLISH_ROUNDS))
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

    /// Every entry of the list is published at least once per
    /// `PUBLISH_ROUNDS` calls, up to the largest shm geometry; all of them
    /// every call up to `PUBLISH_SLICE`.
    #[test]
    fn publish_slice_bounds_the_round() {
        for len in [1, PUBLISH_SLICE, 65_536, 1 << 20, 1 << 22] {
            let slice = slice_for(len);
            assert!(len.div_ceil(slice) <= PUBLISH_ROUNDS, "{len}");
            assert!(slice <= PUBLISH_SLICE.max(len / PUBLISH_ROUNDS + 1));
        }
        assert_eq!(slice_for(PUBLISH_SLICE), PUBLISH_SLICE);
        // 64k SAs: within 32 calls (64 ms at one per 2 ms).
        assert!(65_536usize.div_ceil(slice_for(65_536)) <= 32);
    }

    /// More SAs than one slice, some removed (holes) and others installed
    /// in their place: one call publishes at most a slice; every SA's
    /// counters reach the shm within `len / slice` calls, twice over (the
    /// cursor wraps mid-list); a removed SA's final counters are published
    /// by its removal.
    #[test]
    fn every_sas_counters_reach_the_shm_within_a_round() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.shm");
        let geo = Geometry {
            max_sas: 8192,
            ..Geometry::default()
        };
        let mut ctl = ControlEnd::attach(&path, &geo).unwrap();
        let tables = Tables {
            spd: Arc::new(Spd::new()),
            sad_in: Arc::new(Sad::default()),
            sad_out: Arc::new(Sad::default()),
            crypto: CryptoBackend::Auto,
        };
        let mut m = Manager::attach(&path, tables.clone(), 1).unwrap();
        let n = 2 * PUBLISH_SLICE as u32 + 500;
        // slot i: SPI 0x10000 + i, inbound for even i, outbound for odd.
        let dir_of = |i: u32| {
            if i.is_multiple_of(2) {
                Direction::Inbound
            } else {
                Direction::Outbound
            }
        };
        let add = |ctl: &mut ControlEnd, m: &mut Manager, i: u32| {
            ctl.add_sa(i, u64::from(i), &params(0x10000 + i, dir_of(i), 1))
                .unwrap();
            if i.is_multiple_of(100) {
                m.apply_commands().unwrap();
            }
        };
        for i in 0..n {
            add(&mut ctl, &mut m, i);
        }
        m.apply_commands().unwrap();
        assert_eq!(tables.sad_in.len() + tables.sad_out.len(), n as usize);
        let sa_of = |i: u32| tables.sad(dir_of(i)).get(0x10000 + i);
        // Remove 300 (their final counters published now), install 100 more.
        for i in (0..n).step_by(13).take(300) {
            sa_of(i).unwrap().account(1000 + u64::from(i), 1);
            ctl.remove_sa(i, 0x10000 + i, dir_of(i)).unwrap();
        }
        m.apply_commands().unwrap();
        for i in (0..n).step_by(13).take(300) {
            assert!(sa_of(i).is_none());
            let v = ctl.read_sa(i).unwrap().unwrap();
            assert_eq!(v.stats.packets, 1000 + u64::from(i), "removed SA {i}");
        }
        for i in n..n + 100 {
            add(&mut ctl, &mut m, i);
        }
        m.apply_commands().unwrap();
        let live: Vec<u32> = (0..n + 100).filter(|&i| sa_of(i).is_some()).collect();
        assert_eq!(live.len(), n as usize - 200);
        let ws = vec![Arc::new(WorkerCounters::default())];
        let slice = m.publish_slice();
        assert_eq!(slice, PUBLISH_SLICE);
        let calls = (n as usize).div_ceil(slice);
        for round in 1..=2u64 {
            for &i in &live {
                sa_of(i).unwrap().account(round * 7 + u64::from(i), 1);
            }
            let want = |i: u32| (1..=round).map(|r| r * 7 + u64::from(i)).sum::<u64>();
            let fresh = |ctl: &ControlEnd| {
                live.iter()
                    .filter(|&&i| ctl.read_sa(i).unwrap().unwrap().stats.packets == want(i))
                    .count()
            };
            m.publish(&ws);
            assert!(fresh(&ctl) <= slice, "round {round}: more than a slice");
            for _ in 1..calls {
                m.publish(&ws);
            }
            assert_eq!(fresh(&ctl), live.len(), "round {round}");
        }
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
