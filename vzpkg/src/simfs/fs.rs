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

/// How long the kernel may trust names and attributes we gave it. Every
/// change to the tree while mounted goes through simfs (the layers are
/// read-only, the private area is only written through the overlay), so
/// the kernel's caches stay right and a long TTL saves a lookup per use.
const TTL: Duration = Duration::from_secs(60);
/// Deeper than any real tree; stops a corrupt parent chain from looping.
const MAX_DEPTH: usize = 4096;

struct Node {
    parent: u64,
    name: OsString,
    nlookup: u64,
    key: (u64, u64),
    /// Made in the private area through us (or the root, or a directory
    /// made or copied up there): a change in place needs no look there.
    /// Not set by a template file's copy-up: which inode number the overlay
    /// then shows (the template's or the copy's) depends on the template's
    /// hardlinks and the overlay's options; a file made here has its own.
    private: bool,
}

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

/// A zeroed `stat`, for replies that carry no real attributes.
fn empty_stat() -> Stat {
    // SAFETY: `stat` is plain integers, for which all zeros is valid.
    unsafe { std::mem::zeroed() }
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
        return Ok(());
    }
    match std::io::Error::last_os_error().raw_os_error() {
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

impl SimFs {
    pub(crate) fn new(
        root: OwnedFd,
        quota: Arc<Mutex<Quota>>,
        want_passthrough: bool,
    ) -> std::io::Result<Self> {
        let st = rustix::fs::fstat(&root)?;
        let stack_depth = if super::stacked_fd(&root) { 2 } else { 1 };
        let mut nodes = Nodes {
            map: HashMap::new(),
            by_key: HashMap::new(),
            next: 2,
        };
        nodes.map.insert(
            1,
            Node {
                parent: 1,
                name: OsString::new(),
                nlookup: 1,
                key: key(&st),
                private: true,
            },
        );
        nodes.by_key.insert(key(&st), 1);
        Ok(SimFs {
            root,
            nodes: Mutex::new(nodes),
            dirs: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            opens: Mutex::new(HashMap::new()),
            released: Wakeup::default(),
            next_fh: AtomicU64::new(1),
            quota,
            settling: Arc::default(),
            want_passthrough,
            stack_depth,
            passthrough: AtomicBool::new(false),
            root_uid: 0,
        })
    }

    /// An unprivileged VPS: its root is `uid` on the host.
    pub(crate) fn with_root_uid(mut self, uid: u32) -> Self {
        self.root_uid = uid;
        self
    }

    /// Whether a request comes from the VPS's root (who keeps set-id bits).
    fn is_root(&self, uid: u32) -> bool {
        uid == 0 || uid == self.root_uid
    }

    /// What a query of the live figures waits on (see [`Settling`]).
    pub(crate) fn settling(&self) -> Arc<Settling> {
        self.settling.clone()
    }

    /// The backing path of `ino`, relative to the root.
    fn path(&self, ino: u64) -> Result<PathBuf, Errno> {
        let nodes = lock(&self.nodes);
        let mut names = Vec::new();
        let mut cur = ino;
        while cur != 1 {
            let node = nodes.map.get(&cur).ok_or(Errno::ESTALE)?;
            names.push(node.name.clone());
            cur = node.parent;
            if names.len() > MAX_DEPTH {
                return Err(Errno::ELOOP);
            }
        }
        let mut p = PathBuf::new();
        for n in names.iter().rev() {
            p.push(n);
        }
        Ok(p)
    }

    fn child_path(&self, parent: u64, name: &OsStr) -> Result<PathBuf, Errno> {
        check_name(name)?;
        Ok(self.path(parent)?.join(name))
    }

    /// Open a path under `base`; it can't resolve to anything outside it,
    /// and a symlink as the last component is opened, not followed.
    fn open_under(base: &OwnedFd, rel: &Path, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        rustix::fs::openat2(
            base,
            rel,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            mode,
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(errno)
    }

    fn open_rel(&self, rel: &Path, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
        Self::open_under(&self.root, rel, flags, mode)
    }

    /// Open `ino`: its name in its parent's cached fd when there is one
    /// (one step instead of a walk of the whole path), else its path.
    fn open_ino(&self, ino: u64, flags: OFlags) -> Result<OwnedFd, Errno> {
        if ino != 1 {
            let (parent, name) = {
                let nodes = lock(&self.nodes);
                let n = nodes.map.get(&ino).ok_or(Errno::ESTALE)?;
                (n.parent, n.name.clone())
            };
            let dir = lock(&self.dirs).get(&parent).cloned();
            if let Some(dir) = dir {
                return Self::open_under(&dir, Path::new(&name), flags, Mode::empty());
            }
        }
        self.open_rel(&self.path(ino)?, flags, Mode::empty())
    }

    /// An `O_PATH` fd of directory `ino`. The fd follows the directory
    /// through renames, as the kernel's inode does, so a cached one stays
    /// right; it spares a walk of the whole path per create or lookup.
    fn dir_fd(&self, ino: u64) -> Result<Arc<OwnedFd>, Errno> {
        if let Some(fd) = lock(&self.dirs).get(&ino) {
            return Ok(fd.clone());
        }
        let fd = Arc::new(self.open_ino(ino, OFlags::PATH | OFlags::DIRECTORY)?);
        let mut dirs = lock(&self.dirs);
        if dirs.len() >= DIR_FDS {
            dirs.clear();
        }
        dirs.insert(ino, fd.clone());
        Ok(fd)
    }

    /// Parent directory fd and name of `ino` (not the root).
    fn locate(&self, ino: u64) -> Result<(Arc<OwnedFd>, OsString), Errno> {
        let (parent, name) = {
            let nodes = lock(&self.nodes);
            let n = nodes.map.get(&ino).ok_or(Errno::ESTALE)?;
            (n.parent, n.name.clone())
        };
        if ino == 1 {
            return Err(Errno::EBUSY);
        }
        Ok((self.dir_fd(parent)?, name))
    }

    /// Record a name the kernel now holds a reference to.
    fn remember(&self, parent: u64, name: &OsStr, st: &Stat) -> u64 {
        let mut nodes = lock(&self.nodes);
        let k = key(st);
        if let Some(&ino) = nodes.by_key.get(&k) {
            if let Some(n) = nodes.map.get_mut(&ino) {
                n.nlookup += 1;
                if ino != 1 {
                    n.parent = parent;
                    n.name = name.to_owned();
                    drop(nodes);
                    // The inode number may be a removed directory's, reused:
                    // a cached fd would still name the removed one.
                    lock(&self.dirs).remove(&ino);
                }
                return ino;
            }
        }
        let ino = nodes.next;
        nodes.next += 1;
        nodes.map.insert(
            ino,
            Node {
                parent,
                name: name.to_owned(),
                nlookup: 1,
                key: k,
                private: false,
            },
        );
        nodes.by_key.insert(k, ino);
        ino
    }

    /// `inos` are in the private area now.
    fn mark_private(&self, inos: &[u64]) {
        let mut nodes = lock(&self.nodes);
        for ino in inos {
            if let Some(n) = nodes.map.get_mut(ino) {
                n.private = true;
            }
        }
    }

    fn is_private(&self, ino: u64) -> bool {
        lock(&self.nodes).map.get(&ino).is_some_and(|n| n.private)
    }

    /// The kernel dropped `n` of its references to `ino`.
    fn forget_one(&self, ino: u64, n: u64) {
        if ino == 1 {
            return;
        }
        let mut nodes = lock(&self.nodes);
        let gone = match nodes.map.get_mut(&ino) {
            Some(node) => {
                node.nlookup = node.nlookup.saturating_sub(n);
                (node.nlookup == 0).then_some(node.key)
            }
            None => None,
        };
        if let Some(k) = gone {
            // Children keep their parent's inode alive in the kernel, so a
            // forgotten node has no children we still know.
            nodes.map.remove(&ino);
            if nodes.by_key.get(&k) == Some(&ino) {
                nodes.by_key.remove(&k);
            }
            drop(nodes);
            lock(&self.dirs).remove(&ino);
        }
    }

    /// After a rename, the node with `k` lives under a new name.
    fn moved(&self, k: (u64, u64), parent: u64, name: &OsStr) {
        let mut nodes = lock(&self.nodes);
        if let Some(&ino) = nodes.by_key.get(&k) {
            if let Some(n) = nodes.map.get_mut(&ino) {
                n.parent = parent;
                n.name = name.to_owned();
            }
        }
    }

    fn add_fh(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, h);
        fh
    }

    /// Keep an open file of `ino` (counted by `reserve` or `open_read`); a
    /// writing one becomes the inode's `Opens::writer`.
    fn add_file(&self, fd: OwnedFd, ino: u64, io: Io, writes: bool) -> u64 {
        let fd = Arc::new(fd);
        if writes {
            if let Some(o) = lock(&self.opens).get_mut(&ino) {
                o.writer = Some(fd.clone());
            }
        }
        self.add_fh(Handle::File {
            fd,
            ino,
            io,
            writes,
        })
    }

    /// See `Opens::writer`.
    fn writer(&self, ino: u64) -> Option<Arc<OwnedFd>> {
        lock(&self.opens).get(&ino).and_then(|o| o.writer.clone())
    }

    /// The fd of a live open of `ino`, a writing one first; only an inode
    /// with opens costs a look through the handles.
    fn any_open(&self, ino: u64) -> Option<Arc<OwnedFd>> {
        let writer = {
            let opens = lock(&self.opens);
            let o = opens.get(&ino)?;
            o.writer.clone()
        };
        writer.or_else(|| {
            lock(&self.handles).values().find_map(|h| match h {
                Handle::File { fd, ino: i, .. } if *i == ino => Some(fd.clone()),
                _ => None,
            })
        })
    }

    /// A file handle's fd, inode and whether it was opened for writing.
    fn file_open(&self, fh: u64) -> Result<(Arc<OwnedFd>, u64, bool), Errno> {
        match lock(&self.handles).get(&fh) {
            Some(Handle::File {
                fd, ino, writes, ..
            }) => Ok((fd.clone(), *ino, *writes)),
            _ => Err(Errno::EBADF),
        }
    }

    fn file_fd_ino(&self, fh: u64) -> Result<(Arc<OwnedFd>, u64), Errno> {
        self.file_open(fh).map(|(fd, ino, _)| (fd, ino))
    }

    /// Charge `who` for an open `ino` that now allocates what `after`
    /// says: the change since its opens last measured it (see
    /// `Opens::measured`), else since `before`. Remembers it; a charge to a
    /// file with no name left is kept for its last release (see
    /// `Opens::orphan`). Called with the quota held.
    fn charge_measured(&self, q: &mut Quota, ino: u64, before: i64, after: &Stat, who: Owner) {
        let now = alloc(after);
        let d = {
            let mut opens = lock(&self.opens);
            match opens.get_mut(&ino) {
                None => now - before,
                Some(o) => {
                    let d = now - o.measured.replace(now).unwrap_or(before);
                    if after.st_nlink == 0 {
                        let (_, b) = o.orphan.unwrap_or((owner(after), 0));
                        o.orphan = Some((owner(after), b + d));
                    }
                    d
                }
            }
        };
        if d != 0 {
            q.apply(d, 0, &[(who, d, 0)], now_secs());
        }
    }

    /// A writing open of `ino` closed: have the file system allocate what
    /// it holds back for writeback now, and charge all it allocated since
    /// the last write measured the file. Files of up to four blocks skip
    /// this: they need no extent block on ext4 (four extents live in the
    /// inode) nor on XFS. A removed file's blocks go with it. Writeback
    /// starts without the quota held: it may take a while for a big file.
    #[allow(clippy::unnecessary_cast)]
    fn allocate_written(&self, fd: &OwnedFd, ino: u64) {
        const SMALL: i64 = 16 << 10;
        let Ok(st) = stat_fd(fd) else { return };
        if st.st_nlink == 0 || (st.st_size as i64) <= SMALL {
            return;
        }
        // Our open is of the backing file itself. If writeback cannot
        // start, the file is charged as it is now; most files keep that.
        let range = |flags| {
            // SAFETY: a valid fd and plain integers; rustix has no wrapper.
            unsafe { libc::sync_file_range(fd.as_raw_fd(), 0, 0, flags) == 0 }
        };
        let started = range(libc::SYNC_FILE_RANGE_WRITE);
        // Blocks other than the data's own (an extent block, a hole) may
        // still change when the writes complete: ext4 converts the extents
        // it wrote then, and may merge them back into the inode and free
        // the extent block. A file measured with such blocks waits for that
        // and is measured again; a plain one not. The measurement that
        // decides is the one charged: a check before it could pass and the
        // writeback start allocating in between.
        if !self.charge_settled(fd, ino)
            && started
            && range(
                libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER,
            )
        {
            self.charge_settled(fd, ino);
        }
    }

    /// Charge what an open `ino` allocates once its writeback was started
    /// (at close) or done (fsync), beyond what was last measured of it. A
    /// write's own measurement may have caught the file system between two
    /// steps of an allocation; this one comes after it, and corrects that.
    /// Returns whether that is final: the file allocates just its data
    /// rounded up to a block (or is gone, or cannot be measured).
    #[allow(clippy::unnecessary_cast)]
    fn charge_settled(&self, fd: &OwnedFd, ino: u64) -> bool {
        let mut q = lock(&self.quota);
        let Ok(after) = measure(fd) else { return true };
        if after.st_nlink == 0 {
            return true;
        }
        // Nothing measured since a truncate: nothing to add.
        self.charge_measured(&mut q, ino, alloc(&after), &after, owner(&after));
        let blk = (after.st_blksize as i64).max(512);
        alloc(&after) == (after.st_size as i64 + blk - 1) / blk * blk
    }

    /// A change charged by `settle` (truncate, an open with `O_TRUNC`, an
    /// xattr) moves an open `ino` past what its opens measured: the next
    /// write starts from its own look. Called with the quota held.
    fn forget_measured(&self, ino: u64) {
        if let Some(o) = lock(&self.opens).get_mut(&ino) {
            o.measured = None;
        }
    }

    fn file_fd(&self, fh: u64) -> Result<Arc<OwnedFd>, Errno> {
        self.file_fd_ino(fh).map(|(fd, _)| fd)
    }

    // --- The private area and what operations cost there.

    /// What the private area has at `rel`; whiteouts and absent paths are
    /// nothing.
    fn private_obj(&self, rel: &Path) -> Option<Obj> {
        Self::obj_under(&self.root, rel)
    }

    fn obj_under(base: &OwnedFd, rel: &Path) -> Option<Obj> {
        let fd = Self::open_under(base, rel, OFlags::PATH, Mode::empty()).ok()?;
        let st = measure(&fd).ok()?;
        (!is_whiteout(&st)).then_some(Obj {
            fd: Arc::new(fd),
            st,
        })
    }

    /// What the private area has at `rel`, given what its parent directory
    /// is there: looked up by name in it (one step instead of a walk of the
    /// path), nothing when it is absent, walked when it is not known.
    fn private_in(&self, parent: Option<&Option<Obj>>, rel: &Path) -> Option<Obj> {
        match (parent, rel.file_name()) {
            (Some(None), _) => None,
            (Some(Some(dir)), Some(name)) => Self::obj_under(&dir.fd, Path::new(name)),
            _ => self.private_obj(rel),
        }
    }

    /// What `entries` holds for `rel`'s parent directory, if it is one.
    fn held_parent<'a>(entries: &'a [Entry], rel: &Path) -> Option<&'a Option<Obj>> {
        let dir = rel.parent()?;
        entries.iter().find(|e| e.path == dir).map(|e| &e.obj)
    }

    /// Look at `rels` in the private area, and at the parents of each up to
    /// the first one present: an overlay copy-up creates the missing ones,
    /// and the first present one's directory may grow.
    fn pending(&self, rels: &[&Path], in_place: bool) -> Pending {
        let mut p = Pending {
            entries: Vec::new(),
            missing_dirs: 0,
            in_place,
        };
        for rel in rels {
            // A leaf that may be replaced needs its parent anyway: look
            // at the parent first, then at the name in it.
            let parent = (!in_place)
                .then(|| rel.parent())
                .flatten()
                .filter(|dir| !p.entries.iter().any(|e| e.path == *dir));
            let mut parent_obj = parent.map(|dir| self.private_obj(dir));
            let mut cur = Some(*rel);
            let mut leaf = true;
            while let Some(r) = cur {
                if let Some(e) = p.entries.iter_mut().find(|e| e.path == r) {
                    e.leaf |= leaf;
                    break;
                }
                let found = if leaf {
                    let known = parent_obj
                        .as_ref()
                        .or_else(|| Self::held_parent(&p.entries, r));
                    self.private_in(known, r)
                } else if parent == Some(r) && parent_obj.is_some() {
                    parent_obj.take().flatten()
                } else {
                    self.private_obj(r)
                };
                let present = found.is_some();
                p.entries.push(Entry {
                    path: r.to_owned(),
                    obj: found,
                    leaf,
                });
                // Changed in place and already private: no copy-up, so its
                // directory does not change.
                if leaf && present && in_place {
                    break;
                }
                if !leaf {
                    if present {
                        break;
                    }
                    p.missing_dirs += 1;
                }
                leaf = false;
                cur = if r.as_os_str().is_empty() {
                    None
                } else {
                    r.parent()
                };
            }
        }
        p
    }

    /// Charge what the operation changed in the private area: objects that
    /// appeared, disappeared (no name left) or changed size or owner.
    fn settle(&self, q: &mut Quota, p: &Pending) {
        struct Seen {
            key: (u64, u64),
            bytes: i64,
            owner: Owner,
        }
        let seen = |st: &Stat| Seen {
            key: key(st),
            bytes: alloc(st),
            owner: owner(st),
        };
        let mut before: Vec<Seen> = Vec::new();
        for o in p.entries.iter().filter_map(|e| e.obj.as_ref()) {
            if !before.iter().any(|b| b.key == key(&o.st)) {
                before.push(seen(&o.st));
            }
        }
        let mut after: Vec<Seen> = Vec::new();
        for e in &p.entries {
            // What is there now: the same object if it cannot have been
            // replaced (saves a walk of the path), else whatever the path names.
            let now = match &e.obj {
                Some(o) if !e.leaf || p.in_place => {
                    measure(&*o.fd).ok().filter(|st| st.st_nlink > 0)
                }
                // A parent held present is the same directory now (a rename
                // moves only its source, never a leaf's parent); one absent
                // before may have been made since.
                _ => {
                    let dir = Self::held_parent(&p.entries, &e.path).filter(|o| o.is_some());
                    self.private_in(dir, &e.path).map(|o| o.st)
                }
            };
            if let Some(st) = now {
                if !after.iter().any(|a| a.key == key(&st)) {
                    after.push(seen(&st));
                }
            }
        }
        // Still linked somewhere (a hardlink's other name, a rename's
        // target): it exists, with what it has now.
        for o in p.entries.iter().filter_map(|e| e.obj.as_ref()) {
            if after.iter().any(|a| a.key == key(&o.st)) {
                continue;
            }
            if let Ok(st) = measure(&*o.fd) {
                if st.st_nlink > 0 {
                    after.push(seen(&st));
                }
            }
        }
        let (mut bytes, mut inodes) = (0i64, 0i64);
        let mut parts = Vec::new();
        for b in &before {
            match after.iter().find(|a| a.key == b.key) {
                Some(a) => {
                    bytes += a.bytes - b.bytes;
                    if a.owner == b.owner {
                        parts.push((a.owner, a.bytes - b.bytes, 0));
                    } else {
                        parts.push((b.owner, -b.bytes, -1));
                        parts.push((a.owner, a.bytes, 1));
                    }
                }
                None => {
                    bytes -= b.bytes;
                    inodes -= 1;
                    parts.push((b.owner, -b.bytes, -1));
                }
            }
        }
        for a in &after {
            if !before.iter().any(|b| b.key == a.key) {
                bytes += a.bytes;
                inodes += 1;
                parts.push((a.owner, a.bytes, 1));
            }
        }
        if parts.iter().any(|&(_, b, i)| b != 0 || i != 0) {
            q.apply(bytes, inodes, &parts, now_secs());
        }
    }

    /// Run `op` on the private area at `rels` with the quota held: `check`
    /// refuses (`EDQUOT`) what would not fit; afterwards, charge what
    /// changed, whether `op` succeeded or not.
    fn mutate<T>(
        &self,
        rels: &[&Path],
        check: impl FnOnce(&Pending, &Quota, u64) -> Result<(), Exceeded>,
        op: impl FnOnce() -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        self.mutate_as(rels, false, check, op)
    }

    /// `mutate` for operations that change objects in place (`in_place`)
    /// or may replace what a path names.
    fn mutate_as<T>(
        &self,
        rels: &[&Path],
        in_place: bool,
        check: impl FnOnce(&Pending, &Quota, u64) -> Result<(), Exceeded>,
        op: impl FnOnce() -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        self.mutate_held(rels, in_place, check, op, &mut None)
    }

    /// `mutate_as` that leaves the objects it looked at in `held`, open,
    /// for the caller to close after replying: closing the last reference
    /// to a removed file frees it (truncate, discard, inode), which takes as
    /// long as the unlink itself, and the program need not wait for that.
    fn mutate_held<T>(
        &self,
        rels: &[&Path],
        in_place: bool,
        check: impl FnOnce(&Pending, &Quota, u64) -> Result<(), Exceeded>,
        op: impl FnOnce() -> Result<T, Errno>,
        held: &mut Option<Pending>,
    ) -> Result<T, Errno> {
        self.mutate_from(|| self.pending(rels, in_place), check, op, held)
    }

    /// `mutate_held` on what `pending` finds, looked at with the quota held.
    fn mutate_from<T>(
        &self,
        pending: impl FnOnce() -> Pending,
        check: impl FnOnce(&Pending, &Quota, u64) -> Result<(), Exceeded>,
        op: impl FnOnce() -> Result<T, Errno>,
        held: &mut Option<Pending>,
    ) -> Result<T, Errno> {
        let mut q = lock(&self.quota);
        let p = pending();
        check(&p, &q, now_secs()).map_err(quota_errno)?;
        let r = op();
        self.settle(&mut q, &p);
        drop(q);
        *held = Some(p);
        r
    }

    /// The owner a new entry gets: the caller, with the group of a setgid
    /// parent directory.
    fn new_owner(req: &Request, dir: &OwnedFd) -> Result<Owner, Errno> {
        let d = stat_fd(dir)?;
        let gid = if setgid_dir(&d) {
            owner(&d).gid
        } else {
            req.gid()
        };
        Ok(Owner::new(req.uid(), gid))
    }

    /// Common end of mkdir/symlink/mknod: own it, answer.
    fn created_entry(
        &self,
        who: Owner,
        parent: u64,
        dir: &OwnedFd,
        name: &OsStr,
    ) -> Result<FileAttr, Errno> {
        rustix::fs::chownat(
            dir,
            name,
            Some(rustix::fs::Uid::from_raw(who.uid)),
            Some(rustix::fs::Gid::from_raw(who.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno)?;
        let st = stat_at(dir, name)?;
        let ino = self.remember(parent, name, &st);
        // Made in the private area, and its directory with it.
        self.mark_private(&[ino, parent]);
        Ok(attr(ino, &st))
    }

    /// mkdir, mknod and symlink: make the entry with `make`, charged.
    fn do_make(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        bytes: u64,
        make: impl FnOnce(&OwnedFd) -> Result<(), Errno>,
    ) -> Result<FileAttr, Errno> {
        let rel = self.child_path(parent, name)?;
        let dir = self.dir_fd(parent)?;
        let who = Self::new_owner(req, &dir)?;
        self.mutate(
            &[&rel],
            |p, q, now| q.check_for(who, bytes + p.dir_bytes(), 1 + p.missing_dirs, now),
            || {
                make(&dir)?;
                self.created_entry(who, parent, &dir, name)
            },
        )
    }

    /// unlink and rmdir: freeing always works. What the name held is left
    /// in `held` (see `mutate_held`).
    fn do_remove(
        &self,
        parent: u64,
        name: &OsStr,
        flags: AtFlags,
        held: &mut Option<Pending>,
    ) -> Result<(), Errno> {
        let rel = self.child_path(parent, name)?;
        let dir = self.dir_fd(parent)?;
        self.mutate_held(
            &[&rel],
            false,
            |_, _, _| Ok(()),
            || rustix::fs::unlinkat(&dir, name, flags).map_err(errno),
            held,
        )
    }

    fn do_setattr(
        &self,
        ino: u64,
        c: &Changes,
        fh: Option<FileHandle>,
        kill_suidgid: bool,
    ) -> Result<FileAttr, Errno> {
        // An open file is changed through its open: the inode the kernel
        // means, whatever names it has now (a path may name another file).
        let open = self
            .any_open(ino)
            .and_then(|fd| Some((stat_fd(&*fd).ok()?, fd)));
        if let Some((st, fd)) = open.as_ref().filter(|(st, _)| st.st_nlink == 0) {
            return self.setattr_removed(ino, fd, st, c, fh, kill_suidgid);
        }
        let rel = self.path(ino)?;
        let is_private = self.is_private(ino);
        // A private file is the same inode through its path and its open
        // (a template file's open may name the template's).
        let (merged, first) = match open.filter(|_| is_private) {
            Some(v) => v,
            None => {
                let fd = Arc::new(self.open_ino(ino, OFlags::PATH)?);
                (stat_fd(&*fd)?, fd)
            }
        };
        let from = owner(&merged);
        let to = c.owner(from);
        let link = is_symlink(&merged);
        let private = std::cell::Cell::new(false);
        // A private file's mode, owner and times change on its inode, which
        // our fd names: measured through it. A truncate may open it again.
        let known = (c.size.is_none() && is_private).then(|| first.clone());
        let st = self.mutate_from(
            || {
                known
                    .and_then(|fd| Pending::held(&rel, fd))
                    .unwrap_or_else(|| self.pending(&[&rel], true))
            },
            |p, q, now| {
                // Changing anything of a template file copies it up.
                let (bytes, inodes) = p.copy_up(&rel, &merged);
                private.set(bytes == 0 && inodes == 0);
                q.check_for(from, bytes, inodes, now)?;
                // A chown moves the whole inode to the new owner's account.
                q.check_chown(from, to, alloc(&merged).max(0).unsigned_abs(), 1, now)
            },
            || {
                self.forget_measured(ino);
                // A template file is opened again once the first change has
                // copied it up: an fd taken before would name the template's
                // inode.
                let pfd = if private.get() {
                    first
                } else {
                    Arc::new(self.open_ino(ino, OFlags::PATH)?)
                };
                if let Some(mode) = c.mode {
                    if link {
                        return Err(Errno::from_i32(libc::EOPNOTSUPP));
                    }
                    chmod_fd(&pfd, mode & 0o7777)?;
                }
                c.chown(&pfd)?;
                if let Some(size) = c.size {
                    let fd = match fh.map(|f| self.file_fd(f.0)) {
                        Some(Ok(fd)) => fd,
                        _ => Arc::new(self.open_ino(ino, OFlags::WRONLY | OFlags::NONBLOCK)?),
                    };
                    // A truncate that extends makes a hole: nothing to check first.
                    rustix::fs::ftruncate(&fd, size).map_err(errno)?;
                    if kill_suidgid {
                        drop_suidgid(&pfd)?;
                    }
                }
                if let Some(times) = c.times() {
                    if link {
                        let (dir, name) = self.locate(ino)?;
                        rustix::fs::utimensat(&dir, &name, &times, AtFlags::SYMLINK_NOFOLLOW)
                            .map_err(errno)?;
                    } else {
                        rustix::fs::utimensat(&pfd, "", &times, AtFlags::EMPTY_PATH)
                            .map_err(errno)?;
                    }
                }
                stat_fd(&pfd)
            },
            &mut None,
        )?;
        // Any change copied it up; a file copied up is not marked (see
        // `Node::private`), a directory has no other name.
        if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
            self.mark_private(&[ino]);
        }
        Ok(attr(ino, &st))
    }

    /// A removed file `ino` went from `before` to `after` by a truncate:
    /// give back what that freed of the charge writes since its removal
    /// added (the rest was given back at the removal). Called with the
    /// quota held.
    fn removed_resized(&self, q: &mut Quota, ino: u64, before: &Stat, after: &Stat) {
        let mut opens = lock(&self.opens);
        let Some(o) = opens.get_mut(&ino) else { return };
        o.measured = Some(alloc(after));
        if let Some((who, b)) = o.orphan {
            let d = (alloc(after) - alloc(before)).max(-b);
            o.orphan = Some((who, b + d));
            drop(opens);
            q.apply(d, 0, &[(who, d, 0)], now_secs());
        }
    }

    /// An open of `ino` if its file has no name left.
    fn removed_open(&self, ino: u64) -> Option<Arc<OwnedFd>> {
        self.any_open(ino)
            .filter(|fd| stat_fd(&**fd).is_ok_and(|st| st.st_nlink == 0))
    }

    /// An open that names the file `ino` is now, when it has one that
    /// surely does: a writing open (which copied it up), or any open of a
    /// file with no name left (its path names nothing, or another file).
    fn open_of(&self, ino: u64) -> Option<Arc<OwnedFd>> {
        self.writer(ino).or_else(|| self.removed_open(ino))
    }

    /// setattr of a file with no name left, through an open of it. Its
    /// blocks were given back at its removal, all but what writes since
    /// added (`Opens::orphan`): a chown moves that to the new owner, a
    /// truncate gives back what it frees of it.
    fn setattr_removed(
        &self,
        ino: u64,
        fd: &Arc<OwnedFd>,
        st: &Stat,
        c: &Changes,
        fh: Option<FileHandle>,
        kill_suidgid: bool,
    ) -> Result<FileAttr, Errno> {
        let mut q = lock(&self.quota);
        let now = now_secs();
        if let Some(mode) = c.mode {
            chmod_fd(fd, mode & 0o7777)?;
        }
        if c.uid.is_some() || c.gid.is_some() {
            let from = owner(st);
            let to = c.owner(from);
            let orphan = lock(&self.opens).get(&ino).and_then(|o| o.orphan);
            let charged = orphan.map_or(0, |(_, b)| b.max(0).unsigned_abs());
            q.check_chown(from, to, charged, 0, now)
                .map_err(quota_errno)?;
            c.chown(fd)?;
            if let Some((who, b)) = orphan {
                q.chown(who, to, b.max(0).unsigned_abs(), 0, now);
                if let Some(o) = lock(&self.opens).get_mut(&ino) {
                    o.orphan = Some((to, b));
                }
            }
        }
        if let Some(size) = c.size {
            let tfd = match fh.map(|f| self.file_fd(f.0)) {
                Some(Ok(t)) => t,
                _ => fd.clone(),
            };
            let before = measure(&*tfd)?;
            rustix::fs::ftruncate(&*tfd, size).map_err(errno)?;
            if kill_suidgid {
                drop_suidgid(&tfd)?;
            }
            let after = measure(&*tfd)?;
            self.removed_resized(&mut q, ino, &before, &after);
        }
        if let Some(times) = c.times() {
            rustix::fs::utimensat(&**fd, "", &times, AtFlags::EMPTY_PATH).map_err(errno)?;
        }
        drop(q);
        Ok(attr(ino, &stat_fd(&**fd)?))
    }

    /// setxattr and removexattr: a template file is copied up first,
    /// charged; a symlink has none a VPS may set.
    fn change_xattr(
        &self,
        ino: u64,
        on_open: impl FnOnce(BorrowedFd) -> Result<(), Errno>,
        op: impl FnOnce(&Path) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        // A file with no name left: its path names nothing, or another file.
        if let Some(fd) = self.removed_open(ino) {
            return self.change_removed(ino, &fd, on_open);
        }
        let rel = self.path(ino)?;
        let merged = stat_fd(self.open_ino(ino, OFlags::PATH)?)?;
        if is_symlink(&merged) {
            return Err(Errno::EPERM);
        }
        self.change_in_place(&rel, &merged, || {
            self.forget_measured(ino);
            // Opened after any copy-up, so it names the private copy.
            let fd = self.open_ino(ino, OFlags::PATH)?;
            op(&proc_fd(&fd))
        })
    }

    /// Change a file with no name left through an open of it. A block the
    /// change adds or frees (ext4 keeps a large xattr value outside the
    /// inode) is charged as a write since its removal is: until its last
    /// release.
    fn change_removed(
        &self,
        ino: u64,
        fd: &OwnedFd,
        op: impl FnOnce(BorrowedFd) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        let mut q = lock(&self.quota);
        let before = stat_fd(fd)?;
        op(fd.as_fd())?;
        let after = measure(fd)?;
        self.charge_measured(&mut q, ino, alloc(&before), &after, owner(&after));
        Ok(())
    }

    /// Run `op`, which changes the file at `rel` (seen as `merged`) in
    /// place: a template file is copied up by it, and refused (`EDQUOT`)
    /// if the copy does not fit its owner's quota.
    fn change_in_place<T>(
        &self,
        rel: &Path,
        merged: &Stat,
        op: impl FnOnce() -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        self.mutate_as(
            &[rel],
            true,
            |p, q, now| {
                let (bytes, inodes) = p.copy_up(rel, merged);
                q.check_for(owner(merged), bytes, inodes, now)
            },
            op,
        )
    }

    fn do_write(
        &self,
        fh: u64,
        offset: u64,
        data: &[u8],
        kill_suidgid: bool,
    ) -> Result<u32, Errno> {
        let (fd, ino) = self.file_fd_ino(fh)?;
        // Hold the quota across check, write and measure so two writers
        // can't both slip under the limit. The file is in the private area:
        // its writing open copied it up.
        let mut q = lock(&self.quota);
        let before = measure(&*fd)?;
        let end = offset.saturating_add(data.len() as u64);
        let need = end.saturating_sub(alloc(&before).max(0).unsigned_abs());
        let who = owner(&before);
        q.check_for(who, need, 0, now_secs()).map_err(quota_errno)?;
        let n = rustix::io::pwrite(&fd, data, offset).map_err(errno)?;
        // Only a file with set-id bits costs a look (a user's every write
        // carries the flag).
        if kill_suidgid && before.st_mode & (libc::S_ISUID | libc::S_ISGID) != 0 {
            drop_suidgid(&fd)?;
        }
        let after = measure(&*fd)?;
        self.charge_measured(&mut q, ino, alloc(&before), &after, who);
        u32::try_from(n).map_err(|_| Errno::EIO)
    }

    fn do_fallocate(&self, fh: u64, offset: u64, length: u64, mode: i32) -> Result<(), Errno> {
        let (fd, ino) = self.file_fd_ino(fh)?;
        let mut q = lock(&self.quota);
        let before = measure(&*fd)?;
        let who = owner(&before);
        let frees = mode & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_COLLAPSE_RANGE) != 0;
        if !frees {
            // At most `length` more; parts already allocated cost nothing,
            // so near the limit this refuses early rather than late.
            let end = offset.saturating_add(length);
            let size = u64::try_from(before.st_size).unwrap_or(0);
            let have = alloc(&before).max(0).unsigned_abs();
            let need = if offset >= size {
                length
            } else {
                end.saturating_sub(have).min(length)
            };
            q.check_for(who, need, 0, now_secs()).map_err(quota_errno)?;
        }
        let flags = rustix::fs::FallocateFlags::from_bits_retain(mode as _);
        let r = rustix::fs::fallocate(&fd, flags, offset, length).map_err(errno);
        let after = measure(&*fd)?;
        self.charge_measured(&mut q, ino, alloc(&before), &after, who);
        r
    }

    /// Open for the kernel. Writing opens are charged for the copy-up they
    /// cause; read-only opens go through passthrough when they can.
    fn do_open(
        &self,
        ino: u64,
        flags: i32,
        uid: u32,
        reply: &ReplyOpen,
    ) -> Result<(u64, Io), Errno> {
        // Only flags openat2 takes: the kernel passes internal bits too
        // (an exec's open carries __FMODE_EXEC, 0x20), and openat2 refuses
        // unknown bits with EINVAL, which would make every exec fail.
        let mut of = OFlags::from_bits_retain(flags as _)
            & (OFlags::RWMODE
                | OFlags::TRUNC
                | OFlags::NONBLOCK
                | OFlags::DSYNC
                | OFlags::SYNC
                | OFlags::NOATIME
                | OFlags::LARGEFILE
                | OFlags::DIRECTORY);
        let acc = of & OFlags::RWMODE;
        let trunc = of.contains(OFlags::TRUNC) && acc != OFlags::RDONLY;
        if !trunc {
            of.remove(OFlags::TRUNC);
        }
        // A file with no name left, opened again (through /proc/PID/fd):
        // its path names nothing, or another file; its open reaches it.
        if let Some(old) = self.removed_open(ino) {
            let reopen = || {
                rustix::fs::open(proc_fd(&old), of | OFlags::CLOEXEC, Mode::empty()).map_err(errno)
            };
            if acc == OFlags::RDONLY {
                return self.open_read_fd(ino, reopen()?, of, reply);
            }
            let io = self.reserve(ino, acc)?;
            let opened = (|| {
                if !trunc {
                    return reopen();
                }
                let mut q = lock(&self.quota);
                let before = measure(&*old)?;
                let fd = reopen()?;
                if !self.is_root(uid) {
                    drop_suidgid(&fd)?;
                }
                self.removed_resized(&mut q, ino, &before, &measure(&fd)?);
                Ok(fd)
            })();
            return match opened {
                Ok(fd) => Ok((self.add_file(fd, ino, io, true), io)),
                Err(e) => {
                    self.unreserve(ino, io);
                    Err(e)
                }
            };
        }
        if acc == OFlags::RDONLY {
            return self.open_read(ino, of, reply);
        }
        let rel = self.path(ino)?;
        let io = self.reserve(ino, acc)?;
        let opened = (|| {
            let merged = stat_fd(self.open_ino(ino, OFlags::PATH)?)?;
            self.change_in_place(&rel, &merged, || {
                self.forget_measured(ino);
                let fd = self.open_ino(ino, of)?;
                // As for a truncate (see setattr): not root, no set-id bits.
                if trunc && !self.is_root(uid) {
                    drop_suidgid(&fd)?;
                }
                Ok(fd)
            })
        })();
        match opened {
            Ok(fd) => Ok((self.add_file(fd, ino, io, true), io)),
            Err(e) => {
                self.unreserve(ino, io);
                Err(e)
            }
        }
    }

    /// A writing open of `ino` (access mode `acc`) is about to be made:
    /// count it, and say how its I/O goes.
    fn reserve(&self, ino: u64, acc: OFlags) -> Result<Io, Errno> {
        if acc == OFlags::WRONLY {
            let mut opens = lock(&self.opens);
            let o = opens.entry(ino).or_default();
            let io = if o.backing.is_some() {
                Io::Passthrough
            } else {
                Io::Direct
            };
            *o.count(io) += 1;
            return Ok(io);
        }
        // Cached: wait for the passthrough opens to go, or fail.
        let passthrough =
            |opens: &mut HashMap<u64, Opens>| opens.get(&ino).is_some_and(|o| o.passthrough > 0);
        let mut opens = self
            .released
            .wait_while(lock(&self.opens), RELEASE_WAIT, passthrough);
        if passthrough(&mut opens) {
            return Err(Errno::from_i32(libc::ETXTBSY));
        }
        opens.entry(ino).or_default().cached += 1;
        Ok(Io::Cached)
    }

    /// One open of `ino` ended (or was never made).
    /// What was charged for writes to it after its removal when this was
    /// the last open of a removed file (see `Opens::orphan`).
    fn unreserve(&self, ino: u64, io: Io) -> Option<(Owner, i64)> {
        let mut opens = lock(&self.opens);
        // Dropped after the lock: closing a backing id or a writer's fd is
        // a system call, and other opens wait for the table meanwhile.
        let mut backing = None;
        let mut gone = None;
        let mut last_passthrough = false;
        if let Some(o) = opens.get_mut(&ino) {
            let n = o.count(io);
            *n = n.saturating_sub(1);
            if o.passthrough == 0 {
                backing = o.backing.take();
                // What a cached open waits for (see `reserve`).
                last_passthrough = io == Io::Passthrough;
            }
            if o.passthrough == 0 && o.cached == 0 && o.direct == 0 {
                gone = opens.remove(&ino);
            }
        }
        drop(opens);
        if last_passthrough {
            self.released.notify();
        }
        drop(backing);
        gone.and_then(|o| o.orphan)
    }

    /// The backing id of `ino`'s passthrough opens, for a reply to send
    /// without the table's lock: the reference keeps the id open until the
    /// reply is written. A passthrough open counted for `ino` keeps the id
    /// until its release, so `None` is only a safety net.
    fn backing(&self, ino: u64) -> Option<Arc<BackingId>> {
        lock(&self.opens).get(&ino).and_then(|o| o.backing.clone())
    }

    fn open_read(&self, ino: u64, of: OFlags, reply: &ReplyOpen) -> Result<(u64, Io), Errno> {
        self.open_read_fd(ino, self.open_ino(ino, of)?, of, reply)
    }

    /// `open_read` of `fd`, opened already.
    fn open_read_fd(
        &self,
        ino: u64,
        fd: OwnedFd,
        of: OFlags,
        reply: &ReplyOpen,
    ) -> Result<(u64, Io), Errno> {
        let mut opens = lock(&self.opens);
        let o = opens.entry(ino).or_default();
        let mut io = if o.backing.is_some() {
            Io::Passthrough
        } else {
            Io::Cached
        };
        // The kernel refuses passthrough beside a cached open, and a direct
        // open beside passthrough unless it is passthrough too: a direct
        // open we answered may not have reached the kernel yet.
        if io == Io::Cached
            && o.cached == 0
            && o.direct == 0
            && self.passthrough.load(Ordering::Relaxed)
            && !of.contains(OFlags::DIRECTORY)
        {
            if let Ok(id) = reply.open_backing(&fd) {
                o.backing = Some(Arc::new(id));
                io = Io::Passthrough;
            }
        }
        *o.count(io) += 1;
        drop(opens);
        Ok((self.add_file(fd, ino, io, false), io))
    }

    fn do_create(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Result<(FileAttr, u64, Io), Errno> {
        let rel = self.child_path(parent, name)?;
        let dir = self.dir_fd(parent)?;
        let who = Self::new_owner(req, &dir)?;
        // As in open: only what openat2 takes.
        let mut of = OFlags::from_bits_retain(flags as _)
            & (OFlags::RWMODE
                | OFlags::CREATE
                | OFlags::EXCL
                | OFlags::TRUNC
                | OFlags::NONBLOCK
                | OFlags::DSYNC
                | OFlags::SYNC
                | OFlags::NOATIME
                | OFlags::LARGEFILE);
        let existing = match stat_at(&dir, name) {
            Ok(st) => Some(st),
            Err(e) if e == Errno::ENOENT => None,
            Err(e) => return Err(e),
        };
        if existing.is_some() {
            if of.contains(OFlags::EXCL) {
                return Err(Errno::EEXIST);
            }
            of.remove(OFlags::CREATE);
        } else {
            of |= OFlags::CREATE | OFlags::EXCL;
        }
        // An existing file may have opens the kernel knows of.
        let known = existing
            .as_ref()
            .and_then(|st| lock(&self.nodes).by_key.get(&key(st)).copied());
        let acc = of & OFlags::RWMODE;
        let reserved = match known {
            Some(i) => Some((i, self.reserve(i, acc)?)),
            None => None,
        };
        let made = self.mutate(
            &[&rel],
            |p, q, now| match &existing {
                None => q.check_for(who, p.dir_bytes(), 1 + p.missing_dirs, now),
                Some(st) => {
                    let (bytes, inodes) = p.copy_up(&rel, st);
                    q.check_for(owner(st), bytes, inodes, now)
                }
            },
            || {
                if let Some((i, _)) = reserved {
                    self.forget_measured(i);
                }
                let fd = rustix::fs::openat2(
                    &dir,
                    name,
                    of | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(mode & !umask & 0o7777),
                    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
                )
                .map_err(errno)?;
                if existing.is_some() && of.contains(OFlags::TRUNC) && !self.is_root(req.uid()) {
                    drop_suidgid(&fd)?;
                }
                if existing.is_none() {
                    rustix::fs::fchown(
                        &fd,
                        Some(rustix::fs::Uid::from_raw(who.uid)),
                        Some(rustix::fs::Gid::from_raw(who.gid)),
                    )
                    .map_err(errno)?;
                }
                Ok(fd)
            },
        );
        let fd = match made.and_then(|fd| stat_fd(&fd).map(|st| (fd, st))) {
            Ok(v) => v,
            Err(e) => {
                if let Some((i, io)) = reserved {
                    self.unreserve(i, io);
                }
                return Err(e);
            }
        };
        let (fd, st) = fd;
        let ino = self.remember(parent, name, &st);
        // Made in the private area, in a directory that is there now.
        if existing.is_none() {
            self.mark_private(&[ino, parent]);
        }
        let io = match reserved {
            Some((i, io)) if i == ino => io,
            _ => {
                // A new file (or one that replaced the file we saw).
                if let Some((i, io)) = reserved {
                    self.unreserve(i, io);
                }
                self.reserve(ino, acc)?
            }
        };
        let fh = self.add_file(fd, ino, io, acc != OFlags::RDONLY);
        Ok((attr(ino, &st), fh, io))
    }

    fn do_link(&self, ino: u64, newparent: u64, newname: &OsStr) -> Result<FileAttr, Errno> {
        let src = self.path(ino)?;
        let dst = self.child_path(newparent, newname)?;
        let (from, name) = self.locate(ino)?;
        let to = self.dir_fd(newparent)?;
        let merged = stat_at(&from, &name)?;
        self.mutate(
            &[&src, &dst],
            |p, q, now| {
                // Linking a template file copies it up first.
                let (bytes, inodes) = p.copy_up(&src, &merged);
                q.check_for(owner(&merged), bytes, inodes, now)
            },
            || rustix::fs::linkat(&from, &name, &to, newname, AtFlags::empty()).map_err(errno),
        )?;
        let st = stat_at(&to, newname)?;
        let mut nodes = lock(&self.nodes);
        if let Some(n) = nodes.map.get_mut(&ino) {
            n.nlookup += 1;
        }
        drop(nodes);
        Ok(attr(ino, &st))
    }

    fn do_rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
        held: &mut Option<Pending>,
    ) -> Result<(), Errno> {
        let src_rel = self.child_path(parent, name)?;
        let dst_rel = self.child_path(newparent, newname)?;
        let from = self.dir_fd(parent)?;
        let to = self.dir_fd(newparent)?;
        let src = stat_at(&from, name)?;
        let dst = match stat_at(&to, newname) {
            Ok(st) => Some(st),
            Err(e) if e == Errno::ENOENT => None,
            Err(e) => return Err(e),
        };
        let rflags = rustix::fs::RenameFlags::from_bits_retain(flags.bits());
        let exchange = rflags.contains(rustix::fs::RenameFlags::EXCHANGE);
        self.mutate_held(
            &[&src_rel, &dst_rel],
            false,
            |p, q, now| {
                // A template file moved is copied up; so is the other side
                // of an exchange.
                let (mut bytes, mut inodes) = p.copy_up(&src_rel, &src);
                if let (true, Some(d)) = (exchange, &dst) {
                    let (b, i) = p.copy_up(&dst_rel, d);
                    bytes += b;
                    inodes += i;
                }
                q.check_for(owner(&src), bytes, inodes, now)
            },
            || rustix::fs::renameat_with(&from, name, &to, newname, rflags).map_err(errno),
            held,
        )?;
        if let Some(dst) = &dst {
            if exchange {
                self.moved(key(dst), parent, name);
            }
        }
        // Renaming a hardlink onto another of its names changes nothing.
        if dst.as_ref().map(key) != Some(key(&src)) || exchange {
            self.moved(key(&src), newparent, newname);
        }
        Ok(())
    }

    fn statfs_figures(&self) -> Result<[u64; 5], Errno> {
        let host = rustix::fs::fstatvfs(&self.root).map_err(errno)?;
        let q = lock(&self.quota);
        let l = q.limits;
        let frsize = host.f_frsize.max(1);
        let to_k = |n: u64| n.saturating_mul(frsize) / 1024;
        let (mut blocks, mut bfree, mut bavail) =
            (to_k(host.f_blocks), to_k(host.f_bfree), to_k(host.f_bavail));
        if l.has_blocks() {
            let soft = if l.block_soft > 0 {
                l.block_soft
            } else {
                l.block_hard
            };
            let used = q.usage.blocks_1k();
            let free = soft.saturating_sub(used);
            // Less room on the host than the quota leaves: the disk looks smaller.
            blocks = soft.min(used.saturating_add(bfree));
            bavail = free.min(bavail);
            bfree = free.min(bfree);
        }
        let (mut files, mut ffree) = (host.f_files, host.f_ffree);
        if l.has_inodes() {
            let soft = if l.inode_soft > 0 {
                l.inode_soft
            } else {
                l.inode_hard
            };
            let used = q.usage.inodes;
            let free = soft.saturating_sub(used);
            // Some file systems (btrfs) have no inode count: don't cap by it.
            if files > 0 {
                files = soft.min(used.saturating_add(ffree));
                ffree = free.min(ffree);
            } else {
                files = soft;
                ffree = free;
            }
        }
        Ok([blocks, bfree, bavail, files, ffree])
    }
}

