//! Cgroup calls that run after a fork or signal processes: joining a
//! VPS's cgroup through `cgroup.procs` files opened before the fork, and
//! killing what is left in one.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

/// Move the calling process into every cgroup whose `cgroup.procs` is in
/// `procs` ("0" means the writer). No allocation: safe after a fork.
pub fn join(procs: &[OwnedFd]) -> io::Result<()> {
    for fd in procs {
        if rustix::io::write(fd.as_fd(), b"0")? != 1 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
    }
    Ok(())
}

/// SIGKILL to `pid` (a process listed in a VPS's cgroup); one already gone
/// is fine.
pub fn kill(pid: i32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}
