//! `[[connection]]`: IKEv2 connections (pre-shared keys, certificates, raw
//! RSA keys). A block is read in steps: its fields (a secrets file with
//! `secrets =`), their values, the authentication (`auth`), the pre-shared
//! key where a side uses it (checked apart, never shown), the checks across
//! fields, and the engine's [`Connection`].

use std::time::Duration;

use toml::Value;

use super::auth::{auth_file_bytes, AuthFields, AUTH_FIELDS};
use super::{block_ctx, values, At, Block, Field, Loader, Parse};
use crate::alg::proposal::{parse_esp_proposals, parse_ike_proposals, EspProposal, IkeProposal};
use crate::config::connection::IkeConn;
use crate::config::ike::{
    Connection, Dpd, DpdAction, ExchangeMode, Identity, LocalAddr, RemoteAddr, StartAction,
    VersionPolicy, DEFAULT_CHILD_LIFETIME, DEFAULT_IKE_LIFETIME, DEFAULT_MARGIN,
};
use crate::config::model::digest;
use crate::key::Key;
use crate::sa::{Mode, DEFAULT_REPLAY_WINDOW};

const CONNECTION_FIELDS: &[(&str, &[&str])] = &[
    ("name", &["conn"]),
    (
        "local",
        &["left", "local_addr", "local_gateway", "local_addrs"],
    ),
    (
        "remote",
        &[
            "right",
            "remote_addr",
            "remote_gateway",
            "peer",
            "remote_addrs",
        ],
    ),
    ("local_id", &["leftid", "local_identity"]),
    ("remote_id", &["rightid", "remote_identity"]),
    (
        "local_subnets",
        &[
            "leftsubnet",
            "leftsubnets",
            "local_subnet",
            "local_ts",
            "from",
        ],
    ),
    (
        "remote_subnets",
        &[
            "rightsubnet",
            "rightsubnets",
            "remote_subnet",
            "remote_ts",
            "to",
        ],
    ),
    ("psk", &["secret", "pre_shared_key"]),
    ("secrets", &["keys", "psk_file"]),
    ("ike", &["ike_proposals", "proposals", "ike_proposal"]),
    ("esp", &["esp_proposals", "phase2alg", "esp_proposal"]),
    ("ike_lifetime", &["ikelifetime", "ike_rekey_time"]),
    ("lifetime", &["keylife", "salifetime", "child_lifetime"]),
    ("margin", &["rekeymargin", "rekey_margin"]),
    ("fuzz", &["rekeyfuzz", "rekey_fuzz"]),
    ("life_bytes", &["lifebytes"]),
    ("life_packets", &["lifepackets"]),
    ("rekey", &[]),
    ("pfs", &[]),
    ("dpd_delay", &["dpddelay"]),
    ("dpd_timeout", &["dpdtimeout"]),
    ("dpd_action", &["dpdaction"]),
    ("start", &["auto", "start_action"]),
    ("mode", &["type"]),
    ("encap", &["forceencaps", "force_encap"]),
    ("mobike", &[]),
    ("allow_legacy", &[]),
    ("weak_psk", &[]),
    ("replay_window", &[]),
    ("ikev2", &[]),
    ("version", &["ike_version"]),
    ("keyexchange", &[]),
    ("aggressive", &["aggrmode"]),
];

