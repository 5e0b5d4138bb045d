//! How each side of a connection authenticates (strongSwan's `local.auth` /
//! `remote.auth`, FreeS/WAN's `authby`): a pre-shared key, a public key with
//! an X.509 certificate, or a raw public key configured on the other side
//! (`leftrsasigkey`/`rightrsasigkey`). And the wall clock certificates are
//! checked against (injected, so that tests run at any date). [`load`]
//! turns the configuration's [`AuthConfig`] (paths, key strings) into them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use espresso_core::config::auth::{AuthConfig, LocalAuthConfig, Located, Origin, RemoteAuthConfig};
use espresso_core::config::ConfigError;

use crate::pki::{dn, Certificate, PrivateKey, PublicKey, TrustStore};

/// How we prove who we are.
#[derive(Clone, Debug, Default)]
pub enum LocalAuth {
    /// The connection's pre-shared key (AUTH method 2).
    #[default]
    Psk,
    /// A private key and its certificate; `chain` is the end entity first,
    /// then intermediates we send when the peer's CA needs them.
    Cert {
        /// The private key.
        key: Arc<PrivateKey>,
        /// End-entity certificate, then intermediates.
        chain: Vec<Arc<Certificate>>,
        /// Sign with RSASSA-PSS rather than PKCS#1 v1.5 (RSA keys, RFC 7427).
        rsa_pss: bool,
    },
    /// A private key whose public key the peer has configured
    /// (`leftrsasigkey`, authby=rsasig): no certificate is sent.
    RawKey {
        /// The private key.
        key: Arc<PrivateKey>,
        /// Sign with RSASSA-PSS rather than PKCS#1 v1.5 (RSA keys, RFC 7427).
        rsa_pss: bool,
    },
}

impl LocalAuth {
    /// With a certificate: the private key belongs to it and `local_id`
    /// (if configured) is one of its identities. Both IKE versions check
    /// this at load; the error says which and names the certificate.
    pub fn check_cert(
        &self,
        local_id: Option<&espresso_core::config::ike::Identity>,
    ) -> Result<(), String> {
        let LocalAuth::Cert { key, chain, .. } = self else {
            return Ok(());
        };
        let Some(c) = chain.first() else {
            return Err("certificate authentication without a certificate".into());
        };
        if c.public_key() != key.public_key() {
            return Err(format!(
                "the private key ({}) does not belong to the certificate \"{}\" ({})",
                key.public_key().fingerprint(),
                c.subject_str(),
                c.public_key().fingerprint()
            ));
        }
        if let Some(id) = local_id {
            if !c.has_identity(id) {
                return Err(format!(
                    "local identity {id} is not in the certificate \"{}\" (use its subject DN or a subjectAltName)",
                    c.subject_str()
                ));
            }
        }
        Ok(())
    }

    /// `psk`, `pubkey` or `rsasig` (the auth method's configuration name).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Psk => "psk",
            Self::Cert { .. } => "pubkey",
            Self::RawKey { .. } => "rsasig",
        }
    }
    /// The private key, for signature methods.
    pub fn key(&self) -> Option<(&PrivateKey, bool)> {
        match self {
            Self::Psk => None,
            Self::Cert { key, rsa_pss, .. } | Self::RawKey { key, rsa_pss } => {
                Some((key, *rsa_pss))
            }
        }
    }
    /// Our end-entity certificate.
    pub fn cert(&self) -> Option<&Arc<Certificate>> {
        match self {
            Self::Cert { chain, .. } => chain.first(),
            _ => None,
        }
    }
}

/// What the peer must prove.
#[derive(Clone, Debug, Default)]
pub enum RemoteAuth {
    /// The connection's pre-shared key.
    #[default]
    Psk,
    /// A signature with the key of a certificate that chains to a CA of
    /// `trust` (and, with `ca`, to that CA: strongSwan's `rightca`).
    Cert {
        /// CA certificates and CRLs.
        trust: Arc<TrustStore>,
        /// Required CA subject (DER DN; `*` values allowed).
        ca: Option<Vec<u8>>,
    },
    /// A signature with this key (`rightrsasigkey`, authby=rsasig).
    RawKey {
        /// The peer's public key.
        key: PublicKey,
    },
}

impl RemoteAuth {
    /// `psk`, `pubkey` or `rsasig`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Psk => "psk",
            Self::Cert { .. } => "pubkey",
            Self::RawKey { .. } => "rsasig",
        }
    }
}

/// The wall clock used for certificate validity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WallClock {
    /// The system's clock.
    #[default]
    System,
    /// A fixed time (tests).
    Fixed(SystemTime),
}

impl WallClock {
    /// The time now.
    pub fn now(&self) -> SystemTime {
        match self {
            Self::System => SystemTime::now(),
            Self::Fixed(t) => *t,
        }
    }
}

/// An error at the place a value was written.
fn at_err(at: &Origin, message: String) -> ConfigError {
    ConfigError {
        file: at.file.clone(),
        line: Some(at.line),
        field: Some(at.field.clone()),
        value: Some(at.value.clone()),
        message,
    }
}

