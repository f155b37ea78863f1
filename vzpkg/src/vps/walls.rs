//! The walls of a VPS: what its root may not do, as one value computed
//! from the config ([`Walls::for_vps`]) and applied the same way by the
//! start of init and by every way in (`exec`, `exec2`, `enter`).
//!
//! - **Capabilities**: OpenVZ's default set (see [`DEFAULT_CAPS`]), changed
//!   by `CAPABILITY="NAME:on NAME:off"` (`vzctl set --capability`).
//!   Everything else leaves the bounding set, so no exec or setuid brings it
//!   back; `no_new_privs` stays off, so `su` and `passwd` work.
//! - **System calls**: the filter of [`crate::sys::seccomp`].
//! - **Devices**: the VPS's devices cgroup (made by [`crate::cgroup`])
//!   allowing [`BASE_DEVICES`] plus what
//!   `DEVNODES` / `DEVICES` grant; creating nodes is allowed (`mknod` works,
//!   as package scripts expect), opening any other device is not.
//! - **/proc and /sys**: [`MASKED_FILES`] and [`MASKED_DIRS`] covered,
//!   `/proc/sys` read-only except `net/` (the VPS's own network namespace),
//!   `/sys` read-only.
//!
//! The calls that run after the fork ([`Walls::apply_mounts`],
//! [`Walls::lock_down`]) only make system calls on data prepared here.

use super::error::VpsError;
use super::VpsConfig;
use crate::sys::caps::{self, Caps};
use crate::sys::seccomp::Filter;
use rustix::fs::{FileType, Mode};
use rustix::mount::MountFlags;
use std::ffi::CString;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// OpenVZ's default capabilities of a VPS, less `sys_nice` (a real-time
/// scheduling class would let a VPS starve the host's CPUs). Off besides:
/// `sys_module`, `sys_rawio`, `sys_pacct`, `sys_admin` (mounts, and much of
/// the host's administration, when there is no user namespace), `sys_time`,
/// `audit_control`, `mac_*`, `syslog`, `wake_alarm`, `block_suspend`,
/// `audit_read`, `perfmon`, `bpf`, `checkpoint_restore`.
pub const DEFAULT_CAPS: &[&str] = &[
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_chroot",
    "sys_ptrace",
    "sys_boot",
    "sys_resource",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "setfcap",
];

/// The devices every VPS may open: `/dev`'s own nodes and the ptys of its
/// devpts instance (majors 136-143), in devices-cgroup syntax. Creating
/// any node (`m`) is allowed; opening it is what the policy decides.
pub const BASE_DEVICES: &[&str] = &[
    "c 1:3 rwm",   // null
    "c 1:5 rwm",   // zero
    "c 1:7 rwm",   // full
    "c 1:8 rwm",   // random
    "c 1:9 rwm",   // urandom
    "c 5:0 rwm",   // tty
    "c 5:1 rwm",   // console
    "c 5:2 rwm",   // ptmx
    "c 136:* rwm", // pts
    "c 137:* rwm",
    "c 138:* rwm",
    "c 139:* rwm",
    "c 140:* rwm",
    "c 141:* rwm",
    "c 142:* rwm",
    "c 143:* rwm",
    "c *:* m",
    "b *:* m",
];

/// Files of `/proc` covered with `/dev/null`: they show the host's kernel
/// (memory, symbols, log, timers, slab and page state, hardware) or change
/// it (`sysrq-trigger`, `mtrr`), and none of them is namespaced.
pub const MASKED_FILES: &[&str] = &[
    "/proc/kcore",
    "/proc/kmsg",
    "/proc/keys",
    "/proc/key-users",
    "/proc/sysrq-trigger",
    "/proc/kallsyms",
    "/proc/kpagecount",
    "/proc/kpageflags",
    "/proc/kpagecgroup",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/latency_stats",
    "/proc/slabinfo",
    "/proc/vmallocinfo",
    "/proc/iomem",
    "/proc/ioports",
    "/proc/mtrr",
    "/proc/config.gz",
    "/proc/modules",
];

