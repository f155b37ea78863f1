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

pub mod conf;
pub mod daemon;
mod error;
pub mod idmap;
mod lifecycle;
mod mounting;
mod network;
pub mod overlay;
pub mod process;
pub mod resources;
mod running;
mod set;
pub mod walls;

pub use error::{exit, VpsError};
pub use overlay::MountState;
pub use process::Stopped;

use crate::store::{Store, StoreError};
use conf::Conf;
use error::io_err;
use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::AsFd;
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
    /// [`crate::layout::quota_dir_for`]).
    pub fn quota_file(&self, ctid: u32) -> PathBuf {
        crate::layout::quota_dir_for(Some(&self.base)).join(format!("quota.{ctid}"))
    }
    /// The host-wide config, `conf/vz.conf`.
    pub fn global_conf_path(&self) -> PathBuf {
        self.base.join(crate::layout::GLOBAL_CONF)
    }
    /// The host-wide config, parsed; a missing file is an empty config
    /// (every key at its default).
    pub fn global_conf(&self) -> Result<Conf, VpsError> {
        let path = self.global_conf_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Conf::default()),
            Err(source) => {
                return Err(VpsError::HostIo {
                    op: "read",
                    path,
                    source,
                })
            }
        };
        Conf::parse(&text).map_err(|e| VpsError::HostConf {
            path,
            line: e.line,
            why: e.why,
        })
    }
    fn lock_file(&self, ctid: u32) -> PathBuf {
        self.base.join("run").join(format!("{ctid}.lock"))
    }
    /// Taken while a VPS's id range is chosen and saved, so two creates
    /// never pick the same one.
    fn ids_lock_file(&self) -> PathBuf {
        self.base.join("run").join("ids.lock")
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
    // Isolation (walls.rs): OpenVZ's DEVNODES, DEVICES and CAPABILITY.
    pub devnodes: Vec<walls::DevNode>,
    pub devices: Vec<walls::DeviceRule>,
    /// Capabilities switched on or off against [`walls::DEFAULT_CAPS`].
    pub capability: Vec<(u32, bool)>,
    // User namespaces: `USERNS`, `LOCAL_UID`, `LOCAL_GID`.
    /// Root inside is an unprivileged host user: its own user namespace
    /// over `ids`. A config without `USERNS` (written before user
    /// namespaces) is privileged until converted with `vzctl set CTID
    /// --userns yes --save`.
    pub userns: bool,
    /// The host ids of inside ids 0..65535; set when `userns` is.
    pub ids: Option<idmap::IdRange>,
    // Networking (issue 26).
    /// `IP_ADDRESS`: venet addresses.
    pub ip_address: Vec<crate::net::config::IpNet>,
    /// `NETIF`: veth interfaces.
    pub netif: Vec<crate::net::config::Netif>,
    /// `NAMESERVER` (empty: `inherit`).
    pub nameserver: Vec<String>,
    /// `SEARCHDOMAIN`.
    pub searchdomain: Vec<String>,
    // Resources (cgroups): `PHYSPAGES`, `CPUUNITS`, `NUMPROC`, ... (see [`crate::cgroup`]).
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
    /// The id range of an unprivileged VPS; `None` for a privileged one.
    pub fn id_range(&self) -> Option<idmap::IdRange> {
        self.ids.filter(|_| self.userns)
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
        // Isolation (walls.rs): written once something is granted.
        for (key, value) in [
            ("DEVNODES", walls::devnodes_text(&self.devnodes)),
            ("DEVICES", walls::devices_text(&self.devices)),
            ("CAPABILITY", walls::capability_text(&self.capability)),
        ] {
            if !value.is_empty() || c.get(key).is_some() {
                c.set(key, &value);
            }
        }
        c.set("USERNS", if self.userns { "yes" } else { "no" });
        if let Some(r) = self.ids {
            c.set("LOCAL_UID", &r.uid.to_string());
            c.set("LOCAL_GID", &r.gid.to_string());
        }
        // Networking (issue 26): written once set, so a cleared list is saved.
        use crate::net::config::{render_ip_list, render_netif_list};
        let net = [
            ("IP_ADDRESS", render_ip_list(&self.ip_address)),
            ("NETIF", render_netif_list(&self.netif)),
            ("NAMESERVER", self.nameserver.join(" ")),
            ("SEARCHDOMAIN", self.searchdomain.join(" ")),
        ];
        for (key, value) in net {
            if !value.is_empty() || c.get(key).is_some() {
                c.set(key, &value);
            }
        }
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
        let userns = match c.get("USERNS") {
            None | Some("") | Some("no") => false,
            Some("yes") => true,
            Some(_) => return Err(bad("USERNS", "expected yes or no")),
        };
        let base = |key: &str| -> Result<Option<u32>, VpsError> {
            match c.get(key) {
                None | Some("") => Ok(None),
                Some(v) => match v.parse::<u32>() {
                    Ok(n) if idmap::valid_base(n) => Ok(Some(n)),
                    _ => Err(bad(key, "expected a host id from 65536 to 4294901759")),
                },
            }
        };
        let ids = match (base("LOCAL_UID")?, base("LOCAL_GID")?) {
            (Some(uid), Some(gid)) => Some(idmap::IdRange { uid, gid }),
            (None, None) => None,
            (Some(_), None) => return Err(bad("LOCAL_GID", "missing beside LOCAL_UID")),
            (None, Some(_)) => return Err(bad("LOCAL_UID", "missing beside LOCAL_GID")),
        };
        if userns && ids.is_none() {
            return Err(bad(
                "USERNS",
                "yes needs LOCAL_UID and LOCAL_GID (set them with `vzctl set CTID --userns yes --save`)",
            ));
        }
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
            // Isolation (walls.rs).
            devnodes: walls::merge_devnodes(&[], c.get("DEVNODES").unwrap_or(""))
                .map_err(|e| bad("DEVNODES", &e.to_string()))?,
            devices: walls::merge_devices(&[], c.get("DEVICES").unwrap_or(""))
                .map_err(|e| bad("DEVICES", &e.to_string()))?,
            capability: walls::merge_capability(&[], c.get("CAPABILITY").unwrap_or(""))
                .map_err(|e| bad("CAPABILITY", &e.to_string()))?,
            userns,
            ids,
            // Networking (issue 26).
            ip_address: crate::net::config::parse_ip_list(c.get("IP_ADDRESS").unwrap_or(""))
                .map_err(|w| {
                    bad(
                        "IP_ADDRESS",
                        &format!("{w:?} is not an address a VPS can own"),
                    )
                })?,
            netif: crate::net::config::parse_netif_list(c.get("NETIF").unwrap_or(""))
                .map_err(|w| bad("NETIF", &w))?,
            nameserver: words(c.get("NAMESERVER")),
            searchdomain: words(c.get("SEARCHDOMAIN")),
            resources: resources::resources_of(ctid, path, c)?,
        })
    }
}

