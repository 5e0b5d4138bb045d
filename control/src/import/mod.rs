//! `espresso import`: the configurations operators bring (FreeS/WAN,
//! Openswan, Libreswan and strongSwan `ipsec.conf` + `ipsec.secrets`,
//! Halon/OpenBSD manual-keying tables and CSV, the mbox command language)
//! turned into espresso's TOML *text* plus 0600 secrets files.
//!
//! - [`ipsecconf`], [`secrets`]: the files as written (sections, `also=`,
//!   `%default`, `include` with globs, every secret form), with file:line.
//! - [`options`]: the one table of what each option becomes (mapped,
//!   not carried over and why, refused); [`algs`]: proposal names.
//! - [`conn`]: one resolved `conn` to a `[[connection]]`, `[[tunnel]]` or
//!   `[[policy]]` entry; [`openbsd`]: OpenBSD/Halon `ipsec.conf` and the
//!   manual-key table as CSV; [`mbox`]: the seed 003 command language.
//! - [`out`]: rendering, writing (0600 secrets), and the check with the
//!   configuration loader's public entry point, [`crate::config::Config::load`].
//! - [`features`]: the IKEv1 and certificate switches.
//!
//! Nothing is dropped silently: every option that is not carried over is a
//! [`Note`] with file, line and reason.

pub mod algs;
pub mod conn;
pub mod features;
pub mod ipsecconf;
pub mod mbox;
pub mod openbsd;
pub mod options;
pub mod out;
pub mod secrets;

use std::fmt;

/// Where something was written.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loc {
    /// File as the user named it (or as found through includes).
    pub file: String,
    /// 1-based line (0: the file as a whole).
    pub line: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}", self.file, self.line)
        }
    }
}

/// What happened to an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NoteKind {
    /// Needs IKEv1, which this build does not have.
    NeedsIkev1,
    /// Needs certificates or RSA keys (issue 13).
    NeedsCerts,
    /// Refused: espresso does not do this (e.g. AH).
    Refused,
    /// Not carried over: espresso has no equivalent.
    NotCarried,
    /// No effect in espresso (it does this another way, or it only concerned the old stack).
    NoEffect,
    /// Carried over with a difference worth knowing.
    Changed,
}

impl NoteKind {
    /// Label in the report.
    pub fn label(self) -> &'static str {
        match self {
            NoteKind::NeedsIkev1 => "cannot be used yet (IKEv1)",
            NoteKind::NeedsCerts => "cannot be used yet (certificates, issue 13)",
            NoteKind::Refused => "refused",
            NoteKind::NotCarried => "not carried over",
            NoteKind::NoEffect => "no effect in espresso",
            NoteKind::Changed => "carried over with a change",
        }
    }
}

/// One option that was not carried over as written, or a change worth knowing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Where the option was written.
    pub loc: Loc,
    /// The connection it belongs to, if any.
    pub conn: Option<String>,
    /// The option as written (`leftcert=west.pem`; secrets never shown).
    pub option: String,
    /// What happened to it.
    pub kind: NoteKind,
    /// Why.
    pub reason: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.loc)?;
        if let Some(c) = &self.conn {
            if self.option != format!("conn {c}") {
                write!(f, "conn {c}: ")?;
            }
        }
        write!(f, "{}: {}: {}", self.option, self.kind.label(), self.reason)
    }
}

/// Collects notes while reading and converting.
#[derive(Debug, Default)]
pub struct Notes(pub Vec<Note>);

impl Notes {
    /// Adds a note.
    pub fn add(
        &mut self,
        loc: &Loc,
        conn: Option<&str>,
        option: impl Into<String>,
        kind: NoteKind,
        reason: impl Into<String>,
    ) {
        let n = Note {
            loc: loc.clone(),
            conn: conn.map(str::to_string),
            option: option.into(),
            kind,
            reason: reason.into(),
        };
        if !self.0.contains(&n) {
            self.0.push(n);
        }
    }
}

