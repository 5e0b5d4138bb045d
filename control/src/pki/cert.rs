//! X.509 certificates (RFC 5280 as profiled for IKE by RFC 4945): what the
//! verifier and the IKE engine need, read once with `x509-cert`.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use const_oid::db::rfc5280 as ext_oid;
use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectAltName, SubjectKeyIdentifier,
};

use super::key::{PublicKey, SignatureScheme};
use super::{dn, malformed, PkiError};

/// The raw parts of a signed structure (certificate or CRL): the exact
/// to-be-signed bytes, the algorithm and the signature.
#[derive(der::Sequence)]
struct Signed<'a> {
    tbs: der::asn1::AnyRef<'a>,
    alg: spki::AlgorithmIdentifierRef<'a>,
    sig: der::asn1::BitStringRef<'a>,
}

/// `(tbs DER, scheme, signature)` of a signed structure.
pub(crate) fn signed_parts(der: &[u8]) -> Result<(Vec<u8>, SignatureScheme, Vec<u8>), PkiError> {
    let s = Signed::from_der(der).map_err(|e| malformed("signed structure", e))?;
    let tbs = s.tbs.to_der().map_err(|e| malformed("tbs", e))?;
    let scheme = SignatureScheme::from_algorithm_identifier(&s.alg)?;
    let sig = s
        .sig
        .as_bytes()
        .ok_or_else(|| malformed("signature", "unused bits"))?
        .to_vec();
    Ok((tbs, scheme, sig))
}

/// One certificate, with the fields used for chain building and identities.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    serial: Vec<u8>,
    not_before: SystemTime,
    not_after: SystemTime,
    public_key: PublicKey,
    tbs: Vec<u8>,
    sig_scheme: SignatureScheme,
    signature: Vec<u8>,
    /// basicConstraints: (cA, pathLenConstraint).
    pub(crate) ca: Option<(bool, Option<u8>)>,
    /// keyUsage bits, if present: (digitalSignature or nonRepudiation, keyCertSign, cRLSign).
    pub(crate) key_usage: Option<(bool, bool, bool)>,
    ski: Option<Vec<u8>>,
    aki: Option<Vec<u8>>,
    san_dns: Vec<String>,
    san_ip: Vec<IpAddr>,
    san_email: Vec<String>,
    /// A critical extension we do not understand (the certificate is then refused).
    pub(crate) unknown_critical: Option<String>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Certificate(\"{}\", issuer \"{}\", {})",
            self.subject_str(),
            self.issuer_str(),
            self.fingerprint()
        )
    }
}

impl PartialEq for Certificate {
    fn eq(&self, o: &Self) -> bool {
        self.der == o.der
    }
}
impl Eq for Certificate {}

