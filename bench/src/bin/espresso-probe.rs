//! Traffic tools for the end-to-end benchmarks (bench/e2e/*.sh):
//!
//! - `gen`: a UDP packet generator on an AF_PACKET socket (through the
//!   dataplane's own `io::afpacket` backend), at a fixed rate or as fast as it
//!   can, over several flows (so fanout spreads them).
//! - `lat-rx` / `lat-tx`: timestamped UDP probes. The sender writes its wall
//!   clock (CLOCK_REALTIME, shared by every namespace of the host) into each
//!   probe; the receiver takes the kernel's receive timestamp (SO_TIMESTAMPNS)
//!   and records the one-way latency in an HDR histogram; it prints
//!   percentiles as JSON, with the probes its own socket dropped
//!   (`socket_drops`, SO_RXQ_OVFL) apart from those lost on the way.

use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use dataplane::io::afpacket::{AfPacket, AfPacketConfig};
use dataplane::io::{Burst, PacketIo};
use dataplane::pkt::PacketBuf;
use hdrhistogram::Histogram;
use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send UDP packets on an interface (AF_PACKET).
    Gen {
        /// Interface to send on.
        #[arg(long)]
        iface: String,
        /// Destination MAC (the gateway's LAN port), aa:bb:cc:dd:ee:ff.
        #[arg(long)]
        dst_mac: String,
        /// Source IPv4 address.
        #[arg(long)]
        src: std::net::Ipv4Addr,
        /// Destination IPv4 address.
        #[arg(long)]
        dst: std::net::Ipv4Addr,
        /// Packets per second (0: as fast as possible).
        #[arg(long, default_value_t = 0)]
        pps: u64,
        /// Duration in seconds.
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// Frame size in bytes (Ethernet header included, FCS excluded).
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Number of flows (UDP source ports).
        #[arg(long, default_value_t = 16)]
        flows: u16,
    },
    /// Receive probes and print latency percentiles (JSON).
    LatRx {
        /// Address to bind.
        #[arg(long)]
        bind: SocketAddr,
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        /// Probes to ignore at the start (warm-up).
        #[arg(long, default_value_t = 100)]
        skip: u64,
    },
    /// Send probes.
    LatTx {
        /// Receiver address.
        #[arg(long)]
        dst: SocketAddr,
        /// Probes per second.
        #[arg(long, default_value_t = 2000)]
        pps: u64,
        /// Duration in seconds.
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
    },
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let v: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("mac {s}: {e}"))?;
    v.try_into().map_err(|_| format!("mac {s}: need 6 bytes"))
}

fn ifmac(iface: &str) -> Result<[u8; 6], String> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))
        .map_err(|e| format!("{iface}: {e}"))?;
    parse_mac(s.trim())
}

fn frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    sport: u16,
    size: usize,
) -> Vec<u8> {
    let size = size.max(60);
    let mut f = vec![0u8; size];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..];
    let ilen = (size - 14) as u16;
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ilen.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = dataplane::wire::checksum::checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip[20..22].copy_from_slice(&sport.to_be_bytes());
    ip[22..24].copy_from_slice(&9u16.to_be_bytes());
    ip[24..26].copy_from_slice(&(ilen - 20).to_be_bytes());
    f
}

