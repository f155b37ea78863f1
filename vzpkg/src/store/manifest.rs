//! Layer manifests: one canonical text line per entry, sorted by path bytes,
//! so the same tree always encodes to the same bytes (and the same layer id).

use super::StoreError;
use sha2::{Digest, Sha256};
use std::path::Path;

const HEADER: &str = "vzpkg-layer 1\n";

/// Extended attributes as (name, value), sorted by name.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Metadata shared by every kind of entry (and, for files, by the object).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub xattrs: Xattrs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// A directory this layer holds only so its children have a parent; the
    /// layer owning the real directory (with its mtime and xattrs) sits above.
    Parent,
    File {
        object: String,
    },
    Symlink {
        target: Vec<u8>,
    },
    Char {
        major: u32,
        minor: u32,
    },
    Block {
        major: u32,
        minor: u32,
    },
    Fifo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Absolute inside the template: `/`, `/usr`, `/usr/bin/ls`.
    pub path: Vec<u8>,
    pub kind: Kind,
    pub meta: Meta,
    /// Bytes of content for regular files, 0 otherwise.
    pub size: u64,
}

impl Entry {
    /// The path relative to a tree root (`usr/bin/ls`; empty for `/`).
    pub fn rel(&self) -> &Path {
        use std::os::unix::ffi::OsStrExt;
        let p = self.path.strip_prefix(b"/").unwrap_or(&self.path);
        Path::new(std::ffi::OsStr::from_bytes(p))
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir | Kind::Parent)
    }
}

/// Bytes outside printable ASCII, and the separators of the format, become `%XX`.
pub fn escape(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if b.is_ascii_graphic() && !matches!(b, b'%' | b'=' | b';') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

pub fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

pub fn encode_xattrs(xattrs: &[(Vec<u8>, Vec<u8>)], out: &mut String) {
    if xattrs.is_empty() {
        out.push('-');
        return;
    }
    for (i, (name, value)) in xattrs.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        escape(name, out);
        out.push('=');
        out.push_str(&hex::encode(value));
    }
}

fn decode_xattrs(s: &str) -> Option<Xattrs> {
    if s == "-" {
        return Some(Vec::new());
    }
    s.split(';')
        .map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((unescape(k)?, hex::decode(v).ok()?))
        })
        .collect()
}

fn encode_entry(e: &Entry, out: &mut String) {
    escape(&e.path, out);
    let (kind, reference) = match &e.kind {
        Kind::Dir => ("dir", "-".to_string()),
        Kind::Parent => ("parent", "-".to_string()),
        Kind::File { object } => ("file", object.clone()),
        Kind::Symlink { target } => {
            let mut t = String::new();
            escape(target, &mut t);
            ("symlink", t)
        }
        Kind::Char { major, minor } => ("char", format!("{major},{minor}")),
        Kind::Block { major, minor } => ("block", format!("{major},{minor}")),
        Kind::Fifo => ("fifo", "-".to_string()),
    };
    let m = &e.meta;
    out.push_str(&format!(
        " {kind} {:04o} {} {} {}.{:09} {} {reference} ",
        m.mode, m.uid, m.gid, m.mtime, m.mtime_nsec, e.size
    ));
    encode_xattrs(&m.xattrs, out);
    out.push('\n');
}

/// The canonical bytes of a layer; `entries` must be sorted by path.
pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = String::from(HEADER);
    for e in entries {
        encode_entry(e, &mut out);
    }
    out.into_bytes()
}

pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn parse_line(line: &str) -> Option<Entry> {
    let f: Vec<&str> = line.split(' ').collect();
    if f.len() != 9 {
        return None;
    }
    let path = unescape(f[0])?;
    let dev = |s: &str| -> Option<(u32, u32)> {
        let (a, b) = s.split_once(',')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    let kind = match f[1] {
        "dir" => Kind::Dir,
        "parent" => Kind::Parent,
        "file" => {
            let object = f[7];
            if object.len() != 64 || !object.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            Kind::File {
                object: object.to_string(),
            }
        }
        "symlink" => Kind::Symlink {
            target: unescape(f[7])?,
        },
        "char" => {
            let (major, minor) = dev(f[7])?;
            Kind::Char { major, minor }
        }
        "block" => {
            let (major, minor) = dev(f[7])?;
            Kind::Block { major, minor }
        }
        "fifo" => Kind::Fifo,
        _ => return None,
    };
    let (sec, nsec) = f[5].split_once('.')?;
    let meta = Meta {
        mode: u32::from_str_radix(f[2], 8).ok()?,
        uid: f[3].parse().ok()?,
        gid: f[4].parse().ok()?,
        mtime: sec.parse().ok()?,
        mtime_nsec: nsec.parse().ok()?,
        xattrs: decode_xattrs(f[8])?,
    };
    Some(Entry {
        path,
        kind,
        meta,
        size: f[6].parse().ok()?,
    })
}

/// Parse a manifest read from `path` (named in errors).
pub fn decode(bytes: &[u8], path: &Path) -> Result<Vec<Entry>, StoreError> {
    let corrupt = |why: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        why,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt("not UTF-8 text".into()))?;
    let body = text
        .strip_prefix(HEADER)
        .ok_or_else(|| corrupt("missing the `vzpkg-layer 1` header".into()))?;
    let mut entries = Vec::new();
    for (n, line) in body.lines().enumerate() {
        let e = parse_line(line).ok_or_else(|| corrupt(format!("line {} is malformed", n + 2)))?;
        entries.push(e);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_odd_bytes() {
        let entries = vec![
            Entry {
                path: b"/".to_vec(),
                kind: Kind::Dir,
                meta: Meta {
                    mode: 0o755,
                    ..Meta::default()
                },
                size: 0,
            },
            Entry {
                path: b"/a b;c=d%\n\xff".to_vec(),
                kind: Kind::Symlink {
                    target: b"../x y".to_vec(),
                },
                meta: Meta {
                    mode: 0o777,
                    uid: 1000,
                    gid: 5,
                    mtime: -3,
                    mtime_nsec: 7,
                    xattrs: vec![(b"security.x=;".to_vec(), vec![0, 1, 255])],
                },
                size: 0,
            },
            Entry {
                path: b"/dev/null".to_vec(),
                kind: Kind::Char { major: 1, minor: 3 },
                meta: Meta::default(),
                size: 0,
            },
        ];
        let bytes = encode(&entries);
        let back = decode(&bytes, Path::new("m")).unwrap();
        assert_eq!(back, entries);
        assert_eq!(encode(&back), bytes);
        assert!(decode(b"vzpkg-layer 1\n/ dir 0755\n", Path::new("m")).is_err());
    }
}
