//! Fuzz entry point of the shared-memory channel (`cargo fuzz run shm`, in
//! dataplane/fuzz): built for fuzzing (`cfg(fuzzing)`, set by cargo-fuzz) and
//! for the tests, never into the daemon or the dataplane.
//!
//! The fuzzer plays a damaged or hostile peer process: it writes records
//! (valid checksums around arbitrary payloads, real encoded commands with
//! bytes flipped) and raw bytes into a ring of a real region, moves the
//! ring's head and tail to arbitrary positions, and the real readers
//! ([`DataplaneEnd::next_command`], [`ControlEnd::pop_event`]) consume it.
//! Checked: no panic, no hang (every read ends in a bounded number of
//! steps), every damaged record or undecodable command is an error.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::codec::{self, Writer, CMD_ADD_POLICY, CMD_ADD_SA, CMD_FLUSH, CMD_REMOVE_POLICY};
use super::codec::{CMD_REMOVE_SA, CMD_SYNC, EVT_SA};
use super::region;
use super::ring::Ring;
use super::{ControlEnd, DataplaneEnd, Geometry};
use crate::alg::{EncrAlg, IntegAlg, Suite};
use crate::key::Key;
use crate::sa::{
    DfMode, Direction, Lifetime, LifetimeKind, Mode, Policy, PolicyAction, PortRange, SaEvent,
    SaParams, TrafficSelector, UdpEncap,
};

/// Reads for one input are bounded by this many records: more means the
/// reader did not make progress (a hang).
const MAX_READS: usize = 10_000;

fn geometry() -> Geometry {
    Geometry {
        max_sas: 16,
        max_workers: 1,
        max_tunnels: 8,
        max_policies: 16,
        ledger_entries: 8,
        cmd_ring_bytes: 4096,
        event_ring_bytes: 4096,
        tap_ring_bytes: 4096,
    }
}

/// A region of its own for one input, removed afterwards.
struct Region {
    dir: PathBuf,
    path: PathBuf,
}