#[allow(clippy::too_many_arguments)]
fn gen(
    iface: &str,
    dst_mac: &str,
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    pps: u64,
    secs: f64,
    size: usize,
    flows: u16,
) -> Result<(), String> {
    let cfg = AfPacketConfig {
        frame_nr: 64,
        pool_frames: 128,
        ..Default::default()
    };
    let mut be = AfPacket::open(&[iface.to_string()], &cfg).map_err(|e| e.to_string())?;
    let frames: Vec<Vec<u8>> = (0..flows.max(1))
        .map(|i| {
            frame(
                ifmac(iface).unwrap_or([2, 0, 0, 0, 0, 1]),
                parse_mac(dst_mac).unwrap_or([0xff; 6]),
                src,
                dst,
                10000 + i,
                size,
            )
        })
        .collect();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let burst = 32u64;
    let mut sent = 0u64;
    let mut dropped = 0u64;
    let mut skipped = 0u64;
    let mut q: Burst<_> = Burst::new();
    let mut k = 0usize;
    let mut rx: Burst<_> = Burst::new();
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if pps > 0 {
            let due = (now - start).as_secs_f64() * pps as f64;
            // Never catch up more than 1 ms of sending at once: a generator
            // stopped for 50 ms (RT throttling of its core) would otherwise
            // send 50 ms of packets back to back, a line-rate burst that a
            // paced source does not make (and that overflowed the gateway's
            // ring every second, probes included). The missed packets are
            // skipped and counted.
            let behind = due - (sent + dropped + skipped) as f64;
            let slack = (pps as f64 / 1000.0).max(2.0 * burst as f64);
            if behind > slack {
                skipped += (behind - slack) as u64;
            }
            let ahead = (sent + dropped + skipped) as f64 + burst as f64 - due;
            if ahead > 0.0 {
                // Sleep when well ahead: a paced generator (run SCHED_FIFO)
                // that spins leaves its core to no one else and meets the
                // kernel's RT throttling (sending nothing for 50 ms a second).
                let wait = ahead / pps as f64;
                if wait > 100e-6 {
                    std::thread::sleep(Duration::from_secs_f64(wait - 50e-6));
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
        }
        for _ in 0..burst {
            let Some(mut p) = be.alloc() else { break };
            let f = &frames[k % frames.len()];
            k += 1;
            if p.append(f.len()) {
                p.data_mut().copy_from_slice(f);
                q.push(p);
            } else {
                be.free(p);
            }
        }
        let r = be.tx_burst(0, &mut q);
        sent += r.sent as u64;
        dropped += r.dropped as u64;
        // Keep the receive ring drained (we get no traffic, but be safe).
        if be.rx_burst(0, &mut rx, 32) > 0 {
            for p in rx.drain(..) {
                be.free(p);
            }
        }
    }
    let el = start.elapsed().as_secs_f64();
    println!(
        "{{\"sent\": {sent}, \"dropped\": {dropped}, \"skipped\": {skipped}, \"secs\": {el:.3}, \"mpps\": {:.4}}}",
        sent as f64 / el / 1e6
    );
    Ok(())
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn lat_tx(dst: SocketAddr, pps: u64, secs: f64) -> Result<(), String> {
    let bind: SocketAddr = if dst.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let gap = Duration::from_secs_f64(1.0 / pps.max(1) as f64);
    let mut n = 0u64;
    let mut next = start;
    let mut buf = [0u8; 64];
    let mut send_errors = 0u64;
    while Instant::now() < end {
        let now = Instant::now();
        if now < next {
            // Sleep, never spin: the sender runs SCHED_FIFO (so that it
            // sends on time) and may share the gateway worker's core; a
            // spinning sender took a third of that core and pushed it into
            // the kernel's RT throttling (50 ms of nothing each second, then
            // 100 queued probes sent at once into a full ring). The send
            // time is read after the wake-up, so its jitter is not latency.
            std::thread::sleep(next - now);
            continue;
        }
        next += gap;
        buf[0..8].copy_from_slice(&n.to_be_bytes());
        buf[8..16].copy_from_slice(&now_ns().to_be_bytes());
        if s.send_to(&buf, dst).is_err() {
            send_errors += 1;
        }
        n += 1;
    }
    println!("{{\"probes\": {n}, \"send_errors\": {send_errors}}}");
    Ok(())
}

fn lat_rx(bind: SocketAddr, secs: f64, skip: u64) -> Result<(), String> {
    let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    setsockopt(&s, sockopt::ReceiveTimestampns, &true).map_err(|e| e.to_string())?;
    // The latency is the kernel's receive timestamp, so reading late does
    // not bias it; but a receiver kept off the CPU (both cores taken by
    // SCHED_FIFO pollers) must not lose probes to a full socket buffer:
    // room for every probe of a run (about 1 KiB of truesize each), and the
    // socket's own drop count (SO_RXQ_OVFL) reported.
    if setsockopt(&s, sockopt::RcvBufForce, &(64 << 20)).is_err() {
        let _ = setsockopt(&s, sockopt::RcvBuf, &(64 << 20));
    }
    setsockopt(&s, sockopt::RxqOvfl, &1).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    let mut h =
        Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).map_err(|e| e.to_string())?;
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut buf = [0u8; 256];
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec, u32);
    let mut seen = 0u64;
    let mut max_seq = 0u64;
    let mut socket_drops = 0u32;
    // Which probes arrived (up to 4M), to name the missing ones.
    let mut got = vec![false; 1 << 22];
    let mut draining = false;
    loop {
        if !draining && Instant::now() >= end {
            // Past the deadline: take what is queued, then stop.
            draining = true;
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
        }
        let mut iov = [IoSliceMut::new(&mut buf)];
        let r = recvmsg::<()>(s.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty());
        let Ok(msg) = r else {
            if draining {
                break;
            }
            continue;
        };
        let mut rx_ns = None;
        if let Ok(cms) = msg.cmsgs() {
            for c in cms {
                match c {
                    ControlMessageOwned::ScmTimestampns(ts) => {
                        rx_ns = Some(ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64);
                    }
                    ControlMessageOwned::RxqOvfl(n) => socket_drops = socket_drops.max(n),
                    _ => {}
                }
            }
        }
        let len = msg.bytes;
        if len < 16 {
            continue;
        }
        let seq = u64::from_be_bytes(buf[0..8].try_into().unwrap_or([0; 8]));
        let tx_ns = u64::from_be_bytes(buf[8..16].try_into().unwrap_or([0; 8]));
        let rx_ns = rx_ns.unwrap_or_else(now_ns);
        seen += 1;
        max_seq = max_seq.max(seq);
        if let Some(b) = got.get_mut(seq as usize) {
            *b = true;
        }
        if seq < skip {
            continue;
        }
        let _ = h.record(rx_ns.saturating_sub(tx_ns).max(1));
    }
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    // Runs of missing probes below the highest seen: "first+count" (first 12).
    let mut gaps = Vec::new();
    let mut i = 0usize;
    let top = (max_seq as usize).min(got.len() - 1);
    while i <= top && gaps.len() < 12 {
        if got[i] {
            i += 1;
            continue;
        }
        let a = i;
        while i <= top && !got[i] {
            i += 1;
        }
        gaps.push(format!("\"{a}+{}\"", i - a));
    }
    println!(
        "{{\"received\": {seen}, \"missing_runs\": [{}], \"socket_drops\": {socket_drops}, \"sent_max_seq\": {max_seq}, \"p50_us\": {:.1}, \"p90_us\": {:.1}, \"p99_us\": {:.1}, \"p999_us\": {:.1}, \"max_us\": {:.1}}}",
        gaps.join(", "),
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        h.max() as f64 / 1000.0
    );
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Gen {
            iface,
            dst_mac,
            src,
            dst,
            pps,
            secs,
            size,
            flows,
        } => gen(&iface, &dst_mac, src, dst, pps, secs, size, flows),
        Cmd::LatRx { bind, secs, skip } => lat_rx(bind, secs, skip),
        Cmd::LatTx { dst, pps, secs } => lat_tx(dst, pps, secs),
    };
    if let Err(e) = r {
        eprintln!("espresso-probe: {e}");
        std::process::exit(1);
    }
}
