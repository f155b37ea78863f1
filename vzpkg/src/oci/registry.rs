//! The registry HTTP API v2 over reqwest's blocking client: manifests and
//! blobs by digest, resumable blob downloads (`Range`), monolithic uploads,
//! basic and bearer-token auth answering the registry's challenge, retries
//! on network errors and 5xx.

use super::auth::{self, Credentials};
use super::image::{media, sha256_hex, Descriptor};
use super::reference::RegistryRef;
use super::{OciError, Progress, Source, Target};
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Blobs up to this size are uploaded from memory (see `put_blob`).
const IN_MEMORY_BLOB: u64 = 256 << 20;

enum Scheme {
    Basic,
    Bearer(String),
}

pub struct Registry {
    client: reqwest::blocking::Client,
    base: String,
    r: RegistryRef,
    push: bool,
    creds: Option<Credentials>,
    auth: Mutex<Option<Scheme>>,
    attempts: u32,
    /// Body bytes received and sent, for reports.
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

/// Counts what a reader yields into a shared counter and a progress callback.
struct Counting<R> {
    inner: R,
    progress: Progress,
    total: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total.fetch_add(n as u64, Ordering::Relaxed);
        (self.progress)(n as u64);
        Ok(n)
    }
}

/// `key="value", key2="value2"` of a `WWW-Authenticate: Bearer ...` header.
fn challenge_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((k, v)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let v = v.trim_start();
        let (val, after) = if let Some(q) = v.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            match v.find(',') {
                Some(end) => (&v[..end], &v[end..]),
                None => (v, ""),
            }
        };
        out.push((k, val.to_string()));
        rest = after.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

impl Registry {
    pub fn new(r: &RegistryRef, tls_verify: bool, push: bool) -> Result<Registry, OciError> {
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(900))
            .user_agent(concat!("vzpkg/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(16)
            .build()
            .map_err(|e| OciError::Internal(format!("cannot set up the HTTP client: {e}")))?;
        let creds = auth::lookup(&r.host, &r.repo)?;
        Ok(Registry {
            client,
            // Plain HTTP only when the user turned TLS off.
            base: format!("{}://{}", if tls_verify { "https" } else { "http" }, r.host),
            r: r.clone(),
            push,
            creds,
            auth: Mutex::new(None),
            attempts: 4,
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        })
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.base, self.r.repo)
    }

    fn scope(&self) -> String {
        format!(
            "repository:{}:{}",
            self.r.repo,
            if self.push { "pull,push" } else { "pull" }
        )
    }

    fn with_auth(
        &self,
        rb: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        let guard = self.auth.lock().unwrap_or_else(|p| p.into_inner());
        match (&*guard, &self.creds) {
            (Some(Scheme::Bearer(t)), _) => rb.bearer_auth(t),
            (Some(Scheme::Basic), Some(c)) => rb.basic_auth(&c.user, Some(&c.password)),
            _ => rb,
        }
    }

    fn unauthorized(&self, why: &str) -> OciError {
        let files: Vec<String> = auth::auth_files()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        OciError::Unauthorized {
            registry: self.r.host.clone(),
            why: match &self.creds {
                Some(c) => format!(
                    "{why} (credentials of `{}` from {})",
                    c.user,
                    c.from.display()
                ),
                None => format!("{why}; no credentials for it in {}", files.join(", ")),
            },
        }
    }

