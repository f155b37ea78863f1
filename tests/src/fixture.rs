//! One test's world: a signing key, a mirror on disk served over loopback
//! HTTP, a vzpkg root, and the real `vzpkg` binary to run against them.

use crate::debfile::DebBuilder;
use crate::mirror::{write_mirror, MirrorSpec, Published};
use crate::server::Server;
use crate::signing::TestKey;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `vzpkg` binary of this workspace's build (`cargo test --workspace`
/// builds it beside the test executables).
pub fn vzpkg_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/vzpkg
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("vzpkg"))
        .expect("target dir");
    assert!(
        bin.is_file(),
        "{} is missing: run the tests with `cargo test --workspace`",
        bin.display()
    );
    bin
}

pub fn is_root() -> bool {
    rustix_uid() == 0
}

/// Skips the test (returning `$ret`, or `()`) with `skipped: WHY` on stderr
/// unless it runs as root.
#[macro_export]
macro_rules! need_root {
    ($why:expr) => {
        $crate::need_root!($why, ())
    };
    ($why:expr, $ret:expr) => {
        if !$crate::fixture::is_root() {
            eprintln!("skipped: {}", $why);
            return $ret;
        }
    };
}

/// The JSON a command printed on stdout; panics with its output otherwise.
pub fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

fn rustix_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub key: TestKey,
    pub server: Server,
    pub spec: MirrorSpec,
}

impl Fixture {
    /// A mirror holding `packages`, signed with a fresh key.
    pub fn new(packages: &[Published]) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("vzpkg-test")
            .tempdir_in(std::env::temp_dir())
            .expect("tempdir");
        let key = TestKey::generate("vzpkg test archive <archive@test.invalid>");
        std::fs::write(dir.path().join("keyring.gpg"), key.public_keyring()).unwrap();
        let spec = MirrorSpec::default();
        let mirror = dir.path().join("mirror");
        write_mirror(&mirror, &spec, packages, &key);
        let server = Server::start(&mirror);
        Fixture {
            dir,
            key,
            server,
            spec,
        }
    }

    /// Publish the mirror again (other packages, another signing key, another validity).
    pub fn republish(
        &self,
        packages: &[Published],
        key: &TestKey,
        spec: &MirrorSpec,
    ) -> Vec<PathBuf> {
        let mirror = self.mirror_dir();
        let _ = std::fs::remove_dir_all(&mirror);
        write_mirror(&mirror, spec, packages, key)
    }

    pub fn mirror_dir(&self) -> PathBuf {
        self.dir.path().join("mirror")
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn keyring(&self) -> PathBuf {
        self.dir.path().join("keyring.gpg")
    }

    /// Write a recipe installing `include` on top of `base`; returns its path.
    pub fn recipe(&self, name: &str, base: &str, include: &[&str], extra: &str) -> PathBuf {
        let list = include
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            "name = \"{name}\"\narchitecture = \"amd64\"\n\n[source]\nkind = \"deb\"\nsuite = \"{}\"\nkeyring = \"{}\"\n\n[packages]\nbase = \"{base}\"\ninclude = [{list}]\n{extra}",
            self.spec.suite,
            self.keyring().display()
        );
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Run `vzpkg --root ROOT ARGS...` with the fixture mirror.
    pub fn vzpkg(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run vzpkg")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(vzpkg_bin());
        c.arg("--root").arg(self.root()).args(args);
        c
    }

    /// `vzpkg create RECIPE --mirror URL --json`.
    pub fn create(&self, recipe: &Path) -> Output {
        self.vzpkg(&[
            "create",
            recipe.to_str().unwrap(),
            "--mirror",
            &self.server.url,
            "--json",
        ])
    }

    /// Templates in the store, as `vzpkg list --json` says.
    pub fn list(&self) -> Vec<serde_json::Value> {
        let out = self.vzpkg(&["list", "--json"]);
        assert!(
            out.status.success(),
            "list: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("list json")
    }

    /// Whatever the store's scratch area still holds (must be empty between builds).
    pub fn leftovers(&self) -> Vec<PathBuf> {
        let tmp = self.root().join("templates/tmp");
        std::fs::read_dir(tmp)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    }
}

/// Output as text, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A package like a plain `.deb` in the archive.
pub fn package(name: &str, version: &str, fields: &[(&str, &str)], deb: DebBuilder) -> Published {
    let mut b = deb;
    for (k, v) in fields {
        b = b.field(k, v);
    }
    Published {
        name: name.into(),
        version: version.into(),
        arch: "amd64".into(),
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        deb: b.build(),
    }
}

/// An Essential package carrying the host's `dash` as `/bin/sh` and the
/// libraries it loads, so maintainer scripts in fixture trees really run.
pub fn shell_package() -> Published {
    let dash = Path::new("/usr/bin/dash");
    assert!(
        dash.is_file(),
        "the host has no /usr/bin/dash to build the fixture shell from"
    );
    let mut b = DebBuilder::new("fixture-shell", "1.0", "amd64")
        .file("usr/bin/dash", &std::fs::read(dash).unwrap(), 0o755)
        .symlink("usr/bin/sh", "dash");
    for lib in shared_libraries(dash) {
        let bytes = std::fs::read(&lib).unwrap();
        let rel = lib.to_str().unwrap().trim_start_matches('/').to_string();
        b = b.file(&rel, &bytes, 0o755);
    }
    package(
        "fixture-shell",
        "1.0",
        &[
            ("Essential", "yes"),
            ("Priority", "required"),
            ("Multi-Arch", "foreign"),
        ],
        b,
    )
}

/// What `ldd` says `bin` loads, as absolute paths.
pub fn shared_libraries(bin: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(bin).output().expect("run ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}
