//! The escape battery (issue 24): as root inside a started VPS, a probe
//! program makes the exact system calls of each known way out (module
//! loading, the host's disk, host sysctls, /sys, the kernel log, the clock,
//! reboot, host processes and interfaces, "shocker", `..` and rename races)
//! and every one must fail and leave the host as it was. Each probe is also
//! run in a privileged VPS (`--userns no`, no walls), where the ones that
//! privilege allows succeed: so each probe can fail, and the walls are what
//! stops it. Plus the grants (`--devices`, `--devnodes`, `--capability`),
//! setuid programs inside, and symlinks planted in the private area while
//! the VPS is stopped (the simfs CVE classes).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use vzpkg_tests::fixture::text;
use vzpkg_tests::vzhost::{Template, VzHost as Host};

const PROBE: &str = "/bin/vzprobe";
const EPERM: i32 = 1;
const ESRCH: i32 = 3;
const EROFS: i32 = 30;

fn host() -> Option<Host> {
    let probe = Path::new(env!("CARGO_BIN_EXE_vzprobe"));
    Host::with_programs(
        "escape battery",
        false,
        &[Template {
            name: "tiny",
            tools: &["sh", "cat", "setpriv"],
            files: &[("etc/motd", "inside\n")],
            init: None,
        }],
        &[(probe, PROBE)],
    )
}

/// What a probe said: went through, or refused with an errno.
#[derive(Debug)]
struct Answer {
    ok: bool,
    errno: i32,
    line: String,
}

fn probe(h: &Host, id: &str, args: &str) -> Answer {
    let out = h.vzctl(&["exec", id, &format!("{PROBE} {args}")]);
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let errno = line
        .strip_prefix("refused errno=")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let ok = line.starts_with("ok");
    assert!(
        ok || line.starts_with("refused"),
        "probe {args} in VPS {id} gave no answer: {}",
        text(&out)
    );
    Answer { ok, errno, line }
}

/// Can `vzctl create` make a privileged VPS (`--userns no`) on this build?
fn has_userns_option(h: &Host) -> bool {
    let out = h.vzctl(&["create", "--help"]);
    String::from_utf8_lossy(&out.stdout).contains("--userns")
}

fn create(h: &Host, id: &str, privileged: bool) {
    let mut args = vec!["create", id, "--ostemplate", "tiny", "--diskquota", "no"];
    if privileged {
        args.extend(["--userns", "no"]);
    }
    h.ok(&args, 0);
}

/// The host's root file system's block device, `(major, minor, fstype)`,
/// if it is one.
fn host_disk() -> Option<(u32, u32, String)> {
    let dev = std::fs::metadata("/").ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    if !Path::new(&format!("/sys/dev/block/{major}:{minor}")).exists() {
        return None;
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let fstype = info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (left.split(' ').nth(4) == Some("/"))
            .then(|| right.split(' ').next().map(str::to_string))?
    })?;
    Some((major, minor, fstype))
}

