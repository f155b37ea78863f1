//! User namespaces and idmapped mounts: what makes a VPS's root an
//! unprivileged user of the host.
//!
//! A VPS's user namespace maps ids `0..IDS` inside onto a range of host ids
//! (`LOCAL_UID`, `LOCAL_GID`). Its template layers are seen through
//! idmapped mounts made with a namespace of that same mapping, so a file
//! the store keeps as owned by 0 is owned by the range's first id there,
//! without a copy and with the store's inode (and page cache) unchanged.

use rustix::mount::OpenTreeFlags;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// Ids a VPS's user namespace maps: 0..65535 inside.
pub const IDS: u32 = 65536;

/// The first Linux release whose overlayfs takes idmapped lower layers.
pub const MIN_KERNEL: (u32, u32) = (5, 19);

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// The running kernel's release string and its (major, minor).
pub fn kernel() -> (String, Option<(u32, u32)>) {
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy().into_owned();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    let version = match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    };
    (release, version)
}

/// Whether a kernel of `version` can idmap overlay lower layers.
pub fn supports_idmapped_lowers(version: Option<(u32, u32)>) -> bool {
    version.is_some_and(|v| v >= MIN_KERNEL)
}

/// A new user namespace mapping `0..IDS` inside onto `uid..` and `gid..`
/// on the host, held by the returned fd (no process lives in it).
///
/// A forked child unshares it and waits; this process writes its maps
/// (as the namespace's parent, so `setgroups` stays allowed), opens it and
/// lets the child go.
pub fn create(uid: u32, gid: u32) -> io::Result<OwnedFd> {
    let (ready_r, ready_w) = pipe()?;
    let (done_r, done_w) = pipe()?;
    let (ready_w_raw, done_r_raw, done_w_raw) =
        (ready_w.as_raw_fd(), done_r.as_raw_fd(), done_w.as_raw_fd());
    // SAFETY: the child only makes async-signal-safe system calls on fds
    // made above, then `_exit`s.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(io::Error::last_os_error());
    }
    if child == 0 {
        // SAFETY: plain system calls in the forked child.
        unsafe {
            libc::close(done_w_raw);
            let r = libc::unshare(libc::CLONE_NEWUSER);
            let status: u8 = if r == 0 { 0 } else { 1 };
            let err = if r == 0 { 0 } else { *libc::__errno_location() };
            let msg = [status, err as u8];
            libc::write(ready_w_raw, msg.as_ptr().cast(), msg.len());
            let mut b = 0u8;
            // Until the parent closes its end: it has the namespace then.
            libc::read(done_r_raw, (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop(ready_w);
    drop(done_r);
    let result = (|| {
        let mut msg = [0u8; 2];
        let n = rustix::io::read(&ready_r, &mut msg)?;
        if n != 2 {
            return Err(io::Error::other("the user namespace child died"));
        }
        if msg[0] != 0 {
            return Err(io::Error::from_raw_os_error(i32::from(msg[1])));
        }
        std::fs::write(format!("/proc/{child}/uid_map"), format!("0 {uid} {IDS}\n"))?;
        std::fs::write(format!("/proc/{child}/gid_map"), format!("0 {gid} {IDS}\n"))?;
        let ns = std::fs::File::open(format!("/proc/{child}/ns/user"))?;
        Ok(OwnedFd::from(ns))
    })();
    drop(done_w);
    let mut status = 0;
    // SAFETY: reaping our own child, which exits once `done_w` is closed.
    unsafe { libc::waitpid(child, &mut status, 0) };
    result
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills two fds we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both were just made and are owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A detached clone of the directory tree at `path`, idmapped with the user
/// namespace `userns`: ids owned by 0..IDS on disk show as the namespace's
/// range. Hand it to overlayfs as a lower layer (`lowerdir+` by fd).
pub fn idmapped_tree(path: &Path, userns: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        path,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: mount_setattr on our own detached mount with a valid struct.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(tree)
}

/// Join the user namespace `userns` and become its root (ids 0, no
/// supplementary groups). Call in a single-threaded forked child before
/// it unshares or joins the other namespaces, which the user namespace
/// then owns; only system calls, no allocation.
pub fn join_as_root(userns: RawFd) -> io::Result<()> {
    // SAFETY: the caller keeps `userns` open for this call.
    let fd = unsafe { BorrowedFd::borrow_raw(userns) };
    rustix::thread::move_into_link_name_space(fd, Some(rustix::thread::LinkNameSpaceType::User))?;
    rustix::thread::set_thread_groups(&[])?;
    let root_gid = rustix::process::Gid::ROOT;
    let root_uid = rustix::process::Uid::ROOT;
    rustix::thread::set_thread_res_gid(root_gid, root_gid, root_gid)?;
    rustix::thread::set_thread_res_uid(root_uid, root_uid, root_uid)?;
    Ok(())
}

/// The user namespace of process `pid`, if it is not this process's own.
pub fn of_process(pid: i32) -> io::Result<Option<OwnedFd>> {
    use std::os::unix::fs::MetadataExt;
    let theirs = std::fs::metadata(format!("/proc/{pid}/ns/user"))?;
    let ours = std::fs::metadata("/proc/self/ns/user")?;
    if theirs.ino() == ours.ino() && theirs.dev() == ours.dev() {
        return Ok(None);
    }
    Ok(Some(OwnedFd::from(std::fs::File::open(format!(
        "/proc/{pid}/ns/user"
    ))?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert!(supports_idmapped_lowers(Some((5, 19))));
        assert!(supports_idmapped_lowers(Some((6, 1))));
        assert!(!supports_idmapped_lowers(Some((5, 18))));
        assert!(!supports_idmapped_lowers(Some((4, 19))));
        assert!(!supports_idmapped_lowers(None));
        let (release, v) = kernel();
        assert!(!release.is_empty());
        assert!(v.is_some(), "{release}");
    }

    #[test]
    fn namespace_maps_the_range() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: user namespace maps need root");
            return;
        }
        let ns = create(300_000, 400_000).unwrap();
        // Its maps, as a process that joins it would see them.
        let path = format!("/proc/self/fd/{}", ns.as_raw_fd());
        assert!(std::fs::read_link(path)
            .unwrap()
            .to_string_lossy()
            .starts_with("user:["));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let tree = idmapped_tree(dir.path(), ns.as_fd()).unwrap();
        let st = rustix::fs::statat(&tree, "f", rustix::fs::AtFlags::empty()).unwrap();
        assert_eq!((st.st_uid, st.st_gid), (300_000, 400_000));
        // The file itself is unchanged.
        let host = std::fs::metadata(dir.path().join("f")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((host.uid(), host.gid()), (0, 0));
    }
    use std::os::fd::AsFd;
}
