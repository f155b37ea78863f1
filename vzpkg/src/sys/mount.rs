//! Mount calls shared by the build sandbox and a VPS's PID 1.

use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use std::ffi::CStr;
use std::io;

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
