//! After a burst, the stack below the caller holds none of the key-derived
//! words the kernels had in registers: each test runs a burst with a known
//! key, copies the stack below its own frame (inline asm, opaque to the
//! compiler, in `probe`) and looks for those words. The HMAC bursts'
//! tests are in `crypto/hmac_wipe_tests.rs`.

use espresso_core::key::Key;

use super::probe::{below_sp, depth, found, packets, paint_below_sp, splat, DUMP, SLACK};
use super::stack;
use crate::crypto::mb::chacha_poly::{key_words, ChachaOp, ChachaPolyX16};
use crate::crypto::{OpenJob, SealJob};

#[test]
fn gcm_burst_leaves_no_key_schedule_on_the_stack() {
    if !super::super::supported() {
        return;
    }
    let key: [u8; 16] = std::array::from_fn(|i| 0xa0 ^ (i as u8 * 17));
    let mut ks = key.to_vec();
    ks.extend_from_slice(&[1, 2, 3, 4]);
    let cipher = super::super::build_gcm(&Key::new(ks), false).expect("gcm");
    let sizes = [
        40, 64, 100, 200, 236, 300, 512, 1400, 48, 64, 64, 64, 120, 1000,
    ];
    let mut pkts = packets(&sizes);
    let mut dump = Box::new([0u8; DUMP]);
    let mut seal: Vec<SealJob<'_>> = pkts
        .iter_mut()
        .enumerate()
        .map(|(i, p)| SealJob {
            esp: p.as_mut_slice(),
            seq: i as u64 + 1,
        })
        .collect();
    // Clear what building the SA left, then run the bursts.
    stack::<DUMP>();
    cipher.seal(&mut seal);
    drop(seal);
    let mut open: Vec<OpenJob<'_>> = pkts
        .iter_mut()
        .enumerate()
        .map(|(i, p)| OpenJob {
            esp: p.as_mut_slice(),
            seq: i as u64 + 1,
            ok: false,
        })
        .collect();
    cipher.open(&mut open);
    below_sp(&mut dump);
    assert!(open.iter().all(|j| j.ok), "every packet opens");
    let hits = found(&dump[..], &gcm_key_words(&key));
    assert!(
        hits.is_empty(),
        "round keys / hash-key powers (index, offset) left: {hits:?}"
    );
}

/// Every non-zero 16-byte entry of the SA's expanded key: the round keys
/// and the hash-key powers `S_32..S_1` as the kernel holds them.
fn gcm_key_words(key: &[u8]) -> Vec<[u8; 16]> {
    // SAFETY: the caller checked `supported()`, every feature `expand` is
    // compiled for.
    let keys = unsafe { super::super::vaes512::expand(key) }.expect("key");
    // The power table and the round keys: the first 576 + 240 bytes of the
    // `repr(C)` struct, byte arrays only (no padding before them).
    const LEN: usize = 64 * 9 + 16 * 15;
    assert!(std::mem::size_of_val(&keys) >= LEN);
    // SAFETY: `keys` is a live `repr(C)` `Keys` whose first `LEN` bytes are
    // the initialised `h32` and `rk` byte arrays; the slice is read while
    // `keys` is borrowed.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&keys as *const super::super::vaes512::Keys).cast::<u8>(),
            LEN,
        )
    };
    let mut v: Vec<[u8; 16]> = bytes
        .chunks_exact(16)
        .filter(|c| c.iter().any(|&b| b != 0))
        .map(|c| c.try_into().expect("16 bytes"))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

#[test]
fn chacha_poly_burst_leaves_no_key_word_on_the_stack() {
    let Some(cp) = ChachaPolyX16::detect() else {
        return;
    };
    let key: [u8; 32] = std::array::from_fn(|i| 0x5c ^ (i as u8 * 29));
    let kw = key_words(&key);
    let sizes = [64, 100, 300, 1400, 64, 64, 64, 200];
    let mut pkts = packets(&sizes);
    let mut dump = Box::new([0u8; DUMP]);
    let aad = [9u8; 8];
    let mut ops: Vec<ChachaOp<'_>> = pkts
        .iter_mut()
        .enumerate()
        .map(|(i, p)| ChachaOp {
            nonce: [i as u8; 12],
            aad: &aad,
            data: p.as_mut_slice(),
            tag: [0; 16],
            ok: false,
        })
        .collect();
    stack::<DUMP>();
    cp.seal(&kw, &mut ops);
    cp.open(&kw, &mut ops);
    below_sp(&mut dump);
    assert!(ops.iter().all(|o| o.ok), "every op opens");
    // The key words (broadcast) and each op's one-time Poly1305 key r, s.
    let mut needles: Vec<[u8; 16]> = kw.iter().map(|&w| splat(w)).collect();
    for i in 0..sizes.len() {
        let b0 = chacha20_block0(&kw, &[i as u8; 12]);
        needles.push(b0[..16].try_into().expect("r"));
        needles.push(b0[16..32].try_into().expect("s"));
    }
    let hits = found(&dump[..], &needles);
    assert!(
        hits.is_empty(),
        "key words / r, s (index, offset) left: {hits:?}"
    );
    // r in the IFMA kernel's 44/44/42-bit limbs (64-bit lanes), and the
    // 20 * r1, 20 * r2 it multiplies by.
    let mut limbs: Vec<[u8; 8]> = Vec::new();
    for i in 0..sizes.len() {
        let b0 = chacha20_block0(&kw, &[i as u8; 12]);
        let r = u128::from_le_bytes(b0[..16].try_into().expect("r"))
            & 0x0ffffffc0ffffffc0ffffffc0fffffff;
        let (r0, r1, r2) = (r as u64 & M44, (r >> 44) as u64 & M44, (r >> 88) as u64);
        for v in [r0, r1, r2, 20 * r1, 20 * r2] {
            limbs.push(v.to_le_bytes());
        }
    }
    let hits = found(&dump[..], &limbs);
    assert!(hits.is_empty(), "r limbs (index, offset) left: {hits:?}");
}

