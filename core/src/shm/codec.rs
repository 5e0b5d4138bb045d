//! Binary encoding of ring payloads (commands, events, tap records).
//! Little-endian, length-prefixed, every enum with explicit stable codes.
//! Decoding never panics: every failure names the field.

#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use zeroize::Zeroizing;

use crate::alg::{EncrAlg, IntegAlg, Suite};
use crate::key::Key;
use crate::sa::{
    DfMode, Direction, Lifetime, LifetimeKind, Mode, Policy, PolicyAction, PortRange, SaEvent,
    SaParams, TrafficSelector, UdpEncap,
};

/// Record kinds of the command ring (control -> dataplane).
pub(crate) const CMD_ADD_SA: u16 = 1;
pub(crate) const CMD_REMOVE_SA: u16 = 2;
pub(crate) const CMD_ADD_POLICY: u16 = 3;
pub(crate) const CMD_REMOVE_POLICY: u16 = 4;
pub(crate) const CMD_FLUSH: u16 = 5;
pub(crate) const CMD_SYNC: u16 = 7;
pub(crate) const CMD_EXPECT_SPI: u16 = 8;
/// Record kind of the event ring (dataplane -> control).
pub(crate) const EVT_SA: u16 = 0x0200;

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {why}")]
pub struct DecodeError {
    /// Field being decoded.
    pub field: &'static str,
    /// What was wrong.
    pub why: String,
}

fn err(field: &'static str, why: impl Into<String>) -> DecodeError {
    DecodeError {
        field,
        why: why.into(),
    }
}

/// Encoder into a buffer that is wiped when dropped (it may hold keys).
#[derive(Default)]
pub(crate) struct Writer {
    pub buf: Zeroizing<Vec<u8>>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.u16(b.len() as u16);
        self.buf.extend_from_slice(b);
    }
    pub fn ip(&mut self, a: IpAddr) {
        match a {
            IpAddr::V4(a) => {
                self.u8(4);
                self.buf.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                self.u8(6);
                self.buf.extend_from_slice(&a.octets());
            }
        }
    }
    pub fn net(&mut self, n: IpNet) {
        self.ip(n.addr());
        self.u8(n.prefix_len());
    }
    pub fn selector(&mut self, s: &TrafficSelector) {
        self.net(s.local);
        self.net(s.remote);
        self.u8(s.proto);
        self.u16(s.local_ports.start);
        self.u16(s.local_ports.end);
        self.u16(s.remote_ports.start);
        self.u16(s.remote_ports.end);
    }
}

pub(crate) struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Reader { b }
    }
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.b.len() < n {
            return Err(err(
                field,
                format!("needs {n} bytes, {} left", self.b.len()),
            ));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    pub fn u8(&mut self, f: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, f)?[0])
    }
    pub fn u16(&mut self, f: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, f)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self, f: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, f)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self, f: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, f)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub fn bool(&mut self, f: &'static str) -> Result<bool, DecodeError> {
        match self.u8(f)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(err(f, format!("boolean byte {v}"))),
        }
    }
    pub fn bytes(&mut self, f: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.u16(f)? as usize;
        self.take(n, f)
    }
    pub fn ip(&mut self, f: &'static str) -> Result<IpAddr, DecodeError> {
        match self.u8(f)? {
            4 => {
                let b = self.take(4, f)?;
                Ok(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])))
            }
            6 => {
                let b = self.take(16, f)?;
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                Ok(IpAddr::V6(Ipv6Addr::from(a)))
            }
            v => Err(err(f, format!("address family {v}"))),
        }
    }
    pub fn net(&mut self, f: &'static str) -> Result<IpNet, DecodeError> {
        let a = self.ip(f)?;
        let p = self.u8(f)?;
        IpNet::new(a, p).map_err(|_| err(f, format!("prefix length {p} for {a}")))
    }
    pub fn selector(&mut self) -> Result<TrafficSelector, DecodeError> {
        Ok(TrafficSelector {
            local: self.net("selector.local")?,
            remote: self.net("selector.remote")?,
            proto: self.u8("selector.proto")?,
            local_ports: PortRange {
                start: self.u16("selector.local_ports")?,
                end: self.u16("selector.local_ports")?,
            },
            remote_ports: PortRange {
                start: self.u16("selector.remote_ports")?,
                end: self.u16("selector.remote_ports")?,
            },
        })
    }
    pub fn finish(&self, f: &'static str) -> Result<(), DecodeError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(err(f, format!("{} trailing bytes", self.b.len())))
        }
    }
}

