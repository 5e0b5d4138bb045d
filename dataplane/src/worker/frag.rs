//! IPv4 fragmentation by the gateway (RFC 791 §3.2, RFC 815 for the
//! receiver's view): a transit IPv4 packet with DF clear that is larger than
//! the outgoing link MTU, or that would no longer fit the path MTU once
//! encapsulated in ESP (pre-fragmentation, RFC 4459 §5.2, as Linux and
//! strongSwan do in tunnel mode), is split into fragments that each fit.
//!
//! The original buffer becomes the first fragment (its header rewritten in
//! place and its tail trimmed); the others are copied into buffers from the
//! I/O backend's pool (no allocation). Offsets are in 8-byte units relative
//! to the original packet's own offset (a fragment may be fragmented again),
//! every fragment but the last has MF set, the last keeps the original's MF,
//! all keep the identification. The first fragment keeps every option; the
//! others carry only the options whose copy flag is set (RFC 791 §3.1),
//! padded to a 4-byte multiple with end-of-options bytes.

use arrayvec::ArrayVec;

use crate::drop::DropReason;
use crate::pkt::PacketBuf;
use crate::wire::ipv4::{FLAG_MF, FRAG_OFFSET_MASK};
use crate::wire::{ip_version, Ipv4Packet, IPV4_HEADER_LEN};

/// Largest number of fragments one packet is split into (with a 1280-byte
/// path MTU a 64 KiB packet needs 52).
pub const MAX_FRAGS: usize = 64;

/// Why a packet could not be fragmented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FragError {
    /// Not an IPv4 packet, or its header or total length is inconsistent.
    #[error("malformed IPv4 header: {0}")]
    Malformed(&'static str),
    /// The DF flag is set: the packet must not be fragmented.
    #[error("DF set")]
    DontFragment,
    /// The MTU leaves no room for 8 payload bytes after the header, or the
    /// packet would need more than [`MAX_FRAGS`] fragments.
    #[error("MTU {mtu} too small for a {len}-byte packet")]
    MtuTooSmall {
        /// The MTU asked for.
        mtu: usize,
        /// The packet's length.
        len: usize,
    },
    /// The backend had no free buffer for a fragment.
    #[error("no free packet buffer")]
    NoBuffer,
    /// A buffer from the backend is too small for a fragment.
    #[error("packet buffer too small")]
    NoRoom,
}

impl FragError {
    /// The drop reason a packet that could not be fragmented is counted under.
    pub fn drop_reason(self) -> DropReason {
        match self {
            FragError::Malformed(_) => DropReason::Malformed,
            FragError::DontFragment | FragError::MtuTooSmall { .. } => DropReason::TooBig,
            FragError::NoBuffer => DropReason::NoBuffer,
            FragError::NoRoom => DropReason::NoRoom,
        }
    }
}

/// How a packet is cut: header lengths and payload bytes per fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Header length of the first fragment (the original header).
    pub hl_first: usize,
    /// Header length of the other fragments (copied options only).
    pub hl_rest: usize,
    /// Payload bytes of the original packet.
    pub payload: usize,
    /// Payload bytes in the first fragment (a multiple of 8).
    pub step_first: usize,
    /// Payload bytes in each further fragment but the last (a multiple of 8).
    pub step_rest: usize,
    /// Number of fragments.
    pub count: usize,
}

impl Plan {
    /// Payload range `(start, len)` of fragment `k` within the original payload.
    pub fn range(&self, k: usize) -> (usize, usize) {
        if k == 0 {
            return (0, self.step_first.min(self.payload));
        }
        let start = self.step_first + (k - 1) * self.step_rest;
        let len = if k + 1 == self.count {
            self.payload - start
        } else {
            self.step_rest
        };
        (start, len)
    }
}

