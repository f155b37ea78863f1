//! simfs: the FUSE view of a VPS's private area. It passes operations
//! through to a backing directory, enforces the quota and reports it as the
//! file system's size, as OpenVZ's simfs did.
//!
//! On a VPS, simfs serves the private area (the overlay's upper and work
//! dirs) and the overlay goes on top: everything simfs holds is charged,
//! and a template file's copy-up is the overlay writing the copy through
//! simfs, charged as any new file. Template files the VPS has not changed
//! never reach simfs.
//!
//! Every backing path is resolved relative to an `O_PATH` descriptor of the
//! backing root with `openat2(RESOLVE_BENEATH)` and the last component never
//! followed, so no name, symlink, `..` or concurrent rename seen through the
//! mount can reach outside the backing root.

pub mod control;
mod fs;
#[cfg(test)]
mod tests;

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::quota::{self, Limits, Quota, StateError, StateFile, Usage};

/// Errors of mounting and unmounting, naming the path and the fix.
#[derive(Debug, thiserror::Error)]
pub enum SimfsError {
    #[error(
        "cannot open backing directory {path}: {source}; check that it exists and is a directory"
    )]
    Backing { path: PathBuf, source: io::Error },
    #[error("the kernel refuses openat2 with RESOLVE_BENEATH on {path} ({source}); simfs needs Linux 5.6 or later")]
    NoOpenat2 { path: PathBuf, source: io::Error },
    #[error("cannot scan {path} for quota usage: {source}")]
    Scan { path: PathBuf, source: io::Error },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot mount simfs on {path}: {source}; check that /dev/fuse exists (modprobe fuse), that the mount point is a directory and that this runs as root")]
    Mount { path: PathBuf, source: io::Error },
    #[error("cannot unmount simfs at {path}: {source}; close files open under it and retry")]
    Unmount { path: PathBuf, source: io::Error },
}

/// Knobs beyond the quota.
#[derive(Clone, Debug)]
pub struct Options {
    /// Hand read-only opens to the kernel (FUSE passthrough, Linux 6.9+)
    /// so it reads the backing files itself, template files from the shared
    /// page cache.
    pub passthrough: bool,
    /// Threads serving requests.
    pub threads: usize,
    /// `QUOTAUGIDLIMIT`: 0 turns the second level off; `None` keeps what
    /// the state file has.
    pub ugid_limit: Option<u64>,
    /// The control socket to name in the state file (for `vzquota`).
    pub socket: Option<PathBuf>,
    /// An unprivileged VPS's first host uid and gid: the second level
    /// counts by the VPS's own ids, and the first uid is its root.
    pub id_shift: Option<(u32, u32)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            passthrough: true,
            threads: 4,
            ugid_limit: None,
            socket: None,
            id_shift: None,
        }
    }
}

/// A mounted simfs. Unmount with [`SimfsHandle::unmount`]; dropping it
/// unmounts too, ignoring errors.
pub struct SimfsHandle {
    session: Option<fuser::BackgroundSession>,
    quota: Arc<Mutex<Quota>>,
    state_file: PathBuf,
    /// What the state file holds beyond the live quota (path, socket).
    state: Mutex<StateFile>,
    mountpoint: PathBuf,
    settling: Arc<fs::Settling>,
}

/// How long a query of the live figures waits for releases to settle (see
/// [`SimfsHandle::settle`]); past it, it answers with what it has.
const SETTLE_WAIT: Duration = Duration::from_secs(5);

/// Mount simfs over `backing` at `mountpoint` with default [`Options`].
pub fn mount(
    backing: &Path,
    mountpoint: &Path,
    limits: Limits,
    state_file: &Path,
) -> Result<SimfsHandle, SimfsError> {
    mount_with(backing, mountpoint, limits, state_file, Options::default())
}

/// Mount simfs; usage comes from `state_file` when it was left clean, from a
/// scan of `backing` otherwise. The file is marked dirty while mounted.
/// A directory simfs serves or counts, held by an `O_PATH` fd.
fn open_dir(path: &Path) -> Result<OwnedFd, SimfsError> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SimfsError::Backing {
        path: path.to_owned(),
        source: e.into(),
    })
}

