//! The VPS runtime end to end, through the `vzctl` front door of the real
//! binary: real overlay mounts, namespaces and processes (as root; skipped
//! otherwise). The template is committed straight into a temporary store
//! from the host's shell, coreutils and their libraries: no network.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use vzpkg_tests::fixture::{text, vzpkg_bin};
use vzpkg_tests::vzhost::{Template, VzHost as Host};

/// Exit codes `vzctl` documents (OpenVZ's).
const BAD_VALUE: i32 = 21;
const NOT_RUNNING: i32 = 31;
const RUNNING: i32 = 32;
const NOT_EXIST: i32 = 43;
const EXISTS: i32 = 44;
const NO_TEMPLATE: i32 = 91;

/// Host programs copied into the test templates.
const TOOLS: &[&str] = &["sh", "sleep", "cat", "rm", "mv"];

/// Files of the templates' own, in `/usr` and `/etc`, so the default split
/// gives several layers.
const FILES: &[(&str, &str)] = &[
    ("etc/motd", "template motd\n"),
    ("etc/doomed", "delete me\n"),
    ("etc/moving", "rename me\n"),
    ("usr/share/doc/readme", "template readme\n"),
];

/// A host with `tiny` (the built-in init) and `stubborn` (an init that
/// ignores SIGTERM).
fn host() -> Option<Host> {
    let template = |name, init| Template {
        name,
        tools: TOOLS,
        files: FILES,
        init,
    };
    Host::new(
        "VPS",
        false,
        &[
            template("tiny", None),
            // A shell as PID 1 without a trap: the kernel drops SIGTERM to it.
            template("stubborn", Some("#!/bin/sh\nwhile :; do sleep 1; done\n")),
        ],
    )
}

fn layer_trees(h: &Host, name: &str) -> Vec<PathBuf> {
    h.store().layer_trees(name).unwrap()
}

