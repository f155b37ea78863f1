use super::register::{host_rpm_program, safe_db_dir};
use super::*;
use crate::progress::Silent;
use crate::recipe::RpmDbBackend;
use crate::sandbox::testtree::is_root;
use crate::sandbox::{InitMode, RunOutput};
use crate::unpack::rpm::unpack_rpm;
use vzpkg_testkit::rpmtree::{host_rpm_package, RpmFixture, Script, HOST_RPM_PACKAGE};

struct Tree {
    _work: tempfile::TempDir,
    root: tempfile::TempDir,
    order: Vec<(RpmUnpacked, PathBuf)>,
}

/// A tree with the host's rpm package and then `packages`, unpacked in
/// that order; `None` (with the reason printed) when the host can't.
fn tree(packages: Vec<RpmFixture>) -> Option<Tree> {
    if !is_root() {
        eprintln!("skipping: configure tests need root (mount and pid namespaces)");
        return None;
    }
    let work = tempfile::tempdir().unwrap();
    let host = match host_rpm_package(work.path()) {
        Ok(f) => f,
        Err(why) => {
            eprintln!("skipping: {why}");
            return None;
        }
    };
    let mut files = vec![host];
    files.extend(packages.into_iter().map(|p| p.write(work.path())));
    let root = tempfile::tempdir().unwrap();
    let order = files
        .into_iter()
        .map(|f| (unpack_rpm(root.path(), &f).unwrap(), f))
        .collect();
    Some(Tree {
        _work: work,
        root,
        order,
    })
}

/// [`tree`] configured with default options, and the error that gave.
fn failing(packages: Vec<RpmFixture>) -> Option<(Tree, RpmConfigureError)> {
    let t = tree(packages)?;
    let err = configure(
        t.root.path(),
        &t.order,
        &RpmConfigureOptions::default(),
        None,
        &Silent,
    )
    .unwrap_err();
    Some((t, err))
}

fn in_tree(root: &Path, argv: &[&str]) -> RunOutput {
    let mut sb = Sandbox::new(root);
    sb.init = InitMode::Chroot;
    sb.run(argv, &RunOptions::default()).unwrap()
}

fn log(root: &Path) -> String {
    std::fs::read_to_string(root.join("log")).unwrap_or_default()
}

fn logs(name: &str, what: &str) -> String {
    format!("echo \"{name} {what} $1\" >> /log")
}

#[test]
fn registers_every_package_and_runs_scriptlets_in_order() {
    let a = RpmFixture::new("a", "1.0")
        .file("/etc/a.conf", "a = 1\n")
        .script(Script::PreTrans, &logs("a", "pretrans"))
        .script(Script::Pre, &logs("a", "pre"))
        .script(Script::Post, &logs("a", "post"))
        .script(Script::PostTrans, &logs("a", "posttrans"));
    let b = RpmFixture::new("b", "2.0")
        .script(Script::Pre, &logs("b", "pre"))
        .script(
            Script::Post,
            "echo \"b post $1 $PATH $LC_ALL $HOME\" >> /log\n\
             read h < /proc/sys/kernel/hostname; echo \"host $h\" >> /log",
        )
        .trigger_in("a", "echo \"b triggerin $1 $2\" >> /log")
        .trigger_in("not-in-the-set", "echo wrong >> /log")
        .script_with(
            Script::PostTrans,
            "local f = assert(io.open('/log', 'a'))\n\
             f:write('b posttrans lua ' .. tostring(arg[2]) .. '\\n')\n\
             f:close()",
            &["<lua>"],
        );
    let Some(t) = tree(vec![a, b]) else {
        return;
    };
    let root = t.root.path();
    let opts = RpmConfigureOptions {
        post_commands: vec!["echo post >> /log".into()],
        hostname: "tmpl".into(),
        source_date_epoch: Some(1),
    };
    configure(root, &t.order, &opts, None, &Silent).unwrap();
    assert_eq!(
        log(root),
        "a pretrans 1\n\
         a pre 1\n\
         b pre 1\n\
         a post 1\n\
         b post 1 /sbin:/bin:/usr/sbin:/usr/bin C /root\n\
         host tmpl\n\
         b triggerin 1 1\n\
         a posttrans 1\n\
         b posttrans lua 1\n\
         post\n"
    );

    let out = in_tree(root, &["rpm", "-qa", "--qf", "%{NAME}\\n"]);
    assert!(out.success(), "{}", out.tail(20));
    let text = String::from_utf8_lossy(&out.output).into_owned();
    let mut names: Vec<&str> = text.lines().collect();
    names.sort();
    assert_eq!(names, ["a", "b", HOST_RPM_PACKAGE]);
    let out = in_tree(root, &["rpm", "-V", "a", "b"]);
    assert!(out.success(), "{}", out.tail(20));
    assert_eq!(String::from_utf8_lossy(&out.output), "");
    // A changed file shows up, so the clean result above means something.
    std::fs::write(root.join("etc/a.conf"), "a = 2\n").unwrap();
    let out = in_tree(root, &["rpm", "-V", "a"]);
    assert!(
        String::from_utf8_lossy(&out.output).contains("/etc/a.conf"),
        "{}",
        out.tail(20)
    );

    assert!(!root.join("var/tmp").join(TEMP_NAME).exists());
    // The database stays, where the tree's rpm keeps it.
    let db = root.join(vzpkg_testkit::rpmtree::DBPATH.trim_start_matches('/'));
    assert!(std::fs::read_dir(db).unwrap().count() > 0);
}

