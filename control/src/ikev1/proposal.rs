//! IKEv1 proposals: the operators' strings (seeds: `aes-sha1;modp1024`,
//! `AES SHA 2`, `3DES MD5 2`, `aes256-sha2_256-modp2048`; strongSwan:
//! `aes128-sha1-modp2048`, `aes128gcm16`), their ISAKMP (phase 1) and IPsec
//! DOI (phase 2) transforms with attributes, and the choice of one transform.
//! Phase 2 suites reuse IKEv2's [`ChildSuite`] (the dataplane's algorithms).

use std::fmt;
use std::time::Duration;

use espresso_core::alg::{EncrAlg, IntegAlg};

use crate::ike::error::IkeError;
use crate::ike::proposal::{ChildSuite, DhGroup, EspProposal};

use super::crypto::{Cipher, HashAlg};
use super::wire::{self, attr_basic, attr_int, esp_id, p1attr, p2attr, Attr, TransformView};

/// A configured phase 1 proposal: every combination of the listed algorithms
/// becomes one transform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phase1Proposal {
    /// Ciphers, preferred first.
    pub encr: Vec<Cipher>,
    /// Hashes (PRF = HMAC of the hash).
    pub hash: Vec<HashAlg>,
    /// DH groups.
    pub dh: Vec<DhGroup>,
}

impl Phase1Proposal {
    /// Every (cipher, hash, group) combination, in preference order.
    pub fn combos(&self) -> Vec<(Cipher, HashAlg, DhGroup)> {
        let mut v = Vec::new();
        for e in &self.encr {
            for h in &self.hash {
                for g in &self.dh {
                    v.push((*e, *h, *g));
                }
            }
        }
        v
    }
    /// Uses a legacy algorithm (3DES, MD5, MODP-1024/1536).
    pub fn is_legacy(&self) -> bool {
        self.encr.iter().any(|e| e.is_legacy())
            || self.hash.iter().any(|h| h.is_legacy())
            || self.dh.iter().any(|g| g.is_legacy())
    }
}

impl fmt::Display for Phase1Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<&str> = self.encr.iter().map(|e| e.name()).collect();
        parts.extend(self.hash.iter().map(|h| h.name()));
        parts.extend(self.dh.iter().map(|g| g.name()));
        f.write_str(&parts.join("-"))
    }
}

/// Phase 1 authentication method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// Pre-shared key.
    Psk,
    /// RSA signatures (parsed; issue 13 implements it).
    RsaSig,
    /// ECDSA signatures (RFC 4754; parsed, issue 13).
    EcdsaSig(u16),
}

impl AuthMethod {
    fn from_attr(v: u16) -> Option<Self> {
        Some(match v {
            p1attr::AUTH_PSK => Self::Psk,
            p1attr::AUTH_RSA => Self::RsaSig,
            p1attr::AUTH_ECDSA_256 | p1attr::AUTH_ECDSA_384 | p1attr::AUTH_ECDSA_521 => {
                Self::EcdsaSig(v)
            }
            _ => return None,
        })
    }
    fn attr(self) -> u16 {
        match self {
            Self::Psk => p1attr::AUTH_PSK,
            Self::RsaSig => p1attr::AUTH_RSA,
            Self::EcdsaSig(v) => v,
        }
    }
}

/// The algorithms of an ISAKMP SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phase1Suite {
    /// Cipher.
    pub encr: Cipher,
    /// Hash / PRF.
    pub hash: HashAlg,
    /// DH group.
    pub dh: DhGroup,
    /// Authentication.
    pub auth: AuthMethod,
    /// Lifetime in seconds the transform carries (None: not given).
    pub lifetime: Option<u64>,
}

impl fmt::Display for Phase1Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}-{}",
            self.encr.name(),
            self.hash.name(),
            self.dh.name()
        )
    }
}

