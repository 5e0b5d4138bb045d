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

#[test]
fn full_config_with_includes_templates_secrets_and_seed_vocabulary() {
    let d = tempfile::tempdir().unwrap();
    let main = write(
        d.path(),
        "espresso.toml",
        r#"
include = ["tunnels.d/*.toml", "policies.toml"]

[daemon]
shm = "/dev/shm/espresso-test"
socket = "/tmp/espresso-test.sock"
metrics = "127.0.0.1:19715"
log_lines = 200

[template.office]
left = "192.0.2.1"
local_subnets = "10.1.0.0/24 10.1.1.0/24"
mode = "tunnel"
lifetime = { time = "8h", bytes = "100G" }
"#,
        0o644,
    );
    // FreeS/WAN manual connection: also=, esp=, spi=, espenckey/espauthkey in a 0600 keys file.
    write(
        d.path(),
        "tunnels.d/10-reno.toml",
        r#"
[[tunnel]]
name = "reno-vancouver"
also = "office"
right = "198.51.100.7"
rightsubnet = ["10.2.0.0/24"]
esp = "3des-md5-96"
allow_legacy = true
spi = "0x200"
keys = "../keys/reno.keys"
start = "add"
"#,
        0o644,
    );
    write(
        d.path(),
        "keys/reno.keys",
        "espenckey = \"0x01234567_89abcdef_02468ace_13579bdf_12345678_9abcdef0\"\nespauthkey = \"0x12345678_9abcdef0_23456789_abcdef01\"\n",
        0o600,
    );
    // Halon / ZyWALL: one decimal SPI both ways, ASCII keys, CBC suite.
    write(
        d.path(),
        "tunnels.d/20-zywall.toml",
        r#"
[[tunnel]]
name = "zywall"
local = "192.0.2.1"
remote = "203.0.113.9"
local_subnets = ["10.1.0.0/24"]
remote_subnets = ["10.9.0.0/24"]
suite = "aes128-sha1"
spi = 256
keys = "zywall.keys"
replay_window = 0
nat_t = { remote_port = 4501 }
df = "set"
"#,
        0o644,
    );
    write(
        d.path(),
        "tunnels.d/zywall.keys",
        "enc_key = \"ascii:kkkkkkkkkkkkkkkk\"\nauth_key = \"ascii:kkkkkkkkkkkkkkkkkkkk\"\n",
        0o600,
    );
    write(
        d.path(),
        "policies.toml",
        r#"
[[policy]]
name = "lan-clear"
local_subnets = ["10.1.0.0/24"]
remote_subnets = ["10.50.0.0/16"]
action = "bypass"
"#,
        0o644,
    );
    let c = Config::load(&main).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.daemon.shm, PathBuf::from("/dev/shm/espresso-test"));
    assert_eq!(c.daemon.metrics, Some("127.0.0.1:19715".parse().unwrap()));
    assert_eq!(c.daemon.log_lines, 200);
    assert_eq!(c.files.len(), 6);
    assert_eq!(c.tunnels.len(), 2);

    let reno = c.tunnel("reno-vancouver").unwrap();
    assert_eq!(reno.local, "192.0.2.1".parse::<IpAddr>().unwrap());
    assert_eq!(reno.local_subnets.len(), 2, "from the template");
    assert_eq!((reno.spi_in, reno.spi_out), (0x200, 0x200));
    assert_eq!(reno.suite.encr, EncrAlg::TripleDesCbc);
    assert_eq!(reno.suite.integ, IntegAlg::HmacMd5_96);
    assert_eq!(reno.keys.enc_in.len(), 24);
    assert_eq!(reno.keys.enc_in, reno.keys.enc_out);
    assert_eq!(reno.keys.auth_in.bytes()[0], 0x12);
    assert_eq!(reno.start, StartMode::Add);
    assert_eq!(reno.lifetime.hard_time, Some(Duration::from_secs(28800)));
    assert_eq!(reno.lifetime.soft_bytes, 90_000_000_000);
    assert_eq!(reno.selectors().len(), 2);
    assert!(
        c.warnings.iter().any(|w| w.contains("legacy")),
        "{:?}",
        c.warnings
    );

    let z = c.tunnel("zywall").unwrap();
    assert_eq!((z.spi_in, z.spi_out), (256, 256));
    assert_eq!(z.keys.enc_in.bytes(), &[0x6b; 16]);
    assert_eq!(z.keys.auth_out.bytes(), &[0x6b; 20]);
    assert_eq!(z.replay_window, 0);
    assert_eq!(z.encap.unwrap().local_port, 4500);
    assert_eq!(z.encap.unwrap().remote_port, 4501);
    assert_eq!(z.selectors().len(), 1);
    let pol = z.policies(7);
    assert_eq!(pol[0].id, 7 << 16);
    assert_eq!(pol[0].action, PolicyAction::Protect { spi: 256 });
    let out = z.sa_params(Direction::Outbound, 7, 42);
    assert_eq!((out.spi, out.initial_seq, out.tunnel_id), (256, 42, 7));
    assert_eq!(out.mode, Mode::Tunnel);
    assert_ne!(
        z.key_id(Direction::Inbound),
        reno.key_id(Direction::Inbound)
    );
    assert_eq!(c.policies[0].to_policies(3)[0].action, PolicyAction::Bypass);
    assert!(c.warnings.iter().any(|w| w.contains("anti-replay")));
}

#[test]
fn remote_subnets_without_a_local_partner_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "c.toml",
        &gcm_tunnel("a", 0x1001, 0x1002).replace(
            r#"remote_subnets = ["10.2.0.0/24"]"#,
            r#"remote_subnets = ["10.2.0.0/24", "fd00::/64"]"#,
        ),
        0o600,
    );
    let errs = errors(&p);
    expect(
        &errs,
        &p,
        2,
        "tunnel[a].remote_subnets",
        Some("fd00::/64"),
        "same address family",
    );
}

#[test]
fn toml_syntax_error_names_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "c.toml",
        "[[tunnel]]\nname = \"x\"\nlocal = 192.0.2.1\n",
        0o600,
    );
    let errs = errors(&p);
    assert_eq!(errs[0].file, p);
    assert_eq!(errs[0].line, Some(3));
}

