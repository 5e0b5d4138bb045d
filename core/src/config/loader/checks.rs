//! Checks across tables: names unique among tunnels, policy rules and
//! connections; SPIs and AEAD keys not shared between running tunnels.

use std::collections::HashMap;
use std::path::Path;

use super::Loader;
use crate::config::connection::IkeConn;
use crate::config::error::ConfigError;
use crate::config::model::{PolicyRule, StartMode, Tunnel};
use crate::sa::Direction;

impl Loader {
    pub(super) fn cross_checks(
        &mut self,
        tunnels: &[Tunnel],
        policies: &[PolicyRule],
        conns: &[IkeConn],
    ) {
        let mut names: HashMap<&str, (&Path, usize)> = HashMap::new();
        let mut dup = Vec::new();
        for (n, f, l) in tunnels
            .iter()
            .map(|t| (t.name.as_str(), t.file.as_path(), t.line))
            .chain(
                policies
                    .iter()
                    .map(|p| (p.name.as_str(), p.file.as_path(), p.line)),
            )
            .chain(
                conns
                    .iter()
                    .map(|c| (c.name.as_str(), c.file.as_path(), c.line)),
            )
        {
            if let Some((pf, pl)) = names.get(n) {
                dup.push(ConfigError {
                    file: f.to_path_buf(),
                    line: Some(l),
                    field: Some("name".into()),
                    value: Some(format!("{n:?}")),
                    message: format!("name already used at {}:{pl}", pf.display()),
                });
            } else {
                names.insert(n, (f, l));
            }
        }
        self.errors.extend(dup);
        let active = || tunnels.iter().filter(|t| t.start != StartMode::Ignore);
        for (dir, get) in [
            ("spi_in", (|t: &Tunnel| t.spi_in) as fn(&Tunnel) -> u32),
            ("spi_out", |t: &Tunnel| t.spi_out),
        ] {
            let mut seen: HashMap<u32, &Tunnel> = HashMap::new();
            for t in active() {
                let spi = get(t);
                if let Some(prev) = seen.get(&spi) {
                    self.errors.push(ConfigError {
                        file: t.file.clone(),
                        line: Some(t.line),
                        field: Some(format!("tunnel[{}].{dir}", t.name)),
                        value: Some(format!("{spi:#x}")),
                        message: format!(
                            "{dir} {spi:#x} ({spi}) is already used by tunnel {} ({}:{}): every tunnel needs its own SPIs",
                            prev.name,
                            prev.file.display(),
                            prev.line
                        ),
                    });
                } else {
                    seen.insert(spi, t);
                }
            }
        }
        // The same AEAD key on two outbound SAs repeats nonces.
        let mut keys: HashMap<u64, &Tunnel> = HashMap::new();
        for t in active().filter(|t| t.suite.encr.is_aead()) {
            for d in [Direction::Inbound, Direction::Outbound] {
                let id = t.key_id(d);
                if let Some(prev) = keys.get(&id) {
                    if prev.name != t.name {
                        self.errors.push(ConfigError {
                            file: t.file.clone(),
                            line: Some(t.line),
                            field: Some(format!("tunnel[{}].enc_key", t.name)),
                            value: None,
                            message: format!(
                                "the same {} key is used by tunnel {}: nonces would repeat; give every tunnel its own keys",
                                t.suite.encr.name(),
                                prev.name
                            ),
                        });
                    }
                } else {
                    keys.insert(id, t);
                }
            }
        }
    }
}
