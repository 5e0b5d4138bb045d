//! The mapped file: creation (atomic, mode 0600), opening with permission and
//! layout checks, role locks that tell each side whether the other is alive,
//! and the replacement of a region of another layout version that no live
//! process holds (an upgrade: the first process of the new version recreates
//! it).

use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::layout::{hw, Geometry, Offsets, HEADER_SIZE, LAYOUT_VERSION, MAGIC, MAX_DROP_REASONS};
use super::ShmError;

/// Which process holds a role lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The dataplane process (lock on byte 0 of the file).
    Dataplane,
    /// The control process (lock on byte 1 of the file).
    Control,
}

impl Role {
    fn byte(self) -> i64 {
        match self {
            Role::Dataplane => 0,
            Role::Control => 1,
        }
    }
    /// Name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Dataplane => "dataplane",
            Role::Control => "control",
        }
    }
}

/// A mapped region. Shared (through `Arc`) by the ends and the tap writers;
/// unmapped when the last user drops it.
pub(crate) struct Mapping {
    ptr: *mut u8,
    len: usize,
    file: File,
    pub path: PathBuf,
    pub geometry: Geometry,
    pub offsets: Offsets,
    /// The layout version of the region this one replaced when it was
    /// created (no live process held the old one), for the ends' warning.
    pub replaced_version: Option<u64>,
}

// SAFETY: the mapping is plain shared memory. Every word other processes or
// threads may touch concurrently is accessed through `AtomicU64` (header,
// slots, ring head/tail); ring payload bytes are written by a single producer
// before a release store of the head and read by a single consumer after an
// acquire load, so moving or sharing the handle between threads is sound.
unsafe impl Send for Mapping {}
// SAFETY: see `Send` above: shared access goes through atomics or the ring protocol.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` come from a successful mmap in `map_file` and
        // are unmapped exactly once, here, when the last `Arc` is dropped.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

/// Current CLOCK_MONOTONIC time in ns (the clock every timestamp here uses).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn io_err(path: &Path, what: &'static str, e: std::io::Error) -> ShmError {
    ShmError::Io {
        path: path.to_path_buf(),
        what,
        source: e,
    }
}

impl Mapping {
    pub fn words(&self, off: u64, n: usize) -> &[AtomicU64] {
        assert!(off.is_multiple_of(8) && off as usize + n * 8 <= self.len);
        // SAFETY: the range lies inside the mapping (asserted above), is
        // 8-aligned (mmap is page-aligned and `off` is a multiple of 8), and
        // `AtomicU64` has the size and alignment of `u64`. The slice borrows
        // `self`, so it cannot outlive the mapping.
        unsafe { std::slice::from_raw_parts(self.ptr.add(off as usize).cast::<AtomicU64>(), n) }
    }

    pub fn header(&self) -> &[AtomicU64] {
        self.words(0, HEADER_SIZE / 8)
    }

    pub fn hdr(&self, i: usize) -> &AtomicU64 {
        &self.header()[i]
    }

    /// Raw pointer to byte `off` (ring data areas).
    pub fn byte_ptr(&self, off: u64, len: u64) -> *mut u8 {
        assert!(off + len <= self.len as u64);
        // SAFETY: in bounds (asserted); the pointer is only dereferenced by
        // the ring code under its single-producer/single-consumer protocol.
        unsafe { self.ptr.add(off as usize) }
    }

    /// Takes the role lock without waiting. Fails if another live process holds it.
    pub fn lock_role(&self, role: Role) -> Result<(), ShmError> {
        let mut fl = flock_for(role, libc::F_WRLCK as i16);
        // SAFETY: F_OFD_SETLK with a valid, initialised `flock` on our own fd.
        let r = unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EACCES) => Err(ShmError::RoleTaken {
                path: self.path.clone(),
                role: role.name(),
                pid: self.hdr(pid_word(role)).load(Ordering::Relaxed),
            }),
            _ => Err(io_err(&self.path, "lock", e)),
        }
    }

    /// True if some process (other than through this open file) holds `role`'s lock.
    pub fn role_alive(&self, role: Role) -> bool {
        let mut fl = flock_for(role, libc::F_WRLCK as i16);
        // SAFETY: F_OFD_GETLK with a valid `flock`; the kernel only writes into it.
        let r = unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
        r == 0 && fl.l_type != libc::F_UNLCK as i16
    }
}

