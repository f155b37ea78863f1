//! Objects: one file per distinct (content, mode, owner, mtime, xattrs),
//! named by a digest over all of them, so a hardlink to one is correct as is.

use super::manifest::{encode_xattrs, Meta};
use super::StoreError;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const BUF: usize = 256 * 1024;

pub fn object_id(content: &str, m: &Meta) -> String {
    let mut s = format!(
        "vzpkg-object 1\n{content} {:04o} {} {} {}.{:09} ",
        m.mode, m.uid, m.gid, m.mtime, m.mtime_nsec
    );
    encode_xattrs(&m.xattrs, &mut s);
    s.push('\n');
    hex::encode(Sha256::digest(s.as_bytes()))
}

pub fn object_path(objects: &Path, id: &str) -> PathBuf {
    objects.join(id.get(..2).unwrap_or("00")).join(id)
}

/// SHA-256 of a file's content and its length.
pub fn hash_file(path: &Path) -> Result<(String, u64), StoreError> {
    let io = |source| StoreError::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; BUF];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(io)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// Copy `src` to a new file at `tmp` while hashing it, and give the copy the
/// metadata `m`. Returns the content digest; the copy is fsync'd.
pub fn copy_hashing(src: &Path, tmp: &Path, m: &Meta) -> Result<String, StoreError> {
    let rd = |source| StoreError::Io {
        op: "read",
        path: src.to_path_buf(),
        source,
    };
    let wr = |source| StoreError::Io {
        op: "write",
        path: tmp.to_path_buf(),
        source,
    };
    let mut input = std::fs::File::open(src).map_err(rd)?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(wr)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; BUF];
    loop {
        crate::cancel::check()?;
        let k = input.read(&mut buf).map_err(rd)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        out.write_all(&buf[..k]).map_err(wr)?;
    }
    super::tree::apply_meta_fd(&out, tmp, m)?;
    out.sync_all().map_err(wr)?;
    Ok(hex::encode(h.finalize()))
}

/// Put object `id` in place with `op`, which must refuse a destination that
/// exists: one call in the common case, the fan-out directory made only when
/// `op` finds it missing. Ok(false) when the store had the object already
/// (another file with the same content and metadata, or a concurrent commit:
/// the same bytes either way).
fn place(
    objects: &Path,
    id: &str,
    what: &'static str,
    op: impl Fn(&Path) -> std::io::Result<()>,
) -> Result<bool, StoreError> {
    let dest = object_path(objects, id);
    let mut r = op(&dest);
    let missing =
        |r: &std::io::Result<()>| matches!(r, Err(e) if e.kind() == std::io::ErrorKind::NotFound);
    // `src` may be missing because the store has the object (a layer that
    // was not staged): that counts as there, as it does for `op`.
    if missing(&r) && std::fs::symlink_metadata(&dest).is_ok() {
        return Ok(false);
    }
    if missing(&r) {
        if let Some(fan) = dest.parent() {
            match std::fs::create_dir(fan) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(StoreError::Io {
                        op: "create",
                        path: fan.to_path_buf(),
                        source: e,
                    })
                }
                _ => {}
            }
        }
        r = op(&dest);
    }
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(StoreError::Io {
            op: what,
            path: dest,
            source,
        }),
    }
}

/// Move the staged file `src` in as object `id`: a rename, so nothing is
/// left to remove after. False if the store had it (`src` stays).
pub fn move_in(src: &Path, objects: &Path, id: &str) -> Result<bool, StoreError> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    place(objects, id, "move an object into", |dest| {
        match renameat_with(CWD, src, CWD, dest, RenameFlags::NOREPLACE) {
            // A file system without RENAME_NOREPLACE: look, then rename.
            Err(rustix::io::Errno::INVAL) => {
                if std::fs::symlink_metadata(dest).is_ok() {
                    return Err(std::io::ErrorKind::AlreadyExists.into());
                }
                std::fs::rename(src, dest)
            }
            r => r.map_err(Into::into),
        }
    })
}

/// Make `objects/<id>` exist as `src`'s inode (hardlink). Ok(true) when it
/// was created, Ok(false) when an object of that id was already there.
pub fn link_in(src: &Path, objects: &Path, id: &str) -> Result<bool, StoreError> {
    place(objects, id, "hardlink an object into", |dest| {
        std::fs::hard_link(src, dest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_go_in_once_and_a_missing_source_of_a_present_object_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        std::fs::create_dir(&objects).unwrap();
        let id = "ab".repeat(32);
        let a = dir.path().join("a");
        std::fs::write(&a, "one").unwrap();
        // The fan-out directory is made on the way.
        assert!(move_in(&a, &objects, &id).unwrap());
        assert!(!a.exists());
        assert_eq!(
            std::fs::read_to_string(object_path(&objects, &id)).unwrap(),
            "one"
        );
        // Present: the staged copy stays, the object is not replaced.
        let b = dir.path().join("b");
        std::fs::write(&b, "two").unwrap();
        assert!(!move_in(&b, &objects, &id).unwrap());
        assert!(b.exists());
        assert!(!link_in(&b, &objects, &id).unwrap());
        // Present and never staged (a layer the store had).
        assert!(!move_in(&dir.path().join("never"), &objects, &id).unwrap());
        assert_eq!(
            std::fs::read_to_string(object_path(&objects, &id)).unwrap(),
            "one"
        );
        // Neither staged nor present: an error that names the object.
        let other = "cd".repeat(32);
        let err = move_in(&dir.path().join("never"), &objects, &other).unwrap_err();
        assert!(err.to_string().contains(&other), "{err}");
        assert!(link_in(&b, &objects, &other).unwrap());
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&b).unwrap().nlink(), 2);
    }
}
