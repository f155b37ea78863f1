//! A VPS's resources as the runtime handles them: its cgroup made and
//! limited at start, joined by `exec`/`enter`, changed live by `set`,
//! removed at stop; config samples for `create --config NAME`; and the
//! beancounters. The cgroup work itself is [`crate::cgroup`].

use super::conf::Conf;
use super::error::io_err;
use super::{VpsConfig, VpsError, Vz, VzRoot};
use crate::cgroup::{self, beancounters, Layout, Resources, VpsCgroup};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Samples shipped with vzpkg, used when `VZ_ROOT/conf` has none of that name.
const SHIPPED_SAMPLES: &[(&str, &str)] =
    &[("basic", include_str!("../../../conf/ve-basic.conf-sample"))];

impl VzRoot {
    /// `VZ_ROOT/conf/vz.conf`, the host-wide settings; missing = defaults.
    pub fn global_conf(&self) -> Result<Conf, VpsError> {
        let path = self.conf_dir().join("vz.conf");
        match std::fs::read_to_string(&path) {
            Ok(text) => Conf::parse(&text).map_err(|e| VpsError::Conf {
                ctid: 0,
                path,
                line: e.line,
                why: e.why,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Conf::default()),
            Err(e) => Err(io_err(0, "read", &path)(e)),
        }
    }

    /// `conf/ve-NAME.conf-sample`.
    pub fn sample(&self, name: &str) -> PathBuf {
        self.conf_dir().join(format!("ve-{name}.conf-sample"))
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

    /// Where the VPS's cgroup is on this host (nothing is made).
    pub fn cgroup(&self, ctid: u32) -> Result<VpsCgroup, VpsError> {
        let conf = self.root.global_conf()?;
        let parent = cgroup::parent(conf.get("CGROUP_PARENT"))
            .map_err(|source| VpsError::Cgroup { ctid, source })?;
        Ok(VpsCgroup::locate(&Layout::detect(), &parent, ctid))
    }

    /// Make the VPS's cgroup afresh (clearing one left behind) with its
    /// limits; undone on failure.
    pub(super) fn cgroup_for_start(&self, cfg: &VpsConfig) -> Result<VpsCgroup, VpsError> {
        let ctid = cfg.ctid;
        let cg = self.cgroup(ctid)?;
        let err = |source| VpsError::Cgroup { ctid, source };
        cg.check(&cfg.resources, &cfg.ve_private).map_err(err)?;
        cg.create().map_err(err)?;
        if let Err(e) = cg.apply(&cfg.resources, &cfg.ve_private, true) {
            let _ = cg.remove();
            return Err(err(e));
        }
        Ok(cg)
    }

    /// Remove the VPS's cgroup, killing anything still in it.
    pub(super) fn remove_cgroup(&self, ctid: u32) -> Result<(), VpsError> {
        let cg = self.cgroup(ctid)?;
        cg.remove()
            .map_err(|source| VpsError::Cgroup { ctid, source })
    }

    /// The `cgroup.procs` files an `exec`/`enter` joins (those that exist).
    pub(super) fn cgroup_joins(&self, ctid: u32) -> Result<Vec<PathBuf>, VpsError> {
        Ok(self
            .cgroup(ctid)?
            .procs_files()
            .into_iter()
            .filter(|p| p.exists())
            .collect())
    }

    /// Change the limits of a running VPS now.
    pub(super) fn apply_resources(&self, cfg: &VpsConfig, res: &Resources) -> Result<(), VpsError> {
        let ctid = cfg.ctid;
        let cg = self.cgroup(ctid)?;
        cg.apply(res, &cfg.ve_private, false)
            .map_err(|source| VpsError::Cgroup { ctid, source })
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
        let fuse = crate::sys::fusemount::detached("vzproc")
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
        // SAFETY: dup2 and setsid between fork and exec: the connection
        // on fd 3 (dup2 clears close-on-exec), out of vzctl's session.
        unsafe {
            cmd.pre_exec(move || {
                let on_fd3 = if device == crate::procview::DEVICE_FD {
                    libc::fcntl(device, libc::F_SETFD, 0)
                } else {
                    libc::dup2(device, crate::procview::DEVICE_FD)
                };
                if on_fd3 < 0 || libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn()
            .map_err(|e| err(format!("cannot run {}: {e}", exe.display())))?;
        // Only the server holds the connection now: when it dies, the
        // kernel fails what waits on it instead of hanging.
        drop(fuse.device);
        Ok(Some(fuse.mount))
    }

    /// `vzctl __procview CTID`: serve the view on fd 3 until the VPS stops.
    pub fn serve_view(&self, ctid: u32) -> i32 {
        // SAFETY: fd 3 is the FUSE connection `spawn_view` handed over.
        let device =
            unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(crate::procview::DEVICE_FD) };
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
