//! `espresso-dataplane`: the poll-mode dataplane process of one gateway.
//!
//! Threads: one pinned worker per core given (each with its own AF_PACKET
//! queues on the inside and outside interfaces, flows spread by fanout), a
//! netlink thread following the kernel's routes and neighbours, and the main
//! (management) thread, which installs SAs and policies and publishes counters.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};

use dataplane::crypto::{Backend as CryptoBackend, Key};
use dataplane::drop::DropReason;
use dataplane::io::afpacket::{self, AfPacket, AfPacketConfig, RxVersion, TxMode};
use dataplane::io::Backend;
use dataplane::sa::{Policy, Sa, SaParams, Sad, Spd};
use dataplane::worker::mgmt::{Manager, Tables};
use dataplane::worker::netlink::{FibSync, Resolver};
use dataplane::worker::{IdlePolicy, PortConf, Role, Shared, Worker, WorkerConf, WorkerStats};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RingArg {
    V2,
    V3,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TxArg {
    Sendmmsg,
    Ring,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum IdleArg {
    /// Spin on the receive rings (default; lowest latency).
    Busy,
    /// Sleep in poll(2) after a run of empty polls.
    Backoff,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    /// Linux AF_PACKET rings on kernel interfaces.
    Afpacket,
    /// DPDK ethdev ports (NICs bound to vfio-pci, or vdevs).
    Dpdk,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ExceptionArg {
    /// A TAP interface per port carries ARP/IKE/ICMP-to-us to the kernel.
    Tap,
    /// The kernel receives every frame itself (net_af_packet).
    Kernel,
}

/// espresso dataplane: poll-mode IPsec gateway (AF_PACKET or DPDK ports).
#[derive(Parser, Debug)]
#[command(version, about, args_override_self = true)]
struct Args {
    /// Read options from the `[dataplane]` table of this TOML file (the
    /// control daemon's configuration file); command-line options win.
    #[arg(long)]
    config: Option<PathBuf>,
    /// LAN ("inside") interface; with --backend dpdk, the DPDK port name
    /// (a vdev such as net_af_packet0, or a PCI address).
    #[arg(long)]
    inside: String,
    /// WAN ("outside") interface; with --backend dpdk, the DPDK port name.
    #[arg(long)]
    outside: String,
    /// Packet I/O backend.
    #[arg(long, value_enum, default_value = "afpacket")]
    backend: BackendArg,
    /// With --backend dpdk: EAL arguments, e.g. "-l 0 --no-huge -m 512
    /// --no-pci --no-shconf --vdev net_af_packet0,iface=lan".
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    eal: String,
    /// With --backend dpdk: how ARP, IKE and ICMP to the gateway reach the
    /// kernel; one value for both ports or "INSIDE,OUTSIDE" (e.g. kernel,tap).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "tap")]
    exception: Vec<ExceptionArg>,
    /// With --exception tap: name of the inside port's TAP interface.
    #[arg(long, default_value = "dp-inside")]
    inside_tap: String,
    /// With --exception tap: name of the outside port's TAP interface.
    #[arg(long, default_value = "dp-outside")]
    outside_tap: String,
    /// With --backend dpdk: mbufs in the pool (0: sized for the queues).
    #[arg(long, default_value_t = 0)]
    mbufs: u32,
    /// Cores to run workers on, one worker per core (e.g. "0" or "0,1").
    #[arg(long, value_delimiter = ',', default_value = "0")]
    cores: Vec<usize>,
    /// Receive ring format.
    #[arg(long, value_enum, default_value = "v2")]
    rx_ring: RingArg,
    /// Transmit method.
    #[arg(long, value_enum, default_value = "sendmmsg")]
    tx: TxArg,
    /// Packets per receive burst.
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Idle behaviour.
    #[arg(long, value_enum, default_value = "busy")]
    idle: IdleArg,
    /// With --idle backoff: longest sleep in microseconds.
    #[arg(long, default_value_t = 200)]
    idle_sleep_us: u32,
    /// V3 block retire timeout in milliseconds.
    #[arg(long, default_value_t = 1)]
    v3_block_timeout_ms: u32,
    /// Frames per V2 receive ring.
    #[arg(long, default_value_t = 2048)]
    frames: u32,
    /// Run workers with real-time FIFO priority PRIO (1-99; 0: normal
    /// scheduling). For dedicated cores and benchmarks on busy machines.
    #[arg(long, default_value_t = 0)]
    sched_fifo: i32,
    /// Write counters as JSON to this file every --stats-interval-ms.
    #[arg(long)]
    stats_file: Option<PathBuf>,
    /// Counter publication interval.
    #[arg(long, default_value_t = 500)]
    stats_interval_ms: u64,
    /// Static SAs and policies (JSON, mode 0600), for running without the
    /// control process (tests, benchmarks).
    #[arg(long)]
    static_sa: Option<PathBuf>,
    /// Shared-memory region of the control process (created 0600 if missing):
    /// SAs and policies come from there, counters go back.
    #[arg(long)]
    shm: Option<PathBuf>,
    /// Exception path: a TUN device of this name carries decapsulated packets
    /// for the gateway itself to its kernel, and the kernel's own packets
    /// toward protected subnets into the tunnel (routes in table 220 for
    /// locally generated traffic are kept in line with the policies).
    #[arg(long)]
    tun: Option<String>,
    /// Crypto backend for SAs.
    #[arg(long, default_value = "auto")]
    crypto: String,
    /// Set up the kernel of this namespace for the dataplane first: IPv4/IPv6
    /// forwarding off, and nftables rules so that the kernel answers neither
    /// ESP nor ESP-in-UDP with ICMP errors, and drops its copies of transit
    /// packets early (nftables table `inet espresso_dp`).
    #[arg(long)]
    configure_kernel: bool,
}

/// One SA in a static SA file: the SA parameters plus hex keys.
#[derive(Deserialize)]
struct StaticSa {
    #[serde(flatten)]
    params: SaParams,
    /// Encryption key (AEAD: key + salt) in hex, with or without 0x.
    enc_key: String,
    /// Integrity key in hex (empty for AEAD).
    #[serde(default)]
    auth_key: String,
}

#[derive(Deserialize)]
struct StaticFile {
    #[serde(default)]
    sas: Vec<StaticSa>,
    #[serde(default)]
    policies: Vec<Policy>,
}

fn hex_key(field: &str, s: &str) -> Result<Key, String> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if !s.len().is_multiple_of(2) {
        return Err(format!("{field}: odd number of hex digits ({})", s.len()));
    }
    let mut v = Vec::with_capacity(s.len() / 2);
    for i in (0..s.len()).step_by(2) {
        let b = u8::from_str_radix(&s[i..i + 2], 16)
            .map_err(|_| format!("{field}: not hex at digit {}", i + 1))?;
        v.push(b);
    }
    Ok(Key::new(v))
}

fn load_static(path: &Path, backend: CryptoBackend) -> Result<(Vec<Sa>, Vec<Policy>), String> {
    let md = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mode = md.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{}: mode {mode:o} lets others read the keys; chmod 600 it",
            path.display()
        ));
    }
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let f: StaticFile =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut sas = Vec::new();
    for (i, s) in f.sas.into_iter().enumerate() {
        let mut p = s.params;
        p.enc_key = hex_key(&format!("sas[{i}].enc_key"), &s.enc_key)?;
        p.auth_key = hex_key(&format!("sas[{i}].auth_key"), &s.auth_key)?;
        let spi = p.spi;
        let sa = Sa::new(p, backend)
            .map_err(|e| format!("{}: sas[{i}] (spi {spi:#x}): {e}", path.display()))?;
        tracing::info!(
            "SA spi {spi:#x} {:?}: cipher implemented by {}",
            sa.direction(),
            sa.cipher().backend()
        );
        sas.push(sa);
    }
    Ok((sas, f.policies))
}

