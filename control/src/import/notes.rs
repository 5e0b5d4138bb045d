//! What happened to each option: [`Loc`] (file:line), [`NoteKind`],
//! [`Note`] and the [`Notes`] every reader and converter adds to.

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
