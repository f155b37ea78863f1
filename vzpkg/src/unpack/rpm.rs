//! Unpacking one `.rpm` into a staging tree as `rpm -i --noscripts` would on
//! a fresh install: metadata from the header (not the cpio headers), owners
//! resolved by name through the tree's own `etc/passwd` and `etc/group`,
//! file capabilities as `security.capability`, `%ghost` files not created,
//! `%config` files written as shipped. Every path goes through `Tree`, so
//! nothing lands outside the root. Registering the package in the tree's
//! rpm database is a later step; this returns the header data it needs.

use super::tree::{DirOutcome, Meta, NodeKind, Tree, TreeError};
use rpm::{DependencyFlags, FileFlags, FileType, IndexTag, PackageReader};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RpmUnpackError {
    #[error("cannot read {path} as an RPM package ({source}); the file is corrupt or not an RPM: delete it from the package cache so it is fetched again")]
    Read {
        path: PathBuf,
        #[source]
        source: rpm::Error,
    },
    #[error("{path}: the header digest does not match ({reason}); the package was altered or damaged: delete it from the package cache so it is fetched again")]
    HeaderDigest { path: PathBuf, reason: String },
    #[error("package {package} ({path}): entry {entry:?} would be written outside the target tree ({reason}); the package is broken or hostile: drop it from the package set")]
    Escape {
        package: String,
        path: PathBuf,
        entry: String,
        reason: String,
    },
    #[error("package {package} ({path}): {reason}; the package is malformed: drop it or report it to its maintainer")]
    Malformed {
        package: String,
        path: PathBuf,
        reason: String,
    },
    #[error("package {package}: {source}")]
    Tree {
        package: String,
        #[source]
        source: TreeError,
    },
    #[error("cannot use keyring {path} for package signatures ({reason}); point gpgkey at an armoured or binary OpenPGP public key file")]
    Keyring { path: PathBuf, reason: String },
    #[error("{path} carries no signature, but gpgcheck is on; use a signed package or turn gpgcheck off for this repository")]
    Unsigned { path: PathBuf },
    #[error("{path}: signature check against keyring {keyring} failed ({reason}); the package was altered or is signed by a key not in the keyring: fix gpgkey in the recipe or use another mirror")]
    Signature {
        path: PathBuf,
        keyring: PathBuf,
        reason: String,
    },
}

impl RpmUnpackError {
    fn from_tree(package: &str, path: &Path, e: TreeError) -> RpmUnpackError {
        match e {
            TreeError::Escape {
                path: entry,
                reason,
            } => RpmUnpackError::Escape {
                package: package.to_string(),
                path: path.to_path_buf(),
                entry,
                reason,
            },
            source => RpmUnpackError::Tree {
                package: package.to_string(),
                source,
            },
        }
    }
}

/// A scriptlet and the program that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmScript {
    pub body: String,
    /// Interpreter and its arguments (`["/bin/sh"]` when the header names none;
    /// `["<lua>"]` for rpm's built-in Lua).
    pub interpreter: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    PreIn,
    In,
    Un,
    PostUn,
}

/// One package trigger (`%triggerin -- bash`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmTrigger {
    pub kind: TriggerKind,
    pub script: RpmScript,
    /// Package names with an optional `[op] version` constraint, rpm syntax.
    pub conditions: Vec<(String, String)>,
}

/// What the rest of the build needs to know about an unpacked package.
#[derive(Debug, Clone)]
pub struct RpmUnpacked {
    pub name: String,
    pub epoch: u32,
    pub version: String,
    pub release: String,
    pub arch: String,
    pub pre: Option<RpmScript>,
    pub post: Option<RpmScript>,
    pub preun: Option<RpmScript>,
    pub postun: Option<RpmScript>,
    pub pretrans: Option<RpmScript>,
    pub posttrans: Option<RpmScript>,
    pub triggers: Vec<RpmTrigger>,
    /// Every path the package owns, as in the header (absolute).
    pub files: Vec<String>,
    pub config_files: Vec<String>,
    /// `%ghost` paths: owned but not created.
    pub ghosts: Vec<String>,
    /// Sockets are not created (the tree cannot make them; rpm packages
    /// practically never ship them).
    pub skipped: Vec<String>,
    /// Entries whose user or group the tree did not know, written as root
    /// (0): set to their owners once a `%pre` has added them, else left
    /// root with a warning, as rpm does (see `configure::rpm`).
    pub unresolved: Vec<Unresolved>,
    /// The main header as stored in the file, for the rpm database.
    pub header: Vec<u8>,
}

