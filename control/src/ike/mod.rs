//! IKEv2 (RFC 7296) as a sans-IO engine, in the style of quinn-proto/rustls:
//! the caller feeds datagrams, time and dataplane events into an [`Engine`]
//! and drains [`Output`]s: datagrams to send, SAs and policies to install or
//! remove (`dataplane::sa::{SaParams, Policy}`), and [`Event`]s.
//!
//! - [`wire`]: zero-copy views and builders for the header and every payload.
//! - [`proposal`]: algorithms, proposal strings (strongSwan and seeds' forms), negotiation.
//! - [`crypto`]: PRF/prf+, key derivation, DH groups 2/14/19/20/31, SK payload ciphers, PSK AUTH.
//! - [`ts`]: traffic selectors and narrowing.
//! - [`auth_config`], [`sigauth`]: authentication per side (PSK, certificates,
//!   raw RSA keys), RFC 7427 signatures, CERT/CERTREQ.
//! - [`config`]: connections (start action, IDs, `%any`, `%defaultroute`, DPD, lifetimes, PFS).
//! - [`engine`]: the engine, outputs, events, counters; `sa`: one IKE SA's state machine.

pub mod auth_config;
pub mod config;
pub mod crypto;
pub mod engine;
pub mod error;
pub mod frag;
pub mod proposal;
mod sa;
pub mod sigauth;
pub mod ts;
pub mod wire;

pub use auth_config::{LocalAuth, RemoteAuth, WallClock};
pub use config::{
    Connection, ConnectionConfig, DpdAction, Identity, LocalAddr, RemoteAddr, StartAction,
};
pub use engine::{
    ChildSaStatus, DataplaneOp, DeleteReason, Engine, Event, IkeDrop, IkeSaStatus, Output,
    Settings, Stats, Transmit,
};
pub use error::{IkeError, ParseError};

/// Fuzz entry point for the message parser: parses `data` as an IKE message
/// and walks every payload view (proposals, transforms, selectors, deletes).
/// Never panics, whatever the input.
pub fn fuzz_parse(data: &[u8]) {
    if let Ok(m) = wire::Message::parse(data) {
        walk(&m.payloads);
    }
    // the same bytes as the inside of an SK payload, for every first payload type
    for first in [
        wire::payload::SA,
        wire::payload::NOTIFY,
        wire::payload::TSI,
        wire::payload::DELETE,
        wire::payload::IDI,
    ] {
        if let Ok(p) = wire::Payloads::parse(data, first, 0) {
            walk(&p);
        }
    }
}

fn walk(p: &wire::Payloads<'_>) {
    if let Some(sa) = p.sa {
        if let Ok(props) = sa.proposals() {
            for pr in props {
                if let Ok(x) = pr.transforms() {
                    let xs: Vec<proposal::Xform> = x.into_iter().map(Into::into).collect();
                    let _ = proposal::IkeSuite::from_xforms(&xs);
                    let _ = proposal::ChildSuite::from_xforms(&xs);
                    let _ = proposal::xforms_to_string(&xs, true);
                }
            }
        }
    }
    for d in &p.deletes {
        let _ = d.spis32().count();
    }
    for t in p.tsi.iter().chain(p.tsr.iter()).flatten() {
        let _ = ts::range_to_nets(t);
    }
    for n in &p.notifies {
        let _ = n.spi32();
    }
}