fn configure_kernel() -> Result<(), String> {
    for (p, v) in [
        ("/proc/sys/net/ipv4/ip_forward", "0"),
        ("/proc/sys/net/ipv6/conf/all/forwarding", "0"),
    ] {
        if Path::new(p).exists() {
            fs::write(p, v).map_err(|e| format!("{p}: {e}"))?;
        }
    }
    // ESP and ESP-in-UDP are for the dataplane: the kernel (which has no
    // ESP here, or must not use it) must not answer them with ICMP errors.
    // IKE on 4500 (non-ESP marker: four zero bytes) still reaches sockets.
    // The kernel also receives its own copy of every transit packet (the
    // dataplane's AF_PACKET sockets see copies): drop those copies before
    // the kernel routes them (it would only find forwarding off and discard
    // them, at the cost of a route lookup and a dst allocation each).
    let rules = "table inet espresso_dp {\n\
        \tchain pre {\n\
        \t\ttype filter hook prerouting priority -300; policy accept;\n\
        \t\tmeta pkttype host fib daddr type != local drop\n\
        \t}\n\
        \tchain input {\n\
        \t\ttype filter hook input priority -10; policy accept;\n\
        \t\tmeta l4proto esp drop\n\
        \t\tudp dport 4500 udp length 9 @th,64,8 0xff drop\n\
        \t\tudp dport 4500 udp length > 11 @th,64,32 != 0 drop\n\
        \t}\n\
        }\n";
    let _ = Command::new("nft")
        .args(["delete", "table", "inet", "espresso_dp"])
        .stderr(Stdio::null())
        .status();
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e} (install nftables: scripts/setup.sh)"))?;
    child
        .stdin
        .take()
        .ok_or("nft: no stdin")?
        .write_all(rules.as_bytes())
        .map_err(|e| format!("nft: {e}"))?;
    let st = child.wait().map_err(|e| format!("nft: {e}"))?;
    if !st.success() {
        return Err(format!("nft -f failed: {st}"));
    }
    Ok(())
}

