//! The switches for what the importer may write as running configuration.
//!
//! IKEv1 is on: the loader and the daemon run IKEv1 connections (`ikev2 =`,
//! `keyexchange =`, `aggressive =`, `version =`), and the import's check
//! parses their proposals with the IKEv1 engine's parser. Certificates and
//! raw RSA keys are mapped unconditionally (conn/auth.rs).

/// The loader accepts the IKEv1 fields of the agreed schema and the daemon
/// runs IKEv1 (`ikev2 = "never" | "permit" | "propose" | "insist"`,
/// `version = 1 | 2`, `keyexchange = "ikev1" | "ikev2" | "ike"`,
/// `aggressive = true | false`).
pub const IKEV1: bool = true;

/// Why a connection needing IKEv1 is not written as running configuration.
pub const IKEV1_MISSING: &str = "cannot be used yet: IKEv1 is not available in this build";
