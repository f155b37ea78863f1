//! Disk quota of a VPS (OpenVZ `vzquota` semantics). First level: usage in
//! 1K blocks and inodes, soft and hard limits with grace, a scan of the tree
//! to initialise usage and a state file with a dirty flag. Second level
//! ([`ugid`]): the same per uid and per gid inside the tree, on when the
//! ugid limit (`QUOTAUGIDLIMIT`) is above 0. [`crate::cli::vzquota`] is the `vzquota` tool.
//!
//! Usage is kept in bytes of allocated space (`st_blocks * 512`) so the
//! incremental accounting never drifts from a scan through rounding; limits
//! and reports are in 1K blocks as OpenVZ has them.

mod ugid;

pub use ugid::{IdEntry, IdGrace, IdKind, IdLimits, Owner, UgidQuota};

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Limits in 1K blocks and inodes; 0 means "no limit". Grace in seconds
/// (`QUOTATIME`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub block_soft: u64,
    pub block_hard: u64,
    pub inode_soft: u64,
    pub inode_hard: u64,
    pub block_grace: u64,
    pub inode_grace: u64,
}

/// vzctl's grace when `QUOTATIME` is unset: three days.
pub const DEFAULT_GRACE: u64 = 259_200;

impl Limits {
    /// No quota: statfs shows the host's figures, nothing is refused.
    pub fn none() -> Self {
        Limits::default()
    }

    /// `DISKSPACE`/`DISKINODES` style limits with one grace for both.
    pub fn new(blocks: (u64, u64), inodes: (u64, u64), grace: u64) -> Self {
        Limits {
            block_soft: blocks.0,
            block_hard: blocks.1,
            inode_soft: inodes.0,
            inode_hard: inodes.1,
            block_grace: grace,
            inode_grace: grace,
        }
    }

    pub fn has_blocks(&self) -> bool {
        self.block_soft > 0 || self.block_hard > 0
    }

    pub fn has_inodes(&self) -> bool {
        self.inode_soft > 0 || self.inode_hard > 0
    }
}

/// What a tree uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Allocated bytes (`st_blocks * 512`).
    pub bytes: u64,
    pub inodes: u64,
}

impl Usage {
    /// Usage in 1K blocks, rounded up.
    pub fn blocks_1k(&self) -> u64 {
        self.bytes.div_ceil(1024)
    }
}

/// Which limit refused an allocation; every one of them is `EDQUOT` to the
/// writer ([`Exceeded::errno`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    BlockHard,
    BlockSoftGrace,
    InodeHard,
    InodeSoftGrace,
    /// The same four for one uid or gid (second level).
    IdBlockHard(IdKind, u32),
    IdBlockSoftGrace(IdKind, u32),
    IdInodeHard(IdKind, u32),
    IdInodeSoftGrace(IdKind, u32),
}

impl Exceeded {
    /// What the refused system call returns.
    pub fn errno(self) -> i32 {
        libc::EDQUOT
    }

    /// The first-level verdict, said of one uid or gid.
    fn for_id(self, kind: IdKind, id: u32) -> Exceeded {
        match self {
            Exceeded::BlockHard => Exceeded::IdBlockHard(kind, id),
            Exceeded::BlockSoftGrace => Exceeded::IdBlockSoftGrace(kind, id),
            Exceeded::InodeHard => Exceeded::IdInodeHard(kind, id),
            Exceeded::InodeSoftGrace => Exceeded::IdInodeSoftGrace(kind, id),
            other => other,
        }
    }
}

