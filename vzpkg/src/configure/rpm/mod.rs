//! RPM: register the unpacked packages in the tree's rpm database, then run
//! their scriptlets as rpm does on a fresh install, then the recipe's
//! commands. Everything runs inside [`Sandbox`] as a build chroot.
//!
//! The database is written by the tree's own `rpm` (`rpm -i --justdb`):
//! only it knows its format (Berkeley DB on old releases, sqlite on new
//! ones). A tree whose package set has no rpm is registered by the host's
//! rpm from outside (`rpm --root TREE --justdb`, as dnf `--installroot`
//! does) in the format the target's rpm expects, when the host's rpm can
//! write that format ([`HostRpm`]); its `<lua>` scriptlets are skipped,
//! having no rpm inside to run them. Scriptlets run in this order: every `%pretrans`, every `%pre`,
//! every `%post` (the files are already unpacked, so all `%pre` can go
//! first; between the two, files whose user or group only a `%pre` adds get
//! them, as `rpm --setugids` would), every `%triggerin` whose condition
//! names a package of the set (once each, after all `%post`, rather than
//! right after its target's), then every `%posttrans`. Each gets the argument `1`, as on a first
//! install. `<lua>` scriptlets are run by the tree's rpm through
//! `rpm --eval '%{lua:...}'`; a tree whose rpm cannot do that skips them
//! with a message. `%triggerprein`, file triggers and the remove-side
//! scriptlets do not run on a fresh install of this kind.