macro_rules! codes {
    ($t:ty, $enc:ident, $dec:ident, $field:literal, { $($v:path => $c:literal),* $(,)? }) => {
        pub(crate) fn $enc(v: $t) -> u8 { match v { $($v => $c,)* } }
        pub(crate) fn $dec(c: u8) -> Result<$t, DecodeError> {
            match c { $($c => Ok($v),)* _ => Err(err($field, format!("unknown code {c}"))) }
        }
    };
}

codes!(EncrAlg, encr_code, encr_from, "suite.encr", {
    EncrAlg::Null => 0, EncrAlg::AesCbc128 => 1, EncrAlg::AesCbc256 => 2,
    EncrAlg::AesGcm128 => 3, EncrAlg::AesGcm256 => 4, EncrAlg::ChaCha20Poly1305 => 5,
    EncrAlg::TripleDesCbc => 6,
});
codes!(IntegAlg, integ_code, integ_from, "suite.integ", {
    IntegAlg::None => 0, IntegAlg::HmacSha1_96 => 1, IntegAlg::HmacSha256_128 => 2,
    IntegAlg::HmacSha384_192 => 3, IntegAlg::HmacSha512_256 => 4, IntegAlg::HmacMd5_96 => 5,
});
codes!(Direction, dir_code, dir_from, "direction", {
    Direction::Inbound => 0, Direction::Outbound => 1,
});
codes!(Mode, mode_code, mode_from, "mode", { Mode::Tunnel => 0, Mode::Transport => 1 });
codes!(DfMode, df_code, df_from, "df", { DfMode::Copy => 0, DfMode::Set => 1, DfMode::Clear => 2 });
codes!(LifetimeKind, lk_code, lk_from, "lifetime kind", {
    LifetimeKind::Bytes => 0, LifetimeKind::Packets => 1,
});

pub(crate) fn put_sa(w: &mut Writer, p: &SaParams) {
    w.u32(p.spi);
    w.u8(dir_code(p.direction));
    w.u8(mode_code(p.mode));
    w.u8(encr_code(p.suite.encr));
    w.u8(integ_code(p.suite.integ));
    w.bytes(p.enc_key.bytes());
    w.bytes(p.auth_key.bytes());
    w.u8(p.esn as u8);
    w.u32(p.replay_window);
    w.ip(p.local_addr);
    w.ip(p.remote_addr);
    match p.encap {
        None => w.u8(0),
        Some(e) => {
            w.u8(1);
            w.u16(e.local_port);
            w.u16(e.remote_port);
        }
    }
    w.u16(p.selectors.len() as u16);
    for s in &p.selectors {
        w.selector(s);
    }
    w.u64(p.lifetime.soft_bytes);
    w.u64(p.lifetime.hard_bytes);
    w.u64(p.lifetime.soft_packets);
    w.u64(p.lifetime.hard_packets);
    w.u8(df_code(p.df));
    w.u8(p.copy_dscp as u8);
    w.u64(p.initial_seq);
    w.u8(p.allow_legacy as u8);
    w.u32(p.tunnel_id);
}

