//! The control daemon: reads the configuration, pushes SAs and policies to
//! the dataplane through shared memory, follows counters and events
//! (lifetimes), serves the CLI on a Unix socket (mode 0600), Prometheus
//! metrics over HTTP, and the decrypted-traffic tap.
//!
//! One thread owns the [`state::Daemon`] and runs the loop below; the socket
//! and HTTP threads ([`serve`]) hand it requests over a channel and wait for
//! the answer, so no state is shared. Stopping the daemon (any signal, even
//! `kill -9`) leaves the dataplane forwarding with what it has; a restarted
//! daemon reattaches.
//!
//! The parts, and which way they use each other (no two import each other):
//! - [`state`]: the [`state::Daemon`]: dispatches commands, ticks the parts.
//! - [`installer`]: the one writer of the shared-memory region (slots, tunnel
//!   ids, records, policy ids, the sequence ledger, dataplane liveness).
//! - [`manual`]: manual tunnels and policy rules, through the installer.
//! - [`ike`]: the bridge from the IKE engine to the installer ([`ikeio`]: its
//!   UDP sockets). A second keying engine gets a bridge next to it.
//! - [`status`]: `espresso status` and Prometheus metrics (read only).
//! - [`tap`], [`pcap`]: the decrypted-traffic tap.
//! - [`api`]: the CLI protocol; [`serve`]: the CLI socket and metrics HTTP
//!   threads; [`logring`]: recent log lines for `espresso log`.

pub mod api;
pub mod barrier;
pub mod bridge;
pub mod engine_sas;
pub mod events;
pub mod ike;
pub mod ikeio;
pub mod ikev1;
pub mod installer;
pub mod logring;
pub mod looptime;
pub mod manual;
pub mod pcap;
pub mod serve;
pub mod state;
pub mod status;
pub mod tap;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use std::time::{Duration, Instant};

use tracing::info;

use self::api::{exit, Request, Response};
use self::serve::{Job, Reply};
use self::state::Daemon;

/// Interval of the daemon's periodic work ([`Daemon::tick`]).
pub const TICK: Duration = Duration::from_millis(10);

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
    // Created under umask 077: the socket is never, even for an instant,
    // connectable by others (the chmod below only confirms it).
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let l = bound.map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    Ok(l)
}

/// Runs the daemon until SIGTERM/SIGINT. Returns the exit code.
pub fn run(opts: DaemonOptions) -> Result<u8, DaemonError> {
    let config = crate::config::load(&opts.config)?;
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
    let mut daemon = Daemon::new(&opts.config, config)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    let (tx, rx) = crossbeam_channel::unbounded::<Job>();
    listen(&socket, metrics_addr, &tx)?;
    drop(tx);
    let limits = daemon.ike_limits();
    let (first_tx, first) = crossbeam_channel::bounded(limits.queue);
    let (other_tx, other) = crossbeam_channel::bounded(limits.queue);
    daemon.attach_ike_io(ikeio::Queues {
        first: first_tx,
        other: other_tx,
        natt_port: daemon.natt_port(),
        max_datagram: limits.max_message + 4,
    });
    serve_loop(&mut daemon, &opts, &rx, [&other, &first], &stop);
    info!("espresso daemon stopping; the dataplane keeps its SAs");
    let _ = std::fs::remove_file(&socket);
    Ok(exit::OK)
}

/// Opens the CLI socket and the metrics endpoint and starts their threads,
/// which hand their requests to `tx`.
fn listen(
    socket: &Path,
    metrics: Option<std::net::SocketAddr>,
    tx: &Sender<Job>,
) -> Result<(), DaemonError> {
    let thread_err = |name: &str| {
        let name = name.to_string();
        move |source| DaemonError::Listen {
            what: "thread",
            path: name,
            source,
        }
    };
    let listener = bind_socket(socket)?;
    let metrics = match metrics {
        Some(a) => Some(TcpListener::bind(a).map_err(|source| DaemonError::Listen {
            what: "metrics endpoint",
            path: a.to_string(),
            source,
        })?),
        None => None,
    };
    let t = tx.clone();
    std::thread::Builder::new()
        .name("cli-socket".into())
        .spawn(move || serve::socket(listener, t))
        .map_err(thread_err("cli-socket"))?;
    if let Some(m) = metrics {
        info!(
            "metrics on http://{}/metrics",
            m.local_addr().map(|a| a.to_string()).unwrap_or_default()
        );
        let t = tx.clone();
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve::metrics(m, t))
            .map_err(thread_err("metrics"))?;
    }
    Ok(())
}

/// Datagrams of existing SAs served per first message when both queues
/// have work.
const OTHER_PER_FIRST: usize = 4;

