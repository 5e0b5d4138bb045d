//! espresso dataplane library: the ESP engine (no I/O) plus the pieces the
//! dataplane process is built from.
//!
//! Layout (a reader finds things by folder name):
//! - [`wire`]: zero-copy typed views over packet bytes (IPv4/6, UDP, ESP, ICMP).
//! - [`crypto`]: ESP cipher suites behind one trait; the implementation is chosen
//!   once when an SA is installed.
//! - [`sa`]: SA parameters, the runtime SA, SAD (by SPI), SPD (by selectors),
//!   anti-replay window, lifetimes.
//! - [`esp`]: burst encap/decap: buffers in, buffers + verdicts out.
//! - [`reasm`]: bounded reassembly of IP fragments of ESP / ESP-in-UDP
//!   arriving on the WAN (RFC 4303 §3.4.1), before decap.
//! - [`pkt`]: the packet-buffer trait the engine works on (AF_PACKET frames, DPDK
//!   mbufs, heap buffers in tests).
//! - `io/`, `worker/`, `process/` (feature `io`, on by default): the
//!   dataplane process (backends, poll loop, kernel set-up, static SAs,
//!   counters file); `main.rs` only parses the command line.
//! - [`drop`], [`shm`] and the SA/policy parameters in [`sa`] come from
//!   `espresso-core` (shared with the control process) and are re-exported.

pub mod crypto;
pub mod esp;
// Packet I/O: AF_PACKET mmap rings, TUN, DPDK mbufs (every `unsafe` block
// with a `// SAFETY:` comment).
#[cfg(feature = "io")]
#[allow(unsafe_code)]
pub mod io;
pub mod pkt;
#[cfg(feature = "io")]
pub mod process;
pub mod reasm;
pub mod sa;
pub mod wire;
#[cfg(feature = "io")]
pub mod worker;

// The types shared with the control process live in espresso-core; these
// re-exports keep the dataplane's paths (`dataplane::drop::DropReason`,
// `dataplane::shm::DataplaneEnd`) working.
pub use espresso_core::{drop, shm};
