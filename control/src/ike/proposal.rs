//! Algorithms, proposals and their negotiation (RFC 7296 §2.7, §3.3).
//!
//! Proposals are written the way operators know them: strongSwan's
//! `aes128gcm16-prfsha256-ecp256` / `aes256-sha256-modp2048` (ESP:
//! `aes128gcm16`, `aes256-sha256-ecp256`), or the seeds' form `AES SHA 14`,
//! `AES-256 SHA-256 19`, `aes128-sha1-modp1024`.

use std::fmt;

use dataplane::crypto::{EncrAlg, IntegAlg};

use super::error::IkeError;
use super::wire::TransformView;

/// Transform types.
pub mod ttype {
    /// Encryption algorithm.
    pub const ENCR: u8 = 1;
    /// Pseudo-random function.
    pub const PRF: u8 = 2;
    /// Integrity algorithm.
    pub const INTEG: u8 = 3;
    /// Diffie-Hellman group.
    pub const DH: u8 = 4;
    /// Extended sequence numbers.
    pub const ESN: u8 = 5;
}

mod encr_id {
    pub const DES3: u16 = 3;
    pub const NULL: u16 = 11;
    pub const AES_CBC: u16 = 12;
    pub const AES_GCM_16: u16 = 20;
    pub const CHACHA20_POLY1305: u16 = 28;
}
mod integ_id {
    pub const MD5_96: u16 = 1;
    pub const SHA1_96: u16 = 2;
    pub const SHA256_128: u16 = 12;
    pub const SHA384_192: u16 = 13;
    pub const SHA512_256: u16 = 14;
}
mod prf_id {
    pub const SHA1: u16 = 2;
    pub const SHA256: u16 = 5;
    pub const SHA384: u16 = 6;
    pub const SHA512: u16 = 7;
}

/// One transform as carried on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Xform {
    /// Transform type.
    pub ttype: u8,
    /// Transform ID.
    pub id: u16,
    /// Key length attribute (bits).
    pub key_len: Option<u16>,
}

impl Xform {
    const fn new(ttype: u8, id: u16, key_len: Option<u16>) -> Self {
        Xform { ttype, id, key_len }
    }
}

impl From<TransformView> for Xform {
    fn from(t: TransformView) -> Self {
        Xform::new(t.ttype, t.id, t.key_len)
    }
}

/// IKE SA encryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IkeEncr {
    /// AES-CBC-128.
    AesCbc128,
    /// AES-CBC-192.
    AesCbc192,
    /// AES-CBC-256.
    AesCbc256,
    /// AES-GCM with 16-byte ICV, 128-bit key (RFC 5282).
    AesGcm128,
    /// AES-GCM with 16-byte ICV, 256-bit key (RFC 5282).
    AesGcm256,
    /// ChaCha20-Poly1305 (RFC 7634).
    ChaCha20Poly1305,
}

impl IkeEncr {
    /// Combined mode.
    pub const fn is_aead(self) -> bool {
        matches!(
            self,
            Self::AesGcm128 | Self::AesGcm256 | Self::ChaCha20Poly1305
        )
    }
    /// Key material length (AEAD: key + 4-byte salt).
    pub const fn key_len(self) -> usize {
        match self {
            Self::AesCbc128 => 16,
            Self::AesCbc192 => 24,
            Self::AesCbc256 => 32,
            Self::AesGcm128 => 20,
            Self::AesGcm256 => 36,
            Self::ChaCha20Poly1305 => 36,
        }
    }
    fn xform(self) -> Xform {
        let (id, bits) = match self {
            Self::AesCbc128 => (encr_id::AES_CBC, 128),
            Self::AesCbc192 => (encr_id::AES_CBC, 192),
            Self::AesCbc256 => (encr_id::AES_CBC, 256),
            Self::AesGcm128 => (encr_id::AES_GCM_16, 128),
            Self::AesGcm256 => (encr_id::AES_GCM_16, 256),
            // no Key Length attribute (RFC 7634 §3)
            Self::ChaCha20Poly1305 => {
                return Xform::new(ttype::ENCR, encr_id::CHACHA20_POLY1305, None)
            }
        };
        Xform::new(ttype::ENCR, id, Some(bits))
    }
    fn from_xform(x: Xform) -> Option<Self> {
        Some(match (x.id, x.key_len) {
            (encr_id::AES_CBC, Some(128)) => Self::AesCbc128,
            (encr_id::AES_CBC, Some(192)) => Self::AesCbc192,
            (encr_id::AES_CBC, Some(256)) => Self::AesCbc256,
            (encr_id::AES_GCM_16, Some(128)) => Self::AesGcm128,
            (encr_id::AES_GCM_16, Some(256)) => Self::AesGcm256,
            (encr_id::CHACHA20_POLY1305, None) => Self::ChaCha20Poly1305,
            _ => return None,
        })
    }
}

