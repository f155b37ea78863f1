//! Real FUSE mounts in temp dirs; skipped (with a message) without root or
//! /dev/fuse.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{mount, mount_with, Options, SimfsHandle};
use crate::quota::{scan, IdKind, Limits, StateFile, Usage};

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

/// Whether `done` comes true within 2 s, asked every 10 ms: the kernel
/// sends a close's release after `close` returns.
fn after_release(mut done: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while !done() {
        if t.elapsed() > Duration::from_secs(2) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// A reader of the file at `path` that the kernel passes through, once the
/// last writer's release has come (until then readers use the page cache):
/// a read-write open beside it is refused as busy.
fn passthrough_reader(path: &Path) -> fs::File {
    let mut reader = None;
    let engaged = after_release(|| {
        let r = fs::File::open(path).unwrap();
        let busy = busy(open_rw(path));
        reader = busy.then_some(r);
        busy
    });
    assert!(engaged, "no passthrough for a private file");
    reader.expect("the reader that saw passthrough")
}

fn edquot(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EDQUOT)
}

/// Append `bytes` to the file at `path`.
fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    fs::OpenOptions::new()
        .append(true)
        .open(path)?
        .write_all(bytes)
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

/// A VPS's stack as `vzctl mount` makes it: simfs over the private area
/// (`fs/`, the overlay's upper dir, and `work/`, its work dir), and on top
/// the overlay of `lower` (the template) and simfs's `fs/`. Only the
/// private area is charged.
struct Overlay {
    _dir: tempfile::TempDir,
    lower: PathBuf,
    /// The private area on disk; `upper` is its `fs/`.
    private: PathBuf,
    upper: PathBuf,
    /// Where simfs shows the private area.
    simfs: PathBuf,
    /// The overlay: the VPS's root.
    mnt: PathBuf,
    state: PathBuf,
}

fn overlay() -> Option<Overlay> {
    fixture()?;
    let dir = tempfile::tempdir().ok()?;
    let top = dir.path().to_owned();
    let [lower, private, simfs, mnt] = ["lower", "private", "simfs", "mnt"].map(|d| top.join(d));
    let upper = private.join("fs");
    for d in [&lower, &upper, &private.join("work"), &simfs, &mnt] {
        fs::create_dir_all(d).ok()?;
    }
    if super::stacked(&private) {
        eprintln!(
            "skipped: an overlay over simfs needs {} on a disk's own file system, not a stacked one",
            private.display()
        );
        return None;
    }
    // Can this kernel mount an overlay at all?
    let probe = crate::vps::overlay::mount(
        &mnt,
        std::slice::from_ref(&lower),
        &upper,
        &private.join("work"),
        None,
    );
    if let Err((step, e)) = probe {
        eprintln!("skipped: overlay mount failed at {step}: {e}");
        return None;
    }
    let _ = rustix::mount::unmount(mnt.as_path(), rustix::mount::UnmountFlags::empty());
    fs::create_dir_all(lower.join("usr/lib")).ok()?;
    fs::create_dir_all(lower.join("etc/app")).ok()?;
    fs::write(lower.join("usr/lib/big"), vec![3u8; 1 << 20]).ok()?;
    fs::write(lower.join("etc/app/conf"), vec![b'c'; 10_000]).ok()?;
    fs::write(lower.join("etc/motd"), b"hello\n").ok()?;
    // Two names of one template inode, as templates have (perl, gzip).
    fs::write(lower.join("usr/lib/one"), vec![1u8; 50_000]).ok()?;
    fs::hard_link(lower.join("usr/lib/one"), lower.join("usr/lib/two")).ok()?;
    Some(Overlay {
        state: top.join("quota.json"),
        _dir: dir,
        lower,
        private,
        upper,
        simfs,
        mnt,
    })
}

impl Overlay {
    fn mount(&self, limits: Limits, ugid_limit: u64) -> Stack {
        let opts = Options {
            ugid_limit: Some(ugid_limit),
            ..Options::default()
        };
        let h =
            mount_with(&self.private, &self.simfs, limits, &self.state, opts).expect("mount simfs");
        crate::vps::overlay::mount(
            &self.mnt,
            std::slice::from_ref(&self.lower),
            &self.simfs.join("fs"),
            &self.simfs.join("work"),
            None,
        )
        .expect("mount the overlay over simfs");
        Stack {
            h: Some(h),
            mnt: self.mnt.clone(),
        }
    }
    fn p(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }
    /// What a fresh `vzquota init` of the private area would count.
    fn scan(&self) -> Usage {
        scan(&self.private).expect("scan the private area")
    }
}

/// simfs with the overlay on it; the overlay goes first.
struct Stack {
    h: Option<SimfsHandle>,
    mnt: PathBuf,
}

impl std::ops::Deref for Stack {
    type Target = SimfsHandle;
    fn deref(&self) -> &SimfsHandle {
        self.h.as_ref().expect("mounted")
    }
}

impl Stack {
    fn unmount(mut self) -> Result<Usage, super::SimfsError> {
        rustix::mount::unmount(self.mnt.as_path(), rustix::mount::UnmountFlags::empty())
            .expect("unmount the overlay");
        self.h.take().expect("mounted").unmount()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if self.h.is_some() {
            let _ = rustix::mount::unmount(self.mnt.as_path(), rustix::mount::UnmountFlags::DETACH);
        }
    }
}

#[test]
fn only_the_private_area_is_charged_and_copy_up_costs_the_copy() {
    let Some(ov) = overlay() else { return };
    let h = ov.mount(Limits::new((1 << 20, 1 << 20), (1000, 1000), 60), 0);
    let same = |what: &str| assert_eq!(h.usage(), ov.scan(), "after {what}");
    same("mount");
    assert!(
        h.usage().bytes < 64 << 10,
        "template not charged: {:?}",
        h.usage()
    );
    // A new name in a template directory: the overlay copies the
    // directory up first, and both are charged.
    fs::write(ov.p("etc/app/new"), b"n").unwrap();
    same("create in a template directory");
    fs::rename(ov.p("etc/app/new"), ov.p("etc/app/new2")).unwrap();
    same("rename within a directory");
    fs::remove_file(ov.p("etc/app/new2")).unwrap();
    same("delete of a new file");
    // Reading a template file costs nothing.
    assert_eq!(fs::read(ov.p("usr/lib/big")).unwrap().len(), 1 << 20);
    same("read");
    let before = h.usage();
    // One byte appended to the 1 MiB template file copies it up: charged.
    append(&ov.p("usr/lib/big"), b"x").unwrap();
    same("append to a template file");
    assert!(
        h.usage().bytes >= before.bytes + (1 << 20),
        "copy-up charged in full: {before:?} -> {:?}",
        h.usage()
    );
    assert_eq!(
        fs::read(ov.lower.join("usr/lib/big")).unwrap().len(),
        1 << 20
    );
    // Metadata changes copy up too.
    fs::set_permissions(
        ov.p("etc/app/conf"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    same("chmod of a template file");
    chown(ov.p("etc/motd"), Some(1000), None).unwrap();
    same("chown of a template file");
    fs::rename(ov.p("etc/motd"), ov.p("motd2")).unwrap();
    same("rename of a copied-up file");
    fs::hard_link(ov.p("motd2"), ov.p("motd3")).unwrap();
    same("hardlink");
    fs::remove_file(ov.p("motd3")).unwrap();
    same("delete of one of two names");
    fs::hard_link(ov.p("motd2"), ov.p("motd3")).unwrap();
    // Deleting template files is free (a whiteout) and always works.
    fs::remove_file(ov.p("etc/app/conf")).unwrap();
    fs::remove_dir(ov.p("etc/app")).unwrap();
    same("delete of template files");
    fs::remove_file(ov.p("usr/lib/big")).unwrap();
    same("delete of a copied-up file");
    assert!(h.usage().bytes < 64 << 10, "{:?}", h.usage());
    // Sparse: a truncate that extends allocates nothing.
    let f = fs::File::create(ov.p("sparse")).unwrap();
    f.set_len(100 << 20).unwrap();
    same("sparse file");
    // fallocate charges what it allocates, punching a hole frees it.
    rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, 256 << 10).unwrap();
    same("fallocate");
    rustix::fs::fallocate(
        &f,
        rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE,
        0,
        128 << 10,
    )
    .unwrap();
    same("punch hole");
    drop(f);
    // Writes through a shared mapping are charged when they reach the file.
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(ov.p("mapped"))
        .unwrap();
    f.set_len(64 << 10).unwrap();
    crate::sys::fs::fill_through_mapping(std::os::fd::AsFd::as_fd(&f), 64 << 10, 9).unwrap();
    drop(f);
    same("writes through mmap");
    assert!(h.usage().bytes >= ov.scan().bytes && ov.scan().bytes >= 64 << 10);
    h.unmount().unwrap();
    // Clean after unmount, and a fresh scan agrees.
    let s = StateFile::load(&ov.state).unwrap().unwrap();
    assert!(!s.dirty);
    assert_eq!(s.usage, ov.scan());
}

#[test]
fn copy_up_past_the_hard_limit_is_refused_and_nothing_changes() {
    let Some(ov) = overlay() else { return };
    let base = ov.scan().blocks_1k();
    // Room for 512K: the 1 MiB template file cannot be copied up.
    let h = ov.mount(Limits::new((base + 512, base + 512), (0, 0), 60), 0);
    let e = fs::OpenOptions::new()
        .append(true)
        .open(ov.p("usr/lib/big"))
        .expect_err("copy-up over quota");
    assert!(edquot(&e), "{e}");
    assert!(!ov.upper.join("usr/lib/big").exists(), "nothing copied");
    assert_eq!(h.usage(), ov.scan());
    // Deleting it still works (free: a whiteout).
    fs::remove_file(ov.p("usr/lib/big")).unwrap();
    assert_eq!(h.usage(), ov.scan());
    // The small one fits.
    append(&ov.p("etc/motd"), b"more\n").unwrap();
    assert_eq!(h.usage(), ov.scan());
    h.unmount().unwrap();
}

#[test]
fn second_level_per_uid_and_gid() {
    let Some(ov) = overlay() else { return };
    let h = ov.mount(Limits::new((1 << 20, 1 << 20), (1000, 1000), 60), 100);
    let now = crate::quota::now_secs();
    let id_limits = crate::quota::IdLimits {
        block_soft: 100,
        block_hard: 200,
        inode_soft: 0,
        inode_hard: 3,
    };
    h.with_quota(|q| q.set_id_limits(IdKind::User, 1000, id_limits, now));
    let as_user = |path: &Path| chown(path, Some(1000), Some(1000)).unwrap();
    let user = |h: &SimfsHandle| h.with_quota(|q| q.id_usage(IdKind::User, 1000));
    let group = |h: &SimfsHandle| h.with_quota(|q| q.id_usage(IdKind::Group, 1000));
    // A file given to uid 1000: its blocks move to 1000's account.
    fill(&ov.p("a"), 50_000).unwrap();
    as_user(&ov.p("a"));
    let u = user(&h).expect("uid 1000 tracked");
    assert_eq!(u.inodes, 1);
    assert!(u.bytes >= 50_000, "{u:?}");
    assert_eq!(group(&h).map(|g| g.inodes), Some(1));
    // Its hard limit (200K) holds for writes to files it owns.
    let e = fill(&ov.p("a"), 300_000).expect_err("past uid 1000's hard limit");
    assert!(edquot(&e), "{e}");
    assert!(user(&h).unwrap().blocks_1k() <= 200);
    // The first level is not the limit here: root writes on.
    fill(&ov.p("rootfile"), 300_000).expect("root has no limit");
    // A chown onto uid 1000 that would pass its limit is refused.
    let e = chown(ov.p("rootfile"), Some(1000), None).expect_err("chown past the limit");
    assert!(edquot(&e), "{e}");
    // Deleting releases 1000's charge; per-id figures match a scan by id.
    fs::remove_file(ov.p("a")).unwrap();
    // Its limits keep it tracked, at zero.
    assert_eq!(user(&h).map(|u| (u.bytes, u.inodes)), Some((0, 0)));
    let by_id = crate::quota::scan_ids(&ov.private).unwrap();
    assert_eq!(
        user(&h).unwrap_or_default(),
        by_id.users.get(&1000).copied().unwrap_or_default()
    );
    assert_eq!(h.usage(), by_id.usage);
    h.unmount().unwrap();
}

/// Open `path` for reading and writing: refused as busy while the kernel
/// reads the file itself (passthrough).
fn open_rw(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new().read(true).write(true).open(path)
}

fn busy(r: std::io::Result<fs::File>) -> bool {
    match r {
        Err(e) => e.raw_os_error() == Some(libc::ETXTBSY),
        Ok(_) => false,
    }
}

#[test]
fn reads_pass_through_and_writers_beside_them_are_direct_or_wait() {
    let Some(ov) = overlay() else { return };
    let h = ov.mount(Limits::none(), 0);
    let big = ov.p("usr/lib/big");
    let mut f = fs::File::open(&big).unwrap();
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    assert_eq!(v.len(), 1 << 20);
    // A template file is read by the overlay from its layer, never
    // through simfs, so a read-write open beside a reader is a copy-up,
    // at once; the reader goes on with the template's file.
    let t = Instant::now();
    let mut rw = open_rw(&big).expect("read-write open of a template file");
    assert!(
        t.elapsed() < Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    rw.write_all(b"y").unwrap();
    drop(rw);
    v.clear();
    f.read_to_end(&mut v).unwrap();
    assert_eq!(v, b"");
    drop(f);
    assert_eq!(fs::read(&big).unwrap()[0], b'y');
    assert_eq!(fs::read(ov.lower.join("usr/lib/big")).unwrap()[0], 3);

    // A file of the private area (through simfs) is read through
    // passthrough, once the writer's release (which the kernel sends after
    // `close` returns) has come: until then readers use the page cache.
    fs::write(ov.p("log"), b"1\n").unwrap();
    let mut r = passthrough_reader(&ov.p("log"));
    append(&ov.p("log"), b"2\n").unwrap();
    let mut got = String::new();
    r.read_to_string(&mut got).unwrap();
    assert_eq!(got, "1\n2\n");
    drop(r);
    // A read-write open waits for that reader's release; a writer opened
    // before it would still share its passthrough.
    drop(open_rw(&ov.p("log")).unwrap());
    // While a writer has it open, readers go through the page cache, so a
    // read-write open beside them is fine.
    let mut w = fs::OpenOptions::new()
        .append(true)
        .open(ov.p("log"))
        .unwrap();
    let r = fs::File::open(ov.p("log")).unwrap();
    let mut rw = open_rw(&ov.p("log")).unwrap();
    w.write_all(b"3\n").unwrap();
    rw.write_all(b"0").unwrap();
    drop((w, r, rw));
    assert_eq!(fs::read(ov.p("log")).unwrap(), b"0\n2\n3\n");
    assert_eq!(h.usage(), ov.scan());
    h.unmount().unwrap();
}

/// A read-write open of a file a reader has open through passthrough waits
/// for the reader's release, and goes ahead as soon as it comes, not at the
/// end of the wait (200 ms, after which it is refused as busy).
#[test]
fn a_read_write_open_goes_ahead_when_the_reader_closes() {
    let Some(ov) = overlay() else { return };
    let h = ov.mount(Limits::none(), 0);
    let log = ov.p("log");
    fs::write(&log, b"1\n").unwrap();
    let reader = passthrough_reader(&log);
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        drop(reader);
    });
    let t = Instant::now();
    let rw = open_rw(&log);
    let took = t.elapsed();
    closer.join().unwrap();
    assert!(rw.is_ok(), "read-write open beside a reader: {rw:?}");
    assert!(
        took >= Duration::from_millis(25),
        "did not wait for the reader: {took:?}"
    );
    assert!(
        took < Duration::from_millis(180),
        "waited on past the reader's release: {took:?}"
    );
    drop(rw);
    h.unmount().unwrap();
}

#[test]
fn block_hard_limit_is_reached_exactly() {
    let Some(fx) = fixture() else { return };
    // `fill` appends 64K chunks; 400K is not a multiple, so the last write
    // of a 4K step decides.
    let base = fx.base().blocks_1k();
    let h = fx.mount(Limits::new((0, base + 400), (0, 0), 60));
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(fx.p("exact"))
        .unwrap();
    for i in 0..100 {
        f.write_all(&[5u8; 4096])
            .unwrap_or_else(|e| panic!("4K write {i} of 100 within the limit: {e}"));
    }
    f.sync_all().unwrap();
    assert_eq!(h.usage().blocks_1k(), base + 400, "at the limit exactly");
    let e = f
        .write_all(&[5u8; 4096])
        .expect_err("one block past the hard limit");
    assert!(edquot(&e), "{e}");
    assert_eq!(h.usage(), fx.base());
    drop(f);
    h.unmount().unwrap();
}

#[test]
fn second_level_soft_limit_with_grace_and_inode_hard_limit() {
    let Some(ov) = overlay() else { return };
    let h = ov.mount(Limits::none(), 10);
    let now = crate::quota::now_secs();
    h.with_quota(|q| {
        q.set_id_grace(IdKind::Group, crate::quota::IdGrace { block: 1, inode: 1 });
        q.set_id_limits(
            IdKind::Group,
            777,
            crate::quota::IdLimits {
                block_soft: 100,
                block_hard: 10_000,
                inode_soft: 0,
                inode_hard: 2,
            },
            now,
        );
    });
    let give = |p: &Path| {
        chown(p, None, Some(777)).unwrap();
    };
    fs::write(ov.p("g1"), b"").unwrap();
    give(&ov.p("g1"));
    // Over the group's soft limit, within its grace: allowed.
    fill(&ov.p("g1"), 200_000).expect("within grace");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let e = fill(&ov.p("g1"), 4096).expect_err("group grace over");
    assert!(edquot(&e), "{e}");
    // Inodes: the group's second file is its last.
    fs::write(ov.p("g2"), b"").unwrap();
    give(&ov.p("g2"));
    fs::write(ov.p("g3"), b"").unwrap();
    let e = chown(ov.p("g3"), None, Some(777)).expect_err("third inode for gid 777");
    assert!(edquot(&e), "{e}");
    // Freeing brings it under soft: writes work again.
    fs::remove_file(ov.p("g1")).unwrap();
    fill(&ov.p("g2"), 8192).expect("under the soft limit again");
    let by_id = crate::quota::scan_ids(&ov.private).unwrap();
    assert_eq!(
        h.with_quota(|q| q.id_usage(IdKind::Group, 777)),
        by_id.groups.get(&777).copied()
    );
    h.unmount().unwrap();
}

#[test]
fn xattrs_pass_through_and_setting_one_on_a_template_file_copies_it_up() {
    let Some(ov) = overlay() else { return };
    // A template file's attribute (as file capabilities are) is visible.
    if xattr::set(ov.lower.join("etc/motd"), "user.origin", b"layer").is_err() {
        eprintln!("skipped: the backing file system has no user xattrs");
        return;
    }
    let h = ov.mount(Limits::new((1 << 20, 1 << 20), (1000, 1000), 60), 0);
    let got = xattr::get(ov.p("etc/motd"), "user.origin").unwrap();
    assert_eq!(got.as_deref(), Some(&b"layer"[..]));
    let names: Vec<_> = xattr::list(ov.p("etc/motd")).unwrap().collect();
    assert!(names.iter().any(|n| n == "user.origin"), "{names:?}");
    // Setting one copies the file up, charged; the layer keeps its own.
    xattr::set(ov.p("etc/motd"), "user.vps", b"mine").unwrap();
    assert_eq!(h.usage(), ov.scan());
    assert!(ov.upper.join("etc/motd").exists());
    assert_eq!(
        xattr::get(ov.lower.join("etc/motd"), "user.vps").unwrap(),
        None
    );
    assert_eq!(
        xattr::get(ov.p("etc/motd"), "user.vps").unwrap().as_deref(),
        Some(&b"mine"[..])
    );
    xattr::remove(ov.p("etc/motd"), "user.vps").unwrap();
    assert_eq!(xattr::get(ov.p("etc/motd"), "user.vps").unwrap(), None);
    h.unmount().unwrap();
}

/// Run `sh -c script` as uid/gid 1000, as a VPS user would.
fn as_uid_1000(script: &str) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    std::process::Command::new("/bin/sh")
        .args(["-c", script])
        .uid(1000)
        .gid(1000)
        .output()
        .expect("run sh as uid 1000")
}

