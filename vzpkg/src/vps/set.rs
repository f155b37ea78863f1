//! `vzctl set`: changing a VPS's settings, live and in its config.

use super::*;

impl Vz {
    /// Change settings: live where the VPS runs (hostname) or is mounted
    /// (disk limits), in the config and the VPS's files with `save`.
    /// Returns whether anything was applied live.
    pub fn set(&self, ctid: u32, opts: &SetOptions) -> Result<bool, VpsError> {
        let mut cfg = self.config(ctid)?;
        if let Some(h) = &opts.hostname {
            if !conf::valid_hostname(h) {
                return Err(VpsError::BadValue {
                    option: "--hostname",
                    value: h.clone(),
                    why: "use letters, digits, '-' and '.' only",
                });
            }
        }
        // Isolation (walls.rs): bad grants are refused before anything changes.
        let mut devnodes = cfg.devnodes.clone();
        for a in &opts.devnodes {
            devnodes = walls::merge_devnodes(&devnodes, a)?;
        }
        let mut devices = cfg.devices.clone();
        for a in &opts.devices {
            devices = walls::merge_devices(&devices, a)?;
        }
        let mut capability = cfg.capability.clone();
        for a in &opts.capability {
            capability = walls::merge_capability(&capability, a)?;
        }
        // Networking (issue 26): the lists as they will be.
        let net = self.net_plan(&cfg, opts)?;
        let _lock = self.lock(ctid)?;
        let mut live = false;
        self.set_userns_locked(&mut cfg, opts)?;
        if !opts.devnodes.is_empty() || !opts.devices.is_empty() {
            let mut now = cfg.clone();
            now.devnodes = devnodes.clone();
            now.devices = devices.clone();
            if let (Some(pid), Some(new)) = (
                self.running_pid(&cfg),
                walls::for_vps(&self.root.base, &now)?,
            ) {
                self.update_device_rules(ctid, &new)?;
                new.make_nodes_in(pid, ctid)?;
                live = true;
            }
        }
        let mounted = self.mount_state(&cfg)? == MountState::Mounted;
        let quota_change = opts.diskspace.is_some()
            || opts.diskinodes.is_some()
            || opts.quotatime.is_some()
            || opts.quotaugidlimit.is_some();
        if quota_change && cfg.disk_quota && mounted {
            let mut now = cfg.clone();
            now.diskspace = opts.diskspace.unwrap_or(cfg.diskspace);
            now.diskinodes = opts.diskinodes.unwrap_or(cfg.diskinodes);
            now.quotatime = opts.quotatime.unwrap_or(cfg.quotatime);
            let ugid = opts.quotaugidlimit.unwrap_or(cfg.quotaugidlimit);
            daemon::set_limits(self, ctid, daemon::limits_of(&now), ugid)?;
            live = true;
        }
        // Resources (cgroups): live on a running VPS; refused before it is
        // saved when this host cannot hold it.
        let resources = cfg.resources.merged(&opts.resources);
        if opts.resources.any() {
            live |= self.set_resources(&cfg, &resources)?;
        }
        if let (Some(h), Some(pid)) = (&opts.hostname, self.running_pid(&cfg)) {
            process::set_hostname_in(pid, h).map_err(|source| VpsError::Exec {
                ctid,
                command: format!("sethostname {h}"),
                step: "set the hostname",
                source,
            })?;
            live = true;
        }
        live |= self.net_set_live(&cfg, &net, opts.hostname.as_ref())?;
        if !opts.save {
            return Ok(live);
        }
        if let Some(h) = &opts.hostname {
            cfg.hostname = Some(h.clone());
        }
        cfg.diskspace = opts.diskspace.unwrap_or(cfg.diskspace);
        cfg.diskinodes = opts.diskinodes.unwrap_or(cfg.diskinodes);
        cfg.quotatime = opts.quotatime.unwrap_or(cfg.quotatime);
        cfg.quotaugidlimit = opts.quotaugidlimit.unwrap_or(cfg.quotaugidlimit);
        cfg.disk_quota = opts.disk_quota.unwrap_or(cfg.disk_quota);
        cfg.devnodes = devnodes;
        cfg.devices = devices;
        cfg.capability = capability;
        net.apply_to(&mut cfg);
        cfg.resources = resources;
        self.save_config(&cfg)?;
        if opts.hostname.is_some() || net.changes_names() {
            // Through the mount (the overlay copies up, simfs charges the
            // files); a VPS with quota is mounted for it, as its clean
            // quota state would not see files written into the upper dir.
            // Without quota, straight into the upper dir.
            let mounted_here =
                !mounted && cfg.disk_quota && self.mount_locked(&cfg)? != Mounted::Already;
            let top = if mounted || mounted_here {
                cfg.ve_root.clone()
            } else {
                cfg.upper()
            };
            let written = self.write_identity(&cfg, &top, false);
            if mounted_here {
                self.umount_locked(&cfg)?;
            }
            written?;
        }
        Ok(live)
    }

    /// `--userns`/`--local_uid`/`--local_gid`: convert a stopped VPS (its
    /// root is unmounted for it and mounted again after if it was).
    fn set_userns_locked(&self, cfg: &mut VpsConfig, opts: &SetOptions) -> Result<(), VpsError> {
        let ctid = cfg.ctid;
        if opts.userns.is_none() && opts.local_uid.is_none() && opts.local_gid.is_none() {
            return Ok(());
        }
        let want = opts.userns.unwrap_or(cfg.userns);
        if !opts.save {
            return Err(VpsError::BadValue {
                option: "--userns",
                value: if want { "yes" } else { "no" }.into(),
                why: "changes the owners of the private area; give --save",
            });
        }
        if let Some(pid) = self.running_pid(cfg) {
            return Err(VpsError::Running { ctid, pid });
        }
        let was_mounted = self.mount_state(cfg)? != MountState::Unmounted;
        if was_mounted {
            self.umount_locked(cfg)?;
        }
        let changed = self.convert_ids(cfg, want, opts.local_uid, opts.local_gid);
        if was_mounted {
            self.mount_locked(cfg)?;
        }
        changed.map(|_| ())
    }
}
