//! The `vzquota` front door: `init` counts a tree as `du` would (lstat,
//! hardlinks once, directories as inodes, not crossing a mount point, per
//! uid and gid), `stat`/`show` print those figures, limits set with
//! `setlimit`/`setlimit2` persist, and the exit codes are OpenVZ's
//! (5 running, 6 not running, 11 no quota file). Per-uid trees need root to
//! chown; those tests are skipped otherwise.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use vzpkg::cli::vzquota::exit;
use vzpkg::quota::{IdKind, IdLimits, StateFile};
use vzpkg_tests::fixture::is_root;

struct Ran {
    code: i32,
    out: String,
    err: String,
}

/// One run of the real binary's `vzquota` front door against the quota
/// directory `qd`.
fn vzquota(qd: &Path, args: &[&str]) -> Ran {
    let out = std::process::Command::new(vzpkg_tests::fixture::vzpkg_bin())
        .arg("vzquota")
        .arg("--quota-dir")
        .arg(qd)
        .args(args)
        .output()
        .expect("run vzpkg vzquota");
    Ran {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[track_caller]
fn ok(r: Ran) -> Ran {
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.out, r.err);
    r
}

#[track_caller]
fn code(r: Ran, want: i32) -> Ran {
    assert_eq!(r.code, want, "stdout:\n{}\nstderr:\n{}", r.out, r.err);
    r
}

/// (1K blocks rounded up, inodes) of a byte count and inode count.
type Figures = (u64, u64);

#[derive(Default, Debug)]
struct Du {
    bytes: u64,
    inodes: u64,
    users: BTreeMap<u32, (u64, u64)>,
    groups: BTreeMap<u32, (u64, u64)>,
}

impl Du {
    fn total(&self) -> Figures {
        (self.bytes.div_ceil(1024), self.inodes)
    }

    fn per(map: &BTreeMap<u32, (u64, u64)>) -> BTreeMap<u32, Figures> {
        map.iter()
            .map(|(&id, &(b, i))| (id, (b.div_ceil(1024), i)))
            .collect()
    }
}

/// Count `root` as `du --apparent-size` would not: allocated blocks, each
/// inode once, entering no directory in `mounts` (each counts as itself).
fn du(root: &Path, mounts: &[PathBuf]) -> Du {
    fn walk(p: &Path, mounts: &[PathBuf], seen: &mut HashSet<(u64, u64)>, du: &mut Du) {
        let md = std::fs::symlink_metadata(p).unwrap();
        if md.is_dir() || md.nlink() == 1 || seen.insert((md.dev(), md.ino())) {
            let bytes = md.blocks() * 512;
            du.bytes += bytes;
            du.inodes += 1;
            for (map, id) in [(&mut du.users, md.uid()), (&mut du.groups, md.gid())] {
                let e = map.entry(id).or_default();
                e.0 += bytes;
                e.1 += 1;
            }
        }
        if md.is_dir() && !mounts.iter().any(|m| m == p) {
            for e in std::fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), mounts, seen, du);
            }
        }
    }
    let mut du = Du::default();
    walk(root, mounts, &mut HashSet::new(), &mut du);
    du
}

/// The first-level `1k-blocks` and `inodes` rows of `stat`/`show`.
fn first_level(out: &str) -> Figures {
    let row = |name: &str| -> Vec<String> {
        out.lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .find(|w| w.first().map(String::as_str) == Some(name))
            .unwrap_or_else(|| panic!("no {name} row in\n{out}"))
    };
    let num = |w: &Vec<String>, i: usize| -> u64 { w[i].trim_end_matches('*').parse().unwrap() };
    (num(&row("1k-blocks"), 1), num(&row("inodes"), 1))
}

/// The `User/group objects:` rows: (kind name, id) -> (1k-blocks, inodes),
/// and the limits printed for them.
fn objects(out: &str) -> BTreeMap<(String, u32), (Figures, [u64; 4])> {
    let mut m: BTreeMap<(String, u32), (Figures, [u64; 4])> = BTreeMap::new();
    let rows = out
        .lines()
        .skip_while(|l| !l.starts_with("User/group objects:"))
        .skip(2);
    for l in rows {
        let w: Vec<&str> = l.split_whitespace().collect();
        let (id, kind, res) = (w[0].parse().unwrap(), w[1].to_owned(), w[2]);
        let n = |i: usize| -> u64 { w[i].parse().unwrap() };
        let e = m.entry((kind, id)).or_default();
        match res {
            "1k-blocks" => {
                e.0 .0 = n(3);
                e.1[0] = n(4);
                e.1[1] = n(5);
            }
            "inodes" => {
                e.0 .1 = n(3);
                e.1[2] = n(4);
                e.1[3] = n(5);
            }
            other => panic!("unexpected resource {other} in {l:?}"),
        }
    }
    m
}

