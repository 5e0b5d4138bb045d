//! espresso-core: what the control process (`espresso`) and the dataplane
//! (`espresso-dataplane`) share, below both of them. Nothing here does packet
//! I/O or runs threads; it has no dependency on either process's crate.
//!
//! - [`alg`]: the ESP algorithms and suites.
//! - [`key`]: [`key::Key`], secret bytes zeroized on drop.
//! - [`sa`]: SA parameters, policies and SA events (what control sends and
//!   the dataplane reports).
//! - [`drop`]: why a packet was dropped ([`drop::DropReason`]).
//! - [`shm`]: the shared-memory channel between the two processes (the only
//!   module here with `unsafe`, each block with a `// SAFETY:` comment).

pub mod alg;
pub mod drop;
pub mod key;
pub mod sa;
pub mod shm;