fn pid_word(role: Role) -> usize {
    match role {
        Role::Dataplane => hw::DP_PID,
        Role::Control => hw::CP_PID,
    }
}

fn flock_for(role: Role, ty: i16) -> libc::flock {
    flock_byte(role.byte(), ty)
}

/// Byte of the file whose lock serialises the processes that replace a
/// region of another layout version (the role locks are bytes 0 and 1 in
/// every layout version so far).
const REPLACE_LOCK_BYTE: i64 = 2;

fn flock_byte(byte: i64, ty: i16) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = ty;
    fl.l_whence = libc::SEEK_SET as i16;
    fl.l_start = byte;
    fl.l_len = 1;
    fl.l_pid = 0;
    fl
}

/// Takes a write lock on one byte of `file` (an open file description lock:
/// released when `file` is closed). `wait`: block until it is free. False:
/// another open file description holds it (only without `wait`).
fn lock_byte(path: &Path, file: &File, byte: i64, wait: bool) -> Result<bool, ShmError> {
    let mut fl = flock_byte(byte, libc::F_WRLCK as i16);
    let cmd = if wait {
        libc::F_OFD_SETLKW
    } else {
        libc::F_OFD_SETLK
    };
    loop {
        // SAFETY: F_OFD_SETLK(W) with a valid, initialised `flock` on an fd we own.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl) };
        if r == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) | Some(libc::EACCES) if !wait => return Ok(false),
            _ => return Err(io_err(path, "lock", e)),
        }
    }
}

