//! The compressions OCI layers come in, over the project's one compression
//! module. Settings are fixed so the same layer compresses to the same bytes
//! (and the same digest) on every host: zstd level 3 through its
//! multithreaded encoder, whose output does not depend on the thread count,
//! and gzip level 6 with a zero mtime in its header.

use super::image::media;
use crate::compress::{self, EncodeOptions, Integrity};
use std::io::{self, BufRead, Read, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Zstd,
    Gzip,
}

impl Compression {
    pub fn parse(s: &str) -> Option<Compression> {
        match s {
            "zstd" => Some(Compression::Zstd),
            "gzip" => Some(Compression::Gzip),
            _ => None,
        }
    }

    pub fn layer_media_type(self) -> &'static str {
        match self {
            Compression::Zstd => media::LAYER_ZSTD,
            Compression::Gzip => media::LAYER_GZIP,
        }
    }

    /// Names the encoder settings, so a blob made under other settings (an
    /// earlier version's single-threaded zstd) is made again, not mistaken
    /// for this one.
    pub fn settings(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd3mt",
            Compression::Gzip => "gzip6",
        }
    }

    fn format(self) -> compress::Compression {
        match self {
            Compression::Zstd => compress::Compression::Zstd,
            Compression::Gzip => compress::Compression::Gzip,
        }
    }
}

/// A compressing writer for a layer; `finish` ends the stream.
pub fn encoder<W: Write>(kind: Compression, w: W) -> io::Result<compress::Encoder<W>> {
    let opts = EncodeOptions {
        zstd_level: 3,
        gzip_level: 6,
        ..EncodeOptions::default()
    };
    compress::writer(kind.format(), w, &opts).map_err(io::Error::other)
}

/// A decompressing reader for a layer of `media_type`; a media type that
/// names no compression is sniffed (some images mislabel gzip layers).
pub fn decoder<'a>(media_type: &str, r: impl BufRead + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut r = r;
    let magic = compress::Compression::from_magic(r.fill_buf()?);
    let kind = if media_type.ends_with("+zstd") || magic == Some(compress::Compression::Zstd) {
        compress::Compression::Zstd
    } else if media_type.ends_with("+gzip")
        || media_type.ends_with(".gzip")
        || magic == Some(compress::Compression::Gzip)
    {
        compress::Compression::Gzip
    } else {
        compress::Compression::None
    };
    // The blob's digest is checked as it streams; the layer's own checks
    // still run, as a damaged blob should fail loudly either way.
    compress::reader(kind, r, Integrity::Check)
}
