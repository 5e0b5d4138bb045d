//! IKEv1 connections. [`Connection`] is the typed form the engine runs; its
//! fields map 1:1 to the configuration fields the loader (phase B) reads:
//! the common ones of IKEv2 connections (`left`/`right`, ids, subnets,
//! `psk`, `ike`, `esp`, `pfs`, lifetimes, `margin`, `fuzz`, `dpd_*`,
//! `start`, `mode`, `encap`, `allow_legacy`) plus `aggressive` (alias
//! `aggrmode`) and the version policy `ikev2` (Openswan: `never`, `permit`,
//! `propose`, `insist`), its shorthand `version = 1 | 2` and strongSwan's
//! `keyexchange = ikev1 | ikev2 | ike`. [`ConnectionConfig`] is the serde
//! form with exactly those names.
//!
//! Authentication (RFC 2409 §5.1, §5.4): the pre-shared key, or RSA
//! signatures with an X.509 certificate (`auth = "pubkey"`, `local_cert`,
//! `cacerts`, `remote_ca`, `crls`) or with raw RSA keys (`auth = "rsasig"`,
//! `local_key`, `remote_rsasigkey`): the same fields and loader as IKEv2
//! ([`crate::ike::auth_config`]). IKEv1 negotiates one method for both
//! sides, signs with the digest-less PKCS#1 v1.5 block only (no PSS, no
//! ECDSA or Ed25519 here): anything else is refused at load, naming the
//! field and its value.

use std::time::Duration;

use espresso_core::key::Key;
use espresso_core::sa::Mode;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::ike::auth_config::{self, LocalAuth, RemoteAuth};
use crate::ike::config::{Dpd, DEFAULT_CHILD_LIFETIME, DEFAULT_IKE_LIFETIME, DEFAULT_MARGIN};
use crate::ike::error::IkeError;
use crate::ike::proposal::{DhGroup, EspProposal};
use crate::ike::{Identity, LocalAddr, RemoteAddr, StartAction};

use super::proposal::{default_phase1, default_phase2, parse_phase1, parse_phase2, Phase1Proposal};

/// The version policy and the phase 1 exchange are configuration types of
/// core (the loader reads them); the engine uses them as they are.
pub use espresso_core::config::ike::{ExchangeMode, VersionPolicy};

/// A checked IKEv1 connection.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Name (unique).
    pub name: String,
    /// Our address (`left`).
    pub local_addr: LocalAddr,
    /// The peer's address (`right`).
    pub remote_addr: RemoteAddr,
    /// Our identity; None = our IP address.
    pub local_id: Option<Identity>,
    /// The peer's identity; None = any (whoever knows the key).
    pub remote_id: Option<Identity>,
    /// Pre-shared key (empty with signature authentication).
    pub psk: Key,
    /// How we authenticate: the pre-shared key or an RSA signature
    /// (certificate or raw key).
    pub local_auth: LocalAuth,
    /// How the peer must authenticate (the same method: IKEv1 negotiates one).
    pub remote_auth: RemoteAuth,
    /// Phase 1 proposals (`ike`).
    pub ike_proposals: Vec<Phase1Proposal>,
    /// Phase 2 proposals (`esp`).
    pub esp_proposals: Vec<EspProposal>,
    /// Main or aggressive mode (`aggressive`/`aggrmode`).
    pub exchange: ExchangeMode,
    /// IKE versions (`ikev2`, `version`, `keyexchange`).
    pub version: VersionPolicy,
    /// Start action.
    pub start_action: StartAction,
    /// Dead peer detection (RFC 3706).
    pub dpd: Dpd,
    /// Rekey before expiry.
    pub rekey: bool,
    /// PFS in quick mode: the phase 1 group unless a proposal names one.
    pub pfs: bool,
    /// ISAKMP SA lifetime (`ike_lifetime`, default 28800 s).
    pub ike_lifetime: Duration,
    /// IPsec SA lifetime (`lifetime`, default 3600 s).
    pub child_lifetime: Duration,
    /// Rekey margin.
    pub margin: Duration,
    /// Random part of the margin, percent.
    pub fuzz_percent: u32,
    /// IPsec SA byte lifetime (0 = none).
    pub life_bytes: u64,
    /// IPsec SA packet lifetime (0 = none).
    pub life_packets: u64,
    /// Local subnets (empty: our address).
    pub local_ts: Vec<IpNet>,
    /// Remote subnets (empty: the peer's address).
    pub remote_ts: Vec<IpNet>,
    /// Tunnel or transport.
    pub mode: Mode,
    /// Dataplane tunnel index.
    pub tunnel_id: u32,
    /// Anti-replay window.
    pub replay_window: u32,
    /// Always UDP-encapsulate (fake NAT detection).
    pub force_encap: bool,
    /// Allow 3DES, MD5, MODP-1024/1536 (RFC 8221/8247 deprecate them).
    pub allow_legacy: bool,
    /// Send INITIAL-CONTACT in the first phase 1 to the peer.
    pub initial_contact: bool,
}

