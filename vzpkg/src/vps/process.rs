//! Processes of a running VPS: starting its PID 1, stopping it, running a
//! command inside it, and telling from `/proc` whether it runs.
//!
//! `start` forks twice: the first child leaves vzctl's session, unshares the
//! mount, PID, UTS and IPC (optionally network) namespaces, forks the VPS's
//! PID 1, hands its pid back and exits, so PID 1 is detached from vzctl.
//! PID 1 sets up the root with [`MountPlan`] (the same code a build chroot
//! uses), then execs the template's `/sbin/init`; a template without one
//! gets [`minimal_init`], which stays in this (forked) program: it reaps
//! orphans and, on SIGTERM or SIGINT, passes SIGTERM to every process of the
//! VPS, waits up to a second and exits, which kills what is left.
//!
//! Both forks happen in a process that may have other threads (a test), so
//! everything after `fork` is plain system calls on data prepared before it.

use crate::sandbox::{MountPlan, Step};
use std::ffi::{CString, OsStr};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Where the template's own init would be.
pub const INIT_PATH: &str = "/sbin/init";

/// The environment PID 1 and commands run with inside a VPS.
pub fn vps_env() -> Vec<(String, String)> {
    vec![
        ("PATH".into(), crate::sandbox::DEFAULT_PATH.into()),
        ("HOME".into(), "/root".into()),
        (
            "TERM".into(),
            std::env::var("TERM").unwrap_or_else(|_| "linux".into()),
        ),
        ("container".into(), "vzpkg".into()),
    ]
}

// Steps of `start` beyond the sandbox's own, and the record tags.
const STEP_SETSID: u8 = 100;
const STEP_LOOPBACK: u8 = 101;
const STEP_STDIO: u8 = 102;
const STEP_CGROUP: u8 = 103;
const STEP_VIEW: u8 = 104;
const TAG_PID: u8 = b'P';
const TAG_STEP: u8 = b'S';
const TAG_ERROR: u8 = b'E';

fn step_name(code: u8) -> String {
    match code {
        STEP_SETSID => "leave vzctl's session".into(),
        STEP_LOOPBACK => "bring up the loopback interface".into(),
        STEP_STDIO => "point stdin/stdout/stderr at /dev/null".into(),
        STEP_CGROUP => "join the VPS's cgroup".into(),
        STEP_VIEW => "put the VPS's own figures over /proc".into(),
        c => Step::from_u8(c).map_or_else(|| format!("step {c}"), |s| s.to_string()),
    }
}

/// Everything PID 1 needs, built before the fork.
pub struct StartPlan {
    pub mounts: MountPlan,
    pub private_net: bool,
    /// The `cgroup.procs` files of the VPS's cgroup, joined before the
    /// namespaces are made (its own cgroup namespace is rooted there).
    pub cgroup_procs: Vec<CString>,
    /// The detached mount of the `/proc` view, and (file, target inside)
    /// for each file init attaches after the pivot.
    pub view: Option<RawFd>,
    pub view_files: Vec<(CString, CString)>,
    /// argv and envp for `/sbin/init`, or `None` for the built-in init.
    pub init: Option<(CString, Vec<CString>, Vec<CString>)>,
}

impl StartPlan {
    pub fn new(root: &Path, hostname: &str, private_net: bool) -> Result<StartPlan, String> {
        let bad = |_| {
            format!(
                "{} or hostname {hostname:?} contains a NUL byte",
                root.display()
            )
        };
        let mounts = MountPlan::new(root, hostname, true).map_err(bad)?;
        let inside = root.join(INIT_PATH.trim_start_matches('/'));
        // A dangling symlink (to systemd, say) still counts: exec follows it inside.
        let init = if std::fs::symlink_metadata(&inside).is_ok() {
            let path = CString::new(INIT_PATH).map_err(bad)?;
            let env = vps_env()
                .into_iter()
                .map(|(k, v)| CString::new(format!("{k}={v}")))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?;
            Some((path.clone(), vec![path], env))
        } else {
            None
        };
        Ok(StartPlan {
            mounts,
            private_net,
            cgroup_procs: Vec::new(),
            view: None,
            view_files: crate::procview::FILES
                .iter()
                .map(|(name, target)| Ok((CString::new(*name)?, CString::new(*target)?)))
                .collect::<Result<_, std::ffi::NulError>>()
                .map_err(bad)?,
            init,
        })
    }
}

