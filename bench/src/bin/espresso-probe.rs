//! Traffic tools for the end-to-end benchmarks (bench/e2e/*.sh):
//!
//! - `gen`: a UDP packet generator on an AF_PACKET socket (through the
//!   dataplane's own `io::afpacket` backend), at a fixed rate or as fast as it
//!   can, over several flows (so fanout spreads them).
//! - `lat-rx` / `lat-tx`: timestamped UDP probes. The sender writes its wall
//!   clock (CLOCK_REALTIME, shared by every namespace of the host) into each
//!   probe; the receiver takes the kernel's receive timestamp (SO_TIMESTAMPNS)
//!   and records the one-way latency in an HDR histogram; it prints
//!   percentiles as JSON.

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
            if (sent + dropped) as f64 + burst as f64 > due {
                std::hint::spin_loop();
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
        "{{\"sent\": {sent}, \"dropped\": {dropped}, \"secs\": {el:.3}, \"mpps\": {:.4}}}",
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
    while Instant::now() < end {
        let now = Instant::now();
        if now < next {
            let left = next - now;
            if left > Duration::from_micros(200) {
                std::thread::sleep(left - Duration::from_micros(100));
            }
            continue;
        }
        next += gap;
        buf[0..8].copy_from_slice(&n.to_be_bytes());
        buf[8..16].copy_from_slice(&now_ns().to_be_bytes());
        let _ = s.send_to(&buf, dst);
        n += 1;
    }
    println!("{{\"probes\": {n}}}");
    Ok(())
}

fn lat_rx(bind: SocketAddr, secs: f64, skip: u64) -> Result<(), String> {
    let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    setsockopt(&s, sockopt::ReceiveTimestampns, &true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    let mut h =
        Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).map_err(|e| e.to_string())?;
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut buf = [0u8; 256];
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let mut seen = 0u64;
    let mut max_seq = 0u64;
    while Instant::now() < end {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let r = recvmsg::<()>(s.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty());
        let Ok(msg) = r else { continue };
        let mut rx_ns = None;
        if let Ok(cms) = msg.cmsgs() {
            for c in cms {
                if let ControlMessageOwned::ScmTimestampns(ts) = c {
                    rx_ns = Some(ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64);
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
        if seq < skip {
            continue;
        }
        let _ = h.record(rx_ns.saturating_sub(tx_ns).max(1));
    }
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{{\"received\": {seen}, \"sent_max_seq\": {max_seq}, \"p50_us\": {:.1}, \"p90_us\": {:.1}, \"p99_us\": {:.1}, \"p999_us\": {:.1}, \"max_us\": {:.1}}}",
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
