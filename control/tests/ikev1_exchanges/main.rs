//! Whole IKEv1 exchanges between two engines in memory (no sockets): main
//! and aggressive mode, quick mode with and without PFS, several IPsec SAs,
//! rekeys from both sides, deletes both ways, DPD, retransmission limits,
//! duplicates, replays and tampering counted as drops, NAT detection, legacy
//! proposals, the commit bit and the responder-lifetime notify, in the
//! network and dataplane model both engines' tests share
//! (`tests/common/exchange_net.rs`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use control::ike::{DeleteReason, DpdAction, LocalAddr, RemoteAddr, StartAction};
use control::ikev1::proposal::{parse_phase1, parse_phase2};
use control::ikev1::{Connection, Engine, Event, ExchangeMode, Output, Settings, V1Drop};
use espresso_core::sa::{Direction, PolicyAction, SaEvent};

#[path = "../common/exchange_net.rs"]
mod exchange_net;
use exchange_net::{assert_one_pair, count, ip, protect_spis, sending, Nat, TestEngine};

type Net = exchange_net::Net<Engine>;

impl TestEngine for Engine {
    type Conn = Connection;
    type Settings = Settings;
    const MOVES_SAS: bool = false;
    fn with_seed(settings: Settings, seed: u64) -> Self {
        Engine::with_seed(settings, seed)
    }
    fn add(&mut self, c: Connection, now: Instant) {
        self.add_connection(c, now).unwrap();
    }
    fn initiate(&mut self, name: &str, now: Instant) -> u64 {
        Engine::initiate(self, name, now).unwrap()
    }
    fn poll_output(&mut self) -> Option<Output> {
        Engine::poll_output(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Engine::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Engine::handle_timeout(self, now)
    }
    fn handle_datagram(&mut self, data: &[u8], from: SocketAddr, to: SocketAddr, now: Instant) {
        Engine::handle_datagram(self, data, from, to, now)
    }
    /// The counts of the inbound SAs a rekey collision waits on.
    fn report_inbound(&mut self, rx: &HashMap<u32, u64>) {
        for spi in self.watched_inbound() {
            self.inbound_packets(spi, rx.get(&spi).copied().unwrap_or(0));
        }
    }
}

const PSK: &[u8] = b"interop-test-psk-0123456789abcdef";

fn conn(name: &str, local: &str, remote: &str) -> Connection {
    let mut c = Connection::new(
        name,
        LocalAddr::Addr(ip(local)),
        RemoteAddr::Addr(ip(remote)),
        PSK,
    );
    c.phase1_proposals = parse_phase1("aes128-sha256-ecp256").unwrap();
    c.esp_proposals = parse_phase2("aes128gcm16").unwrap();
    c.local_id = Some(local.parse().unwrap());
    c.remote_id = Some(remote.parse().unwrap());
    c
}

/// Site A 192.0.2.1 (10.1.0.0/24) <-> site B 192.0.2.2 (10.2.0.0/24).
fn pair() -> (Connection, Connection) {
    let mut a = conn("to-b", "192.0.2.1", "192.0.2.2");
    a.local_ts = vec!["10.1.0.0/24".parse().unwrap()];
    a.remote_ts = vec!["10.2.0.0/24".parse().unwrap()];
    let mut b = conn("to-a", "192.0.2.2", "192.0.2.1");
    b.local_ts = vec!["10.2.0.0/24".parse().unwrap()];
    b.remote_ts = vec!["10.1.0.0/24".parse().unwrap()];
    (a, b)
}

impl Net {
    fn new(a: Connection, b: Connection) -> Net {
        Self::with_settings(a, b, Settings::default())
    }
}

fn established(n: &Net) -> (usize, usize) {
    let f = |e: &Event| matches!(e, Event::ChildEstablished { .. });
    (count(&n.a.events, f), count(&n.b.events, f))
}

fn with<F: FnOnce(&mut Connection, &mut Connection)>(f: F) -> Net {
    let (mut a, mut b) = pair();
    f(&mut a, &mut b);
    Net::new(a, b)
}

fn a_child(n: &Net) -> u32 {
    n.a.eng.status()[0].sa.children[0].inbound_spi
}

mod negotiation;
mod pair_switch;
mod rekey;
mod robustness;