#[test]
fn unknown_fields_are_named_with_a_suggestion() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "c.toml",
        &gcm_tunnel("a", 0x1001, 0x1002).replace("suite =", "spii = 5\nsuite ="),
        0o600,
    );
    let errs = errors(&p);
    expect(&errs, &p, 8, "tunnel[a].spii", None, "did you mean spi");
    let p = write(d.path(), "d.toml", "tunnels = 1\n", 0o600);
    let errs = errors(&p);
    assert_eq!(errs[0].line, Some(1));
    assert!(errs[0].message.contains("tunnels"), "{}", errs[0]);
}

#[test]
fn missing_fields_are_named() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "c.toml",
        "\n[[tunnel]]\nname = \"a\"\nlocal = \"192.0.2.1\"\n",
        0o600,
    );
    let errs = errors(&p);
    expect(&errs, &p, 2, "tunnel[a].remote", None, "missing");
    expect(&errs, &p, 2, "tunnel[a].suite", None, "missing");
}

#[test]
fn bad_spis_name_field_value_and_line() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "c.toml",
        &gcm_tunnel("a", 0x1001, 0x1002).replace("spi_in = 0x1001", "spi_in = 100"),
        0o600,
    );
    expect(
        &errors(&p),
        &p,
        9,
        "tunnel[a].spi_in",
        Some("100"),
        "reserved",
    );
    let p = write(
        d.path(),
        "c.toml",
        &gcm_tunnel("a", 0x1001, 0x1002).replace("spi_in = 0x1001", "spi_in = \"0x1g\""),
        0o600,
    );
    expect(
        &errors(&p),
        &p,
        9,
        "tunnel[a].spi_in",
        Some("0x1g"),
        "not a decimal or 0x-hex",
    );
    let p = write(
        d.path(),
        "c.toml",
        &gcm_tunnel("a", 0x1001, 0x1002).replace("spi_in = 0x1001", "spi = 0x1001"),
        0o600,
    );
    expect(
        &errors(&p),
        &p,
        10,
        "tunnel[a].spi_out",
        Some("4098"),
        "either spi",
    );
    let p = write(
        d.path(),
        "c.toml",
        &gcm_tunnel("a", 0x1001, 0x1002).replace("spi_out = 0x1002\n", ""),
        0o600,
    );
    expect(&errors(&p), &p, 2, "tunnel[a].spi_out", None, "missing");
}

#[test]
fn wrong_key_lengths_are_refused_without_showing_the_key() {
    let d = tempfile::tempdir().unwrap();
    let short = "0x00112233445566778899aabbccddeeff";
    let p = write(
        d.path(),
        "c.toml",
        &gcm_tunnel("a", 0x1001, 0x1002).replace(K20B, short),
        0o600,
    );
    let errs = errors(&p);
    expect(
        &errs,
        &p,
        12,
        "tunnel[a].enc_key_out",
        Some("<16 bytes>"),
        "needs a 20-byte key (16-byte key + 4-byte salt)",
    );
    assert!(
        !ConfigErrors(errs).to_string().contains("0011223344"),
        "key shown"
    );
    let p = write(
        d.path(),
        "c.toml",
        &gcm_tunnel("a", 0x1001, 0x1002)
            .replace(K20B, "0xzz112233445566778899aabbccddeeff01020304"),
        0o600,
    );
    let errs = errors(&p);
    expect(
        &errs,
        &p,
        12,
        "tunnel[a].enc_key_out",
        Some("hidden, 42 characters"),
        "not a hex digit",
    );
    assert!(
        !ConfigErrors(errs).to_string().contains("112233"),
        "key shown"
    );
    // An integrity key on an AEAD suite, and a missing one on a CBC suite.
    let p = write(
        d.path(),
        "c.toml",
        &format!("{}auth_key = \"0x0011\"\n", gcm_tunnel("a", 0x1001, 0x1002)),
        0o600,
    );
    expect(
        &errors(&p),
        &p,
        13,
        "tunnel[a].auth_key",
        Some("<2 bytes>"),
        "combined-mode",
    );
    let p = write(
        d.path(),
        "c.toml",
        &gcm_tunnel("a", 0x1001, 0x1002)
            .replace("aes128gcm16", "aes128-sha256")
            .replace(K20A, "0x00112233445566778899aabbccddeeff")
            .replace(K20B, "0xffeeddccbbaa99887766554433221100"),
        0o600,
    );
    expect(
        &errors(&p),
        &p,
        2,
        "tunnel[a].auth_key_in",
        None,
        "needs a 32-byte key",
    );
}

#[test]
fn one_aead_key_for_both_directions_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let t = gcm_tunnel("a", 0x1001, 0x1002).replace(
        &format!("enc_key_in = \"{K20A}\"\nenc_key_out = \"{K20B}\"\n"),
        &format!("enc_key = \"{K20A}\"\n"),
    );
    let p = write(d.path(), "c.toml", &t, 0o600);
    expect(
        &errors(&p),
        &p,
        11,
        "tunnel[a].enc_key",
        None,
        "same nonces",
    );
}

#[test]
fn duplicate_spis_names_and_keys_across_files() {
    let d = tempfile::tempdir().unwrap();
    let main = write(
        d.path(),
        "c.toml",
        &format!(
            "include = \"more.toml\"\n{}",
            gcm_tunnel("a", 0x1001, 0x1002)
        ),
        0o600,
    );
    let more = write(
        d.path(),
        "more.toml",
        &gcm_tunnel("b", 0x1001, 0x2002)
            .replace(K20A, "0x0000000000000000000000000000000000000001")
            .replace(K20B, "0x0000000000000000000000000000000000000002"),
        0o600,
    );
    let errs = errors(&main);
    expect(
        &errs,
        &more,
        2,
        "tunnel[b].spi_in",
        Some("0x1001"),
        "already used by tunnel a",
    );
    let e = errs
        .iter()
        .find(|e| e.field.as_deref() == Some("tunnel[b].spi_in"))
        .unwrap();
    assert!(e.message.contains(&format!("{}:3", main.display())), "{e}");
    // Duplicate names.
    write(
        d.path(),
        "more.toml",
        &gcm_tunnel("a", 0x3001, 0x3002)
            .replace(K20A, "0x0000000000000000000000000000000000000001")
            .replace(K20B, "0x0000000000000000000000000000000000000002"),
        0o600,
    );
    expect(
        &errors(&main),
        &more,
        2,
        "name",
        Some("\"a\""),
        "already used",
    );
    // The same AEAD key in two tunnels.
    write(
        d.path(),
        "more.toml",
        &gcm_tunnel("b", 0x3001, 0x3002),
        0o600,
    );
    expect(
        &errors(&main),
        &more,
        2,
        "tunnel[b].enc_key",
        None,
        "nonces would repeat",
    );
}

