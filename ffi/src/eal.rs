//! The Environment Abstraction Layer: start-up (once per process), lcores,
//! logging and virtual devices.
//!
//! DPDK objects created through this crate (mempools, rings, ports) live until
//! the process exits, as in every DPDK application: the EAL is never cleaned
//! up, so an mbuf can never outlive the memory it points into.

use std::ffi::{c_int, c_void, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::error::{DpdkError, Errno, Result};
use crate::sys;

const EAL_NONE: u8 = 0;
const EAL_STARTING: u8 = 1;
const EAL_READY: u8 = 2;

static EAL_STATE: AtomicU8 = AtomicU8::new(EAL_NONE);

/// Lcores with an outstanding [`LcoreJob`]: one job per lcore at a time, so
/// that a job's return value cannot be overwritten by a later launch.
static LCORE_BUSY: [AtomicBool; sys::ESPRESSO_MAX_LCORE as usize] =
    [const { AtomicBool::new(false) }; sys::ESPRESSO_MAX_LCORE as usize];

/// Program name passed to DPDK as `argv[0]`.
const PROGRAM: &str = "espresso";

/// Proof that the EAL is running in this process. Cheap to copy and share
/// between threads; every DPDK call of this crate needs one.
#[derive(Debug, Clone, Copy)]
pub struct Eal {
    _private: (),
}

/// DPDK's log levels (`RTE_LOG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum LogLevel {
    /// System is unusable.
    Emergency = sys::RTE_LOG_EMERG,
    /// Action must be taken immediately.
    Alert = sys::RTE_LOG_ALERT,
    /// Critical conditions.
    Critical = sys::RTE_LOG_CRIT,
    /// Error conditions.
    Error = sys::RTE_LOG_ERR,
    /// Warning conditions.
    Warning = sys::RTE_LOG_WARNING,
    /// Normal but significant.
    Notice = sys::RTE_LOG_NOTICE,
    /// Informational.
    Info = sys::RTE_LOG_INFO,
    /// Debug.
    Debug = sys::RTE_LOG_DEBUG,
}

