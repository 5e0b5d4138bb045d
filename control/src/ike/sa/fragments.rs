//! Receiving IKE fragments (RFC 7383): each Encrypted Fragment payload is
//! decrypted and its integrity checked on its own before it is kept; the
//! message is handed on once complete. Limits from `Settings`.

use super::*;
use crate::ike::frag::{skf_numbers, FragReject, Limits, Reassembly};

/// The fragment number of an SKF message (None if it is not one).
pub(super) fn frag_number(msg: &[u8], hdr: Header<'_>) -> Option<u16> {
    if hdr.next_payload() != payload::SKF {
        return None;
    }
    let p = Payloads::parse(&msg[HEADER_LEN..], hdr.next_payload(), HEADER_LEN).ok()?;
    p.skf
        .and_then(|(_, _, body)| skf_numbers(body))
        .map(|(n, _)| n)
}

impl IkeSa {
    pub(super) fn fragment(
        &mut self,
        ctx: &mut Ctx,
        msg: &[u8],
        hdr: Header<'_>,
        (next, at, body): (u8, usize, &[u8]),
        now: Instant,
    ) -> Option<(u8, crypto::Secret)> {
        let l = Limits {
            max_fragments: ctx.settings.max_fragments,
            max_bytes: ctx.settings.max_reassembly,
            timeout: ctx.settings.reassembly_timeout,
        };
        if !self.frag {
            // fragments from a peer that did not announce them (or before we agreed)
            ctx.drop(IkeDrop::Unexpected);
            return None;
        }
        let Some((num, total)) = skf_numbers(body) else {
            ctx.drop(IkeDrop::Malformed);
            return None;
        };
        match Reassembly::check_numbers(num, total, &l) {
            Ok(()) => {}
            Err(FragReject::TooLarge) => {
                ctx.drop(IkeDrop::Invalid);
                return None;
            }
            Err(_) => {
                ctx.drop(IkeDrop::Malformed);
                return None;
            }
        }
        let rx = self.rx.as_ref()?;
        let plain = match rx.open_with(msg, at, 4) {
            Ok(p) => p,
            Err(IkeError::Integrity) => {
                ctx.drop(IkeDrop::Integrity);
                return None;
            }
            Err(_) => {
                ctx.drop(IkeDrop::Malformed);
                return None;
            }
        };
        let (id, response) = (hdr.message_id(), hdr.is_response());
        if !self
            .frag_rx
            .as_ref()
            .is_some_and(|r| r.fits(id, response, total, now, &l))
        {
            self.frag_rx = Some(Reassembly::new(id, response, total, now));
        }
        let r = self.frag_rx.as_mut()?;
        match r.add(num, next, plain, &l) {
            Ok(Some(done)) => {
                self.frag_rx = None;
                Some(done)
            }
            Ok(None) => None,
            Err(FragReject::Duplicate) => {
                ctx.drop(IkeDrop::Unexpected);
                None
            }
            Err(FragReject::TooLarge) => {
                self.frag_rx = None;
                ctx.drop(IkeDrop::Invalid);
                None
            }
            Err(FragReject::Malformed) => {
                ctx.drop(IkeDrop::Malformed);
                None
            }
        }
    }
}
