//! Processes of a running VPS: starting its PID 1, stopping it, running a
//! command inside it, and telling from `/proc` whether it runs.
//!
//! `start` forks twice: the first child leaves vzctl's session, joins the
//! VPS's cgroup (every hierarchy, [`crate::cgroup`]), unshares the mount, PID, UTS, IPC, network and
//! cgroup namespaces, forks the VPS's PID 1, hands its pid back and exits,
//! so PID 1 is detached from vzctl. PID 1 sets up the root with
//! [`MountPlan`] (the same code a build chroot uses), attaches the VPS's
//! own figures over `/proc` files ([`crate::procview`]), puts up the VPS's
//! [`Walls`] (masks, then system-call filter and capabilities last), then
//! execs the template's `/sbin/init`; a template without one
//! gets [`minimal_init`], which stays in this (forked) program: it reaps
//! orphans and, on SIGTERM or SIGINT, passes SIGTERM to every process of the
//! VPS, waits up to a second and exits, which kills what is left.
//!
//! Both forks happen in a process that may have other threads (a test), so
//! everything after `fork` is plain system calls on data prepared before it.

use super::walls::Walls;
use crate::sandbox::{MountPlan, Step};
use crate::sys::{
    self,
    ns::{Namespace, UnshareFlags},
    process::{Exec, Forked},
    signal,
};
use rustix::process::Signal;
use std::ffi::{CString, OsStr};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
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
const STEP_WALL_MOUNTS: u8 = 104;
const STEP_LOCK_DOWN: u8 = 105;
const STEP_CONSOLE: u8 = 106;
const STEP_USERNS: u8 = 107;
const STEP_VIEW: u8 = 108;
const TAG_PID: u8 = b'P';
const TAG_STEP: u8 = b'S';
const TAG_ERROR: u8 = b'E';

fn step_name(code: u8) -> String {
    match code {
        STEP_SETSID => "leave vzctl's session".into(),
        STEP_LOOPBACK => "bring up the loopback interface".into(),
        STEP_STDIO => "point stdin/stdout/stderr at /dev/null".into(),
        STEP_CGROUP => "join the VPS's cgroup".into(),
        STEP_WALL_MOUNTS => "mask /proc and /sys files, make /proc/sys read-only".into(),
        STEP_LOCK_DOWN => "install the system-call filter and drop capabilities".into(),
        STEP_CONSOLE => "make /dev/console a pty and hand its master to the keeper".into(),
        STEP_USERNS => "join the VPS's user namespace as its root".into(),
        STEP_VIEW => "put the VPS's own figures over /proc".into(),
        c => Step::from_u8(c).map_or_else(|| format!("step {c}"), |s| s.to_string()),
    }
}

/// Everything PID 1 needs, built before the fork.
pub struct StartPlan {
    pub mounts: MountPlan,
    pub private_net: bool,
    /// The VPS's walls; `None` for a privileged VPS (no walls).
    pub walls: Option<Walls>,
    /// The `cgroup.procs` files of the VPS's cgroup (one per hierarchy),
    /// joined before anything else; its cgroup namespace is rooted there.
    pub cgroup: Vec<OwnedFd>,
    /// The console keeper's channel (a VPS with walls).
    pub console: Option<sys::console::Channel>,
    /// `/sbin/init` with its argv and envp, or `None` for the built-in init.
    pub init: Option<Exec>,
    /// The VPS's user namespace (an unprivileged VPS): joined right after
    /// the cgroup, so it owns every namespace unshared after.
    pub userns: Option<OwnedFd>,
    // Resources (procview): the detached mount of the `/proc` view, and
    // (file, target inside) for each file PID 1 attaches after the pivot.
    pub view: Option<OwnedFd>,
    pub view_files: Vec<(CString, CString)>,
}

