//! ESP transforms (RFC 4303 §3.2): encryption and integrity algorithms, one
//! row per algorithm in [`ENCR_TABLE`] and [`INTEG_TABLE`], and suites.
//!
//! A row holds everything every part of espresso says about an algorithm:
//! its stable name (status, key export, shared memory), the spellings an
//! operator may write (strongSwan, FreeS/WAN, router CLIs, our own names),
//! key and ICV sizes, the legacy flag (RFC 8221), the IANA transform ID
//! IKEv2 negotiates (RFC 7296 §3.3.2), and the names Wireshark and scapy use.
//! The methods of [`EncrAlg`] and [`IntegAlg`] read their row.

use std::fmt;

use super::{compact, CryptoError};

/// ESP encryption transform. The discriminant is the row in [`ENCR_TABLE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncrAlg {
    /// NULL encryption (RFC 2410): integrity only.
    Null,
    /// AES-CBC with a 128-bit key (RFC 3602).
    AesCbc128,
    /// AES-CBC with a 256-bit key (RFC 3602).
    AesCbc256,
    /// AES-GCM, 16-byte ICV, 128-bit key + 4-byte salt (RFC 4106).
    AesGcm128,
    /// AES-GCM, 16-byte ICV, 256-bit key + 4-byte salt (RFC 4106).
    AesGcm256,
    /// ChaCha20-Poly1305, 256-bit key + 4-byte salt (RFC 7634).
    ChaCha20Poly1305,
    /// Legacy 3DES-CBC (RFC 2451): only with the legacy opt-in (RFC 8221).
    TripleDesCbc,
}

/// Everything about one ESP encryption algorithm.
#[derive(Debug)]
pub struct EncrRow {
    /// The algorithm.
    pub alg: EncrAlg,
    /// Stable name (status output, key export, docs).
    pub name: &'static str,
    /// strongSwan proposal keyword (proposal strings in logs and status).
    pub keyword: &'static str,
    /// Every spelling accepted, in compact form (see [`compact`]).
    pub aliases: &'static [&'static str],
    /// Key length in bytes as keyed by IKE/manual config (AEAD: key + 4-byte salt).
    pub key_len: usize,
    /// Explicit IV length on the wire.
    pub iv_len: usize,
    /// Ciphertext alignment: the block size, at least 4 (RFC 4303 §2.4).
    pub pad_align: usize,
    /// Combined mode (AEAD): no separate integrity, 16-byte ICV.
    pub aead: bool,
    /// Needs the legacy opt-in (RFC 8221).
    pub legacy: bool,
    /// IKEv2 transform type 1 ID (IANA "Transform Type 1").
    pub iana_id: u16,
    /// IKEv2 Key Length attribute in bits, for variable-length ciphers.
    pub key_bits: Option<u16>,
    /// Wireshark 4.0's `esp_sa` name (None: Wireshark cannot decrypt it).
    pub wireshark: Option<&'static str>,
    /// scapy 2.x's `crypt_algo` name.
    pub scapy: Option<&'static str>,
}

