//! Template records (`templates/<id>.json`), their ids, and tags.

use super::manifest::digest;
use super::{LockedPackage, StoreError};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// A layer of a template as its record lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerSummary {
    pub id: String,
    /// Bytes of the regular files the layer owns.
    pub bytes: u64,
    pub files: u64,
    pub entries: u64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TemplateRecord {
    pub format: u32,
    pub id: String,
    /// Bottom first: mount with `lowerdir=` in the reverse order.
    pub layers: Vec<LayerSummary>,
    pub recipe: String,
    pub packages: Vec<LockedPackage>,
    pub facts: BTreeMap<String, String>,
    /// Unix seconds of the first commit of this id; not part of the id.
    pub created: i64,
}

/// The id covers the layers, the package set and the recipe only, so the same
/// inputs give the same id in any store on any day.
/// A template's id: the digest of its ordered layer ids, that is, of its
/// content alone. The recipe, lock and build facts are kept in the record
/// beside it but are not hashed, so the same tree has the same id however it
/// arrived (built, rebuilt from a lock, or imported from an exported cache).
pub fn template_id(layers: &[String]) -> String {
    let mut s = String::from("vzpkg-template 2\n");
    for l in layers {
        s.push_str("layer ");
        s.push_str(l);
        s.push('\n');
    }
    digest(s.as_bytes())
}

pub fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Tags are file names under `tags/`: keep them to a safe, portable set.
pub fn check_tag(name: &str) -> Result<(), StoreError> {
    let why = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 128 {
        Some("it is longer than 128 bytes")
    } else if name.starts_with(['.', '-']) {
        Some("it starts with `.` or `-`")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
    {
        Some("only letters, digits, `.`, `_`, `-` and `+` are allowed")
    } else {
        None
    };
    match why {
        Some(why) => Err(StoreError::BadTag {
            name: name.to_string(),
            why,
        }),
        None => Ok(()),
    }
}

pub fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Io {
            op: "fsync the directory",
            path: dir.to_path_buf(),
            source,
        })
}

/// Write `bytes` to `dest` atomically: a temp file in `tmp`, fsync, rename,
/// fsync of the directory.
pub fn write_atomic(tmp: &Path, dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io {
            op: "write",
            path,
            source,
        }
    };
    let mut f = std::fs::File::create(tmp).map_err(io(tmp))?;
    f.write_all(bytes).map_err(io(tmp))?;
    f.sync_all().map_err(io(tmp))?;
    drop(f);
    if let Err(e) = std::fs::rename(tmp, dest) {
        let _ = std::fs::remove_file(tmp);
        return Err(io(dest)(e));
    }
    if let Some(dir) = dest.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

pub fn read_record(path: &Path) -> Result<TemplateRecord, StoreError> {
    let bytes = std::fs::read(path).map_err(|source| StoreError::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        why: format!("not a template record: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_the_ordered_layers() {
        let l = vec!["a".repeat(64), "b".repeat(64)];
        let a = template_id(&l);
        assert_eq!(a, template_id(&l.clone()));
        let swapped = vec![l[1].clone(), l[0].clone()];
        assert_ne!(a, template_id(&swapped));
        assert_ne!(a, template_id(&l[..1]));
        assert!(is_id(&a));
    }

    #[test]
    fn tag_names() {
        assert!(check_tag("debian-12").is_ok());
        assert!(check_tag("centos_7.9+x").is_ok());
        for bad in ["", ".x", "-x", "a/b", "a b", "..", &"x".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad:?}");
        }
    }
}
