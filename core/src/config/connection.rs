//! `[[connection]]`: IKEv2 connections (automatic keying with a pre-shared
//! key), in the operators' vocabulary (FreeS/WAN `left`/`right`, seed 000's
//! start modes, strongSwan and seeds' proposal strings). Each block becomes a
//! checked [`super::ike::Connection`]; errors name file:line field = value
//! like the rest of the configuration, and the pre-shared key is never shown.

use std::path::PathBuf;
use std::time::Duration;

use toml::Value;

use super::ike::{
    Connection, Dpd, DpdAction, Identity, LocalAddr, RemoteAddr, StartAction,
    DEFAULT_CHILD_LIFETIME, DEFAULT_IKE_LIFETIME, DEFAULT_MARGIN,
};
use super::{values, Block, Field, Loader, Parse};
use crate::alg::proposal::{parse_esp_proposals, parse_ike_proposals};
use crate::key::Key;
use crate::sa::{Mode, MAX_REPLAY_WINDOW, MIN_REPLAY_WINDOW};

/// A checked IKE connection from the configuration.
#[derive(Clone, Debug)]
pub struct IkeConn {
    /// Name.
    pub name: String,
    /// File it was defined in.
    pub file: PathBuf,
    /// Line of its `[[connection]]` table.
    pub line: usize,
    /// The engine's form (tunnel id 0: the daemon assigns one).
    pub conn: Connection,
    /// Digest of the whole definition, key included (reload compares it).
    pub hash: u64,
}