impl Phase1Suite {
    /// The transform attributes.
    pub fn attrs(&self) -> Vec<u8> {
        let mut a = Vec::new();
        let (enc, kl) = self.encr.attrs();
        attr_basic(&mut a, p1attr::ENCRYPTION, enc);
        if let Some(k) = kl {
            attr_basic(&mut a, p1attr::KEY_LENGTH, k);
        }
        attr_basic(&mut a, p1attr::HASH, self.hash.attr());
        attr_basic(&mut a, p1attr::AUTH_METHOD, self.auth.attr());
        attr_basic(&mut a, p1attr::GROUP, self.dh.number());
        if let Some(l) = self.lifetime {
            attr_basic(&mut a, p1attr::LIFE_TYPE, p1attr::LIFE_SECONDS);
            attr_int(&mut a, p1attr::LIFE_DURATION, l);
        }
        a
    }

    /// Reads a KEY_IKE transform; Err names what is not supported.
    pub fn from_transform(t: &TransformView<'_>) -> Result<Self, String> {
        if t.id != wire::KEY_IKE {
            return Err(format!("transform id {}", t.id));
        }
        let (mut enc, mut kl, mut hash, mut auth, mut grp) = (None, None, None, None, None);
        let mut life_type = None;
        let mut lifetime = None;
        for a in &t.attrs {
            let v = a.value.as_u64();
            match a.atype {
                p1attr::ENCRYPTION => enc = v,
                p1attr::KEY_LENGTH => kl = v,
                p1attr::HASH => hash = v,
                p1attr::AUTH_METHOD => auth = v,
                p1attr::GROUP => grp = v,
                p1attr::LIFE_TYPE => life_type = v,
                p1attr::LIFE_DURATION if life_type == Some(u64::from(p1attr::LIFE_SECONDS)) => {
                    lifetime = v;
                }
                p1attr::GROUP_TYPE | p1attr::PRF => {
                    return Err(format!("attribute {} (custom groups/PRFs)", a.atype))
                }
                _ => {}
            }
        }
        let enc = enc.ok_or("no encryption algorithm")?;
        let encr = Cipher::from_attrs(enc as u16, kl)
            .ok_or_else(|| format!("encryption {enc} key length {kl:?}"))?;
        let h = hash.ok_or("no hash algorithm")?;
        let hash = HashAlg::from_attr(h as u16).ok_or_else(|| format!("hash {h}"))?;
        let a = auth.ok_or("no authentication method")?;
        let auth = AuthMethod::from_attr(a as u16).ok_or_else(|| format!("auth method {a}"))?;
        let g = grp.ok_or("no DH group")?;
        let dh = DhGroup::from_number(g as u16).ok_or_else(|| format!("DH group {g}"))?;
        Ok(Phase1Suite {
            encr,
            hash,
            dh,
            auth,
            lifetime,
        })
    }
}

/// Names of a peer's phase 1 transform for "offered" lists (also for ones we do not support).
pub fn describe_p1(t: &TransformView<'_>) -> String {
    match Phase1Suite::from_transform(t) {
        Ok(s) => s.to_string(),
        Err(e) => format!("unsupported ({e})"),
    }
}

// ---------------------------------------------------------------- phase 2

/// The ESP transform of a phase 2 suite: (transform id, key length attribute, auth attribute).
fn esp_ids(s: &ChildSuite) -> Result<(u8, Option<u16>, Option<u16>), IkeError> {
    let (id, kl) = match s.encr {
        EncrAlg::AesCbc128 => (esp_id::AES_CBC, Some(128)),
        EncrAlg::AesCbc256 => (esp_id::AES_CBC, Some(256)),
        EncrAlg::AesGcm128 => (esp_id::AES_GCM_16, Some(128)),
        EncrAlg::AesGcm256 => (esp_id::AES_GCM_16, Some(256)),
        EncrAlg::TripleDesCbc => (esp_id::DES3, None),
        EncrAlg::Null => (esp_id::NULL, None),
        EncrAlg::ChaCha20Poly1305 => {
            return Err(IkeError::Config(
                "chacha20poly1305 has no IKEv1 ESP transform id".into(),
            ))
        }
    };
    let auth = match s.integ {
        IntegAlg::None => None,
        IntegAlg::HmacMd5_96 => Some(p2attr::AUTH_HMAC_MD5),
        IntegAlg::HmacSha1_96 => Some(p2attr::AUTH_HMAC_SHA1),
        IntegAlg::HmacSha256_128 => Some(p2attr::AUTH_HMAC_SHA256),
        IntegAlg::HmacSha384_192 => Some(p2attr::AUTH_HMAC_SHA384),
        IntegAlg::HmacSha512_256 => Some(p2attr::AUTH_HMAC_SHA512),
    };
    Ok((id, kl, auth))
}

