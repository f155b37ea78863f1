//! The system-call filter every process of a VPS runs under.
//!
//! A deny list, not an allow list: a VPS is a whole distribution whose
//! programs we do not know, so the filter names the calls a namespaced root
//! still must not make and lets the rest through to the kernel's own checks
//! (namespaces, capabilities, the devices cgroup). The list is
//! [`DENIED`]; each entry says why. seccompiler compiles it to BPF; we
//! install it ourselves, because seccompiler's installer also sets
//! `no_new_privs`, which would break setuid programs (`su`, `passwd`) in
//! the VPS. Without `no_new_privs` the kernel asks for `CAP_SYS_ADMIN`
//! instead, which the starting process still has.

use super::caps::Caps;
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};
use std::collections::BTreeMap;
use std::io;

/// One refused call: its name, number, the errno it gets, and the
/// capability that lifts the refusal when the VPS is granted it
/// (`vzctl set --capability NAME:on`), if any.
#[derive(Debug, Clone, Copy)]
pub struct Denied {
    pub name: &'static str,
    pub nr: libc::c_long,
    pub errno: i32,
    pub unless: Option<&'static str>,
    pub why: &'static str,
}

const fn deny(
    name: &'static str,
    nr: libc::c_long,
    errno: i32,
    unless: Option<&'static str>,
    why: &'static str,
) -> Denied {
    Denied {
        name,
        nr,
        errno,
        unless,
        why,
    }
}

const EPERM: i32 = libc::EPERM;
const ENOSYS: i32 = libc::ENOSYS;

/// What a VPS may not call. Calls the kernel already ties to a capability
/// the VPS lacks by default are listed too where a mistake in that check
/// would cost the host (modules, kexec, raw I/O): two walls, not one.
pub const DENIED: &[Denied] = &[
    deny(
        "init_module",
        libc::SYS_init_module,
        EPERM,
        None,
        "loads code into the host's kernel",
    ),
    deny(
        "finit_module",
        libc::SYS_finit_module,
        EPERM,
        None,
        "loads code into the host's kernel",
    ),
    deny(
        "delete_module",
        libc::SYS_delete_module,
        EPERM,
        None,
        "unloads the host's modules",
    ),
    deny(
        "kexec_load",
        libc::SYS_kexec_load,
        EPERM,
        None,
        "replaces the host's kernel",
    ),
    deny(
        "kexec_file_load",
        libc::SYS_kexec_file_load,
        EPERM,
        None,
        "replaces the host's kernel",
    ),
    deny(
        "open_by_handle_at",
        libc::SYS_open_by_handle_at,
        EPERM,
        None,
        "opens any inode of a file system by number, past the VPS's root (the \"shocker\" escape)",
    ),
    deny(
        "syslog",
        libc::SYS_syslog,
        EPERM,
        None,
        "reads and clears the host's kernel log",
    ),
    deny(
        "acct",
        libc::SYS_acct,
        EPERM,
        None,
        "process accounting is host-wide",
    ),
    deny("swapon", libc::SYS_swapon, EPERM, None, "swap is host-wide"),
    deny(
        "swapoff",
        libc::SYS_swapoff,
        EPERM,
        None,
        "swap is host-wide",
    ),
    deny(
        "settimeofday",
        libc::SYS_settimeofday,
        EPERM,
        Some("sys_time"),
        "the clock is the host's",
    ),
    deny(
        "clock_settime",
        libc::SYS_clock_settime,
        EPERM,
        Some("sys_time"),
        "the clock is the host's",
    ),
    deny(
        "clock_adjtime",
        libc::SYS_clock_adjtime,
        EPERM,
        Some("sys_time"),
        "the clock is the host's",
    ),
    // adjtimex stays: reading the clock state is harmless and ntp clients
    // query it; setting needs CAP_SYS_TIME, which a VPS lacks by default.
    deny(
        "keyctl",
        libc::SYS_keyctl,
        ENOSYS,
        None,
        "the kernel keyrings are not namespaced; ENOSYS makes programs use their fallback",
    ),
    deny(
        "add_key",
        libc::SYS_add_key,
        ENOSYS,
        None,
        "the kernel keyrings are not namespaced",
    ),
    deny(
        "request_key",
        libc::SYS_request_key,
        ENOSYS,
        None,
        "the kernel keyrings are not namespaced",
    ),
    deny(
        "bpf",
        libc::SYS_bpf,
        EPERM,
        Some("bpf"),
        "BPF programs run in the host's kernel and can read it",
    ),
    deny(
        "perf_event_open",
        libc::SYS_perf_event_open,
        EPERM,
        Some("perfmon"),
        "profiles the host's kernel and other VPSs",
    ),
    deny(
        "userfaultfd",
        libc::SYS_userfaultfd,
        EPERM,
        None,
        "stalls the kernel at a chosen page fault, the usual tool of kernel exploits",
    ),
    deny(
        "io_uring_setup",
        libc::SYS_io_uring_setup,
        ENOSYS,
        None,
        "a large kernel attack surface; ENOSYS is what an old kernel says, so programs fall back",
    ),
    deny(
        "io_uring_enter",
        libc::SYS_io_uring_enter,
        ENOSYS,
        None,
        "see io_uring_setup",
    ),
    deny(
        "io_uring_register",
        libc::SYS_io_uring_register,
        ENOSYS,
        None,
        "see io_uring_setup",
    ),
    #[cfg(target_arch = "x86_64")]
    deny(
        "iopl",
        libc::SYS_iopl,
        EPERM,
        None,
        "raw access to the host's I/O ports",
    ),
    #[cfg(target_arch = "x86_64")]
    deny(
        "ioperm",
        libc::SYS_ioperm,
        EPERM,
        None,
        "raw access to the host's I/O ports",
    ),
    deny(
        "quotactl",
        libc::SYS_quotactl,
        EPERM,
        Some("sys_admin"),
        "the host's disk quotas; a VPS's quota is simfs's, set from the host",
    ),
];

