//! The configuration file: TOML with manually keyed tunnels (`[[tunnel]]`),
//! cleartext/discard rules (`[[policy]]`), templates (`[template.NAME]`,
//! FreeS/WAN's `also=`), `include` of further files (globs), secrets files
//! (mode 0600), IKE connections (`[[connection]]`, [`ike::Connection`]), the
//! daemon's settings (`[daemon]`) and the dataplane's (`[dataplane]`). The format is documented with examples in `docs/config.md`.
//!
//! Loading checks everything before anything is used: every bad input gives
//! a [`ConfigError`] naming the file, line, field and value (never a key's
//! value), and all errors of a file are reported at once. A config that fails
//! to load changes nothing that runs.

pub mod connection;
pub mod dataplane;
pub mod ike;
pub mod values;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::alg::Suite;
use crate::key::Key;
use crate::sa::{
    DfMode, Direction, Lifetime, Mode, Policy, PolicyAction, PortRange, SaParams, TrafficSelector,
    UdpEncap, DEFAULT_REPLAY_WINDOW, MAX_REPLAY_WINDOW, MIN_REPLAY_WINDOW,
};
use ipnet::IpNet;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::{Spanned, Value};

/// Default path of the shared-memory region.
pub const DEFAULT_SHM: &str = "/dev/shm/espresso";
/// Default path of the CLI socket.
pub const DEFAULT_SOCKET: &str = "/run/espresso/espresso.sock";
/// Default address of the Prometheus endpoint.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9715";
/// Deepest include nesting accepted.
pub const MAX_INCLUDE_DEPTH: usize = 8;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File the problem is in.
    pub file: PathBuf,
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// Field, e.g. `tunnel[north-south].spi_in`.
    pub field: Option<String>,
    /// The value as written (keys are never shown, only their length).
    pub value: Option<String>,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ":")?;
        if let Some(field) = &self.field {
            write!(f, " {field}")?;
            if let Some(v) = &self.value {
                write!(f, " = {v}")?;
            }
            write!(f, ":")?;
        }
        write!(f, " {}", self.message)
    }
}

/// Every problem found in a configuration (at least one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// What the daemon does with a tunnel or policy when it starts or reloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartMode {
    /// Installed at once (FreeS/WAN `auto=start`, ClearOS "automatic").
    Start,
    /// Loaded and checked, installed only by `espresso up NAME` (`auto=add`).
    Add,
    /// Checked, otherwise ignored (`auto=ignore`).
    Ignore,
}

/// Byte, packet and time lifetimes of a tunnel's SAs (0 / `None`: unlimited).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Lifetimes {
    /// Soft byte limit (a warning; IKE would rekey).
    pub soft_bytes: u64,
    /// Hard byte limit (the SA stops).
    pub hard_bytes: u64,
    /// Soft packet limit.
    pub soft_packets: u64,
    /// Hard packet limit.
    pub hard_packets: u64,
    /// Soft time limit since installation.
    pub soft_time: Option<Duration>,
    /// Hard time limit since installation.
    pub hard_time: Option<Duration>,
}

/// The four keys of a manual tunnel (`_in`: the peer's outbound SA, which we decrypt).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelKeys {
    /// Encryption key of the inbound SA (AEAD: key + 4-byte salt).
    pub enc_in: Key,
    /// Encryption key of the outbound SA.
    pub enc_out: Key,
    /// Integrity key of the inbound SA (empty for AEAD).
    pub auth_in: Key,
    /// Integrity key of the outbound SA.
    pub auth_out: Key,
}

/// A manually keyed tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunnel {
    /// Name (`up`/`down`/`reload NAME`).
    pub name: String,
    /// File it was defined in.
    pub file: PathBuf,
    /// Line of its `[[tunnel]]` table.
    pub line: usize,
    /// Our gateway address (FreeS/WAN `left`).
    pub local: IpAddr,
    /// The peer gateway (`right`).
    pub remote: IpAddr,
    /// Prefixes behind us.
    pub local_subnets: Vec<IpNet>,
    /// Prefixes behind the peer.
    pub remote_subnets: Vec<IpNet>,
    /// Tunnel or transport.
    pub mode: Mode,
    /// Encryption and integrity.
    pub suite: Suite,
    /// SPI of the inbound SA (the peer's `spi_out`).
    pub spi_in: u32,
    /// SPI of the outbound SA (the peer's `spi_in`).
    pub spi_out: u32,
    /// Keys.
    pub keys: TunnelKeys,
    /// Anti-replay window (0: off).
    pub replay_window: u32,
    /// Extended sequence numbers.
    pub esn: bool,
    /// UDP encapsulation (NAT-T).
    pub encap: Option<UdpEncap>,
    /// DF bit on tunnel entry.
    pub df: DfMode,
    /// Copy DSCP inner <-> outer.
    pub copy_dscp: bool,
    /// Lifetimes.
    pub lifetime: Lifetimes,
    /// Start mode.
    pub start: StartMode,
    /// 3DES / HMAC-MD5 explicitly allowed.
    pub allow_legacy: bool,
    /// Policy priority (lower wins).
    pub priority: u32,
}

/// A cleartext or discard rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRule {
    /// Name.
    pub name: String,
    /// File.
    pub file: PathBuf,
    /// Line.
    pub line: usize,
    /// Prefixes on our side.
    pub local_subnets: Vec<IpNet>,
    /// Prefixes on the far side.
    pub remote_subnets: Vec<IpNet>,
    /// Bypass or discard.
    pub action: PolicyAction,
    /// Priority (lower wins).
    pub priority: u32,
    /// Start mode.
    pub start: StartMode,
}

/// Daemon settings (`[daemon]`, main file only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonSettings {
    /// Shared-memory region of the dataplane.
    pub shm: PathBuf,
    /// CLI socket.
    pub socket: PathBuf,
    /// Prometheus endpoint (None: off).
    pub metrics: Option<SocketAddr>,
    /// Log lines kept for `espresso log`.
    pub log_lines: usize,
    /// `espresso keys` may print the SA keys (for Wireshark/scapy).
    pub allow_key_export: bool,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            shm: DEFAULT_SHM.into(),
            socket: DEFAULT_SOCKET.into(),
            metrics: DEFAULT_METRICS.parse().ok(),
            log_lines: 1000,
            allow_key_export: false,
        }
    }
}

/// A loaded, checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Daemon settings.
    pub daemon: DaemonSettings,
    /// The dataplane's options (`[dataplane]`; the daemon does not use them).
    pub dataplane: dataplane::DataplaneSettings,
    /// Manual tunnels, in file order.
    pub tunnels: Vec<Tunnel>,
    /// Bypass/discard rules.
    pub policies: Vec<PolicyRule>,
    /// IKE connections (`[[connection]]`), in file order.
    pub connections: Vec<connection::IkeConn>,
    /// Every file read.
    pub files: Vec<PathBuf>,
    /// Things that work but deserve a word (legacy algorithms, replay off...).
    pub warnings: Vec<String>,
}