#[test]
fn writes_and_truncates_by_a_user_drop_set_id_bits_and_root_keeps_them() {
    let Some(ov) = overlay() else { return };
    let h = ov.mount(Limits::new((1 << 20, 1 << 20), (1000, 1000), 60), 0);
    let mode = |name: &str| {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(ov.p(name)).unwrap().permissions().mode() & 0o7777
    };
    let setid = |name: &str| {
        use std::os::unix::fs::PermissionsExt;
        fs::write(ov.p(name), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(ov.p(name), fs::Permissions::from_mode(0o6777)).unwrap();
        assert_eq!(mode(name), 0o6777);
    };
    // A user appends, truncates, or opens with O_TRUNC: the kernel leaves
    // dropping the bits to simfs, which must not keep them.
    setid("w");
    let out = as_uid_1000(&format!("echo x >> {}", ov.p("w").display()));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode("w"), 0o777, "a user's write drops set-id bits");
    setid("t");
    let out = as_uid_1000(&format!("truncate -s 1 {}", ov.p("t").display()));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode("t"), 0o777, "a user's truncate drops set-id bits");
    setid("o");
    let out = as_uid_1000(&format!("echo y > {}", ov.p("o").display()));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode("o"), 0o777, "a user's O_TRUNC open drops set-id bits");
    // Root (CAP_FSETID) keeps them, as on any file system.
    setid("r");
    fill(&ov.p("r"), 10).unwrap();
    assert_eq!(mode("r"), 0o6777, "root's write keeps set-id bits");
    // chown drops set-user-ID, as the kernel does for everyone.
    setid("c");
    chown(ov.p("c"), Some(1000), None).unwrap();
    assert_eq!(mode("c") & 0o4000, 0, "chown drops set-user-ID");
    assert_eq!(h.usage(), ov.scan());
}

