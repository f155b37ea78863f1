//! Making and destroying a VPS: its config, private area and identity.

use super::*;

impl Vz {
    /// Make a VPS: its config and private area with its own identity. No
    /// template file is copied.
    pub fn create(&self, ctid: u32, opts: &CreateOptions) -> Result<VpsConfig, VpsError> {
        if let Some(h) = &opts.hostname {
            if !conf::valid_hostname(h) {
                return Err(VpsError::BadValue {
                    option: "--hostname",
                    value: h.clone(),
                    why: "use letters, digits, '-' and '.' only",
                });
            }
        }
        let conf_path = self.root.conf(ctid);
        let dir = self.root.conf_dir();
        std::fs::create_dir_all(&dir).map_err(io_err(ctid, "create", &dir))?;
        let _lock = self.lock(ctid)?;
        if conf_path.exists() {
            return Err(VpsError::Exists {
                ctid,
                path: conf_path,
            });
        }
        // Resources (cgroups): `--config NAME`, a sample of keys.
        let sample = self.create_sample(ctid, opts)?;
        let store = self.open_store(ctid, &opts.ostemplate)?;
        let template_err = |source| VpsError::Template {
            ctid,
            template: opts.ostemplate.clone(),
            source,
        };
        let id = store.resolve(&opts.ostemplate).map_err(template_err)?;
        let id_for_ref = id.clone();
        let mut lowers = store.layer_trees(&id).map_err(template_err)?;
        lowers.reverse();
        // Held until the config (with the range) is written.
        let (userns, ids, _ids_lock) = self.create_ids(ctid, opts)?;
        let cfg = VpsConfig {
            ctid,
            ostemplate: opts.ostemplate.clone(),
            template_id: Some(id),
            ve_root: opts
                .root
                .as_deref()
                .map(|p| expand(p, ctid))
                .unwrap_or_else(|| self.root.default_root(ctid)),
            ve_private: opts
                .private
                .as_deref()
                .map(|p| expand(p, ctid))
                .unwrap_or_else(|| self.root.default_private(ctid)),
            hostname: Some(
                opts.hostname
                    .clone()
                    .unwrap_or_else(|| format!("vps{ctid}")),
            ),
            diskspace: opts
                .diskspace
                .or(sample.diskspace)
                .unwrap_or(DEFAULT_DISKSPACE),
            diskinodes: opts
                .diskinodes
                .or(sample.diskinodes)
                .unwrap_or(DEFAULT_DISKINODES),
            quotatime: sample.quotatime.unwrap_or(DEFAULT_QUOTATIME),
            quotaugidlimit: 0,
            // OpenVZ's default: the quota holds and `df` shows it. Reads go
            // through passthrough (template files: one shared page cache); a
            // mount scans only the private area; metadata-heavy VPSs may
            // choose the bare overlay (`--diskquota no`), which is faster.
            disk_quota: opts.disk_quota.unwrap_or(true),
            devnodes: Vec::new(),
            devices: Vec::new(),
            capability: Vec::new(),
            userns,
            ids,
            ip_address: Vec::new(),
            netif: Vec::new(),
            nameserver: Vec::new(),
            searchdomain: Vec::new(),
            resources: sample.resources.clone(),
        };
        if let Some(parent) = cfg.ve_private.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(ctid, "create", parent))?;
        }
        // create_dir fails on an existing area: never adopt someone's files.
        match std::fs::create_dir(&cfg.ve_private) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(VpsError::Exists {
                    ctid,
                    path: cfg.ve_private.clone(),
                })
            }
            Err(e) => return Err(io_err(ctid, "create", &cfg.ve_private)(e)),
        }
        let holder = self.store_holder(ctid);
        let made = self
            .make_private(&cfg, &lowers)
            .and_then(|()| {
                std::fs::create_dir_all(&cfg.ve_root).map_err(io_err(ctid, "create", &cfg.ve_root))
            })
            .and_then(|()| {
                // Before the config exists: a VPS is never without its hold
                // on the template's layers (gc keeps them).
                store
                    .add_ref(&holder, &id_for_ref)
                    .map_err(|source| VpsError::Store {
                        path: self.store.clone(),
                        source,
                    })
            })
            .and_then(|()| {
                write_atomic(
                    ctid,
                    &conf_path,
                    cfg.to_conf(sample.conf.clone()).render().as_bytes(),
                )
            });
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&cfg.ve_private);
            let _ = store.remove_ref(&holder);
            return Err(e);
        }
        Ok(cfg)
    }

    /// This VPS's name among the store's references: the CTID and which
    /// VZ root it lives in (two roots may share one store).
    pub(super) fn store_holder(&self, ctid: u32) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.root.base.as_os_str().as_encoded_bytes());
        format!("vps-{ctid}-{}", &hex::encode(digest)[..12])
    }

    /// The upper dir (with the identity files) and the work dir.
    pub(super) fn make_private(&self, cfg: &VpsConfig, lowers: &[PathBuf]) -> Result<(), VpsError> {
        let ctid = cfg.ctid;
        let upper = cfg.upper();
        let work = cfg.work();
        for d in [&upper, &work] {
            std::fs::create_dir(d).map_err(io_err(ctid, "create", d))?;
        }
        std::fs::set_permissions(&cfg.ve_private, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err(ctid, "chmod", &cfg.ve_private))?;
        // An upper directory's owner and mode win over the layers': copy them.
        for rel in ["", "etc"] {
            let at = upper.join(rel);
            let lower = lowers.iter().map(|l| l.join(rel)).find(|p| p.is_dir());
            if !rel.is_empty() {
                std::fs::create_dir(&at).map_err(io_err(ctid, "create", &at))?;
            }
            let (mode, uid, gid) = match lower.and_then(|l| std::fs::metadata(l).ok()) {
                Some(m) => (m.mode() & 0o7777, m.uid(), m.gid()),
                None => (0o755, 0, 0),
            };
            // Seen from inside, as the idmapped layers show it.
            let (uid, gid) = cfg.id_range().map_or((uid, gid), |r| r.host(uid, gid));
            std::fs::set_permissions(&at, std::fs::Permissions::from_mode(mode))
                .map_err(io_err(ctid, "chmod", &at))?;
            std::os::unix::fs::chown(&at, Some(uid), Some(gid))
                .map_err(io_err(ctid, "chown", &at))?;
        }
        self.write_identity(cfg, &upper, true)
    }

    /// `etc/hostname`, `etc/hosts` and (`fresh_id`) `etc/machine-id` under `top`.
    pub(super) fn write_identity(
        &self,
        cfg: &VpsConfig,
        top: &Path,
        fresh_id: bool,
    ) -> Result<(), VpsError> {
        let ctid = cfg.ctid;
        let host = cfg.hostname.clone().unwrap_or_else(|| format!("vps{ctid}"));
        let mut files = vec![
            ("etc/hostname", format!("{host}\n"), 0o644),
            (
                "etc/hosts",
                crate::net::names::hosts_file(&host, &cfg.ip_address),
                0o644,
            ),
        ];
        // Networking (issue 26): the resolver.
        if let Some(text) = network::resolv_conf(cfg) {
            files.push(("etc/resolv.conf", text, 0o644));
        }
        if fresh_id {
            files.push(("etc/machine-id", machine_id(ctid)?, 0o444));
        }
        // Resolved inside the VPS's tree: a symlink planted there (`etc`
        // pointing at the host's /etc) must not send the write onto the host.
        let etc = top.join("etc");
        crate::sys::resolve::make_dir_in(top, "etc", 0o755)
            .map_err(io_err(ctid, "create", &etc))?;
        let dir = crate::sys::resolve::open_dir_in(top, Path::new("etc"))
            .map_err(io_err(ctid, "open", &etc))?;
        // Root's inside: the range's first ids for an unprivileged VPS.
        let owner = cfg.id_range().map_or((0, 0), |r| r.host(0, 0));
        for (rel, text, mode) in files {
            let p = top.join(rel);
            let name = rel.trim_start_matches("etc/");
            // Replace, never write through: the lower file may be a symlink.
            crate::sys::resolve::replace_file(&dir, name, text.as_bytes(), mode, owner)
                .map_err(io_err(ctid, "write", &p))?;
        }
        Ok(())
    }

    /// Remove a stopped VPS: unmount, then its private area, config, pid
    /// file and empty mount point. Nothing else is touched.
    pub fn destroy(&self, ctid: u32) -> Result<(), VpsError> {
        let cfg = self.config(ctid)?;
        let lock = self.lock(ctid)?;
        self.umount_locked(&cfg)?;
        self.net_clean(ctid)?;
        // Resources (cgroups): a cgroup a crash left behind.
        self.remove_cgroup(ctid)?;
        let gone = |p: &Path, r: std::io::Result<()>| match r {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(ctid, "remove", p)(e)),
            _ => Ok(()),
        };
        gone(&cfg.ve_private, std::fs::remove_dir_all(&cfg.ve_private))?;
        let conf = self.root.conf(ctid);
        gone(&conf, std::fs::remove_file(&conf))?;
        for p in [
            self.root.pid_file(ctid),
            self.root.view_log(ctid),
            self.root.simfs_pid_file(ctid),
            self.root.simfs_socket(ctid),
            self.root.simfs_log(ctid),
            // As vzctl destroy runs `vzquota drop`.
            self.root.quota_file(ctid),
        ] {
            gone(&p, std::fs::remove_file(&p))?;
        }
        // The template may now be collected (if nothing else holds it).
        if self.store.is_dir() {
            if let Ok(store) = Store::open(&self.store) {
                store
                    .remove_ref(&self.store_holder(ctid))
                    .map_err(|source| VpsError::Store {
                        path: self.store.clone(),
                        source,
                    })?;
            }
        }
        // Only if empty: never delete files someone put there.
        let _ = std::fs::remove_dir(&cfg.ve_root);
        let _ = std::fs::remove_dir(self.root.simfs_mount(ctid));
        let _ = std::fs::remove_dir_all(walls::node_dir(&self.root.base, ctid));
        let _ = std::fs::remove_file(self.root.lock_file(ctid));
        drop(lock);
        Ok(())
    }
}