/// Length of the options that go into every fragment (copy flag set),
/// written to `out` when given, padded to a multiple of 4. Options are
/// walked as RFC 791 §3.1 lays them out; a malformed list is an error.
fn copied_options(opts: &[u8], mut out: Option<&mut [u8]>) -> Result<usize, FragError> {
    let mut i = 0;
    let mut n = 0;
    while i < opts.len() {
        let ty = opts[i];
        let len = match ty {
            0 => break,
            1 => 1,
            _ => {
                let l = usize::from(*opts.get(i + 1).ok_or(FragError::Malformed("option"))?);
                if l < 2 || i + l > opts.len() {
                    return Err(FragError::Malformed("option length"));
                }
                l
            }
        };
        if ty & 0x80 != 0 {
            if let Some(o) = out.as_deref_mut() {
                o[n..n + len].copy_from_slice(&opts[i..i + len]);
            }
            n += len;
        }
        i += len;
    }
    let padded = n.div_ceil(4) * 4;
    if let Some(o) = out {
        o[n..padded].fill(0);
    }
    Ok(padded)
}

/// Checks that `d` is an IPv4 packet that may be fragmented and plans its
/// fragments so that each is at most `mtu` bytes. A packet that already
/// fits gives a one-fragment plan.
pub fn plan(d: &[u8], mtu: usize) -> Result<Plan, FragError> {
    if d.len() < IPV4_HEADER_LEN || ip_version(d) != Some(4) {
        return Err(FragError::Malformed("version"));
    }
    let ip = Ipv4Packet::new_unchecked(d);
    let hl = ip.header_len();
    let total = usize::from(ip.total_len());
    if hl < IPV4_HEADER_LEN || total < hl || total > d.len() {
        return Err(FragError::Malformed("length"));
    }
    let payload = total - hl;
    let off = usize::from(ip.frag_offset()) * 8;
    if off + payload > 0xffff {
        // Would end past the largest datagram: no fragment offset can say it.
        return Err(FragError::Malformed("fragment offset"));
    }
    if total <= mtu {
        return Ok(Plan {
            hl_first: hl,
            hl_rest: hl,
            payload,
            step_first: payload,
            step_rest: payload,
            count: 1,
        });
    }
    if ip.df() {
        return Err(FragError::DontFragment);
    }
    let hl_rest = IPV4_HEADER_LEN + copied_options(&d[IPV4_HEADER_LEN..hl], None)?;
    let too_small = FragError::MtuTooSmall { mtu, len: total };
    let step_first = mtu.checked_sub(hl).ok_or(too_small)? & !7;
    let step_rest = mtu.checked_sub(hl_rest).ok_or(too_small)? & !7;
    if step_first == 0 || step_rest == 0 {
        return Err(too_small);
    }
    // The payload does not fit one fragment (total > mtu), so count >= 2.
    let count = 1 + (payload - step_first).div_ceil(step_rest);
    if count > MAX_FRAGS {
        return Err(too_small);
    }
    Ok(Plan {
        hl_first: hl,
        hl_rest,
        payload,
        step_first,
        step_rest,
        count,
    })
}

/// Writes fragment `k` (k >= 1) of `orig` per `p` into `out`, which must be
/// exactly `p.hl_rest + p.range(k).1` bytes long.
fn write_rest(orig: &[u8], p: &Plan, k: usize, out: &mut [u8]) -> Result<(), FragError> {
    let (start, len) = p.range(k);
    let hl = p.hl_rest;
    out[..IPV4_HEADER_LEN].copy_from_slice(&orig[..IPV4_HEADER_LEN]);
    copied_options(
        &orig[IPV4_HEADER_LEN..p.hl_first],
        Some(&mut out[IPV4_HEADER_LEN..hl]),
    )?;
    out[hl..hl + len].copy_from_slice(&orig[p.hl_first + start..p.hl_first + start + len]);
    let last = k + 1 == p.count;
    set_fields(out, hl, len, start, last);
    Ok(())
}

