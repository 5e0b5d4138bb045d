//! The control daemon end to end: the real `espresso` binary and CLI against
//! a fake dataplane process that speaks the real shared-memory protocol.
//! Covers up/down, reload of one tunnel, bad configs, both kill -9 cases
//! (with the no-sequence-reuse check), metrics, tap and exit codes.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(10);

/// Not a test on its own: the body of the fake dataplane child process.
#[test]
fn fake_dataplane_child() {
    common::fake_dataplane_child();
}

fn packets(st: &serde_json::Value, name: &str, dir: &str) -> u64 {
    tunnel(st, name)[dir]["packets"].as_u64().unwrap_or(0)
}

fn adds_in(cmdlog: &std::path::Path) -> usize {
    std::fs::read_to_string(cmdlog)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("add "))
        .count()
}

#[test]
fn up_down_reload_bad_config_metrics_and_tap() {
    let s = setup(19811);
    let mut dp = spawn_fake_dp("fake_dataplane_child", &s.shm, &s.seqlog, &s.cmdlog);
    let _d = spawn_daemon(&s.config, &s.dir.path().join("daemon.log"));
    wait_for("both tunnels up", T, || {
        let (c, out, _) = cli(&s.config, &["status", "--json"]);
        c == 0 && {
            let st: serde_json::Value = serde_json::from_str(&out).unwrap();
            tunnel(&st, "a")["state"] == "up"
                && tunnel(&st, "b")["state"] == "up"
                && tunnel(&st, "mgmt-clear")["state"] == "up"
        }
    });
    // The table names everything.
    let (c, table, _) = cli(&s.config, &["status"]);
    assert_eq!(c, 0);
    for w in [
        "dataplane: running",
        "NAME",
        "a ",
        "b ",
        "mgmt-clear",
        "0x1001/0x1002",
        "aes-gcm-128",
    ] {
        assert!(table.contains(w), "{w:?} not in\n{table}");
    }

    // down: SAs and policies go, the tunnel stays visible with zeros.
    let (c, out, _) = cli(&s.config, &["down", "a"]);
    assert_eq!(c, 0, "{out}");
    let st = status_json(&s.config);
    assert_eq!(tunnel(&st, "a")["state"], "down");
    assert_eq!(packets(&st, "a", "outbound"), 0);
    let log = std::fs::read_to_string(&s.cmdlog).unwrap();
    assert!(
        log.contains("remove 0x1002 Outbound") && log.contains("remove 0x1001 Inbound"),
        "{log}"
    );
    let m = http_get(s.metrics_port, "/metrics");
    assert!(m.starts_with("HTTP/1.0 200"), "{m}");
    assert!(
        m.contains("espresso_tunnel_state{tunnel=\"a\",state=\"down\"} 1"),
        "{m}"
    );
    assert!(m.contains("espresso_tunnel_packets_total{tunnel=\"a\",direction=\"out\"} 0"));
    assert!(m.contains("espresso_tunnel_up{tunnel=\"b\",kind=\"tunnel\"} 1"));
    assert!(m.contains(
        "espresso_tunnel_drops_total{tunnel=\"b\",direction=\"in\",reason=\"replayed\"} 0"
    ));

    // up again: the outbound SA continues after the sequence numbers already used.
    let (c, _, _) = cli(&s.config, &["up", "a"]);
    assert_eq!(c, 0);
    let st = status_json(&s.config);
    let seq_after_up = tunnel(&st, "a")["outbound"]["seq"].as_u64().unwrap();
    assert!(seq_after_up > 1, "sequence restarted at {seq_after_up}");
    wait_for("a up again", T, || {
        tunnel(&status_json(&s.config), "a")["state"] == "up"
    });

    // reload of one tunnel: b's SAs are not touched and its counters keep running.
    let b_before = packets(&status_json(&s.config), "b", "inbound");
    let adds_before = adds_in(&s.cmdlog);
    write_config(&s, 0x1003, "");
    let (c, out, err) = cli(&s.config, &["reload", "a"]);
    assert_eq!(c, 0, "{out}{err}");
    wait_for("the dataplane applied the reload", T, || {
        adds_in(&s.cmdlog) >= adds_before + 2
    });
    std::thread::sleep(Duration::from_millis(50));
    let log = std::fs::read_to_string(&s.cmdlog).unwrap();
    let new_adds: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("add "))
        .skip(adds_before)
        .collect();
    assert_eq!(new_adds.len(), 2, "{new_adds:?}");
    assert!(
        new_adds.iter().all(|l| l.contains("tunnel 1")),
        "only a re-installed: {new_adds:?}"
    );
    assert!(
        new_adds
            .iter()
            .any(|l| l.starts_with("add 0x1003 Outbound")),
        "{new_adds:?}"
    );
    assert!(log.contains("remove 0x1002 Outbound"), "old SPI removed");
    std::thread::sleep(Duration::from_millis(100));
    let st = status_json(&s.config);
    assert!(
        packets(&st, "b", "inbound") > b_before,
        "b's counters kept running"
    );
    assert_eq!(tunnel(&st, "a")["outbound"]["spi_hex"], "0x1003");

    // A bad configuration: exit 3, errors name file/line/field/value, nothing changes.
    let good = std::fs::read_to_string(&s.config).unwrap();
    let bad = good.replace("spi_in = 0x2001", "spi_in = 0x1001");
    std::fs::write(&s.config, &bad).unwrap();
    let adds_before = adds_in(&s.cmdlog);
    let b_before = packets(&status_json(&s.config), "b", "inbound");
    let (c, _, err) = cli(&s.config, &["reload"]);
    assert_eq!(c, 3, "{err}");
    assert!(err.contains(&format!("{}:", s.config.display())), "{err}");
    assert!(err.contains("tunnel[b].spi_in = 0x1001"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    let (c, _, err) = cli(&s.config, &["reload", "b"]);
    assert_eq!(c, 3, "{err}");
    std::fs::write(
        &s.config,
        good.replace(
            "suite = \"aes128gcm16\"",
            "suite = \"aes128gcm16\"\nspi = 7",
        ),
    )
    .unwrap();
    let (c, _, err) = cli(&s.config, &["reload"]);
    assert_eq!(c, 3, "{err}");
    assert!(err.contains("spi = 7"), "{err}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(adds_in(&s.cmdlog), adds_before, "nothing re-installed");
    let st = status_json(&s.config);
    assert_eq!(tunnel(&st, "a")["state"], "up");
    assert_eq!(tunnel(&st, "b")["state"], "up");
    assert!(packets(&st, "b", "inbound") > b_before);
    std::fs::write(&s.config, &good).unwrap();

    // Tap: decrypted packets of one tunnel into a pcap file.
    let pcap = s.dir.path().join("a.pcap");
    let (c, _, err) = cli(
        &s.config,
        &[
            "tap",
            "a",
            "--out",
            pcap.to_str().unwrap(),
            "--count",
            "5",
            "--duration",
            "10",
        ],
    );
    assert_eq!(c, 0, "{err}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&pcap).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "tap file mode {mode:04o}");
    }
    let bytes = std::fs::read(&pcap).unwrap();
    let (link, recs) = control::daemon::pcap::parse(&bytes).expect("pcap");
    assert_eq!(link, 101);
    assert_eq!(recs.len(), 5, "{err}");
    assert_eq!(recs[0].1[0], 0x45);

    // Exit codes.
    assert_eq!(cli(&s.config, &["up", "nope"]).0, 4);
    assert_eq!(
        cli(&s.config, &["tap", "mgmt-clear", "--out", "/dev/null"]).0,
        6
    );
    let (c, out, _) = cli(&s.config, &["log", "-n", "500"]);
    assert_eq!(c, 0);
    assert!(
        out.contains("a: down") && out.contains("reload refused"),
        "{out}"
    );
    kill9(&mut dp);
}

#[test]
fn kill9_dataplane_gets_everything_back_without_reusing_sequence_numbers() {
    let s = setup(19812);
    let mut dp = spawn_fake_dp("fake_dataplane_child", &s.shm, &s.seqlog, &s.cmdlog);
    let _d = spawn_daemon(&s.config, &s.dir.path().join("daemon.log"));
    wait_for("tunnels up", T, || {
        cli(&s.config, &["status", "--json"]).0 == 0
            && tunnel(&status_json(&s.config), "a")["state"] == "up"
    });
    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(150));
        kill9(&mut dp);
        wait_for("dataplane seen dead", T, || {
            let st = status_json(&s.config);
            st["dataplane"]["alive"] == false && tunnel(&st, "a")["state"] == "pending"
        });
        // A tunnel brought down while the dataplane is away stays down.
        if round == 1 {
            assert_eq!(cli(&s.config, &["down", "b"]).0, 0);
        }
        dp = spawn_fake_dp("fake_dataplane_child", &s.shm, &s.seqlog, &s.cmdlog);
        wait_for("SAs back in the new dataplane", T, || {
            let st = status_json(&s.config);
            st["dataplane"]["generation"] == round + 2 && tunnel(&st, "a")["state"] == "up"
        });
    }
    let st = status_json(&s.config);
    assert_eq!(tunnel(&st, "b")["state"], "down");
    assert_eq!(tunnel(&st, "mgmt-clear")["state"], "up");
    std::thread::sleep(Duration::from_millis(100));
    kill9(&mut dp);
    let (keys, ranges) = assert_no_seq_reuse(&s.seqlog);
    assert!(keys >= 2 && ranges > 100, "keys {keys}, ranges {ranges}");
    let log = std::fs::read_to_string(&s.cmdlog).unwrap();
    assert_eq!(log.matches("attach generation").count(), 4);
    assert!(log.matches("flush").count() >= 3, "{log}");
}