/// What a phase 2 transform carries besides the algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phase2Attrs {
    /// Encapsulation mode attribute value.
    pub encap_mode: u16,
    /// Lifetime in seconds (None: not given).
    pub life_seconds: Option<u64>,
    /// Lifetime in kilobytes (None: not given).
    pub life_kb: Option<u64>,
}

/// The transform (id, attributes) for a suite.
pub fn p2_transform(s: &ChildSuite, a: &Phase2Attrs) -> Result<(u8, Vec<u8>), IkeError> {
    let (id, kl, auth) = esp_ids(s)?;
    let mut v = Vec::new();
    if let Some(l) = a.life_seconds {
        attr_basic(&mut v, p2attr::LIFE_TYPE, p1attr::LIFE_SECONDS);
        attr_int(&mut v, p2attr::LIFE_DURATION, l);
    }
    if let Some(l) = a.life_kb {
        attr_basic(&mut v, p2attr::LIFE_TYPE, p1attr::LIFE_KILOBYTES);
        attr_int(&mut v, p2attr::LIFE_DURATION, l);
    }
    if let Some(g) = s.dh {
        attr_basic(&mut v, p2attr::GROUP, g.number());
    }
    attr_basic(&mut v, p2attr::ENCAP_MODE, a.encap_mode);
    if let Some(au) = auth {
        attr_basic(&mut v, p2attr::AUTH_ALG, au);
    }
    if let Some(k) = kl {
        attr_basic(&mut v, p2attr::KEY_LENGTH, k);
    }
    if s.esn {
        attr_basic(&mut v, p2attr::ESN, 1);
    }
    Ok((id, v))
}

/// Reads an ESP transform: the suite and its other attributes.
pub fn p2_from_transform(t: &TransformView<'_>) -> Result<(ChildSuite, Phase2Attrs), String> {
    let (mut kl, mut auth, mut grp, mut mode, mut esn) = (None, None, None, None, false);
    let mut life_type = None;
    let mut a2 = Phase2Attrs {
        encap_mode: p2attr::MODE_TUNNEL,
        life_seconds: None,
        life_kb: None,
    };
    for Attr { atype, value } in &t.attrs {
        let v = value.as_u64();
        match *atype {
            p2attr::LIFE_TYPE => life_type = v,
            p2attr::LIFE_DURATION => match life_type {
                Some(1) => a2.life_seconds = v,
                Some(2) => a2.life_kb = v,
                _ => return Err("life duration without life type".into()),
            },
            p2attr::GROUP => grp = v,
            p2attr::ENCAP_MODE => mode = v,
            p2attr::AUTH_ALG => auth = v,
            p2attr::KEY_LENGTH => kl = v,
            p2attr::ESN => esn = v == Some(1),
            p2attr::KEY_ROUNDS => return Err("key rounds".into()),
            _ => {}
        }
    }
    let encr = match (t.id, kl) {
        (esp_id::AES_CBC, Some(128)) => EncrAlg::AesCbc128,
        (esp_id::AES_CBC, Some(256)) => EncrAlg::AesCbc256,
        (esp_id::AES_GCM_16, Some(128)) => EncrAlg::AesGcm128,
        (esp_id::AES_GCM_16, Some(256)) => EncrAlg::AesGcm256,
        (esp_id::DES3, None | Some(192)) => EncrAlg::TripleDesCbc,
        (esp_id::NULL, None) => EncrAlg::Null,
        (id, k) => return Err(format!("ESP transform {id} key length {k:?}")),
    };
    let integ = match auth {
        None => IntegAlg::None,
        Some(1) => IntegAlg::HmacMd5_96,
        Some(2) => IntegAlg::HmacSha1_96,
        Some(5) => IntegAlg::HmacSha256_128,
        Some(6) => IntegAlg::HmacSha384_192,
        Some(7) => IntegAlg::HmacSha512_256,
        Some(a) => return Err(format!("authentication algorithm {a}")),
    };
    if encr.is_aead() != (integ == IntegAlg::None) {
        return Err("integrity with an AEAD cipher, or none without".into());
    }
    let dh = match grp {
        None => None,
        Some(g) => Some(DhGroup::from_number(g as u16).ok_or_else(|| format!("DH group {g}"))?),
    };
    a2.encap_mode = mode.ok_or("no encapsulation mode")? as u16;
    Ok((
        ChildSuite {
            encr,
            integ,
            esn,
            dh,
        },
        a2,
    ))
}

