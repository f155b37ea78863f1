//! Debian: `preinst install` then `postinst configure` for every package in
//! dependency order, then the dpkg status marked `install ok installed`,
//! then interested packages' `postinst triggered`, then the recipe's commands.
//! Everything runs inside [`Sandbox`] with a `policy-rc.d` that forbids
//! starting services.

use super::common::{self, exit_text, Failure, TAIL_LINES};
use crate::cancel::Cancelled;
use crate::control::{parse_paragraphs, ControlError, Paragraph};
use crate::package::DebPackage;
use crate::progress::{Reporter, Stage};
use crate::sandbox::{RunOptions, Sandbox, SandboxError, DEFAULT_PATH};
use crate::unpack::deb::info_name;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub use super::common::ConfigureOptions;

const POLICY_RC_D: &str = "usr/sbin/policy-rc.d";
const ADMINDIR: &str = "var/lib/dpkg";

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigureError {
    #[error("package {package}: maintainer script `{script}` failed ({}); last output:\n{output_tail}\nThe package cannot be configured in this tree: check the recipe's package set and exclude list (a missing dependency or an excluded package is the usual cause)", exit_text(*.code))]
    Script {
        package: String,
        /// The script and its arguments, e.g. `postinst configure`.
        script: String,
        /// Exit code, `None` if it was killed by a signal.
        code: Option<i32>,
        output_tail: String,
    },
    #[error("recipe post command `{command}` failed ({}); last output:\n{output_tail}\nFix or remove the command in the recipe's post_commands", exit_text(*.code))]
    PostCommand {
        command: String,
        code: Option<i32>,
        output_tail: String,
    },
    #[error("package {package}: could not run maintainer script `{script}`: {source}")]
    Sandbox {
        package: String,
        script: String,
        #[source]
        source: Box<SandboxError>,
    },
    #[error("recipe post command `{command}`: {source}")]
    PostCommandSandbox {
        command: String,
        #[source]
        source: Box<SandboxError>,
    },
    #[error("package {package} is not in {path}; the unpack stage records every package it unpacks, so rebuild from scratch")]
    NotInStatus { package: String, path: PathBuf },
    #[error(
        "{path}: {source}; the dpkg database in the staging tree is damaged, rebuild from scratch"
    )]
    BadStatus {
        path: PathBuf,
        #[source]
        source: ControlError,
    },
    #[error("{action} {path}: {source}; check that the staging tree is writable and the disk is not full")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
}

impl ConfigureError {
    /// True when the tree's file system ran out of space (an I/O error says
    /// so, or a failing script printed it).
    pub fn is_disk_full(&self) -> bool {
        match self {
            ConfigureError::Script { output_tail, .. }
            | ConfigureError::PostCommand { output_tail, .. } => {
                common::output_is_disk_full(output_tail)
            }
            ConfigureError::Sandbox { source, .. }
            | ConfigureError::PostCommandSandbox { source, .. } => source.is_disk_full(),
            ConfigureError::Io { source, .. } => common::io_is_disk_full(source),
            _ => false,
        }
    }
}

common::impl_failure!(ConfigureError);

