//! How each side of a connection authenticates (strongSwan's `local.auth` /
//! `remote.auth`, FreeS/WAN's `authby`): a pre-shared key, a public key with
//! an X.509 certificate, or a raw public key configured on the other side
//! (`leftrsasigkey`/`rightrsasigkey`). And the wall clock certificates are
//! checked against (injected, so that tests run at any date).

use std::sync::Arc;
use std::time::SystemTime;

use crate::pki::{Certificate, PrivateKey, PublicKey, TrustStore};

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
