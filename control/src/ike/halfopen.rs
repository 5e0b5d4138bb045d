//! Half-open IKE SAs (a responder's exchanges that began but are not yet
//! authenticated), counted in total and per source address, with the hard
//! limits both engines (IKEv2 and IKEv1) apply before they create state for
//! a peer's first message. A half-open SA costs a DH computation and a few
//! kilobytes; these limits are what keeps a flood of first messages from
//! growing the daemon (issue 10, acceptance 2).

use std::collections::HashMap;
use std::net::IpAddr;

/// The hard limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Half-open SAs in total above which new first messages are dropped.
    pub global: usize,
    /// Half-open SAs from one source address above which its new first
    /// messages are dropped.
    pub per_source: usize,
}

impl Limits {
    /// The defaults of both engines: far above what a gateway's peers keep
    /// half-open at once (strongSwan's peers retransmit what is dropped),
    /// far below what fills memory (a half-open SA is a few kilobytes).
    pub const DEFAULT: Limits = Limits {
        global: 1024,
        per_source: 32,
    };
}

/// Why a first message got no state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The global limit is reached.
    Global,
    /// The source address has its limit.
    PerSource,
}

/// The counts.
#[derive(Clone, Debug, Default)]
pub struct HalfOpen {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

impl HalfOpen {
    /// Half-open SAs in total.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Half-open SAs from `ip`.
    pub fn of(&self, ip: IpAddr) -> usize {
        self.by_source.get(&ip).copied().unwrap_or(0)
    }

    /// Whether one more half-open SA from `ip` is within `limits`.
    pub fn admit(&self, ip: IpAddr, limits: Limits) -> Result<(), Refusal> {
        if self.total >= limits.global {
            Err(Refusal::Global)
        } else if self.of(ip) >= limits.per_source {
            Err(Refusal::PerSource)
        } else {
            Ok(())
        }
    }

    /// One more half-open SA from `ip`.
    pub fn add(&mut self, ip: IpAddr) {
        self.total += 1;
        *self.by_source.entry(ip).or_insert(0) += 1;
    }

    /// A half-open SA from `ip` completed or went away.
    pub fn remove(&mut self, ip: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.by_source.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_source.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_apply_in_total_and_per_source_and_entries_go_away() {
        let l = Limits {
            global: 3,
            per_source: 2,
        };
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mut h = HalfOpen::default();
        assert_eq!(h.admit(a, l), Ok(()));
        h.add(a);
        h.add(a);
        assert_eq!(h.admit(a, l), Err(Refusal::PerSource));
        assert_eq!(h.admit(b, l), Ok(()));
        h.add(b);
        assert_eq!(h.admit(b, l), Err(Refusal::Global));
        h.remove(a);
        h.remove(a);
        h.remove(b);
        assert_eq!(h.total(), 0);
        assert!(h.by_source.is_empty());
        h.remove(b);
        assert_eq!(h.total(), 0);
    }
}
