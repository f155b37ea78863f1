//! The operations behind the FUSE calls: make, remove, setattr, write,
//! open, create, link, rename, statfs.

use super::*;

impl SimFs {
    /// The owner a new entry gets: the caller, with the group of a setgid
    /// parent directory.
    pub(super) fn new_owner(req: &Request, dir: &OwnedFd) -> Result<Owner, Errno> {
        let d = stat_fd(dir)?;
        let gid = if setgid_dir(&d) {
            owner(&d).gid
        } else {
            req.gid()
        };
        Ok(Owner::new(req.uid(), gid))
    }

    /// Common end of mkdir/symlink/mknod: own it, answer.
    pub(super) fn created_entry(
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
    pub(super) fn do_make(
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
    pub(super) fn do_remove(
        &self,
        parent: u64,
        name: &OsStr,
        flags: AtFlags,
        held: &mut Option<Pending>,
    ) -> Result<(), Errno> {
        let rel = self.child_path(parent, name)?;
        let dir = self.dir_fd(parent)?;
        let before = stat_at(&dir, name)?;
        self.mutate_held(
            &[&rel],
            false,
            |_, _, _| Ok(()),
            || rustix::fs::unlinkat(&dir, name, flags).map_err(errno),
            held,
        )?;
        self.name_gone(&before, parent, name, &rel, held);
        Ok(())
    }

    /// `name` in `parent` (`rel`), which named what `before` describes,
    /// was removed or replaced by an operation that looked at `rel` in
    /// `held` (see [`SimFs::unnamed`]).
    pub(super) fn name_gone(
        &self,
        before: &Stat,
        parent: u64,
        name: &OsStr,
        rel: &Path,
        held: &Option<Pending>,
    ) {
        let obj = held
            .as_ref()
            .and_then(|p| p.entries.iter().find(|e| e.path == rel))
            .and_then(|e| e.obj.as_ref())
            .filter(|o| key(&o.st) == key(before))
            .map(|o| o.fd.clone());
        let last = match &obj {
            Some(fd) => stat_fd(&**fd).map_or(true, |st| st.st_nlink == 0),
            // A whiteout, which `pending` leaves out.
            None => {
                before.st_nlink <= 1
                    || rustix::fs::FileType::from_raw_mode(before.st_mode)
                        == rustix::fs::FileType::Directory
            }
        };
        self.unnamed(key(before), parent, name, last, obj);
    }

    pub(super) fn do_setattr(
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
            .or_else(|| self.removed_open(ino))
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
    pub(super) fn removed_resized(&self, q: &mut Quota, ino: u64, before: &Stat, after: &Stat) {
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

    /// An open that names the file `ino` is now, when it has one that
    /// surely does: a writing open (which copied it up), or any open of a
    /// file with no name left (its path names nothing, or another file).
    pub(super) fn open_of(&self, ino: u64) -> Option<Arc<OwnedFd>> {
        self.writer(ino).or_else(|| self.removed_open(ino))
    }

    /// setattr of a file with no name left, through an open of it. Its
    /// blocks were given back at its removal, all but what writes since
    /// added (`Opens::orphan`): a chown moves that to the new owner, a
    /// truncate gives back what it frees of it.
    pub(super) fn setattr_removed(
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
    pub(super) fn change_xattr(
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
    pub(super) fn change_removed(
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
    pub(super) fn change_in_place<T>(
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

    pub(super) fn do_write(
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

    pub(super) fn do_fallocate(
        &self,
        fh: u64,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<(), Errno> {
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
    pub(super) fn do_open(
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
    pub(super) fn reserve(&self, ino: u64, acc: OFlags) -> Result<Io, Errno> {
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
    pub(super) fn unreserve(&self, ino: u64, io: Io) -> Option<(Owner, i64)> {
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
    pub(super) fn backing(&self, ino: u64) -> Option<Arc<BackingId>> {
        lock(&self.opens).get(&ino).and_then(|o| o.backing.clone())
    }

    pub(super) fn open_read(
        &self,
        ino: u64,
        of: OFlags,
        reply: &ReplyOpen,
    ) -> Result<(u64, Io), Errno> {
        self.open_read_fd(ino, self.open_ino(ino, of)?, of, reply)
    }

    /// `open_read` of `fd`, opened already.
    pub(super) fn open_read_fd(
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

    pub(super) fn do_create(
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

    pub(super) fn do_link(
        &self,
        ino: u64,
        newparent: u64,
        newname: &OsStr,
    ) -> Result<FileAttr, Errno> {
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
        self.linked(ino, newparent, newname);
        Ok(attr(ino, &st))
    }

    pub(super) fn do_rename(
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
        // Renaming a hardlink onto another of its names changes nothing.
        if dst.as_ref().map(key) == Some(key(&src)) {
            return Ok(());
        }
        let (old, new) = ((parent, name), (newparent, newname));
        match &dst {
            Some(d) if exchange => self.moved(key(d), new, old),
            Some(d) => self.name_gone(d, newparent, newname, &dst_rel, held),
            None => {}
        }
        self.moved(key(&src), old, new);
        Ok(())
    }

    pub(super) fn statfs_figures(&self) -> Result<[u64; 5], Errno> {
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
