//! `vzpkg create` against a fixture mirror on loopback: real .deb files, a
//! real signed InRelease, the real binary. Each test reads like a user's
//! session: run a command, look at what it printed and what it left behind.

use std::path::Path;
use std::time::Duration;
use vzpkg_tests::debfile::DebBuilder;
use vzpkg_tests::fixture::{json, package, shell_package, text, Fixture};
use vzpkg_tests::mirror::{MirrorSpec, Published};
use vzpkg_tests::need_root;
use vzpkg_tests::signing::TestKey;

/// Every test here runs maintainer scripts.
const NEEDS_ROOT: &str = "needs root (namespaces and chroot for maintainer scripts)";

/// A small distribution: a shell, a base package with a conffile and
/// maintainer scripts, a library in two versions, a virtual package, an
/// alternative whose first choice does not exist, and a conflicting package.
fn distribution() -> Vec<Published> {
    vec![
        shell_package(),
        package(
            "fixture-base",
            "2.0",
            &[("Priority", "required"), ("Depends", "fixture-shell")],
            DebBuilder::new("fixture-base", "2.0", "amd64")
                .dir("var/lib/fixture", 0o755)
                .conffile("etc/fixture.conf", b"setting = 1\n")
                .file("usr/share/doc/fixture-base/README", b"fixture\n", 0o644)
                .script(
                    "preinst",
                    "#!/bin/sh\nset -e\necho \"preinst $1\" >> /var/lib/fixture/log\n",
                )
                .script(
                    "postinst",
                    "#!/bin/sh\nset -e\necho \"postinst $1 $DPKG_MAINTSCRIPT_PACKAGE\" >> /var/lib/fixture/log\n",
                ),
        ),
        package(
            "libfix1",
            "0.9",
            &[("Multi-Arch", "same")],
            DebBuilder::new("libfix1", "0.9", "amd64")
                .file("usr/lib/x86_64-linux-gnu/libfix.so.1", b"old\n", 0o644),
        ),
        package(
            "libfix1",
            "1.1",
            &[("Multi-Arch", "same")],
            DebBuilder::new("libfix1", "1.1", "amd64")
                .file("usr/lib/x86_64-linux-gnu/libfix.so.1", b"new\n", 0o644),
        ),
        package(
            "mawk-fix",
            "1.0",
            &[("Provides", "awk")],
            DebBuilder::new("mawk-fix", "1.0", "amd64").file("usr/bin/mawk-fix", b"#!/bin/sh\n", 0o755),
        ),
        package(
            "editor-a",
            "1.0",
            &[],
            DebBuilder::new("editor-a", "1.0", "amd64").file("usr/bin/editor-a", b"#!/bin/sh\n", 0o755),
        ),
        package(
            "tool",
            "3.0",
            &[
                ("Depends", "libfix1 (>= 1.0), awk, editor-b | editor-a, fixture-base:any"),
                ("Conflicts", "old-tool"),
            ],
            DebBuilder::new("tool", "3.0", "amd64")
                .file("usr/bin/tool", b"#!/bin/sh\necho tool\n", 0o755)
                .symlink("usr/bin/tool-link", "tool")
                .script("postinst", "#!/bin/sh\necho \"tool configured\" > /var/lib/fixture/tool\n"),
        ),
        package(
            "old-tool",
            "1.0",
            &[("Priority", "optional")],
            DebBuilder::new("old-tool", "1.0", "amd64").file("usr/bin/old-tool", b"x\n", 0o755),
        ),
    ]
}

