//! SA attributes (RFC 2408 §3.3): basic and variable, parsed and written.

use super::bytes::*;
use crate::ike::error::ParseError;

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
