//! Typed errors of the safe layer.

use std::ffi::CStr;

use crate::sys;

/// A DPDK error number (`rte_errno` or a negative return value) with DPDK's
/// text for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Errno {
    /// The positive error number (an `errno` value or one of DPDK's `E_RTE_*`).
    pub code: i32,
    /// `rte_strerror(code)`.
    pub text: String,
}

impl Errno {
    /// The error number `code` (sign ignored) with its text.
    pub fn new(code: i32) -> Self {
        let code = code.saturating_abs();
        // SAFETY: rte_strerror accepts any int and returns a pointer to a
        // static or thread-local NUL-terminated string, valid until the next
        // call on this thread; we copy it out at once.
        let text = unsafe {
            let p = sys::rte_strerror(code);
            if p.is_null() {
                format!("error {code}")
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        Errno { code, text }
    }

    /// The current thread's `rte_errno`.
    pub fn last() -> Self {
        // SAFETY: reads the per-lcore (thread-local) rte_errno through the shim.
        Self::new(unsafe { sys::espresso_rte_errno() })
    }
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (errno {})", self.text, self.code)
    }
}

/// Errors of the DPDK safe layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpdkError {
    /// `Eal::init` was called after the EAL had been started in this process.
    #[error("the DPDK EAL is already initialised in this process (EAL init is once per process)")]
    AlreadyInitialized,
    /// Another thread is initialising the EAL right now.
    #[error("the DPDK EAL is being initialised by another thread")]
    InitInProgress,
    /// An argument cannot be passed to DPDK.
    #[error("invalid {what}: {value:?} ({why})")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// Its value.
        value: String,
        /// Why it is refused.
        why: &'static str,
    },
    /// `rte_eal_init` failed.
    #[error("EAL initialisation with arguments {args:?} failed: {errno}")]
    EalInit {
        /// The arguments given (without the program name).
        args: Vec<String>,
        /// DPDK's error.
        errno: Errno,
    },
    /// No ethdev port has this name.
    #[error("no DPDK port named {0:?}")]
    NoSuchPort(String),
    /// The port id is not a valid, probed port.
    #[error("port id {0} is not a valid DPDK port")]
    InvalidPort(u16),
    /// More queues requested than the device supports.
    #[error("port {port} ({driver}): {requested} {kind} queues requested, device supports {max}")]
    TooManyQueues {
        /// Port id.
        port: u16,
        /// Driver name.
        driver: String,
        /// "rx" or "tx".
        kind: &'static str,
        /// Requested count.
        requested: u16,
        /// Device maximum.
        max: u16,
    },
    /// RSS was requested over several queues but the device hashes none of
    /// the requested flow types.
    #[error(
        "port {port} ({driver}): RSS over {queues} rx queues requested with hash types {requested:#x}, device supports {supported:#x}"
    )]
    RssUnsupported {
        /// Port id.
        port: u16,
        /// Driver name.
        driver: String,
        /// Number of rx queues.
        queues: u16,
        /// Requested `RTE_ETH_RSS_*` bits.
        requested: u64,
        /// Bits the device supports.
        supported: u64,
    },
    /// A port operation failed.
    #[error("port {port}: {op} failed: {errno}")]
    Port {
        /// Port id.
        port: u16,
        /// The DPDK call.
        op: &'static str,
        /// DPDK's error.
        errno: Errno,
    },
    /// A queue is already held by another handle.
    #[error("port {port}: {kind} queue {queue} is already in use (or does not exist)")]
    QueueUnavailable {
        /// Port id.
        port: u16,
        /// "rx" or "tx".
        kind: &'static str,
        /// Queue index.
        queue: u16,
    },
    /// The port cannot be stopped or reconfigured while queue handles exist.
    #[error("port {port}: {op} refused while {held} queue handle(s) are held")]
    QueuesHeld {
        /// Port id.
        port: u16,
        /// The refused operation.
        op: &'static str,
        /// Queue handles alive.
        held: usize,
    },
    /// Creating a mempool failed.
    #[error("mempool {name:?} ({count} mbufs of {data_room} bytes): {errno}")]
    Mempool {
        /// Pool name.
        name: String,
        /// Requested number of mbufs.
        count: u32,
        /// Requested data room.
        data_room: u16,
        /// DPDK's error.
        errno: Errno,
    },
    /// Creating a ring failed.
    #[error("ring {name:?} of {size} slots: {errno}")]
    Ring {
        /// Ring name.
        name: String,
        /// Requested size.
        size: u32,
        /// DPDK's error.
        errno: Errno,
    },
    /// Creating or removing a virtual device failed.
    #[error("virtual device {name:?} (args {args:?}): {op} failed: {errno}")]
    Vdev {
        /// Device name.
        name: String,
        /// Device arguments.
        args: String,
        /// "rte_vdev_init", "rte_vdev_uninit" or "rte_eth_from_rings".
        op: &'static str,
        /// DPDK's error.
        errno: Errno,
    },
    /// Launching a function on an lcore failed.
    #[error("lcore {lcore}: {op} failed: {errno}")]
    Lcore {
        /// The lcore id.
        lcore: u32,
        /// The DPDK call.
        op: &'static str,
        /// DPDK's error.
        errno: Errno,
    },
}

/// Result alias of the safe layer.
pub type Result<T, E = DpdkError> = std::result::Result<T, E>;
