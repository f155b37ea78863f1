//! The runtime's error, and the exit codes `vzctl` returns for it. The codes
//! are OpenVZ's own (vzctl(8), EXIT STATUS) so scripts written for vzctl keep
//! working.

use std::path::PathBuf;
use thiserror::Error;

/// vzctl's exit codes (the subset the runtime can produce).
pub mod exit {
    /// Generic system error.
    pub const SYSTEM: i32 = 3;
    /// Another vzctl holds the VPS's lock.
    pub const LOCKED: i32 = 8;
    /// Invalid command line parameter.
    pub const USAGE: i32 = 20;
    /// Invalid value for a command line parameter (a bad CTID, a bad size).
    pub const BAD_VALUE: i32 = 21;
    /// The kernel lacks a feature the VPS needs (idmapped mounts).
    pub const BAD_KERNEL: i32 = 5;
    pub const NOT_RUNNING: i32 = 31;
    pub const RUNNING: i32 = 32;
    pub const STOP_FAILED: i32 = 33;
    /// The VPS does not exist (no config, no private area).
    pub const NOT_EXIST: i32 = 43;
    /// The VPS (config or private area) exists already.
    pub const EXISTS: i32 = 44;
    /// The VPS has no `/bin/sh` to run a command with.
    pub const BROKEN: i32 = 47;
    pub const MOUNT_FAILED: i32 = 50;
    pub const UMOUNT_FAILED: i32 = 51;
    pub const START_FAILED: i32 = 53;
    /// The OS template is not in the store.
    pub const NO_TEMPLATE: i32 = 91;
    /// Networking could not be set up (VZ_CANT_ADDIP).
    pub const NET: i32 = 34;
    /// An address is another VPS's (VZ_IP_INUSE).
    pub const IP_IN_USE: i32 = 78;
    /// A memory, process or disk I/O limit could not be set (OpenVZ's
    /// "failed to set a UBC parameter").
    pub const UBC: i32 = 1;
    /// A CPU limit or weight could not be set (OpenVZ's "failed to set a
    /// fair scheduler parameter").
    pub const CPU: i32 = 2;
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VpsError {
    #[error("`{given}` is not a valid CTID; use a positive integer such as 101")]
    BadCtid { given: String },
    #[error("{option} `{value}`: {why}")]
    BadValue {
        option: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("VPS {ctid} already exists ({path} is there); destroy it first (`vzctl destroy {ctid}`) or pick another CTID")]
    Exists { ctid: u32, path: PathBuf },
    #[error("VPS {ctid} does not exist ({conf} is missing); create it with `vzctl create {ctid} --ostemplate NAME`")]
    NotFound { ctid: u32, conf: PathBuf },
    #[error("VPS {ctid}: OS template `{template}`: {source}")]
    Template {
        ctid: u32,
        template: String,
        #[source]
        source: crate::store::StoreError,
    },
    /// OCI: the image named by --ostemplate could not be pulled.
    #[error("VPS {ctid}: OS template image `{reference}`: {source}")]
    Pull {
        ctid: u32,
        reference: String,
        #[source]
        source: Box<crate::oci::OciError>,
    },
    #[error("VPS {ctid} is running (init pid {pid}); stop it first: `vzctl stop {ctid}`")]
    Running { ctid: u32, pid: i32 },
    #[error("VPS {ctid} is already running (init pid {pid}); use `vzctl restart {ctid}` or stop it first")]
    AlreadyRunning { ctid: u32, pid: i32 },
    #[error("VPS {ctid} is not running; start it with `vzctl start {ctid}`")]
    NotRunning { ctid: u32 },
    #[error("VPS {ctid}: config {path} line {line}: {why}; fix that line or set the value again with `vzctl set {ctid} ... --save`")]
    Conf {
        ctid: u32,
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("host config {path} line {line}: {why}; fix that line")]
    HostConf {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("cannot {op} host config {path}: {source}")]
    HostIo {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("VPS {ctid}: config {path} has no {key}; the VPS was not made by `vzctl create`, recreate it")]
    ConfKey {
        ctid: u32,
        path: PathBuf,
        key: &'static str,
    },
    #[error("VPS {ctid}: cannot mount overlay on {target} ({step}): {source}; vzctl must run as root on a kernel with overlayfs, and the private area and template layers must be on local file systems")]
    Mount {
        ctid: u32,
        target: PathBuf,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("VPS {ctid}: cannot unmount {target}: {source}; find what keeps it busy (`fuser -m {target}`) and try again")]
    Umount {
        ctid: u32,
        target: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("VPS {ctid} is not mounted; mount it with `vzctl mount {ctid}` first")]
    NotMounted { ctid: u32 },
    #[error("VPS {ctid}: simfs (the quota view on its root): {why}; its log is {log}")]
    Simfs {
        ctid: u32,
        why: String,
        log: PathBuf,
    },
    #[error("VPS {ctid}: start failed at step '{step}': {source}; vzctl must run as root on a kernel with mount, pid, uts and ipc namespaces")]
    Start {
        ctid: u32,
        step: String,
        #[source]
        source: std::io::Error,
    },
    #[error("VPS {ctid}: cannot stop init (pid {pid}): {source}; look at `cat /proc/{pid}/status` (a process stuck in the kernel cannot be killed)")]
    Stop {
        ctid: u32,
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("VPS {ctid}: {path} is missing, so no command can run inside; the template is broken, recreate the VPS from a template with a shell")]
    NoShell { ctid: u32, path: PathBuf },
    #[error("VPS {ctid} is locked by {} ({path}); wait for it to finish", holder_text(*.holder))]
    Locked {
        ctid: u32,
        path: PathBuf,
        /// The process the lock file names, if it names one.
        holder: Option<i32>,
    },
    #[error("VPS {ctid}: cannot {op} {path}: {source}")]
    Io {
        ctid: u32,
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("VPS {ctid}: cannot run `{command}` inside ({step}): {source}")]
    Exec {
        ctid: u32,
        command: String,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("VPS {ctid}: running the command on the stopped VPS failed: {source}")]
    Sandbox {
        ctid: u32,
        #[source]
        source: crate::sandbox::SandboxError,
    },
    // Isolation (walls.rs): the device policy or another wall could not be set up.
    #[error("VPS {ctid}: walls (device policy, capabilities, system-call filter): {why}")]
    Walls { ctid: u32, why: String },
    // User namespaces (id ranges, idmapped layers).
    #[error("VPS {ctid}: {kind} range {first}..{last} overlaps VPS {other}'s ({other_first}..{other_last}); give another base (--local_{kind} N, a multiple of 65536 is simplest) or leave it out to have a free range allocated", last = *first as u64 + 65535, other_last = *other_first as u64 + 65535)]
    IdOverlap {
        ctid: u32,
        kind: &'static str,
        first: u32,
        other: u32,
        other_first: u32,
    },
    #[error("VPS {ctid}: no free range of 65536 uids and gids above LOCAL_UID={uid_base}/LOCAL_GID={gid_base} (vz.conf); destroy unused VPSs or lower the base in {conf}")]
    NoIdRange {
        ctid: u32,
        uid_base: u32,
        gid_base: u32,
        conf: PathBuf,
    },
    #[error("VPS {ctid}: this kernel ({release}) cannot show template layers through idmapped mounts (overlayfs needs Linux 5.19 or later); upgrade the kernel, or make a privileged VPS with `vzctl create {ctid} --userns no ...` (unsafe for untrusted users: root inside is the host's root)")]
    Kernel { ctid: u32, release: String },
    #[error("VPS {ctid}: cannot change the owners of its private area {path} for its user namespace: {source}; nothing was saved, run `vzctl set {ctid} --userns {want} --save` again")]
    Shift {
        ctid: u32,
        path: PathBuf,
        want: &'static str,
        #[source]
        source: std::io::Error,
    },
    // Networking (issue 26).
    #[error("VPS {ctid}: network: {source}")]
    Net {
        ctid: u32,
        #[source]
        source: crate::net::NetError,
    },
    #[error("VPS {ctid}: address {addr} is already VPS {other}'s; remove it there first (`vzctl set {other} --ipdel {addr} --save`)")]
    IpInUse {
        ctid: u32,
        addr: std::net::IpAddr,
        other: u32,
    },
    // Resources (cgroups).
    #[error("VPS {ctid}: resources: {source}")]
    Cgroup {
        ctid: u32,
        #[source]
        source: crate::cgroup::CgroupError,
    },
    #[error("VPS {ctid}: {key}=\"{value}\" in {path}: {why}; fix it or set it again with `vzctl set {ctid} ... --save`")]
    Resource {
        ctid: u32,
        path: PathBuf,
        key: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("config sample `{name}`: {why}")]
    Sample { name: String, why: String },
    #[error("the template store at {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: crate::store::StoreError,
    },
}

