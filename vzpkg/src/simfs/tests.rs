//! Real FUSE mounts in temp dirs; skipped (with a message) without root or
//! /dev/fuse.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{mount, mount_with, Options, SimfsHandle};
use crate::quota::{scan, Limits, StateFile, Usage};

struct Fixture {
    _dir: tempfile::TempDir,
    top: PathBuf,
    backing: PathBuf,
    mnt: PathBuf,
    state: PathBuf,
}

fn fixture() -> Option<Fixture> {
    if !Path::new("/dev/fuse").exists() || !rustix::process::geteuid().is_root() {
        eprintln!("skipped: simfs tests need root and /dev/fuse");
        return None;
    }
    let dir = tempfile::tempdir().ok()?;
    let top = dir.path().to_owned();
    let backing = top.join("backing");
    let mnt = top.join("mnt");
    fs::create_dir(&backing).ok()?;
    fs::create_dir(&mnt).ok()?;
    fs::write(backing.join("seed"), vec![7u8; 20_000]).ok()?;
    Some(Fixture {
        state: top.join("quota.json"),
        _dir: dir,
        top,
        backing,
        mnt,
    })
}

impl Fixture {
    fn mount(&self, limits: Limits) -> SimfsHandle {
        mount(&self.backing, &self.mnt, limits, &self.state).expect("mount simfs")
    }
    fn base(&self) -> Usage {
        scan(&self.backing).expect("scan")
    }
    fn p(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }
}

fn edquot(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EDQUOT)
}

/// Write `total` bytes in 64K chunks; the error if one chunk fails.
fn fill(path: &Path, total: usize) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let chunk = vec![1u8; 65536];
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.len());
        f.write_all(&chunk[..n])?;
        left -= n;
    }
    f.sync_all()
}

#[test]
fn statfs_reports_quota() {
    let Some(fx) = fixture() else { return };
    let base = fx.base();
    let h = fx.mount(Limits::new((10_000, 12_000), (1_000, 1_100), 60));
    let v = rustix::fs::statvfs(&fx.mnt).unwrap();
    let k = |n: u64| n * v.f_frsize / 1024;
    assert_eq!(k(v.f_blocks), 10_000);
    assert_eq!(k(v.f_bfree), 10_000 - base.blocks_1k());
    assert_eq!(k(v.f_bavail), 10_000 - base.blocks_1k());
    assert_eq!(v.f_files, 1_000);
    assert_eq!(v.f_ffree, 1_000 - base.inodes);

    // Over the soft limit: nothing free, not a negative number.
    h.set_limits(Limits::new((1, 12_000), (1, 1_100), 60));
    let v = rustix::fs::statvfs(&fx.mnt).unwrap();
    assert_eq!((v.f_bfree, v.f_bavail, v.f_ffree), (0, 0, 0));

    // No quota: the host's own figures.
    h.set_limits(Limits::none());
    let v = rustix::fs::statvfs(&fx.mnt).unwrap();
    let host = rustix::fs::statvfs(&fx.backing).unwrap();
    assert_eq!(
        v.f_blocks * v.f_frsize,
        host.f_blocks * host.f_frsize,
        "total size through simfs"
    );
    assert_eq!(v.f_files, host.f_files);
    h.unmount().unwrap();
}

#[test]
fn hard_block_limit_then_delete() {
    let Some(fx) = fixture() else { return };
    let base = fx.base().blocks_1k();
    let h = fx.mount(Limits::new((base + 512, base + 512), (0, 0), 60));
    let e = fill(&fx.p("big"), 2 << 20).expect_err("2 MiB past a 512K quota");
    assert!(edquot(&e), "want EDQUOT, got {e}");
    assert!(h.usage().blocks_1k() <= base + 512);
    fs::remove_file(fx.p("big")).expect("delete works over quota");
    assert_eq!(h.usage(), fx.base());
    fill(&fx.p("small"), 100_000).expect("room again after the delete");
    h.unmount().unwrap();
}

#[test]
fn inode_limit() {
    let Some(fx) = fixture() else { return };
    let base = fx.base().inodes;
    let h = fx.mount(Limits::new((0, 0), (base + 3, base + 3), 60));
    fs::write(fx.p("a"), b"a").unwrap();
    fs::create_dir(fx.p("d")).unwrap();
    std::os::unix::fs::symlink("a", fx.p("l")).unwrap();
    let e = fs::write(fx.p("b"), b"b").expect_err("fourth inode");
    assert!(edquot(&e), "{e}");
    let e = fs::create_dir(fx.p("d2")).expect_err("fourth inode");
    assert!(edquot(&e), "{e}");
    // A hard link is no new inode.
    fs::hard_link(fx.p("a"), fx.p("a2")).unwrap();
    fs::remove_dir(fx.p("d")).unwrap();
    fs::write(fx.p("b"), b"b").expect("room after rmdir");
    assert_eq!(h.usage().inodes, base + 3);
    assert_eq!(h.usage(), fx.base());
    h.unmount().unwrap();
}

#[test]
fn soft_limit_after_grace_acts_as_hard() {
    let Some(fx) = fixture() else { return };
    let base = fx.base().blocks_1k();
    let h = fx.mount(Limits::new((base + 100, base + 100_000), (0, 0), 1));
    fill(&fx.p("f"), 200_000).expect("over soft, within grace");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let e = fill(&fx.p("f"), 4096).expect_err("grace over");
    assert!(edquot(&e), "{e}");
    // Back under soft: the timer stops and writes work again.
    fs::OpenOptions::new()
        .write(true)
        .open(fx.p("f"))
        .unwrap()
        .set_len(0)
        .unwrap();
    fill(&fx.p("f"), 4096).expect("under soft again");
    h.unmount().unwrap();
}

