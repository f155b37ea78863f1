//! A Debian repository: `InRelease` (signature verified, `Valid-Until`
//! honoured), then `Packages` indexes checked against its SHA256 list.

use crate::compress::{self, Compression, Integrity};
use crate::control::{parse_paragraphs, ControlError, Paragraph};
use crate::http::{Http, HttpError};
use crate::openpgp::{fmt_time, Keyring, OpenPgpError};
use crate::package::DebPackage;
use crate::progress::{Reporter, Stage};
use crate::source::index_cache::IndexCache;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The keyring itself could not be used.
    #[error(transparent)]
    OpenPgp(#[from] OpenPgpError),
    #[error("{path}: cannot use this apt source file ({reason}); fix it or pass --mirror")]
    AptConfig { path: PathBuf, reason: String },
    #[error("cannot fetch {what}: {source}")]
    Fetch {
        what: String,
        #[source]
        source: HttpError,
    },
    #[error("{url}: no InRelease or Release file: suite {suite:?} may not be on this mirror (old releases such as bullseye move to the Debian archive); check the suite name or use another mirror")]
    SuiteNotFound { url: String, suite: String },
    #[error("{url} has no signature (Release.gpg is missing): refusing an unsigned index; use another mirror")]
    Unsigned { url: String },
    #[error("{url}: signature check failed: {source}")]
    Signature {
        url: String,
        #[source]
        source: OpenPgpError,
    },
    #[error("{url}: Valid-Until {valid_until} has passed (now {now}): the mirror is stale, use another mirror")]
    Expired {
        url: String,
        valid_until: String,
        now: String,
    },
    #[error("{url} describes suite {found:?}, not the requested {wanted:?}: the mirror serves the wrong suite; check the mirror URL or use another mirror")]
    SuiteMismatch {
        url: String,
        wanted: String,
        found: String,
    },
    #[error("{url}: architecture {arch:?} is not offered (offered: {offered}); pick one of those in the recipe")]
    ArchitectureNotOffered {
        url: String,
        arch: String,
        offered: String,
    },
    #[error("{url}: component {component:?} is not offered (offered: {offered}); fix source.components in the recipe")]
    ComponentNotOffered {
        url: String,
        component: String,
        offered: String,
    },
    #[error("{url} lists no Packages index for {component}/binary-{arch}; the mirror is incomplete, use another mirror")]
    IndexNotListed {
        url: String,
        component: String,
        arch: String,
    },
    #[error("{url}: malformed Release file ({reason}); the mirror is broken, use another mirror")]
    BadRelease { url: String, reason: String },
    #[error("{url}: size {actual} bytes, but the signed Release says {expected}: the mirror is mid-update or corrupt; try again later or use another mirror")]
    SizeMismatch {
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error("{url}: SHA256 {actual}, but the signed Release says {expected}: the file was altered or the mirror is mid-update; try again later or use another mirror")]
    ChecksumMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{url}: cannot decompress ({reason}); the mirror is broken, use another mirror")]
    Decompress { url: String, reason: String },
    #[error("{url}: {source}; the index is malformed, use another mirror")]
    BadIndex {
        url: String,
        #[source]
        source: ControlError,
    },
    #[error("{url}: package {package:?} has no valid {field} field ({problem}); the index is malformed, use another mirror")]
    BadPackage {
        url: String,
        package: String,
        field: &'static str,
        problem: String,
    },
}

impl SourceError {
    /// The index could not be trusted: signature, checksum, size, expiry or a
    /// signed file describing something else than asked.
    pub fn is_verification(&self) -> bool {
        matches!(
            self,
            SourceError::Unsigned { .. }
                | SourceError::Signature { .. }
                | SourceError::Expired { .. }
                | SourceError::SuiteMismatch { .. }
                | SourceError::SizeMismatch { .. }
                | SourceError::ChecksumMismatch { .. }
        )
    }

    /// The mirror could not be reached or did not have what we asked for.
    pub fn is_network(&self) -> bool {
        match self {
            SourceError::Http(e) | SourceError::Fetch { source: e, .. } => !e.is_local_io(),
            SourceError::SuiteNotFound { .. } => true,
            _ => false,
        }
    }
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

/// One entry of a Release file's `SHA256:` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseFile {
    /// Path below `dists/SUITE/` (`main/binary-amd64/Packages.xz`).
    pub path: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

/// The fields of a Release file that matter to us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Release {
    pub origin: Option<String>,
    pub label: Option<String>,
    pub suite: Option<String>,
    pub codename: Option<String>,
    /// Seconds since the epoch.
    pub date: Option<i64>,
    /// Seconds since the epoch.
    pub valid_until: Option<i64>,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    pub acquire_by_hash: bool,
    pub sha256: Vec<ReleaseFile>,
}

impl Release {
    pub fn file(&self, path: &str) -> Option<&ReleaseFile> {
        self.sha256.iter().find(|f| f.path == path)
    }

