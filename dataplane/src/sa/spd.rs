//! Security Policy Database (outbound): the policy for an inner packet, by
//! selectors (prefixes, protocol, ports), lowest `priority` value first, then
//! the most specific. Readers are lock-free (one `arc-swap` load per burst);
//! updates publish a new sorted copy.

use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};

use super::policy::Policy;
use super::selector::{CompiledSelector, FlowKey};

#[derive(Debug, Clone)]
struct Entry {
    sel: CompiledSelector,
    policy: Policy,
}

/// A published version of the SPD.
#[derive(Debug, Default)]
pub struct SpdTable {
    entries: Vec<Entry>,
}

impl SpdTable {
    /// The first matching policy for an outbound packet.
    #[inline]
    pub fn lookup(&self, k: &FlowKey) -> Option<&Policy> {
        self.entries
            .iter()
            .find(|e| e.sel.matches_outbound(k))
            .map(|e| &e.policy)
    }
    /// Number of policies.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// True if there is no policy.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Policies in match order.
    pub fn iter(&self) -> impl Iterator<Item = &Policy> {
        self.entries.iter().map(|e| &e.policy)
    }
}

/// The SPD.
#[derive(Debug, Default)]
pub struct Spd {
    root: ArcSwap<SpdTable>,
    writer: Mutex<()>,
}

impl Spd {
    /// An empty SPD.
    pub fn new() -> Spd {
        Spd::default()
    }

    /// The current table, for one burst of lookups.
    #[inline]
    pub fn load(&self) -> Guard<Arc<SpdTable>> {
        self.root.load()
    }

    /// Adds policies, or replaces those with the same id.
    pub fn insert(&self, policies: impl IntoIterator<Item = Policy>) {
        self.update(|v| {
            for p in policies {
                v.retain(|e| e.policy.id != p.id);
                v.push(Entry {
                    sel: CompiledSelector::new(&p.selector),
                    policy: p,
                });
            }
        });
    }

    /// Removes the policy with this id; true if it existed.
    pub fn remove(&self, id: u32) -> bool {
        let mut found = false;
        self.update(|v| {
            let n = v.len();
            v.retain(|e| e.policy.id != id);
            found = v.len() != n;
        });
        found
    }

    /// Replaces every policy of a tunnel at once.
    pub fn replace_tunnel(&self, tunnel_id: u32, policies: impl IntoIterator<Item = Policy>) {
        self.update(|v| {
            v.retain(|e| e.policy.tunnel_id != tunnel_id);
            v.extend(policies.into_iter().map(|p| Entry {
                sel: CompiledSelector::new(&p.selector),
                policy: p,
            }));
        });
    }

    fn update(&self, f: impl FnOnce(&mut Vec<Entry>)) {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut v = self.root.load().entries.clone();
        f(&mut v);
        v.sort_by(|a, b| {
            a.policy
                .priority
                .cmp(&b.policy.priority)
                .then(b.sel.specificity().cmp(&a.sel.specificity()))
                .then(a.policy.id.cmp(&b.policy.id))
        });
        self.root.store(Arc::new(SpdTable { entries: v }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sa::{PolicyAction, PortRange, TrafficSelector};

    fn pol(
        id: u32,
        local: &str,
        remote: &str,
        proto: u8,
        action: PolicyAction,
        priority: u32,
    ) -> Policy {
        Policy {
            id,
            tunnel_id: id / 10,
            selector: TrafficSelector {
                local: local.parse().unwrap(),
                remote: remote.parse().unwrap(),
                proto,
                local_ports: PortRange::ANY,
                remote_ports: PortRange::ANY,
            },
            action,
            priority,
        }
    }

    fn key(src: [u8; 4], dst: [u8; 4], proto: u8) -> FlowKey {
        FlowKey {
            v6: false,
            src: u32::from_be_bytes(src).into(),
            dst: u32::from_be_bytes(dst).into(),
            proto,
            ..Default::default()
        }
    }

    #[test]
    fn priority_specificity_and_several_subnets() {
        let spd = Spd::new();
        spd.insert([
            pol(1, "0.0.0.0/0", "0.0.0.0/0", 0, PolicyAction::Discard, 100),
            pol(
                10,
                "10.1.0.0/16",
                "10.2.0.0/16",
                0,
                PolicyAction::Protect { spi: 0x1000 },
                10,
            ),
            pol(
                11,
                "10.1.0.0/16",
                "10.3.0.0/16",
                0,
                PolicyAction::Protect { spi: 0x1000 },
                10,
            ),
            pol(
                12,
                "10.1.5.0/24",
                "10.2.0.0/16",
                6,
                PolicyAction::Bypass,
                10,
            ),
        ]);
        let t = spd.load();
        assert_eq!(
            t.lookup(&key([10, 1, 0, 1], [10, 2, 0, 1], 17)).unwrap().id,
            10
        );
        assert_eq!(
            t.lookup(&key([10, 1, 0, 1], [10, 3, 9, 1], 17)).unwrap().id,
            11
        );
        assert_eq!(
            t.lookup(&key([10, 1, 5, 1], [10, 2, 0, 1], 6)).unwrap().id,
            12
        );
        assert_eq!(
            t.lookup(&key([192, 168, 0, 1], [8, 8, 8, 8], 17))
                .unwrap()
                .id,
            1
        );
        drop(t);
        assert!(spd.remove(1));
        assert!(spd
            .load()
            .lookup(&key([192, 168, 0, 1], [8, 8, 8, 8], 17))
            .is_none());
        spd.replace_tunnel(1, []);
        assert_eq!(spd.load().len(), 0);
    }
}
