//! `vzpkg pull`: an OCI image into the store.

use super::growing::{GrowingReader, Growth};
use super::image::{
    digest_of, host_arch, media, sha256_hex, AnyManifest, Descriptor, ImageConfig, Manifest,
};
use super::layout::{self, Layout};
use super::reference::Reference;
use super::registry::Registry;
use super::{Cleanup, OciError, Source};
use crate::progress::{Reporter, Stage};
use crate::store::{Store, TemplateMeta};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The name to tag the template with; default from the reference.
    pub name: Option<String>,
    pub tls_verify: bool,
    /// Blobs fetched at once.
    pub jobs: usize,
    /// `OS/ARCH[/VARIANT]` to pick from an image index; default linux and
    /// this host's architecture.
    pub platform: Option<String>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            name: None,
            tls_verify: true,
            jobs: 4,
            platform: None,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PullReport {
    pub reference: String,
    pub name: String,
    pub template_id: String,
    /// `sha256:` of the image manifest pulled.
    pub digest: String,
    pub layers: usize,
    /// Layers the store already had (not downloaded).
    pub layers_present: usize,
    pub blobs_fetched: usize,
    /// Blob bytes that came over the wire in this run (a resumed blob
    /// counts only its rest).
    pub bytes_fetched: u64,
    /// Made by another tool: applied and split into the store's layers.
    pub foreign: bool,
    pub seconds: f64,
}

enum Src {
    /// The cleanup removes an unpacked archive once the pull is done.
    Layout(Layout, #[allow(dead_code)] Option<Cleanup>),
    Registry(Registry),
}

impl Src {
    fn source(&self) -> &dyn Source {
        match self {
            Src::Layout(l, _) => l,
            Src::Registry(r) => r,
        }
    }
}

/// `linux/amd64[/v8]` → (os, arch, variant).
fn parse_platform(s: &str) -> Result<(String, String, Option<String>), String> {
    let parts: Vec<&str> = s.split('/').collect();
    match parts[..] {
        [os, arch] if !os.is_empty() && !arch.is_empty() => Ok((os.into(), arch.into(), None)),
        [os, arch, v] if !os.is_empty() && !arch.is_empty() => {
            Ok((os.into(), arch.into(), Some(v.into())))
        }
        _ => Err(format!(
            "`{s}` is not a platform; use OS/ARCH[/VARIANT], e.g. linux/amd64"
        )),
    }
}

/// Where blob `d` is downloaded to: the store's `partial/`, where an
/// interrupted run left what it got.
fn blob_dest(store: &Store, d: &Descriptor) -> Result<PathBuf, OciError> {
    let hex = sha256_hex(&d.digest).ok_or_else(|| OciError::BadImage {
        reference: d.digest.clone(),
        why: "a blob digest is not sha256".into(),
    })?;
    Ok(store.partial_dir()?.join(format!("sha256-{hex}")))
}

/// Fetch `d` into the store's `partial/` (resuming what is there).
fn fetch(
    store: &Store,
    src: &dyn Source,
    d: &Descriptor,
    reporter: &dyn Reporter,
) -> Result<PathBuf, OciError> {
    let dest = blob_dest(store, d)?;
    src.blob(d, &dest, &|n| {
        reporter.advance(Stage::Download, n, &d.digest)
    })?;
    Ok(dest)
}

/// Fetch layer `d` and hand it to `read` as it arrives; the fetch's error
/// comes first, since a blob that failed its digest explains whatever
/// `read` made of it.
fn fetch_streaming<T>(
    store: &Store,
    src: &dyn Source,
    d: &Descriptor,
    reporter: &dyn Reporter,
    read: impl FnOnce(GrowingReader) -> Result<T, OciError>,
) -> Result<(T, PathBuf), OciError> {
    let dest = blob_dest(store, d)?;
    let werr = |source| OciError::Io {
        op: "write",
        path: dest.clone(),
        source,
    };
    // There before the reader opens it; the fetch continues what it holds.
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&dest)
        .map_err(werr)?;
    let file = std::fs::File::open(&dest).map_err(werr)?;
    let growth = Growth::default();
    let (fetched, got) = std::thread::scope(|s| {
        let fetcher = s.spawn(|| {
            let _ends = growth.failed_unless_finished();
            let r = src.blob(d, &dest, &|n| {
                reporter.advance(Stage::Download, n, &d.digest);
                growth.grew(n);
            });
            growth.finish(r.is_ok());
            r
        });
        let got = read(GrowingReader::new(file, &growth));
        // Whatever `read` did, the fetch ends on its own: it finishes the
        // blob for a later run or fails.
        let fetched = fetcher
            .join()
            .unwrap_or_else(|_| Err(OciError::Internal("the blob download panicked".into())));
        (fetched, got)
    });
    fetched?;
    Ok((got?, dest))
}

