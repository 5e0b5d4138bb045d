//! `espresso generate --man DIR --completions DIR` (hidden; used by
//! scripts/package.sh): man pages (section 8, one per subcommand) and shell
//! completions (bash, zsh, fish) generated from the clap definitions of
//! `espresso` and of its `ipsec` name.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use super::args::{Cli, GenerateArgs, IpsecCli};
use crate::daemon::api::exit;

fn man(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(Cli::command().name("espresso"), dir)?;
    let ip = IpsecCli::command().name("ipsec");
    let mut f = std::fs::File::create(dir.join("ipsec.8"))?;
    clap_mangen::Man::new(ip).section("8").render(&mut f)?;
    // generate_to writes section 1 pages: espresso is a system command (8).
    for e in std::fs::read_dir(dir)?.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "1") {
            let text = std::fs::read_to_string(&p)?.replacen(" 1 ", " 8 ", 1);
            std::fs::write(p.with_extension("8"), text)?;
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

fn completions(dir: &Path) -> std::io::Result<()> {
    for (sh, sub, file) in [
        (Shell::Bash, "bash", "{}"),
        (Shell::Zsh, "zsh", "_{}"),
        (Shell::Fish, "fish", "{}.fish"),
    ] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d)?;
        for (name, mut cmd) in [("espresso", Cli::command()), ("ipsec", IpsecCli::command())] {
            let mut f = std::fs::File::create(d.join(file.replace("{}", name)))?;
            clap_complete::generate(sh, &mut cmd, name, &mut f);
        }
    }
    Ok(())
}

/// Runs `espresso generate`.
pub fn run(a: &GenerateArgs) -> u8 {
    let r = a
        .man
        .as_deref()
        .map(man)
        .transpose()
        .and_then(|_| a.completions.as_deref().map(completions).transpose());
    match r {
        Ok(_) => exit::OK,
        Err(e) => {
            eprintln!("espresso generate: {e}");
            exit::FAILED
        }
    }
}