#[test]
fn configuration_files_writable_by_group_or_others_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let inc = write(
        d.path(),
        "tunnels/a.toml",
        &gcm_tunnel("a", 0x1001, 0x1002),
        0o600,
    );
    let main = write(d.path(), "c.toml", "include = \"tunnels/*.toml\"\n", 0o644);
    assert!(Config::load(&main).is_ok());
    for (file, mode, back) in [
        (&main, 0o664, 0o644),
        (&main, 0o646, 0o644),
        (&inc, 0o620, 0o600),
        (&inc, 0o602, 0o600),
    ] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode)).unwrap();
        let errs = errors(&main);
        let e = errs
            .iter()
            .find(|e| &e.file == file)
            .unwrap_or_else(|| panic!("{}", ConfigErrors(errs.clone())));
        assert!(e.message.contains(&format!("mode {mode:04o}")), "{e}");
        assert!(e.message.contains("writable by group or others"), "{e}");
        assert!(e.to_string().contains(&file.display().to_string()), "{e}");
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(back)).unwrap();
    }
    // Readable by all is fine (keys live in 0600 files).
    std::fs::set_permissions(&main, std::fs::Permissions::from_mode(0o444)).unwrap();
    assert!(Config::load(&main).is_ok());
}

#[test]
fn psk_holding_types_redact_in_debug() {
    let d = tempfile::tempdir().unwrap();
    let psk = "a-long-pre-shared-key-VISIBLE-0123";
    write(d.path(), "sw.psk", &format!("psk = \"{psk}\"\n"), 0o600);
    let t = gcm_tunnel("a", 0x1001, 0x1002);
    let main = write(
        d.path(),
        "c.toml",
        &format!(
            "{t}\n[[connection]]\nname = \"sw\"\nleft = \"192.0.2.1\"\nright = \"192.0.2.2\"\n\
             leftsubnet = \"10.1.0.0/24\"\nrightsubnet = \"10.2.0.0/24\"\nsecrets = \"sw.psk\"\n"
        ),
        0o600,
    );
    let c = Config::load(&main).unwrap_or_else(|e| panic!("{e}"));
    let dbg = format!("{c:?}");
    assert!(dbg.contains("sw"), "{dbg}");
    assert!(!dbg.contains("VISIBLE"), "the PSK shows in Debug: {dbg}");
    let hex_a = K20A.trim_start_matches("0x");
    assert!(
        !dbg.to_lowercase().contains(&hex_a.to_lowercase()),
        "a key shows in Debug"
    );
}

#[test]
fn secrets_files_must_be_0600() {
    let d = tempfile::tempdir().unwrap();
    let t = gcm_tunnel("a", 0x1001, 0x1002).replace(
        &format!("enc_key_in = \"{K20A}\"\nenc_key_out = \"{K20B}\"\n"),
        "keys = \"a.keys\"\n",
    );
    let main = write(d.path(), "c.toml", &t, 0o644);
    let keys = write(
        d.path(),
        "a.keys",
        &format!("enc_key_in = \"{K20A}\"\nenc_key_out = \"{K20B}\"\n"),
        0o644,
    );
    let errs = errors(&main);
    let e = errs
        .iter()
        .find(|e| e.file == keys)
        .unwrap_or_else(|| panic!("{}", ConfigErrors(errs.clone())));
    assert!(e.message.contains("mode 0644"), "{e}");
    assert!(e.message.contains("chmod 600"), "{e}");
    assert_eq!(e.field.as_deref(), Some("tunnel[a].keys"));
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(
        Config::load(&main).is_ok(),
        "0644 main file is fine when keys live elsewhere"
    );
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(Config::load(&main).is_ok(), "stricter than 0600 is fine");
    // A key given in both places.
    std::fs::set_permissions(&main, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&main, format!("{t}enc_key_in = \"{K20A}\"\n")).unwrap();
    let errs = errors(&main);
    expect(
        &errs,
        &keys,
        1,
        "tunnel[a].enc_key_in",
        None,
        "also given at",
    );
}

#[test]
fn device_files_and_fifos_are_refused_not_read_forever() {
    let d = tempfile::tempdir().unwrap();
    for name in ["/dev/zero", "fifo.keys"] {
        let t = gcm_tunnel("a", 0x1001, 0x1002).replace(
            &format!("enc_key_in = \"{K20A}\"\nenc_key_out = \"{K20B}\"\n"),
            &format!("keys = \"{name}\"\n"),
        );
        let main = write(d.path(), "c.toml", &t, 0o600);
        if name == "fifo.keys" {
            let status = std::process::Command::new("mkfifo")
                .arg(d.path().join(name))
                .status()
                .unwrap();
            assert!(status.success());
        }
        let errs = errors(&main);
        let e = errs
            .iter()
            .find(|e| e.field.as_deref() == Some("tunnel[a].keys"))
            .unwrap_or_else(|| panic!("{}", ConfigErrors(errs.clone())));
        assert!(e.message.contains("not a regular file"), "{e}");
        let inc = format!("include = [\"{name}\"]\n");
        std::fs::write(&main, inc).unwrap();
        let errs = errors(&main);
        assert!(
            errs.iter()
                .any(|e| e.message.contains("not a regular file")),
            "{}",
            ConfigErrors(errs.clone())
        );
    }
}

#[test]
fn inline_keys_need_a_private_file() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "c.toml", &gcm_tunnel("a", 0x1001, 0x1002), 0o640);
    expect(
        &errors(&p),
        &p,
        11,
        "tunnel[a].enc_key_in",
        None,
        "mode 0640",
    );
}

