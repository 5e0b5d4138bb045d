//! Random keys for manual tunnels (FreeS/WAN's `ipsec ranbits`), and the
//! ASCII-to-hex conversion Halon's manual shows for ZyWALL keys.

use rand::RngCore;

/// A random key of `bits` bits as `0x` hex, from the OS-seeded CSPRNG.
pub fn random_key(bits: u32) -> Result<String, String> {
    if bits == 0 || !bits.is_multiple_of(8) || bits > 8192 {
        return Err(format!(
            "--bits {bits}: give a multiple of 8 between 8 and 8192 (e.g. 160 for AES-128-GCM key + salt, 256 for HMAC-SHA-256)"
        ));
    }
    let mut buf = zeroize::Zeroizing::new(vec![0u8; (bits / 8) as usize]);
    rand::rng().fill_bytes(&mut buf);
    Ok(to_hex(&buf))
}

/// `0x` followed by lower-case hex digits.
pub fn to_hex(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// The hex form of an ASCII key (ZyWALL `kkkk` -> `0x6b6b6b6b`).
pub fn ascii_to_hex(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("empty key".into());
    }
    if let Some(c) = text.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(format!(
            "{:?} is not printable ASCII",
            c.escape_default().to_string()
        ));
    }
    Ok(to_hex(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_keys_have_the_asked_length_and_differ() {
        let a = random_key(160).unwrap();
        let b = random_key(160).unwrap();
        assert_eq!(a.len(), 2 + 40);
        assert!(a.starts_with("0x") && a[2..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(random_key(100).unwrap_err().contains("multiple of 8"));
        assert!(random_key(0).is_err());
    }

    #[test]
    fn halon_zywall_example() {
        assert_eq!(
            ascii_to_hex("kkkkkkkkkkkkkkkk").unwrap(),
            "0x6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b"
        );
        assert!(ascii_to_hex("").is_err());
    }
}
