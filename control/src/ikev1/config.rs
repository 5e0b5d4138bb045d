//! IKEv1 connections. [`Connection`] is the form the engine runs: core's
//! typed connection ([`ConnectionConfig`], `espresso_core::config::ike`,
//! built by the configuration loader: addresses, identities, the key,
//! lifetimes, selectors, DPD, ... one set of fields for both IKE versions,
//! reached through `Deref`) with what IKEv1 adds: the phase 1 proposals
//! and the `esp` proposals as the IKEv1 parsers read them (the seeds'
//! forms such as `AES SHA 2`), main or aggressive mode (`aggressive`,
//! alias `aggrmode`), the version policy (`ikev2`: Openswan's `never`,
//! `permit`, `propose`, `insist`; `version = 1 | 2`; strongSwan's
//! `keyexchange = ikev1 | ikev2 | ike`, which core's loader reconciles) and
//! the loaded credentials.
//!
//! Authentication (RFC 2409 §5.1, §5.4): the pre-shared key, or RSA
//! signatures with an X.509 certificate (`auth = "pubkey"`, `local_cert`,
//! `cacerts`, `remote_ca`, `crls`) or with raw RSA keys (`auth = "rsasig"`,
//! `local_key`, `remote_rsasigkey`): the same fields and loader as IKEv2
//! ([`crate::ike::auth_config`]). IKEv1 negotiates one method for both
//! sides, signs with the digest-less PKCS#1 v1.5 block only (no PSS, no
//! ECDSA or Ed25519 here): anything else is refused at load, naming the
//! field and its value.

use std::ops::{Deref, DerefMut};

use crate::ike::auth_config::{self, LocalAuth, RemoteAuth};
use crate::ike::error::IkeError;
use crate::ike::proposal::DhGroup;
use crate::ike::{LocalAddr, RemoteAddr};

use super::proposal::{default_phase1, default_phase2, parse_phase1, parse_phase2, Phase1Proposal};

/// Core's typed connection (the loader's form, shared with IKEv2).
pub use espresso_core::config::ike::Connection as ConnectionConfig;
/// The version policy and the phase 1 exchange are configuration types of
/// core (the loader reads them); the engine uses them as they are.
pub use espresso_core::config::ike::{ExchangeMode, VersionPolicy};

/// A checked IKEv1 connection: core's connection plus what IKEv1 adds.
/// Reads and writes of the common values go to the [`ConnectionConfig`] it
/// wraps. Its `esp_proposals` are the IKEv1 parser's (`parse_phase2`); its
/// `ike_proposals` (the IKEv2 form) are not used: phase 1 runs
/// [`Connection::phase1_proposals`].
#[derive(Clone, Debug)]
pub struct Connection {
    cfg: ConnectionConfig,
    /// How we authenticate: the pre-shared key or an RSA signature
    /// (certificate or raw key).
    pub local_auth: LocalAuth,
    /// How the peer must authenticate (the same method: IKEv1 negotiates one).
    pub remote_auth: RemoteAuth,
    /// Phase 1 proposals (`ike`, through `parse_phase1`).
    pub phase1_proposals: Vec<Phase1Proposal>,
    /// Main or aggressive mode (`aggressive`/`aggrmode`).
    pub exchange: ExchangeMode,
    /// IKE versions (`ikev2`, `version`, `keyexchange`).
    pub version: VersionPolicy,
    /// Send INITIAL-CONTACT in the first phase 1 to the peer.
    pub initial_contact: bool,
}

impl Deref for Connection {
    type Target = ConnectionConfig;
    fn deref(&self) -> &ConnectionConfig {
        &self.cfg
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut ConnectionConfig {
        &mut self.cfg
    }
}

impl Connection {
    /// A connection with the seeds' defaults (PSK, main mode, phase 1
    /// 28800 s, phase 2 3600 s, PFS, rekey, DPD off).
    pub fn new(name: &str, local: LocalAddr, remote: RemoteAddr, psk: &[u8]) -> Self {
        Self::with_config(ConnectionConfig::new(name, local, remote, psk))
    }

    /// `cfg` with IKEv1's defaults for what IKEv1 adds (and its default
    /// `esp` proposals).
    fn with_config(mut cfg: ConnectionConfig) -> Self {
        cfg.esp_proposals = default_phase2();
        Connection {
            cfg,
            local_auth: LocalAuth::Psk,
            remote_auth: RemoteAuth::Psk,
            phase1_proposals: default_phase1(),
            exchange: ExchangeMode::Main,
            version: VersionPolicy::Never,
            initial_contact: true,
        }
    }

    /// The configured connection (core's form).
    pub fn config(&self) -> &ConnectionConfig {
        &self.cfg
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
    /// pre-shared key must be there): core's checks of the common values,
    /// then IKEv1's.
    fn validate_fields(&self, psk_used: bool) -> Result<(), IkeError> {
        let e = |m: String| Err(IkeError::Config(format!("connection {:?}: {m}", self.name)));
        if self.phase1_proposals.is_empty() || self.esp_proposals.is_empty() {
            return e("no proposals".into());
        }
        if self.version == VersionPolicy::Insist {
            return e("ikev2 = insist: the connection does not speak IKEv1".into());
        }
        if self.exchange == ExchangeMode::Aggressive {
            let n: usize = self.phase1_proposals.iter().map(|p| p.dh.len()).sum();
            let groups: std::collections::HashSet<DhGroup> = self
                .phase1_proposals
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
            for p in &self.phase1_proposals {
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
        self.cfg
            .validate_as(psk_used)
            .map_err(|e| IkeError::Config(e.to_string()))
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
        self.phase1_proposals
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
        let mut v = Connection::with_config(k.clone());
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
            v.phase1_proposals = parse_phase1(s).map_err(|e| field("ike", e))?;
        }
        if let Some(s) = &c.v1_proposals.1 {
            v.esp_proposals = parse_phase2(s).map_err(|e| field("esp", e))?;
        }
        v.exchange = c.exchange;
        v.version = c.version;
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
                .phase1_proposals
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
    fn seed_connections() {
        // an Openswan connection as operators write it: aggressive mode, legacy proposals
        let seed = r#"
[[connection]]
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
        let c = load(seed);
        let (v, _) = Connection::from_config(&c.connections[0]).unwrap();
        assert_eq!(v.exchange, ExchangeMode::Aggressive);
        assert_eq!(v.version, VersionPolicy::Never);
        assert_eq!(v.ike_lifetime, std::time::Duration::from_secs(28800));
        assert_eq!(v.child_lifetime, std::time::Duration::from_secs(3600));
        let legacy = load(&seed.replace("allow_legacy = true\n", ""));
        let err = Connection::from_config(&legacy.connections[0])
            .unwrap_err()
            .to_string();
        assert!(err.contains("allow_legacy"), "{err}");
        // aggressive mode with two groups is refused
        let two = load(&seed.replace("3DES MD5 2", "aes-sha1-modp2048-modp3072"));
        let err = Connection::from_config(&two.connections[0])
            .unwrap_err()
            .to_string();
        assert!(err.contains("exactly one DH group"), "{err}");
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
        assert_eq!(v.phase1_proposals.len(), 1);
        assert_eq!(v.phase1_proposals[0].to_string(), "3des-md5-modp1024");
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