/// The nftables table [`configure_kernel`] made; deleted when dropped, i.e.
/// on every return from [`run`]: SIGTERM and SIGINT stop the main loop and
/// return, errors return early. (Only SIGKILL leaves it; the next start
/// replaces it.)
struct NftTable;

impl Drop for NftTable {
    fn drop(&mut self) {
        match Command::new("nft")
            .args(["delete", "table", "inet", "espresso_dp"])
            .stderr(Stdio::null())
            .status()
        {
            Ok(s) if s.success() => tracing::info!("nftables table inet espresso_dp deleted"),
            Ok(s) => tracing::warn!("nft delete table inet espresso_dp: {s}"),
            Err(e) => tracing::warn!("nft delete table inet espresso_dp: {e}"),
        }
    }
}

/// Routing table for the gateway's own traffic toward protected subnets.
const TUN_TABLE: &str = "220";

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Brings the TUN device up and sends locally generated traffic through
/// table 220 first (protected remote subnets point into the TUN device).
fn tun_setup(name: &str) -> Result<(), String> {
    if !ip(&["link", "set", name, "up"]) {
        return Err(format!("ip link set {name} up failed"));
    }
    // Packets from the tunnel enter the kernel through the TUN device while
    // the route back to their source points elsewhere: no reverse-path filter.
    for p in [
        format!("/proc/sys/net/ipv4/conf/{name}/rp_filter"),
        "/proc/sys/net/ipv4/conf/all/rp_filter".to_string(),
    ] {
        let _ = fs::write(&p, "0");
    }
    while ip(&["rule", "del", "pref", "1000"]) {}
    while ip(&["-6", "rule", "del", "pref", "1000"]) {}
    if !ip(&[
        "rule", "add", "pref", "1000", "iif", "lo", "lookup", TUN_TABLE,
    ]) || !ip(&[
        "-6", "rule", "add", "pref", "1000", "iif", "lo", "lookup", TUN_TABLE,
    ]) {
        return Err("ip rule add iif lo lookup 220 failed".into());
    }
    let _ = ip(&["route", "flush", "table", TUN_TABLE]);
    let _ = ip(&["-6", "route", "flush", "table", TUN_TABLE]);
    Ok(())
}

