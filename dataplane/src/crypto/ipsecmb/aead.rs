use super::*;

// ---------------------------------------------------------------------------
// ESP: AES-GCM (RFC 4106), ChaCha20-Poly1305 (RFC 7634)
// ---------------------------------------------------------------------------

/// A library AEAD key: one burst call of the library for it.
pub(super) trait ImbAead: Send + Sync + 'static {
    fn run(&self, dir: imb::Direction, ops: &mut [imb::AeadOp<'_>]) -> Result<(), imb::ImbError>;

    /// The 16-lane ChaCha20-Poly1305 kernel for this key, if the suite has
    /// one and the CPU runs it, and the longest message it takes (chosen
    /// when the key is built): messages up to that length go there instead
    /// of to the library (a length class, not an algorithm branch: `None`
    /// is a constant for AES-GCM).
    #[inline(always)]
    fn small(&self) -> Option<(&ChachaPolyX16, usize)> {
        None
    }
}

/// The library alone (raw AEAD for known-answer tests and benchmarks).
impl ImbAead for imb::ChachaKey {
    #[inline(always)]
    fn run(&self, dir: imb::Direction, ops: &mut [imb::AeadOp<'_>]) -> Result<(), imb::ImbError> {
        imb::chacha20_poly1305(self, dir, ops)
    }
}

/// Longest ESP payload (encrypted bytes) sealed or opened by the 16-lane
/// ChaCha20 kernel with scalar Poly1305 (at most two keystream blocks);
/// longer ones by intel-ipsec-mb, whose single-buffer code (AVX-512
/// ChaCha20, vector Poly1305) is faster from ~130 bytes on. Same-run
/// comparison through the ESP path, everything on the kernel vs everything
/// on the library (bench/results/esp_vs_dpdk.md, chacha10): inner 40 B
/// +30-42 %, 64 B +11-20 %, 96 B +5-13 %, 112 B (116 B payload) -1..+8 %,
/// 128 B -2..-10 %, 512 B -33..-44 %.
pub(super) const SMALL_MAX: usize = 112;

/// Longest ESP payload sealed or opened by the 16-lane kernel when the CPU
/// also has AVX-512 IFMA (Poly1305 eight packets per register,
/// `mb::poly1305_x8`; whole runs of sixteen blocks of a packet in one
/// kernel call): every ESP packet (the kernel's limit, 64 KiB). Same-run
/// comparison through the ESP path against the library (`esp_mops`,
/// bench/results/esp_vs_dpdk.md, chacha11): 512 B +19-21 %, 1420 B
/// +3-5 % (768 and 1024 B, before the sixteen-block runs: -5..+1 %).
pub(super) const IFMA_MAX: usize = super::super::mb::chacha_poly::MAX_LEN;

/// ChaCha20-Poly1305: the library's key and, on AVX-512 CPUs, our 16-lane
/// kernel's: for short packets ([`SMALL_MAX`]) with the scalar Poly1305,
/// for all ([`IFMA_MAX`]) where the CPU has IFMA.
pub(super) struct ChachaKeys {
    imb: imb::ChachaKey,
    mb: Option<ChachaPolyX16>,
    mb_max: usize,
}

impl ChachaKeys {
    pub(super) fn new(key: &[u8]) -> Result<Self, CryptoError> {
        let mb = ChachaPolyX16::new(key);
        let mb_max = match &mb {
            Some(k) if k.has_ifma() => IFMA_MAX,
            _ => SMALL_MAX,
        };
        Ok(ChachaKeys {
            imb: imb::ChachaKey::new(key).map_err(lib_err)?,
            mb,
            mb_max,
        })
    }

    /// What runs, for `status`: the library's name alone, or ours for short
    /// packets and the library's for long ones, or ours alone (IFMA).
    pub(super) fn backend(&self, lib: &'static str) -> &'static str {
        match &self.mb {
            None => lib,
            Some(_) if self.mb_max >= IFMA_MAX => "espresso-avx512-ifma",
            Some(_) => match lib {
                "ipsec-mb-avx512" => "espresso-avx512+ipsec-mb-avx512",
                _ => "espresso-avx512+ipsec-mb",
            },
        }
    }
}

impl ImbAead for ChachaKeys {
    #[inline(always)]
    fn run(&self, dir: imb::Direction, ops: &mut [imb::AeadOp<'_>]) -> Result<(), imb::ImbError> {
        imb::chacha20_poly1305(&self.imb, dir, ops)
    }

    #[inline(always)]
    fn small(&self) -> Option<(&ChachaPolyX16, usize)> {
        self.mb.as_ref().map(|k| (k, self.mb_max))
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
        let small = self.0.key.small();
        let mut tags = [[0u8; TAG_LEN]; CHUNK];
        {
            let mut ops: ArrayVec<imb::AeadOp<'_>, CHUNK> = ArrayVec::new();
            let mut lib_at: ArrayVec<u8, CHUNK> = ArrayVec::new();
            let mut sops: ArrayVec<ChachaOp<'_>, CHUNK> = ArrayVec::new();
            let mut small_at: ArrayVec<u8, CHUNK> = ArrayVec::new();
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
                let data = &mut rest[..len - HDR - AEAD_IV - TAG_LEN];
                if small.is_some_and(|(_, max)| data.len() <= max) {
                    sops.push(ChachaOp {
                        nonce,
                        aad,
                        data,
                        tag: [0; TAG_LEN],
                        ok: false,
                    });
                    small_at.push(i as u8);
                } else {
                    ops.push(imb::AeadOp {
                        nonce,
                        aad,
                        data,
                        tag: [0; TAG_LEN],
                    });
                    lib_at.push(i as u8);
                }
            }
            if let Some((mb, _)) = small {
                mb.seal(&mut sops);
                for (o, &i) in sops.iter().zip(&small_at) {
                    tags[i as usize] = o.tag;
                }
            }
            if self.0.key.run(imb::Direction::Seal, &mut ops).is_err() {
                drop(ops);
                drop(sops);
                jobs.iter_mut().for_each(|j| j.esp.fill(0));
                return;
            }
            for (o, &i) in ops.iter().zip(&lib_at) {
                tags[i as usize] = o.tag;
            }
        }
        for (job, tag) in jobs.iter_mut().zip(&tags) {
            let esp = &mut *job.esp;
            if esp.len() < Self::MIN {
                continue;
            }
            let len = esp.len();
            esp[len - TAG_LEN..].copy_from_slice(tag);
        }
    }

    pub(super) fn open_chunk(&self, jobs: &mut [OpenJob<'_>]) {
        let aads = Self::esn_aads(jobs.iter().map(|j| (j.seq, hdr8(j.esp))));
        let small = self.0.key.small();
        let mut good = [false; CHUNK];
        let mut ops: ArrayVec<imb::AeadOp<'_>, CHUNK> = ArrayVec::new();
        let mut rx: ArrayVec<([u8; TAG_LEN], u8), CHUNK> = ArrayVec::new();
        let mut sops: ArrayVec<ChachaOp<'_>, CHUNK> = ArrayVec::new();
        let mut small_at: ArrayVec<u8, CHUNK> = ArrayVec::new();
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
            if small.is_some_and(|(_, max)| data.len() <= max) {
                sops.push(ChachaOp {
                    nonce,
                    aad,
                    data,
                    tag: t,
                    ok: false,
                });
                small_at.push(i as u8);
            } else {
                rx.push((t, i as u8));
                ops.push(imb::AeadOp {
                    nonce,
                    aad,
                    data,
                    tag: [0; TAG_LEN],
                });
            }
        }
        if let Some((mb, _)) = small {
            mb.open(&mut sops);
            for (o, &i) in sops.iter().zip(&small_at) {
                good[i as usize] = o.ok;
            }
        }
        if self.0.key.run(imb::Direction::Open, &mut ops).is_ok() {
            for (o, (t, i)) in ops.iter().zip(&rx) {
                good[*i as usize] = ct::eq(&o.tag, t);
            }
        }
        drop(ops);
        drop(sops);
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

esp_cipher_in_chunks!(
    impl[K: ImbAead, const ESN: bool] AeadEsp<K, ESN>,
    iv_len: AEAD_IV,
    pad_align: 4,
    icv_len: |_c| TAG_LEN,
    backend: |c| c.0.backend,
);
