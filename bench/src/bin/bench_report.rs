//! Writes `bench/results/REPORT.md` and its SVG charts from the outputs of
//! one `scripts/bench.sh --report` run, and regenerates the benchmark table
//! of the README between the markers
//! `<!-- bench-table:begin -->` and `<!-- bench-table:end -->`.
//!
//! `bench_report --raw DIR --out REPORT.md [--readme README.md]`
//!
//! `DIR` holds one `NAME.out` per benchmark (its standard output) and
//! `run.env` (`key=value` lines written by bench.sh: date, commit, command
//! lines, CPU, flags, load averages, durations, failures). Every line of the
//! form `LABEL: ours X UNIT, REFERENCE Y UNIT (...), ratio Z ...` becomes a
//! row; each benchmark gets a table and an SVG chart (ours against the
//! reference per row, ratio written beside it) in `DIR/../report/`
//! (`bench/results/report/NAME.svg`).
//!
//! Direction: rows whose unit is a time, a cycle count or a size (ns, us,
//! ms, cycles, B) are better when lower; rates (Mops, Mpps, Gbps, /s) when
//! higher. The chart and the README say which.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

/// One `ours X, reference Y, ratio Z` line.
#[derive(Clone, Debug)]
struct Row {
    label: String,
    ours: f64,
    ours_unit: String,
    reference: f64,
    ref_label: String,
    ratio: f64,
    rest: String,
}

impl Row {
    fn lower_is_better(&self) -> bool {
        let u = self.ours_unit.to_ascii_lowercase();
        matches!(
            u.as_str(),
            "ns" | "us" | "µs" | "ms" | "s" | "cycles" | "b" | "ns/pkt" | "ns/lookup"
        ) || u.starts_with("ns/")
            || u.starts_with("cycles")
    }
}

/// Parses `LABEL: ours X [UNIT], REFLABEL Y [UNIT] [(...)], ratio Z[...]`.
/// The headline ratio is the first `, ratio ` after the reference: what
/// follows it (medians, everything-included figures) may carry ratios of
/// its own. Comment lines (`#`) are not rows.
fn parse_line(line: &str) -> Option<Row> {
    if line.trim_start().starts_with('#') {
        return None;
    }
    let (label, rest) = line.split_once(": ours ")?;
    let (ours_part, after) = rest.split_once(", ")?;
    let mut it = ours_part.split_whitespace();
    let ours: f64 = it.next()?.parse().ok()?;
    let ours_unit = it.next().unwrap_or("").trim_end_matches(',').to_string();
    let ri = after.find(", ratio ")?;
    let (ref_part, tail) = after.split_at(ri);
    let tail = &tail[", ratio ".len()..];
    let ratio_str: String = tail
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let ratio: f64 = ratio_str.parse().ok()?;
    let extra = tail[ratio_str.len()..].trim().to_string();
    // Reference: the first number in ref_part; its label is the text around it.
    let words: Vec<&str> = ref_part.split_whitespace().collect();
    let pos = words.iter().position(|w| w.parse::<f64>().is_ok())?;
    let reference: f64 = words[pos].parse().ok()?;
    let mut ref_label = words[..pos].join(" ");
    let after_num = words[pos + 1..].join(" ");
    let after_num = after_num
        .strip_prefix(ours_unit.as_str())
        .unwrap_or(&after_num)
        .trim()
        .to_string();
    if ref_label.is_empty() || ref_label == "reference" {
        ref_label = after_num.trim_matches(|c| c == '(' || c == ')').to_string();
    } else if !after_num.is_empty() {
        ref_label = format!("{ref_label} {after_num}");
    }
    Some(Row {
        label: label.trim().to_string(),
        ours,
        ours_unit,
        reference,
        ref_label,
        ratio,
        rest: extra,
    })
}