#[test]
fn legacy_algorithms_need_the_opt_in() {
    let d = tempfile::tempdir().unwrap();
    let t = r#"
[[tunnel]]
name = "old"
local = "192.0.2.1"
remote = "192.0.2.2"
esp = "3des-md5"
spi = 0x300
espenckey = "0x0123456789abcdef0123456789abcdef0123456789abcdef"
espauthkey = "0x0123456789abcdef0123456789abcdef"
"#;
    let p = write(d.path(), "c.toml", t, 0o600);
    expect(
        &errors(&p),
        &p,
        6,
        "tunnel[old].suite",
        Some("3des-md5"),
        "allow_legacy = true",
    );
    let p = write(
        d.path(),
        "c.toml",
        &format!("{t}allow_legacy = true\n"),
        0o600,
    );
    let c = Config::load(&p).unwrap();
    assert!(c.warnings[0].contains("RFC 8221"), "{:?}", c.warnings);
}

#[test]
fn bad_values_each_name_their_field() {
    let d = tempfile::tempdir().unwrap();
    let base = gcm_tunnel("a", 0x1001, 0x1002);
    let cases: &[(&str, &str, usize, &str, &str, &str)] = &[
        (
            "remote = \"192.0.2.2\"",
            "remote = \"%any\"",
            5,
            "remote",
            "%any",
            "IKE",
        ),
        (
            "local = \"192.0.2.1\"",
            "local = \"192.0.2.300\"",
            4,
            "local",
            "192.0.2.300",
            "not an IPv4",
        ),
        (
            "[\"10.1.0.0/24\"]",
            "[\"10.1.0.9/24\"]",
            6,
            "local_subnets",
            "10.1.0.9/24",
            "did you mean 10.1.0.0/24",
        ),
        (
            "suite = \"aes128gcm16\"",
            "suite = \"aes128gcm8\"",
            8,
            "suite",
            "aes128gcm8",
            "8-byte ICV",
        ),
        (
            "suite = \"aes128gcm16\"",
            "suite = \"aes128gcm16\"\nreplay_window = 10",
            9,
            "replay_window",
            "10",
            "0 (off) or 64",
        ),
        (
            "suite = \"aes128gcm16\"",
            "suite = \"aes128gcm16\"\nstart = \"trap\"",
            9,
            "start",
            "trap",
            "needs IKE",
        ),
        (
            "suite = \"aes128gcm16\"",
            "suite = \"aes128gcm16\"\nmode = \"bus\"",
            9,
            "mode",
            "bus",
            "tunnel or transport",
        ),
        (
            "suite = \"aes128gcm16\"",
            "suite = \"aes128gcm16\"\nnat_t = { local_port = 0 }",
            9,
            "nat_t",
            "local_port",
            "1..=65535",
        ),
        (
            "suite = \"aes128gcm16\"",
            "suite = \"aes128gcm16\"\nnat_t = { local_port = 4501, remote_port = 4501 }",
            9,
            "nat_t",
            "local_port = 4501",
            "on port 4500 only",
        ),
        (
            "suite = \"aes128gcm16\"",
            "suite = \"aes128gcm16\"\nlifetime = { bytes = 100, soft_bytes = 200 }",
            9,
            "lifetime",
            "bytes",
            "must be below",
        ),
        (
            "suite = \"aes128gcm16\"",
            "suite = \"aes128gcm16\"\nlifetime = { time = \"soon\" }",
            9,
            "lifetime",
            "soon",
            "not a duration",
        ),
        (
            "suite = \"aes128gcm16\"",
            "suite = \"aes128gcm16\"\nesn = 3",
            9,
            "esn",
            "3",
            "true or false",
        ),
        (
            "suite = \"aes128gcm16\"",
            "suite = \"aes128gcm16\"\nalso = \"nope\"",
            9,
            "also",
            "nope",
            "no such template",
        ),
        (
            "name = \"a\"",
            "name = \"a b\"",
            3,
            "name",
            "a b",
            "not allowed",
        ),
    ];
    for (from, to, line, field, value, msg) in cases {
        let p = write(d.path(), "c.toml", &base.replace(from, to), 0o600);
        let ctx = if *field == "name" {
            "tunnel".to_string()
        } else {
            "tunnel[a]".to_string()
        };
        expect(
            &errors(&p),
            &p,
            *line,
            &format!("{ctx}.{field}"),
            Some(value),
            msg,
        );
    }
}

#[test]
fn transport_mode_protects_gateways_only() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "c.toml",
        &gcm_tunnel("a", 0x1001, 0x1002).replace("suite =", "mode = \"transport\"\nsuite ="),
        0o600,
    );
    expect(
        &errors(&p),
        &p,
        2,
        "tunnel[a].local_subnets",
        None,
        "transport mode",
    );
    let t = gcm_tunnel("a", 0x1001, 0x1002)
        .replace("local_subnets = [\"10.1.0.0/24\"]\n", "")
        .replace(
            "remote_subnets = [\"10.2.0.0/24\"]\n",
            "mode = \"transport\"\n",
        );
    let p = write(d.path(), "c.toml", &t, 0o600);
    let c = Config::load(&p).unwrap();
    let s = c.tunnels[0].selectors();
    assert_eq!(s[0].local.to_string(), "192.0.2.1/32");
    assert_eq!(c.tunnels[0].mode, Mode::Transport);
}

#[test]
fn includes_missing_cyclic_and_daemon_in_included_file() {
    let d = tempfile::tempdir().unwrap();
    let main = write(
        d.path(),
        "c.toml",
        "\ninclude = [\"nothere.toml\"]\n",
        0o600,
    );
    expect(
        &errors(&main),
        &main,
        2,
        "include",
        Some("nothere.toml"),
        "cannot open",
    );
    let main = write(d.path(), "c.toml", "include = \"b.toml\"\n", 0o600);
    let b = write(d.path(), "b.toml", "include = \"c.toml\"\n", 0o600);
    expect(
        &errors(&main),
        &b,
        1,
        "include",
        Some("c.toml"),
        "included twice",
    );
    write(d.path(), "b.toml", "[daemon]\nshm = \"/x\"\n", 0o600);
    expect(
        &errors(&main),
        &b,
        1,
        "daemon",
        None,
        "main configuration file",
    );
    // A glob that matches nothing is only a warning.
    let main = write(d.path(), "c.toml", "include = \"none.d/*.toml\"\n", 0o600);
    let c = Config::load(&main).unwrap();
    assert!(c.warnings[0].contains("matches no file"));
}

