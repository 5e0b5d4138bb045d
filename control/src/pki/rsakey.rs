//! RSA keys the way FreeS/WAN writes them (seed 001): the public key in
//! RFC 3110 form (exponent length, exponent, modulus) as `0s` base64 or `0x`
//! hex (`leftrsasigkey=0sAQO...`), and the `ipsec.secrets` entry
//! `: RSA { Modulus: 0x... PublicExponent: 0x... PrivateExponent: 0x... ... }`
//! that `ipsec rsasigkey` prints.

use base64::Engine as _;
use der::{Decode, Encode};
use zeroize::Zeroizing;

use super::key::{KeyKind, PrivateKey, PublicKey};
use super::{malformed, PkiError};

/// Parses a raw RSA public key: `0s` + base64 or `0x` + hex of the RFC 3110
/// encoding. Spaces, tabs, newlines and `_` between digits are ignored.
pub fn parse_public(s: &str) -> Result<PublicKey, PkiError> {
    let t: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_')
        .collect();
    let bytes = if let Some(b) = t.strip_prefix("0s") {
        base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|e| malformed("RSA key (0s base64)", e))?
    } else if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        hex_decode(h).ok_or_else(|| malformed("RSA key (0x hex)", "not hex digits"))?
    } else {
        return Err(malformed(
            "RSA key",
            "expected 0s followed by base64 (RFC 3110, as ipsec rsasigkey prints it) or 0x followed by hex",
        ));
    };
    from_rfc3110(&bytes)
}

/// The RFC 3110 wire form: exponent length (1 byte, or 0 then 2 bytes), exponent, modulus.
pub fn from_rfc3110(b: &[u8]) -> Result<PublicKey, PkiError> {
    let (elen, at) = match b {
        [0, hi, lo, ..] => ((usize::from(*hi) << 8) | usize::from(*lo), 3),
        [n, ..] if *n != 0 => (usize::from(*n), 1),
        _ => return Err(malformed("RSA key (RFC 3110)", "too short")),
    };
    if b.len() < at + elen + 1 {
        return Err(malformed(
            "RSA key (RFC 3110)",
            "exponent length exceeds the key",
        ));
    }
    PublicKey::from_rsa(&b[at + elen..], &b[at..at + elen])
}

