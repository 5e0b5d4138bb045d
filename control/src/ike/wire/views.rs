//! Views of the payload bodies: SA (proposals, transforms), KE, ID, AUTH,
//! Notify, Delete, and traffic selectors.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::bytes::{be16, be32, need};
use super::codes::*;
use crate::ike::error::ParseError;

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
