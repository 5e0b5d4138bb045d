//! IKEv2 authentication with signatures (RFC 7296 §2.15 and §3.8, RFC 7427
//! digital signatures, RFC 4754 ECDSA, RFC 8420 Ed25519) and the CERT and
//! CERTREQ payloads (§3.6, §3.7): which method and scheme to sign with given
//! what the peer announced in SIGNATURE_HASH_ALGORITHMS, the AUTH payload
//! data, and the checks of a peer's AUTH (PSK, certificate chain or raw key)
//! with a reason for the log when they fail.
//!
//! The signature API for other engines (IKEv1 RSA-sig) is
//! [`crate::pki::PrivateKey::sign`] and [`crate::pki::PublicKey::verify`]
//! with [`crate::pki::SignatureScheme::RsaPkcs1Raw`].

use std::sync::Arc;
use std::time::SystemTime;

use super::auth_config::{LocalAuth, RemoteAuth};
use super::config::{Connection, Identity};
use super::crypto;
use super::proposal::PrfAlg;
use super::wire::{self, AuthView};
use crate::pki::{Certificate, Hash, KeyKind, PrivateKey, PublicKey, SignatureScheme};

/// RSA Digital Signature (PKCS#1 v1.5 with SHA-1).
pub const AUTH_RSA: u8 = 1;
/// ECDSA with SHA-256 on P-256 (RFC 4754).
pub const AUTH_ECDSA_256: u8 = 9;
/// ECDSA with SHA-384 on P-384.
pub const AUTH_ECDSA_384: u8 = 10;
/// ECDSA with SHA-512 on P-521.
pub const AUTH_ECDSA_521: u8 = 11;
/// Digital Signature (RFC 7427).
pub const AUTH_DIGITAL_SIGNATURE: u8 = 14;

/// CERT encoding: X.509 Certificate - Signature.
pub const CERT_X509_SIGNATURE: u8 = 4;
/// CERT encoding: Raw Public Key (RFC 7670).
pub const CERT_RAW_PUBLIC_KEY: u8 = 15;

/// RFC 8420's "Identity" hash (the signature scheme hashes itself: Ed25519).
pub const HASH_IDENTITY: u16 = 5;

/// The hash algorithms we announce: SHA2-256, SHA2-384, SHA2-512, Identity.
pub const OUR_HASHES: [u16; 4] = [2, 3, 4, HASH_IDENTITY];

/// SIGNATURE_HASH_ALGORITHMS notification data.
pub fn hash_notify_data() -> Vec<u8> {
    OUR_HASHES.iter().flat_map(|h| h.to_be_bytes()).collect()
}

/// The hash algorithm numbers of a SIGNATURE_HASH_ALGORITHMS notify.
pub fn parse_hash_notify(data: &[u8]) -> Vec<u16> {
    data.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

/// Name of an AUTH method for logs.
pub fn method_name(m: u8) -> &'static str {
    match m {
        AUTH_RSA => "RSA signature (1)",
        wire::AUTH_PSK => "pre-shared key (2)",
        3 => "DSS signature (3)",
        AUTH_ECDSA_256 => "ECDSA-256 (9)",
        AUTH_ECDSA_384 => "ECDSA-384 (10)",
        AUTH_ECDSA_521 => "ECDSA-521 (11)",
        AUTH_DIGITAL_SIGNATURE => "digital signature (14)",
        _ => "unknown method",
    }
}

/// The octets a signature covers (§2.15): RealMessage | Nonce | prf(SK_p, IDbody).
pub fn signed_octets(
    prf: PrfAlg,
    real_message: &[u8],
    nonce: &[u8],
    sk_p: &[u8],
    id_body: &[u8],
) -> Vec<u8> {
    let maced = crypto::prf(prf, sk_p, &[id_body]);
    let mut v = Vec::with_capacity(real_message.len() + nonce.len() + maced.len());
    v.extend_from_slice(real_message);
    v.extend_from_slice(nonce);
    v.extend_from_slice(&maced);
    v
}

