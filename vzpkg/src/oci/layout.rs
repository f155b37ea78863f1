//! OCI image layouts (`oci:DIR`) and archives of them (`oci-archive:FILE`):
//! `oci-layout`, `index.json` naming manifests by
//! `org.opencontainers.image.ref.name`, and `blobs/sha256/<hex>`.

use super::image::{digest_of, media, sha256_hex, Descriptor, Index};
use super::{copy_verified, OciError, Source, Target};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

pub struct Layout {
    dir: PathBuf,
    /// Serialises index.json updates within this process.
    index_lock: Mutex<()>,
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OciError {
    let path = path.to_path_buf();
    move |source| OciError::Io { op, path, source }
}

impl Layout {
    /// An existing layout (for pulling).
    pub fn open(dir: &Path) -> Result<Layout, OciError> {
        let marker = dir.join("oci-layout");
        if !marker.is_file() {
            return Err(OciError::NotFound {
                reference: dir.display().to_string(),
                why: "there is no OCI image layout there (no `oci-layout` file)".into(),
            });
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
            index_lock: Mutex::new(()),
        })
    }

    /// A layout to push to, created if missing.
    pub fn create(dir: &Path) -> Result<Layout, OciError> {
        let blobs = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(io_err("create", &blobs))?;
        let marker = dir.join("oci-layout");
        if !marker.exists() {
            std::fs::write(&marker, LAYOUT_FILE).map_err(io_err("write", &marker))?;
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
            index_lock: Mutex::new(()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf, OciError> {
        let hex = sha256_hex(digest).ok_or_else(|| OciError::BadImage {
            reference: self.dir.display().to_string(),
            why: format!("`{digest}` is not a sha256 digest"),
        })?;
        Ok(self.dir.join("blobs").join("sha256").join(hex))
    }

    fn read_index(&self) -> Result<Index, OciError> {
        let p = self.dir.join("index.json");
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| OciError::BadImage {
                reference: p.display().to_string(),
                why: format!("index.json does not parse: {e}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index {
                schema_version: 2,
                media_type: Some(media::INDEX.into()),
                manifests: Vec::new(),
                annotations: None,
            }),
            Err(e) => Err(io_err("read", &p)(e)),
        }
    }

    /// Write `bytes` to `dest` through a temporary name beside it.
    fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), OciError> {
        let tmp = dest.with_extension(format!("tmp.{}", std::process::id()));
        let r = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, dest)
        })();
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r.map_err(io_err("write", dest))
    }

    pub fn put_bytes(&self, bytes: &[u8]) -> Result<String, OciError> {
        let digest = digest_of(bytes);
        let p = self.blob_path(&digest)?;
        if !p.exists() {
            Self::write_atomic(&p, bytes)?;
        }
        Ok(digest)
    }
}

impl Source for Layout {
    fn manifest(&self, reference: &str) -> Result<(Vec<u8>, Option<String>), OciError> {
        let desc = if sha256_hex(reference).is_some() {
            None
        } else {
            let index = self.read_index()?;
            let found = index.manifests.iter().find(|d| {
                d.annotations
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .is_some_and(|n| n == reference)
            });
            match found {
                Some(d) => Some(d.clone()),
                // One untagged image: take it, as skopeo does.
                None if index.manifests.len() == 1
                    && index.manifests[0]
                        .annotations
                        .as_ref()
                        .is_none_or(|a| !a.contains_key(REF_NAME)) =>
                {
                    Some(index.manifests[0].clone())
                }
                None => {
                    let tags: Vec<String> = index
                        .manifests
                        .iter()
                        .filter_map(|d| d.annotations.as_ref()?.get(REF_NAME).cloned())
                        .collect();
                    return Err(OciError::NotFound {
                        reference: format!("{}:{reference}", self.dir.display()),
                        why: format!(
                            "the layout has no image tagged `{reference}` (tags: {})",
                            if tags.is_empty() {
                                "none".to_string()
                            } else {
                                tags.join(", ")
                            }
                        ),
                    });
                }
            }
        };
        let digest = desc
            .as_ref()
            .map_or(reference.to_string(), |d| d.digest.clone());
        let p = self.blob_path(&digest)?;
        let bytes = std::fs::read(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                OciError::NotFound {
                    reference: format!("{}@{digest}", self.dir.display()),
                    why: "the layout does not hold that manifest".into(),
                }
            } else {
                io_err("read", &p)(e)
            }
        })?;
        let actual = digest_of(&bytes);
        if actual != digest {
            return Err(OciError::Digest {
                what: format!("manifest in {}", self.dir.display()),
                expected: digest,
                actual,
            });
        }
        Ok((bytes, desc.map(|d| d.media_type)))
    }

    fn blob(&self, d: &Descriptor, dest: &Path, progress: &dyn Fn(u64)) -> Result<(), OciError> {
        let p = self.blob_path(&d.digest)?;
        let f = std::fs::File::open(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                OciError::NotFound {
                    reference: format!("{}@{}", self.dir.display(), d.digest),
                    why: "the layout does not hold that blob".into(),
                }
            } else {
                io_err("read", &p)(e)
            }
        })?;
        copy_verified(
            f,
            d,
            dest,
            progress,
            &format!("blob {} in {}", d.digest, self.dir.display()),
        )
    }
}

