//! Store tests on real files: owners, modes, devices, fifos and xattrs need root.

use super::*;
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

const T0: i64 = 1_700_000_000;

fn set_times(path: &Path, sec: i64, nsec: u32) {
    let t = rustix::fs::Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn file(root: &Path, rel: &str, content: &[u8], mode: u32, owner: (u32, u32)) {
    let p = root.join(rel);
    std::fs::write(&p, content).unwrap();
    std::os::unix::fs::chown(&p, Some(owner.0), Some(owner.1)).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A capability set (`cap_net_raw+ep`, version 2) if this kernel and file
/// system take it.
fn try_capability(path: &Path) -> bool {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0200_0001u32.to_le_bytes());
    v.extend_from_slice(&(1u32 << 13).to_le_bytes());
    v.extend_from_slice(&[0u8; 12]);
    xattr::set(path, "security.capability", &v).is_ok()
}

/// An OS-like tree with every kind of entry. `merged` makes /bin and /lib
/// symlinks into /usr; `extra` adds a file so two trees differ.
fn make_tree(root: &Path, merged: bool, extra: bool) {
    for d in [
        "usr",
        "usr/bin",
        "usr/lib",
        "etc",
        "home",
        "home/user",
        "dev",
        "run",
        "var",
        "var/empty",
    ] {
        std::fs::create_dir(root.join(d)).unwrap();
    }
    file(
        root,
        "usr/bin/prog",
        b"#!/bin/sh\necho prog\n",
        0o755,
        (0, 0),
    );
    file(root, "usr/bin/suid", b"setuid program", 0o4755, (0, 0));
    file(root, "usr/bin/sgid", b"setgid program", 0o2711, (0, 42));
    file(root, "usr/bin/ping", b"ping program", 0o755, (0, 0));
    file(root, "usr/lib/libx.so", &vec![7u8; 300_000], 0o644, (0, 0));
    file(root, "usr/lib/empty", b"", 0o600, (0, 0));
    if merged {
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib64")).unwrap();
    } else {
        std::fs::create_dir(root.join("bin")).unwrap();
        std::fs::create_dir(root.join("lib")).unwrap();
        file(root, "bin/sh", b"a shell", 0o755, (0, 0));
        file(root, "lib/libc.so.6", b"the C library", 0o755, (0, 0));
    }
    file(
        root,
        "etc/passwd",
        b"root:x:0:0::/root:/bin/sh\n",
        0o644,
        (0, 0),
    );
    file(root, "etc/shadow", b"root:*:1::::::\n", 0o640, (0, 42));
    file(root, "etc/hard1", b"two names, one inode", 0o644, (0, 0));
    std::fs::hard_link(root.join("etc/hard1"), root.join("etc/hard2")).unwrap();
    file(root, "etc/attr", b"has a user xattr", 0o644, (0, 0));
    xattr::set(root.join("etc/attr"), "user.x", b"hello").unwrap();
    file(root, "home/user/notes", b"user file", 0o600, (1000, 1000));
    std::os::unix::fs::symlink("notes", root.join("home/user/link")).unwrap();
    std::os::unix::fs::lchown(root.join("home/user/link"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::chown(root.join("home/user"), Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(
        root.join("home/user"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let mknod = |rel: &str, ft, dev| {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join(rel),
            ft,
            rustix::fs::Mode::from_raw_mode(0o666),
            dev,
        )
        .unwrap();
    };
    mknod(
        "dev/null",
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::makedev(1, 3),
    );
    mknod(
        "dev/sda",
        rustix::fs::FileType::BlockDevice,
        rustix::fs::makedev(8, 0),
    );
    mknod("run/initctl", rustix::fs::FileType::Fifo, 0);
    std::fs::set_permissions(
        root.join("run/initctl"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    if extra {
        file(root, "etc/hostname", b"other\n", 0o644, (0, 0));
    }
    std::fs::set_permissions(
        root.join("var/empty"),
        std::fs::Permissions::from_mode(0o555),
    )
    .unwrap();
    // Mtimes that depend on the path only, children before parents.
    let mut all: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap().path().to_path_buf())
        .collect();
    all.sort();
    for p in all.iter().rev() {
        let rel = p.strip_prefix(root).unwrap().as_os_str().as_bytes();
        let h = rel
            .iter()
            .fold(7u32, |h, &b| h.wrapping_mul(31).wrapping_add(b as u32));
        set_times(p, T0 + (h % 1_000_000) as i64, h % 1_000_000_000);
    }
    // Last: chown (above) and writes clear capabilities.
    try_capability(&root.join("usr/bin/ping"));
}

/// Everything lstat and the content say about a tree, by path.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    let mut all: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap().path().to_path_buf())
        .collect();
    all.sort();
    for p in all {
        let rel = format!("/{}", p.strip_prefix(root).unwrap().display());
        let md = std::fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let detail = if ft.is_file() {
            let content = std::fs::read(&p).unwrap();
            let link = if md.nlink() > 1 {
                inodes.entry(md.ino()).or_insert(rel.clone()).clone()
            } else {
                String::new()
            };
            format!("file {} link={link}", manifest::digest(&content))
        } else if ft.is_symlink() {
            format!("symlink {}", std::fs::read_link(&p).unwrap().display())
        } else if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_char_device() {
            format!("char {}", md.rdev())
        } else if ft.is_block_device() {
            format!("block {}", md.rdev())
        } else if ft.is_fifo() {
            "fifo".to_string()
        } else {
            "other".to_string()
        };
        let xattrs = tree::read_xattrs(&p).unwrap();
        out.insert(
            rel,
            format!(
                "{detail} mode={:o} owner={}:{} mtime={}.{} size={} xattrs={:?}",
                md.mode(),
                md.uid(),
                md.gid(),
                md.mtime(),
                md.mtime_nsec(),
                if ft.is_dir() { 0 } else { md.len() },
                xattrs
            ),
        );
    }
    out
}

fn meta(name: &str) -> TemplateMeta {
    TemplateMeta {
        name: name.into(),
        recipe: "[source]\nsuite = \"bookworm\"\n".into(),
        packages: vec![LockedPackage {
            name: "base-files".into(),
            version: "12.4".into(),
            architecture: "amd64".into(),
            sha256: "0".repeat(64),
        }],
        facts: [("mirror".to_string(), "http://x".to_string())].into(),
    }
}

fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    (dir, store)
}

/// Commit a fresh tree built in a staging directory.
fn commit_tree(store: &Store, name: &str, merged: bool, extra: bool) -> String {
    let staging = store.staging_dir().unwrap();
    make_tree(&staging, merged, extra);
    let id = store.commit(&staging, &meta(name)).unwrap();
    assert!(!staging.exists(), "commit removes the staging tree");
    id
}

fn tree_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn split_usr_tree_round_trips_through_checkout() {
    let (dir, store) = new_store();
    let original = dir.path().join("original");
    std::fs::create_dir(&original).unwrap();
    make_tree(&original, false, false);
    let staging = store.staging_dir().unwrap();
    make_tree(&staging, false, false);
    assert_eq!(snapshot(&original), snapshot(&staging));
    let has_cap = xattr::get(original.join("usr/bin/ping"), "security.capability")
        .unwrap()
        .is_some();

    let id = store.commit(&staging, &meta("debian-12")).unwrap();
    assert!(!staging.exists());

    let trees = store.layer_trees("debian-12").unwrap();
    assert_eq!(trees.len(), 3, "usr, lib/bin, rest");
    assert_eq!(tree_names(&trees[0]), ["usr"]);
    assert_eq!(tree_names(&trees[1]), ["bin", "lib"]);
    assert_eq!(tree_names(&trees[2]), ["dev", "etc", "home", "run", "var"]);
    // Layer trees are hardlinks into objects/.
    let prog = std::fs::metadata(trees[0].join("usr/bin/prog")).unwrap();
    assert!(prog.nlink() >= 2);

    let out = dir.path().join("checkout");
    store.checkout(&id[..10], &out).unwrap();
    let got = snapshot(&out);
    assert_eq!(got, snapshot(&original));
    assert!(got["/usr/bin/suid"].contains("mode=104755"));
    assert!(got["/home/user/notes"].contains("owner=1000:1000"));
    assert!(got["/etc/attr"].contains("117, 115, 101, 114, 46, 120")); // "user.x"
    assert!(got["/etc/hard2"].contains("link=/etc/hard1"));
    assert_eq!(
        has_cap,
        got["/usr/bin/ping"].contains("115, 101, 99, 117, 114, 105, 116, 121") // "security"
    );
    // The checkout is independent of the store.
    let out_prog = std::fs::metadata(out.join("usr/bin/prog")).unwrap();
    assert_ne!(out_prog.ino(), prog.ino());

    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, id);
    assert_eq!(list[0].names, ["debian-12"]);
    assert_eq!(list[0].packages, 1);
    let file_bytes: u64 = walkdir::WalkDir::new(&original)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert_eq!(list[0].bytes, file_bytes);
    let info = store.info("debian-12").unwrap();
    assert_eq!(info.layers.len(), 3);
    assert_eq!(info.layers[0].bytes, 300_000 + 14 + 14 + 12 + 20);
    assert_eq!(info.info.bytes, file_bytes);

    let report = store.fsck().unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.layers, 3);

    // A non-empty destination is refused and left alone.
    let err = store.checkout("debian-12", &out).unwrap_err();
    assert!(matches!(err, StoreError::DestNotEmpty { .. }), "{err}");
}

/// Identical empty logs (one object), a real hardlink pair of that same
/// object, a pair with its own content, and a hardlink across layers.
fn make_link_tree(root: &Path) {
    for d in ["etc", "usr", "usr/bin", "var", "var/log"] {
        std::fs::create_dir(root.join(d)).unwrap();
    }
    for f in ["faillog", "lastlog", "wtmp", "btmp"] {
        file(root, &format!("var/log/{f}"), b"", 0o644, (0, 0));
    }
    std::fs::hard_link(root.join("var/log/btmp"), root.join("var/log/btmp.1")).unwrap();
    file(root, "etc/pair1", b"pair", 0o644, (0, 0));
    std::fs::hard_link(root.join("etc/pair1"), root.join("etc/pair2")).unwrap();
    file(root, "usr/bin/both", b"in two layers", 0o755, (0, 0));
    std::fs::hard_link(root.join("usr/bin/both"), root.join("etc/both")).unwrap();
    let mut all: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap().path().to_path_buf())
        .collect();
    all.sort();
    for p in all.iter().rev() {
        set_times(p, T0, 0);
    }
}

#[test]
fn only_real_hardlinks_are_hardlinks_in_a_checkout() {
    let (dir, store) = new_store();
    let staging = store.staging_dir().unwrap();
    make_link_tree(&staging);
    let id = store.commit(&staging, &meta("links")).unwrap();
    let ino = |p: PathBuf| {
        let md = std::fs::symlink_metadata(&p).unwrap();
        (md.ino(), md.nlink())
    };

    // The layer tree shares the object: all five empty names, one inode.
    let trees = store.layer_trees(&id).unwrap();
    let rest = trees.last().unwrap();
    let logs = ["faillog", "lastlog", "wtmp", "btmp", "btmp.1"];
    let shared: Vec<u64> = logs
        .iter()
        .map(|f| ino(rest.join("var/log").join(f)).0)
        .collect();
    assert!(shared.iter().all(|i| *i == shared[0]), "{shared:?}");

    // The manifest knows which names were real hardlinks.
    let layer = &store.info(&id).unwrap().layers.last().unwrap().id.clone();
    let links: BTreeMap<String, Option<String>> = store
        .read_manifest(layer)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            manifest::Kind::File { link, .. } => Some((
                String::from_utf8_lossy(&e.path).into_owned(),
                link.map(|l| String::from_utf8_lossy(&l).into_owned()),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(links["/var/log/btmp.1"].as_deref(), Some("/var/log/btmp"));
    assert_eq!(links["/etc/pair2"].as_deref(), Some("/etc/pair1"));
    assert_eq!(links["/var/log/wtmp"], None);
    assert_eq!(
        links["/etc/both"], None,
        "its first name is in the /usr layer"
    );

    let out = dir.path().join("out");
    store.checkout("links", &out).unwrap();
    let log = |f: &str| ino(out.join("var/log").join(f));
    let (a, b, c) = (log("faillog"), log("lastlog"), log("wtmp"));
    assert_eq!((a.1, b.1, c.1), (1, 1, 1));
    assert!(a.0 != b.0 && b.0 != c.0 && a.0 != c.0);
    let (p, q) = (log("btmp"), log("btmp.1"));
    assert_eq!(p, q);
    assert_eq!(p.1, 2);
    assert!(![a.0, b.0, c.0].contains(&p.0));
    let (p1, p2) = (ino(out.join("etc/pair1")), ino(out.join("etc/pair2")));
    assert_eq!(p1, p2);
    assert_eq!(p1.1, 2);
    // A hardlink across layers comes out as two files.
    assert_eq!(ino(out.join("etc/both")).1, 1);
    assert_eq!(ino(out.join("usr/bin/both")).1, 1);
    // Editing one log leaves the others alone.
    std::fs::write(out.join("var/log/wtmp"), b"login").unwrap();
    assert_eq!(std::fs::read(out.join("var/log/faillog")).unwrap(), b"");
    assert_eq!(std::fs::read(rest.join("var/log/wtmp")).unwrap(), b"");

    assert!(store.fsck().unwrap().is_clean());
    // The same tree from outside (copied, not moved) gives the same template.
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    make_link_tree(&outside);
    let (_dir_b, other) = new_store();
    assert_eq!(other.commit(&outside, &meta("links")).unwrap(), id);
}

#[test]
fn old_layers_are_refused_with_a_fix_and_kept_by_gc() {
    let (dir, store) = new_store();
    let id = commit_tree(&store, "t", true, false);
    // Rewrite the top layer as format 1 (no link field) under its new id.
    let record_path = store.record_path(&id);
    let mut record = read_record(&record_path).unwrap();
    let old_id = record.layers.last().unwrap().id.clone();
    let text =
        String::from_utf8(std::fs::read(store.layers().join(&old_id).join("manifest")).unwrap())
            .unwrap();
    let mut v1 = String::from("vzpkg-layer 1\n");
    for line in text.lines().skip(1) {
        v1.push_str(line.rsplit_once(' ').unwrap().0);
        v1.push('\n');
    }
    let v1_id = manifest::digest(v1.as_bytes());
    let dir1 = store.layers().join(&v1_id);
    std::fs::rename(store.layers().join(&old_id), &dir1).unwrap();
    std::fs::write(dir1.join("manifest"), &v1).unwrap();
    record.layers.last_mut().unwrap().id = v1_id.clone();
    std::fs::write(&record_path, serde_json::to_vec(&record).unwrap()).unwrap();

    let err = store.checkout("t", &dir.path().join("out")).unwrap_err();
    assert!(
        matches!(err, StoreError::LayerFormat { found: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("vzpkg create"), "{err}");
    let report = store.fsck().unwrap();
    assert!(
        report.problems.iter().any(|p| p.what.contains("format 1")),
        "{:?}",
        report.problems
    );
    // gc keeps the objects the old layer names.
    let g = store.gc().unwrap();
    assert_eq!(g.objects, 0);
    assert!(store.info("t").is_ok());
}

#[test]
fn merged_usr_tree_has_two_layers() {
    let (dir, store) = new_store();
    let id = commit_tree(&store, "merged", true, false);
    let trees = store.layer_trees(&id).unwrap();
    assert_eq!(trees.len(), 2);
    assert_eq!(tree_names(&trees[0]), ["usr"]);
    let rest = tree_names(&trees[1]);
    assert!(rest.contains(&"lib".to_string()) && rest.contains(&"bin".to_string()));
    assert!(std::fs::symlink_metadata(trees[1].join("lib"))
        .unwrap()
        .file_type()
        .is_symlink());

    let original = dir.path().join("original");
    std::fs::create_dir(&original).unwrap();
    make_tree(&original, true, false);
    let out = dir.path().join("out");
    store.checkout("merged", &out).unwrap();
    assert_eq!(snapshot(&out), snapshot(&original));
}

#[test]
fn same_tree_gives_same_id_in_two_stores() {
    let (dir_a, a) = new_store();
    let (dir_b, b) = new_store();
    let id_a = commit_tree(&a, "t", false, false);
    // The other store gets the tree from outside (copied, not moved).
    let outside = dir_b.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    make_tree(&outside, false, false);
    let before = snapshot(&outside);
    let id_b = b.commit(&outside, &meta("other-name")).unwrap();
    assert_eq!(id_a, id_b);
    assert_eq!(a.info(&id_a).unwrap().layers, b.info(&id_b).unwrap().layers);
    assert_eq!(
        snapshot(&outside),
        before,
        "an outside tree is left as it was"
    );
    // Not a hardlink into the store: the user may still change it.
    assert_eq!(
        std::fs::metadata(outside.join("usr/bin/prog"))
            .unwrap()
            .nlink(),
        1
    );
    assert!(b.fsck().unwrap().is_clean());
    // The id is the content: another recipe making the same tree gives the
    // same template, whose record then follows the newer recipe.
    let staging = a.staging_dir().unwrap();
    make_tree(&staging, false, false);
    let mut m = meta("t2");
    m.recipe.push_str("# changed\n");
    let id_c = a.commit(&staging, &m).unwrap();
    assert_eq!(id_a, id_c);
    assert_eq!(a.info("t2").unwrap().recipe, m.recipe);
    // An import-style commit (no recipe) keeps what the build recorded.
    let staging = a.staging_dir().unwrap();
    make_tree(&staging, false, false);
    let mut bare = meta("t3");
    bare.recipe.clear();
    bare.packages.clear();
    assert_eq!(a.commit(&staging, &bare).unwrap(), id_a);
    assert_eq!(a.info("t3").unwrap().recipe, m.recipe);
    drop(dir_a);
}

#[test]
fn templates_share_inodes() {
    let (_dir, store) = new_store();
    let one = commit_tree(&store, "one", false, false);
    let two = commit_tree(&store, "two", false, true);
    assert_ne!(one, two);
    let l1 = store.info("one").unwrap().layers;
    let l2 = store.info("two").unwrap().layers;
    assert_eq!(l1[0].id, l2[0].id, "the /usr layer is shared");
    assert_eq!(l1[1].id, l2[1].id, "the /lib layer is shared");
    assert_ne!(l1[2].id, l2[2].id);
    let t1 = store.layer_trees("one").unwrap();
    let t2 = store.layer_trees("two").unwrap();
    // A file in a layer that differs is still one inode in both templates.
    let p1 = std::fs::metadata(t1[2].join("etc/passwd")).unwrap();
    let p2 = std::fs::metadata(t2[2].join("etc/passwd")).unwrap();
    assert_eq!((p1.dev(), p1.ino()), (p2.dev(), p2.ino()));
    let u1 = std::fs::metadata(t1[0].join("usr/lib/libx.so")).unwrap();
    let u2 = std::fs::metadata(t2[0].join("usr/lib/libx.so")).unwrap();
    assert_eq!(u1.ino(), u2.ino());
    // The hardlink pair is one object too.
    let h1 = std::fs::metadata(t1[2].join("etc/hard1")).unwrap();
    let h2 = std::fs::metadata(t1[2].join("etc/hard2")).unwrap();
    assert_eq!(h1.ino(), h2.ino());
    assert_eq!(store.list().unwrap().len(), 2);
}

#[test]
fn failed_commits_leave_the_store_as_it_was() {
    let (_dir, store) = new_store();
    commit_tree(&store, "keep", true, false);
    let before: Vec<(String, Vec<String>)> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|t| (t.id, t.names))
        .collect();
    let records = tree_names(&store.root().join("templates"));

    // A socket cannot go into a template.
    let staging = store.staging_dir().unwrap();
    make_tree(&staging, false, true);
    let sock = staging.join("run/sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let err = store.commit(&staging, &meta("bad")).unwrap_err();
    assert!(matches!(err, StoreError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("run/sock"), "{err}");
    assert!(
        staging.join("etc/passwd").exists(),
        "the tree is left to the caller"
    );
    std::fs::remove_file(&sock).unwrap();

    // Fails at the very end: the tag cannot be written (a directory is in
    // the way), after objects, layers and the template record are done.
    let blocker = store.root().join("tags/late");
    std::fs::create_dir_all(blocker.join("x")).unwrap();
    let err = store.commit(&staging, &meta("late")).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert!(err.to_string().contains("tags/late"), "{err}");
    std::fs::remove_dir_all(&blocker).unwrap();

    let after: Vec<(String, Vec<String>)> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|t| (t.id, t.names))
        .collect();
    assert_eq!(after, before);
    assert_eq!(tree_names(&store.root().join("templates")), records);
    assert_eq!(tree_names(&store.root().join("tags")), ["keep"]);
    // No half-built layer is left in tmp/, only the staging tree itself.
    let tmp: Vec<String> = tree_names(&store.root().join("tmp"));
    assert_eq!(tmp.len(), 1, "{tmp:?}");
    assert!(tmp[0].starts_with("staging-"));
    // The store is consistent, and the same tree still commits.
    assert!(store.fsck().unwrap().is_clean());
    store.commit(&staging, &meta("late")).unwrap();
    assert_eq!(store.list().unwrap().len(), 2);
}

#[test]
fn resolve_remove_tag_and_gc() {
    let (_dir, store) = new_store();
    let one = commit_tree(&store, "one", false, false);
    let two = commit_tree(&store, "two", false, true);
    assert_eq!(store.resolve("one").unwrap(), one);
    assert_eq!(store.resolve(&two).unwrap(), two);
    assert_eq!(store.resolve(&two[..12]).unwrap(), two);
    let err = store.resolve("nope").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("nope") && msg.contains("one") && msg.contains("two"),
        "{msg}"
    );
    assert!(matches!(
        store.resolve("").unwrap_err(),
        StoreError::NotFound { .. }
    ));

    // Nothing unreachable yet.
    let g = store.gc().unwrap();
    assert_eq!((g.templates, g.layers, g.objects), (0, 0, 0));

    store.remove_tag("two").unwrap();
    assert!(matches!(
        store.remove_tag("two").unwrap_err(),
        StoreError::NotFound { .. }
    ));
    let g = store.gc().unwrap();
    assert_eq!(g.templates, 1);
    assert_eq!(g.layers, 1, "only the rest layer was not shared");
    assert_eq!(g.objects, 1, "etc/hostname");
    assert_eq!(g.bytes, 6);
    assert_eq!(store.list().unwrap().len(), 1);
    assert!(store.resolve(&two).is_err());
    let out = store.root().parent().unwrap().join("out");
    store.checkout("one", &out).unwrap();
    assert!(store.fsck().unwrap().is_clean());
}

#[test]
fn fsck_finds_damage() {
    let (_dir, store) = new_store();
    commit_tree(&store, "t", false, false);
    let trees = store.layer_trees("t").unwrap();
    assert!(store.fsck().unwrap().is_clean());
    // Writing through the layer tree changes the shared object.
    std::fs::write(trees[2].join("etc/passwd"), b"changed").unwrap();
    std::fs::remove_file(trees[0].join("usr/bin/prog")).unwrap();
    let report = store.fsck().unwrap();
    let text: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert!(
        text.iter()
            .any(|p| p.contains("content or metadata changed")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|p| p.contains("usr/bin/prog") && p.contains("missing")),
        "{text:?}"
    );
    assert!(text.iter().any(|p| p.contains("size")), "{text:?}");
}

#[test]
fn bad_names_and_paths_are_refused() {
    let (dir, store) = new_store();
    let staging = store.staging_dir().unwrap();
    let err = store.commit(&staging, &meta("a/b")).unwrap_err();
    assert!(matches!(err, StoreError::BadTag { .. }), "{err}");
    let f = dir.path().join("file");
    std::fs::write(&f, b"x").unwrap();
    let err = store.commit(&f, &meta("ok")).unwrap_err();
    assert!(matches!(err, StoreError::NotADirectory { .. }), "{err}");
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn leftovers_of_dead_processes_are_cleaned() {
    let (_dir, store) = new_store();
    // A pid that cannot be alive (above the kernel's pid_max limit).
    let junk = store.root().join("tmp/layer.x-99999999-1-1");
    std::fs::create_dir_all(junk.join("tree")).unwrap();
    let mine = store.staging_dir().unwrap();
    commit_tree(&store, "t", true, false);
    assert!(!junk.exists());
    assert!(mine.exists(), "this process's staging tree is in use");
    let name = mine.file_name().unwrap().as_bytes().to_vec();
    assert!(name.starts_with(b"staging-"));
}

/// Cancelling sets a process-wide flag, so it runs in a child process (this
/// test binary, running only `cancel_child`).
#[test]
fn cancelled_commit_leaves_nothing() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", "store::tests::cancel_child", "--ignored"])
        .env("VZPKG_STORE_CANCEL_CHILD", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

#[test]
#[ignore]
fn cancel_child() {
    if std::env::var_os("VZPKG_STORE_CANCEL_CHILD").is_none() {
        return;
    }
    let (_dir, store) = new_store();
    let id = commit_tree(&store, "keep", false, false);
    let staging = store.staging_dir().unwrap();
    make_tree(&staging, false, true);
    crate::cancel::request();
    let err = store.commit(&staging, &meta("cancelled")).unwrap_err();
    assert!(matches!(err, StoreError::Cancelled(_)), "{err}");
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, id);
    assert_eq!(tree_names(&store.root().join("tags")), ["keep"]);
    assert_eq!(tree_names(&store.root().join("tmp")).len(), 1);
}

/// A commit of a tree the size of a Debian minbase, for a timing figure:
/// `cargo test --release -p vzpkg --lib store::tests::commit_timing -- --ignored --nocapture`
#[test]
#[ignore]
fn commit_timing() {
    let (dir, store) = new_store();
    let staging = store.staging_dir().unwrap();
    // Many small files and some big ones, like a minbase: /usr, files under
    // 4 MB, until 200 MB.
    let src = Path::new("/usr");
    let mut bytes = 0u64;
    let mut files = 0u64;
    for e in walkdir::WalkDir::new(src).sort_by_file_name() {
        if bytes >= 200_000_000 {
            break;
        }
        let Ok(e) = e else { continue };
        let rel = e.path().strip_prefix("/").unwrap();
        let dest = staging.join(rel);
        let ft = e.file_type();
        if ft.is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &dest).unwrap();
        } else if ft.is_file() && e.metadata().unwrap().len() < 4_000_000 {
            bytes += std::fs::copy(e.path(), &dest).unwrap();
            files += 1;
        }
    }
    let t = std::time::Instant::now();
    store.commit(&staging, &meta("big")).unwrap();
    let first = t.elapsed();
    let out = dir.path().join("out");
    let t = std::time::Instant::now();
    store.checkout("big", &out).unwrap();
    let checkout = t.elapsed();
    println!("commit of {files} files, {bytes} bytes: {first:?}; checkout: {checkout:?}");
}
