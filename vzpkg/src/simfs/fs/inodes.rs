//! Inodes, paths and open files: the maps from FUSE's numbers to names
//! under the backing root and to open descriptors.

use super::*;

impl SimFs {
    pub(crate) fn new(
        root: OwnedFd,
        quota: Arc<Mutex<Quota>>,
        want_passthrough: bool,
    ) -> std::io::Result<Self> {
        let st = rustix::fs::fstat(&root)?;
        let stack_depth = if crate::simfs::stacked_fd(&root) {
            2
        } else {
            1
        };
        let mut nodes = Nodes {
            map: HashMap::new(),
            by_key: HashMap::new(),
            next: 2,
        };
        nodes.map.insert(
            1,
            Node {
                names: vec![(1, OsString::new())],
                nlookup: 1,
                key: key(&st),
                private: true,
                removed: None,
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
    pub(super) fn is_root(&self, uid: u32) -> bool {
        uid == 0 || uid == self.root_uid
    }

    /// What a query of the live figures waits on (see [`Settling`]).
    pub(crate) fn settling(&self) -> Arc<Settling> {
        self.settling.clone()
    }

    /// The backing path of `ino`, relative to the root.
    pub(super) fn path(&self, ino: u64) -> Result<PathBuf, Errno> {
        let nodes = lock(&self.nodes);
        let mut names = Vec::new();
        let mut cur = ino;
        while cur != 1 {
            let node = nodes.map.get(&cur).ok_or(Errno::ESTALE)?;
            let (parent, name) = node.at()?;
            names.push(name.to_owned());
            cur = parent;
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

    pub(super) fn child_path(&self, parent: u64, name: &OsStr) -> Result<PathBuf, Errno> {
        check_name(name)?;
        Ok(self.path(parent)?.join(name))
    }

    /// Open a path under `base`; it can't resolve to anything outside it,
    /// and a symlink as the last component is opened, not followed.
    pub(super) fn open_under(
        base: &OwnedFd,
        rel: &Path,
        flags: OFlags,
        mode: Mode,
    ) -> Result<OwnedFd, Errno> {
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

    pub(super) fn open_rel(&self, rel: &Path, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
        Self::open_under(&self.root, rel, flags, mode)
    }

    /// Open `ino`: its name in its parent's cached fd when there is one
    /// (one step instead of a walk of the whole path), else its path; with
    /// no name left, the object held since its removal.
    pub(super) fn open_ino(&self, ino: u64, flags: OFlags) -> Result<OwnedFd, Errno> {
        if ino != 1 {
            let (parent, name) = {
                let nodes = lock(&self.nodes);
                let n = nodes.map.get(&ino).ok_or(Errno::ESTALE)?;
                match (n.at(), &n.removed) {
                    (Ok((parent, name)), _) => (parent, name.to_owned()),
                    (Err(_), Some(fd)) => return reopen(fd, flags),
                    (Err(e), None) => return Err(e),
                }
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
    pub(super) fn dir_fd(&self, ino: u64) -> Result<Arc<OwnedFd>, Errno> {
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
    pub(super) fn locate(&self, ino: u64) -> Result<(Arc<OwnedFd>, OsString), Errno> {
        if ino == 1 {
            return Err(Errno::EBUSY);
        }
        let (parent, name) = {
            let nodes = lock(&self.nodes);
            let n = nodes.map.get(&ino).ok_or(Errno::ESTALE)?;
            let (parent, name) = n.at()?;
            (parent, name.to_owned())
        };
        Ok((self.dir_fd(parent)?, name))
    }

    /// Record a name the kernel now holds a reference to.
    pub(super) fn remember(&self, parent: u64, name: &OsStr, st: &Stat) -> u64 {
        let mut nodes = lock(&self.nodes);
        let k = key(st);
        if let Some(&ino) = nodes.by_key.get(&k) {
            if let Some(n) = nodes.map.get_mut(&ino) {
                n.nlookup += 1;
                if ino != 1 {
                    n.name_first(parent, name);
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
                names: vec![(parent, name.to_owned())],
                nlookup: 1,
                key: k,
                private: false,
                removed: None,
            },
        );
        nodes.by_key.insert(k, ino);
        ino
    }

    /// `inos` are in the private area now.
    pub(super) fn mark_private(&self, inos: &[u64]) {
        let mut nodes = lock(&self.nodes);
        for ino in inos {
            if let Some(n) = nodes.map.get_mut(ino) {
                n.private = true;
            }
        }
    }

    pub(super) fn is_private(&self, ino: u64) -> bool {
        lock(&self.nodes).map.get(&ino).is_some_and(|n| n.private)
    }

    /// The kernel dropped `n` of its references to `ino`.
    pub(super) fn forget_one(&self, ino: u64, n: u64) {
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

    /// After a rename, the object with key `k` is named `to` instead of
    /// `from`, each a (parent inode, name).
    pub(super) fn moved(&self, k: (u64, u64), from: (u64, &OsStr), to: (u64, &OsStr)) {
        let mut nodes = lock(&self.nodes);
        let Some(&ino) = nodes.by_key.get(&k) else {
            return;
        };
        if let Some(n) = nodes.map.get_mut(&ino).filter(|_| ino != 1) {
            n.drop_name(from.0, from.1);
            n.name_first(to.0, to.1);
        }
    }

    /// A link made: the node `ino` is also named `name` in `parent`.
    pub(super) fn linked(&self, ino: u64, parent: u64, name: &OsStr) {
        if let Some(n) = lock(&self.nodes).map.get_mut(&ino) {
            n.nlookup += 1;
            n.name_also(parent, name);
        }
    }

    /// `name` in `parent`, which named the object with key `k`, was
    /// removed or replaced. When the object has no name left (`last`), or
    /// none we know of, its node keeps `held`, the object open, until the
    /// kernel forgets it, and no longer answers for `k`: the file system
    /// may give that inode number to a new file once `held` closes, and
    /// the kernel must see a new inode for it. Handing it the old node
    /// would make two files one inode to the kernel, and to the overlay,
    /// which then finds its upper dentry stale (`ESTALE`).
    pub(super) fn unnamed(
        &self,
        k: (u64, u64),
        parent: u64,
        name: &OsStr,
        last: bool,
        held: Option<Arc<OwnedFd>>,
    ) {
        let mut nodes = lock(&self.nodes);
        let Some(&ino) = nodes.by_key.get(&k) else {
            return;
        };
        let Some(n) = nodes.map.get_mut(&ino).filter(|_| ino != 1) else {
            return;
        };
        n.drop_name(parent, name);
        if last {
            n.names.clear();
        }
        if !n.names.is_empty() {
            return;
        }
        n.removed = held;
        nodes.by_key.remove(&k);
        drop(nodes);
        lock(&self.dirs).remove(&ino);
    }

    /// An open of `ino` that has no name left: a live one, else one made
    /// from what its node holds (regular files and directories only:
    /// opening a device could do something).
    pub(super) fn removed_open(&self, ino: u64) -> Option<Arc<OwnedFd>> {
        let live = self
            .any_open(ino)
            .filter(|fd| stat_fd(&**fd).is_ok_and(|st| st.st_nlink == 0));
        live.or_else(|| {
            let held = lock(&self.nodes)
                .map
                .get(&ino)
                .filter(|n| n.names.is_empty())?
                .removed
                .clone()?;
            let st = stat_fd(&*held).ok()?;
            let t = rustix::fs::FileType::from_raw_mode(st.st_mode);
            if t != rustix::fs::FileType::RegularFile && t != rustix::fs::FileType::Directory {
                return None;
            }
            reopen(&held, OFlags::RDONLY | OFlags::NONBLOCK)
                .ok()
                .map(Arc::new)
        })
    }

    pub(super) fn add_fh(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, h);
        fh
    }

    /// Keep an open file of `ino` (counted by `reserve` or `open_read`); a
    /// writing one becomes the inode's `Opens::writer`.
    pub(super) fn add_file(&self, fd: OwnedFd, ino: u64, io: Io, writes: bool) -> u64 {
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
    pub(super) fn writer(&self, ino: u64) -> Option<Arc<OwnedFd>> {
        lock(&self.opens).get(&ino).and_then(|o| o.writer.clone())
    }

    /// The fd of a live open of `ino`, a writing one first; only an inode
    /// with opens costs a look through the handles.
    pub(super) fn any_open(&self, ino: u64) -> Option<Arc<OwnedFd>> {
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
    pub(super) fn file_open(&self, fh: u64) -> Result<(Arc<OwnedFd>, u64, bool), Errno> {
        match lock(&self.handles).get(&fh) {
            Some(Handle::File {
                fd, ino, writes, ..
            }) => Ok((fd.clone(), *ino, *writes)),
            _ => Err(Errno::EBADF),
        }
    }

    pub(super) fn file_fd_ino(&self, fh: u64) -> Result<(Arc<OwnedFd>, u64), Errno> {
        self.file_open(fh).map(|(fd, ino, _)| (fd, ino))
    }
}

impl Node {
    /// The name its path is built from: (parent inode, name).
    fn at(&self) -> Result<(u64, &OsStr), Errno> {
        self.names
            .first()
            .map(|(p, n)| (*p, n.as_os_str()))
            .ok_or(Errno::ESTALE)
    }

    fn drop_name(&mut self, parent: u64, name: &OsStr) {
        self.names.retain(|(p, n)| !(*p == parent && n == name));
    }

    /// `name` in `parent` becomes the name its path is built from.
    fn name_first(&mut self, parent: u64, name: &OsStr) {
        self.drop_name(parent, name);
        self.names.insert(0, (parent, name.to_owned()));
        self.names.truncate(MAX_NAMES);
    }

    /// Another name, kept after those it has.
    fn name_also(&mut self, parent: u64, name: &OsStr) {
        if self.names.len() < MAX_NAMES
            && !self.names.iter().any(|(p, n)| *p == parent && n == name)
        {
            self.names.push((parent, name.to_owned()));
        }
    }
}
