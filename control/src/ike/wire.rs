//! Zero-copy typed views over IKEv2 messages (RFC 7296 §3) and builders that
//! write them. Every length is checked against the bytes that are really
//! there; a malformed message gives a [`ParseError`] naming the field.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::ParseError;

/// Fixed IKE header length.
pub const HEADER_LEN: usize = 28;
/// Generic payload header length.
pub const GENERIC_LEN: usize = 4;
/// Largest number of payloads accepted in one message (a hostile message with
/// thousands of empty payloads costs us no more than this).
pub const MAX_PAYLOADS: usize = 64;

/// Exchange types (RFC 7296 §3.1).
pub mod exchange {
    /// IKE_SA_INIT.
    pub const IKE_SA_INIT: u8 = 34;
    /// IKE_AUTH.
    pub const IKE_AUTH: u8 = 35;
    /// CREATE_CHILD_SA.
    pub const CREATE_CHILD_SA: u8 = 36;
    /// INFORMATIONAL.
    pub const INFORMATIONAL: u8 = 37;
    /// Name for logs.
    pub fn name(t: u8) -> &'static str {
        match t {
            IKE_SA_INIT => "IKE_SA_INIT",
            IKE_AUTH => "IKE_AUTH",
            CREATE_CHILD_SA => "CREATE_CHILD_SA",
            INFORMATIONAL => "INFORMATIONAL",
            _ => "UNKNOWN_EXCHANGE",
        }
    }
}

/// Header flags (RFC 7296 §3.1).
pub mod flags {
    /// Sent by the original initiator of the IKE SA.
    pub const INITIATOR: u8 = 0x08;
    /// Higher version possible.
    pub const VERSION: u8 = 0x10;
    /// This is a response.
    pub const RESPONSE: u8 = 0x20;
}

/// Payload types (RFC 7296 §3.2).
pub mod payload {
    /// No next payload.
    pub const NONE: u8 = 0;
    /// Security Association.
    pub const SA: u8 = 33;
    /// Key Exchange.
    pub const KE: u8 = 34;
    /// Identification - Initiator.
    pub const IDI: u8 = 35;
    /// Identification - Responder.
    pub const IDR: u8 = 36;
    /// Certificate.
    pub const CERT: u8 = 37;
    /// Certificate Request.
    pub const CERTREQ: u8 = 38;
    /// Authentication.
    pub const AUTH: u8 = 39;
    /// Nonce.
    pub const NONCE: u8 = 40;
    /// Notify.
    pub const NOTIFY: u8 = 41;
    /// Delete.
    pub const DELETE: u8 = 42;
    /// Vendor ID.
    pub const VENDOR: u8 = 43;
    /// Traffic Selector - Initiator.
    pub const TSI: u8 = 44;
    /// Traffic Selector - Responder.
    pub const TSR: u8 = 45;
    /// Encrypted and Authenticated.
    pub const SK: u8 = 46;
    /// Configuration.
    pub const CP: u8 = 47;
    /// EAP.
    pub const EAP: u8 = 48;
    /// Encrypted and Authenticated Fragment (RFC 7383).
    pub const SKF: u8 = 53;
}

