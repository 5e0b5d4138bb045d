//! Private key files: the permission and owner checks, and the formats
//! (PEM or DER PKCS#8, PKCS#1, SEC1, and FreeS/WAN's ipsec.secrets
//! `: RSA { ... }` entry, parsed by [`super::rsakey`]).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use zeroize::Zeroizing;

use super::key::PrivateKey;
use super::{malformed, rsakey, PkiError};

impl PrivateKey {
    /// Loads a key file (PEM or DER), refusing one readable or writable by
    /// group or others, or owned by another user than root or us.
    pub fn load(path: &Path) -> Result<Self, PkiError> {
        let p = path.display().to_string();
        let md = std::fs::metadata(path).map_err(|e| PkiError::File {
            path: p.clone(),
            msg: e.to_string(),
        })?;
        let mode = md.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(PkiError::Permissions { path: p, mode });
        }
        let euid = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(0);
        if md.uid() != 0 && md.uid() != euid {
            return Err(PkiError::File {
                path: p,
                msg: format!(
                    "a private key must belong to root or to us (uid {euid}), not uid {}",
                    md.uid()
                ),
            });
        }
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| PkiError::File {
            path: p.clone(),
            msg: e.to_string(),
        })?);
        Self::from_bytes(&bytes).map_err(|e| PkiError::File {
            path: p,
            msg: e.to_string(),
        })
    }

    /// A key from PEM text or DER bytes (no permission check: for keys that
    /// come from a checked secrets file).
    pub fn from_bytes(b: &[u8]) -> Result<Self, PkiError> {
        let text = std::str::from_utf8(b).ok().map(str::trim_start);
        if let Some(t) = text.filter(|t| t.contains("RSA {") && !t.contains("-----BEGIN")) {
            // FreeS/WAN ipsec.secrets: ": RSA { Modulus: 0x... }"
            return rsakey::parse_secrets_entry(t);
        }
        if let Some(t) = text.filter(|t| t.starts_with("-----BEGIN")) {
            let (label, der) =
                der::pem::decode_vec(t.as_bytes()).map_err(|e| malformed("PEM private key", e))?;
            let der = Zeroizing::new(der);
            return match label {
                "PRIVATE KEY" => Self::from_pkcs8(&der),
                "RSA PRIVATE KEY" => Self::from_pkcs1(&der),
                "EC PRIVATE KEY" => Self::from_sec1(&der),
                "ENCRYPTED PRIVATE KEY" => Err(PkiError::Unsupported(
                    "encrypted private keys (decrypt it first: openssl pkey -in KEY -out KEY.plain, chmod 600)".into(),
                )),
                l => Err(PkiError::Unsupported(format!(
                    "PEM \"{l}\" (expected PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
                ))),
            };
        }
        Self::from_pkcs8(b)
            .or_else(|_| Self::from_pkcs1(b))
            .or_else(|_| Self::from_sec1(b))
            .map_err(|_| malformed("private key", "neither PEM nor DER PKCS#8, PKCS#1 or SEC1"))
    }
}
