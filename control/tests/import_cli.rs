//! `espresso import`, `espresso shell` and the `ipsec` name, through the
//! binary: files and modes written, the report, dry runs that write
//! nothing and hide secrets, replacing only what an import wrote, and the
//! shell's changes surviving a new process.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_espresso")
}

fn corpus(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/configs")
        .join(case)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(bin()).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn import_writes_checked_files_with_private_secrets() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("etc");
    let c = corpus("014-openswan-also-chain");
    let (conf, sec) = (c.join("ipsec.conf"), c.join("ipsec.secrets"));
    let args = [
        "import",
        "--out",
        out.to_str().unwrap(),
        "--local",
        "192.0.2.1",
        conf.to_str().unwrap(),
        sec.to_str().unwrap(),
    ];
    // Dry run: nothing written, secrets hidden, the report on stderr.
    let mut dry = args.to_vec();
    dry.insert(1, "--dry-run");
    let (code, stdout, stderr) = run(&dry);
    assert_eq!(code, 0, "{stderr}");
    assert!(!out.exists(), "a dry run wrote {}", out.display());
    assert!(
        stdout.contains("[[connection]]") && stdout.contains("psk = <hidden, 20 characters>"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("chain-of-also-secret"),
        "the dry run shows a key"
    );
    assert!(
        stderr.contains("imported: 2 of 4")
            && stderr.contains("also=no-such-template: not carried over"),
        "{stderr}"
    );
    // The real thing.
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ok (2 connection(s)"), "{stdout}");
    assert_eq!(mode(&out.join("secrets")), 0o700);
    assert_eq!(mode(&out.join("secrets/office-east-lan.psk")), 0o600);
    assert_eq!(mode(&out.join("espresso.toml")), 0o644);
    let report = std::fs::read_to_string(out.join("import-report.txt")).unwrap();
    assert!(report.contains("not active: broken"), "{report}");
    let psk = std::fs::read_to_string(out.join("secrets/office-east-lan.psk")).unwrap();
    assert!(psk.contains("psk = \"chain-of-also-secret\""));
    let cfg = out.join("espresso.toml");
    let (code, stdout, _) = run(&["--config", cfg.to_str().unwrap(), "check"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("connection office-east-lan")
            && stdout.contains("connection office-east-dmz"),
        "{stdout}"
    );
    // Again over its own output: replaced without --force.
    assert_eq!(run(&args).0, 0);
    assert!(!out.join("espresso.toml.orig").exists());
    // A hand-written espresso.toml is not replaced without --force, and kept with it.
    std::fs::write(&cfg, "# mine\n").unwrap();
    let (code, _, stderr) = run(&args);
    assert_eq!(code, 1);
    assert!(stderr.contains("--force"), "{stderr}");
    let mut forced = args.to_vec();
    forced.insert(1, "--force");
    assert_eq!(run(&forced).0, 0);
    assert_eq!(
        std::fs::read_to_string(out.join("espresso.toml.orig")).unwrap(),
        "# mine\n"
    );
}

#[test]
fn shell_commands_write_toml_that_survives_a_new_process() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_str().unwrap().to_string();
    let sh = |cmd: &str| {
        let mut a = vec!["shell", "--dir", dir.as_str()];
        a.extend(cmd.split_whitespace());
        run(&a)
    };
    assert_eq!(sh("ipsec ike-policy 20 authentication psk policy AES-256 SHA-256 14 keylife 28800 version 2").0, 0);
    assert_eq!(
        sh("ipsec esp-policy 20 policy AES-256 SHA-256 keylife 3600").0,
        0
    );
    // A key the loader refuses: the change is undone.
    let (code, _, stderr) = sh("ipsec peer 198.51.100.7 local ip 192.0.2.1 local-net 10.1.0.0/24 remote-net 10.7.0.0/24 policy ike 20 esp 20 psk short");
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("at least 8 characters"), "{stderr}");
    // Under 20 characters: refused too (an operator typing a new key gets a strong one).
    let (code, _, stderr) = sh("ipsec peer 198.51.100.7 local ip 192.0.2.1 local-net 10.1.0.0/24 remote-net 10.7.0.0/24 policy ike 20 esp 20 psk eighteen-chars-psk");
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("shorter than 20 characters"), "{stderr}");
    let (code, _, stderr) = sh("ipsec peer 198.51.100.7 local ip 192.0.2.1 local-net 10.1.0.0/24 remote-net 10.7.0.0/24 policy ike 20 esp 20 psk long-enough-secret-0123");
    assert_eq!(code, 0, "{stderr}");
    let state = d.path().join("mbox.conf");
    assert_eq!(mode(&state), 0o600);
    assert_eq!(mode(&d.path().join("secrets/peer-198.51.100.7.psk")), 0o600);
    // A new process (a restart) sees the same configuration.
    let (code, stdout, _) = sh("show ipsec config");
    assert_eq!(code, 0);
    assert!(
        stdout.contains("ipsec peer 198.51.100.7 local ip 192.0.2.1")
            && stdout.contains("psk <hidden>"),
        "{stdout}"
    );
    assert!(!stdout.contains("long-enough-secret"));
    let cfg = d.path().join("espresso.toml");
    let (code, stdout, stderr) = run(&["--config", cfg.to_str().unwrap(), "check"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("connection peer-198.51.100.7") && stdout.contains("aes256-sha256"),
        "{stdout}"
    );
    // The seed's IKEv1 policy: written live, with allow_legacy (3DES-MD5-MODP1024).
    assert_eq!(
        sh("ipsec ike-policy 10 authentication psk policy 3DES MD5 2 keylife 3600 version 1").0,
        0
    );
    let (code, stdout, _) = sh("ipsec peer 198.51.100.7 policy ike 10 esp 20");
    assert_eq!(code, 0);
    assert!(stdout.contains("allow_legacy = true"), "{stdout}");
    let piece = std::fs::read_to_string(d.path().join("conf.d/mbox.toml")).unwrap();
    assert!(
        !piece.contains("# [[connection]]")
            && piece.contains("version = 1")
            && piece.contains("ike = \"3des-md5-modp1024\""),
        "{piece}"
    );
    let (code, stdout, stderr) = run(&["--config", cfg.to_str().unwrap(), "check"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("connection peer-198.51.100.7"), "{stdout}");
    assert_eq!(sh("no ipsec peer 198.51.100.7").0, 0);
    let (_, stdout, _) = run(&["--config", cfg.to_str().unwrap(), "check"]);
    assert!(!stdout.contains("peer-198.51.100.7"), "{stdout}");
    assert_eq!(sh("ipsec nonsense").0, 2);
}

#[test]
fn answers_to_the_ipsec_name() {
    let d = tempfile::tempdir().unwrap();
    let link = d.path().join("ipsec");
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    let o = Command::new(&link).arg("version").output().unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("espresso"));
    // No daemon: exit 5 as every client command.
    let o = Command::new(&link)
        .args([
            "--socket",
            d.path().join("none.sock").to_str().unwrap(),
            "status",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(5));
}
