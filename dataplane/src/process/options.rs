//! The dataplane's options, resolved: the command line over the
//! `[dataplane]` table of `--config FILE` (read by the one configuration
//! loader, `espresso_core::config`), over the defaults below.

use std::path::PathBuf;

pub use espresso_core::config::dataplane::{
    DataplaneSettings, ExceptionPath, IdleMode, IoBackendKind, RxRing, ShmSetting, TxMethod,
};
use espresso_core::config::Config;

use crate::crypto::Backend;

/// Every option of the dataplane process, with its value.
#[derive(Clone, Debug)]
pub struct Options {
    /// LAN interface (DPDK: port name).
    pub inside: String,
    /// WAN interface (DPDK: port name).
    pub outside: String,
    /// Packet I/O backend (default AF_PACKET).
    pub backend: IoBackendKind,
    /// DPDK EAL arguments (default none).
    pub eal: String,
    /// DPDK exception path per port: one mode for both, or inside, outside (default TAP).
    pub exception: Vec<ExceptionPath>,
    /// TAP interface of the inside port (default `dp-inside`).
    pub inside_tap: String,
    /// TAP interface of the outside port (default `dp-outside`).
    pub outside_tap: String,
    /// DPDK mbufs (0, the default: sized for the queues).
    pub mbufs: u32,
    /// Cores, one worker each (default core 0).
    pub cores: Vec<usize>,
    /// AF_PACKET receive ring format (default V2).
    pub rx_ring: RxRing,
    /// AF_PACKET transmit method (default sendmmsg).
    pub tx: TxMethod,
    /// Packets per receive burst (default 32).
    pub burst: usize,
    /// Idle behaviour (default busy polling).
    pub idle: IdleMode,
    /// Longest idle sleep with backoff, microseconds (default 200).
    pub idle_sleep_us: u32,
    /// TPACKET_V3 block retire timeout, milliseconds (default 1).
    pub v3_block_timeout_ms: u32,
    /// Frames per TPACKET_V2 receive ring (default 2048).
    pub frames: u32,
    /// SCHED_FIFO priority of the workers (default 0: normal scheduling).
    pub sched_fifo: i32,
    /// Counters file.
    pub stats_file: Option<PathBuf>,
    /// Counters file interval, milliseconds (default 500).
    pub stats_interval_ms: u64,
    /// Entries of each worker's cache of expanded keys (default
    /// `crypto::key_cache::DEFAULT_ENTRIES`).
    pub key_cache_entries: usize,
    /// Static SA file.
    pub static_sa: Option<PathBuf>,
    /// Shared-memory region of the control process.
    pub shm: Option<PathBuf>,
    /// TUN exception path device.
    pub tun: Option<String>,
    /// Crypto backend for SAs (default auto).
    pub crypto: Backend,
    /// Set up the namespace's kernel first.
    pub configure_kernel: bool,
}

/// Why the options do not make a dataplane.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// A required option is missing.
    #[error("missing --{0} (or {0} in [dataplane] of --config)")]
    Missing(&'static str),
    /// `--crypto` names no backend of this build.
    #[error("--crypto {0}: unknown backend (this build has: auto, {1})")]
    Crypto(String, String),
    /// `shm = true` without a configuration file.
    #[error("shm = true needs the [daemon] table of --config")]
    ShmWithoutConfig,
    /// `--exception` with neither one mode nor two.
    #[error("--exception: one mode or two (inside,outside), got {0}")]
    Exception(usize),
}

