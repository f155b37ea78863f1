//! `.deb` files (an `ar` archive of `debian-binary`, `control.tar.*`,
//! `data.tar.*`) unpacked into a tree, and the dpkg database written as dpkg
//! would after `dpkg --unpack`.

use crate::cancel::Cancelled;
use crate::compress::{self, Compression, Integrity};
use crate::control::{parse_paragraphs, Paragraph};
use crate::package::DebPackage;
use crate::progress::{Reporter, Stage};
use crate::unpack::ar::{ArError, ArReader};
use crate::unpack::tree::{DirOutcome, Meta, NodeKind, Tree, TreeError};
use md5::{Digest, Md5};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use thiserror::Error;

/// Control members are read into memory; no real package comes near this.
const CONTROL_LIMIT: u64 = 64 << 20;
const READ_BUF: usize = 256 << 10;
/// Where dpkg keeps its database, relative to the root.
pub const DPKG_DIR: &str = "var/lib/dpkg";

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UnpackError {
    #[error("{package}: cannot read {deb}: {source}; check that the package cache is readable or fetch the package again")]
    Open {
        package: String,
        deb: PathBuf,
        source: io::Error,
    },
    #[error("{package}: {deb} is not a valid .deb: {source}; delete it from the package cache so it is downloaded again")]
    NotADeb {
        package: String,
        deb: PathBuf,
        source: ArError,
    },
    #[error("{package}: {deb} has package format {found:?} where 2.x is expected; it was made for another dpkg, pick a suite this tool supports")]
    FormatVersion {
        package: String,
        deb: PathBuf,
        found: String,
    },
    #[error("{package}: {deb} has no {member} member; the file is incomplete or not a binary package, delete it from the package cache so it is downloaded again")]
    MissingMember {
        package: String,
        deb: PathBuf,
        member: &'static str,
    },
    #[error("{package}: {deb}: member {member} uses an unknown compression (supported: none, gzip, xz, zstd, bzip2, lzma); this .deb needs a newer vzpkg")]
    UnknownCompression {
        package: String,
        deb: PathBuf,
        member: String,
    },
    #[error("{package}: {deb}: member {member} is corrupt or truncated: {source}; delete the file from the package cache so it is downloaded again")]
    Corrupt {
        package: String,
        deb: PathBuf,
        member: String,
        source: io::Error,
    },
    #[error("{package}: {deb}: bad control file: {detail}; the package is malformed, report it to its maintainer")]
    BadControl {
        package: String,
        deb: PathBuf,
        detail: String,
    },
    #[error("{package}: {deb}: entry {path:?} is a tar {kind} entry, which a package cannot contain; the package is malformed, report it to its maintainer")]
    UnsupportedEntry {
        package: String,
        deb: PathBuf,
        path: String,
        kind: String,
    },
    #[error("{package} ({deb}): {source}")]
    Entry {
        package: String,
        deb: PathBuf,
        source: TreeError,
    },
    #[error("preparing the target tree {root}: {source}")]
    Tree { root: PathBuf, source: TreeError },
    #[error("writing the dpkg database: {op} {path}: {source}; check free space and permissions of the target directory")]
    Database {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{path}: the existing dpkg status file cannot be parsed ({detail}); unpack into an empty staging directory")]
    BadStatus { path: PathBuf, detail: String },
    #[error("unpacking was interrupted")]
    Cancelled(#[from] Cancelled),
}

impl UnpackError {
    /// The filesystem ran out of space somewhere below this error: the fix is
    /// room on the staging filesystem, not a new download.
    pub fn is_disk_full(&self) -> bool {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cur {
            if let Some(io) = e.downcast_ref::<io::Error>() {
                if io.raw_os_error() == Some(libc::ENOSPC)
                    || io.kind() == io::ErrorKind::StorageFull
                {
                    return true;
                }
            }
            cur = e.source();
        }
        false
    }
}

#[derive(Debug, Clone, Copy)]
pub struct UnpackOptions {
    /// Create `/bin`, `/sbin`, `/lib*` as symlinks into `/usr` first (merged /usr).
    pub merged_usr: bool,
}

/// The stem of a package's files in `var/lib/dpkg/info`: `PKG`, or
/// `PKG:ARCH` for `Multi-Arch: same` packages.
pub fn info_name(pkg: &DebPackage) -> String {
    let same = pkg
        .field("Multi-Arch")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("same"));
    if same {
        format!("{}:{}", pkg.name, pkg.architecture)
    } else {
        pkg.name.clone()
    }
}

/// What one unpacked package leaves for the serial steps after the parallel one.
struct Unpacked {
    status: Paragraph,
    /// Directories of the archive (real root-relative path, metadata), archive order.
    dirs: Vec<(Vec<u8>, Meta)>,
}

/// Unpack every `(package, path of its verified .deb)` into `root` and write
/// `/var/lib/dpkg` (status with `install ok unpacked`, info/*).
pub fn unpack_all(
    root: &Path,
    debs: &[(DebPackage, PathBuf)],
    options: UnpackOptions,
    reporter: &dyn Reporter,
) -> Result<(), UnpackError> {
    let tree = Tree::open(root).map_err(|source| UnpackError::Tree {
        root: root.to_path_buf(),
        source,
    })?;
    let tree_err = |source| UnpackError::Tree {
        root: root.to_path_buf(),
        source,
    };
    if options.merged_usr {
        let arch = debs
            .iter()
            .map(|(p, _)| p.architecture.as_str())
            .find(|a| *a != "all")
            .unwrap_or("amd64");
        merge_usr(&tree, arch).map_err(tree_err)?;
    }
    let info_rel = tree
        .create_dirs(&format!("{DPKG_DIR}/info"))
        .map_err(tree_err)?;
    let info_dir = root.join(Path::new(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&info_rel),
    ));

    // Biggest first: xz is one thread per stream, so the long ones must not
    // start last.
    let mut order: Vec<usize> = (0..debs.len()).collect();
    let size_of = |i: usize| {
        std::fs::metadata(&debs[i].1)
            .map(|m| m.len())
            .unwrap_or(debs[i].0.size)
    };
    let sizes: Vec<u64> = (0..debs.len()).map(size_of).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));

    reporter.stage_start(Stage::Unpack, debs.len() as u64);
    let results: Vec<Mutex<Option<Result<Unpacked, UnpackError>>>> =
        debs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let workers = rayon::current_num_threads().clamp(1, debs.len().max(1));
    rayon::scope(|s| {
        for _ in 0..workers {
            s.spawn(|_| loop {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = order.get(k) else { break };
                let (pkg, deb) = &debs[i];
                let r = match crate::cancel::check() {
                    Err(c) => Err(UnpackError::from(c)),
                    Ok(()) => unpack_one(&tree, pkg, deb, &info_dir),
                };
                if r.is_err() {
                    failed.store(true, Ordering::Relaxed);
                } else {
                    reporter.advance(Stage::Unpack, 1, &pkg.name);
                }
                if let Ok(mut slot) = results[i].lock() {
                    *slot = Some(r);
                }
            });
        }
    });
    let mut done = Vec::with_capacity(debs.len());
    let mut first_err = None;
    for slot in results {
        match slot.into_inner().ok().flatten() {
            Some(Ok(u)) => done.push(u),
            Some(Err(e)) => {
                // A cancel is reported only if nothing real went wrong.
                let replace = match &first_err {
                    None => true,
                    Some(UnpackError::Cancelled(_)) => !matches!(e, UnpackError::Cancelled(_)),
                    Some(_) => false,
                };
                if replace {
                    first_err = Some(e);
                }
            }
            None => {}
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    if done.len() != debs.len() {
        // Only reachable if a worker stopped without a result: treat as cancel.
        return Err(UnpackError::Cancelled(Cancelled));
    }

    write_database(root, &info_rel, &done)?;

    // Directory metadata last and in package order, so it is the same
    // whatever order the workers ran in and no later file creation bumps an
    // mtime.
    for (u, (pkg, deb)) in done.iter().zip(debs) {
        for (rel, meta) in &u.dirs {
            tree.apply_dir_meta(rel, meta)
                .map_err(|source| UnpackError::Entry {
                    package: pkg.id(),
                    deb: deb.clone(),
                    source,
                })?;
        }
    }
    reporter.stage_end(Stage::Unpack);
    Ok(())
}

/// `bin -> usr/bin` and friends, as debootstrap makes them for merged /usr.
fn merge_usr(tree: &Tree, arch: &str) -> Result<(), TreeError> {
    let mut dirs = vec!["bin", "sbin", "lib"];
    if arch == "amd64" {
        dirs.push("lib64");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let meta = Meta {
        mode: 0o777,
        uid: 0,
        gid: 0,
        mtime: now,
        xattrs: Vec::new(),
    };
    let mut w = tree.writer();
    for d in dirs {
        let target = format!("usr/{d}");
        tree.create_dirs(&target)?;
        let existing = std::fs::read_link(tree.root().join(d)).ok();
        if existing.as_deref() != Some(Path::new(&target)) {
            w.symlink(d.as_bytes(), target.as_bytes(), &meta)?;
        }
    }
    Ok(())
}

/// A decompressing reader for a `control.tar*` / `data.tar*` member.
fn decoder<'a>(
    r: impl Read + 'a,
    member: &str,
    base: &str,
) -> Result<Box<dyn Read + 'a>, Option<io::Error>> {
    let buffered = BufReader::with_capacity(READ_BUF, r);
    let suffix = member.strip_prefix(base).unwrap_or("?");
    let kind = Compression::from_suffix(suffix).ok_or(None)?;
    // The whole .deb was checked against the signed index's SHA-256 before
    // unpacking: xz's own CRC64 would only check it again.
    compress::reader(kind, buffered, Integrity::Prechecked).map_err(Some)
}

