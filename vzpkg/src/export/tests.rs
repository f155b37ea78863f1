use super::*;
use rustix::fs::{AtFlags, Mode};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::symlink;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const CAP_NET_RAW: [u8; 20] = [
    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn set_mtime(p: &Path, t: i64) {
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &timestamps(t),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn file(root: &Path, rel: &str, data: &[u8], mode: u32, uid: u32, gid: u32) {
    let p = root.join(rel);
    std::fs::write(&p, data).unwrap();
    std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// A tree with every kind of entry a root file system holds.
fn build_tree(root: &Path) {
    for d in ["bin", "dev", "etc", "home/user", "usr/bin", "deep"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::os::unix::fs::chown(root.join("home/user"), Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(
        root.join("home/user"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    file(
        root,
        "etc/passwd",
        b"root:x:0:0::/root:/bin/sh\n",
        0o644,
        0,
        0,
    );
    file(root, "etc/shadow", b"root:*:19000::::::\n", 0o640, 0, 42);
    file(root, "bin/su", &[0x7f; 700], 0o4755, 0, 0);
    file(root, "usr/bin/wall", b"wall", 0o2755, 0, 5);
    file(root, "home/user/notes", b"mine", 0o600, 1000, 1000);
    file(root, "etc/empty", b"", 0o000, 0, 0);
    let big: Vec<u8> = (0..1_048_579u32).map(|i| (i * 7 % 251) as u8).collect();
    file(root, "usr/bin/big", &big, 0o755, 0, 0);
    file(root, "usr/bin/ping", b"ping", 0o755, 0, 0);
    xattr::set(
        root.join("usr/bin/ping"),
        "security.capability",
        &CAP_NET_RAW,
    )
    .unwrap();
    xattr::set(root.join("etc/passwd"), "user.note", b"value with = and \n").unwrap();
    std::fs::hard_link(root.join("usr/bin/big"), root.join("bin/big-link")).unwrap();
    symlink("su", root.join("bin/sh")).unwrap();
    symlink("/usr/share/zoneinfo/UTC", root.join("etc/localtime")).unwrap();
    let long = "x".repeat(120);
    file(root, &format!("deep/{long}"), b"long name", 0o644, 0, 0);
    symlink(format!("/deep/{long}"), root.join("deep/long-target")).unwrap();
    let dev = |rel: &str, ft, maj, min| {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join(rel),
            ft,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(maj, min),
        )
        .unwrap();
        // mknod is subject to the umask.
        std::fs::set_permissions(
            root.join(rel),
            std::os::unix::fs::PermissionsExt::from_mode(0o666),
        )
        .unwrap();
    };
    dev("dev/null", rustix::fs::FileType::CharacterDevice, 1, 3);
    dev("dev/loop0", rustix::fs::FileType::BlockDevice, 7, 0);
    dev("dev/initctl", rustix::fs::FileType::Fifo, 0, 0);
    std::fs::set_permissions(
        root.join("dev/initctl"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    // Fixed mtimes, children before their directories.
    let mut all: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, 1_600_000_000 + i as i64 * 17);
    }
}

/// Everything lstat and the contents say about a tree, by path;
/// hardlinks as the first path sharing the inode.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<u64, String> = HashMap::new();
    let mut all: Vec<walkdir::DirEntry> = walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap())
        .collect();
    all.sort_by(|a, b| a.path().cmp(b.path()));
    for e in all {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let m = std::fs::symlink_metadata(p).unwrap();
        let ft = m.file_type();
        let what = if ft.is_file() {
            format!(
                "file {}",
                hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
            )
        } else if ft.is_symlink() {
            format!("symlink {}", std::fs::read_link(p).unwrap().display())
        } else if ft.is_dir() {
            "dir".into()
        } else if ft.is_char_device() || ft.is_block_device() {
            format!("dev {} {:x}", ft.is_char_device(), m.rdev())
        } else if ft.is_fifo() {
            "fifo".into()
        } else {
            "other".into()
        };
        let link = if !ft.is_dir() && m.nlink() > 1 {
            inodes.entry(m.ino()).or_insert_with(|| rel.clone()).clone()
        } else {
            String::new()
        };
        let mut xattrs: Vec<String> = xattr::list(p)
            .unwrap()
            .map(|n| {
                let v = xattr::get(p, &n).unwrap().unwrap_or_default();
                format!("{}={}", n.to_string_lossy(), hex::encode(v))
            })
            .collect();
        xattrs.sort();
        let mode = if ft.is_symlink() {
            0
        } else {
            m.mode() & 0o7777
        };
        out.insert(
            rel,
            format!(
                "{what} mode={mode:o} {}:{} mtime={} nlink={} link={link} xattrs={xattrs:?}",
                m.uid(),
                m.gid(),
                m.mtime(),
                m.nlink()
            ),
        );
    }
    out
}

const NAMES: [&str; 5] = ["t.tar", "t.tar.gz", "t.tar.bz2", "t.tar.xz", "t.tar.zst"];

#[test]
fn round_trip_every_compression() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    build_tree(&tree);
    let want = snapshot(&tree);
    for name in NAMES {
        let out = tmp.path().join(name);
        let s = write_cache(&tree, &out, &ExportOptions::default()).unwrap();
        assert_eq!(s.entries as usize, want.len(), "{name}");
        assert_eq!(s.compressed_bytes, std::fs::metadata(&out).unwrap().len());
        let dest = tmp.path().join(format!("x-{name}"));
        std::fs::create_dir(&dest).unwrap();
        let r = read_cache(&out, &dest).unwrap();
        assert_eq!(r.compression, Compression::from_path(&out).unwrap());
        assert_eq!(r.entries, s.entries, "{name}");
        assert_eq!(snapshot(&dest), want, "{name}");
    }
    // Nothing but the caches and the trees: no temp files left behind.
    let left = std::fs::read_dir(tmp.path()).unwrap().count();
    assert_eq!(left, 1 + 2 * NAMES.len());
}

#[test]
fn output_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    build_tree(&tree);
    // A copy made later, with the same mtimes but new inodes and ctimes.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let copy = tmp.path().join("copy");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&tree)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(snapshot(&tree), snapshot(&copy));
    for name in NAMES {
        let a = tmp.path().join(format!("a-{name}"));
        let b = tmp.path().join(format!("b-{name}"));
        let c = tmp.path().join(format!("c-{name}"));
        let one = ExportOptions {
            threads: Some(1),
            ..ExportOptions::default()
        };
        let three = ExportOptions {
            threads: Some(3),
            ..ExportOptions::default()
        };
        write_cache(&tree, &a, &one).unwrap();
        write_cache(&tree, &b, &three).unwrap();
        write_cache(&copy, &c, &ExportOptions::default()).unwrap();
        let a = std::fs::read(&a).unwrap();
        assert_eq!(
            a,
            std::fs::read(&b).unwrap(),
            "{name}: thread count changed output"
        );
        assert_eq!(
            a,
            std::fs::read(&c).unwrap(),
            "{name}: copy of the tree differs"
        );
    }
}

#[test]
fn thread_count_does_not_change_large_xz_and_zstd_output() {
    // Several xz blocks and zstd jobs, so the workers really split the work.
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    let mut x: u64 = 1;
    let data: Vec<u8> = (0..60_000_000u32)
        .map(|i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if i % 3 == 0 {
                (x >> 59) as u8
            } else {
                b'a' + (i % 13) as u8
            }
        })
        .collect();
    std::fs::write(tree.join("data"), &data).unwrap();
    for name in ["t.tar.xz", "t.tar.zst"] {
        let mut outs = Vec::new();
        for threads in [1, 2, 5] {
            let out = tmp.path().join(format!("{threads}-{name}"));
            let o = ExportOptions {
                threads: Some(threads),
                xz_preset: 1,
                zstd_level: 3,
                ..ExportOptions::default()
            };
            write_cache(&tree, &out, &o).unwrap();
            outs.push(std::fs::read(&out).unwrap());
        }
        assert!(outs.iter().all(|o| o == &outs[0]), "{name}");
    }
}

#[test]
fn gnu_tar_lists_and_extracts_every_export() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    build_tree(&tree);
    let want = snapshot(&tree);
    for name in NAMES {
        let out = tmp.path().join(name);
        write_cache(&tree, &out, &ExportOptions::default()).unwrap();
        let list = Command::new("tar")
            .arg("--numeric-owner")
            .arg("-tvf")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            list.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&list.stderr)
        );
        let list = String::from_utf8(list.stdout).unwrap();
        assert!(
            list.lines()
                .any(|l| l.starts_with("-rwsr-xr-x 0/0") && l.ends_with("./bin/su")),
            "{list}"
        );
        assert!(
            list.lines()
                .any(|l| l.starts_with("drwx------ 1000/1000") && l.ends_with("./home/user/")),
            "{list}"
        );
        assert!(
            list.lines()
                .any(|l| l.starts_with("crw-rw-rw- 0/0") && l.contains("1,3")),
            "{list}"
        );
        assert!(
            list.contains("./usr/bin/big link to ./bin/big-link"),
            "{list}"
        );
        assert!(list.lines().next().unwrap().ends_with(" ./"), "{list}");
        let dest = tmp.path().join(format!("gnu-{name}"));
        std::fs::create_dir(&dest).unwrap();
        let x = Command::new("tar")
            .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf"])
            .arg(&out)
            .arg("-C")
            .arg(&dest)
            .output()
            .unwrap();
        assert!(
            x.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&x.stderr)
        );
        assert_eq!(snapshot(&dest), want, "{name}");
    }
}

