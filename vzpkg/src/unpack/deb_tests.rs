//! Unpacking real `.deb` files, built by the same builder the integration
//! tests use, into real temporary trees.

use super::*;
use crate::progress::Silent;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use vzpkg_testkit::debfile::{self, Compression, DebBuilder, Entry, Kind, DEFAULT_MTIME};

fn pkg_for(b: &DebBuilder) -> DebPackage {
    let para = parse_paragraphs(&b.control_text()).unwrap().remove(0);
    DebPackage {
        name: para.get("Package").unwrap().into(),
        version: para.get("Version").unwrap().into(),
        architecture: para.get("Architecture").unwrap().into(),
        filename: String::new(),
        size: 0,
        sha256: String::new(),
        control: para,
    }
}

/// A scratch dir holding `root/` and the .deb files, so tests can check
/// that nothing was written next to the root.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        std::fs::create_dir(dir.path().join("debs")).unwrap();
        Scratch { dir }
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    fn add(&self, b: &DebBuilder) -> (DebPackage, PathBuf) {
        let p = pkg_for(b);
        let path = self.dir.path().join("debs").join(format!("{}.deb", p.id()));
        std::fs::write(&path, b.build()).unwrap();
        (p, path)
    }
    fn add_bytes(&self, b: &DebBuilder, bytes: Vec<u8>) -> (DebPackage, PathBuf) {
        let (p, path) = self.add(b);
        std::fs::write(&path, bytes).unwrap();
        (p, path)
    }
    fn unpack(&self, debs: &[(DebPackage, PathBuf)], merged_usr: bool) -> Result<(), UnpackError> {
        unpack_all(&self.root(), debs, UnpackOptions { merged_usr }, &Silent)
    }
    /// Everything in the scratch dir except `root/` and `debs/`.
    fn outside(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "root" && n != "debs")
            .collect();
        v.sort();
        v
    }
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root().join(rel)).unwrap()
    }
}

fn full_entry(path: &str, kind: Kind, mode: u32, uid: u64, gid: u64, mtime: u64) -> Entry {
    Entry {
        path: path.as_bytes().to_vec(),
        kind,
        mode,
        uid,
        gid,
        mtime,
        xattrs: Vec::new(),
    }
}

/// `security.capability` v2 blob granting cap_net_raw (bit 13), effective.
fn net_raw_cap() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0200_0001u32.to_le_bytes());
    v.extend_from_slice(&(1u32 << 13).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v
}

fn rich_package() -> DebBuilder {
    let mut ping = full_entry(
        "usr/bin/ping",
        Kind::File(b"\x7fELF ping".to_vec()),
        0o755,
        0,
        0,
        1_600_000_000,
    );
    ping.xattrs = vec![
        ("security.capability".into(), net_raw_cap()),
        ("user.vzpkg-test".into(), b"hello".to_vec()),
    ];
    DebBuilder::new("rich", "1.0-1", "amd64")
        .field("Priority", "required")
        .field("Essential", "yes")
        .field("Depends", "libc6 (>= 2.36)")
        .file("bin/sh-helper", b"#!/bin/sh\necho hi\n", 0o755)
        .file("usr/bin/tool", b"tool binary", 0o4755)
        .entry(full_entry(
            "usr/lib/x86_64-linux-gnu/libx.so.1.0",
            Kind::File(b"library".to_vec()),
            0o644,
            0,
            0,
            1_500_000_000,
        ))
        .symlink("usr/lib/x86_64-linux-gnu/libx.so.1", "libx.so.1.0")
        .hardlink("usr/bin/tool-alias", "usr/bin/tool")
        .entry(full_entry(
            "var/mail",
            Kind::Dir,
            0o2775,
            0,
            8,
            1_400_000_000,
        ))
        .entry(full_entry(
            "var/tmp",
            Kind::Dir,
            0o1777,
            0,
            0,
            DEFAULT_MTIME,
        ))
        .entry(full_entry(
            "var/lib/owned/data",
            Kind::File(b"owned".to_vec()),
            0o640,
            1234,
            5678,
            DEFAULT_MTIME,
        ))
        .entry(full_entry(
            "dev/null",
            Kind::Char(1, 3),
            0o666,
            0,
            0,
            DEFAULT_MTIME,
        ))
        .entry(full_entry(
            "dev/loop0",
            Kind::Block(7, 0),
            0o660,
            0,
            6,
            DEFAULT_MTIME,
        ))
        .entry(full_entry(
            "run/initctl",
            Kind::Fifo,
            0o600,
            0,
            0,
            DEFAULT_MTIME,
        ))
        .entry(ping)
        .conffile("etc/rich.conf", b"setting = 1\n")
        .script("postinst", "#!/bin/sh\nset -e\necho configured\n")
        .script("prerm", "#!/bin/sh\nexit 0\n")
        .control_member("triggers", b"interest-noawait /usr/share/rich\n", 0o644)
        .control_member("shlibs", b"libx 1 rich (>= 1.0)\n", 0o644)
}