/// The daemon's loop until `stop`: CLI/metrics requests (`rx`) and IKE
/// datagrams (`queues`: messages of existing SAs, then first messages; bounded
/// queues the socket threads drop from when they are full) as they come,
/// [`Daemon::tick`] every [`TICK`] and the IKE engines' timers when due,
/// whatever comes in. Each round serves one request, up to
/// [`OTHER_PER_FIRST`] datagrams of existing SAs and one first message, so
/// that a flood of IKE_SA_INIT neither starves the CLI nor the timers, DPD
/// and rekeys of established SAs, nor the exchanges already under way.
fn serve_loop(
    daemon: &mut Daemon,
    opts: &DaemonOptions,
    rx: &Receiver<Job>,
    queues: [&Receiver<ikeio::Datagram>; 2],
    stop: &AtomicBool,
) {
    let mut next = Instant::now();
    // a channel whose senders are all gone is always ready: replaced by one
    // that never is
    let (mut rx, mut other, mut first) = (rx.clone(), queues[0].clone(), queues[1].clone());
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next {
            daemon.tick();
            next = Instant::now() + TICK;
        } else if daemon.ike_timeout().is_some_and(|t| now >= t) {
            daemon.ike_timers();
        }
        let mut busy = false;
        if let Ok(Job::Request(req, reply)) = rx.try_recv() {
            let t = Instant::now();
            let _ = reply.send(handle(daemon, opts, req));
            daemon.stalls().record("CLI request", t.elapsed());
            busy = true;
        }
        for _ in 0..OTHER_PER_FIRST {
            let Ok(d) = other.try_recv() else { break };
            datagram(daemon, d);
            busy = true;
        }
        if let Ok(d) = first.try_recv() {
            datagram(daemon, d);
            busy = true;
        }
        if busy {
            continue;
        }
        let mut until = next;
        if let Some(t) = daemon.ike_timeout() {
            until = until.min(t);
        }
        let wait = until.saturating_duration_since(Instant::now());
        crossbeam_channel::select! {
            recv(rx) -> job => match job {
                Ok(Job::Request(req, reply)) => {
                    let t = Instant::now();
                    let _ = reply.send(handle(daemon, opts, req));
                    daemon.stalls().record("CLI request", t.elapsed());
                }
                Err(_) => rx = crossbeam_channel::never(),
            },
            recv(other) -> d => match d {
                Ok(d) => datagram(daemon, d),
                Err(_) => other = crossbeam_channel::never(),
            },
            recv(first) -> d => match d {
                Ok(d) => datagram(daemon, d),
                Err(_) => first = crossbeam_channel::never(),
            },
            default(wait) => daemon.stalls().woke(until, Instant::now()),
        }
    }
}

/// One IKE datagram, timed as a loop stage.
fn datagram(daemon: &mut Daemon, d: ikeio::Datagram) {
    let t = Instant::now();
    daemon.ike_datagram(d);
    daemon.stalls().record("IKE datagram", t.elapsed());
}

fn handle(daemon: &mut Daemon, opts: &DaemonOptions, req: Request) -> Reply {
    Reply::Resp(match req {
        Request::Status => {
            let st = daemon.status();
            Response {
                status: Some(st),
                ..Response::ok("")
            }
        }
        Request::Up { name } => daemon.up(&name),
        Request::Down { name } => daemon.down(&name),
        Request::Move { name, address } => daemon.move_local(&name, address),
        Request::Reload { name } => daemon.reload(name.as_deref()),
        Request::Log { lines } => Response {
            lines: opts.log.last(lines),
            ..Response::ok("")
        },
        Request::Keys { name } => daemon.keys(name.as_deref()),
        Request::Metrics => Response {
            text: Some(status::metrics::render(&daemon.status())),
            ..Response::ok("")
        },
        Request::Tap { name } => {
            return match daemon.tap(&name) {
                Ok(rx) => Reply::Tap(Response::ok(format!("{name}: tapping")), rx),
                Err(r) => Reply::Resp(*r),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_cli_socket_is_created_0600_and_the_umask_restored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/espresso.sock");
        // (reading the umask sets it: to 077, harmless to tests running meanwhile)
        let strict = nix::sys::stat::Mode::from_bits_truncate(0o077);
        let before = nix::sys::stat::umask(strict);
        nix::sys::stat::umask(before);
        let l = bind_socket(&path).unwrap();
        let after = nix::sys::stat::umask(strict);
        nix::sys::stat::umask(after);
        assert_eq!(after, before, "umask not restored");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "socket mode {mode:04o}");
        let dmode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        drop(l);
    }
}
