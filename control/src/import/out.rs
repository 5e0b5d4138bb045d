//! What the importer produces: entries of espresso's TOML as text, secrets
//! files (0600), the report; writing them, and the check with the
//! configuration loader ([`crate::config::Config::load`], its one public
//! entry point). An entry the loader refuses is written commented out with
//! the loader's reason, and the check runs again, so what is written loads.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use toml::Value;
use zeroize::Zeroizing;

use super::notes::{Loc, NoteKind, Notes};
use crate::config::Config;

/// The first line of every main file the importer writes (it may replace such a file).
pub const MARKER: &str = "# espresso configuration written by `espresso import`";
/// The first line of the packaged default configuration (may be replaced too).
pub const DEFAULT_MARKER: &str = "# espresso: packaged default configuration";
/// The main file's name.
pub const MAIN: &str = "espresso.toml";
/// The report's name.
pub const REPORT: &str = "import-report.txt";
/// Where secrets files go (0700).
pub const SECRETS_DIR: &str = "secrets";

/// The table an entry goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// `[[connection]]` (IKE).
    Connection,
    /// `[[tunnel]]` (manual keys).
    Tunnel,
    /// `[[policy]]` (bypass/discard).
    Policy,
}

impl Table {
    fn header(self) -> &'static str {
        match self {
            Table::Connection => "[[connection]]",
            Table::Tunnel => "[[tunnel]]",
            Table::Policy => "[[policy]]",
        }
    }
    fn field_prefix(self) -> &'static str {
        match self {
            Table::Connection => "connection",
            Table::Tunnel => "tunnel",
            Table::Policy => "policy",
        }
    }
}

/// A secrets file (mode 0600): `psk = "..."` or the key fields of a tunnel,
/// or (`raw`) a private key as the original held it (FreeS/WAN's
/// `: RSA { ... }` entry), which `local_key` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretFile {
    /// Path relative to the output directory.
    pub path: String,
    /// Fields and values (wiped when dropped).
    pub fields: Vec<(String, Zeroizing<String>)>,
    /// The whole text of the file instead of fields (wiped when dropped).
    pub raw: Option<Zeroizing<String>>,
}

/// One entry of the configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Table.
    pub table: Table,
    /// Name.
    pub name: String,
    /// Where it came from (comment lines above it).
    pub origin: Vec<String>,
    /// Fields in order.
    pub fields: Vec<(String, Value)>,
    /// Its secrets file (the pre-shared key or the manual keys).
    pub secret: Option<SecretFile>,
    /// Its private key, when the import writes one (`local_key`).
    pub key_file: Option<SecretFile>,
    /// Why it is written commented out (it would not behave as the original).
    pub disabled: Option<String>,
    /// Where it was defined (for notes).
    pub loc: Loc,
}

impl Entry {
    /// A new entry named `name`.
    pub fn new(table: Table, name: &str, loc: Loc) -> Entry {
        Entry {
            table,
            name: name.to_string(),
            origin: vec![],
            fields: vec![("name".into(), Value::String(name.into()))],
            secret: None,
            key_file: None,
            disabled: None,
            loc,
        }
    }
    /// Sets a field (replacing an earlier value).
    pub fn set(&mut self, k: &str, v: impl Into<Value>) {
        let v = v.into();
        match self.fields.iter_mut().find(|(f, _)| f == k) {
            Some(x) => x.1 = v,
            None => self.fields.push((k.to_string(), v)),
        }
    }
    /// A field's value.
    pub fn get(&self, k: &str) -> Option<&Value> {
        self.fields.iter().find(|(f, _)| f == k).map(|(_, v)| v)
    }
    /// The secrets files it writes (0600).
    pub fn secret_files(&self) -> impl Iterator<Item = &SecretFile> {
        self.secret.iter().chain(self.key_file.iter())
    }
    /// Marks it as not running, with the reason (the first reason stays).
    pub fn disable(&mut self, why: impl Into<String>) {
        if self.disabled.is_none() {
            self.disabled = Some(why.into());
        }
    }
}

