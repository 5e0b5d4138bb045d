//! The mbox command language (seed 003, VyOS-like):
//!
//! ```text
//! ipsec ike-policy 10 authentication psk policy 3DES MD5 2 keylife 3600 version 1
//! ipsec esp-policy 10 policy AES SHA 2 keylife 3600
//! ipsec peer 203.0.113.2 local ip 198.51.100.1 nated local-net 10.1.0.0/24,10.3.0.0/24 \
//!     remote-id 10.0.0.2 remote-net 10.2.0.0/24 policy ike 10 esp 10 psk Letmein99
//! ipsec start | ipsec stop
//! no ipsec peer ADDR | no ipsec ike-policy N | no ipsec esp-policy N
//! ```
//!
//! [`State`] holds the policies and peers; [`State::entries`] turns them
//! into `[[connection]]` entries of espresso's TOML (one per peer). The
//! state is kept as the normalised commands themselves ([`State::commands`],
//! a 0600 file: it holds the pre-shared keys), like a router's running
//! configuration, so `espresso shell` finds it again after a restart.

use std::collections::BTreeMap;

/// Why an `rsa-sig` IKE policy is not carried over.
const RSA_SIG: &str = "rsa-sig: the mbox commands carry no certificate or private key: set local_cert, local_key and cacerts (or local_rsasigkey/remote_rsasigkey) by hand";

use toml::Value;
use zeroize::Zeroizing;

use super::algs;
use super::features;
use super::notes::{Loc, NoteKind, Notes};
use super::out::{Entry, SecretFile, Table};

/// `ipsec ike-policy N ...`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IkePolicy {
    /// psk or rsa-sig.
    pub authentication: String,
    /// ENC HASH DH as typed.
    pub policy: Vec<String>,
    /// Seconds.
    pub keylife: Option<u64>,
    /// 1 or 2.
    pub version: Option<u8>,
}

/// `ipsec esp-policy N ...`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EspPolicy {
    /// ENC HASH [DH] as typed.
    pub policy: Vec<String>,
    /// Seconds.
    pub keylife: Option<u64>,
}

/// `ipsec peer ADDR ...`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    /// Our address for this peer.
    pub local_ip: Option<String>,
    /// We are behind a NAT.
    pub nated: bool,
    /// Our networks.
    pub local_net: Vec<String>,
    /// The peer's identity (its private address behind a NAT).
    pub remote_id: Option<String>,
    /// The peer's networks.
    pub remote_net: Vec<String>,
    /// IKE policy number.
    pub ike: Option<u32>,
    /// ESP policy number.
    pub esp: Option<u32>,
    /// Pre-shared key.
    pub psk: Option<Zeroizing<String>>,
}

/// Everything configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// IKE policies.
    pub ike: BTreeMap<u32, IkePolicy>,
    /// ESP policies.
    pub esp: BTreeMap<u32, EspPolicy>,
    /// Peers by address.
    pub peers: BTreeMap<String, Peer>,
}

/// What a command asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The configuration changed.
    Changed,
    /// `ipsec start`.
    Start,
    /// `ipsec stop`.
    Stop,
    /// `show ipsec status|peer|log|config`.
    Show(String),
    /// Nothing (comment, blank).
    Nothing,
}

fn num<T: std::str::FromStr>(w: Option<&&str>, what: &str) -> Result<T, String> {
    let s = w.ok_or_else(|| format!("{what}: a value is missing"))?;
    s.parse()
        .map_err(|_| format!("{what}: \"{s}\" is not a number"))
}

fn list(w: Option<&&str>, what: &str) -> Result<Vec<String>, String> {
    let s = w.ok_or_else(|| format!("{what}: a value is missing"))?;
    Ok(s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect())
}

