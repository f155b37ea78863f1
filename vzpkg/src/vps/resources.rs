//! A VPS's resources as the runtime handles them: its cgroup made and
//! limited at start (with the device rules of its walls), joined by
//! `exec`/`enter`, changed live by `set`, removed at stop; config samples
//! for `create --config NAME`; the beancounters; and the process serving
//! its `/proc` view. The cgroup work itself is [`crate::cgroup`], the one
//! owner of the VPS's cgroup.

use super::conf::Conf;
use super::error::io_err;
use super::walls::Walls;
use super::{VpsConfig, VpsError, Vz, VzRoot};
use crate::cgroup::{self, beancounters, CgroupError, Layout, Resources, VpsCgroup};
use crate::sys;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Samples shipped with vzpkg, used when `VZ_ROOT/conf` has none of that name.
const SHIPPED_SAMPLES: &[(&str, &str)] =
    &[("basic", include_str!("../../../conf/ve-basic.conf-sample"))];

impl VzRoot {
    /// `conf/ve-NAME.conf-sample`.
    pub fn sample(&self, name: &str) -> PathBuf {
        self.conf_dir().join(format!("ve-{name}.conf-sample"))
    }
}

/// What `create --config NAME` takes from the sample; options given to
/// `create` win over it. Its other keys (`ONBOOT`, ...) are kept as written.
pub(super) struct Sample {
    pub conf: Conf,
    pub diskspace: Option<(u64, u64)>,
    pub diskinodes: Option<(u64, u64)>,
    pub quotatime: Option<u64>,
    /// The sample's resources with `create`'s options over them.
    pub resources: Resources,
}

/// A device-policy failure is one of the walls' (exit code: start failed).
fn walls_err(ctid: u32, e: CgroupError) -> VpsError {
    VpsError::Walls {
        ctid,
        why: e.to_string(),
    }
}

/// Parse the resource keys of a config, naming a bad one.
pub(super) fn resources_of(
    ctid: u32,
    path: &std::path::Path,
    c: &Conf,
) -> Result<Resources, VpsError> {
    Resources::from_conf(c).map_err(|b| VpsError::Resource {
        ctid,
        path: path.to_path_buf(),
        key: b.key,
        value: b.value,
        why: b.why,
    })
}