/// Whether the file system at `path` is itself stacked on another
/// (overlayfs, FUSE, eCryptfs), so that simfs passing its files through
/// would stand two levels up.
pub fn stacked(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(is_stacked)
}

pub(crate) fn stacked_fd(fd: &impl std::os::fd::AsFd) -> bool {
    rustix::fs::fstatfs(fd).is_ok_and(is_stacked)
}

fn is_stacked(s: rustix::fs::StatFs) -> bool {
    const OVERLAYFS: i64 = 0x794c_7630;
    const FUSE: i64 = 0x6573_5546;
    const ECRYPTFS: i64 = 0xf15f;
    // f_type is i64 on x86_64 but not on every target.
    #[allow(clippy::unnecessary_cast)]
    [OVERLAYFS, FUSE, ECRYPTFS].contains(&(s.f_type as i64))
}

pub fn mount_with(
    backing: &Path,
    mountpoint: &Path,
    limits: Limits,
    state_file: &Path,
    options: Options,
) -> Result<SimfsHandle, SimfsError> {
    let root = open_dir(backing)?;
    rustix::fs::openat2(
        &root,
        ".",
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH,
    )
    .map_err(|e| SimfsError::NoOpenat2 {
        path: backing.to_owned(),
        source: e.into(),
    })?;

    let saved = StateFile::load(state_file)?;
    let mut q = saved.as_ref().map(StateFile::to_quota).unwrap_or_default();
    q.ugid.shift = options.id_shift;
    q.set_limits(limits);
    if let Some(l) = options.ugid_limit {
        if l != q.ugid.limit || (l > 0) != q.ugid.on {
            q.set_ugid_limit(l);
        }
    }
    // A clean file left by an unmount is exact; anything else (no file, a
    // crash left it dirty, per-id usage unknown, another tree) is rescanned.
    // Everything under the backing directory is charged.
    let exact = saved
        .as_ref()
        .is_some_and(|s| !s.dirty && s.path.as_deref().is_none_or(|p| p == backing))
        && !q.ugid.needs_scan();
    if !exact {
        let found =
            quota::scan_tree(backing, q.ugid.active()).map_err(|source| SimfsError::Scan {
                path: backing.to_owned(),
                source,
            })?;
        q.load_scan(&found, quota::now_secs());
    }
    let mut state = saved.unwrap_or_default();
    state.path = Some(backing.to_owned());
    state.running = true;
    state.socket = options.socket.clone();
    // Durable before anything changes: a crash from here on means rescan.
    state.clone().with_quota(&q, true).save(state_file)?;
    let quota = Arc::new(Mutex::new(q));

    let fs = fs::SimFs::new(root, quota.clone(), options.passthrough)
        .map_err(|e| SimfsError::Backing {
            path: backing.to_owned(),
            source: e,
        })?
        .with_root_uid(options.id_shift.map_or(0, |(uid, _)| uid));
    let settling = fs.settling();
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("/dev/simfs".into()),
        fuser::MountOption::Subtype("simfs".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::Dev,
        fuser::MountOption::Suid,
    ];
    config.acl = fuser::SessionACL::All;
    config.n_threads = Some(options.threads.max(1));
    let mounted = fuser::Session::new(fs, mountpoint, &config).and_then(fuser::Session::spawn);
    let session = match mounted {
        Ok(s) => s,
        Err(source) => {
            // Nothing ran: the usage we have is exact.
            if let Ok(q) = quota.lock() {
                state.running = false;
                let _ = state.with_quota(&q, false).save(state_file);
            }
            return Err(SimfsError::Mount {
                path: mountpoint.to_owned(),
                source,
            });
        }
    };
    Ok(SimfsHandle {
        session: Some(session),
        quota,
        state_file: state_file.to_owned(),
        state: Mutex::new(state),
        mountpoint: mountpoint.to_owned(),
        settling,
    })
}

impl SimfsHandle {
    pub fn usage(&self) -> Usage {
        self.quota.lock().map(|q| q.usage).unwrap_or_default()
    }

    pub fn limits(&self) -> Limits {
        self.quota.lock().map(|q| q.limits).unwrap_or_default()
    }

    /// Change limits on the mounted tree (`vzctl set --diskspace` live).
    pub fn set_limits(&self, limits: Limits) {
        if let Ok(mut q) = self.quota.lock() {
            q.set_limits(limits);
        }
    }

