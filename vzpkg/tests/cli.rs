//! The command line itself: usage errors, unknown recipes, an empty store.
//! (Having an integration test here also makes `cargo test --workspace`
//! build the `vzpkg` binary that the tests crate runs.)

use std::process::Command;

fn vzpkg(root: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vzpkg"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run vzpkg")
}

#[test]
fn usage_errors_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let out = vzpkg(d.path(), &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("frobnicate"));
}

#[test]
fn an_unknown_recipe_lists_the_known_ones() {
    let d = tempfile::tempdir().unwrap();
    let out = vzpkg(d.path(), &["create", "no-such-distro"]);
    assert_eq!(out.status.code(), Some(3));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("no-such-distro") && msg.contains("debian-12"),
        "{msg}"
    );
}

#[test]
fn an_empty_store_lists_nothing() {
    let d = tempfile::tempdir().unwrap();
    let out = vzpkg(d.path(), &["list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    let out = vzpkg(d.path(), &["checkout", "nothing", "/nonexistent-dir"]);
    assert_eq!(
        out.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
