//! Writes the repository `scripts/bench-rpm.sh` builds from: not a test.
//!
//! With `VZPKG_BENCH_REPO=DIR` set, the ignored test below fills DIR with a
//! yum repository (the host-rpm package plus generated packages that depend
//! on each other in a chain and a fan-out, some with scriptlets), its
//! `repomd.xml` signed by a fresh key (public half in `DIR/key.asc`), a
//! recipe `DIR/bench.toml` whose `baseurl` is `file://DIR/`, and
//! `DIR/names.txt` with the names the recipe includes, one a line.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use vzpkg_tests::fixture::text;
use vzpkg_tests::rpmtree::{host_rpm_package, RpmFixture, Script, HOST_RPM_PACKAGE};
use vzpkg_tests::signing::TestKey;

/// Generated packages besides the host-rpm one and the meta package.
const GENERATED: usize = 40;
/// The first packages form a chain: each requires the one before it.
const CHAIN: usize = 10;

fn name(i: usize) -> String {
    format!("bench-pkg{i:02}")
}

/// Deterministic filler text, `lines` lines long.
fn filler(seed: usize, lines: usize) -> String {
    let mut s = String::new();
    for l in 0..lines {
        let _ = writeln!(
            s,
            "{seed:04}:{l:05} the quick brown fox jumps over the lazy dog {:016x}",
            (seed as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ l as u64
        );
    }
    s
}

fn package(i: usize, dir: &Path) {
    let n = name(i);
    let version = format!("1.{}", i % 7);
    let mut p = RpmFixture::new(&n, &version)
        .file(
            &format!("/usr/share/{n}/data.txt"),
            &filler(i, 40 + 25 * (i % 9)),
        )
        .file(
            &format!("/usr/lib/{n}/module.conf"),
            &format!("name = {n}\nindex = {i}\n"),
        )
        .file(&format!("/etc/{n}.conf"), &format!("# {n}\nenabled=1\n"));
    if i.is_multiple_of(3) {
        p = p.file(&format!("/usr/share/doc/{n}/NEWS"), &filler(i + 1000, 120));
    }
    // Chain: 1 -> 0, 2 -> 1, ... Fan-out: the rest each need one chain link
    // (versioned every other time) and, from the second ten on, a package
    // ten below.
    if (1..CHAIN).contains(&i) {
        p = p.requires(&name(i - 1), None);
    } else if i >= CHAIN {
        let link = i % CHAIN;
        let at_least = format!("1.{}", link % 7);
        p = p.requires(
            &name(link),
            i.is_multiple_of(2).then_some(at_least.as_str()),
        );
        if i >= 2 * CHAIN {
            p = p.requires(&name(i - CHAIN), None);
        }
    }
    if i % 4 == 1 {
        p = p.requires("/bin/sh", None).script(
            Script::Post,
            &format!("echo \"post $1\" >> /usr/share/{n}/post.log\n"),
        );
    }
    // The tree has a shell but no coreutils: scriptlets use builtins only.
    if i % 10 == 3 {
        p = p.requires("/bin/sh", None).script(
            Script::Pre,
            &format!("echo \"pre $1\" > /var/tmp/{n}.pre\n"),
        );
    }
    p.write(dir);
}

#[test]
#[ignore = "writes the benchmark repository; scripts/bench-rpm.sh runs it"]
fn write_the_benchmark_repository() {
    let Some(dir) = std::env::var_os("VZPKG_BENCH_REPO") else {
        eprintln!("skipped: set VZPKG_BENCH_REPO=DIR to write the repository into DIR");
        return;
    };
    let dir = std::path::absolute(Path::new(&dir)).expect("an absolute path");
    let packages = dir.join("Packages");
    for old in [packages.clone(), dir.join("repodata")] {
        if old.exists() {
            std::fs::remove_dir_all(&old).expect("the old repository is removed");
        }
    }
    std::fs::create_dir_all(&packages).expect("the repository directory is made");
    host_rpm_package(&packages).unwrap_or_else(|why| panic!("{why}"));

    let mut names = vec![HOST_RPM_PACKAGE.to_string()];
    for i in 0..GENERATED {
        package(i, &packages);
        names.push(name(i));
    }
    // Fan-out the other way: one package needing every generated one.
    let mut meta = RpmFixture::new("bench-all", "1.0");
    for i in 0..GENERATED {
        meta = meta.requires(&name(i), None);
    }
    meta.write(&packages);
    names.push("bench-all".into());

    let out = Command::new("createrepo_c")
        .arg("--quiet")
        .arg(&dir)
        .output()
        .expect("createrepo_c runs (scripts/setup.sh installs it)");
    assert!(out.status.success(), "createrepo_c: {}", text(&out));
    let key = TestKey::generate("vzpkg rpm bench <bench@test.invalid>");
    let repomd = std::fs::read(dir.join("repodata/repomd.xml")).expect("repomd.xml");
    std::fs::write(
        dir.join("repodata/repomd.xml.asc"),
        key.sign_detached(&repomd),
    )
    .expect("the signature is written");
    let key_file = dir.join("key.asc");
    std::fs::write(&key_file, key.public_keyring_armored()).expect("the key is written");

    let list = names
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let recipe = format!(
        "name = \"bench-rpm\"\narchitecture = \"x86_64\"\n\n[source]\nkind = \"rpm\"\n\n[[source.repo]]\nname = \"bench\"\nbaseurl = \"file://{}/\"\ngpgkey = [\"{}\"]\ngpgcheck = false\nrepo_gpgcheck = true\n\n[packages]\ninclude = [{list}]\n",
        dir.display(),
        key_file.display()
    );
    std::fs::write(dir.join("bench.toml"), recipe).expect("the recipe is written");
    std::fs::write(dir.join("names.txt"), names.join("\n") + "\n").expect("names.txt");
    println!(
        "wrote {} ({} packages, recipe bench.toml)",
        dir.display(),
        names.len()
    );
}
