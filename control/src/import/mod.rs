//! `espresso import`: the configurations operators bring (FreeS/WAN,
//! Openswan, Libreswan and strongSwan `ipsec.conf` + `ipsec.secrets`,
//! Halon/OpenBSD manual-keying tables and CSV, the mbox command language)
//! turned into espresso's TOML *text* plus 0600 secrets files.
//!
//! - [`ipsecconf`], [`secrets`]: the files as written (sections, `also=`,
//!   `%default`, `include` with globs, every secret form), with file:line.
//! - [`options`]: the one table of what each option becomes (mapped,
//!   not carried over and why, refused); [`algs`]: proposal names.
//! - [`conn`]: one resolved `conn` to a `[[connection]]`, `[[tunnel]]` or
//!   `[[policy]]` entry; [`openbsd`]: OpenBSD/Halon `ipsec.conf` and the
//!   manual-key table as CSV; [`mbox`]: the seed 003 command language.
//! - [`out`]: rendering, writing (0600 secrets), and the check with the
//!   configuration loader's public entry point, [`crate::config::Config::load`].
//! - [`features`]: the IKEv1 and certificate switches.
//!
//! Nothing is dropped silently: every option that is not carried over is a
//! [`Note`] with file, line and reason.

pub mod algs;
pub mod conn;
pub mod dialect;
pub mod features;
pub mod ipsecconf;
pub mod mbox;
pub mod notes;
pub mod openbsd;
pub mod options;
pub mod out;
pub mod secrets;

pub use dialect::Dialect;
pub use notes::{Loc, Note, NoteKind, Notes};

/// The formats `espresso import` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Decide from the file: `conn`/`config setup` sections are ipsec.conf,
    /// `ike`/`esp`/`flow` lines OpenBSD/Halon, a CSV header the key table.
    Auto,
    /// FreeS/WAN, Openswan, Libreswan or strongSwan (stroke) ipsec.conf.
    Ipsecconf,
    /// OpenBSD ipsec.conf(5) / Halon SR `ipsec { ... }`.
    Openbsd,
    /// The manual-key table as CSV (Halon SR's fields, one tunnel a row).
    Csv,
    /// mbox commands (seed 003), one a line.
    Mbox,
}

/// How to import.
#[derive(Clone, Debug)]
pub struct Options {
    /// Input format.
    pub format: Format,
    /// ipsec.conf dialect.
    pub dialect: Dialect,
    /// The old machine's `/` (absolute include and secrets paths are looked up under it).
    pub root: Option<std::path::PathBuf>,
    /// This gateway's addresses (`None`: the host's own).
    pub local_addrs: Option<Vec<std::net::IpAddr>>,
    /// The input describes the peer: swap in and out (manual-key tables).
    pub mirror: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: Format::Auto,
            dialect: Dialect::Auto,
            root: None,
            local_addrs: None,
            mirror: false,
        }
    }
}

/// The addresses of this host's interfaces.
pub fn host_addrs() -> Vec<std::net::IpAddr> {
    let mut v = Vec::new();
    if let Ok(it) = nix::ifaddrs::getifaddrs() {
        for i in it {
            if let Some(a) = i.address {
                if let Some(s) = a.as_sockaddr_in() {
                    v.push(std::net::IpAddr::V4(s.ip()));
                } else if let Some(s) = a.as_sockaddr_in6() {
                    v.push(std::net::IpAddr::V6(s.ip()));
                }
            }
        }
    }
    v
}

/// Guesses the format of a file from its name and first statements.
pub fn detect_format(path: &std::path::Path, text: &str) -> Format {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        return Format::Csv;
    }
    for l in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let l = l.trim_start_matches('!');
        let first = l.split_whitespace().next().unwrap_or("");
        match first {
            "conn" | "config" | "version" | "ca" => return Format::Ipsecconf,
            "ike" | "esp" | "flow" | "ah" => return Format::Openbsd,
            "ipsec" if l.starts_with("ipsec {") || l == "ipsec" => return Format::Openbsd,
            "ipsec" | "show" | "no" => return Format::Mbox,
            _ => {}
        }
    }
    Format::Ipsecconf
}

