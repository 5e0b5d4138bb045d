//! The command-line definitions: [`Cli`] and its subcommands ([`Cmd`]), the
//! arguments of `generate`, `shell` and `ipsec`, and the `ipsec` name's own
//! [`IpsecCli`]. Parsing only: the commands run in the sibling modules.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::import::ImportArgs;
use super::keys::KeyFormat;

/// espresso: IPsec gateway control (manual keys and IKEv2).
#[derive(Parser, Debug)]
#[command(name = "espresso", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Configuration file (the daemon reads it; other commands take the socket path from it).
    #[arg(long, short = 'c', global = true, env = "ESPRESSO_CONFIG")]
    pub config: Option<PathBuf>,
    /// The daemon's socket (default: [daemon].socket of --config, else /run/espresso/espresso.sock).
    #[arg(long, short = 's', global = true, env = "ESPRESSO_SOCKET")]
    pub socket: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

const EXIT_CODES: &str = "Exit codes: 0 ok, 1 operation failed, 2 usage error, 3 configuration invalid \
(nothing changed), 4 no such tunnel, 5 daemon unreachable, 6 refused in the tunnel's current state.";

/// Commands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the control daemon (needs --config).
    Daemon,
    /// Check a configuration file and print what it defines (needs --config).
    Check,
    /// Tunnels, SAs, counters and dataplane health.
    Status {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Install a tunnel or policy.
    Up {
        /// Tunnel or policy name.
        name: String,
    },
    /// MOBIKE (RFC 4555): our address for an IKEv2 connection changed; its
    /// IKE SAs tell the peer (UPDATE_SA_ADDRESSES) and their child SAs follow.
    Move {
        /// Connection name.
        name: String,
        /// Our new address.
        address: std::net::IpAddr,
    },
    /// Remove a tunnel or policy (the dataplane drops its traffic's SAs).
    Down {
        /// Tunnel or policy name.
        name: String,
    },
    /// Re-read the configuration: apply every change, or only NAME's.
    Reload {
        /// Only this tunnel or policy (the others are left as they run).
        name: Option<String>,
    },
    /// Recent log lines of the daemon.
    Log {
        /// How many lines.
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: usize,
    },
    /// Print a random key in hex (FreeS/WAN ranbits), or convert an ASCII
    /// key, or (--rsa) make an RSA key pair (FreeS/WAN rsasigkey).
    Genkey {
        /// Key size in bits (multiple of 8), e.g. 160 for AES-128-GCM (key +
        /// salt); with --rsa the modulus size (2048, 3072, 4096; default 2048).
        #[arg(long, required_unless_present_any = ["ascii", "rsa"])]
        bits: Option<u32>,
        /// Print the hex form of this ASCII key instead (ZyWALL-style keys).
        #[arg(long, conflicts_with_all = ["bits", "rsa"])]
        ascii: Option<String>,
        /// Make an RSA key pair: the private key goes to --out (PKCS#8 PEM,
        /// mode 0600), the public key is printed in FreeS/WAN's 0s form.
        #[arg(long, requires = "out")]
        rsa: bool,
        /// Private key file to create (--rsa); an existing file is not overwritten.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write the key as an ipsec.secrets entry `: RSA { ... }` (mode 0600).
        #[arg(long, requires = "rsa")]
        secrets: Option<PathBuf>,
    },
    /// Print the SAs of running tunnels with their keys, for Wireshark or
    /// scapy (needs `allow_key_export = true` in [daemon]).
    Keys {
        /// Only this tunnel.
        name: Option<String>,
        /// wireshark: `esp_sa` UAT records; scapy: JSON of SecurityAssociation arguments.
        #[arg(long, value_enum, default_value = "wireshark")]
        format: KeyFormat,
    },
    /// Write a tunnel's decrypted traffic to a pcap file (like tcpdump -i enc0).
    Tap {
        /// Tunnel name.
        name: String,
        /// Output pcap file.
        #[arg(long, short = 'o')]
        out: PathBuf,
        /// Stop after this many packets.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
    },
    /// Import ipsec.conf + ipsec.secrets (FreeS/WAN, Openswan, Libreswan, strongSwan),
    /// an OpenBSD/Halon ipsec.conf, a manual-key CSV or mbox commands as espresso TOML.
    Import(ImportArgs),
    /// The mbox command language (seed 003): interactive, or one command
    /// (`espresso shell ipsec peer ...`); writes the same TOML (conf.d/mbox.toml).
    Shell(ShellArgs),
    /// Openswan/strongSwan `ipsec` commands: start, stop, restart, status,
    /// statusall, up, down, reload, auto --up|--down|--add|--delete NAME.
    Ipsec {
        /// What to do.
        #[command(subcommand)]
        cmd: IpsecCmd,
    },
    /// Man pages and shell completions from the command-line definitions (packaging).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

/// Arguments of `espresso generate`.
#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Directory for the man pages (espresso.8, espresso-import.8, ..., ipsec.8).
    #[arg(long)]
    pub man: Option<PathBuf>,
    /// Directory for completions (bash/espresso, zsh/_espresso, fish/espresso.fish, and the same for ipsec).
    #[arg(long)]
    pub completions: Option<PathBuf>,
}

