//! The IKEv1 parser and engine never panic, whatever arrives: random bytes,
//! strongSwan's captured messages mutated (bit flips, truncation,
//! extension), and arbitrary payloads inside correctly encrypted and hashed
//! phase 2 messages of an established SA ([`super::engine`]).

use std::net::SocketAddr;
use std::time::Instant;

use proptest::prelude::*;

use super::{engine as fuzz_engine, parse as fuzz_parse};
use crate::ike::{LocalAddr, RemoteAddr};
use crate::ikev1::proposal::parse_phase1;
use crate::ikev1::{Connection, Engine, Settings};

fn fixture_messages() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ikev1");
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "txt") {
            for l in std::fs::read_to_string(&p).unwrap().lines() {
                let w: Vec<&str> = l.split_whitespace().collect();
                if let ["msg", _, _, to, hex] = w.as_slice() {
                    let mut m = hex::decode(hex).unwrap();
                    if *to == "4500" && m.len() > 4 {
                        m.drain(..4);
                    }
                    v.push(m);
                }
            }
        }
    }
    assert!(v.len() > 50);
    v
}

fn responder() -> Engine {
    let mut e = Engine::with_seed(Settings::default(), 5);
    let mut c = Connection::new(
        "r",
        LocalAddr::Addr("192.0.2.2".parse().unwrap()),
        RemoteAddr::Any,
        b"interop-test-psk-0123456789abcdef",
    );
    c.phase1_proposals =
        parse_phase1("aes128-sha1-modp2048, aes128-sha256-ecp256, aes256-sha1-modp2048").unwrap();
    e.add_connection(c, Instant::now()).unwrap();
    e
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzz_parse(&data);
        let mut e = responder();
        let from: SocketAddr = "192.0.2.1:500".parse().unwrap();
        e.handle_datagram(&data, from, "192.0.2.2:500".parse().unwrap(), Instant::now());
        e.handle_datagram(&data, from, "192.0.2.2:4500".parse().unwrap(), Instant::now());
        prop_assert!(e.stats().drops_total() >= 1 || e.stats().rx == 2);
    }

    #[test]
    fn mutated_strongswan_messages_never_panic(
        idx in 0usize..1000,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
        extra in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let msgs = fixture_messages();
        let mut m = msgs[idx % msgs.len()].clone();
        for (at, x) in flips {
            let n = m.len();
            if n > 0 {
                m[at % n] ^= x | 1;
            }
        }
        if cut % 3 == 0 {
            let n = m.len();
            m.truncate(cut % (n + 1));
        } else if cut % 3 == 1 {
            m.extend_from_slice(&extra);
            // keep the header length consistent so the payload parser runs
            if m.len() >= 28 {
                let n = m.len() as u32;
                m[24..28].copy_from_slice(&n.to_be_bytes());
            }
        }
        fuzz_parse(&m);
        let mut e = responder();
        e.handle_datagram(&m, "192.0.2.1:500".parse().unwrap(), "192.0.2.2:500".parse().unwrap(), Instant::now());
    }

    #[test]
    fn engine_fuzz_entry_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        fuzz_engine(&data);
    }
}

/// Unmutated strongSwan first messages get an answer (the responder is real).
#[test]
fn strongswan_first_messages_are_answered() {
    let msgs = fixture_messages();
    let mut answered = 0;
    for m in msgs
        .iter()
        .filter(|m| m.len() > 28 && m[8..16] == [0; 8] && m[18] == 2)
    {
        let mut e = responder();
        e.handle_datagram(
            m,
            "192.0.2.1:500".parse().unwrap(),
            "192.0.2.2:500".parse().unwrap(),
            Instant::now(),
        );
        if let Some(crate::ikev1::Output::Transmit(t)) = e.poll_output() {
            assert_eq!(&t.data[..8], &m[..8], "our MM2 answers their cookie");
            answered += 1;
        }
    }
    assert!(answered >= 4, "{answered}");
}
