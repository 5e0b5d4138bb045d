//! Runs the IKEv1 engine over real UDP sockets (500 and 4500 of `--local`)
//! against another implementation, before the daemon drives it (issue 12
//! phase A). Prints one line per event and per SA the engine would install,
//! with its keys (TEST USE ONLY: keys on stdout), so that a script can
//! compare them with the peer's. `tests/interop/ikev1_strongswan.sh` runs it
//! in a network namespace against strongSwan.
//!
//! ```text
//! ikev1_probe --local 192.0.2.1 --remote 192.0.2.2 --psk KEY \
//!     --ike aes128-sha1-modp2048 --esp aes128-sha1-modp2048 \
//!     --local-subnet 10.1.0.0/24 --remote-subnet 10.2.0.0/24 \
//!     [--aggressive] [--local-id @a] [--remote-id @b] [--initiate] \
//!     [--rekey-after S] [--delete-after S] [--dpd S] [--seconds S]
//! ```
//! Exit status 0 when at least `--expect-children` IPsec SAs were established.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use clap::Parser;
use control::ike::{DpdAction, LocalAddr, RemoteAddr, StartAction};
use control::ikev1::proposal::{parse_phase1, parse_phase2};
use control::ikev1::{Connection, DataplaneOp, Engine, Event, ExchangeMode, Output, Settings};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long)]
    local: IpAddr,
    #[arg(long)]
    remote: IpAddr,
    #[arg(long)]
    psk: String,
    #[arg(long, default_value = "aes128-sha1-modp2048")]
    ike: String,
    #[arg(long, default_value = "aes128-sha1-modp2048")]
    esp: String,
    #[arg(long)]
    local_subnet: Vec<ipnet::IpNet>,
    #[arg(long)]
    remote_subnet: Vec<ipnet::IpNet>,
    #[arg(long)]
    local_id: Option<String>,
    #[arg(long)]
    remote_id: Option<String>,
    #[arg(long)]
    aggressive: bool,
    /// PFS off (the ESP proposals carry no group).
    #[arg(long)]
    no_pfs: bool,
    #[arg(long)]
    allow_legacy: bool,
    /// Start phase 1 (otherwise only respond).
    #[arg(long)]
    initiate: bool,
    /// Rekey the first IPsec SA this long after it is up.
    #[arg(long)]
    rekey_after: Option<f64>,
    /// Re-authenticate the ISAKMP SA this long after it is up.
    #[arg(long)]
    reauth_after: Option<f64>,
    /// Delete everything this long after the first IPsec SA is up.
    #[arg(long)]
    delete_after: Option<f64>,
    /// DPD delay in seconds (0 = off).
    #[arg(long, default_value_t = 0.0)]
    dpd: f64,
    /// Run this long at most.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Success needs this many IPsec SAs established (rekeys included).
    #[arg(long, default_value_t = 1)]
    expect_children: usize,
}

