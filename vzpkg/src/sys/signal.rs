//! Signal dispositions, masks and signalfd.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

pub use libc::{SIGCHLD, SIGHUP, SIGINT, SIGKILL, SIGPIPE, SIGQUIT, SIGTERM};

fn set_of(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: filling a local, zero-initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in sigs {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Give `sigs` their default disposition.
pub fn set_default(sigs: &[i32]) {
    for &s in sigs {
        // SAFETY: SIG_DFL installs no handler.
        unsafe { libc::signal(s, libc::SIG_DFL) };
    }
}

/// Unblock every signal of the calling thread.
pub fn unblock_all() {
    let empty = set_of(&[]);
    // SAFETY: a valid set; the old mask is not asked for.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) };
}

/// SIGINT and SIGQUIT ignored while this lives, as `system(3)` does while a
/// command runs on the caller's terminal; the old dispositions come back on
/// drop.
pub struct InteractiveIgnored {
    int: libc::sighandler_t,
    quit: libc::sighandler_t,
}

/// See [`InteractiveIgnored`].
pub fn ignore_interactive() -> InteractiveIgnored {
    // SAFETY: SIG_IGN installs no handler.
    unsafe {
        InteractiveIgnored {
            int: libc::signal(libc::SIGINT, libc::SIG_IGN),
            quit: libc::signal(libc::SIGQUIT, libc::SIG_IGN),
        }
    }
}

impl Drop for InteractiveIgnored {
    fn drop(&mut self) {
        // SAFETY: restoring the dispositions saved at creation.
        unsafe {
            libc::signal(libc::SIGINT, self.int);
            libc::signal(libc::SIGQUIT, self.quit);
        }
    }
}

/// `sigs` blocked in the calling thread (and in threads it starts later),
/// and delivered through a file descriptor instead.
pub struct SignalFd(OwnedFd);

impl SignalFd {
    pub fn new(sigs: &[i32]) -> io::Result<SignalFd> {
        let set = set_of(sigs);
        // SAFETY: plain signal-mask calls on a valid set; the fd returned is
        // new and owned by nobody else.
        unsafe {
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(SignalFd(OwnedFd::from_raw_fd(fd)))
        }
    }

    /// The next pending signal's number, if one could be read.
    pub fn read(&self) -> Option<i32> {
        let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        match rustix::io::read(&self.0, &mut info) {
            Ok(n) if n == info.len() => {
                // ssi_signo is the first field, a u32 in native byte order.
                Some(u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as i32)
            }
            _ => None,
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

extern "C" fn note_signal(_: libc::c_int) {}

/// Signals a PID namespace's init waits for.
pub struct InitSignals(libc::sigset_t);

impl InitSignals {
    /// Block `sigs` and give each a no-op handler: the kernel drops signals
    /// to a namespace's init that has no handler, even blocked ones; a
    /// handler makes them pend.
    pub fn install(sigs: &[i32]) -> InitSignals {
        let set = set_of(sigs);
        // SAFETY: the handler does nothing; the mask call takes a valid set.
        unsafe {
            for &s in sigs {
                libc::signal(s, note_signal as *const () as libc::sighandler_t);
            }
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        InitSignals(set)
    }

    /// Wait for one of the signals; its number (negative on error).
    pub fn wait(&self) -> i32 {
        // SAFETY: a valid set; no siginfo asked for.
        unsafe { libc::sigwaitinfo(&self.0, std::ptr::null_mut()) }
    }
}

/// Send `sig` to every process this one may signal (`kill(-1, sig)`): in a
/// PID namespace's init, every other process of the namespace.
pub fn kill_all(sig: i32) {
    // SAFETY: plain system call.
    unsafe { libc::kill(-1, sig) };
}
