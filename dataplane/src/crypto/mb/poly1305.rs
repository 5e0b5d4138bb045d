//! Poly1305 (RFC 8439 §2.5) for the AEAD construction (§2.8): one short
//! message at a time with 44/44/42-bit limbs and 64 x 64 -> 128-bit
//! multiplies (the "donna-64" layout). Built for the small packets
//! `chacha_poly` takes, where a vector Poly1305's set-up (key powers) costs
//! more than the few blocks it would hash.
//!
//! Checked against RustCrypto (the tag of `chacha20poly1305`, random keys,
//! nonces, AADs and every length 0..=600) and RFC 8439 §2.5.2 / §2.8.2
//! (tests in `chacha_poly`).

const M44: u64 = (1 << 44) - 1;
const M42: u64 = (1 << 42) - 1;

/// Accumulator and key of one Poly1305 computation.
struct Poly {
    r: [u64; 3],
    s: [u64; 2],
    h: [u64; 3],
    pad: [u64; 2],
}

/// The clamped `r` of a one-time key as 44/44/42-bit limbs, and the pad
/// `s` (the key's second half) as two little-endian words.
#[inline(always)]
pub(super) fn key_limbs(key: &[u8; 32]) -> ([u64; 3], [u64; 2]) {
    let t0 = le64(&key[0..8]);
    let t1 = le64(&key[8..16]);
    let r0 = t0 & 0xffc_0fff_ffff;
    let r1 = ((t0 >> 44) | (t1 << 20)) & 0xfff_ffc0_ffff;
    let r2 = (t1 >> 24) & 0x00f_ffff_fc0f;
    ([r0, r1, r2], [le64(&key[16..24]), le64(&key[24..32])])
}

impl Poly {
    fn new(key: &[u8; 32]) -> Poly {
        let ([r0, r1, r2], pad) = key_limbs(key);
        Poly {
            r: [r0, r1, r2],
            // 2^130 = 5 (mod p); limb weights give the factor 4 on top.
            s: [r1 * 20, r2 * 20],
            h: [0; 3],
            pad,
        }
    }

    /// One 16-byte block with the 2^128 bit set (every block of the AEAD
    /// construction is padded to 16 bytes).
    #[inline(always)]
    fn block(&mut self, b: &[u8; 16]) {
        self.block_hi(b, 1 << 40);
    }

    /// One block plus `hibit` (2^128 as bit 40 of the top limb, or 0 for
    /// a short last block of a plain MAC).
    #[inline(always)]
    fn block_hi(&mut self, b: &[u8; 16], hibit: u64) {
        let t0 = le64(&b[0..8]);
        let t1 = le64(&b[8..16]);
        let [r0, r1, r2] = self.r;
        let [s1, s2] = self.s;
        let h0 = self.h[0] + (t0 & M44);
        let h1 = self.h[1] + (((t0 >> 44) | (t1 << 20)) & M44);
        let h2 = self.h[2] + (((t1 >> 24) & M42) | hibit);
        let m = |a: u64, b: u64| a as u128 * b as u128;
        let d0 = m(h0, r0) + m(h1, s2) + m(h2, s1);
        let mut d1 = m(h0, r1) + m(h1, r0) + m(h2, s2);
        let mut d2 = m(h0, r2) + m(h1, r1) + m(h2, r0);
        let mut c = (d0 >> 44) as u64;
        let mut h0 = d0 as u64 & M44;
        d1 += c as u128;
        c = (d1 >> 44) as u64;
        let mut h1 = d1 as u64 & M44;
        d2 += c as u128;
        c = (d2 >> 42) as u64;
        let h2 = d2 as u64 & M42;
        h0 += c * 5;
        c = h0 >> 44;
        h0 &= M44;
        h1 += c;
        self.h = [h0, h1, h2];
    }

    fn finish(self) -> [u8; 16] {
        finish(self.h, self.pad)
    }
}

/// The tag from an accumulator (44/44/42-bit limbs, each at most a few
/// bits over) and the pad: h mod p, plus s, mod 2^128.
pub(super) fn finish(h: [u64; 3], pad: [u64; 2]) -> [u8; 16] {
    let [mut h0, mut h1, mut h2] = h;
    let mut c = h1 >> 44;
    h1 &= M44;
    h2 += c;
    c = h2 >> 42;
    h2 &= M42;
    h0 += c * 5;
    c = h0 >> 44;
    h0 &= M44;
    h1 += c;
    c = h1 >> 44;
    h1 &= M44;
    h2 += c;
    c = h2 >> 42;
    h2 &= M42;
    h0 += c * 5;
    c = h0 >> 44;
    h0 &= M44;
    h1 += c;
    // g = h + 5 - 2^130; take g if it did not go negative (h >= p).
    let mut g0 = h0 + 5;
    c = g0 >> 44;
    g0 &= M44;
    let mut g1 = h1 + c;
    c = g1 >> 44;
    g1 &= M44;
    let g2 = h2.wrapping_add(c).wrapping_sub(1 << 42);
    let keep_g = (g2 >> 63).wrapping_sub(1); // all ones if g2 >= 0
    let keep_h = !keep_g;
    h0 = (h0 & keep_h) | (g0 & keep_g);
    h1 = (h1 & keep_h) | (g1 & keep_g);
    h2 = (h2 & keep_h) | (g2 & keep_g & M42);
    // h + s mod 2^128.
    let [t0, t1] = pad;
    h0 += t0 & M44;
    c = h0 >> 44;
    h0 &= M44;
    h1 += (((t0 >> 44) | (t1 << 20)) & M44) + c;
    c = h1 >> 44;
    h1 &= M44;
    h2 += ((t1 >> 24) & M42) + c;
    h2 &= M42;
    let lo = h0 | (h1 << 44);
    let hi = (h1 >> 20) | (h2 << 24);
    let mut tag = [0u8; 16];
    tag[..8].copy_from_slice(&lo.to_le_bytes());
    tag[8..].copy_from_slice(&hi.to_le_bytes());
    tag
}

