use super::*;

// ---------------------------------------------------------------------------
// Raw primitives (known-answer tests and benchmarks, one call per message)
// ---------------------------------------------------------------------------

pub(super) struct RawAeadImb<K>(pub(super) K);

impl<K: ImbAead> RawAead for RawAeadImb<K> {
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
        let mut ops = [imb::AeadOp {
            nonce: *nonce,
            aad,
            data,
            tag: [0; TAG_LEN],
        }];
        if self.0.run(imb::Direction::Seal, &mut ops).is_err() {
            ops[0].data.fill(0);
            return [0; TAG_LEN];
        }
        ops[0].tag
    }

    fn open(&self, nonce: &[u8; 12], aad: &[u8], ct_tag: &mut [u8]) -> bool {
        let Some(n) = ct_tag.len().checked_sub(TAG_LEN) else {
            return false;
        };
        let (data, tag) = ct_tag.split_at_mut(n);
        let mut ops = [imb::AeadOp {
            nonce: *nonce,
            aad,
            data,
            tag: [0; TAG_LEN],
        }];
        self.0.run(imb::Direction::Open, &mut ops).is_ok() && ct::eq(&ops[0].tag, tag)
    }
}

pub(super) struct RawHmac(pub(super) imb::HmacKey);

impl RawMac for RawHmac {
    fn full_len(&self) -> usize {
        self.0.alg().digest_len()
    }

    /// The library hashes one contiguous message: `b` (non-empty only for
    /// callers outside this backend's ESP path) is appended in a copy.
    fn mac2(&self, a: &[u8], b: &[u8], out: &mut [u8]) {
        let joined;
        let msg = if b.is_empty() {
            a
        } else {
            joined = [a, b].concat();
            &joined[..]
        };
        let mut tag = [[0u8; 64]];
        let n = out.len().min(self.full_len());
        if imb::hmac(&self.0, &[msg], &mut tag).is_err() {
            out.fill(0);
            return;
        }
        out[..n].copy_from_slice(&tag[0][..n]);
    }
}

pub(super) struct RawAes(pub(super) imb::AesKey);

impl RawCbc for RawAes {
    fn block_len(&self) -> usize {
        BLOCK
    }

    fn encrypt(&self, iv: &[u8], data: &mut [u8]) -> bool {
        let Ok(iv) = <[u8; BLOCK]>::try_from(iv) else {
            return false;
        };
        if data.is_empty() {
            return true;
        }
        imb::aes_cbc_encrypt(&self.0, &mut [imb::CbcOp { data, iv }]).is_ok()
    }

    fn decrypt(&self, iv: &[u8], data: &mut [u8]) -> bool {
        let Ok(iv) = <[u8; BLOCK]>::try_from(iv) else {
            return false;
        };
        if data.is_empty() {
            return true;
        }
        imb::aes_cbc_decrypt(&self.0, &mut [imb::CbcOp { data, iv }]).is_ok()
    }
}
