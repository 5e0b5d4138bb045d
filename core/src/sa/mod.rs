//! What the control process decides about SAs and policies, and what the
//! dataplane reports back: SA parameters ([`SaParams`]), outbound policies
//! ([`Policy`]) and SA events ([`SaEvent`]). The runtime SA, SAD and SPD
//! are the dataplane's (`dataplane::sa`).

#![forbid(unsafe_code)]

pub mod params;
pub mod policy;

pub use params::*;
pub use policy::*;