/// Names of a peer's phase 2 transform for "offered" lists.
pub fn describe_p2(t: &TransformView<'_>) -> String {
    match p2_from_transform(t) {
        Ok((s, _)) => s.to_string(),
        Err(e) => format!("unsupported ({e})"),
    }
}

/// Every suite a configured ESP proposal stands for, with PFS group `pfs`
/// when the proposal names none (None: no PFS).
pub fn p2_suites(p: &EspProposal, pfs: Option<DhGroup>) -> Vec<ChildSuite> {
    let mut v = Vec::new();
    let dhs: Vec<Option<DhGroup>> = if p.dh.is_empty() {
        vec![pfs]
    } else {
        p.dh.iter().map(|g| Some(*g)).collect()
    };
    let integs: Vec<IntegAlg> = if p.integ.is_empty() {
        vec![IntegAlg::None]
    } else {
        p.integ.clone()
    };
    let esns: Vec<bool> = if p.esn.is_empty() {
        vec![false]
    } else {
        p.esn.clone()
    };
    for e in &p.encr {
        for i in &integs {
            for g in &dhs {
                for esn in &esns {
                    v.push(ChildSuite {
                        encr: *e,
                        integ: *i,
                        esn: *esn,
                        dh: *g,
                    });
                }
            }
        }
    }
    v
}

// ---------------------------------------------------------------- parsing

fn tokens(p: &str) -> Vec<String> {
    let l = p.trim().to_ascii_lowercase();
    if l.contains(char::is_whitespace) {
        // seeds: "AES SHA 2", "AES-256 SHA-256 19", "3DES MD5 2"
        l.split_whitespace()
            .map(|w| match w {
                "aes-128" => "aes128".to_string(),
                "aes-192" => "aes192".into(),
                "aes-256" => "aes256".into(),
                "sha-1" => "sha1".into(),
                "sha-256" => "sha256".into(),
                "sha-384" => "sha384".into(),
                "sha-512" => "sha512".into(),
                "md5-128" => "md5".into(),
                o => o.to_string(),
            })
            .collect()
    } else {
        // strongSwan "aes128-sha1-modp2048", Openswan "aes-sha1;modp1024"
        l.split(['-', ';', '+'])
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    }
}