/// A path as the report shows it.
fn shown(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// Imports `inputs` (ipsec.conf [ipsec.secrets] | one OpenBSD/Halon file |
/// one CSV | one mbox command file). Paths are shown as given.
pub fn import(inputs: &[std::path::PathBuf], opts: &Options) -> Result<out::Output, String> {
    let first = inputs.first().ok_or("give the file to import")?;
    let text = std::fs::read_to_string(first)
        .map_err(|e| format!("{}: cannot read: {e}", first.display()))?;
    let format = match opts.format {
        Format::Auto => detect_format(first, &text),
        f => f,
    };
    let local_addrs = opts.local_addrs.clone().unwrap_or_else(host_addrs);
    let mut o = out::Output {
        sources: inputs.iter().map(|p| shown(p)).collect(),
        ..Default::default()
    };
    match format {
        Format::Ipsecconf | Format::Auto => {
            import_ipsecconf(first, inputs, opts, &local_addrs, &mut o)?
        }
        Format::Openbsd => {
            o.how = "read as OpenBSD ipsec.conf(5) / Halon SR".into();
            o.entries = openbsd::read(
                &text,
                &shown(first),
                &local_addrs,
                opts.mirror,
                &mut o.notes,
            );
        }
        Format::Csv => {
            o.how = "read as a manual-key table (CSV)".into();
            o.entries = openbsd::read_csv(&text, &shown(first), opts.mirror, &mut o.notes);
        }
        Format::Mbox => import_mbox(&text, &shown(first), &mut o),
    }
    Ok(o)
}

/// ipsec.conf (+ ipsec.secrets): the conns, then the secrets none uses.
fn import_ipsecconf(
    first: &std::path::Path,
    inputs: &[std::path::PathBuf],
    opts: &Options,
    local_addrs: &[std::net::IpAddr],
    o: &mut out::Output,
) -> Result<(), String> {
    if inputs.len() > 2 {
        return Err(
            "ipsec.conf takes at most one secrets file: espresso import ipsec.conf [ipsec.secrets]"
                .into(),
        );
    }
    let conf = ipsecconf::read(first, &shown(first), opts.root.as_deref(), &mut o.notes)?;
    let dialect = match opts.dialect {
        Dialect::Auto => conn::detect(&conf),
        d => d,
    };
    let mut secrets = Vec::new();
    let sp = inputs.get(1).cloned();
    if let Some(sp) = &sp {
        secrets = secrets::read(sp, &shown(sp), opts.root.as_deref(), &mut o.notes)?;
    }
    o.how = format!(
        "read as {} ipsec.conf{}",
        dialect.name(),
        if opts.dialect == Dialect::Auto {
            " (detected; --dialect chooses)"
        } else {
            ""
        }
    );
    let ctx = conn::Ctx {
        dialect,
        secrets: &secrets,
        have_secrets: sp.is_some(),
        local_addrs,
        cacerts: Vec::new(),
    };
    o.entries = conn::convert_all(&conf, &ctx, &mut o.notes);
    unused_secrets(&secrets, o);
    Ok(())
}

/// Secrets no imported connection uses.
fn unused_secrets(secrets: &[secrets::Secret], o: &mut out::Output) {
    let used: Vec<String> = o
        .entries
        .iter()
        .flat_map(|e| e.origin.iter())
        .cloned()
        .collect();
    for s in secrets {
        let at = format!("from {} ", s.loc);
        if used.iter().any(|u| u.contains(&at)) {
            continue;
        }
        let sel = if s.selectors.is_empty() {
            String::new()
        } else {
            format!("{} ", s.selectors.join(" "))
        };
        let opt = format!("{sel}: {} <hidden>", s.kind);
        match s.kind.as_str() {
            "RSA" | "ECDSA" => o.notes.add(
                &s.loc,
                None,
                opt,
                NoteKind::NoEffect,
                "no imported connection uses this private key",
            ),
            "P12" | "PIN" => o.notes.add(
                &s.loc,
                None,
                opt,
                NoteKind::NotCarried,
                "PKCS#12 containers and smartcard PINs are not implemented: export the key to a PEM file (local_key)",
            ),
            "PSK" => o.notes.add(
                &s.loc,
                None,
                opt,
                NoteKind::NoEffect,
                "no imported connection uses this pre-shared key",
            ),
            "XAUTH" | "EAP" | "NTLM" => o.notes.add(
                &s.loc,
                None,
                opt,
                NoteKind::NotCarried,
                "XAUTH/EAP user secrets: not implemented",
            ),
            _ => o.notes.add(
                &s.loc,
                None,
                opt,
                NoteKind::NotCarried,
                "secret type not implemented",
            ),
        }
    }
}

/// mbox commands, several on a line separated by '!'.
fn import_mbox(text: &str, file: &str, o: &mut out::Output) {
    o.how = "read as mbox commands".into();
    let mut st = mbox::State::default();
    for (i, l) in text.lines().enumerate() {
        let loc = Loc {
            file: file.to_string(),
            line: i + 1,
        };
        // The seed writes several commands on a line, separated by '!'.
        for cmd in l.split('!') {
            match st.apply(cmd) {
                Ok(mbox::Action::Start | mbox::Action::Stop | mbox::Action::Show(_)) => {
                    o.notes.add(
                        &loc,
                        None,
                        cmd.trim(),
                        NoteKind::NoEffect,
                        "an operational command (run it with `espresso shell`)",
                    )
                }
                Ok(_) => {}
                Err(e) => o.notes.add(&loc, None, cmd.trim(), NoteKind::NotCarried, e),
            }
        }
    }
    o.entries = st.entries(file, "", &mut o.notes);
}
