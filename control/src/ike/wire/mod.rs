//! Zero-copy typed views over IKEv2 messages (RFC 7296 §3) and builders that
//! write them. Every length is checked against the bytes that are really
//! there; a malformed message gives a [`ParseError`] naming the field.

use std::net::IpAddr;

mod bytes;
mod codes;
mod views;

pub use codes::*;
pub use views::*;

use bytes::{be16, be32, be64, need};

use super::error::ParseError;

/// View of the fixed IKE header.
#[derive(Clone, Copy, Debug)]
pub struct Header<'a> {
    b: &'a [u8],
}

impl<'a> Header<'a> {
    /// Checks the header of a whole message: at least 28 bytes, version 2.x,
    /// and a length field equal to the datagram length.
    pub fn parse(msg: &'a [u8]) -> Result<Self, ParseError> {
        need("IKE header", msg, HEADER_LEN)?;
        let h = Header { b: msg };
        if h.version() >> 4 != 2 {
            return Err(ParseError::Version(h.version() >> 4));
        }
        let len = h.length() as usize;
        if len != msg.len() {
            return Err(ParseError::BadLength {
                what: "IKE header length",
                value: len,
                available: msg.len(),
            });
        }
        Ok(h)
    }
    /// Initiator's SPI.
    pub fn spi_i(&self) -> u64 {
        be64(self.b, 0)
    }
    /// Responder's SPI.
    pub fn spi_r(&self) -> u64 {
        be64(self.b, 8)
    }
    /// First payload type.
    pub fn next_payload(&self) -> u8 {
        self.b[16]
    }
    /// Version byte (major << 4 | minor).
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
    /// Message from the original initiator.
    pub fn is_initiator(&self) -> bool {
        self.flags() & flags::INITIATOR != 0
    }
    /// Message is a response.
    pub fn is_response(&self) -> bool {
        self.flags() & flags::RESPONSE != 0
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

/// One payload as found in the chain: type, critical bit, body (after the generic header).
#[derive(Clone, Copy, Debug)]
pub struct RawPayload<'a> {
    /// Payload type.
    pub ptype: u8,
    /// Critical bit.
    pub critical: bool,
    /// Next payload type field (for SK: the first inner payload).
    pub next: u8,
    /// Body.
    pub body: &'a [u8],
    /// Offset of the generic header within the buffer iterated.
    pub offset: usize,
}

/// Iterates over a payload chain.
pub struct PayloadIter<'a> {
    buf: &'a [u8],
    pos: usize,
    next: u8,
    count: usize,
    failed: bool,
}

impl<'a> PayloadIter<'a> {
    /// Walks `buf` starting with payload type `first`.
    pub fn new(buf: &'a [u8], first: u8) -> Self {
        PayloadIter {
            buf,
            pos: 0,
            next: first,
            count: 0,
            failed: false,
        }
    }
}

impl<'a> Iterator for PayloadIter<'a> {
    type Item = Result<RawPayload<'a>, ParseError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.next == payload::NONE {
            if self.pos != self.buf.len() {
                self.failed = true;
                return Some(Err(ParseError::BadLength {
                    what: "payload chain (bytes after last payload)",
                    value: self.pos,
                    available: self.buf.len(),
                }));
            }
            return None;
        }
        let rest = &self.buf[self.pos..];
        if let Err(e) = need("generic payload header", rest, GENERIC_LEN) {
            self.failed = true;
            return Some(Err(e));
        }
        let len = be16(rest, 2) as usize;
        if len < GENERIC_LEN || len > rest.len() {
            self.failed = true;
            return Some(Err(ParseError::BadLength {
                what: "payload length",
                value: len,
                available: rest.len(),
            }));
        }
        self.count += 1;
        if self.count > MAX_PAYLOADS {
            self.failed = true;
            return Some(Err(ParseError::TooManyPayloads(MAX_PAYLOADS)));
        }
        let p = RawPayload {
            ptype: self.next,
            critical: rest[1] & 0x80 != 0,
            next: rest[0],
            body: &rest[GENERIC_LEN..len],
            offset: self.pos,
        };
        self.pos += len;
        if p.ptype == payload::SK || p.ptype == payload::SKF {
            // The SK payload's "next" names the first inner payload; it must be last.
            if self.pos != self.buf.len() {
                self.failed = true;
                return Some(Err(ParseError::SkNotLast));
            }
            self.next = payload::NONE;
        } else {
            self.next = p.next;
        }
        Some(Ok(p))
    }
}