/// Notify message types (RFC 7296 §3.10.1 and later RFCs).
pub mod notify {
    /// UNSUPPORTED_CRITICAL_PAYLOAD.
    pub const UNSUPPORTED_CRITICAL_PAYLOAD: u16 = 1;
    /// INVALID_IKE_SPI.
    pub const INVALID_IKE_SPI: u16 = 4;
    /// INVALID_MAJOR_VERSION.
    pub const INVALID_MAJOR_VERSION: u16 = 5;
    /// INVALID_SYNTAX.
    pub const INVALID_SYNTAX: u16 = 7;
    /// INVALID_MESSAGE_ID.
    pub const INVALID_MESSAGE_ID: u16 = 9;
    /// INVALID_SPI.
    pub const INVALID_SPI: u16 = 11;
    /// NO_PROPOSAL_CHOSEN.
    pub const NO_PROPOSAL_CHOSEN: u16 = 14;
    /// INVALID_KE_PAYLOAD.
    pub const INVALID_KE_PAYLOAD: u16 = 17;
    /// AUTHENTICATION_FAILED.
    pub const AUTHENTICATION_FAILED: u16 = 24;
    /// SINGLE_PAIR_REQUIRED.
    pub const SINGLE_PAIR_REQUIRED: u16 = 34;
    /// NO_ADDITIONAL_SAS.
    pub const NO_ADDITIONAL_SAS: u16 = 35;
    /// INTERNAL_ADDRESS_FAILURE.
    pub const INTERNAL_ADDRESS_FAILURE: u16 = 36;
    /// FAILED_CP_REQUIRED.
    pub const FAILED_CP_REQUIRED: u16 = 37;
    /// TS_UNACCEPTABLE.
    pub const TS_UNACCEPTABLE: u16 = 38;
    /// INVALID_SELECTORS.
    pub const INVALID_SELECTORS: u16 = 39;
    /// TEMPORARY_FAILURE.
    pub const TEMPORARY_FAILURE: u16 = 43;
    /// CHILD_SA_NOT_FOUND.
    pub const CHILD_SA_NOT_FOUND: u16 = 44;
    /// INITIAL_CONTACT.
    pub const INITIAL_CONTACT: u16 = 16384;
    /// SET_WINDOW_SIZE.
    pub const SET_WINDOW_SIZE: u16 = 16385;
    /// ADDITIONAL_TS_POSSIBLE.
    pub const ADDITIONAL_TS_POSSIBLE: u16 = 16386;
    /// IPCOMP_SUPPORTED.
    pub const IPCOMP_SUPPORTED: u16 = 16387;
    /// NAT_DETECTION_SOURCE_IP.
    pub const NAT_DETECTION_SOURCE_IP: u16 = 16388;
    /// NAT_DETECTION_DESTINATION_IP.
    pub const NAT_DETECTION_DESTINATION_IP: u16 = 16389;
    /// COOKIE.
    pub const COOKIE: u16 = 16390;
    /// USE_TRANSPORT_MODE.
    pub const USE_TRANSPORT_MODE: u16 = 16391;
    /// REKEY_SA.
    pub const REKEY_SA: u16 = 16393;
    /// ESP_TFC_PADDING_NOT_SUPPORTED.
    pub const ESP_TFC_PADDING_NOT_SUPPORTED: u16 = 16394;
    /// NON_FIRST_FRAGMENTS_ALSO.
    pub const NON_FIRST_FRAGMENTS_ALSO: u16 = 16395;
    /// MOBIKE_SUPPORTED (RFC 4555).
    pub const MOBIKE_SUPPORTED: u16 = 16396;
    /// MULTIPLE_AUTH_SUPPORTED (RFC 4739).
    pub const MULTIPLE_AUTH_SUPPORTED: u16 = 16404;
    /// ANOTHER_AUTH_FOLLOWS (RFC 4739).
    pub const ANOTHER_AUTH_FOLLOWS: u16 = 16405;
    /// REDIRECT_SUPPORTED (RFC 5685).
    pub const REDIRECT_SUPPORTED: u16 = 16406;
    /// EAP_ONLY_AUTHENTICATION (RFC 5998).
    pub const EAP_ONLY_AUTHENTICATION: u16 = 16417;
    /// IKEV2_MESSAGE_ID_SYNC_SUPPORTED (RFC 6311).
    pub const IKEV2_MESSAGE_ID_SYNC_SUPPORTED: u16 = 16420;
    /// IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383).
    pub const IKEV2_FRAGMENTATION_SUPPORTED: u16 = 16430;
    /// SIGNATURE_HASH_ALGORITHMS (RFC 7427).
    pub const SIGNATURE_HASH_ALGORITHMS: u16 = 16431;

    /// True for error types (below 16384): they make the exchange fail.
    pub const fn is_error(t: u16) -> bool {
        t < 16384
    }

