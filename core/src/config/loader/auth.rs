//! The authentication fields of a `[[connection]]` in both vocabularies
//! (`authby`, `leftauth`/`rightauth`, `leftcert`, `leftkey`, `cacerts`,
//! `crls`, `rightca`, `leftrsasigkey`/`rightrsasigkey`, `rsa_pss`): which
//! method each side uses and the files it needs. Paths are resolved against
//! the directory of the file that names them; loading the keys and
//! certificates is the control process's (it reports at each value's
//! [`Origin`]).

use std::path::{Path, PathBuf};

use toml::Value;

use super::{values, At, Field, Loader, Parse};
use crate::config::auth::{AuthConfig, LocalAuthConfig, Located, Origin, RemoteAuthConfig};

/// Canonical names and aliases (strongSwan's and FreeS/WAN's names).
pub(super) const AUTH_FIELDS: &[(&str, &[&str])] = &[
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
        "pubkey" | "rsasig" | "rsa-sig" | "rsa" | "ecdsasig" | "ecdsa" | "cert" | "certificate"
        | "rsa-sig-cert" => Ok(AuthWord::Sig),
        _ => Err(format!(
            "\"{s}\": expected psk (secret), pubkey (certificates) or rsasig (RSA keys: certificates, or raw keys with leftrsasigkey/rightrsasigkey)"
        )),
    }
}

fn dn(v: &Value) -> Result<Vec<u8>, String> {
    let s = values::string(v)?;
    crate::config::dn::parse(&s).map_err(|e| {
        format!("{e}: write the CA's subject like \"C=CH, O=Example, CN=Example Root CA\"")
    })
}

/// The authentication fields of one block, each checked on its own.
pub(super) struct AuthFields {
    auth: Option<(AuthWord, Field)>,
    local_auth: Option<(AuthWord, Field)>,
    remote_auth: Option<(AuthWord, Field)>,
    local_cert: Option<(String, Field)>,
    local_key: Option<(String, Field)>,
    cacerts: Option<(Vec<String>, Field)>,
    crls: Option<(Vec<String>, Field)>,
    remote_ca: Option<(Vec<u8>, Field)>,
    local_rsasigkey: Option<(String, Field)>,
    remote_rsasigkey: Option<(String, Field)>,
    rsa_pss: bool,
}

impl AuthFields {
    /// No authentication field.
    pub(super) fn none() -> Self {
        AuthFields {
            auth: None,
            local_auth: None,
            remote_auth: None,
            local_cert: None,
            local_key: None,
            cacerts: None,
            crls: None,
            remote_ca: None,
            local_rsasigkey: None,
            remote_rsasigkey: None,
            rsa_pss: false,
        }
    }
}

impl Parse<'_> {
    /// Takes the authentication fields out of the block.
    pub(super) fn auth_fields(&mut self) -> AuthFields {
        AuthFields {
            auth: self.get_field("auth", auth_word),
            local_auth: self.get_field("local_auth", auth_word),
            remote_auth: self.get_field("remote_auth", auth_word),
            local_cert: self.get_field("local_cert", values::string),
            local_key: self.get_field("local_key", values::string),
            cacerts: self.get_field("cacerts", values::strings),
            crls: self.get_field("crls", values::strings),
            remote_ca: self.get_field("remote_ca", dn),
            local_rsasigkey: self.get_field("local_rsasigkey", values::string),
            remote_rsasigkey: self.get_field("remote_rsasigkey", values::string),
            rsa_pss: self.get("rsa_pss", values::boolean).unwrap_or(false),
        }
    }
}

impl Loader {
    fn origin(&self, at: &At, f: &Field, value: String) -> Origin {
        Origin {
            file: self.files[f.file].path.clone(),
            line: self.files[f.file].line(f.span.start),
            field: format!("{}.{}", at.ctx, f.written),
            value,
        }
    }

