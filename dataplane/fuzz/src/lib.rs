//! Shared pieces of the ESP fuzz targets: the SA table the targets install
//! (keys of the oracle sample captures, so seeds made from those captures
//! decrypt for real), a reader for fuzzer bytes, and packet builders.
//!
//! Everything is deterministic for a given input (fixed keys, fixed CBC IV
//! key, a fresh SAD per input) so that a crash reproduces from its artifact.

use std::net::IpAddr;
use std::sync::Arc;

use dataplane::crypto::{build_with, Backend, BuildOptions, EncrAlg, IntegAlg, Key, Suite};
use dataplane::sa::{
    DfMode, Direction, Lifetime, Mode, PortRange, Sa, SaParams, Sad, TrafficSelector, UdpEncap,
    DEFAULT_REPLAY_WINDOW,
};
use dataplane::wire::checksum;

/// Outer addresses: the peer (sender) and us (receiver).
pub const PEER4: &str = "192.0.2.1";
/// Our IPv4 address.
pub const US4: &str = "192.0.2.2";
/// The peer's IPv6 address.
pub const PEER6: &str = "2001:db8::1";
/// Our IPv6 address.
pub const US6: &str = "2001:db8::2";

/// One SA configuration of the fuzz SAD.
#[derive(Clone, Copy, Debug)]
pub struct Cfg {
    /// SPI.
    pub spi: u32,
    /// Suite.
    pub encr: EncrAlg,
    /// Integrity (None for AEAD).
    pub integ: IntegAlg,
    /// Tunnel or transport.
    pub mode: Mode,
    /// IPv6 outer header.
    pub v6: bool,
    /// 64-bit ESN.
    pub esn: bool,
    /// UDP encapsulation on 4500.
    pub natt: bool,
    /// Replay window (0 = anti-replay off).
    pub window: u32,
    /// Copy DSCP on tunnel entry/exit.
    pub copy_dscp: bool,
    /// Encryption key (hex, AEAD: key || salt); empty: derived.
    pub enc_key: &'static str,
    /// Integrity key (hex); empty: derived.
    pub auth_key: &'static str,
}

const K1001: &str = "000102030405060708090a0b0c0d0e0fdeadbeef";
const KCBC128: &str = "00112233445566778899aabbccddeeff";
const AK_SHA256: &str = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20";
const K1003: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fcafebabe";
const KCBC256: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const AK_SHA1: &str = "0102030405060708090a0b0c0d0e0f1011121314";
const K1005: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f01020304";
const AK_SHA512: &str = "abababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababab";

const fn cfg(
    spi: u32,
    encr: EncrAlg,
    integ: IntegAlg,
    mode: Mode,
    v6: bool,
    esn: bool,
    natt: bool,
) -> Cfg {
    Cfg {
        spi,
        encr,
        integ,
        mode,
        v6,
        esn,
        natt,
        window: DEFAULT_REPLAY_WINDOW,
        copy_dscp: false,
        enc_key: "",
        auth_key: "",
    }
}