#[test]
fn round_trip_contents_metadata_and_database() {
    let s = Scratch::new();
    let b = rich_package();
    let debs = vec![s.add(&b)];
    s.unpack(&debs, true).unwrap();
    let root = s.root();

    // merged /usr: ./bin/ was kept as the symlink, the file landed in usr/bin.
    assert_eq!(
        std::fs::read_link(root.join("bin")).unwrap(),
        Path::new("usr/bin")
    );
    assert_eq!(
        std::fs::read_link(root.join("lib64")).unwrap(),
        Path::new("usr/lib64")
    );
    assert!(root.join("usr/lib64").is_dir());
    let helper = std::fs::symlink_metadata(root.join("usr/bin/sh-helper")).unwrap();
    assert!(helper.is_file());
    assert_eq!(helper.mode() & 0o7777, 0o755);
    assert_eq!(
        std::fs::read(root.join("usr/bin/sh-helper")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );

    // setuid survives the chown; mtime kept.
    let tool = std::fs::symlink_metadata(root.join("usr/bin/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o4755);
    assert_eq!(tool.mtime(), DEFAULT_MTIME as i64);
    let alias = std::fs::symlink_metadata(root.join("usr/bin/tool-alias")).unwrap();
    assert_eq!(alias.ino(), tool.ino());
    assert_eq!(tool.nlink(), 2);

    let lib = root.join("usr/lib/x86_64-linux-gnu");
    assert_eq!(
        std::fs::read_link(lib.join("libx.so.1")).unwrap(),
        Path::new("libx.so.1.0")
    );
    assert_eq!(
        std::fs::symlink_metadata(lib.join("libx.so.1.0"))
            .unwrap()
            .mtime(),
        1_500_000_000
    );

    let owned = std::fs::symlink_metadata(root.join("var/lib/owned/data")).unwrap();
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o7777),
        (1234, 5678, 0o640)
    );

    // Directory metadata from the archive, applied last.
    let mail = std::fs::symlink_metadata(root.join("var/mail")).unwrap();
    assert_eq!(
        (mail.mode() & 0o7777, mail.gid(), mail.mtime()),
        (0o2775, 8, 1_400_000_000)
    );
    let tmp = std::fs::symlink_metadata(root.join("var/tmp")).unwrap();
    assert_eq!(tmp.mode() & 0o7777, 0o1777);
    let usr = std::fs::symlink_metadata(root.join("usr")).unwrap();
    assert_eq!(usr.mtime(), DEFAULT_MTIME as i64);

    let null = std::fs::symlink_metadata(root.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    let lp = std::fs::symlink_metadata(root.join("dev/loop0")).unwrap();
    assert!(lp.file_type().is_block_device());
    assert_eq!((lp.rdev(), lp.gid()), (libc::makedev(7, 0), 6));
    assert!(std::fs::symlink_metadata(root.join("run/initctl"))
        .unwrap()
        .file_type()
        .is_fifo());

    let ping = root.join("usr/bin/ping");
    assert_eq!(
        xattr::get(&ping, "user.vzpkg-test").unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        xattr::get(&ping, "security.capability").unwrap(),
        Some(net_raw_cap())
    );
    assert_eq!(
        std::fs::symlink_metadata(&ping).unwrap().mtime(),
        1_600_000_000
    );

    // The dpkg database.
    let status = s.read("var/lib/dpkg/status");
    let paras = parse_paragraphs(&status).unwrap();
    assert_eq!(paras.len(), 1);
    let p = &paras[0];
    assert_eq!(p.fields[0], ("Package".to_string(), "rich".to_string()));
    assert_eq!(
        p.fields[1],
        ("Status".to_string(), "install ok unpacked".to_string())
    );
    assert_eq!(p.get("Depends"), Some("libc6 (>= 2.36)"));
    let conf_md5 = hex::encode(Md5::digest(b"setting = 1\n"));
    assert!(
        status.contains(&format!("Conffiles:\n /etc/rich.conf {conf_md5}\n")),
        "{status}"
    );
    assert!(status.ends_with("\n\n"));

    let list = s.read("var/lib/dpkg/info/rich.list");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(&lines[..4], &["/.", "/bin", "/bin/sh-helper", "/usr"]);
    assert!(lines.contains(&"/usr/bin/tool-alias"));
    assert!(lines.contains(&"/dev/null"));
    assert!(lines.iter().all(|l| l == &"/." || !l.ends_with('/')));
    let data_entries = b.data_tar();
    let n_entries = tar::Archive::new(&data_entries[..])
        .entries()
        .unwrap()
        .count();
    assert_eq!(lines.len(), n_entries);

    assert_eq!(s.read("var/lib/dpkg/info/rich.md5sums"), b.md5sums_text());
    assert_eq!(
        s.read("var/lib/dpkg/info/rich.conffiles"),
        "/etc/rich.conf\n"
    );
    assert_eq!(
        s.read("var/lib/dpkg/info/rich.shlibs"),
        "libx 1 rich (>= 1.0)\n"
    );
    assert!(s
        .read("var/lib/dpkg/info/rich.triggers")
        .starts_with("interest-noawait"));
    let postinst = root.join("var/lib/dpkg/info/rich.postinst");
    assert_eq!(std::fs::metadata(&postinst).unwrap().mode() & 0o777, 0o755);
    assert!(s
        .read("var/lib/dpkg/info/rich.postinst")
        .contains("echo configured"));
    assert!(!root.join("var/lib/dpkg/info/rich.control").exists());
    assert_eq!(s.read("var/lib/dpkg/info/format"), "1\n");
    for d in ["triggers", "updates", "alternatives", "parts"] {
        assert!(root.join("var/lib/dpkg").join(d).is_dir(), "{d}");
    }
    assert_eq!(s.read("var/lib/dpkg/available"), "");
    assert_eq!(s.read("var/lib/dpkg/statoverride"), "");
    assert!(!root.join("var/lib/dpkg/diversions").exists());
    assert!(s.outside().is_empty());
}

#[test]
fn without_merged_usr_bin_is_a_directory() {
    let s = Scratch::new();
    let b = DebBuilder::new("plain", "1", "amd64").file("bin/true", b"t", 0o755);
    s.unpack(&[s.add(&b)], false).unwrap();
    let m = std::fs::symlink_metadata(s.root().join("bin")).unwrap();
    assert!(m.is_dir());
    assert!(s.root().join("bin/true").is_file());
}

#[test]
fn every_compression_and_computed_md5sums() {
    let cases = [
        (Compression::Zstd, Compression::Gzip),
        (Compression::Gzip, Compression::None),
        (Compression::None, Compression::Zstd),
        (Compression::Xz, Compression::Xz),
    ];
    for (data_c, control_c) in cases {
        let s = Scratch::new();
        let body: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let b = DebBuilder::new("comp", "2", "all")
            .compression(data_c)
            .control_compression(control_c)
            .without_md5sums()
            .file("usr/share/comp/big", &body, 0o644)
            .file("usr/share/comp/small", b"x", 0o600)
            .hardlink("usr/share/comp/small2", "usr/share/comp/small")
            .conffile("etc/comp.conf", b"c\n");
        s.unpack(&[s.add(&b)], false).unwrap();
        assert_eq!(
            std::fs::read(s.root().join("usr/share/comp/big")).unwrap(),
            body,
            "{data_c:?}"
        );
        let expect = format!(
            "{}  usr/share/comp/big\n{}  usr/share/comp/small\n{}  usr/share/comp/small2\n",
            hex::encode(Md5::digest(&body)),
            hex::encode(Md5::digest(b"x")),
            hex::encode(Md5::digest(b"x")),
        );
        assert_eq!(
            s.read("var/lib/dpkg/info/comp.md5sums"),
            expect,
            "{data_c:?}"
        );
        assert!(s.read("var/lib/dpkg/status").contains(&format!(
            " /etc/comp.conf {}\n",
            hex::encode(Md5::digest(b"c\n"))
        )));
    }
}

#[test]
fn multi_arch_same_names_and_sorted_status() {
    let s = Scratch::new();
    let a = DebBuilder::new("zlib1g", "1:1.2.13", "amd64")
        .field("Multi-Arch", "same")
        .file("usr/lib/x86_64-linux-gnu/libz.so.1", b"z", 0o644)
        .script("postinst", "#!/bin/sh\n");
    let b =
        DebBuilder::new("base-files", "12.4", "amd64").file("etc/debian_version", b"12.4\n", 0o644);
    let c = DebBuilder::new("mawk", "1.3.4", "amd64").file("usr/bin/mawk", b"m", 0o755);
    let debs = vec![s.add(&a), s.add(&b), s.add(&c)];
    s.unpack(&debs, true).unwrap();
    assert_eq!(info_name(&debs[0].0), "zlib1g:amd64");
    assert_eq!(info_name(&debs[1].0), "base-files");
    assert!(s
        .root()
        .join("var/lib/dpkg/info/zlib1g:amd64.list")
        .is_file());
    assert!(s
        .root()
        .join("var/lib/dpkg/info/zlib1g:amd64.postinst")
        .is_file());
    assert!(s.root().join("var/lib/dpkg/info/base-files.list").is_file());
    let names: Vec<String> = parse_paragraphs(&s.read("var/lib/dpkg/status"))
        .unwrap()
        .iter()
        .map(|p| p.get("Package").unwrap().to_string())
        .collect();
    assert_eq!(names, ["base-files", "mawk", "zlib1g"]);
}

#[test]
fn shared_directory_metadata_follows_package_order() {
    for (first, second, want) in [(0o750, 0o755, 0o755), (0o755, 0o750, 0o750)] {
        let s = Scratch::new();
        let a = DebBuilder::new("a", "1", "all")
            .mtime(1_000)
            .dir("usr/share/shared", first)
            .file("usr/share/shared/a", b"a", 0o644);
        let b = DebBuilder::new("b", "1", "all")
            .mtime(2_000)
            .dir("usr/share/shared", second)
            .file("usr/share/shared/b", b"b", 0o644);
        s.unpack(&[s.add(&a), s.add(&b)], false).unwrap();
        let m = std::fs::metadata(s.root().join("usr/share/shared")).unwrap();
        assert_eq!(m.mode() & 0o7777, want);
        assert_eq!(m.mtime(), 2_000);
        assert!(s.root().join("usr/share/shared/a").is_file());
    }
}

#[test]
fn absolute_symlink_on_the_way_stays_inside_root() {
    let s = Scratch::new();
    let b = DebBuilder::new("abs", "1", "all")
        .symlink("usr/share/toroot", "/")
        .raw_entry(full_entry(
            "./usr/share/toroot/etc/viaroot",
            Kind::File(b"in".to_vec()),
            0o644,
            0,
            0,
            DEFAULT_MTIME,
        ));
    s.unpack(&[s.add(&b)], false).unwrap();
    assert_eq!(std::fs::read(s.root().join("etc/viaroot")).unwrap(), b"in");
    assert!(s.outside().is_empty());
}

fn assert_escape(b: DebBuilder, what: &str) {
    let s = Scratch::new();
    let debs = vec![s.add(&b)];
    let e = s.unpack(&debs, false).unwrap_err();
    match &e {
        UnpackError::Entry {
            source: TreeError::Escape { .. },
            package,
            ..
        } => assert_eq!(package, &debs[0].0.id()),
        other => panic!("{what}: expected an escape error, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("outside the target tree") && msg.contains(&debs[0].0.id()),
        "{msg}"
    );
    assert_eq!(s.outside(), Vec::<String>::new(), "{what}");
    assert!(!Path::new("/etc/vzpkg-evil").exists());
}

#[test]
fn hostile_entries_are_refused_and_write_nothing_outside() {
    let file = |p: &str| full_entry(p, Kind::File(b"evil".to_vec()), 0o644, 0, 0, DEFAULT_MTIME);
    let base = || DebBuilder::new("evil", "1", "all").file("usr/share/doc/evil/x", b"ok", 0o644);
    assert_escape(base().raw_entry(file("../evil")), "dot-dot");
    assert_escape(
        base().raw_entry(file("./usr/../../evil")),
        "dot-dot in the middle",
    );
    assert_escape(base().raw_entry(file("/etc/vzpkg-evil")), "absolute");
    assert_escape(
        base()
            .symlink("usr/share/out", "../../../")
            .raw_entry(file("./usr/share/out/evil")),
        "through a relative symlink out",
    );
    assert_escape(
        base()
            .symlink("usr/share/out", "../../../")
            .raw_entry(full_entry(
                "./usr/share/out/evildir/",
                Kind::Dir,
                0o755,
                0,
                0,
                0,
            )),
        "directory through a symlink out",
    );
    assert_escape(
        base().raw_entry(full_entry(
            "./usr/share/evil-link",
            Kind::Hardlink("../evil-target".into()),
            0o644,
            0,
            0,
            0,
        )),
        "hardlink target outside",
    );
    assert_escape(
        base()
            .symlink("usr/share/out", "../../..")
            .raw_entry(full_entry(
                "./usr/share/evil-link",
                // A real file next to the root: linking it would expose it.
                Kind::Hardlink("./usr/share/out/debs/evil_1_all.deb".into()),
                0o644,
                0,
                0,
                0,
            )),
        "hardlink target via a symlink out",
    );
}

#[test]
fn symlink_out_is_created_but_never_followed() {
    // The link itself is fine (dpkg allows any target); a later file with
    // the link's own name replaces the link instead of writing through it.
    let s = Scratch::new();
    let b = DebBuilder::new("swap", "1", "all")
        .symlink("etc/passwd-link", "../../outside-file")
        .raw_entry(full_entry(
            "./etc/passwd-link",
            Kind::File(b"replaced".to_vec()),
            0o644,
            0,
            0,
            0,
        ));
    s.unpack(&[s.add(&b)], false).unwrap();
    let m = std::fs::symlink_metadata(s.root().join("etc/passwd-link")).unwrap();
    assert!(m.is_file());
    assert!(s.outside().is_empty());
}

#[test]
fn broken_files_give_the_right_errors() {
    let b = DebBuilder::new("broken", "1", "all").file(
        "usr/share/broken/data",
        &(0..200_000u32)
            .flat_map(|i| (i * 7919).to_le_bytes())
            .collect::<Vec<u8>>(),
        0o644,
    );
    let good = b.build();

    let s = Scratch::new();
    let d = s.add_bytes(&b, good[..good.len() / 2].to_vec());
    let e = s.unpack(std::slice::from_ref(&d), false).unwrap_err();
    assert!(matches!(e, UnpackError::Corrupt { .. }), "truncated: {e:?}");
    assert!(e.to_string().contains("package cache"), "{e}");
    assert!(e.to_string().contains(&d.1.display().to_string()), "{e}");
    assert!(!e.is_disk_full());

    // Flip bytes inside the compressed data member.
    let mut bad = good.clone();
    let n = bad.len();
    for x in &mut bad[n - 2000..n - 1000] {
        *x ^= 0x5a;
    }
    let s = Scratch::new();
    let e = s.unpack(&[s.add_bytes(&b, bad)], false).unwrap_err();
    assert!(matches!(e, UnpackError::Corrupt { .. }), "corrupt: {e:?}");

    let s = Scratch::new();
    let e = s
        .unpack(&[s.add_bytes(&b, b"<html>404</html>".to_vec())], false)
        .unwrap_err();
    assert!(matches!(e, UnpackError::NotADeb { .. }), "{e:?}");

    let s = Scratch::new();
    let v3 = debfile::ar_archive(&[("debian-binary", b"3.0\n".to_vec())]);
    let e = s.unpack(&[s.add_bytes(&b, v3)], false).unwrap_err();
    assert!(
        matches!(e, UnpackError::FormatVersion { ref found, .. } if found == "3.0"),
        "{e:?}"
    );

    let s = Scratch::new();
    let no_data = debfile::ar_archive(&[
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar", Vec::new()),
    ]);
    let e = s.unpack(&[s.add_bytes(&b, no_data)], false).unwrap_err();
    assert!(
        matches!(
            e,
            UnpackError::MissingMember {
                member: "data.tar",
                ..
            }
        ),
        "{e:?}"
    );

    let s = Scratch::new();
    let odd = debfile::ar_archive(&[
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.lz4", b"xx".to_vec()),
    ]);
    let e = s.unpack(&[s.add_bytes(&b, odd)], false).unwrap_err();
    assert!(matches!(e, UnpackError::UnknownCompression { .. }), "{e:?}");
}

#[test]
fn disk_full_is_recognised() {
    let nospc = || io::Error::from_raw_os_error(libc::ENOSPC);
    let e = UnpackError::Entry {
        package: "p".into(),
        deb: "p.deb".into(),
        source: TreeError::Io {
            op: "write",
            path: "/x".into(),
            source: nospc(),
        },
    };
    assert!(e.is_disk_full());
    let e = UnpackError::Database {
        op: "write",
        path: "/x".into(),
        source: io::Error::from_raw_os_error(libc::EACCES),
    };
    assert!(!e.is_disk_full());

    // The real thing: a 1 MiB tmpfs, when we may mount one.
    let s = Scratch::new();
    let root = s.root();
    let rc = rustix::mount::mount(
        "tmpfs",
        &root,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        c"size=1m",
    );
    if rc.is_err() {
        eprintln!("skipping the real ENOSPC check: cannot mount tmpfs here");
        return;
    }
    let big = vec![7u8; 4 << 20];
    let b = DebBuilder::new("huge", "1", "all").file("usr/share/huge", &big, 0o644);
    let r = s.unpack(&[s.add(&b)], false);
    // Unmounting what we mounted above.
    let _ = rustix::mount::unmount(&root, rustix::mount::UnmountFlags::DETACH);
    let e = r.unwrap_err();
    assert!(e.is_disk_full(), "{e}");
}

#[test]
fn built_debs_are_accepted_by_dpkg_deb() {
    if std::process::Command::new("dpkg-deb")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: dpkg-deb is not installed");
        return;
    }
    let s = Scratch::new();
    for c in [
        Compression::Xz,
        Compression::Zstd,
        Compression::Gzip,
        Compression::None,
    ] {
        let (_, path) = s.add(&rich_package().compression(c));
        let info = std::process::Command::new("dpkg-deb")
            .arg("--info")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            info.status.success(),
            "{}",
            String::from_utf8_lossy(&info.stderr)
        );
        let out = String::from_utf8_lossy(&info.stdout);
        assert!(
            out.contains("Package: rich") && out.contains("postinst"),
            "{out}"
        );
        let contents = std::process::Command::new("dpkg-deb")
            .arg("--contents")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            contents.status.success(),
            "{}",
            String::from_utf8_lossy(&contents.stderr)
        );
        let out = String::from_utf8_lossy(&contents.stdout);
        assert!(
            out.contains("./usr/bin/tool-alias link to ./usr/bin/tool"),
            "{out}"
        );
        assert!(
            out.contains("./usr/lib/x86_64-linux-gnu/libx.so.1 -> libx.so.1.0"),
            "{out}"
        );
        assert!(out.contains("1234/5678"), "{out}");
    }
}