impl Config {
    /// Loads `path` and everything it includes, and checks it all.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Loader::default().run(path)
    }

    /// The tunnel called `name`.
    pub fn tunnel(&self, name: &str) -> Option<&Tunnel> {
        self.tunnels.iter().find(|t| t.name == name)
    }

    /// The policy rule called `name`.
    pub fn policy(&self, name: &str) -> Option<&PolicyRule> {
        self.policies.iter().find(|t| t.name == name)
    }

    /// The region the dataplane attaches to per `[dataplane] shm` (`true`:
    /// the daemon's); `None` when the file does not give one.
    pub fn dataplane_shm(&self) -> Option<PathBuf> {
        match self.dataplane.shm.as_ref()? {
            dataplane::ShmSetting::Daemon => Some(self.daemon.shm.clone()),
            dataplane::ShmSetting::Path(p) => Some(p.clone()),
            dataplane::ShmSetting::Off => None,
        }
    }
}

/// Stable 64-bit digest (first 8 bytes of SHA-256) with a domain label.
fn digest(label: &str, parts: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

impl Tunnel {
    /// Traffic selectors: every same-family pair of local and remote prefixes.
    pub fn selectors(&self) -> Vec<TrafficSelector> {
        let mut out = Vec::new();
        for l in &self.local_subnets {
            for r in &self.remote_subnets {
                if l.addr().is_ipv4() == r.addr().is_ipv4() {
                    out.push(TrafficSelector {
                        local: *l,
                        remote: *r,
                        proto: 0,
                        local_ports: PortRange::ANY,
                        remote_ports: PortRange::ANY,
                    });
                }
            }
        }
        out
    }

    /// The SA for one direction. `initial_seq`: outbound, the next sequence
    /// number to send; inbound, the lowest sequence number still acceptable
    /// (the dataplane's replay window refuses everything below it).
    pub fn sa_params(&self, direction: Direction, tunnel_id: u32, initial_seq: u64) -> SaParams {
        let (spi, enc, auth) = match direction {
            Direction::Inbound => (self.spi_in, &self.keys.enc_in, &self.keys.auth_in),
            Direction::Outbound => (self.spi_out, &self.keys.enc_out, &self.keys.auth_out),
        };
        let l = &self.lifetime;
        SaParams {
            spi,
            direction,
            mode: self.mode,
            suite: self.suite,
            enc_key: enc.clone(),
            auth_key: auth.clone(),
            esn: self.esn,
            replay_window: self.replay_window,
            local_addr: self.local,
            remote_addr: self.remote,
            encap: self.encap,
            selectors: self.selectors(),
            lifetime: Lifetime {
                soft_bytes: l.soft_bytes,
                hard_bytes: l.hard_bytes,
                soft_packets: l.soft_packets,
                hard_packets: l.hard_packets,
            },
            df: self.df,
            copy_dscp: self.copy_dscp,
            initial_seq,
            allow_legacy: self.allow_legacy,
            tunnel_id,
        }
    }

    /// Outbound policies: protect every selector with the outbound SA.
    /// Policy ids are `tunnel_id << 16 | index`.
    pub fn policies(&self, tunnel_id: u32) -> Vec<Policy> {
        self.selectors()
            .into_iter()
            .enumerate()
            .map(|(i, selector)| Policy {
                id: tunnel_id << 16 | i as u32,
                tunnel_id,
                selector,
                action: PolicyAction::Protect { spi: self.spi_out },
                priority: self.priority,
            })
            .collect()
    }

    /// Identifies the keys of one direction (sequence numbers are unique per key).
    pub fn key_id(&self, direction: Direction) -> u64 {
        let (enc, auth) = match direction {
            Direction::Inbound => (&self.keys.enc_in, &self.keys.auth_in),
            Direction::Outbound => (&self.keys.enc_out, &self.keys.auth_out),
        };
        digest("espresso key id", &[enc.bytes(), auth.bytes()])
    }

    /// Digest of everything that defines the SA of one direction.
    pub fn params_hash(&self, direction: Direction) -> u64 {
        let p = self.sa_params(direction, 0, 0);
        let text = format!("{p:?}|{}", self.key_id(direction));
        digest("espresso sa params", &[text.as_bytes()])
    }

    /// Digest of the whole tunnel definition (reload compares it).
    pub fn config_hash(&self) -> u64 {
        let text = format!(
            "{}|{:?}|{:?}|{:?}|{}|{}|{}",
            self.name,
            self.lifetime,
            self.start,
            self.priority,
            self.params_hash(Direction::Inbound),
            self.params_hash(Direction::Outbound),
            self.policies(0).len()
        );
        digest("espresso tunnel", &[text.as_bytes()])
    }
}

impl PolicyRule {
    /// The rule as SPD entries (ids `tunnel_id << 16 | index`).
    pub fn to_policies(&self, tunnel_id: u32) -> Vec<Policy> {
        let mut out = Vec::new();
        for l in &self.local_subnets {
            for r in &self.remote_subnets {
                if l.addr().is_ipv4() != r.addr().is_ipv4() {
                    continue;
                }
                out.push(Policy {
                    id: tunnel_id << 16 | out.len() as u32,
                    tunnel_id,
                    selector: TrafficSelector {
                        local: *l,
                        remote: *r,
                        proto: 0,
                        local_ports: PortRange::ANY,
                        remote_ports: PortRange::ANY,
                    },
                    action: self.action,
                    priority: self.priority,
                });
            }
        }
        out
    }

    /// Digest of the rule (reload compares it).
    pub fn config_hash(&self) -> u64 {
        let text = format!("{:?}", self.to_policies(0));
        digest("espresso policy", &[text.as_bytes(), &[self.start as u8]])
    }
}

// ---------------------------------------------------------------------------
// Loading

type RawMap = BTreeMap<String, Spanned<Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    include: Option<Spanned<Value>>,
    daemon: Option<Spanned<RawMap>>,
    /// `espresso-dataplane --config FILE` reads this table (backend, ports,
    /// cores, EAL arguments); checked like every other table.
    dataplane: Option<Spanned<RawMap>>,
    #[serde(default)]
    template: BTreeMap<String, Spanned<RawMap>>,
    #[serde(default)]
    tunnel: Vec<Spanned<RawMap>>,
    #[serde(default)]
    policy: Vec<Spanned<RawMap>>,
    #[serde(default)]
    connection: Vec<Spanned<RawMap>>,
}

struct SourceFile {
    path: PathBuf,
    line_starts: Vec<usize>,
    mode: u32,
    uid: u32,
}

