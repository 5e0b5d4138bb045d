//! IKE connection configuration: what an operator writes (seed 000's start
//! modes, IDs, `%any`, `%defaultroute`, DPD, rekey, PFS, lifetimes, subnets)
//! as typed values. [`ConnectionConfig`] is the serde form the TOML loader
//! embeds; [`Connection`] is the checked form the engine uses.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use dataplane::crypto::Key;
use dataplane::sa::Mode;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::error::IkeError;
use super::proposal::{
    default_esp_proposals, default_ike_proposals, parse_esp_proposals, parse_ike_proposals,
    EspProposal, IkeProposal,
};
use super::wire::id_type;

/// What happens with a connection when it is loaded (seed 000 "connection mode").
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
    type Err = IkeError;
    fn from_str(s: &str) -> Result<Self, IkeError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "start" | "automatic" | "auto" => Self::Start,
            "trap" | "route" | "on-demand" | "ondemand" => Self::Trap,
            "add" | "listen" | "respond" => Self::Add,
            "none" | "manual" | "manual-start" | "ignore" => Self::None,
            o => {
                return Err(IkeError::Config(format!(
                    "start action {o:?} (expected start/automatic, trap/on-demand, add/listen, none/manual)"
                )))
            }
        })
    }
}

/// What to do when DPD (or any exchange) finds the peer dead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DpdAction {
    /// Remove the SAs and the policies: traffic is no longer protected nor held.
    Clear,
    /// Remove the SAs, keep trap policies so that traffic is held and renegotiates
    /// (seed 000's default "hold route").
    #[default]
    Hold,
    /// Remove the SAs and initiate again at once.
    Restart,
}

impl FromStr for DpdAction {
    type Err = IkeError;
    fn from_str(s: &str) -> Result<Self, IkeError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "clear" | "none" => Self::Clear,
            "hold" | "trap" => Self::Hold,
            "restart" | "start" => Self::Restart,
            o => {
                return Err(IkeError::Config(format!(
                    "dpd action {o:?} (expected clear, hold, restart)"
                )))
            }
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
    type Err = IkeError;
    fn from_str(s: &str) -> Result<Self, IkeError> {
        match s {
            "%defaultroute" => Ok(Self::DefaultRoute),
            "%any" | "" => Ok(Self::Any),
            a => a
                .parse()
                .map(Self::Addr)
                .map_err(|_| IkeError::Config(format!("local address {a:?}"))),
        }
    }
}
impl FromStr for RemoteAddr {
    type Err = IkeError;
    fn from_str(s: &str) -> Result<Self, IkeError> {
        match s {
            "%any" | "" => Ok(Self::Any),
            a => a
                .parse()
                .map(Self::Addr)
                .map_err(|_| IkeError::Config(format!("remote address {a:?}"))),
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
            id_type::DER_ASN1_DN => {
                crate::pki::dn::display(data); // parses or shows <DN hex>
                Self::Dn(data.to_vec())
            }
            _ => return None,
        })
    }
}

