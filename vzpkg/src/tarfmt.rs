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