    /// Name for logs and events.
    pub fn name(t: u16) -> &'static str {
        match t {
            UNSUPPORTED_CRITICAL_PAYLOAD => "UNSUPPORTED_CRITICAL_PAYLOAD",
            INVALID_IKE_SPI => "INVALID_IKE_SPI",
            INVALID_MAJOR_VERSION => "INVALID_MAJOR_VERSION",
            INVALID_SYNTAX => "INVALID_SYNTAX",
            INVALID_MESSAGE_ID => "INVALID_MESSAGE_ID",
            INVALID_SPI => "INVALID_SPI",
            NO_PROPOSAL_CHOSEN => "NO_PROPOSAL_CHOSEN",
            INVALID_KE_PAYLOAD => "INVALID_KE_PAYLOAD",
            AUTHENTICATION_FAILED => "AUTHENTICATION_FAILED",
            SINGLE_PAIR_REQUIRED => "SINGLE_PAIR_REQUIRED",
            NO_ADDITIONAL_SAS => "NO_ADDITIONAL_SAS",
            INTERNAL_ADDRESS_FAILURE => "INTERNAL_ADDRESS_FAILURE",
            FAILED_CP_REQUIRED => "FAILED_CP_REQUIRED",
            TS_UNACCEPTABLE => "TS_UNACCEPTABLE",
            INVALID_SELECTORS => "INVALID_SELECTORS",
            TEMPORARY_FAILURE => "TEMPORARY_FAILURE",
            CHILD_SA_NOT_FOUND => "CHILD_SA_NOT_FOUND",
            INITIAL_CONTACT => "INITIAL_CONTACT",
            SET_WINDOW_SIZE => "SET_WINDOW_SIZE",
            ADDITIONAL_TS_POSSIBLE => "ADDITIONAL_TS_POSSIBLE",
            IPCOMP_SUPPORTED => "IPCOMP_SUPPORTED",
            NAT_DETECTION_SOURCE_IP => "NAT_DETECTION_SOURCE_IP",
            NAT_DETECTION_DESTINATION_IP => "NAT_DETECTION_DESTINATION_IP",
            COOKIE => "COOKIE",
            USE_TRANSPORT_MODE => "USE_TRANSPORT_MODE",
            REKEY_SA => "REKEY_SA",
            ESP_TFC_PADDING_NOT_SUPPORTED => "ESP_TFC_PADDING_NOT_SUPPORTED",
            NON_FIRST_FRAGMENTS_ALSO => "NON_FIRST_FRAGMENTS_ALSO",
            MOBIKE_SUPPORTED => "MOBIKE_SUPPORTED",
            MULTIPLE_AUTH_SUPPORTED => "MULTIPLE_AUTH_SUPPORTED",
            ANOTHER_AUTH_FOLLOWS => "ANOTHER_AUTH_FOLLOWS",
            REDIRECT_SUPPORTED => "REDIRECT_SUPPORTED",
            EAP_ONLY_AUTHENTICATION => "EAP_ONLY_AUTHENTICATION",
            IKEV2_MESSAGE_ID_SYNC_SUPPORTED => "IKEV2_MESSAGE_ID_SYNC_SUPPORTED",
            IKEV2_FRAGMENTATION_SUPPORTED => "IKEV2_FRAGMENTATION_SUPPORTED",
            SIGNATURE_HASH_ALGORITHMS => "SIGNATURE_HASH_ALGORITHMS",
            t if is_error(t) => "UNKNOWN_ERROR",
            _ => "UNKNOWN_STATUS",
        }
    }
}

/// Security protocol identifiers (RFC 7296 §3.3.1).
pub mod proto {
    /// IKE.
    pub const IKE: u8 = 1;
    /// AH.
    pub const AH: u8 = 2;
    /// ESP.
    pub const ESP: u8 = 3;
}

/// Identification types (the configuration's `Identity` encodes itself with them).
pub use espresso_core::config::ike::id_type;

/// Authentication method: Shared Key Message Integrity Code.
pub const AUTH_PSK: u8 = 2;

impl PayloadWriter {
    /// CERT or CERTREQ payload: encoding, then data.
    pub fn cert(&mut self, ptype: u8, encoding: u8, data: &[u8]) {
        self.push_with(ptype, |b| {
            b.push(encoding);
            b.extend_from_slice(data);
        });
    }
}

/// Traffic selector types.
pub mod ts_type {
    /// TS_IPV4_ADDR_RANGE.
    pub const IPV4: u8 = 7;
    /// TS_IPV6_ADDR_RANGE.
    pub const IPV6: u8 = 8;
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}
fn need(what: &'static str, b: &[u8], n: usize) -> Result<(), ParseError> {
    if b.len() < n {
        Err(ParseError::Truncated {
            what,
            need: n,
            have: b.len(),
        })
    } else {
        Ok(())
    }
}

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