#[test]
fn policies_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "c.toml", "[[policy]]\nname = \"p\"\nlocal_subnets = \"10.0.0.0/8\"\nremote_subnets = \"10.0.0.0/8\"\naction = \"protect\"\n", 0o600);
    expect(
        &errors(&p),
        &p,
        5,
        "policy[p].action",
        Some("protect"),
        "[[tunnel]]",
    );
    let p = write(d.path(), "c.toml", "[[policy]]\nname = \"p\"\nlocal_subnets = \"10.0.0.0/8\"\nremote_subnets = \"fd00::/8\"\naction = \"bypass\"\n", 0o600);
    expect(
        &errors(&p),
        &p,
        1,
        "policy[p].remote_subnets",
        None,
        "same address family",
    );
}

#[test]
fn daemon_settings_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "c.toml",
        "[daemon]\nmetrics = \"localhost\"\nlog_lines = 1\n",
        0o600,
    );
    let errs = errors(&p);
    expect(
        &errs,
        &p,
        2,
        "daemon.metrics",
        Some("localhost"),
        "ADDRESS:PORT",
    );
    expect(&errs, &p, 3, "daemon.log_lines", Some("1"), "between 10");
    let p = write(d.path(), "c.toml", "[daemon]\nmetrics = false\n", 0o600);
    assert_eq!(Config::load(&p).unwrap().daemon.metrics, None);
}

#[test]
fn hashes_are_stable_and_follow_changes() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "c.toml", &gcm_tunnel("a", 0x1001, 0x1002), 0o600);
    let a = Config::load(&p).unwrap().tunnels[0].clone();
    let a2 = Config::load(&p).unwrap().tunnels[0].clone();
    assert_eq!(a.config_hash(), a2.config_hash());
    assert_eq!(
        a.key_id(Direction::Outbound),
        a2.key_id(Direction::Outbound)
    );
    let p = write(d.path(), "c.toml", &gcm_tunnel("a", 0x1001, 0x1003), 0o600);
    let b = Config::load(&p).unwrap().tunnels[0].clone();
    assert_ne!(a.config_hash(), b.config_hash());
    assert_eq!(
        a.key_id(Direction::Outbound),
        b.key_id(Direction::Outbound),
        "same key, same id"
    );
    assert_ne!(
        a.params_hash(Direction::Outbound),
        b.params_hash(Direction::Outbound)
    );
    assert_eq!(
        a.params_hash(Direction::Inbound),
        b.params_hash(Direction::Inbound)
    );
}

#[test]
fn key_export_switch_and_encap_udp() {
    let d = tempfile::tempdir().unwrap();
    let main = write(
        d.path(),
        "espresso.toml",
        &format!(
            r#"
[daemon]
allow_key_export = true

[[tunnel]]
name = "natt"
local = "192.0.2.1"
remote = "192.0.2.2"
local_subnets = ["10.1.0.0/24"]
remote_subnets = ["10.2.0.0/24"]
suite = "aes128gcm16"
spi_in = 0x1001
spi_out = 0x1002
enc_key_in = "{K20A}"
enc_key_out = "{K20B}"
encap = "udp"
"#
        ),
        0o600,
    );
    let c = Config::load(&main).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.daemon.allow_key_export);
    let t = c.tunnel("natt").unwrap();
    assert_eq!(t.encap.unwrap().local_port, 4500);
    assert_eq!(t.encap.unwrap().remote_port, 4500);
    // Off by default.
    let plain = write(d.path(), "plain.toml", "[daemon]\nlog_lines = 100\n", 0o644);
    assert!(!Config::load(&plain).unwrap().daemon.allow_key_export);
    let bad = write(
        d.path(),
        "bad.toml",
        "[daemon]\nallow_key_export = \"maybe\"\n",
        0o644,
    );
    let errs = errors(&bad);
    assert!(
        errs.iter()
            .any(|e| e.to_string().contains("allow_key_export")),
        "{}",
        ConfigErrors(errs.clone())
    );
}

// ---------------------------------------------------------------- [[connection]]

#[test]
fn connection_operator_vocabulary() {
    use crate::config::ike::{DpdAction, Identity, LocalAddr, RemoteAddr, StartAction};
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "rw.psk",
        "psk = \"Letmein99-long-enough\"\n",
        0o600,
    );
    let main = write(
        d.path(),
        "main.toml",
        r#"
[[connection]]
conn = "site"
left = "%defaultroute"
right = "192.0.2.2"
leftid = "@gw-a.example"
leftsubnet = ["10.1.0.0/24", "10.3.0.0/24"]
rightsubnet = "10.2.0.0/24"
secrets = "rw.psk"
ike = "aes128gcm16-prfsha256-ecp256, AES SHA 14"
esp = ["aes128gcm16", "AES SHA2_256 14"]
auto = "on-demand"
dpddelay = "30s"
dpdaction = "clear"
keylife = "20m"
ikelifetime = "4h"
rekeyfuzz = "50%"
pfs = "no"
mobike = "no"

[[connection]]
name = "roadwarrior"
local = "192.0.2.1"
remote = "%any"
remote_id = "@roadwarrior"
psk_file = "rw.psk"
start = "listen"
"#,
        0o644,
    );
    let c = Config::load(&main).unwrap();
    assert_eq!(c.connections.len(), 2);
    let s = &c.connections[0].conn;
    assert_eq!(c.connections[0].line, 2);
    assert_eq!(s.local_addr, LocalAddr::DefaultRoute);
    assert_eq!(
        s.remote_addr,
        "192.0.2.2".parse::<IpAddr>().map(RemoteAddr::Addr).unwrap()
    );
    assert_eq!(s.local_id, Some(Identity::Fqdn("gw-a.example".into())));
    assert_eq!(
        s.remote_id,
        Some("192.0.2.2".parse().unwrap()),
        "default: the peer's address"
    );
    assert_eq!(s.local_ts.len(), 2);
    assert_eq!(s.ike_proposals.len(), 2);
    assert_eq!(s.esp_proposals.len(), 2);
    assert_eq!(s.start_action, StartAction::Trap);
    assert_eq!(s.dpd.delay, Duration::from_secs(30));
    assert_eq!(s.dpd.action, DpdAction::Clear);
    assert_eq!(s.child_lifetime, Duration::from_secs(1200));
    assert_eq!(s.ike_lifetime, Duration::from_secs(14400));
    assert_eq!(
        s.margin,
        Duration::from_secs(120),
        "a tenth of the shortest lifetime"
    );
    assert_eq!(s.fuzz_percent, 50);
    assert!(!s.pfs && s.rekey);
    assert!(!s.mobike, "mobike = no");
    assert_eq!(s.psk.bytes(), b"Letmein99-long-enough");
    let rw = &c.connections[1].conn;
    assert_eq!(rw.remote_addr, RemoteAddr::Any);
    assert_eq!(rw.start_action, StartAction::Add);
    // the defaults of Openswan-based gateways (IKE 8 h, child 1 h)
    assert_eq!(rw.ike_lifetime, Duration::from_secs(28800));
    assert_eq!(rw.child_lifetime, Duration::from_secs(3600));
    assert!(rw.pfs);
    assert!(rw.mobike, "MOBIKE on by default, as strongSwan");
    // the key never appears in Debug output
    assert!(!format!("{:?}", c.connections).contains("Letmein99"));
}

