//! The configuration loader: reads the main file and what it includes,
//! renames aliases to canonical field names, and turns every table into its
//! typed form, reporting every problem at once as a [`ConfigError`] that
//! names the file, line, field and value. One part per table:
//! [`files`] (reading, `include`), [`tunnel`], [`policy`], [`connection`],
//! [`settings`] (`[daemon]`, `[dataplane]`), [`secrets`] (secrets files and
//! their permissions) and [`checks`] (across tables).

mod auth;
mod checks;
mod connection;
mod files;
mod policy;
mod secrets;
mod settings;
mod tunnel;

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::{Spanned, Value};

use super::dataplane::ShmSetting;
use super::error::{ConfigError, ConfigErrors};
use super::model::{Config, DaemonSettings, StartMode};
use super::values;

impl Config {
    /// Loads `path` and everything it includes, and checks it all.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Loader::default().run(path)
    }
}

impl DaemonSettings {
    /// The `[daemon]` table of the main file `path` alone (no includes, no
    /// other table checked): for the CLI, which must find the daemon's
    /// socket even while the rest of the configuration has errors.
    pub fn load_main(path: &Path) -> Result<DaemonSettings, ConfigErrors> {
        let mut l = Loader::default();
        if let Some((file, raw)) = l.read_source(path, None) {
            let _include = l.take_tables(file, 0, raw);
        }
        let d = l.daemon_settings();
        if l.errors.is_empty() {
            Ok(d)
        } else {
            Err(ConfigErrors(l.errors))
        }
    }
}

type RawMap = BTreeMap<String, Spanned<Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    include: Option<Spanned<Value>>,
    daemon: Option<Spanned<RawMap>>,
    /// `espresso-dataplane --config FILE` reads this table (backend, ports,
    /// cores, EAL arguments); checked like every other table.
    dataplane: Option<Spanned<RawMap>>,
    #[serde(default)]
    template: BTreeMap<String, Spanned<RawMap>>,
    #[serde(default)]
    tunnel: Vec<Spanned<RawMap>>,
    #[serde(default)]
    policy: Vec<Spanned<RawMap>>,
    #[serde(default)]
    connection: Vec<Spanned<RawMap>>,
}

struct SourceFile {
    path: PathBuf,
    line_starts: Vec<usize>,
    mode: u32,
    uid: u32,
}

