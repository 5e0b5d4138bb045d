//! The IKEv2 message parser (`control::ike::fuzz::parse`, built with
//! `cfg(fuzzing)`): header, payload
//! chain and every payload view (SA proposals and transforms, KE, IDs, AUTH,
//! notifies, deletes, traffic selectors), on the bytes as a whole message
//! and as the inside of an SK payload. Seeds: strongSwan 5.9.8 exchanges
//! (control/tests/fixtures/ike/). Checked: no panic, no hang, bounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    control::ike::fuzz::parse(data);
});
