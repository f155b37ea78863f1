//! The one place that creates namespaces, mounts and chroots. Everything that
//! runs a program inside a tree (maintainer scripts, later VPS processes) goes
//! through here.
//!
//! How a command runs: the forked child unshares mount, PID, UTS and IPC
//! namespaces and forks once more; that grandchild is PID 1 of the new PID
//! namespace and becomes the command itself (no extra init). It makes every
//! mount private, bind-mounts the tree onto itself, mounts `/proc`, a small
//! `/dev` (tmpfs with bind mounts of the host's device nodes, `/dev/pts`,
//! `/dev/shm`) and optionally a read-only `/sys`, sets the hostname,
//! `pivot_root`s into the tree, detaches the old root and execs. The middle
//! process only waits and passes the exit status on. All mounts live in the
//! new mount namespace and vanish with it; the host never sees them.

use crate::sys::{self, ns::UnshareFlags, process::Forked};
use rustix::fs::{Mode, OFlags};
use rustix::mount::MountFlags;
use std::ffi::{CStr, CString, OsStr};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use thiserror::Error;

/// Host device nodes bind-mounted into the sandbox's `/dev`.
pub const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Captured output beyond this is dropped from the front: callers want the tail.
const OUTPUT_CAP: usize = 4 << 20;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SandboxError {
    #[error(
        "tree {root}: not a directory; the staging tree must exist before anything runs in it"
    )]
    NoTree { root: PathBuf },
    #[error("tree {root}: {path} is not a directory, so nothing can be mounted there; remove it or fix the package that ships it")]
    BadMountPoint { root: PathBuf, path: PathBuf },
    #[error("tree {root}: cannot create mount point {path}: {source}; check that the tree is writable and the disk is not full")]
    MountPoint {
        root: PathBuf,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("running {command} in tree {root}: command not found in the tree (searched {searched}); install the package that provides it")]
    NotFound {
        root: PathBuf,
        command: String,
        searched: String,
    },
    #[error("running {command} in tree {root}: sandbox step '{step}' failed: {source}; vzpkg must run as root on a Linux kernel with mount, PID, UTS and IPC namespaces")]
    Setup {
        root: PathBuf,
        command: String,
        step: Step,
        #[source]
        source: io::Error,
    },
    #[error("running {command} in tree {root}: {action} failed: {source}")]
    Io {
        root: PathBuf,
        command: String,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("tree {root}: {what} contains a NUL byte; use a path and hostname without one")]
    Nul { root: PathBuf, what: String },
}

impl SandboxError {
    /// True when the failure was the tree's file system running out of space.
    pub fn is_disk_full(&self) -> bool {
        match self {
            SandboxError::MountPoint { source, .. }
            | SandboxError::Setup { source, .. }
            | SandboxError::Io { source, .. } => source.raw_os_error() == Some(libc::ENOSPC),
            _ => false,
        }
    }
}

/// The steps of entering the sandbox, in order; a failure names its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    Unshare = 1,
    Fork,
    PrivateMounts,
    BindRoot,
    MountProc,
    MountDev,
    DevNodes,
    MountDevPts,
    MountDevShm,
    DevLinks,
    MountSys,
    Hostname,
    PivotRoot,
    Exec,
}

impl Step {
    const ALL: [Step; 14] = [
        Step::Unshare,
        Step::Fork,
        Step::PrivateMounts,
        Step::BindRoot,
        Step::MountProc,
        Step::MountDev,
        Step::DevNodes,
        Step::MountDevPts,
        Step::MountDevShm,
        Step::DevLinks,
        Step::MountSys,
        Step::Hostname,
        Step::PivotRoot,
        Step::Exec,
    ];

    pub(crate) fn from_u8(b: u8) -> Option<Step> {
        Step::ALL.iter().copied().find(|s| *s as u8 == b)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Unshare => "create mount/pid/uts/ipc namespaces",
            Step::Fork => "fork into the new pid namespace",
            Step::PrivateMounts => "make all mounts private",
            Step::BindRoot => "bind-mount the tree onto itself",
            Step::MountProc => "mount /proc",
            Step::MountDev => "mount tmpfs on /dev",
            Step::DevNodes => "bind-mount device nodes into /dev",
            Step::MountDevPts => "mount /dev/pts",
            Step::MountDevShm => "mount /dev/shm",
            Step::DevLinks => "create /dev symlinks",
            Step::MountSys => "mount /sys read-only",
            Step::Hostname => "set the hostname",
            Step::PivotRoot => "pivot_root into the tree",
            Step::Exec => "execute the command",
        })
    }
}

