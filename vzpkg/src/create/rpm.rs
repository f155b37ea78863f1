//! The RPM half of a build: yum repositories (priorities, keys) → resolve →
//! download → signature check → unpack → scriptlets with the tree's own rpm
//! (or, for a package set without rpm, the host's rpm registering it) →
//! commit. The stages after unpacking are the Debian ones.

use super::{BuildOptions, BuildResult, Finish, Paths, Timings};
use crate::configure::rpm::HostRpm;
use crate::fetch::FetchItem;
use crate::http::Http;
use crate::lock::{Lock, Snapshot};
use crate::progress::{Reporter, Stage};
use crate::recipe::{Recipe, RpmDbBackend, RpmRepoSpec, RpmSource};
use crate::resolve::rpm::RpmRequest;
use crate::source::comps::Comps;
use crate::source::rpm::{rpmvercmp, RpmIndex, RpmPackage, RpmRepo, RpmSourceError};
use crate::source::rpm_keys::{repo_keyring, RepoKeys};
use crate::store::LockedPackage;
use crate::unpack::rpm::{Owners, RpmUnpacked};
use crate::Error;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

/// One repository as the build uses it.
struct Repo {
    spec: RpmRepoSpec,
    base_url: String,
    keyring: Option<PathBuf>,
    index: RpmIndex,
}

/// What an RPM build will install: the verified repositories and the exact
/// package set, in install order. Cheap next to a build (no package is
/// downloaded), which is what makes `rebuild --if-changed` a no-op.
pub struct RpmPlan {
    http: Http,
    repos: Vec<Repo>,
    pub order: Vec<RpmPackage>,
    /// Registers the packages when the set has no rpm of its own.
    host_rpm: Option<HostRpm>,
    timings: Timings,
}

