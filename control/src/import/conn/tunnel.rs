//! A manually keyed conn (FreeS/WAN `spi`/`spibase`/`espenckey`, SPIs
//! derived as `ipsec_manual` derived them): a `[[tunnel]]` entry.

use std::net::IpAddr;

use zeroize::Zeroizing;

use super::conv::{set_subnets, start_of, Conv};
use super::values::*;
use crate::import::algs;
use crate::import::ipsecconf::Param;
use crate::import::notes::NoteKind;
use crate::import::out::{Entry, SecretFile, Table, SECRETS_DIR};

pub(super) fn tunnel(c: &mut Conv, name: &str, ty: &str) -> Entry {
    let mut e = Entry::new(Table::Tunnel, name, c.r.loc.clone());
    addresses(c, &mut e);
    set_subnets(c, &mut e, true);
    set_subnets(c, &mut e, false);
    if ty == "transport" {
        e.set("mode", "transport");
    }
    refuse_ah(c, &mut e);
    let legacy = suite(c, &mut e);
    spis(c, &mut e, ty);
    keys(c, &mut e, name);
    replay_window(c, &mut e);
    match start_of(c, Table::Tunnel) {
        Ok(s) => e.set("start", s),
        Err(w) => e.disable(w),
    }
    if legacy {
        e.set("allow_legacy", true);
        c.conn_note(
            NoteKind::Changed,
            "allow_legacy = true: the original uses 3DES or HMAC-MD5 (deprecated, RFC 8221)",
        );
    }
    no_ike(c);
    c.leftovers();
    e
}

/// The two addresses (a manual tunnel needs them as addresses).
fn addresses(c: &mut Conv, e: &mut Entry) {
    for (local, k) in [(true, "local"), (false, "remote")] {
        let p = if local { c.local("") } else { c.remote("") };
        let v = p.as_ref().map(|p| p.value.clone()).unwrap_or_default();
        match v.parse::<IpAddr>() {
            Ok(a) => e.set(k, a.to_string()),
            Err(_) => {
                let why = if v.is_empty() {
                    format!("no {} address", if local { "local" } else { "remote" })
                } else {
                    format!("{v}: a manually keyed tunnel needs the address itself")
                };
                if let Some(p) = &p {
                    c.note(p, NoteKind::NotCarried, why.clone());
                }
                e.disable(why);
            }
        }
    }
}

/// AH is refused as a whole: the peer would send AH we cannot check.
fn refuse_ah(c: &mut Conv, e: &mut Entry) {
    for k in [
        "ah",
        "ahkey",
        "leftahkey",
        "rightahkey",
        "leftahspi",
        "rightahspi",
        "ahreplay_window",
    ] {
        if let Some(p) = c.get(k) {
            c.note(
                &p,
                NoteKind::Refused,
                "espresso has no AH (RFC 4302): use ESP with integrity on both sides",
            );
            e.disable("uses AH, which espresso does not implement (RFC 4302): configure ESP with integrity on both sides");
        }
    }
}

/// Suite: the first proposal of `esp=`; whether it is a legacy one.
fn suite(c: &mut Conv, e: &mut Entry) -> bool {
    let mut legacy = false;
    match c.get("esp") {
        None => e.disable("no esp= (a manual connection without ESP)"),
        Some(p) => {
            let t = algs::translate(&p.value, false, &[], None);
            for (w, why) in &t.dropped {
                c.note(&p, NoteKind::NotCarried, format!("{w}: {why}"));
            }
            match t.proposals.first() {
                Some(s) => {
                    e.set("suite", s.clone());
                    legacy = t.legacy;
                    if t.proposals.len() > 1 {
                        c.note(
                            &p,
                            NoteKind::Changed,
                            format!("a manual SA has one suite: {s} is used"),
                        );
                    }
                }
                None => e.disable(format!("esp={}: no suite espresso implements", p.value)),
            }
        }
    }
    legacy
}

