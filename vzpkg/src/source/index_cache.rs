//! Verified `Packages` indexes kept between builds, each named by the
//! SHA-256 a signed Release gave for it: `DIR/<sha256>`.
//!
//! The Release (InRelease) is still fetched and verified on every build; only
//! a file whose digest that verified Release names is taken from here, and
//! its size and digest are checked again on every read, so a damaged or
//! altered copy is dropped and fetched anew. Writes are best effort: a cache
//! that cannot be written never fails a build.

use super::deb::{check_file, ReleaseFile};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Entries not used for this long are removed when a new one is stored
/// (a suite's index changes with every point release or security update).
const KEEP_UNUSED: Duration = Duration::from_secs(30 * 86400);

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone)]
pub struct IndexCache {
    dir: PathBuf,
}

impl IndexCache {
    /// A cache in `dir`, created on the first store.
    pub fn new(dir: &Path) -> IndexCache {
        IndexCache {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path_for(&self, entry: &ReleaseFile) -> PathBuf {
        self.dir.join(&entry.sha256)
    }

    /// The stored bytes of `entry`, only if their size and SHA-256 are the
    /// ones the signed Release gives. A copy that does not match is removed.
    pub fn get(&self, entry: &ReleaseFile) -> Option<Vec<u8>> {
        let path = self.path_for(entry);
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.is_file() || meta.len() != entry.size {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        let data = std::fs::read(&path).ok()?;
        if check_file("", &data, entry).is_err() {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        // Used now: keeps it from being pruned.
        if let Ok(f) = std::fs::File::options().write(true).open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some(data)
    }

    /// Store `data` as `entry`; the caller has checked it against the
    /// signed Release. Written under a temporary name and renamed, so a
    /// reader never sees part of it.
    pub fn put(&self, entry: &ReleaseFile, data: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let dest = self.path_for(entry);
        let tmp = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            entry.sha256,
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(data))
            .and_then(|()| std::fs::rename(&tmp, &dest));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
        self.prune(&dest);
        Ok(())
    }

    /// Remove entries (and stray temporary files) unused for [`KEEP_UNUSED`].
    fn prune(&self, keep: &Path) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        for e in rd.flatten() {
            let path = e.path();
            if path == keep {
                continue;
            }
            let old = e
                .metadata()
                .ok()
                .filter(|m| m.is_file())
                .and_then(|m| m.modified().ok())
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > KEEP_UNUSED);
            if old {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn entry(data: &[u8]) -> ReleaseFile {
        ReleaseFile {
            path: "main/binary-amd64/Packages".into(),
            size: data.len() as u64,
            sha256: hex::encode(Sha256::digest(data)),
        }
    }

    #[test]
    fn stores_and_verifies_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let cache = IndexCache::new(&dir.path().join("indexes"));
        let data = b"Package: a\nVersion: 1\n".to_vec();
        let e = entry(&data);
        assert_eq!(cache.get(&e), None);
        cache.put(&e, &data).unwrap();
        assert_eq!(cache.get(&e).as_deref(), Some(&data[..]));

        // Same size, other bytes: refused and removed.
        let mut bad = data.clone();
        bad[9] = b'b';
        std::fs::write(cache.path_for(&e), &bad).unwrap();
        assert_eq!(cache.get(&e), None);
        assert!(!cache.path_for(&e).exists());

        // Another size: refused too.
        cache.put(&e, &data).unwrap();
        std::fs::write(cache.path_for(&e), b"short").unwrap();
        assert_eq!(cache.get(&e), None);

        // Nothing temporary left behind.
        cache.put(&e, &data).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path().join("indexes"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from(&e.sha256)]);
    }

    #[test]
    fn old_entries_are_pruned_on_store() {
        let dir = tempfile::tempdir().unwrap();
        let cache = IndexCache::new(dir.path());
        let (a, b) = (b"one".to_vec(), b"two".to_vec());
        cache.put(&entry(&a), &a).unwrap();
        let f = std::fs::File::options()
            .write(true)
            .open(cache.path_for(&entry(&a)))
            .unwrap();
        f.set_modified(SystemTime::now() - KEEP_UNUSED - Duration::from_secs(60))
            .unwrap();
        cache.put(&entry(&b), &b).unwrap();
        assert!(!cache.path_for(&entry(&a)).exists());
        assert_eq!(cache.get(&entry(&b)).as_deref(), Some(&b[..]));
    }
}
