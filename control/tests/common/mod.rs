//! Helpers for the daemon tests: a fake dataplane process speaking the real
//! shared-memory protocol, the real `espresso` binary, temporary configs.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use espresso_core::sa::Direction;
use espresso_core::shm::{Command as Cmd, DataplaneEnd, SaStats, TapDirection, WorkerStats};
use sha2::{Digest, Sha256};

/// Packets each outbound SA "sends" per millisecond in the fake dataplane.
pub const FAKE_PPS_PER_MS: u64 = 200;

struct FakeSa {
    slot: u32,
    direction: Direction,
    tunnel_id: u32,
    key: String,
    next_seq: u64,
    packets: u64,
    bytes: u64,
}

fn key_hash(enc: &[u8], auth: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(enc);
    h.update(b"|");
    h.update(auth);
    hex::encode(&h.finalize()[..8])
}

fn append(path: &Path, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("log file");
    f.write_all(line.as_bytes()).expect("log write");
}

/// The fake dataplane: applies commands like the real one (replacing an
/// outbound SA carries its counter on), "sends" FAKE_PPS_PER_MS packets per
/// ms on every outbound SA, logging each reserved sequence range *before*
/// using it (`seqlog`: "KEY START END"), logs commands (`cmdlog`), publishes
/// counters every ms and answers taps. Runs until killed.
pub fn run_fake_dataplane(shm: &Path, seqlog: &Path, cmdlog: &Path) -> ! {
    let mut dp = DataplaneEnd::attach(shm).expect("attach");
    dp.set_workers(1);
    let mut tap = dp.tap_writer(0).expect("tap");
    append(cmdlog, &format!("attach generation {}\n", dp.generation()));
    let mut sas: HashMap<(u32, Direction), FakeSa> = HashMap::new();
    let mut policies = 0u64;
    let mut worker = WorkerStats::default();
    let mut tick = 0u64;
    loop {
        tick += 1;
        loop {
            let cmd = match dp.next_command() {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    append(cmdlog, &format!("error {e}\n"));
                    break;
                }
            };
            match cmd {
                Cmd::AddSa { slot, params } => {
                    let k = (params.spi, params.direction);
                    let carried = sas.get(&k).map_or(0, |s| s.next_seq);
                    let next = params.initial_seq.max(carried).max(1);
                    append(
                        cmdlog,
                        &format!(
                            "add {:#x} {:?} initial {} tunnel {}\n",
                            params.spi, params.direction, params.initial_seq, params.tunnel_id
                        ),
                    );
                    sas.insert(
                        k,
                        FakeSa {
                            slot,
                            direction: params.direction,
                            tunnel_id: params.tunnel_id,
                            key: key_hash(params.enc_key.bytes(), params.auth_key.bytes()),
                            next_seq: next,
                            packets: 0,
                            bytes: 0,
                        },
                    );
                }
                Cmd::RemoveSa {
                    slot,
                    spi,
                    direction,
                } => {
                    append(cmdlog, &format!("remove {spi:#x} {direction:?}\n"));
                    if let Some(s) = sas.remove(&(spi, direction)) {
                        let _ = dp.publish_sa(slot, &stats(&s));
                    }
                }
                Cmd::AddPolicy(p) => {
                    policies += 1;
                    append(cmdlog, &format!("policy+ {:#x} {:?}\n", p.id, p.action));
                }
                Cmd::RemovePolicy { id } => {
                    append(cmdlog, &format!("policy- {id:#x}\n"));
                }
                Cmd::ExpectSpi { spi } => {
                    append(cmdlog, &format!("expect {spi:#x}\n"));
                }
                Cmd::Flush => {
                    append(cmdlog, "flush\n");
                    for (_, s) in sas.drain() {
                        let _ = dp.publish_sa(s.slot, &stats(&s));
                    }
                }
            }
        }
        let _ = policies;
        let mut lines = String::new();
        for s in sas.values_mut() {
            let n = FAKE_PPS_PER_MS;
            if s.direction == Direction::Outbound {
                lines += &format!("{} {} {}\n", s.key, s.next_seq, s.next_seq + n - 1);
            }
        }
        if !lines.is_empty() {
            // Reserved ranges are on disk before any of them is "sent".
            append(seqlog, &lines);
        }
        let tapping = tap.active();
        for s in sas.values_mut() {
            s.packets += FAKE_PPS_PER_MS;
            s.bytes += FAKE_PPS_PER_MS * 100;
            s.next_seq += FAKE_PPS_PER_MS;
            worker.rx_packets += FAKE_PPS_PER_MS;
            worker.tx_packets += FAKE_PPS_PER_MS;
            if tapping && tap.wants(s.tunnel_id) {
                let mut pkt = vec![0u8; 60];
                pkt[0] = 0x45;
                pkt[3] = 60;
                pkt[9] = 1;
                pkt[12..16].copy_from_slice(&[10, 1, 0, 1]);
                pkt[16..20].copy_from_slice(&[10, 2, 0, 1]);
                let d = if s.direction == Direction::Inbound {
                    TapDirection::In
                } else {
                    TapDirection::Out
                };
                tap.capture(s.tunnel_id, d, &pkt);
            }
        }
        // A deliberately slow publisher (every 10 ms while "sending" every
        // ms): a restart must not trust the last published sequence number.
        if tick.is_multiple_of(10) {
            for s in sas.values() {
                let _ = dp.publish_sa(s.slot, &stats(s));
            }
        }
        let _ = dp.publish_worker(0, &worker);
        dp.heartbeat();
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn stats(s: &FakeSa) -> SaStats {
    SaStats {
        packets: s.packets,
        bytes: s.bytes,
        seq: if s.direction == Direction::Outbound {
            s.next_seq
        } else {
            s.packets
        },
        ..SaStats::default()
    }
}

/// Checks that no sequence number was reserved twice under one key.
/// Returns (keys, ranges) seen.
pub fn assert_no_seq_reuse(seqlog: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(seqlog).unwrap_or_default();
    let mut by_key: HashMap<&str, Vec<(u64, u64)>> = HashMap::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        if f.len() != 3 {
            continue; // a line cut by kill -9
        }
        let (Ok(a), Ok(b)) = (f[1].parse::<u64>(), f[2].parse::<u64>()) else {
            continue;
        };
        by_key.entry(f[0]).or_default().push((a, b));
    }
    let mut ranges = 0;
    for (k, v) in &mut by_key {
        v.sort();
        ranges += v.len();
        for w in v.windows(2) {
            assert!(
                w[1].0 > w[0].1,
                "key {k}: sequence numbers {}..={} reserved again ({}..={})",
                w[0].0,
                w[0].1,
                w[1].0,
                w[1].1
            );
        }
    }
    (by_key.len(), ranges)
}

