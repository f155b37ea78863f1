//! Checking the store (`fsck`) and removing what nothing reaches (`gc`).

use super::manifest::Kind;
use super::object::{hash_file, object_id, object_path};
use super::template::{is_id, read_record, template_id};
use super::tree::{meta_of, read_xattrs};
use super::{dir_names, io, Store, StoreError};
use rayon::prelude::*;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One thing `fsck` found wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub path: PathBuf,
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.what)
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FsckReport {
    pub objects: usize,
    pub layers: usize,
    pub templates: usize,
    pub tags: usize,
    pub problems: Vec<Problem>,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GcReport {
    pub templates: usize,
    pub layers: usize,
    pub objects: usize,
    /// Bytes of the objects removed whose last link was the store's.
    pub bytes: u64,
    /// Files of the push blob cache whose layer is gone.
    pub blobs: usize,
}

fn object_files(store: &Store) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let objects = store.objects();
    let mut out = Vec::new();
    for fan in dir_names(&objects)? {
        let dir = objects.join(&fan);
        if !dir.is_dir() {
            continue;
        }
        for name in dir_names(&dir)? {
            let p = dir.join(&name);
            out.push((name, p));
        }
    }
    Ok(out)
}

pub fn gc(store: &Store) -> Result<GcReport, StoreError> {
    let mut report = GcReport::default();
    // Names and the VPSs still running on a template both keep it.
    let mut reached: HashSet<String> = store.tag_map()?.into_values().collect();
    reached.extend(store.ref_ids()?);
    // Templates, then layers, then objects: stopping anywhere leaves only
    // unreferenced things behind, never a reference to something removed.
    let mut keep_layers = HashSet::new();
    for id in store.template_ids()? {
        let p = store.record_path(&id);
        if reached.contains(&id) {
            for l in read_record(&p)?.layers {
                keep_layers.insert(l.id);
            }
        } else {
            std::fs::remove_file(&p).map_err(io("remove", &p))?;
            report.templates += 1;
        }
    }
    let mut keep_objects = HashSet::new();
    for id in dir_names(&store.layers())? {
        let p = store.layers().join(&id);
        if keep_layers.contains(&id) {
            // An unreadable manifest stops gc: its objects must not go. Layers
            // of an older format still name their objects.
            let (bytes, mpath) = store.manifest_bytes(&id)?;
            for e in super::manifest::decode_any(&bytes, &mpath)?.1 {
                if let Kind::File { object, .. } = e.kind {
                    keep_objects.insert(object);
                }
            }
        } else {
            std::fs::remove_dir_all(&p).map_err(io("remove", &p))?;
            report.layers += 1;
        }
    }
    // A cached blob is named after its layer: `LAYER.SETTINGS.json|blob`.
    let cache = store.blob_cache_dir();
    for name in dir_names(&cache)? {
        let layer = name.split('.').next().unwrap_or("");
        if keep_layers.contains(layer) {
            continue;
        }
        let p = cache.join(&name);
        std::fs::remove_file(&p).map_err(io("remove", &p))?;
        report.blobs += 1;
    }
    for (name, p) in object_files(store)? {
        if keep_objects.contains(&name) {
            continue;
        }
        let md = std::fs::symlink_metadata(&p).map_err(io("read", &p))?;
        std::fs::remove_file(&p).map_err(io("remove", &p))?;
        report.objects += 1;
        if md.nlink() == 1 {
            report.bytes += md.len();
        }
    }
    Ok(report)
}

fn check_object(name: &str, p: &Path) -> Option<Problem> {
    let problem = |what: String| {
        Some(Problem {
            path: p.to_path_buf(),
            what,
        })
    };
    let md = match std::fs::symlink_metadata(p) {
        Ok(md) => md,
        Err(e) => return problem(format!("cannot read: {e}")),
    };
    if !md.is_file() {
        return problem("is not a regular file".into());
    }
    let content = match hash_file(p) {
        Ok((c, _)) => c,
        Err(e) => return problem(e.to_string()),
    };
    let xattrs = match read_xattrs(p) {
        Ok(x) => x,
        Err(e) => return problem(e.to_string()),
    };
    let actual = object_id(&content, &meta_of(&md, xattrs));
    if actual != name {
        return problem(format!(
            "content or metadata changed: expected object {name}, found {actual}"
        ));
    }
    None
}

