//! Tests of [`super`] (`reasm.rs`).

use super::*;
use crate::pkt::HeapBuf;
use crate::wire::{checksum, Ipv4Repr, Ipv6Repr};
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

const HOPOPT_LEN: usize = 8;

/// A whole IPv4 or IPv6 packet (optionally with an IPv6 hop-by-hop
/// header) carrying `len` bytes of ESP or UDP.
fn datagram(v6: bool, hbh: bool, udp: bool, len: usize, src: u8, seed: u8) -> Vec<u8> {
    let p = if udp { proto::UDP } else { proto::ESP };
    let mut body: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(73).wrapping_add(seed))
        .collect();
    if udp && len >= 8 {
        body[2..4].copy_from_slice(&4500u16.to_be_bytes());
        body[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    }
    if v6 {
        let ext = if hbh { HOPOPT_LEN } else { 0 };
        let mut d = vec![0u8; IPV6_HEADER_LEN + ext];
        Ipv6Repr {
            traffic_class: 0,
            flow_label: 7,
            payload_len: (ext + len) as u16,
            next_header: if hbh { proto::HOPOPT } else { p },
            hop_limit: 64,
            src: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(src)),
            dst: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1),
        }
        .emit(&mut d);
        if hbh {
            // Next header, length 0 (8 bytes), PadN with 4 bytes.
            d[40..48].copy_from_slice(&[p, 0, 1, 4, 0, 0, 0, 0]);
        }
        d.extend_from_slice(&body);
        d
    } else {
        let mut d = vec![0u8; 20];
        Ipv4Repr {
            tos: 0,
            total_len: (20 + len) as u16,
            ident: 0x4242,
            df: false,
            ttl: 64,
            protocol: p,
            src: Ipv4Addr::new(192, 0, 2, src),
            dst: Ipv4Addr::new(198, 51, 100, 1),
        }
        .emit(&mut d);
        d.extend_from_slice(&body);
        d
    }
}

/// Unfragmentable part of a datagram built by [`datagram`].
fn unfrag_len(d: &[u8]) -> usize {
    if d[0] >> 4 == 6 {
        if d[6] == proto::HOPOPT {
            48
        } else {
            40
        }
    } else {
        usize::from(d[0] & 15) * 4
    }
}

/// The fragment of `orig` with payload bytes `[off, off + len)`.
fn fragment(orig: &[u8], off: usize, len: usize, more: bool, ecn: u8) -> Vec<u8> {
    let hl = unfrag_len(orig);
    let body = &orig[hl + off..hl + off + len];
    if orig[0] >> 4 == 6 {
        let mut d = orig[..hl].to_vec();
        let nh_field = if hl == 48 { 40 } else { 6 };
        let p = d[nh_field];
        d[nh_field] = proto::IPV6_FRAG;
        let fo = (off as u16) | u16::from(more);
        d.extend_from_slice(&[p, 0]);
        d.extend_from_slice(&fo.to_be_bytes());
        d.extend_from_slice(&0xdead_beefu32.to_be_bytes());
        d.extend_from_slice(body);
        let mut ip = Ipv6Packet::new_unchecked(&mut d[..]);
        let pl = (hl - 40 + 8 + len) as u16;
        ip.set_payload_len(pl);
        ip.set_ecn(ecn);
        d
    } else {
        let mut d = orig[..hl].to_vec();
        d.extend_from_slice(body);
        let mut ip = Ipv4Packet::new_unchecked(&mut d[..]);
        ip.set_total_len((hl + len) as u16);
        ip.set_flags_frag((off / 8) as u16 | if more { ipv4::FLAG_MF } else { 0 });
        ip.set_ecn(ecn);
        ip.fill_checksum();
        d
    }
}

/// Fragments of `orig` cut every `step` bytes.
fn cut(orig: &[u8], step: usize) -> Vec<Vec<u8>> {
    let total = orig.len() - unfrag_len(orig);
    let mut v = Vec::new();
    let mut off = 0;
    while off < total {
        let len = step.min(total - off);
        v.push(fragment(orig, off, len, off + len < total, 0));
        off += len;
    }
    v
}

struct Run {
    r: Reassembler,
    drops: DropCounters,
    done: Vec<Vec<u8>>,
    in_done: u64,
    pushed: u64,
}

