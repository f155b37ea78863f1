//! Id ranges of unprivileged VPSs (`LOCAL_UID`, `LOCAL_GID`).
//!
//! Each VPS's user namespace maps ids `0..65536` inside onto a range of
//! 65536 host uids and one of 65536 host gids. Ranges are allocated at
//! `create` from the host's base (`LOCAL_UID`/`LOCAL_GID` in `vz.conf`,
//! default 100000): the k-th free slot is `base + k * 65536`, the lowest k
//! whose uid and gid ranges overlap no other VPS's. A range given on the
//! command line is checked the same way and refused when it overlaps.
//! Ranges start at 65536 or above, so the host's own system and user ids
//! (and a privileged VPS's) are never inside one.

use crate::sys::userns::IDS;
use std::collections::HashSet;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// The default first id of the first VPS's range.
pub const DEFAULT_BASE: u32 = 100_000;

/// The id a file owned by no id of the range shows inside (the kernel's
/// overflow id).
pub const NOBODY: u32 = 65_534;

/// Where a VPS's ids live on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IdRange {
    pub uid: u32,
    pub gid: u32,
}

impl IdRange {
    /// The host uid and gid of inside `(uid, gid)`.
    pub fn host(&self, uid: u32, gid: u32) -> (u32, u32) {
        (self.uid + uid.min(IDS - 1), self.gid + gid.min(IDS - 1))
    }
}

/// Whether `first..first+65536` is a range a VPS may have: above the
/// host's low ids and below the invalid id `u32::MAX`.
pub fn valid_base(first: u32) -> bool {
    first >= IDS && u64::from(first) + u64::from(IDS) <= u64::from(u32::MAX)
}

fn overlap(a: u32, b: u32) -> bool {
    let (a, b, n) = (u64::from(a), u64::from(b), u64::from(IDS));
    a < b + n && b < a + n
}

/// The first VPS of `taken` whose uid or gid range overlaps `r`: its CTID,
/// which kind ("uid" or "gid") and where its range of that kind starts.
pub fn find_overlap(r: IdRange, taken: &[(u32, IdRange)]) -> Option<(u32, &'static str, u32)> {
    taken.iter().find_map(|(ctid, t)| {
        if overlap(r.uid, t.uid) {
            Some((*ctid, "uid", t.uid))
        } else if overlap(r.gid, t.gid) {
            Some((*ctid, "gid", t.gid))
        } else {
            None
        }
    })
}

/// The lowest free slot `base + k * 65536` (same k for uids and gids).
pub fn allocate(base: IdRange, taken: &[(u32, IdRange)]) -> Option<IdRange> {
    (0u64..)
        .map(|k| {
            let step = k * u64::from(IDS);
            (u64::from(base.uid) + step, u64::from(base.gid) + step)
        })
        .take_while(|(u, g)| {
            let limit = u64::from(u32::MAX) - u64::from(IDS);
            *u <= limit && *g <= limit
        })
        .map(|(u, g)| IdRange {
            uid: u as u32,
            gid: g as u32,
        })
        .find(|r| find_overlap(*r, taken).is_none())
}

/// One id moved between a privileged VPS's ids (host = inside) and the
/// range `base` of an unprivileged one. Ids already where they go stay, so
/// an interrupted shift can be run again; ids with no place inside become
/// [`NOBODY`].
fn shift_id(id: u32, base: u32, to_range: bool) -> u32 {
    let in_range = id >= base && u64::from(id) < u64::from(base) + u64::from(IDS);
    match (to_range, in_range) {
        (true, true) => id,
        (true, false) if id < IDS => base + id,
        (true, false) => base + NOBODY,
        (false, true) => id - base,
        (false, false) if id < IDS => id,
        (false, false) => NOBODY,
    }
}

/// Change the owners of every file under `root` (not following symlinks,
/// not leaving its file system) into `range` (`to_range`) or out of it
/// back to the host's ids. Set-id bits, which `chown` clears, are put back.
/// Returns the number of inodes changed.
pub fn shift_tree(root: &Path, range: IdRange, to_range: bool) -> io::Result<u64> {
    let dev = std::fs::symlink_metadata(root)?.dev();
    let mut seen = HashSet::new();
    let mut changed = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let m = std::fs::symlink_metadata(&path)?;
        if m.dev() != dev {
            continue;
        }
        if m.is_dir() {
            for e in std::fs::read_dir(&path)? {
                stack.push(e?.path());
            }
        }
        // A hardlinked inode once: its second name would shift it twice.
        if m.nlink() > 1 && !m.is_dir() && !seen.insert(m.ino()) {
            continue;
        }
        let uid = shift_id(m.uid(), range.uid, to_range);
        let gid = shift_id(m.gid(), range.gid, to_range);
        if (uid, gid) == (m.uid(), m.gid()) {
            continue;
        }
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
        let setid = m.mode() & 0o6000;
        if setid != 0 && !m.file_type().is_symlink() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
        }
        changed += 1;
    }
    Ok(changed)
}

