//! Runs a command and reports the CPU time of one of its threads, found by
//! name: `thread_cpu NAME -- COMMAND [ARGS...]`.
//!
//! Used by `bench/e2e/esp_vs_dpdk.sh` to measure DPDK's worker lcore
//! (`rte-worker-1`) by CPU time on a shared machine. The command's output
//! goes to our stdout/stderr; at the end one line goes to stderr:
//! `thread_cpu: NAME NS ns (asleep after running: yes|no) T ticks`, and the
//! exit status is the command's (T: utime + stime from `/proc/.../stat`, in
//! clock ticks, the coarser figure `crypto_perf_ref.sh` uses).
//!
//! The thread's CPU time is read from `/proc/PID/task/TID/schedstat` (first
//! field, nanoseconds) every 200 us. A DPDK worker sleeps before and after
//! its test and busy-polls during it; the figure reported is the last one
//! read while it slept after having been seen running, so the tail of the
//! test is not cut off by the process exiting between two readings. If it
//! was never seen so, the last reading is reported with "no" (then the
//! figure may be short by up to one polling interval plus exit time).

use std::fs;
use std::process::{Command, ExitCode};
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (name, cmd) = match args.iter().position(|a| a == "--") {
        Some(1) if args.len() > 2 => (&args[0], &args[2..]),
        _ => {
            eprintln!("usage: thread_cpu NAME -- COMMAND [ARGS...]");
            return ExitCode::from(2);
        }
    };
    let mut child = match Command::new(&cmd[0]).args(&cmd[1..]).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("thread_cpu: cannot run {}: {e}", cmd[0]);
            return ExitCode::from(2);
        }
    };
    let pid = child.id();
    let mut tid: Option<String> = None;
    // (schedstat ns, utime+stime clock ticks) at the last reading, and at
    // the last reading taken asleep after running.
    let (mut last, mut done, mut ran) = ((0u64, 0u64), None, false);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => {
                eprintln!("thread_cpu: wait: {e}");
                return ExitCode::from(2);
            }
        }
        if tid.is_none() {
            tid = find_thread(pid, name);
        }
        if let Some(t) = &tid {
            let base = format!("/proc/{pid}/task/{t}");
            let stat = fs::read_to_string(format!("{base}/stat")).unwrap_or_default();
            let ns = fs::read_to_string(format!("{base}/schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
            // Fields after "(comm)": state first; utime, stime are the
            // 12th and 13th (fields 14 and 15 of the whole line).
            let rest: Vec<&str> = stat
                .rsplit_once(") ")
                .map(|(_, r)| r.split_whitespace().collect())
                .unwrap_or_default();
            let ticks = rest
                .get(11..13)
                .map(|f| f.iter().filter_map(|x| x.parse::<u64>().ok()).sum())
                .unwrap_or(0);
            if let Some(ns) = ns {
                last = (ns, ticks);
                match rest.first() {
                    Some(&"R") => ran = true,
                    Some(&"S") | Some(&"I") if ran => done = Some(last),
                    _ => {}
                }
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let ((ns, ticks), seen) = match done {
        Some(d) => (d, "yes"),
        None => (last, "no"),
    };
    if tid.is_none() {
        eprintln!("thread_cpu: no thread named {name} seen");
    }
    eprintln!("thread_cpu: {name} {ns} ns (asleep after running: {seen}) {ticks} ticks");
    ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8)
}

fn find_thread(pid: u32, name: &str) -> Option<String> {
    for e in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let comm = fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            return Some(e.file_name().to_string_lossy().into_owned());
        }
    }
    None
}