/// Everything about one package that errors need.
struct Ctx<'a> {
    pkg: &'a DebPackage,
    deb: &'a Path,
}

impl Ctx<'_> {
    fn id(&self) -> String {
        self.pkg.id()
    }
    fn corrupt(&self, member: &str, source: io::Error) -> UnpackError {
        UnpackError::Corrupt {
            package: self.id(),
            deb: self.deb.to_path_buf(),
            member: member.to_string(),
            source,
        }
    }
    fn not_deb(&self, source: ArError) -> UnpackError {
        match source {
            // A short read inside a member is a truncated file, not a wrong format.
            ArError::Io(e) => self.corrupt("(ar archive)", e),
            source => UnpackError::NotADeb {
                package: self.id(),
                deb: self.deb.to_path_buf(),
                source,
            },
        }
    }
    fn missing(&self, member: &'static str) -> UnpackError {
        UnpackError::MissingMember {
            package: self.id(),
            deb: self.deb.to_path_buf(),
            member,
        }
    }
    fn entry(&self, member: &str, source: TreeError) -> UnpackError {
        match source {
            TreeError::Read { source, .. } => self.corrupt(member, source),
            source => UnpackError::Entry {
                package: self.id(),
                deb: self.deb.to_path_buf(),
                source,
            },
        }
    }
    fn db(&self, op: &'static str, path: PathBuf, source: io::Error) -> UnpackError {
        UnpackError::Database { op, path, source }
    }
}