use super::conf::Conf;
use super::error::io_err;
use super::{CreateOptions, VpsConfig, VpsError, Vz};
use std::os::fd::OwnedFd;

/// An id base from `vz.conf`.
fn conf_base(conf: &Conf, key: &str, path: &Path) -> Result<Option<u32>, VpsError> {
    match conf.get(key) {
        None | Some("") => Ok(None),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if valid_base(n) => Ok(Some(n)),
            _ => Err(VpsError::Conf {
                ctid: 0,
                path: path.to_path_buf(),
                line: 0,
                why: format!("{key}: expected a host id from 65536 to 4294901759"),
            }),
        },
    }
}

impl Vz {
    /// Where allocation starts: `LOCAL_UID`/`LOCAL_GID` in `vz.conf` (the
    /// gid base defaults to the uid base), else [`DEFAULT_BASE`].
    pub fn id_base(&self) -> Result<IdRange, VpsError> {
        let conf = self.root.global_conf()?;
        let path = self.root.global_conf_path();
        let uid = conf_base(&conf, "LOCAL_UID", &path)?.unwrap_or(DEFAULT_BASE);
        let gid = conf_base(&conf, "LOCAL_GID", &path)?.unwrap_or(uid);
        Ok(IdRange { uid, gid })
    }

    /// The id ranges of every other VPS on this root, read from their
    /// configs' `LOCAL_UID`/`LOCAL_GID` (a privileged VPS that has one
    /// keeps it reserved).
    fn taken_ranges(&self, except: u32) -> Vec<(u32, IdRange)> {
        let Ok(rd) = std::fs::read_dir(self.root.conf_dir()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(ctid) = name
                .strip_suffix(".conf")
                .and_then(|n| super::parse_ctid(n).ok())
            else {
                continue;
            };
            if ctid == except {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            let Ok(conf) = Conf::parse(&text) else {
                continue;
            };
            let id = |k: &str| conf.get(k).and_then(|v| v.parse::<u32>().ok());
            if let (Some(uid), Some(gid)) = (id("LOCAL_UID"), id("LOCAL_GID")) {
                out.push((ctid, IdRange { uid, gid }));
            }
        }
        out.sort_by_key(|(c, _)| *c);
        out
    }

    /// The host-wide lock on id ranges, held until the returned file drops.
    fn lock_ids(&self) -> Result<std::fs::File, VpsError> {
        let path = self.root.ids_lock_file();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(0, "create", dir))?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(0, "open", &path))?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_err(0, "lock", &path)(e.into()))?;
        Ok(f)
    }

    /// The range for `ctid`: the one given (checked against every other
    /// VPS's) or the lowest free one. Call with the ids lock held.
    fn choose_range(
        &self,
        ctid: u32,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<IdRange, VpsError> {
        for (option, v) in [("--local_uid", uid), ("--local_gid", gid)] {
            if let Some(v) = v.filter(|v| !valid_base(*v)) {
                return Err(VpsError::BadValue {
                    option,
                    value: v.to_string(),
                    why: "use a host id from 65536 to 4294901759 (the range holds 65536 ids)",
                });
            }
        }
        let taken = self.taken_ranges(ctid);
        let given = match (uid, gid) {
            (Some(uid), gid) => Some(IdRange {
                uid,
                gid: gid.unwrap_or(uid),
            }),
            (None, Some(gid)) => Some(IdRange { uid: gid, gid }),
            (None, None) => None,
        };
        if let Some(r) = given {
            if let Some((other, kind, other_first)) = find_overlap(r, &taken) {
                let first = if kind == "uid" { r.uid } else { r.gid };
                return Err(VpsError::IdOverlap {
                    ctid,
                    kind,
                    first,
                    other,
                    other_first,
                });
            }
            return Ok(r);
        }
        let base = self.id_base()?;
        allocate(base, &taken).ok_or_else(|| VpsError::NoIdRange {
            ctid,
            uid_base: base.uid,
            gid_base: base.gid,
            conf: self.root.global_conf_path(),
        })
    }

    /// `create`'s user namespace settings: whether, the range, and the ids
    /// lock to hold until the config is written.
    pub(super) fn create_ids(
        &self,
        ctid: u32,
        opts: &CreateOptions,
    ) -> Result<(bool, Option<IdRange>, Option<std::fs::File>), VpsError> {
        let userns = opts.userns.unwrap_or(true);
        if !userns {
            if let Some(v) = opts.local_uid.or(opts.local_gid) {
                return Err(VpsError::BadValue {
                    option: "--local_uid/--local_gid",
                    value: v.to_string(),
                    why: "a privileged VPS (--userns no) has no id range; drop the option or use --userns yes",
                });
            }
            return Ok((false, None, None));
        }
        check_kernel(ctid)?;
        let lock = self.lock_ids()?;
        let r = self.choose_range(ctid, opts.local_uid, opts.local_gid)?;
        Ok((true, Some(r), Some(lock)))
    }

    /// A user namespace with the VPS's mapping, for its idmapped layers and
    /// its processes; `None` for a privileged VPS.
    pub(super) fn vps_userns(&self, cfg: &VpsConfig) -> Result<Option<OwnedFd>, VpsError> {
        let Some(r) = cfg.id_range() else {
            return Ok(None);
        };
        check_kernel(cfg.ctid)?;
        crate::sys::userns::create(r.uid, r.gid)
            .map(Some)
            .map_err(|source| VpsError::Mount {
                ctid: cfg.ctid,
                target: cfg.ve_root.clone(),
                step: "create its user namespace",
                source,
            })
    }

    /// Whether the VPS's config predates user namespaces (no `USERNS`):
    /// such a VPS runs privileged until converted.
    pub fn predates_userns(&self, ctid: u32) -> bool {
        std::fs::read_to_string(self.root.conf(ctid))
            .ok()
            .and_then(|t| Conf::parse(&t).ok())
            .is_some_and(|c| c.get("USERNS").is_none())
    }

    /// `vzctl set CTID --userns yes|no [--local_uid N] --save` on a
    /// stopped VPS: change the owners in its private area into (or out
    /// of) its range, then save the config. The quota's per-id figures are
    /// kept by inside ids, so they stay as they are. Returns whether
    /// anything changed; `cfg` is updated.
    pub(super) fn convert_ids(
        &self,
        cfg: &mut VpsConfig,
        want: bool,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<bool, VpsError> {
        let ctid = cfg.ctid;
        if cfg.userns == want && uid.is_none() && gid.is_none() {
            return Ok(false);
        }
        if cfg.userns && want {
            return Err(VpsError::BadValue {
                option: "--local_uid/--local_gid",
                value: format!("{:?}", uid.or(gid)),
                why: "the VPS has a range already; convert it back with --userns no --save first",
            });
        }
        if !want && (uid.is_some() || gid.is_some()) {
            return Err(VpsError::BadValue {
                option: "--local_uid/--local_gid",
                value: format!("{:?}", uid.or(gid)),
                why: "a privileged VPS (--userns no) has no id range",
            });
        }
        let word = if want { "yes" } else { "no" };
        let _lock = if want {
            check_kernel(ctid)?;
            Some(self.lock_ids()?)
        } else {
            None
        };
        let range = match (want, cfg.ids) {
            // A range it had before (converted back) is kept when still free.
            (true, Some(r)) if uid.is_none() && gid.is_none() => {
                match find_overlap(r, &self.taken_ranges(ctid)) {
                    None => r,
                    Some(_) => self.choose_range(ctid, None, None)?,
                }
            }
            (true, _) => self.choose_range(ctid, uid, gid)?,
            (false, Some(r)) => r,
            (false, None) => return Ok(false),
        };
        let upper = cfg.upper();
        shift_tree(&upper, range, want).map_err(|source| VpsError::Shift {
            ctid,
            path: upper.clone(),
            want: word,
            source,
        })?;
        cfg.userns = want;
        cfg.ids = Some(range);
        self.save_config(cfg)?;
        // The quota file counts by the VPS's own ids: only how host ids
        // map onto them changes.
        let qf = self.root.quota_file(ctid);
        if let Ok(Some(mut state)) = crate::quota::StateFile::load(&qf) {
            state.ugid.shift = cfg.id_range().map(|r| (r.uid, r.gid));
            state
                .save(&qf)
                .map_err(|e| io_err(ctid, "write", &qf)(std::io::Error::other(e.to_string())))?;
        }
        Ok(true)
    }
}

/// Refuse a kernel whose overlayfs cannot take idmapped lower layers.
pub(super) fn check_kernel(ctid: u32) -> Result<(), VpsError> {
    let (release, version) = crate::sys::userns::kernel();
    if crate::sys::userns::supports_idmapped_lowers(version) {
        Ok(())
    } else {
        Err(VpsError::Kernel { ctid, release })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(uid: u32, gid: u32) -> IdRange {
        IdRange { uid, gid }
    }

    #[test]
    fn allocation_skips_taken_ranges() {
        let base = r(100_000, 100_000);
        assert_eq!(allocate(base, &[]), Some(base));
        let taken = [(101, r(100_000, 100_000)), (102, r(165_536, 165_536))];
        assert_eq!(allocate(base, &taken), Some(r(231_072, 231_072)));
        // A hand-made range across two slots is stepped over as well.
        let odd = [(101, r(100_000, 100_000)), (103, r(200_000, 500_000))];
        assert_eq!(allocate(base, &odd), Some(r(296_608, 296_608)));
        // Gid ranges count as much as uid ranges.
        let gids = [(104, r(900_000, 165_536))];
        assert_eq!(allocate(base, &gids), Some(base));
        assert_eq!(
            allocate(r(100_000, 165_536), &gids),
            Some(r(165_536, 231_072))
        );
        // Nothing left below u32::MAX.
        assert_eq!(
            allocate(
                r(u32::MAX - 65_536, 100_000),
                &[(1, r(u32::MAX - 65_536, 1))]
            ),
            None
        );
    }

    #[test]
    fn overlap_names_the_other_vps() {
        let taken = [(101, r(100_000, 100_000))];
        assert_eq!(
            find_overlap(r(165_535, 300_000), &taken),
            Some((101, "uid", 100_000))
        );
        assert_eq!(find_overlap(r(165_536, 300_000), &taken), None);
        assert_eq!(
            find_overlap(r(300_000, 34_465), &taken),
            Some((101, "gid", 100_000))
        );
        assert_eq!(find_overlap(r(300_000, 34_464), &taken), None);
    }

    #[test]
    fn an_old_kernel_is_named_with_the_way_out() {
        let e = VpsError::Kernel {
            ctid: 101,
            release: "5.15.0-91-generic".into(),
        };
        let msg = e.to_string();
        assert!(msg.contains("5.15.0-91-generic"), "{msg}");
        assert!(msg.contains("5.19"), "{msg}");
        assert!(msg.contains("--userns no"), "{msg}");
        assert_eq!(e.exit_code(), super::super::exit::BAD_KERNEL);
        // This machine's kernel is judged by its release string.
        let (release, v) = crate::sys::userns::kernel();
        let ok = check_kernel(1).is_ok();
        assert_eq!(
            ok,
            crate::sys::userns::supports_idmapped_lowers(v),
            "{release}"
        );
    }

    #[test]
    fn bases() {
        assert!(!valid_base(0));
        assert!(!valid_base(65_535));
        assert!(valid_base(65_536));
        assert!(valid_base(u32::MAX - 65_536));
        assert!(!valid_base(u32::MAX - 65_535));
    }

    #[test]
    fn shifting_is_repeatable_and_reversible() {
        let b = 200_000;
        assert_eq!(shift_id(0, b, true), 200_000);
        assert_eq!(shift_id(1000, b, true), 201_000);
        assert_eq!(shift_id(201_000, b, true), 201_000);
        assert_eq!(shift_id(70_000, b, true), b + NOBODY);
        assert_eq!(shift_id(201_000, b, false), 1000);
        assert_eq!(shift_id(1000, b, false), 1000);
        assert_eq!(shift_id(70_000, b, false), NOBODY);
    }

    #[test]
    fn tree_shift_keeps_setid_bits_and_links() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: chown needs root");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("su");
        std::fs::write(&f, b"x").unwrap();
        std::os::unix::fs::chown(&f, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o4755)).unwrap();
        std::fs::hard_link(&f, d.path().join("su2")).unwrap();
        std::fs::create_dir(d.path().join("home")).unwrap();
        std::os::unix::fs::chown(d.path().join("home"), Some(1000), Some(100)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("link")).unwrap();
        let range = r(300_000, 400_000);
        shift_tree(d.path(), range, true).unwrap();
        let m = std::fs::metadata(&f).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (300_000, 400_000, 0o4755)
        );
        let h = std::fs::metadata(d.path().join("home")).unwrap();
        assert_eq!((h.uid(), h.gid()), (301_000, 400_100));
        let l = std::fs::symlink_metadata(d.path().join("link")).unwrap();
        assert_eq!(l.uid(), 300_000);
        // The link's target is untouched.
        assert_eq!(std::fs::metadata("/etc/passwd").unwrap().uid(), 0);
        // Again: nothing moves twice.
        shift_tree(d.path(), range, true).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().uid(), 300_000);
        shift_tree(d.path(), range, false).unwrap();
        let m = std::fs::metadata(&f).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 0, 0o4755));
        assert_eq!(
            std::fs::metadata(d.path().join("home")).unwrap().uid(),
            1000
        );
    }
}