impl Run {
    fn new(cfg: ReasmConfig) -> Self {
        Run {
            r: Reassembler::new(cfg),
            drops: DropCounters::default(),
            done: Vec::new(),
            in_done: 0,
            pushed: 0,
        }
    }
    fn push_at(&mut self, d: &[u8], now: u64) -> Push {
        self.pushed += 1;
        let f = match parse(d) {
            Ok(Some(f)) if !f.is_atomic() => f,
            Ok(f) => {
                // A whole packet (offset 0, no more fragments).
                let mut b = HeapBuf::from_slice(d);
                if let Some(f) = f {
                    assert!(strip_atomic(&mut b, &f));
                }
                self.in_done += 1;
                self.done.push(b.data().to_vec());
                return Push::Held;
            }
            Err(e) => panic!("not a fragment: {e:?}"),
        };
        let before = self.r.held_fragments();
        let res = self.r.push(d, &f, now, &self.drops);
        if let Push::Complete { slot, len } = res {
            let held = self.r.held_fragments();
            let mut out = vec![0u8; len];
            assert_eq!(self.r.emit(slot, &mut out), len);
            self.in_done += held - self.r.held_fragments();
            self.done.push(out);
        }
        let _ = before;
        res
    }
    fn push(&mut self, d: &[u8]) -> Push {
        self.push_at(d, 0)
    }
    fn drops(&self, r: DropReason) -> u64 {
        self.drops.get(r)
    }
    /// Every fragment is in a reassembled datagram, counted as a drop,
    /// or held.
    fn balanced(&self) -> bool {
        self.pushed == self.in_done + self.drops.total() + self.r.held_fragments()
    }
}

/// The original as reassembly gives it back (IPv4: offset/flags 0 and
/// checksum as `datagram` wrote them, which they already are).
fn expect(orig: &[u8]) -> Vec<u8> {
    orig.to_vec()
}

#[test]
fn v4_in_order_and_reversed() {
    let orig = datagram(false, false, false, 1480, 1, 1);
    let frags = cut(&orig, 1256);
    assert_eq!(frags.len(), 2);
    let mut run = Run::new(ReasmConfig::default());
    assert_eq!(run.push(&frags[0]), Push::Held);
    assert!(matches!(
        run.push(&frags[1]),
        Push::Complete { len: 1500, .. }
    ));
    assert_eq!(run.done[0], expect(&orig));
    assert_eq!(checksum::checksum(&run.done[0][..20]), 0);
    for f in cut(&orig, 200).iter().rev() {
        run.push(f);
    }
    assert_eq!(run.done.len(), 2);
    assert_eq!(run.done[1], expect(&orig));
    assert_eq!(run.r.in_use(), 0);
    assert!(run.balanced());
    assert_eq!(run.drops.total(), 0);
}

#[test]
fn v6_with_hop_by_hop_and_udp() {
    for (hbh, udp) in [(false, false), (true, false), (false, true), (true, true)] {
        let orig = datagram(true, hbh, udp, 2000, 2, 3);
        let mut run = Run::new(ReasmConfig::default());
        let frags = cut(&orig, 512);
        for f in frags.iter().skip(1) {
            assert_eq!(run.push(f), Push::Held);
        }
        assert!(matches!(run.push(&frags[0]), Push::Complete { .. }));
        assert_eq!(run.done[0], orig, "hbh {hbh} udp {udp}");
        assert!(run.balanced());
    }
}

#[test]
fn overlap_drops_the_whole_datagram_duplicate_does_not() {
    let orig = datagram(false, false, false, 1000, 1, 1);
    let mut run = Run::new(ReasmConfig::default());
    run.push(&fragment(&orig, 0, 400, true, 0));
    // Exact duplicate and a fragment inside it: duplicates.
    assert_eq!(
        run.push(&fragment(&orig, 0, 400, true, 0)),
        Push::Dropped(DropReason::FragDuplicate)
    );
    assert_eq!(
        run.push(&fragment(&orig, 200, 96, true, 0)),
        Push::Dropped(DropReason::FragDuplicate)
    );
    assert_eq!(run.r.in_use(), 1);
    // Partial overlap: the held fragment and this one go.
    assert_eq!(
        run.push(&fragment(&orig, 392, 400, true, 0)),
        Push::Dropped(DropReason::FragOverlap)
    );
    assert_eq!(run.drops(DropReason::FragOverlap), 2);
    assert_eq!(run.drops(DropReason::FragDuplicate), 2);
    assert_eq!(run.r.in_use(), 0);
    // RFC 5722: IPv6 the same; a fragment covering a held one is an overlap.
    let orig = datagram(true, false, false, 1000, 1, 1);
    run.push(&fragment(&orig, 8, 96, true, 0));
    assert_eq!(
        run.push(&fragment(&orig, 0, 400, true, 0)),
        Push::Dropped(DropReason::FragOverlap)
    );
    assert_eq!(run.drops(DropReason::FragOverlap), 4);
    assert!(run.balanced());
}