#[test]
fn imports_caches_made_by_gnu_tar() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    build_tree(&tree);
    let want = snapshot(&tree);
    // The OpenVZ way (GNU format, long names as ././@LongLink), and the
    // POSIX format GNU tar uses for xattrs.
    for (name, extra) in [("gnu.tar.gz", None), ("posix.tar.xz", Some("--xattrs"))] {
        let out = tmp.path().join(name);
        let mut cmd = Command::new("tar");
        cmd.args(["--numeric-owner", "-caf"]).arg(&out);
        if let Some(x) = extra {
            cmd.args([x, "--xattrs-include=*"]);
        }
        let st = cmd.arg("-C").arg(&tree).arg(".").status().unwrap();
        assert!(st.success());
        let dest = tmp.path().join(format!("x-{name}"));
        std::fs::create_dir(&dest).unwrap();
        read_cache(&out, &dest).unwrap();
        let got = snapshot(&dest);
        if extra.is_some() {
            assert_eq!(got, want, "{name}");
        } else {
            let strip = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.split(" xattrs=").next().unwrap().to_string()))
                    .collect()
            };
            assert_eq!(strip(&got), strip(&want), "{name}");
        }
    }
}

fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    name: &[u8],
    kind: tar::EntryType,
    link: &[u8],
    data: &[u8],
) {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.as_gnu_mut().unwrap().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

#[test]
fn hostile_caches_are_refused_and_nothing_lands_outside() {
    use tar::EntryType as T;
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"s").unwrap();
    let through_root = format!("a{}/pwned", outside.display());
    type Member = (Vec<u8>, T, Vec<u8>);
    let cases: Vec<(&str, Vec<Member>)> = vec![
        (
            "dotdot",
            vec![(b"../outside/pwned".to_vec(), T::Regular, vec![])],
        ),
        (
            "dotdot-inner",
            vec![(b"./etc/../../outside/pwned".to_vec(), T::Regular, vec![])],
        ),
        (
            "symlink-to-root",
            vec![
                (b"a".to_vec(), T::Symlink, b"/".to_vec()),
                (through_root.into_bytes(), T::Regular, vec![]),
            ],
        ),
        (
            "symlink-relative",
            vec![
                (b"b".to_vec(), T::Symlink, b"../outside".to_vec()),
                (b"b/pwned".to_vec(), T::Regular, vec![]),
            ],
        ),
        (
            "hardlink-out",
            vec![(b"h".to_vec(), T::Link, b"../../outside/secret".to_vec())],
        ),
        (
            "hardlink-through-symlink",
            vec![
                (b"c".to_vec(), T::Symlink, b"../outside".to_vec()),
                (b"h".to_vec(), T::Link, b"c/secret".to_vec()),
            ],
        ),
    ];
    for (label, entries) in cases {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, link) in &entries {
            raw_entry(&mut b, name, *kind, link, b"pwned");
        }
        let cache = tmp.path().join(format!("{label}.tar"));
        std::fs::write(&cache, b.into_inner().unwrap()).unwrap();
        let dest = tmp.path().join(format!("dest-{label}"));
        std::fs::create_dir(&dest).unwrap();
        let err = read_cache(&cache, &dest).unwrap_err();
        assert!(matches!(err, ExportError::Unsafe { .. }), "{label}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains("is unsafe") && msg.contains(&format!("{label}.tar")),
            "{msg}"
        );
        let mut names: Vec<_> = std::fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, vec![std::ffi::OsString::from("secret")], "{label}");
        assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"s");
        assert_eq!(
            std::fs::metadata(outside.join("secret")).unwrap().nlink(),
            1
        );
        assert!(!dest.join("h").exists(), "{label}");
    }
    // A leading `/` is dropped, as GNU tar does: the file lands inside.
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, b"/etc/hostname", T::Regular, b"", b"vps\n");
    let cache = tmp.path().join("absolute.tar");
    std::fs::write(&cache, b.into_inner().unwrap()).unwrap();
    let dest = tmp.path().join("dest-absolute");
    std::fs::create_dir(&dest).unwrap();
    read_cache(&cache, &dest).unwrap();
    assert_eq!(std::fs::read(dest.join("etc/hostname")).unwrap(), b"vps\n");
}