/// Reads a file and `fstat`s the file it read (the same descriptor): the
/// permission checks judge exactly what was read, with no window in which
/// the path could be swapped for another file between the check and the read.
/// Largest configuration or secrets file read (far above any real one).
const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads a configuration or secrets file: a regular file (a name like
/// `/dev/zero` or a FIFO would never end) of at most [`MAX_FILE_BYTES`].
fn read_file(path: &Path) -> std::io::Result<(String, std::fs::Metadata)> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO must not wait for a writer (the fstat
    // below then refuses it); no effect on regular files.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let md = f.metadata()?;
    if !md.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    f.take(MAX_FILE_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    Ok((text, md))
}

impl SourceFile {
    fn line(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

/// A value with where it came from and the name it was written under.
#[derive(Clone)]
struct Field {
    value: Value,
    file: usize,
    span: Range<usize>,
    written: String,
}

type Fields = BTreeMap<String, Field>;

struct Block {
    fields: Fields,
    file: usize,
    span: Range<usize>,
}

#[derive(Default)]
struct Loader {
    files: Vec<SourceFile>,
    seen: HashSet<PathBuf>,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
    daemon: Option<Block>,
    dataplane: Option<Block>,
    templates: BTreeMap<String, Block>,
    tunnels: Vec<Block>,
    policies: Vec<Block>,
    connections: Vec<Block>,
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

impl Loader {
    fn err(
        &mut self,
        file: usize,
        span: Option<&Range<usize>>,
        field: Option<String>,
        value: Option<String>,
        message: impl Into<String>,
    ) {
        let f = &self.files[file];
        self.errors.push(ConfigError {
            file: f.path.clone(),
            line: span.map(|s| f.line(s.start)),
            field,
            value,
            message: message.into(),
        });
    }

    fn path_err(&mut self, path: &Path, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: path.to_path_buf(),
            line: None,
            field: None,
            value: None,
            message: message.into(),
        });
    }

    fn run(mut self, path: &Path) -> Result<Config, ConfigErrors> {
        self.load_file(path, 0, None);
        if !self.errors.is_empty() {
            return Err(ConfigErrors(self.errors));
        }
        let daemon = self.daemon_settings();
        let dp_block = self.dataplane.take();
        let dataplane = self.dataplane_settings(dp_block);
        let tunnels = std::mem::take(&mut self.tunnels);
        let mut out_tunnels = Vec::new();
        for b in tunnels {
            if let Some(t) = self.tunnel(b) {
                out_tunnels.push(t);
            }
        }
        let policies = std::mem::take(&mut self.policies);
        let mut out_policies = Vec::new();
        for b in policies {
            if let Some(p) = self.policy_rule(b) {
                out_policies.push(p);
            }
        }
        let conns = std::mem::take(&mut self.connections);
        let mut out_conns = Vec::new();
        for b in conns {
            if let Some(c) = self.connection(b) {
                out_conns.push(c);
            }
        }
        self.cross_checks(&out_tunnels, &out_policies, &out_conns);
        if !self.errors.is_empty() {
            return Err(ConfigErrors(self.errors));
        }
        if let Some(ShmSetting::Path(p)) = &dataplane.shm {
            if *p != daemon.shm {
                self.warnings.push(format!(
                    "dataplane.shm = {} but daemon.shm = {}: the two processes do not meet \
                     (write shm = true in [dataplane] for the daemon's region)",
                    p.display(),
                    daemon.shm.display()
                ));
            }
        }
        Ok(Config {
            daemon,
            dataplane,
            tunnels: out_tunnels,
            policies: out_policies,
            connections: out_conns,
            files: self.files.iter().map(|f| f.path.clone()).collect(),
            warnings: self.warnings,
        })
    }

    /// Registers a file read for errors (lines) and permission checks.
    /// Registers a file read with [`read_file`] (`md`: the fstat of the
    /// very file that was read).
    fn add_source(&mut self, path: &Path, text: &str, md: Option<&std::fs::Metadata>) -> usize {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let file = self.files.len();
        self.files.push(SourceFile {
            path: path.to_path_buf(),
            line_starts,
            mode: md.as_ref().map_or(0, |m| m.mode() & 0o7777),
            uid: md.as_ref().map_or(0, |m| m.uid()),
        });
        file
    }

    /// Renames aliases to canonical names and reports unknown fields.
    fn canonical(&mut self, ctx: &str, mut b: Block, spec: &[(&str, &[&str])]) -> Block {
        let mut out = Fields::new();
        for (k, f) in std::mem::take(&mut b.fields) {
            let canon = spec
                .iter()
                .find(|(c, a)| *c == k || a.contains(&k.as_str()))
                .map(|(c, _)| *c);
            let Some(canon) = canon else {
                let near = spec
                    .iter()
                    .map(|(c, _)| *c)
                    .filter(|c| edit_distance(c, &k) <= 2)
                    .min_by_key(|c| edit_distance(c, &k));
                let hint = match near {
                    Some(n) => format!("unknown field (did you mean {n}?)"),
                    None => format!(
                        "unknown field; known fields: {}",
                        spec.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
                    ),
                };
                self.err(
                    f.file,
                    Some(&f.span),
                    Some(format!("{ctx}.{k}")),
                    None,
                    hint,
                );
                continue;
            };
            if let Some(prev) = out.get(canon) {
                let msg = format!("given twice (also as {})", prev.written);
                self.err(f.file, Some(&f.span), Some(format!("{ctx}.{k}")), None, msg);
                continue;
            }
            out.insert(canon.to_string(), f);
        }
        b.fields = out;
        b
    }

    fn start_mode(v: &Value) -> Result<StartMode, String> {
        let s = values::string(v)?;
        match s.as_str() {
            "start" | "up" | "auto" | "automatic" => Ok(StartMode::Start),
            "add" | "manual" | "none" => Ok(StartMode::Add),
            "ignore" => Ok(StartMode::Ignore),
            "route" | "trap" | "listen" | "ondemand" => Err(format!(
                "\"{s}\" needs IKE (traffic-triggered or responder-only negotiation); manual tunnels take start, add or ignore"
            )),
            _ => Err(format!("\"{s}\": expected start, add or ignore")),
        }
    }

    fn name_ok(v: &Value) -> Result<String, String> {
        let s = values::string(v)?;
        if s.is_empty() || s.len() > crate::shm::MAX_TUNNEL_NAME {
            return Err(format!(
                "names are 1 to {} characters",
                crate::shm::MAX_TUNNEL_NAME
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(format!(
                "character {c:?} not allowed: names use letters, digits, '-', '_' and '.'"
            ));
        }
        Ok(s)
    }
}

/// `KIND[NAME]` for errors about a block, or `KIND` when its name is unusable.
fn block_ctx(kind: &str, b: &Block) -> String {
    match b.fields.get("name") {
        Some(f) => match Loader::name_ok(&f.value) {
            Ok(n) => format!("{kind}[{n}]"),
            Err(_) => kind.into(),
        },
        None => kind.into(),
    }
}

/// Where errors about one block point: `ctx.FIELD` at the block's line.
struct At {
    ctx: String,
    file: usize,
    span: Range<usize>,
}

impl At {
    fn err(&self, l: &mut Loader, field: &str, value: Option<String>, msg: impl Into<String>) {
        l.err(
            self.file,
            Some(&self.span),
            Some(format!("{}.{field}", self.ctx)),
            value,
            msg,
        );
    }
}

/// Field-by-field parsing of one block, reporting errors with their location.
struct Parse<'a> {
    l: &'a mut Loader,
    ctx: String,
    fields: Fields,
    file: usize,
    span: Range<usize>,
}

impl Parse<'_> {
    fn get_field<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<(T, Field)> {
        let fld = self.fields.remove(name)?;
        match f(&fld.value) {
            Ok(v) => Some((v, fld)),
            Err(m) => {
                self.l.err(
                    fld.file,
                    Some(&fld.span),
                    Some(format!("{}.{}", self.ctx, fld.written)),
                    Some(values::show(&fld.value)),
                    m,
                );
                None
            }
        }
    }

    fn get<T>(&mut self, name: &str, f: impl FnOnce(&Value) -> Result<T, String>) -> Option<T> {
        self.get_field(name, f).map(|(v, _)| v)
    }

    fn req<T>(&mut self, name: &str, f: impl FnOnce(&Value) -> Result<T, String>) -> Option<T> {
        if !self.fields.contains_key(name) {
            let (file, span) = (self.file, self.span.clone());
            self.l.err(
                file,
                Some(&span),
                Some(format!("{}.{name}", self.ctx)),
                None,
                "missing (required field)",
            );
            return None;
        }
        self.get(name, f)
    }
}
