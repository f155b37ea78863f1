//! Mount calls shared by the build sandbox and a VPS's PID 1.

use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use std::ffi::CStr;
use std::io;
use std::os::fd::AsFd;

/// Make every mount in this mount namespace private so that nothing mounted
/// from here on propagates to the host.
pub fn make_private() -> io::Result<()> {
    rustix::mount::mount_change(
        c"/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(io::Error::from)
}

/// A fresh procfs for the calling process's PID namespace at `target`.
pub fn mount_proc(target: &CStr) -> io::Result<()> {
    rustix::mount::mount(
        c"proc",
        target,
        c"proc",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        None,
    )
    .map_err(io::Error::from)
}

/// Make the mount point `root` the root directory and detach the old root.
pub fn pivot_into(root: &CStr) -> io::Result<()> {
    rustix::process::chdir(root)?;
    // Stacking the old root under the new one and detaching it avoids
    // needing a put_old directory inside the tree.
    rustix::process::pivot_root(c".", c".")?;
    rustix::mount::unmount(c".", UnmountFlags::DETACH)?;
    rustix::process::chdir(c"/")?;
    Ok(())
}

/// A tmpfs at `target` with mount options `data` (e.g. `size=1m`).
pub fn mount_tmpfs(target: &std::path::Path, data: &CStr) -> io::Result<()> {
    rustix::mount::mount(c"tmpfs", target, c"tmpfs", MountFlags::empty(), Some(data))
        .map_err(io::Error::from)
}

/// Detach the mount at `target` (lazily, as `umount -l`).
pub fn unmount_detach(target: &std::path::Path) -> io::Result<()> {
    rustix::mount::unmount(target, UnmountFlags::DETACH).map_err(io::Error::from)
}

/// Bind the host's `source` (a device node) onto `target` in the mount
/// namespace of process `pid`, making `target` (a file) if it is missing.
/// The clone of `source` is taken here; a forked child joins `userns` as
/// its root (so the file it makes has an owner that exists there), then
/// the mount namespace (its root and cwd become the namespace's), and
/// attaches the clone there.
pub fn bind_into(
    pid: i32,
    userns: Option<std::os::fd::BorrowedFd<'_>>,
    source: &std::path::Path,
    target: &CStr,
) -> io::Result<()> {
    use rustix::fs::{Mode, OFlags, CWD};
    use rustix::mount::{MoveMountFlags, OpenTreeFlags};
    let tree = rustix::mount::open_tree(
        CWD,
        source,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )?;
    let ns = rustix::fs::open(
        format!("/proc/{pid}/ns/mnt").as_str(),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    match super::process::fork()? {
        super::process::Forked::Child => {
            let attach = || -> io::Result<()> {
                if let Some(ns) = userns {
                    super::userns::join_as_root(std::os::fd::AsRawFd::as_raw_fd(&ns))?;
                }
                super::ns::setns(ns.as_fd(), super::ns::Namespace::Mount)?;
                // No symlink followed: the file is the VPS's.
                match rustix::fs::open(
                    target,
                    OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                ) {
                    Ok(_) => {}
                    // An existing node: mounted over.
                    Err(rustix::io::Errno::NXIO) | Err(rustix::io::Errno::ACCESS) => {}
                    Err(e) => return Err(e.into()),
                }
                rustix::mount::move_mount(
                    tree.as_fd(),
                    c"",
                    CWD,
                    target,
                    MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
                )?;
                Ok(())
            };
            let code = match attach() {
                Ok(()) => 0,
                Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
            };
            super::process::exit_now(code)
        }
        super::process::Forked::Parent(child) => match super::process::wait(child)? {
            super::process::Exit::Code(0) => Ok(()),
            super::process::Exit::Code(errno) => Err(io::Error::from_raw_os_error(errno)),
            super::process::Exit::Signal(sig) => Err(io::Error::other(format!(
                "the joining child was killed by signal {sig}"
            ))),
        },
    }
}
