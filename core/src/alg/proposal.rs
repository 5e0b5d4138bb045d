//! Proposals as operators write them and as IKEv2 carries them (RFC 7296
//! §3.3): strongSwan's `aes128gcm16-prfsha256-ecp256` /
//! `aes256-sha256-modp2048` (ESP: `aes128gcm16`, `aes256-sha256-ecp256`),
//! or the router-CLI form (an mbox/VyOS-style `ike-policy`) `AES SHA 14`, `AES-256 SHA-256 19`,
//! `aes128-sha1-modp1024`. Every algorithm word is looked up in the tables
//! ([`super::esp`], [`super::ike`]); the grammar (separators, DH numbers in
//! the router-CLI form, ESN words, what a proposal must contain) is here.
//! Negotiation (matching an offer against ours) is the IKE engine's.

use std::fmt;

use super::compact;
use super::esp::{EncrAlg, IntegAlg, Suite};
use super::ike::{DhGroup, IkeEncr, IkeInteg, PrfAlg, DH_TABLE};

/// Transform types (RFC 7296 §3.3.2).
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

/// Why a proposal string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProposalError(pub String);

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
    /// A transform.
    pub const fn new(ttype: u8, id: u16, key_len: Option<u16>) -> Self {
        Xform { ttype, id, key_len }
    }
}

impl IkeEncr {
    /// The transform of this algorithm.
    pub fn xform(self) -> Xform {
        let r = self.row();
        Xform::new(ttype::ENCR, r.iana_id, r.key_bits)
    }
}

impl EncrAlg {
    /// The ESP transform of this algorithm.
    pub fn xform(self) -> Xform {
        let r = self.row();
        Xform::new(ttype::ENCR, r.iana_id, r.key_bits)
    }
    /// The ESP algorithm of a transform.
    pub fn from_xform(x: Xform) -> Option<EncrAlg> {
        EncrAlg::ALL
            .into_iter()
            .find(|e| e.row().iana_id == x.id && e.row().key_bits == x.key_len)
    }
}

