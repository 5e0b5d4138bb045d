//! IKE connections as the engine runs them: espresso-core's typed
//! connection ([`ConnectionConfig`], `espresso_core::config::ike`), which the
//! configuration loader builds, with the credentials its authentication
//! configuration names loaded ([`LocalAuth`], [`RemoteAuth`]: keys,
//! certificates, trust stores; core holds only their paths). The rest of
//! core's connection types are re-exported so that `ike::config::{Identity,
//! ...}` keep working.

use std::ops::{Deref, DerefMut};

/// A connection as configured (core's model: paths and strings for the
/// authentication).
pub use espresso_core::config::ike::Connection as ConnectionConfig;
pub use espresso_core::config::ike::*;
use espresso_core::config::ConfigError;

use super::auth_config::{self, LocalAuth, RemoteAuth};

/// A checked IKE connection with its credentials loaded. Reads and writes
/// of the configured values go to the [`ConnectionConfig`] it wraps.
#[derive(Clone, Debug)]
pub struct Connection {
    cfg: ConnectionConfig,
    /// How we authenticate (default: the pre-shared key).
    pub local_auth: LocalAuth,
    /// How the peer must authenticate (default: the pre-shared key).
    pub remote_auth: RemoteAuth,
}

impl Deref for Connection {
    type Target = ConnectionConfig;
    fn deref(&self) -> &ConnectionConfig {
        &self.cfg
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut ConnectionConfig {
        &mut self.cfg
    }
}

impl Connection {
    /// A connection with defaults and the pre-shared key both ways.
    pub fn new(name: &str, local: LocalAddr, remote: RemoteAddr, psk: &[u8]) -> Self {
        Connection {
            cfg: ConnectionConfig::new(name, local, remote, psk),
            local_auth: LocalAuth::Psk,
            remote_auth: RemoteAuth::Psk,
        }
    }

    /// A configured connection with the keys, certificates and trust
    /// stores its authentication names loaded (errors at the values that
    /// name them).
    pub fn load(cfg: ConnectionConfig) -> Result<Self, Vec<ConfigError>> {
        let (local_auth, remote_auth) = auth_config::load(&cfg.auth)?;
        Ok(Connection {
            cfg,
            local_auth,
            remote_auth,
        })
    }

    /// The configured connection.
    pub fn config(&self) -> &ConnectionConfig {
        &self.cfg
    }

    /// Checks the values that do not depend on other connections, and that
    /// our certificate is for our key and carries our identity.
    pub fn validate(&self) -> Result<(), ConnectionError> {
        let psk_used = matches!(self.local_auth, LocalAuth::Psk)
            || matches!(self.remote_auth, RemoteAuth::Psk);
        self.cfg.validate_as(psk_used)?;
        let e = |why: String| {
            Err(ConnectionError {
                name: self.name.clone(),
                why,
            })
        };
        if let Err(why) = self.local_auth.check_cert(self.local_id.as_ref()) {
            return e(why);
        }
        Ok(())
    }
}
