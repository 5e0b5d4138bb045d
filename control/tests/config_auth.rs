//! The authentication fields of `[[connection]]` through the loader and the
//! credential loading (`control::config::load`): both vocabularies, and
//! errors that name file:line field = value.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use control::ike::{Connection, LocalAuth, RemoteAuth};

/// The configuration with its connections' credentials loaded.
fn load(p: &Path) -> Result<Vec<Connection>, control::config::ConfigErrors> {
    let c = control::config::load(p)?;
    Ok(c.connections
        .into_iter()
        .map(|k| Connection::load(k.conn).unwrap())
        .collect())
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/pki/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}
fn put(dir: &Path, name: &str, b: &[u8], mode: u32) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, b).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}
fn setup() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "certs/moon.pem", &fixture("moon.crt.pem"), 0o644);
    put(
        d.path(),
        "private/moon.key",
        &fixture("moon.key.pem"),
        0o600,
    );
    put(
        d.path(),
        "cacerts/rsa.pem",
        &fixture("rsa-ca.crt.pem"),
        0o644,
    );
    put(d.path(), "cacerts/ec.pem", &fixture("ec-ca.crt.pem"), 0o644);
    put(d.path(), "crls/rsa.crl", &fixture("rsa-ca.crl.pem"), 0o644);
    d
}

#[test]
fn certificates_in_strongswan_vocabulary() {
    let d = setup();
    let cfg = d.path().join("e.toml");
    put(
        d.path(),
        "e.toml",
        br#"
[[connection]]
conn = "moon-sun"
left = "192.0.2.1"
right = "192.0.2.2"
authby = "pubkey"
leftcert = "certs/moon.pem"
leftkey = "private/moon.key"
leftid = "C=CH, O=espresso test, CN=moon.example"
rightid = "C=CH, O=espresso test, CN=*"
rightca = "C=CH, O=espresso test, CN=RSA Root CA"
cacerts = ["cacerts"]
crls = "crls/rsa.crl"
ike = "chacha20poly1305-prfsha512-curve25519"
"#,
        0o644,
    );
    let c = load(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let k = &c[0];
    assert!(
        matches!(&k.local_auth, LocalAuth::Cert { chain, .. } if chain[0].subject_str().contains("moon"))
    );
    match &k.remote_auth {
        RemoteAuth::Cert { trust, ca } => {
            assert_eq!(trust.cas().len(), 2);
            assert!(ca.is_some());
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(
        k.local_id.as_ref().unwrap().to_string(),
        "C=CH, O=espresso test, CN=moon.example"
    );
    // the key is never in the Debug form (the reload digest uses it)
    assert!(!format!("{k:?}").contains("PRIVATE"));
}

#[test]
fn raw_rsa_keys_in_freeswan_vocabulary() {
    let d = setup();
    let (k, der) = control::pki::PrivateKey::generate_rsa(2048).unwrap();
    let entry = control::pki::rsakey::secrets_entry(&k, &der).unwrap();
    put(d.path(), "ipsec.secrets", entry.as_bytes(), 0o600);
    let mine = control::pki::rsakey::to_0s(k.public_key()).unwrap();
    let peer = control::pki::rsakey::to_0s(
        &control::pki::PrivateKey::from_bytes(&fixture("sun.key.pem"))
            .unwrap()
            .public_key()
            .clone(),
    )
    .unwrap();
    let cfg = d.path().join("e.toml");
    put(
        d.path(),
        "e.toml",
        format!(
            r#"
[[connection]]
name = "rw"
left = "192.0.2.1"
right = "192.0.2.2"
authby = "rsasig"
leftrsasigkey = "{mine}"
rightrsasigkey = "{peer}"
leftkey = "ipsec.secrets"
"#
        )
        .as_bytes(),
        0o644,
    );
    let c = load(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let k2 = &c[0];
    assert!(
        matches!(&k2.local_auth, LocalAuth::RawKey { key, .. } if key.public_key() == k.public_key())
    );
    assert!(matches!(&k2.remote_auth, RemoteAuth::RawKey { .. }));
    // leftrsasigkey that is not our key
    let text = std::fs::read_to_string(&cfg).unwrap().replace(&mine, &peer);
    put(d.path(), "e.toml", text.as_bytes(), 0o644);
    let e = load(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("leftrsasigkey") && e.contains("is not the public key of local_key"),
        "{e}"
    );
}

#[test]
fn mistakes_are_explained() {
    let d = setup();
    let cfg = d.path().join("e.toml");
    let base = r#"
[[connection]]
name = "c"
left = "192.0.2.1"
right = "192.0.2.2"
authby = "pubkey"
leftcert = "certs/moon.pem"
leftkey = "private/moon.key"
cacerts = "cacerts"
"#;
    // a private key readable by others
    std::fs::set_permissions(
        d.path().join("private/moon.key"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    put(d.path(), "e.toml", base.as_bytes(), 0o644);
    let e = load(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("e.toml:8: connection[c].leftkey") && e.contains("chmod 600"),
        "{e}"
    );
    std::fs::set_permissions(
        d.path().join("private/moon.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    // a key of another certificate
    put(
        d.path(),
        "private/other.key",
        &fixture("sun.key.pem"),
        0o600,
    );
    put(
        d.path(),
        "e.toml",
        base.replace("moon.key", "other.key").as_bytes(),
        0o644,
    );
    let e = load(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("leftcert") && e.contains("is not for local_key"),
        "{e}"
    );
    // no CA certificates
    put(
        d.path(),
        "e.toml",
        base.replace("cacerts = \"cacerts\"\n", "").as_bytes(),
        0o644,
    );
    let e = load(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("cacerts") && e.contains("CA certificates to trust"),
        "{e}"
    );
    // an unknown required CA, a bad DN, a missing file, a bad auth word
    put(
        d.path(),
        "e.toml",
        format!("{base}rightca = \"C=XX, CN=Nobody\"\n").as_bytes(),
        0o644,
    );
    let e = load(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("rightca") && e.contains("no certificate in cacerts"),
        "{e}"
    );
    put(
        d.path(),
        "e.toml",
        format!("{base}rightca = \"foo=bar\"\n").as_bytes(),
        0o644,
    );
    assert!(load(&cfg)
        .unwrap_err()
        .to_string()
        .contains("unknown attribute"));
    put(
        d.path(),
        "e.toml",
        base.replace("certs/moon.pem", "certs/nope.pem").as_bytes(),
        0o644,
    );
    let e = load(&cfg).unwrap_err().to_string();
    assert!(e.contains("nope.pem") && e.contains("No such file"), "{e}");
    put(
        d.path(),
        "e.toml",
        base.replace("\"pubkey\"", "\"xauth\"").as_bytes(),
        0o644,
    );
    assert!(load(&cfg).unwrap_err().to_string().contains("expected psk"));
    // psk is still required where a side uses it
    put(
        d.path(),
        "e.toml",
        base.replace("authby = \"pubkey\"", "rightauth = \"psk\"")
            .replace("cacerts = \"cacerts\"\n", "")
            .as_bytes(),
        0o644,
    );
    let e = load(&cfg).unwrap_err().to_string();
    assert!(e.contains("psk") && e.contains("missing"), "{e}");
}
