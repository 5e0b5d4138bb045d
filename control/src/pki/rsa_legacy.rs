//! The RSA operations aws-lc-rs has no API for (see the module doc of
//! `pki`): EMSA-PKCS1-v1_5 blocks (RFC 8017 §9.2) over a SHA-1 digest or
//! over the data itself (IKEv1), signed with crypto-bigint's constant-time
//! Montgomery exponentiation `m^d mod n` (no CRT), and the public operation
//! `s^e mod n` to check them.

use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{Integer, Uint, Word};
use zeroize::{Zeroize, Zeroizing};

/// DigestInfo prefix of SHA-1 (RFC 8017 §9.2, note 1).
pub(crate) const SHA1_PREFIX: &[u8] = &[
    0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
];
/// DigestInfo prefix of SHA-256 (RFC 8017 §9.2, note 1), for the cross-check tests.
#[cfg(test)]
pub(crate) const SHA256_PREFIX: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// EM = 0x00 || 0x01 || PS (0xff..., at least 8) || 0x00 || T, `k` bytes.
pub(crate) fn emsa_pkcs1_v15(t: &[u8], k: usize) -> Option<Vec<u8>> {
    if t.len() + 11 > k {
        return None;
    }
    let mut em = Vec::with_capacity(k);
    em.push(0);
    em.push(1);
    em.resize(k - t.len() - 1, 0xff);
    em.push(0);
    em.extend_from_slice(t);
    Some(em)
}

fn strip(b: &[u8]) -> &[u8] {
    let z = b.iter().take_while(|x| **x == 0).count();
    &b[z..]
}

fn to_uint<const L: usize>(b: &[u8]) -> Option<Zeroizing<Uint<L>>> {
    let b = strip(b);
    let n = L * Word::BITS as usize / 8;
    if b.len() > n {
        return None;
    }
    let mut buf = Zeroizing::new(vec![0u8; n]);
    buf[n - b.len()..].copy_from_slice(b);
    Some(Zeroizing::new(Uint::<L>::from_be_slice(&buf)))
}

fn to_bytes<const L: usize>(x: &Uint<L>, k: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(L * 8));
    for w in x.as_words().iter().rev() {
        out.extend_from_slice(&w.to_be_bytes());
    }
    let cut = out.len().saturating_sub(k);
    Zeroizing::new(out[cut..].to_vec())
}

/// `base^exp mod n` in constant time (for the exponent's value), `k`-byte result.
fn modpow<const L: usize>(
    n: &[u8],
    exp: &[u8],
    base: &[u8],
    k: usize,
) -> Option<Zeroizing<Vec<u8>>> {
    let nn = to_uint::<L>(n)?;
    if !bool::from(nn.is_odd()) || *nn <= Uint::<L>::ONE {
        return None;
    }
    let m = to_uint::<L>(base)?;
    if *m >= *nn {
        return None;
    }
    let mut e = to_uint::<L>(exp)?;
    let params = DynResidueParams::new(&nn);
    let mut r = DynResidue::new(&m, params).pow(&e).retrieve();
    e.zeroize();
    let out = to_bytes(&r, k);
    r.zeroize();
    Some(out)
}

/// `base^exp mod n` for a modulus of up to 8192 bits; the result has the
/// modulus's length. None for an even or too large modulus or `base >= n`.
pub(crate) fn rsa_op(n: &[u8], exp: &[u8], base: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let k = strip(n).len();
    match k {
        0..=256 => modpow::<{ crypto_bigint::U2048::LIMBS }>(n, exp, base, k),
        257..=384 => modpow::<{ crypto_bigint::U3072::LIMBS }>(n, exp, base, k),
        385..=512 => modpow::<{ crypto_bigint::U4096::LIMBS }>(n, exp, base, k),
        513..=1024 => modpow::<{ crypto_bigint::U8192::LIMBS }>(n, exp, base, k),
        _ => None,
    }
}

/// The modulus length in bytes.
pub(crate) fn modulus_len(n: &[u8]) -> usize {
    strip(n).len()
}