impl FromStr for Identity {
    type Err = IkeError;
    fn from_str(s: &str) -> Result<Self, IkeError> {
        if let Some(hex) = s.strip_prefix("@#") {
            let mut v = Vec::new();
            let b = hex.as_bytes();
            if b.len() % 2 != 0 {
                return Err(IkeError::Config(format!("key id {s:?}: odd hex length")));
            }
            for c in b.chunks(2) {
                let h = std::str::from_utf8(c).unwrap_or("zz");
                v.push(
                    u8::from_str_radix(h, 16)
                        .map_err(|_| IkeError::Config(format!("key id {s:?}: bad hex")))?,
                );
            }
            return Ok(Self::KeyId(v));
        }
        if let Some(f) = s.strip_prefix('@') {
            if f.is_empty() {
                return Err(IkeError::Config("empty FQDN identity".into()));
            }
            return Ok(Self::Fqdn(f.to_string()));
        }
        if let Ok(a) = s.parse::<IpAddr>() {
            return Ok(Self::from_ip(a));
        }
        if crate::pki::dn::looks_like_dn(s) {
            return crate::pki::dn::parse(s)
                .map(Self::Dn)
                .map_err(|e| IkeError::Config(format!("distinguished name {s:?}: {e}")));
        }
        if s.is_empty() {
            return Err(IkeError::Config("empty identity".into()));
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
            Self::KeyId(k) => {
                write!(f, "@#")?;
                for b in k {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
            Self::Dn(d) => f.write_str(&crate::pki::dn::display(d)),
        }
    }
}

impl Identity {
    /// Does a received identity `got` satisfy this configured one? Equal, or
    /// for a DN strongSwan's match with `*` wildcards.
    pub fn matches(&self, got: &Identity) -> bool {
        match (self, got) {
            (Self::Dn(p), Self::Dn(g)) => crate::pki::dn::matches(p, g),
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

/// Default IKE SA lifetime (seed 000: 28800 s).
pub const DEFAULT_IKE_LIFETIME: Duration = Duration::from_secs(28800);
/// Default child SA lifetime (seed 000: 3600 s).
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
    /// Pre-shared key (used when a side authenticates with `psk`).
    pub psk: Key,
    /// How we authenticate (default: the pre-shared key).
    pub local_auth: super::auth_config::LocalAuth,
    /// How the peer must authenticate (default: the pre-shared key).
    pub remote_auth: super::auth_config::RemoteAuth,
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
    /// Allow legacy ESP algorithms (3DES, MD5).
    pub allow_legacy: bool,
}

impl Connection {
    /// A connection with the seeds' defaults: automatic keying with PSK, IKE 28800 s,
    /// child 3600 s, PFS yes, rekey yes, DPD off (hold when enabled).
    pub fn new(name: &str, local: LocalAddr, remote: RemoteAddr, psk: &[u8]) -> Self {
        Connection {
            name: name.to_string(),
            local_addr: local,
            remote_addr: remote,
            local_id: None,
            remote_id: None,
            psk: Key::from_slice(psk),
            local_auth: Default::default(),
            remote_auth: Default::default(),
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
            replay_window: dataplane::sa::DEFAULT_REPLAY_WINDOW,
            force_encap: false,
            allow_legacy: false,
        }
    }

    /// Checks the values that do not depend on other connections.
    pub fn validate(&self) -> Result<(), IkeError> {
        let e = |m: String| Err(IkeError::Config(format!("connection {:?}: {m}", self.name)));
        if self.name.is_empty() {
            return e("empty name".into());
        }
        let psk_used = matches!(self.local_auth, super::auth_config::LocalAuth::Psk)
            || matches!(self.remote_auth, super::auth_config::RemoteAuth::Psk);
        if psk_used && self.psk.len() < 8 {
            return e("pre-shared key shorter than 8 bytes".into());
        }
        if let (super::auth_config::LocalAuth::Cert { key, chain, .. }, id) =
            (&self.local_auth, &self.local_id)
        {
            let Some(c) = chain.first() else {
                return e("certificate authentication without a certificate".into());
            };
            if c.public_key() != key.public_key() {
                return e(format!(
                    "the private key ({}) does not belong to the certificate \"{}\" ({})",
                    key.public_key().fingerprint(),
                    c.subject_str(),
                    c.public_key().fingerprint()
                ));
            }
            if let Some(id) = id {
                if !c.has_identity(id) {
                    return e(format!(
                        "local identity {id} is not in the certificate \"{}\" (use its subject DN or a subjectAltName)",
                        c.subject_str()
                    ));
                }
            }
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

/// The serde form of a connection, as written in the TOML config:
///
/// ```toml
/// [[ike]]
/// name = "site-b"
/// local = "%defaultroute"          # or an address
/// remote = "192.0.2.2"             # or "%any"
/// local_id = "@gw-a.example"       # optional
/// remote_id = "192.0.2.2"          # optional, "%any" = any
/// psk = "..."                      # or filled from a secrets file by the loader
/// ike = "aes128gcm16-prfsha256-ecp256, AES SHA 14"
/// esp = "aes128gcm16, aes256-sha256"
/// start = "start"                  # start|automatic, trap|on-demand, add|listen, none|manual
/// dpd_delay = 30                   # seconds, 0 = off
/// dpd_timeout = 120
/// dpd_action = "hold"              # clear, hold, restart
/// rekey = true
/// pfs = true
/// ike_lifetime = 28800
/// lifetime = 3600
/// local_subnets = ["10.1.0.0/24", "10.3.0.0/24"]
/// remote_subnets = ["10.2.0.0/24"]
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionConfig {
    /// Name.
    pub name: String,
    /// Local address, `%defaultroute` or `%any`.
    pub local: String,
    /// Remote address or `%any`.
    pub remote: String,
    /// Local identity.
    pub local_id: Option<String>,
    /// Remote identity (`%any` = any).
    pub remote_id: Option<String>,
    /// Pre-shared key (the loader may take it from a secrets file instead).
    #[serde(skip_serializing)]
    pub psk: Option<String>,
    /// IKE proposals.
    pub ike: Option<String>,
    /// ESP proposals.
    pub esp: Option<String>,
    /// Start action.
    pub start: Option<String>,
    /// DPD delay in seconds (0 = off).
    pub dpd_delay: Option<u64>,
    /// DPD timeout in seconds.
    pub dpd_timeout: Option<u64>,
    /// DPD action.
    pub dpd_action: Option<String>,
    /// Rekey.
    pub rekey: Option<bool>,
    /// PFS.
    pub pfs: Option<bool>,
    /// IKE lifetime, seconds.
    pub ike_lifetime: Option<u64>,
    /// Child lifetime, seconds.
    pub lifetime: Option<u64>,
    /// Rekey margin, seconds.
    pub margin: Option<u64>,
    /// Child byte lifetime.
    pub life_bytes: Option<u64>,
    /// Child packet lifetime.
    pub life_packets: Option<u64>,
    /// Local subnets.
    pub local_subnets: Vec<IpNet>,
    /// Remote subnets.
    pub remote_subnets: Vec<IpNet>,
    /// "tunnel" (default) or "transport".
    pub mode: Option<String>,
    /// Force UDP encapsulation.
    pub encap: Option<bool>,
    /// Allow legacy ESP algorithms.
    pub allow_legacy: Option<bool>,
    /// Anti-replay window.
    pub replay_window: Option<u32>,
}

impl ConnectionConfig {
    /// Checks and converts; `psk` overrides the inline key (from a secrets file).
    pub fn to_connection(
        &self,
        tunnel_id: u32,
        psk: Option<&[u8]>,
    ) -> Result<Connection, IkeError> {
        let key = match (psk, &self.psk) {
            (Some(k), _) => k.to_vec(),
            (None, Some(s)) => s.as_bytes().to_vec(),
            (None, None) => {
                return Err(IkeError::Config(format!(
                    "connection {:?}: no pre-shared key",
                    self.name
                )))
            }
        };
        let mut c = Connection::new(&self.name, self.local.parse()?, self.remote.parse()?, &key);
        c.tunnel_id = tunnel_id;
        c.local_id = self.local_id.as_deref().map(str::parse).transpose()?;
        c.remote_id = match self.remote_id.as_deref() {
            None | Some("%any") => None,
            Some(s) => Some(s.parse()?),
        };
        if c.remote_id.is_none() && self.remote_id.is_none() {
            if let RemoteAddr::Addr(a) = c.remote_addr {
                c.remote_id = Some(Identity::from_ip(a));
            }
        }
        if let Some(s) = &self.ike {
            c.ike_proposals = parse_ike_proposals(s)?;
        }
        if let Some(s) = &self.esp {
            c.esp_proposals = parse_esp_proposals(s)?;
        }
        if let Some(s) = &self.start {
            c.start_action = s.parse()?;
        }
        if let Some(d) = self.dpd_delay {
            c.dpd.delay = Duration::from_secs(d);
        }
        if let Some(d) = self.dpd_timeout {
            c.dpd.timeout = Duration::from_secs(d);
        }
        if let Some(a) = &self.dpd_action {
            c.dpd.action = a.parse()?;
        }
        if let Some(r) = self.rekey {
            c.rekey = r;
        }
        if let Some(p) = self.pfs {
            c.pfs = p;
        }
        if let Some(l) = self.ike_lifetime {
            c.ike_lifetime = Duration::from_secs(l);
        }
        if let Some(l) = self.lifetime {
            c.child_lifetime = Duration::from_secs(l);
        }
        if let Some(m) = self.margin {
            c.margin = Duration::from_secs(m);
        }
        c.life_bytes = self.life_bytes.unwrap_or(0);
        c.life_packets = self.life_packets.unwrap_or(0);
        c.local_ts = self.local_subnets.clone();
        c.remote_ts = self.remote_subnets.clone();
        c.mode = match self.mode.as_deref() {
            None | Some("tunnel") => Mode::Tunnel,
            Some("transport") => Mode::Transport,
            Some(m) => {
                return Err(IkeError::Config(format!(
                    "connection {:?}: mode {m:?} (tunnel or transport)",
                    self.name
                )))
            }
        };
        c.force_encap = self.encap.unwrap_or(false);
        c.allow_legacy = self.allow_legacy.unwrap_or(false);
        if let Some(w) = self.replay_window {
            c.replay_window = w;
        }
        c.validate()?;
        Ok(c)
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

    #[test]
    fn toml_form() {
        let t = r#"
            name = "rw"
            local = "%defaultroute"
            remote = "%any"
            local_id = "@clearos"
            remote_id = "@roadwarrior"
            psk = "Letmein99-long-enough"
            ike = "AES SHA 14"
            esp = "AES SHA 14"
            start = "listen"
            dpd_delay = 30
            dpd_action = "clear"
            local_subnets = ["192.168.1.0/24", "192.168.5.0/24"]
        "#;
        let cc: ConnectionConfig = toml::from_str(t).unwrap();
        let c = cc.to_connection(3, None).unwrap();
        assert_eq!(c.local_addr, LocalAddr::DefaultRoute);
        assert_eq!(c.remote_addr, RemoteAddr::Any);
        assert_eq!(c.remote_id, Some(Identity::Fqdn("roadwarrior".into())));
        assert_eq!(c.dpd.action, DpdAction::Clear);
        assert_eq!(c.dpd.delay, Duration::from_secs(30));
        assert_eq!(c.ike_lifetime, DEFAULT_IKE_LIFETIME);
        assert_eq!(c.child_lifetime, DEFAULT_CHILD_LIFETIME);
        assert!(c.pfs && c.rekey);
        assert_eq!(c.local_ts.len(), 2);
        let bad = ConnectionConfig {
            start: Some("start".into()),
            ..cc
        };
        assert!(bad.to_connection(3, None).is_err(), "%any cannot initiate");
    }
}
