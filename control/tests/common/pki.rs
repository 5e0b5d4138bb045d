//! The certificate fixtures (control/tests/fixtures/pki, made with
//! strongSwan's `pki` and OpenSSL by make.sh) as the IKEv2 and IKEv1
//! signature tests (ike_certs.rs, ikev1_certs.rs) load them.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use control::pki::{Certificate, Crl, PrivateKey, TrustStore};

/// 2027-06-01: inside every fixture's validity but the expired one's.
pub fn now_wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_811_808_000)
}

pub fn fx(name: &str) -> std::path::PathBuf {
    format!("{}/tests/fixtures/pki/{name}", env!("CARGO_MANIFEST_DIR")).into()
}
pub fn key(name: &str) -> Arc<PrivateKey> {
    Arc::new(
        PrivateKey::from_bytes(&std::fs::read(fx(&format!("{name}.key.pem"))).unwrap()).unwrap(),
    )
}
pub fn cert(name: &str) -> Arc<Certificate> {
    Certificate::load(&fx(&format!("{name}.crt.pem")))
        .unwrap()
        .remove(0)
}
pub fn trust(cas: &[&str], crl: bool) -> Arc<TrustStore> {
    let mut t = TrustStore::new();
    for c in cas {
        t.add_ca(cert(c)).unwrap();
    }
    if crl {
        for c in Crl::parse_all(&std::fs::read(fx("rsa-ca.crl.pem")).unwrap()).unwrap() {
            t.add_crl(c);
        }
    }
    Arc::new(t)
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
