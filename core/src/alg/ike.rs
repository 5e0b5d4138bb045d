//! IKE SA algorithms (RFC 7296 §3.3.2): encryption, integrity, PRF and
//! Diffie-Hellman groups, one row per algorithm like the ESP table. The
//! spellings are the ESP ones where the algorithm is the same (`aes128`,
//! `sha256`), so one proposal vocabulary serves both.

use super::compact;
use super::esp::{EncrAlg, IntegAlg};

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

/// Everything about one IKE encryption algorithm.
#[derive(Debug)]
pub struct IkeEncrRow {
    /// The algorithm.
    pub alg: IkeEncr,
    /// strongSwan proposal keyword.
    pub keyword: &'static str,
    /// Every spelling accepted, in compact form.
    pub aliases: &'static [&'static str],
    /// Key material length (AEAD: key + 4-byte salt).
    pub key_len: usize,
    /// Combined mode.
    pub aead: bool,
    /// IKEv2 transform type 1 ID.
    pub iana_id: u16,
    /// Key Length attribute in bits (None: the transform has none, RFC 7634 §3).
    pub key_bits: Option<u16>,
}

/// The IKE encryption algorithms, in [`IkeEncr`] discriminant order.
pub const IKE_ENCR_TABLE: [IkeEncrRow; 6] = [
    IkeEncrRow {
        alg: IkeEncr::AesCbc128,
        keyword: "aes128",
        aliases: EncrAlg::AesCbc128.row().aliases,
        key_len: 16,
        aead: false,
        iana_id: 12,
        key_bits: Some(128),
    },
    IkeEncrRow {
        alg: IkeEncr::AesCbc192,
        keyword: "aes192",
        aliases: &["aes192cbc", "aescbc192", "aes192"],
        key_len: 24,
        aead: false,
        iana_id: 12,
        key_bits: Some(192),
    },
    IkeEncrRow {
        alg: IkeEncr::AesCbc256,
        keyword: "aes256",
        aliases: EncrAlg::AesCbc256.row().aliases,
        key_len: 32,
        aead: false,
        iana_id: 12,
        key_bits: Some(256),
    },
    IkeEncrRow {
        alg: IkeEncr::AesGcm128,
        keyword: "aes128gcm16",
        aliases: EncrAlg::AesGcm128.row().aliases,
        key_len: 20,
        aead: true,
        iana_id: 20,
        key_bits: Some(128),
    },
    IkeEncrRow {
        alg: IkeEncr::AesGcm256,
        keyword: "aes256gcm16",
        aliases: EncrAlg::AesGcm256.row().aliases,
        key_len: 36,
        aead: true,
        iana_id: 20,
        key_bits: Some(256),
    },
    IkeEncrRow {
        alg: IkeEncr::ChaCha20Poly1305,
        keyword: "chacha20poly1305",
        aliases: EncrAlg::ChaCha20Poly1305.row().aliases,
        // 256-bit key + 4-byte salt (RFC 7634 §2)
        key_len: 36,
        aead: true,
        iana_id: 28,
        key_bits: None,
    },
];

