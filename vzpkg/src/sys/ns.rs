//! Namespaces and pidfds.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

pub use rustix::thread::{LinkNameSpaceType as Namespace, UnshareFlags};

/// Move the calling process into new namespaces. The file descriptor table
/// is never split (`FILES` is refused), so every fd stays valid.
pub fn unshare(flags: UnshareFlags) -> io::Result<()> {
    if flags.contains(UnshareFlags::FILES) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: FILES is not among the flags, so no file descriptor table is split.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(io::Error::from)
}

/// Join the namespace `fd` names (a `/proc/PID/ns/*` file), which must be
/// of kind `ns`.
pub fn setns(fd: BorrowedFd<'_>, ns: Namespace) -> io::Result<()> {
    rustix::thread::move_into_link_name_space(fd, Some(ns)).map_err(io::Error::from)
}

/// A pidfd for `pid`, or `None` if there is no such process.
pub fn pidfd_open(pid: i32) -> io::Result<Option<OwnedFd>> {
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return Ok(None);
    };
    match rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::SRCH) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Signal the process a pidfd names; a reused pid cannot be hit.
pub fn pidfd_kill(pidfd: BorrowedFd<'_>, sig: rustix::process::Signal) -> io::Result<()> {
    rustix::process::pidfd_send_signal(pidfd, sig).map_err(io::Error::from)
}