impl Drop for Poly {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.r);
        zeroize::Zeroize::zeroize(&mut self.s);
        zeroize::Zeroize::zeroize(&mut self.pad);
        zeroize::Zeroize::zeroize(&mut self.h);
    }
}

#[inline(always)]
fn le64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

/// The ChaCha20-Poly1305 tag (RFC 8439 §2.8): Poly1305 under `key` (the
/// first 32 bytes of block 0) of aad || pad16 || ct || pad16 ||
/// le64(|aad|) || le64(|ct|).
pub fn aead_tag(key: &[u8; 32], aad: &[u8], ct: &[u8]) -> [u8; 16] {
    let [t] = aead_tags([key], [aad], [ct]);
    t
}

/// [`aead_tag`] of `N` messages at once: their blocks are hashed in
/// lockstep, so the `N` independent multiply chains overlap (one chain is
/// bound by its multiply latency, not by the multiplier's throughput).
#[inline(always)]
pub fn aead_tags<const N: usize>(
    keys: [&[u8; 32]; N],
    aads: [&[u8]; N],
    cts: [&[u8]; N],
) -> [[u8; 16]; N] {
    let mut p: [Poly; N] = std::array::from_fn(|i| Poly::new(keys[i]));
    let m: [Msg<'_>; N] = std::array::from_fn(|i| Msg::new(aads[i], cts[i]));
    let common = m.iter().map(|m| m.blocks).min().unwrap_or(0);
    for j in 0..common {
        for i in 0..N {
            p[i].block(&m[i].block(j));
        }
    }
    for i in 0..N {
        for j in common..m[i].blocks {
            p[i].block(&m[i].block(j));
        }
    }
    let mut out = [[0u8; 16]; N];
    for (o, p) in out.iter_mut().zip(p) {
        *o = p.finish();
    }
    out
}

/// The padded AEAD message as numbered 16-byte blocks.
struct Msg<'a> {
    aad: &'a [u8],
    ct: &'a [u8],
    na: usize,
    nc: usize,
    blocks: usize,
}

impl<'a> Msg<'a> {
    #[inline(always)]
    fn new(aad: &'a [u8], ct: &'a [u8]) -> Self {
        let na = aad.len().div_ceil(16);
        let nc = ct.len().div_ceil(16);
        Msg {
            aad,
            ct,
            na,
            nc,
            blocks: na + nc + 1,
        }
    }

    #[inline(always)]
    fn block(&self, j: usize) -> [u8; 16] {
        if j < self.na {
            padded_block(self.aad, j)
        } else if j < self.na + self.nc {
            padded_block(self.ct, j - self.na)
        } else {
            let mut lens = [0u8; 16];
            lens[..8].copy_from_slice(&(self.aad.len() as u64).to_le_bytes());
            lens[8..].copy_from_slice(&(self.ct.len() as u64).to_le_bytes());
            lens
        }
    }
}

/// Block `k` of `s`, zero-padded past its end.
#[inline(always)]
fn padded_block(s: &[u8], k: usize) -> [u8; 16] {
    let start = 16 * k;
    match s.get(start..start + 16) {
        Some(b) => b.try_into().expect("16 bytes"),
        None => {
            let mut b = [0u8; 16];
            let rest = &s[start..];
            b[..rest.len()].copy_from_slice(rest);
            b
        }
    }
}

/// Poly1305 of a whole message (RFC 8439 §2.5, no AEAD padding): tests
/// only, against the RFC's vector.
#[cfg(test)]
pub(super) fn mac(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
    let mut p = Poly::new(key);
    let mut it = msg.chunks_exact(16);
    for b in &mut it {
        p.block(b.try_into().expect("16"));
    }
    let rest = it.remainder();
    if !rest.is_empty() {
        // A short last block: a 1 byte after the message, no 2^128 bit.
        let mut b = [0u8; 16];
        b[..rest.len()].copy_from_slice(rest);
        b[rest.len()] = 1;
        p.block_hi(&b, 0);
    }
    p.finish()
}
