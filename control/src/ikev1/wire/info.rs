//! Notification, Delete, NAT-OA and certificate payloads.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::bytes::*;
use super::codes::*;
use crate::ike::error::ParseError;

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
