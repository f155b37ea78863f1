//! RPM's version order: `rpmvercmp` for one version or release string (the
//! `rpm-version` crate, whose order is rpm's own), and `[E:]V[-R]` strings
//! as dependency ranges compare them.

use std::cmp::Ordering;

/// Compare two version (or release) strings exactly as rpm's `rpmvercmp`,
/// including `~` (sorts before anything) and `^` (sorts after the base).
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    // Equal epochs and empty releases: only the versions decide.
    rpm_version::Evr::new("", a, "").cmp(&rpm_version::Evr::new("", b, ""))
}

/// Split `[E:]V[-R]` into epoch (0 when absent), version and release.
pub fn parse_evr(evr: &str) -> (u32, &str, Option<&str>) {
    let (epoch, rest) = match evr.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => {
            (e.parse().unwrap_or(u32::MAX), rest)
        }
        _ => (0, evr),
    };
    match rest.rsplit_once('-') {
        Some((v, r)) => (epoch, v, Some(r)),
        None => (epoch, rest, None),
    }
}

/// Compare `[E:]V[-R]` strings as rpm compares dependency ranges: the
/// release only counts when both sides have one.
pub fn compare_evr(a: &str, b: &str) -> Ordering {
    let (ea, va, ra) = parse_evr(a);
    let (eb, vb, rb) = parse_evr(b);
    ea.cmp(&eb)
        .then_with(|| rpmvercmp(va, vb))
        .then_with(|| match (ra, rb) {
            (Some(ra), Some(rb)) => rpmvercmp(ra, rb),
            _ => Ordering::Equal,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpmvercmp_matches_rpm() {
        // From rpm's own test suite (rpmvercmp.at).
        let table: &[(&str, &str, i32)] = &[
            ("1.0", "1.0", 0),
            ("1.0", "2.0", -1),
            ("2.0", "1.0", 1),
            ("2.0.1", "2.0.1", 0),
            ("2.0", "2.0.1", -1),
            ("2.0.1a", "2.0.1", 1),
            ("5.5p1", "5.5p2", -1),
            ("5.5p10", "5.5p1", 1),
            ("10xyz", "10.1xyz", -1),
            ("xyz10", "xyz10.1", -1),
            ("xyz.4", "8", -1),
            ("xyz.4", "2", -1),
            ("5.5p2", "5.6p1", -1),
            ("5.6p1", "6.5p1", -1),
            ("6.0.rc1", "6.0", 1),
            ("10b2", "10a1", 1),
            ("1.0aa", "1.0a", 1),
            ("10.0001", "10.1", 0),
            ("10.0001", "10.0039", -1),
            ("4.999.9", "5.0", -1),
            ("20101121", "20101122", -1),
            ("2_0", "2_0", 0),
            ("2.0", "2_0", 0),
            ("a", "a", 0),
            ("a+", "a_", 0),
            ("+", "_", 0),
            ("1.0~rc1", "1.0~rc1", 0),
            ("1.0~rc1", "1.0", -1),
            ("1.0", "1.0~rc1", 1),
            ("1.0~rc1", "1.0~rc2", -1),
            ("1.0~rc1~git123", "1.0~rc1", -1),
            ("1.0^", "1.0", 1),
            ("1.0^git1", "1.0", 1),
            ("1.0^git1", "1.0^git2", -1),
            ("1.0^git1", "1.01", -1),
            ("1.0^20160101", "1.0.1", -1),
            ("1.0^20160101^git1", "1.0^20160101", 1),
            ("1.0~rc1^git1", "1.0~rc1", 1),
            ("1.0^git1~pre", "1.0^git1", -1),
            ("1.0^git1", "1.0~rc1", 1),
        ];
        for (a, b, want) in table {
            let got = match rpmvercmp(a, b) {
                Ordering::Less => -1,
                Ordering::Equal => 0,
                Ordering::Greater => 1,
            };
            assert_eq!(got, *want, "rpmvercmp({a:?}, {b:?})");
        }
    }

    #[test]
    fn compare_evr_epoch_first_release_optional() {
        assert_eq!(compare_evr("1:1.0-1", "2.0-1"), Ordering::Greater);
        assert_eq!(compare_evr("1.0-2", "1.0-10"), Ordering::Less);
        assert_eq!(compare_evr("1.0", "1.0-5.el9"), Ordering::Equal);
        assert_eq!(compare_evr("0:1.0-1", "1.0-1"), Ordering::Equal);
        assert_eq!(parse_evr("3:2.4-1.el7"), (3, "2.4", Some("1.el7")));
    }
}
