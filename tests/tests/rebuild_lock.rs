//! Lock files and the nightly rebuild against a fixture mirror whose
//! packages change between runs.

use vzpkg_tests::debfile::DebBuilder;
use vzpkg_tests::fixture::{json, package, shell_package, text, Fixture};
use vzpkg_tests::mirror::Published;
use vzpkg_tests::need_root;

fn dist(tool_version: &str) -> Vec<Published> {
    vec![
        shell_package(),
        package(
            "tool",
            tool_version,
            &[("Priority", "required"), ("Depends", "fixture-shell")],
            DebBuilder::new("tool", tool_version, "amd64").file(
                "usr/bin/tool",
                format!("#!/bin/sh\necho {tool_version}\n").as_bytes(),
                0o755,
            ),
        ),
    ]
}

#[test]
fn nightly_rebuild_is_a_no_op_until_upstream_changes() {
    need_root!("needs root (namespaces and chroot for maintainer scripts)");
    let fx = Fixture::new(&dist("1.0"));
    let recipe = fx.recipe("nightly", "minbase", &[], "");
    let out = fx.create(&recipe);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let first = json(&out)["template_id"].as_str().unwrap().to_string();
    let lock = std::fs::read_to_string(recipe.with_extension("lock")).unwrap();
    assert!(
        lock.contains("name = \"tool\"") && lock.contains("version = \"1.0\""),
        "{lock}"
    );

    // Nothing changed upstream: no work, exit 0, well under a second.
    fx.server.clear_log();
    let r = recipe.to_str().unwrap();
    let out = fx.vzpkg(&[
        "rebuild",
        r,
        "--if-changed",
        "--mirror",
        &fx.server.url,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = &json(&out)["templates"][0];
    assert_eq!(report["outcome"], "unchanged");
    assert_eq!(report["new_id"], first.as_str());
    assert!(report["seconds"].as_f64().unwrap() < 1.0, "{report}");
    assert_eq!(fx.server.deb_requests(), 0);

    // A new upstream version: rebuilt, reported, lock updated.
    let old_lock = fx.dir.path().join("old.lock");
    std::fs::copy(recipe.with_extension("lock"), &old_lock).unwrap();
    fx.republish(&dist("1.1"), &fx.key, &fx.spec);
    let out = fx.vzpkg(&[
        "rebuild",
        r,
        "--if-changed",
        "--mirror",
        &fx.server.url,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    let report = &json(&out)["templates"][0];
    assert_eq!(report["outcome"], "rebuilt");
    assert_eq!(report["old_id"], first.as_str());
    assert_ne!(report["new_id"], first.as_str());
    assert_eq!(report["upgraded"][0], "tool 1.0 -> 1.1");
    let lock = std::fs::read_to_string(recipe.with_extension("lock")).unwrap();
    assert!(lock.contains("version = \"1.1\""), "{lock}");
    // The name now points at the new template; the old one is untagged.
    let list = fx.list();
    let tagged: Vec<_> = list.iter().filter(|t| t["names"][0] == "nightly").collect();
    assert_eq!(tagged.len(), 1, "{list:?}");
    assert_eq!(tagged[0]["id"], report["new_id"]);

    // The old lock pins 1.0, which the mirror no longer has.
    std::fs::copy(&old_lock, recipe.with_extension("lock")).unwrap();
    let before = fx.list();
    let out = fx.vzpkg(&["create", r, "--locked", "--mirror", &fx.server.url]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("tool_1.0_amd64") && msg.contains("--locked"),
        "{msg}"
    );
    assert_eq!(fx.list(), before);
}

#[test]
fn a_locked_build_in_another_store_gives_the_same_template() {
    need_root!("needs root (namespaces and chroot for maintainer scripts)");
    let fx = Fixture::new(&dist("2.0"));
    let recipe = fx.recipe("locked", "minbase", &[], "");
    let out = fx.create(&recipe);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let id = json(&out)["template_id"].clone();
    // A second store root, built only from the lock.
    let other = fx.dir.path().join("other-root");
    let out = std::process::Command::new(vzpkg_tests::fixture::vzpkg_bin())
        .arg("--root")
        .arg(&other)
        .args([
            "create",
            recipe.to_str().unwrap(),
            "--locked",
            "--mirror",
            &fx.server.url,
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json(&out)["template_id"], id);
}