/// Everything an import produced.
#[derive(Debug, Default)]
pub struct Output {
    /// Input files, as named.
    pub sources: Vec<String>,
    /// A line about how the input was read (dialect, format).
    pub how: String,
    /// Entries in input order.
    pub entries: Vec<Entry>,
    /// What was not carried over, and changes.
    pub notes: Notes,
}

/// A value as TOML text.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => {
            let mut o = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => o.push_str("\\\""),
                    '\\' => o.push_str("\\\\"),
                    '\n' => o.push_str("\\n"),
                    '\t' => o.push_str("\\t"),
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                        o.push_str(&format!("\\u{:04x}", c as u32))
                    }
                    c => o.push(c),
                }
            }
            o.push('"');
            o
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(value_text).collect::<Vec<_>>().join(", ")
        ),
        Value::Integer(i) => i.to_string(),
        Value::Boolean(b) => b.to_string(),
        other => other.to_string(),
    }
}

impl Output {
    /// The main file's text.
    pub fn main_text(&self) -> String {
        let mut o = String::new();
        o += MARKER;
        o += "\n";
        o += &format!("# from: {}\n", self.sources.join(", "));
        if !self.how.is_empty() {
            o += &format!("# {}\n", self.how);
        }
        o += &format!(
            "# What was not carried over, and why: {REPORT} (also printed by the import).\n"
        );
        o += "# The pieces `espresso shell` writes live in conf.d/.\n";
        o += "include = [\"conf.d/*.toml\"]\n";
        for e in &self.entries {
            o += "\n";
            for c in &e.origin {
                o += &format!("# {c}\n");
            }
            let p = if let Some(why) = &e.disabled {
                o += &format!("# NOT ACTIVE: {why}\n");
                "# "
            } else {
                ""
            };
            o += &format!("{p}{}\n", e.table.header());
            for (k, v) in &e.fields {
                o += &format!("{p}{k} = {}\n", value_text(v));
            }
        }
        o
    }

    /// A secrets file's text (`hide`: values replaced by their length).
    pub fn secret_text(s: &SecretFile, hide: bool) -> Zeroizing<String> {
        let mut o = Zeroizing::new(String::from(
            "# written by espresso import; keep it mode 0600\n",
        ));
        if let Some(r) = &s.raw {
            if hide {
                o.push_str(&format!("<hidden, {} characters>\n", r.len()));
            } else {
                o.push_str(r);
            }
            return o;
        }
        for (k, v) in &s.fields {
            if hide {
                o.push_str(&format!("{k} = <hidden, {} characters>\n", v.len()));
            } else {
                o.push_str(&format!(
                    "{k} = {}\n",
                    value_text(&Value::String(v.to_string()))
                ));
            }
        }
        o
    }

    /// The report: one line a note, then a summary.
    pub fn report(&self) -> String {
        let mut o = String::new();
        // Files in the order the import first met them (the main file, then
        // its includes), lines in order within a file: the same order
        // wherever the configuration tree lives on disk.
        let mut files: Vec<&str> = Vec::new();
        for n in &self.notes.0 {
            if !files.contains(&n.loc.file.as_str()) {
                files.push(&n.loc.file);
            }
        }
        let rank = |f: &str| files.iter().position(|x| *x == f).unwrap_or(usize::MAX);
        let mut notes = self.notes.0.clone();
        notes.sort_by(|a, b| {
            (rank(&a.loc.file), a.loc.line, &a.option).cmp(&(
                rank(&b.loc.file),
                b.loc.line,
                &b.option,
            ))
        });
        for n in &notes {
            o += &format!("{n}\n");
        }
        let active = self.entries.iter().filter(|e| e.disabled.is_none()).count();
        let count = |t: Table| {
            self.entries
                .iter()
                .filter(|e| e.disabled.is_none() && e.table == t)
                .count()
        };
        o += &format!(
            "imported: {active} of {} ({} connection(s), {} tunnel(s), {} policy(ies)); not active: {}; notes: {}\n",
            self.entries.len(),
            count(Table::Connection),
            count(Table::Tunnel),
            count(Table::Policy),
            self.entries.len() - active,
            notes.len()
        );
        for e in self.entries.iter().filter(|e| e.disabled.is_some()) {
            o += &format!(
                "not active: {} ({}): {}\n",
                e.name,
                e.loc,
                e.disabled.as_deref().unwrap_or("")
            );
        }
        o
    }

