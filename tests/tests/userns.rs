//! Unprivileged VPSs through the real binary's `vzctl`: each VPS's root is
//! root of its own user namespace over a range of host ids, the template
//! layers are seen through idmapped mounts (the store unchanged, the same
//! inodes), what the VPS writes is owned by its range on the host, the
//! second-level quota speaks the VPS's own ids, `--userns no` keeps the
//! host's root, and a privileged VPS is converted with `set --userns yes
//! --save`. As root, with /dev/fuse; skipped otherwise.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use vzpkg_tests::fixture::{text, vzpkg_bin};
use vzpkg_tests::vzhost::{Template, VzHost as Host};

const BAD_VALUE: i32 = 21;
const RUNNING: i32 = 32;

/// Host programs copied into the test template.
const TOOLS: &[&str] = &[
    "sh", "cat", "stat", "id", "touch", "chown", "chmod", "cp", "mkdir", "head", "setpriv", "rm",
];

const FILES: &[(&str, &str)] = &[
    ("etc/motd", "template motd\n"),
    ("usr/share/doc/readme", "template readme\n"),
];

fn host() -> Option<Host> {
    if !Path::new("/proc/self/uid_map").exists() {
        eprintln!("skipped: the kernel has no user namespaces");
        return None;
    }
    let (release, version) = vzpkg::sys::userns::kernel();
    if !vzpkg::sys::userns::supports_idmapped_lowers(version) {
        eprintln!("skipped: kernel {release} has no idmapped overlay lower layers (5.19+)");
        return None;
    }
    Host::new(
        "user namespace",
        true,
        &[Template {
            name: "tools",
            tools: TOOLS,
            files: FILES,
            init: None,
        }],
    )
}

fn conf_value(h: &Host, id: &str, key: &str) -> Option<String> {
    h.conf_value(id, key)
}

fn local_ids(h: &Host, id: &str) -> (u32, u32) {
    let n = |k| conf_value(h, id, k).unwrap().parse::<u32>().unwrap();
    (n("LOCAL_UID"), n("LOCAL_GID"))
}

/// `/proc/self/uid_map` (or gid_map) inside, as numbers.
fn id_map(h: &Host, id: &str, which: &str) -> Vec<u64> {
    h.ok(&["exec", id, &format!("cat /proc/self/{which}")], 0)
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect()
}

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.uid(), m.gid())
}

/// Owner, mode and inode of every entry under `dir`.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u32, u32, u32, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = p.symlink_metadata().unwrap();
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.push((p, m.uid(), m.gid(), m.mode(), m.ino()));
        }
    }
    out.sort();
    out
}

fn vzquota(h: &Host, args: &[&str]) -> Output {
    Command::new(vzpkg_bin())
        .arg("vzquota")
        .args(args)
        .env("VZ_ROOT", h.vz())
        .env_remove("VZQUOTA_DIR")
        .output()
        .expect("run vzquota")
}

/// `vzquota stat ID -t`: (usage, soft, hard) of `kind` ("user"/"group")
/// `num` in 1K blocks, if listed.
fn ugid_blocks(out: &Output, kind: &str, num: u32) -> Option<(u64, u64, u64)> {
    let listed = String::from_utf8_lossy(&out.stdout);
    listed
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.len() > 5 && w[0] == num.to_string() && w[1] == kind && w[2] == "1k-blocks")
        .map(|w| {
            let n = |i: usize| w[i].parse::<u64>().unwrap();
            (n(3), n(4), n(5))
        })
}