/// The SA table. 0x1001..=0x1009 carry the keys of
/// `dataplane/tests/vectors/oracle_samples/sa_table.txt`, so the sample
/// captures (and the seeds made from them) decrypt; the others add the
/// suites and layouts the samples lack (NULL+HMAC, SHA-384, IPv6 and NAT-T
/// combinations, transport with ESN, window 64 and anti-replay off, DSCP copy).
pub fn configs() -> Vec<Cfg> {
    use EncrAlg::*;
    use IntegAlg::*;
    use Mode::*;
    let k = |c: Cfg, e: &'static str, a: &'static str| Cfg {
        enc_key: e,
        auth_key: a,
        ..c
    };
    vec![
        k(
            cfg(0x1001, AesGcm128, None, Tunnel, false, false, false),
            K1001,
            "",
        ),
        k(
            cfg(
                0x1002,
                AesCbc128,
                HmacSha256_128,
                Tunnel,
                false,
                false,
                false,
            ),
            KCBC128,
            AK_SHA256,
        ),
        k(
            cfg(0x1003, AesGcm256, None, Transport, false, false, true),
            K1003,
            "",
        ),
        k(
            cfg(0x1004, AesCbc256, HmacSha1_96, Tunnel, false, false, false),
            KCBC256,
            AK_SHA1,
        ),
        k(
            cfg(0x1005, ChaCha20Poly1305, None, Tunnel, false, false, false),
            K1005,
            "",
        ),
        k(
            cfg(0x1006, AesGcm128, None, Tunnel, false, true, false),
            K1001,
            "",
        ),
        k(
            cfg(
                0x1007,
                AesCbc128,
                HmacSha256_128,
                Tunnel,
                false,
                false,
                false,
            ),
            KCBC128,
            AK_SHA256,
        ),
        k(
            cfg(
                0x1008,
                AesCbc256,
                HmacSha512_256,
                Tunnel,
                true,
                false,
                false,
            ),
            KCBC256,
            AK_SHA512,
        ),
        k(
            cfg(
                0x1009,
                AesCbc128,
                HmacSha256_128,
                Tunnel,
                false,
                true,
                false,
            ),
            KCBC128,
            AK_SHA256,
        ),
        cfg(0x100a, Null, HmacSha256_128, Tunnel, false, false, false),
        cfg(0x100b, Null, HmacSha384_192, Transport, true, false, false),
        cfg(0x100c, AesCbc128, HmacSha384_192, Tunnel, true, false, true),
        cfg(0x100d, AesGcm256, None, Transport, true, true, true),
        cfg(
            0x100e,
            ChaCha20Poly1305,
            None,
            Transport,
            false,
            true,
            false,
        ),
        cfg(0x100f, Null, HmacSha1_96, Tunnel, false, true, true),
        cfg(
            0x1010,
            AesCbc256,
            HmacSha512_256,
            Transport,
            false,
            false,
            false,
        ),
        Cfg {
            window: 64,
            ..cfg(0x1011, AesGcm128, None, Tunnel, true, false, false)
        },
        Cfg {
            window: 0,
            ..cfg(
                0x1012,
                AesCbc128,
                HmacSha256_128,
                Tunnel,
                false,
                false,
                true,
            )
        },
        Cfg {
            copy_dscp: true,
            ..cfg(0x1013, AesGcm128, None, Tunnel, false, true, false)
        },
        Cfg {
            copy_dscp: true,
            ..cfg(0x1014, ChaCha20Poly1305, None, Tunnel, true, false, true)
        },
    ]
}

fn derived_key(len: usize, seed: u32) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(37).wrapping_add(seed) as u8)
        .collect()
}

impl Cfg {
    /// The suite.
    pub fn suite(&self) -> Suite {
        Suite {
            encr: self.encr,
            integ: self.integ,
        }
    }
    /// Encryption key bytes.
    pub fn enc_key(&self) -> Vec<u8> {
        if self.enc_key.is_empty() {
            derived_key(self.encr.key_len(), self.spi)
        } else {
            hex::decode(self.enc_key).expect("hex key")
        }
    }
    /// Integrity key bytes.
    pub fn auth_key(&self) -> Vec<u8> {
        if self.auth_key.is_empty() {
            derived_key(self.integ.key_len(), self.spi ^ 0x55)
        } else {
            hex::decode(self.auth_key).expect("hex key")
        }
    }
    /// The peer's address (sender of inbound traffic).
    pub fn peer(&self) -> IpAddr {
        if self.v6 { PEER6 } else { PEER4 }.parse().unwrap()
    }
    /// Our address.
    pub fn us(&self) -> IpAddr {
        if self.v6 { US6 } else { US4 }.parse().unwrap()
    }
    /// Parameters of the SA in `dir` as installed on our side (inbound: the
    /// peer sends to us; outbound: we send to the peer).
    pub fn params(&self, dir: Direction) -> SaParams {
        let sel = |n: &str| TrafficSelector {
            local: n.parse().unwrap(),
            remote: n.parse().unwrap(),
            proto: 0,
            local_ports: PortRange::ANY,
            remote_ports: PortRange::ANY,
        };
        let (local, remote) = match dir {
            // Transport-mode inner packets carry their own addresses: accept
            // any destination (the SA's local address unspecified).
            Direction::Inbound if self.mode == Mode::Transport => (
                if self.v6 { "::" } else { "0.0.0.0" }.parse().unwrap(),
                self.peer(),
            ),
            Direction::Inbound => (self.us(), self.peer()),
            Direction::Outbound => (self.us(), self.peer()),
        };
        SaParams {
            spi: self.spi,
            direction: dir,
            mode: self.mode,
            suite: self.suite(),
            enc_key: Key::new(self.enc_key()),
            auth_key: Key::new(self.auth_key()),
            esn: self.esn,
            replay_window: self.window,
            local_addr: local,
            remote_addr: remote,
            encap: self.natt.then_some(UdpEncap {
                local_port: 4500,
                remote_port: 4500,
            }),
            selectors: vec![sel("0.0.0.0/0"), sel("::/0")],
            lifetime: Lifetime::default(),
            df: DfMode::Copy,
            copy_dscp: self.copy_dscp,
            initial_seq: 1,
            allow_legacy: false,
            tunnel_id: self.spi,
        }
    }

