//! Prometheus text exposition of the daemon's status: per-tunnel packets,
//! bytes and drops by reason (down tunnels included, with zeros and their
//! state), per-worker totals, dataplane health.

use std::fmt::Write as _;

use espresso_core::drop::DropReason;

use crate::daemon::api::{SaStatus, Status};

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes a metric family's HELP and TYPE lines.
fn head(o: &mut String, name: &str, ty: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}");
    let _ = writeln!(o, "# TYPE {name} {ty}");
}

/// Renders `status` in the Prometheus text format (version 0.0.4).
pub fn render(st: &Status) -> String {
    let mut o = String::new();
    processes(&mut o, st);
    tunnels(&mut o, st);
    ike(&mut o, st);
    workers(&mut o, st);
    o
}

/// The dataplane's and the control process's health.
fn processes(o: &mut String, st: &Status) {
    head(
        o,
        "espresso_dataplane_up",
        "gauge",
        "1 while a dataplane process is attached to the shared memory.",
    );
    let _ = writeln!(o, "espresso_dataplane_up {}", u8::from(st.dataplane.alive));
    head(
        o,
        "espresso_dataplane_generation",
        "gauge",
        "Dataplane starts on this shared-memory region.",
    );
    let _ = writeln!(
        o,
        "espresso_dataplane_generation {}",
        st.dataplane.generation
    );
    head(
        o,
        "espresso_dataplane_heartbeat_age_seconds",
        "gauge",
        "Seconds since the dataplane's last heartbeat.",
    );
    let _ = writeln!(
        o,
        "espresso_dataplane_heartbeat_age_seconds {:.3}",
        st.dataplane.heartbeat_age_ms as f64 / 1000.0
    );
    head(
        o,
        "espresso_dataplane_events_lost_total",
        "counter",
        "Events the dataplane could not queue.",
    );
    let _ = writeln!(
        o,
        "espresso_dataplane_events_lost_total {}",
        st.dataplane.events_lost
    );
    head(
        o,
        "espresso_dataplane_tap_lost_total",
        "counter",
        "Tapped packets the dataplane could not queue.",
    );
    let _ = writeln!(
        o,
        "espresso_dataplane_tap_lost_total {}",
        st.dataplane.tap_lost
    );
    head(
        o,
        "espresso_control_generation",
        "gauge",
        "Control daemon starts on this shared-memory region.",
    );
    let _ = writeln!(o, "espresso_control_generation {}", st.control.generation);
}