/// Keeps table 220 in line with the protect policies: each remote prefix
/// through the TUN device, from an inside address within the local prefix.
fn sync_tun_routes(
    name: &str,
    spd: &Spd,
    fib: &dataplane::worker::fib::Fib,
    inside: u32,
    installed: &mut std::collections::BTreeMap<String, String>,
) {
    let mut want = std::collections::BTreeMap::new();
    let link = fib.links.get(&inside);
    for p in spd.load().iter() {
        if !matches!(p.action, dataplane::sa::PolicyAction::Protect { .. }) {
            continue;
        }
        let remote = p.selector.remote;
        if remote.prefix_len() == 0 {
            continue;
        }
        let src = link.and_then(|l| {
            let mut all: Vec<std::net::IpAddr> = l.addrs4.iter().map(|a| (*a).into()).collect();
            all.extend(l.addrs6.iter().map(|a| std::net::IpAddr::from(*a)));
            all.into_iter().find(|a| p.selector.local.contains(a))
        });
        let mut args = format!("{} dev {name} table {TUN_TABLE}", remote.trunc());
        if let Some(s) = src {
            args.push_str(&format!(" src {s}"));
        }
        want.insert(remote.trunc().to_string(), args);
    }
    for (prefix, args) in &want {
        if installed.get(prefix) != Some(args) {
            let mut v: Vec<&str> = vec!["route", "replace"];
            v.extend(args.split(' '));
            if prefix.contains(':') {
                v.insert(0, "-6");
            }
            if ip(&v) {
                installed.insert(prefix.clone(), args.clone());
            }
        }
    }
    let gone: Vec<String> = installed
        .keys()
        .filter(|k| !want.contains_key(*k))
        .cloned()
        .collect();
    for prefix in gone {
        let fam = if prefix.contains(':') { "-6" } else { "-4" };
        let _ = ip(&[fam, "route", "del", &prefix, "table", TUN_TABLE]);
        installed.remove(&prefix);
    }
}

fn warn_kernel_forwarding() {
    if let Ok(v) = fs::read_to_string("/proc/sys/net/ipv4/ip_forward") {
        if v.trim() != "0" {
            tracing::warn!(
                "net.ipv4.ip_forward is on: the kernel forwards packets too (duplicates); \
                 use --configure-kernel or set it to 0"
            );
        }
    }
}

#[derive(Serialize)]
struct WorkerOut {
    core: usize,
    rx: u64,
    tx: u64,
    forwarded: u64,
    encrypted: u64,
    decrypted: u64,
    icmp_errors: u64,
    to_kernel: u64,
    resolve_requests: u64,
    fragmented: u64,
    drops: std::collections::BTreeMap<&'static str, u64>,
}

#[derive(Serialize)]
struct SaOut {
    spi: u32,
    direction: &'static str,
    tunnel_id: u32,
    packets: u64,
    bytes: u64,
    drops: std::collections::BTreeMap<&'static str, u64>,
}

#[derive(Serialize)]
struct StatsOut {
    workers: Vec<WorkerOut>,
    drops: std::collections::BTreeMap<&'static str, u64>,
    sas: Vec<SaOut>,
}

