//! Template caches in and out of the store: `export` writes a template as an
//! OpenVZ cache tarball, `import` commits one (ours or OpenVZ's own) as a
//! template, deduplicated against what the store holds.

use crate::export::{ExportOptions, ExportSummary, ImportSummary};
use crate::store::{Store, TemplateMeta};
use crate::Error;
use std::path::Path;

/// Removes a scratch tree on every way out.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Write template `name_or_id` to `out` (`.tar`, `.tar.gz`, `.tar.xz`,
/// `.tar.zst`, ...), atomically.
pub fn export(
    store: &Store,
    name_or_id: &str,
    out: &Path,
    options: &ExportOptions,
) -> Result<ExportSummary, Error> {
    // Fail on the suffix before doing any work.
    if crate::export::Compression::from_path(out).is_none() {
        return Err(crate::export::ExportError::UnknownSuffix {
            path: out.to_path_buf(),
        }
        .into());
    }
    let scratch = Scratch(store.staging_dir()?);
    let tree = scratch.0.join("tree");
    store.checkout(name_or_id, &tree)?;
    Ok(crate::export::write_cache(&tree, out, options)?)
}

/// Commit the cache at `cache` as template `name`; returns its id.
pub fn import(store: &Store, cache: &Path, name: &str) -> Result<(String, ImportSummary), Error> {
    let staging = Scratch(store.staging_dir()?);
    let summary = crate::export::read_cache(cache, &staging.0)?;
    let mut meta = TemplateMeta {
        name: name.to_string(),
        ..TemplateMeta::default()
    };
    meta.facts.insert(
        "imported-from".into(),
        cache
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    let id = store.commit(&staging.0, &meta)?;
    Ok((id, summary))
}

/// `centos-4-x86_64-default.tar.gz` → `centos-4-x86_64-default`.
pub fn name_from_file(cache: &Path) -> Option<String> {
    let name = cache.file_name()?.to_str()?;
    [".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst", ".tgz", ".tar"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .filter(|n| !n.is_empty())
        .map(String::from)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_from_openvz_cache_files() {
        use std::path::Path;
        assert_eq!(
            super::name_from_file(Path::new(
                "/vz/template/cache/centos-4-x86_64-default.tar.gz"
            )),
            Some("centos-4-x86_64-default".into())
        );
        assert_eq!(
            super::name_from_file(Path::new("x.tar.zst")),
            Some("x".into())
        );
        assert_eq!(super::name_from_file(Path::new("x.zip")), None);
    }
}