#[test]
fn directories_renamed_or_removed_and_made_again_stay_right() {
    let Some(ov) = overlay() else { return };
    let h = ov.mount(Limits::new((1 << 20, 1 << 20), (1000, 1000), 60), 0);
    // Work in a directory, rename it, keep working in it under its new name.
    fs::create_dir(ov.p("d")).unwrap();
    fs::write(ov.p("d/a"), b"a").unwrap();
    fs::rename(ov.p("d"), ov.p("e")).unwrap();
    fs::write(ov.p("e/b"), b"b").unwrap();
    assert!(ov.upper.join("e/b").exists(), "created under the new name");
    assert!(!ov.upper.join("d").exists());
    // Remove it and make one of the same name: the new one is empty and
    // what is made in it lands there.
    fs::remove_dir_all(ov.p("e")).unwrap();
    for round in 0..20 {
        fs::create_dir(ov.p("e")).unwrap();
        assert_eq!(fs::read_dir(ov.p("e")).unwrap().count(), 0, "round {round}");
        fs::write(ov.p("e/c"), b"c").unwrap();
        assert_eq!(
            fs::read(ov.upper.join("e/c")).unwrap(),
            b"c",
            "round {round}"
        );
        fs::remove_dir_all(ov.p("e")).unwrap();
    }
    // A template directory, copied up by the first file made in it.
    fs::write(ov.p("etc/app/new"), b"n").unwrap();
    fs::write(ov.p("etc/app/new2"), b"n").unwrap();
    assert!(ov.upper.join("etc/app/new2").exists());
    assert_eq!(fs::read(ov.p("etc/app/conf")).unwrap().len(), 10_000);
    assert_eq!(h.usage(), ov.scan());
}

