//! Random keys for manual tunnels (FreeS/WAN's `ipsec ranbits`), the
//! ASCII-to-hex conversion Halon's manual shows for ZyWALL keys, and RSA key
//! pairs for IKE (FreeS/WAN's `ipsec rsasigkey`).

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

fn create_private(path: &std::path::Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            format!(
                "{}: {e} (an existing file is never overwritten)",
                path.display()
            )
        })?;
    f.write_all(data)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Makes an RSA key pair (aws-lc-rs): writes the private key to `out` as
/// PKCS#8 PEM, mode 0600 (never over an existing file), and, with `secrets`,
/// the same key as an `ipsec.secrets` `: RSA { ... }` entry (0600). Returns
/// the text for stdout: the public key in FreeS/WAN's `0s` form (RFC 3110),
/// for `leftrsasigkey` here and `rightrsasigkey` at the peer.
pub fn rsa_key_pair(
    bits: u32,
    out: &std::path::Path,
    secrets: Option<&std::path::Path>,
) -> Result<String, String> {
    if !matches!(bits, 2048 | 3072 | 4096) {
        return Err(format!(
            "--bits {bits}: an RSA key has 2048, 3072 or 4096 bits (RFC 8247: at least 2048)"
        ));
    }
    let (key, der) =
        crate::pki::PrivateKey::generate_rsa(bits as usize).map_err(|e| e.to_string())?;
    let pem = der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, &der)
        .map_err(|e| e.to_string())?;
    let pem = zeroize::Zeroizing::new(pem);
    create_private(out, pem.as_bytes())?;
    if let Some(s) = secrets {
        let entry = crate::pki::rsakey::secrets_entry(&key, &der).map_err(|e| e.to_string())?;
        create_private(s, entry.as_bytes())?;
    }
    let pubkey = crate::pki::rsakey::to_0s(key.public_key())
        .ok_or_else(|| "RSA public key encoding failed".to_string())?;
    Ok(format!(
        "# RSA {bits} bits, private key in {} (PKCS#8, mode 0600), {}\n# leftrsasigkey here, rightrsasigkey at the peer:\n{pubkey}",
        out.display(),
        key.public_key().fingerprint()
    ))
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
    fn rsa_key_pair_files() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let k = d.path().join("k.pem");
        let s = d.path().join("ipsec.secrets");
        let text = rsa_key_pair(2048, &k, Some(&s)).unwrap();
        let zero_s = text.lines().last().unwrap();
        assert!(zero_s.starts_with("0sAwEAA"), "{text}");
        for f in [&k, &s] {
            let m = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o600, "{}", f.display());
        }
        let a = crate::pki::PrivateKey::load(&k).unwrap();
        let b = crate::pki::PrivateKey::load(&s).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(
            &crate::pki::rsakey::parse_public(zero_s).unwrap(),
            a.public_key()
        );
        assert!(rsa_key_pair(2048, &k, None)
            .unwrap_err()
            .contains("never overwritten"));
        assert!(rsa_key_pair(1024, &d.path().join("x"), None).is_err());
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