/// The payloads of one message (or of the inside of its SK payload), sorted by kind.
/// Bodies borrow from the message (or from the decrypted plaintext).
#[derive(Clone, Debug, Default)]
pub struct Payloads<'a> {
    /// SA payload.
    pub sa: Option<SaView<'a>>,
    /// KE payload.
    pub ke: Option<KeView<'a>>,
    /// Nonce.
    pub nonce: Option<&'a [u8]>,
    /// IDi.
    pub idi: Option<IdView<'a>>,
    /// IDr.
    pub idr: Option<IdView<'a>>,
    /// AUTH.
    pub auth: Option<AuthView<'a>>,
    /// Notifies in order.
    pub notifies: Vec<NotifyView<'a>>,
    /// Deletes in order.
    pub deletes: Vec<DeleteView<'a>>,
    /// TSi.
    pub tsi: Option<Vec<TsEntry>>,
    /// TSr.
    pub tsr: Option<Vec<TsEntry>>,
    /// Vendor IDs.
    pub vendors: Vec<&'a [u8]>,
    /// Encrypted payload: (first inner payload type, offset of its generic header in
    /// the message, body).
    pub sk: Option<(u8, usize, &'a [u8])>,
    /// Payloads that were skipped (known but unused, or unknown non-critical).
    pub skipped: Vec<u8>,
}

impl<'a> Payloads<'a> {
    /// Parses a payload chain. `base` is added to offsets (HEADER_LEN for a whole message).
    pub fn parse(buf: &'a [u8], first: u8, base: usize) -> Result<Self, ParseError> {
        let mut p = Payloads::default();
        for raw in PayloadIter::new(buf, first) {
            let raw = raw?;
            fn once<T>(slot: &mut Option<T>, v: T, t: u8) -> Result<(), ParseError> {
                if slot.is_some() {
                    return Err(ParseError::Duplicate(t));
                }
                *slot = Some(v);
                Ok(())
            }
            match raw.ptype {
                payload::SA => once(&mut p.sa, SaView(raw.body), raw.ptype)?,
                payload::KE => once(&mut p.ke, KeView::parse(raw.body)?, raw.ptype)?,
                payload::NONCE => {
                    if raw.body.len() < 16 || raw.body.len() > 256 {
                        return Err(ParseError::BadLength {
                            what: "nonce (16..=256 bytes)",
                            value: raw.body.len(),
                            available: raw.body.len(),
                        });
                    }
                    once(&mut p.nonce, raw.body, raw.ptype)?
                }
                payload::IDI => once(&mut p.idi, IdView::parse(raw.body)?, raw.ptype)?,
                payload::IDR => once(&mut p.idr, IdView::parse(raw.body)?, raw.ptype)?,
                payload::AUTH => once(&mut p.auth, AuthView::parse(raw.body)?, raw.ptype)?,
                payload::NOTIFY => p.notifies.push(NotifyView::parse(raw.body)?),
                payload::DELETE => p.deletes.push(DeleteView::parse(raw.body)?),
                payload::TSI => once(&mut p.tsi, parse_ts(raw.body)?, raw.ptype)?,
                payload::TSR => once(&mut p.tsr, parse_ts(raw.body)?, raw.ptype)?,
                payload::VENDOR => p.vendors.push(raw.body),
                payload::SK => once(
                    &mut p.sk,
                    (raw.next, base + raw.offset, raw.body),
                    raw.ptype,
                )?,
                payload::CERT | payload::CERTREQ | payload::CP | payload::EAP | payload::SKF => {
                    p.skipped.push(raw.ptype)
                }
                t => {
                    if raw.critical {
                        return Err(ParseError::UnsupportedCritical(t));
                    }
                    p.skipped.push(t)
                }
            }
        }
        Ok(p)
    }

    /// First notify of a type.
    pub fn notify(&self, t: u16) -> Option<&NotifyView<'a>> {
        self.notifies.iter().find(|n| n.ntype == t)
    }
    /// First error notify, if any.
    pub fn error_notify(&self) -> Option<u16> {
        self.notifies
            .iter()
            .map(|n| n.ntype)
            .find(|&t| notify::is_error(t))
    }
}

/// A parsed message: header plus its outer payloads.
#[derive(Clone, Debug)]
pub struct Message<'a> {
    /// Header.
    pub header: Header<'a>,
    /// Outer payloads (for protected exchanges only the SK payload, plus nothing else).
    pub payloads: Payloads<'a>,
}