/// Method and scheme for our key: RFC 7427 when the peer announced hash
/// algorithms (None: it did not), else the key's classic method.
pub fn choose(
    key: &PrivateKey,
    rsa_pss: bool,
    peer: Option<&[u16]>,
) -> Result<(u8, SignatureScheme), String> {
    let has = |h: u16| peer.is_some_and(|p| p.contains(&h));
    let sha2 = [Hash::Sha256, Hash::Sha384, Hash::Sha512]
        .into_iter()
        .find(|h| has(h.rfc7427()));
    Ok(match key.kind() {
        KeyKind::Rsa(_) => match sha2 {
            Some(h) if rsa_pss => (AUTH_DIGITAL_SIGNATURE, SignatureScheme::RsaPss(h)),
            Some(h) => (AUTH_DIGITAL_SIGNATURE, SignatureScheme::RsaPkcs1(h)),
            None => (AUTH_RSA, SignatureScheme::RsaPkcs1(Hash::Sha1)),
        },
        KeyKind::EcdsaP256 if has(2) => (AUTH_DIGITAL_SIGNATURE, SignatureScheme::Ecdsa(Hash::Sha256)),
        KeyKind::EcdsaP256 => (AUTH_ECDSA_256, SignatureScheme::EcdsaFixed(Hash::Sha256)),
        KeyKind::EcdsaP384 if has(3) => (AUTH_DIGITAL_SIGNATURE, SignatureScheme::Ecdsa(Hash::Sha384)),
        KeyKind::EcdsaP384 => (AUTH_ECDSA_384, SignatureScheme::EcdsaFixed(Hash::Sha384)),
        KeyKind::Ed25519 if has(HASH_IDENTITY) => (AUTH_DIGITAL_SIGNATURE, SignatureScheme::Ed25519),
        KeyKind::Ed25519 => {
            return Err(
                "our key is Ed25519 but the peer did not announce RFC 8420 support (SIGNATURE_HASH_ALGORITHMS without Identity)"
                    .into(),
            )
        }
    })
}

/// Signs `octets`: the AUTH payload's method and data.
pub fn sign_auth(
    key: &PrivateKey,
    rsa_pss: bool,
    peer: Option<&[u16]>,
    octets: &[u8],
) -> Result<(u8, Vec<u8>), String> {
    let (method, scheme) = choose(key, rsa_pss, peer)?;
    let sig = key.sign(scheme, octets).map_err(|e| e.to_string())?;
    let mut data = Vec::new();
    if method == AUTH_DIGITAL_SIGNATURE {
        let alg = scheme
            .algorithm_identifier()
            .ok_or_else(|| format!("{} has no AlgorithmIdentifier", scheme.name()))?;
        data.push(alg.len() as u8);
        data.extend_from_slice(&alg);
    }
    data.extend_from_slice(&sig);
    Ok((method, data))
}

/// Checks a signature AUTH payload with `pk`; returns the scheme's name.
pub fn verify_auth(
    pk: &PublicKey,
    method: u8,
    data: &[u8],
    octets: &[u8],
) -> Result<String, String> {
    let (scheme, sig) = match (method, pk.kind()) {
        (AUTH_RSA, KeyKind::Rsa(_)) => (SignatureScheme::RsaPkcs1(Hash::Sha1), data),
        (AUTH_ECDSA_256, KeyKind::EcdsaP256) => (SignatureScheme::EcdsaFixed(Hash::Sha256), data),
        (AUTH_ECDSA_384, KeyKind::EcdsaP384) => (SignatureScheme::EcdsaFixed(Hash::Sha384), data),
        (AUTH_DIGITAL_SIGNATURE, _) => {
            let Some((&n, rest)) = data.split_first() else {
                return Err("empty digital signature AUTH payload".into());
            };
            let n = usize::from(n);
            if rest.len() < n {
                return Err(format!(
                    "AUTH AlgorithmIdentifier length {n} exceeds the payload ({} bytes)",
                    rest.len()
                ));
            }
            let scheme = SignatureScheme::from_algorithm_identifier_der(&rest[..n])
                .map_err(|e| e.to_string())?;
            if scheme
                .hash()
                .is_some_and(|h| !OUR_HASHES.contains(&h.rfc7427()))
            {
                return Err(format!(
                    "peer signed with {}, a hash we did not announce in SIGNATURE_HASH_ALGORITHMS",
                    scheme.name()
                ));
            }
            (scheme, &rest[n..])
        }
        (m, k) => {
            return Err(format!(
                "AUTH method {} does not fit the peer's {k} key",
                method_name(m)
            ))
        }
    };
    pk.verify(scheme, octets, sig).map_err(|e| e.to_string())?;
    Ok(scheme.name())
}

/// CERTREQ data: encoding 4 and the SHA-1 hashes of the CAs we trust for this
/// connection (the required CA's only, if one is configured and present).
pub fn certreq_data(remote: &RemoteAuth) -> Option<Vec<u8>> {
    let RemoteAuth::Cert { trust, ca } = remote else {
        return None;
    };
    let mut v = vec![CERT_X509_SIGNATURE];
    let all = trust.cas();
    let pick: Vec<_> = match ca {
        Some(dn) if all.iter().any(|c| crate::pki::dn::matches(dn, c.subject())) => all
            .iter()
            .filter(|c| crate::pki::dn::matches(dn, c.subject()))
            .collect(),
        _ => all.iter().collect(),
    };
    for c in pick {
        v.extend_from_slice(&c.public_key().key_id());
    }
    (v.len() > 1).then_some(v)
}

