//! The shared-memory channel (`espresso_core::shm::fuzz::ring`): records
//! with valid checksums around arbitrary payloads, real encoded commands and
//! events with bytes flipped, raw bytes and arbitrary head/tail positions in
//! the command or event ring of a real region, read by the real readers
//! (`DataplaneEnd::next_command`, `ControlEnd::pop_event`) and decoders.
//! Checked: no panic, no hang; damage is an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    espresso_core::shm::fuzz::ring(data);
});