/// First system call number of the x32 ABI on x86_64. x32 calls carry
/// the x86_64 audit arch with this bit set, so a deny list keyed by x86_64
/// numbers would miss them: the filter refuses them all.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// A compiled filter, ready to install after a fork: one BPF program per
/// errno (seccompiler gives a program one action on match), all installed;
/// the kernel runs every one and a refusal wins over "allow".
#[derive(Debug, Clone)]
pub struct Filter {
    programs: Vec<BpfProgram>,
}

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("no system-call filter for this architecture ({arch}); a VPS with walls runs only on x86_64 or aarch64 hosts")]
    Arch { arch: &'static str },
    #[error("compiling the system-call filter: {0}")]
    Compile(String),
}

impl Filter {
    /// The filter for a VPS granted `caps`: an entry whose capability is
    /// granted is left out.
    pub fn for_caps(caps: Caps) -> Result<Filter, SeccompError> {
        let arch =
            TargetArch::try_from(std::env::consts::ARCH).map_err(|_| SeccompError::Arch {
                arch: std::env::consts::ARCH,
            })?;
        let mut by_errno: BTreeMap<i32, BTreeMap<i64, Vec<SeccompRule>>> = BTreeMap::new();
        for d in DENIED {
            let lifted = d
                .unless
                .and_then(super::caps::by_name)
                .is_some_and(|c| caps.has(c));
            if !lifted {
                by_errno
                    .entry(d.errno)
                    .or_default()
                    .insert(d.nr, Vec::new());
            }
        }
        let mut programs = Vec::new();
        for (errno, set) in by_errno {
            let filter = SeccompFilter::new(
                set,
                SeccompAction::Allow,
                SeccompAction::Errno(errno as u32),
                arch,
            )
            .map_err(|e| SeccompError::Compile(e.to_string()))?;
            let bpf: BpfProgram = filter
                .try_into()
                .map_err(|e: seccompiler::BackendError| SeccompError::Compile(e.to_string()))?;
            programs.push(bpf);
        }
        #[cfg(target_arch = "x86_64")]
        programs.push(x32_refused());
        Ok(Filter { programs })
    }