/// A transform attribute key length, if present (attribute type 14).
const ATTR_KEY_LENGTH: u16 = 14;

/// View of one transform substructure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransformView {
    /// Transform type (1 ENCR, 2 PRF, 3 INTEG, 4 DH, 5 ESN).
    pub ttype: u8,
    /// Transform ID.
    pub id: u16,
    /// Key Length attribute in bits.
    pub key_len: Option<u16>,
    /// An attribute other than Key Length was present (unknown: transform unusable).
    pub unknown_attr: bool,
}

/// View of one proposal substructure.
#[derive(Clone, Copy, Debug)]
pub struct ProposalView<'a> {
    /// Proposal number.
    pub num: u8,
    /// Protocol ID (1 IKE, 3 ESP).
    pub protocol: u8,
    /// SPI bytes (0, 4 or 8).
    pub spi: &'a [u8],
    transforms: &'a [u8],
    n_transforms: u8,
}

impl<'a> ProposalView<'a> {
    /// The proposal's transforms.
    pub fn transforms(&self) -> Result<Vec<TransformView>, ParseError> {
        let mut out = Vec::with_capacity(self.n_transforms as usize);
        let mut b = self.transforms;
        for i in 0..self.n_transforms {
            need("transform", b, 8)?;
            let last = b[0];
            let len = be16(b, 2) as usize;
            if len < 8 || len > b.len() {
                return Err(ParseError::BadLength {
                    what: "transform length",
                    value: len,
                    available: b.len(),
                });
            }
            let expect_last = if i + 1 == self.n_transforms { 0 } else { 3 };
            if last != expect_last {
                return Err(ParseError::BadValue {
                    what: "transform last-substructure",
                    value: last as u64,
                });
            }
            let ttype = b[4];
            let id = be16(b, 6);
            let mut attrs = &b[8..len];
            let mut key_len = None;
            let mut unknown_attr = false;
            while !attrs.is_empty() {
                need("transform attribute", attrs, 4)?;
                let at = be16(attrs, 0);
                if at & 0x8000 != 0 {
                    let v = be16(attrs, 2);
                    if at & 0x7fff == ATTR_KEY_LENGTH {
                        key_len = Some(v);
                    } else {
                        unknown_attr = true;
                    }
                    attrs = &attrs[4..];
                } else {
                    let alen = be16(attrs, 2) as usize;
                    need("transform attribute value", &attrs[4..], alen)?;
                    unknown_attr = true;
                    attrs = &attrs[4 + alen..];
                }
            }
            out.push(TransformView {
                ttype,
                id,
                key_len,
                unknown_attr,
            });
            b = &b[len..];
        }
        if !b.is_empty() {
            return Err(ParseError::BadLength {
                what: "proposal transforms (trailing bytes)",
                value: b.len(),
                available: self.transforms.len(),
            });
        }
        Ok(out)
    }
}

/// View of an SA payload body.
#[derive(Clone, Copy, Debug)]
pub struct SaView<'a>(pub &'a [u8]);

impl<'a> SaView<'a> {
    /// The proposals, checked for structure (numbering, lengths, last flags).
    pub fn proposals(&self) -> Result<Vec<ProposalView<'a>>, ParseError> {
        let mut out = Vec::new();
        let mut b = self.0;
        let mut expect_num = 1u8;
        if b.is_empty() {
            return Err(ParseError::Truncated {
                what: "SA payload (no proposal)",
                need: 8,
                have: 0,
            });
        }
        while !b.is_empty() {
            need("proposal", b, 8)?;
            let last = b[0];
            let len = be16(b, 2) as usize;
            if len < 8 || len > b.len() {
                return Err(ParseError::BadLength {
                    what: "proposal length",
                    value: len,
                    available: b.len(),
                });
            }
            let num = b[4];
            // numbers increase by one from 1 in a request; an answer carries the
            // one chosen proposal with its original number
            let ok = if out.is_empty() {
                num != 0
            } else {
                num == expect_num
            };
            if !ok {
                return Err(ParseError::BadValue {
                    what: "proposal number",
                    value: num as u64,
                });
            }
            expect_num = num.wrapping_add(1);
            let protocol = b[5];
            let spi_size = b[6] as usize;
            let n_transforms = b[7];
            need("proposal SPI", &b[8..len], spi_size)?;
            let p = ProposalView {
                num,
                protocol,
                spi: &b[8..8 + spi_size],
                transforms: &b[8 + spi_size..len],
                n_transforms,
            };
            out.push(p);
            b = &b[len..];
            let is_last = b.is_empty();
            if (is_last && last != 0) || (!is_last && last != 2) {
                return Err(ParseError::BadValue {
                    what: "proposal last-substructure",
                    value: last as u64,
                });
            }
            if out.len() > MAX_PAYLOADS {
                return Err(ParseError::TooManyPayloads(MAX_PAYLOADS));
            }
        }
        Ok(out)
    }
}

