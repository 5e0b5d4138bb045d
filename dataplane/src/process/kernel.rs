//! What the dataplane changes in its network namespace's kernel, and undoes:
//! forwarding off and nftables tables (`--configure-kernel`: `inet
//! espresso_dp`, and with AF_PACKET ports `netdev espresso_dp` on their
//! ingress hook), and for the TUN exception path (`--tun`) a policy rule and
//! routing table 220 for the gateway's own traffic toward protected subnets.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::sa::{PolicyAction, Spd};
use crate::worker::fib::Fib;

/// Name of the nftables tables the dataplane owns (`inet espresso_dp`, and
/// `netdev espresso_dp` for the ingress hook of its AF_PACKET ports).
pub const NFT_TABLE: &str = "espresso_dp";

/// Routing table for the gateway's own traffic toward protected subnets.
pub const TUN_TABLE: &str = "220";

/// The nftables ruleset `--configure-kernel` installs.
///
/// ESP and ESP-in-UDP are for the dataplane: the kernel (which has no ESP
/// here, or must not use it) must not answer them with ICMP errors. IKE on
/// 4500 (non-ESP marker: four zero bytes) still reaches sockets. The kernel
/// also receives its own copy of every transit packet (the dataplane's
/// AF_PACKET sockets see copies): drop those copies before the kernel routes
/// them (it would only find forwarding off and discard them, at the cost of
/// a route lookup and a dst allocation each). ESP (protocol 50) is dropped
/// first, before any lookup: ESP to the gateway itself would otherwise cost
/// the `fib` match, the kernel's input route lookup with source validation
/// and local delivery before the input chain dropped it (measured with perf
/// in bench/e2e/iperf.sh: more than the encryption itself, charged to the
/// sending worker, since a veth delivers in the sender's context). ESP in
/// UDP 4500 (non-ESP marker nonzero) that is not a fragment goes the same
/// way, for the same reason (NAT-T peers, strongSwan's libipsec). The
/// input chain still drops what prerouting cannot name: reassembled IPv6
/// ESP (a later fragment's l4proto is the fragment header) and fragmented
/// ESP-in-UDP, which is matched on its UDP header after reassembly so that
/// no later fragment waits in the kernel's reassembly queue for a dropped
/// first one.
pub const NFT_RULES: &str = "table inet espresso_dp {\n\
    \tchain pre {\n\
    \t\ttype filter hook prerouting priority -300; policy accept;\n\
    \t\tmeta l4proto esp drop\n\
    \t\tip frag-off & 0x3fff == 0 udp dport 4500 udp length > 11 @th,64,32 != 0 drop\n\
    \t\tip6 nexthdr udp udp dport 4500 udp length > 11 @th,64,32 != 0 drop\n\
    \t\tmeta pkttype host fib daddr type != local drop\n\
    \t}\n\
    \tchain input {\n\
    \t\ttype filter hook input priority -10; policy accept;\n\
    \t\tmeta l4proto esp drop\n\
    \t\tudp dport 4500 udp length 9 @th,64,8 0xff drop\n\
    \t\tudp dport 4500 udp length > 11 @th,64,32 != 0 drop\n\
    \t}\n\
    }\n";

/// The ingress table on the dataplane's AF_PACKET ports: the kernel's own
/// copy of a transit frame (to the gateway's MAC, to an address that is not
/// the gateway's) dropped right after the AF_PACKET taps took theirs, before
/// the IP layer sees it. The `inet` table's prerouting rule drops the same
/// copies one step later, after `ip_rcv` and the prerouting hook; here
/// nothing but this rule's address lookup is spent on them. That matters
/// because these copies are processed in softirq on the worker's core (a
/// veth delivers in the sender's context; RPS puts it on the configured
/// core), ahead of the worker: bench/e2e/fwd_mpps.sh (64 B, offered
/// 0.7 Mpps, more than one worker forwards) forwarded 1.3-2.8x as many
/// packets with this table as main without it (V2 ring, 8 rounds of three
/// same-run comparisons; bench/results/gateway.md, 2026-12-07). Everything else (ARP/ND, broadcast and multicast, anything
/// to a local address: IKE, ICMP, ESP to the gateway) goes on to the IP
/// layer and the `inet` table as before. `{devices}` is the quoted,
/// comma-separated list of port names.
const NFT_INGRESS: &str = "table netdev espresso_dp {\n\
    \tchain transit {\n\
    \t\ttype filter hook ingress devices = { {devices} } priority -500; policy accept;\n\
    \t\tmeta pkttype host fib daddr type != local drop\n\
    \t}\n\
    }\n";

