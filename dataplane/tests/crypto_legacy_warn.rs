//! The legacy-suite opt-in warns (RFC 8221) and never logs keys. In a test
//! binary of its own: `tracing` caches a callsite's interest per process, and
//! another test hitting the same callsite on a thread without a subscriber
//! can make the scoped subscriber miss the event.

mod crypto_common;

use crypto_common::*;
use dataplane::crypto::{build_with, BuildOptions, EncrAlg, IntegAlg, Key, Suite};

const GCM128: Suite = Suite {
    encr: EncrAlg::AesGcm128,
    integ: IntegAlg::None,
};

/// A writer into a shared buffer, for capturing log output.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn legacy_build_warns_without_leaking_keys() {
    let tdes = Suite {
        encr: EncrAlg::TripleDesCbc,
        integ: IntegAlg::HmacMd5_96,
    };
    let (ek, ak) = keys(tdes, 0x5c);
    let out = Captured::default();
    let w = out.clone();
    let sub = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || w.clone())
        .finish();
    let o = BuildOptions {
        allow_legacy: true,
        ..Default::default()
    };
    tracing::subscriber::with_default(sub, || {
        build_with(tdes, &ek, &ak, &o).expect("legacy with opt-in");
        build_with(GCM128, &Key::new(vec![1; 20]), &Key::default(), &o).expect("gcm");
    });
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text.matches("WARN").count(),
        1,
        "exactly one warning (3DES), got:\n{text}"
    );
    assert!(
        text.contains("3des-cbc") && text.contains("hmac-md5-96"),
        "{text}"
    );
    for k in [ek.bytes(), ak.bytes()] {
        assert!(!text.contains(&hex::encode(k)), "key leaked into the log");
        assert!(!text.contains(&format!("{k:?}")), "key leaked into the log");
    }
}
