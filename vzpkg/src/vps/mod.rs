//! The VPS runtime: VPSs on shared template layers, OpenVZ style.
//!
//! On disk, under the VZ root (default `/vz`):
//! - `conf/CTID.conf`: the VPS's config (OpenVZ keys, see [`conf`]);
//! - `private/CTID/fs` and `private/CTID/work`: the overlay upper and work
//!   dirs, holding only what the VPS changed (plus its identity files);
//! - the quota file (usage, limits, dirty flag), shared with `vzquota`:
//!   `/var/vzquota/quota.CTID` for the VZ root `/vz`, else
//!   `VZ_ROOT/vzquota/quota.CTID` (or `$VZQUOTA_DIR/quota.CTID`);
//! - `mnt/CTID/`: simfs over the private area, seen by the host only and
//!   served by a process of its own (see [`daemon`]): it charges every
//!   change there to the quota and fails writes past it with EDQUOT
//!   (`DISK_QUOTA="yes"`, the default);
//! - `root/CTID/`: the VPS's root: the overlay of the template's layer
//!   trees under the private `fs/`, taken through simfs (`mnt/CTID/fs`), so
//!   `df` inside shows the quota. Template files are read by the overlay
//!   straight from the layers, never through simfs: no daemon round trip
//!   per open, one page cache for all VPSs. With `DISK_QUOTA="no"` the
//!   overlay takes `fs/` directly and there is no simfs;
//! - `run/CTID.pid`: the host pid of the running VPS's PID 1;
//!   `run/CTID.simfs.{pid,sock,log}`: its simfs process;
//!   `run/CTID.lock`: taken by every vzctl that changes the VPS.
//!
//! Whether a VPS exists, is mounted or runs is read from the system each
//! time (the config file, `/proc/self/mountinfo`, the pid file checked
//! against `/proc`), never remembered. A VPS keeps the template *id* it was
//! created from, so re-tagging a name never swaps the layers under it.

pub mod cli;
pub mod conf;
pub mod daemon;
mod error;
pub mod overlay;
pub mod process;
pub mod resources;

pub use error::{exit, VpsError};
pub use overlay::MountState;
pub use process::Stopped;

use crate::store::{Store, StoreError};
use conf::Conf;
use error::io_err;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// vzctl's default grace period: 3 days.
pub const DEFAULT_QUOTATIME: u64 = 259_200;
/// OpenVZ's sample limits (`DISKSPACE="2G:2.2G"`, `DISKINODES="131072:144179"`),
/// used when `create` is given none.
pub const DEFAULT_DISKSPACE: (u64, u64) = (2 << 20, 2_306_867);
pub const DEFAULT_DISKINODES: (u64, u64) = (131_072, 144_179);

/// A CTID from the command line: a positive integer.
pub fn parse_ctid(s: &str) -> Result<u32, VpsError> {
    let bad = || VpsError::BadCtid { given: s.into() };
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match s.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(bad()),
    }
}

/// The VZ root and where each VPS's files are under it.
#[derive(Debug, Clone)]
pub struct VzRoot {
    pub base: PathBuf,
}

impl VzRoot {
    pub fn new(base: impl Into<PathBuf>) -> VzRoot {
        VzRoot { base: base.into() }
    }
    pub fn conf_dir(&self) -> PathBuf {
        self.base.join("conf")
    }
    pub fn conf(&self, ctid: u32) -> PathBuf {
        self.conf_dir().join(format!("{ctid}.conf"))
    }
    pub fn default_private(&self, ctid: u32) -> PathBuf {
        self.base.join("private").join(ctid.to_string())
    }
    pub fn default_root(&self, ctid: u32) -> PathBuf {
        self.base.join("root").join(ctid.to_string())
    }
    pub fn pid_file(&self, ctid: u32) -> PathBuf {
        self.base.join("run").join(format!("{ctid}.pid"))
    }
    pub fn simfs_pid_file(&self, ctid: u32) -> PathBuf {
        self.base.join("run").join(format!("{ctid}.simfs.pid"))
    }
    pub fn simfs_socket(&self, ctid: u32) -> PathBuf {
        self.base.join("run").join(format!("{ctid}.simfs.sock"))
    }
    pub fn simfs_log(&self, ctid: u32) -> PathBuf {
        self.base.join("run").join(format!("{ctid}.simfs.log"))
    }
    /// The log of the `/proc` view's process.
    pub fn view_log(&self, ctid: u32) -> PathBuf {
        self.base.join("run").join(format!("{ctid}.procview.log"))
    }
    /// Where simfs shows the private area; outside it, so simfs never
    /// walks into its own mount.
    pub fn simfs_mount(&self, ctid: u32) -> PathBuf {
        self.base.join("mnt").join(ctid.to_string())
    }
    /// The quota file of `ctid`, shared with `vzquota` (see
    /// [`crate::quota::cli::quota_dir_for`]).
    pub fn quota_file(&self, ctid: u32) -> PathBuf {
        crate::quota::cli::quota_dir_for(Some(&self.base)).join(format!("quota.{ctid}"))
    }
    fn lock_file(&self, ctid: u32) -> PathBuf {
        self.base.join("run").join(format!("{ctid}.lock"))
    }
}

/// A VPS's config, typed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VpsConfig {
    pub ctid: u32,
    pub ostemplate: String,
    /// The store id of the template; `None` in a config written by hand.
    pub template_id: Option<String>,
    pub ve_root: PathBuf,
    pub ve_private: PathBuf,
    pub hostname: Option<String>,
    /// 1K blocks, soft and hard.
    pub diskspace: (u64, u64),
    pub diskinodes: (u64, u64),
    pub quotatime: u64,
    pub quotaugidlimit: u64,
    /// `DISK_QUOTA`: simfs on the root (the default), or the bare overlay.
    pub disk_quota: bool,
    /// Resources: `PHYSPAGES`, `CPUUNITS`, `NUMPROC`, ... (see [`crate::cgroup`]).
    pub resources: crate::cgroup::Resources,
}

