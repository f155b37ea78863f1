//! The Debian half of a build: the suite's signed index → resolve →
//! download → unpack → maintainer scripts → commit (the last stages shared
//! with RPM, in `create`).

use super::{download, finish, open_staging, tree_epoch};
use super::{BuildOptions, BuildResult, Finish, Paths, Timings};
use crate::configure::deb::ConfigureOptions;
use crate::fetch::FetchItem;
use crate::http::Http;
use crate::lock::{Lock, Snapshot};
use crate::progress::{Reporter, Stage};
use crate::recipe::{DebSource, Recipe};
use crate::resolve::deb::DebRequest;
use crate::source::deb::DebRepo;
use crate::Error;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Instant, SystemTime};

/// Pick the mirror: `--mirror`, else the recipe's, else the host's apt sources.
pub fn choose_mirror(src: &DebSource, options: &BuildOptions) -> Result<String, Error> {
    if let Some(m) = options.mirror.as_ref().or(src.mirror.as_ref()) {
        return Ok(m.trim_end_matches('/').to_string());
    }
    let sources = crate::source::apt::host_sources(&options.etc_apt)?;
    crate::source::apt::pick_mirror(&sources, &src.suite)
        .map(|m| m.trim_end_matches('/').to_string())
        .ok_or_else(|| Error::NoMirror {
            etc_apt: options.etc_apt.clone(),
        })
}

/// What a build will install: the verified index it read and the exact
/// package set, in install order. Cheap next to a build (no package is
/// downloaded), which is what makes `rebuild --if-changed` a no-op.
#[derive(Debug, Clone)]
pub struct DebPlan {
    pub mirror: String,
    pub index: crate::source::deb::DebIndex,
    pub order: Vec<crate::package::DebPackage>,
    pub seconds: BTreeMap<&'static str, f64>,
}

/// Read and verify the index, then resolve the request (or take the lock).
pub fn plan(
    recipe: &Recipe,
    src: &DebSource,
    options: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<DebPlan, Error> {
    let mut seconds = BTreeMap::new();
    let mirror = choose_mirror(src, options)?;
    let http = Http::new()?;

    let t = Instant::now();
    let repo = deb_repo(recipe, src, &mirror);
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
    Ok(DebPlan {
        mirror,
        index,
        order,
        seconds,
    })
}

/// Download, unpack, configure and commit what `plan` chose.
pub fn build_plan(
    recipe: &Recipe,
    src: &DebSource,
    paths: &Paths,
    options: &BuildOptions,
    plan: DebPlan,
    started: Instant,
    reporter: &dyn Reporter,
) -> Result<BuildResult, Error> {
    let DebPlan {
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
    crate::sys::mem::trim_heap();
    let mut timings = Timings { started, seconds };
    let http = Http::new()?;
    let items: Vec<FetchItem> = order
        .iter()
        .map(|p| FetchItem {
            name: p.id(),
            url: format!("{}/{}", mirror, p.filename),
            digest: p.sha256.clone(),
            algo: crate::checksum::ChecksumKind::Sha256,
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
                merged_usr: src.merged_usr,
            },
            reporter,
        )?;
        let epoch = tree_epoch(&staging.0)?;
        write_apt_sources(&staging.0, &mirror, src)?;
        Ok(epoch)
    })?;
    crate::cancel::check()?;

    let suite = src.suite.clone();
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

/// The id of the suite's signed index as the mirror serves it now.
pub fn snapshot_now(
    recipe: &Recipe,
    src: &DebSource,
    options: &BuildOptions,
) -> Result<String, Error> {
    let mirror = choose_mirror(src, options)?;
    let repo = deb_repo(recipe, src, &mirror);
    let http = Http::new()?;
    Ok(crate::source::deb::release_snapshot(
        &http,
        &repo,
        SystemTime::now(),
    )?)
}

/// Where a Debian recipe's index lives.
pub fn deb_repo(recipe: &Recipe, src: &DebSource, mirror: &str) -> DebRepo {
    DebRepo {
        mirror: mirror.to_string(),
        suite: src.suite.clone(),
        components: src.components.clone(),
        architecture: recipe.architecture.clone(),
        keyring: src.keyring.clone(),
    }
}

/// apt inside the template points at the mirror it was built from.
fn write_apt_sources(root: &Path, mirror: &str, src: &DebSource) -> Result<(), Error> {
    let dir = root.join("etc/apt");
    let io = |source| Error::Staging {
        path: dir.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let line = format!(
        "deb {} {} {}\n",
        mirror,
        src.suite,
        src.components.join(" ")
    );
    std::fs::write(dir.join("sources.list"), line).map_err(io)
}
