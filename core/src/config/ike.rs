//! IKE connection configuration: what an operator writes (Openswan's start
//! modes, IDs, `%any`, `%defaultroute`, DPD, rekey, PFS, lifetimes, subnets)
//! as typed values. [`Connection`] is the checked form the engine uses; the
//! configuration loader (`[[connection]]`) builds it, reading each value with
//! the `FromStr` impls here.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::alg::proposal::{
    default_esp_proposals, default_ike_proposals, EspProposal, IkeProposal,
};
use crate::key::Key;
use crate::sa::Mode;

/// Identification types of ID payloads (RFC 7296 §3.5; the same numbers in
/// IKEv1, RFC 2407 §4.6.2.1).
pub mod id_type {
    /// ID_IPV4_ADDR.
    pub const IPV4_ADDR: u8 = 1;
    /// ID_FQDN.
    pub const FQDN: u8 = 2;
    /// ID_RFC822_ADDR.
    pub const RFC822_ADDR: u8 = 3;
    /// ID_IPV6_ADDR.
    pub const IPV6_ADDR: u8 = 5;
    /// ID_DER_ASN1_DN.
    pub const DER_ASN1_DN: u8 = 9;
    /// ID_KEY_ID.
    pub const KEY_ID: u8 = 11;
}

/// Why a connection is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connection {name:?}: {why}")]
pub struct ConnectionError {
    /// The connection.
    pub name: String,
    /// What is wrong.
    pub why: String,
}

/// What happens with a connection when it is loaded (the "connection mode" of
/// Openswan-based gateways: automatic, on-demand, listen, manual start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAction {
    /// Initiate at once ("automatic", strongSwan `start`).
    Start,
    /// Install trap policies; initiate when traffic matches ("on-demand", `trap`/`route`).
    Trap,
    /// Only respond ("listen", `add`).
    #[default]
    Add,
    /// Nothing until an operator starts it ("manual start", `none`).
    None,
}

impl FromStr for StartAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "start" | "up" | "automatic" | "auto" => Self::Start,
            "trap" | "route" | "on-demand" | "ondemand" => Self::Trap,
            "add" | "listen" | "respond" => Self::Add,
            "none" | "manual" | "manual-start" | "ignore" => Self::None,
            _ => {
                return Err(format!(
                    "\"{s}\": expected start (automatic), trap (on-demand), add (listen) or none (manual start)"
                ))
            }
        })
    }
}

/// Which IKE versions a connection speaks (Openswan's `ikev2 =`; also
/// `version = 1 | 2` and strongSwan's `keyexchange = ikev1 | ikev2 | ike`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionPolicy {
    /// IKEv1 only (`ikev2 = never`/`no`, `version = 1`, `keyexchange = ikev1`).
    Never,
    /// Initiate IKEv1, accept IKEv2 too (`permit`).
    Permit,
    /// Initiate IKEv2, fall back to IKEv1; accept both (`propose`/`yes`, `keyexchange = ike`).
    Propose,
    /// IKEv2 only (`insist`, `version = 2`, `keyexchange = ikev2`); the default.
    #[default]
    Insist,
}

impl VersionPolicy {
    /// From `version = 1 | 2`.
    pub fn from_version(v: u8) -> Result<Self, String> {
        match v {
            1 => Ok(Self::Never),
            2 => Ok(Self::Insist),
            o => Err(format!("version = {o} (1 or 2)")),
        }
    }
    /// From strongSwan's `keyexchange`.
    pub fn from_keyexchange(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "ikev1" => Ok(Self::Never),
            "ikev2" => Ok(Self::Insist),
            "ike" => Ok(Self::Propose),
            o => Err(format!("keyexchange = {o:?} (ikev1, ikev2 or ike)")),
        }
    }
    /// The version an initiator uses first.
    pub fn initiate_with(self) -> u8 {
        match self {
            Self::Never | Self::Permit => 1,
            Self::Propose | Self::Insist => 2,
        }
    }
    /// The version an initiator falls back to when the peer does not answer
    /// the first or refuses it (Openswan's `propose`).
    pub fn fallback(self) -> Option<u8> {
        match self {
            Self::Propose => Some(1),
            _ => None,
        }
    }
    /// A responder accepts requests of this major version.
    pub fn accepts(self, version: u8) -> bool {
        match version {
            1 => self != Self::Insist,
            2 => self != Self::Never,
            _ => false,
        }
    }
}

