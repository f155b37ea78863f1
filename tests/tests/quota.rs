//! Disk quota of a VPS through the real binary's `vzctl`: simfs mounted on
//! every VPS root by a process of its own, `df` inside, EDQUOT past the
//! hard limit, live `set`, recovery after that process is killed. As root
//! with /dev/fuse; skipped otherwise. The template is the host's shell and
//! a few tools with their libraries, committed into a temporary store.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use vzpkg_tests::fixture::{text, vzpkg_bin};
use vzpkg_tests::vzhost::{Template, VzHost as Host};

/// Host programs copied into the test template.
const TOOLS: &[&str] = &["sh", "sleep", "cat", "rm", "df", "dd", "head", "chown"];

/// A host with the `tools` template.
fn host() -> Option<Host> {
    Host::new(
        "quota",
        true,
        &[Template {
            name: "tools",
            tools: TOOLS,
            files: &[("etc/motd", "quota test\n")],
            init: None,
        }],
    )
}

/// `df -k /` inside: (size, used, available) in 1K blocks.
fn df(h: &Host, id: &str) -> (u64, u64, u64) {
    let out = h.ok(&["exec", id, "df -k /"], 0);
    let line = out.lines().nth(1).unwrap_or_else(|| panic!("df: {out}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    let n = |i: usize| f[i].parse::<u64>().unwrap_or_else(|_| panic!("df: {out}"));
    (n(1), n(2), n(3))
}

/// Usage as the quota counts it: a scan of the VPS's private area (the
/// upper and work dirs) on the host.
fn scanned(h: &Host, id: &str) -> vzpkg::quota::Usage {
    vzpkg::quota::scan(&h.vz().join("private").join(id)).unwrap()
}

/// The quota file vzctl and vzquota share for this VZ root.
fn quota_file(h: &Host, id: &str) -> PathBuf {
    h.vz().join("vzquota").join(format!("quota.{id}"))
}

/// The first host uid of the VPS's range (`LOCAL_UID`; the VPSs here are
/// unprivileged, the default).
fn local_uid(h: &Host, id: &str) -> u32 {
    let conf = std::fs::read_to_string(h.vz().join(format!("conf/{id}.conf"))).unwrap();
    conf.lines()
        .find_map(|l| l.strip_prefix("LOCAL_UID="))
        .map(|v| v.trim_matches('"').parse().unwrap())
        .unwrap_or_else(|| panic!("no LOCAL_UID in {conf}"))
}

fn state_dirty(h: &Host, id: &str) -> bool {
    let s = vzpkg::quota::StateFile::load(&quota_file(h, id))
        .unwrap()
        .unwrap();
    s.dirty
}

#[test]
fn quota_inside_a_vps_df_edquot_live_set_and_crash_recovery() {
    let Some(h) = host() else { return };
    let id = "201";
    // Only the private area counts (the template's files are shared):
    // measure it, then give 2M:3M and 200:250 on top.
    h.ok(
        &["create", id, "--ostemplate", "tools", "--diskquota", "yes"],
        0,
    );
    h.ok(&["mount", id], 0);
    assert_eq!(h.ok(&["status", id], 0), "CTID 201 exist mounted down\n");
    let base = scanned(&h, id);
    // A busy root stays mounted and served: an error, not a lost mount.
    let mut busy = Command::new("sleep")
        .arg("30")
        .current_dir(h.vz().join("root/201"))
        .spawn()
        .unwrap();
    let out = h.vzctl(&["umount", id]);
    let _ = busy.kill();
    let _ = busy.wait();
    assert_eq!(out.status.code(), Some(51), "{}", text(&out));
    assert!(text(&out).contains("busy"), "{}", text(&out));
    assert_eq!(h.ok(&["status", id], 0), "CTID 201 exist mounted down\n");
    h.ok(&["umount", id], 0);
    assert!(
        !state_dirty(&h, id),
        "clean after umount: {:?}",
        std::fs::read_to_string(h.vz().join("run/201.simfs.log"))
    );
    let (bk, bi) = (base.blocks_1k(), base.inodes + 10);
    let soft = bk + 2048;
    let hard = bk + 3072;
    let space = format!("{soft}:{hard}");
    let inodes = format!("{}:{}", bi + 200, bi + 250);
    h.ok(
        &[
            "set",
            id,
            "--diskspace",
            &space,
            "--diskinodes",
            &inodes,
            "--save",
        ],
        0,
    );

    let t = Instant::now();
    h.ok(&["start", id], 0);
    eprintln!("start with simfs: {:?}", t.elapsed());
    let mounts = h.ok(&["exec", id, "cat /proc/mounts"], 0);
    let root_line = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some("/"))
        .unwrap_or_else(|| panic!("no / in {mounts}"));
    assert!(
        root_line.starts_with("/dev/simfs / overlay "),
        "{root_line}"
    );
    let (size, used, avail) = df(&h, id);
    assert_eq!(size, soft, "df size is the soft limit");
    assert_eq!(used + avail, soft);

    // Past the hard limit: EDQUOT inside; usage stays under the hard limit.
    let out = h.vzctl(&[
        "exec",
        id,
        "dd if=/dev/zero of=/big bs=64k count=64 conv=fsync",
    ]);
    assert_ne!(out.status.code(), Some(0), "4 MiB fit: {}", text(&out));
    assert!(text(&out).contains("Disk quota exceeded"), "{}", text(&out));
    let (_, used, avail) = df(&h, id);
    assert!(used <= hard && avail == 0, "used {used} avail {avail}");
    // Deleting frees it.
    h.ok(&["exec", id, "rm /big"], 0);
    let (_, used_after, _) = df(&h, id);
    assert!(used_after < bk + 64, "used {used_after} after rm");

    // Raised live (no --save): the same write fits now.
    let out = h.ok(&["set", id, "--diskspace", "10M:12M"], 0);
    assert!(!out.contains("saved"), "{out}");
    h.ok(
        &[
            "exec",
            id,
            "dd if=/dev/zero of=/big bs=64k count=64 conv=fsync 2>/dev/null",
        ],
        0,
    );
    assert_eq!(df(&h, id).0, 10 << 10);
    let conf = std::fs::read_to_string(h.vz().join("conf/201.conf")).unwrap();
    assert!(conf.contains(&format!("DISKSPACE=\"{space}\"")), "{conf}");

    // Inodes: the hard limit holds too.
    let out = h.vzctl(&[
        "exec",
        id,
        "i=0; while [ $i -lt 300 ]; do : > /f$i || exit 1; i=$((i+1)); done",
    ]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("Disk quota exceeded"), "{}", text(&out));
    h.ok(&["exec", id, "rm -f /f* /big"], 0);
    h.ok(&["stop", id, "--skip-umount"], 0);

    // Kill simfs's process: the root goes stale, the state file stays dirty.
    let pid = h.simfs_pid(id).expect("simfs pid file");
    h.ok(&["exec", id, "head -c 100000 /dev/zero > /after"], 0);
    // SAFETY: a signal to the simfs process of this test's VPS.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let t = Instant::now();
    while Path::new(&format!("/proc/{pid}/stat")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z"))
            .unwrap_or(false)
        && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let e = Command::new("df")
        .arg(h.vz().join("root/201"))
        .output()
        .unwrap();
    assert!(
        text(&e).contains("Transport endpoint is not connected"),
        "{}",
        text(&e)
    );
    let st: serde_json::Value = serde_json::from_str(&h.ok(&["status", id, "--json"], 0)).unwrap();
    assert_eq!(st["mounted"], false, "{st}");
    assert!(st["stale_mount"].is_string(), "{st}");
    assert!(state_dirty(&h, id));
    h.ok(&["umount", id], 0);
    assert!(state_dirty(&h, id), "no process saved it");
    h.ok(&["mount", id], 0);
    // The rescan counts /after, written after the state was last saved;
    // the limits are the saved ones again (the live change was not saved).
    let (size, used, _) = df(&h, id);
    assert_eq!(size, soft);
    let now = scanned(&h, id);
    assert_eq!(used, now.blocks_1k(), "usage after the rescan");
    assert!(now.blocks_1k() >= bk + 97, "{now:?}");
    let out = h.ok(&["mount", id], 0);
    assert!(out.contains("already mounted"), "{out}");
    // A stale root is replaced by mount alone, too.
    let pid = h.simfs_pid(id).expect("simfs pid file");
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(200));
    let out = h.ok(&["mount", id], 0);
    assert!(out.contains("stale"), "{out}");
    assert_eq!(df(&h, id).1, now.blocks_1k());
    h.ok(&["umount", id], 0);
    assert!(!state_dirty(&h, id));

    // A hostname saved while the VPS is unmounted is charged like any
    // change inside: its identity files replace a big /etc/hosts.
    h.ok(&["exec", id, "head -c 40000 /dev/zero > /etc/hosts"], 0);
    h.ok(&["set", id, "--hostname", "renamed.example", "--save"], 0);
    assert_eq!(h.ok(&["status", id], 0), "CTID 201 exist unmounted down\n");
    assert!(!state_dirty(&h, id));
    let (_, used, _) = df(&h, id);
    assert_eq!(
        used,
        scanned(&h, id).blocks_1k(),
        "usage after set --hostname"
    );
    assert_eq!(
        h.ok(&["exec", id, "cat /etc/hostname"], 0),
        "renamed.example\n"
    );
    h.ok(&["destroy", id], 0);
    assert!(!h.vz().join("run/201.simfs.pid").exists());
    assert!(!quota_file(&h, id).exists(), "destroy drops the quota file");
}

/// The figure for the report: simfs memory per mounted VPS.
#[test]
fn simfs_memory_with_20_vpss_mounted() {
    let Some(h) = host() else { return };
    let n = 20;
    let t = Instant::now();
    for i in 0..n {
        let id = (3000 + i).to_string();
        h.ok(
            &["create", &id, "--ostemplate", "tools", "--diskquota", "yes"],
            0,
        );
        h.ok(&["mount", &id], 0);
    }
    let took = t.elapsed();
    // Some traffic through each, so the figures are not of idle processes.
    for i in 0..n {
        let id = (3000 + i).to_string();
        h.ok(
            &[
                "exec",
                &id,
                "dd if=/dev/zero of=/x bs=1M count=4 2>/dev/null; cat /bin/* > /dev/null; rm /x",
            ],
            0,
        );
    }
    let mut rss = Vec::new();
    for i in 0..n {
        let id = (3000 + i).to_string();
        let pid = h.simfs_pid(&id).expect("simfs pid");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // Pss shares the program's pages out among the processes mapping them.
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        let pss = rollup
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        rss.push((kb("VmRSS:"), kb("RssAnon:"), kb("Threads:"), pss));
    }
    let avg = |f: fn(&(u64, u64, u64, u64)) -> u64| rss.iter().map(f).sum::<u64>() / n as u64;
    eprintln!(
        "{n} VPSs mounted in {:.2}s ({:.0} ms per create+mount); simfs per VPS: RSS avg {} KiB (max {} KiB), of it anonymous {} KiB; PSS {} KiB; {} threads",
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / n as f64,
        avg(|r| r.0),
        rss.iter().map(|r| r.0).max().unwrap_or(0),
        avg(|r| r.1),
        avg(|r| r.3),
        rss[0].2
    );
    for i in 0..n {
        h.ok(&["destroy", &(3000 + i).to_string()], 0);
    }
    let left = std::fs::read_dir(h.vz().join("run"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("simfs"))
        .count();
    assert_eq!(left, 0, "simfs files left in run/");
}

/// The real binary's `vzquota`, finding the quota files by `VZ_ROOT` as
/// vzctl does.
fn vzquota(h: &Host, args: &[&str]) -> Output {
    Command::new(vzpkg_bin())
        .arg("vzquota")
        .args(args)
        .env("VZ_ROOT", h.vz())
        .env_remove("VZQUOTA_DIR")
        .output()
        .expect("run vzquota")
}

/// `vzquota stat ID` figures: (1K blocks used, soft, hard).
fn stat_blocks(out: &Output) -> (u64, u64, u64) {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("1k-blocks"))
        .unwrap_or_else(|| panic!("no 1k-blocks line in {text}"));
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|w| w.trim_end_matches('*').parse().ok())
        .collect();
    (f[0], f[1], f[2])
}