fn words(v: Option<&str>) -> Vec<String> {
    v.unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect()
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
    // User namespaces.
    /// `--userns`; `None` is yes (unprivileged, the default).
    pub userns: Option<bool>,
    /// `--local_uid`, `--local_gid`: the range's first host ids; allocated
    /// when not given (a gid base defaults to the uid base given).
    pub local_uid: Option<u32>,
    pub local_gid: Option<u32>,
    // Resources (cgroups): these keys win over the sample's.
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
    // Isolation (walls.rs): `--devnodes`, `--devices` (live on a running
    // VPS), `--capability` (at the next start), each as given.
    pub devnodes: Vec<String>,
    pub devices: Vec<String>,
    pub capability: Vec<String>,
    // User namespaces: converting a stopped VPS (with `save`).
    pub userns: Option<bool>,
    pub local_uid: Option<u32>,
    pub local_gid: Option<u32>,
    // Resources (cgroups): the keys set here change; live on a running VPS.
    pub resources: crate::cgroup::Resources,
    pub save: bool,
    // Networking (issue 26): live on a running VPS.
    pub ipadd: Vec<crate::net::config::IpNet>,
    pub ipdel: Vec<crate::net::config::IpDel>,
    pub netif_add: Vec<crate::net::config::Netif>,
    /// Inside names, or `all`.
    pub netif_del: Vec<String>,
    /// Replaces `NAMESERVER` when not empty.
    pub nameserver: Vec<String>,
    /// Replaces `SEARCHDOMAIN` when not empty.
    pub searchdomain: Vec<String>,
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

/// A fresh machine id: 128 random bits in hex, as systemd writes it.
fn machine_id(ctid: u32) -> Result<String, VpsError> {
    let mut b = [0u8; 16];
    crate::sys::rand::fill(&mut b)
        .map_err(|e| io_err(ctid, "get random bytes for", Path::new("etc/machine-id"))(e))?;
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
}

#[cfg(test)]
mod tests;
