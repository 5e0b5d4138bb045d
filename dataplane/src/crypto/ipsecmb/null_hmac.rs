use super::*;

// ---------------------------------------------------------------------------
// ESP: NULL + HMAC
// ---------------------------------------------------------------------------

/// A NULL + HMAC SA: raw HMAC key and cache id ([`SaKeys`]); the HMAC
/// states are in the worker's cache ([`CbcKeys`], AES fields zero).
pub(super) struct NullHmac<H: EspHash> {
    pub(super) keys: SaKeys<H>,
    pub(super) mac: Mac<H>,
    /// ICV length (12..=32 bytes).
    pub(super) icv_len: u8,
    /// The library's code path (`status` names the backend from it).
    pub(super) arch: imb::Arch,
}

pub(super) struct NullHmacEsp<const ESN: bool, H: EspHash>(pub(super) NullHmac<H>);

impl<const ESN: bool, H: EspHash> NullHmacEsp<ESN, H> {
    /// End of the authenticated part (SPI..payload), if the packet has room
    /// for the header and the ICV.
    #[inline(always)]
    pub(super) fn end(&self, len: usize) -> Option<usize> {
        len.checked_sub(usize::from(self.0.icv_len))
            .filter(|&e| e >= HDR)
    }

    pub(super) fn seal_chunk(&self, jobs: &mut [SealJob<'_>]) {
        self.0.keys.with(None, |k| match k {
            Some(k) => self.seal_keys(k, jobs),
            None => jobs.iter_mut().for_each(|j| j.esp.fill(0)),
        })
    }

    pub(super) fn open_chunk(&self, jobs: &mut [OpenJob<'_>]) {
        self.0.keys.with(None, |k| match k {
            Some(k) => self.open_keys(k, jobs),
            None => jobs.iter_mut().for_each(|j| j.ok = false),
        })
    }

    #[inline(always)]
    fn seal_keys(&self, keys: &CbcKeys, jobs: &mut [SealJob<'_>]) {
        let m = &self.0;
        let icv = usize::from(m.icv_len);
        let mut tags = [[0u8; 32]; CHUNK];
        {
            let mut msgs: ArrayVec<&[u8], CHUNK> = ArrayVec::new();
            for job in jobs.iter_mut() {
                let esp = &mut *job.esp;
                let Some(end) = self.end(esp.len()) else {
                    esp.fill(0);
                    continue;
                };
                let n = authed_len::<ESN>(esp, end, job.seq);
                msgs.push(&esp[..n]);
            }
            if m.mac.macs(keys, &msgs, &mut tags).is_err() {
                drop(msgs);
                jobs.iter_mut().for_each(|j| j.esp.fill(0));
                return;
            }
        }
        let mut k = 0;
        for job in jobs.iter_mut() {
            let esp = &mut *job.esp;
            let Some(end) = self.end(esp.len()) else {
                continue;
            };
            esp[end..end + icv].copy_from_slice(&tags[k][..icv]);
            k += 1;
        }
    }

    #[inline(always)]
    fn open_keys(&self, keys: &CbcKeys, jobs: &mut [OpenJob<'_>]) {
        let m = &self.0;
        let icv = usize::from(m.icv_len);
        let mut rx = [[0u8; MAX_ICV]; CHUNK];
        let mut good = [false; CHUNK];
        {
            let mut msgs: ArrayVec<&[u8], CHUNK> = ArrayVec::new();
            let mut idx: ArrayVec<usize, CHUNK> = ArrayVec::new();
            for (i, job) in jobs.iter_mut().enumerate() {
                let esp = &mut *job.esp;
                let Some(end) = self.end(esp.len()) else {
                    continue;
                };
                rx[i][..icv].copy_from_slice(&esp[end..end + icv]);
                let n = authed_len::<ESN>(esp, end, job.seq);
                msgs.push(&esp[..n]);
                idx.push(i);
            }
            let mut tags = [[0u8; 32]; CHUNK];
            if m.mac.macs(keys, &msgs, &mut tags).is_ok() {
                for (t, &i) in tags.iter().zip(&idx) {
                    good[i] = ct::eq(&t[..icv], &rx[i][..icv]);
                }
            }
        }
        for (i, job) in jobs.iter_mut().enumerate() {
            job.ok = good[i];
            if ESN {
                if let Some(end) = self.end(job.esp.len()) {
                    job.esp[end..end + 4].copy_from_slice(&rx[i][..4]);
                }
            }
        }
    }
}

esp_cipher_in_chunks!(
    impl[const ESN: bool, H: EspHash] NullHmacEsp<ESN, H>,
    iv_len: 0,
    pad_align: 4,
    icv_len: |c| usize::from(c.0.icv_len),
    backend: |c| name(c.0.arch),
);