/// The formats `espresso import` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Decide from the file: `conn`/`config setup` sections are ipsec.conf,
    /// `ike`/`esp`/`flow` lines OpenBSD/Halon, a CSV header the key table.
    Auto,
    /// FreeS/WAN, Openswan, Libreswan or strongSwan (stroke) ipsec.conf.
    Ipsecconf,
    /// OpenBSD ipsec.conf(5) / Halon SR `ipsec { ... }`.
    Openbsd,
    /// The manual-key table as CSV (Halon SR's fields, one tunnel a row).
    Csv,
    /// mbox commands (seed 003), one a line.
    Mbox,
}

/// The ipsec.conf dialect: it decides the defaults of absent options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    /// Decide from the file (strongSwan-only keywords; else Openswan).
    Auto,
    /// FreeS/WAN 1.x/2.x: IKEv1 only.
    Freeswan,
    /// Openswan 2.x: `ikev2=permit` by default (initiates IKEv1).
    Openswan,
    /// Libreswan 4 and later: IKEv2 by default.
    Libreswan,
    /// strongSwan's stroke `ipsec.conf`: `keyexchange=ike` by default (initiates IKEv2).
    Strongswan,
}

impl Dialect {
    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Auto => "auto",
            Dialect::Freeswan => "FreeS/WAN",
            Dialect::Openswan => "Openswan",
            Dialect::Libreswan => "Libreswan",
            Dialect::Strongswan => "strongSwan",
        }
    }
}

/// How to import.
#[derive(Clone, Debug)]
pub struct Options {
    /// Input format.
    pub format: Format,
    /// ipsec.conf dialect.
    pub dialect: Dialect,
    /// The old machine's `/` (absolute include and secrets paths are looked up under it).
    pub root: Option<std::path::PathBuf>,
    /// This gateway's addresses (`None`: the host's own).
    pub local_addrs: Option<Vec<std::net::IpAddr>>,
    /// The input describes the peer: swap in and out (manual-key tables).
    pub mirror: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: Format::Auto,
            dialect: Dialect::Auto,
            root: None,
            local_addrs: None,
            mirror: false,
        }
    }
}

/// The addresses of this host's interfaces.
pub fn host_addrs() -> Vec<std::net::IpAddr> {
    let mut v = Vec::new();
    if let Ok(it) = nix::ifaddrs::getifaddrs() {
        for i in it {
            if let Some(a) = i.address {
                if let Some(s) = a.as_sockaddr_in() {
                    v.push(std::net::IpAddr::V4(s.ip()));
                } else if let Some(s) = a.as_sockaddr_in6() {
                    v.push(std::net::IpAddr::V6(s.ip()));
                }
            }
        }
    }
    v
}

/// Guesses the format of a file from its name and first statements.
pub fn detect_format(path: &std::path::Path, text: &str) -> Format {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        return Format::Csv;
    }
    for l in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let l = l.trim_start_matches('!');
        let first = l.split_whitespace().next().unwrap_or("");
        match first {
            "conn" | "config" | "version" | "ca" => return Format::Ipsecconf,
            "ike" | "esp" | "flow" | "ah" => return Format::Openbsd,
            "ipsec" if l.starts_with("ipsec {") || l == "ipsec" => return Format::Openbsd,
            "ipsec" | "show" | "no" => return Format::Mbox,
            _ => {}
        }
    }
    Format::Ipsecconf
}

