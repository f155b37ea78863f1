//! The FUSE operations. Inodes map to (parent inode, name) so a rename
//! updates one entry; a path is rebuilt from those names and opened
//! relative to the backing root's `O_PATH` fd with `RESOLVE_BENEATH`.
//! A path names whatever has the name now: a file removed while open is
//! reached through its open instead (setattr, getattr, xattrs, an open
//! again through /proc/PID/fd), and so is a file open for writing, which
//! spares the walk.
//!
//! Quota counts everything under the backing root: on a VPS that is the
//! private area, with the overlay on top of us, so template files the VPS
//! has not changed never reach us and are free. An operation that may
//! change the tree looks at the paths it touches before and after (the
//! entry, and parent directories that may appear with it) and charges the
//! difference; so a copy-up of a template file (open for writing, chmod,
//! chown, link, rename) is charged in full, as the overlay writes the copy
//! through us. Whiteouts (deleted template files) are free.
//!
//! Opens (see `Io`): a read-only open is handed to the kernel (FUSE
//! passthrough), so it reads the backing file itself, at the disk's speed.
//! Every write comes to us, for accounting. A write-only open is
//! direct I/O: it mixes with passthrough opens of the file. A read-write
//! open goes through the kernel's page cache (so it can be mapped and its
//! reads cached), and the kernel will not mix that with passthrough: while
//! a passthrough open of the file is live, a read-write open waits a moment
//! for it to close and then fails with `ETXTBSY`, as writing a running
//! program does; while a cached or direct open is live, read-only opens are
//! cached too.

use std::collections::{BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    BackingId, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps};

use crate::quota::{now_secs, Exceeded, Owner, Quota};
use crate::sys::fs::Writeback;

/// How long the kernel may trust names and attributes we gave it. Every
/// change to the tree while mounted goes through simfs (the layers are
/// read-only, the private area is only written through the overlay), so
/// the kernel's caches stay right and a long TTL saves a lookup per use.
const TTL: Duration = Duration::from_secs(60);
/// Deeper than any real tree; stops a corrupt parent chain from looping.
const MAX_DEPTH: usize = 4096;

struct Node {
    /// The names the kernel knows it by, (parent inode, name), the first
    /// the one its path is built from: when one name of a hardlinked file
    /// is replaced or removed, its others still reach it. Empty once the
    /// last is gone.
    names: Vec<(u64, OsString)>,
    nlookup: u64,
    key: (u64, u64),
    /// Made in the private area through us (or the root, or a directory
    /// made or copied up there): a change in place needs no look there.
    /// Not set by a template file's copy-up: which inode number the overlay
    /// then shows (the template's or the copy's) depends on the template's
    /// hardlinks and the overlay's options; a file made here has its own.
    private: bool,
    /// The object, held from the removal of its last name until the kernel
    /// forgets it (an open from before, or the overlay's inode of a
    /// copied-up file, keeps it in the kernel): what the kernel does to it
    /// reaches that object, and the file system cannot give its inode
    /// number to a new file meanwhile.
    removed: Option<Arc<OwnedFd>>,
}

/// Names kept per node: hardlinks the kernel looked up, beyond which the
/// oldest are dropped (the overlay's shared whiteout has thousands).
const MAX_NAMES: usize = 16;

struct Nodes {
    map: HashMap<u64, Node>,
    by_key: HashMap<(u64, u64), u64>,
    next: u64,
}

enum Handle {
    File {
        /// Shared so a request uses it without a `dup`.
        fd: Arc<OwnedFd>,
        ino: u64,
        io: Io,
        writes: bool,
    },
    Dir(Vec<(u64, FileType, OsString)>),
}

/// How the kernel does one open's I/O.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Io {
    /// Through the kernel's page cache of the file: what it lacks and what
    /// is written come to us (read-write opens).
    Cached,
    /// Every read and write comes to us past the page cache (write-only
    /// opens). It mixes with passthrough opens of the file, and the kernel
    /// skips the capability lookup it makes before each cached write.
    Direct,
    /// Reads by the kernel itself from the backing file. A write-only open
    /// made while the file is open so is passthrough and direct: its writes
    /// still come to us.
    Passthrough,
}

/// How one inode is open in the kernel. Passthrough opens share one backing
/// id (the kernel wants the same for all of them) and cannot coexist with
/// cached opens.
#[derive(Default)]
struct Opens {
    /// Shared with the replies that send it: a reply is written after the
    /// table's lock is let go (writing it wakes the caller).
    backing: Option<Arc<BackingId>>,
    passthrough: usize,
    cached: usize,
    direct: usize,
    /// Bytes allocated when a write or `fallocate` through an open last
    /// measured the file. The file system allocates delayed blocks, and
    /// the extent blocks they need, at writeback, between two of our
    /// measurements: the next one charges that too.
    measured: Option<i64>,
    /// Charged for writes after the file lost its last name, and whose:
    /// the file system frees those blocks when the last open closes.
    orphan: Option<(Owner, i64)>,
    /// The fd of a live writing open: the file the VPS has open (copied
    /// up by that open), whatever names it has now. A change of its
    /// attributes or a look at its xattrs goes through it without a walk
    /// (a program that made a file sets its owner, mode and times on the
    /// open file, as tar does).
    writer: Option<Arc<OwnedFd>>,
}