pub fn build(
    recipe: &Recipe,
    src: &RpmSource,
    paths: &Paths,
    options: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<BuildResult, Error> {
    let plan = plan(recipe, src, paths, options, reporter)?;
    build_plan(recipe, paths, options, plan, reporter)
}

/// Read and verify every repository, then resolve the request (or take the
/// lock: exactly its packages, from the repositories as priorities rank them).
pub fn plan(
    recipe: &Recipe,
    src: &RpmSource,
    paths: &Paths,
    options: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<RpmPlan, Error> {
    let mut timings = Timings {
        started: Instant::now(),
        seconds: BTreeMap::new(),
    };
    let http = Http::new()?;
    let repos = timings.stage(Stage::Index, || {
        let mut repos = Vec::new();
        for spec in &src.repos {
            let base_url = base_url(&http, spec, &recipe.architecture, options)?;
            let keyring = keyring(&http, spec, &paths.cache.join("keys"))?;
            warn_if_unverified(spec, &base_url, reporter);
            let index = crate::source::rpm::load_repo(
                &http,
                &RpmRepo {
                    base_url: base_url.clone(),
                    keyring: if spec.repo_gpgcheck {
                        keyring.clone()
                    } else {
                        None
                    },
                    gpgcheck: spec.gpgcheck,
                    unverified: spec.unverified,
                },
                SystemTime::now(),
                reporter,
            )?;
            repos.push(Repo {
                spec: spec.clone(),
                base_url,
                keyring,
                index,
            });
        }
        Ok(repos)
    })?;
    crate::cancel::check()?;

    let order = timings.stage(Stage::Resolve, || {
        reporter.stage_start(Stage::Resolve, 1);
        let index: Vec<RpmPackage> = by_priority(&repos)
            .into_iter()
            .map(|(_, p)| p.clone())
            .collect();
        if options.locked {
            let order = Lock::required(&recipe.path)?.select_by(&index, locked)?;
            reporter.advance(Stage::Resolve, 1, &format!("{} packages", order.len()));
            reporter.stage_end(Stage::Resolve);
            return Ok(order);
        }
        let install = expand_groups(&http, &repos, recipe, &index, reporter)?;
        let request = RpmRequest {
            install,
            exclude: recipe.packages.exclude.clone(),
            arch: recipe.architecture.clone(),
        };
        let order = match crate::resolve::rpm::resolve(&index, &request) {
            Ok(o) => o,
            // primary.xml lists only some files; a file requirement may need
            // the full lists, which are large, so they are read only now.
            Err(first) => {
                let mut lists = Vec::new();
                for r in repos.iter().filter(|r| r.index.filelists.is_some()) {
                    lists.extend(crate::source::rpm::load_filelists(&http, &r.index)?);
                }
                if lists.is_empty() {
                    return Err(first.into());
                }
                crate::resolve::rpm::resolve_with_filelists(&index, &request, &lists)?
            }
        };
        reporter.advance(Stage::Resolve, 1, &format!("{} packages", order.len()));
        reporter.stage_end(Stage::Resolve);
        Ok(order)
    })?;
    crate::cancel::check()?;
    let host_rpm = host_rpm_if_needed(src, &repos, &order, reporter)?;
    Ok(RpmPlan {
        http,
        repos,
        order,
        host_rpm,
        timings,
    })
}

/// Say, on every build, that a repository is used without any check.
fn warn_if_unverified(spec: &RpmRepoSpec, base_url: &str, reporter: &dyn Reporter) {
    if spec.unverified {
        reporter.warn(&format!(
            "repository {} ({base_url}) is used UNVERIFIED: its recipe entry sets gpgcheck = false and repo_gpgcheck = false, so nothing it serves is checked against a key; the template is marked unverified",
            spec.name
        ));
    }
}

/// The names of the repositories the recipe uses unverified.
fn unverified_repos(repos: &[Repo]) -> Vec<String> {
    repos
        .iter()
        .filter(|r| r.spec.unverified)
        .map(|r| r.spec.name.clone())
        .collect()
}

/// Where an rpm program lands in the tree (primary.xml lists `*bin/*`).
const RPM_PROGRAMS: [&str; 2] = ["/usr/bin/rpm", "/bin/rpm"];

/// For a package set without rpm, the host's rpm, checked able to write
/// the database format the target expects; decided before anything is
/// downloaded.
fn host_rpm_if_needed(
    src: &RpmSource,
    repos: &[Repo],
    order: &[RpmPackage],
    reporter: &dyn Reporter,
) -> Result<Option<HostRpm>, Error> {
    let has_rpm = order
        .iter()
        .any(|p| p.files.iter().any(|f| RPM_PROGRAMS.contains(&f.as_str())));
    if has_rpm {
        return Ok(None);
    }
    let offered: Vec<&RpmPackage> = by_priority(repos).into_iter().map(|(_, p)| p).collect();
    let (backend, why) = rpmdb_backend_for(src.rpmdb_backend, &offered);
    reporter.message(&format!(
        "the package set has no rpm: the host's rpm will register the packages as a {} database ({why})",
        backend.name()
    ));
    Ok(Some(HostRpm::find(backend, &why)?))
}

/// The database format the target's rpm reads, and how that was told: the
/// recipe's `rpmdb_backend`, else the version of the newest `rpm` package
/// the repositories offer (sqlite from rpm 4.16 on, as Enterprise Linux 9
/// and Fedora 33 use; Berkeley DB before, as CentOS 4 to 8 use), else
/// sqlite, what current rpm writes.
pub fn rpmdb_backend_for(
    from_recipe: Option<RpmDbBackend>,
    offered: &[&RpmPackage],
) -> (RpmDbBackend, String) {
    if let Some(b) = from_recipe {
        return (b, "source.rpmdb_backend in the recipe".into());
    }
    let newest = offered
        .iter()
        .filter(|p| p.name == "rpm")
        .max_by(|a, b| a.cmp_evr(b));
    match newest {
        Some(p) if rpmvercmp(&p.version, "4.16") == std::cmp::Ordering::Less => (
            RpmDbBackend::Bdb,
            format!("the repositories' rpm is {}, older than 4.16", p.evr()),
        ),
        Some(p) => (
            RpmDbBackend::Sqlite,
            format!("the repositories' rpm is {}, 4.16 or newer", p.evr()),
        ),
        None => (
            RpmDbBackend::Sqlite,
            "the repositories offer no rpm package to tell; set source.rpmdb_backend to choose"
                .into(),
        ),
    }
}

/// Download, check, unpack, configure and commit what `plan` chose.
pub fn build_plan(
    recipe: &Recipe,
    paths: &Paths,
    options: &BuildOptions,
    plan: RpmPlan,
    reporter: &dyn Reporter,
) -> Result<BuildResult, Error> {
    let RpmPlan {
        http,
        repos,
        order,
        host_rpm,
        mut timings,
    } = plan;
    let candidates = by_priority(&repos);

    // Where each chosen package comes from.
    let origin: HashMap<(&str, String, &str, &str), usize> = candidates
        .iter()
        .map(|(r, p)| {
            (
                (
                    p.name.as_str(),
                    p.evr(),
                    p.arch.as_str(),
                    p.checksum.hex.as_str(),
                ),
                *r,
            )
        })
        .collect();
    let repo_of = |p: &RpmPackage| {
        origin
            .get(&(
                p.name.as_str(),
                p.evr(),
                p.arch.as_str(),
                p.checksum.hex.as_str(),
            ))
            .copied()
            .unwrap_or(0)
    };

    let items: Vec<FetchItem> = order
        .iter()
        .map(|p| {
            let base = p
                .location_base
                .clone()
                .unwrap_or_else(|| repos[repo_of(p)].base_url.clone());
            FetchItem {
                name: nevra(p),
                url: format!("{}/{}", base.trim_end_matches('/'), p.location_href),
                digest: p.checksum.hex.clone(),
                algo: p.checksum.kind,
                size: p.size,
            }
        })
        .collect();
    let (files, download) = super::download(&http, paths, options, &items, &mut timings, reporter)?;

    // Header signatures, where the repository asks for them.
    order
        .par_iter()
        .zip(files.par_iter())
        .try_for_each(|(p, file)| {
            let repo = &repos[repo_of(p)];
            match (&repo.keyring, repo.spec.gpgcheck) {
                (Some(keys), true) => crate::unpack::rpm::verify_signature(file, keys),
                _ => Ok(()),
            }
        })?;
    crate::cancel::check()?;

    let (store, staging) = super::open_staging(paths)?;
    let (unpacked, epoch) = timings.stage(Stage::Unpack, || {
        let unpacked = unpack_all(&staging.0, &order, &files, reporter)?;
        Ok((unpacked, super::tree_epoch(&staging.0)?))
    })?;
    crate::cancel::check()?;

    let snapshot = snapshot(&repos);
    let mut facts = BTreeMap::new();
    for r in &repos {
        facts.insert(format!("repo.{}", r.spec.name), r.base_url.clone());
    }
    facts.insert("index".to_string(), snapshot.clone());
    let unverified = unverified_repos(&repos);
    if !unverified.is_empty() {
        facts.insert(
            crate::store::UNVERIFIED_FACT.to_string(),
            unverified.join(","),
        );
    }
    let done = Finish {
        unverified,
        epoch,
        volatile: rpm_volatile(&recipe.post.volatile),
        facts,
        packages: order.iter().map(locked).collect(),
        index: Snapshot {
            suite: repos
                .iter()
                .map(|r| r.spec.name.as_str())
                .collect::<Vec<_>>()
                .join("+"),
            inrelease_sha256: snapshot,
            date: None,
        },
        // Under `--locked` the lock is the input, not an output.
        write_lock: !options.locked,
        mirror: repos
            .first()
            .map(|r| r.base_url.clone())
            .unwrap_or_default(),
        package_bytes: order.iter().map(|p| p.size).sum(),
        download,
    };
    let configure = move |root: &Path, opts: &_| {
        let pairs: Vec<(RpmUnpacked, PathBuf)> = unpacked.into_iter().zip(files).collect();
        crate::configure::rpm::configure(root, &pairs, opts, host_rpm.as_ref(), reporter)?;
        Ok(())
    };
    super::finish(recipe, &store, &staging, timings, done, configure, reporter)
}

/// The recipe's install list with its `@group` entries replaced by their
/// members, from the package groups of every repository.
fn expand_groups(
    http: &Http,
    repos: &[Repo],
    recipe: &Recipe,
    index: &[RpmPackage],
    reporter: &dyn Reporter,
) -> Result<Vec<String>, Error> {
    let include = &recipe.packages.include;
    if !include.iter().any(|e| e.trim().starts_with('@')) {
        return Ok(include.clone());
    }
    let mut comps: Option<Comps> = None;
    for r in repos {
        if let Some(c) = crate::source::comps::load_comps(http, &r.index)? {
            comps.get_or_insert_with(Comps::default).merge(c);
        }
    }
    let (install, skipped) = crate::resolve::rpm::expand_groups(
        include,
        &recipe.packages.exclude,
        comps.as_ref(),
        index,
    )?;
    if !skipped.is_empty() {
        reporter.warn(&format!(
            "package groups: left out {} member(s) the repositories lack or the recipe excludes: {}",
            skipped.len(),
            skipped.join(", ")
        ));
    }
    Ok(install)
}

/// A package as the lock file pins it: the repository's checksum of the
/// file (whatever kind repomd uses) stands in the `sha256` field.
pub fn locked(p: &RpmPackage) -> LockedPackage {
    LockedPackage {
        name: p.name.clone(),
        version: p.evr(),
        architecture: p.arch.clone(),
        sha256: p.checksum.hex.clone(),
    }
}

/// The snapshot id of the recipe's repositories as they are now, from
/// their `repomd.xml` alone. Equal to the lock's, it means byte for byte the
/// metadata that was verified and resolved then, so nothing below changed.
pub fn snapshot_now(
    recipe: &Recipe,
    src: &RpmSource,
    options: &BuildOptions,
) -> Result<String, Error> {
    let http = Http::new()?;
    let mut digests = Vec::new();
    for spec in &src.repos {
        let base = base_url(&http, spec, &recipe.architecture, options)?;
        digests.push(crate::source::rpm::repomd_sha256(&http, &base)?);
    }
    Ok(fold(digests.iter().map(String::as_str)))
}

/// `name-[epoch:]version-release.arch`, as rpm names a package.
fn nevra(p: &RpmPackage) -> String {
    format!("{}-{}.{}", p.name, p.evr(), p.arch)
}

/// The repository URL: `baseurl`, or the first entry of `mirrorlist`, with
/// `$basearch` filled in. `--mirror` replaces the first repository's URL.
fn base_url(
    http: &Http,
    spec: &RpmRepoSpec,
    arch: &str,
    options: &BuildOptions,
) -> Result<String, Error> {
    let raw = match (&spec.baseurl, &spec.mirrorlist) {
        (Some(u), _) => u.clone(),
        (None, Some(list)) => {
            let body = http.get(list)?;
            String::from_utf8_lossy(&body)
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("http://") || l.starts_with("https://"))
                .map(String::from)
                .ok_or_else(|| Error::NoMirror {
                    etc_apt: PathBuf::from(list),
                })?
        }
        (None, None) => String::new(),
    };
    let url = match &options.mirror {
        // A mirror override stands for the whole tree of repositories: keep
        // the path below the host.
        Some(m) => rebase(&raw, m),
        None => raw,
    };
    Ok(url
        .replace("$basearch", basearch(arch))
        .replace("$arch", arch)
        .trim_end_matches('/')
        .to_string())
}

/// `http://old.host/a/b/` with `http://new/x` → `http://new/x/a/b/`.
fn rebase(url: &str, mirror: &str) -> String {
    let path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(_, p)| p)
        .unwrap_or("");
    format!("{}/{}", mirror.trim_end_matches('/'), path)
}

