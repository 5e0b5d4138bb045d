//! What `espresso status` shows and `/metrics` exports: built from the
//! installer's view of the dataplane (counters per SA slot, per worker,
//! liveness), the manual tunnels and the IKE connections. Read only: nothing
//! here changes what runs. [`metrics`] renders a [`Status`] as Prometheus text.

pub mod metrics;

use std::collections::BTreeMap;
use std::time::Instant;

use espresso_core::config::connection::IkeConn;
use espresso_core::drop::DropReason;
use espresso_core::sa::Direction;
use espresso_core::shm::{monotonic_ns, SaSlotView, SlotState};

use super::api::{self, ChildStatus, IkeStatus, SaStatus, Status, TunnelStatus, WorkerStatus};
use super::engine_sas::EngineSas;
use super::ike::{IkeBridge, IkeConnItem};
use super::ikev1::{Ikev1Bridge, Ikev1ConnItem};
use super::installer::Installer;
use super::manual::{Item, ItemCfg, Manual};
use crate::config::StartMode;
use crate::ike::{self, RemoteAddr, StartAction};

/// What the control process says about itself.
pub struct ControlInfo<'a> {
    /// The configuration file.
    pub config: &'a std::path::Path,
    /// When the daemon started.
    pub started: Instant,
}

/// What a connection's `status` row is made of (either engine's).
struct ConnRow<'a> {
    /// Its configuration (core's: the same for both engines).
    cfg: &'a IkeConn,
    /// Its dataplane tunnel id.
    id: u32,
    /// Why the IKE sockets could not be opened.
    io_error: Option<&'a str>,
    /// The last failure, until a child SA comes up.
    error: Option<&'a str>,
    /// Why the current child SA runs degraded (IKEv2: rekey refused).
    degraded: Option<String>,
    /// Whether it has IKE SAs (up or in progress).
    has_sas: bool,
    /// Its current child SA.
    child: Option<&'a ike::ChildSaStatus>,
    /// The engine's installed SAs (counters).
    sas: &'a EngineSas,
    now: Instant,
}

/// Non-zero drop counters by reason name.
pub fn drops_map(d: &[u64]) -> BTreeMap<String, u64> {
    DropReason::ALL
        .iter()
        .filter(|r| d[r.index()] > 0)
        .map(|r| (r.as_str().to_string(), d[r.index()]))
        .collect()
}

/// One SA's row from what the dataplane publishes for it (`None`: nothing
/// published for this SA by the dataplane attached now).
fn sa_status(spi: u32, v: Option<SaSlotView>, alive: bool) -> SaStatus {
    match v {
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
    }
}

/// Everything `espresso status` shows.
pub fn status(
    me: ControlInfo<'_>,
    inst: &Installer,
    manual: &Manual,
    ike: &IkeBridge,
    ikev1: &Ikev1Bridge,
) -> Status {
    let shm = inst.shm();
    let info = shm.dataplane();
    let now = monotonic_ns();
    let mut st = Status {
        control: api::ControlStatus {
            pid: std::process::id(),
            generation: shm.generation(),
            config: me.config.display().to_string(),
            shm: shm.path().display().to_string(),
            uptime_s: me.started.elapsed().as_secs(),
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
            cmd_pending: shm.command_pending(),
        },
        ..Default::default()
    };
    let live = Live {
        inst,
        alive: info.alive,
        generation: info.generation,
    };
    for it in manual.items() {
        st.tunnels.push(live.item(it, now));
    }
    live.ike(&mut st, ike);
    live.ikev1(&mut st, ikev1);
    for w in 0..(info.workers.min(u64::from(shm.geometry().max_workers)) as u32) {
        if let Ok(Some(v)) = shm.read_worker(w) {
            st.workers.push(WorkerStatus {
                worker: w,
                rx_packets: v.stats.rx_packets,
                rx_bytes: v.stats.rx_bytes,
                tx_packets: v.stats.tx_packets,
                tx_bytes: v.stats.tx_bytes,
                icmp_errors: v.stats.icmp_errors,
                icmp_rate_limited: v.stats.icmp_rate_limited,
                resolve_requests: v.stats.resolve_requests,
                neighbour_held: v.stats.neighbour_held,
                neighbour_stale: v.stats.neighbour_stale,
                esp_held: v.stats.esp_held,
                esp_held_released: v.stats.esp_held_released,
                drops_by_reason: drops_map(&v.stats.drops),
            });
        }
    }
    st
}