/// Can the host's own root open that disk? (Some machines' own
/// sandboxes refuse it even that.)
fn host_opens_disk(major: u32, minor: u32) -> bool {
    let node = std::env::temp_dir().join(format!("vzprobe-disk-{}", std::process::id()));
    let c = std::ffi::CString::new(node.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mknod, open and unlink of a node in our own temp dir.
    unsafe {
        if libc::mknod(
            c.as_ptr(),
            libc::S_IFBLK | 0o600,
            libc::makedev(major, minor),
        ) != 0
        {
            return false;
        }
        let fd = libc::open(c.as_ptr(), libc::O_RDONLY);
        libc::unlink(c.as_ptr());
        if fd < 0 {
            return false;
        }
        libc::close(fd);
    }
    true
}

/// What the battery may change on the host, read before and after.
#[derive(Debug, PartialEq, Eq)]
struct HostState {
    sysctls: Vec<String>,
    hostname: String,
    time_zone: (i32, i32),
    mounts_of_probe: usize,
    interfaces: Vec<String>,
}

const HOST_SYSCTLS: &[&str] = &[
    "/proc/sys/vm/swappiness",
    "/proc/sys/kernel/printk_ratelimit",
];

/// `struct timezone` (libc has it only as an opaque type).
#[repr(C)]
#[derive(Default)]
struct TimeZone {
    minutes_west: i32,
    dst_time: i32,
}

fn host_state() -> HostState {
    let mut tz = TimeZone::default();
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: reading the clock and time zone into locals of the kernel's layout.
    unsafe { libc::gettimeofday(&mut tv, (&mut tz as *mut TimeZone).cast()) };
    let mut interfaces: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    interfaces.sort();
    HostState {
        sysctls: HOST_SYSCTLS
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default(),
        time_zone: (tz.minutes_west, tz.dst_time),
        mounts_of_probe: std::fs::read_to_string("/proc/1/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("vzprobe"))
            .count(),
        interfaces,
    }
}

/// A file on the host that no VPS can see; a probe that finds it got out.
struct Marker(PathBuf);

impl Marker {
    /// One per VPS: the tests of one process run at once.
    fn new(id: &str) -> Marker {
        let p = std::env::temp_dir().join(format!("vzprobe-marker-{}-{id}", std::process::id()));
        std::fs::write(&p, "host\n").unwrap();
        Marker(p)
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Run every probe in VPS `id`. `walled`: each must be refused; else
/// (privileged) the ones privilege allows must go through.
fn battery(h: &Host, id: &str, walled: bool) {
    let marker = Marker::new(id);
    let before = host_state();
    let who = if walled { "default" } else { "privileged" };
    let refused = |a: &Answer, errno: i32, what: &str| {
        assert!(
            !a.ok && a.errno == errno,
            "{what} in a {who} VPS: expected errno {errno}, got {}",
            a.line
        );
    };

    // How the processes inside are narrowed (init and exec alike).
    let status = probe(h, id, "status").line;
    if walled {
        assert!(status.contains("NoNewPrivs: 0"), "{status}");
        assert!(status.contains("Seccomp: 2"), "{status}");
        assert!(!status.contains("CapBnd: 000001ffffffffff"), "{status}");
    }

    // Load a kernel module: the filter answers before the kernel does.
    let a = probe(h, id, "module");
    if walled {
        refused(&a, EPERM, "init_module");
    } else {
        // The kernel's own answer (no modules, or a bad image): the call got
        // past every wall.
        assert!(
            !a.ok && a.errno != EPERM,
            "init_module privileged: {}",
            a.line
        );
    }

    match host_disk() {
        None => eprintln!("skipped: the host's / is not on a block device; no disk probes"),
        Some((major, minor, _)) if !host_opens_disk(major, minor) => eprintln!(
            "skipped: this machine refuses its own root the open of its disk {major}:{minor}, so the disk probes prove nothing here (the kmsg probe shows the device policy)"
        ),
        Some((major, minor, fstype)) => {
            let a = probe(h, id, &format!("disk-read {major} {minor}"));
            if walled {
                // mknod is allowed (package scripts make nodes) where the
                // kernel lets the VPS's root make nodes at all; open is not.
                refused(&a, EPERM, "open of the host's disk");
            } else {
                assert!(a.ok, "disk read privileged: {}", a.line);
            }
            let a = probe(h, id, &format!("disk-mount {major} {minor} {fstype}"));
            if walled {
                refused(&a, EPERM, "mount of the host's disk");
            } else {
                assert!(a.ok, "disk mount privileged: {}", a.line);
            }
        }
    }

    for path in HOST_SYSCTLS {
        let a = probe(h, id, &format!("sysctl {path}"));
        if walled {
            refused(&a, EROFS, path);
        } else {
            assert!(a.ok, "{path} privileged: {}", a.line);
        }
    }
    // The VPS's own network namespace's settings stay writable.
    let a = probe(h, id, "sysctl /proc/sys/net/ipv4/ip_forward");
    assert!(a.ok, "net.* in a {who} VPS: {}", a.line);

    let a = probe(h, id, "sys-rw");
    if walled {
        refused(&a, EPERM, "remount of /sys rw");
    } else {
        assert!(a.ok, "/sys rw privileged: {}", a.line);
    }

    // A host device no capability guards, only the device policy: the
    // loop control device (it makes loop devices on the host).
    if Path::new("/dev/loop-control").exists() {
        let a = probe(h, id, "open-dev 10 237");
        if walled {
            refused(&a, EPERM, "open of /dev/loop-control");
        } else {
            assert!(a.ok, "/dev/loop-control privileged: {}", a.line);
        }
    }

    for p in ["kmsg", "dmesg"] {
        let a = probe(h, id, p);
        if walled {
            refused(&a, EPERM, p);
        } else {
            assert!(a.ok, "{p} privileged: {}", a.line);
        }
    }
    // Masked: the host kernel's symbols and timers read as nothing.
    for path in ["/proc/kallsyms", "/proc/timer_list", "/proc/kcore"] {
        if !Path::new(path).exists() {
            continue;
        }
        let a = probe(h, id, &format!("size {path}"));
        if walled {
            assert!(
                a.ok && a.line == "ok 0 bytes",
                "{path} in a default VPS: {}",
                a.line
            );
        } else {
            assert!(
                a.ok && a.line != "ok 0 bytes",
                "{path} privileged: {}",
                a.line
            );
        }
    }

    let a = probe(h, id, "clock");
    if walled {
        refused(&a, EPERM, "settimeofday");
    } else {
        assert!(a.ok, "clock privileged: {}", a.line);
    }

    // A host process: this test. Not there to signal, in both.
    let a = probe(h, id, &format!("signal {}", std::process::id()));
    refused(&a, ESRCH, "signal to a host process");

    // Only the VPS's own loopback, in both.
    let a = probe(h, id, "netif");
    assert_eq!(a.line, "ok lo", "interfaces in a {who} VPS");

    let a = probe(h, id, "shocker");
    if walled {
        refused(&a, EPERM, "open_by_handle_at");
    } else {
        assert!(a.ok, "open_by_handle_at privileged: {}", a.line);
    }

    // `..` and rename races stay inside, in both (mount namespace + pivot).
    let m = marker.0.display().to_string();
    let a = probe(h, id, &format!("dotdot {m}"));
    assert!(!a.ok, "`..` escape in a {who} VPS: {}", a.line);
    let a = probe(h, id, &format!("rename-race {m}"));
    assert!(!a.ok, "rename-race escape in a {who} VPS: {}", a.line);

    assert_eq!(host_state(), before, "the host changed under a {who} VPS");
    assert_eq!(std::fs::read_to_string(&marker.0).unwrap(), "host\n");

    // reboot(2) may end the VPS, nothing more.
    let _ = h.vzctl(&["exec", id, &format!("{PROBE} reboot")]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while h.ok(&["status", id], 0).contains("running") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        h.ok(&["status", id], 0).contains("down"),
        "reboot did not end the {who} VPS"
    );
    assert_eq!(
        host_state(),
        before,
        "reboot in a {who} VPS changed the host"
    );
}

#[test]
fn escape_battery_fails_in_a_default_vps_and_the_host_is_unchanged() {
    let Some(h) = host() else { return };
    create(&h, "801", false);
    h.ok(&["start", "801"], 0);
    // The devices cgroup holds only the allowed devices while it runs.
    let cg = h.devices_cgroup("801");
    let list = std::fs::read_to_string(cg.join("devices.list")).unwrap();
    assert!(
        list.contains("c 1:3 rwm") && !list.contains("a *:*"),
        "{list}"
    );
    let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap();
    assert!(!procs.trim().is_empty(), "init is not in {}", cg.display());
    // /dev/console is a pty of the VPS's own, read by a keeper outside:
    // writing a lot to it does not block.
    let out = h.ok(
        &[
            "exec",
            "801",
            "test -c /dev/console && i=0 && while [ $i -lt 4000 ]; do echo 'a console line of some length, to fill a pty buffer'; i=$((i+1)); done > /dev/console && echo written",
        ],
        0,
    );
    assert_eq!(out, "written\n");
    battery(&h, "801", true);
    let _ = h.vzctl(&["stop", "801"]);
    assert!(!cg.exists(), "{} left after stop", cg.display());
}

#[test]
fn escape_battery_goes_through_in_a_privileged_vps() {
    let Some(h) = host() else { return };
    if !has_userns_option(&h) {
        eprintln!("skipped: this build has no `vzctl create --userns no` (privileged VPSs)");
        return;
    }
    create(&h, "802", true);
    h.ok(&["start", "802"], 0);
    battery(&h, "802", false);
}

#[test]
fn grants_open_devices_and_capabilities_and_setuid_works() {
    let Some(h) = host() else { return };
    create(&h, "803", false);
    // A setuid program, as a package would install it.
    let suid = h.vz().join("private/803/fs/bin/vzprobe-suid");
    std::fs::create_dir_all(suid.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_vzprobe"), &suid).unwrap();
    // Root's inside: the first ids of the VPS's range.
    let (uid, gid) = h.root_ids("803");
    std::os::unix::fs::chown(&suid, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    h.ok(&["start", "803"], 0);

    // setuid works inside: no no_new_privs.
    let out = h.ok(
        &[
            "exec",
            "803",
            "setpriv --reuid=1000 --regid=1000 --clear-groups /bin/vzprobe-suid ids",
        ],
        0,
    );
    assert_eq!(out.trim(), "ok uid=1000 euid=0");

    // Device numbers granted live, then taken back live (/dev/fuse's): a
    // user namespace's root makes no nodes, so the devices cgroup is what
    // `--devices` changes, and a mknod-and-open stays refused.
    let fuse = "open-dev 10 229";
    assert_eq!(probe(&h, "803", fuse).errno, EPERM);
    let list = || std::fs::read_to_string(h.devices_cgroup("803").join("devices.list")).unwrap();
    assert!(!list().contains("c 10:229 r"), "{}", list());
    h.ok(&["set", "803", "--devices", "c:10:229:r"], 0);
    assert!(list().contains("c 10:229 rm"), "{}", list());
    h.ok(&["set", "803", "--devices", "c:10:229:none"], 0);
    assert!(!list().contains("c 10:229 r"), "{}", list());
    assert_eq!(probe(&h, "803", fuse).errno, EPERM);

    // A node granted by name, live: the host's node appears inside and
    // opens; saved in the config; taken back, it no longer opens.
    let has_fuse = Path::new("/dev/fuse").exists();
    if has_fuse {
        assert!(!probe(&h, "803", "open-path /dev/fuse").ok);
        h.ok(&["set", "803", "--devnodes", "fuse:rw", "--save"], 0);
        let conf = std::fs::read_to_string(h.vz().join("conf/803.conf")).unwrap();
        assert!(conf.contains("DEVNODES=\"fuse:rw\""), "{conf}");
        let out = h.ok(&["exec", "803", "test -c /dev/fuse && echo node"], 0);
        assert_eq!(out, "node\n");
        let a = probe(&h, "803", "open-path /dev/fuse");
        assert!(a.ok, "granted /dev/fuse: {}", a.line);
        h.ok(&["set", "803", "--devnodes", "fuse:none"], 0);
        assert_eq!(probe(&h, "803", "open-path /dev/fuse").errno, EPERM);
    } else {
        eprintln!("skipped the --devnodes part: this host has no /dev/fuse");
    }

    // A capability switched on: at the next start. (sys_admin: one the
    // VPS's user namespace makes real; the clock's sys_time is not
    // namespaced, so the kernel refuses it to an unprivileged VPS anyway.)
    assert_eq!(probe(&h, "803", "mount-tmpfs").errno, EPERM);
    h.ok(&["set", "803", "--capability", "sys_admin:on", "--save"], 0);
    // Until then, a command entering the VPS has what its init has.
    assert_eq!(probe(&h, "803", "mount-tmpfs").errno, EPERM);
    h.ok(&["restart", "803"], 0);
    let a = probe(&h, "803", "mount-tmpfs");
    assert!(a.ok, "mount with sys_admin:on: {}", a.line);
    if has_fuse {
        // Made again at start from the config, and it opens.
        let a = probe(&h, "803", "open-path /dev/fuse");
        assert!(a.ok, "/dev/fuse after a restart: {}", a.line);
    }

    // Bad grants: a clear error, the config as it was.
    let conf = std::fs::read_to_string(h.vz().join("conf/803.conf")).unwrap();
    for bad in [
        vec!["--devices", "x:1:2:rw"],
        vec!["--devnodes", "../sda:rw"],
        vec!["--capability", "ve_admin:on"],
        vec!["--capability", "sys_time:maybe"],
    ] {
        let mut args = vec!["set", "803"];
        args.extend(bad.iter().copied());
        args.push("--save");
        let out = h.vzctl(&args);
        assert_eq!(out.status.code(), Some(21), "{bad:?}: {}", text(&out));
        assert!(text(&out).contains(bad[0]), "{}", text(&out));
    }
    assert_eq!(
        std::fs::read_to_string(h.vz().join("conf/803.conf")).unwrap(),
        conf
    );
}

#[test]
fn symlinks_planted_in_the_private_area_stay_inside() {
    let Some(h) = host() else { return };
    create(&h, "804", false);
    // While stopped, the private area's /etc becomes a link to a host
    // directory, and /dev and /proc links to host paths.
    let victim = tempfile::tempdir().unwrap();
    std::fs::write(victim.path().join("hostname"), "host\n").unwrap();
    std::fs::write(victim.path().join("hosts"), "host\n").unwrap();
    let fs = h.vz().join("private/804/fs");
    let _ = std::fs::remove_dir_all(fs.join("etc"));
    std::os::unix::fs::symlink(victim.path(), fs.join("etc")).unwrap();

    // vzctl writes the identity files inside the VPS's tree, whatever the
    // link says.
    let _ = h.vzctl(&["set", "804", "--hostname", "planted", "--save"]);
    assert_eq!(
        std::fs::read_to_string(victim.path().join("hostname")).unwrap(),
        "host\n"
    );
    assert_eq!(
        std::fs::read_to_string(victim.path().join("hosts")).unwrap(),
        "host\n"
    );

    // A relative link climbing out resolves at the VPS's top instead.
    std::fs::remove_file(fs.join("etc")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../..", fs.join("etc")).unwrap();
    let _ = h.vzctl(&["set", "804", "--hostname", "climber", "--save"]);
    for entry in std::fs::read_dir(victim.path()).unwrap().flatten() {
        assert_eq!(std::fs::read_to_string(entry.path()).unwrap(), "host\n");
    }
    std::fs::remove_file(fs.join("etc")).unwrap();
    std::fs::create_dir(fs.join("etc")).unwrap();

    // Mount points that are links: the start refuses, nothing is mounted
    // on the host's directory.
    for name in ["dev", "proc", "sys"] {
        let _ = std::fs::remove_dir(fs.join(name));
        std::os::unix::fs::symlink(victim.path(), fs.join(name)).unwrap();
        let out = h.vzctl(&["start", "804"]);
        assert_ne!(out.status.code(), Some(0), "start with /{name} a link");
        assert!(text(&out).contains("not a directory"), "{}", text(&out));
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(&victim.path().display().to_string()),
            "something was mounted on the host's {}",
            victim.path().display()
        );
        std::fs::remove_file(fs.join(name)).unwrap();
        let _ = h.vzctl(&["umount", "804"]);
    }
    // And with the links gone it starts, its hostname where it belongs.
    h.ok(&["set", "804", "--hostname", "settled", "--save"], 0);
    h.ok(&["start", "804"], 0);
    assert_eq!(h.ok(&["exec", "804", "cat /etc/hostname"], 0), "settled\n");
}

#[test]
fn exec_on_a_stopped_vps_gets_the_same_walls() {
    let Some(h) = host() else { return };
    create(&h, "805", false);
    // Not started: exec gets fresh namespaces on the root, walled like init.
    let status = probe(&h, "805", "status").line;
    assert!(
        status.contains("Seccomp: 2") && status.contains("NoNewPrivs: 0"),
        "{status}"
    );
    assert_eq!(probe(&h, "805", "module").errno, EPERM);
    assert_eq!(probe(&h, "805", "open-dev 10 237").errno, EPERM);
    assert_eq!(probe(&h, "805", "sys-rw").errno, EPERM);
    assert_eq!(probe(&h, "805", "netif").line, "ok lo");
    assert_eq!(
        h.ok(&["status", "805"], 0),
        "CTID 805 exist unmounted down\n"
    );
    assert!(!h.devices_cgroup("805").exists());
}
