//! The fuzz entry point of the IKE message parser (`cargo fuzz run ike`, in
//! dataplane/fuzz): built for fuzzing (`cfg(fuzzing)`, set by cargo-fuzz)
//! and for the tests below, not into the daemon.

use super::proposal::{xforms_to_string, ChildSuite, IkeSuite, Xform};
use super::ts::range_to_nets;
use super::wire::{notify, payload, Message, Payloads};
use super::Engine;
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

/// Bytes of the fuzzer's input, read front to back (empty when used up).
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

type Queue = std::collections::VecDeque<(Vec<u8>, std::net::SocketAddr, std::net::SocketAddr)>;

/// IKE proposals the harness's connections use (`data[0] % 3`): an AEAD,
/// CBC with HMAC, and ChaCha20-Poly1305, so that each SK cipher is reached.
const IKE_SUITES: [&str; 3] = [
    "aes128gcm16-prfsha256-ecp256",
    "aes128-sha256-ecp256",
    "chacha20poly1305-prfsha256-ecp256",
];

/// Applies the input's edits to `b`: a count byte (low 4 bits: that many
/// (position, XOR value) flips; bit 4: truncate at a position; bit 5:
/// insert bytes at a position).
fn mutate(inp: &mut Input<'_>, b: &mut Vec<u8>) {
    let Some(n) = inp.u8() else { return };
    for _ in 0..(n & 0x0f) {
        let (Some(at), Some(x)) = (inp.u16(), inp.u8()) else {
            return;
        };
        if !b.is_empty() {
            let i = usize::from(at) % b.len();
            b[i] ^= x;
        }
    }
    if n & 0x10 != 0 {
        let at = usize::from(inp.u16().unwrap_or(0));
        b.truncate(at % (b.len() + 1));
    }
    if n & 0x20 != 0 {
        let at = usize::from(inp.u16().unwrap_or(0)) % (b.len() + 1);
        let len = usize::from(inp.u8().unwrap_or(0));
        let ins = inp.bytes(len).to_vec();
        b.splice(at..at, ins);
    }
}

/// Moves an engine's output to its outgoing queue.
fn drain(e: &mut Engine, q: &mut Queue) {
    use crate::ike::Output;
    while let Some(o) = e.poll_output() {
        if let Output::Transmit(t) = o {
            if q.len() < 64 {
                q.push_back((t.data, t.local, t.remote));
            }
        }
    }
}

/// The IKE SA of engine `e` that `msg` belongs to (by SPIs).
fn sa_of<'e>(e: &'e Engine, msg: &[u8]) -> Option<&'e super::sa::IkeSa> {
    let h = super::wire::Header::parse(msg).ok()?;
    e.sas
        .values()
        .find(|s| s.fuzz_spis() == (h.spi_i(), h.spi_r()))
}

/// Delivers the next datagram of `q` to `to`, changed by the input first:
/// an encrypted message is opened with the keys of the receiving IKE SA,
/// its inner payloads (and first payload type) edited, and sealed again as
/// the sender would, so that edits reach the parsers behind decryption; a
/// clear one (IKE_SA_INIT) is edited as it is.
fn deliver(inp: &mut Input<'_>, q: &mut Queue, to: &mut Engine, now: std::time::Instant, iv: u64) {
    let Some((mut data, from, dst)) = q.pop_front() else {
        return;
    };
    let marker = from.port() == 4500 && data.starts_with(&[0, 0, 0, 0]);
    if marker {
        data.drain(..4);
    }
    let sealed = sa_of(to, &data).and_then(|sa| {
        let (first, mut inner) = sa.fuzz_open(&data)?;
        let h = super::wire::Header::parse(&data).ok()?;
        let mut first = [first];
        mutate(inp, &mut inner);
        if inp.0.first().is_some_and(|&b| b == 0xff) {
            inp.u8();
            first[0] = inp.u8().unwrap_or(first[0]);
        }
        sa.fuzz_seal(
            h.exchange(),
            h.is_response(),
            h.message_id(),
            first[0],
            &inner,
            iv,
        )
    });
    let mut data = match sealed {
        Some(m) => m,
        None => {
            mutate(inp, &mut data);
            data
        }
    };
    if marker {
        data.splice(0..0, [0u8; 4]);
    }
    to.handle_datagram(&data, from, dst, now);
}

