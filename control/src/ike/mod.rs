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

/// Fuzz entry point for the certificate-related IKE parsers: CERT, CERTREQ
/// and AUTH payload chains (the certificates in them, CERTREQ hashes, RFC
/// 7427 AUTH data checked against a key made from the input), and the
/// RFC 7383 fragment numbers and reassembly. Never panics.
pub fn fuzz_cert_payloads(data: &[u8]) {
    for first in [
        wire::payload::CERT,
        wire::payload::CERTREQ,
        wire::payload::AUTH,
    ] {
        if let Ok(p) = wire::Payloads::parse(data, first, 0) {
            walk(&p);
            for (_, der) in &p.certs {
                let _ = crate::pki::Certificate::from_der(der);
            }
            let _ = sigauth::certreq_hashes(&p.certreqs);
            if let Some(a) = p.auth {
                if let Ok(k) = crate::pki::rsakey::from_rfc3110(&data[..data.len().min(300)]) {
                    let _ = sigauth::verify_auth(&k, a.method, a.data, data);
                }
            }
        }
    }
    // fragments: (number, total, next, length) records, reassembled within limits
    let l = frag::Limits {
        max_fragments: 16,
        max_bytes: 4096,
        timeout: std::time::Duration::from_secs(30),
    };
    let now = std::time::Instant::now();
    let mut r: Option<frag::Reassembly> = None;
    for c in data.chunks(6) {
        let Some((num, total)) = frag::skf_numbers(c) else {
            break;
        };
        if frag::Reassembly::check_numbers(num, total, &l).is_err() {
            continue;
        }
        let plain = zeroize::Zeroizing::new(vec![0u8; usize::from(*c.get(5).unwrap_or(&0))]);
        let ra = match r.take() {
            Some(x) if x.fits(1, false, total, now, &l) => r.insert(x),
            _ => r.insert(frag::Reassembly::new(1, false, total, now)),
        };
        if let Ok(Some(_)) = ra.add(num, *c.get(4).unwrap_or(&0), plain, &l) {
            r = None;
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
        if n.ntype == wire::notify::SIGNATURE_HASH_ALGORITHMS {
            let _ = sigauth::parse_hash_notify(n.data);
        }
    }
    let _ = sigauth::certreq_hashes(&p.certreqs);
    if let Some((_, _, body)) = p.skf {
        let _ = frag::skf_numbers(body);
    }
}