/// Directories covered with an empty read-only tmpfs: host hardware and
/// drivers (`bus/pci` writes PCI config space, `irq` moves interrupts,
/// `acpi`, `scsi`, `asound`, `driver`), host file systems' state (`fs`),
/// and in `/sys` the firmware tables and the power meters (an energy side
/// channel).
pub const MASKED_DIRS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/bus",
    "/proc/driver",
    "/proc/fs",
    "/proc/irq",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// A device node `vzctl set --devnodes NAME:PERMS` puts into the VPS's
/// `/dev` (with the host's type and numbers) and allows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DevNode {
    /// Path under `/dev`, e.g. `sdb` or `net/tun`.
    pub name: String,
    pub perms: Perms,
}

/// `r`, `w`, `q` of OpenVZ's device syntax. `q` (quota management on the
/// device) is kept in the config for compatibility and grants nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub quota: bool,
}

impl Perms {
    fn parse(s: &str) -> Option<Perms> {
        let mut p = Perms::default();
        for c in s.chars() {
            match c {
                'r' if !p.read => p.read = true,
                'w' if !p.write => p.write = true,
                'q' if !p.quota => p.quota = true,
                _ => return None,
            }
        }
        (p.read || p.write).then_some(p)
    }
    fn text(self) -> String {
        let mut s = String::new();
        if self.read {
            s.push('r');
        }
        if self.write {
            s.push('w');
        }
        if self.quota {
            s.push('q');
        }
        s
    }
    /// As the devices cgroup spells access (`m`, creating, is always allowed).
    fn cgroup(self) -> String {
        let mut s = String::new();
        if self.read {
            s.push('r');
        }
        if self.write {
            s.push('w');
        }
        s.push('m');
        s
    }
}

/// A device rule of `vzctl set --devices b|c:MAJOR:MINOR|all:PERMS`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceRule {
    /// `b`, `c`, or `a` for `all`.
    pub kind: char,
    /// `None` = any (`*`).
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub perms: Perms,
}

impl DeviceRule {
    fn key(&self) -> (char, Option<u32>, Option<u32>) {
        (self.kind, self.major, self.minor)
    }
    fn text(&self) -> String {
        let n = |x: Option<u32>| x.map_or("*".to_string(), |v| v.to_string());
        if self.kind == 'a' {
            return format!("all:{}", self.perms.text());
        }
        format!(
            "{}:{}:{}:{}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.perms.text()
        )
    }
    fn cgroup(&self) -> String {
        let n = |x: Option<u32>| x.map_or("*".to_string(), |v| v.to_string());
        if self.kind == 'a' {
            return format!("a *:* {}", self.perms.cgroup());
        }
        format!(
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.perms.cgroup()
        )
    }
}

const DEVNODES_HELP: &str =
    "expected NAME:PERMS (a node under the host's /dev, PERMS of r, w, q, or none), or none";
const DEVICES_HELP: &str =
    "expected b|c:MAJOR:MINOR:PERMS or all:PERMS (MAJOR and MINOR numbers or *, PERMS of r, w, q, or none), or none";

/// `DEVNODES` after `vzctl set --devnodes ARG` (repeatable, comma or space
/// separated): `NAME:rw` adds or replaces, `NAME:none` removes, `none`
/// removes all.
pub fn merge_devnodes(current: &[DevNode], arg: &str) -> Result<Vec<DevNode>, VpsError> {
    let bad = |why: &'static str| VpsError::BadValue {
        option: "--devnodes",
        value: arg.to_string(),
        why,
    };
    let mut out = current.to_vec();
    for word in arg.split([',', ' ']).filter(|w| !w.is_empty()) {
        if word == "none" {
            out.clear();
            continue;
        }
        let (name, perms) = word.rsplit_once(':').ok_or_else(|| bad(DEVNODES_HELP))?;
        let name = name.trim_start_matches("/dev/");
        let safe = !name.is_empty()
            && name
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..")
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_-.:".contains(&b));
        if !safe {
            return Err(bad("the node's name must be a plain path under /dev"));
        }
        out.retain(|n| n.name != name);
        if perms != "none" {
            let perms = Perms::parse(perms).ok_or_else(|| bad(DEVNODES_HELP))?;
            out.push(DevNode {
                name: name.to_string(),
                perms,
            });
        }
    }
    Ok(out)
}

