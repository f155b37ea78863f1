//! File calls rustix has no wrapper for.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Change the mode of the inode an `O_PATH` fd names with `fchmodat2` and
/// an empty path (Linux 6.6). `ENOSYS`/`EINVAL` on older kernels.
pub fn chmod_empty_path(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: a valid fd, a NUL-terminated empty path and plain integers;
    // the kernel reads nothing else.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            fd.as_raw_fd(),
            c"".as_ptr(),
            mode,
            libc::AT_EMPTY_PATH,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// How far [`sync_file_range`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writeback {
    /// Start writeback of the dirty pages.
    Start,
    /// Wait for writeback in flight, start the rest, wait for it all.
    Complete,
}

/// `sync_file_range` over the whole file; true if the kernel took it.
pub fn sync_file_range(fd: BorrowedFd<'_>, how: Writeback) -> bool {
    let flags = match how {
        Writeback::Start => libc::SYNC_FILE_RANGE_WRITE,
        Writeback::Complete => {
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER
        }
    };
    // SAFETY: a valid fd and plain integers.
    unsafe { libc::sync_file_range(fd.as_raw_fd(), 0, 0, flags) == 0 }
}

/// Write `len` bytes of `byte` at the start of `fd`'s file through a shared
/// mapping, and `msync` them (the file must be at least `len` long).
pub fn fill_through_mapping(fd: BorrowedFd<'_>, len: usize, byte: u8) -> io::Result<()> {
    use rustix::mm::{MapFlags, MsyncFlags, ProtFlags};
    // SAFETY: a fresh shared mapping of `len` bytes of the file, written
    // within its bounds and unmapped before returning.
    unsafe {
        let m = rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd,
            0,
        )?;
        std::ptr::write_bytes(m.cast::<u8>(), byte, len);
        let synced = rustix::mm::msync(m, len, MsyncFlags::SYNC);
        let _ = rustix::mm::munmap(m, len);
        synced?;
    }
    Ok(())
}