fn basearch(arch: &str) -> &str {
    match arch {
        "i386" | "i486" | "i586" | "i686" => "i386",
        other => other,
    }
}

/// The repository's keys, checked against their pinned fingerprints, in
/// one keyring file under `dir`, named by content.
fn keyring(http: &Http, spec: &RpmRepoSpec, dir: &Path) -> Result<Option<PathBuf>, Error> {
    let keys = RepoKeys {
        repo: &spec.name,
        keys: &spec.gpgkey,
        pins: &spec.gpgkey_fingerprints,
    };
    Ok(repo_keyring(http, keys, dir).map_err(RpmSourceError::from)?)
}

/// Candidates with their repository, yum-priorities style: a name offered
/// by a repository with a lower priority number hides it in the others.
fn by_priority(repos: &[Repo]) -> Vec<(usize, &RpmPackage)> {
    let mut best: HashMap<&str, u32> = HashMap::new();
    for r in repos {
        for p in &r.index.packages {
            let e = best.entry(p.name.as_str()).or_insert(r.spec.priority);
            *e = (*e).min(r.spec.priority);
        }
    }
    repos
        .iter()
        .enumerate()
        .flat_map(|(i, r)| r.index.packages.iter().map(move |p| (i, r, p)))
        .filter(|(_, r, p)| best.get(p.name.as_str()) == Some(&r.spec.priority))
        .map(|(i, _, p)| (i, p))
        .collect()
}

