//! `type=passthrough|pass|drop|reject`: a `[[policy]]` entry.

use std::net::IpAddr;

use ipnet::IpNet;

use super::conv::{set_subnets, start_of, Conv};
use crate::import::notes::NoteKind;
use crate::import::out::{Entry, Table};

pub(super) fn policy(c: &mut Conv, name: &str, ty: &str) -> Entry {
    let mut e = Entry::new(Table::Policy, name, c.r.loc.clone());
    set_subnets(c, &mut e, true);
    set_subnets(c, &mut e, false);
    for (local, k) in [(true, "local_subnets"), (false, "remote_subnets")] {
        if e.get(k).is_none() {
            let p = if local { c.local("") } else { c.remote("") };
            match p
                .as_ref()
                .map(|p| p.value.as_str())
                .and_then(|v| v.parse::<IpAddr>().ok())
            {
                Some(a) => e.set(k, IpNet::from(a).to_string()),
                None if p.as_ref().is_some_and(|p| p.value.starts_with("%any")) => {
                    e.set(k, "0.0.0.0/0")
                }
                None => e.disable(format!(
                    "{ty} policy without a {} subnet or address",
                    if local { "local" } else { "remote" }
                )),
            }
        }
    }
    for p in [c.local(""), c.remote("")].into_iter().flatten() {
        let v = p.value.clone();
        if !e
            .fields
            .iter()
            .any(|(_, x)| x.as_str().is_some_and(|s| s.starts_with(&format!("{v}/"))))
        {
            c.note(
                &p,
                NoteKind::NoEffect,
                "a pass/drop policy matches on the subnets only (no gateway addresses)",
            );
        }
    }
    e.set(
        "action",
        if matches!(ty, "passthrough" | "pass") {
            "bypass"
        } else {
            "discard"
        },
    );
    if ty == "reject" {
        c.conn_note(
            NoteKind::Changed,
            "type=reject: traffic is discarded silently (no ICMP error)",
        );
    }
    match start_of(c, Table::Policy) {
        Ok(s) if s != "start" => e.set("start", s),
        Ok(_) => {}
        Err(w) => e.disable(w),
    }
    for k in ["authby", "ike", "esp", "phase2alg", "keyexchange", "ikev2"] {
        if let Some(p) = c.get(k) {
            c.note(
                &p,
                NoteKind::NoEffect,
                "a pass/drop policy negotiates nothing",
            );
        }
    }
    c.leftovers();
    e
}