impl Vz {
    /// The sample `name`: `VZ_ROOT/conf/ve-NAME.conf-sample`, else a shipped one.
    pub fn sample(&self, name: &str) -> Result<Conf, VpsError> {
        let bad = |why: String| VpsError::Sample {
            name: name.to_string(),
            why,
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(bad("use letters, digits, '-', '_' and '.' only".into()));
        }
        let path = self.root.sample(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match SHIPPED_SAMPLES.iter().find(|(n, _)| *n == name) {
                    Some((_, t)) => t.to_string(),
                    None => {
                        let shipped: Vec<&str> = SHIPPED_SAMPLES.iter().map(|(n, _)| *n).collect();
                        return Err(bad(format!(
                            "no {} and no shipped sample of that name (shipped: {}); write that file or pick a shipped one",
                            path.display(),
                            shipped.join(", ")
                        )));
                    }
                }
            }
            Err(e) => return Err(bad(format!("cannot read {}: {e}", path.display()))),
        };
        let c = Conf::parse(&text)
            .map_err(|e| bad(format!("{} line {}: {}", path.display(), e.line, e.why)))?;
        resources_of(0, &path, &c)?;
        Ok(c)
    }

    /// `create --config NAME`: the sample's keys (none without one), its
    /// disk limits and resources parsed, a bad one named.
    pub(super) fn create_sample(
        &self,
        ctid: u32,
        opts: &super::CreateOptions,
    ) -> Result<Sample, VpsError> {
        let conf = match &opts.config {
            Some(name) => self.sample(name)?,
            None => Conf::default(),
        };
        let path = self.root.sample(opts.config.as_deref().unwrap_or("none"));
        let limits = |key: &'static str, one: fn(&str) -> Option<u64>| {
            conf.get(key)
                .filter(|v| !v.is_empty())
                .map(|v| {
                    super::conf::parse_limits(v, one).ok_or_else(|| VpsError::Sample {
                        name: opts.config.clone().unwrap_or_default(),
                        why: format!("{}: {key}=\"{v}\": expected soft:hard", path.display()),
                    })
                })
                .transpose()
        };
        Ok(Sample {
            diskspace: limits("DISKSPACE", super::conf::parse_blocks)?,
            diskinodes: limits("DISKINODES", super::conf::parse_count)?,
            quotatime: conf.get("QUOTATIME").and_then(|v| v.parse().ok()),
            resources: resources_of(ctid, &path, &conf)?.merged(&opts.resources),
            conf,
        })
    }

    /// Where the VPS's cgroup is on this host (nothing is made).
    pub fn cgroup(&self, ctid: u32) -> Result<VpsCgroup, VpsError> {
        let conf = self.root.global_conf()?;
        let parent = cgroup::parent(conf.get("CGROUP_PARENT"))
            .map_err(|source| VpsError::Cgroup { ctid, source })?;
        Ok(VpsCgroup::locate(&Layout::detect(), &parent, ctid))
    }

    /// Make the VPS's cgroup afresh (clearing one left behind) with its
    /// limits and, for a VPS with walls, its device rules; undone on
    /// failure. Returns its `cgroup.procs` files to join.
    pub(super) fn cgroup_for_start(
        &self,
        cfg: &VpsConfig,
        walls: Option<&Walls>,
    ) -> Result<(VpsCgroup, Vec<OwnedFd>), VpsError> {
        let ctid = cfg.ctid;
        let cg = self.cgroup(ctid)?;
        cg.check(&cfg.resources, &cfg.ve_private)
            .map_err(|source| VpsError::Cgroup { ctid, source })?;
        cg.create()
            .map_err(|source| VpsError::Cgroup { ctid, source })?;
        let filled = self
            .fill_cgroup(&cg, cfg, walls, true)
            .and_then(|()| self.open_procs(&cg, ctid));
        match filled {
            Ok(procs) => Ok((cg, procs)),
            Err(e) => {
                let _ = cg.remove();
                Err(e)
            }
        }
    }

    /// The cgroup of a running VPS for a command entering it: the
    /// `cgroup.procs` files to join. Hierarchies it lacks (started by a
    /// vzctl before them) are made and filled now; nothing in it is
    /// touched.
    pub(super) fn cgroup_for_exec(
        &self,
        cfg: &VpsConfig,
        walls: Option<&Walls>,
    ) -> Result<Vec<OwnedFd>, VpsError> {
        let ctid = cfg.ctid;
        let cg = self.cgroup(ctid)?;
        let missing: Vec<_> = cg
            .unique_dirs()
            .into_iter()
            .filter(|d| !d.is_dir())
            .map(|d| d.to_path_buf())
            .collect();
        if !missing.is_empty() {
            cg.ensure()
                .map_err(|source| VpsError::Cgroup { ctid, source })?;
            let devices_new = cg
                .dir(cgroup::Controller::Devices)
                .is_some_and(|d| missing.iter().any(|m| m == d));
            // Limits on the new ones only would be a half; all are
            // written again (the same values where they were).
            cg.apply(&cfg.resources, &cfg.ve_private, false)
                .map_err(|source| VpsError::Cgroup { ctid, source })?;
            if devices_new {
                self.fill_cgroup(&cg, cfg, walls, false)?;
            }
        }
        self.open_procs(&cg, ctid)
    }

    /// Limits (`limits`) and the device rules of `walls` into `cg`.
    fn fill_cgroup(
        &self,
        cg: &VpsCgroup,
        cfg: &VpsConfig,
        walls: Option<&Walls>,
        limits: bool,
    ) -> Result<(), VpsError> {
        let ctid = cfg.ctid;
        if limits {
            cg.apply(&cfg.resources, &cfg.ve_private, true)
                .map_err(|source| VpsError::Cgroup { ctid, source })?;
        }
        // Isolation (walls.rs): the device policy lives in this cgroup.
        if let Some(w) = walls {
            cg.set_device_rules(&w.device_rules)
                .map_err(|e| walls_err(ctid, e))?;
        }
        Ok(())
    }

    fn open_procs(&self, cg: &VpsCgroup, ctid: u32) -> Result<Vec<OwnedFd>, VpsError> {
        cg.open_procs()
            .map_err(|source| VpsError::Cgroup { ctid, source })
    }

    /// A running VPS's device rules changed to those of `walls` (`set
    /// --devices`, live).
    pub(super) fn update_device_rules(&self, ctid: u32, walls: &Walls) -> Result<(), VpsError> {
        self.cgroup(ctid)?
            .update_device_rules(&walls.device_rules)
            .map_err(|e| walls_err(ctid, e))
    }

    /// Remove the VPS's cgroup, killing anything still in it.
    pub(super) fn remove_cgroup(&self, ctid: u32) -> Result<(), VpsError> {
        let cg = self.cgroup(ctid)?;
        cg.remove()
            .map_err(|source| VpsError::Cgroup { ctid, source })
    }

    /// `set` of resource keys: written now into a running VPS's cgroup
    /// (true), else only checked against what this host has.
    pub(super) fn set_resources(&self, cfg: &VpsConfig, res: &Resources) -> Result<bool, VpsError> {
        let ctid = cfg.ctid;
        let cg = self.cgroup(ctid)?;
        let err = |source| VpsError::Cgroup { ctid, source };
        if self.running_pid(cfg).is_some() {
            cg.apply(res, &cfg.ve_private, false).map_err(err)?;
            Ok(true)
        } else {
            cg.check(res, &cfg.ve_private).map_err(err)?;
            Ok(false)
        }
    }

    /// The beancounters of a running VPS (empty when it is not running).
    pub fn beancounters(&self, ctid: u32) -> Result<Vec<beancounters::Bean>, VpsError> {
        let cfg = self.config(ctid)?;
        if self.running_pid(&cfg).is_none() {
            return Ok(Vec::new());
        }
        Ok(beancounters::read(&self.cgroup(ctid)?))
    }

    /// `/proc/user_beancounters` as the host sees it: every running VPS.
    pub fn beancounters_table(&self, only: &[u32]) -> Result<String, VpsError> {
        let mut out = beancounters::header();
        for e in self.list()? {
            let ctid = e.status.ctid;
            if !e.status.running || (!only.is_empty() && !only.contains(&ctid)) {
                continue;
            }
            out.push_str(&beancounters::render(ctid, &self.beancounters(ctid)?));
        }
        Ok(out)
    }
}