/// The ESP encryption algorithms, in [`EncrAlg`] discriminant order.
pub const ENCR_TABLE: [EncrRow; 7] = [
    EncrRow {
        alg: EncrAlg::Null,
        name: "null",
        keyword: "null",
        aliases: &["null"],
        key_len: 0,
        iv_len: 0,
        pad_align: 4,
        aead: false,
        legacy: false,
        iana_id: 11,
        key_bits: None,
        wireshark: Some("NULL"),
        scapy: Some("NULL"),
    },
    EncrRow {
        alg: EncrAlg::AesCbc128,
        name: "aes-cbc-128",
        keyword: "aes128",
        aliases: &["aes128cbc", "aescbc128", "aes128", "aes"],
        key_len: 16,
        iv_len: 16,
        pad_align: 16,
        aead: false,
        legacy: false,
        iana_id: 12,
        key_bits: Some(128),
        wireshark: Some("AES-CBC [RFC3602]"),
        scapy: Some("AES-CBC"),
    },
    EncrRow {
        alg: EncrAlg::AesCbc256,
        name: "aes-cbc-256",
        keyword: "aes256",
        aliases: &["aes256cbc", "aescbc256", "aes256"],
        key_len: 32,
        iv_len: 16,
        pad_align: 16,
        aead: false,
        legacy: false,
        iana_id: 12,
        key_bits: Some(256),
        wireshark: Some("AES-CBC [RFC3602]"),
        scapy: Some("AES-CBC"),
    },
    EncrRow {
        alg: EncrAlg::AesGcm128,
        name: "aes-gcm-128",
        keyword: "aes128gcm16",
        aliases: &[
            "aes128gcm16",
            "aes128gcm128",
            "aesgcm16128",
            "aesgcm128",
            "aes128gcm",
        ],
        key_len: 20,
        iv_len: 8,
        pad_align: 4,
        aead: true,
        legacy: false,
        iana_id: 20,
        key_bits: Some(128),
        wireshark: Some("AES-GCM with 16 octet ICV [RFC4106]"),
        scapy: Some("AES-GCM"),
    },
    EncrRow {
        alg: EncrAlg::AesGcm256,
        name: "aes-gcm-256",
        keyword: "aes256gcm16",
        aliases: &[
            "aes256gcm16",
            "aes256gcm128",
            "aesgcm16256",
            "aesgcm256",
            "aes256gcm",
        ],
        key_len: 36,
        iv_len: 8,
        pad_align: 4,
        aead: true,
        legacy: false,
        iana_id: 20,
        key_bits: Some(256),
        wireshark: Some("AES-GCM with 16 octet ICV [RFC4106]"),
        scapy: Some("AES-GCM"),
    },
    EncrRow {
        alg: EncrAlg::ChaCha20Poly1305,
        name: "chacha20-poly1305",
        keyword: "chacha20poly1305",
        aliases: &["chacha20poly1305"],
        key_len: 36,
        iv_len: 8,
        pad_align: 4,
        aead: true,
        legacy: false,
        iana_id: 28,
        key_bits: None,
        wireshark: None,
        scapy: Some("CHACHA20-POLY1305"),
    },
    EncrRow {
        alg: EncrAlg::TripleDesCbc,
        name: "3des-cbc",
        keyword: "3des",
        aliases: &["3descbc", "des3cbc", "3des"],
        key_len: 24,
        iv_len: 8,
        pad_align: 8,
        aead: false,
        legacy: true,
        iana_id: 3,
        key_bits: None,
        wireshark: Some("TripleDES-CBC [RFC2451]"),
        scapy: Some("3DES"),
    },
];

impl EncrAlg {
    /// Every algorithm, in table order.
    pub const ALL: [EncrAlg; 7] = [
        EncrAlg::Null,
        EncrAlg::AesCbc128,
        EncrAlg::AesCbc256,
        EncrAlg::AesGcm128,
        EncrAlg::AesGcm256,
        EncrAlg::ChaCha20Poly1305,
        EncrAlg::TripleDesCbc,
    ];
    /// This algorithm's row of [`ENCR_TABLE`].
    pub const fn row(self) -> &'static EncrRow {
        &ENCR_TABLE[self as usize]
    }
    /// True for combined-mode (AEAD) transforms, which take no separate integrity.
    pub const fn is_aead(self) -> bool {
        self.row().aead
    }
    /// Key length in bytes as keyed by IKE/manual config (AEAD: key + 4-byte salt).
    pub const fn key_len(self) -> usize {
        self.row().key_len
    }
    /// Explicit IV length on the wire.
    pub const fn iv_len(self) -> usize {
        self.row().iv_len
    }
    /// Alignment the ciphertext (payload + padding + 2) must reach: the block
    /// size, and at least 4 (RFC 4303 §2.4).
    pub const fn pad_align(self) -> usize {
        self.row().pad_align
    }
    /// Legacy algorithm that needs the explicit opt-in.
    pub const fn is_legacy(self) -> bool {
        self.row().legacy
    }
    /// Stable name (config files, status output).
    pub const fn name(self) -> &'static str {
        self.row().name
    }
    /// The algorithm an operator's spelling names (any case; `-`, `_`, `+`,
    /// `/` and spaces ignored), e.g. `aes128gcm16`, `AES-GCM-128`, `3des`.
    pub fn from_name(s: &str) -> Option<EncrAlg> {
        let c = compact(s);
        ENCR_TABLE
            .iter()
            .find(|r| r.aliases.contains(&c.as_str()))
            .map(|r| r.alg)
    }
    /// The algorithm of a stable name ([`EncrAlg::name`]).
    pub fn from_stable_name(s: &str) -> Option<EncrAlg> {
        ENCR_TABLE.iter().find(|r| r.name == s).map(|r| r.alg)
    }
}