/// The dataplane as seen now: its counters belong to `generation`.
struct Live<'a> {
    inst: &'a Installer,
    alive: bool,
    generation: u64,
}

impl Live<'_> {
    /// The row of a manual tunnel or policy rule.
    fn item(&self, it: &Item, now: u64) -> TunnelStatus {
        let mut ts = TunnelStatus {
            name: it.cfg.name().to_string(),
            id: it.id,
            start: format!("{:?}", it.cfg.start()).to_lowercase(),
            soft_expired: it.soft_warned,
            ..Default::default()
        };
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
                        let v = self.inst.read_view(slot).filter(|v| {
                            installed
                                && v.spi == spi
                                && v.direction == dir
                                && v.generation == self.generation
                                && v.key_id == t.key_id(dir)
                        });
                        let sa = sa_status(spi, v, self.alive);
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
        let (state, reason) = self.item_state(it, active);
        ts.state = state.into();
        ts.reason = reason;
        ts
    }

    /// A manual item's state and why (`active`: both SAs active in the dataplane).
    fn item_state(&self, it: &Item, active: bool) -> (&'static str, Option<String>) {
        let synced = self.inst.shm().synced_generation() == self.generation;
        let refused = match (&it.cfg, it.slots, it.installed_ns) {
            (ItemCfg::Tunnel(t), Some((si, so)), Some(_)) => [(si, t.spi_in), (so, t.spi_out)]
                .iter()
                .find_map(|&(slot, spi)| {
                    self.inst.read_view(slot).filter(|v| {
                        v.generation == self.generation
                            && v.spi == spi
                            && v.state == SlotState::Refused
                    })
                }),
            _ => None,
        };
        if let Some(why) = &it.expired {
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
        } else if !self.alive {
            ("pending", Some("dataplane not running".into()))
        } else if !synced || !active {
            ("pending", Some("dataplane has not applied it yet".into()))
        } else {
            ("up", None)
        }
    }

    /// The row of an IKE child SA's SA.
    fn ike_sa(&self, sas: &EngineSas, spi: u32, dir: Direction) -> SaStatus {
        let v = sas.get(spi, dir).and_then(|s| {
            self.inst
                .read_view(s.slot)
                .filter(|v| v.spi == spi && v.generation == self.generation && v.key_id == s.key_id)
        });
        sa_status(spi, v, self.alive)
    }

    /// Rows of `status` for the connections, the IKE SA details and the
    /// engine's counters.
    fn ike(&self, st: &mut Status, ike: &IkeBridge) {
        let now = Instant::now();
        let sas = ike.engine.status();
        for c in &ike.conns {
            st.tunnels.push(self.ike_conn(ike, c, &sas, now));
        }
        for s in &sas {
            let mut row = self.ike_sa_row(&ike.sas, s, now);
            if let Some(p) = ike.engine.peer_auth(s.id) {
                row.peer_auth = p.method.clone();
                row.peer_cert = p.cert_subject.clone().unwrap_or_default();
            }
            st.ike_sas.push(row);
        }
        let stats = ike.engine.stats();
        st.ike = Some(api::IkeCounters {
            rx: stats.rx,
            tx: stats.tx,
            retransmits: stats.retransmits,
            ike_established: stats.ike_established,
            child_established: stats.child_established,
            half_open: ike.engine.half_open() as u64,
            child_refused_spi_in_use: stats.child_spi_in_use,
            drops_by_reason: ike::IkeDrop::ALL
                .iter()
                .filter(|r| stats.drop_count(**r) > 0)
                .map(|r| (r.name().to_string(), stats.drop_count(*r)))
                .collect(),
            notes: ike.notes.iter().cloned().collect(),
        });
        let rx = &ike.rx_drops;
        st.ike_socket = Some(api::IkeSocketCounters {
            queued: rx.queued.load(std::sync::atomic::Ordering::Relaxed),
            queue_capacity: ike.limits.queue as u64,
            drops_by_reason: rx
                .by_reason()
                .into_iter()
                .map(|(r, n)| (r.to_string(), n))
                .collect(),
        });
    }

    /// An IKEv2 connection's row: state from its IKE SAs and current child SA.
    fn ike_conn(
        &self,
        ike: &IkeBridge,
        c: &IkeConnItem,
        sas: &[ike::IkeSaStatus],
        now: Instant,
    ) -> TunnelStatus {
        let mine: Vec<&ike::IkeSaStatus> = sas.iter().filter(|s| s.conn == c.cfg.name).collect();
        // IKEv2 children live and die with their IKE SA.
        let child = mine
            .iter()
            .filter(|s| s.state == "ESTABLISHED")
            .flat_map(|s| s.children.iter())
            .filter(|ch| ch.state == "INSTALLED")
            .max_by_key(|ch| ch.created);
        let degraded = match (&c.degraded, child) {
            (Some(d), Some(_)) => {
                let left = d.expires.saturating_duration_since(now).as_secs();
                Some(format!(
                    "rekey refused: {}; its SAs expire at {} (in {left} s)",
                    d.why, d.expires_at
                ))
            }
            _ => None,
        };
        self.conn_row(ConnRow {
            cfg: &c.cfg,
            id: c.id,
            io_error: ike.io_error.as_deref(),
            error: c.error.as_deref(),
            degraded,
            has_sas: !mine.is_empty(),
            child,
            sas: &ike.sas,
            now,
        })
    }

    /// A connection's row, either engine's: its state, configuration and
    /// current child SA with the SAs' counters.
    fn conn_row(&self, r: ConnRow<'_>) -> TunnelStatus {
        let conn = &r.cfg.conn;
        let (state, reason) = if let Some(e) = r.io_error {
            ("error", Some(format!("IKE sockets unavailable: {e}")))
        } else if let Some(d) = r.degraded {
            ("degraded", Some(d))
        } else if r.child.is_some() {
            ("up", None)
        } else if r.has_sas {
            ("connecting", r.error.map(str::to_string))
        } else if let Some(e) = r.error {
            ("error", Some(e.to_string()))
        } else {
            (
                "down",
                Some(
                    match conn.start_action {
                        StartAction::Add => "listening",
                        StartAction::Trap => "trap installed",
                        StartAction::None => "start = none",
                        StartAction::Start => "not connected",
                    }
                    .to_string(),
                ),
            )
        };
        let mut ts = TunnelStatus {
            name: r.cfg.name.clone(),
            kind: "ike".into(),
            id: r.id,
            state: state.into(),
            reason,
            start: format!("{:?}", conn.start_action).to_lowercase(),
            local: match conn.local_addr {
                ike::LocalAddr::Addr(a) => a.to_string(),
                ike::LocalAddr::DefaultRoute => "%defaultroute".into(),
                ike::LocalAddr::Any => "%any".into(),
            },
            remote: match conn.remote_addr {
                RemoteAddr::Addr(a) => a.to_string(),
                RemoteAddr::Any => "%any".into(),
            },
            local_subnets: conn.local_ts.iter().map(|n| n.to_string()).collect(),
            remote_subnets: conn.remote_ts.iter().map(|n| n.to_string()).collect(),
            mode: format!("{:?}", conn.mode).to_lowercase(),
            ..Default::default()
        };
        if let Some(ch) = r.child {
            ts.suite = ch.proposal.clone();
            ts.age_s = Some(r.now.saturating_duration_since(ch.created).as_secs());
            ts.inbound = Some(self.ike_sa(r.sas, ch.inbound_spi, Direction::Inbound));
            ts.outbound = Some(self.ike_sa(r.sas, ch.outbound_spi, Direction::Outbound));
        }
        ts
    }

    /// One IKE SA with its child SAs.
    fn ike_sa_row(&self, sas: &EngineSas, s: &ike::IkeSaStatus, now: Instant) -> IkeStatus {
        let secs_until = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(now).as_secs());
        IkeStatus {
            id: format!("{:#018x}", s.id),
            version: 2,
            mode: String::new(),
            nat_t: String::new(),
            conn: s.conn.clone(),
            state: s.state.to_string(),
            initiator: s.initiator,
            spi_i: format!("{:016x}", s.spis.0),
            spi_r: format!("{:016x}", s.spis.1),
            local: s.local.to_string(),
            remote: s.remote.to_string(),
            remote_id: s.remote_id.clone().unwrap_or_default(),
            peer_auth: String::new(),
            peer_cert: String::new(),
            proposal: s.proposal.clone(),
            nat_local: s.nat_local,
            nat_remote: s.nat_remote,
            mobike: s.mobike,
            peer_addresses: s.peer_addresses.iter().map(|a| a.to_string()).collect(),
            rekey_in_s: secs_until(s.rekey_at),
            expire_in_s: secs_until(s.expire_at),
            children: s
                .children
                .iter()
                .map(|ch| ChildStatus {
                    state: ch.state.to_string(),
                    proposal: ch.proposal.clone(),
                    local_ts: ch.local_ts.clone(),
                    remote_ts: ch.remote_ts.clone(),
                    encap: ch.encap,
                    inbound: self.ike_sa(sas, ch.inbound_spi, Direction::Inbound),
                    outbound: self.ike_sa(sas, ch.outbound_spi, Direction::Outbound),
                    age_s: now.saturating_duration_since(ch.created).as_secs(),
                    rekey_in_s: secs_until(ch.rekey_at),
                    expire_in_s: secs_until(Some(ch.expire_at)),
                })
                .collect(),
        }
    }

    /// Rows for the IKEv1 connections and ISAKMP SAs (next to IKEv2's), and
    /// the IKEv1 engine's counters.
    fn ikev1(&self, st: &mut Status, v1: &Ikev1Bridge) {
        let now = Instant::now();
        let sas = v1.engine.status();
        for c in &v1.conns {
            let row = self.ikev1_conn(v1, c, &sas, now);
            // `permit`/`propose`: both engines run the connection; its one
            // row is the engine's that has (or tries) SAs, else the initiator's
            let rank = |t: &TunnelStatus| match t.state.as_str() {
                "up" | "degraded" => 3,
                "connecting" => 2,
                "error" => 1,
                _ => 0,
            };
            match st
                .tunnels
                .iter()
                .position(|t| t.kind == "ike" && t.name == row.name)
            {
                Some(i) => {
                    let (r1, r2) = (rank(&row), rank(&st.tunnels[i]));
                    if r1 > r2 || (r1 == r2 && c.cfg.version.initiate_with() == 1) {
                        st.tunnels[i] = row;
                    }
                }
                None => st.tunnels.push(row),
            }
        }
        for s in &sas {
            let mut row = self.ike_sa_row(&v1.sas, &s.sa, now);
            row.version = 1;
            row.peer_auth = s.peer_auth.clone().unwrap_or_default();
            row.peer_cert = s.peer_cert.clone().unwrap_or_default();
            row.mode = s.mode.name().to_string();
            row.nat_t = s.nat_t.to_string();
            // the text status shows `proposal`: say the version and mode there too
            row.proposal = format!("IKEv1 {} mode {}", row.mode, row.proposal);
            st.ike_sas.push(row);
        }
        let stats = v1.engine.stats();
        st.ikev1 = Some(api::IkeCounters {
            rx: stats.rx,
            tx: stats.tx,
            retransmits: stats.retransmits,
            ike_established: stats.isakmp_established,
            child_established: stats.ipsec_established,
            half_open: v1.engine.half_open() as u64,
            child_refused_spi_in_use: v1.refused_spi_in_use,
            drops_by_reason: crate::ikev1::V1Drop::ALL
                .iter()
                .filter(|r| stats.drop_count(**r) > 0)
                .map(|r| (r.name().to_string(), stats.drop_count(*r)))
                .collect(),
            notes: v1.notes.iter().cloned().collect(),
        });
        // the text status prints the notes of `ike`: IKEv1's go there too
        if let Some(k) = &mut st.ike {
            k.notes.extend(v1.notes.iter().cloned());
        }
    }

    /// An IKEv1 connection's row: state from its ISAKMP SAs and current IPsec SA.
    fn ikev1_conn(
        &self,
        v1: &Ikev1Bridge,
        c: &Ikev1ConnItem,
        sas: &[crate::ikev1::Ikev1SaStatus],
        now: Instant,
    ) -> TunnelStatus {
        let mine: Vec<&ike::IkeSaStatus> = sas
            .iter()
            .map(|s| &s.sa)
            .filter(|s| s.conn == c.cfg.name)
            .collect();
        // IKEv1 IPsec SAs outlive the ISAKMP SA that made them.
        let child = mine
            .iter()
            .flat_map(|s| s.children.iter())
            .filter(|ch| ch.state == "INSTALLED")
            .max_by_key(|ch| ch.created);
        self.conn_row(ConnRow {
            cfg: &c.cfg,
            id: c.id,
            io_error: v1.io_error.as_deref(),
            error: c.error.as_deref(),
            degraded: None,
            has_sas: !mine.is_empty(),
            child,
            sas: &v1.sas,
            now,
        })
    }
}
