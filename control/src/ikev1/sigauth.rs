//! IKEv1 authentication with RSA signatures (RFC 2409 §5.1): the SIG
//! payload is the RSA private-key operation on the PKCS#1 v1.5 type-1
//! block of HASH_I / HASH_R itself, without a DigestInfo (strongSwan's
//! `SIGN_RSA_EMSA_PKCS1_NULL`, Libreswan's and FreeS/WAN's RSA-sig); the
//! CERT (6) and CERTREQ (7) payloads of RFC 2408 §3.9/§3.10, where a
//! CERTREQ names a CA by its subject DN (not IKEv2's key hashes). The
//! certificate checks (trust store, CRLs, validity, identity against the
//! subject DN and subjectAltNames) are the PKI's, shared with IKEv2.

use std::sync::Arc;
use std::time::SystemTime;

use crate::ike::auth_config::{LocalAuth, RemoteAuth};
use crate::ike::sigauth::PeerAuth;
use crate::ike::Identity;
use crate::pki::{dn, Certificate, SignatureScheme};

use super::config::Connection;
use super::wire::CertView;

/// CERT / CERTREQ encoding: X.509 Certificate - Signature.
pub const CERT_X509_SIGNATURE: u8 = 4;

/// The CERTREQ payload bodies we send: one per CA we accept the peer's
/// certificate from (the required CA's only, when `remote_ca` names one we
/// have), each encoding 4 and the CA's subject DN (RFC 2408 §3.10).
pub fn certreq_bodies(remote: &RemoteAuth) -> Vec<Vec<u8>> {
    let RemoteAuth::Cert { trust, ca } = remote else {
        return Vec::new();
    };
    let all = trust.cas();
    let pick: Vec<_> = match ca {
        Some(want) if all.iter().any(|c| dn::matches(want, c.subject())) => all
            .iter()
            .filter(|c| dn::matches(want, c.subject()))
            .collect(),
        _ => all.iter().collect(),
    };
    pick.iter()
        .map(|c| {
            let mut v = vec![CERT_X509_SIGNATURE];
            v.extend_from_slice(c.subject());
            v
        })
        .collect()
}

/// The CA names of the peer's X.509 CERTREQ payloads (empty names are
/// "any CA").
pub fn requested_cas<'a>(reqs: &[CertView<'a>]) -> Vec<&'a [u8]> {
    reqs.iter()
        .filter(|r| r.encoding == CERT_X509_SIGNATURE && !r.data.is_empty())
        .map(|r| r.data)
        .collect()
}

/// The CERT payload bodies we send: our end entity, then intermediates up
/// to the first one whose issuer the peer named in a CERTREQ (all of them
/// when it named none of ours).
pub fn cert_bodies(local: &LocalAuth, requested: &[&[u8]]) -> Vec<Vec<u8>> {
    let LocalAuth::Cert { chain, .. } = local else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for c in chain.iter() {
        let mut v = vec![CERT_X509_SIGNATURE];
        v.extend_from_slice(c.der());
        out.push(v);
        if requested.iter().any(|r| dn::matches(r, c.issuer())) {
            break;
        }
    }
    out
}

/// Our identity: the configured one, else our certificate's subject DN,
/// else our address (`ip`).
pub fn local_identity(conn: &Connection, ip: std::net::IpAddr) -> Identity {
    conn.local_id
        .clone()
        .or_else(|| {
            conn.local_auth
                .cert()
                .map(|c| Identity::Dn(c.subject().to_vec()))
        })
        .unwrap_or_else(|| Identity::from_ip(ip))
}

/// SIG_I / SIG_R: our signature of HASH_I / HASH_R.
pub fn sign(local: &LocalAuth, hash: &[u8]) -> Result<Vec<u8>, String> {
    let Some((key, _)) = local.key() else {
        return Err("the connection authenticates with a pre-shared key".into());
    };
    key.sign(SignatureScheme::RsaPkcs1Raw, hash)
        .map_err(|e| format!("signing HASH with our key: {e}"))
}

/// What the peer sent to authenticate with (main mode MM5/MM6, aggressive
/// mode AM2/AM3).
pub struct PeerSig<'a> {
    /// Its identity (None: a type we do not handle).
    pub peer_id: Option<&'a Identity>,
    /// ID type, for messages.
    pub id_type: u8,
    /// CERT payloads.
    pub certs: &'a [CertView<'a>],
    /// SIG payload data.
    pub sig: &'a [u8],
    /// HASH_I or HASH_R as we compute it for the peer.
    pub hash: &'a [u8],
    /// Wall clock for certificate validity.
    pub now: SystemTime,
}

/// Checks the peer's signature against a connection: its certificate
/// chains to a trusted CA (the required one with `remote_ca`), is valid
/// now, is not revoked, confirms the peer's identity, and its key (or the
/// configured raw key) verifies SIG over HASH. The error is the reason for
/// the log.
pub fn verify_peer(conn: &Connection, p: &PeerSig<'_>) -> Result<PeerAuth, String> {
    let peer = || {
        p.peer_id
            .map(|i| i.to_string())
            .unwrap_or_else(|| format!("(ID type {})", p.id_type))
    };
    if let Some(want) = &conn.remote_id {
        if !p.peer_id.is_some_and(|g| want.matches(g)) {
            return Err(format!(
                "peer identity {} is not the configured {want}",
                peer()
            ));
        }
    }
    match &conn.remote_auth {
        RemoteAuth::Psk => Err(format!(
            "connection {:?} expects a pre-shared key, the peer signed",
            conn.name
        )),
        RemoteAuth::Cert { trust, ca } => {
            let mut x509 = p.certs.iter().filter(|c| c.encoding == CERT_X509_SIGNATURE);
            let Some(first) = x509.next() else {
                return Err(
                    "peer sent no X.509 certificate (CERT payload) to check its signature with"
                        .into(),
                );
            };
            let end = Arc::new(
                Certificate::from_der(first.data).map_err(|e| format!("peer certificate: {e}"))?,
            );
            let mut ints = Vec::new();
            for c in x509 {
                ints.push(Arc::new(
                    Certificate::from_der(c.data)
                        .map_err(|e| format!("peer intermediate certificate: {e}"))?,
                ));
            }
            trust
                .verify(&end, &ints, p.now, ca.as_deref())
                .map_err(|e| e.to_string())?;
            match p.peer_id {
                Some(id) if end.has_identity(id) => {}
                Some(id) => {
                    return Err(format!(
                        "peer identity {id} is not confirmed by its certificate \"{}\"",
                        end.subject_str()
                    ))
                }
                None => {
                    return Err(format!(
                        "peer identity of an unsupported type {}",
                        p.id_type
                    ))
                }
            }
            end.public_key()
                .verify(SignatureScheme::RsaPkcs1Raw, p.hash, p.sig)
                .map_err(|e| format!("SIG of \"{}\": {e}", end.subject_str()))?;
            Ok(PeerAuth {
                method: "pubkey".into(),
                cert_subject: Some(end.subject_str()),
            })
        }
        RemoteAuth::RawKey { key } => {
            key.verify(SignatureScheme::RsaPkcs1Raw, p.hash, p.sig)
                .map_err(|e| {
                    format!(
                        "SIG with the configured remote_rsasigkey {}: {e}",
                        key.fingerprint()
                    )
                })?;
            Ok(PeerAuth {
                method: "rsasig".into(),
                cert_subject: None,
            })
        }
    }
}