/// Per tunnel, policy and connection: state, packets, bytes, drops, sequence.
fn tunnels(o: &mut String, st: &Status) {
    head(
        o,
        "espresso_tunnel_up",
        "gauge",
        "1 if the tunnel (or policy) is installed and active in the dataplane.",
    );
    for t in &st.tunnels {
        let _ = writeln!(
            o,
            "espresso_tunnel_up{{tunnel=\"{}\",kind=\"{}\"}} {}",
            esc(&t.name),
            t.kind,
            u8::from(t.state == "up" || t.state == "degraded")
        );
    }
    head(
        o,
        "espresso_tunnel_state",
        "gauge",
        "1 for the tunnel's current state (up, degraded, down, pending, expired, error).",
    );
    for t in &st.tunnels {
        for s in ["up", "degraded", "down", "pending", "expired", "error"] {
            let _ = writeln!(
                o,
                "espresso_tunnel_state{{tunnel=\"{}\",state=\"{s}\"}} {}",
                esc(&t.name),
                u8::from(t.state == s)
            );
        }
    }
    type Get = fn(&SaStatus) -> u64;
    let sa_metrics: [(&str, &str, Get); 2] = [
        (
            "espresso_tunnel_packets_total",
            "Packets through the tunnel's SAs since they were installed.",
            |s| s.packets,
        ),
        (
            "espresso_tunnel_bytes_total",
            "Bytes through the tunnel's SAs since they were installed.",
            |s| s.bytes,
        ),
    ];
    for (name, help, get) in sa_metrics {
        head(o, name, "counter", help);
        for t in st.tunnels.iter().filter(|t| t.kind != "policy") {
            for (dir, sa) in [("in", &t.inbound), ("out", &t.outbound)] {
                let v = sa.as_ref().map_or(0, get);
                let _ = writeln!(
                    o,
                    "{name}{{tunnel=\"{}\",direction=\"{dir}\"}} {v}",
                    esc(&t.name)
                );
            }
        }
    }
    head(
        o,
        "espresso_tunnel_drops_total",
        "counter",
        "Packets of the tunnel dropped, by reason.",
    );
    for t in st.tunnels.iter().filter(|t| t.kind != "policy") {
        for (dir, sa) in [("in", &t.inbound), ("out", &t.outbound)] {
            for r in DropReason::ALL {
                let v = sa
                    .as_ref()
                    .and_then(|s| s.drops_by_reason.get(r.as_str()).copied())
                    .unwrap_or(0);
                let _ = writeln!(
                    o,
                    "espresso_tunnel_drops_total{{tunnel=\"{}\",direction=\"{dir}\",reason=\"{}\"}} {v}",
                    esc(&t.name),
                    r.as_str()
                );
            }
        }
    }
    head(
        o,
        "espresso_tunnel_sequence",
        "gauge",
        "Outbound: next sequence number; inbound: highest received.",
    );
    for t in st.tunnels.iter().filter(|t| t.kind != "policy") {
        for (dir, sa) in [("in", &t.inbound), ("out", &t.outbound)] {
            let _ = writeln!(
                o,
                "espresso_tunnel_sequence{{tunnel=\"{}\",direction=\"{dir}\"}} {}",
                esc(&t.name),
                sa.as_ref().map_or(0, |s| s.seq)
            );
        }
    }
}

/// Per worker: packets, bytes, drops by reason.
fn workers(o: &mut String, st: &Status) {
    head(
        o,
        "espresso_worker_packets_total",
        "counter",
        "Packets received and sent by each dataplane worker.",
    );
    for w in &st.workers {
        let _ = writeln!(
            o,
            "espresso_worker_packets_total{{worker=\"{}\",direction=\"rx\"}} {}",
            w.worker, w.rx_packets
        );
        let _ = writeln!(
            o,
            "espresso_worker_packets_total{{worker=\"{}\",direction=\"tx\"}} {}",
            w.worker, w.tx_packets
        );
    }
    head(
        o,
        "espresso_worker_bytes_total",
        "counter",
        "Bytes received and sent by each dataplane worker.",
    );
    for w in &st.workers {
        let _ = writeln!(
            o,
            "espresso_worker_bytes_total{{worker=\"{}\",direction=\"rx\"}} {}",
            w.worker, w.rx_bytes
        );
        let _ = writeln!(
            o,
            "espresso_worker_bytes_total{{worker=\"{}\",direction=\"tx\"}} {}",
            w.worker, w.tx_bytes
        );
    }
    head(
        o,
        "espresso_worker_icmp_errors_total",
        "counter",
        "ICMP errors each worker generated: sent, or not sent over the rate limit (RFC 4443 2.4(f)).",
    );
    for w in &st.workers {
        for (result, v) in [
            ("sent", w.icmp_errors),
            ("rate_limited", w.icmp_rate_limited),
        ] {
            let _ = writeln!(
                o,
                "espresso_worker_icmp_errors_total{{worker=\"{}\",result=\"{result}\"}} {v}",
                w.worker
            );
        }
    }
    head(
        o,
        "espresso_worker_neighbour_total",
        "counter",
        "Neighbour events of each worker: resolutions requested, packets held while resolving, packets sent through a stale entry.",
    );
    for w in &st.workers {
        for (event, v) in [
            ("resolve_requests", w.resolve_requests),
            ("held", w.neighbour_held),
            ("stale", w.neighbour_stale),
        ] {
            let _ = writeln!(
                o,
                "espresso_worker_neighbour_total{{worker=\"{}\",event=\"{event}\"}} {v}",
                w.worker
            );
        }
    }
    head(
        o,
        "espresso_worker_esp_held_total",
        "counter",
        "ESP for an announced inbound SPI that arrived before its SA: packets held, and of those released to decapsulation once the SA was installed (the rest: drops unknown_spi_held_expired).",
    );
    for w in &st.workers {
        for (event, v) in [("held", w.esp_held), ("released", w.esp_held_released)] {
            let _ = writeln!(
                o,
                "espresso_worker_esp_held_total{{worker=\"{}\",event=\"{event}\"}} {v}",
                w.worker
            );
        }
    }
    head(
        o,
        "espresso_worker_drops_total",
        "counter",
        "Packets each worker dropped, by reason.",
    );
    for w in &st.workers {
        for r in DropReason::ALL {
            let v = w.drops_by_reason.get(r.as_str()).copied().unwrap_or(0);
            let _ = writeln!(
                o,
                "espresso_worker_drops_total{{worker=\"{}\",reason=\"{}\"}} {v}",
                w.worker,
                r.as_str()
            );
        }
    }
}

