//! Security associations: parameters, runtime state, SAD (inbound by SPI),
//! SPD (outbound by selectors), anti-replay window, lifetimes, events.

#![forbid(unsafe_code)]

mod drops;
pub mod replay;
mod runtime;
pub mod sad;
pub mod selector;
pub mod spd;

// SA parameters, policies and events are shared with the control process
// (espresso-core); re-exported so that `dataplane::sa::SaParams` keeps working.
pub use drops::{sa_drop_slot, FOLD_AT, FOLD_CHUNK, FOLD_PERIOD, SA_DROP_SLOTS};
pub use espresso_core::sa::{params, policy};
pub use params::*;
pub use policy::*;
pub use replay::{ReplayError, ReplayWindow};
pub use runtime::{sa_struct_parts, DropCounters, Sa, SaCounters, SaCountersRef, SaError};
pub use sad::{FoldStep, Sad, SadOp, SadTable};
pub use selector::{CompiledSelector, FlowKey};
pub use spd::{Spd, SpdTable};