#[test]
fn unprivileged_root_is_a_host_user_of_its_range_over_unchanged_layers() {
    let Some(h) = host() else { return };
    let layers = h.store().layer_trees("tools").unwrap();
    let before: Vec<_> = layers.iter().map(|l| snapshot(l)).collect();

    h.ok(&["create", "101", "--ostemplate", "tools"], 0);
    h.ok(
        &[
            "create",
            "102",
            "--ostemplate",
            "tools",
            "--diskquota",
            "no",
        ],
        0,
    );
    // Unprivileged is the default; ranges of 65536 from 100000, one per VPS.
    assert_eq!(conf_value(&h, "101", "USERNS").as_deref(), Some("yes"));
    assert_eq!(local_ids(&h, "101"), (100_000, 100_000));
    assert_eq!(local_ids(&h, "102"), (165_536, 165_536));
    // The private area's top and identity files belong to root inside.
    let fs101 = h.vz().join("private/101/fs");
    assert_eq!(owner(&fs101), (100_000, 100_000));
    assert_eq!(owner(&fs101.join("etc/hostname")), (100_000, 100_000));

    h.ok(&["start", "101"], 0);
    h.ok(&["start", "102"], 0);
    // Ids 0..65535 inside are the range outside: for init, exec and enter.
    assert_eq!(id_map(&h, "101", "uid_map"), vec![0, 100_000, 65_536]);
    assert_eq!(id_map(&h, "101", "gid_map"), vec![0, 100_000, 65_536]);
    assert_eq!(id_map(&h, "102", "uid_map"), vec![0, 165_536, 65_536]);
    let init_map = std::fs::read_to_string(format!(
        "/proc/{}/uid_map",
        std::fs::read_to_string(h.vz().join("run/101.pid"))
            .unwrap()
            .trim()
    ))
    .unwrap();
    assert_eq!(
        init_map.split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    let out = h.ok(
        &["enter", "101", "--exec", "cat /proc/self/uid_map; id -u"],
        0,
    );
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words, ["0", "100000", "65536", "0"], "{out}");

    // Template files show as root's; without simfs (all layers on one file
    // system) the overlay shows the store's own inode numbers.
    let readme = layers
        .iter()
        .map(|l| l.join("usr/share/doc/readme"))
        .find(|p| p.exists())
        .unwrap();
    let out = h.ok(&["exec", "101", "stat -c '%u %g' /usr/share/doc/readme"], 0);
    assert_eq!(out.trim(), "0 0");
    let out = h.ok(
        &["exec", "102", "stat -c '%u %g %i' /usr/share/doc/readme"],
        0,
    );
    assert_eq!(
        out.trim(),
        format!("0 0 {}", std::fs::metadata(&readme).unwrap().ino())
    );

    // Files written inside belong to the range on the host, through simfs
    // and without it; a copy-up of a template file too.
    let script = "echo hi > /made && mkdir /home && touch /home/f && chown -R 1000:1000 /home \
                  && echo more >> /etc/motd && stat -c '%u %g' /home/f";
    for (id, base) in [("101", 100_000), ("102", 165_536)] {
        assert_eq!(h.ok(&["exec", id, script], 0).trim(), "1000 1000");
        let fs = h.vz().join(format!("private/{id}/fs"));
        assert_eq!(owner(&fs.join("made")), (base, base));
        assert_eq!(owner(&fs.join("home/f")), (base + 1000, base + 1000));
        assert_eq!(owner(&fs.join("etc/motd")), (base, base));
    }
    // Root inside cannot become a host id outside its range.
    let out = h.vzctl(&["exec", "101", "chown 70000 /made"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));

    // Stopped: exec gets the same user namespace.
    h.ok(&["stop", "101"], 0);
    assert_eq!(id_map(&h, "101", "uid_map"), vec![0, 100_000, 65_536]);
    assert_eq!(
        h.ok(&["exec", "101", "stat -c '%u' /home/f"], 0).trim(),
        "1000"
    );

    // The store is as it was: same owners, modes and inodes, and fsck is clean.
    let after: Vec<_> = layers.iter().map(|l| snapshot(l)).collect();
    assert_eq!(before, after);
    let fsck = Command::new(vzpkg_bin())
        .args(["fsck"])
        .env("VZPKG_ROOT", h.root())
        .output()
        .unwrap();
    assert_eq!(fsck.status.code(), Some(0), "{}", text(&fsck));
    h.ok(&["stop", "102"], 0);
}

