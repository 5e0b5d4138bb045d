//! Engine events in the daemon's words: what went wrong (for the log, the
//! connection's error and `status` notes) and what is progress (the log).
//! Both keying engines (IKEv2 and IKEv1) produce the same [`Event`]s.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tracing::info;

use crate::ike::{self, DegradedNext, Event};

/// An engine instant as UTC time of day (HH:MM:SSZ), for log lines and
/// `status` that tell the operator when something will happen.
pub fn wall_clock(at: Instant) -> String {
    let now = Instant::now();
    let wall = if at >= now {
        SystemTime::now() + (at - now)
    } else {
        SystemTime::now() - (now - at)
    };
    let s = wall
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    format!("{:02}:{:02}:{:02}Z", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

/// What espresso does about a degraded child SA, in words (`at`: its expiry).
pub fn degraded_next(next: DegradedNext, at: &str) -> String {
    match next {
        DegradedNext::OwnRekey => "espresso rekeys it itself, with PFS, now".into(),
        DegradedNext::FreshChild => {
            "espresso's rekey was refused too: negotiating a fresh IKE SA and child SA (the old ones carry traffic until it is up)".into()
        }
        DegradedNext::TrafficStops => format!(
            "espresso's rekey was refused too and this connection does not initiate (start = add): traffic will stop at {at}"
        ),
    }
}

/// What an engine event says went wrong, with its connection, if anything.
pub fn failure(e: &Event) -> Option<(&str, String)> {
    Some(match e {
        Event::IkeDeleted {
            conn,
            reason: ike::DeleteReason::Failed(err),
            ..
        } => (conn, format!("IKE SA failed: {err}")),
        Event::DpdDead { sa, conn, action } => (
            conn,
            format!(
                "peer of IKE SA {sa:#018x} is dead (no answer to liveness checks): dpd action {action:?}"
            ),
        ),
        Event::ProposalMismatch {
            conn,
            kind,
            peer,
            offered,
            configured,
            local_responder,
        } => {
            let t = if *local_responder {
                format!(
                    "NO_PROPOSAL_CHOSEN: no {kind} proposal of {peer} is acceptable: peer offered [{}], configured [{}]",
                    offered.join(", "),
                    configured.join(", ")
                )
            } else {
                format!(
                    "NO_PROPOSAL_CHOSEN from {peer}: it accepts none of our {kind} proposals: configured [{}]; the peer's own proposals are not sent to an initiator (its log shows them)",
                    configured.join(", ")
                )
            };
            (conn, t)
        }
        Event::AuthFailed { conn, peer, reason } => {
            (conn, format!("authentication with {peer} failed: {reason}"))
        }
        Event::ChildFailed { conn, error, .. } => (conn, format!("child SA failed: {error}")),
        Event::AddressUpdateFailed { sa, conn, reason } => (
            conn,
            format!("MOBIKE address update of IKE SA {sa:#018x} failed: {reason}"),
        ),
        _ => return None,
    })
}

/// Logs the events that are progress (SAs established, rekeyed, deleted).
pub fn log_progress(e: &Event) {
    match e {
        Event::IkeEstablished {
            sa,
            conn,
            local,
            remote,
            remote_id,
            proposal,
            initiator,
            nat_local,
            nat_remote,
        } => info!(
            "{conn}: IKE SA {sa:#018x} established {local} <-> {remote} ({}), peer {remote_id}, {proposal}{}{}",
            if *initiator { "initiator" } else { "responder" },
            if *nat_local { ", we are behind a NAT" } else { "" },
            if *nat_remote { ", the peer is behind a NAT" } else { "" },
        ),
        Event::ChildEstablished {
            conn,
            inbound_spi,
            outbound_spi,
            proposal,
            local_ts,
            remote_ts,
            encap,
            ..
        } => info!(
            "{conn}: child SA installed, SPIs in {inbound_spi:#010x} out {outbound_spi:#010x}, {proposal}, {} === {}{}",
            local_ts.join(","),
            remote_ts.join(","),
            if *encap { ", ESP in UDP" } else { "" }
        ),
        Event::ChildRekeyed {
            conn,
            old_inbound,
            old_outbound,
            new_inbound,
            new_outbound,
            ..
        } => info!(
            "{conn}: child SA rekeyed: in {old_inbound:#010x} -> {new_inbound:#010x}, out {old_outbound:#010x} -> {new_outbound:#010x}"
        ),
        Event::ChildRekeyCollision {
            conn,
            kept_inbound,
            kept_outbound,
            redundant_inbound,
            redundant_outbound,
            ..
        } => info!(
            "{conn}: child SA rekey collision (both ends rekeyed at once): sending on in {kept_inbound:#010x} out {kept_outbound:#010x}; in {redundant_inbound:#010x} out {redundant_outbound:#010x} is redundant until the peer's choice is seen"
        ),
        Event::ChildCollisionSettled {
            conn,
            kept_inbound,
            kept_outbound,
            deleted_inbound,
            deleted_outbound,
            followed_peer,
            ..
        } => info!(
            "{conn}: child SA rekey collision settled: the peer sends on in {kept_inbound:#010x} out {kept_outbound:#010x}{}; deleted in {deleted_inbound:#010x} out {deleted_outbound:#010x}",
            if *followed_peer { " (its pick, not ours: we moved to it)" } else { "" }
        ),
        Event::ChildDeleted {
            conn,
            inbound_spi,
            outbound_spi,
            reason,
            ..
        } => info!(
            "{conn}: child SA in {inbound_spi:#010x} out {outbound_spi:#010x} deleted ({reason:?})"
        ),
        Event::IkeRekeyed {
            conn,
            old_sa,
            new_sa,
        } => info!("{conn}: IKE SA rekeyed {old_sa:#018x} -> {new_sa:#018x}"),
        Event::IkeDeleted { sa, conn, reason } => {
            info!("{conn}: IKE SA {sa:#018x} deleted ({reason:?})")
        }
        Event::AddressesUpdated {
            sa,
            conn,
            local,
            remote,
            nat_local,
            nat_remote,
            children,
        } => info!(
            "{conn}: IKE SA {sa:#018x} moved to {local} <-> {remote} (MOBIKE), {children} child SA(s) follow{}{}",
            if *nat_local { ", we are behind a NAT" } else { "" },
            if *nat_remote { ", the peer is behind a NAT" } else { "" },
        ),
        _ => {}
    }
}