impl IkeEncr {
    /// This algorithm's row of [`IKE_ENCR_TABLE`].
    pub const fn row(self) -> &'static IkeEncrRow {
        &IKE_ENCR_TABLE[self as usize]
    }
    /// Combined mode.
    pub const fn is_aead(self) -> bool {
        self.row().aead
    }
    /// Key material length (AEAD: key + 4-byte salt).
    pub const fn key_len(self) -> usize {
        self.row().key_len
    }
    /// The algorithm an operator's spelling names.
    pub fn from_name(s: &str) -> Option<IkeEncr> {
        let c = compact(s);
        IKE_ENCR_TABLE
            .iter()
            .find(|r| r.aliases.contains(&c.as_str()))
            .map(|r| r.alg)
    }
    /// The algorithm of an IKEv2 transform ID and key length attribute.
    pub fn from_iana(id: u16, key_bits: Option<u16>) -> Option<IkeEncr> {
        IKE_ENCR_TABLE
            .iter()
            .find(|r| r.iana_id == id && r.key_bits == key_bits)
            .map(|r| r.alg)
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

/// Everything about one IKE integrity algorithm: the ESP row of the same
/// HMAC (names, sizes, IANA ID) and the PRF of the same hash.
#[derive(Debug)]
pub struct IkeIntegRow {
    /// The algorithm.
    pub alg: IkeInteg,
    /// The ESP algorithm with the same HMAC (same spellings, sizes and ID).
    pub esp: IntegAlg,
    /// The PRF of the same hash (a proposal naming only `sha256` gets it).
    pub prf: PrfAlg,
}

/// The IKE integrity algorithms, in [`IkeInteg`] discriminant order.
pub const IKE_INTEG_TABLE: [IkeIntegRow; 4] = [
    IkeIntegRow {
        alg: IkeInteg::HmacSha1_96,
        esp: IntegAlg::HmacSha1_96,
        prf: PrfAlg::HmacSha1,
    },
    IkeIntegRow {
        alg: IkeInteg::HmacSha256_128,
        esp: IntegAlg::HmacSha256_128,
        prf: PrfAlg::HmacSha256,
    },
    IkeIntegRow {
        alg: IkeInteg::HmacSha384_192,
        esp: IntegAlg::HmacSha384_192,
        prf: PrfAlg::HmacSha384,
    },
    IkeIntegRow {
        alg: IkeInteg::HmacSha512_256,
        esp: IntegAlg::HmacSha512_256,
        prf: PrfAlg::HmacSha512,
    },
];

impl IkeInteg {
    /// This algorithm's row of [`IKE_INTEG_TABLE`].
    pub const fn row(self) -> &'static IkeIntegRow {
        &IKE_INTEG_TABLE[self as usize]
    }
    /// Key length.
    pub const fn key_len(self) -> usize {
        self.row().esp.key_len()
    }
    /// Truncated ICV length.
    pub const fn icv_len(self) -> usize {
        self.row().esp.icv_len()
    }
    /// The HMAC's hash, as a PRF.
    pub const fn hash(self) -> PrfAlg {
        self.row().prf
    }
    /// IKEv2 transform type 3 ID.
    pub const fn iana_id(self) -> u16 {
        self.row().esp.row().iana_id
    }
    /// The algorithm an operator's spelling names (the ESP spellings).
    pub fn from_name(s: &str) -> Option<IkeInteg> {
        let esp = IntegAlg::from_name(s)?;
        IKE_INTEG_TABLE.iter().find(|r| r.esp == esp).map(|r| r.alg)
    }
    /// The algorithm of an IKEv2 transform ID.
    pub fn from_iana(id: u16) -> Option<IkeInteg> {
        IKE_INTEG_TABLE
            .iter()
            .find(|r| r.esp.row().iana_id == id)
            .map(|r| r.alg)
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

/// Everything about one PRF.
#[derive(Debug)]
pub struct PrfRow {
    /// The algorithm.
    pub alg: PrfAlg,
    /// strongSwan proposal keyword.
    pub keyword: &'static str,
    /// Every spelling accepted, in compact form.
    pub aliases: &'static [&'static str],
    /// Output (and preferred key) length.
    pub out_len: usize,
    /// IKEv2 transform type 2 ID.
    pub iana_id: u16,
}

/// The PRFs, in [`PrfAlg`] discriminant order.
pub const PRF_TABLE: [PrfRow; 4] = [
    PrfRow {
        alg: PrfAlg::HmacSha1,
        keyword: "prfsha1",
        aliases: &["prfsha1", "prfhmacsha1"],
        out_len: 20,
        iana_id: 2,
    },
    PrfRow {
        alg: PrfAlg::HmacSha256,
        keyword: "prfsha256",
        aliases: &["prfsha256", "prfsha2256", "prfhmacsha256"],
        out_len: 32,
        iana_id: 5,
    },
    PrfRow {
        alg: PrfAlg::HmacSha384,
        keyword: "prfsha384",
        aliases: &["prfsha384", "prfsha2384", "prfhmacsha384"],
        out_len: 48,
        iana_id: 6,
    },
    PrfRow {
        alg: PrfAlg::HmacSha512,
        keyword: "prfsha512",
        aliases: &["prfsha512", "prfsha2512", "prfhmacsha512"],
        out_len: 64,
        iana_id: 7,
    },
];

impl PrfAlg {
    /// This algorithm's row of [`PRF_TABLE`].
    pub const fn row(self) -> &'static PrfRow {
        &PRF_TABLE[self as usize]
    }
    /// Output (and preferred key) length.
    pub const fn out_len(self) -> usize {
        self.row().out_len
    }
    /// IKEv2 transform type 2 ID.
    pub const fn iana_id(self) -> u16 {
        self.row().iana_id
    }
    /// The PRF an operator's spelling names (`prfsha256`).
    pub fn from_name(s: &str) -> Option<PrfAlg> {
        let c = compact(s);
        PRF_TABLE
            .iter()
            .find(|r| r.aliases.contains(&c.as_str()))
            .map(|r| r.alg)
    }
    /// The PRF of an IKEv2 transform ID.
    pub fn from_iana(id: u16) -> Option<PrfAlg> {
        PRF_TABLE.iter().find(|r| r.iana_id == id).map(|r| r.alg)
    }
}

/// Diffie-Hellman group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// MODP-1024 (group 2; legacy, RFC 8247 SHOULD NOT).
    Modp1024,
    /// MODP-2048 (group 14).
    Modp2048,
    /// NIST P-256 (group 19).
    Ecp256,
    /// NIST P-384 (group 20).
    Ecp384,
    /// Curve25519 (group 31).
    Curve25519,
    /// MODP-1536 (group 5; legacy, RFC 8247 SHOULD NOT; offered by IKEv1 peers).
    Modp1536,
    /// MODP-3072 (group 15).
    Modp3072,
    /// MODP-4096 (group 16).
    Modp4096,
    /// NIST P-521 (group 21).
    Ecp521,
    /// MODP-6144 (group 17).
    Modp6144,
    /// MODP-8192 (group 18).
    Modp8192,
}

