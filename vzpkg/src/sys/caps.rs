//! Capabilities by OpenVZ's names (`vzctl set --capability NAME:on|off`)
//! and the one call that narrows a process before it execs into a VPS.

use rustix::thread::CapabilitySet;
use std::io;

/// The kernel's capability numbers, by the names vzctl takes (lower case,
/// without `CAP_`). Index = capability number.
pub const NAMES: [&str; 41] = [
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
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// The number of capability `name` (`sys_time`, `CAP_SYS_TIME`, any case).
pub fn by_name(name: &str) -> Option<u32> {
    let lower = name.to_ascii_lowercase();
    let bare = lower.strip_prefix("cap_").unwrap_or(&lower);
    NAMES.iter().position(|n| *n == bare).map(|i| i as u32)
}

/// A set of capabilities as a bit mask (bit N = capability N).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caps(pub u64);

impl Caps {
    pub fn of(names: &[&str]) -> Caps {
        Caps(
            names
                .iter()
                .filter_map(|n| by_name(n))
                .fold(0, |m, c| m | 1 << c),
        )
    }
    pub fn has(self, cap: u32) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }
    pub fn with(self, cap: u32, on: bool) -> Caps {
        if cap >= 64 {
            return self;
        }
        if on {
            Caps(self.0 | 1 << cap)
        } else {
            Caps(self.0 & !(1 << cap))
        }
    }
    /// Names of the capabilities in the set, in number order.
    pub fn names(self) -> Vec<&'static str> {
        (0..NAMES.len() as u32)
            .filter(|c| self.has(*c))
            .map(|c| NAMES[c as usize])
            .collect()
    }
}

/// The highest capability this kernel knows (`/proc/sys/kernel/cap_last_cap`).
/// Read before a fork: the child must not allocate.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(NAMES.len() as u32 - 1)
        .min(63)
}

/// The bounding set of process `pid` (`CapBnd` in its status): what a
/// running VPS's init was narrowed to, whatever its config says now.
pub fn bounding_set_of(pid: i32) -> io::Result<Caps> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path)?;
    text.lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .map(Caps)
        .ok_or_else(|| io::Error::other(format!("{path} has no CapBnd line")))
}

/// Narrow the calling process to `keep` for good: every other capability
/// leaves the bounding set (so no exec, setuid or file capability brings it
/// back) and the inheritable and ambient sets, and the effective and
/// permitted sets are cut to `keep`. Needs `CAP_SETPCAP`; call it last
/// before exec. Makes no allocation (safe between fork and exec).
pub fn restrict(keep: Caps, last_cap: u32) -> io::Result<()> {
    for cap in 0..=last_cap {
        if !keep.has(cap) {
            rustix::thread::remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(
                1 << cap,
            ))?;
        }
    }
    rustix::thread::clear_ambient_capability_set()?;
    let now = rustix::thread::capabilities(None)?;
    let mask = CapabilitySet::from_bits_retain(keep.0);
    rustix::thread::set_capabilities(
        None,
        rustix::thread::CapabilitySets {
            effective: now.effective & mask,
            permitted: now.permitted & mask,
            inheritable: now.inheritable & mask,
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_bounding_set_reads_back() {
        let pid = std::process::id() as i32;
        let ours = bounding_set_of(pid).unwrap();
        let kernel =
            rustix::thread::capability_is_in_bounding_set(rustix::thread::CapabilitySet::CHOWN)
                .unwrap();
        assert_eq!(ours.has(0), kernel);
        assert!(bounding_set_of(-1).is_err());
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(by_name("chown"), Some(0));
        assert_eq!(by_name("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(by_name("sys_time"), Some(25));
        assert_eq!(by_name("checkpoint_restore"), Some(40));
        assert_eq!(by_name("ve_admin"), None);
        let c = Caps::of(&["kill", "mknod"]);
        assert!(c.has(5) && c.has(27) && !c.has(21));
        assert_eq!(c.names(), ["kill", "mknod"]);
        assert_eq!(c.with(27, false).names(), ["kill"]);
        assert!(c.with(21, true).has(21));
    }

    /// In a forked child: after `restrict`, the bounding, effective and
    /// inheritable sets hold only what was kept.
    #[test]
    fn restrict_leaves_only_the_kept_set() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: dropping capabilities needs root's CAP_SETPCAP");
            return;
        }
        let keep = Caps::of(&["chown", "kill", "setpcap"]);
        let last = last_cap();
        // SAFETY: the child makes system calls only and leaves with _exit.
        let child = unsafe { libc::fork() };
        assert!(child >= 0);
        if child == 0 {
            let ok = restrict(keep, last).is_ok()
                && (0..=last).all(|c| {
                    let set = CapabilitySet::from_bits_retain(1 << c);
                    rustix::thread::capability_is_in_bounding_set(set).ok() == Some(keep.has(c))
                })
                && rustix::thread::capabilities(None).is_ok_and(|s| {
                    s.effective.bits() == keep.0 && s.inheritable.bits() & !keep.0 == 0
                });
            // SAFETY: leaving the forked child.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(child, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