/// Refuses files that others can read or write, or that we do not own.
pub(crate) fn check_permissions(path: &Path, file: &File) -> Result<(), ShmError> {
    let md = file.metadata().map_err(|e| io_err(path, "stat", e))?;
    if !md.file_type().is_file() {
        return Err(ShmError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    let mode = md.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(ShmError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if md.uid() != euid {
        return Err(ShmError::Owner {
            path: path.to_path_buf(),
            uid: md.uid(),
            euid,
        });
    }
    Ok(())
}

fn map_file(path: &Path, file: File, len: usize) -> Result<(*mut u8, File), ShmError> {
    // SAFETY: mapping `len` bytes of a file we opened read-write; the result is
    // checked against MAP_FAILED before use.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io_err(path, "mmap", std::io::Error::last_os_error()));
    }
    Ok((ptr.cast(), file))
}

fn static_crc(words: &[u64]) -> u64 {
    let mut h = crc32fast::Hasher::new();
    for w in &words[..hw::STATIC_WORDS] {
        h.update(&w.to_le_bytes());
    }
    u64::from(h.finalize())
}

fn geometry_from_header(m: &[u64]) -> Geometry {
    let g = |i: usize| m[i];
    Geometry {
        max_sas: g(hw::MAX_SAS) as u32,
        max_workers: g(hw::MAX_WORKERS) as u32,
        max_tunnels: g(hw::MAX_TUNNELS) as u32,
        max_policies: g(hw::MAX_POLICIES) as u32,
        ledger_entries: g(hw::LEDGER_ENTRIES) as u32,
        cmd_ring_bytes: g(hw::CMD_CAP),
        event_ring_bytes: g(hw::EVT_CAP),
        tap_ring_bytes: g(hw::TAP_CAP),
    }
}

/// Opens the region at `path`, creating it with `geometry` if it does not
/// exist. Creation is atomic: the file is built under a temporary name and
/// linked into place, so no process ever sees a half-initialised header.
/// A region of another layout version is replaced by a new one when no
/// live process holds it ([`replace_other_version`]); one a live process
/// holds is refused ([`ShmError::Version`]).
pub(crate) fn open_or_create(path: &Path, geometry: &Geometry) -> Result<Arc<Mapping>, ShmError> {
    for _ in 0..8 {
        match open_existing(path) {
            Ok(m) => return Ok(m),
            Err(ShmError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(ShmError::Version { .. }) => match replace_other_version(path, geometry)? {
                Some(m) => return Ok(m),
                // another process replaced it (or removed it) first: open theirs
                None => continue,
            },
            Err(e) => return Err(e),
        }
        match create(path, geometry, Publish::Link) {
            Ok(m) => return Ok(m),
            // Someone else created it between our open and our link: open theirs.
            Err(ShmError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(ShmError::Io {
        path: path.to_path_buf(),
        what: "open or create",
        source: std::io::Error::other("region keeps appearing and disappearing"),
    })
}

/// Opens an existing region and checks permissions, magic, version and checksum.
pub(crate) fn open_existing(path: &Path) -> Result<Arc<Mapping>, ShmError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| io_err(path, "open", e))?;
    check_permissions(path, &file)?;
    let size = file.metadata().map_err(|e| io_err(path, "stat", e))?.len();
    if size < HEADER_SIZE as u64 {
        return Err(ShmError::Corrupt {
            path: path.to_path_buf(),
            what: format!("file is {size} bytes, shorter than the {HEADER_SIZE}-byte header"),
        });
    }
    let (hptr, file) = map_file(path, file, HEADER_SIZE)?;
    // Copy the header out of a temporary mapping of the header page only.
    let h: Vec<u64> = {
        // SAFETY: `hptr` maps HEADER_SIZE bytes, page-aligned; read through
        // atomics because a live peer may be updating its liveness words.
        let words =
            unsafe { std::slice::from_raw_parts(hptr.cast::<AtomicU64>(), HEADER_SIZE / 8) };
        let v = words.iter().map(|w| w.load(Ordering::Acquire)).collect();
        // SAFETY: unmapping the header-only mapping created just above;
        // `words` is not used after this point.
        unsafe {
            libc::munmap(hptr.cast(), HEADER_SIZE);
        }
        v
    };
    let magic = h[hw::MAGIC].to_le_bytes();
    if magic != MAGIC {
        return Err(ShmError::Corrupt {
            path: path.to_path_buf(),
            what: format!("bad magic {magic:02x?} (expected {MAGIC:02x?}): not an espresso region"),
        });
    }
    let version = h[hw::VERSION];
    if version != LAYOUT_VERSION {
        return Err(ShmError::Version {
            path: path.to_path_buf(),
            found: version,
            expected: LAYOUT_VERSION,
            holder: None,
        });
    }
    let crc = static_crc(&h);
    let stored = h[hw::STATIC_CRC];
    if crc != stored {
        return Err(ShmError::Corrupt {
            path: path.to_path_buf(),
            what: format!("header checksum {stored:#010x} does not match contents ({crc:#010x})"),
        });
    }
    let geometry = geometry_from_header(&h);
    geometry.validate().map_err(|what| ShmError::Corrupt {
        path: path.to_path_buf(),
        what,
    })?;
    let offsets = geometry.offsets();
    let total = h[hw::TOTAL_SIZE];
    let stored_offsets = [
        (hw::CMD_OFF, offsets.cmd_off),
        (hw::EVT_OFF, offsets.evt_off),
        (hw::SA_CTL_OFF, offsets.sa_ctl_off),
        (hw::SA_DP_OFF, offsets.sa_dp_off),
        (hw::WORKER_OFF, offsets.worker_off),
        (hw::TUNNEL_OFF, offsets.tunnel_off),
        (hw::POLICY_OFF, offsets.policy_off),
        (hw::LEDGER_OFF, offsets.ledger_off),
        (hw::TAP_OFF, offsets.tap_off),
    ];
    for (w, v) in stored_offsets {
        if h[w] != v {
            return Err(ShmError::Corrupt {
                path: path.to_path_buf(),
                what: format!("area offset word {w} does not match the geometry"),
            });
        }
    }
    if total != offsets.total || size != total {
        return Err(ShmError::Corrupt {
            path: path.to_path_buf(),
            what: format!(
                "file is {size} bytes, header says {total}, geometry needs {}",
                offsets.total
            ),
        });
    }
    if h[hw::DROP_REASONS] != MAX_DROP_REASONS as u64 {
        return Err(ShmError::Corrupt {
            path: path.to_path_buf(),
            what: "drop-reason array width differs".into(),
        });
    }
    let (ptr, file) = map_file(path, file, total as usize)?;
    Ok(Arc::new(Mapping {
        ptr,
        len: total as usize,
        file,
        path: path.to_path_buf(),
        geometry,
        offsets,
        replaced_version: None,
    }))
}

/// Replaces the region at `path`, of another layout version, by a new one of
/// ours when no live process holds it: an upgrade (or downgrade) with both
/// processes stopped just works. Liveness is the role locks (bytes 0 and 1,
/// taken by every layout version's ends and released by the kernel when a
/// process exits, however it exits): they are taken here too, so no process
/// of the old version can attach while the new file is built; the new file
/// is renamed over the old one. Processes replacing at the same time queue
/// on byte [`REPLACE_LOCK_BYTE`]; who finds that the path no longer names
/// the file it locked returns None and opens the new one.
///
/// Ok(None): the path now names another file (or none): open it again.
/// Err([`ShmError::Version`] with a holder): a live process holds a role.
fn replace_other_version(
    path: &Path,
    geometry: &Geometry,
) -> Result<Option<Arc<Mapping>>, ShmError> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, "open", e)),
    };
    check_permissions(path, &file)?;
    lock_byte(path, &file, REPLACE_LOCK_BYTE, true)?;
    // still the file at `path`? (another process may have replaced it while we waited)
    let ours = file.metadata().map_err(|e| io_err(path, "stat", e))?;
    match std::fs::symlink_metadata(path) {
        Ok(now) if (now.dev(), now.ino()) == (ours.dev(), ours.ino()) => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, "stat", e)),
    }
    let word = |i: usize| -> Result<u64, ShmError> {
        let mut b = [0u8; 8];
        file.read_exact_at(&mut b, (i * 8) as u64)
            .map_err(|e| io_err(path, "read", e))?;
        Ok(u64::from_le_bytes(b))
    };
    if word(hw::MAGIC)?.to_le_bytes() != MAGIC {
        // not ours after all (rewritten since): let open_existing say so
        return Ok(None);
    }
    let found = word(hw::VERSION)?;
    if found == LAYOUT_VERSION {
        return Ok(None);
    }
    for role in [Role::Dataplane, Role::Control] {
        if !lock_byte(path, &file, role.byte(), false)? {
            return Err(ShmError::Version {
                path: path.to_path_buf(),
                found,
                expected: LAYOUT_VERSION,
                holder: Some((role.name(), word(pid_word(role)).unwrap_or(0))),
            });
        }
    }
    let mut m = create(path, geometry, Publish::Replace)?;
    if let Some(m) = Arc::get_mut(&mut m) {
        m.replaced_version = Some(found);
    }
    // `file` closes here: the old file's locks go with it (it is unlinked)
    Ok(Some(m))
}

