//! Bindings to the system DPDK 22.11 and a thin safe layer over them.
//!
//! * [`sys`]: bindgen output over the DPDK headers (EAL, lcore, log, errno,
//!   ethdev, mempool/mbuf, ring, vdev) plus the C shim (`shim/shim.c`) that
//!   exports DPDK's `static inline` fast-path functions.
//! * The safe layer: [`Eal`] (start-up once per process, lcores, vdevs),
//!   [`Mempool`], [`Mbuf`] and [`MbufBurst`], [`Port`] with [`RxQueue`] and
//!   [`TxQueue`], [`Ring`].
//!
//! ```no_run
//! use ffi::{Eal, Mempool, MbufBurst, Port, PortConfig};
//! let eal = Eal::init(["--no-huge", "-m", "512", "--no-pci", "--no-shconf",
//!                      "--vdev", "net_ring0"])?;
//! let pool = Mempool::create(&eal, "pool", 8191, 256, ffi::DEFAULT_DATA_ROOM, None)?;
//! let mut port = Port::configure_by_name(&eal, "net_ring0", &PortConfig::default(), pool)?;
//! port.start()?;
//! let (mut rx, mut tx) = (port.rx_queue(0)?, port.tx_queue(0)?);
//! let mut burst: MbufBurst = MbufBurst::new();
//! rx.rx_burst(&mut burst);
//! tx.tx_burst_or_free(&mut burst);
//! # Ok::<(), ffi::DpdkError>(())
//! ```

// Bindings to C: `unsafe` is this crate's job; every block has a
// `// SAFETY:` comment (clippy::undocumented_unsafe_blocks).
#![allow(unsafe_code)]

/// Raw bindgen output over the DPDK headers plus the C shim.
#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    missing_docs,
    unsafe_op_in_unsafe_fn,
    unused_qualifications
)]
#[allow(clippy::all, clippy::undocumented_unsafe_blocks)]
pub mod sys {
    include!(concat!(env!("OUT_DIR"), "/dpdk_bindings.rs"));
}

mod eal;
mod error;
mod mbuf;
mod mempool;
mod port;
mod ring;

pub use eal::{Eal, LcoreJob, LogLevel, ThreadRegistration};
pub use error::{DpdkError, Errno, Result};
pub use mbuf::{Drain, Mbuf, MbufBurst, BURST};
pub use mempool::{Mempool, DEFAULT_DATA_ROOM, DEFAULT_HEADROOM};
pub use port::{
    dev_info, port_by_name, port_ids, port_name, rss, DevInfo, LinkStatus, MacAddr, Port,
    PortConfig, PortStats, RxQueue, TxQueue, QUEUE_STAT_COUNTERS,
};
pub use ring::{port_from_rings, Ring};
