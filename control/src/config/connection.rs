//! `[[connection]]`: IKEv2 connections (automatic keying with a pre-shared
//! key), in the operators' vocabulary (FreeS/WAN `left`/`right`, seed 000's
//! start modes, strongSwan and seeds' proposal strings). Each block becomes a
//! checked [`crate::ike::Connection`]; errors name file:line field = value
//! like the rest of the configuration, and the pre-shared key is never shown.

use std::path::PathBuf;
use std::time::Duration;

use dataplane::crypto::Key;
use dataplane::sa::{Mode, MAX_REPLAY_WINDOW, MIN_REPLAY_WINDOW};
use toml::Value;

use super::{values, Block, Field, Loader, Parse};
use crate::ike::config::{
    Dpd, DpdAction, Identity, LocalAddr, RemoteAddr, StartAction, DEFAULT_CHILD_LIFETIME,
    DEFAULT_IKE_LIFETIME, DEFAULT_MARGIN,
};
use crate::ike::proposal::{parse_esp_proposals, parse_ike_proposals};
use crate::ike::{Connection, LocalAuth, RemoteAuth};
use crate::pki::{Certificate, PrivateKey, TrustStore};

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
    // authentication (issue 13): strongSwan's and FreeS/WAN's names as aliases
    ("auth", &["authby"]),
    ("local_auth", &["leftauth"]),
    ("remote_auth", &["rightauth"]),
    ("local_cert", &["leftcert", "cert", "certificate"]),
    ("local_key", &["leftkey", "private_key", "key_file"]),
    ("cacerts", &["cacert", "ca_certs", "cacertdir", "trust"]),
    ("crls", &["crl", "crlfile", "crl_files"]),
    ("remote_ca", &["rightca", "ca"]),
    ("local_rsasigkey", &["leftrsasigkey", "leftsigkey"]),
    ("remote_rsasigkey", &["rightrsasigkey", "rightsigkey"]),
    ("rsa_pss", &["rsapss"]),
];

/// What a side authenticates with, as written (`auth`, `local_auth`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AuthWord {
    Psk,
    /// pubkey, rsasig, ecdsasig, rsa, cert: a signature (certificate or raw key).
    Sig,
}

fn auth_word(v: &Value) -> Result<AuthWord, String> {
    let s = values::string(v)?;
    match s.to_ascii_lowercase().as_str() {
        "psk" | "secret" | "pre-shared-key" | "pre_shared_key" => Ok(AuthWord::Psk),
        "pubkey" | "rsasig" | "rsa-sig" | "rsa" | "ecdsasig" | "ecdsa" | "cert" | "certificate" | "rsa-sig-cert" => {
            Ok(AuthWord::Sig)
        }
        _ => Err(format!(
            "\"{s}\": expected psk (secret), pubkey (certificates) or rsasig (RSA keys: certificates, or raw keys with leftrsasigkey/rightrsasigkey)"
        )),
    }
}

/// The authentication fields of one `[[connection]]`, as read.
struct AuthFields {
    auth: Option<(AuthWord, Field)>,
    local_auth: Option<(AuthWord, Field)>,
    remote_auth: Option<(AuthWord, Field)>,
    local_cert: Option<(String, Field)>,
    local_key: Option<(String, Field)>,
    cacerts: Option<(Vec<String>, Field)>,
    crls: Option<(Vec<String>, Field)>,
    remote_ca: Option<(Vec<u8>, Field)>,
    local_rsasigkey: Option<(crate::pki::PublicKey, Field)>,
    remote_rsasigkey: Option<(crate::pki::PublicKey, Field)>,
    rsa_pss: bool,
}

fn rsasigkey(v: &Value) -> Result<crate::pki::PublicKey, String> {
    let s = values::string(v)?;
    crate::pki::rsakey::parse_public(&s).map_err(|e| e.to_string())
}

fn dn(v: &Value) -> Result<Vec<u8>, String> {
    let s = values::string(v)?;
    crate::pki::dn::parse(&s).map_err(|e| {
        format!("{e}: write the CA's subject like \"C=CH, O=Example, CN=Example Root CA\"")
    })
}

fn local_addr(v: &Value) -> Result<LocalAddr, String> {
    let s = values::string(v)?;
    match s.as_str() {
        "%defaultroute" => Ok(LocalAddr::DefaultRoute),
        "%any" => Ok(LocalAddr::Any),
        a => a
            .parse()
            .map(LocalAddr::Addr)
            .map_err(|_| format!("\"{a}\" is not an address, \"%defaultroute\" or \"%any\"")),
    }
}

