//! `.deb` files (an `ar` archive of `debian-binary`, `control.tar.*`,
//! `data.tar.*`) unpacked into a tree, and the dpkg database written as dpkg
//! would after `dpkg --unpack`.
//! OWNER: unpack helper — replace the stubs below.

use crate::package::DebPackage;
use crate::progress::Reporter;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UnpackError {
    #[error("{what}: not implemented")]
    Todo { what: String },
}

#[derive(Debug, Clone, Copy)]
pub struct UnpackOptions {
    /// Create `/bin`, `/sbin`, `/lib*` as symlinks into `/usr` first (merged /usr).
    pub merged_usr: bool,
}

/// Unpack every `(package, path of its verified .deb)` into `root` and write
/// `/var/lib/dpkg` (status with `install ok unpacked`, info/*).
pub fn unpack_all(
    root: &Path,
    debs: &[(DebPackage, PathBuf)],
    options: UnpackOptions,
    reporter: &dyn Reporter,
) -> Result<(), UnpackError> {
    let _ = (root, debs, options, reporter);
    Err(UnpackError::Todo {
        what: "unpack_all".into(),
    })
}
