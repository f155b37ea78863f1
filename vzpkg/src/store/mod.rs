//! The template store: content-addressed objects, layers, templates and tags.
//!
//! On disk, under the store root:
//! - `objects/ab/<id>`: one file per distinct (content, mode, owner, mtime,
//!   xattrs); the id is SHA-256 over all of them (see `object.rs`).
//! - `layers/<id>/manifest` and `layers/<id>/tree/`: a canonical sorted
//!   manifest (id = its SHA-256; format in `manifest.rs`) and the read-only
//!   tree it describes, regular files being hardlinks into `objects/` (an
//!   overlayfs lower dir). So identical files share one inode there; the
//!   manifest records which names were real hardlinks in the committed tree,
//!   and only those are hardlinked in a checkout.
//! - `templates/<id>.json`: ordered layer ids (bottom first), packages,
//!   recipe, facts, creation time. The id covers layers, packages and recipe.
//! - `tags/<name>`: a template id.
//! - `tmp/<kind>-<pid>-…`: staging trees and writes in progress, removed once
//!   their process is gone.
//! - `partial/`: downloads an interrupted pull resumes (OCI blobs).
//! - `lock`: `flock`ed shared by commit, checkout and fsck, exclusive by gc.

mod fsck;
mod import;
mod layer;
mod manifest;
mod object;
mod template;
mod tree;

pub use fsck::{FsckReport, GcReport, Problem};
pub use import::StagedObjects;
pub use layer::LayerSplit;
pub use template::LayerSummary;

pub use manifest::{Entry, Kind, Meta};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use template::{check_tag, is_id, read_record, TemplateRecord};
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot {op} {path}: {source}; check that it is on a writable local file system with free space and that vzpkg runs as root")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is a {what}, which a template cannot hold; remove it from the tree and commit again")]
    Unsupported { path: PathBuf, what: &'static str },
    #[error(
        "the tree to commit, {path}, is not a directory; pass the root directory of the OS tree"
    )]
    NotADirectory { path: PathBuf },
    #[error("`{name}` cannot be a template name: {why}; use a name like `debian-12`")]
    BadTag { name: String, why: &'static str },
    #[error("no template is named `{name}` and no template id starts with it; known: {known} (see `vzpkg list`)")]
    NotFound { name: String, known: String },
    #[error("`{prefix}` starts several template ids ({matches}); give more digits or a name")]
    Ambiguous { prefix: String, matches: String },
    #[error("the store is damaged: {path}: {why}; run `vzpkg fsck` to see what else is affected, then rebuild those templates")]
    Corrupt { path: PathBuf, why: String },
    #[error("{path} is a layer manifest of format {found}, but this vzpkg reads format {expected}; rebuild the templates using it with `vzpkg create`, then `vzpkg gc` removes the old layers")]
    LayerFormat {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("tag `{name}` points at template {id}, which is not in the store; remove the tag or build the template again")]
    DanglingTag { name: String, id: String },
    #[error("checkout destination {path} exists and is not an empty directory; choose a new path or empty it first")]
    DestNotEmpty { path: PathBuf },
    #[error("{source_name}: layer {id} cannot be committed: {why}; the image is damaged or was not made for this store")]
    BadLayer {
        source_name: PathBuf,
        id: String,
        why: String,
    },
    #[error("internal error in the store: {what}; please report it")]
    Internal { what: &'static str },
    #[error(transparent)]
    Cancelled(#[from] crate::cancel::Cancelled),
}

/// What a build knows about the template it commits.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TemplateMeta {
    /// The tag to set (`debian-12`).
    pub name: String,
    /// The recipe's text as built.
    pub recipe: String,
    /// Every package: name, version, architecture, sha256 of the package file.
    pub packages: Vec<LockedPackage>,
    /// Free-form build facts (mirror, snapshot id, durations).
    pub facts: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub sha256: String,
}

/// The build fact naming the repositories a template was built from
/// without any signature check (comma-separated), on the recipe's request.
pub const UNVERIFIED_FACT: &str = "unverified";

/// A template as `list` shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TemplateInfo {
    pub id: String,
    pub names: Vec<String>,
    pub packages: usize,
    pub bytes: u64,
    pub created: i64,
    /// Repositories it was built from unverified; empty for a template
    /// whose every package was checked against a signed index or key.
    #[serde(default)]
    pub unverified: Vec<String>,
}

