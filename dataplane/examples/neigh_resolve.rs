//! Asks the kernel to resolve one next hop exactly as the dataplane's
//! netlink thread does for a worker that has no (or a stale) entry, and
//! prints what it did: `asked` (an `NTF_USE` request went to the kernel) or
//! `known` (the kernel's entry is PERMANENT, NOARP or REACHABLE: nothing was
//! sent, so a static entry the operator made stays static).
//!
//! usage: `neigh_resolve IFNAME ADDRESS` (in the network namespace to test;
//! `tests/netns/19_gw_static_neigh.sh` runs it).

use std::net::IpAddr;
use std::process::ExitCode;

use dataplane::worker::netlink::{resolve_once, Resolution};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(ifname), Some(addr)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: neigh_resolve IFNAME ADDRESS");
        return ExitCode::from(2);
    };
    let addr: IpAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("neigh_resolve: address {addr:?}: {e}");
            return ExitCode::from(2);
        }
    };
    let ifindex = match std::fs::read_to_string(format!("/sys/class/net/{ifname}/ifindex")) {
        Ok(s) => match s.trim().parse::<u32>() {
            Ok(i) => i,
            Err(e) => {
                eprintln!("neigh_resolve: ifindex of {ifname}: {e}");
                return ExitCode::from(2);
            }
        },
        Err(e) => {
            eprintln!("neigh_resolve: interface {ifname:?}: {e}");
            return ExitCode::from(2);
        }
    };
    match resolve_once(ifindex, addr) {
        Ok(Resolution::Asked) => println!("asked"),
        Ok(Resolution::Known) => println!("known"),
        Err(e) => {
            eprintln!("neigh_resolve: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