impl State {
    /// Applies one command line.
    pub fn apply(&mut self, line: &str) -> Result<Action, String> {
        let line = line.trim().trim_matches('!').trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(Action::Nothing);
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["show", "ipsec", what] => Ok(Action::Show(what.to_string())),
            ["show", "running-config"] => Ok(Action::Show("config".into())),
            ["ipsec", "start"] => Ok(Action::Start),
            ["ipsec", "stop"] => Ok(Action::Stop),
            ["no", "ipsec", "peer", a] => self.peers.remove(*a).map(|_| Action::Changed).ok_or(format!("no peer {a}")),
            ["no", "ipsec", "ike-policy", n] => {
                let n: u32 = num(Some(n), "ike-policy")?;
                self.ike.remove(&n).map(|_| Action::Changed).ok_or(format!("no ike-policy {n}"))
            }
            ["no", "ipsec", "esp-policy", n] => {
                let n: u32 = num(Some(n), "esp-policy")?;
                self.esp.remove(&n).map(|_| Action::Changed).ok_or(format!("no esp-policy {n}"))
            }
            ["ipsec", "ike-policy", n, rest @ ..] => self.ike_policy_command(n, rest),
            ["ipsec", "esp-policy", n, rest @ ..] => self.esp_policy_command(n, rest),
            ["ipsec", "peer", addr, rest @ ..] => self.peer_command(addr, rest),
            _ => Err(format!("\"{line}\" not understood; try: ipsec ike-policy | esp-policy | peer | start | stop, no ipsec ..., show ipsec status|peer|log|config")),
        }
    }

    /// `ipsec ike-policy N authentication A policy ENC HASH DH keylife S version V`.
    fn ike_policy_command(&mut self, n: &str, rest: &[&str]) -> Result<Action, String> {
        let n: u32 = num(Some(&n), "ike-policy")?;
        let mut p = self.ike.get(&n).cloned().unwrap_or_default();
        let mut i = 0;
        while i < rest.len() {
            match rest[i] {
                "authentication" => {
                    let a = rest
                        .get(i + 1)
                        .ok_or("authentication: psk or rsa-sig")?
                        .to_ascii_lowercase();
                    if a != "psk" && a != "rsa-sig" {
                        return Err(format!("authentication {a}: psk or rsa-sig"));
                    }
                    p.authentication = a;
                    i += 2;
                }
                "policy" => {
                    let v: Vec<String> = rest[i + 1..]
                        .iter()
                        .take_while(|x| !matches!(**x, "keylife" | "version" | "authentication"))
                        .map(|x| x.to_string())
                        .collect();
                    if v.len() != 3 {
                        return Err("policy ENC HASH DH (e.g. policy AES SHA 14)".into());
                    }
                    i += 1 + v.len();
                    p.policy = v;
                }
                "keylife" => {
                    p.keylife = Some(num(rest.get(i + 1), "keylife")?);
                    i += 2;
                }
                "version" => {
                    let v: u8 = num(rest.get(i + 1), "version")?;
                    if v != 1 && v != 2 {
                        return Err("version 1 or 2".into());
                    }
                    p.version = Some(v);
                    i += 2;
                }
                o => {
                    return Err(format!(
                    "ike-policy: \"{o}\" not understood (authentication, policy, keylife, version)"
                ))
                }
            }
        }
        self.ike.insert(n, p);
        Ok(Action::Changed)
    }

    /// `ipsec esp-policy N policy ENC HASH [DH] keylife S`.
    fn esp_policy_command(&mut self, n: &str, rest: &[&str]) -> Result<Action, String> {
        let n: u32 = num(Some(&n), "esp-policy")?;
        let mut p = self.esp.get(&n).cloned().unwrap_or_default();
        let mut i = 0;
        while i < rest.len() {
            match rest[i] {
                "policy" => {
                    let v: Vec<String> = rest[i + 1..]
                        .iter()
                        .take_while(|x| **x != "keylife")
                        .map(|x| x.to_string())
                        .collect();
                    if !(2..=3).contains(&v.len()) {
                        return Err("policy ENC HASH [DH] (e.g. policy AES SHA 14)".into());
                    }
                    i += 1 + v.len();
                    p.policy = v;
                }
                "keylife" => {
                    p.keylife = Some(num(rest.get(i + 1), "keylife")?);
                    i += 2;
                }
                o => {
                    return Err(format!(
                        "esp-policy: \"{o}\" not understood (policy, keylife)"
                    ))
                }
            }
        }
        self.esp.insert(n, p);
        Ok(Action::Changed)
    }

    /// `ipsec peer ADDR local ip A nated local-net N remote-id I remote-net N policy ike N esp N psk K`.
    fn peer_command(&mut self, addr: &str, rest: &[&str]) -> Result<Action, String> {
        if addr.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("peer {addr}: an IP address"));
        }
        let mut p = self.peers.get(addr).cloned().unwrap_or_default();
        let mut i = 0;
        while i < rest.len() {
            match (rest[i], rest.get(i + 1).copied()) {
            ("local", Some("ip")) => {
                let a = rest.get(i + 2).ok_or("local ip ADDR")?;
                a.parse::<std::net::IpAddr>().map_err(|_| format!("local ip {a}: an IP address"))?;
                p.local_ip = Some(a.to_string());
                i += 3;
            }
            ("nated", _) => {
                p.nated = true;
                i += 1;
            }
            ("local-net", _) => {
                p.local_net = list(rest.get(i + 1), "local-net")?;
                i += 2;
            }
            ("remote-net", _) => {
                p.remote_net = list(rest.get(i + 1), "remote-net")?;
                i += 2;
            }
            ("remote-id", v) => {
                p.remote_id = Some(v.ok_or("remote-id ID")?.to_string());
                i += 2;
            }
            ("policy", _) => {
                let mut j = i + 1;
                while j + 1 < rest.len() && matches!(rest[j], "ike" | "esp") {
                    let n: u32 = num(rest.get(j + 1), rest[j])?;
                    if rest[j] == "ike" {
                        p.ike = Some(n);
                    } else {
                        p.esp = Some(n);
                    }
                    j += 2;
                }
                if j == i + 1 {
                    return Err("policy ike N esp N".into());
                }
                i = j;
            }
            ("psk", Some(k)) => {
                p.psk = Some(Zeroizing::new(k.to_string()));
                i += 2;
            }
            (o, _) => return Err(format!("peer: \"{o}\" not understood (local ip, nated, local-net, remote-id, remote-net, policy ike N esp N, psk)")),
        }
        }
        self.peers.insert(addr.to_string(), p);
        Ok(Action::Changed)
    }

    /// The state as commands (the running configuration), PSKs included.
    pub fn commands(&self) -> Zeroizing<String> {
        let mut o = Zeroizing::new(String::new());
        for (n, p) in &self.ike {
            let mut l = format!("ipsec ike-policy {n}");
            if !p.authentication.is_empty() {
                l += &format!(" authentication {}", p.authentication);
            }
            if !p.policy.is_empty() {
                l += &format!(" policy {}", p.policy.join(" "));
            }
            if let Some(k) = p.keylife {
                l += &format!(" keylife {k}");
            }
            if let Some(v) = p.version {
                l += &format!(" version {v}");
            }
            o.push_str(&l);
            o.push('\n');
        }
        for (n, p) in &self.esp {
            let mut l = format!("ipsec esp-policy {n}");
            if !p.policy.is_empty() {
                l += &format!(" policy {}", p.policy.join(" "));
            }
            if let Some(k) = p.keylife {
                l += &format!(" keylife {k}");
            }
            o.push_str(&l);
            o.push('\n');
        }
        for (a, p) in &self.peers {
            let mut l = format!("ipsec peer {a}");
            if let Some(x) = &p.local_ip {
                l += &format!(" local ip {x}");
            }
            if p.nated {
                l += " nated";
            }
            if !p.local_net.is_empty() {
                l += &format!(" local-net {}", p.local_net.join(","));
            }
            if let Some(x) = &p.remote_id {
                l += &format!(" remote-id {x}");
            }
            if !p.remote_net.is_empty() {
                l += &format!(" remote-net {}", p.remote_net.join(","));
            }
            if p.ike.is_some() || p.esp.is_some() {
                l += " policy";
                if let Some(n) = p.ike {
                    l += &format!(" ike {n}");
                }
                if let Some(n) = p.esp {
                    l += &format!(" esp {n}");
                }
            }
            o.push_str(&l);
            if let Some(k) = &p.psk {
                o.push_str(" psk ");
                o.push_str(k);
            }
            o.push('\n');
        }
        o
    }

    /// The connection name of a peer.
    pub fn peer_name(addr: &str) -> String {
        format!("peer-{}", addr.replace(':', "-"))
    }

    /// One `[[connection]]` per peer. `secrets_prefix`: the path from the
    /// TOML file to the output directory (`../` for conf.d/mbox.toml).
    pub fn entries(&self, file: &str, secrets_prefix: &str, notes: &mut Notes) -> Vec<Entry> {
        let mut out = Vec::new();
        for (addr, p) in &self.peers {
            out.push(self.peer_entry(addr, p, file, secrets_prefix, notes));
        }
        out
    }

    /// One peer's `[[connection]]`: addresses, networks, key, policies.
    fn peer_entry(
        &self,
        addr: &str,
        p: &Peer,
        file: &str,
        secrets_prefix: &str,
        notes: &mut Notes,
    ) -> Entry {
        let name = Self::peer_name(addr);
        let loc = Loc {
            file: file.into(),
            line: 0,
        };
        let mut e = Entry::new(Table::Connection, &name, loc.clone());
        e.origin.push(format!("mbox: ipsec peer {addr}"));
        e.set(
            "local",
            p.local_ip.clone().unwrap_or_else(|| "%defaultroute".into()),
        );
        e.set("remote", addr);
        if let Some(id) = &p.remote_id {
            e.set("remote_id", id.clone());
        }
        for (k, v) in [
            ("local_subnets", &p.local_net),
            ("remote_subnets", &p.remote_net),
        ] {
            match v.len() {
                0 => {}
                1 => e.set(k, v[0].clone()),
                _ => e.set(
                    k,
                    Value::Array(v.iter().cloned().map(Value::String).collect()),
                ),
            }
        }
        match &p.psk {
            Some(k) => {
                let path = format!("secrets/{name}.psk");
                e.set("secrets", format!("{secrets_prefix}{path}"));
                e.secret = Some(SecretFile {
                    path,
                    fields: vec![("psk".into(), k.clone())],
                    raw: None,
                });
            }
            None => e.disable("no psk given (ipsec peer ADDR psk SECRET)"),
        }
        let ike = p.ike.and_then(|n| self.ike.get(&n).map(|x| (n, x)));
        match (p.ike, ike) {
            (None, _) => e.disable("no IKE policy (policy ike N esp N)"),
            (Some(n), None) => e.disable(format!("ike-policy {n} is not defined")),
            (Some(n), Some((_, ip))) => ike_policy(&mut e, n, ip, &loc, &name, notes),
        }
        match (p.esp, p.esp.and_then(|n| self.esp.get(&n))) {
            (None, _) => e.disable("no ESP policy (policy ike N esp N)"),
            (Some(n), None) => e.disable(format!("esp-policy {n} is not defined")),
            (Some(n), Some(ep)) => esp_policy(&mut e, n, ep, &loc, &name, notes),
        }
        if p.nated {
            e.set("encap", true);
        }
        e.set("start", "start");
        e
    }
}

