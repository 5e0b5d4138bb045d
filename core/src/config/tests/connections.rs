//! [[connection]]: vocabulary, errors, IKE versions and IKEv1 fields, authentication, IKE settings.

use super::*;

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
