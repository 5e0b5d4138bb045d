//! Whole IKEv2 exchanges between two engines in memory (no sockets), in the
//! network and dataplane model both engines' tests share
//! (`tests/common/exchange_net.rs`): datagrams carried optionally through a
//! NAT, optionally losing some; after every single SA/policy operation a
//! check that traffic could not be lost.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use control::ike::proposal::{parse_esp_proposals, parse_ike_proposals};
use control::ike::{
    Connection, DeleteReason, DpdAction, Engine, Event, Identity, IkeDrop, LocalAddr, Output,
    RemoteAddr, Settings, StartAction,
};
use espresso_core::sa::{Direction, LifetimeKind, PolicyAction, SaEvent};

#[path = "../common/exchange_net.rs"]
mod exchange_net;
use exchange_net::{assert_one_pair, count, ip, protect_spis, Nat, TestEngine};

type Net = exchange_net::Net<Engine>;
type Side = exchange_net::Side<Engine>;

impl TestEngine for Engine {
    type Conn = Connection;
    type Settings = Settings;
    const MOVES_SAS: bool = true;
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
    /// IKEv2 watches no inbound SA's packets.
    fn report_inbound(&mut self, _: &HashMap<u32, u64>) {}
}

const PSK: &[u8] = b"interop-test-psk-0123456789abcdef";

fn conn(name: &str, local: &str, remote: &str) -> Connection {
    let mut c = Connection::new(
        name,
        LocalAddr::Addr(ip(local)),
        RemoteAddr::Addr(ip(remote)),
        PSK,
    );
    c.ike_proposals = parse_ike_proposals("aes128gcm16-prfsha256-ecp256").unwrap();
    c.esp_proposals = parse_esp_proposals("aes128gcm16").unwrap();
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
        // the old pair's DELETE at once after a rekey (exchanges counted
        // right after `pump`); `rekey_delete_waits_the_switch_delay` tests
        // the default delay
        let s = Settings {
            rekey_switch_delay: Duration::ZERO,
            ..Settings::default()
        };
        Self::with_settings(a, b, s)
    }
}

fn established(ev: &[Event]) -> usize {
    count(ev, |e| matches!(e, Event::IkeEstablished { .. }))
}

mod delete_dpd;
mod lifetimes;
mod mobike;
mod nat;
mod negotiation;
mod rekey;
mod robustness;
mod spi;
