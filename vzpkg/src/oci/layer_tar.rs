//! A store layer as a tar and back. Writing is reproducible: members in the
//! manifest's order, ustar headers with PAX records only where a value does
//! not fit (long names, nanoseconds, xattrs), no user names, no atime/ctime.
//! Reading rebuilds exactly the entries the layer was written from, so the
//! pulled layer has the same id: `VZPKG.parent` marks directories a layer
//! holds only as parents, and hardlinks point at the first name.
//!
//! Headers are written by `tarfmt`, which the cache export shares.

use crate::store::{Entry, Kind, Meta, StagedObjects, StoreError};
use crate::tarfmt::{pad, parse_pax, pax_record, write_header, Member};
use std::collections::HashMap;
use std::io::{self, Read, Write};

/// Extended records larger than this are refused (a damaged or hostile layer).
const PAX_LIMIT: u64 = 16 << 20;

/// The member name of an entry: `./` for the root, `usr/` for a
/// directory, `usr/bin/ls` otherwise.
fn member_name(e: &Entry) -> Vec<u8> {
    let rel = e.path.strip_prefix(b"/").unwrap_or(&e.path);
    if rel.is_empty() {
        return b"./".to_vec();
    }
    let mut n = rel.to_vec();
    if e.is_dir() {
        n.push(b'/');
    }
    n
}

/// Write `entries` (one store layer, in manifest order) as a tar to `w`,
/// reading file contents from the store's objects through `open`.
pub fn write_layer(
    entries: &[Entry],
    open: &dyn Fn(&str) -> Result<std::fs::File, StoreError>,
    w: &mut impl Write,
) -> Result<u64, LayerTarError> {
    let mut files = 0u64;
    for e in entries {
        crate::cancel::check().map_err(|_| LayerTarError::Cancelled)?;
        let name = member_name(e);
        let m = &e.meta;
        let (kind, link, dev, size): (u8, Vec<u8>, (u32, u32), u64) = match &e.kind {
            Kind::Dir | Kind::Parent => (b'5', Vec::new(), (0, 0), 0),
            Kind::File {
                link: Some(first), ..
            } => (
                b'1',
                first.strip_prefix(b"/").unwrap_or(first).to_vec(),
                (0, 0),
                0,
            ),
            Kind::File { link: None, .. } => (b'0', Vec::new(), (0, 0), e.size),
            Kind::Symlink { target } => (b'2', target.clone(), (0, 0), 0),
            Kind::Char { major, minor } => (b'3', Vec::new(), (*major, *minor), 0),
            Kind::Block { major, minor } => (b'4', Vec::new(), (*major, *minor), 0),
            Kind::Fifo => (b'6', Vec::new(), (0, 0), 0),
        };
        let extra = if e.kind == Kind::Parent {
            pax_record(b"VZPKG.parent", b"1")
        } else {
            Vec::new()
        };
        let member = Member {
            name: &name,
            mode: m.mode,
            uid: u64::from(m.uid),
            gid: u64::from(m.gid),
            size,
            mtime: m.mtime,
            mtime_nsec: Some(m.mtime_nsec),
            kind,
            link: &link,
            dev,
            xattrs: &m.xattrs,
        };
        write_header(w, &member, &extra).map_err(LayerTarError::Write)?;
        if kind == b'0' {
            let Kind::File { object, .. } = &e.kind else {
                unreachable!("kind 0 is a file")
            };
            let mut f = open(object).map_err(LayerTarError::Store)?;
            let n = io::copy(&mut (&mut f).take(size), w).map_err(LayerTarError::Write)?;
            if n != size {
                return Err(LayerTarError::Store(StoreError::Corrupt {
                    path: std::path::PathBuf::from(String::from_utf8_lossy(&e.path).as_ref()),
                    why: format!("its object {object} holds {n} bytes, the layer says {size}"),
                }));
            }
            pad(w, size).map_err(LayerTarError::Write)?;
            files += 1;
        }
    }
    w.write_all(&[0u8; 1024]).map_err(LayerTarError::Write)?;
    Ok(files)
}