#[test]
fn times_are_set_on_files_template_files_and_symlinks() {
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, UNIX_EPOCH};
    let Some(ov) = overlay() else { return };
    let h = ov.mount(Limits::none(), 0);
    let when = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let times = fs::FileTimes::new().set_accessed(when).set_modified(when);
    fs::write(ov.p("new"), b"x").unwrap();
    for name in ["new", "etc/motd"] {
        // A template file is copied up by the change.
        fs::File::options()
            .write(true)
            .open(ov.p(name))
            .unwrap()
            .set_times(times)
            .unwrap();
        let m = fs::metadata(ov.p(name)).unwrap();
        assert_eq!(
            (m.mtime(), m.atime()),
            (1_000_000_000, 1_000_000_000),
            "{name}"
        );
    }
    std::os::unix::fs::symlink("new", ov.p("link")).unwrap();
    let ts = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 5,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 7,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        ov.p("link"),
        &ts,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
    assert_eq!(fs::symlink_metadata(ov.p("link")).unwrap().mtime(), 7);
    assert_eq!(fs::metadata(ov.p("link")).unwrap().mtime(), 1_000_000_000);
    // Without a file handle too (touch -d by path).
    rustix::fs::utimensat(
        rustix::fs::CWD,
        ov.p("new"),
        &ts,
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    assert_eq!(fs::metadata(ov.p("new")).unwrap().mtime(), 7);
    assert_eq!(h.usage(), ov.scan());
    h.unmount().unwrap();
}