/// Where the command's stdout and stderr go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutputMode {
    /// Both into one pipe, interleaved as written; returned in [`RunOutput::output`].
    #[default]
    Capture,
    /// Inherit the caller's stdout and stderr.
    Stream,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StdinMode {
    #[default]
    Null,
    Inherit,
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub output: OutputMode,
    pub stdin: StdinMode,
    /// Added to (or overriding) the sandbox's environment for this command only.
    pub extra_env: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct RunOutput {
    pub status: ExitStatus,
    /// Interleaved stdout+stderr (its last 4 MiB); empty in [`OutputMode::Stream`].
    pub output: Vec<u8>,
}

impl RunOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The last `lines` lines of the output, lossily decoded.
    pub fn tail(&self, lines: usize) -> String {
        tail_lines(&self.output, lines)
    }
}

/// The last `lines` lines of `bytes`, lossily decoded.
pub fn tail_lines(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end_matches('\n');
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A tree to run commands in, with the hostname and environment they see.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub root: PathBuf,
    pub hostname: String,
    /// The whole environment of commands (the caller's is never passed on).
    pub env: Vec<(String, String)>,
    /// Mount a read-only sysfs on `/sys`.
    pub mount_sys: bool,
    /// Who is PID 1 of the new PID namespace.
    pub init: InitMode,
    /// A VPS's walls (`vzctl exec` on a stopped VPS): the same as its init
    /// gets, with a network and a cgroup namespace of its own.
    pub walls: Option<SandboxWalls>,
    /// A user namespace to join as its root first (an unprivileged VPS);
    /// the command then also gets a network namespace of its own, which
    /// its `/sys` needs.
    pub userns: Option<std::sync::Arc<OwnedFd>>,
    /// A VPS's cgroup (`vzctl exec` on a stopped VPS): its `cgroup.procs`
    /// files, joined before anything else, with a cgroup namespace rooted
    /// there.
    pub cgroup: Option<std::sync::Arc<Vec<OwnedFd>>>,
}

/// The walls a sandboxed command of a VPS gets (its device rules are in
/// the VPS's cgroup, [`Sandbox::cgroup`]).
#[derive(Debug, Clone)]
pub struct SandboxWalls {
    pub walls: crate::vps::walls::Walls,
}