impl Region {
    fn new() -> Option<Region> {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "espresso-shm-fuzz-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).ok()?;
        let path = dir.join("region.shm");
        Some(Region { dir, path })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }
    fn u64(&mut self) -> Option<u64> {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8()?;
        }
        Some(u64::from_le_bytes(b))
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

/// A complete SA as the control process encodes it (template of the
/// structure-aware records).
fn template_sa(spi: u32) -> SaParams {
    SaParams {
        spi,
        direction: Direction::Inbound,
        mode: Mode::Tunnel,
        suite: Suite {
            encr: EncrAlg::AesCbc128,
            integ: IntegAlg::HmacSha256_128,
        },
        enc_key: Key::new((0..16u8).collect()),
        auth_key: Key::new((0..32u8).collect()),
        esn: true,
        replay_window: 1024,
        local_addr: [192, 0, 2, 1].into(),
        remote_addr: "2001:db8::2"
            .parse()
            .unwrap_or(std::net::IpAddr::from([0u8; 16])),
        encap: Some(UdpEncap {
            local_port: 4500,
            remote_port: 4500,
        }),
        selectors: vec![TrafficSelector {
            local: ipnet::IpNet::new([10, 1, 0, 0].into(), 24)
                .unwrap_or_else(|_| ipnet::IpNet::from(std::net::IpAddr::from([0u8; 4]))),
            remote: ipnet::IpNet::from(std::net::IpAddr::from([10, 2, 0, 1])),
            proto: 17,
            local_ports: PortRange { start: 1, end: 99 },
            remote_ports: PortRange::ANY,
        }],
        lifetime: Lifetime {
            soft_bytes: 1 << 20,
            hard_bytes: 1 << 21,
            soft_packets: 100,
            hard_packets: 200,
        },
        df: DfMode::Copy,
        copy_dscp: true,
        initial_seq: 5,
        allow_legacy: false,
        tunnel_id: 3,
    }
}

/// A valid record of `kind` (a command, or an event when `event`), encoded
/// by the real encoders.
fn template(kind: u8, event: bool) -> (u16, Writer) {
    let mut w = Writer::default();
    if event {
        let ev = match kind % 4 {
            0 => SaEvent::SoftExpire {
                spi: 0x1001,
                direction: Direction::Outbound,
                kind: LifetimeKind::Bytes,
            },
            1 => SaEvent::HardExpire {
                spi: 0x1002,
                direction: Direction::Inbound,
                kind: LifetimeKind::Packets,
            },
            2 => SaEvent::SeqExhausted { spi: 0x1003 },
            _ => SaEvent::Acquire {
                policy_id: 4,
                src: [10, 1, 0, 1].into(),
                dst: "2001:db8::9"
                    .parse()
                    .unwrap_or(std::net::IpAddr::from([0u8; 16])),
                proto: 6,
            },
        };
        codec::put_event(&mut w, &ev);
        return (EVT_SA, w);
    }
    match kind % 6 {
        0 => {
            w.u32(u32::from(kind) % 20);
            w.u64(7);
            codec::put_sa(&mut w, &template_sa(0x2000 + u32::from(kind)));
            (CMD_ADD_SA, w)
        }
        1 => {
            w.u32(u32::from(kind) % 20);
            w.u32(0x2000);
            w.u8(1);
            (CMD_REMOVE_SA, w)
        }
        2 => {
            let p = Policy {
                id: u32::from(kind),
                tunnel_id: 3,
                selector: template_sa(1).selectors[0].clone(),
                action: PolicyAction::Protect { spi: 0x2001 },
                priority: 10,
            };
            codec::put_policy(&mut w, &p);
            (CMD_ADD_POLICY, w)
        }
        3 => {
            w.u32(u32::from(kind));
            (CMD_REMOVE_POLICY, w)
        }
        4 => (CMD_FLUSH, w),
        _ => {
            w.u64(u64::from(kind));
            (CMD_SYNC, w)
        }
    }
}

/// Fuzz entry point. `data[0]` even: the command ring (read by the
/// dataplane end); odd: the event ring (read by the control end). The rest
/// is a series of operations on that ring, each a tag byte:
///
/// - `0`: a record with a valid checksum: kind (u16), flags (u16), payload
///   length (u16, bounded by the ring) and payload bytes;
/// - `1`: a real encoded command or event (template byte), `n` bytes of it
///   XORed with the bytes that follow (position, value pairs), pushed;
/// - `2`: raw bytes written at a data-area offset (u16 offset, length byte);
/// - `3`: the head set to a 64-bit value; `4`: the tail set to one;
/// - `5`: the head moved forward by a small amount;
/// - `6`: a wrap record with a valid checksum written at a data offset;
/// - anything else: the reader consumes what is there.
///
/// The reader consumes once more at the end. Never panics.
pub fn ring(data: &[u8]) {
    let Some(reg) = Region::new() else {
        return;
    };
    let g = geometry();
    let Ok(mut dp) = DataplaneEnd::attach_with(&reg.path, &g) else {
        return;
    };
    let Ok(mut ctl) = ControlEnd::attach(&reg.path, &g) else {
        return;
    };
    let Ok(map) = region::open_existing(&reg.path) else {
        return;
    };
    let mut inp = Input(data);
    let event = inp.u8().unwrap_or(0) & 1 == 1;
    let (off, cap, name) = if event {
        (map.offsets.evt_off, g.event_ring_bytes, "event")
    } else {
        (map.offsets.cmd_off, g.cmd_ring_bytes, "command")
    };
    let ring = Ring::new(map.clone(), off, cap, name);
    let consume = |dp: &mut DataplaneEnd, ctl: &mut ControlEnd| {
        for _ in 0..MAX_READS {
            let more = if event {
                matches!(ctl.pop_event(), Ok(Some(_)))
            } else {
                matches!(dp.next_command(), Ok(Some(_)))
            };
            if !more {
                return;
            }
        }
        panic!("{name} ring reader still returning records after {MAX_READS} reads");
    };
    while let Some(op) = inp.u8() {
        match op {
            0 => {
                let (Some(kind), Some(flags), Some(len)) = (inp.u16(), inp.u16(), inp.u16()) else {
                    break;
                };
                let payload = inp.bytes(usize::from(len) % 2048).to_vec();
                let _ = ring.push(kind, flags, &payload);
            }
            1 => {
                let Some(t) = inp.u8() else { break };
                let (kind, w) = template(t, event);
                let mut p = w.buf.to_vec();
                let n = inp.u8().unwrap_or(0) % 8;
                for _ in 0..n {
                    let (Some(at), Some(x)) = (inp.u8(), inp.u8()) else {
                        break;
                    };
                    if !p.is_empty() {
                        let i = usize::from(at) % p.len();
                        p[i] ^= x;
                    }
                }
                let cut = inp.u8().unwrap_or(0);
                if cut > 200 && !p.is_empty() {
                    p.truncate(usize::from(cut - 200) % p.len());
                }
                let _ = ring.push(kind, 0, &p);
            }
            2 => {
                let (Some(at), Some(len)) = (inp.u16(), inp.u8()) else {
                    break;
                };
                let b = inp.bytes(usize::from(len)).to_vec();
                ring.fuzz_write(u64::from(at), &b);
            }
            3 => {
                let Some(v) = inp.u64() else { break };
                ring.fuzz_set_head(v);
            }
            4 => {
                let Some(v) = inp.u64() else { break };
                ring.fuzz_set_tail(v);
            }
            5 => {
                let Some(v) = inp.u16() else { break };
                ring.fuzz_set_head(ring.head_pos().wrapping_add(u64::from(v)));
            }
            6 => {
                let (Some(at), Some(len)) = (inp.u16(), inp.u16()) else {
                    break;
                };
                ring.fuzz_write_wrap(u64::from(at), u32::from(len));
            }
            _ => consume(&mut dp, &mut ctl),
        }
    }
    consume(&mut dp, &mut ctl);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::ring;

    /// Seeds committed under dataplane/fuzz/seeds/shm run here too.
    #[test]
    fn templates_and_corruptions_never_panic() {
        for ev in [0u8, 1] {
            for t in 0..12u8 {
                ring(&[ev, 1, t, 0, 7]);
                ring(&[ev, 1, t, 2, 3, 0xff, 9, 0x10, 7]);
            }
        }
    }

    /// A head set far beyond the tail, over a ring holding valid wrap
    /// records: the reader reports corruption at once instead of walking
    /// the billions of laps the head claims (found by the shm fuzz target).
    #[test]
    fn impossible_head_over_wrap_records_is_corruption_not_a_hang() {
        for ev in [0u8, 1] {
            let mut d = vec![ev];
            for at in (0u16..4096).step_by(16) {
                d.push(6);
                d.extend_from_slice(&at.to_le_bytes());
                d.extend_from_slice(&16u16.to_le_bytes());
            }
            d.push(3);
            d.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
            d.push(9);
            ring(&d);
        }
    }

    /// A tail ahead of the head (an impossible pair) is corruption, not an
    /// underflow.
    #[test]
    fn tail_ahead_of_head_is_corruption() {
        for ev in [0u8, 1] {
            let mut d = vec![ev, 1, 0, 0, 0, 4];
            d.extend_from_slice(&1000u64.to_le_bytes());
            d.extend_from_slice(&[1, 3, 0, 9]);
            ring(&d);
        }
    }

    /// The inputs of every crash the shm fuzz target found
    /// (dataplane/fuzz/seeds/shm/regress-*): a producer that read its head
    /// back from shared memory wrote a wrap record past the end of the data
    /// area when a corrupt head was not on a 16-byte boundary.
    #[test]
    fn regression_seeds_never_panic() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dataplane/fuzz/seeds/shm");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with("regress-"))
            {
                ring(&std::fs::read(&p).unwrap());
                n += 1;
            }
        }
        assert!(n > 0, "no regression seeds in {}", dir.display());
    }

    /// A corrupt shared head off a record boundary: the producer keeps its
    /// own head and never writes outside the data area.
    #[test]
    fn unaligned_shared_head_does_not_move_the_producer() {
        for ev in [0u8, 1] {
            // head += 5, then a valid record, then consume
            ring(&[ev, 5, 5, 0, 1, 0, 0, 0, 9]);
            // head just below the end of the ring, then a record that wraps
            let mut d = vec![ev, 3];
            d.extend_from_slice(&(4096u64 - 5).to_le_bytes());
            d.extend_from_slice(&[0, 1, 0, 0, 0, 200, 0]);
            d.extend_from_slice(&[7u8; 200]);
            d.push(9);
            ring(&d);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

        #[test]
        fn random_operations_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            ring(&data);
        }
    }
}