fn dh_token(t: &str) -> Result<Option<DhGroup>, IkeError> {
    let g = match t {
        "modp1024" | "dh2" => 2,
        "modp1536" | "dh5" => 5,
        "modp2048" | "dh14" => 14,
        "modp3072" | "dh15" => 15,
        "modp4096" | "dh16" => 16,
        "ecp256" | "dh19" => 19,
        "ecp384" | "dh20" => 20,
        "ecp521" | "dh21" => 21,
        "curve25519" | "x25519" | "dh31" => 31,
        n if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
            n.parse::<u16>().unwrap_or(u16::MAX)
        }
        _ => return Ok(None),
    };
    DhGroup::from_number(g).map(Some).ok_or_else(|| {
        IkeError::Config(format!(
            "DH group {t:?} is not supported (supported: 2, 5, 14, 15, 16, 19, 20, 21, 31)"
        ))
    })
}

fn hash_token(t: &str) -> Option<HashAlg> {
    Some(match t {
        "md5" => HashAlg::Md5,
        "sha" | "sha1" => HashAlg::Sha1,
        "sha256" | "sha2_256" | "sha2" => HashAlg::Sha256,
        "sha384" | "sha2_384" => HashAlg::Sha384,
        "sha512" | "sha2_512" => HashAlg::Sha512,
        _ => return None,
    })
}

/// Parses phase 1 proposals (comma-separated; each in strongSwan, Openswan or seeds form).
pub fn parse_phase1(s: &str) -> Result<Vec<Phase1Proposal>, IkeError> {
    let mut out = Vec::new();
    for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut prop = Phase1Proposal {
            encr: vec![],
            hash: vec![],
            dh: vec![],
        };
        for t in tokens(p) {
            let t = t.as_str();
            match t {
                "aes" | "aes128" => prop.encr.push(Cipher::Aes128),
                "aes192" => prop.encr.push(Cipher::Aes192),
                "aes256" => prop.encr.push(Cipher::Aes256),
                "3des" => prop.encr.push(Cipher::TripleDes),
                _ if t.starts_with("prf") => {} // IKEv1: the PRF is the HMAC of the hash
                _ => {
                    if let Some(h) = hash_token(t) {
                        prop.hash.push(h);
                    } else if let Some(g) = dh_token(t)? {
                        prop.dh.push(g);
                    } else if t.contains("gcm") {
                        return Err(IkeError::Config(format!(
                            "IKEv1 proposal {p:?}: {t} is not an IKEv1 phase 1 cipher (AES-GCM is for ESP)"
                        )));
                    } else {
                        return Err(IkeError::Config(format!(
                            "IKEv1 proposal {p:?}: algorithm {t:?} is not supported"
                        )));
                    }
                }
            }
        }
        if prop.encr.is_empty() {
            return Err(IkeError::Config(format!(
                "IKEv1 proposal {p:?}: no encryption algorithm"
            )));
        }
        if prop.hash.is_empty() {
            return Err(IkeError::Config(format!(
                "IKEv1 proposal {p:?}: no hash algorithm"
            )));
        }
        if prop.dh.is_empty() {
            // Openswan: a left-out part is filled with the defaults
            // (`ike = "aes-sha1"`, seed 000), as for IKEv2
            prop.dh = espresso_core::alg::DEFAULT_DH.to_vec();
        }
        out.push(prop);
    }
    if out.is_empty() {
        return Err(IkeError::Config("empty IKEv1 proposal list".into()));
    }
    Ok(out)
}