impl Opens {
    fn count(&mut self, io: Io) -> &mut usize {
        match io {
            Io::Cached => &mut self.cached,
            Io::Direct => &mut self.direct,
            Io::Passthrough => &mut self.passthrough,
        }
    }
}

/// The flags of an open's reply. Cached opens keep the kernel's page cache
/// of the file from one open to the next: every write reaches the file
/// through us (direct writes drop the pages they cover), so it stays right.
fn fopen_flags(io: Io, writes: bool) -> FopenFlags {
    match io {
        Io::Cached => FopenFlags::FOPEN_KEEP_CACHE,
        Io::Direct => FopenFlags::FOPEN_DIRECT_IO,
        // Without direct I/O the kernel would write the backing file
        // itself, past the quota.
        Io::Passthrough if writes => FopenFlags::FOPEN_DIRECT_IO,
        Io::Passthrough => FopenFlags::empty(),
    }
}

/// Releases settling what a written file allocated (see `SimFs::release`):
/// they may wait for its writeback, and a look at the usage meanwhile
/// would catch a block the file system holds only until the writes
/// complete. A query of the live figures waits for those begun before it
/// (see `SimfsHandle::settle`); later ones, from a VPS busy closing files,
/// do not hold it up.
#[derive(Default)]
pub(crate) struct Settling {
    /// The next release's number, and those of the releases under way.
    state: Mutex<(u64, BTreeSet<u64>)>,
    done: Wakeup,
}

impl Settling {
    pub(crate) fn begin(&self) -> Settle<'_> {
        let mut s = lock(&self.state);
        let n = s.0;
        s.0 += 1;
        s.1.insert(n);
        Settle(self, n)
    }

    /// Wait until the releases under way now are over, or `limit` has
    /// passed.
    pub(crate) fn wait_begun(&self, limit: Duration) {
        let s = lock(&self.state);
        let upto = s.0;
        drop(
            self.done
                .wait_while(s, limit, |s| s.1.first().is_some_and(|&n| n < upto)),
        );
    }
}

/// One release settling; over when dropped.
pub(crate) struct Settle<'a>(&'a Settling, u64);

impl Drop for Settle<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).1.remove(&self.1);
        self.0.done.notify();
    }
}

/// A condition variable that wakes only when someone waits. Releases
/// signal one thousands of times a second while a waiter is rare, and each
/// wake is a system call.
#[derive(Default)]
struct Wakeup {
    cv: Condvar,
    /// Counted with the waiters' mutex held, before they wait: `notify`,
    /// called once the change is made under that mutex, sees every waiter
    /// that could have missed it.
    waiting: AtomicUsize,
}

impl Wakeup {
    /// Wait while `cond` holds, for `limit` at most.
    fn wait_while<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        limit: Duration,
        cond: impl FnMut(&mut T) -> bool,
    ) -> MutexGuard<'a, T> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let guard = match self.cv.wait_timeout_while(guard, limit, cond) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        guard
    }

    fn notify(&self) {
        if self.waiting.load(Ordering::Relaxed) > 0 {
            self.cv.notify_all();
        }
    }
}

/// How long a writing open waits for passthrough opens of the file to be
/// released: the kernel sends a release after `close` returns, so a
/// `cat f; echo >> f` can find the read still open for a moment.
const RELEASE_WAIT: Duration = Duration::from_millis(200);

/// An object in the private area, held by an `O_PATH` fd so that after an
/// operation we can tell whether it still exists under any name.
struct Obj {
    fd: Arc<OwnedFd>,
    st: Stat,
}

/// One private-area path an operation may change, and what was there.
struct Entry {
    path: PathBuf,
    obj: Option<Obj>,
    /// A path the operation names (not one of their parents): it may end
    /// up naming another object. A parent directory present before stays
    /// the same object, so afterwards its held fd tells what it has.
    leaf: bool,
}

/// The private-area paths an operation may change, and what was there.
struct Pending {
    entries: Vec<Entry>,
    /// Parent directories absent from the private area: a copy-up creates them.
    missing_dirs: u64,
    /// The operation changes its objects in place (setattr, xattrs, a
    /// writing open): a leaf present before is still the object there.
    in_place: bool,
}

