//! The template store: content-addressed objects, layers, templates and tags.
//! OWNER: store helper — replace the stubs below.

use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{what}: not implemented")]
    Todo { what: String },
}

/// What a build knows about the template it commits.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TemplateMeta {
    /// The tag to set (`debian-12`).
    pub name: String,
    /// The recipe's text as built.
    pub recipe: String,
    /// Every package: name, version, architecture, sha256 of the package file.
    pub packages: Vec<LockedPackage>,
    /// Free-form build facts (mirror, snapshot id, durations).
    pub facts: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub sha256: String,
}

/// A template as `list` shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TemplateInfo {
    pub id: String,
    pub names: Vec<String>,
    pub packages: usize,
    pub bytes: u64,
    pub created: i64,
}

pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh, empty staging directory on the store's file system (so commit
    /// can hardlink or rename from it).
    pub fn staging_dir(&self) -> Result<PathBuf, StoreError> {
        Err(StoreError::Todo {
            what: "staging_dir".into(),
        })
    }

    /// Commit `tree` as a template and point `meta.name` at it. Returns the template id.
    pub fn commit(&self, tree: &Path, meta: &TemplateMeta) -> Result<String, StoreError> {
        let _ = (tree, meta);
        Err(StoreError::Todo {
            what: "commit".into(),
        })
    }

    pub fn list(&self) -> Result<Vec<TemplateInfo>, StoreError> {
        Ok(Vec::new())
    }

    /// Write a full tree of template `name_or_id` into `dest` (which must not exist or be empty).
    pub fn checkout(&self, name_or_id: &str, dest: &Path) -> Result<(), StoreError> {
        let _ = (name_or_id, dest);
        Err(StoreError::Todo {
            what: "checkout".into(),
        })
    }
}