/// A payload entry whose user or group the tree did not know at unpack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// Absolute, as in the payload.
    pub path: String,
    pub user: String,
    pub group: String,
    /// Permission bits (with set-id bits), which a chown may clear.
    pub permissions: u32,
}

/// User and group names of the tree, from its `etc/passwd` and `etc/group`.
#[derive(Debug, Clone, Default)]
pub struct Owners {
    users: HashMap<String, u32>,
    groups: HashMap<String, u32>,
}

impl Owners {
    /// Read the tree's tables; missing or symlinked files give empty tables
    /// (then only `root` resolves).
    pub fn load(root: &Path) -> Owners {
        Owners {
            users: read_table(&root.join("etc/passwd")),
            groups: read_table(&root.join("etc/group")),
        }
    }

    pub fn from_tables(passwd: &str, group: &str) -> Owners {
        Owners {
            users: parse_table(passwd),
            groups: parse_table(group),
        }
    }

    pub fn uid(&self, name: &str) -> Option<u32> {
        lookup(&self.users, name)
    }

    pub fn gid(&self, name: &str) -> Option<u32> {
        lookup(&self.groups, name)
    }
}

fn lookup(t: &HashMap<String, u32>, name: &str) -> Option<u32> {
    t.get(name)
        .copied()
        .or_else(|| (name == "root").then_some(0))
}

fn read_table(path: &Path) -> HashMap<String, u32> {
    // The file is the tree's own; a symlink could point at the host's.
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => std::fs::read_to_string(path)
            .map(|t| parse_table(&t))
            .unwrap_or_default(),
        _ => HashMap::new(),
    }
}

/// `name:x:ID:...` lines; the first entry of a name wins, like getpwnam.
fn parse_table(text: &str) -> HashMap<String, u32> {
    let mut m = HashMap::new();
    for line in text.lines() {
        let mut f = line.split(':');
        if let (Some(name), Some(_), Some(id)) = (f.next(), f.next(), f.next()) {
            if let Ok(id) = id.trim().parse() {
                m.entry(name.to_string()).or_insert(id);
            }
        }
    }
    m
}

