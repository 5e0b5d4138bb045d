//! Certificates, keys and signatures for IKE authentication (RFC 7296 §2.15,
//! RFC 7427, RFC 4945 profile of RFC 5280).
//!
//! - [`cert`]: X.509 certificates (parsed with RustCrypto `x509-cert`/`der`,
//!   nothing hand-rolled in ASN.1): subject/issuer, validity, basicConstraints,
//!   keyUsage, subjectAltName, key identifiers, identity matching.
//! - [`dn`]: distinguished names in strongSwan's notation (`C=CH, O=.., CN=..`),
//!   to DER and back, and strongSwan's matching rules (`CN=*` wildcards).
//! - [`store`]: a trust store of CA certificates and CRLs; chain building and
//!   verification against an injected wall clock.
//! - [`key`]: private keys from PEM/DER files (PKCS#8, PKCS#1 RSA, SEC1 EC;
//!   0600 or stricter, zeroized, never shown) and public keys; signing and
//!   verification.
//! - [`rsakey`]: FreeS/WAN raw RSA public keys (`leftrsasigkey=0s...`, RFC 3110)
//!   and the `ipsec.secrets` `: RSA {...}` form.
//!
//! # Which library signs
//!
//! Every signature operation (RSA PKCS#1 v1.5 and PSS, ECDSA P-256/P-384,
//! Ed25519; signing and verification) and RSA key generation use **aws-lc-rs**,
//! already a dependency of the dataplane. Its RSA private-key operations are
//! constant time and blinded. The RustCrypto `rsa` crate, the alternative that
//! would match the RustCrypto code elsewhere in IKE, carries RUSTSEC-2023-0071
//! (the Marvin timing attack on private-key operations, key recovery by a
//! network attacker who can trigger signatures — which an IKE responder lets
//! anyone do): not acceptable for a gateway's long-term key. RustCrypto is used
//! only to *parse* DER (certificates, CRLs, key files, AlgorithmIdentifiers),
//! which involves no secret-dependent timing worth the name, and the aws-lc-rs
//! key objects are built from the parsed DER.
//!
//! aws-lc-rs offers no API for two legacy RSA encodings that IKE still meets:
//! PKCS#1 v1.5 over SHA-1 (IKEv2 AUTH method 1, for peers without RFC 7427)
//! and the digest-less PKCS#1 v1.5 block of IKEv1 RSA signatures. For those,
//! [`key`] builds the EMSA-PKCS1-v1_5 block itself (RFC 8017 §9.2) and runs the
//! RSA private operation with crypto-bigint's constant-time Montgomery
//! exponentiation (the same code that does MODP Diffie-Hellman), without CRT
//! (no Bellcore fault attack); every such signature is verified before it is
//! returned (aws-lc-rs for SHA-1, the public operation for the digest-less
//! form). The tests check the raw operation byte for byte against aws-lc-rs's
//! deterministic PKCS#1 v1.5 SHA-256 signatures on random keys and messages.

pub mod cert;
pub mod dn;
#[cfg(any(fuzzing, test))]
pub mod fuzz;
pub mod key;
mod keyfile;
mod rsa_legacy;
pub mod rsakey;
pub mod store;

use thiserror::Error;

pub use cert::Certificate;
pub use key::{Hash, KeyKind, PrivateKey, PublicKey, SignatureScheme};
pub use store::{Crl, TrustStore, VerifiedChain};

/// Why a certificate, key or signature was refused. The messages name the
/// certificate (subject DN) or file and say what is wrong, for the log.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PkiError {
    /// A file could not be read.
    #[error("{path}: {msg}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        msg: String,
    },
    /// A key file is readable by others than its owner.
    #[error("{path}: mode {mode:04o} is too open for a private key (run: chmod 600 {path})")]
    Permissions {
        /// The file.
        path: String,
        /// Its mode bits.
        mode: u32,
    },
    /// Bytes that are not a certificate, key or CRL of a supported kind.
    #[error("{what}: {msg}")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// Why it failed.
        msg: String,
    },
    /// A key type or size, or a signature algorithm, that is not supported.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A signature did not verify.
    #[error("signature does not verify: {0}")]
    BadSignature(String),
    /// No trusted CA issued the certificate (or a chain to one is missing).
    #[error("certificate \"{subject}\" is not trusted: no trusted CA certificate for its issuer \"{issuer}\"")]
    Untrusted {
        /// Subject of the certificate that has no trusted issuer.
        subject: String,
        /// Its issuer.
        issuer: String,
    },
    /// Outside its validity period.
    #[error("certificate \"{subject}\" {state} ({when}; now {now})")]
    Validity {
        /// Subject.
        subject: String,
        /// "expired" or "is not valid yet".
        state: &'static str,
        /// notAfter or notBefore.
        when: String,
        /// The clock used.
        now: String,
    },
    /// Listed in a CRL.
    #[error("certificate \"{subject}\" (serial {serial}) is revoked by the CRL of \"{issuer}\" since {date} (reason: {reason})")]
    Revoked {
        /// Subject.
        subject: String,
        /// Serial number (hex).
        serial: String,
        /// CRL issuer.
        issuer: String,
        /// Revocation date.
        date: String,
        /// Reason code name.
        reason: String,
    },
    /// A certificate used as a CA that may not be one, or a constraint broken.
    #[error("certificate \"{subject}\": {msg}")]
    Constraint {
        /// Subject of the offending certificate.
        subject: String,
        /// What is violated.
        msg: String,
    },
}

fn malformed(what: &'static str, e: impl std::fmt::Display) -> PkiError {
    PkiError::Malformed {
        what,
        msg: e.to_string(),
    }
}

/// A wall-clock time as `YYYY-MM-DD HH:MM:SS UTC` for messages.
pub fn show_time(t: std::time::SystemTime) -> String {
    match der::DateTime::from_system_time(t) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            d.year(),
            d.month(),
            d.day(),
            d.hour(),
            d.minutes(),
            d.seconds()
        ),
        Err(_) => format!("{t:?}"),
    }
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    hex::encode(b)
}