#[test]
fn vzquota_and_vzctl_share_the_live_quota_and_the_second_level_holds_inside() {
    let Some(h) = host() else { return };
    let id = "202";
    // simfs is the default; the second level on with 100 ids.
    h.ok(&["create", id, "--ostemplate", "tools"], 0);
    h.ok(&["set", id, "--quotaugidlimit", "100", "--save"], 0);
    h.ok(&["start", id], 0);
    h.ok(&["exec", id, "head -c 300000 /dev/zero > /data"], 0);

    // vzquota stat asks the live simfs: the figures of a fresh scan.
    let out = vzquota(&h, &["stat", id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (used, soft, _) = stat_blocks(&out);
    assert_eq!(used, scanned(&h, id).blocks_1k(), "{}", text(&out));
    assert_eq!(soft, 2 << 20, "the config's DISKSPACE");
    assert!(
        text(&out).contains("User/group quota: on,active"),
        "{}",
        text(&out)
    );

    // Limits set with vzquota act at once on the mounted VPS.
    let soft = used + 1000;
    let (s, hh) = (soft.to_string(), (soft + 100).to_string());
    let out = vzquota(&h, &["setlimit", id, "-b", &s, "-B", &hh]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = h.vzctl(&["exec", id, "head -c 2000000 /dev/zero > /more"]);
    assert!(text(&out).contains("Disk quota exceeded"), "{}", text(&out));
    assert_eq!(df(&h, id).0, soft, "df shows the new soft limit");
    h.ok(&["exec", id, "rm -f /more"], 0);
    // `off` of a quota simfs serves is refused with OpenVZ's "running" code.
    assert_eq!(vzquota(&h, &["off", id]).status.code(), Some(5));
    // Back to large first-level limits for the second-level part.
    h.ok(&["set", id, "--diskspace", "1G:1G"], 0);

    // Second level: uid 4242 may have 64K; a file it owns stops there,
    // root goes on writing, and chown onto 4242 past its limit is refused.
    h.ok(&["exec", id, ": > /u && chown 4242:4242 /u"], 0);
    let out = vzquota(&h, &["setlimit2", id, "-u", "4242", "64", "64", "0", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = h.vzctl(&["exec", id, "head -c 200000 /dev/zero >> /u"]);
    assert!(text(&out).contains("Disk quota exceeded"), "{}", text(&out));
    h.ok(&["exec", id, "head -c 200000 /dev/zero > /rootfile"], 0);
    let out = h.vzctl(&["exec", id, "chown 4242 /rootfile"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let out = vzquota(&h, &["stat", id, "-t"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // On the host the file is owned by uid 4242 of the VPS's range.
    let by_id = vzpkg::quota::scan_ids(&h.vz().join("private").join(id)).unwrap();
    let u = by_id
        .users
        .get(&(local_uid(&h, id) + 4242))
        .copied()
        .unwrap_or_default();
    assert!(u.blocks_1k() <= 64, "{u:?}");
    let listed = text(&out);
    // "ID type resource usage soft hard ...", live.
    let line = listed
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.len() > 5 && w[0] == "4242" && w[1] == "user" && w[2] == "1k-blocks")
        .unwrap_or_else(|| panic!("uid 4242 not listed: {listed}"));
    assert_eq!(line[3], u.blocks_1k().to_string(), "{listed}");
    assert_eq!((line[4], line[5]), ("64", "64"), "{listed}");

    // Stopped (which unmounts): the file is clean, exact, and vzquota reads it.
    h.ok(&["stop", id], 0);
    assert!(!state_dirty(&h, id));
    let out = vzquota(&h, &["show", id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(stat_blocks(&out).0, scanned(&h, id).blocks_1k());
    h.ok(&["destroy", id], 0);
}