    /// Answer a 401's challenge: remember basic auth, or fetch a bearer token.
    fn authenticate(&self, challenge: &str) -> Result<(), OciError> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            if self.creds.is_none() {
                return Err(self.unauthorized("the registry wants a user name and password"));
            }
            *self.auth.lock().unwrap_or_else(|p| p.into_inner()) = Some(Scheme::Basic);
            return Ok(());
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(self.unauthorized(&format!(
                "the registry asks for `{scheme}` auth, which vzpkg does not speak"
            )));
        }
        let params = challenge_params(params);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let realm =
            get("realm").ok_or_else(|| self.unauthorized("the bearer challenge names no realm"))?;
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(s) = get("service") {
            query.push(("service", s));
        }
        query.push((
            "scope",
            get("scope")
                .filter(|s| s.contains(&self.r.repo))
                .unwrap_or_else(|| self.scope()),
        ));
        let token_url = reqwest::Url::parse_with_params(&realm, &query).map_err(|e| {
            self.unauthorized(&format!("the token realm `{realm}` is not a URL: {e}"))
        })?;
        let mut last = String::new();
        for attempt in 0..self.attempts {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(250 << attempt));
            }
            let mut rb = self.client.get(token_url.clone());
            if let Some(c) = &self.creds {
                rb = rb.basic_auth(&c.user, Some(&c.password));
            }
            let resp = match rb.send() {
                Ok(r) => r,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let status = resp.status().as_u16();
            if status == 401 || status == 403 {
                return Err(self.unauthorized(&format!(
                    "the token service {realm} refused (HTTP {status})"
                )));
            }
            if status >= 500 {
                last = format!("HTTP {status}");
                continue;
            }
            let body: serde_json::Value = resp
                .bytes()
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
                .map_err(|e| {
                    self.unauthorized(&format!("the token service {realm} sent no JSON: {e}"))
                })?;
            let token = body
                .get("token")
                .or_else(|| body.get("access_token"))
                .and_then(|t| t.as_str())
                .ok_or_else(|| {
                    self.unauthorized(&format!("the token service {realm} sent no token"))
                })?;
            *self.auth.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Scheme::Bearer(token.to_string()));
            return Ok(());
        }
        Err(OciError::Unreachable {
            url: realm,
            attempts: self.attempts,
            reason: last,
        })
    }

    /// Send the request `make` builds, with auth, answering one challenge
    /// and retrying network errors and 5xx.
    fn send(
        &self,
        url: &str,
        make: &dyn Fn() -> Result<reqwest::blocking::RequestBuilder, OciError>,
    ) -> Result<reqwest::blocking::Response, OciError> {
        let mut last = String::new();
        let mut challenged = false;
        let mut attempt = 0;
        while attempt < self.attempts {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(250 << attempt));
            }
            attempt += 1;
            let resp = match self.with_auth(make()?).send() {
                Ok(r) => r,
                Err(e) => {
                    last = format!("{e}");
                    let mut src = std::error::Error::source(&e);
                    while let Some(s) = src {
                        last = format!("{last}: {s}");
                        src = s.source();
                    }
                    continue;
                }
            };
            let status = resp.status().as_u16();
            if status == 401 {
                if challenged {
                    return Err(self.unauthorized("the registry refused the credentials"));
                }
                challenged = true;
                let challenge = resp
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                self.authenticate(&challenge)?;
                // The challenge is not an attempt.
                attempt -= 1;
                continue;
            }
            if status >= 500 || status == 429 {
                last = format!("HTTP {status}");
                continue;
            }
            return Ok(resp);
        }
        Err(OciError::Unreachable {
            url: url.to_string(),
            attempts: self.attempts,
            reason: last,
        })
    }

    fn status_error(&self, url: &str, resp: reqwest::blocking::Response) -> OciError {
        let status = resp.status().as_u16();
        let body = resp.text().unwrap_or_default();
        let body: String = body.chars().take(300).collect();
        if status == 403 {
            return self.unauthorized(&format!("HTTP 403 for {url}"));
        }
        OciError::Status {
            url: url.to_string(),
            status,
            body,
        }
    }

    pub fn display(&self) -> String {
        format!("{}/{}", self.r.host, self.r.repo)
    }
}