/// Sets version/IHL, total length, flags/offset and checksum of a fragment
/// whose header (`hl` bytes) is otherwise the original's.
fn set_fields(h: &mut [u8], hl: usize, len: usize, start: usize, last: bool) {
    let mut ip = Ipv4Packet::new_unchecked(h);
    let orig_ff = ip.flags_frag();
    let orig_mf = orig_ff & FLAG_MF;
    let orig_off = orig_ff & FRAG_OFFSET_MASK;
    let off = orig_off + (start / 8) as u16;
    let mf = if last { orig_mf } else { FLAG_MF };
    // The reserved bit stays as it was; DF is clear (the packet was fragmentable).
    let ff = (orig_ff & 0x8000) | mf | off;
    ip.set_ver_ihl(hl);
    ip.set_total_len((hl + len) as u16);
    ip.set_flags_frag(ff);
    ip.fill_checksum();
}

/// Splits the IPv4 packet `pkt` into fragments of at most `mtu` bytes, in
/// order, into `out` (which must be empty): `pkt` itself becomes the first,
/// the others come from `alloc`. A packet that fits is pushed unchanged.
/// On error `pkt` is given back with the reason, and `out` holds the
/// buffers taken from `alloc`, for the caller to free.
pub fn fragment<P: PacketBuf, const N: usize>(
    mut pkt: P,
    mtu: usize,
    mut alloc: impl FnMut() -> Option<P>,
    out: &mut ArrayVec<P, N>,
) -> Result<(), (P, FragError)> {
    let p = match plan(pkt.data(), mtu) {
        Ok(p) => p,
        Err(e) => return Err((pkt, e)),
    };
    if p.count == 1 {
        let extra = pkt.len() - (p.hl_first + p.payload);
        pkt.trim_back(extra);
        if let Err(pkt) = out.try_push(pkt) {
            return Err((pkt.element(), FragError::MtuTooSmall { mtu, len: 0 }));
        }
        return Ok(());
    }
    if p.count > out.remaining_capacity() {
        let len = pkt.len();
        return Err((pkt, FragError::MtuTooSmall { mtu, len }));
    }
    for k in 1..p.count {
        let Some(mut f) = alloc() else {
            return Err((pkt, FragError::NoBuffer));
        };
        let n = p.hl_rest + p.range(k).1;
        let ok = f.append(n);
        out.push(f);
        if !ok {
            return Err((pkt, FragError::NoRoom));
        }
        if let Some(f) = out.last_mut() {
            if let Err(e) = write_rest(pkt.data(), &p, k, f.data_mut()) {
                return Err((pkt, e));
            }
        }
    }
    let (_, len) = p.range(0);
    let keep = p.hl_first + len;
    let extra = pkt.len() - keep;
    pkt.trim_back(extra);
    set_fields(pkt.data_mut(), p.hl_first, len, 0, false);
    out.insert(0, pkt);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkt::HeapBuf;
    use crate::wire::checksum;
    use proptest::prelude::*;

    fn packet(payload: usize, opts: &[u8], id: u16, ff: u16, seed: u8) -> Vec<u8> {
        let hl = 20 + opts.len();
        let mut p = vec![0u8; hl + payload];
        p[0] = 0x40 | (hl / 4) as u8;
        p[1] = 0xb8;
        p[2..4].copy_from_slice(&((hl + payload) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&id.to_be_bytes());
        p[6..8].copy_from_slice(&ff.to_be_bytes());
        p[8] = 63;
        p[9] = 17;
        p[12..16].copy_from_slice(&[10, 1, 0, 2]);
        p[16..20].copy_from_slice(&[10, 2, 0, 2]);
        p[20..hl].copy_from_slice(opts);
        for (i, b) in p[hl..].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
        }
        let c = checksum::checksum(&p[..hl]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    fn frag(orig: &[u8], mtu: usize) -> Result<Vec<Vec<u8>>, FragError> {
        let mut out: ArrayVec<HeapBuf, MAX_FRAGS> = ArrayVec::new();
        let pool_size = 2048;
        let r = fragment(
            HeapBuf::from_slice(orig),
            mtu,
            || Some(HeapBuf::new(128, pool_size, 64)),
            &mut out,
        );
        match r {
            Ok(()) => Ok(out.iter().map(|b| b.data().to_vec()).collect()),
            Err((_, e)) => Err(e),
        }
    }

    /// Checks every fragment and reassembles them (RFC 815 style).
    fn check_and_reassemble(orig: &[u8], frags: &[Vec<u8>], mtu: usize) -> Vec<u8> {
        let ohl = usize::from(orig[0] & 0x0f) * 4;
        let off0 = usize::from(u16::from_be_bytes([orig[6], orig[7]]) & 0x1fff) * 8;
        let orig_mf = orig[6] & 0x20 != 0;
        let payload_len = orig.len() - ohl;
        let mut payload = vec![None::<u8>; payload_len];
        for (k, f) in frags.iter().enumerate() {
            assert!(f.len() <= mtu, "fragment {k}: {} > {mtu}", f.len());
            let hl = usize::from(f[0] & 0x0f) * 4;
            assert_eq!(f[0] >> 4, 4);
            assert_eq!(checksum::checksum(&f[..hl]), 0, "fragment {k} checksum");
            assert_eq!(usize::from(u16::from_be_bytes([f[2], f[3]])), f.len());
            assert_eq!(f[4..6], orig[4..6], "id");
            assert_eq!(f[1], orig[1]);
            assert_eq!(f[8..10], orig[8..10], "ttl/proto");
            assert_eq!(f[12..20], orig[12..20], "addresses");
            assert_eq!(f[6] & 0x40, 0, "DF");
            let ff = u16::from_be_bytes([f[6], f[7]]);
            let mf = ff & 0x2000 != 0;
            let off = usize::from(ff & 0x1fff) * 8 - off0;
            let last = k + 1 == frags.len();
            assert_eq!(mf, if last { orig_mf } else { true }, "MF of {k}");
            if !last {
                assert_eq!((f.len() - hl) % 8, 0, "non-last payload multiple of 8");
            }
            if k == 0 {
                assert_eq!(hl, ohl);
                for i in (0..hl).filter(|i| ![2, 3, 6, 7, 10, 11].contains(i)) {
                    assert_eq!(f[i], orig[i], "first header byte {i}");
                }
            }
            for (i, b) in f[hl..].iter().enumerate() {
                assert!(payload[off + i].is_none(), "overlap at {}", off + i);
                payload[off + i] = Some(*b);
            }
        }
        let payload: Vec<u8> = payload
            .into_iter()
            .enumerate()
            .map(|(i, b)| b.unwrap_or_else(|| panic!("hole at {i}")))
            .collect();
        let mut r = orig[..ohl].to_vec();
        r.extend_from_slice(&payload);
        r
    }

    #[test]
    fn splits_1500_into_two_for_1400() {
        let p = packet(1480, &[], 0x1234, 0, 1);
        let f = frag(&p, 1400).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].len(), 20 + 1376);
        assert_eq!(u16::from_be_bytes([f[0][6], f[0][7]]), 0x2000);
        assert_eq!(u16::from_be_bytes([f[1][6], f[1][7]]), 1376 / 8);
        assert_eq!(check_and_reassemble(&p, &f, 1400), p);
    }

    #[test]
    fn fitting_packet_is_unchanged() {
        let p = packet(100, &[], 1, 0x4000, 2);
        assert_eq!(frag(&p, 1500).unwrap(), vec![p]);
    }

    #[test]
    fn df_and_tiny_mtu_are_refused() {
        let p = packet(1480, &[], 1, 0x4000, 3);
        assert_eq!(frag(&p, 1400).unwrap_err(), FragError::DontFragment);
        let p = packet(1480, &[], 1, 0, 3);
        assert!(matches!(
            frag(&p, 27).unwrap_err(),
            FragError::MtuTooSmall { .. }
        ));
        // 1480 / 8 = 185 fragments > MAX_FRAGS.
        assert!(matches!(
            frag(&p, 28).unwrap_err(),
            FragError::MtuTooSmall { .. }
        ));
        // 1480 payload bytes in steps of 248: 6 fragments.
        assert_eq!(frag(&p, 28 + 8 * 30).unwrap().len(), 6);
    }

    #[test]
    fn offset_past_64k_is_refused() {
        // Offset 0x1fff * 8 = 65528 plus 1400 bytes: past the largest datagram.
        let p = packet(1400, &[], 1, 0x1fff, 6);
        assert_eq!(frag(&p, 576), Err(FragError::Malformed("fragment offset")));
        // The largest legal last fragment is cut fine.
        let p = packet(1400, &[], 1, ((65535 - 1400) / 8) as u16, 6);
        let f = frag(&p, 576).unwrap();
        assert_eq!(check_and_reassemble(&p, &f, 576), p);
    }

    #[test]
    fn options_copied_only_with_copy_flag() {
        // Security-like option (copied, type 0x82, len 4), a NOP, record
        // route (not copied, type 7, len 7).
        let opts = [0x82, 4, 0xaa, 0xbb, 1, 7, 7, 4, 0, 0, 0, 0];
        let p = packet(600, &opts, 9, 0, 4);
        let f = frag(&p, 200).unwrap();
        assert_eq!(f[0][20..32], p[20..32]);
        for x in &f[1..] {
            assert_eq!(x[0] & 0x0f, 6, "20 + 4 copied option bytes");
            assert_eq!(x[20..24], [0x82, 4, 0xaa, 0xbb]);
        }
        assert_eq!(check_and_reassemble(&p, &f, 200), p);
        let bad = packet(600, &[0x82, 9, 0, 0], 9, 0, 4);
        assert!(matches!(frag(&bad, 200), Err(FragError::Malformed(_))));
    }

    #[test]
    fn pool_exhaustion_gives_buffers_back() {
        let p = packet(3000, &[], 5, 0, 5);
        let mut out: ArrayVec<HeapBuf, MAX_FRAGS> = ArrayVec::new();
        let mut left = 1;
        let r = fragment(
            HeapBuf::from_slice(&p),
            1400,
            || {
                if left == 0 {
                    return None;
                }
                left -= 1;
                Some(HeapBuf::new(128, 1600, 64))
            },
            &mut out,
        );
        let (back, e) = r.unwrap_err();
        assert_eq!(e, FragError::NoBuffer);
        assert_eq!(back.data(), &p[..]);
        assert_eq!(out.len(), 1);
        // A buffer too small for a fragment.
        let mut out: ArrayVec<HeapBuf, MAX_FRAGS> = ArrayVec::new();
        let r = fragment(
            HeapBuf::from_slice(&p),
            1400,
            || Some(HeapBuf::new(0, 100, 0)),
            &mut out,
        );
        assert_eq!(r.unwrap_err().1, FragError::NoRoom);
        assert_eq!(out.len(), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn fragments_reassemble(
            payload in 0usize..9000,
            mtu in 68usize..2000,
            mf in any::<bool>(),
            off in prop_oneof![0u16..100, 7000u16..0x2000],
            nopts in 0usize..3,
            seed in any::<u8>(),
        ) {
            let opts: &[u8] = match nopts {
                0 => &[],
                1 => &[0x94, 4, 0, 0],
                _ => &[7, 7, 4, 0, 0, 0, 0, 0x83, 3, 1, 1, 0],
            };
            let ff = off | if mf { 0x2000 } else { 0 };
            let p = packet(payload, opts, 0xbeef, ff, seed);
            match frag(&p, mtu) {
                Ok(f) => {
                    prop_assert!(!f.is_empty());
                    let r = check_and_reassemble(&p, &f, mtu);
                    prop_assert_eq!(r, p);
                }
                Err(FragError::MtuTooSmall { .. }) => {
                    prop_assert!(p.len() > mtu);
                    // Only refused when more than MAX_FRAGS would be needed.
                    prop_assert!(payload > (MAX_FRAGS - 1) * 8);
                }
                Err(FragError::Malformed("fragment offset")) => {
                    prop_assert!(usize::from(off) * 8 + payload + opts.len() > 0xffff - 20);
                }
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
        }

        #[test]
        fn never_panics_on_garbage(d in proptest::collection::vec(any::<u8>(), 0..200), mtu in 0usize..300) {
            let _ = frag(&d, mtu);
        }
    }
}
