//! The pieces of the tar format the `tar` crate leaves to us, shared by the
//! OpenVZ cache export/import and OCI layers: PAX records (written and read
//! as raw bytes, since the crate splits binary xattr values), octal fields
//! that say whether a value fits, GNU tar's checksum and block padding.

use std::io::{self, Write};

/// Writes `v` as zero-padded octal with a NUL; false if it does not fit.
pub(crate) fn put_octal(field: &mut [u8], v: u64) -> bool {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    if s.len() > digits {
        return false;
    }
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
    true
}

/// One PAX record, `"<len> key=value\n"`.
pub(crate) fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    // len counts its own digits too.
    let base = key.len() + value.len() + 3;
    let mut len = base + 1;
    while base + len.to_string().len() != len {
        len = base + len.to_string().len();
    }
    let mut r = format!("{len} ").into_bytes();
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// PAX records, `"<len> key=value\n"`; values may hold any byte. `None`
/// for a malformed record.
pub(crate) fn parse_pax(mut data: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    while !data.is_empty() && data[0] != 0 {
        let sp = data.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&data[..sp]).ok()?.parse().ok()?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return None;
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec.iter().position(|&b| b == b'=')?;
        out.push((rec[..eq].to_vec(), rec[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Some(out)
}

/// Sets a header block's checksum as GNU tar writes it (six digits, NUL,
/// space), so the bytes stay what earlier versions wrote.
pub(crate) fn set_checksum(b: &mut [u8; 512]) {
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    put_octal(&mut b[148..155], u64::from(sum));
    b[155] = b' ';
}

/// One member's header as the cache export and OCI layers describe it.
pub(crate) struct Member<'a> {
    pub name: &'a [u8],
    /// Only `mode & 0o7777` is written: the type is `kind`.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    /// `Some` writes sub-second times (OCI layers); the cache export keeps
    /// whole seconds as OpenVZ's tools do.
    pub mtime_nsec: Option<u32>,
    /// The ustar type flag: `b'0'`, `b'5'`, ...
    pub kind: u8,
    pub link: &'a [u8],
    pub dev: (u32, u32),
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

/// The ustar block for `m`, its numeric fields given (0 where a PAX record
/// carries the value), names cut at their fields.
fn ustar_block(m: &Member, uid: u64, gid: u64, size: u64, mtime: u64) -> [u8; 512] {
    let mut hdr = tar::Header::new_ustar();
    {
        // Names as raw bytes: the crate's setters want UTF-8 paths and
        // refuse long ones, where a PAX record has the whole.
        let old = hdr.as_old_mut();
        let n = m.name.len().min(old.name.len());
        old.name[..n].copy_from_slice(&m.name[..n]);
        let l = m.link.len().min(old.linkname.len());
        old.linkname[..l].copy_from_slice(&m.link[..l]);
    }
    hdr.set_mode(m.mode & 0o7777);
    hdr.set_uid(uid);
    hdr.set_gid(gid);
    hdr.set_size(size);
    hdr.set_mtime(mtime);
    hdr.set_entry_type(tar::EntryType::new(m.kind));
    if m.kind == b'3' || m.kind == b'4' {
        // Device numbers fit: the fields hold 21 bits, Linux's major 12.
        let _ = hdr.set_device_major(m.dev.0);
        let _ = hdr.set_device_minor(m.dev.1);
    }
    let mut b = *hdr.as_bytes();
    set_checksum(&mut b);
    b
}

/// Writes `m`'s header, preceded by a PAX header for what ustar cannot
/// hold (long names, large ids and sizes, times outside its range or
/// finer than a second, xattrs) and the caller's own `extra` records.
pub(crate) fn write_header(w: &mut impl Write, m: &Member, extra: &[u8]) -> io::Result<()> {
    let mut pax = Vec::new();
    if m.name.len() > 100 {
        pax.extend(pax_record(b"path", m.name));
    }
    if m.link.len() > 100 {
        pax.extend(pax_record(b"linkpath", m.link));
    }
    let mut scratch = [0u8; 12];
    let mut field = |v: u64, width: usize, key: &[u8], pax: &mut Vec<u8>| {
        if put_octal(&mut scratch[..width], v) {
            v
        } else {
            pax.extend(pax_record(key, v.to_string().as_bytes()));
            0
        }
    };
    let uid = field(m.uid, 8, b"uid", &mut pax);
    let gid = field(m.gid, 8, b"gid", &mut pax);
    let size = field(m.size, 12, b"size", &mut pax);
    let mtime = match u64::try_from(m.mtime) {
        Ok(t) if put_octal(&mut scratch, t) => {
            if let Some(ns @ 1..) = m.mtime_nsec {
                pax.extend(pax_record(b"mtime", format!("{t}.{ns:09}").as_bytes()));
            }
            t
        }
        _ => {
            // Outside ustar's range: the standard record for other tools,
            // and for OCI layers the exact value for us.
            pax.extend(pax_record(b"mtime", m.mtime.to_string().as_bytes()));
            if let Some(ns) = m.mtime_nsec {
                pax.extend(pax_record(
                    b"VZPKG.mtime",
                    format!("{}.{ns:09}", m.mtime).as_bytes(),
                ));
            }
            0
        }
    };
    for (k, v) in m.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(k);
        pax.extend(pax_record(&key, v));
    }
    pax.extend_from_slice(extra);
    if !pax.is_empty() {
        let len = pax.len() as u64;
        let x = Member {
            name: b"././@PaxHeader",
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: len,
            mtime: 0,
            mtime_nsec: None,
            kind: b'x',
            link: b"",
            dev: (0, 0),
            xattrs: &[],
        };
        w.write_all(&ustar_block(&x, 0, 0, len, 0))?;
        w.write_all(&pax)?;
        pad(w, len)?;
    }
    w.write_all(&ustar_block(m, uid, gid, size, mtime))
}

/// Zeros up to the next 512-byte boundary after `len` bytes of data.
pub(crate) fn pad(w: &mut impl Write, len: u64) -> io::Result<()> {
    let rem = (512 - len % 512) % 512;
    w.write_all(&[0u8; 512][..rem as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length_and_read_back() {
        let r = pax_record(b"path", b"x");
        assert_eq!(r, b"9 path=x\n");
        // Long enough that the length's own digits make it three digits.
        let long = vec![b'a'; 95];
        let r = pax_record(b"path", &long);
        assert_eq!(r.len(), 105);
        assert!(r.starts_with(b"105 path="));
        let mut both = pax_record(b"SCHILY.xattr.user.k", b"\x00\xff=\n");
        both.extend(pax_record(b"path", &long));
        let back = parse_pax(&both).unwrap();
        assert_eq!(
            back[0],
            (b"SCHILY.xattr.user.k".to_vec(), b"\x00\xff=\n".to_vec())
        );
        assert_eq!(back[1].1, long);
        assert!(parse_pax(b"99 path=x\n").is_none());
    }

    #[test]
    fn octal_fields_say_when_a_value_does_not_fit() {
        let mut f = [0u8; 8];
        assert!(put_octal(&mut f, 0o7777777));
        assert_eq!(&f, b"7777777\0");
        assert!(!put_octal(&mut f, 0o10000000));
    }
}
