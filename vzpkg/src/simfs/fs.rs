//! The FUSE operations. Inodes map to (parent inode, name) so a rename
//! updates one entry; a path is rebuilt from those names and opened
//! relative to the backing root's `O_PATH` fd with `RESOLVE_BENEATH`.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    BackingId, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps};

use crate::quota::{now_secs, Quota};

const TTL: Duration = Duration::from_secs(1);
/// Deeper than any real tree; stops a corrupt parent chain from looping.
const MAX_DEPTH: usize = 4096;

struct Node {
    parent: u64,
    name: OsString,
    nlookup: u64,
    key: (u64, u64),
}

struct Nodes {
    map: HashMap<u64, Node>,
    by_key: HashMap<(u64, u64), u64>,
    next: u64,
}

enum Handle {
    File {
        fd: OwnedFd,
        ino: u64,
        passthrough: bool,
    },
    Dir(Vec<(u64, FileType, OsString)>),
}

/// Backing ids are per inode: the kernel wants one for all opens of a file.
struct Backing {
    id: BackingId,
    opens: usize,
}

pub(crate) struct SimFs {
    root: OwnedFd,
    nodes: Mutex<Nodes>,
    handles: Mutex<HashMap<u64, Handle>>,
    backings: Mutex<HashMap<u64, Backing>>,
    next_fh: AtomicU64,
    quota: Arc<Mutex<Quota>>,
    want_passthrough: bool,
    passthrough: AtomicBool,
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
fn is_dir(st: &Stat) -> bool {
    (st.st_mode as u32) & 0o170000 == 0o040000
}

#[allow(clippy::unnecessary_cast)]
fn is_symlink(st: &Stat) -> bool {
    (st.st_mode as u32) & 0o170000 == 0o120000
}

fn stat_fd(fd: impl AsFd) -> Result<Stat, Errno> {
    rustix::fs::fstat(fd).map_err(errno)
}

fn stat_at(dir: impl AsFd, name: &OsStr) -> Result<Stat, Errno> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)
}

