//! IKE fragmentation (RFC 7383): protected messages larger than the path
//! allows are sent as Encrypted Fragment (SKF) payloads, each fragment
//! encrypted and integrity-protected on its own; received fragments are
//! checked one by one before they are kept, and reassembled within limits
//! (fragments per message, total size, time), duplicates ignored.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::RngCore;
use zeroize::Zeroizing;

use super::crypto::{Secret, SkCipher};
use super::wire::{payload, HEADER_LEN};

/// Fragment Number and Total Fragments of an SKF payload body.
pub fn skf_numbers(body: &[u8]) -> Option<(u16, u16)> {
    (body.len() >= 4).then(|| {
        (
            u16::from_be_bytes([body[0], body[1]]),
            u16::from_be_bytes([body[2], body[3]]),
        )
    })
}

/// The largest IKE message (without the non-ESP marker) that fits a
/// datagram of `fragment_size` bytes to `remote` (IP and UDP headers, and
/// the 4-byte marker on the NAT-T port).
pub fn max_message_len(fragment_size: usize, remote: SocketAddr, natt: bool) -> usize {
    let ip = if remote.is_ipv4() { 20 } else { 40 };
    fragment_size.saturating_sub(ip + 8 + if natt { 4 } else { 0 })
}

/// Seals `inner` (whose first payload is `first_inner`) as fragments of at
/// most `max_len` bytes each. `hdr` = (SPIi, SPIr, exchange, flags, message ID).
#[allow(clippy::too_many_arguments)]
pub fn seal_fragments(
    c: &SkCipher,
    hdr: (u64, u64, u8, u8, u32),
    first_inner: u8,
    inner: &[u8],
    max_len: usize,
    iv_counter: &mut u64,
    rng: &mut dyn RngCore,
) -> Vec<Vec<u8>> {
    let room = max_len
        .saturating_sub(HEADER_LEN + 4 + c.overhead())
        .max(64);
    let chunks: Vec<&[u8]> = inner.chunks(room).collect();
    let total = chunks.len().min(usize::from(u16::MAX)) as u16;
    chunks
        .iter()
        .take(usize::from(total))
        .enumerate()
        .map(|(i, chunk)| {
            let n = (i + 1) as u16;
            let mut extra = [0u8; 4];
            extra[..2].copy_from_slice(&n.to_be_bytes());
            extra[2..].copy_from_slice(&total.to_be_bytes());
            *iv_counter += 1;
            c.seal_with(
                payload::SKF,
                &extra,
                hdr,
                if n == 1 { first_inner } else { 0 },
                chunk,
                *iv_counter,
                rng,
            )
        })
        .collect()
}

/// Why a fragment was not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragReject {
    /// Fragment number 0, above the total, or a total of 0.
    Malformed,
    /// More fragments or bytes than the limits allow.
    TooLarge,
    /// The same fragment again (a retransmission).
    Duplicate,
}

/// The fragments of one message received so far.
pub struct Reassembly {
    /// Message ID.
    pub msg_id: u32,
    /// A response (else a request).
    pub response: bool,
    total: u16,
    first: u8,
    parts: Vec<Option<Secret>>,
    have: u16,
    bytes: usize,
    started: Instant,
}

impl std::fmt::Debug for Reassembly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Reassembly(msg {}, {}/{} fragments, {} bytes)",
            self.msg_id, self.have, self.total, self.bytes
        )
    }
}

/// Limits of a reassembly.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Fragments per message.
    pub max_fragments: u16,
    /// Bytes per message (decrypted).
    pub max_bytes: usize,
    /// Age after which an incomplete message is dropped.
    pub timeout: Duration,
}

impl Reassembly {
    /// Starts collecting message `msg_id` of `total` fragments.
    pub fn new(msg_id: u32, response: bool, total: u16, now: Instant) -> Self {
        Reassembly {
            msg_id,
            response,
            total,
            first: 0,
            parts: (0..total).map(|_| None).collect(),
            have: 0,
            bytes: 0,
            started: now,
        }
    }

    /// Is this the collection for that message, still fresh?
    pub fn fits(&self, msg_id: u32, response: bool, total: u16, now: Instant, l: &Limits) -> bool {
        self.msg_id == msg_id
            && self.response == response
            && self.total == total
            && now.duration_since(self.started) <= l.timeout
    }

    /// Checks a fragment's numbers against the limits before it is decrypted.
    pub fn check_numbers(num: u16, total: u16, l: &Limits) -> Result<(), FragReject> {
        if total == 0 || num == 0 || num > total {
            return Err(FragReject::Malformed);
        }
        if total > l.max_fragments {
            return Err(FragReject::TooLarge);
        }
        Ok(())
    }

