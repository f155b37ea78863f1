//! Creating a template: recipe → index → resolve → download → unpack →
//! configure → commit. The recipe's kind is read once, into a [`Plan`]
//! (`deb` or `rpm`); the stages they share (download, staging, the commit)
//! are here. Each stage gets plain values from the one before; the staging
//! tree is removed on every way out except a finished commit.

pub mod deb;
pub mod rpm;

use crate::configure::deb::ConfigureOptions;
use crate::fetch::{FetchItem, FetchSummary, PackageCache};
use crate::http::Http;
use crate::lock::{Lock, Snapshot};
use crate::progress::{Reporter, Stage};
use crate::recipe::{DebSource, Recipe, Source};
use crate::store::{LockedPackage, Store, TemplateMeta};
use crate::Error;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where a build keeps its state.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The template store (`ROOT/templates`).
    pub store: PathBuf,
    /// Package cache and exports (`ROOT/cache`).
    pub cache: PathBuf,
}

impl Paths {
    pub fn under(root: &Path) -> Paths {
        Paths {
            store: root.join("templates"),
            cache: root.join("cache"),
        }
    }

    pub fn package_cache(&self) -> PathBuf {
        self.cache.join("packages")
    }

    /// Verified Packages indexes, by the digest the signed Release gives.
    pub fn index_cache(&self) -> PathBuf {
        self.cache.join("indexes")
    }
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Overrides the recipe's mirror and the host's apt configuration.
    pub mirror: Option<String>,
    /// Parallel downloads.
    pub jobs: usize,
    /// The apt configuration to take the default mirror from (`/etc/apt`).
    pub etc_apt: PathBuf,
    /// Build exactly the recipe's lock file instead of resolving.
    pub locked: bool,
    /// Where verified Packages indexes are kept between builds; `build`
    /// uses its paths' when this is unset.
    pub index_cache: Option<PathBuf>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            mirror: None,
            jobs: 8,
            etc_apt: PathBuf::from("/etc/apt"),
            locked: false,
            index_cache: None,
        }
    }
}

/// What `vzpkg create` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildResult {
    pub name: String,
    pub template_id: String,
    pub mirror: String,
    pub packages: usize,
    /// The lock file written (or honoured).
    pub lock: PathBuf,
    /// Bytes of the package files the template was built from.
    pub package_bytes: u64,
    pub download: FetchSummary,
    /// Seconds spent in each stage.
    pub seconds: BTreeMap<&'static str, f64>,
    pub total_seconds: f64,
}

/// What a build will install, chosen once from the recipe's kind: the
/// verified index and the exact package set, in install order. Cheap next to
/// a build (no package is downloaded), which is what makes `rebuild
/// --if-changed` a no-op.
pub enum Plan {
    Deb(deb::DebPlan, DebSource),
    Rpm(rpm::RpmPlan),
}

impl Plan {
    /// Read and verify the index, then resolve the request (or take the lock).
    pub fn new(
        recipe: &Recipe,
        paths: &Paths,
        options: &BuildOptions,
        reporter: &dyn Reporter,
    ) -> Result<Plan, Error> {
        Ok(match &recipe.source {
            Source::Deb(src) => Plan::Deb(deb::plan(recipe, src, options, reporter)?, src.clone()),
            Source::Rpm(src) => Plan::Rpm(rpm::plan(recipe, src, paths, options, reporter)?),
        })
    }

    /// The package set as the lock file pins it.
    pub fn locked(&self) -> Vec<LockedPackage> {
        match self {
            Plan::Deb(p, _) => p.order.iter().map(crate::lock::locked).collect(),
            Plan::Rpm(p) => p.order.iter().map(rpm::locked).collect(),
        }
    }

    /// Download, unpack, configure and commit what the plan chose.
    pub fn build(
        self,
        recipe: &Recipe,
        paths: &Paths,
        options: &BuildOptions,
        started: Instant,
        reporter: &dyn Reporter,
    ) -> Result<BuildResult, Error> {
        match self {
            Plan::Deb(p, src) => {
                deb::build_plan(recipe, &src, paths, options, p, started, reporter)
            }
            Plan::Rpm(p) => rpm::build_plan(recipe, paths, options, p, reporter),
        }
    }
}

/// The snapshot id of the recipe's signed index (Debian's InRelease, every
/// RPM repository's repomd.xml) as the mirror serves it now.
pub fn snapshot_now(recipe: &Recipe, options: &BuildOptions) -> Result<String, Error> {
    match &recipe.source {
        Source::Deb(src) => deb::snapshot_now(recipe, src, options),
        Source::Rpm(src) => rpm::snapshot_now(recipe, src, options),
    }
}