/// Every repository's `repomd.xml` digest folded into one snapshot id.
fn snapshot(repos: &[Repo]) -> String {
    fold(repos.iter().map(|r| r.index.repomd_sha256.as_str()))
}

fn fold<'a>(digests: impl Iterator<Item = &'a str>) -> String {
    let mut h = Sha256::new();
    for d in digests {
        h.update(d.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Unpack in parallel; the package holding `/etc/passwd` (`setup`) goes
/// first so file owners named in headers resolve to the tree's own ids.
fn unpack_all(
    root: &Path,
    order: &[RpmPackage],
    files: &[PathBuf],
    reporter: &dyn Reporter,
) -> Result<Vec<RpmUnpacked>, Error> {
    let tree = crate::unpack::tree::Tree::open(root).map_err(|source| Error::Staging {
        path: root.to_path_buf(),
        source: std::io::Error::other(source.to_string()),
    })?;
    reporter.stage_start(Stage::Unpack, order.len() as u64);
    let first: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|(_, p)| p.files.iter().any(|f| f == "/etc/passwd"))
        .map(|(i, _)| i)
        .collect();
    let mut out: Vec<Option<RpmUnpacked>> = vec![None; order.len()];
    for &i in &first {
        out[i] = Some(crate::unpack::rpm::unpack_rpm_into(
            &tree,
            &Owners::load(root),
            &files[i],
        )?);
        reporter.advance(Stage::Unpack, 1, &order[i].name);
    }
    let owners = Owners::load(root);
    let rest: Vec<(usize, RpmUnpacked)> = (0..order.len())
        .into_par_iter()
        .filter(|i| !first.contains(i))
        .map(|i| {
            crate::cancel::check()?;
            let u = crate::unpack::rpm::unpack_rpm_into(&tree, &owners, &files[i])?;
            reporter.advance(Stage::Unpack, 1, &order[i].name);
            Ok((i, u))
        })
        .collect::<Result<_, Error>>()?;
    for (i, u) in rest {
        out[i] = Some(u);
    }
    reporter.stage_end(Stage::Unpack);
    Ok(out.into_iter().flatten().collect())
}

/// What an RPM tree keeps only because of when and where it was built.
fn rpm_volatile(extra: &[String]) -> Vec<String> {
    let mut v: Vec<String> = [
        "var/lib/rpm/__db.*",
        "var/lib/rpm/.rpm.lock",
        "var/lib/rpm/.dbenv.lock",
        "var/cache/yum/*",
        "var/cache/dnf/*",
        "var/log/yum.log",
        "var/log/dnf.log",
        "var/log/dnf.librepo.log",
        "var/log/dnf.rpm.log",
        "var/log/hawkey.log",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().cloned());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::rpm::{Checksum, ChecksumKind};

    fn package(name: &str, version: &str) -> RpmPackage {
        RpmPackage {
            name: name.into(),
            epoch: 0,
            version: version.into(),
            release: "1".into(),
            arch: "x86_64".into(),
            location_href: format!("{name}.rpm"),
            location_base: None,
            size: 1,
            installed_size: 1,
            checksum: Checksum {
                kind: ChecksumKind::Sha256,
                hex: "00".into(),
            },
            provides: vec![],
            requires: vec![],
            conflicts: vec![],
            obsoletes: vec![],
            files: vec![],
        }
    }

    #[test]
    fn the_target_database_follows_the_offered_rpm() {
        let el9 = package("rpm", "4.16.1.3");
        let el7 = package("rpm", "4.11.3");
        let other = package("rpmlint", "1.0");
        let (b, why) = rpmdb_backend_for(None, &[&other, &el9]);
        assert_eq!(b, RpmDbBackend::Sqlite);
        assert!(why.contains("4.16.1.3"), "{why}");
        let (b, why) = rpmdb_backend_for(None, &[&el7]);
        assert_eq!(b, RpmDbBackend::Bdb);
        assert!(why.contains("4.11.3") && why.contains("older"), "{why}");
        // The newest offered counts.
        assert_eq!(
            rpmdb_backend_for(None, &[&el7, &el9]).0,
            RpmDbBackend::Sqlite
        );
        // Nothing to tell by: sqlite, and the message says how to choose.
        let (b, why) = rpmdb_backend_for(None, &[&other]);
        assert_eq!(b, RpmDbBackend::Sqlite);
        assert!(why.contains("rpmdb_backend"), "{why}");
        // The recipe overrides.
        let (b, why) = rpmdb_backend_for(Some(RpmDbBackend::Ndb), &[&el9]);
        assert_eq!(b, RpmDbBackend::Ndb);
        assert!(why.contains("recipe"), "{why}");
    }
}
