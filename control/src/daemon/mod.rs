//! The control daemon: reads the configuration, pushes SAs and policies to
//! the dataplane through shared memory, follows counters and events
//! (lifetimes), serves the CLI on a Unix socket (mode 0600), Prometheus
//! metrics over HTTP, and the decrypted-traffic tap.
//!
//! One thread owns the [`engine::Engine`]; the socket and HTTP threads hand
//! it requests over a channel and wait for the answer, so no state is shared.
//! Stopping the daemon (any signal, even `kill -9`) leaves the dataplane
//! forwarding with what it has; a restarted daemon reattaches.

pub mod api;
pub mod engine;
pub mod ike;
pub mod ikeio;
pub mod logring;
pub mod metrics;
pub mod pcap;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use self::api::{exit, Request, Response};
use self::engine::Engine;
use crate::config::Config;

/// Interval of the engine's periodic work.
pub const TICK: Duration = Duration::from_millis(10);

/// What the engine thread answers.
pub enum Reply {
    /// A plain response.
    Resp(Response),
    /// A tap: the response, then pcap record bytes.
    Tap(Response, Receiver<Vec<u8>>),
}

/// What the engine thread is handed: CLI/metrics requests and IKE datagrams.
pub enum Job {
    /// A request and where to answer.
    Request(Request, Sender<Reply>),
    /// A datagram from an IKE socket.
    Datagram(ikeio::Datagram),
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigErrors),
    /// The shared-memory region could not be attached.
    #[error("{0}")]
    Shm(#[from] espresso_core::shm::ShmError),
    /// The CLI socket or metrics endpoint could not be opened.
    #[error("{what} {path}: {source}")]
    Listen {
        /// Which.
        what: &'static str,
        /// Path or address.
        path: String,
        /// OS error.
        source: std::io::Error,
    },
}

impl DaemonError {
    /// Exit code for this error.
    pub fn code(&self) -> u8 {
        match self {
            DaemonError::Config(_) => exit::CONFIG,
            _ => exit::FAILED,
        }
    }
}

/// Options of `espresso daemon`.
pub struct DaemonOptions {
    /// Configuration file.
    pub config: PathBuf,
    /// Socket path overriding the configuration's.
    pub socket: Option<PathBuf>,
    /// Log lines kept for `espresso log`.
    pub log: logring::LogRing,
}

fn bind_socket(path: &Path) -> Result<UnixListener, DaemonError> {
    let err = |source| DaemonError::Listen {
        what: "socket",
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir).map_err(err)?;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another daemon is listening there",
            )));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    let l = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    Ok(l)
}

/// Runs the daemon until SIGTERM/SIGINT. Returns the exit code.
pub fn run(opts: DaemonOptions) -> Result<u8, DaemonError> {
    let config = Config::load(&opts.config)?;
    let socket = opts
        .socket
        .clone()
        .unwrap_or_else(|| config.daemon.socket.clone());
    let metrics_addr = config.daemon.metrics;
    info!(
        "espresso daemon starting: config {}, shm {}, socket {}",
        opts.config.display(),
        config.daemon.shm.display(),
        socket.display()
    );
    let mut engine = Engine::new(&opts.config, config)?;
    let listener = bind_socket(&socket)?;
    let metrics = match metrics_addr {
        Some(a) => Some(TcpListener::bind(a).map_err(|source| DaemonError::Listen {
            what: "metrics endpoint",
            path: a.to_string(),
            source,
        })?),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    let (tx, rx) = mpsc::channel::<Job>();
    {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("cli-socket".into())
            .spawn(move || serve_socket(listener, tx))
            .map_err(|source| DaemonError::Listen {
                what: "thread",
                path: "cli-socket".into(),
                source,
            })?;
    }
    if let Some(m) = metrics {
        info!(
            "metrics on http://{}/metrics",
            m.local_addr().map(|a| a.to_string()).unwrap_or_default()
        );
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve_metrics(m, tx))
            .map_err(|source| DaemonError::Listen {
                what: "thread",
                path: "metrics".into(),
                source,
            })?;
    }
    engine.ike_attach_io(tx.clone(), Job::Datagram);
    drop(tx);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut until = next;
        if let Some(t) = engine.ike_timeout() {
            until = until.min(t);
        }
        let wait = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Job::Request(req, reply)) => {
                let r = handle(&mut engine, &opts, req);
                let _ = reply.send(r);
            }
            Ok(Job::Datagram(d)) => engine.ike_datagram(d),
            Err(RecvTimeoutError::Timeout) => {
                if Instant::now() >= next {
                    engine.tick();
                    next = Instant::now() + TICK;
                } else {
                    engine.ike_timers();
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(wait);
                engine.tick();
                next = Instant::now() + TICK;
            }
        }
    }
    info!("espresso daemon stopping; the dataplane keeps its SAs");
    let _ = std::fs::remove_file(&socket);
    Ok(exit::OK)
}

fn handle(engine: &mut Engine, opts: &DaemonOptions, req: Request) -> Reply {
    Reply::Resp(match req {
        Request::Status => {
            let st = engine.status();
            Response {
                status: Some(st),
                ..Response::ok("")
            }
        }
        Request::Up { name } => engine.up(&name),
        Request::Down { name } => engine.down(&name),
        Request::Reload { name } => engine.reload(name.as_deref()),
        Request::Log { lines } => Response {
            lines: opts.log.last(lines),
            ..Response::ok("")
        },
        Request::Keys { name } => engine.keys(name.as_deref()),
        Request::Metrics => Response {
            text: Some(metrics::render(&engine.status())),
            ..Response::ok("")
        },
        Request::Tap { name } => {
            return match engine.tap(&name) {
                Ok(rx) => Reply::Tap(Response::ok(format!("{name}: tapping")), rx),
                Err(r) => Reply::Resp(*r),
            }
        }
    })
}

fn serve_socket(l: UnixListener, tx: Sender<Job>) {
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

fn serve_conn(s: UnixStream, tx: Sender<Job>) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = String::new();
    BufReader::new((&s).take(1 << 16)).read_line(&mut line)?;
    let mut w = &s;
    let req: Request = match serde_json::from_str(line.trim()) {
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

fn serve_metrics(l: TcpListener, tx: Sender<Job>) {
    for conn in l.incoming() {
        let Ok(mut s) = conn else { continue };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
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
