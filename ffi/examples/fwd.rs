//! Cleartext io-forwarder over the safe layer, the counterpart of
//! `dpdk-testpmd --forward-mode=io`: ports are paired (0<->1, 2<->3...; a
//! single port forwards to itself), every packet received on one is sent
//! unchanged on its peer, unsent packets are freed. The forwarding loop runs
//! on the first worker lcore; the main lcore measures.
//!
//! Usage: fwd [--secs N] [--warmup N] [--burst 32] [--mbufs N] [--tx-first] -- <EAL args>
//! Prints `fwd: <Mpps> Mpps rx, ...` and a final `RESULT mpps=<Mpps>` line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use ffi::{Eal, LogLevel, MbufBurst, Mempool, Port, PortConfig, RxQueue, TxQueue};

#[derive(Parser, Debug)]
#[command(about = "io-forward between paired DPDK ports")]
struct Args {
    /// Measurement time in seconds.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Time before measuring, in seconds.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Mbufs in the pool (like testpmd --total-num-mbufs).
    #[arg(long, default_value_t = 32768)]
    mbufs: u32,
    /// Per-lcore mempool cache (testpmd's default --mbcache is 250).
    #[arg(long, default_value_t = 250)]
    cache: u32,
    /// Send one burst of 64-byte packets on every port first (for ring ports,
    /// which only carry what was sent into them), like testpmd --tx-first.
    #[arg(long)]
    tx_first: bool,
    /// EAL arguments.
    #[arg(last = true)]
    eal: Vec<String>,
}

const BURST: usize = 32;

struct Stream {
    rx: RxQueue,
    tx: TxQueue,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let eal = Eal::init(&args.eal)?;
    eal.set_log_level(LogLevel::Warning);
    let pool = Mempool::create(
        &eal,
        "fwd_pool",
        args.mbufs,
        args.cache,
        ffi::DEFAULT_DATA_ROOM,
        None,
    )?;
    let ids = ffi::port_ids(&eal);
    if ids.is_empty() {
        return Err("no DPDK port (give --vdev ...)".into());
    }
    let mut ports = Vec::new();
    for &id in &ids {
        let mut p = Port::configure(&eal, id, &PortConfig::default(), pool)?;
        p.start()?;
        ports.push(p);
    }
    // peer of port i: i^1 (or itself when alone)
    let peer = |i: usize| if ports.len() == 1 { 0 } else { i ^ 1 };
    let mut streams = Vec::new();
    for i in 0..ports.len() {
        if peer(i) >= ports.len() {
            return Err(
                format!("port {} has no peer: give an even number of ports", ids[i]).into(),
            );
        }
        streams.push(Stream {
            rx: ports[i].rx_queue(0)?,
            tx: ports[peer(i)].tx_queue(0)?,
        });
    }
    if args.tx_first {
        for s in &mut streams {
            let mut b: MbufBurst<BURST> = MbufBurst::new();
            if !pool.alloc_bulk(&mut b, BURST) {
                return Err("mempool empty at tx-first".into());
            }
            for m in b.iter_mut() {
                let frame = test_frame();
                if !m.extend_from_slice(&frame) {
                    return Err("mbuf too small for the tx-first frame".into());
                }
            }
            s.tx.tx_burst_or_free(&mut b);
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let worker = eal
        .worker_lcores()
        .first()
        .copied()
        .ok_or("need a worker lcore: -l 0-1")?;
    let job = eal.launch(worker, move || {
        let mut burst: MbufBurst<BURST> = MbufBurst::new();
        let mut dropped: u64 = 0;
        while !stop2.load(Ordering::Relaxed) {
            for s in streams.iter_mut() {
                if s.rx.rx_burst(&mut burst) == 0 {
                    continue;
                }
                let n = burst.len();
                dropped += (n - s.tx.tx_burst_or_free(&mut burst)) as u64;
            }
        }
        (dropped > 0) as i32
    })?;

    let rx_total = |ports: &[Port]| -> Result<u64, ffi::DpdkError> {
        let mut t = 0;
        for p in ports {
            t += p.stats()?.ipackets;
        }
        Ok(t)
    };
    std::thread::sleep(Duration::from_secs_f64(args.warmup));
    let (t0, c0) = (Instant::now(), rx_total(&ports)?);
    std::thread::sleep(Duration::from_secs_f64(args.secs));
    let (t1, c1) = (Instant::now(), rx_total(&ports)?);
    stop.store(true, Ordering::Relaxed);
    let some_dropped = job.wait();
    let secs = (t1 - t0).as_secs_f64();
    let mpps = (c1 - c0) as f64 / secs / 1e6;
    let names: Vec<&str> = ports.iter().map(|p| p.name()).collect();
    println!(
        "fwd: {mpps:.2} Mpps rx over {} ports {:?} in {secs:.2} s on lcore {worker}{}",
        ports.len(),
        names,
        if some_dropped == 1 {
            " (some tx drops)"
        } else {
            ""
        }
    );
    println!("RESULT mpps={mpps:.3}");
    Ok(())
}

/// A 64-byte Ethernet/IPv4/UDP frame (testpmd's txonly default shape).
fn test_frame() -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[198, 18, 0, 1]);
    ip[16..20].copy_from_slice(&[198, 18, 0, 2]);
    let mut sum: u32 = 0;
    for w in ip.chunks(2) {
        sum += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f[34..36].copy_from_slice(&9u16.to_be_bytes());
    f[36..38].copy_from_slice(&9u16.to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes());
    f
}
