//! `[dataplane]`: the options of `espresso-dataplane --config FILE`, so that
//! one file describes the whole gateway. Every key is the dataplane's long
//! option of the same name (written with `_` or `-`); options given on its
//! command line win over the file. The loader checks it like every other
//! table (`loader::settings`), so `espresso check` refuses what the
//! dataplane would refuse.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Declares a `[dataplane]` value keyword enum: variants, their spelling,
/// `FromStr`, `Display`, and the list of spellings (for `--help` and errors).
macro_rules! keyword_enum {
    ($(#[$m:meta])* $name:ident { $( $(#[$vm:meta])* $v:ident => $s:literal, )* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $( $(#[$vm])* $v, )* }

        impl $name {
            /// Every spelling, in declaration order.
            pub const NAMES: &'static [&'static str] = &[ $( $s, )* ];
            /// The spelling of this value.
            pub const fn name(self) -> &'static str {
                match self { $( $name::$v => $s, )* }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.to_ascii_lowercase().as_str() {
                    $( $s => Ok($name::$v), )*
                    _ => Err(format!("\"{s}\": expected {}", Self::NAMES.join(", "))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

keyword_enum! {
    /// Packet I/O backend (`backend`).
    IoBackendKind {
        /// Linux AF_PACKET rings on kernel interfaces.
        Afpacket => "afpacket",
        /// DPDK ethdev ports (NICs bound to vfio-pci, or vdevs).
        Dpdk => "dpdk",
    }
}

keyword_enum! {
    /// How ARP, IKE and ICMP to the gateway reach the kernel with DPDK ports
    /// (`exception`).
    ExceptionPath {
        /// A TAP interface per port carries them to the kernel.
        Tap => "tap",
        /// The kernel receives every frame itself (net_af_packet).
        Kernel => "kernel",
    }
}

keyword_enum! {
    /// AF_PACKET receive ring format (`rx_ring`).
    RxRing {
        /// TPACKET_V2: one frame per slot.
        V2 => "v2",
        /// TPACKET_V3: blocks of frames.
        V3 => "v3",
    }
}

keyword_enum! {
    /// AF_PACKET transmit method (`tx`).
    TxMethod {
        /// sendmmsg(2) batches.
        Sendmmsg => "sendmmsg",
        /// A TX ring (PACKET_TX_RING).
        Ring => "ring",
    }
}

keyword_enum! {
    /// What a worker does when its queues are empty (`idle`).
    IdleMode {
        /// Spin on the receive rings (lowest latency).
        Busy => "busy",
        /// Sleep in poll(2) after a run of empty polls.
        Backoff => "backoff",
    }
}

/// Crypto backend names `crypto` accepts (`auto` or one library; the
/// dataplane refuses a library it was built without).
pub const CRYPTO_BACKENDS: &[&str] = &[
    "auto",
    "rustcrypto",
    "aws-lc",
    "awslc",
    "ring",
    "multibuffer",
    "ipsec-mb",
    "ipsecmb",
];

/// Where the dataplane finds the control process's shared-memory region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShmSetting {
    /// `shm = true`: the daemon's region (`[daemon] shm`).
    Daemon,
    /// `shm = "PATH"`.
    Path(PathBuf),
    /// `shm = false`: no control process (static SAs).
    Off,
}

/// The `[dataplane]` table: each field is `None` when the file does not set
/// it (the dataplane's default, or its command line, applies).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataplaneSettings {
    /// Packet I/O backend.
    pub backend: Option<IoBackendKind>,
    /// LAN interface (DPDK: port name or PCI address).
    pub inside: Option<String>,
    /// WAN interface (DPDK: port name or PCI address).
    pub outside: Option<String>,
    /// DPDK EAL arguments.
    pub eal: Option<String>,
    /// DPDK exception path: one mode for both ports, or inside and outside.
    pub exception: Option<Vec<ExceptionPath>>,
    /// TAP interface of the inside port.
    pub inside_tap: Option<String>,
    /// TAP interface of the outside port.
    pub outside_tap: Option<String>,
    /// DPDK mbufs in the pool (0: sized for the queues).
    pub mbufs: Option<u32>,
    /// Cores, one worker each.
    pub cores: Option<Vec<usize>>,
    /// AF_PACKET receive ring format.
    pub rx_ring: Option<RxRing>,
    /// AF_PACKET transmit method.
    pub tx: Option<TxMethod>,
    /// Packets per receive burst.
    pub burst: Option<usize>,
    /// Idle behaviour.
    pub idle: Option<IdleMode>,
    /// Longest idle sleep, microseconds.
    pub idle_sleep_us: Option<u32>,
    /// TPACKET_V3 block retire timeout, milliseconds.
    pub v3_block_timeout_ms: Option<u32>,
    /// Frames per TPACKET_V2 receive ring.
    pub frames: Option<u32>,
    /// SCHED_FIFO priority of the workers (0: normal scheduling).
    pub sched_fifo: Option<i32>,
    /// Counters as JSON to this file.
    pub stats_file: Option<PathBuf>,
    /// Interval of the stats file, milliseconds.
    pub stats_interval_ms: Option<u64>,
    /// Static SAs and policies (JSON, 0600).
    pub static_sa: Option<PathBuf>,
    /// The control process's region.
    pub shm: Option<ShmSetting>,
    /// TUN device of the exception path for the gateway's own traffic.
    pub tun: Option<String>,
    /// Crypto backend for SAs (one of [`CRYPTO_BACKENDS`]).
    pub crypto: Option<String>,
    /// Entries of each worker's cache of expanded keys (a power of two).
    pub key_cache_entries: Option<u32>,
    /// Set up the namespace's kernel (forwarding off, nftables rules).
    pub configure_kernel: Option<bool>,
}

impl DataplaneSettings {
    /// These settings, with `under`'s wherever these have none (the command
    /// line over the file).
    pub fn overlay(self, under: DataplaneSettings) -> DataplaneSettings {
        DataplaneSettings {
            backend: self.backend.or(under.backend),
            inside: self.inside.or(under.inside),
            outside: self.outside.or(under.outside),
            eal: self.eal.or(under.eal),
            exception: self.exception.or(under.exception),
            inside_tap: self.inside_tap.or(under.inside_tap),
            outside_tap: self.outside_tap.or(under.outside_tap),
            mbufs: self.mbufs.or(under.mbufs),
            cores: self.cores.or(under.cores),
            rx_ring: self.rx_ring.or(under.rx_ring),
            tx: self.tx.or(under.tx),
            burst: self.burst.or(under.burst),
            idle: self.idle.or(under.idle),
            idle_sleep_us: self.idle_sleep_us.or(under.idle_sleep_us),
            v3_block_timeout_ms: self.v3_block_timeout_ms.or(under.v3_block_timeout_ms),
            frames: self.frames.or(under.frames),
            sched_fifo: self.sched_fifo.or(under.sched_fifo),
            stats_file: self.stats_file.or(under.stats_file),
            stats_interval_ms: self.stats_interval_ms.or(under.stats_interval_ms),
            static_sa: self.static_sa.or(under.static_sa),
            shm: self.shm.or(under.shm),
            tun: self.tun.or(under.tun),
            crypto: self.crypto.or(under.crypto),
            key_cache_entries: self.key_cache_entries.or(under.key_cache_entries),
            configure_kernel: self.configure_kernel.or(under.configure_kernel),
        }
    }

    /// The options the file sets, as `key = value` (for `espresso check`).
    pub fn summary(&self) -> Vec<String> {
        let mut v = Vec::new();
        let mut put = |k: &str, x: Option<String>| {
            if let Some(x) = x {
                v.push(format!("{k} = {x}"));
            }
        };
        let list = |l: &[String]| l.join(",");
        put("backend", self.backend.map(|x| x.to_string()));
        put("inside", self.inside.clone());
        put("outside", self.outside.clone());
        put("eal", self.eal.clone());
        put(
            "exception",
            self.exception
                .as_ref()
                .map(|l| list(&l.iter().map(|x| x.to_string()).collect::<Vec<_>>())),
        );
        put("inside_tap", self.inside_tap.clone());
        put("outside_tap", self.outside_tap.clone());
        put("mbufs", self.mbufs.map(|x| x.to_string()));
        put(
            "cores",
            self.cores
                .as_ref()
                .map(|l| list(&l.iter().map(|x| x.to_string()).collect::<Vec<_>>())),
        );
        put("rx_ring", self.rx_ring.map(|x| x.to_string()));
        put("tx", self.tx.map(|x| x.to_string()));
        put("burst", self.burst.map(|x| x.to_string()));
        put("idle", self.idle.map(|x| x.to_string()));
        put("idle_sleep_us", self.idle_sleep_us.map(|x| x.to_string()));
        put(
            "v3_block_timeout_ms",
            self.v3_block_timeout_ms.map(|x| x.to_string()),
        );
        put("frames", self.frames.map(|x| x.to_string()));
        put("sched_fifo", self.sched_fifo.map(|x| x.to_string()));
        put(
            "stats_file",
            self.stats_file.as_ref().map(|p| p.display().to_string()),
        );
        put(
            "stats_interval_ms",
            self.stats_interval_ms.map(|x| x.to_string()),
        );
        put(
            "key_cache_entries",
            self.key_cache_entries.map(|x| x.to_string()),
        );
        put(
            "static_sa",
            self.static_sa.as_ref().map(|p| p.display().to_string()),
        );
        put(
            "shm",
            self.shm.as_ref().map(|s| match s {
                ShmSetting::Daemon => "true (the daemon's region)".to_string(),
                ShmSetting::Path(p) => p.display().to_string(),
                ShmSetting::Off => "false".to_string(),
            }),
        );
        put("tun", self.tun.clone());
        put("crypto", self.crypto.clone());
        put(
            "configure_kernel",
            self.configure_kernel.map(|x| x.to_string()),
        );
        v
    }
}