/// Start PID 1 of a VPS; returns its pid as the host sees it. Setup
/// failures come back as (step, error).
pub fn start(plan: &StartPlan) -> Result<i32, (String, io::Error)> {
    let pipe_err = |e: io::Error| ("create a pipe".to_string(), e);
    let (reader, pipe_writer) = io::pipe().map_err(pipe_err)?;
    // Above stdio, so redirecting 0-2 inside never clobbers it.
    let writer =
        rustix::io::fcntl_dupfd_cloexec(&pipe_writer, 3).map_err(|e| pipe_err(e.into()))?;
    // Every write end must close for the read below to end.
    drop(pipe_writer);
    let argv_ptrs: Vec<*const libc::c_char> = plan
        .init
        .as_ref()
        .map(|(_, argv, _)| {
            argv.iter()
                .map(|a| a.as_ptr())
                .chain([std::ptr::null()])
                .collect()
        })
        .unwrap_or_default();
    let env_ptrs: Vec<*const libc::c_char> = plan
        .init
        .as_ref()
        .map(|(_, _, env)| {
            env.iter()
                .map(|a| a.as_ptr())
                .chain([std::ptr::null()])
                .collect()
        })
        .unwrap_or_default();
    let wfd = writer.as_raw_fd();

    // SAFETY: the child only makes system calls on data prepared above.
    let first = unsafe { libc::fork() };
    if first < 0 {
        return Err(("fork".into(), io::Error::last_os_error()));
    }
    if first == 0 {
        // SAFETY: in the forked child; never returns.
        unsafe { first_child(plan, wfd, &argv_ptrs, &env_ptrs) }
    }
    drop(writer);
    let records = read_records(OwnedFd::from(reader));
    let mut status = 0;
    // SAFETY: reaping our own child, which exits right after the second fork.
    unsafe { libc::waitpid(first, &mut status, 0) };
    let mut pid = None;
    let mut last_step = String::from("start");
    for r in records.map_err(|e| ("read the start pipe".to_string(), e))? {
        let value = i32::from_le_bytes([r[4], r[5], r[6], r[7]]);
        match r[0] {
            TAG_PID => pid = Some(value),
            TAG_STEP => last_step = step_name(r[1]),
            TAG_ERROR => {
                return Err((step_name(r[1]), io::Error::from_raw_os_error(value)));
            }
            _ => {}
        }
    }
    pid.ok_or_else(|| {
        (
            last_step,
            io::Error::other("the starting process died before PID 1 was forked"),
        )
    })
}

