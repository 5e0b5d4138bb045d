//! Reading `ipsec.secrets` (FreeS/WAN, Openswan, Libreswan, strongSwan):
//! entries `SELECTORS : TYPE SECRET`, continued on indented lines, secrets
//! quoted (`"..."`, `'...'`), hex (`0x...`) or base64 (`0s...`), `: RSA { ... }`
//! blocks and key files, `include` with globs, `%any` selectors. Secrets are
//! wiped when dropped and never shown.

use std::path::Path;

use zeroize::Zeroizing;

use super::ipsecconf::{expand, resolve};
use super::notes::{Loc, NoteKind, Notes};

/// How a secret was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `"text"` or `'text'` or a bare word.
    Text,
    /// `0x` hex.
    Hex,
    /// `0s` base64.
    Base64,
    /// Not a byte string (an RSA block, a key file).
    Other,
}

/// One entry.
#[derive(Clone)]
pub struct Secret {
    /// Where it starts.
    pub loc: Loc,
    /// Selectors (ids or addresses; `%any` matches anything).
    pub selectors: Vec<String>,
    /// PSK, RSA, ECDSA, XAUTH, EAP, ... (upper case).
    pub kind: String,
    /// The secret's bytes (empty for `Other`).
    pub bytes: Zeroizing<Vec<u8>>,
    /// How it was written.
    pub form: Form,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Secret({} {:?} {}: <hidden>)",
            self.loc, self.selectors, self.kind
        )
    }
}

impl Secret {
    /// The secret as text, if it is valid UTF-8 (espresso's `psk` is text).
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }
}

/// Base64 (RFC 4648, `=` padding optional, whitespace ignored).
pub fn base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Hex digits (`_` and whitespace between them ignored).
pub fn hex(s: &str) -> Option<Vec<u8>> {
    let d: Vec<u8> = s
        .bytes()
        .filter(|c| *c != b'_' && !c.is_ascii_whitespace())
        .collect();
    hex::decode(d).ok()
}

/// Bytes as `0x` hex (the form espresso's key fields take).
pub fn to_hex(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

fn is_wild(s: &str) -> bool {
    matches!(s, "%any" | "%any6" | "%any4" | "0.0.0.0" | "::" | "0::0")
}

/// Reads `path` (shown as `shown`) and what it includes.
pub fn read(
    path: &Path,
    shown: &str,
    root: Option<&Path>,
    notes: &mut Notes,
) -> Result<Vec<Secret>, String> {
    let mut out = Vec::new();
    read_file(path, shown, root, 0, &mut out, notes)?;
    Ok(out)
}

fn read_file(
    path: &Path,
    shown: &str,
    root: Option<&Path>,
    depth: usize,
    out: &mut Vec<Secret>,
    notes: &mut Notes,
) -> Result<(), String> {
    if depth > 10 {
        return Err(format!("{shown}: includes nested deeper than 10 levels"));
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| format!("{shown}: cannot read: {e}"))?,
    );
    for (line, e) in entries(&text) {
        let e = Zeroizing::new(e);
        let loc = Loc {
            file: shown.to_string(),
            line,
        };
        if let Some(pat) = e.strip_prefix("include") {
            if pat.starts_with(char::is_whitespace) {
                include(pat.trim(), &loc, path, root, depth, out, notes)?;
                continue;
            }
        }
        if let Some(s) = entry(&e, loc, notes) {
            out.push(s);
        }
    }
    Ok(())
}

/// Groups the lines into entries: a line at column 0 starts one, indented
/// lines continue it.
fn entries(text: &str) -> Vec<(usize, String)> {
    let mut entries: Vec<(usize, String)> = Vec::new();
    let mut in_block = false;
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if !in_block && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        let cont = raw.starts_with([' ', '\t']) || in_block;
        match entries.last_mut() {
            Some((_, e)) if cont => {
                e.push('\n');
                e.push_str(t);
            }
            _ => entries.push((i + 1, t.to_string())),
        }
        let e = &entries.last().map(|x| x.1.clone()).unwrap_or_default();
        in_block = e.contains('{') && !e.contains('}');
    }
    entries
}

