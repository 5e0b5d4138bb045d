//! The multi-buffer AES-GCM transform (`crypto::mb`) never allocates on the
//! packet path: seal and open of bursts (short four-packet runs, single
//! packets, long packets, malformed short ones), counted with `allocation-counter`.

mod skip_note;

use dataplane::crypto::mb::build_gcm;
use dataplane::crypto::{Key, OpenJob, SealJob};

#[test]
fn seal_and_open_do_not_allocate() {
    // As a packet thread does when it starts: its key cache exists before
    // the first burst (a miss then expands into it, without allocating).
    dataplane::crypto::warm_thread();
    for (klen, esn) in [(20usize, false), (36, true)] {
        let Some(c) = build_gcm(&Key::new(vec![0x5a; klen]), esn) else {
            // The portable backends' no-allocation check: crypto_noalloc.rs.
            skip_note::note(
                "gcm_mb_noalloc",
                "multi-buffer AES-GCM kernel (portable backends: crypto_noalloc)",
                "CPU lacks VAES/VPCLMULQDQ/AVX-512",
            );
            return;
        };
        // 8 short packets (two four-packet runs), then mixed and long ones.
        let lens = [
            64usize, 64, 64, 64, 60, 60, 60, 60, 0, 1420, 9000, 200, 3, 4096,
        ];
        let mut pkts: Vec<Vec<u8>> = lens.iter().map(|&l| vec![7u8; l + 32]).collect();
        pkts.push(vec![1u8; 10]); // malformed: shorter than header + ICV
        let seqs: Vec<u64> = (1..=pkts.len() as u64).collect();
        let mut allocs = 0;
        for round in 0..2 {
            // The job vectors are built outside the counted region.
            let mut seal: Vec<SealJob<'_>> = pkts
                .iter_mut()
                .zip(&seqs)
                .map(|(p, &seq)| SealJob { esp: p, seq })
                .collect();
            allocs += allocation_counter::measure(|| c.seal(&mut seal)).count_total;
            drop(seal);
            let mut open: Vec<OpenJob<'_>> = pkts
                .iter_mut()
                .zip(&seqs)
                .map(|(p, &seq)| OpenJob {
                    esp: p,
                    seq,
                    ok: false,
                })
                .collect();
            allocs += allocation_counter::measure(|| c.open(&mut open)).count_total;
            let oks: Vec<bool> = open.iter().map(|j| j.ok).collect();
            drop(open);
            assert_eq!(
                &oks[..lens.len()],
                &vec![true; lens.len()][..],
                "round {round}"
            );
            assert!(!oks[lens.len()], "malformed packet opened");
        }
        assert_eq!(allocs, 0, "allocations on the packet path");
    }
}
