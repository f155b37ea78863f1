//! A VPS's processes: status, start, stop, and commands run inside.

use super::*;

impl Vz {
    /// The pid of the VPS's live PID 1, from the pid file checked against /proc.
    pub(super) fn running_pid(&self, cfg: &VpsConfig) -> Option<i32> {
        let text = std::fs::read_to_string(self.root.pid_file(cfg.ctid)).ok()?;
        let pid: i32 = text.trim().parse().ok().filter(|p| *p > 0)?;
        // A root that cannot be stat'ed (simfs's process died) cannot be
        // compared: then the pid file and the namespace have to do.
        let mounted = !overlay::mounts_at(&cfg.ve_root).ok()?.is_empty()
            && std::fs::metadata(&cfg.ve_root).is_ok();
        process::is_vps_init(pid, mounted.then_some(cfg.ve_root.as_path())).then_some(pid)
    }

    pub fn status(&self, ctid: u32) -> Result<Status, VpsError> {
        let (exists, root, cfg) = match self.config(ctid) {
            Ok(cfg) => (true, cfg.ve_root.clone(), Some(cfg)),
            Err(VpsError::NotFound { .. }) => (false, self.root.default_root(ctid), None),
            Err(e) => return Err(e),
        };
        let (mounted, stale_mount) = match &cfg {
            Some(cfg) => match self.mount_state(cfg)? {
                MountState::Mounted => (true, None),
                MountState::Unmounted => (false, None),
                MountState::Stale(why) => (false, Some(why)),
            },
            None => (!self.mounts_at(ctid, &root)?.is_empty(), None),
        };
        let pid = cfg.as_ref().and_then(|c| self.running_pid(c));
        Ok(Status {
            ctid,
            exists,
            mounted,
            running: pid.is_some(),
            pid,
            stale_mount,
        })
    }