/// `include PATTERN`: every file it matches, read in turn.
fn include(
    pat: &str,
    loc: &Loc,
    path: &Path,
    root: Option<&Path>,
    depth: usize,
    out: &mut Vec<Secret>,
    notes: &mut Notes,
) -> Result<(), String> {
    let files =
        expand(&resolve(pat, path, root)).map_err(|x| format!("{loc}: include {pat}: {x}"))?;
    if files.is_empty() {
        notes.add(
            loc,
            None,
            format!("include {pat}"),
            NoteKind::NoEffect,
            "matches no file (the original skips it too)",
        );
    }
    for f in files {
        let s = match root.and_then(|r| f.strip_prefix(r).ok()) {
            Some(rel) => format!("/{}", rel.display()),
            None => f.display().to_string(),
        };
        read_file(&f, &s, root, depth + 1, out, notes)?;
    }
    Ok(())
}

/// One `SELECTORS : TYPE SECRET` entry (`None`, noted, when not understood).
fn entry(e: &str, loc: Loc, notes: &mut Notes) -> Option<Secret> {
    // The separator: a ':' at the start or with whitespace on both sides
    // (IPv6 selectors contain colons without spaces).
    let b = e.as_bytes();
    let sep = (0..b.len()).find(|&i| {
        b[i] == b':'
            && (i == 0 || b[i - 1].is_ascii_whitespace())
            && b.get(i + 1).is_none_or(|c| c.is_ascii_whitespace())
    });
    let Some(sep) = sep else {
        notes.add(
            &loc,
            None,
            "secrets entry",
            NoteKind::NotCarried,
            "no ` : ` separator between selectors and secret: not understood",
        );
        return None;
    };
    let selectors: Vec<String> = e[..sep].split_whitespace().map(str::to_string).collect();
    let rest = e[sep + 1..].trim_start();
    let (kind, secret) = match rest.split_once(char::is_whitespace) {
        Some((k, s)) => (k.to_ascii_uppercase(), s.trim()),
        None => (rest.to_ascii_uppercase(), ""),
    };
    let (bytes, form) = secret_value(&kind, secret, &loc, notes)?;
    Some(Secret {
        loc,
        selectors,
        kind,
        bytes: Zeroizing::new(bytes),
        form,
    })
}

/// The secret's bytes and how they were written (`None`, noted, when not
/// understood).
fn secret_value(kind: &str, secret: &str, loc: &Loc, notes: &mut Notes) -> Option<(Vec<u8>, Form)> {
    let (bytes, form) =
        if kind == "RSA" || kind == "ECDSA" || kind == "P12" || kind == "PIN" || kind == "BLISS" {
            // A key file name (and passphrase), or FreeS/WAN's `{ ... }` block.
            (secret.as_bytes().to_vec(), Form::Other)
        } else if let Some(q) = secret
            .strip_prefix('"')
            .and_then(|s| s.rfind('"').map(|e| &s[..e]))
        {
            (q.as_bytes().to_vec(), Form::Text)
        } else if let Some(q) = secret
            .strip_prefix('\'')
            .and_then(|s| s.rfind('\'').map(|e| &s[..e]))
        {
            (q.as_bytes().to_vec(), Form::Text)
        } else if let Some(h) = secret
            .strip_prefix("0x")
            .or_else(|| secret.strip_prefix("0X"))
        {
            match hex(h) {
                Some(v) => (v, Form::Hex),
                None => {
                    notes.add(
                        loc,
                        None,
                        format!("{kind} secret"),
                        NoteKind::NotCarried,
                        "0x secret with an odd number of or non-hex digits",
                    );
                    return None;
                }
            }
        } else if let Some(h) = secret.strip_prefix("0s") {
            match base64(h) {
                Some(v) => (v, Form::Base64),
                None => {
                    notes.add(
                        loc,
                        None,
                        format!("{kind} secret"),
                        NoteKind::NotCarried,
                        "0s secret is not valid base64",
                    );
                    return None;
                }
            }
        } else if !secret.is_empty() && !secret.contains(char::is_whitespace) {
            (secret.as_bytes().to_vec(), Form::Text)
        } else {
            notes.add(
                loc,
                None,
                format!("{kind} secret"),
                NoteKind::NotCarried,
                "secret not understood (quote it, or write 0x hex or 0s base64)",
            );
            return None;
        };
    Some((bytes, form))
}

