//! `espresso ipsec ...`: the commands operators type on Openswan and
//! strongSwan boxes (`ipsec start|stop|restart|status|statusall|up|down|
//! reload|auto --up|--down|--add|--delete|--replace NAME`), on top of the
//! daemon's CLI socket. `status` prints strongSwan's stroke format
//! (`Security Associations (1 up, 0 connecting):` ...). Installed as
//! `ipsec` (a link to `espresso`) where no other `ipsec` command exists,
//! the binary answers to that name too.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::args::{Cli, Cmd, IpsecCli, IpsecCmd};
use super::client::{print_message, request, socket_path};
use crate::daemon::api::{exit, Request, Status, TunnelStatus};

/// The default configuration file of a packaged install.
pub const DEFAULT_CONFIG: &str = "/etc/espresso/espresso.toml";

fn config_path(cli: &Cli) -> PathBuf {
    cli.config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
}

fn status(cli: &Cli) -> Result<Status, u8> {
    let (r, _) = request(&socket_path(cli), &Request::Status)?;
    if r.code != exit::OK {
        print_message(&r);
        return Err(r.code);
    }
    r.status.ok_or(exit::FAILED)
}

/// The daemon's status, or `None` without a word (not running, shutting down).
fn quiet_status(cli: &Cli) -> Option<Status> {
    use std::io::{BufRead, BufReader, Write};
    let s = std::os::unix::net::UnixStream::connect(socket_path(cli)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut w = &s;
    writeln!(w, "{}", serde_json::to_string(&Request::Status).ok()?).ok()?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).ok()?;
    serde_json::from_str::<crate::daemon::api::Response>(line.trim())
        .ok()?
        .status
}

fn simple(cli: &Cli, req: Request) -> u8 {
    match request(&socket_path(cli), &req) {
        Ok((r, _)) => {
            print_message(&r);
            r.code
        }
        Err(c) => c,
    }
}

