//! Distinguished names: espresso-core's (`espresso_core::config::dn`, the
//! configuration's identities and `rightca` use them), re-exported for the
//! certificate code.

pub use espresso_core::config::dn::*;
