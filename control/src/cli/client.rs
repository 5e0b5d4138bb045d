//! Talking to the daemon over its Unix socket: where the socket is
//! ([`socket_path`]), one request and its answer ([`request`]), and printing
//! the daemon's message.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::args::Cli;
use crate::config;
use crate::daemon::api::{exit, Request, Response};

/// Prints a response's message and lines (stdout if it succeeded, else stderr).
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

pub(crate) fn client(cli: &Cli, req: Request, show: impl FnOnce(&Response)) -> u8 {
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
