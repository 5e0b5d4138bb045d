//! UDP sockets of the IKE engine: ports 500 and 4500 on every address
//! (IPv4 and IPv6), with IP_PKTINFO so that the engine learns which of our
//! addresses a request reached and answers from it. Packets for the gateway
//! itself reach these sockets because the dataplane leaves them to the kernel.
//! On 4500 the engine expects and writes the 4-byte non-ESP marker and
//! counts anything else (ESP in UDP that reached the kernel) as `not_ike`.
//!
//! Between the receiving threads and the daemon's loop sit two bounded
//! queues (`[daemon] ike_queue` datagrams each, 1024 by default): one for first messages (IKE_SA_INIT
//! and IKEv1 main/aggressive mode requests: the responder's SPI or cookie is
//! zero, [`Datagram::is_first`]) and one for the rest (exchanges of SAs that
//! exist, which the loop serves first). When a flood fills a queue, the
//! threads drop what comes and count it ([`RxDrops`]), so that memory stays
//! bounded and the loop keeps serving the CLI, timers and established SAs.
//! Datagrams longer than `[daemon] max_message` (and the non-ESP marker,
//! [`Queues::max_datagram`]) are dropped (and counted) before they are
//! queued.

use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};

use nix::sys::socket::{
    bind, recvmsg, sendmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessage,
    ControlMessageOwned, MsgFlags, SockFlag, SockType, SockaddrIn, SockaddrIn6, SockaddrStorage,
};
use tracing::warn;

use crate::ike::Transmit;

/// Datagrams the receiving threads queued or dropped, by reason.
#[derive(Debug, Default)]
pub struct RxDrops {
    /// Datagrams handed to the daemon's loop.
    pub queued: AtomicU64,
    /// Dropped: the queue of first messages was full (the loop is behind: a flood).
    pub queue_full: AtomicU64,
    /// Dropped: the queue of other messages was full.
    pub queue_full_other: AtomicU64,
    /// Dropped: longer than [`Queues::max_datagram`].
    pub too_big: AtomicU64,
}

impl RxDrops {
    /// Reason names and counts, for `status` and metrics.
    pub fn by_reason(&self) -> [(&'static str, u64); 3] {
        [
            ("queue_full", self.queue_full.load(Ordering::Relaxed)),
            (
                "queue_full_other",
                self.queue_full_other.load(Ordering::Relaxed),
            ),
            ("too_big", self.too_big.load(Ordering::Relaxed)),
        ]
    }
}

/// A datagram received on one of the IKE sockets.
pub struct Datagram {
    /// UDP payload.
    pub data: Vec<u8>,
    /// The peer.
    pub from: SocketAddr,
    /// Our address and port it reached.
    pub to: SocketAddr,
}

impl Datagram {
    /// The ISAKMP major version of the datagram (header byte 17: 0x10 is
    /// IKEv1, 0x20 IKEv2), after the non-ESP marker on the NAT-T port
    /// `natt_port`; `None` for what is not an IKE message (a NAT keepalive,
    /// ESP in UDP, a runt): the IKEv2 engine counts those.
    pub fn major_version(&self, natt_port: u16) -> Option<u8> {
        let msg = if self.to.port() == natt_port {
            match self.data.get(..4) {
                Some([0, 0, 0, 0]) => &self.data[4..],
                _ => return None,
            }
        } else {
            &self.data[..]
        };
        crate::ikev1::wire::major_version(msg)
    }
}

impl Datagram {
    /// Whether this is the first message of an exchange that would create
    /// state (IKEv2 IKE_SA_INIT, IKEv1 main or aggressive mode message 1:
    /// the responder's SPI or cookie, header bytes 8..16, is zero) or not
    /// IKE at all (a runt, a keepalive): what goes to the queue that a flood
    /// may fill.
    pub fn is_first(&self, natt_port: u16) -> bool {
        is_first(&self.data, self.to.port(), natt_port)
    }
}

/// [`Datagram::is_first`] of a datagram `data` that reached port `to_port`.
pub fn is_first(data: &[u8], to_port: u16, natt_port: u16) -> bool {
    let msg = if to_port == natt_port {
        match data.get(..4) {
            Some([0, 0, 0, 0]) => &data[4..],
            _ => return true,
        }
    } else {
        data
    };
    match msg.get(8..16) {
        Some(r) => r.iter().all(|b| *b == 0),
        None => true,
    }
}

/// The two queues to the daemon's loop (see the module doc).
#[derive(Clone)]
pub struct Queues {
    /// First messages (and what is not IKE).
    pub first: Sender<Datagram>,
    /// Messages of existing SAs.
    pub other: Sender<Datagram>,
    /// The NAT-T port (its datagrams start with the non-ESP marker).
    pub natt_port: u16,
    /// Longest datagram queued: the engines' longest message
    /// (`[daemon] max_message`) and the non-ESP marker. Both engines apply
    /// their own, smaller, limit on first messages (`max_init_message`).
    pub max_datagram: usize,
}

struct Sock {
    v6: bool,
    port: u16,
    sock: Arc<UdpSocket>,
}

/// The IKE sockets.
pub struct IkeIo {
    socks: Vec<Sock>,
}

fn open(v6: bool, port: u16) -> nix::Result<UdpSocket> {
    let fam = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd: OwnedFd = socket(fam, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if v6 {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
        setsockopt(&fd, sockopt::Ipv6RecvPacketInfo, &true)?;
        let a = SockaddrIn6::from(std::net::SocketAddrV6::new(
            Ipv6Addr::UNSPECIFIED,
            port,
            0,
            0,
        ));
        bind(fd.as_raw_fd(), &a)?;
    } else {
        setsockopt(&fd, sockopt::Ipv4PacketInfo, &true)?;
        let a = SockaddrIn::from(std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
        bind(fd.as_raw_fd(), &a)?;
    }
    Ok(UdpSocket::from(fd))
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::new(IpAddr::V4(v4.ip()), v4.port()));
    }
    a.as_sockaddr_in6()
        .map(|v6| SocketAddr::new(IpAddr::V6(v6.ip()), v6.port()))
}

impl IkeIo {
    /// Binds UDP `ports` (500, 4500) for IPv4 and, where the host has IPv6, IPv6.
    pub fn open(ports: [u16; 2]) -> Result<IkeIo, String> {
        let mut socks = Vec::new();
        for port in ports {
            let s = open(false, port).map_err(|e| format!("UDP 0.0.0.0:{port}: {e}"))?;
            socks.push(Sock {
                v6: false,
                port,
                sock: Arc::new(s),
            });
            match open(true, port) {
                Ok(s) => socks.push(Sock {
                    v6: true,
                    port,
                    sock: Arc::new(s),
                }),
                Err(e) => warn!("IKE over IPv6 unavailable: UDP [::]:{port}: {e}"),
            }
        }
        Ok(IkeIo { socks })
    }

