//! Waiting until file descriptors are readable.

use rustix::event::{PollFd, PollFlags, Timespec};
use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

/// Wait until `fd` is readable (data, EOF or hang-up), up to `timeout`
/// (`None`: no limit). False if the time ran out first. Interrupted waits
/// go on with the time that is left.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, left.map(timespec).as_ref()) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => {
                if left.is_some_and(|l| l.is_zero()) {
                    return Ok(false);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Wait without limit until at least one of `fds` is readable; which ones
/// are. An interrupted wait returns all false.
pub fn readable<const N: usize>(fds: [BorrowedFd<'_>; N]) -> io::Result<[bool; N]> {
    let mut p: Vec<PollFd<'_>> = fds.iter().map(|f| PollFd::new(f, PollFlags::IN)).collect();
    match rustix::event::poll(&mut p, None) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => return Ok([false; N]),
        Err(e) => return Err(e.into()),
    }
    let mut out = [false; N];
    for (o, f) in out.iter_mut().zip(&p) {
        *o = f.revents().contains(PollFlags::IN);
    }
    Ok(out)
}

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}
