//! Key set-up into caller buffers, and bursts on keys the caller holds.
//!
//! [`AesKey`] and [`HmacKey`] own their expanded keys; a transform that
//! keeps its expanded keys in a per-worker cache (the dataplane's
//! `crypto::key_cache`) has them expanded into the cache entry in place
//! ([`aes_expand_into`], [`hmac_pads_into`]: no allocation, no copy left on
//! the stack but the zeroized buffers named below) and runs the bursts on
//! the entry ([`aes_cbc_encrypt_with`], [`aes_cbc_decrypt_with`],
//! [`hmac_trunc_pads`]). The owning types use the same functions
//! ([`hmac`](super::hmac) and [`hmac_trunc`](super::hmac_trunc): the one
//! HMAC burst, `hmac_burst`, on the key's states).

use zeroize::Zeroize;

use super::{sys, with_mgr, CbcOp, HashAlg, ImbError, RoundKeys, AES_BLOCK, MAX_BURST};

/// Expands a 16-, 24- or 32-byte AES key into `enc` and `dec` (the
/// encryption and decryption schedules, as [`AesKey`](super::AesKey) holds
/// them; round keys past the key's `nr + 1` are left as they were).
pub fn aes_expand_into(
    key: &[u8],
    enc: &mut RoundKeys,
    dec: &mut RoundKeys,
) -> Result<(), ImbError> {
    if !matches!(key.len(), 16 | 24 | 32) {
        return Err(ImbError::Invalid {
            what: "AES key length",
            value: key.len(),
            why: "must be 16, 24 or 32 bytes",
        });
    }
    with_mgr(|m| {
        // SAFETY: `key` holds key.len() (16/24/32) readable bytes; enc
        // and dec are 240-byte, 16-byte-aligned buffers: the 16 * 15
        // bytes of the longest schedule.
        let r = unsafe {
            sys::espresso_imb_aes_keyexp(
                m.ptr.as_ptr(),
                key.as_ptr().cast(),
                key.len(),
                enc.0.as_mut_ptr().cast(),
                dec.0.as_mut_ptr().cast(),
            )
        };
        if r != 0 {
            return Err(ImbError::Invalid {
                what: "AES key length",
                value: key.len(),
                why: "refused by the library",
            });
        }
        Ok(())
    })
}

/// The HMAC states of `key` (the hash states after the key XOR ipad and
/// XOR opad blocks, RFC 2104; keys longer than the block are hashed first)
/// into `ipad` and `opad`: the chaining words in native byte order, the
/// bytes past the state (20 bytes for SHA-1, 32 for SHA-256) zero.
pub fn hmac_pads_into(
    alg: HashAlg,
    key: &[u8],
    ipad: &mut [u8; 64],
    opad: &mut [u8; 64],
) -> Result<(), ImbError> {
    ipad.fill(0);
    opad.fill(0);
    let bl = alg.block_len();
    with_mgr(|m| {
        let mut k0 = [0u8; 128];
        if key.len() > bl {
            // SAFETY: `key` is readable for key.len() bytes; k0 holds
            // 128 bytes, more than any digest (64).
            let r = unsafe {
                sys::espresso_imb_hash(
                    m.ptr.as_ptr(),
                    alg.raw(),
                    key.as_ptr().cast(),
                    key.len() as u64,
                    k0.as_mut_ptr().cast(),
                )
            };
            if r != 0 {
                k0.zeroize();
                return Err(ImbError::Invalid {
                    what: "HMAC hash",
                    value: alg.digest_len(),
                    why: "refused by the library",
                });
            }
        } else {
            k0[..key.len()].copy_from_slice(key);
        }
        let mut block = [0u8; 128];
        let mut r = 0;
        for (pad, out) in [(0x36u8, &mut *ipad), (0x5c, &mut *opad)] {
            for (b, x) in block[..bl].iter_mut().zip(&k0[..bl]) {
                *b = x ^ pad;
            }
            // SAFETY: `block` holds one full block (bl <= 128 bytes);
            // `out` holds 64 bytes, the largest state (SHA-512).
            r |= unsafe {
                sys::espresso_imb_hash_one_block(
                    m.ptr.as_ptr(),
                    alg.raw(),
                    block.as_ptr().cast(),
                    out.as_mut_ptr().cast(),
                )
            };
        }
        block.zeroize();
        k0.zeroize();
        if r != 0 {
            return Err(ImbError::Invalid {
                what: "HMAC hash",
                value: alg.digest_len(),
                why: "refused by the library",
            });
        }
        Ok(())
    })
}