/// ESP integrity transform (for non-AEAD encryption). The discriminant is
/// the row in [`INTEG_TABLE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntegAlg {
    /// No separate integrity (AEAD suites).
    None,
    /// HMAC-SHA1-96 (RFC 2404).
    HmacSha1_96,
    /// HMAC-SHA-256-128 (RFC 4868).
    HmacSha256_128,
    /// HMAC-SHA-384-192 (RFC 4868).
    HmacSha384_192,
    /// HMAC-SHA-512-256 (RFC 4868).
    HmacSha512_256,
    /// Legacy HMAC-MD5-96 (RFC 2403): only with the legacy opt-in (RFC 8221).
    HmacMd5_96,
}

/// Everything about one ESP integrity algorithm.
#[derive(Debug)]
pub struct IntegRow {
    /// The algorithm.
    pub alg: IntegAlg,
    /// Stable name (status output, key export, docs).
    pub name: &'static str,
    /// strongSwan proposal keyword.
    pub keyword: &'static str,
    /// Every spelling accepted, in compact form (see [`compact`]).
    pub aliases: &'static [&'static str],
    /// Key length in bytes.
    pub key_len: usize,
    /// Truncated ICV length on the wire.
    pub icv_len: usize,
    /// Needs the legacy opt-in (RFC 8221).
    pub legacy: bool,
    /// IKEv2 transform type 3 ID (0: NONE).
    pub iana_id: u16,
    /// Wireshark 4.0's `esp_sa` name.
    pub wireshark: Option<&'static str>,
    /// scapy 2.x's `auth_algo` name.
    pub scapy: Option<&'static str>,
}

/// The ESP integrity algorithms, in [`IntegAlg`] discriminant order.
pub const INTEG_TABLE: [IntegRow; 6] = [
    IntegRow {
        alg: IntegAlg::None,
        name: "none",
        keyword: "none",
        aliases: &[],
        key_len: 0,
        icv_len: 0,
        legacy: false,
        iana_id: 0,
        wireshark: Some("NULL"),
        scapy: Some("NULL"),
    },
    IntegRow {
        alg: IntegAlg::HmacSha1_96,
        name: "hmac-sha1-96",
        keyword: "sha1",
        aliases: &["hmacsha196", "hmacsha1", "sha196", "sha1", "sha"],
        key_len: 20,
        icv_len: 12,
        legacy: false,
        iana_id: 2,
        wireshark: Some("HMAC-SHA-1-96 [RFC2404]"),
        scapy: Some("HMAC-SHA1-96"),
    },
    IntegRow {
        alg: IntegAlg::HmacSha256_128,
        name: "hmac-sha256-128",
        keyword: "sha256",
        aliases: &[
            "hmacsha256128",
            "sha2256128",
            "sha256128",
            "hmacsha256",
            "sha2256",
            "sha256",
            "sha2",
        ],
        key_len: 32,
        icv_len: 16,
        legacy: false,
        iana_id: 12,
        wireshark: Some("HMAC-SHA-256-128 [RFC4868]"),
        scapy: Some("SHA2-256-128"),
    },
    IntegRow {
        alg: IntegAlg::HmacSha384_192,
        name: "hmac-sha384-192",
        keyword: "sha384",
        aliases: &[
            "hmacsha384192",
            "sha2384192",
            "sha384192",
            "hmacsha384",
            "sha2384",
            "sha384",
        ],
        key_len: 48,
        icv_len: 24,
        legacy: false,
        iana_id: 13,
        wireshark: Some("HMAC-SHA-384-192 [RFC4868]"),
        scapy: Some("SHA2-384-192"),
    },
    IntegRow {
        alg: IntegAlg::HmacSha512_256,
        name: "hmac-sha512-256",
        keyword: "sha512",
        aliases: &[
            "hmacsha512256",
            "sha2512256",
            "sha512256",
            "hmacsha512",
            "sha2512",
            "sha512",
        ],
        key_len: 64,
        icv_len: 32,
        legacy: false,
        iana_id: 14,
        wireshark: Some("HMAC-SHA-512-256 [RFC4868]"),
        scapy: Some("SHA2-512-256"),
    },
    IntegRow {
        alg: IntegAlg::HmacMd5_96,
        name: "hmac-md5-96",
        keyword: "md5",
        // "md5-128" is the router CLIs' spelling (mbox: MD5-128) (the HMAC output; the ICV is 96 bits).
        aliases: &["hmacmd596", "hmacmd5", "md596", "md5", "md5128"],
        key_len: 16,
        icv_len: 12,
        legacy: true,
        iana_id: 1,
        wireshark: Some("HMAC-MD5-96 [RFC2403]"),
        scapy: Some("HMAC-MD5-96"),
    },
];