/// `DEVICES` after `vzctl set --devices ARG`, as [`merge_devnodes`].
pub fn merge_devices(current: &[DeviceRule], arg: &str) -> Result<Vec<DeviceRule>, VpsError> {
    let bad = || VpsError::BadValue {
        option: "--devices",
        value: arg.to_string(),
        why: DEVICES_HELP,
    };
    let mut out = current.to_vec();
    for word in arg.split([',', ' ']).filter(|w| !w.is_empty()) {
        if word == "none" {
            out.clear();
            continue;
        }
        let parts: Vec<&str> = word.split(':').collect();
        let (kind, major, minor, perms) = match parts.as_slice() {
            ["all", p] => ('a', None, None, *p),
            [k @ ("b" | "c"), ma, mi, p] => {
                let num = |s: &str| -> Result<Option<u32>, VpsError> {
                    if s == "*" {
                        Ok(None)
                    } else {
                        s.parse().map(Some).map_err(|_| bad())
                    }
                };
                (k.chars().next().unwrap_or('c'), num(ma)?, num(mi)?, *p)
            }
            _ => return Err(bad()),
        };
        let key = (kind, major, minor);
        out.retain(|r| r.key() != key);
        if perms != "none" {
            let perms = Perms::parse(perms).ok_or_else(bad)?;
            out.push(DeviceRule {
                kind,
                major,
                minor,
                perms,
            });
        }
    }
    Ok(out)
}

/// `CAPABILITY` after `vzctl set --capability NAME:on|off[,...]`.
pub fn merge_capability(current: &[(u32, bool)], arg: &str) -> Result<Vec<(u32, bool)>, VpsError> {
    let bad = |why: &'static str| VpsError::BadValue {
        option: "--capability",
        value: arg.to_string(),
        why,
    };
    let mut out = current.to_vec();
    for word in arg.split([',', ' ']).filter(|w| !w.is_empty()) {
        let (name, state) = word
            .rsplit_once(':')
            .ok_or_else(|| bad("expected NAME:on or NAME:off, e.g. sys_time:on"))?;
        let cap = caps::by_name(name).ok_or_else(|| {
            bad("unknown capability; names are the kernel's without CAP_, e.g. net_admin, sys_time")
        })?;
        let on = match state {
            "on" => true,
            "off" => false,
            _ => return Err(bad("expected NAME:on or NAME:off")),
        };
        out.retain(|(c, _)| *c != cap);
        out.push((cap, on));
    }
    Ok(out)
}

/// The config values, as vzctl writes them.
pub fn devnodes_text(nodes: &[DevNode]) -> String {
    let words: Vec<String> = nodes
        .iter()
        .map(|n| format!("{}:{}", n.name, n.perms.text()))
        .collect();
    words.join(" ")
}
pub fn devices_text(rules: &[DeviceRule]) -> String {
    let words: Vec<String> = rules.iter().map(DeviceRule::text).collect();
    words.join(" ")
}
pub fn capability_text(caps: &[(u32, bool)]) -> String {
    let words: Vec<String> = caps
        .iter()
        .map(|(c, on)| {
            let name = caps::NAMES.get(*c as usize).copied().unwrap_or("?");
            format!(
                "{}:{}",
                name.to_ascii_uppercase(),
                if *on { "on" } else { "off" }
            )
        })
        .collect();
    words.join(" ")
}

/// The capabilities a VPS ends up with.
pub fn effective_caps(granted: &[(u32, bool)]) -> Caps {
    granted
        .iter()
        .fold(Caps::of(DEFAULT_CAPS), |c, (cap, on)| c.with(*cap, *on))
}

/// The walls of `cfg`'s VPS; `None` for a privileged VPS (`USERNS=no`),
/// whose root is the host's root by choice. Its device rules go into the
/// VPS's cgroup, which [`crate::cgroup`] owns.
pub fn for_vps(vz_root: &Path, cfg: &VpsConfig) -> Result<Option<Walls>, VpsError> {
    if !cfg.userns {
        return Ok(None);
    }
    let mut walls = Walls::new(cfg.ctid, &cfg.capability, &cfg.devnodes, &cfg.devices)?;
    if let Some(r) = cfg.id_range() {
        walls.prepare_nodes(&node_dir(vz_root, cfg.ctid), r.host(0, 0))?;
    }
    Ok(Some(walls))
}