pub(super) const CONNECTION_FIELDS: &[(&str, &[&str])] = &[
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
    ("allow_legacy", &[]),
    ("replay_window", &[]),
];

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
        let ctx0 = match b.fields.get("name") {
            Some(f) => match Self::name_ok(&f.value) {
                Ok(n) => format!("connection[{n}]"),
                Err(_) => "connection".into(),
            },
            None => "connection".into(),
        };
        let mut b = self.canonical(&ctx0, b, CONNECTION_FIELDS);
        let (file, span) = (b.file, b.span.clone());
        if let Some(kf) = b.fields.remove("secrets") {
            self.psk_file(&ctx0, &kf, &mut b.fields);
        }
        let nerr = self.errors.len();
        // The key: checked apart so that its value is never shown.
        let psk_f = b.fields.remove("psk");
        let mut p = Parse {
            l: self,
            ctx: ctx0.clone(),
            fields: b.fields,
            file,
            span: span.clone(),
        };
        let name = p.req("name", Self::name_ok);
        let local = p
            .get("local", local_addr)
            .unwrap_or(LocalAddr::DefaultRoute);
        let remote = p.req("remote", remote_addr);
        let local_id = p.get("local_id", identity).flatten();
        let remote_id_f = p.fields.contains_key("remote_id");
        let remote_id = p.get("remote_id", identity).flatten();
        let local_subnets = p.get("local_subnets", values::prefixes).unwrap_or_default();
        let remote_subnets = p
            .get("remote_subnets", values::prefixes)
            .unwrap_or_default();
        let ike = p.get_field("ike", |v| {
            let s = proposals(v)?;
            parse_ike_proposals(&s).map_err(|e| e.to_string())
        });
        let esp = p.get_field("esp", |v| {
            let s = proposals(v)?;
            parse_esp_proposals(&s).map_err(|e| e.to_string())
        });
        let ike_lifetime = p
            .get("ike_lifetime", values::duration)
            .unwrap_or(DEFAULT_IKE_LIFETIME);
        let lifetime = p
            .get("lifetime", values::duration)
            .unwrap_or(DEFAULT_CHILD_LIFETIME);
        let margin_given = p.fields.contains_key("margin");
        let margin = p.get("margin", values::duration);
        let fuzz = p
            .get("fuzz", |v| {
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
            })
            .unwrap_or(100);
        let life_bytes = p.get("life_bytes", values::amount).unwrap_or(0);
        let life_packets = p.get("life_packets", values::amount).unwrap_or(0);
        let rekey = p.get("rekey", values::boolean).unwrap_or(true);
        let pfs = p.get("pfs", values::boolean).unwrap_or(true);
        let dpd_delay = p
            .get("dpd_delay", values::duration)
            .unwrap_or(Duration::ZERO);
        let dpd_timeout = p
            .get("dpd_timeout", values::duration)
            .unwrap_or(Dpd::default().timeout);
        let dpd_action = p.get("dpd_action", dpd_action).unwrap_or_default();
        let start = p.get("start", start_action).unwrap_or(StartAction::Add);
        let mode = p
            .get("mode", |v| match values::string(v)?.as_str() {
                "tunnel" => Ok(Mode::Tunnel),
                "transport" => Ok(Mode::Transport),
                s => Err(format!("\"{s}\": expected tunnel or transport")),
            })
            .unwrap_or(Mode::Tunnel);
        let encap = p.get("encap", values::boolean).unwrap_or(false);
        let allow_legacy = p.get("allow_legacy", values::boolean).unwrap_or(false);
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
            .unwrap_or(crate::sa::DEFAULT_REPLAY_WINDOW);
        let left = std::mem::take(&mut p.fields);
        drop(p);
        debug_assert!(left.is_empty(), "every known field is consumed");
        let (Some(name), Some(remote)) = (name, remote) else {
            return None;
        };
        let ctx = format!("connection[{name}]");
        let here = |l: &mut Loader, field: &str, value: Option<String>, msg: String| {
            l.err(
                file,
                Some(&span),
                Some(format!("{ctx}.{field}")),
                value,
                msg,
            )
        };
        // The pre-shared key.
        let psk = match psk_f {
            None => {
                here(
                    self,
                    "psk",
                    None,
                    "missing: give secrets = \"FILE\" (a mode 0600 file with psk = \"...\") or psk inline in a 0600 file".into(),
                );
                None
            }
            Some(f) => {
                let fld = format!("{ctx}.{}", f.written);
                let ok = self.check_secret_perms(f.file, Some(&f.span), &fld);
                match &f.value {
                    Value::String(s) if ok && s.len() >= 8 => Some(Key::from_slice(s.as_bytes())),
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
        };
        let margin = match margin {
            Some(m) => m,
            None => DEFAULT_MARGIN.min(lifetime.min(ike_lifetime) / 10),
        };
        if margin >= lifetime || margin >= ike_lifetime {
            here(
                self,
                if margin_given { "margin" } else { "lifetime" },
                Some(format!("{}s", lifetime.min(ike_lifetime).as_secs())),
                format!(
                    "the rekey margin ({}s) must be shorter than the lifetimes (ike_lifetime {}s, lifetime {}s)",
                    margin.as_secs(),
                    ike_lifetime.as_secs(),
                    lifetime.as_secs()
                ),
            );
        }
        if lifetime.is_zero() || ike_lifetime.is_zero() {
            here(
                self,
                "lifetime",
                None,
                "lifetimes must be above zero".into(),
            );
        }
        if remote == RemoteAddr::Any && matches!(start, StartAction::Start | StartAction::Trap) {
            here(
                self,
                "start",
                Some(format!("{start:?}").to_lowercase()),
                "remote = \"%any\" can only respond: use start = \"add\" (listen) or \"none\""
                    .into(),
            );
        }
        if let (Some(l), Some(r)) = (local_subnets.first(), remote_subnets.first()) {
            if l.addr().is_ipv4() != r.addr().is_ipv4() {
                here(
                    self,
                    "remote_subnets",
                    Some(r.to_string()),
                    format!(
                        "local subnet {l} and remote subnet {r} are of different address families"
                    ),
                );
            }
        }
        if dpd_delay > Duration::ZERO && dpd_timeout.is_zero() {
            here(
                self,
                "dpd_timeout",
                Some("0".into()),
                "with dpd_delay set, dpd_timeout must be above zero".into(),
            );
        }
        if let Some((ps, f)) = &esp {
            for pr in ps {
                let legacy =
                    pr.encr.iter().any(|a| a.is_legacy()) || pr.integ.iter().any(|a| a.is_legacy());
                if legacy && !allow_legacy {
                    self.err(
                        f.file,
                        Some(&f.span),
                        Some(format!("{ctx}.esp")),
                        Some(values::show(&f.value)),
                        format!("proposal {pr} uses a legacy algorithm (3DES or HMAC-MD5, RFC 8221): set allow_legacy = true to accept it"),
                    );
                } else if legacy {
                    self.warnings.push(format!(
                        "{}:{}: connection {name} allows legacy ESP proposal {pr} (allow_legacy)",
                        self.files[file].path.display(),
                        self.files[file].line(span.start)
                    ));
                }
            }
        }
        if self.errors.len() != nerr {
            return None;
        }
        let psk = psk?;
        let mut c = Connection::new(&name, local, remote, psk.bytes());
        drop(psk);
        c.local_id = local_id;
        c.remote_id = match (remote_id, remote_id_f, remote) {
            (Some(id), _, _) => Some(id),
            // no remote_id written: the peer's address (as strongSwan does)
            (None, false, RemoteAddr::Addr(a)) => Some(Identity::from_ip(a)),
            (None, _, _) => None,
        };
        if let Some((ps, _)) = ike {
            c.ike_proposals = ps;
        }
        if let Some((ps, _)) = esp {
            c.esp_proposals = ps;
        }
        c.start_action = start;
        c.dpd = Dpd {
            delay: dpd_delay,
            timeout: dpd_timeout,
            action: dpd_action,
        };
        c.rekey = rekey;
        c.pfs = pfs;
        c.ike_lifetime = ike_lifetime;
        c.child_lifetime = lifetime;
        c.margin = margin;
        c.fuzz_percent = fuzz;
        c.life_bytes = life_bytes;
        c.life_packets = life_packets;
        c.local_ts = local_subnets;
        c.remote_ts = remote_subnets;
        c.mode = mode;
        c.force_encap = encap;
        c.allow_legacy = allow_legacy;
        c.replay_window = replay_window;
        if let Err(e) = c.validate() {
            here(self, "name", Some(format!("{name:?}")), e.to_string());
            return None;
        }
        let text = format!("{c:?}");
        let hash = super::digest("espresso connection", &[text.as_bytes(), c.psk.bytes()]);
        Some(IkeConn {
            name,
            file: self.files[file].path.clone(),
            line: self.files[file].line(span.start),
            conn: c,
            hash,
        })
    }
}
