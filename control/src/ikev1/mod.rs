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
//! - [`engine`]: the engine; `sa`: one ISAKMP SA (main/aggressive, quick mode,
//!   informational, DPD, NAT-T, timers).
//!
//! Shared with IKEv2: DH groups and PRFs (`ike::crypto`), ESP suites and
//! proposal types (`ike::proposal`), traffic selectors (`ike::ts`), output
//! types and events (`ike::engine`), identities and connection enums.

pub mod config;
pub mod crypto;
pub mod engine;
pub mod proposal;
mod sa;
pub mod wire;

pub use crate::ike::engine::{DataplaneOp, DeleteReason, Event, Output, Transmit};
pub use config::{Connection, ConnectionConfig, ExchangeMode, VersionPolicy};
pub use engine::{Engine, Ikev1SaStatus, Settings, Stats, V1Drop};

/// Fuzz entry point for the parser: the bytes as a whole message, and as a
/// payload chain after every first-payload type an exchange can start with;
/// every view (proposals, transforms, attributes, IDs as identities and
/// selectors, notifies, deletes, NAT-OA, certificates) is walked. Never panics.
pub fn fuzz_parse(data: &[u8]) {
    if let Ok(h) = wire::Header::parse(data) {
        if let Ok(p) = wire::Payloads::parse(&data[wire::HEADER_LEN..], h.next_payload()) {
            walk(&p);
        }
    }
    for first in [
        wire::payload::SA,
        wire::payload::HASH,
        wire::payload::KE,
        wire::payload::ID,
        wire::payload::NOTIFY,
        wire::payload::DELETE,
        wire::payload::VENDOR,
    ] {
        if let Ok(p) = wire::Payloads::parse(data, first) {
            walk(&p);
        }
    }
}

fn walk(p: &wire::Payloads<'_>) {
    if let Some(sa) = p.sa {
        if let Ok(props) = sa.proposals() {
            for pr in &props {
                for t in &pr.transforms {
                    let _ = proposal::Phase1Suite::from_transform(t);
                    let _ = proposal::p2_from_transform(t);
                    let _ = proposal::describe_p1(t);
                    let _ = proposal::describe_p2(t);
                }
            }
        }
    }
    for i in &p.ids {
        let _ = i.identity();
        if let Ok(t) = i.ts() {
            let _ = wire::ts_body(&t);
            let _ = crate::ike::ts::range_to_nets(&t);
        }
    }
    for d in &p.deletes {
        let _ = d.spis32().count();
        let _ = d.cookies().count();
    }
    for n in &p.notifies {
        let _ = n.spi32();
        let _ = wire::parse_attrs(n.data);
    }
    let _ = p.known_vids();
}
