//! Debian control-file syntax (deb822): paragraphs of `Field: value` lines with
//! continuation lines. Used for Release, Packages, dpkg's status and deb822
//! `.sources` files. Pure functions over `&str`.

use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ControlError {
    #[error("line {line}: continuation line before any field")]
    OrphanContinuation { line: usize },
    #[error("line {line}: expected `Field: value`, found {text:?}")]
    BadLine { line: usize, text: String },
}

/// One paragraph: fields in file order. Field names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paragraph {
    pub fields: Vec<(String, String)>,
}

impl Paragraph {
    /// The value of `name` (case-insensitive), continuation lines joined with `\n`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Set or replace a field, keeping its position if present.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .fields
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.fields.push((name.to_string(), value)),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.fields.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    /// Render as control-file text (one paragraph, ending with a newline, no blank line).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.fields {
            out.push_str(k);
            out.push(':');
            let mut lines = v.split('\n');
            if let Some(first) = lines.next() {
                if !first.is_empty() {
                    out.push(' ');
                    out.push_str(first);
                }
            }
            out.push('\n');
            for l in lines {
                out.push(' ');
                out.push_str(if l.is_empty() { "." } else { l });
                out.push('\n');
            }
        }
        out
    }
}

/// Parse every paragraph in `text`. Comment lines (`#`) are skipped, as deb822
/// allows; a PGP-armoured wrapper must be removed by the caller.
pub fn parse_paragraphs(text: &str) -> Result<Vec<Paragraph>, ControlError> {
    let mut out = Vec::new();
    let mut cur = Paragraph::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            if !cur.fields.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            let Some(last) = cur.fields.last_mut() else {
                return Err(ControlError::OrphanContinuation { line: i + 1 });
            };
            let t = line.trim();
            last.1.push('\n');
            if t != "." {
                last.1.push_str(t);
            }
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(ControlError::BadLine {
                line: i + 1,
                text: line.to_string(),
            });
        };
        cur.fields
            .push((k.trim().to_string(), v.trim().to_string()));
    }
    if !cur.fields.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_and_continuations() {
        let t = "Package: a\nDescription: short\n long\n .\n more\n\nPackage: b\n";
        let p = parse_paragraphs(t).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].get("description"), Some("short\nlong\n\nmore"));
        assert_eq!(p[1].get("Package"), Some("b"));
        assert_eq!(
            p[0].render(),
            "Package: a\nDescription: short\n long\n .\n more\n"
        );
    }

    #[test]
    fn bad_line_is_reported() {
        assert!(matches!(
            parse_paragraphs("Package a\n"),
            Err(ControlError::BadLine { line: 1, .. })
        ));
        assert!(matches!(
            parse_paragraphs(" x\n"),
            Err(ControlError::OrphanContinuation { line: 1 })
        ));
    }
}
