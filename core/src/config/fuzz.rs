//! Fuzz entry point of the configuration loader (`cargo fuzz run config`,
//! in dataplane/fuzz): built for fuzzing (`cfg(fuzzing)`, set by cargo-fuzz)
//! and for the tests, never into the programs.
//!
//! The input becomes real files in a directory of this process: the main
//! file `espresso.toml`, a secrets file `secrets.toml` (what `keys = ` and
//! `secrets = ` fields name) and an included file `inc.toml`, with modes the
//! input chooses (loose ones must be refused). [`Config::load`] and
//! [`DaemonSettings::load_main`] read them, and every error is rendered.
//! Checked: no panic, no hang; a bad file is a list of errors.
//!
//! Inputs that name files outside that directory (absolute paths, `..`, or
//! `**` globs) are skipped: the loader would read the machine's files, which
//! is neither reproducible nor the loader's input.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{Config, DaemonSettings};

fn dir() -> Option<&'static Path> {
    static DIR: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("espresso-config-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).ok()?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).ok()?;
        Some(d)
    })
    .as_deref()
}

fn write(path: &Path, text: &[u8], mode: u32) -> bool {
    // Remove first: a file left 0400 by the last input cannot be rewritten.
    let _ = std::fs::remove_file(path);
    std::fs::write(path, text).is_ok()
        && std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).is_ok()
}

/// True if `text` may name a file outside the fuzz directory.
fn escapes(text: &[u8]) -> bool {
    let has = |n: &[u8]| text.windows(n.len()).any(|w| w == n);
    has(b"\"/") || has(b"'/") || has(b"..") || has(b"**") || has(b"\\u") || has(b"\\U")
}

/// Fuzz entry point. `data[0]`: file modes (bits 0-1 the secrets file:
/// 0600, 0400, 0640, 0604; bit 2: the main file group-writable; bit 3: the
/// included file world-writable); the rest, split at NUL bytes: the main
/// file, the secrets file, the included file. Never panics.
pub fn load(data: &[u8]) {
    let Some((&modes, rest)) = data.split_first() else {
        return;
    };
    if escapes(rest) {
        return;
    }
    let Some(d) = dir() else {
        return;
    };
    let mut parts = rest.splitn(3, |&b| b == 0);
    let main = parts.next().unwrap_or_default();
    let secrets = parts.next().unwrap_or_default();
    let inc = parts.next().unwrap_or_default();
    let smode = [0o600, 0o400, 0o640, 0o604][usize::from(modes & 3)];
    let mmode = if modes & 4 != 0 { 0o620 } else { 0o600 };
    let imode = if modes & 8 != 0 { 0o602 } else { 0o600 };
    let main_path = d.join("espresso.toml");
    if !write(&main_path, main, mmode)
        || !write(&d.join("secrets.toml"), secrets, smode)
        || !write(&d.join("inc.toml"), inc, imode)
    {
        return;
    }
    match Config::load(&main_path) {
        Ok(c) => {
            let _ = format!("{:?}", c);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    match DaemonSettings::load_main(&main_path) {
        Ok(s) => {
            let _ = format!("{s:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::load;

    const MAIN: &str = r#"include = ["inc.toml"]
[daemon]
log_level = "info"

[[tunnel]]
name = "t1"
local = "192.0.2.1"
remote = "192.0.2.2"
local_subnets = "10.1.0.0/24"
remote_subnets = "10.2.0.0/24"
spi_in = "0x1001"
spi_out = "0x2001"
esp = "aes128-sha256"
keys = "secrets.toml"
"#;
    const SECRETS: &str = "enc_key_in = \"0x000102030405060708090a0b0c0d0e0f\"\n\
        enc_key_out = \"0x000102030405060708090a0b0c0d0e0f\"\n\
        auth_key_in = \"0x000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f\"\n\
        auth_key_out = \"0x000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f\"\n";

    fn input(modes: u8, main: &str, secrets: &str, inc: &str) -> Vec<u8> {
        let mut d = vec![modes];
        d.extend_from_slice(main.as_bytes());
        d.push(0);
        d.extend_from_slice(secrets.as_bytes());
        d.push(0);
        d.extend_from_slice(inc.as_bytes());
        d
    }

    #[test]
    fn a_valid_configuration_and_every_mode_load_without_panic() {
        for m in 0..16u8 {
            load(&input(m, MAIN, SECRETS, "[[policy]]\nname = \"p\"\n"));
        }
    }

    #[test]
    fn paths_outside_the_directory_are_skipped() {
        assert!(super::escapes(b"keys = \"/etc/shadow\""));
        assert!(super::escapes(b"include = [\"../x\"]"));
        assert!(!super::escapes(MAIN.as_bytes()));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

        #[test]
        fn mutated_configurations_never_panic(
            flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..6),
            m in any::<u8>(),
        ) {
            let mut d = input(m, MAIN, SECRETS, "");
            for (at, x) in flips {
                let i = 1 + usize::from(at) % (d.len() - 1);
                d[i] ^= x;
            }
            load(&d);
        }
    }
}