/// The RFC 3110 bytes of an RSA public key.
pub fn to_rfc3110(k: &PublicKey) -> Option<Vec<u8>> {
    let (n, e) = k.rsa_components()?;
    let mut out = Vec::with_capacity(3 + e.len() + n.len());
    if e.len() < 256 {
        out.push(e.len() as u8);
    } else {
        out.push(0);
        out.extend_from_slice(&(e.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(&e);
    out.extend_from_slice(&n);
    Some(out)
}

/// `0s` + base64 of the RFC 3110 form (FreeS/WAN's `leftrsasigkey=` value).
pub fn to_0s(k: &PublicKey) -> Option<String> {
    to_rfc3110(k).map(|b| format!("0s{}", base64::engine::general_purpose::STANDARD.encode(b)))
}

fn hex_decode(h: &str) -> Option<Vec<u8>> {
    if h.is_empty() {
        return None;
    }
    hex::decode(h).ok()
}

/// The `ipsec.secrets` entry of an RSA private key, as `ipsec rsasigkey`
/// writes it (a comment with the public key, then the eight fields).
pub fn secrets_entry(k: &PrivateKey, pkcs8_der: &[u8]) -> Result<Zeroizing<String>, PkiError> {
    let KeyKind::Rsa(bits) = k.kind() else {
        return Err(PkiError::Unsupported(
            "ipsec.secrets RSA entries hold RSA keys only".into(),
        ));
    };
    let info = pkcs8::PrivateKeyInfo::from_der(pkcs8_der).map_err(|e| malformed("PKCS#8", e))?;
    let r =
        pkcs1::RsaPrivateKey::from_der(info.private_key).map_err(|e| malformed("RSA key", e))?;
    use std::fmt::Write as _;
    let pubkey = to_0s(k.public_key()).unwrap_or_default();
    // written straight into the zeroized string: no copy of a secret field
    // is left in a temporary
    let mut s = Zeroizing::new(String::with_capacity(4096));
    let _ = write!(
        s,
        ": RSA {{\n\t# RSA {bits} bits\n\t# for signatures only, UNSAFE FOR ENCRYPTION\n\t#pubkey={pubkey}\n"
    );
    let field = |s: &mut String, name: &str, v: &[u8]| {
        let _ = write!(s, "\t{name}: 0x");
        for b in v {
            let _ = write!(s, "{b:02x}");
        }
        s.push('\n');
    };
    field(&mut s, "Modulus", r.modulus.as_bytes());
    field(&mut s, "PublicExponent", r.public_exponent.as_bytes());
    s.push_str("\t# everything after this point is secret\n");
    field(&mut s, "PrivateExponent", r.private_exponent.as_bytes());
    field(&mut s, "Prime1", r.prime1.as_bytes());
    field(&mut s, "Prime2", r.prime2.as_bytes());
    field(&mut s, "Exponent1", r.exponent1.as_bytes());
    field(&mut s, "Exponent2", r.exponent2.as_bytes());
    field(&mut s, "Coefficient", r.coefficient.as_bytes());
    s.push_str("\t}\n");
    Ok(s)
}

/// Reads an `ipsec.secrets`-style `: RSA { ... }` entry (the eight fields in
/// `0x` hex or `0s` base64) into a private key.
pub fn parse_secrets_entry(text: &str) -> Result<PrivateKey, PkiError> {
    let body = text
        .split_once('{')
        .and_then(|(_, r)| r.rsplit_once('}'))
        .map(|(b, _)| b)
        .ok_or_else(|| malformed("RSA secrets entry", "expected : RSA { ... }"))?;
    let mut f: std::collections::HashMap<String, Zeroizing<Vec<u8>>> = Default::default();
    for line in body.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(malformed(
                "RSA secrets entry",
                "a line without \"Name: value\"",
            ));
        };
        let v = v.trim();
        let bytes = if let Some(h) = v.strip_prefix("0x") {
            hex_decode(&h.replace('_', ""))
        } else if let Some(b) = v.strip_prefix("0s") {
            base64::engine::general_purpose::STANDARD.decode(b).ok()
        } else {
            None
        }
        .ok_or_else(|| PkiError::Malformed {
            what: "RSA secrets entry",
            msg: format!("{}: expected 0x hex or 0s base64", k.trim()),
        })?;
        f.insert(k.trim().to_ascii_lowercase(), Zeroizing::new(bytes));
    }
    let get = |n: &str| -> Result<pkcs1::UintRef<'_>, PkiError> {
        let v = f
            .get(&n.to_ascii_lowercase())
            .ok_or_else(|| PkiError::Malformed {
                what: "RSA secrets entry",
                msg: format!("missing {n}"),
            })?;
        let z = v.iter().take_while(|x| **x == 0).count();
        pkcs1::UintRef::new(&v[z..]).map_err(|e| malformed("RSA secrets entry", e))
    };
    let key = pkcs1::RsaPrivateKey {
        modulus: get("Modulus")?,
        public_exponent: get("PublicExponent")?,
        private_exponent: get("PrivateExponent")?,
        prime1: get("Prime1")?,
        prime2: get("Prime2")?,
        exponent1: get("Exponent1")?,
        exponent2: get("Exponent2")?,
        coefficient: get("Coefficient")?,
        other_prime_infos: None,
    };
    let der = Zeroizing::new(
        key.to_der()
            .map_err(|e| malformed("RSA secrets entry", e))?,
    );
    PrivateKey::from_pkcs1(&der)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Hash, SignatureScheme};

    #[test]
    fn rfc3110_round_trip_and_forms() {
        let (k, der) = PrivateKey::generate_rsa(2048).unwrap();
        let s = to_0s(k.public_key()).unwrap();
        assert!(s.starts_with("0sAwEAA"), "e = 65537 in RFC 3110 form: {s}");
        let p = parse_public(&s).unwrap();
        assert_eq!(&p, k.public_key());
        let hex = format!("0x{}", crate::pki::hex(&to_rfc3110(&p).unwrap()));
        assert_eq!(&parse_public(&hex).unwrap(), k.public_key());
        // FreeS/WAN splits long keys over lines
        let wrapped: String = s
            .chars()
            .collect::<Vec<_>>()
            .chunks(60)
            .map(|c| c.iter().collect::<String>() + "\n\t")
            .collect();
        assert_eq!(&parse_public(&wrapped).unwrap(), k.public_key());
        assert!(parse_public("AwEAAQ==")
            .unwrap_err()
            .to_string()
            .contains("0s"));
        assert!(parse_public("0s!!").is_err());
        assert!(parse_public("0sAwEAAQ==").is_err(), "no modulus");
        // the secrets entry gives the same key back, and it signs
        let e = secrets_entry(&k, &der).unwrap();
        assert!(
            e.starts_with(": RSA {") && e.contains("PrivateExponent: 0x"),
            "{}",
            &e[..40]
        );
        let back = parse_secrets_entry(&e).unwrap();
        assert_eq!(back.public_key(), k.public_key());
        let sig = back
            .sign(SignatureScheme::RsaPkcs1(Hash::Sha256), b"hello")
            .unwrap();
        p.verify(SignatureScheme::RsaPkcs1(Hash::Sha256), b"hello", &sig)
            .unwrap();
    }

    /// A key from the FreeS/WAN era is refused when it is too short.
    #[test]
    fn short_keys_are_refused() {
        // exponent 3, 1024-bit modulus of 0xff..
        let mut b = vec![1u8, 3];
        b.extend(std::iter::repeat_n(0xffu8, 128));
        let e = from_rfc3110(&b).unwrap_err().to_string();
        assert!(e.contains("1024") && e.contains("2048"), "{e}");
    }
}
