//! Typed errors of the IKE engine: parse errors name the field and the value,
//! protocol errors name what was wrong with the exchange.

use thiserror::Error;

/// Why bytes could not be read as an IKEv2 message or payload.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Fewer bytes than the structure needs.
    #[error("{what}: truncated (need {need} bytes, have {have})")]
    Truncated {
        /// Structure being read.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A length field disagrees with the bytes around it.
    #[error("{what}: length field {value} invalid (available {available})")]
    BadLength {
        /// Structure whose length field is wrong.
        what: &'static str,
        /// The length field.
        value: usize,
        /// Bytes that were actually there.
        available: usize,
    },
    /// A field holds a value the protocol does not allow.
    #[error("{what}: invalid value {value}")]
    BadValue {
        /// Field name.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// IKE major version other than 2.
    #[error("IKE major version {0} not supported")]
    Version(u8),
    /// A payload we do not know arrived with the critical bit set (RFC 7296 §2.5).
    #[error("unsupported critical payload type {0}")]
    UnsupportedCritical(u8),
    /// A payload that may appear once appeared twice.
    #[error("payload type {0} appears more than once")]
    Duplicate(u8),
    /// The encrypted payload was not the last payload.
    #[error("encrypted payload is not the last payload")]
    SkNotLast,
    /// Too many payloads in one message.
    #[error("more than {0} payloads in one message")]
    TooManyPayloads(usize),
}

/// Why the IKE SA or an exchange failed; carried in events and returned by API calls.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IkeError {
    /// Malformed message.
    #[error("malformed message: {0}")]
    Parse(#[from] ParseError),
    /// Integrity check of an encrypted payload failed.
    #[error("integrity check of the encrypted payload failed")]
    Integrity,
    /// Decrypted padding or length inconsistent.
    #[error("decrypted payload malformed: {0}")]
    Decrypt(&'static str),
    /// No connection with that name.
    #[error("no connection named {0:?}")]
    UnknownConnection(String),
    /// No IKE SA with that identifier.
    #[error("no IKE SA {0:#018x}")]
    UnknownSa(u64),
    /// No child SA with that SPI.
    #[error("no child SA with SPI {0:#010x}")]
    UnknownChild(u32),
    /// A required payload is missing.
    #[error("{exchange}: missing {payload} payload")]
    Missing {
        /// Exchange name.
        exchange: &'static str,
        /// Payload name.
        payload: &'static str,
    },
    /// The peer's proposals and ours have nothing in common.
    #[error("no proposal chosen: peer offered [{offered}], configured [{configured}]")]
    NoProposalChosen {
        /// The peer's proposals, strongSwan notation.
        offered: String,
        /// Our proposals, strongSwan notation.
        configured: String,
    },
    /// The peer chose as our outbound SPI one that another SA already uses
    /// (a manual tunnel's `spi_out` or another child's): the child is
    /// refused, never installed over that SA.
    #[error("the peer's SPI {0:#010x} is already the outbound SPI of another SA: child refused")]
    SpiInUse(u32),
    /// The peer's CREATE_CHILD_SA carries no KE while this connection
    /// requires PFS (the proposals match otherwise).
    #[error("the peer's rekey carries no key exchange (no PFS) and this connection requires PFS: set `pfs = false` here or add a DH group to the peer's ESP proposal")]
    PfsRequired,
    /// The peer refused our CREATE_CHILD_SA with a KE (NO_PROPOSAL_CHOSEN)
    /// after its own rekey without one was refused for want of PFS.
    #[error("the peer refused our rekey with PFS (NO_PROPOSAL_CHOSEN): its ESP proposal names no DH group; set `pfs = false` here or add a DH group to the peer's ESP proposal")]
    PfsRefusedByPeer,
    /// The peer answered with an error notify.
    #[error("peer sent error notify {name} ({code})")]
    PeerError {
        /// Notify type.
        code: u16,
        /// Its name.
        name: &'static str,
    },
    /// The AUTH payload did not verify.
    #[error("authentication failed: {0}")]
    AuthFailed(String),
    /// An IKEv1 quick mode from the peer was refused: the notify it got
    /// and why.
    #[error("quick mode from {peer} refused with {notify}: {reason}")]
    QuickModeRefused {
        /// The peer.
        peer: std::net::SocketAddr,
        /// The notify sent to the peer.
        notify: &'static str,
        /// Why, naming the payload, proposal or transform.
        reason: String,
    },
    /// The traffic selectors do not fit the configuration.
    #[error("traffic selectors unacceptable: {0}")]
    TsUnacceptable(String),
    /// Key exchange failed (bad public value).
    #[error("key exchange failed: {0}")]
    KeyExchange(&'static str),
    /// A configuration value is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The peer does not answer.
    #[error("peer did not answer after {0} transmissions")]
    Timeout(u32),
    /// The operation does not fit the SA's state.
    #[error("invalid state for {op}: {state}")]
    State {
        /// Requested operation.
        op: &'static str,
        /// Current state.
        state: &'static str,
    },
}

impl From<espresso_core::alg::ProposalError> for IkeError {
    fn from(e: espresso_core::alg::ProposalError) -> Self {
        IkeError::Config(e.0)
    }
}

impl From<espresso_core::config::ike::ConnectionError> for IkeError {
    fn from(e: espresso_core::config::ike::ConnectionError) -> Self {
        IkeError::Config(e.to_string())
    }
}