/// A member of the control tarball: file name, contents, mode.
struct ControlMember {
    name: String,
    data: Vec<u8>,
    mode: u32,
}

fn unpack_one(
    tree: &Tree,
    pkg: &DebPackage,
    deb: &Path,
    info_dir: &Path,
) -> Result<Unpacked, UnpackError> {
    let cx = Ctx { pkg, deb };
    let file = File::open(deb).map_err(|source| UnpackError::Open {
        package: pkg.id(),
        deb: deb.to_path_buf(),
        source,
    })?;
    let mut ar = ArReader::new(file).map_err(|e| cx.not_deb(e))?;

    match ar.next_member().map_err(|e| cx.not_deb(e))? {
        Some(h) if h.name == "debian-binary" => {
            let mut v = Vec::new();
            (&mut ar)
                .take(64)
                .read_to_end(&mut v)
                .map_err(|e| cx.corrupt("debian-binary", e))?;
            let found = String::from_utf8_lossy(&v).trim().to_string();
            if !found.starts_with("2.") {
                return Err(UnpackError::FormatVersion {
                    package: pkg.id(),
                    deb: deb.to_path_buf(),
                    found,
                });
            }
        }
        _ => return Err(cx.missing("debian-binary")),
    }

    let mut control: Option<Vec<ControlMember>> = None;
    let mut data: Option<DataResult> = None;
    while let Some(h) = ar.next_member().map_err(|e| cx.not_deb(e))? {
        if h.name.starts_with("control.tar") && control.is_none() {
            control = Some(read_control(&mut ar, &h.name, &cx)?);
        } else if h.name.starts_with("data.tar") {
            let Some(ctrl) = control.as_ref() else {
                return Err(cx.missing("control.tar"));
            };
            data = Some(unpack_data(tree, &mut ar, &h.name, ctrl, &cx)?);
            break;
        }
        // Members starting with `_` are extensions dpkg ignores too.
    }
    let control = control.ok_or_else(|| cx.missing("control.tar"))?;
    let data = data.ok_or_else(|| cx.missing("data.tar"))?;

    let Some(ctrl_text) = control.iter().find(|m| m.name == "control") else {
        return Err(cx.missing("control.tar/control"));
    };
    let bad_control = |detail: String| UnpackError::BadControl {
        package: pkg.id(),
        deb: deb.to_path_buf(),
        detail,
    };
    let text = std::str::from_utf8(&ctrl_text.data).map_err(|_| bad_control("not UTF-8".into()))?;
    let mut para = parse_paragraphs(text)
        .map_err(|e| bad_control(e.to_string()))?
        .into_iter()
        .next()
        .ok_or_else(|| bad_control("empty".into()))?;
    let Some(pos) = para
        .fields
        .iter()
        .position(|(k, _)| k.eq_ignore_ascii_case("Package"))
    else {
        return Err(bad_control("no Package field".into()));
    };
    para.remove("Status");
    para.fields
        .insert(pos + 1, ("Status".into(), "install ok unpacked".into()));
    para.remove("Conffiles");
    if !data.conffiles.is_empty() {
        let mut v = String::new();
        for (path, md5) in &data.conffiles {
            v.push('\n');
            v.push_str(path);
            v.push(' ');
            v.push_str(md5);
        }
        para.set("Conffiles", v);
    }

    // info/PKG.*: the control members as they are, the list, the md5sums.
    let stem = info_name(pkg);
    let write = |suffix: &str, bytes: &[u8], mode: u32| -> Result<(), UnpackError> {
        let p = info_dir.join(format!("{stem}.{suffix}"));
        std::fs::write(&p, bytes).map_err(|e| cx.db("write", p.clone(), e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| cx.db("chmod", p.clone(), e))
    };
    let mut have_md5sums = false;
    for m in &control {
        if m.name == "control" {
            continue;
        }
        have_md5sums |= m.name == "md5sums";
        write(&m.name, &m.data, m.mode & 0o7777)?;
    }
    if !have_md5sums {
        write("md5sums", &data.md5sums, 0o644)?;
    }
    write("list", &data.list, 0o644)?;

    Ok(Unpacked {
        status: para,
        dirs: data.dirs,
    })
}

fn read_control(
    r: &mut dyn Read,
    member: &str,
    cx: &Ctx<'_>,
) -> Result<Vec<ControlMember>, UnpackError> {
    let dec = decoder(r, member, "control.tar").map_err(|e| match e {
        Some(e) => cx.corrupt(member, e),
        None => UnpackError::UnknownCompression {
            package: cx.id(),
            deb: cx.deb.to_path_buf(),
            member: member.to_string(),
        },
    })?;
    let mut archive = tar::Archive::new(dec.take(CONTROL_LIMIT));
    let mut out = Vec::new();
    let entries = archive.entries().map_err(|e| cx.corrupt(member, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| cx.corrupt(member, e))?;
        if !matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        ) {
            continue;
        }
        let path = entry.path_bytes().into_owned();
        let name = path.strip_prefix(b"./").unwrap_or(&path);
        // Only plain names become info/PKG.NAME files.
        let plain = !name.is_empty()
            && name
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(b))
            && name != b"."
            && name != b"..";
        if !plain {
            continue;
        }
        let mode = entry.header().mode().map_err(|e| cx.corrupt(member, e))?;
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| cx.corrupt(member, e))?;
        out.push(ControlMember {
            name: String::from_utf8_lossy(name).into_owned(),
            data,
            mode,
        });
    }
    Ok(out)
}

