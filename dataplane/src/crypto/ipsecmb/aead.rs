use super::*;

// ---------------------------------------------------------------------------
// ESP: AES-GCM (RFC 4106), ChaCha20-Poly1305 (RFC 7634)
// ---------------------------------------------------------------------------

/// A library AEAD key: one burst call of the library for it.
pub(super) trait ImbAead: Send + Sync + 'static {
    fn run(&self, dir: imb::Direction, ops: &mut [imb::AeadOp<'_>]) -> Result<(), imb::ImbError>;
}

impl ImbAead for imb::ChachaKey {
    #[inline(always)]
    fn run(&self, dir: imb::Direction, ops: &mut [imb::AeadOp<'_>]) -> Result<(), imb::ImbError> {
        imb::chacha20_poly1305(self, dir, ops)
    }
}

impl ImbAead for imb::GcmKey {
    #[inline(always)]
    fn run(&self, dir: imb::Direction, ops: &mut [imb::AeadOp<'_>]) -> Result<(), imb::ImbError> {
        imb::aes_gcm(self, dir, ops)
    }
}

pub(super) struct Aead<K> {
    pub(super) key: K,
    pub(super) salt: [u8; 4],
    pub(super) backend: &'static str,
}

pub(super) struct AeadEsp<K, const ESN: bool>(pub(super) Aead<K>);

pub(super) fn aead_esp<K: ImbAead>(
    key: K,
    salt: [u8; 4],
    esn: bool,
    backend: &'static str,
) -> Box<dyn EspCipher> {
    let a = Aead { key, salt, backend };
    if esn {
        Box::new(AeadEsp::<K, true>(a))
    } else {
        Box::new(AeadEsp::<K, false>(a))
    }
}

/// IV length (the 64-bit sequence number).
pub(super) const AEAD_IV: usize = 8;

impl<K: ImbAead, const ESN: bool> AeadEsp<K, ESN> {
    const MIN: usize = HDR + AEAD_IV + TAG_LEN;

    #[inline(always)]
    pub(super) fn nonce(&self, iv: &[u8]) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.0.salt);
        n[4..].copy_from_slice(iv);
        n
    }

    /// AADs for ESN (SPI || SeqHi || SeqLo), computed before the ops borrow
    /// the packets.
    #[inline(always)]
    pub(super) fn esn_aads(jobs: impl Iterator<Item = (u64, [u8; 8])>) -> [[u8; 12]; CHUNK] {
        let mut aads = [[0u8; 12]; CHUNK];
        if ESN {
            for (a, (seq, hdr)) in aads.iter_mut().zip(jobs) {
                a[..4].copy_from_slice(&hdr[..4]);
                a[4..8].copy_from_slice(&((seq >> 32) as u32).to_be_bytes());
                a[8..].copy_from_slice(&hdr[4..]);
            }
        }
        aads
    }

    pub(super) fn seal_chunk(&self, jobs: &mut [SealJob<'_>]) {
        for job in jobs.iter_mut() {
            if job.esp.len() >= Self::MIN {
                job.esp[HDR..HDR + AEAD_IV].copy_from_slice(&job.seq.to_be_bytes());
            }
        }
        let aads = Self::esn_aads(jobs.iter().map(|j| (j.seq, hdr8(j.esp))));
        let mut tags = [[0u8; TAG_LEN]; CHUNK];
        {
            let mut ops: ArrayVec<imb::AeadOp<'_>, CHUNK> = ArrayVec::new();
            for (i, job) in jobs.iter_mut().enumerate() {
                let esp = &mut *job.esp;
                if esp.len() < Self::MIN {
                    esp.fill(0);
                    continue;
                }
                let len = esp.len();
                let (head, rest) = esp.split_at_mut(HDR + AEAD_IV);
                let nonce = self.nonce(&head[HDR..]);
                let aad: &[u8] = if ESN { &aads[i] } else { &head[..HDR] };
                ops.push(imb::AeadOp {
                    nonce,
                    aad,
                    data: &mut rest[..len - HDR - AEAD_IV - TAG_LEN],
                    tag: [0; TAG_LEN],
                });
            }
            if self.0.key.run(imb::Direction::Seal, &mut ops).is_err() {
                drop(ops);
                jobs.iter_mut().for_each(|j| j.esp.fill(0));
                return;
            }
            for (t, o) in tags.iter_mut().zip(&ops) {
                *t = o.tag;
            }
        }
        let mut k = 0;
        for job in jobs.iter_mut() {
            let esp = &mut *job.esp;
            if esp.len() < Self::MIN {
                continue;
            }
            let len = esp.len();
            esp[len - TAG_LEN..].copy_from_slice(&tags[k]);
            k += 1;
        }
    }

    pub(super) fn open_chunk(&self, jobs: &mut [OpenJob<'_>]) {
        let aads = Self::esn_aads(jobs.iter().map(|j| (j.seq, hdr8(j.esp))));
        let mut good = [false; CHUNK];
        let mut ops: ArrayVec<imb::AeadOp<'_>, CHUNK> = ArrayVec::new();
        let mut rx: ArrayVec<([u8; TAG_LEN], usize), CHUNK> = ArrayVec::new();
        for (i, job) in jobs.iter_mut().enumerate() {
            let esp = &mut *job.esp;
            if esp.len() < Self::MIN {
                continue;
            }
            let len = esp.len();
            let (head, rest) = esp.split_at_mut(HDR + AEAD_IV);
            let nonce = self.nonce(&head[HDR..]);
            let aad: &[u8] = if ESN { &aads[i] } else { &head[..HDR] };
            let (data, tag) = rest.split_at_mut(len - HDR - AEAD_IV - TAG_LEN);
            let mut t = [0u8; TAG_LEN];
            t.copy_from_slice(tag);
            rx.push((t, i));
            ops.push(imb::AeadOp {
                nonce,
                aad,
                data,
                tag: [0; TAG_LEN],
            });
        }
        if self.0.key.run(imb::Direction::Open, &mut ops).is_ok() {
            for (o, (t, i)) in ops.iter().zip(&rx) {
                good[*i] = ct::eq(&o.tag, t);
            }
        }
        drop(ops);
        for (job, g) in jobs.iter_mut().zip(good) {
            job.ok = g;
        }
    }
}

/// The first 8 bytes (SPI, Seq) of a packet, zeros if shorter.
#[inline(always)]
pub(super) fn hdr8(esp: &[u8]) -> [u8; 8] {
    let mut h = [0u8; 8];
    if let Some(s) = esp.get(..8) {
        h.copy_from_slice(s);
    }
    h
}

impl<K: ImbAead, const ESN: bool> EspCipher for AeadEsp<K, ESN> {
    fn iv_len(&self) -> usize {
        AEAD_IV
    }
    fn pad_align(&self) -> usize {
        4
    }
    fn icv_len(&self) -> usize {
        TAG_LEN
    }
    fn backend(&self) -> &'static str {
        self.0.backend
    }
    fn seal(&self, jobs: &mut [SealJob<'_>]) {
        for chunk in jobs.chunks_mut(CHUNK) {
            self.seal_chunk(chunk);
        }
    }
    fn open(&self, jobs: &mut [OpenJob<'_>]) {
        for chunk in jobs.chunks_mut(CHUNK) {
            self.open_chunk(chunk);
        }
    }
}
