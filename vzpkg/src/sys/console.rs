//! A VPS's `/dev/console`: a pty of the VPS's own devpts instance, bound
//! onto `/dev/console`. Its master must stay open for as long as the VPS
//! runs (else the pty is gone and so is the console), and someone must read
//! it (else a process writing to the console blocks once the buffer is
//! full). That is a small host-side keeper, forked before the VPS's PID
//! namespace exists (so no VPS process sees it), which PID 1 hands the
//! master over a socket; it drains the console and leaves when init does.
//!
//! Everything here runs between fork and exec: no allocation.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Tags of the two messages the keeper gets.
const TAG_PID: u8 = b'P';
const TAG_MASTER: u8 = b'M';

/// The socket pair between the keeper (`keeper`) and the VPS side
/// (`vps`: the starting process sends init's pid, PID 1 the master).
pub struct Channel {
    pub keeper: OwnedFd,
    pub vps: OwnedFd,
}

pub fn channel() -> io::Result<Channel> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: socketpair fills two fds we then own.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors of ours.
    Ok(unsafe {
        Channel {
            keeper: OwnedFd::from_raw_fd(fds[0]),
            vps: OwnedFd::from_raw_fd(fds[1]),
        }
    })
}

fn send(sock: RawFd, data: &[u8], fd: Option<RawFd>) -> io::Result<()> {
    // SAFETY: a message on the stack, with one SCM_RIGHTS fd if given.
    unsafe {
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        let mut control = [0u64; 4];
        if let Some(fd) = fd {
            let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        }
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Close every descriptor above stdio but those in `keep` (-1 entries
/// are ignored). No allocation: for a forked child.
pub fn close_fds_except(keep: &[RawFd]) {
    let mut sorted = [-1 as RawFd; 6];
    let mut n = 0;
    for &fd in keep {
        if fd > 2 && n < sorted.len() {
            sorted[n] = fd;
            n += 1;
        }
    }
    sorted[..n].sort_unstable();
    let mut lo = 3u32;
    // SAFETY: plain system calls in a forked child that no longer uses them.
    unsafe {
        for &fd in sorted[..n].iter().chain(std::iter::once(&-1)) {
            let hi = if fd < 0 { u32::MAX } else { fd as u32 - 1 };
            if lo <= hi && libc::syscall(libc::SYS_close_range, lo, hi, 0u32) != 0 {
                for f in lo..hi.min(1024) {
                    libc::close(f as i32);
                }
            }
            if fd >= 0 {
                lo = fd as u32 + 1;
            }
        }
    }
}

/// From the starting process: init's host pid.
pub fn send_pid(sock: RawFd, pid: i32) -> io::Result<()> {
    let p = pid.to_le_bytes();
    send(sock, &[TAG_PID, p[0], p[1], p[2], p[3]], None)
}

/// In PID 1, after it pivoted into the root with `/dev` and the VPS's
/// devpts mounted: make `/dev/console` a pty slave and hand the master to
/// the keeper over `sock`.
pub fn make_console(sock: RawFd) -> io::Result<()> {
    // SAFETY: system calls on local buffers and descriptors.
    unsafe {
        let master = libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if master < 0 {
            return Err(io::Error::last_os_error());
        }
        let result = (|| {
            let unlock: libc::c_int = 0;
            if libc::ioctl(master, libc::TIOCSPTLCK, &unlock) != 0 {
                return Err(io::Error::last_os_error());
            }
            let mut n: libc::c_uint = 0;
            if libc::ioctl(master, libc::TIOCGPTN, &mut n) != 0 {
                return Err(io::Error::last_os_error());
            }
            // "/dev/pts/" and the number, NUL-terminated, on the stack.
            let mut path = [0u8; 32];
            let prefix = b"/dev/pts/";
            path[..prefix.len()].copy_from_slice(prefix);
            let mut digits = [0u8; 10];
            let mut len = 0;
            let mut v = n;
            loop {
                digits[len] = b'0' + (v % 10) as u8;
                len += 1;
                v /= 10;
                if v == 0 {
                    break;
                }
            }
            for i in 0..len {
                path[prefix.len() + i] = digits[len - 1 - i];
            }
            let console = c"/dev/console";
            let f = libc::open(
                console.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                0o600,
            );
            if f < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::close(f);
            if libc::mount(
                path.as_ptr().cast(),
                console.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            send(sock, &[TAG_MASTER], Some(master))
        })();
        libc::close(master);
        result
    }
}

/// The keeper: wait for init's pid and the master, then read the console
/// (and drop what it says) until init is gone. Never returns.
pub fn keep(sock: RawFd) -> ! {
    // SAFETY: system calls on local buffers and descriptors; leaves with _exit.
    unsafe {
        // vzctl's stdio is a caller's pipe, maybe: let go of it, so the
        // caller sees EOF when vzctl exits.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
        let (mut pid, mut master) = (0i32, -1);
        while pid == 0 || master < 0 {
            let mut data = [0u8; 8];
            let mut iov = libc::iovec {
                iov_base: data.as_mut_ptr().cast(),
                iov_len: data.len(),
            };
            let mut control = [0u64; 4];
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&control);
            let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n <= 0 {
                // Every sender is gone before both came: no VPS to serve.
                libc::_exit(0);
            }
            match data[0] {
                TAG_PID if n == 5 => pid = i32::from_le_bytes([data[1], data[2], data[3], data[4]]),
                TAG_MASTER => {
                    let cmsg = libc::CMSG_FIRSTHDR(&msg);
                    if !cmsg.is_null() && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                        master = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
                    }
                }
                _ => {}
            }
        }
        libc::close(sock);
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as libc::c_int;
        if pidfd < 0 {
            libc::_exit(0);
        }
        let mut buf = [0u8; 4096];
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: pidfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: master,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            if libc::poll(fds.as_mut_ptr(), 2, -1) < 0 {
                continue;
            }
            if fds[0].revents != 0 {
                libc::_exit(0);
            }
            if fds[1].revents & libc::POLLIN != 0 {
                libc::read(master, buf.as_mut_ptr().cast(), buf.len());
            } else if fds[1].revents != 0 {
                // Nobody has the console open: look again in a while.
                let ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 200_000_000,
                };
                libc::nanosleep(&ts, std::ptr::null_mut());
            }
        }
    }
}