struct DataResult {
    /// `PKG.list`: one path a line, as dpkg writes it.
    list: Vec<u8>,
    /// Computed `md5sums` (used only when the control tarball has none).
    md5sums: Vec<u8>,
    /// (path, md5) per conffile, in `conffiles` order.
    conffiles: Vec<(String, String)>,
    dirs: Vec<(Vec<u8>, Meta)>,
}

/// `./usr/bin/` → `/usr/bin`, `./` → `/.`
fn list_path(path: &[u8]) -> Vec<u8> {
    let p = path.strip_prefix(b".").unwrap_or(path);
    let p = p.strip_prefix(b"/").unwrap_or(p);
    let p = p.strip_suffix(b"/").unwrap_or(p);
    if p.is_empty() {
        return b"/.".to_vec();
    }
    let mut v = Vec::with_capacity(p.len() + 1);
    v.push(b'/');
    v.extend_from_slice(p);
    v
}

fn unpack_data(
    tree: &Tree,
    r: &mut dyn Read,
    member: &str,
    control: &[ControlMember],
    cx: &Ctx<'_>,
) -> Result<DataResult, UnpackError> {
    let corrupt = |e| cx.corrupt(member, e);
    let dec = decoder(r, member, "data.tar").map_err(|e| match e {
        Some(e) => cx.corrupt(member, e),
        None => UnpackError::UnknownCompression {
            package: cx.id(),
            deb: cx.deb.to_path_buf(),
            member: member.to_string(),
        },
    })?;
    let compute_all = !control.iter().any(|m| m.name == "md5sums");
    let conffile_list: Vec<String> = control
        .iter()
        .find(|m| m.name == "conffiles")
        .map(|m| {
            String::from_utf8_lossy(&m.data)
                .lines()
                // dpkg ≥ 1.20 allows flags before the path (`remove-on-upgrade /etc/x`).
                .filter_map(|l| l.split_whitespace().last())
                .filter(|p| p.starts_with('/'))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let conf_set: HashSet<&[u8]> = conffile_list.iter().map(|s| s.as_bytes()).collect();

    let mut out = DataResult {
        list: Vec::new(),
        md5sums: Vec::new(),
        conffiles: Vec::new(),
        dirs: Vec::new(),
    };
    let mut sums: HashMap<Vec<u8>, String> = HashMap::new();
    let mut w = tree.writer();
    let mut archive = tar::Archive::new(dec);
    {
        let entries = archive.entries().map_err(corrupt)?;
        for entry in entries {
            let mut entry = entry.map_err(corrupt)?;
            let path = entry.path_bytes().into_owned();
            let h = entry.header();
            let kind = h.entry_type();
            let mut meta = Meta {
                mode: h.mode().map_err(corrupt)?,
                uid: u32::try_from(h.uid().map_err(corrupt)?).unwrap_or(u32::MAX),
                gid: u32::try_from(h.gid().map_err(corrupt)?).unwrap_or(u32::MAX),
                mtime: i64::try_from(h.mtime().map_err(corrupt)?).unwrap_or(0),
                xattrs: Vec::new(),
            };
            // Only device entries have meaningful (and always filled) numbers.
            let dev = if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
                (
                    h.device_major().map_err(corrupt)?.unwrap_or(0),
                    h.device_minor().map_err(corrupt)?.unwrap_or(0),
                )
            } else {
                (0, 0)
            };
            let link = entry.link_name_bytes().map(|l| l.into_owned());
            if let Some(exts) = entry.pax_extensions().map_err(corrupt)? {
                for ext in exts {
                    let ext = ext.map_err(corrupt)?;
                    let Ok(key) = ext.key() else { continue };
                    let val = ext.value_bytes();
                    let num = || {
                        std::str::from_utf8(val)
                            .ok()
                            .and_then(|v| v.split('.').next()?.parse::<i64>().ok())
                    };
                    if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                        meta.xattrs.push((name.to_string(), val.to_vec()));
                    } else if key == "uid" {
                        meta.uid = num()
                            .and_then(|v| u32::try_from(v).ok())
                            .unwrap_or(meta.uid);
                    } else if key == "gid" {
                        meta.gid = num()
                            .and_then(|v| u32::try_from(v).ok())
                            .unwrap_or(meta.gid);
                    } else if key == "mtime" {
                        meta.mtime = num().unwrap_or(meta.mtime);
                    }
                }
            }
            let lp = list_path(&path);
            let shown = || String::from_utf8_lossy(&path).into_owned();
            let md5_path = || lp.strip_prefix(b"/").unwrap_or(&lp).to_vec();
            match kind {
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse => {
                    let is_conf = conf_set.contains(lp.as_slice());
                    let mut hasher = (compute_all || is_conf).then(Md5::new);
                    let mut feed = |b: &[u8]| {
                        if let Some(h) = hasher.as_mut() {
                            h.update(b);
                        }
                    };
                    w.file(&path, &meta, &mut entry, Some(&mut feed))
                        .map_err(|e| cx.entry(member, e))?;
                    if let Some(h) = hasher {
                        let sum = hex::encode(h.finalize());
                        sums.insert(lp.clone(), sum.clone());
                        if compute_all && !is_conf {
                            push_sum(&mut out.md5sums, &sum, &md5_path());
                        }
                    }
                }
                tar::EntryType::Link => {
                    let Some(target) = link else {
                        return Err(corrupt(io::Error::other(format!(
                            "hardlink {:?} has no target",
                            shown()
                        ))));
                    };
                    w.hardlink(&path, &target)
                        .map_err(|e| cx.entry(member, e))?;
                    if let Some(sum) = sums.get(&list_path(&target)).cloned() {
                        let is_conf = conf_set.contains(lp.as_slice());
                        if compute_all && !is_conf {
                            push_sum(&mut out.md5sums, &sum, &md5_path());
                        }
                        sums.insert(lp.clone(), sum);
                    }
                }
                tar::EntryType::Directory => {
                    if let DirOutcome::Dir(rel) = w.dir(&path).map_err(|e| cx.entry(member, e))? {
                        out.dirs.push((rel, meta));
                    }
                }
                tar::EntryType::Symlink => {
                    let Some(target) = link else {
                        return Err(corrupt(io::Error::other(format!(
                            "symlink {:?} has no target",
                            shown()
                        ))));
                    };
                    w.symlink(&path, &target, &meta)
                        .map_err(|e| cx.entry(member, e))?;
                }
                tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                    let nk = match kind {
                        tar::EntryType::Char => NodeKind::Char,
                        tar::EntryType::Block => NodeKind::Block,
                        _ => NodeKind::Fifo,
                    };
                    w.node(&path, nk, dev.0, dev.1, &meta)
                        .map_err(|e| cx.entry(member, e))?;
                }
                other => {
                    return Err(UnpackError::UnsupportedEntry {
                        package: cx.id(),
                        deb: cx.deb.to_path_buf(),
                        path: shown(),
                        kind: format!("{other:?}"),
                    })
                }
            }
            out.list.extend_from_slice(&lp);
            out.list.push(b'\n');
        }
    }
    // Read to the end so the compressor's own checksum is verified too.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(corrupt)?;

    for c in conffile_list {
        let sum = sums
            .get(c.as_bytes())
            .cloned()
            .unwrap_or_else(|| "newconffile".to_string());
        out.conffiles.push((c, sum));
    }
    Ok(out)
}

