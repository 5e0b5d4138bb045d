//! Halon SR / OpenBSD (seed 002): `ipsec.conf(5)` statements (`ike ...`,
//! manual `esp ... spi IN:OUT ... enckey ...`, `flow esp ... peer ...`,
//! macros, Halon's `ipsec { ... }` block with `label`), and the manual-key
//! table as CSV, one tunnel a row. SPIs are decimal or `0x` hex; keys `0x`
//! hex, or text converted to hex as Halon SR documents for ZyWALL
//! (`kkkk...` -> `0x6b6b...`); Sonicwall, Juniper and Halon SX write hex
//! without `0x`. `mirror`: the table describes the peer (its in/out swapped,
//! as Halon says: "the outgoing on one side should be the incoming on the other").

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use toml::Value;
use zeroize::Zeroizing;

use super::conn::sanitize;
use super::features;
use super::notes::{Loc, NoteKind, Notes};
use super::out::{Entry, SecretFile, Table, SECRETS_DIR};

/// OpenBSD/Halon algorithm names -> espresso tokens.
fn enc_name(s: &str) -> Option<&'static str> {
    Some(match s.to_ascii_lowercase().as_str() {
        "aes" | "aes-128" | "aes128" | "aes-cbc" | "aes-128-cbc" => "aes128",
        "aes-256" | "aes256" | "aes-256-cbc" => "aes256",
        "aes-128-gcm" | "aes-gcm" | "aes128gcm" | "aes-gcm-128" => "aes128gcm16",
        "aes-256-gcm" | "aes256gcm" | "aes-gcm-256" => "aes256gcm16",
        "3des" | "3des-cbc" => "3des",
        "chacha20-poly1305" | "chacha20poly1305" => "chacha20poly1305",
        "null" => "null",
        _ => return None,
    })
}

fn auth_name(s: &str) -> Option<&'static str> {
    Some(match s.to_ascii_lowercase().as_str() {
        "hmac-sha1" | "sha1" | "sha" => "sha1",
        "hmac-sha2-256" | "sha256" | "sha2-256" | "sha-256" => "sha256",
        "hmac-sha2-384" | "sha384" | "sha-384" => "sha384",
        "hmac-sha2-512" | "sha512" | "sha-512" => "sha512",
        "hmac-md5" | "md5" => "md5",
        _ => return None,
    })
}

fn group_name(s: &str) -> Option<&'static str> {
    Some(match s.to_ascii_lowercase().as_str() {
        "modp1024" | "2" | "grp2" => "modp1024",
        "modp2048" | "14" | "grp14" => "modp2048",
        "ecp256" | "19" | "grp19" => "ecp256",
        "ecp384" | "20" | "grp20" => "ecp384",
        "curve25519" | "31" => "curve25519",
        _ => return None,
    })
}

/// Key conventions of the devices in Halon's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    /// Halon SR / OpenBSD: SPIs decimal unless `0x`, keys `0x` hex.
    HalonSr,
    /// ZyWALL: one decimal SPI for both directions, ASCII keys.
    Zywall,
    /// Sonicwall, Juniper, Halon SX: SPIs and keys in hex without `0x`.
    BareHex,
}

impl Vendor {
    fn parse(s: &str) -> Option<Vendor> {
        Some(
            match s
                .trim()
                .to_ascii_lowercase()
                .replace([' ', '_'], "-")
                .as_str()
            {
                "" | "halon" | "halon-sr" | "openbsd" | "espresso" => Vendor::HalonSr,
                "zywall" | "zyxel" => Vendor::Zywall,
                "sonicwall" | "juniper" | "halon-sx" | "netscreen" => Vendor::BareHex,
                _ => return None,
            },
        )
    }
}

/// An SPI in the vendor's convention.
pub fn spi(s: &str, v: Vendor) -> Result<u32, String> {
    let s = s.trim();
    let r = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16)
    } else if v == Vendor::BareHex {
        u32::from_str_radix(s, 16)
    } else {
        s.parse()
    };
    r.map_err(|_| format!("SPI \"{s}\" is not a number"))
}