/// The best pre-shared key for a connection between `local` and `remote`
/// (each: the identities and addresses that name that side), as Openswan
/// and strongSwan choose it: exact selectors beat `%any`, an entry without
/// selectors matches anything, the first of equals wins.
pub fn find<'a>(
    secrets: &'a [Secret],
    kind: &str,
    local: &[String],
    remote: &[String],
) -> Option<&'a Secret> {
    let mut best: Option<(u32, &Secret)> = None;
    for s in secrets.iter().filter(|s| s.kind == kind) {
        let rx = s.selectors.iter().any(|x| remote.contains(x));
        let lx = s.selectors.iter().any(|x| local.contains(x));
        let wild = s.selectors.iter().any(|x| is_wild(x));
        // Every selector that is not a wildcard must name one of the ends.
        let named = s
            .selectors
            .iter()
            .all(|x| is_wild(x) || remote.contains(x) || local.contains(x));
        let score = if s.selectors.is_empty() {
            1
        } else if !named {
            0
        } else if s.selectors.len() == 1 {
            if rx {
                6
            } else if lx {
                5
            } else {
                2
            }
        } else if rx || wild {
            2 + if rx { 4 } else { 0 } + if lx { 2 } else { 0 } + u32::from(!wild)
        } else {
            0
        };
        if score > 0 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, s));
        }
    }
    best.map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_hex() {
        assert_eq!(base64("aGVsbG8gd29ybGQ=").unwrap(), b"hello world");
        assert_eq!(base64("aGk").unwrap(), b"hi");
        assert!(base64("a*b").is_none());
        assert_eq!(hex("6b6b_6b").unwrap(), vec![0x6b, 0x6b, 0x6b]);
        assert!(hex("abc").is_none());
    }

    #[test]
    fn parse_and_find() {
        let d = std::env::temp_dir().join(format!("espresso-secrets-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("ipsec.secrets");
        std::fs::write(
            &f,
            "# comment\n: PSK \"default-secret\"\n192.0.2.1 198.51.100.2 : PSK \"site-secret\"\n\
             192.0.2.1 %any : PSK 0x6b6b6b6b6b6b6b6b\n2001:db8::1 2001:db8::2 : psk 'v6 secret'\n\
             : RSA {\n\tModulus: 0x00\n\tPrivateExponent: 0x01\n\t}\n@west @east : PSK 0sc2VjcmV0LWtleQ==\n",
        )
        .unwrap();
        let mut n = Notes::default();
        let s = read(&f, "ipsec.secrets", None, &mut n).unwrap();
        assert_eq!(s.len(), 6, "{s:?}");
        let l = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let p = find(&s, "PSK", &l(&["192.0.2.1"]), &l(&["198.51.100.2"])).unwrap();
        assert_eq!(p.text(), Some("site-secret"));
        let p = find(&s, "PSK", &l(&["192.0.2.1"]), &l(&["203.0.113.9"])).unwrap();
        assert_eq!(&p.bytes[..], b"kkkkkkkk");
        let p = find(&s, "PSK", &l(&["10.9.9.9"]), &l(&["10.8.8.8"])).unwrap();
        assert_eq!(p.text(), Some("default-secret"));
        let p = find(&s, "PSK", &l(&["2001:db8::1"]), &l(&["2001:db8::2"])).unwrap();
        assert_eq!(p.text(), Some("v6 secret"));
        let p = find(&s, "PSK", &l(&["@west", "192.0.2.1"]), &l(&["@east"])).unwrap();
        assert_eq!(p.text(), Some("secret-key"));
        assert_eq!(s[4].kind, "RSA");
        assert_eq!(s[4].form, Form::Other);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
