//! The CLI protocol (`control::cli::fuzz::cli`): the daemon's request
//! line parser, the CLI's parser and renderers of answers, and the command
//! lines of `espresso` and `ipsec`. Checked: no panic; requests round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    control::cli::fuzz::cli(data);
});
