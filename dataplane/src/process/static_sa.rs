//! Static SAs and policies from a JSON file (`--static-sa FILE`, mode 0600),
//! for running the dataplane without the control process (tests,
//! benchmarks). The file holds `{"sas": [...], "policies": [...]}`: each SA
//! is the serde form of [`SaParams`] plus its keys in hex (`enc_key`,
//! `auth_key`), each policy the serde form of [`Policy`].

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::crypto::{Backend, Key};
use crate::sa::{Policy, Sa, SaError, SaParams};

/// One SA in a static SA file: the SA parameters plus hex keys.
#[derive(Deserialize)]
struct StaticSa {
    #[serde(flatten)]
    params: SaParams,
    /// Encryption key (AEAD: key + salt) in hex, with or without 0x.
    enc_key: String,
    /// Integrity key in hex (empty for AEAD).
    #[serde(default)]
    auth_key: String,
}

#[derive(Deserialize)]
struct StaticFile {
    #[serde(default)]
    sas: Vec<StaticSa>,
    #[serde(default)]
    policies: Vec<Policy>,
}

/// Why a static SA file was refused.
#[derive(Debug, thiserror::Error)]
pub enum StaticSaError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// Others may read the keys.
    #[error("{path}: mode {mode:o} lets others read the keys; chmod 600 it")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// Not the JSON described above.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Parse error (line and column).
        source: serde_json::Error,
    },
    /// A key is not hex.
    #[error("{path}: sas[{index}].{field}: {why}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Which SA.
        index: usize,
        /// `enc_key` or `auth_key`.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The SA could not be built.
    #[error("{path}: sas[{index}] (spi {spi:#x}): {source}")]
    Sa {
        /// The file.
        path: PathBuf,
        /// Which SA.
        index: usize,
        /// Its SPI.
        spi: u32,
        /// Why.
        source: SaError,
    },
}

/// Decodes a hex key (`0x` prefix optional).
pub fn hex_key(s: &str) -> Result<Key, String> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    hex::decode(s).map(Key::new).map_err(|e| match e {
        hex::FromHexError::OddLength => format!("odd number of hex digits ({})", s.len()),
        hex::FromHexError::InvalidHexCharacter { index, .. } => {
            format!("not hex at digit {}", index + 1)
        }
        e => e.to_string(),
    })
}

/// Reads `path` (which must be mode 0600 or stricter) and builds its SAs on
/// `backend`.
pub fn load(path: &Path, backend: Backend) -> Result<(Vec<Sa>, Vec<Policy>), StaticSaError> {
    let io = |source| StaticSaError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mode = fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StaticSaError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = fs::read_to_string(path).map_err(io)?;
    let f: StaticFile = serde_json::from_str(&text).map_err(|source| StaticSaError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let mut sas = Vec::new();
    for (index, s) in f.sas.into_iter().enumerate() {
        let key = |field: &'static str, hex: &str| {
            hex_key(hex).map_err(|why| StaticSaError::Key {
                path: path.to_path_buf(),
                index,
                field,
                why,
            })
        };
        let mut p = s.params;
        p.enc_key = key("enc_key", &s.enc_key)?;
        p.auth_key = key("auth_key", &s.auth_key)?;
        let spi = p.spi;
        let sa = Sa::new(p, backend).map_err(|source| StaticSaError::Sa {
            path: path.to_path_buf(),
            index,
            spi,
            source,
        })?;
        tracing::info!(
            "SA spi {spi:#x} {:?}: cipher implemented by {}",
            sa.direction(),
            sa.cipher().backend()
        );
        sas.push(sa);
    }
    Ok((sas, f.policies))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_keys() {
        assert_eq!(hex_key("0x0a0B").unwrap().bytes(), &[10, 11]);
        assert_eq!(hex_key(" ff ").unwrap().bytes(), &[255]);
        assert!(hex_key("").unwrap().is_empty());
        assert!(hex_key("abc").unwrap_err().contains("odd"));
        assert!(hex_key("zz").unwrap_err().contains("digit 1"));
    }

    #[test]
    fn loose_files_and_bad_json_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sa.json");
        std::fs::write(&p, "{\"sas\": []}").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load(&p, Backend::Auto),
            Err(StaticSaError::Permissions { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (sas, pols) = load(&p, Backend::Auto).unwrap();
        assert!(sas.is_empty() && pols.is_empty());
        std::fs::write(&p, "{\"sas\": [1]}").unwrap();
        assert!(matches!(
            load(&p, Backend::Auto),
            Err(StaticSaError::Json { .. })
        ));
    }
}