impl Connection {
    /// A connection with the seeds' defaults (PSK, main mode, phase 1
    /// 28800 s, phase 2 3600 s, PFS, rekey, DPD off).
    pub fn new(name: &str, local: LocalAddr, remote: RemoteAddr, psk: &[u8]) -> Self {
        Connection {
            name: name.into(),
            local_addr: local,
            remote_addr: remote,
            local_id: None,
            remote_id: None,
            psk: Key::from_slice(psk),
            local_auth: LocalAuth::Psk,
            remote_auth: RemoteAuth::Psk,
            ike_proposals: default_phase1(),
            esp_proposals: default_phase2(),
            exchange: ExchangeMode::Main,
            version: VersionPolicy::Never,
            start_action: StartAction::Add,
            dpd: Dpd::default(),
            rekey: true,
            pfs: true,
            ike_lifetime: DEFAULT_IKE_LIFETIME,
            child_lifetime: DEFAULT_CHILD_LIFETIME,
            margin: DEFAULT_MARGIN,
            fuzz_percent: 100,
            life_bytes: 0,
            life_packets: 0,
            local_ts: Vec::new(),
            remote_ts: Vec::new(),
            mode: Mode::Tunnel,
            tunnel_id: 0,
            replay_window: espresso_core::sa::DEFAULT_REPLAY_WINDOW,
            force_encap: false,
            allow_legacy: false,
            initial_contact: true,
        }
    }

    /// Checks what does not depend on other connections; legacy algorithms
    /// need `allow_legacy` (the error names the algorithm and the field).
    pub fn validate(&self) -> Result<(), IkeError> {
        if let Err(why) = self.check_auth() {
            return Err(IkeError::Config(format!(
                "connection {:?}: {why}",
                self.name
            )));
        }
        self.validate_fields(self.uses_psk())
    }

