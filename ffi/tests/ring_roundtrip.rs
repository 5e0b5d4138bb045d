//! Mbufs make a round trip through net_ring ports and rte_rings with their
//! contents intact; burst counts, port counters and pool accounting add up;
//! the Rust mbuf arithmetic matches DPDK's inline functions.

// Calls the raw burst functions to check the safe layer against them.
#![allow(unsafe_code)]
mod common;

use std::ptr::NonNull;

use ffi::{
    sys, Eal, Mbuf, MbufBurst, Mempool, Port, PortConfig, Ring, DEFAULT_DATA_ROOM, DEFAULT_HEADROOM,
};

fn fill(pool: &Mempool, burst: &mut MbufBurst, n: usize, base: usize) {
    let start = burst.len();
    assert!(pool.alloc_bulk(burst, n));
    for (i, m) in burst.iter_mut().skip(start).enumerate() {
        let len = 60 + (base + i) % 200;
        assert!(m.extend_from_slice(&common::pattern(base + i, len)));
    }
}

fn check(burst: &MbufBurst, base: usize) {
    for (i, m) in burst.iter().enumerate() {
        let len = 60 + (base + i) % 200;
        assert_eq!(
            m.data(),
            &common::pattern(base + i, len)[..],
            "packet {}",
            base + i
        );
        assert_eq!(m.headroom(), DEFAULT_HEADROOM);
        assert!(m.is_contiguous());
    }
}

