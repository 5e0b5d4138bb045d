use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use proptest::prelude::*;

use super::layout::{hw, SA_DP_WORDS};
use super::*;
use crate::alg::{EncrAlg, IntegAlg, Suite};
use crate::key::Key;
use crate::sa::{
    DfMode, Lifetime, LifetimeKind, Mode, PolicyAction, PortRange, SaEvent, TrafficSelector,
    UdpEncap,
};

fn small() -> Geometry {
    Geometry {
        max_sas: 64,
        max_workers: 4,
        max_tunnels: 16,
        max_policies: 64,
        ledger_entries: 32,
        cmd_ring_bytes: 8192,
        event_ring_bytes: 4096,
        tap_ring_bytes: 8192,
    }
}

fn region() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("region.shm");
    (d, p)
}

fn params(spi: u32, direction: Direction) -> SaParams {
    SaParams {
        spi,
        direction,
        mode: Mode::Tunnel,
        suite: Suite {
            encr: EncrAlg::AesGcm128,
            integ: IntegAlg::None,
        },
        enc_key: Key::new((0..20u8).collect()),
        auth_key: Key::default(),
        esn: true,
        replay_window: 4096,
        local_addr: "192.0.2.1".parse().unwrap(),
        remote_addr: "2001:db8::2".parse::<IpAddr>().unwrap(),
        encap: Some(UdpEncap {
            local_port: 4500,
            remote_port: 4501,
        }),
        selectors: vec![
            TrafficSelector {
                local: "10.1.0.0/24".parse().unwrap(),
                remote: "10.2.0.0/16".parse().unwrap(),
                proto: 6,
                local_ports: PortRange { start: 1, end: 2 },
                remote_ports: PortRange::ANY,
            },
            TrafficSelector {
                local: "2001:db8:1::/48".parse().unwrap(),
                remote: "::/0".parse().unwrap(),
                proto: 0,
                local_ports: PortRange::ANY,
                remote_ports: PortRange::ANY,
            },
        ],
        lifetime: Lifetime {
            soft_bytes: 1,
            hard_bytes: 2,
            soft_packets: 3,
            hard_packets: 4,
        },
        df: DfMode::Set,
        copy_dscp: true,
        initial_seq: 77,
        allow_legacy: false,
        tunnel_id: 9,
    }
}

fn policy(id: u32) -> Policy {
    Policy {
        id,
        tunnel_id: 3,
        selector: TrafficSelector {
            local: "10.1.0.0/24".parse().unwrap(),
            remote: "10.2.0.0/24".parse().unwrap(),
            proto: 0,
            local_ports: PortRange::ANY,
            remote_ports: PortRange::ANY,
        },
        action: PolicyAction::Protect { spi: 0x1001 },
        priority: 100,
    }
}

/// True if every byte of the command ring's data area is zero.
fn ring_is_zero(c: &ControlEnd) -> bool {
    let off = c.offsets_for_test().cmd_off + super::layout::RING_HDR as u64;
    let n = (c.geometry().cmd_ring_bytes / 8) as usize;
    c.raw_words(off, n)
        .iter()
        .all(|w| w.load(Ordering::Relaxed) == 0)
}

