//! Real RPM packages for tests of the rpm side, made with the `rpm` crate's
//! builder.
//!
//! [`host_rpm_package`] carries the host's `rpm` (binaries, its config and
//! macro directory, every shared library they load) plus a `/bin/sh` and a
//! minimal `/etc/passwd`/`group`, so a tree unpacked only from packages has a
//! working rpm and shell; [`host_shell_package`] is the same without rpm.
//! [`RpmFixture`] builds small packages with files and scriptlets.

use rpm::{Dependency, DependencyFlags, FileOptions, PackageBuilder, Scriptlet};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Name of the package [`host_rpm_package`] builds.
pub const HOST_RPM_PACKAGE: &str = "vzpkg-host-rpm";

/// Where the fixture's rpm keeps its database. Debian's rpm defaults to
/// `~/.rpmdb` (computed with bash, which the tree lacks); RPM distributions
/// use this path, so the fixture's `/etc/rpm/macros` sets it.
pub const DBPATH: &str = "/var/lib/rpm";

fn host_eval(expr: &str) -> Result<String, String> {
    let out = Command::new("rpm")
        .args(["--eval", expr])
        .output()
        .map_err(|e| format!("the host has no usable `rpm` program ({e}); install rpm"))?;
    if !out.status.success() {
        return Err(format!("`rpm --eval {expr}` failed on the host"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Shared libraries `ldd` lists for `binary` (absolute paths as the host
/// loader finds them, the loader itself included).
fn libraries(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| format!("`ldd` is missing ({e}); cannot find the libraries of {binary:?}"))?;
    if !out.status.success() {
        return Err(format!("`ldd {}` failed", binary.display()));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .collect())
}

/// What goes into the package: a host file, a symlink, a directory or text.
enum Entry {
    Host(PathBuf),
    Link(String),
    Dir(u16),
    Text(String, u16),
}

fn walk(host_dir: &Path, at: &str, out: &mut BTreeMap<String, Entry>) -> Result<(), String> {
    let entries = std::fs::read_dir(host_dir).map_err(|e| format!("reading {host_dir:?}: {e}"))?;
    out.insert(at.to_string(), Entry::Dir(0o755));
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading {host_dir:?}: {e}"))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let dest = format!("{at}/{name}");
        let kind = entry
            .file_type()
            .map_err(|e| format!("reading {path:?}: {e}"))?;
        if kind.is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| format!("{path:?}: {e}"))?;
            out.insert(dest, Entry::Link(target.to_string_lossy().into_owned()));
        } else if kind.is_dir() {
            walk(&path, &dest, out)?;
        } else if kind.is_file() {
            out.insert(dest, Entry::Host(path));
        }
    }
    Ok(())
}

/// Name of the package [`host_shell_package`] builds.
pub const HOST_SHELL_PACKAGE: &str = "vzpkg-host-shell";

/// Build the package carrying the host's rpm into `dir`. `Err` says what the
/// host lacks (the caller skips its test with that message).
pub fn host_rpm_package(dir: &Path) -> Result<PathBuf, String> {
    host_package(dir, true)
}

/// The same without rpm: a shell and `/etc/passwd`, for a package set
/// that has no rpm of its own.
pub fn host_shell_package(dir: &Path) -> Result<PathBuf, String> {
    host_package(dir, false)
}

fn host_package(dir: &Path, with_rpm: bool) -> Result<PathBuf, String> {
    let mut files: BTreeMap<String, Entry> = BTreeMap::new();
    let mut binaries = Vec::new();
    for b in ["/usr/bin/rpm", "/usr/bin/rpmdb"] {
        let p = Path::new(b);
        if with_rpm && p.is_file() {
            binaries.push((p.to_path_buf(), b.to_string()));
        }
    }
    if with_rpm && binaries.is_empty() {
        return Err("the host has no /usr/bin/rpm; install the rpm package".into());
    }
    let sh = std::fs::canonicalize("/bin/sh")
        .map_err(|e| format!("the host has no /bin/sh to put in the package: {e}"))?;
    binaries.push((sh, "/bin/sh".to_string()));
    for (host, dest) in &binaries {
        for lib in libraries(host)? {
            let dest = lib.to_string_lossy().into_owned();
            files.insert(dest, Entry::Host(lib));
        }
        files.insert(dest.clone(), Entry::Host(host.clone()));
    }
    if with_rpm {
        add_rpm_config(&mut files)?;
    }
    files.insert(
        "/etc/passwd".into(),
        Entry::Text("root:x:0:0:root:/root:/bin/sh\n".into(), 0o644),
    );
    files.insert(
        "/etc/group".into(),
        Entry::Text("root:x:0:\n".into(), 0o644),
    );
    files.insert("/var/tmp".into(), Entry::Dir(0o1777));
    files.insert("/tmp".into(), Entry::Dir(0o1777));
    files.insert("/root".into(), Entry::Dir(0o700));

    let (name, summary) = if with_rpm {
        (HOST_RPM_PACKAGE, "the host's rpm and shell, for tests")
    } else {
        (HOST_SHELL_PACKAGE, "the host's shell, for tests")
    };
    let version = if with_rpm {
        host_rpm_version()
    } else {
        "1".into()
    };
    let mut b = PackageBuilder::new(name, &version, "GPL-2.0-or-later", "noarch", summary);
    b.release("1");
    for (dest, entry) in &files {
        let added = match entry {
            Entry::Host(src) => b.with_file(src, FileOptions::new(dest.clone())),
            Entry::Link(target) => b.with_symlink(FileOptions::symlink(dest.clone(), target)),
            Entry::Dir(mode) => b.with_dir_entry(FileOptions::dir(dest.clone()).permissions(*mode)),
            Entry::Text(text, mode) => b.with_file_contents(
                text.clone(),
                FileOptions::new(dest.clone()).permissions(*mode),
            ),
        };
        added.map_err(|e| format!("adding {dest} to the host package: {e}"))?;
    }
    let pkg = b
        .build()
        .map_err(|e| format!("building the host package: {e}"))?;
    let file = dir.join(format!("{name}.rpm"));
    pkg.write_file(&file)
        .map_err(|e| format!("writing {file:?}: {e}"))?;
    Ok(file)
}

/// rpm's config and macro directory, and the fixture's own macros.
fn add_rpm_config(files: &mut BTreeMap<String, Entry>) -> Result<(), String> {
    let configdir = host_eval("%{_rpmconfigdir}")?;
    if !configdir.starts_with('/') || !Path::new(&configdir).is_dir() {
        return Err(format!(
            "the host rpm's config directory {configdir:?} is missing"
        ));
    }
    walk(Path::new(&configdir), &configdir, files)?;
    let backend = host_eval("%{_db_backend}")?;
    // Overrides read after the config directory's macros.
    files.insert(
        "/etc/rpm/macros".into(),
        Entry::Text(
            format!("%_dbpath {DBPATH}\n%_db_backend {backend}\n"),
            0o644,
        ),
    );
    files.insert(DBPATH.into(), Entry::Dir(0o755));
    Ok(())
}

/// `RPM version 4.18.0`: the package carries that version.
fn host_rpm_version() -> String {
    Command::new("rpm")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split_whitespace().last().map(str::to_string)
        })
        .filter(|v| v.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'))
        .unwrap_or_else(|| "1".into())
}

