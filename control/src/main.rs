//! `espresso`: the control daemon and its command line.

#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Installed as `ipsec` (a link), it takes Openswan/strongSwan's commands.
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if std::path::Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == "ipsec")
    {
        return std::process::ExitCode::from(control::cli::ipsec::main_as_ipsec());
    }
    let cli = control::cli::Cli::parse();
    std::process::ExitCode::from(control::cli::main(cli))
}