impl Pending {
    /// `rel`, known to be in the private area, to be changed in place
    /// through `fd`, the VPS's view of it: the same inode, so the same
    /// size and owner, without a walk of the private area's path.
    fn held(rel: &Path, fd: Arc<OwnedFd>) -> Option<Pending> {
        let st = measure(&*fd).ok()?;
        Some(Pending {
            entries: vec![Entry {
                path: rel.to_owned(),
                obj: Some(Obj { fd, st }),
                leaf: true,
            }],
            missing_dirs: 0,
            in_place: true,
        })
    }

    /// Bytes of the directories a copy-up would create.
    fn dir_bytes(&self) -> u64 {
        self.missing_dirs * DIR_BYTES
    }

    /// What copying `rel` up (a template file the VPS sees as `merged`)
    /// would cost with the directories it needs: (bytes, inodes). Nothing
    /// for a file already in the private area.
    fn copy_up(&self, rel: &Path, merged: &Stat) -> (u64, u64) {
        let present = self
            .entries
            .iter()
            .any(|e| e.path == rel && e.obj.is_some());
        if present {
            return (0, 0);
        }
        (
            self.dir_bytes() + alloc(merged).max(0).unsigned_abs(),
            self.missing_dirs + 1,
        )
    }
}

/// What one setattr changes.
struct Changes {
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    atime: Option<TimeOrNow>,
    mtime: Option<TimeOrNow>,
}

impl Changes {
    /// The owner after the change, of a file owned by `from`.
    fn owner(&self, from: Owner) -> Owner {
        Owner::new(self.uid.unwrap_or(from.uid), self.gid.unwrap_or(from.gid))
    }

    /// Change the owner of the inode `fd` names (an `O_PATH` fd too), if
    /// this changes it.
    fn chown(&self, fd: &OwnedFd) -> Result<(), Errno> {
        if self.uid.is_none() && self.gid.is_none() {
            return Ok(());
        }
        rustix::fs::chownat(
            fd,
            "",
            self.uid.map(rustix::fs::Uid::from_raw),
            self.gid.map(rustix::fs::Gid::from_raw),
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno)
    }

    /// The times to set, if this sets any.
    fn times(&self) -> Option<Timestamps> {
        (self.atime.is_some() || self.mtime.is_some()).then(|| Timestamps {
            last_access: timespec(self.atime),
            last_modification: timespec(self.mtime),
        })
    }
}

/// Directory fds kept for `dir_fd`: enough for the directories a busy
/// VPS works in, few enough to stay far below the fd limit.
const DIR_FDS: usize = 256;

/// Bytes charged for a directory when estimating before it exists.
const DIR_BYTES: u64 = 4096;

pub(crate) struct SimFs {
    root: OwnedFd,
    nodes: Mutex<Nodes>,
    dirs: Mutex<HashMap<u64, Arc<OwnedFd>>>,
    handles: Mutex<HashMap<u64, Handle>>,
    opens: Mutex<HashMap<u64, Opens>>,
    /// Signalled when a file's last passthrough open is released.
    released: Wakeup,
    next_fh: AtomicU64,
    quota: Arc<Mutex<Quota>>,
    settling: Arc<Settling>,
    want_passthrough: bool,
    /// The backing files' stacking depth plus one (see `init`).
    stack_depth: u32,
    passthrough: AtomicBool,
    /// The host uid of root inside: 0, or an unprivileged VPS's first uid.
    root_uid: u32,
}

fn errno(e: rustix::io::Errno) -> Errno {
    Errno::from_i32(e.raw_os_error())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Names come from the kernel as single components; refuse anything else.
fn check_name(name: &OsStr) -> Result<(), Errno> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

fn time(secs: i64, nsec: i64) -> SystemTime {
    let nsec = u32::try_from(nsec).unwrap_or(0);
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::new(0, nsec)
    }
}

