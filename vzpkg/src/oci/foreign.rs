//! Images made by other tools: each layer is extracted on its own by the
//! project's safe extractor (no `..`, nothing through a symlink), then laid
//! over the layers below it: `.wh.NAME` removes NAME, `.wh..wh..opq` empties
//! its directory of what lower layers put there, anything else replaces what
//! was there (a directory over a directory merges, and takes the upper one's
//! owner, mode, xattrs and mtime). The merged tree is committed like any
//! other, so it is split into the store's usual path layers (`/usr`, `/lib*`,
//! the rest): the image's own layer boundaries say how it was built, not what
//! changes together, and split this way its `/usr` becomes a layer other
//! templates and VPSs can share, while identical files are one object anyway.

use super::OciError;
use crate::progress::{Reporter, Stage};
use crate::store::{LayerSplit, Store, TemplateMeta};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OciError {
    let path = path.to_path_buf();
    move |source| OciError::Io { op, path, source }
}

fn remove_any(p: &Path) -> Result<(), OciError> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).map_err(io("remove", p)),
        Ok(_) => std::fs::remove_file(p).map_err(io("remove", p)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("read", p)(e)),
    }
}

fn sorted_names(dir: &Path) -> Result<Vec<std::ffi::OsString>, OciError> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(io("list", dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io("list", dir))?;
    names.sort();
    Ok(names)
}

/// Remove whiteout markers left in a tree that had nothing below it.
fn strip_whiteouts(dir: &Path) -> Result<(), OciError> {
    for name in sorted_names(dir)? {
        let p = dir.join(&name);
        if name.as_bytes().starts_with(WHITEOUT) {
            remove_any(&p)?;
        } else if std::fs::symlink_metadata(&p)
            .map_err(io("read", &p))?
            .is_dir()
        {
            strip_whiteouts(&p)?;
        }
    }
    Ok(())
}

/// Give `dst` the owner, mode and xattrs of `src` (both directories).
fn copy_dir_meta(src: &Path, dst: &Path) -> Result<(), OciError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let m = std::fs::symlink_metadata(src).map_err(io("read", src))?;
    std::os::unix::fs::lchown(dst, Some(m.uid()), Some(m.gid())).map_err(io("chown", dst))?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(m.mode() & 0o7777))
        .map_err(io("chmod", dst))?;
    let old: Vec<_> = xattr::list(dst).map(|l| l.collect()).unwrap_or_default();
    for n in old {
        let _ = xattr::remove(dst, &n);
    }
    if let Ok(names) = xattr::list(src) {
        for n in names {
            if let Ok(Some(v)) = xattr::get(src, &n) {
                xattr::set(dst, &n, &v).map_err(io("set an extended attribute on", dst))?;
            }
        }
    }
    Ok(())
}

/// The directories a layer's tar names itself (relative; empty for the
/// root). Others the extractor made as parents: they carry no metadata of
/// the image's, so they must not override what lower layers say.
fn explicit_dirs(blob: &Path) -> Result<HashSet<PathBuf>, OciError> {
    let f = std::fs::File::open(blob).map_err(io("read", blob))?;
    let r = super::compress::decoder("", std::io::BufReader::with_capacity(1 << 20, f))
        .map_err(io("decompress", blob))?;
    let mut a = tar::Archive::new(r);
    let mut out = HashSet::new();
    for e in a.entries().map_err(io("read", blob))? {
        let e = e.map_err(io("read", blob))?;
        if e.header().entry_type().is_dir() {
            let p = e.path().map_err(io("read", blob))?;
            let rel: PathBuf = p
                .components()
                .filter(|c| matches!(c, std::path::Component::Normal(_)))
                .collect();
            out.insert(rel);
        }
    }
    Ok(out)
}

/// Give the directories under `dir` the tar did not name a fixed mtime
/// (the extractor made them now), so the same image gives the same template.
fn settle_implicit(dir: &Path, rel: &Path, explicit: &HashSet<PathBuf>) -> Result<(), OciError> {
    for name in sorted_names(dir)? {
        let p = dir.join(&name);
        if std::fs::symlink_metadata(&p)
            .map_err(io("read", &p))?
            .is_dir()
        {
            let r = rel.join(&name);
            settle_implicit(&p, &r, explicit)?;
            if !explicit.contains(&r) {
                set_epoch(&p)?;
            }
        }
    }
    Ok(())
}

/// A directory's mtime as (seconds, nanoseconds).
type Mtimes = HashMap<PathBuf, (i64, i64)>;

fn mtime_of(p: &Path) -> Result<(i64, i64), OciError> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).map_err(io("read", p))?;
    Ok((m.mtime(), m.mtime_nsec()))
}

/// Record the mtimes of `dir` and every directory under it.
fn record_dirs(dir: &Path, rel: &Path, mtimes: &mut Mtimes) -> Result<(), OciError> {
    mtimes.insert(rel.to_path_buf(), mtime_of(dir)?);
    for name in sorted_names(dir)? {
        let p = dir.join(&name);
        if std::fs::symlink_metadata(&p)
            .map_err(io("read", &p))?
            .is_dir()
        {
            record_dirs(&p, &rel.join(&name), mtimes)?;
        }
    }
    Ok(())
}

fn set_epoch(p: &Path) -> Result<(), OciError> {
    set_time(p, (0, 0))
}

fn set_time(p: &Path, (sec, nsec): (i64, i64)) -> Result<(), OciError> {
    let t = rustix::fs::Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| io("set the mtime of", p)(e.into()))
}

