//! ISAKMP (RFC 2408) messages as used by IKEv1 (RFC 2409) in the IPsec DOI
//! (RFC 2407): the header, the payload chain and a view of every payload
//! (SA/proposal/transform with basic and variable attributes, KE, ID, HASH,
//! SIG, CERT, CERTREQ, Nonce, Notification, Delete, Vendor ID, NAT-D and
//! NAT-OA of RFC 3947 and its drafts). Parsing borrows from the datagram;
//! every malformed field is a [`ParseError`] naming it, never a panic.
//! [`PayloadWriter`] builds payload chains.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ike::error::ParseError;
use crate::ike::wire::TsEntry;

/// ISAKMP header length.
pub const HEADER_LEN: usize = 28;
/// Generic payload header length.
pub const GENERIC_LEN: usize = 4;
/// Most payloads accepted in one message.
pub const MAX_PAYLOADS: usize = 64;
/// Version byte: major 1, minor 0.
pub const VERSION: u8 = 0x10;
/// DOI: IPsec (RFC 2407 §4.2).
pub const DOI_IPSEC: u32 = 1;
/// Situation: SIT_IDENTITY_ONLY.
pub const SIT_IDENTITY_ONLY: u32 = 1;

/// Exchange types (RFC 2408 §3.1, RFC 2409 §5).
pub mod exchange {
    /// Base exchange.
    pub const BASE: u8 = 1;
    /// Identity protection (main mode).
    pub const MAIN: u8 = 2;
    /// Authentication only.
    pub const AUTH_ONLY: u8 = 3;
    /// Aggressive mode.
    pub const AGGRESSIVE: u8 = 4;
    /// Informational.
    pub const INFORMATIONAL: u8 = 5;
    /// Transaction (mode config / XAUTH).
    pub const TRANSACTION: u8 = 6;
    /// Quick mode.
    pub const QUICK: u8 = 32;
    /// New group mode.
    pub const NEW_GROUP: u8 = 33;
    /// Name for logs.
    pub fn name(t: u8) -> &'static str {
        match t {
            BASE => "BASE",
            MAIN => "ID_PROT",
            AUTH_ONLY => "AUTH_ONLY",
            AGGRESSIVE => "AGGRESSIVE",
            INFORMATIONAL => "INFORMATIONAL_V1",
            TRANSACTION => "TRANSACTION",
            QUICK => "QUICK_MODE",
            NEW_GROUP => "NEW_GROUP",
            _ => "UNKNOWN",
        }
    }
}

/// Header flags.
pub mod flags {
    /// Payloads after the header are encrypted.
    pub const ENCRYPTION: u8 = 0x01;
    /// Commit bit (key exchange synchronisation, RFC 2408 §3.1).
    pub const COMMIT: u8 = 0x02;
    /// Authentication only.
    pub const AUTH_ONLY: u8 = 0x04;
}

/// Payload types (RFC 2408 §3.1, RFC 3947, draft-ietf-ipsec-nat-t-ike).
pub mod payload {
    /// End of chain.
    pub const NONE: u8 = 0;
    /// Security Association.
    pub const SA: u8 = 1;
    /// Proposal.
    pub const PROPOSAL: u8 = 2;
    /// Transform.
    pub const TRANSFORM: u8 = 3;
    /// Key Exchange.
    pub const KE: u8 = 4;
    /// Identification.
    pub const ID: u8 = 5;
    /// Certificate.
    pub const CERT: u8 = 6;
    /// Certificate Request.
    pub const CERTREQ: u8 = 7;
    /// Hash.
    pub const HASH: u8 = 8;
    /// Signature.
    pub const SIG: u8 = 9;
    /// Nonce.
    pub const NONCE: u8 = 10;
    /// Notification.
    pub const NOTIFY: u8 = 11;
    /// Delete.
    pub const DELETE: u8 = 12;
    /// Vendor ID.
    pub const VENDOR: u8 = 13;
    /// Mode-config attributes.
    pub const ATTRIBUTE: u8 = 14;
    /// NAT discovery (RFC 3947).
    pub const NAT_D: u8 = 20;
    /// NAT original address (RFC 3947).
    pub const NAT_OA: u8 = 21;
    /// NAT-D of the drafts.
    pub const NAT_D_DRAFT: u8 = 130;
    /// NAT-OA of the drafts.
    pub const NAT_OA_DRAFT: u8 = 131;
    /// Cisco IKE fragment.
    pub const FRAGMENT: u8 = 132;
}

