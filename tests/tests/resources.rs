//! Resources per VPS through the real `vzctl`: its cgroup on this host's
//! hierarchies, OpenVZ's limits, beancounters and the VPS's own figures
//! inside. Every host has a cgroup parent of its own (`VZ_CGROUP_PARENT`),
//! so runs at the same time never meet. A fork bomb or a memory hog runs
//! only after the test has read its limit back from the cgroup.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vzpkg_tests::fixture::text;
use vzpkg_tests::vzhost::{Template, VzHost as Host};

const BAD_VALUE: i32 = 21;

/// One test at a time: a fork bomb or a busy loop beside a CPU
/// measurement would skew it (the machine has two CPUs).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn host(what: &str) -> Option<Host> {
    if !Path::new("/sys/fs/cgroup").is_dir() {
        eprintln!("skipped: {what}: no /sys/fs/cgroup on this machine");
        return None;
    }
    Host::new(
        what,
        false,
        &[Template {
            name: "tiny",
            tools: &[
                "sh", "sleep", "cat", "tail", "free", "nproc", "uptime", "head",
            ],
            files: &[],
            init: None,
        }],
    )
}

/// The VPS's directory in the hierarchy that has `file`, if any.
fn cg_file(h: &Host, id: &str, file: &str) -> Option<PathBuf> {
    h.cgroup_dirs(Some(id))
        .into_iter()
        .map(|d| d.join(file))
        .find(|p| p.exists())
}

fn read_cg(h: &Host, id: &str, file: &str) -> String {
    let p = cg_file(h, id, file).unwrap_or_else(|| panic!("no {file} for VPS {id}"));
    std::fs::read_to_string(&p).unwrap().trim().to_string()
}

/// Skip unless the host has every v1 controller in `needed` for VPS cgroups.
fn have(what: &str, needed: &[&str]) -> bool {
    let roots = vzpkg_tests::vzhost::cgroup_roots();
    for c in needed {
        if !roots.iter().any(|r| {
            r.file_name()
                .is_some_and(|n| n.to_string_lossy().split(',').any(|x| x == *c))
        }) {
            eprintln!("skipped: {what} needs the v1 `{c}` cgroup hierarchy");
            return false;
        }
    }
    true
}

