//! Layer manifests: one canonical text line per entry, sorted by path bytes,
//! so the same tree always encodes to the same bytes (and the same layer id).
//!
//! A line is `path kind mode uid gid mtime size reference xattrs link`, each
//! field escaped with `escape`. `link` is `-`, or, for a regular file that is
//! a further name of an inode of the committed tree, the first name of that
//! inode in this layer (it sorts before the line's own path). A hardlink whose
//! names land in different layers becomes one file per layer.

use super::StoreError;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// The manifest format this code writes (and the only one checkout reads).
pub const FORMAT: u32 = 2;
const HEADER: &str = "vzpkg-layer 2\n";
const MAGIC: &str = "vzpkg-layer ";

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
        /// The first path of the same source inode in this layer: a real
        /// hardlink, which checkout keeps. Identical files without it share
        /// the object only in the store, never in a checkout.
        link: Option<Vec<u8>>,
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
        Kind::File { object, .. } => ("file", object.clone()),
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
    out.push(' ');
    match &e.kind {
        Kind::File {
            link: Some(first), ..
        } => escape(first, out),
        _ => out.push('-'),
    }
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

/// One line of a manifest of `format` 1 (no link field) or 2.
fn parse_line(line: &str, format: u32) -> Option<Entry> {
    let f: Vec<&str> = line.split(' ').collect();
    let link = match (format, f.len()) {
        (1, 9) => None,
        (2, 10) if f[9] == "-" => None,
        (2, 10) => Some(unescape(f[9])?).filter(|l| l.first() == Some(&b'/')),
        _ => return None,
    };
    let has_link = link.is_some();
    let path = unescape(f[0])?;
    if path.first() != Some(&b'/') {
        return None;
    }
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
                link,
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
    if has_link && !matches!(kind, Kind::File { .. }) {
        return None;
    }
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

/// Parse a manifest of the current format read from `path` (named in errors).
pub fn decode(bytes: &[u8], path: &Path) -> Result<Vec<Entry>, StoreError> {
    match decode_any(bytes, path)? {
        (FORMAT, entries) => Ok(entries),
        (found, _) => Err(StoreError::LayerFormat {
            path: path.to_path_buf(),
            found,
            expected: FORMAT,
        }),
    }
}

/// Parse a manifest of any format this code knows, with its format number:
/// for `gc`, which only needs the objects of layers it keeps. Format 1 has no
/// links (its checkouts linked every file sharing an object).
pub fn decode_any(bytes: &[u8], path: &Path) -> Result<(u32, Vec<Entry>), StoreError> {
    let corrupt = |why: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        why,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt("not UTF-8 text".into()))?;
    let (first, body) = text
        .strip_prefix(MAGIC)
        .and_then(|t| t.split_once('\n'))
        .ok_or_else(|| corrupt(format!("missing the `{}` header", HEADER.trim_end())))?;
    let format: u32 = first
        .parse()
        .ok()
        .filter(|n: &u32| n.to_string() == first)
        .ok_or_else(|| corrupt(format!("bad header `{MAGIC}{first}`")))?;
    if format == 0 || format > FORMAT {
        return Err(StoreError::LayerFormat {
            path: path.to_path_buf(),
            found: format,
            expected: FORMAT,
        });
    }
    let mut entries: Vec<Entry> = Vec::new();
    // Files that are not further names, so far: path -> object.
    let mut firsts: HashMap<Vec<u8>, String> = HashMap::new();
    for (n, line) in body.lines().enumerate() {
        let line_no = n + 2;
        let e = parse_line(line, format)
            .ok_or_else(|| corrupt(format!("line {line_no} is malformed")))?;
        if entries.last().is_some_and(|prev| prev.path >= e.path) {
            return Err(corrupt(format!("line {line_no} is out of path order")));
        }
        if let Kind::File { object, link } = &e.kind {
            match link {
                // Checkout links to the first name, so it must come earlier
                // in path order and be a plain file of the same object.
                Some(first) if firsts.get(first) != Some(object) => {
                    return Err(corrupt(format!(
                        "line {line_no} is a hardlink of {}, which is not an earlier file of the same object in this layer",
                        String::from_utf8_lossy(first)
                    )));
                }
                Some(_) => {}
                None => {
                    firsts.insert(e.path.clone(), object.clone());
                }
            }
        }
        entries.push(e);
    }
    Ok((format, entries))
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
        assert!(decode(b"vzpkg-layer 2\n/ dir 0755\n", Path::new("m")).is_err());
    }

    fn file(path: &str, object: char, link: Option<&str>) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind: Kind::File {
                object: object.to_string().repeat(64),
                link: link.map(|l| l.as_bytes().to_vec()),
            },
            meta: Meta {
                mode: 0o644,
                ..Meta::default()
            },
            size: 0,
        }
    }

    #[test]
    fn links_round_trip_and_are_checked() {
        let entries = vec![
            file("/a b", 'a', None),
            file("/b", 'a', None),
            file("/c", 'a', Some("/a b")),
        ];
        let bytes = encode(&entries);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("vzpkg-layer 2\n"), "{text}");
        assert!(text.ends_with(" - /a%20b\n"), "{text}");
        let back = decode(&bytes, Path::new("m")).unwrap();
        assert_eq!(back, entries);
        assert_eq!(encode(&back), bytes);

        let bad = |entries: &[Entry]| {
            let err = decode(&encode(entries), Path::new("m")).unwrap_err();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
            err.to_string()
        };
        // To a later path, to another object, to a link, to nothing.
        let later = [file("/a", 'a', Some("/b")), file("/b", 'a', None)];
        assert!(bad(&later).contains("line 2"));
        bad(&[file("/a", 'a', None), file("/b", 'b', Some("/a"))]);
        bad(&[
            file("/a", 'a', None),
            file("/b", 'a', Some("/a")),
            file("/c", 'a', Some("/b")),
        ]);
        bad(&[file("/b", 'a', Some("/a"))]);
        // Out of order, and a link on something that is not a file.
        bad(&[file("/b", 'a', None), file("/a", 'a', None)]);
        let fifo = "vzpkg-layer 2\n/p fifo 0644 0 0 0.000000000 0 - - /p\n";
        assert!(decode(fifo.as_bytes(), Path::new("m")).is_err());
    }

    #[test]
    fn other_formats_are_named() {
        let v1 = format!(
            "vzpkg-layer 1\n/ dir 0755 0 0 0.000000000 0 - -\n/f file 0644 0 0 0.000000000 3 {} -\n",
            "a".repeat(64)
        );
        let err = decode(v1.as_bytes(), Path::new("/s/layers/x/manifest")).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::LayerFormat {
                    found: 1,
                    expected: 2,
                    ..
                }
            ),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("/s/layers/x/manifest") && msg.contains("vzpkg create"),
            "{msg}"
        );
        // gc still reads the objects of a kept old layer.
        let (format, entries) = decode_any(v1.as_bytes(), Path::new("m")).unwrap();
        assert_eq!(format, 1);
        assert!(matches!(&entries[1].kind, Kind::File { link: None, .. }));
        let v9 = decode(b"vzpkg-layer 9\n", Path::new("m")).unwrap_err();
        assert!(
            matches!(v9, StoreError::LayerFormat { found: 9, .. }),
            "{v9}"
        );
        for junk in [&b"something else\n"[..], b"vzpkg-layer 02\n"] {
            let err = decode(junk, Path::new("m")).unwrap_err();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        }
    }
}