#[test]
fn commands_round_trip_with_keys_and_are_wiped_after_reading() {
    let (_d, p) = region();
    let mut c = ControlEnd::attach(&p, &small()).unwrap();
    let mut dp = DataplaneEnd::attach(&p).unwrap();
    let sa = params(0x1001, Direction::Outbound);
    c.add_sa(5, 0xabc, &sa).unwrap();
    c.remove_sa(5, 0x1001, Direction::Outbound).unwrap();
    c.add_policy(&policy(7)).unwrap();
    c.remove_policy(7).unwrap();
    c.flush().unwrap();
    assert!(!ring_is_zero(&c), "the add record holds the key");

    match dp.next_command().unwrap() {
        Some(Command::AddSa { slot, params }) => {
            assert_eq!(slot, 5);
            assert_eq!(params, sa);
            assert_eq!(params.enc_key.bytes(), sa.enc_key.bytes());
        }
        other => panic!("expected AddSa, got {other:?}"),
    }
    assert!(matches!(
        dp.next_command().unwrap(),
        Some(Command::RemoveSa {
            slot: 5,
            spi: 0x1001,
            direction: Direction::Outbound
        })
    ));
    match dp.next_command().unwrap() {
        Some(Command::AddPolicy(p)) => assert_eq!(p, policy(7)),
        other => panic!("expected AddPolicy, got {other:?}"),
    }
    assert!(matches!(
        dp.next_command().unwrap(),
        Some(Command::RemovePolicy { id: 7 })
    ));
    assert!(matches!(dp.next_command().unwrap(), Some(Command::Flush)));
    assert!(dp.next_command().unwrap().is_none());
    assert!(ring_is_zero(&c), "consumed records (keys) are zeroed");
    assert_eq!(c.command_pending(), 0);
}

#[test]
fn expected_spi_reaches_the_dataplane() {
    let (_d, p) = region();
    let mut c = ControlEnd::attach(&p, &small()).unwrap();
    let mut dp = DataplaneEnd::attach(&p).unwrap();
    c.expect_spi(0xc0ffee01).unwrap();
    assert!(matches!(
        dp.next_command().unwrap(),
        Some(Command::ExpectSpi { spi: 0xc0ffee01 })
    ));
    assert!(dp.next_command().unwrap().is_none());
}

#[test]
fn sync_barrier_is_acknowledged_after_earlier_commands() {
    let (_d, p) = region();
    let mut c = ControlEnd::attach(&p, &small()).unwrap();
    let mut dp = DataplaneEnd::attach(&p).unwrap();
    c.add_policy(&policy(1)).unwrap();
    let t = c.sync().unwrap();
    assert!(!c.synced(t));
    assert!(matches!(
        dp.next_command().unwrap(),
        Some(Command::AddPolicy(_))
    ));
    assert!(
        !c.synced(t),
        "not acknowledged before the dataplane reaches it"
    );
    assert!(dp.next_command().unwrap().is_none());
    assert!(c.synced(t));
}

#[test]
fn damaged_record_is_detected_counted_and_drained() {
    let (_d, p) = region();
    let mut c = ControlEnd::attach(&p, &small()).unwrap();
    let mut dp = DataplaneEnd::attach(&p).unwrap();
    let pos = c.add_sa(1, 1, &params(0x2000, Direction::Inbound)).unwrap();
    c.add_policy(&policy(2)).unwrap();
    c.command_ring().corrupt_at(pos + 40);
    match dp.next_command() {
        Err(ShmError::BadRecord { ring, pos: at, why }) => {
            assert_eq!(ring, "command");
            assert_eq!(at, pos);
            assert!(why.contains("checksum"), "{why}");
        }
        other => panic!("expected BadRecord, got {other:?}"),
    }
    assert_eq!(c.dataplane().cmd_corrupt, 1);
    assert!(dp.next_command().unwrap().is_none(), "ring drained");
    assert!(ring_is_zero(&c));
    // The channel keeps working afterwards.
    c.add_policy(&policy(3)).unwrap();
    assert!(matches!(dp.next_command().unwrap(), Some(Command::AddPolicy(p)) if p.id == 3));
}

#[test]
fn bad_record_length_is_detected() {
    let (_d, p) = region();
    let mut c = ControlEnd::attach(&p, &small()).unwrap();
    let mut dp = DataplaneEnd::attach(&p).unwrap();
    let pos = c.flush().unwrap();
    c.command_ring().corrupt_at(pos); // low byte of the length
    assert!(matches!(
        dp.next_command(),
        Err(ShmError::BadRecord { ref why, .. }) if why.contains("length")
    ));
}

