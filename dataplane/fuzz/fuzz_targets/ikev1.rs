//! The IKEv1 message parser (`control::ikev1::fuzz::parse`): ISAKMP header,
//! payload chain and every payload view (SA proposals, transforms and
//! attributes, IDs as identities and as quick-mode selectors, notifies,
//! deletes, NAT-OA, certificates), on the bytes as a whole message and as a
//! payload chain. Seeds: strongSwan 5.9.8 IKEv1 exchanges
//! (control/tests/fixtures/ikev1/). Checked: no panic, no hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    control::ikev1::fuzz::parse(data);
});