/// Notify message types (RFC 2408 §3.14.1, RFC 2407 §4.6.3, RFC 3706).
pub mod notify {
    /// INVALID-PAYLOAD-TYPE.
    pub const INVALID_PAYLOAD_TYPE: u16 = 1;
    /// INVALID-COOKIE.
    pub const INVALID_COOKIE: u16 = 4;
    /// INVALID-MAJOR-VERSION.
    pub const INVALID_MAJOR_VERSION: u16 = 5;
    /// INVALID-EXCHANGE-TYPE.
    pub const INVALID_EXCHANGE_TYPE: u16 = 7;
    /// INVALID-FLAGS.
    pub const INVALID_FLAGS: u16 = 8;
    /// INVALID-MESSAGE-ID.
    pub const INVALID_MESSAGE_ID: u16 = 9;
    /// INVALID-SPI.
    pub const INVALID_SPI: u16 = 11;
    /// ATTRIBUTES-NOT-SUPPORTED.
    pub const ATTRIBUTES_NOT_SUPPORTED: u16 = 13;
    /// NO-PROPOSAL-CHOSEN.
    pub const NO_PROPOSAL_CHOSEN: u16 = 14;
    /// BAD-PROPOSAL-SYNTAX.
    pub const BAD_PROPOSAL_SYNTAX: u16 = 15;
    /// PAYLOAD-MALFORMED.
    pub const PAYLOAD_MALFORMED: u16 = 16;
    /// INVALID-KEY-INFORMATION.
    pub const INVALID_KEY_INFORMATION: u16 = 17;
    /// INVALID-ID-INFORMATION.
    pub const INVALID_ID_INFORMATION: u16 = 18;
    /// INVALID-HASH-INFORMATION.
    pub const INVALID_HASH_INFORMATION: u16 = 23;
    /// AUTHENTICATION-FAILED.
    pub const AUTHENTICATION_FAILED: u16 = 24;
    /// UNSUPPORTED-EXCHANGE-TYPE.
    pub const UNSUPPORTED_EXCHANGE_TYPE: u16 = 29;
    /// CONNECTED (commit bit answer).
    pub const CONNECTED: u16 = 16384;
    /// RESPONDER-LIFETIME (RFC 2407 §4.6.3.1).
    pub const RESPONDER_LIFETIME: u16 = 24576;
    /// REPLAY-STATUS.
    pub const REPLAY_STATUS: u16 = 24577;
    /// INITIAL-CONTACT.
    pub const INITIAL_CONTACT: u16 = 24578;
    /// DPD R-U-THERE (RFC 3706).
    pub const R_U_THERE: u16 = 36136;
    /// DPD R-U-THERE-ACK (RFC 3706).
    pub const R_U_THERE_ACK: u16 = 36137;
    /// Error types are below 8192.
    pub const fn is_error(t: u16) -> bool {
        t > 0 && t < 8192
    }
    /// Name for logs.
    pub fn name(t: u16) -> &'static str {
        match t {
            1 => "INVALID_PAYLOAD_TYPE",
            2 => "DOI_NOT_SUPPORTED",
            3 => "SITUATION_NOT_SUPPORTED",
            4 => "INVALID_COOKIE",
            5 => "INVALID_MAJOR_VERSION",
            6 => "INVALID_MINOR_VERSION",
            7 => "INVALID_EXCHANGE_TYPE",
            8 => "INVALID_FLAGS",
            9 => "INVALID_MESSAGE_ID",
            10 => "INVALID_PROTOCOL_ID",
            11 => "INVALID_SPI",
            12 => "INVALID_TRANSFORM_ID",
            13 => "ATTRIBUTES_NOT_SUPPORTED",
            14 => "NO_PROPOSAL_CHOSEN",
            15 => "BAD_PROPOSAL_SYNTAX",
            16 => "PAYLOAD_MALFORMED",
            17 => "INVALID_KEY_INFORMATION",
            18 => "INVALID_ID_INFORMATION",
            19 => "INVALID_CERT_ENCODING",
            20 => "INVALID_CERTIFICATE",
            21 => "CERT_TYPE_UNSUPPORTED",
            22 => "INVALID_CERT_AUTHORITY",
            23 => "INVALID_HASH_INFORMATION",
            24 => "AUTHENTICATION_FAILED",
            25 => "INVALID_SIGNATURE",
            26 => "ADDRESS_NOTIFICATION",
            27 => "NOTIFY_SA_LIFETIME",
            28 => "CERTIFICATE_UNAVAILABLE",
            29 => "UNSUPPORTED_EXCHANGE_TYPE",
            30 => "UNEQUAL_PAYLOAD_LENGTHS",
            CONNECTED => "CONNECTED",
            RESPONDER_LIFETIME => "RESPONDER_LIFETIME",
            REPLAY_STATUS => "REPLAY_STATUS",
            INITIAL_CONTACT => "INITIAL_CONTACT",
            R_U_THERE => "DPD_R_U_THERE",
            R_U_THERE_ACK => "DPD_R_U_THERE_ACK",
            _ => "UNKNOWN",
        }
    }
}

/// Protocol IDs (RFC 2407 §4.4.1).
pub mod proto {
    /// ISAKMP.
    pub const ISAKMP: u8 = 1;
    /// AH.
    pub const AH: u8 = 2;
    /// ESP.
    pub const ESP: u8 = 3;
    /// IPComp.
    pub const IPCOMP: u8 = 4;
}