    /// [`Self::validate`] but the loaded credentials (`psk_used`: the
    /// pre-shared key must be there).
    fn validate_fields(&self, psk_used: bool) -> Result<(), IkeError> {
        let e = |m: String| Err(IkeError::Config(format!("connection {:?}: {m}", self.name)));
        if self.name.is_empty() {
            return e("empty name".into());
        }
        if psk_used && self.psk.len() < 8 {
            return e("pre-shared key shorter than 8 bytes".into());
        }
        if self.ike_proposals.is_empty() || self.esp_proposals.is_empty() {
            return e("no proposals".into());
        }
        if self.remote_addr == RemoteAddr::Any
            && matches!(self.start_action, StartAction::Start | StartAction::Trap)
        {
            return e("remote %any can only respond (start action add or none)".into());
        }
        if self.margin >= self.child_lifetime || self.margin >= self.ike_lifetime {
            return e(format!(
                "rekey margin {:?} must be shorter than the lifetimes",
                self.margin
            ));
        }
        if self.fuzz_percent > 100 {
            return e("fuzz percent above 100".into());
        }
        if self.version == VersionPolicy::Insist {
            return e("ikev2 = insist: the connection does not speak IKEv1".into());
        }
        if self.exchange == ExchangeMode::Aggressive {
            let n: usize = self.ike_proposals.iter().map(|p| p.dh.len()).sum();
            let groups: std::collections::HashSet<DhGroup> = self
                .ike_proposals
                .iter()
                .flat_map(|p| p.dh.iter().copied())
                .collect();
            if n == 0 || groups.len() != 1 {
                return e(
                    "aggressive mode needs exactly one DH group in the ike proposals (its KE goes in the first message)"
                        .into(),
                );
            }
        }
        if !self.allow_legacy {
            for p in &self.ike_proposals {
                if p.is_legacy() {
                    return e(format!(
                        "ike proposal {p} uses a legacy algorithm (3DES, MD5, MODP-1024/1536; RFC 8247): set allow_legacy = true"
                    ));
                }
            }
            for p in &self.esp_proposals {
                if p.encr.iter().any(|a| a.is_legacy())
                    || p.integ.iter().any(|a| a.is_legacy())
                    || p.dh.iter().any(|g| g.is_legacy())
                {
                    return e(format!(
                        "esp proposal {p} uses a legacy algorithm (3DES, MD5, MODP-1024/1536; RFC 8221): set allow_legacy = true"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Authentication with the pre-shared key (else RSA signatures).
    pub fn uses_psk(&self) -> bool {
        matches!(self.local_auth, LocalAuth::Psk)
    }

    /// What IKEv1 can do with the loaded credentials: one method for both
    /// sides, RSA keys, PKCS#1 v1.5; our certificate for our key and identity.
    fn check_auth(&self) -> Result<(), String> {
        use crate::pki::KeyKind;
        let local_psk = matches!(self.local_auth, LocalAuth::Psk);
        let remote_psk = matches!(self.remote_auth, RemoteAuth::Psk);
        if local_psk != remote_psk {
            return Err(format!(
                "local_auth = {} and remote_auth = {}: IKEv1 negotiates one authentication method for both sides (use the same for both, or IKEv2)",
                self.local_auth.name(),
                self.remote_auth.name()
            ));
        }
        if let Some((key, pss)) = self.local_auth.key() {
            if !matches!(key.kind(), KeyKind::Rsa(_)) {
                return Err(format!(
                    "local_key is a {} key: IKEv1 signatures are RSA only here (RFC 4754 ECDSA for IKEv1 is not implemented; use an RSA key, or IKEv2)",
                    key.kind()
                ));
            }
            if pss {
                return Err(
                    "rsa_pss = true: IKEv1 RSA signatures are PKCS#1 v1.5 (RFC 2409 has no PSS); remove rsa_pss or use IKEv2"
                        .into(),
                );
            }
        }
        if let RemoteAuth::RawKey { key } = &self.remote_auth {
            if !matches!(key.kind(), KeyKind::Rsa(_)) {
                return Err(format!(
                    "remote_rsasigkey is a {} key: IKEv1 signatures are RSA only here",
                    key.kind()
                ));
            }
        }
        self.local_auth.check_cert(self.local_id.as_ref())?;
        Ok(())
    }

    /// The single DH group of an aggressive-mode connection (or the first).
    pub fn first_group(&self) -> Option<DhGroup> {
        self.ike_proposals
            .iter()
            .flat_map(|p| p.dh.first())
            .next()
            .copied()
    }
}

impl Connection {
    /// The IKEv1 form of a connection of the configuration (core's loader
    /// checked every common field and kept the `ike`/`esp` strings as
    /// written): the proposals go through [`parse_phase1`]/[`parse_phase2`]
    /// here. Returns the connection and the warnings to show (legacy
    /// algorithms accepted with `allow_legacy`).
    pub fn from_config(
        c: &espresso_core::config::connection::IkeConn,
    ) -> Result<(Connection, Vec<String>), IkeError> {
        Self::build(c, true)
    }

    /// What [`Self::from_config`] checks without reading the key and
    /// certificate files the connection names (`espresso import` writes a
    /// configuration for another machine, where they are): the proposals,
    /// the other fields, and which authentication methods IKEv1 can run.
    /// Returns the warnings.
    pub fn check_config(
        c: &espresso_core::config::connection::IkeConn,
    ) -> Result<Vec<String>, IkeError> {
        Self::build(c, false).map(|(_, w)| w)
    }

    fn build(
        c: &espresso_core::config::connection::IkeConn,
        load_credentials: bool,
    ) -> Result<(Connection, Vec<String>), IkeError> {
        use espresso_core::config::auth::LocalAuthConfig;
        let k = &c.conn;
        let mut v = Connection::new(&c.name, k.local_addr, k.remote_addr, k.psk.bytes());
        v.local_id = k.local_id.clone();
        v.remote_id = k.remote_id.clone();
        let at = |m: String| {
            IkeError::Config(format!(
                "{}:{}: connection[{}]: {m}",
                c.file.display(),
                c.line,
                c.name
            ))
        };
        let (lname, rname) = (k.auth.local.name(), k.auth.remote.name());
        if (lname == "psk") != (rname == "psk") {
            return Err(at(format!(
                "local_auth = {lname} and remote_auth = {rname}: IKEv1 negotiates one authentication method for both sides (use the same for both, or IKEv2)"
            )));
        }
        if let LocalAuthConfig::Cert { rsa_pss: true, .. }
        | LocalAuthConfig::RawKey { rsa_pss: true, .. } = k.auth.local
        {
            return Err(at(
                "rsa_pss = true: IKEv1 RSA signatures are PKCS#1 v1.5 (RFC 2409 has no PSS); remove rsa_pss or use IKEv2"
                    .into(),
            ));
        }
        if load_credentials {
            let (local_auth, remote_auth) = auth_config::load(&k.auth).map_err(|errs| {
                IkeError::Config(
                    errs.iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?;
            v.local_auth = local_auth;
            v.remote_auth = remote_auth;
        }
        let field = |f: &str, e: IkeError| {
            IkeError::Config(format!(
                "{}:{}: connection[{}].{f}: {}",
                c.file.display(),
                c.line,
                c.name,
                e.to_string().trim_start_matches("configuration: ")
            ))
        };
        if let Some(s) = &c.v1_proposals.0 {
            v.ike_proposals = parse_phase1(s).map_err(|e| field("ike", e))?;
        }
        if let Some(s) = &c.v1_proposals.1 {
            v.esp_proposals = parse_phase2(s).map_err(|e| field("esp", e))?;
        }
        v.exchange = c.exchange;
        v.version = c.version;
        v.start_action = k.start_action;
        v.dpd = k.dpd;
        v.rekey = k.rekey;
        v.pfs = k.pfs;
        v.ike_lifetime = k.ike_lifetime;
        v.child_lifetime = k.child_lifetime;
        v.margin = k.margin;
        v.fuzz_percent = k.fuzz_percent;
        v.life_bytes = k.life_bytes;
        v.life_packets = k.life_packets;
        v.local_ts = k.local_ts.clone();
        v.remote_ts = k.remote_ts.clone();
        v.mode = k.mode;
        v.tunnel_id = k.tunnel_id;
        v.replay_window = k.replay_window;
        v.force_encap = k.force_encap;
        v.allow_legacy = k.allow_legacy;
        let checked = if load_credentials {
            v.validate()
        } else {
            v.validate_fields(k.auth.uses_psk())
        };
        checked.map_err(|e| {
            IkeError::Config(format!(
                "{}:{}: {}",
                c.file.display(),
                c.line,
                e.to_string().trim_start_matches("configuration: ")
            ))
        })?;
        let mut warnings = Vec::new();
        if v.allow_legacy {
            let legacy: Vec<String> = v
                .ike_proposals
                .iter()
                .filter(|p| p.is_legacy())
                .map(|p| format!("ike {p}"))
                .chain(
                    v.esp_proposals
                        .iter()
                        .filter(|p| {
                            p.encr.iter().any(|a| a.is_legacy())
                                || p.integ.iter().any(|a| a.is_legacy())
                                || p.dh.iter().any(|g| g.is_legacy())
                        })
                        .map(|p| format!("esp {p}")),
                )
                .collect();
            if !legacy.is_empty() {
                warnings.push(format!(
                    "{}:{}: connection {} (IKEv1) accepts LEGACY algorithms with allow_legacy = true: {} (3DES, MD5, MODP-1024/1536 are deprecated by RFC 8221/8247: move the peer to AES, SHA-2 and group 14 or above)",
                    c.file.display(),
                    c.line,
                    c.name,
                    legacy.join(", ")
                ));
            }
        }
        Ok((v, warnings))
    }
}

/// The serde form, with the configuration's field names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionConfig {
    /// Name.
    pub name: String,
    /// Local address (`left`).
    pub local: String,
    /// Remote address (`right`).
    pub remote: String,
    /// Local identity (`leftid`).
    pub local_id: Option<String>,
    /// Remote identity (`rightid`; `%any` = any).
    pub remote_id: Option<String>,
    /// Pre-shared key.
    #[serde(skip_serializing)]
    pub psk: Option<String>,
    /// Phase 1 proposals.
    pub ike: Option<String>,
    /// Phase 2 proposals.
    pub esp: Option<String>,
    /// Aggressive mode.
    #[serde(alias = "aggrmode")]
    pub aggressive: Option<bool>,
    /// Openswan's IKEv2 policy.
    pub ikev2: Option<String>,
    /// 1 or 2.
    pub version: Option<u8>,
    /// strongSwan's ikev1 / ikev2 / ike.
    pub keyexchange: Option<String>,
    /// Start action.
    pub start: Option<String>,
    /// DPD delay, seconds (0 = off).
    pub dpd_delay: Option<u64>,
    /// DPD timeout, seconds.
    pub dpd_timeout: Option<u64>,
    /// DPD action.
    pub dpd_action: Option<String>,
    /// Rekey.
    pub rekey: Option<bool>,
    /// PFS.
    pub pfs: Option<bool>,
    /// Phase 1 lifetime, seconds.
    pub ike_lifetime: Option<u64>,
    /// Phase 2 lifetime, seconds.
    pub lifetime: Option<u64>,
    /// Margin, seconds.
    pub margin: Option<u64>,
    /// Fuzz, percent.
    pub fuzz: Option<u32>,
    /// Local subnets.
    pub local_subnets: Vec<IpNet>,
    /// Remote subnets.
    pub remote_subnets: Vec<IpNet>,
    /// tunnel / transport.
    pub mode: Option<String>,
    /// Force UDP encapsulation.
    pub encap: Option<bool>,
    /// Allow legacy algorithms.
    pub allow_legacy: Option<bool>,
}

impl ConnectionConfig {
    /// The version policy from `ikev2`, `version` and `keyexchange` (they must agree).
    pub fn version_policy(&self) -> Result<VersionPolicy, IkeError> {
        let mut v: Option<(VersionPolicy, &str)> = None;
        let mut set = |p: VersionPolicy, field: &'static str| -> Result<(), IkeError> {
            match v {
                Some((q, f)) if q != p => Err(IkeError::Config(format!(
                    "connection {:?}: {field} = {p} contradicts {f} = {q}",
                    self.name
                ))),
                _ => {
                    v = Some((p, field));
                    Ok(())
                }
            }
        };
        if let Some(s) = &self.ikev2 {
            set(s.parse().map_err(IkeError::Config)?, "ikev2")?;
        }
        if let Some(n) = self.version {
            set(
                VersionPolicy::from_version(n).map_err(IkeError::Config)?,
                "version",
            )?;
        }
        if let Some(s) = &self.keyexchange {
            set(
                VersionPolicy::from_keyexchange(s).map_err(IkeError::Config)?,
                "keyexchange",
            )?;
        }
        Ok(v.map(|(p, _)| p).unwrap_or_default())
    }

    /// Checks and converts (`psk` from a secrets file overrides the inline key).
    pub fn to_connection(
        &self,
        tunnel_id: u32,
        psk: Option<&[u8]>,
    ) -> Result<Connection, IkeError> {
        let key = match (psk, &self.psk) {
            (Some(k), _) => k.to_vec(),
            (None, Some(s)) => s.as_bytes().to_vec(),
            (None, None) => {
                return Err(IkeError::Config(format!(
                    "connection {:?}: no pre-shared key",
                    self.name
                )))
            }
        };
        let mut c = Connection::new(
            &self.name,
            self.local.parse().map_err(IkeError::Config)?,
            self.remote.parse().map_err(IkeError::Config)?,
            &key,
        );
        c.tunnel_id = tunnel_id;
        c.version = self.version_policy()?;
        c.local_id = self
            .local_id
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(IkeError::Config)?;
        c.remote_id = match self.remote_id.as_deref() {
            None => match c.remote_addr {
                RemoteAddr::Addr(a) => Some(Identity::from_ip(a)),
                RemoteAddr::Any => None,
            },
            Some("%any") => None,
            Some(s) => Some(s.parse().map_err(IkeError::Config)?),
        };
        if let Some(s) = &self.ike {
            c.ike_proposals = parse_phase1(s)?;
        }
        if let Some(s) = &self.esp {
            c.esp_proposals = parse_phase2(s)?;
        }
        if self.aggressive == Some(true) {
            c.exchange = ExchangeMode::Aggressive;
        }
        if let Some(s) = &self.start {
            c.start_action = s.parse().map_err(IkeError::Config)?;
        }
        if let Some(d) = self.dpd_delay {
            c.dpd.delay = Duration::from_secs(d);
        }
        if let Some(d) = self.dpd_timeout {
            c.dpd.timeout = Duration::from_secs(d);
        }
        if let Some(a) = &self.dpd_action {
            c.dpd.action = a.parse().map_err(IkeError::Config)?;
        }
        if let Some(r) = self.rekey {
            c.rekey = r;
        }
        if let Some(p) = self.pfs {
            c.pfs = p;
        }
        if let Some(l) = self.ike_lifetime {
            c.ike_lifetime = Duration::from_secs(l);
        }
        if let Some(l) = self.lifetime {
            c.child_lifetime = Duration::from_secs(l);
        }
        if let Some(m) = self.margin {
            c.margin = Duration::from_secs(m);
        }
        if let Some(f) = self.fuzz {
            c.fuzz_percent = f;
        }
        c.local_ts = self.local_subnets.clone();
        c.remote_ts = self.remote_subnets.clone();
        c.mode = match self.mode.as_deref() {
            None | Some("tunnel") => Mode::Tunnel,
            Some("transport") => Mode::Transport,
            Some(m) => {
                return Err(IkeError::Config(format!(
                    "connection {:?}: mode {m:?} (tunnel or transport)",
                    self.name
                )))
            }
        };
        c.force_encap = self.encap.unwrap_or(false);
        c.allow_legacy = self.allow_legacy.unwrap_or(false);
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_policy_vocabulary() {
        assert_eq!(
            "never".parse::<VersionPolicy>().unwrap(),
            VersionPolicy::Never
        );
        assert_eq!("no".parse::<VersionPolicy>().unwrap(), VersionPolicy::Never);
        assert_eq!(
            "yes".parse::<VersionPolicy>().unwrap(),
            VersionPolicy::Propose
        );
        assert_eq!(
            VersionPolicy::from_version(1).unwrap(),
            VersionPolicy::Never
        );
        assert_eq!(
            VersionPolicy::from_keyexchange("ike").unwrap(),
            VersionPolicy::Propose
        );
        assert!(VersionPolicy::Permit.accepts(2) && VersionPolicy::Permit.accepts(1));
        assert!(!VersionPolicy::Never.accepts(2) && !VersionPolicy::Insist.accepts(1));
        assert_eq!(VersionPolicy::Permit.initiate_with(), 1);
        assert_eq!(VersionPolicy::Propose.initiate_with(), 2);
        assert_eq!(VersionPolicy::Propose.fallback(), Some(1));
        assert_eq!(VersionPolicy::default(), VersionPolicy::Insist);
    }

    #[test]
    fn seed_connections() {
        // an Openswan connection as operators write it: aggressive mode, legacy proposals
        let t = r#"
            name = "clearos"
            local = "192.0.2.1"
            remote = "%any"
            local_id = "@clearos"
            remote_id = "@roadwarrior"
            psk = "Letmein99-long-enough"
            ike = "3DES MD5 2"
            esp = "aes-sha1;modp1024"
            aggrmode = true
            ikev2 = "never"
            allow_legacy = true
            dpd_delay = 30
            dpd_action = "hold"
        "#;
        let cc: ConnectionConfig = toml::from_str(t).unwrap();
        let c = cc.to_connection(1, None).unwrap();
        assert_eq!(c.exchange, ExchangeMode::Aggressive);
        assert_eq!(c.version, VersionPolicy::Never);
        assert_eq!(c.ike_lifetime, Duration::from_secs(28800));
        assert_eq!(c.child_lifetime, Duration::from_secs(3600));
        let legacy = ConnectionConfig {
            allow_legacy: None,
            ..cc.clone()
        };
        let err = legacy.to_connection(1, None).unwrap_err().to_string();
        assert!(err.contains("allow_legacy"), "{err}");
        let contradict = ConnectionConfig {
            version: Some(2),
            ..cc.clone()
        };
        assert!(contradict.to_connection(1, None).is_err());
        // aggressive mode with two groups is refused
        let two = ConnectionConfig {
            ike: Some("aes-sha1-modp2048-modp3072".into()),
            ..cc
        };
        assert!(two.to_connection(1, None).is_err());
    }
}

#[cfg(test)]
mod from_config_tests {
    use super::*;

    fn load(text: &str) -> espresso_core::config::Config {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("main.toml");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        espresso_core::config::Config::load(&p).unwrap()
    }

    #[test]
    fn seeds_proposals_through_the_ikev1_parsers() {
        let c = load(
            r#"
[[connection]]
name = "mbox"
remote = "192.0.2.9"
local_id = "@gw"
version = 1
aggressive = true
ike = "3des-md5-modp1024"
esp = "AES SHA 2"
allow_legacy = true
psk = "Letmein99-long-enough"

[[connection]]
name = "nolegacy"
remote = "192.0.2.8"
ikev2 = "never"
ike = "AES SHA 2"
psk = "Letmein99-long-enough"
"#,
        );
        let (v, warnings) = Connection::from_config(&c.connections[0]).unwrap();
        assert_eq!(v.exchange, ExchangeMode::Aggressive);
        assert_eq!(v.version, VersionPolicy::Never);
        assert_eq!(v.ike_proposals.len(), 1);
        assert_eq!(v.ike_proposals[0].to_string(), "3des-md5-modp1024");
        assert_eq!(v.esp_proposals[0].dh.len(), 1, "a group in esp means PFS");
        assert_eq!(v.local_id, Some("@gw".parse().unwrap()));
        assert!(
            warnings.len() == 1 && warnings[0].contains("LEGACY"),
            "{warnings:?}"
        );
        // core accepts the string; the IKEv1 parser refuses MODP-1024 without allow_legacy
        let e = Connection::from_config(&c.connections[1])
            .unwrap_err()
            .to_string();
        assert!(e.contains("allow_legacy") && e.contains("main.toml"), "{e}");
    }
}

#[cfg(test)]
mod auth_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A configuration directory with moon's key (0600) and certificate and
    /// the RSA root, and `text` as main.toml.
    fn load(text: &str) -> (tempfile::TempDir, espresso_core::config::Config) {
        let d = tempfile::tempdir().unwrap();
        let fx = |n: &str| {
            std::fs::read(format!(
                "{}/tests/fixtures/pki/{n}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        for (n, mode) in [
            ("moon.key.pem", 0o600),
            ("moon.crt.pem", 0o644),
            ("rsa-ca.crt.pem", 0o644),
            ("mars.key.pem", 0o600),
            ("mars.crt.pem", 0o644),
        ] {
            let p = d.path().join(n);
            std::fs::write(&p, fx(n)).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let p = d.path().join("main.toml");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = espresso_core::config::Config::load(&p).unwrap();
        (d, c)
    }

    const BASE: &str = r#"
[[connection]]
name = "v1"
version = 1
left = "192.0.2.1"
right = "192.0.2.2"
ike = "aes128-sha256-modp2048"
"#;

    #[test]
    fn certificates_and_raw_keys_load_for_ikev1() {
        let (_d, c) = load(&format!(
            "{BASE}authby = \"pubkey\"\nleftcert = \"moon.crt.pem\"\nleftkey = \"moon.key.pem\"\ncacerts = \"rsa-ca.crt.pem\"\nrightid = \"@sun.example\"\n"
        ));
        let (v, _) = Connection::from_config(&c.connections[0]).unwrap();
        assert!(matches!(v.local_auth, LocalAuth::Cert { .. }));
        assert!(matches!(v.remote_auth, RemoteAuth::Cert { .. }));
        assert!(!v.uses_psk());
        let sun = crate::pki::rsakey::to_0s(
            crate::pki::PrivateKey::from_bytes(
                &std::fs::read(format!(
                    "{}/tests/fixtures/pki/sun.key.pem",
                    env!("CARGO_MANIFEST_DIR")
                ))
                .unwrap(),
            )
            .unwrap()
            .public_key(),
        )
        .unwrap();
        let (_d, c) = load(&format!(
            "{BASE}authby = \"rsasig\"\nleftkey = \"moon.key.pem\"\nrightrsasigkey = \"{sun}\"\n"
        ));
        let (v, _) = Connection::from_config(&c.connections[0]).unwrap();
        assert!(matches!(v.local_auth, LocalAuth::RawKey { .. }));
        assert!(matches!(v.remote_auth, RemoteAuth::RawKey { .. }));
    }

    #[test]
    fn what_ikev1_cannot_do_is_refused_naming_the_field() {
        for (extra, want) in [
            (
                "authby = \"pubkey\"\nleftcert = \"moon.crt.pem\"\nleftkey = \"moon.key.pem\"\ncacerts = \"rsa-ca.crt.pem\"\nrsa_pss = true\n",
                "rsa_pss = true",
            ),
            (
                "authby = \"pubkey\"\nleftcert = \"mars.crt.pem\"\nleftkey = \"mars.key.pem\"\ncacerts = \"rsa-ca.crt.pem\"\n",
                "local_key is a",
            ),
            (
                "local_auth = \"pubkey\"\nremote_auth = \"psk\"\nleftcert = \"moon.crt.pem\"\nleftkey = \"moon.key.pem\"\npsk = \"a-long-enough-pre-shared-key-0123456789\"\n",
                "local_auth = pubkey and remote_auth = psk",
            ),
        ] {
            let (_d, c) = load(&format!("{BASE}{extra}"));
            let e = Connection::from_config(&c.connections[0])
                .unwrap_err()
                .to_string();
            assert!(e.contains(want) && e.contains("main.toml"), "{e}");
        }
    }
}