#[test]
fn truncated_caches_are_reported_as_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    let mut x: u32 = 7;
    let noise: Vec<u8> = (0..400_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    std::fs::write(tree.join("noise"), &noise).unwrap();
    std::fs::write(tree.join("zz-after"), b"after").unwrap();
    for name in ["t.tar.zst", "t.tar.gz", "t.tar.xz", "t.tar"] {
        let out = tmp.path().join(name);
        write_cache(&tree, &out, &ExportOptions::default()).unwrap();
        let full = std::fs::read(&out).unwrap();
        // Mid-stream, and (for plain tar) exactly at a block boundary.
        for cut in [full.len() / 2, 1024 + 400_384] {
            if cut >= full.len() {
                continue;
            }
            let bad = tmp.path().join(format!("cut-{cut}-{name}"));
            std::fs::write(&bad, &full[..cut]).unwrap();
            let dest = tmp.path().join(format!("dest-{cut}-{name}"));
            std::fs::create_dir(&dest).unwrap();
            let err = read_cache(&bad, &dest).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, ExportError::Corrupt { .. }),
                "{name} at {cut}: {msg}"
            );
            assert!(
                msg.contains("truncated or corrupt") && msg.contains("re-download"),
                "{msg}"
            );
            assert!(msg.contains(bad.to_str().unwrap()), "{msg}");
        }
    }
}