#[test]
fn bad_lengths_and_offsets() {
    let mut run = Run::new(ReasmConfig::default());
    // IPv6 non-last fragment not a multiple of 8: dropped alone.
    let o6 = datagram(true, false, false, 1000, 1, 1);
    run.push(&fragment(&o6, 0, 400, true, 0));
    assert_eq!(
        run.push(&fragment(&o6, 400, 100, true, 0)),
        Push::Dropped(DropReason::FragInvalid)
    );
    assert_eq!(run.r.in_use(), 1);
    // A last fragment ending before bytes held: the datagram goes.
    assert_eq!(
        run.push(&fragment(&o6, 8, 100, false, 0)),
        Push::Dropped(DropReason::FragInvalid)
    );
    assert_eq!(run.r.in_use(), 0);
    // Two last fragments that disagree.
    run.push(&fragment(&o6, 800, 200, false, 0));
    assert_eq!(
        run.push(&fragment(&o6, 600, 100, false, 0)),
        Push::Dropped(DropReason::FragInvalid)
    );
    // Bytes past the last fragment.
    run.push(&fragment(&o6, 800, 200, false, 0));
    let longer = datagram(true, false, false, 1200, 1, 1);
    assert_eq!(
        run.push(&fragment(&longer, 1000, 40, true, 0)),
        Push::Dropped(DropReason::FragInvalid)
    );
    // IPv4: a non-last fragment is cut to a multiple of 8 (Linux).
    let o4 = datagram(false, false, false, 1000, 1, 1);
    run.push(&fragment(&o4, 0, 403, true, 0));
    run.push(&fragment(&o4, 400, 600, false, 0));
    assert_eq!(run.done.len(), 1);
    assert_eq!(run.done[0], o4);
    // An IPv4 fragment cut to nothing drops its datagram.
    run.push(&fragment(&o4, 0, 400, true, 0));
    assert_eq!(
        run.push(&fragment(&o4, 400, 7, true, 0)),
        Push::Dropped(DropReason::FragInvalid)
    );
    assert_eq!(run.r.in_use(), 0);
    assert!(run.balanced());
}

#[test]
fn tiny_first_fragment_is_refused() {
    let mut run = Run::new(ReasmConfig::default());
    // UDP: the first fragment must hold the UDP header and 8 more bytes.
    let o = datagram(false, false, true, 100, 1, 1);
    assert_eq!(
        run.push(&fragment(&o, 0, 8, true, 0)),
        Push::Dropped(DropReason::FragInvalid)
    );
    assert_eq!(run.push(&fragment(&o, 0, 16, true, 0)), Push::Held);
    let o = datagram(true, false, true, 100, 1, 1);
    assert_eq!(
        run.push(&fragment(&o, 0, 8, true, 0)),
        Push::Dropped(DropReason::FragInvalid)
    );
    assert!(run.balanced());
}

#[test]
fn too_big_and_too_many() {
    let cfg = ReasmConfig {
        max_datagram: 2048,
        ..ReasmConfig::default()
    };
    let mut run = Run::new(cfg);
    let o = datagram(false, false, false, 3000, 1, 1);
    run.push(&fragment(&o, 0, 1000, true, 0));
    assert_eq!(
        run.push(&fragment(&o, 2000, 1000, false, 0)),
        Push::Dropped(DropReason::FragTooBig)
    );
    assert_eq!(run.drops(DropReason::FragTooBig), 2);
    // Past 65535 bytes of IPv4 with the largest offset.
    let mut run = Run::new(ReasmConfig {
        max_datagram: 65535,
        ..ReasmConfig::default()
    });
    let mut f = fragment(&datagram(false, false, false, 64, 1, 1), 0, 64, false, 0);
    let mut ip = Ipv4Packet::new_unchecked(&mut f[..]);
    ip.set_flags_frag(ipv4::FRAG_OFFSET_MASK);
    ip.fill_checksum();
    assert_eq!(run.push(&f), Push::Dropped(DropReason::FragTooBig));
    // 65 fragments of 8 bytes.
    let o = datagram(false, false, false, 8 * 70, 1, 1);
    let frags = cut(&o, 8);
    for f in &frags[..MAX_FRAGS] {
        assert_eq!(run.push(f), Push::Held);
    }
    assert_eq!(
        run.push(&frags[MAX_FRAGS]),
        Push::Dropped(DropReason::FragInvalid)
    );
    assert_eq!(run.drops(DropReason::FragInvalid), MAX_FRAGS as u64 + 1);
    assert!(run.balanced());
}

