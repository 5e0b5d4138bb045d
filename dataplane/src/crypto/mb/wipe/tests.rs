//! After a burst, the stack below the caller holds none of the key-derived
//! words the kernels had in registers: each test runs a burst with a known
//! key, copies the stack below its own frame (inline asm, opaque to the
//! compiler) and looks for those words.

use std::arch::asm;

use espresso_core::key::Key;

use super::stack;
#[cfg(feature = "ipsec-mb")]
use crate::crypto::hmac_burst::{pad_states, Sha1, ShaNiHmac, SmallJob, SmallMac};
#[cfg(feature = "ipsec-mb")]
use crate::crypto::hmac_wide::{Kernel, Sha1Wide, WideMac};
use crate::crypto::mb::chacha_poly::{key_words, ChachaOp, ChachaPolyX16};
#[cfg(feature = "ipsec-mb")]
use crate::crypto::mb::sha1_x16::Sha1x16;
use crate::crypto::{OpenJob, SealJob};

/// Bytes of stack read back below the test's frame (more than any wipe).
const DUMP: usize = 32 * 1024;

/// Copies the `DUMP` bytes just below the stack pointer into `out`.
#[inline(always)]
fn below_sp(out: &mut [u8; DUMP]) {
    // SAFETY: reads the `DUMP` bytes below `rsp`, which lie in this thread's
    // stack (a test thread has 2 MiB and the test runs near its top), and
    // writes `out`, a buffer of exactly `DUMP` bytes. The asm pushes nothing
    // (`nostack`) and restores no flags it changes (`rep movsb` changes none).
    unsafe {
        asm!(
            "mov rsi, rsp",
            "sub rsi, {n}",
            "rep movsb",
            n = const DUMP,
            inout("rdi") out.as_mut_ptr() => _,
            inout("rcx") DUMP => _,
            out("rsi") _,
            options(nostack, preserves_flags),
        );
    }
}

/// Offsets in `dump` where one of `needles` occurs, as (needle index, offset).
fn found<const L: usize>(dump: &[u8], needles: &[[u8; L]]) -> Vec<(usize, usize)> {
    let mut hits = Vec::new();
    for (i, n) in needles.iter().enumerate() {
        for (off, w) in dump.windows(L).enumerate() {
            if w == n {
                hits.push((i, off));
            }
        }
    }
    hits
}

/// A 32-bit word four times (one 128-bit lane of a broadcast register).
fn splat(w: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    for c in b.chunks_exact_mut(4) {
        c.copy_from_slice(&w.to_le_bytes());
    }
    b
}

/// ESP packets (header, IV, payload, ICV room) of the given payload sizes.
fn packets(sizes: &[usize]) -> Vec<Vec<u8>> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let mut p = vec![0u8; 16 + n + 16];
            p[..4].copy_from_slice(&0x1000u32.to_be_bytes());
            p[4..8].copy_from_slice(&(i as u32 + 1).to_be_bytes());
            for (j, b) in p[16..16 + n].iter_mut().enumerate() {
                *b = (j * 7 + i) as u8;
            }
            p
        })
        .collect()
}

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

#[cfg(feature = "ipsec-mb")]
#[test]
fn sha1_x16_hmac_burst_leaves_no_pad_state_on_the_stack() {
    let Some(k) = Sha1Wide::new() else {
        return;
    };
    let key: [u8; 20] = std::array::from_fn(|i| 0x3b ^ (i as u8 * 13));
    let (ipad, opad) = pad_states(
        &key,
        <Sha1x16 as Kernel<5>>::IV,
        <Sha1x16 as Kernel<5>>::compress1,
    )
    .expect("key");
    let (ib, ob) = (lib_layout(&ipad), lib_layout(&opad));
    let msgs_owned: Vec<Vec<u8>> = (0..16).map(|i| vec![i as u8; 64 + 16 * i]).collect();
    let msgs: Vec<&[u8]> = msgs_owned.iter().map(|m| m.as_slice()).collect();
    let mut out = vec![[0u8; 32]; 16];
    let mut dump = Box::new([0u8; DUMP]);
    stack::<DUMP>();
    k.mac_burst(&ib, &ob, &msgs, &mut out);
    below_sp(&mut dump);
    assert!(out.iter().all(|o| o != &[0u8; 32]), "every MAC written");
    let needles: Vec<[u8; 16]> = ipad.iter().chain(&opad).map(|&w| splat(w)).collect();
    let hits = found(&dump[..], &needles);
    assert!(
        hits.is_empty(),
        "pad state words (index, offset) left: {hits:?}"
    );
}

/// Key states in the library's layout (native-endian words), as the ESP
/// path hands them to the HMAC kernels.
#[cfg(feature = "ipsec-mb")]
fn lib_layout(s: &[u32; 5]) -> [u8; 64] {
    let mut b = [0u8; 64];
    for (c, w) in b.chunks_exact_mut(4).zip(s) {
        c.copy_from_slice(&w.to_ne_bytes());
    }
    b
}