impl VpsConfig {
    /// The overlay upper dir.
    pub fn upper(&self) -> PathBuf {
        self.ve_private.join("fs")
    }
    pub fn work(&self) -> PathBuf {
        self.ve_private.join("work")
    }
    fn to_conf(&self, mut c: Conf) -> Conf {
        let pair = |(s, h): (u64, u64)| format!("{s}:{h}");
        c.set("OSTEMPLATE", &self.ostemplate);
        if let Some(id) = &self.template_id {
            c.set("TEMPLATE_ID", id);
        }
        c.set("VE_ROOT", &self.ve_root.to_string_lossy());
        c.set("VE_PRIVATE", &self.ve_private.to_string_lossy());
        if let Some(h) = &self.hostname {
            c.set("HOSTNAME", h);
        }
        c.set("DISKSPACE", &pair(self.diskspace));
        c.set("DISKINODES", &pair(self.diskinodes));
        c.set("QUOTATIME", &self.quotatime.to_string());
        c.set("QUOTAUGIDLIMIT", &self.quotaugidlimit.to_string());
        c.set("DISK_QUOTA", if self.disk_quota { "yes" } else { "no" });
        self.resources.to_conf(&mut c);
        c
    }

    fn from_conf(ctid: u32, path: &Path, c: &Conf) -> Result<VpsConfig, VpsError> {
        let need = |key: &'static str| {
            c.get(key)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| VpsError::ConfKey {
                    ctid,
                    path: path.to_path_buf(),
                    key,
                })
        };
        let bad = |key: &str, why: &str| VpsError::Conf {
            ctid,
            path: path.to_path_buf(),
            line: 0,
            why: format!("{key}: {why}"),
        };
        let limits = |key: &str, one: fn(&str) -> Option<u64>, default| match c.get(key) {
            None | Some("") => Ok(default),
            Some(v) => conf::parse_limits(v, one).ok_or_else(|| bad(key, "expected soft:hard")),
        };
        let number = |key: &str, default: u64| match c.get(key) {
            None | Some("") => Ok(default),
            Some(v) => v.parse().map_err(|_| bad(key, "expected a number")),
        };
        Ok(VpsConfig {
            ctid,
            ostemplate: need("OSTEMPLATE")?,
            template_id: c.get("TEMPLATE_ID").map(str::to_string),
            ve_root: PathBuf::from(need("VE_ROOT")?),
            ve_private: PathBuf::from(need("VE_PRIVATE")?),
            hostname: c.get("HOSTNAME").map(str::to_string),
            diskspace: limits("DISKSPACE", conf::parse_blocks, DEFAULT_DISKSPACE)?,
            diskinodes: limits("DISKINODES", conf::parse_count, DEFAULT_DISKINODES)?,
            quotatime: number("QUOTATIME", DEFAULT_QUOTATIME)?,
            quotaugidlimit: number("QUOTAUGIDLIMIT", 0)?,
            disk_quota: match c.get("DISK_QUOTA") {
                None | Some("") | Some("yes") => true,
                Some("no") => false,
                Some(_) => return Err(bad("DISK_QUOTA", "expected yes or no")),
            },
            resources: resources::resources_of(ctid, path, c)?,
        })
    }
}

/// What `create` is told.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub ostemplate: String,
    pub hostname: Option<String>,
    pub diskspace: Option<(u64, u64)>,
    pub diskinodes: Option<(u64, u64)>,
    /// `$VEID`/`$CTID` in these are replaced by the CTID.
    pub private: Option<PathBuf>,
    pub root: Option<PathBuf>,
    /// `DISK_QUOTA`; `None` is no (see `create`).
    pub disk_quota: Option<bool>,
    /// Resources: these keys win over the sample's.
    pub resources: crate::cgroup::Resources,
    /// `--config NAME`: `conf/ve-NAME.conf-sample` (or a shipped one).
    pub config: Option<String>,
}

/// What `set` changes; `None` leaves a value as it is.
#[derive(Debug, Clone, Default)]
pub struct SetOptions {
    pub hostname: Option<String>,
    pub diskspace: Option<(u64, u64)>,
    pub diskinodes: Option<(u64, u64)>,
    pub quotatime: Option<u64>,
    pub quotaugidlimit: Option<u64>,
    /// Takes effect at the next mount.
    pub disk_quota: Option<bool>,
    /// Resources: the keys set here change; live on a running VPS.
    pub resources: crate::cgroup::Resources,
    pub save: bool,
}

/// A VPS's state as the system shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub ctid: u32,
    pub exists: bool,
    pub mounted: bool,
    pub running: bool,
    /// Host pid of PID 1 while running.
    pub pid: Option<i32>,
    /// Why what is mounted is not the VPS's root (overlay, and simfs with
    /// its process), if it is not; `mounted` is false then.
    pub stale_mount: Option<String>,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CTID {} {} {} {}",
            self.ctid,
            if self.exists { "exist" } else { "deleted" },
            if self.mounted { "mounted" } else { "unmounted" },
            if self.running { "running" } else { "down" }
        )
    }
}

/// One row of `list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListEntry {
    #[serde(flatten)]
    pub status: Status,
    pub ostemplate: String,
    pub template_id: Option<String>,
    pub hostname: Option<String>,
    /// The resources set in its config.
    pub resources: crate::cgroup::Resources,
    /// Its beancounters while it runs.
    pub beancounters: Vec<crate::cgroup::beancounters::Bean>,
}

/// What `mount` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mounted {
    Already,
    Fresh,
    /// A stale mount (the reason) was removed first.
    Replaced(String),
}

/// The host: where VPSs live and where templates come from.
#[derive(Debug, Clone)]
pub struct Vz {
    pub root: VzRoot,
    /// The template store (`ROOT/templates`).
    pub store: PathBuf,
    /// The vzpkg binary, run as `vzctl __simfs CTID` to serve a VPS's
    /// simfs; this program by default.
    pub simfs_exe: Option<PathBuf>,
}

/// Holds `run/CTID.lock` until dropped. The file names the holding
/// process while it is held and is empty once it is let go.
#[derive(Debug)]
struct CtLock(std::fs::File);

