//! Mounting a VPS: simfs over its private area and the overlay on its
//! root, judged against what is mounted now.

use super::*;

impl Vz {
    pub(super) fn mounts_at(
        &self,
        ctid: u32,
        at: &Path,
    ) -> Result<Vec<overlay::MountEntry>, VpsError> {
        overlay::mounts_at(at).map_err(io_err(ctid, "read the mount table for", at))
    }

    /// The overlay's upper and work dirs: the private area's `fs/` and
    /// `work/`, through simfs when the quota is on.
    pub(super) fn upper_work(&self, cfg: &VpsConfig) -> (PathBuf, PathBuf) {
        if cfg.disk_quota {
            let at = self.root.simfs_mount(cfg.ctid);
            (at.join("fs"), at.join("work"))
        } else {
            (cfg.upper(), cfg.work())
        }
    }

    /// What is mounted for the VPS, judged against what `mount` makes: the
    /// overlay on the root, and (with quota) simfs under it with a live
    /// process.
    pub(super) fn mount_state(&self, cfg: &VpsConfig) -> Result<MountState, VpsError> {
        let ctid = cfg.ctid;
        let lowers = self.lowers(cfg).unwrap_or_default();
        let (upper, _) = self.upper_work(cfg);
        let ov = overlay::state(&cfg.ve_root, &upper, &lowers).map_err(io_err(
            ctid,
            "read the mount table for",
            &cfg.ve_root,
        ))?;
        let simfs_at = self.root.simfs_mount(ctid);
        let under = self.mounts_at(ctid, &simfs_at)?;
        if !cfg.disk_quota {
            if !under.is_empty() {
                return Ok(MountState::Stale(format!(
                    "simfs is left on {} (DISK_QUOTA was changed)",
                    simfs_at.display()
                )));
            }
            return Ok(ov);
        }
        match ov {
            MountState::Unmounted if under.is_empty() => return Ok(MountState::Unmounted),
            MountState::Unmounted => {
                return Ok(MountState::Stale(format!(
                    "a {} mount on {} without the overlay",
                    under.last().map_or("", |m| m.fs_type.as_str()),
                    simfs_at.display()
                )))
            }
            MountState::Stale(why) => return Ok(MountState::Stale(format!("its overlay: {why}"))),
            MountState::Mounted => {}
        }
        match &under[..] {
            [] => return Ok(MountState::Stale("simfs is not mounted".into())),
            [m] if daemon::is_simfs(m) => {}
            [m] => {
                return Ok(MountState::Stale(format!(
                    "a {} mount on {}",
                    m.fs_type,
                    simfs_at.display()
                )))
            }
            more => {
                return Ok(MountState::Stale(format!(
                    "{} mounts stacked on {}",
                    more.len(),
                    simfs_at.display()
                )))
            }
        }
        // A killed simfs process leaves ENOTCONN ("Transport endpoint is
        // not connected") behind. statfs always asks the process; a stat
        // may be answered from the kernel's attribute cache.
        if let Err(e) = rustix::fs::statvfs(&simfs_at) {
            return Ok(MountState::Stale(format!(
                "simfs: statfs fails: {}",
                std::io::Error::from(e)
            )));
        }
        if daemon::live_pid(self, ctid).is_none() {
            return Ok(MountState::Stale("its simfs process is gone".into()));
        }
        Ok(MountState::Mounted)
    }

    /// Take down whatever is left of a mount (a dead simfs process, an
    /// overlay without simfs, a foreign mount); nothing may run on it.
    pub(super) fn clear_stale(&self, cfg: &VpsConfig) -> Result<(), VpsError> {
        let ctid = cfg.ctid;
        if let Some(pid) = self.running_pid(cfg) {
            return Err(VpsError::Running { ctid, pid });
        }
        // The overlay first, detached, so a live simfs process can exit;
        // its state stays dirty if it cannot save it, and the next mount
        // rescans.
        overlay::unmount_all(&cfg.ve_root, true).map_err(umount_err(ctid, &cfg.ve_root))?;
        let simfs_at = self.root.simfs_mount(ctid);
        daemon::stop(self, ctid, Duration::from_secs(5)).map_err(umount_err(ctid, &simfs_at))?;
        overlay::unmount_all(&simfs_at, true).map_err(umount_err(ctid, &simfs_at))?;
        // Earlier versions mounted the overlay inside the private area,
        // which simfs now shows: it must not stay there.
        let old = cfg.ve_private.join("mnt");
        overlay::unmount_all(&old, true).map_err(umount_err(ctid, &old))?;
        let _ = std::fs::remove_dir(&old);
        Ok(())
    }

