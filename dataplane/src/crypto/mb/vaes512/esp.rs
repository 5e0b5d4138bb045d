use super::*;

// ---------------------------------------------------------------------------
// ESP bursts (RFC 4106)
// ---------------------------------------------------------------------------

/// ESP header (SPI, Seq) + IV.
pub(super) const ESP_HDR: usize = 16;
/// Smallest ESP packet: header, IV, ICV (empty plaintext).
pub(crate) const ESP_MIN: usize = ESP_HDR + 16;

simd_fn! {
    /// Nonce/AAD of one ESP packet: nonce = salt || IV (`hdr[8..16]`),
    /// AAD = SPI || SeqLo, or SPI || SeqHi || SeqLo with ESN.
    pub(super) fn esp_msg<const ESN: bool>(salt: u32, hdr: &[u8; 16], seq: u64) -> Msg {
        let spi = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let seq_lo = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        let iv = u64::from_be_bytes([hdr[8], hdr[9], hdr[10], hdr[11], hdr[12], hdr[13], hdr[14], hdr[15]]);
        // Reflected J0 = (salt || IV || 0x00000001) as a big-endian integer.
        let j0_hi = (u64::from(salt) << 32) | (iv >> 32);
        let j0_lo = (iv << 32) | 1;
        let j0r = _mm_set_epi64x(j0_hi as i64, j0_lo as i64);
        let (head, aad_len) = if ESN {
            let hi = (u64::from(spi) << 32) | (seq >> 32);
            let lo = u64::from(seq_lo) << 32;
            (_mm_set_epi64x(hi as i64, lo as i64), 12)
        } else {
            let hi = (u64::from(spi) << 32) | u64::from(seq_lo);
            (_mm_set_epi64x(hi as i64, 0), 8)
        };
        Msg { j0r, head, aad_len }
    }
}

simd_fn! {
    /// Writes the IV (= sequence number) of an ESP packet of at least
    /// `ESP_MIN` bytes and splits it: (nonce/AAD, plaintext, ICV space).
    pub(super) fn esp_seal_prep<const ESN: bool>(salt: u32, esp: &mut [u8], seq: u64) -> (Msg, &mut [u8], &mut [u8]) {
        esp[8..16].copy_from_slice(&seq.to_be_bytes());
        let (hdr, rest) = esp.split_at_mut(ESP_HDR);
        let hdr: &[u8; 16] = (&*hdr).try_into().expect("16-byte header");
        let m = esp_msg::<ESN>(salt, hdr, seq);
        let ct_len = rest.len() - 16;
        let (body, icv) = rest.split_at_mut(ct_len);
        (m, body, icv)
    }
}

simd_fn! {
    /// Splits a received ESP packet of at least `ESP_MIN` bytes: (nonce/AAD
    /// from its header, ciphertext, ICV).
    pub(super) fn esp_open_prep<const ESN: bool>(salt: u32, esp: &mut [u8], seq: u64) -> (Msg, &mut [u8], [u8; 16]) {
        let (hdr, rest) = esp.split_at_mut(ESP_HDR);
        let hdr: &[u8; 16] = (&*hdr).try_into().expect("16-byte header");
        let m = esp_msg::<ESN>(salt, hdr, seq);
        let ct_len = rest.len() - 16;
        let (body, icv) = rest.split_at_mut(ct_len);
        let tag: [u8; 16] = (&*icv).try_into().expect("16-byte ICV");
        (m, body, tag)
    }
}

impl Keys {
    simd_fn! {
        /// Seals a burst of ESP packets (see `EspCipher::seal`): runs of four
        /// short packets of the same shape go through the multi-buffer path.
        pub(crate) fn seal_esp<const NR: usize, const ESN: bool>(
            &self,
            salt: u32,
            jobs: &mut [super::super::SealJob<'_>],
        ) {
            let mut i = 0;
            while i < jobs.len() {
                if let Some([a, b, c, d]) = jobs.get_mut(i..i + 4) {
                    let g = small_regs(a.esp.len().wrapping_sub(ESP_MIN));
                    let same = |j: &super::super::SealJob<'_>| {
                        j.esp.len() >= ESP_MIN && small_regs(j.esp.len() - ESP_MIN) == g
                    };
                    if a.esp.len() >= ESP_MIN && g != 0 && same(b) && same(c) && same(d) {
                        let quad = [a, b, c, d];
                        match g {
                            1 => self.seal4::<NR, ESN, 1>(salt, quad),
                            2 => self.seal4::<NR, ESN, 2>(salt, quad),
                            3 => self.seal4::<NR, ESN, 3>(salt, quad),
                            4 => self.seal4::<NR, ESN, 4>(salt, quad),
                            _ => self.seal4::<NR, ESN, 5>(salt, quad),
                        }
                        i += 4;
                        continue;
                    }
                }
                self.seal_one::<NR, ESN>(salt, &mut jobs[i]);
                i += 1;
            }
        }
    }