fn collect(stats: &[(usize, Arc<WorkerStats>)], sad_in: &Sad, sad_out: &Sad) -> StatsOut {
    let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut total = std::collections::BTreeMap::new();
    let workers = stats
        .iter()
        .map(|(core, s)| {
            let mut drops = std::collections::BTreeMap::new();
            for r in DropReason::ALL {
                let v = s.drops.get(*r);
                if v != 0 {
                    drops.insert(r.as_str(), v);
                    *total.entry(r.as_str()).or_insert(0) += v;
                }
            }
            WorkerOut {
                core: *core,
                rx: ld(&s.rx),
                tx: ld(&s.tx),
                forwarded: ld(&s.forwarded),
                encrypted: ld(&s.encrypted),
                decrypted: ld(&s.decrypted),
                icmp_errors: ld(&s.icmp_errors),
                to_kernel: ld(&s.to_kernel),
                resolve_requests: ld(&s.resolve_requests),
                fragmented: ld(&s.fragmented),
                drops,
            }
        })
        .collect();
    let mut sas = Vec::new();
    for (dir, sad) in [("inbound", sad_in), ("outbound", sad_out)] {
        let t = sad.load();
        for sa in t.iter() {
            let c = sa.counters();
            let mut drops = std::collections::BTreeMap::new();
            for r in DropReason::ALL {
                let v = c.drops(*r);
                if v != 0 {
                    drops.insert(r.as_str(), v);
                }
            }
            sas.push(SaOut {
                spi: sa.spi(),
                direction: dir,
                tunnel_id: sa.tunnel_id(),
                packets: ld(&c.packets),
                bytes: ld(&c.bytes),
                drops,
            });
        }
    }
    sas.sort_by_key(|s| (s.direction, s.spi));
    StatsOut {
        workers,
        drops: total,
        sas,
    }
}

