//! Lock files (`recipes/NAME.lock`): the exact package set a template was
//! built from, and the signed index it came from. Written after every
//! successful build; `--locked` builds exactly what it says or fails.

use crate::package::DebPackage;
use crate::store::LockedPackage;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LockError {
    #[error("cannot read lock file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("lock file {path} is not valid: {message}; delete it and run `vzpkg create` without --locked to write a new one")]
    Parse { path: PathBuf, message: String },
    #[error("cannot write lock file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "--locked: no lock file at {path}; run `vzpkg create` once without --locked to write it"
    )]
    Missing { path: PathBuf },
    #[error("--locked: the mirror no longer offers {} locked package(s): {}; the lock pins versions the mirror has dropped — use a snapshot mirror (--mirror) or rebuild without --locked to update the lock", missing.len(), missing.join(", "))]
    NotUpstream { missing: Vec<String> },
}

/// The index snapshot a lock was resolved against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub suite: String,
    /// SHA-256 of the InRelease file.
    pub inrelease_sha256: String,
    /// The Release file's `Date`, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub recipe: String,
    pub architecture: String,
    /// Repositories built from without any signature check, because the
    /// recipe asked for it (`gpgcheck = false` and `repo_gpgcheck = false`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unverified: Vec<String>,
    pub index: Snapshot,
    /// In install order.
    #[serde(rename = "package")]
    pub packages: Vec<LockedPackage>,
}

/// `recipes/NAME.toml` → `recipes/NAME.lock`.
pub fn lock_path(recipe_path: &Path) -> PathBuf {
    recipe_path.with_extension("lock")
}

impl Lock {
    pub fn parse(text: &str, path: &Path) -> Result<Lock, LockError> {
        toml::from_str(text).map_err(|e| LockError::Parse {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })
    }

    pub fn render(&self) -> String {
        let body = toml::to_string(self).unwrap_or_default();
        format!("# Written by `vzpkg create`: the exact packages of the last build.\n# `vzpkg create --locked` builds exactly these.\n\n{body}")
    }

    /// The lock `--locked` builds `recipe_path` from; its absence is an error.
    pub fn required(recipe_path: &Path) -> Result<Lock, LockError> {
        let path = lock_path(recipe_path);
        Lock::read(&path)?.ok_or(LockError::Missing { path })
    }

    /// The lock at `path`, or `None` if there is none.
    pub fn read(path: &Path) -> Result<Option<Lock>, LockError> {
        match std::fs::read_to_string(path) {
            Ok(t) => Lock::parse(&t, path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LockError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Write atomically: a reader sees the old lock or the new one.
    pub fn write(&self, path: &Path) -> Result<(), LockError> {
        let err = |source| LockError::Write {
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_extension(format!("lock.tmp.{}", std::process::id()));
        std::fs::write(&tmp, self.render()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })
    }

    /// Pick exactly the locked packages out of `index`, in lock order.
    pub fn select(&self, index: &[DebPackage]) -> Result<Vec<DebPackage>, LockError> {
        self.select_by(index, locked)
    }

    /// `select` for any kind of package, seen as the lock pins it.
    pub fn select_by<P: Clone>(
        &self,
        index: &[P],
        pin: impl Fn(&P) -> LockedPackage,
    ) -> Result<Vec<P>, LockError> {
        let pins: Vec<LockedPackage> = index.iter().map(pin).collect();
        let by_key: std::collections::HashMap<_, _> = pins
            .iter()
            .zip(index)
            .map(|(l, p)| (key(l), (l.sha256.as_str(), p)))
            .collect();
        let mut out = Vec::new();
        let mut missing = Vec::new();
        for l in &self.packages {
            match by_key.get(&key(l)) {
                Some((sha256, p)) if *sha256 == l.sha256 => out.push((*p).clone()),
                Some(_) => missing.push(format!(
                    "{}_{}_{} (different SHA-256 upstream)",
                    l.name, l.version, l.architecture
                )),
                None => missing.push(format!("{}_{}_{}", l.name, l.version, l.architecture)),
            }
        }
        if missing.is_empty() {
            Ok(out)
        } else {
            Err(LockError::NotUpstream { missing })
        }
    }
}

/// What a lock entry is looked up by: name, version, architecture.
fn key(l: &LockedPackage) -> (&str, &str, &str) {
    (l.name.as_str(), l.version.as_str(), l.architecture.as_str())
}

pub fn locked(p: &DebPackage) -> LockedPackage {
    LockedPackage {
        name: p.name.clone(),
        version: p.version.clone(),
        architecture: p.architecture.clone(),
        sha256: p.sha256.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str, sha: &str) -> DebPackage {
        DebPackage {
            name: name.into(),
            version: version.into(),
            architecture: "amd64".into(),
            filename: format!("pool/{name}.deb"),
            size: 1,
            sha256: sha.into(),
            control: Default::default(),
        }
    }

    #[test]
    fn round_trip_and_select() {
        let index = vec![
            pkg("a", "1", "aa"),
            pkg("b", "2", "bb"),
            pkg("b", "3", "b3"),
        ];
        let mut lock = Lock {
            recipe: "r".into(),
            architecture: "amd64".into(),
            unverified: vec![],
            index: Snapshot {
                suite: "s".into(),
                inrelease_sha256: "ff".into(),
                date: Some(5),
            },
            packages: vec![locked(&index[1]), locked(&index[0])],
        };
        let parsed = Lock::parse(&lock.render(), Path::new("x.lock")).unwrap();
        assert_eq!(parsed, lock);
        assert!(!lock.render().contains("unverified"));
        // A lock of an unverified build says so, and reads back the same.
        lock.unverified = vec!["local".into()];
        let text = lock.render();
        assert!(text.contains("unverified = [\"local\"]"), "{text}");
        assert_eq!(Lock::parse(&text, Path::new("x.lock")).unwrap(), lock);
        lock.unverified.clear();
        let sel = lock.select(&index).unwrap();
        assert_eq!(
            sel.iter().map(|p| p.id()).collect::<Vec<_>>(),
            ["b_2_amd64", "a_1_amd64"]
        );
    }

    #[test]
    fn missing_upstream_is_named() {
        let lock = Lock {
            recipe: "r".into(),
            architecture: "amd64".into(),
            unverified: vec![],
            index: Snapshot {
                suite: "s".into(),
                inrelease_sha256: "ff".into(),
                date: None,
            },
            packages: vec![locked(&pkg("a", "1", "aa")), locked(&pkg("c", "9", "cc"))],
        };
        let e = lock.select(&[pkg("a", "1", "XX")]).unwrap_err().to_string();
        assert!(
            e.contains("a_1_amd64 (different SHA-256 upstream)") && e.contains("c_9_amd64"),
            "{e}"
        );
    }
}
