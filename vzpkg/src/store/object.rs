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

/// Where object `id` goes, its fan-out directory made; `None` if the store
/// has it already.
fn new_object_path(objects: &Path, id: &str) -> Result<Option<PathBuf>, StoreError> {
    let dest = object_path(objects, id);
    if std::fs::symlink_metadata(&dest).is_ok() {
        return Ok(None);
    }
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
    Ok(Some(dest))
}

/// Move the staged file `src` in as object `id`: a rename, so nothing is
/// left to remove after. False if the store had it (`src` stays). An
/// object that appears meanwhile from another commit is the same bytes.
pub fn move_in(src: &Path, objects: &Path, id: &str) -> Result<bool, StoreError> {
    let Some(dest) = new_object_path(objects, id)? else {
        return Ok(false);
    };
    std::fs::rename(src, &dest)
        .map(|()| true)
        .map_err(|source| StoreError::Io {
            op: "move an object into",
            path: dest,
            source,
        })
}

/// Make `objects/<id>` exist as `src`'s inode (hardlink). Ok(true) when it
/// was created, Ok(false) when an object of that id was already there.
pub fn link_in(src: &Path, objects: &Path, id: &str) -> Result<bool, StoreError> {
    let Some(dest) = new_object_path(objects, id)? else {
        return Ok(false);
    };
    match std::fs::hard_link(src, &dest) {
        Ok(()) => Ok(true),
        // Another commit stored the same object a moment ago.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(StoreError::Io {
            op: "hardlink an object into",
            path: dest,
            source,
        }),
    }
}