impl<'a> Message<'a> {
    /// Parses a whole IKE message (without the non-ESP marker).
    pub fn parse(msg: &'a [u8]) -> Result<Self, ParseError> {
        let header = Header::parse(msg)?;
        let payloads = Payloads::parse(&msg[HEADER_LEN..], header.next_payload(), HEADER_LEN)?;
        Ok(Message { header, payloads })
    }
}

// ------------------------------------------------------------------ builders

/// Writes a chain of payloads, fixing up each "next payload" field.
#[derive(Clone, Debug, Default)]
pub struct PayloadWriter {
    /// The bytes written so far.
    pub buf: Vec<u8>,
    first: u8,
    last_hdr: Option<usize>,
}

impl PayloadWriter {
    /// An empty chain.
    pub fn new() -> Self {
        Self::default()
    }
    /// Type of the first payload (NONE when empty).
    pub fn first(&self) -> u8 {
        self.first
    }
    /// Appends one payload with the given body.
    pub fn push(&mut self, ptype: u8, body: &[u8]) {
        self.push_with(ptype, |b| b.extend_from_slice(body));
    }
    /// Appends one payload whose body `f` writes.
    pub fn push_with(&mut self, ptype: u8, f: impl FnOnce(&mut Vec<u8>)) {
        match self.last_hdr {
            Some(at) => self.buf[at] = ptype,
            None => self.first = ptype,
        }
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
        f(&mut self.buf);
        let len = (self.buf.len() - at) as u16;
        self.buf[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
        self.last_hdr = Some(at);
    }
    /// Notify payload.
    pub fn notify(&mut self, protocol: u8, spi: &[u8], ntype: u16, data: &[u8]) {
        self.push_with(payload::NOTIFY, |b| {
            b.push(protocol);
            b.push(spi.len() as u8);
            b.extend_from_slice(&ntype.to_be_bytes());
            b.extend_from_slice(spi);
            b.extend_from_slice(data);
        });
    }
    /// Nonce payload.
    pub fn nonce(&mut self, n: &[u8]) {
        self.push(payload::NONCE, n);
    }
    /// KE payload.
    pub fn ke(&mut self, group: u16, data: &[u8]) {
        self.push_with(payload::KE, |b| {
            b.extend_from_slice(&group.to_be_bytes());
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(data);
        });
    }
    /// ID payload from its body (type, 3 reserved bytes, data).
    pub fn id(&mut self, ptype: u8, body: &[u8]) {
        self.push(ptype, body);
    }
    /// AUTH payload.
    pub fn auth(&mut self, method: u8, data: &[u8]) {
        self.push_with(payload::AUTH, |b| {
            b.push(method);
            b.extend_from_slice(&[0, 0, 0]);
            b.extend_from_slice(data);
        });
    }
    /// Delete payload.
    pub fn delete(&mut self, protocol: u8, spis: &[u32]) {
        self.push_with(payload::DELETE, |b| {
            b.push(protocol);
            b.push(if protocol == proto::IKE { 0 } else { 4 });
            b.extend_from_slice(&(spis.len() as u16).to_be_bytes());
            for s in spis {
                b.extend_from_slice(&s.to_be_bytes());
            }
        });
    }
    /// TS payload.
    pub fn ts(&mut self, ptype: u8, ts: &[TsEntry]) {
        self.push_with(ptype, |b| {
            b.push(ts.len() as u8);
            b.extend_from_slice(&[0, 0, 0]);
            for t in ts {
                let (ty, s, e): (u8, Vec<u8>, Vec<u8>) = match (t.start, t.end) {
                    (IpAddr::V4(s), IpAddr::V4(e)) => {
                        (ts_type::IPV4, s.octets().to_vec(), e.octets().to_vec())
                    }
                    (IpAddr::V6(s), IpAddr::V6(e)) => {
                        (ts_type::IPV6, s.octets().to_vec(), e.octets().to_vec())
                    }
                    _ => continue,
                };
                b.push(ty);
                b.push(t.proto);
                b.extend_from_slice(&((8 + s.len() * 2) as u16).to_be_bytes());
                b.extend_from_slice(&t.start_port.to_be_bytes());
                b.extend_from_slice(&t.end_port.to_be_bytes());
                b.extend_from_slice(&s);
                b.extend_from_slice(&e);
            }
        });
    }
}

/// Writes the fixed header for a message; the length is patched by [`finish_length`].
#[allow(clippy::too_many_arguments)]
pub fn write_header(
    out: &mut Vec<u8>,
    spi_i: u64,
    spi_r: u64,
    first: u8,
    exchange: u8,
    flag_bits: u8,
    msg_id: u32,
) {
    out.extend_from_slice(&spi_i.to_be_bytes());
    out.extend_from_slice(&spi_r.to_be_bytes());
    out.push(first);
    out.push(0x20);
    out.push(exchange);
    out.push(flag_bits);
    out.extend_from_slice(&msg_id.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
}

/// Sets the header length field to the buffer length.
pub fn finish_length(out: &mut [u8]) {
    let len = out.len() as u32;
    out[24..28].copy_from_slice(&len.to_be_bytes());
}

/// A plaintext message (IKE_SA_INIT): header + payloads.
pub fn build_plain(
    spi_i: u64,
    spi_r: u64,
    exchange: u8,
    flag_bits: u8,
    msg_id: u32,
    pw: &PayloadWriter,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + pw.buf.len());
    write_header(
        &mut out,
        spi_i,
        spi_r,
        pw.first(),
        exchange,
        flag_bits,
        msg_id,
    );
    out.extend_from_slice(&pw.buf);
    finish_length(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_length_check() {
        let mut pw = PayloadWriter::new();
        pw.nonce(&[7u8; 32]);
        pw.notify(0, &[], notify::INITIAL_CONTACT, &[]);
        let m = build_plain(1, 2, exchange::IKE_SA_INIT, flags::INITIATOR, 0, &pw);
        let msg = Message::parse(&m).unwrap();
        assert_eq!(msg.header.spi_i(), 1);
        assert_eq!(msg.header.spi_r(), 2);
        assert!(msg.header.is_initiator());
        assert_eq!(msg.payloads.nonce.unwrap(), &[7u8; 32]);
        assert!(msg.payloads.notify(notify::INITIAL_CONTACT).is_some());
        let mut bad = m.clone();
        bad.push(0);
        assert!(matches!(
            Message::parse(&bad),
            Err(ParseError::BadLength { .. })
        ));
        let mut v1 = m.clone();
        v1[17] = 0x10;
        assert_eq!(Message::parse(&v1).unwrap_err(), ParseError::Version(1));
    }

    #[test]
    fn unknown_critical_payload_rejected_noncritical_skipped() {
        let mut pw = PayloadWriter::new();
        pw.push(200, &[1, 2, 3]);
        let mut m = build_plain(1, 0, exchange::IKE_SA_INIT, flags::INITIATOR, 0, &pw);
        assert_eq!(Message::parse(&m).unwrap().payloads.skipped, vec![200]);
        m[HEADER_LEN + 1] = 0x80;
        assert_eq!(
            Message::parse(&m).unwrap_err(),
            ParseError::UnsupportedCritical(200)
        );
    }

    #[test]
    fn ts_round_trip() {
        let ts = vec![
            TsEntry {
                proto: 0,
                start_port: 0,
                end_port: 65535,
                start: "10.1.0.0".parse().unwrap(),
                end: "10.1.0.255".parse().unwrap(),
            },
            TsEntry {
                proto: 6,
                start_port: 80,
                end_port: 80,
                start: "2001:db8::".parse().unwrap(),
                end: "2001:db8::ffff".parse().unwrap(),
            },
        ];
        let mut pw = PayloadWriter::new();
        pw.ts(payload::TSI, &ts);
        let m = build_plain(1, 0, exchange::IKE_SA_INIT, 0, 0, &pw);
        assert_eq!(Message::parse(&m).unwrap().payloads.tsi.unwrap(), ts);
    }

    #[test]
    fn delete_count_must_match_length() {
        let mut pw = PayloadWriter::new();
        pw.delete(proto::ESP, &[0x1000, 0x2000]);
        let mut m = build_plain(1, 0, exchange::INFORMATIONAL, 0, 0, &pw);
        let d = Message::parse(&m).unwrap().payloads.deletes[0];
        assert_eq!(d.spis32().collect::<Vec<_>>(), vec![0x1000, 0x2000]);
        m[HEADER_LEN + 4 + 3] = 3; // claims three SPIs
        assert!(Message::parse(&m).is_err());
    }
}
