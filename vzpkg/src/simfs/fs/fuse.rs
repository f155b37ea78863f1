//! The FUSE glue: fuser's `Filesystem` calls answered from the
//! operations, and the replies built from `stat`s.

use super::*;

/// A zeroed `stat`, for replies that carry no real attributes.
fn empty_stat() -> Stat {
    // SAFETY: `stat` is plain integers, for which all zeros is valid.
    unsafe { std::mem::zeroed() }
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
            let k = kind(e.file_type().as_raw_mode());
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
