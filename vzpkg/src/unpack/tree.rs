//! Writing archive entries into a target tree without ever leaving it.
//!
//! Every archive path is resolved inside the root: intermediate components
//! that are symlinks already in the tree are followed (an absolute target is
//! taken relative to the root, as it will be once the tree is the VPS's `/`),
//! the final component never is, and anything that climbs above the root is
//! refused. The resolved parent is then opened with `openat2` and
//! `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH`, so a symlink swapped in by a
//! concurrently unpacked package cannot redirect the write either.
//! Used by the deb and rpm unpackers, and by the import of template caches
//! ([`Tree::open_no_symlinks`]: an archive restored as it is, where a path
//! through a symlink is refused). The caller walks its archive and hands
//! each entry over, so it can skip or act on entries itself (an image
//! layer's whiteouts, say).

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timestamps};
use rustix::io::Errno;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use thiserror::Error;

/// Symlinks followed while resolving one path, as the kernel's limit.
const MAX_LINKS: usize = 40;
const COPY_BUF: usize = 1 << 20;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TreeError {
    #[error("archive entry {path:?} would be written outside the target tree ({reason}); the archive is broken or hostile, so nothing more is unpacked from it: drop the package or report it to its maintainer")]
    Escape { path: String, reason: String },
    #[error("archive entry {path:?}: {detail}; two packages disagree about this path, remove one of them from the package set")]
    Conflict { path: String, detail: String },
    #[error("archive entry {path:?}: hardlink target {target:?} does not exist in the tree (it must come earlier in the same archive); the archive is malformed")]
    MissingLinkTarget { path: String, target: String },
    #[error("reading the data of archive entry {path:?} failed: {source}; the package file is corrupt, delete it from the package cache so it is fetched again")]
    Read { path: String, source: io::Error },
    #[error(
        "{op} {path}: {source}; check free space, inodes and permissions of the target directory"
    )]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// Metadata of one entry, as the archive gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits including setuid/setgid/sticky (type bits are ignored).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// Extended attributes (`security.capability`, ...), name and value.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Char,
    Block,
    Fifo,
}

/// What a directory entry found or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirOutcome {
    /// The archive's `./` itself: the root is left as the caller made it.
    Root,
    /// A real directory (new or already there), as a root-relative path; its
    /// metadata is for the caller to apply once everything is in.
    Dir(Vec<u8>),
    /// An existing symlink to a directory was kept, as dpkg does.
    KeptSymlink,
}

/// The target tree. Cheap to share between threads.
pub struct Tree {
    root: PathBuf,
    root_fd: OwnedFd,
    /// Packages: symlinks already in the tree lead paths elsewhere inside
    /// it. Restored archives: no path goes through a symlink.
    follow_symlinks: bool,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Tree {
    pub fn open(root: &Path) -> Result<Tree, TreeError> {
        let root_fd = rfs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err("open directory", root.to_path_buf(), e))?;
        Ok(Tree {
            root: root.to_path_buf(),
            root_fd,
            follow_symlinks: true,
        })
    }

    /// For an archive restored as it is (a template cache, an image layer):
    /// a path that goes through a symlink is refused as an escape, and a
    /// directory entry replaces a non-directory in its way, as GNU tar does.
    pub fn open_no_symlinks(root: &Path) -> Result<Tree, TreeError> {
        let mut tree = Tree::open(root)?;
        tree.follow_symlinks = false;
        Ok(tree)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A writer for one archive; keeps per-archive caches, so use one per
    /// thread.
    pub fn writer(&self) -> TreeWriter<'_> {
        TreeWriter {
            tree: self,
            dirs: HashMap::new(),
            parent: None,
            buf: Vec::new(),
        }
    }

    fn host_path(&self, rel: &[u8]) -> PathBuf {
        self.root.join(Path::new(std::ffi::OsStr::from_bytes(rel)))
    }

