//! `espresso`: the control daemon and its command line.

#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = control::cli::Cli::parse();
    std::process::ExitCode::from(control::cli::main(cli))
}
