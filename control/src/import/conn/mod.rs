//! One `conn` of an `ipsec.conf`, resolved (`also=`, `alsoflip=`,
//! `%default`), to espresso entries: an IKE `[[connection]]`, a manually
//! keyed `[[tunnel]]` (FreeS/WAN `spi`/`spibase`/`espenckey`, SPIs derived as
//! `ipsec_manual` derived them) or a `[[policy]]` (`type=passthrough|drop`).
//! Every parameter is either mapped here or noted through [`super::options`].
//!
//! - `conv`: the [`Ctx`], the resolved conn and the parameter bookkeeping;
//!   `values`: values in espresso's form.
//! - `policy`, `tunnel`, `connection`: one kind of entry each.

mod auth;
mod connection;
mod conv;
mod policy;
mod tunnel;
mod values;

use std::collections::{BTreeMap, HashSet};

use crate::import::dialect::Dialect;
use crate::import::ipsecconf::{Conf, Kind, Param, Section};
use crate::import::notes::{NoteKind, Notes};
use crate::import::options::{self, Map};
use crate::import::out::{Entry, Table};
pub use conv::Ctx;
use conv::{note_map, shown_value, Conv, Resolved};
pub use values::sanitize;
use values::{flip, is_local, yes};

/// Guesses the dialect from keywords only one family uses.
pub fn detect(conf: &Conf) -> Dialect {
    const STRONGSWAN: &[&str] = &[
        "keyexchange",
        "leftauth",
        "rightauth",
        "charondebug",
        "leftsendcert",
        "rightsendcert",
        "reauth",
        "mobike",
        "margintime",
        "closeaction",
        "leftfirewall",
        "rightfirewall",
        "eap_identity",
        "aaa_identity",
        "lifetime",
        "charonstart",
        "strictcrlpolicy",
        "leftallowany",
        "rightallowany",
        "inactivity",
        "aggressive",
    ];
    const FREESWAN: &[&str] = &[
        "plutoload",
        "plutostart",
        "spibase",
        "espenckey",
        "manualstart",
        "klipsdebug",
    ];
    let keys: HashSet<&str> = conf
        .sections
        .iter()
        .flat_map(|s| s.params.iter().map(|p| p.key.as_str()))
        .collect();
    let ke_ike = conf
        .sections
        .iter()
        .flat_map(|s| &s.params)
        .any(|p| p.key == "keyexchange");
    if ke_ike || STRONGSWAN.iter().any(|k| keys.contains(k)) {
        return Dialect::Strongswan;
    }
    if conf.version.is_none() && FREESWAN.iter().any(|k| keys.contains(k)) {
        return Dialect::Freeswan;
    }
    if conf.version.as_deref() != Some("2.0") && keys.contains("spibase") {
        return Dialect::Freeswan;
    }
    Dialect::Openswan
}

