//! A cgroup per VPS: `<parent>/<CTID>` in each v1 hierarchy the host has
//! (cpu, cpuacct, cpuset, memory, pids, blkio, devices, freezer), or in the
//! cgroup v2 tree. The parent comes from `$VZ_CGROUP_PARENT`, else
//! `CGROUP_PARENT` in `vz.conf`, else `vz`.
//!
//! This module is the one owner of that cgroup: it creates, joins and
//! removes every hierarchy of it, devices and freezer included. The host
//! side creates it, writes the limits ([`limits`]) and the device policy
//! (rules from [`crate::vps::walls`]) and moves processes in; init, and
//! every `exec`/`enter`, join it first (before the user namespace: joining
//! needs the host's root), and init unshares a cgroup namespace there, so
//! inside `/proc/self/cgroup` shows `/` and the VPS cannot see or climb
//! above its own cgroup.
//!
//! Nothing is delegated: the files stay owned by host root, so an
//! unprivileged VPS's root (a host uid of its range) can read but not
//! write them, and every change (`vzctl set`, live) is made from the host.
//! On v1 a VPS able to write its own cgroup could lift its own limits, as
//! they live in the same directory; OpenVZ's VPSs could not change their
//! beancounters either.
//!
//! Removed at stop; a start that finds one left behind (vzctl killed
//! mid-start, init crashed) kills what is in it and makes it afresh.

pub mod beancounters;
pub mod devices;
pub mod limits;

pub use limits::Resources;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use thiserror::Error;

/// The parent when nothing names one.
pub const DEFAULT_PARENT: &str = "vz";
/// The environment variable that names the parent (tests use one per run).
pub const PARENT_ENV: &str = "VZ_CGROUP_PARENT";

/// The controllers a VPS cgroup uses; on v2, `Blkio` is `io`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Controller {
    Cpu,
    Cpuacct,
    Cpuset,
    Memory,
    Pids,
    Blkio,
    Devices,
    Freezer,
}

impl Controller {
    pub const ALL: [Controller; 8] = [
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Cpuset,
        Controller::Memory,
        Controller::Pids,
        Controller::Blkio,
        Controller::Devices,
        Controller::Freezer,
    ];

    /// The v1 name.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Cpuset => "cpuset",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Blkio => "blkio",
            Controller::Devices => "devices",
            Controller::Freezer => "freezer",
        }
    }

    /// The name in a v2 `cgroup.controllers`, if v2 has it as a controller
    /// (cpuacct is part of cpu; devices and freezer are built in).
    pub fn v2_name(self) -> Option<&'static str> {
        match self {
            Controller::Cpu => Some("cpu"),
            Controller::Cpuset => Some("cpuset"),
            Controller::Memory => Some("memory"),
            Controller::Pids => Some("pids"),
            Controller::Blkio => Some("io"),
            Controller::Cpuacct | Controller::Devices | Controller::Freezer => None,
        }
    }
}

impl std::fmt::Display for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CgroupError {
    #[error("{key} needs the `{controller}` cgroup controller, which this host lacks ({have}); mount the `{controller}` hierarchy (v1) or enable it in cgroup v2, or remove {key} from the VPS's config")]
    Missing {
        controller: Controller,
        key: &'static str,
        have: String,
    },
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write `{value}` to {path} (for {key}): {source}")]
    Write {
        path: PathBuf,
        value: String,
        key: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("CPUMASK/CPUS leave no CPU to run on: the host's online CPUs are {online}; pick CPUs among them")]
    NoCpu { online: String },
    #[error("{key} limits the private area's disk, but {path} is on no block device (device {dev}); remove {key}, or keep the private area on a disk")]
    NoDisk {
        key: &'static str,
        path: PathBuf,
        dev: String,
    },
    #[error("the device policy needs the v1 `devices` cgroup hierarchy or cgroup v2, and this host has neither ({have}); mount one, or make the VPS privileged with `--userns no`")]
    NoDevicePolicy { have: String },
    #[error("cannot attach the device policy to {path} (a BPF cgroup device program): {source}; the kernel needs CONFIG_CGROUP_BPF, or make the VPS privileged with `--userns no`")]
    DeviceProgram {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("processes stay in {path} after SIGKILL; find them with `cat {path}/cgroup.procs`")]
    Busy { path: PathBuf },
    #[error(
        "the cgroup parent `{parent}` must be a relative path of plain names (from {from}); fix it"
    )]
    BadParent { parent: String, from: &'static str },
}

