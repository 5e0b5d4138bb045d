//! ChaCha20-Poly1305 (RFC 8439 §2.8, as ESP uses it: RFC 7634) over a burst
//! of messages under one key: the ChaCha20 blocks of all the packets go
//! through the 16-lane kernel (`chacha_x16`) together (a packet's whole
//! runs of sixteen blocks in one call of their own, XORed from the
//! registers; the other blocks share lanes across packets), Poly1305 runs
//! eight packets per register on AVX-512 IFMA (`poly1305_x8`) or, without
//! IFMA, scalar with four packets in lockstep (`poly1305`).
//!
//! Seal: the keystream blocks (counters 1..) of every message, XORed in
//! place; then the Poly1305 key blocks (counter 0) and the tags over the
//! ciphertexts. Open: the key blocks and tags first, compared in constant
//! time with the received tags; then only the messages whose tag matched
//! are decrypted (a forged packet is left as it came).
//!
//! The ESP transform routes every packet here where the CPU has IFMA, else
//! payloads of at most 112 bytes (the rest to intel-ipsec-mb). Checked
//! against RustCrypto's `chacha20poly1305` on random keys, nonces, AADs,
//! burst sizes and lengths 0..=600 and 0..=2000, with the IFMA and the
//! scalar Poly1305, and RFC 8439 §2.3.2, §2.5.2, §2.8.2 (tests below).

use zeroize::Zeroize;

use super::chacha_x16::{Blocks16, ChachaX16, Lanes, LANES};
use super::poly1305;
use super::poly1305_x8::{Msg, PolyX8};
use crate::crypto::ct;

/// Longest message this path takes (the ESP transform sends only short
/// ones; a lane records its block index in 16 bits).
pub const MAX_LEN: usize = 64 * 1024;

/// Ops handled together (a lane records its op index in 16 bits).
const MAX_OPS: usize = 1024;

/// One message: in place, with its 12-byte nonce and its AAD. `tag`: the
/// computed tag after [`ChachaPolyX16::seal`], the received tag for
/// [`ChachaPolyX16::open`], which sets `ok`.
pub struct ChachaOp<'a> {
    /// The 96-bit nonce (RFC 8439 §2.8: ESP's salt || IV).
    pub nonce: [u8; 12],
    /// Additional authenticated data.
    pub aad: &'a [u8],
    /// Plaintext (seal) or ciphertext (open), transformed in place.
    pub data: &'a mut [u8],
    /// Computed tag (seal) or received tag (open).
    pub tag: [u8; 16],
    /// Open: the tag matched and `data` is the plaintext.
    pub ok: bool,
}

/// The 16-lane ChaCha20-Poly1305 kernel on this CPU: a token that exists
/// only on a CPU that runs it. It holds no key: [`seal`](Self::seal) and
/// [`open`](Self::open) take the key's eight state words from the caller
/// (the ESP transform keeps them once, in `ffi::ipsecmb::ChachaKey`, whose
/// memory the library reads as the key bytes; [`key_words`] for others).
#[derive(Clone, Copy, Debug)]
pub struct ChachaPolyX16 {
    cpu: ChachaX16,
    /// The 8-lane IFMA Poly1305, if the CPU has AVX-512 IFMA (else the
    /// scalar one).
    ifma: Option<PolyX8>,
}

