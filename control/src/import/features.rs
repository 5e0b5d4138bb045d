//! The switches for what the importer may write as running configuration.
//!
//! The mapping code for IKEv1 fields (`ikev2 =`, `keyexchange =`,
//! `aggressive =`, `version =`) and for certificate/RSA fields exists now;
//! until the loader accepts them (IKEv1 branch, issue 13), connections that
//! need them are written commented out and reported as "cannot be used
//! yet". Turning one of these on is the one-line change (plus golden files).

/// The loader accepts the IKEv1 fields of the agreed schema and the daemon
/// runs IKEv1 (`ikev2 = "never" | "permit" | "propose" | "insist"`,
/// `version = 1 | 2`, `keyexchange = "ikev1" | "ikev2" | "ike"`,
/// `aggressive = true | false`).
pub const IKEV1: bool = false;

/// Certificates and raw RSA keys (`leftcert`, `rightca`, `leftrsasigkey`,
/// `authby = rsasig`, `: RSA` secrets) are available (issue 13).
pub const CERTS: bool = false;

/// Why a connection needing IKEv1 is not written as running configuration.
pub const IKEV1_MISSING: &str = "cannot be used yet: IKEv1 is not available in this build";
/// Why a connection needing certificates or RSA keys is not written as running configuration.
pub const CERTS_MISSING: &str =
    "cannot be used yet: certificates and RSA keys are not available in this build (issue 13)";