/// Writes `version` into the layout version word of the region at `p`, in
/// place (same file: a process attached to it stays attached).
fn set_version(p: &std::path::Path, version: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    f.write_all_at(&version.to_le_bytes(), 8).unwrap();
}

fn version_of(p: &std::path::Path) -> u64 {
    let b = std::fs::read(p).unwrap();
    u64::from_le_bytes(b[8..16].try_into().unwrap())
}

/// A region of another layout version (an upgrade: 2 before the `ExpectSpi`
/// command, or a future 99) that no live process holds is recreated by
/// whichever end attaches first, mode 0600, and that end says which version
/// it replaced; the other end then attaches to the new region.
#[test]
fn another_version_without_a_live_process_is_recreated() {
    use std::os::unix::fs::MetadataExt;
    for (old, first_dataplane) in [(LAYOUT_VERSION - 1, false), (99, true)] {
        let (_d, p) = region();
        drop(ControlEnd::attach(&p, &small()).unwrap());
        set_version(&p, old);
        let ino = std::fs::metadata(&p).unwrap().ino();
        let (c, dp) = if first_dataplane {
            let dp = DataplaneEnd::attach_with(&p, &small()).unwrap();
            assert_eq!(dp.replaced_layout(), Some(old));
            let c = ControlEnd::attach(&p, &small()).unwrap();
            assert_eq!(c.replaced_layout(), None);
            (c, dp)
        } else {
            let c = ControlEnd::attach(&p, &small()).unwrap();
            assert_eq!(c.replaced_layout(), Some(old));
            let dp = DataplaneEnd::attach(&p).unwrap();
            assert_eq!(dp.replaced_layout(), None);
            (c, dp)
        };
        let md = std::fs::metadata(&p).unwrap();
        assert_ne!(md.ino(), ino, "a new file");
        assert_eq!(md.permissions().mode() & 0o777, 0o600);
        assert_eq!(version_of(&p), LAYOUT_VERSION);
        assert!(
            c.dataplane().alive && dp.control_alive(),
            "both ends on the new region"
        );
        let dir = p.parent().unwrap();
        let left: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
    }
}

