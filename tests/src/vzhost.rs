//! A VZ host for tests of the `vzctl` front door: a temporary store holding
//! templates made from the host's own programs and their libraries (no
//! network), an empty VZ root, and a clean-up that leaves no VPS running,
//! nothing mounted and no simfs process, even after a failed assertion.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vzpkg::store::{Store, TemplateMeta};

use crate::fixture::{is_root, shared_libraries, text, vzpkg_bin};

/// A template to commit: host programs copied into `/bin` with their
/// libraries, files of its own, and optionally a `/sbin/init` script.
pub struct Template<'a> {
    pub name: &'a str,
    pub tools: &'a [&'a str],
    pub files: &'a [(&'a str, &'a str)],
    pub init: Option<&'a str>,
}

pub struct VzHost {
    dir: tempfile::TempDir,
    /// `VZ_CGROUP_PARENT` for this host's VPSs: unique per run, removed on drop.
    cgroup_parent: String,
    /// A network namespace (a path under /run/netns) vzctl runs in, so
    /// network tests never touch the machine's own network.
    netns: Option<PathBuf>,
}

/// Hosts made by this process so far, for unique cgroup parents.
static HOSTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl VzHost {
    /// A host with `templates` committed, or `None` (with the reason on
    /// stderr) when the machine lacks what `what` tests need: root, and
    /// `/dev/fuse` when `fuse` is set.
    pub fn new(what: &str, fuse: bool, templates: &[Template]) -> Option<VzHost> {
        VzHost::with_programs(what, fuse, templates, &[])
    }

    /// As [`VzHost::new`], with `programs` (a host path and where it goes
    /// inside, e.g. a test's probe binary) and their libraries copied into
    /// every template.
    pub fn with_programs(
        what: &str,
        fuse: bool,
        templates: &[Template],
        programs: &[(&Path, &str)],
    ) -> Option<VzHost> {
        if !is_root() {
            eprintln!("skipped: {what} tests need root (overlay mounts and namespaces)");
            return None;
        }
        if fuse && !Path::new("/dev/fuse").exists() {
            eprintln!("skipped: {what} tests need /dev/fuse (modprobe fuse)");
            return None;
        }
        if Command::new("ldd").arg("--version").output().is_err() {
            eprintln!("skipped: ldd is missing, cannot find the libraries to copy");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("templates")).unwrap();
        for t in templates {
            let tree = tempfile::tempdir().unwrap();
            template_tree(tree.path(), t)?;
            for (host, inside) in programs {
                for lib in shared_libraries(host) {
                    copy_in(tree.path(), &lib, &lib);
                }
                copy_in(tree.path(), host, Path::new(inside));
            }
            let meta = TemplateMeta {
                name: t.name.into(),
                ..Default::default()
            };
            store.commit(tree.path(), &meta).unwrap();
        }
        let n = HOSTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cgroup_parent = format!("vzpkg-test-{}-{n}", std::process::id());
        Some(VzHost {
            dir,
            cgroup_parent,
            netns: None,
        })
    }

    /// `VZPKG_ROOT`: the store is `templates/` under it.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `VZ_ROOT`.
    pub fn vz(&self) -> PathBuf {
        self.dir.path().join("vz")
    }

    /// A key's value in VPS `id`'s config (the last one, as vzctl reads it).
    pub fn conf_value(&self, id: &str, key: &str) -> Option<String> {
        let conf = std::fs::read_to_string(self.vz().join(format!("conf/{id}.conf"))).ok()?;
        let prefix = format!("{key}=");
        conf.lines()
            .rev()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.trim_matches('"').to_string())
    }

    /// The host uid and gid of root inside VPS `id` (`LOCAL_UID`,
    /// `LOCAL_GID`), or 0 and 0 for a privileged VPS.
    pub fn root_ids(&self, id: &str) -> (u32, u32) {
        let n = |k| {
            self.conf_value(id, k)
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        };
        (n("LOCAL_UID"), n("LOCAL_GID"))
    }

    pub fn store(&self) -> Store {
        Store::open(&self.dir.path().join("templates")).unwrap()
    }

    /// Run every later vzctl in the network namespace at `path` (joined
    /// with `nsenter --net`, which leaves the mount namespace alone).
    pub fn set_netns(&mut self, path: PathBuf) {
        self.netns = Some(path);
    }

    /// The real binary's `vzctl` with this host's roots.
    pub fn vzctl(&self, args: &[&str]) -> Output {
        self.vzctl_command(args).output().expect("run vzctl")
    }

    /// The command `vzctl` above runs, to start it in the background.
    pub fn vzctl_command(&self, args: &[&str]) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display()))
                    .arg("--")
                    .arg(vzpkg_bin());
                c
            }
            None => Command::new(vzpkg_bin()),
        };
        cmd.arg("vzctl")
            .args(args)
            .env("VZ_ROOT", self.vz())
            .env("VZPKG_ROOT", self.root())
            .env("VZ_CGROUP_PARENT", &self.cgroup_parent);
        cmd
    }

    /// The cgroup parent this host's VPSs live under.
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// Every directory of VPS `id`'s cgroup (or under the parent, with
    /// `None`) that exists on this machine's cgroup mounts.
    pub fn cgroup_dirs(&self, id: Option<&str>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for root in cgroup_roots() {
            let mut d = root.join(&self.cgroup_parent);
            if let Some(id) = id {
                d.push(id);
            }
            if d.is_dir() {
                out.push(d);
            }
        }
        out
    }

    /// Run vzctl and insist on `code`; its stdout.
    pub fn ok(&self, args: &[&str], code: i32) -> String {
        let out = self.vzctl(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "vzctl {args:?}: {}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The pid of the simfs process serving VPS `id`, if one was started.
    pub fn simfs_pid(&self, id: &str) -> Option<i32> {
        std::fs::read_to_string(self.vz().join(format!("run/{id}.simfs.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl VzHost {
    /// The VPS's devices cgroup (v1), as vzctl names it for this host.
    pub fn devices_cgroup(&self, id: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup/devices")
            .join(&self.cgroup_parent)
            .join(id)
    }

    /// Remove this host's cgroup parent (and any VPS cgroup left in it) in
    /// every hierarchy.
    fn remove_cgroups(&self) {
        for d in self.cgroup_dirs(None) {
            if let Ok(kids) = std::fs::read_dir(&d) {
                for k in kids.flatten() {
                    if k.path().is_dir() {
                        let _ = std::fs::remove_dir(k.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(&d);
        }
    }
}

/// The mount points of the machine's cgroup file systems.
pub fn cgroup_roots() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fs = right.split(' ').next()?;
            let at = left.split(' ').nth(4)?;
            (fs == "cgroup" || fs == "cgroup2").then(|| PathBuf::from(at))
        })
        .collect()
}

impl Drop for VzHost {
    fn drop(&mut self) {
        self.stop_all();
        self.remove_cgroups();
    }
}

impl VzHost {
    fn stop_all(&self) {
        let Ok(rd) = std::fs::read_dir(self.vz().join("conf")) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".conf") else {
                continue;
            };
            let _ = self.vzctl(&["stop", id, "--fast"]);
            let _ = self.vzctl(&["umount", id]);
            if let Some(pid) = self.simfs_pid(id) {
                // SAFETY: a signal to a pid this host's vzctl started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let root = self.vz().join("root").join(id);
            let mnt = self.vz().join("mnt").join(id);
            for p in [root, mnt] {
                if let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) {
                    // SAFETY: a plain umount2 on a path this host made.
                    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                }
            }
        }
    }
}

fn copy_in(root: &Path, from: &Path, at: &Path) {
    let dest = root.join(at.strip_prefix("/").unwrap());
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(from, &dest).unwrap();
}

/// Write template `t`'s tree into `dir` (None, with the reason on stderr, when
/// the host lacks one of its tools).
pub fn template_tree(dir: &Path, t: &Template) -> Option<()> {
    for tool in t.tools {
        let found = ["/bin", "/usr/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists());
        let Some(host) = found.and_then(|p| std::fs::canonicalize(p).ok()) else {
            eprintln!("skipped: the host has no {tool} to put into the test template");
            return None;
        };
        for lib in shared_libraries(&host) {
            copy_in(dir, &lib, &lib);
        }
        copy_in(dir, &host, &Path::new("/bin").join(tool));
    }
    for (path, content) in t.files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    if let Some(script) = t.init {
        let p = dir.join("sbin/init");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    Some(())
}