/// IKE SA integrity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IkeInteg {
    /// HMAC-SHA1-96.
    HmacSha1_96,
    /// HMAC-SHA-256-128.
    HmacSha256_128,
    /// HMAC-SHA-384-192.
    HmacSha384_192,
    /// HMAC-SHA-512-256.
    HmacSha512_256,
}

impl IkeInteg {
    /// Key length.
    pub const fn key_len(self) -> usize {
        match self {
            Self::HmacSha1_96 => 20,
            Self::HmacSha256_128 => 32,
            Self::HmacSha384_192 => 48,
            Self::HmacSha512_256 => 64,
        }
    }
    /// Truncated ICV length.
    pub const fn icv_len(self) -> usize {
        match self {
            Self::HmacSha1_96 => 12,
            Self::HmacSha256_128 => 16,
            Self::HmacSha384_192 => 24,
            Self::HmacSha512_256 => 32,
        }
    }
    /// The HMAC's hash, as a PRF.
    pub const fn hash(self) -> PrfAlg {
        match self {
            Self::HmacSha1_96 => PrfAlg::HmacSha1,
            Self::HmacSha256_128 => PrfAlg::HmacSha256,
            Self::HmacSha384_192 => PrfAlg::HmacSha384,
            Self::HmacSha512_256 => PrfAlg::HmacSha512,
        }
    }
    fn id(self) -> u16 {
        match self {
            Self::HmacSha1_96 => integ_id::SHA1_96,
            Self::HmacSha256_128 => integ_id::SHA256_128,
            Self::HmacSha384_192 => integ_id::SHA384_192,
            Self::HmacSha512_256 => integ_id::SHA512_256,
        }
    }
    fn from_id(id: u16) -> Option<Self> {
        Some(match id {
            integ_id::SHA1_96 => Self::HmacSha1_96,
            integ_id::SHA256_128 => Self::HmacSha256_128,
            integ_id::SHA384_192 => Self::HmacSha384_192,
            integ_id::SHA512_256 => Self::HmacSha512_256,
            _ => return None,
        })
    }
}

/// Pseudo-random function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrfAlg {
    /// PRF_HMAC_SHA1.
    HmacSha1,
    /// PRF_HMAC_SHA2_256.
    HmacSha256,
    /// PRF_HMAC_SHA2_384.
    HmacSha384,
    /// PRF_HMAC_SHA2_512.
    HmacSha512,
}

impl PrfAlg {
    /// Output (and preferred key) length.
    pub const fn out_len(self) -> usize {
        match self {
            Self::HmacSha1 => 20,
            Self::HmacSha256 => 32,
            Self::HmacSha384 => 48,
            Self::HmacSha512 => 64,
        }
    }
    fn id(self) -> u16 {
        match self {
            Self::HmacSha1 => prf_id::SHA1,
            Self::HmacSha256 => prf_id::SHA256,
            Self::HmacSha384 => prf_id::SHA384,
            Self::HmacSha512 => prf_id::SHA512,
        }
    }
    fn from_id(id: u16) -> Option<Self> {
        Some(match id {
            prf_id::SHA1 => Self::HmacSha1,
            prf_id::SHA256 => Self::HmacSha256,
            prf_id::SHA384 => Self::HmacSha384,
            prf_id::SHA512 => Self::HmacSha512,
            _ => return None,
        })
    }
}

/// Diffie-Hellman group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// MODP-1024 (group 2; legacy, RFC 8247 SHOULD NOT).
    Modp1024,
    /// MODP-2048 (group 14).
    Modp2048,
    /// MODP-3072 (group 15).
    Modp3072,
    /// MODP-4096 (group 16).
    Modp4096,
    /// MODP-6144 (group 17).
    Modp6144,
    /// MODP-8192 (group 18).
    Modp8192,
    /// NIST P-521 (group 21).
    Ecp521,
    /// NIST P-256 (group 19).
    Ecp256,
    /// NIST P-384 (group 20).
    Ecp384,
    /// Curve25519 (group 31).
    Curve25519,
}