/// Path, size, inode and content of every file under `dir`.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                out.push((
                    e.path(),
                    m.size(),
                    m.ino(),
                    std::fs::read(e.path()).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn lifecycle_create_mount_start_exec_stop_destroy() {
    if std::env::var_os("VZCTL_SHIM").is_some() {
        return;
    }
    let Some(h) = host() else { return };
    let t = Instant::now();
    h.ok(
        &[
            "create",
            "101",
            "--ostemplate",
            "tiny",
            "--hostname",
            "web.example",
            "--diskspace",
            "1G:1.1G",
        ],
        0,
    );
    eprintln!("create: {:?}", t.elapsed());
    let conf = std::fs::read_to_string(h.vz().join("conf/101.conf")).unwrap();
    assert!(conf.contains("DISKSPACE=\"1048576:1153434\""), "{conf}");
    assert_eq!(
        h.ok(&["status", "101"], 0),
        "CTID 101 exist unmounted down\n"
    );
    h.ok(&["mount", "101"], 0);
    h.ok(&["mount", "101"], 0);
    assert_eq!(h.ok(&["status", "101"], 0), "CTID 101 exist mounted down\n");
    h.ok(&["start", "101"], 0);
    assert_eq!(
        h.ok(&["status", "101"], 0),
        "CTID 101 exist mounted running\n"
    );

    // Exit codes pass through; the shell runs in the VPS, not as PID 1.
    h.ok(&["exec", "101", "exit 0"], 0);
    h.ok(&["exec", "101", "exit", "42"], 42);
    h.ok(&["exec2", "101", "exit 5"], 5);
    h.ok(&["enter", "101", "--exec", "test $$ != 1 && exit 4"], 4);
    let out = h.ok(&["exec", "101", "cat /etc/hostname; echo $$"], 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "web.example");
    assert_ne!(lines[1], "1");
    // Only the VPS's own mounts are visible.
    let mounts = h.ok(&["exec", "101", "cat /proc/mounts"], 0);
    for line in mounts.lines() {
        let at = line.split(' ').nth(1).unwrap_or("");
        assert!(
            at == "/" || ["/proc", "/dev", "/sys"].iter().any(|p| at.starts_with(p)),
            "host mount visible inside: {line}"
        );
    }
    let out = h.ok(
        &[
            "exec",
            "101",
            "for p in /proc/[0-9]*; do echo ${p#/proc/}; done",
        ],
        0,
    );
    assert!(out.lines().any(|l| l == "1"), "{out}");
    assert!(
        out.lines().count() <= 3,
        "processes of other namespaces visible: {out}"
    );

    // Second start, destroy while running: refused, distinct codes.
    let out = h.vzctl(&["start", "101"]);
    assert_eq!(out.status.code(), Some(RUNNING), "{}", text(&out));
    assert!(text(&out).contains("already running"), "{}", text(&out));
    let out = h.vzctl(&["destroy", "101"]);
    assert_eq!(out.status.code(), Some(RUNNING), "{}", text(&out));
    assert!(text(&out).contains("stop it first"), "{}", text(&out));
    assert!(h.vz().join("private/101/fs").is_dir());

    let list = h.ok(&["list", "--json"], 0);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v[0]["ctid"], 101);
    assert_eq!(v[0]["running"], true);
    assert_eq!(v[0]["ostemplate"], "tiny");
    assert_eq!(v[0]["hostname"], "web.example");

    let t = Instant::now();
    let out = h.ok(&["stop", "101"], 0);
    eprintln!("stop (built-in init): {:?}", t.elapsed());
    // As OpenVZ's vzctl: stopped, then unmounted.
    assert_eq!(out, "VPS 101 was stopped\nVPS 101 is unmounted\n");
    assert_eq!(
        h.ok(&["status", "101"], 0),
        "CTID 101 exist unmounted down\n"
    );
    let out = h.vzctl(&["stop", "101"]);
    assert_eq!(out.status.code(), Some(NOT_RUNNING), "{}", text(&out));
    // On a stopped VPS exec gets fresh namespaces on the root, mounted for
    // it and unmounted after.
    h.ok(&["exec", "101", "test $$ = 1 && exit 9"], 9);
    assert_eq!(
        h.ok(&["status", "101"], 0),
        "CTID 101 exist unmounted down\n"
    );
    // --skip-umount leaves the root mounted.
    h.ok(&["start", "101"], 0);
    h.ok(&["stop", "101", "--skip-umount"], 0);
    assert_eq!(h.ok(&["status", "101"], 0), "CTID 101 exist mounted down\n");
    h.ok(&["umount", "101"], 0);
    assert_eq!(
        h.ok(&["status", "101"], 0),
        "CTID 101 exist unmounted down\n"
    );
    h.ok(&["delete", "101"], 0);
    assert_eq!(
        h.ok(&["status", "101"], 0),
        "CTID 101 deleted unmounted down\n"
    );
    for p in ["conf/101.conf", "private/101", "root/101", "run/101.pid"] {
        assert!(!h.vz().join(p).exists(), "{p} left behind");
    }
}

#[test]
fn writes_inside_leave_the_template_untouched() {
    if std::env::var_os("VZCTL_SHIM").is_some() {
        return;
    }
    let Some(h) = host() else { return };
    let layers = layer_trees(&h, "tiny");
    assert!(layers.len() > 1, "expected several layers: {layers:?}");
    let before: Vec<_> = layers.iter().map(|l| snapshot(l)).collect();
    h.ok(&["create", "102", "--ostemplate", "tiny"], 0);
    h.ok(&["start", "102"], 0);
    h.ok(
        &[
            "exec",
            "102",
            "echo changed > /etc/motd && echo more >> /usr/share/doc/readme && rm /etc/doomed && mv /etc/moving /etc/moved && echo new > /new-file && rm /bin/cat",
        ],
        0,
    );
    let out = h.ok(&["exec", "102", "read m < /etc/motd; echo $m; test -e /etc/doomed || echo gone; read r < /etc/moved; echo $r"], 0);
    assert_eq!(out, "changed\ngone\nrename me\n");
    h.ok(&["stop", "102", "--fast"], 0);
    h.ok(&["umount", "102"], 0);

    let after: Vec<_> = layers.iter().map(|l| snapshot(l)).collect();
    assert_eq!(before, after, "a layer tree changed");
    let store = h.store();
    let report = store.fsck().unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    // The changes are in the private area, a fresh VPS sees the template.
    let upper = h.vz().join("private/102/fs");
    assert_eq!(
        std::fs::read_to_string(upper.join("etc/motd")).unwrap(),
        "changed\n"
    );
    assert!(upper.join("new-file").is_file());
    h.ok(&["create", "103", "--ostemplate", "tiny"], 0);
    let out = h.ok(
        &[
            "exec",
            "103",
            "read m < /etc/motd; echo $m; test -e /etc/doomed && test -e /bin/cat && echo intact",
        ],
        0,
    );
    assert_eq!(out, "template motd\nintact\n");
    h.ok(&["destroy", "102"], 0);
    h.ok(&["destroy", "103"], 0);
}

