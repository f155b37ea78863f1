//! OpenVZ template caches: `$TEMPLATE/cache/<name>.tar{,.gz,.bz2,.xz,.zst}`.
//!
//! [`write_cache`] tars a root tree the way OpenVZ expects (`./`, `./bin/`,
//! numeric owners) but reproducibly: entries sorted by path bytes, ustar
//! headers with PAX records only for xattrs, long names and out-of-range
//! numbers, no user/group names, no atime/ctime, fixed compression settings.
//! [`read_cache`] extracts such a cache (or one made by GNU tar) into an
//! empty directory, refusing anything that would land outside it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::compress::{self, Integrity};
use crate::unpack::tree::{DirOutcome, Meta, NodeKind, Tree, TreeError};
#[cfg(test)]
use rustix::fs::{Timespec, Timestamps};

/// Accepted cache name endings, for error messages.
const SUFFIXES: &str = ".tar, .tar.gz, .tgz, .tar.bz2, .tar.xz or .tar.zst";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    #[error("cannot tell how to compress {path}: name the cache with one of {SUFFIXES}", SUFFIXES = SUFFIXES)]
    UnknownSuffix { path: PathBuf },
    #[error("{path} is not a directory; export a template's root directory")]
    NotADirectory { path: PathBuf },
    #[error("cannot read {path} in the tree being exported: {source}; check the tree is complete and readable")]
    ReadTree {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} changed while it was being exported ({detail}); export from a tree nothing else is writing to")]
    TreeChanged { path: PathBuf, detail: String },
    #[error("cannot write {path}: {source}; check free space and permissions in its directory")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot set up {codec} compression for {path}: {detail}; try another suffix ({SUFFIXES})", SUFFIXES = SUFFIXES)]
    Compressor {
        path: PathBuf,
        codec: &'static str,
        detail: String,
    },
    #[error("interrupted: {path} was not written and the partial file was removed")]
    ExportCancelled { path: PathBuf },
    #[error("interrupted: {dest} holds a partial extraction; delete it and run the import again")]
    ImportCancelled { dest: PathBuf },
    #[error(
        "cannot open {path}: {source}; check the path and that the cache was downloaded completely"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a template cache: it is neither a tar archive nor a gzip, bzip2, xz or zstd compressed one; check the file name and re-download it")]
    UnknownFormat { path: PathBuf },
    #[error("{path} is truncated or corrupt ({detail}); re-download or re-export the cache")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path} is unsafe: member {member} {reason}; refusing to extract it, get the cache from a trusted source")]
    Unsafe {
        path: PathBuf,
        member: String,
        reason: String,
    },
    #[error("{path}: member {member} has tar type {kind}, which a template cache cannot hold; re-export the cache")]
    Unsupported {
        path: PathBuf,
        member: String,
        kind: String,
    },
    #[error("{dest} is not an empty directory; extract a cache into a new, empty directory")]
    DestNotEmpty { dest: PathBuf },
    #[error("cannot extract member {member} of {cache} to {target}: {source}; check free space and that the destination file system supports owners, device nodes and xattrs (run as root)")]
    Extract {
        cache: PathBuf,
        member: String,
        target: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub use crate::compress::Compression;

/// Compression settings. Output is a function of the tree and these levels
/// only: the thread count never changes the bytes written.
pub type ExportOptions = crate::compress::EncodeOptions;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub entries: u64,
    /// Size of the tar stream.
    pub uncompressed_bytes: u64,
    /// Size of the file written.
    pub compressed_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub compression: Compression,
    pub entries: u64,
    /// File content bytes written.
    pub bytes: u64,
}

// ---------------------------------------------------------------- export --

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

/// Writes `v` as zero-padded octal with a NUL; false if it does not fit.
fn put_octal(field: &mut [u8], v: u64) -> bool {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    if s.len() > digits {
        return false;
    }
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
    true
}

fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    // "<len> key=value\n", where len counts its own digits too.
    let base = key.len() + value.len() + 3;
    let mut len = base + 1;
    while base + len.to_string().len() != len {
        len = base + len.to_string().len();
    }
    let mut r = format!("{len} ").into_bytes();
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

struct Hdr<'a> {
    name: &'a [u8],
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: i64,
    kind: u8,
    link: &'a [u8],
    dev: (u32, u32),
    xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

/// The ustar block for `h`, with the numeric fields given (already
/// replaced by 0 where a PAX record carries the value).
fn ustar_block(h: &Hdr, uid: u64, gid: u64, size: u64, mtime: u64) -> [u8; 512] {
    let (name, mode, kind, link, dev) = (h.name, h.mode, h.kind, h.link, h.dev);
    let mut b = [0u8; 512];
    let n = name.len().min(100);
    b[..n].copy_from_slice(&name[..n]);
    put_octal(&mut b[100..108], u64::from(mode & 0o7777));
    put_octal(&mut b[108..116], uid);
    put_octal(&mut b[116..124], gid);
    put_octal(&mut b[124..136], size);
    put_octal(&mut b[136..148], mtime);
    b[156] = kind;
    let l = link.len().min(100);
    b[157..157 + l].copy_from_slice(&link[..l]);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    if kind == b'3' || kind == b'4' {
        put_octal(&mut b[329..337], u64::from(dev.0));
        put_octal(&mut b[337..345], u64::from(dev.1));
    }
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    put_octal(&mut b[148..155], u64::from(sum));
    b[155] = b' ';
    b
}

