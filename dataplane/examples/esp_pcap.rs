//! Writes pcaps of ESP packets made by the real engine (`Sa::new` +
//! `esp::encap_burst`), with their keys and the inner packets sent, for a
//! second, independent decoder (tshark / Wireshark) to check.
//!
//! usage: `cargo run -p espresso-dataplane --example esp_pcap -- OUTDIR`
//!
//! Writes to OUTDIR:
//! - `esp_raw.pcap`: every case, LINKTYPE_RAW (IPv4 and IPv6, no link layer);
//! - `esp_ether.pcap`: the first cases again, LINKTYPE_ETHERNET;
//! - `esp_neg.pcap`: packets with one flipped ciphertext bit (must fail the ICV);
//! - `sas.tsv`: one SA per line, `case spi family src dst enc enc_key auth
//!   auth_key mode natt esn` (espresso algorithm names, hex keys, `-` for
//!   none; AEAD keys are key || 4-byte salt), the form `tests/lib/tshark_esp.sh` takes;
//! - `expect.tsv`: one packet per line, `pcap frame spi seq inner_family
//!   inner_src inner_dst icmp_id icmp_seq payload_hex icv` (icv: good|bad;
//!   payload `-` when empty).
//!
//! Cases: AES-GCM-128/256, AES-CBC-128/256 with HMAC-SHA1-96,
//! HMAC-SHA-256-128, HMAC-SHA-384-192, HMAC-SHA-512-256, and NULL with each
//! HMAC, in tunnel mode IPv4-in-IPv4; and for three suites every other
//! layout: tunnel 6in4, 4in6, 6in6, transport over IPv4 and IPv6, and NAT-T
//! (UDP 4500) for tunnel and transport over both. Wireshark 4.0 has neither
//! ESN nor ChaCha20-Poly1305, so those are left to the scapy interop test.

use std::fmt::Write as _;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use dataplane::crypto::{Backend, EncrAlg, IntegAlg, Key, Suite};
use dataplane::drop::Verdict;
use dataplane::esp::encap_burst;
use dataplane::pkt::{HeapBuf, PacketBuf};
use dataplane::sa::{
    DfMode, Direction, DropCounters, Lifetime, Mode, PortRange, Sa, SaParams, TrafficSelector,
    UdpEncap,
};
use dataplane::wire::{checksum, IcmpPacket};

/// Classic pcap file writer (microsecond timestamps, snaplen 65535).
struct Pcap {
    out: Vec<u8>,
    linktype: u32,
    n: u32,
}

const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_RAW: u32 = 101;

impl Pcap {
    fn new(linktype: u32) -> Pcap {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&linktype.to_le_bytes());
        Pcap {
            out,
            linktype,
            n: 0,
        }
    }
    /// Appends an IP packet; returns its frame number (from 1).
    fn add(&mut self, ip: &[u8]) -> u32 {
        let mut frame = Vec::with_capacity(ip.len() + 14);
        if self.linktype == LINKTYPE_ETHERNET {
            frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]);
            let et: u16 = if ip[0] >> 4 == 6 { 0x86dd } else { 0x0800 };
            frame.extend_from_slice(&et.to_be_bytes());
        }
        frame.extend_from_slice(ip);
        self.n += 1;
        let ts = 1_700_000_000u32 + self.n;
        self.out.extend_from_slice(&ts.to_le_bytes());
        self.out.extend_from_slice(&0u32.to_le_bytes());
        self.out
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out.extend_from_slice(&frame);
        self.n
    }
    fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, &self.out)
    }
}

#[derive(Clone, Copy)]
struct Case {
    suite: Suite,
    mode: Mode,
    outer_v6: bool,
    inner_v6: bool,
    natt: bool,
}

/// Lower-case hex; "-" for no bytes (an empty TSV field would vanish in a
/// shell `read`).
fn hex(b: &[u8]) -> String {
    if b.is_empty() {
        return "-".into();
    }
    hex::encode(b)
}

fn key(len: usize, seed: u32) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(73) ^ seed.wrapping_mul(151)) as u8)
        .collect()
}

fn addrs(v6: bool) -> (IpAddr, IpAddr) {
    if v6 {
        (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        )
    } else {
        ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap())
    }
}

fn inner_addrs(c: &Case) -> (IpAddr, IpAddr) {
    match (c.mode, c.inner_v6) {
        (Mode::Transport, v6) => addrs(v6),
        (Mode::Tunnel, false) => ("10.1.0.10".parse().unwrap(), "10.2.0.20".parse().unwrap()),
        (Mode::Tunnel, true) => (
            "2001:db8:1::10".parse().unwrap(),
            "2001:db8:2::20".parse().unwrap(),
        ),
    }
}

