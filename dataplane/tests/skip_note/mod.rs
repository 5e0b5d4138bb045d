//! Visible skips: a test that cannot run its main check on this machine
//! (e.g. a SIMD kernel on a CPU without the instructions) calls [`note`],
//! which prints to stderr (shown by `cargo test -- --nocapture`) and appends
//! a line to the file named by `ESPRESSO_TEST_SKIPS`, which
//! `scripts/test.sh` sets and prints after the cargo tests, so a skip never
//! passes silently.
#![allow(dead_code)]

use std::io::Write;

/// Records that `test` skipped `what` because of `why`.
pub fn note(test: &str, what: &str, why: &str) {
    let line = format!("SKIPPED {test}: {what} ({why})");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("ESPRESSO_TEST_SKIPS") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}