fn write_stats(path: &Path, s: &StatsOut) {
    let tmp = path.with_extension("tmp");
    if let Ok(text) = serde_json::to_string_pretty(s) {
        if fs::write(&tmp, text).is_ok() {
            let _ = fs::rename(&tmp, path);
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    // Signals only set the stop flag, from the start: whatever the kernel
    // was changed for is undone when `run` returns.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| format!("signal: {e}"))?;
    }
    let _nft = if args.configure_kernel {
        configure_kernel()?;
        Some(NftTable)
    } else {
        warn_kernel_forwarding();
        None
    };
    let crypto = match args.crypto.as_str() {
        "auto" => CryptoBackend::Auto,
        other => CryptoBackend::compiled()
            .iter()
            .copied()
            .find(|b| format!("{b:?}").eq_ignore_ascii_case(other))
            .ok_or_else(|| format!("--crypto {other}: unknown backend"))?,
    };
    // DPDK: EAL, pool and ports (with their TAP interfaces) before anything
    // looks up interfaces or follows the kernel's tables.
    #[cfg(feature = "dpdk")]
    let dpdk = match args.backend {
        BackendArg::Dpdk => Some(Arc::new(init_dpdk(&args)?)),
        BackendArg::Afpacket => None,
    };
    #[cfg(not(feature = "dpdk"))]
    if args.backend == BackendArg::Dpdk {
        return Err("--backend dpdk: built without the dpdk feature".into());
    }
    let (in_idx, out_idx) = match args.backend {
        #[cfg(feature = "dpdk")]
        BackendArg::Dpdk => {
            let d = dpdk.as_ref().ok_or("DPDK not initialised")?;
            tracing::info!("DPDK: {}", d.describe());
            (
                d.ifindex(0).ok_or("DPDK: no inside port")?,
                d.ifindex(1).ok_or("DPDK: no outside port")?,
            )
        }
        _ => (
            afpacket::ifindex(&args.inside).map_err(|e| e.to_string())?,
            afpacket::ifindex(&args.outside).map_err(|e| e.to_string())?,
        ),
    };

    let spd = Arc::new(Spd::new());
    let sad_in = Arc::new(Sad::default());
    let sad_out = Arc::new(Sad::default());
    if let Some(p) = &args.static_sa {
        let (sas, pols) = load_static(p, crypto)?;
        for sa in sas {
            let sa = Arc::new(sa);
            match sa.direction() {
                dataplane::sa::Direction::Inbound => sad_in.insert(sa),
                dataplane::sa::Direction::Outbound => sad_out.insert(sa),
            };
        }
        spd.insert(pols);
        tracing::info!(
            "static SAs: {} inbound, {} outbound, {} policies",
            sad_in.len(),
            sad_out.len(),
            spd.load().len()
        );
    }

    let sync = FibSync::new().map_err(|e| format!("netlink: {e}"))?;
    let fib = sync.handle();
    let (req_tx, req_rx) = sync_channel(1024);
    let nl_stop = stop.clone();
    let nl = std::thread::Builder::new()
        .name("netlink".into())
        .spawn(move || sync.run(req_rx, nl_stop))
        .map_err(|e| e.to_string())?;

    let tun = match &args.tun {
        Some(name) => {
            let t = dataplane::io::tun::Tun::open(name).map_err(|e| e.to_string())?;
            tun_setup(name)?;
            Some(Arc::new(t))
        }
        None => None,
    };
    let fib_mgmt = fib.clone();
    let shared = Shared {
        tun,
        fib,
        spd: spd.clone(),
        sad_out: sad_out.clone(),
        sad_in: sad_in.clone(),
        resolver: Resolver::new(req_tx),
        stop: stop.clone(),
    };
    let mut cfg = AfPacketConfig {
        rx_version: match args.rx_ring {
            RingArg::V2 => RxVersion::V2,
            RingArg::V3 => RxVersion::V3,
        },
        tx_mode: match args.tx {
            TxArg::Sendmmsg => TxMode::Sendmmsg,
            TxArg::Ring => TxMode::Ring,
        },
        frame_nr: args.frames,
        block_timeout_ms: args.v3_block_timeout_ms,
        ..Default::default()
    };
    if args.cores.len() > 1 {
        cfg.fanout_group = Some((std::process::id() & 0x7fff) as u16);
    }
    let ifaces = vec![args.inside.clone(), args.outside.clone()];
    let ports = vec![
        PortConf {
            ifindex: in_idx,
            role: Role::Inside,
        },
        PortConf {
            ifindex: out_idx,
            role: Role::Outside,
        },
    ];
    // Management loop: shared-memory commands and counters every
    // millisecond, the stats file every --stats-interval-ms.
    let mut mgr = match &args.shm {
        Some(path) => {
            let tables = Tables {
                spd: spd.clone(),
                sad_in: sad_in.clone(),
                sad_out: sad_out.clone(),
                crypto,
            };
            let m = Manager::attach(path, tables, args.cores.len() as u32)
                .map_err(|e| e.to_string())?;
            tracing::info!(
                "shared memory {} attached (dataplane generation {})",
                path.display(),
                m.end().generation()
            );
            Some(m)
        }
        None => None,
    };
    let core_ids = core_affinity::get_core_ids().unwrap_or_default();
    let mut handles = Vec::new();
    let mut all_stats = Vec::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    for (i, core) in args.cores.iter().copied().enumerate() {
        let stats = Arc::new(WorkerStats::default());
        all_stats.push((core, stats.clone()));
        let conf = WorkerConf {
            index: i,
            burst: args.burst,
            idle: match args.idle {
                IdleArg::Busy => IdlePolicy::BusyPoll,
                IdleArg::Backoff => IdlePolicy::Backoff {
                    after: 64,
                    sleep_us: args.idle_sleep_us,
                },
            },
            ports: ports.clone(),
        };
        let shared = shared.clone();
        let cfg = cfg.clone();
        let ifaces = ifaces.clone();
        let core_id = core_ids.iter().find(|c| c.id == core).copied();
        let ready = ready_tx.clone();
        // DPDK queues are taken here and moved to the worker thread.
        #[cfg(feature = "dpdk")]
        let dpdk_worker = match &dpdk {
            Some(d) => Some((
                d.clone(),
                d.backend(i).map_err(|e| format!("worker {i}: {e}"))?,
            )),
            None => None,
        };
        let sched_fifo = args.sched_fifo;
        let tap = match mgr.as_ref().map(|m| m.end().tap_writer(i as u32)) {
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                tracing::warn!("worker{i}: no decrypted-traffic tap: {e}");
                None
            }
            None => None,
        };
        let h = std::thread::Builder::new()
            .name(format!("worker{i}"))
            .spawn(move || {
                if let Some(c) = core_id {
                    core_affinity::set_for_current(c);
                }
                dataplane::crypto::warm_thread();
                if sched_fifo > 0 {
                    if let Err(e) = dataplane::io::set_fifo_priority(sched_fifo) {
                        tracing::warn!("worker{i}: SCHED_FIFO {sched_fifo}: {e}");
                    }
                }
                #[cfg(feature = "dpdk")]
                if let Some((d, backend)) = dpdk_worker {
                    // An lcore id for this thread: per-lcore mempool caches.
                    let _reg = match d.register_worker_thread() {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = ready.send(Err(format!("worker {i}: {e}")));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    let mut w = Worker::new(conf, backend, shared, stats);
                    if let Some(t) = tap {
                        w.set_tap(t);
                    }
                    run_worker(i, w);
                    return;
                }
                // Open the queues on the worker's own thread (rings are
                // worker-local and not Send).
                let backend = match AfPacket::open(&ifaces, &cfg) {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = ready.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                let mut w = Worker::new(conf, backend, shared, stats);
                if let Some(t) = tap {
                    w.set_tap(t);
                }
                run_worker(i, w);
            })
            .map_err(|e| e.to_string())?;
        handles.push(h);
    }
    drop(ready_tx);
    for _ in 0..handles.len() {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                return Err("a worker died during start-up".into());
            }
        }
    }
    tracing::info!(
        "forwarding: inside {} (if {in_idx}), outside {} (if {out_idx}), cores {:?}, {}",
        args.inside,
        args.outside,
        args.cores,
        match args.backend {
            BackendArg::Afpacket =>
                format!("AF_PACKET {:?} rx, {:?} tx", cfg.rx_version, cfg.tx_mode),
            BackendArg::Dpdk => "DPDK".to_string(),
        }
    );
    if let Some(p) = &args.stats_file {
        // A marker the scripts wait for.
        write_stats(p, &collect(&all_stats, &sad_in, &sad_out));
    }

    let worker_stats: Vec<Arc<WorkerStats>> = all_stats.iter().map(|(_, s)| s.clone()).collect();
    let file_every = Duration::from_millis(args.stats_interval_ms.max(10));
    let tick = if mgr.is_some() {
        Duration::from_millis(1)
    } else {
        file_every
    };
    let mut last_file = std::time::Instant::now();
    let mut tun_routes = std::collections::BTreeMap::new();
    let mut last_tun_sync = std::time::Instant::now() - Duration::from_secs(1);
    let mut last_publish = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        if let Some(m) = mgr.as_mut() {
            if let Err(e) = m.apply_commands() {
                tracing::warn!("shared memory: {e}");
            }
            if last_publish.elapsed() >= Duration::from_millis(2) {
                m.publish(&worker_stats);
                last_publish = std::time::Instant::now();
            }
        }
        if let Some(name) = &args.tun {
            if last_tun_sync.elapsed() >= Duration::from_millis(100) {
                sync_tun_routes(name, &spd, &fib_mgmt.load(), in_idx, &mut tun_routes);
                last_tun_sync = std::time::Instant::now();
            }
        }
        if last_file.elapsed() >= file_every {
            if let Some(p) = &args.stats_file {
                write_stats(p, &collect(&all_stats, &sad_in, &sad_out));
            }
            last_file = std::time::Instant::now();
        }
    }
    if let Some(m) = mgr.as_mut() {
        m.publish(&worker_stats);
    }
    for h in handles {
        let _ = h.join();
    }
    let _ = nl.join();
    let s = collect(&all_stats, &sad_in, &sad_out);
    if let Some(p) = &args.stats_file {
        write_stats(p, &s);
    }
    Ok(())
}

