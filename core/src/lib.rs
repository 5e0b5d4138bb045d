//! espresso-core: what the control process (`espresso`) and the dataplane
//! (`espresso-dataplane`) share, below both of them. Nothing here does packet
//! I/O or runs threads; it has no dependency on either process's crate.
//!
//! - [`alg`]: the one algorithm table (ESP and IKE algorithms, spellings,
//!   sizes, IANA ids) and proposal strings.
//! - [`key`]: [`key::Key`], secret bytes zeroized on drop.
//! - [`sa`]: SA parameters, policies and SA events (what control sends and
//!   the dataplane reports).
//! - [`drop`]: why a packet was dropped ([`drop::DropReason`]).
//! - [`shm`]: the shared-memory channel between the two processes (the only
//!   module here with `unsafe`, each block with a `// SAFETY:` comment).
//! - [`config`]: the configuration file and its loader (every table,
//!   `[daemon]` and `[dataplane]` included), read by both processes.

pub mod alg;
pub mod config;
pub mod drop;
pub mod key;
pub mod sa;
// The shared-memory mapping, its atomics and OFD locks: every `unsafe`
// block has a `// SAFETY:` comment (clippy::undocumented_unsafe_blocks).
#[allow(unsafe_code)]
pub mod shm;