impl Drop for CtLock {
    fn drop(&mut self) {
        // Empty first: a child forked meanwhile may keep the `flock` until
        // it execs, and the next locker then knows nobody means to hold it.
        let _ = self.0.set_len(0);
    }
}

/// How long a lock let go by its holder may stay held by a child that
/// inherited it (between `fork` and `exec`, or a namespace set-up).
const LOCK_INHERITED_WAIT: Duration = Duration::from_secs(3);

/// An unmount of `target` failed.
fn umount_err(ctid: u32, target: &Path) -> impl FnOnce(std::io::Error) -> VpsError {
    let target = target.to_path_buf();
    move |source| VpsError::Umount {
        ctid,
        target,
        source,
    }
}

fn write_atomic(ctid: u32, path: &Path, bytes: &[u8]) -> Result<(), VpsError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write()
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err(ctid, "write", path)(e)
        })
}

fn expand(p: &Path, ctid: u32) -> PathBuf {
    let s = p.to_string_lossy();
    let id = ctid.to_string();
    PathBuf::from(s.replace("$VEID", &id).replace("$CTID", &id))
}

fn hosts_file(hostname: &str) -> String {
    let short = hostname.split('.').next().unwrap_or(hostname);
    let names = if short == hostname {
        hostname.to_string()
    } else {
        format!("{hostname} {short}")
    };
    format!("127.0.0.1\tlocalhost\n127.0.1.1\t{names}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
}

/// A fresh machine id: 128 random bits in hex, as systemd writes it.
fn machine_id(ctid: u32) -> Result<String, VpsError> {
    let mut b = [0u8; 16];
    let mut filled = 0;
    while filled < b.len() {
        // SAFETY: writing into the rest of a local buffer.
        let n = unsafe { libc::getrandom(b[filled..].as_mut_ptr().cast(), b.len() - filled, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(io_err(
                    ctid,
                    "get random bytes for",
                    Path::new("etc/machine-id"),
                )(e));
            }
            continue;
        }
        filled += n as usize;
    }
    // Version 4, as systemd makes them.
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(format!("{}\n", hex::encode(b)))
}

impl Vz {
    pub fn new(vz_root: impl Into<PathBuf>, store: impl Into<PathBuf>) -> Vz {
        Vz {
            root: VzRoot::new(vz_root),
            store: store.into(),
            simfs_exe: std::env::current_exe().ok(),
        }
    }

    fn lock(&self, ctid: u32) -> Result<CtLock, VpsError> {
        let path = self.root.lock_file(ctid);
        let dir = self.root.base.join("run");
        std::fs::create_dir_all(&dir).map_err(io_err(ctid, "create", &dir))?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(ctid, "open", &path))?;
        let deadline = std::time::Instant::now() + LOCK_INHERITED_WAIT;
        loop {
            match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {
                    let own = format!("{}\n", std::process::id());
                    let named = f.set_len(0).and_then(|()| {
                        std::os::unix::fs::FileExt::write_all_at(&f, own.as_bytes(), 0)
                    });
                    named.map_err(io_err(ctid, "write", &path))?;
                    return Ok(CtLock(f));
                }
                Err(rustix::io::Errno::WOULDBLOCK) => {}
                Err(e) => return Err(io_err(ctid, "lock", &path)(e.into())),
            }
            // A live holder named in the file means it: refuse at once.
            // Without one the lock was let go (or is being taken, and the
            // name comes next), and only an inherited copy still holds it.
            let mut named = [0u8; 16];
            let n = std::os::unix::fs::FileExt::read_at(&f, &mut named, 0).unwrap_or(0);
            let holder = std::str::from_utf8(&named[..n])
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            let alive = holder.is_some_and(process::is_running);
            if alive || std::time::Instant::now() >= deadline {
                return Err(VpsError::Locked { ctid, path, holder });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The store, for `template` of VPS `ctid`. A missing store is an unknown
    /// template (and is not created, as `Store::open` would).
    fn open_store(&self, ctid: u32, template: &str) -> Result<Store, VpsError> {
        if !self.store.is_dir() {
            return Err(VpsError::Template {
                ctid,
                template: template.to_string(),
                source: StoreError::NotFound {
                    name: template.to_string(),
                    known: format!(
                        "none, there is no template store at {}",
                        self.store.display()
                    ),
                },
            });
        }
        Store::open(&self.store).map_err(|source| VpsError::Store {
            path: self.store.clone(),
            source,
        })
    }

    /// The config of an existing VPS.
    pub fn config(&self, ctid: u32) -> Result<VpsConfig, VpsError> {
        let path = self.root.conf(ctid);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VpsError::NotFound { ctid, conf: path })
            }
            Err(e) => return Err(io_err(ctid, "read", &path)(e)),
        };
        let c = Conf::parse(&text).map_err(|e| VpsError::Conf {
            ctid,
            path: path.clone(),
            line: e.line,
            why: e.why,
        })?;
        VpsConfig::from_conf(ctid, &path, &c)
    }

    fn save_config(&self, cfg: &VpsConfig) -> Result<(), VpsError> {
        let path = self.root.conf(cfg.ctid);
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        let base = Conf::parse(&old).unwrap_or_default();
        write_atomic(cfg.ctid, &path, cfg.to_conf(base).render().as_bytes())
    }

    /// The template's layer trees, top first (overlay's order).
    fn lowers(&self, cfg: &VpsConfig) -> Result<Vec<PathBuf>, VpsError> {
        let name = cfg.template_id.as_deref().unwrap_or(&cfg.ostemplate);
        let mut trees = self
            .open_store(cfg.ctid, &cfg.ostemplate)?
            .layer_trees(name)
            .map_err(|source| VpsError::Template {
                ctid: cfg.ctid,
                template: cfg.ostemplate.clone(),
                source,
            })?;
        trees.reverse();
        Ok(trees)
    }

    /// Make a VPS: its config and private area with its own identity. No
    /// template file is copied.
    pub fn create(&self, ctid: u32, opts: &CreateOptions) -> Result<VpsConfig, VpsError> {
        if let Some(h) = &opts.hostname {
            if !conf::valid_hostname(h) {
                return Err(VpsError::BadValue {
                    option: "--hostname",
                    value: h.clone(),
                    why: "use letters, digits, '-' and '.' only",
                });
            }
        }
        let conf_path = self.root.conf(ctid);
        let dir = self.root.conf_dir();
        std::fs::create_dir_all(&dir).map_err(io_err(ctid, "create", &dir))?;
        let _lock = self.lock(ctid)?;
        if conf_path.exists() {
            return Err(VpsError::Exists {
                ctid,
                path: conf_path,
            });
        }
        let sample = match &opts.config {
            Some(name) => self.sample(name)?,
            None => Conf::default(),
        };
        let sample_path = self.root.sample(opts.config.as_deref().unwrap_or("none"));
        let sample_limits = |key: &'static str, one: fn(&str) -> Option<u64>| {
            sample
                .get(key)
                .filter(|v| !v.is_empty())
                .map(|v| {
                    conf::parse_limits(v, one).ok_or_else(|| VpsError::Sample {
                        name: opts.config.clone().unwrap_or_default(),
                        why: format!(
                            "{}: {key}=\"{v}\": expected soft:hard",
                            sample_path.display()
                        ),
                    })
                })
                .transpose()
        };
        let sample_diskspace = sample_limits("DISKSPACE", conf::parse_blocks)?;
        let sample_diskinodes = sample_limits("DISKINODES", conf::parse_count)?;
        let sample_quotatime = sample.get("QUOTATIME").and_then(|v| v.parse().ok());
        let sample_resources = resources::resources_of(ctid, &sample_path, &sample)?;
        let store = self.open_store(ctid, &opts.ostemplate)?;
        let template_err = |source| VpsError::Template {
            ctid,
            template: opts.ostemplate.clone(),
            source,
        };
        let id = store.resolve(&opts.ostemplate).map_err(template_err)?;
        let id_for_ref = id.clone();
        let mut lowers = store.layer_trees(&id).map_err(template_err)?;
        lowers.reverse();
        let cfg = VpsConfig {
            ctid,
            ostemplate: opts.ostemplate.clone(),
            template_id: Some(id),
            ve_root: opts
                .root
                .as_deref()
                .map(|p| expand(p, ctid))
                .unwrap_or_else(|| self.root.default_root(ctid)),
            ve_private: opts
                .private
                .as_deref()
                .map(|p| expand(p, ctid))
                .unwrap_or_else(|| self.root.default_private(ctid)),
            hostname: Some(
                opts.hostname
                    .clone()
                    .unwrap_or_else(|| format!("vps{ctid}")),
            ),
            diskspace: opts
                .diskspace
                .or(sample_diskspace)
                .unwrap_or(DEFAULT_DISKSPACE),
            diskinodes: opts
                .diskinodes
                .or(sample_diskinodes)
                .unwrap_or(DEFAULT_DISKINODES),
            quotatime: sample_quotatime.unwrap_or(DEFAULT_QUOTATIME),
            quotaugidlimit: 0,
            // OpenVZ's default: the quota holds and `df` shows it. Reads go
            // through passthrough (template files: one shared page cache); a
            // mount scans only the private area; metadata-heavy VPSs may
            // choose the bare overlay (`--diskquota no`), which is faster.
            disk_quota: opts.disk_quota.unwrap_or(true),
            resources: sample_resources.merged(&opts.resources),
        };
        if let Some(parent) = cfg.ve_private.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(ctid, "create", parent))?;
        }
        // create_dir fails on an existing area: never adopt someone's files.
        match std::fs::create_dir(&cfg.ve_private) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(VpsError::Exists {
                    ctid,
                    path: cfg.ve_private.clone(),
                })
            }
            Err(e) => return Err(io_err(ctid, "create", &cfg.ve_private)(e)),
        }
        let holder = self.store_holder(ctid);
        let made = self
            .make_private(&cfg, &lowers)
            .and_then(|()| {
                std::fs::create_dir_all(&cfg.ve_root).map_err(io_err(ctid, "create", &cfg.ve_root))
            })
            .and_then(|()| {
                // Before the config exists: a VPS is never without its hold
                // on the template's layers (gc keeps them).
                store
                    .add_ref(&holder, &id_for_ref)
                    .map_err(|source| VpsError::Store {
                        path: self.store.clone(),
                        source,
                    })
            })
            .and_then(|()| {
                // The sample's other keys (ONBOOT, ...) are kept as written.
                write_atomic(
                    ctid,
                    &conf_path,
                    cfg.to_conf(sample.clone()).render().as_bytes(),
                )
            });
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&cfg.ve_private);
            let _ = store.remove_ref(&holder);
            return Err(e);
        }
        Ok(cfg)
    }

    /// This VPS's name among the store's references: the CTID and which
    /// VZ root it lives in (two roots may share one store).
    fn store_holder(&self, ctid: u32) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.root.base.as_os_str().as_encoded_bytes());
        format!("vps-{ctid}-{}", &hex::encode(digest)[..12])
    }

    /// The upper dir (with the identity files) and the work dir.
    fn make_private(&self, cfg: &VpsConfig, lowers: &[PathBuf]) -> Result<(), VpsError> {
        let ctid = cfg.ctid;
        let upper = cfg.upper();
        let work = cfg.work();
        for d in [&upper, &work] {
            std::fs::create_dir(d).map_err(io_err(ctid, "create", d))?;
        }
        std::fs::set_permissions(&cfg.ve_private, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err(ctid, "chmod", &cfg.ve_private))?;
        // An upper directory's owner and mode win over the layers': copy them.
        for rel in ["", "etc"] {
            let at = upper.join(rel);
            let lower = lowers.iter().map(|l| l.join(rel)).find(|p| p.is_dir());
            if !rel.is_empty() {
                std::fs::create_dir(&at).map_err(io_err(ctid, "create", &at))?;
            }
            let (mode, uid, gid) = match lower.and_then(|l| std::fs::metadata(l).ok()) {
                Some(m) => (m.mode() & 0o7777, m.uid(), m.gid()),
                None => (0o755, 0, 0),
            };
            std::fs::set_permissions(&at, std::fs::Permissions::from_mode(mode))
                .map_err(io_err(ctid, "chmod", &at))?;
            std::os::unix::fs::chown(&at, Some(uid), Some(gid))
                .map_err(io_err(ctid, "chown", &at))?;
        }
        self.write_identity(cfg, &upper, true)
    }

    /// `etc/hostname`, `etc/hosts` and (`fresh_id`) `etc/machine-id` under `top`.
    fn write_identity(&self, cfg: &VpsConfig, top: &Path, fresh_id: bool) -> Result<(), VpsError> {
        let ctid = cfg.ctid;
        let host = cfg.hostname.clone().unwrap_or_else(|| format!("vps{ctid}"));
        let mut files = vec![
            ("etc/hostname", format!("{host}\n"), 0o644),
            ("etc/hosts", hosts_file(&host), 0o644),
        ];
        if fresh_id {
            files.push(("etc/machine-id", machine_id(ctid)?, 0o444));
        }
        for (rel, text, mode) in files {
            let p = top.join(rel);
            // Replace, never write through: the lower file may be a symlink.
            let _ = std::fs::remove_file(&p);
            std::fs::write(&p, text).map_err(io_err(ctid, "write", &p))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
                .map_err(io_err(ctid, "chmod", &p))?;
        }
        Ok(())
    }

    fn mounts_at(&self, ctid: u32, at: &Path) -> Result<Vec<overlay::MountEntry>, VpsError> {
        overlay::mounts_at(at).map_err(io_err(ctid, "read the mount table for", at))
    }

    /// The overlay's upper and work dirs: the private area's `fs/` and
    /// `work/`, through simfs when the quota is on.
    fn upper_work(&self, cfg: &VpsConfig) -> (PathBuf, PathBuf) {
        if cfg.disk_quota {
            let at = self.root.simfs_mount(cfg.ctid);
            (at.join("fs"), at.join("work"))
        } else {
            (cfg.upper(), cfg.work())
        }
    }

    /// What is mounted for the VPS, judged against what `mount` makes: the
    /// overlay on the root, and (with quota) simfs under it with a live
    /// process.
    fn mount_state(&self, cfg: &VpsConfig) -> Result<MountState, VpsError> {
        let ctid = cfg.ctid;
        let lowers = self.lowers(cfg).unwrap_or_default();
        let (upper, _) = self.upper_work(cfg);
        let ov = overlay::state(&cfg.ve_root, &upper, &lowers).map_err(io_err(
            ctid,
            "read the mount table for",
            &cfg.ve_root,
        ))?;
        let simfs_at = self.root.simfs_mount(ctid);
        let under = self.mounts_at(ctid, &simfs_at)?;
        if !cfg.disk_quota {
            if !under.is_empty() {
                return Ok(MountState::Stale(format!(
                    "simfs is left on {} (DISK_QUOTA was changed)",
                    simfs_at.display()
                )));
            }
            return Ok(ov);
        }
        match ov {
            MountState::Unmounted if under.is_empty() => return Ok(MountState::Unmounted),
            MountState::Unmounted => {
                return Ok(MountState::Stale(format!(
                    "a {} mount on {} without the overlay",
                    under.last().map_or("", |m| m.fs_type.as_str()),
                    simfs_at.display()
                )))
            }
            MountState::Stale(why) => return Ok(MountState::Stale(format!("its overlay: {why}"))),
            MountState::Mounted => {}
        }
        match &under[..] {
            [] => return Ok(MountState::Stale("simfs is not mounted".into())),
            [m] if daemon::is_simfs(m) => {}
            [m] => {
                return Ok(MountState::Stale(format!(
                    "a {} mount on {}",
                    m.fs_type,
                    simfs_at.display()
                )))
            }
            more => {
                return Ok(MountState::Stale(format!(
                    "{} mounts stacked on {}",
                    more.len(),
                    simfs_at.display()
                )))
            }
        }
        // A killed simfs process leaves ENOTCONN ("Transport endpoint is
        // not connected") behind. statfs always asks the process; a stat
        // may be answered from the kernel's attribute cache.
        if let Err(e) = rustix::fs::statvfs(&simfs_at) {
            return Ok(MountState::Stale(format!(
                "simfs: statfs fails: {}",
                std::io::Error::from(e)
            )));
        }
        if daemon::live_pid(self, ctid).is_none() {
            return Ok(MountState::Stale("its simfs process is gone".into()));
        }
        Ok(MountState::Mounted)
    }

    /// Take down whatever is left of a mount (a dead simfs process, an
    /// overlay without simfs, a foreign mount); nothing may run on it.
    fn clear_stale(&self, cfg: &VpsConfig) -> Result<(), VpsError> {
        let ctid = cfg.ctid;
        if let Some(pid) = self.running_pid(cfg) {
            return Err(VpsError::Running { ctid, pid });
        }
        // The overlay first, detached, so a live simfs process can exit;
        // its state stays dirty if it cannot save it, and the next mount
        // rescans.
        overlay::unmount_all(&cfg.ve_root, true).map_err(umount_err(ctid, &cfg.ve_root))?;
        let simfs_at = self.root.simfs_mount(ctid);
        daemon::stop(self, ctid, Duration::from_secs(5)).map_err(umount_err(ctid, &simfs_at))?;
        overlay::unmount_all(&simfs_at, true).map_err(umount_err(ctid, &simfs_at))?;
        // Earlier versions mounted the overlay inside the private area,
        // which simfs now shows: it must not stay there.
        let old = cfg.ve_private.join("mnt");
        overlay::unmount_all(&old, true).map_err(umount_err(ctid, &old))?;
        let _ = std::fs::remove_dir(&old);
        Ok(())
    }

    fn mount_locked(&self, cfg: &VpsConfig) -> Result<Mounted, VpsError> {
        let ctid = cfg.ctid;
        let stale = match self.mount_state(cfg)? {
            MountState::Mounted => return Ok(Mounted::Already),
            MountState::Unmounted => None,
            MountState::Stale(why) => {
                self.clear_stale(cfg)?;
                Some(why)
            }
        };
        if !cfg.upper().is_dir() {
            return Err(VpsError::Mount {
                ctid,
                target: cfg.ve_root.clone(),
                step: "find the private area",
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} is missing", cfg.upper().display()),
                ),
            });
        }
        let lowers = self.lowers(cfg)?;
        let simfs_at = self.root.simfs_mount(ctid);
        std::fs::create_dir_all(&cfg.ve_root).map_err(io_err(ctid, "create", &cfg.ve_root))?;
        if cfg.disk_quota {
            std::fs::create_dir_all(&simfs_at).map_err(io_err(ctid, "create", &simfs_at))?;
            daemon::spawn(self, cfg)?;
        }
        let (upper, work) = self.upper_work(cfg);
        if let Err((step, source)) = overlay::mount(&cfg.ve_root, &lowers, &upper, &work) {
            if cfg.disk_quota {
                let _ = daemon::stop(self, ctid, Duration::from_secs(2));
                let _ = overlay::unmount_all(&simfs_at, true);
            }
            return Err(VpsError::Mount {
                ctid,
                target: cfg.ve_root.clone(),
                step,
                source,
            });
        }
        Ok(stale.map_or(Mounted::Fresh, Mounted::Replaced))
    }

    /// Mount the VPS's root (a no-op if it is; a stale mount is replaced).
    pub fn mount(&self, ctid: u32) -> Result<Mounted, VpsError> {
        let cfg = self.config(ctid)?;
        let _lock = self.lock(ctid)?;
        self.mount_locked(&cfg)
    }

    /// Unmount the VPS's root (a no-op if it is not mounted).
    pub fn umount(&self, ctid: u32) -> Result<bool, VpsError> {
        let cfg = self.config(ctid)?;
        let _lock = self.lock(ctid)?;
        self.umount_locked(&cfg)
    }

    /// The overlay first (a busy root is an error and stays mounted), then
    /// simfs under it (its process then saves the quota state clean and
    /// exits).
    fn umount_locked(&self, cfg: &VpsConfig) -> Result<bool, VpsError> {
        let ctid = cfg.ctid;
        if let Some(pid) = self.running_pid(cfg) {
            return Err(VpsError::Running { ctid, pid });
        }
        let simfs_at = self.root.simfs_mount(ctid);
        let was = !self.mounts_at(ctid, &cfg.ve_root)?.is_empty()
            || !self.mounts_at(ctid, &simfs_at)?.is_empty();
        overlay::unmount_all(&cfg.ve_root, false).map_err(umount_err(ctid, &cfg.ve_root))?;
        if cfg.disk_quota {
            if let Err(e) = daemon::unmount(self, ctid, &simfs_at) {
                // Busy from the host side: put the overlay back, so the VPS
                // is as it was.
                if let Ok(lowers) = self.lowers(cfg) {
                    let (upper, work) = self.upper_work(cfg);
                    let _ = overlay::mount(&cfg.ve_root, &lowers, &upper, &work);
                }
                return Err(e);
            }
        }
        // What is left: a simfs whose process died.
        daemon::stop(self, ctid, Duration::from_secs(5)).map_err(umount_err(ctid, &simfs_at))?;
        overlay::unmount_all(&simfs_at, false).map_err(umount_err(ctid, &simfs_at))?;
        Ok(was)
    }

    /// The pid of the VPS's live PID 1, from the pid file checked against /proc.
    fn running_pid(&self, cfg: &VpsConfig) -> Option<i32> {
        let text = std::fs::read_to_string(self.root.pid_file(cfg.ctid)).ok()?;
        let pid: i32 = text.trim().parse().ok().filter(|p| *p > 0)?;
        // A root that cannot be stat'ed (simfs's process died) cannot be
        // compared: then the pid file and the namespace have to do.
        let mounted = !overlay::mounts_at(&cfg.ve_root).ok()?.is_empty()
            && std::fs::metadata(&cfg.ve_root).is_ok();
        process::is_vps_init(pid, mounted.then_some(cfg.ve_root.as_path())).then_some(pid)
    }

    pub fn status(&self, ctid: u32) -> Result<Status, VpsError> {
        let (exists, root, cfg) = match self.config(ctid) {
            Ok(cfg) => (true, cfg.ve_root.clone(), Some(cfg)),
            Err(VpsError::NotFound { .. }) => (false, self.root.default_root(ctid), None),
            Err(e) => return Err(e),
        };
        let (mounted, stale_mount) = match &cfg {
            Some(cfg) => match self.mount_state(cfg)? {
                MountState::Mounted => (true, None),
                MountState::Unmounted => (false, None),
                MountState::Stale(why) => (false, Some(why)),
            },
            None => (!self.mounts_at(ctid, &root)?.is_empty(), None),
        };
        let pid = cfg.as_ref().and_then(|c| self.running_pid(c));
        Ok(Status {
            ctid,
            exists,
            mounted,
            running: pid.is_some(),
            pid,
            stale_mount,
        })
    }

    /// Every VPS with a config, by CTID.
    pub fn list(&self) -> Result<Vec<ListEntry>, VpsError> {
        let dir = self.root.conf_dir();
        let mut ids: Vec<u32> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    parse_ctid(name.strip_suffix(".conf")?).ok()
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(0, "list", &dir)(e)),
        };
        ids.sort_unstable();
        let mut out = Vec::new();
        for ctid in ids {
            let cfg = self.config(ctid)?;
            let status = self.status(ctid)?;
            let beancounters = if status.running {
                crate::cgroup::beancounters::read(&self.cgroup(ctid)?)
            } else {
                Vec::new()
            };
            out.push(ListEntry {
                status,
                ostemplate: cfg.ostemplate,
                template_id: cfg.template_id,
                hostname: cfg.hostname,
                resources: cfg.resources,
                beancounters,
            });
        }
        Ok(out)
    }

    /// Start the VPS: mount if needed, then its init as PID 1 of new
    /// namespaces, detached from the caller. Returns init's host pid.
    pub fn start(&self, ctid: u32, private_net: bool) -> Result<i32, VpsError> {
        let cfg = self.config(ctid)?;
        let _lock = self.lock(ctid)?;
        if let Some(pid) = self.running_pid(&cfg) {
            return Err(VpsError::AlreadyRunning { ctid, pid });
        }
        self.mount_locked(&cfg)?;
        for name in ["proc", "dev", "sys"] {
            let p = cfg.ve_root.join(name);
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                // A symlink would send the mount outside the VPS.
                Ok(_) => {
                    return Err(VpsError::Start {
                        ctid,
                        step: format!("check mount point /{name}"),
                        source: std::io::Error::other(format!(
                            "{} is not a directory; remove it inside the VPS",
                            p.display()
                        )),
                    })
                }
                Err(_) => std::fs::create_dir(&p).map_err(io_err(ctid, "create", &p))?,
            }
        }
        let hostname = cfg.hostname.clone().unwrap_or_else(|| format!("vps{ctid}"));
        let mut plan =
            process::StartPlan::new(&cfg.ve_root, &hostname, private_net).map_err(|why| {
                VpsError::Start {
                    ctid,
                    step: "prepare".into(),
                    source: std::io::Error::other(why),
                }
            })?;
        // Resources: the VPS's cgroup, made with its limits before init.
        let cg = self.cgroup_for_start(&cfg)?;
        plan.cgroup_procs = cg
            .procs_files()
            .iter()
            .filter_map(|p| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok())
            .collect();
        // The VPS's own figures: a detached FUSE mount init attaches inside.
        let view = match self.spawn_view(ctid) {
            Ok(v) => v,
            Err(e) => {
                let _ = cg.remove();
                return Err(e);
            }
        };
        plan.view = view.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
        let started = process::start(&plan);
        // Init holds what it attached; the server exits when the VPS goes.
        drop(view);
        let pid = started.map_err(|(step, source)| {
            let _ = cg.remove();
            VpsError::Start { ctid, step, source }
        })?;
        let pid_file = self.root.pid_file(ctid);
        write_atomic(ctid, &pid_file, format!("{pid}\n").as_bytes())?;
        Ok(pid)
    }

    /// Stop the VPS (SIGTERM, then SIGKILL after `timeout`). The root stays
    /// mounted: `vzctl stop` unmounts it after, unless `--skip-umount`.
    pub fn stop(&self, ctid: u32, fast: bool, timeout: Duration) -> Result<Stopped, VpsError> {
        let cfg = self.config(ctid)?;
        let _lock = self.lock(ctid)?;
        let Some(pid) = self.running_pid(&cfg) else {
            // What a crashed init or a killed start left behind goes too.
            self.remove_cgroup(ctid)?;
            return Err(VpsError::NotRunning { ctid });
        };
        let how = process::stop(pid, fast, timeout).map_err(|source| VpsError::Stop {
            ctid,
            pid,
            source,
        })?;
        let _ = std::fs::remove_file(self.root.pid_file(ctid));
        self.remove_cgroup(ctid)?;
        Ok(how)
    }

    /// Run `command` with `/bin/sh -c` inside the VPS, on the caller's stdio;
    /// returns its exit code. A stopped VPS gets fresh namespaces on its
    /// root for the command (mounted for it and unmounted after if it was not).
    pub fn exec(&self, ctid: u32, command: &str) -> Result<i32, VpsError> {
        self.run_shell(ctid, &["/bin/sh", "-c", command], command)
    }

    /// An interactive shell (or `command`) inside a running VPS.
    pub fn enter(&self, ctid: u32, command: Option<&str>) -> Result<i32, VpsError> {
        let cfg = self.config(ctid)?;
        let Some(pid) = self.running_pid(&cfg) else {
            return Err(VpsError::NotRunning { ctid });
        };
        let argv: Vec<&str> = match command {
            Some(c) => vec!["/bin/sh", "-c", c],
            None if process::exists_inside(&cfg.ve_root, "/bin/bash") => vec!["/bin/bash", "-l"],
            None => vec!["/bin/sh", "-l"],
        };
        self.shell_check(&cfg)?;
        let os: Vec<&OsStr> = argv.iter().map(OsStr::new).collect();
        let joins = self.cgroup_joins(ctid)?;
        process::exec_in(pid, &os, &joins).map_err(|(step, source)| VpsError::Exec {
            ctid,
            command: argv.join(" "),
            step,
            source,
        })
    }

    fn shell_check(&self, cfg: &VpsConfig) -> Result<(), VpsError> {
        if process::exists_inside(&cfg.ve_root, "/bin/sh") {
            Ok(())
        } else {
            Err(VpsError::NoShell {
                ctid: cfg.ctid,
                path: cfg.ve_root.join("bin/sh"),
            })
        }
    }

    fn run_shell(&self, ctid: u32, argv: &[&str], shown: &str) -> Result<i32, VpsError> {
        let cfg = self.config(ctid)?;
        if let Some(pid) = self.running_pid(&cfg) {
            self.shell_check(&cfg)?;
            let os: Vec<&OsStr> = argv.iter().map(OsStr::new).collect();
            let joins = self.cgroup_joins(ctid)?;
            return process::exec_in(pid, &os, &joins).map_err(|(step, source)| VpsError::Exec {
                ctid,
                command: shown.to_string(),
                step,
                source,
            });
        }
        let lock = self.lock(ctid)?;
        let mounted_here = self.mount_locked(&cfg)? != Mounted::Already;
        let result = self.shell_check(&cfg).and_then(|()| {
            let mut sb = crate::sandbox::Sandbox::new(&cfg.ve_root);
            sb.hostname = cfg.hostname.clone().unwrap_or_else(|| format!("vps{ctid}"));
            sb.env = process::vps_env();
            let opts = crate::sandbox::RunOptions {
                output: crate::sandbox::OutputMode::Stream,
                stdin: crate::sandbox::StdinMode::Inherit,
                extra_env: Vec::new(),
            };
            sb.run(argv, &opts)
                .map(|out| {
                    use std::os::unix::process::ExitStatusExt;
                    out.status
                        .code()
                        .or_else(|| out.status.signal().map(|s| 128 + s))
                        .unwrap_or(1)
                })
                .map_err(|source| VpsError::Sandbox { ctid, source })
        });
        if mounted_here {
            self.umount_locked(&cfg)?;
        }
        drop(lock);
        result
    }

    /// Change settings: live where the VPS runs (hostname) or is mounted
    /// (disk limits), in the config and the VPS's files with `save`.
    /// Returns whether anything was applied live.
    pub fn set(&self, ctid: u32, opts: &SetOptions) -> Result<bool, VpsError> {
        let mut cfg = self.config(ctid)?;
        if let Some(h) = &opts.hostname {
            if !conf::valid_hostname(h) {
                return Err(VpsError::BadValue {
                    option: "--hostname",
                    value: h.clone(),
                    why: "use letters, digits, '-' and '.' only",
                });
            }
        }
        let _lock = self.lock(ctid)?;
        let mut live = false;
        let mounted = self.mount_state(&cfg)? == MountState::Mounted;
        let quota_change = opts.diskspace.is_some()
            || opts.diskinodes.is_some()
            || opts.quotatime.is_some()
            || opts.quotaugidlimit.is_some();
        if quota_change && cfg.disk_quota && mounted {
            let mut now = cfg.clone();
            now.diskspace = opts.diskspace.unwrap_or(cfg.diskspace);
            now.diskinodes = opts.diskinodes.unwrap_or(cfg.diskinodes);
            now.quotatime = opts.quotatime.unwrap_or(cfg.quotatime);
            let ugid = opts.quotaugidlimit.unwrap_or(cfg.quotaugidlimit);
            daemon::set_limits(self, ctid, daemon::limits_of(&now), ugid)?;
            live = true;
        }
        let resources = cfg.resources.merged(&opts.resources);
        if opts.resources.any() && self.running_pid(&cfg).is_some() {
            self.apply_resources(&cfg, &resources)?;
            live = true;
        } else if opts.resources.any() {
            // Refuse what this host cannot hold before it is saved.
            self.cgroup(ctid)?
                .check(&resources, &cfg.ve_private)
                .map_err(|source| VpsError::Cgroup { ctid, source })?;
        }
        if let (Some(h), Some(pid)) = (&opts.hostname, self.running_pid(&cfg)) {
            process::set_hostname_in(pid, h).map_err(|source| VpsError::Exec {
                ctid,
                command: format!("sethostname {h}"),
                step: "set the hostname",
                source,
            })?;
            live = true;
        }
        if !opts.save {
            return Ok(live);
        }
        if let Some(h) = &opts.hostname {
            cfg.hostname = Some(h.clone());
        }
        cfg.diskspace = opts.diskspace.unwrap_or(cfg.diskspace);
        cfg.diskinodes = opts.diskinodes.unwrap_or(cfg.diskinodes);
        cfg.quotatime = opts.quotatime.unwrap_or(cfg.quotatime);
        cfg.quotaugidlimit = opts.quotaugidlimit.unwrap_or(cfg.quotaugidlimit);
        cfg.disk_quota = opts.disk_quota.unwrap_or(cfg.disk_quota);
        cfg.resources = resources;
        self.save_config(&cfg)?;
        if opts.hostname.is_some() {
            // Through the mount (the overlay copies up, simfs charges the
            // files); a VPS with quota is mounted for it, as its clean
            // quota state would not see files written into the upper dir.
            // Without quota, straight into the upper dir.
            let mounted_here =
                !mounted && cfg.disk_quota && self.mount_locked(&cfg)? != Mounted::Already;
            let top = if mounted || mounted_here {
                cfg.ve_root.clone()
            } else {
                cfg.upper()
            };
            let etc = top.join("etc");
            let written = std::fs::create_dir_all(&etc)
                .map_err(io_err(ctid, "create", &etc))
                .and_then(|()| self.write_identity(&cfg, &top, false));
            if mounted_here {
                self.umount_locked(&cfg)?;
            }
            written?;
        }
        Ok(live)
    }

    /// Remove a stopped VPS: unmount, then its private area, config, pid
    /// file and empty mount point. Nothing else is touched.
    pub fn destroy(&self, ctid: u32) -> Result<(), VpsError> {
        let cfg = self.config(ctid)?;
        let lock = self.lock(ctid)?;
        self.umount_locked(&cfg)?;
        self.remove_cgroup(ctid)?;
        let gone = |p: &Path, r: std::io::Result<()>| match r {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(ctid, "remove", p)(e)),
            _ => Ok(()),
        };
        gone(&cfg.ve_private, std::fs::remove_dir_all(&cfg.ve_private))?;
        let conf = self.root.conf(ctid);
        gone(&conf, std::fs::remove_file(&conf))?;
        for p in [
            self.root.pid_file(ctid),
            self.root.view_log(ctid),
            self.root.simfs_pid_file(ctid),
            self.root.simfs_socket(ctid),
            self.root.simfs_log(ctid),
            // As vzctl destroy runs `vzquota drop`.
            self.root.quota_file(ctid),
        ] {
            gone(&p, std::fs::remove_file(&p))?;
        }
        // The template may now be collected (if nothing else holds it).
        if self.store.is_dir() {
            if let Ok(store) = Store::open(&self.store) {
                store
                    .remove_ref(&self.store_holder(ctid))
                    .map_err(|source| VpsError::Store {
                        path: self.store.clone(),
                        source,
                    })?;
            }
        }
        // Only if empty: never delete files someone put there.
        let _ = std::fs::remove_dir(&cfg.ve_root);
        let _ = std::fs::remove_dir(self.root.simfs_mount(ctid));
        let _ = std::fs::remove_file(self.root.lock_file(ctid));
        drop(lock);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
