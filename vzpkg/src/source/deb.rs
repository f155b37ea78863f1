//! A Debian repository: `InRelease` (signature verified, `Valid-Until`
//! honoured), then `Packages` indexes checked against its SHA256 list.
//! OWNER: source helper — replace the stubs below.

use crate::http::{Http, HttpError};
use crate::openpgp::OpenPgpError;
use crate::package::DebPackage;
use crate::progress::Reporter;
use std::path::PathBuf;
use std::time::SystemTime;
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    OpenPgp(#[from] OpenPgpError),
    #[error("{what}: not implemented")]
    Todo { what: String },
}

/// Where to read a Debian suite from.
#[derive(Debug, Clone)]
pub struct DebRepo {
    /// Mirror base URL without trailing slash (`http://host/debian`).
    pub mirror: String,
    pub suite: String,
    pub components: Vec<String>,
    pub architecture: String,
    pub keyring: PathBuf,
}

/// The verified index of a suite.
#[derive(Debug, Clone)]
pub struct DebIndex {
    pub packages: Vec<DebPackage>,
    /// SHA-256 of the InRelease file the index came from: the snapshot id.
    pub inrelease_sha256: String,
    pub codename: Option<String>,
    /// `Date:` of the Release file, seconds since the epoch.
    pub date: Option<i64>,
}

pub fn load_index(
    http: &Http,
    repo: &DebRepo,
    now: SystemTime,
    reporter: &dyn Reporter,
) -> Result<DebIndex, SourceError> {
    let _ = (http, repo, now, reporter);
    Err(SourceError::Todo {
        what: "load_index".into(),
    })
}