#[test]
fn kill9_control_leaves_the_dataplane_running_and_a_new_daemon_reattaches() {
    let s = setup(19813);
    let mut dp = spawn_fake_dp("fake_dataplane_child", &s.shm, &s.seqlog, &s.cmdlog);
    let mut d = spawn_daemon(&s.config, &s.dir.path().join("daemon.log"));
    wait_for("tunnels up", T, || {
        cli(&s.config, &["status", "--json"]).0 == 0
            && tunnel(&status_json(&s.config), "b")["state"] == "up"
    });
    assert_eq!(cli(&s.config, &["down", "a"]).0, 0);
    let before = status_json(&s.config);
    let b_pkts = packets(&before, "b", "outbound");
    std::thread::sleep(Duration::from_millis(50));
    let adds = adds_in(&s.cmdlog);
    let flushes = std::fs::read_to_string(&s.cmdlog)
        .unwrap()
        .matches("flush")
        .count();
    kill9(&mut d.child);
    assert_eq!(cli(&s.config, &["status"]).0, 5, "no daemon: exit 5");
    // The dataplane keeps forwarding: its sequence log keeps growing.
    let len = std::fs::metadata(&s.seqlog).unwrap().len();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        std::fs::metadata(&s.seqlog).unwrap().len() > len,
        "dataplane stopped with the daemon"
    );
    let _d2 = spawn_daemon(&s.config, &s.dir.path().join("daemon2.log"));
    wait_for("new daemon answers", T, || {
        cli(&s.config, &["status", "--json"]).0 == 0
    });
    let st = status_json(&s.config);
    assert_eq!(tunnel(&st, "b")["state"], "up", "{st}");
    assert_eq!(
        tunnel(&st, "a")["state"],
        "down",
        "admin state survives the restart"
    );
    assert_eq!(tunnel(&st, "mgmt-clear")["state"], "up");
    assert!(
        packets(&st, "b", "outbound") > b_pkts,
        "counters continue, not reset"
    );
    assert_eq!(st["control"]["generation"], 2);
    assert_eq!(st["dataplane"]["generation"], 1, "same dataplane instance");
    std::thread::sleep(Duration::from_millis(100));
    let log = std::fs::read_to_string(&s.cmdlog).unwrap();
    assert_eq!(
        adds_in(&s.cmdlog),
        adds,
        "nothing re-installed on reattach:\n{log}"
    );
    assert_eq!(log.matches("flush").count(), flushes, "{log}");
    // The reattached daemon works normally.
    assert_eq!(cli(&s.config, &["up", "a"]).0, 0);
    wait_for("a up", T, || {
        tunnel(&status_json(&s.config), "a")["state"] == "up"
    });
    kill9(&mut dp);
    assert_no_seq_reuse(&s.seqlog);
}