/// Fuzz entry point of the whole IKEv2 engine: two engines (A initiates,
/// B responds; deterministic randomness, PSK, a child SA each way) talk in
/// memory while the input drives them. `data[0]`: the IKE suite (`% 3`),
/// PFS (bit 2), short lifetimes (bit 3), NAT-T ports (bit 4), and whether
/// the pair is first established untouched (bit 7). Then operations, one
/// tag byte each:
///
/// - `0`/`1`: deliver A's / B's next datagram to the other, edited (see
///   [`deliver`]: inner payloads of encrypted messages are edited in the
///   clear and sealed again with the negotiated keys);
/// - `2`: time moves by `byte * 250 ms`, timers run (retransmissions, DPD,
///   rekeys, expiries, half-open timeouts);
/// - `3`/`4`: A / B starts something: initiate, rekey the first child,
///   rekey the IKE SA, DPD, delete the first child, delete the IKE SA;
/// - `5`: B receives a request built by the harness as A would send it:
///   exchange, message id (the expected one or any), first payload type
///   and inner payload bytes from the input, sealed with A's keys;
/// - `6`: the same as an answer to B's outstanding request;
/// - `7`: B receives a raw datagram from the input (port 500 or 4500);
/// - `8`: B gets a dataplane event (soft/hard expire, sequence exhausted)
///   for one of its child SAs;
/// - `9`: A's next datagram is lost; `10`: it is delivered twice;
/// - anything else: every queued datagram is delivered unchanged until
///   both engines are quiet.
///
/// Never panics.
pub fn engine(data: &[u8]) {
    let _ = run(data);
}