    simd_fn! {
        /// Seals one ESP packet.
        pub(super) fn seal_one<const NR: usize, const ESN: bool>(&self, salt: u32, job: &mut super::super::SealJob<'_>) {
            let esp = &mut *job.esp;
            if esp.len() < ESP_MIN {
                // Malformed job: never let plaintext leave in clear.
                esp.fill(0);
                return;
            }
            let (m, body, icv) = esp_seal_prep::<ESN>(salt, esp, job.seq);
            let tag = self.seal::<NR>(&m, body);
            icv.copy_from_slice(&tag);
        }
    }

    simd_fn! {
        /// Seals four short ESP packets of `G` registers each (valid lengths
        /// checked by the caller).
        pub(super) fn seal4<const NR: usize, const ESN: bool, const G: usize>(
            &self,
            salt: u32,
            jobs: [&mut super::super::SealJob<'_>; 4],
        ) {
            let mut parts = jobs.map(|j| esp_seal_prep::<ESN>(salt, &mut *j.esp, j.seq));
            let m = [parts[0].0, parts[1].0, parts[2].0, parts[3].0];
            let [p0, p1, p2, p3] = &mut parts;
            let mut bodies = [&mut *p0.1, &mut *p1.1, &mut *p2.1, &mut *p3.1];
            let tags = self.seal_small::<NR, G, 4>(&m, &mut bodies);
            for (p, t) in parts.iter_mut().zip(&tags) {
                p.2.copy_from_slice(t);
            }
        }
    }

    simd_fn! {
        /// Opens a burst of ESP packets (see `EspCipher::open`), with the
        /// same multi-buffer path for runs of four short packets.
        pub(crate) fn open_esp<const NR: usize, const ESN: bool>(
            &self,
            salt: u32,
            jobs: &mut [super::super::OpenJob<'_>],
        ) {
            let mut i = 0;
            while i < jobs.len() {
                if let Some([a, b, c, d]) = jobs.get_mut(i..i + 4) {
                    let g = small_regs(a.esp.len().wrapping_sub(ESP_MIN));
                    let same = |j: &super::super::OpenJob<'_>| {
                        j.esp.len() >= ESP_MIN && small_regs(j.esp.len() - ESP_MIN) == g
                    };
                    if a.esp.len() >= ESP_MIN && g != 0 && same(b) && same(c) && same(d) {
                        let quad = [a, b, c, d];
                        match g {
                            1 => self.open4::<NR, ESN, 1>(salt, quad),
                            2 => self.open4::<NR, ESN, 2>(salt, quad),
                            3 => self.open4::<NR, ESN, 3>(salt, quad),
                            4 => self.open4::<NR, ESN, 4>(salt, quad),
                            _ => self.open4::<NR, ESN, 5>(salt, quad),
                        }
                        i += 4;
                        continue;
                    }
                }
                self.open_one::<NR, ESN>(salt, &mut jobs[i]);
                i += 1;
            }
        }
    }

    simd_fn! {
        /// Opens one ESP packet.
        pub(super) fn open_one<const NR: usize, const ESN: bool>(&self, salt: u32, job: &mut super::super::OpenJob<'_>) {
            let esp = &mut *job.esp;
            if esp.len() < ESP_MIN {
                job.ok = false;
                return;
            }
            let (m, body, tag) = esp_open_prep::<ESN>(salt, esp, job.seq);
            job.ok = self.open::<NR>(&m, body, &tag);
        }
    }

    simd_fn! {
        /// Opens four short ESP packets of `G` registers each.
        pub(super) fn open4<const NR: usize, const ESN: bool, const G: usize>(
            &self,
            salt: u32,
            jobs: [&mut super::super::OpenJob<'_>; 4],
        ) {
            let [j0, j1, j2, j3] = jobs;
            let (m0, b0, t0) = esp_open_prep::<ESN>(salt, &mut *j0.esp, j0.seq);
            let (m1, b1, t1) = esp_open_prep::<ESN>(salt, &mut *j1.esp, j1.seq);
            let (m2, b2, t2) = esp_open_prep::<ESN>(salt, &mut *j2.esp, j2.seq);
            let (m3, b3, t3) = esp_open_prep::<ESN>(salt, &mut *j3.esp, j3.seq);
            let ok = self.open_small::<NR, G, 4>(&[m0, m1, m2, m3], &mut [b0, b1, b2, b3], &[t0, t1, t2, t3]);
            j0.ok = ok[0];
            j1.ok = ok[1];
            j2.ok = ok[2];
            j3.ok = ok[3];
        }
    }
}