#[cfg(feature = "ipsec-mb")]
#[test]
fn sha_ni_hmac_burst_leaves_no_pad_state_on_the_stack() {
    let Some(k) = ShaNiHmac::<Sha1>::new() else {
        return;
    };
    let key: [u8; 20] = std::array::from_fn(|i| 0x71 ^ (i as u8 * 11));
    let (ipad, opad) = pad_states(&key, Sha1::iv(), Sha1::compress).expect("key");
    let (ib, ob) = (lib_layout(&ipad), lib_layout(&opad));
    let msgs: Vec<Vec<u8>> = (0..8).map(|i| vec![i as u8; 40 + 30 * i]).collect();
    let mut jobs: Vec<SmallJob<'_>> = msgs
        .iter()
        .map(|m| SmallJob {
            msg: m.as_slice(),
            out: [0; 32],
        })
        .collect();
    let mut dump = Box::new([0u8; DUMP]);
    stack::<DUMP>();
    k.mac_burst(&ib, &ob, &mut jobs);
    below_sp(&mut dump);
    assert!(jobs.iter().all(|j| j.out != [0u8; 32]), "every MAC written");
    // A, B, C, D in one register, in either word order.
    let mut needles: Vec<[u8; 16]> = Vec::new();
    for st in [ipad, opad] {
        let mut fwd = [0u8; 16];
        let mut rev = [0u8; 16];
        for i in 0..4 {
            fwd[4 * i..4 * i + 4].copy_from_slice(&st[i].to_le_bytes());
            rev[4 * i..4 * i + 4].copy_from_slice(&st[3 - i].to_le_bytes());
        }
        needles.push(fwd);
        needles.push(rev);
    }
    let hits = found(&dump[..], &needles);
    assert!(hits.is_empty(), "pad states (index, offset) left: {hits:?}");
}

/// Fills the `DUMP` bytes below the stack pointer with 0xa5.
#[inline(always)]
fn paint_below_sp() {
    // SAFETY: writes the `DUMP` bytes below `rsp`: this thread's stack, not
    // in use by any frame (they are below the stack pointer); nothing pushed.
    unsafe {
        asm!(
            "mov rdi, rsp",
            "sub rdi, {n}",
            "mov al, 0xa5",
            "rep stosb",
            n = const DUMP,
            out("rdi") _,
            inout("rcx") DUMP => _,
            out("al") _,
            options(nostack, preserves_flags),
        );
    }
}

/// Bytes below the stack pointer a burst wrote (after `paint_below_sp`).
fn depth(dump: &[u8; DUMP]) -> usize {
    DUMP - dump.iter().position(|&b| b != 0xa5).unwrap_or(DUMP)
}

/// Slack for the wipe's own frame (return address, saved registers,
/// alignment) below the caller's stack pointer.
const SLACK: usize = 256;

/// No burst writes deeper below its caller than its wipe clears (plus the
/// wipe's frame): 64-byte, 1400-byte and mixed bursts of every path.
#[cfg(feature = "ipsec-mb")]
#[test]
fn bursts_stay_within_their_wipe() {
    use super::{CHACHA_POLY_WIPE, GCM_WIPE, SHA_NI_WIPE, WIDE_HMAC_WIPE};
    use crate::crypto::hmac_wide::Wide512Kernel;
    if !super::super::supported() {
        return;
    }
    let (Some(cp), Some(wide), Some(wide512), Some(ni)) = (
        ChachaPolyX16::detect(),
        Sha1Wide::new(),
        Wide512Kernel::<8>::new(),
        ShaNiHmac::<Sha1>::new(),
    ) else {
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
        drop(ops);
        let msgs: Vec<&[u8]> = pkts.iter().map(|p| p.as_slice()).collect();
        let mut out = vec![[0u8; 32]; msgs.len()];
        paint_below_sp();
        wide.mac_burst(&[1; 64], &[2; 64], &msgs, &mut out);
        below_sp(&mut dump);
        check("hmac-sha1 x16", n, WIDE_HMAC_WIPE, &dump);
        paint_below_sp();
        wide512.mac_burst(&[1; 64], &[2; 64], &msgs, &mut out);
        below_sp(&mut dump);
        check("hmac-sha512 x8", n, WIDE_HMAC_WIPE, &dump);
        let mut jobs: Vec<SmallJob<'_>> = msgs
            .iter()
            .map(|m| SmallJob {
                msg: m,
                out: [0; 32],
            })
            .collect();
        paint_below_sp();
        ni.mac_burst(&[1; 64], &[2; 64], &mut jobs);
        below_sp(&mut dump);
        check("hmac-sha1 sha-ni", n, SHA_NI_WIPE, &dump);
    }
}