impl FromStr for VersionPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "never" | "no" => Self::Never,
            "permit" => Self::Permit,
            "propose" | "yes" => Self::Propose,
            "insist" => Self::Insist,
            o => return Err(format!("ikev2 = {o:?} (never, permit, propose or insist)")),
        })
    }
}

impl fmt::Display for VersionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Never => "never",
            Self::Permit => "permit",
            Self::Propose => "propose",
            Self::Insist => "insist",
        })
    }
}

/// IKEv1 phase 1 exchange (`aggressive = true`, alias `aggrmode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeMode {
    /// Main mode (identity protection, 6 messages).
    #[default]
    Main,
    /// Aggressive mode (3 messages, identities in the clear).
    Aggressive,
}

impl ExchangeMode {
    /// Name for status.
    pub fn name(self) -> &'static str {
        match self {
            Self::Main => "main",
            Self::Aggressive => "aggressive",
        }
    }
}

/// What to do when DPD (or any exchange) finds the peer dead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DpdAction {
    /// Remove the SAs and the policies: traffic is no longer protected nor held.
    Clear,
    /// Remove the SAs, keep trap policies so that traffic is held and renegotiates
    /// (the default of Openswan-based gateways: "hold route", so that nothing
    /// meant for the tunnel leaves unencrypted).
    #[default]
    Hold,
    /// Remove the SAs and initiate again at once.
    Restart,
}

impl FromStr for DpdAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "clear" | "none" => Self::Clear,
            "hold" | "trap" => Self::Hold,
            "restart" | "start" => Self::Restart,
            _ => return Err(format!("\"{s}\": expected clear, hold or restart")),
        })
    }
}

/// Our address for a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LocalAddr {
    /// A fixed address.
    Addr(IpAddr),
    /// The address of the default-route interface (`%defaultroute`), resolved by the driver.
    DefaultRoute,
    /// Any local address (`%any`): respond on whatever address the request reached.
    Any,
}

/// The peer's address for a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RemoteAddr {
    /// A fixed address.
    Addr(IpAddr),
    /// Any address (`%any`): responder only (road warriors).
    Any,
}

impl FromStr for LocalAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "%defaultroute" => Ok(Self::DefaultRoute),
            "%any" => Ok(Self::Any),
            a => a
                .parse()
                .map(Self::Addr)
                .map_err(|_| format!("\"{a}\" is not an address, \"%defaultroute\" or \"%any\"")),
        }
    }
}
impl FromStr for RemoteAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "%any" => Ok(Self::Any),
            a => a
                .parse()
                .map(Self::Addr)
                .map_err(|_| format!("\"{a}\" is not an address or \"%any\" (responder only)")),
        }
    }
}

/// An IKE identity (RFC 7296 §3.5).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// ID_IPV4_ADDR.
    Ipv4(Ipv4Addr),
    /// ID_IPV6_ADDR.
    Ipv6(Ipv6Addr),
    /// ID_FQDN (`@host.example`).
    Fqdn(String),
    /// ID_RFC822_ADDR (`user@example`).
    Email(String),
    /// ID_KEY_ID (`@#hex`).
    KeyId(Vec<u8>),
    /// ID_DER_ASN1_DN (`C=CH, O=.., CN=..`): the DER of the name; may hold
    /// `*` values when it is a configured peer identity.
    Dn(Vec<u8>),
}