/// Identification types (RFC 2407 §4.6.2.1).
pub mod id_type {
    /// ID_IPV4_ADDR.
    pub const IPV4_ADDR: u8 = 1;
    /// ID_FQDN.
    pub const FQDN: u8 = 2;
    /// ID_USER_FQDN.
    pub const USER_FQDN: u8 = 3;
    /// ID_IPV4_ADDR_SUBNET.
    pub const IPV4_ADDR_SUBNET: u8 = 4;
    /// ID_IPV6_ADDR.
    pub const IPV6_ADDR: u8 = 5;
    /// ID_IPV6_ADDR_SUBNET.
    pub const IPV6_ADDR_SUBNET: u8 = 6;
    /// ID_IPV4_ADDR_RANGE.
    pub const IPV4_ADDR_RANGE: u8 = 7;
    /// ID_IPV6_ADDR_RANGE.
    pub const IPV6_ADDR_RANGE: u8 = 8;
    /// ID_DER_ASN1_DN.
    pub const DER_ASN1_DN: u8 = 9;
    /// ID_DER_ASN1_GN.
    pub const DER_ASN1_GN: u8 = 10;
    /// ID_KEY_ID.
    pub const KEY_ID: u8 = 11;
}

/// Phase 1 (ISAKMP SA) attribute types and values (RFC 2409 Appendix A).
pub mod p1attr {
    /// Encryption algorithm.
    pub const ENCRYPTION: u16 = 1;
    /// Hash algorithm.
    pub const HASH: u16 = 2;
    /// Authentication method.
    pub const AUTH_METHOD: u16 = 3;
    /// Group description.
    pub const GROUP: u16 = 4;
    /// Group type (custom groups; not supported).
    pub const GROUP_TYPE: u16 = 5;
    /// Life type.
    pub const LIFE_TYPE: u16 = 11;
    /// Life duration.
    pub const LIFE_DURATION: u16 = 12;
    /// PRF (no values defined; not supported).
    pub const PRF: u16 = 13;
    /// Key length (bits).
    pub const KEY_LENGTH: u16 = 14;
    /// Encryption: DES-CBC.
    pub const ENC_DES: u16 = 1;
    /// Encryption: 3DES-CBC.
    pub const ENC_3DES: u16 = 5;
    /// Encryption: AES-CBC (RFC 3602).
    pub const ENC_AES: u16 = 7;
    /// Hash: MD5.
    pub const HASH_MD5: u16 = 1;
    /// Hash: SHA-1.
    pub const HASH_SHA1: u16 = 2;
    /// Hash: SHA2-256 (RFC 4878).
    pub const HASH_SHA256: u16 = 4;
    /// Hash: SHA2-384.
    pub const HASH_SHA384: u16 = 5;
    /// Hash: SHA2-512.
    pub const HASH_SHA512: u16 = 6;
    /// Auth: pre-shared key.
    pub const AUTH_PSK: u16 = 1;
    /// Auth: DSS signatures.
    pub const AUTH_DSS: u16 = 2;
    /// Auth: RSA signatures.
    pub const AUTH_RSA: u16 = 3;
    /// Auth: ECDSA with SHA-256 on P-256 (RFC 4754).
    pub const AUTH_ECDSA_256: u16 = 9;
    /// Auth: ECDSA with SHA-384 on P-384.
    pub const AUTH_ECDSA_384: u16 = 10;
    /// Auth: ECDSA with SHA-512 on P-521.
    pub const AUTH_ECDSA_521: u16 = 11;
    /// Life type: seconds.
    pub const LIFE_SECONDS: u16 = 1;
    /// Life type: kilobytes.
    pub const LIFE_KILOBYTES: u16 = 2;
}

/// Phase 2 (IPsec DOI) SA attribute types and values (RFC 2407 §4.5, RFC 3947).
pub mod p2attr {
    /// SA life type.
    pub const LIFE_TYPE: u16 = 1;
    /// SA life duration.
    pub const LIFE_DURATION: u16 = 2;
    /// Group description (PFS).
    pub const GROUP: u16 = 3;
    /// Encapsulation mode.
    pub const ENCAP_MODE: u16 = 4;
    /// Authentication algorithm.
    pub const AUTH_ALG: u16 = 5;
    /// Key length (bits).
    pub const KEY_LENGTH: u16 = 6;
    /// Key rounds.
    pub const KEY_ROUNDS: u16 = 7;
    /// Extended (64-bit) sequence number (RFC 4304).
    pub const ESN: u16 = 11;
    /// Encap: tunnel.
    pub const MODE_TUNNEL: u16 = 1;
    /// Encap: transport.
    pub const MODE_TRANSPORT: u16 = 2;
    /// Encap: UDP-encapsulated tunnel (RFC 3947).
    pub const MODE_UDP_TUNNEL: u16 = 3;
    /// Encap: UDP-encapsulated transport (RFC 3947).
    pub const MODE_UDP_TRANSPORT: u16 = 4;
    /// Encap: UDP-encapsulated tunnel of the NAT-T drafts.
    pub const MODE_UDP_TUNNEL_DRAFT: u16 = 61443;
    /// Encap: UDP-encapsulated transport of the NAT-T drafts.
    pub const MODE_UDP_TRANSPORT_DRAFT: u16 = 61444;
    /// Auth: HMAC-MD5.
    pub const AUTH_HMAC_MD5: u16 = 1;
    /// Auth: HMAC-SHA-1.
    pub const AUTH_HMAC_SHA1: u16 = 2;
    /// Auth: HMAC-SHA2-256 (128-bit ICV, RFC 4868).
    pub const AUTH_HMAC_SHA256: u16 = 5;
    /// Auth: HMAC-SHA2-384.
    pub const AUTH_HMAC_SHA384: u16 = 6;
    /// Auth: HMAC-SHA2-512.
    pub const AUTH_HMAC_SHA512: u16 = 7;
}