impl IntegAlg {
    /// The ESP algorithm of a transform type 3 ID (0: none).
    pub fn from_iana(id: u16) -> Option<IntegAlg> {
        IntegAlg::ALL.into_iter().find(|i| i.row().iana_id == id)
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

impl IkeProposal {
    /// The transforms as sent in an SA payload.
    pub fn xforms(&self) -> Vec<Xform> {
        let mut v: Vec<Xform> = self.encr.iter().map(|e| e.xform()).collect();
        v.extend(
            self.prf
                .iter()
                .map(|p| Xform::new(ttype::PRF, p.iana_id(), None)),
        );
        v.extend(
            self.integ
                .iter()
                .map(|i| Xform::new(ttype::INTEG, i.iana_id(), None)),
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
        let mut v: Vec<Xform> = self.encr.iter().map(|e| e.xform()).collect();
        v.extend(
            self.integ
                .iter()
                .filter(|i| **i != IntegAlg::None)
                .map(|i| Xform::new(ttype::INTEG, i.row().iana_id, None)),
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

impl IkeSuite {
    /// Typed suite from a chosen transform set.
    pub fn from_xforms(x: &[Xform]) -> Option<Self> {
        let mut encr = None;
        let mut integ = None;
        let mut prf = None;
        let mut dh = None;
        for t in x {
            match t.ttype {
                ttype::ENCR => encr = Some(IkeEncr::from_iana(t.id, t.key_len)?),
                ttype::INTEG => integ = Some(IkeInteg::from_iana(t.id)?),
                ttype::PRF => prf = Some(PrfAlg::from_iana(t.id)?),
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
                ttype::ENCR => encr = Some(EncrAlg::from_xform(*t)?),
                ttype::INTEG => integ = IntegAlg::from_iana(t.id)?,
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
    /// The ESP suite the dataplane runs.
    pub fn suite(&self) -> Suite {
        Suite {
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

/// strongSwan-style name of any transform, known or not (peers' offers are
/// printed with it).
pub fn xform_name(x: &Xform, ike: bool) -> String {
    match x.ttype {
        ttype::ENCR => {
            if let Some(e) = EncrAlg::from_xform(*x) {
                return e.row().keyword.into();
            }
            if let Some(e) = IkeEncr::from_iana(x.id, x.key_len) {
                return e.row().keyword.into();
            }
            match (x.id, x.key_len) {
                // 3DES with a (needless) key length attribute
                (3, _) => "3des".into(),
                (11, _) => "null".into(),
                (28, _) => "chacha20poly1305".into(),
                (12, Some(b)) => format!("aes{b}"),
                (20, Some(b)) => format!("aes{b}gcm16"),
                (8, Some(b)) => format!("aes{b}gcm8"),
                (19, Some(b)) => format!("aes{b}gcm12"),
                (13, Some(b)) => format!("aes{b}ctr"),
                (id, Some(b)) => format!("ENCR_{id}_{b}"),
                (id, None) => format!("ENCR_{id}"),
            }
        }
        ttype::PRF => match PrfAlg::from_iana(x.id) {
            Some(p) => p.row().keyword.into(),
            None => match x.id {
                1 => "prfmd5".into(),
                4 => "prfaesxcbc".into(),
                id => format!("PRF_{id}"),
            },
        },
        ttype::INTEG => match IntegAlg::from_iana(x.id) {
            Some(i) if i != IntegAlg::None => i.row().keyword.into(),
            _ => match x.id {
                5 => "aesxcbc".into(),
                id => format!("INTEG_{id}"),
            },
        },
        ttype::DH => match x.id {
            1 => "modp768".into(),
            5 => "modp1536".into(),
            15 => "modp3072".into(),
            16 => "modp4096".into(),
            21 => "ecp521".into(),
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

fn cfg_err(m: String) -> ProposalError {
    ProposalError(m)
}

/// The algorithm words of one proposal: router-CLI form (whitespace-separated
/// words, DH groups as numbers: `AES-256 SHA-256 19`) or strongSwan's
/// (`-`-separated), with Openswan's `;` before the DH group
/// (`aes128-sha1;modp2048`) and Libreswan's `+` between alternatives
/// (`aes+aes256-sha1`). Words come back compact; DH numbers as group keywords.
fn tokens(p: &str) -> Result<Vec<String>, ProposalError> {
    if !p.contains(char::is_whitespace) {
        return Ok(p
            .split(['-', ';', '+'])
            .filter(|t| !t.is_empty())
            .map(compact)
            .collect());
    }
    let mut out = Vec::new();
    for w in p.split_whitespace() {
        if w.chars().all(|c| c.is_ascii_digit()) {
            let g: u16 = w
                .parse()
                .map_err(|_| cfg_err(format!("DH group {w:?} is not a number")))?;
            match DhGroup::from_number(g).filter(|g| g.ikev2()) {
                Some(g) => out.push(g.name().to_string()),
                None => {
                    let known: Vec<String> = DH_TABLE
                        .iter()
                        .filter(|r| r.ikev2)
                        .map(|r| r.number.to_string())
                        .collect();
                    return Err(cfg_err(format!(
                        "DH group {g} is not supported (supported: {})",
                        known.join(", ")
                    )));
                }
            }
        } else {
            out.push(compact(w));
        }
    }
    Ok(out)
}

fn split_proposals(s: &str) -> Vec<&str> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn unsupported(what: &str, t: &str) -> ProposalError {
    cfg_err(format!("{what}: algorithm {t:?} is not supported"))
}

/// True for a word naming a legacy algorithm IKE SAs never use (RFC 8247).
fn ike_legacy(t: &str) -> bool {
    EncrAlg::from_name(t).is_some_and(EncrAlg::is_legacy)
        || IntegAlg::from_name(t).is_some_and(IntegAlg::is_legacy)
        || t == "prfmd5"
}

/// Parses IKE proposals: comma-separated, each in strongSwan or router-CLI form.
pub fn parse_ike_proposals(s: &str) -> Result<Vec<IkeProposal>, ProposalError> {
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
            if ike_legacy(t) {
                return Err(cfg_err(format!(
                    "IKE proposal {p:?}: {t} is not supported for IKE SAs (legacy, RFC 8247); use aes/sha2"
                )));
            }
            if let Some(e) = IkeEncr::from_name(t) {
                prop.encr.push(e);
            } else if let Some(h) = IkeInteg::from_name(t) {
                hashes.push(h);
            } else if let Some(f) = PrfAlg::from_name(t) {
                prop.prf.push(f);
            } else if let Some(g) = DhGroup::from_name(t) {
                prop.dh.push(g);
            } else {
                return Err(unsupported(&format!("IKE proposal {p:?}"), t));
            }
        }
        let aead = prop.encr.iter().any(|e| e.is_aead());
        let plain = prop.encr.iter().any(|e| !e.is_aead());
        if aead && plain {
            return Err(cfg_err(format!(
                "IKE proposal {p:?} mixes AEAD and non-AEAD encryption; write two proposals"
            )));
        }
        let explicit_prf = !prop.prf.is_empty();
        for i in &hashes {
            if !aead {
                prop.integ.push(*i);
            }
            if !explicit_prf && !prop.prf.contains(&i.hash()) {
                prop.prf.push(i.hash());
            }
        }
        if prop.encr.is_empty() {
            return Err(cfg_err(format!(
                "IKE proposal {p:?}: no encryption algorithm"
            )));
        }
        if !aead && prop.integ.is_empty() {
            return Err(cfg_err(format!(
                "IKE proposal {p:?}: no integrity algorithm"
            )));
        }
        if prop.prf.is_empty() {
            return Err(cfg_err(format!("IKE proposal {p:?}: no PRF")));
        }
        if prop.dh.is_empty() {
            // Openswan/Libreswan: a left-out part is filled with the defaults
            // (`ike = "aes-sha1"`, seed 000)
            prop.dh = DEFAULT_DH.to_vec();
        }
        out.push(prop);
    }
    if out.is_empty() {
        return Err(cfg_err("empty IKE proposal list".into()));
    }
    Ok(out)
}

/// Parses ESP proposals: comma-separated, each in strongSwan or router-CLI form.
/// A DH group in a proposal means PFS with that group.
pub fn parse_esp_proposals(s: &str) -> Result<Vec<EspProposal>, ProposalError> {
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
            if let Some(e) = EncrAlg::from_name(t) {
                prop.encr.push(e);
            } else if let Some(i) = IntegAlg::from_name(t) {
                prop.integ.push(i);
            } else if let Some(g) = DhGroup::from_name(t) {
                prop.dh.push(g);
            } else if t == "esn" {
                prop.esn.push(true);
            } else if t == "noesn" {
                prop.esn.push(false);
            } else {
                return Err(unsupported(&format!("ESP proposal {p:?}"), t));
            }
        }
        if prop.encr.is_empty() {
            return Err(cfg_err(format!(
                "ESP proposal {p:?}: no encryption algorithm"
            )));
        }
        let aead = prop.encr.iter().any(|e| e.is_aead());
        let plain = prop.encr.iter().any(|e| !e.is_aead());
        if aead && plain {
            return Err(cfg_err(format!(
                "ESP proposal {p:?} mixes AEAD and non-AEAD encryption; write two proposals"
            )));
        }
        if aead && !prop.integ.is_empty() {
            return Err(cfg_err(format!(
                "ESP proposal {p:?}: AEAD encryption takes no integrity algorithm"
            )));
        }
        if !aead && prop.integ.is_empty() {
            return Err(cfg_err(format!(
                "ESP proposal {p:?}: no integrity algorithm"
            )));
        }
        if prop.esn.is_empty() {
            prop.esn.push(false);
        }
        out.push(prop);
    }
    if out.is_empty() {
        return Err(cfg_err("empty ESP proposal list".into()));
    }
    Ok(out)
}

/// The DH groups an IKE proposal that names none stands for, preferred first
/// (MODP-2048 first as in Openswan's and Libreswan's defaults and `espresso
/// import`; then the groups of strongSwan's defaults).
pub const DEFAULT_DH: [DhGroup; 6] = [
    DhGroup::Modp2048,
    DhGroup::Ecp256,
    DhGroup::Curve25519,
    DhGroup::Ecp384,
    DhGroup::Modp3072,
    DhGroup::Modp4096,
];

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
