use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::alg::{EncrAlg, IntegAlg};
use crate::sa::{Direction, Mode, PolicyAction};

use super::*;

const K20A: &str = "0x00112233445566778899aabbccddeeff01020304";
const K20B: &str = "0xffeeddccbbaa99887766554433221100a0b0c0d0";

fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn errors(path: &Path) -> Vec<ConfigError> {
    match Config::load(path) {
        Ok(_) => panic!("{} loaded but should fail", path.display()),
        Err(e) => e.0,
    }
}

/// Finds the error about `field` and checks every part a reader needs.
#[track_caller]
fn expect(
    errs: &[ConfigError],
    file: &Path,
    line: usize,
    field: &str,
    value: Option<&str>,
    msg: &str,
) {
    let e = errs
        .iter()
        .find(|e| e.field.as_deref() == Some(field))
        .unwrap_or_else(|| {
            panic!(
                "no error for field {field} in:\n{}",
                ConfigErrors(errs.to_vec())
            )
        });
    assert_eq!(e.file, file, "{e}");
    assert_eq!(e.line, Some(line), "{e}");
    if let Some(v) = value {
        assert!(
            e.value.as_deref().unwrap_or("").contains(v),
            "value {v:?} not in: {e}"
        );
    }
    assert!(e.message.contains(msg), "message {msg:?} not in: {e}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("{}:{line}: {field}", file.display())),
        "{text}"
    );
}

fn gcm_tunnel(name: &str, spi_in: u32, spi_out: u32) -> String {
    format!(
        r#"
[[tunnel]]
name = "{name}"
local = "192.0.2.1"
remote = "192.0.2.2"
local_subnets = ["10.1.0.0/24"]
remote_subnets = ["10.2.0.0/24"]
suite = "aes128gcm16"
spi_in = {spi_in:#x}
spi_out = {spi_out:#x}
enc_key_in = "{K20A}"
enc_key_out = "{K20B}"
"#
    )
}

mod connections;
mod files;
mod settings;
mod tunnels;