/// The CA key hashes of the peer's CERTREQ payloads (X.509 encodings only).
pub fn certreq_hashes(reqs: &[(u8, &[u8])]) -> Vec<[u8; 20]> {
    let mut out = Vec::new();
    for (enc, data) in reqs {
        if *enc == CERT_X509_SIGNATURE {
            for c in data.chunks_exact(20) {
                let mut h = [0u8; 20];
                h.copy_from_slice(c);
                out.push(h);
            }
        }
    }
    out
}

/// The certificates we send (DER): our end entity, then intermediates up to
/// the first CA the peer asked for in CERTREQ (all when it asked for none
/// of ours, or sent no CERTREQ).
pub fn certs_to_send(local: &LocalAuth, requested: &[[u8; 20]]) -> Vec<Vec<u8>> {
    let LocalAuth::Cert { chain, .. } = local else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, c) in chain.iter().enumerate() {
        out.push(c.der().to_vec());
        if let Some(next) = chain.get(i + 1) {
            if requested.contains(&next.public_key().key_id()) {
                break;
            }
        }
    }
    out
}

/// What a verified peer authentication established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAuth {
    /// `psk`, or the signature scheme (`sha256WithRSAEncryption`, ...).
    pub method: String,
    /// Subject of the peer's certificate, if it used one.
    pub cert_subject: Option<String>,
}

/// Everything needed to check the peer's AUTH payload.
pub struct PeerAuthInput<'a> {
    /// Negotiated PRF.
    pub prf: PrfAlg,
    /// The peer's IKE_SA_INIT message.
    pub real_message: &'a [u8],
    /// Our nonce.
    pub nonce: &'a [u8],
    /// SK_pi or SK_pr of the peer.
    pub sk_p: &'a [u8],
    /// The peer's ID payload body.
    pub id_body: &'a [u8],
    /// The peer's identity.
    pub peer_id: Option<&'a Identity>,
    /// The AUTH payload.
    pub auth: AuthView<'a>,
    /// CERT payloads.
    pub certs: &'a [(u8, &'a [u8])],
    /// Wall clock.
    pub now: SystemTime,
}

/// Checks the peer's authentication against a connection; the error is the
/// reason for the log.
pub fn verify_peer(conn: &Connection, i: &PeerAuthInput<'_>) -> Result<PeerAuth, String> {
    let m = i.auth.method;
    match &conn.remote_auth {
        RemoteAuth::Psk => {
            if m != wire::AUTH_PSK {
                return Err(format!(
                    "peer authenticates with {}, connection {:?} expects a pre-shared key",
                    method_name(m),
                    conn.name
                ));
            }
            let want = crypto::psk_auth(
                i.prf,
                conn.psk.bytes(),
                i.real_message,
                i.nonce,
                i.sk_p,
                i.id_body,
            );
            if crypto::ct_eq(&want, i.auth.data) {
                Ok(PeerAuth {
                    method: "psk".into(),
                    cert_subject: None,
                })
            } else {
                Err("AUTH payload does not verify: pre-shared keys differ".into())
            }
        }
        RemoteAuth::Cert { trust, ca } => {
            if m == wire::AUTH_PSK {
                return Err(format!(
                    "peer authenticates with a pre-shared key, connection {:?} expects a certificate signature",
                    conn.name
                ));
            }
            let mut x509 = i.certs.iter().filter(|(e, _)| *e == CERT_X509_SIGNATURE);
            let Some((_, first)) = x509.next() else {
                return Err(
                    "peer sent no X.509 certificate (CERT payload) to check its signature with"
                        .into(),
                );
            };
            let end = Arc::new(
                Certificate::from_der(first).map_err(|e| format!("peer certificate: {e}"))?,
            );
            let mut ints = Vec::new();
            for (_, d) in x509 {
                ints.push(Arc::new(
                    Certificate::from_der(d)
                        .map_err(|e| format!("peer intermediate certificate: {e}"))?,
                ));
            }
            trust
                .verify(&end, &ints, i.now, ca.as_deref())
                .map_err(|e| e.to_string())?;
            match i.peer_id {
                Some(id) if end.has_identity(id) => {}
                Some(id) => {
                    return Err(format!(
                        "peer identity {id} is not confirmed by its certificate \"{}\" (subjectAltName: {})",
                        end.subject_str(),
                        sans(&end)
                    ))
                }
                None => return Err("peer identity of an unsupported type".into()),
            }
            let octets = signed_octets(i.prf, i.real_message, i.nonce, i.sk_p, i.id_body);
            let scheme = verify_auth(end.public_key(), m, i.auth.data, &octets)
                .map_err(|e| format!("AUTH of \"{}\": {e}", end.subject_str()))?;
            Ok(PeerAuth {
                method: scheme,
                cert_subject: Some(end.subject_str()),
            })
        }
        RemoteAuth::RawKey { key } => {
            if m == wire::AUTH_PSK {
                return Err(format!(
                    "peer authenticates with a pre-shared key, connection {:?} expects an RSA signature (rightrsasigkey)",
                    conn.name
                ));
            }
            if let Some((_, d)) = i.certs.iter().find(|(e, _)| *e == CERT_RAW_PUBLIC_KEY) {
                if PublicKey::from_spki_der(d).ok().as_ref() != Some(key) {
                    return Err(
                        "peer sent a raw public key (RFC 7670) that is not the configured one"
                            .into(),
                    );
                }
            }
            let octets = signed_octets(i.prf, i.real_message, i.nonce, i.sk_p, i.id_body);
            let scheme = verify_auth(key, m, i.auth.data, &octets)
                .map_err(|e| format!("AUTH with the configured key {}: {e}", key.fingerprint()))?;
            Ok(PeerAuth {
                method: scheme,
                cert_subject: None,
            })
        }
    }
}