const CAP_NAMES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// Turn a capability text (`cap_net_raw=ep`, as `cap_to_text` writes and
/// rpm stores it) into a `security.capability` v2 value. `None` when the
/// text cannot be parsed.
pub fn caps_to_xattr(text: &str) -> Option<Vec<u8>> {
    let all: u64 = (1u64 << CAP_NAMES.len()) - 1;
    let (mut eff, mut perm, mut inh) = (0u64, 0u64, 0u64);
    for clause in text.split_whitespace() {
        let pos = clause.find(['=', '+', '-'])?;
        let (names, mut ops) = clause.split_at(pos);
        let mask = if names.is_empty() || names.eq_ignore_ascii_case("all") {
            all
        } else {
            let mut m = 0u64;
            for n in names.split(',') {
                let n = n.to_ascii_lowercase();
                let n = n.strip_prefix("cap_").unwrap_or(&n);
                let bit = CAP_NAMES.iter().position(|c| *c == n)?;
                m |= 1 << bit;
            }
            m
        };
        while let Some(op) = ops.chars().next() {
            ops = &ops[1..];
            let end = ops.find(['=', '+', '-']).unwrap_or(ops.len());
            let flags = &ops[..end];
            ops = &ops[end..];
            if op == '=' {
                eff &= !mask;
                perm &= !mask;
                inh &= !mask;
            }
            for f in flags.chars() {
                let set = match f {
                    'e' => &mut eff,
                    'p' => &mut perm,
                    'i' => &mut inh,
                    _ => return None,
                };
                if op == '-' {
                    *set &= !mask;
                } else {
                    *set |= mask;
                }
            }
        }
    }
    if perm == 0 && inh == 0 {
        return None;
    }
    // VFS_CAP_REVISION_2, with the one effective bit files have.
    let magic: u32 = 0x0200_0000 | u32::from(eff != 0);
    let mut out = Vec::with_capacity(20);
    for v in [
        magic,
        perm as u32,
        inh as u32,
        (perm >> 32) as u32,
        (inh >> 32) as u32,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Some(out)
}

fn script(s: Result<rpm::Scriptlet, rpm::Error>) -> Option<RpmScript> {
    let s = s.ok()?;
    Some(RpmScript {
        body: s.script,
        interpreter: s
            .program
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".to_string()]),
    })
}

fn trigger(t: rpm::Trigger) -> Option<RpmTrigger> {
    let first = t.conditions.first()?;
    let kind = if first.flags.contains(DependencyFlags::TRIGGERPREIN) {
        TriggerKind::PreIn
    } else if first.flags.contains(DependencyFlags::TRIGGERUN) {
        TriggerKind::Un
    } else if first.flags.contains(DependencyFlags::TRIGGERPOSTUN) {
        TriggerKind::PostUn
    } else {
        TriggerKind::In
    };
    let conditions = t
        .conditions
        .iter()
        .map(|c| {
            let op = c.flags.comparator_str();
            let cons = if op.is_empty() || c.version.is_empty() {
                String::new()
            } else {
                format!("{op} {}", c.version)
            };
            (c.name.clone(), cons)
        })
        .collect();
    Some(RpmTrigger {
        kind,
        script: RpmScript {
            body: t.script,
            interpreter: if t.program.is_empty() {
                vec!["/bin/sh".to_string()]
            } else {
                t.program
            },
        },
        conditions,
    })
}

/// Unpack `rpm_file` into `root`, resolving owners through the tree's tables.
pub fn unpack_rpm(root: &Path, rpm_file: &Path) -> Result<RpmUnpacked, RpmUnpackError> {
    let tree = Tree::open(root).map_err(|source| RpmUnpackError::Tree {
        package: rpm_file.display().to_string(),
        source,
    })?;
    unpack_rpm_into(&tree, &Owners::load(root), rpm_file)
}

/// Unpack into an open tree with given owner tables (for many packages in
/// parallel: one `Tree`, one `Owners` read once `setup` is in).
pub fn unpack_rpm_into(
    tree: &Tree,
    owners: &Owners,
    rpm_file: &Path,
) -> Result<RpmUnpacked, RpmUnpackError> {
    let read_err = |source| RpmUnpackError::Read {
        path: rpm_file.to_path_buf(),
        source,
    };
    let mut reader = PackageReader::open(rpm_file).map_err(read_err)?;
    let md = &reader.metadata;
    md.check_digests()
        .and_then(|r| r.result())
        .map_err(|e| RpmUnpackError::HeaderDigest {
            path: rpm_file.to_path_buf(),
            reason: e.to_string(),
        })?;
    let name = md.get_name().map_err(read_err)?.to_string();
    let mut out = RpmUnpacked {
        epoch: md.get_epoch().unwrap_or(0),
        version: md.get_version().map_err(read_err)?.to_string(),
        release: md.get_release().map_err(read_err)?.to_string(),
        arch: md.get_arch().unwrap_or("noarch").to_string(),
        pre: script(md.get_pre_install_script()),
        post: script(md.get_post_install_script()),
        preun: script(md.get_pre_uninstall_script()),
        postun: script(md.get_post_uninstall_script()),
        pretrans: script(md.get_pre_trans_script()),
        posttrans: script(md.get_post_trans_script()),
        triggers: md
            .get_triggers()
            .unwrap_or_default()
            .into_iter()
            .filter_map(trigger)
            .collect(),
        files: Vec::new(),
        config_files: Vec::new(),
        ghosts: Vec::new(),
        skipped: Vec::new(),
        unresolved: Vec::new(),
        header: md.header_bytes().map_err(read_err)?,
        name: name.clone(),
    };
    let package = format!("{}-{}-{}.{}", name, out.version, out.release, out.arch);
    let malformed = |reason: String| RpmUnpackError::Malformed {
        package: package.clone(),
        path: rpm_file.to_path_buf(),
        reason,
    };

    // Hardlink sets share (device, inode); the payload carries the data once.
    let devices = md
        .header
        .get_entry_data_as_u32_array(IndexTag::RPMTAG_FILEDEVICES)
        .unwrap_or_default();
    let inodes = md
        .header
        .get_entry_data_as_u32_array(IndexTag::RPMTAG_FILEINODES)
        .unwrap_or_default();
    let mut identity: HashMap<String, (u32, u32)> = HashMap::new();
    let mut set_size: HashMap<(u32, u32), usize> = HashMap::new();
    for (i, e) in md.get_file_entries().map_err(read_err)?.iter().enumerate() {
        if e.file_type() != FileType::Regular || e.flags().contains(FileFlags::GHOST) {
            continue;
        }
        if let (Some(d), Some(n)) = (devices.get(i), inodes.get(i)) {
            let path = e.path().to_string_lossy().into_owned();
            identity.insert(path, (*d, *n));
            *set_size.entry((*d, *n)).or_default() += 1;
        }
    }
    identity.retain(|_, id| set_size.get(id).copied().unwrap_or(0) > 1);

    let mut writer = tree.writer();
    let tree_err = |e| RpmUnpackError::from_tree(&package, rpm_file, e);
    let mut dirs: Vec<(Vec<u8>, Meta)> = Vec::new();
    // Hardlink set → path holding the data, or members waiting for it.
    let mut content_at: HashMap<(u32, u32), Vec<u8>> = HashMap::new();
    let mut waiting: HashMap<(u32, u32), Vec<Vec<u8>>> = HashMap::new();

    while let Some(mut f) = reader.next_file().map_err(read_err)? {
        let e = f.metadata.clone();
        let path = e.path().to_string_lossy().into_owned();
        let flags = e.flags();
        out.files.push(path.clone());
        if flags.contains(FileFlags::GHOST) {
            out.ghosts.push(path);
            continue;
        }
        if flags.contains(FileFlags::CONFIG) {
            out.config_files.push(path.clone());
        }
        let rel = path.trim_start_matches('/').as_bytes().to_vec();
        if rel.is_empty() {
            return Err(malformed(format!("entry {path:?} names the root")));
        }
        let (uid, gid) = (owners.uid(e.user()), owners.gid(e.group()));
        if uid.is_none() || gid.is_none() {
            out.unresolved.push(Unresolved {
                path: path.clone(),
                user: e.user().to_string(),
                group: e.group().to_string(),
                permissions: u32::from(e.permissions()),
            });
        }
        let mut meta = Meta {
            mode: u32::from(e.permissions()),
            uid: uid.unwrap_or(0),
            gid: gid.unwrap_or(0),
            mtime: i64::from(u32::from(e.modified_at())),
            xattrs: Vec::new(),
        };
        if let Some(caps) = e.caps().filter(|c| !c.trim().is_empty()) {
            let blob = caps_to_xattr(caps).ok_or_else(|| {
                malformed(format!(
                    "file {path:?} has unreadable capabilities {caps:?}"
                ))
            })?;
            meta.xattrs.push(("security.capability".into(), blob));
        }
        match e.file_type() {
            FileType::Dir => match writer.dir(&rel).map_err(tree_err)? {
                DirOutcome::Dir(real) => dirs.push((real, meta)),
                DirOutcome::Root | DirOutcome::KeptSymlink => {}
            },
            FileType::Regular => {
                let id = identity.get(&path).copied();
                if !f.has_payload() {
                    let Some(id) = id else {
                        return Err(malformed(format!(
                            "file {path:?} has no data in the payload"
                        )));
                    };
                    match content_at.get(&id) {
                        Some(target) => writer.hardlink(&rel, target).map_err(tree_err)?,
                        None => waiting.entry(id).or_default().push(rel),
                    }
                    continue;
                }
                let written = writer.file(&rel, &meta, &mut f, None).map_err(tree_err)?;
                f.finish().map_err(|source| RpmUnpackError::Tree {
                    package: package.clone(),
                    source: TreeError::Read {
                        path: path.clone(),
                        source,
                    },
                })?;
                if written != e.size() as u64 {
                    return Err(malformed(format!(
                        "file {path:?} has {written} bytes in the payload, the header says {}",
                        e.size()
                    )));
                }
                if let Some(id) = id {
                    for member in waiting.remove(&id).unwrap_or_default() {
                        writer.hardlink(&member, &rel).map_err(tree_err)?;
                    }
                    content_at.insert(id, rel);
                }
            }
            FileType::SymbolicLink => {
                let target = e
                    .linkto()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| malformed(format!("symlink {path:?} has no target")))?;
                writer
                    .symlink(&rel, target.as_bytes(), &meta)
                    .map_err(tree_err)?;
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                let kind = match e.file_type() {
                    FileType::CharacterDevice => NodeKind::Char,
                    FileType::BlockDevice => NodeKind::Block,
                    _ => NodeKind::Fifo,
                };
                let (major, minor) = (u32::from(e.rdev_major()), u32::from(e.rdev_minor()));
                writer
                    .node(&rel, kind, major, minor, &meta)
                    .map_err(tree_err)?;
            }
            FileType::Socket => out.skipped.push(path),
            _ => {
                return Err(malformed(format!(
                    "entry {path:?} has an unknown file type"
                )))
            }
        }
    }
    if let Some(members) = waiting.values().next() {
        let shown: Vec<String> = members
            .iter()
            .map(|m| format!("/{}", String::from_utf8_lossy(m)))
            .collect();
        return Err(malformed(format!(
            "hardlinks {} have no data in the payload",
            shown.join(", ")
        )));
    }
    // Directory metadata last: a read-only directory must not stop its files.
    for (real, meta) in dirs.iter().rev() {
        tree.apply_dir_meta(real, meta).map_err(tree_err)?;
    }
    Ok(out)
}