fn pad(w: &mut impl Write, len: u64) -> io::Result<()> {
    let rem = (512 - len % 512) % 512;
    w.write_all(&[0u8; 512][..rem as usize])
}

/// A header block, preceded by a PAX header when something does not fit.
fn write_header(w: &mut impl Write, h: &Hdr) -> io::Result<()> {
    let mut pax = Vec::new();
    if h.name.len() > 100 {
        pax.extend(pax_record(b"path", h.name));
    }
    if h.link.len() > 100 {
        pax.extend(pax_record(b"linkpath", h.link));
    }
    let mut scratch = [0u8; 12];
    let (mut uid, mut gid, mut size) = (h.uid, h.gid, h.size);
    if !put_octal(&mut scratch[..8], uid) {
        pax.extend(pax_record(b"uid", uid.to_string().as_bytes()));
        uid = 0;
    }
    if !put_octal(&mut scratch[..8], gid) {
        pax.extend(pax_record(b"gid", gid.to_string().as_bytes()));
        gid = 0;
    }
    if !put_octal(&mut scratch, size) {
        pax.extend(pax_record(b"size", size.to_string().as_bytes()));
        size = 0;
    }
    let mtime = match u64::try_from(h.mtime) {
        Ok(m) if put_octal(&mut scratch, m) => m,
        _ => {
            pax.extend(pax_record(b"mtime", h.mtime.to_string().as_bytes()));
            0
        }
    };
    for (k, v) in h.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(k);
        pax.extend(pax_record(&key, v));
    }
    if !pax.is_empty() {
        let len = pax.len() as u64;
        let x = Hdr {
            name: b"././@PaxHeader",
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: len,
            mtime: 0,
            kind: b'x',
            link: b"",
            dev: (0, 0),
            xattrs: &[],
        };
        w.write_all(&ustar_block(&x, 0, 0, len, 0))?;
        w.write_all(&pax)?;
        pad(w, len)?;
    }
    w.write_all(&ustar_block(h, uid, gid, size, mtime))
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
        let mut h = Hdr {
            name: &name,
            mode: m.mode(),
            uid: u64::from(m.uid()),
            gid: u64::from(m.gid()),
            size: 0,
            mtime: m.mtime(),
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
            write_header(&mut w, &h).map_err(write_err)?;
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
        write_header(&mut w, &h).map_err(write_err)?;
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

// ---------------------------------------------------------------- import --

/// Notes whether the reader ran dry, to tell a missing end-of-archive
/// marker (truncation at a block boundary) from a proper end.
struct Tracker<R> {
    inner: R,
    eof: bool,
}

impl<R: Read> Read for Tracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof = true;
        }
        Ok(n)
    }
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Hands a cache's members to the one safe extractor ([`Tree`]), with the
/// cache's own reading rules (PAX and GNU long names, numeric owners).
struct Extractor<'a> {
    cache: &'a Path,
    tree: &'a Tree,
    /// Directories whose metadata is set last (children change their mtimes).
    dirs: Vec<(Vec<u8>, Meta)>,
}

/// Splits a member path into components. A leading `/` is dropped, as GNU
/// tar does by default; `.` and empty components are skipped; `..` is
/// refused.
fn components(raw: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("has a `..` component, which leads outside the tree".into()),
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    comps.join(&b'/')
}

