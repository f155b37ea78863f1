//! Opening paths inside a VPS's tree from the host without following the
//! VPS's symlinks out of it: `openat2` with `RESOLVE_IN_ROOT`, so `..` and
//! absolute symlinks stop at the tree's top, as they would inside. The
//! host-side writers (identity files, device nodes) go through here: a
//! symlink planted in the private area while the VPS is stopped must not
//! make vzctl write a host file (the class of CVE-2015-6927).

use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

fn how() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

/// The directory `rel` under `root`, resolved as if `root` were `/`.
pub fn open_dir_in(root: &Path, rel: &Path) -> io::Result<OwnedFd> {
    let top = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    Ok(rustix::fs::openat2(
        &top,
        rel,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        how(),
    )?)
}

/// Replace the file `name` in the directory `dir` (from [`open_dir_in`]
/// or the tree's top) with `bytes` and `mode`: unlinked first, created
/// with `O_EXCL | O_NOFOLLOW`, so nothing is written through a link.
pub fn replace_file(
    dir: &OwnedFd,
    name: &str,
    bytes: &[u8],
    mode: u32,
    owner: (u32, u32),
) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, rustix::fs::AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    let f = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?;
    let mut left = bytes;
    while !left.is_empty() {
        let n = rustix::io::write(&f, left)?;
        left = &left[n..];
    }
    rustix::fs::fchown(
        &f,
        Some(rustix::fs::Uid::from_raw(owner.0)),
        Some(rustix::fs::Gid::from_raw(owner.1)),
    )?;
    // After the chown, which clears set-id bits.
    rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))?;
    Ok(())
}

/// `mkdir` of `rel` inside `root` (resolved in the root), if missing.
pub fn make_dir_in(root: &Path, rel: &str, mode: u32) -> io::Result<()> {
    let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let dir = open_dir_in(root, Path::new(parent))?;
    match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(mode)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_and_dotdot_symlinks_stay_inside() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("../../../../..", root.path().join("up")).unwrap();
        // "etc" points at a host directory: inside the root it names nothing.
        assert!(open_dir_in(root.path(), Path::new("etc")).is_err());
        let up = open_dir_in(root.path(), Path::new("up")).unwrap();
        replace_file(&up, "hostname", b"x\n", 0o644, (0, 0)).unwrap();
        assert!(root.path().join("hostname").is_file());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        // A symlink as the file itself is replaced, not written through.
        let target = outside.path().join("victim");
        std::fs::write(&target, "host\n").unwrap();
        std::os::unix::fs::symlink(&target, root.path().join("hosts")).unwrap();
        let top = open_dir_in(root.path(), Path::new("")).unwrap();
        replace_file(&top, "hosts", b"vps\n", 0o644, (0, 0)).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "host\n");
        assert_eq!(
            std::fs::read_to_string(root.path().join("hosts")).unwrap(),
            "vps\n"
        );
    }
}
