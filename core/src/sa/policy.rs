//! Security policies (RFC 4301 SPD entries) and the events the dataplane
//! raises for the control process.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::params::{Direction, TrafficSelector};

/// What to do with an outbound packet that matches a policy's selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "action")]
pub enum PolicyAction {
    /// Encrypt with the outbound SA that has this SPI.
    Protect {
        /// SPI of the outbound SA.
        spi: u32,
    },
    /// Forward in the clear.
    Bypass,
    /// Drop (counted as `policy_discard`).
    Discard,
    /// No SA yet (start mode `trap`): drop, and raise an acquire so that the
    /// control process negotiates one.
    Trap,
}

/// An outbound SPD entry. Lookups pick the matching entry with the lowest
/// `priority` value (most specific first when priorities are equal).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Policy {
    /// Identifier assigned by the control process (unique per dataplane).
    pub id: u32,
    /// Tunnel the policy belongs to.
    pub tunnel_id: u32,
    /// Inner packets this policy applies to (local = source side of outbound packets).
    pub selector: TrafficSelector,
    /// What to do with them.
    pub action: PolicyAction,
    /// Lower value wins.
    pub priority: u32,
}

/// Which limit a lifetime event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LifetimeKind {
    /// Byte count.
    Bytes,
    /// Packet count.
    Packets,
}

/// Something the dataplane reports to the control process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaEvent {
    /// An SA passed its soft lifetime: rekey it.
    SoftExpire {
        /// SA SPI.
        spi: u32,
        /// SA direction.
        direction: Direction,
        /// Which limit.
        kind: LifetimeKind,
    },
    /// An SA passed its hard lifetime: it no longer processes packets.
    HardExpire {
        /// SA SPI.
        spi: u32,
        /// SA direction.
        direction: Direction,
        /// Which limit.
        kind: LifetimeKind,
    },
    /// An outbound SA used up its sequence numbers (it stops, never wraps).
    SeqExhausted {
        /// SA SPI.
        spi: u32,
    },
    /// A packet hit a `Trap` policy: negotiate an SA for it.
    Acquire {
        /// Policy that trapped it.
        policy_id: u32,
        /// Inner source address.
        src: IpAddr,
        /// Inner destination address.
        dst: IpAddr,
        /// Inner IP protocol.
        proto: u8,
    },
}