/// Mask of a 44-bit limb.
const M44: u64 = (1 << 44) - 1;

#[test]
fn chacha20_block0_matches_rfc8439() {
    // RFC 8439 §2.6.2: Poly1305 key generation.
    let key: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
    let nonce = [0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7];
    let want = hex::decode("8ad5a08b905f81cc815040274ab29471a833b637e3fd0da508dbb8e2fdd1a646")
        .expect("hex");
    assert_eq!(&chacha20_block0(&key_words(&key), &nonce)[..32], &want[..]);
}

/// ChaCha20 block 0 (RFC 8439 §2.3), scalar: the one-time Poly1305 key is
/// its first 32 bytes.
fn chacha20_block0(key: &[u32; 8], nonce: &[u8; 12]) -> [u8; 64] {
    let mut s = [0u32; 16];
    s[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    s[4..12].copy_from_slice(key);
    for (w, b) in s[13..].iter_mut().zip(nonce.chunks_exact(4)) {
        *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    let mut x = s;
    let qr = |x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize| {
        x[a] = x[a].wrapping_add(x[b]);
        x[d] = (x[d] ^ x[a]).rotate_left(16);
        x[c] = x[c].wrapping_add(x[d]);
        x[b] = (x[b] ^ x[c]).rotate_left(12);
        x[a] = x[a].wrapping_add(x[b]);
        x[d] = (x[d] ^ x[a]).rotate_left(8);
        x[c] = x[c].wrapping_add(x[d]);
        x[b] = (x[b] ^ x[c]).rotate_left(7);
    };
    for _ in 0..10 {
        qr(&mut x, 0, 4, 8, 12);
        qr(&mut x, 1, 5, 9, 13);
        qr(&mut x, 2, 6, 10, 14);
        qr(&mut x, 3, 7, 11, 15);
        qr(&mut x, 0, 5, 10, 15);
        qr(&mut x, 1, 6, 11, 12);
        qr(&mut x, 2, 7, 8, 13);
        qr(&mut x, 3, 4, 9, 14);
    }
    let mut out = [0u8; 64];
    for (i, c) in out.chunks_exact_mut(4).enumerate() {
        c.copy_from_slice(&x[i].wrapping_add(s[i]).to_le_bytes());
    }
    out
}

/// No GCM or ChaCha20-Poly1305 burst writes deeper below its caller than
/// its wipe clears (plus the wipe's frame): 64-byte, 1400-byte and mixed
/// bursts (the HMAC bursts: `crypto/hmac_wipe_tests.rs`).
#[test]
fn bursts_stay_within_their_wipe() {
    use super::{CHACHA_POLY_WIPE, GCM_WIPE};
    if !super::super::supported() {
        return;
    }
    let Some(cp) = ChachaPolyX16::detect() else {
        return;
    };
    let mut dump = Box::new([0u8; DUMP]);
    let cipher = super::super::build_gcm(&Key::new(vec![7; 20]), false).expect("gcm");
    let kw = [5u32; 8];
    let aad = [9u8; 8];
    let mixed = [
        40, 64, 100, 200, 236, 300, 512, 1400, 48, 64, 64, 64, 120, 1000,
    ];
    let check = |what: &str, size: usize, wipe: usize, dump: &[u8; DUMP]| {
        let d = depth(dump);
        assert!(
            d <= wipe + SLACK,
            "{what} ({size} B): {d} bytes deep, wipe {wipe}"
        );
    };
    for sizes in [&[64usize; 32][..], &[1400; 32], &mixed] {
        let n = sizes[0];
        let mut pkts = packets(sizes);
        let mut seal: Vec<SealJob<'_>> = pkts
            .iter_mut()
            .map(|p| SealJob {
                esp: p.as_mut_slice(),
                seq: 1,
            })
            .collect();
        paint_below_sp();
        cipher.seal(&mut seal);
        below_sp(&mut dump);
        check("gcm seal", n, GCM_WIPE, &dump);
        drop(seal);
        let mut open: Vec<OpenJob<'_>> = pkts
            .iter_mut()
            .map(|p| OpenJob {
                esp: p.as_mut_slice(),
                seq: 1,
                ok: false,
            })
            .collect();
        paint_below_sp();
        cipher.open(&mut open);
        below_sp(&mut dump);
        check("gcm open", n, GCM_WIPE, &dump);
        drop(open);
        let mut ops: Vec<ChachaOp<'_>> = pkts
            .iter_mut()
            .map(|p| ChachaOp {
                nonce: [1; 12],
                aad: &aad,
                data: p.as_mut_slice(),
                tag: [0; 16],
                ok: false,
            })
            .collect();
        paint_below_sp();
        cp.seal(&kw, &mut ops);
        below_sp(&mut dump);
        check("chacha20-poly1305 seal", n, CHACHA_POLY_WIPE, &dump);
        paint_below_sp();
        cp.open(&kw, &mut ops);
        below_sp(&mut dump);
        check("chacha20-poly1305 open", n, CHACHA_POLY_WIPE, &dump);
    }
}
