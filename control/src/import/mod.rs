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
// pub mod mbox;
// pub mod openbsd;
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
            write!(f, "conn {c}: ")?;
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
