//! The `espresso` command line: the daemon, and the client commands that
//! talk to it over its Unix socket. Exit codes are in [`crate::daemon::api::exit`]
//! (0 ok, 1 failed, 2 usage, 3 configuration invalid, 4 no such tunnel,
//! 5 daemon unreachable, 6 refused in the tunnel's state).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod args;
pub mod client;
#[cfg(any(fuzzing, test))]
pub mod fuzz;
pub mod generate;
pub mod import;
pub mod ipsec;
pub mod keys;
pub mod shell;

use crate::config::{genkey, Config};
use crate::daemon::api::{exit, Request, Status, TunnelStatus};
use crate::daemon::{self, logring::LogRing, DaemonOptions};
pub use args::{Cli, Cmd};
use client::{client, print_message, request, socket_path};

/// Runs the command line; returns the process exit code.
pub fn main(cli: Cli) -> u8 {
    match &cli.cmd {
        Cmd::Daemon => run_daemon(&cli),
        Cmd::Check => check(&cli),
        Cmd::Genkey {
            bits,
            ascii,
            rsa,
            out,
            secrets,
        } => {
            let r = match (bits, ascii, rsa, out) {
                (b, None, true, Some(o)) => {
                    genkey::rsa_key_pair(b.unwrap_or(2048), o, secrets.as_deref())
                }
                (_, Some(a), _, _) => genkey::ascii_to_hex(a),
                (Some(b), None, false, _) => genkey::random_key(*b),
                _ => Err("give --bits N, --ascii TEXT or --rsa --out FILE".into()),
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
        Cmd::Move { name, address } => client(
            &cli,
            Request::Move {
                name: name.clone(),
                address: *address,
            },
            print_message,
        ),
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
    match crate::config::load(cfg) {
        Ok(c) => {
            // IKEv1 proposals are parsed by the IKEv1 engine (as the daemon
            // does when it loads the file), not by core's loader.
            let v1_errors: Vec<String> = c
                .connections
                .iter()
                .filter(|k| k.version.accepts(1))
                .filter_map(|k| crate::ikev1::config::Connection::from_config(k).err())
                .map(|e| e.to_string())
                .collect();
            if !v1_errors.is_empty() {
                for e in &v1_errors {
                    eprintln!("{e}");
                }
                return exit::CONFIG;
            }
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
                let mut ike: Vec<String> =
                    k.conn.ike_proposals.iter().map(|p| p.to_string()).collect();
                let mut esp: Vec<String> =
                    k.conn.esp_proposals.iter().map(|p| p.to_string()).collect();
                if !k.version.accepts(2) {
                    // IKEv1 only: the proposals as written (the IKEv1 engine's defaults if none)
                    let (i, e) = &k.v1_proposals;
                    ike = vec![i.clone().unwrap_or_else(|| "ikev1-default".into())];
                    esp = vec![e.clone().unwrap_or_else(|| "ikev1-default".into())];
                }
                println!(
                    "connection {}: {:?} -> {:?}, ike {}, esp {}, start {:?}, auth {}/{}",
                    k.name,
                    k.conn.local_addr,
                    k.conn.remote_addr,
                    ike.join(","),
                    esp.join(","),
                    k.conn.start_action,
                    k.conn.auth.local.name(),
                    k.conn.auth.remote.name()
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
            "ike {}: {} {} {}_i {}_r {} <-> {}{}{} {}{}\n",
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
            peer_auth_text(s),
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
    for (v, k) in [("ike", &st.ike), ("ikev1", &st.ikev1)] {
        if let Some(k) = k {
            o += &format!(
                "{v}: rx {} tx {}, half-open {}, drops{}\n",
                k.rx,
                k.tx,
                k.half_open,
                reasons(&k.drops_by_reason)
            );
        }
    }
    if let Some(k) = &st.ike_socket {
        o += &format!(
            "ike sockets: queued {} (queue {}), drops{}\n",
            k.queued,
            k.queue_capacity,
            reasons(&k.drops_by_reason)
        );
    }
    o
}

/// ` none` or ` reason=n reason=n` (zeros left out).
fn reasons(m: &std::collections::BTreeMap<String, u64>) -> String {
    let v: Vec<String> = m
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| format!(" {r}={n}"))
        .collect();
    if v.is_empty() {
        " none".into()
    } else {
        v.concat()
    }
}

/// How the peer of an IKE SA authenticated, for the status line:
/// ` auth psk`, ` auth sha256WithRSAEncryption cert "C=CH, O=.., CN=.."`.
fn peer_auth_text(s: &daemon::api::IkeStatus) -> String {
    let mut o = String::new();
    if !s.peer_auth.is_empty() {
        o += &format!(" auth {}", s.peer_auth);
    }
    if !s.peer_cert.is_empty() {
        o += &format!(" cert \"{}\"", s.peer_cert);
    }
    o
}

/// One line per worker (and the held-ESP sums when there are several).
fn status_workers(st: &Status) -> String {
    let mut o = String::new();
    if st.workers.len() > 1 {
        let held: u64 = st.workers.iter().map(|w| w.esp_held).sum();
        let released: u64 = st.workers.iter().map(|w| w.esp_held_released).sum();
        o += &format!("all workers: esp before its SA: held {held}, released {released}\n");
    }
    for wk in &st.workers {
        o += &format!(
            "worker {}: rx {} pkts {} B, tx {} pkts {} B, icmp errors {} (rate-limited {}), neighbour: resolve requests {}, held {}, sent stale {}, esp before its SA: held {}, released {}{}\n",
            wk.worker,
            wk.rx_packets,
            wk.rx_bytes,
            wk.tx_packets,
            wk.tx_bytes,
            wk.icmp_errors,
            wk.icmp_rate_limited,
            wk.resolve_requests,
            wk.neighbour_held,
            wk.neighbour_stale,
            wk.esp_held,
            wk.esp_held_released,
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
