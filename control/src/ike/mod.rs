//! IKEv2 (RFC 7296) as a sans-IO engine, in the style of quinn-proto/rustls:
//! the caller feeds datagrams, time and dataplane events into an [`Engine`]
//! and drains [`Output`]s: datagrams to send, SAs and policies to install or
//! remove (`espresso_core::sa::{SaParams, Policy}`), and [`Event`]s.
//!
//! - [`wire`]: zero-copy views and builders for the header and every payload.
//! - [`proposal`]: algorithms, proposal strings (strongSwan and router-CLI forms), negotiation.
//! - [`crypto`]: PRF/prf+, key derivation, DH groups 2/14/19/20/31, SK payload ciphers, PSK AUTH.
//! - [`ts`]: traffic selectors and narrowing.
//! - [`auth_config`], [`sigauth`]: authentication per side (PSK, certificates,
//!   raw RSA keys), RFC 7427 signatures, CERT/CERTREQ; [`frag`]: RFC 7383
//!   fragmentation and reassembly; [`halfopen`]: half-open SA counts and
//!   their hard limits (shared with IKEv1).
//! - [`config`]: connections (start action, IDs, `%any`, `%defaultroute`, DPD, lifetimes, PFS).
//! - [`engine`]: the engine; `sa`: one IKE SA's state machine; [`ctx`]: what
//!   both share (settings, outputs, events, counters, the SA context);
//!   [`status`]: what the engine reports. Imports run engine -> sa -> ctx.

pub mod auth_config;
pub mod config;
pub(crate) mod conns;
pub mod crypto;
pub mod ctx;
pub mod engine;
pub mod error;
pub mod frag;
#[cfg(any(fuzzing, test))]
pub mod fuzz;
pub mod halfopen;
pub mod proposal;
mod sa;
pub mod sigauth;
pub mod status;
pub mod ts;
pub mod wire;

pub use auth_config::{LocalAuth, RemoteAuth, WallClock};
pub use config::{Connection, DpdAction, Identity, LocalAddr, RemoteAddr, StartAction};
pub use ctx::{
    DataplaneOp, DegradedNext, DeleteReason, Event, IkeDrop, Output, ReservedSpis, Settings, Stats,
    Transmit,
};
pub use engine::Engine;
pub use error::{IkeError, ParseError};
pub use status::{ChildSaStatus, IkeSaStatus};
