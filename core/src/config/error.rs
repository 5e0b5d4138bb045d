//! Configuration errors: each names the file, line, field and value (never
//! a key's value), and all of them are reported at once.

use std::fmt;
use std::path::PathBuf;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File the problem is in.
    pub file: PathBuf,
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// Field, e.g. `tunnel[north-south].spi_in`.
    pub field: Option<String>,
    /// The value as written (keys are never shown, only their length).
    pub value: Option<String>,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ":")?;
        if let Some(field) = &self.field {
            write!(f, " {field}")?;
            if let Some(v) = &self.value {
                write!(f, " = {v}")?;
            }
            write!(f, ":")?;
        }
        write!(f, " {}", self.message)
    }
}

/// Every problem found in a configuration (at least one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