/// An ICMP (IPv4) or ICMPv6 echo request with valid checksums.
fn echo(src: IpAddr, dst: IpAddr, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut icmp = vec![0u8; 8 + payload.len()];
    icmp[8..].copy_from_slice(payload);
    let mut m = IcmpPacket::new_checked(&mut icmp[..]).unwrap();
    m.set_code(0);
    m.set_rest_of_header((u32::from(id) << 16) | u32::from(seq));
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            m.set_msg_type(8);
            m.fill_checksum_v4();
            let tl = 20 + icmp.len();
            let mut p = vec![
                0x45,
                0,
                (tl >> 8) as u8,
                tl as u8,
                0,
                seq as u8,
                0x40,
                0,
                64,
                1,
                0,
                0,
            ];
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            let c = checksum::checksum(&p);
            p[10..12].copy_from_slice(&c.to_be_bytes());
            p.extend_from_slice(&icmp);
            p
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            m.set_msg_type(128);
            m.fill_checksum_v6(s, d);
            let pl = icmp.len();
            let mut p = vec![0x60, 0, 0, 0, (pl >> 8) as u8, pl as u8, 58, 64];
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&icmp);
            p
        }
        _ => unreachable!("one family"),
    }
}

fn cases() -> Vec<Case> {
    use EncrAlg::*;
    use IntegAlg::*;
    let hmacs = [HmacSha1_96, HmacSha256_128, HmacSha384_192, HmacSha512_256];
    let mut suites = vec![
        Suite {
            encr: AesGcm128,
            integ: None,
        },
        Suite {
            encr: AesGcm256,
            integ: None,
        },
    ];
    for encr in [AesCbc128, AesCbc256, Null] {
        for integ in hmacs {
            suites.push(Suite { encr, integ });
        }
    }
    let base = |suite| Case {
        suite,
        mode: Mode::Tunnel,
        outer_v6: false,
        inner_v6: false,
        natt: false,
    };
    let mut v: Vec<Case> = suites.iter().map(|&s| base(s)).collect();
    for suite in [
        Suite {
            encr: AesGcm128,
            integ: None,
        },
        Suite {
            encr: AesCbc256,
            integ: HmacSha256_128,
        },
        Suite {
            encr: Null,
            integ: HmacSha512_256,
        },
    ] {
        for (mode, outer_v6, inner_v6, natt) in [
            (Mode::Tunnel, false, true, false),
            (Mode::Tunnel, true, false, false),
            (Mode::Tunnel, true, true, false),
            (Mode::Transport, false, false, false),
            (Mode::Transport, true, true, false),
            (Mode::Tunnel, false, false, true),
            (Mode::Tunnel, true, true, true),
            (Mode::Transport, false, false, true),
            (Mode::Transport, true, true, true),
        ] {
            v.push(Case {
                suite,
                mode,
                outer_v6,
                inner_v6,
                natt,
            });
        }
    }
    v
}

