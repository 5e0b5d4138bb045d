//! What converting one conn works with: the caller's [`Ctx`], the resolved
//! conn, and `Conv`, which hands out its parameters, remembers which were
//! used and notes the rest; `start_of` (auto=) and `set_subnets`, which
//! every kind of entry uses.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use toml::Value;

use super::values::{subnet, subnets};
use crate::import::dialect::Dialect;
use crate::import::features;
use crate::import::ipsecconf::Param;
use crate::import::notes::{Loc, NoteKind, Notes};
use crate::import::options::{self, Map};
use crate::import::out::{Entry, Table};
use crate::import::secrets::Secret;

/// What the conversion needs besides the conn.
pub struct Ctx<'a> {
    /// The dialect (defaults of absent options).
    pub dialect: Dialect,
    /// ipsec.secrets entries (empty: none given).
    pub secrets: &'a [Secret],
    /// Whether a secrets file was given.
    pub have_secrets: bool,
    /// This gateway's addresses (decides which side is local).
    pub local_addrs: &'a [IpAddr],
    /// CA certificate files the `ca` sections name (`cacert=`), resolved.
    pub cacerts: Vec<String>,
}

/// A conn with its parameters resolved.
pub(super) struct Resolved {
    pub(super) name: String,
    pub(super) loc: Loc,
    pub(super) p: BTreeMap<String, Param>,
    pub(super) also: Vec<String>,
}

/// Values of secrets are never shown.
pub(super) fn shown_value(k: &str, v: &str) -> String {
    if k.contains("key")
        && !k.contains("rsasigkey")
        && k != "keyexchange"
        && k != "keylife"
        && k != "keyingtries"
    {
        format!("<hidden, {} characters>", v.len())
    } else if v.len() > 60 {
        format!(
            "{}...",
            &v[..v.char_indices().nth(40).map_or(v.len(), |(i, _)| i)]
        )
    } else {
        v.to_string()
    }
}

pub(super) fn note_map(m: Option<Map>, p: &Param, conn: Option<&str>, notes: &mut Notes) {
    let opt = format!("{}={}", p.key, shown_value(&p.key, &p.value));
    match m {
        Some(Map::Mapped(what)) => notes.add(&p.loc, conn, opt, NoteKind::NoEffect, format!("has no effect for this connection (it feeds {what})")),
        Some(Map::Ikev1(what)) => notes.add(&p.loc, conn, opt, NoteKind::NeedsIkev1, format!("{what}: {}", features::IKEV1_MISSING)),
        Some(Map::Refuse(why)) => notes.add(&p.loc, conn, opt, NoteKind::Refused, why),
        Some(Map::NotCarried(why)) => notes.add(&p.loc, conn, opt, NoteKind::NotCarried, why),
        Some(Map::NoEffect(why)) => notes.add(&p.loc, conn, opt, NoteKind::NoEffect, why),
        None => notes.add(&p.loc, conn, opt, NoteKind::NotCarried, "unknown option (not in espresso's table of FreeS/WAN, Openswan, Libreswan and strongSwan options)"),
    }
}

/// Which IKE version rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ikev {
    Never,
    Permit,
    Propose,
    Insist,
}

impl Ikev {
    pub(super) fn name(self) -> &'static str {
        match self {
            Ikev::Never => "never",
            Ikev::Permit => "permit",
            Ikev::Propose => "propose",
            Ikev::Insist => "insist",
        }
    }
}

pub(super) struct Conv<'a, 'n> {
    pub(super) r: &'a Resolved,
    pub(super) used: HashSet<String>,
    pub(super) notes: &'n mut Notes,
    /// "left" or "right": the local side in the file.
    pub(super) me: &'static str,
    pub(super) him: &'static str,
}

impl Conv<'_, '_> {
    pub(super) fn get(&mut self, k: &str) -> Option<Param> {
        let p = self.r.p.get(k)?.clone();
        self.used.insert(k.to_string());
        Some(p)
    }
    pub(super) fn local(&mut self, suffix: &str) -> Option<Param> {
        let k = format!("{}{suffix}", self.me);
        self.get(&k)
    }
    pub(super) fn remote(&mut self, suffix: &str) -> Option<Param> {
        let k = format!("{}{suffix}", self.him);
        self.get(&k)
    }
    pub(super) fn note(&mut self, p: &Param, kind: NoteKind, why: impl Into<String>) {
        let opt = format!("{}={}", p.key, shown_value(&p.key, &p.value));
        self.notes.add(&p.loc, Some(&self.r.name), opt, kind, why);
    }
    pub(super) fn conn_note(&mut self, kind: NoteKind, why: impl Into<String>) {
        let (loc, n) = (self.r.loc.clone(), self.r.name.clone());
        self.notes
            .add(&loc, Some(&n), format!("conn {n}"), kind, why);
    }
    /// Every parameter not consumed: noted through the table.
    pub(super) fn leftovers(&mut self) {
        let keys: Vec<String> = self.r.p.keys().cloned().collect();
        for k in keys {
            if self.used.contains(&k) {
                continue;
            }
            let p = self.r.p[&k].clone();
            let m = options::conn_option(&k);
            note_map(m, &p, Some(&self.r.name), self.notes);
        }
    }
}

pub(super) fn start_of(c: &mut Conv, table: Table) -> Result<&'static str, String> {
    let auto = c.get("auto");
    let v = auto
        .as_ref()
        .map(|p| p.value.to_ascii_lowercase())
        .unwrap_or_else(|| "ignore".into());
    Ok(match (table, v.as_str()) {
        (Table::Connection, "add") => "add",
        (Table::Connection, "start" | "up") => "start",
        (Table::Connection, "route" | "ondemand") => "trap",
        (Table::Connection, "ignore" | "manual") => {
            return Err(if auto.is_some() {
                "auto=ignore: the original does not load this connection; remove the comment marks (and set start) to use it".into()
            } else {
                "no auto= (the default is ignore): the original does not load this connection; remove the comment marks (and set start) to use it".into()
            })
        }
        (_, "add") => "add",
        (_, "start" | "up" | "route" | "manual") => "start",
        (_, "ignore") => "ignore",
        (_, o) => {
            return Err(format!(
                "auto={o} is not understood (add, start, route, ignore)"
            ))
        }
    })
}

pub(super) fn set_subnets(c: &mut Conv, e: &mut Entry, local: bool) {
    let mut list: Vec<Value> = Vec::new();
    for suf in ["subnet", "subnets"] {
        let p = if local { c.local(suf) } else { c.remote(suf) };
        let Some(p) = p else { continue };
        for s in subnets(&p.value) {
            match subnet(&s) {
                Ok((n, trunc)) => {
                    if trunc {
                        c.note(
                            &p,
                            NoteKind::Changed,
                            format!("{s} has host bits set: written as {n}"),
                        );
                    }
                    let v = Value::String(n.to_string());
                    if !list.contains(&v) {
                        list.push(v);
                    }
                }
                Err(why) => {
                    c.note(&p, NoteKind::NotCarried, why.clone());
                    e.disable(format!("{}={}: {why}", p.key, p.value));
                }
            }
        }
    }
    let k = if local {
        "local_subnets"
    } else {
        "remote_subnets"
    };
    match list.len() {
        0 => {}
        1 => e.set(k, list.remove(0)),
        _ => e.set(k, Value::Array(list)),
    }
}
