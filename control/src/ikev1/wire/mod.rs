//! ISAKMP (RFC 2408) messages as used by IKEv1 (RFC 2409) in the IPsec DOI
//! (RFC 2407): the header, the payload chain and a view of every payload
//! (SA/proposal/transform with basic and variable attributes, KE, ID, HASH,
//! SIG, CERT, CERTREQ, Nonce, Notification, Delete, Vendor ID, NAT-D and
//! NAT-OA of RFC 3947 and its drafts). Parsing borrows from the datagram;
//! every malformed field is a [`ParseError`] naming it, never a panic.
//! [`PayloadWriter`] builds payload chains.

use std::net::IpAddr;

mod attrs;
mod bytes;
mod codes;
mod id;
mod info;
mod sa;

pub use attrs::*;
pub use codes::*;
pub use id::*;
pub use info::*;
pub use sa::*;

use crate::ike::error::ParseError;
use bytes::*;

/// The major version of an IKE datagram (1 or 2), for dispatching to the
/// IKEv1 or the IKEv2 engine; None when it is too short to tell.
pub fn major_version(msg: &[u8]) -> Option<u8> {
    msg.get(17).map(|v| v >> 4)
}

/// View of the ISAKMP header.
#[derive(Clone, Copy, Debug)]
pub struct Header<'a> {
    b: &'a [u8],
}

impl<'a> Header<'a> {
    /// Checks a whole message's header: 28 bytes, version 1.x, a length
    /// field equal to the datagram length, a non-zero initiator cookie.
    pub fn parse(msg: &'a [u8]) -> Result<Self, ParseError> {
        need("ISAKMP header", msg, HEADER_LEN)?;
        let h = Header { b: msg };
        if h.version() >> 4 != 1 {
            return Err(ParseError::Version(h.version() >> 4));
        }
        let len = h.length() as usize;
        if len != msg.len() {
            return Err(ParseError::BadLength {
                what: "ISAKMP header length",
                value: len,
                available: msg.len(),
            });
        }
        if h.icookie() == 0 {
            return Err(bad("initiator cookie", 0));
        }
        Ok(h)
    }
    /// Initiator cookie.
    pub fn icookie(&self) -> u64 {
        be64(self.b, 0)
    }
    /// Responder cookie.
    pub fn rcookie(&self) -> u64 {
        be64(self.b, 8)
    }
    /// First payload type.
    pub fn next_payload(&self) -> u8 {
        self.b[16]
    }
    /// Version byte.
    pub fn version(&self) -> u8 {
        self.b[17]
    }
    /// Exchange type.
    pub fn exchange(&self) -> u8 {
        self.b[18]
    }
    /// Flags.
    pub fn flags(&self) -> u8 {
        self.b[19]
    }
    /// Encrypted after the header.
    pub fn encrypted(&self) -> bool {
        self.flags() & flags::ENCRYPTION != 0
    }
    /// Commit bit.
    pub fn commit(&self) -> bool {
        self.flags() & flags::COMMIT != 0
    }
    /// Message ID.
    pub fn message_id(&self) -> u32 {
        be32(self.b, 20)
    }
    /// Length field.
    pub fn length(&self) -> u32 {
        be32(self.b, 24)
    }
    /// The whole message.
    pub fn bytes(&self) -> &'a [u8] {
        self.b
    }
}

/// Writes an ISAKMP header (length filled by [`finish_length`]).
pub fn write_header(out: &mut Vec<u8>, ic: u64, rc: u64, next: u8, exch: u8, fl: u8, mid: u32) {
    out.extend_from_slice(&ic.to_be_bytes());
    out.extend_from_slice(&rc.to_be_bytes());
    out.push(next);
    out.push(VERSION);
    out.push(exch);
    out.push(fl);
    out.extend_from_slice(&mid.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
}

/// Sets the header's length field to the message length.
pub fn finish_length(out: &mut [u8]) {
    let n = out.len() as u32;
    out[24..28].copy_from_slice(&n.to_be_bytes());
}

// ------------------------------------------------------- payload chain

/// Every payload of a message, by type.
#[derive(Clone, Debug, Default)]
pub struct Payloads<'a> {
    /// The SA payload.
    pub sa: Option<SaView<'a>>,
    /// KE data.
    pub ke: Option<&'a [u8]>,
    /// ID payloads in order (phase 1: one; quick mode: IDci, IDcr).
    pub ids: Vec<IdView<'a>>,
    /// CERT payloads.
    pub certs: Vec<CertView<'a>>,
    /// CERTREQ payloads.
    pub certreqs: Vec<CertView<'a>>,
    /// HASH data.
    pub hash: Option<&'a [u8]>,
    /// Offset just after the HASH payload in the chain (start of "the
    /// message after the HASH payload").
    pub after_hash: usize,
    /// The HASH payload came first.
    pub hash_first: bool,
    /// SIG data.
    pub sig: Option<&'a [u8]>,
    /// Nonce data.
    pub nonce: Option<&'a [u8]>,
    /// Notifications.
    pub notifies: Vec<NotifyView<'a>>,
    /// Deletes.
    pub deletes: Vec<DeleteView<'a>>,
    /// Vendor IDs.
    pub vendor_ids: Vec<&'a [u8]>,
    /// NAT-D hashes (RFC and draft types), in order.
    pub nat_d: Vec<&'a [u8]>,
    /// NAT-OA payloads.
    pub nat_oa: Vec<NatOa>,
    /// Types of payloads we do not handle (mode config, fragments, ...).
    pub unknown: Vec<u8>,
    /// End of the payload chain (padding after it is ignored).
    pub end: usize,
}

