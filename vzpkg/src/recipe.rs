//! Recipes (`recipes/NAME.toml`): what to build. Parsing is a pure function of
//! the text; every mistake is reported with the file, the line and the fix.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Which packages to start from before includes and excludes (`[packages]
/// base`; Debian recipes only, RPM ones start from none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseSet {
    /// `Essential: yes` and `Priority: required`, plus `apt` (mmdebstrap's minbase).
    Minbase,
    /// `Essential: yes` only.
    Essential,
    /// Only what `include` names.
    None,
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RecipeError {
    #[error("cannot read recipe {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no recipe named {name:?}: looked for {looked}; give a recipe file path or one of: {known}"
    )]
    NotFound {
        name: String,
        looked: String,
        known: String,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A parsed recipe.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The tag the built template gets (`debian-12`).
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The distribution's architecture name (`amd64` for Debian, `x86_64`
    /// or `i386` for RPM distributions).
    #[serde(default = "default_arch")]
    pub architecture: String,
    pub source: Source,
    pub packages: Packages,
    #[serde(default)]
    pub post: Post,
    /// How the tree is split into shared layers, bottom first: each group a
    /// list of directories (a directory claims its subtree only when it is a
    /// real directory); the rest goes on top. Default: `[["/usr"],
    /// ["/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin"]]`.
    #[serde(default)]
    pub layers: Option<Vec<Vec<String>>>,
    /// Where the text came from; set by `load`, not by the file.
    #[serde(skip)]
    pub path: PathBuf,
    #[serde(skip)]
    pub text: String,
}

/// Where packages come from; `kind` picks the distribution family.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    Deb(DebSource),
    Rpm(RpmSource),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DebSource {
    /// Base URL; none means the host's apt configuration.
    #[serde(default)]
    pub mirror: Option<String>,
    pub suite: String,
    #[serde(default = "default_components")]
    pub components: Vec<String>,
    pub keyring: PathBuf,
    /// Lay out `/bin`, `/sbin`, `/lib*` as links into `/usr` before unpacking.
    #[serde(default = "yes")]
    pub merged_usr: bool,
}

/// yum/dnf repositories, like a `.repo` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpmSource {
    #[serde(rename = "repo")]
    pub repos: Vec<RpmRepoSpec>,
    /// The rpm database format to write when the package set has no rpm of
    /// its own and the host's rpm registers the packages; unset, it follows
    /// the version of the `rpm` package the repositories offer.
    #[serde(default)]
    pub rpmdb_backend: Option<RpmDbBackend>,
}

/// rpm's database formats (`%_db_backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RpmDbBackend {
    /// rpm 4.16 and later on Fedora and Enterprise Linux 9.
    Sqlite,
    /// Berkeley DB: rpm before 4.16 (CentOS 4 to 8).
    Bdb,
    /// rpm's own format, SUSE's default since rpm 4.16.
    Ndb,
}

