//! One `conn` of an `ipsec.conf`, resolved (`also=`, `alsoflip=`,
//! `%default`), to espresso entries: an IKE `[[connection]]`, a manually
//! keyed `[[tunnel]]` (FreeS/WAN `spi`/`spibase`/`espenckey`, SPIs derived as
//! `ipsec_manual` derived them) or a `[[policy]]` (`type=passthrough|drop`).
//! Every parameter is either mapped here or noted through [`super::options`].

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;
use toml::Value;
use zeroize::Zeroizing;

use super::algs;
use super::features;
use super::ipsecconf::{Conf, Kind, Param};
use super::options::{self, Map};
use super::out::{Entry, SecretFile, Table, SECRETS_DIR};
use super::secrets::{self, Secret};
use super::{Dialect, Loc, NoteKind, Notes};

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
}

/// A conn with its parameters resolved.
struct Resolved {
    name: String,
    loc: Loc,
    p: BTreeMap<String, Param>,
    also: Vec<String>,
}

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
    let mut conns: Vec<(&str, &super::ipsecconf::Section)> = Vec::new();
    let mut start_list: HashSet<String> = HashSet::new();
    let mut load_list: HashSet<String> = HashSet::new();
    for s in &conf.sections {
        match &s.kind {
            Kind::Setup => {
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
                            "plutoload" => {
                                load_list.extend(p.value.split_whitespace().map(str::to_string))
                            }
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
                        m => note_map(m, p, None, notes, false),
                    }
                }
            }
            Kind::Ca(n) => {
                notes.add(
                    &s.loc,
                    None,
                    format!("ca {n}"),
                    NoteKind::NeedsCerts,
                    features::CERTS_MISSING,
                );
                for p in &s.params {
                    notes.add(
                        &p.loc,
                        None,
                        format!("ca {n}: {}={}", p.key, p.value),
                        NoteKind::NeedsCerts,
                        "certificate authority settings (issue 13)",
                    );
                }
            }
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
    let mut out = Vec::new();
    let mut names: HashSet<String> = HashSet::new();
    for (name, sec) in &conns {
        let has_auto = sec.params.iter().any(|p| p.key == "auto");
        if referenced.contains(*name) && !has_auto {
            continue; // a fragment used through also=
        }
        let mut p: BTreeMap<String, Param> = BTreeMap::new();
        let mut also = Vec::new();
        let mut stack = vec![name.to_string()];
        resolve(name, false, &conns, &mut p, &mut also, &mut stack, notes);
        for d in &defaults {
            p.entry(d.key.clone()).or_insert_with(|| (*d).clone());
        }
        let mut r = Resolved {
            name: name.to_string(),
            loc: sec.loc.clone(),
            p,
            also,
        };
        if (start_list.contains(*name) || load_list.contains(*name)) && !r.p.contains_key("auto") {
            let v = if start_list.contains(*name) {
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
        for mut e in convert(&r, ctx, notes) {
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
            out.push(e);
        }
    }
    out
}

fn flip(k: &str) -> String {
    if let Some(s) = k.strip_prefix("left") {
        format!("right{s}")
    } else if let Some(s) = k.strip_prefix("right") {
        format!("left{s}")
    } else {
        k.to_string()
    }
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

/// Values of secrets are never shown.
fn shown_value(k: &str, v: &str) -> String {
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

fn note_map(m: Option<Map>, p: &Param, conn: Option<&str>, notes: &mut Notes, psk_auth: bool) {
    let opt = format!("{}={}", p.key, shown_value(&p.key, &p.value));
    match m {
        Some(Map::Mapped(what)) => notes.add(&p.loc, conn, opt, NoteKind::NoEffect, format!("has no effect for this connection (it feeds {what})")),
        Some(Map::Ikev1(what)) => notes.add(&p.loc, conn, opt, NoteKind::NeedsIkev1, format!("{what}: {}", features::IKEV1_MISSING)),
        Some(Map::Certs(what)) if psk_auth => notes.add(&p.loc, conn, opt, NoteKind::NoEffect, format!("{what}: unused, the connection authenticates with a pre-shared key (certificates come with issue 13)")),
        Some(Map::Certs(what)) => notes.add(&p.loc, conn, opt, NoteKind::NeedsCerts, format!("{what}: {}", features::CERTS_MISSING)),
        Some(Map::Refuse(why)) => notes.add(&p.loc, conn, opt, NoteKind::Refused, why),
        Some(Map::NotCarried(why)) => notes.add(&p.loc, conn, opt, NoteKind::NotCarried, why),
        Some(Map::NoEffect(why)) => notes.add(&p.loc, conn, opt, NoteKind::NoEffect, why),
        None => notes.add(&p.loc, conn, opt, NoteKind::NotCarried, "unknown option (not in espresso's table of FreeS/WAN, Openswan, Libreswan and strongSwan options)"),
    }
}

/// A valid espresso name for `n`.
pub fn sanitize(n: &str) -> String {
    let s: String = n
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_string();
    let s = if s.is_empty() { "conn".to_string() } else { s };
    s.chars().take(63).collect()
}

/// A duration as espresso reads it (`3600`, `"90s"`, `"8h"`).
fn duration(v: &str) -> Option<Value> {
    let v = v.trim();
    if v.chars().all(|c| c.is_ascii_digit()) && !v.is_empty() {
        return v.parse::<i64>().ok().map(Value::Integer);
    }
    let (n, u) = v.split_at(v.len().saturating_sub(1));
    if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) && matches!(u, "s" | "m" | "h" | "d")
    {
        return Some(Value::String(v.to_string()));
    }
    None
}

fn yes(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "on" | "1" => Some(true),
        "no" | "n" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Parses a subnet as the old daemons wrote them (`a.b.c.d/nn`,
/// `a.b.c.d/255.255.255.0`, `%default`, a bare address).
fn subnet(s: &str) -> Result<(IpNet, bool), String> {
    let s = s.trim();
    if s == "%default" {
        return Ok(("0.0.0.0/0".parse().map_err(|_| String::new())?, false));
    }
    if s.contains('[') {
        return Err(
            "a protocol/port selector ([proto/port]) is not implemented for IKE connections".into(),
        );
    }
    if s.starts_with("vhost:") || s.starts_with("vnet:") || s.starts_with('%') {
        return Err(format!("{s}: virtual/dynamic subnets are not implemented"));
    }
    let (a, m) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let addr: IpAddr = a.parse().map_err(|_| format!("\"{s}\" is not a subnet"))?;
    let len: u8 = match m {
        None => {
            if addr.is_ipv4() {
                32
            } else {
                128
            }
        }
        Some(m) if m.contains('.') => {
            let mask: std::net::Ipv4Addr = m.parse().map_err(|_| format!("bad netmask {m}"))?;
            let bits = u32::from(mask);
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return Err(format!("netmask {m} is not contiguous"));
            }
            bits.leading_ones() as u8
        }
        Some(m) => m.parse().map_err(|_| format!("bad prefix length {m}"))?,
    };
    let net = IpNet::new(addr, len).map_err(|_| format!("bad prefix length in {s}"))?;
    let trunc = net.trunc();
    Ok((trunc, trunc != net))
}

fn subnets(v: &str) -> Vec<String> {
    v.trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A key as `ipsec_ttodata` reads it (`0x` hex, `0s` base64, `0t` text) in
/// espresso's `0x` form.
fn manual_key(v: &str) -> Option<Zeroizing<String>> {
    let v = v.trim();
    let bytes = if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        secrets::hex(h)?
    } else if let Some(b) = v.strip_prefix("0s") {
        secrets::base64(b)?
    } else if let Some(t) = v.strip_prefix("0t") {
        t.as_bytes().to_vec()
    } else {
        return None;
    };
    let b = Zeroizing::new(bytes);
    Some(Zeroizing::new(super::secrets::to_hex(&b)))
}

fn spi(v: &str) -> Option<u32> {
    let v = v.trim();
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Which IKE version rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ikev {
    Never,
    Permit,
    Propose,
    Insist,
}

impl Ikev {
    fn name(self) -> &'static str {
        match self {
            Ikev::Never => "never",
            Ikev::Permit => "permit",
            Ikev::Propose => "propose",
            Ikev::Insist => "insist",
        }
    }
}

struct Conv<'a, 'n> {
    r: &'a Resolved,
    used: HashSet<String>,
    notes: &'n mut Notes,
    /// "left" or "right": the local side in the file.
    me: &'static str,
    him: &'static str,
}

impl Conv<'_, '_> {
    fn get(&mut self, k: &str) -> Option<Param> {
        let p = self.r.p.get(k)?.clone();
        self.used.insert(k.to_string());
        Some(p)
    }
    fn local(&mut self, suffix: &str) -> Option<Param> {
        let k = format!("{}{suffix}", self.me);
        self.get(&k)
    }
    fn remote(&mut self, suffix: &str) -> Option<Param> {
        let k = format!("{}{suffix}", self.him);
        self.get(&k)
    }
    fn note(&mut self, p: &Param, kind: NoteKind, why: impl Into<String>) {
        let opt = format!("{}={}", p.key, shown_value(&p.key, &p.value));
        self.notes.add(&p.loc, Some(&self.r.name), opt, kind, why);
    }
    fn conn_note(&mut self, kind: NoteKind, why: impl Into<String>) {
        let (loc, n) = (self.r.loc.clone(), self.r.name.clone());
        self.notes
            .add(&loc, Some(&n), format!("conn {n}"), kind, why);
    }
    /// Every parameter not consumed: noted through the table.
    fn leftovers(&mut self, psk_auth: bool) -> Vec<(Param, Option<Map>)> {
        let mut v = Vec::new();
        let keys: Vec<String> = self.r.p.keys().cloned().collect();
        for k in keys {
            if self.used.contains(&k) {
                continue;
            }
            let p = self.r.p[&k].clone();
            let m = options::conn_option(&k);
            note_map(m, &p, Some(&self.r.name), self.notes, psk_auth);
            v.push((p, m));
        }
        v
    }
}

fn is_local(v: &str, addrs: &[IpAddr]) -> bool {
    v.parse::<IpAddr>().is_ok_and(|a| addrs.contains(&a))
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
        "passthrough" | "pass" | "drop" | "reject" => policy(&mut c, &name, &tyv),
        "tunnel" | "transport" if manual => tunnel(&mut c, &name, &tyv),
        "tunnel" | "transport" => connection(&mut c, ctx, &name, &tyv, &mut origin),
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
            c.leftovers(false);
            e
        }
    };
    e.origin.splice(0..0, origin);
    vec![e]
}

fn start_of(c: &mut Conv, table: Table) -> Result<&'static str, String> {
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

fn addr_value(v: &str, local: bool) -> Result<String, String> {
    match v {
        "%defaultroute" if local => Ok(v.into()),
        "%any" | "%any4" | "%any6" => Ok("%any".into()),
        "" => Err("missing".into()),
        "%opportunistic" | "%opportunisticgroup" | "%group" => Err(format!("{v}: opportunistic encryption is not implemented")),
        "%defaultroute" => Err("%defaultroute on both sides".into()),
        a if a.parse::<IpAddr>().is_ok() => Ok(a.into()),
        a => Err(format!("\"{a}\" is a DNS name: espresso takes addresses (names are not resolved); write the address")),
    }
}

fn set_subnets(c: &mut Conv, e: &mut Entry, local: bool) {
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

fn policy(c: &mut Conv, name: &str, ty: &str) -> Entry {
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
    c.leftovers(false);
    e
}

fn tunnel(c: &mut Conv, name: &str, ty: &str) -> Entry {
    let mut e = Entry::new(Table::Tunnel, name, c.r.loc.clone());
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
    set_subnets(c, &mut e, true);
    set_subnets(c, &mut e, false);
    if ty == "transport" {
        e.set("mode", "transport");
    }
    // AH is refused as a whole: the peer would send AH we cannot check.
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
    // Suite.
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
    // SPIs as ipsec_manual derived them (this side's view).
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
    // Keys: <side>espenckey is the key of the SA toward that side.
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
        });
    }
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
    c.leftovers(false);
    e
}