    /// Open a root-relative path that contains no symlinks as a directory.
    fn open_dir_beneath(&self, rel: &[u8]) -> Result<OwnedFd, Errno> {
        let path = if rel.is_empty() { &b"."[..] } else { rel };
        let path = std::ffi::OsStr::from_bytes(path);
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        match rfs::openat2(
            &self.root_fd,
            path,
            flags,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) {
            // Kernels before 5.6: the path was checked component by component.
            Err(Errno::NOSYS) => rfs::openat(&self.root_fd, path, flags, Mode::empty()),
            r => r,
        }
    }

    /// Apply a directory's metadata (owner, mode, xattrs, mtime), for the
    /// pass that runs once every file is in.
    pub fn apply_dir_meta(&self, rel: &[u8], meta: &Meta) -> Result<(), TreeError> {
        let fd = self
            .open_dir_beneath(rel)
            .map_err(|e| io_err("open directory", self.host_path(rel), e))?;
        set_fd_meta(&fd, meta).map_err(|(op, e)| io_err(op, self.host_path(rel), e))
    }

    /// `mkdir -p` below the root (mode 0755, owner root), following symlinks
    /// in the tree like any archive path would; returns the real path.
    pub fn create_dirs(&self, path: &str) -> Result<Vec<u8>, TreeError> {
        let mut w = self.writer();
        let comps = split(path.as_bytes(), path)?;
        w.resolve_dir(&comps, path, true)
    }
}

/// Receives a regular file's bytes as they are written (for checksums).
pub type HashFeed<'a> = dyn FnMut(&[u8]) + 'a;

pub struct TreeWriter<'t> {
    tree: &'t Tree,
    /// Archive directory path → real root-relative path.
    dirs: HashMap<Vec<u8>, Vec<u8>>,
    /// The last opened parent directory; archives are mostly in directory order.
    parent: Option<(Vec<u8>, OwnedFd)>,
    buf: Vec<u8>,
}

/// A path split for writing: the real parent directory and the final name.
struct Target<'a> {
    parent_rel: Vec<u8>,
    name: &'a [u8],
}