/// A region of another layout version that a live process holds (its role
/// lock) is refused, naming both versions and the holder, and left as it is;
/// once that process is gone, it is recreated.
#[test]
fn another_version_held_by_a_live_process_is_refused() {
    let (_d, p) = region();
    let c = ControlEnd::attach(&p, &small()).unwrap();
    set_version(&p, LAYOUT_VERSION - 1);
    match DataplaneEnd::attach(&p) {
        Err(e @ ShmError::Version { .. }) => {
            let ShmError::Version {
                found,
                expected,
                holder,
                ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!((*found, *expected), (LAYOUT_VERSION - 1, LAYOUT_VERSION));
            assert_eq!(*holder, Some(("control", u64::from(std::process::id()))));
            let m = e.to_string();
            assert!(
                m.contains(&format!("layout version {}", LAYOUT_VERSION - 1))
                    && m.contains(&format!("speaks version {LAYOUT_VERSION}"))
                    && m.contains("control process"),
                "{m}"
            );
        }
        Err(e) => panic!("expected Version, got {e}"),
        Ok(_) => panic!("expected Version, got Ok"),
    }
    assert_eq!(version_of(&p), LAYOUT_VERSION - 1, "left alone");
    // the same for a dataplane holding it, refused to a control process
    drop(c);
    set_version(&p, LAYOUT_VERSION);
    let dp = DataplaneEnd::attach(&p).unwrap();
    set_version(&p, 99);
    match ControlEnd::attach(&p, &small()) {
        Err(ShmError::Version {
            found: 99,
            holder: Some(("dataplane", _)),
            ..
        }) => {}
        Err(e) => panic!("expected Version held by the dataplane, got {e}"),
        Ok(_) => panic!("expected Version, got Ok"),
    }
    drop(dp);
    let c = ControlEnd::attach(&p, &small()).unwrap();
    assert_eq!(c.replaced_layout(), Some(99));
    assert_eq!(version_of(&p), LAYOUT_VERSION);
}

/// Processes that find the old region at the same time recreate it once:
/// exactly one replaces it, every one ends up on the same new file.
#[test]
fn concurrent_attaches_replace_another_version_once() {
    let (_d, p) = region();
    drop(ControlEnd::attach(&p, &small()).unwrap());
    set_version(&p, LAYOUT_VERSION - 1);
    let maps: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|_| s.spawn(|| super::region::open_or_create(&p, &small()).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        maps.iter().filter(|m| m.replaced_version.is_some()).count(),
        1,
        "replaced once"
    );
    maps[0]
        .hdr(hw::CP_SYNC_TOKEN)
        .store(0x5eed, Ordering::Release);
    for m in &maps {
        assert_eq!(
            m.hdr(hw::CP_SYNC_TOKEN).load(Ordering::Acquire),
            0x5eed,
            "same file"
        );
    }
    assert_eq!(version_of(&p), LAYOUT_VERSION);
}

#[test]
fn bad_magic_and_header_checksum_are_refused() {
    let (_d, p) = region();
    drop(ControlEnd::attach(&p, &small()).unwrap());
    let good = std::fs::read(&p).unwrap();
    let mut bad = good.clone();
    bad[0] = b'X';
    std::fs::write(&p, &bad).unwrap();
    let e = DataplaneEnd::attach(&p).err().expect("bad magic refused");
    assert!(e.to_string().contains("magic"), "{e}");
    let mut bad = good.clone();
    bad[3 * 8] ^= 1; // max_sas, covered by the header CRC
    std::fs::write(&p, &bad).unwrap();
    let e = DataplaneEnd::attach(&p).err().expect("bad crc refused");
    assert!(e.to_string().contains("checksum"), "{e}");
}

#[test]
fn loose_permissions_are_refused_with_the_mode() {
    let (_d, p) = region();
    drop(ControlEnd::attach(&p, &small()).unwrap());
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "created 0600");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    match DataplaneEnd::attach(&p) {
        Err(e @ ShmError::Permissions { mode: 0o644, .. }) => {
            assert!(e.to_string().contains("0644"), "{e}");
            assert!(e.to_string().contains("0600"), "{e}");
        }
        Err(e) => panic!("expected Permissions, got {e}"),
        Ok(_) => panic!("expected Permissions, got Ok"),
    }
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o660)).unwrap();
    assert!(matches!(
        ControlEnd::attach(&p, &small()),
        Err(ShmError::Permissions { mode: 0o660, .. })
    ));
}