fn remote_addr(v: &Value) -> Result<RemoteAddr, String> {
    let s = values::string(v)?;
    match s.as_str() {
        "%any" => Ok(RemoteAddr::Any),
        a => a
            .parse()
            .map(RemoteAddr::Addr)
            .map_err(|_| format!("\"{a}\" is not an address or \"%any\" (responder only)")),
    }
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
    let s = values::string(v)?;
    match s.to_ascii_lowercase().as_str() {
        "start" | "up" | "automatic" | "auto" => Ok(StartAction::Start),
        "trap" | "route" | "on-demand" | "ondemand" => Ok(StartAction::Trap),
        "add" | "listen" | "respond" => Ok(StartAction::Add),
        "none" | "manual" | "manual-start" | "ignore" => Ok(StartAction::None),
        _ => Err(format!(
            "\"{s}\": expected start (automatic), trap (on-demand), add (listen) or none (manual start)"
        )),
    }
}

fn dpd_action(v: &Value) -> Result<DpdAction, String> {
    let s = values::string(v)?;
    match s.to_ascii_lowercase().as_str() {
        "clear" | "none" => Ok(DpdAction::Clear),
        "hold" | "trap" => Ok(DpdAction::Hold),
        "restart" | "start" => Ok(DpdAction::Restart),
        _ => Err(format!("\"{s}\": expected clear, hold or restart")),
    }
}

/// Proposal lists: one string (comma-separated) or an array of strings.
fn proposals(v: &Value) -> Result<String, String> {
    Ok(values::strings(v)?.join(","))
}

