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
//! - [`pkt`]: the packet-buffer trait the engine works on (AF_PACKET frames, DPDK
//!   mbufs, heap buffers in tests).
//! - `io/`, `worker/`, `shm/`: the dataplane process (backends, poll loop,
//!   shared-memory channel to the control process).

pub mod crypto;
pub mod drop;
pub mod esp;
pub mod io;
pub mod pkt;
pub mod sa;
pub mod shm;
pub mod wire;
pub mod worker;