    /// Every VPS with a config, by CTID.
    pub fn list(&self) -> Result<Vec<ListEntry>, VpsError> {
        let dir = self.root.conf_dir();
        let mut ids: Vec<u32> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    parse_ctid(name.strip_suffix(".conf")?).ok()
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(0, "list", &dir)(e)),
        };
        ids.sort_unstable();
        let mut out = Vec::new();
        for ctid in ids {
            let cfg = self.config(ctid)?;
            let status = self.status(ctid)?;
            // Resources (cgroups): the beancounters while it runs.
            let beancounters = if status.running {
                crate::cgroup::beancounters::read(&self.cgroup(ctid)?)
            } else {
                Vec::new()
            };
            out.push(ListEntry {
                status,
                ostemplate: cfg.ostemplate,
                template_id: cfg.template_id,
                hostname: cfg.hostname,
                resources: cfg.resources,
                beancounters,
            });
        }
        Ok(out)
    }

    /// Start the VPS: mount if needed, then its init as PID 1 of new
    /// namespaces, detached from the caller. Returns init's host pid.
    pub fn start(&self, ctid: u32, private_net: bool) -> Result<i32, VpsError> {
        let cfg = self.config(ctid)?;
        let _lock = self.lock(ctid)?;
        if let Some(pid) = self.running_pid(&cfg) {
            return Err(VpsError::AlreadyRunning { ctid, pid });
        }
        self.mount_locked(&cfg)?;
        for name in ["proc", "dev", "sys"] {
            let p = cfg.ve_root.join(name);
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                // A symlink would send the mount outside the VPS.
                Ok(_) => {
                    return Err(VpsError::Start {
                        ctid,
                        step: format!("check mount point /{name}"),
                        source: std::io::Error::other(format!(
                            "{} is not a directory; remove it inside the VPS",
                            p.display()
                        )),
                    })
                }
                Err(_) => {
                    std::fs::create_dir(&p).map_err(io_err(ctid, "create", &p))?;
                    // Root's inside, as the layers' own directories are.
                    if let Some(r) = cfg.id_range() {
                        std::os::unix::fs::lchown(&p, Some(r.uid), Some(r.gid))
                            .map_err(io_err(ctid, "chown", &p))?;
                    }
                }
            }
        }
        let hostname = cfg.hostname.clone().unwrap_or_else(|| format!("vps{ctid}"));
        // Networking (issue 26): leftovers of a crash go, names are written.
        self.net_before_start(&cfg)?;
        // Isolation (walls.rs): the walls.
        let walled = walls::for_vps(&self.root.base, &cfg)?;
        // Resources (cgroups): the VPS's cgroup, made with its limits and
        // the walls' device rules before init, which joins it first.
        let (cg, cgroup) = self.cgroup_for_start(&cfg, walled.as_ref())?;
        let remove_cgroup = || {
            let _ = cg.remove();
        };
        // Every VPS has a network namespace of its own.
        let _ = private_net;
        let mut plan = process::StartPlan::new(&cfg.ve_root, &hostname, true, walled, cgroup)
            .map_err(|why| {
                remove_cgroup();
                VpsError::Start {
                    ctid,
                    step: "prepare".into(),
                    source: std::io::Error::other(why),
                }
            })?;
        // Joined first in the child: it owns every namespace made after.
        plan.userns = self.vps_userns(&cfg).inspect_err(|_| remove_cgroup())?;
        // Resources (procview): the VPS's own figures, a detached FUSE
        // mount PID 1 attaches inside.
        plan.view = self.spawn_view(ctid).inspect_err(|_| remove_cgroup())?;
        let started = process::start(&plan);
        // PID 1 holds what it attached; the server exits when the VPS goes.
        drop(plan);
        let pid = started.map_err(|(step, source)| {
            remove_cgroup();
            VpsError::Start { ctid, step, source }
        })?;
        let pid_file = self.root.pid_file(ctid);
        write_atomic(ctid, &pid_file, format!("{pid}\n").as_bytes())?;
        // Networking (issue 26): devices in init's network namespace. A VPS
        // is not left half-networked: it is stopped again.
        if let Err(e) = self.net_after_start(&cfg, pid) {
            let _ = process::stop(pid, true, Duration::from_secs(1));
            let _ = std::fs::remove_file(&pid_file);
            remove_cgroup();
            return Err(e);
        }
        Ok(pid)
    }

    /// Stop the VPS (SIGTERM, then SIGKILL after `timeout`). The root stays
    /// mounted: `vzctl stop` unmounts it after, unless `--skip-umount`.
    pub fn stop(&self, ctid: u32, fast: bool, timeout: Duration) -> Result<Stopped, VpsError> {
        let cfg = self.config(ctid)?;
        let _lock = self.lock(ctid)?;
        let Some(pid) = self.running_pid(&cfg) else {
            // Resources (cgroups): what an init that ended by itself
            // (reboot, crash) or a killed start left behind goes here.
            self.remove_cgroup(ctid)?;
            // Networking (issue 26): and its host-side routes and proxies.
            let _ = self.net_clean(ctid);
            return Err(VpsError::NotRunning { ctid });
        };
        let how = process::stop(pid, fast, timeout).map_err(|source| VpsError::Stop {
            ctid,
            pid,
            source,
        })?;
        let _ = std::fs::remove_file(self.root.pid_file(ctid));
        // Resources (cgroups): the cgroup goes with init.
        self.remove_cgroup(ctid)?;
        // Networking (issue 26): the namespace's devices go with it, but
        // only after the kernel tears it down; the host side goes now.
        self.net_clean(ctid)?;
        Ok(how)
    }

    /// Run `command` with `/bin/sh -c` inside the VPS, on the caller's stdio;
    /// returns its exit code. A stopped VPS gets fresh namespaces on its
    /// root for the command (mounted for it and unmounted after if it was not).
    pub fn exec(&self, ctid: u32, command: &str) -> Result<i32, VpsError> {
        self.run_shell(ctid, &["/bin/sh", "-c", command], command)
    }

    /// An interactive shell (or `command`) inside a running VPS.
    pub fn enter(&self, ctid: u32, command: Option<&str>) -> Result<i32, VpsError> {
        let cfg = self.config(ctid)?;
        let Some(pid) = self.running_pid(&cfg) else {
            return Err(VpsError::NotRunning { ctid });
        };
        let argv: Vec<&str> = match command {
            Some(c) => vec!["/bin/sh", "-c", c],
            None if process::exists_inside(&cfg.ve_root, "/bin/bash") => vec!["/bin/bash", "-l"],
            None => vec!["/bin/sh", "-l"],
        };
        self.shell_check(&cfg)?;
        let os: Vec<&OsStr> = argv.iter().map(OsStr::new).collect();
        let (walls, cgroup) = self.walls_for_exec(&cfg, pid)?;
        process::exec_in(pid, &os, walls.as_ref(), cgroup).map_err(|(step, source)| {
            VpsError::Exec {
                ctid,
                command: argv.join(" "),
                step,
                source,
            }
        })
    }

    /// Isolation (walls.rs): what a command entering the running VPS gets,
    /// the same as its init (`init`), and its cgroup's `cgroup.procs` files.
    fn walls_for_exec(
        &self,
        cfg: &VpsConfig,
        init: i32,
    ) -> Result<(Option<walls::Walls>, Vec<std::os::fd::OwnedFd>), VpsError> {
        let w = walls::for_running(&self.root.base, cfg, init)?;
        let procs = self.cgroup_for_exec(cfg, w.as_ref())?;
        Ok((w, procs))
    }

    pub(super) fn shell_check(&self, cfg: &VpsConfig) -> Result<(), VpsError> {
        if process::exists_inside(&cfg.ve_root, "/bin/sh") {
            Ok(())
        } else {
            Err(VpsError::NoShell {
                ctid: cfg.ctid,
                path: cfg.ve_root.join("bin/sh"),
            })
        }
    }

    pub(super) fn run_shell(&self, ctid: u32, argv: &[&str], shown: &str) -> Result<i32, VpsError> {
        let cfg = self.config(ctid)?;
        if let Some(pid) = self.running_pid(&cfg) {
            self.shell_check(&cfg)?;
            let os: Vec<&OsStr> = argv.iter().map(OsStr::new).collect();
            let (walls, cgroup) = self.walls_for_exec(&cfg, pid)?;
            return process::exec_in(pid, &os, walls.as_ref(), cgroup).map_err(|(step, source)| {
                VpsError::Exec {
                    ctid,
                    command: shown.to_string(),
                    step,
                    source,
                }
            });
        }
        let lock = self.lock(ctid)?;
        let mounted_here = self.mount_locked(&cfg)? != Mounted::Already;
        // Isolation (walls.rs): the command gets init's walls; resources
        // (cgroups): a cgroup of the VPS's as init's, for the command.
        let walled = walls::for_vps(&self.root.base, &cfg)?;
        let (cg, procs) = match self.cgroup_for_start(&cfg, walled.as_ref()) {
            Ok(c) => c,
            Err(e) => {
                if mounted_here {
                    self.umount_locked(&cfg)?;
                }
                return Err(e);
            }
        };
        let sandbox_walls = walled.map(|walls| crate::sandbox::SandboxWalls { walls });
        let result = self.shell_check(&cfg).and_then(|()| {
            let mut sb = crate::sandbox::Sandbox::new(&cfg.ve_root);
            sb.hostname = cfg.hostname.clone().unwrap_or_else(|| format!("vps{ctid}"));
            sb.env = process::vps_env();
            sb.walls = sandbox_walls;
            sb.cgroup = Some(std::sync::Arc::new(procs));
            sb.userns = self.vps_userns(&cfg)?.map(std::sync::Arc::new);
            let opts = crate::sandbox::RunOptions {
                output: crate::sandbox::OutputMode::Stream,
                stdin: crate::sandbox::StdinMode::Inherit,
                extra_env: Vec::new(),
            };
            sb.run(argv, &opts)
                .map(|out| {
                    use std::os::unix::process::ExitStatusExt;
                    out.status
                        .code()
                        .or_else(|| out.status.signal().map(|s| 128 + s))
                        .unwrap_or(1)
                })
                .map_err(|source| VpsError::Sandbox { ctid, source })
        });
        let _ = cg.remove();
        if mounted_here {
            self.umount_locked(&cfg)?;
        }
        drop(lock);
        result
    }
}