/// A key in the vendor's convention, as `0x` hex.
pub fn key(s: &str, v: Vendor) -> Result<Zeroizing<String>, String> {
    let s = s.trim();
    let bytes = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        super::secrets::hex(h).ok_or("a 0x key needs an even number of hex digits")?
    } else if let Some(t) = s.strip_prefix("ascii:") {
        t.as_bytes().to_vec()
    } else {
        match v {
            Vendor::Zywall => s.as_bytes().to_vec(),
            Vendor::BareHex => super::secrets::hex(s).ok_or("hex digits expected (Sonicwall/Juniper/Halon SX keys)")?,
            Vendor::HalonSr => {
                return Err("Halon SR keys start with 0x (for an ASCII key write ascii:TEXT, or set vendor to zywall)".into())
            }
        }
    };
    let b = Zeroizing::new(bytes);
    Ok(Zeroizing::new(super::secrets::to_hex(&b)))
}

/// Splits one CSV line (RFC 4180 quoting).
pub fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut q = false;
    let mut it = line.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '"' if q && it.peek() == Some(&'"') => {
                cur.push('"');
                it.next();
            }
            '"' => q = !q,
            ',' | ';' if !q => out.push(std::mem::take(&mut cur).trim().to_string()),
            c => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

fn column(h: &str) -> Option<&'static str> {
    let n = h
        .trim()
        .to_ascii_lowercase()
        .replace([' ', '-', '(', ')'], "_");
    let n = n.trim_matches('_');
    Some(match n {
        "name" | "label" | "tunnel" | "description" => "name",
        "local_gateway" | "local" | "local_ip" | "gateway" | "local_address" => "local",
        "peer" | "remote" | "remote_gateway" | "peer_address" | "remote_ip" => "remote",
        "spi_in" | "incoming_spi" | "in_spi" | "spi_incoming" => "spi_in",
        "spi_out" | "outgoing_spi" | "out_spi" | "spi_outgoing" => "spi_out",
        "spi" => "spi",
        "enc" | "encryption" | "enc_alg" | "encryption_algorithm" | "cipher" => "enc",
        "auth" | "authentication" | "auth_alg" | "authentication_algorithm" | "hash" => "auth",
        "enc_key_in" | "encryption_key_in" | "incoming_encryption_key" => "enc_key_in",
        "enc_key_out" | "encryption_key_out" | "outgoing_encryption_key" => "enc_key_out",
        "enc_key" | "encryption_key" => "enc_key",
        "auth_key_in" | "authentication_key_in" | "incoming_authentication_key" => "auth_key_in",
        "auth_key_out" | "authentication_key_out" | "outgoing_authentication_key" => "auth_key_out",
        "auth_key" | "authentication_key" => "auth_key",
        "from" | "local_networks" | "local_network" | "local_subnets" | "flow_from" => "from",
        "to" | "remote_networks" | "remote_network" | "remote_subnets" | "flow_to" => "to",
        "vendor" | "device" | "peer_device" => "vendor",
        "mode" => "mode",
        _ => return None,
    })
}

/// One manual tunnel, from a CSV row or `esp` + `flow` statements.
#[derive(Default)]
struct Manual {
    name: String,
    loc: Loc,
    local: String,
    remote: String,
    spi_in: Option<u32>,
    spi_out: Option<u32>,
    enc: String,
    auth: String,
    keys: Vec<(String, Zeroizing<String>)>,
    from: Vec<String>,
    to: Vec<String>,
    mode: Option<String>,
    encap: bool,
}