#[test]
fn created_0600_whatever_the_umask() {
    let (_d, p) = region();
    // SAFETY: (test) umask is process-wide; tests here create files only through
    // `open_or_create`, which sets the mode explicitly.
    let old = unsafe { libc::umask(0) };
    let c = ControlEnd::attach(&p, &small());
    // SAFETY: (test) restores the previous umask.
    unsafe { libc::umask(old) };
    drop(c.unwrap());
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn one_process_per_role_and_liveness_follows_the_lock() {
    let (_d, p) = region();
    let c = ControlEnd::attach(&p, &small()).unwrap();
    assert!(!c.dataplane().alive);
    let dp = DataplaneEnd::attach(&p).unwrap();
    assert!(c.dataplane().alive);
    assert!(dp.control_alive());
    assert!(matches!(
        DataplaneEnd::attach(&p),
        Err(ShmError::RoleTaken {
            role: "dataplane",
            ..
        })
    ));
    assert!(matches!(
        ControlEnd::attach(&p, &small()),
        Err(ShmError::RoleTaken {
            role: "control",
            ..
        })
    ));
    drop(dp);
    assert!(
        !c.dataplane().alive,
        "lock released when the dataplane goes"
    );
    drop(c);
    let dp = DataplaneEnd::attach(&p).unwrap();
    assert!(!dp.control_alive());
}

#[test]
fn restart_bumps_generation_and_drops_stale_commands() {
    let (_d, p) = region();
    let mut c = ControlEnd::attach(&p, &small()).unwrap();
    let dp = DataplaneEnd::attach(&p).unwrap();
    assert_eq!(dp.generation(), 1);
    assert_eq!(c.dataplane().generation, 1);
    drop(dp);
    c.add_sa(0, 1, &params(0x3000, Direction::Inbound)).unwrap();
    let mut dp = DataplaneEnd::attach(&p).unwrap();
    assert_eq!(dp.generation(), 2);
    assert_eq!(c.dataplane().generation, 2);
    assert!(dp.discarded_at_attach() > 0);
    assert!(ring_is_zero(&c), "stale commands (with keys) zeroed");
    assert!(dp.next_command().unwrap().is_none());
    // Control restarts keep the dataplane's state and bump their own generation.
    let g = c.generation();
    drop(c);
    let c = ControlEnd::attach(&p, &small()).unwrap();
    assert_eq!(c.generation(), g + 1);
    assert_eq!(c.dataplane().generation, 2);
}

#[test]
fn sa_counters_round_trip_and_removal_keeps_final_values() {
    let (_d, p) = region();
    let mut c = ControlEnd::attach(&p, &small()).unwrap();
    let mut dp = DataplaneEnd::attach(&p).unwrap();
    c.add_sa(3, 0x55, &params(0x4000, Direction::Outbound))
        .unwrap();
    assert!(dp.next_command().unwrap().is_some());
    let v = c.read_sa(3).unwrap().unwrap();
    assert_eq!(v.state, SlotState::Active);
    assert_eq!(v.stats.seq, 77, "initial_seq published at install");
    let mut s = SaStats {
        packets: 10,
        bytes: 1500,
        seq: 88,
        ..SaStats::default()
    };
    s.drops[crate::drop::DropReason::Replayed.index()] = 4;
    dp.publish_sa(3, &s).unwrap();
    let v = c.read_sa(3).unwrap().unwrap();
    assert_eq!(v.spi, 0x4000);
    assert_eq!(v.direction, Direction::Outbound);
    assert_eq!(v.tunnel_id, 9);
    assert_eq!(v.key_id, 0x55);
    assert_eq!(v.generation, 1);
    assert_eq!(v.stats, s);
    c.remove_sa(3, 0x4000, Direction::Outbound).unwrap();
    assert!(dp.next_command().unwrap().is_some());
    let v = c.read_sa(3).unwrap().unwrap();
    assert_eq!(v.state, SlotState::Removed);
    assert_eq!(v.stats.seq, 88, "removal keeps the last published counters");
    assert!(v.removed_ns >= v.published_ns);
    // Removed: the bound covers the time until removal, then stops growing.
    let b = v.seq_bound(v.removed_ns + 1_000_000_000_000);
    assert_eq!(b, seq_bound(88, v.published_ns, v.removed_ns));
    let before = c.read_sa(3).unwrap().unwrap();
    s.seq = 90;
    dp.publish_sa(3, &s).unwrap();
    let v = c.read_sa(3).unwrap().unwrap();
    assert_eq!((v.state, v.stats.seq), (SlotState::Removed, 90));
    assert!(v.published_ns >= before.removed_ns);
    assert_eq!(v.seq_bound(u64::MAX / 2), 91, "final publication: exact");
    // A dead SA is shown as such.
    c.add_sa(4, 1, &params(0x4001, Direction::Inbound)).unwrap();
    assert!(dp.next_command().unwrap().is_some());
    dp.publish_sa(
        4,
        &SaStats {
            dead: true,
            ..SaStats::default()
        },
    )
    .unwrap();
    assert_eq!(c.read_sa(4).unwrap().unwrap().state, SlotState::Dead);
    // A refused SA is reported as such, and later publications leave it alone.
    c.add_sa(5, 1, &params(0x4002, Direction::Inbound)).unwrap();
    assert!(dp.next_command().unwrap().is_some());
    dp.refuse_sa(5, super::RefuseReason::Backend).unwrap();
    dp.publish_sa(5, &s).unwrap();
    let v = c.read_sa(5).unwrap().unwrap();
    assert_eq!(
        (v.state, v.spi, v.stats.packets, v.refused),
        (
            SlotState::Refused,
            0x4002,
            0,
            Some(super::RefuseReason::Backend)
        )
    );
    assert_eq!(c.read_sa(4).unwrap().unwrap().refused, None);
    assert!(matches!(
        dp.publish_sa(64, &s),
        Err(ShmError::SlotIndex { slot: 64, max: 64 })
    ));
}

#[test]
fn torn_or_corrupt_counter_slots_are_detected() {
    let (_d, p) = region();
    let mut c = ControlEnd::attach(&p, &small()).unwrap();
    let mut dp = DataplaneEnd::attach(&p).unwrap();
    c.add_sa(2, 1, &params(0x5000, Direction::Inbound)).unwrap();
    dp.next_command().unwrap();
    let base = c.offsets_for_test().sa_dp_off + 2 * (SA_DP_WORDS as u64 * 8);
    let w = c.raw_words(base, SA_DP_WORDS);
    // A data word changed behind the seqlock's back.
    w[8].fetch_xor(1, Ordering::Relaxed);
    assert!(matches!(
        c.read_sa(2).unwrap(),
        Err(SlotError::Checksum { .. })
    ));
    // A writer that died mid-write leaves the sequence odd.
    w[0].fetch_add(1, Ordering::Relaxed);
    assert_eq!(c.read_sa(2).unwrap(), Err(SlotError::Busy));
    // The next writer repairs it.
    dp.publish_sa(2, &SaStats::default()).unwrap();
    assert!(c.read_sa(2).unwrap().is_ok());
    assert_eq!(w[0].load(Ordering::Relaxed) % 2, 0);
}

#[test]
fn worker_counters_round_trip() {
    let (_d, p) = region();
    let c = ControlEnd::attach(&p, &small()).unwrap();
    let dp = DataplaneEnd::attach(&p).unwrap();
    assert_eq!(c.read_worker(1).unwrap(), None);
    let mut s = WorkerStats {
        rx_packets: 1,
        rx_bytes: 2,
        tx_packets: 3,
        tx_bytes: 4,
        bursts: 5,
        idle_polls: 6,
        neighbour_stale: 8,
        esp_held: 9,
        esp_held_released: 10,
        ..WorkerStats::default()
    };
    s.drops[3] = 7;
    s.drops[MAX_DROP_REASONS - 1] = 11;
    dp.publish_worker(1, &s).unwrap();
    dp.set_workers(2);
    let v = c.read_worker(1).unwrap().unwrap();
    assert_eq!(v.stats, s);
    assert_eq!(v.generation, 1);
    assert_eq!(c.dataplane().workers, 2);
    assert!(dp.publish_worker(4, &s).is_err());
}

#[test]
fn events_round_trip_and_a_full_ring_counts_losses() {
    let (_d, p) = region();
    let mut c = ControlEnd::attach(&p, &small()).unwrap();
    let dp = DataplaneEnd::attach(&p).unwrap();
    let evs = vec![
        SaEvent::SoftExpire {
            spi: 1,
            direction: Direction::Inbound,
            kind: LifetimeKind::Bytes,
        },
        SaEvent::HardExpire {
            spi: 2,
            direction: Direction::Outbound,
            kind: LifetimeKind::Packets,
        },
        SaEvent::SeqExhausted { spi: 3 },
        SaEvent::Acquire {
            policy_id: 4,
            src: "10.0.0.1".parse().unwrap(),
            dst: "fe80::1".parse().unwrap(),
            proto: 17,
        },
    ];
    for e in &evs {
        assert!(dp.push_event(e));
    }
    for e in &evs {
        assert_eq!(c.pop_event().unwrap().as_ref(), Some(e));
    }
    assert_eq!(c.pop_event().unwrap(), None);
    let mut pushed = 0;
    while dp.push_event(&evs[0]) {
        pushed += 1;
    }
    assert!(pushed > 10);
    assert_eq!(c.dataplane().events_lost, 1);
}

#[test]
fn tap_flags_and_ring() {
    let (_d, p) = region();
    let mut c = ControlEnd::attach(&p, &small()).unwrap();
    let dp = DataplaneEnd::attach(&p).unwrap();
    let mut t = dp.tap_writer(1).unwrap();
    assert!(dp.tap_writer(4).is_err());
    assert!(!t.active());
    c.set_tap(5, true);
    c.set_tap(5, true);
    assert!(t.active() && t.wants(5) && !t.wants(6));
    let pkt: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    assert!(t.capture(5, TapDirection::Out, &pkt));
    assert!(t.capture(5, TapDirection::In, &pkt[..60]));
    let mut out = Vec::new();
    c.drain_taps(100, &mut out).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].tunnel_id, 5);
    assert_eq!(out[0].direction, TapDirection::Out);
    assert_eq!(out[0].orig_len, 3000);
    assert_eq!(out[0].data, pkt[..TAP_SNAPLEN].to_vec());
    assert_eq!(out[1].data, pkt[..60].to_vec());
    assert!(out[0].time_ns > 1_600_000_000_000_000_000);
    while t.capture(5, TapDirection::In, &pkt) {}
    assert!(c.dataplane().tap_lost >= 1);
    c.set_tap(5, false);
    assert!(!t.active());
    // A new control process starts with no taps.
    c.set_tap(7, true);
    drop(c);
    let _c = ControlEnd::attach(&p, &small()).unwrap();
    assert!(!t.active() && !t.wants(7));
}