impl DhGroup {
    /// IANA group number.
    pub const fn number(self) -> u16 {
        match self {
            Self::Modp1024 => 2,
            Self::Modp2048 => 14,
            Self::Modp3072 => 15,
            Self::Modp4096 => 16,
            Self::Modp6144 => 17,
            Self::Modp8192 => 18,
            Self::Ecp521 => 21,
            Self::Ecp256 => 19,
            Self::Ecp384 => 20,
            Self::Curve25519 => 31,
        }
    }
    /// Group by number.
    pub fn from_number(n: u16) -> Option<Self> {
        Some(match n {
            2 => Self::Modp1024,
            14 => Self::Modp2048,
            15 => Self::Modp3072,
            16 => Self::Modp4096,
            17 => Self::Modp6144,
            18 => Self::Modp8192,
            21 => Self::Ecp521,
            19 => Self::Ecp256,
            20 => Self::Ecp384,
            31 => Self::Curve25519,
            _ => return None,
        })
    }
    /// strongSwan keyword.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Modp1024 => "modp1024",
            Self::Modp2048 => "modp2048",
            Self::Modp3072 => "modp3072",
            Self::Modp4096 => "modp4096",
            Self::Modp6144 => "modp6144",
            Self::Modp8192 => "modp8192",
            Self::Ecp521 => "ecp521",
            Self::Ecp256 => "ecp256",
            Self::Ecp384 => "ecp384",
            Self::Curve25519 => "curve25519",
        }
    }
    /// Public value length on the wire.
    pub const fn public_len(self) -> usize {
        match self {
            Self::Modp1024 => 128,
            Self::Modp2048 => 256,
            Self::Modp3072 => 384,
            Self::Modp4096 => 512,
            Self::Modp6144 => 768,
            Self::Modp8192 => 1024,
            Self::Ecp521 => 132,
            Self::Ecp256 => 64,
            Self::Ecp384 => 96,
            Self::Curve25519 => 32,
        }
    }
}

/// A configured IKE SA proposal: every combination of the listed algorithms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeProposal {
    /// Encryption algorithms, preferred first.
    pub encr: Vec<IkeEncr>,
    /// Integrity (empty for AEAD-only proposals).
    pub integ: Vec<IkeInteg>,
    /// PRFs.
    pub prf: Vec<PrfAlg>,
    /// DH groups.
    pub dh: Vec<DhGroup>,
}

/// A configured ESP proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EspProposal {
    /// Encryption algorithms.
    pub encr: Vec<EncrAlg>,
    /// Integrity (empty for AEAD).
    pub integ: Vec<IntegAlg>,
    /// DH groups for PFS (empty: no PFS).
    pub dh: Vec<DhGroup>,
    /// ESN choices (true = ESN), preferred first.
    pub esn: Vec<bool>,
}

/// The algorithms of an established IKE SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IkeSuite {
    /// Encryption.
    pub encr: IkeEncr,
    /// Integrity (None for AEAD).
    pub integ: Option<IkeInteg>,
    /// PRF.
    pub prf: PrfAlg,
    /// DH group.
    pub dh: DhGroup,
}

/// The algorithms of a negotiated child SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildSuite {
    /// ESP encryption.
    pub encr: EncrAlg,
    /// ESP integrity (None for AEAD).
    pub integ: IntegAlg,
    /// Extended sequence numbers.
    pub esn: bool,
    /// PFS group, when the exchange had a KE.
    pub dh: Option<DhGroup>,
}

fn esp_encr_xform(e: EncrAlg) -> Xform {
    let (id, kl) = match e {
        EncrAlg::Null => (encr_id::NULL, None),
        EncrAlg::AesCbc128 => (encr_id::AES_CBC, Some(128)),
        EncrAlg::AesCbc256 => (encr_id::AES_CBC, Some(256)),
        EncrAlg::AesGcm128 => (encr_id::AES_GCM_16, Some(128)),
        EncrAlg::AesGcm256 => (encr_id::AES_GCM_16, Some(256)),
        EncrAlg::ChaCha20Poly1305 => (encr_id::CHACHA20_POLY1305, None),
        EncrAlg::TripleDesCbc => (encr_id::DES3, None),
    };
    Xform::new(ttype::ENCR, id, kl)
}
fn esp_encr_from(x: Xform) -> Option<EncrAlg> {
    Some(match (x.id, x.key_len) {
        (encr_id::NULL, None) => EncrAlg::Null,
        (encr_id::AES_CBC, Some(128)) => EncrAlg::AesCbc128,
        (encr_id::AES_CBC, Some(256)) => EncrAlg::AesCbc256,
        (encr_id::AES_GCM_16, Some(128)) => EncrAlg::AesGcm128,
        (encr_id::AES_GCM_16, Some(256)) => EncrAlg::AesGcm256,
        (encr_id::CHACHA20_POLY1305, None) => EncrAlg::ChaCha20Poly1305,
        (encr_id::DES3, None) => EncrAlg::TripleDesCbc,
        _ => return None,
    })
}
fn esp_integ_id(i: IntegAlg) -> u16 {
    match i {
        IntegAlg::None => 0,
        IntegAlg::HmacSha1_96 => integ_id::SHA1_96,
        IntegAlg::HmacSha256_128 => integ_id::SHA256_128,
        IntegAlg::HmacSha384_192 => integ_id::SHA384_192,
        IntegAlg::HmacSha512_256 => integ_id::SHA512_256,
        IntegAlg::HmacMd5_96 => integ_id::MD5_96,
    }
}
fn esp_integ_from(id: u16) -> Option<IntegAlg> {
    Some(match id {
        0 => IntegAlg::None,
        integ_id::SHA1_96 => IntegAlg::HmacSha1_96,
        integ_id::SHA256_128 => IntegAlg::HmacSha256_128,
        integ_id::SHA384_192 => IntegAlg::HmacSha384_192,
        integ_id::SHA512_256 => IntegAlg::HmacSha512_256,
        integ_id::MD5_96 => IntegAlg::HmacMd5_96,
        _ => return None,
    })
}

