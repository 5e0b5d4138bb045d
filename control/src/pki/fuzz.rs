//! The fuzz entry point of the certificate, CRL and key parsers (`cargo fuzz
//! run x509`, in dataplane/fuzz): built for fuzzing (`cfg(fuzzing)`) and
//! tests, not into the daemon.

use super::{dn, rsakey, Certificate, Crl, PrivateKey, PublicKey, SignatureScheme, TrustStore};

/// Fuzz entry point for every parser of this module: certificates (DER and
/// PEM), CRLs, private and public keys, AlgorithmIdentifiers, DNs, FreeS/WAN
/// RSA keys. Never panics, whatever the input.
pub fn parse(data: &[u8]) {
    if let Ok(c) = Certificate::from_der(data) {
        let _ = (c.subject_str(), c.issuer_str(), c.fingerprint());
        let _ = c.verify_signed_by(c.public_key());
        let _ = c.check_validity(std::time::SystemTime::UNIX_EPOCH);
        for id in ["192.0.2.1", "@a.example", "a@b.example", "C=CH, CN=*"] {
            if let Ok(i) = id.parse::<espresso_core::config::ike::Identity>() {
                let _ = c.has_identity(&i);
            }
        }
        let mut t = TrustStore::new();
        let c = std::sync::Arc::new(c);
        let _ = t.add_ca(c.clone());
        let _ = t.verify(
            &c,
            std::slice::from_ref(&c),
            std::time::SystemTime::UNIX_EPOCH,
            Some(data),
        );
    }
    let _ = Certificate::parse_all(data);
    if let Ok(crls) = Crl::parse_all(data) {
        for c in crls {
            let _ = (c.issuer().len(), c.next_update());
        }
    }
    let _ = PrivateKey::from_bytes(data);
    let _ = PublicKey::from_spki_der(data);
    let _ = SignatureScheme::from_algorithm_identifier_der(data);
    let _ = rsakey::from_rfc3110(data);
    let _ = dn::display(data);
    let _ = dn::matches(data, data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = dn::parse(s);
        let _ = rsakey::parse_public(s);
        let _ = rsakey::parse_secrets_entry(s);
        let _ = dn::looks_like_dn(s);
    }
}