/// Parses phase 2 (ESP) proposals; a DH group means PFS with it.
pub fn parse_phase2(s: &str) -> Result<Vec<EspProposal>, IkeError> {
    let mut out = Vec::new();
    for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut prop = EspProposal {
            encr: vec![],
            integ: vec![],
            dh: vec![],
            esn: vec![],
        };
        for t in tokens(p) {
            let t = t.as_str();
            match t {
                "aes" | "aes128" => prop.encr.push(EncrAlg::AesCbc128),
                "aes256" => prop.encr.push(EncrAlg::AesCbc256),
                "aes128gcm16" | "aes128gcm" | "aes128gcm128" | "aes_gcm" | "aesgcm" => {
                    prop.encr.push(EncrAlg::AesGcm128)
                }
                "aes256gcm16" | "aes256gcm" | "aes256gcm128" => prop.encr.push(EncrAlg::AesGcm256),
                "3des" => prop.encr.push(EncrAlg::TripleDesCbc),
                "null" => prop.encr.push(EncrAlg::Null),
                "esn" => prop.esn.push(true),
                "noesn" => prop.esn.push(false),
                "aes192" => {
                    return Err(IkeError::Config(format!(
                        "ESP proposal {p:?}: aes192 is not supported by the dataplane"
                    )))
                }
                "chacha20poly1305" | "chacha20" | "chacha" => {
                    return Err(IkeError::Config(format!(
                        "ESP proposal {p:?}: chacha20poly1305 has no IKEv1 ESP transform ID (RFC 7634 registers it for IKEv2 only; strongSwan sends it in IKEv1 as a proposal without transforms): use IKEv2 (version = 2) or AES-GCM (aes256gcm16) for this connection"
                    )))
                }
                _ => {
                    if let Some(h) = hash_token(t) {
                        prop.integ.push(match h {
                            HashAlg::Md5 => IntegAlg::HmacMd5_96,
                            HashAlg::Sha1 => IntegAlg::HmacSha1_96,
                            HashAlg::Sha256 => IntegAlg::HmacSha256_128,
                            HashAlg::Sha384 => IntegAlg::HmacSha384_192,
                            HashAlg::Sha512 => IntegAlg::HmacSha512_256,
                        });
                    } else if let Some(g) = dh_token(t)? {
                        prop.dh.push(g);
                    } else {
                        return Err(IkeError::Config(format!(
                            "ESP proposal {p:?}: algorithm {t:?} is not supported"
                        )));
                    }
                }
            }
        }
        if prop.encr.is_empty() {
            return Err(IkeError::Config(format!(
                "ESP proposal {p:?}: no encryption algorithm"
            )));
        }
        let aead = prop.encr.iter().any(|e| e.is_aead());
        if aead && prop.encr.iter().any(|e| !e.is_aead()) {
            return Err(IkeError::Config(format!(
                "ESP proposal {p:?} mixes AEAD and non-AEAD encryption; write two proposals"
            )));
        }
        if aead && !prop.integ.is_empty() {
            return Err(IkeError::Config(format!(
                "ESP proposal {p:?}: AEAD encryption takes no integrity algorithm"
            )));
        }
        if !aead && prop.integ.is_empty() {
            return Err(IkeError::Config(format!(
                "ESP proposal {p:?}: no integrity algorithm"
            )));
        }
        out.push(prop);
    }
    if out.is_empty() {
        return Err(IkeError::Config("empty ESP proposal list".into()));
    }
    Ok(out)
}

/// Default phase 1 proposals: AES-CBC with SHA-2 and SHA-1, groups 14, 19, 20, 31.
pub fn default_phase1() -> Vec<Phase1Proposal> {
    parse_phase1(
        "aes128-aes256-sha256-sha384-sha512-sha1-modp2048-ecp256-ecp384-curve25519-modp3072",
    )
    .unwrap_or_default()
}

/// Default phase 2 proposals: AES-GCM, then AES-CBC with SHA-2 and SHA-1.
pub fn default_phase2() -> Vec<EspProposal> {
    parse_phase2("aes128gcm16-aes256gcm16,aes128-aes256-sha256-sha384-sha512-sha1")
        .unwrap_or_default()
}

