use super::*;

const MOUNTINFO_V1: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid shared:5 - cgroup2 cgroup2 rw
31 25 0:27 / /sys/fs/cgroup/cpu rw,nosuid shared:6 - cgroup cgroup rw,cpu
32 25 0:28 / /sys/fs/cgroup/cpuacct rw,nosuid shared:7 - cgroup cgroup rw,cpuacct
33 25 0:29 / /sys/fs/cgroup/memory rw,nosuid shared:8 - cgroup cgroup rw,memory
34 25 0:30 / /sys/fs/cgroup/systemd rw,nosuid shared:9 - cgroup cgroup rw,xattr,name=systemd
35 25 0:31 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid shared:10 - cgroup cgroup rw,net_cls,net_prio
";

#[test]
fn v1_hierarchies_are_found_by_their_options() {
    let Layout::V1(m) = Layout::from_mountinfo(MOUNTINFO_V1) else {
        panic!("not v1");
    };
    assert_eq!(
        m,
        vec![
            (Controller::Cpu, PathBuf::from("/sys/fs/cgroup/cpu")),
            (Controller::Cpuacct, PathBuf::from("/sys/fs/cgroup/cpuacct")),
            (Controller::Memory, PathBuf::from("/sys/fs/cgroup/memory")),
        ]
    );
    let l = Layout::V1(m);
    assert!(l.has(Controller::Memory));
    assert!(!l.has(Controller::Pids));
    let cg = VpsCgroup::locate(&l, "vz", 101);
    assert_eq!(
        cg.dir(Controller::Memory),
        Some(Path::new("/sys/fs/cgroup/memory/vz/101"))
    );
    assert_eq!(cg.procs_files().len(), 3);
    // A limit on a missing controller is refused by name, before anything is made.
    let res = Resources {
        numproc: Some(200),
        ..Default::default()
    };
    let e = cg.check(&res, Path::new("/")).unwrap_err().to_string();
    assert!(
        e.contains("NUMPROC needs the `pids` cgroup controller"),
        "{e}"
    );
    assert!(e.contains("v1 hierarchies: cpu, cpuacct, memory"), "{e}");
    assert!(cg.check(&Resources::default(), Path::new("/")).is_ok());
}

#[test]
fn combined_and_v2_mounts() {
    let text = "31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
    let l = Layout::from_mountinfo(text);
    let cg = VpsCgroup::locate(&l, "a/b", 7);
    assert_eq!(
        cg.unique_dirs(),
        vec![Path::new("/sys/fs/cgroup/cpu,cpuacct/a/b/7")]
    );
    let text = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    let Layout::V2 { root, .. } = Layout::from_mountinfo(text) else {
        panic!("not v2");
    };
    let l = Layout::V2 {
        root,
        controllers: v2_controllers("cpuset cpu io memory pids"),
    };
    let cg = VpsCgroup::locate(&l, "vz", 101);
    assert!(cg.v2);
    assert_eq!(cg.unique_dirs(), vec![Path::new("/sys/fs/cgroup/vz/101")]);
    assert_eq!(
        cg.dir(Controller::Blkio),
        Some(Path::new("/sys/fs/cgroup/vz/101"))
    );
    // An empty v2 tree has no memory controller: named in the error.
    let empty = Layout::V2 {
        root: "/sys/fs/cgroup/unified".into(),
        controllers: Vec::new(),
    };
    let res = Resources {
        ram: Some(1 << 30),
        ..Default::default()
    };
    let e = VpsCgroup::locate(&empty, "vz", 1)
        .check(&res, Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`memory`") && e.contains("controllers: none"),
        "{e}"
    );
    assert_eq!(Layout::from_mountinfo(""), Layout::None);
    assert_eq!(unescape("/a\\040b"), PathBuf::from("/a b"));
}

#[test]
fn parent_is_a_relative_plain_path() {
    assert_eq!(
        parent(None).ok().as_deref().map(|p| !p.is_empty()),
        Some(true)
    );
    if std::env::var(PARENT_ENV).is_err() {
        assert_eq!(parent(Some("hosting/vz")).unwrap(), "hosting/vz");
        assert_eq!(parent(None).unwrap(), "vz");
        for bad in ["../x", "a/../b", "a//b"] {
            assert!(parent(Some(bad)).is_err(), "{bad}");
        }
    }
}