#[test]
fn two_vpss_see_neither_files_nor_processes_of_the_other() {
    if std::env::var_os("VZCTL_SHIM").is_some() {
        return;
    }
    let Some(h) = host() else { return };
    for id in ["201", "202"] {
        h.ok(
            &[
                "create",
                id,
                "--ostemplate",
                "tiny",
                "--hostname",
                &format!("h{id}"),
            ],
            0,
        );
        h.ok(&["start", id], 0);
    }
    h.ok(
        &[
            "exec",
            "201",
            "echo secret > /root-201; sleep 1000 </dev/null >/dev/null 2>&1 &",
        ],
        0,
    );
    h.ok(&["exec", "202", "test ! -e /root-201"], 0);
    // 202 sees only its own init and the shell listing /proc.
    let procs = h.ok(&["exec", "202", "for p in /proc/[0-9]*; do cat $p/cmdline | cut -c1-0 2>/dev/null; echo ${p#/proc/}; done"], 0);
    let n = procs.lines().filter(|l| !l.is_empty()).count();
    assert!(n <= 3, "202 sees other processes: {procs}");
    let procs = h.ok(
        &[
            "exec",
            "201",
            "for p in /proc/[0-9]*; do echo ${p#/proc/}; done",
        ],
        0,
    );
    assert!(
        procs.lines().count() >= 3,
        "201's sleep is missing: {procs}"
    );
    assert_eq!(
        h.ok(&["exec", "202", "cat /proc/sys/kernel/hostname"], 0),
        "h202\n"
    );
    // A live hostname change without --save: the running VPS only.
    h.ok(&["set", "202", "--hostname", "live202"], 0);
    assert_eq!(
        h.ok(&["exec", "202", "cat /proc/sys/kernel/hostname"], 0),
        "live202\n"
    );
    assert_eq!(h.ok(&["exec", "202", "cat /etc/hostname"], 0), "h202\n");
    assert_eq!(
        h.ok(&["exec", "201", "cat /proc/sys/kernel/hostname"], 0),
        "h201\n"
    );
    assert_eq!(h.ok(&["exec", "201", "cat /etc/machine-id"], 0).len(), 33);
    assert_ne!(
        h.ok(&["exec", "201", "cat /etc/machine-id"], 0),
        h.ok(&["exec", "202", "cat /etc/machine-id"], 0)
    );
    for id in ["201", "202"] {
        h.ok(&["stop", id], 0);
        h.ok(&["destroy", id], 0);
    }
}

#[test]
fn stop_kills_an_init_that_ignores_sigterm() {
    if std::env::var_os("VZCTL_SHIM").is_some() {
        return;
    }
    let Some(h) = host() else { return };
    h.ok(&["create", "301", "--ostemplate", "stubborn"], 0);
    h.ok(&["start", "301", "--private-net"], 0);
    // Its own network namespace: loopback only, and up (IFF_UP|IFF_LOOPBACK).
    let dev = h.ok(&["exec", "301", "cat /proc/net/dev"], 0);
    let ifaces: Vec<&str> = dev.lines().skip(2).collect();
    assert!(
        ifaces.len() == 1 && ifaces[0].trim_start().starts_with("lo:"),
        "{dev}"
    );
    assert_eq!(
        h.ok(&["exec", "301", "cat /sys/class/net/lo/flags"], 0),
        "0x9\n"
    );
    assert_eq!(
        h.ok(&["status", "301"], 0),
        "CTID 301 exist mounted running\n"
    );
    let t = Instant::now();
    let out = h.ok(&["stop", "301", "--timeout", "1"], 0);
    let took = t.elapsed();
    assert!(out.contains("killed"), "{out}");
    assert!(
        took.as_secs_f64() >= 1.0 && took.as_secs_f64() < 5.0,
        "{took:?}"
    );
    assert_eq!(
        h.ok(&["status", "301"], 0),
        "CTID 301 exist unmounted down\n"
    );
    h.ok(&["destroy", "301"], 0);
}

