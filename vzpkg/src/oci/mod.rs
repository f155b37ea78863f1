//! Templates as OCI images: `push` writes a template to a registry, an OCI
//! layout or an OCI archive; `pull` commits an image into the store.
//!
//! One store layer is one image layer (a reproducible tar, zstd or gzip),
//! so the same template gives the same manifest digest on every host, and a
//! pull skips the layers the store already has. The image config carries the
//! template id, store layer ids, recipe, lock and build facts; a pull rebuilds
//! each layer's manifest from its tar, checks it against the recorded layer
//! id and the template id, and only then commits. Blobs are checked against
//! their digests as they stream in, into `partial/` so an interrupted pull
//! resumes. Images made by other tools are applied layer over layer
//! (whiteouts, opaque directories) and committed as a tree, split into the
//! store's usual path layers (see `foreign`).

pub mod auth;
pub mod compress;
mod foreign;
mod growing;
pub mod image;
mod layer_tar;
mod layout;
mod pull;
mod push;
pub mod reference;
mod registry;
mod sbom;

pub use compress::Compression;
pub use pull::{pull, PullOptions, PullReport};
pub use push::{push, PushOptions, PushReport};
pub use reference::Reference;

use image::Descriptor;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OciError {
    #[error("`{reference}` is not an image reference: {why}")]
    BadReference { reference: String, why: String },
    #[error("{reference}: not found: {why}")]
    NotFound { reference: String, why: String },
    #[error("{reference}: the image is not usable: {why}")]
    BadImage { reference: String, why: String },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}; the image was altered or damaged in transit, nothing was committed")]
    Digest {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{reference}: layer {index} rebuilds as store layer {actual}, but the image config says {expected}; the image was altered, nothing was committed")]
    LayerMismatch {
        reference: String,
        index: usize,
        expected: String,
        actual: String,
    },
    #[error("{reference}: its layers make template {actual}, but the image config says {expected}; the image was altered, nothing was committed")]
    TemplateMismatch {
        reference: String,
        expected: String,
        actual: String,
    },
    #[error("{reference}: no image for platform {platform}; the index has {available}; pass --platform OS/ARCH")]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("{registry}: not authorised: {why}; log in with `podman login` or `skopeo login` (or put the credentials in $REGISTRY_AUTH_FILE)")]
    Unauthorized { registry: String, why: String },
    #[error("{path}: cannot read registry credentials: {why}")]
    AuthFile { path: PathBuf, why: String },
    #[error("{url}: cannot reach the registry after {attempts} attempts ({reason}); check that it runs, and pass --tls-verify=false for a plain-HTTP registry")]
    Unreachable {
        url: String,
        attempts: u32,
        reason: String,
    },
    #[error("{what}: the transfer stopped at {have} of {size} bytes ({reason}); run the pull again to resume")]
    Interrupted {
        what: String,
        have: u64,
        size: u64,
        reason: String,
    },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{reference}: layer {index}: {source}")]
    Layer {
        reference: String,
        index: usize,
        #[source]
        source: layer_tar::LayerTarError,
    },
    #[error("{reference}: layer {index}: {source}")]
    Extract {
        reference: String,
        index: usize,
        #[source]
        source: crate::export::ExportError,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("interrupted; the store is unchanged")]
    Cancelled,
    #[error("internal error: {0}; please report it")]
    Internal(String),
}

impl OciError {
    /// Refused because what arrived is not what was named (exit code VERIFY).
    pub fn is_verification(&self) -> bool {
        matches!(
            self,
            OciError::Digest { .. }
                | OciError::LayerMismatch { .. }
                | OciError::TemplateMismatch { .. }
        )
    }

    pub fn is_network(&self) -> bool {
        matches!(
            self,
            OciError::Unreachable { .. }
                | OciError::Interrupted { .. }
                | OciError::Status { .. }
                | OciError::Unauthorized { .. }
        )
    }