/// A template as `info` shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TemplateDetails {
    #[serde(flatten)]
    pub info: TemplateInfo,
    /// Bottom first.
    pub layers: Vec<LayerSummary>,
    pub package_list: Vec<LockedPackage>,
    pub recipe: String,
    pub facts: BTreeMap<String, String>,
}

pub struct Store {
    root: PathBuf,
}

/// Whether `name` can be a template name (a tag), with the reason if not.
pub fn check_name(name: &str) -> Result<(), StoreError> {
    check_tag(name)
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Holds `<root>/lock` until dropped.
struct Lock(#[allow(dead_code)] std::fs::File);

/// Removes directories under `tmp/` unless disarmed.
struct TmpGuard(Vec<PathBuf>);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Names in a directory (a missing directory has none).
fn dir_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("list", dir)(e)),
    };
    let mut out = Vec::new();
    for item in rd {
        let item = item.map_err(io("list", dir))?;
        // Every name the store writes is ASCII; anything else is not ours.
        if let Ok(name) = item.file_name().into_string() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

impl Store {
    /// Open (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        for sub in ["", "objects", "layers", "templates", "tags", "tmp"] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).map_err(io("create", &p))?;
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn objects(&self) -> PathBuf {
        self.root.join("objects")
    }
    fn layers(&self) -> PathBuf {
        self.root.join("layers")
    }
    fn templates(&self) -> PathBuf {
        self.root.join("templates")
    }
    fn tags(&self) -> PathBuf {
        self.root.join("tags")
    }
    fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    /// Compressed forms of layers made for pushes, named `LAYER.SETTINGS.*`
    /// so gc can drop those of layers it removes.
    pub fn blob_cache_dir(&self) -> PathBuf {
        self.root.join("oci-blobs")
    }
    /// Holders outside the store (VPSs) that keep a template alive.
    fn refs(&self) -> PathBuf {
        self.root.join("refs")
    }
    fn record_path(&self, id: &str) -> PathBuf {
        self.templates().join(format!("{id}.json"))
    }

    /// A fresh name under `tmp/`; the pid lets a later run tell junk from work
    /// in progress.
    fn tmp_name(&self, kind: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        self.tmp()
            .join(format!("{kind}-{}-{nanos}-{seq}", std::process::id()))
    }

    fn lock(&self, exclusive: bool) -> Result<Lock, StoreError> {
        let path = self.root.join("lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io("open", &path))?;
        let op = if exclusive {
            rustix::fs::FlockOperation::LockExclusive
        } else {
            rustix::fs::FlockOperation::LockShared
        };
        rustix::fs::flock(&f, op).map_err(|e| io("lock", &path)(e.into()))?;
        Ok(Lock(f))
    }

    /// Remove what interrupted runs left in `tmp/` (their process is gone).
    fn clean_tmp(&self) {
        let Ok(names) = dir_names(&self.tmp()) else {
            return;
        };
        let me = std::process::id();
        for name in names {
            let Some(pid) = name.split('-').nth(1).and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            let alive = pid as u32 == me
                || rustix::process::Pid::from_raw(pid).is_some_and(|p| {
                    rustix::process::test_kill_process(p) != Err(rustix::io::Errno::SRCH)
                });
            if !alive {
                let p = self.tmp().join(&name);
                let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
            }
        }
    }

    /// A fresh, empty staging directory on the store's file system (so commit
    /// can hardlink or rename from it).
    pub fn staging_dir(&self) -> Result<PathBuf, StoreError> {
        let p = self.tmp_name("staging");
        std::fs::create_dir(&p).map_err(io("create", &p))?;
        Ok(p)
    }

    /// Commit `tree` as a template and point `meta.name` at it. Returns the template id.
    ///
    /// A tree from `staging_dir` gives its files to the store (hardlinked into
    /// `objects/`, then the staging tree is removed); any other tree is copied
    /// and left as it is. On failure nothing is tagged or recorded.
    pub fn commit(&self, tree: &Path, meta: &TemplateMeta) -> Result<String, StoreError> {
        self.commit_split(tree, meta, &LayerSplit::default())
    }

    /// `commit` with an explicit layer split.
    pub fn commit_split(
        &self,
        tree: &Path,
        meta: &TemplateMeta,
        split: &LayerSplit,
    ) -> Result<String, StoreError> {
        check_tag(&meta.name)?;
        let md = std::fs::symlink_metadata(tree).map_err(io("read", tree))?;
        if !md.is_dir() {
            return Err(StoreError::NotADirectory {
                path: tree.to_path_buf(),
            });
        }
        let _lock = self.lock(false)?;
        self.clean_tmp();
        let tree = tree.canonicalize().map_err(io("resolve", tree))?;
        let tmp = self
            .tmp()
            .canonicalize()
            .map_err(io("resolve", &self.tmp()))?;
        let staged = tree.parent() == Some(tmp.as_path());

        let mut scanned = tree::scan(&tree)?;
        let objects = self.objects();
        // Hardlinked paths share an inode, so hash (or copy) each inode once.
        let mut first: HashMap<(u64, u64), usize> = HashMap::new();
        for (i, s) in scanned.iter().enumerate() {
            if matches!(s.entry.kind, Kind::File { .. }) {
                first.entry(s.inode).or_insert(i);
            }
        }
        let work: Vec<usize> = first.values().copied().collect();
        // A built tree's files become objects as they are: on disk first,
        // since a later commit trusts an object it finds. (Copies are
        // synced one by one.)
        if staged {
            self.sync(&objects)?;
        }
        let ids: Vec<((u64, u64), String, u64)> = work
            .par_iter()
            .map(|&i| {
                crate::cancel::check()?;
                let s = &scanned[i];
                if staged {
                    let (content, size) = object::hash_file(&s.disk)?;
                    let id = object::object_id(&content, &s.entry.meta);
                    object::link_in(&s.disk, &objects, &id)?;
                    Ok((s.inode, id, size))
                } else {
                    let tmpf = self.tmp_name("object");
                    let r =
                        object::copy_hashing(&s.disk, &tmpf, &s.entry.meta).and_then(|content| {
                            let id = object::object_id(&content, &s.entry.meta);
                            object::link_in(&tmpf, &objects, &id)?;
                            let size = std::fs::symlink_metadata(&tmpf)
                                .map_err(io("read", &tmpf))?
                                .len();
                            Ok((s.inode, id, size))
                        });
                    let _ = std::fs::remove_file(&tmpf);
                    r
                }
            })
            .collect::<Result<_, StoreError>>()?;
        let ids: HashMap<(u64, u64), (String, u64)> =
            ids.into_iter().map(|(k, id, n)| (k, (id, n))).collect();
        for s in &mut scanned {
            if let Kind::File { object, .. } = &mut s.entry.kind {
                let (id, size) = ids.get(&s.inode).ok_or(StoreError::Internal {
                    what: "a scanned file has no object",
                })?;
                *object = id.clone();
                // The size that was hashed, should the file have changed since lstat.
                s.entry.size = *size;
            }
        }
        // The links are made durable by the layers' sync.

        let entries: Vec<Entry> = scanned.into_iter().map(|s| s.entry).collect();
        let id = self.commit_layer_entries(layer::split(&entries, split), meta)?;
        if staged {
            // Committed: the files live on in objects/; a leftover is cleaned later.
            let _ = std::fs::remove_dir_all(&tree);
        }
        Ok(id)
    }

    /// Build the layers (bottom first) whose objects are in `objects/`,
    /// record the template and tag it `meta.name`. Layers already in the
    /// store are kept as they are. Returns the template id.
    fn commit_layer_entries(
        &self,
        layers: Vec<Vec<Entry>>,
        meta: &TemplateMeta,
    ) -> Result<String, StoreError> {
        let objects = self.objects();
        let mut built = TmpGuard(Vec::new());
        let mut built_ids = std::collections::HashSet::new();
        let mut summaries = Vec::new();
        for l in layers {
            crate::cancel::check()?;
            let bytes = manifest::encode(&l);
            let id = manifest::digest(&bytes);
            let (size, files) = layer::file_bytes(&l);
            summaries.push(LayerSummary {
                id: id.clone(),
                bytes: size,
                files,
                entries: l.iter().filter(|e| e.kind != Kind::Parent).count() as u64,
            });
            if self.layers().join(&id).exists() || !built_ids.insert(id.clone()) {
                continue;
            }
            let dir = self.tmp_name(&format!("layer.{id}"));
            built.0.push(dir.clone());
            layer::build(&dir, &l, &bytes, &objects)?;
        }
        crate::cancel::check()?;
        self.sync(&self.layers())?;
        for dir in std::mem::take(&mut built.0) {
            let id = dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("layer."))
                .and_then(|n| n.get(..64))
                .ok_or(StoreError::Internal {
                    what: "layer build directory without an id",
                })?
                .to_string();
            let dest = self.layers().join(&id);
            if let Err(e) = std::fs::rename(&dir, &dest) {
                // The same layer from a concurrent commit is just as good.
                let _ = std::fs::remove_dir_all(&dir);
                if !dest.exists() {
                    return Err(io("move a layer into", &dest)(e));
                }
            }
        }
        template::fsync_dir(&self.layers())?;

        let layer_ids: Vec<String> = summaries.iter().map(|s| s.id.clone()).collect();
        let id = template::template_id(&layer_ids);
        let record_path = self.record_path(&id);
        let existed = record_path.exists();
        // The id is the content; the record carries what was last known
        // about how it was made. An import (no recipe) keeps what a build
        // recorded; a build with another recipe or lock updates it.
        let previous = if existed {
            Some(read_record(&record_path)?)
        } else {
            None
        };
        let stale = previous.as_ref().is_some_and(|r| {
            !meta.recipe.is_empty() && (r.recipe != meta.recipe || r.packages != meta.packages)
        });
        if !existed || stale {
            let record = TemplateRecord {
                format: 1,
                id: id.clone(),
                layers: summaries,
                recipe: meta.recipe.clone(),
                packages: meta.packages.clone(),
                facts: meta.facts.clone(),
                created: previous.as_ref().map_or_else(now, |r| r.created),
            };
            let json = serde_json::to_vec_pretty(&record).map_err(|_| StoreError::Internal {
                what: "a template record does not serialise",
            })?;
            template::write_atomic(&self.tmp_name("template"), &record_path, &json)?;
        }
        let tag = self.tags().join(&meta.name);
        if let Err(e) =
            template::write_atomic(&self.tmp_name("tag"), &tag, format!("{id}\n").as_bytes())
        {
            if !existed {
                let _ = std::fs::remove_file(&record_path);
                let _ = template::fsync_dir(&self.templates());
            }
            return Err(e);
        }
        Ok(id)
    }

    /// One syncfs for everything written so far (cheaper than an fsync per file).
    fn sync(&self, dir: &Path) -> Result<(), StoreError> {
        let f = std::fs::File::open(dir).map_err(io("open", dir))?;
        rustix::fs::syncfs(&f).map_err(|e| io("sync the file system of", dir)(e.into()))
    }

    fn tag_map(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let mut out = BTreeMap::new();
        for name in dir_names(&self.tags())? {
            if check_tag(&name).is_err() {
                continue;
            }
            let p = self.tags().join(&name);
            if !std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
                continue;
            }
            let text = std::fs::read_to_string(&p).map_err(io("read", &p))?;
            out.insert(name, text.trim().to_string());
        }
        Ok(out)
    }

    fn template_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(dir_names(&self.templates())?
            .into_iter()
            .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
            .filter(|n| is_id(n))
            .collect())
    }

    fn info_of(&self, record: &TemplateRecord, tags: &BTreeMap<String, String>) -> TemplateInfo {
        TemplateInfo {
            id: record.id.clone(),
            names: tags
                .iter()
                .filter(|(_, id)| **id == record.id)
                .map(|(n, _)| n.clone())
                .collect(),
            packages: record.packages.len(),
            bytes: record.layers.iter().map(|l| l.bytes).sum(),
            created: record.created,
            unverified: record
                .facts
                .get(UNVERIFIED_FACT)
                .map(|v| v.split(',').map(String::from).collect())
                .unwrap_or_default(),
        }
    }

    pub fn list(&self) -> Result<Vec<TemplateInfo>, StoreError> {
        let tags = self.tag_map()?;
        let mut out = Vec::new();
        for id in self.template_ids()? {
            let record = read_record(&self.record_path(&id))?;
            out.push(self.info_of(&record, &tags));
        }
        out.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(out)
    }

    /// The template id a tag, a full id or a unique id prefix names.
    pub fn resolve(&self, name_or_id: &str) -> Result<String, StoreError> {
        let tags = self.tag_map()?;
        if let Some(id) = tags.get(name_or_id) {
            if !is_id(id) || !self.record_path(id).exists() {
                return Err(StoreError::DanglingTag {
                    name: name_or_id.to_string(),
                    id: id.clone(),
                });
            }
            return Ok(id.clone());
        }
        let ids = self.template_ids()?;
        let hex = !name_or_id.is_empty()
            && name_or_id.len() <= 64
            && name_or_id
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if hex {
            let matches: Vec<&String> = ids.iter().filter(|i| i.starts_with(name_or_id)).collect();
            match matches.len() {
                1 => return Ok(matches[0].clone()),
                0 => {}
                _ => {
                    return Err(StoreError::Ambiguous {
                        prefix: name_or_id.to_string(),
                        matches: matches
                            .iter()
                            .map(|m| m.get(..16).unwrap_or(m))
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
                }
            }
        }
        let mut known: Vec<String> = tags.keys().cloned().collect();
        known.extend(
            ids.iter()
                .filter(|i| !tags.values().any(|t| t == *i))
                .map(|i| i.get(..12).unwrap_or(i).to_string()),
        );
        Err(StoreError::NotFound {
            name: name_or_id.to_string(),
            known: if known.is_empty() {
                "none, the store is empty".into()
            } else {
                known.join(", ")
            },
        })
    }

    pub fn info(&self, name_or_id: &str) -> Result<TemplateDetails, StoreError> {
        let id = self.resolve(name_or_id)?;
        let record = read_record(&self.record_path(&id))?;
        let tags = self.tag_map()?;
        Ok(TemplateDetails {
            info: self.info_of(&record, &tags),
            layers: record.layers,
            package_list: record.packages,
            recipe: record.recipe,
            facts: record.facts,
        })
    }

    /// The layers' `tree/` directories, bottom first (overlayfs wants them
    /// top first in `lowerdir=`).
    pub fn layer_trees(&self, name_or_id: &str) -> Result<Vec<PathBuf>, StoreError> {
        let id = self.resolve(name_or_id)?;
        let record = read_record(&self.record_path(&id))?;
        record
            .layers
            .iter()
            .map(|l| {
                let t = self.layers().join(&l.id).join("tree");
                if t.is_dir() {
                    Ok(t)
                } else {
                    Err(StoreError::Corrupt {
                        path: t,
                        why: format!("layer of template {id} is missing"),
                    })
                }
            })
            .collect()
    }

    /// A layer's manifest bytes, checked against its id, and their path.
    fn manifest_bytes(&self, layer_id: &str) -> Result<(Vec<u8>, PathBuf), StoreError> {
        let p = self.layers().join(layer_id).join("manifest");
        let bytes = std::fs::read(&p).map_err(io("read", &p))?;
        if manifest::digest(&bytes) != layer_id {
            return Err(StoreError::Corrupt {
                path: p,
                why: "the manifest does not hash to its layer id".into(),
            });
        }
        Ok((bytes, p))
    }

    fn read_manifest(&self, layer_id: &str) -> Result<Vec<Entry>, StoreError> {
        let (bytes, p) = self.manifest_bytes(layer_id)?;
        manifest::decode(&bytes, &p)
    }

    /// Write a full tree of template `name_or_id` into `dest` (which must not exist or be empty).
    ///
    /// Files are copies, independent of the store and of each other: names
    /// share an inode only where the committed tree had a real hardlink
    /// within one layer, not because their content and metadata are equal.
    pub fn checkout(&self, name_or_id: &str, dest: &Path) -> Result<(), StoreError> {
        let _lock = self.lock(false)?;
        let id = self.resolve(name_or_id)?;
        let record = read_record(&self.record_path(&id))?;
        let mut merged: BTreeMap<Vec<u8>, Entry> = BTreeMap::new();
        for l in &record.layers {
            for e in self.read_manifest(&l.id)? {
                // The layer owning a directory decides its metadata; the
                // placeholders other layers carry for it don't.
                if e.kind == Kind::Parent && merged.contains_key(&e.path) {
                    continue;
                }
                merged.insert(e.path.clone(), e);
            }
        }
        let created = match std::fs::read_dir(dest) {
            Ok(mut rd) => {
                if rd.next().is_some() {
                    return Err(StoreError::DestNotEmpty {
                        path: dest.to_path_buf(),
                    });
                }
                false
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(dest).map_err(io("create", dest))?;
                true
            }
            Err(e) => {
                return Err(if dest.exists() && !dest.is_dir() {
                    StoreError::DestNotEmpty {
                        path: dest.to_path_buf(),
                    }
                } else {
                    io("read", dest)(e)
                })
            }
        };
        let r = self.write_checkout(&merged, dest);
        if r.is_err() {
            // Leave dest as it was found.
            if created {
                let _ = std::fs::remove_dir_all(dest);
            } else if let Ok(rd) = std::fs::read_dir(dest) {
                for item in rd.flatten() {
                    let p = item.path();
                    let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
                }
            }
        }
        r
    }

    fn write_checkout(
        &self,
        merged: &BTreeMap<Vec<u8>, Entry>,
        dest: &Path,
    ) -> Result<(), StoreError> {
        let objects = self.objects();
        // Files written as copies: path -> (object, where it was written).
        let mut copies: HashMap<&[u8], (&str, PathBuf)> = HashMap::new();
        for e in merged.values() {
            crate::cancel::check()?;
            let path = tree::disk_path(dest, e);
            match &e.kind {
                Kind::File {
                    object,
                    link: Some(first),
                } => {
                    // Path order puts the first name earlier, so it is written.
                    let target = match copies.get(&first[..]) {
                        Some((o, p)) if *o == object.as_str() => p,
                        _ => {
                            return Err(StoreError::Corrupt {
                                path: path.clone(),
                                why: format!(
                                    "{} is a hardlink of {}, which the template does not hold as the same file",
                                    String::from_utf8_lossy(&e.path),
                                    String::from_utf8_lossy(first)
                                ),
                            })
                        }
                    };
                    std::fs::hard_link(target, &path).map_err(io("create", &path))?;
                }
                Kind::File { object, link: None } => {
                    let src = object::object_path(&objects, object);
                    if !src.exists() {
                        return Err(StoreError::Corrupt {
                            path: src,
                            why: format!(
                                "object for {} is missing",
                                String::from_utf8_lossy(&e.path)
                            ),
                        });
                    }
                    // A fresh inode per name: equal files stay independent.
                    std::fs::copy(&src, &path).map_err(io("copy an object to", &path))?;
                    tree::apply_meta(&path, e, true)?;
                    copies.insert(&e.path, (object, path));
                }
                _ => {
                    tree::create_node(&path, e)?;
                    tree::apply_meta(&path, e, !e.is_dir())?;
                }
            }
        }
        for e in merged.values().rev().filter(|e| e.is_dir()) {
            tree::set_mtime(&tree::disk_path(dest, e), &e.meta)?;
        }
        Ok(())
    }

    /// Remove a tag; the template stays until `gc`.
    pub fn remove_tag(&self, name: &str) -> Result<(), StoreError> {
        check_tag(name)?;
        let p = self.tags().join(name);
        match std::fs::remove_file(&p) {
            Ok(()) => template::fsync_dir(&self.tags()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound {
                name: name.to_string(),
                known: {
                    let k: Vec<String> = self.tag_map()?.into_keys().collect();
                    if k.is_empty() {
                        "no tags".into()
                    } else {
                        k.join(", ")
                    }
                },
            }),
            Err(e) => Err(io("remove", &p)(e)),
        }
    }

    /// Record that `holder` (e.g. a VPS) uses template `id`, so `gc` keeps
    /// it even after its name is removed. `holder` is a file name.
    pub fn add_ref(&self, holder: &str, id: &str) -> Result<(), StoreError> {
        if !is_id(id) || check_tag(holder).is_err() {
            return Err(StoreError::Internal {
                what: "a template reference needs a template id and a plain holder name",
            });
        }
        let dir = self.refs();
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        template::write_atomic(
            &self.tmp_name("ref"),
            &dir.join(holder),
            format!("{id}\n").as_bytes(),
        )
    }

    /// Drop `holder`'s reference (nothing happens if there is none).
    pub fn remove_ref(&self, holder: &str) -> Result<(), StoreError> {
        let p = self.refs().join(holder);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &p)(e)),
        }
    }

    /// Template ids held by references.
    pub(crate) fn ref_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for name in dir_names(&self.refs())? {
            let p = self.refs().join(&name);
            let text = std::fs::read_to_string(&p).map_err(io("read", &p))?;
            out.push(text.trim().to_string());
        }
        Ok(out)
    }

    /// Delete templates no tag or reference reaches, layers no template
    /// reaches, objects no layer reaches, and leftovers in `tmp/`.
    pub fn gc(&self) -> Result<GcReport, StoreError> {
        let _lock = self.lock(true)?;
        self.clean_tmp();
        fsck::gc(self)
    }

    /// Re-hash every object and check every layer, template and tag.
    pub fn fsck(&self) -> Result<FsckReport, StoreError> {
        let _lock = self.lock(false)?;
        fsck::fsck(self)
    }
}

#[cfg(test)]
mod tests;