impl RpmDbBackend {
    /// The name rpm's `%_db_backend` takes.
    pub fn name(self) -> &'static str {
        match self {
            RpmDbBackend::Sqlite => "sqlite",
            RpmDbBackend::Bdb => "bdb",
            RpmDbBackend::Ndb => "ndb",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawRpmRepoSpec")]
pub struct RpmRepoSpec {
    /// A short id (`base`, `updates`).
    pub name: String,
    /// The repository's base URL (holding `repodata/`); `$basearch` is
    /// replaced by the recipe's architecture.
    pub baseurl: Option<String>,
    /// A mirror list URL (one base URL per line) instead of `baseurl`.
    pub mirrorlist: Option<String>,
    /// Key files (paths, or `file://`/`http(s)://` URLs) for package and
    /// `repomd.xml` signatures.
    pub gpgkey: Vec<String>,
    /// Fingerprints the keys of `gpgkey` must have (upper-case hex, no
    /// spaces); required when a key comes over plain HTTP.
    pub gpgkey_fingerprints: Vec<String>,
    /// Check each package's header signature against `gpgkey` (default on).
    pub gpgcheck: bool,
    /// Check `repodata/repomd.xml.asc` against `gpgkey` (default off).
    pub repo_gpgcheck: bool,
    /// The recipe turned both checks off in so many words (`gpgcheck =
    /// false` and `repo_gpgcheck = false`): the only way a repository is
    /// used unverified.
    pub unverified: bool,
    /// Lower wins when two repositories offer the same package (yum's priorities).
    pub priority: u32,
}

/// A repository entry as written, so that a check left at its default can
/// be told from one the recipe turned off.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRpmRepoSpec {
    name: String,
    #[serde(default)]
    baseurl: Option<String>,
    #[serde(default)]
    mirrorlist: Option<String>,
    #[serde(default)]
    gpgkey: Vec<String>,
    #[serde(default)]
    gpgkey_fingerprints: Vec<String>,
    #[serde(default)]
    gpgcheck: Option<bool>,
    #[serde(default)]
    repo_gpgcheck: Option<bool>,
    #[serde(default = "default_priority")]
    priority: u32,
}

impl From<RawRpmRepoSpec> for RpmRepoSpec {
    fn from(raw: RawRpmRepoSpec) -> Self {
        RpmRepoSpec {
            name: raw.name,
            baseurl: raw.baseurl,
            mirrorlist: raw.mirrorlist,
            gpgkey: raw.gpgkey,
            // Kept as written; `validate` checks and normalises them.
            gpgkey_fingerprints: raw.gpgkey_fingerprints,
            gpgcheck: raw.gpgcheck.unwrap_or(true),
            repo_gpgcheck: raw.repo_gpgcheck.unwrap_or(false),
            unverified: raw.gpgcheck == Some(false) && raw.repo_gpgcheck == Some(false),
            priority: raw.priority,
        }
    }
}

/// A fingerprint as distributions print it (`6341 AB27 ...`, any case) in
/// the form keyrings report it: upper-case hex without spaces. `None` if
/// it is not 40 (v4 key) or 64 (v5/v6 key) hex digits.
pub fn normalize_fingerprint(text: &str) -> Option<String> {
    let hex: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let ok = matches!(hex.len(), 40 | 64) && hex.chars().all(|c| c.is_ascii_hexdigit());
    ok.then(|| hex.to_ascii_uppercase())
}

impl Source {
    pub fn deb(&self) -> Option<&DebSource> {
        match self {
            Source::Deb(d) => Some(d),
            Source::Rpm(_) => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Source::Deb(_) => "deb",
            Source::Rpm(_) => "rpm",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Packages {
    /// Debian only; default `minbase`.
    #[serde(default)]
    pub base: Option<BaseSet>,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Post {
    /// Shell commands run inside the finished tree (`/bin/sh -c`).
    #[serde(default)]
    pub commands: Vec<String>,
    /// More paths to remove before commit because they differ from build to
    /// build (added to the built-in list; `dir/prefix*` matches a prefix).
    #[serde(default)]
    pub volatile: Vec<String>,
}

fn default_arch() -> String {
    "amd64".into()
}
fn default_components() -> Vec<String> {
    vec!["main".into()]
}
fn default_priority() -> u32 {
    99
}
fn yes() -> bool {
    true
}

impl Recipe {
    /// Parse recipe text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Recipe, RecipeError> {
        let mut r: Recipe = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            RecipeError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                message: explain(e.message()),
            }
        })?;
        r.path = path.to_path_buf();
        r.text = text.to_string();
        r.validate()?;
        if let Source::Rpm(src) = &mut r.source {
            for repo in &mut src.repos {
                for f in &mut repo.gpgkey_fingerprints {
                    if let Some(n) = normalize_fingerprint(f) {
                        *f = n;
                    }
                }
            }
        }
        Ok(r)
    }

    /// Read a recipe file.
    pub fn load(path: &Path) -> Result<Recipe, RecipeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RecipeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Recipe::parse(&text, path)
    }

    /// `NAME` finds `recipes/NAME.toml` in `recipe_dir`; anything with a `/`
    /// or ending in `.toml` is a path.
    pub fn find(name_or_path: &str, recipe_dir: &Path) -> Result<Recipe, RecipeError> {
        if name_or_path.contains('/') || name_or_path.ends_with(".toml") {
            return Recipe::load(Path::new(name_or_path));
        }
        let path = recipe_dir.join(format!("{name_or_path}.toml"));
        if path.is_file() {
            return Recipe::load(&path);
        }
        Err(RecipeError::NotFound {
            name: name_or_path.to_string(),
            looked: path.display().to_string(),
            known: known_recipes(recipe_dir).join(", "),
        })
    }

