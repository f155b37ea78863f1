//! `vzpkg push`: a template out as an OCI image.

use super::compress::{encoder, Compression};
use super::image::{
    self, digest_of, media, Descriptor, ImageConfig, Manifest, RootFs, RunConfig, TemplateConfig,
};
use super::layout::{self, Layout};
use super::reference::Reference;
use super::registry::Registry;
use super::{Cleanup, OciError, Target};
use crate::progress::{Reporter, Stage};
use crate::store::{Store, TemplateDetails};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[derive(Debug, Clone)]
pub struct PushOptions {
    pub compression: Compression,
    /// False: talk plain HTTP to the registry.
    pub tls_verify: bool,
    /// Blobs built and sent at once.
    pub jobs: usize,
    /// Attach an SPDX SBOM of the template's packages.
    pub sbom: bool,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            compression: Compression::Zstd,
            tls_verify: true,
            jobs: 4,
            sbom: true,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PushReport {
    pub reference: String,
    pub template_id: String,
    /// `sha256:` of the image manifest.
    pub digest: String,
    pub layers: usize,
    /// Blobs the target lacked and got.
    pub blobs_pushed: usize,
    /// Blobs the target had already.
    pub blobs_skipped: usize,
    pub bytes_pushed: u64,
    /// Digest of the SBOM artifact manifest, if one was attached.
    pub sbom: Option<String>,
    pub seconds: f64,
}

/// Descriptor of a layer blob, remembered per (layer, compression) so a
/// later push can ask the target before tarring the layer again.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct LayerBlob {
    digest: String,
    size: u64,
    diff_id: String,
    /// The cached blob file as it was when written and checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stamp: Option<Stamp>,
}

/// A file's inode, size and change times: while they stay, the file is the
/// one that was written (what git's index trusts; the store trusts its
/// objects the same way, and `fsck` reads them all).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(md: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            ino: md.ino(),
            len: md.len(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
        }
    }
}

struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
    n: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.hash.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The cached descriptor of layer `layer` compressed with `c`, and the blob.
fn blob_cache_paths(store: &Store, layer: &str, c: Compression) -> (PathBuf, PathBuf) {
    let dir = store.blob_cache_dir();
    let stem = format!("{layer}.{}", c.settings());
    (
        dir.join(format!("{stem}.json")),
        dir.join(format!("{stem}.blob")),
    )
}

