//! The `espresso` command line: the daemon, and the client commands that
//! talk to it over its Unix socket. Exit codes are in [`crate::daemon::api::exit`]
//! (0 ok, 1 failed, 2 usage, 3 configuration invalid, 4 no such tunnel,
//! 5 daemon unreachable, 6 refused in the tunnel's state).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

pub mod generate;
pub mod import;
pub mod ipsec;
pub mod keys;
pub mod shell;

use crate::config::{self, genkey, Config};
use crate::daemon::api::{exit, Request, Response, Status, TunnelStatus};
use crate::daemon::{self, logring::LogRing, DaemonOptions};

/// espresso: IPsec gateway control (manual keys and IKEv2).
#[derive(Parser, Debug)]
#[command(name = "espresso", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Configuration file (the daemon reads it; other commands take the socket path from it).
    #[arg(long, short = 'c', global = true, env = "ESPRESSO_CONFIG")]
    pub config: Option<PathBuf>,
    /// The daemon's socket (default: [daemon].socket of --config, else /run/espresso/espresso.sock).
    #[arg(long, short = 's', global = true, env = "ESPRESSO_SOCKET")]
    pub socket: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

const EXIT_CODES: &str = "Exit codes: 0 ok, 1 operation failed, 2 usage error, 3 configuration invalid \
(nothing changed), 4 no such tunnel, 5 daemon unreachable, 6 refused in the tunnel's current state.";