impl IkeProposal {
    /// The transforms as sent in an SA payload.
    pub fn xforms(&self) -> Vec<Xform> {
        let mut v: Vec<Xform> = self.encr.iter().map(|e| e.xform()).collect();
        v.extend(
            self.prf
                .iter()
                .map(|p| Xform::new(ttype::PRF, p.id(), None)),
        );
        v.extend(
            self.integ
                .iter()
                .map(|i| Xform::new(ttype::INTEG, i.id(), None)),
        );
        v.extend(
            self.dh
                .iter()
                .map(|d| Xform::new(ttype::DH, d.number(), None)),
        );
        v
    }
}

impl EspProposal {
    /// The transforms as sent in an SA payload; `with_dh` false strips DH (IKE_AUTH).
    pub fn xforms(&self, with_dh: bool) -> Vec<Xform> {
        let mut v: Vec<Xform> = self.encr.iter().map(|e| esp_encr_xform(*e)).collect();
        v.extend(
            self.integ
                .iter()
                .filter(|i| **i != IntegAlg::None)
                .map(|i| Xform::new(ttype::INTEG, esp_integ_id(*i), None)),
        );
        if with_dh {
            v.extend(
                self.dh
                    .iter()
                    .map(|d| Xform::new(ttype::DH, d.number(), None)),
            );
        }
        let esn = if self.esn.is_empty() {
            &[false][..]
        } else {
            &self.esn[..]
        };
        v.extend(
            esn.iter()
                .map(|e| Xform::new(ttype::ESN, u16::from(*e), None)),
        );
        v
    }
}

/// Chooses one transform of each type from `ours` that `theirs` also offers
/// (ours in preference order). Types absent on a side count as "NONE" (ID 0)
/// for INTEG, DH and ESN. `skip_dh` ignores DH entirely (IKE_AUTH child SAs).
pub fn match_xforms(ours: &[Xform], theirs: &[Xform], skip_dh: bool) -> Option<Vec<Xform>> {
    let mut out = Vec::new();
    for t in [ttype::ENCR, ttype::PRF, ttype::INTEG, ttype::DH, ttype::ESN] {
        if skip_dh && t == ttype::DH {
            continue;
        }
        let none = [Xform::new(t, 0, None)];
        let o: Vec<Xform> = ours.iter().copied().filter(|x| x.ttype == t).collect();
        let th: Vec<Xform> = theirs.iter().copied().filter(|x| x.ttype == t).collect();
        if o.is_empty() && th.is_empty() {
            continue;
        }
        let noneable = matches!(t, ttype::INTEG | ttype::DH | ttype::ESN);
        let o = if o.is_empty() && noneable {
            none.to_vec()
        } else {
            o
        };
        let th = if th.is_empty() && noneable {
            none.to_vec()
        } else {
            th
        };
        let pick = o.iter().find(|x| th.contains(x))?;
        if pick.id != 0 || t == ttype::ESN {
            out.push(*pick);
        }
    }
    Some(out)
}

impl IkeSuite {
    /// Typed suite from a chosen transform set.
    pub fn from_xforms(x: &[Xform]) -> Option<Self> {
        let mut encr = None;
        let mut integ = None;
        let mut prf = None;
        let mut dh = None;
        for t in x {
            match t.ttype {
                ttype::ENCR => encr = Some(IkeEncr::from_xform(*t)?),
                ttype::INTEG => integ = Some(IkeInteg::from_id(t.id)?),
                ttype::PRF => prf = Some(PrfAlg::from_id(t.id)?),
                ttype::DH => dh = Some(DhGroup::from_number(t.id)?),
                _ => return None,
            }
        }
        let encr = encr?;
        if encr.is_aead() == integ.is_some() {
            return None;
        }
        Some(IkeSuite {
            encr,
            integ,
            prf: prf?,
            dh: dh?,
        })
    }
    /// Transforms for the one-proposal answer.
    pub fn xforms(&self) -> Vec<Xform> {
        IkeProposal {
            encr: vec![self.encr],
            integ: self.integ.into_iter().collect(),
            prf: vec![self.prf],
            dh: vec![self.dh],
        }
        .xforms()
    }
}

impl fmt::Display for IkeSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", xforms_to_string(&self.xforms(), true))
    }
}

