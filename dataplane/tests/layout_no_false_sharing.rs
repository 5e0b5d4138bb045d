//! Per-worker and per-SA state written on the packet path does not share a
//! cache line with another worker's or SA's (issue 11, acceptance 4): the
//! types are cache-line aligned, so separately allocated objects (each
//! worker's `Arc<WorkerCounters>`, each `Arc<Sa>`) start on distinct lines and
//! a line holds fields of one object only.
//!
//! The rest of the audit (what the packet path writes, per packet or per
//! burst) is in bench/results/scaling.md.

use std::sync::Arc;

use dataplane::crypto::Backend;
use dataplane::sa::Sa;
use dataplane::worker::WorkerCounters;

mod esp_common;

#[test]
fn worker_counters_and_sas_own_their_cache_lines() {
    assert!(std::mem::align_of::<WorkerCounters>() >= 64);
    assert!(std::mem::align_of::<Sa>() >= 64);
    // Allocated back to back, as the dataplane does, they do not share lines.
    let stats: Vec<Arc<WorkerCounters>> = (0..4)
        .map(|_| Arc::new(WorkerCounters::default()))
        .collect();
    for w in &stats {
        let p = Arc::as_ptr(w) as usize;
        assert_eq!(p % 64, 0, "worker counters start a cache line");
    }
    let (op, _) = esp_common::sa_pair(
        esp_common::suites()[0],
        dataplane::sa::Mode::Tunnel,
        "192.0.2.1",
        "192.0.2.2",
        false,
        false,
    );
    let sas: Vec<Arc<Sa>> = (0..4)
        .map(|i| {
            let mut p = op.clone();
            p.spi = 0x1000 + i;
            Arc::new(Sa::new(p, Backend::Auto).unwrap())
        })
        .collect();
    let mut lines = std::collections::HashSet::new();
    for sa in &sas {
        let start = Arc::as_ptr(sa) as usize;
        assert_eq!(start % 64, 0, "an SA starts a cache line");
        let end = start + std::mem::size_of::<Sa>();
        for line in (start / 64)..end.div_ceil(64) {
            assert!(lines.insert(line), "two SAs share cache line {line:#x}");
        }
    }
}