fn params(c: &Case, spi: u32) -> SaParams {
    let (local, remote) = addrs(c.outer_v6);
    let any = |n: &str| TrafficSelector {
        local: n.parse().unwrap(),
        remote: n.parse().unwrap(),
        proto: 0,
        local_ports: PortRange::ANY,
        remote_ports: PortRange::ANY,
    };
    SaParams {
        spi,
        direction: Direction::Outbound,
        mode: c.mode,
        suite: c.suite,
        enc_key: Key::new(key(c.suite.encr.key_len(), spi)),
        auth_key: Key::new(key(c.suite.integ.key_len(), !spi)),
        esn: false,
        replay_window: 0,
        local_addr: local,
        remote_addr: remote,
        encap: c.natt.then_some(UdpEncap {
            local_port: 4500,
            remote_port: 4500,
        }),
        selectors: vec![any("0.0.0.0/0"), any("::/0")],
        lifetime: Lifetime::default(),
        df: DfMode::Copy,
        copy_dscp: true,
        initial_seq: 1,
        allow_legacy: false,
        tunnel_id: spi,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: esp_pcap OUTDIR")?;
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir)?;
    let mut raw = Pcap::new(LINKTYPE_RAW);
    let mut ether = Pcap::new(LINKTYPE_ETHERNET);
    let mut neg = Pcap::new(LINKTYPE_RAW);
    let mut sas = String::from(
        "#case\tspi\tfamily\tsrc\tdst\tenc\tenc_key\tauth\tauth_key\tmode\tnatt\tesn\n",
    );
    let mut expect = String::from(
        "#pcap\tframe\tspi\tseq\tinner_family\tinner_src\tinner_dst\ticmp_id\ticmp_seq\tpayload_hex\ticv\n",
    );
    let drops = DropCounters::default();
    for (i, c) in cases().iter().enumerate() {
        let spi = 0x2001 + i as u32;
        let p = params(c, spi);
        let name = format!(
            "{}/{}/{}/{}in{}{}",
            c.suite.encr.name(),
            c.suite.integ.name(),
            if c.mode == Mode::Tunnel {
                "tunnel"
            } else {
                "transport"
            },
            if c.inner_v6 { 6 } else { 4 },
            if c.outer_v6 { 6 } else { 4 },
            if c.natt { "/natt" } else { "" }
        );
        writeln!(
            sas,
            "{name}\t0x{spi:08x}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\tfalse",
            if c.outer_v6 { "IPv6" } else { "IPv4" },
            p.local_addr,
            p.remote_addr,
            c.suite.encr.name(),
            hex(p.enc_key.bytes()),
            c.suite.integ.name(),
            hex(p.auth_key.bytes()),
            if c.mode == Mode::Tunnel {
                "tunnel"
            } else {
                "transport"
            },
            c.natt,
        )?;
        let sa = Sa::new(p, Backend::Auto)?;
        let (isrc, idst) = inner_addrs(c);
        let id = 0x4000 + i as u16;
        // Three packets (payload 0, 37, 1000 bytes) and one for the negative.
        let payloads: Vec<Vec<u8>> = [0usize, 37, 1000, 64]
            .iter()
            .map(|&n| {
                (0..n)
                    .map(|x| (x as u8).wrapping_mul(7) ^ i as u8)
                    .collect()
            })
            .collect();
        let inner: Vec<Vec<u8>> = payloads
            .iter()
            .enumerate()
            .map(|(k, pl)| echo(isrc, idst, id, k as u16 + 1, pl))
            .collect();
        let mut bufs: Vec<HeapBuf> = inner.iter().map(|b| HeapBuf::from_slice(b)).collect();
        let mut verdicts = vec![Verdict::Pass; bufs.len()];
        encap_burst(&sa, &mut bufs, &mut verdicts, &drops);
        if let Some(v) = verdicts.iter().find(|v| **v != Verdict::Pass) {
            return Err(format!("{name}: encap gave {v:?}").into());
        }
        for (k, b) in bufs.iter().enumerate() {
            let seq = k + 1;
            let fam = if c.inner_v6 { "IPv6" } else { "IPv4" };
            let line = |pcap: &str, frame: u32, icv: &str| {
                format!(
                    "{pcap}\t{frame}\t0x{spi:08x}\t{seq}\t{fam}\t{isrc}\t{idst}\t{id}\t{seq}\t{}\t{icv}\n",
                    hex(&payloads[k])
                )
            };
            if k < 3 {
                let f = raw.add(b.data());
                expect.push_str(&line("esp_raw.pcap", f, "good"));
                if i < 3 || (c.outer_v6 && c.natt) {
                    let f = ether.add(b.data());
                    expect.push_str(&line("esp_ether.pcap", f, "good"));
                }
            } else if i < 4 || c.suite.encr == EncrAlg::Null && i < 14 {
                // One flipped bit in the middle of the ciphertext (or of
                // the NULL-encrypted payload), inside the ICV's coverage.
                let mut d = b.data().to_vec();
                let mid = d.len() - sa.cipher().icv_len() - 20;
                d[mid] ^= 0x10;
                let f = neg.add(&d);
                expect.push_str(&line("esp_neg.pcap", f, "bad"));
            }
        }
    }
    raw.write(&dir.join("esp_raw.pcap"))?;
    ether.write(&dir.join("esp_ether.pcap"))?;
    neg.write(&dir.join("esp_neg.pcap"))?;
    std::fs::File::create(dir.join("sas.tsv"))?.write_all(sas.as_bytes())?;
    std::fs::File::create(dir.join("expect.tsv"))?.write_all(expect.as_bytes())?;
    eprintln!(
        "esp_pcap: {} SAs, {} + {} + {} packets in {}",
        cases().len(),
        raw.n,
        ether.n,
        neg.n,
        dir.display()
    );
    Ok(())
}