#[test]
fn failing_post_names_the_package() {
    let a = RpmFixture::new("a", "1.0").script(Script::Post, &logs("a", "post"));
    let c =
        RpmFixture::new("c", "1.0").script(Script::Post, "echo starting; echo boom >&2; exit 3");
    let d = RpmFixture::new("d", "1.0").script(Script::Post, &logs("d", "post"));
    let Some((t, err)) = failing(vec![a, c, d]) else {
        return;
    };
    let root = t.root.path();
    match &err {
        RpmConfigureError::Scriptlet {
            package,
            scriptlet,
            code,
            output_tail,
        } => {
            assert_eq!(package, "c-1.0-1");
            assert_eq!(scriptlet, "%post");
            assert_eq!(*code, Some(3));
            assert_eq!(output_tail, "starting\nboom");
        }
        other => panic!("unexpected error: {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("package c-1.0-1") && msg.contains("%post"),
        "{msg}"
    );
    assert!(!err.is_disk_full());
    assert_eq!(log(root), "a post 1\n");
    assert!(!root.join("var/tmp").join(TEMP_NAME).exists());
}

#[test]
fn failing_lua_scriptlet_and_missing_interpreter_are_named() {
    let e =
        RpmFixture::new("e", "1.0").script_with(Script::Pre, "error('lua says no')", &["<lua>"]);
    let Some((_t, err)) = failing(vec![e]) else {
        return;
    };
    match &err {
        RpmConfigureError::Scriptlet {
            package,
            scriptlet,
            output_tail,
            ..
        } => {
            assert_eq!((package.as_str(), scriptlet.as_str()), ("e-1.0-1", "%pre"));
            assert!(output_tail.contains("lua says no"), "{output_tail}");
        }
        other => panic!("unexpected error: {other}"),
    }

    let p = RpmFixture::new("p", "1.0").script_with(Script::Post, "print 1;", &["/usr/bin/perl"]);
    let Some((_t, err)) = failing(vec![p]) else {
        return;
    };
    match &err {
        RpmConfigureError::MissingInterpreter {
            package,
            interpreter,
            ..
        } => assert_eq!(
            (package.as_str(), interpreter.as_str()),
            ("p-1.0-1", "/usr/bin/perl")
        ),
        other => panic!("unexpected error: {other}"),
    }
    assert!(err.to_string().contains("add the package providing it"));
}

#[test]
fn tree_without_rpm_is_refused_with_the_fix() {
    let root = tempfile::tempdir().unwrap();
    let err = configure(
        root.path(),
        &[],
        &RpmConfigureOptions::default(),
        None,
        &Silent,
    )
    .unwrap_err();
    assert!(matches!(err, RpmConfigureError::NoRpm { .. }), "{err}");
    assert!(err.to_string().contains("add it to the recipe"), "{err}");
    assert!(!root.path().join("var").exists());
}

/// The host's rpm for a sqlite database, or why the test cannot run.
fn host_sqlite() -> Option<HostRpm> {
    if !is_root() {
        eprintln!("skipped: needs root (chroot for scriptlets and the host's rpm --root)");
        return None;
    }
    match HostRpm::find(RpmDbBackend::Sqlite, "test") {
        Ok(h) => Some(h),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

#[test]
fn a_tree_without_rpm_is_registered_by_the_host_rpm() {
    let Some(host) = host_sqlite() else { return };
    // The fixture's tree has a shell for the scriptlets; without its
    // rpm programs it is a tree without rpm.
    let Some(t) = tree(vec![
        RpmFixture::new("a", "1.0").script(Script::Post, &logs("a", "post")),
        RpmFixture::new("b", "2.0").script_with(Script::Post, "print('x')", &["<lua>"]),
    ]) else {
        return;
    };
    let root = t.root.path();
    for p in RPM_PROGRAMS {
        let _ = std::fs::remove_file(root.join(p.trim_start_matches('/')));
    }
    assert!(find_rpm(root).is_none());
    configure(
        root,
        &t.order,
        &RpmConfigureOptions::default(),
        Some(&host),
        &Silent,
    )
    .unwrap();
    assert_eq!(log(root), "a post 1\n");
    let out = std::process::Command::new(&host.program)
        .arg("--root")
        .arg(root)
        .args(["--dbpath", HOST_DBPATH, "-qa", "--qf", "%{NAME}\\n"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut names: Vec<&str> = text.lines().collect();
    names.sort();
    assert_eq!(names, ["a", "b", HOST_RPM_PACKAGE], "{text}");
    assert!(root.join("var/lib/rpm/rpmdb.sqlite").is_file());
}

#[test]
fn a_db_path_leading_out_of_the_tree_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("var")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("var/lib")).unwrap();
    let err = safe_db_dir(root.path()).unwrap_err();
    assert!(
        matches!(err, RpmConfigureError::UnsafeDbPath { .. }),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn a_backend_the_host_cannot_write_is_named() {
    if host_rpm_program().is_none() {
        eprintln!("skipped: the host has no rpm");
        return;
    }
    // Debian's rpm is built without Berkeley DB; where it has it, the
    // refusal simply does not apply.
    match HostRpm::find(RpmDbBackend::Bdb, "the repositories' rpm is 4.11.3") {
        Ok(_) => eprintln!("skipped: this host's rpm writes Berkeley DB"),
        Err(e) => {
            assert!(
                matches!(e, RpmConfigureError::HostCannotWrite { .. }),
                "{e}"
            );
            let msg = e.to_string();
            assert!(
                msg.contains("bdb") && msg.contains("4.11.3") && msg.contains("add rpm"),
                "{msg}"
            );
        }
    }
}