/// Every field of a block: the ones above and the authentication ones.
fn connection_fields() -> Vec<(&'static str, &'static [&'static str])> {
    CONNECTION_FIELDS
        .iter()
        .chain(AUTH_FIELDS)
        .copied()
        .collect()
}

fn local_addr(v: &Value) -> Result<LocalAddr, String> {
    values::string(v)?.parse()
}

fn remote_addr(v: &Value) -> Result<RemoteAddr, String> {
    values::string(v)?.parse()
}

fn identity(v: &Value) -> Result<Option<Identity>, String> {
    let s = values::string(v)?;
    if s == "%any" {
        return Ok(None);
    }
    s.parse::<Identity>()
        .map(Some)
        .map_err(|e| format!("{e}: use an address, @fqdn, user@domain or @#hex (key id)"))
}

fn start_action(v: &Value) -> Result<StartAction, String> {
    values::string(v)?.parse()
}

fn dpd_action(v: &Value) -> Result<DpdAction, String> {
    values::string(v)?.parse()
}

/// Proposal lists: one string (comma-separated) or an array of strings.
fn proposals(v: &Value) -> Result<String, String> {
    Ok(values::strings(v)?.join(","))
}

fn fuzz(v: &Value) -> Result<u32, String> {
    let n = match v {
        Value::String(s) => s
            .trim()
            .trim_end_matches('%')
            .parse::<u64>()
            .map_err(|_| format!("\"{s}\" is not a percentage (e.g. \"100%\")"))?,
        o => values::integer(o)?,
    };
    if n <= 100 {
        Ok(n as u32)
    } else {
        Err(format!("{n}: a percentage of the margin, 0 to 100"))
    }
}

fn ikev2_policy(v: &Value) -> Result<VersionPolicy, String> {
    match v {
        // `ikev2 = no` / `yes` written as TOML booleans
        Value::Boolean(false) => Ok(VersionPolicy::Never),
        Value::Boolean(true) => Ok(VersionPolicy::Propose),
        o => values::string(o)?.parse(),
    }
}

fn version(v: &Value) -> Result<VersionPolicy, String> {
    match v {
        Value::String(s) => match s.trim().to_ascii_lowercase().trim_start_matches("ikev") {
            "1" => Ok(VersionPolicy::Never),
            "2" => Ok(VersionPolicy::Insist),
            o => Err(format!("\"{o}\": expected 1 or 2")),
        },
        o => u8::try_from(values::integer(o)?)
            .map_err(|_| "expected 1 or 2".to_string())
            .and_then(VersionPolicy::from_version),
    }
}

fn keyexchange(v: &Value) -> Result<VersionPolicy, String> {
    VersionPolicy::from_keyexchange(&values::string(v)?)
}

fn mode(v: &Value) -> Result<Mode, String> {
    match values::string(v)?.as_str() {
        "tunnel" => Ok(Mode::Tunnel),
        "transport" => Ok(Mode::Transport),
        s => Err(format!("\"{s}\": expected tunnel or transport")),
    }
}

/// The values of a connection block, each checked on its own.
struct ConnFields {
    name: String,
    local: LocalAddr,
    remote: RemoteAddr,
    local_id: Option<Identity>,
    /// `remote_id` was written (`%any` included).
    remote_id_given: bool,
    remote_id: Option<Identity>,
    local_subnets: Vec<ipnet::IpNet>,
    remote_subnets: Vec<ipnet::IpNet>,
    ike: Option<(Vec<IkeProposal>, Field)>,
    esp: Option<(Vec<EspProposal>, Field)>,
    version: VersionPolicy,
    exchange: ExchangeMode,
    /// `ike` and `esp` as written (IKEv1 connections).
    v1_proposals: (Option<String>, Option<String>),
    ike_lifetime: Duration,
    lifetime: Duration,
    margin_given: bool,
    margin: Option<Duration>,
    fuzz: u32,
    life_bytes: u64,
    life_packets: u64,
    rekey: bool,
    pfs: bool,
    dpd: Dpd,
    start: StartAction,
    mode: Mode,
    encap: bool,
    mobike: bool,
    allow_legacy: bool,
    /// Accept a pre-shared key shorter than [`STRONG_PSK`] characters.
    weak_psk: bool,
    replay_window: u32,
    auth: AuthFields,
}

/// Characters a pre-shared key needs unless `weak_psk = true`: an IKEv2 PSK
/// exchange can be attacked offline with a dictionary by anyone who sees it
/// (and, as responder, by anyone who starts one).
pub const STRONG_PSK: usize = 20;

impl Loader {
    /// Reads the `psk` of a secrets file (`secrets = "FILE"`).
    fn psk_file(&mut self, ctx: &str, kf: &Field, fields: &mut super::Fields) {
        let Some((file, raw)) =
            self.read_secrets(ctx, "secrets", kf, "expected a line like psk = \"...\"")
        else {
            return;
        };
        let canon = |k: &str| matches!(k, "psk" | "secret" | "pre_shared_key").then_some("psk");
        self.secret_fields(
            ctx,
            file,
            raw,
            canon,
            "a connection's secrets file holds only psk",
            "give the key once",
            fields,
        );
    }

    pub(super) fn connection(&mut self, b: Block) -> Option<IkeConn> {
        let ctx0 = block_ctx("connection", &b);
        let mut b = self.canonical(&ctx0, b, &connection_fields());
        let (file, span) = (b.file, b.span.clone());
        if let Some(kf) = b.fields.remove("secrets") {
            self.psk_file(&ctx0, &kf, &mut b.fields);
        }
        let nerr = self.errors.len();
        // The key: checked apart so that its value is never shown.
        let psk_f = b.fields.remove("psk");
        let mut f = self.connection_fields(&ctx0, b)?;
        let at = At {
            ctx: format!("connection[{}]", f.name),
            file,
            span,
        };
        let auth_f = std::mem::replace(&mut f.auth, AuthFields::none());
        let auth = self.connection_auth(&at, auth_f);
        let psk = match (&auth, psk_f) {
            // no side uses a pre-shared key: none needed
            (Some(a), None) if !a.uses_psk() => Some(Key::from_slice(&[])),
            (_, psk_f) => self.connection_psk(&at, psk_f, f.weak_psk, &f.name),
        };
        let margin = f
            .margin
            .unwrap_or_else(|| DEFAULT_MARGIN.min(f.lifetime.min(f.ike_lifetime) / 10));
        self.connection_checks(&at, &f, margin);
        if self.errors.len() != nerr {
            return None;
        }
        let psk = psk?;
        let (version, exchange, v1_proposals) = (f.version, f.exchange, f.v1_proposals.clone());
        let mut c = Self::build_connection(f, psk, margin);
        c.auth = auth?;
        if let Err(e) = c.validate() {
            at.err(self, "name", Some(format!("{:?}", c.name)), e.to_string());
            return None;
        }
        let text = format!("{c:?} {version:?} {exchange:?} {v1_proposals:?}");
        let files = auth_file_bytes(&c.auth);
        let hash = digest(
            "espresso connection",
            &[text.as_bytes(), c.psk.bytes(), &files],
        );
        Some(IkeConn {
            name: c.name.clone(),
            file: self.files[at.file].path.clone(),
            line: self.files[at.file].line(at.span.start),
            conn: c,
            hash,
            version,
            exchange,
            v1_proposals,
        })
    }

    /// Every field's value (the key apart); `None` without a name or remote.
    fn connection_fields(&mut self, ctx0: &str, b: Block) -> Option<ConnFields> {
        let mut p = Parse {
            l: self,
            ctx: ctx0.to_string(),
            fields: b.fields,
            file: b.file,
            span: b.span,
        };
        let name = p.req("name", Loader::name_ok);
        let local = p
            .get("local", local_addr)
            .unwrap_or(LocalAddr::DefaultRoute);
        let remote = p.req("remote", remote_addr);
        let local_id = p.get("local_id", identity).flatten();
        let remote_id_given = p.fields.contains_key("remote_id");
        let remote_id = p.get("remote_id", identity).flatten();
        let local_subnets = p.get("local_subnets", values::prefixes).unwrap_or_default();
        let remote_subnets = p
            .get("remote_subnets", values::prefixes)
            .unwrap_or_default();
        let version = Self::version_policy(&mut p);
        let exchange = match p.get("aggressive", values::boolean) {
            Some(true) => ExchangeMode::Aggressive,
            _ => ExchangeMode::Main,
        };
        // IKEv1 proposals are the IKEv1 engine's (control) to parse: they are
        // kept as written; the IKEv2 parser reads them only where IKEv2 is spoken.
        let raw = |p: &Parse, name: &str| p.fields.get(name).and_then(|f| proposals(&f.value).ok());
        let v1_proposals = if version.accepts(1) {
            (raw(&p, "ike"), raw(&p, "esp"))
        } else {
            (None, None)
        };
        let (ike, esp) = if version.accepts(2) {
            let hint = |e: String| {
                if version.accepts(1) {
                    format!("{e} (with ikev2 = {version} the proposals must suit IKEv2 as well; use ikev2 = never for an IKEv1-only connection)")
                } else {
                    e
                }
            };
            (
                p.get_field("ike", |v| {
                    parse_ike_proposals(&proposals(v)?).map_err(|e| hint(e.to_string()))
                }),
                p.get_field("esp", |v| {
                    parse_esp_proposals(&proposals(v)?).map_err(|e| hint(e.to_string()))
                }),
            )
        } else {
            p.get("ike", proposals);
            p.get("esp", proposals);
            (None, None)
        };
        let ike_lifetime = p
            .get("ike_lifetime", values::duration)
            .unwrap_or(DEFAULT_IKE_LIFETIME);
        let lifetime = p
            .get("lifetime", values::duration)
            .unwrap_or(DEFAULT_CHILD_LIFETIME);
        let margin_given = p.fields.contains_key("margin");
        let margin = p.get("margin", values::duration);
        let fuzz = p.get("fuzz", fuzz).unwrap_or(100);
        let life_bytes = p.get("life_bytes", values::amount).unwrap_or(0);
        let life_packets = p.get("life_packets", values::amount).unwrap_or(0);
        let rekey = p.get("rekey", values::boolean).unwrap_or(true);
        let pfs = p.get("pfs", values::boolean).unwrap_or(true);
        let dpd = Dpd {
            delay: p
                .get("dpd_delay", values::duration)
                .unwrap_or(Duration::ZERO),
            timeout: p
                .get("dpd_timeout", values::duration)
                .unwrap_or(Dpd::default().timeout),
            action: p.get("dpd_action", dpd_action).unwrap_or_default(),
        };
        let start = p.get("start", start_action).unwrap_or(StartAction::Add);
        let mode = p.get("mode", mode).unwrap_or(Mode::Tunnel);
        let encap = p.get("encap", values::boolean).unwrap_or(false);
        let mobike = p.get("mobike", values::boolean).unwrap_or(true);
        let allow_legacy = p.get("allow_legacy", values::boolean).unwrap_or(false);
        let weak_psk = p.get("weak_psk", values::boolean).unwrap_or(false);
        let replay_window = p
            .get("replay_window", values::replay_window)
            .unwrap_or(DEFAULT_REPLAY_WINDOW);
        let auth = p.auth_fields();
        let left = std::mem::take(&mut p.fields);
        debug_assert!(left.is_empty(), "every known field is consumed");
        Some(ConnFields {
            name: name?,
            local,
            remote: remote?,
            local_id,
            remote_id_given,
            remote_id,
            local_subnets,
            remote_subnets,
            ike,
            esp,
            version,
            exchange,
            v1_proposals,
            ike_lifetime,
            lifetime,
            margin_given,
            margin,
            fuzz,
            life_bytes,
            life_packets,
            rekey,
            pfs,
            dpd,
            start,
            mode,
            encap,
            mobike,
            allow_legacy,
            weak_psk,
            replay_window,
            auth,
        })
    }

    /// `ikev2`, `version` and `keyexchange`: each written one must say the same.
    fn version_policy(p: &mut Parse) -> VersionPolicy {
        let mut found: Option<(VersionPolicy, String)> = None;
        for (name, f) in [
            (
                "ikev2",
                ikev2_policy as fn(&Value) -> Result<VersionPolicy, String>,
            ),
            ("version", version),
            ("keyexchange", keyexchange),
        ] {
            let Some((v, fld)) = p.get_field(name, f) else {
                continue;
            };
            match &found {
                Some((w, first)) if *w != v => {
                    p.l.err(
                        fld.file,
                        Some(&fld.span),
                        Some(format!("{}.{}", p.ctx, fld.written)),
                        Some(values::show(&fld.value)),
                        format!(
                            "means ikev2 = {v}, but {first} means ikev2 = {w}: write one of them"
                        ),
                    );
                }
                Some(_) => {}
                None => found = Some((v, fld.written.clone())),
            }
        }
        found.map(|(v, _)| v).unwrap_or_default()
    }

    /// The pre-shared key: present, in a private file, [`STRONG_PSK`]
    /// characters or more (8 or more with `weak_psk = true`, and a warning).
    fn connection_psk(
        &mut self,
        at: &At,
        psk_f: Option<Field>,
        weak_ok: bool,
        name: &str,
    ) -> Option<Key> {
        let Some(f) = psk_f else {
            at.err(
                self,
                "psk",
                None,
                "missing: give secrets = \"FILE\" (a mode 0600 file with psk = \"...\") or psk inline in a 0600 file",
            );
            return None;
        };
        let fld = format!("{}.{}", at.ctx, f.written);
        let ok = self.check_secret_perms(f.file, Some(&f.span), &fld);
        match &f.value {
            Value::String(s) if ok && s.len() >= STRONG_PSK => Some(Key::from_slice(s.as_bytes())),
            Value::String(s) if ok && s.len() >= 8 && weak_ok => {
                self.warnings.push(format!(
                    "{}:{}: connection {name} uses a pre-shared key of {} characters (weak_psk = true): it can be guessed offline from one captured exchange; use {STRONG_PSK} or more random characters",
                    self.files[at.file].path.display(),
                    self.files[at.file].line(at.span.start),
                    s.len()
                ));
                Some(Key::from_slice(s.as_bytes()))
            }
            Value::String(s) if ok && s.len() >= 8 => {
                self.err(
                    f.file,
                    Some(&f.span),
                    Some(fld),
                    Some(format!("<hidden, {} characters>", s.len())),
                    format!("a pre-shared key shorter than {STRONG_PSK} characters can be guessed offline from one captured IKE exchange: use {STRONG_PSK} or more random characters, or set weak_psk = true on the connection to accept it"),
                );
                None
            }
            Value::String(s) if ok => {
                self.err(
                    f.file,
                    Some(&f.span),
                    Some(fld),
                    Some(format!("<hidden, {} characters>", s.len())),
                    "a pre-shared key needs at least 8 characters (use 20 or more random ones)",
                );
                None
            }
            Value::String(_) => None,
            o => {
                let k = values::kind(o);
                self.err(
                    f.file,
                    Some(&f.span),
                    Some(fld),
                    Some(k.to_string()),
                    "expected a string",
                );
                None
            }
        }
    }

    /// Checks across fields: lifetimes and margin, `%any` only responds,
    /// subnet families, DPD, legacy ESP algorithms.
    fn connection_checks(&mut self, at: &At, f: &ConnFields, margin: Duration) {
        let (lifetime, ike_lifetime) = (f.lifetime, f.ike_lifetime);
        if margin >= lifetime || margin >= ike_lifetime {
            at.err(
                self,
                if f.margin_given { "margin" } else { "lifetime" },
                Some(format!("{}s", lifetime.min(ike_lifetime).as_secs())),
                format!(
                    "the rekey margin ({}s) must be shorter than the lifetimes (ike_lifetime {}s, lifetime {}s)",
                    margin.as_secs(),
                    ike_lifetime.as_secs(),
                    lifetime.as_secs()
                ),
            );
        }
        if f.exchange == ExchangeMode::Aggressive && !f.version.accepts(1) {
            at.err(
                self,
                "aggressive",
                Some("true".into()),
                "aggressive mode is IKEv1's: this connection speaks only IKEv2 (set ikev2 = \"never\" or version = 1)",
            );
        }
        if lifetime.is_zero() || ike_lifetime.is_zero() {
            at.err(self, "lifetime", None, "lifetimes must be above zero");
        }
        if f.remote == RemoteAddr::Any && matches!(f.start, StartAction::Start | StartAction::Trap)
        {
            at.err(
                self,
                "start",
                Some(format!("{:?}", f.start).to_lowercase()),
                "remote = \"%any\" can only respond: use start = \"add\" (listen) or \"none\"",
            );
        }
        if let (Some(l), Some(r)) = (f.local_subnets.first(), f.remote_subnets.first()) {
            if l.addr().is_ipv4() != r.addr().is_ipv4() {
                at.err(
                    self,
                    "remote_subnets",
                    Some(r.to_string()),
                    format!(
                        "local subnet {l} and remote subnet {r} are of different address families"
                    ),
                );
            }
        }
        if f.dpd.delay > Duration::ZERO && f.dpd.timeout.is_zero() {
            at.err(
                self,
                "dpd_timeout",
                Some("0".into()),
                "with dpd_delay set, dpd_timeout must be above zero",
            );
        }
        if let Some((ps, fld)) = &f.esp {
            for pr in ps {
                let legacy =
                    pr.encr.iter().any(|a| a.is_legacy()) || pr.integ.iter().any(|a| a.is_legacy());
                if legacy && !f.allow_legacy {
                    self.err(
                        fld.file,
                        Some(&fld.span),
                        Some(format!("{}.esp", at.ctx)),
                        Some(values::show(&fld.value)),
                        format!("proposal {pr} uses a legacy algorithm (3DES or HMAC-MD5, RFC 8221): set allow_legacy = true to accept it"),
                    );
                } else if legacy {
                    self.warnings.push(format!(
                        "{}:{}: connection {} allows legacy ESP proposal {pr} (allow_legacy)",
                        self.files[at.file].path.display(),
                        self.files[at.file].line(at.span.start),
                        f.name
                    ));
                }
            }
        }
    }

    /// The engine's form of a checked connection.
    fn build_connection(f: ConnFields, psk: Key, margin: Duration) -> Connection {
        let mut c = Connection::new(&f.name, f.local, f.remote, psk.bytes());
        drop(psk);
        c.local_id = f.local_id;
        c.remote_id = match (f.remote_id, f.remote_id_given, f.remote) {
            (Some(id), _, _) => Some(id),
            // no remote_id written: the peer's address (as strongSwan does)
            (None, false, RemoteAddr::Addr(a)) => Some(Identity::from_ip(a)),
            (None, _, _) => None,
        };
        if let Some((ps, _)) = f.ike {
            c.ike_proposals = ps;
        }
        if let Some((ps, _)) = f.esp {
            c.esp_proposals = ps;
        }
        c.start_action = f.start;
        c.dpd = f.dpd;
        c.rekey = f.rekey;
        c.pfs = f.pfs;
        c.ike_lifetime = f.ike_lifetime;
        c.child_lifetime = f.lifetime;
        c.margin = margin;
        c.fuzz_percent = f.fuzz;
        c.life_bytes = f.life_bytes;
        c.life_packets = f.life_packets;
        c.local_ts = f.local_subnets;
        c.remote_ts = f.remote_subnets;
        c.mode = f.mode;
        c.force_encap = f.encap;
        c.mobike = f.mobike;
        c.allow_legacy = f.allow_legacy;
        c.replay_window = f.replay_window;
        c
    }
}
