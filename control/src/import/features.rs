//! The switches for what the importer may write as running configuration.
//!
//! IKEv1 is on: the loader and the daemon run IKEv1 connections (`ikev2 =`,
//! `keyexchange =`, `aggressive =`, `version =`), and the import's check
//! parses their proposals with the IKEv1 engine's parser. Certificates and
//! RSA keys are still off here: the importer does not yet map `leftcert`,
//! `: RSA` secrets, `cacerts`/`crls` directories and `leftrsasigkey` onto the
//! fields the loader requires, so such connections are written commented out
//! and reported as "cannot be used yet".

/// The loader accepts the IKEv1 fields of the agreed schema and the daemon
/// runs IKEv1 (`ikev2 = "never" | "permit" | "propose" | "insist"`,
/// `version = 1 | 2`, `keyexchange = "ikev1" | "ikev2" | "ike"`,
/// `aggressive = true | false`).
pub const IKEV1: bool = true;

/// Certificates and raw RSA keys (`leftcert`, `rightca`, `leftrsasigkey`,
/// `authby = rsasig`, `: RSA` secrets) are available (issue 13).
pub const CERTS: bool = false;

/// Why a connection needing IKEv1 is not written as running configuration.
pub const IKEV1_MISSING: &str = "cannot be used yet: IKEv1 is not available in this build";
/// Why a connection needing certificates or RSA keys is not written as running configuration.
pub const CERTS_MISSING: &str =
    "cannot be used yet: certificates and RSA keys are not available in this build (issue 13)";