pub fn build(
    recipe: &Recipe,
    paths: &Paths,
    options: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<BuildResult, Error> {
    let started = Instant::now();
    let mut options = options.clone();
    if let Source::Deb(_) = recipe.source {
        options
            .index_cache
            .get_or_insert_with(|| paths.index_cache());
    }
    Plan::new(recipe, paths, &options, reporter)?.build(recipe, paths, &options, started, reporter)
}

/// Seconds per stage, and when the whole build began.
struct Timings {
    started: Instant,
    seconds: BTreeMap<&'static str, f64>,
}

impl Timings {
    /// Run one stage; its time is recorded only if it succeeds.
    fn stage<T>(
        &mut self,
        stage: Stage,
        run: impl FnOnce() -> Result<T, Error>,
    ) -> Result<T, Error> {
        let t = Instant::now();
        let out = run()?;
        self.seconds.insert(stage.name(), t.elapsed().as_secs_f64());
        Ok(out)
    }
}

/// Fetch `items` through the package cache, timed as the download stage.
fn download(
    http: &Http,
    paths: &Paths,
    options: &BuildOptions,
    items: &[FetchItem],
    timings: &mut Timings,
    reporter: &dyn Reporter,
) -> Result<(Vec<PathBuf>, FetchSummary), Error> {
    timings.stage(Stage::Download, || {
        let cache = PackageCache::open(&paths.package_cache())?;
        Ok(crate::fetch::fetch_all(
            http,
            &cache,
            items,
            options.jobs,
            reporter,
        )?)
    })
}

/// The store and a fresh staging tree in it.
fn open_staging(paths: &Paths) -> Result<(Store, Staging), Error> {
    let store = Store::open(&paths.store)?;
    let staging = Staging(store.staging_dir()?);
    Ok((store, staging))
}

/// `SOURCE_DATE_EPOCH`, else the newest file of the unpacked tree: taken
/// before vzpkg writes anything of its own into the tree.
fn tree_epoch(root: &Path) -> Result<i64, Error> {
    Ok(match crate::normalize::epoch_from_env()? {
        Some(e) => e,
        None => crate::normalize::newest_file(root)?,
    })
}

/// What a pipeline hands to [`finish`] once its tree is unpacked.
struct Finish {
    epoch: i64,
    /// Paths `normalize` clears besides its own.
    volatile: Vec<String>,
    /// The template's facts (mirror, index snapshot, ...).
    facts: BTreeMap<String, String>,
    /// In install order.
    packages: Vec<LockedPackage>,
    index: Snapshot,
    write_lock: bool,
    /// Reported as the build's mirror.
    mirror: String,
    package_bytes: u64,
    download: FetchSummary,
    /// Repositories used without any check, by the recipe's explicit
    /// request; recorded in the lock.
    unverified: Vec<String>,
}

/// The stages after unpacking, the same for both formats: `configure` and
/// normalise (one stage), commit, then the lock and the report.
fn finish(
    recipe: &Recipe,
    store: &Store,
    staging: &Staging,
    mut timings: Timings,
    done: Finish,
    configure: impl FnOnce(&Path, &ConfigureOptions) -> Result<(), Error>,
    reporter: &dyn Reporter,
) -> Result<BuildResult, Error> {
    let root = staging.0.as_path();
    timings.stage(Stage::Configure, || {
        let options = ConfigureOptions {
            post_commands: recipe.post.commands.clone(),
            hostname: recipe.name.clone(),
            source_date_epoch: Some(done.epoch),
        };
        configure(root, &options)?;
        Ok(crate::normalize::normalize(
            root,
            done.epoch,
            &done.volatile,
        )?)
    })?;
    crate::cancel::check()?;

    let packages = done.packages;
    let template_id = timings.stage(Stage::Commit, || {
        reporter.stage_start(Stage::Commit, 1);
        let meta = TemplateMeta {
            name: recipe.name.clone(),
            recipe: recipe.text.clone(),
            packages: packages.clone(),
            facts: done.facts,
        };
        let id = store.commit_split(root, &meta, &recipe.layer_split())?;
        reporter.stage_end(Stage::Commit);
        Ok(id)
    })?;

    // The lock follows the store: written only once the template exists.
    let lock_file = crate::lock::lock_path(&recipe.path);
    let count = packages.len();
    let lock = Lock {
        recipe: recipe.name.clone(),
        architecture: recipe.architecture.clone(),
        unverified: done.unverified,
        index: done.index,
        packages,
    };
    if done.write_lock && Lock::read(&lock_file).ok().flatten().as_ref() != Some(&lock) {
        lock.write(&lock_file)?;
    }

    Ok(BuildResult {
        name: recipe.name.clone(),
        template_id,
        mirror: done.mirror,
        packages: count,
        lock: lock_file,
        package_bytes: done.package_bytes,
        download: done.download,
        seconds: timings.seconds,
        total_seconds: timings.started.elapsed().as_secs_f64(),
    })
}

/// Removes the staging tree unless the commit consumed it.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
