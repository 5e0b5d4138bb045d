//! The ipsec.conf [`Dialect`]: which implementation wrote the file.

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