    /// Adds fragment `num` (already decrypted and verified). Returns the whole
    /// message's first payload type and plaintext when the last one arrived.
    pub fn add(
        &mut self,
        num: u16,
        next: u8,
        plain: Secret,
        l: &Limits,
    ) -> Result<Option<(u8, Secret)>, FragReject> {
        let i = usize::from(num) - 1;
        let Some(slot) = self.parts.get_mut(i) else {
            return Err(FragReject::Malformed);
        };
        if slot.is_some() {
            return Err(FragReject::Duplicate);
        }
        if self.bytes + plain.len() > l.max_bytes {
            return Err(FragReject::TooLarge);
        }
        if num == 1 {
            self.first = next;
        }
        self.bytes += plain.len();
        *slot = Some(plain);
        self.have += 1;
        if self.have < self.total {
            return Ok(None);
        }
        let mut all = Zeroizing::new(Vec::with_capacity(self.bytes));
        for p in self.parts.iter_mut() {
            if let Some(p) = p.take() {
                all.extend_from_slice(&p);
            }
        }
        Ok(Some((self.first, all)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::proposal::{DhGroup, IkeEncr, IkeInteg, IkeSuite, PrfAlg};
    use crate::ike::wire::{Header, Payloads};
    use espresso_core::key::Key;
    use rand::SeedableRng;

    fn limits() -> Limits {
        Limits {
            max_fragments: 64,
            max_bytes: 65536,
            timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn fragments_fit_and_reassemble() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for (encr, integ) in [
            (IkeEncr::AesGcm128, None),
            (IkeEncr::AesCbc256, Some(IkeInteg::HmacSha256_128)),
        ] {
            let suite = IkeSuite {
                encr,
                integ,
                prf: PrfAlg::HmacSha256,
                dh: DhGroup::Ecp256,
            };
            let ek = Key::new(vec![7; encr.key_len()]);
            let ak = Key::new(vec![9; integ.map_or(0, |i| i.key_len())]);
            let c = SkCipher::new(&suite, &ek, &ak).unwrap();
            let inner: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
            let remote: SocketAddr = "[2001:db8::2]:4500".parse().unwrap();
            let max = max_message_len(1280, remote, true);
            assert_eq!(max, 1280 - 40 - 8 - 4);
            let mut iv = 0;
            let frags = seal_fragments(&c, (1, 2, 35, 0x08, 1), 37, &inner, max, &mut iv, &mut rng);
            assert!(frags.len() >= 5, "{}", frags.len());
            let now = Instant::now();
            let mut r = None::<Reassembly>;
            let mut out = None;
            // deliver in reverse order, with a duplicate
            let mut order: Vec<usize> = (0..frags.len()).rev().collect();
            order.insert(1, order[0]);
            for i in order {
                let f = &frags[i];
                assert!(f.len() <= max, "fragment {} bytes > {max}", f.len());
                let h = Header::parse(f).unwrap();
                assert_eq!(h.next_payload(), payload::SKF);
                let p = Payloads::parse(&f[HEADER_LEN..], h.next_payload(), HEADER_LEN).unwrap();
                let (next, at, body) = p.skf.unwrap();
                let (num, total) = skf_numbers(body).unwrap();
                Reassembly::check_numbers(num, total, &limits()).unwrap();
                let plain = c.open_with(f, at, 4).unwrap();
                // every fragment's own integrity
                let mut bad = f.clone();
                let last = bad.len() - 1;
                bad[last] ^= 1;
                assert!(c.open_with(&bad, at, 4).is_err());
                let mut renum = f.clone();
                renum[at + 5] ^= 1; // fragment number is authenticated
                assert!(c.open_with(&renum, at, 4).is_err());
                let ra = r.get_or_insert_with(|| Reassembly::new(1, false, total, now));
                match ra.add(num, next, plain, &limits()) {
                    Ok(Some(x)) => out = Some(x),
                    Ok(None) => {}
                    Err(FragReject::Duplicate) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
            let (first, plain) = out.unwrap();
            assert_eq!(first, 37);
            assert_eq!(&plain[..], &inner[..]);
        }
    }

    #[test]
    fn limits_hold() {
        let l = Limits {
            max_fragments: 4,
            max_bytes: 100,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(
            Reassembly::check_numbers(0, 3, &l),
            Err(FragReject::Malformed)
        );
        assert_eq!(
            Reassembly::check_numbers(4, 3, &l),
            Err(FragReject::Malformed)
        );
        assert_eq!(
            Reassembly::check_numbers(1, 0, &l),
            Err(FragReject::Malformed)
        );
        assert_eq!(
            Reassembly::check_numbers(1, 5, &l),
            Err(FragReject::TooLarge)
        );
        let now = Instant::now();
        let mut r = Reassembly::new(3, false, 3, now);
        assert!(r
            .add(1, 41, Zeroizing::new(vec![0; 60]), &l)
            .unwrap()
            .is_none());
        assert_eq!(
            r.add(2, 0, Zeroizing::new(vec![0; 60]), &l),
            Err(FragReject::TooLarge)
        );
        assert!(r.fits(3, false, 3, now, &l));
        assert!(!r.fits(3, false, 3, now + Duration::from_secs(2), &l));
        assert!(!r.fits(4, false, 3, now, &l));
    }
}