/// Verify the package's OpenPGP header signature(s) and digests against the
/// keys in `keyring` (armoured or binary).
pub fn verify_signature(rpm_file: &Path, keyring: &Path) -> Result<(), RpmUnpackError> {
    let kerr = |reason: String| RpmUnpackError::Keyring {
        path: keyring.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(keyring).map_err(|e| kerr(e.to_string()))?;
    let verifier = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        rpm::signature::pgp::Verifier::from_asc_bytes(&bytes).map_err(|e| kerr(e.to_string()))?
    } else {
        use pgp::composed::{Deserializable, SignedPublicKey};
        let mut v = rpm::signature::pgp::Verifier::new();
        let keys = SignedPublicKey::from_bytes_many(io::Cursor::new(&bytes))
            .map_err(|e| kerr(e.to_string()))?;
        let mut any = false;
        for k in keys.flatten() {
            let armored = k
                .to_armored_string(pgp::composed::ArmorOptions::default())
                .map_err(|e| kerr(e.to_string()))?;
            if v.load_from_asc(&armored).is_ok() {
                any = true;
            }
        }
        if !any {
            return Err(kerr("no usable public key in the file".into()));
        }
        v
    };
    let pkg = rpm::Package::open(rpm_file).map_err(|source| RpmUnpackError::Read {
        path: rpm_file.to_path_buf(),
        source,
    })?;
    if pkg.raw_signatures().map(|s| s.is_empty()).unwrap_or(true) {
        return Err(RpmUnpackError::Unsigned {
            path: rpm_file.to_path_buf(),
        });
    }
    pkg.verify_signature(&verifier)
        .map_err(|e| RpmUnpackError::Signature {
            path: rpm_file.to_path_buf(),
            keyring: keyring.to_path_buf(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
pub(crate) mod testrpm {
    //! Real RPM files made with the `rpm` crate's builder.

    use rpm::{Dependency, FileOptions, PackageBuilder};
    use std::path::{Path, PathBuf};

    /// A package with a file of every kind the unpacker handles.
    pub fn full(name: &str, version: &str) -> PackageBuilder {
        let mut b = PackageBuilder::new(name, version, "MIT", "x86_64", "test package");
        b.release("1.el9")
            .with_file_contents(
                "#!/bin/sh\necho hi\n",
                FileOptions::new(format!("/usr/bin/{name}")).permissions(0o755),
            )
            .unwrap()
            .with_file_contents(
                "setting = 1\n",
                FileOptions::new(format!("/etc/{name}.conf"))
                    .config()
                    .noreplace()
                    .permissions(0o640)
                    .group("daemon"),
            )
            .unwrap()
            .with_file_contents(
                "ping",
                FileOptions::new(format!("/usr/sbin/{name}-ping"))
                    .permissions(0o4755)
                    .caps("cap_net_raw=ep")
                    .unwrap(),
            )
            .unwrap()
            .with_dir_entry(
                FileOptions::dir(format!("/var/lib/{name}"))
                    .permissions(0o750)
                    .user("daemon")
                    .group("daemon"),
            )
            .unwrap()
            .with_symlink(FileOptions::symlink(
                format!("/usr/bin/{name}-link"),
                name.to_string(),
            ))
            .unwrap()
            .with_ghost(FileOptions::ghost(format!("/var/log/{name}.log")))
            .unwrap()
            .with_file_contents(
                "same",
                FileOptions::new(format!("/usr/share/{name}/a")).hardlink("h"),
            )
            .unwrap()
            .with_file_contents(
                "same",
                FileOptions::new(format!("/usr/share/{name}/b")).hardlink("h"),
            )
            .unwrap()
            .post_install_script("echo installed > /tmp/x")
            .provides(Dependency::eq(format!("{name}-api"), "2"))
            .requires(Dependency::greater_eq("glibc", "2.34"))
            .requires(Dependency::script_pre("/bin/sh"));
        b
    }

    pub fn write(b: &mut PackageBuilder, dir: &Path) -> PathBuf {
        let pkg = b.build().unwrap();
        let file = dir.join(pkg.canonical_filename().unwrap());
        pkg.write_file(&file).unwrap();
        file
    }
}

#[cfg(test)]
mod tests {
    use super::testrpm;
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use vzpkg_testkit::signing::TestKey;

    fn root_with_passwd() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\ndaemon:x:2:2:daemon:/sbin:/sbin/nologin\n",
        )
        .unwrap();
        std::fs::write(root.path().join("etc/group"), "root:x:0:\ndaemon:x:2:\n").unwrap();
        root
    }

    #[test]
    fn unpacks_files_modes_owners_links_and_skips_ghosts() {
        let work = tempfile::tempdir().unwrap();
        let file = testrpm::write(&mut testrpm::full("hello", "1.0"), work.path());
        let root = root_with_passwd();
        let r = root.path();
        let u = unpack_rpm(r, &file).unwrap();

        assert_eq!(
            (u.name.as_str(), u.version.as_str(), u.release.as_str()),
            ("hello", "1.0", "1.el9")
        );
        assert_eq!(u.arch, "x86_64");
        let post = u.post.as_ref().unwrap();
        assert_eq!(post.body, "echo installed > /tmp/x");
        assert_eq!(post.interpreter, vec!["/bin/sh".to_string()]);
        assert!(u.pre.is_none());
        assert_eq!(u.config_files, vec!["/etc/hello.conf".to_string()]);
        assert_eq!(u.ghosts, vec!["/var/log/hello.log".to_string()]);
        assert!(u.unresolved.is_empty(), "{:?}", u.unresolved);
        assert!(!u.header.is_empty());

        let bin = std::fs::metadata(r.join("usr/bin/hello")).unwrap();
        assert_eq!(bin.permissions().mode() & 0o7777, 0o755);
        assert_eq!(
            std::fs::read_to_string(r.join("usr/bin/hello")).unwrap(),
            "#!/bin/sh\necho hi\n"
        );
        let conf = std::fs::metadata(r.join("etc/hello.conf")).unwrap();
        assert_eq!(conf.permissions().mode() & 0o7777, 0o640);
        assert_eq!((conf.uid(), conf.gid()), (0, 2));
        let dir = std::fs::metadata(r.join("var/lib/hello")).unwrap();
        assert!(dir.is_dir());
        assert_eq!(dir.permissions().mode() & 0o7777, 0o750);
        assert_eq!((dir.uid(), dir.gid()), (2, 2));
        assert_eq!(
            std::fs::read_link(r.join("usr/bin/hello-link")).unwrap(),
            Path::new("hello")
        );
        assert!(!r.join("var/log/hello.log").exists());
        let ping = r.join("usr/sbin/hello-ping");
        let pm = std::fs::metadata(&ping).unwrap();
        assert_eq!(pm.permissions().mode() & 0o7777, 0o4755);
        assert_eq!(
            xattr::get(&ping, "security.capability").unwrap(),
            caps_to_xattr("cap_net_raw=ep")
        );
        let a = std::fs::metadata(r.join("usr/share/hello/a")).unwrap();
        let b = std::fs::metadata(r.join("usr/share/hello/b")).unwrap();
        assert_eq!(a.ino(), b.ino(), "hardlinked files share an inode");
        assert_eq!(std::fs::read(r.join("usr/share/hello/b")).unwrap(), b"same");
    }

    #[test]
    fn unknown_owner_falls_back_to_root_and_is_reported() {
        let work = tempfile::tempdir().unwrap();
        let file = testrpm::write(&mut testrpm::full("nopw", "1.0"), work.path());
        let root = tempfile::tempdir().unwrap();
        let u = unpack_rpm(root.path(), &file).unwrap();
        let mut unresolved = u.unresolved.clone();
        unresolved.sort_by(|a, b| a.path.cmp(&b.path));
        let entry = |path: &str, user: &str, permissions| Unresolved {
            path: path.into(),
            user: user.into(),
            group: "daemon".into(),
            permissions,
        };
        assert_eq!(
            unresolved,
            vec![
                entry("/etc/nopw.conf", "root", 0o640),
                entry("/var/lib/nopw", "daemon", 0o750),
            ]
        );
        let dir = std::fs::metadata(root.path().join("var/lib/nopw")).unwrap();
        assert_eq!((dir.uid(), dir.gid()), (0, 0));
    }

    #[test]
    fn caps_text_to_vfs_blob() {
        // cap_net_raw is bit 13; effective flag set.
        let b = caps_to_xattr("cap_net_raw=ep").unwrap();
        assert_eq!(&b[0..4], &0x0200_0001u32.to_le_bytes());
        assert_eq!(&b[4..8], &(1u32 << 13).to_le_bytes());
        assert_eq!(&b[8..12], &0u32.to_le_bytes());
        // bpf is bit 39: the high word; no effective flag.
        let b = caps_to_xattr("cap_bpf,cap_chown+p").unwrap();
        assert_eq!(&b[0..4], &0x0200_0000u32.to_le_bytes());
        assert_eq!(&b[4..8], &1u32.to_le_bytes());
        assert_eq!(&b[12..16], &(1u32 << 7).to_le_bytes());
        assert!(caps_to_xattr("cap_nonsense=ep").is_none());
    }

    #[test]
    fn escaping_payload_path_is_refused() {
        let work = tempfile::tempdir().unwrap();
        let mut b = rpm::PackageBuilder::new("evil", "1", "MIT", "noarch", "escapes");
        let built = b
            .with_file_contents("x", rpm::FileOptions::new("/usr/../../../escaped"))
            .and_then(|b| b.build());
        let pkg = match built {
            Ok(p) => p,
            Err(e) => panic!("the builder refused a `..` path ({e}); craft the payload instead"),
        };
        let file = work.path().join("evil.rpm");
        pkg.write_file(&file).unwrap();
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let err = unpack_rpm(&root, &file).unwrap_err();
        match &err {
            RpmUnpackError::Escape { package, entry, .. } => {
                assert!(package.starts_with("evil-1"), "{err}");
                assert!(entry.contains(".."), "{err}");
            }
            other => panic!("expected an escape error, got {other}"),
        }
        assert!(!outer.path().join("escaped").exists());
        assert!(!outer.path().parent().unwrap().join("escaped").exists());
    }

    #[test]
    fn escape_through_symlink_in_tree_is_refused() {
        let work = tempfile::tempdir().unwrap();
        let mut b = rpm::PackageBuilder::new("via", "1", "MIT", "noarch", "through a link");
        b.with_file_contents("x", rpm::FileOptions::new("/up/file"))
            .unwrap();
        let file = testrpm::write(&mut b, work.path());
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink("../..", root.join("up")).unwrap();
        let err = unpack_rpm(&root, &file).unwrap_err();
        assert!(matches!(err, RpmUnpackError::Escape { .. }), "{err}");
        assert!(!outer.path().join("file").exists());
    }

    fn signed(key: &TestKey, dir: &Path) -> PathBuf {
        let armored = key
            .secret
            .to_armored_string(pgp::composed::ArmorOptions::default())
            .unwrap();
        let signer = rpm::signature::pgp::Signer::from_asc(&armored).unwrap();
        let pkg = testrpm::full("signed", "1.0")
            .build_and_sign(signer)
            .unwrap();
        let file = dir.join("signed.rpm");
        pkg.write_file(&file).unwrap();
        file
    }

    #[test]
    fn package_signature_checked_against_keyring() {
        let work = tempfile::tempdir().unwrap();
        let key = TestKey::generate("Packager <p@example.org>");
        let other = TestKey::generate("Other <o@example.org>");
        let file = signed(&key, work.path());
        let good = work.path().join("good.asc");
        std::fs::write(&good, key.public_keyring_armored()).unwrap();
        let good_bin = work.path().join("good.gpg");
        std::fs::write(&good_bin, key.public_keyring()).unwrap();
        let bad = work.path().join("bad.asc");
        std::fs::write(&bad, other.public_keyring_armored()).unwrap();

        verify_signature(&file, &good).unwrap();
        verify_signature(&file, &good_bin).unwrap();
        let err = verify_signature(&file, &bad).unwrap_err();
        assert!(matches!(err, RpmUnpackError::Signature { .. }), "{err}");

        let unsigned = testrpm::write(&mut testrpm::full("plain", "1.0"), work.path());
        let err = verify_signature(&unsigned, &good).unwrap_err();
        assert!(matches!(err, RpmUnpackError::Unsigned { .. }), "{err}");

        // A flipped byte in the payload breaks the payload digest.
        let mut bytes = std::fs::read(&file).unwrap();
        let n = bytes.len();
        bytes[n - 10] ^= 0xff;
        let tampered = work.path().join("tampered.rpm");
        std::fs::write(&tampered, bytes).unwrap();
        assert!(verify_signature(&tampered, &good).is_err());
    }

    #[test]
    fn owner_tables_parse() {
        let o = Owners::from_tables(
            "root:x:0:0::/:/bin/sh\nsshd:x:74:74::/:/sbin/nologin\n",
            "wheel:x:10:\n",
        );
        assert_eq!(o.uid("sshd"), Some(74));
        assert_eq!(o.uid("root"), Some(0));
        assert_eq!(o.gid("wheel"), Some(10));
        assert_eq!(o.gid("root"), Some(0), "root resolves without a table");
        assert_eq!(o.uid("nobody"), None);
    }
}
