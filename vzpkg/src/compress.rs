//! Compression formats in one place: telling them apart (by file name or by
//! magic bytes), decoding readers and encoding writers. Repository indexes,
//! package members, template caches (export and import) and OCI layers all
//! go through here.

use std::io::{self, BufRead, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A compression format (or none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    /// The legacy `.lzma` format (old `.deb` members); no magic bytes.
    Lzma,
    Zstd,
}

/// Name endings, longest first where one ends another.
const SUFFIXES: [(&str, Compression); 5] = [
    (".gz", Compression::Gzip),
    (".bz2", Compression::Bzip2),
    (".xz", Compression::Xz),
    (".lzma", Compression::Lzma),
    (".zst", Compression::Zstd),
];

impl Compression {
    /// From a suffix exactly (`""`, `".gz"`, `".xz"`, `".lzma"`, `".zst"`,
    /// `".bz2"`); `None` for any other.
    pub fn from_suffix(suffix: &str) -> Option<Compression> {
        if suffix.is_empty() {
            return Some(Compression::None);
        }
        SUFFIXES.iter().find(|(s, _)| *s == suffix).map(|(_, c)| *c)
    }

    /// From the ending of a file name or URL path; `None` when it ends in
    /// none of the compressed formats' suffixes.
    pub fn from_name(name: &[u8]) -> Option<Compression> {
        SUFFIXES
            .iter()
            .find(|(s, _)| name.ends_with(s.as_bytes()))
            .map(|(_, c)| *c)
    }

    /// From the first bytes of a stream: the compressed formats that carry
    /// magic bytes (gzip, bzip2, xz, zstd); `None` otherwise.
    pub fn from_magic(head: &[u8]) -> Option<Compression> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if head.starts_with(b"BZh") {
            Some(Compression::Bzip2)
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Some(Compression::Xz)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    /// From a tar archive's file name (`.tar`, `.tar.gz`, `.tgz`, `.tar.bz2`,
    /// `.tar.xz`, `.tar.zst`: what OpenVZ accepts for a template cache);
    /// `None` for any other name.
    pub fn from_path(path: &Path) -> Option<Compression> {
        let name = path.file_name()?.as_bytes();
        let table: [(&[u8], Compression); 6] = [
            (b".tar", Compression::None),
            (b".tar.gz", Compression::Gzip),
            (b".tgz", Compression::Gzip),
            (b".tar.bz2", Compression::Bzip2),
            (b".tar.xz", Compression::Xz),
            (b".tar.zst", Compression::Zstd),
        ];
        table
            .iter()
            .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix))
            .map(|(_, c)| *c)
    }

    /// From the first bytes of what should be a tar archive, compressed or
    /// not (at least 262 bytes for plain tar); `None` when it is neither.
    pub fn from_tar_magic(head: &[u8]) -> Option<Compression> {
        // POSIX ustar and GNU ("ustar  \0") headers alike.
        Compression::from_magic(head)
            .or_else(|| (head.get(257..262) == Some(b"ustar")).then_some(Compression::None))
    }

    /// By the magic bytes (what the data is), else by the name's suffix
    /// (for lzma, which has none), else uncompressed.
    pub fn detect(name: &[u8], head: &[u8]) -> Compression {
        Compression::from_magic(head)
            .or_else(|| Compression::from_name(name))
            .unwrap_or(Compression::None)
    }

    /// The usual file-name suffix (`""` for none).
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Bzip2 => ".bz2",
            Compression::Xz => ".xz",
            Compression::Lzma => ".lzma",
            Compression::Zstd => ".zst",
        }
    }

    /// The codec's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
            Compression::Lzma => "lzma",
            Compression::Zstd => "zstd",
        }
    }
}

/// Whether a decoder checks the format's own integrity check (xz's CRC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// Verify it.
    Check,
    /// Skip it: the whole input was already checked against a signed digest,
    /// so the check would only repeat that work.
    Prechecked,
}