    /// A runtime SA on `backend` (RustCrypto if that backend lacks the suite),
    /// with a fixed CBC IV key so that runs are reproducible.
    pub fn sa(&self, dir: Direction, backend: Backend, initial_seq: u64) -> Sa {
        let mut p = self.params(dir);
        p.initial_seq = initial_seq;
        let mut opts = BuildOptions {
            esn: self.esn,
            backend,
            allow_legacy: false,
            iv_key: Some(Key::new(vec![0x5a; 32])),
            direction: None,
        };
        let cipher = match build_with(p.suite, &p.enc_key, &p.auth_key, &opts) {
            Ok(c) => c,
            Err(_) => {
                opts.backend = Backend::RustCrypto;
                build_with(p.suite, &p.enc_key, &p.auth_key, &opts).expect("rustcrypto suite")
            }
        };
        Sa::with_cipher(p, cipher).expect("valid fuzz SA")
    }
}

/// A compiled crypto backend chosen by a fuzzer byte.
pub fn backend(b: u8) -> Backend {
    let all = Backend::compiled();
    all[usize::from(b) % all.len()]
}

/// A SAD holding the inbound SA of every configuration.
pub fn inbound_sad(backend_byte: u8) -> Sad {
    let sad = Sad::with_capacity(32);
    for (i, c) in configs().iter().enumerate() {
        let b = backend(backend_byte.wrapping_add(i as u8));
        sad.insert(Arc::new(c.sa(Direction::Inbound, b, 1)));
    }
    sad
}

/// Reads fuzzer bytes; past the end it yields zeros and empty slices.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Wraps the fuzzer's input.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }
    /// True when every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// One byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }
    /// Big-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }
    /// A chunk with a 2-byte big-endian length prefix.
    pub fn chunk(&mut self) -> &'a [u8] {
        let n = usize::from(self.u16());
        self.bytes(n)
    }
    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }
}

/// Offsets of a crafted inbound ESP packet.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// Outer IP header length.
    pub ip_len: usize,
    /// Offset of the ESP header.
    pub esp_off: usize,
}

/// Builds the outer headers (peer to us) + ESP header + zeroed IV +
/// `plaintext` + zeroed ICV for `cfg`, then seals it with `sa`'s cipher
/// (an outbound SA of the same configuration). `tos` goes into the outer
/// header's TOS / traffic class.
pub fn craft(cfg: &Cfg, sa: &Sa, seq: u64, plaintext: &[u8], tos: u8) -> (Vec<u8>, Layout) {
    let ip_len = if cfg.v6 { 40 } else { 20 };
    let udp_len = if cfg.natt { 8 } else { 0 };
    let esp_off = ip_len + udp_len;
    let iv = sa.cipher().iv_len();
    let icv = sa.cipher().icv_len();
    let total = esp_off + 8 + iv + plaintext.len() + icv;
    let mut p = vec![0u8; total];
    p[esp_off..esp_off + 4].copy_from_slice(&cfg.spi.to_be_bytes());
    p[esp_off + 4..esp_off + 8].copy_from_slice(&(seq as u32).to_be_bytes());
    p[esp_off + 8 + iv..esp_off + 8 + iv + plaintext.len()].copy_from_slice(plaintext);
    {
        let mut jobs = [dataplane::crypto::SealJob {
            esp: &mut p[esp_off..],
            seq,
        }];
        sa.cipher().seal(&mut jobs);
    }
    // A cipher zeroes a job it refuses (e.g. an empty CBC plaintext); keep
    // the header so that the packet still reaches the SA.
    p[esp_off..esp_off + 4].copy_from_slice(&cfg.spi.to_be_bytes());
    p[esp_off + 4..esp_off + 8].copy_from_slice(&(seq as u32).to_be_bytes());
    let layout = Layout { ip_len, esp_off };
    write_outer(cfg, &mut p, tos, layout);
    (p, layout)
}

/// (Re)writes the outer IP (and UDP) header of a crafted packet for its
/// current length.
pub fn write_outer(cfg: &Cfg, p: &mut [u8], tos: u8, l: Layout) {
    let total = p.len();
    let next = if cfg.natt { 17 } else { 50 };
    let (src, dst) = (cfg.peer(), cfg.us());
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p[0] = 0x45;
            p[1] = tos;
            p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            p[4..8].copy_from_slice(&[0, 1, 0x40, 0]);
            p[8] = 64;
            p[9] = next;
            p[10..12].copy_from_slice(&[0, 0]);
            p[12..16].copy_from_slice(&s.octets());
            p[16..20].copy_from_slice(&d.octets());
            let c = checksum::checksum(&p[..20]);
            p[10..12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p[0] = 0x60 | (tos >> 4);
            p[1] = tos << 4;
            p[2..4].copy_from_slice(&[0, 0]);
            p[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
            p[6] = next;
            p[7] = 64;
            p[8..24].copy_from_slice(&s.octets());
            p[24..40].copy_from_slice(&d.octets());
        }
        _ => unreachable!("configs have one family"),
    }
    if cfg.natt {
        let u = l.ip_len;
        p[u..u + 2].copy_from_slice(&4500u16.to_be_bytes());
        p[u + 2..u + 4].copy_from_slice(&4500u16.to_be_bytes());
        p[u + 4..u + 6].copy_from_slice(&((total - u) as u16).to_be_bytes());
        p[u + 6..u + 8].copy_from_slice(&[0, 0]);
    }
}