/// ESP transform IDs in the IPsec DOI (RFC 2407 §4.4.4, RFC 4106).
pub mod esp_id {
    /// ESP_3DES.
    pub const DES3: u8 = 3;
    /// ESP_NULL.
    pub const NULL: u8 = 11;
    /// ESP_AES (CBC).
    pub const AES_CBC: u8 = 12;
    /// ESP_AES_GCM_16.
    pub const AES_GCM_16: u8 = 20;
}

/// KEY_IKE: the only ISAKMP transform ID.
pub const KEY_IKE: u8 = 1;

/// Vendor IDs we send or recognise.
pub mod vid {
    /// Dead Peer Detection (RFC 3706).
    pub const DPD: [u8; 16] = [
        0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9, 0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01,
        0x00,
    ];
    /// NAT-T, RFC 3947 (MD5 of "RFC 3947").
    pub const NATT_RFC3947: [u8; 16] = [
        0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45, 0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45,
        0x2f,
    ];
    /// NAT-T draft-ietf-ipsec-nat-t-ike-02.
    pub const NATT_DRAFT_02: [u8; 16] = [
        0xcd, 0x60, 0x46, 0x43, 0x35, 0xdf, 0x21, 0xf8, 0x7c, 0xfd, 0xb2, 0xfc, 0x68, 0xb6, 0xa4,
        0x48,
    ];
    /// NAT-T draft-ietf-ipsec-nat-t-ike-02 with a newline (as strongSwan sends it).
    pub const NATT_DRAFT_02N: [u8; 16] = [
        0x90, 0xcb, 0x80, 0x91, 0x3e, 0xbb, 0x69, 0x6e, 0x08, 0x63, 0x81, 0xb5, 0xec, 0x42, 0x7b,
        0x1f,
    ];
    /// NAT-T draft-ietf-ipsec-nat-t-ike-03.
    pub const NATT_DRAFT_03: [u8; 16] = [
        0x7d, 0x94, 0x19, 0xa6, 0x53, 0x10, 0xca, 0x6f, 0x2c, 0x17, 0x9d, 0x92, 0x15, 0x52, 0x9d,
        0x56,
    ];
    /// Cisco/strongSwan IKE fragmentation ("FRAGMENTATION" MD5 prefix).
    pub const FRAGMENTATION: [u8; 16] = [
        0x40, 0x48, 0xb7, 0xd5, 0x6e, 0xbc, 0xe8, 0x85, 0x25, 0xe7, 0xde, 0x7f, 0x00, 0xd6, 0xc2,
        0xd3,
    ];
    /// XAUTH.
    pub const XAUTH: [u8; 8] = [0x09, 0x00, 0x26, 0x89, 0xdf, 0xd6, 0xb7, 0x12];

    /// What a vendor ID announces.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Known {
        /// RFC 3706.
        Dpd,
        /// RFC 3947.
        NattRfc,
        /// A NAT-T draft (02, 02\n or 03).
        NattDraft,
        /// IKE fragmentation.
        Fragmentation,
        /// XAUTH.
        Xauth,
    }

    /// Recognises a vendor ID.
    pub fn classify(v: &[u8]) -> Option<Known> {
        if v == DPD {
            Some(Known::Dpd)
        } else if v == NATT_RFC3947 {
            Some(Known::NattRfc)
        } else if v == NATT_DRAFT_02 || v == NATT_DRAFT_02N || v == NATT_DRAFT_03 {
            Some(Known::NattDraft)
        } else if v.len() >= 16 && v[..16] == FRAGMENTATION {
            Some(Known::Fragmentation)
        } else if v == XAUTH {
            Some(Known::Xauth)
        } else {
            None
        }
    }
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
fn bad(what: &'static str, value: u64) -> ParseError {
    ParseError::BadValue { what, value }
}

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

// ------------------------------------------------------------ attributes

/// One SA attribute (RFC 2408 §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr<'a> {
    /// Attribute type (without the AF bit).
    pub atype: u16,
    /// Value.
    pub value: AttrValue<'a>,
}

/// A basic (TV) or variable (TLV) attribute value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrValue<'a> {
    /// Two-byte value.
    Basic(u16),
    /// Variable-length value.
    Variable(&'a [u8]),
}

