//! Writing a tree as a template cache.

use super::{Compression, ExportError, ExportOptions, ExportSummary};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::compress;
use crate::tarfmt::{pad, write_header, Member};

struct Counted<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Removes the temp file unless the cache was completed.
struct TempGuard {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

struct Node {
    rel: Vec<u8>,
    meta: Metadata,
}

/// Every path under `root` (lstat), not descending into other file systems;
/// a mount point itself is kept as an empty directory, as `tar
/// --one-file-system` does.
fn collect(root: &Path, skip: (u64, u64)) -> Result<Vec<Node>, ExportError> {
    let read_err = |path: &Path, source| ExportError::ReadTree {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::symlink_metadata(root).map_err(|e| read_err(root, e))?;
    if !meta.is_dir() {
        return Err(ExportError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    let dev = meta.dev();
    let mut nodes = vec![Node {
        rel: Vec::new(),
        meta,
    }];
    let mut stack: Vec<Vec<u8>> = vec![Vec::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(OsStr::from_bytes(&rel));
        for item in std::fs::read_dir(&dir).map_err(|e| read_err(&dir, e))? {
            let item = item.map_err(|e| read_err(&dir, e))?;
            let path = item.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| read_err(&path, e))?;
            if (meta.dev(), meta.ino()) == skip || meta.file_type().is_socket() {
                continue;
            }
            let mut child = rel.clone();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(item.file_name().as_bytes());
            if meta.is_dir() && meta.dev() == dev {
                stack.push(child.clone());
            }
            nodes.push(Node { rel: child, meta });
        }
    }
    nodes.sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
    Ok(nodes)
}

fn read_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        // Gone between list and get: nothing to record.
        if let Some(value) = xattr::get(path, &name)? {
            out.push((name.as_bytes().to_vec(), value));
        }
    }
    out.sort();
    Ok(out)
}

/// Tars `tree` into the cache `out`, compressed as `out`'s name says.
pub fn write_cache(
    tree: &Path,
    out: &Path,
    opts: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    let kind = Compression::from_path(out).ok_or_else(|| ExportError::UnknownSuffix {
        path: out.to_path_buf(),
    })?;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = b".".to_vec();
    tmp_name.extend_from_slice(out.file_name().map_or(&b"cache"[..], |n| n.as_bytes()));
    tmp_name.extend_from_slice(format!(".partial-{}", std::process::id()).as_bytes());
    let tmp = dir.join(OsStr::from_bytes(&tmp_name));
    let write_err = |source| ExportError::Write {
        path: tmp.clone(),
        source,
    };
    let file = File::options()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(write_err)?;
    let mut guard = TempGuard {
        path: tmp.clone(),
        keep: false,
    };
    let tmp_meta = file.metadata().map_err(write_err)?;
    // A cache written inside the tree must not contain itself.
    let nodes = collect(tree, (tmp_meta.dev(), tmp_meta.ino()))?;

    let compressed = Counted {
        inner: BufWriter::with_capacity(1 << 20, file),
        n: 0,
    };
    let mut w = Counted {
        inner: compress::writer(kind, compressed, opts).map_err(|e| ExportError::Compressor {
            path: out.to_path_buf(),
            codec: e.codec,
            detail: e.detail,
        })?,
        n: 0,
    };
    let mut first_link: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut buf = vec![0u8; 1 << 20];
    for node in &nodes {
        if crate::cancel::check().is_err() {
            return Err(ExportError::ExportCancelled {
                path: out.to_path_buf(),
            });
        }
        let path = tree.join(OsStr::from_bytes(&node.rel));
        let m = &node.meta;
        let ft = m.file_type();
        let mut name = b"./".to_vec();
        name.extend_from_slice(&node.rel);
        if ft.is_dir() && !node.rel.is_empty() {
            name.push(b'/');
        }
        let xattrs = read_xattrs(&path).map_err(|e| ExportError::ReadTree {
            path: path.clone(),
            source: e,
        })?;
        let key = (m.dev(), m.ino());
        let hard_target = match first_link.get(&key) {
            Some(first) if !ft.is_dir() => Some(first.clone()),
            _ => {
                if !ft.is_dir() && m.nlink() > 1 {
                    first_link.insert(key, name.clone());
                }
                None
            }
        };
        let mut h = Member {
            name: &name,
            mode: m.mode(),
            uid: u64::from(m.uid()),
            gid: u64::from(m.gid()),
            size: 0,
            mtime: m.mtime(),
            mtime_nsec: None,
            kind: b'0',
            link: b"",
            dev: (0, 0),
            xattrs: &xattrs,
        };
        let target;
        if let Some(first) = &hard_target {
            // Metadata and xattrs belong to the inode, written once.
            h.kind = b'1';
            h.link = first;
            h.xattrs = &[];
            write_header(&mut w, &h, &[]).map_err(write_err)?;
            continue;
        }
        if ft.is_dir() {
            h.kind = b'5';
        } else if ft.is_symlink() {
            target = std::fs::read_link(&path).map_err(|e| ExportError::ReadTree {
                path: path.clone(),
                source: e,
            })?;
            h.kind = b'2';
            h.link = target.as_os_str().as_bytes();
        } else if ft.is_char_device() || ft.is_block_device() {
            h.kind = if ft.is_char_device() { b'3' } else { b'4' };
            h.dev = (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev()));
        } else if ft.is_fifo() {
            h.kind = b'6';
        } else if ft.is_file() {
            h.size = m.len();
        }
        write_header(&mut w, &h, &[]).map_err(write_err)?;
        if ft.is_file() {
            let mut f = File::options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| ExportError::ReadTree {
                    path: path.clone(),
                    source: e,
                })?;
            let mut left = m.len();
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let got = f
                    .read(&mut buf[..want])
                    .map_err(|e| ExportError::ReadTree {
                        path: path.clone(),
                        source: e,
                    })?;
                if got == 0 {
                    return Err(ExportError::TreeChanged {
                        path,
                        detail: format!("it shrank from {} bytes", m.len()),
                    });
                }
                w.write_all(&buf[..got]).map_err(write_err)?;
                left -= got as u64;
            }
            pad(&mut w, m.len()).map_err(write_err)?;
        }
    }
    // End of archive: two zero blocks.
    w.write_all(&[0u8; 1024]).map_err(write_err)?;
    let uncompressed = w.n;
    let compressed = w.inner.finish().map_err(write_err)?;
    let compressed_bytes = compressed.n;
    let file = compressed
        .inner
        .into_inner()
        .map_err(|e| write_err(e.into_error()))?;
    file.sync_all().map_err(write_err)?;
    drop(file);
    std::fs::rename(&tmp, out).map_err(|e| ExportError::Write {
        path: out.to_path_buf(),
        source: e,
    })?;
    guard.keep = true;
    if let Ok(d) = File::open(&dir) {
        // The rename is durable once the directory is synced.
        let _ = d.sync_all();
    }
    Ok(ExportSummary {
        entries: nodes.len() as u64,
        uncompressed_bytes: uncompressed,
        compressed_bytes,
    })
}
