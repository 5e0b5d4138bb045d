//! Parsers for single values (SPIs, keys, sizes, durations, prefixes). Each
//! returns a message saying what is wrong; the loader adds file, line and field.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use toml::Value;

/// Short type name of a TOML value, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// A value as it appears in the file, for messages (never used for keys).
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Integer(i) => i.to_string(),
        other => other.to_string(),
    }
}

/// A string.
pub fn string(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        o => Err(format!("expected a string, found {}", kind(o))),
    }
}

/// A boolean (`true`/`false`, or `"yes"`/`"no"`, `"on"`/`"off"`).
pub fn boolean(v: &Value) -> Result<bool, String> {
    match v {
        Value::Boolean(b) => Ok(*b),
        Value::String(s) if matches!(s.as_str(), "yes" | "true" | "on") => Ok(true),
        Value::String(s) if matches!(s.as_str(), "no" | "false" | "off") => Ok(false),
        o => Err(format!("expected true or false, found {}", kind(o))),
    }
}

/// An integer written as a TOML integer (`4097`, `0x1001`) or a string in
/// decimal or `0x` hex (`"4097"`, `"0x1001"`), as Halon and FreeS/WAN write SPIs.
pub fn integer(v: &Value) -> Result<u64, String> {
    match v {
        Value::Integer(i) if *i >= 0 => Ok(*i as u64),
        Value::Integer(i) => Err(format!("{i} is negative")),
        Value::String(s) => {
            let t = s.trim().replace('_', "");
            let r = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                u64::from_str_radix(h, 16)
            } else {
                t.parse::<u64>()
            };
            r.map_err(|_| format!("\"{s}\" is not a decimal or 0x-hex number"))
        }
        o => Err(format!("expected a number, found {}", kind(o))),
    }
}

/// An anti-replay window: 0 (off) or 64..=65536 packets.
pub fn replay_window(v: &Value) -> Result<u32, String> {
    use crate::sa::{MAX_REPLAY_WINDOW, MIN_REPLAY_WINDOW};
    let n = integer(v)?;
    if n == 0 || (u64::from(MIN_REPLAY_WINDOW)..=u64::from(MAX_REPLAY_WINDOW)).contains(&n) {
        Ok(n as u32)
    } else {
        Err(format!(
            "{n}: 0 (off) or {MIN_REPLAY_WINDOW}..={MAX_REPLAY_WINDOW} packets"
        ))
    }
}

/// A policy priority (lower wins): a 32-bit number.
pub fn priority(v: &Value) -> Result<u32, String> {
    let n = integer(v)?;
    u32::try_from(n).map_err(|_| format!("{n} does not fit in 32 bits"))
}

/// An SPI: 256..=2^32-1 (0 is invalid, 1..=255 reserved by IANA, RFC 4303 §2.1).
pub fn spi(v: &Value) -> Result<u32, String> {
    let n = integer(v)?;
    if n > u64::from(u32::MAX) {
        return Err(format!("{n:#x} does not fit in 32 bits"));
    }
    if n < 256 {
        return Err(format!(
            "{n} is reserved (SPIs 0..=255 are not used for SAs, RFC 4303 §2.1); \
             FreeS/WAN uses 0x100..0xfff for manual keys"
        ));
    }
    Ok(n as u32)
}

/// A key: `0x` followed by hex digits (`_` and spaces allowed between them, as
/// FreeS/WAN writes them), or `ascii:TEXT` for vendors that take ASCII keys
/// (ZyWALL): the text's bytes are the key, as Halon's conversion table shows.
pub fn key(v: &Value) -> Result<Vec<u8>, String> {
    let s = match v {
        Value::String(s) => s,
        o => {
            return Err(format!(
                "expected a string (\"0x...\" or \"ascii:...\"), found {}",
                kind(o)
            ))
        }
    };
    if let Some(text) = s.strip_prefix("ascii:") {
        if text.is_empty() {
            return Err("empty ascii: key".into());
        }
        if let Some(c) = text.chars().find(|c| !(' '..='~').contains(c)) {
            return Err(format!(
                "ascii: keys take printable ASCII only, found {:?}",
                c.escape_default().to_string()
            ));
        }
        return Ok(text.as_bytes().to_vec());
    }
    let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) else {
        let looks_hex = !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit());
        return Err(if looks_hex {
            "hex keys start with 0x (write \"0x\" before the digits, as Halon does for Sonicwall \
             and Juniper keys), or use \"ascii:...\" for an ASCII key"
                .into()
        } else {
            "a key is \"0x\" followed by hex digits, or \"ascii:\" followed by text".into()
        });
    };
    let digits: String = hex.chars().filter(|c| !matches!(c, '_' | ' ')).collect();
    if digits.is_empty() {
        return Err("no hex digits after 0x".into());
    }
    if let Some((i, c)) = digits.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "character {c:?} at position {} is not a hex digit",
            i + 2
        ));
    }
    if !digits.len().is_multiple_of(2) {
        return Err(format!(
            "odd number of hex digits ({}): a key is whole bytes",
            digits.len()
        ));
    }
    // Checked above: whole bytes of hex digits.
    ::hex::decode(&digits).map_err(|e| e.to_string())
}