impl AttrValue<'_> {
    /// The value as an integer (variable values up to 8 bytes).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            AttrValue::Basic(v) => Some(u64::from(*v)),
            AttrValue::Variable(b) if !b.is_empty() && b.len() <= 8 => {
                Some(b.iter().fold(0u64, |a, x| (a << 8) | u64::from(*x)))
            }
            AttrValue::Variable(_) => None,
        }
    }
}

/// Parses a list of attributes.
pub fn parse_attrs(mut b: &[u8]) -> Result<Vec<Attr<'_>>, ParseError> {
    let mut out = Vec::new();
    while !b.is_empty() {
        need("SA attribute", b, 4)?;
        let t = be16(b, 0);
        let v = be16(b, 2);
        if t & 0x8000 != 0 {
            out.push(Attr {
                atype: t & 0x7fff,
                value: AttrValue::Basic(v),
            });
            b = &b[4..];
        } else {
            let n = v as usize;
            if 4 + n > b.len() {
                return Err(ParseError::BadLength {
                    what: "SA attribute length",
                    value: n,
                    available: b.len() - 4,
                });
            }
            out.push(Attr {
                atype: t,
                value: AttrValue::Variable(&b[4..4 + n]),
            });
            b = &b[4 + n..];
        }
        if out.len() > 64 {
            return Err(bad("SA attributes per transform", out.len() as u64));
        }
    }
    Ok(out)
}

/// Writes a basic attribute.
pub fn attr_basic(out: &mut Vec<u8>, t: u16, v: u16) {
    out.extend_from_slice(&(t | 0x8000).to_be_bytes());
    out.extend_from_slice(&v.to_be_bytes());
}

/// Writes an attribute holding an integer: basic when it fits 16 bits, else
/// variable with 4 (or 8) bytes.
pub fn attr_int(out: &mut Vec<u8>, t: u16, v: u64) {
    if v <= 0xffff {
        attr_basic(out, t, v as u16);
    } else if v <= 0xffff_ffff {
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(&8u16.to_be_bytes());
        out.extend_from_slice(&v.to_be_bytes());
    }
}

// -------------------------------------------------------- SA / proposals

/// One transform payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransformView<'a> {
    /// Transform number.
    pub num: u8,
    /// Transform ID (KEY_IKE, ESP_AES, ...).
    pub id: u8,
    /// Attributes.
    pub attrs: Vec<Attr<'a>>,
}

/// One proposal payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalView<'a> {
    /// Proposal number (equal numbers form one bundle: AND; different: OR).
    pub num: u8,
    /// Protocol ID.
    pub protocol: u8,
    /// SPI.
    pub spi: &'a [u8],
    /// Transforms (alternatives).
    pub transforms: Vec<TransformView<'a>>,
}

/// An SA payload.
#[derive(Clone, Copy, Debug)]
pub struct SaView<'a> {
    /// The payload body after the generic header (SAi_b for HASH_I/HASH_R).
    pub body: &'a [u8],
}

impl<'a> SaView<'a> {
    /// DOI (0 when the body is too short).
    pub fn doi(&self) -> u32 {
        if self.body.len() < 8 {
            return 0;
        }
        be32(self.body, 0)
    }
    /// Situation (0 when the body is too short).
    pub fn situation(&self) -> u32 {
        if self.body.len() < 8 {
            return 0;
        }
        be32(self.body, 4)
    }
    /// The proposals with their transforms and attributes.
    pub fn proposals(&self) -> Result<Vec<ProposalView<'a>>, ParseError> {
        let b = self.body;
        if self.doi() != DOI_IPSEC {
            return Err(bad("SA DOI", u64::from(self.doi())));
        }
        if self.situation() != SIT_IDENTITY_ONLY {
            return Err(bad("SA situation", u64::from(self.situation())));
        }
        let mut rest = &b[8..];
        let mut out = Vec::new();
        loop {
            need("proposal payload", rest, 8)?;
            let np = rest[0];
            let len = be16(rest, 2) as usize;
            if len < 8 || len > rest.len() {
                return Err(ParseError::BadLength {
                    what: "proposal payload length",
                    value: len,
                    available: rest.len(),
                });
            }
            let p = &rest[..len];
            let spi_len = p[6] as usize;
            let ntrans = p[7] as usize;
            need("proposal SPI", &p[8..], spi_len)?;
            let spi = &p[8..8 + spi_len];
            let mut tb = &p[8 + spi_len..];
            let mut transforms = Vec::new();
            for i in 0..ntrans {
                need("transform payload", tb, 8)?;
                let tnp = tb[0];
                let tlen = be16(tb, 2) as usize;
                if tlen < 8 || tlen > tb.len() {
                    return Err(ParseError::BadLength {
                        what: "transform payload length",
                        value: tlen,
                        available: tb.len(),
                    });
                }
                let last = i + 1 == ntrans;
                if (last && tnp != 0) || (!last && tnp != payload::TRANSFORM) {
                    return Err(bad("transform next payload", u64::from(tnp)));
                }
                transforms.push(TransformView {
                    num: tb[4],
                    id: tb[5],
                    attrs: parse_attrs(&tb[8..tlen])?,
                });
                tb = &tb[tlen..];
            }
            if !tb.is_empty() {
                return Err(bad("bytes after the transforms", tb.len() as u64));
            }
            if ntrans == 0 {
                return Err(bad("transforms in proposal", 0));
            }
            out.push(ProposalView {
                num: p[4],
                protocol: p[5],
                spi,
                transforms,
            });
            if out.len() > 64 {
                return Err(bad("proposals", out.len() as u64));
            }
            rest = &rest[len..];
            match np {
                0 => break,
                payload::PROPOSAL => continue,
                n => return Err(bad("proposal next payload", u64::from(n))),
            }
        }
        if !rest.is_empty() {
            return Err(bad("bytes after the proposals", rest.len() as u64));
        }
        Ok(out)
    }
}