/// `order` is the resolver's install order.
pub fn configure(
    root: &Path,
    order: &[DebPackage],
    options: &ConfigureOptions,
    reporter: &dyn Reporter,
) -> Result<(), ConfigureError> {
    let info = root.join(ADMINDIR).join("info");
    let mut status = StatusDb::load(root)?;
    for pkg in order {
        if status.find(pkg).is_none() {
            return Err(ConfigureError::NotInStatus {
                package: pkg.name.clone(),
                path: status.path.clone(),
            });
        }
    }
    let interests = read_interests(&info, order)?;
    let script = |pkg: &DebPackage, name: &str| info.join(format!("{}.{name}", info_name(pkg)));
    let preinsts = order.iter().filter(|p| script(p, "preinst").is_file());
    let triggered = interests
        .iter()
        .filter(|(p, _)| script(p, "postinst").is_file())
        .count();
    let total = preinsts.count() + order.len() + triggered + options.post_commands.len();
    reporter.stage_start(Stage::Configure, total as u64);

    let mut env = base_env();
    if let Some(v) = status.dpkg_version() {
        env.push(("DPKG_RUNNING_VERSION".into(), v));
    }
    let sandbox = common::sandbox(root, options, env);

    let _policy = PolicyRcD::install(root)?;

    // A: preinst install.
    for pkg in order {
        let path = script(pkg, "preinst");
        if path.is_file() {
            crate::cancel::check()?;
            run_script(&sandbox, root, pkg, "preinst", &path, &["install"])?;
            reporter.advance(Stage::Configure, 1, &pkg.name);
        }
    }
    // B: postinst configure. Each script sees every package before it
    // installed; the database is written only when a script is about to
    // look, not once per package.
    for pkg in order {
        let path = script(pkg, "postinst");
        if path.is_file() {
            crate::cancel::check()?;
            status.save_if_changed()?;
            run_script(&sandbox, root, pkg, "postinst", &path, &["configure", ""])?;
        }
        status.mark_installed(pkg)?;
        reporter.advance(Stage::Configure, 1, &pkg.name);
    }
    status.save_if_changed()?;
    // C: triggers.
    write_trigger_db(root, &interests)?;
    for (pkg, names) in &interests {
        let path = script(pkg, "postinst");
        if path.is_file() {
            crate::cancel::check()?;
            let joined = trigger_names(names);
            run_script(
                &sandbox,
                root,
                pkg,
                "postinst",
                &path,
                &["triggered", &joined],
            )?;
            reporter.advance(Stage::Configure, 1, &pkg.name);
        }
    }
    // D: the recipe's commands.
    common::run_post_commands::<ConfigureError>(&sandbox, &options.post_commands, reporter)?;
    reporter.stage_end(Stage::Configure);
    Ok(())
}

fn base_env() -> Vec<(String, String)> {
    common::env(&[
        ("PATH", DEFAULT_PATH),
        ("DEBIAN_FRONTEND", "noninteractive"),
        ("DEBCONF_NONINTERACTIVE_SEEN", "true"),
        ("LC_ALL", "C"),
        ("HOME", "/root"),
        ("DPKG_ADMINDIR", "/var/lib/dpkg"),
        ("DPKG_ROOT", ""),
    ])
}

fn run_script(
    sandbox: &Sandbox,
    root: &Path,
    pkg: &DebPackage,
    name: &str,
    path: &Path,
    args: &[&str],
) -> Result<(), ConfigureError> {
    let shown = format!("{name} {}", args.join(" ")).trim_end().to_string();
    ensure_executable(path)?;
    let inside = Path::new("/").join(path.strip_prefix(root).unwrap_or(path));
    let mut argv = vec![inside.to_string_lossy().into_owned()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let opts = RunOptions {
        extra_env: vec![
            ("DPKG_MAINTSCRIPT_PACKAGE".into(), pkg.name.clone()),
            ("DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT".into(), "1".into()),
            ("DPKG_MAINTSCRIPT_ARCH".into(), pkg.architecture.clone()),
            ("DPKG_MAINTSCRIPT_NAME".into(), name.into()),
        ],
        ..Default::default()
    };
    let out = sandbox
        .run(&argv, &opts)
        .map_err(|source| ConfigureError::Sandbox {
            package: pkg.name.clone(),
            script: shown.clone(),
            source: Box::new(source),
        })?;
    if out.success() {
        return Ok(());
    }
    // A script killed by Ctrl-C is a cancellation, not a broken package.
    crate::cancel::check()?;
    Err(ConfigureError::Script {
        package: pkg.name.clone(),
        script: shown,
        code: out.status.code(),
        output_tail: out.tail(TAIL_LINES),
    })
}

/// Control members are normally 0755; a tree unpacked without modes still
/// has to be able to run them, as dpkg would.
fn ensure_executable(path: &Path) -> Result<(), ConfigureError> {
    let meta = std::fs::metadata(path).map_err(ConfigureError::io_err("reading", path))?;
    let mode = meta.permissions().mode();
    if mode & 0o111 == 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o755))
            .map_err(ConfigureError::io_err("making executable", path))?;
    }
    Ok(())
}