    /// Writes every file into `dir` (which must exist): the main file 0644,
    /// secrets 0600 in `secrets/` (0700), the report 0644. Each file is
    /// written beside its place and renamed over it.
    pub fn write_into(&self, dir: &Path) -> Result<Vec<PathBuf>, String> {
        let mut written = Vec::new();
        let secrets: Vec<&SecretFile> =
            self.entries.iter().flat_map(|e| e.secret_files()).collect();
        if !secrets.is_empty() {
            let sd = dir.join(SECRETS_DIR);
            if !sd.exists() {
                DirBuilder::new()
                    .mode(0o700)
                    .create(&sd)
                    .map_err(|e| format!("{}: {e}", sd.display()))?;
            }
            fs::set_permissions(&sd, fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("{}: {e}", sd.display()))?;
        }
        for s in secrets {
            let p = dir.join(&s.path);
            write_file(&p, Self::secret_text(s, false).as_bytes(), 0o600)?;
            written.push(p);
        }
        let p = dir.join(REPORT);
        write_file(&p, self.report().as_bytes(), 0o644)?;
        written.push(p);
        let p = dir.join(MAIN);
        write_file(&p, self.main_text().as_bytes(), 0o644)?;
        written.push(p);
        Ok(written)
    }

    /// The IKEv1 side of the check the daemon makes when it loads the file
    /// (IKEv1 proposals are parsed by the IKEv1 engine, not by core's
    /// loader): comments out the connections it refuses. True when one was.
    fn refuse_bad_ikev1(&mut self, c: &Config, stage_prefix: &str) -> bool {
        let mut refused = false;
        for k in c.connections.iter().filter(|k| k.version.accepts(1)) {
            let Err(err) = crate::ikev1::config::Connection::check_config(k) else {
                continue;
            };
            let Some(en) = self
                .entries
                .iter_mut()
                .find(|en| en.name == k.name && en.disabled.is_none())
            else {
                continue;
            };
            let why = format!(
                "the IKEv1 engine refuses it: {}",
                err.to_string().replace(stage_prefix, "")
            );
            self.notes.add(
                &en.loc,
                Some(&en.name),
                format!("conn {}", en.name),
                NoteKind::NotCarried,
                why.clone(),
            );
            en.disable(why);
            refused = true;
        }
        refused
    }

    /// Connections whose pre-shared key is shorter than espresso accepts
    /// without `weak_psk = true` (20 characters; the loader refuses those
    /// under 8 in any case): they get `weak_psk = true`, so that they run
    /// as the original did, and a note saying why the key should change.
    fn mark_weak_psks(&mut self) {
        const STRONG: usize = 20;
        for en in self
            .entries
            .iter_mut()
            .filter(|en| en.table == Table::Connection)
        {
            let short = en.secret.as_ref().is_some_and(|s| {
                s.fields
                    .iter()
                    .any(|(k, v)| k == "psk" && (8..STRONG).contains(&v.len()))
            });
            if !short || en.get("weak_psk").is_some() {
                continue;
            }
            en.set("weak_psk", true);
            self.notes.add(
                &en.loc,
                Some(&en.name),
                "psk",
                NoteKind::Changed,
                format!(
                    "the pre-shared key has fewer than {STRONG} characters: written with weak_psk = true (espresso refuses it otherwise); it can be guessed offline from one captured exchange: replace it with {STRONG} or more random characters"
                ),
            );
        }
    }