    /// Every instruction, in installation order (for tests).
    pub fn programs(&self) -> &[BpfProgram] {
        &self.programs
    }

    /// Install the filter on the calling thread, for it and every process
    /// it execs or forks. No allocation: safe between fork and exec. Needs
    /// `CAP_SYS_ADMIN` (no `no_new_privs` is set, on purpose).
    pub fn install(&self) -> io::Result<()> {
        for program in &self.programs {
            let prog = libc::sock_fprog {
                len: program.len() as u16,
                filter: program.as_ptr() as *mut libc::sock_filter,
            };
            // SAFETY: seccompiler's sock_filter has libc's layout (repr(C),
            // code/jt/jf/k); the kernel copies the program during the call.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0 as libc::c_ulong,
                    &prog as *const libc::sock_fprog,
                )
            };
            if r != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// A program refusing every x32 call with ENOSYS, as a kernel without x32
/// does. seccompiler has no comparison on the call number beyond
/// equality, so this one is written out: load nr, compare, return.
#[cfg(target_arch = "x86_64")]
fn x32_refused() -> BpfProgram {
    use seccompiler::sock_filter;
    // BPF_LD | BPF_W | BPF_ABS (the first two are 0).
    const LD_W_ABS: u16 = 0x20;
    const JGE_K: u16 = 0x05 | 0x30;
    const RET_K: u16 = 0x06;
    let ins = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        // seccomp_data.arch must be x86_64 here: i386 calls carry their
        // own arch and are killed by the other programs' arch check.
        ins(LD_W_ABS, 0, 0, 0),
        ins(JGE_K, 0, 1, X32_SYSCALL_BIT),
        ins(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        ins(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granting_a_capability_lifts_its_entries() {
        let none = Filter::for_caps(Caps::default()).unwrap();
        let time = Filter::for_caps(Caps::of(&["sys_time"])).unwrap();
        let len = |f: &Filter| f.programs().iter().map(Vec::len).sum::<usize>();
        assert!(len(&none) > DENIED.len());
        // Three clock calls fewer, each a few instructions.
        assert!(len(&time) < len(&none), "{} {}", len(&time), len(&none));
        let names: std::collections::HashSet<_> = DENIED.iter().map(|d| d.name).collect();
        assert_eq!(names.len(), DENIED.len(), "a call is listed twice");
    }

    /// Installed in a forked child: refused calls get their errno, others
    /// go through, and no_new_privs stays off.
    #[test]
    fn installed_filter_refuses_and_lets_through() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: installing a filter without no_new_privs needs root");
            return;
        }
        let filter = Filter::for_caps(Caps::default()).unwrap();
        // SAFETY: the child makes system calls only and leaves with _exit.
        let child = unsafe { libc::fork() };
        assert!(child >= 0);
        if child == 0 {
            let code = unsafe {
                let errno = || *libc::__errno_location();
                if filter.install().is_err() {
                    libc::_exit(10);
                }
                let image = [0u8; 8];
                let r = libc::syscall(libc::SYS_init_module, image.as_ptr(), 8usize, c"".as_ptr());
                if r != -1 || errno() != libc::EPERM {
                    libc::_exit(11);
                }
                let r = libc::syscall(libc::SYS_io_uring_setup, 1u32, std::ptr::null_mut::<u8>());
                if r != -1 || errno() != libc::ENOSYS {
                    libc::_exit(12);
                }
                let r = libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0);
                if r != -1 || errno() != libc::ENOSYS {
                    libc::_exit(13);
                }
                // x32's getpid: refused as a kernel without x32 would.
                #[cfg(target_arch = "x86_64")]
                if libc::syscall(libc::SYS_getpid | 0x4000_0000) != -1 || errno() != libc::ENOSYS {
                    libc::_exit(14);
                }
                if libc::getpid() <= 0 {
                    libc::_exit(15);
                }
                if libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 0 {
                    libc::_exit(16);
                }
                0
            };
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(child, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "child died: {status}");
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "see the exit codes in the child"
        );
    }
}
