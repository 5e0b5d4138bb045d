//! The fuzz entry point of the IKE message parser (`cargo fuzz run ike`, in
//! dataplane/fuzz): built for fuzzing (`cfg(fuzzing)`, set by cargo-fuzz)
//! and for the tests below, not into the daemon.

use super::proposal::{xforms_to_string, ChildSuite, IkeSuite, Xform};
use super::ts::range_to_nets;
use super::wire::{notify, payload, Message, Payloads};
use super::{frag, sigauth};

/// Fuzz entry point for the message parser: parses `data` as an IKE message
/// and walks every payload view (proposals, transforms, selectors, deletes).
/// Never panics, whatever the input.
pub fn parse(data: &[u8]) {
    if let Ok(m) = Message::parse(data) {
        walk(&m.payloads);
    }
    // the same bytes as the inside of an SK payload, for every first payload type
    for first in [
        payload::SA,
        payload::NOTIFY,
        payload::TSI,
        payload::DELETE,
        payload::IDI,
    ] {
        if let Ok(p) = Payloads::parse(data, first, 0) {
            walk(&p);
        }
    }
}

/// Fuzz entry point for the certificate-related IKE parsers: CERT, CERTREQ
/// and AUTH payload chains (the certificates in them, CERTREQ hashes, RFC
/// 7427 AUTH data checked against a key made from the input), and the
/// RFC 7383 fragment numbers and reassembly. Never panics.
pub fn cert_payloads(data: &[u8]) {
    for first in [payload::CERT, payload::CERTREQ, payload::AUTH] {
        if let Ok(p) = Payloads::parse(data, first, 0) {
            walk(&p);
            for (_, der) in &p.certs {
                let _ = crate::pki::Certificate::from_der(der);
            }
            let _ = sigauth::certreq_hashes(&p.certreqs);
            if let Some(a) = p.auth {
                if let Ok(k) = crate::pki::rsakey::from_rfc3110(&data[..data.len().min(300)]) {
                    let _ = sigauth::verify_auth(&k, a.method, a.data, data);
                }
            }
        }
    }
    // fragments: (number, total, next, length) records, reassembled within limits
    let l = frag::Limits {
        max_fragments: 16,
        max_bytes: 4096,
        timeout: std::time::Duration::from_secs(30),
    };
    let now = std::time::Instant::now();
    let mut r: Option<frag::Reassembly> = None;
    for c in data.chunks(6) {
        let Some((num, total)) = frag::skf_numbers(c) else {
            break;
        };
        if frag::Reassembly::check_numbers(num, total, &l).is_err() {
            continue;
        }
        let plain = zeroize::Zeroizing::new(vec![0u8; usize::from(*c.get(5).unwrap_or(&0))]);
        let ra = match r.take() {
            Some(x) if x.fits(1, false, total, now, &l) => r.insert(x),
            _ => r.insert(frag::Reassembly::new(1, false, total, now)),
        };
        if let Ok(Some(_)) = ra.add(num, *c.get(4).unwrap_or(&0), plain, &l) {
            r = None;
        }
    }
}

fn walk(p: &Payloads<'_>) {
    if let Some(sa) = p.sa {
        if let Ok(props) = sa.proposals() {
            for pr in props {
                if let Ok(x) = pr.transforms() {
                    let xs: Vec<Xform> = x.into_iter().map(Into::into).collect();
                    let _ = IkeSuite::from_xforms(&xs);
                    let _ = ChildSuite::from_xforms(&xs);
                    let _ = xforms_to_string(&xs, true);
                }
            }
        }
    }
    for d in &p.deletes {
        let _ = d.spis32().count();
    }
    for t in p.tsi.iter().chain(p.tsr.iter()).flatten() {
        let _ = range_to_nets(t);
    }
    for n in &p.notifies {
        let _ = n.spi32();
        if n.ntype == notify::SIGNATURE_HASH_ALGORITHMS {
            let _ = sigauth::parse_hash_notify(n.data);
        }
    }
    let _ = sigauth::certreq_hashes(&p.certreqs);
    if let Some((_, _, body)) = p.skf {
        let _ = frag::skf_numbers(body);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use proptest::prelude::*;

    use super::parse;
    use crate::ike::{Connection, Engine, LocalAddr, Output, RemoteAddr, Settings};

    /// The IKE_SA_INIT request an initiator sends first.
    fn first_message() -> Vec<u8> {
        let now = Instant::now();
        let mut c = Connection::new(
            "fuzz",
            LocalAddr::Addr("192.0.2.1".parse().unwrap()),
            RemoteAddr::Addr("192.0.2.2".parse().unwrap()),
            b"fuzz-key-of-20-bytes",
        );
        c.local_ts = vec!["10.1.0.0/24".parse().unwrap()];
        c.remote_ts = vec!["10.2.0.0/24".parse().unwrap()];
        let mut e = Engine::with_seed(Settings::default(), 7);
        e.add_connection(c, now).unwrap();
        e.initiate("fuzz", now).unwrap();
        loop {
            match e.poll_output() {
                Some(Output::Transmit(t)) => return t.data,
                Some(_) => continue,
                None => panic!("no IKE_SA_INIT"),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            parse(&data);
        }

        #[test]
        fn mutated_messages_never_panic(flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..8), trunc in proptest::option::of(any::<u16>())) {
            let mut m = first_message();
            for (at, x) in flips {
                let i = at as usize % m.len();
                m[i] ^= x | 1;
            }
            if let Some(t) = trunc {
                m.truncate(t as usize % (m.len() + 1));
            }
            parse(&m);
        }
    }
}