/// Lay the extracted layer `layer` over `root` (both real directories);
/// `rel` is where they are in the image, `explicit` the layer's own
/// directories.
fn merge(
    layer: &Path,
    root: &Path,
    rel: &Path,
    explicit: &HashSet<PathBuf>,
    mtimes: &mut Mtimes,
) -> Result<(), OciError> {
    let names = sorted_names(layer)?;
    // Opaque first: it hides only what lower layers put here.
    if names.iter().any(|n| n.as_bytes() == OPAQUE) {
        for n in sorted_names(root)? {
            remove_any(&root.join(n))?;
        }
    }
    for name in &names {
        let b = name.as_bytes();
        if b == OPAQUE {
            continue;
        }
        if let Some(hidden) = b.strip_prefix(WHITEOUT) {
            remove_any(&root.join(OsStr::from_bytes(hidden)))?;
        }
    }
    for name in &names {
        if name.as_bytes().starts_with(WHITEOUT) {
            continue;
        }
        let src = layer.join(name);
        let dst = root.join(name);
        let sm = std::fs::symlink_metadata(&src).map_err(io("read", &src))?;
        let dm = std::fs::symlink_metadata(&dst).ok();
        if sm.is_dir() && dm.as_ref().is_some_and(|m| m.is_dir()) {
            let r = rel.join(name);
            // Before merging: moving its children out changes it.
            let own = mtime_of(&src)?;
            merge(&src, &dst, &r, explicit, mtimes)?;
            if explicit.contains(&r) {
                copy_dir_meta(&src, &dst)?;
                mtimes.insert(r, own);
            }
            continue;
        }
        if dm.is_some() {
            remove_any(&dst)?;
        }
        if sm.is_dir() {
            record_dirs(&src, &rel.join(name), mtimes)?;
        }
        std::fs::rename(&src, &dst).map_err(io("move into place", &dst))?;
        if sm.is_dir() {
            strip_whiteouts(&dst)?;
        }
    }
    Ok(())
}

/// Apply the layer blobs `files` (bottom first) and commit the result as
/// template `meta.name`.
pub fn commit(
    store: &Store,
    files: &[PathBuf],
    meta: &TemplateMeta,
    shown: &str,
    reporter: &dyn Reporter,
) -> Result<String, OciError> {
    let root = store.staging_dir()?;
    let guard = super::Cleanup(Some(root.clone()));
    // The root as no layer describes it: root-owned, 0755, mtime 0.
    std::os::unix::fs::lchown(&root, Some(0), Some(0)).map_err(io("chown", &root))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))
            .map_err(io("chmod", &root))?;
    }
    let mut mtimes = Mtimes::new();
    mtimes.insert(PathBuf::new(), (0, 0));
    for (index, f) in files.iter().enumerate() {
        crate::cancel::check().map_err(|_| OciError::Cancelled)?;
        let dir = store.staging_dir()?;
        let _layer_guard = super::Cleanup(Some(dir.clone()));
        crate::export::read_cache(f, &dir).map_err(|source| OciError::Extract {
            reference: shown.to_string(),
            index,
            source,
        })?;
        let explicit = explicit_dirs(f)?;
        settle_implicit(&dir, Path::new(""), &explicit)?;
        let own = mtime_of(&dir)?;
        merge(&dir, &root, Path::new(""), &explicit, &mut mtimes)?;
        if explicit.contains(Path::new("")) {
            copy_dir_meta(&dir, &root)?;
            mtimes.insert(PathBuf::new(), own);
        }
        reporter.advance(Stage::Unpack, 1, &format!("layer {index}"));
    }
    // Moves and removals changed directory mtimes: put back the image's.
    for (rel, m) in &mtimes {
        let p = if rel.as_os_str().is_empty() {
            root.clone()
        } else {
            root.join(rel)
        };
        if std::fs::symlink_metadata(&p).is_ok_and(|md| md.is_dir()) {
            set_time(&p, *m)?;
        }
    }
    // Committing a staging tree hands its files to the store and removes it.
    let id = store.commit_split(&root, meta, &LayerSplit::default())?;
    drop(guard);
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteouts_and_opaque_directories() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let layer = t.path().join("layer");
        for d in [
            "root/etc/keep",
            "root/opq/old",
            "root/gone",
            "layer/etc",
            "layer/opq",
            "layer/new",
        ] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        std::fs::write(root.join("etc/a"), "a").unwrap();
        std::fs::write(root.join("etc/b"), "b").unwrap();
        std::fs::write(layer.join("etc/.wh.a"), "").unwrap();
        std::fs::write(layer.join("etc/c"), "c").unwrap();
        std::fs::write(layer.join(".wh.gone"), "").unwrap();
        std::fs::write(layer.join("opq/.wh..wh..opq"), "").unwrap();
        std::fs::write(layer.join("opq/fresh"), "f").unwrap();
        std::fs::write(layer.join("new/.wh.nothing"), "").unwrap();
        let explicit: HashSet<PathBuf> = ["etc", "opq", "new"].iter().map(PathBuf::from).collect();
        merge(&layer, &root, Path::new(""), &explicit, &mut Mtimes::new()).unwrap();
        assert!(!root.join("etc/a").exists());
        assert!(root.join("etc/b").exists() && root.join("etc/c").exists());
        assert!(root.join("etc/keep").is_dir());
        assert!(!root.join("gone").exists());
        assert!(!root.join("opq/old").exists());
        assert!(root.join("opq/fresh").exists());
        assert!(root.join("new").is_dir() && !root.join("new/.wh.nothing").exists());
        assert!(!root.join("etc/.wh.a").exists());
    }
}