impl<'a> Payloads<'a> {
    /// Walks a payload chain starting with type `first`. Bytes after the last
    /// payload (encryption padding) are allowed and reported as `end`.
    pub fn parse(b: &'a [u8], first: u8) -> Result<Self, ParseError> {
        let mut p = Payloads::default();
        let mut next = first;
        let mut at = 0usize;
        let mut n = 0usize;
        while next != payload::NONE {
            n += 1;
            if n > MAX_PAYLOADS {
                return Err(ParseError::TooManyPayloads(MAX_PAYLOADS));
            }
            let rest = &b[at..];
            need("payload header", rest, GENERIC_LEN)?;
            let np = rest[0];
            if rest[1] != 0 {
                return Err(bad("payload reserved byte", u64::from(rest[1])));
            }
            let len = be16(rest, 2) as usize;
            if len < GENERIC_LEN || len > rest.len() {
                return Err(ParseError::BadLength {
                    what: "payload length",
                    value: len,
                    available: rest.len(),
                });
            }
            let body = &rest[GENERIC_LEN..len];
            match next {
                payload::SA => {
                    if p.sa.is_some() {
                        return Err(ParseError::Duplicate(next));
                    }
                    need("SA payload", body, 8)?;
                    p.sa = Some(SaView { body });
                }
                payload::KE => {
                    if p.ke.is_some() {
                        return Err(ParseError::Duplicate(next));
                    }
                    if body.is_empty() {
                        return Err(bad("KE length", 0));
                    }
                    p.ke = Some(body);
                }
                payload::ID => {
                    if p.ids.len() >= 2 {
                        return Err(ParseError::Duplicate(next));
                    }
                    p.ids.push(IdView::parse(body)?);
                }
                payload::CERT => p.certs.push(CertView::parse(body)?),
                payload::CERTREQ => p.certreqs.push(CertView::parse(body)?),
                payload::HASH => {
                    if p.hash.is_some() {
                        return Err(ParseError::Duplicate(next));
                    }
                    p.hash = Some(body);
                    p.hash_first = n == 1;
                    p.after_hash = at + len;
                }
                payload::SIG => {
                    if p.sig.is_some() {
                        return Err(ParseError::Duplicate(next));
                    }
                    p.sig = Some(body);
                }
                payload::NONCE => {
                    if p.nonce.is_some() {
                        return Err(ParseError::Duplicate(next));
                    }
                    // RFC 2409 §5: 8..256 bytes
                    if body.len() < 8 || body.len() > 256 {
                        return Err(bad("nonce length", body.len() as u64));
                    }
                    p.nonce = Some(body);
                }
                payload::NOTIFY => p.notifies.push(NotifyView::parse(body)?),
                payload::DELETE => p.deletes.push(DeleteView::parse(body)?),
                payload::VENDOR => p.vendor_ids.push(body),
                payload::NAT_D | payload::NAT_D_DRAFT => p.nat_d.push(body),
                payload::NAT_OA | payload::NAT_OA_DRAFT => p.nat_oa.push(NatOa::parse(body)?),
                payload::PROPOSAL | payload::TRANSFORM => {
                    return Err(bad("payload type outside an SA", u64::from(next)))
                }
                t => p.unknown.push(t),
            }
            at += len;
            next = np;
        }
        p.end = at;
        Ok(p)
    }

    /// The first notification of a type.
    pub fn notify(&self, t: u16) -> Option<&NotifyView<'a>> {
        self.notifies.iter().find(|n| n.ntype == t)
    }
    /// The first error notification's type.
    pub fn error_notify(&self) -> Option<u16> {
        self.notifies
            .iter()
            .map(|n| n.ntype)
            .find(|t| notify::is_error(*t))
    }
    /// Vendor IDs we recognise.
    pub fn known_vids(&self) -> Vec<vid::Known> {
        self.vendor_ids
            .iter()
            .filter_map(|v| vid::classify(v))
            .collect()
    }
}