pub(crate) fn get_sa(r: &mut Reader<'_>) -> Result<SaParams, DecodeError> {
    let spi = r.u32("spi")?;
    let direction = dir_from(r.u8("direction")?)?;
    let mode = mode_from(r.u8("mode")?)?;
    let suite = Suite {
        encr: encr_from(r.u8("suite.encr")?)?,
        integ: integ_from(r.u8("suite.integ")?)?,
    };
    let enc_key = Key::from_slice(r.bytes("enc_key")?);
    let auth_key = Key::from_slice(r.bytes("auth_key")?);
    let esn = r.bool("esn")?;
    let replay_window = r.u32("replay_window")?;
    let local_addr = r.ip("local_addr")?;
    let remote_addr = r.ip("remote_addr")?;
    let encap = match r.u8("encap")? {
        0 => None,
        1 => Some(UdpEncap {
            local_port: r.u16("encap.local_port")?,
            remote_port: r.u16("encap.remote_port")?,
        }),
        v => return Err(err("encap", format!("flag {v}"))),
    };
    let n = r.u16("selectors")? as usize;
    let mut selectors = Vec::with_capacity(n);
    for _ in 0..n {
        selectors.push(r.selector()?);
    }
    let lifetime = Lifetime {
        soft_bytes: r.u64("lifetime.soft_bytes")?,
        hard_bytes: r.u64("lifetime.hard_bytes")?,
        soft_packets: r.u64("lifetime.soft_packets")?,
        hard_packets: r.u64("lifetime.hard_packets")?,
    };
    let df = df_from(r.u8("df")?)?;
    let copy_dscp = r.bool("copy_dscp")?;
    let initial_seq = r.u64("initial_seq")?;
    let allow_legacy = r.bool("allow_legacy")?;
    let tunnel_id = r.u32("tunnel_id")?;
    Ok(SaParams {
        spi,
        direction,
        mode,
        suite,
        enc_key,
        auth_key,
        esn,
        replay_window,
        local_addr,
        remote_addr,
        encap,
        selectors,
        lifetime,
        df,
        copy_dscp,
        initial_seq,
        allow_legacy,
        tunnel_id,
    })
}

pub(crate) fn put_policy(w: &mut Writer, p: &Policy) {
    w.u32(p.id);
    w.u32(p.tunnel_id);
    w.selector(&p.selector);
    match p.action {
        PolicyAction::Protect { spi } => {
            w.u8(0);
            w.u32(spi);
        }
        PolicyAction::Bypass => w.u8(1),
        PolicyAction::Discard => w.u8(2),
        PolicyAction::Trap => w.u8(3),
    }
    w.u32(p.priority);
}

pub(crate) fn get_policy(r: &mut Reader<'_>) -> Result<Policy, DecodeError> {
    let id = r.u32("policy.id")?;
    let tunnel_id = r.u32("policy.tunnel_id")?;
    let selector = r.selector()?;
    let action = match r.u8("policy.action")? {
        0 => PolicyAction::Protect {
            spi: r.u32("policy.action.spi")?,
        },
        1 => PolicyAction::Bypass,
        2 => PolicyAction::Discard,
        3 => PolicyAction::Trap,
        v => return Err(err("policy.action", format!("unknown code {v}"))),
    };
    let priority = r.u32("policy.priority")?;
    Ok(Policy {
        id,
        tunnel_id,
        selector,
        action,
        priority,
    })
}

pub(crate) fn put_event(w: &mut Writer, e: &SaEvent) {
    match *e {
        SaEvent::SoftExpire {
            spi,
            direction,
            kind,
        } => {
            w.u8(0);
            w.u32(spi);
            w.u8(dir_code(direction));
            w.u8(lk_code(kind));
        }
        SaEvent::HardExpire {
            spi,
            direction,
            kind,
        } => {
            w.u8(1);
            w.u32(spi);
            w.u8(dir_code(direction));
            w.u8(lk_code(kind));
        }
        SaEvent::SeqExhausted { spi } => {
            w.u8(2);
            w.u32(spi);
        }
        SaEvent::Acquire {
            policy_id,
            src,
            dst,
            proto,
        } => {
            w.u8(3);
            w.u32(policy_id);
            w.ip(src);
            w.ip(dst);
            w.u8(proto);
        }
    }
}

pub(crate) fn get_event(r: &mut Reader<'_>) -> Result<SaEvent, DecodeError> {
    let ev = match r.u8("event")? {
        0 => SaEvent::SoftExpire {
            spi: r.u32("event.spi")?,
            direction: dir_from(r.u8("event.direction")?)?,
            kind: lk_from(r.u8("event.kind")?)?,
        },
        1 => SaEvent::HardExpire {
            spi: r.u32("event.spi")?,
            direction: dir_from(r.u8("event.direction")?)?,
            kind: lk_from(r.u8("event.kind")?)?,
        },
        2 => SaEvent::SeqExhausted {
            spi: r.u32("event.spi")?,
        },
        3 => SaEvent::Acquire {
            policy_id: r.u32("event.policy_id")?,
            src: r.ip("event.src")?,
            dst: r.ip("event.dst")?,
            proto: r.u8("event.proto")?,
        },
        v => return Err(err("event", format!("unknown code {v}"))),
    };
    r.finish("event")?;
    Ok(ev)
}