/// One proposal to write: `(number, protocol, spi, transforms)`, each
/// transform `(id, encoded attributes)`.
pub type ProposalSpec = (u8, u8, Vec<u8>, Vec<(u8, Vec<u8>)>);

/// Writes an SA payload body: DOI, situation, then the proposals.
pub fn sa_body(props: &[ProposalSpec]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&DOI_IPSEC.to_be_bytes());
    b.extend_from_slice(&SIT_IDENTITY_ONLY.to_be_bytes());
    for (pi, (num, protocol, spi, xs)) in props.iter().enumerate() {
        let at = b.len();
        b.push(if pi + 1 == props.len() {
            0
        } else {
            payload::PROPOSAL
        });
        b.push(0);
        b.extend_from_slice(&[0, 0]);
        b.push(*num);
        b.push(*protocol);
        b.push(spi.len() as u8);
        b.push(xs.len() as u8);
        b.extend_from_slice(spi);
        for (ti, (id, attrs)) in xs.iter().enumerate() {
            let tat = b.len();
            b.push(if ti + 1 == xs.len() {
                0
            } else {
                payload::TRANSFORM
            });
            b.push(0);
            b.extend_from_slice(&[0, 0]);
            b.push((ti + 1) as u8);
            b.push(*id);
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(attrs);
            let tl = (b.len() - tat) as u16;
            b[tat + 2..tat + 4].copy_from_slice(&tl.to_be_bytes());
        }
        let pl = (b.len() - at) as u16;
        b[at + 2..at + 4].copy_from_slice(&pl.to_be_bytes());
    }
    b
}

// ------------------------------------------------------------ ID payload

/// An identification payload (phase 1 identity or quick-mode client ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdView<'a> {
    /// Body after the generic header: type, protocol, port, data (IDii_b).
    pub body: &'a [u8],
}