/// The real thing on this host's v1 hierarchies: made, limited, joined,
/// killed and removed.
#[test]
fn live_v1_cgroup_is_made_limited_and_removed() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: cgroup tests need root");
        return;
    }
    let layout = Layout::detect();
    if !matches!(layout, Layout::V1(_)) {
        eprintln!(
            "skipped: the live v1 test needs v1 hierarchies ({})",
            layout.describe()
        );
        return;
    }
    let parent = format!("vzpkg-unit-{}", std::process::id());
    let cg = VpsCgroup::locate(&layout, &parent, 4242);
    struct Clean(Vec<PathBuf>);
    impl Drop for Clean {
        fn drop(&mut self) {
            for d in &self.0 {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
    let _clean = Clean(
        cg.unique_dirs()
            .iter()
            .filter_map(|d| d.parent().map(Path::to_path_buf))
            .collect(),
    );
    cg.create().unwrap();
    let res = Resources {
        numproc: Some(50),
        ram: Some(64 << 20),
        swap: Some(0),
        cpulimit: Some(25),
        cpuunits: Some(500),
        ..Default::default()
    };
    if layout.has(Controller::Pids) && layout.has(Controller::Memory) && layout.has(Controller::Cpu)
    {
        cg.apply(&res, Path::new("/"), false).unwrap();
        assert_eq!(cg.read(Controller::Pids, "pids.max").unwrap().trim(), "50");
        assert_eq!(
            cg.read(Controller::Cpu, "cpu.cfs_quota_us").unwrap().trim(),
            "25000"
        );
        assert_eq!(
            cg.read(Controller::Cpu, "cpu.shares").unwrap().trim(),
            "512"
        );
        assert_eq!(
            cg.read(Controller::Memory, "memory.limit_in_bytes")
                .unwrap()
                .trim(),
            (64u64 << 20).to_string()
        );
        // Raising RAM past the old memsw works (written in the right order).
        let more = res.merged(&Resources {
            ram: Some(128 << 20),
            swap: Some(64 << 20),
            ..Default::default()
        });
        cg.apply(&more, Path::new("/"), false).unwrap();
        assert_eq!(
            cg.read(Controller::Memory, "memory.memsw.limit_in_bytes")
                .unwrap()
                .trim(),
            (192u64 << 20).to_string()
        );
        cg.apply(&res, Path::new("/"), false).unwrap();
        assert_eq!(
            cg.read(Controller::Memory, "memory.limit_in_bytes")
                .unwrap()
                .trim(),
            (64u64 << 20).to_string()
        );
    }
    let mut child = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    cg.add(child.id() as i32).unwrap();
    assert_eq!(cg.pids(), vec![child.id() as i32]);
    let beans = beancounters::read(&cg);
    assert!(
        beans.iter().any(|b| b.resource == "numproc" && b.held == 1),
        "{beans:?}"
    );
    // Removal kills what is left inside.
    cg.remove().unwrap();
    assert!(!cg.exists());
    let status = child.wait().unwrap();
    assert!(!status.success());
}

#[test]
fn live_v2_cgroup_or_skip() {
    let layout = Layout::detect();
    let Layout::V2 { controllers, .. } = &layout else {
        eprintln!(
            "skipped: the live v2 test needs a cgroup v2 host ({})",
            layout.describe()
        );
        return;
    };
    if controllers.is_empty() || !rustix::process::geteuid().is_root() {
        eprintln!(
            "skipped: the live v2 test needs root and v2 controllers ({})",
            layout.describe()
        );
        return;
    }
    let parent = format!("vzpkg-unit-{}", std::process::id());
    let cg = VpsCgroup::locate(&layout, &parent, 4242);
    cg.create().unwrap();
    let res = Resources {
        numproc: layout.has(Controller::Pids).then_some(50),
        ..Default::default()
    };
    let applied = cg.apply(&res, Path::new("/"), false);
    let _ = cg.remove();
    if let Some(root) = cg.unique_dirs().first().and_then(|d| d.parent()) {
        let _ = std::fs::remove_dir(root);
    }
    applied.unwrap();
}

/// The v2 device policy on this host's cgroup2 mount, with or without
/// controllers (a hybrid host's empty one will do: device programs are not
/// a controller). A process in the cgroup may use what the rules allow, and
/// nothing else, root or not; a live change swaps the program.
#[test]
fn v2_device_program_allows_only_its_rules() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: the device program test needs root");
        return;
    }
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let Some(root) = text.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let at = left.split(' ').nth(4)?;
        right.starts_with("cgroup2 ").then(|| PathBuf::from(at))
    }) else {
        eprintln!("skipped: the device program test needs a cgroup2 mount");
        return;
    };
    let layout = Layout::V2 {
        root,
        controllers: Vec::new(),
    };
    let parent = format!("vzpkg-unit-dev-{}", std::process::id());
    let cg = VpsCgroup::locate(&layout, &parent, 4243);
    cg.create().unwrap();
    struct Clean(VpsCgroup);
    impl Drop for Clean {
        fn drop(&mut self) {
            let _ = self.0.remove();
            if let Some(p) = self.0.unique_dirs().first().and_then(|d| d.parent()) {
                let _ = std::fs::remove_dir(p);
            }
        }
    }
    let clean = Clean(cg);
    let cg = &clean.0;
    let rules: Vec<String> = ["c 1:3 rwm", "c *:* m"].map(String::from).to_vec();
    if let Err(e) = cg.set_device_rules(&rules) {
        eprintln!("skipped: this kernel takes no BPF device program: {e}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Each probe prints its exit status: 0 when the access was allowed.
    let probe = |label: &str| -> String {
        use std::io::Write;
        let script = format!(
            "read go; cd {dir}; \
             cat /dev/null; echo null=$?; \
             rm -f zero-{label} sda-{label}; \
             mknod zero-{label} c 1 5; echo mknod_zero=$?; \
             head -c1 zero-{label} >/dev/null 2>&1; echo read_zero=$?; \
             mknod sda-{label} b 8 0 2>/dev/null; echo mknod_sda=$?",
            dir = tmp.path().display()
        );
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        cg.add(child.id() as i32).unwrap();
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let first = probe("a");
    assert_eq!(first, "null=0 mknod_zero=0 read_zero=1 mknod_sda=1");
    // Live: /dev/zero's numbers allowed too, in one swap.
    let more: Vec<String> = ["c 1:3 rwm", "c 1:5 rwm", "c *:* m"]
        .map(String::from)
        .to_vec();
    cg.update_device_rules(&more).unwrap();
    let second = probe("b");
    assert_eq!(second, "null=0 mknod_zero=0 read_zero=0 mknod_sda=1");
}
