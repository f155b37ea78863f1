//! Layer compression, behind one small seam so the project's shared
//! compression module can take over without touching the rest of `oci/`.
//! Settings are fixed so the same layer compresses to the same bytes (and
//! the same digest) on every host: zstd level 3 single-threaded, gzip level 6
//! with a zero mtime in its header.

use super::image::media;
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
}

/// A compressing writer whose `finish` flushes the stream's end.
pub enum Encoder<W: Write> {
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Gzip(flate2::write::GzEncoder<W>),
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Gzip(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Zstd(e) => e.flush(),
            Encoder::Gzip(e) => e.flush(),
        }
    }
}

impl<W: Write> Encoder<W> {
    pub fn new(kind: Compression, w: W) -> io::Result<Encoder<W>> {
        Ok(match kind {
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(w, 3)?),
            Compression::Gzip => Encoder::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(w, flate2::Compression::new(6)),
            ),
        })
    }

    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Zstd(e) => e.finish(),
            Encoder::Gzip(e) => e.finish(),
        }
    }
}

/// A decompressing reader for a layer of `media_type`; a media type that
/// names no compression is sniffed (some images mislabel gzip layers).
pub fn decoder<'a>(media_type: &str, r: impl BufRead + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut r = r;
    let head = r.fill_buf()?;
    let zstd_magic = head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    let gzip_magic = head.starts_with(&[0x1f, 0x8b]);
    let kind = if media_type.ends_with("+zstd") || zstd_magic {
        Some(Compression::Zstd)
    } else if media_type.ends_with("+gzip") || media_type.ends_with(".gzip") || gzip_magic {
        Some(Compression::Gzip)
    } else {
        None
    };
    Ok(match kind {
        Some(Compression::Zstd) => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
        Some(Compression::Gzip) => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        None => Box::new(r),
    })
}
