//! Templates between hosts as OCI images, through the real binary: a real
//! registry (Debian's `docker-registry`) on a loopback port, OCI layouts and
//! archives on disk, and the standard clients (`skopeo`, `podman`, `umoci`)
//! reading what vzpkg pushes and writing what it pulls. Skipped with a
//! message where the machine lacks them (`scripts/setup.sh` installs them).

use base64::Engine;
use serde_json::Value;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use vzpkg::store::{Store, TemplateMeta};
use vzpkg_tests::fixture::{is_root, package, shell_package, text, vzpkg_bin, Fixture};
use vzpkg_tests::registry::{self, Registry, Relay, TokenGate};
use vzpkg_tests::vzhost::{template_tree, Template, VzHost};

const VERIFY: i32 = 4;
const NETWORK: i32 = 6;
const BAD_IMAGE: i32 = 7;

const TOOLS: &[&str] = &["sh", "cat", "sleep"];
const OS_RELEASE: &str = "PRETTY_NAME=\"vzpkg test OS\"\nID=vzpkgtest\n";

/// The test's machine: root, and the registry installed.
fn ready(what: &str) -> bool {
    if !is_root() {
        eprintln!("skipped: {what} needs root (stores with owners and devices)");
        return false;
    }
    if !registry::available() {
        eprintln!(
            "skipped: {what} needs {} (scripts/setup.sh installs docker-registry)",
            registry::BINARY
        );
        return false;
    }
    true
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

/// `vzpkg --root ROOT ARGS`, with no credentials from the machine's own
/// files (HOME is the test's).
fn vz_command(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(vzpkg_bin());
    c.arg("--root")
        .arg(root)
        .args(args)
        .env("HOME", root)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("DOCKER_CONFIG");
    c
}

fn vz(root: &Path, args: &[&str]) -> Output {
    vz_command(root, args).output().expect("run vzpkg")
}

/// Run with `--json`, insist on exit 0, return the JSON.
fn vz_ok(root: &Path, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = vz(root, &a);
    assert_eq!(out.status.code(), Some(0), "vzpkg {args:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

fn vz_fails(root: &Path, args: &[&str], code: i32, says: &str) -> String {
    let out = vz(root, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "vzpkg {args:?}: {}",
        text(&out)
    );
    assert!(
        err.contains(says),
        "vzpkg {args:?} should say `{says}`: {err}"
    );
    err
}

/// Every path in a store (but scratch and partial downloads) with its size.
fn snapshot(root: &Path) -> Vec<(PathBuf, u64)> {
    let store = root.join("templates");
    let mut out: Vec<(PathBuf, u64)> = walkdir(&store)
        .into_iter()
        .filter(|(p, _)| {
            !p.starts_with("tmp") && !p.starts_with("partial") && !p.starts_with("lock")
        })
        .collect();
    out.sort();
    out
}

fn walkdir(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            out.push((p.strip_prefix(dir).unwrap().to_path_buf(), md.len()));
            if md.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// A store root with `templates` committed from host tools.
fn host_with(templates: &[Template]) -> Option<VzHost> {
    VzHost::new("OCI", false, templates)
}

fn small(name: &'static str, extra: &'static [(&'static str, &'static str)]) -> Template<'static> {
    Template {
        name,
        tools: TOOLS,
        files: extra,
        init: None,
    }
}

const SMALL_FILES: &[(&str, &str)] = &[
    ("etc/os-release", OS_RELEASE),
    ("usr/share/doc/readme", "shared readme\n"),
];

/// Commit `name` in `root`'s store: `from` with one more file in /etc, so
/// the two share every layer but the top one.
fn derive(root: &Path, from: &str, name: &str) {
    let store = Store::open(&root.join("templates")).unwrap();
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    store.checkout(from, &tree).unwrap();
    std::fs::write(tree.join("etc/other"), "only in the second template\n").unwrap();
    store
        .commit(
            &tree,
            &TemplateMeta {
                name: name.into(),
                ..Default::default()
            },
        )
        .unwrap();
}

fn info(root: &Path, name: &str) -> Value {
    vz_ok(root, &["info", name])
}

fn manifest_of(layout: &Path, tag: &str) -> (Value, String) {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let d = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {index}"));
    let digest = d["digest"].as_str().unwrap().to_string();
    let blob = blob_path(layout, &digest);
    (
        serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap(),
        digest,
    )
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Store `bytes` as a blob of `layout`; its digest.
fn put_blob(layout: &Path, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    std::fs::write(blob_path(layout, &d), bytes).unwrap();
    d
}

/// Tag `digest` (a manifest or index of `media_type`) as `tag` in `layout`.
fn tag_in_layout(layout: &Path, tag: &str, digest: &str, size: usize, media_type: &str) {
    let p = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": media_type,
            "digest": digest,
            "size": size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }));
    std::fs::write(&p, serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn built_template_round_trips_through_a_registry_with_its_recipe_and_lock() {
    if !ready("the registry round trip") {
        return;
    }
    let fx = Fixture::new(&[
        shell_package(),
        package(
            "base-files",
            "1.0",
            &[("Priority", "required")],
            vzpkg_tests::debfile::DebBuilder::new("base-files", "1.0", "amd64")
                .file("etc/os-release", OS_RELEASE.as_bytes(), 0o644)
                .file("usr/share/base-files/motd", &[b'x'; 4096], 0o644)
                .hardlink(
                    "usr/share/base-files/motd.link",
                    "usr/share/base-files/motd",
                ),
        ),
    ]);
    let recipe = fx.recipe("fixture-os", "minbase", &[], "");
    let out = fx.create(&recipe);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let a = fx.root();
    let built = info(&a, "fixture-os");
    let id = built["id"].as_str().unwrap().to_string();

    let regdir = tempfile::tempdir().unwrap();
    let reg = Registry::start(regdir.path(), None);
    let reference = format!("{}/templates/fixture-os:v1", reg.host());
    let pushed = vz_ok(
        &a,
        &["push", "fixture-os", &reference, "--tls-verify=false"],
    );
    assert_eq!(pushed["template_id"], id.as_str());
    assert!(pushed["blobs_pushed"].as_u64().unwrap() >= 2, "{pushed}");

    // Another host: same id, same recipe and lock, fsck clean, same files.
    let b = tempfile::tempdir().unwrap();
    let pulled = vz_ok(
        b.path(),
        &[
            "pull",
            &reference,
            "--tls-verify=false",
            "--name",
            "fixture-os",
        ],
    );
    assert_eq!(pulled["template_id"], id.as_str(), "{pulled}");
    assert_eq!(pulled["foreign"], false);
    let there = info(b.path(), "fixture-os");
    assert_eq!(there["id"], built["id"]);
    assert_eq!(there["recipe"], built["recipe"]);
    assert_eq!(there["package_list"], built["package_list"]);
    assert!(!there["package_list"].as_array().unwrap().is_empty());
    assert_eq!(there["facts"], built["facts"]);
    let fsck = vz_ok(b.path(), &["fsck"]);
    assert!(fsck["problems"].as_array().unwrap().is_empty(), "{fsck}");
    let co = b.path().join("co");
    vz_ok(b.path(), &["checkout", "fixture-os", co.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(co.join("etc/os-release")).unwrap(),
        OS_RELEASE
    );
    let motd = std::fs::metadata(co.join("usr/share/base-files/motd")).unwrap();
    let link = std::fs::metadata(co.join("usr/share/base-files/motd.link")).unwrap();
    assert_eq!(motd.ino(), link.ino(), "the hardlink did not survive");

    // The same template pushed from the other host: the same manifest digest.
    let again = vz_ok(
        b.path(),
        &[
            "push",
            "fixture-os",
            &format!("{}/templates/copy:v1", reg.host()),
            "--tls-verify=false",
        ],
    );
    assert_eq!(again["digest"], pushed["digest"]);
    // Pushed again: nothing to send but the manifests.
    let third = vz_ok(
        &a,
        &["push", "fixture-os", &reference, "--tls-verify=false"],
    );
    assert_eq!(third["blobs_pushed"], 0, "{third}");
    assert_eq!(third["digest"], pushed["digest"]);

    // The SBOM: an SPDX document of the lock, attached to the image.
    let sbom_digest = pushed["sbom"].as_str().expect("an SBOM was attached");
    assert!(sbom_digest.starts_with("sha256:"));
    let layout = b.path().join("layout");
    vz_ok(
        &a,
        &[
            "push",
            "fixture-os",
            &format!("oci:{}:v1", layout.display()),
        ],
    );
    let (image, image_digest) = manifest_of(&layout, "v1");
    assert_eq!(image_digest, pushed["digest"].as_str().unwrap());
    let (sbom, _) = manifest_of(
        &layout,
        &format!("sha256-{}", image_digest.trim_start_matches("sha256:")),
    );
    assert_eq!(sbom["subject"]["digest"], image_digest.as_str());
    assert_eq!(sbom["artifactType"], "application/spdx+json");
    let doc: Value = serde_json::from_slice(
        &std::fs::read(blob_path(
            &layout,
            sbom["layers"][0]["digest"].as_str().unwrap(),
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    let names: Vec<&str> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"base-files"), "{names:?}");
    // The config says what the template is.
    let config: Value = serde_json::from_slice(
        &std::fs::read(blob_path(
            &layout,
            image["config"]["digest"].as_str().unwrap(),
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["vzpkg"]["template_id"], id.as_str());
    assert_eq!(
        image["annotations"]["org.opencontainers.image.title"],
        "fixture-os"
    );
    assert_eq!(
        image["layers"].as_array().unwrap().len(),
        built["layers"].as_array().unwrap().len()
    );
}

#[test]
fn layouts_archives_and_gzip_round_trip_with_the_same_digest() {
    if !is_root() {
        eprintln!("skipped: needs root (stores with owners and devices)");
        return;
    }
    // A tree with what a store keeps: owners, setuid, xattrs, hardlinks,
    // devices, fifos, long names, nanosecond times.
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let Some(()) = template_tree(&tree, &small("rich", SMALL_FILES)) else {
        return;
    };
    let long = format!("usr/share/{}", "n".repeat(180));
    std::fs::write(tree.join(&long), "long name\n").unwrap();
    std::fs::write(tree.join("usr/share/doc/owned"), "owned\n").unwrap();
    std::os::unix::fs::chown(tree.join("usr/share/doc/owned"), Some(1234), Some(5678)).unwrap();
    std::fs::set_permissions(
        tree.join("usr/share/doc/owned"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4755),
    )
    .unwrap();
    std::fs::hard_link(
        tree.join("usr/share/doc/readme"),
        tree.join("usr/share/doc/readme.hard"),
    )
    .unwrap();
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let xf = tree.join("etc/os-release");
    // SAFETY: plain calls on paths this test made.
    unsafe {
        let v = b"value\n\0with nul";
        assert_eq!(
            libc::setxattr(
                c(&xf).as_ptr(),
                c"user.vzpkg-test".as_ptr(),
                v.as_ptr().cast(),
                v.len(),
                0
            ),
            0
        );
        assert_eq!(
            libc::mknod(
                c(&tree.join("etc/null")).as_ptr(),
                libc::S_IFCHR | 0o666,
                libc::makedev(1, 3)
            ),
            0
        );
        assert_eq!(libc::mkfifo(c(&tree.join("etc/fifo")).as_ptr(), 0o600), 0);
        let ts = [
            libc::timespec {
                tv_sec: 1_600_000_000,
                tv_nsec: 123_456_789,
            },
            libc::timespec {
                tv_sec: 1_600_000_000,
                tv_nsec: 123_456_789,
            },
        ];
        assert_eq!(
            libc::utimensat(
                libc::AT_FDCWD,
                c(&tree.join(&long)).as_ptr(),
                ts.as_ptr(),
                0
            ),
            0
        );
    }
    let a = dir.path().join("a");
    let store = Store::open(&a.join("templates")).unwrap();
    let id = store
        .commit(
            &tree,
            &TemplateMeta {
                name: "rich".into(),
                ..Default::default()
            },
        )
        .unwrap();

    let layout = dir.path().join("layout");
    let archive = dir.path().join("image.tar");
    let p1 = vz_ok(
        &a,
        &["push", "rich", &format!("oci:{}:zstd", layout.display())],
    );
    let p2 = vz_ok(
        &a,
        &[
            "push",
            "rich",
            &format!("oci-archive:{}", archive.display()),
        ],
    );
    let p3 = vz_ok(
        &a,
        &[
            "push",
            "rich",
            &format!("oci:{}:gzip", layout.display()),
            "--compression",
            "gzip",
        ],
    );
    assert_eq!(p1["digest"], p2["digest"]);
    assert_ne!(p1["digest"], p3["digest"], "gzip layers are other blobs");
    // Pushes keep the compressed layers; one that was damaged is not sent
    // but made again, and the image is the same.
    let cache = a.join("templates/oci-blobs");
    let blobs: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "blob"))
        .collect();
    let layers = manifest_of(&layout, "zstd").0["layers"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(blobs.len(), 2 * layers, "zstd and gzip blobs of each layer");
    for b in &blobs {
        let mut bytes = std::fs::read(b).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(b, bytes).unwrap();
    }
    let mended = dir.path().join("mended");
    let p4 = vz_ok(
        &a,
        &["push", "rich", &format!("oci:{}:zstd", mended.display())],
    );
    assert_eq!(p4["digest"], p1["digest"]);
    let r = vz_ok(
        &dir.path().join("b-mended"),
        &["pull", &format!("oci:{}:zstd", mended.display())],
    );
    assert_eq!(r["template_id"], id.as_str(), "{r}");
    // Damaged where its stamp cannot show (the record made to match): the
    // target's digest check refuses it, and it is made again and sent.
    for b in blobs
        .iter()
        .filter(|b| b.to_string_lossy().contains("zstd"))
    {
        let mut bytes = std::fs::read(b).unwrap();
        bytes[0] ^= 0xff;
        std::fs::write(b, bytes).unwrap();
        let md = std::fs::metadata(b).unwrap();
        let json = b.with_extension("json");
        let mut record: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        record["stamp"] = serde_json::json!({
            "ino": md.ino(), "len": md.len(),
            "mtime": [md.mtime(), md.mtime_nsec()],
            "ctime": [md.ctime(), md.ctime_nsec()],
        });
        std::fs::write(&json, serde_json::to_vec(&record).unwrap()).unwrap();
    }
    let refused = dir.path().join("refused");
    let p5 = vz_ok(
        &a,
        &["push", "rich", &format!("oci:{}:zstd", refused.display())],
    );
    assert_eq!(p5["digest"], p1["digest"]);
    let r = vz_ok(
        &dir.path().join("b-refused"),
        &["pull", &format!("oci:{}:zstd", refused.display())],
    );
    assert_eq!(r["template_id"], id.as_str(), "{r}");
    let (m, _) = manifest_of(&layout, "gzip");
    assert!(m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"));
    let (m, _) = manifest_of(&layout, "zstd");
    assert!(m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"));

    for (n, from) in [
        format!("oci:{}:zstd", layout.display()),
        format!("oci:{}:gzip", layout.display()),
        format!("oci-archive:{}", archive.display()),
    ]
    .iter()
    .enumerate()
    {
        let b = dir.path().join(format!("b{n}"));
        let r = vz_ok(&b, &["pull", from, "--name", "rich"]);
        assert_eq!(r["template_id"], id.as_str(), "{from}: {r}");
        let fsck = vz_ok(&b, &["fsck"]);
        assert!(fsck["problems"].as_array().unwrap().is_empty(), "{fsck}");
        // And back out from there: the same digest.
        let again = vz_ok(
            &b,
            &["push", "rich", &format!("oci:{}:x", b.join("l").display())],
        );
        assert_eq!(again["digest"], p1["digest"]);
    }
    let co = dir.path().join("b0/co");
    vz_ok(
        &dir.path().join("b0"),
        &["checkout", "rich", co.to_str().unwrap()],
    );
    let owned = std::fs::symlink_metadata(co.join("usr/share/doc/owned")).unwrap();
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o7777),
        (1234, 5678, 0o4755)
    );
    let l = std::fs::symlink_metadata(co.join(&long)).unwrap();
    assert_eq!((l.mtime(), l.mtime_nsec()), (1_600_000_000, 123_456_789));
    assert_eq!(
        std::fs::metadata(co.join("usr/share/doc/readme"))
            .unwrap()
            .ino(),
        std::fs::metadata(co.join("usr/share/doc/readme.hard"))
            .unwrap()
            .ino()
    );
    let null = std::fs::symlink_metadata(co.join("etc/null")).unwrap();
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    let mut buf = [0u8; 64];
    // SAFETY: reads into a buffer of the given size.
    let n = unsafe {
        libc::getxattr(
            c(&co.join("etc/os-release")).as_ptr(),
            c"user.vzpkg-test".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(&buf[..n.max(0) as usize], b"value\n\0with nul");

    // gc drops the cached blobs with their layer.
    vz_ok(&a, &["rm", "rich"]);
    let g = vz_ok(&a, &["gc"]);
    assert_eq!(g["blobs"], 4 * layers, "descriptors and blobs: {g}");
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);
}

#[test]
fn a_second_template_pulls_only_the_layers_it_lacks() {
    if !ready("the shared-layer pull") {
        return;
    }
    let Some(a) = host_with(&[small("first", SMALL_FILES)]) else {
        return;
    };
    derive(a.root(), "first", "second");
    let regdir = tempfile::tempdir().unwrap();
    let reg = Registry::start(regdir.path(), None);
    let relay = Relay::start(reg.port);
    for n in ["first", "second"] {
        vz_ok(
            a.root(),
            &[
                "push",
                n,
                &format!("{}/t/{n}:v1", reg.host()),
                "--tls-verify=false",
            ],
        );
    }
    let first = info(a.root(), "first");
    let second = info(a.root(), "second");
    let shared: Vec<&Value> = second["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| {
            first["layers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["id"] == l["id"])
        })
        .collect();
    assert!(!shared.is_empty(), "the test templates share no layer");

    // A full pull of the second, on a host without the first.
    let c = tempfile::tempdir().unwrap();
    let before = relay.bytes_down();
    let full = vz_ok(
        c.path(),
        &[
            "pull",
            &format!("{}/t/second:v1", relay.host()),
            "--tls-verify=false",
        ],
    );
    let full_wire = relay.bytes_down() - before;
    assert_eq!(full["layers_present"], 0);

    // A host with the first pulls the second: only what it lacks.
    let b = tempfile::tempdir().unwrap();
    vz_ok(
        b.path(),
        &[
            "pull",
            &format!("{}/t/first:v1", relay.host()),
            "--tls-verify=false",
        ],
    );
    let before = relay.bytes_down();
    let part = vz_ok(
        b.path(),
        &[
            "pull",
            &format!("{}/t/second:v1", relay.host()),
            "--tls-verify=false",
        ],
    );
    let part_wire = relay.bytes_down() - before;
    assert_eq!(part["template_id"], second["id"]);
    assert_eq!(
        part["layers_present"].as_u64().unwrap(),
        shared.len() as u64,
        "{part}"
    );
    assert!(
        part["bytes_fetched"].as_u64().unwrap() < full["bytes_fetched"].as_u64().unwrap(),
        "{part} vs {full}"
    );
    assert!(
        part_wire < full_wire,
        "on the wire: {part_wire} bytes against {full_wire} for a full pull"
    );
    eprintln!(
        "shared-layer pull: {part_wire} bytes on the wire against {full_wire} for a full pull ({} of {} layers already here)",
        part["layers_present"], part["layers"]
    );
    let fsck = vz_ok(b.path(), &["fsck"]);
    assert!(fsck["problems"].as_array().unwrap().is_empty(), "{fsck}");
}

#[test]
fn tampered_blobs_and_wrong_digests_are_refused_and_the_store_is_unchanged() {
    if !ready("the tampering checks") {
        return;
    }
    let Some(a) = host_with(&[small("first", SMALL_FILES)]) else {
        return;
    };
    derive(a.root(), "first", "second");
    let regdir = tempfile::tempdir().unwrap();
    let reg = Registry::start(regdir.path(), None);
    let reference = format!("{}/t/first:v1", reg.host());
    vz_ok(
        a.root(),
        &["push", "first", &reference, "--tls-verify=false"],
    );
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    vz_ok(
        a.root(),
        &["push", "first", &format!("oci:{}:v1", layout.display())],
    );
    vz_ok(
        a.root(),
        &[
            "push",
            "second",
            &format!("oci:{}:second", layout.display()),
        ],
    );
    let (manifest, _) = manifest_of(&layout, "v1");

    // A host that already has a template sharing all but the top layer, so
    // "unchanged" means something.
    let b = tempfile::tempdir().unwrap();
    vz_ok(
        b.path(),
        &[
            "pull",
            &format!("oci:{}:second", layout.display()),
            "--name",
            "kept",
        ],
    );
    let before = snapshot(b.path());

    // One flipped byte in the top layer's blob in the registry's storage.
    let layer = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let file = reg.blob_file(&layer);
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&file, &bytes).unwrap();
    let c = tempfile::tempdir().unwrap();
    for store in [b.path(), c.path()] {
        vz_fails(
            store,
            &[
                "pull",
                &reference,
                "--tls-verify=false",
                "--name",
                "tampered",
            ],
            VERIFY,
            "digest mismatch",
        );
    }
    assert_eq!(
        snapshot(b.path()),
        before,
        "a refused pull changed the store"
    );
    assert!(vz_ok(c.path(), &["list"]).as_array().unwrap().is_empty());

    // A manifest naming the wrong layers (both blobs intact): the layers
    // rebuild into other store layers than the config says.
    let mut swapped = manifest.clone();
    let layers = swapped["layers"].as_array_mut().unwrap();
    assert!(layers.len() >= 2, "the test template has one layer");
    let last = layers.len() - 1;
    layers.swap(0, last);
    let bytes = serde_json::to_vec(&swapped).unwrap();
    let d = put_blob(&layout, &bytes);
    tag_in_layout(
        &layout,
        "swapped",
        &d,
        bytes.len(),
        "application/vnd.oci.image.manifest.v1+json",
    );
    vz_fails(
        b.path(),
        &["pull", &format!("oci:{}:swapped", layout.display())],
        VERIFY,
        "nothing was committed",
    );
    // A config whose template id does not match its layers.
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(blob_path(&layout, config_digest)).unwrap()).unwrap();
    config["vzpkg"]["template_id"] = Value::from("0".repeat(64));
    let cbytes = serde_json::to_vec(&config).unwrap();
    let cd = put_blob(&layout, &cbytes);
    let mut lying = manifest.clone();
    lying["config"]["digest"] = Value::from(cd);
    lying["config"]["size"] = Value::from(cbytes.len());
    let bytes = serde_json::to_vec(&lying).unwrap();
    let d = put_blob(&layout, &bytes);
    tag_in_layout(
        &layout,
        "lying",
        &d,
        bytes.len(),
        "application/vnd.oci.image.manifest.v1+json",
    );
    vz_fails(
        b.path(),
        &["pull", &format!("oci:{}:lying", layout.display())],
        VERIFY,
        "the image config says",
    );
    // A manifest blob that is not what the index names.
    let (_, good) = manifest_of(&layout, "v1");
    let mut m = std::fs::read(blob_path(&layout, &good)).unwrap();
    m.push(b' ');
    std::fs::write(blob_path(&layout, &good), &m).unwrap();
    vz_fails(
        b.path(),
        &["pull", &format!("oci:{}:v1", layout.display())],
        VERIFY,
        "digest mismatch",
    );
    assert_eq!(
        snapshot(b.path()),
        before,
        "a refused pull changed the store"
    );
    let fsck = vz_ok(b.path(), &["fsck"]);
    assert!(fsck["problems"].as_array().unwrap().is_empty(), "{fsck}");
}

#[test]
fn a_pull_cut_off_mid_blob_resumes_where_it_stopped() {
    if !ready("the resumed pull") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let Some(()) = template_tree(&tree, &small("big", SMALL_FILES)) else {
        return;
    };
    // Incompressible, so the blob is as big as the file.
    let mut big = vec![0u8; 24 << 20];
    rand::Rng::fill(&mut rand::thread_rng(), &mut big[..]);
    std::fs::write(tree.join("usr/share/doc/big"), &big).unwrap();
    let a = dir.path().join("a");
    let id = Store::open(&a.join("templates"))
        .unwrap()
        .commit(
            &tree,
            &TemplateMeta {
                name: "big".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let regdir = tempfile::tempdir().unwrap();
    let mut reg = Registry::start(regdir.path(), None);
    vz_ok(
        &a,
        &[
            "push",
            "big",
            &format!("{}/t/big:v1", reg.host()),
            "--tls-verify=false",
        ],
    );
    // The blobs' sizes, from the same image in a layout.
    let layout = dir.path().join("layout");
    vz_ok(
        &a,
        &["push", "big", &format!("oci:{}:v1", layout.display())],
    );
    let sizes: Vec<u64> = manifest_of(&layout, "v1").0["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .collect();
    let biggest = *sizes.iter().max().unwrap();
    let others: u64 = sizes.iter().sum::<u64>() - biggest;

    let relay = Relay::start(reg.port);
    relay.set_rate(4 << 20);
    let b = dir.path().join("b");
    let reference = format!("{}/t/big:v1", relay.host());
    let child = vz_command(
        &b,
        &["pull", &reference, "--tls-verify=false", "--jobs", "1"],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Kill the registry once a good part of the blob is here.
    let partial_dir = b.join("templates/partial");
    let deadline = Instant::now() + Duration::from_secs(120);
    let partial_size = || -> u64 {
        std::fs::read_dir(&partial_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
            .max()
            .unwrap_or(0)
    };
    while partial_size() < 6 << 20 {
        assert!(Instant::now() < deadline, "the pull never got 6 MiB in");
        std::thread::sleep(Duration::from_millis(20));
    }
    reg.stop();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(NETWORK), "{}", text(&out));
    assert!(err.contains("resume"), "{err}");
    let kept = partial_size();
    assert!(kept >= 6 << 20 && kept < biggest, "kept {kept} bytes");
    assert!(vz_ok(&b, &["list"]).as_array().unwrap().is_empty());

    // The registry comes back: the pull takes only the rest.
    reg.restart();
    relay.retarget(reg.port);
    relay.set_rate(0);
    let before = relay.bytes_down();
    let r = vz_ok(&b, &["pull", &reference, "--tls-verify=false"]);
    let wire = relay.bytes_down() - before;
    assert_eq!(r["template_id"], id.as_str());
    // At most: the rest of the cut blob, the other (small) layers if they
    // had not arrived yet, manifests, config and HTTP headers.
    let rest = biggest - kept;
    assert!(
        wire < rest + others + (256 << 10),
        "the resumed pull moved {wire} bytes; only {rest} of the big blob were missing"
    );
    eprintln!(
        "resumed pull: {kept} bytes kept from the cut transfer, {wire} bytes on the wire after"
    );
    assert!(
        partial_size() == 0,
        "the finished download was not cleaned up"
    );
    let fsck = vz_ok(&b, &["fsck"]);
    assert!(fsck["problems"].as_array().unwrap().is_empty(), "{fsck}");
}

#[test]
fn basic_auth_with_credentials_from_auth_files() {
    if !ready("the basic-auth registry") {
        return;
    }
    if !have("htpasswd") {
        eprintln!("skipped: htpasswd is missing (scripts/setup.sh installs apache2-utils)");
        return;
    }
    let Some(a) = host_with(&[small("first", SMALL_FILES)]) else {
        return;
    };
    let regdir = tempfile::tempdir().unwrap();
    let htpasswd = regdir.path().join("htpasswd");
    let out = Command::new("htpasswd")
        .args(["-Bbc", htpasswd.to_str().unwrap(), "builder", "s3cret-pass"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let reg = Registry::start(&regdir.path().join("reg"), Some(&htpasswd));
    let reference = format!("{}/t/first:v1", reg.host());

    // No credentials anywhere: refused, saying where it looked.
    let err = vz_fails(
        a.root(),
        &["push", "first", &reference, "--tls-verify=false"],
        NETWORK,
        "not authorised",
    );
    assert!(
        err.contains("auth.json") || err.contains("config.json"),
        "{err}"
    );

    let auth = |user: &str, pass: &str| {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        serde_json::json!({"auths": {reg.host(): {"auth": token}}}).to_string()
    };
    let files = tempfile::tempdir().unwrap();
    let wrong = files.path().join("wrong.json");
    std::fs::write(&wrong, auth("builder", "not-it")).unwrap();
    let out = vz_command(
        a.root(),
        &["push", "first", &reference, "--tls-verify=false"],
    )
    .env("REGISTRY_AUTH_FILE", &wrong)
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(NETWORK), "{}", text(&out));

    // $REGISTRY_AUTH_FILE (containers' auth.json format).
    let good = files.path().join("auth.json");
    std::fs::write(&good, auth("builder", "s3cret-pass")).unwrap();
    let out = vz_command(
        a.root(),
        &["push", "first", &reference, "--tls-verify=false", "--json"],
    )
    .env("REGISTRY_AUTH_FILE", &good)
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // ~/.docker/config.json, for a pull on another host.
    let b = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(b.path().join(".docker")).unwrap();
    std::fs::write(
        b.path().join(".docker/config.json"),
        auth("builder", "s3cret-pass"),
    )
    .unwrap();
    let r = vz_ok(b.path(), &["pull", &reference, "--tls-verify=false"]);
    assert_eq!(r["template_id"], info(a.root(), "first")["id"]);
    // The password is nowhere in what vzpkg printed or stored.
    let listing = format!("{:?}", walkdir(&b.path().join("templates")));
    assert!(!listing.contains("s3cret"));
}

#[test]
fn bearer_tokens_from_the_registrys_token_service() {
    if !ready("the token-auth registry") {
        return;
    }
    let Some(a) = host_with(&[small("first", SMALL_FILES)]) else {
        return;
    };
    let regdir = tempfile::tempdir().unwrap();
    let reg = Registry::start(regdir.path(), None);
    let basic = base64::engine::general_purpose::STANDARD.encode("ci:t0ken-pass");
    let gate = TokenGate::start(reg.port, &basic, "tok-4f1c9e");
    let reference = format!("{}/t/first:v1", gate.host());

    // No credentials: the token service refuses, and so does the push.
    vz_fails(
        a.root(),
        &["push", "first", &reference, "--tls-verify=false"],
        NETWORK,
        "not authorised",
    );
    assert_eq!(gate.tokens_issued(), 0);

    let files = tempfile::tempdir().unwrap();
    let auth = files.path().join("auth.json");
    std::fs::write(
        &auth,
        serde_json::json!({"auths": {gate.host(): {"auth": basic}}}).to_string(),
    )
    .unwrap();
    let out = vz_command(
        a.root(),
        &["push", "first", &reference, "--tls-verify=false", "--json"],
    )
    .env("REGISTRY_AUTH_FILE", &auth)
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(gate.tokens_issued() >= 1);
    let b = tempfile::tempdir().unwrap();
    let out = vz_command(
        b.path(),
        &["pull", &reference, "--tls-verify=false", "--json"],
    )
    .env("REGISTRY_AUTH_FILE", &auth)
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["template_id"], info(a.root(), "first")["id"]);
}

#[test]
fn vzctl_create_pulls_an_image_the_store_lacks() {
    if !ready("vzctl create from an image") {
        return;
    }
    let Some(a) = host_with(&[small("first", SMALL_FILES)]) else {
        return;
    };
    let id = info(a.root(), "first")["id"].clone();
    let regdir = tempfile::tempdir().unwrap();
    let mut reg = Registry::start(regdir.path(), None);
    let reference = format!("{}/templates/first:v1", reg.host());
    vz_ok(
        a.root(),
        &["push", "first", &reference, "--tls-verify=false"],
    );

    let Some(h) = host_with(&[]) else { return };
    h.ok(
        &[
            "create",
            "311",
            "--ostemplate",
            &reference,
            "--tls-verify=false",
        ],
        0,
    );
    let conf = std::fs::read_to_string(h.vz().join("conf/311.conf")).unwrap();
    assert!(conf.contains("OSTEMPLATE=\"first-v1\""), "{conf}");
    assert_eq!(info(h.root(), "first-v1")["id"], id);
    h.ok(&["start", "311"], 0);
    assert_eq!(h.ok(&["exec", "311", "cat /etc/os-release"], 0), OS_RELEASE);
    h.ok(&["stop", "311"], 0);
    // Once here, the registry is not asked again.
    reg.stop();
    h.ok(
        &[
            "create",
            "312",
            "--ostemplate",
            &reference,
            "--tls-verify=false",
        ],
        0,
    );
    // An image nobody serves: vzctl's "no template" code, nothing created.
    let out = h.vzctl(&[
        "create",
        "313",
        "--ostemplate",
        &format!("{}/templates/none:v1", reg.host()),
        "--tls-verify=false",
    ]);
    assert_eq!(out.status.code(), Some(91), "{}", text(&out));
    assert!(!h.vz().join("conf/313.conf").exists());
}

fn nightly_dist(tool_version: &str) -> Vec<vzpkg_tests::mirror::Published> {
    vec![
        shell_package(),
        package(
            "tool",
            tool_version,
            &[("Priority", "optional"), ("Depends", "fixture-shell")],
            vzpkg_tests::debfile::DebBuilder::new("tool", tool_version, "amd64").file(
                "usr/bin/tool",
                format!("#!/bin/sh\necho {tool_version}\n").as_bytes(),
                0o755,
            ),
        ),
    ]
}

#[test]
fn rebuild_push_sends_what_was_rebuilt_and_nothing_else() {
    if !ready("rebuild --push") {
        return;
    }
    let fx = Fixture::new(&nightly_dist("1.0"));
    let plain = fx.recipe("plain", "minbase", &[], "");
    let tooled = fx.recipe("tooled", "minbase", &["tool"], "");
    for r in [&plain, &tooled] {
        let out = fx.create(r);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let regdir = tempfile::tempdir().unwrap();
    let reg = Registry::start(regdir.path(), None);
    let prefix = format!("{}/nightly", reg.host());
    let rebuild = |fx: &Fixture| {
        vz(
            &fx.root(),
            &[
                "rebuild",
                plain.to_str().unwrap(),
                tooled.to_str().unwrap(),
                "--if-changed",
                "--mirror",
                &fx.server.url,
                "--push",
                &prefix,
                "--tls-verify=false",
                "--json",
            ],
        )
    };
    // Nothing changed: nothing pushed.
    let out = rebuild(&fx);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["pushed"].as_array().unwrap().is_empty(), "{v}");

    // tool 1.1 upstream: `tooled` is rebuilt and pushed, `plain` is not.
    fx.republish(&nightly_dist("1.1"), &fx.key, &fx.spec);
    let out = rebuild(&fx);
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pushed: Vec<&str> = v["pushed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["reference"].as_str().unwrap())
        .collect();
    let new_id = info(&fx.root(), "tooled")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        pushed,
        [
            format!("{prefix}/tooled:latest"),
            format!("{prefix}/tooled:{}", &new_id[..16])
        ],
        "{v}"
    );
    let b = tempfile::tempdir().unwrap();
    let r = vz_ok(
        b.path(),
        &[
            "pull",
            &format!("{prefix}/tooled:latest"),
            "--tls-verify=false",
        ],
    );
    assert_eq!(r["template_id"], new_id.as_str());
    vz_fails(
        b.path(),
        &[
            "pull",
            &format!("{prefix}/plain:latest"),
            "--tls-verify=false",
        ],
        1,
        "not found",
    );
}

#[test]
fn an_index_is_resolved_by_platform() {
    if !is_root() {
        eprintln!("skipped: needs root (stores with owners and devices)");
        return;
    }
    let Some(a) = host_with(&[small("first", SMALL_FILES)]) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    vz_ok(
        a.root(),
        &["push", "first", &format!("oci:{}:v1", layout.display())],
    );
    let (_, digest) = manifest_of(&layout, "v1");
    let size = std::fs::metadata(blob_path(&layout, &digest))
        .unwrap()
        .len();
    let entry = |arch: &str| {
        serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": size, "platform": {"architecture": arch, "os": "linux"}})
    };
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry("arm64"), entry("amd64")]});
    let bytes = serde_json::to_vec(&index).unwrap();
    let d = put_blob(&layout, &bytes);
    tag_in_layout(
        &layout,
        "multi",
        &d,
        bytes.len(),
        "application/vnd.oci.image.index.v1+json",
    );
    let from = format!("oci:{}:multi", layout.display());
    let b = tempfile::tempdir().unwrap();
    let r = vz_ok(b.path(), &["pull", &from, "--platform", "linux/amd64"]);
    assert_eq!(r["template_id"], info(a.root(), "first")["id"]);
    assert_eq!(r["digest"], digest.as_str());
    let err = vz_fails(
        b.path(),
        &["pull", &from, "--platform", "linux/s390x"],
        BAD_IMAGE,
        "no image for platform linux/s390x",
    );
    assert!(err.contains("linux/arm64, linux/amd64"), "{err}");
    vz_fails(
        b.path(),
        &["pull", &from, "--platform", "s390x"],
        2,
        "OS/ARCH",
    );
}

/// A layer tar with one member whose name is stored as given.
fn raw_tar(name: &[u8], data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

#[test]
fn foreign_images_made_by_standard_tools_pull_as_templates_and_start() {
    if !ready("foreign images") {
        return;
    }
    if !have("umoci") || !have("skopeo") {
        eprintln!(
            "skipped: umoci and skopeo are needed to make a foreign image (scripts/setup.sh)"
        );
        return;
    }
    let Some(h) = host_with(&[]) else { return };
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let bundle = work.path().join("bundle");
    let run = |args: &[&str]| {
        let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    };
    let l = layout.to_str().unwrap();
    let bnd = bundle.to_str().unwrap();
    run(&["umoci", "init", "--layout", l]);
    run(&["umoci", "new", "--image", &format!("{l}:os")]);
    run(&["umoci", "unpack", "--image", &format!("{l}:os"), bnd]);
    // Layer 1: a small OS with a shell, files to delete and to keep.
    let rootfs = bundle.join("rootfs");
    let Some(()) = template_tree(&rootfs, &small("x", SMALL_FILES)) else {
        return;
    };
    std::fs::write(rootfs.join("etc/doomed"), "deleted by the next layer\n").unwrap();
    std::fs::create_dir_all(rootfs.join("var/cache/old")).unwrap();
    std::fs::write(rootfs.join("var/cache/old/junk"), "junk\n").unwrap();
    std::fs::write(rootfs.join("usr/share/doc/owned"), "owned\n").unwrap();
    std::os::unix::fs::chown(rootfs.join("usr/share/doc/owned"), Some(4321), Some(8765)).unwrap();
    std::fs::set_permissions(
        rootfs.join("usr/share/doc/owned"),
        std::os::unix::fs::PermissionsExt::from_mode(0o2750),
    )
    .unwrap();
    std::fs::hard_link(
        rootfs.join("usr/share/doc/readme"),
        rootfs.join("usr/share/doc/readme.hard"),
    )
    .unwrap();
    let c = std::ffi::CString::new(rootfs.join("etc/os-release").as_os_str().as_encoded_bytes())
        .unwrap();
    // SAFETY: a plain setxattr on a file this test made.
    assert_eq!(
        unsafe {
            libc::setxattr(
                c.as_ptr(),
                c"user.origin".as_ptr(),
                b"umoci".as_ptr().cast(),
                5,
                0,
            )
        },
        0
    );
    run(&["umoci", "repack", "--image", &format!("{l}:os"), bnd]);
    // Layer 2: a deletion (a whiteout) and a replaced directory.
    run(&["rm", "-rf", bundle.to_str().unwrap()]);
    run(&["umoci", "unpack", "--image", &format!("{l}:os"), bnd]);
    std::fs::remove_file(rootfs.join("etc/doomed")).unwrap();
    std::fs::remove_dir_all(rootfs.join("var/cache/old")).unwrap();
    std::fs::write(rootfs.join("etc/added"), "from layer 2\n").unwrap();
    run(&["umoci", "repack", "--image", &format!("{l}:os"), bnd]);

    // Through a registry, as skopeo pushes it (gzip layers).
    let regdir = tempfile::tempdir().unwrap();
    let reg = Registry::start(regdir.path(), None);
    let reference = format!("{}/other/os:1", reg.host());
    run(&[
        "skopeo",
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{l}:os"),
        &format!("docker://{reference}"),
    ]);
    let r = vz_ok(
        h.root(),
        &[
            "pull",
            &reference,
            "--tls-verify=false",
            "--name",
            "foreign",
        ],
    );
    assert_eq!(r["foreign"], true);
    // The layout itself gives the same template.
    let b = tempfile::tempdir().unwrap();
    let r2 = vz_ok(
        b.path(),
        &["pull", &format!("oci:{l}:os"), "--name", "foreign"],
    );
    assert_eq!(r2["template_id"], r["template_id"]);
    let d = info(h.root(), "foreign");
    assert!(
        d["layers"].as_array().unwrap().len() >= 2,
        "not split into path layers: {d}"
    );

    let co = work.path().join("co");
    vz_ok(h.root(), &["checkout", "foreign", co.to_str().unwrap()]);
    assert!(
        !co.join("etc/doomed").exists(),
        "the whiteout was not applied"
    );
    assert!(
        !co.join("var/cache/old").exists(),
        "the removed directory came back"
    );
    assert!(co.join("var/cache").is_dir());
    assert_eq!(
        std::fs::read_to_string(co.join("etc/added")).unwrap(),
        "from layer 2\n"
    );
    let owned = std::fs::symlink_metadata(co.join("usr/share/doc/owned")).unwrap();
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o7777),
        (4321, 8765, 0o2750)
    );
    assert_eq!(
        std::fs::metadata(co.join("usr/share/doc/readme"))
            .unwrap()
            .ino(),
        std::fs::metadata(co.join("usr/share/doc/readme.hard"))
            .unwrap()
            .ino()
    );
    let listing: Vec<_> = walkdir(&co)
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains(".wh."))
        .collect();
    assert!(listing.is_empty(), "whiteout files left: {listing:?}");
    let c =
        std::ffi::CString::new(co.join("etc/os-release").as_os_str().as_encoded_bytes()).unwrap();
    let mut buf = [0u8; 16];
    // SAFETY: reads into a buffer of the given size.
    let n = unsafe {
        libc::getxattr(
            c.as_ptr(),
            c"user.origin".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(&buf[..n.max(0) as usize], b"umoci");

    // It runs as a VPS.
    h.ok(&["create", "301", "--ostemplate", "foreign"], 0);
    h.ok(&["start", "301"], 0);
    let out = h.ok(&["exec", "301", "cat /etc/os-release /etc/added"], 0);
    assert!(
        out.contains("vzpkg test OS") && out.contains("from layer 2"),
        "{out}"
    );
    h.ok(&["stop", "301"], 0);
    h.ok(&["destroy", "301"], 0);

    // A layer naming a path outside the root is refused, the store untouched.
    let before = snapshot(h.root());
    let (m, _) = manifest_of(&layout, "os");
    let evil = raw_tar(b"../../escaped", b"outside\n");
    let ed = put_blob(&layout, &evil);
    let mut bad = m.clone();
    bad["layers"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ed, "size": evil.len()}));
    let config_digest = bad["config"]["digest"].as_str().unwrap().to_string();
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(blob_path(&layout, &config_digest)).unwrap())
            .unwrap();
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(Value::from(ed.clone()));
    let cb = serde_json::to_vec(&config).unwrap();
    bad["config"]["digest"] = Value::from(put_blob(&layout, &cb));
    bad["config"]["size"] = Value::from(cb.len());
    let mb = serde_json::to_vec(&bad).unwrap();
    let md = put_blob(&layout, &mb);
    tag_in_layout(
        &layout,
        "evil",
        &md,
        mb.len(),
        "application/vnd.oci.image.manifest.v1+json",
    );
    vz_fails(
        h.root(),
        &["pull", &format!("oci:{l}:evil"), "--name", "evil"],
        BAD_IMAGE,
        "outside",
    );
    assert!(!work.path().join("escaped").exists() && !h.root().join("escaped").exists());
    assert_eq!(snapshot(h.root()), before);
}

#[test]
fn skopeo_and_podman_read_what_vzpkg_pushes() {
    if !ready("the standard clients") {
        return;
    }
    if !have("skopeo") {
        eprintln!("skipped: skopeo is missing (scripts/setup.sh installs it)");
        return;
    }
    let Some(a) = host_with(&[small("first", SMALL_FILES)]) else {
        return;
    };
    let id = info(a.root(), "first")["id"].as_str().unwrap().to_string();
    let regdir = tempfile::tempdir().unwrap();
    let reg = Registry::start(regdir.path(), None);
    let reference = format!("{}/t/first:v1", reg.host());
    let pushed = vz_ok(
        a.root(),
        &["push", "first", &reference, "--tls-verify=false"],
    );

    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let inspected: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspected["Digest"], pushed["digest"]);
    assert_eq!(inspected["Architecture"], "amd64");
    assert_eq!(inspected["Os"], "linux");
    assert_eq!(inspected["Labels"]["vzpkg.template.id"], id.as_str());

    // skopeo copies it to a layout; vzpkg pulls that copy: the same template.
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("copy");
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{reference}"),
            &format!("oci:{}:copied", copy.display()),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let b = tempfile::tempdir().unwrap();
    let r = vz_ok(
        b.path(),
        &["pull", &format!("oci:{}:copied", copy.display())],
    );
    assert_eq!(r["template_id"], id.as_str());

    // podman runs it (runc, no network: see the issue for why these flags).
    if !have("podman") || !Path::new("/usr/sbin/runc").exists() {
        eprintln!("skipped: podman with runc is missing (scripts/setup.sh installs them)");
        return;
    }
    let pod = work.path().join("podman");
    let out = Command::new("podman")
        .arg("--root")
        .arg(pod.join("root"))
        .arg("--runroot")
        .arg(pod.join("run"))
        .arg("--tmpdir")
        .arg(pod.join("tmp"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "run",
            "--rm",
            "--runtime",
            "runc",
            "--network=none",
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=32768:32768",
            "--tls-verify=false",
            &reference,
            "/bin/cat",
            "/etc/os-release",
        ])
        .env("HOME", work.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && (err.contains("cgroup") || err.contains("OCI runtime")) {
        eprintln!("skipped: podman cannot run containers on this machine: {err}");
        return;
    }
    assert!(out.status.success(), "podman run: {}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), OS_RELEASE);
}
