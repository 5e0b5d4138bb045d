//! Shared helpers of the ffi integration tests. Each test file is its own
//! process (EAL init is once per process) with a single #[test].
#![allow(dead_code)]

/// EAL arguments that need neither hugepages nor PCI devices.
pub fn eal_args(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "--log-level=warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// A recognisable payload for packet `i` of length `len`.
pub fn pattern(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}