fn read_records(reader: OwnedFd) -> io::Result<Vec<[u8; 8]>> {
    let mut buf = Vec::new();
    std::fs::File::from(reader).read_to_end(&mut buf)?;
    Ok(buf
        .chunks_exact(8)
        .map(|c| [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
        .collect())
}

fn record(fd: RawFd, tag: u8, step: u8, value: i32) {
    let v = value.to_le_bytes();
    let b = [tag, step, 0, 0, v[0], v[1], v[2], v[3]];
    // SAFETY: `fd` is the start pipe's write end, open in this process.
    unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
}

fn fail(fd: RawFd, step: u8, e: &io::Error) -> ! {
    record(fd, TAG_ERROR, step, e.raw_os_error().unwrap_or(libc::EIO));
    // SAFETY: leaving a forked child without running Rust destructors.
    unsafe { libc::_exit(1) }
}

/// The first child: new session, new namespaces, fork PID 1, report, exit.
unsafe fn first_child(
    plan: &StartPlan,
    wfd: RawFd,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> ! {
    // Keep nothing of vzctl's, here and in PID 1: a caller reading vzctl's
    // output must see EOF when vzctl exits, not when the VPS stops, and a
    // lock vzctl lets go must not stay held by a copy while we set up.
    close_all_but(&[wfd, plan.view.unwrap_or(wfd)]);
    record(wfd, TAG_STEP, STEP_SETSID, 0);
    if libc::setsid() < 0 {
        fail(wfd, STEP_SETSID, &io::Error::last_os_error());
    }
    record(wfd, TAG_STEP, STEP_CGROUP, 0);
    for procs in &plan.cgroup_procs {
        if let Err(e) = join_cgroup(procs) {
            fail(wfd, STEP_CGROUP, &e);
        }
    }
    record(wfd, TAG_STEP, Step::Unshare as u8, 0);
    let mut flags = libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWCGROUP;
    if plan.private_net {
        flags |= libc::CLONE_NEWNET;
    }
    if libc::unshare(flags) != 0 {
        fail(wfd, Step::Unshare as u8, &io::Error::last_os_error());
    }
    record(wfd, TAG_STEP, Step::Fork as u8, 0);
    let pid = libc::fork();
    if pid < 0 {
        fail(wfd, Step::Fork as u8, &io::Error::last_os_error());
    }
    if pid == 0 {
        pid1(plan, wfd, argv, envp)
    }
    record(wfd, TAG_PID, 0, pid);
    libc::_exit(0)
}

/// PID 1 of the new namespaces.
unsafe fn pid1(
    plan: &StartPlan,
    wfd: RawFd,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> ! {
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGPIPE,
        libc::SIGCHLD,
    ] {
        libc::signal(sig, libc::SIG_DFL);
    }
    let mut current = 0u8;
    let applied = plan.mounts.apply(&mut |s| {
        current = s as u8;
        record(wfd, TAG_STEP, current, 0);
    });
    if let Err(e) = applied {
        fail(wfd, current, &e);
    }
    if let Some(view) = plan.view {
        record(wfd, TAG_STEP, STEP_VIEW, 0);
        if let Err(e) = attach_view(view, &plan.view_files) {
            fail(wfd, STEP_VIEW, &e);
        }
        libc::close(view);
    }
    if plan.private_net {
        record(wfd, TAG_STEP, STEP_LOOPBACK, 0);
        if let Err(e) = loopback_up() {
            fail(wfd, STEP_LOOPBACK, &e);
        }
    }
    record(wfd, TAG_STEP, STEP_STDIO, 0);
    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
    if null < 0 {
        fail(wfd, STEP_STDIO, &io::Error::last_os_error());
    }
    for fd in 0..3 {
        libc::dup2(null, fd);
    }
    if null > 2 {
        libc::close(null);
    }
    match &plan.init {
        Some((path, _, _)) => {
            record(wfd, TAG_STEP, Step::Exec as u8, 0);
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            fail(wfd, Step::Exec as u8, &io::Error::last_os_error())
        }
        None => {
            // Closing the pipe tells vzctl that setup is done.
            libc::close(wfd);
            minimal_init()
        }
    }
}

/// Write "0" (this process) into a `cgroup.procs` file: plain system calls,
/// safe after `fork`.
fn join_cgroup(procs: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: open, write and close on a NUL-terminated path made before the fork.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let r = libc::write(fd, b"0".as_ptr().cast(), 1);
        let e = io::Error::last_os_error();
        libc::close(fd);
        if r != 1 {
            return Err(e);
        }
    }
    Ok(())
}

/// Each file of the view over its target inside (after the pivot). The
/// beancounters' file is new in the VPS's own /dev, made for it.
fn attach_view(view: RawFd, files: &[(CString, CString)]) -> io::Result<()> {
    // SAFETY: the view's mount fd, kept open across the forks for this.
    let mount = unsafe { std::os::fd::BorrowedFd::borrow_raw(view) };
    for (name, target) in files {
        if target.to_bytes().starts_with(b"/dev/") {
            drop(rustix::fs::open(
                target.as_c_str(),
                rustix::fs::OFlags::CREATE
                    | rustix::fs::OFlags::WRONLY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::from_raw_mode(0o444),
            )?);
        } else if rustix::fs::access(target.as_c_str(), rustix::fs::Access::EXISTS).is_err() {
            // No such file on this kernel (no sysfs, say): nothing to cover.
            continue;
        }
        crate::sys::fusemount::attach_file(mount, name, target)?;
    }
    Ok(())
}

/// Close every fd from 3 up but those in `keep` (at most two, so no
/// allocation after `fork`).
fn close_all_but(keep: &[RawFd; 2]) {
    let (a, b) = (keep[0].min(keep[1]) as u32, keep[0].max(keep[1]) as u32);
    let mut ranges = [
        (3u32, a.wrapping_sub(1)),
        (a + 1, b.wrapping_sub(1)),
        (b + 1, u32::MAX),
    ];
    if a == b {
        ranges[1] = (1, 0);
    }
    // SAFETY: plain system calls in a forked child.
    unsafe {
        for (lo, hi) in ranges {
            if lo <= hi && libc::syscall(libc::SYS_close_range, lo, hi, 0u32) != 0 {
                for fd in lo..hi.min(1024) {
                    libc::close(fd as i32);
                }
            }
        }
    }
}

extern "C" fn note_signal(_: libc::c_int) {}

/// PID 1 for templates without `/sbin/init`: reap, and stop on SIGTERM/SIGINT.
fn minimal_init() -> ! {
    // SAFETY: plain system calls; no allocation.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGCHLD] {
            libc::sigaddset(&mut set, sig);
            // The kernel drops signals to a namespace's init that has no
            // handler, even blocked ones; a handler makes them pend.
            libc::signal(sig, note_signal as *const () as libc::sighandler_t);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        loop {
            let sig = libc::sigwaitinfo(&set, std::ptr::null_mut());
            reap();
            if sig == libc::SIGTERM || sig == libc::SIGINT {
                libc::kill(-1, libc::SIGTERM);
                for _ in 0..20 {
                    if !reap() {
                        break;
                    }
                    let ts = libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 50_000_000,
                    };
                    libc::nanosleep(&ts, std::ptr::null_mut());
                }
                libc::_exit(0);
            }
        }
    }
}