impl Identity {
    /// From an address.
    pub fn from_ip(a: IpAddr) -> Self {
        match a {
            IpAddr::V4(a) => Self::Ipv4(a),
            IpAddr::V6(a) => Self::Ipv6(a),
        }
    }
    /// The ID payload body: type, three reserved bytes, data.
    pub fn to_body(&self) -> Vec<u8> {
        let (t, d): (u8, Vec<u8>) = match self {
            Self::Ipv4(a) => (id_type::IPV4_ADDR, a.octets().to_vec()),
            Self::Ipv6(a) => (id_type::IPV6_ADDR, a.octets().to_vec()),
            Self::Fqdn(s) => (id_type::FQDN, s.as_bytes().to_vec()),
            Self::Email(s) => (id_type::RFC822_ADDR, s.as_bytes().to_vec()),
            Self::KeyId(k) => (id_type::KEY_ID, k.clone()),
            Self::Dn(d) => (id_type::DER_ASN1_DN, d.clone()),
        };
        let mut b = vec![t, 0, 0, 0];
        b.extend_from_slice(&d);
        b
    }
    /// From an ID payload; None for types we do not handle (DN, ...).
    pub fn from_payload(t: u8, data: &[u8]) -> Option<Self> {
        Some(match t {
            id_type::IPV4_ADDR => {
                let a: [u8; 4] = data.try_into().ok()?;
                Self::Ipv4(Ipv4Addr::from(a))
            }
            id_type::IPV6_ADDR => {
                let a: [u8; 16] = data.try_into().ok()?;
                Self::Ipv6(Ipv6Addr::from(a))
            }
            id_type::FQDN => Self::Fqdn(String::from_utf8(data.to_vec()).ok()?),
            id_type::RFC822_ADDR => Self::Email(String::from_utf8(data.to_vec()).ok()?),
            id_type::KEY_ID => Self::KeyId(data.to_vec()),
            id_type::DER_ASN1_DN => Self::Dn(data.to_vec()),
            _ => return None,
        })
    }
}

impl FromStr for Identity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(h) = s.strip_prefix("@#") {
            return match hex::decode(h) {
                Ok(v) => Ok(Self::KeyId(v)),
                Err(hex::FromHexError::OddLength) => Err(format!("key id {s:?}: odd hex length")),
                Err(_) => Err(format!("key id {s:?}: bad hex")),
            };
        }
        if let Some(f) = s.strip_prefix('@') {
            if f.is_empty() {
                return Err("empty FQDN identity".into());
            }
            return Ok(Self::Fqdn(f.to_string()));
        }
        if let Ok(a) = s.parse::<IpAddr>() {
            return Ok(Self::from_ip(a));
        }
        if super::dn::looks_like_dn(s) {
            return super::dn::parse(s)
                .map(Self::Dn)
                .map_err(|e| format!("distinguished name {s:?}: {e}"));
        }
        if s.is_empty() {
            return Err("empty identity".into());
        }
        if s.contains('@') {
            return Ok(Self::Email(s.to_string()));
        }
        Ok(Self::Fqdn(s.to_string()))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ipv4(a) => write!(f, "{a}"),
            Self::Ipv6(a) => write!(f, "{a}"),
            Self::Fqdn(s) => write!(f, "@{s}"),
            Self::Email(s) => write!(f, "{s}"),
            Self::KeyId(k) => write!(f, "@#{}", hex::encode(k)),
            Self::Dn(d) => f.write_str(&super::dn::display(d)),
        }
    }
}

impl Identity {
    /// Does a received identity `got` satisfy this configured one? Equal, or
    /// for a DN strongSwan's match with `*` wildcards.
    pub fn matches(&self, got: &Identity) -> bool {
        match (self, got) {
            (Self::Dn(p), Self::Dn(g)) => super::dn::matches(p, g),
            (a, b) => a == b,
        }
    }
}

/// Dead peer detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dpd {
    /// Idle time before a liveness check; zero disables DPD.
    pub delay: Duration,
    /// How long a liveness check may stay unanswered before the peer is dead.
    pub timeout: Duration,
    /// What to do then.
    pub action: DpdAction,
}

