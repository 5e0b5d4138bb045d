//! Reading `ipsec.conf` as FreeS/WAN, Openswan, Libreswan and strongSwan
//! (stroke) write it: `version`, `config setup`, `conn NAME` (and
//! `%default`), `ca NAME`, top-level `include` with globs, indented
//! `key=value` lines, quoted values and `{a b}` lists. Every parameter keeps
//! its file and line.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::notes::{Loc, NoteKind, Notes};

/// One `key=value` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// Key, lower case.
    pub key: String,
    /// Value without quotes.
    pub value: String,
    /// Where.
    pub loc: Loc,
}

/// What a section is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `config setup`.
    Setup,
    /// `conn NAME` (`%default` included).
    Conn(String),
    /// `ca NAME` (strongSwan).
    Ca(String),
}

/// A section with its parameters in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Kind and name.
    pub kind: Kind,
    /// Where its header is.
    pub loc: Loc,
    /// Parameters.
    pub params: Vec<Param>,
}

/// Everything read from an ipsec.conf and what it includes.
#[derive(Debug, Default)]
pub struct Conf {
    /// Sections in reading order.
    pub sections: Vec<Section>,
    /// `version` line, if any.
    pub version: Option<String>,
    /// Files read.
    pub files: Vec<String>,
}

/// Resolves a path written in a file: absolute paths under `root` (the
/// copy of the old machine's `/`), relative ones next to the file.
pub fn resolve(written: &str, including: &Path, root: Option<&Path>) -> PathBuf {
    let p = Path::new(written);
    if p.is_absolute() {
        match root {
            Some(r) => r.join(p.strip_prefix("/").unwrap_or(p)),
            None => p.to_path_buf(),
        }
    } else {
        including.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// Expands an include pattern (sorted; a pattern without glob characters
/// is one path).
pub fn expand(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let s = pattern.to_string_lossy();
    if !s.contains(['*', '?', '[']) {
        return Ok(vec![pattern.to_path_buf()]);
    }
    let mut v: Vec<PathBuf> = glob::glob(&s)
        .map_err(|e| format!("bad pattern: {e}"))?
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    Ok(v)
}

/// Splits `key=value # comment` into key and value; `None` if there is no `=`.
pub fn split_param(line: &str) -> Option<(String, String)> {
    let (k, rest) = line.split_once('=')?;
    let key = k.trim().to_ascii_lowercase();
    if key.is_empty() || key.contains(char::is_whitespace) {
        return None;
    }
    Some((key, value(rest.trim_start())))
}

/// A value: `"quoted"`, `{braced list}` or a bare word up to a comment.
pub fn value(s: &str) -> String {
    if let Some(q) = s.strip_prefix('"') {
        return match q.find('"') {
            Some(e) => q[..e].to_string(),
            None => q.to_string(),
        };
    }
    if s.starts_with('{') {
        if let Some(e) = s.find('}') {
            return s[..=e].to_string();
        }
    }
    let mut end = s.len();
    let b = s.as_bytes();
    for i in 0..b.len() {
        if b[i] == b'#' && (i == 0 || b[i - 1].is_ascii_whitespace()) {
            end = i;
            break;
        }
    }
    s[..end].trim().to_string()
}

/// Reads `path` (shown as `shown`) and everything it includes.
pub fn read(
    path: &Path,
    shown: &str,
    root: Option<&Path>,
    notes: &mut Notes,
) -> Result<Conf, String> {
    let mut c = Conf::default();
    let mut seen = HashSet::new();
    read_file(path, shown, root, 0, &mut seen, &mut c, notes)?;
    Ok(c)
}

fn shown_path(p: &Path, root: Option<&Path>) -> String {
    match root.and_then(|r| p.strip_prefix(r).ok()) {
        Some(rel) => format!("/{}", rel.display()),
        None => p.display().to_string(),
    }
}

fn read_file(
    path: &Path,
    shown: &str,
    root: Option<&Path>,
    depth: usize,
    seen: &mut HashSet<PathBuf>,
    c: &mut Conf,
    notes: &mut Notes,
) -> Result<(), String> {
    let canon = std::fs::canonicalize(path).map_err(|e| format!("{shown}: cannot open: {e}"))?;
    if !seen.insert(canon) {
        return Err(format!("{shown}: included twice (or includes itself)"));
    }
    if depth > 10 {
        return Err(format!("{shown}: includes nested deeper than 10 levels"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    c.files.push(shown.to_string());
    let mut cur: Option<Section> = None;
    for (i, raw) in text.lines().enumerate() {
        let loc = Loc {
            file: shown.to_string(),
            line: i + 1,
        };
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let indented = raw.starts_with([' ', '\t']);
        if indented {
            indented_param(cur.as_mut(), t, loc, notes);
            continue;
        }
        let mut words = t.split_whitespace();
        let first = words.next().unwrap_or("");
        let rest: Vec<&str> = words.collect();
        let rest_s = value(&rest.join(" "));
        match first {
            "version" => c.version = Some(rest_s),
            "config" => {
                if let Some(s) = cur.take() {
                    c.sections.push(s);
                }
                if rest_s != "setup" {
                    notes.add(
                        &loc,
                        None,
                        t,
                        NoteKind::NotCarried,
                        "unknown config section (only `config setup` exists)",
                    );
                }
                cur = Some(Section {
                    kind: Kind::Setup,
                    loc,
                    params: vec![],
                });
            }
            "conn" | "ca" => {
                if let Some(s) = cur.take() {
                    c.sections.push(s);
                }
                let name = rest_s.clone();
                let kind = if first == "conn" {
                    Kind::Conn(name)
                } else {
                    Kind::Ca(name)
                };
                cur = Some(Section {
                    kind,
                    loc,
                    params: vec![],
                });
            }
            "include" => {
                if let Some(s) = cur.take() {
                    c.sections.push(s);
                }
                let pat = resolve(&rest_s, path, root);
                let files = expand(&pat).map_err(|e| format!("{loc}: include {rest_s}: {e}"))?;
                if files.is_empty() {
                    notes.add(
                        &loc,
                        None,
                        format!("include {rest_s}"),
                        NoteKind::NoEffect,
                        "matches no file (the original skips it too)",
                    );
                }
                for f in files {
                    let shown = shown_path(&f, root);
                    read_file(&f, &shown, root, depth + 1, seen, c, notes)?;
                }
            }
            _ => {
                // A key=value at column 0 continues the section in strongSwan's
                // lenient reading; FreeS/WAN requires indentation.
                match (cur.as_mut(), split_param(t)) {
                    (Some(sec), Some((key, value))) => sec.params.push(Param { key, value, loc }),
                    _ => notes.add(&loc, None, t, NoteKind::NotCarried, "not understood (sections start with `conn`, `config setup`, `ca` or `include`)"),
                }
            }
        }
    }
    if let Some(s) = cur.take() {
        c.sections.push(s);
    }
    Ok(())
}

/// An indented `key=value` line: a parameter of the current section.
fn indented_param(cur: Option<&mut Section>, t: &str, loc: Loc, notes: &mut Notes) {
    let Some(sec) = cur else {
        notes.add(
            &loc,
            None,
            t,
            NoteKind::NotCarried,
            "a parameter outside any section: ignored as the original does",
        );
        return;
    };
    match split_param(t) {
        Some((key, value)) => sec.params.push(Param { key, value, loc }),
        None => notes.add(&loc, None, t, NoteKind::NotCarried, "not a key=value line"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(value("\"a b\" # c"), "a b");
        assert_eq!(
            value("{10.0.0.0/24 10.1.0.0/24} # x"),
            "{10.0.0.0/24 10.1.0.0/24}"
        );
        assert_eq!(value("aes128-sha1 #x"), "aes128-sha1");
        assert_eq!(value("a#b"), "a#b");
        assert_eq!(
            split_param("left = 1.2.3.4"),
            Some(("left".into(), "1.2.3.4".into()))
        );
        assert_eq!(split_param("no equals"), None);
    }
}
