//! Reading a template cache into an empty directory.

use super::{show, Compression, ExportError, ImportSummary};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

use crate::compress::{self, Integrity};
use crate::tarfmt::parse_pax;
use crate::unpack::tree::{DirOutcome, Meta, NodeKind, Tree, TreeError};

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

impl Extractor<'_> {
    fn refused_member(&self, member: &[u8], reason: String) -> ExportError {
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
            TreeError::Escape { reason, .. } => self.refused_member(member, reason),
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
        let comps = components(&member).map_err(|r| self.refused_member(&member, r))?;
        let rel = join(&comps);
        let tree = self.tree;
        let mut w = tree.writer();

        use tar::EntryType as T;
        if comps.is_empty() && kind != T::Directory {
            return Err(
                self.refused_member(&member, "names the root but is not a directory".into())
            );
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
                    self.refused_member(&member, format!("is a hardlink whose target {r}"))
                })?;
                if t.is_empty() {
                    return Err(
                        self.refused_member(&member, "is a hardlink to the root directory".into())
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