impl<'a> IdView<'a> {
    /// Checks the minimum length.
    pub fn parse(body: &'a [u8]) -> Result<Self, ParseError> {
        need("ID payload", body, 4)?;
        Ok(IdView { body })
    }
    /// ID type.
    pub fn id_type(&self) -> u8 {
        self.body[0]
    }
    /// Protocol ID (0 = any).
    pub fn protocol(&self) -> u8 {
        self.body[1]
    }
    /// Port (0 = any).
    pub fn port(&self) -> u16 {
        be16(self.body, 2)
    }
    /// Identification data.
    pub fn data(&self) -> &'a [u8] {
        &self.body[4..]
    }

    /// The phase 1 identity (None for types we cannot compare, e.g. DNs).
    pub fn identity(&self) -> Option<crate::ike::Identity> {
        use crate::ike::Identity;
        let d = self.data();
        Some(match self.id_type() {
            id_type::IPV4_ADDR => Identity::Ipv4(Ipv4Addr::from(<[u8; 4]>::try_from(d).ok()?)),
            id_type::IPV6_ADDR => Identity::Ipv6(Ipv6Addr::from(<[u8; 16]>::try_from(d).ok()?)),
            id_type::FQDN => Identity::Fqdn(String::from_utf8(d.to_vec()).ok()?),
            id_type::USER_FQDN => Identity::Email(String::from_utf8(d.to_vec()).ok()?),
            id_type::KEY_ID => Identity::KeyId(d.to_vec()),
            _ => return None,
        })
    }

    /// The quick-mode client ID as a traffic selector.
    pub fn ts(&self) -> Result<TsEntry, ParseError> {
        let d = self.data();
        let v4 = |b: &[u8]| IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
        let v6 = |b: &[u8]| {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[..16]);
            IpAddr::V6(Ipv6Addr::from(a))
        };
        let (start, end) = match self.id_type() {
            id_type::IPV4_ADDR => {
                if d.len() != 4 {
                    return Err(bad("ID_IPV4_ADDR length", d.len() as u64));
                }
                (v4(d), v4(d))
            }
            id_type::IPV6_ADDR => {
                if d.len() != 16 {
                    return Err(bad("ID_IPV6_ADDR length", d.len() as u64));
                }
                (v6(d), v6(d))
            }
            id_type::IPV4_ADDR_SUBNET => {
                if d.len() != 8 {
                    return Err(bad("ID_IPV4_ADDR_SUBNET length", d.len() as u64));
                }
                let a = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
                let m = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
                if m.leading_ones() + m.trailing_zeros() != 32 {
                    return Err(bad("ID_IPV4_ADDR_SUBNET mask", u64::from(m)));
                }
                (
                    IpAddr::V4(Ipv4Addr::from(a & m)),
                    IpAddr::V4(Ipv4Addr::from((a & m) | !m)),
                )
            }
            id_type::IPV6_ADDR_SUBNET => {
                if d.len() != 32 {
                    return Err(bad("ID_IPV6_ADDR_SUBNET length", d.len() as u64));
                }
                let a = u128::from_be_bytes(d[..16].try_into().unwrap_or([0; 16]));
                let m = u128::from_be_bytes(d[16..].try_into().unwrap_or([0; 16]));
                if m.leading_ones() + m.trailing_zeros() != 128 {
                    return Err(bad("ID_IPV6_ADDR_SUBNET mask", 0));
                }
                (
                    IpAddr::V6(Ipv6Addr::from(a & m)),
                    IpAddr::V6(Ipv6Addr::from((a & m) | !m)),
                )
            }
            id_type::IPV4_ADDR_RANGE => {
                if d.len() != 8 {
                    return Err(bad("ID_IPV4_ADDR_RANGE length", d.len() as u64));
                }
                (v4(d), v4(&d[4..]))
            }
            id_type::IPV6_ADDR_RANGE => {
                if d.len() != 32 {
                    return Err(bad("ID_IPV6_ADDR_RANGE length", d.len() as u64));
                }
                (v6(d), v6(&d[16..]))
            }
            t => return Err(bad("quick-mode ID type", u64::from(t))),
        };
        let port = self.port();
        let t = TsEntry {
            proto: self.protocol(),
            start_port: if port == 0 { 0 } else { port },
            end_port: if port == 0 { 65535 } else { port },
            start,
            end,
        };
        if !crate::ike::ts::valid(&t) {
            return Err(bad("ID address range", 0));
        }
        Ok(t)
    }
}

/// The ID payload body of an identity: type, protocol 0, port 0, data.
pub fn identity_body(id: &crate::ike::Identity) -> Vec<u8> {
    use crate::ike::Identity;
    let (t, d): (u8, Vec<u8>) = match id {
        Identity::Ipv4(a) => (id_type::IPV4_ADDR, a.octets().to_vec()),
        Identity::Ipv6(a) => (id_type::IPV6_ADDR, a.octets().to_vec()),
        Identity::Fqdn(s) => (id_type::FQDN, s.as_bytes().to_vec()),
        Identity::Email(s) => (id_type::USER_FQDN, s.as_bytes().to_vec()),
        Identity::KeyId(k) => (id_type::KEY_ID, k.clone()),
        Identity::Dn(d) => (id_type::DER_ASN1_DN, d.clone()),
    };
    let mut b = vec![t, 0, 0, 0];
    b.extend_from_slice(&d);
    b
}

/// The quick-mode ID body of a selector: an address for a single host,
/// a subnet when the range is a prefix, a range otherwise.
pub fn ts_body(t: &TsEntry) -> Vec<u8> {
    let port = if t.start_port == t.end_port {
        t.start_port
    } else {
        0
    };
    let mut b = Vec::with_capacity(36);
    let nets = crate::ike::ts::range_to_nets(t);
    match (t.start, t.end) {
        (IpAddr::V4(s), IpAddr::V4(e)) if s == e => {
            b.extend_from_slice(&[id_type::IPV4_ADDR, t.proto]);
            b.extend_from_slice(&port.to_be_bytes());
            b.extend_from_slice(&s.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(e)) if s == e => {
            b.extend_from_slice(&[id_type::IPV6_ADDR, t.proto]);
            b.extend_from_slice(&port.to_be_bytes());
            b.extend_from_slice(&s.octets());
        }
        (IpAddr::V4(s), IpAddr::V4(e)) => {
            if let [ipnet::IpNet::V4(n)] = nets.as_slice() {
                b.extend_from_slice(&[id_type::IPV4_ADDR_SUBNET, t.proto]);
                b.extend_from_slice(&port.to_be_bytes());
                b.extend_from_slice(&n.network().octets());
                b.extend_from_slice(&n.netmask().octets());
            } else {
                b.extend_from_slice(&[id_type::IPV4_ADDR_RANGE, t.proto]);
                b.extend_from_slice(&port.to_be_bytes());
                b.extend_from_slice(&s.octets());
                b.extend_from_slice(&e.octets());
            }
        }
        (IpAddr::V6(s), IpAddr::V6(e)) => {
            if let [ipnet::IpNet::V6(n)] = nets.as_slice() {
                b.extend_from_slice(&[id_type::IPV6_ADDR_SUBNET, t.proto]);
                b.extend_from_slice(&port.to_be_bytes());
                b.extend_from_slice(&n.network().octets());
                b.extend_from_slice(&n.netmask().octets());
            } else {
                b.extend_from_slice(&[id_type::IPV6_ADDR_RANGE, t.proto]);
                b.extend_from_slice(&port.to_be_bytes());
                b.extend_from_slice(&s.octets());
                b.extend_from_slice(&e.octets());
            }
        }
        // mixed families never come out of ts::valid selectors; encode the start host
        (s, _) => {
            let (ty, o) = match s {
                IpAddr::V4(a) => (id_type::IPV4_ADDR, a.octets().to_vec()),
                IpAddr::V6(a) => (id_type::IPV6_ADDR, a.octets().to_vec()),
            };
            b.extend_from_slice(&[ty, t.proto]);
            b.extend_from_slice(&port.to_be_bytes());
            b.extend_from_slice(&o);
        }
    }
    b
}

// ------------------------------------------------- notification, delete

/// A notification payload (RFC 2408 §3.14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotifyView<'a> {
    /// DOI.
    pub doi: u32,
    /// Protocol ID.
    pub protocol: u8,
    /// Notify message type.
    pub ntype: u16,
    /// SPI (cookies for ISAKMP, 4 bytes for ESP).
    pub spi: &'a [u8],
    /// Notification data.
    pub data: &'a [u8],
}

