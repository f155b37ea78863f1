//! Where vzpkg and its VPSs live on the host, and the environment
//! variables that move them: the template store's ROOT, the VZ root and
//! the quota directory. The front doors and the runtime take these paths
//! from here only.
//!
//! Under the VZ root, `conf/vz.conf` is the host-wide config (see
//! [`crate::vps::VzRoot::global_conf`]); per-VPS paths are
//! [`crate::vps::VzRoot`]'s.

use std::path::{Path, PathBuf};

/// The template store's ROOT when nothing says otherwise.
pub const DEFAULT_STORE_ROOT: &str = "/var/lib/vzpkg";
/// Names the store's ROOT (`--root`, `--vzpkg-root`).
pub const STORE_ROOT_ENV: &str = "VZPKG_ROOT";
/// OpenVZ's VZ root.
pub const DEFAULT_VZ_ROOT: &str = "/vz";
/// Names the VZ root (`--vzroot`).
pub const VZ_ROOT_ENV: &str = "VZ_ROOT";
/// Where quota files live for the default VZ root.
pub const DEFAULT_QUOTA_DIR: &str = "/var/vzquota";
/// Names the quota directory (`--quota-dir`).
pub const QUOTA_DIR_ENV: &str = "VZQUOTA_DIR";
/// The host-wide config, relative to the VZ root.
pub const GLOBAL_CONF: &str = "conf/vz.conf";

/// The source checkout vzpkg runs from (or from under): the nearest
/// ancestor of the working directory, else of the executable, that holds
/// `recipes/` and `Cargo.toml`.
pub fn find_checkout() -> Option<PathBuf> {
    let is_checkout = |d: &Path| d.join("recipes").is_dir() && d.join("Cargo.toml").is_file();
    let from_cwd = std::env::current_dir().ok();
    let from_exe = std::env::current_exe().ok();
    [from_cwd, from_exe]
        .into_iter()
        .flatten()
        .find_map(|start| {
            start
                .ancestors()
                .find(|d| is_checkout(d))
                .map(Path::to_path_buf)
        })
}

/// vzpkg's ROOT: the one given (`--root`/`$VZPKG_ROOT`), else the
/// checkout vzpkg runs from, else [`DEFAULT_STORE_ROOT`].
pub fn store_root(given: Option<&Path>, checkout: Option<&Path>) -> PathBuf {
    given
        .or(checkout)
        .map_or_else(|| PathBuf::from(DEFAULT_STORE_ROOT), Path::to_path_buf)
}

/// The VZ root `$VZ_ROOT` names, if set.
pub fn vz_root_from_env() -> Option<PathBuf> {
    std::env::var_os(VZ_ROOT_ENV).map(PathBuf::from)
}

/// The quota directory of the VPSs under `vz_root`: `$VZQUOTA_DIR` when
/// set; OpenVZ's `/var/vzquota` for the default VZ root `/vz`; otherwise
/// `VZ_ROOT/vzquota`, so VZ roots side by side never share quota files.
/// vzctl and vzquota both use this, so each finds the other's files.
pub fn quota_dir_for(vz_root: Option<&Path>) -> PathBuf {
    if let Some(d) = std::env::var_os(QUOTA_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    match vz_root {
        Some(r) if r != Path::new(DEFAULT_VZ_ROOT) => r.join("vzquota"),
        _ => PathBuf::from(DEFAULT_QUOTA_DIR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_root_prefers_given_then_checkout() {
        let given = Path::new("/srv/store");
        let checkout = Path::new("/home/u/vzpkg");
        assert_eq!(store_root(Some(given), Some(checkout)), given);
        assert_eq!(store_root(None, Some(checkout)), checkout);
        assert_eq!(store_root(None, None), Path::new(DEFAULT_STORE_ROOT));
    }
}