impl StartPlan {
    pub fn new(
        root: &Path,
        hostname: &str,
        private_net: bool,
        walls: Option<Walls>,
        cgroup: Vec<OwnedFd>,
    ) -> Result<StartPlan, String> {
        let bad = |_| {
            format!(
                "{} or hostname {hostname:?} contains a NUL byte",
                root.display()
            )
        };
        let mut mounts = MountPlan::new(root, hostname, true).map_err(bad)?;
        // Nodes of the VPS's own, not binds of the host's: no file of the
        // host's /dev (devtmpfs) is reachable from inside.
        mounts.mknod_nodes = walls.is_some();
        if let Some(w) = &walls {
            w.add_nodes_to(&mut mounts)?;
        }
        let inside = root.join(INIT_PATH.trim_start_matches('/'));
        // A dangling symlink (to systemd, say) still counts: exec follows it inside.
        let init = if std::fs::symlink_metadata(&inside).is_ok() {
            let path = CString::new(INIT_PATH).map_err(bad)?;
            let env = vps_env()
                .into_iter()
                .map(|(k, v)| CString::new(format!("{k}={v}")))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?;
            Some(Exec::new(path.clone(), vec![path], env))
        } else {
            None
        };
        let console = if walls.is_some() {
            Some(sys::console::channel().map_err(|e| format!("a socket pair: {e}"))?)
        } else {
            None
        };
        Ok(StartPlan {
            mounts,
            private_net,
            walls,
            cgroup,
            console,
            init,
            userns: None,
            view: None,
            view_files: crate::procview::FILES
                .iter()
                .map(|(name, target)| Ok((CString::new(*name)?, CString::new(*target)?)))
                .collect::<Result<_, std::ffi::NulError>>()
                .map_err(bad)?,
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
    let wfd = writer.as_raw_fd();

    let first = match sys::process::fork() {
        Err(e) => return Err(("fork".into(), e)),
        // In the forked child; never returns.
        Ok(Forked::Child) => first_child(plan, wfd),
        Ok(Forked::Parent(pid)) => pid,
    };
    drop(writer);
    let records = read_records(OwnedFd::from(reader));
    // Reaping our own child, which exits right after the second fork.
    let _ = sys::process::wait(first);
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
    // `fd` is the start pipe's write end, open in this process.
    sys::process::write_fd(fd, &[tag, step, 0, 0, v[0], v[1], v[2], v[3]]);
}

fn fail(fd: RawFd, step: u8, e: &io::Error) -> ! {
    record(fd, TAG_ERROR, step, e.raw_os_error().unwrap_or(libc::EIO));
    sys::process::exit_now(1)
}

/// The first child: new session, new namespaces, fork PID 1, report, exit.
fn first_child(plan: &StartPlan, wfd: RawFd) -> ! {
    // Keep nothing of vzctl's, here and in PID 1: a caller reading vzctl's
    // output must see EOF when vzctl exits, not when the VPS stops, and a
    // lock vzctl lets go must not stay held by a copy while we set up.
    let (keeper_fd, vps_fd) = match &plan.console {
        Some(c) => (c.keeper.as_raw_fd(), c.vps.as_raw_fd()),
        None => (-1, -1),
    };
    if keeper_fd >= 0 {
        // The console keeper, forked first: before the PID namespace (no
        // process of the VPS sees it), before the user namespace (it stays
        // host-side) and before the cgroup (it is not one of the VPS's
        // processes, counts against none of its limits and does not keep
        // its cgroup alive).
        record(wfd, TAG_STEP, STEP_CONSOLE, 0);
        match sys::process::fork() {
            Err(e) => fail(wfd, STEP_CONSOLE, &e),
            Ok(Forked::Child) => {
                sys::console::close_fds_except(&[keeper_fd]);
                // Out of vzctl's session: a Ctrl-C or hangup there is not
                // the console's business.
                let _ = sys::process::setsid();
                sys::console::keep(keeper_fd)
            }
            Ok(Forked::Parent(_)) => sys::process::close_fd(keeper_fd),
        }
    }
    // Then the cgroup (joining needs the host's root): its fds go with
    // the others below.
    record(wfd, TAG_STEP, STEP_CGROUP, 0);
    if let Err(e) = sys::cgroup::join(&plan.cgroup) {
        fail(wfd, STEP_CGROUP, &e);
    }
    // Then the user namespace, before the fds go (it is one of them).
    if let Some(ns) = &plan.userns {
        record(wfd, TAG_STEP, STEP_USERNS, 0);
        if let Err(e) = sys::userns::join_as_root(ns.as_raw_fd()) {
            fail(wfd, STEP_USERNS, &e);
        }
    }
    let view_fd = plan.view.as_ref().map_or(-1, |v| v.as_raw_fd());
    sys::console::close_fds_except(&[wfd, vps_fd, view_fd]);
    record(wfd, TAG_STEP, STEP_SETSID, 0);
    if let Err(e) = sys::process::setsid() {
        fail(wfd, STEP_SETSID, &e);
    }
    record(wfd, TAG_STEP, Step::Unshare as u8, 0);
    // The cgroup namespace is rooted at the cgroup joined above:
    // /proc/self/cgroup inside shows `/`, no host path.
    let mut flags = UnshareFlags::NEWNS
        | UnshareFlags::NEWPID
        | UnshareFlags::NEWUTS
        | UnshareFlags::NEWIPC
        | UnshareFlags::NEWCGROUP;
    if plan.private_net {
        flags |= UnshareFlags::NEWNET;
    }
    if let Err(e) = sys::ns::unshare(flags) {
        fail(wfd, Step::Unshare as u8, &e);
    }
    record(wfd, TAG_STEP, Step::Fork as u8, 0);
    match sys::process::fork() {
        Err(e) => fail(wfd, Step::Fork as u8, &e),
        Ok(Forked::Child) => pid1(plan, wfd, vps_fd),
        Ok(Forked::Parent(pid)) => {
            if vps_fd >= 0 {
                // If this fails the keeper leaves once PID 1 closes its end too.
                let _ = sys::console::send_pid(vps_fd, pid);
            }
            record(wfd, TAG_PID, 0, pid);
            sys::process::exit_now(0)
        }
    }
}

/// PID 1 of the new namespaces.
fn pid1(plan: &StartPlan, wfd: RawFd, console_fd: RawFd) -> ! {
    sys::signal::unblock_all();
    sys::signal::set_default(&[
        signal::SIGINT,
        signal::SIGTERM,
        signal::SIGHUP,
        signal::SIGQUIT,
        signal::SIGPIPE,
        signal::SIGCHLD,
    ]);
    let mut current = 0u8;
    let applied = plan.mounts.apply(&mut |s| {
        current = s as u8;
        record(wfd, TAG_STEP, current, 0);
    });
    if let Err(e) = applied {
        fail(wfd, current, &e);
    }
    if let Some(view) = &plan.view {
        record(wfd, TAG_STEP, STEP_VIEW, 0);
        if let Err(e) = sys::fusemount::attach_files(view.as_fd(), &plan.view_files) {
            fail(wfd, STEP_VIEW, &e);
        }
        // What is attached holds the file system; the fd would keep the
        // server busy after the VPS's mounts are gone.
        sys::process::close_fd(view.as_raw_fd());
    }
    if let Some(walls) = &plan.walls {
        record(wfd, TAG_STEP, STEP_WALL_MOUNTS, 0);
        if let Err(e) = walls.apply_mounts() {
            fail(wfd, STEP_WALL_MOUNTS, &e);
        }
    }
    if console_fd >= 0 {
        record(wfd, TAG_STEP, STEP_CONSOLE, 0);
        if let Err(e) = sys::console::make_console(console_fd) {
            fail(wfd, STEP_CONSOLE, &e);
        }
        sys::process::close_fd(console_fd);
    }
    if plan.private_net {
        record(wfd, TAG_STEP, STEP_LOOPBACK, 0);
        if let Err(e) = sys::net::loopback_up() {
            fail(wfd, STEP_LOOPBACK, &e);
        }
    }
    record(wfd, TAG_STEP, STEP_STDIO, 0);
    if let Err(e) = sys::process::stdio_to_dev_null() {
        fail(wfd, STEP_STDIO, &e);
    }
    if let Some(walls) = &plan.walls {
        record(wfd, TAG_STEP, STEP_LOCK_DOWN, 0);
        if let Err(e) = walls.lock_down() {
            fail(wfd, STEP_LOCK_DOWN, &e);
        }
    }
    match &plan.init {
        Some(init) => {
            record(wfd, TAG_STEP, Step::Exec as u8, 0);
            let e = init.exec();
            fail(wfd, Step::Exec as u8, &e)
        }
        None => {
            // Closing the pipe tells vzctl that setup is done.
            sys::process::close_fd(wfd);
            minimal_init()
        }
    }
}

/// PID 1 for templates without `/sbin/init`: reap, and stop on SIGTERM/SIGINT.
fn minimal_init() -> ! {
    // Plain system calls; no allocation.
    let signals =
        sys::signal::InitSignals::install(&[signal::SIGTERM, signal::SIGINT, signal::SIGCHLD]);
    loop {
        let sig = signals.wait();
        sys::process::reap_finished();
        if sig == signal::SIGTERM || sig == signal::SIGINT {
            sys::signal::kill_all(signal::SIGTERM);
            for _ in 0..20 {
                if !sys::process::reap_finished() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            sys::process::exit_now(0);
        }
    }
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
    sys::poll::wait_readable(pidfd.as_fd(), Some(timeout)).unwrap_or(false)
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
    let Some(pidfd) = sys::ns::pidfd_open(pid)? else {
        return Ok(Stopped::Gone);
    };
    // Signalling through a pidfd cannot hit a reused pid.
    let send = |sig| {
        let _ = sys::ns::pidfd_kill(pidfd.as_fd(), sig);
    };
    if !fast {
        send(Signal::TERM);
        if wait_exit(&pidfd, timeout) {
            return Ok(Stopped::Clean);
        }
    }
    send(Signal::KILL);
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
const NAMESPACES: [(&str, Namespace); 6] = [
    ("cgroup", Namespace::ControlGroup),
    ("ipc", Namespace::InterProcessCommunication),
    ("uts", Namespace::HostNameAndNISDomainName),
    ("net", Namespace::Network),
    ("pid", Namespace::ProcessID),
    ("mnt", Namespace::Mount),
];

/// Run `argv` (an absolute path inside the VPS first) in the namespaces and
/// root of the running VPS whose init is `pid`, on the caller's stdio, and
/// return its exit code (128 + signal if it was killed). The command joins
/// the VPS's cgroup first (`cgroup`, its `cgroup.procs` files), then an
/// unprivileged VPS's user namespace (it owns the rest). With `walls`, it
/// gets init's system-call filter and capabilities: no way in is stronger
/// than init.
pub fn exec_in(
    pid: i32,
    argv: &[&OsStr],
    walls: Option<&Walls>,
    cgroup: Vec<OwnedFd>,
) -> Result<i32, (&'static str, io::Error)> {
    let userns = sys::userns::of_process(pid).map_err(|e| ("open the VPS's user namespace", e))?;
    let mut fds: Vec<(OwnedFd, Namespace)> = Vec::new();
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
        if same && flag == Namespace::Network {
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

    let Some((program, rest)) = argv.split_first() else {
        return Err(("run", io::Error::other("empty command line")));
    };
    let mut cmd = Command::new(program);
    cmd.args(rest).env_clear().envs(vps_env());
    let walls = walls.cloned();
    // Only system calls between fork and exec, on data made before; `cmd`
    // owns `fds` and `root` until it is dropped after the command.
    sys::process::before_exec(&mut cmd, move || {
        // Not dumpable until exec: no process of the VPS may ptrace this
        // one while it still has the host's capabilities.
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)?;
        // Into the cgroup before its namespace: inside, `/` is the VPS's cgroup.
        sys::cgroup::join(&cgroup)?;
        if let Some(ns) = &userns {
            sys::userns::join_as_root(ns.as_raw_fd())?;
        }
        for (fd, ns) in &fds {
            sys::ns::setns(fd.as_fd(), *ns)?;
        }
        // A PID namespace applies to children only: fork once more.
        if let Forked::Parent(child) = sys::process::fork()? {
            sys::process::wait_and_mirror(child, false)
        }
        sys::signal::set_default(&[signal::SIGINT, signal::SIGQUIT]);
        rustix::process::fchdir(&root)?;
        rustix::process::chroot(c".")?;
        let _ = rustix::process::chdir(c"/");
        if let Some(w) = &walls {
            w.lock_down()?;
        }
        Ok(())
    });
    // Like system(3): Ctrl-C is for the command, not for vzctl.
    let ignored = sys::signal::ignore_interactive();
    let result = cmd.status();
    drop(ignored);
    drop(cmd);
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
    // The child makes two system calls and exits.
    let child = match sys::process::fork()? {
        Forked::Child => {
            let ok = sys::ns::setns(ns.as_fd(), Namespace::HostNameAndNISDomainName).is_ok()
                && rustix::system::sethostname(name.as_bytes()).is_ok();
            sys::process::exit_now(if ok { 0 } else { 1 })
        }
        Forked::Parent(child) => child,
    };
    match sys::process::wait(child)? {
        sys::process::Exit::Code(0) => Ok(()),
        _ => Err(io::Error::other("setns/sethostname in a child failed")),
    }
}

/// Whether `path` (inside a VPS root, maybe a symlink) names something.
pub fn exists_inside(root: &Path, inside: &str) -> bool {
    std::fs::symlink_metadata(root.join(inside.trim_start_matches('/'))).is_ok()
}