#[cfg(test)]
fn timestamps(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

impl Extractor<'_> {
    fn unsafe_member(&self, member: &[u8], reason: String) -> ExportError {
        ExportError::Unsafe {
            path: self.cache.to_path_buf(),
            member: show(member),
            reason,
        }
    }

    /// The extractor's errors in the terms of a cache.
    fn tree_error(&self, member: &[u8], e: TreeError) -> ExportError {
        let cache = self.cache.to_path_buf();
        match e {
            TreeError::Escape { reason, .. } => self.unsafe_member(member, reason),
            TreeError::Conflict { detail, .. } => ExportError::Unsupported {
                path: cache,
                member: show(member),
                kind: detail,
            },
            TreeError::MissingLinkTarget { target, .. } => ExportError::Unsupported {
                path: cache,
                member: show(member),
                kind: format!("hardlink to {target}, which is not earlier in the archive"),
            },
            TreeError::Read { source, .. } => ExportError::Corrupt {
                path: cache,
                detail: format!("reading member {}: {source}", show(member)),
            },
            TreeError::Io { op, path, source } => ExportError::Extract {
                cache,
                member: show(member),
                target: path,
                source: io::Error::new(source.kind(), format!("{op}: {source}")),
            },
        }
    }

    fn extract<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        pending: Pending,
    ) -> Result<u64, ExportError> {
        let corrupt = |e: io::Error| ExportError::Corrupt {
            path: self.cache.to_path_buf(),
            detail: e.to_string(),
        };
        let mut member = pending
            .long_name
            .unwrap_or_else(|| entry.path_bytes().into_owned());
        let mut link = pending
            .long_link
            .or_else(|| entry.link_name_bytes().map(|l| l.into_owned()));
        let mut xattrs: Vec<(String, Vec<u8>)> = Vec::new();
        let (mut uid, mut gid, mut mtime) = {
            let h = entry.header();
            (
                h.uid().map_err(corrupt)?,
                h.gid().map_err(corrupt)?,
                h.mtime().map_err(corrupt)? as i64,
            )
        };
        for (k, v) in pending.pax {
            let num = || {
                std::str::from_utf8(&v)
                    .ok()?
                    .split('.')
                    .next()?
                    .parse::<i64>()
                    .ok()
            };
            match k.as_slice() {
                b"path" => member = v,
                b"linkpath" => link = Some(v),
                b"uid" => uid = num().and_then(|n| u64::try_from(n).ok()).unwrap_or(uid),
                b"gid" => gid = num().and_then(|n| u64::try_from(n).ok()).unwrap_or(gid),
                b"mtime" => mtime = num().unwrap_or(mtime),
                b"size" if num() != i64::try_from(entry.size()).ok() => {
                    return Err(ExportError::Unsupported {
                        path: self.cache.to_path_buf(),
                        member: show(&member),
                        kind: "a file of 8 GiB or more (PAX size)".into(),
                    })
                }
                _ => {
                    if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                        let Ok(name) = String::from_utf8(name.to_vec()) else {
                            return Err(ExportError::Unsupported {
                                path: self.cache.to_path_buf(),
                                member: show(&member),
                                kind: format!("an extended attribute named {}", show(name)),
                            });
                        };
                        xattrs.push((name, v));
                    }
                }
            }
        }
        let (uid, gid) = match (u32::try_from(uid), u32::try_from(gid)) {
            (Ok(u), Ok(g)) => (u, g),
            _ => {
                return Err(ExportError::Corrupt {
                    path: self.cache.to_path_buf(),
                    detail: format!(
                        "member {} has owner {uid}:{gid}, out of range",
                        show(&member)
                    ),
                })
            }
        };
        let header = entry.header();
        let mode = header.mode().map_err(corrupt)? & 0o7777;
        let kind = header.entry_type();
        // Other entries may leave the device fields blank.
        let dev = if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            (
                header.device_major().map_err(corrupt)?.unwrap_or(0),
                header.device_minor().map_err(corrupt)?.unwrap_or(0),
            )
        } else {
            (0, 0)
        };
        let meta = Meta {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        };
        let comps = components(&member).map_err(|r| self.unsafe_member(&member, r))?;
        let rel = join(&comps);
        let tree = self.tree;
        let mut w = tree.writer();

        use tar::EntryType as T;
        if comps.is_empty() && kind != T::Directory {
            return Err(self.unsafe_member(&member, "names the root but is not a directory".into()));
        }
        let done = match kind {
            T::Directory => w.dir(&rel).map(|outcome| match outcome {
                DirOutcome::Root => self.dirs.push((Vec::new(), meta)),
                DirOutcome::Dir(real) => self.dirs.push((real, meta)),
                DirOutcome::KeptSymlink => {}
            }),
            T::Regular | T::Continuous => {
                let size = entry.size();
                let written = w
                    .file(&rel, &meta, entry, None)
                    .map_err(|e| self.tree_error(&member, e))?;
                if written != size {
                    return Err(ExportError::Corrupt {
                        path: self.cache.to_path_buf(),
                        detail: format!(
                            "member {} ends after {written} of its {size} bytes",
                            show(&member)
                        ),
                    });
                }
                return Ok(written);
            }
            T::Link => {
                let raw = link.unwrap_or_default();
                let t = components(&raw).map_err(|r| {
                    self.unsafe_member(&member, format!("is a hardlink whose target {r}"))
                })?;
                if t.is_empty() {
                    return Err(
                        self.unsafe_member(&member, "is a hardlink to the root directory".into())
                    );
                }
                w.hardlink(&rel, &join(&t))
            }
            T::Symlink => w.symlink(&rel, &link.unwrap_or_default(), &meta),
            T::Char | T::Block | T::Fifo => {
                let node = match kind {
                    T::Char => NodeKind::Char,
                    T::Block => NodeKind::Block,
                    _ => NodeKind::Fifo,
                };
                w.node(&rel, node, dev.0, dev.1, &meta)
            }
            other => {
                return Err(ExportError::Unsupported {
                    path: self.cache.to_path_buf(),
                    member: show(&member),
                    kind: format!("{other:?}"),
                })
            }
        };
        done.map_err(|e| self.tree_error(&member, e))?;
        Ok(0)
    }

    /// Directory metadata, deepest first.
    fn finish_dirs(&mut self) -> Result<(), ExportError> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|(rel, _)| std::cmp::Reverse(rel.split(|&b| b == b'/').count()));
        // The root sorts with one-component paths; it must come last.
        dirs.sort_by_key(|(rel, _)| rel.is_empty());
        for (rel, meta) in dirs {
            self.tree
                .apply_dir_meta(&rel, &meta)
                .map_err(|e| self.tree_error(&rel, e))?;
        }
        Ok(())
    }
}