/// `var/lib/dpkg/status`, kept parsed and rewritten whole when it changed.
struct StatusDb {
    path: PathBuf,
    paragraphs: Vec<Paragraph>,
    /// Changed since it was read or last written.
    changed: bool,
}

impl StatusDb {
    fn load(root: &Path) -> Result<StatusDb, ConfigureError> {
        let path = root.join(ADMINDIR).join("status");
        let text =
            std::fs::read_to_string(&path).map_err(ConfigureError::io_err("reading", &path))?;
        let paragraphs = parse_paragraphs(&text).map_err(|source| ConfigureError::BadStatus {
            path: path.clone(),
            source,
        })?;
        Ok(StatusDb {
            path,
            paragraphs,
            changed: false,
        })
    }

    fn find(&self, pkg: &DebPackage) -> Option<usize> {
        self.paragraphs.iter().position(|p| {
            p.get("Package") == Some(pkg.name.as_str())
                && p.get("Architecture")
                    .is_none_or(|a| a == pkg.architecture || a == "all")
        })
    }

    fn dpkg_version(&self) -> Option<String> {
        self.paragraphs
            .iter()
            .find(|p| p.get("Package") == Some("dpkg"))
            .and_then(|p| p.get("Version"))
            .map(str::to_string)
    }

    fn mark_installed(&mut self, pkg: &DebPackage) -> Result<(), ConfigureError> {
        let Some(i) = self.find(pkg) else {
            return Err(ConfigureError::NotInStatus {
                package: pkg.name.clone(),
                path: self.path.clone(),
            });
        };
        self.paragraphs[i].set("Status", "install ok installed");
        self.changed = true;
        Ok(())
    }

    /// Write to a temporary name and rename over, so a reader (or a crash)
    /// sees either the old or the new database. No fsync: a staging tree is
    /// discarded after a crash anyway.
    fn save_if_changed(&mut self) -> Result<(), ConfigureError> {
        if !self.changed {
            return Ok(());
        }
        let mut text = String::new();
        // Each paragraph followed by a blank line, as dpkg writes it.
        for p in &self.paragraphs {
            text.push_str(&p.render());
            text.push('\n');
        }
        write_replace(&self.path, text.as_bytes())?;
        self.changed = false;
        Ok(())
    }
}

