use super::*;
use crate::crypto::mb::aes_ni::{CbcLane, CBC_LANES};
use crate::crypto::mb::wipe;

// ---------------------------------------------------------------------------
// ESP: AES-CBC + HMAC
// ---------------------------------------------------------------------------

/// The IV generator's AES-128: AES-NI on the round keys in the cache
/// entry, or (a CPU without AES-NI) RustCrypto keyed per burst from the
/// raw IV key.
#[derive(Clone, Copy)]
pub(super) enum IvSrc {
    Ni(AesNi),
    Soft,
}

/// An AES-CBC + HMAC SA: raw keys and cache id ([`SaKeys`]); the expanded
/// AES schedules, HMAC states and IV key schedule are in the worker's cache
/// ([`CbcKeys`]), looked up once per chunk.
pub(super) struct CbcHmac<H: EspHash> {
    pub(super) keys: SaKeys<H>,
    pub(super) mac: Mac<H>,
    pub(super) ivs: IvSrc,
    /// ICV length (12..=32 bytes).
    pub(super) icv_len: u8,
    /// The library's code path (`status` names the backend from it).
    pub(super) arch: imb::Arch,
}

impl<H: EspHash> CbcHmac<H> {
    /// Ciphertext length of a well-formed packet: at least one block, whole
    /// blocks.
    #[inline(always)]
    pub(super) fn ct_len(&self, len: usize) -> Option<usize> {
        let ct = len.checked_sub(HDR + BLOCK + usize::from(self.icv_len))?;
        (ct >= BLOCK && ct % BLOCK == 0).then_some(ct)
    }

    /// The AES-NI token the cache fill expands the IV key with.
    #[inline(always)]
    pub(super) fn ni(&self) -> Option<AesNi> {
        match self.ivs {
            IvSrc::Ni(ni) => Some(ni),
            IvSrc::Soft => None,
        }
    }

    /// Replaces each `blocks[i]` (`AesIvGen::block_for(seq)`) by its IV.
    #[inline(always)]
    pub(super) fn ivs_in_place(&self, k: &CbcKeys, blocks: &mut [[u8; 16]]) {
        match self.ivs {
            IvSrc::Ni(ni) => ni.encrypt_blocks(&k.iv, blocks),
            IvSrc::Soft => wipe::burst::<{ wipe::SHA_NI_WIPE }, _>(|| {
                use aes::cipher::{BlockEncrypt, KeyInit};
                let a = aes::Aes128Enc::new(aes::cipher::generic_array::GenericArray::from_slice(
                    self.keys.iv_key(),
                ));
                for b in blocks.iter_mut() {
                    a.encrypt_block(aes::Block::from_mut_slice(b));
                }
            }),
        }
    }
}

pub(super) struct CbcHmacEsp<const ESN: bool, H: EspHash>(pub(super) CbcHmac<H>);

/// Writes SeqHi where the ICV goes (the HMAC input is SPI..ciphertext ||
/// SeqHi with ESN, RFC 4303 §2.2.1) and returns the HMAC input length.
#[inline(always)]
pub(super) fn authed_len<const ESN: bool>(esp: &mut [u8], end: usize, seq: u64) -> usize {
    if ESN {
        esp[end..end + 4].copy_from_slice(&((seq >> 32) as u32).to_be_bytes());
        end + 4
    } else {
        end
    }
}