/// Runs one worker until stop, then logs its queues' counters.
fn run_worker<B: Backend>(i: usize, mut w: Worker<B>) {
    w.run();
    let b = w.backend_mut();
    for p in 0..b.num_ports() {
        let s = b.port_stats(p);
        tracing::info!("worker{i} port {p}: {s:?}");
    }
}

/// Sets up the DPDK backend from the command line.
#[cfg(feature = "dpdk")]
fn init_dpdk(args: &Args) -> Result<dataplane::io::dpdk::Dpdk, String> {
    use dataplane::io::dpdk::{Dpdk, DpdkConfig, DpdkPortSpec, KernelPath};
    let mode = |i: usize| match args.exception.as_slice() {
        [one] => Ok(*one),
        [inside, outside] => Ok(if i == 0 { *inside } else { *outside }),
        other => Err(format!(
            "--exception: one mode or two (inside,outside), got {}",
            other.len()
        )),
    };
    let kernel = |i: usize, tap: &str| -> Result<KernelPath, String> {
        Ok(match mode(i)? {
            ExceptionArg::Tap => KernelPath::Tap {
                ifname: tap.to_string(),
            },
            ExceptionArg::Kernel => KernelPath::Kernel { ifname: None },
        })
    };
    let cfg = DpdkConfig {
        eal_args: args.eal.split_whitespace().map(str::to_string).collect(),
        ports: vec![
            DpdkPortSpec {
                name: args.inside.clone(),
                kernel: kernel(0, &args.inside_tap)?,
            },
            DpdkPortSpec {
                name: args.outside.clone(),
                kernel: kernel(1, &args.outside_tap)?,
            },
        ],
        workers: args.cores.len(),
        mbufs: args.mbufs,
        ..DpdkConfig::default()
    };
    Dpdk::init(&cfg).map_err(|e| format!("DPDK: {e}"))
}

