//! `espresso-dataplane`: the poll-mode dataplane process of one gateway.
//! This file only reads the command line (and `--config FILE` through the one
//! configuration loader); the process is `dataplane::process`.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Parser;

use dataplane::process::options::{
    DataplaneSettings, ExceptionPath, IdleMode, IoBackendKind, RxRing, ShmSetting, TxMethod,
};
use dataplane::process::{self, Options};
use espresso_core::config::Config;

/// A value parser for a `[dataplane]` keyword: `names` in `--help`, the
/// configuration file's own `FromStr` to read it.
fn keyword<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: std::str::FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names).try_map(|s| s.parse::<T>())
}

/// espresso dataplane: poll-mode IPsec gateway (AF_PACKET or DPDK ports).
///
/// Every option can also be given in the `[dataplane]` table of the
/// configuration file (`--config`); the command line wins.
#[derive(Parser, Debug)]
#[command(version, about, args_override_self = true)]
struct Args {
    /// Read options from the `[dataplane]` table of this TOML file (the
    /// control daemon's configuration file, checked as a whole); command-line
    /// options win.
    #[arg(long)]
    config: Option<PathBuf>,
    /// LAN ("inside") interface; with --backend dpdk, the DPDK port name
    /// (a vdev such as net_af_packet0, or a PCI address). Required.
    #[arg(long)]
    inside: Option<String>,
    /// WAN ("outside") interface; with --backend dpdk, the DPDK port name. Required.
    #[arg(long)]
    outside: Option<String>,
    /// Packet I/O backend: afpacket (Linux AF_PACKET rings on kernel
    /// interfaces, the default) or dpdk (DPDK ethdev ports: NICs bound to
    /// vfio-pci, or vdevs).
    #[arg(long, value_parser = keyword::<IoBackendKind>(IoBackendKind::NAMES))]
    backend: Option<IoBackendKind>,
    /// With --backend dpdk: EAL arguments, e.g. "-l 0 --no-huge -m 512
    /// --no-pci --no-shconf --vdev net_af_packet0,iface=lan".
    #[arg(long, allow_hyphen_values = true)]
    eal: Option<String>,
    /// With --backend dpdk: how ARP, IKE and ICMP to the gateway reach the
    /// kernel (tap: a TAP interface per port, the default; kernel: the kernel
    /// receives every frame itself, net_af_packet); one value for both ports
    /// or "INSIDE,OUTSIDE" (e.g. kernel,tap).
    #[arg(long, value_delimiter = ',', value_parser = keyword::<ExceptionPath>(ExceptionPath::NAMES))]
    exception: Option<Vec<ExceptionPath>>,
    /// With --exception tap: name of the inside port's TAP interface
    /// (default dp-inside).
    #[arg(long)]
    inside_tap: Option<String>,
    /// With --exception tap: name of the outside port's TAP interface
    /// (default dp-outside).
    #[arg(long)]
    outside_tap: Option<String>,
    /// With --backend dpdk: mbufs in the pool (default 0: sized for the queues).
    #[arg(long)]
    mbufs: Option<u32>,
    /// Cores to run workers on, one worker per core (e.g. "0" or "0,1";
    /// default 0).
    #[arg(long, value_delimiter = ',')]
    cores: Option<Vec<usize>>,
    /// Receive ring format (default v2).
    #[arg(long, value_parser = keyword::<RxRing>(RxRing::NAMES))]
    rx_ring: Option<RxRing>,
    /// Transmit method (default sendmmsg).
    #[arg(long, value_parser = keyword::<TxMethod>(TxMethod::NAMES))]
    tx: Option<TxMethod>,
    /// Packets per receive burst (default 32).
    #[arg(long)]
    burst: Option<usize>,
    /// Idle behaviour: busy (spin on the receive rings, the default: lowest
    /// latency) or backoff (sleep in poll(2) after a run of empty polls).
    #[arg(long, value_parser = keyword::<IdleMode>(IdleMode::NAMES))]
    idle: Option<IdleMode>,
    /// With --idle backoff: longest sleep in microseconds (default 200).
    #[arg(long)]
    idle_sleep_us: Option<u32>,
    /// V3 block retire timeout in milliseconds (default 1).
    #[arg(long)]
    v3_block_timeout_ms: Option<u32>,
    /// Frames per V2 receive ring (default 2048).
    #[arg(long)]
    frames: Option<u32>,
    /// Run workers with real-time FIFO priority PRIO (1-99; 0, the default:
    /// normal scheduling). For dedicated cores and benchmarks on busy machines.
    #[arg(long)]
    sched_fifo: Option<i32>,
    /// Write counters as JSON to this file every --stats-interval-ms.
    #[arg(long)]
    stats_file: Option<PathBuf>,
    /// Counter publication interval (default 500).
    #[arg(long)]
    stats_interval_ms: Option<u64>,
    /// Entries of each worker's cache of expanded keys (a power of two,
    /// 16..=1048576; default 1024). AES-GCM: 832 bytes an entry.
    #[arg(long)]
    key_cache_entries: Option<u32>,
    /// Static SAs and policies (JSON, mode 0600), for running without the
    /// control process (tests, benchmarks).
    #[arg(long)]
    static_sa: Option<PathBuf>,
    /// Shared-memory region of the control process (created 0600 if missing):
    /// SAs and policies come from there, counters go back. In [dataplane],
    /// `shm = true` is the daemon's region ([daemon] shm).
    #[arg(long)]
    shm: Option<PathBuf>,
    /// Exception path: a TUN device of this name carries decapsulated packets
    /// for the gateway itself to its kernel, and the kernel's own packets
    /// toward protected subnets into the tunnel (routes in table 220 for
    /// locally generated traffic are kept in line with the policies).
    #[arg(long)]
    tun: Option<String>,
    /// Crypto backend for SAs: auto (the default: the fastest compiled in
    /// per suite), rustcrypto, aws-lc, ring, multibuffer or ipsec-mb.
    #[arg(long)]
    crypto: Option<String>,
    /// Set up the kernel of this namespace for the dataplane first: IPv4/IPv6
    /// forwarding off, and nftables rules so that the kernel answers neither
    /// ESP nor ESP-in-UDP with ICMP errors, and drops its copies of transit
    /// packets early (nftables table `inet espresso_dp`).
    #[arg(long)]
    configure_kernel: bool,
}