impl ChildSuite {
    /// Typed suite from a chosen transform set.
    pub fn from_xforms(x: &[Xform]) -> Option<Self> {
        let mut encr = None;
        let mut integ = IntegAlg::None;
        let mut esn = false;
        let mut dh = None;
        for t in x {
            match t.ttype {
                ttype::ENCR => encr = Some(esp_encr_from(*t)?),
                ttype::INTEG => integ = esp_integ_from(t.id)?,
                ttype::DH => dh = Some(DhGroup::from_number(t.id)?),
                ttype::ESN => esn = t.id == 1,
                _ => return None,
            }
        }
        let encr = encr?;
        if encr.is_aead() != (integ == IntegAlg::None) {
            return None;
        }
        Some(ChildSuite {
            encr,
            integ,
            esn,
            dh,
        })
    }
    /// Transforms for the one-proposal answer.
    pub fn xforms(&self) -> Vec<Xform> {
        EspProposal {
            encr: vec![self.encr],
            integ: vec![self.integ],
            dh: self.dh.into_iter().collect(),
            esn: vec![self.esn],
        }
        .xforms(true)
    }
    /// The dataplane suite.
    pub fn suite(&self) -> dataplane::crypto::Suite {
        dataplane::crypto::Suite {
            encr: self.encr,
            integ: self.integ,
        }
    }
}

impl fmt::Display for ChildSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", xforms_to_string(&self.xforms(), false))
    }
}

/// strongSwan-style name of any transform (known or not).
pub fn xform_name(x: &Xform, ike: bool) -> String {
    match x.ttype {
        ttype::ENCR => match (x.id, x.key_len) {
            (encr_id::AES_CBC, Some(b)) => format!("aes{b}"),
            (encr_id::AES_GCM_16, Some(b)) => format!("aes{b}gcm16"),
            (encr_id::DES3, _) => "3des".into(),
            (encr_id::NULL, _) => "null".into(),
            (encr_id::CHACHA20_POLY1305, _) => "chacha20poly1305".into(),
            (8, Some(b)) => format!("aes{b}gcm8"),
            (19, Some(b)) => format!("aes{b}gcm12"),
            (13, Some(b)) => format!("aes{b}ctr"),
            (id, Some(b)) => format!("ENCR_{id}_{b}"),
            (id, None) => format!("ENCR_{id}"),
        },
        ttype::PRF => match x.id {
            1 => "prfmd5".into(),
            prf_id::SHA1 => "prfsha1".into(),
            4 => "prfaesxcbc".into(),
            prf_id::SHA256 => "prfsha256".into(),
            prf_id::SHA384 => "prfsha384".into(),
            prf_id::SHA512 => "prfsha512".into(),
            id => format!("PRF_{id}"),
        },
        ttype::INTEG => match x.id {
            integ_id::MD5_96 => "md5".into(),
            integ_id::SHA1_96 => "sha1".into(),
            integ_id::SHA256_128 => "sha256".into(),
            integ_id::SHA384_192 => "sha384".into(),
            integ_id::SHA512_256 => "sha512".into(),
            5 => "aesxcbc".into(),
            id => format!("INTEG_{id}"),
        },
        ttype::DH => match x.id {
            1 => "modp768".into(),
            5 => "modp1536".into(),
            32 => "curve448".into(),
            id => DhGroup::from_number(id)
                .map(|g| g.name().to_string())
                .unwrap_or_else(|| format!("DH_{id}")),
        },
        ttype::ESN => {
            if ike {
                format!("ESN_{}", x.id)
            } else if x.id == 1 {
                "esn".into()
            } else {
                "noesn".into()
            }
        }
        t => format!("T{t}_{}", x.id),
    }
}

/// A transform list in strongSwan notation (`aes128gcm16-prfsha256-ecp256`).
pub fn xforms_to_string(x: &[Xform], ike: bool) -> String {
    let has_esn = x.iter().any(|x| x.ttype == ttype::ESN && x.id == 1);
    let mut parts = Vec::new();
    for t in [ttype::ENCR, ttype::INTEG, ttype::PRF, ttype::DH, ttype::ESN] {
        for x in x.iter().filter(|x| x.ttype == t) {
            // "noesn" is the default: printed only when ESN is offered as well
            if !ike && t == ttype::ESN && x.id == 0 && !has_esn {
                continue;
            }
            parts.push(xform_name(x, ike));
        }
    }
    parts.join("-")
}

impl fmt::Display for IkeProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", xforms_to_string(&self.xforms(), true))
    }
}
impl fmt::Display for EspProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", xforms_to_string(&self.xforms(true), false))
    }
}

// ------------------------------------------------------------------ parsing