fn write(p: &Path, len: usize) {
    std::fs::write(p, vec![0x5au8; len]).unwrap();
}

fn chown(p: &Path, id: u32) {
    std::os::unix::fs::lchown(p, Some(id), Some(id)).unwrap();
}

/// A bind mount undone on drop.
struct Bind(PathBuf);

impl Bind {
    fn new(src: &Path, dst: &Path) -> Option<Bind> {
        let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        let (s, d) = (c(src), c(dst));
        // SAFETY: valid NUL-terminated paths; no data argument.
        let rc = unsafe {
            libc::mount(
                s.as_ptr(),
                d.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            eprintln!(
                "no bind mount ({}): mount-point crossing not checked",
                std::io::Error::last_os_error()
            );
            return None;
        }
        Some(Bind(dst.to_owned()))
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        if let Ok(p) = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()) {
            // SAFETY: a valid path; detaching cannot corrupt memory.
            unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// A private area with files of two uids (1001, 1002) and root's, a
/// hardlink, a symlink, a sparse file, an empty dir and a bind mount.
fn tree(top: &Path) -> (PathBuf, Vec<PathBuf>, Option<Bind>) {
    let root = top.join("private");
    for d in ["etc", "home/a", "home/b", "var/empty", "mnt"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    write(&root.join("etc/motd"), 100);
    write(&root.join("etc/big"), 300_000);
    write(&root.join("home/a/one"), 5000);
    write(&root.join("home/a/two"), 70_000);
    std::fs::hard_link(root.join("home/a/two"), root.join("home/a/two.link")).unwrap();
    std::fs::hard_link(root.join("home/a/two"), root.join("etc/two.link")).unwrap();
    write(&root.join("home/b/three"), 12_345);
    std::os::unix::fs::symlink("three", root.join("home/b/sym")).unwrap();
    let sparse = std::fs::File::create(root.join("home/b/sparse")).unwrap();
    sparse.set_len(10 << 20).unwrap();
    for p in ["home/a", "home/a/one", "home/a/two"] {
        chown(&root.join(p), 1001);
    }
    for p in ["home/b", "home/b/three", "home/b/sym", "home/b/sparse"] {
        chown(&root.join(p), 1002);
    }
    // Files under a mount point belong to another tree.
    let other = top.join("other");
    std::fs::create_dir_all(&other).unwrap();
    write(&other.join("elsewhere"), 1 << 20);
    let bind = Bind::new(&other, &root.join("mnt"));
    let mounts = if bind.is_some() {
        vec![root.join("mnt")]
    } else {
        Vec::new()
    };
    (root, mounts, bind)
}

#[test]
fn init_counts_like_du_and_stat_shows_it() {
    if !is_root() {
        eprintln!("skipped: files of other uids need root to chown");
        return;
    }
    let top = tempfile::tempdir().unwrap();
    let qd = top.path().join("vzquota");
    let (root, mounts, _bind) = tree(top.path());
    let want = du(&root, &mounts);
    let p = root.to_str().unwrap();

    ok(vzquota(
        &qd,
        &[
            "init",
            "101",
            "-p",
            p,
            "-s",
            "1",
            "-u",
            "100",
            "-b",
            "2000000",
            "-B",
            "2200000",
            "-i",
            "131072",
            "-I",
            "144179",
            "-e",
            "3d",
            "-n",
            "3:00:00:00",
        ],
    ));
    assert!(qd.join("quota.101").is_file());

    // Not running yet: stat refuses, show reads the file.
    code(vzquota(&qd, &["stat", "101"]), exit::NOT_RUNNING);
    let shown = ok(vzquota(&qd, &["show", "101"]));
    assert_eq!(first_level(&shown.out), want.total(), "{}", shown.out);

    ok(vzquota(&qd, &["on", "101"]));
    code(vzquota(&qd, &["on", "101"]), exit::RUNNING);
    let st = ok(vzquota(&qd, &["stat", "101"]));
    assert_eq!(first_level(&st.out), want.total(), "{}", st.out);
    let head = st.out.lines().next().unwrap_or_default();
    assert_eq!(
        head.split_whitespace().collect::<Vec<_>>(),
        ["resource", "usage", "softlimit", "hardlimit", "grace"]
    );
    assert!(st.out.contains("User/group quota: on,active"), "{}", st.out);

    // Second level: every uid and gid with du's figures.
    let objs = objects(&st.out);
    for (kind, map) in [("user", &want.users), ("group", &want.groups)] {
        let got: BTreeMap<u32, Figures> = objs
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|((_, id), (f, _))| (*id, *f))
            .collect();
        assert_eq!(got, Du::per(map), "{kind}s:\n{}", st.out);
    }
    assert!(want.users.contains_key(&1001) && want.users.contains_key(&1002));

    ok(vzquota(&qd, &["off", "101"]));
    code(vzquota(&qd, &["off", "101"]), exit::NOT_RUNNING);
    code(vzquota(&qd, &["drop", "101"]), 0);
    assert!(!qd.join("quota.101").exists());
}

#[test]
fn second_level_only_with_ugid_limit() {
    let top = tempfile::tempdir().unwrap();
    let qd = top.path().join("q");
    let root = top.path().join("private");
    std::fs::create_dir_all(root.join("d")).unwrap();
    write(&root.join("d/f"), 9000);
    let p = root.to_str().unwrap();
    // -s 1 without -u: a warning, and no per-id figures.
    let r = ok(vzquota(&qd, &["init", "7", "-p", p, "-s", "1"]));
    assert!(r.err.contains("ugid limit"), "{}", r.err);
    let s = StateFile::load(&qd.join("quota.7")).unwrap().unwrap();
    assert!(!s.ugid.active() && s.ugid.users.is_empty());
    code(
        vzquota(&qd, &["setlimit2", "7", "-u", "0", "1", "2", "3", "4"]),
        exit::NOT_RUNNING,
    );
    // With a limit: per-id usage due, counted at `on`.
    ok(vzquota(&qd, &["setlimit", "7", "-u", "5"]));
    code(vzquota(&qd, &["show", "7"]), exit::DIRTY);
    ok(vzquota(&qd, &["on", "7"]));
    let s = StateFile::load(&qd.join("quota.7")).unwrap().unwrap();
    assert!(s.ugid.active() && s.ugid.counted && !s.dirty && s.running);
    let me = std::fs::metadata(&root).unwrap().uid();
    assert_eq!(s.ugid.users[&me].usage.inodes, 3, "root dir, d, d/f");
}

#[test]
fn limits_persist() {
    let top = tempfile::tempdir().unwrap();
    let qd = top.path().join("q");
    let root = top.path().join("private");
    std::fs::create_dir_all(&root).unwrap();
    write(&root.join("f"), 4096);
    let file = qd.join("quota.202");
    let load = || StateFile::load(&file).unwrap().unwrap();

    ok(vzquota(
        &qd,
        &[
            "init",
            "202",
            "-p",
            root.to_str().unwrap(),
            "-s",
            "1",
            "-u",
            "50",
        ],
    ));
    ok(vzquota(
        &qd,
        &[
            "setlimit", "202", "-b", "1000", "-B", "1100", "-i", "200", "-I", "220", "-e", "7d",
            "-n", "1w",
        ],
    ));
    let l = load().limits;
    assert_eq!(
        (l.block_soft, l.block_hard, l.inode_soft, l.inode_hard),
        (1000, 1100, 200, 220)
    );
    assert_eq!((l.block_grace, l.inode_grace), (7 * 86_400, 7 * 86_400));
    // Only what is given changes.
    ok(vzquota(
        &qd,
        &["setlimit", "202", "-B", "1500", "-e", "1:00:00"],
    ));
    let l = load().limits;
    assert_eq!(
        (l.block_soft, l.block_hard, l.block_grace),
        (1000, 1500, 3600)
    );

    ok(vzquota(
        &qd,
        &["setlimit2", "202", "-u", "1000", "10", "20", "30", "40"],
    ));
    ok(vzquota(
        &qd,
        &["setlimit2", "202", "-g", "50", "1", "2", "3", "4"],
    ));
    ok(vzquota(&qd, &["setlimit2", "202", "-t", "2d", "12:00:00"]));
    let s = load();
    assert_eq!(
        s.ugid.entries(IdKind::User)[&1000].limits,
        IdLimits {
            block_soft: 10,
            block_hard: 20,
            inode_soft: 30,
            inode_hard: 40
        }
    );
    assert_eq!(s.ugid.entries(IdKind::Group)[&50].limits.inode_hard, 4);
    for kind in IdKind::BOTH {
        assert_eq!(
            (s.ugid.grace(kind).block, s.ugid.grace(kind).inode),
            (2 * 86_400, 12 * 3600)
        );
    }
    // `-g -t`: groups only.
    ok(vzquota(&qd, &["setlimit2", "202", "-g", "-t", "60", "120"]));
    let s = load();
    assert_eq!(s.ugid.group_grace.block, 60);
    assert_eq!(s.ugid.user_grace.block, 2 * 86_400);

    let shown = ok(vzquota(&qd, &["show", "202", "-t"]));
    let objs = objects(&shown.out);
    assert_eq!(
        objs[&("user".to_string(), 1000)].1,
        [10, 20, 30, 40],
        "{}",
        shown.out
    );
    assert_eq!(objs[&("group".to_string(), 50)].1, [1, 2, 3, 4]);
    assert!(shown.out.contains("1100") || shown.out.contains("1500"));

    // Refused lines change nothing.
    let before = load();
    code(
        vzquota(&qd, &["setlimit2", "202", "-u", "x", "1", "2", "3", "4"]),
        exit::BAD_VALUE,
    );
    code(
        vzquota(&qd, &["setlimit2", "202", "-u", "1", "5", "2", "3", "4"]),
        exit::BAD_VALUE,
    );
    code(
        vzquota(&qd, &["setlimit2", "202", "-t", "1d", "soon"]),
        exit::BAD_VALUE,
    );
    code(
        vzquota(&qd, &["setlimit2", "202", "-u", "1", "2"]),
        exit::USAGE,
    );
    code(
        vzquota(&qd, &["setlimit2", "202", "1", "2", "3", "4", "5"]),
        exit::USAGE,
    );
    code(
        vzquota(&qd, &["setlimit", "202", "-e", "1:60"]),
        exit::BAD_VALUE,
    );
    code(
        vzquota(&qd, &["setlimit", "202", "-e", "3x"]),
        exit::BAD_VALUE,
    );
    code(vzquota(&qd, &["setlimit", "202"]), exit::USAGE);
    assert_eq!(load(), before);
}

#[test]
fn exit_codes() {
    let top = tempfile::tempdir().unwrap();
    let qd = top.path().join("q");
    for args in [
        &["stat", "303"][..],
        &["show", "303"],
        &["on", "303"],
        &["off", "303"],
        &["drop", "303"],
        &["setlimit", "303", "-b", "1"],
        &["setlimit2", "303", "-t", "1d", "1d"],
    ] {
        let r = code(vzquota(&qd, args), exit::NO_QUOTA_FILE);
        assert!(r.err.contains("vzquota init 303"), "{}", r.err);
    }
    // A private area that is not there.
    let r = code(
        vzquota(&qd, &["init", "303", "-p", "/nonexistent/private/303"]),
        exit::SYSTEM,
    );
    assert!(r.err.contains("/nonexistent/private/303"), "{}", r.err);
    assert!(!qd.join("quota.303").exists());

    let root = top.path().join("private");
    std::fs::create_dir_all(&root).unwrap();
    ok(vzquota(&qd, &["init", "303", "-p", root.to_str().unwrap()]));
    code(vzquota(&qd, &["off", "303"]), exit::NOT_RUNNING);
    ok(vzquota(&qd, &["on", "303"]));
    code(vzquota(&qd, &["on", "303"]), exit::RUNNING);
    code(
        vzquota(&qd, &["init", "303", "-p", root.to_str().unwrap()]),
        exit::RUNNING,
    );
    code(vzquota(&qd, &["drop", "303"]), exit::RUNNING);
    ok(vzquota(&qd, &["drop", "303", "-f"]));
    code(vzquota(&qd, &["show", "303"]), exit::NO_QUOTA_FILE);

    // A quota file that is not one.
    std::fs::write(qd.join("quota.304"), b"garbage").unwrap();
    let r = code(vzquota(&qd, &["show", "304"]), exit::QUOTA_FILE);
    assert!(r.err.contains("quota.304"), "{}", r.err);

    // -c names the file directly.
    let f = top.path().join("elsewhere.quota");
    let fs = f.to_str().unwrap();
    ok(vzquota(
        &qd,
        &[
            "init",
            "305",
            "-c",
            fs,
            "-p",
            root.to_str().unwrap(),
            "-e",
            "1w",
        ],
    ));
    assert_eq!(
        StateFile::load(&f).unwrap().unwrap().limits.block_grace,
        604_800
    );
    assert!(!qd.join("quota.305").exists());
}

#[test]
fn grace_shows_and_runs_out() {
    let top = tempfile::tempdir().unwrap();
    let qd = top.path().join("q");
    let root = top.path().join("private");
    std::fs::create_dir_all(&root).unwrap();
    write(&root.join("f"), 64 * 1024);
    let p = root.to_str().unwrap();
    // Soft limit below the usage: the timer starts, the grace shows.
    ok(vzquota(
        &qd,
        &["init", "9", "-p", p, "-b", "1", "-B", "0", "-e", "2d"],
    ));
    let out = ok(vzquota(&qd, &["show", "9"])).out;
    let row: Vec<&str> = out
        .lines()
        .find(|l| l.trim_start().starts_with("1k-blocks"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert!(
        row[1].ends_with('*'),
        "over the soft limit is marked: {out}"
    );
    assert!(row[4] == "2days" || row[4] == "1days", "{out}");
    // Grace 0: already run out.
    ok(vzquota(&qd, &["setlimit", "9", "-e", "0"]));
    let out = ok(vzquota(&qd, &["show", "9"])).out;
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("1k-blocks") && l.trim_end().ends_with("none")),
        "{out}"
    );
}
