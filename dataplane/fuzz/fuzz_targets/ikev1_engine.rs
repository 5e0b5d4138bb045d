//! The IKEv1 engine (`control::ikev1::fuzz::engine`): arbitrary datagrams to
//! a responder with main- and aggressive-mode connections while time moves,
//! and arbitrary payloads inside correctly encrypted and hashed quick-mode
//! and informational messages of an established ISAKMP SA. Checked: no
//! panic, no hang (every bad input is a counted drop or a refusal).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    control::ikev1::fuzz::engine(data);
});