/// Translates one seeds-style proposal (`AES SHA 14`, `AES-256 SHA-256 19`,
/// `3DES MD5 2`) into strongSwan tokens.
fn seed_tokens(s: &str) -> Result<Vec<String>, IkeError> {
    let mut out = Vec::new();
    for w in s.split_whitespace() {
        let l = w.to_ascii_lowercase();
        let tok = match l.as_str() {
            "aes" | "aes128" | "aes-128" => "aes128".to_string(),
            "aes-192" | "aes192" => "aes192".into(),
            "aes-256" | "aes256" => "aes256".into(),
            "3des" => "3des".into(),
            "md5" | "md5-128" | "md5_128" => "md5".into(),
            "sha" | "sha1" | "sha-1" => "sha1".into(),
            "sha-256" | "sha256" | "sha2_256" => "sha256".into(),
            "sha-384" | "sha384" | "sha2_384" => "sha384".into(),
            "sha-512" | "sha512" | "sha2_512" => "sha512".into(),
            n if n.chars().all(|c| c.is_ascii_digit()) => {
                let g: u16 = n
                    .parse()
                    .map_err(|_| IkeError::Config(format!("DH group {n:?} is not a number")))?;
                match DhGroup::from_number(g) {
                    Some(g) => g.name().into(),
                    None => {
                        return Err(IkeError::Config(format!(
                            "DH group {g} is not supported (supported: 2, 14, 15, 16, 17, 18, 19, 20, 21, 31)"
                        )))
                    }
                }
            }
            other => other.to_string(),
        };
        out.push(tok);
    }
    Ok(out)
}

fn split_proposals(s: &str) -> Vec<&str> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn tokens(p: &str) -> Result<Vec<String>, IkeError> {
    if p.contains(char::is_whitespace) {
        seed_tokens(p)
    } else {
        Ok(p.split('-').map(|t| t.to_ascii_lowercase()).collect())
    }
}

fn dh_token(t: &str) -> Option<DhGroup> {
    Some(match t {
        "modp1024" => DhGroup::Modp1024,
        "modp2048" => DhGroup::Modp2048,
        "modp3072" => DhGroup::Modp3072,
        "modp4096" => DhGroup::Modp4096,
        "modp6144" => DhGroup::Modp6144,
        "modp8192" => DhGroup::Modp8192,
        "ecp521" => DhGroup::Ecp521,
        "ecp256" => DhGroup::Ecp256,
        "ecp384" => DhGroup::Ecp384,
        "curve25519" | "x25519" => DhGroup::Curve25519,
        _ => return None,
    })
}
fn hash_token(t: &str) -> Option<(IkeInteg, IntegAlg, PrfAlg)> {
    Some(match t {
        "sha1" | "sha" => (
            IkeInteg::HmacSha1_96,
            IntegAlg::HmacSha1_96,
            PrfAlg::HmacSha1,
        ),
        "sha256" | "sha2_256" => (
            IkeInteg::HmacSha256_128,
            IntegAlg::HmacSha256_128,
            PrfAlg::HmacSha256,
        ),
        "sha384" | "sha2_384" => (
            IkeInteg::HmacSha384_192,
            IntegAlg::HmacSha384_192,
            PrfAlg::HmacSha384,
        ),
        "sha512" | "sha2_512" => (
            IkeInteg::HmacSha512_256,
            IntegAlg::HmacSha512_256,
            PrfAlg::HmacSha512,
        ),
        _ => return None,
    })
}
fn prf_token(t: &str) -> Option<PrfAlg> {
    Some(match t {
        "prfsha1" => PrfAlg::HmacSha1,
        "prfsha256" => PrfAlg::HmacSha256,
        "prfsha384" => PrfAlg::HmacSha384,
        "prfsha512" => PrfAlg::HmacSha512,
        _ => return None,
    })
}
fn unsupported(what: &str, t: &str) -> IkeError {
    IkeError::Config(format!("{what}: algorithm {t:?} is not supported"))
}