    fn validate(&self) -> Result<(), RecipeError> {
        let bad = |message: String| RecipeError::Invalid {
            path: self.path.clone(),
            message,
        };
        if !valid_name(&self.name) {
            return Err(bad(format!(
                "name {:?}: use letters, digits, '.', '_' and '-' only (like \"debian-12\")",
                self.name
            )));
        }
        if !valid_name(&self.architecture) {
            return Err(bad(format!(
                "architecture {:?} is not a Debian architecture name (like \"amd64\")",
                self.architecture
            )));
        }
        let url_ok = |u: &str| {
            u.starts_with("http://") || u.starts_with("https://") || u.starts_with("file:///")
        };
        match &self.source {
            Source::Deb(d) => {
                if let Some(m) = &d.mirror {
                    if !url_ok(m) {
                        return Err(bad(format!(
                            "source.mirror {m:?}: must be an http://, https:// or file:/// URL"
                        )));
                    }
                }
                if d.suite.is_empty() || d.suite.contains('/') {
                    return Err(bad(format!(
                        "source.suite {:?}: give a suite or codename like \"bookworm\"",
                        d.suite
                    )));
                }
                if d.components.is_empty() {
                    return Err(bad(
                        "source.components is empty: list at least \"main\"".into()
                    ));
                }
            }
            Source::Rpm(r) => {
                if r.repos.is_empty() {
                    return Err(bad(
                        "source: no [[source.repo]]: add at least one repository".into(),
                    ));
                }
                for repo in &r.repos {
                    let url = match (&repo.baseurl, &repo.mirrorlist) {
                        (Some(u), None) | (None, Some(u)) => u,
                        (Some(_), Some(_)) => {
                            return Err(bad(format!(
                                "repo {:?}: give baseurl or mirrorlist, not both",
                                repo.name
                            )))
                        }
                        (None, None) => {
                            return Err(bad(format!(
                                "repo {:?}: needs a baseurl (or a mirrorlist)",
                                repo.name
                            )))
                        }
                    };
                    if !url_ok(url) {
                        return Err(bad(format!(
                            "repo {:?}: {url:?} must be an http://, https:// or file:/// URL",
                            repo.name
                        )));
                    }
                    if (repo.gpgcheck || repo.repo_gpgcheck) && repo.gpgkey.is_empty() {
                        return Err(bad(format!(
                            "repo {:?}: gpgcheck is on but no gpgkey is given; add the distribution's key, or set both gpgcheck = false and repo_gpgcheck = false to build from it unverified",
                            repo.name
                        )));
                    }
                    check_key_pins(repo).map_err(bad)?;
                }
                if self.packages.base.is_some() {
                    return Err(bad(
                        "packages.base applies to Debian recipes; list RPM packages in packages.include".into(),
                    ));
                }
            }
        }
        for group in self.layers.iter().flatten() {
            for dir in group {
                if !dir.starts_with('/') || dir == "/" || dir.split('/').any(|c| c == "..") {
                    return Err(bad(format!(
                        "layers: {dir:?} must be an absolute directory below / (like \"/usr\")"
                    )));
                }
            }
        }
        if self.base() == BaseSet::None && self.packages.include.is_empty() {
            return Err(bad(
                "packages: base = \"none\" and no include: nothing to install; set base = \"minbase\" or list packages in include".into(),
            ));
        }
        for p in &self.packages.include {
            // RPM package groups go by id or by name, and names have spaces.
            if p.starts_with('@') {
                if !matches!(self.source, Source::Rpm(_)) {
                    return Err(bad(format!(
                        "package {p:?}: package groups (@group) apply to RPM recipes; list Debian packages by name"
                    )));
                }
                if p.trim_start_matches(['@', '^']).trim().is_empty() || p.contains(',') {
                    return Err(bad(format!(
                        "package group {p:?}: one group per string, as @id or @name (@^id for an environment)"
                    )));
                }
            }
        }
        let names = self.packages.include.iter().filter(|p| !p.starts_with('@'));
        for p in names.chain(&self.packages.exclude) {
            if p.is_empty() || p.chars().any(|c| c.is_whitespace() || c == ',') {
                return Err(bad(format!(
                    "package name {p:?}: one package per string, without spaces or commas"
                )));
            }
        }
        Ok(())
    }
}

