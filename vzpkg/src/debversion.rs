//! Debian version comparison (deb-version(7)): `[epoch:]upstream[-revision]`.
//!
//! [`compare`] never fails: index data is compared as dpkg would compare it,
//! and a malformed epoch is treated as part of the upstream version so that a
//! single bad paragraph cannot stop a resolution. [`DebVersion::parse`] is the
//! strict form for input a user typed.

use std::cmp::Ordering;
use std::fmt;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum VersionError {
    #[error("version {version:?} is empty; write a version such as `1.2-3`")]
    Empty { version: String },
    #[error("version {version:?}: the epoch before `:` must be a number, as in `1:2.0-1`")]
    BadEpoch { version: String },
    #[error("version {version:?}: the upstream part must start with a digit, as in `2.0`")]
    BadUpstream { version: String },
    #[error("version {version:?} contains {ch:?}; only letters, digits and `.+-~:` are allowed")]
    BadCharacter { version: String, ch: char },
}

/// A parsed version, ordered by [`compare`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DebVersion {
    pub epoch: u64,
    pub upstream: String,
    /// Empty when the version has no `-revision`.
    pub revision: String,
}

impl DebVersion {
    /// Strict parse per deb-version(7).
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(VersionError::Empty {
                version: text.into(),
            });
        }
        if let Some(ch) = t
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ".+-~:".contains(*c)))
        {
            return Err(VersionError::BadCharacter {
                version: text.into(),
                ch,
            });
        }
        let (epoch, rest) = match t.split_once(':') {
            Some((e, rest)) => {
                let epoch = e.parse::<u64>().map_err(|_| VersionError::BadEpoch {
                    version: text.into(),
                })?;
                (epoch, rest)
            }
            None => (0, t),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => (u, r),
            None => (rest, ""),
        };
        if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(VersionError::BadUpstream {
                version: text.into(),
            });
        }
        Ok(DebVersion {
            epoch,
            upstream: upstream.into(),
            revision: revision.into(),
        })
    }
}

impl fmt::Display for DebVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch != 0 {
            write!(f, "{}:", self.epoch)?;
        }
        f.write_str(&self.upstream)?;
        if !self.revision.is_empty() {
            write!(f, "-{}", self.revision)?;
        }
        Ok(())
    }
}

impl Ord for DebVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| compare_part(&self.upstream, &other.upstream))
            .then_with(|| compare_part(&self.revision, &other.revision))
    }
}

impl PartialOrd for DebVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Split without allocating: (epoch digits, upstream, revision).
fn split(v: &str) -> (&str, &str, &str) {
    let v = v.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) if e.bytes().all(|b| b.is_ascii_digit()) => (e, rest),
        _ => ("", v),
    };
    match rest.rsplit_once('-') {
        Some((u, r)) => (epoch, u, r),
        None => (epoch, rest, ""),
    }
}

/// Compare digit strings numerically, whatever their length.
fn compare_numeric(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// dpkg's character weight in the non-digit parts: `~` sorts before the end
/// of the part, which sorts before letters, which sort before everything else.
fn weight(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

/// Compare an upstream version or a revision (dpkg's `verrevcmp`).
fn compare_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit prefix, character by character.
        loop {
            let ca = a.get(i).copied().filter(|c| !c.is_ascii_digit());
            let cb = b.get(j).copied().filter(|c| !c.is_ascii_digit());
            if ca.is_none() && cb.is_none() {
                break;
            }
            let (wa, wb) = (weight(ca), weight(cb));
            if wa != wb {
                return wa.cmp(&wb);
            }
            i += 1;
            j += 1;
        }
        // Digit run, numerically.
        let si = i;
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        let sj = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        // Only ASCII digits lie in these ranges, so they are valid UTF-8.
        let da = std::str::from_utf8(&a[si..i]).unwrap_or("");
        let db = std::str::from_utf8(&b[sj..j]).unwrap_or("");
        let ord = compare_numeric(da, db);
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// Order two Debian versions as dpkg does.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    compare_numeric(ea, eb)
        .then_with(|| compare_part(ua, ub))
        .then_with(|| compare_part(ra, rb))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn table() {
        // Pairs whose order dpkg --compare-versions defines.
        let cases: &[(&str, &str, Ordering)] = &[
            ("1.0", "1.0", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0~", "1.0", Less),
            ("1.0", "1.0a", Less),
            ("1.0a", "1.0+", Less),
            ("1.0+", "1.0.1", Less),
            ("1:0", "2.0", Greater),
            ("0:2.0", "2.0", Equal),
            ("1.0-1", "1.0-1+b1", Less),
            ("1.0-1", "1.0-2", Less),
            ("1.0-10", "1.0-9", Greater),
            ("1.0", "1.0-0", Equal),
            ("1.0-", "1.0", Equal),
            ("2.30-1", "2.4-1", Greater),
            ("1.2.3", "1.2.10", Less),
            ("001", "1", Equal),
            ("1.01", "1.1", Equal),
            ("9", "10", Less),
            ("1.0-1~bpo1", "1.0-1", Less),
            ("2:1", "1:9", Greater),
            ("10:1", "9:1", Greater),
            ("1.2-3-4", "1.2-3", Greater), // upstream "1.2-3" vs "1.2"
            ("a", "b", Less),
            ("1.0.0", "1.0", Greater),
            ("1.0", "1.0.", Less),
            ("99999999999999999999", "99999999999999999998", Greater),
            ("2.36-9+deb12u4", "2.36-9+deb12u10", Less),
            ("7.88.1-10+deb12u5", "7.88.1-10", Greater),
        ];
        for &(a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn sorting_is_total_and_consistent() {
        let mut v = vec![
            "1.0", "1:0.1", "1.0~rc1", "1.0-1", "1.0-1+b1", "0.9", "1.0a", "1.0~", "1.0+dfsg",
        ];
        v.sort_by(|a, b| compare(a, b));
        assert_eq!(
            v,
            ["0.9", "1.0~", "1.0~rc1", "1.0", "1.0-1", "1.0-1+b1", "1.0a", "1.0+dfsg", "1:0.1"]
        );
    }

    #[test]
    fn parse_strict() {
        let v = DebVersion::parse("2:1.2-3+b1").unwrap();
        assert_eq!(v.epoch, 2);
        assert_eq!(v.upstream, "1.2");
        assert_eq!(v.revision, "3+b1");
        assert_eq!(v.to_string(), "2:1.2-3+b1");
        assert!(DebVersion::parse("1.0").unwrap() < DebVersion::parse("1:0.1").unwrap());
        assert_eq!(
            DebVersion::parse("x:1"),
            Err(VersionError::BadEpoch {
                version: "x:1".into()
            })
        );
        assert!(matches!(
            DebVersion::parse("1.0 beta"),
            Err(VersionError::BadCharacter { ch: ' ', .. })
        ));
        assert!(matches!(
            DebVersion::parse("abc"),
            Err(VersionError::BadUpstream { .. })
        ));
        assert!(matches!(
            DebVersion::parse(""),
            Err(VersionError::Empty { .. })
        ));
    }
}