#[test]
fn connection_errors_name_file_line_field_value() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "loose.psk",
        "psk = \"a-secret-that-leaks\"\n",
        0o644,
    );
    let main = write(
        d.path(),
        "main.toml",
        r#"[[connection]]
name = "a"
remote = "192.0.2.2"
secrets = "loose.psk"

[[connection]]
name = "b"
remote = "%any"
start = "start"
ike = "aes128gcm16-prfsha256-ecp999"
dpd_action = "explode"
psk = "short"

[[tunnel]]
name = "a"
local = "192.0.2.1"
remote = "192.0.2.2"
suite = "aes128gcm16"
spi = 0x1000
enc_key_in = "0x00112233445566778899aabbccddeeff01020304"
enc_key_out = "0xffeeddccbbaa99887766554433221100a0b0c0d0"
"#,
        0o600,
    );
    let errs = errors(&main);
    let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    let all = text.join("\n");
    assert!(
        !all.contains("a-secret-that-leaks") && !all.contains("\"short\""),
        "{all}"
    );
    assert!(
        all.contains("loose.psk holds keys but has mode 0644"),
        "{all}"
    );
    expect(
        &errs,
        &main,
        10,
        "connection[b].ike",
        Some("\"aes128gcm16-prfsha256-ecp999\""),
        "",
    );
    expect(
        &errs,
        &main,
        11,
        "connection[b].dpd_action",
        Some("\"explode\""),
        "expected clear, hold or restart",
    );
    expect(
        &errs,
        &main,
        12,
        "connection[b].psk",
        Some("<hidden, 5 characters>"),
        "at least 8 characters",
    );
}

#[test]
fn connection_start_and_name_checks() {
    let d = tempfile::tempdir().unwrap();
    let main = write(
        d.path(),
        "main.toml",
        r#"[[connection]]
name = "rw"
remote = "%any"
auto = "start"
psk = "long-enough-key-0123456789"
"#,
        0o600,
    );
    let errs = errors(&main);
    expect(
        &errs,
        &main,
        1,
        "connection[rw].start",
        Some("start"),
        "can only respond",
    );
}

#[test]
fn dataplane_table_is_typed_and_checked() {
    use super::dataplane::{ExceptionPath, IdleMode, IoBackendKind, RxRing, ShmSetting, TxMethod};
    let d = tempfile::tempdir().unwrap();
    let main = write(
        d.path(),
        "c.toml",
        "[daemon]\nshm = \"/dev/shm/gw1\"\n\n[dataplane]\nbackend = \"dpdk\"\n\
         eal = \"-l 2 --no-huge\"\ninside = \"0000:03:00.0\"\noutside = \"net_null1\"\n\
         exception = \"kernel,tap\"\ncores = [4, 5]\nrx-ring = \"v3\"\ntx = \"ring\"\n\
         idle = \"backoff\"\nidle_sleep_us = 100\nshm = true\nconfigure_kernel = true\n\
         crypto = \"aws-lc\"\nsched_fifo = 10\n",
        0o644,
    );
    let c = Config::load(&main).unwrap();
    let p = &c.dataplane;
    assert_eq!(p.backend, Some(IoBackendKind::Dpdk));
    assert_eq!(p.eal.as_deref(), Some("-l 2 --no-huge"));
    assert_eq!(
        p.exception,
        Some(vec![ExceptionPath::Kernel, ExceptionPath::Tap])
    );
    assert_eq!(p.cores, Some(vec![4, 5]));
    assert_eq!(p.rx_ring, Some(RxRing::V3));
    assert_eq!(p.tx, Some(TxMethod::Ring));
    assert_eq!(p.idle, Some(IdleMode::Backoff));
    assert_eq!(p.idle_sleep_us, Some(100));
    assert_eq!(p.shm, Some(ShmSetting::Daemon));
    assert_eq!(c.dataplane_shm(), Some(PathBuf::from("/dev/shm/gw1")));
    assert_eq!(p.configure_kernel, Some(true));
    assert_eq!(p.crypto.as_deref(), Some("aws-lc"));
    assert_eq!(p.sched_fifo, Some(10));
    assert_eq!(p.burst, None);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    // A region other than the daemon's is allowed but warned about.
    let main = write(
        d.path(),
        "c.toml",
        "[dataplane]\nshm = \"/dev/shm/other\"\n",
        0o644,
    );
    let c = Config::load(&main).unwrap();
    assert!(c.warnings[0].contains("do not meet"), "{:?}", c.warnings);

    // Every value is checked, naming the field (espresso check refuses
    // what the dataplane would refuse).
    let main = write(
        d.path(),
        "c.toml",
        "[dataplane]\nbackend = \"xdp\"\ncores = [\"zero\"]\nrx_ring = \"v4\"\n\
         idle = 3\nexception = \"tap,tap,tap\"\ncrypto = \"openssl\"\nburst = 0\n\
         sched_fifo = 100\nshm = 5\nfanout = 2\n",
        0o644,
    );
    let errs = errors(&main);
    expect(
        &errs,
        &main,
        2,
        "dataplane.backend",
        Some("xdp"),
        "afpacket, dpdk",
    );
    expect(&errs, &main, 3, "dataplane.cores", None, "not a number");
    expect(&errs, &main, 4, "dataplane.rx_ring", Some("v4"), "v2, v3");
    expect(&errs, &main, 5, "dataplane.idle", None, "expected a string");
    expect(
        &errs,
        &main,
        6,
        "dataplane.exception",
        None,
        "two (inside, outside)",
    );
    expect(
        &errs,
        &main,
        7,
        "dataplane.crypto",
        Some("openssl"),
        "rustcrypto",
    );
    expect(&errs, &main, 8, "dataplane.burst", None, "at least 1");
    expect(&errs, &main, 9, "dataplane.sched_fifo", None, "at most 99");
    expect(&errs, &main, 10, "dataplane.shm", None, "a path, true");
    expect(&errs, &main, 11, "dataplane.fanout", None, "unknown field");

    // Only in the main file.
    let main = write(d.path(), "c.toml", "include = \"b.toml\"\n", 0o644);
    let b = write(d.path(), "b.toml", "[dataplane]\ncores = [0]\n", 0o644);
    expect(
        &errors(&main),
        &b,
        1,
        "dataplane",
        None,
        "main configuration file",
    );
}