#[test]
fn daemon_refuses_a_bad_config_and_cli_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bad.toml");
    std::fs::write(&p, "[[tunnel]]\nname = \"x\"\nlocal = \"192.0.2.1\"\nremote = \"192.0.2.2\"\nsuite = \"aes128gcm16\"\nspi = 5\n").unwrap();
    let o = espresso()
        .args(["daemon", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{}:6: tunnel[x].spi = 5", p.display())),
        "{err}"
    );
    let (c, _, err) = cli(&p, &["check"]);
    assert_eq!(c, 3, "{err}");
    let (c, _, _) = cli(&d.path().join("none.toml"), &["status"]);
    assert_eq!(c, 5);
    let o = espresso()
        .args(["genkey", "--bits", "160"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim().len(), 42);
    let o = espresso()
        .args(["genkey", "--ascii", "kkkk"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "0x6b6b6b6b");
    let o = espresso().args(["genkey", "--bits", "7"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = espresso().args(["frobnicate"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn lifetimes_from_dataplane_counters_expire_manual_tunnels() {
    let s = setup(19814);
    let text = std::fs::read_to_string(&s.config).unwrap().replacen(
        &format!("enc_key_out = \"{KB}\"\n"),
        &format!(
            "enc_key_out = \"{KB}\"\nlifetime = {{ packets = 200000, soft_packets = 20000 }}\n"
        ),
        1,
    );
    let text = text.replacen(
        &format!("enc_key_out = \"{KD}\"\n"),
        &format!("enc_key_out = \"{KD}\"\nlifetime = {{ time = 1 }}\n"),
        1,
    );
    std::fs::write(&s.config, &text).unwrap();
    let mut dp = spawn_fake_dp("fake_dataplane_child", &s.shm, &s.seqlog, &s.cmdlog);
    let _d = spawn_daemon(&s.config, &s.dir.path().join("daemon.log"));
    // a: 200 packets/ms per SA, soft limit 20000 packets, hard 200000.
    wait_for("a expired by its packet lifetime", T, || {
        cli(&s.config, &["status", "--json"]).0 == 0
            && tunnel(&status_json(&s.config), "a")["state"] == "expired"
    });
    let st = status_json(&s.config);
    let why = tunnel(&st, "a")["reason"].as_str().unwrap().to_string();
    assert!(why.contains("hard packet lifetime 200000"), "{why}");
    let log = std::fs::read_to_string(&s.cmdlog).unwrap();
    assert!(log.contains("remove 0x1002 Outbound"), "{log}");
    assert!(
        log.contains("policy+ 0x10000 Discard"),
        "expired traffic is held: {log}"
    );
    let (c, _, err) = cli(&s.config, &["up", "a"]);
    assert_eq!(c, 6, "up refused on expired keys: {err}");
    assert!(err.contains("hard packet lifetime"), "{err}");
    // b: time lifetime of 1 s.
    wait_for("b expired by its time lifetime", T, || {
        tunnel(&status_json(&s.config), "b")["state"] == "expired"
    });
    let (_, out, _) = cli(&s.config, &["log", "-n", "200"]);
    assert!(
        out.contains("soft packet lifetime 20000"),
        "soft warning logged first: {out}"
    );
    assert!(out.contains("hard time lifetime 1s"), "{out}");
    // New keys for a: reload brings it back.
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace(KB, "0x0303030303030303030303030303030303030303")
        .replace(
            "lifetime = { packets = 200000, soft_packets = 20000 }",
            "lifetime = { packets = 100000000 }",
        );
    std::fs::write(&s.config, text).unwrap();
    let (c, out, err) = cli(&s.config, &["reload", "a"]);
    assert_eq!(c, 0, "{out}{err}");
    wait_for("a up with new keys", T, || {
        tunnel(&status_json(&s.config), "a")["state"] == "up"
    });
    let seq = tunnel(&status_json(&s.config), "a")["outbound"]["seq"]
        .as_u64()
        .unwrap();
    assert!(seq < 1_000_000, "new key starts from the beginning: {seq}");
    kill9(&mut dp);
    assert_no_seq_reuse(&s.seqlog);
}

#[test]
fn a_key_whose_sequence_numbers_are_used_up_does_not_come_up() {
    let s = setup(19815);
    // The ledger says a's outbound key has sent almost 2^32 packets.
    let cfg = control::config::Config::load(&s.config).unwrap();
    let key = cfg
        .tunnel("a")
        .unwrap()
        .key_id(espresso_core::sa::Direction::Outbound);
    {
        let c = espresso_core::shm::ControlEnd::attach(
            &s.shm,
            &espresso_core::shm::Geometry::default(),
        )
        .unwrap();
        c.ledger_append(&espresso_core::shm::LedgerEntry {
            key_id: key,
            seq: u64::from(u32::MAX) - 1000,
            at_ns: u64::MAX,
        });
    }
    let mut dp = spawn_fake_dp("fake_dataplane_child", &s.shm, &s.seqlog, &s.cmdlog);
    let _d = spawn_daemon(&s.config, &s.dir.path().join("daemon.log"));
    wait_for("b up", T, || {
        cli(&s.config, &["status", "--json"]).0 == 0
            && tunnel(&status_json(&s.config), "b")["state"] == "up"
    });
    let st = status_json(&s.config);
    assert_eq!(tunnel(&st, "a")["state"], "expired", "{st}");
    let why = tunnel(&st, "a")["reason"].as_str().unwrap();
    assert!(
        why.contains("sequence numbers of this key are used up") && why.contains("esn"),
        "{why}"
    );
    let log = std::fs::read_to_string(&s.cmdlog).unwrap();
    assert!(!log.contains("add 0x1002 Outbound"), "{log}");
    assert!(
        log.contains("policy+ 0x10000 Discard"),
        "held, not in the clear: {log}"
    );
    assert_eq!(cli(&s.config, &["up", "a"]).0, 6);
    kill9(&mut dp);
}