pub fn fsck(store: &Store) -> Result<FsckReport, StoreError> {
    let mut report = FsckReport::default();
    let objects = object_files(store)?;
    report.objects = objects.len();
    let mut problems: Vec<Problem> = objects
        .par_iter()
        .filter_map(|(name, p)| check_object(name, p))
        .collect();

    let mut layer_ids = HashSet::new();
    for id in dir_names(&store.layers())? {
        report.layers += 1;
        layer_ids.insert(id.clone());
        let tree = store.layers().join(&id).join("tree");
        let entries = match store.read_manifest(&id) {
            Ok(e) => e,
            Err(e) => {
                problems.push(Problem {
                    path: store.layers().join(&id),
                    what: e.to_string(),
                });
                continue;
            }
        };
        for e in entries {
            let path = super::tree::disk_path(&tree, &e);
            let mut problem = |what: String| {
                problems.push(Problem {
                    path: path.clone(),
                    what,
                })
            };
            let md = match std::fs::symlink_metadata(&path) {
                Ok(md) => md,
                Err(err) => {
                    problem(format!("manifest entry missing from the tree: {err}"));
                    continue;
                }
            };
            let m = &e.meta;
            if let Kind::File { object, .. } = &e.kind {
                let op = object_path(&store.objects(), object);
                match std::fs::symlink_metadata(&op) {
                    Err(_) => problem(format!("object {object} is missing")),
                    Ok(om) => {
                        if (om.dev(), om.ino()) != (md.dev(), md.ino()) {
                            problem(format!("is not a hardlink of object {object}"));
                        }
                        let meta_ok = om.mode() & 0o7777 == m.mode
                            && om.uid() == m.uid
                            && om.gid() == m.gid
                            && om.mtime() == m.mtime
                            && om.len() == e.size;
                        if !meta_ok {
                            problem(format!(
                                "object {object} has mode {:o} owner {}:{} mtime {} size {}, the manifest says {:o} {}:{} {} {}",
                                om.mode() & 0o7777, om.uid(), om.gid(), om.mtime(), om.len(),
                                m.mode, m.uid, m.gid, m.mtime, e.size
                            ));
                        }
                    }
                }
            } else {
                let ft = md.file_type();
                use std::os::unix::fs::FileTypeExt;
                let kind_ok = match e.kind {
                    Kind::Dir | Kind::Parent => ft.is_dir(),
                    Kind::Symlink { .. } => ft.is_symlink(),
                    Kind::Char { .. } => ft.is_char_device(),
                    Kind::Block { .. } => ft.is_block_device(),
                    Kind::Fifo => ft.is_fifo(),
                    Kind::File { .. } => true,
                };
                let perm_ok = ft.is_symlink() || md.mode() & 0o7777 == m.mode;
                if !kind_ok || !perm_ok || md.uid() != m.uid || md.gid() != m.gid {
                    problem(format!(
                        "does not match its manifest entry (kind {:?}, mode {:o}, owner {}:{})",
                        e.kind, m.mode, m.uid, m.gid
                    ));
                }
            }
        }
    }

    let mut template_ids = HashSet::new();
    for id in store.template_ids()? {
        report.templates += 1;
        template_ids.insert(id.clone());
        let p = store.record_path(&id);
        let record = match read_record(&p) {
            Ok(r) => r,
            Err(e) => {
                problems.push(Problem {
                    path: p,
                    what: e.to_string(),
                });
                continue;
            }
        };
        let layers: Vec<String> = record.layers.iter().map(|l| l.id.clone()).collect();
        let actual = template_id(&layers);
        if actual != id || record.id != id {
            problems.push(Problem {
                path: p.clone(),
                what: format!("record hashes to {actual}, not to its name"),
            });
        }
        for l in layers.iter().filter(|l| !layer_ids.contains(*l)) {
            problems.push(Problem {
                path: p.clone(),
                what: format!("layer {l} is missing"),
            });
        }
    }

    for (name, id) in store.tag_map()? {
        report.tags += 1;
        if !is_id(&id) || !template_ids.contains(&id) {
            problems.push(Problem {
                path: store.tags().join(&name),
                what: format!("points at {id}, which is not a template in the store"),
            });
        }
    }
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    report.problems = problems;
    Ok(report)
}
