//! Parallel, verified downloads into a package cache keyed by SHA-256.
//!
//! A file enters the cache only after its size and digest match the signed
//! index, and only by an atomic rename, so whatever the cache holds is good
//! and any build may use it without downloading again.

use crate::checksum::ChecksumKind;
use crate::http::{Http, HttpError};
use crate::progress::{Reporter, Stage};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("{package}: {source}")]
    Http {
        package: String,
        #[source]
        source: HttpError,
    },
    #[error(transparent)]
    Checksum(Box<ChecksumMismatch>),
    #[error("package cache {path}: {source}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Cancelled(#[from] crate::cancel::Cancelled),
}

impl FetchError {
    pub fn is_verification(&self) -> bool {
        matches!(self, FetchError::Checksum(_))
    }
    pub fn is_disk_full(&self) -> bool {
        let io = match self {
            FetchError::Cache { source, .. } => Some(source),
            FetchError::Http {
                source: HttpError::Write { source, .. },
                ..
            } => Some(source),
            _ => None,
        };
        io.and_then(|e| e.raw_os_error()) == Some(libc::ENOSPC)
    }
}

/// A download whose digest or size differs from the signed index.
#[derive(Debug, Error)]
#[error("{package}: {url} has {} {actual} ({actual_size} bytes) but the signed index says {expected} ({expected_size} bytes); the mirror's copy is corrupt or tampered with: try another mirror (--mirror)", algo.to_uppercase().replace("SHA", "SHA-"))]
pub struct ChecksumMismatch {
    pub package: String,
    pub url: String,
    pub algo: &'static str,
    pub expected: String,
    pub actual: String,
    pub expected_size: u64,
    pub actual_size: u64,
}

/// One file to fetch.
#[derive(Debug, Clone)]
pub struct FetchItem {
    /// Shown in messages (`name_version_arch`).
    pub name: String,
    pub url: String,
    /// Lower-case hex digest from the signed index, in `algo`.
    pub digest: String,
    /// Debian indexes give SHA-256; old RPM repositories give SHA-1.
    pub algo: ChecksumKind,
    pub size: u64,
}

/// Packages stored by digest: `DIR/ab/abcdef…`.
#[derive(Debug, Clone)]
pub struct PackageCache {
    dir: PathBuf,
}

impl PackageCache {
    pub fn open(dir: &Path) -> Result<PackageCache, FetchError> {
        std::fs::create_dir_all(dir.join("tmp")).map_err(|source| FetchError::Cache {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(PackageCache {
            dir: dir.to_path_buf(),
        })
    }

    /// `DIR/ab/abcdef…` for SHA-256, `DIR/sha1/ab/…` for other digests.
    pub fn path_for(&self, algo: ChecksumKind, digest: &str) -> PathBuf {
        let fan = digest.get(..2).unwrap_or("xx");
        let dir = match algo {
            ChecksumKind::Sha256 => self.dir.clone(),
            other => self.dir.join(other.name()),
        };
        dir.join(fan).join(digest)
    }

    fn item_path(&self, item: &FetchItem) -> PathBuf {
        self.path_for(item.algo, &item.digest)
    }

    /// Whether a verified copy is present (the size is checked again, the
    /// digest was checked when it was stored).
    pub fn has(&self, item: &FetchItem) -> bool {
        std::fs::metadata(self.item_path(item)).is_ok_and(|m| m.len() == item.size)
    }
}

/// What a fetch did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FetchSummary {
    pub downloaded: usize,
    pub downloaded_bytes: u64,
    pub cached: usize,
}

/// Fetch every item (those not in the cache) with `jobs` parallel
/// connections. Returns the cache path of each item, in input order.
pub fn fetch_all(
    http: &Http,
    cache: &PackageCache,
    items: &[FetchItem],
    jobs: usize,
    reporter: &dyn Reporter,
) -> Result<(Vec<PathBuf>, FetchSummary), FetchError> {
    let mut todo: Vec<&FetchItem> = items.iter().filter(|i| !cache.has(i)).collect();
    // Big files first, so the last seconds aren't one large download alone.
    todo.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.name.cmp(&b.name)));
    let total: u64 = todo.iter().map(|i| i.size).sum();
    let summary = FetchSummary {
        downloaded: todo.len(),
        downloaded_bytes: total,
        cached: items.len() - todo.len(),
    };
    reporter.stage_start(Stage::Download, total);
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<FetchError>> = Mutex::new(None);
    let failed = || first_error.lock().map(|e| e.is_some()).unwrap_or(true);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1).min(todo.len().max(1)) {
            s.spawn(|| loop {
                if failed() {
                    return;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = todo.get(i) else { return };
                let r = crate::cancel::check()
                    .map_err(FetchError::from)
                    .and_then(|()| fetch_one(http, cache, item, reporter));
                if let Err(e) = r {
                    if let Ok(mut slot) = first_error.lock() {
                        slot.get_or_insert(e);
                    }
                    return;
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    reporter.stage_end(Stage::Download);
    Ok((items.iter().map(|i| cache.item_path(i)).collect(), summary))
}

fn fetch_one(
    http: &Http,
    cache: &PackageCache,
    item: &FetchItem,
    reporter: &dyn Reporter,
) -> Result<(), FetchError> {
    let cache_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchError::Cache { path, source }
    };
    let tmp = cache
        .dir
        .join("tmp")
        .join(format!("{}.{}.part", item.digest, std::process::id()));
    let mut got = 0u64;
    let r = http.download(&item.url, &tmp, &mut |n| {
        got += n;
        reporter.advance(Stage::Download, n, &item.name);
    });
    if let Err(source) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(FetchError::Http {
            package: item.name.clone(),
            source,
        });
    }
    let (actual, actual_size) = match digest_file(&tmp, item.algo) {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(cache_err(&tmp)(e));
        }
    };
    if actual != item.digest || actual_size != item.size {
        let _ = std::fs::remove_file(&tmp);
        return Err(FetchError::Checksum(Box::new(ChecksumMismatch {
            package: item.name.clone(),
            url: item.url.clone(),
            algo: item.algo.name(),
            expected: item.digest.clone(),
            actual,
            expected_size: item.size,
            actual_size,
        })));
    }
    let dest = cache.item_path(item);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(cache_err(parent))?;
    }
    std::fs::rename(&tmp, &dest).map_err(cache_err(&dest))?;
    Ok(())
}

/// Hex SHA-256 and length of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    digest_file(path, ChecksumKind::Sha256)
}

/// Hex digest in `algo` and length of a file.
pub fn digest_file(path: &Path, algo: ChecksumKind) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = algo.hasher();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}
