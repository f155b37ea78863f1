//! Reading a directory tree into entries, and writing entries' metadata back
//! onto files (layer trees, checkouts, objects copied in).

use super::manifest::{Entry, Kind, Meta, Xattrs};
use super::StoreError;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// An entry of the tree being committed, with where it is on disk.
pub struct Scanned {
    pub entry: Entry,
    pub disk: PathBuf,
    /// (device, inode): hardlinks are hashed once.
    pub inode: (u64, u64),
}

/// All xattrs of `path` (not following symlinks), sorted by name.
pub fn read_xattrs(path: &Path) -> Result<Xattrs, StoreError> {
    let io = |source| StoreError::Io {
        op: "read the extended attributes of",
        path: path.to_path_buf(),
        source,
    };
    let names = match xattr::list(path) {
        Ok(n) => n,
        // A file system without xattrs simply has none to keep.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut out = Vec::new();
    for name in names {
        if let Some(value) = xattr::get(path, &name).map_err(io)? {
            out.push((name.as_bytes().to_vec(), value));
        }
    }
    out.sort();
    Ok(out)
}

pub fn meta_of(md: &std::fs::Metadata, xattrs: Xattrs) -> Meta {
    Meta {
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        mtime: md.mtime(),
        mtime_nsec: md.mtime_nsec().clamp(0, 999_999_999) as u32,
        xattrs,
    }
}

/// Walk `root` (lstat, not crossing mount points) into entries sorted by path.
/// Regular files get an empty object id, filled in once hashed, and the first
/// path of their inode if they are not its first name.
pub fn scan(root: &Path) -> Result<Vec<Scanned>, StoreError> {
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .same_file_system(true);
    for item in walker {
        crate::cancel::check()?;
        let item = item.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            StoreError::Io {
                op: "read the tree to commit at",
                path,
                source: e.into(),
            }
        })?;
        let disk = item.path().to_path_buf();
        let md = std::fs::symlink_metadata(&disk).map_err(|source| StoreError::Io {
            op: "lstat",
            path: disk.clone(),
            source,
        })?;
        let rel = disk.strip_prefix(root).unwrap_or(Path::new(""));
        let mut path = b"/".to_vec();
        path.extend_from_slice(rel.as_os_str().as_bytes());
        let ft = md.file_type();
        let dev = || {
            let rdev = md.rdev();
            (rustix::fs::major(rdev), rustix::fs::minor(rdev))
        };
        let (kind, size) = if ft.is_dir() {
            (Kind::Dir, 0)
        } else if ft.is_file() {
            (
                Kind::File {
                    object: String::new(),
                    link: None,
                },
                md.len(),
            )
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&disk).map_err(|source| StoreError::Io {
                op: "read the symlink",
                path: disk.clone(),
                source,
            })?;
            (
                Kind::Symlink {
                    target: target.as_os_str().as_bytes().to_vec(),
                },
                0,
            )
        } else if ft.is_char_device() {
            let (major, minor) = dev();
            (Kind::Char { major, minor }, 0)
        } else if ft.is_block_device() {
            let (major, minor) = dev();
            (Kind::Block { major, minor }, 0)
        } else if ft.is_fifo() {
            (Kind::Fifo, 0)
        } else {
            // Sockets belong to a running process, not to a template.
            return Err(StoreError::Unsupported {
                path: disk,
                what: "socket",
            });
        };
        if path.contains(&b'\n') {
            // Allowed by the encoding, but almost always a build bug worth stopping for.
            return Err(StoreError::Unsupported {
                path: disk,
                what: "file whose name contains a newline",
            });
        }
        let xattrs = read_xattrs(&disk)?;
        out.push(Scanned {
            entry: Entry {
                path,
                kind,
                meta: meta_of(&md, xattrs),
                size,
            },
            disk,
            inode: (md.dev(), md.ino()),
        });
    }
    out.sort_by(|a, b| a.entry.path.cmp(&b.entry.path));
    // Further names of an inode point at its first name in path order, so
    // checkout can tell real hardlinks from files that merely share an object.
    let mut firsts: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    for s in &mut out {
        if let Kind::File { link, .. } = &mut s.entry.kind {
            match firsts.get(&s.inode) {
                Some(first) => *link = Some(first.clone()),
                None => {
                    firsts.insert(s.inode, s.entry.path.clone());
                }
            }
        }
    }
    Ok(out)
}

pub fn disk_path(root: &Path, e: &Entry) -> PathBuf {
    let rel = e.rel();
    if rel.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

fn timestamps(m: &Meta) -> rustix::fs::Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: m.mtime,
        tv_nsec: m.mtime_nsec as _,
    };
    rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Create the non-file entry `e` at `path` (directories may already exist).
pub fn create_node(path: &Path, e: &Entry) -> Result<(), StoreError> {
    use rustix::fs::{FileType, Mode, CWD};
    let io = |source: std::io::Error| StoreError::Io {
        op: "create",
        path: path.to_path_buf(),
        source,
    };
    let mknod = |ft: FileType, dev: u64| {
        rustix::fs::mknodat(CWD, path, ft, Mode::from_raw_mode(0o600), dev)
            .map_err(|e| io(e.into()))
    };
    match &e.kind {
        Kind::Dir | Kind::Parent => match std::fs::create_dir(path) {
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
            r => r.map_err(io),
        },
        Kind::Symlink { target } => {
            std::os::unix::fs::symlink(OsStr::from_bytes(target), path).map_err(io)
        }
        Kind::Char { major, minor } => mknod(
            FileType::CharacterDevice,
            rustix::fs::makedev(*major, *minor),
        ),
        Kind::Block { major, minor } => {
            mknod(FileType::BlockDevice, rustix::fs::makedev(*major, *minor))
        }
        Kind::Fifo => mknod(FileType::Fifo, 0),
        Kind::File { .. } => Err(StoreError::Internal {
            what: "create_node called for a regular file",
        }),
    }
}

/// Owner, mode, xattrs and (if `times`) mtime, in the order that keeps them:
/// chown clears setuid bits and file capabilities, so it goes first.
pub fn apply_meta(path: &Path, e: &Entry, times: bool) -> Result<(), StoreError> {
    let io = |op, source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    let m = &e.meta;
    std::os::unix::fs::lchown(path, Some(m.uid), Some(m.gid)).map_err(|s| io("chown", s))?;
    if !matches!(e.kind, Kind::Symlink { .. }) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m.mode))
            .map_err(|s| io("chmod", s))?;
    }
    for (name, value) in &m.xattrs {
        xattr::set(path, OsStr::from_bytes(name), value)
            .map_err(|s| io("set an extended attribute on", s))?;
    }
    if times {
        set_mtime(path, m)?;
    }
    Ok(())
}

pub fn set_mtime(path: &Path, m: &Meta) -> Result<(), StoreError> {
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &timestamps(m),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| StoreError::Io {
        op: "set the mtime of",
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// The same for an open file (objects being copied in).
pub fn apply_meta_fd(file: &std::fs::File, path: &Path, m: &Meta) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    use xattr::FileExt;
    let io = |op, source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    std::os::unix::fs::fchown(file, Some(m.uid), Some(m.gid)).map_err(|s| io("chown", s))?;
    file.set_permissions(std::fs::Permissions::from_mode(m.mode))
        .map_err(|s| io("chmod", s))?;
    for (name, value) in &m.xattrs {
        file.set_xattr(OsStr::from_bytes(name), value)
            .map_err(|s| io("set an extended attribute on", s))?;
    }
    rustix::fs::futimens(file, &timestamps(m)).map_err(|e| io("set the mtime of", e.into()))
}