/// Live quota of one mounted tree.
#[derive(Clone, Debug, Default)]
pub struct Quota {
    pub limits: Limits,
    pub usage: Usage,
    /// When usage went over the soft limit (grace runs from here).
    pub block_over_since: Option<u64>,
    pub inode_over_since: Option<u64>,
    /// Second level: per uid/gid usage and limits (off by default).
    pub ugid: UgidQuota,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn expired(since: Option<u64>, grace: u64, now: u64) -> bool {
    since.is_some_and(|s| now > s.saturating_add(grace))
}

/// The rule of both levels for one counter, limits in the counter's unit
/// (0 = none): past the hard limit is refused, past the soft limit only once
/// its grace has run out. `Some(true)` = hard, `Some(false)` = soft.
fn verdict(
    after: u64,
    soft: u64,
    hard: u64,
    since: Option<u64>,
    grace: u64,
    now: u64,
) -> Option<bool> {
    if hard > 0 && after > hard {
        return Some(true);
    }
    if soft > 0 && after > soft && expired(since, grace, now) {
        return Some(false);
    }
    None
}

/// The grace timer of one counter: starts when usage goes over the soft
/// limit, keeps its start while over, stops when back under.
fn timer(since: Option<u64>, usage: u64, soft: u64, now: u64) -> Option<u64> {
    (soft > 0 && usage > soft).then(|| since.unwrap_or(now))
}

impl Quota {
    pub fn new(limits: Limits, usage: Usage) -> Self {
        let mut q = Quota {
            limits,
            usage,
            ..Default::default()
        };
        q.update_timers(now_secs());
        q
    }

    /// May `more` bytes be allocated now?
    pub fn check_bytes(&self, more: u64, now: u64) -> Result<(), Exceeded> {
        if more == 0 {
            return Ok(());
        }
        let after = self.usage.bytes.saturating_add(more);
        let l = &self.limits;
        match verdict(
            after,
            l.block_soft.saturating_mul(1024),
            l.block_hard.saturating_mul(1024),
            self.block_over_since,
            l.block_grace,
            now,
        ) {
            Some(true) => Err(Exceeded::BlockHard),
            Some(false) => Err(Exceeded::BlockSoftGrace),
            None => Ok(()),
        }
    }

    /// May `more` inodes be allocated now?
    pub fn check_inodes(&self, more: u64, now: u64) -> Result<(), Exceeded> {
        let after = self.usage.inodes.saturating_add(more);
        let l = &self.limits;
        match verdict(
            after,
            l.inode_soft,
            l.inode_hard,
            self.inode_over_since,
            l.inode_grace,
            now,
        ) {
            Some(true) => Err(Exceeded::InodeHard),
            Some(false) => Err(Exceeded::InodeSoftGrace),
            None => Ok(()),
        }
    }

    /// Account a change at the first level only; frees never fail, so this
    /// never refuses. With second level on, use [`Quota::add_for`].
    pub fn add(&mut self, bytes: i64, inodes: i64, now: u64) {
        self.usage.bytes = self.usage.bytes.saturating_add_signed(bytes);
        self.usage.inodes = self.usage.inodes.saturating_add_signed(inodes);
        self.update_timers(now);
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
        self.update_timers(now_secs());
    }

    fn update_timers(&mut self, now: u64) {
        let l = self.limits;
        self.block_over_since = timer(
            self.block_over_since,
            self.usage.bytes,
            l.block_soft.saturating_mul(1024),
            now,
        );
        self.inode_over_since = timer(self.inode_over_since, self.usage.inodes, l.inode_soft, now);
    }
}

/// What a scan found: the whole tree and, when asked, per uid and per gid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub usage: Usage,
    /// Whether `users`/`groups` were counted.
    pub by_id: bool,
    pub users: BTreeMap<u32, Usage>,
    pub groups: BTreeMap<u32, Usage>,
}

/// Usage of the tree under `root` as `vzquota init` counts it: lstat, no
/// crossing of mount points, hardlinked inodes once, files and directories
/// (and everything else) as inodes.
pub fn scan(root: &Path) -> io::Result<Usage> {
    scan_tree(root, false).map(|s| s.usage)
}

/// [`scan`] plus usage per uid and per gid (second level).
pub fn scan_ids(root: &Path) -> io::Result<Scan> {
    scan_tree(root, true)
}

