//! After an HMAC burst of the 16-lane SHA-1 or the SHA-NI kernels, the
//! stack below the caller holds none of the key's ipad/opad chaining
//! states, and no burst writes deeper than its wipe (see `mb::wipe`; the
//! GCM and ChaCha20-Poly1305 tests are in `mb/wipe/tests.rs`).

use super::hmac_burst::{pad_states, Sha1, ShaNiHmac, SmallJob, SmallMac};
use super::hmac_wide::{Kernel, Sha1Wide, Wide512Kernel, WideMac};
use super::mb::sha1_x16::Sha1x16;
use super::mb::wipe::probe::{below_sp, depth, found, packets, paint_below_sp, splat, DUMP, SLACK};
use super::mb::wipe::{stack, SHA_NI_WIPE, WIDE_HMAC_WIPE};

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
fn lib_layout(s: &[u32; 5]) -> [u8; 64] {
    let mut b = [0u8; 64];
    for (c, w) in b.chunks_exact_mut(4).zip(s) {
        c.copy_from_slice(&w.to_ne_bytes());
    }
    b
}

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

/// No HMAC burst writes deeper below its caller than its wipe clears (plus
/// the wipe's frame): 64-byte, 1400-byte and mixed bursts, and lone
/// packets and a group of eight plus one (SHA-384/512's one-message path).
#[test]
fn hmac_bursts_stay_within_their_wipe() {
    let (Some(wide), Some(wide512), Some(ni)) = (
        Sha1Wide::new(),
        Wide512Kernel::<8>::new(),
        ShaNiHmac::<Sha1>::new(),
    ) else {
        return;
    };
    let mut dump = Box::new([0u8; DUMP]);
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
    for sizes in [
        &[64usize; 32][..],
        &[1400; 32],
        &mixed,
        &[64],
        &[1400],
        &[300; 9],
    ] {
        let n = sizes[0];
        let pkts = packets(sizes);
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
