//! `vzpkg create` of an RPM recipe against a yum repository made by
//! createrepo_c from real RPMs, its repomd.xml signed with a key the test
//! made, served over loopback HTTP.

use std::path::{Path, PathBuf};
use std::process::Command;
use vzpkg_tests::fixture::{text, vzpkg_bin};
use vzpkg_tests::need_root;
use vzpkg_tests::rpmtree::{
    host_rpm_package, host_shell_package, RpmFixture, Script, HOST_RPM_PACKAGE, HOST_SHELL_PACKAGE,
};
use vzpkg_tests::server::Server;
use vzpkg_tests::signing::TestKey;

struct Repo {
    dir: tempfile::TempDir,
    server: Server,
    key: TestKey,
}

impl Repo {
    fn repo_dir(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn recipe(&self, name: &str, include: &[&str]) -> PathBuf {
        let key = self.dir.path().join("key.asc");
        std::fs::write(&key, self.key.public_keyring_armored()).unwrap();
        let trust = format!(
            "gpgkey = [\"{}\"]\ngpgcheck = false\nrepo_gpgcheck = true",
            key.display()
        );
        self.recipe_with(name, include, &trust)
    }

    /// A recipe whose one repository entry ends with `trust` (its key and
    /// check settings).
    fn recipe_with(&self, name: &str, include: &[&str], trust: &str) -> PathBuf {
        let list = include
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            "name = \"{name}\"\narchitecture = \"x86_64\"\n\n[source]\nkind = \"rpm\"\n\n[[source.repo]]\nname = \"os\"\nbaseurl = \"{}/\"\n{trust}\n\n[packages]\ninclude = [{list}]\n",
            self.server.url,
        );
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn vzpkg(&self, args: &[&str]) -> std::process::Output {
        Command::new(vzpkg_bin())
            .arg("--root")
            .arg(self.dir.path().join("root"))
            .args(args)
            .output()
            .unwrap()
    }

    /// Check template `name` out into a fresh tree.
    fn checkout(&self, name: &str) -> PathBuf {
        let tree = self.dir.path().join("tree");
        let out = self.vzpkg(&["checkout", name, tree.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        tree
    }

    /// Index the repository again (createrepo_c) and sign the new
    /// repomd.xml: what a mirror does when its packages change.
    fn publish(&self) {
        publish(&self.repo_dir(), &self.key);
    }

    fn list(&self) -> serde_json::Value {
        let out = self.vzpkg(&["list", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// The packages, `createrepo_c`, and a signature over repomd.xml. `None`
/// (with the reason printed) when this machine cannot make them.
fn repo(extra: impl FnOnce(&Path)) -> Option<Repo> {
    need_root!("needs root (namespaces and chroot for scriptlets)", None);
    if Command::new("createrepo_c")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: createrepo_c is not installed (scripts/setup.sh installs it)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    if let Err(why) = host_rpm_package(&repo) {
        eprintln!("skipped: {why}");
        return None;
    }
    RpmFixture::new("libdemo", "1.0").write_as(&repo, "libdemo-1.0");
    RpmFixture::new("libdemo", "1.2").write_as(&repo, "libdemo-1.2");
    RpmFixture::new("app", "3.0")
        .requires("libdemo", Some("1.1"))
        .requires("/bin/sh", None)
        .script(Script::Pre, "echo \"pre $1\" >> /usr/share/app/log\n")
        .script(Script::Post, "echo \"post $1\" >> /usr/share/app/log\n")
        .write(&repo);
    extra(&repo);
    let key = TestKey::generate("vzpkg rpm test <rpm@test.invalid>");
    publish(&repo, &key);
    let server = Server::start(&repo);
    Some(Repo { dir, server, key })
}

/// createrepo_c, with the package groups in `comps.xml` when there is one.
fn publish(repo: &Path, key: &TestKey) {
    let mut cmd = Command::new("createrepo_c");
    cmd.arg("--quiet");
    let comps = repo.join("comps.xml");
    if comps.exists() {
        cmd.arg("--groupfile").arg(comps);
    }
    let out = cmd.arg(repo).output().unwrap();
    assert!(out.status.success(), "createrepo_c: {}", text(&out));
    let repomd = std::fs::read(repo.join("repodata/repomd.xml")).unwrap();
    std::fs::write(
        repo.join("repodata/repomd.xml.asc"),
        key.sign_detached(&repomd),
    )
    .unwrap();
}

/// The tree's own `rpm -V` finds `packages` as they were installed: files,
/// owners and modes.
fn assert_rpm_verifies(tree: &Path, packages: &[&str]) {
    let v = Command::new("chroot")
        .arg(tree)
        .args(["rpm", "-V"])
        .args(packages)
        .output()
        .unwrap();
    assert!(
        v.status.success() && v.stdout.is_empty(),
        "rpm -V: {}",
        text(&v)
    );
}

#[test]
fn an_rpm_template_is_built_and_registered_in_its_own_rpm_database() {
    let Some(r) = repo(|_| {}) else { return };
    let recipe = r.recipe("rpmfix", &[HOST_RPM_PACKAGE, "app"]);
    let out = r.vzpkg(&["--json", "create", recipe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["packages"], 3, "{result}");

    let tree = r.checkout("rpmfix");
    // The newest libdemo satisfies `libdemo >= 1.1`.
    assert_eq!(
        std::fs::read_to_string(tree.join("usr/share/libdemo/README")).unwrap(),
        "libdemo 1.2\n"
    );
    // Scriptlets ran inside, %pre before %post.
    assert_eq!(
        std::fs::read_to_string(tree.join("usr/share/app/log")).unwrap(),
        "pre 1\npost 1\n"
    );
    // The tree's own rpm knows every package, and finds the files unmodified.
    let qa = Command::new("chroot")
        .arg(&tree)
        .args(["rpm", "-qa", "--qf", "%{NAME}-%{VERSION}\\n"])
        .output()
        .unwrap();
    assert!(qa.status.success(), "{}", text(&qa));
    let mut names: Vec<String> = String::from_utf8_lossy(&qa.stdout)
        .lines()
        .map(String::from)
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names.contains(&"app-3.0".to_string()) && names.contains(&"libdemo-1.2".to_string()),
        "{names:?}"
    );
    assert_rpm_verifies(&tree, &["app", "libdemo"]);
}

#[test]
fn a_failing_post_scriptlet_fails_the_build_and_keeps_the_store() {
    let Some(r) = repo(|dir| {
        RpmFixture::new("broken", "1.0")
            .script(Script::Post, "echo 'broken cannot configure' >&2\nexit 1\n")
            .write(dir);
    }) else {
        return;
    };
    let recipe = r.recipe("rpmfix", &[HOST_RPM_PACKAGE, "broken"]);
    let out = r.vzpkg(&["create", recipe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(8), "{}", text(&out));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("broken"), "{msg}");
    assert_eq!(r.list(), serde_json::json!([]));
}

#[test]
fn a_bad_repomd_signature_and_a_tampered_package_are_refused() {
    let Some(r) = repo(|_| {}) else { return };
    let recipe = r.recipe("rpmfix", &[HOST_RPM_PACKAGE, "app"]);
    // A package changed after createrepo_c recorded its checksum.
    let app = r.repo_dir().join("app.rpm");
    let mut bytes = std::fs::read(&app).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0xff;
    std::fs::write(&app, bytes).unwrap();
    let out = r.vzpkg(&["create", recipe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("app-3.0"),
        "{}",
        text(&out)
    );

    // repomd.xml signed by someone else.
    let stranger = TestKey::generate("stranger <s@test.invalid>");
    let repomd = std::fs::read(r.repo_dir().join("repodata/repomd.xml")).unwrap();
    std::fs::write(
        r.repo_dir().join("repodata/repomd.xml.asc"),
        stranger.sign_detached(&repomd),
    )
    .unwrap();
    let out = r.vzpkg(&["create", recipe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("repomd.xml"),
        "{}",
        text(&out)
    );
    assert_eq!(r.list(), serde_json::json!([]));
}

#[test]
fn the_lock_pins_rpm_versions_and_the_nightly_rebuild_follows_upstream() {
    let Some(r) = repo(|_| {}) else { return };
    let recipe = r.recipe("rpmlock", &[HOST_RPM_PACKAGE, "app"]);
    let path = recipe.to_str().unwrap();
    let out = r.vzpkg(&["--json", "create", path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = first["template_id"].as_str().unwrap().to_string();
    let lock_file = recipe.with_extension("lock");
    let lock = std::fs::read_to_string(&lock_file).unwrap();
    assert!(
        lock.contains("name = \"libdemo\"") && lock.contains("version = \"1.2-1\""),
        "{lock}"
    );
    let rebuild = || {
        let out = r.vzpkg(&["--json", "rebuild", path, "--if-changed"]);
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        (out.status.code(), v["templates"][0].clone())
    };

    // Nothing changed upstream: a no-op, told from repomd.xml alone.
    r.server.clear_log();
    let (code, report) = rebuild();
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["outcome"], "unchanged", "{report}");
    assert_eq!(report["new_id"], first.as_str());
    assert_eq!(r.server.requests(), ["/repodata/repomd.xml"]);

    // A newer libdemo upstream: `--locked` still builds the pinned one, into
    // the same template, and leaves the lock alone.
    RpmFixture::new("libdemo", "1.3").write_as(&r.repo_dir(), "libdemo-1.3");
    r.publish();
    let out = r.vzpkg(&["--json", "create", path, "--locked"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let locked: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(locked["template_id"], first.as_str(), "{locked}");
    assert_eq!(std::fs::read_to_string(&lock_file).unwrap(), lock);

    // The nightly rebuild takes it: rebuilt, reported, lock updated.
    let (code, report) = rebuild();
    assert_eq!(code, Some(11), "{report}");
    assert_eq!(report["outcome"], "rebuilt", "{report}");
    assert_eq!(report["upgraded"][0], "libdemo 1.2-1 -> 1.3-1", "{report}");
    assert_ne!(report["new_id"], first.as_str());
    let tree = r.checkout("rpmlock");
    assert_eq!(
        std::fs::read_to_string(tree.join("usr/share/libdemo/README")).unwrap(),
        "libdemo 1.3\n"
    );
    let (code, report) = rebuild();
    assert_eq!((code, &report["outcome"]), (Some(0), &"unchanged".into()));

    // The old lock pins a package the repository has since dropped:
    // refused by name, the store as it was.
    std::fs::write(&lock_file, &lock).unwrap();
    std::fs::remove_file(r.repo_dir().join("libdemo-1.2.rpm")).unwrap();
    r.publish();
    let before = r.list();
    let out = r.vzpkg(&["create", path, "--locked"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("libdemo_1.2-1") && msg.contains("--locked"),
        "{msg}"
    );
    assert_eq!(r.list(), before);
}

#[test]
fn package_groups_install_their_mandatory_and_default_members() {
    let Some(r) = repo(|dir| {
        RpmFixture::new("extra", "1.0").write(dir);
        std::fs::write(
            dir.join("comps.xml"),
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<comps>
  <group>
    <id>demo</id>
    <name>Demo Server</name>
    <packagelist>
      <packagereq type="mandatory">{HOST_RPM_PACKAGE}</packagereq>
      <packagereq type="mandatory">app</packagereq>
      <packagereq type="default">libdemo</packagereq>
      <packagereq type="optional">extra</packagereq>
      <packagereq type="default">not-in-this-repo</packagereq>
    </packagelist>
  </group>
</comps>
"#
            ),
        )
        .unwrap();
    }) else {
        return;
    };
    let recipe = r.recipe("rpmgroup", &["@Demo Server"]);
    let out = r.vzpkg(&["--json", "create", recipe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Mandatory and default members; not the optional one.
    let lock = std::fs::read_to_string(recipe.with_extension("lock")).unwrap();
    for name in [HOST_RPM_PACKAGE, "app", "libdemo"] {
        assert!(
            lock.contains(&format!("name = \"{name}\"")),
            "{name}: {lock}"
        );
    }
    assert!(!lock.contains("name = \"extra\""), "{lock}");
    // The member the repository lacks is named, not fatal.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not-in-this-repo"),
        "{}",
        text(&out)
    );

    // A group the repository does not have: refused, naming those it has.
    let recipe = r.recipe("rpmgroup2", &["@web"]);
    let out = r.vzpkg(&["create", recipe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("\"@web\"") && msg.contains("demo"), "{msg}");
}

#[test]
fn files_of_a_user_that_pre_adds_get_that_user() {
    let Some(r) = repo(|dir| {
        RpmFixture::new("svc", "1.0")
            .script(
                Script::Pre,
                "mkdir -p /etc\necho 'svc:x:990:990::/:/bin/false' >> /etc/passwd\necho 'svc:x:990:' >> /etc/group\n",
            )
            .file_owned("/usr/libexec/svc/helper", "#!/bin/sh\n", 0o4750, "svc", "svc")
            .write(dir);
        RpmFixture::new("stray", "1.0")
            .file_owned("/usr/share/stray/data", "x\n", 0o640, "nosuchuser", "root")
            .write(dir);
    }) else {
        return;
    };
    let recipe = r.recipe("rpmowners", &[HOST_RPM_PACKAGE, "svc", "stray"]);
    let out = r.vzpkg(&["create", recipe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // A name no scriptlet adds stays root, and is named.
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("user nosuchuser"), "{msg}");

    let tree = r.checkout("rpmowners");
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(tree.join("usr/libexec/svc/helper")).unwrap();
    // Owned as the header says, and the chown kept the set-uid bit.
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (990, 990, 0o4750));
    let m = std::fs::symlink_metadata(tree.join("usr/share/stray/data")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 0, 0o640));
    // The tree's rpm finds the package as it installed it.
    assert_rpm_verifies(&tree, &["svc"]);
}

/// The host's rpm, reading the database of `tree` where the RPM
/// distributions keep it (Debian's rpm would look in `~/.rpmdb`).
fn host_rpm(tree: &Path, args: &[&str]) -> std::process::Output {
    Command::new("rpm")
        .arg("--root")
        .arg(tree)
        .args(["--dbpath", "/var/lib/rpm"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_package_set_without_rpm_is_registered_by_the_host_rpm() {
    let Some(r) = repo(|dir| {
        host_shell_package(dir).unwrap();
        // What an Enterprise Linux 9 repository offers, though the set
        // leaves it out: it tells the database format (sqlite).
        RpmFixture::new("rpm", "4.16.1.3").write(dir);
    }) else {
        return;
    };
    let recipe = r.recipe("rpmless", &[HOST_SHELL_PACKAGE, "app"]);
    let out = r.vzpkg(&["create", recipe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("no rpm") && msg.contains("sqlite") && msg.contains("4.16.1.3"),
        "{msg}"
    );
    // The database the host's rpm writes is the same build after build:
    // the same template, not a second one.
    let first = r.list();
    let again = r.vzpkg(&["create", recipe.to_str().unwrap(), "--locked"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let list = r.list();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], first[0]["id"]);

    let tree = r.checkout("rpmless");
    assert!(!tree.join("usr/bin/rpm").exists() && !tree.join("bin/rpm").exists());
    // Scriptlets ran inside, as with the tree's own rpm.
    assert_eq!(
        std::fs::read_to_string(tree.join("usr/share/app/log")).unwrap(),
        "pre 1\npost 1\n"
    );
    let qa = host_rpm(&tree, &["-qa", "--qf", "%{NAME}-%{VERSION}\\n"]);
    assert!(qa.status.success(), "{}", text(&qa));
    let mut names: Vec<String> = String::from_utf8_lossy(&qa.stdout)
        .lines()
        .map(String::from)
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["app-3.0", "libdemo-1.2", &format!("{HOST_SHELL_PACKAGE}-1")],
    );
    assert!(tree.join("var/lib/rpm/rpmdb.sqlite").is_file());
    // The files are as the database says they were installed.
    let v = host_rpm(&tree, &["-V", "app", "libdemo"]);
    assert!(v.status.success() && v.stdout.is_empty(), "{}", text(&v));

    // A target whose rpm reads Berkeley DB, which Debian's rpm cannot
    // write: refused before anything is downloaded, naming the format and
    // the fix; the store as it was.
    let before = r.list();
    let bdb = r.recipe("rpmless-bdb", &[HOST_SHELL_PACKAGE, "app"]);
    let text_of = std::fs::read_to_string(&bdb).unwrap();
    std::fs::write(
        &bdb,
        text_of.replace(
            "kind = \"rpm\"\n",
            "kind = \"rpm\"\nrpmdb_backend = \"bdb\"\n",
        ),
    )
    .unwrap();
    let out = r.vzpkg(&["create", bdb.to_str().unwrap()]);
    if out.status.success() {
        eprintln!("skipped the Berkeley DB half: this host's rpm writes it");
        return;
    }
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("bdb") && msg.contains("add rpm to the recipe's package set"),
        "{msg}"
    );
    assert_eq!(r.list(), before);
}

#[test]
fn an_unsigned_repository_builds_only_when_both_checks_are_turned_off() {
    let Some(r) = repo(|_| {}) else { return };
    // The repository as CI jobs make them: createrepo_c, no signature.
    std::fs::remove_file(r.repo_dir().join("repodata/repomd.xml.asc")).unwrap();

    // One key alone: the refusal stays, and names what would allow it.
    let half = r.recipe_with("unsigned", &[HOST_RPM_PACKAGE, "app"], "gpgcheck = false");
    let out = r.vzpkg(&["create", half.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("gpgcheck = false") && msg.contains("repo_gpgcheck = false"),
        "{msg}"
    );
    assert_eq!(r.list(), serde_json::json!([]));
    assert!(!half.with_extension("lock").exists());

    let both = r.recipe_with(
        "unsigned",
        &[HOST_RPM_PACKAGE, "app"],
        "gpgcheck = false\nrepo_gpgcheck = false",
    );
    let out = r.vzpkg(&["create", both.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("repository os") && msg.contains("UNVERIFIED"),
        "{msg}"
    );

    let lock = std::fs::read_to_string(both.with_extension("lock")).unwrap();
    assert!(lock.contains("unverified = [\"os\"]"), "{lock}");
    let list = r.list();
    assert_eq!(list[0]["unverified"], serde_json::json!(["os"]), "{list}");
    let info = r.vzpkg(&["--json", "info", "unsigned"]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["unverified"], serde_json::json!(["os"]), "{info}");
    let info = r.vzpkg(&["info", "unsigned"]);
    assert!(
        String::from_utf8_lossy(&info.stdout).contains("verified: NO"),
        "{}",
        text(&info)
    );

    // Every build says it again.
    let out = r.vzpkg(&["create", both.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("UNVERIFIED"));
}

#[test]
fn a_pinned_key_is_used_and_a_key_that_does_not_match_its_pin_is_refused() {
    let Some(r) = repo(|_| {}) else { return };
    // The key is served over plain HTTP beside the packages, so a pin is
    // what makes it worth anything.
    std::fs::write(
        r.repo_dir().join("RPM-GPG-KEY-test"),
        r.key.public_keyring_armored(),
    )
    .unwrap();
    let key_url = format!("{}/RPM-GPG-KEY-test", r.server.url);
    let trust = |fp: &str| {
        format!(
            "gpgkey = [\"{key_url}\"]\ngpgkey_fingerprints = [\"{fp}\"]\ngpgcheck = false\nrepo_gpgcheck = true"
        )
    };
    // Written as distributions print fingerprints: groups of four.
    let fp = r.key.fingerprint();
    let spaced: Vec<&str> = (0..fp.len())
        .step_by(4)
        .map(|i| &fp[i..(i + 4).min(fp.len())])
        .collect();
    let recipe = r.recipe_with(
        "pinned",
        &[HOST_RPM_PACKAGE, "app"],
        &trust(&spaced.join(" ")),
    );
    let out = r.vzpkg(&["create", recipe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let before = r.list();
    assert!(
        before[0]["unverified"].as_array().unwrap().is_empty(),
        "{before}"
    );

    // Without a pin, an HTTP key is a recipe error.
    let unpinned = r.recipe_with(
        "pinned",
        &[HOST_RPM_PACKAGE, "app"],
        &format!("gpgkey = [\"{key_url}\"]\ngpgcheck = false\nrepo_gpgcheck = true"),
    );
    let out = r.vzpkg(&["create", unpinned.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gpgkey_fingerprints"));

    // Someone on the way swaps the key (and signs repomd.xml with theirs):
    // the pin catches it, naming both fingerprints; the store as it was.
    let mallory = vzpkg_tests::signing::TestKey::generate("mallory <m@test.invalid>");
    std::fs::write(
        r.repo_dir().join("RPM-GPG-KEY-test"),
        mallory.public_keyring_armored(),
    )
    .unwrap();
    publish(&r.repo_dir(), &mallory);
    let recipe = r.recipe_with("pinned", &[HOST_RPM_PACKAGE, "app"], &trust(&fp));
    let out = r.vzpkg(&["create", recipe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains(&fp) && msg.contains(&mallory.fingerprint()) && msg.contains(&key_url),
        "{msg}"
    );
    assert_eq!(r.list(), before);
}