/// Is `path` the root of a mount? Catches bind mounts of the same file
/// system, which the device number alone does not show.
fn is_mount_root(path: &Path) -> bool {
    use rustix::fs::{AtFlags, StatxAttributes, StatxFlags};
    match rustix::fs::statx(
        rustix::fs::CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT,
        StatxFlags::empty(),
    ) {
        Ok(st) => st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT),
        // Kernels before 5.8 do not say; the device check still applies.
        Err(_) => false,
    }
}

/// Is this an overlayfs whiteout?
pub fn is_whiteout(md: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    md.file_type().is_char_device() && md.rdev() == 0
}

/// A file's attributes read again (`again`) until two reads agree on its
/// allocated blocks (`blocks`): ext4 moves a block from "held for
/// writeback" to "allocated" in two steps, and a look between them misses
/// it. A failed read ends it with the last one.
pub(crate) fn settled<T, B: PartialEq>(
    first: T,
    blocks: impl Fn(&T) -> B,
    mut again: impl FnMut() -> Option<T>,
) -> T {
    let mut cur = first;
    for _ in 0..8 {
        let Some(next) = again() else { break };
        let same = blocks(&next) == blocks(&cur);
        cur = next;
        if same {
            break;
        }
    }
    cur
}

/// The scan itself; the mount point below the root counts as one inode
/// (its own entry) and is not entered.
pub fn scan_tree(root: &Path, by_id: bool) -> io::Result<Scan> {
    let mut out = Scan {
        by_id,
        ..Scan::default()
    };
    let usage = &mut out.usage;
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut walk = walkdir::WalkDir::new(root)
        .follow_links(false)
        .same_file_system(true)
        .into_iter();
    while let Some(entry) = walk.next() {
        let entry = match entry {
            Ok(e) => e,
            // A file removed while we walk is simply not there any more.
            Err(e) if e.io_error().map(|e| e.kind()) == Some(io::ErrorKind::NotFound) => continue,
            Err(e) => return Err(io::Error::other(e)),
        };
        let md = match entry.metadata() {
            Ok(md) => md,
            Err(e) if e.io_error().map(|e| e.kind()) == Some(io::ErrorKind::NotFound) => continue,
            Err(e) => return Err(io::Error::other(e)),
        };
        if md.is_dir() && entry.depth() > 0 && is_mount_root(entry.path()) {
            walk.skip_current_dir();
        }
        // An overlay whiteout (character device 0:0) records a deleted
        // template file: deleting is free, so it is not counted.
        if is_whiteout(&md) {
            continue;
        }
        if !md.is_dir() && md.nlink() > 1 && !seen.insert((md.dev(), md.ino())) {
            continue;
        }
        let blocks = if md.is_file() {
            settled(
                md.blocks(),
                |b| *b,
                || {
                    std::fs::symlink_metadata(entry.path())
                        .ok()
                        .map(|m| m.blocks())
                },
            )
        } else {
            md.blocks()
        };
        let one = Usage {
            bytes: blocks * 512,
            inodes: 1,
        };
        usage.bytes += one.bytes;
        usage.inodes += 1;
        if by_id {
            for (map, id) in [(&mut out.users, md.uid()), (&mut out.groups, md.gid())] {
                let u = map.entry(id).or_default();
                u.bytes += one.bytes;
                u.inodes += 1;
            }
        }
    }
    Ok(out)
}

/// On-disk quota state of one VPS. Fields after version 1's are optional
/// so files written before them still read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    pub version: u32,
    /// Set while mounted; found set at mount means usage may be stale.
    pub dirty: bool,
    pub usage: Usage,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub block_over_since: Option<u64>,
    #[serde(default)]
    pub inode_over_since: Option<u64>,
    /// `vzquota on` was run and `off` not yet (version 2).
    #[serde(default)]
    pub running: bool,
    /// The tree `vzquota init -p` scanned, to rescan it (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Second level (version 2); absent = off.
    #[serde(default)]
    pub ugid: UgidQuota,
    /// While a simfs process serves the tree: its control socket, where
    /// `vzquota` asks for live figures and hands over new limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
}