/// Not a correctness test: unpacks whatever real .debs are in
/// `VZPKG_REAL_DEBS` (a directory) and prints the time.
#[test]
#[ignore]
fn measure_real_debs() {
    let Some(dir) = std::env::var_os("VZPKG_REAL_DEBS") else {
        eprintln!("set VZPKG_REAL_DEBS to a directory of .deb files");
        return;
    };
    let mut debs = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "deb") {
            let out = std::process::Command::new("dpkg-deb")
                .arg("-f")
                .arg(&path)
                .output()
                .unwrap();
            let para = parse_paragraphs(&String::from_utf8_lossy(&out.stdout))
                .unwrap()
                .remove(0);
            debs.push((
                DebPackage {
                    name: para.get("Package").unwrap().into(),
                    version: para.get("Version").unwrap().into(),
                    architecture: para.get("Architecture").unwrap().into(),
                    filename: String::new(),
                    size: std::fs::metadata(&path).unwrap().len(),
                    sha256: String::new(),
                    control: para,
                },
                path,
            ));
        }
    }
    let total: u64 = debs.iter().map(|d| d.0.size).sum();
    let s = Scratch::new();
    // VZPKG_REAL_ROOT keeps the tree for inspection.
    let root = std::env::var_os("VZPKG_REAL_ROOT").map_or_else(|| s.root(), PathBuf::from);
    let t = std::time::Instant::now();
    unpack_all(&root, &debs, UnpackOptions { merged_usr: true }, &Silent).unwrap();
    eprintln!(
        "unpacked {} packages, {:.1} MB of .debs, in {:.2?}",
        debs.len(),
        total as f64 / 1e6,
        t.elapsed()
    );
}