/// RFC 4303 §2.4 trailer check, written independently of the engine: the
/// plaintext ends with pad length and next header, and the padding bytes
/// are 1, 2, 3, ... Returns (payload length, next header).
pub fn trailer_ok(plain: &[u8]) -> Option<(usize, u8)> {
    let n = plain.len();
    if n < 2 {
        return None;
    }
    let pad = usize::from(plain[n - 2]);
    if pad + 2 > n {
        return None;
    }
    let start = n - 2 - pad;
    for (i, b) in plain[start..n - 2].iter().enumerate() {
        if usize::from(*b) != i + 1 {
            return None;
        }
    }
    Some((start, plain[n - 1]))
}

/// Inner ECN after tunnel exit, RFC 6040 §4.2 Figure 4 (rows: inner;
/// columns: outer Not-ECT, ECT(0), ECT(1), CE). `None`: drop.
pub fn rfc6040_exit(inner: u8, outer: u8) -> Option<u8> {
    const T: [[Option<u8>; 4]; 4] = [
        [Some(0), Some(0), Some(0), None],
        [Some(1), Some(1), Some(1), Some(3)],
        [Some(2), Some(2), Some(1), Some(3)],
        [Some(3), Some(3), Some(3), Some(3)],
    ];
    // Codepoints: 0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE; the table's columns
    // are in the RFC's order Not-ECT, ECT(0), ECT(1), CE.
    let col = match outer & 3 {
        0 => 0,
        2 => 1,
        1 => 2,
        _ => 3,
    };
    T[usize::from(inner & 3)][col]
}

/// Offset and protocol of the upper layer of an IPv4 or IPv6 packet
/// (IPv6: after hop-by-hop, routing and destination options headers).
pub fn l4_offset(p: &[u8]) -> Option<(usize, u8)> {
    match p.first()? >> 4 {
        4 => Some((usize::from(p[0] & 15) * 4, *p.get(9)?)),
        6 => {
            let mut nh = *p.get(6)?;
            let mut off = 40;
            for _ in 0..8 {
                match nh {
                    0 | 43 | 60 => {
                        nh = *p.get(off)?;
                        off += (usize::from(*p.get(off + 1)?) + 1) * 8;
                    }
                    _ => return Some((off, nh)),
                }
            }
            None
        }
        _ => None,
    }
}

/// Model of RFC 3948 §3.1.2 (transport-mode decapsulation behind a NAT, "the
/// receiver recomputes the checksum"): the packet a NAT-T transport SA must
/// deliver for `sent`: the same bytes, with a TCP or UDP checksum recomputed
/// over the addresses the packet carries. A UDP checksum of 0 (none) stays 0;
/// other protocols and packets too short for the field are unchanged.
pub fn natt_transport_expected(sent: &[u8]) -> Vec<u8> {
    match l4_offset(sent) {
        Some((off, nh)) => natt_transport_expected_at(sent, off, nh),
        None => sent.to_vec(),
    }
}

/// [`natt_transport_expected`] with the header that followed the ESP header
/// given: protocol `nh` at offset `off` (only a TCP or UDP header directly
/// after ESP is fixed, RFC 3948 §3.1.2).
pub fn natt_transport_expected_at(sent: &[u8], off: usize, nh: u8) -> Vec<u8> {
    let mut p = sent.to_vec();
    let at = match nh {
        6 => off + 16,
        17 => off + 6,
        _ => return p,
    };
    if p.len() < at + 2 || (nh == 17 && p[at] == 0 && p[at + 1] == 0) {
        return p;
    }
    p[at] = 0;
    p[at + 1] = 0;
    let addrs = if p[0] >> 4 == 4 {
        &p[12..20]
    } else {
        &p[8..40]
    };
    let len = (p.len() - off) as u64;
    let acc = checksum::sum(addrs)
        + u64::from(nh)
        + (len >> 16)
        + (len & 0xffff)
        + checksum::sum(&p[off..]);
    let mut c = !checksum::fold(acc);
    if nh == 17 && c == 0 {
        c = 0xffff;
    }
    p[at..at + 2].copy_from_slice(&c.to_be_bytes());
    p
}