#[test]
fn mbufs_round_trip_through_rings() {
    // net_ring0 is a loopback (its tx ring is its rx ring).
    let eal = Eal::init(common::eal_args(&["--vdev", "net_ring0"])).unwrap();
    let pool = Mempool::create(&eal, "rt_pool", 4095, 64, DEFAULT_DATA_ROOM, None).unwrap();
    assert_eq!(pool.data_room(), DEFAULT_DATA_ROOM);
    assert_eq!(pool.size(), 4095);
    let full = pool.available();
    assert_eq!(pool.in_use(), 0);

    mbuf_arithmetic_matches_dpdk(&pool);
    assert_eq!(pool.available(), full, "mbuf ops leaked");

    // --- loopback port: tx then rx, same bytes, same order.
    let mut port =
        Port::configure_by_name(&eal, "net_ring0", &PortConfig::default(), pool).unwrap();
    assert_eq!(port.name(), "net_ring0");
    assert_eq!(port.info().driver, "net_ring");
    port.start().unwrap();
    assert!(port.link().unwrap().up);
    port.mac().unwrap(); // net_ring's is all zeroes; net_null's is checked elsewhere
    let (mut rx, mut tx) = (port.rx_queue(0).unwrap(), port.tx_queue(0).unwrap());
    let mut out: MbufBurst = MbufBurst::new();
    let mut inb: MbufBurst = MbufBurst::new();
    let mut sent_bytes = 0u64;
    for round in 0..10 {
        fill(&pool, &mut out, 32, round * 32);
        sent_bytes += out.iter().map(|m| m.len() as u64).sum::<u64>();
        assert_eq!(tx.tx_burst(&mut out), 32);
        assert!(out.is_empty());
        assert_eq!(rx.rx_burst(&mut inb), 32);
        check(&inb, round * 32);
        inb.clear();
    }
    assert_eq!(rx.rx_burst(&mut inb), 0);

    // The Rust rx/tx dispatch and the C shim's (DPDK's own inline functions)
    // interoperate on the same queue: shim tx -> our rx, our tx -> shim rx.
    let mut raw = [std::ptr::null_mut::<sys::rte_mbuf>(); 8];
    for (i, r) in raw.iter_mut().enumerate() {
        let mut m = pool.alloc().unwrap();
        assert!(m.extend_from_slice(&common::pattern(500 + i, 100)));
        *r = m.into_raw().as_ptr();
    }
    // SAFETY: 8 owned mbufs handed to the started port's tx queue 0 (this
    // thread is the only user of the queue during the call).
    let sent = unsafe { sys::espresso_rte_eth_tx_burst(port.id(), 0, raw.as_mut_ptr(), 8) };
    assert_eq!(sent, 8);
    assert_eq!(rx.rx_burst(&mut inb), 8);
    for (i, m) in inb.iter().enumerate() {
        assert_eq!(m.data(), &common::pattern(500 + i, 100)[..]);
    }
    assert_eq!(tx.tx_burst(&mut inb), 8);
    // SAFETY: room for 8 pointers; the queue is not polled elsewhere.
    let got = unsafe { sys::espresso_rte_eth_rx_burst(port.id(), 0, raw.as_mut_ptr(), 8) };
    assert_eq!(got, 8);
    for (i, r) in raw.iter().enumerate() {
        // SAFETY: the rx call handed us ownership of 8 mbufs.
        let m = unsafe { Mbuf::from_raw(NonNull::new(*r).unwrap()) };
        assert_eq!(m.data(), &common::pattern(500 + i, 100)[..]);
    }
    let st = port.stats().unwrap();
    assert_eq!((st.opackets, st.ipackets), (336, 336));
    // (net_ring counts packets, not bytes)
    assert!(sent_bytes > 320 * 60);
    assert_eq!(pool.in_use(), 0, "mbufs leaked through the port");

    // Partial rx: a burst with 5 free slots takes 5, the rest wait.
    fill(&pool, &mut out, 32, 1000);
    assert_eq!(tx.tx_burst(&mut out), 32);
    let mut small: MbufBurst<5> = MbufBurst::new();
    assert_eq!(rx.rx_burst(&mut small), 5);
    assert_eq!(rx.rx_burst(&mut small), 0, "full burst takes nothing");
    assert_eq!(rx.rx_burst(&mut inb), 27);
    assert_eq!(small.as_slice()[0].data(), &common::pattern(1000, 60)[..]);
    // retain_mut frees rejected packets in bulk, keeping order.
    let freed = inb.retain_mut(|m| m.len() % 2 == 0);
    assert!(freed > 0 && !inb.is_empty());
    assert!(inb.iter().all(|m| m.len() % 2 == 0));
    assert_eq!(pool.in_use() as usize, 5 + inb.len());
    drop(small);
    // drain hands the mbufs out in order; those not taken are freed.
    let kept = inb.len();
    let firsts: Vec<Mbuf> = inb.drain().take(2).collect();
    assert!(inb.is_empty());
    assert_eq!(pool.in_use() as usize, 2, "{kept} drained, 2 kept");
    drop(firsts);
    assert_eq!(pool.in_use(), 0);

    // --- a back-to-back pair of ports made of crossed rings.
    let a2b = Ring::create(&eal, "a2b", 1024, None).unwrap();
    let b2a = Ring::create(&eal, "b2a", 1024, None).unwrap();
    let pa = ffi::port_from_rings(&eal, "net_pair_a", &[b2a], &[a2b]).unwrap();
    let pb = ffi::port_from_rings(&eal, "net_pair_b", &[a2b], &[b2a]).unwrap();
    let mut a = Port::configure(&eal, pa, &PortConfig::default(), pool).unwrap();
    let mut b = Port::configure(&eal, pb, &PortConfig::default(), pool).unwrap();
    a.start().unwrap();
    b.start().unwrap();
    let (mut a_tx, mut b_rx) = (a.tx_queue(0).unwrap(), b.rx_queue(0).unwrap());
    let (mut b_tx, mut a_rx) = (b.tx_queue(0).unwrap(), a.rx_queue(0).unwrap());
    let mut burst: MbufBurst = MbufBurst::new();
    fill(&pool, &mut burst, 20, 7);
    assert_eq!(a_tx.tx_burst(&mut burst), 20);
    assert_eq!(a2b.count(), 20);
    assert_eq!(a_rx.rx_burst(&mut burst), 0, "nothing comes back to a");
    assert_eq!(b_rx.rx_burst(&mut burst), 20);
    check(&burst, 7);
    assert_eq!(b_tx.tx_burst(&mut burst), 20);
    assert_eq!(a_rx.rx_burst(&mut burst), 20);
    check(&burst, 7);
    // A ring that is nearly full takes what fits; the rest stays in the burst.
    let tiny = Ring::create(&eal, "tiny", 16, None).unwrap();
    assert_eq!(tiny.enqueue_burst(&mut burst), 15);
    assert_eq!(burst.len(), 5);
    check_tail(&burst, 7 + 15);
    let mut back: MbufBurst = MbufBurst::new();
    assert_eq!(tiny.dequeue_burst(&mut back), 15);
    assert_eq!(tiny.count(), 0);
    check(&back, 7);
    back.clear();
    burst.clear();
    assert_eq!(pool.in_use(), 0);
    assert_eq!(a.stats().unwrap().opackets, 20);
    assert_eq!(b.stats().unwrap().ipackets, 20);
}