/// Reap finished children; false once there are no children left.
fn reap() -> bool {
    loop {
        let mut status = 0;
        // SAFETY: waiting for any child of this process.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r == 0 {
            return true;
        }
        if r < 0 {
            return io::Error::last_os_error().raw_os_error() != Some(libc::ECHILD);
        }
    }
}

fn loopback_up() -> io::Result<()> {
    // SAFETY: a socket and two ioctls on a zeroed, NUL-terminated ifreq.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        let mut r = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req);
        if r == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            r = libc::ioctl(s, libc::SIOCSIFFLAGS, &req);
        }
        let e = io::Error::last_os_error();
        libc::close(s);
        if r != 0 {
            return Err(e);
        }
    }
    Ok(())
}

/// Is `pid` a process that still runs: present, and neither a zombie nor
/// dead (an exited process keeps its `/proc` entry until it is reaped)?
pub fn is_running(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which may hold spaces and parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, r)| r.trim_start().chars().next());
    !matches!(state, None | Some('Z') | Some('X'))
}

/// Is `pid` a live (not zombie) process in a PID namespace other than ours,
/// and, when `root` is given, is its root that directory?
pub fn is_vps_init(pid: i32, root: Option<&Path>) -> bool {
    if !is_running(pid) {
        return false;
    }
    let ns = |p: &str| std::fs::metadata(p).map(|m| m.ino()).ok();
    let theirs = ns(&format!("/proc/{pid}/ns/pid"));
    if theirs.is_none() || theirs == ns("/proc/self/ns/pid") {
        return false;
    }
    match root {
        // The VPS's root is a bind of the same overlay: same device and inode.
        Some(root) => match (
            std::fs::metadata(format!("/proc/{pid}/root")),
            std::fs::metadata(root),
        ) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        },
        None => true,
    }
}

/// Wait until `pidfd`'s process has exited, up to `timeout`.
fn wait_exit(pidfd: &OwnedFd, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut p = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if r > 0 {
            return true;
        }
        if r == 0 || left.is_zero() {
            return false;
        }
    }
}

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Stopped {
    /// Init left on SIGTERM.
    Clean,
    /// Init needed SIGKILL (it ignored SIGTERM, or `--fast`).
    Killed,
    /// It was already gone.
    Gone,
}

/// SIGTERM to init, wait up to `timeout`, then SIGKILL (which takes the whole
/// PID namespace with it). A `TimedOut` error if it is still alive 10 s
/// after SIGKILL.
pub fn stop(pid: i32, fast: bool, timeout: Duration) -> io::Result<Stopped> {
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return Ok(Stopped::Gone);
    };
    let pidfd = match rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Ok(Stopped::Gone),
        Err(e) => return Err(e.into()),
    };
    let send = |sig: i32| {
        // SAFETY: signalling through a pidfd cannot hit a reused pid.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_fd().as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            )
        }
    };
    if !fast {
        send(libc::SIGTERM);
        if wait_exit(&pidfd, timeout) {
            return Ok(Stopped::Clean);
        }
    }
    send(libc::SIGKILL);
    if wait_exit(&pidfd, Duration::from_secs(10)) {
        Ok(Stopped::Killed)
    } else {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "still alive 10 s after SIGKILL",
        ))
    }
}

/// The namespaces a command joins, in the order it joins them: the mount
/// namespace last, since joining it changes what `/proc` paths mean.
const NAMESPACES: [(&str, libc::c_int); 6] = [
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("mnt", libc::CLONE_NEWNS),
];

