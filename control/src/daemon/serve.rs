//! The daemon's listening threads: the CLI's Unix socket (one JSON request
//! line, one JSON answer line; pcap bytes after it for `tap`) and the
//! Prometheus endpoint. They own no state: requests go to the daemon's loop
//! as [`Job`]s and the answer comes back on a channel (IKE datagrams come to
//! the loop on a queue of their own, [`super::ikeio`], so that a flood of
//! them cannot delay these requests).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};

use crossbeam_channel::Sender;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, warn};

use super::api::{exit, Request, Response};
use super::pcap;

/// What the daemon thread answers.
pub enum Reply {
    /// A plain response.
    Resp(Response),
    /// A tap: the response, then pcap record bytes.
    Tap(Response, Receiver<Vec<u8>>),
}

/// What the daemon thread is handed: CLI/metrics requests.
pub enum Job {
    /// A request and where to answer.
    Request(Request, mpsc::Sender<Reply>),
}

/// Serves the CLI socket: one thread per connection.
pub fn socket(l: UnixListener, tx: Sender<Job>) {
    for conn in l.incoming() {
        match conn {
            Ok(s) => {
                let tx = tx.clone();
                let _ = std::thread::Builder::new()
                    .name("cli-conn".into())
                    .spawn(move || {
                        if let Err(e) = serve_conn(s, tx) {
                            warn!("cli connection: {e}");
                        }
                    });
            }
            Err(e) => {
                error!("cli socket: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// The uid of the process at the other end of a CLI connection (SO_PEERCRED).
pub fn peer_uid(s: &UnixStream) -> std::io::Result<u32> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let c = getsockopt(s, PeerCredentials).map_err(std::io::Error::from)?;
    Ok(c.uid())
}

/// Our effective uid (std has no geteuid: the owner of /proc/self).
pub fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(0, |m| m.uid())
}

/// Who may use the CLI socket: root and the daemon's own user (whatever
/// the socket file's permissions became).
pub fn peer_allowed(peer: u32, own: u32) -> bool {
    peer == 0 || peer == own
}

fn serve_conn(s: UnixStream, tx: Sender<Job>) -> std::io::Result<()> {
    let uid = peer_uid(&s)?;
    if !peer_allowed(uid, own_uid()) {
        warn!(
            "cli connection from uid {uid} refused: only root and uid {} may use the socket",
            own_uid()
        );
        let r = Response::err(
            exit::USAGE,
            format!(
                "uid {uid} may not use this socket (root or uid {} only)",
                own_uid()
            ),
        );
        let mut w = &s;
        writeln!(w, "{}", serde_json::to_string(&r).unwrap_or_default())?;
        return Ok(());
    }
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = String::new();
    BufReader::new((&s).take(1 << 16)).read_line(&mut line)?;
    let mut w = &s;
    let req = match Request::parse(&line) {
        Ok(r) => r,
        Err(e) => {
            let r = Response::err(exit::USAGE, format!("bad request: {e}"));
            writeln!(w, "{}", serde_json::to_string(&r).unwrap_or_default())?;
            return Ok(());
        }
    };
    let (rtx, rrx) = mpsc::channel();
    if tx.send(Job::Request(req, rtx)).is_err() {
        return Ok(());
    }
    let Ok(reply) = rrx.recv() else { return Ok(()) };
    match reply {
        Reply::Resp(r) => {
            writeln!(w, "{}", serde_json::to_string(&r).unwrap_or_default())?;
        }
        Reply::Tap(r, data) => {
            writeln!(w, "{}", serde_json::to_string(&r).unwrap_or_default())?;
            w.write_all(&pcap::file_header(espresso_core::shm::TAP_SNAPLEN as u32))?;
            // The CLI closes its end when done: watch for that on a clone.
            let closed = Arc::new(AtomicBool::new(false));
            if let Ok(mut r) = s.try_clone() {
                let closed = closed.clone();
                let _ = r.set_read_timeout(None);
                std::thread::spawn(move || {
                    let mut b = [0u8; 64];
                    while matches!(r.read(&mut b), Ok(n) if n > 0) {}
                    closed.store(true, Ordering::Relaxed);
                });
            }
            // Until the reader goes away or the daemon stops (dropping `data`
            // tells the engine to turn the tap off).
            for chunk in data {
                if closed.load(Ordering::Relaxed) {
                    break;
                }
                if !chunk.is_empty() {
                    w.write_all(&chunk)?;
                }
            }
        }
    }
    Ok(())
}

/// How long the metrics endpoint waits on one client, reading or writing.
pub const METRICS_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `GET /metrics` (Prometheus text) over HTTP/1.0.
pub fn metrics(l: TcpListener, tx: Sender<Job>) {
    for conn in l.incoming() {
        let Ok(mut s) = conn else { continue };
        // One connection at a time: a client that stops reading (or
        // writing) must not hold the endpoint.
        let _ = s.set_read_timeout(Some(METRICS_TIMEOUT));
        let _ = s.set_write_timeout(Some(METRICS_TIMEOUT));
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let head = String::from_utf8_lossy(&req);
        let path = head.split_whitespace().nth(1).unwrap_or("");
        let (status, body) = if head.starts_with("GET ") && (path == "/metrics" || path == "/") {
            let (rtx, rrx) = mpsc::channel();
            if tx.send(Job::Request(Request::Metrics, rtx)).is_err() {
                return;
            }
            match rrx.recv() {
                Ok(Reply::Resp(r)) => ("200 OK", r.text.unwrap_or_default()),
                _ => ("503 Service Unavailable", String::new()),
            }
        } else {
            ("404 Not Found", "try /metrics\n".to_string())
        };
        let _ = write!(
            s,
            "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_and_our_own_uid_may_use_the_socket() {
        assert!(peer_allowed(0, 1000));
        assert!(peer_allowed(1000, 1000));
        assert!(!peer_allowed(1001, 1000));
        assert!(!peer_allowed(65534, 0));
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(peer_uid(&a).unwrap(), own_uid());
    }

    /// As root: a process of another uid that reaches the socket (its file
    /// made world-writable on purpose) is refused by SO_PEERCRED.
    #[test]
    fn another_uid_is_refused_even_if_the_socket_file_lets_it_in() {
        if own_uid() != 0 {
            eprintln!("skipped: needs root to connect as another uid");
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("s.sock");
        let l = UnixListener::bind(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::spawn(move || socket(l, tx));
        // A request that gets through would reach the daemon loop here.
        std::thread::spawn(move || {
            while let Ok(Job::Request(_, r)) = rx.recv() {
                let _ = r.send(Reply::Resp(Response::ok("served")));
            }
        });
        let ask = |uid: u32| {
            let out = std::process::Command::new("python3")
                .arg("-c")
                .arg(format!(
                    "import os,socket\nos.setgid({uid}); os.setuid({uid})\n\
                     s=socket.socket(socket.AF_UNIX); s.connect({:?})\n\
                     \n\
                     try: s.sendall(b'{{\"cmd\":\"status\"}}\\n')\n\
                     except OSError: pass\n\
                     print(s.makefile().readline())",
                    path.display().to_string()
                ))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
        };
        let nobody = ask(65534);
        assert!(
            nobody.contains("uid 65534 may not use this socket"),
            "{nobody}"
        );
        let root = ask(0);
        assert!(!root.contains("may not use"), "{root}");
    }
}
