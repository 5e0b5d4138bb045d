//! Helpers shared by the crypto tests.
#![allow(dead_code)]

use dataplane::crypto::{
    build_with, Backend, BuildOptions, EncrAlg, EspCipher, IntegAlg, Key, OpenJob, SealJob, Suite,
};

/// Every suite the project supports (legacy ones included).
pub fn all_suites() -> Vec<Suite> {
    use EncrAlg::*;
    use IntegAlg::*;
    let mut v = vec![
        Suite {
            encr: AesGcm128,
            integ: None,
        },
        Suite {
            encr: AesGcm256,
            integ: None,
        },
        Suite {
            encr: ChaCha20Poly1305,
            integ: None,
        },
    ];
    for encr in [AesCbc128, AesCbc256, Null, TripleDesCbc] {
        for integ in [
            HmacSha1_96,
            HmacSha256_128,
            HmacSha384_192,
            HmacSha512_256,
            HmacMd5_96,
        ] {
            v.push(Suite { encr, integ });
        }
    }
    v
}

/// Deterministic key material of the right length for `suite`.
pub fn keys(suite: Suite, seed: u8) -> (Key, Key) {
    let mk = |n: usize, off: u8| {
        Key::new(
            (0..n)
                .map(|i| {
                    (i as u8)
                        .wrapping_mul(37)
                        .wrapping_add(seed)
                        .wrapping_add(off)
                })
                .collect(),
        )
    };
    (mk(suite.encr.key_len(), 0), mk(suite.integ.key_len(), 101))
}

pub fn opts(backend: Backend, esn: bool) -> BuildOptions {
    BuildOptions {
        esn,
        backend,
        allow_legacy: true,
        iv_key: Some(Key::new((0..32).map(|i| 0xa0 ^ i as u8).collect())),
        direction: None,
    }
}

/// Backends that implement `suite` in this build, keyed with `keys(suite, 7)` (never empty: RustCrypto
/// has them all).
pub fn backends_for(suite: Suite, esn: bool) -> Vec<(Backend, Box<dyn EspCipher>)> {
    let (ek, ak) = keys(suite, 7);
    Backend::compiled()
        .iter()
        .filter_map(|&b| {
            build_with(suite, &ek, &ak, &opts(b, esn))
                .ok()
                .map(|c| (b, c))
        })
        .collect()
}

/// An ESP packet around `plaintext` (already padded by the caller), with
/// room for IV and ICV: SPI | Seq | IV | plaintext | ICV.
pub fn packet(c: &dyn EspCipher, spi: u32, seq: u64, plaintext: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + c.iv_len() + plaintext.len() + c.icv_len());
    p.extend_from_slice(&spi.to_be_bytes());
    p.extend_from_slice(&(seq as u32).to_be_bytes());
    p.resize(8 + c.iv_len(), 0);
    p.extend_from_slice(plaintext);
    p.resize(p.len() + c.icv_len(), 0);
    p
}

/// Payload padded per RFC 4303 (1,2,3..., pad length, next header 4) to the
/// cipher's alignment.
pub fn padded(c: &dyn EspCipher, payload: &[u8]) -> Vec<u8> {
    let align = c.pad_align();
    let pad = (align - (payload.len() + 2) % align) % align;
    let mut v = payload.to_vec();
    v.extend((1..=pad).map(|i| i as u8));
    v.push(pad as u8);
    v.push(4);
    v
}

/// One seal job per packet, sequence numbers 1, 2, 3, ...
pub fn seal_jobs(pkts: &mut [Vec<u8>]) -> Vec<SealJob<'_>> {
    pkts.iter_mut()
        .enumerate()
        .map(|(i, p)| SealJob {
            esp: p,
            seq: i as u64 + 1,
        })
        .collect()
}

/// One open job per packet, sequence numbers 1, 2, 3, ...
pub fn open_jobs(pkts: &mut [Vec<u8>]) -> Vec<OpenJob<'_>> {
    pkts.iter_mut()
        .enumerate()
        .map(|(i, p)| OpenJob {
            esp: p,
            seq: i as u64 + 1,
            ok: false,
        })
        .collect()
}

pub fn seal_one(c: &dyn EspCipher, esp: &mut [u8], seq: u64) {
    c.seal(&mut [SealJob { esp, seq }]);
}

pub fn open_one(c: &dyn EspCipher, esp: &mut [u8], seq: u64) -> bool {
    let mut jobs = [OpenJob {
        esp,
        seq,
        ok: false,
    }];
    c.open(&mut jobs);
    jobs[0].ok
}
