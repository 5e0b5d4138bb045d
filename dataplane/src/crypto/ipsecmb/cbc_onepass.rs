use super::*;

// ---------------------------------------------------------------------------
// ESP: AES-CBC + HMAC-SHA-256, open in one pass over bursts of long packets
// ---------------------------------------------------------------------------

/// AES-CBC + HMAC on a CPU with SHA-NI and VAES (chosen at install time,
/// for a hash whose [`SmallMac::ONE_PASS_CBC`] is set). `seal` is
/// [`CbcHmacEsp`]'s. `open` of a burst of long packets (the first one over
/// [`SmallMac::MAX_BLOCKS`] compressions, where [`CbcHmacEsp`] would hash
/// with the library) goes four packets at a time: their HMAC on the SHA-NI
/// kernel, then the VAES decryption ([`CbcDec`], with the library's
/// decryption schedule: one per SA) of those that
/// verified, while they are still in L1, instead of one pass over the
/// burst to hash it and a second to decrypt it (with the library's CBC).
/// Shorter packets keep [`CbcHmacEsp`]'s open.
///
/// Measured on Zen 4 through `esp_mops` (decap, 1420 bytes, same-run A/B;
/// `bench/results/esp_vs_dpdk.md`): +5-8 % for SHA-256. Tried for the
/// other hashes and not kept: SHA-1 in groups of sixteen on the library's
/// 16-lane SHA-1 then this decryption −3 %, SHA-384 in groups of eight on
/// the 8-lane path ±0. Only verified packets are decrypted: a forged one
/// is left as it came (the SeqHi bytes written for ESN are put back before
/// the compare).
pub(super) struct CbcHmacOnePass<const ESN: bool, H: EspHash> {
    pub(super) base: CbcHmacEsp<ESN, H>,
    pub(super) dec: CbcDec,
}

impl<const ESN: bool, H: EspHash> CbcHmacOnePass<ESN, H> {
    fn open_chunk(&self, jobs: &mut [OpenJob<'_>]) {
        let c = &self.base.0;
        c.keys.with(c.ni(), |k| match k {
            Some(k) => self.open_keys(k, jobs),
            None => jobs.iter_mut().for_each(|j| j.ok = false),
        })
    }

    #[inline(always)]
    fn open_keys(&self, keys: &CbcKeys, jobs: &mut [OpenJob<'_>]) {
        let c = &self.base.0;
        let long = jobs.first().is_some_and(|j| {
            ShaNiHmac::<H>::blocks(j.esp.len().saturating_sub(usize::from(c.icv_len)))
                > H::MAX_BLOCKS
        });
        // The library's decryption schedule (in the cache entry), read by
        // the VAES kernel: a `CbcHmacOnePass` exists only for an SA that
        // decrypts.
        let rk = &keys.dec.0;
        let (Some(k), true) = (&c.mac.small, long) else {
            return self.base.open_keys(keys, jobs);
        };
        let icv = usize::from(c.icv_len);
        for group in jobs.chunks_mut(4) {
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
            // 2. HMAC of the four.
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
                k.mac_burst(&keys.ipad, &keys.opad, &mut small);
                for (t, j) in tags.iter_mut().zip(&small) {
                    *t = j.out;
                }
            }
            // 3. Compare (the SeqHi bytes put back first); decrypt what
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
                // Never refused: whole blocks (`ct_len`).
                job.ok = self.dec.decrypt(rk, &iv, &mut rest[..ct]);
            }
        }
    }
}

// Not `esp_cipher_in_chunks!`: `seal` is [`CbcHmacEsp`]'s whole, so that
// `CbcHmacEsp::seal_chunk` keeps its one caller and stays inlined there (a
// second, chunk-level caller here made the compiler keep it out of line).
impl<const ESN: bool, H: EspHash> EspCipher for CbcHmacOnePass<ESN, H> {
    fn iv_len(&self) -> usize {
        BLOCK
    }
    fn pad_align(&self) -> usize {
        BLOCK
    }
    fn icv_len(&self) -> usize {
        usize::from(self.base.0.icv_len)
    }
    fn backend(&self) -> &'static str {
        name(self.base.0.arch)
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