/// How the command relates to PID 1 of its PID namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitMode {
    /// The command is PID 1, in a root made with `pivot_root` (a VPS).
    Command,
    /// PID 1 is a small reaper that stays outside the tree and the command
    /// is its child in a `chroot`, as in a build chroot: `ischroot` answers
    /// yes, so maintainer scripts don't try to re-exec init or restart
    /// services, and the host's mounts still can't be reached from inside.
    Chroot,
}

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Sandbox {
    /// A sandbox on `root` with hostname `localhost`, `PATH` set and a read-only `/sys`.
    pub fn new(root: impl Into<PathBuf>) -> Sandbox {
        Sandbox {
            root: root.into(),
            hostname: "localhost".into(),
            env: vec![("PATH".into(), DEFAULT_PATH.into())],
            mount_sys: true,
            init: InitMode::Command,
            walls: None,
            userns: None,
            cgroup: None,
        }
    }

    /// Run `argv` inside the tree and wait for it. A non-zero exit is not an
    /// error here: look at [`RunOutput::status`].
    pub fn run<S: AsRef<OsStr>>(
        &self,
        argv: &[S],
        options: &RunOptions,
    ) -> Result<RunOutput, SandboxError> {
        let command = describe(argv);
        let root = self.root.clone();
        if !root.is_dir() {
            return Err(SandboxError::NoTree { root });
        }
        let Some(program) = argv.first() else {
            return Err(SandboxError::NotFound {
                root,
                command,
                searched: "an empty command line".into(),
            });
        };
        let env = merged_env(&self.env, &options.extra_env);
        let program = self.resolve_program(program.as_ref(), &env, &command)?;

        let mut created = Vec::new();
        let mut result = self
            .prepare_mount_points(&mut created)
            .and_then(|()| self.run_inner(&program, argv, &env, options, &command));
        // exec fails with ETXTBSY while another thread's fork briefly holds
        // a copy of a write descriptor for the script; that passes quickly.
        for _ in 0..5 {
            match &result {
                Err(SandboxError::Setup {
                    step: Step::Exec,
                    source,
                    ..
                }) if source.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    result = self.run_inner(&program, argv, &env, options, &command);
                }
                _ => break,
            }
        }
        // Mount points we made are empty again once the namespace is gone.
        for dir in created.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
        result
    }

    fn run_inner<S: AsRef<OsStr>>(
        &self,
        program: &Path,
        argv: &[S],
        env: &[(String, String)],
        options: &RunOptions,
        command: &str,
    ) -> Result<RunOutput, SandboxError> {
        let io_err = |action: &'static str| {
            let root = self.root.clone();
            let command = command.to_string();
            move |source| SandboxError::Io {
                root,
                command,
                action,
                source,
            }
        };
        let mut plan =
            MountPlan::new(&self.root, &self.hostname, self.mount_sys).map_err(|_| {
                SandboxError::Nul {
                    root: self.root.clone(),
                    what: format!("{} (hostname {:?})", self.root.display(), self.hostname),
                }
            })?;
        plan.pivot = self.init == InitMode::Command;
        plan.mknod_nodes = self.walls.is_some();
        if let Some(w) = &self.walls {
            w.walls
                .add_nodes_to(&mut plan)
                .map_err(|what| SandboxError::Nul {
                    root: self.root.clone(),
                    what,
                })?;
        }
        let walls = self.walls.clone();
        let (mut step_reader, step_writer) = io::pipe().map_err(io_err("creating a pipe"))?;

        let mut cmd = Command::new(program);
        if let Some(rest) = argv.get(1..) {
            cmd.args(rest);
        }
        if let Some(first) = argv.first() {
            cmd.arg0(first);
        }
        cmd.env_clear();
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(match options.stdin {
            StdinMode::Null => Stdio::null(),
            StdinMode::Inherit => Stdio::inherit(),
        });
        let mut out_reader = None;
        match options.output {
            OutputMode::Stream => {
                cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
            }
            OutputMode::Capture => {
                let (r, w) = io::pipe().map_err(io_err("creating a pipe"))?;
                let w2 = w.try_clone().map_err(io_err("duplicating a pipe"))?;
                cmd.stdout(Stdio::from(OwnedFd::from(w)))
                    .stderr(Stdio::from(OwnedFd::from(w2)));
                out_reader = Some(r);
            }
        }
        let step_fd = step_writer.as_raw_fd();
        let userns = self.userns.as_ref().map(|f| f.as_raw_fd());
        let cgroup = self.cgroup.clone();
        // The closure runs between fork and exec; it only makes syscalls on
        // data prepared before the fork and never allocates.
        sys::process::before_exec(&mut cmd, move || {
            enter_sandbox(&plan, step_fd, walls.as_ref(), userns, cgroup.as_deref())
        });
        let spawned = cmd.spawn();
        // Drop every write end this process holds so the reads below end.
        drop(cmd);
        drop(step_writer);
        let mut child = match spawned {
            Ok(child) => child,
            Err(source) => {
                let mut steps = Vec::new();
                let _ = step_reader.read_to_end(&mut steps);
                let step = steps
                    .last()
                    .and_then(|b| Step::from_u8(*b))
                    .unwrap_or(Step::Unshare);
                return Err(SandboxError::Setup {
                    root: self.root.clone(),
                    command: command.to_string(),
                    step,
                    source,
                });
            }
        };
        drop(step_reader);
        let mut output = Vec::new();
        let read_result = match out_reader.as_mut() {
            Some(r) => read_capped(r, &mut output),
            None => Ok(()),
        };
        let status = child.wait().map_err(io_err("waiting for the command"))?;
        read_result.map_err(io_err("reading the command's output"))?;
        Ok(RunOutput { status, output })
    }

    /// Create the tree's `/proc`, `/dev` (and `/sys`) if missing; refuse
    /// symlinks, which would send the mount outside the tree.
    fn prepare_mount_points(&self, created: &mut Vec<PathBuf>) -> Result<(), SandboxError> {
        let mut names = vec!["proc", "dev"];
        if self.mount_sys {
            names.push("sys");
        }
        for name in names {
            let path = self.root.join(name);
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(SandboxError::BadMountPoint {
                        root: self.root.clone(),
                        path,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    std::fs::create_dir(&path).map_err(|source| SandboxError::MountPoint {
                        root: self.root.clone(),
                        path: path.clone(),
                        source,
                    })?;
                    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
                    created.push(path);
                }
                Err(source) => {
                    return Err(SandboxError::MountPoint {
                        root: self.root.clone(),
                        path,
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// An absolute path inside the tree for `program`, searching the
    /// sandbox's `PATH` the way a shell would (inside the tree, not the host).
    fn resolve_program(
        &self,
        program: &OsStr,
        env: &[(String, String)],
        command: &str,
    ) -> Result<PathBuf, SandboxError> {
        if program.as_bytes().contains(&b'/') {
            return Ok(PathBuf::from(program));
        }
        let path = env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or(DEFAULT_PATH);
        for dir in path.split(':').filter(|d| d.starts_with('/')) {
            let inside = Path::new(dir).join(program);
            let on_host = self.root.join(inside.strip_prefix("/").unwrap_or(&inside));
            // Symlinks inside the tree may be absolute; existence is checked
            // again by exec after pivot_root, so a near miss is only a worse message.
            let exists =
                std::fs::metadata(&on_host).is_ok() || std::fs::symlink_metadata(&on_host).is_ok();
            if exists {
                return Ok(inside);
            }
        }
        Err(SandboxError::NotFound {
            root: self.root.clone(),
            command: command.to_string(),
            searched: format!("PATH={path}"),
        })
    }
}

fn merged_env(base: &[(String, String)], extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::with_capacity(base.len() + extra.len());
    for (k, v) in base.iter().chain(extra) {
        match env.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = v.clone(),
            None => env.push((k.clone(), v.clone())),
        }
    }
    env
}

fn describe<S: AsRef<OsStr>>(argv: &[S]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|a| {
            let s = a.as_ref().to_string_lossy();
            if s.is_empty() || s.contains(char::is_whitespace) {
                format!("'{s}'")
            } else {
                s.into_owned()
            }
        })
        .collect();
    format!("`{}`", words.join(" "))
}

fn read_capped(r: &mut impl Read, out: &mut Vec<u8>) -> io::Result<()> {
    let mut buf = [0u8; 16384];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.extend_from_slice(&buf[..n]);
        if out.len() > OUTPUT_CAP * 2 {
            out.drain(..out.len() - OUTPUT_CAP);
        }
    }
}

/// Everything the child needs to set up the tree, as C strings made before
/// the fork (allocating between fork and exec is not allowed).
#[derive(Debug, Clone)]
pub struct MountPlan {
    root: CString,
    proc_dir: CString,
    dev_dir: CString,
    dev_pts: CString,
    dev_shm: CString,
    dev_nodes: Vec<(CString, CString)>,
    dev_links: Vec<(CString, CString)>,
    sys_dir: Option<CString>,
    hostname: Vec<u8>,
    /// `pivot_root` into the tree (else the caller chroots a child into it).
    pub pivot: bool,
    /// Make `/dev`'s nodes with mknod (a VPS with walls: nothing of the
    /// host's devtmpfs inside); bind the host's where mknod is refused.
    pub mknod_nodes: bool,
    /// Granted device nodes (a VPS's `DEVNODES`), made like the standard
    /// ones: mknod, else a bind of the host's node.
    extra_nodes: Vec<ExtraNode>,
}

/// A granted node: the host's node, where it goes, and what it is.
#[derive(Debug, Clone)]
struct ExtraNode {
    host: CString,
    target: CString,
    /// Directories to make first, outermost first (`dev/net` for `net/tun`).
    parents: Vec<CString>,
    kind: rustix::fs::FileType,
    mode: u32,
    rdev: u64,
}

/// Device numbers of [`DEV_NODES`], for [`MountPlan::mknod_nodes`].
const DEV_NUMBERS: [(u32, u32); 6] = [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0)];

fn cpath(p: &Path) -> Result<CString, std::ffi::NulError> {
    CString::new(p.as_os_str().as_bytes())
}

impl MountPlan {
    /// Fails only if `root` or `hostname` contains a NUL byte.
    pub fn new(
        root: &Path,
        hostname: &str,
        mount_sys: bool,
    ) -> Result<MountPlan, std::ffi::NulError> {
        let dev = root.join("dev");
        let mut dev_nodes = Vec::new();
        for n in DEV_NODES {
            dev_nodes.push((cpath(&Path::new("/dev").join(n))?, cpath(&dev.join(n))?));
        }
        let mut dev_links = Vec::new();
        for (target, name) in [
            ("/proc/self/fd", "fd"),
            ("/proc/self/fd/0", "stdin"),
            ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"),
            ("pts/ptmx", "ptmx"),
        ] {
            dev_links.push((CString::new(target)?, cpath(&dev.join(name))?));
        }
        Ok(MountPlan {
            pivot: true,
            mknod_nodes: false,
            extra_nodes: Vec::new(),
            root: cpath(root)?,
            proc_dir: cpath(&root.join("proc"))?,
            dev_dir: cpath(&dev)?,
            dev_pts: cpath(&dev.join("pts"))?,
            dev_shm: cpath(&dev.join("shm"))?,
            dev_nodes,
            dev_links,
            sys_dir: if mount_sys {
                Some(cpath(&root.join("sys"))?)
            } else {
                None
            },
            hostname: CString::new(hostname)?.into_bytes(),
        })
    }

    /// Mount everything into the tree and pivot into it. Call in a process
    /// that is PID 1 of a fresh PID namespace and alone in a fresh mount
    /// namespace; `report` hears each step before it is tried.
    /// Add a granted device node at `inside` (`/dev/fuse`); `host` is the
    /// node bound there when mknod is refused. Fails only on a NUL byte.
    pub fn add_node(
        &mut self,
        inside: &CStr,
        host: &CStr,
        kind: rustix::fs::FileType,
        mode: u32,
        rdev: u64,
    ) -> Result<(), std::ffi::NulError> {
        let rel = inside
            .to_bytes()
            .strip_prefix(b"/")
            .unwrap_or(inside.to_bytes());
        let under_root = |r: &[u8]| {
            let mut v = self.root.as_bytes().to_vec();
            v.push(b'/');
            v.extend_from_slice(r);
            CString::new(v)
        };
        let mut parents = Vec::new();
        for (i, b) in rel.iter().enumerate() {
            // Below `dev/`, which the plan mounts itself.
            if *b == b'/' && i > "dev".len() {
                parents.push(under_root(&rel[..i])?);
            }
        }
        self.extra_nodes.push(ExtraNode {
            host: host.to_owned(),
            target: under_root(rel)?,
            parents,
            kind,
            mode,
            rdev,
        });
        Ok(())
    }

    pub fn apply(&self, report: &mut dyn FnMut(Step)) -> io::Result<()> {
        report(Step::PrivateMounts);
        sys::mount::make_private()?;
        report(Step::BindRoot);
        rustix::mount::mount_bind_recursive(self.root.as_c_str(), self.root.as_c_str())?;
        report(Step::MountProc);
        sys::mount::mount_proc(&self.proc_dir)?;
        report(Step::MountDev);
        rustix::mount::mount(
            c"tmpfs",
            self.dev_dir.as_c_str(),
            c"tmpfs",
            MountFlags::NOSUID | MountFlags::NOEXEC,
            c"mode=0755,size=65536k",
        )?;
        report(Step::DevNodes);
        for (i, (host, target)) in self.dev_nodes.iter().enumerate() {
            if self.mknod_nodes {
                let (major, minor) = DEV_NUMBERS[i % DEV_NUMBERS.len()];
                match rustix::fs::mknodat(
                    rustix::fs::CWD,
                    target.as_c_str(),
                    rustix::fs::FileType::CharacterDevice,
                    Mode::from_raw_mode(0o666),
                    rustix::fs::makedev(major, minor),
                ) {
                    Ok(()) => {
                        // The umask must not narrow them.
                        rustix::fs::chmod(target.as_c_str(), Mode::from_raw_mode(0o666))?;
                        continue;
                    }
                    Err(rustix::io::Errno::PERM) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            drop(rustix::fs::open(
                target.as_c_str(),
                OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o666),
            )?);
            rustix::mount::mount_bind(host.as_c_str(), target.as_c_str())?;
        }
        for n in &self.extra_nodes {
            for dir in &n.parents {
                let _ = rustix::fs::mkdir(dir.as_c_str(), Mode::from_raw_mode(0o755));
            }
            if self.mknod_nodes {
                match rustix::fs::mknodat(
                    rustix::fs::CWD,
                    n.target.as_c_str(),
                    n.kind,
                    Mode::from_raw_mode(n.mode),
                    n.rdev,
                ) {
                    Ok(()) => {
                        rustix::fs::chmod(n.target.as_c_str(), Mode::from_raw_mode(n.mode))?;
                        continue;
                    }
                    // A user namespace's root may not make nodes: bind the host's.
                    Err(rustix::io::Errno::PERM) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            drop(rustix::fs::open(
                n.target.as_c_str(),
                OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?);
            rustix::mount::mount_bind(n.host.as_c_str(), n.target.as_c_str())?;
        }
        report(Step::MountDevPts);
        rustix::fs::mkdir(self.dev_pts.as_c_str(), Mode::from_raw_mode(0o755))?;
        rustix::mount::mount(
            c"devpts",
            self.dev_pts.as_c_str(),
            c"devpts",
            MountFlags::NOSUID | MountFlags::NOEXEC,
            c"newinstance,ptmxmode=0666,mode=0620",
        )?;
        report(Step::MountDevShm);
        rustix::fs::mkdir(self.dev_shm.as_c_str(), Mode::from_raw_mode(0o1777))?;
        rustix::mount::mount(
            c"tmpfs",
            self.dev_shm.as_c_str(),
            c"tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            c"mode=1777",
        )?;
        report(Step::DevLinks);
        for (target, link) in &self.dev_links {
            rustix::fs::symlink(target.as_c_str(), link.as_c_str())?;
        }
        if let Some(sys) = &self.sys_dir {
            report(Step::MountSys);
            rustix::mount::mount(
                c"sysfs",
                sys.as_c_str(),
                c"sysfs",
                MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
                None,
            )?;
        }
        report(Step::Hostname);
        rustix::system::sethostname(&self.hostname)?;
        if self.pivot {
            report(Step::PivotRoot);
            sys::mount::pivot_into(&self.root)?;
        }
        Ok(())
    }
}

/// Unshare the namespaces a sandboxed command gets. The caller's children
/// (not the caller) land in the new PID namespace.
pub fn unshare_namespaces() -> io::Result<()> {
    sys::ns::unshare(
        UnshareFlags::NEWNS | UnshareFlags::NEWPID | UnshareFlags::NEWUTS | UnshareFlags::NEWIPC,
    )
}

fn note_step(fd: RawFd, step: Step) {
    // `fd` is the step pipe's write end, open until exec closes it.
    sys::process::write_fd(fd, &[step as u8]);
}

/// Runs in the forked child before exec. Returns `Ok` only in the process
/// that is to exec the command (PID 1 of the new PID namespace).
fn enter_sandbox(
    plan: &MountPlan,
    step_fd: RawFd,
    walls: Option<&SandboxWalls>,
    userns: Option<RawFd>,
    cgroup: Option<&Vec<OwnedFd>>,
) -> io::Result<()> {
    note_step(step_fd, Step::Unshare);
    // If vzpkg dies, take the sandbox with it.
    sys::process::die_with_parent()?;
    if let Some(procs) = cgroup {
        sys::cgroup::join(procs)?;
    }
    // The user namespace after the cgroup (joining that needs the host's
    // root): it owns every namespace unshared below.
    if let Some(ns) = userns {
        sys::userns::join_as_root(ns)?;
    }
    unshare_namespaces()?;
    if walls.is_some() || userns.is_some() {
        // A /sys of the user namespace needs a network namespace it owns.
        sys::ns::unshare(sys::ns::UnshareFlags::NEWNET)?;
    }
    if cgroup.is_some() {
        // Rooted at the VPS's cgroup joined above.
        sys::ns::unshare(sys::ns::UnshareFlags::NEWCGROUP)?;
    }
    note_step(step_fd, Step::Fork);
    // This process is the single-threaded child of a fork.
    let Forked::Parent(pid) = sys::process::fork()? else {
        sys::process::die_with_parent()?;
        plan.apply(&mut |s| note_step(step_fd, s))?;
        if let Some(w) = walls {
            w.walls.apply_mounts()?;
        }
        if !plan.pivot {
            // PID 1 stays at the namespace's root and reaps; the command
            // runs chrooted below it.
            if let Forked::Parent(pid) = sys::process::fork()? {
                sys::process::wait_and_mirror(pid, true)
            }
            sys::process::die_with_parent()?;
            note_step(step_fd, Step::PivotRoot);
            rustix::process::chroot(plan.root.as_c_str())?;
            rustix::process::chdir(c"/")?;
        }
        note_step(step_fd, Step::Exec);
        if let Some(w) = walls {
            w.walls.lock_down()?;
        }
        return Ok(());
    };
    sys::process::wait_and_mirror(pid, true)
}

/// A tiny real tree for tests: the host's `/bin/sh` and the libraries it needs.
#[cfg(test)]
pub(crate) mod testtree {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    pub fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// `None` (with the reason printed) when the tree cannot be built here.
    pub fn minimal_tree() -> Option<tempfile::TempDir> {
        if !is_root() {
            eprintln!("skipping: sandbox tests need root (mount and pid namespaces)");
            return None;
        }
        let sh = match std::fs::canonicalize("/bin/sh") {
            Ok(p) => p,
            Err(e) => {
                eprintln!("skipping: host has no /bin/sh to copy into the test tree: {e}");
                return None;
            }
        };
        let ldd = match Command::new("ldd").arg(&sh).output() {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
            _ => {
                eprintln!("skipping: `ldd` is missing, cannot find the libraries /bin/sh needs");
                return None;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let mut files: Vec<PathBuf> = Vec::new();
        for line in ldd.lines() {
            for word in line.split_whitespace() {
                if word.starts_with('/') {
                    files.push(PathBuf::from(word));
                }
            }
        }
        for f in &files {
            copy_into(dir.path(), f, f);
        }
        copy_into(dir.path(), &sh, Path::new("/bin/sh"));
        Some(dir)
    }

    fn copy_into(root: &Path, from: &Path, at: &Path) {
        let dest = root.join(at.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(from, &dest).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts_under(path: &Path) -> Vec<String> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let p = path.to_string_lossy().into_owned();
        info.lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&p))
            .collect()
    }

    fn sh(sb: &Sandbox, script: &str) -> RunOutput {
        sb.run(&["/bin/sh", "-c", script], &RunOptions::default())
            .unwrap()
    }

    #[test]
    fn command_is_pid1_with_own_hostname_and_mounts() {
        let Some(tree) = testtree::minimal_tree() else {
            return;
        };
        let root = tree.path();
        let host_name = rustix::system::uname().nodename().to_owned();
        let mut sb = Sandbox::new(root);
        sb.hostname = "vzpkg-sandbox-test".into();

        let out = sh(&sb, "echo $$; read h < /proc/sys/kernel/hostname; echo $h");
        assert!(out.success(), "{}", out.tail(20));
        let text = String::from_utf8_lossy(&out.output).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, ["1", "vzpkg-sandbox-test"]);
        assert_eq!(rustix::system::uname().nodename(), host_name.as_c_str());

        let out = sh(
            &sb,
            "while read dev mnt rest; do echo \"$mnt\"; done < /proc/mounts",
        );
        assert!(out.success(), "{}", out.tail(20));
        let text = String::from_utf8_lossy(&out.output).into_owned();
        let mut expected: Vec<String> = ["/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/sys"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        expected.extend(DEV_NODES.iter().map(|n| format!("/dev/{n}")));
        let inside: Vec<&str> = text.lines().collect();
        for m in &inside {
            assert!(
                expected.iter().any(|e| e == m),
                "host mount {m} visible inside: {text}"
            );
        }
        for e in ["/", "/proc", "/dev", "/dev/pts", "/dev/null"] {
            assert!(inside.contains(&e), "{e} not mounted inside: {text}");
        }

        // Nothing left behind: no mounts, and the mount points we made are gone.
        assert!(mounts_under(root).is_empty(), "{:?}", mounts_under(root));
        for d in ["proc", "dev", "sys"] {
            assert!(!root.join(d).exists(), "{d} left in the tree");
        }
    }

    #[test]
    fn chroot_mode_looks_like_a_build_chroot() {
        let Some(tree) = testtree::minimal_tree() else {
            return;
        };
        // What `ischroot` checks: is PID 1's root the same as ours?
        let probe = "if [ /proc/1/root/ -ef / ]; then echo booted; else echo chroot; fi; echo $$";
        let mut sb = Sandbox::new(tree.path());
        let out = sh(&sb, probe);
        assert!(out.success(), "{}", out.tail(20));
        assert_eq!(String::from_utf8_lossy(&out.output), "booted\n1\n");
        sb.init = InitMode::Chroot;
        let out = sh(&sb, probe);
        assert!(out.success(), "{}", out.tail(20));
        // The command is PID 2, below a reaper that stays outside the tree.
        assert_eq!(String::from_utf8_lossy(&out.output), "chroot\n2\n");
        assert!(!sh(&sb, "exit 7").success());
    }

    #[test]
    fn existing_dev_is_kept_and_device_nodes_work() {
        let Some(tree) = testtree::minimal_tree() else {
            return;
        };
        let root = tree.path();
        std::fs::create_dir(root.join("dev")).unwrap();
        std::fs::write(root.join("dev/keep"), "x").unwrap();
        let mut sb = Sandbox::new(root);
        sb.mount_sys = false;
        let out = sh(
            &sb,
            "echo hidden >/dev/null && test ! -e /dev/keep && test -c /dev/zero && test -d /dev/pts && echo ok; echo err >&2",
        );
        assert!(out.success(), "{}", out.tail(20));
        assert_eq!(String::from_utf8_lossy(&out.output), "ok\nerr\n");
        assert_eq!(std::fs::read_to_string(root.join("dev/keep")).unwrap(), "x");
        let left: Vec<_> = std::fs::read_dir(root.join("dev")).unwrap().collect();
        assert_eq!(left.len(), 1);
        assert!(!root.join("sys").exists());
        assert!(!root.join("proc").exists());
        assert!(mounts_under(root).is_empty());
    }

    #[test]
    fn environment_exit_code_and_missing_command() {
        let Some(tree) = testtree::minimal_tree() else {
            return;
        };
        let mut sb = Sandbox::new(tree.path());
        sb.env.push(("FOO".into(), "bar".into()));
        let opts = RunOptions {
            extra_env: vec![("FOO".into(), "baz".into())],
            ..Default::default()
        };
        let out = sb
            .run(
                &["sh", "-c", "echo \"$FOO:${HOME-unset}:$PATH\"; exit 7"],
                &opts,
            )
            .unwrap();
        assert_eq!(out.status.code(), Some(7));
        assert_eq!(
            String::from_utf8_lossy(&out.output).trim(),
            format!("baz:unset:{DEFAULT_PATH}")
        );

        let err = sb.run(&["no-such-tool"], &opts).unwrap_err();
        assert!(matches!(err, SandboxError::NotFound { .. }), "{err}");
        let err = sb.run(&["/bin/no-such-tool"], &opts).unwrap_err();
        match &err {
            SandboxError::Setup { step, command, .. } => {
                assert_eq!(*step, Step::Exec);
                assert!(command.contains("no-such-tool"));
            }
            other => panic!("unexpected {other}"),
        }
        assert!(err.to_string().contains(&tree.path().display().to_string()));
        assert!(mounts_under(tree.path()).is_empty());
    }

    #[test]
    fn stream_mode_captures_nothing_and_stdin_is_null() {
        let Some(tree) = testtree::minimal_tree() else {
            return;
        };
        let sb = Sandbox::new(tree.path());
        let opts = RunOptions {
            output: OutputMode::Stream,
            ..Default::default()
        };
        // With stdin on /dev/null, `read` hits end of file and fails.
        let out = sb.run(&["/bin/sh", "-c", "read x"], &opts).unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(out.output.is_empty());
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail_lines(b"a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines(b"a", 5), "a");
    }
}