fn connection(c: &mut Conv, ctx: &Ctx, name: &str, ty: &str, origin: &mut Vec<String>) -> Entry {
    let mut e = Entry::new(Table::Connection, name, c.r.loc.clone());
    let pluto = ctx.dialect != Dialect::Strongswan;
    // Addresses.
    let lp = c.local("");
    let rp = c.remote("");
    let lv = lp.as_ref().map(|p| p.value.clone()).unwrap_or_default();
    let rv = rp.as_ref().map(|p| p.value.clone()).unwrap_or_default();
    let lv = if lv.is_empty() {
        "%defaultroute".to_string()
    } else {
        lv
    };
    match addr_value(&lv, true) {
        Ok(v) => e.set("local", v),
        Err(w) => {
            if let Some(p) = &lp {
                c.note(p, NoteKind::NotCarried, w.clone());
            }
            e.disable(w);
        }
    }
    let remote_any = rv.starts_with("%any");
    match addr_value(&rv, false) {
        Ok(v) => e.set("remote", v),
        Err(w) => {
            match &rp {
                Some(p) => c.note(p, NoteKind::NotCarried, w.clone()),
                None => c.conn_note(NoteKind::NotCarried, "no remote address (right=)"),
            }
            e.disable(format!("remote: {w}"));
        }
    }
    // Identities.
    let mut ids: [(Vec<String>, bool); 2] = [(vec![], false), (vec![], false)];
    for (i, (local, k)) in [(true, "local_id"), (false, "remote_id")]
        .into_iter()
        .enumerate()
    {
        let addr = if local { lv.clone() } else { rv.clone() };
        ids[i].0.push(addr.clone());
        let Some(p) = (if local { c.local("id") } else { c.remote("id") }) else {
            continue;
        };
        let v = p.value.trim().to_string();
        let id = if v == "%any" {
            Ok("%any".to_string())
        } else if v == "%fromcert" || v.contains('=') {
            ids[i].1 = true;
            Err((
                NoteKind::NeedsCerts,
                format!("a certificate identity: {}", features::CERTS_MISSING),
            ))
        } else if v.starts_with('%') {
            Err((NoteKind::NotCarried, format!("{v} is not implemented")))
        } else if let Some(f) = v.strip_prefix("@[").and_then(|f| f.strip_suffix(']')) {
            Ok(format!("@{f}"))
        } else if v.starts_with('@') || v.parse::<IpAddr>().is_ok() || v.contains('@') {
            Ok(v.clone())
        } else if pluto {
            Err((NoteKind::NotCarried, format!("{v}: Openswan resolves a bare name to its address at load time; write the address or @{v}")))
        } else {
            Ok(format!("@{v}"))
        };
        match id {
            Ok(id) => {
                ids[i].0.insert(0, id.clone());
                e.set(k, id);
            }
            Err((kind, why)) => {
                c.note(&p, kind, why.clone());
                if kind == NoteKind::NeedsCerts {
                    e.fields.push((
                        format!("{}id", if local { "left" } else { "right" }),
                        Value::String(v.clone()),
                    ));
                }
                e.disable(why);
            }
        }
    }
    set_subnets(c, &mut e, true);
    set_subnets(c, &mut e, false);
    // Authentication.
    let authby = c.get("authby");
    let lauth = c.local("auth");
    let rauth = c.remote("auth");
    let default_auth = if pluto { "rsasig" } else { "pubkey" };
    let av = authby
        .as_ref()
        .map(|p| p.value.to_ascii_lowercase())
        .or_else(|| lauth.as_ref().map(|p| p.value.to_ascii_lowercase()))
        .unwrap_or_else(|| default_auth.into());
    let psk_kinds = ["secret", "psk"];
    let mut psk_auth = false;
    let parts: Vec<&str> = av.split(['|', ',']).collect();
    if parts.iter().any(|a| psk_kinds.contains(a)) {
        psk_auth = true;
        if parts.len() > 1 {
            if let Some(p) = &authby {
                c.note(
                    p,
                    NoteKind::Changed,
                    "only the pre-shared key is carried over (certificates/RSA come with issue 13)",
                );
            }
        }
    } else if parts.iter().any(|a| {
        matches!(
            *a,
            "rsasig"
                | "rsa"
                | "pubkey"
                | "ecdsa"
                | "rsa-sha1"
                | "rsa-sha2"
                | "rsa-sha2_256"
                | "rsa-sha2_384"
                | "rsa-sha2_512"
        )
    }) {
        match &authby {
            Some(p) => c.note(p, NoteKind::NeedsCerts, features::CERTS_MISSING),
            None => c.conn_note(
                NoteKind::NeedsCerts,
                format!(
                    "no authby= ({} authenticates with RSA signatures by default): {}",
                    ctx.dialect.name(),
                    features::CERTS_MISSING
                ),
            ),
        }
        if features::CERTS {
            e.set("authby", "rsasig");
        } else {
            e.disable(features::CERTS_MISSING);
        }
    } else {
        let p = authby.clone().or(lauth.clone());
        let why = format!(
            "authby={av}: {}",
            if av.contains("xauth") {
                "XAUTH is an IKEv1 extension espresso does not implement"
            } else if av.contains("eap") {
                "EAP is not implemented"
            } else {
                "not implemented"
            }
        );
        match &p {
            Some(p) => c.note(p, NoteKind::NotCarried, why.clone()),
            None => c.conn_note(NoteKind::NotCarried, why.clone()),
        }
        e.disable(why);
    }
    if let Some(p) = &rauth {
        let v = p.value.to_ascii_lowercase();
        if !psk_kinds.contains(&v.as_str()) {
            let (kind, why) = if v.contains("eap") || v.contains("xauth") {
                (
                    NoteKind::NotCarried,
                    format!("the peer authenticating with {v}: EAP/XAUTH are not implemented"),
                )
            } else {
                (
                    NoteKind::NeedsCerts,
                    format!(
                        "the peer authenticating with {v}: {}",
                        features::CERTS_MISSING
                    ),
                )
            };
            c.note(p, kind, why.clone());
            e.disable(why);
        }
    }
    // The pre-shared key.
    if psk_auth {
        let (lids, rids) = (ids[0].0.clone(), ids[1].0.clone());
        match secrets::find(ctx.secrets, "PSK", &lids, &rids) {
            Some(s) => match s.text() {
                Some(t) if t.len() >= 8 => {
                    let path = format!("{SECRETS_DIR}/{name}.psk");
                    e.set("secrets", path.clone());
                    origin.push(format!(
                        "pre-shared key from {} (selectors: {})",
                        s.loc,
                        if s.selectors.is_empty() {
                            "none".into()
                        } else {
                            s.selectors.join(" ")
                        }
                    ));
                    e.secret = Some(SecretFile {
                        path,
                        fields: vec![("psk".into(), Zeroizing::new(t.to_string()))],
                    });
                }
                Some(t) => {
                    let why = format!("the pre-shared key at {} has {} characters: espresso requires at least 8 (use 20 or more random ones on both sides)", s.loc, t.len());
                    c.conn_note(NoteKind::NotCarried, why.clone());
                    e.disable(why);
                }
                None => {
                    let why = format!(
                        "the pre-shared key at {} is binary (0x/0s): espresso's psk is text",
                        s.loc
                    );
                    c.conn_note(NoteKind::NotCarried, why.clone());
                    e.disable(why);
                }
            },
            None => {
                let why = if ctx.have_secrets {
                    format!(
                        "no PSK in the secrets for {} <-> {}",
                        lids.join("/"),
                        rids.join("/")
                    )
                } else {
                    "no ipsec.secrets given: the pre-shared key is missing (espresso import ipsec.conf ipsec.secrets)".to_string()
                };
                c.conn_note(NoteKind::NotCarried, why.clone());
                e.disable(why);
            }
        }
    }
    // IKE version.
    let kx = c.get("keyexchange");
    let v2 = c.get("ikev2");
    let v1 = c.get("ikev1");
    let mut ikev = match ctx.dialect {
        Dialect::Freeswan => Ikev::Never,
        Dialect::Openswan | Dialect::Auto => Ikev::Permit,
        Dialect::Libreswan => Ikev::Insist,
        Dialect::Strongswan => Ikev::Propose,
    };
    let mut why_v1 = format!(
        "{}'s default when ikev2= is absent is {} (initiates with IKEv1)",
        ctx.dialect.name(),
        ikev.name()
    );
    let mut v1_param: Option<Param> = None;
    if let Some(p) = &kx {
        match p.value.to_ascii_lowercase().as_str() {
            "ikev1" => ikev = Ikev::Never,
            "ikev2" => ikev = Ikev::Insist,
            "ike" if !pluto => ikev = Ikev::Propose,
            "ike" => {}
            o => c.note(
                p,
                NoteKind::NotCarried,
                format!("keyexchange={o} is not understood"),
            ),
        }
        why_v1 = format!("keyexchange={}", p.value);
        v1_param = Some(p.clone());
    }
    if let Some(p) = &v1 {
        if yes(&p.value) == Some(false) {
            ikev = Ikev::Insist;
        }
    }
    if let Some(p) = &v2 {
        ikev = match p.value.to_ascii_lowercase().as_str() {
            "never" | "no" => Ikev::Never,
            "permit" => Ikev::Permit,
            "propose" => Ikev::Propose,
            "yes" if ctx.dialect == Dialect::Libreswan => Ikev::Insist,
            "yes" => Ikev::Propose,
            "insist" | "always" | "mandatory" => Ikev::Insist,
            o => {
                c.note(
                    p,
                    NoteKind::NotCarried,
                    format!("ikev2={o} is not understood"),
                );
                ikev
            }
        };
        why_v1 = format!("ikev2={}", p.value);
        v1_param = Some(p.clone());
    }
    let aggr = c.get("aggrmode").or_else(|| c.get("aggressive"));
    let aggr_on = aggr.as_ref().is_some_and(|p| yes(&p.value) == Some(true));
    let needs_v1 = matches!(ikev, Ikev::Never | Ikev::Permit);
    if features::IKEV1 {
        if pluto || kx.is_none() {
            e.set("ikev2", ikev.name());
        } else {
            e.set(
                "keyexchange",
                match ikev {
                    Ikev::Never => "ikev1",
                    Ikev::Insist => "ikev2",
                    _ => "ike",
                },
            );
        }
        if aggr_on && ikev != Ikev::Insist {
            e.set("aggressive", true);
        }
    } else {
        if needs_v1 {
            let why = format!("{why_v1}: {}", features::IKEV1_MISSING);
            match &v1_param {
                Some(p) => c.note(p, NoteKind::NeedsIkev1, why.clone()),
                None => c.conn_note(NoteKind::NeedsIkev1, why.clone()),
            }
            // Written in the agreed schema (the commented-out block shows it).
            e.set(
                if pluto || kx.is_none() {
                    "ikev2"
                } else {
                    "keyexchange"
                },
                if pluto || kx.is_none() {
                    ikev.name()
                } else {
                    "ikev1"
                },
            );
            if aggr_on {
                e.set("aggressive", true);
            }
            e.disable(format!("IKEv1 ({why_v1}): {}", features::IKEV1_MISSING));
        } else if ikev == Ikev::Propose {
            let why = "IKEv2 is initiated as in the original; IKEv1 from the peer (which the original would also accept) is not answered until IKEv1 is available";
            match &v1_param {
                Some(p) => c.note(p, NoteKind::Changed, why),
                None => c.conn_note(NoteKind::Changed, format!("{why_v1}: {why}")),
            }
        }
        if let Some(p) = &aggr {
            if aggr_on && !needs_v1 {
                c.note(
                    p,
                    NoteKind::NoEffect,
                    "aggressive mode is IKEv1; this connection uses IKEv2",
                );
            } else if aggr_on {
                c.note(
                    p,
                    NoteKind::NeedsIkev1,
                    format!("aggressive mode: {}", features::IKEV1_MISSING),
                );
            }
        }
    }
    // Proposals.
    let default_dh = ["modp2048", "modp1024"];
    let pfsgroup = c.get("pfsgroup");
    let pfs_dh = match &pfsgroup {
        Some(p) => match algs::dh_group(&p.value) {
            Ok(g) => Some(g),
            Err(w) => {
                c.note(p, NoteKind::NotCarried, w.clone());
                e.disable(w);
                None
            }
        },
        None => None,
    };
    let mut esn_tokens = None;
    if let Some(p) = c.get("esn") {
        match p.value.to_ascii_lowercase().as_str() {
            "yes" => esn_tokens = Some("esn"),
            "either" => esn_tokens = Some("esn-noesn"),
            "no" => {}
            o => c.note(
                &p,
                NoteKind::NotCarried,
                format!("esn={o} is not understood"),
            ),
        }
    }
    for (keys, ike, field) in [
        (&["ike", "ikealg"][..], true, "ike"),
        (&["esp", "phase2alg"][..], false, "esp"),
    ] {
        let mut ps: Vec<Param> = keys.iter().filter_map(|k| c.get(k)).collect();
        let Some(p) = ps.pop() else {
            if !ike && (pfs_dh.is_some() || esn_tokens.is_some()) {
                c.conn_note(NoteKind::NotCarried, "pfsgroup=/esn= without esp=/phase2alg=: espresso's default ESP proposals are used as they are");
            }
            continue;
        };
        let t = algs::translate(&p.value, ike, &default_dh, pfs_dh.as_deref());
        for (w, why) in &t.dropped {
            c.note(
                &p,
                NoteKind::NotCarried,
                format!("proposal {w} left out: {why}"),
            );
        }
        if t.filled_dh {
            c.note(&p, NoteKind::Changed, "a proposal without a DH group: the original fills in its defaults; espresso proposes modp2048 and modp1024");
        }
        if !pluto && !t.strict {
            c.note(&p, NoteKind::Changed, "strongSwan appends its default proposals when the list does not end in '!'; espresso offers exactly these");
        }
        if t.proposals.is_empty() {
            e.disable(format!(
                "{}={}: no proposal espresso implements",
                p.key, p.value
            ));
            continue;
        }
        let mut props = t.proposals.clone();
        if !ike {
            if let Some(x) = esn_tokens {
                for q in props.iter_mut() {
                    *q = format!("{q}-{x}");
                }
            }
            if t.legacy {
                e.set("allow_legacy", true);
                c.note(&p, NoteKind::Changed, "allow_legacy = true: the original offers 3DES or HMAC-MD5 (deprecated, RFC 8221)");
            }
        }
        e.set(field, props.join(", "));
    }
    if let Some(p) = c.get("pfs") {
        if yes(&p.value) == Some(false) {
            e.set("pfs", false);
        }
    }
    for k in ["phase2", "auth"] {
        if let Some(p) = c.get(k) {
            if p.value.eq_ignore_ascii_case("ah") {
                c.note(
                    &p,
                    NoteKind::Refused,
                    "espresso has no AH (RFC 4302): use ESP with integrity on both sides",
                );
                e.disable("uses AH, which espresso does not implement (RFC 4302)");
            }
        }
    }
    // Lifetimes (explicit: the dialect's defaults differ from espresso's).
    let (ike_def, child_def) = match ctx.dialect {
        Dialect::Strongswan => ("3h", "1h"),
        Dialect::Libreswan => ("8h", "8h"),
        _ => ("1h", "8h"),
    };
    for (keys, field, def) in [
        (&["ikelifetime"][..], "ike_lifetime", Some(ike_def)),
        (
            &["keylife", "salifetime", "lifetime"][..],
            "lifetime",
            Some(child_def),
        ),
        (&["rekeymargin", "margintime"][..], "margin", None),
        (&["rekeyfuzz"][..], "fuzz", None),
        (&["lifebytes"][..], "life_bytes", None),
        (&["lifepackets"][..], "life_packets", None),
    ] {
        let mut ps: Vec<Param> = keys.iter().filter_map(|k| c.get(k)).collect();
        match ps.pop() {
            Some(p) => {
                let v = match field {
                    "fuzz" => Some(Value::String(p.value.clone())),
                    "life_bytes" | "life_packets" => p
                        .value
                        .parse::<i64>()
                        .ok()
                        .map(Value::Integer)
                        .or(Some(Value::String(p.value.clone()))),
                    _ => duration(&p.value),
                };
                match v {
                    Some(v) => e.set(field, v),
                    None => c.note(
                        &p,
                        NoteKind::NotCarried,
                        "not a duration (seconds, or a number with s, m, h or d)",
                    ),
                }
            }
            None => {
                if let Some(d) = def {
                    e.set(field, d);
                }
            }
        }
    }
    if let Some(p) = c.get("rekey") {
        if yes(&p.value) == Some(false) {
            e.set("rekey", false);
        }
    }
    // DPD.
    let dd = c.get("dpddelay");
    let dt = c.get("dpdtimeout");
    let da = c.get("dpdaction");
    let action = da.as_ref().map(|p| p.value.to_ascii_lowercase());
    let on = if pluto {
        dd.is_some()
    } else {
        action.as_deref().is_some_and(|a| a != "none")
    };
    if on {
        let a = match action.as_deref() {
            None => "hold",
            Some("hold") | Some("trap") => "hold",
            Some("clear") => "clear",
            Some("restart") => "restart",
            Some("restart_by_peer") => {
                if let Some(p) = &da {
                    c.note(
                        p,
                        NoteKind::Changed,
                        "restart_by_peer: espresso restarts this connection (restart)",
                    );
                }
                "restart"
            }
            Some(o) => {
                if let Some(p) = &da {
                    c.note(
                        p,
                        NoteKind::NotCarried,
                        format!("dpdaction={o} is not understood"),
                    );
                }
                "hold"
            }
        };
        let delay = dd
            .as_ref()
            .and_then(|p| duration(&p.value))
            .unwrap_or(Value::String("30s".into()));
        let timeout = dt
            .as_ref()
            .and_then(|p| duration(&p.value))
            .unwrap_or(Value::String(if pluto { "120s" } else { "150s" }.into()));
        e.set("dpd_delay", delay);
        e.set("dpd_timeout", timeout);
        e.set("dpd_action", a);
    } else {
        for p in [&dd, &dt, &da].into_iter().flatten() {
            c.note(
                p,
                NoteKind::NoEffect,
                if pluto {
                    "DPD is off without dpddelay="
                } else {
                    "DPD is off with dpdaction=none (strongSwan's default)"
                },
            );
        }
    }
    // Start.
    match start_of(c, Table::Connection) {
        Ok(s) if remote_any && matches!(s, "start" | "trap") => {
            c.conn_note(
                NoteKind::Changed,
                format!("right=%any cannot initiate: start = \"add\" (was auto={s})"),
            );
            e.set("start", "add");
        }
        Ok(s) => e.set("start", s),
        Err(w) => e.disable(w),
    }
    if ty == "transport" {
        e.set("mode", "transport");
    }
    for k in ["forceencaps", "encapsulation"] {
        if let Some(p) = c.get(k) {
            if yes(&p.value) == Some(true) {
                e.set("encap", true);
            }
        }
    }
    if let Some(p) = c.get("compress") {
        if yes(&p.value) == Some(true) {
            c.note(&p, NoteKind::NotCarried, "IPComp is not implemented: the tunnel runs uncompressed (the original also proposes uncompressed)");
        }
    }
    if let Some(p) = c.get("mobike") {
        if yes(&p.value) != Some(false) {
            c.note(
                &p,
                NoteKind::NotCarried,
                "MOBIKE is not implemented (the peer falls back to fixed addresses)",
            );
        }
    }
    for k in ["replay_window", "replay-window"] {
        if let Some(p) = c.get(k) {
            match p.value.parse::<i64>() {
                Ok(n) => e.set("replay_window", n),
                Err(_) => c.note(&p, NoteKind::NotCarried, "not a number"),
            }
        }
    }
    // Certificate fields: kept in the (commented-out) block when certificates are what it needs.
    let leftover = c.leftovers(psk_auth);
    if !psk_auth {
        for (p, m) in leftover {
            if matches!(m, Some(Map::Certs(_))) {
                let k = if c.me == "left" {
                    p.key.clone()
                } else {
                    flip(&p.key)
                };
                e.fields.push((k, Value::String(p.value.clone())));
            }
        }
    }
    e
}