fn main() {
    let a = Args::parse();
    let mut c = Connection::new(
        "probe",
        LocalAddr::Addr(a.local),
        RemoteAddr::Addr(a.remote),
        a.psk.as_bytes(),
    );
    c.phase1_proposals = parse_phase1(&a.ike).expect("--ike");
    c.esp_proposals = parse_phase2(&a.esp).expect("--esp");
    c.local_ts = a.local_subnet.clone();
    c.remote_ts = a.remote_subnet.clone();
    c.local_id = a
        .local_id
        .as_deref()
        .map(|s| s.parse().expect("--local-id"));
    c.remote_id = Some(
        a.remote_id
            .as_deref()
            .map(|s| s.parse().expect("--remote-id"))
            .unwrap_or(control::ike::Identity::from_ip(a.remote)),
    );
    c.exchange = if a.aggressive {
        ExchangeMode::Aggressive
    } else {
        ExchangeMode::Main
    };
    c.pfs = !a.no_pfs;
    c.allow_legacy = a.allow_legacy;
    c.start_action = if a.initiate {
        StartAction::Start
    } else {
        StartAction::Add
    };
    c.dpd.delay = Duration::from_secs_f64(a.dpd);
    c.dpd.timeout = Duration::from_secs(10);
    c.dpd.action = DpdAction::Clear;
    let settings = Settings {
        retransmit_timeout: Duration::from_secs(1),
        ..Settings::default()
    };
    let s500 = UdpSocket::bind(SocketAddr::new(a.local, settings.ike_port)).expect("bind 500");
    let s4500 = UdpSocket::bind(SocketAddr::new(a.local, settings.natt_port)).expect("bind 4500");
    for s in [&s500, &s4500] {
        s.set_nonblocking(true).expect("nonblocking");
    }
    let mut eng = Engine::new(settings);
    let start = Instant::now();
    eng.add_connection(c, start).expect("connection");
    let mut children = 0usize;
    let mut first_child: Option<(Instant, u32, u64)> = None;
    let mut rekeyed = false;
    let mut reauthed = false;
    let mut deleted = false;
    let mut buf = vec![0u8; 65536];
    loop {
        let now = Instant::now();
        if now.duration_since(start).as_secs_f64() > a.seconds {
            break;
        }
        // outputs
        while let Some(o) = eng.poll_output() {
            match o {
                Output::Transmit(t) => {
                    let s = if t.local.port() == 4500 {
                        &s4500
                    } else {
                        &s500
                    };
                    if let Err(e) = s.send_to(&t.data, t.remote) {
                        println!("SEND-ERROR {e}");
                    }
                }
                Output::Dataplane(DataplaneOp::InstallSa(p)) => println!(
                    "SA dir={} spi={:08x} suite={}/{} enc={} auth={} encap={} local={} remote={}",
                    match p.direction {
                        espresso_core::sa::Direction::Inbound => "in",
                        espresso_core::sa::Direction::Outbound => "out",
                    },
                    p.spi,
                    p.suite.encr.name(),
                    p.suite.integ.name(),
                    hex::encode(p.enc_key.bytes()),
                    hex::encode(p.auth_key.bytes()),
                    p.encap
                        .map(|e| format!("{}-{}", e.local_port, e.remote_port))
                        .unwrap_or_else(|| "none".into()),
                    p.selectors
                        .first()
                        .map(|s| s.local.to_string())
                        .unwrap_or_default(),
                    p.selectors
                        .first()
                        .map(|s| s.remote.to_string())
                        .unwrap_or_default(),
                ),
                Output::Dataplane(op) => println!("DP {op:?}"),
                Output::Event(e) => {
                    println!("EVENT {e:?}");
                    if let Event::IkeEstablished { sa, .. } = &e {
                        // Wireshark's ikev1_decryption_table: initiator cookie, Ka
                        let ic = eng
                            .status()
                            .iter()
                            .find(|s| s.sa.id == *sa)
                            .map(|s| s.sa.spis.0);
                        if let (Some(ic), Some(k)) = (ic, eng.phase1_keys(*sa)) {
                            println!("IKEKEYS ic={ic:016x} ka={}", hex::encode(&k.ka));
                        }
                    }
                    match e {
                        Event::ChildEstablished {
                            sa, inbound_spi, ..
                        } => {
                            children += 1;
                            if first_child.is_none() {
                                first_child = Some((now, inbound_spi, sa));
                            }
                        }
                        Event::ChildRekeyed { .. } => children += 1,
                        _ => {}
                    }
                }
            }
        }
        if let Some((t0, spi, sa)) = first_child {
            let up = now.duration_since(t0).as_secs_f64();
            if a.rekey_after.is_some_and(|r| up >= r) && !rekeyed {
                rekeyed = true;
                println!("ACTION rekey child {spi:08x}");
                let _ = eng.rekey_child(spi, now);
                continue;
            }
            if a.reauth_after.is_some_and(|r| up >= r) && !reauthed {
                reauthed = true;
                println!("ACTION reauthenticate");
                let _ = eng.rekey_ike(sa, now);
                continue;
            }
            if a.delete_after.is_some_and(|d| up >= d) && !deleted {
                deleted = true;
                println!("ACTION delete");
                for id in eng.ike_sas() {
                    let _ = eng.terminate_ike(id, now);
                }
                continue;
            }
            if deleted && eng.ike_sas().is_empty() && up > a.delete_after.unwrap_or(0.0) + 0.5 {
                break;
            }
        }
        // inputs
        let mut got = false;
        for (s, port) in [(&s500, 500u16), (&s4500, 4500u16)] {
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                got = true;
                eng.handle_datagram(
                    &buf[..n],
                    from,
                    SocketAddr::new(a.local, port),
                    Instant::now(),
                );
            }
        }
        if eng.poll_timeout().is_some_and(|t| t <= Instant::now()) {
            eng.handle_timeout(Instant::now());
            continue;
        }
        if !got {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let st = eng.stats();
    println!(
        "STATS rx={} tx={} retransmits={} repeated={} isakmp={} ipsec={} drops={}",
        st.rx,
        st.tx,
        st.retransmits,
        st.replies_repeated,
        st.isakmp_established,
        st.ipsec_established,
        control::ikev1::V1Drop::ALL
            .iter()
            .filter(|r| st.drop_count(**r) > 0)
            .map(|r| format!("{}:{}", r.name(), st.drop_count(*r)))
            .collect::<Vec<_>>()
            .join(",")
    );
    for s in eng.status() {
        println!(
            "STATUS {} sa={} mode={} proposal={} children={} nat_local={} nat_remote={} natt={}",
            s.sa.state,
            s.sa.id,
            s.mode.name(),
            s.sa.proposal,
            s.sa.children.len(),
            s.sa.nat_local,
            s.sa.nat_remote,
            s.nat_t
        );
    }
    std::process::exit(if children >= a.expect_children { 0 } else { 1 });
}
