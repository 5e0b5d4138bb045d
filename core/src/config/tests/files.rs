//! Files: includes, permissions, syntax errors, hashes.

use super::*;

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
