//! The one algorithm table of espresso: every ESP and IKE algorithm with the
//! names operators write for it (strongSwan, FreeS/WAN, router CLIs, our own),
//! its stable name, key and ICV sizes, legacy flag (RFC 8221), IANA transform
//! ID (RFC 7296 §3.3.2), and the names Wireshark and scapy give it. Manual
//! tunnels (`suite = ...`), IKE proposals, `espresso keys` and the docs'
//! table of spellings ([`spellings_markdown`], checked against
//! `docs/config.md` by a test) all read it.
//!
//! - [`esp`]: ESP encryption and integrity ([`EncrAlg`], [`IntegAlg`]) and
//!   suites ([`Suite`], with [`Suite::parse`] for manual tunnels).
//! - [`ike`]: IKE SA encryption, integrity, PRFs and DH groups.
//! - [`proposal`]: proposal strings, transforms as IKEv2 carries them.
//!
//! A new algorithm is one row in a table (and, for the dataplane, a cipher in
//! `dataplane::crypto`); a new spelling is one alias.

#![forbid(unsafe_code)]

pub mod esp;
pub mod ike;
pub mod proposal;

pub use esp::{
    EncrAlg, EncrRow, IntegAlg, IntegRow, Suite, ENCR_TABLE, INTEG_TABLE, SUITE_EXAMPLES,
};
pub use ike::{DhGroup, IkeEncr, IkeInteg, PrfAlg};
pub use proposal::{
    parse_esp_proposals, parse_ike_proposals, ChildSuite, EspProposal, IkeProposal, IkeSuite,
    ProposalError, Xform, DEFAULT_DH,
};

/// The compact form names are compared in: lower case, without `-`, `_`,
/// `+`, `/` and spaces (`AES-GCM-128` and `aes_gcm_128` are `aesgcm128`).
pub fn compact(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '-' | '_' | '+' | ' ' | '/'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The docs' table of ESP spellings (`docs/config.md`, section Suites): one
/// line per algorithm with its stable name and every spelling accepted.
pub fn spellings_markdown() -> String {
    let mut s = String::from("| algorithm | stable name | also written (any case, `-` `_` `/` ignored) | legacy |\n|---|---|---|---|\n");
    let row = |s: &mut String, kind: &str, name: &str, aliases: &[&str], legacy: bool| {
        let a: Vec<String> = aliases.iter().map(|a| format!("`{a}`")).collect();
        s.push_str(&format!(
            "| {kind} | `{name}` | {} | {} |\n",
            a.join(", "),
            if legacy {
                "yes: needs `allow_legacy`"
            } else {
                ""
            }
        ));
    };
    for r in &ENCR_TABLE {
        row(&mut s, "encryption", r.name, r.aliases, r.legacy);
    }
    for r in INTEG_TABLE.iter().filter(|r| !r.aliases.is_empty()) {
        row(&mut s, "integrity", r.name, r.aliases, r.legacy);
    }
    s
}

/// Why a cipher could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Key of the wrong length for the algorithm.
    #[error("{alg} needs a {expected}-byte key, got {got} bytes")]
    KeyLength {
        /// Algorithm name.
        alg: &'static str,
        /// Required length.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// Invalid encryption/integrity combination.
    #[error("{} with {}: {why}", encr.name(), integ.name())]
    Combination {
        /// Encryption transform.
        encr: EncrAlg,
        /// Integrity transform.
        integ: IntegAlg,
        /// Explanation.
        why: &'static str,
    },
    /// Legacy algorithm used without the opt-in.
    #[error("{alg} is a legacy algorithm (RFC 8221): set allow_legacy = true to use it")]
    LegacyNotAllowed {
        /// Algorithm name.
        alg: &'static str,
    },
    /// The requested backend does not implement this algorithm.
    #[error("crypto backend {backend} does not implement {alg}")]
    Unsupported {
        /// Backend name.
        backend: &'static str,
        /// Algorithm name.
        alg: &'static str,
    },
    /// The requested backend was not compiled in (cargo feature off).
    #[error("crypto backend {backend} is not compiled in (cargo feature {feature})")]
    BackendNotCompiled {
        /// Backend name.
        backend: &'static str,
        /// The cargo feature of espresso-dataplane that enables it.
        feature: &'static str,
    },
    /// A key that is the right length but unusable.
    #[error("{alg} key rejected: {why}")]
    WeakKey {
        /// Algorithm name.
        alg: &'static str,
        /// Explanation.
        why: &'static str,
    },
    /// The operating system's random number generator failed (CBC IV key).
    #[error("OS random number generator failed: {0}")]
    Rng(String),
}

#[cfg(test)]
mod tests;
