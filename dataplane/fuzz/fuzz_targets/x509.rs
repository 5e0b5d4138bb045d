//! Certificate, CRL and key parsers (`control::pki::fuzz::parse`): X.509 DER
//! and PEM, CRLs, PKCS#8/PKCS#1/SEC1 private keys, SubjectPublicKeyInfo,
//! AlgorithmIdentifiers (RFC 7427), DN strings and DER names, FreeS/WAN RSA
//! keys (RFC 3110, ipsec.secrets entries); a parsed certificate also goes
//! through signature, identity and chain checks. Seeds: the fixtures made
//! with strongSwan's pki and OpenSSL (control/tests/fixtures/pki/).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    control::pki::fuzz::parse(data);
});