impl<const ESN: bool, H: EspHash> CbcHmacEsp<ESN, H> {
    pub(super) fn seal_chunk(&self, jobs: &mut [SealJob<'_>]) {
        let c = &self.0;
        // An inbound SA has no encryption schedule: it never seals.
        if c.keys.keep == imb::AesKeyUse::Decrypt {
            jobs.iter_mut().for_each(|j| j.esp.fill(0));
            return;
        }
        c.keys.with(c.ni(), |k| match k {
            Some(k) => self.seal_keys(k, jobs),
            None => jobs.iter_mut().for_each(|j| j.esp.fill(0)),
        })
    }

    #[inline(always)]
    fn seal_keys(&self, keys: &CbcKeys, jobs: &mut [SealJob<'_>]) {
        let c = &self.0;
        // Ciphertext length per job, once (0: malformed, zeroed, skipped).
        let mut cts = [0usize; CHUNK];
        // 1. IVs of the burst in one call, CBC encryption of the burst.
        let mut ivs = [[0u8; 16]; CHUNK];
        let mut k = 0;
        for (job, ct) in jobs.iter_mut().zip(cts.iter_mut()) {
            match c.ct_len(job.esp.len()) {
                Some(n) => {
                    *ct = n;
                    ivs[k] = AesIvGen::block_for(job.seq);
                    k += 1;
                }
                None => job.esp.fill(0),
            }
        }
        c.ivs_in_place(keys, &mut ivs[..k]);
        // A group of at most `CBC_LANES` packets (one SA's share of a
        // burst spread over many SAs): AES-NI, the chains interleaved; the
        // library's multi-buffer lanes would encrypt them on all sixteen.
        if let (IvSrc::Ni(ni), true) = (c.ivs, k <= CBC_LANES) {
            if !self.cbc_small(ni, keys, jobs, &cts, &ivs) {
                jobs.iter_mut().for_each(|j| j.esp.fill(0));
                return;
            }
            self.mac_and_icv(keys, jobs, &cts);
            return;
        }
        let mut ops: ArrayVec<imb::CbcOp<'_>, CHUNK> = ArrayVec::new();
        for (job, &ct) in jobs.iter_mut().zip(&cts) {
            if ct == 0 {
                continue;
            }
            let (head, rest) = job.esp.split_at_mut(HDR + BLOCK);
            let iv: [u8; BLOCK] = ivs[ops.len()];
            head[HDR..].copy_from_slice(&iv);
            ops.push(imb::CbcOp {
                data: &mut rest[..ct],
                iv,
            });
        }
        if imb::aes_cbc_encrypt_with(&keys.enc, c.keys.enc_len(), &mut ops).is_err() {
            drop(ops);
            jobs.iter_mut().for_each(|j| j.esp.fill(0));
            return;
        }
        drop(ops);
        self.mac_and_icv(keys, jobs, &cts);
    }

    /// IVs written and the group (at most `CBC_LANES` well-formed jobs)
    /// CBC-encrypted in place with AES-NI; false if refused (nothing
    /// encrypted).
    #[inline(always)]
    fn cbc_small(
        &self,
        ni: AesNi,
        keys: &CbcKeys,
        jobs: &mut [SealJob<'_>],
        cts: &[usize; CHUNK],
        ivs: &[[u8; 16]; CHUNK],
    ) -> bool {
        let mut lanes: ArrayVec<CbcLane<'_>, CBC_LANES> = ArrayVec::new();
        for (job, &ct) in jobs.iter_mut().zip(cts) {
            if ct == 0 {
                continue;
            }
            let (head, rest) = job.esp.split_at_mut(HDR + BLOCK);
            let iv: [u8; BLOCK] = ivs[lanes.len()];
            head[HDR..].copy_from_slice(&iv);
            if lanes
                .try_push(CbcLane {
                    data: &mut rest[..ct],
                    iv,
                })
                .is_err()
            {
                return false;
            }
        }
        ni.cbc_encrypt(&keys.enc.0, self.0.keys.enc_len() / 4 + 6, &mut lanes)
    }

    /// Steps 2 and 3 of a seal: the truncated HMACs of the encrypted jobs
    /// (`cts[i]` != 0) written as their ICVs (every job zeroed if the
    /// library refused).
    #[inline(always)]
    fn mac_and_icv(&self, keys: &CbcKeys, jobs: &mut [SealJob<'_>], cts: &[usize; CHUNK]) {
        let c = &self.0;
        let icv = usize::from(c.icv_len);
        // 2. Truncated HMAC (the ICVs) of the burst.
        let mut tags = [[0u8; 32]; CHUNK];
        {
            let mut msgs: ArrayVec<&[u8], CHUNK> = ArrayVec::new();
            for (job, &ct) in jobs.iter_mut().zip(cts) {
                if ct == 0 {
                    continue;
                }
                let esp = &mut *job.esp;
                let n = authed_len::<ESN>(esp, HDR + BLOCK + ct, job.seq);
                msgs.push(&esp[..n]);
            }
            if c.mac.macs(keys, &msgs, &mut tags).is_err() {
                drop(msgs);
                jobs.iter_mut().for_each(|j| j.esp.fill(0));
                return;
            }
        }
        // 3. ICVs.
        let mut k = 0;
        for (job, &ct) in jobs.iter_mut().zip(cts) {
            if ct == 0 {
                continue;
            }
            let end = HDR + BLOCK + ct;
            job.esp[end..end + icv].copy_from_slice(&tags[k][..icv]);
            k += 1;
        }
    }

    pub(super) fn open_chunk(&self, jobs: &mut [OpenJob<'_>]) {
        let c = &self.0;
        c.keys.with(c.ni(), |k| match k {
            Some(k) => self.open_keys(k, jobs),
            None => jobs.iter_mut().for_each(|j| j.ok = false),
        })
    }

    /// [`CbcHmacEsp::open_chunk`] on the SA's keys from the cache (an
    /// outbound SA's decryption schedule is zero: it never opens).
    #[inline(always)]
    pub(super) fn open_keys(&self, keys: &CbcKeys, jobs: &mut [OpenJob<'_>]) {
        let c = &self.0;
        let icv = usize::from(c.icv_len);
        let mut cts = [0usize; CHUNK];
        // With ESN: the ICV bytes SeqHi overwrites while hashing.
        let mut saved = [[0u8; 4]; CHUNK];
        // 1. HMAC the burst (received ICVs stay in the packets).
        let mut tags = [[0u8; 32]; CHUNK];
        {
            let mut msgs: ArrayVec<&[u8], CHUNK> = ArrayVec::new();
            for (i, job) in jobs.iter_mut().enumerate() {
                job.ok = false;
                let esp = &mut *job.esp;
                let Some(ct) = c.ct_len(esp.len()) else {
                    continue;
                };
                cts[i] = ct;
                let end = HDR + BLOCK + ct;
                if ESN {
                    saved[i].copy_from_slice(&esp[end..end + 4]);
                }
                let n = authed_len::<ESN>(esp, end, job.seq);
                msgs.push(&esp[..n]);
            }
            if c.mac.macs(keys, &msgs, &mut tags).is_err() {
                drop(msgs);
                if ESN {
                    for (i, job) in jobs.iter_mut().enumerate() {
                        let end = HDR + BLOCK + cts[i];
                        if cts[i] != 0 {
                            job.esp[end..end + 4].copy_from_slice(&saved[i]);
                        }
                    }
                }
                return;
            }
        }
        // 2. Compare in place (putting back the bytes SeqHi overwrote);
        //    decrypt what verified.
        let mut good = [false; CHUNK];
        let mut ops: ArrayVec<imb::CbcOp<'_>, CHUNK> = ArrayVec::new();
        let mut k = 0;
        for (i, job) in jobs.iter_mut().enumerate() {
            let ct = cts[i];
            if ct == 0 {
                continue;
            }
            let esp = &mut *job.esp;
            let end = HDR + BLOCK + ct;
            if ESN {
                esp[end..end + 4].copy_from_slice(&saved[i]);
            }
            let g = ct::eq(&tags[k][..icv], &esp[end..end + icv]);
            k += 1;
            good[i] = g;
            if !g {
                continue;
            }
            let (head, rest) = esp.split_at_mut(HDR + BLOCK);
            let mut iv = [0u8; BLOCK];
            iv.copy_from_slice(&head[HDR..]);
            ops.push(imb::CbcOp {
                data: &mut rest[..ct],
                iv,
            });
        }
        let decrypted = c.keys.keep != imb::AesKeyUse::Encrypt
            && imb::aes_cbc_decrypt_with(&keys.dec, c.keys.enc_len(), &mut ops).is_ok();
        drop(ops);
        for (job, &g) in jobs.iter_mut().zip(&good) {
            job.ok = g && decrypted;
        }
    }
}

esp_cipher_in_chunks!(
    impl[const ESN: bool, H: EspHash] CbcHmacEsp<ESN, H>,
    iv_len: BLOCK,
    pad_align: BLOCK,
    icv_len: |c| usize::from(c.0.icv_len),
    backend: |c| name(c.0.arch),
);
