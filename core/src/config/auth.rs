//! How each side of a connection authenticates, as configured (strongSwan's
//! `local.auth`/`remote.auth`, FreeS/WAN's `authby`): a pre-shared key, a
//! private key with an X.509 certificate, or a raw RSA key the other side has
//! configured (`leftrsasigkey`/`rightrsasigkey`). This is the model only:
//! file paths, key strings and DNs with where they were written. The control
//! process loads and checks the files (`control::pki`) and reports problems
//! at the [`Origin`] of the value.

use std::fmt;
use std::path::PathBuf;

/// Where a value was written: for errors found after loading (a key file
/// that does not parse, a certificate of another key).
#[derive(Clone, PartialEq, Eq)]
pub struct Origin {
    /// The configuration file.
    pub file: PathBuf,
    /// 1-based line of the field.
    pub line: usize,
    /// The field as written, with its block: `connection[c].leftcert`.
    pub field: String,
    /// The value as written (never a secret: these are paths and public keys).
    pub value: String,
}

// Not part of a connection's identity: the reload digest uses `Debug` and a
// value that moved to another line is the same value.
impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("_")
    }
}

/// A value with where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located<T> {
    /// The value (paths resolved against the directory of their file).
    pub value: T,
    /// Where it was written.
    pub at: Origin,
}

/// How we prove who we are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LocalAuthConfig {
    /// The connection's pre-shared key (AUTH method 2).
    #[default]
    Psk,
    /// A private key and its certificate (`leftcert`, `leftkey`): the file
    /// may hold intermediates after the end-entity certificate.
    Cert {
        /// Certificate file (PEM or DER).
        cert: Located<PathBuf>,
        /// Private key file (PEM/DER PKCS#8, PKCS#1, SEC1, or an
        /// ipsec.secrets `: RSA { }` entry), mode 0600.
        key: Located<PathBuf>,
        /// Our raw public key as also written (`leftrsasigkey`): must be the key's.
        rsasigkey: Option<Located<String>>,
        /// Sign with RSASSA-PSS rather than PKCS#1 v1.5 (RSA keys).
        rsa_pss: bool,
    },
    /// A private key whose public key the peer has configured (authby=rsasig,
    /// no certificate).
    RawKey {
        /// Private key file, as for `Cert`.
        key: Located<PathBuf>,
        /// Our raw public key as also written (`leftrsasigkey`): must be the key's.
        rsasigkey: Option<Located<String>>,
        /// Sign with RSASSA-PSS rather than PKCS#1 v1.5.
        rsa_pss: bool,
    },
}

/// What the peer must prove.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RemoteAuthConfig {
    /// The connection's pre-shared key.
    #[default]
    Psk,
    /// A signature with the key of a certificate that chains to one of
    /// `cacerts` (files or directories), not revoked by `crls`; with `ca`,
    /// to that CA (strongSwan's `rightca`).
    Cert {
        /// CA certificate files or directories.
        cacerts: Vec<Located<PathBuf>>,
        /// CRL files or directories.
        crls: Vec<Located<PathBuf>>,
        /// Required CA subject (DER; `*` values allowed).
        ca: Option<Located<Vec<u8>>>,
    },
    /// A signature with this raw public key (`rightrsasigkey`: `0s...`
    /// RFC 3110, `0x...`, or a PEM/DER SubjectPublicKeyInfo).
    RawKey {
        /// The key as written.
        key: Located<String>,
    },
}

impl LocalAuthConfig {
    /// `psk`, `pubkey` or `rsasig` (the auth method's configuration name).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Psk => "psk",
            Self::Cert { .. } => "pubkey",
            Self::RawKey { .. } => "rsasig",
        }
    }
}

impl RemoteAuthConfig {
    /// `psk`, `pubkey` or `rsasig`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Psk => "psk",
            Self::Cert { .. } => "pubkey",
            Self::RawKey { .. } => "rsasig",
        }
    }
}

/// Both sides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// How we authenticate.
    pub local: LocalAuthConfig,
    /// How the peer must authenticate.
    pub remote: RemoteAuthConfig,
}

impl AuthConfig {
    /// Either side uses the pre-shared key.
    pub fn uses_psk(&self) -> bool {
        self.local == LocalAuthConfig::Psk || self.remote == RemoteAuthConfig::Psk
    }
}
