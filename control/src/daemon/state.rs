//! The daemon's state: one [`Installer`] over the shared-memory region, the
//! manual tunnels ([`Manual`]), the IKE bridges ([`IkeBridge`] for IKEv2,
//! [`Ikev1Bridge`] for IKEv1) and the taps, and the operator's commands
//! dispatched to whichever owns the name; IKE datagrams go to the engine of
//! their ISAKMP major version. No
//! sockets here: [`Daemon`] is driven by `daemon::run`.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use espresso_core::shm::ShmError;
use tracing::{info, warn};

use super::api::{exit, Response, Status};
use super::ike::IkeBridge;
use super::ikeio::Datagram;
use super::ikev1::Ikev1Bridge;
use super::installer::{Installer, Watch};
use super::looptime::Stalls;
use super::manual::{ItemCfg, Manual};
use super::status::{self, ControlInfo};
use super::tap::Taps;
use crate::config::connection::IkeConn;
use crate::config::ike::{StartAction, VersionPolicy};
use crate::config::{Config, ConfigErrors};

/// Events drained from the dataplane per tick, at most.
const EVENTS_PER_TICK: usize = 256;
/// IKE timers this late are logged (a stalled process misses rekey times).
const LATE_TIMERS: Duration = Duration::from_secs(1);

/// The daemon's state (see the module docs).
pub struct Daemon {
    config_path: PathBuf,
    inst: Installer,
    manual: Manual,
    ike: IkeBridge,
    ikev1: Ikev1Bridge,
    taps: Taps,
    started: Instant,
    last_lifetime_check: Instant,
    /// When the IKE SAs' local addresses were last checked (MOBIKE).
    last_address_check: Instant,
    warnings: Vec<String>,
    /// `[daemon] allow_key_export` of the configuration loaded last.
    allow_key_export: bool,
    /// How long the loop's stages took (see `looptime`).
    stalls: Stalls,
}

impl Daemon {
    /// Attaches to the dataplane's region, resynchronises with what a
    /// previous control process left there, and loads the IKE connections.
    pub fn new(config_path: &Path, mut config: Config) -> Result<Daemon, ShmError> {
        for w in &config.warnings {
            warn!("{w}");
        }
        let conns = std::mem::take(&mut config.connections);
        let warnings = config.warnings.clone();
        let allow_key_export = config.daemon.allow_key_export;
        let mut ike = IkeBridge::with_settings(&config.daemon);
        let mut ikev1 = Ikev1Bridge::with_settings(&config.daemon);
        let (mut inst, left) = Installer::attach(&config.daemon.shm)?;
        let manual = Manual::attach(&mut inst, ItemCfg::all(config), left);
        inst.remove_stale_slots();
        ikev1.init(&mut inst, &conns);
        ike.init(&mut inst, ikev2_conns(&conns));
        Ok(Daemon {
            config_path: config_path.to_path_buf(),
            inst,
            manual,
            ike,
            ikev1,
            taps: Taps::default(),
            started: Instant::now(),
            last_lifetime_check: Instant::now(),
            last_address_check: Instant::now(),
            warnings,
            allow_key_export,
            stalls: Stalls::new(),
        })
    }

    /// Gives the IKE engine its sockets; their datagrams arrive through `tx`.
    pub fn attach_ike_io(&mut self, tx: super::ikeio::Queues) {
        self.ike.attach_io(&mut self.inst, tx);
        self.ikev1
            .attach_io(&mut self.inst, self.ike.io(), self.ike.io_error.clone());
    }

    /// A datagram from the IKE sockets: to the IKEv1 engine if its ISAKMP
    /// major version is 1, else to the IKEv2 engine (which counts what is
    /// not IKE).
    pub fn ike_datagram(&mut self, d: Datagram) {
        if d.major_version(self.ike.engine.settings().natt_port) == Some(1) {
            self.ikev1.datagram(&mut self.inst, d);
        } else {
            self.ike.datagram(&mut self.inst, d);
            self.fall_back();
        }
    }