impl<'t> TreeWriter<'t> {
    /// A directory entry.
    pub fn dir(&mut self, path: &[u8]) -> Result<DirOutcome, TreeError> {
        let tree = self.tree;
        let shown = show(path);
        let comps = split(path, &shown)?;
        if comps.is_empty() {
            return Ok(DirOutcome::Root);
        }
        let t = self.target(&comps, &shown)?;
        let name = t.name;
        let fd = self.parent_fd(&t.parent_rel, &shown)?;
        let rel = join(&t.parent_rel, name);
        match rfs::mkdirat(fd, name, Mode::from_raw_mode(0o755)) {
            Ok(()) => Ok(DirOutcome::Dir(rel)),
            Err(Errno::EXIST) => {
                let st = rfs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| io_err("stat", tree.host_path(&rel), e))?;
                match FileType::from_raw_mode(st.st_mode) {
                    FileType::Directory => Ok(DirOutcome::Dir(rel)),
                    _ if !tree.follow_symlinks => {
                        let host = tree.host_path(&rel);
                        rfs::unlinkat(fd, name, AtFlags::empty())
                            .map_err(|e| io_err("remove", host.clone(), e))?;
                        rfs::mkdirat(fd, name, Mode::from_raw_mode(0o755))
                            .map_err(|e| io_err("create directory", host, e))?;
                        Ok(DirOutcome::Dir(rel))
                    }
                    FileType::Symlink => {
                        // Kept only if it leads to a directory inside the tree.
                        match self.resolve_dir(&comps, &shown, false) {
                            Ok(_) => Ok(DirOutcome::KeptSymlink),
                            Err(TreeError::MissingLinkTarget { .. }) => Err(TreeError::Conflict {
                                path: shown,
                                detail: "the tree has a dangling symlink where the archive has a directory".into(),
                            }),
                            Err(e) => Err(e),
                        }
                    }
                    _ => Err(TreeError::Conflict {
                        path: shown,
                        detail: "the archive has a directory where the tree already has a file"
                            .into(),
                    }),
                }
            }
            Err(e) => Err(io_err("create directory", self.tree.host_path(&rel), e)),
        }
    }

    /// A regular file: its data is copied from `data`, and fed to `hash` too.
    /// Returns the number of bytes written.
    pub fn file(
        &mut self,
        path: &[u8],
        meta: &Meta,
        data: &mut dyn Read,
        mut hash: Option<&mut HashFeed<'_>>,
    ) -> Result<u64, TreeError> {
        let shown = show(path);
        let t = self.target_of(path, &shown)?;
        let name = t.name;
        let host = self.tree.host_path(&join(&t.parent_rel, name));
        if self.buf.len() < COPY_BUF {
            self.buf = vec![0u8; COPY_BUF];
        }
        let mut buf = std::mem::take(&mut self.buf);
        let fd = self.parent_fd(&t.parent_rel, &shown)?;
        let create =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let (file_fd, tmp) = match rfs::openat(fd, name, create, Mode::from_raw_mode(0o600)) {
            Ok(f) => (f, None),
            Err(Errno::EXIST) => {
                let tmp = tmp_name();
                let f = rfs::openat(fd, &tmp, create, Mode::from_raw_mode(0o600))
                    .map_err(|e| io_err("create", host.clone(), e))?;
                (f, Some(tmp))
            }
            Err(e) => return Err(io_err("create", host, e)),
        };
        let mut file = File::from(file_fd);
        let mut total = 0u64;
        let res = (|| {
            loop {
                let n = match data.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(source) => {
                        return Err(TreeError::Read {
                            path: shown.clone(),
                            source,
                        })
                    }
                };
                if let Some(h) = hash.as_mut() {
                    h(&buf[..n]);
                }
                file.write_all(&buf[..n]).map_err(|source| TreeError::Io {
                    op: "write",
                    path: host.clone(),
                    source,
                })?;
                total += n as u64;
            }
            set_fd_meta(&file, meta).map_err(|(op, e)| io_err(op, host.clone(), e))
        })();
        self.buf = buf;
        drop(file);
        let fd = self.parent_fd(&t.parent_rel, &shown)?;
        if let Some(tmp) = tmp {
            if let Err(e) = res {
                let _ = rfs::unlinkat(fd, &tmp, AtFlags::empty());
                return Err(e);
            }
            self.replace(&tmp, name, &shown, &host)?;
        } else {
            res?;
        }
        Ok(total)
    }

    /// A symlink; `target` is stored as given (it is only followed, safely,
    /// when a later path goes through it).
    pub fn symlink(&mut self, path: &[u8], target: &[u8], meta: &Meta) -> Result<(), TreeError> {
        let shown = show(path);
        let t = self.target_of(path, &shown)?;
        let name = t.name;
        let host = self.tree.host_path(&join(&t.parent_rel, name));
        let target = std::ffi::OsStr::from_bytes(target);
        let fd = self.parent_fd(&t.parent_rel, &shown)?;
        match rfs::symlinkat(target, fd, name) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let tmp = tmp_name();
                rfs::symlinkat(target, fd, &tmp)
                    .map_err(|e| io_err("create symlink", host.clone(), e))?;
                self.replace(&tmp, name, &shown, &host)?;
            }
            Err(e) => return Err(io_err("create symlink", host, e)),
        }
        // The tree changed shape: cached resolutions may go through this path.
        self.dirs.clear();
        let fd = self.parent_fd(&t.parent_rel, &shown)?;
        finish_at(fd, name, meta, false, &host)
    }

    /// A hardlink to `target`, an earlier path of the same archive.
    pub fn hardlink(&mut self, path: &[u8], target: &[u8]) -> Result<(), TreeError> {
        let shown = show(path);
        let tshown = show(target);
        let tcomps = split(target, &tshown)?;
        let Some((tname, tdir)) = tcomps.split_last() else {
            return Err(TreeError::Escape {
                path: shown,
                reason: "hardlink to the root directory".into(),
            });
        };
        if *tname == b".." {
            return Err(TreeError::Escape {
                path: shown,
                reason: format!("hardlink target {tshown:?} ends in `..`"),
            });
        }
        let missing = || TreeError::MissingLinkTarget {
            path: shown.clone(),
            target: tshown.clone(),
        };
        let tparent = match self.resolve_dir(tdir, &tshown, false) {
            Ok(p) => p,
            Err(TreeError::MissingLinkTarget { .. }) => return Err(missing()),
            Err(e) => return Err(e),
        };
        let tfd = self
            .tree
            .open_dir_beneath(&tparent)
            .map_err(|e| io_err("open directory", self.tree.host_path(&tparent), e))?;
        let t = self.target_of(path, &shown)?;
        let name = t.name;
        let host = self.tree.host_path(&join(&t.parent_rel, name));
        let fd = self.parent_fd(&t.parent_rel, &shown)?;
        match rfs::linkat(&tfd, *tname, fd, name, AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(Errno::NOENT) => Err(missing()),
            Err(Errno::EXIST) => {
                let tmp = tmp_name();
                rfs::linkat(&tfd, *tname, fd, &tmp, AtFlags::empty())
                    .map_err(|e| io_err("create hardlink", host.clone(), e))?;
                self.replace(&tmp, name, &shown, &host)
            }
            Err(e) => Err(io_err("create hardlink", host, e)),
        }
    }

    /// A character or block device or a fifo.
    pub fn node(
        &mut self,
        path: &[u8],
        kind: NodeKind,
        major: u32,
        minor: u32,
        meta: &Meta,
    ) -> Result<(), TreeError> {
        let shown = show(path);
        let t = self.target_of(path, &shown)?;
        let name = t.name;
        let host = self.tree.host_path(&join(&t.parent_rel, name));
        let ft = match kind {
            NodeKind::Char => FileType::CharacterDevice,
            NodeKind::Block => FileType::BlockDevice,
            NodeKind::Fifo => FileType::Fifo,
        };
        let dev = rfs::makedev(major, minor);
        let mode = Mode::from_raw_mode(0o600);
        let fd = self.parent_fd(&t.parent_rel, &shown)?;
        match rfs::mknodat(fd, name, ft, mode, dev) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let tmp = tmp_name();
                rfs::mknodat(fd, &tmp, ft, mode, dev)
                    .map_err(|e| io_err("create node", host.clone(), e))?;
                self.replace(&tmp, name, &shown, &host)?;
            }
            Err(e) => return Err(io_err("create node", host, e)),
        }
        let fd = self.parent_fd(&t.parent_rel, &shown)?;
        finish_at(fd, name, meta, true, &host)
    }

    /// Rename a finished temporary entry over an existing one (never over a
    /// directory).
    fn replace(
        &mut self,
        tmp: &[u8],
        name: &[u8],
        shown: &str,
        host: &Path,
    ) -> Result<(), TreeError> {
        let Some((_, fd)) = self.parent.as_ref() else {
            return Err(io_err("rename", host.to_path_buf(), Errno::BADF));
        };
        match rfs::renameat(fd, tmp, fd, name) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = rfs::unlinkat(fd, tmp, AtFlags::empty());
                if e == Errno::ISDIR
                    || e == Errno::NOTEMPTY
                    || e == Errno::EXIST
                    || e == Errno::NOTDIR
                {
                    Err(TreeError::Conflict {
                        path: shown.to_string(),
                        detail: "the tree already has a directory at this path".into(),
                    })
                } else {
                    Err(io_err("rename into place", host.to_path_buf(), e))
                }
            }
        }
    }

    fn target_of<'p>(&mut self, path: &'p [u8], shown: &str) -> Result<Target<'p>, TreeError> {
        let comps = split(path, shown)?;
        if comps.is_empty() {
            return Err(TreeError::Conflict {
                path: shown.to_string(),
                detail: "the archive has a non-directory entry for the root itself".into(),
            });
        }
        self.target(&comps, shown)
    }

    fn target<'p>(&mut self, comps: &[&'p [u8]], shown: &str) -> Result<Target<'p>, TreeError> {
        let Some((name, dir)) = comps.split_last() else {
            return Err(TreeError::Escape {
                path: shown.to_string(),
                reason: "empty path".into(),
            });
        };
        if *name == b".." {
            return Err(TreeError::Escape {
                path: shown.to_string(),
                reason: "the path ends in `..`".into(),
            });
        }
        let parent_rel = self.resolve_dir(dir, shown, true)?;
        Ok(Target { parent_rel, name })
    }

    /// The open parent directory, reusing the last one.
    fn parent_fd(
        &mut self,
        rel: &[u8],
        shown: &str,
    ) -> Result<std::os::fd::BorrowedFd<'_>, TreeError> {
        let reuse = matches!(&self.parent, Some((p, _)) if p == rel);
        if !reuse {
            let fd = match self.tree.open_dir_beneath(rel) {
                Ok(fd) => fd,
                // A component became a symlink since it was resolved: another
                // package raced us. Report it rather than follow it.
                Err(Errno::LOOP) | Err(Errno::XDEV) | Err(Errno::NOTDIR) => {
                    self.dirs.clear();
                    return Err(TreeError::Conflict {
                        path: shown.to_string(),
                        detail: "a directory on the way was replaced by a symlink while unpacking"
                            .into(),
                    });
                }
                Err(e) => return Err(io_err("open directory", self.tree.host_path(rel), e)),
            };
            self.parent = Some((rel.to_vec(), fd));
        }
        match &self.parent {
            Some((_, fd)) => Ok(fd.as_fd()),
            None => Err(io_err(
                "open directory",
                self.tree.host_path(rel),
                Errno::BADF,
            )),
        }
    }

    /// Resolve archive directory components to a real, symlink-free
    /// root-relative path. Missing directories are created when `create`,
    /// else reported as `MissingLinkTarget`.
    fn resolve_dir(
        &mut self,
        comps: &[&[u8]],
        shown: &str,
        create: bool,
    ) -> Result<Vec<u8>, TreeError> {
        let key = comps.join(&b"/"[..]);
        if let Some(r) = self.dirs.get(&key) {
            return Ok(r.clone());
        }
        let root_fd = &self.tree.root_fd;
        let mut queue: std::collections::VecDeque<Vec<u8>> =
            comps.iter().map(|c| c.to_vec()).collect();
        let mut stack: Vec<Vec<u8>> = Vec::new();
        let mut links = 0usize;
        while let Some(c) = queue.pop_front() {
            if c.is_empty() || c == b"." {
                continue;
            }
            if c == b".." {
                if stack.pop().is_none() {
                    let reason = if links > 0 {
                        "a symlink on the way points above the root"
                    } else {
                        "`..` climbs above the root"
                    };
                    return Err(TreeError::Escape {
                        path: shown.to_string(),
                        reason: reason.into(),
                    });
                }
                continue;
            }
            stack.push(c);
            let rel = stack.join(&b"/"[..]);
            let relp = std::ffi::OsStr::from_bytes(&rel);
            let st = match rfs::statat(root_fd, relp, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) if create => {
                    match rfs::mkdirat(root_fd, relp, Mode::from_raw_mode(0o755)) {
                        // Another package made it meanwhile: look again.
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => {
                            return Err(io_err("create directory", self.tree.host_path(&rel), e))
                        }
                    }
                    let Some(last) = stack.pop() else { continue };
                    queue.push_front(last);
                    continue;
                }
                Err(Errno::NOENT) => {
                    return Err(TreeError::MissingLinkTarget {
                        path: shown.to_string(),
                        target: show(&rel),
                    })
                }
                Err(e) => return Err(io_err("stat", self.tree.host_path(&rel), e)),
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {}
                FileType::Symlink if !self.tree.follow_symlinks => {
                    return Err(TreeError::Escape {
                        path: shown.to_string(),
                        reason: format!(
                        "goes through {}, which is a symlink, which could lead outside the tree",
                        show(&rel)
                    ),
                    })
                }
                FileType::Symlink => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(TreeError::Conflict {
                            path: shown.to_string(),
                            detail: "too many levels of symlinks on the way".into(),
                        });
                    }
                    let target = rfs::readlinkat(root_fd, relp, Vec::new())
                        .map_err(|e| io_err("read symlink", self.tree.host_path(&rel), e))?;
                    let target = target.into_bytes();
                    stack.pop();
                    if target.first() == Some(&b'/') {
                        stack.clear();
                    }
                    for part in target.split(|b| *b == b'/').rev() {
                        queue.push_front(part.to_vec());
                    }
                }
                _ => {
                    return Err(TreeError::Conflict {
                        path: shown.to_string(),
                        detail: format!("{:?} is not a directory in the tree", show(&rel)),
                    })
                }
            }
        }
        let real = stack.join(&b"/"[..]);
        self.dirs.insert(key, real.clone());
        Ok(real)
    }
}

