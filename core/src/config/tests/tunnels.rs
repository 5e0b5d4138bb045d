//! Manually keyed tunnels and policy rules: SPIs, keys, algorithms, values.

use super::*;

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