/// A byte or packet count: an integer, or a string with a suffix
/// k/M/G/T (powers of 1000) or Ki/Mi/Gi/Ti (powers of 1024).
pub fn amount(v: &Value) -> Result<u64, String> {
    match v {
        Value::Integer(i) if *i >= 0 => Ok(*i as u64),
        Value::String(s) => {
            let t = s.trim().replace('_', "");
            let t = t.trim_end_matches(['B', 'b']);
            let (num, mult): (&str, u64) = [
                ("Ki", 1u64 << 10),
                ("Mi", 1 << 20),
                ("Gi", 1 << 30),
                ("Ti", 1 << 40),
                ("k", 1_000),
                ("K", 1_000),
                ("M", 1_000_000),
                ("G", 1_000_000_000),
                ("T", 1_000_000_000_000),
            ]
            .iter()
            .find_map(|(suf, m)| t.strip_suffix(suf).map(|n| (n, *m)))
            .unwrap_or((t, 1));
            let n: u64 = num
                .trim()
                .parse()
                .map_err(|_| format!("\"{s}\" is not a count (e.g. 1000000, \"500M\", \"4Gi\")"))?;
            n.checked_mul(mult)
                .ok_or_else(|| format!("\"{s}\" is too large"))
        }
        Value::Integer(i) => Err(format!("{i} is negative")),
        o => Err(format!("expected a count, found {}", kind(o))),
    }
}

/// A duration: integer seconds, or a string like "90s", "30m", "8h", "1d".
pub fn duration(v: &Value) -> Result<Duration, String> {
    match v {
        Value::Integer(i) if *i >= 0 => Ok(Duration::from_secs(*i as u64)),
        Value::String(s) => {
            let t = s.trim();
            let (num, mult) = match t.char_indices().last() {
                Some((i, 's')) => (&t[..i], 1),
                Some((i, 'm')) => (&t[..i], 60),
                Some((i, 'h')) => (&t[..i], 3600),
                Some((i, 'd')) => (&t[..i], 86400),
                _ => (t, 1),
            };
            let n: u64 = num.trim().parse().map_err(|_| {
                format!("\"{s}\" is not a duration (e.g. 3600, \"90s\", \"30m\", \"8h\")")
            })?;
            Ok(Duration::from_secs(n.saturating_mul(mult)))
        }
        Value::Integer(i) => Err(format!("{i} is negative")),
        o => Err(format!("expected a duration, found {}", kind(o))),
    }
}

/// A gateway address. FreeS/WAN's `%defaultroute` and `%any` need IKE.
pub fn address(v: &Value) -> Result<IpAddr, String> {
    let s = string(v)?;
    if s.starts_with('%') {
        return Err(format!(
            "{s} is for automatically keyed (IKE) connections: manual keys need the fixed address"
        ));
    }
    s.trim()
        .parse()
        .map_err(|_| format!("\"{s}\" is not an IPv4 or IPv6 address"))
}