#[test]
fn ranges_come_from_vz_conf_and_overlaps_are_refused() {
    let Some(h) = host() else { return };
    std::fs::create_dir_all(h.vz().join("conf")).unwrap();
    std::fs::write(
        h.vz().join("conf/vz.conf"),
        "# host-wide\nLOCAL_UID=\"200000\"\nLOCAL_GID=\"300000\"\n",
    )
    .unwrap();
    h.ok(
        &[
            "create",
            "101",
            "--ostemplate",
            "tools",
            "--diskquota",
            "no",
        ],
        0,
    );
    assert_eq!(local_ids(&h, "101"), (200_000, 300_000));
    // Given: checked against every other VPS, and refused with its name.
    let out = h.vzctl(&[
        "create",
        "102",
        "--ostemplate",
        "tools",
        "--local_uid",
        "250000",
    ]);
    assert_eq!(out.status.code(), Some(BAD_VALUE), "{}", text(&out));
    assert!(text(&out).contains("overlaps VPS 101"), "{}", text(&out));
    assert!(!h.vz().join("conf/102.conf").exists());
    assert!(!h.vz().join("private/102").exists());
    let out = h.vzctl(&[
        "create",
        "102",
        "--ostemplate",
        "tools",
        "--local_uid",
        "500000",
        "--local_gid",
        "310000",
    ]);
    assert_eq!(out.status.code(), Some(BAD_VALUE), "{}", text(&out));
    assert!(text(&out).contains("gid range"), "{}", text(&out));
    // Below 65536 would map the host's own ids.
    let out = h.vzctl(&[
        "create",
        "102",
        "--ostemplate",
        "tools",
        "--local_uid",
        "1000",
    ]);
    assert_eq!(out.status.code(), Some(BAD_VALUE), "{}", text(&out));
    h.ok(
        &[
            "create",
            "102",
            "--ostemplate",
            "tools",
            "--diskquota",
            "no",
            "--local_uid",
            "500000",
        ],
        0,
    );
    assert_eq!(local_ids(&h, "102"), (500_000, 500_000));
    // The next allocation steps over both.
    h.ok(
        &[
            "create",
            "103",
            "--ostemplate",
            "tools",
            "--diskquota",
            "no",
        ],
        0,
    );
    assert_eq!(local_ids(&h, "103"), (265_536, 365_536));
    // A destroyed VPS's range is free again.
    h.ok(&["destroy", "101"], 0);
    h.ok(
        &[
            "create",
            "104",
            "--ostemplate",
            "tools",
            "--diskquota",
            "no",
        ],
        0,
    );
    assert_eq!(local_ids(&h, "104"), (200_000, 300_000));
    // No range for a privileged VPS.
    let out = h.vzctl(&[
        "create",
        "105",
        "--ostemplate",
        "tools",
        "--userns",
        "no",
        "--local_uid",
        "900000",
    ]);
    assert_eq!(out.status.code(), Some(BAD_VALUE), "{}", text(&out));
}