/// A 32-byte key as the eight little-endian ChaCha20 state words (RFC 8439
/// §2.3) the kernel takes. The caller wipes them.
pub fn key_words(key: &[u8; 32]) -> [u32; 8] {
    let mut k = [0u32; 8];
    for (w, b) in k.iter_mut().zip(key.chunks_exact(4)) {
        *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    k
}

/// The lanes of one kernel call and which (message, block) each serves.
struct Batch {
    lanes: Lanes,
    who: [(u16, u16); LANES],
    n: usize,
}

impl ChachaPolyX16 {
    /// `None` if the CPU lacks AVX-512 F/BW.
    pub fn detect() -> Option<Self> {
        Some(ChachaPolyX16 {
            cpu: ChachaX16::detect()?,
            ifma: PolyX8::detect(),
        })
    }

    /// The kernel with the scalar Poly1305 even where the CPU has IFMA
    /// (tests compare the two; benchmarks).
    pub fn without_ifma(mut self) -> Self {
        self.ifma = None;
        self
    }

    /// True if tags are computed by the 8-lane IFMA Poly1305.
    pub fn has_ifma(&self) -> bool {
        self.ifma.is_some()
    }

    /// Encrypts every op in place and sets its tag. An op longer than
    /// [`MAX_LEN`] gets zeroed data and a zero tag.
    pub fn seal(&self, key: &[u32; 8], ops: &mut [ChachaOp<'_>]) {
        super::wipe::burst_x16::<{ super::wipe::CHACHA_POLY_WIPE }, _>(self.cpu, || {
            for ops in ops.chunks_mut(MAX_OPS) {
                for o in ops.iter_mut() {
                    o.ok = o.data.len() <= MAX_LEN;
                    if !o.ok {
                        o.data.fill(0);
                    }
                }
                self.keystream(key, ops);
                self.tags(key, ops, |o, t| o.tag = if o.ok { t } else { [0; 16] });
            }
        })
    }

    /// Verifies every op's tag (constant time) and decrypts in place those
    /// that match (`ok = true`); the others keep their bytes.
    pub fn open(&self, key: &[u32; 8], ops: &mut [ChachaOp<'_>]) {
        super::wipe::burst_x16::<{ super::wipe::CHACHA_POLY_WIPE }, _>(self.cpu, || {
            for ops in ops.chunks_mut(MAX_OPS) {
                self.tags(key, ops, |o, t| {
                    o.ok = o.data.len() <= MAX_LEN && ct::eq(&t, &o.tag);
                });
                self.keystream(key, ops);
            }
        })
    }

    /// Poly1305 keys (block 0) of every op and the tag over its data, given
    /// to `done`.
    fn tags(
        &self,
        key: &[u32; 8],
        ops: &mut [ChachaOp<'_>],
        mut done: impl FnMut(&mut ChachaOp<'_>, [u8; 16]),
    ) {
        let mut b = new_batch();
        let mut ks = [[0u64; 8]; LANES];
        let ifma = self.ifma;
        let mut finish = |ops: &mut [ChachaOp<'_>], b: &Batch, ks: &Blocks16| {
            if let Some(px) = ifma {
                let lanes = &b.who[..b.n];
                let t = ifma_tags(px, ops, lanes, ks);
                for (l, &(i, _)) in lanes.iter().enumerate() {
                    done(&mut ops[i as usize], t[l / 8][l % 8]);
                }
                return;
            }
            // Four tags at a time (independent Poly1305 chains overlap),
            // then the rest one by one. An over-long op is refused by
            // `done` (seal and open check the length); it is hashed as
            // empty.
            let lanes = &b.who[..b.n];
            let groups = lanes.len() / 4;
            for (g, q) in lanes.chunks_exact(4).enumerate() {
                let idx: [usize; 4] = std::array::from_fn(|j| q[j].0 as usize);
                let lane0 = 4 * g;
                let keys: [&[u8; 32]; 4] = std::array::from_fn(|j| poly_key(&ks[lane0 + j]));
                let aads: [&[u8]; 4] = std::array::from_fn(|j| ops[idx[j]].aad);
                let cts: [&[u8]; 4] = std::array::from_fn(|j| hashed(&ops[idx[j]]));
                let t = poly1305::aead_tags(keys, aads, cts);
                for (j, t) in t.into_iter().enumerate() {
                    done(&mut ops[idx[j]], t);
                }
            }
            let first = 4 * groups;
            for (l, &(i, _)) in lanes[first..].iter().enumerate() {
                let o = &mut ops[i as usize];
                let t = poly1305::aead_tag(poly_key(&ks[first + l]), o.aad, hashed(o));
                done(o, t);
            }
        };
        for i in 0..ops.len() {
            push(&mut b, &ops[i].nonce, 0, i, 0);
            if b.n == LANES {
                self.cpu.blocks(key, &b.lanes, &mut ks);
                finish(ops, &b, &ks);
                b.n = 0;
            }
        }
        if b.n > 0 {
            self.cpu.blocks(key, &b.lanes, &mut ks);
            finish(ops, &b, &ks);
        }
        ks.zeroize();
    }

    /// XORs the keystream (blocks 1..) into the data of every op with
    /// `ok` set.
    fn keystream(&self, key: &[u32; 8], ops: &mut [ChachaOp<'_>]) {
        let mut b = new_batch();
        let mut ks = [[0u64; 8]; LANES];
        for i in 0..ops.len() {
            if !ops[i].ok {
                continue;
            }
            let nonce = nonce_words(&ops[i].nonce);
            let blocks = ops[i].data.len().div_ceil(64);
            // Whole runs of sixteen blocks of this op in one call each;
            // the rest shares lanes with other ops' blocks.
            let mut first = 0;
            while let Some(run) = ops[i]
                .data
                .get_mut(first * 64..(first + LANES) * 64)
                .and_then(|d| <&mut [u8; 64 * LANES]>::try_from(d).ok())
            {
                self.cpu.xor_run16(key, &nonce, first as u32 + 1, run);
                first += LANES;
            }
            for blk in first..blocks {
                push_words(&mut b, &nonce, blk as u32 + 1, i, blk);
                if b.n == LANES {
                    self.cpu.blocks(key, &b.lanes, &mut ks);
                    xor_lanes(self.cpu, ops, &b, &ks);
                    b.n = 0;
                }
            }
        }
        if b.n > 0 {
            self.cpu.blocks(key, &b.lanes, &mut ks);
            xor_lanes(self.cpu, ops, &b, &ks);
        }
        ks.zeroize();
    }
}

/// The tags of the ops of `lanes` (at most 16) on the IFMA Poly1305, in
/// lane order (`[l / 8][l % 8]`): eight lanes per group, one group for up
/// to eight ops, two (hashed together) above; unused lanes hash nothing
/// under a zero key.
fn ifma_tags(
    px: PolyX8,
    ops: &[ChachaOp<'_>],
    lanes: &[(u16, u16)],
    ks: &Blocks16,
) -> [[[u8; 16]; 8]; 2] {
    const IDLE: [u8; 32] = [0; 32];
    let msg = |l: usize| match lanes.get(l) {
        Some(&(i, _)) => {
            let o = &ops[i as usize];
            Msg {
                key: poly_key(&ks[l]),
                aad: o.aad,
                ct: hashed(o),
            }
        }
        None => Msg {
            key: &IDLE,
            aad: &[],
            ct: &[],
        },
    };
    if lanes.len() > 8 {
        px.aead_tags::<2>(&[
            std::array::from_fn(msg),
            std::array::from_fn(|i| msg(8 + i)),
        ])
    } else {
        let [t] = px.aead_tags::<1>(&[std::array::from_fn(msg)]);
        [t, [[0; 16]; 8]]
    }
}

/// The Poly1305 key: the first 32 bytes of block 0.
#[inline(always)]
fn poly_key(block: &[u64; 8]) -> &[u8; 32] {
    let b: &[u8; 64] = bytemuck::cast_ref(block);
    b[..32].try_into().expect("32 of 64")
}

/// What the tag covers: the data, or nothing for an over-long op (refused).
#[inline(always)]
fn hashed<'a>(o: &'a ChachaOp<'_>) -> &'a [u8] {
    if o.data.len() <= MAX_LEN {
        o.data
    } else {
        &[]
    }
}

fn new_batch() -> Batch {
    Batch {
        lanes: Lanes::default(),
        who: [(0, 0); LANES],
        n: 0,
    }
}

#[inline(always)]
fn push(b: &mut Batch, nonce: &[u8; 12], ctr: u32, op: usize, blk: usize) {
    push_words(b, &nonce_words(nonce), ctr, op, blk);
}

/// The nonce as the three little-endian state words.
#[inline(always)]
fn nonce_words(nonce: &[u8; 12]) -> [u32; 3] {
    std::array::from_fn(|k| {
        u32::from_le_bytes([
            nonce[4 * k],
            nonce[4 * k + 1],
            nonce[4 * k + 2],
            nonce[4 * k + 3],
        ])
    })
}

#[inline(always)]
fn push_words(b: &mut Batch, nonce: &[u32; 3], ctr: u32, op: usize, blk: usize) {
    let l = b.n;
    b.lanes.ctr[l] = ctr;
    for (k, w) in nonce.iter().enumerate() {
        b.lanes.nonce[k][l] = *w;
    }
    b.who[l] = (op as u16, blk as u16);
    b.n += 1;
}

fn xor_lanes(cpu: ChachaX16, ops: &mut [ChachaOp<'_>], b: &Batch, ks: &Blocks16) {
    // Lane l's destination: 64 bytes (or the rest) of its op's data from
    // block `blk` on. An op's blocks sit in consecutive lanes, in order,
    // and ops come in increasing index, so each op's data is cut into
    // disjoint pieces once.
    let mut dst: [Option<&mut [u8]>; LANES] = Default::default();
    let who = &b.who[..b.n];
    let mut it = ops.iter_mut().enumerate();
    let mut l = 0;
    while l < who.len() {
        let (i, blk0) = (who[l].0 as usize, who[l].1 as usize);
        let Some((_, o)) = it.by_ref().find(|(j, _)| *j == i) else {
            break;
        };
        let mut rest = o.data.get_mut(blk0 * 64..).unwrap_or_default();
        while l < who.len() && who[l].0 as usize == i {
            let n = rest.len().min(64);
            let (piece, r) = std::mem::take(&mut rest).split_at_mut(n);
            dst[l] = Some(piece);
            rest = r;
            l += 1;
        }
    }
    cpu.xor(ks, &mut dst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::aead::generic_array::GenericArray;
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use chacha20poly1305::ChaCha20Poly1305;
    use rand::{Rng, RngCore, SeedableRng};

    /// Visible skip (scripts/test.sh lists it): the ESP transform then
    /// runs intel-ipsec-mb alone, covered by tests/crypto_ipsecmb.rs.
    fn skip(test: &str) {
        crate::crypto::mb::sha_ni::skip_note::note(
            test,
            "the 16-lane ChaCha20 kernel",
            "this CPU has no AVX-512 F/BW",
        );
    }

    fn reference(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
        let c = ChaCha20Poly1305::new_from_slice(key).unwrap();
        let t = c
            .encrypt_in_place_detached(GenericArray::from_slice(nonce), aad, data)
            .unwrap();
        t.into()
    }

    #[test]
    fn rfc8439_block_function_2_3_2() {
        let Some(cpu) = ChachaX16::detect() else {
            skip("rfc8439_block_function_2_3_2");
            return;
        };
        let key: Vec<u8> = (0u8..32).collect();
        let mut k = [0u32; 8];
        for (w, b) in k.iter_mut().zip(key.chunks_exact(4)) {
            *w = u32::from_le_bytes(b.try_into().unwrap());
        }
        let mut lanes = Lanes::default();
        let nonce = [0x0900_0000u32, 0x4a00_0000, 0];
        for l in 0..LANES {
            // Lane 5 carries the RFC's block; the others other counters.
            lanes.ctr[l] = if l == 5 { 1 } else { 100 + l as u32 };
            for (i, w) in nonce.iter().enumerate() {
                lanes.nonce[i][l] = *w;
            }
        }
        let mut out = [[0u64; 8]; LANES];
        cpu.blocks(&k, &lanes, &mut out);
        let out: [[u8; 64]; LANES] = bytemuck::cast(out);
        let want = hex::decode(concat!(
            "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e",
            "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"
        ))
        .unwrap();
        assert_eq!(out[5].to_vec(), want);
        assert_ne!(out[4], out[5]);
    }

    #[test]
    fn rfc8439_poly1305_2_5_2() {
        let key: [u8; 32] =
            hex::decode("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b")
                .unwrap()
                .try_into()
                .unwrap();
        let tag = poly1305::mac(&key, b"Cryptographic Forum Research Group");
        assert_eq!(
            tag.to_vec(),
            hex::decode("a8061dc1305136c6c22b8baf0c0127a9").unwrap()
        );
    }

    #[test]
    fn rfc8439_aead_2_8_2() {
        let key: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
        let key = key_words(&key);
        let Some(c) = ChachaPolyX16::detect() else {
            skip("rfc8439_aead_2_8_2");
            return;
        };
        let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let aad = hex::decode("50515253c0c1c2c3c4c5c6c7").unwrap();
        let nonce: [u8; 12] = hex::decode("070000004041424344454647")
            .unwrap()
            .try_into()
            .unwrap();
        let mut data = pt.to_vec();
        let mut ops = [ChachaOp {
            nonce,
            aad: &aad,
            data: &mut data,
            tag: [0; 16],
            ok: false,
        }];
        c.seal(&key, &mut ops);
        let tag = ops[0].tag;
        assert_eq!(
            tag.to_vec(),
            hex::decode("1ae10b594f09e26a7e902ecbd0600691").unwrap()
        );
        assert_eq!(
            data[..16].to_vec(),
            hex::decode("d31a8d34648e60db7b86afbc53ef7ec2").unwrap()
        );
        let mut ops = [ChachaOp {
            nonce,
            aad: &aad,
            data: &mut data,
            tag,
            ok: false,
        }];
        c.open(&key, &mut ops);
        assert!(ops[0].ok);
        assert_eq!(&data[..], &pt[..]);
    }

    /// Random bursts (1..=40 ops, lengths 0..=600, AAD 0..=20 bytes): the
    /// same ciphertexts and tags as RustCrypto; open gives the plaintext
    /// back; a flipped bit (tag, data or AAD) is refused and leaves the
    /// packet untouched while its neighbours still open. With the IFMA
    /// Poly1305 where the CPU has it, and with the scalar one.
    #[test]
    fn bursts_match_rustcrypto() {
        let mut key = [0u8; 32];
        rand::rngs::StdRng::seed_from_u64(8439).fill_bytes(&mut key);
        let Some(c) = ChachaPolyX16::detect() else {
            skip("bursts_match_rustcrypto");
            return;
        };
        if !c.has_ifma() {
            crate::crypto::mb::sha_ni::skip_note::note(
                "bursts_match_rustcrypto (IFMA half)",
                "the 8-lane IFMA Poly1305",
                "this CPU has no AVX-512 IFMA",
            );
        }
        check_bursts(&c, &key, 8439, 300, 600);
        check_bursts(&c.without_ifma(), &key, 8440, 100, 600);
    }

    /// As [`bursts_match_rustcrypto`] with ESP's long packets (lengths
    /// 0..=2000: many blocks per op, an op's blocks split across kernel
    /// calls).
    #[test]
    fn long_bursts_match_rustcrypto() {
        let mut key = [0u8; 32];
        rand::rngs::StdRng::seed_from_u64(7634).fill_bytes(&mut key);
        let Some(c) = ChachaPolyX16::detect() else {
            skip("long_bursts_match_rustcrypto");
            return;
        };
        check_bursts(&c, &key, 7634, 120, 2000);
        check_bursts(&c.without_ifma(), &key, 7635, 20, 2000);
    }

    fn check_bursts(c: &ChachaPolyX16, key: &[u8; 32], seed: u64, rounds: usize, max: usize) {
        let key = *key;
        let kw = key_words(&key);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for round in 0..rounds {
            let n = rng.random_range(1..=40);
            let mut pts = Vec::new();
            let mut aads = Vec::new();
            let mut nonces = Vec::new();
            for i in 0..n {
                // Every length 0..=600 is hit across rounds; plus sizes
                // round the block boundaries.
                let len = if i == 0 {
                    (round * 2 + 1) % (max + 1)
                } else {
                    rng.random_range(0..=max)
                };
                let mut p = vec![0u8; len];
                rng.fill_bytes(&mut p);
                pts.push(p);
                let mut a = vec![0u8; rng.random_range(0..=20)];
                rng.fill_bytes(&mut a);
                aads.push(a);
                let mut nn = [0u8; 12];
                rng.fill_bytes(&mut nn);
                nonces.push(nn);
            }
            let mut bufs = pts.clone();
            let mut ops: Vec<ChachaOp<'_>> = bufs
                .iter_mut()
                .zip(&aads)
                .zip(&nonces)
                .map(|((d, a), nn)| ChachaOp {
                    nonce: *nn,
                    aad: a,
                    data: d,
                    tag: [0; 16],
                    ok: false,
                })
                .collect();
            c.seal(&kw, &mut ops);
            let tags: Vec<[u8; 16]> = ops.iter().map(|o| o.tag).collect();
            drop(ops);
            for i in 0..n {
                let mut want = pts[i].clone();
                let t = reference(&key, &nonces[i], &aads[i], &mut want);
                assert_eq!(
                    bufs[i],
                    want,
                    "ciphertext round {round} op {i} len {}",
                    want.len()
                );
                assert_eq!(tags[i], t, "tag round {round} op {i} len {}", want.len());
            }
            // Corrupt one op (tag, data or AAD) and open the burst.
            let bad = rng.random_range(0..n);
            let what = rng.random_range(0..3);
            let mut tags2 = tags.clone();
            let mut aads2 = aads.clone();
            match what {
                0 => tags2[bad][rng.random_range(0..16)] ^= 1 << rng.random_range(0..8),
                1 if !bufs[bad].is_empty() => {
                    let j = rng.random_range(0..bufs[bad].len());
                    bufs[bad][j] ^= 1 << rng.random_range(0..8);
                }
                _ => aads2[bad].push(0),
            }
            let sent = bufs.clone();
            let mut ops: Vec<ChachaOp<'_>> = bufs
                .iter_mut()
                .zip(&aads2)
                .zip(&nonces)
                .zip(&tags2)
                .map(|(((d, a), nn), t)| ChachaOp {
                    nonce: *nn,
                    aad: a,
                    data: d,
                    tag: *t,
                    ok: false,
                })
                .collect();
            c.open(&kw, &mut ops);
            let oks: Vec<bool> = ops.iter().map(|o| o.ok).collect();
            drop(ops);
            for i in 0..n {
                if i == bad {
                    assert!(!oks[i], "forgery accepted round {round} op {i} what {what}");
                    assert_eq!(bufs[i], sent[i], "refused op modified");
                } else {
                    assert!(oks[i], "good op refused round {round} op {i}");
                    assert_eq!(bufs[i], pts[i], "plaintext round {round} op {i}");
                }
            }
        }
    }
}