    /// Starts one receiving thread per socket; each datagram goes to one of
    /// `tx` (bounded channels: what does not fit is dropped and counted in
    /// `drops`). The threads end when the receivers are gone.
    pub fn spawn(&self, tx: Queues, drops: Arc<RxDrops>) -> std::io::Result<()> {
        for s in &self.socks {
            let sock = s.sock.clone();
            let (v6, port) = (s.v6, s.port);
            let tx = tx.clone();
            let drops = drops.clone();
            std::thread::Builder::new()
                .name(format!("ike-rx-{port}{}", if v6 { "-v6" } else { "" }))
                .spawn(move || recv_loop(&sock, port, &tx, &drops))?;
        }
        Ok(())
    }

    /// Sends one datagram from `t.local` (its address as source via PKTINFO).
    pub fn send(&self, t: &Transmit) -> std::io::Result<()> {
        let v6 = t.remote.is_ipv6();
        let Some(s) = self
            .socks
            .iter()
            .find(|s| s.v6 == v6 && s.port == t.local.port())
        else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no socket for {}", t.local),
            ));
        };
        let iov = [IoSlice::new(&t.data)];
        let fd = s.sock.as_raw_fd();
        let r = match (t.local.ip(), t.remote) {
            (IpAddr::V4(src), SocketAddr::V4(dst)) => {
                let dst = SockaddrIn::from(dst);
                if src.is_unspecified() {
                    sendmsg(fd, &iov, &[], MsgFlags::empty(), Some(&dst))
                } else {
                    let pi = libc::in_pktinfo {
                        ipi_ifindex: 0,
                        ipi_spec_dst: libc::in_addr {
                            s_addr: u32::from(src).to_be(),
                        },
                        ipi_addr: libc::in_addr { s_addr: 0 },
                    };
                    sendmsg(
                        fd,
                        &iov,
                        &[ControlMessage::Ipv4PacketInfo(&pi)],
                        MsgFlags::empty(),
                        Some(&dst),
                    )
                }
            }
            (IpAddr::V6(src), SocketAddr::V6(dst)) => {
                let dst = SockaddrIn6::from(dst);
                if src.is_unspecified() {
                    sendmsg(fd, &iov, &[], MsgFlags::empty(), Some(&dst))
                } else {
                    let pi = libc::in6_pktinfo {
                        ipi6_addr: libc::in6_addr {
                            s6_addr: src.octets(),
                        },
                        ipi6_ifindex: 0,
                    };
                    sendmsg(
                        fd,
                        &iov,
                        &[ControlMessage::Ipv6PacketInfo(&pi)],
                        MsgFlags::empty(),
                        Some(&dst),
                    )
                }
            }
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{} -> {}: address families differ", t.local, t.remote),
                ))
            }
        };
        r.map(|_| ()).map_err(std::io::Error::from)
    }
}

