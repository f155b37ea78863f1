//! Forked children: fork, exec, wait, exit, and what a child sets up
//! before exec (session, inherited fds, stdio, parent-death signal).
//!
//! A child forked from a process that may have other threads must only
//! make system calls on data prepared before the fork (no allocation, no
//! locks); everything here keeps to that.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Which side of a [`fork`] this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    Child,
    Parent(i32),
}

/// `fork(2)`. The child must keep to system calls on data prepared before
/// it (see the module's doc) and leave through [`exit_now`] or an exec.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: the child gets a copy of this process with one thread; what
    // it may do then is the caller's documented contract above.
    match unsafe { libc::fork() } {
        pid if pid < 0 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// Leave this process at once, without running destructors or flushing
/// anything (`_exit(2)`): what a forked child does.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: terminating this process without running any Rust code.
    unsafe { libc::_exit(code) }
}

/// Run `f` in the child of `cmd`'s spawn, between fork and exec. `f` must
/// keep to system calls on data prepared before (see the module's doc).
pub fn before_exec<F>(cmd: &mut Command, f: F)
where
    F: FnMut() -> io::Result<()> + Send + Sync + 'static,
{
    // SAFETY: the caller's contract above.
    unsafe {
        cmd.pre_exec(f);
    }
}

/// Put `fd` on descriptor `to`, open across the coming exec (a handed-over
/// connection, say). No allocation: for a forked child.
pub fn pass_fd_as(fd: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: fcntl or dup2 on descriptors of this process.
    let r = unsafe {
        if fd == to {
            libc::fcntl(fd, libc::F_SETFD, 0)
        } else {
            libc::dup2(fd, to)
        }
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Take descriptor `fd`, handed over by the process that started this one
/// ([`pass_fd_as`]); `None` if it is not open.
pub fn inherited_fd(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: F_GETFD only asks whether `fd` is open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: open, and by the contract above handed to this process alone.
    Some(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Start a new session (leave the caller's terminal and process group).
pub fn setsid() -> io::Result<()> {
    rustix::process::setsid()
        .map(|_| ())
        .map_err(io::Error::from)
}

/// Be killed when the parent dies.
pub fn die_with_parent() -> io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(io::Error::from)
}

fn close_range(lo: u32, hi: u32) {
    if lo > hi {
        return;
    }
    // SAFETY: plain system calls; the caller no longer uses those fds.
    unsafe {
        if libc::syscall(libc::SYS_close_range, lo, hi, 0u32) != 0 {
            for fd in lo..hi.min(1024) {
                libc::close(fd as i32);
            }
        }
    }
}

/// Close every fd from 3 up, except `keep`. For a forked child, whose
/// copies of the parent's fds would otherwise keep pipes and locks open.
pub fn close_fds_from_3(keep: Option<RawFd>) {
    match keep {
        Some(k) if k >= 3 => {
            close_range(3, k as u32 - 1);
            close_range(k as u32 + 1, u32::MAX);
        }
        _ => close_range(3, u32::MAX),
    }
}

/// Close fd `fd` of this process (a forked child's copy of it).
pub fn close_fd(fd: RawFd) {
    close_range(fd as u32, fd as u32);
}

/// Write `bytes` to the raw fd `fd`, which the caller holds open; errors
/// are ignored (a forked child's report to its parent).
pub fn write_fd(fd: RawFd, bytes: &[u8]) {
    // SAFETY: the caller keeps `fd` open for the duration of the call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let _ = rustix::io::write(fd, bytes);
}

/// Point stdin, stdout and stderr at `/dev/null`.
pub fn stdio_to_dev_null() -> io::Result<()> {
    // SAFETY: open and dup2 on fds this process owns.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null < 0 {
            return Err(io::Error::last_os_error());
        }
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        if null > 2 {
            libc::close(null);
        }
    }
    Ok(())
}

/// Make fd 1 a copy of fd 2 (closing what fd 1 was).
pub fn stdout_to_stderr() {
    // SAFETY: replacing fd 1 with a duplicate of fd 2.
    unsafe { libc::dup2(2, 1) };
}

/// A program, argv and envp made ready before a fork, so the child can
/// exec without allocating.
pub struct Exec {
    path: CString,
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
}

impl Exec {
    pub fn new(path: CString, argv: Vec<CString>, envp: Vec<CString>) -> Exec {
        // The pointers point into the CStrings' heap buffers, which stay put
        // while `Exec` owns them.
        let ptrs = |v: &[CString]| {
            v.iter()
                .map(|a| a.as_ptr())
                .chain([std::ptr::null()])
                .collect()
        };
        Exec {
            argv_ptrs: ptrs(&argv),
            envp_ptrs: ptrs(&envp),
            path,
            _argv: argv,
            _envp: envp,
        }
    }

    pub fn path(&self) -> &CStr {
        &self.path
    }

    /// `execve(2)`; returns only on failure.
    pub fn exec(&self) -> io::Error {
        // SAFETY: NUL-terminated strings and NULL-terminated pointer arrays
        // owned by `self`.
        unsafe {
            libc::execve(
                self.path.as_ptr(),
                self.argv_ptrs.as_ptr(),
                self.envp_ptrs.as_ptr(),
            )
        };
        io::Error::last_os_error()
    }
}

/// How a waited-for child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// Wait for our child `pid` to end (retrying on EINTR).
pub fn wait(pid: i32) -> io::Result<Exit> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: waiting for our own child into a local.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if r < 0 && e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
    if libc::WIFSIGNALED(status) {
        Ok(Exit::Signal(libc::WTERMSIG(status)))
    } else {
        Ok(Exit::Code(libc::WEXITSTATUS(status)))
    }
}

/// Reap finished children without blocking; false once there are no
/// children left.
pub fn reap_finished() -> bool {
    loop {
        let mut status = 0;
        // SAFETY: waiting for any child of this process.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r == 0 {
            return true;
        }
        if r < 0 {
            return io::Error::last_os_error().raw_os_error() != Some(libc::ECHILD);
        }
    }
}

/// The middle process of a sandbox or an exec: wait for the command `pid`
/// and leave with its status (re-raising its signal).
pub fn wait_and_mirror(pid: i32, close_stdio: bool) -> ! {
    // Close our copies of the pipes (including the spawn error pipe) so the
    // caller's reads end when the command execs or exits, not when we do.
    close_fds_from_3(None);
    // A command on the caller's terminal keeps it; a captured one must
    // not see its pipe held open by this process.
    if close_stdio {
        close_range(0, 2);
    }
    // Ctrl-C and termination stop the command too (it dies with us).
    super::signal::set_default(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP]);
    match wait(pid) {
        Err(_) => exit_now(127),
        Ok(Exit::Code(c)) => exit_now(c),
        Ok(Exit::Signal(sig)) => {
            super::signal::set_default(&[sig]);
            // SAFETY: re-raising the command's signal on ourselves.
            unsafe { libc::kill(libc::getpid(), sig) };
            exit_now(128 + sig)
        }
    }
}
