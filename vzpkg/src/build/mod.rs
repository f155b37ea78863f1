//! The build pipeline: recipe → index → resolve → download → unpack →
//! configure → commit. Each stage gets plain values from the one before; the
//! staging tree is removed on every way out except a finished commit.

pub mod rpm;

use crate::configure::deb::ConfigureOptions;
use crate::fetch::{FetchItem, FetchSummary, PackageCache};
use crate::http::Http;
use crate::lock::{Lock, Snapshot};
use crate::progress::{Reporter, Stage};
use crate::recipe::{DebSource, Recipe};
use crate::resolve::deb::DebRequest;
use crate::source::deb::DebRepo;
use crate::store::{LockedPackage, Store, TemplateMeta};
use crate::Error;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

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

/// Pick the mirror: `--mirror`, else the recipe's, else the host's apt sources.
pub fn choose_mirror(recipe: &Recipe, options: &BuildOptions) -> Result<String, Error> {
    if let Some(m) = options
        .mirror
        .as_ref()
        .or(deb_source(recipe)?.mirror.as_ref())
    {
        return Ok(m.trim_end_matches('/').to_string());
    }
    let sources = crate::source::apt::host_sources(&options.etc_apt)?;
    crate::source::apt::pick_mirror(&sources, &deb_source(recipe)?.suite)
        .map(|m| m.trim_end_matches('/').to_string())
        .ok_or_else(|| Error::NoMirror {
            etc_apt: options.etc_apt.clone(),
        })
}

/// What a build will install: the verified index it read and the exact
/// package set, in install order. Cheap next to a build (no package is
/// downloaded), which is what makes `rebuild --if-changed` a no-op.
#[derive(Debug, Clone)]
pub struct Plan {
    pub mirror: String,
    pub index: crate::source::deb::DebIndex,
    pub order: Vec<crate::package::DebPackage>,
    pub seconds: BTreeMap<&'static str, f64>,
}