impl SourceFile {
    fn line(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

/// A value with where it came from and the name it was written under.
#[derive(Clone)]
struct Field {
    value: Value,
    file: usize,
    span: Range<usize>,
    written: String,
}

type Fields = BTreeMap<String, Field>;

struct Block {
    fields: Fields,
    file: usize,
    span: Range<usize>,
}

#[derive(Default)]
struct Loader {
    files: Vec<SourceFile>,
    seen: HashSet<PathBuf>,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
    daemon: Option<Block>,
    dataplane: Option<Block>,
    templates: BTreeMap<String, Block>,
    tunnels: Vec<Block>,
    policies: Vec<Block>,
    connections: Vec<Block>,
}

const TUNNEL_FIELDS: &[(&str, &[&str])] = &[
    ("name", &["conn"]),
    ("also", &[]),
    ("local", &["left", "local_addr", "local_gateway"]),
    (
        "remote",
        &["right", "remote_addr", "remote_gateway", "peer"],
    ),
    ("local_subnets", &["leftsubnet", "local_subnet", "from"]),
    ("remote_subnets", &["rightsubnet", "remote_subnet", "to"]),
    ("mode", &["type"]),
    ("suite", &["esp"]),
    ("spi", &[]),
    ("spi_in", &[]),
    ("spi_out", &[]),
    ("enc_key", &["espenckey"]),
    ("enc_key_in", &[]),
    ("enc_key_out", &[]),
    ("auth_key", &["espauthkey"]),
    ("auth_key_in", &[]),
    ("auth_key_out", &[]),
    ("keys", &["secrets"]),
    ("replay_window", &[]),
    ("esn", &[]),
    ("nat_t", &["encap", "udp_encap"]),
    ("df", &[]),
    ("copy_dscp", &[]),
    ("lifetime", &[]),
    ("start", &["auto"]),
    ("allow_legacy", &[]),
    ("priority", &[]),
];

const KEY_FIELDS: &[&str] = &[
    "enc_key",
    "enc_key_in",
    "enc_key_out",
    "auth_key",
    "auth_key_in",
    "auth_key_out",
];

const POLICY_FIELDS: &[(&str, &[&str])] = &[
    ("name", &[]),
    ("local_subnets", &["leftsubnet", "local_subnet", "from"]),
    ("remote_subnets", &["rightsubnet", "remote_subnet", "to"]),
    ("action", &[]),
    ("priority", &[]),
    ("start", &["auto"]),
];

const DAEMON_FIELDS: &[(&str, &[&str])] = &[
    ("shm", &[]),
    ("socket", &[]),
    ("metrics", &[]),
    ("log_lines", &[]),
    ("allow_key_export", &[]),
];

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl Loader {
    fn err(
        &mut self,
        file: usize,
        span: Option<&Range<usize>>,
        field: Option<String>,
        value: Option<String>,
        message: impl Into<String>,
    ) {
        let f = &self.files[file];
        self.errors.push(ConfigError {
            file: f.path.clone(),
            line: span.map(|s| f.line(s.start)),
            field,
            value,
            message: message.into(),
        });
    }

    fn path_err(&mut self, path: &Path, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: path.to_path_buf(),
            line: None,
            field: None,
            value: None,
            message: message.into(),
        });
    }

    fn run(mut self, path: &Path) -> Result<Config, ConfigErrors> {
        self.load_file(path, 0, None);
        if !self.errors.is_empty() {
            return Err(ConfigErrors(self.errors));
        }
        let daemon = self.daemon_settings();
        let dp_block = self.dataplane.take();
        let dataplane = self.dataplane_settings(dp_block);
        let tunnels = std::mem::take(&mut self.tunnels);
        let mut out_tunnels = Vec::new();
        for b in tunnels {
            if let Some(t) = self.tunnel(b) {
                out_tunnels.push(t);
            }
        }
        let policies = std::mem::take(&mut self.policies);
        let mut out_policies = Vec::new();
        for b in policies {
            if let Some(p) = self.policy_rule(b) {
                out_policies.push(p);
            }
        }
        let conns = std::mem::take(&mut self.connections);
        let mut out_conns = Vec::new();
        for b in conns {
            if let Some(c) = self.connection(b) {
                out_conns.push(c);
            }
        }
        self.cross_checks(&out_tunnels, &out_policies, &out_conns);
        if !self.errors.is_empty() {
            return Err(ConfigErrors(self.errors));
        }
        if let Some(dataplane::ShmSetting::Path(p)) = &dataplane.shm {
            if *p != daemon.shm {
                self.warnings.push(format!(
                    "dataplane.shm = {} but daemon.shm = {}: the two processes do not meet \
                     (write shm = true in [dataplane] for the daemon's region)",
                    p.display(),
                    daemon.shm.display()
                ));
            }
        }
        Ok(Config {
            daemon,
            dataplane,
            tunnels: out_tunnels,
            policies: out_policies,
            connections: out_conns,
            files: self.files.iter().map(|f| f.path.clone()).collect(),
            warnings: self.warnings,
        })
    }

