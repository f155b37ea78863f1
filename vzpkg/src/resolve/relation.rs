//! Debian relationship fields (`Depends`, `Pre-Depends`, `Conflicts`,
//! `Breaks`, `Provides`, ...): comma-separated groups of `|` alternatives,
//! each `name[:archqual] [(op version)] [arch restrictions] [<profiles>]`.

use crate::debversion;
use std::cmp::Ordering;
use std::fmt;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelationError {
    #[error("relation {text:?}: empty alternative; remove the stray `|` or `,`")]
    EmptyAlternative { text: String },
    #[error("relation {text:?}: expected a package name (lower-case letters, digits, `+-.`)")]
    BadName { text: String },
    #[error("relation {text:?}: unknown version operator {op:?}; use one of <<, <=, =, >=, >>")]
    BadOperator { text: String, op: String },
    #[error("relation {text:?}: missing version after the operator, as in `(>= 1.0)`")]
    MissingVersion { text: String },
    #[error("relation {text:?}: {open:?} is not closed; add the matching {close:?}")]
    Unclosed {
        text: String,
        open: char,
        close: char,
    },
    #[error(
        "relation {text:?}: unexpected {rest:?} after the relation; separate relations with `,`"
    )]
    Trailing { text: String, rest: String },
}

/// A version operator. The obsolete `<` and `>` parse as `<=` and `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RelOp {
    /// `<<`
    Lt,
    /// `<=`
    Le,
    /// `=`
    Eq,
    /// `>=`
    Ge,
    /// `>>`
    Gt,
}

impl RelOp {
    pub fn parse(op: &str) -> Option<RelOp> {
        Some(match op {
            "<<" => RelOp::Lt,
            "<=" | "<" => RelOp::Le,
            "=" => RelOp::Eq,
            ">=" | ">" => RelOp::Ge,
            ">>" => RelOp::Gt,
            _ => return None,
        })
    }

    /// Whether `candidate OP wanted` holds, given `compare(candidate, wanted)`.
    pub fn holds(self, ord: Ordering) -> bool {
        match self {
            RelOp::Lt => ord == Ordering::Less,
            RelOp::Le => ord != Ordering::Greater,
            RelOp::Eq => ord == Ordering::Equal,
            RelOp::Ge => ord != Ordering::Less,
            RelOp::Gt => ord == Ordering::Greater,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RelOp::Lt => "<<",
            RelOp::Le => "<=",
            RelOp::Eq => "=",
            RelOp::Ge => ">=",
            RelOp::Gt => ">>",
        }
    }
}