#[test]
fn changing_each_name_of_a_hardlinked_template_file_charges_each_copy() {
    use std::os::unix::fs::PermissionsExt;
    let Some(ov) = overlay() else { return };
    let h = ov.mount(Limits::new((1 << 20, 1 << 20), (1000, 1000), 60), 100);
    let same = |what: &str| assert_eq!(h.usage(), ov.scan(), "after {what}");
    let chmod = |name: &str, mode: u32| {
        fs::set_permissions(ov.p(name), fs::Permissions::from_mode(mode)).unwrap();
    };
    // The overlay copies up the name changed and leaves the other in the
    // template: each copy is charged once, when it is made.
    chmod("usr/lib/one", 0o600);
    same("chmod of one name");
    chmod("usr/lib/two", 0o640);
    same("chmod of the other name: copied up too");
    assert!(h.usage().bytes >= 100_000, "both copies: {:?}", h.usage());
    chmod("usr/lib/one", 0o644);
    chown(ov.p("usr/lib/two"), Some(1000), None).unwrap();
    same("changes of the copies");
    // Files and directories made inside change in place, charged right.
    fs::create_dir(ov.p("made")).unwrap();
    fill(&ov.p("made/f"), 30_000).unwrap();
    chmod("made/f", 0o600);
    chown(ov.p("made/f"), Some(1000), Some(1000)).unwrap();
    chown(ov.p("made"), Some(1000), None).unwrap();
    same("changes of made files");
    let by_id = crate::quota::scan_ids(&ov.private).unwrap();
    assert_eq!(h.usage(), by_id.usage);
    assert_eq!(
        h.with_quota(|q| q.id_usage(IdKind::User, 1000))
            .unwrap_or_default(),
        by_id.users.get(&1000).copied().unwrap_or_default()
    );
    h.unmount().unwrap();
}