impl IntegAlg {
    /// Every algorithm, in table order.
    pub const ALL: [IntegAlg; 6] = [
        IntegAlg::None,
        IntegAlg::HmacSha1_96,
        IntegAlg::HmacSha256_128,
        IntegAlg::HmacSha384_192,
        IntegAlg::HmacSha512_256,
        IntegAlg::HmacMd5_96,
    ];
    /// This algorithm's row of [`INTEG_TABLE`].
    pub const fn row(self) -> &'static IntegRow {
        &INTEG_TABLE[self as usize]
    }
    /// Key length in bytes.
    pub const fn key_len(self) -> usize {
        self.row().key_len
    }
    /// Truncated ICV length on the wire.
    pub const fn icv_len(self) -> usize {
        self.row().icv_len
    }
    /// Legacy algorithm that needs the explicit opt-in.
    pub const fn is_legacy(self) -> bool {
        self.row().legacy
    }
    /// Stable name (config files, status output).
    pub const fn name(self) -> &'static str {
        self.row().name
    }
    /// The algorithm an operator's spelling names (see [`EncrAlg::from_name`]),
    /// e.g. `sha256`, `sha2_256`, `hmac-sha256-128`, `md5`.
    pub fn from_name(s: &str) -> Option<IntegAlg> {
        let c = compact(s);
        INTEG_TABLE
            .iter()
            .find(|r| r.aliases.contains(&c.as_str()))
            .map(|r| r.alg)
    }
    /// The algorithm of a stable name ([`IntegAlg::name`]).
    pub fn from_stable_name(s: &str) -> Option<IntegAlg> {
        INTEG_TABLE.iter().find(|r| r.name == s).map(|r| r.alg)
    }
}

/// An ESP suite: encryption plus integrity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Suite {
    /// Encryption transform.
    pub encr: EncrAlg,
    /// Integrity transform (`None` for AEAD).
    pub integ: IntegAlg,
}

/// Suite names a reader can copy into a configuration (shown in errors).
pub const SUITE_EXAMPLES: &str = "aes128gcm16, aes256gcm16, chacha20poly1305, aes128-sha256, \
aes256-sha256, aes256-sha512, aes128-sha1, 3des-sha1, 3des-md5 (legacy)";

impl Suite {
    /// ICV length on the wire.
    pub const fn icv_len(self) -> usize {
        if self.encr.is_aead() {
            16
        } else {
            self.integ.icv_len()
        }
    }

    /// Canonical name (status output, docs): `aes-gcm-128`, or
    /// `aes-cbc-256/hmac-sha256-128` for an encryption + integrity pair.
    pub fn name(self) -> String {
        self.to_string()
    }