/// KE payload.
#[derive(Clone, Copy, Debug)]
pub struct KeView<'a> {
    /// Diffie-Hellman group number.
    pub group: u16,
    /// Public value.
    pub data: &'a [u8],
}

impl<'a> KeView<'a> {
    /// Parses a KE body.
    pub fn parse(b: &'a [u8]) -> Result<Self, ParseError> {
        need("KE payload", b, 4)?;
        Ok(KeView {
            group: be16(b, 0),
            data: &b[4..],
        })
    }
}

/// ID payload (IDi/IDr).
#[derive(Clone, Copy, Debug)]
pub struct IdView<'a> {
    /// ID type.
    pub id_type: u8,
    /// Identification data.
    pub data: &'a [u8],
    /// The whole body (type, reserved, data): what MACedIDFor* is computed over.
    pub body: &'a [u8],
}

impl<'a> IdView<'a> {
    /// Parses an ID body.
    pub fn parse(b: &'a [u8]) -> Result<Self, ParseError> {
        need("ID payload", b, 4)?;
        Ok(IdView {
            id_type: b[0],
            data: &b[4..],
            body: b,
        })
    }
}

/// AUTH payload.
#[derive(Clone, Copy, Debug)]
pub struct AuthView<'a> {
    /// Auth method.
    pub method: u8,
    /// Authentication data.
    pub data: &'a [u8],
}

impl<'a> AuthView<'a> {
    /// Parses an AUTH body.
    pub fn parse(b: &'a [u8]) -> Result<Self, ParseError> {
        need("AUTH payload", b, 4)?;
        Ok(AuthView {
            method: b[0],
            data: &b[4..],
        })
    }
}

/// Notify payload.
#[derive(Clone, Copy, Debug)]
pub struct NotifyView<'a> {
    /// Protocol ID (0 when no SPI).
    pub protocol: u8,
    /// SPI.
    pub spi: &'a [u8],
    /// Notify message type.
    pub ntype: u16,
    /// Notification data.
    pub data: &'a [u8],
}

impl<'a> NotifyView<'a> {
    /// Parses a Notify body.
    pub fn parse(b: &'a [u8]) -> Result<Self, ParseError> {
        need("Notify payload", b, 4)?;
        let spi_size = b[1] as usize;
        need("Notify SPI", &b[4..], spi_size)?;
        Ok(NotifyView {
            protocol: b[0],
            spi: &b[4..4 + spi_size],
            ntype: be16(b, 2),
            data: &b[4 + spi_size..],
        })
    }
    /// The SPI as a 32-bit ESP SPI, if it has 4 bytes.
    pub fn spi32(&self) -> Option<u32> {
        (self.spi.len() == 4).then(|| be32(self.spi, 0))
    }
}

/// Delete payload.
#[derive(Clone, Copy, Debug)]
pub struct DeleteView<'a> {
    /// Protocol ID (1 IKE, 3 ESP).
    pub protocol: u8,
    /// SPI size.
    pub spi_size: u8,
    spis: &'a [u8],
}

impl<'a> DeleteView<'a> {
    /// Parses a Delete body; checks that the SPI count fits the length.
    pub fn parse(b: &'a [u8]) -> Result<Self, ParseError> {
        need("Delete payload", b, 4)?;
        let protocol = b[0];
        let spi_size = b[1];
        let n = be16(b, 2) as usize;
        let body = &b[4..];
        let want = n * spi_size as usize;
        if want != body.len() {
            return Err(ParseError::BadLength {
                what: "Delete SPIs (count x size)",
                value: want,
                available: body.len(),
            });
        }
        if protocol == proto::IKE && spi_size != 0 {
            return Err(ParseError::BadValue {
                what: "Delete IKE SPI size",
                value: spi_size as u64,
            });
        }
        if (protocol == proto::ESP || protocol == proto::AH) && spi_size != 4 {
            return Err(ParseError::BadValue {
                what: "Delete ESP SPI size",
                value: spi_size as u64,
            });
        }
        Ok(DeleteView {
            protocol,
            spi_size,
            spis: body,
        })
    }
    /// 32-bit SPIs (ESP/AH).
    pub fn spis32(&self) -> impl Iterator<Item = u32> + 'a {
        let b = if self.spi_size == 4 { self.spis } else { &[] };
        b.chunks_exact(4).map(|c| be32(c, 0))
    }
}