impl Source for Registry {
    fn manifest(&self, reference: &str) -> Result<(Vec<u8>, Option<String>), OciError> {
        let url = self.url(&format!("manifests/{reference}"));
        let resp = self.send(&url, &|| {
            Ok(self
                .client
                .get(&url)
                .header(reqwest::header::ACCEPT, media::ACCEPT))
        })?;
        if resp.status().as_u16() == 404 {
            return Err(OciError::NotFound {
                reference: format!("{}:{reference}", self.display()),
                why: "the registry has no such manifest".into(),
            });
        }
        if !resp.status().is_success() {
            return Err(self.status_error(&url, resp));
        }
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
        let bytes = resp.bytes().map_err(|e| OciError::Unreachable {
            url: url.clone(),
            attempts: 1,
            reason: e.to_string(),
        })?;
        self.bytes_in
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok((bytes.to_vec(), ct))
    }

    fn blob(&self, d: &Descriptor, dest: &Path, progress: &dyn Fn(u64)) -> Result<(), OciError> {
        let url = self.url(&format!("blobs/{}", d.digest));
        let what = format!("blob {} from {}", d.digest, self.display());
        let werr = |source| OciError::Io {
            op: "write",
            path: dest.to_path_buf(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(dest)
            .map_err(werr)?;
        // What an earlier, interrupted run got: hash it, then ask for the rest.
        let mut have = file.metadata().map_err(werr)?.len();
        if have > d.size {
            file.set_len(0).map_err(werr)?;
            have = 0;
        }
        let mut hasher = Sha256::new();
        {
            let mut buf = vec![0u8; 1 << 20];
            let mut left = have;
            file.rewind().map_err(werr)?;
            while left > 0 {
                let k = file
                    .read(&mut buf[..left.min(1 << 20) as usize])
                    .map_err(werr)?;
                if k == 0 {
                    break;
                }
                hasher.update(&buf[..k]);
                left -= k as u64;
            }
        }
        if have > 0 {
            progress(have);
        }
        let mut failures = 0;
        let mut last = String::new();
        while have < d.size {
            crate::cancel::check().map_err(|_| OciError::Cancelled)?;
            if failures >= self.attempts {
                return Err(OciError::Interrupted {
                    what,
                    have,
                    size: d.size,
                    reason: last,
                });
            }
            let from = have;
            let resp = self.send(&url, &|| {
                let rb = self.client.get(&url);
                Ok(if from > 0 {
                    rb.header(reqwest::header::RANGE, format!("bytes={from}-"))
                } else {
                    rb
                })
            });
            let mut resp = match resp {
                Ok(r) => r,
                Err(OciError::Unreachable { reason, .. }) => {
                    failures += 1;
                    last = reason;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match resp.status().as_u16() {
                206 => {}
                200 => {
                    // No ranges here: start over.
                    if have > 0 {
                        file.set_len(0).map_err(werr)?;
                        hasher = Sha256::new();
                        have = 0;
                    }
                }
                404 => {
                    return Err(OciError::NotFound {
                        reference: format!("{}@{}", self.display(), d.digest),
                        why: "the registry has no such blob".into(),
                    })
                }
                _ => return Err(self.status_error(&url, resp)),
            }
            file.seek(std::io::SeekFrom::Start(have)).map_err(werr)?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let k = match resp.read(&mut buf) {
                    Ok(0) => break,
                    Ok(k) => k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        last = e.to_string();
                        break;
                    }
                };
                let k = k.min((d.size - have) as usize);
                if k == 0 {
                    break;
                }
                file.write_all(&buf[..k]).map_err(werr)?;
                hasher.update(&buf[..k]);
                have += k as u64;
                self.bytes_in.fetch_add(k as u64, Ordering::Relaxed);
                progress(k as u64);
            }
            if have < d.size {
                failures += 1;
                if last.is_empty() {
                    last = "the connection closed early".into();
                }
                // Keep what arrived: it is on disk for the next try or run.
                file.flush().map_err(werr)?;
            }
        }
        // Not synced: the pull reads it once into staged objects, which the
        // commit syncs, and a later run re-hashes what it finds here.
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != d.digest {
            drop(file);
            let _ = std::fs::remove_file(dest);
            return Err(OciError::Digest {
                what,
                expected: d.digest.clone(),
                actual,
            });
        }
        Ok(())
    }
}

impl Target for Registry {
    fn has_blob(&self, d: &Descriptor) -> Result<bool, OciError> {
        let url = self.url(&format!("blobs/{}", d.digest));
        let resp = self.send(&url, &|| Ok(self.client.head(&url)))?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.status_error(&url, resp)),
        }
    }