fn recv_loop(sock: &UdpSocket, port: u16, q: &Queues, drops: &RxDrops) {
    let mut buf = vec![0u8; 65536];
    let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo);
    loop {
        let (n, from, to) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let r = recvmsg::<SockaddrStorage>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            );
            let m = match r {
                Ok(m) => m,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    warn!("IKE socket port {port}: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                }
            };
            let mut to = None;
            if let Ok(cm) = m.cmsgs() {
                for c in cm {
                    match c {
                        ControlMessageOwned::Ipv4PacketInfo(pi) => {
                            to = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(pi.ipi_addr.s_addr))));
                        }
                        ControlMessageOwned::Ipv6PacketInfo(pi) => {
                            to = Some(IpAddr::V6(Ipv6Addr::from(pi.ipi6_addr.s6_addr)));
                        }
                        _ => {}
                    }
                }
            }
            let from = m.address.as_ref().and_then(to_std);
            (m.bytes, from, to)
        };
        let (Some(from), Some(to)) = (from, to) else {
            continue;
        };
        if n > q.max_datagram {
            drops.too_big.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        // classified first: no copy of a datagram that cannot be queued
        let (tx, full) = if is_first(&buf[..n], port, q.natt_port) {
            (&q.first, &drops.queue_full)
        } else {
            (&q.other, &drops.queue_full_other)
        };
        if tx.is_full() {
            full.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let d = Datagram {
            data: buf[..n].to_vec(),
            from,
            to: SocketAddr::new(to, port),
        };
        match tx.try_send(d) {
            Ok(()) => {
                drops.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) => {
                full.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

/// The address the kernel would use towards the default route (for
/// `%defaultroute`): a connected UDP socket sends nothing but picks it.
pub fn default_route_addr() -> Option<IpAddr> {
    for (bind_to, probe) in [
        ("0.0.0.0:0", "203.0.113.1:9"),
        ("[::]:0", "[2001:db8::1]:9"),
    ] {
        let Ok(s) = UdpSocket::bind(bind_to) else {
            continue;
        };
        // a documentation address: routed by the default route only
        if s.connect(probe).is_ok() {
            if let Ok(a) = s.local_addr() {
                if !a.ip().is_unspecified() {
                    return Some(a.ip());
                }
            }
        }
    }
    None
}

/// True while `ip` is one of this host's addresses (a socket can be bound to
/// it): MOBIKE notices an address that was removed.
pub fn address_present(ip: IpAddr) -> bool {
    UdpSocket::bind(std::net::SocketAddr::new(ip, 0)).is_ok()
}

/// The source address the routing table picks towards `peer` (a connected
/// UDP socket; nothing is sent).
pub fn source_towards(peer: IpAddr) -> Option<IpAddr> {
    let any: IpAddr = if peer.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    let s = UdpSocket::bind(std::net::SocketAddr::new(any, 0)).ok()?;
    s.connect(std::net::SocketAddr::new(peer, 4500)).ok()?;
    let a = s.local_addr().ok()?.ip();
    (!a.is_unspecified()).then_some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_messages_are_told_from_the_rest() {
        let mut init = vec![0u8; 28];
        init[..8].copy_from_slice(&[1; 8]);
        assert!(is_first(&init, 500, 4500));
        let mut auth = init.clone();
        auth[8..16].copy_from_slice(&[2; 8]);
        assert!(!is_first(&auth, 500, 4500));
        let mut natt = vec![0u8; 4];
        natt.extend_from_slice(&auth);
        assert!(!is_first(&natt, 4500, 4500));
        natt[4 + 8..4 + 16].fill(0);
        assert!(is_first(&natt, 4500, 4500));
        // ESP in UDP, keepalives, runts: the queue a flood may fill
        assert!(is_first(&[0xff], 4500, 4500));
        assert!(is_first(&auth, 4500, 4500));
        assert!(is_first(&[1, 2, 3], 500, 4500));
    }
}
