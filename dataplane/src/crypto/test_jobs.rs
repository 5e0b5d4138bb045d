//! Test helpers: seal and open a burst of ESP packets through any
//! [`EspCipher`] with consecutive sequence numbers (the key-cache tests of
//! `mb` and `ipsecmb` use them).

use super::{EspCipher, OpenJob, SealJob};

/// Seals `pkts` in one burst, packet `i` with sequence number `seq0 + i`
/// (its low 32 bits also written into the header).
pub(crate) fn seal(c: &dyn EspCipher, pkts: &mut [Vec<u8>], seq0: u64) {
    let mut jobs: Vec<SealJob<'_>> = pkts
        .iter_mut()
        .enumerate()
        .map(|(i, p)| {
            p[4..8].copy_from_slice(&((seq0 + i as u64) as u32).to_be_bytes());
            SealJob {
                esp: &mut p[..],
                seq: seq0 + i as u64,
            }
        })
        .collect();
    c.seal(&mut jobs);
}

/// Opens `pkts` in one burst (sequence numbers as [`seal`]); each packet's
/// verdict.
pub(crate) fn open(c: &dyn EspCipher, pkts: &mut [Vec<u8>], seq0: u64) -> Vec<bool> {
    let mut jobs: Vec<OpenJob<'_>> = pkts
        .iter_mut()
        .enumerate()
        .map(|(i, p)| OpenJob {
            esp: &mut p[..],
            seq: seq0 + i as u64,
            ok: false,
        })
        .collect();
    c.open(&mut jobs);
    jobs.iter().map(|j| j.ok).collect()
}