#[test]
fn second_level_quota_speaks_the_vps_own_ids() {
    let Some(h) = host() else { return };
    let id = "201";
    h.ok(&["create", id, "--ostemplate", "tools"], 0);
    h.ok(&["set", id, "--quotaugidlimit", "100", "--save"], 0);
    h.ok(&["start", id], 0);
    let (base, _) = local_ids(&h, id);
    h.ok(&["exec", id, ": > /u && chown 1000:1000 /u"], 0);
    // Uid 1000 inside is -u 1000, whatever the range.
    let out = vzquota(&h, &["setlimit2", id, "-u", "1000", "64", "64", "0", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = h.vzctl(&["exec", id, "head -c 200000 /dev/zero >> /u"]);
    assert!(text(&out).contains("Disk quota exceeded"), "{}", text(&out));
    // Root inside is not held by uid 1000's limit.
    h.ok(&["exec", id, "head -c 200000 /dev/zero > /rootfile"], 0);
    let out = h.vzctl(&["exec", id, "chown 1000 /rootfile"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let out = vzquota(&h, &["stat", id, "-t"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let by_id = vzpkg::quota::scan_ids(&h.vz().join("private").join(id)).unwrap();
    let on_disk = by_id.users.get(&(base + 1000)).copied().unwrap_or_default();
    let (used, soft, hard) = ugid_blocks(&out, "user", 1000)
        .unwrap_or_else(|| panic!("uid 1000 not listed: {}", text(&out)));
    assert_eq!(used, on_disk.blocks_1k(), "{}", text(&out));
    assert_eq!((soft, hard), (64, 64));
    assert!(used <= 64);
    let root = ugid_blocks(&out, "user", 0).unwrap();
    assert!(root.0 >= 195, "{}", text(&out));
    // Host ids never show.
    assert!(ugid_blocks(&out, "user", base).is_none(), "{}", text(&out));
    assert!(ugid_blocks(&out, "user", base + 1000).is_none());

    // Stopped and unmounted, then a recount (a dirty file) gives the same.
    h.ok(&["stop", id], 0);
    let show = vzquota(&h, &["show", id, "-t"]);
    assert_eq!(ugid_blocks(&show, "user", 1000).map(|u| u.0), Some(used));
    let qf = h.vz().join(format!("vzquota/quota.{id}"));
    let mut s = vzpkg::quota::StateFile::load(&qf).unwrap().unwrap();
    s.dirty = true;
    s.save(&qf).unwrap();
    h.ok(&["mount", id], 0);
    let out = vzquota(&h, &["stat", id, "-t"]);
    assert_eq!(
        ugid_blocks(&out, "user", 1000),
        Some((used, 64, 64)),
        "{}",
        text(&out)
    );
    h.ok(&["umount", id], 0);
}

#[test]
fn userns_no_is_the_host_root_and_set_converts_it_keeping_the_quota() {
    let Some(h) = host() else { return };
    let id = "301";
    h.ok(
        &["create", id, "--ostemplate", "tools", "--userns", "no"],
        0,
    );
    assert_eq!(conf_value(&h, id, "USERNS").as_deref(), Some("no"));
    assert_eq!(conf_value(&h, id, "LOCAL_UID"), None);
    h.ok(&["set", id, "--quotaugidlimit", "100", "--save"], 0);
    h.ok(&["start", id], 0);
    assert_eq!(id_map(&h, id, "uid_map"), vec![0, 0, 4_294_967_295]);
    h.ok(
        &[
            "exec",
            id,
            "mkdir /home && head -c 100000 /dev/zero > /home/f && chown -R 1000:1000 /home \
             && cp /bin/id /suid && chmod 4755 /suid",
        ],
        0,
    );
    let fs = h.vz().join(format!("private/{id}/fs"));
    assert_eq!(owner(&fs.join("home/f")), (1000, 1000));
    let before = vzquota(&h, &["stat", id, "-t"]);
    let before_1000 = ugid_blocks(&before, "user", 1000).unwrap();

    // Converting a running VPS is refused; so is it without --save.
    let out = h.vzctl(&["set", id, "--userns", "yes", "--save"]);
    assert_eq!(out.status.code(), Some(RUNNING), "{}", text(&out));
    h.ok(&["stop", id], 0);
    let out = h.vzctl(&["set", id, "--userns", "yes"]);
    assert_eq!(out.status.code(), Some(BAD_VALUE), "{}", text(&out));
    assert!(text(&out).contains("--save"), "{}", text(&out));

    // A config from before user namespaces (no USERNS) is privileged and
    // says how to convert it.
    let conf_path = h.vz().join(format!("conf/{id}.conf"));
    let conf = std::fs::read_to_string(&conf_path).unwrap();
    let old: String = conf
        .lines()
        .filter(|l| !l.starts_with("USERNS="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&conf_path, old).unwrap();
    let out = h.vzctl(&["start", id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("vzctl set {id} --userns yes --save")),
        "{}",
        text(&out)
    );
    assert_eq!(id_map(&h, id, "uid_map"), vec![0, 0, 4_294_967_295]);
    h.ok(&["stop", id], 0);

    h.ok(&["set", id, "--userns", "yes", "--save"], 0);
    assert_eq!(conf_value(&h, id, "USERNS").as_deref(), Some("yes"));
    let (base, gbase) = local_ids(&h, id);
    assert_eq!((base, gbase), (100_000, 100_000));
    assert_eq!(owner(&fs.join("home/f")), (base + 1000, gbase + 1000));
    assert_eq!(owner(&fs), (base, gbase));
    // chown clears set-id bits; the shift puts them back.
    let suid = std::fs::metadata(fs.join("suid")).unwrap();
    assert_eq!((suid.uid(), suid.mode() & 0o7777), (base, 0o4755));

    h.ok(&["start", id], 0);
    assert_eq!(id_map(&h, id, "uid_map"), vec![0, base as u64, 65_536]);
    assert_eq!(
        h.ok(&["exec", id, "stat -c '%u %g' /home/f"], 0).trim(),
        "1000 1000"
    );
    // The quota figures are the same, by the same inside ids.
    let after = vzquota(&h, &["stat", id, "-t"]);
    assert_eq!(
        ugid_blocks(&after, "user", 1000),
        Some(before_1000),
        "{}",
        text(&after)
    );
    // Set-user-ID programs work inside (no no_new_privs, no nosuid): the
    // setuid-root copy run by uid 1000 has euid 0.
    let out = h.ok(
        &[
            "exec",
            id,
            "setpriv --reuid 1000 --regid 1000 --clear-groups /suid -u; \
             setpriv --reuid 1000 --regid 1000 --clear-groups /bin/id -u",
        ],
        0,
    );
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "1000"]);
    h.ok(&["stop", id], 0);

    // And back: the owners return to the host's ids.
    h.ok(&["set", id, "--userns", "no", "--save"], 0);
    assert_eq!(owner(&fs.join("home/f")), (1000, 1000));
    h.ok(&["start", id], 0);
    assert_eq!(id_map(&h, id, "uid_map"), vec![0, 0, 4_294_967_295]);
    h.ok(&["stop", id], 0);
}

/// Host programs (with their libraries) for a template where apt-get and
/// dpkg really run: at their host paths.
const APT_TOOLS: &[&str] = &[
    "/usr/bin/apt-get",
    "/usr/bin/dpkg",
    "/usr/bin/dpkg-deb",
    "/usr/bin/dpkg-query",
    "/usr/bin/dpkg-split",
    "/usr/bin/tar",
    "/usr/bin/rm",
    "/usr/bin/diff",
    "/usr/bin/stat",
    "/usr/bin/cat",
    "/usr/bin/touch",
    "/usr/sbin/ldconfig",
    "/usr/sbin/start-stop-daemon",
    "/usr/lib/apt/methods/file",
    "/usr/lib/apt/methods/store",
    "/usr/lib/apt/methods/copy",
];

/// A tree with apt and dpkg from the host's own binaries, an empty dpkg
/// database and one source: the fixture mirror at /srv/mirror inside.
fn apt_tree(dir: &Path) -> Option<()> {
    let copy = |from: &Path, to: &Path| {
        let dest = dir.join(to.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(from, &dest).unwrap();
    };
    let dash = Path::new("/usr/bin/dash");
    for tool in APT_TOOLS.iter().map(Path::new).chain([dash]) {
        if !tool.is_file() {
            eprintln!(
                "skipped: the host has no {} to build the apt template from",
                tool.display()
            );
            return None;
        }
        for lib in vzpkg_tests::fixture::shared_libraries(tool) {
            copy(&lib, &lib);
        }
        copy(tool, tool);
    }
    copy(dash, Path::new("/bin/sh"));
    // dpkg's architecture tables.
    for table in ["cputable", "ostable", "tupletable", "abitable"] {
        let p = Path::new("/usr/share/dpkg").join(table);
        if p.is_file() {
            copy(&p, &p);
        }
    }
    for d in [
        "etc/apt/apt.conf.d",
        "etc/apt/preferences.d",
        "etc/apt/sources.list.d",
        "etc/apt/trusted.gpg.d",
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "var/log/apt",
        "srv",
        "root",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    std::fs::set_permissions(
        dir.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    for (path, text) in [
        ("var/lib/dpkg/status", ""),
        ("var/lib/dpkg/available", ""),
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        ("etc/group", "root:x:0:\n"),
        (
            "etc/apt/sources.list",
            "deb [trusted=yes] file:/srv/mirror testing main\n",
        ),
        // No `_apt` user in this tree: fetch as root.
        ("etc/apt/apt.conf.d/00vps", "APT::Sandbox::User \"root\";\n"),
    ] {
        std::fs::write(dir.join(path), text).unwrap();
    }
    Some(())
}

/// A package with a root-owned file, a directory and file of uid 1000, and
/// a postinst that runs.
fn hello_package() -> vzpkg_tests::mirror::Published {
    use vzpkg_tests::debfile::{DebBuilder, Entry, Kind, DEFAULT_MTIME};
    let owned = |path: &str, kind: Kind, mode: u32| Entry {
        path: path.as_bytes().to_vec(),
        kind,
        mode,
        uid: 1000,
        gid: 1000,
        mtime: DEFAULT_MTIME,
        xattrs: Vec::new(),
    };
    let deb = DebBuilder::new("hello", "1.0", "amd64")
        .file("usr/share/hello/greeting", &vec![b'h'; 300_000], 0o644)
        .entry(owned("var/lib/hello", Kind::Dir, 0o755))
        .entry(owned(
            "var/lib/hello/data",
            Kind::File(b"mine\n".to_vec()),
            0o600,
        ))
        .script(
            "postinst",
            "#!/bin/sh\nset -e\ntouch /var/lib/hello/configured\n",
        );
    vzpkg_tests::fixture::package("hello", "1.0", &[("Description", "a fixture package")], deb)
}

/// `vzquota stat ID`: 1K blocks used.
fn used_blocks(h: &Host, id: &str) -> u64 {
    let out = vzquota(h, &["stat", id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout);
    let line = listed
        .lines()
        .find(|l| l.trim_start().starts_with("1k-blocks"))
        .unwrap_or_else(|| panic!("{listed}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn apt_get_install_inside_an_unprivileged_vps() {
    let Some(h) = host() else { return };
    let tree = tempfile::tempdir().unwrap();
    if apt_tree(tree.path()).is_none() {
        return;
    }
    let meta = vzpkg::store::TemplateMeta {
        name: "apt".into(),
        ..Default::default()
    };
    h.store().commit(tree.path(), &meta).unwrap();
    let id = "401";
    h.ok(&["create", id, "--ostemplate", "apt"], 0);
    h.ok(&["set", id, "--quotaugidlimit", "100", "--save"], 0);
    h.ok(&["start", id], 0);
    // The fixture mirror (its signed index left out: the source is
    // trusted=yes, this tree has no gpgv) inside the VPS.
    let mirror = h.vz().join(format!("root/{id}/srv/mirror"));
    let key = vzpkg_tests::signing::TestKey::generate("fixture");
    vzpkg_tests::mirror::write_mirror(
        &mirror,
        &vzpkg_tests::mirror::MirrorSpec::default(),
        &[hello_package()],
        &key,
    );
    std::fs::remove_file(mirror.join("dists/testing/InRelease")).unwrap();
    let before = used_blocks(&h, id);

    let out = h.vzctl(&[
        "exec",
        id,
        "apt-get update && apt-get install -y hello 2>&1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let status = h.ok(&["exec", id, "dpkg-query -W -f '${Status}' hello"], 0);
    assert_eq!(status, "install ok installed");
    // Owners inside as the package says; on the host, in the range.
    let out = h.ok(
        &[
            "exec",
            id,
            "stat -c '%u %g' /usr/share/hello/greeting /var/lib/hello/data /var/lib/hello/configured",
        ],
        0,
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["0 0", "1000 1000", "0 0"],
        "{out}"
    );
    let (base, gbase) = local_ids(&h, id);
    let fs = h.vz().join(format!("private/{id}/fs"));
    assert_eq!(owner(&fs.join("usr/share/hello/greeting")), (base, gbase));
    assert_eq!(
        owner(&fs.join("var/lib/hello/data")),
        (base + 1000, gbase + 1000)
    );
    // Charged: at least the package's 300 KB file, and uid 1000's file by
    // its own id.
    let after = used_blocks(&h, id);
    assert!(
        after >= before + 290,
        "before {before} KiB, after {after} KiB"
    );
    let t = vzquota(&h, &["stat", id, "-t"]);
    assert!(
        ugid_blocks(&t, "user", 1000).is_some_and(|u| u.0 > 0),
        "{}",
        text(&t)
    );
    h.ok(&["stop", id], 0);
}