impl Args {
    /// What the command line sets, in the configuration file's terms.
    fn settings(self) -> DataplaneSettings {
        DataplaneSettings {
            backend: self.backend,
            inside: self.inside,
            outside: self.outside,
            eal: self.eal,
            exception: self.exception,
            inside_tap: self.inside_tap,
            outside_tap: self.outside_tap,
            mbufs: self.mbufs,
            cores: self.cores,
            rx_ring: self.rx_ring,
            tx: self.tx,
            burst: self.burst,
            idle: self.idle,
            idle_sleep_us: self.idle_sleep_us,
            v3_block_timeout_ms: self.v3_block_timeout_ms,
            frames: self.frames,
            sched_fifo: self.sched_fifo,
            stats_file: self.stats_file,
            stats_interval_ms: self.stats_interval_ms,
            key_cache_entries: self.key_cache_entries,
            static_sa: self.static_sa,
            shm: self.shm.map(ShmSetting::Path),
            tun: self.tun,
            crypto: self.crypto,
            configure_kernel: self.configure_kernel.then_some(true),
        }
    }
}

/// The options: the command line over `--config`'s `[dataplane]`.
fn options() -> Result<Options, String> {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => return Err(e.to_string()),
    };
    let config = match &args.config {
        Some(path) => {
            Some(Config::load(path).map_err(|e| format!("--config {}:\n{e}", path.display()))?)
        }
        None => None,
    };
    Options::resolve(args.settings(), config.as_ref()).map_err(|e| e.to_string())
}

/// `--print-man-page` / `--print-completions SHELL` (used by scripts/package.sh):
/// the man page and shell completions generated from the clap definition.
fn generated_docs() -> Option<ExitCode> {
    use clap::CommandFactory;
    let a: Vec<String> = std::env::args().collect();
    let mut cmd = Args::command().name("espresso-dataplane");
    let mut out = std::io::stdout();
    match a.get(1).map(String::as_str) {
        Some("--print-man-page") => {
            let r = clap_mangen::Man::new(cmd).section("8").render(&mut out);
            Some(if r.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some("--print-completions") => {
            let shell: clap_complete::Shell = a.get(2)?.parse().ok()?;
            clap_complete::generate(shell, &mut cmd, "espresso-dataplane", &mut out);
            Some(ExitCode::SUCCESS)
        }
        _ => None,
    }
}

fn main() -> ExitCode {
    if let Some(c) = generated_docs() {
        return c;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("espresso-dataplane: {e}");
            return ExitCode::from(2);
        }
    };
    match process::run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("espresso-dataplane: {e}");
            ExitCode::FAILURE
        }
    }
}