/// The ingress table's ruleset for `ports` (kernel interface names), or None
/// when there are none or a name cannot be quoted for nft.
pub fn ingress_rules(ports: &[&str]) -> Option<String> {
    let mut names: Vec<&str> = Vec::new();
    for p in ports {
        if p.is_empty() || p.contains(['"', '\\', '\n']) {
            return None;
        }
        if !names.contains(p) {
            names.push(p);
        }
    }
    if names.is_empty() {
        return None;
    }
    let list = names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    Some(NFT_INGRESS.replace("{devices}", &list))
}

/// Why the kernel could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A sysctl could not be written.
    #[error("{path}: {source}")]
    Sysctl {
        /// The /proc/sys path.
        path: String,
        /// OS error.
        source: std::io::Error,
    },
    /// `nft` could not be run.
    #[error("nft: {0} (install nftables: scripts/setup.sh)")]
    NftSpawn(std::io::Error),
    /// `nft` could not be fed the ruleset.
    #[error("nft: {0}")]
    NftIo(std::io::Error),
    /// `nft -f` refused the ruleset.
    #[error("nft -f failed: {0}")]
    NftFailed(std::process::ExitStatus),
    /// An `ip` command failed.
    #[error("{0} failed")]
    Ip(String),
}

/// Forwarding off and the nftables tables in place (the ingress table on
/// `ingress_ports`, the kernel interfaces the dataplane reads with
/// AF_PACKET; none for DPDK ports); [`NftTable`] (returned) deletes them
/// when dropped. A kernel or nft that refuses the ingress table (netdev
/// `fib` needs Linux 4.13, several devices per hook 5.5) only costs the
/// early drop: a warning, and the `inet` table still does the work.
pub fn configure(ingress_ports: &[&str]) -> Result<NftTable, KernelError> {
    for (p, v) in [
        ("/proc/sys/net/ipv4/ip_forward", "0"),
        ("/proc/sys/net/ipv6/conf/all/forwarding", "0"),
    ] {
        if Path::new(p).exists() {
            fs::write(p, v).map_err(|source| KernelError::Sysctl {
                path: p.to_string(),
                source,
            })?;
        }
    }
    for family in NFT_FAMILIES {
        let _ = Command::new("nft")
            .args(["delete", "table", family, NFT_TABLE])
            .stderr(Stdio::null())
            .status();
    }
    nft_load(NFT_RULES)?;
    match ingress_rules(ingress_ports) {
        Some(rules) => match nft_load(&rules) {
            Ok(()) => tracing::info!(
                "nftables table netdev {NFT_TABLE}: transit frames' kernel copies dropped at ingress on {}",
                ingress_ports.join(", ")
            ),
            Err(e) => tracing::warn!(
                "nftables table netdev {NFT_TABLE} not installed ({e}): the kernel's copies of \
                 transit frames are dropped at prerouting instead"
            ),
        },
        None if ingress_ports.is_empty() => {}
        None => tracing::warn!(
            "no ingress table: a port name cannot be given to nft ({})",
            ingress_ports.join(", ")
        ),
    }
    Ok(NftTable)
}

/// The families of the tables named [`NFT_TABLE`] the dataplane makes.
const NFT_FAMILIES: [&str; 2] = ["inet", "netdev"];

/// Feeds a ruleset to `nft -f -`.
fn nft_load(rules: &str) -> Result<(), KernelError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .map_err(KernelError::NftSpawn)?;
    child
        .stdin
        .take()
        .ok_or_else(|| KernelError::NftIo(std::io::Error::other("no stdin")))?
        .write_all(rules.as_bytes())
        .map_err(KernelError::NftIo)?;
    let st = child.wait().map_err(KernelError::NftIo)?;
    if !st.success() {
        return Err(KernelError::NftFailed(st));
    }
    Ok(())
}

/// The nftables tables [`configure`] made; deleted when dropped, i.e. on every
/// return from the dataplane's run: SIGTERM and SIGINT stop the main loop and
/// return, errors return early. (Only SIGKILL leaves them; the next start
/// replaces them.)
pub struct NftTable;

impl Drop for NftTable {
    fn drop(&mut self) {
        for family in NFT_FAMILIES {
            match Command::new("nft")
                .args(["delete", "table", family, NFT_TABLE])
                .stderr(Stdio::null())
                .status()
            {
                Ok(s) if s.success() => {
                    tracing::info!("nftables table {family} {NFT_TABLE} deleted")
                }
                // The ingress table may never have been made (DPDK ports,
                // or refused): nothing to say.
                Ok(_) if family == "netdev" => {}
                Ok(s) => tracing::warn!("nft delete table {family} {NFT_TABLE}: {s}"),
                Err(e) => tracing::warn!("nft delete table {family} {NFT_TABLE}: {e}"),
            }
        }
    }
}

