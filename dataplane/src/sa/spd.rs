//! Security Policy Database (outbound): the policy for an inner packet, by
//! selectors (prefixes, protocol, ports), lowest `priority` value first, then
//! the most specific. Readers are lock-free (one `arc-swap` load per burst);
//! updates publish a new sorted copy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};

use super::policy::{Policy, PolicyAction, SaEvent};
use super::selector::{CompiledSelector, FlowKey};

/// The first packet a trap policy caught since the management thread last
/// looked: written by a worker (0 idle -> 1 writing -> 2 ready), read and
/// reset by the management thread. No lock, no allocation.
#[derive(Debug, Default)]
struct AcquireSlot {
    state: AtomicU32,
    src: [AtomicU64; 2],
    dst: [AtomicU64; 2],
    /// protocol | v6 << 8
    meta: AtomicU32,
}

#[derive(Debug, Clone)]
struct Entry {
    sel: CompiledSelector,
    policy: Policy,
    acquire: Arc<AcquireSlot>,
}

fn addr(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(v))
    } else {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    }
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

    /// A packet hit a trap policy: remembers it for an acquire event unless
    /// one is already waiting for that policy (workers; lock-free).
    pub fn note_acquire(&self, k: &FlowKey) {
        let Some(e) = self.entries.iter().find(|e| e.sel.matches_outbound(k)) else {
            return;
        };
        let a = &e.acquire;
        if a.state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        a.src[0].store((k.src >> 64) as u64, Ordering::Relaxed);
        a.src[1].store(k.src as u64, Ordering::Relaxed);
        a.dst[0].store((k.dst >> 64) as u64, Ordering::Relaxed);
        a.dst[1].store(k.dst as u64, Ordering::Relaxed);
        a.meta
            .store(u32::from(k.proto) | u32::from(k.v6) << 8, Ordering::Relaxed);
        a.state.store(2, Ordering::Release);
    }

    /// Acquire events of trap policies (management thread): one per policy
    /// that caught a packet since the last call.
    pub fn take_acquires(&self, out: &mut Vec<SaEvent>) {
        for e in &self.entries {
            let a = &e.acquire;
            if a.state.load(Ordering::Acquire) != 2 {
                continue;
            }
            let hi_lo = |x: &[AtomicU64; 2]| {
                u128::from(x[0].load(Ordering::Relaxed)) << 64
                    | u128::from(x[1].load(Ordering::Relaxed))
            };
            let (src, dst) = (hi_lo(&a.src), hi_lo(&a.dst));
            let meta = a.meta.load(Ordering::Relaxed);
            a.state.store(0, Ordering::Release);
            if e.policy.action != PolicyAction::Trap {
                continue;
            }
            let v6 = meta >> 8 & 1 == 1;
            out.push(SaEvent::Acquire {
                policy_id: e.policy.id,
                src: addr(src, v6),
                dst: addr(dst, v6),
                proto: meta as u8,
            });
        }
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
                    acquire: Arc::default(),
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
                acquire: Arc::default(),
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

    #[test]
    fn trap_hits_become_one_acquire_per_policy() {
        let spd = Spd::new();
        spd.insert([
            pol(7, "10.1.0.0/24", "10.2.0.0/24", 0, PolicyAction::Trap, 100),
            pol(
                8,
                "10.1.0.0/24",
                "10.3.0.0/24",
                0,
                PolicyAction::Discard,
                100,
            ),
        ]);
        let t = spd.load();
        t.note_acquire(&key([10, 1, 0, 5], [10, 2, 0, 9], 1));
        t.note_acquire(&key([10, 1, 0, 6], [10, 2, 0, 9], 6)); // one is waiting already
        t.note_acquire(&key([10, 1, 0, 6], [10, 3, 0, 9], 6)); // not a trap
        drop(t);
        // a table update in between keeps the pending acquire
        spd.insert([pol(
            9,
            "10.9.0.0/24",
            "10.8.0.0/24",
            0,
            PolicyAction::Bypass,
            50,
        )]);
        let mut ev = Vec::new();
        spd.load().take_acquires(&mut ev);
        assert_eq!(
            ev,
            vec![SaEvent::Acquire {
                policy_id: 7,
                src: "10.1.0.5".parse().unwrap(),
                dst: "10.2.0.9".parse().unwrap(),
                proto: 1,
            }]
        );
        ev.clear();
        spd.load().take_acquires(&mut ev);
        assert!(ev.is_empty(), "taken once");
        spd.load()
            .note_acquire(&key([10, 1, 0, 7], [10, 2, 0, 1], 17));
        spd.load().take_acquires(&mut ev);
        assert_eq!(ev.len(), 1, "a later packet raises a new acquire");
    }
}