impl Default for Dpd {
    fn default() -> Self {
        Dpd {
            delay: Duration::ZERO,
            timeout: Duration::from_secs(120),
            action: DpdAction::Hold,
        }
    }
}

/// Default IKE SA lifetime: 8 hours, as Openswan-based gateways (ikelifetime 28800 s).
pub const DEFAULT_IKE_LIFETIME: Duration = Duration::from_secs(28800);
/// Default child SA lifetime: 1 hour, as Openswan-based gateways (salifetime 3600 s).
pub const DEFAULT_CHILD_LIFETIME: Duration = Duration::from_secs(3600);
/// Default rekey margin: rekeying starts this long before expiry, plus jitter.
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(540);

/// A checked IKE connection.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Name (unique).
    pub name: String,
    /// Our address.
    pub local_addr: LocalAddr,
    /// The peer's address.
    pub remote_addr: RemoteAddr,
    /// Our identity; None = our IP address.
    pub local_id: Option<Identity>,
    /// The peer's identity; None = any (with PSK: whoever knows the key).
    pub remote_id: Option<Identity>,
    /// Pre-shared key (used where a side authenticates with `psk`).
    pub psk: Key,
    /// How each side authenticates (default: the pre-shared key both ways).
    pub auth: super::auth::AuthConfig,
    /// IKE proposals, preferred first.
    pub ike_proposals: Vec<IkeProposal>,
    /// ESP proposals, preferred first.
    pub esp_proposals: Vec<EspProposal>,
    /// Start action.
    pub start_action: StartAction,
    /// Dead peer detection.
    pub dpd: Dpd,
    /// Rekey SAs before they expire (false: let them expire and renegotiate on demand).
    pub rekey: bool,
    /// Perfect forward secrecy for CREATE_CHILD_SA (a DH exchange in each child rekey).
    pub pfs: bool,
    /// IKE SA lifetime.
    pub ike_lifetime: Duration,
    /// Child SA lifetime.
    pub child_lifetime: Duration,
    /// Rekey this long before the lifetime ends...
    pub margin: Duration,
    /// ...plus a random part up to this fraction (percent) of the margin.
    pub fuzz_percent: u32,
    /// Child SA byte lifetime (0 = none); soft limit at 90 %.
    pub life_bytes: u64,
    /// Child SA packet lifetime (0 = none); soft limit at 90 %.
    pub life_packets: u64,
    /// Local subnets (empty: our address).
    pub local_ts: Vec<IpNet>,
    /// Remote subnets (empty: the peer's address).
    pub remote_ts: Vec<IpNet>,
    /// Tunnel or transport mode.
    pub mode: Mode,
    /// Dataplane tunnel index for counters.
    pub tunnel_id: u32,
    /// Anti-replay window of inbound SAs.
    pub replay_window: u32,
    /// Always use UDP encapsulation (fake NAT detection, like strongSwan's `encap`).
    pub force_encap: bool,
    /// MOBIKE (RFC 4555): announce MOBIKE_SUPPORTED in IKE_AUTH and follow the
    /// peer's UPDATE_SA_ADDRESSES (default on, like strongSwan's `mobike`).
    pub mobike: bool,
    /// Allow legacy ESP algorithms (3DES, MD5).
    pub allow_legacy: bool,
}

impl Connection {
    /// A connection with Openswan's defaults: automatic keying with PSK, IKE 28800 s,
    /// child 3600 s, PFS yes, rekey yes, DPD off (hold when enabled).
    pub fn new(name: &str, local: LocalAddr, remote: RemoteAddr, psk: &[u8]) -> Self {
        Connection {
            name: name.to_string(),
            local_addr: local,
            remote_addr: remote,
            local_id: None,
            remote_id: None,
            psk: Key::from_slice(psk),
            auth: Default::default(),
            ike_proposals: default_ike_proposals(),
            esp_proposals: default_esp_proposals(),
            start_action: StartAction::Add,
            dpd: Dpd::default(),
            rekey: true,
            pfs: true,
            ike_lifetime: DEFAULT_IKE_LIFETIME,
            child_lifetime: DEFAULT_CHILD_LIFETIME,
            margin: DEFAULT_MARGIN,
            fuzz_percent: 100,
            life_bytes: 0,
            life_packets: 0,
            local_ts: Vec::new(),
            remote_ts: Vec::new(),
            mode: Mode::Tunnel,
            tunnel_id: 0,
            replay_window: crate::sa::DEFAULT_REPLAY_WINDOW,
            force_encap: false,
            mobike: true,
            allow_legacy: false,
        }
    }