/// One prefix; a bare address is a host prefix. Host bits must be zero.
pub fn prefix(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    let net: IpNet = if t.contains('/') {
        t.parse()
            .map_err(|_| format!("\"{s}\" is not a prefix like 10.1.0.0/24"))?
    } else {
        let a: IpAddr = t
            .parse()
            .map_err(|_| format!("\"{s}\" is not an address or prefix"))?;
        IpNet::from(a)
    };
    if net.trunc() != net {
        return Err(format!(
            "\"{s}\" has host bits set: did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// A list of prefixes: an array of strings, or one string with prefixes
/// separated by spaces or commas (as Halon's flow fields and FreeS/WAN's
/// `leftsubnet` take them).
pub fn prefixes(v: &Value) -> Result<Vec<IpNet>, String> {
    let items: Vec<String> = match v {
        Value::String(s) => s
            .split([' ', ','])
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect(),
        Value::Array(a) => a
            .iter()
            .map(|x| string(x).map_err(|e| format!("list item: {e}")))
            .collect::<Result<_, _>>()?,
        o => return Err(format!("expected a list of prefixes, found {}", kind(o))),
    };
    if items.is_empty() {
        return Err("empty list".into());
    }
    let mut out = Vec::new();
    for i in items {
        let p = prefix(&i)?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Strings: one string or an array of them.
pub fn strings(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a.iter().map(string).collect(),
        o => Err(format!(
            "expected a string or a list of strings, found {}",
            kind(o)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::String(x.into())
    }

    #[test]
    fn spis_in_decimal_and_hex() {
        assert_eq!(spi(&Value::Integer(256)), Ok(256));
        assert_eq!(spi(&s("0x100")), Ok(256));
        assert_eq!(spi(&s("256")), Ok(256));
        assert_eq!(spi(&s("0xFFFFFFFF")), Ok(u32::MAX));
        assert!(spi(&s("0x100000000")).unwrap_err().contains("32 bits"));
        assert!(spi(&Value::Integer(100)).unwrap_err().contains("reserved"));
        assert!(spi(&Value::Integer(-1)).unwrap_err().contains("negative"));
        assert!(spi(&s("0xzz")).unwrap_err().contains("not a decimal"));
        assert!(spi(&Value::Boolean(true))
            .unwrap_err()
            .contains("a boolean"));
    }

    #[test]
    fn keys_hex_and_ascii() {
        assert_eq!(key(&s("0x6b6b")), Ok(vec![0x6b, 0x6b]));
        assert_eq!(key(&s("0x0123_4567")), Ok(vec![1, 0x23, 0x45, 0x67]));
        // Halon's ZyWALL example: kkkkkkkkkkkkkkkk == 0x6b6b...6b (16 bytes).
        assert_eq!(key(&s("ascii:kkkkkkkkkkkkkkkk")), Ok(vec![0x6b; 16]));
        assert!(key(&s("6b6b")).unwrap_err().contains("start with 0x"));
        assert!(key(&s("0x6b6")).unwrap_err().contains("odd number"));
        assert!(key(&s("0x6g")).unwrap_err().contains("'g'"));
        assert!(key(&s("0x")).unwrap_err().contains("no hex digits"));
        assert!(key(&s("ascii:é")).unwrap_err().contains("printable"));
        assert!(key(&s("secret")).unwrap_err().contains("ascii:"));
    }

    #[test]
    fn amounts_and_durations() {
        assert_eq!(amount(&s("500M")), Ok(500_000_000));
        assert_eq!(amount(&s("4Gi")), Ok(4 << 30));
        assert_eq!(amount(&s("10GB")), Ok(10_000_000_000));
        assert_eq!(amount(&Value::Integer(7)), Ok(7));
        assert!(amount(&s("lots")).is_err());
        assert_eq!(duration(&s("8h")), Ok(Duration::from_secs(28800)));
        assert_eq!(duration(&s("30m")), Ok(Duration::from_secs(1800)));
        assert_eq!(
            duration(&Value::Integer(3600)),
            Ok(Duration::from_secs(3600))
        );
        assert!(duration(&s("soon")).is_err());
    }

    #[test]
    fn prefixes_and_addresses() {
        assert_eq!(
            prefixes(&s("10.1.0.0/24 10.2.0.0/24,10.1.0.0/24"))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(prefix("10.1.0.5").unwrap().to_string(), "10.1.0.5/32");
        assert!(prefix("10.1.0.5/24").unwrap_err().contains("10.1.0.0/24"));
        assert!(address(&s("%defaultroute")).unwrap_err().contains("IKE"));
        assert!(address(&s("10.0.0.300")).is_err());
        assert!(prefixes(&Value::Array(vec![])).is_err());
    }
}
