//! ESP suite names as operators write them: strongSwan proposals
//! (`aes128gcm16`, `aes256-sha256`), FreeS/WAN `esp=` values (`3des-md5-96`,
//! `aes128-sha1`), our own names (`aes-gcm-128`, `hmac-sha256-128`) and the
//! usual variants (`aes-128-gcm`, `sha2_256`, `chacha20-poly1305`).
//!
//! Parsing: lower-case, drop `-`, `_`, `+` and spaces, then read an encryption
//! name (longest match first) followed by an integrity name (none for
//! combined-mode suites).

use dataplane::crypto::{EncrAlg, IntegAlg, Suite};

const ENCR: &[(&str, EncrAlg)] = &[
    ("aes128gcm16", EncrAlg::AesGcm128),
    ("aes128gcm128", EncrAlg::AesGcm128),
    ("aesgcm16128", EncrAlg::AesGcm128),
    ("aesgcm128", EncrAlg::AesGcm128),
    ("aes128gcm", EncrAlg::AesGcm128),
    ("aes256gcm16", EncrAlg::AesGcm256),
    ("aes256gcm128", EncrAlg::AesGcm256),
    ("aesgcm16256", EncrAlg::AesGcm256),
    ("aesgcm256", EncrAlg::AesGcm256),
    ("aes256gcm", EncrAlg::AesGcm256),
    ("chacha20poly1305", EncrAlg::ChaCha20Poly1305),
    ("aes128cbc", EncrAlg::AesCbc128),
    ("aescbc128", EncrAlg::AesCbc128),
    ("aes128", EncrAlg::AesCbc128),
    ("aes256cbc", EncrAlg::AesCbc256),
    ("aescbc256", EncrAlg::AesCbc256),
    ("aes256", EncrAlg::AesCbc256),
    ("aes", EncrAlg::AesCbc128),
    ("3descbc", EncrAlg::TripleDesCbc),
    ("des3cbc", EncrAlg::TripleDesCbc),
    ("3des", EncrAlg::TripleDesCbc),
    ("null", EncrAlg::Null),
];

const INTEG: &[(&str, IntegAlg)] = &[
    ("hmacsha256128", IntegAlg::HmacSha256_128),
    ("sha2256128", IntegAlg::HmacSha256_128),
    ("sha256128", IntegAlg::HmacSha256_128),
    ("hmacsha256", IntegAlg::HmacSha256_128),
    ("sha2256", IntegAlg::HmacSha256_128),
    ("sha256", IntegAlg::HmacSha256_128),
    ("hmacsha384192", IntegAlg::HmacSha384_192),
    ("sha2384192", IntegAlg::HmacSha384_192),
    ("sha384192", IntegAlg::HmacSha384_192),
    ("hmacsha384", IntegAlg::HmacSha384_192),
    ("sha2384", IntegAlg::HmacSha384_192),
    ("sha384", IntegAlg::HmacSha384_192),
    ("hmacsha512256", IntegAlg::HmacSha512_256),
    ("sha2512256", IntegAlg::HmacSha512_256),
    ("sha512256", IntegAlg::HmacSha512_256),
    ("hmacsha512", IntegAlg::HmacSha512_256),
    ("sha2512", IntegAlg::HmacSha512_256),
    ("sha512", IntegAlg::HmacSha512_256),
    ("hmacsha196", IntegAlg::HmacSha1_96),
    ("hmacsha1", IntegAlg::HmacSha1_96),
    ("sha196", IntegAlg::HmacSha1_96),
    ("sha1", IntegAlg::HmacSha1_96),
    ("sha", IntegAlg::HmacSha1_96),
    ("hmacmd596", IntegAlg::HmacMd5_96),
    ("hmacmd5", IntegAlg::HmacMd5_96),
    ("md596", IntegAlg::HmacMd5_96),
    ("md5", IntegAlg::HmacMd5_96),
];

/// Names a reader can copy into a config (shown in errors).
pub const EXAMPLES: &str = "aes128gcm16, aes256gcm16, chacha20poly1305, aes128-sha256, \
aes256-sha256, aes256-sha512, aes128-sha1, 3des-sha1, 3des-md5 (legacy)";

