//! The simfs process of a mounted VPS. vzctl exits after each command, so
//! simfs (the private area on `mnt/CTID`, under the VPS's overlay) is
//! served by a process of its own:
//! `vzctl __simfs CTID`, started by `mount` in a session of its own, stdio
//! on `/dev/null` and a log (`run/CTID.simfs.log`). It runs in the host's
//! namespaces, so a VPS's processes (in theirs) never see or signal it.
//!
//! - Readiness: until simfs is mounted its stdout is a pipe to the vzctl
//!   that started it; one line, `ready PID` or `error WHY`, then EOF.
//! - `run/CTID.simfs.pid`: its pid, written once mounted, removed on a
//!   clean exit.
//! - `run/CTID.simfs.sock`: limits changed live (`vzctl set`) and usage,
//!   one request line and one reply line per connection.
//! - SIGTERM/SIGINT: unmount (unless busy), save the quota state clean,
//!   exit. SIGHUP: re-read the limits from `CTID.conf`.

use super::error::io_err;
use super::{overlay, VpsConfig, VpsError, Vz};
use crate::quota::{Limits, Usage};
use crate::simfs::{self, control, control::Reply, control::Request};
use crate::sys::{self, signal, signal::SignalFd};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The hidden vzctl subcommand that serves simfs.
pub const SUBCOMMAND: &str = "__simfs";
/// How long `mount` waits for simfs (a rescan after a crash is part of it).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a request to the running process may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Request threads per VPS: one VPS rarely has more in flight, and each
/// costs a read buffer.
const THREADS: usize = 2;

/// The source simfs shows in the mount table (its type is plain `fuse`).
pub const SOURCE: &str = "/dev/simfs";

/// Is `m` a simfs mount?
pub fn is_simfs(m: &overlay::MountEntry) -> bool {
    m.source == SOURCE && m.fs_type.split('.').next() == Some("fuse")
}

/// `DISKSPACE`, `DISKINODES` and `QUOTATIME` as simfs limits; "unlimited"
/// is no limit.
pub fn limits_of(cfg: &VpsConfig) -> Limits {
    let one = |v: u64| if v >= super::conf::UNLIMITED { 0 } else { v };
    let pair = |(s, h): (u64, u64)| (one(s), one(h));
    Limits::new(pair(cfg.diskspace), pair(cfg.diskinodes), cfg.quotatime)
}

/// The pid of the live simfs process of `ctid`, from its pid file checked
/// against `/proc` (a reused pid is some other program).
pub fn live_pid(vz: &Vz, ctid: u32) -> Option<i32> {
    let text = std::fs::read_to_string(vz.root.simfs_pid_file(ctid)).ok()?;
    let pid: i32 = text.trim().parse().ok().filter(|p| *p > 0)?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let id = ctid.to_string();
    let ours = args
        .windows(2)
        .any(|w| w[0] == SUBCOMMAND.as_bytes() && w[1] == id.as_bytes());
    (ours && super::process::is_running(pid)).then_some(pid)
}

fn simfs_err(ctid: u32, why: impl Into<String>, log: &Path) -> VpsError {
    VpsError::Simfs {
        ctid,
        why: why.into(),
        log: log.to_path_buf(),
    }
}