#[test]
fn blocks_the_file_system_allocates_at_writeback_are_charged() {
    use std::os::unix::fs::FileExt;
    let Some(ov) = overlay() else { return };
    let h = ov.mount(Limits::new((1 << 20, 1 << 20), (1000, 1000), 60), 0);
    // Blocks far apart are an extent each: past four, ext4 adds an extent
    // block when writeback allocates them, after the writes were measured.
    let scattered = |name: &str, sync_between: bool| {
        let f = fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(ov.p(name))
            .unwrap();
        for i in 0..6u64 {
            f.write_all_at(&[9u8; 4096], i * 65536).unwrap();
        }
        if sync_between {
            // Writeback now, between two writes of an open file.
            f.sync_all().unwrap();
        }
        f.write_all_at(&[9u8; 4096], 6 * 65536).unwrap();
    };
    let settled = || {
        after_release(|| h.usage() == ov.scan());
        h.usage()
    };
    scattered("synced", true);
    assert_eq!(settled(), ov.scan(), "synced between writes");
    scattered("closed", false);
    // The release (the kernel sends it after `close` returns) has the
    // file written back, and ext4 then adds its extent block: until that
    // shows, usage and a scan agree only because neither has it yet. Before
    // writeback the file allocates just its seven data blocks.
    let bytes = || {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(ov.upper.join("closed")).map_or(0, |m| m.blocks() * 512)
    };
    assert!(
        after_release(|| bytes() > 7 * 4096),
        "no writeback started at the release: {} bytes allocated",
        bytes()
    );
    assert_eq!(settled(), ov.scan(), "allocated at close");
    // The close had the private area's file allocated: writeback that
    // runs later (here a `sync`, well after the release) changes nothing
    // the quota would miss.
    std::thread::sleep(Duration::from_millis(200));
    rustix::fs::sync();
    assert_eq!(settled(), ov.scan(), "written back after the close");
    for name in ["synced", "closed"] {
        fs::remove_file(ov.p(name)).unwrap();
    }
    assert_eq!(h.usage(), ov.scan(), "removed");
    h.unmount().unwrap();
}

#[test]
fn writes_to_a_removed_file_are_given_back_when_it_closes() {
    use std::os::unix::fs::FileExt;
    let Some(ov) = overlay() else { return };
    let h = ov.mount(Limits::new((1 << 20, 1 << 20), (1000, 1000), 60), 0);
    let start = h.usage();
    // A log removed while its writer goes on writing, as after a rotation.
    let f = fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(ov.p("log"))
        .unwrap();
    f.write_all_at(&[1u8; 65536], 0).unwrap();
    fs::remove_file(ov.p("log")).unwrap();
    assert_eq!(h.usage(), ov.scan(), "removed, still open");
    f.write_all_at(&[2u8; 65536], 65536).unwrap();
    assert!(
        h.usage().bytes >= start.bytes + 65536,
        "still charged while open: {:?}",
        h.usage()
    );
    drop(f);
    after_release(|| h.usage() == start);
    assert_eq!(h.usage(), start, "given back at the close");
    assert_eq!(h.usage(), ov.scan());
    h.unmount().unwrap();
}