impl Recipe {
    /// The layer split the recipe asks for, or the store's default.
    pub fn layer_split(&self) -> crate::store::LayerSplit {
        match &self.layers {
            Some(groups) => crate::store::LayerSplit {
                groups: groups.clone(),
            },
            None => crate::store::LayerSplit::default(),
        }
    }

    /// The Debian base set (`minbase` unless the recipe says otherwise);
    /// RPM recipes start from nothing.
    pub fn base(&self) -> BaseSet {
        match &self.source {
            Source::Deb(_) => self.packages.base.unwrap_or(BaseSet::Minbase),
            Source::Rpm(_) => BaseSet::None,
        }
    }
}

/// A key fetched over plain HTTP can be swapped by whoever can swap the
/// packages, so it needs a pin; every pin must be a fingerprint.
fn check_key_pins(repo: &RpmRepoSpec) -> Result<(), String> {
    for f in &repo.gpgkey_fingerprints {
        if normalize_fingerprint(f).is_none() {
            return Err(format!(
                "repo {:?}: gpgkey_fingerprints entry {f:?} is not a key fingerprint; give the 40 hex digits the distribution publishes (spaces allowed), like \"6341 AB27 53D7 8A78 A7C2  7BB1 24C6 A8A7 F4A8 0EB5\"",
                repo.name
            ));
        }
    }
    if !repo.gpgkey_fingerprints.is_empty() && repo.gpgkey.is_empty() {
        return Err(format!(
            "repo {:?}: gpgkey_fingerprints pins keys, but no gpgkey is given; add the key file to gpgkey",
            repo.name
        ));
    }
    if repo.gpgkey_fingerprints.is_empty() {
        if let Some(url) = repo.gpgkey.iter().find(|k| k.starts_with("http://")) {
            return Err(format!(
                "repo {:?}: gpgkey {url:?} is fetched over plain HTTP, so whoever can alter the packages on the way can alter the key too; pin it with gpgkey_fingerprints = [\"...\"] (the fingerprint the distribution publishes), or use an https:// URL or a local key file",
                repo.name
            ));
        }
    }
    Ok(())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !s.starts_with('.')
}