/// Commands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the control daemon (needs --config).
    Daemon,
    /// Check a configuration file and print what it defines (needs --config).
    Check,
    /// Tunnels, SAs, counters and dataplane health.
    Status {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Install a tunnel or policy.
    Up {
        /// Tunnel or policy name.
        name: String,
    },
    /// Remove a tunnel or policy (the dataplane drops its traffic's SAs).
    Down {
        /// Tunnel or policy name.
        name: String,
    },
    /// Re-read the configuration: apply every change, or only NAME's.
    Reload {
        /// Only this tunnel or policy (the others are left as they run).
        name: Option<String>,
    },
    /// Recent log lines of the daemon.
    Log {
        /// How many lines.
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: usize,
    },
    /// Print a random key in hex (FreeS/WAN ranbits), or convert an ASCII key.
    Genkey {
        /// Key size in bits (multiple of 8), e.g. 160 for AES-128-GCM (key + salt).
        #[arg(long, required_unless_present = "ascii")]
        bits: Option<u32>,
        /// Print the hex form of this ASCII key instead (ZyWALL-style keys).
        #[arg(long, conflicts_with = "bits")]
        ascii: Option<String>,
    },
    /// Print the SAs of running tunnels with their keys, for Wireshark or
    /// scapy (needs `allow_key_export = true` in [daemon]).
    Keys {
        /// Only this tunnel.
        name: Option<String>,
        /// wireshark: `esp_sa` UAT records; scapy: JSON of SecurityAssociation arguments.
        #[arg(long, value_enum, default_value = "wireshark")]
        format: keys::KeyFormat,
    },
    /// Write a tunnel's decrypted traffic to a pcap file (like tcpdump -i enc0).
    Tap {
        /// Tunnel name.
        name: String,
        /// Output pcap file.
        #[arg(long, short = 'o')]
        out: PathBuf,
        /// Stop after this many packets.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
    },
    /// Import ipsec.conf + ipsec.secrets (FreeS/WAN, Openswan, Libreswan, strongSwan),
    /// an OpenBSD/Halon ipsec.conf, a manual-key CSV or mbox commands as espresso TOML.
    Import(import::ImportArgs),
    /// The mbox command language (seed 003): interactive, or one command
    /// (`espresso shell ipsec peer ...`); writes the same TOML (conf.d/mbox.toml).
    Shell(shell::ShellArgs),
    /// Openswan/strongSwan `ipsec` commands: start, stop, restart, status,
    /// statusall, up, down, reload, auto --up|--down|--add|--delete NAME.
    Ipsec {
        /// What to do.
        #[command(subcommand)]
        cmd: ipsec::IpsecCmd,
    },
    /// Man pages and shell completions from the command-line definitions (packaging).
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

/// Runs the command line; returns the process exit code.
pub fn main(cli: Cli) -> u8 {
    match &cli.cmd {
        Cmd::Daemon => run_daemon(&cli),
        Cmd::Check => check(&cli),
        Cmd::Genkey { bits, ascii } => {
            let r = match (bits, ascii) {
                (_, Some(a)) => genkey::ascii_to_hex(a),
                (Some(b), None) => genkey::random_key(*b),
                (None, None) => Err("give --bits N or --ascii TEXT".into()),
            };
            match r {
                Ok(k) => {
                    println!("{k}");
                    exit::OK
                }
                Err(e) => {
                    eprintln!("espresso genkey: {e}");
                    exit::USAGE
                }
            }
        }
        Cmd::Status { json } => {
            let json = *json;
            client(&cli, Request::Status, |r| {
                let Some(st) = &r.status else { return };
                if json {
                    println!("{}", serde_json::to_string_pretty(st).unwrap_or_default());
                } else {
                    print!("{}", status_table(st));
                }
            })
        }
        Cmd::Up { name } => client(&cli, Request::Up { name: name.clone() }, print_message),
        Cmd::Down { name } => client(&cli, Request::Down { name: name.clone() }, print_message),
        Cmd::Reload { name } => client(&cli, Request::Reload { name: name.clone() }, print_message),
        Cmd::Log { lines } => client(&cli, Request::Log { lines: *lines }, |r| {
            for l in &r.lines {
                println!("{l}");
            }
        }),
        Cmd::Keys { name, format } => {
            let format = *format;
            client(&cli, Request::Keys { name: name.clone() }, |r| {
                let (out, notes) = keys::render(&r.keys, format);
                print!("{out}");
                for n in notes {
                    eprintln!("espresso keys: left out {n}");
                }
            })
        }
        Cmd::Tap {
            name,
            out,
            count,
            duration,
        } => tap(&cli, name, out, *count, *duration),
        Cmd::Import(a) => import::run(a),
        Cmd::Shell(a) => shell::run(&cli, a),
        Cmd::Ipsec { cmd } => ipsec::run(&cli, cmd),
        Cmd::Generate(a) => generate::run(a),
    }
}

pub(crate) fn print_message(r: &Response) {
    if !r.message.is_empty() {
        if r.code == exit::OK {
            println!("{}", r.message);
        } else {
            eprintln!("espresso: {}", r.message);
        }
    }
    for l in &r.lines {
        if r.code == exit::OK {
            println!("warning: {l}");
        } else {
            eprintln!("{l}");
        }
    }
}

fn init_logging(ring: &LogRing) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("ESPRESSO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false),
        )
        .with(ring.clone())
        .try_init();
}

fn run_daemon(cli: &Cli) -> u8 {
    let Some(cfg) = &cli.config else {
        eprintln!("espresso daemon: give --config FILE");
        return exit::USAGE;
    };
    let log_lines = Config::load(cfg)
        .map(|c| c.daemon.log_lines)
        .unwrap_or(1000);
    let ring = LogRing::new(log_lines);
    init_logging(&ring);
    match daemon::run(DaemonOptions {
        config: cfg.clone(),
        socket: cli.socket.clone(),
        log: ring,
    }) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("espresso daemon: {e}");
            e.code()
        }
    }
}