#[test]
fn connection_ike_versions_and_ikev1_fields() {
    use crate::config::ike::{ExchangeMode, VersionPolicy};
    let d = tempfile::tempdir().unwrap();
    let main = write(
        d.path(),
        "main.toml",
        r#"
# seed 000 (ClearOS/Openswan): aggressive mode, IKEv1 only
[[connection]]
name = "clearos"
remote = "%any"
remote_id = "@roadwarrior"
ikev2 = "never"
aggrmode = true
ike = "aes-sha1;modp1024"
esp = "aes-sha1"
allow_legacy = true
psk = "Letmein99-long-enough"

# seed 003 (mbox CLI): version 1, the router's proposal form
[[connection]]
name = "mbox"
remote = "192.0.2.9"
version = 1
ike = "AES SHA 2"
esp = "AES SHA 2"
allow_legacy = true
psk = "Letmein99-long-enough"

[[connection]]
name = "both"
remote = "192.0.2.10"
keyexchange = "ike"
ike = "aes128-sha256-modp2048"
psk = "Letmein99-long-enough"

[[connection]]
name = "v2"
remote = "192.0.2.11"
psk = "Letmein99-long-enough"
"#,
        0o600,
    );
    let c = Config::load(&main).unwrap();
    let by = |n: &str| c.connections.iter().find(|k| k.name == n).unwrap();
    let clearos = by("clearos");
    assert_eq!(clearos.version, VersionPolicy::Never);
    assert_eq!(clearos.exchange, ExchangeMode::Aggressive);
    assert_eq!(
        clearos.v1_proposals,
        (Some("aes-sha1;modp1024".into()), Some("aes-sha1".into()))
    );
    let mbox = by("mbox");
    assert_eq!(mbox.version, VersionPolicy::Never);
    assert_eq!(mbox.v1_proposals.0.as_deref(), Some("AES SHA 2"));
    let both = by("both");
    assert_eq!(both.version, VersionPolicy::Propose);
    assert_eq!(
        both.conn.ike_proposals.len(),
        1,
        "IKEv2 reads the proposals of a connection that speaks both"
    );
    assert_eq!(
        both.v1_proposals.0.as_deref(),
        Some("aes128-sha256-modp2048")
    );
    let v2 = by("v2");
    assert_eq!(v2.version, VersionPolicy::Insist);
    assert_eq!(v2.exchange, ExchangeMode::Main);
    assert_eq!(v2.v1_proposals, (None, None));

    // contradictions, aggressive mode without IKEv1, bad values
    let bad = write(
        d.path(),
        "bad.toml",
        r#"[[connection]]
name = "x"
remote = "192.0.2.2"
version = 1
keyexchange = "ikev2"
psk = "Letmein99-long-enough"

[[connection]]
name = "y"
remote = "192.0.2.3"
aggressive = true
psk = "Letmein99-long-enough"

[[connection]]
name = "z"
remote = "192.0.2.4"
ikev2 = "sometimes"
version = 3
psk = "Letmein99-long-enough"
"#,
        0o600,
    );
    let errs = errors(&bad);
    expect(
        &errs,
        &bad,
        5,
        "connection[x].keyexchange",
        Some("\"ikev2\""),
        "means ikev2 = insist, but version means ikev2 = never",
    );
    expect(
        &errs,
        &bad,
        8,
        "connection[y].aggressive",
        Some("true"),
        "aggressive mode is IKEv1's",
    );
    expect(
        &errs,
        &bad,
        17,
        "connection[z].ikev2",
        Some("\"sometimes\""),
        "never, permit, propose or insist",
    );
    expect(
        &errs,
        &bad,
        18,
        "connection[z].version",
        Some("3"),
        "1 or 2",
    );
}

#[test]
fn ike_fragmentation_and_rfc7427_settings() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "e.toml",
        "[daemon]\nfragmentation = false\nfragment_size = 1400\nsignature_authentication = false\n",
        0o644,
    );
    let c = Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.daemon.fragmentation);
    assert_eq!(c.daemon.fragment_size, 1400);
    assert!(!c.daemon.rfc7427);
    let dflt = DaemonSettings::default();
    assert!(dflt.fragmentation && dflt.rfc7427 && dflt.fragment_size == 1280);
    let p = write(
        d.path(),
        "e.toml",
        "[daemon]\n\nfragment_size = 100\n",
        0o644,
    );
    expect(
        &errors(&p),
        &p,
        3,
        "daemon.fragment_size",
        Some("100"),
        "576 to 65535",
    );
}