impl Vz {
    /// Start the `/proc` view's process for `ctid` on a detached FUSE
    /// mount; the mount, for init to attach inside. `None` on a host
    /// without FUSE (the VPS then sees the host's figures).
    pub(super) fn spawn_view(&self, ctid: u32) -> Result<Option<OwnedFd>, VpsError> {
        if !std::path::Path::new("/dev/fuse").exists() {
            return Ok(None);
        }
        let err = |why: String| VpsError::Start {
            ctid,
            step: "start the /proc view".into(),
            source: std::io::Error::other(why),
        };
        // No vzpkg program to run (a library caller): no view.
        let Some(exe) = self.simfs_exe.as_deref() else {
            return Ok(None);
        };
        let fuse = sys::fusemount::detached("vzproc")
            .map_err(|e| err(format!("a FUSE mount for it: {e}")))?;
        let log_path = self.root.view_log(ctid);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(ctid, "open", &log_path))?;
        let device = fuse.device.as_raw_fd();
        let mut cmd = Command::new(exe);
        cmd.arg0("vzctl")
            .arg("--vzroot")
            .arg(&self.root.base)
            .arg(crate::procview::SUBCOMMAND)
            .arg(ctid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // The connection on fd 3, out of vzctl's session (a Ctrl-C there
        // never reaches the server).
        sys::process::before_exec(&mut cmd, move || {
            sys::process::pass_fd_as(device, crate::procview::DEVICE_FD)?;
            sys::process::setsid()
        });
        cmd.spawn()
            .map_err(|e| err(format!("cannot run {}: {e}", exe.display())))?;
        // Only the server holds the connection now: when it dies, the
        // kernel fails what waits on it instead of hanging.
        drop(fuse.device);
        Ok(Some(fuse.mount))
    }

    /// `vzctl __procview CTID`: serve the view on fd 3 until the VPS stops.
    pub fn serve_view(&self, ctid: u32) -> i32 {
        let Some(device) = sys::process::inherited_fd(crate::procview::DEVICE_FD) else {
            eprintln!(
                "vzctl: /proc view of VPS {ctid}: no FUSE connection on fd {} (`{}` is started by `vzctl start`)",
                crate::procview::DEVICE_FD,
                crate::procview::SUBCOMMAND
            );
            return 1;
        };
        let cg = match self.cgroup(ctid) {
            Ok(cg) => cg,
            Err(e) => {
                eprintln!("vzctl: /proc view of VPS {ctid}: {e}");
                return 1;
            }
        };
        match crate::procview::serve(ctid, cg, device) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("vzctl: /proc view of VPS {ctid}: {e}");
                1
            }
        }
    }
}
