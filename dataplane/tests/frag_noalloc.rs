//! IPv4 fragmentation by the worker does not allocate: fragments come from
//! a pool of buffers made beforehand (as the I/O backends' pools are),
//! measured with a counting global allocator (`allocation-counter`).

use arrayvec::ArrayVec;
use dataplane::pkt::{HeapBuf, PacketBuf};
use dataplane::wire::checksum;
use dataplane::worker::frag::{fragment, MAX_FRAGS};

fn packet(payload: usize) -> Vec<u8> {
    let mut p = vec![0u8; 20 + payload];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&((20 + payload) as u16).to_be_bytes());
    p[4..6].copy_from_slice(&77u16.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 1, 0, 2]);
    p[16..20].copy_from_slice(&[10, 2, 0, 2]);
    for (i, b) in p[20..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let c = checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

#[test]
fn fragmenting_does_not_allocate() {
    let orig = packet(8000);
    let mut pool: Vec<HeapBuf> = (0..MAX_FRAGS)
        .map(|_| HeapBuf::new(128, 2048, 64))
        .collect();
    let mut pkt = Some(HeapBuf::from_slice(&orig));
    let mut out: ArrayVec<HeapBuf, MAX_FRAGS> = ArrayVec::new();
    let mut res = None;
    let info = allocation_counter::measure(|| {
        let p = pkt.take().unwrap();
        res = Some(fragment(p, 1400, || pool.pop(), &mut out).is_ok());
    });
    assert_eq!(res, Some(true));
    assert_eq!(out.len(), 6);
    assert_eq!(info.count_total, 0, "fragmentation allocated");
    // Every byte is there, in order.
    let mut payload = Vec::new();
    for f in &out {
        assert!(f.len() <= 1400);
        payload.extend_from_slice(&f.data()[20..]);
    }
    assert_eq!(payload, orig[20..]);
}