/// A command inside, in the background, its output thrown away (a bomb's
/// children keep any pipe open).
fn spawn_inside(h: &Host, id: &str, cmd: &str) -> std::process::Child {
    h.vzctl_command(&["exec", id, cmd])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The beancounter `resource` of VPS `id` from `vzctl ubc`: (held, failcnt).
fn ubc(h: &Host, id: &str, resource: &str) -> (u64, u64) {
    let out = h.ok(&["ubc", id], 0);
    let beans = vzpkg::cgroup::beancounters::parse(&out);
    let b = beans
        .iter()
        .find(|(c, b)| c.to_string() == id && b.resource == resource)
        .unwrap_or_else(|| panic!("no {resource} for {id} in:\n{out}"));
    (b.1.held, b.1.failcnt)
}

#[test]
fn init_and_commands_live_in_the_vps_cgroup_which_goes_at_stop() {
    let _serial = serial();
    let Some(h) = host("cgroup per VPS") else {
        return;
    };
    if !have("cgroup per VPS", &["memory", "pids", "cpu"]) {
        return;
    }
    h.ok(&["create", "501", "--ostemplate", "tiny"], 0);
    h.ok(&["start", "501"], 0);
    let dirs = h.cgroup_dirs(Some("501"));
    for c in [
        "cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer",
    ] {
        assert!(
            dirs.iter()
                .any(|d| d.to_string_lossy().contains(&format!("/{c}/"))),
            "no {c} cgroup in {dirs:?}"
        );
    }
    let pid: i32 = std::fs::read_to_string(h.vz().join("run/501.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let procs = read_cg(&h, "501", "pids.current");
    assert_eq!(procs, "1", "only init runs");
    assert!(read_cg(&h, "501", "cgroup.procs")
        .lines()
        .any(|l| l == pid.to_string()));
    // Inside, its own cgroup namespace: every hierarchy shows `/`, which it
    // does only for a command that joined the VPS's cgroup first.
    let inside = h.ok(&["exec", "501", "cat /proc/self/cgroup"], 0);
    assert!(!inside.is_empty());
    for line in inside.lines() {
        assert!(line.ends_with(":/"), "{inside}");
    }
    let init_view = h.ok(&["exec", "501", "cat /proc/1/cgroup"], 0);
    assert!(init_view.lines().all(|l| l.ends_with(":/")), "{init_view}");
    // An exec'd command counts against the VPS.
    let mut bg = spawn_inside(&h, "501", "sleep 30");
    let deadline = Instant::now() + Duration::from_secs(5);
    let has_sleep = || {
        read_cg(&h, "501", "cgroup.procs").lines().any(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep")
        })
    };
    while !has_sleep() {
        assert!(
            Instant::now() < deadline,
            "the exec'd sleep never showed in the VPS's cgroup"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    h.ok(&["stop", "501"], 0);
    let _ = bg.wait();
    assert!(
        h.cgroup_dirs(Some("501")).is_empty(),
        "cgroup left after stop"
    );
}

#[test]
fn fork_bomb_stops_at_numproc_and_the_host_answers() {
    let _serial = serial();
    let Some(h) = host("fork bomb") else { return };
    if !have("fork bomb", &["pids"]) {
        return;
    }
    h.ok(
        &["create", "502", "--ostemplate", "tiny", "--numproc", "200"],
        0,
    );
    let conf = std::fs::read_to_string(h.vz().join("conf/502.conf")).unwrap();
    assert!(conf.contains("NUMPROC=\"200:200\""), "{conf}");
    h.ok(&["start", "502"], 0);
    // The limit first; only then the bomb.
    assert_eq!(read_cg(&h, "502", "pids.max"), "200");
    // Every child forks two more and then becomes a `sleep`, so the tree
    // stays at the limit until stop instead of dying out between two looks
    // (a bomb whose shells exit can fall back to init alone in a moment).
    let mut bomb = spawn_inside(&h, "502", "f() { f & f & exec sleep 60; }; f");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut worst = Duration::ZERO;
    loop {
        let t = Instant::now();
        let ok = Command::new("true").status().unwrap().success();
        worst = worst.max(t.elapsed());
        assert!(ok);
        let current: u64 = read_cg(&h, "502", "pids.current").parse().unwrap();
        assert!(current <= 200, "{current} tasks, over the limit");
        if ubc(&h, "502", "numproc").1 > 0 && current >= 150 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bomb never reached its limit ({current} tasks)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        worst < Duration::from_secs(1),
        "a host command took {worst:?} during the bomb"
    );
    let (held, failcnt) = ubc(&h, "502", "numproc");
    assert!(held <= 200 && failcnt > 0, "held {held} failcnt {failcnt}");
    h.ok(&["stop", "502", "--fast"], 0);
    let _ = bomb.wait();
    assert!(
        h.cgroup_dirs(Some("502")).is_empty(),
        "cgroup left after stop"
    );
}

#[test]
fn memory_hog_is_killed_inside_and_its_neighbour_carries_on() {
    let _serial = serial();
    let Some(h) = host("memory hog") else { return };
    if !have("memory hog", &["memory"]) {
        return;
    }
    h.ok(
        &[
            "create",
            "503",
            "--ostemplate",
            "tiny",
            "--ram",
            "128M",
            "--swap",
            "0",
        ],
        0,
    );
    h.ok(&["create", "504", "--ostemplate", "tiny"], 0);
    h.ok(&["start", "503"], 0);
    h.ok(&["start", "504"], 0);
    let limit = (128u64 << 20).to_string();
    assert_eq!(read_cg(&h, "503", "memory.limit_in_bytes"), limit);
    if let Some(p) = cg_file(&h, "503", "memory.memsw.limit_in_bytes") {
        assert_eq!(std::fs::read_to_string(p).unwrap().trim(), limit);
    }
    // `tail` keeps a line in memory until it ends: /dev/zero has no end.
    let out = h.vzctl(&["exec", "503", "tail /dev/zero"]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "not killed by SIGKILL: {}",
        text(&out)
    );
    let (_, failcnt) = ubc(&h, "503", "physpages");
    assert!(failcnt >= 1, "the OOM kill is not counted");
    // The VPS itself, its neighbour and the host carry on.
    assert_eq!(h.ok(&["exec", "503", "echo alive"], 0), "alive\n");
    assert_eq!(h.ok(&["exec", "504", "echo alive"], 0), "alive\n");
    assert!(h.ok(&["status", "504"], 0).contains("running"));
}

/// CPU time (ns) the VPS's cgroup used over `secs`.
fn cpu_used(h: &Host, id: &str, secs: f64) -> f64 {
    let read = || read_cg(h, id, "cpuacct.usage").parse::<f64>().unwrap();
    let a = read();
    std::thread::sleep(Duration::from_secs_f64(secs));
    (read() - a) / (secs * 1e9)
}

/// Both measurements in one test: they must not run beside each other.
#[test]
fn cpu_limit_and_cpu_weight() {
    let _serial = serial();
    let Some(h) = host("CPU limits") else { return };
    if !have("CPU limits", &["cpu", "cpuacct", "cpuset"]) {
        return;
    }
    // --cpulimit 50 on CPU 1: a busy loop gets half of it. A high weight,
    // so other work on the machine cannot take the VPS below its limit.
    h.ok(
        &[
            "create",
            "505",
            "--ostemplate",
            "tiny",
            "--cpulimit",
            "50",
            "--cpumask",
            "1",
            "--cpuunits",
            "100000",
        ],
        0,
    );
    h.ok(&["start", "505"], 0);
    // The weight counts within the parent, which competes with the rest of
    // the machine: this host's own parent gets the highest weight too.
    for d in h.cgroup_dirs(None) {
        let f = d.join("cpu.shares");
        if f.exists() {
            std::fs::write(f, "262144").unwrap();
        }
    }
    assert_eq!(read_cg(&h, "505", "cpu.cfs_quota_us"), "50000");
    assert_eq!(read_cg(&h, "505", "cpuset.cpus"), "1");
    let mut busy = spawn_inside(&h, "505", "while :; do :; done");
    std::thread::sleep(Duration::from_millis(500));
    let mut share = cpu_used(&h, "505", 5.0);
    if !(0.4..=0.6).contains(&share) {
        eprintln!("CPU limit: {share:.2} of a CPU, measuring again (the machine may be loaded)");
        share = cpu_used(&h, "505", 5.0);
    }
    h.ok(&["stop", "505", "--fast"], 0);
    let _ = busy.wait();
    assert!(
        (0.4..=0.6).contains(&share),
        "--cpulimit 50 gave {share:.3} of a CPU"
    );

    // --cpuunits 1000 against 3000 on one CPU: 1:3.
    for (id, units) in [("506", "1000"), ("507", "3000")] {
        h.ok(
            &[
                "create",
                id,
                "--ostemplate",
                "tiny",
                "--cpuunits",
                units,
                "--cpumask",
                "0",
            ],
            0,
        );
        h.ok(&["start", id], 0);
    }
    assert_eq!(read_cg(&h, "506", "cpu.shares"), "1024");
    assert_eq!(read_cg(&h, "507", "cpu.shares"), "3072");
    let mut loops = vec![
        spawn_inside(&h, "506", "while :; do :; done"),
        spawn_inside(&h, "507", "while :; do :; done"),
    ];
    std::thread::sleep(Duration::from_millis(500));
    let measure = || {
        let read = |id| read_cg(&h, id, "cpuacct.usage").parse::<f64>().unwrap();
        let (a0, b0) = (read("506"), read("507"));
        std::thread::sleep(Duration::from_secs(5));
        let (a, b) = (read("506") - a0, read("507") - b0);
        (b / a, (a + b) / 5e9)
    };
    let (mut ratio, mut total) = measure();
    if !(2.55..=3.45).contains(&ratio) {
        eprintln!("CPU weight: ratio {ratio:.2} with {total:.2} CPUs used, measuring again");
        (ratio, total) = measure();
    }
    for id in ["506", "507"] {
        h.ok(&["stop", id, "--fast"], 0);
    }
    for l in &mut loops {
        let _ = l.wait();
    }
    assert!(
        (2.55..=3.45).contains(&ratio),
        "cpuunits 3000:1000 gave {ratio:.3} (CPU used {total:.2})"
    );
}

#[test]
fn set_changes_a_running_vps_at_once_and_save_keeps_it() {
    let _serial = serial();
    let Some(h) = host("live set") else { return };
    if !have("live set", &["memory", "pids"]) {
        return;
    }
    h.ok(&["create", "508", "--ostemplate", "tiny"], 0);
    h.ok(&["start", "508"], 0);
    assert_eq!(read_cg(&h, "508", "pids.max"), "max");
    h.ok(
        &[
            "set",
            "508",
            "--ram",
            "64M",
            "--swap",
            "0",
            "--numproc",
            "50",
        ],
        0,
    );
    assert_eq!(
        read_cg(&h, "508", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(read_cg(&h, "508", "pids.max"), "50");
    let conf = std::fs::read_to_string(h.vz().join("conf/508.conf")).unwrap();
    assert!(!conf.contains("PHYSPAGES"), "saved without --save: {conf}");
    // In force: a hog is killed at 64M.
    let out = h.vzctl(&["exec", "508", "tail /dev/zero"]);
    assert_eq!(out.status.code(), Some(137), "{}", text(&out));
    // Up again, past the old memory+swap limit, and saved.
    h.ok(
        &["set", "508", "--ram", "256M", "--swap", "128M", "--save"],
        0,
    );
    assert_eq!(
        read_cg(&h, "508", "memory.limit_in_bytes"),
        (256u64 << 20).to_string()
    );
    let conf = std::fs::read_to_string(h.vz().join("conf/508.conf")).unwrap();
    assert!(conf.contains("PHYSPAGES=\"0:65536\""), "{conf}");
    assert!(conf.contains("SWAPPAGES=\"0:32768\""), "{conf}");
    assert!(!conf.contains("NUMPROC"), "{conf}");
    // Disk throughput on the private area's disk, where it is on one.
    let out = h.vzctl(&["set", "508", "--iolimit", "10M", "--iopslimit", "300"]);
    if out.status.code() == Some(0) {
        let bps = read_cg(&h, "508", "blkio.throttle.write_bps_device");
        assert!(bps.ends_with(" 10485760"), "{bps}");
        let iops = read_cg(&h, "508", "blkio.throttle.read_iops_device");
        assert!(iops.ends_with(" 300"), "{iops}");
        h.ok(&["set", "508", "--iolimit", "0", "--iopslimit", "0"], 0);
        assert_eq!(read_cg(&h, "508", "blkio.throttle.write_bps_device"), "");
    } else {
        assert!(text(&out).contains("no block device"), "{}", text(&out));
    }
    // A bad value changes nothing, live or saved.
    let out = h.vzctl(&["set", "508", "--cpumask", "4000", "--save"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("CPU"), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(h.vz().join("conf/508.conf")).unwrap(),
        conf
    );
    for (opt, bad) in [
        ("--ram", "12X"),
        ("--cpuunits", "7"),
        ("--cpulimit", "x"),
        ("--numproc", "9:5"),
    ] {
        let out = h.vzctl(&["set", "508", opt, bad]);
        assert_eq!(
            out.status.code(),
            Some(BAD_VALUE),
            "{opt} {bad}: {}",
            text(&out)
        );
        assert!(text(&out).contains(opt), "{}", text(&out));
    }
}

#[test]
fn no_cgroup_is_left_after_vzctl_is_killed_mid_start() {
    let _serial = serial();
    let Some(h) = host("kill -9 mid-start") else {
        return;
    };
    if !have("kill -9 mid-start", &["pids", "freezer"]) {
        return;
    }
    h.ok(&["create", "509", "--ostemplate", "tiny"], 0);
    // Kill vzctl once its cgroup exists, before the pid file does: poll hard.
    let mut caught = false;
    for _ in 0..20 {
        let mut start = h
            .vzctl_command(&["start", "509"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.cgroup_dirs(Some("509")).is_empty() && Instant::now() < deadline {
            std::hint::spin_loop();
        }
        // SAFETY: the vzctl this test started.
        unsafe { libc::kill(start.id() as i32, libc::SIGKILL) };
        let _ = start.wait();
        caught |= !h.vz().join("run/509.pid").exists();
        if caught {
            break;
        }
        h.ok(&["stop", "509", "--fast"], 0);
    }
    if !caught {
        eprintln!("note: vzctl finished its start before the kill every time");
    }
    // The next start clears what was left and runs one init.
    h.ok(&["start", "509"], 0);
    assert_eq!(read_cg(&h, "509", "pids.current"), "1");
    h.ok(&["stop", "509"], 0);
    assert!(
        h.cgroup_dirs(Some("509")).is_empty(),
        "cgroup left after stop"
    );
    // And a stop of a VPS that is not running clears a leftover too.
    let mut start = h
        .vzctl_command(&["start", "509"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    while h.cgroup_dirs(Some("509")).is_empty() {
        std::hint::spin_loop();
    }
    // SAFETY: as above.
    unsafe { libc::kill(start.id() as i32, libc::SIGKILL) };
    let _ = start.wait();
    let _ = std::fs::remove_file(h.vz().join("run/509.pid"));
    let out = h.vzctl(&["stop", "509"]);
    assert!(
        matches!(out.status.code(), Some(0) | Some(31)),
        "{}",
        text(&out)
    );
    assert!(
        h.cgroup_dirs(Some("509")).is_empty(),
        "cgroup left after a killed start"
    );
}

#[test]
fn create_with_the_basic_sample_and_list_beancounters() {
    let _serial = serial();
    let Some(h) = host("config sample") else {
        return;
    };
    if !have("config sample", &["memory", "pids"]) {
        return;
    }
    h.ok(
        &["create", "510", "--ostemplate", "tiny", "--config", "basic"],
        0,
    );
    let conf = std::fs::read_to_string(h.vz().join("conf/510.conf")).unwrap();
    for want in [
        "PHYSPAGES=\"0:65536\"",
        "SWAPPAGES=\"0:65536\"",
        "DISKSPACE=\"10485760:10485760\"",
        "CPUUNITS=\"1000\"",
        "ONBOOT=\"yes\"",
    ] {
        assert!(conf.contains(want), "{want} missing from\n{conf}");
    }
    let out = h.vzctl(&[
        "create",
        "511",
        "--ostemplate",
        "tiny",
        "--config",
        "nosuch",
    ]);
    assert_eq!(out.status.code(), Some(BAD_VALUE), "{}", text(&out));
    assert!(
        text(&out).contains("ve-nosuch.conf-sample"),
        "{}",
        text(&out)
    );
    assert!(!h.vz().join("conf/511.conf").exists());
    h.ok(&["start", "510"], 0);
    assert_eq!(
        read_cg(&h, "510", "memory.limit_in_bytes"),
        (256u64 << 20).to_string()
    );
    let listed = h.ok(&["list", "-o", "ctid,status,numproc,physpages.l"], 0);
    let row = listed.lines().nth(1).unwrap_or_default();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols, ["510", "running", "1", "65536"], "{listed}");
    let json: serde_json::Value = serde_json::from_str(&h.ok(&["list", "--json"], 0)).unwrap();
    let beans = json[0]["beancounters"].as_array().unwrap();
    assert!(
        beans
            .iter()
            .any(|b| b["resource"] == "physpages" && b["limit"] == 65536),
        "{json}"
    );
    let out = h.vzctl(&["list", "-o", "ctid,bogus"]);
    assert_eq!(out.status.code(), Some(BAD_VALUE), "{}", text(&out));
}

/// The pids of `vzctl __procview ID` processes.
fn view_pids(id: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        if args
            .windows(2)
            .any(|w| w[0] == b"__procview" && w[1] == id.as_bytes())
        {
            out.push(pid);
        }
    }
    out
}

fn host_has_view_mount() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains("vzproc")
}

#[test]
fn free_nproc_uptime_and_beancounters_inside_show_the_vps() {
    let _serial = serial();
    let Some(h) = host("/proc view") else { return };
    if !Path::new("/dev/fuse").exists() {
        eprintln!("skipped: the /proc view needs /dev/fuse (modprobe fuse)");
        return;
    }
    if !have("/proc view", &["memory", "cpuset", "cpuacct"]) {
        return;
    }
    h.ok(
        &[
            "create",
            "512",
            "--ostemplate",
            "tiny",
            "--ram",
            "256M",
            "--swap",
            "128M",
            "--cpus",
            "1",
        ],
        0,
    );
    h.ok(&["start", "512"], 0);
    assert_eq!(view_pids("512").len(), 1, "one view process");
    assert!(!host_has_view_mount(), "the view is mounted on the host");
    let free = h.ok(&["exec", "512", "free -m"], 0);
    let total = |row: &str| -> u64 {
        free.lines()
            .find(|l| l.starts_with(row))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {row} in\n{free}"))
    };
    assert_eq!(total("Mem:"), 256, "{free}");
    assert_eq!(total("Swap:"), 128, "{free}");
    assert_eq!(h.ok(&["exec", "512", "nproc"], 0).trim(), "1");
    assert_eq!(
        h.ok(&["exec", "512", "cat /sys/devices/system/cpu/online"], 0),
        "0\n"
    );
    let cpuinfo = h.ok(&["exec", "512", "cat /proc/cpuinfo"], 0);
    assert_eq!(cpuinfo.matches("processor").count(), 1, "{cpuinfo}");
    let stat = h.ok(&["exec", "512", "cat /proc/stat"], 0);
    assert!(
        stat.contains("\ncpu0 ") && !stat.contains("\ncpu1 "),
        "{stat}"
    );
    // Uptime counts from the start, not from the host's boot.
    let up = |h: &Host| -> f64 {
        h.ok(&["exec", "512", "cat /proc/uptime"], 0)
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let first = up(&h);
    assert!(first < 30.0, "uptime {first} s for a VPS just started");
    std::thread::sleep(Duration::from_millis(1100));
    assert!(up(&h) >= first + 1.0);
    let uptime = h.ok(&["exec", "512", "uptime"], 0);
    assert!(uptime.contains("up 0 min"), "{uptime}");
    let load = h.ok(&["exec", "512", "cat /proc/loadavg"], 0);
    assert_eq!(load.split_whitespace().count(), 5, "{load}");
    // Its beancounters, and only its own.
    let ubc = h.ok(&["exec", "512", "cat /dev/user_beancounters"], 0);
    let rows = vzpkg::cgroup::beancounters::parse(&ubc);
    assert!(rows.iter().all(|(c, _)| *c == 512), "{ubc}");
    assert!(
        rows.iter()
            .any(|(_, b)| b.resource == "physpages" && b.limit == 65536),
        "{ubc}"
    );
    // Read-only, and no way out of it.
    let out = h.vzctl(&["exec", "512", "echo x > /proc/meminfo"]);
    assert_ne!(out.status.code(), Some(0));
    let out = h.vzctl(&["exec", "512", "cat /proc/meminfo/../../etc/hostname"]);
    assert_ne!(out.status.code(), Some(0));
    // Stopped, the view goes by itself.
    let pid = view_pids("512")[0];
    h.ok(&["stop", "512"], 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z"))
    {
        assert!(
            Instant::now() < deadline,
            "the view process outlived its VPS"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Killed with -9: the files fail inside, nothing is left on the host.
    h.ok(&["start", "512"], 0);
    let pid = view_pids("512")[0];
    // SAFETY: the view process of this test's VPS.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(100));
    let out = h.vzctl(&["exec", "512", "cat /proc/meminfo"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!host_has_view_mount());
    h.ok(&["stop", "512"], 0);
    assert!(view_pids("512").is_empty());
    assert!(h.cgroup_dirs(Some("512")).is_empty());
}

/// Figures, not a test (`scripts/bench-resources.sh` runs it): the cost of
/// a start with limits against one without, 50 VPSs each, taken in turns in
/// the same run; and the memory of the `/proc` view's process per VPS.
#[test]
#[ignore]
fn bench_start_with_limits_and_view_memory() {
    let _serial = serial();
    let Some(h) = host("resources benchmark") else {
        return;
    };
    let n = 50;
    let limits = [
        "--ram",
        "256M",
        "--swap",
        "256M",
        "--cpuunits",
        "1000",
        "--cpulimit",
        "100",
        "--numproc",
        "200",
        "--iolimit",
        "100M",
    ];
    for i in 0..n {
        let (plain, limited) = ((2000 + i).to_string(), (3000 + i).to_string());
        h.ok(
            &[
                "create",
                &plain,
                "--ostemplate",
                "tiny",
                "--diskquota",
                "no",
            ],
            0,
        );
        let mut args = vec![
            "create",
            &limited,
            "--ostemplate",
            "tiny",
            "--diskquota",
            "no",
        ];
        args.extend(limits);
        h.ok(&args, 0);
        // Mounted first: only the start itself is timed.
        h.ok(&["mount", &plain], 0);
        h.ok(&["mount", &limited], 0);
    }
    let (mut plain_t, mut limited_t) = (Duration::ZERO, Duration::ZERO);
    for i in 0..n {
        let (plain, limited) = ((2000 + i).to_string(), (3000 + i).to_string());
        // Alternate which goes first, so a burst of load hits both alike.
        let order = if i % 2 == 0 {
            [&plain, &limited]
        } else {
            [&limited, &plain]
        };
        for id in order {
            let t = Instant::now();
            h.ok(&["start", id], 0);
            if *id == plain {
                plain_t += t.elapsed();
            } else {
                limited_t += t.elapsed();
            }
        }
    }
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / n as f64;
    println!(
        "start, {n} VPSs each: without limits {:.2} ms per VPS, with limits {:.2} ms per VPS, {:+.2} ms added (target <= 5 ms)",
        per(plain_t),
        per(limited_t),
        per(limited_t) - per(plain_t)
    );
    // The view's memory: resident and proportional set of each process.
    let (mut rss, mut pss, mut count) = (0u64, 0u64, 0u64);
    for i in 0..n {
        for id in [2000 + i, 3000 + i] {
            for pid in view_pids(&id.to_string()) {
                let kb = |file: &str, key: &str| -> u64 {
                    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
                        .unwrap_or_default()
                        .lines()
                        .find(|l| l.starts_with(key))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                        .unwrap_or(0)
                };
                rss += kb("status", "VmRSS:");
                pss += kb("smaps_rollup", "Pss:");
                count += 1;
            }
        }
    }
    // One read of every file in each VPS first, so the figure includes use.
    let _ = h.vzctl(&[
        "exec",
        "2000",
        "cat /proc/meminfo /proc/stat /proc/cpuinfo > /dev/null",
    ]);
    if let (Some(rss), Some(pss)) = (rss.checked_div(count), pss.checked_div(count)) {
        println!(
            "/proc view: {count} processes, {rss} KiB resident each ({pss} KiB proportional, shared pages split)"
        );
    }
    for i in 0..n {
        for id in [2000 + i, 3000 + i] {
            h.ok(&["stop", &id.to_string(), "--fast"], 0);
        }
    }
}