/// Parses IKE proposals: comma-separated, each in strongSwan or seeds form.
pub fn parse_ike_proposals(s: &str) -> Result<Vec<IkeProposal>, IkeError> {
    let mut out = Vec::new();
    for p in split_proposals(s) {
        let mut prop = IkeProposal {
            encr: vec![],
            integ: vec![],
            prf: vec![],
            dh: vec![],
        };
        let mut hashes = Vec::new();
        for t in tokens(p)? {
            let t = t.as_str();
            match t {
                "aes" | "aes128" => prop.encr.push(IkeEncr::AesCbc128),
                "aes192" => prop.encr.push(IkeEncr::AesCbc192),
                "aes256" => prop.encr.push(IkeEncr::AesCbc256),
                "aes128gcm16" | "aes128gcm" | "aes128gcm128" => prop.encr.push(IkeEncr::AesGcm128),
                "aes256gcm16" | "aes256gcm" | "aes256gcm128" => prop.encr.push(IkeEncr::AesGcm256),
                "chacha20poly1305" => prop.encr.push(IkeEncr::ChaCha20Poly1305),
                "3des" | "md5" | "prfmd5" => {
                    return Err(IkeError::Config(format!(
                        "IKE proposal {p:?}: {t} is not supported for IKE SAs (legacy, RFC 8247); use aes/sha2"
                    )))
                }
                _ => {
                    if let Some(h) = hash_token(t) {
                        hashes.push(h);
                    } else if let Some(f) = prf_token(t) {
                        prop.prf.push(f);
                    } else if let Some(g) = dh_token(t) {
                        prop.dh.push(g);
                    } else {
                        return Err(unsupported(&format!("IKE proposal {p:?}"), t));
                    }
                }
            }
        }
        let aead = prop.encr.iter().any(|e| e.is_aead());
        let plain = prop.encr.iter().any(|e| !e.is_aead());
        if aead && plain {
            return Err(IkeError::Config(format!(
                "IKE proposal {p:?} mixes AEAD and non-AEAD encryption; write two proposals"
            )));
        }
        let explicit_prf = !prop.prf.is_empty();
        for (i, _, f) in &hashes {
            if !aead {
                prop.integ.push(*i);
            }
            if !explicit_prf && !prop.prf.contains(f) {
                prop.prf.push(*f);
            }
        }
        if prop.encr.is_empty() {
            return Err(IkeError::Config(format!(
                "IKE proposal {p:?}: no encryption algorithm"
            )));
        }
        if !aead && prop.integ.is_empty() {
            return Err(IkeError::Config(format!(
                "IKE proposal {p:?}: no integrity algorithm"
            )));
        }
        if prop.prf.is_empty() {
            return Err(IkeError::Config(format!("IKE proposal {p:?}: no PRF")));
        }
        if prop.dh.is_empty() {
            return Err(IkeError::Config(format!("IKE proposal {p:?}: no DH group")));
        }
        out.push(prop);
    }
    if out.is_empty() {
        return Err(IkeError::Config("empty IKE proposal list".into()));
    }
    Ok(out)
}