#[test]
fn ecn_rules() {
    let o = datagram(false, false, false, 800, 1, 1);
    let mut run = Run::new(ReasmConfig::default());
    run.push(&fragment(&o, 0, 400, true, ecn::ECT0));
    run.push(&fragment(&o, 400, 400, false, ecn::CE));
    assert_eq!(Ipv4Packet::new_unchecked(&run.done[0][..]).ecn(), ecn::CE);
    assert_eq!(checksum::checksum(&run.done[0][..20]), 0);
    run.push(&fragment(&o, 0, 400, true, ecn::NOT_ECT));
    assert_eq!(
        run.push(&fragment(&o, 400, 400, false, ecn::CE)),
        Push::Dropped(DropReason::FragInvalid)
    );
    assert_eq!(run.drops(DropReason::FragInvalid), 2);
    assert!(run.balanced());
}

#[test]
fn timeout_and_limits() {
    let cfg = ReasmConfig {
        slots: 4,
        per_source: 2,
        max_datagram: 4096,
        timeout_ms: 1000,
    };
    let mut run = Run::new(cfg);
    let first = |src: u8, id: u16| {
        let mut f = fragment(&datagram(false, false, false, 800, src, 1), 0, 400, true, 0);
        let mut ip = Ipv4Packet::new_unchecked(&mut f[..]);
        ip.set_ident(id);
        ip.fill_checksum();
        f
    };
    run.push_at(&first(1, 1), 0);
    run.push_at(&first(1, 2), 10);
    // Source 1 at its share: its oldest (id 1) goes.
    run.push_at(&first(1, 3), 20);
    assert_eq!(run.drops(DropReason::FragSourceLimit), 1);
    assert_eq!(run.r.in_use(), 2);
    run.push_at(&first(2, 1), 30);
    run.push_at(&first(3, 1), 40);
    // Table full: the oldest (1/2) goes.
    run.push_at(&first(4, 1), 50);
    assert_eq!(run.drops(DropReason::FragEvicted), 1);
    assert_eq!(run.r.in_use(), 4);
    // Time passes: all but the last time out.
    run.r.expire(1045, &run.drops);
    assert_eq!(run.drops(DropReason::FragTimeout), 3);
    assert_eq!(run.r.in_use(), 1);
    // A late fragment of a timed-out datagram starts a new one.
    let o = datagram(false, false, false, 800, 1, 1);
    let mut f = fragment(&o, 400, 400, false, 0);
    let mut ip = Ipv4Packet::new_unchecked(&mut f[..]);
    ip.set_ident(3);
    ip.fill_checksum();
    assert_eq!(run.push_at(&f, 1046), Push::Held);
    assert!(run.balanced());
    assert!(cfg.memory_bound() >= 4 * 4096);
}

#[test]
fn atomic_fragment_is_stripped() {
    let o = datagram(true, true, false, 100, 1, 1);
    let f = fragment(&o, 0, 100, false, 0);
    let pf = parse(&f).unwrap().unwrap();
    assert!(pf.is_atomic());
    let mut b = HeapBuf::from_slice(&f);
    assert!(strip_atomic(&mut b, &pf));
    assert_eq!(b.data(), &o[..]);
    // Not IPv4, not a real fragment.
    let f4 = fragment(&datagram(false, false, false, 100, 1, 1), 0, 96, true, 0);
    let pf4 = parse(&f4).unwrap().unwrap();
    assert!(!strip_atomic(&mut HeapBuf::from_slice(&f4), &pf4));
    // Whole packets and other protocols are not fragments.
    assert_eq!(parse(&o), Ok(None));
    let mut tcp = f4.clone();
    tcp[9] = proto::TCP;
    assert_eq!(parse(&tcp), Ok(None));
}

