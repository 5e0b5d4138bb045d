use super::*;

// ---------------------------------------------------------------------------
// ESP: AES-CBC + HMAC-SHA-256, open with the hash and the decryption
// stitched
// ---------------------------------------------------------------------------

// One queue takes every verified packet of a chunk.
const _: () = assert!(CHUNK <= QUEUE_LEN);

/// AES-CBC + HMAC on a CPU with SHA-NI and VAES (chosen at install time,
/// for a hash whose [`SmallMac::STITCH_CBC`] is set): `seal` is
/// [`CbcHmacEsp`]'s (the library's CBC, then the HMAC); `open` hashes the
/// packets four at a time on the SHA-NI kernel and decrypts the packets of
/// the previous four that verified *inside* that kernel (`CbcQueue` steps
/// between its round groups: the AES units work while `sha256rnds2` runs),
/// instead of hashing the burst and then decrypting it. Only packets whose
/// ICV verified are queued: a forged packet is left as it came (the SeqHi
/// bytes written for ESN are put back before the compare).
pub(super) struct CbcHmacStitched<const ESN: bool, H: SmallMac> {
    pub(super) base: CbcHmacEsp<ESN, H>,
    pub(super) dec: CbcDecKeys,
}

impl<const ESN: bool, H: SmallMac> CbcHmacStitched<ESN, H> {
    fn open_chunk(&self, jobs: &mut [OpenJob<'_>]) {
        let c = &self.base.0;
        let Some(k) = &c.mac.small else {
            // Not built without the SHA-NI states (see `mac_esp`).
            return self.base.open_chunk(jobs);
        };
        let icv = c.icv_len;
        let mut good = [false; CHUNK];
        let mut q = CbcQueue::new(&self.dec);
        for (gi, group) in jobs.chunks_mut(4).enumerate() {
            // 1. Lengths; with ESN, SeqHi where the ICV goes (saved).
            let mut cts = [0usize; 4];
            let mut lens = [0usize; 4];
            let mut saved = [[0u8; 4]; 4];
            for (i, job) in group.iter_mut().enumerate() {
                job.ok = false;
                let Some(ct) = c.ct_len(job.esp.len()) else {
                    continue;
                };
                cts[i] = ct;
                let end = HDR + BLOCK + ct;
                if ESN {
                    saved[i].copy_from_slice(&job.esp[end..end + 4]);
                }
                lens[i] = authed_len::<ESN>(job.esp, end, job.seq);
            }
            // 2. HMAC of this group, the previous groups' verified packets
            //    decrypted in the same kernel calls.
            let mut tags = [[0u8; 32]; 4];
            {
                let mut small: ArrayVec<SmallJob<'_>, 4> = ArrayVec::new();
                for (i, job) in group.iter().enumerate() {
                    if cts[i] != 0 {
                        small.push(SmallJob {
                            msg: &job.esp[..lens[i]],
                            out: [0; 32],
                        });
                    }
                }
                k.mac_group_cbc(&mut small, &mut q);
                for (t, j) in tags.iter_mut().zip(&small) {
                    *t = j.out;
                }
            }
            // 3. Compare (the SeqHi bytes put back first); queue what
            //    verified.
            let mut t = 0;
            for (i, job) in group.iter_mut().enumerate() {
                let ct = cts[i];
                if ct == 0 {
                    continue;
                }
                let end = HDR + BLOCK + ct;
                if ESN {
                    job.esp[end..end + 4].copy_from_slice(&saved[i]);
                }
                let g = ct::eq(&tags[t][..icv], &job.esp[end..end + icv]);
                t += 1;
                if !g {
                    continue;
                }
                let (head, rest) = job.esp.split_at_mut(HDR + BLOCK);
                let mut iv = [0u8; BLOCK];
                iv.copy_from_slice(&head[HDR..]);
                // Never refused: whole blocks (`ct_len`), at most CHUNK
                // packets.
                good[gi * 4 + i] = q.push(&mut rest[..ct], iv);
            }
        }
        // 4. The last group's packets (and whatever the kernel calls did
        //    not reach).
        q.finish();
        drop(q);
        for (job, &g) in jobs.iter_mut().zip(&good) {
            job.ok = g;
        }
    }
}

impl<const ESN: bool, H: SmallMac> EspCipher for CbcHmacStitched<ESN, H> {
    fn iv_len(&self) -> usize {
        BLOCK
    }
    fn pad_align(&self) -> usize {
        BLOCK
    }
    fn icv_len(&self) -> usize {
        self.base.0.icv_len
    }
    fn backend(&self) -> &'static str {
        self.base.0.backend
    }
    fn seal(&self, jobs: &mut [SealJob<'_>]) {
        self.base.seal(jobs);
    }
    fn open(&self, jobs: &mut [OpenJob<'_>]) {
        for chunk in jobs.chunks_mut(CHUNK) {
            self.open_chunk(chunk);
        }
    }
}