fn nets(s: &str) -> Vec<String> {
    s.split([' ', ',', '\t'])
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn manual_entry(m: Manual, mirror: bool, notes: &mut Notes) -> Entry {
    let name = sanitize(&m.name);
    let mut e = Entry::new(Table::Tunnel, &name, m.loc.clone());
    e.origin.push(format!("{} ({})", m.name, m.loc));
    let (local, remote, from, to, si, so) = if mirror {
        e.origin
            .push("the peer's table, mirrored: in and out swapped".into());
        (m.remote, m.local, m.to, m.from, m.spi_out, m.spi_in)
    } else {
        (m.local, m.remote, m.from, m.to, m.spi_in, m.spi_out)
    };
    for (k, v) in [("local", &local), ("remote", &remote)] {
        match v.parse::<IpAddr>() {
            Ok(a) => e.set(k, a.to_string()),
            Err(_) => e.disable(format!("{k} \"{v}\" is not an address")),
        }
    }
    manual_subnets(&mut e, &from, &to, &m.loc, &name, notes);
    if let Some(mo) = &m.mode {
        if mo == "transport" {
            e.set("mode", "transport");
        }
    }
    manual_suite(&mut e, (&m.enc, &m.auth), &m.loc, &name, notes);
    match (si, so) {
        (Some(i), Some(o)) => {
            e.set("spi_in", format!("{i:#x}"));
            e.set("spi_out", format!("{o:#x}"));
        }
        _ => e.disable("no SPIs"),
    }
    if !m.keys.is_empty() {
        let swap = |k: &str| -> String {
            if !mirror {
                return k.to_string();
            }
            if let Some(b) = k.strip_suffix("_in") {
                format!("{b}_out")
            } else if let Some(b) = k.strip_suffix("_out") {
                format!("{b}_in")
            } else {
                k.to_string()
            }
        };
        let mut keys: Vec<(String, Zeroizing<String>)> =
            m.keys.into_iter().map(|(k, v)| (swap(&k), v)).collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        let path = format!("{SECRETS_DIR}/{name}.keys");
        e.set("keys", path.clone());
        e.secret = Some(SecretFile {
            path,
            fields: keys,
            raw: None,
        });
    }
    if m.encap {
        e.set("nat_t", true);
    }
    e.set("replay_window", 0);
    notes.add(&m.loc, Some(&name), "replay protection", NoteKind::Changed, "replay_window = 0: manual keys in Halon SR/OpenBSD have no replay protection (a restarted peer starts at sequence number 1); set 64..65536 if both sides never restart their counters");
    e
}

/// The networks on each side (`from`/`to`).
fn manual_subnets(
    e: &mut Entry,
    from: &[String],
    to: &[String],
    loc: &Loc,
    name: &str,
    notes: &mut Notes,
) {
    for (k, l) in [("local_subnets", from), ("remote_subnets", to)] {
        let mut vals = Vec::new();
        for n in l {
            match n
                .parse::<IpNet>()
                .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
            {
                Ok(x) => vals.push(Value::String(x.trunc().to_string())),
                Err(_) => {
                    notes.add(
                        loc,
                        Some(name),
                        format!("{k} {n}"),
                        NoteKind::NotCarried,
                        "not a network",
                    );
                    e.disable(format!("{n} is not a network"));
                }
            }
        }
        match vals.len() {
            0 => {}
            1 => e.set(k, vals.remove(0)),
            _ => e.set(k, Value::Array(vals)),
        }
    }
}

/// The suite from the written `enc` and `auth` (defaults aes and
/// hmac-sha2-256).
fn manual_suite(
    e: &mut Entry,
    (w_enc, w_auth): (&str, &str),
    loc: &Loc,
    name: &str,
    notes: &mut Notes,
) {
    let enc = enc_name(if w_enc.is_empty() { "aes" } else { w_enc });
    let aead = enc.is_some_and(|x| x.contains("gcm") || x.contains("chacha"));
    let auth = if aead {
        Some("")
    } else {
        auth_name(if w_auth.is_empty() {
            "hmac-sha2-256"
        } else {
            w_auth
        })
    };
    match (enc, auth) {
        (Some(en), Some(au)) => {
            let suite = if au.is_empty() {
                en.to_string()
            } else {
                format!("{en}-{au}")
            };
            if suite.contains("3des") || suite.ends_with("md5") {
                e.set("allow_legacy", true);
                notes.add(
                    loc,
                    Some(name),
                    format!("suite {suite}"),
                    NoteKind::Changed,
                    "allow_legacy = true: 3DES or HMAC-MD5 (deprecated, RFC 8221)",
                );
            }
            e.set("suite", suite);
        }
        _ => {
            let why = format!("enc {} / auth {}: not implemented (espresso: aes, aes-256, aes-128-gcm, aes-256-gcm, 3des, chacha20-poly1305 with hmac-sha1, hmac-sha2-256/384/512, hmac-md5)", w_enc, w_auth);
            notes.add(loc, Some(name), "suite", NoteKind::NotCarried, why.clone());
            e.disable(why);
        }
    }
}

/// Reads the manual-key table as CSV (first line: column names).
pub fn read_csv(text: &str, file: &str, mirror: bool, notes: &mut Notes) -> Vec<Entry> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((hl, header)) = lines.next() else {
        return vec![];
    };
    let cols: Vec<Option<&str>> = csv_fields(header).iter().map(|h| column(h)).collect();
    for (i, h) in csv_fields(header).iter().enumerate() {
        if cols[i].is_none() {
            notes.add(&Loc { file: file.into(), line: hl + 1 }, None, format!("column {h}"), NoteKind::NotCarried, "unknown column (name, local_gateway, peer, spi_in, spi_out, spi, enc, auth, enc_key_in/out, auth_key_in/out, enc_key, auth_key, from, to, vendor, mode)");
        }
    }
    let mut out = Vec::new();
    for (i, l) in lines {
        let loc = Loc {
            file: file.into(),
            line: i + 1,
        };
        let vals = csv_fields(l);
        let mut row: BTreeMap<&str, String> = BTreeMap::new();
        for (c, v) in cols.iter().zip(vals) {
            if let Some(c) = c {
                if !v.is_empty() {
                    row.insert(c, v);
                }
            }
        }
        let vendor = match Vendor::parse(row.get("vendor").map(String::as_str).unwrap_or("")) {
            Some(v) => v,
            None => {
                notes.add(&loc, None, format!("vendor {}", row["vendor"]), NoteKind::NotCarried, "unknown vendor (halon-sr, zywall, sonicwall, juniper, halon-sx): Halon SR conventions used");
                Vendor::HalonSr
            }
        };
        let name = row
            .get("name")
            .cloned()
            .unwrap_or_else(|| format!("row{}", i + 1));
        let mut m = Manual {
            name: name.clone(),
            loc: loc.clone(),
            local: row.get("local").cloned().unwrap_or_default(),
            remote: row.get("remote").cloned().unwrap_or_default(),
            enc: row.get("enc").cloned().unwrap_or_default(),
            auth: row.get("auth").cloned().unwrap_or_default(),
            from: nets(row.get("from").map(String::as_str).unwrap_or("")),
            to: nets(row.get("to").map(String::as_str).unwrap_or("")),
            mode: row.get("mode").map(|s| s.to_ascii_lowercase()),
            ..Default::default()
        };
        let mut bad = Vec::new();
        let sp = |k: &str, bad: &mut Vec<String>| {
            row.get(k).and_then(|s| {
                spi(s, vendor)
                    .map_err(|e| bad.push(format!("{k}: {e}")))
                    .ok()
            })
        };
        match (
            sp("spi", &mut bad),
            sp("spi_in", &mut bad),
            sp("spi_out", &mut bad),
        ) {
            (Some(s), None, None) => {
                m.spi_in = Some(s);
                m.spi_out = Some(s);
            }
            (_, i, o) => {
                m.spi_in = i;
                m.spi_out = o;
            }
        }
        for k in [
            "enc_key_in",
            "enc_key_out",
            "enc_key",
            "auth_key_in",
            "auth_key_out",
            "auth_key",
        ] {
            if let Some(v) = row.get(k) {
                match key(v, vendor) {
                    Ok(x) => m.keys.push((k.to_string(), x)),
                    Err(e) => bad.push(format!("{k} <hidden, {} characters>: {e}", v.len())),
                }
            }
        }
        let mut e = manual_entry(m, mirror, notes);
        for b in bad {
            notes.add(
                &loc,
                Some(&e.name),
                b.clone(),
                NoteKind::NotCarried,
                "value not understood",
            );
            e.disable(b);
        }
        out.push(e);
    }
    out
}

