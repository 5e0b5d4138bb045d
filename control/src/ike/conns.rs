//! The configured connections of an engine and the trap policies it
//! installed for them, kept the same way by both engines (IKEv2's and
//! IKEv1's `Ctx` implement [`ConnTable`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;
use std::sync::Arc;

use espresso_core::sa::{Policy, PolicyAction, TrafficSelector};

use super::config::{ConnectionConfig, LocalAddr, RemoteAddr, StartAction};
use super::ctx::{Ctx, DataplaneOp};
use super::error::IkeError;
use super::ts::{self, conn_ts};

/// Trap policies by connection name: (policy id, selector).
pub type TrapPolicies = HashMap<String, Vec<(u32, TrafficSelector)>>;

/// An engine's connections, trap policies and dataplane output.
pub(crate) trait ConnTable {
    /// The engine's form of a connection (core's, with loaded credentials).
    type Conn: Deref<Target = ConnectionConfig>;
    /// The connections in the order they were added.
    fn conns(&self) -> &Vec<Arc<Self::Conn>>;
    /// The same, to change.
    fn conns_mut(&mut self) -> &mut Vec<Arc<Self::Conn>>;
    /// The trap policies installed per connection.
    fn traps_mut(&mut self) -> &mut TrapPolicies;
    /// The address `%defaultroute` stands for.
    fn default_route(&self) -> Option<IpAddr>;
    /// A policy id not in use.
    fn new_policy_id(&mut self) -> u32;
    /// Queues a dataplane operation.
    fn dp(&mut self, op: DataplaneOp);

    /// Adds a (validated) connection and installs its trap policies if it
    /// traps; refuses a second connection of the same name.
    fn add_conn(&mut self, conn: Self::Conn) -> Result<Arc<Self::Conn>, IkeError> {
        if self.conns().iter().any(|c| c.name == conn.name) {
            return Err(IkeError::Config(format!(
                "duplicate connection name {:?}",
                conn.name
            )));
        }
        let conn = Arc::new(conn);
        self.conns_mut().push(conn.clone());
        if conn.start_action == StartAction::Trap {
            self.install_traps(&conn);
        }
        Ok(conn)
    }

    /// Removes a connection and its trap policies.
    fn remove_conn(&mut self, name: &str) -> Result<(), IkeError> {
        let before = self.conns().len();
        self.conns_mut().retain(|c| c.name != name);
        if self.conns().len() == before {
            return Err(IkeError::UnknownConnection(name.into()));
        }
        if let Some(traps) = self.traps_mut().remove(name) {
            for (id, _) in traps {
                self.dp(DataplaneOp::RemovePolicy { id });
            }
        }
        Ok(())
    }

    /// Installs the trap policies of a connection.
    fn install_traps(&mut self, conn: &ConnectionConfig) {
        let (l, r) = conn_ts(conn, self.default_route(), None);
        let mut v = Vec::new();
        for s in ts::to_selectors(&l, &r) {
            let id = self.new_policy_id();
            self.dp(DataplaneOp::InstallPolicy(Policy {
                id,
                tunnel_id: conn.tunnel_id,
                selector: s.clone(),
                action: PolicyAction::Trap,
                priority: 100,
            }));
            v.push((id, s));
        }
        self.traps_mut().insert(conn.name.clone(), v);
    }

    /// The connection named `name`.
    fn conn(&self, name: &str) -> Result<Arc<Self::Conn>, IkeError> {
        self.conns()
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .ok_or_else(|| IkeError::UnknownConnection(name.into()))
    }

    /// The connections whose addresses allow a datagram `from` the peer `to` us.
    fn addressed(&self, from: SocketAddr, to: SocketAddr) -> Vec<Arc<Self::Conn>> {
        let default_route = self.default_route();
        self.conns()
            .iter()
            .filter(|c| match c.local_addr {
                LocalAddr::Addr(a) => a == to.ip(),
                LocalAddr::DefaultRoute => default_route.is_none_or(|a| a == to.ip()),
                LocalAddr::Any => true,
            })
            .filter(|c| match c.remote_addr {
                RemoteAddr::Addr(a) => a == from.ip(),
                RemoteAddr::Any => true,
            })
            .cloned()
            .collect()
    }
}

impl<D> ConnTable for Ctx<D> {
    type Conn = super::config::Connection;
    fn conns(&self) -> &Vec<Arc<Self::Conn>> {
        &self.conns
    }
    fn conns_mut(&mut self) -> &mut Vec<Arc<Self::Conn>> {
        &mut self.conns
    }
    fn traps_mut(&mut self) -> &mut TrapPolicies {
        &mut self.trap_policies
    }
    fn default_route(&self) -> Option<IpAddr> {
        self.default_route
    }
    fn new_policy_id(&mut self) -> u32 {
        Ctx::new_policy_id(self)
    }
    fn dp(&mut self, op: DataplaneOp) {
        Ctx::dp(self, op)
    }
}

/// The connection whose trap policy `policy_id` is.
pub(crate) fn trap_owner(traps: &TrapPolicies, policy_id: u32) -> Option<String> {
    traps
        .iter()
        .find(|(_, v)| v.iter().any(|(id, _)| *id == policy_id))
        .map(|(n, _)| n.clone())
}