impl CgroupError {
    /// vzctl's exit code: 2 for the CPU controllers, 1 for the others.
    pub fn exit_code(&self) -> i32 {
        let cpu = |c: &Controller| matches!(c, Controller::Cpu | Controller::Cpuset);
        match self {
            CgroupError::Missing { controller, .. } if cpu(controller) => 2,
            CgroupError::Write { key, .. } if key.starts_with("CPU") => 2,
            CgroupError::NoCpu { .. } => 2,
            CgroupError::BadParent { .. } => 3,
            _ => 1,
        }
    }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |source| CgroupError::Io { op, path, source }
}

/// Which cgroups the host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One mount per hierarchy; a controller may share a mount with others.
    V1(Vec<(Controller, PathBuf)>),
    /// The unified tree and the controllers its root offers.
    V2 {
        root: PathBuf,
        controllers: Vec<Controller>,
    },
    None,
}

impl Layout {
    /// From `/proc/self/mountinfo`: v1 wherever a hierarchy of ours is
    /// mounted, else a cgroup2 mount. (A hybrid host's cgroup2 without
    /// controllers is ignored.)
    pub fn detect() -> Layout {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let layout = Layout::from_mountinfo(&text);
        match layout {
            Layout::V2 { root, .. } => {
                let list =
                    std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
                Layout::V2 {
                    controllers: v2_controllers(&list),
                    root,
                }
            }
            other => other,
        }
    }

