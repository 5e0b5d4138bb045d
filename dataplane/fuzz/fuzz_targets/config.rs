//! The configuration loader (`espresso_core::config::fuzz::load`): a main
//! file, a secrets file and an included file with input-chosen modes,
//! loaded by `Config::load` and `DaemonSettings::load_main`.
//! Checked: no panic, no hang; a bad file is a list of errors.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    espresso_core::config::fuzz::load(data);
});