fn small_blob(
    store: &Store,
    src: &dyn Source,
    d: &Descriptor,
    reference: &str,
) -> Result<Vec<u8>, OciError> {
    if d.size > 64 << 20 {
        return Err(OciError::BadImage {
            reference: reference.to_string(),
            why: format!("its config is {} bytes", d.size),
        });
    }
    let p = fetch(store, src, d, &crate::progress::Silent)?;
    let bytes = std::fs::read(&p).map_err(|source| OciError::Io {
        op: "read",
        path: p.clone(),
        source,
    })?;
    let _ = std::fs::remove_file(&p);
    Ok(bytes)
}

/// Pull `from` into the store; returns what was done.
pub fn pull(
    store: &Store,
    from: &str,
    opts: &PullOptions,
    reporter: &dyn Reporter,
) -> Result<PullReport, OciError> {
    let started = std::time::Instant::now();
    let reference = Reference::parse(from).map_err(|why| OciError::BadReference {
        reference: from.to_string(),
        why,
    })?;
    let name = opts
        .name
        .clone()
        .unwrap_or_else(|| reference.default_name());
    crate::store::check_name(&name)?;
    let want = parse_platform(
        &opts
            .platform
            .clone()
            .unwrap_or_else(|| format!("linux/{}", host_arch())),
    )
    .map_err(|why| OciError::BadReference {
        reference: from.to_string(),
        why,
    })?;
    let (src, tag) = match &reference {
        Reference::Layout { dir, tag } => (Src::Layout(Layout::open(dir)?, None), tag.clone()),
        Reference::Archive { file, tag } => {
            let scratch = store.staging_dir()?;
            let guard = Cleanup(Some(scratch.clone()));
            layout::unpack_archive(file, &scratch)?;
            (
                Src::Layout(Layout::open(&scratch)?, Some(guard)),
                tag.clone(),
            )
        }
        Reference::Registry(r) => (
            Src::Registry(Registry::new(r, opts.tls_verify, false)?),
            r.reference.clone(),
        ),
    };
    let source = src.source();
    let shown = reference.to_string();
    let bad = |why: String| OciError::BadImage {
        reference: shown.clone(),
        why,
    };

    let (bytes, mt) = source.manifest(&tag)?;
    if sha256_hex(&tag).is_some() && digest_of(&bytes) != tag {
        return Err(OciError::Digest {
            what: format!("manifest {shown}"),
            expected: tag.clone(),
            actual: digest_of(&bytes),
        });
    }
    let (manifest, digest): (Manifest, String) = match AnyManifest::parse(&bytes, mt.as_deref())
        .map_err(&bad)?
    {
        AnyManifest::Image(m) => (*m, digest_of(&bytes)),
        AnyManifest::Index(index) => {
            let (os, arch, variant) = &want;
            let pick = index.manifests.iter().find(|d| {
                d.platform.as_ref().is_some_and(|p| {
                    &p.os == os
                        && &p.architecture == arch
                        && (variant.is_none() || p.variant.as_ref() == variant.as_ref())
                })
            });
            let Some(d) = pick else {
                let available: Vec<String> = index
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref())
                    .map(|p| match &p.variant {
                        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                        None => format!("{}/{}", p.os, p.architecture),
                    })
                    .collect();
                return Err(OciError::NoPlatform {
                    reference: shown.clone(),
                    platform: match variant {
                        Some(v) => format!("{os}/{arch}/{v}"),
                        None => format!("{os}/{arch}"),
                    },
                    available: if available.is_empty() {
                        "none".into()
                    } else {
                        available.join(", ")
                    },
                });
            };
            let (b, mt2) = source.manifest(&d.digest)?;
            if digest_of(&b) != d.digest {
                return Err(OciError::Digest {
                    what: format!("manifest {shown} for {}/{}", want.0, want.1),
                    expected: d.digest.clone(),
                    actual: digest_of(&b),
                });
            }
            match AnyManifest::parse(&b, mt2.as_deref().or(Some(&d.media_type))).map_err(&bad)? {
                AnyManifest::Image(m) => (*m, d.digest.clone()),
                AnyManifest::Index(_) => return Err(bad("an index inside an index".into())),
            }
        }
    };
    if manifest.config.media_type != media::CONFIG
        && manifest.config.media_type != media::DOCKER_CONFIG
    {
        return Err(bad(format!(
            "it is not a container image (config type {}); vzpkg pulls images, not artifacts",
            manifest.config.media_type
        )));
    }
    for l in &manifest.layers {
        let ok = l
            .media_type
            .starts_with("application/vnd.oci.image.layer.v1.tar")
            || l.media_type
                .starts_with("application/vnd.docker.image.rootfs.diff.tar");
        if !ok {
            return Err(bad(format!(
                "layer {} has media type {}, which is not a filesystem layer",
                l.digest, l.media_type
            )));
        }
    }
    let config_bytes = small_blob(store, source, &manifest.config, &shown)?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| bad(format!("its config does not parse: {e}")))?;
    if config.os != "linux" {
        return Err(bad(format!("it is an image for {}, not linux", config.os)));
    }

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
        .map_err(|e| OciError::Internal(e.to_string()))?;
    let fetched = AtomicUsize::new(0);
    let wire_before = match &src {
        Src::Registry(r) => r.bytes_in.load(Ordering::Relaxed),
        _ => 0,
    };
    let local_bytes = AtomicU64::new(0);
    let (template_id, present, foreign) = match &config.vzpkg {
        Some(tc) => {
            if tc.layers.len() != manifest.layers.len()
                || config.rootfs.diff_ids.len() != manifest.layers.len()
            {
                return Err(bad(format!(
                    "its config lists {} store layers and {} diff ids for {} image layers",
                    tc.layers.len(),
                    config.rootfs.diff_ids.len(),
                    manifest.layers.len()
                )));
            }
            let expect = Store::template_id(&tc.layers);
            if expect != tc.template_id {
                return Err(OciError::TemplateMismatch {
                    reference: shown.clone(),
                    expected: tc.template_id.clone(),
                    actual: expect,
                });
            }
            let staged = store.stage_objects()?;
            let missing: Vec<usize> = (0..tc.layers.len())
                .filter(|&i| !store.has_layer(&tc.layers[i]))
                .collect();
            let total: u64 = missing.iter().map(|&i| manifest.layers[i].size).sum();
            reporter.stage_start(Stage::Download, total);
            let got: Vec<(usize, Vec<crate::store::Entry>)> = pool.install(|| {
                missing
                    .par_iter()
                    .map(|&i| {
                        let d = &manifest.layers[i];
                        let (entries, file) = fetch_streaming(store, source, d, reporter, |r| {
                            let dec = super::compress::decoder(
                                &d.media_type,
                                std::io::BufReader::with_capacity(1 << 20, r),
                            )
                            .map_err(|source| OciError::Io {
                                op: "decompress",
                                path: PathBuf::from(&d.digest),
                                source,
                            })?;
                            // No diff id is hashed: the layer id below, from
                            // every entry and the hash of every file, checks
                            // the same tree, and the blob's digest the bytes.
                            super::layer_tar::read_layer(dec, &staged).map_err(|source| {
                                OciError::Layer {
                                    reference: shown.clone(),
                                    index: i,
                                    source,
                                }
                            })
                        })?;
                        fetched.fetch_add(1, Ordering::Relaxed);
                        local_bytes.fetch_add(d.size, Ordering::Relaxed);
                        let id = Store::layer_id(&entries);
                        if id != tc.layers[i] {
                            return Err(OciError::LayerMismatch {
                                reference: shown.clone(),
                                index: i,
                                expected: tc.layers[i].clone(),
                                actual: id,
                            });
                        }
                        // Read and verified: its objects are staged, and the
                        // blob gone before the commit's sync need not reach
                        // the disk at all.
                        let _ = std::fs::remove_file(&file);
                        Ok((i, entries))
                    })
                    .collect::<Result<Vec<_>, OciError>>()
            })?;
            reporter.stage_end(Stage::Download);
            reporter.stage_start(Stage::Commit, tc.layers.len() as u64);
            let mut layers: Vec<Option<Vec<crate::store::Entry>>> = vec![None; tc.layers.len()];
            for (i, entries) in got {
                layers[i] = Some(entries);
            }
            let mut all = Vec::new();
            for (i, l) in layers.into_iter().enumerate() {
                all.push(match l {
                    Some(e) => e,
                    None => store.layer_entries(&tc.layers[i])?,
                });
            }
            let meta = TemplateMeta {
                name: name.clone(),
                recipe: tc.recipe.clone(),
                packages: tc.packages.clone(),
                facts: tc.facts.clone(),
            };
            let id = store.commit_layers(&staged, all, &meta, Path::new(&shown))?;
            reporter.stage_end(Stage::Commit);
            if id != tc.template_id {
                return Err(OciError::TemplateMismatch {
                    reference: shown.clone(),
                    expected: tc.template_id.clone(),
                    actual: id,
                });
            }
            (id, tc.layers.len() - missing.len(), false)
        }
        None => {
            let total: u64 = manifest.layers.iter().map(|l| l.size).sum();
            reporter.stage_start(Stage::Download, total);
            let files: Vec<PathBuf> = pool.install(|| {
                manifest
                    .layers
                    .par_iter()
                    .map(|d| {
                        let f = fetch(store, source, d, reporter)?;
                        fetched.fetch_add(1, Ordering::Relaxed);
                        local_bytes.fetch_add(d.size, Ordering::Relaxed);
                        Ok(f)
                    })
                    .collect::<Result<Vec<_>, OciError>>()
            })?;
            reporter.stage_end(Stage::Download);
            reporter.stage_start(Stage::Unpack, files.len() as u64);
            let mut meta = TemplateMeta {
                name: name.clone(),
                ..TemplateMeta::default()
            };
            meta.facts.insert("oci.source".into(), shown.clone());
            meta.facts.insert("oci.manifest".into(), digest.clone());
            meta.facts
                .insert("oci.architecture".into(), config.architecture.clone());
            let id = super::foreign::commit(store, &files, &meta, &shown, reporter)?;
            reporter.stage_end(Stage::Unpack);
            for f in files {
                let _ = std::fs::remove_file(f);
            }
            (id, 0, true)
        }
    };
    let bytes_fetched = match &src {
        Src::Registry(r) => r.bytes_in.load(Ordering::Relaxed) - wire_before,
        _ => local_bytes.load(Ordering::Relaxed),
    };
    Ok(PullReport {
        reference: shown,
        name,
        template_id,
        digest,
        layers: manifest.layers.len(),
        layers_present: present,
        blobs_fetched: fetched.load(Ordering::Relaxed),
        bytes_fetched,
        foreign,
        seconds: started.elapsed().as_secs_f64(),
    })
}
