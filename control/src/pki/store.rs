//! A trust store (CA certificates and CRLs read from files or directories)
//! and certificate chain verification (RFC 5280 §6 as IKE needs it): every
//! signature, every validity period against the given clock, basicConstraints
//! cA and pathLenConstraint, keyUsage (keyCertSign for CAs, digitalSignature
//! or nonRepudiation for the end entity), unknown critical extensions, CRLs
//! of every issuer, and an optional required CA (`rightca`).

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use der::Decode;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::CrlReason;

use super::cert::{signed_parts, Certificate};
use super::key::SignatureScheme;
use super::{dn, malformed, show_time, PkiError};

/// Longest chain accepted (end entity, intermediates, trust anchor).
pub const MAX_CHAIN: usize = 8;

/// A certificate revocation list.
#[derive(Clone)]
pub struct Crl {
    issuer: Vec<u8>,
    this_update: SystemTime,
    next_update: Option<SystemTime>,
    /// (serial, date, reason name)
    revoked: Vec<(Vec<u8>, SystemTime, String)>,
    tbs: Vec<u8>,
    scheme: SignatureScheme,
    signature: Vec<u8>,
    aki: Option<Vec<u8>>,
}

impl std::fmt::Debug for Crl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Crl(\"{}\", {} revoked, this update {})",
            dn::display(&self.issuer),
            self.revoked.len(),
            show_time(self.this_update)
        )
    }
}

fn reason_name(r: CrlReason) -> &'static str {
    match r {
        CrlReason::Unspecified => "unspecified",
        CrlReason::KeyCompromise => "key compromise",
        CrlReason::CaCompromise => "CA compromise",
        CrlReason::AffiliationChanged => "affiliation changed",
        CrlReason::Superseded => "superseded",
        CrlReason::CessationOfOperation => "cessation of operation",
        CrlReason::CertificateHold => "certificate hold",
        CrlReason::RemoveFromCRL => "remove from CRL",
        CrlReason::PrivilegeWithdrawn => "privilege withdrawn",
        CrlReason::AaCompromise => "AA compromise",
    }
}

impl Crl {
    /// Parses one DER CRL.
    pub fn from_der(der: &[u8]) -> Result<Self, PkiError> {
        let c = CertificateList::from_der(der).map_err(|e| malformed("CRL", e))?;
        let (tbs, scheme, signature) = signed_parts(der)?;
        let t = &c.tbs_cert_list;
        let mut revoked = Vec::new();
        for r in t.revoked_certificates.as_deref().unwrap_or(&[]) {
            let mut reason = "unspecified".to_string();
            for e in r.crl_entry_extensions.as_deref().unwrap_or(&[]) {
                if e.extn_id == const_oid::db::rfc5280::ID_CE_CRL_REASONS {
                    if let Ok(x) = CrlReason::from_der(e.extn_value.as_bytes()) {
                        reason = reason_name(x).to_string();
                    }
                }
            }
            revoked.push((
                r.serial_number.as_bytes().to_vec(),
                r.revocation_date.to_system_time(),
                reason,
            ));
        }
        let mut aki = None;
        for e in t.crl_extensions.as_deref().unwrap_or(&[]) {
            if e.extn_id == const_oid::db::rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER {
                if let Ok(a) =
                    x509_cert::ext::pkix::AuthorityKeyIdentifier::from_der(e.extn_value.as_bytes())
                {
                    aki = a.key_identifier.map(|k| k.as_bytes().to_vec());
                }
            }
        }
        Ok(Crl {
            issuer: der::Encode::to_der(&t.issuer).map_err(|e| malformed("CRL issuer", e))?,
            this_update: t.this_update.to_system_time(),
            next_update: t.next_update.map(|n| n.to_system_time()),
            revoked,
            tbs,
            scheme,
            signature,
            aki,
        })
    }

    /// PEM (`X509 CRL` blocks) or DER.
    pub fn parse_all(b: &[u8]) -> Result<Vec<Self>, PkiError> {
        if let Some(t) = std::str::from_utf8(b)
            .ok()
            .filter(|t| t.contains("-----BEGIN"))
        {
            let mut out = Vec::new();
            for block in t.split_inclusive("-----END X509 CRL-----") {
                if let Some(s) = block.find("-----BEGIN") {
                    let (label, der) = der::pem::decode_vec(block[s..].trim_end().as_bytes())
                        .map_err(|e| malformed("PEM CRL", e))?;
                    if label == "X509 CRL" {
                        out.push(Self::from_der(&der)?);
                    }
                }
            }
            if out.is_empty() {
                return Err(malformed("PEM", "no X509 CRL block"));
            }
            return Ok(out);
        }
        Ok(vec![Self::from_der(b)?])
    }

