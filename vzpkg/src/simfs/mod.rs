//! simfs: the FUSE view of a VPS root. It passes operations through to a
//! backing directory (the overlay mount), enforces the first-level quota and
//! reports the quota as the file system's size, as OpenVZ's simfs did.
//!
//! Every backing path is resolved relative to an `O_PATH` descriptor of the
//! backing root with `openat2(RESOLVE_BENEATH)` and the last component never
//! followed, so no name, symlink, `..` or concurrent rename seen through the
//! mount can reach outside the backing root.

mod fs;
#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Hand read-only opens to the kernel (FUSE passthrough) when it offers it.
    /// While such an open is live, the kernel refuses a writing open of the
    /// same file (EIO on 6.18), so this is off unless asked for.
    pub passthrough: bool,
    /// Threads serving requests.
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            passthrough: false,
            threads: 4,
        }
    }
}

/// A mounted simfs. Unmount with [`SimfsHandle::unmount`]; dropping it
/// unmounts too, ignoring errors.
pub struct SimfsHandle {
    session: Option<fuser::BackgroundSession>,
    quota: Arc<Mutex<Quota>>,
    state_file: PathBuf,
    mountpoint: PathBuf,
}

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
pub fn mount_with(
    backing: &Path,
    mountpoint: &Path,
    limits: Limits,
    state_file: &Path,
    options: Options,
) -> Result<SimfsHandle, SimfsError> {
    let root = rustix::fs::open(
        backing,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SimfsError::Backing {
        path: backing.to_owned(),
        source: e.into(),
    })?;
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

    let q = match StateFile::load(state_file)? {
        Some(s) if !s.dirty => {
            let mut q = Quota::new(limits, s.usage);
            // Keep a running grace period across remounts.
            if q.block_over_since.is_some() && s.block_over_since.is_some() {
                q.block_over_since = s.block_over_since;
            }
            if q.inode_over_since.is_some() && s.inode_over_since.is_some() {
                q.inode_over_since = s.inode_over_since;
            }
            q
        }
        _ => {
            let usage = quota::scan(backing).map_err(|source| SimfsError::Scan {
                path: backing.to_owned(),
                source,
            })?;
            Quota::new(limits, usage)
        }
    };
    StateFile::from_quota(&q, true).save(state_file)?;
    let quota = Arc::new(Mutex::new(q));

    let fs = fs::SimFs::new(root, quota.clone(), options.passthrough).map_err(|e| {
        SimfsError::Backing {
            path: backing.to_owned(),
            source: e,
        }
    })?;
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
                let _ = StateFile::from_quota(&q, false).save(state_file);
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
        mountpoint: mountpoint.to_owned(),
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
        let q = self
            .quota
            .lock()
            .map(|q| q.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        StateFile::from_quota(&q, false).save(&self.state_file)?;
        Ok(q.usage)
    }
}

impl Drop for SimfsHandle {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