/// Builds a payload chain; each push links the previous payload to it.
#[derive(Clone, Debug, Default)]
pub struct PayloadWriter {
    /// The chain.
    pub buf: Vec<u8>,
    first: u8,
    last_at: Option<usize>,
}

impl PayloadWriter {
    /// An empty chain.
    pub fn new() -> Self {
        Self::default()
    }
    /// Type of the first payload (NONE if empty).
    pub fn first(&self) -> u8 {
        self.first
    }
    /// Appends a payload of type `t` with body `body`.
    pub fn push(&mut self, t: u8, body: &[u8]) {
        match self.last_at {
            Some(at) => self.buf[at] = t,
            None => self.first = t,
        }
        self.last_at = Some(self.buf.len());
        self.buf.push(payload::NONE);
        self.buf.push(0);
        self.buf
            .extend_from_slice(&((body.len() + GENERIC_LEN) as u16).to_be_bytes());
        self.buf.extend_from_slice(body);
    }
    /// Appends the payloads of another chain.
    pub fn append(&mut self, other: &PayloadWriter) {
        if other.buf.is_empty() {
            return;
        }
        match self.last_at {
            Some(at) => self.buf[at] = other.first,
            None => self.first = other.first,
        }
        let base = self.buf.len();
        self.buf.extend_from_slice(&other.buf);
        self.last_at = other.last_at.map(|a| a + base);
    }
    /// A notification.
    pub fn notify(&mut self, protocol: u8, spi: &[u8], t: u16, data: &[u8]) {
        let mut b = Vec::with_capacity(8 + spi.len() + data.len());
        b.extend_from_slice(&DOI_IPSEC.to_be_bytes());
        b.push(protocol);
        b.push(spi.len() as u8);
        b.extend_from_slice(&t.to_be_bytes());
        b.extend_from_slice(spi);
        b.extend_from_slice(data);
        self.push(payload::NOTIFY, &b);
    }
    /// A delete of ESP SPIs.
    pub fn delete_esp(&mut self, spis: &[u32]) {
        let mut b = Vec::with_capacity(8 + 4 * spis.len());
        b.extend_from_slice(&DOI_IPSEC.to_be_bytes());
        b.push(proto::ESP);
        b.push(4);
        b.extend_from_slice(&(spis.len() as u16).to_be_bytes());
        for s in spis {
            b.extend_from_slice(&s.to_be_bytes());
        }
        self.push(payload::DELETE, &b);
    }
    /// A delete of an ISAKMP SA.
    pub fn delete_isakmp(&mut self, ic: u64, rc: u64) {
        let mut b = Vec::with_capacity(24);
        b.extend_from_slice(&DOI_IPSEC.to_be_bytes());
        b.push(proto::ISAKMP);
        b.push(16);
        b.extend_from_slice(&1u16.to_be_bytes());
        b.extend_from_slice(&ic.to_be_bytes());
        b.extend_from_slice(&rc.to_be_bytes());
        self.push(payload::DELETE, &b);
    }
    /// A NAT-OA payload.
    pub fn nat_oa(&mut self, t: u8, addr: IpAddr) {
        let mut b = vec![0u8; 4];
        match addr {
            IpAddr::V4(a) => {
                b[0] = id_type::IPV4_ADDR;
                b.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                b[0] = id_type::IPV6_ADDR;
                b.extend_from_slice(&a.octets());
            }
        }
        self.push(t, &b);
    }
}