#[test]
fn control_records_round_trip_and_detect_damage() {
    let (_d, p) = region();
    let c = ControlEnd::attach(&p, &small()).unwrap();
    let r = SaRecord {
        state: RecordState::Installed,
        direction: Direction::Outbound,
        tunnel_id: 12,
        spi: 0x1234,
        key_id: 0xdead,
        params_hash: 0xbeef,
        initial_seq: 5,
        sent_ns: 6,
        cmd_pos: 7,
    };
    assert_eq!(c.read_record(9).unwrap(), Ok(None));
    c.write_record(9, &r).unwrap();
    assert_eq!(c.read_record(9).unwrap(), Ok(Some(r.clone())));
    let base = c.offsets_for_test().sa_ctl_off + 9 * 128;
    c.raw_words(base, 16)[3].fetch_xor(4, Ordering::Relaxed);
    assert!(matches!(
        c.read_record(9).unwrap(),
        Err(SlotError::Checksum { .. })
    ));
    c.clear_record(9).unwrap();
    assert_eq!(c.read_record(9).unwrap(), Ok(None));

    let t = TunnelRecord {
        name: "north-south".into(),
        id: 3,
        admin_up: true,
        config_hash: 42,
        slot_in: 4,
        slot_out: 5,
    };
    c.write_tunnel(&t).unwrap();
    let all = c.tunnels();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, 3);
    assert_eq!(all[0].1.as_ref().unwrap(), &t);
    assert!(c
        .write_tunnel(&TunnelRecord {
            name: "x".repeat(64),
            ..t.clone()
        })
        .is_err());
    assert!(c
        .write_tunnel(&TunnelRecord {
            id: 17,
            ..t.clone()
        })
        .is_err());
    c.clear_tunnel(3).unwrap();
    assert!(c.tunnels().is_empty());

    let pr = PolicyRecord {
        id: 0x30001,
        tunnel_id: 3,
        hash: 9,
        cmd_pos: 100,
    };
    c.write_policy_record(10, &pr).unwrap();
    assert_eq!(c.policy_records(), vec![(10, Ok(pr))]);
    c.clear_policy_record(10).unwrap();
    assert!(c.policy_records().is_empty());
}