use super::common::{self, exit_text, ConfigureOptions, Failure, TAIL_LINES};
use crate::cancel::Cancelled;
use crate::progress::{Reporter, Stage};
use crate::rpmversion::compare_evr;
use crate::sandbox::{RunOptions, Sandbox, SandboxError, DEFAULT_PATH};
use crate::unpack::rpm::{RpmScript, RpmTrigger, RpmUnpacked, TriggerKind};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use std::cmp::Ordering;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Give files unpacked as root for want of their user or group (see
/// `RpmUnpacked::unresolved`) the owners the tree now knows, as
/// `rpm --setugids` would, and their modes back (a chown clears set-id
/// bits). Names still unknown stay root, with a warning, as rpm does.
fn set_owners(
    root: &Path,
    order: &[(RpmUnpacked, PathBuf)],
    reporter: &dyn Reporter,
) -> Result<(), RpmConfigureError> {
    if order.iter().all(|(p, _)| p.unresolved.is_empty()) {
        return Ok(());
    }
    let owners = crate::unpack::rpm::Owners::load(root);
    let dir = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
        .map_err(|e| owner_err(root, e))?;
    let mut unknown: Vec<String> = Vec::new();
    for (pkg, _) in order {
        for u in &pkg.unresolved {
            let (uid, gid) = (owners.uid(&u.user), owners.gid(&u.group));
            for (known, what, name) in [
                (uid.is_some(), "user", &u.user),
                (gid.is_some(), "group", &u.group),
            ] {
                let w = format!("{what} {name}");
                if !known && !unknown.contains(&w) {
                    unknown.push(w);
                }
            }
            if uid.is_none() && gid.is_none() {
                continue;
            }
            let rel = u.path.trim_start_matches('/');
            let at = root.join(rel);
            // Resolved inside the tree: a symlink in the tree cannot send
            // the change to the host.
            let fd = match rustix::fs::openat2(
                &dir,
                rel,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) {
                Ok(fd) => fd,
                // Removed by a scriptlet since: nothing to own.
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(owner_err(&at, e)),
            };
            rustix::fs::chownat(
                &fd,
                "",
                uid.map(rustix::fs::Uid::from_raw),
                gid.map(rustix::fs::Gid::from_raw),
                AtFlags::EMPTY_PATH,
            )
            .map_err(|e| owner_err(&at, e))?;
            let st = rustix::fs::fstat(&fd).map_err(|e| owner_err(&at, e))?;
            if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Symlink {
                // The fd's own name in /proc: chmod of an O_PATH fd.
                let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
                rustix::fs::chmod(link.as_str(), Mode::from_raw_mode(u.permissions))
                    .map_err(|e| owner_err(&at, e))?;
            }
        }
    }
    if !unknown.is_empty() {
        reporter.warn(&format!(
            "no {} in the tree's /etc/passwd or /etc/group: their files stay owned by root",
            unknown.join(", ")
        ));
    }
    Ok(())
}

fn owner_err(path: &Path, e: rustix::io::Errno) -> RpmConfigureError {
    RpmConfigureError::Owners {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// Where a tree's rpm lives, inside the tree.
const RPM_PROGRAMS: [&str; 2] = ["/usr/bin/rpm", "/bin/rpm"];
/// The `PATH` rpm gives scriptlets (its `%_install_script_path`).
const SCRIPT_PATH: &str = "/sbin:/bin:/usr/sbin:/usr/bin";
/// Our scratch directory's name, under `/var/tmp` of the tree.
const TEMP_NAME: &str = "vzpkg-configure";
/// Bytes of file names per `rpm -i` command line, far below `ARG_MAX`.
const BATCH_BYTES: usize = 64 * 1024;
/// Printed by the Lua wrapper after the scriptlet returned. Built from two
/// halves in the Lua code, so an rpm echoing the macro unexpanded doesn't
/// print it.
const LUA_MARK: &str = "vzpkg-lua-ok";

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RpmConfigureError {
    #[error("tree {root} has no rpm program (looked for {}), so the packages cannot be registered in its rpm database; the package set must include rpm: add it to the recipe", RPM_PROGRAMS.join(" and "))]
    NoRpm { root: PathBuf },
    #[error("the package set has no rpm, so the host's rpm would write the tree's rpm database, but the host has no usable rpm program ({reason}); add rpm to the recipe's package set, or install rpm on the host")]
    NoHostRpm { reason: String },
    #[error("the package set has no rpm, and the target's rpm reads a {backend} database ({why}), which the host's rpm ({host}) cannot write; add rpm to the recipe's package set so that the tree's own rpm writes its database")]
    HostCannotWrite {
        backend: &'static str,
        /// How the target's format was told.
        why: String,
        /// The host rpm's program and version.
        host: String,
    },
    #[error("{path} in the tree is not a plain directory; the host's rpm writes the database below it and would follow it out of the tree: fix the package that ships it, or add rpm to the recipe's package set")]
    UnsafeDbPath { path: PathBuf },
    #[error("`{command}` failed ({}); last output:\n{output_tail}\nThe host's rpm could not write the tree's rpm database: add rpm to the recipe's package set so the tree's own rpm writes it", exit_text(*.code))]
    HostRpm {
        command: String,
        code: Option<i32>,
        output_tail: String,
    },
    #[error("`{command}` failed in the tree ({}); last output:\n{output_tail}\nThe tree's rpm cannot create its database: check that the recipe's package set includes a complete rpm and that the disk is not full", exit_text(*.code))]
    InitDb {
        command: String,
        code: Option<i32>,
        output_tail: String,
    },
    #[error("registering packages {packages} in the tree's rpm database failed ({}); last output:\n{output_tail}\nThe tree's rpm could not read these packages: check that the recipe's repositories belong to the same release as its rpm (an old rpm cannot read newer package formats)", exit_text(*.code))]
    Register {
        /// The packages of the failing batch (name-version-release, comma-separated).
        packages: String,
        code: Option<i32>,
        output_tail: String,
    },
    #[error("querying the tree's rpm database (`{command}`) failed ({}); last output:\n{output_tail}\nThe database was written but cannot be read back: rebuild from scratch", exit_text(*.code))]
    Query {
        command: String,
        code: Option<i32>,
        output_tail: String,
    },
    #[error("package {package} is missing from the tree's rpm database after registering it; the tree's rpm skipped it (an rpm older than the package format?): check the recipe's repositories and rebuild")]
    NotRegistered { package: String },
    #[error("setting the owner of {path} after %pre: {source}")]
    Owners {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{action} in the tree: {source}")]
    RpmSandbox {
        action: &'static str,
        #[source]
        source: Box<SandboxError>,
    },
    #[error("package {package}: scriptlet {scriptlet} failed ({}); last output:\n{output_tail}\nThe package cannot be installed in this tree: check the recipe's package set and exclude list (a missing dependency or an excluded package is the usual cause)", exit_text(*.code))]
    Scriptlet {
        package: String,
        /// `%pre`, `%post`, `%triggerin -- glibc`, ...
        scriptlet: String,
        /// Exit code, `None` if it was killed by a signal.
        code: Option<i32>,
        output_tail: String,
    },
    #[error("package {package}: scriptlet {scriptlet} needs the interpreter {interpreter}, which is not in the tree; add the package providing it to the recipe")]
    MissingInterpreter {
        package: String,
        scriptlet: String,
        interpreter: String,
    },
    #[error("package {package}: could not run scriptlet {scriptlet}: {source}")]
    ScriptletSandbox {
        package: String,
        scriptlet: String,
        #[source]
        source: Box<SandboxError>,
    },
    #[error("recipe post command `{command}` failed ({}); last output:\n{output_tail}\nFix or remove the command in the recipe's post_commands", exit_text(*.code))]
    PostCommand {
        command: String,
        code: Option<i32>,
        output_tail: String,
    },
    #[error("recipe post command `{command}`: {source}")]
    PostCommandSandbox {
        command: String,
        #[source]
        source: Box<SandboxError>,
    },
    #[error("cannot read the header of {path} ({source}); delete it from the package cache so it is fetched again")]
    ReadPackage {
        path: PathBuf,
        #[source]
        source: rpm::Error,
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

impl RpmConfigureError {
    /// True when the tree's file system ran out of space (an I/O error says
    /// so, or a failing command printed it).
    pub fn is_disk_full(&self) -> bool {
        match self {
            RpmConfigureError::InitDb { output_tail, .. }
            | RpmConfigureError::Register { output_tail, .. }
            | RpmConfigureError::Query { output_tail, .. }
            | RpmConfigureError::HostRpm { output_tail, .. }
            | RpmConfigureError::Scriptlet { output_tail, .. }
            | RpmConfigureError::PostCommand { output_tail, .. } => {
                common::output_is_disk_full(output_tail)
            }
            RpmConfigureError::RpmSandbox { source, .. }
            | RpmConfigureError::ScriptletSandbox { source, .. }
            | RpmConfigureError::PostCommandSandbox { source, .. } => source.is_disk_full(),
            RpmConfigureError::Io { source, .. } => common::io_is_disk_full(source),
            _ => false,
        }
    }
}

common::impl_failure!(RpmConfigureError);

/// The same options as the Debian stage's.
pub type RpmConfigureOptions = ConfigureOptions;

/// `order` is rpm's install order: each unpacked package with its `.rpm`
/// file. All of them are already unpacked into `root`. `host` registers
/// the packages when the tree has no rpm of its own; without it such a
/// tree is refused.
pub fn configure(
    root: &Path,
    order: &[(RpmUnpacked, PathBuf)],
    options: &RpmConfigureOptions,
    host: Option<&HostRpm>,
    reporter: &dyn Reporter,
) -> Result<(), RpmConfigureError> {
    let rpm = find_rpm(root);
    if rpm.is_none() && host.is_none() {
        return Err(RpmConfigureError::NoRpm {
            root: root.to_path_buf(),
        });
    }
    let triggers = fired_triggers(order);
    let count = |f: fn(&RpmUnpacked) -> &Option<RpmScript>| {
        order.iter().filter(|(p, _)| f(p).is_some()).count()
    };
    let total = 1
        + count(|p| &p.pretrans)
        + count(|p| &p.pre)
        + count(|p| &p.post)
        + triggers.len()
        + count(|p| &p.posttrans)
        + options.post_commands.len();
    reporter.stage_start(Stage::Configure, total as u64);

    let env = common::env(&[("PATH", DEFAULT_PATH), ("LC_ALL", "C"), ("HOME", "/root")]);
    let sandbox = common::sandbox(root, options, env);

    let temp = TempArea::create(root)?;
    crate::cancel::check()?;
    match (rpm, host) {
        (Some(rpm), _) => register(&sandbox, &temp, rpm, order)?,
        (None, Some(host)) => {
            reporter.message(&format!(
                "the package set has no rpm: registering the packages with the host's rpm, as a {} database",
                host.backend.name()
            ));
            let host = HostRpm {
                source_date_epoch: options.source_date_epoch,
                ..host.clone()
            };
            register_with_host(root, &temp, &host, order)?
        }
        (None, None) => unreachable!("refused above"),
    }
    reporter.advance(Stage::Configure, 1, "rpm database");

    let mut runner = Runner {
        sandbox: &sandbox,
        temp: &temp,
        rpm,
        // Without an rpm in the tree, nothing there can run Lua.
        lua: rpm.is_none().then_some(false),
        serial: 0,
        reporter,
    };
    type Pick = fn(&RpmUnpacked) -> &Option<RpmScript>;
    let phases: [(&str, Pick); 3] = [
        ("%pretrans", |p| &p.pretrans),
        ("%pre", |p| &p.pre),
        ("%post", |p| &p.post),
    ];
    for (name, pick) in phases {
        if name == "%post" {
            // rpm lays a package's files down after its %pre, so files of a
            // user or group that %pre adds get them; ours were unpacked
            // before: give them their owners now.
            set_owners(root, order, reporter)?;
        }
        for (pkg, file) in order {
            if let Some(script) = pick(pkg) {
                runner.run(pkg, file, name, script, &["1"])?;
            }
        }
    }
    for (i, trigger, target) in &triggers {
        let (pkg, file) = &order[*i];
        let name = format!("%triggerin -- {target}");
        runner.run(pkg, file, &name, &trigger.script, &["1", "1"])?;
    }
    for (pkg, file) in order {
        if let Some(script) = &pkg.posttrans {
            runner.run(pkg, file, "%posttrans", script, &["1"])?;
        }
    }

    common::run_post_commands::<RpmConfigureError>(&sandbox, &options.post_commands, reporter)?;
    temp.finish()?;
    reporter.stage_end(Stage::Configure);
    Ok(())
}

/// The tree's rpm, as a path inside the tree.
fn find_rpm(root: &Path) -> Option<&'static str> {
    RPM_PROGRAMS.into_iter().find(|p| {
        // A symlink counts: it may be absolute and only resolve inside.
        std::fs::symlink_metadata(root.join(p.trim_start_matches('/'))).is_ok()
    })
}

fn nvr(pkg: &RpmUnpacked) -> String {
    format!("{}-{}-{}", pkg.name, pkg.version, pkg.release)
}

/// `%triggerin` scripts that fire: (index of the owner in `order`, the
/// trigger, the target that fired it). Each fires once, for the first
/// package of the set its conditions match.
fn fired_triggers(order: &[(RpmUnpacked, PathBuf)]) -> Vec<(usize, &RpmTrigger, String)> {
    let mut out = Vec::new();
    for (i, (pkg, _)) in order.iter().enumerate() {
        for t in pkg.triggers.iter().filter(|t| t.kind == TriggerKind::In) {
            let target = t.conditions.iter().find_map(|(name, constraint)| {
                order
                    .iter()
                    .any(|(p, _)| p.name == *name && satisfies(p, constraint))
                    .then(|| name.clone())
            });
            if let Some(target) = target {
                out.push((i, t, target));
            }
        }
    }
    out
}

/// Does `pkg` meet a trigger condition's `[op version]` part?
fn satisfies(pkg: &RpmUnpacked, constraint: &str) -> bool {
    let Some((op, version)) = constraint.trim().split_once(' ') else {
        return true;
    };
    let evr = format!("{}:{}-{}", pkg.epoch, pkg.version, pkg.release);
    let version = version.trim();
    // A condition without an epoch matches any epoch only when it is 0.
    let wanted = if version.contains(':') {
        version.to_string()
    } else {
        format!("0:{version}")
    };
    let ord = compare_evr(&evr, &wanted);
    match op {
        "<" => ord == Ordering::Less,
        "<=" => ord != Ordering::Greater,
        "=" | "==" => ord == Ordering::Equal,
        ">=" => ord != Ordering::Less,
        ">" => ord == Ordering::Greater,
        _ => true,
    }
}

/// Runs scriptlets one by one, numbering their temp files.
struct Runner<'a> {
    sandbox: &'a Sandbox,
    temp: &'a TempArea,
    /// The tree's rpm; `None` when the host's registered the packages.
    rpm: Option<&'a str>,
    /// Whether the tree's rpm runs `%{lua:...}`; asked the first time it matters.
    lua: Option<bool>,
    serial: usize,
    reporter: &'a dyn Reporter,
}

impl Runner<'_> {
    fn run(
        &mut self,
        pkg: &RpmUnpacked,
        file: &Path,
        name: &str,
        script: &RpmScript,
        args: &[&str],
    ) -> Result<(), RpmConfigureError> {
        crate::cancel::check()?;
        let what = format!("{} {name}", pkg.name);
        let sandbox_err = |source| RpmConfigureError::ScriptletSandbox {
            package: nvr(pkg),
            scriptlet: name.to_string(),
            source: Box::new(source),
        };
        let interpreter = &script.interpreter;
        let out = if interpreter.first().map(String::as_str) == Some("<lua>") {
            let lua = self.lua_works()?;
            let rpm = match self.rpm {
                Some(rpm) if lua => rpm,
                _ => {
                    let why = if self.rpm.is_some() {
                        "the tree's rpm cannot run Lua outside a transaction"
                    } else {
                        "the tree has no rpm to run Lua"
                    };
                    self.reporter.warn(&format!(
                        "package {}: skipped Lua scriptlet {name}: {why}; run its effect in a recipe post command if it matters",
                        nvr(pkg)
                    ));
                    self.reporter.advance(Stage::Configure, 1, &what);
                    return Ok(());
                }
            };
            let path = self.write_script(pkg, name, "lua", &script.body)?;
            let numbers = args.join(", ");
            // rpm hands Lua scriptlets `arg` = {"<lua>", numbers...} and,
            // since 4.17, the same as the chunk's `...`. The global is set
            // through `_G`: inside a `%{lua:}` macro, `arg` names a local.
            let code = format!(
                "%{{lua: local f, e = loadfile('{path}'); if not f then error(e) end; \
                 _G.arg = {{'<lua>', {numbers}}}; f('<lua>', {numbers}); print('vzpkg-' .. 'lua-ok')}}"
            );
            let out = self
                .sandbox
                .run(&[rpm, "--eval", &code], &self.options(file)?)
                .map_err(sandbox_err)?;
            let text = String::from_utf8_lossy(&out.output).into_owned();
            if !text.contains(LUA_MARK) {
                crate::cancel::check()?;
                let cleaned = text.replace(&code, "");
                return Err(RpmConfigureError::Scriptlet {
                    package: nvr(pkg),
                    scriptlet: name.to_string(),
                    code: out.status.code(),
                    output_tail: crate::sandbox::tail_lines(cleaned.as_bytes(), TAIL_LINES),
                });
            }
            out
        } else {
            let Some(program) = interpreter.first() else {
                return Err(RpmConfigureError::MissingInterpreter {
                    package: nvr(pkg),
                    scriptlet: name.to_string(),
                    interpreter: "(none)".into(),
                });
            };
            let on_host = self.temp.root.join(program.trim_start_matches('/'));
            if program.starts_with('/') && std::fs::symlink_metadata(&on_host).is_err() {
                return Err(RpmConfigureError::MissingInterpreter {
                    package: nvr(pkg),
                    scriptlet: name.to_string(),
                    interpreter: program.clone(),
                });
            }
            let mut argv: Vec<String> = interpreter.clone();
            // Like rpm: `-p PROGRAM` without a body runs PROGRAM bare.
            if !script.body.trim().is_empty() {
                argv.push(self.write_script(pkg, name, "sh", &script.body)?);
                argv.extend(args.iter().map(|a| a.to_string()));
            }
            self.sandbox
                .run(&argv, &self.options(file)?)
                .map_err(sandbox_err)?
        };
        if !out.success() {
            crate::cancel::check()?;
            return Err(RpmConfigureError::Scriptlet {
                package: nvr(pkg),
                scriptlet: name.to_string(),
                code: out.status.code(),
                output_tail: out.tail(TAIL_LINES),
            });
        }
        self.reporter.advance(Stage::Configure, 1, &what);
        Ok(())
    }

    fn lua_works(&mut self) -> Result<bool, RpmConfigureError> {
        if let Some(known) = self.lua {
            return Ok(known);
        }
        let Some(rpm) = self.rpm else {
            return Ok(false);
        };
        let probe = "%{lua: print('vzpkg-' .. 'lua-ok')}";
        let out = run_rpm(self.sandbox, &[rpm, "--eval", probe], "asking rpm for Lua")?;
        let works = String::from_utf8_lossy(&out.output).contains(LUA_MARK);
        self.lua = Some(works);
        Ok(works)
    }

    /// Environment rpm gives a scriptlet: its `PATH` and the package's
    /// install prefixes (relocatable packages read them).
    fn options(&self, file: &Path) -> Result<RunOptions, RpmConfigureError> {
        let mut env = vec![("PATH".to_string(), SCRIPT_PATH.to_string())];
        let md =
            rpm::PackageMetadata::open(file).map_err(|source| RpmConfigureError::ReadPackage {
                path: file.to_path_buf(),
                source,
            })?;
        let prefixes = md
            .header
            .get_entry_data_as_string_array(rpm::IndexTag::RPMTAG_PREFIXES)
            .unwrap_or_default();
        for (i, p) in prefixes.iter().enumerate() {
            if i == 0 {
                env.push(("RPM_INSTALL_PREFIX".into(), p.to_string()));
            }
            env.push((format!("RPM_INSTALL_PREFIX{i}"), p.to_string()));
        }
        Ok(RunOptions {
            extra_env: env,
            ..Default::default()
        })
    }

    /// Write a scriptlet body into the temp area; returns its path inside.
    fn write_script(
        &mut self,
        pkg: &RpmUnpacked,
        name: &str,
        ext: &str,
        body: &str,
    ) -> Result<String, RpmConfigureError> {
        self.serial += 1;
        let safe: String = format!("{}-{}", pkg.name, name.trim_start_matches('%'))
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let file = format!("{:05}-{safe}.{ext}", self.serial);
        let host = self.temp.host.join(&file);
        std::fs::write(&host, body)
            .map_err(RpmConfigureError::io_err("writing the scriptlet", &host))?;
        Ok(format!("{}/{file}", self.temp.inside))
    }
}

/// Our scratch directory inside the tree, removed on drop. It lives in the
/// tree's `var/tmp` when that is a real directory (a symlink could lead
/// out of the tree), else at the tree's top.
struct TempArea {
    root: PathBuf,
    host: PathBuf,
    inside: String,
    /// `var`, `var/tmp` if we had to make them; removed again if still empty.
    created: Vec<PathBuf>,
    done: bool,
}

struct SubDir {
    host: PathBuf,
    inside: String,
}

impl SubDir {
    fn remove(self) -> Result<(), RpmConfigureError> {
        std::fs::remove_dir_all(&self.host)
            .map_err(RpmConfigureError::io_err("removing", &self.host))
    }
}

impl TempArea {
    fn create(root: &Path) -> Result<TempArea, RpmConfigureError> {
        let mut created = Vec::new();
        let mut base = String::new();
        for (part, mode) in [("var", 0o755), ("tmp", 0o1777)] {
            let next = format!("{base}/{part}");
            let host = root.join(next.trim_start_matches('/'));
            match std::fs::symlink_metadata(&host) {
                Ok(m) if m.is_dir() => base = next,
                Ok(_) => {
                    base.clear();
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    std::fs::create_dir(&host)
                        .map_err(RpmConfigureError::io_err("creating", &host))?;
                    std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode))
                        .map_err(RpmConfigureError::io_err("setting the mode of", &host))?;
                    created.push(host);
                    base = next;
                }
                Err(source) => {
                    return Err(RpmConfigureError::Io {
                        action: "inspecting",
                        path: host,
                        source,
                    })
                }
            }
        }
        let inside = format!("{base}/{TEMP_NAME}");
        let host = root.join(inside.trim_start_matches('/'));
        // Left over from an interrupted run on this tree.
        if std::fs::symlink_metadata(&host).is_ok() {
            std::fs::remove_dir_all(&host).map_err(RpmConfigureError::io_err("removing", &host))?;
        }
        std::fs::create_dir(&host).map_err(RpmConfigureError::io_err("creating", &host))?;
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o700))
            .map_err(RpmConfigureError::io_err("setting the mode of", &host))?;
        Ok(TempArea {
            root: root.to_path_buf(),
            host,
            inside,
            created,
            done: false,
        })
    }

    fn subdir(&self, name: &str) -> Result<SubDir, RpmConfigureError> {
        let host = self.host.join(name);
        std::fs::create_dir(&host).map_err(RpmConfigureError::io_err("creating", &host))?;
        Ok(SubDir {
            host,
            inside: format!("{}/{name}", self.inside),
        })
    }

    fn finish(mut self) -> Result<(), RpmConfigureError> {
        self.done = true;
        std::fs::remove_dir_all(&self.host)
            .map_err(RpmConfigureError::io_err("removing", &self.host))?;
        for dir in self.created.iter().rev() {
            // Still empty only if no package or scriptlet put anything there.
            let _ = std::fs::remove_dir(dir);
        }
        Ok(())
    }
}

impl Drop for TempArea {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.host);
            for dir in self.created.iter().rev() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

mod register;
use register::{register, register_with_host, run_rpm};
pub use register::{HostRpm, HOST_DBPATH};

#[cfg(test)]
mod tests;