    pub fn is_bad_image(&self) -> bool {
        matches!(
            self,
            OciError::BadImage { .. }
                | OciError::Layer { .. }
                | OciError::Extract { .. }
                | OciError::NoPlatform { .. }
                | OciError::Store(crate::store::StoreError::BadLayer { .. })
        )
    }
}

/// Byte counts for progress; called from worker threads.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// Where blobs and manifests are read from.
pub(crate) trait Source: Sync {
    /// The manifest `reference` (a tag or a digest) names, and its media
    /// type if the source says. A manifest fetched by digest is checked.
    fn manifest(&self, reference: &str) -> Result<(Vec<u8>, Option<String>), OciError>;
    /// Blob `d` into `dest`, continuing a partial file there where the
    /// source can; size and digest are checked as it streams. A blob that
    /// fails the check is removed.
    fn blob(&self, d: &Descriptor, dest: &Path, progress: &dyn Fn(u64)) -> Result<(), OciError>;
}

/// Where blobs and manifests are written.
pub(crate) trait Target: Sync {
    fn has_blob(&self, d: &Descriptor) -> Result<bool, OciError>;
    fn put_blob(&self, d: &Descriptor, file: &Path, progress: &dyn Fn(u64))
        -> Result<(), OciError>;
    fn put_manifest(&self, tag: &str, bytes: &[u8], media_type: &str) -> Result<(), OciError>;
    /// A manifest whose `subject` is `subject_digest` (an SBOM).
    fn put_referrer(
        &self,
        subject_digest: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(), OciError>;
}

/// Copy blob `d` from `from` into `dest`, checking size and digest as it
/// streams. A failed check removes `dest`.
pub(crate) fn copy_verified(
    mut from: impl Read,
    d: &Descriptor,
    dest: &Path,
    progress: &dyn Fn(u64),
    what: &str,
) -> Result<(), OciError> {
    let werr = |source| OciError::Io {
        op: "write",
        path: dest.to_path_buf(),
        source,
    };
    let rerr = |source| OciError::Io {
        op: "read",
        path: PathBuf::from(what),
        source,
    };
    let mut out = std::fs::File::create(dest).map_err(werr)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        crate::cancel::check().map_err(|_| OciError::Cancelled)?;
        let k = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(rerr(e)),
        };
        h.update(&buf[..k]);
        out.write_all(&buf[..k]).map_err(werr)?;
        n += k as u64;
        progress(k as u64);
        if n > d.size {
            break;
        }
    }
    // Not synced here: a pulled blob is read once into staged objects,
    // which the commit syncs; a target that keeps it syncs it itself.
    let actual = format!("sha256:{}", hex::encode(h.finalize()));
    if actual != d.digest || n != d.size {
        let _ = std::fs::remove_file(dest);
        return Err(OciError::Digest {
            what: what.to_string(),
            expected: format!("{} ({} bytes)", d.digest, d.size),
            actual: format!("{actual} ({n} bytes)"),
        });
    }
    Ok(())
}

/// The local name of the template image `reference` names, pulling it
/// first when the store has no template of that name (`vzctl create
/// --ostemplate REF`). The name is the reference's default one
/// (`HOST/templates/debian-12:v1` → `debian-12-v1`).
pub fn ensure_template(
    store: &crate::store::Store,
    reference: &str,
    tls_verify: bool,
    reporter: &dyn crate::progress::Reporter,
) -> Result<String, OciError> {
    let r = Reference::parse(reference).map_err(|why| OciError::BadReference {
        reference: reference.to_string(),
        why,
    })?;
    let name = r.default_name();
    if store.resolve(&name).is_ok() {
        return Ok(name);
    }
    let opts = PullOptions {
        name: Some(name.clone()),
        tls_verify,
        ..PullOptions::default()
    };
    pull(store, reference, &opts, reporter)?;
    Ok(name)
}

/// Removes a path (file or tree) on drop unless disarmed.
pub(crate) struct Cleanup(pub Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
    }
}