fn sans(c: &Certificate) -> String {
    let mut v: Vec<String> = c.san_dns().iter().map(|d| format!("DNS:{d}")).collect();
    v.extend(c.san_ip().iter().map(|a| format!("IP:{a}")));
    v.extend(c.san_email().iter().map(|m| format!("email:{m}")));
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Our AUTH payload: (method, data).
#[allow(clippy::too_many_arguments)]
pub fn local_auth(
    conn: &Connection,
    prf: PrfAlg,
    real_message: &[u8],
    nonce: &[u8],
    sk_p: &[u8],
    id_body: &[u8],
    peer_hashes: Option<&[u16]>,
) -> Result<(u8, Vec<u8>), String> {
    match conn.local_auth.key() {
        None => Ok((
            wire::AUTH_PSK,
            crypto::psk_auth(prf, conn.psk.bytes(), real_message, nonce, sk_p, id_body),
        )),
        Some((key, pss)) => {
            let octets = signed_octets(prf, real_message, nonce, sk_p, id_body);
            sign_auth(key, pss, peer_hashes, &octets)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> PrivateKey {
        PrivateKey::from_bytes(
            &std::fs::read(format!(
                "{}/tests/fixtures/pki/{name}.key.pem",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn method_choice_follows_the_peer() {
        let all = OUR_HASHES.to_vec();
        let rsa = key("moon");
        assert_eq!(
            choose(&rsa, false, Some(&all)).unwrap(),
            (14, SignatureScheme::RsaPkcs1(Hash::Sha256))
        );
        assert_eq!(
            choose(&rsa, true, Some(&[4])).unwrap(),
            (14, SignatureScheme::RsaPss(Hash::Sha512))
        );
        assert_eq!(
            choose(&rsa, false, None).unwrap(),
            (1, SignatureScheme::RsaPkcs1(Hash::Sha1))
        );
        assert_eq!(choose(&key("mars"), false, None).unwrap().0, 9);
        assert_eq!(choose(&key("jupiter"), false, Some(&[2])).unwrap().0, 10);
        assert_eq!(
            choose(&key("jupiter"), false, Some(&all)).unwrap(),
            (14, SignatureScheme::Ecdsa(Hash::Sha384))
        );
        assert!(choose(&key("pluto"), false, Some(&[2])).is_err());
        for (k, peer) in [
            ("moon", None),
            ("moon", Some(&all)),
            ("mars", None),
            ("mars", Some(&all)),
            ("jupiter", None),
            ("pluto", Some(&all)),
        ] {
            let k = key(k);
            let (m, d) = sign_auth(&k, false, peer.map(|v| v.as_slice()), b"octets").unwrap();
            verify_auth(k.public_key(), m, &d, b"octets").unwrap();
            assert!(verify_auth(k.public_key(), m, &d, b"octetz").is_err());
            assert!(
                verify_auth(key("sun").public_key(), m, &d, b"octets").is_err()
                    || matches!(k.kind(), KeyKind::Rsa(_))
                        && verify_auth(key("sun").public_key(), m, &d, b"octets").is_err()
            );
        }
        // a truncated AlgorithmIdentifier is an error, not a panic
        assert!(verify_auth(rsa.public_key(), 14, &[200, 1, 2], b"x").is_err());
        assert!(verify_auth(rsa.public_key(), 14, &[], b"x").is_err());
    }
}