/// Which scriptlet [`RpmFixture::script`] sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    PreTrans,
    Pre,
    Post,
    PostTrans,
}

/// A small noarch test package: one file `/usr/share/NAME/README` plus
/// whatever is added.
pub struct RpmFixture {
    name: String,
    builder: PackageBuilder,
}

impl RpmFixture {
    pub fn new(name: &str, version: &str) -> RpmFixture {
        let mut builder = PackageBuilder::new(name, version, "MIT", "noarch", "test package");
        builder.release("1");
        let fixture = RpmFixture {
            name: name.to_string(),
            builder,
        };
        fixture.file(
            &format!("/usr/share/{name}/README"),
            &format!("{name} {version}\n"),
        )
    }

    /// A regular file, mode 0644, owned by root.
    pub fn file(mut self, path: &str, contents: &str) -> RpmFixture {
        self.builder
            .with_file_contents(
                contents.to_string(),
                FileOptions::new(path).permissions(0o644),
            )
            .expect("the builder takes a plain file");
        self
    }

    /// A regular file with these permissions, owned by user and group
    /// names (which the tree may only know once a scriptlet adds them).
    pub fn file_owned(
        mut self,
        path: &str,
        contents: &str,
        permissions: u16,
        user: &str,
        group: &str,
    ) -> RpmFixture {
        self.builder
            .with_file_contents(
                contents.to_string(),
                FileOptions::new(path)
                    .permissions(permissions)
                    .user(user)
                    .group(group),
            )
            .expect("the builder takes a plain file");
        self
    }

    /// `Requires: name` (any version), or `name >= version`.
    pub fn requires(mut self, name: &str, at_least: Option<&str>) -> RpmFixture {
        let dep = match at_least {
            Some(v) => Dependency::greater_eq(name, v),
            None => Dependency::any(name),
        };
        self.builder.requires(dep);
        self
    }

    /// `Provides: name` (unversioned).
    pub fn provides(mut self, name: &str) -> RpmFixture {
        self.builder.provides(Dependency::any(name));
        self
    }

    /// Write the package as `FILE_STEM.rpm` (for two versions of one name).
    pub fn write_as(mut self, dir: &Path, file_stem: &str) -> PathBuf {
        let pkg = self.builder.build().expect("the test package builds");
        let file = dir.join(format!("{file_stem}.rpm"));
        pkg.write_file(&file).expect("the test package is written");
        file
    }

    /// A shell scriptlet (`/bin/sh`).
    pub fn script(self, which: Script, body: &str) -> RpmFixture {
        self.script_with(which, body, &[])
    }

    /// A scriptlet with an interpreter (`-p PROGRAM`), e.g. `["<lua>"]`;
    /// empty means the default shell.
    pub fn script_with(mut self, which: Script, body: &str, interpreter: &[&str]) -> RpmFixture {
        let mut s = Scriptlet::new(body);
        if !interpreter.is_empty() {
            s = s.prog(interpreter.to_vec());
        }
        match which {
            Script::PreTrans => self.builder.pre_trans_script(s),
            Script::Pre => self.builder.pre_install_script(s),
            Script::Post => self.builder.post_install_script(s),
            Script::PostTrans => self.builder.post_trans_script(s),
        };
        self
    }

    /// `%triggerin -- target` with a shell body.
    pub fn trigger_in(mut self, target: &str, body: &str) -> RpmFixture {
        self.builder.trigger_in(
            target,
            None::<(DependencyFlags, &str)>,
            Scriptlet::new(body),
        );
        self
    }

    /// Write `NAME.rpm` into `dir`.
    pub fn write(mut self, dir: &Path) -> PathBuf {
        let pkg = self.builder.build().expect("the test package builds");
        let file = dir.join(format!("{}.rpm", self.name));
        pkg.write_file(&file).expect("the test package is written");
        file
    }
}