/// A phase 1 lifetime from a transform, capped by ours.
pub fn effective_lifetime(ours: Duration, theirs: Option<u64>) -> Duration {
    match theirs {
        Some(t) if t > 0 && Duration::from_secs(t) < ours => Duration::from_secs(t),
        _ => ours,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_and_strongswan_forms() {
        let p = parse_phase1("aes-sha1;modp1024").unwrap();
        assert_eq!(p[0].encr, vec![Cipher::Aes128]);
        assert_eq!(p[0].hash, vec![HashAlg::Sha1]);
        assert_eq!(p[0].dh, vec![DhGroup::Modp1024]);
        assert!(p[0].is_legacy());
        let p = parse_phase1("AES SHA 2").unwrap();
        assert_eq!(p[0].to_string(), "aes128-sha1-modp1024");
        let p = parse_phase1("3DES MD5 2").unwrap();
        assert_eq!(p[0].to_string(), "3des-md5-modp1024");
        let p = parse_phase1("aes256-sha2_256-modp2048").unwrap();
        assert_eq!(p[0].to_string(), "aes256-sha256-modp2048");
        assert!(!p[0].is_legacy());
        let p = parse_phase1("aes128-sha1-modp2048, AES-256 SHA-256 19").unwrap();
        assert_eq!(p[1].to_string(), "aes256-sha256-ecp256");
        let p = parse_phase1("aes-sha1;modp1536").unwrap();
        assert_eq!(p[0].dh, vec![DhGroup::Modp1536]);
        assert!(parse_phase1("aes128gcm16-prfsha256-ecp256").is_err());
        assert!(parse_phase1("blowfish-sha1-modp2048").is_err());
        assert!(parse_phase1("aes-sha1;modp768").is_err());
        // Openswan: a left-out DH group means the default groups
        let p = parse_phase1("aes128-sha2_256").unwrap();
        assert_eq!(p[0].dh, espresso_core::alg::DEFAULT_DH.to_vec());
        assert_eq!(parse_phase1("AES SHA").unwrap()[0].dh[0], DhGroup::Modp2048);

        let e = parse_phase2("aes-sha1;modp1024").unwrap();
        assert_eq!(e[0].encr, vec![EncrAlg::AesCbc128]);
        assert_eq!(e[0].integ, vec![IntegAlg::HmacSha1_96]);
        assert_eq!(e[0].dh, vec![DhGroup::Modp1024]);
        let e = parse_phase2("3DES MD5 2").unwrap();
        assert_eq!(e[0].encr, vec![EncrAlg::TripleDesCbc]);
        assert_eq!(e[0].integ, vec![IntegAlg::HmacMd5_96]);
        let e = parse_phase2("aes128gcm16").unwrap();
        assert!(e[0].integ.is_empty() && e[0].dh.is_empty());
        assert!(parse_phase2("aes128gcm16-sha1").is_err());
        // no IKEv1 ESP transform ID: refused with the reason and the way out
        let e = parse_phase2("chacha20poly1305").unwrap_err().to_string();
        assert!(
            e.contains("no IKEv1 ESP transform ID") && e.contains("version = 2"),
            "{e}"
        );
    }

    #[test]
    fn transforms_round_trip() {
        let s = Phase1Suite {
            encr: Cipher::Aes256,
            hash: HashAlg::Sha256,
            dh: DhGroup::Ecp256,
            auth: AuthMethod::Psk,
            lifetime: Some(28800),
        };
        let body = wire::sa_body(&[(1, wire::proto::ISAKMP, vec![], vec![(1, s.attrs())])]);
        let sa = wire::SaView { body: &body };
        let props = sa.proposals().unwrap();
        assert_eq!(
            Phase1Suite::from_transform(&props[0].transforms[0]).unwrap(),
            s
        );
        for e in parse_phase2("aes128gcm16-modp2048,aes256-sha512,3des-md5").unwrap() {
            for cs in p2_suites(&e, None) {
                let a = Phase2Attrs {
                    encap_mode: p2attr::MODE_UDP_TUNNEL,
                    life_seconds: Some(3600),
                    life_kb: Some(1 << 40),
                };
                let (id, attrs) = p2_transform(&cs, &a).unwrap();
                let body =
                    wire::sa_body(&[(1, wire::proto::ESP, vec![1, 2, 3, 4], vec![(id, attrs)])]);
                let props = wire::SaView { body: &body }.proposals().unwrap();
                assert_eq!(p2_from_transform(&props[0].transforms[0]).unwrap(), (cs, a));
            }
        }
    }
}
