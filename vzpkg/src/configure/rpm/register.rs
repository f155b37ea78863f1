//! Recording the packages in the tree's rpm database: by the tree's own rpm
//! inside the sandbox, or by the host's from outside ([`HostRpm`]).

use super::{nvr, RpmConfigureError, SubDir, TempArea, BATCH_BYTES, TAIL_LINES};
use crate::configure::common::Failure;
use crate::recipe::RpmDbBackend;
use crate::sandbox::{RunOptions, RunOutput, Sandbox};
use crate::unpack::rpm::RpmUnpacked;
use std::collections::HashSet;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The `.rpm` files copied (or hard-linked) into the tree's temp area, in
/// order: the directory and each file's name in it.
fn stage_packages(
    temp: &TempArea,
    order: &[(RpmUnpacked, PathBuf)],
) -> Result<(SubDir, Vec<String>), RpmConfigureError> {
    let dir = temp.subdir("rpms")?;
    let mut names = Vec::with_capacity(order.len());
    for (i, (_, file)) in order.iter().enumerate() {
        let name = format!("{i:05}.rpm");
        let dest = dir.host.join(&name);
        // A hard link when the cache is on the same file system; rpm only reads it.
        if std::fs::hard_link(file, &dest).is_err() {
            std::fs::copy(file, &dest).map_err(RpmConfigureError::io_err(
                "copying the package into the tree at",
                &dest,
            ))?;
        }
        names.push(name);
    }
    Ok((dir, names))
}

