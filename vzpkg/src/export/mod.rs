//! OpenVZ template caches: `$TEMPLATE/cache/<name>.tar{,.gz,.bz2,.xz,.zst}`.
//!
//! [`write_cache`] tars a root tree the way OpenVZ expects (`./`, `./bin/`,
//! numeric owners) but reproducibly: entries sorted by path bytes, ustar
//! headers with PAX records only for xattrs, long names and out-of-range
//! numbers, no user/group names, no atime/ctime, fixed compression settings.
//! [`read_cache`] extracts such a cache (or one made by GNU tar) into an
//! empty directory, refusing anything that would land outside it.

mod import;
mod write;

pub use import::read_cache;
pub use write::write_cache;

use std::io;
use std::path::PathBuf;

#[cfg(test)]
use rustix::fs::{Timespec, Timestamps};

/// Accepted cache name endings, for error messages.
const SUFFIXES: &str = ".tar, .tar.gz, .tgz, .tar.bz2, .tar.xz or .tar.zst";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    #[error("cannot tell how to compress {path}: name the cache with one of {SUFFIXES}", SUFFIXES = SUFFIXES)]
    UnknownSuffix { path: PathBuf },
    #[error("{path} is not a directory; export a template's root directory")]
    NotADirectory { path: PathBuf },
    #[error("cannot read {path} in the tree being exported: {source}; check the tree is complete and readable")]
    ReadTree {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} changed while it was being exported ({detail}); export from a tree nothing else is writing to")]
    TreeChanged { path: PathBuf, detail: String },
    #[error("cannot write {path}: {source}; check free space and permissions in its directory")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot set up {codec} compression for {path}: {detail}; try another suffix ({SUFFIXES})", SUFFIXES = SUFFIXES)]
    Compressor {
        path: PathBuf,
        codec: &'static str,
        detail: String,
    },
    #[error("interrupted: {path} was not written and the partial file was removed")]
    ExportCancelled { path: PathBuf },
    #[error("interrupted: {dest} holds a partial extraction; delete it and run the import again")]
    ImportCancelled { dest: PathBuf },
    #[error(
        "cannot open {path}: {source}; check the path and that the cache was downloaded completely"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a template cache: it is neither a tar archive nor a gzip, bzip2, xz or zstd compressed one; check the file name and re-download it")]
    UnknownFormat { path: PathBuf },
    #[error("{path} is truncated or corrupt ({detail}); re-download or re-export the cache")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path} is unsafe: member {member} {reason}; refusing to extract it, get the cache from a trusted source")]
    Unsafe {
        path: PathBuf,
        member: String,
        reason: String,
    },
    #[error("{path}: member {member} has tar type {kind}, which a template cache cannot hold; re-export the cache")]
    Unsupported {
        path: PathBuf,
        member: String,
        kind: String,
    },
    #[error("{dest} is not an empty directory; extract a cache into a new, empty directory")]
    DestNotEmpty { dest: PathBuf },
    #[error("cannot extract member {member} of {cache} to {target}: {source}; check free space and that the destination file system supports owners, device nodes and xattrs (run as root)")]
    Extract {
        cache: PathBuf,
        member: String,
        target: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub use crate::compress::Compression;

/// Compression settings. Output is a function of the tree and these levels
/// only: the thread count never changes the bytes written.
pub type ExportOptions = crate::compress::EncodeOptions;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub entries: u64,
    /// Size of the tar stream.
    pub uncompressed_bytes: u64,
    /// Size of the file written.
    pub compressed_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub compression: Compression,
    pub entries: u64,
    /// File content bytes written.
    pub bytes: u64,
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
fn timestamps(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

#[cfg(test)]
mod tests;
