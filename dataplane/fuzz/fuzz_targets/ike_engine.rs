//! The whole IKEv2 engine (`control::ike::fuzz::engine`): two engines (an
//! initiator and a responder, deterministic randomness, PSK) talk in memory
//! while the input delivers, loses, duplicates and edits their datagrams,
//! moves time, starts rekeys, DPD and deletes, injects dataplane events and
//! raw datagrams, and builds requests and answers of its own. Encrypted
//! messages are opened and sealed again with the keys the SA negotiated,
//! so edits reach the payload parsers and state transitions behind
//! decryption. Checked: no panic, no hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    control::ike::fuzz::engine(data);
});