/// The walls of `cfg`'s running VPS for a command entering it (`exec`,
/// `enter`): as [`for_vps`], but with the capabilities init was started
/// with (its bounding set), so a `--capability` saved since takes effect at
/// the next start for exec as it does for init.
pub fn for_running(vz_root: &Path, cfg: &VpsConfig, init: i32) -> Result<Option<Walls>, VpsError> {
    let Some(mut walls) = for_vps(vz_root, cfg)? else {
        return Ok(None);
    };
    let caps = crate::sys::caps::bounding_set_of(init).map_err(|e| VpsError::Walls {
        ctid: cfg.ctid,
        why: format!("reading the capabilities of its init (pid {init}): {e}"),
    })?;
    if caps != walls.caps {
        walls.seccomp = filter_for(cfg.ctid, caps)?;
        walls.caps = caps;
    }
    Ok(Some(walls))
}

/// Where the granted nodes of an unprivileged VPS are made on the host.
pub fn node_dir(vz_root: &Path, ctid: u32) -> PathBuf {
    vz_root.join("run").join("devnodes").join(ctid.to_string())
}

/// A node to create in the VPS's `/dev` at start.
#[derive(Debug, Clone)]
struct Node {
    path: CString,
    /// The node bound in when the VPS may not make it: the host's own, or
    /// one [`Walls::prepare_nodes`] made.
    host: CString,
    kind: FileType,
    mode: u32,
    rdev: u64,
}

/// Everything the walls need after the fork, prepared before it.
#[derive(Debug, Clone)]
pub struct Walls {
    ctid: u32,
    pub caps: Caps,
    last_cap: u32,
    pub seccomp: Filter,
    /// Devices-cgroup lines (allow list), base and granted.
    pub device_rules: Vec<String>,
    nodes: Vec<Node>,
    masked_files: Vec<CString>,
    masked_dirs: Vec<CString>,
}

/// The system-call filter of VPS `ctid` whose root holds `caps`.
fn filter_for(ctid: u32, caps: Caps) -> Result<Filter, VpsError> {
    Filter::for_caps(caps).map_err(|e| VpsError::Walls {
        ctid,
        why: e.to_string(),
    })
}

fn c(s: &str) -> CString {
    // The constants above hold no NUL byte.
    CString::new(s).unwrap_or_default()
}

impl Walls {
    /// The walls of a VPS with these grants. `devnodes` are looked up on the
    /// host now (a missing one is an error naming it).
    pub fn new(
        ctid: u32,
        capability: &[(u32, bool)],
        devnodes: &[DevNode],
        devices: &[DeviceRule],
    ) -> Result<Walls, VpsError> {
        let caps = effective_caps(capability);
        let seccomp = filter_for(ctid, caps)?;
        let mut device_rules: Vec<String> = BASE_DEVICES.iter().map(|s| s.to_string()).collect();
        let mut nodes = Vec::new();
        for n in devnodes {
            let host = Path::new("/dev").join(&n.name);
            let meta = std::fs::metadata(&host).map_err(|e| VpsError::Walls {
                ctid,
                why: format!(
                    "--devnodes {}: {}: {e}; name a device node that exists on the host, or remove it with `vzctl set {ctid} --devnodes {}:none --save`",
                    n.name,
                    host.display(),
                    n.name
                ),
            })?;
            let ft = meta.file_type();
            let (kind, letter) = if ft.is_block_device() {
                (FileType::BlockDevice, 'b')
            } else if ft.is_char_device() {
                (FileType::CharacterDevice, 'c')
            } else {
                return Err(VpsError::Walls {
                    ctid,
                    why: format!(
                        "--devnodes {}: {} is not a device node",
                        n.name,
                        host.display()
                    ),
                });
            };
            let rdev = meta.rdev();
            let (major, minor) = (libc::major(rdev), libc::minor(rdev));
            device_rules.push(format!("{letter} {major}:{minor} {}", n.perms.cgroup()));
            let path = CString::new(format!("/dev/{}", n.name)).map_err(|_| VpsError::Walls {
                ctid,
                why: format!("--devnodes {:?}: contains a NUL byte", n.name),
            })?;
            nodes.push(Node {
                host: path.clone(),
                path,
                kind,
                mode: meta.mode() & 0o777,
                rdev,
            });
        }
        device_rules.extend(devices.iter().map(DeviceRule::cgroup));
        Ok(Walls {
            ctid,
            caps,
            last_cap: caps::last_cap(),
            seccomp,
            device_rules,
            nodes,
            masked_files: MASKED_FILES.iter().map(|s| c(s)).collect(),
            masked_dirs: MASKED_DIRS.iter().map(|s| c(s)).collect(),
        })
    }

