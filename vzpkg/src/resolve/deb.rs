//! Debian resolution over Depends, Pre-Depends, alternatives, versions,
//! Provides, Conflicts/Breaks and multi-arch qualifiers.
//! OWNER: resolve helper — replace the stubs below.

use crate::package::DebPackage;
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ResolveError {
    #[error("{what}: not implemented")]
    Todo { what: String },
}

/// Which packages to start from before includes and excludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseSet {
    /// `Essential: yes` and `Priority: required`, plus `apt` (mmdebstrap's minbase).
    Minbase,
    /// `Essential: yes` only.
    Essential,
    /// Only what `include` names.
    None,
}

#[derive(Debug, Clone)]
pub struct DebRequest {
    pub base: BaseSet,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// The native architecture (`amd64`).
    pub architecture: String,
}

/// The package set, ordered so that each package comes after what it
/// (Pre-)Depends on; dependency cycles are broken deterministically.
pub fn resolve(index: &[DebPackage], request: &DebRequest) -> Result<Vec<DebPackage>, ResolveError> {
    let _ = (index, request);
    Err(ResolveError::Todo {
        what: "resolve".into(),
    })
}