/// [`engine`], returning both engines (A, B) for the tests to inspect.
fn run(data: &[u8]) -> Option<(Engine, Engine)> {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::time::Duration;

    use espresso_core::sa::{Direction, LifetimeKind, SaEvent};

    use super::config::{Connection, LocalAddr, RemoteAddr};
    use super::wire::exchange;
    use super::{Engine, Settings};

    let mut inp = Input(data);
    let cfg = inp.u8()?;
    let a_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let b_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    let mk = |name: &str, l: IpAddr, r: IpAddr, lnet: &str, rnet: &str| {
        let mut c = Connection::new(
            name,
            LocalAddr::Addr(l),
            RemoteAddr::Addr(r),
            b"fuzzing-psk-0123456789",
        );
        c.ike_proposals = espresso_core::alg::parse_ike_proposals(IKE_SUITES[usize::from(cfg % 3)])
            .unwrap_or_default();
        let esp = if cfg & 4 != 0 {
            "aes128gcm16-ecp256, aes128-sha256-ecp256"
        } else {
            "aes128gcm16, aes128-sha256"
        };
        c.esp_proposals = espresso_core::alg::parse_esp_proposals(esp).unwrap_or_default();
        c.pfs = cfg & 4 != 0;
        c.local_ts = rnet_list(lnet);
        c.remote_ts = rnet_list(rnet);
        c.dpd.delay = Duration::from_secs(10);
        c.dpd.timeout = Duration::from_secs(30);
        if cfg & 8 != 0 {
            c.ike_lifetime = Duration::from_secs(60);
            c.child_lifetime = Duration::from_secs(30);
            c.margin = Duration::from_secs(10);
        }
        c
    };
    let mut settings = Settings::default();
    if cfg & 16 != 0 {
        settings.ike_port = 4500;
    }
    let mut now = std::time::Instant::now();
    let mut a = Engine::with_seed(settings.clone(), 1);
    let mut b = Engine::with_seed(settings, 2);
    if a.add_connection(mk("a", a_ip, b_ip, "10.1.0.0/24", "10.2.0.0/24"), now)
        .is_err()
        || b.add_connection(mk("b", b_ip, a_ip, "10.2.0.0/24", "10.1.0.0/24"), now)
            .is_err()
    {
        return None;
    }
    let (mut qa, mut qb) = (Queue::new(), Queue::new());
    let _ = a.initiate("a", now);
    drain(&mut a, &mut qa);
    let pump = |a: &mut Engine, b: &mut Engine, qa: &mut Queue, qb: &mut Queue, now| {
        for _ in 0..64 {
            if qa.is_empty() && qb.is_empty() {
                break;
            }
            if let Some((d, f, t)) = qa.pop_front() {
                b.handle_datagram(&d, f, t, now);
                drain(b, qb);
            }
            if let Some((d, f, t)) = qb.pop_front() {
                a.handle_datagram(&d, f, t, now);
                drain(a, qa);
            }
        }
    };
    if cfg & 0x80 != 0 {
        pump(&mut a, &mut b, &mut qa, &mut qb, now);
    }
    let mut iv = 0u64;
    let mut steps = 0;
    while let Some(op) = inp.u8() {
        steps += 1;
        if steps > 256 {
            break;
        }
        iv += 1;
        match op {
            0 => {
                deliver(&mut inp, &mut qa, &mut b, now, iv);
                drain(&mut b, &mut qb);
            }
            1 => {
                deliver(&mut inp, &mut qb, &mut a, now, iv);
                drain(&mut a, &mut qa);
            }
            2 => {
                now += Duration::from_millis(250 * u64::from(inp.u8().unwrap_or(1)));
                for e in [&mut a, &mut b] {
                    if e.poll_timeout().is_some_and(|t| t <= now) {
                        e.handle_timeout(now);
                    }
                }
                drain(&mut a, &mut qa);
                drain(&mut b, &mut qb);
            }
            3 | 4 => {
                let what = inp.u8().unwrap_or(0);
                let (e, q, name) = if op == 3 {
                    (&mut a, &mut qa, "a")
                } else {
                    (&mut b, &mut qb, "b")
                };
                let ike = e.ike_sas().first().copied();
                let child = e
                    .status()
                    .iter()
                    .flat_map(|s| s.children.iter().map(|c| c.inbound_spi))
                    .next();
                let _ = match (what % 6, ike, child) {
                    (0, _, _) => e.initiate(name, now).map(|_| ()),
                    (1, _, Some(c)) => e.rekey_child(c, now),
                    (2, Some(i), _) => e.rekey_ike(i, now),
                    (3, Some(i), _) => e.dpd(i, now),
                    (4, _, Some(c)) => e.terminate_child(c, now),
                    (5, Some(i), _) => e.terminate_ike(i, now),
                    _ => Ok(()),
                };
                drain(e, q);
            }
            5 | 6 => {
                let (Some(x), Some(mid), Some(first), Some(len)) =
                    (inp.u8(), inp.u8(), inp.u8(), inp.u16())
                else {
                    break;
                };
                let inner = inp.bytes(usize::from(len)).to_vec();
                let exch = match x % 5 {
                    0 => exchange::CREATE_CHILD_SA,
                    1 => exchange::INFORMATIONAL,
                    2 => exchange::IKE_AUTH,
                    3 => exchange::IKE_SA_INIT,
                    _ => x,
                };
                let built = b.sas.values().find_map(|s| {
                    let (peer_next, ours) = s.fuzz_ids();
                    let (response, id) = if op == 5 {
                        (false, if mid < 128 { peer_next } else { u32::from(mid) })
                    } else {
                        let (id, _) = ours?;
                        (true, if mid < 128 { id } else { u32::from(mid) })
                    };
                    let m = s.fuzz_seal(exch, response, id, first, &inner, iv)?;
                    Some((m, s.remote, s.local))
                });
                if let Some((m, from, to)) = built {
                    let m = if to.port() == 4500 {
                        let mut v = vec![0u8; 4];
                        v.extend_from_slice(&m);
                        v
                    } else {
                        m
                    };
                    b.handle_datagram(&m, from, to, now);
                    drain(&mut b, &mut qb);
                }
            }
            7 => {
                let Some(len) = inp.u16() else { break };
                let natt = len & 0x8000 != 0;
                let d = inp.bytes(usize::from(len & 0x7fff)).to_vec();
                let port = if natt { 4500 } else { 500 };
                b.handle_datagram(
                    &d,
                    SocketAddr::new(a_ip, port),
                    SocketAddr::new(b_ip, port),
                    now,
                );
                drain(&mut b, &mut qb);
            }
            8 => {
                let (Some(k), Some(i)) = (inp.u8(), inp.u8()) else {
                    break;
                };
                let kids: Vec<(u32, u32)> = b
                    .status()
                    .iter()
                    .flat_map(|s| s.children.iter().map(|c| (c.inbound_spi, c.outbound_spi)))
                    .collect();
                let Some(&(inb, outb)) = kids.get(usize::from(i) % kids.len().max(1)) else {
                    continue;
                };
                let (spi, direction) = if k & 1 == 0 {
                    (inb, Direction::Inbound)
                } else {
                    (outb, Direction::Outbound)
                };
                let kind = if k & 2 == 0 {
                    LifetimeKind::Bytes
                } else {
                    LifetimeKind::Packets
                };
                let ev = match (k >> 2) % 3 {
                    0 => SaEvent::SoftExpire {
                        spi,
                        direction,
                        kind,
                    },
                    1 => SaEvent::HardExpire {
                        spi,
                        direction,
                        kind,
                    },
                    _ => SaEvent::SeqExhausted { spi: outb },
                };
                b.handle_dataplane_event(&ev, now);
                drain(&mut b, &mut qb);
            }
            9 => {
                qa.pop_front();
            }
            10 => {
                if let Some(m) = qa.front().cloned() {
                    qa.push_front(m);
                }
            }
            _ => pump(&mut a, &mut b, &mut qa, &mut qb, now),
        }
    }
    pump(&mut a, &mut b, &mut qa, &mut qb, now);
    Some((a, b))
}