/// SPIs as ipsec_manual derived them (this side's view).
fn spis(c: &mut Conv, e: &mut Entry, ty: &str) {
    let tunnel_mode = ty == "tunnel";
    let (to_peer0, to_me0) = if c.me == "left" { (0u32, 1u32) } else { (1, 0) };
    let add = if tunnel_mode { 2 } else { 0 };
    let spi_p = c.get("spi");
    let base_p = c.get("spibase");
    let (mut out, mut inn) = (None, None);
    match (&spi_p, &base_p) {
        (Some(p), None) => match spi(&p.value) {
            Some(s) => {
                out = Some(s);
                inn = Some(s);
            }
            None => c.note(p, NoteKind::NotCarried, "not a number"),
        },
        (None, Some(p)) => match spi(&p.value) {
            Some(b) if b % 16 == 0 => {
                out = Some(b + to_peer0 + add);
                inn = Some(b + to_me0 + add);
            }
            _ => c.note(p, NoteKind::NotCarried, "spibase must be 0x...0"),
        },
        (Some(p), Some(_)) => {
            c.note(
                p,
                NoteKind::NotCarried,
                "spi and spibase both given (ipsec_manual refuses this)",
            );
            e.disable("spi and spibase both given");
        }
        (None, None) => {}
    }
    for (k_out, k_in) in [("espspi", "espspi"), ("spi", "spi")] {
        if let Some(p) = c.remote(k_out) {
            match spi(&p.value) {
                Some(s) => out = Some(s),
                None => c.note(&p, NoteKind::NotCarried, "not a number"),
            }
        }
        if let Some(p) = c.local(k_in) {
            match spi(&p.value) {
                Some(s) => inn = Some(s),
                None => c.note(&p, NoteKind::NotCarried, "not a number"),
            }
        }
    }
    match (inn, out) {
        (Some(i), Some(o)) => {
            e.set("spi_in", format!("{i:#x}"));
            e.set("spi_out", format!("{o:#x}"));
        }
        _ => e.disable("no SPI (spi=, spibase= or leftespspi=/rightespspi=)"),
    }
}

/// Keys: <side>espenckey is the key of the SA toward that side.
fn keys(c: &mut Conv, e: &mut Entry, name: &str) {
    let mut fields: Vec<(String, Zeroizing<String>)> = Vec::new();
    for (what, both_k) in [("enc_key", "espenckey"), ("auth_key", "espauthkey")] {
        let both = c.get(both_k);
        let to_me = c.local(both_k).or_else(|| both.clone());
        let to_peer = c.remote(both_k).or_else(|| both.clone());
        let mut conv = |p: Option<Param>| -> Option<Zeroizing<String>> {
            let p = p?;
            match manual_key(&p.value) {
                Some(k) => Some(k),
                None => {
                    c.note(
                        &p,
                        NoteKind::NotCarried,
                        "a key is written 0x (hex), 0s (base64) or 0t (text)",
                    );
                    None
                }
            }
        };
        let (i, o) = (conv(to_me), conv(to_peer));
        match (i, o) {
            (Some(i), Some(o)) if *i == *o => fields.push((what.into(), i)),
            (Some(i), Some(o)) => {
                fields.push((format!("{what}_in"), i));
                fields.push((format!("{what}_out"), o));
            }
            (None, None) => {}
            _ => e.disable(format!("{what}: a key for one direction only")),
        }
    }
    if !fields.is_empty() {
        e.set("keys", format!("{SECRETS_DIR}/{name}.keys"));
        e.secret = Some(SecretFile {
            path: format!("{SECRETS_DIR}/{name}.keys"),
            fields,
            raw: None,
        });
    }
}

/// The anti-replay window (FreeS/WAN's ipsec_manual had none).
fn replay_window(c: &mut Conv, e: &mut Entry) {
    match c.get("espreplay_window").or_else(|| c.get("replay_window")) {
        Some(p) => match p.value.parse::<i64>() {
            Ok(n) if (1..64).contains(&n) => {
                c.note(&p, NoteKind::Changed, "espresso's smallest anti-replay window is 64 packets: replay_window = 64 (it tolerates more reordering, replays are still refused)");
                e.set("replay_window", 64);
            }
            Ok(n) => e.set("replay_window", n),
            Err(_) => c.note(&p, NoteKind::NotCarried, "not a number"),
        },
        None => {
            e.set("replay_window", 0);
            c.conn_note(NoteKind::Changed, "replay_window = 0 as FreeS/WAN's ipsec_manual (no anti-replay: a restarted peer starts its sequence numbers at 1 again); set 64..65536 if the peer never restarts its counters");
        }
    }
}

/// IKE options mean nothing to a manually keyed tunnel.
fn no_ike(c: &mut Conv) {
    for k in [
        "authby",
        "ike",
        "ikelifetime",
        "keylife",
        "salifetime",
        "rekey",
        "pfs",
        "keyexchange",
        "ikev2",
        "leftid",
        "rightid",
    ] {
        if let Some(p) = c.get(k) {
            c.note(&p, NoteKind::NoEffect, "manual keying: no IKE negotiation");
        }
    }
}