    fn located_path(&self, at: &At, f: &Field, name: &str) -> Located<PathBuf> {
        let p = Path::new(name);
        let value = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.files[f.file]
                .path
                .parent()
                .unwrap_or(Path::new("."))
                .join(p)
        };
        Located {
            value,
            at: self.origin(at, f, format!("{name:?}")),
        }
    }

    fn located_str(&self, at: &At, f: &Field, s: &str) -> Located<String> {
        Located {
            value: s.to_string(),
            at: self.origin(at, f, values::show(&f.value)),
        }
    }

    fn auth_err(&mut self, at: &At, f: Option<&Field>, default_field: &str, msg: &str) {
        match f {
            Some(f) => self.err(
                f.file,
                Some(&f.span),
                Some(format!("{}.{}", at.ctx, f.written)),
                Some(values::show(&f.value)),
                msg,
            ),
            None => at.err(self, default_field, None, msg),
        }
    }

    /// How each side authenticates and the files that needs. None after an
    /// error (reported).
    pub(super) fn connection_auth(&mut self, at: &At, a: AuthFields) -> Option<AuthConfig> {
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
        let mut local = LocalAuthConfig::Psk;
        if local_sig {
            let rsasigkey = a
                .local_rsasigkey
                .as_ref()
                .map(|(s, f)| self.located_str(at, f, s));
            match (&a.local_key, &a.local_cert) {
                (None, c) => {
                    let f = a
                        .local_auth
                        .as_ref()
                        .or(a.auth.as_ref())
                        .map(|(_, f)| f)
                        .or(c.as_ref().map(|(_, f)| f))
                        .cloned();
                    self.auth_err(at, f.as_ref(), "local_key", "signature authentication needs our private key: give local_key (leftkey) = \"FILE\" (PEM or DER, PKCS#8, PKCS#1 or SEC1, or an ipsec.secrets : RSA { } entry; mode 0600)");
                }
                (Some((k, kf)), Some((c, cf))) => {
                    local = LocalAuthConfig::Cert {
                        cert: self.located_path(at, cf, c),
                        key: self.located_path(at, kf, k),
                        rsasigkey,
                        rsa_pss: a.rsa_pss,
                    }
                }
                (Some((k, kf)), None) => {
                    local = LocalAuthConfig::RawKey {
                        key: self.located_path(at, kf, k),
                        rsasigkey,
                        rsa_pss: a.rsa_pss,
                    }
                }
            }
        } else if let Some((_, f)) = a.local_cert.as_ref().or(a.local_key.as_ref()) {
            let f = f.clone();
            self.auth_err(
                at,
                Some(&f),
                "local_cert",
                "given, but this side authenticates with a pre-shared key (local_auth/authby = psk)",
            );
        }
        // ---- the peer's side
        let remote_sig = match rw {
            Some(AuthWord::Psk) => false,
            Some(AuthWord::Sig) => true,
            None => a.remote_rsasigkey.is_some() || a.cacerts.is_some(),
        };
        let mut remote = RemoteAuthConfig::Psk;
        if remote_sig {
            if let Some((k, f)) = &a.remote_rsasigkey {
                remote = RemoteAuthConfig::RawKey {
                    key: self.located_str(at, f, k),
                };
            } else if let Some((names, f)) = &a.cacerts {
                let cacerts = names.iter().map(|n| self.located_path(at, f, n)).collect();
                let crls = a
                    .crls
                    .as_ref()
                    .map(|(ns, f)| ns.iter().map(|n| self.located_path(at, f, n)).collect())
                    .unwrap_or_default();
                let ca = a.remote_ca.as_ref().map(|(d, f)| Located {
                    value: d.clone(),
                    at: self.origin(at, f, values::show(&f.value)),
                });
                remote = RemoteAuthConfig::Cert { cacerts, crls, ca };
            } else {
                let f = a
                    .remote_auth
                    .as_ref()
                    .or(a.auth.as_ref())
                    .map(|(_, f)| f.clone());
                self.auth_err(at, f.as_ref(), "cacerts", "the peer authenticates with certificates: give cacerts = [\"FILE or DIR\", ...] (the CA certificates to trust), or rightrsasigkey for a raw RSA key");
            }
        } else if let Some(f) = a
            .remote_rsasigkey
            .as_ref()
            .map(|(_, f)| f)
            .or(a.cacerts.as_ref().map(|(_, f)| f))
            .cloned()
        {
            self.auth_err(
                at,
                Some(&f),
                "remote_rsasigkey",
                "given, but the peer authenticates with a pre-shared key (remote_auth/authby = psk)",
            );
        }
        (self.errors.len() == nerr).then_some(AuthConfig { local, remote })
    }
}

/// The bytes of every file an authentication configuration names (files of
/// named directories included, by name), for the reload digest: a renewed
/// certificate or a new CRL changes the connection.
pub(super) fn auth_file_bytes(a: &AuthConfig) -> zeroize::Zeroizing<Vec<u8>> {
    let mut paths: Vec<&Path> = Vec::new();
    match &a.local {
        LocalAuthConfig::Psk => {}
        LocalAuthConfig::Cert { cert, key, .. } => {
            paths.push(&cert.value);
            paths.push(&key.value);
        }
        LocalAuthConfig::RawKey { key, .. } => paths.push(&key.value),
    }
    if let RemoteAuthConfig::Cert { cacerts, crls, .. } = &a.remote {
        paths.extend(cacerts.iter().chain(crls).map(|l| l.value.as_path()));
    }
    let mut out = zeroize::Zeroizing::new(Vec::new());
    for p in paths {
        let mut files = vec![p.to_path_buf()];
        if p.is_dir() {
            files = std::fs::read_dir(p)
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            files.sort();
        }
        for f in files {
            out.extend_from_slice(f.to_string_lossy().as_bytes());
            if let Ok(b) = std::fs::read(&f).map(zeroize::Zeroizing::new) {
                out.extend_from_slice(&(b.len() as u64).to_le_bytes());
                out.extend_from_slice(&b);
            }
        }
    }
    out
}