/// The peer's IKE policy `n`: authentication, version, proposal, lifetime.
fn ike_policy(e: &mut Entry, n: u32, ip: &IkePolicy, loc: &Loc, name: &str, notes: &mut Notes) {
    if ip.authentication == "rsa-sig" {
        notes.add(
            loc,
            Some(name),
            format!("ike-policy {n} authentication rsa-sig"),
            NoteKind::NotCarried,
            RSA_SIG,
        );
        e.disable(RSA_SIG);
    }
    let v1 = ip.version == Some(1);
    if v1 {
        e.set("version", 1);
        if !features::IKEV1 {
            notes.add(
                loc,
                Some(name),
                format!("ike-policy {n} version 1"),
                NoteKind::NeedsIkev1,
                features::IKEV1_MISSING,
            );
            e.disable(format!(
                "ike-policy {n} version 1: {}",
                features::IKEV1_MISSING
            ));
        }
    } else if features::IKEV1 {
        e.set("version", 2);
    }
    let t = if v1 && features::IKEV1 {
        algs::translate_ikev1(&seed_words(&ip.policy), &["modp2048"])
    } else {
        algs::translate(&seed_words(&ip.policy), true, &["modp2048"], None)
    };
    if t.legacy {
        e.set("allow_legacy", true);
        notes.add(
            loc,
            Some(name),
            format!("ike-policy {n}"),
            NoteKind::Changed,
            "allow_legacy = true: the original's IKEv1 proposal uses 3DES, MD5 or MODP-1024/1536 (deprecated, RFC 8247)",
        );
    }
    match t.proposals.first() {
        Some(s) => e.set("ike", s.clone()),
        None => {
            let why = format!(
                "ike-policy {n} ({}): {}",
                ip.policy.join(" "),
                t.dropped.first().map(|d| d.1.clone()).unwrap_or_default()
            );
            notes.add(
                loc,
                Some(name),
                format!("ike-policy {n}"),
                NoteKind::NotCarried,
                why.clone(),
            );
            e.disable(why);
        }
    }
    if let Some(k) = ip.keylife {
        e.set("ike_lifetime", k as i64);
    }
}