    fn put_blob(
        &self,
        d: &Descriptor,
        file: &Path,
        progress: &dyn Fn(u64),
    ) -> Result<(), OciError> {
        let start = self.url("blobs/uploads/");
        let resp = self.send(&start, &|| Ok(self.client.post(&start)))?;
        if resp.status().as_u16() != 202 {
            return Err(self.status_error(&start, resp));
        }
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| OciError::Status {
                url: start.clone(),
                status: 202,
                body: "no Location header for the upload".into(),
            })?
            .to_string();
        let location = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={}", d.digest);
        let sent = Arc::new(AtomicU64::new(0));
        // Progress from the body reader runs on reqwest's thread; hand the
        // counts over through an atomic and report them here afterwards.
        let resp = self.send(&url, &|| {
            let rerr = |source| OciError::Io {
                op: "read",
                path: file.to_path_buf(),
                source,
            };
            let f = std::fs::File::open(file).map_err(rerr)?;
            // reqwest hands a reader's body over in 8 KiB chunks through a
            // channel; a blob that fits in memory goes as one buffer.
            let body = if d.size <= IN_MEMORY_BLOB {
                let mut bytes = Vec::with_capacity(d.size as usize);
                (&f).take(d.size).read_to_end(&mut bytes).map_err(rerr)?;
                sent.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                reqwest::blocking::Body::from(bytes)
            } else {
                let body = Counting {
                    inner: f,
                    progress: Arc::new(|_| {}),
                    total: sent.clone(),
                };
                reqwest::blocking::Body::sized(body, d.size)
            };
            Ok(self
                .client
                .put(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body))
        })?;
        let n = sent.load(Ordering::Relaxed);
        self.bytes_out.fetch_add(n, Ordering::Relaxed);
        progress(d.size);
        if resp.status().as_u16() != 201 {
            return Err(self.status_error(&url, resp));
        }
        Ok(())
    }

    fn put_manifest(&self, tag: &str, bytes: &[u8], media_type: &str) -> Result<(), OciError> {
        let url = self.url(&format!("manifests/{tag}"));
        let body = bytes.to_vec();
        let resp = self.send(&url, &|| {
            Ok(self
                .client
                .put(&url)
                .header(reqwest::header::CONTENT_TYPE, media_type)
                .body(body.clone()))
        })?;
        if !resp.status().is_success() {
            return Err(self.status_error(&url, resp));
        }
        self.bytes_out
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn put_referrer(
        &self,
        subject_digest: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(), OciError> {
        // By digest (registries with the referrers API index its subject),
        // and under the fallback tag schema for those without it.
        let digest = super::image::digest_of(bytes);
        self.put_manifest(&digest, bytes, media_type)?;
        let tag = format!(
            "sha256-{}",
            sha256_hex(subject_digest).unwrap_or(subject_digest)
        );
        self.put_manifest(&tag, bytes, media_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge() {
        let p = challenge_params(
            r#"realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            p,
            vec![
                ("realm".into(), "https://auth.example/token".into()),
                ("service".into(), "registry.example".into()),
                ("scope".into(), "repository:a/b:pull,push".into()),
            ]
        );
        let p = challenge_params("realm=http://x/t, service=s");
        assert_eq!(p[0], ("realm".into(), "http://x/t".into()));
        assert_eq!(p[1], ("service".into(), "s".into()));
    }
}