    /// Checks the result with the configuration loader in a private
    /// staging directory (with `conf_d` linked in, if given), commenting out
    /// entries the loader refuses (noted with its message) until it loads.
    pub fn check(&mut self, conf_d: Option<&Path>) -> Result<Config, String> {
        self.mark_weak_psks();
        for _ in 0..=self.entries.len() {
            let stage = Stage::new()?;
            if let Some(c) = conf_d.filter(|c| c.is_dir()) {
                std::os::unix::fs::symlink(c, stage.0.join("conf.d"))
                    .map_err(|e| format!("staging: {e}"))?;
            }
            self.write_into(&stage.0)?;
            let errs = match Config::load(&stage.0.join(MAIN)) {
                Ok(c) => {
                    if self.refuse_bad_ikev1(&c, &format!("{}/", stage.0.display())) {
                        continue;
                    }
                    return Ok(c);
                }
                Err(e) => e,
            };
            let shown = |p: &Path| -> String {
                match p.strip_prefix(&stage.0) {
                    Ok(r) => r.display().to_string(),
                    Err(_) => p.display().to_string(),
                }
            };
            let mut unattributed = Vec::new();
            let mut progressed = false;
            for e in &errs.0 {
                let idx = self.entries.iter().position(|en| {
                    e.field.as_deref().is_some_and(|f| {
                        f.starts_with(&format!("{}[{}]", en.table.field_prefix(), en.name))
                    }) || (e.field.as_deref() == Some("name")
                        && e.value.as_deref() == Some(&format!("{:?}", en.name)))
                });
                let stage_prefix = format!("{}/", stage.0.display());
                let msg = format!(
                    "{}{}: {}",
                    e.field.as_deref().unwrap_or(""),
                    e.value
                        .as_deref()
                        .map(|v| format!(" = {v}"))
                        .unwrap_or_default(),
                    e.message.replace(&stage_prefix, "")
                );
                match idx {
                    Some(i) => {
                        let en = &mut self.entries[i];
                        let why = format!(
                            "espresso's configuration check refuses it: {msg} ({})",
                            shown(&e.file)
                        );
                        self.notes.add(
                            &en.loc,
                            Some(&en.name),
                            format!("conn {}", en.name),
                            NoteKind::NotCarried,
                            why.clone(),
                        );
                        if en.disabled.is_none() {
                            progressed = true;
                        }
                        en.disable(why);
                    }
                    None => unattributed.push(format!("{}: {msg}", shown(&e.file))),
                }
            }
            if !unattributed.is_empty() || !progressed {
                return Err(format!(
                    "the written configuration does not load:\n{}",
                    unattributed.join("\n")
                ));
            }
        }
        Err("the written configuration does not load".into())
    }
}

/// Writes `data` to `path` with `mode`, atomically (temp file + rename).
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), String> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp{}",
        path.file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A private temporary directory (0700), removed when dropped.
pub struct Stage(pub PathBuf);

impl Stage {
    /// Creates one under the system's temporary directory.
    pub fn new() -> Result<Stage, String> {
        let base = std::env::temp_dir();
        for _ in 0..100 {
            let n: u64 = rand::random();
            let p = base.join(format!("espresso-import-{}-{n:016x}", std::process::id()));
            if DirBuilder::new().mode(0o700).create(&p).is_ok() {
                return Ok(Stage(p));
            }
        }
        Err(format!(
            "cannot create a temporary directory in {}",
            base.display()
        ))
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// May the importer replace `main` (an earlier import's file or the
/// unchanged packaged default)?
pub fn replaceable(main: &Path) -> bool {
    match fs::read_to_string(main) {
        Ok(t) => t.starts_with(MARKER) || t.starts_with(DEFAULT_MARKER),
        Err(_) => true,
    }
}