/// The peer's ESP policy `n`: proposal, PFS, lifetime.
fn esp_policy(e: &mut Entry, n: u32, ep: &EspPolicy, loc: &Loc, name: &str, notes: &mut Notes) {
    let t = algs::translate(&seed_words(&ep.policy), false, &[], None);
    match t.proposals.first() {
        Some(s) => {
            e.set("esp", s.clone());
            if t.legacy {
                e.set("allow_legacy", true);
                notes.add(
                    loc,
                    Some(name),
                    format!("esp-policy {n}"),
                    NoteKind::Changed,
                    "allow_legacy = true: 3DES or HMAC-MD5 (deprecated, RFC 8221)",
                );
            }
            if ep.policy.len() < 3 {
                e.set("pfs", false);
            }
        }
        None => {
            let why = format!(
                "esp-policy {n} ({}): {}",
                ep.policy.join(" "),
                t.dropped.first().map(|d| d.1.clone()).unwrap_or_default()
            );
            notes.add(
                loc,
                Some(name),
                format!("esp-policy {n}"),
                NoteKind::NotCarried,
                why.clone(),
            );
            e.disable(why);
        }
    }
    if let Some(k) = ep.keylife {
        e.set("lifetime", k as i64);
    }
}

/// `AES-256 SHA-256 14` as one proposal string (`aes256-sha256-dh14`).
fn seed_words(policy: &[String]) -> String {
    policy
        .iter()
        .map(|w| {
            let l = w.to_ascii_lowercase().replace(['-', '_'], "");
            if l.chars().all(|c| c.is_ascii_digit()) {
                format!("dh{l}")
            } else if l == "md5128" {
                "md5".into()
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_003_commands() {
        let mut s = State::default();
        for l in [
            "!ipsec ike-policy 10 authentication psk policy 3DES MD5 2 keylife 3600 version 1!",
            "ipsec ike-policy 5 authentication psk policy AES SHA 2 keylife 28800 version 1",
            "ipsec esp-policy 10 policy AES SHA 2 keylife 3600",
            "ipsec peer 203.0.113.2 local ip 198.51.100.1 nated local-net 10.1.0.0/24 remote-id 10.0.0.2 remote-net 10.2.0.0/24,10.3.0.0/24 policy ike 10 esp 10 psk Letmein99",
        ] {
            assert_eq!(s.apply(l).unwrap(), Action::Changed, "{l}");
        }
        assert_eq!(s.apply("ipsec start").unwrap(), Action::Start);
        assert_eq!(
            s.apply("show ipsec peer").unwrap(),
            Action::Show("peer".into())
        );
        assert!(s.apply("ipsec peer nothost psk x").is_err());
        let text = s.commands();
        let mut again = State::default();
        for l in text.lines() {
            again.apply(l).unwrap();
        }
        assert_eq!(again, s);
        let mut n = Notes::default();
        let e = s.entries("mbox", "../", &mut n);
        assert_eq!(e.len(), 1);
        // IKEv1 with 3DES-MD5-MODP1024 is written live, with allow_legacy.
        assert_eq!(e[0].disabled, None);
        assert_eq!(e[0].get("version"), Some(&Value::Integer(1)));
        assert_eq!(e[0].get("allow_legacy"), Some(&Value::Boolean(true)));
        assert_eq!(
            e[0].get("ike"),
            Some(&Value::String("3des-md5-modp1024".into()))
        );
        assert_eq!(e[0].get("encap"), Some(&Value::Boolean(true)));
        assert_eq!(
            e[0].get("esp"),
            Some(&Value::String("aes128-sha1-modp1024".into()))
        );
    }
}