#[test]
fn builds_a_configured_tree_and_a_second_build_downloads_nothing() {
    need_root!(NEEDS_ROOT);
    let fx = Fixture::new(&distribution());
    let recipe = fx.recipe("fixture", "minbase", &["tool"], "");
    let out = fx.create(&recipe);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let result = json(&out);
    let id = result["template_id"]
        .as_str()
        .expect("template id")
        .to_string();
    assert_eq!(result["packages"], 6, "{result}");
    assert_eq!(fx.server.deb_requests(), 6);
    assert!(fx.leftovers().is_empty(), "{:?}", fx.leftovers());

    // The store lists it; a checkout is the configured tree.
    let list = fx.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["names"][0], "fixture");
    let tree = fx.dir.path().join("tree");
    let out = fx.vzpkg(&["checkout", "fixture", tree.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));

    // Merged /usr, the newest library, the chosen alternative, the virtual's provider.
    assert_eq!(
        std::fs::read_link(tree.join("bin")).unwrap(),
        Path::new("usr/bin")
    );
    assert_eq!(
        std::fs::read(tree.join("usr/lib/x86_64-linux-gnu/libfix.so.1")).unwrap(),
        b"new\n"
    );
    assert!(tree.join("usr/bin/editor-a").is_file());
    assert!(tree.join("usr/bin/mawk-fix").is_file());
    assert!(!tree.join("usr/bin/old-tool").exists());
    assert_eq!(
        std::fs::read_link(tree.join("usr/bin/tool-link")).unwrap(),
        Path::new("tool")
    );

    // Maintainer scripts ran inside the tree, preinst before postinst.
    let log = std::fs::read_to_string(tree.join("var/lib/fixture/log")).unwrap();
    assert_eq!(log, "preinst install\npostinst configure fixture-base\n");
    assert_eq!(
        std::fs::read_to_string(tree.join("var/lib/fixture/tool")).unwrap(),
        "tool configured\n"
    );

    // dpkg's database says every package is installed, with its files listed.
    let status = std::fs::read_to_string(tree.join("var/lib/dpkg/status")).unwrap();
    for name in [
        "fixture-shell",
        "fixture-base",
        "libfix1",
        "mawk-fix",
        "editor-a",
        "tool",
    ] {
        let para = status
            .split("\n\n")
            .find(|p| p.lines().any(|l| l == format!("Package: {name}")))
            .unwrap_or_else(|| panic!("{name} not in status:\n{status}"));
        assert!(para.contains("Status: install ok installed"), "{para}");
    }
    let list = std::fs::read_to_string(tree.join("var/lib/dpkg/info/tool.list")).unwrap();
    assert!(list.lines().any(|l| l == "/usr/bin/tool"), "{list}");
    assert!(tree.join("var/lib/dpkg/info/libfix1:amd64.list").is_file());
    let conffiles =
        std::fs::read_to_string(tree.join("var/lib/dpkg/info/fixture-base.conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/fixture.conf");

    // Same recipe again: nothing downloaded, same template.
    fx.server.clear_log();
    let out = fx.create(&recipe);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(fx.server.deb_requests(), 0, "{:?}", fx.server.requests());
    assert_eq!(json(&out)["template_id"], id.as_str());
    assert_eq!(json(&out)["download"]["cached"], 6);
}

/// Requests for a suite's Packages index (any compression) in the server log.
fn index_requests(fx: &Fixture) -> Vec<String> {
    fx.server
        .requests()
        .into_iter()
        .filter(|p| p.contains("/binary-amd64/Packages"))
        .collect()
}

#[test]
fn the_index_comes_from_the_cache_while_the_signed_release_names_it() {
    need_root!(NEEDS_ROOT);
    let fx = Fixture::new(&distribution());
    let recipe = fx.recipe("fixture", "minbase", &["tool"], "");
    let out = fx.create(&recipe);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let id = json(&out)["template_id"].clone();
    assert_eq!(index_requests(&fx).len(), 1, "{:?}", fx.server.requests());

    // The mirror drops its Packages files; its signed InRelease still names
    // them, and is still fetched and checked.
    let bin = fx
        .mirror_dir()
        .join("dists")
        .join(&fx.spec.suite)
        .join("main/binary-amd64");
    for name in ["Packages", "Packages.xz", "Packages.gz"] {
        std::fs::remove_file(bin.join(name)).unwrap();
    }
    fx.server.clear_log();
    let out = fx.create(&recipe);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json(&out)["template_id"], id);
    let requests = fx.server.requests();
    assert!(
        requests.iter().any(|p| p.ends_with("/InRelease")),
        "{requests:?}"
    );
    assert!(index_requests(&fx).is_empty(), "{requests:?}");

    // An altered cached copy is not used: with nothing on the mirror to
    // fall back on, the build fails on the fetch.
    let cached = walk_files(&fx.root().join("cache/indexes"));
    assert_eq!(cached.len(), 1, "{cached:?}");
    let good = std::fs::read_to_string(&cached[0]).unwrap();
    std::fs::write(&cached[0], good.replace("Version: 3.0", "Version: 3.9")).unwrap();
    fails(&fx, &recipe, 6, &["Packages"]);

    // A new Release (another package published, so another index digest)
    // is fetched again, and cached in turn.
    let mut dist = distribution();
    dist.push(package(
        "extra",
        "1.0",
        &[("Priority", "optional")],
        DebBuilder::new("extra", "1.0", "amd64"),
    ));
    fx.republish(&dist, &fx.key, &fx.spec);
    fx.server.clear_log();
    let out = fx.create(&recipe);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json(&out)["template_id"], id);
    assert_eq!(index_requests(&fx).len(), 1, "{:?}", fx.server.requests());
    let cached = walk_files(&fx.root().join("cache/indexes"));
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(std::fs::read_to_string(&cached[0])
        .unwrap()
        .contains("Package: extra\n"));
}

