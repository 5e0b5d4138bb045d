//! `espresso import [--out DIR] [--dry-run] FILE [SECRETS]`: an ipsec.conf
//! (+ ipsec.secrets), an OpenBSD/Halon file, a manual-key CSV or mbox
//! commands into espresso's TOML, checked with the configuration loader.

use std::fs::DirBuilder;
use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use crate::daemon::api::exit;
use crate::import::{self, out, Dialect, Format};

/// Arguments of `espresso import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// ipsec.conf (then optionally ipsec.secrets), an OpenBSD/Halon ipsec.conf, a CSV of the manual-key table, or mbox commands.
    #[arg(required = true, num_args = 1..=2)]
    pub files: Vec<PathBuf>,
    /// Directory that receives espresso.toml, secrets/ (0700, files 0600) and import-report.txt.
    #[arg(long, short = 'o', default_value = "/etc/espresso")]
    pub out: PathBuf,
    /// Print the result (secrets hidden) and what is not carried over; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace an espresso.toml that was not written by an import (it is kept as espresso.toml.orig).
    #[arg(long)]
    pub force: bool,
    /// Input format.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: Format,
    /// ipsec.conf dialect (decides the defaults of absent options, e.g. ikev2=).
    #[arg(long, value_enum, default_value = "auto")]
    pub dialect: Dialect,
    /// The old machine's root directory: absolute include/secrets paths are read below it.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// This gateway's address (repeatable; default: the host's addresses). Decides which side of a conn is local.
    #[arg(long = "local")]
    pub local: Vec<IpAddr>,
    /// The file describes the peer (manual-key tables): in and out are swapped.
    #[arg(long)]
    pub mirror: bool,
}

/// Runs `espresso import`.
pub fn run(a: &ImportArgs) -> u8 {
    let opts = import::Options {
        format: a.format,
        dialect: a.dialect,
        root: a.root.clone(),
        local_addrs: if a.local.is_empty() {
            None
        } else {
            Some(a.local.clone())
        },
        mirror: a.mirror,
    };
    let mut o = match import::import(&a.files, &opts) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("espresso import: {e}");
            return exit::FAILED;
        }
    };
    let conf_d = a.out.join("conf.d");
    let checked = o.check(Some(&conf_d));
    eprint!("{}", o.report());
    let cfg = match checked {
        Ok(c) => c,
        Err(e) => {
            eprintln!("espresso import: {e}");
            return exit::CONFIG;
        }
    };
    for w in &cfg.warnings {
        if !w.contains("matches no file") {
            eprintln!("check: warning: {w}");
        }
    }
    if a.dry_run {
        println!("# ---- {} ----", a.out.join(out::MAIN).display());
        print!("{}", o.main_text());
        for s in o.entries.iter().flat_map(|e| e.secret_files()) {
            println!("# ---- {} (mode 0600) ----", a.out.join(&s.path).display());
            print!("{}", *out::Output::secret_text(s, true));
        }
        eprintln!(
            "espresso import: dry run, nothing written (the result passes the configuration check)"
        );
        return exit::OK;
    }
    if !a.out.exists() {
        if let Err(e) = DirBuilder::new().recursive(true).mode(0o755).create(&a.out) {
            eprintln!("espresso import: cannot create {}: {e}", a.out.display());
            return exit::FAILED;
        }
    }
    let main = a.out.join(out::MAIN);
    if main.exists() {
        let ours = std::fs::read_to_string(&main).is_ok_and(|t| t.starts_with(out::MARKER));
        if !ours {
            if !out::replaceable(&main) && !a.force {
                eprintln!(
                    "espresso import: {} exists and was not written by espresso import: give --force to replace it (it is kept as espresso.toml.orig), or --out DIR",
                    main.display()
                );
                return exit::FAILED;
            }
            let keep = a.out.join("espresso.toml.orig");
            if let Err(e) = std::fs::rename(&main, &keep) {
                eprintln!(
                    "espresso import: cannot keep {} as {}: {e}",
                    main.display(),
                    keep.display()
                );
                return exit::FAILED;
            }
            eprintln!(
                "espresso import: the previous {} is kept as {}",
                main.display(),
                keep.display()
            );
        }
    }
    let written = match o.write_into(&a.out) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("espresso import: {e}");
            return exit::FAILED;
        }
    };
    for w in &written {
        println!("wrote {}", w.display());
    }
    match crate::config::Config::load(&main) {
        Ok(c) => {
            println!(
                "{}: ok ({} connection(s), {} tunnel(s), {} policy(ies)); `espresso --config {} check` lists them",
                main.display(),
                c.connections.len(),
                c.tunnels.len(),
                c.policies.len(),
                main.display()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("{e}");
            exit::CONFIG
        }
    }
}
