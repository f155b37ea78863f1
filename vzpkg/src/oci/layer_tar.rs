//! A store layer as a tar and back. Writing is reproducible: members in the
//! manifest's order, ustar headers with PAX records only where a value does
//! not fit (long names, nanoseconds, xattrs), no user names, no atime/ctime.
//! Reading rebuilds exactly the entries the layer was written from, so the
//! pulled layer has the same id: `VZPKG.parent` marks directories a layer
//! holds only as parents, and hardlinks point at the first name.
//!
//! Kept apart from the rest of `oci/` so the project's shared tar code can
//! take it over.

use crate::store::{Entry, Kind, Meta, StagedObjects, StoreError};
use crate::tarfmt::{pad, parse_pax, pax_record, put_octal, set_checksum};
use std::collections::HashMap;
use std::io::{self, Read, Write};

/// Extended records larger than this are refused (a damaged or hostile layer).
const PAX_LIMIT: u64 = 16 << 20;

struct Hdr<'a> {
    name: &'a [u8],
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    kind: u8,
    link: &'a [u8],
    dev: (u32, u32),
}

fn ustar_block(h: &Hdr) -> [u8; 512] {
    let mut b = [0u8; 512];
    let n = h.name.len().min(100);
    b[..n].copy_from_slice(&h.name[..n]);
    put_octal(&mut b[100..108], u64::from(h.mode & 0o7777));
    put_octal(&mut b[108..116], h.uid);
    put_octal(&mut b[116..124], h.gid);
    put_octal(&mut b[124..136], h.size);
    put_octal(&mut b[136..148], h.mtime);
    b[156] = h.kind;
    let l = h.link.len().min(100);
    b[157..157 + l].copy_from_slice(&h.link[..l]);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    if h.kind == b'3' || h.kind == b'4' {
        put_octal(&mut b[329..337], u64::from(h.dev.0));
        put_octal(&mut b[337..345], u64::from(h.dev.1));
    }
    set_checksum(&mut b);
    b
}

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
        let mut pax = Vec::new();
        if name.len() > 100 {
            pax.extend(pax_record(b"path", &name));
        }
        if link.len() > 100 {
            pax.extend(pax_record(b"linkpath", &link));
        }
        let mut scratch = [0u8; 12];
        let (mut uid, mut gid, mut hsize) = (u64::from(m.uid), u64::from(m.gid), size);
        if !put_octal(&mut scratch[..8], uid) {
            pax.extend(pax_record(b"uid", uid.to_string().as_bytes()));
            uid = 0;
        }
        if !put_octal(&mut scratch[..8], gid) {
            pax.extend(pax_record(b"gid", gid.to_string().as_bytes()));
            gid = 0;
        }
        if !put_octal(&mut scratch, hsize) {
            pax.extend(pax_record(b"size", hsize.to_string().as_bytes()));
            hsize = 0;
        }
        let mtime = match u64::try_from(m.mtime) {
            Ok(t) if put_octal(&mut scratch, t) => {
                if m.mtime_nsec != 0 {
                    pax.extend(pax_record(
                        b"mtime",
                        format!("{}.{:09}", m.mtime, m.mtime_nsec).as_bytes(),
                    ));
                }
                t
            }
            _ => {
                // Outside ustar's range: the standard record for other
                // tools, and the exact value for us.
                pax.extend(pax_record(b"mtime", m.mtime.to_string().as_bytes()));
                pax.extend(pax_record(
                    b"VZPKG.mtime",
                    format!("{}.{:09}", m.mtime, m.mtime_nsec).as_bytes(),
                ));
                0
            }
        };
        for (k, v) in &m.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k);
            pax.extend(pax_record(&key, v));
        }
        if e.kind == Kind::Parent {
            pax.extend(pax_record(b"VZPKG.parent", b"1"));
        }
        if !pax.is_empty() {
            let len = pax.len() as u64;
            w.write_all(&ustar_block(&Hdr {
                name: b"././@PaxHeader",
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: len,
                mtime: 0,
                kind: b'x',
                link: b"",
                dev: (0, 0),
            }))
            .map_err(LayerTarError::Write)?;
            w.write_all(&pax).map_err(LayerTarError::Write)?;
            pad(w, len).map_err(LayerTarError::Write)?;
        }
        w.write_all(&ustar_block(&Hdr {
            name: &name,
            mode: m.mode,
            uid,
            gid,
            size: hsize,
            mtime,
            kind,
            link: &link,
            dev,
        }))
        .map_err(LayerTarError::Write)?;
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
    let mut archive = tar::Archive::new(r);
    let mut entries: Vec<Entry> = Vec::new();
    // Path -> (object, size) of files so far, for hardlinks.
    let mut files: HashMap<Vec<u8>, (String, u64)> = HashMap::new();
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
                let (object, size) = staged
                    .put(&mut member, &meta)
                    .map_err(LayerTarError::Store)?;
                files.insert(path.clone(), (object.clone(), size));
                (Kind::File { object, link: None }, size)
            }
            b'1' => {
                let first = entry_path(&link);
                let (object, size) = files.get(&first).cloned().ok_or_else(|| {
                    bad(format!(
                        "a hardlink to {}, which is not an earlier file of this layer",
                        String::from_utf8_lossy(&first)
                    ))
                })?;
                (
                    Kind::File {
                        object,
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
}