impl Target for Layout {
    fn has_blob(&self, d: &Descriptor) -> Result<bool, OciError> {
        let p = self.blob_path(&d.digest)?;
        Ok(std::fs::metadata(&p).is_ok_and(|m| m.len() == d.size))
    }

    fn put_blob(
        &self,
        d: &Descriptor,
        file: &Path,
        progress: &dyn Fn(u64),
    ) -> Result<(), OciError> {
        let p = self.blob_path(&d.digest)?;
        let tmp = p.with_extension(format!("tmp.{}", std::process::id()));
        let src = std::fs::File::open(file).map_err(io_err("read", file))?;
        let r = copy_verified(src, d, &tmp, progress, &format!("blob {}", d.digest))
            .and_then(|()| {
                std::fs::File::open(&tmp)
                    .and_then(|f| f.sync_all())
                    .map_err(io_err("write", &tmp))
            })
            .and_then(|()| std::fs::rename(&tmp, &p).map_err(io_err("write", &p)));
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r
    }

    fn put_manifest(&self, tag: &str, bytes: &[u8], media_type: &str) -> Result<(), OciError> {
        let digest = self.put_bytes(bytes)?;
        let _guard = self.index_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut index = self.read_index()?;
        index.manifests.retain(|d| {
            d.annotations
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .is_none_or(|n| n != tag)
        });
        let mut desc = Descriptor::new(media_type, digest, bytes.len() as u64);
        desc.annotations = Some(BTreeMap::from([(REF_NAME.to_string(), tag.to_string())]));
        index.manifests.push(desc);
        let json = serde_json::to_vec(&index).map_err(|e| OciError::Internal(e.to_string()))?;
        Self::write_atomic(&self.dir.join("index.json"), &json)
    }

    fn put_referrer(
        &self,
        subject_digest: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(), OciError> {
        // Layouts have no referrers API: the fallback tag schema names it.
        let tag = format!(
            "sha256-{}",
            sha256_hex(subject_digest).unwrap_or(subject_digest)
        );
        self.put_manifest(&tag, bytes, media_type)
    }
}

/// Unpack the archive `file` into `dir` (an empty directory), refusing
/// members that would land outside it.
pub fn unpack_archive(file: &Path, dir: &Path) -> Result<(), OciError> {
    let f = std::fs::File::open(file).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            OciError::NotFound {
                reference: file.display().to_string(),
                why: "no such file".into(),
            }
        } else {
            io_err("read", file)(e)
        }
    })?;
    let mut a = tar::Archive::new(std::io::BufReader::new(f));
    for member in a.entries().map_err(io_err("read", file))? {
        let mut member = member.map_err(io_err("read", file))?;
        let kind = member.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            continue;
        }
        // `unpack_in` refuses `..` and absolute escapes.
        member.unpack_in(dir).map_err(io_err("unpack", file))?;
    }
    Ok(())
}

/// Write the layout in `dir` as the tar `file`, atomically; members sorted,
/// no owners or times, so the same layout gives the same archive.
pub fn write_archive(dir: &Path, file: &Path) -> Result<(), OciError> {
    let tmp = file.with_extension(format!("tmp.{}", std::process::id()));
    let r = (|| -> Result<(), OciError> {
        let out = std::fs::File::create(&tmp).map_err(io_err("write", &tmp))?;
        let mut b = tar::Builder::new(std::io::BufWriter::new(out));
        let mut names: Vec<PathBuf> = walkdir::WalkDir::new(dir)
            .min_depth(1)
            .into_iter()
            .filter_map(|e| e.ok())
            .map(|e| {
                e.path()
                    .strip_prefix(dir)
                    .map(Path::to_path_buf)
                    .unwrap_or_default()
            })
            .collect();
        names.sort();
        for rel in names {
            let p = dir.join(&rel);
            let md = std::fs::metadata(&p).map_err(io_err("read", &p))?;
            let mut h = tar::Header::new_ustar();
            h.set_mtime(0);
            h.set_uid(0);
            h.set_gid(0);
            if md.is_dir() {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, &rel, std::io::empty())
                    .map_err(io_err("write", &tmp))?;
            } else {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(md.len());
                let f = std::fs::File::open(&p).map_err(io_err("read", &p))?;
                b.append_data(&mut h, &rel, f)
                    .map_err(io_err("write", &tmp))?;
            }
        }
        let w = b.into_inner().map_err(io_err("write", &tmp))?;
        let f = w
            .into_inner()
            .map_err(|e| io_err("write", &tmp)(e.into_error()))?;
        f.sync_all().map_err(io_err("write", &tmp))?;
        std::fs::rename(&tmp, file).map_err(io_err("write", file))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}