fn push_sum(out: &mut Vec<u8>, sum: &str, path: &[u8]) {
    out.extend_from_slice(sum.as_bytes());
    out.extend_from_slice(b"  ");
    out.extend_from_slice(path);
    out.push(b'\n');
}

/// `status` (merged with any existing one) and the files and directories dpkg
/// expects next to it.
fn write_database(root: &Path, info_rel: &[u8], done: &[Unpacked]) -> Result<(), UnpackError> {
    let info_dir = root.join(Path::new(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(info_rel),
    ));
    let Some(dpkg_dir) = info_dir.parent().map(Path::to_path_buf) else {
        return Err(UnpackError::Database {
            op: "locate",
            path: info_dir,
            source: io::Error::other("the dpkg info directory has no parent"),
        });
    };
    let dberr = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| UnpackError::Database { op, path, source }
    };
    for d in ["triggers", "updates", "alternatives", "parts"] {
        let p = dpkg_dir.join(d);
        std::fs::create_dir_all(&p).map_err(dberr("create directory", &p))?;
    }
    for (f, content) in [("available", ""), ("statoverride", "")] {
        let p = dpkg_dir.join(f);
        if !p.exists() {
            std::fs::write(&p, content).map_err(dberr("write", &p))?;
        }
    }
    let p = info_dir.join("format");
    std::fs::write(&p, "1\n").map_err(dberr("write", &p))?;

    let key = |p: &Paragraph| {
        (
            p.get("Package").unwrap_or("").to_string(),
            p.get("Architecture").unwrap_or("").to_string(),
        )
    };
    let status_path = dpkg_dir.join("status");
    let mut paras: Vec<Paragraph> = Vec::new();
    let new_keys: HashSet<(String, String)> = done.iter().map(|u| key(&u.status)).collect();
    match std::fs::read_to_string(&status_path) {
        Ok(text) => {
            let old = parse_paragraphs(&text).map_err(|e| UnpackError::BadStatus {
                path: status_path.clone(),
                detail: e.to_string(),
            })?;
            paras.extend(old.into_iter().filter(|p| !new_keys.contains(&key(p))));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(dberr("read", &status_path)(e)),
    }
    paras.extend(done.iter().map(|u| u.status.clone()));
    paras.sort_by_key(|p| key(p));
    let mut text = String::new();
    for p in &paras {
        text.push_str(&p.render());
        text.push('\n');
    }
    let tmp = dpkg_dir.join("status-new");
    std::fs::write(&tmp, text).map_err(dberr("write", &tmp))?;
    std::fs::rename(&tmp, &status_path).map_err(dberr("rename", &status_path))?;
    Ok(())
}

#[cfg(test)]
#[path = "deb_tests.rs"]
mod tests;