/// Parses a suite name. The error says what was not understood.
pub fn parse_suite(name: &str) -> Result<Suite, String> {
    let compact: String = name
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '+' | ' ' | '/'))
        .flat_map(char::to_lowercase)
        .collect();
    if compact.is_empty() {
        return Err(format!("empty suite name; try one of {EXAMPLES}"));
    }
    for k in ["128", "192", "256"] {
        for (t, bytes) in [("8", 8), ("12", 12), ("64", 8), ("96", 12)] {
            let p = format!("aes{k}gcm{t}");
            if let Some(rest) = compact.strip_prefix(&p) {
                if !rest.starts_with(|c: char| c.is_ascii_digit()) {
                    return Err(format!(
                        "AES-GCM with a {bytes}-byte ICV is not supported, only 16 bytes (e.g. aes{k}gcm16)"
                    ));
                }
            }
        }
    }
    if compact.starts_with("aes192") {
        return Err("AES-192 is not supported: use aes128 or aes256".into());
    }
    let mut encs: Vec<&(&str, EncrAlg)> = ENCR.iter().collect();
    encs.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    let mut unparsed = compact.clone();
    for (prefix, encr) in encs {
        let Some(rest) = compact.strip_prefix(prefix) else {
            continue;
        };
        if rest.is_empty() {
            if encr.is_aead() {
                return Ok(Suite {
                    encr: *encr,
                    integ: IntegAlg::None,
                });
            }
            return Err(format!(
                "{} needs an integrity algorithm (e.g. {prefix}-sha256): \
                 encryption without integrity is insecure",
                encr.name()
            ));
        }
        if let Some((_, integ)) = INTEG.iter().find(|(n, _)| *n == rest) {
            if encr.is_aead() {
                return Err(format!(
                    "{} is a combined-mode cipher and takes no integrity algorithm (drop \"{rest}\")",
                    encr.name()
                ));
            }
            return Ok(Suite {
                encr: *encr,
                integ: *integ,
            });
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
    if unparsed == compact {
        Err(format!(
            "unknown encryption algorithm in \"{name}\"; try one of {EXAMPLES}"
        ))
    } else {
        Err(format!(
            "unknown integrity algorithm \"{unparsed}\" in \"{name}\"; try one of {EXAMPLES}"
        ))
    }
}

/// Canonical name of a suite (status output, docs).
pub fn suite_name(s: Suite) -> String {
    if s.encr.is_aead() {
        s.encr.name().to_string()
    } else {
        format!("{}/{}", s.encr.name(), s.integ.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(n: &str) -> Suite {
        parse_suite(n).unwrap_or_else(|e| panic!("{n}: {e}"))
    }

    #[test]
    fn strongswan_freeswan_and_own_names() {
        let gcm128 = Suite {
            encr: EncrAlg::AesGcm128,
            integ: IntegAlg::None,
        };
        for n in [
            "aes128gcm16",
            "aes128gcm128",
            "AES-GCM-128",
            "aes-128-gcm",
            "aes_gcm_128",
        ] {
            assert_eq!(ok(n), gcm128, "{n}");
        }
        assert_eq!(ok("aes256gcm16").encr, EncrAlg::AesGcm256);
        assert_eq!(ok("chacha20-poly1305").encr, EncrAlg::ChaCha20Poly1305);
        let cbc = ok("aes256-sha256");
        assert_eq!(
            (cbc.encr, cbc.integ),
            (EncrAlg::AesCbc256, IntegAlg::HmacSha256_128)
        );
        assert_eq!(ok("aes128-sha2_256").integ, IntegAlg::HmacSha256_128);
        assert_eq!(
            ok("aes-cbc-128/hmac-sha256-128").integ,
            IntegAlg::HmacSha256_128
        );
        assert_eq!(ok("aes128-sha1").integ, IntegAlg::HmacSha1_96);
        assert_eq!(ok("aes-sha1").encr, EncrAlg::AesCbc128);
        assert_eq!(ok("aes256-sha512").integ, IntegAlg::HmacSha512_256);
        assert_eq!(ok("aes256-sha384").integ, IntegAlg::HmacSha384_192);
        let fs = ok("3des-md5-96");
        assert_eq!(
            (fs.encr, fs.integ),
            (EncrAlg::TripleDesCbc, IntegAlg::HmacMd5_96)
        );
        assert_eq!(ok("3des-sha1").integ, IntegAlg::HmacSha1_96);
        assert_eq!(ok("null-sha256").encr, EncrAlg::Null);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(parse_suite("aes128").unwrap_err().contains("integrity"));
        assert!(parse_suite("aes128gcm16-sha256")
            .unwrap_err()
            .contains("combined-mode"));
        assert!(parse_suite("aes128gcm8")
            .unwrap_err()
            .contains("8-byte ICV"));
        assert!(parse_suite("aes128gcm12")
            .unwrap_err()
            .contains("12-byte ICV"));
        assert!(parse_suite("aes128-sha256-modp2048")
            .unwrap_err()
            .contains("Diffie-Hellman"));
        assert!(parse_suite("blowfish-md5")
            .unwrap_err()
            .contains("unknown encryption"));
        assert!(parse_suite("aes128-whirlpool")
            .unwrap_err()
            .contains("unknown integrity algorithm \"whirlpool\""));
        assert!(parse_suite("").is_err());
    }

    #[test]
    fn canonical_names() {
        assert_eq!(suite_name(ok("aes128gcm16")), "aes-gcm-128");
        assert_eq!(
            suite_name(ok("aes256-sha256")),
            "aes-cbc-256/hmac-sha256-128"
        );
    }
}