fn order(n: usize, keys: &[u32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by_key(|&i| keys.get(i).copied().unwrap_or(i as u32));
    idx
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Random datagrams cut at random 8-byte boundaries, delivered in a
    /// random order with random duplicates and overlapping extras
    /// (carrying the datagram's own bytes): whatever completes is the
    /// original, and every fragment is in a datagram, counted as a
    /// drop, or held. Without extras, the datagram always completes.
    #[test]
    fn random_fragmentations_reassemble_or_are_counted(
        v6 in any::<bool>(),
        hbh in any::<bool>(),
        udp in any::<bool>(),
        len in 17usize..4000,
        seed in any::<u8>(),
        cuts in proptest::collection::vec(1usize..500, 0..40),
        keys in proptest::collection::vec(any::<u32>(), 0..80),
        dups in proptest::collection::vec(any::<u16>(), 0..4),
        extras in proptest::collection::vec((0usize..4000, 1usize..600, any::<bool>()), 0..3),
    ) {
        let orig = datagram(v6, v6 && hbh, udp, len, 9, seed);
        let mut frags = Vec::new();
        let mut off = 0;
        for c in cuts.iter().chain(std::iter::once(&usize::MAX)) {
            let first = if off == 0 { 16 } else { 8 };
            let l = (c * 8).max(first).min(len - off);
            let l = if off + l < len { l & !7 } else { l };
            frags.push(fragment(&orig, off, l, off + l < len, 0));
            off += l;
            if off >= len { break; }
        }
        let n_real = frags.len();
        for d in &dups {
            let f = frags[usize::from(*d) % n_real].clone();
            frags.push(f);
        }
        let clean = extras.is_empty();
        for (o, l, more) in &extras {
            // Pieces of the same datagram cut elsewhere (a refragmenting
            // path, a retransmission): M set unless it ends the datagram.
            let o = (o % len) & !7;
            let l = if *more { (*l).min(len - o) } else { len - o };
            let more = o + l < len;
            let l = if more { l & !7 } else { l };
            if l > 0 && (o > 0 || more) {
                frags.push(fragment(&orig, o, l, more, 0));
            }
        }
        let mut run = Run::new(ReasmConfig { max_datagram: 4096, ..ReasmConfig::default() });
        for i in order(frags.len(), &keys) {
            run.push(&frags[i]);
            prop_assert!(run.balanced());
        }
        for d in &run.done {
            prop_assert_eq!(d, &orig);
        }
        if clean && n_real <= MAX_FRAGS {
            prop_assert!(!run.done.is_empty());
        }
        prop_assert!(run.r.in_use() <= 256);
        run.r.expire(u64::MAX, &run.drops);
        prop_assert_eq!(run.r.in_use(), 0);
        prop_assert!(run.balanced());
    }

    /// Any bytes as a packet: parse and push never panic, and the
    /// books balance.
    #[test]
    fn garbage_never_panics(
        pkts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..20),
        tweak in any::<bool>(),
    ) {
        let mut r = Reassembler::new(ReasmConfig { slots: 4, per_source: 2, max_datagram: 512, timeout_ms: 5 });
        let drops = DropCounters::default();
        let mut pushed = 0u64;
        let mut done = 0u64;
        for (t, mut p) in pkts.into_iter().enumerate() {
            if tweak && p.len() >= 20 {
                // Make it look like an IPv4 ESP fragment more often.
                p[0] = 0x45;
                p[9] = proto::ESP;
                let l = p.len() as u16;
                p[2..4].copy_from_slice(&l.to_be_bytes());
                p[6] |= 0x20;
            }
            if let Ok(Some(f)) = parse(&p) {
                let mut b = HeapBuf::from_slice(&p);
                if f.is_atomic() {
                    strip_atomic(&mut b, &f);
                    continue;
                }
                pushed += 1;
                if let Push::Complete { slot, len } = r.push(&p, &f, t as u64, &drops) {
                    let before = r.held_fragments();
                    let mut out = vec![0u8; len];
                    prop_assert_eq!(r.emit(slot, &mut out), len);
                    done += before - r.held_fragments();
                }
            }
        }
        prop_assert_eq!(pushed, done + drops.total() + r.held_fragments());
    }
}