#[test]
fn bad_input_gets_a_clear_error_and_its_own_exit_code() {
    if std::env::var_os("VZCTL_SHIM").is_some() {
        return;
    }
    let Some(h) = host() else { return };
    for bad in ["0", "abc", "-5", "10x"] {
        let out = h.vzctl(&["create", bad, "--ostemplate", "tiny"]);
        assert_eq!(out.status.code(), Some(BAD_VALUE), "{bad}: {}", text(&out));
        assert!(text(&out).contains("positive integer"), "{}", text(&out));
    }
    let out = h.vzctl(&["create", "401", "--ostemplate", "no-such-template"]);
    assert_eq!(out.status.code(), Some(NO_TEMPLATE), "{}", text(&out));
    assert!(
        text(&out).contains("no-such-template") && text(&out).contains("tiny"),
        "{}",
        text(&out)
    );
    assert!(!h.vz().join("conf/401.conf").exists());
    assert!(!h.vz().join("private/401").exists());
    let out = h.vzctl(&[
        "create",
        "401",
        "--ostemplate",
        "tiny",
        "--diskspace",
        "2G:1G",
    ]);
    assert_eq!(out.status.code(), Some(BAD_VALUE), "{}", text(&out));
    h.ok(&["create", "401", "--ostemplate", "tiny"], 0);
    let out = h.vzctl(&["create", "401", "--ostemplate", "tiny"]);
    assert_eq!(out.status.code(), Some(EXISTS), "{}", text(&out));
    let out = h.vzctl(&["start", "999"]);
    assert_eq!(out.status.code(), Some(NOT_EXIST), "{}", text(&out));
    assert!(text(&out).contains("vzctl create 999"), "{}", text(&out));
    let out = h.vzctl(&["enter", "401"]);
    assert_eq!(out.status.code(), Some(NOT_RUNNING), "{}", text(&out));
    h.ok(&["set", "401", "--hostname", "renamed", "--save"], 0);
    let conf = std::fs::read_to_string(h.vz().join("conf/401.conf")).unwrap();
    assert!(conf.contains("HOSTNAME=\"renamed\""), "{conf}");
    assert_eq!(h.ok(&["exec", "401", "cat /etc/hostname"], 0), "renamed\n");
    h.ok(&["destroy", "401"], 0);
}

/// create + mount of many VPSs on one template: the figures for the report.
#[test]
fn create_and_mount_200() {
    if std::env::var_os("VZCTL_SHIM").is_some() {
        return;
    }
    let Some(h) = host() else { return };
    let n = 200;
    let t = Instant::now();
    for i in 0..n {
        let id = (1000 + i).to_string();
        h.ok(&["create", &id, "--ostemplate", "tiny"], 0);
        h.ok(&["mount", &id], 0);
    }
    let took = t.elapsed();
    let mut blocks = 0u64;
    let mut stack = vec![h.vz().join("private/1000")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.path().symlink_metadata().unwrap();
            blocks += m.blocks();
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    eprintln!(
        "create+mount of {n} VPSs: {:.2}s total, {:.1} ms per VPS (two vzctl runs each); private area {} KiB per VPS",
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / n as f64,
        blocks / 2
    );
    let list: serde_json::Value = serde_json::from_str(&h.ok(&["list", "--json"], 0)).unwrap();
    assert_eq!(list.as_array().unwrap().len(), n);
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["mounted"] == true));
    for i in 0..n {
        h.ok(&["destroy", &(1000 + i).to_string()], 0);
    }
}

#[test]
fn a_template_in_use_by_a_vps_survives_gc() {
    let Some(h) = host() else { return };
    h.ok(&["create", "301", "--ostemplate", "tiny"], 0);
    let layers = layer_trees(&h, "tiny");
    // Drop the name and collect: the VPS still holds the layers.
    let vzpkg = |args: &[&str]| {
        Command::new(vzpkg_bin())
            .arg("--root")
            .arg(h.root())
            .args(args)
            .output()
            .unwrap()
    };
    assert!(vzpkg(&["rm", "tiny"]).status.success());
    let out = vzpkg(&["gc", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        layers.iter().all(|l| l.is_dir()),
        "gc removed layers in use"
    );
    h.ok(&["start", "301"], 0);
    h.ok(&["exec", "301", "cat /etc/motd"], 0);
    h.ok(&["stop", "301"], 0);
    h.ok(&["destroy", "301"], 0);
    // Nothing holds it now.
    let out = vzpkg(&["gc", "--json"]);
    let gc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(gc["templates"], 1, "{gc}");
    assert!(layers.iter().any(|l| !l.exists()));
}