#[test]
fn changes_through_an_open_file_reach_it_after_its_name_is_gone() {
    use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
    let Some(ov) = overlay() else { return };
    let h = ov.mount(Limits::new((1 << 20, 1 << 20), (1000, 1000), 60), 100);
    let user = |h: &SimfsHandle, id| {
        h.with_quota(|q| q.id_usage(IdKind::User, id))
            .unwrap_or_default()
    };
    let start = h.usage();
    // A temp file removed while open, and another file made under its name.
    let f = fs::OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(ov.p("tmp"))
        .unwrap();
    f.write_all_at(&[1u8; 40_000], 0).unwrap();
    fs::remove_file(ov.p("tmp")).unwrap();
    fs::write(ov.p("tmp"), b"new").unwrap();
    fs::set_permissions(ov.p("tmp"), fs::Permissions::from_mode(0o644)).unwrap();
    // fchmod, fchown, futimens and ftruncate change the open file only.
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .unwrap();
    f.write_all_at(&[2u8; 60_000], 40_000).unwrap();
    // Its xattrs: set, listed, read and removed on it, not on the new file.
    let big = vec![7u8; 3000];
    let none = rustix::fs::XattrFlags::empty();
    rustix::fs::fsetxattr(&f, "user.big", &big, none).expect("fsetxattr");
    rustix::fs::fsetxattr(&f, "user.gone", b"x", none).expect("fsetxattr");
    rustix::fs::fremovexattr(&f, "user.gone").expect("fremovexattr");
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::flistxattr(&f, &mut buf).expect("flistxattr");
    assert_eq!(&buf[..n], b"user.big\0");
    let n = rustix::fs::fgetxattr(&f, "user.big", &mut buf).expect("fgetxattr");
    assert_eq!(&buf[..n], &big[..]);
    let n = rustix::fs::listxattr(ov.p("tmp"), &mut buf).expect("listxattr");
    let names: Vec<&[u8]> = buf[..n].split(|&b| b == 0).collect();
    assert!(!names.contains(&&b"user.big"[..]), "the new file has none");
    std::os::unix::fs::fchown(&f, Some(1000), Some(1000)).unwrap();
    let old = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000);
    f.set_times(fs::FileTimes::new().set_modified(old)).unwrap();
    let md = f.metadata().unwrap();
    assert_eq!(md.mode() & 0o7777, 0o600);
    assert_eq!((md.uid(), md.gid()), (1000, 1000));
    assert_eq!(md.mtime(), 1_000_000);
    let named = fs::symlink_metadata(ov.upper.join("tmp")).unwrap();
    assert_eq!(named.mode() & 0o7777, 0o644, "the new file kept its mode");
    assert_eq!((named.uid(), named.len()), (0, 3), "and its owner and data");
    assert_ne!(named.mtime(), 1_000_000);
    // What the writes after the removal added moved to uid 1000 with it.
    let moved = user(&h, 1000);
    assert_eq!(moved.inodes, 0, "its inode went with its name");
    assert!(moved.bytes >= 60_000, "{moved:?}");
    f.set_len(50_000).unwrap();
    assert!(user(&h, 1000).bytes < moved.bytes, "a truncate frees some");
    // Opened again through /proc, as a program recovering it does.
    let again = PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&f)
    ));
    let data = fs::read(&again).expect("read through /proc");
    assert_eq!(data.len(), 50_000);
    assert_eq!((data[0], data[49_999]), (1, 2));
    let w = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&again)
        .expect("reopen for writing");
    assert_eq!(w.metadata().unwrap().len(), 0);
    w.write_all_at(&[3u8; 8192], 0).unwrap();
    drop(w);
    assert_eq!(f.metadata().unwrap().len(), 8192);
    drop(f);
    assert!(
        after_release(|| user(&h, 1000).bytes == 0),
        "given back at the close: {:?}",
        user(&h, 1000)
    );
    let by_id = crate::quota::scan_ids(&ov.private).unwrap();
    assert_eq!(h.usage(), by_id.usage);
    assert_eq!(
        user(&h, 0),
        by_id.users.get(&0).copied().unwrap_or_default()
    );
    assert!(h.usage().bytes > start.bytes, "the new file is charged");
    h.unmount().unwrap();
}

#[test]
fn a_symlink_replaced_under_its_name_reads_its_new_target() {
    let Some(ov) = overlay() else { return };
    let h = ov.mount(Limits::new((1 << 20, 1 << 20), (1000, 1000), 60), 0);
    // A new symlink under an old name is a new inode, read afresh.
    std::os::unix::fs::symlink("etc/motd", ov.p("l")).unwrap();
    assert_eq!(fs::read(ov.p("l")).unwrap(), b"hello\n");
    fs::remove_file(ov.p("l")).unwrap();
    std::os::unix::fs::symlink("etc/app/conf", ov.p("l")).unwrap();
    assert_eq!(fs::read_link(ov.p("l")).unwrap(), Path::new("etc/app/conf"));
    std::os::unix::fs::symlink("usr/lib/one", ov.p("m")).unwrap();
    fs::rename(ov.p("m"), ov.p("l")).unwrap();
    assert_eq!(fs::read_link(ov.p("l")).unwrap(), Path::new("usr/lib/one"));
    assert_eq!(fs::read(ov.p("l")).unwrap().len(), 50_000);
    // A symlink to a directory, replaced: a walk through it follows the new one.
    std::os::unix::fs::symlink("etc", ov.p("d")).unwrap();
    assert_eq!(fs::read(ov.p("d/motd")).unwrap(), b"hello\n");
    fs::remove_file(ov.p("d")).unwrap();
    std::os::unix::fs::symlink("usr/lib", ov.p("d")).unwrap();
    assert!(ov.p("d/big").exists(), "the walk follows the new target");
    assert_eq!(h.usage(), ov.scan());
    h.unmount().unwrap();
}