/// Loads what a connection's authentication configuration names: private
/// keys (mode 0600), certificates, CA certificates and CRLs, raw public
/// keys; checks that a certificate or `leftrsasigkey` is the private key's
/// and that `rightca` is among the CA certificates. Every problem is
/// reported at the value that caused it.
pub fn load(cfg: &AuthConfig) -> Result<(LocalAuth, RemoteAuth), Vec<ConfigError>> {
    let mut errs = Vec::new();
    let local = load_local(&cfg.local, &mut errs);
    let remote = load_remote(&cfg.remote, &mut errs);
    match (local, remote) {
        (Some(l), Some(r)) if errs.is_empty() => Ok((l, r)),
        _ => Err(errs),
    }
}

fn load_key(key: &Located<PathBuf>, errs: &mut Vec<ConfigError>) -> Option<Arc<PrivateKey>> {
    match PrivateKey::load(&key.value) {
        Ok(k) => Some(Arc::new(k)),
        Err(e) => {
            errs.push(at_err(&key.at, e.to_string()));
            None
        }
    }
}

fn check_rsasigkey(
    k: &PrivateKey,
    rsasigkey: &Option<Located<String>>,
    errs: &mut Vec<ConfigError>,
) {
    let Some(l) = rsasigkey else {
        return;
    };
    match crate::pki::rsakey::parse_public(&l.value) {
        Ok(pk) if &pk != k.public_key() => errs.push(at_err(
            &l.at,
            format!(
                "is not the public key of local_key ({})",
                k.public_key().fingerprint()
            ),
        )),
        Ok(_) => {}
        Err(e) => errs.push(at_err(&l.at, e.to_string())),
    }
}

fn load_local(c: &LocalAuthConfig, errs: &mut Vec<ConfigError>) -> Option<LocalAuth> {
    Some(match c {
        LocalAuthConfig::Psk => LocalAuth::Psk,
        LocalAuthConfig::RawKey {
            key,
            rsasigkey,
            rsa_pss,
        } => {
            let k = load_key(key, errs)?;
            check_rsasigkey(&k, rsasigkey, errs);
            LocalAuth::RawKey {
                key: k,
                rsa_pss: *rsa_pss,
            }
        }
        LocalAuthConfig::Cert {
            cert,
            key,
            rsasigkey,
            rsa_pss,
        } => {
            let k = load_key(key, errs);
            let chain = match Certificate::load(&cert.value) {
                Ok(c) => Some(c),
                Err(e) => {
                    errs.push(at_err(&cert.at, e.to_string()));
                    None
                }
            };
            let (k, chain) = (k?, chain?);
            check_rsasigkey(&k, rsasigkey, errs);
            if chain[0].public_key() != k.public_key() {
                errs.push(at_err(
                    &cert.at,
                    format!(
                        "certificate \"{}\" ({}) is not for local_key ({})",
                        chain[0].subject_str(),
                        chain[0].public_key().fingerprint(),
                        k.public_key().fingerprint()
                    ),
                ));
            }
            LocalAuth::Cert {
                key: k,
                chain,
                rsa_pss: *rsa_pss,
            }
        }
    })
}

fn load_remote(c: &RemoteAuthConfig, errs: &mut Vec<ConfigError>) -> Option<RemoteAuth> {
    Some(match c {
        RemoteAuthConfig::Psk => RemoteAuth::Psk,
        RemoteAuthConfig::RawKey { key } => match crate::pki::rsakey::parse_public(&key.value) {
            Ok(k) => RemoteAuth::RawKey { key: k },
            Err(e) => {
                errs.push(at_err(&key.at, e.to_string()));
                return None;
            }
        },
        RemoteAuthConfig::Cert { cacerts, crls, ca } => {
            let mut t = TrustStore::new();
            // An empty directory is fine beside entries that hold CAs (the
            // old stack's /etc/ipsec.d/cacerts next to a `ca` section's file);
            // a file without a CA, or no CA at all, is an error.
            let mut empty_dirs = Vec::new();
            for l in cacerts {
                match t.add_ca_path(&l.value) {
                    Ok(0) if l.value.is_dir() => empty_dirs.push(l),
                    Ok(0) => errs.push(at_err(&l.at, "holds no CA certificate".into())),
                    Ok(_) => {}
                    Err(e) => errs.push(at_err(&l.at, e.to_string())),
                }
            }
            if t.cas().is_empty() {
                for l in empty_dirs {
                    errs.push(at_err(
                        &l.at,
                        "holds no CA certificate (and no other cacerts entry does)".into(),
                    ));
                }
            }
            for l in crls {
                if let Err(e) = t.add_crl_path(&l.value) {
                    errs.push(at_err(&l.at, e.to_string()));
                }
            }
            if let Some(ca) = ca {
                let known = t.cas().iter().any(|c| dn::matches(&ca.value, c.subject()));
                if !known && !t.cas().is_empty() {
                    errs.push(at_err(
                        &ca.at,
                        format!(
                            "no certificate in cacerts has this subject (they are: {})",
                            t.cas()
                                .iter()
                                .map(|c| format!("\"{}\"", c.subject_str()))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
            RemoteAuth::Cert {
                trust: Arc::new(t),
                ca: ca.as_ref().map(|l| l.value.clone()),
            }
        }
    })
}
