//! Debian: `preinst install` then `postinst configure` for every package in
//! dependency order, then the dpkg status marked `install ok installed`.
//! OWNER: configure helper — replace the stubs below.

use crate::package::DebPackage;
use crate::progress::Reporter;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigureError {
    #[error("{what}: not implemented")]
    Todo { what: String },
}

#[derive(Debug, Clone, Default)]
pub struct ConfigureOptions {
    /// Shell commands from the recipe, run inside the tree after all packages.
    pub post_commands: Vec<String>,
    /// Hostname seen by scripts inside the tree.
    pub hostname: String,
}

/// `order` is the resolver's install order.
pub fn configure(
    root: &Path,
    order: &[DebPackage],
    options: &ConfigureOptions,
    reporter: &dyn Reporter,
) -> Result<(), ConfigureError> {
    let _ = (root, order, options, reporter);
    Err(ConfigureError::Todo {
        what: "configure".into(),
    })
}