/// Everything about one Diffie-Hellman group.
#[derive(Debug)]
pub struct DhRow {
    /// The group.
    pub group: DhGroup,
    /// strongSwan keyword.
    pub keyword: &'static str,
    /// Every spelling accepted, in compact form.
    pub aliases: &'static [&'static str],
    /// IANA group number (IKEv2 transform type 4 ID).
    pub number: u16,
    /// Public value length on the wire.
    pub public_len: usize,
    /// IKEv2 proposals may name it (the rest are IKEv1's).
    pub ikev2: bool,
    /// RFC 8247: SHOULD NOT be used (MODP-1024, MODP-1536).
    pub legacy: bool,
}

/// The Diffie-Hellman groups, in [`DhGroup`] discriminant order.
pub const DH_TABLE: [DhRow; 11] = [
    DhRow {
        group: DhGroup::Modp1024,
        keyword: "modp1024",
        aliases: &["modp1024", "dh2"],
        number: 2,
        public_len: 128,
        ikev2: true,
        legacy: true,
    },
    DhRow {
        group: DhGroup::Modp2048,
        keyword: "modp2048",
        aliases: &["modp2048", "dh14"],
        number: 14,
        public_len: 256,
        ikev2: true,
        legacy: false,
    },
    DhRow {
        group: DhGroup::Ecp256,
        keyword: "ecp256",
        aliases: &["ecp256", "dh19"],
        number: 19,
        public_len: 64,
        ikev2: true,
        legacy: false,
    },
    DhRow {
        group: DhGroup::Ecp384,
        keyword: "ecp384",
        aliases: &["ecp384", "dh20"],
        number: 20,
        public_len: 96,
        ikev2: true,
        legacy: false,
    },
    DhRow {
        group: DhGroup::Curve25519,
        keyword: "curve25519",
        aliases: &["curve25519", "x25519", "dh31"],
        number: 31,
        public_len: 32,
        ikev2: true,
        legacy: false,
    },
    DhRow {
        group: DhGroup::Modp1536,
        keyword: "modp1536",
        aliases: &["modp1536", "dh5"],
        number: 5,
        public_len: 192,
        ikev2: false,
        legacy: true,
    },
    DhRow {
        group: DhGroup::Modp3072,
        keyword: "modp3072",
        aliases: &["modp3072", "dh15"],
        number: 15,
        public_len: 384,
        ikev2: true,
        legacy: false,
    },
    DhRow {
        group: DhGroup::Modp4096,
        keyword: "modp4096",
        aliases: &["modp4096", "dh16"],
        number: 16,
        public_len: 512,
        ikev2: true,
        legacy: false,
    },
    DhRow {
        group: DhGroup::Ecp521,
        keyword: "ecp521",
        aliases: &["ecp521", "dh21"],
        number: 21,
        public_len: 132,
        ikev2: true,
        legacy: false,
    },
    DhRow {
        group: DhGroup::Modp6144,
        keyword: "modp6144",
        aliases: &["modp6144", "dh17"],
        number: 17,
        public_len: 768,
        ikev2: true,
        legacy: false,
    },
    DhRow {
        group: DhGroup::Modp8192,
        keyword: "modp8192",
        aliases: &["modp8192", "dh18"],
        number: 18,
        public_len: 1024,
        ikev2: true,
        legacy: false,
    },
];

impl DhGroup {
    /// This group's row of [`DH_TABLE`].
    pub const fn row(self) -> &'static DhRow {
        &DH_TABLE[self as usize]
    }
    /// IANA group number.
    pub const fn number(self) -> u16 {
        self.row().number
    }
    /// Group by number.
    pub fn from_number(n: u16) -> Option<Self> {
        DH_TABLE.iter().find(|r| r.number == n).map(|r| r.group)
    }
    /// strongSwan keyword.
    pub const fn name(self) -> &'static str {
        self.row().keyword
    }
    /// Public value length on the wire.
    pub const fn public_len(self) -> usize {
        self.row().public_len
    }
    /// IKEv2 proposals may name it (MODP-1536 is IKEv1's).
    pub const fn ikev2(self) -> bool {
        self.row().ikev2
    }
    /// Legacy group (RFC 8247: MODP-1024 and MODP-1536 SHOULD NOT be used).
    pub const fn is_legacy(self) -> bool {
        self.row().legacy
    }
    /// The group an operator's spelling names (`ecp256`, `x25519`).
    pub fn from_name(s: &str) -> Option<DhGroup> {
        let c = compact(s);
        DH_TABLE
            .iter()
            .find(|r| r.aliases.contains(&c.as_str()))
            .map(|r| r.group)
    }
}