/// Encrypts every op in place, AES-CBC, with the encryption schedule `rk`
/// of a `key_len`-byte key.
pub fn aes_cbc_encrypt_with(
    rk: &RoundKeys,
    key_len: usize,
    ops: &mut [CbcOp<'_>],
) -> Result<(), ImbError> {
    cbc_with(rk, key_len, ops, sys::IMB_DIR_ENCRYPT)
}

/// Decrypts every op in place, AES-CBC, with the decryption schedule `rk`
/// of a `key_len`-byte key.
pub fn aes_cbc_decrypt_with(
    rk: &RoundKeys,
    key_len: usize,
    ops: &mut [CbcOp<'_>],
) -> Result<(), ImbError> {
    cbc_with(rk, key_len, ops, sys::IMB_DIR_DECRYPT)
}

pub(super) fn cbc_with(
    keys: &RoundKeys,
    key_len: usize,
    ops: &mut [CbcOp<'_>],
    dir: sys::IMB_CIPHER_DIRECTION,
) -> Result<(), ImbError> {
    let size = match key_len {
        16 => sys::IMB_KEY_128_BYTES,
        24 => sys::IMB_KEY_192_BYTES,
        32 => sys::IMB_KEY_256_BYTES,
        _ => {
            return Err(ImbError::Invalid {
                what: "AES key length",
                value: key_len,
                why: "must be 16, 24 or 32 bytes",
            })
        }
    };
    for op in ops.iter() {
        if op.data.is_empty() || op.data.len() % AES_BLOCK != 0 {
            return Err(ImbError::Invalid {
                what: "AES-CBC data length",
                value: op.data.len(),
                why: "must be a non-zero multiple of 16 bytes",
            });
        }
    }
    if ops.is_empty() {
        return Ok(());
    }
    with_mgr(|m| {
        for chunk in ops.chunks_mut(MAX_BURST) {
            for (job, op) in m.jobs.iter_mut().zip(chunk.iter_mut()) {
                // The library reads only this direction's schedule; both
                // job fields point at it.
                job.enc_keys = keys.0.as_ptr().cast();
                job.dec_keys = keys.0.as_ptr().cast();
                job.key_len_in_bytes = key_len as u64;
                job.__bindgen_anon_1.src = op.data.as_ptr();
                job.__bindgen_anon_2.dst = op.data.as_mut_ptr();
                job.__bindgen_anon_3.cipher_start_src_offset_in_bytes = 0;
                job.__bindgen_anon_4.msg_len_to_cipher_in_bytes = op.data.len() as u64;
                job.iv = op.iv.as_ptr();
                job.iv_len_in_bytes = AES_BLOCK as u64;
                job.cipher_mode = sys::IMB_CIPHER_CBC;
                job.cipher_direction = dir;
                job.hash_alg = sys::IMB_AUTH_NULL;
                job.chain_order = if dir == sys::IMB_DIR_ENCRYPT {
                    sys::IMB_ORDER_CIPHER_HASH
                } else {
                    sys::IMB_ORDER_HASH_CIPHER
                };
            }
            let n = chunk.len() as u32;
            // SAFETY: the first n jobs point into `chunk`'s slices (data of
            // checked length, read and written in place; IVs of 16 bytes)
            // and at `keys` (240 bytes, 16-byte aligned), all borrowed for
            // this call; the burst call completes every job before it
            // returns. Every field the library would validate is set above
            // from checked values (non-empty data, a multiple of 16 bytes;
            // IV length 16; key length 16/24/32 matching `size`; offset
            // 0), so the unvalidated variant is given only valid jobs.
            let done = unsafe {
                sys::espresso_imb_cipher_burst_nocheck(
                    m.ptr.as_ptr(),
                    m.jobs.as_mut_ptr(),
                    n,
                    sys::IMB_CIPHER_CBC,
                    dir,
                    size,
                )
            };
            if done != n {
                return Err(ImbError::Library {
                    op: "AES-CBC burst",
                    code: m.errno(),
                });
            }
        }
        Ok(())
    })
}

/// Truncated HMACs for IPsec with the states `ipad` / `opad` of an `alg`
/// key (as [`hmac_pads_into`] writes them): see
/// [`hmac_trunc`](super::hmac_trunc).
pub fn hmac_trunc_pads(
    alg: HashAlg,
    ipad: &[u8; 64],
    opad: &[u8; 64],
    msgs: &[&[u8]],
    tags: &mut [[u8; 32]],
) -> Result<(), ImbError> {
    hmac_burst(alg, ipad, opad, msgs, tags, alg.trunc_len())
}

/// Full-length HMACs (the first [`HashAlg::digest_len`] bytes of each tag)
/// with the states `ipad` / `opad` of an `alg` key: see
/// [`hmac`](super::hmac).
pub fn hmac_full_pads(
    alg: HashAlg,
    ipad: &[u8; 64],
    opad: &[u8; 64],
    msgs: &[&[u8]],
    tags: &mut [[u8; 64]],
) -> Result<(), ImbError> {
    hmac_burst(alg, ipad, opad, msgs, tags, alg.digest_len())
}

/// The one HMAC burst of this crate: the MAC of `msgs[i]`, `tag_len` bytes
/// of it (the IPsec truncation or the whole digest: both lengths the
/// library accepts for `alg`, and at most `T`), into the first bytes of
/// `tags[i]` (the rest left as it was), with the states `ipad` / `opad`.
/// One library burst per [`MAX_BURST`] messages, on the unvalidated entry:
/// every job is checked here (non-empty message; `tag_len` as above).
#[inline(always)]
fn hmac_burst<const T: usize>(
    alg: HashAlg,
    ipad: &[u8; 64],
    opad: &[u8; 64],
    msgs: &[&[u8]],
    tags: &mut [[u8; T]],
    tag_len: usize,
) -> Result<(), ImbError> {
    if tags.len() < msgs.len() {
        return Err(ImbError::Invalid {
            what: "HMAC tag buffers",
            value: tags.len(),
            why: "fewer than the messages",
        });
    }
    if tag_len > T || (tag_len != alg.trunc_len() && tag_len != alg.digest_len()) {
        return Err(ImbError::Invalid {
            what: "HMAC tag length",
            value: tag_len,
            why: "must be the hash's IPsec truncation or its digest length, within the buffer",
        });
    }
    if let Some(m) = msgs.iter().find(|m| m.is_empty()) {
        return Err(ImbError::Invalid {
            what: "HMAC message length",
            value: m.len(),
            why: "intel-ipsec-mb needs at least one byte",
        });
    }
    if msgs.is_empty() {
        return Ok(());
    }
    let tag_len = tag_len as u64;
    let alg = alg.raw();
    with_mgr(|m| {
        for (chunk, tags) in msgs.chunks(MAX_BURST).zip(tags.chunks_mut(MAX_BURST)) {
            for ((job, msg), tag) in m.jobs.iter_mut().zip(chunk).zip(tags.iter_mut()) {
                job.__bindgen_anon_1.src = msg.as_ptr();
                job.hash_start_src_offset_in_bytes = 0;
                job.__bindgen_anon_5.msg_len_to_hash_in_bytes = msg.len() as u64;
                job.auth_tag_output = tag.as_mut_ptr();
                job.auth_tag_output_len_in_bytes = tag_len;
                job.u.HMAC._hashed_auth_key_xor_ipad = ipad.as_ptr();
                job.u.HMAC._hashed_auth_key_xor_opad = opad.as_ptr();
                job.hash_alg = alg;
                job.cipher_mode = sys::IMB_CIPHER_NULL;
                job.chain_order = sys::IMB_ORDER_HASH_CIPHER;
            }
            let n = chunk.len() as u32;
            // SAFETY: the first n jobs point at `chunk`'s messages (read
            // msg.len() > 0 bytes, checked above), at tag buffers of T
            // bytes (the library writes tag_len <= T bytes, a length it
            // accepts for this hash: the IPsec truncation or the digest,
            // checked above) and at the 64-byte states, all borrowed for
            // this call; the burst call completes every job before it
            // returns. These are all the fields the validating variant
            // checks for HMAC, so the unvalidated one is given only valid
            // jobs.
            let done = unsafe {
                sys::espresso_imb_hash_burst_nocheck(m.ptr.as_ptr(), m.jobs.as_mut_ptr(), n, alg)
            };
            if done != n {
                return Err(ImbError::Library {
                    op: "HMAC burst",
                    code: m.errno(),
                });
            }
        }
        Ok(())
    })
}
