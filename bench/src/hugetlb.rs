//! 2 MB hugetlbfs pages for a reference program run by a benchmark
//! (`dpdk-test-sad` in `benches/sad.rs`): reserved for the run and
//! released after it.
//!
//! DPDK takes its memory from hugetlbfs files, which need pages reserved
//! beforehand (`nr_hugepages`, as root) and a hugetlbfs mount. [`HugePages`]
//! either uses a mount it is given, or reserves pages and finds (or
//! mounts) hugetlbfs, and on drop gives the pages back and unmounts what
//! it mounted.

use std::path::PathBuf;

const NR: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
const FREE: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages";

fn read_num(path: &str) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// 2 MB pages for the benchmark's reference; see the module documentation.
pub struct HugePages {
    /// The hugetlbfs mount to give the program (`--huge-dir`).
    pub dir: PathBuf,
    /// What was done, in words (printed by the benchmark).
    pub note: String,
    /// `nr_hugepages` to write back on drop.
    restore: Option<usize>,
    /// Mounted here (unmount and remove on drop).
    mounted: bool,
}

impl HugePages {
    /// A mount the caller prepared (pages reserved by someone else).
    pub fn given(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        HugePages {
            note: format!("2 MB hugetlbfs pages at {} (given)", dir.display()),
            dir,
            restore: None,
            mounted: false,
        }
    }

    /// Reserves `pages` 2 MB pages more than are free now and finds a
    /// hugetlbfs mount of 2 MB pages, or mounts one in a new directory.
    /// Needs root; the error says why it could not.
    pub fn reserve(pages: usize) -> Result<Self, String> {
        let nr = read_num(NR).ok_or_else(|| format!("cannot read {NR}"))?;
        let free = read_num(FREE).unwrap_or(0);
        let want = nr + pages.saturating_sub(free);
        let mut hp = HugePages {
            dir: PathBuf::new(),
            note: String::new(),
            restore: None,
            mounted: false,
        };
        if want != nr {
            std::fs::write(NR, want.to_string()).map_err(|e| format!("write {NR}: {e}"))?;
            hp.restore = Some(nr);
        }
        let got = read_num(FREE).unwrap_or(0);
        if got < pages {
            return Err(format!(
                "only {got} free 2 MB pages after asking for {pages} (memory fragmented)"
            ));
        }
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let existing = mounts.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"hugetlbfs")
                && f.get(3)
                    .is_some_and(|o| !o.contains("pagesize=") || o.contains("pagesize=2M")))
            .then(|| PathBuf::from(f[1]))
        });
        match existing {
            Some(d) => hp.dir = d,
            None => {
                let d = std::env::temp_dir().join(format!("bench-hugetlb-{}", std::process::id()));
                std::fs::create_dir_all(&d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
                let st = std::process::Command::new("mount")
                    .args(["-t", "hugetlbfs", "-o", "pagesize=2M", "nodev"])
                    .arg(&d)
                    .status()
                    .map_err(|e| format!("mount: {e}"))?;
                if !st.success() {
                    let _ = std::fs::remove_dir(&d);
                    return Err(format!("mount -t hugetlbfs {}: {st}", d.display()));
                }
                hp.dir = d;
                hp.mounted = true;
            }
        }
        hp.note = format!(
            "2 MB hugetlbfs pages at {} ({}; nr_hugepages {nr} -> {want} for this run, {} after it)",
            hp.dir.display(),
            if hp.mounted {
                "mounted for this run"
            } else {
                "existing mount"
            },
            if hp.restore.is_some() {
                "given back"
            } else {
                "unchanged"
            },
        );
        Ok(hp)
    }
}

impl Drop for HugePages {
    fn drop(&mut self) {
        if self.mounted {
            let _ = std::process::Command::new("umount").arg(&self.dir).status();
            let _ = std::fs::remove_dir(&self.dir);
        }
        if let Some(nr) = self.restore {
            if let Err(e) = std::fs::write(NR, nr.to_string()) {
                eprintln!("could not give back 2 MB pages ({NR} = {nr}): {e}");
            }
        }
    }
}