/// Read and verify the index, then resolve the request (or take the lock).
pub fn plan(
    recipe: &Recipe,
    options: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<Plan, Error> {
    let mut seconds = BTreeMap::new();
    let mirror = choose_mirror(recipe, options)?;
    let http = Http::new()?;

    let t = Instant::now();
    let repo = deb_repo(recipe, &mirror)?;
    let cache = options
        .index_cache
        .as_deref()
        .map(crate::source::index_cache::IndexCache::new);
    let index = crate::source::deb::load_index_cached(
        &http,
        &repo,
        SystemTime::now(),
        cache.as_ref(),
        reporter,
    )?;
    seconds.insert(Stage::Index.name(), t.elapsed().as_secs_f64());
    crate::cancel::check()?;

    let t = Instant::now();
    reporter.stage_start(Stage::Resolve, 1);
    let request = DebRequest {
        base: recipe.base(),
        include: recipe.packages.include.clone(),
        exclude: recipe.packages.exclude.clone(),
        architecture: recipe.architecture.clone(),
    };
    let order = if options.locked {
        Lock::required(&recipe.path)?.select(&index.packages)?
    } else {
        crate::resolve::deb::resolve(&index.packages, &request)?
    };
    reporter.advance(Stage::Resolve, 1, &format!("{} packages", order.len()));
    reporter.stage_end(Stage::Resolve);
    seconds.insert(Stage::Resolve.name(), t.elapsed().as_secs_f64());
    crate::cancel::check()?;
    Ok(Plan {
        mirror,
        index,
        order,
        seconds,
    })
}

pub fn build(
    recipe: &Recipe,
    paths: &Paths,
    options: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<BuildResult, Error> {
    let started = Instant::now();
    if let crate::recipe::Source::Rpm(src) = &recipe.source {
        return rpm::build(recipe, src, paths, options, reporter);
    }
    let mut options = options.clone();
    options
        .index_cache
        .get_or_insert_with(|| paths.index_cache());
    let plan = plan(recipe, &options, reporter)?;
    build_plan(recipe, paths, &options, plan, started, reporter)
}

/// Download, unpack, configure and commit what `plan` chose.
pub fn build_plan(
    recipe: &Recipe,
    paths: &Paths,
    options: &BuildOptions,
    plan: Plan,
    started: Instant,
    reporter: &dyn Reporter,
) -> Result<BuildResult, Error> {
    let Plan {
        mirror,
        index,
        order,
        seconds,
    } = plan;
    // Only the snapshot is needed from here on. The whole suite's parsed
    // index is a few hundred MB that every maintainer script's fork would
    // otherwise copy the page tables of.
    let crate::source::deb::DebIndex {
        packages,
        inrelease_sha256,
        date,
        ..
    } = index;
    drop(packages);
    release_free_memory();
    let mut timings = Timings { started, seconds };
    let http = Http::new()?;
    let items: Vec<FetchItem> = order
        .iter()
        .map(|p| FetchItem {
            name: p.id(),
            url: format!("{}/{}", mirror, p.filename),
            digest: p.sha256.clone(),
            algo: crate::source::rpm::ChecksumKind::Sha256,
            size: p.size,
        })
        .collect();
    let (files, download) = download(&http, paths, options, &items, &mut timings, reporter)?;

    let (store, staging) = open_staging(paths)?;
    let epoch = timings.stage(Stage::Unpack, || {
        let debs: Vec<_> = order.iter().cloned().zip(files).collect();
        crate::unpack::deb::unpack_all(
            &staging.0,
            &debs,
            crate::unpack::deb::UnpackOptions {
                merged_usr: deb_source(recipe)?.merged_usr,
            },
            reporter,
        )?;
        let epoch = tree_epoch(&staging.0)?;
        write_apt_sources(&staging.0, &mirror, recipe)?;
        Ok(epoch)
    })?;
    crate::cancel::check()?;

    let suite = deb_source(recipe)?.suite.clone();
    let mut facts = BTreeMap::new();
    facts.insert("mirror".to_string(), mirror.clone());
    facts.insert("suite".to_string(), suite.clone());
    facts.insert("index".to_string(), inrelease_sha256.clone());
    let done = Finish {
        unverified: Vec::new(),
        epoch,
        volatile: recipe.post.volatile.clone(),
        facts,
        packages: order.iter().map(crate::lock::locked).collect(),
        index: Snapshot {
            suite,
            inrelease_sha256,
            date,
        },
        // Under `--locked` the lock is the input, not an output.
        write_lock: !options.locked,
        mirror,
        package_bytes: order.iter().map(|p| p.size).sum(),
        download,
    };
    let configure = |root: &Path, opts: &ConfigureOptions| {
        crate::configure::deb::configure(root, &order, opts, reporter)?;
        Ok(())
    };
    finish(recipe, &store, &staging, timings, done, configure, reporter)
}

/// Hand freed heap pages back to the kernel, so forks stop copying their
/// page tables (the allocator keeps small freed blocks mapped otherwise).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused pages of the allocator's own
    // heaps; it takes no pointers and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
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

/// Where a Debian recipe's index lives.
pub fn deb_repo(recipe: &Recipe, mirror: &str) -> Result<DebRepo, Error> {
    let src = deb_source(recipe)?;
    Ok(DebRepo {
        mirror: mirror.to_string(),
        suite: src.suite.clone(),
        components: src.components.clone(),
        architecture: recipe.architecture.clone(),
        keyring: src.keyring.clone(),
    })
}

/// The Debian half of a recipe; RPM recipes take the RPM path.
fn deb_source(recipe: &Recipe) -> Result<&DebSource, Error> {
    recipe.source.deb().ok_or_else(|| Error::Unsupported {
        recipe: recipe.path.clone(),
        kind: recipe.source.kind(),
    })
}

/// apt inside the template points at the mirror it was built from.
fn write_apt_sources(root: &Path, mirror: &str, recipe: &Recipe) -> Result<(), Error> {
    let dir = root.join("etc/apt");
    let io = |source| Error::Staging {
        path: dir.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let line = format!(
        "deb {} {} {}\n",
        mirror,
        deb_source(recipe)?.suite,
        deb_source(recipe)?.components.join(" ")
    );
    std::fs::write(dir.join("sources.list"), line).map_err(io)
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