/// The magic link of an fd, to act on exactly that inode with calls that
/// have no fd form for `O_PATH` descriptors.
fn proc_fd(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
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
            },
        );
        nodes.by_key.insert(key(&st), 1);
        Ok(SimFs {
            root,
            nodes: Mutex::new(nodes),
            handles: Mutex::new(HashMap::new()),
            backings: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            quota,
            want_passthrough,
            passthrough: AtomicBool::new(false),
        })
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

    /// Open a path under the root; it can't resolve to anything outside it,
    /// and a symlink as the last component is opened, not followed.
    fn open_rel(&self, rel: &Path, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        rustix::fs::openat2(
            &self.root,
            rel,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            mode,
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(errno)
    }

    fn open_ino(&self, ino: u64, flags: OFlags) -> Result<OwnedFd, Errno> {
        self.open_rel(&self.path(ino)?, flags, Mode::empty())
    }

    fn dir_fd(&self, ino: u64) -> Result<OwnedFd, Errno> {
        self.open_ino(ino, OFlags::PATH | OFlags::DIRECTORY)
    }

    /// Parent directory fd and name of `ino` (not the root).
    fn locate(&self, ino: u64) -> Result<(OwnedFd, OsString), Errno> {
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
            },
        );
        nodes.by_key.insert(k, ino);
        ino
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

    fn file_fd(&self, fh: u64) -> Result<OwnedFd, Errno> {
        match lock(&self.handles).get(&fh) {
            Some(Handle::File { fd, .. }) => fd.try_clone().map_err(Errno::from),
            _ => Err(Errno::EBADF),
        }
    }

    fn charge_new_inode(&self) -> Result<(), Errno> {
        lock(&self.quota)
            .check_inodes(1, now_secs())
            .map_err(quota_errno)
    }

    fn account(&self, bytes: i64, inodes: i64) {
        if bytes != 0 || inodes != 0 {
            lock(&self.quota).add(bytes, inodes, now_secs());
        }
    }

    /// What removing one link of `st` frees.
    fn release_link(&self, st: &Stat) {
        if is_dir(st) || st.st_nlink <= 1 {
            self.account(-alloc(st), -1);
        }
    }

    /// Common end of mkdir/symlink/mknod: own it, count it, answer.
    fn created_entry(
        &self,
        req: &Request,
        parent: u64,
        dir: &OwnedFd,
        name: &OsStr,
    ) -> Result<FileAttr, Errno> {
        rustix::fs::chownat(
            dir,
            name,
            Some(rustix::fs::Uid::from_raw(req.uid())),
            Some(rustix::fs::Gid::from_raw(req.gid())),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno)?;
        let st = stat_at(dir, name)?;
        self.account(alloc(&st), 1);
        let ino = self.remember(parent, name, &st);
        Ok(attr(ino, &st))
    }

    // Mirrors the trait's setattr, which has as many.
    #[allow(clippy::too_many_arguments)]
    fn do_setattr(
        &self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        fh: Option<FileHandle>,
    ) -> Result<FileAttr, Errno> {
        let pfd = self.open_ino(ino, OFlags::PATH)?;
        let st = stat_fd(&pfd)?;
        let link = is_symlink(&st);
        if let Some(mode) = mode {
            if link {
                return Err(Errno::from_i32(libc::EOPNOTSUPP));
            }
            rustix::fs::chmod(proc_fd(&pfd), Mode::from_raw_mode(mode & 0o7777)).map_err(errno)?;
        }
        if uid.is_some() || gid.is_some() {
            rustix::fs::chownat(
                &pfd,
                "",
                uid.map(rustix::fs::Uid::from_raw),
                gid.map(rustix::fs::Gid::from_raw),
                AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(errno)?;
        }
        if let Some(size) = size {
            let fd = match fh.map(|f| self.file_fd(f.0)) {
                Some(Ok(fd)) => fd,
                _ => self.open_ino(ino, OFlags::WRONLY | OFlags::NONBLOCK)?,
            };
            // A truncate that extends makes a hole: nothing to charge first.
            let before = stat_fd(&fd)?;
            rustix::fs::ftruncate(&fd, size).map_err(errno)?;
            let after = stat_fd(&fd)?;
            self.account(alloc(&after) - alloc(&before), 0);
        }
        if atime.is_some() || mtime.is_some() {
            let times = Timestamps {
                last_access: timespec(atime),
                last_modification: timespec(mtime),
            };
            if link {
                let (dir, name) = self.locate(ino)?;
                rustix::fs::utimensat(&dir, &name, &times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(errno)?;
            } else {
                rustix::fs::utimensat(rustix::fs::CWD, proc_fd(&pfd), &times, AtFlags::empty())
                    .map_err(errno)?;
            }
        }
        Ok(attr(ino, &stat_fd(&pfd)?))
    }

    fn do_write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let fd = self.file_fd(fh)?;
        // Hold the quota across check, write and measure so two writers
        // can't both slip under the limit.
        let mut q = lock(&self.quota);
        let before = stat_fd(&fd)?;
        let end = offset.saturating_add(data.len() as u64);
        let need = end.saturating_sub(alloc(&before).max(0).unsigned_abs());
        q.check_bytes(need, now_secs()).map_err(quota_errno)?;
        let n = rustix::io::pwrite(&fd, data, offset).map_err(errno)?;
        let after = stat_fd(&fd)?;
        q.add(alloc(&after) - alloc(&before), 0, now_secs());
        u32::try_from(n).map_err(|_| Errno::EIO)
    }

    fn do_open(
        &self,
        ino: u64,
        flags: i32,
        reply: &ReplyOpen,
    ) -> Result<(u64, Option<u64>), Errno> {
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
        let before = if trunc {
            Some(stat_fd(self.open_ino(ino, OFlags::PATH)?)?)
        } else {
            None
        };
        let fd = self.open_ino(ino, of)?;
        if let Some(before) = before {
            let after = stat_fd(&fd)?;
            self.account(alloc(&after) - alloc(&before), 0);
        }
        let mut backing = None;
        if acc == OFlags::RDONLY && self.passthrough.load(Ordering::Relaxed) {
            let mut b = lock(&self.backings);
            if let Some(e) = b.get_mut(&ino) {
                e.opens += 1;
                backing = Some(ino);
            } else if let Ok(id) = reply.open_backing(&fd) {
                b.insert(ino, Backing { id, opens: 1 });
                backing = Some(ino);
            }
        }
        let fh = self.add_fh(Handle::File {
            fd,
            ino,
            passthrough: backing.is_some(),
        });
        Ok((fh, backing))
    }

    fn do_create(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Result<(FileAttr, u64), Errno> {
        check_name(name)?;
        let dir = self.dir_fd(parent)?;
        let exists = match stat_at(&dir, name) {
            Ok(_) => true,
            Err(e) if e == Errno::ENOENT => false,
            Err(e) => return Err(e),
        };
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
        if exists {
            if of.contains(OFlags::EXCL) {
                return Err(Errno::EEXIST);
            }
            of.remove(OFlags::CREATE);
        } else {
            self.charge_new_inode()?;
            of |= OFlags::CREATE | OFlags::EXCL;
        }
        let before = if exists && of.contains(OFlags::TRUNC) {
            Some(stat_at(&dir, name)?)
        } else {
            None
        };
        let fd = rustix::fs::openat2(
            &dir,
            name,
            of | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode & !umask & 0o7777),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(errno)?;
        if !exists {
            rustix::fs::fchown(
                &fd,
                Some(rustix::fs::Uid::from_raw(req.uid())),
                Some(rustix::fs::Gid::from_raw(req.gid())),
            )
            .map_err(errno)?;
        }
        let st = stat_fd(&fd)?;
        match before {
            Some(b) => self.account(alloc(&st) - alloc(&b), 0),
            None if !exists => self.account(alloc(&st), 1),
            None => {}
        }
        let ino = self.remember(parent, name, &st);
        let fh = self.add_fh(Handle::File {
            fd,
            ino,
            passthrough: false,
        });
        Ok((attr(ino, &st), fh))
    }

    fn do_rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        check_name(name)?;
        check_name(newname)?;
        let from = self.dir_fd(parent)?;
        let to = self.dir_fd(newparent)?;
        let src = stat_at(&from, name)?;
        let dst = match stat_at(&to, newname) {
            Ok(st) => Some(st),
            Err(e) if e == Errno::ENOENT => None,
            Err(e) => return Err(e),
        };
        let rflags = rustix::fs::RenameFlags::from_bits_retain(flags.bits());
        rustix::fs::renameat_with(&from, name, &to, newname, rflags).map_err(errno)?;
        let exchange = rflags.contains(rustix::fs::RenameFlags::EXCHANGE);
        if let Some(dst) = &dst {
            if exchange {
                self.moved(key(dst), parent, name);
            } else if key(dst) != key(&src) {
                self.release_link(dst);
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
        // Backing files live on the overlay (stack depth 1), so passthrough
        // needs room for one more level.
        if self.want_passthrough
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(2).is_ok()
        {
            self.passthrough.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        tri!(reply, check_name(name));
        let dir = tri!(reply, self.dir_fd(parent.0));
        let st = tri!(reply, stat_at(&dir, name));
        let ino = self.remember(parent.0, name, &st);
        reply.entry(&TTL, &attr(ino, &st), Generation(0));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        if ino.0 == 1 {
            return;
        }
        let mut nodes = lock(&self.nodes);
        let gone = match nodes.map.get_mut(&ino.0) {
            Some(n) => {
                n.nlookup = n.nlookup.saturating_sub(nlookup);
                (n.nlookup == 0).then_some(n.key)
            }
            None => None,
        };
        if let Some(k) = gone {
            // Children keep their parent's inode alive in the kernel, so a
            // forgotten node has no children we still know.
            nodes.map.remove(&ino.0);
            if nodes.by_key.get(&k) == Some(&ino.0) {
                nodes.by_key.remove(&k);
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        if let Some(Ok(fd)) = fh.map(|f| self.file_fd(f.0)) {
            let st = tri!(reply, stat_fd(&fd));
            return reply.attr(&TTL, &attr(ino.0, &st));
        }
        let fd = tri!(reply, self.open_ino(ino.0, OFlags::PATH));
        let st = tri!(reply, stat_fd(&fd));
        reply.attr(&TTL, &attr(ino.0, &st));
    }

    fn setattr(
        &self,
        _req: &Request,
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
        let a = tri!(
            reply,
            self.do_setattr(ino.0, mode, uid, gid, size, atime, mtime, fh)
        );
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
        tri!(reply, check_name(name));
        tri!(reply, self.charge_new_inode());
        let dir = tri!(reply, self.dir_fd(parent.0));
        tri!(
            reply,
            rustix::fs::mknodat(
                &dir,
                name,
                rustix::fs::FileType::from_raw_mode(mode),
                Mode::from_raw_mode(mode & !umask & 0o7777),
                rdev.into(),
            )
            .map_err(errno)
        );
        let a = tri!(reply, self.created_entry(req, parent.0, &dir, name));
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
        tri!(reply, check_name(name));
        tri!(reply, self.charge_new_inode());
        let dir = tri!(reply, self.dir_fd(parent.0));
        tri!(
            reply,
            rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(mode & !umask & 0o7777))
                .map_err(errno)
        );
        let a = tri!(reply, self.created_entry(req, parent.0, &dir, name));
        reply.entry(&TTL, &a, Generation(0));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        tri!(reply, check_name(name));
        let dir = tri!(reply, self.dir_fd(parent.0));
        let st = tri!(reply, stat_at(&dir, name));
        tri!(
            reply,
            rustix::fs::unlinkat(&dir, name, AtFlags::empty()).map_err(errno)
        );
        self.release_link(&st);
        reply.ok();
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        tri!(reply, check_name(name));
        let dir = tri!(reply, self.dir_fd(parent.0));
        let st = tri!(reply, stat_at(&dir, name));
        tri!(
            reply,
            rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR).map_err(errno)
        );
        self.release_link(&st);
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
        tri!(reply, check_name(link_name));
        tri!(reply, self.charge_new_inode());
        let dir = tri!(reply, self.dir_fd(parent.0));
        tri!(
            reply,
            rustix::fs::symlinkat(target, &dir, link_name).map_err(errno)
        );
        let a = tri!(reply, self.created_entry(req, parent.0, &dir, link_name));
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
        tri!(
            reply,
            self.do_rename(parent.0, name, newparent.0, newname, flags)
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
        tri!(reply, check_name(newname));
        let (from, name) = tri!(reply, self.locate(ino.0));
        let to = tri!(reply, self.dir_fd(newparent.0));
        tri!(
            reply,
            rustix::fs::linkat(&from, &name, &to, newname, AtFlags::empty()).map_err(errno)
        );
        let st = tri!(reply, stat_at(&to, newname));
        // Same inode, one more name: the quota counts it once.
        let mut nodes = lock(&self.nodes);
        if let Some(n) = nodes.map.get_mut(&ino.0) {
            n.nlookup += 1;
        }
        drop(nodes);
        reply.entry(&TTL, &attr(ino.0, &st), Generation(0));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let (fh, backing) = tri!(reply, self.do_open(ino.0, flags.0, &reply));
        match backing {
            Some(b) => {
                let backings = lock(&self.backings);
                match backings.get(&b) {
                    Some(e) => reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), &e.id),
                    None => reply.opened(FileHandle(fh), FopenFlags::empty()),
                }
            }
            None => reply.opened(FileHandle(fh), FopenFlags::empty()),
        }
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
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let n = tri!(reply, self.do_write(fh.0, offset, data));
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
        reply.ok();
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
        let h = lock(&self.handles).remove(&fh.0);
        if let Some(Handle::File {
            ino,
            passthrough: true,
            ..
        }) = h
        {
            let mut b = lock(&self.backings);
            if let Some(e) = b.get_mut(&ino) {
                e.opens -= 1;
                if e.opens == 0 {
                    b.remove(&ino);
                }
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
        let fd = tri!(reply, self.file_fd(fh.0));
        let r = if datasync {
            rustix::fs::fdatasync(&fd)
        } else {
            rustix::fs::fsync(&fd)
        };
        tri!(reply, r.map_err(errno));
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
        let (a, fh) = tri!(
            reply,
            self.do_create(req, parent.0, name, mode, umask, flags)
        );
        reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty());
    }
}
