//! Making a built tree reproducible: the same packages give the same bytes
//! and the same template id on any day, in any store, on any machine.
//!
//! Timestamps come from the packages: every mtime newer than the build's
//! epoch (`SOURCE_DATE_EPOCH`, else the newest file the packages shipped) is
//! clamped to it. Files that only record when or where the build ran (logs,
//! caches, machine ids, host keys) are removed.

use std::path::{Path, PathBuf};
use thiserror::Error;
use walkdir::WalkDir;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NormalizeError {
    #[error("normalising {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("SOURCE_DATE_EPOCH={value:?} is not a number of seconds; unset it or give an integer")]
    BadEpoch { value: String },
}

/// Paths (relative to the root; a trailing `*` matches any suffix in that
/// directory) that only say when or where a build ran.
pub const VOLATILE: &[&str] = &[
    "var/log/dpkg.log",
    "var/log/alternatives.log",
    "var/log/bootstrap.log",
    "var/log/apt/*",
    "var/cache/ldconfig/aux-cache",
    "var/cache/apt/*.bin",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "var/lib/dbus/machine-id",
    "etc/ssh/ssh_host_*",
    "tmp/*",
    "var/tmp/*",
    "root/.bash_history",
];

/// The epoch to clamp to: `SOURCE_DATE_EPOCH` if set.
pub fn epoch_from_env() -> Result<Option<i64>, NormalizeError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| NormalizeError::BadEpoch { value: v }),
        _ => Ok(None),
    }
}

/// The newest mtime of any regular file in `root` (the packages' own
/// timestamps, right after unpacking), skipping the package database that
/// the unpacker wrote.
pub fn newest_file(root: &Path) -> Result<i64, NormalizeError> {
    let mut newest = 0i64;
    let skip = root.join("var/lib/dpkg");
    for entry in WalkDir::new(root)
        .same_file_system(true)
        .into_iter()
        .filter_entry(|e| e.path() != skip)
    {
        let entry = entry.map_err(|e| walk_error(root, e))?;
        if entry.file_type().is_file() {
            use std::os::unix::fs::MetadataExt;
            let m = entry.metadata().map_err(|e| walk_error(root, e))?;
            newest = newest.max(m.mtime());
        }
    }
    Ok(newest)
}

/// Remove volatile files (the default list plus `extra`), make
/// `etc/machine-id` empty where it exists, and clamp every mtime to `epoch`.
pub fn normalize(root: &Path, epoch: i64, extra: &[String]) -> Result<(), NormalizeError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| NormalizeError::Io { path, source }
    };
    for pattern in VOLATILE
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
    {
        for path in expand(root, pattern.trim_start_matches('/')) {
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(_) => continue,
            };
            if meta.is_dir() {
                std::fs::remove_dir_all(&path).map_err(io(&path))?;
            } else {
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
        }
    }
    // An empty machine-id means "not yet set": each VPS gets its own at create.
    let machine_id = root.join("etc/machine-id");
    if machine_id.is_file() {
        std::fs::write(&machine_id, b"").map_err(io(&machine_id))?;
    }
    clamp_mtimes(root, epoch)
}

fn clamp_mtimes(root: &Path, epoch: i64) -> Result<(), NormalizeError> {
    use rustix::fs::{AtFlags, Timespec, Timestamps, CWD};
    use std::os::unix::fs::MetadataExt;
    // Children before parents: touching a child doesn't change its parent's
    // mtime, but removing files above did, so directories are clamped last.
    for entry in WalkDir::new(root)
        .same_file_system(true)
        .contents_first(true)
    {
        let entry = entry.map_err(|e| walk_error(root, e))?;
        let m = entry.metadata().map_err(|e| walk_error(root, e))?;
        // Compare with the nanoseconds: a file written within the epoch's
        // own second is still newer than the epoch.
        let newer = |secs: i64, nsec: i64| secs > epoch || (secs == epoch && nsec > 0);
        let mtime_newer = newer(m.mtime(), m.mtime_nsec());
        if !mtime_newer && !newer(m.atime(), m.atime_nsec()) {
            continue;
        }
        let t = Timespec {
            tv_sec: epoch,
            tv_nsec: 0,
        };
        let keep = Timespec {
            tv_sec: m.mtime(),
            tv_nsec: m.mtime_nsec(),
        };
        let times = Timestamps {
            last_access: t,
            last_modification: if mtime_newer { t } else { keep },
        };
        rustix::fs::utimensat(CWD, entry.path(), &times, AtFlags::SYMLINK_NOFOLLOW).map_err(
            |e| NormalizeError::Io {
                path: entry.path().to_path_buf(),
                source: e.into(),
            },
        )?;
    }
    Ok(())
}

/// `dir/prefix*` → the matching entries of `dir`; a plain path → itself.
fn expand(root: &Path, pattern: &str) -> Vec<PathBuf> {
    let Some(prefix) = pattern.strip_suffix('*') else {
        return vec![root.join(pattern)];
    };
    let (dir, stem) = match prefix.rsplit_once('/') {
        Some((d, s)) => (root.join(d), s.to_string()),
        None => (root.to_path_buf(), prefix.to_string()),
    };
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&stem))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

fn walk_error(root: &Path, e: impl Into<std::io::Error>) -> NormalizeError {
    NormalizeError::Io {
        path: root.to_path_buf(),
        source: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn clamps_and_removes() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("var/log/apt")).unwrap();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("var/log/apt/history.log"), b"x").unwrap();
        std::fs::write(r.join("var/log/dpkg.log"), b"x").unwrap();
        std::fs::write(r.join("etc/machine-id"), b"0123\n").unwrap();
        std::fs::write(r.join("etc/keep"), b"k").unwrap();
        std::os::unix::fs::symlink("keep", r.join("etc/link")).unwrap();
        normalize(r, 1_000_000, &["etc/keep-not*".to_string()]).unwrap();
        assert!(!r.join("var/log/apt/history.log").exists());
        assert!(!r.join("var/log/dpkg.log").exists());
        assert!(r.join("var/log/apt").is_dir());
        assert_eq!(std::fs::read(r.join("etc/machine-id")).unwrap(), b"");
        for p in ["etc/keep", "etc", "var/log/apt", ""] {
            assert_eq!(
                std::fs::metadata(r.join(p)).unwrap().mtime(),
                1_000_000,
                "{p}"
            );
        }
        assert_eq!(
            std::fs::symlink_metadata(r.join("etc/link"))
                .unwrap()
                .mtime(),
            1_000_000
        );
        // Older files keep their own time.
        normalize(r, 2_000_000, &[]).unwrap();
        assert_eq!(
            std::fs::metadata(r.join("etc/keep")).unwrap().mtime(),
            1_000_000
        );
    }

    #[test]
    fn newest_file_ignores_the_package_database() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("var/lib/dpkg")).unwrap();
        std::fs::write(r.join("a"), b"x").unwrap();
        std::fs::write(r.join("var/lib/dpkg/status"), b"x").unwrap();
        clamp_mtimes(&r.join("a"), 500).unwrap();
        assert_eq!(newest_file(r).unwrap(), 500);
    }
}