fn systemd() -> bool {
    Path::new("/run/systemd/system").exists()
        && Command::new("systemctl")
            .args(["cat", "espresso.service"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

fn systemctl(args: &[&str]) -> u8 {
    match Command::new("systemctl").args(args).status() {
        Ok(s) if s.success() => exit::OK,
        Ok(_) => exit::FAILED,
        Err(e) => {
            eprintln!("espresso ipsec: systemctl: {e}");
            exit::FAILED
        }
    }
}

/// `ipsec start`: the daemon (and the dataplane, if the configuration has a
/// `[dataplane]` table and none is attached), or a reload if it runs.
pub fn start(cli: &Cli) -> u8 {
    if let Some(st) = quiet_status(cli) {
        println!(
            "espresso already running (pid {}): reloading the configuration",
            st.control.pid
        );
        return simple(cli, Request::Reload { name: None });
    }
    if systemd() {
        println!("Starting espresso (systemd: espresso-dataplane.service, espresso.service)...");
        return systemctl(&["start", "espresso-dataplane.service", "espresso.service"]);
    }
    let cfg = config_path(cli);
    if let Err(e) = crate::config::Config::load(&cfg) {
        eprintln!("{e}");
        return exit::CONFIG;
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("espresso"));
    let log_path = cfg.with_file_name("espresso.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path);
    let (out, err) = match log.and_then(|f| Ok((f.try_clone()?, f))) {
        Ok((a, b)) => (Stdio::from(a), Stdio::from(b)),
        Err(_) => (Stdio::null(), Stdio::null()),
    };
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(&exe);
    cmd.arg("--config").arg(&cfg);
    if let Some(s) = &cli.socket {
        cmd.arg("--socket").arg(s);
    }
    let child = cmd
        .arg("daemon")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn();
    let pid = match child {
        Ok(c) => c.id(),
        Err(e) => {
            eprintln!("espresso ipsec start: cannot run {}: {e}", exe.display());
            return exit::FAILED;
        }
    };
    println!(
        "Starting espresso daemon (pid {pid}, log {})...",
        log_path.display()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(st) = quiet_status(cli) {
            let dp_table = std::fs::read_to_string(&cfg)
                .ok()
                .and_then(|t| t.parse::<toml::Table>().ok())
                .is_some_and(|t| t.contains_key("dataplane"));
            if !st.dataplane.alive && dp_table {
                let dp = exe.with_file_name("espresso-dataplane");
                match Command::new(&dp)
                    .arg("--config")
                    .arg(&cfg)
                    .stdin(Stdio::null())
                    .process_group(0)
                    .spawn()
                {
                    Ok(c) => println!("Starting espresso-dataplane (pid {})...", c.id()),
                    Err(e) => eprintln!("espresso ipsec start: cannot run {}: {e}", dp.display()),
                }
            } else if !st.dataplane.alive {
                println!("note: no dataplane attached yet (start espresso-dataplane, or give the configuration a [dataplane] table)");
            }
            return exit::OK;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "espresso ipsec start: the daemon does not answer (see {})",
        log_path.display()
    );
    exit::NO_DAEMON
}

/// `ipsec stop`: every running tunnel and connection down, then the daemon.
pub fn stop(cli: &Cli) -> u8 {
    let Some(st) = quiet_status(cli) else {
        if systemd() {
            return systemctl(&["stop", "espresso.service"]);
        }
        println!("espresso is not running");
        return exit::OK;
    };
    println!("Stopping espresso...");
    for t in st
        .tunnels
        .iter()
        .filter(|t| t.kind != "policy" && t.state != "down")
    {
        if let Ok((r, _)) = request(
            &socket_path(cli),
            &Request::Down {
                name: t.name.clone(),
            },
        ) {
            if r.code == exit::OK {
                println!("{}: down", t.name);
            }
        }
    }
    if systemd() {
        return systemctl(&["stop", "espresso.service"]);
    }
    let pid = st.control.pid as i32;
    if let Err(e) = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    ) {
        eprintln!("espresso ipsec stop: cannot stop pid {pid}: {e}");
        return exit::FAILED;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if quiet_status(cli).is_none() {
            println!("espresso daemon stopped; the dataplane keeps holding the tunnels' traffic (discarded, never sent in the clear)");
            return exit::OK;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("espresso ipsec stop: pid {pid} still answers");
    exit::FAILED
}

fn ago(s: u64) -> String {
    match s {
        0..=119 => format!("{s} seconds"),
        120..=7199 => format!("{} minutes", s / 60),
        7200..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86400),
    }
}

fn in_time(s: Option<u64>) -> String {
    s.map(|s| format!(", rekeying in {}", ago(s)))
        .unwrap_or_default()
}

fn strip_port(a: &str) -> &str {
    match a.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => {
            h.trim_start_matches('[').trim_end_matches(']')
        }
        _ => a,
    }
}

/// strongSwan's stroke `ipsec status` (`all`: `statusall`).
pub fn status_text(st: &Status, only: Option<&str>, all: bool) -> String {
    let mut o = String::new();
    let want = |n: &str| only.is_none_or(|x| x == n);
    if all {
        o += &format!(
            "Status of espresso daemon ({} {}, pid {}):\n  uptime: {}, config {}\n  dataplane: {}\n",
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            st.control.pid,
            ago(st.control.uptime_s),
            st.control.config,
            if st.dataplane.alive {
                format!("running, pid {}, {} worker(s)", st.dataplane.pid, st.dataplane.workers)
            } else {
                "NOT RUNNING".to_string()
            }
        );
        o += "Connections:\n";
        for t in st.tunnels.iter().filter(|t| want(&t.name)) {
            let kind = match t.kind.as_str() {
                "ike" => "IKEv2, pre-shared key".to_string(),
                "tunnel" => "manual keys".to_string(),
                _ => format!("{} policy", t.mode),
            };
            if t.kind == "policy" {
                o += &format!(
                    "{:>12}:  {} === {}  {}, {}\n",
                    t.name,
                    t.local_subnets.join(","),
                    t.remote_subnets.join(","),
                    kind,
                    t.state
                );
            } else {
                o += &format!(
                    "{:>12}:  {}...{}  {}, start={}\n",
                    t.name, t.local, t.remote, kind, t.start
                );
                o += &format!(
                    "{:>12}:   child:  {} === {} {}\n",
                    t.name,
                    t.local_subnets.join(" "),
                    t.remote_subnets.join(" "),
                    t.mode.to_uppercase()
                );
            }
        }
    }
    let ike_up = st
        .ike_sas
        .iter()
        .filter(|s| s.state == "ESTABLISHED")
        .count();
    let manual_up = st
        .tunnels
        .iter()
        .filter(|t| t.kind == "tunnel" && t.state == "up")
        .count();
    let connecting = st
        .ike_sas
        .iter()
        .filter(|s| s.state != "ESTABLISHED")
        .count();
    o += &format!(
        "Security Associations ({} up, {connecting} connecting):\n",
        ike_up + manual_up
    );
    let mut any = false;
    for (i, s) in st.ike_sas.iter().enumerate().filter(|(_, s)| want(&s.conn)) {
        any = true;
        let n = i + 1;
        let rid = if s.remote_id.is_empty() {
            strip_port(&s.remote).to_string()
        } else {
            s.remote_id.clone()
        };
        o += &format!(
            "{:>12}[{n}]: {}, {}[{}]...{}[{}]\n",
            s.conn,
            s.state,
            strip_port(&s.local),
            strip_port(&s.local),
            strip_port(&s.remote),
            rid
        );
        if all {
            o += &format!(
                "{:>12}[{n}]: IKEv2 SPIs: {}_i{} {}_r{}, {}{}\n",
                s.conn,
                s.spi_i,
                if s.initiator { "*" } else { "" },
                s.spi_r,
                if s.initiator { "" } else { "*" },
                // strongSwan's words for how the peer authenticated
                if s.peer_auth.is_empty() || s.peer_auth == "psk" {
                    "pre-shared key"
                } else {
                    "public key"
                },
                in_time(s.rekey_in_s)
            );
            o += &format!("{:>12}[{n}]: IKE proposal: {}\n", s.conn, s.proposal);
        }
        for (j, c) in s.children.iter().enumerate() {
            let cn = format!("{}{{{}}}", s.conn, n * 10 + j);
            o += &format!(
                "{cn:>12}:  {}, TUNNEL{}, ESP{} SPIs: {}_i {}_o\n",
                c.state,
                if c.encap { "-in-UDP" } else { "" },
                if c.encap { " in UDP" } else { "" },
                spi8(&c.inbound.spi_hex),
                spi8(&c.outbound.spi_hex)
            );
            if all {
                o += &format!(
                    "{cn:>12}:  {}, {} bytes_i ({} pkts), {} bytes_o ({} pkts){}\n",
                    c.proposal,
                    c.inbound.bytes,
                    c.inbound.packets,
                    c.outbound.bytes,
                    c.outbound.packets,
                    in_time(c.rekey_in_s)
                );
            }
            o += &format!(
                "{cn:>12}:   {} === {}\n",
                c.local_ts.join(" "),
                c.remote_ts.join(" ")
            );
        }
    }
    for t in st
        .tunnels
        .iter()
        .filter(|t| t.kind == "tunnel" && want(&t.name))
    {
        any = true;
        manual_lines(&mut o, t, all);
    }
    if !any {
        o += "  none\n";
    }
    o
}

fn manual_lines(o: &mut String, t: &TunnelStatus, all: bool) {
    let cn = format!("{}{{{}}}", t.name, t.id);
    let state = match t.state.as_str() {
        "up" => "INSTALLED".to_string(),
        s => s.to_uppercase(),
    };
    let (i, out) = (
        t.inbound.clone().unwrap_or_default(),
        t.outbound.clone().unwrap_or_default(),
    );
    *o += &format!(
        "{cn:>12}:  {state}, {}, manual keys, ESP SPIs: {:08x}_i {:08x}_o\n",
        t.mode.to_uppercase(),
        i.spi,
        out.spi
    );
    if all {
        *o += &format!(
            "{cn:>12}:  {}, {} bytes_i ({} pkts), {} bytes_o ({} pkts)\n",
            t.suite, i.bytes, i.packets, out.bytes, out.packets
        );
    }
    *o += &format!(
        "{cn:>12}:   {} === {}\n",
        t.local_subnets.join(" "),
        t.remote_subnets.join(" ")
    );
}

/// Runs `espresso ipsec CMD` (or `ipsec CMD`).
pub fn run(cli: &Cli, cmd: &IpsecCmd) -> u8 {
    match cmd {
        IpsecCmd::Start => start(cli),
        IpsecCmd::Stop => stop(cli),
        IpsecCmd::Restart => {
            let c = stop(cli);
            if c != exit::OK {
                return c;
            }
            start(cli)
        }
        IpsecCmd::Status { name } | IpsecCmd::Statusall { name } => {
            let all = matches!(cmd, IpsecCmd::Statusall { .. });
            match status(cli) {
                Ok(st) => {
                    if let Some(n) = name {
                        if !st.tunnels.iter().any(|t| &t.name == n) {
                            eprintln!("no connection named '{n}'");
                            return exit::NOT_FOUND;
                        }
                    }
                    print!("{}", status_text(&st, name.as_deref(), all));
                    exit::OK
                }
                Err(c) => c,
            }
        }
        IpsecCmd::Up { name } => simple(cli, Request::Up { name: name.clone() }),
        IpsecCmd::Down { name } => simple(cli, Request::Down { name: name.clone() }),
        IpsecCmd::Reload => simple(cli, Request::Reload { name: None }),
        IpsecCmd::Version => {
            println!(
                "espresso {} (ipsec commands for Openswan/strongSwan habits)",
                env!("CARGO_PKG_VERSION")
            );
            exit::OK
        }
        IpsecCmd::Auto(a) => {
            let need = || -> Result<String, u8> {
                a.name.clone().ok_or_else(|| {
                    eprintln!("ipsec auto: give the connection name");
                    exit::USAGE
                })
            };
            let r = if a.status {
                return run(cli, &IpsecCmd::Statusall { name: None });
            } else if a.rereadsecrets {
                Ok(Request::Reload { name: None })
            } else if a.up {
                need().map(|name| Request::Up { name })
            } else if a.down || a.delete {
                need().map(|name| Request::Down { name })
            } else {
                need().map(|name| Request::Reload { name: Some(name) })
            };
            let code = match r {
                Ok(req) => simple(cli, req),
                Err(c) => return c,
            };
            if a.delete && code == exit::OK {
                println!("(it stays in the configuration files: remove it there and `ipsec reload` to forget it)");
            }
            code
        }
    }
}

/// `ipsec ...` invoked through a link named `ipsec`.
pub fn main_as_ipsec() -> u8 {
    use clap::Parser;
    let a = IpsecCli::parse();
    let cli = Cli {
        config: a.config,
        socket: a.socket,
        cmd: Cmd::Ipsec { cmd: a.cmd.clone() },
    };
    run(&cli, &a.cmd)
}

/// An SPI as strongSwan prints it: eight hex digits, zero-padded.
fn spi8(hex: &str) -> String {
    let h = hex.trim_start_matches("0x");
    match u32::from_str_radix(h, 16) {
        Ok(v) => format!("{v:08x}"),
        Err(_) => h.to_string(),
    }
}