/// Run a build that must fail with `code` and a message containing every
/// one of `words`, and check the store is as it was.
fn fails(fx: &Fixture, recipe: &Path, code: i32, words: &[&str]) {
    let before = fx.list();
    let out = fx.create(recipe);
    let msg = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "{}", text(&out));
    for w in words {
        assert!(msg.contains(w), "expected {w:?} in the error:\n{msg}");
    }
    assert!(!msg.contains("panicked"), "{msg}");
    assert_eq!(fx.list(), before, "the store changed");
    assert!(
        fx.leftovers().is_empty(),
        "staging left behind: {:?}",
        fx.leftovers()
    );
}

#[test]
fn a_tampered_package_is_refused() {
    need_root!(NEEDS_ROOT);
    let fx = Fixture::new(&distribution());
    let debs = fx.republish(&distribution(), &fx.key, &fx.spec);
    // Flip a byte of editor-a after the index was signed.
    let victim = debs
        .iter()
        .find(|p| p.to_string_lossy().contains("editor-a"))
        .unwrap();
    let mut bytes = std::fs::read(victim).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xff;
    std::fs::write(victim, bytes).unwrap();
    let recipe = fx.recipe("fixture", "minbase", &["tool"], "");
    fails(&fx, &recipe, 4, &["editor-a", "SHA-256"]);
    // Nothing unverified entered the cache.
    let cached = walk_files(&fx.root().join("cache/packages"));
    assert!(
        cached
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".part")),
        "{cached:?}"
    );
}

#[test]
fn a_bad_signature_is_refused() {
    need_root!(NEEDS_ROOT);
    let fx = Fixture::new(&distribution());
    let stranger = TestKey::generate("someone else <x@test.invalid>");
    fx.republish(&distribution(), &stranger, &fx.spec);
    let recipe = fx.recipe("fixture", "minbase", &[], "");
    fails(&fx, &recipe, 4, &["InRelease"]);
    assert_eq!(fx.server.deb_requests(), 0);
}

#[test]
fn an_expired_release_is_refused() {
    need_root!(NEEDS_ROOT);
    let fx = Fixture::new(&distribution());
    let spec = MirrorSpec {
        valid_for: -3600,
        ..MirrorSpec::default()
    };
    fx.republish(&distribution(), &fx.key, &spec);
    let recipe = fx.recipe("fixture", "minbase", &[], "");
    fails(&fx, &recipe, 4, &["Valid-Until"]);
}

#[test]
fn a_missing_package_is_named() {
    need_root!(NEEDS_ROOT);
    let fx = Fixture::new(&distribution());
    let recipe = fx.recipe("fixture", "minbase", &["no-such-package"], "");
    fails(&fx, &recipe, 5, &["no-such-package"]);
}

#[test]
fn an_unsatisfiable_dependency_names_who_needs_what() {
    need_root!(NEEDS_ROOT);
    let mut dist = distribution();
    dist.push(package(
        "needy",
        "1.0",
        &[("Depends", "ghost-lib (>= 2)")],
        DebBuilder::new("needy", "1.0", "amd64"),
    ));
    let fx = Fixture::new(&dist);
    let recipe = fx.recipe("fixture", "minbase", &["needy"], "");
    fails(&fx, &recipe, 5, &["needy", "ghost-lib"]);
}