/// Warns when the kernel forwards too (every packet would go out twice).
pub fn warn_if_forwarding() {
    if let Ok(v) = fs::read_to_string("/proc/sys/net/ipv4/ip_forward") {
        if v.trim() != "0" {
            tracing::warn!(
                "net.ipv4.ip_forward is on: the kernel forwards packets too (duplicates); \
                 use --configure-kernel or set it to 0"
            );
        }
    }
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Brings the TUN device up and sends locally generated traffic through
/// table 220 first (protected remote subnets point into the TUN device).
pub fn tun_setup(name: &str) -> Result<(), KernelError> {
    if !ip(&["link", "set", name, "up"]) {
        return Err(KernelError::Ip(format!("ip link set {name} up")));
    }
    // Packets from the tunnel enter the kernel through the TUN device while
    // the route back to their source points elsewhere: no reverse-path filter.
    for p in [
        format!("/proc/sys/net/ipv4/conf/{name}/rp_filter"),
        "/proc/sys/net/ipv4/conf/all/rp_filter".to_string(),
    ] {
        let _ = fs::write(&p, "0");
    }
    while ip(&["rule", "del", "pref", "1000"]) {}
    while ip(&["-6", "rule", "del", "pref", "1000"]) {}
    if !ip(&[
        "rule", "add", "pref", "1000", "iif", "lo", "lookup", TUN_TABLE,
    ]) || !ip(&[
        "-6", "rule", "add", "pref", "1000", "iif", "lo", "lookup", TUN_TABLE,
    ]) {
        return Err(KernelError::Ip(format!(
            "ip rule add iif lo lookup {TUN_TABLE}"
        )));
    }
    let _ = ip(&["route", "flush", "table", TUN_TABLE]);
    let _ = ip(&["-6", "route", "flush", "table", TUN_TABLE]);
    Ok(())
}

/// Table 220 kept in line with the protect policies: each remote prefix
/// through the TUN device, from an inside address within the local prefix.
pub struct TunRoutes {
    name: String,
    inside: u32,
    installed: BTreeMap<String, String>,
}

impl TunRoutes {
    /// Routes through TUN device `name`, sources from port `inside`'s addresses.
    pub fn new(name: &str, inside: u32) -> TunRoutes {
        TunRoutes {
            name: name.to_string(),
            inside,
            installed: BTreeMap::new(),
        }
    }

    /// Adds, replaces and removes routes so that table 220 matches `spd`.
    pub fn sync(&mut self, spd: &Spd, fib: &Fib) {
        let name = &self.name;
        let mut want = BTreeMap::new();
        let link = fib.links.get(&self.inside);
        for p in spd.load().iter() {
            if !matches!(p.action, PolicyAction::Protect { .. }) {
                continue;
            }
            let remote = p.selector.remote;
            if remote.prefix_len() == 0 {
                continue;
            }
            let src = link.and_then(|l| {
                let mut all: Vec<IpAddr> = l.addrs4.iter().map(|a| (*a).into()).collect();
                all.extend(l.addrs6.iter().map(|a| IpAddr::from(*a)));
                all.into_iter().find(|a| p.selector.local.contains(a))
            });
            let mut args = format!("{} dev {name} table {TUN_TABLE}", remote.trunc());
            if let Some(s) = src {
                args.push_str(&format!(" src {s}"));
            }
            want.insert(remote.trunc().to_string(), args);
        }
        for (prefix, args) in &want {
            if self.installed.get(prefix) != Some(args) {
                let mut v: Vec<&str> = vec!["route", "replace"];
                v.extend(args.split(' '));
                if prefix.contains(':') {
                    v.insert(0, "-6");
                }
                if ip(&v) {
                    self.installed.insert(prefix.clone(), args.clone());
                }
            }
        }
        let gone: Vec<String> = self
            .installed
            .keys()
            .filter(|k| !want.contains_key(*k))
            .cloned()
            .collect();
        for prefix in gone {
            let fam = if prefix.contains(':') { "-6" } else { "-4" };
            let _ = ip(&[fam, "route", "del", &prefix, "table", TUN_TABLE]);
            self.installed.remove(&prefix);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingress_rules_name_each_port_once_quoted() {
        let r = ingress_rules(&["lan", "wan", "lan"]).expect("rules");
        assert!(r.starts_with("table netdev espresso_dp {"));
        assert!(r.contains("hook ingress devices = { \"lan\", \"wan\" } priority -500;"));
        assert!(r.contains("meta pkttype host fib daddr type != local drop"));
        assert!(!r.contains("{devices}"));
    }

    #[test]
    fn ingress_rules_refuse_names_nft_cannot_take() {
        assert_eq!(ingress_rules(&[]), None);
        assert_eq!(ingress_rules(&["lan", ""]), None);
        assert_eq!(ingress_rules(&["la\"n"]), None);
        assert_eq!(ingress_rules(&["la\\n"]), None);
    }
}