fn check_tail(burst: &MbufBurst, base: usize) {
    for (i, m) in burst.iter().enumerate() {
        assert_eq!(
            m.data(),
            &common::pattern(base + i, 60 + (base + i) % 200)[..]
        );
    }
}

/// Runs the same operations through the Rust fast path and DPDK's inline
/// functions (via the shim) on two mbufs and compares every field.
fn mbuf_arithmetic_matches_dpdk(pool: &Mempool) {
    let mut ours = pool.alloc().unwrap();
    let theirs = pool.alloc().unwrap().into_raw();
    assert_eq!(ours.headroom(), DEFAULT_HEADROOM);
    assert_eq!(
        ours.tailroom(),
        DEFAULT_DATA_ROOM as usize - DEFAULT_HEADROOM
    );
    // (op, n): 0 prepend, 1 append, 2 adj, 3 trim; some must fail.
    let ops: &[(u8, usize)] = &[
        (1, 100),
        (0, 14),
        (0, 200),
        (2, 14),
        (3, 30),
        (1, 5000),
        (3, 71),
        (3, 0),
        (2, 0),
        (0, 114),
        (0, 1),
        (1, 1920),
        (1, 1),
        (2, 2048),
        (2, 1),
        (3, 100),
    ];
    for &(op, n) in ops {
        let th = theirs.as_ptr();
        // SAFETY: `theirs` is a valid mbuf we own; n fits in u16 for every op.
        let (ok_theirs, head, tail, len) = unsafe {
            let ok = match op {
                0 => !sys::espresso_rte_pktmbuf_prepend(th, n as u16).is_null(),
                1 => !sys::espresso_rte_pktmbuf_append(th, n as u16).is_null(),
                2 => !sys::espresso_rte_pktmbuf_adj(th, n as u16).is_null(),
                _ => sys::espresso_rte_pktmbuf_trim(th, n as u16) == 0,
            };
            (
                ok,
                sys::espresso_rte_pktmbuf_headroom(th) as usize,
                sys::espresso_rte_pktmbuf_tailroom(th) as usize,
                (*th).data_len as usize,
            )
        };
        let ok_ours = match op {
            0 => ours.prepend(n),
            1 => ours.append(n),
            2 => ours.adj(n),
            _ => ours.trim(n),
        };
        assert_eq!(ok_ours, ok_theirs, "op {op} n {n}");
        assert_eq!(
            (ours.headroom(), ours.tailroom(), ours.len()),
            (head, tail, len),
            "op {op} n {n}"
        );
        assert_eq!(ours.pkt_len(), ours.len());
        // SAFETY: valid mbuf; compare mtod with our data pointer offset.
        let mtod = unsafe { sys::espresso_rte_pktmbuf_mtod(th) } as usize;
        // SAFETY: reading plain fields of our own mbuf.
        let base = unsafe { (*th).buf_addr } as usize;
        assert_eq!(mtod - base, head);
    }
    ours.reset();
    assert_eq!((ours.headroom(), ours.len()), (DEFAULT_HEADROOM, 0));
    // SAFETY: `theirs` came from into_raw and is still owned by us.
    drop(unsafe { Mbuf::from_raw(NonNull::new(theirs.as_ptr()).unwrap()) });
    drop(ours);
    // push/pop/swap_remove move ownership without leaks.
    let mut b: MbufBurst<4> = MbufBurst::new();
    for _ in 0..4 {
        b.push(pool.alloc().unwrap()).unwrap();
    }
    let extra = pool.alloc().unwrap();
    let extra = b.push(extra).unwrap_err();
    drop(extra);
    assert!(b.swap_remove(4).is_none());
    let m = b.swap_remove(0).unwrap();
    assert_eq!(b.len(), 3);
    drop(m);
    assert!(b.pop().is_some());
    assert_eq!(pool.in_use(), 2);
}
