//! ESP header and trailer (RFC 4303 §2).
//!
//! ```text
//! SPI(4) | Sequence(4) | IV | payload | padding 1,2,3.. | pad length(1) | next header(1) | ICV
//! ```

use super::{malformed, rd32, truncated, wr32, WireError};

/// SPI + sequence number.
pub const ESP_HEADER_LEN: usize = 8;

/// 1, 2, ..., 16 as a little-endian word (byte 0 = 1).
const PAD_WORD: u128 = 0x100f_0e0d_0c0b_0a09_0807_0605_0403_0201;

/// Per pad length 0..=16: (1, 2, ..., pl in the last pl bytes of a 16-byte
/// little-endian word, mask of those bytes).
const PAD_SHORT: [(u128, u128); 17] = {
    let mut t = [(0u128, 0u128); 17];
    let mut pl = 1;
    while pl <= 16 {
        let shift = 8 * (16 - pl) as u32;
        t[pl] = (PAD_WORD << shift, u128::MAX << shift);
        pl += 1;
    }
    t
};

/// Padding written by the sender and expected by the receiver: 1, 2, 3, ...
const PAD_PATTERN: [u8; 255] = {
    let mut p = [0u8; 255];
    let mut i = 0;
    while i < 255 {
        p[i] = (i + 1) as u8;
        i += 1;
    }
    p
};

/// Byte offsets of the header fields.
pub mod field {
    /// Security Parameter Index.
    pub const SPI: usize = 0;
    /// Sequence number (low 32 bits with ESN).
    pub const SEQ: usize = 4;
}

/// A view of an ESP packet (from the SPI to the end of the ICV).
#[derive(Debug, Clone)]
pub struct EspPacket<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> EspPacket<T> {
    /// Wraps `buf` after checking it holds SPI and sequence number.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let have = buf.as_ref().len();
        if have < ESP_HEADER_LEN {
            return Err(truncated("esp", ESP_HEADER_LEN, have));
        }
        Ok(EspPacket { buf })
    }
    /// Wraps `buf` without checking: the caller has checked that it holds
    /// the header (the accessors index it, as slice indexing does).
    #[inline]
    pub const fn new_unchecked(buf: T) -> Self {
        EspPacket { buf }
    }
    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }
    /// Security Parameter Index.
    pub fn spi(&self) -> u32 {
        rd32(self.buf.as_ref(), field::SPI)
    }
    /// Sequence number (low 32 bits with ESN).
    pub fn seq(&self) -> u32 {
        rd32(self.buf.as_ref(), field::SEQ)
    }
    /// Everything after the header: IV, ciphertext, ICV.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[ESP_HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EspPacket<T> {
    /// Sets the SPI.
    #[inline]
    pub fn set_spi(&mut self, spi: u32) {
        wr32(self.buf.as_mut(), field::SPI, spi);
    }
    /// Sets the (low 32 bits of the) sequence number.
    #[inline]
    pub fn set_seq(&mut self, seq: u32) {
        wr32(self.buf.as_mut(), field::SEQ, seq);
    }
    /// Everything after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[ESP_HEADER_LEN..]
    }
}

/// The decrypted ESP trailer: padding length and next header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EspTrailer {
    /// Pad length field.
    pub pad_len: u8,
    /// Next header field.
    pub next_header: u8,
    /// Length of the payload before the padding.
    pub payload_len: usize,
}

impl EspTrailer {
    /// Parses the trailer at the end of `plaintext` (payload, padding, pad
    /// length, next header) and checks that the padding is 1, 2, 3, ...
    /// (RFC 4303 §2.4).
    pub fn parse(plaintext: &[u8]) -> Result<EspTrailer, WireError> {
        let n = plaintext.len();
        if n < 2 {
            return Err(truncated("esp trailer", 2, n));
        }
        let pad_len = plaintext[n - 2];
        let next_header = plaintext[n - 1];
        let pl = usize::from(pad_len);
        if pl + 2 > n {
            return Err(malformed("esp trailer", "pad_len", pl as u64));
        }
        let payload_len = n - 2 - pl;
        // Padding of at most 16 bytes (every packet we send, and every
        // suite's usual padding): one 16-byte load ending at the pad length
        // field, compared under a mask with 1, 2, ..., pl in its last pl
        // bytes (both from a table: no 128-bit shift). Longer padding: a fold over two slices rather than
        // a slice compare (which calls memcmp for a few bytes).
        let body = &plaintext[..n - 2];
        let bad = match (body.last_chunk::<16>(), PAD_SHORT.get(pl)) {
            (Some(w), Some(&(want, mask))) => (u128::from_le_bytes(*w) ^ want) & mask != 0,
            _ => {
                body[payload_len..]
                    .iter()
                    .zip(&PAD_PATTERN[..pl])
                    .fold(0u8, |acc, (&b, &want)| acc | (b ^ want))
                    != 0
            }
        };
        if bad {
            return Err(malformed("esp trailer", "padding", pl as u64));
        }
        Ok(EspTrailer {
            pad_len,
            next_header,
            payload_len,
        })
    }