fn check(cli: &Cli) -> u8 {
    let Some(cfg) = &cli.config else {
        eprintln!("espresso check: give --config FILE");
        return exit::USAGE;
    };
    match Config::load(cfg) {
        Ok(c) => {
            for w in &c.warnings {
                println!("warning: {w}");
            }
            for t in &c.tunnels {
                println!(
                    "tunnel {}: {} -> {}, {}, spi in {:#x} out {:#x}, start {:?}",
                    t.name, t.local, t.remote, t.suite, t.spi_in, t.spi_out, t.start
                );
            }
            for p in &c.policies {
                println!("policy {}: {:?}", p.name, p.action);
            }
            for k in &c.connections {
                let ike: Vec<String> = k.conn.ike_proposals.iter().map(|p| p.to_string()).collect();
                let esp: Vec<String> = k.conn.esp_proposals.iter().map(|p| p.to_string()).collect();
                println!(
                    "connection {}: {:?} -> {:?}, ike {}, esp {}, start {:?}",
                    k.name,
                    k.conn.local_addr,
                    k.conn.remote_addr,
                    ike.join(","),
                    esp.join(","),
                    k.conn.start_action
                );
            }
            let dp = c.dataplane.summary();
            if !dp.is_empty() {
                println!("dataplane: {}", dp.join(", "));
            }
            println!("{}: ok ({} file(s))", cfg.display(), c.files.len());
            exit::OK
        }
        Err(e) => {
            eprintln!("{e}");
            exit::CONFIG
        }
    }
}

/// The socket path: --socket, else [daemon].socket of --config, else the default.
pub fn socket_path(cli: &Cli) -> PathBuf {
    if let Some(s) = &cli.socket {
        return s.clone();
    }
    if let Some(c) = &cli.config {
        if let Ok(d) = config::DaemonSettings::load_main(c) {
            return d.socket;
        }
    }
    PathBuf::from(config::DEFAULT_SOCKET)
}

fn connect(path: &Path) -> Result<UnixStream, u8> {
    UnixStream::connect(path).map_err(|e| {
        eprintln!(
            "espresso: cannot reach the daemon at {}: {e} (is `espresso daemon` running? --socket or --config tells where)",
            path.display()
        );
        exit::NO_DAEMON
    })
}

/// Sends one request and reads the response line.
pub fn request(path: &Path, req: &Request) -> Result<(Response, UnixStream), u8> {
    let s = connect(path)?;
    let fail = |e: std::io::Error| {
        eprintln!("espresso: talking to the daemon at {}: {e}", path.display());
        exit::NO_DAEMON
    };
    let mut w = &s;
    writeln!(w, "{}", serde_json::to_string(req).unwrap_or_default()).map_err(fail)?;
    // Byte by byte: for a tap, pcap data follows the line on the same socket.
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match (&s).read(&mut b) {
            Ok(0) => break,
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) => line.push(b[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fail(e)),
        }
    }
    let r: Response = serde_json::from_str(String::from_utf8_lossy(&line).trim()).map_err(|e| {
        eprintln!("espresso: bad answer from the daemon: {e}");
        exit::FAILED
    })?;
    Ok((r, s))
}

fn client(cli: &Cli, req: Request, show: impl FnOnce(&Response)) -> u8 {
    match request(&socket_path(cli), &req) {
        Ok((r, _)) => {
            if r.code == exit::OK {
                show(&r);
            } else {
                print_message(&r);
            }
            r.code
        }
        Err(code) => code,
    }
}

fn human(n: u64) -> String {
    const U: [&str; 5] = ["", "k", "M", "G", "T"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < U.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        n.to_string()
    } else {
        format!("{v:.1}{}", U[i])
    }
}

/// The `status` table: the processes, one row per tunnel, policy and
/// connection, drops by reason, IKE SAs with their child SAs, workers.
pub fn status_table(st: &Status) -> String {
    let mut o = status_processes(st);
    o += &status_rows(st);
    o += &status_ike(st);
    o += &status_workers(st);
    o
}