    /// `ikev2 = propose` connections whose IKEv2 attempt failed: initiated
    /// with IKEv1 (as Openswan does).
    fn fall_back(&mut self) {
        for name in self.ike.take_fallbacks() {
            let r = self.ikev1.up(&mut self.inst, &name);
            if r.code != exit::OK {
                warn!("{name}: IKEv1 fallback: {}", r.message);
            }
        }
    }

    /// The NAT-T port (its IKE datagrams start with the non-ESP marker).
    pub fn natt_port(&self) -> u16 {
        self.ike.engine.settings().natt_port
    }

    /// The IKE flood limits the daemon started with (`[daemon]`).
    pub fn ike_limits(&self) -> crate::config::IkeLimits {
        self.ike.limits
    }

    /// When the IKE engines' timers fire next.
    pub fn ike_timeout(&self) -> Option<Instant> {
        match (self.ike.timeout(), self.ikev1.timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The loop's stage timings.
    pub fn stalls(&self) -> &Stalls {
        &self.stalls
    }

    /// Runs the IKE engines' timers when they are due (between ticks).
    pub fn ike_timers(&mut self) {
        self.ike_timers_timed();
    }

    /// Both engines' timers, each timed as a loop stage; timers that run
    /// [`LATE_TIMERS`] or more after they were due are logged with the
    /// slowest loop stage since the last such warning (what held them).
    fn ike_timers_timed(&mut self) {
        let now = Instant::now();
        for (engine, due) in [
            ("IKEv2", self.ike.timeout()),
            ("IKEv1", self.ikev1.timeout()),
        ] {
            if let Some(late) = due.filter(|d| *d <= now).map(|d| now - d) {
                if late >= LATE_TIMERS {
                    warn!(
                        "{engine} timers ran {:.1} s late (the control process did not run them{})",
                        late.as_secs_f64(),
                        self.stalls.take_worst()
                    );
                }
            }
        }
        let t = Instant::now();
        self.ike.timers(&mut self.inst);
        self.fall_back();
        self.stalls.record("IKEv2 timers", t.elapsed());
        let t = Instant::now();
        self.ikev1.timers(&mut self.inst);
        self.stalls.record("IKEv1 timers", t.elapsed());
    }

    /// Periodic work: liveness, events, lifetimes, taps. Call every ~10 ms.
    pub fn tick(&mut self) {
        let t = Instant::now();
        if self.inst.watch(&self.manual.outbound_slots()) == Watch::NewDataplane {
            self.full_sync();
        }
        self.stalls.record("dataplane watch", t.elapsed());
        let t = Instant::now();
        for _ in 0..EVENTS_PER_TICK {
            let Some(ev) = self.inst.pop_event() else {
                break;
            };
            if !self.ike.event(&mut self.inst, &ev) && !self.ikev1.event(&mut self.inst, &ev) {
                self.manual.event(&mut self.inst, ev);
            }
        }
        self.stalls.record("dataplane events", t.elapsed());
        self.ike_timers_timed();
        let t = Instant::now();
        if self.last_lifetime_check.elapsed() >= Duration::from_millis(100) {
            self.last_lifetime_check = Instant::now();
            self.manual.lifetimes(&mut self.inst);
        }
        if self.last_address_check.elapsed() >= Duration::from_secs(1) {
            self.last_address_check = Instant::now();
            self.ike.check_addresses(&mut self.inst);
        }
        self.stalls.record("lifetimes and addresses", t.elapsed());
        let t = Instant::now();
        self.taps.forget(&self.inst.take_freed_ids());
        self.taps.tick(self.inst.shm_mut());
        self.stalls.record("taps", t.elapsed());
    }

    /// A new dataplane: flush whatever it holds and install everything.
    fn full_sync(&mut self) {
        if let Some(generation) = self.inst.begin_full_sync() {
            self.manual.full_sync(&mut self.inst);
            self.ike.resync(&mut self.inst);
            self.ikev1.resync(&mut self.inst);
            self.inst.end_full_sync(generation);
        }
    }

    fn not_found(&self, name: &str) -> Response {
        let names: Vec<&str> = self
            .manual
            .items()
            .iter()
            .map(|i| i.cfg.name())
            .chain(self.ike.names())
            .chain(self.ikev1.names().filter(|n| !self.ike.is_ike(n)))
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
        match self.manual.find(name) {
            Some(i) => self.manual.up(&mut self.inst, i),
            None if self.ikev1.initiates(name) => self.ikev1.up(&mut self.inst, name),
            None if self.ike.is_ike(name) => self.ike.up(&mut self.inst, name),
            None if self.ikev1.is_ikev1(name) => self.ikev1.up(&mut self.inst, name),
            None => self.not_found(name),
        }
    }

    /// `espresso down NAME`.
    pub fn down(&mut self, name: &str) -> Response {
        match self.manual.find(name) {
            Some(i) => self.manual.down(&mut self.inst, i),
            None if self.ike.is_ike(name) && self.ikev1.is_ikev1(name) => {
                let r = self.ike.down(&mut self.inst, name);
                let r1 = self.ikev1.down(&mut self.inst, name);
                Response::ok(format!("{}; {}", r.message, r1.message))
            }
            None if self.ike.is_ike(name) => self.ike.down(&mut self.inst, name),
            None if self.ikev1.is_ikev1(name) => self.ikev1.down(&mut self.inst, name),
            None => self.not_found(name),
        }
    }

    /// `espresso move NAME ADDRESS` (MOBIKE): our address for IKEv2
    /// connection `name` is now `addr`.
    pub fn move_local(&mut self, name: &str, addr: std::net::IpAddr) -> Response {
        if self.ike.is_ike(name) {
            self.ike.move_local(&mut self.inst, name, addr)
        } else {
            self.not_found(name)
        }
    }

    /// `espresso reload [NAME]`. The whole configuration must load; if it
    /// does not, nothing changes.
    pub fn reload(&mut self, name: Option<&str>) -> Response {
        let r = self.reload_inner(name);
        self.taps.forget(&self.inst.take_freed_ids());
        r
    }

    fn reload_inner(&mut self, name: Option<&str>) -> Response {
        let mut config = match crate::config::load(&self.config_path) {
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
        let v1_warnings = match Ikev1Bridge::check(&config.connections) {
            Ok(w) => w,
            Err(lines) => {
                warn!(
                    "reload refused: {} error(s) in IKEv1 connections; nothing changed",
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
        config.warnings.extend(v1_warnings);
        if config.daemon.shm != *self.inst.shm().path() {
            return Response::err(exit::CONFIG, format!(
                "daemon.shm changed to {}: restart the daemon to move to another dataplane; nothing was changed",
                config.daemon.shm.display()
            ));
        }
        self.warnings = config.warnings.clone();
        let es = self.ike.engine.settings();
        if (es.fragmentation, es.fragment_size, es.rfc7427)
            != (
                config.daemon.fragmentation,
                config.daemon.fragment_size,
                config.daemon.rfc7427,
            )
        {
            let w = "[daemon] fragmentation, fragment_size and rfc7427 take effect when the daemon restarts";
            warn!("{w}");
            self.warnings.push(w.to_string());
        }
        if self.ike.limits != config.daemon.ike_limits {
            let w = "[daemon] half_open, half_open_per_source, cookie_threshold, max_init_message, max_message and ike_queue take effect when the daemon restarts";
            warn!("{w}");
            self.warnings.push(w.to_string());
        }
        self.allow_key_export = config.daemon.allow_key_export;
        let conns = std::mem::take(&mut config.connections);
        let new = ItemCfg::all(config);
        match name {
            Some(n)
                if self.ike.is_ike(n)
                    || self.ikev1.is_ikev1(n)
                    || conns.iter().any(|c| c.name == n) =>
            {
                let mut changed = self
                    .ike
                    .reload(&mut self.inst, ikev2_conns(&conns), Some(n));
                changed.extend(self.ikev1.reload(&mut self.inst, &conns, Some(n)));
                let what = if changed.is_empty() {
                    "no changes".to_string()
                } else {
                    changed.join(", ")
                };
                info!("{n}: reloaded ({what})");
                Response::ok(if changed.is_empty() {
                    format!("{n}: reloaded: no changes")
                } else {
                    format!("reloaded: {what}")
                })
            }
            Some(n) => {
                let cfg = new.into_iter().find(|c| c.name() == n);
                match self.manual.reload_one(&mut self.inst, n, cfg) {
                    Some(r) => r,
                    None => self.not_found(n),
                }
            }
            None => self.reload_all(new, conns),
        }
    }

    fn reload_all(&mut self, new: Vec<ItemCfg>, conns: Vec<IkeConn>) -> Response {
        let mut ike_changed = self.ike.reload(&mut self.inst, ikev2_conns(&conns), None);
        ike_changed.extend(self.ikev1.reload(&mut self.inst, &conns, None));
        let changed = match self.manual.reload_all(&mut self.inst, new) {
            Ok(c) => c,
            Err(r) => return *r,
        };
        info!(
            "configuration reloaded: {}",
            if changed.is_empty() {
                "no changes".to_string()
            } else {
                changed.join(", ")
            }
        );
        let mut message = if changed.is_empty() {
            "reloaded: no changes".to_string()
        } else {
            format!("reloaded: {}", changed.join(", "))
        };
        if !ike_changed.is_empty() {
            info!("connections reloaded: {}", ike_changed.join(", "));
            message = if changed.is_empty() {
                format!("reloaded: {}", ike_changed.join(", "))
            } else {
                format!("{message}, {}", ike_changed.join(", "))
            };
        }
        Response {
            code: exit::OK,
            message,
            lines: self.warnings.clone(),
            ..Default::default()
        }
    }

    /// Starts a tap on tunnel `name`; the receiver gets pcap record bytes.
    pub fn tap(&mut self, name: &str) -> Result<Receiver<Vec<u8>>, Box<Response>> {
        let Some(i) = self.manual.find(name) else {
            return Err(Box::new(self.not_found(name)));
        };
        let id = self.manual.tunnel_id(i)?;
        let rx = self.taps.start(self.inst.shm_mut(), id);
        info!("{name}: tap started");
        Ok(rx)
    }

    /// `espresso keys [NAME]`: both SAs of every running tunnel and IKE
    /// child SA (or of `name`) with their keys. Refused unless the
    /// configuration has `[daemon] allow_key_export = true`. Nothing here is
    /// logged.
    pub fn keys(&self, name: Option<&str>) -> Response {
        if !self.allow_key_export {
            return Response::err(
                exit::STATE,
                "key export is off: set `allow_key_export = true` in [daemon] of the configuration \
                 and reload (anyone who can read the keys can decrypt the tunnels' traffic)",
            );
        }
        let ike_only = name.is_some_and(|n| self.ike.is_ike(n) || self.ikev1.is_ikev1(n));
        let manual = match name {
            Some(_) if ike_only => Ok(Vec::new()),
            Some(n) => match self.manual.find(n) {
                None => return self.not_found(n),
                Some(i) => self.manual.keys(Some(i)),
            },
            None => self.manual.keys(None),
        };
        let mut keys = match manual {
            Ok(k) => k,
            Err(r) => return *r,
        };
        if name.is_none() || ike_only {
            self.ike.keys(name, &mut keys);
            self.ikev1.keys(name, &mut keys);
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
        status::status(
            ControlInfo {
                config: &self.config_path,
                started: self.started,
            },
            &self.inst,
            &self.manual,
            &self.ike,
            &self.ikev1,
        )
    }
}

/// The connections the IKEv2 engine gets: every one whose version policy
/// accepts IKEv2. With `ikev2 = permit` IKEv1 initiates: the IKEv2 engine
/// only answers (start action `add`).
fn ikev2_conns(conns: &[IkeConn]) -> Vec<IkeConn> {
    conns
        .iter()
        .filter(|c| c.version.accepts(2))
        .map(|c| {
            let mut c = c.clone();
            if c.version == VersionPolicy::Permit
                && matches!(c.conn.start_action, StartAction::Start | StartAction::Trap)
            {
                c.conn.start_action = StartAction::Add;
            }
            c
        })
        .collect()
}