/// Errors of the state file, naming it.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read quota state file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("quota state file {path} is not valid ({source}); remove it to force a rescan")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write quota state file {path}: {source}; check that its directory exists and is writable")]
    Write { path: PathBuf, source: io::Error },
}

impl StateFile {
    pub const VERSION: u32 = 2;

    /// `Ok(None)` when there is no file yet.
    pub fn load(path: &Path) -> Result<Option<StateFile>, StateError> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|source| StateError::Parse {
                path: path.to_owned(),
                source,
            })
    }

    /// Atomic replace: a crash leaves the old file or the new one.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let err = |source| StateError::Write {
            path: path.to_owned(),
            source,
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let body = serde_json::to_vec_pretty(self).map_err(|e| err(io::Error::other(e)))?;
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(&body).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)?;
        Ok(())
    }

    /// A fresh state from a live quota (not running, no path recorded).
    pub fn from_quota(q: &Quota, dirty: bool) -> Self {
        StateFile::default().with_quota(q, dirty)
    }

    /// This state with `q`'s usage, limits, timers and second level, keeping
    /// what the quota does not know (`running`, `path`): what a saver of a
    /// file `vzquota` also writes should use.
    pub fn with_quota(mut self, q: &Quota, dirty: bool) -> Self {
        self.version = Self::VERSION;
        self.dirty = dirty;
        self.usage = q.usage;
        self.limits = q.limits;
        self.block_over_since = q.block_over_since;
        self.inode_over_since = q.inode_over_since;
        self.ugid = q.ugid.clone();
        self
    }

    /// The live quota this state describes, grace timers carried over.
    pub fn to_quota(&self) -> Quota {
        let mut q = Quota {
            limits: self.limits,
            usage: self.usage,
            block_over_since: self.block_over_since,
            inode_over_since: self.inode_over_since,
            ugid: self.ugid.clone(),
        };
        q.refresh_timers(now_secs());
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_limit_grace_then_hard() {
        let mut q = Quota::new(Limits::new((10, 20), (5, 8), 100), Usage::default());
        assert_eq!(q.check_bytes(15 * 1024, 0), Ok(()));
        q.add(15 * 1024, 1, 1000);
        assert_eq!(q.block_over_since, Some(1000));
        assert_eq!(q.check_bytes(1024, 1050), Ok(()));
        assert_eq!(q.check_bytes(1024, 1101), Err(Exceeded::BlockSoftGrace));
        assert_eq!(q.check_bytes(6 * 1024, 1050), Err(Exceeded::BlockHard));
        q.add(-(10 * 1024), 0, 1200);
        assert_eq!(q.block_over_since, None);
        assert_eq!(q.check_inodes(7, 0), Ok(()));
        assert_eq!(q.check_inodes(8, 0), Err(Exceeded::InodeHard));
    }

    #[test]
    fn state_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.json");
        assert_eq!(StateFile::load(&p).unwrap(), None);
        let q = Quota::new(
            Limits::new((1, 2), (3, 4), 5),
            Usage {
                bytes: 4096,
                inodes: 2,
            },
        );
        let s = StateFile::from_quota(&q, true);
        s.save(&p).unwrap();
        assert_eq!(StateFile::load(&p).unwrap(), Some(s));
        std::fs::write(&p, b"nonsense").unwrap();
        let e = StateFile::load(&p).unwrap_err().to_string();
        assert!(e.contains("q.json") && e.contains("rescan"), "{e}");
    }

    #[test]
    fn scan_counts_hardlinks_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, vec![1u8; 10000]).unwrap();
        let one = scan(dir.path()).unwrap();
        std::fs::hard_link(&a, dir.path().join("b")).unwrap();
        assert_eq!(scan(dir.path()).unwrap(), one);
        std::fs::create_dir(dir.path().join("d")).unwrap();
        assert_eq!(scan(dir.path()).unwrap().inodes, one.inodes + 1);
    }
}