    /// `QUOTAUGIDLIMIT` live: 0 turns the second level off; turning it on
    /// counts the private area per uid and gid now.
    pub fn set_ugid_limit(&self, limit: u64) -> Result<(), SimfsError> {
        let mut q = self.quota.lock().unwrap_or_else(|p| p.into_inner());
        if limit != q.ugid.limit || (limit > 0) != q.ugid.on {
            q.set_ugid_limit(limit);
        }
        self.count_ids(&mut q)
    }

    /// Per-id usage unknown (second level just turned on): scan for it.
    /// The quota stays locked meanwhile, so nothing changes under the scan.
    fn count_ids(&self, q: &mut Quota) -> Result<(), SimfsError> {
        if !q.ugid.needs_scan() {
            return Ok(());
        }
        let Some(path) = self.state.lock().ok().and_then(|s| s.path.clone()) else {
            return Ok(());
        };
        let found = quota::scan_tree(&path, true).map_err(|source| SimfsError::Scan {
            path: path.clone(),
            source,
        })?;
        q.load_scan(&found, quota::now_secs());
        Ok(())
    }

    /// Let every close made before now be counted. The kernel sends a
    /// close's release after `close` returns, and the release of a written
    /// file may wait for its writeback to settle what it allocated. A
    /// statfs through the mount queues behind the releases the kernel sent
    /// before it; then wait for those still settling (not for releases
    /// begun after this call).
    pub fn settle(&self) {
        let _ = rustix::fs::statfs(&self.mountpoint);
        self.settling.wait_begun(SETTLE_WAIT);
    }

    /// Write the live figures to the state file (still marked dirty: only
    /// an unmount makes it exact for the next mount).
    pub fn sync(&self) -> Result<(), SimfsError> {
        let q = self.snapshot();
        let s = self.state.lock().map(|s| s.clone()).unwrap_or_default();
        s.with_quota(&q, true).save(&self.state_file)?;
        Ok(())
    }

    /// Take limits from the state file, or from `from` where `vzquota
    /// setlimit`/`setlimit2` wrote the state it wants: first level, second
    /// level on/off and limit, per-id limits and grace (and the scanned
    /// path). Usage stays the live one, and the state file is ours to save:
    /// vzquota writing it itself could be undone by our next save.
    pub fn reload(&self, from: Option<&Path>) -> Result<(), SimfsError> {
        let Some(file) = StateFile::load(from.unwrap_or(&self.state_file))? else {
            return self.sync();
        };
        if let (Some(p), Ok(mut s)) = (&file.path, self.state.lock()) {
            s.path = Some(p.clone());
        }
        if let Ok(mut q) = self.quota.lock() {
            q.set_limits(file.limits);
            if file.ugid.on != q.ugid.on || file.ugid.limit != q.ugid.limit {
                q.set_ugid(file.ugid.on, file.ugid.limit);
            }
            q.ugid.user_grace = file.ugid.user_grace;
            q.ugid.group_grace = file.ugid.group_grace;
            let now = quota::now_secs();
            for kind in quota::IdKind::BOTH {
                for (id, e) in file.ugid.entries(kind) {
                    q.set_id_limits(kind, *id, e.limits, now);
                }
            }
            self.count_ids(&mut q)?;
        }
        self.sync()
    }

    /// Act on the live quota (second-level limits set from the host).
    pub fn with_quota<T>(&self, f: impl FnOnce(&mut Quota) -> T) -> T {
        let mut q = self.quota.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut q)
    }

    fn snapshot(&self) -> Quota {
        self.quota
            .lock()
            .map(|q| q.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmount, wait for the session to end, and save the state clean.
    pub fn unmount(mut self) -> Result<Usage, SimfsError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<Usage, SimfsError> {
        let Some(session) = self.session.take() else {
            return Ok(self.usage());
        };
        session
            .umount_and_join()
            .map_err(|source| SimfsError::Unmount {
                path: self.mountpoint.clone(),
                source,
            })?;
        let q = self.snapshot();
        let mut s = self.state.lock().map(|s| s.clone()).unwrap_or_default();
        s.running = false;
        s.socket = None;
        s.with_quota(&q, false).save(&self.state_file)?;
        Ok(q.usage)
    }
}

impl Drop for SimfsHandle {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