    /// Reads one file and what it includes. `from`: the including file and
    /// the include value's span (for errors).
    fn load_file(&mut self, path: &Path, depth: usize, from: Option<(usize, Range<usize>)>) {
        let canon = match std::fs::canonicalize(path) {
            Ok(c) => c,
            Err(e) => {
                match from {
                    Some((f, span)) => self.err(
                        f,
                        Some(&span),
                        Some("include".into()),
                        Some(format!("{:?}", path.display().to_string())),
                        format!("cannot open: {e}"),
                    ),
                    None => self.path_err(path, format!("cannot open: {e}")),
                }
                return;
            }
        };
        if !self.seen.insert(canon.clone()) {
            if let Some((f, span)) = from {
                self.err(
                    f,
                    Some(&span),
                    Some("include".into()),
                    Some(format!("{:?}", path.display().to_string())),
                    "file is included twice (or includes itself)",
                );
            }
            return;
        }
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                self.path_err(path, format!("cannot read: {e}"));
                return;
            }
        };
        let md = std::fs::metadata(path).ok();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let file = self.files.len();
        self.files.push(SourceFile {
            path: path.to_path_buf(),
            line_starts,
            mode: md.as_ref().map_or(0, |m| m.mode() & 0o7777),
            uid: md.as_ref().map_or(0, |m| m.uid()),
        });
        let raw: RawFile = match toml::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                let span = e.span();
                self.err(
                    file,
                    span.as_ref(),
                    None,
                    None,
                    e.message().trim().to_string(),
                );
                return;
            }
        };
        let fields = |m: RawMap| -> Fields {
            m.into_iter()
                .map(|(k, v)| {
                    let span = v.span();
                    (
                        k.clone(),
                        Field {
                            value: v.into_inner(),
                            file,
                            span,
                            written: k,
                        },
                    )
                })
                .collect()
        };
        if let Some(d) = raw.dataplane {
            let span = d.span();
            if depth > 0 {
                self.err(
                    file,
                    Some(&span),
                    Some("dataplane".into()),
                    None,
                    "dataplane settings belong in the main configuration file, not an included one",
                );
            } else {
                self.dataplane = Some(Block {
                    fields: fields(d.into_inner()),
                    file,
                    span,
                });
            }
        }
        if let Some(d) = raw.daemon {
            let span = d.span();
            if depth > 0 {
                self.err(
                    file,
                    Some(&span),
                    Some("daemon".into()),
                    None,
                    "daemon settings belong in the main configuration file, not an included one",
                );
            } else {
                self.daemon = Some(Block {
                    fields: fields(d.into_inner()),
                    file,
                    span,
                });
            }
        }
        for (name, t) in raw.template {
            let span = t.span();
            if let Some(prev) = self.templates.get(&name) {
                let pf = self.files[prev.file].path.display().to_string();
                let pl = self.files[prev.file].line(prev.span.start);
                self.err(
                    file,
                    Some(&span),
                    Some(format!("template.{name}")),
                    None,
                    format!("template defined twice (first at {pf}:{pl})"),
                );
                continue;
            }
            self.templates.insert(
                name,
                Block {
                    fields: fields(t.into_inner()),
                    file,
                    span,
                },
            );
        }
        for t in raw.tunnel {
            let span = t.span();
            self.tunnels.push(Block {
                fields: fields(t.into_inner()),
                file,
                span,
            });
        }
        for p in raw.policy {
            let span = p.span();
            self.policies.push(Block {
                fields: fields(p.into_inner()),
                file,
                span,
            });
        }
        for c in raw.connection {
            let span = c.span();
            self.connections.push(Block {
                fields: fields(c.into_inner()),
                file,
                span,
            });
        }
        if let Some(inc) = raw.include {
            let span = inc.span();
            let pats = match values::strings(inc.get_ref()) {
                Ok(p) => p,
                Err(m) => {
                    self.err(
                        file,
                        Some(&span),
                        Some("include".into()),
                        Some(values::show(inc.get_ref())),
                        m,
                    );
                    return;
                }
            };
            if depth + 1 > MAX_INCLUDE_DEPTH {
                self.err(
                    file,
                    Some(&span),
                    Some("include".into()),
                    None,
                    format!("includes nested deeper than {MAX_INCLUDE_DEPTH} levels"),
                );
                return;
            }
            let base = path.parent().unwrap_or(Path::new("."));
            for pat in pats {
                let full = if Path::new(&pat).is_absolute() {
                    PathBuf::from(&pat)
                } else {
                    base.join(&pat)
                };
                if !has_glob(&pat) {
                    self.load_file(&full, depth + 1, Some((file, span.clone())));
                    continue;
                }
                let matches = match glob::glob(&full.to_string_lossy()) {
                    Ok(m) => m,
                    Err(e) => {
                        self.err(
                            file,
                            Some(&span),
                            Some("include".into()),
                            Some(format!("{pat:?}")),
                            format!("bad pattern: {e}"),
                        );
                        continue;
                    }
                };
                let mut paths: Vec<PathBuf> = matches
                    .filter_map(Result::ok)
                    .filter(|p| p.is_file())
                    .collect();
                paths.sort();
                if paths.is_empty() {
                    self.warnings.push(format!(
                        "{}: include {pat:?} matches no file",
                        self.files[file].path.display()
                    ));
                }
                for p in paths {
                    self.load_file(&p, depth + 1, Some((file, span.clone())));
                }
            }
        }
    }

    /// Renames aliases to canonical names and reports unknown fields.
    fn canonical(&mut self, ctx: &str, mut b: Block, spec: &[(&str, &[&str])]) -> Block {
        let mut out = Fields::new();
        for (k, f) in std::mem::take(&mut b.fields) {
            let canon = spec
                .iter()
                .find(|(c, a)| *c == k || a.contains(&k.as_str()))
                .map(|(c, _)| *c);
            let Some(canon) = canon else {
                let near = spec
                    .iter()
                    .map(|(c, _)| *c)
                    .filter(|c| edit_distance(c, &k) <= 2)
                    .min_by_key(|c| edit_distance(c, &k));
                let hint = match near {
                    Some(n) => format!("unknown field (did you mean {n}?)"),
                    None => format!(
                        "unknown field; known fields: {}",
                        spec.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
                    ),
                };
                self.err(
                    f.file,
                    Some(&f.span),
                    Some(format!("{ctx}.{k}")),
                    None,
                    hint,
                );
                continue;
            };
            if let Some(prev) = out.get(canon) {
                let msg = format!("given twice (also as {})", prev.written);
                self.err(f.file, Some(&f.span), Some(format!("{ctx}.{k}")), None, msg);
                continue;
            }
            out.insert(canon.to_string(), f);
        }
        b.fields = out;
        b
    }

    fn daemon_settings(&mut self) -> DaemonSettings {
        let mut d = DaemonSettings::default();
        let Some(b) = self.daemon.take() else {
            return d;
        };
        let b = self.canonical("daemon", b, DAEMON_FIELDS);
        let mut p = Parse {
            l: self,
            ctx: "daemon".into(),
            fields: b.fields,
            file: b.file,
            span: b.span,
        };
        if let Some(v) = p.get("shm", values::string) {
            d.shm = v.into();
        }
        if let Some(v) = p.get("socket", values::string) {
            d.socket = v.into();
        }
        if let Some(v) = p.get("metrics", |v| match v {
            Value::Boolean(false) => Ok(None),
            Value::String(s) if s.is_empty() || s == "off" => Ok(None),
            Value::String(s) => s.parse::<SocketAddr>().map(Some).map_err(|_| {
                format!("\"{s}\" is not ADDRESS:PORT (e.g. 127.0.0.1:9715), \"\" or false")
            }),
            o => Err(format!(
                "expected \"ADDRESS:PORT\" or false, found {}",
                values::kind(o)
            )),
        }) {
            d.metrics = v;
        }
        if let Some(v) = p.get("log_lines", |v| {
            let n = values::integer(v)?;
            if (10..=1_000_000).contains(&n) {
                Ok(n as usize)
            } else {
                Err(format!("{n}: keep between 10 and 1000000 lines"))
            }
        }) {
            d.log_lines = v;
        }
        if let Some(v) = p.get("allow_key_export", values::boolean) {
            d.allow_key_export = v;
        }
        d
    }

    fn start_mode(v: &Value) -> Result<StartMode, String> {
        let s = values::string(v)?;
        match s.as_str() {
            "start" | "up" | "auto" | "automatic" => Ok(StartMode::Start),
            "add" | "manual" | "none" => Ok(StartMode::Add),
            "ignore" => Ok(StartMode::Ignore),
            "route" | "trap" | "listen" | "ondemand" => Err(format!(
                "\"{s}\" needs IKE (traffic-triggered or responder-only negotiation); manual tunnels take start, add or ignore"
            )),
            _ => Err(format!("\"{s}\": expected start, add or ignore")),
        }
    }

    fn name_ok(v: &Value) -> Result<String, String> {
        let s = values::string(v)?;
        if s.is_empty() || s.len() > crate::shm::MAX_TUNNEL_NAME {
            return Err(format!(
                "names are 1 to {} characters",
                crate::shm::MAX_TUNNEL_NAME
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(format!(
                "character {c:?} not allowed: names use letters, digits, '-', '_' and '.'"
            ));
        }
        Ok(s)
    }

    fn tunnel(&mut self, b: Block) -> Option<Tunnel> {
        let ctx0 = match b.fields.get("name") {
            Some(f) => match Self::name_ok(&f.value) {
                Ok(n) => format!("tunnel[{n}]"),
                Err(_) => "tunnel".into(),
            },
            None => "tunnel".into(),
        };
        let mut b = self.canonical(&ctx0, b, TUNNEL_FIELDS);
        let (file, span) = (b.file, b.span.clone());
        // also= : fill unset fields from templates, in order.
        if let Some(also) = b.fields.remove("also") {
            match values::strings(&also.value) {
                Err(m) => self.err(
                    also.file,
                    Some(&also.span),
                    Some(format!("{ctx0}.also")),
                    Some(values::show(&also.value)),
                    m,
                ),
                Ok(names) => {
                    for n in names {
                        let Some(t) = self.templates.get(&n) else {
                            let known: Vec<_> = self.templates.keys().cloned().collect();
                            let msg = if known.is_empty() {
                                "no such template (define it as [template.NAME])".to_string()
                            } else {
                                format!("no such template (known: {})", known.join(", "))
                            };
                            self.err(
                                also.file,
                                Some(&also.span),
                                Some(format!("{ctx0}.also")),
                                Some(format!("{n:?}")),
                                msg,
                            );
                            continue;
                        };
                        let tf = t.fields.clone();
                        let tb = Block {
                            fields: tf,
                            file: t.file,
                            span: t.span.clone(),
                        };
                        let tb = self.canonical(&format!("template.{n}"), tb, TUNNEL_FIELDS);
                        for (k, f) in tb.fields {
                            if k == "name" || k == "also" {
                                continue;
                            }
                            b.fields.entry(k).or_insert(f);
                        }
                    }
                }
            }
        }
        // keys = FILE : key fields from a secrets file.
        if let Some(kf) = b.fields.remove("keys") {
            self.secrets_file(&ctx0, &kf, &mut b.fields);
        }
        let nerr = self.errors.len();
        let mut p = Parse {
            l: self,
            ctx: ctx0.clone(),
            fields: b.fields,
            file,
            span: span.clone(),
        };
        let name = p.req("name", Self::name_ok);
        let local = p.req("local", values::address);
        let remote = p.req("remote", values::address);
        let mode = p
            .get("mode", |v| match values::string(v)?.as_str() {
                "tunnel" => Ok(Mode::Tunnel),
                "transport" => Ok(Mode::Transport),
                s => Err(format!("\"{s}\": expected tunnel or transport")),
            })
            .unwrap_or(Mode::Tunnel);
        let suite_f = p.fields.get("suite").cloned();
        let suite = p.req("suite", |v| Suite::parse(&values::string(v)?));
        let allow_legacy = p.get("allow_legacy", values::boolean).unwrap_or(false);
        let local_subnets = p.get("local_subnets", values::prefixes);
        let remote_subnets = p.get("remote_subnets", values::prefixes);
        let spi_both = p.get_field("spi", values::spi);
        let spi_in = p.get_field("spi_in", values::spi);
        let spi_out = p.get_field("spi_out", values::spi);
        let replay_window = p
            .get("replay_window", |v| {
                let n = values::integer(v)?;
                if n == 0
                    || (u64::from(MIN_REPLAY_WINDOW)..=u64::from(MAX_REPLAY_WINDOW)).contains(&n)
                {
                    Ok(n as u32)
                } else {
                    Err(format!(
                        "{n}: 0 (off) or {MIN_REPLAY_WINDOW}..={MAX_REPLAY_WINDOW} packets"
                    ))
                }
            })
            .unwrap_or(DEFAULT_REPLAY_WINDOW);
        let esn = p.get("esn", values::boolean).unwrap_or(false);
        let encap = p
            .get("nat_t", |v| match v {
                Value::Boolean(false) => Ok(None),
                Value::Boolean(true) => Ok(Some(UdpEncap {
                    local_port: 4500,
                    remote_port: 4500,
                })),
                Value::Table(t) => {
                    let port = |k: &str| -> Result<u16, String> {
                        match t.get(k) {
                            None => Ok(4500),
                            Some(v) => {
                                let n = values::integer(v).map_err(|e| format!("{k}: {e}"))?;
                                if (1..=65535).contains(&n) {
                                    Ok(n as u16)
                                } else {
                                    Err(format!("{k} = {n}: ports are 1..=65535"))
                                }
                            }
                        }
                    };
                    if let Some(k) = t.keys().find(|k| *k != "local_port" && *k != "remote_port") {
                        return Err(format!("unknown field {k} (local_port, remote_port)"));
                    }
                    Ok(Some(UdpEncap {
                        local_port: port("local_port")?,
                        remote_port: port("remote_port")?,
                    }))
                }
                Value::String(s) if s == "udp" || s == "nat-t" || s == "natt" => {
                    Ok(Some(UdpEncap {
                        local_port: 4500,
                        remote_port: 4500,
                    }))
                }
                Value::String(s) if s == "none" || s == "esp" => Ok(None),
                o => Err(format!(
                    "expected true, false, \"udp\", \"none\" or {{ local_port, remote_port }}, found {}",
                    values::kind(o)
                )),
            })
            .flatten();
        let df = p
            .get("df", |v| match values::string(v)?.as_str() {
                "copy" => Ok(DfMode::Copy),
                "set" => Ok(DfMode::Set),
                "clear" => Ok(DfMode::Clear),
                s => Err(format!("\"{s}\": expected copy, set or clear")),
            })
            .unwrap_or_default();
        let copy_dscp = p.get("copy_dscp", values::boolean).unwrap_or(true);
        let lifetime = p.get("lifetime", lifetimes).unwrap_or_default();
        let start = p.get("start", Self::start_mode).unwrap_or(StartMode::Start);
        let priority = p
            .get("priority", |v| {
                let n = values::integer(v)?;
                u32::try_from(n).map_err(|_| format!("{n} does not fit in 32 bits"))
            })
            .unwrap_or(100);
        let keyf: HashMap<&str, Field> = KEY_FIELDS
            .iter()
            .filter_map(|k| p.fields.remove(*k).map(|f| (*k, f)))
            .collect();
        let fields_left = std::mem::take(&mut p.fields);
        drop(p);
        debug_assert!(fields_left.is_empty(), "every known field is consumed");
        let (Some(name), Some(local), Some(remote), Some(suite)) = (name, local, remote, suite)
        else {
            if self.errors.len() == nerr {
                self.err(file, Some(&span), Some(ctx0), None, "incomplete tunnel");
            }
            return None;
        };
        let ctx = format!("tunnel[{name}]");
        let here = |l: &mut Loader, field: &str, value: Option<String>, msg: String| {
            l.err(
                file,
                Some(&span),
                Some(format!("{ctx}.{field}")),
                value,
                msg,
            )
        };
        if local.is_ipv4() != remote.is_ipv4() {
            here(
                self,
                "remote",
                Some(remote.to_string()),
                format!("local {local} and remote {remote} are of different address families"),
            );
        }
        // SPIs.
        let (spi_in, spi_out) = match (spi_both, spi_in, spi_out) {
            (Some((s, _)), None, None) => (s, s),
            (None, Some((i, _)), Some((o, _))) => (i, o),
            (Some(_), Some((_, f)), _) | (Some(_), _, Some((_, f))) => {
                self.err(
                    f.file,
                    Some(&f.span),
                    Some(format!("{ctx}.{}", f.written)),
                    Some(values::show(&f.value)),
                    "give either spi (one SPI for both directions) or spi_in and spi_out, not both",
                );
                return None;
            }
            (None, Some(_), None) => {
                here(self, "spi_out", None, "missing: spi_in is given, spi_out is not (or give one spi for both directions)".into());
                return None;
            }
            (None, None, Some(_)) => {
                here(self, "spi_in", None, "missing: spi_out is given, spi_in is not (or give one spi for both directions)".into());
                return None;
            }
            (None, None, None) => {
                if self.errors.len() == nerr {
                    here(self, "spi_in", None, "missing: give spi_in and spi_out (the peer's spi_out and spi_in), or one spi for both directions".into());
                }
                return None;
            }
        };
        // Suite and legacy algorithms.
        if let Err(e) = suite.validate(allow_legacy) {
            let (f, sp) = suite_f
                .as_ref()
                .map_or((file, span.clone()), |f| (f.file, f.span.clone()));
            self.err(
                f,
                Some(&sp),
                Some(format!("{ctx}.suite")),
                suite_f.as_ref().map(|f| values::show(&f.value)),
                e.to_string(),
            );
            return None;
        }
        if allow_legacy && (suite.encr.is_legacy() || suite.integ.is_legacy()) {
            self.warnings.push(format!(
                "{}:{}: tunnel {name} uses legacy {} (RFC 8221: 3DES and HMAC-MD5 are deprecated); allowed by allow_legacy",
                self.files[file].path.display(),
                self.files[file].line(span.start),
                suite
            ));
        }
        if replay_window == 0 {
            self.warnings.push(format!(
                "tunnel {name}: replay_window = 0 turns anti-replay protection off"
            ));
        }
        // Keys.
        let keys = self.tunnel_keys(&ctx, file, &span, suite, keyf)?;
        // Subnets.
        let host = |a: IpAddr| IpNet::from(a);
        let (local_subnets, remote_subnets) = match mode {
            Mode::Transport => {
                for (f, v) in [
                    ("local_subnets", &local_subnets),
                    ("remote_subnets", &remote_subnets),
                ] {
                    if let Some(v) = v {
                        let want = if f == "local_subnets" {
                            host(local)
                        } else {
                            host(remote)
                        };
                        if v.len() != 1 || v[0] != want {
                            here(self, f, Some(format!("{v:?}")), format!("transport mode protects the gateways' own traffic only: leave {f} out (or set it to {want})"));
                        }
                    }
                }
                (vec![host(local)], vec![host(remote)])
            }
            Mode::Tunnel => (
                local_subnets.unwrap_or_else(|| vec![host(local)]),
                remote_subnets.unwrap_or_else(|| vec![host(remote)]),
            ),
        };
        for l in &local_subnets {
            if !remote_subnets
                .iter()
                .any(|r| r.addr().is_ipv4() == l.addr().is_ipv4())
            {
                here(
                    self,
                    "local_subnets",
                    Some(l.to_string()),
                    format!("no remote subnet of the same address family for {l}"),
                );
            }
        }
        for r in &remote_subnets {
            if !local_subnets
                .iter()
                .any(|l| r.addr().is_ipv4() == l.addr().is_ipv4())
            {
                here(
                    self,
                    "remote_subnets",
                    Some(r.to_string()),
                    format!("no local subnet of the same address family for {r}"),
                );
            }
        }
        if self.errors.len() != nerr {
            return None;
        }
        Some(Tunnel {
            name,
            file: self.files[file].path.clone(),
            line: self.files[file].line(span.start),
            local,
            remote,
            local_subnets,
            remote_subnets,
            mode,
            suite,
            spi_in,
            spi_out,
            keys,
            replay_window,
            esn,
            encap,
            df,
            copy_dscp,
            lifetime,
            start,
            allow_legacy,
            priority,
        })
    }

    /// Reads a secrets file named by field `kf` (`{ctx}.{label}`), relative
    /// to the file that names it: it must exist, be mode 0600 or stricter
    /// and be TOML; `hint` says what a line should look like. The file's
    /// text is never echoed (it holds keys). `None`: an error was recorded.
    pub(super) fn read_secrets(
        &mut self,
        ctx: &str,
        label: &str,
        kf: &Field,
        hint: &str,
    ) -> Option<(usize, RawMap)> {
        let name = match values::string(&kf.value) {
            Ok(n) => n,
            Err(m) => {
                self.err(
                    kf.file,
                    Some(&kf.span),
                    Some(format!("{ctx}.{label}")),
                    Some(values::show(&kf.value)),
                    m,
                );
                return None;
            }
        };
        let base = self.files[kf.file]
            .path
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let path = if Path::new(&name).is_absolute() {
            PathBuf::from(&name)
        } else {
            base.join(&name)
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                self.err(
                    kf.file,
                    Some(&kf.span),
                    Some(format!("{ctx}.{label}")),
                    Some(format!("{name:?}")),
                    format!("cannot read secrets file {}: {e}", path.display()),
                );
                return None;
            }
        };
        let file = self.add_source(&path, &text);
        if !self.check_secret_perms(file, None, &format!("{ctx}.{label}")) {
            return None;
        }
        match toml::from_str(&text) {
            Ok(r) => Some((file, r)),
            Err(e) => {
                let span = e.span();
                // Never echo the offending text: it may be a key.
                self.err(
                    file,
                    span.as_ref(),
                    None,
                    None,
                    format!("not valid TOML ({hint})"),
                );
                None
            }
        }
    }

    fn secrets_file(&mut self, ctx: &str, kf: &Field, fields: &mut Fields) {
        let Some((file, raw)) =
            self.read_secrets(ctx, "keys", kf, "expected lines like enc_key = \"0x...\"")
        else {
            return;
        };
        let only = format!("a secrets file holds only {}", KEY_FIELDS.join(", "));
        let canon = |k: &str| {
            let c = match k {
                "espenckey" => "enc_key",
                "espauthkey" => "auth_key",
                s => s,
            };
            KEY_FIELDS.iter().copied().find(|f| *f == c)
        };
        self.secret_fields(ctx, file, raw, canon, &only, "give each key once", fields);
    }

    /// Moves the entries of a secrets file into `fields` under their
    /// canonical names (`canon`: `None` refuses the entry with `only`); an
    /// entry given twice (here or in the tunnel) is refused with `once`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn secret_fields(
        &mut self,
        ctx: &str,
        file: usize,
        raw: RawMap,
        canon: impl Fn(&str) -> Option<&'static str>,
        only: &str,
        once: &str,
        fields: &mut Fields,
    ) {
        for (k, v) in raw {
            let span = v.span();
            let Some(canon) = canon(k.as_str()) else {
                self.err(file, Some(&span), Some(k.clone()), None, only);
                continue;
            };
            if let Some(prev) = fields.get(canon) {
                let pf = self.files[prev.file].path.display().to_string();
                let pl = self.files[prev.file].line(prev.span.start);
                self.err(
                    file,
                    Some(&span),
                    Some(format!("{ctx}.{k}")),
                    None,
                    format!("also given at {pf}:{pl}: {once}"),
                );
                continue;
            }
            fields.insert(
                canon.to_string(),
                Field {
                    value: v.into_inner(),
                    file,
                    span,
                    written: k,
                },
            );
        }
    }

    /// Registers a file read for errors (lines) and permission checks.
    fn add_source(&mut self, path: &Path, text: &str) -> usize {
        let md = std::fs::metadata(path).ok();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let file = self.files.len();
        self.files.push(SourceFile {
            path: path.to_path_buf(),
            line_starts,
            mode: md.as_ref().map_or(0, |m| m.mode() & 0o7777),
            uid: md.as_ref().map_or(0, |m| m.uid()),
        });
        file
    }

    /// A file holding keys must be 0600 (or stricter) and ours (or root's).
    fn check_secret_perms(
        &mut self,
        file: usize,
        span: Option<&Range<usize>>,
        field: &str,
    ) -> bool {
        let f = &self.files[file];
        let (mode, uid, path) = (f.mode, f.uid, f.path.display().to_string());
        let euid = effective_uid();
        if mode & 0o077 != 0 {
            self.err(file, span, Some(field.into()), None, format!(
                "{path} holds keys but has mode {mode:04o}, readable or writable by others: run chmod 600 {path} (keys must be rw------- as FreeS/WAN requires)"
            ));
            return false;
        }
        if uid != euid && uid != 0 {
            self.err(file, span, Some(field.into()), None, format!("{path} holds keys but belongs to uid {uid}: it must belong to root or to us (uid {euid})"));
            return false;
        }
        true
    }

    fn tunnel_keys(
        &mut self,
        ctx: &str,
        file: usize,
        span: &Range<usize>,
        suite: Suite,
        mut kf: HashMap<&str, Field>,
    ) -> Option<TunnelKeys> {
        let nerr = self.errors.len();
        // Files holding inline keys must be private too.
        let mut checked = HashSet::new();
        for f in KEY_FIELDS.iter().filter_map(|k| kf.get(k)) {
            if checked.insert(f.file) {
                let fld = format!("{ctx}.{}", f.written);
                let sp = f.span.clone();
                self.check_secret_perms(f.file, Some(&sp), &fld);
            }
        }
        let aead = suite.encr.is_aead();
        let mut parse = |l: &mut Loader, name: &str| -> Option<(Vec<u8>, Field)> {
            let f = kf.remove(name)?;
            match values::key(&f.value) {
                Ok(k) => Some((k, f)),
                Err(m) => {
                    let shown = match &f.value {
                        Value::String(s) => format!("<hidden, {} characters>", s.len()),
                        o => values::kind(o).to_string(),
                    };
                    l.err(
                        f.file,
                        Some(&f.span),
                        Some(format!("{ctx}.{}", f.written)),
                        Some(shown),
                        m,
                    );
                    None
                }
            }
        };
        let enc = parse(self, "enc_key");
        let enc_in = parse(self, "enc_key_in");
        let enc_out = parse(self, "enc_key_out");
        let auth = parse(self, "auth_key");
        let auth_in = parse(self, "auth_key_in");
        let auth_out = parse(self, "auth_key_out");
        if self.errors.len() != nerr {
            return None;
        }
        let here = |l: &mut Loader, field: &str, msg: String| {
            l.err(file, Some(span), Some(format!("{ctx}.{field}")), None, msg)
        };
        let pick = |l: &mut Loader,
                    both: &Option<(Vec<u8>, Field)>,
                    one: &Option<(Vec<u8>, Field)>,
                    base: &str,
                    dir: &str|
         -> Option<(Vec<u8>, Option<Field>)> {
            match (both, one) {
                (Some(_), Some((_, f))) => {
                    l.err(f.file, Some(&f.span), Some(format!("{ctx}.{}", f.written)), None, format!("{base} already gives the key for both directions: use either {base} or {base}_in and {base}_out"));
                    None
                }
                (Some((k, f)), None) => Some((k.clone(), Some(f.clone()))),
                (None, Some((k, f))) => Some((k.clone(), Some(f.clone()))),
                (None, None) => {
                    let _ = dir;
                    Some((Vec::new(), None))
                }
            }
        };
        let ei = pick(self, &enc, &enc_in, "enc_key", "in")?;
        let eo = pick(self, &enc, &enc_out, "enc_key", "out")?;
        let ai = pick(self, &auth, &auth_in, "auth_key", "in")?;
        let ao = pick(self, &auth, &auth_out, "auth_key", "out")?;
        let elen = suite.encr.key_len();
        let alen = suite.integ.key_len();
        let salt_note = if aead {
            format!(" ({}-byte key + 4-byte salt)", elen - 4)
        } else {
            String::new()
        };
        for (k, f, field, want, what) in [
            (&ei.0, &ei.1, "enc_key_in", elen, suite.encr.name()),
            (&eo.0, &eo.1, "enc_key_out", elen, suite.encr.name()),
            (&ai.0, &ai.1, "auth_key_in", alen, suite.integ.name()),
            (&ao.0, &ao.1, "auth_key_out", alen, suite.integ.name()),
        ] {
            let is_enc = field.starts_with("enc");
            match f {
                None if want > 0 => {
                    let base = if is_enc { "enc_key" } else { "auth_key" };
                    here(self, field, format!("missing: {what} needs a {want}-byte key{}; give {base} (both directions) or {base}_in and {base}_out, inline or in a keys file (espresso genkey --bits {} makes one)", if is_enc { salt_note.clone() } else { String::new() }, want * 8));
                }
                Some(f) if want == 0 => {
                    let why = if is_enc {
                        format!("{what} takes no encryption key")
                    } else if aead {
                        format!(
                            "{} is a combined-mode cipher: it takes no auth_key",
                            suite.encr.name()
                        )
                    } else {
                        format!("{what} takes no key")
                    };
                    self.err(
                        f.file,
                        Some(&f.span),
                        Some(format!("{ctx}.{}", f.written)),
                        Some(format!("<{} bytes>", k.len())),
                        why,
                    );
                }
                Some(f) if k.len() != want => {
                    self.err(
                        f.file,
                        Some(&f.span),
                        Some(format!("{ctx}.{}", f.written)),
                        Some(format!("<{} bytes>", k.len())),
                        format!(
                        "{what} needs a {want}-byte key{} ({} hex digits after 0x), got {} bytes",
                        if is_enc { salt_note.clone() } else { String::new() },
                        want * 2,
                        k.len()
                    ),
                    );
                }
                _ => {}
            }
        }
        if self.errors.len() != nerr {
            return None;
        }
        if aead && ei.0 == eo.0 {
            let f = ei.1.as_ref().or(eo.1.as_ref());
            let (ff, sp) = f.map_or((file, span.clone()), |f| (f.file, f.span.clone()));
            self.err(ff, Some(&sp), Some(format!("{ctx}.enc_key")), None, format!(
                "{} uses the sequence number as nonce: with one key for both directions both gateways would send the same nonces under the same key (RFC 4106 §9). Give enc_key_in and enc_key_out with different keys (the peer's enc_key_out is our enc_key_in)",
                suite.encr.name()
            ));
            return None;
        }
        Some(TunnelKeys {
            enc_in: Key::new(ei.0),
            enc_out: Key::new(eo.0),
            auth_in: Key::new(ai.0),
            auth_out: Key::new(ao.0),
        })
    }

    fn policy_rule(&mut self, b: Block) -> Option<PolicyRule> {
        let ctx0 = match b.fields.get("name") {
            Some(f) => match Self::name_ok(&f.value) {
                Ok(n) => format!("policy[{n}]"),
                Err(_) => "policy".into(),
            },
            None => "policy".into(),
        };
        let b = self.canonical(&ctx0, b, POLICY_FIELDS);
        let (file, span) = (b.file, b.span.clone());
        let nerr = self.errors.len();
        let mut p = Parse {
            l: self,
            ctx: ctx0,
            fields: b.fields,
            file,
            span: span.clone(),
        };
        let name = p.req("name", Self::name_ok);
        let local_subnets = p.req("local_subnets", values::prefixes);
        let remote_subnets = p.req("remote_subnets", values::prefixes);
        let action = p.req("action", |v| match values::string(v)?.as_str() {
            "bypass" | "clear" | "pass" => Ok(PolicyAction::Bypass),
            "discard" | "drop" | "block" => Ok(PolicyAction::Discard),
            "protect" => Err("protect rules come from [[tunnel]] definitions".into()),
            s => Err(format!("\"{s}\": expected bypass or discard")),
        });
        let priority = p
            .get("priority", |v| {
                let n = values::integer(v)?;
                u32::try_from(n).map_err(|_| format!("{n} does not fit in 32 bits"))
            })
            .unwrap_or(50);
        let start = p.get("start", Self::start_mode).unwrap_or(StartMode::Start);
        drop(p);
        if self.errors.len() != nerr {
            return None;
        }
        let rule = PolicyRule {
            name: name?,
            file: self.files[file].path.clone(),
            line: self.files[file].line(span.start),
            local_subnets: local_subnets?,
            remote_subnets: remote_subnets?,
            action: action?,
            priority,
            start,
        };
        if rule.to_policies(0).is_empty() {
            self.err(
                file,
                Some(&span),
                Some(format!("policy[{}].remote_subnets", rule.name)),
                None,
                "no local and remote prefixes of the same address family",
            );
            return None;
        }
        Some(rule)
    }

    fn cross_checks(
        &mut self,
        tunnels: &[Tunnel],
        policies: &[PolicyRule],
        conns: &[connection::IkeConn],
    ) {
        let mut names: HashMap<&str, (&Path, usize)> = HashMap::new();
        let mut dup = Vec::new();
        for (n, f, l) in tunnels
            .iter()
            .map(|t| (t.name.as_str(), t.file.as_path(), t.line))
            .chain(
                policies
                    .iter()
                    .map(|p| (p.name.as_str(), p.file.as_path(), p.line)),
            )
            .chain(
                conns
                    .iter()
                    .map(|c| (c.name.as_str(), c.file.as_path(), c.line)),
            )
        {
            if let Some((pf, pl)) = names.get(n) {
                dup.push(ConfigError {
                    file: f.to_path_buf(),
                    line: Some(l),
                    field: Some("name".into()),
                    value: Some(format!("{n:?}")),
                    message: format!("name already used at {}:{pl}", pf.display()),
                });
            } else {
                names.insert(n, (f, l));
            }
        }
        self.errors.extend(dup);
        let active = || tunnels.iter().filter(|t| t.start != StartMode::Ignore);
        for (dir, get) in [
            ("spi_in", (|t: &Tunnel| t.spi_in) as fn(&Tunnel) -> u32),
            ("spi_out", |t: &Tunnel| t.spi_out),
        ] {
            let mut seen: HashMap<u32, &Tunnel> = HashMap::new();
            for t in active() {
                let spi = get(t);
                if let Some(prev) = seen.get(&spi) {
                    self.errors.push(ConfigError {
                        file: t.file.clone(),
                        line: Some(t.line),
                        field: Some(format!("tunnel[{}].{dir}", t.name)),
                        value: Some(format!("{spi:#x}")),
                        message: format!(
                            "{dir} {spi:#x} ({spi}) is already used by tunnel {} ({}:{}): every tunnel needs its own SPIs",
                            prev.name,
                            prev.file.display(),
                            prev.line
                        ),
                    });
                } else {
                    seen.insert(spi, t);
                }
            }
        }
        // The same AEAD key on two outbound SAs repeats nonces.
        let mut keys: HashMap<u64, &Tunnel> = HashMap::new();
        for t in active().filter(|t| t.suite.encr.is_aead()) {
            for d in [Direction::Inbound, Direction::Outbound] {
                let id = t.key_id(d);
                if let Some(prev) = keys.get(&id) {
                    if prev.name != t.name {
                        self.errors.push(ConfigError {
                            file: t.file.clone(),
                            line: Some(t.line),
                            field: Some(format!("tunnel[{}].enc_key", t.name)),
                            value: None,
                            message: format!(
                                "the same {} key is used by tunnel {}: nonces would repeat; give every tunnel its own keys",
                                t.suite.encr.name(),
                                prev.name
                            ),
                        });
                    }
                } else {
                    keys.insert(id, t);
                }
            }
        }
    }
}

