//! The template store as a user meets it: two templates sharing files,
//! export and import of OpenVZ caches, fsck and gc.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use vzpkg_tests::debfile::DebBuilder;
use vzpkg_tests::fixture::{json, package, shell_package, text, Fixture};
use vzpkg_tests::mirror::Published;
use vzpkg_tests::need_root;

fn dist() -> Vec<Published> {
    vec![
        shell_package(),
        package(
            "base-files",
            "1.0",
            &[("Priority", "required")],
            DebBuilder::new("base-files", "1.0", "amd64")
                .file("etc/issue", b"fixture\n", 0o644)
                .file("usr/share/base-files/motd", &[b'x'; 4096], 0o644),
        ),
        package(
            "extra",
            "1.0",
            &[],
            DebBuilder::new("extra", "1.0", "amd64").file("usr/bin/extra", b"#!/bin/sh\n", 0o755),
        ),
    ]
}

/// The on-disk path of `rel` in template `name`'s layers (topmost first).
fn find_in_layers(fx: &Fixture, name: &str, rel: &str) -> PathBuf {
    let info = json(&fx.vzpkg(&["info", name, "--json"]));
    info["layers"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|l| {
            fx.root()
                .join("templates/layers")
                .join(l["id"].as_str().unwrap())
                .join("tree")
                .join(rel)
        })
        .find(|p| p.symlink_metadata().is_ok())
        .unwrap_or_else(|| panic!("{rel} not in {name}"))
}

fn build_two(fx: &Fixture) -> (String, String) {
    let a = fx.recipe("small", "minbase", &[], "");
    let b = fx.recipe("bigger", "minbase", &["extra"], "");
    let out_a = fx.create(&a);
    assert_eq!(out_a.status.code(), Some(0), "{}", text(&out_a));
    let out_b = fx.create(&b);
    assert_eq!(out_b.status.code(), Some(0), "{}", text(&out_b));
    (
        json(&out_a)["template_id"].as_str().unwrap().into(),
        json(&out_b)["template_id"].as_str().unwrap().into(),
    )
}

#[test]
fn two_templates_share_one_inode_per_file_and_gc_keeps_what_is_named() {
    need_root!("needs root");
    let fx = Fixture::new(&dist());
    let (a, b) = build_two(&fx);
    assert_ne!(a, b);
    let in_a = find_in_layers(&fx, "small", "usr/share/base-files/motd");
    let in_b = find_in_layers(&fx, "bigger", "usr/share/base-files/motd");
    assert_eq!(
        std::fs::metadata(&in_a).unwrap().ino(),
        std::fs::metadata(&in_b).unwrap().ino(),
        "{} and {} are two copies",
        in_a.display(),
        in_b.display()
    );

    // Drop one name: gc frees only what the other template doesn't use.
    let out = fx.vzpkg(&["rm", "small"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = fx.vzpkg(&["gc", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let gc = json(&out);
    assert_eq!(gc["templates"], 1, "{gc}");
    assert!(in_b.exists());
    let out = fx.vzpkg(&["fsck"]);
    assert!(out.status.success(), "{}", text(&out));
    let tree = fx.dir.path().join("tree");
    let out = fx.vzpkg(&["checkout", "bigger", tree.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(tree.join("usr/bin/extra").is_file());
}

#[test]
fn export_then_import_gives_the_same_template() {
    need_root!("needs root");
    let fx = Fixture::new(&dist());
    let (_, id) = build_two(&fx);
    for suffix in ["tar.zst", "tar.gz", "tar.xz", "tar"] {
        let cache = fx.dir.path().join(format!("bigger-x86_64.{suffix}"));
        let out = fx.vzpkg(&["export", "bigger", "-o", cache.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        // GNU tar reads it as OpenVZ would.
        let listed = std::process::Command::new("tar")
            .args(["--numeric-owner", "-tvaf"])
            .arg(&cache)
            .output()
            .unwrap();
        assert!(listed.status.success(), "{}", text(&listed));
        assert!(String::from_utf8_lossy(&listed.stdout).contains("./usr/bin/extra"));
        // Into a store that has never seen it: same id.
        let other = fx.dir.path().join(format!("other-{suffix}"));
        let out = std::process::Command::new(vzpkg_tests::fixture::vzpkg_bin())
            .arg("--root")
            .arg(&other)
            .args([
                "import",
                cache.to_str().unwrap(),
                "--name",
                "again",
                "--json",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(json(&out)["template_id"], id.as_str(), "{suffix}");
    }
    // Exports are byte-identical run to run.
    let one = fx.dir.path().join("one.tar.zst");
    let two = fx.dir.path().join("two.tar.zst");
    for p in [&one, &two] {
        assert!(fx
            .vzpkg(&["export", "bigger", "-o", p.to_str().unwrap()])
            .status
            .success());
    }
    assert_eq!(std::fs::read(&one).unwrap(), std::fs::read(&two).unwrap());
}

#[test]
fn a_corrupt_object_and_a_truncated_cache_are_caught() {
    need_root!("needs root");
    let fx = Fixture::new(&dist());
    build_two(&fx);
    // A truncated cache: refused, store as it was, fsck clean.
    let cache = fx.dir.path().join("cut.tar.gz");
    assert!(fx
        .vzpkg(&["export", "bigger", "-o", cache.to_str().unwrap()])
        .status
        .success());
    let bytes = std::fs::read(&cache).unwrap();
    std::fs::write(&cache, &bytes[..bytes.len() / 2]).unwrap();
    let before = fx.list();
    let out = fx.vzpkg(&["import", cache.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cut.tar.gz"),
        "{}",
        text(&out)
    );
    assert_eq!(fx.list(), before);
    assert!(fx.vzpkg(&["fsck"]).status.success());

    // Flip a byte of a stored file: fsck names it and fails.
    let motd = find_in_layers(&fx, "bigger", "usr/share/base-files/motd");
    let mut content = std::fs::read(&motd).unwrap();
    content[0] ^= 1;
    std::fs::write(&motd, content).unwrap();
    let out = fx.vzpkg(&["fsck"]);
    assert_eq!(out.status.code(), Some(9), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("clean"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_recipe_can_choose_its_layers() {
    need_root!("needs root");
    let fx = Fixture::new(&dist());
    let recipe = fx.recipe("split", "minbase", &[], "");
    let body = std::fs::read_to_string(&recipe).unwrap();
    std::fs::write(
        &recipe,
        format!("layers = [[\"/usr\"], [\"/etc\"]]\n{body}"),
    )
    .unwrap();
    let out = fx.create(&recipe);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let info = json(&fx.vzpkg(&["info", "split", "--json"]));
    let layers = info["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{info}");
    // /etc/issue sits in the middle layer, /usr in the bottom one.
    let tree = |i: usize| {
        fx.root()
            .join("templates/layers")
            .join(layers[i]["id"].as_str().unwrap())
            .join("tree")
    };
    assert!(tree(0).join("usr/share/base-files/motd").is_file());
    assert!(tree(1).join("etc/issue").is_file());
    assert!(!tree(2).join("etc/issue").exists());
}