macro_rules! tri {
    ($reply:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return $reply.error(e),
        }
    };
}

impl Filesystem for SimFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Passthrough makes simfs one level above its backing files, and
        // no more than needed: on a disk's own file system simfs stays at
        // depth 1, so an overlay can still go on top (the kernel allows 2).
        if self.want_passthrough
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(self.stack_depth).is_ok()
        {
            self.passthrough.store(true, Ordering::Relaxed);
        }
        // Listings carry each entry's attributes, so walking a tree (find,
        // then open each file) costs no lookup per file.
        let _ = config
            .add_capabilities(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO);
        // Set-id bits are dropped by the kernel, not by us
        // (FUSE_HANDLE_KILLPRIV_V2 off): under the VPS's overlay every
        // request comes with the overlay's own credentials, so only the
        // kernel, above it, knows whether the writer may keep them.
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        tri!(reply, check_name(name));
        let dir = tri!(reply, self.dir_fd(parent.0));
        let st = match stat_at(&dir, name) {
            Ok(st) => st,
            // A negative entry the kernel may keep for the TTL (a shell's
            // PATH search asks for the same missing names on every exec);
            // a create through us replaces it.
            Err(e) if e == Errno::ENOENT => {
                let none = attr(0, &empty_stat());
                return reply.entry(&TTL, &none, Generation(0));
            }
            Err(e) => return reply.error(e),
        };
        let ino = self.remember(parent.0, name, &st);
        reply.entry(&TTL, &attr(ino, &st), Generation(0));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.forget_one(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        if let Some(fd) = fh
            .and_then(|f| self.file_fd(f.0).ok())
            .or_else(|| self.open_of(ino.0))
        {
            let st = tri!(reply, stat_fd(&fd));
            return reply.attr(&TTL, &attr(ino.0, &st));
        }
        let fd = tri!(reply, self.open_ino(ino.0, OFlags::PATH));
        let st = tri!(reply, stat_fd(&fd));
        reply.attr(&TTL, &attr(ino.0, &st));
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // A caller other than root truncating must lose set-id bits. The
        // kernel sends the new mode along (FUSE_HANDLE_KILLPRIV_V2 is off,
        // see `init`); a truncate without one is dropped here.
        let kill = size.is_some() && mode.is_none() && !self.is_root(req.uid());
        let changes = Changes {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        };
        let a = tri!(reply, self.do_setattr(ino.0, &changes, fh, kill));
        reply.attr(&TTL, &a);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let fd = tri!(reply, self.open_ino(ino.0, OFlags::PATH));
        let target = tri!(
            reply,
            rustix::fs::readlinkat(&fd, "", Vec::new()).map_err(errno)
        );
        reply.data(target.as_bytes());
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let a = tri!(
            reply,
            self.do_make(req, parent.0, name, 0, |dir| {
                rustix::fs::mknodat(
                    dir,
                    name,
                    rustix::fs::FileType::from_raw_mode(mode),
                    Mode::from_raw_mode(mode & !umask & 0o7777),
                    rdev.into(),
                )
                .map_err(errno)
            })
        );
        reply.entry(&TTL, &a, Generation(0));
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let a = tri!(
            reply,
            self.do_make(req, parent.0, name, DIR_BYTES, |dir| {
                rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(mode & !umask & 0o7777))
                    .map_err(errno)
            })
        );
        reply.entry(&TTL, &a, Generation(0));
    }

    // Removals reply first and close what they removed after (`held`
    // drops last): see `mutate_held`.
    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut held = None;
        tri!(
            reply,
            self.do_remove(parent.0, name, AtFlags::empty(), &mut held)
        );
        reply.ok();
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut held = None;
        tri!(
            reply,
            self.do_remove(parent.0, name, AtFlags::REMOVEDIR, &mut held)
        );
        reply.ok();
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let a = tri!(
            reply,
            self.do_make(req, parent.0, link_name, 0, |dir| {
                rustix::fs::symlinkat(target, dir, link_name).map_err(errno)
            })
        );
        reply.entry(&TTL, &a, Generation(0));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut held = None;
        tri!(
            reply,
            self.do_rename(parent.0, name, newparent.0, newname, flags, &mut held)
        );
        reply.ok();
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let a = tri!(reply, self.do_link(ino.0, newparent.0, newname));
        reply.entry(&TTL, &a, Generation(0));
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let (fh, io) = tri!(reply, self.do_open(ino.0, flags.0, req.uid(), &reply));
        let f = fopen_flags(io, flags.0 & libc::O_ACCMODE != libc::O_RDONLY);
        if io == Io::Passthrough {
            return match self.backing(ino.0) {
                Some(id) => reply.opened_passthrough(FileHandle(fh), f, &id),
                None => reply.error(Errno::EIO),
            };
        }
        reply.opened(FileHandle(fh), f);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let fd = tri!(reply, self.file_fd(fh.0));
        let mut buf = vec![0u8; size as usize];
        let n = tri!(
            reply,
            rustix::io::pread(&fd, &mut buf, offset).map_err(errno)
        );
        reply.data(&buf[..n]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        // Set by the kernel for a writer without CAP_FSETID, and only with
        // FUSE_HANDLE_KILLPRIV_V2, which `init` no longer asks for (the
        // kernel drops the bits itself then); we write as root, so the
        // file system below would keep them.
        let kill = write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
        let n = tri!(reply, self.do_write(fh.0, offset, data, kill));
        reply.written(n);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing to do at close (writes are not buffered here): ENOSYS
        // tells the kernel to stop sending flushes, one request less per close.
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Counted from the start, so a query never sees it half done.
        let _settle = self.settling.begin();
        let h = lock(&self.handles).remove(&fh.0);
        if let Some(Handle::File {
            fd,
            ino,
            io,
            writes,
        }) = h
        {
            if writes {
                self.allocate_written(&fd, ino);
                if let Some(o) = lock(&self.opens).get_mut(&ino) {
                    if o.writer.as_ref().is_some_and(|w| Arc::ptr_eq(w, &fd)) {
                        o.writer = None;
                    }
                }
            }
            // The last open of a removed file: its blocks go when `fd`
            // closes, below, and with them what writes since added.
            if let Some((who, b)) = self.unreserve(ino, io).filter(|&(_, b)| b != 0) {
                let mut q = lock(&self.quota);
                q.apply(-b, 0, &[(who, -b, 0)], now_secs());
            }
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let (fd, ino, writes) = tri!(reply, self.file_open(fh.0));
        let r = if datasync {
            rustix::fs::fdatasync(&fd)
        } else {
            rustix::fs::fsync(&fd)
        };
        tri!(reply, r.map_err(errno));
        if writes {
            self.charge_settled(&fd, ino);
        }
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let fd = tri!(
            reply,
            self.open_ino(ino.0, OFlags::RDONLY | OFlags::DIRECTORY)
        );
        let dir = tri!(reply, rustix::fs::Dir::read_from(&fd).map_err(errno));
        let mut entries = Vec::new();
        for e in dir {
            let e = tri!(reply, e.map_err(errno));
            let k = match e.file_type() {
                rustix::fs::FileType::Directory => FileType::Directory,
                rustix::fs::FileType::Symlink => FileType::Symlink,
                rustix::fs::FileType::Fifo => FileType::NamedPipe,
                rustix::fs::FileType::Socket => FileType::Socket,
                rustix::fs::FileType::CharacterDevice => FileType::CharDevice,
                rustix::fs::FileType::BlockDevice => FileType::BlockDevice,
                _ => FileType::RegularFile,
            };
            entries.push((
                e.ino(),
                k,
                OsStr::from_bytes(e.file_name().to_bytes()).to_owned(),
            ));
        }
        let fh = self.add_fh(Handle::Dir(entries));
        // Listings are not cached by the kernel (FOPEN_CACHE_DIR): it would
        // keep a page per directory per VPS, 2.7 MiB for /usr alone, where
        // the bare overlay shares the layers' directory pages.
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let handles = lock(&self.handles);
        let Some(Handle::Dir(entries)) = handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(start) {
            if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        drop(handles);
        reply.ok();
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        // The kernel asks for `security.capability` before each chown and
        // each cached write: an open file answers without a walk.
        if let Some(fd) = self.open_of(ino.0) {
            return reply_xattr(
                reply,
                size,
                || rustix::fs::fgetxattr_query(&*fd, name),
                |buf| rustix::fs::fgetxattr(&*fd, name, buf),
            );
        }
        let fd = tri!(reply, self.open_ino(ino.0, OFlags::PATH));
        // The magic link reaches the inode of an O_PATH fd; a symlink's own
        // attributes have no such path, and hold nothing a VPS sets.
        if is_symlink(&tri!(reply, stat_fd(&fd))) {
            return reply.error(Errno::from_i32(libc::ENODATA));
        }
        let path = proc_fd(&fd);
        reply_xattr(
            reply,
            size,
            || rustix::fs::getxattr_query(&path, name),
            |buf| rustix::fs::getxattr(&path, name, buf),
        );
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        if let Some(fd) = self.open_of(ino.0) {
            return reply_xattr(
                reply,
                size,
                || rustix::fs::flistxattr_query(&*fd),
                |buf| rustix::fs::flistxattr(&*fd, buf),
            );
        }
        let fd = tri!(reply, self.open_ino(ino.0, OFlags::PATH));
        if is_symlink(&tri!(reply, stat_fd(&fd))) {
            return if size == 0 {
                reply.size(0)
            } else {
                reply.data(&[])
            };
        }
        let path = proc_fd(&fd);
        reply_xattr(
            reply,
            size,
            || rustix::fs::listxattr_query(&path),
            |buf| rustix::fs::listxattr(&path, buf),
        );
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let flags = rustix::fs::XattrFlags::from_bits_retain(flags as _);
        tri!(
            reply,
            self.change_xattr(
                ino.0,
                |fd| rustix::fs::fsetxattr(fd, name, value, flags).map_err(errno),
                |path| rustix::fs::setxattr(path, name, value, flags).map_err(errno),
            )
        );
        reply.ok();
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        tri!(
            reply,
            self.change_xattr(
                ino.0,
                |fd| rustix::fs::fremovexattr(fd, name).map_err(errno),
                |path| rustix::fs::removexattr(path, name).map_err(errno),
            )
        );
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let names: Vec<OsString> = {
            let handles = lock(&self.handles);
            let Some(Handle::Dir(entries)) = handles.get(&fh.0) else {
                return reply.error(Errno::EBADF);
            };
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            entries
                .iter()
                .skip(start)
                .map(|(_, _, n)| n.clone())
                .collect()
        };
        let dir = tri!(reply, self.dir_fd(ino.0));
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, name) in names.iter().enumerate() {
            let next = (start + i) as u64 + 1;
            let b = name.as_bytes();
            if b == b"." || b == b".." {
                // The kernel makes no entries for these and counts no lookup.
                let Ok(st) = stat_fd(&dir) else { continue };
                if reply.add(INodeNo(0), next, name, &TTL, &attr(0, &st), Generation(0)) {
                    break;
                }
                continue;
            }
            // Gone since opendir: skipped, as a fresh listing would.
            let Ok(st) = stat_at(&dir, name) else {
                continue;
            };
            // Each entry handed over is a lookup the kernel will forget.
            let child = self.remember(ino.0, name, &st);
            if reply.add(
                INodeNo(child),
                next,
                name,
                &TTL,
                &attr(child, &st),
                Generation(0),
            ) {
                self.forget_one(child, 1);
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.handles).remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let fd = tri!(
            reply,
            self.open_ino(ino.0, OFlags::RDONLY | OFlags::DIRECTORY)
        );
        tri!(reply, rustix::fs::fsync(&fd).map_err(errno));
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        tri!(reply, self.do_fallocate(fh.0, offset, length, mode));
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let [blocks, bfree, bavail, files, ffree] = tri!(reply, self.statfs_figures());
        reply.statfs(blocks, bfree, bavail, files, ffree, 1024, 255, 1024);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (a, fh, io) = tri!(
            reply,
            self.do_create(req, parent.0, name, mode, umask, flags)
        );
        let f = fopen_flags(io, flags & libc::O_ACCMODE != libc::O_RDONLY);
        if io == Io::Passthrough {
            return match self.backing(a.ino.0) {
                Some(id) => {
                    reply.created_passthrough(&TTL, &a, Generation(0), FileHandle(fh), f, &id)
                }
                None => reply.error(Errno::EIO),
            };
        }
        reply.created(&TTL, &a, Generation(0), FileHandle(fh), f);
    }
}
