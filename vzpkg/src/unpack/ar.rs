//! A small streaming reader for `ar` archives, enough for `.deb` files:
//! the `!<arch>\n` magic, 60-byte member headers, GNU (`name/`) and BSD
//! (`#1/LEN`) member names. Archives are untrusted: every header field is
//! checked and a short file is an error, never a silent end.

use std::io::{self, Read};
use thiserror::Error;

pub const MAGIC: &[u8; 8] = b"!<arch>\n";
const HEADER_LEN: usize = 60;
/// BSD long names live in the member data; anything longer is not a .deb.
const MAX_BSD_NAME: u64 = 4096;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ArError {
    #[error("not an ar archive (the file does not start with `!<arch>`)")]
    BadMagic,
    #[error("the archive ends inside the member header at byte {offset} (truncated file)")]
    TruncatedHeader { offset: u64 },
    #[error("malformed member header at byte {offset}: {detail}")]
    BadHeader { offset: u64, detail: String },
    #[error("reading the archive failed: {0}")]
    Io(#[from] io::Error),
}

/// One member's header. The member's data is read from the `ArReader` itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberHeader {
    pub name: String,
    /// Size of the data (without a BSD name prefix).
    pub size: u64,
    pub mode: u32,
}

pub struct ArReader<R> {
    inner: R,
    /// Bytes consumed from `inner` so far (for error messages).
    offset: u64,
    /// Unread data bytes of the current member.
    remaining: u64,
    /// The current member has odd size: one padding byte follows it.
    pad: bool,
}

impl<R: Read> ArReader<R> {
    /// Check the magic and position before the first member.
    pub fn new(mut inner: R) -> Result<Self, ArError> {
        let mut magic = [0u8; 8];
        match read_full(&mut inner, &mut magic)? {
            8 if &magic == MAGIC => {}
            _ => return Err(ArError::BadMagic),
        }
        Ok(ArReader {
            inner,
            offset: 8,
            remaining: 0,
            pad: false,
        })
    }

    /// Skip what is left of the current member and read the next header;
    /// `None` at a clean end of archive.
    pub fn next_member(&mut self) -> Result<Option<MemberHeader>, ArError> {
        self.skip_rest()?;
        let start = self.offset;
        let mut h = [0u8; HEADER_LEN];
        let n = read_full(&mut self.inner, &mut h)?;
        self.offset += n as u64;
        if n == 0 {
            return Ok(None);
        }
        if n < HEADER_LEN {
            return Err(ArError::TruncatedHeader { offset: start });
        }
        if &h[58..60] != b"`\n" {
            return Err(ArError::BadHeader {
                offset: start,
                detail: "missing the header terminator".into(),
            });
        }
        let bad = |detail: &str| ArError::BadHeader {
            offset: start,
            detail: detail.to_string(),
        };
        let size = parse_num(&h[48..58], 10).ok_or_else(|| bad("size is not a number"))?;
        // Some writers leave the mode blank; it is informational only.
        let mode = parse_num(&h[40..48], 8).unwrap_or(0o644) as u32;
        let raw_name = std::str::from_utf8(&h[0..16])
            .map_err(|_| bad("member name is not ASCII"))?
            .trim_end_matches(' ');
        self.remaining = size;
        self.pad = size % 2 == 1;
        let name = if let Some(len) = raw_name.strip_prefix("#1/") {
            let len: u64 = len.parse().map_err(|_| bad("bad BSD name length"))?;
            if len > size || len > MAX_BSD_NAME {
                return Err(bad("BSD name longer than the member"));
            }
            let mut buf = vec![0u8; len as usize];
            self.read_exact(&mut buf)?;
            let name = String::from_utf8(buf).map_err(|_| bad("member name is not UTF-8"))?;
            name.trim_end_matches('\0').to_string()
        } else if raw_name == "/" || raw_name == "//" {
            raw_name.to_string()
        } else {
            raw_name.strip_suffix('/').unwrap_or(raw_name).to_string()
        };
        Ok(Some(MemberHeader {
            name,
            size: self.remaining,
            mode,
        }))
    }

