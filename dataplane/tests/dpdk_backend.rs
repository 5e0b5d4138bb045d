//! The DPDK backend without NICs or hugepages (one process: EAL init is once
//! per process): net_ring ports, frames through Backend::tx_burst/rx_burst,
//! ESP encap/decap running in the mbufs in place, typed set-up errors.
#![cfg(feature = "dpdk")]

mod esp_common;

use std::sync::Arc;

use dataplane::crypto::{Backend as CryptoBackend, EncrAlg, IntegAlg, Suite};
use dataplane::drop::{DropReason, Verdict};
use dataplane::esp::{decap_burst, encap_burst, DecapResult, PacketKind};
use dataplane::io::dpdk::{Dpdk, DpdkConfig, DpdkIoError, DpdkPortSpec, KernelPath};
use dataplane::io::{Burst, PacketIo};
use dataplane::pkt::{HeapBuf, PacketBuf};
use dataplane::sa::{DropCounters, Mode, Sa, Sad};
use esp_common::*;

fn frame(i: usize) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend(udp4(
        [10, 1, 0, 2],
        [10, 2, 0, (i % 200) as u8 + 2],
        0,
        true,
        &[i as u8; 100],
    ));
    f
}

#[test]
fn dpdk_backend_carries_and_encrypts_mbufs_in_place() {
    let lo = KernelPath::Kernel {
        ifname: Some("lo".into()),
    };
    let cfg = DpdkConfig {
        eal_args: [
            "--no-huge",
            "-m",
            "256",
            "--no-pci",
            "--no-shconf",
            "--log-level=warning",
            "--vdev",
            "net_ring0",
            "--vdev",
            "net_ring1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ports: vec![
            DpdkPortSpec {
                name: "net_ring0".into(),
                kernel: lo.clone(),
            },
            DpdkPortSpec {
                name: "net_ring1".into(),
                kernel: lo.clone(),
            },
        ],
        workers: 1,
        ..DpdkConfig::default()
    };
    // Set-up errors are typed and name the setting.
    let bad = DpdkConfig {
        workers: 0,
        ..cfg.clone()
    };
    assert!(matches!(
        Dpdk::init(&bad),
        Err(DpdkIoError::Config {
            field: "workers",
            ..
        })
    ));

    let dpdk = Dpdk::init(&cfg).expect("DPDK on net_ring vdevs");
    assert_eq!(dpdk.ifindex(0), Some(1), "lo");
    assert!(matches!(
        Dpdk::init(&cfg),
        Err(DpdkIoError::Dpdk(ffi::DpdkError::AlreadyInitialized))
    ));
    assert!(matches!(
        dpdk.backend(1),
        Err(DpdkIoError::Config {
            field: "worker",
            ..
        })
    ));
    let _reg = dpdk.register_worker_thread().unwrap();
    let mut be = dpdk.backend(0).unwrap();
    // one handle per queue: a second backend for worker 0 is refused
    assert!(matches!(
        dpdk.backend(0),
        Err(DpdkIoError::Dpdk(ffi::DpdkError::QueueUnavailable { .. }))
    ));
    assert_eq!(be.num_ports(), 2);
    let pool = dpdk.pool();
    let in_use0 = pool.in_use();

    // 1. Frames out of port 0 come back in (net_ring0 is a loopback), intact.
    let mut out: Burst<ffi::Mbuf> = Burst::new();
    for i in 0..40 {
        let mut m = be.alloc().unwrap();
        assert_eq!(PacketBuf::headroom(&m), 128);
        assert!(m.extend_from_slice(&frame(i)));
        out.push(m);
    }
    let r = be.tx_burst(0, &mut out);
    assert_eq!((r.sent, r.dropped), (40, 0));
    assert!(out.is_empty());
    let mut inb: Burst<ffi::Mbuf> = Burst::new();
    assert_eq!(be.rx_burst(0, &mut inb, 32), 32, "max is respected");
    assert_eq!(be.rx_burst(0, &mut inb, 64), 8);
    assert_eq!(be.rx_burst(1, &mut inb, 64), 0, "nothing on the other port");
    for (i, m) in inb.iter().enumerate() {
        assert_eq!(PacketBuf::data(m), &frame(i)[..]);
    }
    let st = be.port_stats(0);
    assert_eq!((st.rx_packets, st.tx_packets, st.tx_errors), (40, 40, 0));

    // 2. ESP tunnel encap and decap in the mbufs themselves: the packet stays
    // in the same buffer (only the data offset moves), and comes back equal.
    let suite = Suite {
        encr: EncrAlg::AesGcm128,
        integ: IntegAlg::None,
    };
    let (op, ip) = sa_pair(suite, Mode::Tunnel, "192.0.2.1", "192.0.2.2", false, false);
    let sa_out = Sa::new(op, CryptoBackend::RustCrypto).unwrap();
    let sad = Sad::with_capacity(4);
    sad.insert(Arc::new(Sa::new(ip, CryptoBackend::RustCrypto).unwrap()));
    let drops = DropCounters::default();
    let mut pkts: Vec<ffi::Mbuf> = inb.drain(..).collect();
    let mut bufs_before = Vec::new();
    let mut inner = Vec::new();
    for m in pkts.iter_mut() {
        assert!(m.trim_front(14));
        inner.push(PacketBuf::data(m).to_vec());
        bufs_before.push((
            m.as_ptr(),
            PacketBuf::data(m).as_ptr() as usize,
            m.buf_len(),
        ));
    }
    let mut v = vec![Verdict::Drop(DropReason::Malformed); pkts.len()];
    encap_burst(&sa_out, &mut pkts, &mut v, &drops);
    assert!(v.iter().all(|v| *v == Verdict::Pass), "{v:?}");
    // the same packets through a heap buffer give the same wire length
    let mut heap: Vec<HeapBuf> = inner.iter().map(|p| HeapBuf::from_slice(p)).collect();
    let (op2, _) = sa_pair(suite, Mode::Tunnel, "192.0.2.1", "192.0.2.2", false, false);
    let mut v2 = vec![Verdict::Drop(DropReason::Malformed); heap.len()];
    encap_burst(
        &Sa::new(op2, CryptoBackend::RustCrypto).unwrap(),
        &mut heap,
        &mut v2,
        &drops,
    );
    for ((m, h), (raw, data_before, buf_len)) in pkts.iter().zip(&heap).zip(&bufs_before) {
        assert_eq!(m.as_ptr(), *raw, "same mbuf");
        let d = PacketBuf::data(m);
        assert_eq!(d.len(), h.len(), "ESP packet length");
        assert_eq!(d[9], 50, "outer protocol ESP");
        // 20 outer IPv4 + 8 ESP + 8 IV were prepended into the headroom
        assert_eq!(data_before - d.as_ptr() as usize, 36, "prepended in place");
        assert_eq!(m.buf_len(), *buf_len);
    }
    let mut res = vec![DecapResult::default(); pkts.len()];
    decap_burst(&sad.load(), &mut pkts, &mut res, &drops);
    for ((m, r), want) in pkts.iter().zip(&res).zip(&inner) {
        assert_eq!((r.verdict, r.kind), (Verdict::Pass, PacketKind::Inner4));
        assert_eq!(PacketBuf::data(m), &want[..]);
    }

    // 3. Frames handed to the kernel on a port without a TAP are freed, and
    // every mbuf went back to the pool.
    for m in pkts {
        be.to_kernel(0, m);
    }
    assert_eq!(pool.in_use(), in_use0);
}