impl Eal {
    /// Starts the EAL with `args` (EAL options such as `--no-huge -m 512
    /// --no-pci --no-shconf --vdev net_null0 -l 0-1`; the program name is
    /// added). Once per process: a second call returns
    /// [`DpdkError::AlreadyInitialized`]. The calling thread becomes the main
    /// lcore and is pinned to its CPU.
    pub fn init<I, S>(args: I) -> Result<Eal>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let args: Vec<String> = args.into_iter().map(|s| s.as_ref().to_owned()).collect();
        let mut c_args = Vec::with_capacity(args.len() + 1);
        c_args.push(CString::new(PROGRAM).expect("program name has no NUL"));
        for a in &args {
            c_args.push(
                CString::new(a.as_str()).map_err(|_| DpdkError::InvalidArgument {
                    what: "EAL argument",
                    value: a.clone(),
                    why: "contains a NUL byte",
                })?,
            );
        }
        // rte_eal_init may permute argv; give it a separate pointer array and
        // keep the CStrings alive (DPDK keeps pointers to some arguments).
        let mut argv: Vec<*mut std::ffi::c_char> = c_args
            .iter()
            .map(|c| c.as_ptr() as *mut std::ffi::c_char)
            .collect();
        argv.push(std::ptr::null_mut());
        let argc = c_int::try_from(c_args.len()).map_err(|_| DpdkError::InvalidArgument {
            what: "EAL argument count",
            value: c_args.len().to_string(),
            why: "too many arguments",
        })?;
        match EAL_STATE.compare_exchange(
            EAL_NONE,
            EAL_STARTING,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {}
            Err(EAL_READY) => return Err(DpdkError::AlreadyInitialized),
            Err(_) => return Err(DpdkError::InitInProgress),
        }
        // SAFETY: argv holds argc valid NUL-terminated strings followed by a
        // NULL; the state flag guarantees no concurrent or repeated call from
        // this crate.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        // DPDK may keep pointers into argv for the life of the process, even
        // after a failed start: leak them (a few bytes, once).
        std::mem::forget(argv);
        std::mem::forget(c_args);
        if ret < 0 {
            let errno = Errno::last();
            EAL_STATE.store(EAL_NONE, Ordering::Release);
            return Err(DpdkError::EalInit { args, errno });
        }
        EAL_STATE.store(EAL_READY, Ordering::Release);
        Ok(Eal { _private: () })
    }

    /// The running EAL, if [`Eal::init`] succeeded in this process.
    pub fn get() -> Option<Eal> {
        (EAL_STATE.load(Ordering::Acquire) == EAL_READY).then_some(Eal { _private: () })
    }

    /// Number of lcores the EAL was started with.
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: plain query of EAL state, valid after init.
        unsafe { sys::rte_lcore_count() }
    }

    /// The main lcore's id.
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: plain query of EAL state, valid after init.
        unsafe { sys::rte_get_main_lcore() }
    }

    /// The worker lcores (every enabled lcore except the main one).
    pub fn worker_lcores(&self) -> Vec<u32> {
        let main = self.main_lcore();
        (0..sys::ESPRESSO_MAX_LCORE)
            .filter(|&l| {
                // SAFETY: rte_lcore_is_enabled accepts any id below RTE_MAX_LCORE.
                l != main && unsafe { sys::rte_lcore_is_enabled(l) } != 0
            })
            .collect()
    }

    /// The calling thread's lcore id, or None for a thread unknown to DPDK.
    pub fn current_lcore(&self) -> Option<u32> {
        // SAFETY: reads the thread-local lcore id through the shim.
        let id = unsafe { sys::espresso_rte_lcore_id() };
        (id != sys::LCORE_ID_ANY).then_some(id)
    }

    /// The NUMA socket of the calling thread.
    pub fn socket_id(&self) -> i32 {
        // SAFETY: plain query of the thread's socket, valid after init.
        unsafe { sys::rte_socket_id() as i32 }
    }

    /// Sets DPDK's global log level.
    pub fn set_log_level(&self, level: LogLevel) {
        // SAFETY: sets a global integer inside the EAL log module.
        unsafe { sys::rte_log_set_global_level(level as u32) }
    }

    /// Registers the calling (non-EAL) thread with DPDK so that it gets an
    /// lcore id and therefore per-lcore mempool caches. Unregistered when the
    /// guard drops.
    pub fn register_thread(&self) -> Result<ThreadRegistration> {
        if let Some(lcore) = self.current_lcore() {
            return Ok(ThreadRegistration {
                lcore,
                registered_here: false,
                _not_send: PhantomData,
            });
        }
        // SAFETY: registers the calling thread; EAL is initialised.
        let ret = unsafe { sys::rte_thread_register() };
        if ret != 0 {
            return Err(DpdkError::Lcore {
                lcore: sys::LCORE_ID_ANY,
                op: "rte_thread_register",
                errno: Errno::last(),
            });
        }
        let lcore = self.current_lcore().unwrap_or(sys::LCORE_ID_ANY);
        Ok(ThreadRegistration {
            lcore,
            registered_here: true,
            _not_send: PhantomData,
        })
    }

    /// Creates a virtual device after start-up (`rte_vdev_init`), e.g.
    /// `("net_null2", "size=64")` or `("net_tap0", "iface=dtap0")`.
    pub fn create_vdev(&self, name: &str, args: &str) -> Result<()> {
        let vdev_err = |op, errno| DpdkError::Vdev {
            name: name.to_owned(),
            args: args.to_owned(),
            op,
            errno,
        };
        let c_name = cstring("vdev name", name)?;
        let c_args = cstring("vdev args", args)?;
        // SAFETY: both strings are valid and NUL-terminated for the call.
        let ret = unsafe { sys::rte_vdev_init(c_name.as_ptr(), c_args.as_ptr()) };
        if ret != 0 {
            return Err(vdev_err("rte_vdev_init", Errno::new(ret)));
        }
        Ok(())
    }

    /// Removes a virtual device created with [`Eal::create_vdev`] or `--vdev`.
    /// Its ports must be closed first (see [`crate::Port::close`]).
    pub fn remove_vdev(&self, name: &str) -> Result<()> {
        let c_name = cstring("vdev name", name)?;
        // SAFETY: the name is a valid NUL-terminated string.
        let ret = unsafe { sys::rte_vdev_uninit(c_name.as_ptr()) };
        if ret != 0 {
            return Err(DpdkError::Vdev {
                name: name.to_owned(),
                args: String::new(),
                op: "rte_vdev_uninit",
                errno: Errno::new(ret),
            });
        }
        Ok(())
    }

    /// Runs `f` on worker lcore `lcore` (`rte_eal_remote_launch`). The
    /// returned job waits for `f` when waited on or dropped.
    pub fn launch<F>(&self, lcore: u32, f: F) -> Result<LcoreJob>
    where
        F: FnOnce() -> i32 + Send + 'static,
    {
        let busy = |code| DpdkError::Lcore {
            lcore,
            op: "rte_eal_remote_launch",
            errno: Errno::new(code),
        };
        let slot = LCORE_BUSY
            .get(lcore as usize)
            .ok_or_else(|| busy(libc::EINVAL))?;
        if slot
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(busy(libc::EBUSY));
        }
        let boxed: Box<Box<dyn FnOnce() -> i32 + Send>> = Box::new(Box::new(f));
        let arg = Box::into_raw(boxed) as *mut c_void;
        // SAFETY: `trampoline` takes back ownership of `arg` exactly once when
        // the launch succeeds; on failure we reclaim it below.
        let ret = unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
        if ret != 0 {
            // SAFETY: the launch failed, so DPDK never passed `arg` to the
            // trampoline; it is still ours to free.
            drop(unsafe { Box::from_raw(arg as *mut Box<dyn FnOnce() -> i32 + Send>) });
            slot.store(false, Ordering::Release);
            return Err(busy(ret));
        }
        Ok(LcoreJob { lcore, done: false })
    }
}