/// A decoding reader over `r`. Concatenated streams (gzip, bzip2, xz, zstd
/// frames) are read as one, as the command-line tools do.
pub fn reader<'a, R: BufRead + 'a>(
    kind: Compression,
    r: R,
    integrity: Integrity,
) -> io::Result<Box<dyn io::Read + 'a>> {
    Ok(match kind {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(r)),
        Compression::Xz => match integrity {
            Integrity::Check => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(r)),
            Integrity::Prechecked => {
                let stream = liblzma::stream::Stream::new_stream_decoder(
                    u64::MAX,
                    liblzma::stream::CONCATENATED | liblzma::stream::IGNORE_CHECK,
                )
                .map_err(io::Error::other)?;
                Box::new(liblzma::bufread::XzDecoder::new_stream(r, stream))
            }
        },
        Compression::Lzma => {
            let stream =
                liblzma::stream::Stream::new_lzma_decoder(u64::MAX).map_err(io::Error::other)?;
            Box::new(liblzma::bufread::XzDecoder::new_stream(r, stream))
        }
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
    })
}

/// Encoder settings. The output is a function of the input and the levels
/// only: the thread count never changes the bytes written.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// Worker threads for xz and zstd; `None` = all cores.
    pub threads: Option<usize>,
    pub zstd_level: i32,
    /// 0..=9 (xz and lzma).
    pub xz_preset: u32,
    pub gzip_level: u32,
    pub bzip2_level: u32,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            threads: None,
            // zstd's own default: close to `tar | zstd -T0` in speed.
            zstd_level: 3,
            xz_preset: 6,
            gzip_level: 6,
            bzip2_level: 9,
        }
    }
}

impl EncodeOptions {
    fn thread_count(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}

/// An encoder that cannot be set up (bad level, out of memory).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up {codec} compression: {detail}")]
pub struct CompressError {
    pub codec: &'static str,
    pub detail: String,
}

/// An encoding writer; [`Encoder::finish`] ends the stream and returns the
/// inner writer.
pub enum Encoder<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Bzip2(bzip2::write::BzEncoder<W>),
    Xz(liblzma::write::XzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(w) => w.write(buf),
            Encoder::Bzip2(w) => w.write(buf),
            Encoder::Xz(w) => w.write(buf),
            Encoder::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
            Encoder::Bzip2(w) => w.flush(),
            Encoder::Xz(w) => w.flush(),
            Encoder::Zstd(w) => w.flush(),
        }
    }
}

impl<W: Write> Encoder<W> {
    /// Ends the compressed stream; the inner writer is not flushed.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(w) => w.finish(),
            Encoder::Bzip2(w) => w.finish(),
            Encoder::Xz(w) => w.finish(),
            Encoder::Zstd(w) => w.finish(),
        }
    }
}

/// xz block size for a preset: three times its dictionary, as `xz -T` uses.
/// Fixing it makes the multithreaded output independent of the thread count.
fn xz_block_size(preset: u32) -> u64 {
    const DICT_MIB: [u64; 10] = [0, 1, 2, 4, 4, 8, 8, 16, 32, 64];
    let dict = DICT_MIB[(preset as usize).min(9)];
    (3 * dict).max(1) << 20
}

