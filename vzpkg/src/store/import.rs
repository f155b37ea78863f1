//! Templates that arrive as layers rather than as a tree (an OCI image's
//! layers): the caller reads each layer into entries and staged objects, and
//! `commit_layers` checks them, moves the objects in and records the template.
//! Until then nothing is in `objects/`, so a refused image leaves the store as
//! it was.

use super::manifest::{self, Entry, Kind, Meta};
use super::{io, object, template, Store, StoreError, TemplateMeta};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Objects written under `tmp/` until `Store::commit_layers` takes them;
/// removed on drop.
pub struct StagedObjects {
    dir: PathBuf,
    seq: AtomicU64,
    /// Object id -> the file written for it. Files keep the name they were
    /// written under: a rename per object to its id cost a tenth of a pull.
    files: Mutex<HashMap<String, PathBuf>>,
}

impl Drop for StagedObjects {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

thread_local! {
    static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl StagedObjects {
    /// The staged file of object `id`, or a path that does not exist.
    fn path(&self, id: &str) -> PathBuf {
        let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        files.get(id).cloned().unwrap_or_else(|| self.dir.join(id))
    }

    /// Write `content` as an object with metadata `m`; returns its id and size.
    /// Not fsync'd: `commit_layers` syncs the file system once.
    pub fn put(&self, content: &mut dyn Read, m: &Meta) -> Result<(String, u64), StoreError> {
        let tmp = self
            .dir
            .join(format!("w.{}", self.seq.fetch_add(1, Ordering::Relaxed)));
        let wr = |source| StoreError::Io {
            op: "write",
            path: tmp.clone(),
            source,
        };
        let r = (|| {
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(wr)?;
            let mut h = Sha256::new();
            let mut n = 0u64;
            BUF.with_borrow_mut(|buf| {
                // One buffer per thread: zeroing a fresh one per object cost
                // more than the writes for small files.
                buf.resize(256 * 1024, 0);
                loop {
                    let k = match content.read(buf) {
                        Ok(0) => break,
                        Ok(k) => k,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(wr(e)),
                    };
                    h.update(&buf[..k]);
                    out.write_all(&buf[..k]).map_err(wr)?;
                    n += k as u64;
                }
                Ok(())
            })?;
            super::tree::apply_meta_fd(&out, &tmp, m)?;
            let id = object::object_id(&hex::encode(h.finalize()), m);
            // A second file of the same object stays unnamed; it goes with
            // the directory.
            self.files
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(id.clone())
                .or_insert_with(|| tmp.clone());
            Ok((id, n))
        })();
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r
    }
}

/// Why a layer read from elsewhere cannot be committed, or None.
fn check_layer(entries: &[Entry]) -> Option<String> {
    let first = entries.first()?;
    if first.path != b"/" || !first.is_dir() {
        return Some("the layer does not start with the root directory".into());
    }
    let mut dirs: HashSet<&[u8]> = HashSet::new();
    dirs.insert(b"/");
    for e in &entries[1..] {
        let shown = String::from_utf8_lossy(&e.path);
        let Some(rel) = e.path.strip_prefix(b"/") else {
            return Some(format!("{shown} is not an absolute path"));
        };
        if rel
            .split(|&b| b == b'/')
            .any(|c| c.is_empty() || c == b"." || c == b"..")
        {
            return Some(format!(
                "{shown} has an empty, `.` or `..` component, which could lead outside the tree"
            ));
        }
        let parent = match e.path.iter().rposition(|&b| b == b'/') {
            Some(0) => &b"/"[..],
            Some(i) => &e.path[..i],
            None => return Some(format!("{shown} has no parent")),
        };
        if !dirs.contains(parent) {
            return Some(format!(
                "{shown} is not inside a directory of the layer (its parent is missing or not a directory)"
            ));
        }
        if e.is_dir() {
            dirs.insert(&e.path);
        }
    }
    None
}

impl Store {
    /// A fresh place to write objects for `commit_layers`.
    pub fn stage_objects(&self) -> Result<StagedObjects, StoreError> {
        self.clean_tmp();
        let dir = self.tmp_name("objects");
        std::fs::create_dir(&dir).map_err(io("create", &dir))?;
        Ok(StagedObjects {
            dir,
            seq: AtomicU64::new(0),
            files: Mutex::new(HashMap::new()),
        })
    }

    /// Whether layer `id` is in the store.
    pub fn has_layer(&self, id: &str) -> bool {
        template::is_id(id) && self.layers().join(id).join("manifest").is_file()
    }

    /// The entries of layer `id`, checked against its id.
    pub fn layer_entries(&self, id: &str) -> Result<Vec<Entry>, StoreError> {
        self.read_manifest(id)
    }

    /// Where object `id` lives (a regular file with the object's metadata).
    pub fn object_file(&self, id: &str) -> PathBuf {
        object::object_path(&self.objects(), id)
    }

    /// A directory for downloads that survive an interrupted run (resumed
    /// by the next one); not under `tmp/`, which is cleaned.
    pub fn partial_dir(&self) -> Result<PathBuf, StoreError> {
        let p = self.root.join("partial");
        std::fs::create_dir_all(&p).map_err(io("create", &p))?;
        Ok(p)
    }

    /// The layer id (manifest digest) `entries` would have.
    pub fn layer_id(entries: &[Entry]) -> String {
        manifest::digest(&manifest::encode(entries))
    }

    /// The template id of layers `layer_ids`, bottom first.
    pub fn template_id(layer_ids: &[String]) -> String {
        template::template_id(layer_ids)
    }

    /// Commit layers (bottom first) read from elsewhere: each is checked
    /// (root first, sorted, every path inside a directory of the layer, no
    /// `..`, hardlinks to earlier files), objects missing from the store are
    /// taken from `staged`, and the template is recorded and tagged.
    /// `what` names the source in errors.
    pub fn commit_layers(
        &self,
        staged: &StagedObjects,
        layers: Vec<Vec<Entry>>,
        meta: &TemplateMeta,
        what: &Path,
    ) -> Result<String, StoreError> {
        template::check_tag(&meta.name)?;
        let _lock = self.lock(false)?;
        for l in &layers {
            let bytes = manifest::encode(l);
            let why = check_layer(l).or_else(|| {
                manifest::decode(&bytes, what)
                    .err()
                    .map(|e| format!("its manifest does not read back: {e}"))
            });
            if let Some(why) = why {
                return Err(StoreError::BadLayer {
                    source_name: what.to_path_buf(),
                    id: manifest::digest(&bytes),
                    why,
                });
            }
        }
        let objects = self.objects();
        // Each object once: a second file with the same content and
        // metadata finds it moved in already.
        let mut seen = HashSet::new();
        let files: Vec<(&Vec<Entry>, &Entry, &String)> = layers
            .iter()
            .flat_map(|l| {
                l.iter().filter_map(move |e| match &e.kind {
                    Kind::File { object, link: None } => Some((l, e, object)),
                    _ => None,
                })
            })
            .filter(|f| seen.insert(f.2))
            .collect();
        // The staged files are on disk before any of them is an object:
        // after a crash, a later commit trusts an object it finds, so none
        // may be visible before its content is durable.
        self.sync(&objects)?;
        // Thousands of renames into as many directories: in parallel, the
        // file system's per-directory locks are rarely the same. `move_in`
        // skips an object the store has; one it lacks must have arrived.
        files.par_iter().try_for_each(|&(l, e, object)| {
            let src = staged.path(object);
            match object::move_in(&src, &objects, object) {
                Err(StoreError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && !src.exists() =>
                {
                    Err(StoreError::BadLayer {
                        source_name: what.to_path_buf(),
                        id: manifest::digest(&manifest::encode(l)),
                        why: format!(
                            "the content of {} did not arrive",
                            String::from_utf8_lossy(&e.path)
                        ),
                    })
                }
                r => r.map(|_| ()),
            }
        })?;
        // The layers' sync makes the renames durable with them.
        self.commit_layer_entries(layers, meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str, kind: Kind) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind,
            meta: Meta {
                mode: 0o755,
                ..Meta::default()
            },
            size: 0,
        }
    }

    #[test]
    fn layers_from_elsewhere_are_checked() {
        let link = Kind::Symlink {
            target: b"/etc".to_vec(),
        };
        assert_eq!(check_layer(&[e("/", Kind::Dir), e("/a", Kind::Dir)]), None);
        assert!(check_layer(&[e("/a", Kind::Dir)]).is_some());
        for bad in ["/a/../b", "/a//b", "a", "/a/./b"] {
            let l = [e("/", Kind::Dir), e("/a", Kind::Dir), e(bad, Kind::Fifo)];
            assert!(check_layer(&l).is_some(), "{bad}");
        }
        // Through a symlink, or without its parent.
        let through = [e("/", Kind::Dir), e("/a", link), e("/a/x", Kind::Fifo)];
        assert!(check_layer(&through).unwrap().contains("/a/x"));
        assert!(check_layer(&[e("/", Kind::Dir), e("/a/x", Kind::Fifo)]).is_some());
    }

    /// A file whose object is neither in the store nor staged is refused,
    /// naming it, and the store gets nothing.
    #[test]
    fn content_that_never_arrived_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let staged = store.stage_objects().unwrap();
        let file = Kind::File {
            object: "ab".repeat(32),
            link: None,
        };
        let layer = vec![e("/", Kind::Dir), e("/missing", file)];
        let meta = TemplateMeta {
            name: "t".into(),
            ..TemplateMeta::default()
        };
        let err = store
            .commit_layers(&staged, vec![layer], &meta, Path::new("test"))
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::BadLayer { why, .. } if why.contains("/missing did not arrive")),
            "{err}"
        );
        assert!(store.list().unwrap().is_empty());
    }
}
