//! The SA payload: proposals and transforms, parsed and built.

use super::attrs::*;
use super::bytes::*;
use super::codes::*;
use crate::ike::error::ParseError;

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
    /// Transforms (alternatives). Possibly none: strongSwan sends a
    /// proposal without transforms for an algorithm it has no IKEv1
    /// transform ID for (ChaCha20-Poly1305); it offers nothing, and the
    /// choosers say so.
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