/// The dataplane's and the control process's lines.
fn status_processes(st: &Status) -> String {
    let mut o = String::new();
    let d = &st.dataplane;
    if d.alive {
        o += &format!(
            "dataplane: running, pid {}, generation {}, {} worker(s), heartbeat {} ms ago\n",
            d.pid, d.generation, d.workers, d.heartbeat_age_ms
        );
    } else {
        o += &format!(
            "dataplane: NOT RUNNING (last pid {}, generation {}): SAs are installed when it starts\n",
            d.pid, d.generation
        );
    }
    if d.events_lost + d.tap_lost + d.cmd_corrupt > 0 {
        o += &format!(
            "  events lost {}, tap packets lost {}, damaged commands {}\n",
            d.events_lost, d.tap_lost, d.cmd_corrupt
        );
    }
    o += &format!(
        "control: pid {}, generation {}, config {}, up {} s\n\n",
        st.control.pid, st.control.generation, st.control.config, st.control.uptime_s
    );
    o
}

/// One table row: the columns of [`status_rows`].
fn status_row(t: &TunnelStatus) -> [String; 9] {
    let (i, out) = (
        t.inbound.clone().unwrap_or_default(),
        t.outbound.clone().unwrap_or_default(),
    );
    let endpoints = if t.kind != "policy" {
        format!("{} -> {}", t.local, t.remote)
    } else {
        format!(
            "{} -> {}",
            t.local_subnets.join(","),
            t.remote_subnets.join(",")
        )
    };
    [
        t.name.clone(),
        match &t.reason {
            Some(r) => format!("{} ({r})", t.state),
            None if t.soft_expired => format!("{} (soft lifetime passed)", t.state),
            None => t.state.clone(),
        },
        endpoints,
        if t.kind == "tunnel" || (t.kind == "ike" && t.inbound.is_some()) {
            format!("{}/{}", i.spi_hex, out.spi_hex)
        } else {
            "-".into()
        },
        if t.kind != "policy" {
            t.suite.clone()
        } else {
            t.mode.clone()
        },
        format!("{}/{}", human(i.packets), human(out.packets)),
        format!("{}/{}", human(i.bytes), human(out.bytes)),
        human(i.drops + out.drops),
        if t.kind != "policy" {
            out.seq.to_string()
        } else {
            "-".into()
        },
    ]
}

/// The table of tunnels, policies and connections, then their drops by reason.
fn status_rows(st: &Status) -> String {
    let mut o = String::new();
    let rows: Vec<[String; 9]> = st.tunnels.iter().map(status_row).collect();
    let head = [
        "NAME",
        "STATE",
        "GATEWAYS",
        "SPI IN/OUT",
        "SUITE",
        "PKTS IN/OUT",
        "BYTES IN/OUT",
        "DROPS",
        "SEQ OUT",
    ];
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (k, c) in r.iter().enumerate() {
            w[k] = w[k].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (k, c) in cells.iter().enumerate() {
            s += &format!("{:<width$}  ", c, width = w[k]);
        }
        s.trim_end().to_string() + "\n"
    };
    o += &line(head.to_vec());
    for r in &rows {
        o += &line(r.iter().map(String::as_str).collect());
    }
    for t in &st.tunnels {
        let drops: Vec<String> = [&t.inbound, &t.outbound]
            .into_iter()
            .flatten()
            .flat_map(|s| s.drops_by_reason.iter().map(|(k, v)| format!("{k}={v}")))
            .collect();
        if !drops.is_empty() {
            o += &format!("  {} drops: {}\n", t.name, drops.join(" "));
        }
    }
    o
}