#[derive(Debug, thiserror::Error)]
pub enum LayerTarError {
    #[error("writing the layer: {0}")]
    Write(#[source] io::Error),
    #[error("reading the layer: {0}")]
    Read(#[source] io::Error),
    #[error("{0}")]
    Store(#[source] StoreError),
    #[error("member {member}: {why}")]
    Member { member: String, why: String },
    #[error("interrupted")]
    Cancelled,
}

/// `usr/bin/ls`, `./usr/`, `/usr` → `/usr/bin/ls`, `/usr`, `/usr`.
fn entry_path(member: &[u8]) -> Vec<u8> {
    let mut p = member;
    while let Some(rest) = p.strip_prefix(b"./") {
        p = rest;
    }
    let p = p.strip_prefix(b"/").unwrap_or(p);
    let p = p.strip_suffix(b"/").unwrap_or(p);
    if p.is_empty() || p == b"." {
        return b"/".to_vec();
    }
    let mut out = b"/".to_vec();
    out.extend_from_slice(p);
    out
}

fn parse_num<T: std::str::FromStr>(v: &[u8]) -> Option<T> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// `sec[.frac]` → (sec, nsec).
fn parse_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = sec.parse().ok()?;
    let mut digits: String = frac.chars().take(9).collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    while digits.len() < 9 {
        digits.push('0');
    }
    Some((sec, digits.parse().ok()?))
}

/// Read a layer written by `write_layer` back into its entries, staging
/// every file's content as an object.
pub fn read_layer(r: impl Read, staged: &StagedObjects) -> Result<Vec<Entry>, LayerTarError> {
    // The tar is read in this thread; files up to SMALL are handed whole to
    // writers beside it, so decompression, hashing and the file system's
    // work overlap. Larger ones stream from here, keeping memory bounded.
    let writers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let (jobs, queue) = std::sync::mpsc::sync_channel::<(usize, Vec<u8>, Meta)>(64);
    let queue = std::sync::Mutex::new(queue);
    let (done, results) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        for _ in 0..writers {
            let (queue, done) = (&queue, done.clone());
            s.spawn(move || loop {
                // A poisoned lock still holds a usable receiver; giving up
                // on it would leave the reader blocked on a full queue.
                let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                let Ok((index, data, meta)) = job else {
                    return;
                };
                let _ = done.send((index, staged.put(&mut &data[..], &meta)));
            });
        }
        drop(done);
        let read = read_members(r, staged, &jobs);
        drop(jobs);
        let mut entries = read?;
        for (index, put) in results.iter() {
            let (object, _) = put.map_err(LayerTarError::Store)?;
            if let Kind::File { object: o, .. } = &mut entries[index].kind {
                *o = object;
            }
        }
        // Hardlinks name their first file, whose object is known now.
        let firsts: HashMap<Vec<u8>, String> = entries
            .iter()
            .filter_map(|e| match &e.kind {
                Kind::File { object, link: None } => Some((e.path.clone(), object.clone())),
                _ => None,
            })
            .collect();
        for e in &mut entries {
            if let Kind::File {
                object,
                link: Some(first),
            } = &mut e.kind
            {
                let Some(o) = firsts.get(first.as_slice()) else {
                    return Err(LayerTarError::Member {
                        member: String::from_utf8_lossy(&e.path).into_owned(),
                        why: "a hardlink to a file the layer does not hold".into(),
                    });
                };
                object.clone_from(o);
            }
        }
        Ok(entries)
    })
}

/// Files at most this big are read whole and written by another thread.
const SMALL: u64 = 1 << 20;