#[test]
fn bad_names_and_destinations_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let err = write_cache(
        tmp.path(),
        &tmp.path().join("t.tar.lz4"),
        &ExportOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains(".tar.zst"), "{err}");
    let out = tmp.path().join("t.tar");
    let err =
        write_cache(&tmp.path().join("missing"), &out, &ExportOptions::default()).unwrap_err();
    assert!(matches!(err, ExportError::ReadTree { .. }), "{err}");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "temp file left"
    );
    std::fs::write(tmp.path().join("junk.tar.gz"), b"not a tarball at all").unwrap();
    let dest = tmp.path().join("d");
    std::fs::create_dir(&dest).unwrap();
    let err = read_cache(&tmp.path().join("junk.tar.gz"), &dest).unwrap_err();
    assert!(matches!(err, ExportError::UnknownFormat { .. }), "{err}");
    std::fs::write(dest.join("x"), b"").unwrap();
    write_cache(&tmp.path().join("d"), &out, &ExportOptions::default()).unwrap();
    let err = read_cache(&out, &dest).unwrap_err();
    assert!(matches!(err, ExportError::DestNotEmpty { .. }), "{err}");
}

/// Figures for the report: `cargo test -p vzpkg --lib export::tests::measure
/// -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_export_of_a_real_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    // About 200 MB of /usr/lib/x86_64-linux-gnu, by sorted name.
    let src = Path::new("/usr/lib/x86_64-linux-gnu");
    let mut names: Vec<_> = std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut total = 0u64;
    for p in names {
        if total > 200_000_000 {
            break;
        }
        let st = Command::new("cp")
            .arg("-a")
            .arg(&p)
            .arg(&tree)
            .status()
            .unwrap();
        assert!(st.success());
        let du = Command::new("du")
            .args(["-sb"])
            .arg(tree.join(p.file_name().unwrap()))
            .output()
            .unwrap();
        total += String::from_utf8_lossy(&du.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap();
    }
    println!("tree: {total} bytes");
    for name in NAMES {
        let out = tmp.path().join(name);
        let t = std::time::Instant::now();
        let s = write_cache(&tree, &out, &ExportOptions::default()).unwrap();
        let took = t.elapsed();
        let dest = tmp.path().join(format!("x-{name}"));
        std::fs::create_dir(&dest).unwrap();
        let t = std::time::Instant::now();
        read_cache(&out, &dest).unwrap();
        println!(
            "{name}: {} entries, tar {} B, out {} B, export {:.2?}, import {:.2?}",
            s.entries,
            s.uncompressed_bytes,
            s.compressed_bytes,
            took,
            t.elapsed()
        );
        std::fs::remove_dir_all(&dest).unwrap();
    }
    let t = std::time::Instant::now();
    let o = Command::new("sh")
        .arg("-c")
        .arg("tar -cf - . | zstd -T0 -q | wc -c")
        .current_dir(&tree)
        .output()
        .unwrap();
    println!(
        "tar -cf - . | zstd -T0: out {} B, {:.2?}",
        String::from_utf8_lossy(&o.stdout).trim(),
        t.elapsed()
    );
}
