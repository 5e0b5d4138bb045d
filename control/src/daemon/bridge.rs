//! What the two keying-engine bridges ([`super::ike`], [`super::ikev1`]) do
//! the same way: their hold policies, reloading their connections, their
//! notes for `status`, which dataplane events are theirs, sending the
//! engine's datagrams and exporting their SAs' keys.

use std::collections::VecDeque;
use std::sync::Arc;

use espresso_core::config::connection::IkeConn;
use espresso_core::sa::{Direction, Mode, Policy, PolicyAction, SaEvent};
use tracing::{info, warn};

use super::api;
use super::engine_sas::EngineSas;
use super::ikeio::IkeIo;
use super::installer::{policy_id, Installer};
use crate::ike::config::ConnectionConfig;
use crate::ike::{self, StartAction, Transmit};

/// Priority of hold policies: after every protect and trap policy (100), so
/// they only catch a connection's traffic while it has no child SA.
const HOLD_PRIORITY: u32 = 200;

/// Recent explanations (NO_PROPOSAL_CHOSEN, authentication failures) kept for `status`.
const MAX_NOTES: usize = 16;

/// Discard policies that hold a tunnel-mode connection's traffic while it has
/// no child SA (before the first exchange, after `down`, a DPD `clear`, a
/// delete by the peer): what is meant for the tunnel never leaves in the
/// clear, as with manual tunnels. Only for connections with configured
/// remote subnets: a road-warrior responder (`%any`) or a host-to-host
/// connection has no fixed traffic to hold (and holding gateway addresses
/// would catch IKE itself on the DPDK exception path). `range`: the
/// engine's hold range of [`policy_id`].
pub fn hold_policies(range: u32, tunnel_id: u32, c: &ConnectionConfig) -> Vec<Policy> {
    if c.remote_ts.is_empty() || c.mode != Mode::Tunnel || c.start_action == StartAction::Trap {
        return Vec::new();
    }
    let (l, r) = ike::ts::conn_ts(c, None, None);
    ike::ts::to_selectors(&l, &r)
        .into_iter()
        .take(256)
        .enumerate()
        .map(|(n, selector)| Policy {
            id: policy_id::hold(range, tunnel_id, n as u32),
            tunnel_id,
            selector,
            action: PolicyAction::Discard,
            priority: HOLD_PRIORITY,
        })
        .collect()
}

/// Removes the hold policies (in `range`) of tunnel `tunnel_id`.
pub fn remove_holds(sas: &mut EngineSas, inst: &mut Installer, range: u32, tunnel_id: u32) {
    let holds = sas
        .policy_ids(|pid| policy_id::is_in(pid, range) && policy_id::hold_owner(pid) == tunnel_id);
    for pid in holds {
        sas.remove_policy(inst, pid);
    }
}

/// A bridge's connections as [`reload`] changes them.
pub trait ConnSet {
    /// Name and configuration hash of each loaded connection.
    fn loaded(&self) -> Vec<(String, u64)>;
    /// Adds a connection to the engine.
    fn add(&mut self, inst: &mut Installer, c: IkeConn);
    /// Removes a connection (its SAs are deleted).
    fn remove(&mut self, inst: &mut Installer, name: &str);
}

/// Reload of connections: `new` is the whole new set (`only`: just that
/// one); a connection whose hash changed is removed and added again.
/// Returns what changed, each line ending in `tag`.
pub fn reload(
    set: &mut impl ConnSet,
    inst: &mut Installer,
    new: Vec<IkeConn>,
    only: Option<&str>,
    tag: &str,
) -> Vec<String> {
    let mut changed = Vec::new();
    let old = set.loaded();
    for (name, _) in &old {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        if !new.iter().any(|c| &c.name == name) {
            set.remove(inst, name);
            changed.push(format!("{name}: removed{tag}"));
        }
    }
    for c in new {
        if only.is_some_and(|o| o != c.name) {
            continue;
        }
        let name = c.name.clone();
        match old.iter().find(|(n, _)| *n == c.name) {
            Some((_, h)) if *h == c.hash => {}
            Some(_) => {
                set.remove(inst, &name);
                set.add(inst, c);
                changed.push(format!("{name}: changed{tag}"));
            }
            None => {
                set.add(inst, c);
                changed.push(format!("{name}: added{tag}"));
            }
        }
    }
    changed
}

/// Keeps `text` as a recent note for `status` (prefixed with the connection).
pub fn push_note(notes: &mut VecDeque<String>, conn: &str, text: String) {
    if notes.len() == MAX_NOTES {
        notes.pop_front();
    }
    notes.push_back(if conn.is_empty() {
        text
    } else {
        format!("{conn}: {text}")
    });
}

/// A dataplane event as the engine whose SAs are `sas` and whose policy
/// range is `range` takes it (an acquire's policy id in the engine's own
/// numbering), logged; `None` if the event is not this engine's. `trap`
/// and `dataplane` name the engine's trap policies and SAs in the log.
pub fn own_event(
    sas: &EngineSas,
    ev: &SaEvent,
    range: u32,
    trap: &str,
    dataplane: &str,
) -> Option<SaEvent> {
    let ours = match ev {
        SaEvent::SoftExpire { spi, direction, .. } | SaEvent::HardExpire { spi, direction, .. } => {
            sas.get(*spi, *direction).is_some()
        }
        SaEvent::SeqExhausted { spi } => sas.get(*spi, Direction::Outbound).is_some(),
        SaEvent::Acquire { policy_id, .. } => policy_id::is_in(*policy_id, range),
    };
    if !ours {
        return None;
    }
    Some(match ev {
        SaEvent::Acquire {
            policy_id,
            src,
            dst,
            proto,
        } => {
            info!("acquire: {src} -> {dst} proto {proto} matches {trap}: negotiating");
            SaEvent::Acquire {
                policy_id: policy_id & policy_id::ENGINE_ID_MASK,
                src: *src,
                dst: *dst,
                proto: *proto,
            }
        }
        other => {
            info!("{dataplane}: {other:?}");
            other.clone()
        }
    })
}

/// Sends one of the engine's datagrams (`what` names the protocol in the
/// log); without sockets, says why.
pub fn send(io: &Option<Arc<IkeIo>>, io_error: &Option<String>, t: &Transmit, what: &str) {
    match io {
        Some(io) => {
            if let Err(e) = io.send(t) {
                warn!("{what} send {} -> {}: {e}", t.local, t.remote);
            }
        }
        None => warn!(
            "{what} send {} -> {}: no sockets ({})",
            t.local,
            t.remote,
            io_error.clone().unwrap_or_default()
        ),
    }
}

/// The keys of the installed SAs of connection `name` (all connections:
/// `None`), for `espresso keys`; `conn_of` names a tunnel's connection.
/// Nothing is logged here.
pub fn keys<'a>(
    sas: &EngineSas,
    conn_of: impl Fn(u32) -> Option<&'a str>,
    name: Option<&str>,
    out: &mut Vec<api::SaKeys>,
) {
    for s in sas.sorted() {
        let p = &s.params;
        let Some(c) = conn_of(p.tunnel_id) else {
            continue;
        };
        if name.is_some_and(|n| n != c) {
            continue;
        }
        out.push(api::SaKeys::of(c, p));
    }
}