/// Recipe names (file stems) in `dir`, sorted.
pub fn known_recipes(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "toml").then(|| p.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    v.sort();
    v
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// toml's messages say what is wrong; add what to do for the common cases.
fn explain(msg: &str) -> String {
    let msg = msg.trim().to_string();
    if msg.starts_with("unknown field") {
        format!("{msg}; remove it or fix its spelling")
    } else if msg.starts_with("missing field") {
        format!("{msg}; add it (see recipes/debian-12.toml for an example)")
    } else if msg.starts_with("unknown variant") {
        format!("{msg}; use one of the values listed")
    } else {
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "debian-12"
description = "Debian 12"
[source]
kind = "deb"
suite = "bookworm"
keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
[packages]
base = "minbase"
include = ["less"]
"#;

    /// The message of `text`'s refusal, read as the recipe file `file`.
    fn refusal(text: &str, file: &str) -> String {
        Recipe::parse(text, Path::new(file))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_defaults() {
        let r = Recipe::parse(GOOD, Path::new("r.toml")).unwrap();
        assert_eq!(r.architecture, "amd64");
        let d = r.source.deb().unwrap();
        assert_eq!(d.components, vec!["main"]);
        assert!(d.merged_usr);
        assert_eq!(r.packages.include, vec!["less"]);
        assert!(d.mirror.is_none());
        assert_eq!(r.base(), BaseSet::Minbase);
    }

    #[test]
    fn unknown_key_names_line_and_fix() {
        let text = GOOD.replace("include = [\"less\"]", "includes = [\"less\"]");
        let msg = refusal(&text, "r.toml");
        assert!(msg.starts_with("r.toml:10:"), "{msg}");
        assert!(
            msg.contains("includes") && msg.contains("remove it"),
            "{msg}"
        );
    }

    #[test]
    fn bad_values_are_refused() {
        let text = GOOD.replace("base = \"minbase\"", "base = \"tiny\"");
        let msg = refusal(&text, "r.toml");
        assert!(msg.contains("r.toml:9:") && msg.contains("tiny"), "{msg}");
        let text = GOOD.replace("kind = \"deb\"", "kind = \"deb\"\nmirror = \"ftp://x\"");
        let msg = refusal(&text, "r.toml");
        assert!(msg.contains("source.mirror"), "{msg}");
        let text = GOOD.replace("include = [\"less\"]", "include = [\"less vim\"]");
        assert!(Recipe::parse(&text, Path::new("r.toml")).is_err());
    }

    #[test]
    fn package_groups_are_for_rpm_recipes() {
        let text = GOOD.replace("include = [\"less\"]", "include = [\"@core\"]");
        let msg = refusal(&text, "r.toml");
        assert!(msg.contains("@core") && msg.contains("RPM"), "{msg}");
        let rpm = |include: &str| {
            format!(
                "name = \"c\"\narchitecture = \"x86_64\"\n[source]\nkind = \"rpm\"\n[[source.repo]]\nname = \"os\"\nbaseurl = \"http://example.invalid/\"\ngpgcheck = false\nrepo_gpgcheck = false\n[packages]\ninclude = [{include}]\n"
            )
        };
        let r = Recipe::parse(
            &rpm(r#""@Minimal Install", "@^server", "bash""#),
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(r.packages.include[0], "@Minimal Install");
        for bad in [r#""@""#, r#""@a,b""#, r#""bash zsh""#] {
            assert!(
                Recipe::parse(&rpm(bad), Path::new("c.toml")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_source_key_is_named() {
        let text = GOOD.replace("suite = \"bookworm\"", "suite = \"bookworm\"\nsuit = \"x\"");
        let msg = refusal(&text, "r.toml");
        assert!(msg.contains("suit") && msg.contains("r.toml:"), "{msg}");
    }

    #[test]
    fn rpm_recipes_parse_and_are_checked() {
        let text = r#"
name = "centos-7"
architecture = "x86_64"
[source]
kind = "rpm"
[[source.repo]]
name = "os"
baseurl = "http://example.invalid/7/os/$basearch/"
gpgkey = ["/etc/pki/key"]
[[source.repo]]
name = "updates"
mirrorlist = "http://example.invalid/list"
gpgcheck = false
priority = 1
[packages]
include = ["bash", "yum"]
"#;
        let r = Recipe::parse(text, Path::new("c.toml")).unwrap();
        let Source::Rpm(src) = &r.source else {
            panic!("not rpm")
        };
        assert_eq!(src.repos.len(), 2);
        assert!(src.repos[0].gpgcheck);
        assert_eq!(src.repos[1].priority, 1);
        assert_eq!(r.base(), BaseSet::None);
        let no_key = text.replace("gpgkey = [\"/etc/pki/key\"]\n", "");
        let msg = refusal(&no_key, "c.toml");
        assert!(msg.contains("gpgkey"), "{msg}");
        let with_base = text.replace("[packages]\n", "[packages]\nbase = \"minbase\"\n");
        assert!(Recipe::parse(&with_base, Path::new("c.toml")).is_err());
    }

    /// An RPM recipe with one repository whose entry ends with `repo`.
    fn rpm_repo(repo: &str) -> String {
        format!(
            "name = \"c\"\narchitecture = \"x86_64\"\n[source]\nkind = \"rpm\"\n[[source.repo]]\nname = \"os\"\nbaseurl = \"http://example.invalid/\"\n{repo}\n[packages]\ninclude = [\"bash\"]\n"
        )
    }

    fn only_repo(r: &Recipe) -> &RpmRepoSpec {
        let Source::Rpm(src) = &r.source else {
            panic!("not rpm")
        };
        &src.repos[0]
    }

    #[test]
    fn http_keys_need_a_pin_and_pins_are_fingerprints() {
        let msg = refusal(
            &rpm_repo("gpgkey = [\"http://example.invalid/KEY\"]"),
            "c.toml",
        );
        assert!(
            msg.contains("http://example.invalid/KEY") && msg.contains("gpgkey_fingerprints"),
            "{msg}"
        );
        let r = Recipe::parse(
            &rpm_repo("gpgkey = [\"http://example.invalid/KEY\"]\ngpgkey_fingerprints = [\"6341 ab27 53D7 8A78 A7C2  7BB1 24C6 A8A7 F4A8 0EB5\"]"),
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(
            only_repo(&r).gpgkey_fingerprints,
            ["6341AB2753D78A78A7C27BB124C6A8A7F4A80EB5"]
        );
        // HTTPS and local keys need none, but may carry one.
        for key in ["https://example.invalid/KEY", "/etc/pki/KEY"] {
            Recipe::parse(
                &rpm_repo(&format!("gpgkey = [{key:?}]")),
                Path::new("c.toml"),
            )
            .unwrap();
        }
        let msg = refusal(
            &rpm_repo("gpgkey = [\"/k\"]\ngpgkey_fingerprints = [\"F4A80EB5\"]"),
            "c.toml",
        );
        assert!(msg.contains("F4A80EB5") && msg.contains("40 hex"), "{msg}");
        let msg = refusal(
            &rpm_repo("gpgcheck = false\nrepo_gpgcheck = false\ngpgkey_fingerprints = [\"6341AB2753D78A78A7C27BB124C6A8A7F4A80EB5\"]"),
            "c.toml",
        );
        assert!(msg.contains("no gpgkey"), "{msg}");
    }

    #[test]
    fn unverified_only_when_both_checks_are_turned_off_in_writing() {
        let r = Recipe::parse(
            &rpm_repo("gpgcheck = false\nrepo_gpgcheck = false"),
            Path::new("c.toml"),
        )
        .unwrap();
        let repo = only_repo(&r);
        assert!(repo.unverified && !repo.gpgcheck && !repo.repo_gpgcheck);
        // repo_gpgcheck is off by default, but only saying so counts.
        let r = Recipe::parse(&rpm_repo("gpgcheck = false"), Path::new("c.toml")).unwrap();
        assert!(!only_repo(&r).unverified);
        let r = Recipe::parse(&rpm_repo("gpgkey = [\"/k\"]"), Path::new("c.toml")).unwrap();
        let repo = only_repo(&r);
        assert!(!repo.unverified && repo.gpgcheck && !repo.repo_gpgcheck);
        // A misspelt key is still named.
        let msg = refusal(&rpm_repo("gpgchek = false"), "c.toml");
        assert!(msg.contains("gpgchek"), "{msg}");
    }

    #[test]
    fn rpmdb_backend_is_read() {
        let text = rpm_repo("gpgcheck = false\nrepo_gpgcheck = false").replace(
            "kind = \"rpm\"\n",
            "kind = \"rpm\"\nrpmdb_backend = \"bdb\"\n",
        );
        let r = Recipe::parse(&text, Path::new("c.toml")).unwrap();
        let Source::Rpm(src) = &r.source else {
            panic!("not rpm")
        };
        assert_eq!(src.rpmdb_backend, Some(RpmDbBackend::Bdb));
        let msg = refusal(&text.replace("\"bdb\"", "\"berkeley\""), "c.toml");
        assert!(msg.contains("berkeley"), "{msg}");
    }

    #[test]
    fn layer_split_is_read_and_checked() {
        let text = format!("layers = [[\"/usr\"], [\"/opt\", \"/srv\"]]\n{GOOD}");
        let r = Recipe::parse(&text, Path::new("r.toml")).unwrap();
        assert_eq!(
            r.layer_split().groups,
            vec![vec!["/usr"], vec!["/opt", "/srv"]]
        );
        let r = Recipe::parse(GOOD, Path::new("r.toml")).unwrap();
        assert_eq!(r.layer_split(), crate::store::LayerSplit::default());
        let bad = format!("layers = [[\"usr\"]]\n{GOOD}");
        let msg = refusal(&bad, "r.toml");
        assert!(msg.contains("layers") && msg.contains("absolute"), "{msg}");
    }
}