impl Certificate {
    /// Parses one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, PkiError> {
        let c =
            x509_cert::Certificate::from_der(der).map_err(|e| malformed("X.509 certificate", e))?;
        let (tbs, sig_scheme, signature) = signed_parts(der)?;
        let t = &c.tbs_certificate;
        let enc = |n: &x509_cert::name::Name| n.to_der().map_err(|e| malformed("X.509 name", e));
        let mut me = Certificate {
            der: der.to_vec(),
            subject: enc(&t.subject)?,
            issuer: enc(&t.issuer)?,
            serial: t.serial_number.as_bytes().to_vec(),
            not_before: t.validity.not_before.to_system_time(),
            not_after: t.validity.not_after.to_system_time(),
            public_key: PublicKey::from_spki(&t.subject_public_key_info)?,
            tbs,
            sig_scheme,
            signature,
            ca: None,
            key_usage: None,
            ski: None,
            aki: None,
            san_dns: Vec::new(),
            san_ip: Vec::new(),
            san_email: Vec::new(),
            unknown_critical: None,
        };
        for e in t.extensions.as_deref().unwrap_or(&[]) {
            let v = e.extn_value.as_bytes();
            let bad = |what: &'static str| move |err: der::Error| malformed(what, err);
            match e.extn_id {
                o if o == ext_oid::ID_CE_BASIC_CONSTRAINTS => {
                    let b = BasicConstraints::from_der(v).map_err(bad("basicConstraints"))?;
                    me.ca = Some((b.ca, b.path_len_constraint));
                }
                o if o == ext_oid::ID_CE_KEY_USAGE => {
                    let k = KeyUsage::from_der(v).map_err(bad("keyUsage"))?;
                    me.key_usage = Some((
                        k.digital_signature() || k.non_repudiation(),
                        k.key_cert_sign(),
                        k.crl_sign(),
                    ));
                }
                o if o == ext_oid::ID_CE_SUBJECT_ALT_NAME => {
                    let s = SubjectAltName::from_der(v).map_err(bad("subjectAltName"))?;
                    for n in s.0 {
                        match n {
                            GeneralName::DnsName(d) => me.san_dns.push(d.to_string()),
                            GeneralName::Rfc822Name(m) => me.san_email.push(m.to_string()),
                            GeneralName::IpAddress(ip) => {
                                let b = ip.as_bytes();
                                if let Ok(a) = <[u8; 4]>::try_from(b) {
                                    me.san_ip.push(IpAddr::from(a));
                                } else if let Ok(a) = <[u8; 16]>::try_from(b) {
                                    me.san_ip.push(IpAddr::from(a));
                                }
                            }
                            _ => {}
                        }
                    }
                }
                o if o == ext_oid::ID_CE_SUBJECT_KEY_IDENTIFIER => {
                    let s =
                        SubjectKeyIdentifier::from_der(v).map_err(bad("subjectKeyIdentifier"))?;
                    me.ski = Some(s.0.as_bytes().to_vec());
                }
                o if o == ext_oid::ID_CE_AUTHORITY_KEY_IDENTIFIER => {
                    let a = AuthorityKeyIdentifier::from_der(v)
                        .map_err(bad("authorityKeyIdentifier"))?;
                    me.aki = a.key_identifier.map(|k| k.as_bytes().to_vec());
                }
                o if e.critical
                    && o != ext_oid::ID_CE_EXT_KEY_USAGE
                    && o != ext_oid::ID_CE_CERTIFICATE_POLICIES =>
                {
                    me.unknown_critical = Some(format!("critical extension {o} is not supported"));
                }
                _ => {}
            }
        }
        Ok(me)
    }

    /// Parses PEM text (one or more `CERTIFICATE` blocks) or one DER certificate.
    pub fn parse_all(b: &[u8]) -> Result<Vec<Self>, PkiError> {
        let text = std::str::from_utf8(b).ok();
        if let Some(t) = text.filter(|t| t.contains("-----BEGIN")) {
            let mut out = Vec::new();
            let mut rest = t;
            while let Some(start) = rest.find("-----BEGIN") {
                let block = &rest[start..];
                let end_marker = block
                    .find("-----END")
                    .and_then(|e| block[e + 8..].find("-----").map(|x| e + 8 + x + 5))
                    .ok_or_else(|| malformed("PEM", "BEGIN without END"))?;
                let (label, der) = der::pem::decode_vec(&block.as_bytes()[..end_marker])
                    .map_err(|e| malformed("PEM certificate", e))?;
                if label == "CERTIFICATE" || label == "X509 CERTIFICATE" {
                    out.push(Self::from_der(&der)?);
                }
                rest = &block[end_marker..];
            }
            if out.is_empty() {
                return Err(malformed("PEM", "no CERTIFICATE block"));
            }
            return Ok(out);
        }
        Ok(vec![Self::from_der(b)?])
    }

    /// Reads a certificate file (PEM with one or more certificates, or DER).
    pub fn load(path: &Path) -> Result<Vec<Arc<Self>>, PkiError> {
        let b = std::fs::read(path).map_err(|e| PkiError::File {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        Self::parse_all(&b)
            .map(|v| v.into_iter().map(Arc::new).collect())
            .map_err(|e| PkiError::File {
                path: path.display().to_string(),
                msg: e.to_string(),
            })
    }

    /// The DER encoding (what a CERT payload carries).
    pub fn der(&self) -> &[u8] {
        &self.der
    }
    /// Subject DN (DER).
    pub fn subject(&self) -> &[u8] {
        &self.subject
    }
    /// Issuer DN (DER).
    pub fn issuer(&self) -> &[u8] {
        &self.issuer
    }
    /// Subject in strongSwan notation.
    pub fn subject_str(&self) -> String {
        dn::display(&self.subject)
    }
    /// Issuer in strongSwan notation.
    pub fn issuer_str(&self) -> String {
        dn::display(&self.issuer)
    }
    /// Serial number bytes.
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }
    /// notBefore.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }
    /// notAfter.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }
    /// The subject's public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
    /// subjectKeyIdentifier.
    pub fn ski(&self) -> Option<&[u8]> {
        self.ski.as_deref()
    }
    /// authorityKeyIdentifier keyIdentifier.
    pub fn aki(&self) -> Option<&[u8]> {
        self.aki.as_deref()
    }
    /// subjectAltName dNSName entries.
    pub fn san_dns(&self) -> &[String] {
        &self.san_dns
    }
    /// subjectAltName iPAddress entries.
    pub fn san_ip(&self) -> &[IpAddr] {
        &self.san_ip
    }
    /// subjectAltName rfc822Name entries.
    pub fn san_email(&self) -> &[String] {
        &self.san_email
    }
    /// A CA certificate (basicConstraints cA).
    pub fn is_ca(&self) -> bool {
        matches!(self.ca, Some((true, _)))
    }
    /// Self-issued (subject = issuer).
    pub fn is_self_issued(&self) -> bool {
        self.subject == self.issuer
    }
    /// SHA-256 fingerprint (first 16 hex digits) for logs.
    pub fn fingerprint(&self) -> String {
        let d = Sha256::digest(&self.der);
        format!("sha256:{}", super::hex(&d[..8]))
    }

    /// Checks that `issuer`'s key signed this certificate.
    pub fn verify_signed_by(&self, issuer: &PublicKey) -> Result<(), PkiError> {
        issuer
            .verify(self.sig_scheme, &self.tbs, &self.signature)
            .map_err(|e| {
                PkiError::BadSignature(format!("certificate \"{}\": {e}", self.subject_str()))
            })
    }

    /// Could `issuer` have issued this certificate (names and key ids agree)?
    pub fn issued_by_name(&self, issuer: &Certificate) -> bool {
        self.issuer == issuer.subject
            && match (self.aki(), issuer.ski()) {
                (Some(a), Some(s)) => a == s,
                _ => true,
            }
    }

    /// The validity period holds at `now`.
    pub fn check_validity(&self, now: SystemTime) -> Result<(), PkiError> {
        if now < self.not_before {
            return Err(PkiError::Validity {
                subject: self.subject_str(),
                state: "is not valid yet",
                when: format!("not before {}", super::show_time(self.not_before)),
                now: super::show_time(now),
            });
        }
        if now > self.not_after {
            return Err(PkiError::Validity {
                subject: self.subject_str(),
                state: "expired",
                when: format!("not after {}", super::show_time(self.not_after)),
                now: super::show_time(now),
            });
        }
        Ok(())
    }

    /// Does the certificate hold this identity (RFC 4945 §3.1, strongSwan's
    /// rules)? An IP address or FQDN or e-mail must be a subjectAltName of
    /// that kind; a DN must match the subject (wildcards allowed in `want`);
    /// a key id must be the subjectKeyIdentifier or SHA-1 of the public key.
    pub fn has_identity(&self, want: &espresso_core::config::ike::Identity) -> bool {
        use espresso_core::config::ike::Identity as I;
        match want {
            I::Ipv4(a) => self.san_ip.contains(&IpAddr::V4(*a)),
            I::Ipv6(a) => self.san_ip.contains(&IpAddr::V6(*a)),
            I::Fqdn(f) => self.san_dns.iter().any(|d| d.eq_ignore_ascii_case(f)),
            I::Email(m) => self.san_email.iter().any(|d| d.eq_ignore_ascii_case(m)),
            I::Dn(d) => dn::matches(d, &self.subject),
            I::KeyId(k) => {
                self.ski.as_deref() == Some(k.as_slice()) || self.public_key.key_id()[..] == k[..]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn cert(name: &str) -> Certificate {
        let b = std::fs::read(format!(
            "{}/tests/fixtures/pki/{name}.crt.pem",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        Certificate::parse_all(&b).unwrap().remove(0)
    }

    #[test]
    fn fields_of_pki_and_openssl_certificates() {
        let moon = cert("moon");
        assert_eq!(moon.subject_str(), "C=CH, O=espresso test, CN=moon.example");
        assert_eq!(moon.issuer_str(), "C=CH, O=espresso test, CN=RSA Root CA");
        assert_eq!(moon.san_dns(), ["moon.example"]);
        assert_eq!(moon.san_ip(), ["192.0.2.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(moon.san_email(), ["moon@example.org"]);
        assert!(!moon.is_ca());
        let ca = cert("rsa-ca");
        assert!(ca.is_ca() && ca.is_self_issued());
        assert!(moon.issued_by_name(&ca));
        moon.verify_signed_by(ca.public_key()).unwrap();
        cert("sun").verify_signed_by(ca.public_key()).unwrap(); // RSASSA-PSS
        assert!(moon.verify_signed_by(cert("ec-ca").public_key()).is_err());
        let int = cert("rsa-int");
        assert_eq!(int.ca, Some((true, Some(0))));
        cert("pluto")
            .verify_signed_by(cert("ec-ca").public_key())
            .unwrap();
        let ossl = cert("ossl-ca");
        cert("saturn").verify_signed_by(ossl.public_key()).unwrap();
        cert("neptune").verify_signed_by(ossl.public_key()).unwrap();
        assert_eq!(cert("saturn").key_usage, Some((true, false, false)));
        // Debug never dumps the certificate
        assert!(format!("{moon:?}").contains("moon.example"));
    }

    #[test]
    fn identities() {
        use espresso_core::config::ike::Identity;
        let moon = cert("moon");
        for id in [
            "192.0.2.1",
            "@moon.example",
            "moon@example.org",
            "C=CH, O=espresso test, CN=moon.example",
            "C=CH, O=espresso test, CN=*",
        ] {
            let i: Identity = id.parse().unwrap();
            assert!(moon.has_identity(&i), "{id}");
        }
        for id in [
            "192.0.2.2",
            "@sun.example",
            "C=CH, O=espresso test, CN=sun.example",
        ] {
            let i: Identity = id.parse().unwrap();
            assert!(!moon.has_identity(&i), "{id}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Certificate::from_der(&[0x30, 0x03, 1, 2, 3]).is_err());
        assert!(Certificate::parse_all(b"-----BEGIN CERTIFICATE-----\nAAAA\n").is_err());
        let mut d = cert("moon").der().to_vec();
        let n = d.len();
        d[n - 5] ^= 0xff; // inside the signature
        let c = Certificate::from_der(&d).unwrap();
        assert!(c.verify_signed_by(cert("rsa-ca").public_key()).is_err());
    }
}