    /// Whether `component` is offered; Debian-Security lists `updates/main`
    /// for what its paths (and apt) call `main`.
    pub fn offers_component(&self, component: &str) -> bool {
        self.components.is_empty()
            || self.components.iter().any(|c| {
                c == component
                    || c.rsplit_once('/')
                        .is_some_and(|(_, last)| last == component)
            })
    }

    pub fn offers_architecture(&self, arch: &str) -> bool {
        self.architectures.is_empty() || self.architectures.iter().any(|a| a == arch)
    }
}

/// Parse the text of a Release file (already verified). Errors are
/// `BadRelease` with an empty URL; callers fill it in.
pub fn parse_release(text: &str) -> Result<Release, SourceError> {
    let bad = |reason: String| SourceError::BadRelease {
        url: String::new(),
        reason,
    };
    let paras = parse_paragraphs(text).map_err(|e| bad(e.to_string()))?;
    let Some(p) = paras.first() else {
        return Err(bad("it is empty".into()));
    };
    let owned = |name: &str| p.get(name).map(|v| v.trim().to_string());
    let list = |name: &str| -> Vec<String> {
        p.get(name)
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let date_field = |name: &str| -> Result<Option<i64>, SourceError> {
        match p.get(name) {
            None => Ok(None),
            Some(v) => parse_date(v)
                .map(Some)
                .ok_or_else(|| bad(format!("{name}: {v:?} is not an RFC 2822 date"))),
        }
    };
    let mut sha256 = Vec::new();
    if let Some(v) = p.get("SHA256") {
        for line in v.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let mut parts = line.split_whitespace();
            let (Some(hash), Some(size), Some(path), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad(format!("SHA256 line {line:?} is not `hash size path`")));
            };
            let size = size
                .parse::<u64>()
                .map_err(|_| bad(format!("SHA256 line {line:?}: bad size")))?;
            if !is_sha256_hex(hash) {
                return Err(bad(format!("SHA256 line {line:?}: bad digest")));
            }
            sha256.push(ReleaseFile {
                path: path.to_string(),
                size,
                sha256: hash.to_ascii_lowercase(),
            });
        }
    }
    Ok(Release {
        origin: owned("Origin"),
        label: owned("Label"),
        suite: owned("Suite"),
        codename: owned("Codename"),
        date: date_field("Date")?,
        valid_until: date_field("Valid-Until")?,
        architectures: list("Architectures"),
        components: list("Components"),
        acquire_by_hash: p
            .get("Acquire-By-Hash")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("yes")),
        sha256,
    })
}