/// IKE SAs, child SAs, rekey times and engine counters.
fn ike(o: &mut String, st: &Status) {
    head(
        o,
        "espresso_ike_sa_info",
        "gauge",
        "One per IKE SA: connection, IKE version (IKEv1: main or aggressive mode), state, SPIs, peer, algorithms, how the peer authenticated (psk or signature scheme) and its certificate subject.",
    );
    for s in &st.ike_sas {
        let _ = writeln!(
            o,
            "espresso_ike_sa_info{{conn=\"{}\",version=\"{}\",mode=\"{}\",state=\"{}\",spi_i=\"{}\",spi_r=\"{}\",remote=\"{}\",proposal=\"{}\",peer_auth=\"{}\",peer_cert=\"{}\"}} 1",
            esc(&s.conn),
            s.version,
            esc(&s.mode),
            s.state,
            s.spi_i,
            s.spi_r,
            esc(&s.remote),
            esc(&s.proposal),
            esc(&s.peer_auth),
            esc(&s.peer_cert)
        );
    }
    head(
        o,
        "espresso_ike_sa_rekey_seconds",
        "gauge",
        "Seconds until the IKE SA is rekeyed.",
    );
    for s in &st.ike_sas {
        if let Some(r) = s.rekey_in_s {
            let _ = writeln!(
                o,
                "espresso_ike_sa_rekey_seconds{{conn=\"{}\",spi_i=\"{}\"}} {r}",
                esc(&s.conn),
                s.spi_i
            );
        }
    }
    head(
        o,
        "espresso_ike_child_sa_info",
        "gauge",
        "One per child SA: connection, state, SPIs and algorithms.",
    );
    head(
        o,
        "espresso_ike_child_sa_rekey_seconds",
        "gauge",
        "Seconds until the child SA is rekeyed.",
    );
    for s in &st.ike_sas {
        for c in &s.children {
            let _ = writeln!(
                o,
                "espresso_ike_child_sa_info{{conn=\"{}\",state=\"{}\",spi_in=\"{}\",spi_out=\"{}\",proposal=\"{}\"}} 1",
                esc(&s.conn),
                c.state,
                c.inbound.spi_hex,
                c.outbound.spi_hex,
                esc(&c.proposal)
            );
            if let Some(r) = c.rekey_in_s {
                let _ = writeln!(
                    o,
                    "espresso_ike_child_sa_rekey_seconds{{conn=\"{}\",spi_in=\"{}\"}} {r}",
                    esc(&s.conn),
                    c.inbound.spi_hex
                );
            }
        }
    }
    ikev1_counters(o, st);
    ike_socket_counters(o, st);
    let Some(k) = &st.ike else { return };
    head(
        o,
        "espresso_ike_messages_total",
        "counter",
        "IKE datagrams received and sent (retransmissions included).",
    );
    let _ = writeln!(
        o,
        "espresso_ike_messages_total{{direction=\"rx\"}} {}",
        k.rx
    );
    let _ = writeln!(
        o,
        "espresso_ike_messages_total{{direction=\"tx\"}} {}",
        k.tx
    );
    head(
        o,
        "espresso_ike_retransmits_total",
        "counter",
        "IKE requests retransmitted.",
    );
    let _ = writeln!(o, "espresso_ike_retransmits_total {}", k.retransmits);
    head(
        o,
        "espresso_ike_established_total",
        "counter",
        "IKE SAs and child SAs established (rekeys included).",
    );
    let _ = writeln!(
        o,
        "espresso_ike_established_total{{sa=\"ike\"}} {}",
        k.ike_established
    );
    let _ = writeln!(
        o,
        "espresso_ike_established_total{{sa=\"child\"}} {}",
        k.child_established
    );
    head(
        o,
        "espresso_ike_child_refused_total",
        "counter",
        "Child SAs refused, by reason (spi_in_use: the peer chose an outbound SPI another SA holds).",
    );
    let _ = writeln!(
        o,
        "espresso_ike_child_refused_total{{reason=\"spi_in_use\"}} {}",
        k.child_refused_spi_in_use
    );
    head(
        o,
        "espresso_ike_drops_total",
        "counter",
        "IKE datagrams dropped, by reason.",
    );
    for r in crate::ike::IkeDrop::ALL {
        let _ = writeln!(
            o,
            "espresso_ike_drops_total{{reason=\"{}\"}} {}",
            r.name(),
            k.drops_by_reason.get(r.name()).copied().unwrap_or(0)
        );
    }
}