/// Parses ESP proposals: comma-separated, each in strongSwan or seeds form.
/// A DH group in a proposal means PFS with that group.
pub fn parse_esp_proposals(s: &str) -> Result<Vec<EspProposal>, IkeError> {
    let mut out = Vec::new();
    for p in split_proposals(s) {
        let mut prop = EspProposal {
            encr: vec![],
            integ: vec![],
            dh: vec![],
            esn: vec![],
        };
        for t in tokens(p)? {
            let t = t.as_str();
            match t {
                "aes" | "aes128" => prop.encr.push(EncrAlg::AesCbc128),
                "aes256" => prop.encr.push(EncrAlg::AesCbc256),
                "aes128gcm16" | "aes128gcm" | "aes128gcm128" => prop.encr.push(EncrAlg::AesGcm128),
                "aes256gcm16" | "aes256gcm" | "aes256gcm128" => prop.encr.push(EncrAlg::AesGcm256),
                "chacha20poly1305" => prop.encr.push(EncrAlg::ChaCha20Poly1305),
                "3des" => prop.encr.push(EncrAlg::TripleDesCbc),
                "null" => prop.encr.push(EncrAlg::Null),
                "md5" => prop.integ.push(IntegAlg::HmacMd5_96),
                "esn" => prop.esn.push(true),
                "noesn" => prop.esn.push(false),
                _ => {
                    if let Some((_, i, _)) = hash_token(t) {
                        prop.integ.push(i);
                    } else if let Some(g) = dh_token(t) {
                        prop.dh.push(g);
                    } else {
                        return Err(unsupported(&format!("ESP proposal {p:?}"), t));
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
        let plain = prop.encr.iter().any(|e| !e.is_aead());
        if aead && plain {
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
        if prop.esn.is_empty() {
            prop.esn.push(false);
        }
        out.push(prop);
    }
    if out.is_empty() {
        return Err(IkeError::Config("empty ESP proposal list".into()));
    }
    Ok(out)
}

/// strongSwan's default IKE proposals for this engine: AES-GCM and AES-CBC with
/// SHA-2, groups 19, 20, 31, 14.
pub fn default_ike_proposals() -> Vec<IkeProposal> {
    parse_ike_proposals(
        "aes128gcm16-aes256gcm16-prfsha256-prfsha384-prfsha512-ecp256-curve25519-ecp384-modp2048,\
         aes128-aes256-sha256-sha384-sha512-ecp256-curve25519-ecp384-modp2048",
    )
    .unwrap_or_default()
}

/// Default ESP proposals: AES-GCM, then AES-CBC with SHA-2.
pub fn default_esp_proposals() -> Vec<EspProposal> {
    parse_esp_proposals("aes128gcm16-aes256gcm16,aes128-aes256-sha256-sha384-sha512")
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strongswan_and_seed_forms() {
        let p = parse_ike_proposals("aes128gcm16-prfsha256-ecp256").unwrap();
        assert_eq!(p[0].encr, vec![IkeEncr::AesGcm128]);
        assert!(p[0].integ.is_empty());
        assert_eq!(p[0].prf, vec![PrfAlg::HmacSha256]);
        assert_eq!(p[0].dh, vec![DhGroup::Ecp256]);
        assert_eq!(p[0].to_string(), "aes128gcm16-prfsha256-ecp256");

        let p = parse_ike_proposals("aes256-sha256-modp2048").unwrap();
        assert_eq!(p[0].integ, vec![IkeInteg::HmacSha256_128]);
        assert_eq!(p[0].prf, vec![PrfAlg::HmacSha256]);
        assert_eq!(p[0].to_string(), "aes256-sha256-prfsha256-modp2048");

        let p = parse_ike_proposals("AES SHA 14").unwrap();
        assert_eq!(p[0].encr, vec![IkeEncr::AesCbc128]);
        assert_eq!(p[0].integ, vec![IkeInteg::HmacSha1_96]);
        assert_eq!(p[0].prf, vec![PrfAlg::HmacSha1]);
        assert_eq!(p[0].dh, vec![DhGroup::Modp2048]);

        let p = parse_ike_proposals("aes128-sha1-modp1024").unwrap();
        assert_eq!(p[0].dh, vec![DhGroup::Modp1024]);
        let p = parse_ike_proposals("AES-256 SHA-256 19").unwrap();
        assert_eq!(p[0].to_string(), "aes256-sha256-prfsha256-ecp256");

        let e = parse_ike_proposals("3DES MD5 2").unwrap_err().to_string();
        assert!(e.contains("3des"), "{e}");
        let e = parse_ike_proposals("AES SHA 5").unwrap_err().to_string();
        assert!(e.contains("DH group 5"), "{e}");

        let e = parse_esp_proposals("aes128gcm16").unwrap();
        assert_eq!(e[0].encr, vec![EncrAlg::AesGcm128]);
        assert_eq!(e[0].esn, vec![false]);
        let e = parse_esp_proposals("aes256-sha256").unwrap();
        assert_eq!(e[0].integ, vec![IntegAlg::HmacSha256_128]);
        let e = parse_esp_proposals("AES SHA 2").unwrap();
        assert_eq!(e[0].dh, vec![DhGroup::Modp1024]);
        let e = parse_esp_proposals("3DES MD5").unwrap();
        assert_eq!(e[0].encr, vec![EncrAlg::TripleDesCbc]);
        assert_eq!(e[0].integ, vec![IntegAlg::HmacMd5_96]);
        assert!(parse_esp_proposals("aes128gcm16-sha256").is_err());
        assert!(parse_esp_proposals("blowfish-sha1").is_err());
    }

    /// The proposal of issue 13 that used to be refused.
    #[test]
    fn chacha20poly1305_and_strongswan_groups() {
        let p = parse_ike_proposals("chacha20poly1305-prfsha512-curve25519").unwrap();
        assert_eq!(p[0].encr, vec![IkeEncr::ChaCha20Poly1305]);
        assert!(p[0].integ.is_empty());
        assert_eq!(p[0].to_string(), "chacha20poly1305-prfsha512-curve25519");
        let x = p[0].xforms();
        assert_eq!(
            x[0],
            Xform::new(ttype::ENCR, 28, None),
            "no key length attribute"
        );
        for (s, g) in [
            ("modp3072", 15),
            ("modp4096", 16),
            ("modp6144", 17),
            ("modp8192", 18),
            ("ecp521", 21),
        ] {
            let p = parse_ike_proposals(&format!("aes256-sha384-{s}")).unwrap();
            assert_eq!(p[0].dh[0].number(), g);
            assert_eq!(p[0].to_string(), format!("aes256-sha384-prfsha384-{s}"));
        }
        assert!(parse_ike_proposals("aes256-sha256-curve448").is_err());
    }

    #[test]
    fn matching_prefers_ours_and_treats_absent_as_none() {
        let ours = parse_esp_proposals("aes256gcm16-aes128gcm16")
            .unwrap()
            .remove(0)
            .xforms(true);
        let theirs = parse_esp_proposals("aes128gcm16-aes256gcm16-esn-noesn")
            .unwrap()
            .remove(0)
            .xforms(true);
        let m = match_xforms(&ours, &theirs, false).unwrap();
        let s = ChildSuite::from_xforms(&m).unwrap();
        assert_eq!(s.encr, EncrAlg::AesGcm256);
        assert!(!s.esn);
        // PFS on their side, none on ours: no match unless DH is skipped
        let theirs = parse_esp_proposals("aes128gcm16-ecp256")
            .unwrap()
            .remove(0)
            .xforms(true);
        assert!(match_xforms(&ours, &theirs, false).is_none());
        assert!(match_xforms(&ours, &theirs, true).is_some());
    }
}
