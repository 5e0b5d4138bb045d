//! Values as the old daemons wrote them, in espresso's form: names,
//! durations, yes/no, subnets, manual keys and SPIs, gateway addresses.

use std::net::IpAddr;

use ipnet::IpNet;
use toml::Value;
use zeroize::Zeroizing;

use crate::import::secrets;

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
pub(super) fn duration(v: &str) -> Option<Value> {
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

pub(super) fn yes(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "on" | "1" => Some(true),
        "no" | "n" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Parses a subnet as the old daemons wrote them (`a.b.c.d/nn`,
/// `a.b.c.d/255.255.255.0`, `%default`, a bare address).
pub(super) fn subnet(s: &str) -> Result<(IpNet, bool), String> {
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

pub(super) fn subnets(v: &str) -> Vec<String> {
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
pub(super) fn manual_key(v: &str) -> Option<Zeroizing<String>> {
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
    Some(Zeroizing::new(secrets::to_hex(&b)))
}

pub(super) fn spi(v: &str) -> Option<u32> {
    let v = v.trim();
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

pub(super) fn is_local(v: &str, addrs: &[IpAddr]) -> bool {
    v.parse::<IpAddr>().is_ok_and(|a| addrs.contains(&a))
}

pub(super) fn addr_value(v: &str, local: bool) -> Result<String, String> {
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

/// `left...` <-> `right...` (alsoflip=, and notes on the swapped side).
pub(super) fn flip(k: &str) -> String {
    if let Some(s) = k.strip_prefix("left") {
        format!("right{s}")
    } else if let Some(s) = k.strip_prefix("right") {
        format!("left{s}")
    } else {
        k.to_string()
    }
}