fn write_replace(path: &Path, data: &[u8]) -> Result<(), ConfigureError> {
    let tmp = path.with_extension("vzpkg-new");
    let io_err = ConfigureError::io_err;
    let mut f = std::fs::File::create(&tmp).map_err(io_err("creating", &tmp))?;
    f.write_all(data).map_err(io_err("writing", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io_err("replacing", path))
}

/// Every package's trigger interests (`interest`, `interest-await`,
/// `interest-noawait`) in install order; packages without any are left out.
/// Each name keeps a `/noawait` suffix where dpkg's `triggers/File` has one.
fn read_interests<'a>(
    info: &Path,
    order: &'a [DebPackage],
) -> Result<Vec<(&'a DebPackage, Vec<Interest>)>, ConfigureError> {
    let mut out = Vec::new();
    for pkg in order {
        let path = info.join(format!("{}.triggers", info_name(pkg)));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(ConfigureError::Io {
                    action: "reading",
                    path,
                    source,
                })
            }
        };
        let mut names = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(kind), Some(name)) = (words.next(), words.next()) else {
                continue;
            };
            let noawait = match kind {
                "interest" | "interest-await" => false,
                "interest-noawait" => true,
                _ => continue,
            };
            if !names.iter().any(|i: &Interest| i.name == name) {
                names.push(Interest {
                    name: name.to_string(),
                    noawait,
                });
            }
        }
        if !names.is_empty() {
            out.push((pkg, names));
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
struct Interest {
    name: String,
    noawait: bool,
}

/// The space-separated trigger names `postinst triggered` gets.
fn trigger_names(interests: &[Interest]) -> String {
    interests
        .iter()
        .map(|i| i.name.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The trigger interest database as dpkg leaves it after processing
/// everything: file triggers in `triggers/File` (`PATH PACKAGE[/noawait]` per
/// line), each named trigger in its own `triggers/NAME` listing the
/// interested packages, and an empty `triggers/Unincorp`.
fn write_trigger_db(
    root: &Path,
    interests: &[(&DebPackage, Vec<Interest>)],
) -> Result<(), ConfigureError> {
    let dir = root.join(ADMINDIR).join("triggers");
    std::fs::create_dir_all(&dir).map_err(ConfigureError::io_err("creating", &dir))?;
    let mut file = String::new();
    let mut named: std::collections::BTreeMap<&str, String> = Default::default();
    for (pkg, names) in interests {
        for i in names {
            let suffix = if i.noawait { "/noawait" } else { "" };
            let line = format!("{}{suffix}\n", info_name(pkg));
            if i.name.starts_with('/') {
                file.push_str(&format!("{} {line}", i.name));
            } else if !i.name.contains('/') && !i.name.starts_with('.') {
                named.entry(i.name.as_str()).or_default().push_str(&line);
            }
        }
    }
    write_replace(&dir.join("File"), file.as_bytes())?;
    for (name, packages) in named {
        write_replace(&dir.join(name), packages.as_bytes())?;
    }
    write_replace(&dir.join("Unincorp"), b"")
}

/// `usr/sbin/policy-rc.d` answering 101 ("action forbidden") while scripts
/// run; the tree's own copy, if any, is put back on drop.
struct PolicyRcD {
    path: PathBuf,
    saved: Option<PathBuf>,
}

impl PolicyRcD {
    fn install(root: &Path) -> Result<PolicyRcD, ConfigureError> {
        let path = root.join(POLICY_RC_D);
        let io_err = ConfigureError::io_err;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
        }
        let mut saved = None;
        if std::fs::symlink_metadata(&path).is_ok() {
            let keep = path.with_extension("vzpkg-saved");
            std::fs::rename(&path, &keep).map_err(io_err("moving aside", &path))?;
            saved = Some(keep);
        }
        let guard = PolicyRcD { path, saved };
        std::fs::write(&guard.path, "#!/bin/sh\nexit 101\n")
            .map_err(io_err("writing", &guard.path))?;
        std::fs::set_permissions(&guard.path, std::fs::Permissions::from_mode(0o755))
            .map_err(io_err("setting the mode of", &guard.path))?;
        Ok(guard)
    }
}

impl Drop for PolicyRcD {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(saved) = &self.saved {
            let _ = std::fs::rename(saved, &self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use crate::sandbox::testtree;

    fn pkg(name: &str) -> DebPackage {
        let mut control = Paragraph::default();
        control.set("Package", name);
        DebPackage {
            name: name.into(),
            version: "1.0".into(),
            architecture: "amd64".into(),
            filename: format!("pool/{name}.deb"),
            size: 0,
            sha256: String::new(),
            control,
        }
    }

    /// A dpkg database with `names` unpacked plus an installed dpkg 1.21.22.
    fn write_db(root: &Path, names: &[&str]) {
        let info = root.join("var/lib/dpkg/info");
        std::fs::create_dir_all(&info).unwrap();
        let mut status = String::from(
            "Package: dpkg\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.21.22\n",
        );
        for n in names {
            status.push_str(&format!(
                "\nPackage: {n}\nStatus: install ok unpacked\nArchitecture: amd64\nVersion: 1.0\nDescription: test\n two lines\n"
            ));
        }
        std::fs::write(root.join("var/lib/dpkg/status"), status).unwrap();
    }

    /// A sandbox tree holding [`write_db`]'s database; `None` where the
    /// host cannot build one.
    fn db_tree(names: &[&str]) -> Option<tempfile::TempDir> {
        let tree = testtree::minimal_tree()?;
        write_db(tree.path(), names);
        Some(tree)
    }

    fn script(root: &Path, stem_and_name: &str, body: &str) {
        let p = root.join("var/lib/dpkg/info").join(stem_and_name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    const LOG: &str = "echo \"$DPKG_MAINTSCRIPT_PACKAGE $DPKG_MAINTSCRIPT_NAME $1 [$2]\" >> /log";

    fn statuses(root: &Path) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
        parse_paragraphs(&text)
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p.get("Package").unwrap().to_string(),
                    p.get("Status").unwrap().to_string(),
                )
            })
            .collect()
    }

    fn read(root: &Path, rel: &str) -> String {
        std::fs::read_to_string(root.join(rel)).unwrap()
    }

    #[test]
    fn info_stem_uses_arch_for_multi_arch_same() {
        let mut p = pkg("libc6");
        assert_eq!(info_name(&p), "libc6");
        p.control.set("Multi-Arch", "same");
        assert_eq!(info_name(&p), "libc6:amd64");
    }

    #[test]
    fn scripts_run_in_order_and_status_is_installed() {
        let Some(tree) = db_tree(&["a", "b"]) else {
            return;
        };
        let root = tree.path();
        script(root, "a.preinst", LOG);
        script(root, "a.postinst", LOG);
        script(
            root,
            "b.postinst",
            &format!(
                "{LOG}\n/usr/sbin/policy-rc.d; echo \"policy $?\" >> /log\n\
                 echo \"$DPKG_RUNNING_VERSION $DEBIAN_FRONTEND $LC_ALL $HOME [$DPKG_ROOT] $DPKG_ADMINDIR $DPKG_MAINTSCRIPT_ARCH\" >> /log\n\
                 read h < /proc/sys/kernel/hostname; echo \"host $h\" >> /log"
            ),
        );
        let opts = ConfigureOptions {
            post_commands: vec!["echo post >> /log".into()],
            hostname: "tmpl".into(),
            source_date_epoch: None,
        };
        configure(root, &[pkg("a"), pkg("b")], &opts, &Silent).unwrap();
        assert_eq!(
            read(root, "log"),
            "a preinst install []\n\
             a postinst configure []\n\
             b postinst configure []\n\
             policy 101\n\
             1.21.22 noninteractive C /root [] /var/lib/dpkg amd64\n\
             host tmpl\n\
             post\n"
        );
        assert_eq!(
            statuses(root),
            [
                ("dpkg".to_string(), "install ok installed".to_string()),
                ("a".into(), "install ok installed".into()),
                ("b".into(), "install ok installed".into()),
            ]
        );
        // Continuation lines survive the rewrite.
        assert!(read(root, "var/lib/dpkg/status").contains("Description: test\n two lines\n"));
        assert!(!root.join(POLICY_RC_D).exists());
        assert_eq!(read(root, "var/lib/dpkg/triggers/File"), "");
        assert_eq!(read(root, "var/lib/dpkg/triggers/Unincorp"), "");
    }

    #[test]
    fn trigger_interests_are_recorded_and_run_once() {
        let Some(tree) = db_tree(&["a", "libc-bin"]) else {
            return;
        };
        let root = tree.path();
        script(root, "a.postinst", LOG);
        script(root, "libc-bin.postinst", LOG);
        std::fs::write(
            root.join("var/lib/dpkg/info/libc-bin.triggers"),
            "# comment\ninterest-noawait ldconfig\ninterest /usr/lib/x\nactivate-noawait other\n",
        )
        .unwrap();
        // A policy-rc.d the tree already had comes back afterwards.
        std::fs::create_dir_all(root.join("usr/sbin")).unwrap();
        std::fs::write(root.join(POLICY_RC_D), "mine").unwrap();
        configure(
            root,
            &[pkg("a"), pkg("libc-bin")],
            &ConfigureOptions::default(),
            &Silent,
        )
        .unwrap();
        assert_eq!(
            read(root, "log"),
            "a postinst configure []\n\
             libc-bin postinst configure []\n\
             libc-bin postinst triggered [ldconfig /usr/lib/x]\n"
        );
        // File triggers in File, named ones in a file of their own.
        assert_eq!(
            read(root, "var/lib/dpkg/triggers/File"),
            "/usr/lib/x libc-bin\n"
        );
        assert_eq!(
            read(root, "var/lib/dpkg/triggers/ldconfig"),
            "libc-bin/noawait\n"
        );
        assert_eq!(read(root, POLICY_RC_D), "mine");
    }

    #[test]
    fn failing_postinst_names_package_and_leaves_it_unpacked() {
        let Some(tree) = db_tree(&["a", "b", "c"]) else {
            return;
        };
        let root = tree.path();
        script(root, "a.postinst", LOG);
        script(root, "b.postinst", "echo starting; echo boom >&2; exit 3");
        script(root, "c.postinst", LOG);
        let err = configure(
            root,
            &[pkg("a"), pkg("b"), pkg("c")],
            &ConfigureOptions::default(),
            &Silent,
        )
        .unwrap_err();
        match &err {
            ConfigureError::Script {
                package,
                script,
                code,
                output_tail,
            } => {
                assert_eq!(package, "b");
                assert_eq!(script, "postinst configure");
                assert_eq!(*code, Some(3));
                assert_eq!(output_tail, "starting\nboom");
            }
            other => panic!("unexpected error: {other}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("package b") && msg.contains("exclude list"),
            "{msg}"
        );
        assert!(!err.is_disk_full());
        assert_eq!(
            statuses(root)[1..],
            [
                ("a".to_string(), "install ok installed".to_string()),
                ("b".into(), "install ok unpacked".into()),
                ("c".into(), "install ok unpacked".into()),
            ]
        );
        assert_eq!(read(root, "log"), "a postinst configure []\n");
        assert!(!root.join(POLICY_RC_D).exists());
    }

    #[test]
    fn failing_post_command_is_named() {
        let Some(tree) = db_tree(&["a"]) else {
            return;
        };
        let root = tree.path();
        let opts = ConfigureOptions {
            post_commands: vec!["echo hi > /post".into(), "echo bad; exit 4".into()],
            hostname: String::new(),
            source_date_epoch: None,
        };
        let err = configure(root, &[pkg("a")], &opts, &Silent).unwrap_err();
        match &err {
            ConfigureError::PostCommand {
                command,
                code,
                output_tail,
            } => {
                assert_eq!(command, "echo bad; exit 4");
                assert_eq!(*code, Some(4));
                assert_eq!(output_tail, "bad");
            }
            other => panic!("unexpected error: {other}"),
        }
        assert_eq!(read(root, "post"), "hi\n");
        assert_eq!(statuses(root)[1].1, "install ok installed");
    }

    #[test]
    fn package_missing_from_status_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write_db(dir.path(), &["a"]);
        let err = configure(
            dir.path(),
            &[pkg("a"), pkg("zz")],
            &ConfigureOptions::default(),
            &Silent,
        )
        .unwrap_err();
        assert!(
            matches!(&err, ConfigureError::NotInStatus { package, .. } if package == "zz"),
            "{err}"
        );
    }
}
