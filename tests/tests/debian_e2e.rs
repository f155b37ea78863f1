//! End to end against the host's configured Debian mirror: `vzpkg create
//! debian-12` with no --mirror, then the checks a user would make on the
//! tree. Skips (saying why) when the mirror cannot be reached.

use std::process::Command;
use vzpkg_tests::fixture::{text, vzpkg_bin};
use vzpkg_tests::need_root;

fn chroot(tree: &std::path::Path, cmd: &[&str]) -> std::process::Output {
    Command::new("chroot")
        .arg(tree)
        .args(cmd)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .output()
        .expect("run chroot")
}

#[test]
fn debian_12_from_the_host_mirror_is_a_working_system() {
    need_root!("needs root (namespaces and chroot)");
    let dir = tempfile::Builder::new()
        .prefix("vzpkg-e2e")
        .tempdir_in("/var/tmp")
        .unwrap();
    let root = dir.path().join("root");
    // The shipped recipe, copied so the build's lock file lands beside the
    // copy rather than in the checkout.
    let shipped =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes/debian-12.toml");
    let recipe = dir.path().join("debian-12.toml");
    std::fs::copy(&shipped, &recipe).unwrap();
    let out = Command::new(vzpkg_bin())
        .args([
            "--root",
            root.to_str().unwrap(),
            "--json",
            "create",
            recipe.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    if out.status.code() == Some(6) {
        eprintln!(
            "skipped: the host's Debian mirror cannot be reached:\n{}",
            text(&out)
        );
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = result["packages"].as_u64().unwrap();
    assert!(
        (60..200).contains(&packages),
        "minbase has {packages} packages"
    );
    eprintln!("debian-12: {result}");

    let tree = dir.path().join("tree");
    let out = Command::new(vzpkg_bin())
        .args([
            "--root",
            root.to_str().unwrap(),
            "checkout",
            "debian-12",
            tree.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let audit = chroot(&tree, &["dpkg", "--audit"]);
    assert!(audit.status.success(), "{}", text(&audit));
    assert!(audit.stdout.is_empty(), "dpkg --audit: {}", text(&audit));

    let list = chroot(
        &tree,
        &["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package}\n"],
    );
    assert!(list.status.success(), "{}", text(&list));
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert_eq!(list.lines().count() as u64, packages, "{list}");
    for line in list.lines() {
        assert!(line.starts_with("ii "), "not installed: {line}");
    }
    for essential in ["dpkg", "apt", "base-files", "libc6", "bash", "coreutils"] {
        assert!(
            list.lines().any(|l| l.ends_with(&format!(" {essential}"))),
            "{essential} missing"
        );
    }

    let check = chroot(&tree, &["apt-get", "check"]);
    assert!(check.status.success(), "apt-get check: {}", text(&check));

    // Files that are merely identical are not hardlinked to each other.
    use std::os::unix::fs::MetadataExt;
    let faillog = std::fs::metadata(tree.join("var/log/faillog")).unwrap();
    assert_eq!(faillog.nlink(), 1);

    let sh = chroot(&tree, &["/bin/sh", "-c", "echo ok"]);
    assert_eq!(String::from_utf8_lossy(&sh.stdout), "ok\n", "{}", text(&sh));
}