    /// The mounts in `mountinfo`; a v2 tree's controllers are read later.
    pub fn from_mountinfo(text: &str) -> Layout {
        let mut v1 = Vec::new();
        let mut v2 = None;
        for line in text.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mount_point = left.split(' ').nth(4).unwrap_or("");
            let mut r = right.split(' ');
            let fs_type = r.next().unwrap_or("");
            let options = r.nth(1).unwrap_or("");
            match fs_type {
                "cgroup" => {
                    for c in Controller::ALL {
                        if options.split(',').any(|o| o == c.name())
                            && !v1.iter().any(|(k, _)| *k == c)
                        {
                            v1.push((c, unescape(mount_point)));
                        }
                    }
                }
                "cgroup2" if v2.is_none() => v2 = Some(unescape(mount_point)),
                _ => {}
            }
        }
        if !v1.is_empty() {
            v1.sort();
            Layout::V1(v1)
        } else if let Some(root) = v2 {
            Layout::V2 {
                root,
                controllers: Vec::new(),
            }
        } else {
            Layout::None
        }
    }

    pub fn has(&self, c: Controller) -> bool {
        match self {
            Layout::V1(m) => m.iter().any(|(k, _)| *k == c),
            Layout::V2 { controllers, .. } => c.v2_name().is_none() || controllers.contains(&c),
            Layout::None => false,
        }
    }

    /// What the host has, for an error message.
    pub fn describe(&self) -> String {
        match self {
            Layout::V1(m) => format!(
                "v1 hierarchies: {}",
                m.iter()
                    .map(|(c, _)| c.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Layout::V2 { root, controllers } => format!(
                "cgroup v2 at {} with controllers: {}",
                root.display(),
                if controllers.is_empty() {
                    "none".to_string()
                } else {
                    controllers
                        .iter()
                        .filter_map(|c| c.v2_name())
                        .collect::<Vec<_>>()
                        .join(" ")
                }
            ),
            Layout::None => "no cgroup file system is mounted".into(),
        }
    }
}

fn v2_controllers(list: &str) -> Vec<Controller> {
    Controller::ALL
        .into_iter()
        .filter(|c| {
            c.v2_name()
                .is_some_and(|n| list.split_whitespace().any(|w| w == n))
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

/// The parent: `$VZ_CGROUP_PARENT`, else `CGROUP_PARENT` from vz.conf,
/// else `vz`. Relative plain names only: it must never climb out.
pub fn parent(from_conf: Option<&str>) -> Result<String, CgroupError> {
    let (p, from) = match std::env::var(PARENT_ENV) {
        Ok(v) if !v.is_empty() => (v, "$VZ_CGROUP_PARENT"),
        _ => match from_conf.filter(|v| !v.is_empty()) {
            Some(v) => (v.to_string(), "CGROUP_PARENT in vz.conf"),
            None => (DEFAULT_PARENT.to_string(), "the default"),
        },
    };
    let p = p.trim_matches('/').to_string();
    let ok = !p.is_empty()
        && p.split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'));
    if ok {
        Ok(p)
    } else {
        Err(CgroupError::BadParent { parent: p, from })
    }
}

/// One VPS's cgroup: its directory in each hierarchy (v1) or the tree (v2).
#[derive(Debug, Clone)]
pub struct VpsCgroup {
    pub ctid: u32,
    pub v2: bool,
    /// Every controller's directory; on v2 all point at the one directory.
    pub dirs: Vec<(Controller, PathBuf)>,
    layout: Layout,
}

impl VpsCgroup {
    /// Where the VPS's cgroup is (or would be), without touching anything.
    pub fn locate(layout: &Layout, parent: &str, ctid: u32) -> VpsCgroup {
        let rel = Path::new(parent).join(ctid.to_string());
        let (v2, dirs) = match layout {
            Layout::V1(m) => (false, m.iter().map(|(c, at)| (*c, at.join(&rel))).collect()),
            Layout::V2 { root, .. } => (
                true,
                Controller::ALL
                    .into_iter()
                    .filter(|c| layout.has(*c))
                    .map(|c| (c, root.join(&rel)))
                    .collect(),
            ),
            Layout::None => (false, Vec::new()),
        };
        VpsCgroup {
            ctid,
            v2,
            dirs,
            layout: layout.clone(),
        }
    }

    pub fn dir(&self, c: Controller) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, p)| p.as_path())
    }

    /// Distinct directories (one on v2, one per hierarchy on v1; a
    /// co-mounted cpu,cpuacct is one).
    pub fn unique_dirs(&self) -> Vec<&Path> {
        let mut out: Vec<&Path> = Vec::new();
        for (_, d) in &self.dirs {
            if !out.contains(&d.as_path()) {
                out.push(d);
            }
        }
        out
    }

    /// Does any of its directories exist?
    pub fn exists(&self) -> bool {
        self.unique_dirs().iter().any(|d| d.is_dir())
    }

    /// The `cgroup.procs` files a process writes itself into to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.unique_dirs()
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    /// Refuse limits the host cannot hold before anything is made.
    pub fn check(&self, res: &Resources, disk_of: &Path) -> Result<(), CgroupError> {
        let host = self.host_facts(res, disk_of)?;
        for w in self.writes(res, &host) {
            if let Some(key) = w.key {
                if !self.layout.has(w.controller) {
                    return Err(CgroupError::Missing {
                        controller: w.controller,
                        key,
                        have: self.layout.describe(),
                    });
                }
            }
        }
        Ok(())
    }

    fn writes(&self, res: &Resources, host: &limits::HostFacts) -> Vec<limits::Write> {
        if self.v2 {
            limits::v2_writes(res, host)
        } else {
            limits::v1_writes(res, host)
        }
    }

    fn host_facts(
        &self,
        res: &Resources,
        disk_of: &Path,
    ) -> Result<limits::HostFacts, CgroupError> {
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|s| limits::parse_cpumask(s.trim()))
            .unwrap_or_else(|| vec![0]);
        if limits::chosen_cpus(res, &online, self.ctid).is_empty() {
            return Err(CgroupError::NoCpu {
                online: limits::format_cpus(&online),
            });
        }
        let mems = self
            .dir(Controller::Cpuset)
            .and_then(|d| d.parent())
            .and_then(|p| std::fs::read_to_string(p.join(self.cpuset_file("mems"))).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "0".into());
        let io_key = match (res.iolimit, res.iopslimit) {
            (Some(n), _) if n > 0 => Some("IOLIMIT"),
            (_, Some(n)) if n > 0 => Some("IOPSLIMIT"),
            _ => None,
        };
        let disk = match whole_disk(disk_of) {
            Ok(d) => Some(d),
            Err(dev) => match io_key {
                Some(key) => {
                    return Err(CgroupError::NoDisk {
                        key,
                        path: disk_of.to_path_buf(),
                        dev,
                    })
                }
                None => None,
            },
        };
        Ok(limits::HostFacts {
            ctid: self.ctid,
            online_cpus: online,
            mems,
            disk,
        })
    }

    fn cpuset_file(&self, what: &str) -> String {
        if self.v2 {
            format!("cpuset.{what}.effective")
        } else {
            format!("cpuset.{what}")
        }
    }

    /// Make the directories (and the parent's, set up so children can
    /// hold tasks), after clearing one left behind.
    pub fn create(&self) -> Result<(), CgroupError> {
        if self.exists() {
            self.remove()?;
        }
        self.ensure()
    }

    /// Make whichever directories are missing, touching none that exists
    /// (a running VPS's, say, started before a hierarchy was mounted).
    pub fn ensure(&self) -> Result<(), CgroupError> {
        match &self.layout {
            Layout::V1(_) => {
                for (c, dir) in &self.dirs {
                    mkdir_chain(dir, *c == Controller::Cpuset)?;
                }
            }
            Layout::V2 {
                root, controllers, ..
            } => {
                let Some((_, dir)) = self.dirs.first() else {
                    return Ok(());
                };
                let enable: Vec<String> = controllers
                    .iter()
                    .filter_map(|c| c.v2_name())
                    .map(|n| format!("+{n}"))
                    .collect();
                // Each level above the VPS hands the controllers down.
                let rel = dir.strip_prefix(root).unwrap_or(dir);
                let mut at = root.clone();
                for part in rel.iter() {
                    if !enable.is_empty() {
                        let f = at.join("cgroup.subtree_control");
                        std::fs::write(&f, enable.join(" ")).map_err(io("write", &f))?;
                    }
                    at.push(part);
                    match std::fs::create_dir(&at) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(io("create", &at)(e)),
                    }
                }
            }
            Layout::None => {}
        }
        Ok(())
    }

    /// Write the limits for `res`. A `fresh` cgroup (just made) has the
    /// kernel's defaults already: only what a key asks for is written. A
    /// live change writes every file, so a limit lifted goes back.
    pub fn apply(&self, res: &Resources, disk_of: &Path, fresh: bool) -> Result<(), CgroupError> {
        self.check(res, disk_of)?;
        let host = self.host_facts(res, disk_of)?;
        let mut writes = self.writes(res, &host);
        if fresh {
            writes.retain(|w| w.key.is_some());
        }
        let mut i = 0;
        while i < writes.len() {
            let w = &writes[i];
            let Some(dir) = self.dir(w.controller) else {
                i += 1;
                continue;
            };
            // memsw must stay >= the memory limit: on a failed pair, write
            // them the other way round.
            if w.file == "memory.limit_in_bytes" {
                if let Some(next) = writes
                    .get(i + 1)
                    .filter(|n| n.file == "memory.memsw.limit_in_bytes")
                {
                    if write_file(dir, w).is_err() {
                        write_file(dir, next)?;
                        write_file(dir, w)?;
                    } else {
                        write_file(dir, next)?;
                    }
                    i += 2;
                    continue;
                }
            }
            // A missing file (no swap accounting, no cfs) is a fault only
            // when a key asked for it.
            match write_file(dir, w) {
                Err(CgroupError::Write { source, .. })
                    if w.key.is_none() && source.kind() == std::io::ErrorKind::NotFound => {}
                r => r?,
            }
            i += 1;
        }
        Ok(())
    }

    /// Its `cgroup.procs` files opened for writing, for
    /// [`crate::sys::cgroup::join`] after a fork: init and every way in
    /// join before they enter the user namespace (joining needs the
    /// host's root) and the VPS's cgroup namespace.
    pub fn open_procs(&self) -> Result<Vec<std::os::fd::OwnedFd>, CgroupError> {
        self.procs_files()
            .into_iter()
            .map(|p| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map(std::os::fd::OwnedFd::from)
                    .map_err(io("open", &p))
            })
            .collect()
    }

    /// The device policy (its rules come from [`crate::vps::walls`]):
    /// everything denied, then each rule allowed. On v2 the rules become a
    /// BPF device program ([`devices`]).
    pub fn set_device_rules(&self, rules: &[String]) -> Result<(), CgroupError> {
        if self.v2 {
            return self.attach_device_program(rules);
        }
        let dir = self.devices_dir()?;
        write_rule(dir, "devices.deny", "a")?;
        for r in rules {
            write_rule(dir, "devices.allow", r)?;
        }
        Ok(())
    }

    /// Change a running VPS's device rules to `new` (`set --devices`
    /// live): from what is allowed now, new rules allowed and the rest
    /// denied, one by one, so the VPS never loses `/dev/null` in between.
    pub fn update_device_rules(&self, new: &[String]) -> Result<(), CgroupError> {
        if self.v2 {
            // The kernel swaps the programs at once.
            return self.attach_device_program(new);
        }
        let dir = self.devices_dir()?;
        let list = dir.join("devices.list");
        let now = std::fs::read_to_string(&list).map_err(io("read", &list))?;
        let old: Vec<&str> = now.lines().collect();
        for r in new.iter().filter(|r| !old.contains(&r.as_str())) {
            write_rule(dir, "devices.allow", r)?;
        }
        for r in old.iter().filter(|r| !new.iter().any(|n| n == *r)) {
            write_rule(dir, "devices.deny", r)?;
        }
        Ok(())
    }

    fn attach_device_program(&self, rules: &[String]) -> Result<(), CgroupError> {
        let Some((_, dir)) = self.dirs.first() else {
            return Err(CgroupError::NoDevicePolicy {
                have: self.layout.describe(),
            });
        };
        devices::install(dir, rules).map_err(|source| CgroupError::DeviceProgram {
            path: dir.clone(),
            source,
        })
    }

    fn devices_dir(&self) -> Result<&Path, CgroupError> {
        match self.dir(Controller::Devices) {
            Some(d) if !self.v2 => Ok(d),
            _ => Err(CgroupError::NoDevicePolicy {
                have: self.layout.describe(),
            }),
        }
    }

    /// Move `pid` (and its threads) in.
    pub fn add(&self, pid: i32) -> Result<(), CgroupError> {
        for f in self.procs_files() {
            std::fs::write(&f, pid.to_string()).map_err(io("write", &f))?;
        }
        Ok(())
    }

    /// The pids in it (any hierarchy).
    pub fn pids(&self) -> Vec<i32> {
        let mut out: Vec<i32> = Vec::new();
        for f in self.procs_files() {
            if let Ok(text) = std::fs::read_to_string(&f) {
                out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Kill whatever is in it (frozen first, so nothing forks meanwhile),
    /// then remove its directories. Missing ones are fine.
    pub fn remove(&self) -> Result<(), CgroupError> {
        let pids = self.pids();
        if !pids.is_empty() {
            self.kill_all();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for dir in self.unique_dirs() {
            loop {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    // Busy while a task is still on its way out.
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        if Instant::now() >= deadline {
                            return Err(CgroupError::Busy {
                                path: dir.to_path_buf(),
                            });
                        }
                        self.kill_all();
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => return Err(io("remove", dir)(e)),
                }
            }
        }
        Ok(())
    }

    fn kill_all(&self) {
        if self.v2 {
            if let Some((_, d)) = self.dirs.first() {
                if std::fs::write(d.join("cgroup.kill"), "1").is_ok() {
                    return;
                }
            }
        }
        let freezer = self
            .dir(Controller::Freezer)
            .map(|d| d.join("freezer.state"))
            .filter(|f| f.exists());
        if let Some(f) = &freezer {
            let _ = std::fs::write(f, "FROZEN");
        }
        for pid in self.pids() {
            crate::sys::cgroup::kill(pid);
        }
        if let Some(f) = &freezer {
            let _ = std::fs::write(f, "THAWED");
        }
    }

    /// A counter file's text, if the controller is there.
    pub fn read(&self, c: Controller, file: &str) -> Option<String> {
        std::fs::read_to_string(self.dir(c)?.join(file)).ok()
    }
}

fn write_rule(dir: &Path, file: &str, rule: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    std::fs::write(&path, rule).map_err(|source| CgroupError::Write {
        path,
        value: rule.to_string(),
        key: "the device policy",
        source,
    })
}

fn write_file(dir: &Path, w: &limits::Write) -> Result<(), CgroupError> {
    let path = dir.join(w.file);
    std::fs::write(&path, &w.value).map_err(|source| CgroupError::Write {
        path,
        value: w.value.clone(),
        key: w.key.unwrap_or("the default"),
        source,
    })
}

/// `mkdir -p`; a new cpuset level takes its parent's CPUs and memory nodes
/// (v1 leaves them empty, and an empty cpuset can hold no task).
fn mkdir_chain(dir: &Path, cpuset: bool) -> Result<(), CgroupError> {
    // An existing level may be one a killed vzctl made but never filled.
    if !dir.is_dir() {
        if let Some(up) = dir.parent() {
            mkdir_chain(up, cpuset)?;
        }
        match std::fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("create", dir)(e)),
        }
    } else if let Some(up) = dir.parent().filter(|u| u.join("cpuset.cpus").exists()) {
        if cpuset {
            mkdir_chain(up, cpuset)?;
        }
    }
    if cpuset {
        if let Some(up) = dir.parent() {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let mine = dir.join(f);
                let empty = std::fs::read_to_string(&mine).map_or(true, |s| s.trim().is_empty());
                if empty {
                    let theirs = std::fs::read_to_string(up.join(f)).map_err(io("read", up))?;
                    std::fs::write(&mine, theirs.trim()).map_err(io("write", &mine))?;
                }
            }
        }
    }
    Ok(())
}

/// major:minor of the whole disk holding `path` (throttling takes disks,
/// not partitions); the device number as text when there is none.
pub fn whole_disk(path: &Path) -> Result<(u32, u32), String> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).map_err(|e| e.to_string())?.dev();
    let (maj, min) = (libc::major(dev), libc::minor(dev));
    let sys = PathBuf::from(format!("/sys/dev/block/{maj}:{min}"));
    if maj == 0 || !sys.exists() {
        return Err(format!("{maj}:{min}"));
    }
    if sys.join("partition").exists() {
        let parent_dev = std::fs::canonicalize(&sys)
            .ok()
            .and_then(|p| p.parent().map(|p| p.join("dev")))
            .and_then(|p| std::fs::read_to_string(p).ok());
        if let Some((a, b)) = parent_dev.as_deref().and_then(|s| s.trim().split_once(':')) {
            if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                return Ok((a, b));
            }
        }
        return Err(format!("{maj}:{min}"));
    }
    Ok((maj, min))
}

#[cfg(test)]
mod tests;