/// How [`create`] puts the new file at its path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Publish {
    /// Only if nothing is there (link: fails with AlreadyExists).
    Link,
    /// Over the file that is there (rename), which the caller holds locked.
    Replace,
}

fn create(path: &Path, geometry: &Geometry, publish: Publish) -> Result<Arc<Mapping>, ShmError> {
    geometry
        .validate()
        .map_err(|what| ShmError::Geometry { what })?;
    let offsets = geometry.offsets();
    let dir = path.parent().unwrap_or(Path::new("/"));
    let tmp_path = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp_path);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&tmp_path)
        .map_err(|e| io_err(&tmp_path, "create", e))?;
    // Whatever the umask, the region is 0600.
    // SAFETY: fchmod on our own open fd.
    if unsafe { libc::fchmod(file.as_raw_fd(), 0o600) } != 0 {
        let e = std::io::Error::last_os_error();
        let _ = std::fs::remove_file(&tmp_path);
        return Err(io_err(&tmp_path, "chmod", e));
    }
    let cleanup = |e: ShmError| {
        let _ = std::fs::remove_file(&tmp_path);
        e
    };
    file.set_len(offsets.total)
        .map_err(|e| cleanup(io_err(&tmp_path, "resize", e)))?;
    let (ptr, file) = map_file(&tmp_path, file, offsets.total as usize).map_err(cleanup)?;
    let m = Mapping {
        ptr,
        len: offsets.total as usize,
        file,
        path: path.to_path_buf(),
        geometry: *geometry,
        offsets,
        replaced_version: None,
    };
    let h = m.header();
    let set = |i: usize, v: u64| h[i].store(v, Ordering::Relaxed);
    set(hw::VERSION, LAYOUT_VERSION);
    set(hw::TOTAL_SIZE, offsets.total);
    set(hw::MAX_SAS, u64::from(geometry.max_sas));
    set(hw::MAX_WORKERS, u64::from(geometry.max_workers));
    set(hw::MAX_TUNNELS, u64::from(geometry.max_tunnels));
    set(hw::MAX_POLICIES, u64::from(geometry.max_policies));
    set(hw::LEDGER_ENTRIES, u64::from(geometry.ledger_entries));
    set(hw::DROP_REASONS, MAX_DROP_REASONS as u64);
    set(hw::CMD_OFF, offsets.cmd_off);
    set(hw::CMD_CAP, geometry.cmd_ring_bytes);
    set(hw::EVT_OFF, offsets.evt_off);
    set(hw::EVT_CAP, geometry.event_ring_bytes);
    set(hw::SA_CTL_OFF, offsets.sa_ctl_off);
    set(hw::SA_DP_OFF, offsets.sa_dp_off);
    set(hw::WORKER_OFF, offsets.worker_off);
    set(hw::TUNNEL_OFF, offsets.tunnel_off);
    set(hw::POLICY_OFF, offsets.policy_off);
    set(hw::LEDGER_OFF, offsets.ledger_off);
    set(hw::TAP_OFF, offsets.tap_off);
    set(hw::TAP_CAP, geometry.tap_ring_bytes);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    set(hw::CREATED_NS, now);
    set(hw::MAGIC, u64::from_le_bytes(MAGIC));
    let words: Vec<u64> = h.iter().map(|w| w.load(Ordering::Relaxed)).collect();
    h[hw::STATIC_CRC].store(static_crc(&words), Ordering::Release);
    // Publish under the final name only if nobody else did first (Link), or
    // over the old region the caller holds (Replace).
    let (Ok(src), Ok(dst)) = (
        CString::new(tmp_path.as_os_str().as_bytes()),
        CString::new(path.as_os_str().as_bytes()),
    ) else {
        let _ = std::fs::remove_file(&tmp_path);
        return Err(ShmError::Io {
            path: path.to_path_buf(),
            what: "create",
            source: std::io::Error::other("path contains a NUL byte"),
        });
    };
    let (r, what) = match publish {
        // SAFETY: both are valid NUL-terminated paths.
        Publish::Link => (unsafe { libc::link(src.as_ptr(), dst.as_ptr()) }, "link"),
        // SAFETY: both are valid NUL-terminated paths.
        Publish::Replace => (
            unsafe { libc::rename(src.as_ptr(), dst.as_ptr()) },
            "rename",
        ),
    };
    let publish_err = std::io::Error::last_os_error();
    if publish == Publish::Link || r != 0 {
        let _ = std::fs::remove_file(&tmp_path);
    }
    if r != 0 {
        return Err(io_err(path, what, publish_err));
    }
    Ok(Arc::new(m))
}
