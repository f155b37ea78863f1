//! HTTP (and `file://`) access with retries. Every caller verifies what it gets
//! against a signed index; this module only moves bytes and names the URL when
//! it cannot.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HttpError {
    #[error("{url}: not found on the mirror (HTTP 404); check the mirror URL and suite, or pass --mirror")]
    NotFound { url: String },
    #[error(
        "{url}: HTTP {status}; the mirror refused the request, try again later or pass --mirror"
    )]
    Status { url: String, status: u16 },
    #[error("{url}: cannot reach the mirror after {attempts} attempts ({reason}); check the network or pass --mirror")]
    Unreachable {
        url: String,
        attempts: u32,
        reason: String,
    },
    #[error("{url}: {source}")]
    File {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

impl HttpError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, HttpError::NotFound { .. })
            || matches!(self, HttpError::File { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// Whether the failure was on disk (our side) rather than on the network.
    pub fn is_local_io(&self) -> bool {
        matches!(self, HttpError::Write { .. })
    }
}

/// A blocking client shared by all threads of a build.
#[derive(Clone)]
pub struct Http {
    client: reqwest::blocking::Client,
    attempts: u32,
}

impl Http {
    pub fn new() -> Result<Http, HttpError> {
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(600))
            .user_agent(concat!("vzpkg/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(16)
            .build()
            .map_err(|e| HttpError::Client(e.to_string()))?;
        Ok(Http {
            client,
            attempts: 3,
        })
    }

    /// How many times a request is tried before giving up (at least once).
    pub fn with_attempts(mut self, attempts: u32) -> Http {
        self.attempts = attempts.max(1);
        self
    }

    /// The whole body of `url`.
    pub fn get(&self, url: &str) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        self.get_into(url, &mut out, &mut |_| {})?;
        Ok(out)
    }

    /// Download `url` into `dest` (created or truncated), calling `progress`
    /// with each chunk's size. On a retry the file starts over.
    pub fn download(
        &self,
        url: &str,
        dest: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), HttpError> {
        let werr = |source| HttpError::Write {
            path: dest.display().to_string(),
            source,
        };
        let mut file = std::fs::File::create(dest).map_err(werr)?;
        self.get_into(url, &mut file, progress)?;
        file.flush().map_err(werr)?;
        Ok(())
    }

    fn get_into(
        &self,
        url: &str,
        out: &mut dyn WriteSeek,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), HttpError> {
        if let Some(path) = url.strip_prefix("file://") {
            let mut f = std::fs::File::open(path).map_err(|source| HttpError::File {
                url: url.to_string(),
                source,
            })?;
            return copy_chunks(&mut f, out, progress).map_err(|e| match e {
                CopyError::Read(source) => HttpError::File {
                    url: url.to_string(),
                    source,
                },
                CopyError::Write(source) => HttpError::Write {
                    path: "download".into(),
                    source,
                },
            });
        }
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            if attempt > 1 {
                std::thread::sleep(Duration::from_millis(300 * u64::from(attempt - 1)));
                out.restart().map_err(|source| HttpError::Write {
                    path: "download".into(),
                    source,
                })?;
            }
            let mut resp = match self.client.get(url).send() {
                Ok(r) => r,
                Err(e) => {
                    last = error_chain(&e);
                    continue;
                }
            };
            let status = resp.status();
            if status.as_u16() == 404 {
                return Err(HttpError::NotFound {
                    url: url.to_string(),
                });
            }
            if status.is_server_error() || status.as_u16() == 429 {
                last = format!("HTTP {status}");
                continue;
            }
            if !status.is_success() {
                return Err(HttpError::Status {
                    url: url.to_string(),
                    status: status.as_u16(),
                });
            }
            match copy_chunks(&mut resp, out, progress) {
                Ok(()) => return Ok(()),
                Err(CopyError::Read(e)) => last = e.to_string(),
                Err(CopyError::Write(source)) => {
                    return Err(HttpError::Write {
                        path: "download".into(),
                        source,
                    })
                }
            }
        }
        Err(HttpError::Unreachable {
            url: url.to_string(),
            attempts: self.attempts,
            reason: last,
        })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

enum CopyError {
    Read(std::io::Error),
    Write(std::io::Error),
}

fn copy_chunks(
    r: &mut dyn Read,
    w: &mut dyn WriteSeek,
    progress: &mut dyn FnMut(u64),
) -> Result<(), CopyError> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        w.write_all(&buf[..n]).map_err(CopyError::Write)?;
        progress(n as u64);
    }
}

/// A sink that can start over when a transfer is retried.
trait WriteSeek: Write {
    fn restart(&mut self) -> std::io::Result<()>;
}

impl WriteSeek for Vec<u8> {
    fn restart(&mut self) -> std::io::Result<()> {
        self.clear();
        Ok(())
    }
}

impl WriteSeek for std::fs::File {
    fn restart(&mut self) -> std::io::Result<()> {
        use std::io::Seek;
        self.set_len(0)?;
        self.seek(std::io::SeekFrom::Start(0))?;
        Ok(())
    }
}
