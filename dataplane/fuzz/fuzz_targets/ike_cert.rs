//! CERT, CERTREQ and AUTH payload chains (`control::ike::fuzz::cert_payloads`):
//! the certificates they carry, CERTREQ hashes, RFC 7427 AUTH data against a
//! key made from the input, and RFC 7383 fragment numbering and reassembly
//! limits. Checked: no panic, no hang, bounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    control::ike::fuzz::cert_payloads(data);
});