/// A whole message in the clear.
pub fn build_plain(ic: u64, rc: u64, exch: u8, fl: u8, mid: u32, pw: &PayloadWriter) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + pw.buf.len());
    write_header(&mut out, ic, rc, pw.first(), exch, fl, mid);
    out.extend_from_slice(&pw.buf);
    finish_length(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::wire::TsEntry;

    #[test]
    fn chain_round_trip() {
        let mut pw = PayloadWriter::new();
        pw.push(payload::HASH, &[1; 20]);
        let sa = sa_body(&[(
            1,
            proto::ESP,
            vec![0, 0, 1, 0],
            vec![(esp_id::AES_CBC, {
                let mut a = Vec::new();
                attr_basic(&mut a, p2attr::KEY_LENGTH, 128);
                attr_int(&mut a, p2attr::LIFE_DURATION, 100_000);
                a
            })],
        )]);
        pw.push(payload::SA, &sa);
        pw.push(payload::NONCE, &[7; 16]);
        pw.notify(
            proto::ESP,
            &[0, 0, 1, 0],
            notify::RESPONDER_LIFETIME,
            &[1, 2],
        );
        pw.delete_esp(&[0x1234, 0x5678]);
        pw.delete_isakmp(1, 2);
        let m = build_plain(9, 0, exchange::QUICK, 0, 5, &pw);
        let h = Header::parse(&m).unwrap();
        assert_eq!(h.message_id(), 5);
        let p = Payloads::parse(&m[HEADER_LEN..], h.next_payload()).unwrap();
        assert!(p.hash_first);
        assert_eq!(p.after_hash, 24);
        let props = p.sa.unwrap().proposals().unwrap();
        assert_eq!(props[0].transforms[0].id, esp_id::AES_CBC);
        assert_eq!(
            props[0].transforms[0].attrs[1].value.as_u64(),
            Some(100_000)
        );
        assert_eq!(p.nonce.unwrap(), &[7; 16]);
        assert_eq!(p.notifies[0].spi32(), Some(0x100));
        assert_eq!(
            p.deletes[0].spis32().collect::<Vec<_>>(),
            vec![0x1234, 0x5678]
        );
        assert_eq!(p.deletes[1].cookies().collect::<Vec<_>>(), vec![(1, 2)]);
        assert_eq!(p.end, m.len() - HEADER_LEN);
    }

    /// strongSwan 5.9.8 writes an ESP proposal whose algorithm has no IKEv1
    /// transform ID (ChaCha20-Poly1305) as a proposal without transforms;
    /// such an SA payload is read (it offers nothing), not refused as
    /// malformed (BAD_PROPOSAL_SYNTAX before), and a second proposal after
    /// it is still read.
    #[test]
    fn proposal_without_transforms_is_read() {
        let sa = sa_body(&[
            (1, proto::ESP, vec![0xc0, 0, 0, 1], vec![]),
            (
                2,
                proto::ESP,
                vec![0xc0, 0, 0, 2],
                vec![(esp_id::AES_GCM_16, vec![])],
            ),
        ]);
        let props = SaView { body: &sa }.proposals().unwrap();
        assert_eq!(props.len(), 2);
        assert!(props[0].transforms.is_empty());
        assert_eq!(props[0].spi, &[0xc0, 0, 0, 1]);
        assert_eq!(props[1].transforms[0].id, esp_id::AES_GCM_16);
    }

    #[test]
    fn ids_and_selectors() {
        for s in [
            "10.1.0.0/24",
            "10.1.0.7/32",
            "fd00::/64",
            "fd00::1/128",
            "0.0.0.0/0",
        ] {
            let n: ipnet::IpNet = s.parse().unwrap();
            let t = crate::ike::ts::from_net(&n);
            let b = ts_body(&t);
            assert_eq!(IdView::parse(&b).unwrap().ts().unwrap(), t, "{s}");
        }
        let t = TsEntry {
            proto: 17,
            start_port: 500,
            end_port: 500,
            start: "10.0.0.3".parse().unwrap(),
            end: "10.0.0.9".parse().unwrap(),
        };
        let b = ts_body(&t);
        assert_eq!(b[0], id_type::IPV4_ADDR_RANGE);
        assert_eq!(IdView::parse(&b).unwrap().ts().unwrap(), t);
        // a mask with holes is refused
        let b = [4, 0, 0, 0, 10, 0, 0, 0, 255, 0, 255, 0];
        assert!(IdView::parse(&b).unwrap().ts().is_err());
        for id in ["@gw.example", "user@example.net", "192.0.2.1", "@#0102"] {
            let i: crate::ike::Identity = id.parse().unwrap();
            assert_eq!(
                IdView::parse(&identity_body(&i)).unwrap().identity(),
                Some(i)
            );
        }
    }

    #[test]
    fn malformed_is_an_error() {
        assert!(Header::parse(&[0u8; 10]).is_err());
        let mut pw = PayloadWriter::new();
        pw.push(payload::NONCE, &[1; 16]);
        let mut m = build_plain(1, 0, exchange::MAIN, 0, 0, &pw);
        m[HEADER_LEN + 3] = 200; // payload length past the end
        let h = Header::parse(&m).unwrap();
        assert!(matches!(
            Payloads::parse(&m[HEADER_LEN..], h.next_payload()),
            Err(ParseError::BadLength { .. })
        ));
        // version 2 is not ours
        let mut m2 = build_plain(1, 0, exchange::MAIN, 0, 0, &pw);
        m2[17] = 0x20;
        assert_eq!(Header::parse(&m2).unwrap_err(), ParseError::Version(2));
        assert_eq!(major_version(&m2), Some(2));
    }
}