    pub(super) fn mount_locked(&self, cfg: &VpsConfig) -> Result<Mounted, VpsError> {
        let ctid = cfg.ctid;
        let stale = match self.mount_state(cfg)? {
            MountState::Mounted => return Ok(Mounted::Already),
            MountState::Unmounted => None,
            MountState::Stale(why) => {
                self.clear_stale(cfg)?;
                Some(why)
            }
        };
        if !cfg.upper().is_dir() {
            return Err(VpsError::Mount {
                ctid,
                target: cfg.ve_root.clone(),
                step: "find the private area",
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} is missing", cfg.upper().display()),
                ),
            });
        }
        let lowers = self.lowers(cfg)?;
        let userns = self.vps_userns(cfg)?;
        let simfs_at = self.root.simfs_mount(ctid);
        std::fs::create_dir_all(&cfg.ve_root).map_err(io_err(ctid, "create", &cfg.ve_root))?;
        if cfg.disk_quota {
            std::fs::create_dir_all(&simfs_at).map_err(io_err(ctid, "create", &simfs_at))?;
            daemon::spawn(self, cfg)?;
        }
        let (upper, work) = self.upper_work(cfg);
        let ns = userns.as_ref().map(|f| f.as_fd());
        if let Err((step, source)) = overlay::mount(&cfg.ve_root, &lowers, &upper, &work, ns) {
            if cfg.disk_quota {
                let _ = daemon::stop(self, ctid, Duration::from_secs(2));
                let _ = overlay::unmount_all(&simfs_at, true);
            }
            return Err(VpsError::Mount {
                ctid,
                target: cfg.ve_root.clone(),
                step,
                source,
            });
        }
        Ok(stale.map_or(Mounted::Fresh, Mounted::Replaced))
    }

    /// Mount the VPS's root (a no-op if it is; a stale mount is replaced).
    pub fn mount(&self, ctid: u32) -> Result<Mounted, VpsError> {
        let cfg = self.config(ctid)?;
        let _lock = self.lock(ctid)?;
        self.mount_locked(&cfg)
    }

    /// Unmount the VPS's root (a no-op if it is not mounted).
    pub fn umount(&self, ctid: u32) -> Result<bool, VpsError> {
        let cfg = self.config(ctid)?;
        let _lock = self.lock(ctid)?;
        self.umount_locked(&cfg)
    }

    /// The overlay first (a busy root is an error and stays mounted), then
    /// simfs under it (its process then saves the quota state clean and
    /// exits).
    pub(super) fn umount_locked(&self, cfg: &VpsConfig) -> Result<bool, VpsError> {
        let ctid = cfg.ctid;
        if let Some(pid) = self.running_pid(cfg) {
            return Err(VpsError::Running { ctid, pid });
        }
        let simfs_at = self.root.simfs_mount(ctid);
        let was = !self.mounts_at(ctid, &cfg.ve_root)?.is_empty()
            || !self.mounts_at(ctid, &simfs_at)?.is_empty();
        overlay::unmount_all(&cfg.ve_root, false).map_err(umount_err(ctid, &cfg.ve_root))?;
        if cfg.disk_quota {
            if let Err(e) = daemon::unmount(self, ctid, &simfs_at) {
                // Busy from the host side: put the overlay back, so the VPS
                // is as it was.
                if let (Ok(lowers), Ok(ns)) = (self.lowers(cfg), self.vps_userns(cfg)) {
                    let (upper, work) = self.upper_work(cfg);
                    let ns = ns.as_ref().map(|f| f.as_fd());
                    let _ = overlay::mount(&cfg.ve_root, &lowers, &upper, &work, ns);
                }
                return Err(e);
            }
        }
        // What is left: a simfs whose process died.
        daemon::stop(self, ctid, Duration::from_secs(5)).map_err(umount_err(ctid, &simfs_at))?;
        overlay::unmount_all(&simfs_at, false).map_err(umount_err(ctid, &simfs_at))?;
        Ok(was)
    }
}