    /// Issuer DN (DER).
    pub fn issuer(&self) -> &[u8] {
        &self.issuer
    }
    /// nextUpdate.
    pub fn next_update(&self) -> Option<SystemTime> {
        self.next_update
    }
}

/// A verified chain: end entity first, trust anchor last.
#[derive(Clone, Debug)]
pub struct VerifiedChain {
    /// The certificates.
    pub certs: Vec<Arc<Certificate>>,
}

impl VerifiedChain {
    /// The end entity.
    pub fn end_entity(&self) -> &Arc<Certificate> {
        &self.certs[0]
    }
}

/// CA certificates (trust anchors) and CRLs.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    cas: Vec<Arc<Certificate>>,
    crls: Vec<Crl>,
}

impl TrustStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a trust anchor; it must be a CA certificate.
    pub fn add_ca(&mut self, c: Arc<Certificate>) -> Result<(), PkiError> {
        if !c.is_ca() {
            return Err(PkiError::Constraint {
                subject: c.subject_str(),
                msg: "is not a CA certificate (basicConstraints cA is not set): it cannot be a trust anchor".into(),
            });
        }
        if !self.cas.iter().any(|x| x.der() == c.der()) {
            self.cas.push(c);
        }
        Ok(())
    }

    /// Adds the CA certificates of a file, or of every file in a directory.
    pub fn add_ca_path(&mut self, p: &Path) -> Result<usize, PkiError> {
        let mut n = 0;
        for f in files(p)? {
            for c in Certificate::load(&f)? {
                self.add_ca(c).map_err(|e| PkiError::File {
                    path: f.display().to_string(),
                    msg: e.to_string(),
                })?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Adds a CRL (its signature is checked when it is used, against its issuer).
    pub fn add_crl(&mut self, c: Crl) {
        self.crls.push(c);
    }

    /// Adds the CRLs of a file or of every file in a directory.
    pub fn add_crl_path(&mut self, p: &Path) -> Result<usize, PkiError> {
        let mut n = 0;
        for f in files(p)? {
            let b = std::fs::read(&f).map_err(|e| PkiError::File {
                path: f.display().to_string(),
                msg: e.to_string(),
            })?;
            for c in Crl::parse_all(&b).map_err(|e| PkiError::File {
                path: f.display().to_string(),
                msg: e.to_string(),
            })? {
                self.add_crl(c);
                n += 1;
            }
        }
        Ok(n)
    }

    /// The trust anchors.
    pub fn cas(&self) -> &[Arc<Certificate>] {
        &self.cas
    }

    /// Verifies `end` with the help of `untrusted` intermediates at time `now`;
    /// `required_ca` (a DN, wildcards allowed) must be the subject of one of the
    /// chain's CA certificates.
    pub fn verify(
        &self,
        end: &Arc<Certificate>,
        untrusted: &[Arc<Certificate>],
        now: SystemTime,
        required_ca: Option<&[u8]>,
    ) -> Result<VerifiedChain, PkiError> {
        if let Some(m) = &end.unknown_critical {
            return Err(PkiError::Constraint {
                subject: end.subject_str(),
                msg: m.clone(),
            });
        }
        if end.key_usage.is_some_and(|(ds, _, _)| !ds) {
            return Err(PkiError::Constraint {
                subject: end.subject_str(),
                msg: "keyUsage allows neither digitalSignature nor nonRepudiation".into(),
            });
        }
        end.check_validity(now)?;
        let mut chain = vec![end.clone()];
        let mut last_err = None;
        let r = self.extend(&mut chain, untrusted, now, &mut last_err)?;
        let Some(chain) = r else {
            return Err(last_err.unwrap_or_else(|| {
                let top = chain.last().unwrap_or(end);
                PkiError::Untrusted {
                    subject: top.subject_str(),
                    issuer: top.issuer_str(),
                }
            }));
        };
        if let Some(req) = required_ca {
            if !chain.iter().skip(1).any(|c| dn::matches(req, c.subject())) {
                return Err(PkiError::Constraint {
                    subject: end.subject_str(),
                    msg: format!(
                        "is not issued under the required CA \"{}\" (chain: {})",
                        dn::display(req),
                        chain
                            .iter()
                            .skip(1)
                            .map(|c| format!("\"{}\"", c.subject_str()))
                            .collect::<Vec<_>>()
                            .join(" <- ")
                    ),
                });
            }
        }
        // revocation: each certificate against its issuer's CRLs
        for w in chain.windows(2) {
            self.check_crls(&w[0], &w[1], now)?;
        }
        Ok(VerifiedChain { certs: chain })
    }

    /// Depth-first: tries trust anchors first, then intermediates.
    fn extend(
        &self,
        chain: &mut Vec<Arc<Certificate>>,
        untrusted: &[Arc<Certificate>],
        now: SystemTime,
        err: &mut Option<PkiError>,
    ) -> Result<Option<Vec<Arc<Certificate>>>, PkiError> {
        let Some(cur) = chain.last().cloned() else {
            return Ok(None);
        };
        // intermediates between cur and the end entity (for pathLen)
        let below = chain.len() - 1;
        for (anchor, c) in self
            .cas
            .iter()
            .map(|c| (true, c))
            .chain(untrusted.iter().map(|c| (false, c)))
        {
            if !cur.issued_by_name(c) || chain.iter().any(|x| x.der() == c.der()) {
                continue;
            }
            if let Err(e) = self.check_issuer(&cur, c, below, now) {
                *err = Some(e);
                continue;
            }
            chain.push(c.clone());
            if anchor {
                return Ok(Some(chain.clone()));
            }
            if chain.len() < MAX_CHAIN {
                if let Some(done) = self.extend(chain, untrusted, now, err)? {
                    return Ok(Some(done));
                }
            }
            chain.pop();
        }
        Ok(None)
    }

    /// May `issuer` have issued `cert`, with `below` intermediates under `issuer`?
    fn check_issuer(
        &self,
        cert: &Certificate,
        issuer: &Certificate,
        below: usize,
        now: SystemTime,
    ) -> Result<(), PkiError> {
        let subject = issuer.subject_str();
        if let Some(m) = &issuer.unknown_critical {
            return Err(PkiError::Constraint {
                subject,
                msg: m.clone(),
            });
        }
        match issuer.ca {
            Some((true, len)) => {
                if let Some(l) = len {
                    if below > usize::from(l) {
                        return Err(PkiError::Constraint {
                            subject,
                            msg: format!(
                                "pathLenConstraint {l} allows {l} intermediate CA(s) below it, the chain has {below}"
                            ),
                        });
                    }
                }
            }
            _ => {
                return Err(PkiError::Constraint {
                    subject,
                    msg: format!(
                        "is not a CA (basicConstraints cA not set) but issued \"{}\"",
                        cert.subject_str()
                    ),
                })
            }
        }
        if issuer.key_usage.is_some_and(|(_, cert_sign, _)| !cert_sign) {
            return Err(PkiError::Constraint {
                subject,
                msg: "keyUsage lacks keyCertSign: it may not issue certificates".into(),
            });
        }
        cert.verify_signed_by(issuer.public_key())?;
        issuer.check_validity(now)?;
        Ok(())
    }

    fn check_crls(
        &self,
        cert: &Certificate,
        issuer: &Certificate,
        now: SystemTime,
    ) -> Result<(), PkiError> {
        for crl in self.crls.iter().filter(|c| {
            c.issuer == issuer.subject()
                && match (&c.aki, issuer.ski()) {
                    (Some(a), Some(s)) => a == s,
                    _ => true,
                }
        }) {
            if issuer.key_usage.is_some_and(|(_, _, crl_sign)| !crl_sign) {
                continue;
            }
            if issuer
                .public_key()
                .verify(crl.scheme, &crl.tbs, &crl.signature)
                .is_err()
            {
                tracing::warn!(
                    "CRL of \"{}\" ignored: its signature does not verify with the issuer's key",
                    issuer.subject_str()
                );
                continue;
            }
            if crl.next_update.is_some_and(|n| n < now) {
                tracing::warn!(
                    "CRL of \"{}\" is out of date (next update {}), still used",
                    issuer.subject_str(),
                    crl.next_update.map(show_time).unwrap_or_default()
                );
            }
            if let Some((_, date, reason)) = crl.revoked.iter().find(|(s, _, _)| s == cert.serial())
            {
                if *date <= now {
                    return Err(PkiError::Revoked {
                        subject: cert.subject_str(),
                        serial: super::hex(cert.serial()),
                        issuer: issuer.subject_str(),
                        date: show_time(*date),
                        reason: reason.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

fn files(p: &Path) -> Result<Vec<std::path::PathBuf>, PkiError> {
    let err = |e: std::io::Error| PkiError::File {
        path: p.display().to_string(),
        msg: e.to_string(),
    };
    if p.is_dir() {
        let mut v: Vec<_> = std::fs::read_dir(p)
            .map_err(err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| f.is_file())
            .collect();
        v.sort();
        Ok(v)
    } else {
        std::fs::metadata(p).map_err(err)?;
        Ok(vec![p.to_path_buf()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn c(name: &str) -> Arc<Certificate> {
        let b = std::fs::read(format!(
            "{}/tests/fixtures/pki/{name}.crt.pem",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        Arc::new(Certificate::parse_all(&b).unwrap().remove(0))
    }
    /// 2027-06-01: inside every fixture's validity but the expired one's.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_811_808_000)
    }
    fn store(cas: &[&str]) -> TrustStore {
        let mut s = TrustStore::new();
        for n in cas {
            s.add_ca(c(n)).unwrap();
        }
        s
    }

    #[test]
    fn chains_verify_with_their_roots() {
        let s = store(&["rsa-ca", "ec-ca", "ossl-ca"]);
        for n in [
            "moon", "sun", "mars", "jupiter", "pluto", "saturn", "neptune",
        ] {
            let ch = s
                .verify(&c(n), &[], now(), None)
                .unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(ch.certs.len(), 2, "{n}");
        }
        let ch = s.verify(&c("venus"), &[c("rsa-int")], now(), None).unwrap();
        assert_eq!(ch.certs.len(), 3);
        // the intermediate is missing
        let e = s.verify(&c("venus"), &[], now(), None).unwrap_err();
        assert!(matches!(e, PkiError::Untrusted { .. }), "{e}");
        assert!(e.to_string().contains("RSA Intermediate CA"), "{e}");
        // required CA
        let root = dn::parse("C=CH, O=espresso test, CN=RSA Root CA").unwrap();
        s.verify(&c("venus"), &[c("rsa-int")], now(), Some(&root))
            .unwrap();
        let ec = dn::parse("C=CH, O=espresso test, CN=ECDSA Root CA").unwrap();
        let e = s
            .verify(&c("moon"), &[], now(), Some(&ec))
            .unwrap_err()
            .to_string();
        assert!(e.contains("required CA"), "{e}");
    }

    #[test]
    fn refusals_say_why() {
        let s = store(&["rsa-ca", "ec-ca", "ossl-ca"]);
        let e = s
            .verify(&c("mercury"), &[], now(), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not trusted") && e.contains("Other Root CA"),
            "{e}"
        );
        let e = s
            .verify(&c("expired"), &[], now(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("expired") && e.contains("2026-06-01"), "{e}");
        let early = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let e = s
            .verify(&c("moon"), &[], early, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid yet"), "{e}");
        // an end entity that signs certificates is not a CA
        let e = s
            .verify(&c("evil"), &[c("notca")], now(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a CA"), "{e}");
        assert!(TrustStore::new().add_ca(c("moon")).is_err());
    }

    #[test]
    fn crl_revokes() {
        let mut s = store(&["rsa-ca"]);
        let crl = std::fs::read(format!(
            "{}/tests/fixtures/pki/rsa-ca.crl.pem",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        for x in Crl::parse_all(&crl).unwrap() {
            s.add_crl(x);
        }
        s.verify(
            &c("revoked"),
            &[],
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000),
            None,
        )
        .expect("before the revocation date it still verifies");
        let e = s
            .verify(
                &c("revoked"),
                &[],
                now() + Duration::from_secs(86400 * 365),
                None,
            )
            .unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, PkiError::Revoked { .. }), "{m}");
        assert!(
            m.contains("revoked.example") && m.contains("0bad") && m.contains("key compromise"),
            "{m}"
        );
        s.verify(
            &c("moon"),
            &[],
            now() + Duration::from_secs(86400 * 365),
            None,
        )
        .unwrap();
    }
}