impl Options {
    /// `cli` (what the command line gives) over `file`'s `[dataplane]` table,
    /// over the defaults.
    pub fn resolve(cli: DataplaneSettings, file: Option<&Config>) -> Result<Options, OptionsError> {
        let from_file = file.map(|c| c.dataplane.clone()).unwrap_or_default();
        let s = cli.overlay(from_file);
        let shm = match s.shm {
            None | Some(ShmSetting::Off) => None,
            Some(ShmSetting::Path(p)) => Some(p),
            Some(ShmSetting::Daemon) => Some(
                file.ok_or(OptionsError::ShmWithoutConfig)?
                    .daemon
                    .shm
                    .clone(),
            ),
        };
        let crypto = match s.crypto.as_deref() {
            None => Backend::Auto,
            Some(name) => Backend::from_name(name)
                .filter(|b| *b == Backend::Auto || Backend::compiled().contains(b))
                .ok_or_else(|| {
                    let have: Vec<&str> = Backend::compiled().iter().map(|b| b.name()).collect();
                    OptionsError::Crypto(name.to_string(), have.join(", "))
                })?,
        };
        let exception = s.exception.unwrap_or_else(|| vec![ExceptionPath::Tap]);
        if exception.is_empty() || exception.len() > 2 {
            return Err(OptionsError::Exception(exception.len()));
        }
        Ok(Options {
            inside: s.inside.ok_or(OptionsError::Missing("inside"))?,
            outside: s.outside.ok_or(OptionsError::Missing("outside"))?,
            backend: s.backend.unwrap_or(IoBackendKind::Afpacket),
            eal: s.eal.unwrap_or_default(),
            exception,
            inside_tap: s.inside_tap.unwrap_or_else(|| "dp-inside".into()),
            outside_tap: s.outside_tap.unwrap_or_else(|| "dp-outside".into()),
            mbufs: s.mbufs.unwrap_or(0),
            cores: s.cores.unwrap_or_else(|| vec![0]),
            rx_ring: s.rx_ring.unwrap_or(RxRing::V2),
            tx: s.tx.unwrap_or(TxMethod::Sendmmsg),
            burst: s.burst.unwrap_or(32),
            idle: s.idle.unwrap_or(IdleMode::Busy),
            idle_sleep_us: s.idle_sleep_us.unwrap_or(200),
            v3_block_timeout_ms: s.v3_block_timeout_ms.unwrap_or(1),
            frames: s.frames.unwrap_or(2048),
            sched_fifo: s.sched_fifo.unwrap_or(0),
            stats_file: s.stats_file,
            stats_interval_ms: s.stats_interval_ms.unwrap_or(500),
            key_cache_entries: s
                .key_cache_entries
                .map_or(crate::crypto::key_cache::DEFAULT_ENTRIES, |n| n as usize),
            static_sa: s.static_sa,
            shm,
            tun: s.tun,
            crypto,
            configure_kernel: s.configure_kernel.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_crypto_backend_name_is_known_to_the_config_loader() {
        use espresso_core::config::dataplane::CRYPTO_BACKENDS;
        for b in Backend::compiled().iter().chain([&Backend::Auto]) {
            assert!(CRYPTO_BACKENDS.contains(&b.name()), "{}", b.name());
            assert_eq!(Backend::from_name(b.name()), Some(*b));
        }
        for n in CRYPTO_BACKENDS {
            assert!(Backend::from_name(n).is_some(), "{n}");
        }
        assert_eq!(Backend::from_name("AwsLc"), Some(Backend::AwsLc));
    }

    #[test]
    fn command_line_over_file_over_defaults() {
        let cli = DataplaneSettings {
            inside: Some("lan".into()),
            cores: Some(vec![2]),
            ..Default::default()
        };
        let o = Options::resolve(cli.clone(), None).unwrap_err();
        assert_eq!(o, OptionsError::Missing("outside"));
        let full = DataplaneSettings {
            outside: Some("wan".into()),
            ..cli
        };
        let o = Options::resolve(full, None).unwrap();
        assert_eq!((o.inside.as_str(), o.outside.as_str()), ("lan", "wan"));
        assert_eq!(o.cores, vec![2]);
        assert_eq!(o.backend, IoBackendKind::Afpacket);
        assert_eq!(o.burst, 32);
        assert_eq!(o.exception, vec![ExceptionPath::Tap]);
        assert_eq!(o.crypto, Backend::Auto);
        assert_eq!(o.shm, None);
        let bad = DataplaneSettings {
            inside: Some("a".into()),
            outside: Some("b".into()),
            crypto: Some("openssl".into()),
            ..Default::default()
        };
        assert!(matches!(
            Options::resolve(bad, None),
            Err(OptionsError::Crypto(..))
        ));
    }
}