/// Arguments of `espresso shell`.
#[derive(clap::Args, Debug)]
pub struct ShellArgs {
    /// The configuration directory (default: the directory of --config, else /etc/espresso).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// One command (e.g. `ipsec peer 203.0.113.2 psk ...`, `show ipsec status`); none: interactive.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `espresso ipsec` subcommands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum IpsecCmd {
    /// Start the daemon (systemd units where systemd runs, else in the background); reload it if it runs.
    Start,
    /// Take every tunnel down (their traffic is held, never sent in the clear) and stop the daemon.
    Stop,
    /// Stop, then start.
    Restart,
    /// Security associations, as strongSwan's `ipsec status` prints them.
    Status {
        /// Only this connection.
        name: Option<String>,
    },
    /// Daemon, connections and security associations with algorithms and counters (`ipsec statusall`).
    Statusall {
        /// Only this connection.
        name: Option<String>,
    },
    /// Bring a connection or tunnel up (`ipsec up NAME`).
    Up {
        /// Connection or tunnel.
        name: String,
    },
    /// Take a connection or tunnel down (`ipsec down NAME`).
    Down {
        /// Connection or tunnel.
        name: String,
    },
    /// Re-read the configuration (`ipsec reload`, `ipsec update`, `ipsec rereadall`).
    #[command(alias = "update", alias = "rereadall", alias = "rereadsecrets")]
    Reload,
    /// FreeS/WAN/Openswan `ipsec auto --up|--down|--add|--delete|--replace|--status NAME`.
    Auto(AutoArgs),
    /// The version (`ipsec version`).
    Version,
}

/// `ipsec auto` as FreeS/WAN and Openswan took it.
#[derive(clap::Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct AutoArgs {
    /// Negotiate / install NAME.
    #[arg(long, group = "op")]
    pub up: bool,
    /// Take NAME down.
    #[arg(long, group = "op")]
    pub down: bool,
    /// Load NAME's definition from the configuration files.
    #[arg(long, group = "op")]
    pub add: bool,
    /// Take NAME down (it stays in the files: remove it there and reload to forget it).
    #[arg(long, group = "op")]
    pub delete: bool,
    /// Load NAME's definition again (down, then as configured).
    #[arg(long, group = "op")]
    pub replace: bool,
    /// Status of everything.
    #[arg(long, group = "op")]
    pub status: bool,
    /// Re-read the configuration files, secrets included.
    #[arg(long, group = "op")]
    pub rereadsecrets: bool,
    /// Connection name.
    pub name: Option<String>,
}

/// The `ipsec` binary name's own command line.
#[derive(clap::Parser, Debug)]
#[command(
    name = "ipsec",
    version,
    about = "espresso's `ipsec` commands (Openswan/strongSwan muscle memory)"
)]
pub struct IpsecCli {
    /// Configuration file.
    #[arg(long, short = 'c', global = true, env = "ESPRESSO_CONFIG")]
    pub config: Option<PathBuf>,
    /// The daemon's socket.
    #[arg(long, short = 's', global = true, env = "ESPRESSO_SOCKET")]
    pub socket: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub cmd: IpsecCmd,
}
