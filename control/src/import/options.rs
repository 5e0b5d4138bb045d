//! The one table of what each `ipsec.conf` option becomes in espresso.
//! Rows marked `Mapped` are carried over by [`super::conn`]; the others say
//! why not.

/// What an option becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Map {
    /// Carried over by [`super::conn`] (the field it feeds).
    Mapped(&'static str),
    /// Needs IKEv1 (mapped when [`super::features::IKEV1`] is on).
    Ikev1(&'static str),
    /// Refused: the connection is not written as running configuration.
    Refuse(&'static str),
    /// Not carried over (espresso has no equivalent); the connection still runs.
    NotCarried(&'static str),
    /// No effect in espresso (the old stack needed it, espresso does it otherwise).
    NoEffect(&'static str),
}

use Map::*;

const NO_CFG_PAYLOAD: &str =
    "espresso has no configuration payload / mode config (virtual IPs, DNS for clients)";
const KERNEL_STACK: &str =
    "concerned the kernel IPsec stack (KLIPS/NETKEY); espresso's dataplane does not use it";
const LOGGING: &str = "espresso logs to stderr (journal) and keeps lines for `espresso log`; ESPRESSO_LOG sets the level";
const ROUTING: &str =
    "espresso forwards by the kernel routing table (read over netlink): set the route there";
const XAUTH: &str = "XAUTH and mode config are IKEv1 extensions espresso does not implement";

/// `conn` options (both sides: see [`SIDE`]).
pub const CONN: &[(&str, Map)] = &[
    ("also", Mapped("also= (resolved by the importer)")),
    ("alsoflip", Mapped("alsoflip= (resolved by the importer, left and right swapped)")),
    ("auto", Mapped("start")),
    ("type", Mapped("mode, or a [[policy]] for pass/drop")),
    ("authby", Mapped("psk (secret); rsasig/pubkey need certificates")),
    ("ike", Mapped("ike")),
    ("ikealg", Mapped("ike")),
    ("esp", Mapped("esp (suite of manual tunnels)")),
    ("phase2alg", Mapped("esp")),
    ("phase2", Mapped("esp only; ah is refused")),
    ("pfs", Mapped("pfs")),
    ("pfsgroup", Mapped("DH group added to the esp proposals")),
    ("ikelifetime", Mapped("ike_lifetime")),
    ("keylife", Mapped("lifetime")),
    ("salifetime", Mapped("lifetime")),
    ("lifetime", Mapped("lifetime")),
    ("rekeymargin", Mapped("margin")),
    ("margintime", Mapped("margin")),
    ("rekeyfuzz", Mapped("fuzz")),
    ("rekey", Mapped("rekey")),
    ("lifebytes", Mapped("life_bytes")),
    ("lifepackets", Mapped("life_packets")),
    ("dpddelay", Mapped("dpd_delay")),
    ("dpdtimeout", Mapped("dpd_timeout")),
    ("dpdaction", Mapped("dpd_action")),
    ("forceencaps", Mapped("encap")),
    ("encapsulation", Mapped("encap")),
    ("compress", Mapped("(no IPComp: compress=no only)")),
    ("replay_window", Mapped("replay_window")),
    ("replay-window", Mapped("replay_window")),
    ("esn", Mapped("esn/noesn in the esp proposals")),
    ("keyexchange", Mapped("IKEv2 (ikev2), else keyexchange behind the IKEv1 switch")),
    ("ikev2", Mapped("IKEv2 (insist), else ikev2 behind the IKEv1 switch")),
    ("ikev1", Mapped("ikev1=no: IKEv2 only")),
    // manual keying (FreeS/WAN)
    ("spi", Mapped("spi_in/spi_out")),
    ("spibase", Mapped("spi_in/spi_out as ipsec_manual derived them")),
    ("espenckey", Mapped("enc_key (secrets file)")),
    ("espauthkey", Mapped("auth_key (secrets file)")),
    ("espreplay_window", Mapped("replay_window")),
    ("ah", Refuse("espresso has no AH (RFC 4302): use ESP with an integrity algorithm (esp=aes128-sha256) on both sides")),
    ("ahkey", Refuse("espresso has no AH (RFC 4302)")),
    ("ahreplay_window", Refuse("espresso has no AH (RFC 4302)")),
    ("auth", Mapped("auth=esp; auth=ah is refused")),
    // IKEv1-only
    ("aggrmode", Ikev1("aggressive")),
    ("aggressive", Ikev1("aggressive")),
    ("remote_peer_type", Ikev1("Cisco IKEv1 interoperability")),
    ("cisco_unity", Ikev1("Cisco Unity (IKEv1)")),
    ("modecfgpull", NotCarried(XAUTH)),
    ("modecfgdns1", NotCarried(XAUTH)),
    ("modecfgdns2", NotCarried(XAUTH)),
    ("modecfgdns", NotCarried(XAUTH)),
    ("modecfgbanner", NotCarried(XAUTH)),
    ("modecfgdomain", NotCarried(XAUTH)),
    ("xauth_identity", NotCarried(XAUTH)),
    ("xauth", NotCarried(XAUTH)),
    ("xauthby", NotCarried(XAUTH)),
    ("xauthfail", NotCarried(XAUTH)),
    ("nat-ikev1-method", Ikev1("IKEv1 NAT-T method")),
    ("ike_frag", NotCarried("IKE fragmentation is not implemented")),
    ("fragmentation", NotCarried("IKE fragmentation is not implemented")),
    // other
    ("keyingtries", NotCarried("espresso retries an initiation a fixed number of times, then waits for traffic (trap) or `espresso up`")),
    ("reauth", NotCarried("espresso rekeys IKE SAs in place (no reauthentication)")),
    ("mobike", Mapped("mobike")),
    ("closeaction", NotCarried("no action when the peer closes the connection: it stays down until traffic (trap), `espresso up` or the peer initiates")),
    ("inactivity", NotCarried("no inactivity timeout")),
    ("installpolicy", NoEffect(KERNEL_STACK)),
    ("reqid", NoEffect(KERNEL_STACK)),
    ("mark", NotCarried("no firewall marks: the dataplane does not use the kernel")),
    ("mark_in", NotCarried("no firewall marks")),
    ("mark_out", NotCarried("no firewall marks")),
    ("tfc", NotCarried("traffic flow confidentiality padding is not implemented")),
    ("eap_identity", NotCarried("EAP is not implemented")),
    ("aaa_identity", NotCarried("EAP is not implemented")),
    ("failureshunt", NotCarried("when a negotiation fails the connection's traffic is held (discarded), never sent in the clear")),
    ("negotiationshunt", NotCarried("traffic is held (discarded) while negotiating")),
    ("disablearrivalcheck", NoEffect("the dataplane always checks that decrypted packets match the SA's selectors")),
    ("overlapip", NotCarried("overlapping virtual IPs are not implemented")),
    ("sareftrack", NoEffect(KERNEL_STACK)),
    ("nm_configured", NoEffect("NetworkManager integration of the old stack")),
    ("loopback", NoEffect(KERNEL_STACK)),
    ("labeled_ipsec", NotCarried("labelled IPsec (SELinux) is not implemented")),
    ("policy_label", NotCarried("labelled IPsec (SELinux) is not implemented")),
    ("metric", NoEffect(ROUTING)),
    ("mtu", NoEffect("the dataplane computes the tunnel MTU from the link MTU and the ESP overhead (PMTU)")),
    ("connaddrfamily", NoEffect("the address family follows the addresses")),
    ("sha2_truncbug", NotCarried("espresso truncates HMAC-SHA-256 to 128 bits as RFC 4868 requires; a peer with the 96-bit bug cannot interoperate")),
    ("sha2-truncbug", NotCarried("espresso truncates HMAC-SHA-256 to 128 bits as RFC 4868 requires; a peer with the 96-bit bug cannot interoperate")),
    ("ikepad", NoEffect("IKEv1 padding")),
    ("narrowing", NoEffect("espresso accepts narrowed traffic selectors from the peer (RFC 7296 §2.9)")),
    ("ikedscp", NotCarried("no DSCP on IKE packets")),
    ("priority", NoEffect("connection policies have fixed priorities")),
    ("dpdaction_restart_by_peer", NotCarried("restart_by_peer is treated as restart")),
    ("decap-dscp", NoEffect("copy_dscp is on by default")),
    ("nopmtudisc", NoEffect("PMTU is computed by the dataplane")),
    ("encapsulation_port", NotCarried("IKE and NAT-T use UDP 500 and 4500")),
    ("me_peerid", NotCarried("strongSwan mediation is not implemented")),
    ("mediation", NotCarried("strongSwan mediation is not implemented")),
    ("mediated_by", NotCarried("strongSwan mediation is not implemented")),
    ("ppk", NotCarried("post-quantum preshared keys are not implemented")),
    ("ipsec-interface", NotCarried("no XFRM interfaces: the dataplane owns the ports")),
    ("vti-interface", NotCarried("no VTI interfaces: the dataplane owns the ports")),
    ("vti-routing", NotCarried("no VTI interfaces")),
    ("vti-shared", NotCarried("no VTI interfaces")),
    ("marginbytes", NotCarried("byte lifetimes rekey at 85-90 % (fixed)")),
    ("marginpackets", NotCarried("packet lifetimes rekey at 85-90 % (fixed)")),
];

/// `left*`/`right*` options, by the part after `left`/`right`.
pub const SIDE: &[(&str, Map)] = &[
    ("", Mapped("local / remote")),
    ("subnet", Mapped("local_subnets / remote_subnets")),
    ("subnets", Mapped("local_subnets / remote_subnets")),
    ("id", Mapped("local_id / remote_id")),
    ("auth", Mapped("psk; pubkey needs certificates")),
    ("espenckey", Mapped("enc_key_in / enc_key_out")),
    ("espauthkey", Mapped("auth_key_in / auth_key_out")),
    ("espspi", Mapped("spi_in / spi_out")),
    ("spi", Mapped("spi_in / spi_out")),
    ("ahkey", Refuse("espresso has no AH (RFC 4302)")),
    ("ahspi", Refuse("espresso has no AH (RFC 4302)")),
    ("rsasigkey", Mapped("local_rsasigkey / remote_rsasigkey")),
    ("rsasigkey2", NotCarried("a second RSA key (key rollover) is not implemented: the first one is used")),
    ("rsapubkey", NotCarried("raw public keys are read from leftrsasigkey/rightrsasigkey (0s form) only")),
    ("pubkey", NotCarried("raw public keys are read from leftrsasigkey/rightrsasigkey (0s form) only")),
    ("sigkey", NotCarried("raw public keys are read from leftrsasigkey/rightrsasigkey (0s form) only")),
    ("cert", Mapped("local_cert")),
    ("cert2", NotCarried("a second certificate (RFC 4739) is not implemented")),
    ("ca", Mapped("remote_ca")),
    ("ca2", NotCarried("a second authentication round (RFC 4739) is not implemented")),
    ("sendcert", NoEffect("espresso sends its certificate (and the chain local_cert holds) whenever it authenticates with one")),
    ("certpolicy", NotCarried("certificate policy OIDs are not checked")),
    ("groups", NotCarried("group membership from attribute certificates is not implemented")),
    ("auth2", NotCarried("a second authentication round (RFC 4739) is not implemented")),
    ("id2", NotCarried("a second authentication round (RFC 4739) is not implemented")),
    ("nexthop", NoEffect(ROUTING)),
    ("sourceip", NotCarried("no source address for the gateway's own traffic / virtual IPs: add `ip route ... src ADDR` or a policy")),
    ("updown", NotCarried("no updown scripts: espresso installs its policies in the dataplane itself")),
    ("firewall", NoEffect("the dataplane does not use the kernel firewall")),
    ("hostaccess", NoEffect("the dataplane does not use the kernel firewall")),
    ("protoport", NotCarried("traffic selectors with protocol/port are not implemented for IKE connections: the whole subnets are protected")),
    ("subnetwithin", NotCarried("subnetwithin (FreeS/WAN) is not implemented")),
    ("ikeport", NotCarried("IKE runs on UDP 500 and 4500")),
    ("dns", NotCarried(NO_CFG_PAYLOAD)),
    ("addresspool", NotCarried(NO_CFG_PAYLOAD)),
    ("modecfgserver", NotCarried(XAUTH)),
    ("modecfgclient", NotCarried(XAUTH)),
    ("xauthserver", NotCarried(XAUTH)),
    ("xauthclient", NotCarried(XAUTH)),
    ("xauthusername", NotCarried(XAUTH)),
    ("username", NotCarried(XAUTH)),
    ("allowany", NotCarried("%any peers are configured with right=%any")),
    ("vti", NotCarried("no VTI interfaces")),
    ("interface-ip", NotCarried("no XFRM interfaces")),
    ("cat", NotCarried("client address translation is not implemented")),
];

/// `config setup` options.
pub const SETUP: &[(&str, Map)] = &[
    ("manualstart", Mapped("start = \"start\" for the listed manual tunnels")),
    ("plutoload", Mapped("loaded connections (FreeS/WAN 1.x)")),
    ("plutostart", Mapped("started connections (FreeS/WAN 1.x)")),
    ("interfaces", NoEffect(KERNEL_STACK)),
    ("protostack", NoEffect(KERNEL_STACK)),
    ("klipsdebug", NoEffect(LOGGING)),
    ("plutodebug", NoEffect(LOGGING)),
    ("charondebug", NoEffect(LOGGING)),
    ("syslog", NoEffect(LOGGING)),
    ("plutostderrlog", NoEffect(LOGGING)),
    ("logfile", NoEffect(LOGGING)),
    ("logtime", NoEffect(LOGGING)),
    ("logappend", NoEffect(LOGGING)),
    ("logip", NoEffect(LOGGING)),
    ("dumpdir", NoEffect("core dumps: systemd's coredump settings apply")),
    ("plutoopts", NoEffect("pluto command-line options")),
    ("plutowait", NoEffect("connections are negotiated in parallel")),
    ("prepluto", NoEffect("no pre/post scripts")),
    ("postpluto", NoEffect("no pre/post scripts")),
    ("plutorestartoncrash", NoEffect("systemd restarts espresso (Restart=on-failure)")),
    ("forwardcontrol", NoEffect("the dataplane forwards; espresso-dataplane --configure-kernel turns kernel forwarding of ESP off")),
    ("rp_filter", NoEffect(KERNEL_STACK)),
    ("fragicmp", NoEffect("the dataplane sends ICMP fragmentation needed / packet too big itself")),
    ("hidetos", NoEffect("copy_dscp decides whether DSCP is copied")),
    ("overridemtu", NoEffect("PMTU is computed by the dataplane")),
    ("nat_traversal", NoEffect("espresso detects NAT itself (RFC 7296 §2.23) and encapsulates in UDP when needed")),
    ("nat-traversal", NoEffect("espresso detects NAT itself (RFC 7296 §2.23)")),
    ("disable_port_floating", NoEffect("NAT-T port floating is part of IKEv2")),
    ("force_keepalive", NotCarried("NAT keepalives are sent only when a NAT is detected")),
    ("keep_alive", NotCarried("the NAT keepalive interval is fixed (20 s)")),
    ("keep-alive", NotCarried("the NAT keepalive interval is fixed (20 s)")),
    ("virtual_private", NotCarried(NO_CFG_PAYLOAD)),
    ("virtual-private", NotCarried(NO_CFG_PAYLOAD)),
    ("oe", NotCarried("opportunistic encryption is not implemented")),
    ("opportunistic", NotCarried("opportunistic encryption is not implemented")),
    ("uniqueids", NoEffect("a new IKE SA from the same peer and identity replaces the old one")),
    ("strictcrlpolicy", NotCarried("CRLs are read from the files in crls; fetching CRLs and OCSP are not implemented")),
    ("cachecrls", NoEffect("CRLs are read from the files in crls at load and reload")),
    ("crlcheckinterval", NoEffect("CRLs are read from the files in crls at load and reload")),
    ("nocrsend", NoEffect("espresso sends CERTREQ for the CAs it trusts")),
    ("myid", NotCarried("%myid is not implemented: write leftid= per connection")),
    ("listen", NoEffect("IKE listens on every address of the gateway")),
    ("nhelpers", NoEffect("IKE runs on one thread of the control process")),
    ("ikev1-policy", Ikev1("IKEv1 policy")),
    ("ike_socket_bufsize", NoEffect("socket buffer sizes are the kernel defaults")),
    ("secretsfile", Mapped("the secrets file (give it on the command line)")),
    ("ipsecdir", NoEffect("the directory of the old stack")),
    ("nssdir", NotCarried("the NSS certificate database: export certificates and keys to files (local_cert, local_key, cacerts)")),
    ("seedbits", NoEffect("espresso seeds from the operating system")),
    ("ddos-mode", NoEffect("espresso answers with cookies under load (RFC 7296 §2.6)")),
    ("ddos-ike-threshold", NoEffect("espresso answers with cookies under load")),
    ("max-halfopen-ike", NoEffect("half-open IKE SAs are limited by espresso's own bound")),
    ("shuntlifetime", NoEffect("held traffic is discarded while a connection is down")),
    ("keep_alive_interval", NotCarried("the NAT keepalive interval is fixed (20 s)")),
];

/// Looks an option of a `conn` up; `left*`/`right*` by their suffix.
pub fn conn_option(key: &str) -> Option<Map> {
    if let Some((_, m)) = CONN.iter().find(|(k, _)| *k == key) {
        return Some(*m);
    }
    let suffix = key
        .strip_prefix("left")
        .or_else(|| key.strip_prefix("right"))?;
    SIDE.iter().find(|(k, _)| *k == suffix).map(|(_, m)| *m)
}

/// Looks an option of `config setup` up.
pub fn setup_option(key: &str) -> Option<Map> {
    SETUP.iter().find(|(k, _)| *k == key).map(|(_, m)| *m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(conn_option("leftcert"), Some(Mapped("local_cert")));
        assert_eq!(
            conn_option("rightsubnets"),
            Some(Mapped("local_subnets / remote_subnets"))
        );
        assert!(matches!(conn_option("ah"), Some(Refuse(_))));
        assert!(matches!(conn_option("aggrmode"), Some(Ikev1(_))));
        assert_eq!(conn_option("nonsense"), None);
        assert!(matches!(setup_option("plutodebug"), Some(NoEffect(_))));
        // no key twice
        for t in [CONN, SIDE, SETUP] {
            for (i, (k, _)) in t.iter().enumerate() {
                assert!(!t[i + 1..].iter().any(|(k2, _)| k2 == k), "{k} twice");
            }
        }
    }
}