/// Runs a boxed closure on an EAL lcore; panics become return value -1.
unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` came from Box::into_raw in `Eal::launch`, and DPDK calls
    // the trampoline once per successful launch.
    let f = unsafe { Box::from_raw(arg as *mut Box<dyn FnOnce() -> i32 + Send>) };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(-1)
}

/// A function running on a worker lcore.
#[derive(Debug)]
pub struct LcoreJob {
    lcore: u32,
    done: bool,
}

impl LcoreJob {
    /// The lcore it runs on.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Waits until the function returns and gives its return value (-1 if it
    /// panicked).
    pub fn wait(mut self) -> i32 {
        self.done = true;
        // SAFETY: waits on an lcore id that was launched successfully.
        let ret = unsafe { sys::rte_eal_wait_lcore(self.lcore) };
        LCORE_BUSY[self.lcore as usize].store(false, Ordering::Release);
        ret
    }
}

impl Drop for LcoreJob {
    fn drop(&mut self) {
        if !self.done {
            // SAFETY: as in `wait`.
            unsafe { sys::rte_eal_wait_lcore(self.lcore) };
            LCORE_BUSY[self.lcore as usize].store(false, Ordering::Release);
        }
    }
}

/// A thread registered with DPDK by [`Eal::register_thread`].
#[derive(Debug)]
pub struct ThreadRegistration {
    lcore: u32,
    registered_here: bool,
    _not_send: PhantomData<*const ()>,
}

impl ThreadRegistration {
    /// The lcore id DPDK gave this thread (`LCORE_ID_ANY` if lcore ids ran out:
    /// the thread then works without mempool caches).
    pub fn lcore(&self) -> u32 {
        self.lcore
    }
}

impl Drop for ThreadRegistration {
    fn drop(&mut self) {
        if self.registered_here {
            // SAFETY: this guard is !Send, so we are on the thread that was
            // registered.
            unsafe { sys::rte_thread_unregister() }
        }
    }
}

pub(crate) fn cstring(what: &'static str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| DpdkError::InvalidArgument {
        what,
        value: s.to_owned(),
        why: "contains a NUL byte",
    })
}