impl fmt::Display for RelOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `(op version)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionConstraint {
    pub op: RelOp,
    pub version: String,
}

impl VersionConstraint {
    pub fn matches(&self, candidate: &str) -> bool {
        self.op.holds(debversion::compare(candidate, &self.version))
    }
}

impl fmt::Display for VersionConstraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({} {})", self.op, self.version)
    }
}

/// One alternative of a relation group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Relation {
    pub name: String,
    /// `any`, `native` or an architecture name after `:`.
    pub arch_qualifier: Option<String>,
    pub version: Option<VersionConstraint>,
    /// `[amd64 !i386]` entries, `!` kept.
    pub arch_restrictions: Vec<String>,
    /// Each `<...>` group: terms, `!` kept. The relation applies if any group holds.
    pub profiles: Vec<Vec<String>>,
}

impl Relation {
    /// Whether a package of version `candidate` satisfies the version part.
    pub fn matches_version(&self, candidate: &str) -> bool {
        self.version.as_ref().is_none_or(|c| c.matches(candidate))
    }

    /// Evaluate `[...]` for the architecture we resolve for.
    pub fn applies_to_arch(&self, arch: &str) -> bool {
        if self.arch_restrictions.is_empty() {
            return true;
        }
        let negated = self.arch_restrictions.iter().any(|a| a.starts_with('!'));
        if negated {
            !self
                .arch_restrictions
                .iter()
                .filter_map(|a| a.strip_prefix('!'))
                .any(|a| arch_matches(a, arch))
        } else {
            self.arch_restrictions.iter().any(|a| arch_matches(a, arch))
        }
    }

    /// Evaluate `<...>` with the given build profiles active.
    pub fn applies_to_profiles(&self, active: &[&str]) -> bool {
        self.profiles.is_empty()
            || self.profiles.iter().any(|group| {
                group.iter().all(|term| match term.strip_prefix('!') {
                    Some(p) => !active.contains(&p),
                    None => active.contains(&term.as_str()),
                })
            })
    }

    /// Whether the `:qualifier` can be met by a package of the single native
    /// architecture we resolve for (or `all`).
    pub fn qualifier_fits(&self, native: &str) -> bool {
        match self.arch_qualifier.as_deref() {
            None | Some("any") | Some("native") => true,
            Some(a) => a == native,
        }
    }
}

/// `arch` against an architecture wildcard as used in restrictions
/// (`any`, `linux-any`, `any-amd64`, or a plain name).
fn arch_matches(pattern: &str, arch: &str) -> bool {
    if pattern == arch || pattern == "any" {
        return true;
    }
    // Plain Debian architecture names stand for linux-<gnu>-<cpu>.
    let (os, cpu) = match arch.split_once('-') {
        Some((os, cpu)) => (os, cpu),
        None => ("linux", arch),
    };
    match pattern.split_once('-') {
        Some(("any", c)) => c == cpu,
        Some((o, "any")) => o == os,
        _ => false,
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(q) = &self.arch_qualifier {
            write!(f, ":{q}")?;
        }
        if let Some(v) = &self.version {
            write!(f, " {v}")?;
        }
        if !self.arch_restrictions.is_empty() {
            write!(f, " [{}]", self.arch_restrictions.join(" "))?;
        }
        for g in &self.profiles {
            write!(f, " <{}>", g.join(" "))?;
        }
        Ok(())
    }
}

/// A group of alternatives (`a | b`).
pub type Alternatives = Vec<Relation>;

/// Render a group as it would appear in a control file.
pub fn display_group(group: &[Relation]) -> String {
    group
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Parse a `Depends`-style field. Empty groups (a trailing comma) are skipped.
pub fn parse_relations(field: &str) -> Result<Vec<Alternatives>, RelationError> {
    let mut out = Vec::new();
    for group in field.split(',') {
        if group.trim().is_empty() {
            continue;
        }
        let mut alts = Vec::new();
        for alt in group.split('|') {
            alts.push(parse_relation(alt)?);
        }
        out.push(alts);
    }
    Ok(out)
}

/// Parse a `Provides` field: a plain list, versioned entries use `=`.
pub fn parse_provides(field: &str) -> Result<Vec<Relation>, RelationError> {
    Ok(parse_relations(field)?.into_iter().flatten().collect())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+-._".contains(c)
}

/// Parse one alternative.
pub fn parse_relation(text: &str) -> Result<Relation, RelationError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(RelationError::EmptyAlternative { text: text.into() });
    }
    let err_text = || t.to_string();
    let name_end = t.find(|c: char| !is_name_char(c)).unwrap_or(t.len());
    let name = &t[..name_end];
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(RelationError::BadName { text: err_text() });
    }
    let mut rest = &t[name_end..];
    let mut rel = Relation {
        name: name.to_string(),
        arch_qualifier: None,
        version: None,
        arch_restrictions: Vec::new(),
        profiles: Vec::new(),
    };
    if let Some(r) = rest.strip_prefix(':') {
        let end = r.find(|c: char| !is_name_char(c)).unwrap_or(r.len());
        if end == 0 {
            return Err(RelationError::BadName { text: err_text() });
        }
        rel.arch_qualifier = Some(r[..end].to_string());
        rest = &r[end..];
    }
    rest = rest.trim_start();
    if let Some(r) = rest.strip_prefix('(') {
        let Some(close) = r.find(')') else {
            return Err(RelationError::Unclosed {
                text: err_text(),
                open: '(',
                close: ')',
            });
        };
        let inner = r[..close].trim();
        let op_end = inner
            .find(|c: char| !"<>=".contains(c))
            .unwrap_or(inner.len());
        let op_text = &inner[..op_end];
        let op = RelOp::parse(op_text).ok_or_else(|| RelationError::BadOperator {
            text: err_text(),
            op: op_text.to_string(),
        })?;
        let version = inner[op_end..].trim();
        if version.is_empty() {
            return Err(RelationError::MissingVersion { text: err_text() });
        }
        rel.version = Some(VersionConstraint {
            op,
            version: version.to_string(),
        });
        rest = r[close + 1..].trim_start();
    }
    if let Some(r) = rest.strip_prefix('[') {
        let Some(close) = r.find(']') else {
            return Err(RelationError::Unclosed {
                text: err_text(),
                open: '[',
                close: ']',
            });
        };
        rel.arch_restrictions = r[..close].split_whitespace().map(String::from).collect();
        rest = r[close + 1..].trim_start();
    }
    while let Some(r) = rest.strip_prefix('<') {
        let Some(close) = r.find('>') else {
            return Err(RelationError::Unclosed {
                text: err_text(),
                open: '<',
                close: '>',
            });
        };
        rel.profiles
            .push(r[..close].split_whitespace().map(String::from).collect());
        rest = r[close + 1..].trim_start();
    }
    if !rest.is_empty() {
        return Err(RelationError::Trailing {
            text: err_text(),
            rest: rest.to_string(),
        });
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_alternatives() {
        let r = parse_relations(
            "libc6 (>= 2.34), awk | mawk:any,\n debconf (>= 0.5) | debconf-2.0, perl:native (<< 6~),",
        )
        .unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0][0].name, "libc6");
        assert_eq!(
            r[0][0].version,
            Some(VersionConstraint {
                op: RelOp::Ge,
                version: "2.34".into()
            })
        );
        assert_eq!(r[1].len(), 2);
        assert_eq!(r[1][1].arch_qualifier.as_deref(), Some("any"));
        assert_eq!(r[2][1].name, "debconf-2.0");
        assert_eq!(r[3][0].arch_qualifier.as_deref(), Some("native"));
        assert_eq!(r[3][0].version.as_ref().unwrap().op, RelOp::Lt);
        assert_eq!(display_group(&r[2]), "debconf (>= 0.5) | debconf-2.0");
    }

    #[test]
    fn operators_including_obsolete() {
        for (text, op) in [
            ("a (<< 1)", RelOp::Lt),
            ("a (<= 1)", RelOp::Le),
            ("a (< 1)", RelOp::Le),
            ("a (= 1)", RelOp::Eq),
            ("a (>= 1)", RelOp::Ge),
            ("a (> 1)", RelOp::Ge),
            ("a (>> 1)", RelOp::Gt),
            ("a(>=1)", RelOp::Ge),
        ] {
            let r = parse_relation(text).unwrap();
            assert_eq!(r.version.unwrap().op, op, "{text}");
        }
        let r = parse_relation("a (>= 1.0)").unwrap();
        assert!(r.matches_version("1.0"));
        assert!(r.matches_version("1:0.1"));
        assert!(!r.matches_version("1.0~rc1"));
        let lt = parse_relation("a (<< 2)").unwrap();
        assert!(lt.matches_version("1.9"));
        assert!(!lt.matches_version("2"));
    }

    #[test]
    fn restrictions_and_profiles() {
        let r = parse_relation("foo [amd64 arm64] <!nocheck> <cross>").unwrap();
        assert!(r.applies_to_arch("amd64"));
        assert!(!r.applies_to_arch("i386"));
        assert!(r.applies_to_profiles(&[]));
        assert!(!r.applies_to_profiles(&["nocheck"]));
        assert!(r.applies_to_profiles(&["nocheck", "cross"]));
        let n = parse_relation("foo [!i386 !armel]").unwrap();
        assert!(n.applies_to_arch("amd64"));
        assert!(!n.applies_to_arch("i386"));
        let w = parse_relation("foo [linux-any]").unwrap();
        assert!(w.applies_to_arch("amd64"));
        assert!(!w.applies_to_arch("kfreebsd-amd64"));
        assert!(parse_relation("foo [any-amd64]")
            .unwrap()
            .applies_to_arch("amd64"));
        assert_eq!(r.to_string(), "foo [amd64 arm64] <!nocheck> <cross>");
    }

    #[test]
    fn provides_versioned_and_plain() {
        let p = parse_provides("awk, libfoo-abi-2 (= 2.1-1)").unwrap();
        assert_eq!(p.len(), 2);
        assert!(p[0].version.is_none());
        assert_eq!(p[1].version.as_ref().unwrap().version, "2.1-1");
    }

    #[test]
    fn errors_name_the_relation() {
        assert!(matches!(
            parse_relations("a, | b"),
            Err(RelationError::EmptyAlternative { .. })
        ));
        assert!(matches!(
            parse_relation("a (~= 1)"),
            Err(RelationError::BadOperator { op, .. }) if op.is_empty()
        ));
        assert!(matches!(
            parse_relation("a (=> 1)"),
            Err(RelationError::BadOperator { op, .. }) if op == "=>"
        ));
        assert!(matches!(
            parse_relation("a (>= 1"),
            Err(RelationError::Unclosed { open: '(', .. })
        ));
        assert!(matches!(
            parse_relation("a (>=)"),
            Err(RelationError::MissingVersion { .. })
        ));
        assert!(matches!(
            parse_relation("a b"),
            Err(RelationError::Trailing { rest, .. }) if rest == "b"
        ));
        let e = parse_relation("(>= 1)").unwrap_err();
        assert!(e.to_string().contains("package name"), "{e}");
        assert_eq!(parse_relations(" , ").unwrap(), Vec::<Alternatives>::new());
    }
}