#[test]
fn rename_link_truncate_accounting() {
    let Some(fx) = fixture() else { return };
    let h = fx.mount(Limits::new((1 << 20, 1 << 20), (1000, 1000), 60));
    let same = |what: &str| assert_eq!(h.usage(), fx.base(), "after {what}");
    same("mount");
    fill(&fx.p("a"), 300_000).unwrap();
    same("write");
    fs::hard_link(fx.p("a"), fx.p("b")).unwrap();
    same("link");
    fs::remove_file(fx.p("a")).unwrap();
    same("unlink of one of two links");
    fill(&fx.p("c"), 100_000).unwrap();
    fs::rename(fx.p("c"), fx.p("b")).unwrap();
    same("rename over the last link");
    fs::create_dir(fx.p("d")).unwrap();
    fs::rename(fx.p("b"), fx.p("d/b")).unwrap();
    fs::rename(fx.p("d"), fx.p("e")).unwrap();
    same("renames across directories");
    assert_eq!(fs::read(fx.p("e/b")).unwrap().len(), 100_000);
    fs::OpenOptions::new()
        .write(true)
        .open(fx.p("e/b"))
        .unwrap()
        .set_len(10)
        .unwrap();
    same("truncate");
    fill(&fx.p("e/c"), 50_000).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(fx.p("e/c"))
        .unwrap();
    same("open with O_TRUNC");
    fs::create_dir(fx.p("e/empty")).unwrap();
    fs::rename(fx.p("e/empty"), fx.p("seedir")).unwrap();
    fs::create_dir(fx.p("e/empty2")).unwrap();
    fs::rename(fx.p("e/empty2"), fx.p("seedir")).unwrap();
    same("rename of a directory over an empty one");
    h.unmount().unwrap();
}

#[test]
fn state_file_dirty_and_clean() {
    let Some(fx) = fixture() else { return };
    let limits = Limits::new((1 << 20, 1 << 20), (1000, 1000), 60);
    let h = fx.mount(limits);
    assert!(
        StateFile::load(&fx.state).unwrap().unwrap().dirty,
        "dirty while mounted"
    );
    fill(&fx.p("x"), 123_456).unwrap();
    let u = h.unmount().unwrap();
    let s = StateFile::load(&fx.state).unwrap().unwrap();
    assert!(!s.dirty, "clean after unmount");
    assert_eq!(s.usage, u);
    assert_eq!(u, fx.base());

    // Left clean: the saved usage is trusted, no scan.
    let fake = Usage {
        bytes: 4096,
        inodes: 2,
    };
    StateFile {
        usage: fake,
        ..s.clone()
    }
    .save(&fx.state)
    .unwrap();
    let h = fx.mount(limits);
    assert_eq!(h.usage(), fake);
    drop(h);

    // Left dirty (a crash): rescanned.
    StateFile {
        usage: fake,
        dirty: true,
        ..s
    }
    .save(&fx.state)
    .unwrap();
    let h = fx.mount(limits);
    assert_eq!(h.usage(), fx.base());
    h.unmount().unwrap();
}

#[test]
fn cannot_escape_backing_root() {
    let Some(fx) = fixture() else { return };
    let outside = fx.top.join("outside");
    fs::create_dir_all(outside.join("sub")).unwrap();
    fs::write(outside.join("sub/secret"), b"host secret").unwrap();
    std::os::unix::fs::symlink("/", fx.backing.join("root")).unwrap();
    fs::create_dir_all(fx.backing.join("d/sub")).unwrap();
    fs::create_dir_all(fx.backing.join("r/sub")).unwrap();
    let h = fx.mount(Limits::none());

    // A symlink is shown as one, never resolved by simfs.
    assert!(fs::symlink_metadata(fx.p("root"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_link(fx.p("root")).unwrap(), Path::new("/"));

    // Hold directories open through the mount, then swap their parents on
    // the backing side for symlinks out of the root (absolute and `..`):
    // lookups under the held inodes must not follow them.
    let d = fs::File::open(fx.p("d/sub")).unwrap();
    let r = fs::File::open(fx.p("r/sub")).unwrap();
    fs::rename(fx.backing.join("d"), fx.backing.join("d.old")).unwrap();
    std::os::unix::fs::symlink(&outside, fx.backing.join("d")).unwrap();
    fs::rename(fx.backing.join("r"), fx.backing.join("r.old")).unwrap();
    std::os::unix::fs::symlink("../outside", fx.backing.join("r")).unwrap();
    for dir in [&d, &r] {
        let got = rustix::fs::openat(
            dir,
            "secret",
            rustix::fs::OFlags::RDONLY,
            rustix::fs::Mode::empty(),
        );
        // Refused (EXDEV from RESOLVE_BENEATH) is the right answer.
        if let Ok(fd) = got {
            let mut s = String::new();
            fs::File::from(fd).read_to_string(&mut s).unwrap();
            panic!("read {s:?} outside the backing root");
        }
    }
    drop((d, r));
    h.unmount().unwrap();
}

#[test]
fn passthrough_read_only_open() {
    let Some(fx) = fixture() else { return };
    let opts = Options {
        passthrough: true,
        ..Options::default()
    };
    let h = mount_with(&fx.backing, &fx.mnt, Limits::none(), &fx.state, opts).unwrap();
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(0)
        .open(fx.p("seed"))
        .unwrap();
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    assert_eq!(v, vec![7u8; 20_000]);
    // The kernel took the open (one backing file per inode): a writing open
    // meanwhile is refused, which is why passthrough is opt-in.
    let w = fs::OpenOptions::new().write(true).open(fx.p("seed"));
    assert!(w.is_err(), "passthrough did not engage");
    drop(f);
    h.unmount().unwrap();
}
