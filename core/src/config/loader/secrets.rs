//! Secrets files (`keys = "FILE"` of a tunnel, `secrets = "FILE"` of a
//! connection) and the permissions of every file holding keys: mode 0600 or
//! stricter, owned by root or by us. A key's value is never shown.

use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{values, Field, Fields, Loader, RawMap};

impl Loader {
    /// Reads a secrets file named by field `kf` (`{ctx}.{label}`), relative
    /// to the file that names it: it must exist, be mode 0600 or stricter
    /// and be TOML; `hint` says what a line should look like. The file's
    /// text is never echoed (it holds keys). `None`: an error was recorded.
    pub(super) fn read_secrets(
        &mut self,
        ctx: &str,
        label: &str,
        kf: &Field,
        hint: &str,
    ) -> Option<(usize, RawMap)> {
        let name = match values::string(&kf.value) {
            Ok(n) => n,
            Err(m) => {
                self.err(
                    kf.file,
                    Some(&kf.span),
                    Some(format!("{ctx}.{label}")),
                    Some(values::show(&kf.value)),
                    m,
                );
                return None;
            }
        };
        let base = self.files[kf.file]
            .path
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let path = if Path::new(&name).is_absolute() {
            PathBuf::from(&name)
        } else {
            base.join(&name)
        };
        let (text, md) = match super::read_file(&path) {
            Ok(t) => t,
            Err(e) => {
                self.err(
                    kf.file,
                    Some(&kf.span),
                    Some(format!("{ctx}.{label}")),
                    Some(format!("{name:?}")),
                    format!("cannot read secrets file {}: {e}", path.display()),
                );
                return None;
            }
        };
        let file = self.add_source(&path, &text, Some(&md));
        if !self.check_secret_perms(file, None, &format!("{ctx}.{label}")) {
            return None;
        }
        match toml::from_str(&text) {
            Ok(r) => Some((file, r)),
            Err(e) => {
                let span = e.span();
                // Never echo the offending text: it may be a key.
                self.err(
                    file,
                    span.as_ref(),
                    None,
                    None,
                    format!("not valid TOML ({hint})"),
                );
                None
            }
        }
    }

    /// Moves the entries of a secrets file into `fields` under their
    /// canonical names (`canon`: `None` refuses the entry with `only`); an
    /// entry given twice (here or in the tunnel) is refused with `once`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn secret_fields(
        &mut self,
        ctx: &str,
        file: usize,
        raw: RawMap,
        canon: impl Fn(&str) -> Option<&'static str>,
        only: &str,
        once: &str,
        fields: &mut Fields,
    ) {
        for (k, v) in raw {
            let span = v.span();
            let Some(canon) = canon(k.as_str()) else {
                self.err(file, Some(&span), Some(k.clone()), None, only);
                continue;
            };
            if let Some(prev) = fields.get(canon) {
                let pf = self.files[prev.file].path.display().to_string();
                let pl = self.files[prev.file].line(prev.span.start);
                self.err(
                    file,
                    Some(&span),
                    Some(format!("{ctx}.{k}")),
                    None,
                    format!("also given at {pf}:{pl}: {once}"),
                );
                continue;
            }
            fields.insert(
                canon.to_string(),
                Field {
                    value: v.into_inner(),
                    file,
                    span,
                    written: k,
                },
            );
        }
    }

    /// A file holding keys must be 0600 (or stricter) and ours (or root's).
    pub(super) fn check_secret_perms(
        &mut self,
        file: usize,
        span: Option<&Range<usize>>,
        field: &str,
    ) -> bool {
        let f = &self.files[file];
        let (mode, uid, path) = (f.mode, f.uid, f.path.display().to_string());
        let euid = effective_uid();
        if mode & 0o077 != 0 {
            self.err(file, span, Some(field.into()), None, format!(
                "{path} holds keys but has mode {mode:04o}, readable or writable by others: run chmod 600 {path} (keys must be rw------- as FreeS/WAN requires)"
            ));
            return false;
        }
        if uid != euid && uid != 0 {
            self.err(file, span, Some(field.into()), None, format!("{path} holds keys but belongs to uid {uid}: it must belong to root or to us (uid {euid})"));
            return false;
        }
        true
    }
}

fn effective_uid() -> u32 {
    // std has no geteuid; the owner of /proc/self is our effective uid.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}