#[test]
fn a_live_query_waits_for_the_releases_begun_before_it_and_no_others() {
    let s = super::fs::Settling::default();
    std::thread::scope(|sc| {
        // A release under way, over in 300 ms; another begun at 100 ms,
        // while the query waits, and lasting 3 s.
        let early = s.begin();
        sc.spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(early);
        });
        sc.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            let late = s.begin();
            std::thread::sleep(Duration::from_secs(3));
            drop(late);
        });
        let t = Instant::now();
        s.wait_begun(Duration::from_secs(60));
        let waited = t.elapsed();
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    });
}

/// dpkg's database updates, with the status file held open from before
/// its first copy-up (apt keeps it so while dpkg runs): the copy-up is
/// renamed over and its last name removed while the overlay still holds
/// its inode, and the next file made gets that inode number from the file
/// system once it is free. The new file must be a new inode to the
/// kernel: the overlay, which keys its inode of a copied-up hardlink by
/// the upper inode, would give it the held file's, and renaming it would
/// fail with `ESTALE`.
#[test]
fn a_file_made_after_a_removed_one_is_a_new_inode_while_the_old_one_is_held() {
    let Some(ov) = overlay() else { return };
    fs::create_dir_all(ov.lower.join("var/lib/dpkg/updates")).unwrap();
    fs::write(ov.lower.join("var/lib/dpkg/status"), b"round -1\n").unwrap();
    // Hardlinked in the layer, as the store links files of the same
    // content.
    fs::hard_link(
        ov.lower.join("var/lib/dpkg/status"),
        ov.lower.join("var/lib/dpkg/status.same"),
    )
    .unwrap();
    let h = ov.mount(Limits::new((1 << 20, 1 << 20), (1000, 1000), 60), 0);
    let d = ov.p("var/lib/dpkg");
    let held = fs::File::open(d.join("status")).unwrap();
    for round in 0..20 {
        fs::write(d.join("status-new"), format!("round {round}\n")).unwrap();
        match fs::remove_file(d.join("status-old")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                panic!("round {round}: unlink status-old: {e}")
            }
            _ => {}
        }
        fs::hard_link(d.join("status"), d.join("status-old"))
            .unwrap_or_else(|e| panic!("round {round}: link: {e}"));
        fs::rename(d.join("status-new"), d.join("status"))
            .unwrap_or_else(|e| panic!("round {round}: rename status: {e}"));
        for n in 0..3 {
            let tmp = d.join("updates/tmp.i");
            fs::write(&tmp, format!("{round}.{n}\n")).unwrap();
            fs::rename(&tmp, d.join(format!("updates/{n:04}")))
                .unwrap_or_else(|e| panic!("round {round}: rename update {n}: {e}"));
        }
        for n in 0..3 {
            let p = d.join(format!("updates/{n:04}"));
            assert_eq!(fs::read_to_string(&p).unwrap(), format!("{round}.{n}\n"));
            fs::remove_file(p).unwrap();
        }
    }
    // The held open reads what it opened.
    let mut old = String::new();
    (&held).read_to_string(&mut old).unwrap();
    assert_eq!(old, "round -1\n");
    drop(held);
    assert_eq!(fs::read_to_string(d.join("status")).unwrap(), "round 19\n");
    assert_eq!(h.usage(), ov.scan());
    h.unmount().unwrap();
}

/// A file with two names, one replaced by a rename: the other still reads
/// the file, and when it is removed too the file is gone.
#[test]
fn the_other_name_of_a_file_renamed_over_still_reads_it() {
    let Some(ov) = overlay() else { return };
    let h = ov.mount(Limits::new((1 << 20, 1 << 20), (1000, 1000), 60), 0);
    for round in 0..5 {
        fs::write(ov.p("new"), format!("round {round}\n")).unwrap();
        if round > 0 {
            fs::hard_link(ov.p("cur"), ov.p("old")).unwrap();
        }
        fs::rename(ov.p("new"), ov.p("cur")).unwrap();
        if round > 0 {
            assert_eq!(
                fs::read_to_string(ov.p("old")).unwrap(),
                format!("round {}\n", round - 1),
                "round {round}: the other name reads the file it names"
            );
            fs::remove_file(ov.p("old")).unwrap();
        }
        assert_eq!(
            fs::read_to_string(ov.p("cur")).unwrap(),
            format!("round {round}\n")
        );
    }
    assert!(!ov.p("old").exists());
    assert_eq!(h.usage(), ov.scan());
    h.unmount().unwrap();
}
