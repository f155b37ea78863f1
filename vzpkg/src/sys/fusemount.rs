//! A FUSE file system mounted nowhere: made with the new mount API
//! (`fsopen("fuse")` + `fsmount`), it exists only as a file descriptor
//! until single files of it are cloned (`open_tree`) and attached
//! (`move_mount`) inside a VPS's own mount namespace. The host's mount
//! table never holds it, so a killed server or vzctl leaves no mount behind:
//! the file system goes with the last mount or descriptor that holds it.

use rustix::fs::{Mode, OFlags};
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    open_tree, FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags,
};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

/// A detached FUSE mount: the `/dev/fuse` connection its server reads
/// requests from, and the mount, read-only, nosuid, nodev, noexec.
pub struct DetachedFuse {
    pub device: OwnedFd,
    pub mount: OwnedFd,
}

/// Make one. The kernel queues FUSE_INIT on `device`; the server answers it
/// (nothing on the mount is used until then).
pub fn detached(source: &str) -> io::Result<DetachedFuse> {
    let device = rustix::fs::open("/dev/fuse", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
    let fs = fsopen("fuse", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(&fs, "source", source)?;
    fsconfig_set_string(&fs, "fd", device.as_raw_fd().to_string())?;
    fsconfig_set_string(&fs, "rootmode", "40555")?;
    fsconfig_set_string(&fs, "user_id", "0")?;
    fsconfig_set_string(&fs, "group_id", "0")?;
    // Every process of the VPS reads it, whatever its ids.
    fsconfig_set_flag(&fs, "allow_other")?;
    fsconfig_set_flag(&fs, "default_permissions")?;
    fsconfig_create(&fs)?;
    let mount = fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY
            | MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOEXEC,
    )?;
    Ok(DetachedFuse { device, mount })
}

/// Put file `name` of the detached mount `mount` over `target` (a file that
/// exists) in the caller's mount namespace. Plain system calls on data
/// made before, so it may run after `fork`.
pub fn attach_file(mount: BorrowedFd<'_>, name: &CStr, target: &CStr) -> io::Result<()> {
    let tree = open_tree(
        mount,
        name,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )?;
    move_mount(
        &tree,
        c"",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    Ok(())
}

/// Each (file, target) of the detached mount `mount` over its target, in
/// the caller's mount namespace (PID 1 of a VPS, after the pivot). A
/// target under `/dev/` is made first (an empty file of the VPS's own
/// `/dev`); a missing other target (no sysfs, say) is left uncovered.
pub fn attach_files(mount: BorrowedFd<'_>, files: &[(CString, CString)]) -> io::Result<()> {
    for (name, target) in files {
        if target.to_bytes().starts_with(b"/dev/") {
            drop(rustix::fs::open(
                target.as_c_str(),
                OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o444),
            )?);
        } else if rustix::fs::access(target.as_c_str(), rustix::fs::Access::EXISTS).is_err() {
            continue;
        }
        attach_file(mount, name, target)?;
    }
    Ok(())
}