    /// Checks that the combination is valid: AEAD without separate integrity,
    /// non-AEAD with integrity, legacy algorithms only when allowed.
    pub fn validate(self, allow_legacy: bool) -> Result<(), CryptoError> {
        if self.encr.is_aead() && self.integ != IntegAlg::None {
            return Err(CryptoError::Combination {
                encr: self.encr,
                integ: self.integ,
                why: "combined-mode encryption takes no separate integrity algorithm",
            });
        }
        if !self.encr.is_aead() && self.integ == IntegAlg::None {
            return Err(CryptoError::Combination {
                encr: self.encr,
                integ: self.integ,
                why: "encryption without integrity is insecure (RFC 4303 §3.2)",
            });
        }
        if !allow_legacy && (self.encr.is_legacy() || self.integ.is_legacy()) {
            return Err(CryptoError::LegacyNotAllowed {
                alg: if self.encr.is_legacy() {
                    self.encr.name()
                } else {
                    self.integ.name()
                },
            });
        }
        Ok(())
    }

    /// Parses a suite as an operator writes it: strongSwan proposals
    /// (`aes128gcm16`, `aes256-sha256`), FreeS/WAN `esp=` values
    /// (`3des-md5-96`, `aes128-sha1`), the names `espresso status` prints
    /// (`aes-cbc-128/hmac-sha256-128`) and the usual variants (`aes-128-gcm`,
    /// `sha2_256`). Lower-cases, drops `-`, `_`, `+`, `/` and spaces, then
    /// reads an encryption name (longest match first) followed by an
    /// integrity name (none for combined-mode suites). The error says what
    /// was not understood.
    pub fn parse(name: &str) -> Result<Suite, String> {
        let c = compact(name);
        if c.is_empty() {
            return Err(format!("empty suite name; try one of {SUITE_EXAMPLES}"));
        }
        for k in ["128", "192", "256"] {
            for (t, bytes) in [("8", 8), ("12", 12), ("64", 8), ("96", 12)] {
                let p = format!("aes{k}gcm{t}");
                if let Some(rest) = c.strip_prefix(&p) {
                    if !rest.starts_with(|c: char| c.is_ascii_digit()) {
                        return Err(format!(
                            "AES-GCM with a {bytes}-byte ICV is not supported, only 16 bytes (e.g. aes{k}gcm16)"
                        ));
                    }
                }
            }
        }
        if c.starts_with("aes192") {
            return Err("AES-192 is not supported: use aes128 or aes256".into());
        }
        let mut encs: Vec<(&str, EncrAlg)> = ENCR_TABLE
            .iter()
            .flat_map(|r| r.aliases.iter().map(move |a| (*a, r.alg)))
            .collect();
        encs.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
        let mut unparsed = c.clone();
        for (prefix, encr) in encs {
            let Some(rest) = c.strip_prefix(prefix) else {
                continue;
            };
            if rest.is_empty() {
                if encr.is_aead() {
                    return Ok(Suite {
                        encr,
                        integ: IntegAlg::None,
                    });
                }
                return Err(format!(
                    "{} needs an integrity algorithm (e.g. {prefix}-sha256): \
                     encryption without integrity is insecure",
                    encr.name()
                ));
            }
            if let Some(integ) = IntegAlg::from_name(rest) {
                if encr.is_aead() {
                    return Err(format!(
                        "{} is a combined-mode cipher and takes no integrity algorithm (drop \"{rest}\")",
                        encr.name()
                    ));
                }
                return Ok(Suite { encr, integ });
            }
            unparsed = rest.to_string();
            if ["modp", "ecp", "curve", "x25519", "x448"]
                .iter()
                .any(|g| rest.contains(g))
            {
                return Err(format!(
                    "\"{rest}\" looks like a Diffie-Hellman group, which manual keys do not use"
                ));
            }
            break;
        }
        if unparsed == c {
            Err(format!(
                "unknown encryption algorithm in \"{name}\"; try one of {SUITE_EXAMPLES}"
            ))
        } else {
            Err(format!(
                "unknown integrity algorithm \"{unparsed}\" in \"{name}\"; try one of {SUITE_EXAMPLES}"
            ))
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.encr.is_aead() {
            f.write_str(self.encr.name())
        } else {
            write!(f, "{}/{}", self.encr.name(), self.integ.name())
        }
    }
}