impl VpsError {
    pub fn exit_code(&self) -> i32 {
        match self {
            VpsError::BadCtid { .. }
            | VpsError::BadValue { .. }
            | VpsError::IdOverlap { .. }
            | VpsError::NoIdRange { .. } => exit::BAD_VALUE,
            VpsError::Kernel { .. } => exit::BAD_KERNEL,
            VpsError::Exists { .. } => exit::EXISTS,
            VpsError::NotFound { .. } => exit::NOT_EXIST,
            VpsError::Template { .. } | VpsError::Pull { .. } => exit::NO_TEMPLATE,
            VpsError::Running { .. } | VpsError::AlreadyRunning { .. } => exit::RUNNING,
            VpsError::NotRunning { .. } => exit::NOT_RUNNING,
            VpsError::Mount { .. } | VpsError::NotMounted { .. } | VpsError::Simfs { .. } => {
                exit::MOUNT_FAILED
            }
            VpsError::Umount { .. } => exit::UMOUNT_FAILED,
            VpsError::Start { .. } | VpsError::Walls { .. } => exit::START_FAILED,
            VpsError::Stop { .. } => exit::STOP_FAILED,
            VpsError::NoShell { .. } => exit::BROKEN,
            VpsError::Locked { .. } => exit::LOCKED,
            VpsError::Net { .. } => exit::NET,
            VpsError::IpInUse { .. } => exit::IP_IN_USE,
            VpsError::Cgroup { source, .. } => source.exit_code(),
            VpsError::Sample { .. } => exit::BAD_VALUE,
            VpsError::Conf { .. }
            | VpsError::HostConf { .. }
            | VpsError::HostIo { .. }
            | VpsError::Resource { .. }
            | VpsError::ConfKey { .. }
            | VpsError::Io { .. }
            | VpsError::Exec { .. }
            | VpsError::Sandbox { .. }
            | VpsError::Shift { .. }
            | VpsError::Store { .. } => exit::SYSTEM,
        }
    }
}

/// Shorthand for mapping an `io::Error` on a path to [`VpsError::Io`].
pub(crate) fn io_err(
    ctid: u32,
    op: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> VpsError {
    let path = path.to_path_buf();
    move |source| VpsError::Io {
        ctid,
        op,
        path,
        source,
    }
}

fn holder_text(holder: Option<i32>) -> String {
    match holder {
        Some(pid) => format!("vzctl process {pid}"),
        None => "another vzctl".to_string(),
    }
}