/// One line per IKE SA, one per child SA, then the engine's notes.
fn status_ike(st: &Status) -> String {
    let mut o = String::new();
    let rekey = |r: Option<u64>| match r {
        Some(r) => format!(", rekey in {r} s"),
        None => String::new(),
    };
    for s in &st.ike_sas {
        o += &format!(
            "ike {}: {} {} {}_i {}_r {} <-> {}{} {}{}\n",
            s.conn,
            s.state,
            if s.initiator {
                "initiator"
            } else {
                "responder"
            },
            s.spi_i,
            s.spi_r,
            s.local,
            s.remote,
            if s.remote_id.is_empty() {
                String::new()
            } else {
                format!(" [{}]", s.remote_id)
            },
            s.proposal,
            rekey(s.rekey_in_s)
        );
        for c in &s.children {
            o += &format!(
                "  child {}: in {} out {} {}{}, {} === {}, {}/{} pkts in/out{}\n",
                c.state,
                c.inbound.spi_hex,
                c.outbound.spi_hex,
                c.proposal,
                if c.encap { " (ESP in UDP)" } else { "" },
                c.local_ts.join(","),
                c.remote_ts.join(","),
                c.inbound.packets,
                c.outbound.packets,
                rekey(c.rekey_in_s)
            );
        }
    }
    if let Some(k) = &st.ike {
        for n in &k.notes {
            o += &format!("ike note: {n}\n");
        }
    }
    o
}

/// One line per worker.
fn status_workers(st: &Status) -> String {
    let mut o = String::new();
    for wk in &st.workers {
        o += &format!(
            "worker {}: rx {} pkts {} B, tx {} pkts {} B{}\n",
            wk.worker,
            wk.rx_packets,
            wk.rx_bytes,
            wk.tx_packets,
            wk.tx_bytes,
            if wk.drops_by_reason.is_empty() {
                String::new()
            } else {
                format!(
                    ", drops {}",
                    wk.drops_by_reason
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            }
        );
    }
    o
}

fn tap(cli: &Cli, name: &str, out: &Path, count: Option<u64>, duration: Option<f64>) -> u8 {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    let (r, mut s) = match request(
        &socket_path(cli),
        &Request::Tap {
            name: name.to_string(),
        },
    ) {
        Ok(x) => x,
        Err(c) => return c,
    };
    if r.code != exit::OK {
        print_message(&r);
        return r.code;
    }
    // Decrypted traffic: readable by its owner only (0600 whatever the umask).
    let created = {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(out)
            .and_then(|f| {
                // an existing file keeps its mode on open: tighten it
                if f.metadata()?.is_file() {
                    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                }
                Ok(f)
            })
    };
    let mut file = match created {
        Ok(f) => std::io::BufWriter::new(f),
        Err(e) => {
            eprintln!("espresso tap: cannot create {}: {e}", out.display());
            return exit::FAILED;
        }
    };
    eprintln!(
        "espresso tap: writing {name}'s decrypted packets to {} (Ctrl-C stops)",
        out.display()
    );
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let deadline = duration.map(|d| Instant::now() + Duration::from_secs_f64(d.max(0.0)));
    let mut buf: Vec<u8> = Vec::new();
    let mut header_done = false;
    let mut packets = 0u64;
    let mut chunk = [0u8; 65536];
    let mut eof = false;
    loop {
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) || eof {
            break;
        }
        if count.is_some_and(|c| packets >= c) {
            break;
        }
        match s.read(&mut chunk) {
            Ok(0) => eof = true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                eprintln!("espresso tap: {e}");
                break;
            }
        }
        // Write whole records only.
        let mut at = 0;
        if !header_done && buf.len() >= 24 {
            let _ = file.write_all(&buf[..24]);
            at = 24;
            header_done = true;
        }
        while header_done && buf.len() >= at + 16 && count.is_none_or(|c| packets < c) {
            let incl =
                u32::from_le_bytes([buf[at + 8], buf[at + 9], buf[at + 10], buf[at + 11]]) as usize;
            if buf.len() < at + 16 + incl {
                break;
            }
            let _ = file.write_all(&buf[at..at + 16 + incl]);
            at += 16 + incl;
            packets += 1;
        }
        buf.drain(..at);
        let _ = file.flush();
    }
    if !header_done {
        let _ = file.write_all(&daemon::pcap::file_header(
            espresso_core::shm::TAP_SNAPLEN as u32,
        ));
    }
    let _ = file.flush();
    eprintln!(
        "espresso tap: {packets} packet(s) written to {}",
        out.display()
    );
    exit::OK
}