/// Owner, mode, xattrs and mtime of a non-regular, non-directory entry.
fn finish_at(
    fd: std::os::fd::BorrowedFd<'_>,
    name: &[u8],
    meta: &Meta,
    chmod: bool,
    host: &Path,
) -> Result<(), TreeError> {
    rfs::chownat(
        fd,
        name,
        Some(uid(meta.uid)),
        Some(gid(meta.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| io_err("chown", host.to_path_buf(), e))?;
    if chmod {
        rfs::chmodat(
            fd,
            name,
            Mode::from_raw_mode(meta.mode & 0o7777),
            AtFlags::empty(),
        )
        .map_err(|e| io_err("chmod", host.to_path_buf(), e))?;
    }
    for (k, v) in &meta.xattrs {
        rfs::lsetxattr(host, k.as_str(), v, rfs::XattrFlags::empty())
            .map_err(|e| io_err("set extended attribute", host.to_path_buf(), e))?;
    }
    rfs::utimensat(fd, name, &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| io_err("set mtime", host.to_path_buf(), e))
}

/// Split an archive path into components, dropping `.` and empty ones;
/// absolute paths are refused (dpkg-deb never writes them).
fn split<'p>(path: &'p [u8], shown: &str) -> Result<Vec<&'p [u8]>, TreeError> {
    if path.first() == Some(&b'/') {
        return Err(TreeError::Escape {
            path: shown.to_string(),
            reason: "absolute path".into(),
        });
    }
    if path.contains(&0) {
        return Err(TreeError::Escape {
            path: shown.to_string(),
            reason: "NUL byte in the path".into(),
        });
    }
    Ok(path
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect())
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        name.to_vec()
    } else {
        let mut v = parent.to_vec();
        v.push(b'/');
        v.extend_from_slice(name);
        v
    }
}

fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

fn tmp_name() -> Vec<u8> {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".vzpkg-new.{}.{n}", std::process::id()).into_bytes()
}

fn uid(u: u32) -> rfs::Uid {
    rfs::Uid::from_raw(u)
}

fn gid(g: u32) -> rfs::Gid {
    rfs::Gid::from_raw(g)
}

fn times(mtime: i64) -> Timestamps {
    let t = rfs::Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Owner first (chown clears setuid bits and file capabilities), then mode,
/// xattrs, mtime.
fn set_fd_meta(fd: impl AsFd, meta: &Meta) -> Result<(), (&'static str, Errno)> {
    let fd = fd.as_fd();
    rfs::fchown(fd, Some(uid(meta.uid)), Some(gid(meta.gid))).map_err(|e| ("chown", e))?;
    rfs::fchmod(fd, Mode::from_raw_mode(meta.mode & 0o7777)).map_err(|e| ("chmod", e))?;
    for (k, v) in &meta.xattrs {
        rfs::fsetxattr(fd, k.as_str(), v, rfs::XattrFlags::empty())
            .map_err(|e| ("set extended attribute", e))?;
    }
    rfs::futimens(fd, &times(meta.mtime)).map_err(|e| ("set mtime", e))
}

fn io_err(op: &'static str, path: PathBuf, e: Errno) -> TreeError {
    TreeError::Io {
        op,
        path,
        source: e.into(),
    }
}