/// Extended-header data that applies to the next entry.
#[derive(Default)]
struct Pending {
    pax: Vec<(Vec<u8>, Vec<u8>)>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

/// Bound on a PAX or GNU long-name header, against memory exhaustion.
const META_LIMIT: u64 = 16 << 20;

/// PAX records, `"<len> key=value\n"`; values may hold any byte.
fn parse_pax(mut data: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    while !data.is_empty() && data[0] != 0 {
        let sp = data.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&data[..sp]).ok()?.parse().ok()?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return None;
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec.iter().position(|&b| b == b'=')?;
        out.push((rec[..eq].to_vec(), rec[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Some(out)
}

/// Extracts the cache `cache` into the empty directory `dest`, keeping
/// numeric owners, modes, mtimes, xattrs, links, devices and fifos.
pub fn read_cache(cache: &Path, dest: &Path) -> Result<ImportSummary, ExportError> {
    let open_err = |source| ExportError::Open {
        path: cache.to_path_buf(),
        source,
    };
    let mut file = File::open(cache).map_err(open_err)?;
    let mut head = [0u8; 512];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]).map_err(open_err)? {
            0 => break,
            n => got += n,
        }
    }
    let compression = Compression::from_tar_magic(&head[..got]).ok_or_else(|| {
        if got < 512 && got > 0 && head[..got].iter().all(|&b| b == 0) {
            ExportError::Corrupt {
                path: cache.to_path_buf(),
                detail: "it holds only zeros".into(),
            }
        } else {
            ExportError::UnknownFormat {
                path: cache.to_path_buf(),
            }
        }
    })?;
    file.rewind().map_err(open_err)?;

    let not_empty = || ExportError::DestNotEmpty {
        dest: dest.to_path_buf(),
    };
    let mut listing = std::fs::read_dir(dest).map_err(|_| not_empty())?;
    if listing.next().is_some() {
        return Err(not_empty());
    }
    let tree = Tree::open_no_symlinks(dest).map_err(|_| not_empty())?;

    let corrupt = |e: io::Error| ExportError::Corrupt {
        path: cache.to_path_buf(),
        detail: e.to_string(),
    };
    let buffered = BufReader::with_capacity(1 << 20, file);
    let reader = compress::reader(compression, buffered, Integrity::Check).map_err(corrupt)?;
    let mut archive = tar::Archive::new(Tracker {
        inner: reader,
        eof: false,
    });
    let mut ex = Extractor {
        cache,
        tree: &tree,
        dirs: Vec::new(),
    };
    let mut summary = ImportSummary {
        compression,
        entries: 0,
        bytes: 0,
    };
    // Raw entries: the tar crate's own PAX parser splits records at
    // newlines, which binary xattr values (security.capability) contain.
    let entries = archive.entries().map_err(corrupt)?.raw(true);
    let mut pending = Pending::default();
    for entry in entries {
        if crate::cancel::check().is_err() {
            return Err(ExportError::ImportCancelled {
                dest: dest.to_path_buf(),
            });
        }
        let mut entry = entry.map_err(corrupt)?;
        let kind = entry.header().entry_type();
        let meta_data = |entry: &mut tar::Entry<_>| -> Result<Vec<u8>, ExportError> {
            if entry.size() > META_LIMIT {
                return Err(ExportError::Corrupt {
                    path: cache.to_path_buf(),
                    detail: format!("a {}-byte extended header", entry.size()),
                });
            }
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(corrupt)?;
            if data.len() as u64 != entry.size() {
                return Err(ExportError::Corrupt {
                    path: cache.to_path_buf(),
                    detail: "an extended header is cut short".into(),
                });
            }
            Ok(data)
        };
        match kind {
            tar::EntryType::XGlobalHeader => {
                meta_data(&mut entry)?;
            }
            tar::EntryType::XHeader => {
                let data = meta_data(&mut entry)?;
                pending.pax = parse_pax(&data).ok_or_else(|| ExportError::Corrupt {
                    path: cache.to_path_buf(),
                    detail: "a malformed PAX extended header".into(),
                })?;
            }
            tar::EntryType::GNULongName | tar::EntryType::GNULongLink => {
                let mut data = meta_data(&mut entry)?;
                while data.last() == Some(&0) {
                    data.pop();
                }
                if kind == tar::EntryType::GNULongName {
                    pending.long_name = Some(data);
                } else {
                    pending.long_link = Some(data);
                }
            }
            _ => {
                let this = std::mem::take(&mut pending);
                summary.bytes += ex.extract(&mut entry, this)?;
                summary.entries += 1;
            }
        }
    }
    let mut rest = archive.into_inner();
    if rest.eof {
        return Err(ExportError::Corrupt {
            path: cache.to_path_buf(),
            detail: "it ends without the end-of-archive marker".into(),
        });
    }
    // Reading to the end makes the decompressor check its trailer and checksum.
    io::copy(&mut rest, &mut io::sink()).map_err(corrupt)?;
    ex.finish_dirs()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{AtFlags, Mode};
    use sha2::{Digest, Sha256};
    use std::collections::BTreeMap;
    use std::os::unix::fs::symlink;
    use std::process::Command;

    const CAP_NET_RAW: [u8; 20] = [
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    fn set_mtime(p: &Path, t: i64) {
        rustix::fs::utimensat(
            rustix::fs::CWD,
            p,
            &timestamps(t),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }

    fn file(root: &Path, rel: &str, data: &[u8], mode: u32, uid: u32, gid: u32) {
        let p = root.join(rel);
        std::fs::write(&p, data).unwrap();
        std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }

    /// A tree with every kind of entry a root file system holds.
    fn build_tree(root: &Path) {
        for d in ["bin", "dev", "etc", "home/user", "usr/bin", "deep"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::os::unix::fs::chown(root.join("home/user"), Some(1000), Some(1000)).unwrap();
        std::fs::set_permissions(
            root.join("home/user"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        file(
            root,
            "etc/passwd",
            b"root:x:0:0::/root:/bin/sh\n",
            0o644,
            0,
            0,
        );
        file(root, "etc/shadow", b"root:*:19000::::::\n", 0o640, 0, 42);
        file(root, "bin/su", &[0x7f; 700], 0o4755, 0, 0);
        file(root, "usr/bin/wall", b"wall", 0o2755, 0, 5);
        file(root, "home/user/notes", b"mine", 0o600, 1000, 1000);
        file(root, "etc/empty", b"", 0o000, 0, 0);
        let big: Vec<u8> = (0..1_048_579u32).map(|i| (i * 7 % 251) as u8).collect();
        file(root, "usr/bin/big", &big, 0o755, 0, 0);
        file(root, "usr/bin/ping", b"ping", 0o755, 0, 0);
        xattr::set(
            root.join("usr/bin/ping"),
            "security.capability",
            &CAP_NET_RAW,
        )
        .unwrap();
        xattr::set(root.join("etc/passwd"), "user.note", b"value with = and \n").unwrap();
        std::fs::hard_link(root.join("usr/bin/big"), root.join("bin/big-link")).unwrap();
        symlink("su", root.join("bin/sh")).unwrap();
        symlink("/usr/share/zoneinfo/UTC", root.join("etc/localtime")).unwrap();
        let long = "x".repeat(120);
        file(root, &format!("deep/{long}"), b"long name", 0o644, 0, 0);
        symlink(format!("/deep/{long}"), root.join("deep/long-target")).unwrap();
        let dev = |rel: &str, ft, maj, min| {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                root.join(rel),
                ft,
                Mode::from_raw_mode(0o666),
                rustix::fs::makedev(maj, min),
            )
            .unwrap();
            // mknod is subject to the umask.
            std::fs::set_permissions(
                root.join(rel),
                std::os::unix::fs::PermissionsExt::from_mode(0o666),
            )
            .unwrap();
        };
        dev("dev/null", rustix::fs::FileType::CharacterDevice, 1, 3);
        dev("dev/loop0", rustix::fs::FileType::BlockDevice, 7, 0);
        dev("dev/initctl", rustix::fs::FileType::Fifo, 0, 0);
        std::fs::set_permissions(
            root.join("dev/initctl"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        // Fixed mtimes, children before their directories.
        let mut all: Vec<PathBuf> = walkdir::WalkDir::new(root)
            .into_iter()
            .map(|e| e.unwrap().into_path())
            .collect();
        all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for (i, p) in all.iter().enumerate() {
            set_mtime(p, 1_600_000_000 + i as i64 * 17);
        }
    }

    /// Everything lstat and the contents say about a tree, by path;
    /// hardlinks as the first path sharing the inode.
    fn snapshot(root: &Path) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut inodes: HashMap<u64, String> = HashMap::new();
        let mut all: Vec<walkdir::DirEntry> = walkdir::WalkDir::new(root)
            .sort_by_file_name()
            .into_iter()
            .map(|e| e.unwrap())
            .collect();
        all.sort_by(|a, b| a.path().cmp(b.path()));
        for e in all {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(p).unwrap();
            let ft = m.file_type();
            let what = if ft.is_file() {
                format!(
                    "file {}",
                    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
                )
            } else if ft.is_symlink() {
                format!("symlink {}", std::fs::read_link(p).unwrap().display())
            } else if ft.is_dir() {
                "dir".into()
            } else if ft.is_char_device() || ft.is_block_device() {
                format!("dev {} {:x}", ft.is_char_device(), m.rdev())
            } else if ft.is_fifo() {
                "fifo".into()
            } else {
                "other".into()
            };
            let link = if !ft.is_dir() && m.nlink() > 1 {
                inodes.entry(m.ino()).or_insert_with(|| rel.clone()).clone()
            } else {
                String::new()
            };
            let mut xattrs: Vec<String> = xattr::list(p)
                .unwrap()
                .map(|n| {
                    let v = xattr::get(p, &n).unwrap().unwrap_or_default();
                    format!("{}={}", n.to_string_lossy(), hex::encode(v))
                })
                .collect();
            xattrs.sort();
            let mode = if ft.is_symlink() {
                0
            } else {
                m.mode() & 0o7777
            };
            out.insert(
                rel,
                format!(
                    "{what} mode={mode:o} {}:{} mtime={} nlink={} link={link} xattrs={xattrs:?}",
                    m.uid(),
                    m.gid(),
                    m.mtime(),
                    m.nlink()
                ),
            );
        }
        out
    }

    const NAMES: [&str; 5] = ["t.tar", "t.tar.gz", "t.tar.bz2", "t.tar.xz", "t.tar.zst"];

    #[test]
    fn round_trip_every_compression() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        build_tree(&tree);
        let want = snapshot(&tree);
        for name in NAMES {
            let out = tmp.path().join(name);
            let s = write_cache(&tree, &out, &ExportOptions::default()).unwrap();
            assert_eq!(s.entries as usize, want.len(), "{name}");
            assert_eq!(s.compressed_bytes, std::fs::metadata(&out).unwrap().len());
            let dest = tmp.path().join(format!("x-{name}"));
            std::fs::create_dir(&dest).unwrap();
            let r = read_cache(&out, &dest).unwrap();
            assert_eq!(r.compression, Compression::from_path(&out).unwrap());
            assert_eq!(r.entries, s.entries, "{name}");
            assert_eq!(snapshot(&dest), want, "{name}");
        }
        // Nothing but the caches and the trees: no temp files left behind.
        let left = std::fs::read_dir(tmp.path()).unwrap().count();
        assert_eq!(left, 1 + 2 * NAMES.len());
    }

    #[test]
    fn output_is_reproducible() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        build_tree(&tree);
        // A copy made later, with the same mtimes but new inodes and ctimes.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let copy = tmp.path().join("copy");
        let st = Command::new("cp")
            .arg("-a")
            .arg(&tree)
            .arg(&copy)
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(snapshot(&tree), snapshot(&copy));
        for name in NAMES {
            let a = tmp.path().join(format!("a-{name}"));
            let b = tmp.path().join(format!("b-{name}"));
            let c = tmp.path().join(format!("c-{name}"));
            let one = ExportOptions {
                threads: Some(1),
                ..ExportOptions::default()
            };
            let three = ExportOptions {
                threads: Some(3),
                ..ExportOptions::default()
            };
            write_cache(&tree, &a, &one).unwrap();
            write_cache(&tree, &b, &three).unwrap();
            write_cache(&copy, &c, &ExportOptions::default()).unwrap();
            let a = std::fs::read(&a).unwrap();
            assert_eq!(
                a,
                std::fs::read(&b).unwrap(),
                "{name}: thread count changed output"
            );
            assert_eq!(
                a,
                std::fs::read(&c).unwrap(),
                "{name}: copy of the tree differs"
            );
        }
    }

    #[test]
    fn thread_count_does_not_change_large_xz_and_zstd_output() {
        // Several xz blocks and zstd jobs, so the workers really split the work.
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        let mut x: u64 = 1;
        let data: Vec<u8> = (0..60_000_000u32)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if i % 3 == 0 {
                    (x >> 59) as u8
                } else {
                    b'a' + (i % 13) as u8
                }
            })
            .collect();
        std::fs::write(tree.join("data"), &data).unwrap();
        for name in ["t.tar.xz", "t.tar.zst"] {
            let mut outs = Vec::new();
            for threads in [1, 2, 5] {
                let out = tmp.path().join(format!("{threads}-{name}"));
                let o = ExportOptions {
                    threads: Some(threads),
                    xz_preset: 1,
                    zstd_level: 3,
                    ..ExportOptions::default()
                };
                write_cache(&tree, &out, &o).unwrap();
                outs.push(std::fs::read(&out).unwrap());
            }
            assert!(outs.iter().all(|o| o == &outs[0]), "{name}");
        }
    }

    #[test]
    fn gnu_tar_lists_and_extracts_every_export() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        build_tree(&tree);
        let want = snapshot(&tree);
        for name in NAMES {
            let out = tmp.path().join(name);
            write_cache(&tree, &out, &ExportOptions::default()).unwrap();
            let list = Command::new("tar")
                .arg("--numeric-owner")
                .arg("-tvf")
                .arg(&out)
                .output()
                .unwrap();
            assert!(
                list.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&list.stderr)
            );
            let list = String::from_utf8(list.stdout).unwrap();
            assert!(
                list.lines()
                    .any(|l| l.starts_with("-rwsr-xr-x 0/0") && l.ends_with("./bin/su")),
                "{list}"
            );
            assert!(
                list.lines()
                    .any(|l| l.starts_with("drwx------ 1000/1000") && l.ends_with("./home/user/")),
                "{list}"
            );
            assert!(
                list.lines()
                    .any(|l| l.starts_with("crw-rw-rw- 0/0") && l.contains("1,3")),
                "{list}"
            );
            assert!(
                list.contains("./usr/bin/big link to ./bin/big-link"),
                "{list}"
            );
            assert!(list.lines().next().unwrap().ends_with(" ./"), "{list}");
            let dest = tmp.path().join(format!("gnu-{name}"));
            std::fs::create_dir(&dest).unwrap();
            let x = Command::new("tar")
                .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf"])
                .arg(&out)
                .arg("-C")
                .arg(&dest)
                .output()
                .unwrap();
            assert!(
                x.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&x.stderr)
            );
            assert_eq!(snapshot(&dest), want, "{name}");
        }
    }

    #[test]
    fn imports_caches_made_by_gnu_tar() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        build_tree(&tree);
        let want = snapshot(&tree);
        // The OpenVZ way (GNU format, long names as ././@LongLink), and the
        // POSIX format GNU tar uses for xattrs.
        for (name, extra) in [("gnu.tar.gz", None), ("posix.tar.xz", Some("--xattrs"))] {
            let out = tmp.path().join(name);
            let mut cmd = Command::new("tar");
            cmd.args(["--numeric-owner", "-caf"]).arg(&out);
            if let Some(x) = extra {
                cmd.args([x, "--xattrs-include=*"]);
            }
            let st = cmd.arg("-C").arg(&tree).arg(".").status().unwrap();
            assert!(st.success());
            let dest = tmp.path().join(format!("x-{name}"));
            std::fs::create_dir(&dest).unwrap();
            read_cache(&out, &dest).unwrap();
            let got = snapshot(&dest);
            if extra.is_some() {
                assert_eq!(got, want, "{name}");
            } else {
                let strip = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.split(" xattrs=").next().unwrap().to_string()))
                        .collect()
                };
                assert_eq!(strip(&got), strip(&want), "{name}");
            }
        }
    }

    fn raw_entry(
        b: &mut tar::Builder<Vec<u8>>,
        name: &[u8],
        kind: tar::EntryType,
        link: &[u8],
        data: &[u8],
    ) {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
        h.as_gnu_mut().unwrap().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    #[test]
    fn hostile_caches_are_refused_and_nothing_lands_outside() {
        use tar::EntryType as T;
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"s").unwrap();
        let through_root = format!("a{}/pwned", outside.display());
        type Member = (Vec<u8>, T, Vec<u8>);
        let cases: Vec<(&str, Vec<Member>)> = vec![
            (
                "dotdot",
                vec![(b"../outside/pwned".to_vec(), T::Regular, vec![])],
            ),
            (
                "dotdot-inner",
                vec![(b"./etc/../../outside/pwned".to_vec(), T::Regular, vec![])],
            ),
            (
                "symlink-to-root",
                vec![
                    (b"a".to_vec(), T::Symlink, b"/".to_vec()),
                    (through_root.into_bytes(), T::Regular, vec![]),
                ],
            ),
            (
                "symlink-relative",
                vec![
                    (b"b".to_vec(), T::Symlink, b"../outside".to_vec()),
                    (b"b/pwned".to_vec(), T::Regular, vec![]),
                ],
            ),
            (
                "hardlink-out",
                vec![(b"h".to_vec(), T::Link, b"../../outside/secret".to_vec())],
            ),
            (
                "hardlink-through-symlink",
                vec![
                    (b"c".to_vec(), T::Symlink, b"../outside".to_vec()),
                    (b"h".to_vec(), T::Link, b"c/secret".to_vec()),
                ],
            ),
        ];
        for (label, entries) in cases {
            let mut b = tar::Builder::new(Vec::new());
            for (name, kind, link) in &entries {
                raw_entry(&mut b, name, *kind, link, b"pwned");
            }
            let cache = tmp.path().join(format!("{label}.tar"));
            std::fs::write(&cache, b.into_inner().unwrap()).unwrap();
            let dest = tmp.path().join(format!("dest-{label}"));
            std::fs::create_dir(&dest).unwrap();
            let err = read_cache(&cache, &dest).unwrap_err();
            assert!(matches!(err, ExportError::Unsafe { .. }), "{label}: {err}");
            let msg = err.to_string();
            assert!(
                msg.contains("is unsafe") && msg.contains(&format!("{label}.tar")),
                "{msg}"
            );
            let mut names: Vec<_> = std::fs::read_dir(&outside)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            assert_eq!(names, vec![std::ffi::OsString::from("secret")], "{label}");
            assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"s");
            assert_eq!(
                std::fs::metadata(outside.join("secret")).unwrap().nlink(),
                1
            );
            assert!(!dest.join("h").exists(), "{label}");
        }
        // A leading `/` is dropped, as GNU tar does: the file lands inside.
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, b"/etc/hostname", T::Regular, b"", b"vps\n");
        let cache = tmp.path().join("absolute.tar");
        std::fs::write(&cache, b.into_inner().unwrap()).unwrap();
        let dest = tmp.path().join("dest-absolute");
        std::fs::create_dir(&dest).unwrap();
        read_cache(&cache, &dest).unwrap();
        assert_eq!(std::fs::read(dest.join("etc/hostname")).unwrap(), b"vps\n");
    }

    #[test]
    fn truncated_caches_are_reported_as_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        let mut x: u32 = 7;
        let noise: Vec<u8> = (0..400_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        std::fs::write(tree.join("noise"), &noise).unwrap();
        std::fs::write(tree.join("zz-after"), b"after").unwrap();
        for name in ["t.tar.zst", "t.tar.gz", "t.tar.xz", "t.tar"] {
            let out = tmp.path().join(name);
            write_cache(&tree, &out, &ExportOptions::default()).unwrap();
            let full = std::fs::read(&out).unwrap();
            // Mid-stream, and (for plain tar) exactly at a block boundary.
            for cut in [full.len() / 2, 1024 + 400_384] {
                if cut >= full.len() {
                    continue;
                }
                let bad = tmp.path().join(format!("cut-{cut}-{name}"));
                std::fs::write(&bad, &full[..cut]).unwrap();
                let dest = tmp.path().join(format!("dest-{cut}-{name}"));
                std::fs::create_dir(&dest).unwrap();
                let err = read_cache(&bad, &dest).unwrap_err();
                let msg = err.to_string();
                assert!(
                    matches!(err, ExportError::Corrupt { .. }),
                    "{name} at {cut}: {msg}"
                );
                assert!(
                    msg.contains("truncated or corrupt") && msg.contains("re-download"),
                    "{msg}"
                );
                assert!(msg.contains(bad.to_str().unwrap()), "{msg}");
            }
        }
    }

    #[test]
    fn bad_names_and_destinations_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let err = write_cache(
            tmp.path(),
            &tmp.path().join("t.tar.lz4"),
            &ExportOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains(".tar.zst"), "{err}");
        let out = tmp.path().join("t.tar");
        let err =
            write_cache(&tmp.path().join("missing"), &out, &ExportOptions::default()).unwrap_err();
        assert!(matches!(err, ExportError::ReadTree { .. }), "{err}");
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "temp file left"
        );
        std::fs::write(tmp.path().join("junk.tar.gz"), b"not a tarball at all").unwrap();
        let dest = tmp.path().join("d");
        std::fs::create_dir(&dest).unwrap();
        let err = read_cache(&tmp.path().join("junk.tar.gz"), &dest).unwrap_err();
        assert!(matches!(err, ExportError::UnknownFormat { .. }), "{err}");
        std::fs::write(dest.join("x"), b"").unwrap();
        write_cache(&tmp.path().join("d"), &out, &ExportOptions::default()).unwrap();
        let err = read_cache(&out, &dest).unwrap_err();
        assert!(matches!(err, ExportError::DestNotEmpty { .. }), "{err}");
    }

    /// Figures for the report: `cargo test -p vzpkg --lib export::tests::measure
    /// -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn measure_export_of_a_real_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        // About 200 MB of /usr/lib/x86_64-linux-gnu, by sorted name.
        let src = Path::new("/usr/lib/x86_64-linux-gnu");
        let mut names: Vec<_> = std::fs::read_dir(src)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        let mut total = 0u64;
        for p in names {
            if total > 200_000_000 {
                break;
            }
            let st = Command::new("cp")
                .arg("-a")
                .arg(&p)
                .arg(&tree)
                .status()
                .unwrap();
            assert!(st.success());
            let du = Command::new("du")
                .args(["-sb"])
                .arg(tree.join(p.file_name().unwrap()))
                .output()
                .unwrap();
            total += String::from_utf8_lossy(&du.stdout)
                .split_whitespace()
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
        println!("tree: {total} bytes");
        for name in NAMES {
            let out = tmp.path().join(name);
            let t = std::time::Instant::now();
            let s = write_cache(&tree, &out, &ExportOptions::default()).unwrap();
            let took = t.elapsed();
            let dest = tmp.path().join(format!("x-{name}"));
            std::fs::create_dir(&dest).unwrap();
            let t = std::time::Instant::now();
            read_cache(&out, &dest).unwrap();
            println!(
                "{name}: {} entries, tar {} B, out {} B, export {:.2?}, import {:.2?}",
                s.entries,
                s.uncompressed_bytes,
                s.compressed_bytes,
                took,
                t.elapsed()
            );
            std::fs::remove_dir_all(&dest).unwrap();
        }
        let t = std::time::Instant::now();
        let o = Command::new("sh")
            .arg("-c")
            .arg("tar -cf - . | zstd -T0 -q | wc -c")
            .current_dir(&tree)
            .output()
            .unwrap();
        println!(
            "tar -cf - . | zstd -T0: out {} B, {:.2?}",
            String::from_utf8_lossy(&o.stdout).trim(),
            t.elapsed()
        );
    }
}