fn kind(mode: u32) -> FileType {
    match rustix::fs::FileType::from_raw_mode(mode) {
        rustix::fs::FileType::Directory => FileType::Directory,
        rustix::fs::FileType::Symlink => FileType::Symlink,
        rustix::fs::FileType::Fifo => FileType::NamedPipe,
        rustix::fs::FileType::Socket => FileType::Socket,
        rustix::fs::FileType::CharacterDevice => FileType::CharDevice,
        rustix::fs::FileType::BlockDevice => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

/// `Stat` field types differ between architectures, hence the casts.
#[allow(clippy::unnecessary_cast)]
fn attr(ino: u64, st: &Stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: time(st.st_atime as i64, st.st_atime_nsec as i64),
        mtime: time(st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctime: time(st.st_ctime as i64, st.st_ctime_nsec as i64),
        crtime: UNIX_EPOCH,
        kind: kind(st.st_mode as u32),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid as u32,
        gid: st.st_gid as u32,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}

#[allow(clippy::unnecessary_cast)]
fn key(st: &Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

/// Allocated bytes, the unit the quota counts in.
#[allow(clippy::unnecessary_cast)]
fn alloc(st: &Stat) -> i64 {
    (st.st_blocks as i64).saturating_mul(512)
}

#[allow(clippy::unnecessary_cast)]
fn is_symlink(st: &Stat) -> bool {
    (st.st_mode as u32) & 0o170000 == 0o120000
}

/// An overlayfs whiteout: a character device 0:0.
#[allow(clippy::unnecessary_cast)]
fn is_whiteout(st: &Stat) -> bool {
    (st.st_mode as u32) & 0o170000 == 0o020000 && st.st_rdev == 0
}

#[allow(clippy::unnecessary_cast)]
fn owner(st: &Stat) -> Owner {
    Owner::new(st.st_uid as u32, st.st_gid as u32)
}

#[allow(clippy::unnecessary_cast)]
fn setgid_dir(st: &Stat) -> bool {
    (st.st_mode as u32) & 0o2000 != 0
}

fn stat_fd(fd: impl AsFd) -> Result<Stat, Errno> {
    rustix::fs::fstat(fd).map_err(errno)
}

/// `stat` for the quota: see [`crate::quota::settled`].
fn measure(fd: impl AsFd) -> Result<Stat, Errno> {
    let fd = fd.as_fd();
    let first = stat_fd(fd)?;
    Ok(crate::quota::settled(
        first,
        |st| st.st_blocks,
        || stat_fd(fd).ok(),
    ))
}

fn stat_at(dir: impl AsFd, name: &OsStr) -> Result<Stat, Errno> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)
}

/// The magic link of an fd, to act on exactly that inode with calls that
/// have no fd form for `O_PATH` descriptors.
/// Drop set-user-ID, and set-group-ID on a group-executable file, as the
/// kernel does when someone without CAP_FSETID writes or truncates.
fn drop_suidgid(fd: &OwnedFd) -> Result<(), Errno> {
    let st = stat_fd(fd)?;
    let mut mode = st.st_mode & 0o7777;
    mode &= !libc::S_ISUID;
    if mode & libc::S_IXGRP != 0 {
        mode &= !libc::S_ISGID;
    }
    if mode != st.st_mode & 0o7777 {
        chmod_fd(fd, mode)?;
    }
    Ok(())
}

/// Change the mode of the inode an `O_PATH` fd names: `fchmodat2` with an
/// empty path (Linux 6.6), else through the fd's magic link, a walk of
/// /proc that costs more than the change.
fn chmod_fd(fd: &OwnedFd, mode: u32) -> Result<(), Errno> {
    let Err(e) = crate::sys::fs::chmod_empty_path(fd.as_fd(), mode) else {
        return Ok(());
    };
    match e.raw_os_error() {
        Some(libc::ENOSYS | libc::EINVAL) => {
            rustix::fs::chmod(proc_fd(fd), Mode::from_raw_mode(mode)).map_err(errno)
        }
        Some(e) => Err(Errno::from_i32(e)),
        None => Err(Errno::EIO),
    }
}

fn proc_fd(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Open the inode `fd` names (an `O_PATH` fd too) again, with `flags`.
fn reopen(fd: &OwnedFd, flags: OFlags) -> Result<OwnedFd, Errno> {
    rustix::fs::open(proc_fd(fd), flags | OFlags::CLOEXEC, Mode::empty()).map_err(errno)
}

/// Answer a read of xattrs (a value, or the list of names) into `size`
/// bytes: when `size` is 0, the size `query` says it needs.
fn reply_xattr(
    reply: ReplyXattr,
    size: u32,
    query: impl FnOnce() -> rustix::io::Result<usize>,
    read: impl FnOnce(&mut [u8]) -> rustix::io::Result<usize>,
) {
    if size == 0 {
        return match query() {
            Ok(n) => reply.size(u32::try_from(n).unwrap_or(u32::MAX)),
            Err(e) => reply.error(errno(e)),
        };
    }
    let mut buf = vec![0u8; size as usize];
    match read(&mut buf) {
        Ok(n) => reply.data(&buf[..n]),
        Err(e) => reply.error(errno(e)),
    }
}

fn timespec(t: Option<TimeOrNow>) -> Timespec {
    match t {
        None => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timespec {
                tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: d.subsec_nanos().into(),
            },
            Err(e) => Timespec {
                tv_sec: -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
                tv_nsec: 0,
            },
        },
    }
}

fn quota_errno(_: crate::quota::Exceeded) -> Errno {
    Errno::from_i32(libc::EDQUOT)
}

mod charge;
mod fuse;
mod inodes;
mod ops;
