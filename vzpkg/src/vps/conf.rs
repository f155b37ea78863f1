//! `CTID.conf`: shell-style `KEY="value"` lines, parsed and rendered without
//! touching the disk. Lines we don't know (comments, other tools' keys) are
//! kept as they are, so `set --save` changes only what it sets.

/// A parsed config: its lines in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conf {
    lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Pair { key: String, value: String },
    Other(String),
}

/// What is wrong with a config line (1-based line number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfSyntax {
    pub line: usize,
    pub why: String,
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && !k.as_bytes()[0].is_ascii_digit()
}

impl Conf {
    pub fn parse(text: &str) -> Result<Conf, ConfSyntax> {
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let t = raw.trim();
            if t.is_empty() || t.starts_with('#') {
                lines.push(Line::Other(raw.to_string()));
                continue;
            }
            let err = |why: &str| ConfSyntax {
                line: i + 1,
                why: why.to_string(),
            };
            let (key, rest) = t
                .split_once('=')
                .ok_or_else(|| err("expected KEY=\"value\""))?;
            if !valid_key(key) {
                return Err(err("the key must be upper-case letters, digits and _"));
            }
            let value = unquote(rest).ok_or_else(|| err("unbalanced quotes in the value"))?;
            lines.push(Line::Pair {
                key: key.to_string(),
                value,
            });
        }
        Ok(Conf { lines })
    }

    /// The last value given for `key` (the shell's rule).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines.iter().rev().find_map(|l| match l {
            Line::Pair { key: k, value } if k == key => Some(value.as_str()),
            _ => None,
        })
    }

    /// Replace `key`'s value in place, or append it.
    pub fn set(&mut self, key: &str, value: &str) {
        let slot = self.lines.iter_mut().rev().find_map(|l| match l {
            Line::Pair { key: k, value } if k == key => Some(value),
            _ => None,
        });
        match slot {
            Some(v) => *v = value.to_string(),
            None => self.lines.push(Line::Pair {
                key: key.to_string(),
                value: value.to_string(),
            }),
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            match l {
                Line::Pair { key, value } => {
                    out.push_str(key);
                    out.push_str("=\"");
                    for c in value.chars() {
                        if matches!(c, '"' | '\\' | '$' | '`') {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                }
                Line::Other(s) => out.push_str(s),
            }
            out.push('\n');
        }
        out
    }
}

/// The value of `"..."`, `'...'` or a bare word (a trailing `# comment` dropped).
fn unquote(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars();
    match s.chars().next() {
        Some('"') => {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => out.push(chars.next()?),
                    c => out.push(c),
                }
            }
        }
        Some('\'') => {
            chars.next();
            loop {
                match chars.next()? {
                    '\'' => break,
                    c => out.push(c),
                }
            }
        }
        _ => {
            for c in chars.by_ref() {
                if c.is_whitespace() {
                    break;
                }
                out.push(c);
            }
            return Some(out);
        }
    }
    let rest = chars.as_str().trim();
    (rest.is_empty() || rest.starts_with('#')).then_some(out)
}

/// vzctl's "unlimited" (LONG_MAX).
pub const UNLIMITED: u64 = i64::MAX as u64;

/// A disk size in 1K blocks: a number with an optional K, M, G or T suffix
/// (fractions allowed: `2.2G`), or `unlimited`. A bare number is 1K blocks.
pub fn parse_blocks(s: &str) -> Option<u64> {
    if s == "unlimited" {
        return Some(UNLIMITED);
    }
    let (num, mult) = match s.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1,
                'M' => 1 << 10,
                'G' => 1 << 20,
                'T' => 1 << 30,
                _ => return None,
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult);
    }
    let f: f64 = num.parse().ok()?;
    let v = (f * mult as f64).round();
    (v.is_finite() && v >= 0.0 && v < UNLIMITED as f64).then_some(v as u64)
}

/// An inode count: a plain number or `unlimited`.
pub fn parse_count(s: &str) -> Option<u64> {
    if s == "unlimited" {
        return Some(UNLIMITED);
    }
    s.parse().ok()
}

/// `soft[:hard]`, each parsed by `one`; a lone value is both limits.
pub fn parse_limits(s: &str, one: fn(&str) -> Option<u64>) -> Option<(u64, u64)> {
    let (soft, hard) = match s.split_once(':') {
        Some((a, b)) => (one(a)?, one(b)?),
        None => {
            let v = one(s)?;
            (v, v)
        }
    };
    (soft <= hard).then_some((soft, hard))
}

/// A hostname a VPS can have: dot-separated labels of letters, digits and `-`.
pub fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_unknown_lines_and_round_trips() {
        let text = "# made by hand\nOSTEMPLATE=\"debian-12\"\nDISKSPACE='10:20'\nFOO=bar # note\n\nX=\"a \\\"q\\\" $\"\n";
        let mut c = Conf::parse(text).unwrap();
        assert_eq!(c.get("OSTEMPLATE"), Some("debian-12"));
        assert_eq!(c.get("DISKSPACE"), Some("10:20"));
        assert_eq!(c.get("FOO"), Some("bar"));
        assert_eq!(c.get("X"), Some("a \"q\" $"));
        c.set("DISKSPACE", "1:2");
        c.set("HOSTNAME", "h");
        let out = c.render();
        assert!(out.starts_with("# made by hand\nOSTEMPLATE=\"debian-12\"\nDISKSPACE=\"1:2\"\n"));
        assert!(out.ends_with("HOSTNAME=\"h\"\n"));
        assert_eq!(Conf::parse(&out).unwrap().get("X"), Some("a \"q\" $"));
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        assert_eq!(Conf::parse("A=1\nnot a pair\n").unwrap_err().line, 2);
        assert_eq!(Conf::parse("A=\"open\n").unwrap_err().line, 1);
        assert_eq!(Conf::parse("lower=1\n").unwrap_err().line, 1);
        assert!(Conf::parse("A=\"x\" junk\n").is_err());
    }

    #[test]
    fn sizes_in_1k_blocks() {
        assert_eq!(parse_blocks("100"), Some(100));
        assert_eq!(parse_blocks("2G"), Some(2 << 20));
        assert_eq!(parse_blocks("2.2G"), Some(2306867));
        assert_eq!(parse_blocks("512m"), Some(512 << 10));
        assert_eq!(parse_blocks("7K"), Some(7));
        assert_eq!(parse_blocks("unlimited"), Some(UNLIMITED));
        for bad in ["", "G", "1X", "-1", "1.2.3G", "1 G"] {
            assert_eq!(parse_blocks(bad), None, "{bad}");
        }
        assert_eq!(
            parse_limits("2G:2.2G", parse_blocks),
            Some((2 << 20, 2306867))
        );
        assert_eq!(parse_limits("5", parse_count), Some((5, 5)));
        assert_eq!(parse_limits("9:5", parse_count), None);
        assert_eq!(parse_limits("1M", parse_count), None);
    }

    #[test]
    fn hostnames() {
        assert!(valid_hostname("vps101.example.com"));
        for bad in ["", "a..b", "-a", "a b", "a\nb", "x\"y"] {
            assert!(!valid_hostname(bad), "{bad:?}");
        }
    }
}