    fn skip_rest(&mut self) -> Result<(), ArError> {
        let want = self.remaining + u64::from(self.pad);
        if want == 0 {
            return Ok(());
        }
        let skipped = io::copy(&mut (&mut self.inner).take(want), &mut io::sink())?;
        self.offset += skipped;
        // A missing final padding byte at the very end is tolerated (some
        // writers omit it); missing data is not.
        if skipped < self.remaining {
            return Err(ArError::Io(truncated()));
        }
        self.remaining = 0;
        self.pad = false;
        Ok(())
    }
}

/// Reads the current member's data; the end of the member is EOF, and an
/// archive shorter than the header promised is an `UnexpectedEof` error.
impl<R: Read> Read for ArReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(truncated());
        }
        self.remaining -= n as u64;
        self.offset += n as u64;
        Ok(n)
    }
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the archive is shorter than its member headers say (truncated file)",
    )
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn parse_num(field: &[u8], radix: u32) -> Option<u64> {
    let s = std::str::from_utf8(field)
        .ok()?
        .trim_matches(|c| c == ' ' || c == '\0');
    if s.is_empty() {
        return None;
    }
    u64::from_str_radix(s, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, data: &[u8]) -> Vec<u8> {
        let mut v = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            0,
            0,
            0,
            "100644",
            data.len()
        )
        .into_bytes();
        v.extend_from_slice(data);
        if data.len() % 2 == 1 {
            v.push(b'\n');
        }
        v
    }

    #[test]
    fn reads_gnu_and_bsd_names_and_padding() {
        let mut a = MAGIC.to_vec();
        a.extend(member("debian-binary/", b"2.0\n"));
        a.extend(member("odd", b"abc"));
        // BSD: the name is the first 14 bytes of the data.
        let mut bsd = b"control.tar.xz".to_vec();
        bsd.extend_from_slice(b"XY");
        a.extend(member("#1/14", &bsd));
        let mut r = ArReader::new(&a[..]).unwrap();
        let h = r.next_member().unwrap().unwrap();
        assert_eq!(
            (h.name.as_str(), h.size, h.mode),
            ("debian-binary", 4, 0o100644)
        );
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "2.0\n");
        let h = r.next_member().unwrap().unwrap();
        assert_eq!((h.name.as_str(), h.size), ("odd", 3));
        // Not reading "odd": next_member skips data and padding.
        let h = r.next_member().unwrap().unwrap();
        assert_eq!((h.name.as_str(), h.size), ("control.tar.xz", 2));
        let mut d = Vec::new();
        r.read_to_end(&mut d).unwrap();
        assert_eq!(d, b"XY");
        assert!(r.next_member().unwrap().is_none());
    }

    #[test]
    fn rejects_bad_magic_header_and_truncation() {
        assert!(matches!(
            ArReader::new(&b"PK\x03\x04 not ar"[..]),
            Err(ArError::BadMagic)
        ));
        let mut a = MAGIC.to_vec();
        a.extend(member("data.tar", b"0123456789"));
        let cut = &a[..a.len() - 4];
        let mut r = ArReader::new(cut).unwrap();
        r.next_member().unwrap().unwrap();
        let mut d = Vec::new();
        let e = r.read_to_end(&mut d).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);

        let mut r = ArReader::new(&a[..8 + 30]).unwrap();
        assert!(matches!(
            r.next_member(),
            Err(ArError::TruncatedHeader { offset: 8 })
        ));

        let mut bad = a.clone();
        bad[8 + 48] = b'x';
        let mut r = ArReader::new(&bad[..]).unwrap();
        assert!(matches!(r.next_member(), Err(ArError::BadHeader { .. })));
    }
}