/// Release dates: `Sat, 11 Jul 2026 10:16:37 UTC` (RFC 2822 with a zone
/// name chrono may not know).
fn parse_date(v: &str) -> Option<i64> {
    let v = v.trim();
    let fixed = v
        .strip_suffix(" UTC")
        .or_else(|| v.strip_suffix(" GMT"))
        .or_else(|| v.strip_suffix(" Z"))
        .map(|s| format!("{s} +0000"));
    let s = fixed.as_deref().unwrap_or(v);
    chrono::DateTime::parse_from_rfc2822(s)
        .ok()
        .map(|d| d.timestamp())
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn epoch_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn secs_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Fetch and verify the Release of a suite: (verified text, URL it came
/// from, SHA-256 of the fetched signed file).
fn fetch_release(
    http: &Http,
    dists: &str,
    suite: &str,
    keyring: &Keyring,
    now: SystemTime,
) -> Result<(String, String, String), SourceError> {
    let inrelease_url = format!("{dists}/InRelease");
    match http.get(&inrelease_url) {
        Ok(bytes) => {
            let digest = sha256_hex(&bytes);
            let text = String::from_utf8(bytes).map_err(|_| SourceError::BadRelease {
                url: inrelease_url.clone(),
                reason: "it is not UTF-8 text".into(),
            })?;
            let signed =
                keyring
                    .verify_cleartext(&text, now)
                    .map_err(|source| SourceError::Signature {
                        url: inrelease_url.clone(),
                        source,
                    })?;
            Ok((signed, inrelease_url, digest))
        }
        Err(e) if e.is_not_found() => {
            let release_url = format!("{dists}/Release");
            let data = match http.get(&release_url) {
                Ok(d) => d,
                Err(e) if e.is_not_found() => {
                    return Err(SourceError::SuiteNotFound {
                        url: inrelease_url,
                        suite: suite.to_string(),
                    })
                }
                Err(source) => {
                    return Err(SourceError::Fetch {
                        what: release_url,
                        source,
                    })
                }
            };
            let sig_url = format!("{dists}/Release.gpg");
            let sig = match http.get(&sig_url) {
                Ok(s) => s,
                Err(e) if e.is_not_found() => {
                    return Err(SourceError::Unsigned { url: release_url })
                }
                Err(source) => {
                    return Err(SourceError::Fetch {
                        what: sig_url,
                        source,
                    })
                }
            };
            keyring
                .verify_detached(&data, &sig, now)
                .map_err(|source| SourceError::Signature {
                    url: sig_url.clone(),
                    source,
                })?;
            let digest = sha256_hex(&data);
            let text = String::from_utf8(data).map_err(|_| SourceError::BadRelease {
                url: release_url.clone(),
                reason: "it is not UTF-8 text".into(),
            })?;
            Ok((text, release_url, digest))
        }
        Err(source) => Err(SourceError::Fetch {
            what: inrelease_url,
            source,
        }),
    }
}

/// Check the verified Release against what the recipe asks for.
fn check_release(
    release: &Release,
    url: &str,
    repo: &DebRepo,
    now: SystemTime,
) -> Result<(), SourceError> {
    if let Some(until) = release.valid_until {
        if epoch_secs(now) > until {
            return Err(SourceError::Expired {
                url: url.to_string(),
                valid_until: fmt_time(secs_time(until)),
                now: fmt_time(now),
            });
        }
    }
    let names: Vec<&str> = [release.suite.as_deref(), release.codename.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if !names.is_empty() && !names.contains(&repo.suite.as_str()) {
        return Err(SourceError::SuiteMismatch {
            url: url.to_string(),
            wanted: repo.suite.clone(),
            found: names.join("/"),
        });
    }
    if !release.offers_architecture(&repo.architecture) {
        return Err(SourceError::ArchitectureNotOffered {
            url: url.to_string(),
            arch: repo.architecture.clone(),
            offered: release.architectures.join(" "),
        });
    }
    for c in &repo.components {
        if !release.offers_component(c) {
            return Err(SourceError::ComponentNotOffered {
                url: url.to_string(),
                component: c.clone(),
                offered: release.components.join(" "),
            });
        }
    }
    Ok(())
}

/// The best Packages index the Release lists for a component.
fn pick_index<'a>(
    release: &'a Release,
    component: &str,
    arch: &str,
) -> Option<(&'a ReleaseFile, Compression)> {
    let base = format!("{component}/binary-{arch}/Packages");
    [
        (".xz", Compression::Xz),
        (".gz", Compression::Gzip),
        ("", Compression::None),
    ]
    .into_iter()
    .find_map(|(ext, c)| release.file(&format!("{base}{ext}")).map(|f| (f, c)))
}

/// Check the fetched bytes against the signed Release entry.
pub fn check_file(url: &str, data: &[u8], entry: &ReleaseFile) -> Result<(), SourceError> {
    if data.len() as u64 != entry.size {
        return Err(SourceError::SizeMismatch {
            url: url.to_string(),
            expected: entry.size,
            actual: data.len() as u64,
        });
    }
    let actual = sha256_hex(data);
    if actual != entry.sha256 {
        return Err(SourceError::ChecksumMismatch {
            url: url.to_string(),
            expected: entry.sha256.clone(),
            actual,
        });
    }
    Ok(())
}

fn decompress(url: &str, data: Vec<u8>, c: Compression) -> Result<String, SourceError> {
    let out = if c == Compression::None {
        Ok(data)
    } else {
        let mut out = Vec::with_capacity(data.len() * 6);
        compress::reader(c, &data[..], Integrity::Check)
            .and_then(|mut r| r.read_to_end(&mut out))
            .map(|_| out)
    };
    let out = out.map_err(|e| SourceError::Decompress {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    String::from_utf8(out).map_err(|e| SourceError::Decompress {
        url: url.to_string(),
        reason: format!("not UTF-8 text at byte {}", e.utf8_error().valid_up_to()),
    })
}

/// Split a Packages text into about `n` pieces at paragraph boundaries so
/// they can be parsed in parallel.
fn split_paragraph_chunks(text: &str, n: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let target = (text.len() / n.max(1)).max(1 << 16);
    let mut rest = text;
    while rest.len() > target {
        let cut = match rest[target..].find("\n\n") {
            Some(i) => target + i + 2,
            None => break,
        };
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// Parse a Packages index into packages; every paragraph must name its file
/// and checksum.
pub fn parse_packages(url: &str, text: &str) -> Result<Vec<DebPackage>, SourceError> {
    let chunks = split_paragraph_chunks(text, rayon::current_num_threads() * 4);
    let parsed: Vec<Vec<DebPackage>> = chunks
        .par_iter()
        .map(|chunk| {
            let paras = parse_paragraphs(chunk).map_err(|source| SourceError::BadIndex {
                url: url.to_string(),
                source,
            })?;
            paras
                .into_iter()
                .map(|p| package_from(url, p))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<_, _>>()?;
    Ok(parsed.into_iter().flatten().collect())
}

fn package_from(url: &str, p: Paragraph) -> Result<DebPackage, SourceError> {
    let name = p.get("Package").unwrap_or("").trim().to_string();
    let bad = |field: &'static str, problem: &str| SourceError::BadPackage {
        url: url.to_string(),
        package: if name.is_empty() {
            "(paragraph without Package)".into()
        } else {
            name.clone()
        },
        field,
        problem: problem.to_string(),
    };
    if name.is_empty() {
        return Err(bad("Package", "missing"));
    }
    let req = |field: &'static str| -> Result<String, SourceError> {
        match p.get(field).map(str::trim) {
            Some(v) if !v.is_empty() => Ok(v.to_string()),
            _ => Err(bad(field, "missing")),
        }
    };
    let version = req("Version")?;
    let architecture = req("Architecture")?;
    let filename = req("Filename")?;
    let size = req("Size")?
        .parse::<u64>()
        .map_err(|_| bad("Size", "not a number"))?;
    let sha256 = req("SHA256")?;
    if !is_sha256_hex(&sha256) {
        return Err(bad("SHA256", "not 64 hex digits"));
    }
    // A path escaping the mirror root would let an index point anywhere.
    if filename.starts_with('/') || filename.split('/').any(|c| c == "..") {
        return Err(bad("Filename", "not a relative path below the mirror"));
    }
    Ok(DebPackage {
        name,
        version,
        architecture,
        filename,
        size,
        sha256: sha256.to_ascii_lowercase(),
        control: p,
    })
}

/// Fetch one component's index (by hash when the Release offers that, which
/// avoids racing a mirror update), verify it and parse it. With a cache, an
/// index the signed Release names by digest is read from there instead.
fn load_component(
    http: &Http,
    dists: &str,
    release: &Release,
    component: &str,
    arch: &str,
    release_url: &str,
    cache: Option<&IndexCache>,
) -> Result<Vec<DebPackage>, SourceError> {
    let Some((entry, comp)) = pick_index(release, component, arch) else {
        return Err(SourceError::IndexNotListed {
            url: release_url.to_string(),
            component: component.to_string(),
            arch: arch.to_string(),
        });
    };
    // Debian's Release lists the uncompressed index even where the mirror
    // does not serve it: its digest lets the cache keep the text ready to
    // parse. Otherwise the fetched file is kept as it is.
    let plain = release.file(&format!("{component}/binary-{arch}/Packages"));
    let (key, key_comp) = match plain {
        Some(p) => (p, Compression::None),
        None => (entry, comp),
    };
    if let Some(data) = cache.and_then(|c| c.get(key)) {
        let url = format!("{dists}/{}", key.path);
        let text = decompress(&url, data, key_comp)?;
        return parse_packages(&url, &text);
    }
    let url = format!("{dists}/{}", entry.path);
    let mut data = None;
    if release.acquire_by_hash {
        if let Some((dir, _)) = entry.path.rsplit_once('/') {
            let by_hash = format!("{dists}/{dir}/by-hash/SHA256/{}", entry.sha256);
            match http.get(&by_hash) {
                Ok(d) => data = Some((d, by_hash)),
                Err(e) if e.is_not_found() => {}
                Err(source) => {
                    return Err(SourceError::Fetch {
                        what: by_hash,
                        source,
                    })
                }
            }
        }
    }
    let (data, url) = match data {
        Some(d) => d,
        None => {
            let d = http.get(&url).map_err(|source| SourceError::Fetch {
                what: url.clone(),
                source,
            })?;
            (d, url)
        }
    };
    check_file(&url, &data, entry)?;
    // Best effort: a cache that cannot be written costs a download next time.
    if let (Some(c), None) = (cache, plain) {
        let _ = c.put(entry, &data);
    }
    let text = decompress(&url, data, comp)?;
    if let (Some(c), Some(plain)) = (cache, plain) {
        // Only text the signed Release vouches for is kept.
        if check_file(&url, text.as_bytes(), plain).is_ok() {
            let _ = c.put(plain, text.as_bytes());
        }
    }
    parse_packages(&url, &text)
}

/// Fetch, verify and check only the suite's Release: the SHA-256 of the
/// signed file, which names the whole index. When it equals a lock's, the
/// index (and so the resolution) cannot have changed.
pub fn release_snapshot(
    http: &Http,
    repo: &DebRepo,
    now: SystemTime,
) -> Result<String, SourceError> {
    let keyring = Keyring::load(&repo.keyring)?;
    let base = repo.mirror.trim_end_matches('/');
    let dists = format!("{base}/dists/{}", repo.suite);
    let (text, release_url, digest) = fetch_release(http, &dists, &repo.suite, &keyring, now)?;
    let release = parse_release(&text).map_err(|e| match e {
        SourceError::BadRelease { reason, .. } => SourceError::BadRelease {
            url: release_url.clone(),
            reason,
        },
        other => other,
    })?;
    check_release(&release, &release_url, repo, now)?;
    Ok(digest)
}

pub fn load_index(
    http: &Http,
    repo: &DebRepo,
    now: SystemTime,
    reporter: &dyn Reporter,
) -> Result<DebIndex, SourceError> {
    load_index_cached(http, repo, now, None, reporter)
}

/// [`load_index`], taking `Packages` files the verified Release names from
/// `cache` when it holds them and storing those it fetches.
pub fn load_index_cached(
    http: &Http,
    repo: &DebRepo,
    now: SystemTime,
    cache: Option<&IndexCache>,
    reporter: &dyn Reporter,
) -> Result<DebIndex, SourceError> {
    let keyring = Keyring::load(&repo.keyring)?;
    let base = repo.mirror.trim_end_matches('/');
    let dists = format!("{base}/dists/{}", repo.suite);
    reporter.stage_start(Stage::Index, 1 + repo.components.len() as u64);

    let (text, release_url, digest) = fetch_release(http, &dists, &repo.suite, &keyring, now)?;
    let release = parse_release(&text).map_err(|e| match e {
        SourceError::BadRelease { reason, .. } => SourceError::BadRelease {
            url: release_url.clone(),
            reason,
        },
        other => other,
    })?;
    check_release(&release, &release_url, repo, now)?;
    reporter.advance(Stage::Index, 1, &release_url);

    let per_component: Vec<Vec<DebPackage>> = repo
        .components
        .par_iter()
        .map(|c| {
            let pkgs = load_component(
                http,
                &dists,
                &release,
                c,
                &repo.architecture,
                &release_url,
                cache,
            )?;
            reporter.advance(Stage::Index, 1, c);
            Ok(pkgs)
        })
        .collect::<Result<_, SourceError>>()?;
    let packages: Vec<DebPackage> = per_component.into_iter().flatten().collect();
    reporter.message(&format!(
        "{} packages in {} {}",
        packages.len(),
        repo.suite,
        repo.components.join(" ")
    ));
    reporter.stage_end(Stage::Index);

    Ok(DebIndex {
        packages,
        inrelease_sha256: digest,
        codename: release.codename,
        date: release.date,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use std::io::Write;
    use std::path::Path;
    use vzpkg_testkit::signing::TestKey;

    const PACKAGES: &str = "\
Package: base-files
Version: 12.4+deb12u5
Architecture: amd64
Essential: yes
Priority: required
Filename: pool/main/b/base-files/base-files_12.4+deb12u5_amd64.deb
Size: 70704
SHA256: 8e4b6ca9bdbcc4b5dbc8d0dc9a2bd4b0b0e8a6a3f2c1e1f35c6f0e0d5b7a9c12
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy.

Package: hello
Version: 2.10-3
Architecture: amd64
Depends: libc6 (>= 2.34)
Filename: pool/main/h/hello/hello_2.10-3_amd64.deb
Size: 56132
SHA256: 3a2a6c8f0d5b4e1f9c7b6a5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f
Description: example package based on GNU hello
";

    struct Repo {
        dir: tempfile::TempDir,
        key: TestKey,
    }

    struct Opts<'a> {
        suite: &'a str,
        codename: &'a str,
        valid_until: Option<SystemTime>,
        packages: &'a str,
        inrelease: bool,
    }

    impl Default for Opts<'_> {
        fn default() -> Self {
            Opts {
                suite: "stable",
                codename: "bookworm",
                valid_until: Some(SystemTime::now() + Duration::from_secs(7 * 86400)),
                packages: PACKAGES,
                inrelease: true,
            }
        }
    }

    fn rfc2822(t: SystemTime) -> String {
        let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap()
            .format("%a, %d %b %Y %H:%M:%S UTC")
            .to_string()
    }

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    /// A whole tiny signed repository on disk, as a mirror lays it out.
    fn write_repo(o: &Opts) -> Repo {
        let key = TestKey::generate("Test Archive <archive@example.org>");
        let dir = tempfile::tempdir().unwrap();
        let dists = dir.path().join("dists").join(o.codename);
        let bin = dists.join("main/binary-amd64");
        std::fs::create_dir_all(&bin).unwrap();
        let compressed = xz(o.packages.as_bytes());
        std::fs::write(bin.join("Packages.xz"), &compressed).unwrap();
        std::fs::write(bin.join("Packages"), o.packages).unwrap();
        let mut release = format!(
            "Origin: Test\nLabel: Test\nSuite: {}\nCodename: {}\nDate: {}\n",
            o.suite,
            o.codename,
            rfc2822(SystemTime::now() - Duration::from_secs(3600)),
        );
        if let Some(v) = o.valid_until {
            release.push_str(&format!("Valid-Until: {}\n", rfc2822(v)));
        }
        release.push_str("Architectures: amd64 arm64\nComponents: main contrib\nSHA256:\n");
        for (name, data) in [
            ("Packages", o.packages.as_bytes()),
            ("Packages.xz", &compressed[..]),
        ] {
            release.push_str(&format!(
                " {} {:>8} main/binary-amd64/{name}\n",
                sha256_hex(data),
                data.len()
            ));
        }
        if o.inrelease {
            std::fs::write(dists.join("InRelease"), key.clearsign(&release)).unwrap();
        } else {
            std::fs::write(dists.join("Release"), &release).unwrap();
            std::fs::write(
                dists.join("Release.gpg"),
                key.sign_detached(release.as_bytes()),
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("ring.gpg"), key.public_keyring()).unwrap();
        Repo { dir, key }
    }

    fn repo_for(r: &Repo, suite: &str) -> DebRepo {
        DebRepo {
            mirror: format!("file://{}", r.dir.path().display()),
            suite: suite.into(),
            components: vec!["main".into()],
            architecture: "amd64".into(),
            keyring: r.dir.path().join("ring.gpg"),
        }
    }

    fn load(r: &Repo, repo: &DebRepo) -> Result<DebIndex, SourceError> {
        let _ = &r.key;
        load_index(&Http::new().unwrap(), repo, SystemTime::now(), &Silent)
    }

    #[test]
    fn parse_release_fields() {
        let text = "Origin: Debian\nSuite: stable\nCodename: bookworm\n\
Date: Sat, 10 Jun 2023 08:53:33 UTC\nValid-Until: Sat, 17 Jun 2023 08:53:33 UTC\n\
Acquire-By-Hash: yes\nArchitectures: all amd64 arm64\nComponents: main contrib\n\
MD5Sum:\n 0ed6d4c8891eb86358b94bb35d9e4da4  1484322 contrib/Contents-all\n\
SHA256:\n 515e692f2c4121c6fcec444ef100cc18f79a991910615f3a88c8b7becfc94d2f 50060337 main/binary-amd64/Packages\n \
9E0B5AABB2465B3D2E7A7FE27F9913846277833F7A2826E7767ACCCFF5B588C5  8790396 main/binary-amd64/Packages.xz\n";
        let r = parse_release(text).unwrap();
        assert_eq!(r.suite.as_deref(), Some("stable"));
        assert_eq!(r.codename.as_deref(), Some("bookworm"));
        assert_eq!(r.date, Some(1686387213));
        assert_eq!(r.valid_until, Some(1686387213 + 7 * 86400));
        assert!(r.acquire_by_hash);
        assert_eq!(r.architectures, ["all", "amd64", "arm64"]);
        assert_eq!(r.components, ["main", "contrib"]);
        assert_eq!(r.sha256.len(), 2);
        let xz = r.file("main/binary-amd64/Packages.xz").unwrap();
        assert_eq!(xz.size, 8790396);
        assert!(xz.sha256.starts_with("9e0b5aab"));
        assert!(matches!(
            pick_index(&r, "main", "amd64"),
            Some((f, Compression::Xz)) if f.path.ends_with(".xz")
        ));
        assert!(pick_index(&r, "contrib", "amd64").is_none());

        let bad = parse_release("Suite: x\nDate: yesterday\n").unwrap_err();
        assert!(bad.to_string().contains("yesterday"), "{bad}");
        let bad = parse_release("Suite: x\nSHA256:\n abc 12 main/x\n").unwrap_err();
        assert!(matches!(bad, SourceError::BadRelease { .. }));
    }

    #[test]
    fn security_components_match_their_last_part() {
        let r = parse_release("Suite: s\nComponents: updates/main updates/contrib\n").unwrap();
        assert!(r.offers_component("main"));
        assert!(!r.offers_component("non-free"));
    }

    #[test]
    fn host_release_files_parse() {
        let Ok(entries) = std::fs::read_dir("/var/lib/apt/lists") else {
            return;
        };
        for e in entries {
            let path = e.unwrap().path();
            if !path.to_string_lossy().ends_with("_InRelease") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // The cleartext wrapper is the caller's job; cut it here by hand.
            let body = text.split_once("\n\n").unwrap().1;
            let body = body.split("-----BEGIN PGP SIGNATURE").next().unwrap();
            let r = parse_release(body).unwrap();
            assert!(
                r.codename.is_some() && r.date.is_some(),
                "{}",
                path.display()
            );
            assert!(r.sha256.len() > 10, "{}", path.display());
        }
    }

    #[test]
    fn loads_a_signed_repository() {
        let r = write_repo(&Opts::default());
        let idx = load(&r, &repo_for(&r, "bookworm")).unwrap();
        assert_eq!(idx.packages.len(), 2);
        assert_eq!(idx.codename.as_deref(), Some("bookworm"));
        assert!(idx.date.is_some());
        let hello = idx.packages.iter().find(|p| p.name == "hello").unwrap();
        assert_eq!(hello.version, "2.10-3");
        assert_eq!(hello.size, 56132);
        assert_eq!(hello.field("Depends"), Some("libc6 (>= 2.34)"));
        assert!(idx.packages[0].essential());
        let inrelease = std::fs::read(r.dir.path().join("dists/bookworm/InRelease")).unwrap();
        assert_eq!(idx.inrelease_sha256, sha256_hex(&inrelease));
        // The suite name works as well as the codename.
        std::os::unix::fs::symlink("bookworm", r.dir.path().join("dists/stable")).unwrap();
        let by_suite = load(&r, &repo_for(&r, "stable")).unwrap();
        assert_eq!(by_suite.packages, idx.packages);
    }

    #[test]
    fn cached_index_is_used_only_while_its_digest_matches() {
        let r = write_repo(&Opts::default());
        let repo = repo_for(&r, "bookworm");
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = IndexCache::new(cache_dir.path());
        let http = Http::new().unwrap();
        let load_cached =
            || load_index_cached(&http, &repo, SystemTime::now(), Some(&cache), &Silent);
        let first = load_cached().unwrap();
        // Stored decompressed, under the digest the Release gives the plain file.
        let bin = r.dir.path().join("dists/bookworm/main/binary-amd64");
        let plain_digest = sha256_hex(&std::fs::read(bin.join("Packages")).unwrap());
        let stored = cache_dir.path().join(&plain_digest);
        assert_eq!(std::fs::read_to_string(&stored).unwrap(), PACKAGES);

        // The mirror's index files gone: the cache answers.
        std::fs::remove_file(bin.join("Packages")).unwrap();
        std::fs::remove_file(bin.join("Packages.xz")).unwrap();
        let second = load_cached().unwrap();
        assert_eq!(second.packages, first.packages);

        // An altered cached copy is not used (the mirror has none to fall back on).
        std::fs::write(&stored, PACKAGES.replace("2.10-3", "2.10-9")).unwrap();
        let err = load_cached().unwrap_err();
        assert!(matches!(err, SourceError::Fetch { .. }), "{err}");
        assert!(!stored.exists());
    }

    #[test]
    fn release_gpg_fallback() {
        let r = write_repo(&Opts {
            inrelease: false,
            ..Default::default()
        });
        let idx = load(&r, &repo_for(&r, "bookworm")).unwrap();
        assert_eq!(idx.packages.len(), 2);
        // Without the signature the index is refused.
        std::fs::remove_file(r.dir.path().join("dists/bookworm/Release.gpg")).unwrap();
        let err = load(&r, &repo_for(&r, "bookworm")).unwrap_err();
        assert!(matches!(err, SourceError::Unsigned { .. }), "{err}");
        assert!(err.is_verification());
    }

    #[test]
    fn stale_valid_until_is_rejected() {
        let r = write_repo(&Opts {
            valid_until: Some(SystemTime::now() - Duration::from_secs(86400)),
            ..Default::default()
        });
        let err = load(&r, &repo_for(&r, "bookworm")).unwrap_err();
        assert!(matches!(err, SourceError::Expired { .. }), "{err}");
        assert!(err.is_verification() && !err.is_network());
        let msg = err.to_string();
        assert!(
            msg.contains("stale") && msg.contains("another mirror"),
            "{msg}"
        );
    }

    #[test]
    fn checksum_and_size_mismatch_are_rejected() {
        let r = write_repo(&Opts::default());
        let path = r
            .dir
            .path()
            .join("dists/bookworm/main/binary-amd64/Packages.xz");
        let mut data = std::fs::read(&path).unwrap();
        let good = data.clone();
        let n = data.len();
        data[n / 2] ^= 0x55;
        std::fs::write(&path, &data).unwrap();
        let err = load(&r, &repo_for(&r, "bookworm")).unwrap_err();
        match &err {
            SourceError::ChecksumMismatch {
                url,
                expected,
                actual,
            } => {
                assert!(url.ends_with("Packages.xz"));
                assert_eq!(expected, &sha256_hex(&good));
                assert_eq!(actual, &sha256_hex(&data));
            }
            other => panic!("wrong error {other}"),
        }
        assert!(err.is_verification());
        data.push(0);
        std::fs::write(&path, &data).unwrap();
        let err = load(&r, &repo_for(&r, "bookworm")).unwrap_err();
        assert!(matches!(err, SourceError::SizeMismatch { .. }), "{err}");
    }

    #[test]
    fn tampered_inrelease_and_wrong_key_are_rejected() {
        let r = write_repo(&Opts::default());
        let path = r.dir.path().join("dists/bookworm/InRelease");
        let orig = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            orig.replace("Components: main contrib", "Components: main evil"),
        )
        .unwrap();
        let err = load(&r, &repo_for(&r, "bookworm")).unwrap_err();
        assert!(matches!(err, SourceError::Signature { .. }), "{err}");
        assert!(err.is_verification());

        std::fs::write(&path, &orig).unwrap();
        let other = TestKey::generate("Other <other@example.org>");
        std::fs::write(r.dir.path().join("ring.gpg"), other.public_keyring()).unwrap();
        let err = load(&r, &repo_for(&r, "bookworm")).unwrap_err();
        assert!(err.is_verification(), "{err}");
        assert!(err.to_string().contains("ring.gpg"), "{err}");
    }

    #[test]
    fn wrong_suite_arch_component() {
        let r = write_repo(&Opts::default());
        // A mirror that serves bookworm under the name trixie.
        let dists = r.dir.path().join("dists");
        std::fs::create_dir_all(dists.join("trixie")).unwrap();
        std::fs::copy(
            dists.join("bookworm/InRelease"),
            dists.join("trixie/InRelease"),
        )
        .unwrap();
        let err = load(&r, &repo_for(&r, "trixie")).unwrap_err();
        assert!(matches!(err, SourceError::SuiteMismatch { .. }), "{err}");
        assert!(err.is_verification());

        let mut repo = repo_for(&r, "bookworm");
        repo.architecture = "riscv64".into();
        let err = load(&r, &repo).unwrap_err();
        assert!(
            matches!(err, SourceError::ArchitectureNotOffered { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("amd64 arm64"));

        let mut repo = repo_for(&r, "bookworm");
        repo.components = vec!["main".into(), "non-free".into()];
        let err = load(&r, &repo).unwrap_err();
        assert!(
            matches!(err, SourceError::ComponentNotOffered { .. }),
            "{err}"
        );

        // Offered but without an index for it.
        let mut repo = repo_for(&r, "bookworm");
        repo.components = vec!["contrib".into()];
        let err = load(&r, &repo).unwrap_err();
        assert!(matches!(err, SourceError::IndexNotListed { .. }), "{err}");
    }

    #[test]
    fn missing_suite_is_a_network_error_naming_the_url() {
        let r = write_repo(&Opts::default());
        let err = load(&r, &repo_for(&r, "bullseye")).unwrap_err();
        assert!(matches!(err, SourceError::SuiteNotFound { .. }), "{err}");
        assert!(err.is_network() && !err.is_verification());
        let msg = err.to_string();
        assert!(
            msg.contains("dists/bullseye/InRelease") && msg.contains("may not be on this mirror"),
            "{msg}"
        );
    }

    #[test]
    fn unreachable_mirror_is_a_network_error() {
        let r = write_repo(&Opts::default());
        // Nothing listens on port 9 of loopback (discard is never enabled).
        let mut repo = repo_for(&r, "bookworm");
        repo.mirror = "http://127.0.0.1:9/debian".into();
        let http = Http::new().unwrap().with_attempts(1);
        let err = load_index(&http, &repo, SystemTime::now(), &Silent).unwrap_err();
        assert!(err.is_network(), "{err}");
        assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
    }

    #[test]
    fn paragraph_missing_a_field_names_the_package() {
        let broken = PACKAGES.replace("Filename: pool/main/h/hello/hello_2.10-3_amd64.deb\n", "");
        let r = write_repo(&Opts {
            packages: &broken,
            ..Default::default()
        });
        let err = load(&r, &repo_for(&r, "bookworm")).unwrap_err();
        match &err {
            SourceError::BadPackage { package, field, .. } => {
                assert_eq!(package, "hello");
                assert_eq!(*field, "Filename");
            }
            other => panic!("wrong error {other}"),
        }
        let escaping = PACKAGES.replace("pool/main/h/hello/", "../../etc/");
        let err = parse_packages("x", &escaping).unwrap_err();
        assert!(
            matches!(
                err,
                SourceError::BadPackage {
                    field: "Filename",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn chunked_parse_keeps_every_paragraph() {
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&format!(
                "Package: p{i}\nVersion: 1.{i}\nArchitecture: all\nFilename: pool/p{i}.deb\nSize: {i}\nSHA256: {}\nDescription: d\n more\n\n",
                sha256_hex(i.to_string().as_bytes())
            ));
        }
        let pkgs = parse_packages("x", &text).unwrap();
        assert_eq!(pkgs.len(), 5000);
        for (i, p) in pkgs.iter().enumerate() {
            assert_eq!(p.name, format!("p{i}"));
            assert_eq!(p.size, i as u64);
        }
    }

    /// The real bookworm index, if one is lying around; measures parse time.
    #[test]
    fn real_packages_index_parses() {
        let path = Path::new("/tmp/vzpkg-bookworm-Packages.xz");
        let Ok(data) = std::fs::read(path) else {
            eprintln!("skipped: {} not present", path.display());
            return;
        };
        let t = std::time::Instant::now();
        let text = decompress("x", data, Compression::Xz).unwrap();
        let t1 = t.elapsed();
        let pkgs = parse_packages("x", &text).unwrap();
        eprintln!(
            "{} packages: xz {:?}, parse {:?}",
            pkgs.len(),
            t1,
            t.elapsed() - t1
        );
        assert!(pkgs.len() > 50_000);
    }

    /// The live mirror this host's apt uses, when asked for
    /// (VZPKG_NETWORK_TESTS=1): the whole real path, timed.
    #[test]
    fn live_host_mirror() {
        if std::env::var_os("VZPKG_NETWORK_TESTS").is_none() {
            eprintln!("skipped: set VZPKG_NETWORK_TESTS=1");
            return;
        }
        let sources = super::super::apt::host_sources(Path::new("/etc/apt")).unwrap();
        let mirror = super::super::apt::pick_mirror(&sources, "bookworm").unwrap();
        let repo = DebRepo {
            mirror,
            suite: "bookworm".into(),
            components: vec!["main".into(), "contrib".into()],
            architecture: "amd64".into(),
            keyring: "/usr/share/keyrings/debian-archive-keyring.gpg".into(),
        };
        let t = std::time::Instant::now();
        let idx = load_index(&Http::new().unwrap(), &repo, SystemTime::now(), &Silent).unwrap();
        eprintln!("{} packages in {:?}", idx.packages.len(), t.elapsed());
        assert!(idx.packages.len() > 50_000);
        assert_eq!(idx.codename.as_deref(), Some("bookworm"));
        let missing = DebRepo {
            suite: "no-such-suite".into(),
            ..repo
        };
        let err =
            load_index(&Http::new().unwrap(), &missing, SystemTime::now(), &Silent).unwrap_err();
        assert!(err.is_network(), "{err}");
        eprintln!("{err}");
    }
}