#[test]
fn ike_flood_limits_settings() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "e.toml",
        "[daemon]\nhalf_open_max = 200\nhalf_open_per_source = 4\ncookie_threshold = 0\n\
         max_init_message = 2048\nmax_message = 8192\nike_queue = 256\n",
        0o644,
    );
    let c = Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
    let l = c.daemon.ike_limits;
    assert_eq!(
        (l.half_open, l.half_open_per_source, l.cookie_threshold),
        (200, 4, 0)
    );
    assert_eq!(
        (l.max_init_message, l.max_message, l.queue),
        (2048, 8192, 256)
    );
    let dflt = IkeLimits::default();
    assert_eq!(DaemonSettings::default().ike_limits, dflt);
    assert_eq!(
        (
            dflt.half_open,
            dflt.half_open_per_source,
            dflt.cookie_threshold
        ),
        (1024, 32, 10)
    );
    assert_eq!(
        (dflt.max_init_message, dflt.max_message, dflt.queue),
        (3072, 16384, 1024)
    );
    // Out of range: the field, the value and the range.
    let p = write(d.path(), "e.toml", "[daemon]\n\nike_queue = 0\n", 0o644);
    expect(
        &errors(&p),
        &p,
        3,
        "daemon.ike_queue",
        Some("0"),
        "16 to 65536",
    );
    let p = write(d.path(), "e.toml", "[daemon]\nmax_message = 70000\n", 0o644);
    expect(
        &errors(&p),
        &p,
        2,
        "daemon.max_message",
        Some("70000"),
        "1280 to 65535",
    );
    // Limits that contradict each other.
    let p = write(
        d.path(),
        "e.toml",
        "[daemon]\nhalf_open = 8\nhalf_open_per_source = 9\n",
        0o644,
    );
    expect(
        &errors(&p),
        &p,
        3,
        "daemon.half_open_per_source",
        Some("9"),
        "more than the 8 half-open IKE SAs allowed in total",
    );
    let p = write(
        d.path(),
        "e.toml",
        "[daemon]\nhalf_open = 4\nhalf_open_per_source = 2\n",
        0o644,
    );
    expect(
        &errors(&p),
        &p,
        1,
        "daemon.cookie_threshold",
        None,
        "would never start",
    );
    let p = write(
        d.path(),
        "e.toml",
        "[daemon]\nmax_message = 2000\nmax_init_message = 3000\n",
        0o644,
    );
    expect(
        &errors(&p),
        &p,
        3,
        "daemon.max_init_message",
        Some("3000"),
        "more than max_message (2000)",
    );
}

#[test]
fn connection_authentication_model() {
    let d = tempfile::tempdir().unwrap();
    let text = r#"
[[connection]]
name = "c"
left = "192.0.2.1"
right = "192.0.2.2"
authby = "pubkey"
leftcert = "certs/a.pem"
leftkey = "/etc/keys/a.key"
rightca = "C=CH, O=Example, CN=Root"
cacerts = ["ca", "/etc/ca2"]
crls = "crl/x.crl"
"#;
    let p = write(d.path(), "e.toml", text, 0o644);
    let c = Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
    let k = &c.connections[0].conn;
    match &k.auth.local {
        auth::LocalAuthConfig::Cert { cert, key, .. } => {
            assert_eq!(cert.value, d.path().join("certs/a.pem"));
            assert_eq!(key.value, PathBuf::from("/etc/keys/a.key"));
            assert_eq!(cert.at.line, 7);
            assert_eq!(cert.at.field, "connection[c].leftcert");
        }
        o => panic!("{o:?}"),
    }
    match &k.auth.remote {
        auth::RemoteAuthConfig::Cert { cacerts, crls, ca } => {
            assert_eq!(cacerts.len(), 2);
            assert_eq!(crls[0].value, d.path().join("crl/x.crl"));
            assert_eq!(
                dn::display(&ca.as_ref().unwrap().value),
                "C=CH, O=Example, CN=Root"
            );
        }
        o => panic!("{o:?}"),
    }
    // no psk needed when neither side uses one; the engine checks its length only then
    assert!(!k.auth.uses_psk());
    assert!(k.validate().is_ok());
    // a certificate without its key, cacerts missing
    let p = write(
        d.path(),
        "e.toml",
        &text
            .replace("leftkey = \"/etc/keys/a.key\"\n", "")
            .replace("cacerts = [\"ca\", \"/etc/ca2\"]\n", ""),
        0o644,
    );
    let errs = errors(&p);
    expect(
        &errs,
        &p,
        6,
        "connection[c].authby",
        None,
        "needs our private key",
    );
    assert!(
        errs.iter()
            .any(|e| e.message.contains("CA certificates to trust")),
        "{}",
        ConfigErrors(errs.clone())
    );
    // raw keys with authby = rsasig, a psk side still needs its key
    let p = write(
        d.path(),
        "e.toml",
        "[[connection]]\nname = \"r\"\nright = \"192.0.2.2\"\nleftauth = \"rsasig\"\nleftkey = \"k\"\nrightauth = \"psk\"\n",
        0o644,
    );
    expect(&errors(&p), &p, 1, "connection[r].psk", None, "missing");
}

#[test]
fn psk_shorter_than_20_needs_weak_psk_and_warns() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "short.psk", "psk = \"twelve-chars\"\n", 0o600);
    let conf = |extra: &str| {
        format!(
            "[[connection]]\nname = \"sw\"\nleft = \"192.0.2.1\"\nright = \"192.0.2.2\"\n\
             secrets = \"short.psk\"\n{extra}"
        )
    };
    let main = write(d.path(), "a.toml", &conf(""), 0o600);
    let errs = errors(&main);
    let all: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    let all = all.join("\n");
    assert!(all.contains("<hidden, 12 characters>"), "{all}");
    assert!(all.contains("set weak_psk = true"), "{all}");
    assert!(!all.contains("twelve-chars"), "{all}");
    let main = write(d.path(), "b.toml", &conf("weak_psk = true\n"), 0o600);
    let c = Config::load(&main).unwrap();
    assert_eq!(c.connections.len(), 1);
    assert!(
        c.warnings.iter().any(|w| w
            .contains("connection sw uses a pre-shared key of 12 characters (weak_psk = true)")),
        "{:?}",
        c.warnings
    );
    assert!(!c.warnings.iter().any(|w| w.contains("twelve-chars")));
    // 20 characters and more need nothing, and nothing is said
    write(
        d.path(),
        "short.psk",
        "psk = \"twenty-characters-ok\"\n",
        0o600,
    );
    let main = write(d.path(), "c.toml", &conf(""), 0o600);
    let c = Config::load(&main).unwrap();
    assert!(!c.warnings.iter().any(|w| w.contains("pre-shared key")));
    // under 8: refused even with weak_psk
    write(d.path(), "short.psk", "psk = \"seven77\"\n", 0o600);
    let main = write(d.path(), "d.toml", &conf("weak_psk = true\n"), 0o600);
    let errs = errors(&main);
    assert!(errs
        .iter()
        .any(|e| e.to_string().contains("at least 8 characters")));
}
