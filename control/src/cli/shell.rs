//! `espresso shell`: the mbox command language (seed 003), interactive or
//! one command at a time (`espresso shell ipsec peer 203.0.113.2 ...`).
//! Changes are kept in `DIR/mbox.conf` (the commands, 0600: it holds the
//! pre-shared keys) and written as `DIR/conf.d/mbox.toml` plus
//! `DIR/secrets/peer-*.psk`, the same TOML the rest of espresso reads; each
//! change must pass the configuration check or it is undone. `ipsec start`
//! starts (or reloads) the daemon, `ipsec stop` stops it; `show ipsec
//! status|peer|log|config` ask the daemon over its socket.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use super::args::{Cli, Cmd, ShellArgs};
use super::client::{request, socket_path};
use super::ipsec;
use crate::daemon::api::{exit, Request};
use crate::import::mbox::{Action, State};
use crate::import::out::{self, Output};
use crate::import::Notes;

const STATE: &str = "mbox.conf";
const PIECE: &str = "conf.d/mbox.toml";

struct Shell<'a> {
    cli: Cli,
    dir: PathBuf,
    state: State,
    args: &'a ShellArgs,
}

fn load_state(dir: &Path) -> Result<State, String> {
    let p = dir.join(STATE);
    let mut st = State::default();
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => zeroize::Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(st),
        Err(e) => return Err(format!("{}: {e}", p.display())),
    };
    for (i, l) in text.lines().enumerate() {
        st.apply(l)
            .map_err(|e| format!("{}:{}: {e}", p.display(), i + 1))?;
    }
    Ok(st)
}

impl Shell<'_> {
    fn main_path(&self) -> PathBuf {
        self.dir.join(out::MAIN)
    }

    /// Writes the state, the TOML piece and the secrets; checks the whole
    /// configuration; restores the previous files if the check fails.
    fn commit(&mut self, new: State) -> u8 {
        let dir = &self.dir;
        for d in [dir.clone(), dir.join("conf.d")] {
            if !d.exists() {
                if let Err(e) = std::fs::create_dir_all(&d) {
                    eprintln!("{}: {e}", d.display());
                    return exit::FAILED;
                }
            }
        }
        let mut notes = Notes::default();
        let entries = new.entries(PIECE, "../", &mut notes);
        let piece = Output {
            sources: vec!["espresso shell".into()],
            how: "mbox commands (mbox.conf)".into(),
            entries,
            notes,
        };
        let mut text = piece.main_text();
        // The piece is included by the main file: no include of its own.
        text = text.replace("include = [\"conf.d/*.toml\"]\n", "").replacen(out::MARKER, "# espresso configuration written by `espresso shell` (do not edit: the shell rewrites it)", 1);
        let keep: Vec<(PathBuf, Option<Vec<u8>>)> = [dir.join(STATE), dir.join(PIECE)]
            .into_iter()
            .map(|p| {
                let old = std::fs::read(&p).ok();
                (p, old)
            })
            .collect();
        let mut created_main = false;
        let r = (|| -> Result<(), String> {
            if !self.main_path().exists() {
                let main = Output {
                    sources: vec!["espresso shell".into()],
                    ..Default::default()
                };
                out::write_file(&self.main_path(), main.main_text().as_bytes(), 0o644)?;
                created_main = true;
            }
            if !std::fs::read_to_string(self.main_path())
                .unwrap_or_default()
                .contains("conf.d/")
            {
                eprintln!(
                    "warning: {} does not include conf.d/*.toml: add include = [\"conf.d/*.toml\"]",
                    self.main_path().display()
                );
            }
            let sd = dir.join(out::SECRETS_DIR);
            if !sd.exists() {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&sd)
                    .map_err(|e| format!("{}: {e}", sd.display()))?;
            }
            for s in piece.entries.iter().flat_map(|e| e.secret_files()) {
                out::write_file(
                    &dir.join(&s.path),
                    Output::secret_text(s, false).as_bytes(),
                    0o600,
                )?;
            }
            out::write_file(&dir.join(STATE), new.commands().as_bytes(), 0o600)?;
            out::write_file(&dir.join(PIECE), text.as_bytes(), 0o644)?;
            crate::config::Config::load(&self.main_path())
                .map(|_| ())
                .map_err(|e| e.to_string())
        })();
        match r {
            Ok(()) => {
                for n in &piece.notes.0 {
                    println!("note: {n}");
                }
                for e in piece.entries.iter().filter(|e| e.disabled.is_some()) {
                    println!(
                        "note: peer {} is written but not active: {}",
                        e.name,
                        e.disabled.as_deref().unwrap_or("")
                    );
                }
                self.state = new;
                exit::OK
            }
            Err(e) => {
                for (p, old) in keep {
                    let _ = match old {
                        Some(b) => {
                            out::write_file(&p, &b, if p.ends_with(STATE) { 0o600 } else { 0o644 })
                        }
                        None => std::fs::remove_file(&p).map_err(|e| e.to_string()),
                    };
                }
                if created_main {
                    let _ = std::fs::remove_file(self.main_path());
                }
                eprintln!("{e}");
                eprintln!("% the change is not applied (the configuration check refuses it)");
                exit::CONFIG
            }
        }
    }

    fn show(&self, what: &str) -> u8 {
        match what {
            "config" => {
                for l in self.state.commands().lines() {
                    match l.rfind(" psk ").filter(|_| l.starts_with("ipsec peer")) {
                        Some(i) => println!("{} psk <hidden>", &l[..i]),
                        None => println!("{l}"),
                    }
                }
                exit::OK
            }
            "log" => match request(&socket_path(&self.cli), &Request::Log { lines: 100 }) {
                Ok((r, _)) => {
                    for l in &r.lines {
                        println!("{l}");
                    }
                    r.code
                }
                Err(c) => c,
            },
            "status" | "peer" | "sa" => {
                let st = match request(&socket_path(&self.cli), &Request::Status) {
                    Ok((r, _)) => match r.status {
                        Some(s) => s,
                        None => return r.code,
                    },
                    Err(c) => return c,
                };
                if what == "status" {
                    print!("{}", ipsec::status_text(&st, None, false));
                    return exit::OK;
                }
                println!(
                    "{:<18} {:<16} {:<8} {:<22} {:>10} {:>10}",
                    "PEER", "LOCAL", "STATE", "SPI IN/OUT", "PKTS IN", "PKTS OUT"
                );
                for (addr, p) in &self.state.peers {
                    let name = State::peer_name(addr);
                    let t = st.tunnels.iter().find(|t| t.name == name);
                    let (state, spis, pi, po) = match t {
                        Some(t) => {
                            let (i, o) = (
                                t.inbound.clone().unwrap_or_default(),
                                t.outbound.clone().unwrap_or_default(),
                            );
                            (
                                t.state.clone(),
                                if t.inbound.is_some() {
                                    format!("{}/{}", i.spi_hex, o.spi_hex)
                                } else {
                                    "-".into()
                                },
                                i.packets,
                                o.packets,
                            )
                        }
                        None => ("not loaded".into(), "-".into(), 0, 0),
                    };
                    println!(
                        "{:<18} {:<16} {:<8} {:<22} {:>10} {:>10}",
                        addr,
                        p.local_ip.clone().unwrap_or_else(|| "%defaultroute".into()),
                        state,
                        spis,
                        pi,
                        po
                    );
                    for s in st.ike_sas.iter().filter(|s| s.conn == name) {
                        println!(
                            "  IKE {} {} {} [{}]",
                            s.state, s.proposal, s.remote, s.remote_id
                        );
                        for c in &s.children {
                            println!(
                                "  IPsec {} {} {} === {}",
                                c.state,
                                c.proposal,
                                c.local_ts.join(","),
                                c.remote_ts.join(",")
                            );
                        }
                    }
                }
                exit::OK
            }
            o => {
                eprintln!("% show ipsec {o}: status, peer, log or config");
                exit::USAGE
            }
        }
    }

    fn line(&mut self, l: &str) -> u8 {
        let mut new = self.state.clone();
        match new.apply(l) {
            Err(e) => {
                eprintln!("% {e}");
                exit::USAGE
            }
            Ok(Action::Nothing) => exit::OK,
            Ok(Action::Changed) => self.commit(new),
            Ok(Action::Show(w)) => self.show(&w),
            Ok(Action::Start) => {
                let code = self.commit(new);
                if code != exit::OK {
                    return code;
                }
                ipsec::start(&self.cli)
            }
            Ok(Action::Stop) => ipsec::stop(&self.cli),
        }
    }
}