/// Spawns this test binary as the fake dataplane (see `fake_dataplane_child`).
pub fn spawn_fake_dp(test_name: &str, shm: &Path, seqlog: &Path, cmdlog: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env("ESPRESSO_FAKE_DP", shm)
        .env("ESPRESSO_FAKE_SEQLOG", seqlog)
        .env("ESPRESSO_FAKE_CMDLOG", cmdlog)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fake dataplane")
}

/// Body of the child test: runs the fake dataplane when asked to.
pub fn fake_dataplane_child() {
    let Ok(shm) = std::env::var("ESPRESSO_FAKE_DP") else {
        return;
    };
    let seq = std::env::var("ESPRESSO_FAKE_SEQLOG").unwrap();
    let cmd = std::env::var("ESPRESSO_FAKE_CMDLOG").unwrap();
    run_fake_dataplane(Path::new(&shm), Path::new(&seq), Path::new(&cmd));
}

/// A running `espresso daemon`.
pub struct Daemon {
    pub child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn espresso() -> Command {
    Command::new(env!("CARGO_BIN_EXE_espresso"))
}

pub fn spawn_daemon(config: &Path, log: &Path) -> Daemon {
    let out = std::fs::File::create(log).unwrap();
    let child = espresso()
        .args(["daemon", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .expect("spawn daemon");
    Daemon { child }
}

/// Runs the CLI; returns (exit code, stdout, stderr).
pub fn cli(config: &Path, args: &[&str]) -> (i32, String, String) {
    let o = espresso()
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run espresso");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

pub fn status_json(config: &Path) -> serde_json::Value {
    let (code, out, err) = cli(config, &["status", "--json"]);
    assert_eq!(code, 0, "status failed: {err}");
    serde_json::from_str(&out).expect("status json")
}

pub fn tunnel<'a>(st: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    st["tunnels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no tunnel {name} in {st}"))
}

pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

pub const KA: &str = "0x00112233445566778899aabbccddeeff01020304";
pub const KB: &str = "0xffeeddccbbaa99887766554433221100a0b0c0d0";
pub const KC: &str = "0x0101010101010101010101010101010101010101";
pub const KD: &str = "0x0202020202020202020202020202020202020202";

/// A test directory with a config of two GCM tunnels (a, b) and one bypass policy.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub shm: PathBuf,
    pub seqlog: PathBuf,
    pub cmdlog: PathBuf,
    pub metrics_port: u16,
}

pub fn config_text(shm: &Path, sock: &Path, port: u16, a_spi_out: u32, extra: &str) -> String {
    format!(
        r#"[daemon]
shm = "{}"
socket = "{}"
metrics = "127.0.0.1:{port}"

[[tunnel]]
name = "a"
local = "192.0.2.1"
remote = "192.0.2.2"
local_subnets = ["10.1.0.0/24"]
remote_subnets = ["10.2.0.0/24"]
suite = "aes128gcm16"
spi_in = 0x1001
spi_out = {a_spi_out:#x}
enc_key_in = "{KA}"
enc_key_out = "{KB}"

[[tunnel]]
name = "b"
local = "192.0.2.1"
remote = "192.0.2.3"
local_subnets = ["10.1.0.0/24"]
remote_subnets = ["10.3.0.0/24"]
suite = "aes128gcm16"
spi_in = 0x2001
spi_out = 0x2002
enc_key_in = "{KC}"
enc_key_out = "{KD}"

[[policy]]
name = "mgmt-clear"
local_subnets = ["10.1.0.0/24"]
remote_subnets = ["10.99.0.0/24"]
action = "bypass"
{extra}"#,
        shm.display(),
        sock.display()
    )
}

pub fn setup(port: u16) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let shm = dir.path().join("region.shm");
    let sock = dir.path().join("espresso.sock");
    let config = dir.path().join("espresso.toml");
    std::fs::write(&config, config_text(&shm, &sock, port, 0x1002, "")).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    Setup {
        seqlog: dir.path().join("seq.log"),
        cmdlog: dir.path().join("cmd.log"),
        shm,
        config,
        dir,
        metrics_port: port,
    }
}

pub fn write_config(s: &Setup, a_spi_out: u32, extra: &str) {
    let sock = s.dir.path().join("espresso.sock");
    std::fs::write(
        &s.config,
        config_text(&s.shm, &sock, s.metrics_port, a_spi_out, extra),
    )
    .unwrap();
}

pub fn kill9(c: &mut Child) {
    // SIGKILL, as `kill -9`: the process gets no chance to clean up.
    let _ = Command::new("kill")
        .args(["-9", &c.id().to_string()])
        .status();
    let _ = c.wait();
}

pub fn http_get(port: u16, path: &str) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics connect");
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}