/// Whether `file` holds blob `b`: untouched since it was written, or else
/// read and hashed. (A target checks the digest again as it takes it.)
fn holds(file: &Path, b: &LayerBlob) -> bool {
    let Ok(mut f) = std::fs::File::open(file) else {
        return false;
    };
    let Ok(md) = f.metadata() else {
        return false;
    };
    if md.len() != b.size {
        return false;
    }
    if b.stamp.as_ref() == Some(&Stamp::of(&md)) {
        return true;
    }
    // Big reads: `io::copy`'s 8 KiB ones made a call per page.
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => h.update(&buf[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    format!("sha256:{}", hex::encode(h.finalize())) == b.digest
}

/// Tar and compress store layer `layer` into `out`.
fn build_blob(
    store: &Store,
    layer: &str,
    c: Compression,
    out: &Path,
) -> Result<LayerBlob, OciError> {
    let entries = store.layer_entries(layer)?;
    let werr = |source| OciError::Io {
        op: "write",
        path: out.to_path_buf(),
        source,
    };
    let f = std::fs::File::create(out).map_err(werr)?;
    let compressed = HashingWriter {
        inner: std::io::BufWriter::with_capacity(1 << 20, f),
        hash: Sha256::new(),
        n: 0,
    };
    let enc = encoder(c, compressed).map_err(werr)?;
    let mut tar = HashingWriter {
        inner: enc,
        hash: Sha256::new(),
        n: 0,
    };
    let open = |object: &str| {
        let p = store.object_file(object);
        std::fs::File::open(&p).map_err(|source| crate::store::StoreError::Io {
            op: "read",
            path: p,
            source,
        })
    };
    super::layer_tar::write_layer(&entries, &open, &mut tar).map_err(|source| OciError::Layer {
        reference: format!("store layer {layer}"),
        index: 0,
        source,
    })?;
    let diff_id = format!("sha256:{}", hex::encode(tar.hash.finalize()));
    let mut compressed = tar.inner.finish().map_err(werr)?;
    compressed.flush().map_err(werr)?;
    let digest = format!("sha256:{}", hex::encode(compressed.hash.finalize()));
    let size = compressed.n;
    // Not synced: the blob is a cache, checked against its digest before
    // each later use.
    compressed
        .inner
        .into_inner()
        .map_err(|e| werr(e.into_error()))?;
    Ok(LayerBlob {
        digest,
        size,
        diff_id,
        stamp: None,
    })
}

fn recipe_field(recipe: &str, key: &str) -> Option<String> {
    let t: toml::Table = toml::from_str(recipe).ok()?;
    t.get(key)?.as_str().map(str::to_string)
}

/// The image config and manifest annotations of a template: a function of
/// its record alone, so every host writes the same bytes.
fn config_for(
    d: &TemplateDetails,
    diff_ids: Vec<String>,
) -> (ImageConfig, BTreeMap<String, String>) {
    let arch = recipe_field(&d.recipe, "architecture")
        .as_deref()
        .and_then(image::oci_arch)
        .or_else(|| {
            d.package_list
                .iter()
                .find_map(|p| image::oci_arch(&p.architecture))
        })
        .unwrap_or_else(image::host_arch);
    let mut ann = BTreeMap::new();
    if let Some(n) = recipe_field(&d.recipe, "name") {
        ann.insert("org.opencontainers.image.title".to_string(), n);
    }
    if let Some(desc) = recipe_field(&d.recipe, "description").filter(|s| !s.is_empty()) {
        ann.insert("org.opencontainers.image.description".to_string(), desc);
    }
    ann.insert(
        "org.opencontainers.image.version".to_string(),
        d.info.id.clone(),
    );
    ann.insert("vzpkg.template.id".to_string(), d.info.id.clone());
    ann.insert(
        "vzpkg.template.packages".to_string(),
        d.package_list.len().to_string(),
    );
    let config = ImageConfig {
        architecture: arch.to_string(),
        os: "linux".into(),
        variant: None,
        config: RunConfig {
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            cmd: vec!["/bin/sh".into()],
            labels: ann.clone(),
        },
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        vzpkg: Some(TemplateConfig {
            format: 1,
            template_id: d.info.id.clone(),
            layers: d.layers.iter().map(|l| l.id.clone()).collect(),
            recipe: d.recipe.clone(),
            packages: d.package_list.clone(),
            facts: d.facts.clone(),
        }),
    };
    (config, ann)
}

enum Dest {
    Layout(Layout),
    /// The cleanup removes the scratch layout once the archive is written.
    Archive(Layout, PathBuf, #[allow(dead_code)] Cleanup),
    Registry(Registry),
}

impl Dest {
    fn target(&self) -> &dyn Target {
        match self {
            Dest::Layout(l) | Dest::Archive(l, _, _) => l,
            Dest::Registry(r) => r,
        }
    }
}

/// Push template `name_or_id` to `to` (`oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
/// `HOST/REPO[:TAG]`).
pub fn push(
    store: &Store,
    name_or_id: &str,
    to: &str,
    opts: &PushOptions,
    reporter: &dyn Reporter,
) -> Result<PushReport, OciError> {
    let started = std::time::Instant::now();
    let reference = Reference::parse(to).map_err(|why| OciError::BadReference {
        reference: to.to_string(),
        why,
    })?;
    let tag = match &reference {
        Reference::Layout { tag, .. } | Reference::Archive { tag, .. } => tag.clone(),
        Reference::Registry(r) if r.is_digest() => {
            return Err(OciError::BadReference {
                reference: to.to_string(),
                why: "a push names a tag, not a digest".into(),
            })
        }
        Reference::Registry(r) => r.reference.clone(),
    };
    let details = store.info(name_or_id)?;
    let dest = match &reference {
        Reference::Layout { dir, .. } => Dest::Layout(Layout::create(dir)?),
        Reference::Archive { file, .. } => {
            let scratch = store.staging_dir()?;
            let guard = Cleanup(Some(scratch.clone()));
            if file.exists() {
                // Keep what the archive holds (other tags), add ours.
                layout::unpack_archive(file, &scratch)?;
            }
            Dest::Archive(Layout::create(&scratch)?, file.clone(), guard)
        }
        Reference::Registry(r) => Dest::Registry(Registry::new(r, opts.tls_verify, true)?),
    };
    let target = dest.target();

    let scratch_dir = store.staging_dir()?;
    let _scratch = Cleanup(Some(scratch_dir.clone()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
        .map_err(|e| OciError::Internal(e.to_string()))?;
    let pushed = AtomicUsize::new(0);
    let skipped = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    let total: u64 = details.layers.iter().map(|l| l.bytes).sum();
    reporter.stage_start(Stage::Upload, total);
    let layer_blobs: Vec<(Descriptor, String)> = pool.install(|| {
        details
            .layers
            .par_iter()
            .map(|l| -> Result<(Descriptor, String), OciError> {
                crate::cancel::check().map_err(|_| OciError::Cancelled)?;
                let (cache, cached_blob) = blob_cache_paths(store, &l.id, opts.compression);
                let known: Option<LayerBlob> = std::fs::read(&cache)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                let mk = |b: &LayerBlob| {
                    Descriptor::new(
                        opts.compression.layer_media_type(),
                        b.digest.clone(),
                        b.size,
                    )
                };
                if let Some(b) = &known {
                    if target.has_blob(&mk(b))? {
                        skipped.fetch_add(1, Ordering::Relaxed);
                        reporter.advance(Stage::Upload, l.bytes, &l.id);
                        return Ok((mk(b), b.diff_id.clone()));
                    }
                }
                // The blob an earlier push made, if it is still whole; else
                // tar and compress the layer again (and keep the result).
                let obtain =
                    |trusted: Option<&LayerBlob>| -> Result<(LayerBlob, PathBuf), OciError> {
                        if let Some(b) = trusted.filter(|b| holds(&cached_blob, b)) {
                            return Ok((b.clone(), cached_blob.clone()));
                        }
                        let file = scratch_dir.join(format!("{}.blob", l.id));
                        let mut b = build_blob(store, &l.id, opts.compression, &file)?;
                        if let Some(k) = &known {
                            if k.digest != b.digest {
                                return Err(OciError::Internal(format!(
                                    "layer {} tarred to {} now and {} before",
                                    l.id, b.digest, k.digest
                                )));
                            }
                        }
                        let _ = std::fs::create_dir_all(store.blob_cache_dir());
                        // The blob first: a descriptor is only trusted beside
                        // a blob that matches its stamp or its digest.
                        if std::fs::rename(&file, &cached_blob).is_err() {
                            return Ok((b, file));
                        }
                        b.stamp = std::fs::metadata(&cached_blob).ok().map(|m| Stamp::of(&m));
                        if let Ok(json) = serde_json::to_vec(&b) {
                            let _ = std::fs::write(&cache, json);
                        }
                        Ok((b, cached_blob.clone()))
                    };
                let (mut b, mut src) = obtain(known.as_ref())?;
                let desc = mk(&b);
                if target.has_blob(&desc)? {
                    skipped.fetch_add(1, Ordering::Relaxed);
                } else {
                    let mut put = target.put_blob(&desc, &src, &|_| {});
                    // A cached blob changed in place, which its stamp does
                    // not show, is refused by the target's digest check:
                    // made again, it goes once more.
                    if matches!(
                        put,
                        Err(OciError::Digest { .. } | OciError::Status { status: 400, .. })
                    ) && src == cached_blob
                    {
                        let _ = std::fs::remove_file(&cached_blob);
                        (b, src) = obtain(None)?;
                        put = target.put_blob(&mk(&b), &src, &|_| {});
                    }
                    put?;
                    pushed.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(desc.size, Ordering::Relaxed);
                }
                reporter.advance(Stage::Upload, l.bytes, &l.id);
                Ok((desc, b.diff_id))
            })
            .collect::<Result<Vec<_>, OciError>>()
    })?;
    reporter.stage_end(Stage::Upload);

    let (layers, diff_ids): (Vec<Descriptor>, Vec<String>) = layer_blobs.into_iter().unzip();
    let (config, annotations) = config_for(&details, diff_ids);
    let config_bytes =
        serde_json::to_vec(&config).map_err(|e| OciError::Internal(e.to_string()))?;
    let config_desc = Descriptor::new(
        media::CONFIG,
        digest_of(&config_bytes),
        config_bytes.len() as u64,
    );
    let small = |bytes_: &[u8], desc: &Descriptor| -> Result<(), OciError> {
        if target.has_blob(desc)? {
            skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let f = scratch_dir.join(format!("{}.small", &desc.digest[7..]));
        std::fs::write(&f, bytes_).map_err(|source| OciError::Io {
            op: "write",
            path: f.clone(),
            source,
        })?;
        target.put_blob(desc, &f, &|_| {})?;
        pushed.fetch_add(1, Ordering::Relaxed);
        bytes.fetch_add(desc.size, Ordering::Relaxed);
        Ok(())
    };
    small(&config_bytes, &config_desc)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::MANIFEST.into()),
        artifact_type: None,
        config: config_desc,
        layers,
        subject: None,
        annotations: Some(annotations),
    };
    let manifest_bytes =
        serde_json::to_vec(&manifest).map_err(|e| OciError::Internal(e.to_string()))?;
    let digest = digest_of(&manifest_bytes);
    target.put_manifest(&tag, &manifest_bytes, media::MANIFEST)?;

    let mut sbom_digest = None;
    if opts.sbom {
        let doc = super::sbom::spdx(&details, &digest);
        let sbom_desc = Descriptor::new(media::SPDX, digest_of(&doc), doc.len() as u64);
        small(&doc, &sbom_desc)?;
        let empty = b"{}";
        let empty_desc = Descriptor::new(media::EMPTY, digest_of(empty), empty.len() as u64);
        small(empty, &empty_desc)?;
        let artifact = Manifest {
            schema_version: 2,
            media_type: Some(media::MANIFEST.into()),
            artifact_type: Some(media::SPDX.into()),
            config: empty_desc,
            layers: vec![sbom_desc],
            subject: Some(Descriptor::new(
                media::MANIFEST,
                digest.clone(),
                manifest_bytes.len() as u64,
            )),
            annotations: None,
        };
        let bytes_ =
            serde_json::to_vec(&artifact).map_err(|e| OciError::Internal(e.to_string()))?;
        target.put_referrer(&digest, &bytes_, media::MANIFEST)?;
        sbom_digest = Some(digest_of(&bytes_));
    }
    if let Dest::Archive(l, file, _) = &dest {
        layout::write_archive(l.dir(), file)?;
    }
    let bytes_pushed = match &dest {
        Dest::Registry(r) => r.bytes_out.load(Ordering::Relaxed),
        _ => bytes.load(Ordering::Relaxed),
    };
    Ok(PushReport {
        reference: reference.to_string(),
        template_id: details.info.id.clone(),
        digest,
        layers: details.layers.len(),
        blobs_pushed: pushed.load(Ordering::Relaxed),
        blobs_skipped: skipped.load(Ordering::Relaxed),
        bytes_pushed,
        sbom: sbom_digest,
        seconds: started.elapsed().as_secs_f64(),
    })
}
