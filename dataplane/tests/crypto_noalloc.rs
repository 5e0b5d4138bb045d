//! seal/open never allocate (counted with `allocation-counter` on the test
//! thread: the Rust global allocator; the C code inside
//! aws-lc-rs allocates through libc malloc, which this counter does not see:
//! AWS-LC's AEAD seal/open, AES_cbc_encrypt and HMAC_CTX_copy_ex work on
//! caller/stack memory).

mod crypto_common;

use crypto_common::{all_suites, keys, open_jobs, opts, packet, padded, seal_jobs};
use dataplane::crypto::{build_with, Backend};

#[test]
fn seal_and_open_do_not_allocate() {
    // As a packet thread does when it starts: the per-thread state (the
    // library's manager, the key caches) exists before the first burst.
    dataplane::crypto::warm_thread();
    let mut checked = 0;
    for suite in all_suites() {
        for esn in [false, true] {
            let (ek, ak) = keys(suite, 5);
            for &b in Backend::compiled() {
                let Ok(c) = build_with(suite, &ek, &ak, &opts(b, esn)) else {
                    continue;
                };
                let pt = padded(&*c, &[0x11; 500]);
                let mut pkts: Vec<Vec<u8>> =
                    (0..32).map(|i| packet(&*c, 0x300, i + 1, &pt)).collect();
                let mut seal = seal_jobs(&mut pkts);
                let allocs = allocation_counter::measure(|| c.seal(&mut seal)).count_total;
                assert_eq!(allocs, 0, "{suite:?} {b} seal allocated");
                drop(seal);
                let mut open = open_jobs(&mut pkts);
                let allocs = allocation_counter::measure(|| c.open(&mut open)).count_total;
                assert_eq!(allocs, 0, "{suite:?} {b} open allocated");
                assert!(open.iter().all(|j| j.ok), "{suite:?} {b}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 46);
}