/// Words of a statement with macros expanded; quoted strings are one word.
fn words(s: &str, macros: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut q = false;
    for c in s.chars() {
        match c {
            '"' => q = !q,
            c if c.is_whitespace() && !q => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.into_iter()
        .flat_map(|w| {
            let w = match w.strip_prefix('$') {
                Some(m) => macros.get(m).cloned().unwrap_or(w),
                None => w,
            };
            // `{ a b }` lists: expanded by the caller through braces.
            w.split_whitespace().map(str::to_string).collect::<Vec<_>>()
        })
        .collect()
}

/// The word after keyword `k`.
fn arg(w: &[String], k: &str) -> Option<String> {
    w.iter()
        .position(|x| x == k)
        .and_then(|i| w.get(i + 1).cloned())
}

/// The value after keyword `k`: one word or a `{ a, b }` list.
fn list(w: &[String], k: &str) -> Vec<String> {
    let Some(i) = w.iter().position(|x| x == k) else {
        return vec![];
    };
    match w.get(i + 1).map(String::as_str) {
        Some("{") => w[i + 2..]
            .iter()
            .take_while(|x| *x != "}")
            .map(|x| x.trim_end_matches(',').to_string())
            .collect(),
        Some(x) => vec![x.trim_start_matches('{').trim_end_matches('}').to_string()],
        None => vec![],
    }
}

/// The statements of an OpenBSD/Halon file, by kind, with macros expanded.
#[derive(Default)]
struct Statements {
    flows: Vec<(Loc, Vec<String>)>,
    sas: Vec<(Loc, Vec<String>)>,
    ikes: Vec<(Loc, Vec<String>)>,
}

/// Reads OpenBSD `ipsec.conf(5)` / Halon SR `ipsec { ... }` statements.
pub fn read(
    text: &str,
    file: &str,
    local_addrs: &[IpAddr],
    mirror: bool,
    notes: &mut Notes,
) -> Vec<Entry> {
    let Statements { flows, sas, ikes } = statements(text, file, notes);
    let mut out = Vec::new();
    for (n, (loc, w)) in sas.iter().enumerate() {
        if let Some(m) = sa_manual(n, loc, w, &flows, local_addrs, notes) {
            out.push(manual_entry(m, mirror, notes));
        }
    }
    for (loc, f) in &flows {
        let p = arg(f, "peer").unwrap_or_default();
        let used = sas.iter().any(|(_, w)| {
            arg(w, "from").as_deref() == Some(&p) || arg(w, "to").as_deref() == Some(&p)
        });
        if !used
            && !ikes
                .iter()
                .any(|(_, w)| arg(w, "peer").as_deref() == Some(&p))
        {
            notes.add(
                loc,
                None,
                f.join(" "),
                NoteKind::NotCarried,
                "a flow without an SA or ike statement for its peer",
            );
        }
    }
    for (n, (loc, w)) in ikes.iter().enumerate() {
        out.push(ike_entry(n, loc, w, notes));
    }
    out
}

/// Joins continuation lines (trailing backslash), drops comments, takes
/// macro definitions and sorts the statements by kind.
fn statements(text: &str, file: &str, notes: &mut Notes) -> Statements {
    let mut macros = BTreeMap::new();
    let mut st = Statements::default();
    // Join continuation lines (trailing backslash).
    let mut stmts: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let l = match raw.find('#') {
            Some(p) if !raw[..p].contains('"') || raw[..p].matches('"').count() % 2 == 0 => {
                &raw[..p]
            }
            _ => raw,
        };
        let (l, cont) = match l.trim_end().strip_suffix('\\') {
            Some(x) => (x.to_string(), true),
            None => (l.to_string(), false),
        };
        let (n, mut s) = pending.take().unwrap_or((i + 1, String::new()));
        s.push(' ');
        s.push_str(&l);
        if cont {
            pending = Some((n, s));
        } else if !s.trim().is_empty() {
            stmts.push((n, s.trim().to_string()));
        }
    }
    for (line, s) in stmts {
        let loc = Loc {
            file: file.into(),
            line,
        };
        let s = s.trim_end_matches('{').trim();
        if s == "}" || s == "ipsec" || s.is_empty() {
            continue;
        }
        if let Some((k, v)) = s.split_once('=') {
            if !k.trim().contains(' ') && !s.starts_with("ike") {
                macros.insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
                continue;
            }
        }
        let w = words(s, &macros);
        match w.first().map(String::as_str) {
            Some("flow") => st.flows.push((loc, w)),
            Some("esp") | Some("ah") | Some("ipcomp") | Some("ipip") | Some("tcpmd5") => {
                st.sas.push((loc, w))
            }
            Some("ike") => st.ikes.push((loc, w)),
            Some(o) => notes.add(
                &loc,
                None,
                o.to_string(),
                NoteKind::NotCarried,
                "statement not understood (ike, esp, flow, macros)",
            ),
            None => {}
        }
    }
    st
}

/// An `esp` SA statement with the flows to its peer: a manual tunnel
/// (`None`, noted, for other SA kinds or without from/to).
fn sa_manual(
    n: usize,
    loc: &Loc,
    w: &[String],
    flows: &[(Loc, Vec<String>)],
    local_addrs: &[IpAddr],
    notes: &mut Notes,
) -> Option<Manual> {
    if w[0] != "esp" {
        notes.add(
            loc,
            None,
            w[0].clone(),
            NoteKind::Refused,
            if w[0] == "ah" {
                "espresso has no AH (RFC 4302): use esp with auth"
            } else {
                "not implemented"
            },
        );
        return None;
    }
    let (Some(src), Some(dst)) = (arg(w, "from"), arg(w, "to")) else {
        notes.add(
            loc,
            None,
            "esp",
            NoteKind::NotCarried,
            "an SA needs from SRC to DST",
        );
        return None;
    };
    // Which end is ours: our addresses, else a flow's peer, else from.
    let flow_peer = |a: &str| {
        flows
            .iter()
            .any(|(_, f)| arg(f, "peer").as_deref() == Some(a))
    };
    let src_local = if local_addrs.iter().any(|a| a.to_string() == src) {
        true
    } else if local_addrs.iter().any(|a| a.to_string() == dst) {
        false
    } else {
        !flow_peer(&src)
    };
    let (me, peer) = if src_local {
        (src.clone(), dst.clone())
    } else {
        (dst.clone(), src.clone())
    };
    let label = arg(w, "label").unwrap_or_else(|| format!("sa{}-{peer}", n + 1));
    let mut m = Manual {
        name: label,
        loc: loc.clone(),
        local: me.clone(),
        remote: peer.clone(),
        ..Default::default()
    };
    if let Some(s) = arg(w, "spi") {
        let (a, b) = s.split_once(':').unwrap_or((&s, &s));
        let (a, b) = (spi(a, Vendor::HalonSr).ok(), spi(b, Vendor::HalonSr).ok());
        // first: src -> dst, second: dst -> src
        if src_local {
            m.spi_out = a;
            m.spi_in = b;
        } else {
            m.spi_out = b;
            m.spi_in = a;
        }
    }
    m.enc = arg(w, "enc").unwrap_or_default();
    m.auth = arg(w, "auth").unwrap_or_default();
    m.encap = w.iter().any(|x| x == "udpencap");
    if w.iter().any(|x| x == "transport") {
        m.mode = Some("transport".into());
    }
    sa_keys(&mut m, loc, w, src_local, notes);
    for (_, f) in flows
        .iter()
        .filter(|(_, f)| arg(f, "peer").as_deref() == Some(peer.as_str()))
    {
        let dir_in = f.iter().any(|x| x == "in");
        let (fr, to) = (list(f, "from"), list(f, "to"));
        let (fr, to) = if dir_in { (to, fr) } else { (fr, to) };
        for x in fr {
            if !m.from.contains(&x) {
                m.from.push(x);
            }
        }
        for x in to {
            if !m.to.contains(&x) {
                m.to.push(x);
            }
        }
    }
    Some(m)
}

/// `enckey`/`authkey` (`first:second`, first from src to dst) as the
/// manual tunnel's in and out keys.
fn sa_keys(m: &mut Manual, loc: &Loc, w: &[String], src_local: bool, notes: &mut Notes) {
    for (k, base) in [("enckey", "enc_key"), ("authkey", "auth_key")] {
        if let Some(v) = arg(w, k) {
            let (a, b) = match v.split_once(':') {
                Some((a, b)) => (a.to_string(), b.to_string()),
                None => (v.clone(), v.clone()),
            };
            let (first, second) = (key(&a, Vendor::HalonSr), key(&b, Vendor::HalonSr));
            match (first, second) {
                (Ok(a), Ok(b)) => {
                    let (o, i) = if src_local { (a, b) } else { (b, a) };
                    m.keys.push((format!("{base}_in"), i));
                    m.keys.push((format!("{base}_out"), o));
                }
                (Err(e), _) | (_, Err(e)) => notes.add(
                    loc,
                    Some(&m.name),
                    format!("{k} <hidden>"),
                    NoteKind::NotCarried,
                    e,
                ),
            }
        }
    }
}

/// An `ike` statement: isakmpd's IKEv1, in the agreed schema (`version = 1`),
/// written commented out until IKEv1 is available.
fn ike_entry(n: usize, loc: &Loc, w: &[String], notes: &mut Notes) -> Entry {
    let peer = arg(w, "peer");
    let label = arg(w, "label")
        .or_else(|| arg(w, "tag"))
        .unwrap_or_else(|| {
            format!(
                "ike{}-{}",
                n + 1,
                peer.clone().unwrap_or_else(|| "any".into())
            )
        });
    let name = sanitize(&label);
    let mut e = Entry::new(Table::Connection, &name, loc.clone());
    e.origin.push(format!("ike statement ({loc})"));
    let mode = w.get(1).map(String::as_str).unwrap_or("active");
    let mode = if matches!(mode, "active" | "passive" | "dynamic") {
        mode
    } else {
        "active"
    };
    if let Some(l) = arg(w, "local") {
        e.set("local", l);
    }
    e.set("remote", peer.clone().unwrap_or_else(|| "%any".into()));
    let (fr, to) = (list(w, "from"), list(w, "to"));
    for (k, v) in [("local_subnets", fr), ("remote_subnets", to)] {
        match v.len() {
            0 => {}
            1 => e.set(k, v[0].clone()),
            _ => e.set(k, Value::Array(v.into_iter().map(Value::String).collect())),
        }
    }
    if let Some(i) = arg(w, "srcid") {
        e.set("local_id", i);
    }
    if let Some(i) = arg(w, "dstid") {
        e.set("remote_id", i);
    }
    ike_proposals(&mut e, w);
    if let Some(k) = arg(w, "psk") {
        let path = format!("{SECRETS_DIR}/{name}.psk");
        e.set("secrets", path.clone());
        e.secret = Some(SecretFile {
            path,
            fields: vec![("psk".into(), Zeroizing::new(k))],
            raw: None,
        });
    } else {
        let why = "no psk: isakmpd then authenticates with X.509 from /etc/isakmpd (private/local.key, certs/, ca/): set local_key = \"/etc/isakmpd/private/local.key\", local_cert (the file in certs/ for this gateway's ID) and cacerts = [\"/etc/isakmpd/ca\"] by hand";
        notes.add(loc, Some(&name), "ike", NoteKind::NotCarried, why);
        e.disable(why);
    }
    e.set(
        "start",
        match mode {
            "passive" => "add",
            _ => "start",
        },
    );
    if mode == "dynamic" {
        e.set("dpd_delay", "30s");
        e.set("dpd_action", "restart");
    }
    e.set("version", 1);
    if w.iter().any(|x| x == "aggressive") {
        e.set("aggressive", true);
    }
    for x in ["ping"] {
        if w.iter().any(|y| y == x) {
            notes.add(loc, Some(&name), x, NoteKind::NotCarried, "Halon's tunnel monitoring ping: watch `espresso status` / the Prometheus metrics instead");
        }
    }
    notes.add(
        loc,
        Some(&name),
        "ike",
        NoteKind::NeedsIkev1,
        format!(
            "OpenBSD/Halon `ike` is isakmpd, IKEv1: {}",
            features::IKEV1_MISSING
        ),
    );
    if !features::IKEV1 {
        e.disable(format!("IKEv1 (isakmpd): {}", features::IKEV1_MISSING));
    }
    e
}

/// The `main`/`aggressive` (IKE) and `quick` (ESP) proposals and lifetimes.
fn ike_proposals(e: &mut Entry, w: &[String]) {
    for (kw, field) in [("main", "ike"), ("aggressive", "ike"), ("quick", "esp")] {
        let Some(i) = w.iter().position(|x| x == kw) else {
            continue;
        };
        let mut enc = None;
        let mut auth = None;
        let mut grp = None;
        let mut j = i + 1;
        while j + 1 < w.len() && matches!(w[j].as_str(), "auth" | "enc" | "group" | "lifetime") {
            match w[j].as_str() {
                "auth" => auth = Some(w[j + 1].clone()),
                "enc" => enc = Some(w[j + 1].clone()),
                "group" => grp = Some(w[j + 1].clone()),
                _ => e.set(
                    if field == "ike" {
                        "ike_lifetime"
                    } else {
                        "lifetime"
                    },
                    w[j + 1].clone(),
                ),
            }
            j += 2;
        }
        if enc.is_some() || auth.is_some() || grp.is_some() {
            let en = enc
                .as_deref()
                .map(|x| enc_name(x).unwrap_or("?"))
                .unwrap_or("aes128");
            let au = auth
                .as_deref()
                .map(|x| auth_name(x).unwrap_or("?"))
                .unwrap_or("sha256");
            let mut p = vec![en.to_string()];
            if !en.contains("gcm") {
                p.push(au.to_string());
            }
            if let Some(g) = grp {
                p.push(group_name(&g).unwrap_or("?").to_string());
            } else if field == "ike" {
                p.push("modp2048".into());
            }
            e.set(field, p.join("-"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halon_conventions() {
        // Halon SR: "kkkkkkkkkkkkkkkk" in a ZyWALL is 0x6b6b... ; SPI 256 = 0x100
        assert_eq!(
            &*key("kkkkkkkkkkkkkkkk", Vendor::Zywall).unwrap(),
            "0x6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b"
        );
        assert_eq!(
            &*key("6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b", Vendor::BareHex).unwrap(),
            "0x6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b"
        );
        assert_eq!(&*key("ascii:kk", Vendor::HalonSr).unwrap(), "0x6b6b");
        assert!(key("6b6b", Vendor::HalonSr).is_err());
        assert_eq!(spi("256", Vendor::Zywall).unwrap(), 0x100);
        assert_eq!(spi("0x100", Vendor::HalonSr).unwrap(), 256);
        assert_eq!(spi("100", Vendor::BareHex).unwrap(), 0x100);
        assert_eq!(csv_fields("a,\"b,c\",\"d\"\"e\""), vec!["a", "b,c", "d\"e"]);
    }
}
