//! Helpers shared by the esp, sad and replay benchmarks: criterion runs the
//! cases through `iter_custom`, we keep the per-sample timings and print
//! `name: ours X, reference Y, ratio Z` lines from the same run.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Measurement samples kept per case (criterion's last calls; earlier ones are warm-up).
pub const SAMPLES: usize = 10;

static RESULTS: Mutex<BTreeMap<String, Vec<(u64, Duration)>>> = Mutex::new(BTreeMap::new());

/// Records one criterion sample: `iters` iterations took `d`.
pub fn record(id: &str, iters: u64, d: Duration) {
    RESULTS
        .lock()
        .unwrap()
        .entry(id.to_string())
        .or_default()
        .push((iters, d));
}

/// Median nanoseconds per iteration over the last samples of `id`.
pub fn median_ns(id: &str) -> Option<f64> {
    let r = RESULTS.lock().unwrap();
    let v = r.get(id)?;
    let mut per: Vec<f64> = v[v.len().saturating_sub(SAMPLES)..]
        .iter()
        .map(|(i, d)| d.as_nanos() as f64 / *i as f64)
        .collect();
    per.sort_by(|a, b| a.partial_cmp(b).unwrap());
    per.get(per.len() / 2).copied()
}

/// Median over the last samples of the per-sample ratio `a / b` (time),
/// for cases recorded pairwise in the same samples.
pub fn median_ratio(a: &str, b: &str) -> Option<f64> {
    let r = RESULTS.lock().unwrap();
    let (va, vb) = (r.get(a)?, r.get(b)?);
    let n = va.len().min(vb.len());
    let k = n.saturating_sub(SAMPLES);
    let mut q: Vec<f64> = (k..n)
        .map(|i| va[i].1.as_nanos() as f64 / vb[i].1.as_nanos().max(1) as f64)
        .collect();
    q.sort_by(|x, y| x.partial_cmp(y).unwrap());
    q.get(q.len() / 2).copied()
}

/// Appends `text` to the file named by env var `var`, if set.
pub fn write_md(var: &str, text: &str) {
    if let Ok(path) = std::env::var(var) {
        std::fs::write(&path, text).unwrap_or_else(|e| eprintln!("cannot write {path}: {e}"));
        eprintln!("wrote {path}");
    }
}
