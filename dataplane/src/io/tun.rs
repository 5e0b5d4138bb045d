//! The exception path to the gateway's own kernel: a TUN device (layer 3,
//! no packet-information header). Decapsulated packets addressed to the
//! gateway itself are written to it (the kernel never saw them in the clear);
//! packets the kernel routes into it (its own traffic toward a protected
//! remote subnet) are read by a worker and sent through the tunnel.

use std::ffi::CString;
use std::io;

use super::afpacket::IoError;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

/// An open TUN device. Reads and writes never block.
#[derive(Debug)]
pub struct Tun {
    fd: i32,
    name: String,
}

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

impl Tun {
    /// Creates (or attaches to) the TUN device `name`.
    pub fn open(name: &str) -> Result<Tun, IoError> {
        let err = |op| IoError::Sys {
            iface: name.to_string(),
            op,
            source: io::Error::last_os_error(),
        };
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(IoError::Config {
                field: "tun name length",
                value: name.len() as u64,
                why: "must be 1 to 15 bytes",
            });
        }
        let path =
            CString::new("/dev/net/tun").map_err(|_| IoError::NoSuchInterface(name.into()))?;
        // SAFETY: open(2) on a valid NUL-terminated path; the result is checked.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(err("open /dev/net/tun"));
        }
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TUN | IFF_NO_PI,
            _pad: [0; 22],
        };
        for (d, s) in req.name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        // SAFETY: TUNSETIFF reads and writes one ifreq, which `req` is
        // (name, flags, padding to the kernel's size).
        let r = unsafe { libc::ioctl(fd, TUNSETIFF, &mut req as *mut IfReq) };
        if r < 0 {
            let e = err("TUNSETIFF");
            // SAFETY: fd was opened above and is closed once.
            unsafe { libc::close(fd) };
            return Err(e);
        }
        Ok(Tun {
            fd,
            name: name.to_string(),
        })
    }

    /// The device name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one packet into `buf`; `Ok(None)` when none is waiting.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: `buf` is valid for writes of its length.
        let r = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                return Ok(None);
            }
            return Err(e);
        }
        Ok(Some(r as usize))
    }

    /// Writes one IP packet to the kernel.
    pub fn write(&self, pkt: &[u8]) -> io::Result<()> {
        // SAFETY: `pkt` is valid for reads of its length.
        let r = unsafe { libc::write(self.fd, pkt.as_ptr().cast(), pkt.len()) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Tun {
    fn drop(&mut self) {
        // SAFETY: the descriptor is owned by this value and closed once.
        unsafe {
            libc::close(self.fd);
        }
    }
}
