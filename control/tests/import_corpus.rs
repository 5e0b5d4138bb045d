//! The import corpus (tests/configs/): every configuration example of the
//! seeds and ipsec.conf/ipsec.secrets pairs in the styles of public
//! documentation. Each case directory holds the input files, an optional
//! `args` file (`--local ADDR`, `--dialect D`, `--format F`, `--mirror`,
//! `--root DIR`, `--inputs A B`) and `expected/`: the TOML written
//! (`espresso.toml`), the report of what is not carried over
//! (`report.txt`) and the secrets files. The written configuration must
//! pass the configuration loader's check. `ESPRESSO_BLESS=1` rewrites the
//! expected files.

use std::path::{Path, PathBuf};

use control::import::{self, Dialect, Format, Options};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/configs")
}

fn case(dir: &Path) -> Result<(), String> {
    let mut opts = Options {
        local_addrs: Some(vec![]),
        ..Default::default()
    };
    let mut inputs: Vec<PathBuf> = Vec::new();
    if let Ok(a) = std::fs::read_to_string(dir.join("args")) {
        let w: Vec<&str> = a.split_whitespace().collect();
        let mut i = 0;
        while i < w.len() {
            match w[i] {
                "--local" => {
                    opts.local_addrs
                        .get_or_insert_with(Vec::new)
                        .push(w[i + 1].parse().map_err(|e| format!("args: {e}"))?);
                    i += 2;
                }
                "--dialect" => {
                    opts.dialect = <Dialect as clap::ValueEnum>::from_str(w[i + 1], true)?;
                    i += 2;
                }
                "--format" => {
                    opts.format = <Format as clap::ValueEnum>::from_str(w[i + 1], true)?;
                    i += 2;
                }
                "--mirror" => {
                    opts.mirror = true;
                    i += 1;
                }
                "--root" => {
                    opts.root = Some(dir.join(w[i + 1]));
                    i += 2;
                }
                "--inputs" => {
                    inputs = w[i + 1..].iter().map(|f| dir.join(f)).collect();
                    break;
                }
                o => return Err(format!("args: unknown {o}")),
            }
        }
    }
    if inputs.is_empty() {
        for f in ["ipsec.conf", "ipsec.secrets"] {
            if dir.join(f).exists() {
                inputs.push(dir.join(f));
            }
        }
    }
    if inputs.is_empty() {
        return Err("no inputs (ipsec.conf, or --inputs in args)".into());
    }
    let mut o = import::import(&inputs, &opts)?;
    o.check(None)?;
    let prefix = format!("{}/", dir.display());
    let root_prefix = dir.display().to_string();
    let clean = |s: &str| s.replace(&prefix, "").replace(&root_prefix, "");
    let mut got: Vec<(String, String)> = vec![
        ("espresso.toml".into(), clean(&o.main_text())),
        ("report.txt".into(), clean(&o.report())),
    ];
    for s in o.entries.iter().flat_map(|e| e.secret_files()) {
        got.push((
            s.path.clone(),
            import::out::Output::secret_text(s, false).to_string(),
        ));
    }
    let exp = dir.join("expected");
    if std::env::var_os("ESPRESSO_BLESS").is_some() {
        let _ = std::fs::remove_dir_all(&exp);
        for (f, t) in &got {
            let p = exp.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).map_err(|e| e.to_string())?;
            std::fs::write(&p, t).map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    let mut errs = Vec::new();
    for (f, t) in &got {
        match std::fs::read_to_string(exp.join(f)) {
            Ok(want) if &want == t => {}
            Ok(want) => {
                let diff: Vec<String> = want
                    .lines()
                    .zip(t.lines())
                    .filter(|(a, b)| a != b)
                    .take(3)
                    .map(|(a, b)| format!("    want: {a}\n    got:  {b}"))
                    .collect();
                errs.push(format!(
                    "  {f} differs ({} vs {} lines):\n{}",
                    want.lines().count(),
                    t.lines().count(),
                    diff.join("\n")
                ));
            }
            Err(e) => errs.push(format!("  expected/{f}: {e}")),
        }
    }
    // No expected file left without a counterpart.
    let mut stack = vec![exp.clone()];
    while let Some(d) = stack.pop() {
        for ent in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = ent.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(&exp).unwrap().display().to_string();
                if !got.iter().any(|(f, _)| *f == rel) {
                    errs.push(format!("  expected/{rel} is not produced any more"));
                }
            }
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\n"))
    }
}

#[test]
fn corpus_imports_as_expected() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("tests/configs")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 14, "the corpus has {} cases", dirs.len());
    let mut failed = Vec::new();
    for d in &dirs {
        if let Err(e) = case(d) {
            failed.push(format!(
                "{}:\n{e}",
                d.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    println!(
        "import corpus: {} passed, {} failed",
        dirs.len() - failed.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Every non-comment option line of every ipsec.conf in the corpus is
/// either carried over (it shows up in the TOML) or in the report with
/// its file and line: nothing is dropped silently.
#[test]
fn nothing_dropped_silently() {
    for d in std::fs::read_dir(corpus())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
    {
        let conf = d.join("ipsec.conf");
        let Ok(text) = std::fs::read_to_string(&conf) else {
            continue;
        };
        let report = std::fs::read_to_string(d.join("expected/report.txt")).unwrap_or_default();
        let toml = std::fs::read_to_string(d.join("expected/espresso.toml")).unwrap_or_default();
        for (i, l) in text.lines().enumerate() {
            let t = l.trim();
            if !l.starts_with([' ', '\t']) || t.starts_with('#') || !t.contains('=') {
                continue;
            }
            let (k, v) = t.split_once('=').unwrap();
            let (k, v) = (k.trim(), v.trim().trim_matches('"'));
            let at = format!("ipsec.conf:{}:", i + 1);
            let in_report = report.lines().any(|r| r.starts_with(&at));
            let parts: Vec<&str> = v
                .split([',', ' ', '{', '}'])
                .filter(|x| !x.is_empty())
                .collect();
            let in_toml = toml.contains(v)
                || (!parts.is_empty() && parts.iter().all(|x| toml.contains(x)))
                || matches!(
                    k,
                    "also"
                        | "alsoflip"
                        | "auto"
                        | "authby"
                        | "type"
                        | "pfs"
                        | "rekey"
                        | "compress"
                        | "ikev2"
                        | "keyexchange"
                        | "spi"
                        | "spibase"
                        | "leftespspi"
                        | "rightespspi"
                        | "mobike"
                        | "forceencaps"
                        | "dpdaction"
                        | "phase2"
                        | "auth"
                        | "ikev1"
                        | "leftauth"
                        | "rightauth"
                        | "esn"
                        | "pfsgroup"
                        | "encapsulation"
                        | "replay-window"
                        | "replay_window"
                        | "espreplay_window"
                )
                || k.contains("key")
                || toml.contains(&format!("conn {}", v))
                || (matches!(k, "ike" | "ikealg") && toml.contains("ike = "))
                || (matches!(k, "aggressive" | "aggrmode") && toml.contains("aggressive = "))
                || (matches!(k, "esp" | "phase2alg")
                    && (toml.contains("esp = ") || toml.contains("suite = ")));
            assert!(
                in_report || in_toml,
                "{}: line {}: {t}: neither carried over nor reported",
                d.display(),
                i + 1
            );
        }
    }
}