    /// Make the granted nodes for an unprivileged VPS in `dir` on the host,
    /// owned by its root (`owner`, host ids) with the host node's mode; they
    /// are bound into its `/dev`. `dir` is emptied first.
    pub fn prepare_nodes(&mut self, dir: &Path, owner: (u32, u32)) -> Result<(), VpsError> {
        let ctid = self.ctid;
        let fail = |what: &str, p: &Path, e: std::io::Error| VpsError::Walls {
            ctid,
            why: format!("cannot {what} {}: {e}", p.display()),
        };
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail("clear", dir, e)),
        }
        if self.nodes.is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(dir).map_err(|e| fail("create", dir, e))?;
        for n in &mut self.nodes {
            let name = n
                .path
                .to_string_lossy()
                .trim_start_matches("/dev/")
                .replace('/', "_");
            let at = dir.join(&name);
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &at,
                n.kind,
                Mode::from_raw_mode(n.mode),
                n.rdev,
            )
            .map_err(|e| fail("make the device node", &at, e.into()))?;
            std::os::unix::fs::chown(&at, Some(owner.0), Some(owner.1))
                .map_err(|e| fail("chown", &at, e))?;
            rustix::fs::chmod(&at, Mode::from_raw_mode(n.mode))
                .map_err(|e| fail("chmod", &at, e.into()))?;
            n.host = CString::new(at.as_os_str().as_bytes()).map_err(|_| VpsError::Walls {
                ctid,
                why: format!("{} contains a NUL byte", at.display()),
            })?;
        }
        Ok(())
    }

    /// The granted nodes, made with the rest of `/dev` (before the pivot).
    pub fn add_nodes_to(&self, plan: &mut crate::sandbox::MountPlan) -> Result<(), String> {
        for n in &self.nodes {
            plan.add_node(&n.path, &n.host, n.kind, n.mode, n.rdev)
                .map_err(|_| format!("{:?} contains a NUL byte", n.path))?;
        }
        Ok(())
    }

    /// In PID 1, after it has pivoted into the VPS's root with `/proc`,
    /// `/dev` and `/sys` mounted: the masks and the
    /// read-only `/proc/sys`. Mounts made here cannot be undone from inside
    /// (no `CAP_SYS_ADMIN` over this mount namespace).
    pub fn apply_mounts(&self) -> io::Result<()> {
        for f in &self.masked_files {
            match rustix::mount::mount_bind(c"/dev/null", f.as_c_str()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        for d in &self.masked_dirs {
            match rustix::mount::mount(
                c"tmpfs",
                d.as_c_str(),
                c"tmpfs",
                MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
                c"size=0,mode=0555",
            ) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // /proc/sys read-only, then its net/ (the VPS's own network
        // namespace) read-write again on a mount of its own.
        read_only_bind(c"/proc/sys")?;
        rustix::mount::mount_bind(c"/proc/sys/net", c"/proc/sys/net")?;
        rustix::mount::mount_remount(
            c"/proc/sys/net",
            MountFlags::BIND | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            c"",
        )?;
        Ok(())
    }

    /// Last thing before exec, in every process that enters the VPS: the
    /// system-call filter (while `CAP_SYS_ADMIN` is still there to install
    /// it without `no_new_privs`), then the capabilities.
    pub fn lock_down(&self) -> io::Result<()> {
        self.seccomp.install()?;
        caps::restrict(self.caps, self.last_cap)
    }

    /// Make the granted nodes in a running VPS's `/dev` from the host
    /// (`set --devnodes` live). Paths are resolved inside the VPS's root,
    /// so a symlink its root planted under `/dev` cannot send the node
    /// onto the host.
    pub fn make_nodes_in(&self, pid: i32, ctid: u32) -> Result<(), VpsError> {
        // An unprivileged VPS's /dev refuses opens of nodes made in it
        // (its user namespace mounted it): bind the prepared nodes instead.
        let userns = crate::sys::userns::of_process(pid).map_err(|e| VpsError::Walls {
            ctid,
            why: format!("cannot open the VPS's user namespace: {e}"),
        })?;
        for n in &self.nodes {
            let inside = n.path.to_string_lossy();
            if let Some(ns) = &userns {
                let host = Path::new(std::ffi::OsStr::from_bytes(n.host.to_bytes()));
                crate::sys::mount::bind_into(pid, Some(ns.as_fd()), host, &n.path).map_err(
                    |e| VpsError::Walls {
                        ctid,
                        why: format!("cannot bind {inside} inside the running VPS: {e}"),
                    },
                )?;
                continue;
            }
            let rel = inside.trim_start_matches('/');
            let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
            let made = crate::sys::resolve::open_dir_in(
                Path::new(&format!("/proc/{pid}/root")),
                Path::new(dir),
            )
            .and_then(|d| {
                match rustix::fs::mknodat(&d, name, n.kind, Mode::from_raw_mode(n.mode), n.rdev) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            });
            made.map_err(|e| VpsError::Walls {
                ctid,
                why: format!("cannot make {inside} inside the running VPS: {e}"),
            })?;
        }
        Ok(())
    }
}

fn read_only_bind(path: &std::ffi::CStr) -> io::Result<()> {
    rustix::mount::mount_bind(path, path)?;
    rustix::mount::mount_remount(
        path,
        MountFlags::BIND
            | MountFlags::RDONLY
            | MountFlags::NOSUID
            | MountFlags::NODEV
            | MountFlags::NOEXEC,
        c"",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devnodes_and_devices_parse_merge_and_print() {
        let n = merge_devnodes(&[], "sdb:rw,net/tun:r").unwrap();
        assert_eq!(devnodes_text(&n), "sdb:rw net/tun:r");
        let n = merge_devnodes(&n, "sdb:none").unwrap();
        assert_eq!(devnodes_text(&n), "net/tun:r");
        assert!(merge_devnodes(&n, "none").unwrap().is_empty());
        for bad in ["sdb", "sdb:x", "../sda:rw", "sdb:", ":rw", "a//b:r"] {
            assert!(merge_devnodes(&[], bad).is_err(), "{bad}");
        }
        let d = merge_devices(&[], "b:8:16:rw c:10:*:r").unwrap();
        assert_eq!(devices_text(&d), "b:8:16:rw c:10:*:r");
        assert_eq!(d[0].cgroup(), "b 8:16 rwm");
        assert_eq!(d[1].cgroup(), "c 10:* rm");
        let d = merge_devices(&d, "b:8:16:rq").unwrap();
        assert_eq!(devices_text(&d), "c:10:*:r b:8:16:rq");
        let d = merge_devices(&d, "all:rw").unwrap();
        assert_eq!(d.last().unwrap().cgroup(), "a *:* rwm");
        assert!(merge_devices(&d, "none").unwrap().is_empty());
        for bad in ["x:1:2:rw", "b:8:rw", "b:eight:1:r", "c:1:3:", "all"] {
            assert!(merge_devices(&[], bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn capability_grants_change_the_default_set() {
        let g = merge_capability(&[], "sys_time:on,NET_ADMIN:off").unwrap();
        assert_eq!(capability_text(&g), "SYS_TIME:on NET_ADMIN:off");
        let c = effective_caps(&g);
        assert!(c.has(25) && !c.has(12) && c.has(0) && !c.has(21));
        let g = merge_capability(&g, "sys_time:off").unwrap();
        assert_eq!(capability_text(&g), "NET_ADMIN:off SYS_TIME:off");
        assert!(merge_capability(&[], "ve_admin:on").is_err());
        assert!(merge_capability(&[], "sys_time:yes").is_err());
    }
}