struct Args {
    raw: PathBuf,
    out: PathBuf,
    readme: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let (mut raw, mut out, mut readme) = (None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(f) = it.next() {
        let v = it.next().ok_or_else(|| format!("{f} needs a value"))?;
        match f.as_str() {
            "--raw" => raw = Some(PathBuf::from(v)),
            "--out" => out = Some(PathBuf::from(v)),
            "--readme" => readme = Some(PathBuf::from(v)),
            _ => return Err(format!("unknown option {f}")),
        }
    }
    Ok(Args {
        raw: raw.ok_or("--raw DIR is required")?,
        out: out.ok_or("--out FILE is required")?,
        readme,
    })
}

fn read_env(dir: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Ok(t) = std::fs::read_to_string(dir.join("run.env")) {
        for l in t.lines() {
            if let Some((k, v)) = l.split_once('=') {
                m.entry(k.to_string())
                    .and_modify(|e: &mut String| {
                        e.push('\n');
                        e.push_str(v);
                    })
                    .or_insert_with(|| v.to_string());
            }
        }
    }
    m
}

/// The chart of one benchmark: per row, ours and the reference as bars
/// (values in the rows' unit; log scale when they span more than 100x), the
/// ratio written beside the pair.
fn chart(path: &Path, title: &str, rows: &[Row]) -> Result<(), String> {
    let n = rows.len().max(1);
    let height = (60 + 34 * n) as u32;
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let max = rows
        .iter()
        .flat_map(|r| [r.ours, r.reference])
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let unit = rows
        .first()
        .map(|r| r.ours_unit.clone())
        .unwrap_or_default();
    let lower = rows.first().is_some_and(|r| r.lower_is_better());
    let caption = format!(
        "{title} — ours (blue) vs reference (grey), {unit}{}",
        if lower {
            ", lower is better"
        } else {
            ", higher is better"
        }
    );
    let mut ch = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(330)
        .build_cartesian_2d(0.0..max * 1.25, 0.0..n as f64)
        .map_err(|e| e.to_string())?;
    let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    ch.configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|y| {
            let i = (n as f64 - y - 0.5).round();
            if i >= 0.0 && (i as usize) < labels.len() && (y.fract() - 0.5).abs() < 0.01 {
                labels[i as usize].clone()
            } else {
                String::new()
            }
        })
        .x_desc(unit.as_str())
        .draw()
        .map_err(|e| e.to_string())?;
    let ours_c = RGBColor(31, 119, 180);
    let ref_c = RGBColor(160, 160, 160);
    for (i, r) in rows.iter().enumerate() {
        let y0 = (n - 1 - i) as f64;
        ch.draw_series([
            Rectangle::new([(0.0, y0 + 0.52), (r.ours, y0 + 0.88)], ours_c.filled()),
            Rectangle::new([(0.0, y0 + 0.12), (r.reference, y0 + 0.48)], ref_c.filled()),
        ])
        .map_err(|e| e.to_string())?;
        let good = if r.lower_is_better() {
            r.ratio <= 1.0
        } else {
            r.ratio >= 1.0
        };
        let col = if good {
            RGBColor(0, 128, 0)
        } else {
            RGBColor(200, 0, 0)
        };
        ch.draw_series(std::iter::once(Text::new(
            format!("{:.2}x", r.ratio),
            (r.ours.max(r.reference) + max * 0.02, y0 + 0.6),
            ("sans-serif", 13).into_font().color(&col),
        )))
        .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

fn run(a: &Args) -> Result<(), String> {
    let env = read_env(&a.raw);
    let get = |k: &str| env.get(k).cloned().unwrap_or_else(|| "?".into());
    let mut benches: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&a.raw)
        .map_err(|e| format!("{}: {e}", a.raw.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "out"))
        .collect();
    names.sort();
    for p in &names {
        let name = p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let text = std::fs::read_to_string(p).unwrap_or_default();
        let rows: Vec<Row> = text.lines().filter_map(parse_line).collect();
        benches.insert(name, rows);
    }
    let out_dir = a.out.parent().unwrap_or(Path::new(".")).to_path_buf();
    let chart_dir = out_dir.join("report");
    std::fs::create_dir_all(&chart_dir).map_err(|e| e.to_string())?;

    let mut md = String::new();
    let _ = writeln!(md, "# espresso benchmark report\n");
    let _ = writeln!(
        md,
        "Generated by `scripts/bench.sh --report` (bench/src/bin/bench_report.rs) from one run; \
         every row is `ours, reference, ratio` measured in the same run. Do not edit: rerun it.\n"
    );
    let _ = writeln!(md, "## Machine and run\n");
    let _ = writeln!(md, "| | |\n|---|---|");
    for (k, label) in [
        ("date", "started (UTC)"),
        ("finished", "finished (UTC)"),
        ("commit", "commit"),
        ("selection", "benchmarks selected (bench.sh FILTER)"),
        ("cpu", "CPU"),
        ("cpu_family", "CPU family / model"),
        ("vcpus", "vCPUs"),
        ("flags", "crypto/SIMD flags"),
        ("hypervisor", "hypervisor"),
        ("memory", "memory"),
        ("kernel", "kernel"),
        ("load_start", "load average at start"),
        ("load_end", "load average at end"),
        ("rustc", "rustc"),
        ("dpdk", "DPDK"),
        ("ipsec_mb", "intel-ipsec-mb"),
    ] {
        let _ = writeln!(md, "| {label} | {} |", md_escape(&get(k)));
    }
    let _ = writeln!(
        md,
        "\nThe machine is shared (2 vCPUs, other builds running): absolute figures move between \
         runs; compare ratios. CPU-time figures discount time given to other processes but not \
         cache or memory contention.\n"
    );
    if let Some(f) = env.get("failed") {
        if !f.trim().is_empty() {
            let _ = writeln!(md, "**Benchmarks that failed in this run:** {}\n", f.trim());
        }
    }
    let _ = writeln!(md, "## Commands\n\n```");
    for c in get("command").lines() {
        let _ = writeln!(md, "{c}");
    }
    let _ = writeln!(md, "```\n");
    let _ = writeln!(md, "## Summary\n");
    let _ = writeln!(
        md,
        "| benchmark | rows | better than the reference | ratio range (ours / reference) | direction |\n|---|---|---|---|---|"
    );
    let mut readme = String::from(
        "| benchmark | command | rows at least as good as the reference | ratios (ours / reference) |\n|---|---|---|---|\n",
    );
    for (name, rows) in &benches {
        if rows.is_empty() {
            continue;
        }
        let good = rows
            .iter()
            .filter(|r| {
                if r.lower_is_better() {
                    r.ratio <= 1.0
                } else {
                    r.ratio >= 1.0
                }
            })
            .count();
        let lo = rows.iter().map(|r| r.ratio).fold(f64::INFINITY, f64::min);
        let hi = rows.iter().map(|r| r.ratio).fold(0.0, f64::max);
        let dir = if rows.iter().all(|r| r.lower_is_better()) {
            "lower is better"
        } else if rows.iter().all(|r| !r.lower_is_better()) {
            "higher is better"
        } else {
            "mixed (see rows)"
        };
        let _ = writeln!(
            md,
            "| [{name}](#{name}) | {} | {good} | {lo:.2} – {hi:.2} | {dir} |",
            rows.len()
        );
        let cmd = env
            .get(&format!("cmd_{name}"))
            .cloned()
            .unwrap_or_else(|| name.clone());
        let _ = writeln!(
            readme,
            "| [{name}](bench/results/REPORT.md#{name}) | `{}` | {good} of {} | {lo:.2} – {hi:.2} ({dir}) |",
            md_escape(&cmd),
            rows.len()
        );
    }
    let _ = writeln!(md);
    for (name, rows) in &benches {
        let _ = writeln!(md, "## {name}\n");
        if let Some(c) = env.get(&format!("cmd_{name}")) {
            let _ = writeln!(md, "Command: `{c}`");
        }
        if let Some(t) = env.get(&format!("secs_{name}")) {
            let _ = writeln!(md, "(ran {t} s)\n");
        }
        if rows.is_empty() {
            let _ = writeln!(md, "No `ours, reference, ratio` lines in its output.\n");
            continue;
        }
        // One chart per unit (rows of one benchmark may mix units).
        let mut by_unit: BTreeMap<String, Vec<Row>> = BTreeMap::new();
        for r in rows {
            by_unit
                .entry(r.ours_unit.clone())
                .or_default()
                .push(r.clone());
        }
        for (i, (unit, rs)) in by_unit.iter().enumerate() {
            let file = if by_unit.len() == 1 {
                format!("{name}.svg")
            } else {
                format!("{name}-{i}.svg")
            };
            let title = if by_unit.len() == 1 {
                name.clone()
            } else {
                format!("{name} ({unit})")
            };
            match chart(&chart_dir.join(&file), &title, rs) {
                Ok(()) => {
                    let _ = writeln!(md, "![{title}](report/{file})\n");
                }
                Err(e) => {
                    let _ = writeln!(md, "(chart failed: {e})\n");
                }
            }
        }
        let _ = writeln!(
            md,
            "| row | ours | reference | ratio | notes |\n|---|---|---|---|---|"
        );
        for r in rows {
            let _ = writeln!(
                md,
                "| {} | {} {} | {} {} ({}) | **{:.2}** | {} |",
                md_escape(&r.label),
                r.ours,
                r.ours_unit,
                r.reference,
                r.ours_unit,
                md_escape(&r.ref_label),
                r.ratio,
                md_escape(&r.rest)
            );
        }
        let _ = writeln!(md);
    }
    std::fs::write(&a.out, &md).map_err(|e| format!("{}: {e}", a.out.display()))?;
    eprintln!("wrote {}", a.out.display());
    if let Some(path) = &a.readme {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let (b, e) = ("<!-- bench-table:begin -->", "<!-- bench-table:end -->");
        match (text.find(b), text.find(e)) {
            (Some(i), Some(j)) if i < j => {
                let mut t = String::new();
                t.push_str(&text[..i + b.len()]);
                t.push_str(&format!(
                    "\n<!-- generated by scripts/bench.sh --report from bench/results/REPORT.md ({}, commit {}, {}) -->\n",
                    get("date"),
                    get("commit"),
                    get("cpu")
                ));
                t.push_str(&readme);
                t.push_str(&text[j..]);
                std::fs::write(path, t).map_err(|e| e.to_string())?;
                eprintln!("updated the benchmark table in {}", path.display());
            }
            _ => {
                return Err(format!(
                    "{}: no {b} ... {e} markers: README table not updated",
                    path.display()
                ))
            }
        }
    }
    Ok(())
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench_report: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&a) {
        eprintln!("bench_report: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_line_shapes_of_the_benchmarks() {
        let r = parse_line("esp encap aes-gcm-128 64B (CPU time): ours 21.74 Mops, dpdk aesni_mb 15.63 Mops, ratio 1.39 (median of 3: ours 21.69)").unwrap();
        assert_eq!((r.ours, r.reference, r.ratio), (21.74, 15.63, 1.39));
        assert_eq!(r.ref_label, "dpdk aesni_mb");
        assert_eq!(r.label, "esp encap aes-gcm-128 64B (CPU time)");
        // The headline ratio, not the ones in the parenthesis after it.
        let r = parse_line("esp encap aes-gcm-256 64B (CPU time): ours 20.65 Mops, dpdk aesni_mb 14.12 Mops, ratio 1.46 (median of 3: ours 20.33, dpdk 14.04, ratio 1.45; everything included: ours 19.67, dpdk 13.98, ratio 1.41)").unwrap();
        assert_eq!((r.ours, r.reference, r.ratio), (20.65, 14.12, 1.46));
        assert_eq!(r.ref_label, "dpdk aesni_mb");
        assert!(r.rest.starts_with("(median of 3"));
        assert!(parse_line("# encap x 64B: ours 1 Mops, dpdk 2 Mops, ratio 0.5").is_none());
        let r = parse_line("sad/100000/lookup-burst: ours 68.9 cycles, reference 54.0 cycles (dpdk-test-sad), ratio 1.28").unwrap();
        assert_eq!(r.ref_label, "dpdk-test-sad");
        assert!(r.lower_is_better());
        let r = parse_line("dpdk esp encap 64B: ours 8.48 Mpps, ipsec-secgw 8.13 Mpps, ratio 1.04")
            .unwrap();
        assert_eq!((r.ref_label.as_str(), r.ratio), ("ipsec-secgw", 1.04));
        assert!(!r.lower_is_better());
        assert!(parse_line("# a comment").is_none());
    }
}