/// Runs `espresso shell`.
pub fn run(cli: &Cli, a: &ShellArgs) -> u8 {
    let dir = a
        .dir
        .clone()
        .or_else(|| {
            cli.config
                .as_ref()
                .and_then(|c| c.parent().map(Path::to_path_buf))
        })
        .unwrap_or_else(|| PathBuf::from("/etc/espresso"));
    let state = match load_state(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("espresso shell: {e}");
            return exit::CONFIG;
        }
    };
    let config = cli.config.clone().or_else(|| Some(dir.join(out::MAIN)));
    let mut sh = Shell {
        cli: Cli {
            config,
            socket: cli.socket.clone(),
            cmd: Cmd::Check,
        },
        dir,
        state,
        args: a,
    };
    if !sh.args.command.is_empty() {
        let l = sh.args.command.join(" ");
        return sh.line(&l);
    }
    let tty = std::io::stdin().is_terminal();
    let stdin = std::io::stdin();
    let mut last = exit::OK;
    loop {
        if tty {
            print!("espresso# ");
            let _ = std::io::stdout().flush();
        }
        let mut l = String::new();
        match stdin.lock().read_line(&mut l) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let t = l.trim();
        if matches!(t, "exit" | "quit" | "end") {
            break;
        }
        if t == "help" || t == "?" {
            println!("ipsec ike-policy N authentication psk|rsa-sig policy ENC HASH DH keylife S version 1|2");
            println!("ipsec esp-policy N policy ENC HASH [DH] keylife S");
            println!("ipsec peer ADDR local ip ADDR [nated] local-net A,B remote-id ID remote-net A,B policy ike N esp N psk SECRET");
            println!("no ipsec peer ADDR | no ipsec ike-policy N | no ipsec esp-policy N");
            println!("ipsec start | ipsec stop | show ipsec status|peer|log|config | exit");
            continue;
        }
        // Several commands on a line, separated by '!' as in the seed.
        for cmd in t.split('!') {
            last = sh.line(cmd);
        }
    }
    last
}