/// The IKE sockets' queue to the engines: queued and dropped before it.
fn ike_socket_counters(o: &mut String, st: &Status) {
    let Some(k) = &st.ike_socket else { return };
    head(
        o,
        "espresso_ike_socket_queued_total",
        "counter",
        "IKE datagrams the socket threads queued for the engines.",
    );
    let _ = writeln!(o, "espresso_ike_socket_queued_total {}", k.queued);
    head(
        o,
        "espresso_ike_socket_drops_total",
        "counter",
        "IKE datagrams dropped by the socket threads before the engines (queue_full: first messages, a flood outran the engines; queue_full_other: messages of existing SAs), by reason.",
    );
    for r in ["queue_full", "queue_full_other", "too_big"] {
        let _ = writeln!(
            o,
            "espresso_ike_socket_drops_total{{reason=\"{r}\"}} {}",
            k.drops_by_reason.get(r).copied().unwrap_or(0)
        );
    }
}

/// The IKEv1 engine's counters (its SAs are among `espresso_ike_sa_info`
/// with `version="1"`).
fn ikev1_counters(o: &mut String, st: &Status) {
    let Some(k) = &st.ikev1 else { return };
    head(
        o,
        "espresso_ikev1_messages_total",
        "counter",
        "IKEv1 datagrams received and sent (retransmissions included).",
    );
    let _ = writeln!(
        o,
        "espresso_ikev1_messages_total{{direction=\"rx\"}} {}",
        k.rx
    );
    let _ = writeln!(
        o,
        "espresso_ikev1_messages_total{{direction=\"tx\"}} {}",
        k.tx
    );
    head(
        o,
        "espresso_ikev1_retransmits_total",
        "counter",
        "IKEv1 messages retransmitted.",
    );
    let _ = writeln!(o, "espresso_ikev1_retransmits_total {}", k.retransmits);
    head(
        o,
        "espresso_ikev1_established_total",
        "counter",
        "ISAKMP SAs and IPsec SA pairs established (rekeys included).",
    );
    let _ = writeln!(
        o,
        "espresso_ikev1_established_total{{sa=\"isakmp\"}} {}",
        k.ike_established
    );
    let _ = writeln!(
        o,
        "espresso_ikev1_established_total{{sa=\"ipsec\"}} {}",
        k.child_established
    );
    head(
        o,
        "espresso_ikev1_drops_total",
        "counter",
        "IKEv1 datagrams dropped, by reason.",
    );
    for r in crate::ikev1::V1Drop::ALL {
        let _ = writeln!(
            o,
            "espresso_ikev1_drops_total{{reason=\"{}\"}} {}",
            r.name(),
            k.drops_by_reason.get(r.name()).copied().unwrap_or(0)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::api::{TunnelStatus, WorkerStatus};

    #[test]
    fn down_tunnels_are_visible_with_zeros_and_state() {
        let mut st = Status::default();
        st.tunnels.push(TunnelStatus {
            name: "a".into(),
            kind: "tunnel".into(),
            state: "down".into(),
            ..Default::default()
        });
        let mut up = TunnelStatus {
            name: "b\"x".into(),
            kind: "tunnel".into(),
            state: "up".into(),
            inbound: Some(SaStatus {
                packets: 5,
                bytes: 500,
                ..Default::default()
            }),
            ..Default::default()
        };
        up.inbound
            .as_mut()
            .unwrap()
            .drops_by_reason
            .insert("replayed".into(), 3);
        st.tunnels.push(up);
        st.workers.push(WorkerStatus {
            worker: 0,
            rx_packets: 9,
            icmp_rate_limited: 4,
            neighbour_held: 6,
            esp_held: 12,
            esp_held_released: 10,
            drops_by_reason: [("neighbour_queue_full".to_string(), 2)]
                .into_iter()
                .collect(),
            ..Default::default()
        });
        let t = render(&st);
        assert!(
            t.contains("espresso_tunnel_up{tunnel=\"a\",kind=\"tunnel\"} 0"),
            "{t}"
        );
        assert!(t.contains("espresso_worker_esp_held_total{worker=\"0\",event=\"held\"} 12"));
        assert!(t.contains("espresso_worker_esp_held_total{worker=\"0\",event=\"released\"} 10"));
        assert!(t.contains("espresso_tunnel_state{tunnel=\"a\",state=\"down\"} 1"));
        assert!(t.contains("espresso_tunnel_packets_total{tunnel=\"a\",direction=\"in\"} 0"));
        assert!(t.contains(
            "espresso_tunnel_drops_total{tunnel=\"a\",direction=\"out\",reason=\"icv_mismatch\"} 0"
        ));
        assert!(t.contains("espresso_tunnel_packets_total{tunnel=\"b\\\"x\",direction=\"in\"} 5"));
        assert!(t.contains(
            "espresso_tunnel_drops_total{tunnel=\"b\\\"x\",direction=\"in\",reason=\"replayed\"} 3"
        ));
        assert!(t.contains("espresso_worker_packets_total{worker=\"0\",direction=\"rx\"} 9"));
        assert!(
            t.contains("espresso_worker_icmp_errors_total{worker=\"0\",result=\"rate_limited\"} 4")
        );
        assert!(t.contains("espresso_worker_neighbour_total{worker=\"0\",event=\"held\"} 6"));
        assert!(t.contains(
            "espresso_worker_drops_total{worker=\"0\",reason=\"neighbour_queue_full\"} 2"
        ));
        // Every drop reason has its sample, the last one too.
        for r in DropReason::ALL {
            assert!(
                t.contains(&format!(
                    "espresso_worker_drops_total{{worker=\"0\",reason=\"{}\"}} ",
                    r.as_str()
                )),
                "{}",
                r.as_str()
            );
        }
        // Every sample line is NAME{labels} VALUE or NAME VALUE.
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            let v = l.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "{l}");
        }
    }

    #[test]
    fn ike_sas_and_children_are_exported() {
        use crate::daemon::api::{ChildStatus, IkeCounters, IkeStatus, SaStatus};
        let mut st = Status::default();
        st.tunnels.push(TunnelStatus {
            name: "sw".into(),
            kind: "ike".into(),
            state: "up".into(),
            outbound: Some(SaStatus {
                spi: 0x1234,
                spi_hex: "0x1234".into(),
                packets: 7,
                ..Default::default()
            }),
            ..Default::default()
        });
        st.ike_sas.push(IkeStatus {
            conn: "v1".into(),
            version: 1,
            mode: "aggressive".into(),
            state: "ESTABLISHED".into(),
            spi_i: "00000000000000cc".into(),
            proposal: "IKEv1 aggressive mode aes128-sha1-modp2048".into(),
            ..Default::default()
        });
        st.ikev1 = Some(IkeCounters {
            rx: 3,
            drops_by_reason: [("duplicate".to_string(), 2)].into_iter().collect(),
            ..Default::default()
        });
        st.ike_sas.push(IkeStatus {
            conn: "sw".into(),
            version: 2,
            state: "ESTABLISHED".into(),
            spi_i: "00000000000000aa".into(),
            spi_r: "00000000000000bb".into(),
            proposal: "aes128gcm16-prfsha256-ecp256".into(),
            peer_auth: "sha256WithRSAEncryption".into(),
            peer_cert: "C=CH, O=\"x\", CN=sun".into(),
            rekey_in_s: Some(100),
            children: vec![ChildStatus {
                state: "INSTALLED".into(),
                inbound: SaStatus {
                    spi_hex: "0x99".into(),
                    ..Default::default()
                },
                outbound: SaStatus {
                    spi_hex: "0x1234".into(),
                    ..Default::default()
                },
                rekey_in_s: Some(50),
                ..Default::default()
            }],
            ..Default::default()
        });
        st.ike = Some(IkeCounters {
            rx: 4,
            tx: 5,
            ..Default::default()
        });
        st.ike_socket = Some(crate::daemon::api::IkeSocketCounters {
            queued: 9,
            queue_capacity: 1024,
            drops_by_reason: [("queue_full".to_string(), 77)].into_iter().collect(),
        });
        let t = render(&st);
        assert!(
            t.contains(
                "espresso_ike_sa_info{conn=\"sw\",version=\"2\",mode=\"\",state=\"ESTABLISHED\",spi_i=\"00000000000000aa\""
            ),
            "{t}"
        );
        assert!(
            t.contains(
                "peer_auth=\"sha256WithRSAEncryption\",peer_cert=\"C=CH, O=\\\"x\\\", CN=sun\"} 1"
            ),
            "{t}"
        );
        assert!(
            t.contains("espresso_ike_sa_rekey_seconds{conn=\"sw\",spi_i=\"00000000000000aa\"} 100")
        );
        assert!(t.contains("espresso_ike_child_sa_info{conn=\"sw\",state=\"INSTALLED\",spi_in=\"0x99\",spi_out=\"0x1234\""));
        assert!(t.contains("espresso_ike_child_sa_rekey_seconds{conn=\"sw\",spi_in=\"0x99\"} 50"));
        assert!(t.contains("espresso_ike_messages_total{direction=\"tx\"} 5"));
        assert!(t.contains("espresso_ike_drops_total{reason=\"not_ike\"} 0"));
        assert!(t.contains("espresso_ike_socket_queued_total 9"));
        assert!(t.contains("espresso_ike_socket_drops_total{reason=\"queue_full\"} 77"));
        assert!(t.contains("espresso_ike_socket_drops_total{reason=\"too_big\"} 0"));
        assert!(t.contains("espresso_ike_sa_info{conn=\"v1\",version=\"1\",mode=\"aggressive\",state=\"ESTABLISHED\""), "{t}");
        assert!(t.contains("espresso_ikev1_messages_total{direction=\"rx\"} 3"));
        assert!(t.contains("espresso_ikev1_drops_total{reason=\"duplicate\"} 2"));
        assert!(t.contains("espresso_tunnel_packets_total{tunnel=\"sw\",direction=\"out\"} 7"));
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            let v = l.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "{l}");
        }
    }
}
