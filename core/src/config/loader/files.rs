//! Reading the files: the main file, what it includes (paths and globs,
//! relative to the including file, at most [`MAX_INCLUDE_DEPTH`] deep, each
//! once), and which tables each may hold.

use std::ops::Range;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use toml::{Spanned, Value};

use super::{values, Block, Field, Fields, Loader, RawFile, RawMap};
use crate::config::model::MAX_INCLUDE_DEPTH;

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl Loader {
    /// Reads one file and what it includes. `from`: the including file and
    /// the include value's span (for errors).
    pub(super) fn load_file(
        &mut self,
        path: &Path,
        depth: usize,
        from: Option<(usize, Range<usize>)>,
    ) {
        let Some((file, raw)) = self.read_source(path, from) else {
            return;
        };
        if let Some(inc) = self.take_tables(file, depth, raw) {
            self.includes(path, file, depth, inc);
        }
    }

    /// Opens and parses one file (once: a file included twice is an error).
    pub(super) fn read_source(
        &mut self,
        path: &Path,
        from: Option<(usize, Range<usize>)>,
    ) -> Option<(usize, RawFile)> {
        let canon = match std::fs::canonicalize(path) {
            Ok(c) => c,
            Err(e) => {
                match from {
                    Some((f, span)) => self.err(
                        f,
                        Some(&span),
                        Some("include".into()),
                        Some(format!("{:?}", path.display().to_string())),
                        format!("cannot open: {e}"),
                    ),
                    None => self.path_err(path, format!("cannot open: {e}")),
                }
                return None;
            }
        };
        if !self.seen.insert(canon) {
            if let Some((f, span)) = from {
                self.err(
                    f,
                    Some(&span),
                    Some("include".into()),
                    Some(format!("{:?}", path.display().to_string())),
                    "file is included twice (or includes itself)",
                );
            }
            return None;
        }
        let (text, md) = match super::read_file(path) {
            Ok(t) => t,
            Err(e) => {
                self.path_err(path, format!("cannot read: {e}"));
                return None;
            }
        };
        let file = self.add_source(path, &text, Some(&md));
        // Whoever may write the configuration can turn on key export or
        // point `keys` at a file of their own: refuse what group or others
        // may write (as sshd refuses a writable authorized_keys).
        let mode = md.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            self.path_err(
                path,
                format!(
                    "is writable by group or others (mode {mode:04o}): whoever can write it \
                     can turn on key export; run chmod go-w {}",
                    path.display()
                ),
            );
            return None;
        }
        match toml::from_str(&text) {
            Ok(r) => Some((file, r)),
            Err(e) => {
                let span = e.span();
                self.err(
                    file,
                    span.as_ref(),
                    None,
                    None,
                    e.message().trim().to_string(),
                );
                None
            }
        }
    }

    /// Keeps the tables of a parsed file for later (`[daemon]` and
    /// `[dataplane]` only from the main file); returns its `include`.
    pub(super) fn take_tables(
        &mut self,
        file: usize,
        depth: usize,
        raw: RawFile,
    ) -> Option<Spanned<Value>> {
        let block = |m: Spanned<RawMap>| -> Block {
            let span = m.span();
            let fields: Fields = m
                .into_inner()
                .into_iter()
                .map(|(k, v)| {
                    let span = v.span();
                    (
                        k.clone(),
                        Field {
                            value: v.into_inner(),
                            file,
                            span,
                            written: k,
                        },
                    )
                })
                .collect();
            Block { fields, file, span }
        };
        for (what, table) in [("dataplane", raw.dataplane), ("daemon", raw.daemon)] {
            let Some(t) = table else { continue };
            if depth > 0 {
                let span = t.span();
                self.err(
                    file,
                    Some(&span),
                    Some(what.into()),
                    None,
                    format!(
                        "{what} settings belong in the main configuration file, not an included one"
                    ),
                );
            } else if what == "daemon" {
                self.daemon = Some(block(t));
            } else {
                self.dataplane = Some(block(t));
            }
        }
        for (name, t) in raw.template {
            if let Some(prev) = self.templates.get(&name) {
                let pf = self.files[prev.file].path.display().to_string();
                let pl = self.files[prev.file].line(prev.span.start);
                let span = t.span();
                self.err(
                    file,
                    Some(&span),
                    Some(format!("template.{name}")),
                    None,
                    format!("template defined twice (first at {pf}:{pl})"),
                );
                continue;
            }
            self.templates.insert(name, block(t));
        }
        self.tunnels.extend(raw.tunnel.into_iter().map(block));
        self.policies.extend(raw.policy.into_iter().map(block));
        self.connections
            .extend(raw.connection.into_iter().map(block));
        raw.include
    }

    /// Loads the files an `include` names (paths or globs).
    fn includes(&mut self, path: &Path, file: usize, depth: usize, inc: Spanned<Value>) {
        let span = inc.span();
        let pats = match values::strings(inc.get_ref()) {
            Ok(p) => p,
            Err(m) => {
                self.err(
                    file,
                    Some(&span),
                    Some("include".into()),
                    Some(values::show(inc.get_ref())),
                    m,
                );
                return;
            }
        };
        if depth + 1 > MAX_INCLUDE_DEPTH {
            self.err(
                file,
                Some(&span),
                Some("include".into()),
                None,
                format!("includes nested deeper than {MAX_INCLUDE_DEPTH} levels"),
            );
            return;
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for pat in pats {
            let full = if Path::new(&pat).is_absolute() {
                PathBuf::from(&pat)
            } else {
                base.join(&pat)
            };
            if !has_glob(&pat) {
                self.load_file(&full, depth + 1, Some((file, span.clone())));
                continue;
            }
            let matches = match glob::glob(&full.to_string_lossy()) {
                Ok(m) => m,
                Err(e) => {
                    self.err(
                        file,
                        Some(&span),
                        Some("include".into()),
                        Some(format!("{pat:?}")),
                        format!("bad pattern: {e}"),
                    );
                    continue;
                }
            };
            let mut paths: Vec<PathBuf> = matches
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            paths.sort();
            if paths.is_empty() {
                self.warnings.push(format!(
                    "{}: include {pat:?} matches no file",
                    self.files[file].path.display()
                ));
            }
            for p in paths {
                self.load_file(&p, depth + 1, Some((file, span.clone())));
            }
        }
    }
}