/// The command line, after the `[dataplane]` table of `--config FILE` (the
/// configuration file the control daemon reads): every key of the table is
/// the long option of the same name (`backend = "dpdk"`, `eal = "-l 2 ..."`,
/// `cores = [4, 5]`, `idle = "backoff"`, `configure_kernel = true`);
/// options given on the command line win over the file.
fn parse_args() -> Result<Args, String> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut file: Option<PathBuf> = None;
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--config" {
            file = it.next().map(PathBuf::from);
        } else if let Some(v) = a.strip_prefix("--config=") {
            file = Some(PathBuf::from(v));
        }
    }
    let mut full: Vec<std::ffi::OsString> = vec![argv[0].clone()];
    if let Some(f) = &file {
        full.extend(config_args(f)?.into_iter().map(Into::into));
    }
    full.extend(argv.into_iter().skip(1));
    Args::try_parse_from(full).map_err(|e| e.to_string())
}

/// `[dataplane]` of a TOML file as long options.
fn config_args(path: &Path) -> Result<Vec<String>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    let doc: toml::Table =
        toml::from_str(&text).map_err(|e| format!("--config {}: {e}", path.display()))?;
    let Some(t) = doc.get("dataplane") else {
        return Err(format!(
            "--config {}: no [dataplane] table (backend, inside, outside, cores, ...)",
            path.display()
        ));
    };
    let t = t
        .as_table()
        .ok_or_else(|| format!("{}: dataplane must be a table", path.display()))?;
    let mut out = Vec::new();
    for (k, v) in t {
        let opt = format!("--{}", k.replace('_', "-"));
        let val = match v {
            toml::Value::Boolean(true) => {
                out.push(opt);
                continue;
            }
            toml::Value::Boolean(false) => continue,
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Array(a) => a
                .iter()
                .map(|x| match x {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => {
                return Err(format!(
                    "{}: dataplane.{k} = {other}: expected a string, number, boolean or list",
                    path.display()
                ))
            }
        };
        out.push(format!("{opt}={val}"));
    }
    Ok(out)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("espresso-dataplane: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("espresso-dataplane: {e}");
            ExitCode::FAILURE
        }
    }
}