fn effective_uid() -> u32 {
    // std has no geteuid; the owner of /proc/self is our effective uid.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

fn lifetimes(v: &Value) -> Result<Lifetimes, String> {
    let Value::Table(t) = v else {
        return Err(format!(
            "expected a table like {{ time = \"8h\", bytes = \"100G\" }}, found {}",
            values::kind(v)
        ));
    };
    let mut l = Lifetimes::default();
    for (k, v) in t {
        let r: Result<(), String> = match k.as_str() {
            "bytes" => values::amount(v).map(|x| l.hard_bytes = x),
            "soft_bytes" => values::amount(v).map(|x| l.soft_bytes = x),
            "packets" => values::amount(v).map(|x| l.hard_packets = x),
            "soft_packets" => values::amount(v).map(|x| l.soft_packets = x),
            "time" => values::duration(v).map(|x| l.hard_time = Some(x)),
            "soft_time" => values::duration(v).map(|x| l.soft_time = Some(x)),
            _ => Err(
                "unknown field (time, bytes, packets, soft_time, soft_bytes, soft_packets)".into(),
            ),
        };
        r.map_err(|e| format!("{k} = {}: {e}", values::show(v)))?;
    }
    let pct = |h: u64| h - h / 10;
    if l.hard_bytes > 0 && l.soft_bytes == 0 {
        l.soft_bytes = pct(l.hard_bytes);
    }
    if l.hard_packets > 0 && l.soft_packets == 0 {
        l.soft_packets = pct(l.hard_packets);
    }
    if let (Some(h), None) = (l.hard_time, l.soft_time) {
        l.soft_time = Some(h - h / 10);
    }
    if l.hard_bytes > 0 && l.soft_bytes >= l.hard_bytes {
        return Err(format!(
            "soft_bytes {} must be below bytes {}",
            l.soft_bytes, l.hard_bytes
        ));
    }
    if l.hard_packets > 0 && l.soft_packets >= l.hard_packets {
        return Err(format!(
            "soft_packets {} must be below packets {}",
            l.soft_packets, l.hard_packets
        ));
    }
    if let (Some(s), Some(h)) = (l.soft_time, l.hard_time) {
        if s >= h {
            return Err(format!(
                "soft_time {}s must be below time {}s",
                s.as_secs(),
                h.as_secs()
            ));
        }
    }
    if l.hard_time == Some(Duration::ZERO) {
        return Err("time = 0: leave it out for no time limit".into());
    }
    Ok(l)
}

/// Field-by-field parsing of one block, reporting errors with their location.
struct Parse<'a> {
    l: &'a mut Loader,
    ctx: String,
    fields: Fields,
    file: usize,
    span: Range<usize>,
}

impl Parse<'_> {
    fn get_field<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<(T, Field)> {
        let fld = self.fields.remove(name)?;
        match f(&fld.value) {
            Ok(v) => Some((v, fld)),
            Err(m) => {
                self.l.err(
                    fld.file,
                    Some(&fld.span),
                    Some(format!("{}.{}", self.ctx, fld.written)),
                    Some(values::show(&fld.value)),
                    m,
                );
                None
            }
        }
    }

    fn get<T>(&mut self, name: &str, f: impl FnOnce(&Value) -> Result<T, String>) -> Option<T> {
        self.get_field(name, f).map(|(v, _)| v)
    }

    fn req<T>(&mut self, name: &str, f: impl FnOnce(&Value) -> Result<T, String>) -> Option<T> {
        if !self.fields.contains_key(name) {
            let (file, span) = (self.file, self.span.clone());
            self.l.err(
                file,
                Some(&span),
                Some(format!("{}.{name}", self.ctx)),
                None,
                "missing (required field)",
            );
            return None;
        }
        self.get(name, f)
    }
}

#[cfg(test)]
mod tests;
