//! IKEv1 (RFC 2407/2408/2409) as a sans-IO engine beside the IKEv2 one
//! ([`crate::ike`]), for the peers operators already run (the seeds:
//! Openswan, FreeS/WAN, isakmpd, VyOS-like routers). Same shape as IKEv2:
//! feed datagrams and time, drain [`Output`]s (datagrams, SA/policy
//! installs and removals, [`Event`]s), ask for the next deadline.
//!
//! - [`wire`]: ISAKMP header and every payload (views and builders).
//! - [`crypto`]: SKEYID, SKEYID_d/a/e, key expansion, IVs, hashes, KEYMAT, CBC.
//! - [`proposal`]: phase 1 and phase 2 proposals in the seeds' and strongSwan's forms.
//! - [`config`]: connections, the Openswan `ikev2=` version policy.
//! - [`sigauth`]: RSA signatures (RFC 2409 §5.1), CERT and CERTREQ payloads.
//! - [`engine`]: the engine; `sa`: one ISAKMP SA (main/aggressive, quick mode,
//!   informational, DPD, NAT-T, timers).
//!
//! Shared with IKEv2: DH groups and PRFs (`ike::crypto`), ESP suites and
//! proposal types (`ike::proposal`), traffic selectors (`ike::ts`), output
//! types and events (`ike::engine`), identities and connection enums.

pub mod config;
pub mod crypto;
mod ctx;
pub mod engine;
#[cfg(any(fuzzing, test))]
pub mod fuzz;
pub mod proposal;
mod sa;
pub mod sigauth;
pub mod wire;

pub use crate::ike::engine::{DataplaneOp, DeleteReason, Event, Output, Transmit};
pub use config::{Connection, ConnectionConfig, ExchangeMode, VersionPolicy};
pub use engine::{Engine, Ikev1SaStatus, Settings, Stats, V1Drop};