/// Run `argv` (an absolute path inside the VPS first) in the namespaces and
/// root of the running VPS whose init is `pid`, on the caller's stdio, and
/// return its exit code (128 + signal if it was killed). It joins the
/// VPS's cgroup first (`cgroup_procs`: its `cgroup.procs` files).
pub fn exec_in(
    pid: i32,
    argv: &[&OsStr],
    cgroup_procs: &[std::path::PathBuf],
) -> Result<i32, (&'static str, io::Error)> {
    let mut joins: Vec<OwnedFd> = Vec::new();
    for p in cgroup_procs {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .map_err(|e| ("open the VPS's cgroup", e))?;
        joins.push(OwnedFd::from(f));
    }
    let join_raw: Vec<RawFd> = joins.iter().map(|f| f.as_raw_fd()).collect();
    let mut fds: Vec<(OwnedFd, libc::c_int)> = Vec::new();
    for (name, flag) in NAMESPACES {
        let path = format!("/proc/{pid}/ns/{name}");
        let own = format!("/proc/self/ns/{name}");
        let same = match (std::fs::metadata(&path), std::fs::metadata(&own)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            (Err(e), _) => return Err(("open the VPS's namespaces", e)),
            _ => false,
        };
        // Joining our own namespace again is harmless except for the
        // network one, which a VPS usually shares with the host.
        if same && flag == libc::CLONE_NEWNET {
            continue;
        }
        let f = std::fs::File::open(&path).map_err(|e| ("open the VPS's namespaces", e))?;
        fds.push((OwnedFd::from(f), flag));
    }
    let root = rustix::fs::open(
        format!("/proc/{pid}/root").as_str(),
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| ("open the VPS's root", io::Error::from(e)))?;
    let raw: Vec<(RawFd, libc::c_int)> = fds.iter().map(|(f, n)| (f.as_raw_fd(), *n)).collect();
    let root_fd = root.as_raw_fd();

    let Some((program, rest)) = argv.split_first() else {
        return Err(("run", io::Error::other("empty command line")));
    };
    let mut cmd = Command::new(program);
    cmd.args(rest).env_clear().envs(vps_env());
    // SAFETY: only system calls between fork and exec, on data made before.
    unsafe {
        cmd.pre_exec(move || {
            // Into the cgroup before its namespace: inside, `/` is the VPS's cgroup.
            for fd in &join_raw {
                if libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            for (fd, flag) in &raw {
                if libc::setns(*fd, *flag) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // A PID namespace applies to children only: fork once more.
            let child = libc::fork();
            if child < 0 {
                return Err(io::Error::last_os_error());
            }
            if child > 0 {
                crate::sandbox::wait_and_mirror(child, false)
            }
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            if libc::fchdir(root_fd) != 0 || libc::chroot(c".".as_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
            libc::chdir(c"/".as_ptr());
            Ok(())
        });
    }
    // Like system(3): Ctrl-C is for the command, not for vzctl.
    let (old_int, old_quit) = unsafe {
        (
            libc::signal(libc::SIGINT, libc::SIG_IGN),
            libc::signal(libc::SIGQUIT, libc::SIG_IGN),
        )
    };
    let result = cmd.status();
    // SAFETY: restoring the dispositions saved above.
    unsafe {
        libc::signal(libc::SIGINT, old_int);
        libc::signal(libc::SIGQUIT, old_quit);
    }
    drop(fds);
    drop(joins);
    let status = result.map_err(|e| ("enter the VPS's namespaces and run", e))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1))
}

/// Set the hostname of a running VPS (its UTS namespace) from outside.
pub fn set_hostname_in(pid: i32, hostname: &str) -> io::Result<()> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/uts"))?;
    let name = CString::new(hostname).map_err(io::Error::other)?;
    let fd = ns.as_raw_fd();
    // SAFETY: the child makes two system calls and exits.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(io::Error::last_os_error());
    }
    if child == 0 {
        // SAFETY: as above.
        unsafe {
            let ok = libc::setns(fd, libc::CLONE_NEWUTS) == 0
                && libc::sethostname(name.as_ptr(), name.as_bytes().len()) == 0;
            libc::_exit(if ok { 0 } else { 1 });
        }
    }
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(io::Error::other("setns/sethostname in a child failed"))
    }
}

/// Whether `path` (inside a VPS root, maybe a symlink) names something.
pub fn exists_inside(root: &Path, inside: &str) -> bool {
    std::fs::symlink_metadata(root.join(inside.trim_start_matches('/'))).is_ok()
}
