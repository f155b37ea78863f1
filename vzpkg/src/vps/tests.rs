//! The runtime against real overlay mounts and namespaces (as root; skipped
//! otherwise), on a template of the host's `/bin/sh` and its libraries.

use super::*;
use crate::sandbox::testtree;
use crate::store::TemplateMeta;

struct Host {
    _dir: tempfile::TempDir,
    vz: Vz,
    /// The VPSs' cgroup parent, this host's own (`CGROUP_PARENT`).
    cgroup_parent: String,
}

impl Drop for Host {
    fn drop(&mut self) {
        // Never leave mounts behind, even when an assertion failed.
        for e in self.vz.list().unwrap_or_default() {
            if let Some(pid) = e.status.pid {
                let _ = process::stop(pid, true, Duration::ZERO);
            }
            if let Ok(cfg) = self.vz.config(e.status.ctid) {
                let _ = overlay::unmount_all(&cfg.ve_root, true);
            }
            let _ = self.vz.remove_cgroup(e.status.ctid);
        }
        // Nor cgroup directories: the parent goes from every hierarchy.
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in rd.flatten() {
                let _ = std::fs::remove_dir(h.path().join(&self.cgroup_parent));
            }
        }
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(&self.cgroup_parent));
    }
}

fn host() -> Option<Host> {
    let tree = testtree::minimal_tree()?;
    std::fs::create_dir_all(tree.path().join("etc")).unwrap();
    std::fs::write(tree.path().join("etc/motd"), "from the template\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store_root = dir.path().join("templates");
    let store = Store::open(&store_root).unwrap();
    let meta = TemplateMeta {
        name: "tiny".into(),
        ..Default::default()
    };
    store.commit(tree.path(), &meta).unwrap();
    let mut vz = Vz::new(dir.path().join("vz"), store_root);
    // This test program is no vzpkg: no /proc view process.
    vz.simfs_exe = None;
    // VPS cgroups under a parent of this host's, removed with it, so no
    // `vz` directory is left in the machine's hierarchies.
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let cgroup_parent = format!(
        "vzpkg-unit-vps-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let conf = dir.path().join("vz/conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("vz.conf"),
        format!("CGROUP_PARENT=\"{cgroup_parent}\"\n"),
    )
    .unwrap();
    Some(Host {
        _dir: dir,
        vz,
        cgroup_parent,
    })
}

fn create(vz: &Vz, ctid: u32) -> VpsConfig {
    let opts = CreateOptions {
        ostemplate: "tiny".into(),
        hostname: Some(format!("t{ctid}.example")),
        // simfs needs the vzpkg binary to serve it, which a unit test is
        // not: the integration tests (tests/tests/quota.rs) cover it.
        disk_quota: Some(false),
        ..Default::default()
    };
    vz.create(ctid, &opts).unwrap()
}

#[test]
fn ctids() {
    assert_eq!(parse_ctid("101").unwrap(), 101);
    for bad in ["0", "-1", "+5", "abc", "", "1.5", "99999999999"] {
        assert!(
            matches!(parse_ctid(bad), Err(VpsError::BadCtid { .. })),
            "{bad}"
        );
    }
}

#[test]
fn a_held_lock_refuses_at_once_and_one_let_go_waits_for_forked_copies() {
    let dir = tempfile::tempdir().unwrap();
    let mut vz = Vz::new(dir.path().join("vz"), dir.path().join("templates"));
    vz.simfs_exe = None;
    let held = vz.lock(101).unwrap();
    let t0 = std::time::Instant::now();
    let refused = vz.lock(101);
    let me = std::process::id() as i32;
    match &refused {
        Err(
            e @ VpsError::Locked {
                ctid: 101, holder, ..
            },
        ) => {
            assert_eq!(*holder, Some(me));
            assert!(
                e.to_string().contains(&format!("vzctl process {me}")),
                "{e}"
            );
            assert_eq!(e.exit_code(), exit::LOCKED);
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert!(vz.lock(102).is_ok(), "another VPS's lock is free");

    // A child forked while the lock is held keeps a copy of it for 300 ms,
    // as one between fork and exec would.
    // The child only sleeps and exits.
    let child = match crate::sys::process::fork().unwrap() {
        crate::sys::process::Forked::Child => {
            std::thread::sleep(Duration::from_millis(300));
            crate::sys::process::exit_now(0)
        }
        crate::sys::process::Forked::Parent(pid) => pid,
    };
    drop(held);
    let t0 = std::time::Instant::now();
    let again = vz.lock(101);
    let waited = t0.elapsed();
    // Reaping our own child.
    let _ = crate::sys::process::wait(child);
    assert!(again.is_ok(), "{:?}", again.err());
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
}

#[test]
fn create_writes_config_and_identity_only() {
    let Some(h) = host() else { return };
    let cfg = create(&h.vz, 101);
    let text = std::fs::read_to_string(h.vz.root.conf(101)).unwrap();
    for key in [
        "OSTEMPLATE=\"tiny\"",
        "TEMPLATE_ID=\"",
        "HOSTNAME=\"t101.example\"",
        "DISKSPACE=\"2097152:2306867\"",
        "DISKINODES=\"131072:144179\"",
        "QUOTATIME=\"259200\"",
        "QUOTAUGIDLIMIT=\"0\"",
        "DISK_QUOTA=\"no\"",
    ] {
        assert!(text.contains(key), "{key} missing from {text}");
    }
    assert_eq!(h.vz.config(101).unwrap(), cfg);
    let mut files: Vec<String> = walkdir::WalkDir::new(cfg.upper())
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            e.path()
                .strip_prefix(cfg.upper())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["etc", "etc/hostname", "etc/hosts", "etc/machine-id"]
    );
    let id = std::fs::read_to_string(cfg.upper().join("etc/machine-id")).unwrap();
    assert_eq!(id.trim().len(), 32);
    let other = create(&h.vz, 102);
    let id2 = std::fs::read_to_string(other.upper().join("etc/machine-id")).unwrap();
    assert_ne!(id, id2);

    let again = h.vz.create(
        101,
        &CreateOptions {
            ostemplate: "tiny".into(),
            ..Default::default()
        },
    );
    assert!(
        matches!(again, Err(VpsError::Exists { ctid: 101, .. })),
        "{again:?}"
    );
    let unknown = h.vz.create(
        103,
        &CreateOptions {
            ostemplate: "nope".into(),
            ..Default::default()
        },
    );
    assert_eq!(unknown.unwrap_err().exit_code(), exit::NO_TEMPLATE);
    assert!(!h.vz.root.conf(103).exists());
    assert!(!h.vz.root.default_private(103).exists());
}

#[test]
fn lifecycle_with_the_built_in_init() {
    let Some(h) = host() else { return };
    let cfg = create(&h.vz, 201);
    assert_eq!(
        h.vz.status(201).unwrap().to_string(),
        "CTID 201 exist unmounted down"
    );
    assert_eq!(h.vz.mount(201).unwrap(), Mounted::Fresh);
    assert_eq!(h.vz.mount(201).unwrap(), Mounted::Already);
    assert_eq!(
        std::fs::read_to_string(cfg.ve_root.join("etc/motd")).unwrap(),
        "from the template\n"
    );
    let pid = h.vz.start(201, false).unwrap();
    let st = h.vz.status(201).unwrap();
    assert_eq!(st.to_string(), "CTID 201 exist mounted running");
    assert_eq!(st.pid, Some(pid));
    assert!(matches!(
        h.vz.start(201, false),
        Err(VpsError::AlreadyRunning { .. })
    ));
    assert_eq!(
        h.vz.exec(
            201,
            "test $$ != 1 && read h < /etc/hostname && test $h = t201.example && exit 7"
        )
        .unwrap(),
        7
    );
    assert!(matches!(h.vz.destroy(201), Err(VpsError::Running { .. })));
    assert!(matches!(h.vz.umount(201), Err(VpsError::Running { .. })));
    assert_eq!(
        h.vz.stop(201, false, Duration::from_secs(5)).unwrap(),
        Stopped::Clean
    );
    assert_eq!(
        h.vz.status(201).unwrap().to_string(),
        "CTID 201 exist mounted down"
    );
    // Stopped: the command gets namespaces of its own and is PID 1 there.
    assert_eq!(h.vz.exec(201, "test $$ = 1 && exit 3").unwrap(), 3);
    assert!(h.vz.umount(201).unwrap());
    h.vz.destroy(201).unwrap();
    assert_eq!(
        h.vz.status(201).unwrap().to_string(),
        "CTID 201 deleted unmounted down"
    );
    assert!(!cfg.ve_private.exists() && !cfg.ve_root.exists());
}

#[test]
fn a_stale_mount_is_replaced() {
    let Some(h) = host() else { return };
    let cfg = create(&h.vz, 301);
    std::fs::create_dir_all(&cfg.ve_root).unwrap();
    rustix::mount::mount(
        c"tmpfs",
        cfg.ve_root.as_path(),
        c"tmpfs",
        rustix::mount::MountFlags::empty(),
        None,
    )
    .unwrap();
    let st = h.vz.status(301).unwrap();
    assert!(!st.mounted && st.stale_mount.is_some(), "{st:?}");
    assert!(matches!(h.vz.mount(301).unwrap(), Mounted::Replaced(_)));
    assert_eq!(overlay::mounts_at(&cfg.ve_root).unwrap().len(), 1);
    assert_eq!(h.vz.status(301).unwrap().stale_mount, None);
    h.vz.destroy(301).unwrap();
}

#[test]
fn global_conf_missing_is_empty_and_present_is_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let root = VzRoot::new(dir.path());
    let empty = root.global_conf().unwrap();
    assert_eq!(empty.get("LOCAL_UID"), None);
    std::fs::create_dir_all(dir.path().join("conf")).unwrap();
    std::fs::write(
        dir.path().join("conf/vz.conf"),
        "# host\nLOCAL_UID=\"200000\"\nCGROUP_PARENT=\"vz\"\n",
    )
    .unwrap();
    let conf = root.global_conf().unwrap();
    assert_eq!(conf.get("LOCAL_UID"), Some("200000"));
    assert_eq!(conf.get("CGROUP_PARENT"), Some("vz"));
    std::fs::write(
        dir.path().join("conf/vz.conf"),
        "LOCAL_UID=\"unterminated\n",
    )
    .unwrap();
    let e = root.global_conf().unwrap_err();
    assert!(e.to_string().contains("vz.conf line 1"), "{e}");
}