/// Converts every conn of `conf`.
pub fn convert_all(conf: &Conf, ctx: &Ctx, notes: &mut Notes) -> Vec<Entry> {
    let mut defaults: Vec<&Param> = Vec::new();
    let mut conns: Vec<(&str, &Section)> = Vec::new();
    let mut start_list: HashSet<String> = HashSet::new();
    let mut load_list: HashSet<String> = HashSet::new();
    let mut cacerts: Vec<String> = Vec::new();
    for s in &conf.sections {
        match &s.kind {
            Kind::Setup => setup_section(s, notes, &mut start_list, &mut load_list),
            Kind::Ca(n) => ca_section(n, s, notes, &mut cacerts),
            Kind::Conn(n) if n == "%default" => defaults.extend(s.params.iter()),
            Kind::Conn(n) => {
                if let Some((_, prev)) = conns.iter().find(|(m, _)| *m == n.as_str()) {
                    notes.add(
                        &s.loc,
                        Some(n),
                        format!("conn {n}"),
                        NoteKind::NotCarried,
                        format!("defined twice: the first definition ({}) is used", prev.loc),
                    );
                    continue;
                }
                conns.push((n.as_str(), s));
            }
        }
    }
    let referenced: HashSet<String> = conns
        .iter()
        .flat_map(|(_, s)| {
            s.params
                .iter()
                .filter(|p| p.key == "also" || p.key == "alsoflip")
        })
        .flat_map(|p| {
            p.value
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let ctx = &Ctx {
        dialect: ctx.dialect,
        secrets: ctx.secrets,
        have_secrets: ctx.have_secrets,
        local_addrs: ctx.local_addrs,
        cacerts,
    };
    let mut out = Vec::new();
    let mut names: HashSet<String> = HashSet::new();
    for (name, sec) in &conns {
        let has_auto = sec.params.iter().any(|p| p.key == "auto");
        if referenced.contains(*name) && !has_auto {
            continue; // a fragment used through also=
        }
        let r = resolved(name, sec, &conns, &defaults, &start_list, &load_list, notes);
        for mut e in convert(&r, ctx, notes) {
            unique_name(&mut e, &mut names, &r, notes);
            out.push(e);
        }
    }
    out
}

/// `config setup`: `plutostart`/`manualstart`/`plutoload` lists collected,
/// every other option noted.
fn setup_section(
    s: &Section,
    notes: &mut Notes,
    start_list: &mut HashSet<String>,
    load_list: &mut HashSet<String>,
) {
    for p in &s.params {
        match options::setup_option(&p.key) {
            Some(Map::Mapped(_)) => match p.key.as_str() {
                "plutoload" | "plutostart" if p.value.trim() == "%search" => notes.add(
                    &p.loc,
                    None,
                    format!("{}={}", p.key, p.value),
                    NoteKind::NoEffect,
                    "%search: each conn's auto= decides, as espresso's start does",
                ),
                "manualstart" | "plutostart" => {
                    start_list.extend(p.value.split_whitespace().map(str::to_string))
                }
                "plutoload" => load_list.extend(p.value.split_whitespace().map(str::to_string)),
                _ => notes.add(
                    &p.loc,
                    None,
                    format!("{}={}", p.key, p.value),
                    NoteKind::NoEffect,
                    "the files to import are given on the command line",
                ),
            },
            _ if p.key == "oe" && yes(&p.value) == Some(false) => notes.add(
                &p.loc,
                None,
                format!("{}={}", p.key, p.value),
                NoteKind::NoEffect,
                "opportunistic encryption is off in espresso too",
            ),
            m => note_map(m, p, None, notes),
        }
    }
}

/// A `ca` section: its CA certificate joins the CAs of certificate
/// connections; the rest is noted.
fn ca_section(n: &str, s: &Section, notes: &mut Notes, cacerts: &mut Vec<String>) {
    let ignored = s
        .params
        .iter()
        .any(|p| p.key == "auto" && p.value.eq_ignore_ascii_case("ignore"));
    for p in &s.params {
        let opt = format!("ca {n}: {}={}", p.key, p.value);
        let (kind, why) = match p.key.as_str() {
            "cacert" if !ignored => {
                let f = auth::ca_file(&p.value);
                if auth::in_cacerts_dir(&f) {
                    (NoteKind::NoEffect, format!("{f} is in {}, which every certificate connection trusts (cacerts)", auth::CACERTS_DIR))
                } else {
                    cacerts.push(f);
                    continue;
                }
            }
            "cacert" => (NoteKind::NoEffect, "auto=ignore: the original does not load this CA".to_string()),
            "auto" => (NoteKind::NoEffect, "the CA certificate is trusted by every certificate connection (cacerts)".to_string()),
            "crluri" | "crluri1" | "crluri2" | "ocspuri" | "ocspuri1" | "ocspuri2" | "certuribase" => (
                NoteKind::NotCarried,
                format!("CRLs are read from the files in {} (crls); fetching CRLs and OCSP are not implemented", auth::CRLS_DIR),
            ),
            _ => (NoteKind::NotCarried, "not implemented for CA sections".to_string()),
        };
        notes.add(&p.loc, None, opt, kind, why);
    }
}

/// One conn with `also=`/`alsoflip=` and `%default` resolved, and `auto=`
/// from `config setup`'s start and load lists.
fn resolved(
    name: &str,
    sec: &Section,
    conns: &[(&str, &Section)],
    defaults: &[&Param],
    start_list: &HashSet<String>,
    load_list: &HashSet<String>,
    notes: &mut Notes,
) -> Resolved {
    let mut p: BTreeMap<String, Param> = BTreeMap::new();
    let mut also = Vec::new();
    let mut stack = vec![name.to_string()];
    resolve(name, false, conns, &mut p, &mut also, &mut stack, notes);
    for d in defaults {
        p.entry(d.key.clone()).or_insert_with(|| (*d).clone());
    }
    let mut r = Resolved {
        name: name.to_string(),
        loc: sec.loc.clone(),
        p,
        also,
    };
    if (start_list.contains(name) || load_list.contains(name)) && !r.p.contains_key("auto") {
        let v = if start_list.contains(name) {
            "start"
        } else {
            "add"
        };
        r.p.insert(
            "auto".into(),
            Param {
                key: "auto".into(),
                value: v.into(),
                loc: sec.loc.clone(),
            },
        );
    }
    r
}

/// Entry names are unique: a taken name gets a `-N` suffix (noted).
fn unique_name(e: &mut Entry, names: &mut HashSet<String>, r: &Resolved, notes: &mut Notes) {
    let base = e.name.clone();
    let mut n = 2;
    while names.contains(&e.name) {
        e.name = format!("{}-{n}", &base[..base.len().min(60)]);
        n += 1;
    }
    if e.name != base {
        notes.add(
            &r.loc,
            Some(&r.name),
            format!("conn {}", r.name),
            NoteKind::Changed,
            format!("named {} (the name {base} is taken)", e.name),
        );
        e.set("name", e.name.clone());
    }
    names.insert(e.name.clone());
}

/// Own parameters win over also= ones (first also= first), as in FreeS/WAN,
/// Openswan and strongSwan.
fn resolve(
    name: &str,
    flipped: bool,
    conns: &[(&str, &super::ipsecconf::Section)],
    p: &mut BTreeMap<String, Param>,
    also: &mut Vec<String>,
    stack: &mut Vec<String>,
    notes: &mut Notes,
) {
    let Some((_, sec)) = conns.iter().find(|(n, _)| *n == name) else {
        return;
    };
    let mut refs = Vec::new();
    for q in &sec.params {
        if q.key == "also" || q.key == "alsoflip" {
            for n in q.value.split_whitespace() {
                refs.push((
                    n.to_string(),
                    (q.key == "alsoflip") ^ flipped,
                    q.loc.clone(),
                ));
            }
            continue;
        }
        let k = if flipped { flip(&q.key) } else { q.key.clone() };
        if p.contains_key(&k) && stack.len() == 1 {
            if let Some(prev) = p.get(&k) {
                if prev.loc.file == q.loc.file && stack.len() == 1 {
                    notes.add(
                        &q.loc,
                        Some(stack[0].as_str()),
                        format!("{}={}", q.key, shown_value(&q.key, &q.value)),
                        NoteKind::NotCarried,
                        format!("given twice in the conn: the first ({}) is used", prev.loc),
                    );
                }
            }
            continue;
        }
        p.entry(k.clone()).or_insert(Param {
            key: k,
            value: q.value.clone(),
            loc: q.loc.clone(),
        });
    }
    for (n, f, loc) in refs {
        if stack.contains(&n) {
            notes.add(
                &loc,
                Some(stack[0].as_str()),
                format!("also={n}"),
                NoteKind::NotCarried,
                "also= loop: ignored",
            );
            continue;
        }
        if !conns.iter().any(|(c, _)| *c == n) {
            notes.add(
                &loc,
                Some(stack[0].as_str()),
                format!("also={n}"),
                NoteKind::NotCarried,
                "no conn of that name",
            );
            continue;
        }
        also.push(n.clone());
        stack.push(n.clone());
        resolve(&n, f, conns, p, also, stack, notes);
        stack.pop();
    }
}

const MANUAL_KEYS: &[&str] = &[
    "spi",
    "spibase",
    "espenckey",
    "espauthkey",
    "leftespenckey",
    "rightespenckey",
    "leftespauthkey",
    "rightespauthkey",
    "leftespspi",
    "rightespspi",
    "leftspi",
    "rightspi",
    "ah",
    "ahkey",
    "leftahkey",
    "rightahkey",
    "espreplay_window",
];

fn convert(r: &Resolved, ctx: &Ctx, notes: &mut Notes) -> Vec<Entry> {
    let name = sanitize(&r.name);
    if name != r.name {
        notes.add(
            &r.loc,
            Some(&r.name),
            format!("conn {}", r.name),
            NoteKind::Changed,
            format!(
                "named {name}: espresso names use letters, digits, '-', '_' and '.' (63 at most)"
            ),
        );
    }
    let l = r.p.get("left").map(|p| p.value.clone()).unwrap_or_default();
    let rt =
        r.p.get("right")
            .map(|p| p.value.clone())
            .unwrap_or_default();
    let swap = if l == "%defaultroute" {
        false
    } else if rt == "%defaultroute" {
        true
    } else if is_local(&l, ctx.local_addrs) {
        false
    } else {
        is_local(&rt, ctx.local_addrs)
    };
    let mut c = Conv {
        r,
        used: HashSet::new(),
        notes,
        me: if swap { "right" } else { "left" },
        him: if swap { "left" } else { "right" },
    };
    let mut origin = vec![format!("conn {} ({})", r.name, r.loc)];
    if !r.also.is_empty() {
        origin.push(format!("also= {}", r.also.join(", ")));
    }
    if swap {
        origin.push(format!(
            "right ({rt}) is this gateway: left and right are swapped"
        ));
    }
    let ty = c.get("type");
    let tyv = ty
        .as_ref()
        .map(|p| p.value.to_ascii_lowercase())
        .unwrap_or_else(|| "tunnel".into());
    let manual = MANUAL_KEYS.iter().any(|k| r.p.contains_key(*k));
    let mut e = match tyv.as_str() {
        "passthrough" | "pass" | "drop" | "reject" => policy::policy(&mut c, &name, &tyv),
        "tunnel" | "transport" if manual => tunnel::tunnel(&mut c, &name, &tyv),
        "tunnel" | "transport" => connection::connection(&mut c, ctx, &name, &tyv, &mut origin),
        _ => {
            let mut e = Entry::new(Table::Connection, &name, r.loc.clone());
            if let Some(p) = &ty {
                c.note(
                    p,
                    NoteKind::NotCarried,
                    "unknown type (tunnel, transport, passthrough, drop, reject)",
                );
            }
            e.disable(format!("type={tyv} is not understood"));
            c.leftovers();
            e
        }
    };
    e.origin.splice(0..0, origin);
    vec![e]
}