#[test]
fn a_path_escaping_the_tree_is_refused() {
    need_root!(NEEDS_ROOT);
    let mut dist = distribution();
    dist.push(package(
        "evil",
        "1.0",
        &[],
        DebBuilder::new("evil", "1.0", "amd64").raw_file(
            "../../../tmp/vzpkg-escaped",
            b"x\n",
            0o644,
        ),
    ));
    let fx = Fixture::new(&dist);
    let recipe = fx.recipe("fixture", "minbase", &["evil"], "");
    fails(&fx, &recipe, 7, &["evil"]);
    assert!(!Path::new("/tmp/vzpkg-escaped").exists());
}

#[test]
fn a_dead_mirror_is_a_network_error() {
    let fx = Fixture::new(&distribution());
    let recipe = fx.recipe("fixture", "minbase", &[], "");
    // Port 1 on loopback: nothing listens there.
    let out = fx.vzpkg(&[
        "create",
        recipe.to_str().unwrap(),
        "--mirror",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("127.0.0.1:1") && msg.contains("--mirror"),
        "{msg}"
    );
}

#[test]
fn a_failing_maintainer_script_fails_the_build_and_keeps_the_store() {
    need_root!(NEEDS_ROOT);
    let mut dist = distribution();
    dist.push(package(
        "broken",
        "1.0",
        &[],
        DebBuilder::new("broken", "1.0", "amd64").script(
            "postinst",
            "#!/bin/sh\necho 'cannot configure broken' >&2\nexit 3\n",
        ),
    ));
    let fx = Fixture::new(&dist);
    // A good build first, so "unchanged" means something.
    let ok = fx.recipe("fixture", "minbase", &[], "");
    assert_eq!(fx.create(&ok).status.code(), Some(0));
    let recipe = fx.recipe("fixture", "minbase", &["broken"], "");
    fails(&fx, &recipe, 8, &["broken", "postinst"]);
}

#[test]
fn a_bad_recipe_names_the_line() {
    let fx = Fixture::new(&distribution());
    let recipe = fx.recipe("fixture", "minbase", &[], "colour = \"blue\"\n");
    let out = fx.create(&recipe);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("fixture.toml:") && msg.contains("colour"),
        "{msg}"
    );
}

#[test]
fn ctrl_c_mid_build_leaves_the_store_as_it_was() {
    need_root!(NEEDS_ROOT);
    let fx = Fixture::new(&distribution());
    let recipe = fx.recipe("fixture", "minbase", &["tool"], "");
    fx.server.set_deb_delay(Duration::from_millis(1500));
    let child = fx
        .command(&[
            "create",
            recipe.to_str().unwrap(),
            "--mirror",
            &fx.server.url,
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until downloads have started, then interrupt as a terminal would.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fx.server.deb_requests() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        fx.server.deb_requests() > 0,
        "the build never started downloading"
    );
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    assert!(fx.list().is_empty());
    assert!(fx.leftovers().is_empty(), "{:?}", fx.leftovers());
    let cached = walk_files(&fx.root().join("cache/packages"));
    assert!(
        cached
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".part")),
        "{cached:?}"
    );
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_full_disk_is_its_own_error_and_leaves_nothing_half_written() {
    need_root!(NEEDS_ROOT);
    let fx = Fixture::new(&distribution());
    // The whole vzpkg root on a file system far too small for the build.
    let root = fx.root();
    std::fs::create_dir_all(&root).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "vzpkg-test-full"])
        .arg(&root)
        .status()
        .unwrap();
    assert!(mounted.success());
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(root.clone());
    let recipe = fx.recipe("fixture", "minbase", &["tool"], "");
    let out = fx.create(&recipe);
    assert_eq!(out.status.code(), Some(10), "{}", text(&out));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("No space left"), "{msg}");
    assert!(fx.list().is_empty());
    assert!(fx.leftovers().is_empty(), "{:?}", fx.leftovers());
    let cached = walk_files(&root.join("cache/packages"));
    assert!(
        cached
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".part")),
        "{cached:?}"
    );
}
