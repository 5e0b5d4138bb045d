//! IKE SA setups per second of espresso's IKEv2 engine on one core: an
//! initiator and a responder engine in one thread, datagrams handed from one
//! to the other in memory (no sockets), PSK authentication, IKE
//! aes128gcm16-prfsha256-ecp256, one child SA (aes128gcm16) per IKE SA.
//! Every setup is checked: both IKE SAs and both child SAs must be reported
//! established, else the run fails.
//!
//!   ike_rate [--setups N] [--parallel P]
//!
//! Prints `ike_setups_per_s ours: X` and the CPU time per setup.

use std::net::IpAddr;
use std::time::Instant;

use control::ike::proposal::{parse_esp_proposals, parse_ike_proposals};
use control::ike::{Connection, Engine, Event, LocalAddr, Output, RemoteAddr, Settings};

fn conn(local: IpAddr, remote: IpAddr, lnet: &str, rnet: &str) -> Connection {
    let mut c = Connection::new(
        "bench",
        LocalAddr::Addr(local),
        RemoteAddr::Addr(remote),
        b"ike-rate-benchmark-psk-0123456789",
    );
    c.ike_proposals = parse_ike_proposals("aes128gcm16-prfsha256-ecp256").expect("ike proposal");
    c.esp_proposals = parse_esp_proposals("aes128gcm16").expect("esp proposal");
    c.local_ts = vec![lnet.parse().expect("net")];
    c.remote_ts = vec![rnet.parse().expect("net")];
    c.pfs = false;
    c
}

/// Moves datagrams between the engines until both are quiet; counts events.
fn shuttle(a: &mut Engine, b: &mut Engine, now: Instant, est: &mut [u64; 4]) {
    loop {
        let mut moved = false;
        let mut to_b = Vec::new();
        while let Some(o) = a.poll_output() {
            match o {
                Output::Transmit(t) => to_b.push(t),
                Output::Event(Event::IkeEstablished { .. }) => est[0] += 1,
                Output::Event(Event::ChildEstablished { .. }) => est[1] += 1,
                _ => {}
            }
        }
        for t in to_b {
            moved = true;
            b.handle_datagram(&t.data, t.local, t.remote, now);
        }
        let mut to_a = Vec::new();
        while let Some(o) = b.poll_output() {
            match o {
                Output::Transmit(t) => to_a.push(t),
                Output::Event(Event::IkeEstablished { .. }) => est[2] += 1,
                Output::Event(Event::ChildEstablished { .. }) => est[3] += 1,
                _ => {}
            }
        }
        for t in to_a {
            moved = true;
            a.handle_datagram(&t.data, t.local, t.remote, now);
        }
        if !moved {
            return;
        }
    }
}

fn thread_cpu_s() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

fn main() {
    let mut setups: u64 = 2000;
    let mut parallel: u64 = 16;
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let v = args.get(i + 1).and_then(|v| v.parse().ok());
        match (args[i].as_str(), v) {
            ("--setups", Some(n)) => setups = n,
            ("--parallel", Some(n)) => parallel = n.max(1),
            _ => {
                eprintln!("usage: ike_rate [--setups N] [--parallel P]");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    let ia: IpAddr = "192.0.2.1".parse().expect("addr");
    let ib: IpAddr = "192.0.2.2".parse().expect("addr");
    let now = Instant::now();
    let mut a = Engine::new(Settings::default());
    let mut b = Engine::new(Settings {
        cookie_threshold: usize::MAX,
        ..Settings::default()
    });
    a.add_connection(conn(ia, ib, "10.1.0.0/24", "10.2.0.0/24"), now)
        .expect("connection A");
    b.add_connection(conn(ib, ia, "10.2.0.0/24", "10.1.0.0/24"), now)
        .expect("connection B");
    let mut est = [0u64; 4];
    // warm-up
    a.initiate("bench", now).expect("initiate");
    shuttle(&mut a, &mut b, now, &mut est);
    assert_eq!(est, [1, 1, 1, 1], "warm-up setup failed");
    est = [0; 4];
    let cpu0 = thread_cpu_s();
    let t0 = Instant::now();
    let mut started = 0;
    while started < setups {
        let batch = parallel.min(setups - started);
        for _ in 0..batch {
            a.initiate("bench", now).expect("initiate");
        }
        started += batch;
        shuttle(&mut a, &mut b, now, &mut est);
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = thread_cpu_s() - cpu0;
    if est != [setups; 4] {
        eprintln!(
            "ike_rate: not every setup completed: IKE SAs {}/{} (initiator/responder), child SAs {}/{}, of {setups}",
            est[0], est[2], est[1], est[3]
        );
        std::process::exit(1);
    }
    println!(
        "ike_setups_per_s ours: {:.0} (wall {:.3} s, cpu {:.3} s, {setups} setups, {parallel} in flight, both ends in one thread)",
        setups as f64 / wall,
        wall,
        cpu
    );
}