/// One traffic selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TsEntry {
    /// IP protocol (0 any).
    pub proto: u8,
    /// First port.
    pub start_port: u16,
    /// Last port.
    pub end_port: u16,
    /// First address.
    pub start: IpAddr,
    /// Last address.
    pub end: IpAddr,
}

/// Parses a TS payload body into its selectors.
pub fn parse_ts(b: &[u8]) -> Result<Vec<TsEntry>, ParseError> {
    need("TS payload", b, 4)?;
    let n = b[0] as usize;
    let mut rest = &b[4..];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        need("traffic selector", rest, 8)?;
        let t = rest[0];
        let len = be16(rest, 2) as usize;
        let alen = match t {
            ts_type::IPV4 => 4,
            ts_type::IPV6 => 16,
            _ => {
                return Err(ParseError::BadValue {
                    what: "TS type",
                    value: t as u64,
                })
            }
        };
        if len != 8 + 2 * alen || len > rest.len() {
            return Err(ParseError::BadLength {
                what: "traffic selector length",
                value: len,
                available: rest.len(),
            });
        }
        let (start, end) = if alen == 4 {
            let mut s = [0u8; 4];
            let mut e = [0u8; 4];
            s.copy_from_slice(&rest[8..12]);
            e.copy_from_slice(&rest[12..16]);
            (IpAddr::V4(Ipv4Addr::from(s)), IpAddr::V4(Ipv4Addr::from(e)))
        } else {
            let mut s = [0u8; 16];
            let mut e = [0u8; 16];
            s.copy_from_slice(&rest[8..24]);
            e.copy_from_slice(&rest[24..40]);
            (IpAddr::V6(Ipv6Addr::from(s)), IpAddr::V6(Ipv6Addr::from(e)))
        };
        out.push(TsEntry {
            proto: rest[1],
            start_port: be16(rest, 4),
            end_port: be16(rest, 6),
            start,
            end,
        });
        rest = &rest[len..];
    }
    if !rest.is_empty() {
        return Err(ParseError::BadLength {
            what: "TS payload (trailing bytes)",
            value: rest.len(),
            available: b.len(),
        });
    }
    if out.is_empty() {
        return Err(ParseError::BadValue {
            what: "TS count",
            value: 0,
        });
    }
    Ok(out)
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
    /// Encrypted Fragment payload (RFC 7383): (first inner payload type, 0 in
    /// all but the first fragment; offset of its generic header; body).
    pub skf: Option<(u8, usize, &'a [u8])>,
    /// CERT payloads: (encoding, data), in order (the end entity first).
    pub certs: Vec<(u8, &'a [u8])>,
    /// CERTREQ payloads: (encoding, CA key hashes).
    pub certreqs: Vec<(u8, &'a [u8])>,
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
                payload::SKF => once(
                    &mut p.skf,
                    (raw.next, base + raw.offset, raw.body),
                    raw.ptype,
                )?,
                payload::CERT => p.certs.push(parse_cert_payload(raw.body)?),
                payload::CERTREQ => p.certreqs.push(parse_cert_payload(raw.body)?),
                payload::CP | payload::EAP => p.skipped.push(raw.ptype),
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

/// Parses CERT and CERTREQ payload bodies (for the parser and the fuzzer):
/// `(encoding, data)`.
pub fn parse_cert_payload(body: &[u8]) -> Result<(u8, &[u8]), ParseError> {
    match body.split_first() {
        Some((e, d)) if !d.is_empty() => Ok((*e, d)),
        _ => Err(ParseError::Truncated {
            what: "CERT/CERTREQ payload",
            need: 2,
            have: body.len(),
        }),
    }
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