    /// Checks the values that do not depend on other connections.
    pub fn validate(&self) -> Result<(), ConnectionError> {
        self.validate_as(self.auth.uses_psk())
    }

    /// [`Connection::validate`] with whether a side uses the pre-shared key
    /// decided by the caller (the control process, from the credentials it
    /// loaded).
    pub fn validate_as(&self, psk_used: bool) -> Result<(), ConnectionError> {
        let e = |why: String| {
            Err(ConnectionError {
                name: self.name.clone(),
                why,
            })
        };
        if self.name.is_empty() {
            return e("empty name".into());
        }
        if psk_used && self.psk.len() < 8 {
            return e("pre-shared key shorter than 8 bytes".into());
        }
        if self.ike_proposals.is_empty() || self.esp_proposals.is_empty() {
            return e("no proposals".into());
        }
        if self.remote_addr == RemoteAddr::Any
            && matches!(self.start_action, StartAction::Start | StartAction::Trap)
        {
            return e("remote %any can only respond (start action add or none)".into());
        }
        if self.margin >= self.child_lifetime || self.margin >= self.ike_lifetime {
            return e(format!(
                "rekey margin {:?} must be shorter than the lifetimes",
                self.margin
            ));
        }
        if self.fuzz_percent > 100 {
            return e("fuzz percent above 100".into());
        }
        if let (Some(IpNet::V4(_)), Some(IpNet::V6(_))) | (Some(IpNet::V6(_)), Some(IpNet::V4(_))) =
            (self.local_ts.first(), self.remote_ts.first())
        {
            return e("local and remote subnets of different address families".into());
        }
        if !self.allow_legacy {
            for p in &self.esp_proposals {
                if p.encr.iter().any(|a| a.is_legacy()) || p.integ.iter().any(|a| a.is_legacy()) {
                    return e(format!(
                        "ESP proposal {p} uses a legacy algorithm: set allow_legacy = true"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary() {
        assert_eq!(
            "automatic".parse::<StartAction>().unwrap(),
            StartAction::Start
        );
        assert_eq!(
            "on-demand".parse::<StartAction>().unwrap(),
            StartAction::Trap
        );
        assert_eq!("listen".parse::<StartAction>().unwrap(), StartAction::Add);
        assert_eq!("manual".parse::<StartAction>().unwrap(), StartAction::None);
        assert!("sometimes".parse::<StartAction>().is_err());
        assert_eq!("hold".parse::<DpdAction>().unwrap(), DpdAction::Hold);
        assert_eq!(
            "%defaultroute".parse::<LocalAddr>().unwrap(),
            LocalAddr::DefaultRoute
        );
        assert_eq!("%any".parse::<RemoteAddr>().unwrap(), RemoteAddr::Any);
        assert_eq!(
            "@clearos".parse::<Identity>().unwrap(),
            Identity::Fqdn("clearos".into())
        );
        assert_eq!(
            "roadwarrior".parse::<Identity>().unwrap(),
            Identity::Fqdn("roadwarrior".into())
        );
        assert_eq!(
            "192.0.2.1".parse::<Identity>().unwrap().to_body(),
            vec![1, 0, 0, 0, 192, 0, 2, 1]
        );
        assert_eq!(
            "@#0a0b".parse::<Identity>().unwrap(),
            Identity::KeyId(vec![10, 11])
        );
    }
}
