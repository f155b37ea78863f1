//! Charging the quota: measuring what an operation changed under the
//! backing root and settling the difference.

use super::*;

impl SimFs {
    /// Charge `who` for an open `ino` that now allocates what `after`
    /// says: the change since its opens last measured it (see
    /// `Opens::measured`), else since `before`. Remembers it; a charge to a
    /// file with no name left is kept for its last release (see
    /// `Opens::orphan`). Called with the quota held.
    pub(super) fn charge_measured(
        &self,
        q: &mut Quota,
        ino: u64,
        before: i64,
        after: &Stat,
        who: Owner,
    ) {
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
    pub(super) fn allocate_written(&self, fd: &OwnedFd, ino: u64) {
        const SMALL: i64 = 16 << 10;
        let Ok(st) = stat_fd(fd) else { return };
        if st.st_nlink == 0 || (st.st_size as i64) <= SMALL {
            return;
        }
        // Our open is of the backing file itself. If writeback cannot
        // start, the file is charged as it is now; most files keep that.
        let range = |how| crate::sys::fs::sync_file_range(fd.as_fd(), how);
        let started = range(Writeback::Start);
        // Blocks other than the data's own (an extent block, a hole) may
        // still change when the writes complete: ext4 converts the extents
        // it wrote then, and may merge them back into the inode and free
        // the extent block. A file measured with such blocks waits for that
        // and is measured again; a plain one not. The measurement that
        // decides is the one charged: a check before it could pass and the
        // writeback start allocating in between.
        if !self.charge_settled(fd, ino) && started && range(Writeback::Complete) {
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
    pub(super) fn charge_settled(&self, fd: &OwnedFd, ino: u64) -> bool {
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
    pub(super) fn forget_measured(&self, ino: u64) {
        if let Some(o) = lock(&self.opens).get_mut(&ino) {
            o.measured = None;
        }
    }

    pub(super) fn file_fd(&self, fh: u64) -> Result<Arc<OwnedFd>, Errno> {
        self.file_fd_ino(fh).map(|(fd, _)| fd)
    }

    // --- The private area and what operations cost there.

    /// What the private area has at `rel`; whiteouts and absent paths are
    /// nothing.
    pub(super) fn private_obj(&self, rel: &Path) -> Option<Obj> {
        Self::obj_under(&self.root, rel)
    }

    pub(super) fn obj_under(base: &OwnedFd, rel: &Path) -> Option<Obj> {
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
    pub(super) fn private_in(&self, parent: Option<&Option<Obj>>, rel: &Path) -> Option<Obj> {
        match (parent, rel.file_name()) {
            (Some(None), _) => None,
            (Some(Some(dir)), Some(name)) => Self::obj_under(&dir.fd, Path::new(name)),
            _ => self.private_obj(rel),
        }
    }

    /// What `entries` holds for `rel`'s parent directory, if it is one.
    pub(super) fn held_parent<'a>(entries: &'a [Entry], rel: &Path) -> Option<&'a Option<Obj>> {
        let dir = rel.parent()?;
        entries.iter().find(|e| e.path == dir).map(|e| &e.obj)
    }

    /// Look at `rels` in the private area, and at the parents of each up to
    /// the first one present: an overlay copy-up creates the missing ones,
    /// and the first present one's directory may grow.
    pub(super) fn pending(&self, rels: &[&Path], in_place: bool) -> Pending {
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
    pub(super) fn settle(&self, q: &mut Quota, p: &Pending) {
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
    pub(super) fn mutate<T>(
        &self,
        rels: &[&Path],
        check: impl FnOnce(&Pending, &Quota, u64) -> Result<(), Exceeded>,
        op: impl FnOnce() -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        self.mutate_as(rels, false, check, op)
    }

    /// `mutate` for operations that change objects in place (`in_place`)
    /// or may replace what a path names.
    pub(super) fn mutate_as<T>(
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
    pub(super) fn mutate_held<T>(
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
    pub(super) fn mutate_from<T>(
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
}