/// Imports `inputs` (ipsec.conf [ipsec.secrets] | one OpenBSD/Halon file |
/// one CSV | one mbox command file). Paths are shown as given.
pub fn import(inputs: &[std::path::PathBuf], opts: &Options) -> Result<out::Output, String> {
    let first = inputs.first().ok_or("give the file to import")?;
    let shown = |p: &std::path::Path| p.display().to_string();
    let text = std::fs::read_to_string(first)
        .map_err(|e| format!("{}: cannot read: {e}", first.display()))?;
    let format = match opts.format {
        Format::Auto => detect_format(first, &text),
        f => f,
    };
    let local_addrs = opts.local_addrs.clone().unwrap_or_else(host_addrs);
    let mut o = out::Output {
        sources: inputs.iter().map(|p| shown(p)).collect(),
        ..Default::default()
    };
    match format {
        Format::Ipsecconf | Format::Auto => {
            if inputs.len() > 2 {
                return Err("ipsec.conf takes at most one secrets file: espresso import ipsec.conf [ipsec.secrets]".into());
            }
            let conf = ipsecconf::read(first, &shown(first), opts.root.as_deref(), &mut o.notes)?;
            let dialect = match opts.dialect {
                Dialect::Auto => conn::detect(&conf),
                d => d,
            };
            let mut secrets = Vec::new();
            let sp = inputs.get(1).cloned();
            if let Some(sp) = &sp {
                secrets = secrets::read(sp, &shown(sp), opts.root.as_deref(), &mut o.notes)?;
            }
            o.how = format!(
                "read as {} ipsec.conf{}",
                dialect.name(),
                if opts.dialect == Dialect::Auto {
                    " (detected; --dialect chooses)"
                } else {
                    ""
                }
            );
            let ctx = conn::Ctx {
                dialect,
                secrets: &secrets,
                have_secrets: sp.is_some(),
                local_addrs: &local_addrs,
            };
            o.entries = conn::convert_all(&conf, &ctx, &mut o.notes);
            // Secrets no imported connection uses.
            let used: Vec<String> = o
                .entries
                .iter()
                .flat_map(|e| e.origin.iter())
                .cloned()
                .collect();
            for s in &secrets {
                let at = format!("from {} ", s.loc);
                if used.iter().any(|u| u.contains(&at)) {
                    continue;
                }
                let sel = if s.selectors.is_empty() {
                    String::new()
                } else {
                    format!("{} ", s.selectors.join(" "))
                };
                let opt = format!("{sel}: {} <hidden>", s.kind);
                match s.kind.as_str() {
                    "RSA" | "ECDSA" | "P12" | "PIN" => o.notes.add(
                        &s.loc,
                        None,
                        opt,
                        NoteKind::NeedsCerts,
                        features::CERTS_MISSING,
                    ),
                    "PSK" => o.notes.add(
                        &s.loc,
                        None,
                        opt,
                        NoteKind::NoEffect,
                        "no imported connection uses this pre-shared key",
                    ),
                    "XAUTH" | "EAP" | "NTLM" => o.notes.add(
                        &s.loc,
                        None,
                        opt,
                        NoteKind::NotCarried,
                        "XAUTH/EAP user secrets: not implemented",
                    ),
                    _ => o.notes.add(
                        &s.loc,
                        None,
                        opt,
                        NoteKind::NotCarried,
                        "secret type not implemented",
                    ),
                }
            }
        }
        Format::Openbsd => {
            o.how = "read as OpenBSD ipsec.conf(5) / Halon SR".into();
            o.entries = openbsd::read(
                &text,
                &shown(first),
                &local_addrs,
                opts.mirror,
                &mut o.notes,
            );
        }
        Format::Csv => {
            o.how = "read as a manual-key table (CSV)".into();
            o.entries = openbsd::read_csv(&text, &shown(first), opts.mirror, &mut o.notes);
        }
        Format::Mbox => {
            o.how = "read as mbox commands".into();
            let mut st = mbox::State::default();
            for (i, l) in text.lines().enumerate() {
                let loc = Loc {
                    file: shown(first),
                    line: i + 1,
                };
                // The seed writes several commands on a line, separated by '!'.
                for cmd in l.split('!') {
                    match st.apply(cmd) {
                        Ok(mbox::Action::Start | mbox::Action::Stop | mbox::Action::Show(_)) => {
                            o.notes.add(
                                &loc,
                                None,
                                cmd.trim(),
                                NoteKind::NoEffect,
                                "an operational command (run it with `espresso shell`)",
                            )
                        }
                        Ok(_) => {}
                        Err(e) => o.notes.add(&loc, None, cmd.trim(), NoteKind::NotCarried, e),
                    }
                }
            }
            o.entries = st.entries(&shown(first), "", &mut o.notes);
        }
    }
    Ok(o)
}
