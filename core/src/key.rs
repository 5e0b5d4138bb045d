//! Secret key material.

#![forbid(unsafe_code)]

use std::fmt;

use zeroize::Zeroizing;

/// Secret key bytes, wiped when dropped. Never printed: `Debug` shows the length only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Key(Zeroizing<Vec<u8>>);

impl Key {
    /// Wraps key bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Key(Zeroizing::new(bytes))
    }
    /// A key copied from a slice.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Key(Zeroizing::new(bytes.to_vec()))
    }
    /// The key bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
    /// Key length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True for an empty key (NULL algorithms).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(<{} bytes redacted>)", self.0.len())
    }
}