fn rnet_list(s: &str) -> Vec<ipnet::IpNet> {
    s.parse().map(|n| vec![n]).unwrap_or_default()
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

    /// The engine harness establishes the pair with every IKE suite, and a
    /// request it seals with the negotiated keys is opened and answered by
    /// B (so fuzzed payloads reach the parsers behind decryption).
    #[test]
    fn engine_harness_establishes_and_its_sealed_requests_are_answered() {
        for cfg in [0x80u8, 0x81, 0x82, 0x86, 0x9c] {
            let (a, b) = super::run(&[cfg]).unwrap();
            for e in [&a, &b] {
                let st = e.status();
                assert_eq!(st.len(), 1, "cfg {cfg:#x}: {st:?}");
                assert_eq!(st[0].state, "ESTABLISHED", "cfg {cfg:#x}");
                assert_eq!(st[0].children.len(), 1, "cfg {cfg:#x}");
            }
            // an empty INFORMATIONAL request (liveness check) with the expected id
            let (_, b2) = super::run(&[cfg, 5, 1, 0, 0, 0, 0]).unwrap();
            assert_eq!(b2.stats().tx, b.stats().tx + 1, "cfg {cfg:#x}: no answer");
            assert_eq!(b2.stats().drops_total(), 0, "cfg {cfg:#x}");
            // the same request after A's edit of the inner bytes: an INVALID
            // payload chain is answered or dropped, never a decryption failure
            let (_, b3) = super::run(&[cfg, 5, 0, 0, 33, 0, 4, 0, 0, 0, 4]).unwrap();
            assert!(b3.stats().rx > b.stats().rx);
        }
    }

    /// A rekey of the first child by A, delivered to B with one inner byte
    /// flipped, and time running on: no panic (smoke of the op codes).
    #[test]
    fn engine_operations_smoke() {
        for ops in [
            &[0x88u8, 3, 1, 0, 1, 7, 0, 9, 11, 2, 200, 2, 200, 11][..],
            &[
                0x08, 0, 1, 0, 9, 0, 0, 1, 0, 11, 4, 2, 1, 0, 8, 4, 0, 8, 1, 0, 2, 255,
            ],
            &[0x80, 4, 5, 1, 0, 2, 250, 2, 250, 2, 250, 11],
            &[0x84, 6, 0, 0, 0, 0, 0, 7, 0, 3, 1, 2, 3],
        ] {
            super::engine(ops);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

        #[test]
        fn engine_random_operations_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            super::engine(&data);
        }

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