/// An encoding writer over `w`; xz and zstd use `opts.threads` workers.
pub fn writer<W: Write>(
    kind: Compression,
    w: W,
    opts: &EncodeOptions,
) -> Result<Encoder<W>, CompressError> {
    let n = opts.thread_count();
    let fail = |codec: &'static str, detail: String| CompressError { codec, detail };
    Ok(match kind {
        Compression::None => Encoder::Plain(w),
        Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
            w,
            flate2::Compression::new(opts.gzip_level.min(9)),
        )),
        Compression::Bzip2 => Encoder::Bzip2(bzip2::write::BzEncoder::new(
            w,
            bzip2::Compression::new(opts.bzip2_level.clamp(1, 9)),
        )),
        Compression::Xz => {
            let preset = opts.xz_preset.min(9);
            // The multithreaded encoder even for one thread: the single
            // threaded one writes one block and so different bytes. Each
            // thread needs several blocks of memory, hence the cap.
            let stream = liblzma::stream::MtStreamBuilder::new()
                .threads(n.min(16) as u32)
                .block_size(xz_block_size(preset))
                .preset(preset)
                .check(liblzma::stream::Check::Crc64)
                .encoder()
                .map_err(|e| fail("xz", e.to_string()))?;
            Encoder::Xz(liblzma::write::XzEncoder::new_stream(w, stream))
        }
        Compression::Lzma => {
            let options = liblzma::stream::LzmaOptions::new_preset(opts.xz_preset.min(9))
                .map_err(|e| fail("lzma", e.to_string()))?;
            let stream = liblzma::stream::Stream::new_lzma_encoder(&options)
                .map_err(|e| fail("lzma", e.to_string()))?;
            Encoder::Xz(liblzma::write::XzEncoder::new_stream(w, stream))
        }
        Compression::Zstd => {
            let mut e = zstd::stream::write::Encoder::new(w, opts.zstd_level)
                .map_err(|e| fail("zstd", e.to_string()))?;
            // At least one worker: zstd's output is the same for any number
            // of workers >= 1, but differs from the single-threaded mode (0).
            e.multithread(n as u32)
                .map_err(|e| fail("zstd", e.to_string()))?;
            e.include_checksum(true)
                .map_err(|e| fail("zstd", e.to_string()))?;
            Encoder::Zstd(e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    const ALL: [Compression; 6] = [
        Compression::None,
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Lzma,
        Compression::Zstd,
    ];

    #[test]
    fn every_format_round_trips_and_is_recognised() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let opts = EncodeOptions {
            threads: Some(2),
            ..EncodeOptions::default()
        };
        for kind in ALL {
            let mut e = writer(kind, Vec::new(), &opts).unwrap();
            e.write_all(&data).unwrap();
            let packed = e.finish().unwrap();
            if !matches!(kind, Compression::None | Compression::Lzma) {
                assert_eq!(Compression::from_magic(&packed), Some(kind));
            }
            let name = format!("x.tar{}", kind.suffix());
            assert_eq!(Compression::detect(name.as_bytes(), b""), kind);
            assert_eq!(Compression::from_suffix(kind.suffix()), Some(kind));
            for integrity in [Integrity::Check, Integrity::Prechecked] {
                let mut out = Vec::new();
                reader(kind, &packed[..], integrity)
                    .unwrap()
                    .read_to_end(&mut out)
                    .unwrap();
                assert_eq!(out, data, "{kind:?}");
            }
        }
    }

    #[test]
    fn concatenated_streams_read_as_one() {
        for kind in [Compression::Gzip, Compression::Xz, Compression::Zstd] {
            let mut packed = Vec::new();
            for part in [&b"first "[..], b"second"] {
                let mut e = writer(kind, Vec::new(), &EncodeOptions::default()).unwrap();
                e.write_all(part).unwrap();
                packed.extend(e.finish().unwrap());
            }
            let mut out = String::new();
            reader(kind, &packed[..], Integrity::Check)
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            assert_eq!(out, "first second", "{kind:?}");
        }
    }

    #[test]
    fn thread_count_does_not_change_the_bytes() {
        let data = vec![7u8; 3 << 20];
        for kind in [Compression::Xz, Compression::Zstd] {
            let mut outs = Vec::new();
            for threads in [1, 3] {
                let opts = EncodeOptions {
                    threads: Some(threads),
                    ..EncodeOptions::default()
                };
                let mut e = writer(kind, Vec::new(), &opts).unwrap();
                e.write_all(&data).unwrap();
                outs.push(e.finish().unwrap());
            }
            assert_eq!(outs[0], outs[1], "{kind:?}");
        }
    }

    #[test]
    fn unknown_names_and_bytes_are_not_guessed() {
        assert_eq!(Compression::from_suffix(".7z"), None);
        assert_eq!(Compression::from_name(b"Packages"), None);
        assert_eq!(Compression::from_magic(b"<?xml"), None);
        assert_eq!(
            Compression::detect(b"primary.xml", b"<?xml"),
            Compression::None
        );
        assert_eq!(
            Compression::detect(b"primary", &[0x1f, 0x8b, 8]),
            Compression::Gzip
        );
    }
}