#[test]
fn ledger_bounds_grow_with_time_and_take_the_maximum() {
    let (_d, p) = region();
    let c = ControlEnd::attach(&p, &small()).unwrap();
    assert_eq!(c.ledger_bound(1, 0), None);
    c.ledger_append(&LedgerEntry {
        key_id: 1,
        seq: 1000,
        at_ns: 1_000_000_000,
    });
    c.ledger_append(&LedgerEntry {
        key_id: 2,
        seq: 5,
        at_ns: u64::MAX,
    });
    // 10 ms later: 1000 + 150e6 * 0.01 + 1.
    assert_eq!(c.ledger_bound(1, 1_010_000_000), Some(1000 + 1_500_000 + 1));
    assert_eq!(
        c.ledger_bound(2, u64::MAX - 1),
        Some(5),
        "stopped SA: no growth"
    );
    c.ledger_append(&LedgerEntry {
        key_id: 1,
        seq: 9_000_000,
        at_ns: u64::MAX,
    });
    assert_eq!(c.ledger_bound(1, 1_010_000_000), Some(9_000_000));
    // The ledger is a ring: old entries are overwritten, never corrupting others.
    for i in 0..100 {
        c.ledger_append(&LedgerEntry {
            key_id: 3,
            seq: i,
            at_ns: u64::MAX,
        });
    }
    assert_eq!(c.ledger_bound(3, 0), Some(99));
    assert_eq!(seq_bound(10, 0, 1_000_000_000), 10 + SEQ_RATE_BOUND_PPS + 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Records of any size go through a small ring in order, across many wraps.
    #[test]
    fn ring_preserves_records_across_wraps(sizes in proptest::collection::vec(0usize..1500, 1..200)) {
        let (_d, p) = region();
        let c = ControlEnd::attach(&p, &small()).unwrap();
        let ring = c.command_ring();
        let mut queue = std::collections::VecDeque::new();
        let mut buf = Vec::new();
        for (i, n) in sizes.iter().enumerate() {
            let payload: Vec<u8> = (0..*n).map(|j| (i * 31 + j) as u8).collect();
            loop {
                match ring.push(9, 0, &payload) {
                    Ok(_) => break,
                    Err(ShmError::RingFull { .. }) => {
                        let want: Vec<u8> = queue.pop_front().unwrap();
                        let rec = ring.pop(&mut buf).unwrap().unwrap();
                        prop_assert_eq!(rec.kind, 9);
                        prop_assert_eq!(&buf, &want);
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            queue.push_back(payload);
        }
        while let Some(want) = queue.pop_front() {
            let rec = ring.pop(&mut buf).unwrap().unwrap();
            prop_assert_eq!(rec.kind, 9);
            prop_assert_eq!(&buf, &want);
        }
        prop_assert!(ring.pop(&mut buf).unwrap().is_none());
        prop_assert!(ring_is_zero(&c));
    }
}

#[test]
fn geometry_is_validated() {
    let g = Geometry {
        cmd_ring_bytes: 1000,
        ..Geometry::default()
    };
    assert!(g.validate().unwrap_err().contains("cmd_ring_bytes"));
    let g = Geometry {
        max_tunnels: 5000,
        ..Geometry::default()
    };
    assert!(g.validate().unwrap_err().contains("max_tunnels"));
    let (_d, p) = region();
    assert!(matches!(
        ControlEnd::attach(&p, &g),
        Err(ShmError::Geometry { .. })
    ));
    // The header layout keeps the control and dataplane words apart.
    const { assert!(hw::CP_SYNC_TOKEN < hw::DP_GENERATION) };
}