/// Start the simfs process for a VPS and wait until simfs shows its
/// private area on `mnt/CTID` (the overlay goes on top after).
pub fn spawn(vz: &Vz, cfg: &VpsConfig) -> Result<i32, VpsError> {
    let ctid = cfg.ctid;
    let log_path = vz.root.simfs_log(ctid);
    let Some(exe) = vz.simfs_exe.as_deref() else {
        return Err(simfs_err(
            ctid,
            "no vzpkg program is known to serve simfs (set Vz::simfs_exe) or set DISK_QUOTA=\"no\"",
            &log_path,
        ));
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_err(ctid, "open", &log_path))?;
    let mut cmd = Command::new(exe);
    // The binary called as `vzctl` is vzctl, whatever its file name.
    cmd.arg0("vzctl")
        .arg("--vzroot")
        .arg(&vz.root.base)
        .arg(SUBCOMMAND)
        .arg(ctid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    // setsid detaches from vzctl's terminal and process group, so a Ctrl-C
    // there never reaches simfs.
    sys::process::before_exec(&mut cmd, sys::process::setsid);
    let mut child = cmd.spawn().map_err(|e| {
        simfs_err(
            ctid,
            format!("cannot run {}: {e}", exe.display()),
            &log_path,
        )
    })?;
    let Some(out) = child.stdout.take() else {
        return Err(simfs_err(ctid, "no readiness pipe", &log_path));
    };
    let line = read_line_within(OwnedFd::from(out), READY_TIMEOUT);
    // Err((why, kill)): kill a process that is still there.
    let outcome: Result<i32, (String, bool)> = match line {
        Ok(Some(l)) => match l.split_once(' ') {
            Some(("ready", pid)) => pid
                .trim()
                .parse()
                .map_err(|_| (format!("bad readiness line {l:?}"), true)),
            Some(("error", why)) => Err((why.trim().to_string(), false)),
            _ => Err((format!("bad readiness line {l:?}"), true)),
        },
        Ok(None) => Err(("the simfs process exited before mounting".into(), false)),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Err((
            format!(
                "simfs was not mounted within {} s (a quota rescan of a large VPS after a crash takes long; retry `vzctl mount {ctid}`)",
                READY_TIMEOUT.as_secs()
            ),
            true,
        )),
        Err(e) => Err((format!("reading its readiness pipe: {e}"), true)),
    };
    outcome.map_err(|(why, kill)| {
        if kill {
            let _ = child.kill();
        }
        let _ = child.wait();
        simfs_err(ctid, why, &log_path)
    })
}

/// One line from `fd`, or `None` at EOF, within `timeout`.
fn read_line_within(fd: OwnedFd, timeout: Duration) -> std::io::Result<Option<String>> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut f = std::fs::File::from(fd);
    loop {
        if let Some(end) = buf.iter().position(|b| *b == b'\n') {
            return Ok(Some(String::from_utf8_lossy(&buf[..end]).into_owned()));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        if !sys::poll::wait_readable(f.as_fd(), Some(left))? {
            continue;
        }
        let mut chunk = [0u8; 512];
        match f.read(&mut chunk)? {
            0 if buf.is_empty() => return Ok(None),
            0 => return Ok(Some(String::from_utf8_lossy(&buf).into_owned())),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Send one request to the running simfs process; its reply, which must
/// be a success.
fn request(vz: &Vz, ctid: u32, req: &Request) -> Result<Reply, VpsError> {
    let sock = vz.root.simfs_socket(ctid);
    let log = vz.root.simfs_log(ctid);
    let reply = control::ask(&sock, req, REQUEST_TIMEOUT, REQUEST_TIMEOUT).map_err(|e| {
        simfs_err(
            ctid,
            format!(
                "cannot reach the simfs process at {}: {e}; remount with `vzctl umount {ctid}; vzctl mount {ctid}`",
                sock.display()
            ),
            &log,
        )
    })?;
    if reply.is_ok() {
        Ok(reply)
    } else {
        Err(simfs_err(
            ctid,
            format!("it refused `{}`: {reply}", req.encode()),
            &log,
        ))
    }
}

/// The usage in a reply that must carry one.
fn usage_of(vz: &Vz, ctid: u32, reply: Reply) -> Result<Usage, VpsError> {
    match reply {
        Reply::Usage(u) => Ok(u),
        other => Err(simfs_err(
            ctid,
            format!("unexpected reply {:?}", other.encode()),
            &vz.root.simfs_log(ctid),
        )),
    }
}

/// Change the limits of the mounted VPS now; its usage afterwards.
pub fn set_limits(vz: &Vz, ctid: u32, l: Limits, ugid_limit: u64) -> Result<Usage, VpsError> {
    let req = Request::Limits {
        limits: l,
        ugid_limit,
    };
    let reply = request(vz, ctid, &req)?;
    usage_of(vz, ctid, reply)
}

/// The usage the running simfs process counts.
pub fn usage(vz: &Vz, ctid: u32) -> Result<Usage, VpsError> {
    let reply = request(vz, ctid, &Request::Usage)?;
    usage_of(vz, ctid, reply)
}

/// Ask the simfs process to unmount the root, save its state and exit.
/// `Ok(false)` when there is no live process (the caller unmounts what is
/// left); a busy root is a [`VpsError::Umount`] and stays mounted.
pub fn unmount(vz: &Vz, ctid: u32, root: &Path) -> Result<bool, VpsError> {
    let Some(pid) = live_pid(vz, ctid) else {
        return Ok(false);
    };
    match request(vz, ctid, &Request::Umount) {
        Ok(_) => {}
        Err(VpsError::Simfs { why, .. }) if why.contains("busy ") => {
            return Err(VpsError::Umount {
                ctid,
                target: root.to_path_buf(),
                source: std::io::Error::from_raw_os_error(libc::EBUSY),
            })
        }
        Err(e) => return Err(e),
    }
    // It exits right after the reply; a stuck one is killed.
    super::process::stop(pid, false, Duration::from_secs(5)).map_err(|source| {
        VpsError::Umount {
            ctid,
            target: root.to_path_buf(),
            source,
        }
    })?;
    Ok(true)
}

/// Stop the simfs process after its mount is gone: SIGTERM, SIGKILL after
/// `timeout` (the state stays dirty then, and the next mount rescans).
pub fn stop(vz: &Vz, ctid: u32, timeout: Duration) -> std::io::Result<()> {
    if let Some(pid) = live_pid(vz, ctid) {
        super::process::stop(pid, false, timeout)?;
    }
    let _ = std::fs::remove_file(vz.root.simfs_pid_file(ctid));
    let _ = std::fs::remove_file(vz.root.simfs_socket(ctid));
    Ok(())
}

/// `vzctl __simfs CTID`: mount simfs and serve it until told to stop.
/// Returns the exit code.
pub fn serve(vz: &Vz, ctid: u32) -> i32 {
    let server = match Server::start(vz, ctid) {
        Ok(s) => s,
        Err(why) => {
            eprintln!("simfs {ctid}: {why}");
            println!("error {why}");
            return 1;
        }
    };
    let u = server
        .handle
        .as_ref()
        .map(|h| h.usage())
        .unwrap_or_default();
    eprintln!(
        "simfs {ctid}: mounted on {} (pid {}), usage {} KiB, {} inodes",
        server.vz.root.simfs_mount(ctid).display(),
        std::process::id(),
        u.blocks_1k(),
        u.inodes
    );
    println!("ready {}", std::process::id());
    let _ = std::io::stdout().flush();
    // Closing the pipe tells vzctl we are up; later output goes to the log.
    sys::process::stdout_to_stderr();
    server.run()
}

struct Server {
    vz: Vz,
    cfg: VpsConfig,
    /// Taken on exit.
    handle: Option<simfs::SimfsHandle>,
    listener: UnixListener,
    signals: SignalFd,
}

impl Server {
    fn start(vz: &Vz, ctid: u32) -> Result<Server, String> {
        let cfg = vz.config(ctid).map_err(|e| e.to_string())?;
        // Blocked before simfs starts its threads, which inherit the mask,
        // so these signals only ever arrive through the signalfd.
        let signals = SignalFd::new(&[signal::SIGTERM, signal::SIGINT, signal::SIGHUP])
            .map_err(|e| format!("signalfd: {e}"))?;
        let sock = vz.root.simfs_socket(ctid);
        let _ = std::fs::remove_file(&sock);
        let listener = UnixListener::bind(&sock)
            .map_err(|e| format!("cannot listen on {}: {e}", sock.display()))?;
        std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| format!("chmod {}: {e}", sock.display()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("{}: {e}", sock.display()))?;
        let options = simfs::Options {
            threads: THREADS,
            // The overlay goes on top, and the kernel stacks at most two
            // file systems on a disk's: simfs may pass its files through
            // only when the private area is on the disk's own.
            passthrough: !simfs::stacked(&cfg.ve_private),
            ugid_limit: Some(cfg.quotaugidlimit),
            socket: Some(sock.clone()),
            id_shift: cfg.id_range().map(|r| (r.uid, r.gid)),
        };
        let quota_file = vz.root.quota_file(ctid);
        if let Some(dir) = quota_file.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let handle = simfs::mount_with(
            &cfg.ve_private,
            &vz.root.simfs_mount(ctid),
            limits_of(&cfg),
            &quota_file,
            options,
        )
        .map_err(|e| {
            let _ = std::fs::remove_file(&sock);
            e.to_string()
        })?;
        let pid_file = vz.root.simfs_pid_file(ctid);
        if let Err(e) = std::fs::write(&pid_file, format!("{}\n", std::process::id())) {
            let _ = handle.unmount();
            let _ = std::fs::remove_file(&sock);
            return Err(format!("cannot write {}: {e}", pid_file.display()));
        }
        Ok(Server {
            vz: vz.clone(),
            cfg,
            handle: Some(handle),
            listener,
            signals,
        })
    }

    fn run(mut self) -> i32 {
        let ctid = self.cfg.ctid;
        loop {
            let Ok([signalled, requested]) =
                sys::poll::readable([self.signals.as_fd(), self.listener.as_fd()])
            else {
                continue;
            };
            if signalled {
                if let Some(sig) = self.signals.read() {
                    match sig {
                        signal::SIGHUP => self.reload(),
                        _ => match self.finish() {
                            Ok(done) => return i32::from(done.is_err()),
                            Err(why) => eprintln!(
                                "simfs {ctid}: {why}; still serving it, signal again once it is free"
                            ),
                        },
                    }
                }
            }
            if requested {
                if let Ok((stream, _)) = self.listener.accept() {
                    match self.answer(stream) {
                        Err(e) => eprintln!("simfs {ctid}: a request failed: {e}"),
                        Ok(Some(code)) => return code,
                        Ok(None) => {}
                    }
                }
            }
        }
    }

    fn reload(&mut self) {
        match self.vz.config(self.cfg.ctid) {
            Ok(cfg) => {
                if let Some(h) = &self.handle {
                    h.set_limits(limits_of(&cfg));
                    if let Err(e) = h.set_ugid_limit(cfg.quotaugidlimit) {
                        eprintln!("simfs {}: {e}", self.cfg.ctid);
                    }
                }
                eprintln!("simfs {}: limits re-read from the config", self.cfg.ctid);
            }
            Err(e) => eprintln!("simfs {}: SIGHUP: {e}", self.cfg.ctid),
        }
    }

    /// Unmount and save the state clean. `Err` (and still serving) while
    /// the root is busy; `Ok(Err)` when the state could not be saved clean.
    fn finish(&mut self) -> Result<Result<Usage, String>, String> {
        let ctid = self.cfg.ctid;
        let root = &self.vz.root.simfs_mount(ctid);
        // Probe first: a failed unmount inside the FUSE library ends the
        // session without unmounting, so only try it when it will work.
        // MNT_EXPIRE fails with EAGAIN on a root nothing uses (and marks it).
        let ours = overlay::mounts_at(root)
            .ok()
            .and_then(|m| m.last().map(is_simfs))
            .unwrap_or(false);
        if ours {
            match rustix::mount::unmount(root, rustix::mount::UnmountFlags::EXPIRE) {
                Err(rustix::io::Errno::AGAIN) | Ok(()) => {}
                Err(rustix::io::Errno::BUSY) => {
                    return Err(format!(
                        "{} is busy (a process has a file or directory open under it)",
                        root.display()
                    ))
                }
                Err(e) => eprintln!("simfs {ctid}: probing {}: {e}", root.display()),
            }
        }
        let result = match self.handle.take().map(simfs::SimfsHandle::unmount) {
            None => Err("already unmounted".to_string()),
            Some(Ok(u)) => {
                eprintln!(
                    "simfs {ctid}: unmounted, usage {} KiB, {} inodes, state saved",
                    u.blocks_1k(),
                    u.inodes
                );
                Ok(u)
            }
            Some(Err(e)) => {
                eprintln!("simfs {ctid}: {e}");
                Err(e.to_string())
            }
        };
        let _ = std::fs::remove_file(self.vz.root.simfs_pid_file(ctid));
        let _ = std::fs::remove_file(self.vz.root.simfs_socket(ctid));
        Ok(result)
    }

    /// Answer one request; `Some(exit code)` once unmounted.
    fn answer(&mut self, stream: UnixStream) -> std::io::Result<Option<i32>> {
        if self.handle.is_none() {
            return Ok(None);
        }
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.set_write_timeout(Some(Duration::from_secs(2)))?;
        let usage = |u: Usage| Reply::Usage(u);
        let reply = match control::read_request(&stream)? {
            Err(why) => Reply::Error(why),
            Ok(Request::Limits {
                limits: l,
                ugid_limit: ugid,
            }) => match &self.handle {
                Some(handle) => {
                    handle.set_limits(l);
                    eprintln!(
                        "simfs {}: limits set live: {l:?}, ugid limit {ugid}",
                        self.cfg.ctid
                    );
                    match handle.set_ugid_limit(ugid).and_then(|()| handle.sync()) {
                        Ok(()) => usage(handle.usage()),
                        Err(e) => Reply::Error(e.to_string()),
                    }
                }
                None => Reply::Error("expected seven numbers".to_string()),
            },
            Ok(Request::Usage) => usage(
                self.handle
                    .as_ref()
                    .map(|h| {
                        h.settle();
                        h.usage()
                    })
                    .unwrap_or_default(),
            ),
            // `vzquota stat`: the live figures into the quota file.
            Ok(Request::Sync) => match self.handle.as_ref().map(|h| {
                h.settle();
                h.sync()
            }) {
                Some(Ok(())) => Reply::Done,
                Some(Err(e)) => Reply::Error(e.to_string()),
                None => Reply::Error("not mounted".to_string()),
            },
            // `vzquota setlimit`/`setlimit2`: the limits it wants, in the
            // file named (else in the state file).
            Ok(Request::Reload { from }) => {
                match self.handle.as_ref().map(|h| h.reload(from.as_deref())) {
                    Some(Ok(())) => {
                        eprintln!(
                            "simfs {}: limits re-read from the quota file",
                            self.cfg.ctid
                        );
                        Reply::Done
                    }
                    Some(Err(e)) => Reply::Error(e.to_string()),
                    None => Reply::Error("not mounted".to_string()),
                }
            }
            Ok(Request::Umount) => {
                let (reply, code) = match self.finish() {
                    Ok(Ok(u)) => (usage(u), Some(0)),
                    Ok(Err(why)) => (Reply::Error(why.to_string()), Some(1)),
                    Err(why) => (Reply::Busy(why.to_string()), None),
                };
                control::send_reply(&stream, &reply)?;
                return Ok(code);
            }
        };
        control::send_reply(&stream, &reply)?;
        Ok(None)
    }
}