impl Loader {
    fn rel_path(&self, f: &Field, name: &str) -> PathBuf {
        let p = std::path::Path::new(name);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.files[f.file]
                .path
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join(p)
        }
    }

    fn field_err(&mut self, ctx: &str, f: &Field, value: String, msg: String) {
        self.err(
            f.file,
            Some(&f.span),
            Some(format!("{ctx}.{}", f.written)),
            Some(value),
            msg,
        );
    }

    /// Resolves how each side authenticates and loads the files that needs
    /// (certificate, private key, CA certificates, CRLs). None after an error.
    fn connection_auth(
        &mut self,
        ctx: &str,
        file: usize,
        span: &std::ops::Range<usize>,
        a: AuthFields,
    ) -> Option<(LocalAuth, RemoteAuth)> {
        let nerr = self.errors.len();
        let both = a.auth.as_ref().map(|(w, _)| *w);
        let lw = a.local_auth.as_ref().map(|(w, _)| *w).or(both);
        let rw = a.remote_auth.as_ref().map(|(w, _)| *w).or(both);
        // ---- our side
        let local_sig = match lw {
            Some(AuthWord::Psk) => false,
            Some(AuthWord::Sig) => true,
            None => a.local_cert.is_some() || a.local_key.is_some(),
        };
        let mut local = LocalAuth::Psk;
        if local_sig {
            let key = match &a.local_key {
                None => {
                    let f = a
                        .local_auth
                        .as_ref()
                        .or(a.auth.as_ref())
                        .map(|(_, f)| f)
                        .or(a.local_cert.as_ref().map(|(_, f)| f));
                    let msg = "signature authentication needs our private key: give local_key (leftkey) = \"FILE\" (PEM or DER, PKCS#8, PKCS#1 or SEC1, or an ipsec.secrets : RSA { } entry; mode 0600)".to_string();
                    match f {
                        Some(f) => {
                            let f = f.clone();
                            self.field_err(ctx, &f, values::show(&f.value), msg)
                        }
                        None => self.err(
                            file,
                            Some(span),
                            Some(format!("{ctx}.local_key")),
                            None,
                            msg,
                        ),
                    }
                    None
                }
                Some((name, f)) => {
                    let path = self.rel_path(f, name);
                    match PrivateKey::load(&path) {
                        Ok(k) => Some(std::sync::Arc::new(k)),
                        Err(e) => {
                            let f = f.clone();
                            self.field_err(ctx, &f, format!("{name:?}"), e.to_string());
                            None
                        }
                    }
                }
            };
            if let (Some(k), Some((pk, f))) = (&key, &a.local_rsasigkey) {
                if k.public_key() != pk {
                    let f = f.clone();
                    self.field_err(
                        ctx,
                        &f,
                        pk.fingerprint(),
                        format!(
                            "is not the public key of local_key ({})",
                            k.public_key().fingerprint()
                        ),
                    );
                }
            }
            match (&a.local_cert, key) {
                (Some((name, f)), Some(key)) => {
                    let path = self.rel_path(f, name);
                    match Certificate::load(&path) {
                        Ok(chain) => {
                            if chain[0].public_key() != key.public_key() {
                                let f = f.clone();
                                self.field_err(
                                    ctx,
                                    &f,
                                    format!("{name:?}"),
                                    format!(
                                        "certificate \"{}\" ({}) is not for local_key ({})",
                                        chain[0].subject_str(),
                                        chain[0].public_key().fingerprint(),
                                        key.public_key().fingerprint()
                                    ),
                                );
                            }
                            local = LocalAuth::Cert {
                                key,
                                chain,
                                rsa_pss: a.rsa_pss,
                            };
                        }
                        Err(e) => {
                            let f = f.clone();
                            self.field_err(ctx, &f, format!("{name:?}"), e.to_string());
                        }
                    }
                }
                (None, Some(key)) => {
                    local = LocalAuth::RawKey {
                        key,
                        rsa_pss: a.rsa_pss,
                    }
                }
                _ => {}
            }
        } else if let Some((_, f)) = a.local_cert.as_ref().or(a.local_key.as_ref()) {
            let f = f.clone();
            self.field_err(ctx, &f, values::show(&f.value), "given, but this side authenticates with a pre-shared key (local_auth/authby = psk)".into());
        }
        // ---- the peer's side
        let remote_sig = match rw {
            Some(AuthWord::Psk) => false,
            Some(AuthWord::Sig) => true,
            None => a.remote_rsasigkey.is_some() || a.cacerts.is_some(),
        };
        let mut remote = RemoteAuth::Psk;
        if remote_sig {
            if let Some((pk, _)) = &a.remote_rsasigkey {
                remote = RemoteAuth::RawKey { key: pk.clone() };
            } else {
                let mut t = TrustStore::new();
                match &a.cacerts {
                    None => {
                        let msg = "the peer authenticates with certificates: give cacerts = [\"FILE or DIR\", ...] (the CA certificates to trust), or rightrsasigkey for a raw RSA key".to_string();
                        let f = a
                            .remote_auth
                            .as_ref()
                            .or(a.auth.as_ref())
                            .map(|(_, f)| f.clone());
                        match f {
                            Some(f) => self.field_err(ctx, &f, values::show(&f.value), msg),
                            None => self.err(
                                file,
                                Some(span),
                                Some(format!("{ctx}.cacerts")),
                                None,
                                msg,
                            ),
                        }
                    }
                    Some((names, f)) => {
                        for n in names {
                            let path = self.rel_path(f, n);
                            match t.add_ca_path(&path) {
                                Ok(0) => {
                                    let f = f.clone();
                                    self.field_err(
                                        ctx,
                                        &f,
                                        format!("{n:?}"),
                                        "holds no CA certificate".into(),
                                    );
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    let f = f.clone();
                                    self.field_err(ctx, &f, format!("{n:?}"), e.to_string());
                                }
                            }
                        }
                    }
                }
                if let Some((names, f)) = &a.crls {
                    for n in names {
                        let path = self.rel_path(f, n);
                        if let Err(e) = t.add_crl_path(&path) {
                            let f = f.clone();
                            self.field_err(ctx, &f, format!("{n:?}"), e.to_string());
                        }
                    }
                }
                if let Some((ca, f)) = &a.remote_ca {
                    if !t
                        .cas()
                        .iter()
                        .any(|c| crate::pki::dn::matches(ca, c.subject()))
                    {
                        let f = f.clone();
                        self.field_err(
                            ctx,
                            &f,
                            values::show(&f.value),
                            format!(
                                "no certificate in cacerts has this subject (they are: {})",
                                t.cas()
                                    .iter()
                                    .map(|c| format!("\"{}\"", c.subject_str()))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                    }
                }
                remote = RemoteAuth::Cert {
                    trust: std::sync::Arc::new(t),
                    ca: a.remote_ca.as_ref().map(|(d, _)| d.clone()),
                };
            }
        } else if let Some((_, f)) = a
            .remote_rsasigkey
            .as_ref()
            .map(|(_, f)| ((), f))
            .or(a.cacerts.as_ref().map(|(_, f)| ((), f)))
        {
            let f = f.clone();
            self.field_err(ctx, &f, values::show(&f.value), "given, but the peer authenticates with a pre-shared key (remote_auth/authby = psk)".into());
        }
        (self.errors.len() == nerr).then_some((local, remote))
    }

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
            .unwrap_or(dataplane::sa::DEFAULT_REPLAY_WINDOW);
        let auth_f = AuthFields {
            auth: p.get_field("auth", auth_word),
            local_auth: p.get_field("local_auth", auth_word),
            remote_auth: p.get_field("remote_auth", auth_word),
            local_cert: p.get_field("local_cert", values::string),
            local_key: p.get_field("local_key", values::string),
            cacerts: p.get_field("cacerts", values::strings),
            crls: p.get_field("crls", values::strings),
            remote_ca: p.get_field("remote_ca", dn),
            local_rsasigkey: p.get_field("local_rsasigkey", rsasigkey),
            remote_rsasigkey: p.get_field("remote_rsasigkey", rsasigkey),
            rsa_pss: p.get("rsa_pss", values::boolean).unwrap_or(false),
        };
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
        let auths = self.connection_auth(&ctx, file, &span, auth_f);
        let psk_needed = auths
            .as_ref()
            .is_none_or(|(l, r)| matches!(l, LocalAuth::Psk) || matches!(r, RemoteAuth::Psk));
        // The pre-shared key.
        let psk = match psk_f {
            None if !psk_needed => Some(Key::from_slice(&[])),
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
        let (local_auth, remote_auth) = auths?;
        let mut c = Connection::new(&name, local, remote, psk.bytes());
        drop(psk);
        c.local_auth = local_auth;
        c.remote_auth = remote_auth;
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use crate::config::Config;
    use crate::ike::{LocalAuth, RemoteAuth};

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/pki/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }
    fn put(dir: &Path, name: &str, b: &[u8], mode: u32) {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    fn setup() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        put(d.path(), "certs/moon.pem", &fixture("moon.crt.pem"), 0o644);
        put(
            d.path(),
            "private/moon.key",
            &fixture("moon.key.pem"),
            0o600,
        );
        put(
            d.path(),
            "cacerts/rsa.pem",
            &fixture("rsa-ca.crt.pem"),
            0o644,
        );
        put(d.path(), "cacerts/ec.pem", &fixture("ec-ca.crt.pem"), 0o644);
        put(d.path(), "crls/rsa.crl", &fixture("rsa-ca.crl.pem"), 0o644);
        d
    }

    #[test]
    fn certificates_in_strongswan_vocabulary() {
        let d = setup();
        let cfg = d.path().join("e.toml");
        put(
            d.path(),
            "e.toml",
            br#"
[[connection]]
conn = "moon-sun"
left = "192.0.2.1"
right = "192.0.2.2"
authby = "pubkey"
leftcert = "certs/moon.pem"
leftkey = "private/moon.key"
leftid = "C=CH, O=espresso test, CN=moon.example"
rightid = "C=CH, O=espresso test, CN=*"
rightca = "C=CH, O=espresso test, CN=RSA Root CA"
cacerts = ["cacerts"]
crls = "crls/rsa.crl"
ike = "chacha20poly1305-prfsha512-curve25519"
"#,
            0o644,
        );
        let c = Config::load(&cfg).unwrap_or_else(|e| panic!("{e}"));
        let k = &c.connections[0].conn;
        assert!(
            matches!(&k.local_auth, LocalAuth::Cert { chain, .. } if chain[0].subject_str().contains("moon"))
        );
        match &k.remote_auth {
            RemoteAuth::Cert { trust, ca } => {
                assert_eq!(trust.cas().len(), 2);
                assert!(ca.is_some());
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(
            k.local_id.as_ref().unwrap().to_string(),
            "C=CH, O=espresso test, CN=moon.example"
        );
        // the key is never in the Debug form (the reload digest uses it)
        assert!(!format!("{k:?}").contains("PRIVATE"));
    }

    #[test]
    fn raw_rsa_keys_in_freeswan_vocabulary() {
        let d = setup();
        let (k, der) = crate::pki::PrivateKey::generate_rsa(2048).unwrap();
        let entry = crate::pki::rsakey::secrets_entry(&k, &der).unwrap();
        put(d.path(), "ipsec.secrets", entry.as_bytes(), 0o600);
        let mine = crate::pki::rsakey::to_0s(k.public_key()).unwrap();
        let peer = crate::pki::rsakey::to_0s(
            &crate::pki::PrivateKey::from_bytes(&fixture("sun.key.pem"))
                .unwrap()
                .public_key()
                .clone(),
        )
        .unwrap();
        let cfg = d.path().join("e.toml");
        put(
            d.path(),
            "e.toml",
            format!(
                r#"
[[connection]]
name = "rw"
left = "192.0.2.1"
right = "192.0.2.2"
authby = "rsasig"
leftrsasigkey = "{mine}"
rightrsasigkey = "{peer}"
leftkey = "ipsec.secrets"
"#
            )
            .as_bytes(),
            0o644,
        );
        let c = Config::load(&cfg).unwrap_or_else(|e| panic!("{e}"));
        let k2 = &c.connections[0].conn;
        assert!(
            matches!(&k2.local_auth, LocalAuth::RawKey { key, .. } if key.public_key() == k.public_key())
        );
        assert!(matches!(&k2.remote_auth, RemoteAuth::RawKey { .. }));
        // leftrsasigkey that is not our key
        let text = std::fs::read_to_string(&cfg).unwrap().replace(&mine, &peer);
        put(d.path(), "e.toml", text.as_bytes(), 0o644);
        let e = Config::load(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("leftrsasigkey") && e.contains("is not the public key of local_key"),
            "{e}"
        );
    }

    #[test]
    fn mistakes_are_explained() {
        let d = setup();
        let cfg = d.path().join("e.toml");
        let base = r#"
[[connection]]
name = "c"
left = "192.0.2.1"
right = "192.0.2.2"
authby = "pubkey"
leftcert = "certs/moon.pem"
leftkey = "private/moon.key"
cacerts = "cacerts"
"#;
        // a private key readable by others
        std::fs::set_permissions(
            d.path().join("private/moon.key"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        put(d.path(), "e.toml", base.as_bytes(), 0o644);
        let e = Config::load(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("e.toml:8: connection[c].leftkey") && e.contains("chmod 600"),
            "{e}"
        );
        std::fs::set_permissions(
            d.path().join("private/moon.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        // a key of another certificate
        put(
            d.path(),
            "private/other.key",
            &fixture("sun.key.pem"),
            0o600,
        );
        put(
            d.path(),
            "e.toml",
            base.replace("moon.key", "other.key").as_bytes(),
            0o644,
        );
        let e = Config::load(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("leftcert") && e.contains("is not for local_key"),
            "{e}"
        );
        // no CA certificates
        put(
            d.path(),
            "e.toml",
            base.replace("cacerts = \"cacerts\"\n", "").as_bytes(),
            0o644,
        );
        let e = Config::load(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("cacerts") && e.contains("CA certificates to trust"),
            "{e}"
        );
        // an unknown required CA, a bad DN, a missing file, a bad auth word
        put(
            d.path(),
            "e.toml",
            format!("{base}rightca = \"C=XX, CN=Nobody\"\n").as_bytes(),
            0o644,
        );
        let e = Config::load(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("rightca") && e.contains("no certificate in cacerts"),
            "{e}"
        );
        put(
            d.path(),
            "e.toml",
            format!("{base}rightca = \"foo=bar\"\n").as_bytes(),
            0o644,
        );
        assert!(Config::load(&cfg)
            .unwrap_err()
            .to_string()
            .contains("unknown attribute"));
        put(
            d.path(),
            "e.toml",
            base.replace("certs/moon.pem", "certs/nope.pem").as_bytes(),
            0o644,
        );
        let e = Config::load(&cfg).unwrap_err().to_string();
        assert!(e.contains("nope.pem") && e.contains("No such file"), "{e}");
        put(
            d.path(),
            "e.toml",
            base.replace("\"pubkey\"", "\"xauth\"").as_bytes(),
            0o644,
        );
        assert!(Config::load(&cfg)
            .unwrap_err()
            .to_string()
            .contains("expected psk"));
        // psk is still required where a side uses it
        put(
            d.path(),
            "e.toml",
            base.replace("authby = \"pubkey\"", "rightauth = \"psk\"")
                .replace("cacerts = \"cacerts\"\n", "")
                .as_bytes(),
            0o644,
        );
        let e = Config::load(&cfg).unwrap_err().to_string();
        assert!(e.contains("psk") && e.contains("missing"), "{e}");
    }
}