fn read_members(
    r: impl Read,
    staged: &StagedObjects,
    jobs: &std::sync::mpsc::SyncSender<(usize, Vec<u8>, Meta)>,
) -> Result<Vec<Entry>, LayerTarError> {
    let mut archive = tar::Archive::new(r);
    let mut entries: Vec<Entry> = Vec::new();
    // Path -> size of files so far, for hardlinks; their objects are
    // filled in once the writers are done.
    let mut files: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut pax: Option<Vec<(Vec<u8>, Vec<u8>)>> = None;
    let members = archive.entries().map_err(LayerTarError::Read)?.raw(true);
    for member in members {
        crate::cancel::check().map_err(|_| LayerTarError::Cancelled)?;
        let mut member = member.map_err(LayerTarError::Read)?;
        let h = member.header().clone();
        let raw_name = h.path_bytes().into_owned();
        let bad = |why: String| LayerTarError::Member {
            member: String::from_utf8_lossy(&raw_name).into_owned(),
            why,
        };
        let kind = h.entry_type().as_byte();
        if kind == b'x' || kind == b'g' {
            if member.size() > PAX_LIMIT {
                return Err(bad(format!("a {}-byte extended header", member.size())));
            }
            let mut data = Vec::new();
            member.read_to_end(&mut data).map_err(LayerTarError::Read)?;
            if kind == b'x' {
                pax = Some(parse_pax(&data).ok_or_else(|| bad("a malformed PAX header".into()))?);
            }
            continue;
        }
        let records = pax.take().unwrap_or_default();
        let mut name = raw_name.clone();
        let mut link = h
            .link_name_bytes()
            .map(|l| l.into_owned())
            .unwrap_or_default();
        let num = |v: Option<u64>, what: &str| v.ok_or_else(|| bad(format!("bad {what} field")));
        let mut uid = num(h.uid().ok(), "uid")?;
        let mut gid = num(h.gid().ok(), "gid")?;
        let mut mtime = (num(h.mtime().ok(), "mtime")? as i64, 0u32);
        let mut xattrs = Vec::new();
        let mut parent = false;
        let mut exact_mtime = None;
        for (k, v) in records {
            match &k[..] {
                b"path" => name = v,
                b"linkpath" => link = v,
                b"uid" => uid = parse_num(&v).ok_or_else(|| bad("bad PAX uid".into()))?,
                b"gid" => gid = parse_num(&v).ok_or_else(|| bad("bad PAX gid".into()))?,
                b"mtime" => mtime = parse_time(&v).ok_or_else(|| bad("bad PAX mtime".into()))?,
                b"VZPKG.mtime" => {
                    exact_mtime = Some(parse_time(&v).ok_or_else(|| bad("bad mtime".into()))?)
                }
                b"VZPKG.parent" => parent = v == b"1",
                _ => {
                    if let Some(x) = k.strip_prefix(b"SCHILY.xattr.") {
                        xattrs.push((x.to_vec(), v));
                    }
                }
            }
        }
        xattrs.sort();
        let (mtime, mtime_nsec) = exact_mtime.unwrap_or(mtime);
        let meta = Meta {
            mode: num(h.mode().ok().map(u64::from), "mode")? as u32 & 0o7777,
            uid: u32::try_from(uid).map_err(|_| bad("uid out of range".into()))?,
            gid: u32::try_from(gid).map_err(|_| bad("gid out of range".into()))?,
            mtime,
            mtime_nsec,
            xattrs,
        };
        let path = entry_path(&name);
        let dev = || -> Result<(u32, u32), LayerTarError> {
            Ok((
                num(h.device_major().ok().flatten().map(u64::from), "device")? as u32,
                num(h.device_minor().ok().flatten().map(u64::from), "device")? as u32,
            ))
        };
        let (kind, size) = match kind {
            b'5' if parent => (Kind::Parent, 0),
            b'5' => (Kind::Dir, 0),
            b'0' | b'\0' | b'7' => {
                let size = member.size();
                let object = if size <= SMALL {
                    let mut data = Vec::with_capacity(size as usize);
                    member.read_to_end(&mut data).map_err(LayerTarError::Read)?;
                    if data.len() as u64 != size {
                        return Err(bad(format!("{} of {size} bytes", data.len())));
                    }
                    // A writer gone means it failed; its error is collected.
                    if jobs.send((entries.len(), data, meta.clone())).is_err() {
                        break;
                    }
                    String::new()
                } else {
                    staged
                        .put(&mut member, &meta)
                        .map_err(LayerTarError::Store)?
                        .0
                };
                files.insert(path.clone(), size);
                (Kind::File { object, link: None }, size)
            }
            b'1' => {
                let first = entry_path(&link);
                let size = files.get(&first).copied().ok_or_else(|| {
                    bad(format!(
                        "a hardlink to {}, which is not an earlier file of this layer",
                        String::from_utf8_lossy(&first)
                    ))
                })?;
                (
                    Kind::File {
                        object: String::new(),
                        link: Some(first),
                    },
                    size,
                )
            }
            b'2' => (Kind::Symlink { target: link }, 0),
            b'3' => {
                let (major, minor) = dev()?;
                (Kind::Char { major, minor }, 0)
            }
            b'4' => {
                let (major, minor) = dev()?;
                (Kind::Block { major, minor }, 0)
            }
            b'6' => (Kind::Fifo, 0),
            other => return Err(bad(format!("unsupported member type `{}`", other as char))),
        };
        entries.push(Entry {
            path,
            kind,
            meta,
            size,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_and_times() {
        assert_eq!(entry_path(b"./"), b"/");
        assert_eq!(entry_path(b"usr/"), b"/usr");
        assert_eq!(entry_path(b"./usr/bin/ls"), b"/usr/bin/ls");
        assert_eq!(parse_time(b"12.5"), Some((12, 500_000_000)));
        assert_eq!(parse_time(b"-3"), Some((-3, 0)));
        assert_eq!(parse_time(b"1.0000000019"), Some((1, 1)));
        assert_eq!(parse_time(b"x"), None);
    }

    /// Every kind of member, and each value that needs a PAX record,
    /// comes back from the tar as the entry it was written from.
    #[test]
    fn a_layer_reads_back_as_the_entries_it_was_written_from() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let content = dir.path().join("content");
        std::fs::write(&content, b"hello, layer\n").unwrap();
        let meta = |mode, uid, mtime, mtime_nsec, xattrs: &[(&[u8], &[u8])]| Meta {
            mode,
            uid,
            gid: uid,
            mtime,
            mtime_nsec,
            xattrs: xattrs
                .iter()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect(),
        };
        let long = format!("/usr/share/{}", "d/".repeat(70)).into_bytes();
        let long_file = [&long[..], b"file"].concat();
        let file = |path: &[u8], link: Option<&[u8]>, m| Entry {
            path: path.to_vec(),
            kind: Kind::File {
                object: "obj".into(),
                link: link.map(|l| l.to_vec()),
            },
            meta: m,
            size: 13,
        };
        let other = |path: &[u8], kind, m| Entry {
            path: path.to_vec(),
            kind,
            meta: m,
            size: 0,
        };
        let entries = vec![
            other(b"/", Kind::Parent, meta(0o755, 0, 0, 0, &[])),
            other(b"/usr", Kind::Dir, meta(0o755, 0, 1_700_000_000, 5, &[])),
            file(
                b"/usr/ping",
                None,
                meta(0o4755, 0, 1, 0, &[(b"user.bytes", b"\x01\0\xff")]),
            ),
            file(
                b"/usr/ping2",
                Some(b"/usr/ping"),
                meta(0o4755, 0, 1, 0, &[]),
            ),
            file(&long_file, None, meta(0o644, 3_000_000, -5, 7, &[])),
            other(
                b"/usr/far",
                Kind::Symlink {
                    target: long_file.clone(),
                },
                meta(0o777, 0, 1 << 40, 0, &[]),
            ),
            other(
                b"/usr/null",
                Kind::Char { major: 1, minor: 3 },
                meta(0o666, 0, 2, 0, &[]),
            ),
            other(
                b"/usr/sda",
                Kind::Block { major: 8, minor: 0 },
                meta(0o660, 6, 2, 0, &[]),
            ),
            other(b"/usr/pipe", Kind::Fifo, meta(0o600, 65_534, 2, 0, &[])),
        ];
        let open = |_: &str| {
            std::fs::File::open(&content).map_err(|source| StoreError::Io {
                op: "open",
                path: content.clone(),
                source,
            })
        };
        let mut tar = Vec::new();
        assert_eq!(write_layer(&entries, &open, &mut tar).unwrap(), 2);
        let staged = store.stage_objects().unwrap();
        let back = read_layer(&tar[..], &staged).unwrap();
        assert_eq!(back.len(), entries.len());
        for (b, e) in back.iter().zip(&entries) {
            assert_eq!(b.path, e.path);
            assert_eq!(b.meta, e.meta, "{}", String::from_utf8_lossy(&e.path));
            assert_eq!(b.size, e.size);
            match (&b.kind, &e.kind) {
                (Kind::File { link: bl, .. }, Kind::File { link: el, .. }) => assert_eq!(bl, el),
                (bk, ek) => assert_eq!(bk, ek),
            }
        }
    }
}