    /// Pad length that makes `payload_len + pad + 2` a multiple of `align`
    /// (a power of two, at least 4).
    #[inline]
    pub const fn pad_len_for(payload_len: usize, align: usize) -> usize {
        (align - ((payload_len + 2) & (align - 1))) & (align - 1)
    }

    /// Writes padding 1..=pad_len, the pad length and next header into `tail`,
    /// which must be exactly `pad_len + 2` bytes long (else returns an error).
    pub fn write(tail: &mut [u8], next_header: u8) -> Result<(), WireError> {
        let n = tail.len();
        if !(2..=257).contains(&n) {
            return Err(malformed("esp trailer", "length", n as u64));
        }
        let pl = n - 2;
        // A loop rather than copy_from_slice (a memcpy call for a few bytes).
        for (b, v) in tail[..pl].iter_mut().zip(&PAD_PATTERN[..pl]) {
            *b = *v;
        }
        tail[pl] = pl as u8;
        tail[pl + 1] = next_header;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        let mut b = [0u8; 12];
        let mut e = EspPacket::new_checked(&mut b[..]).unwrap();
        e.set_spi(0x1001);
        e.set_seq(7);
        let e = EspPacket::new_checked(&b[..]).unwrap();
        assert_eq!((e.spi(), e.seq(), e.payload().len()), (0x1001, 7, 4));
        assert!(EspPacket::new_checked(&b[..7]).is_err());
    }

    #[test]
    fn trailer_write_parse_round_trip_and_bad_padding() {
        for payload in 0..40usize {
            for align in [4usize, 8, 16] {
                let pl = EspTrailer::pad_len_for(payload, align);
                assert_eq!((payload + pl + 2) % align, 0);
                assert!(pl < align);
                let mut v = vec![0xaau8; payload + pl + 2];
                EspTrailer::write(&mut v[payload..], 4).unwrap();
                let t = EspTrailer::parse(&v).unwrap();
                assert_eq!(
                    t,
                    EspTrailer {
                        pad_len: pl as u8,
                        next_header: 4,
                        payload_len: payload
                    }
                );
                if pl > 0 {
                    v[payload] ^= 0x80;
                    assert!(matches!(
                        EspTrailer::parse(&v),
                        Err(WireError::Malformed {
                            field: "padding",
                            ..
                        })
                    ));
                }
            }
        }
        assert!(matches!(
            EspTrailer::parse(&[5, 4]),
            Err(WireError::Malformed {
                field: "pad_len",
                value: 5,
                ..
            })
        ));
        assert!(EspTrailer::parse(&[1]).is_err());
    }

    /// The word compare (padding up to 16 bytes with 16 bytes before the
    /// pad length) and the byte fold agree: every pad length 0..=40 and
    /// payload 0..=20, good padding accepted, any one byte of the padding
    /// changed (any bit) refused, payload bytes never looked at.
    #[test]
    fn padding_check_every_length_and_every_corrupted_byte() {
        for pl in 0..=40usize {
            for payload in 0..=20usize {
                let mut v = vec![0u8; payload + pl + 2];
                for (i, b) in v[..payload].iter_mut().enumerate() {
                    *b = (i * 37 + 11) as u8;
                }
                for (i, b) in v[payload..payload + pl].iter_mut().enumerate() {
                    *b = (i + 1) as u8;
                }
                v[payload + pl] = pl as u8;
                v[payload + pl + 1] = 41;
                let t = EspTrailer::parse(&v).unwrap();
                assert_eq!((t.payload_len, t.pad_len), (payload, pl as u8));
                for k in 0..pl {
                    for bit in 0..8 {
                        let mut w = v.clone();
                        w[payload + k] ^= 1 << bit;
                        assert!(
                            EspTrailer::parse(&w).is_err(),
                            "pad {pl} payload {payload} byte {k} bit {bit}"
                        );
                    }
                }
                for k in 0..payload {
                    let mut w = v.clone();
                    w[k] ^= 0xff;
                    assert!(EspTrailer::parse(&w).is_ok());
                }
            }
        }
    }
}