/// Batches of `paths` whose command line stays below [`BATCH_BYTES`], as
/// index ranges.
fn batches(paths: &[String]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < paths.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < paths.len() && (end == start || bytes + paths[end].len() < BATCH_BYTES) {
            bytes += paths[end].len() + 1;
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

/// Every package of `order` must be in rpm's `-qa` listing `text`: a
/// package rpm quietly skipped would otherwise go unnoticed.
fn check_registered(text: &str, order: &[(RpmUnpacked, PathBuf)]) -> Result<(), RpmConfigureError> {
    let listed: HashSet<&str> = text.lines().map(str::trim).collect();
    for (pkg, _) in order {
        if !listed.contains(nvr(pkg).as_str()) {
            return Err(RpmConfigureError::NotRegistered { package: nvr(pkg) });
        }
    }
    Ok(())
}

/// `rpm -i` that records packages in the database and does nothing else:
/// files are unpacked already, dependencies resolved, scriptlets run later.
const RECORD_ONLY: [&str; 6] = [
    "-i",
    "--justdb",
    "--nodeps",
    "--noscripts",
    "--notriggers",
    "--ignoresize",
];

/// Copy the `.rpm` files into the tree and have the tree's rpm record them
/// (headers only: files are unpacked already and scriptlets run later).
pub(super) fn register(
    sandbox: &Sandbox,
    temp: &TempArea,
    rpm: &str,
    order: &[(RpmUnpacked, PathBuf)],
) -> Result<(), RpmConfigureError> {
    let (dir, names) = stage_packages(temp, order)?;
    let inside: Vec<String> = names
        .iter()
        .map(|n| format!("{}/{n}", dir.inside))
        .collect();

    // Old rpm needs it before the first install; newer ones accept it again.
    let initdb = [rpm, "--initdb"];
    let out = run_rpm(sandbox, &initdb, "creating the rpm database")?;
    if !out.success() {
        return Err(RpmConfigureError::InitDb {
            command: initdb.join(" "),
            code: out.status.code(),
            output_tail: out.tail(TAIL_LINES),
        });
    }

    for range in batches(&inside) {
        crate::cancel::check()?;
        let (start, end) = (range.start, range.end);
        // No keys are imported yet: signatures (checked before unpacking)
        // only give warnings here, as with the default verify level.
        let mut argv = vec![rpm];
        argv.extend(RECORD_ONLY);
        argv.extend(inside[start..end].iter().map(String::as_str));
        let out = run_rpm(sandbox, &argv, "registering packages")?;
        if !out.success() {
            crate::cancel::check()?;
            let names: Vec<String> = order[start..end].iter().map(|(p, _)| nvr(p)).collect();
            return Err(RpmConfigureError::Register {
                packages: names.join(", "),
                code: out.status.code(),
                output_tail: out.tail(TAIL_LINES),
            });
        }
    }
    dir.remove()?;

    // Read back: a package rpm quietly skipped would otherwise go unnoticed.
    let query = [rpm, "-qa", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}\\n"];
    let out = run_rpm(sandbox, &query, "querying the rpm database")?;
    if !out.success() {
        return Err(RpmConfigureError::Query {
            command: query.join(" "),
            code: out.status.code(),
            output_tail: out.tail(TAIL_LINES),
        });
    }
    check_registered(&String::from_utf8_lossy(&out.output), order)
}

/// Where a tree registered by the host's rpm gets its database: where the
/// RPM distributions' own rpm looks (Debian's rpm would use `~/.rpmdb`).
pub const HOST_DBPATH: &str = "/var/lib/rpm";

/// The host's rpm, checked able to write the database format the target's
/// rpm reads.
#[derive(Debug, Clone)]
pub struct HostRpm {
    pub program: PathBuf,
    pub backend: RpmDbBackend,
    /// `SOURCE_DATE_EPOCH` for rpm, which takes install times from it, so
    /// the database is the same from build to build.
    pub(super) source_date_epoch: Option<i64>,
}

impl HostRpm {
    /// The host's `rpm` if it can write `backend`; `why` says how the
    /// target's format was told, for the refusal.
    pub fn find(backend: RpmDbBackend, why: &str) -> Result<HostRpm, RpmConfigureError> {
        let program = host_rpm_program().ok_or_else(|| RpmConfigureError::NoHostRpm {
            reason: "no rpm in /usr/bin, /bin or PATH".into(),
        })?;
        let host = HostRpm {
            program,
            backend,
            source_date_epoch: None,
        };
        if !host.can_write()? {
            return Err(RpmConfigureError::HostCannotWrite {
                backend: backend.name(),
                why: why.to_string(),
                host: host.describe(),
            });
        }
        Ok(host)
    }

    /// The arguments every call shares: the tree, the database and its format.
    fn base_args(&self, root: &Path) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec!["--root".into(), root.into()];
        for a in [
            "--dbpath",
            HOST_DBPATH,
            "--define",
            &format!("_db_backend {}", self.backend.name()),
            // The host's plugins (SELinux, systemd inhibit, ...) have no
            // business with a tree being built.
            "--noplugins",
        ] {
            args.push(a.into());
        }
        args
    }

    fn run(&self, args: &[std::ffi::OsString]) -> Result<std::process::Output, RpmConfigureError> {
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(args).env("LC_ALL", "C");
        if let Some(epoch) = self.source_date_epoch {
            cmd.env("SOURCE_DATE_EPOCH", epoch.to_string());
        }
        cmd.output().map_err(|e| RpmConfigureError::NoHostRpm {
            reason: format!("running {}: {e}", self.program.display()),
        })
    }

    /// `rpm --initdb` in a scratch directory: rpm built without a backend
    /// says "invalid %_db_backend" and falls back to a dummy database that
    /// stores nothing, still exiting 0, so the files tell.
    fn can_write(&self) -> Result<bool, RpmConfigureError> {
        let scratch = ScratchDir::create()?;
        let mut args = self.base_args(&scratch.0);
        args.push("--initdb".into());
        let out = self.run(&args)?;
        let said = String::from_utf8_lossy(&out.stderr);
        let db = scratch.0.join(HOST_DBPATH.trim_start_matches('/'));
        let wrote = std::fs::read_dir(&db)
            .map(|d| d.count() > 0)
            .unwrap_or(false);
        Ok(out.status.success()
            && wrote
            && !said.contains("invalid %_db_backend")
            && !said.contains("dummy database"))
    }

    /// `/usr/bin/rpm 4.18.0`, for messages.
    fn describe(&self) -> String {
        let version = self
            .run(&["--version".into()])
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        format!("{}, {version}", self.program.display())
    }

    fn command_text(&self, args: &[std::ffi::OsString]) -> String {
        let mut parts = vec![self.program.display().to_string()];
        parts.extend(args.iter().map(|a| a.to_string_lossy().into_owned()));
        parts.join(" ")
    }

    /// Run rpm; a failure names the command and the output's tail.
    fn run_checked(&self, args: &[std::ffi::OsString]) -> Result<String, RpmConfigureError> {
        let out = self.run(args)?;
        let mut text = out.stdout.clone();
        text.extend_from_slice(&out.stderr);
        if !out.status.success() {
            return Err(RpmConfigureError::HostRpm {
                command: self.command_text(args),
                code: out.status.code(),
                output_tail: crate::sandbox::tail_lines(&text, TAIL_LINES),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A fresh directory under the host's temp directory, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn create() -> Result<ScratchDir, RpmConfigureError> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("vzpkg-rpmdb-probe-{}-{n}", std::process::id()));
        std::fs::create_dir(&path).map_err(RpmConfigureError::io_err("creating", &path))?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `rpm` on the host: the usual places, then `PATH`.
pub(super) fn host_rpm_program() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["/usr/bin", "/bin"]
        .into_iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path))
        .map(|d| d.join("rpm"))
        .find(|p| p.is_file())
}

/// The database directory and each directory above it in the tree must be
/// real directories (made if missing): the host's rpm opens them from the
/// host side, where a symlink in the tree would lead out of it.
pub(super) fn safe_db_dir(root: &Path) -> Result<(), RpmConfigureError> {
    let mut at = root.to_path_buf();
    for part in HOST_DBPATH.trim_start_matches('/').split('/') {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(RpmConfigureError::UnsafeDbPath { path: at }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir(&at).map_err(RpmConfigureError::io_err("creating", &at))?;
                std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o755))
                    .map_err(RpmConfigureError::io_err("setting the mode of", &at))?;
            }
            Err(source) => {
                return Err(RpmConfigureError::Io {
                    action: "inspecting",
                    path: at,
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Have the host's rpm record the packages in the tree's database from
/// outside (headers only, no scriptlets: they run later, inside), then
/// read the database back.
pub(super) fn register_with_host(
    root: &Path,
    temp: &TempArea,
    host: &HostRpm,
    order: &[(RpmUnpacked, PathBuf)],
) -> Result<(), RpmConfigureError> {
    safe_db_dir(root)?;
    let (dir, names) = stage_packages(temp, order)?;
    let files: Vec<String> = names
        .iter()
        .map(|n| dir.host.join(n).to_string_lossy().into_owned())
        .collect();

    let mut initdb = host.base_args(root);
    initdb.push("--initdb".into());
    host.run_checked(&initdb)?;
    for range in batches(&files) {
        crate::cancel::check()?;
        let mut args = host.base_args(root);
        // Signatures were checked before unpacking; the tree has no keys.
        args.push("--nosignature".into());
        args.extend(RECORD_ONLY.map(Into::into));
        args.extend(files[range].iter().map(Into::into));
        host.run_checked(&args)?;
    }
    dir.remove()?;

    let mut query = host.base_args(root);
    for a in ["-qa", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}\n"] {
        query.push(a.into());
    }
    let text = host.run_checked(&query)?;
    check_registered(&text, order)
}

pub(super) fn run_rpm(
    sandbox: &Sandbox,
    argv: &[&str],
    action: &'static str,
) -> Result<RunOutput, RpmConfigureError> {
    sandbox
        .run(argv, &RunOptions::default())
        .map_err(|source| RpmConfigureError::RpmSandbox {
            action,
            source: Box::new(source),
        })
}