impl<'a> NotifyView<'a> {
    /// Parses the body.
    pub fn parse(b: &'a [u8]) -> Result<Self, ParseError> {
        need("notification payload", b, 8)?;
        let spi_len = b[5] as usize;
        need("notification SPI", &b[8..], spi_len)?;
        Ok(NotifyView {
            doi: be32(b, 0),
            protocol: b[4],
            ntype: be16(b, 6),
            spi: &b[8..8 + spi_len],
            data: &b[8 + spi_len..],
        })
    }
    /// The SPI as an ESP SPI.
    pub fn spi32(&self) -> Option<u32> {
        (self.spi.len() == 4).then(|| be32(self.spi, 0))
    }
}

/// A delete payload (RFC 2408 §3.15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeleteView<'a> {
    /// Protocol ID.
    pub protocol: u8,
    /// SPI size.
    pub spi_size: u8,
    /// Number of SPIs.
    pub count: u16,
    /// The SPIs, concatenated.
    pub spis: &'a [u8],
}

impl<'a> DeleteView<'a> {
    /// Parses the body; the SPI list must have exactly count x size bytes.
    pub fn parse(b: &'a [u8]) -> Result<Self, ParseError> {
        need("delete payload", b, 8)?;
        let spi_size = b[5];
        let count = be16(b, 6);
        let want = spi_size as usize * count as usize;
        if b.len() - 8 != want {
            return Err(ParseError::BadLength {
                what: "delete payload SPIs",
                value: want,
                available: b.len() - 8,
            });
        }
        if be32(b, 0) != DOI_IPSEC {
            return Err(bad("delete DOI", u64::from(be32(b, 0))));
        }
        Ok(DeleteView {
            protocol: b[4],
            spi_size,
            count,
            spis: &b[8..],
        })
    }
    /// ESP/AH SPIs (size 4).
    pub fn spis32(&self) -> impl Iterator<Item = u32> + '_ {
        let ok = self.spi_size == 4;
        self.spis
            .chunks_exact(4)
            .filter(move |_| ok)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
    /// ISAKMP SA cookie pairs (size 16).
    pub fn cookies(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let ok = self.spi_size == 16;
        self.spis
            .chunks_exact(16)
            .filter(move |_| ok)
            .map(|c| (be64(c, 0), be64(c, 8)))
    }
}

/// NAT original address (RFC 3947 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatOa {
    /// The address.
    pub addr: IpAddr,
}

impl NatOa {
    /// Parses the body.
    pub fn parse(b: &[u8]) -> Result<Self, ParseError> {
        need("NAT-OA payload", b, 4)?;
        let d = &b[4..];
        let addr = match b[0] {
            id_type::IPV4_ADDR if d.len() == 4 => IpAddr::V4(Ipv4Addr::new(d[0], d[1], d[2], d[3])),
            id_type::IPV6_ADDR if d.len() == 16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(d);
                IpAddr::V6(Ipv6Addr::from(a))
            }
            t => return Err(bad("NAT-OA ID type", u64::from(t))),
        };
        Ok(NatOa { addr })
    }
}

/// A certificate or certificate request payload (parsed for issue 13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertView<'a> {
    /// Certificate encoding / type (4 = X.509 signature).
    pub encoding: u8,
    /// Certificate data or CA name.
    pub data: &'a [u8],
}

impl<'a> CertView<'a> {
    /// Parses the body.
    pub fn parse(b: &'a [u8]) -> Result<Self, ParseError> {
        need("certificate payload", b, 1)?;
        Ok(CertView {
            encoding: b[0],
            data: &b[1..],
        })
    }
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
