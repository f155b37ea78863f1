//! Where an image lives: `oci:DIR[:TAG]` (an OCI image layout),
//! `oci-archive:FILE[:TAG]` (a tar of one), or `[docker://]HOST[:PORT]/REPO[:TAG|@DIGEST]`
//! (a registry). Parsed from a string alone, so it is testable without I/O.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Layout { dir: PathBuf, tag: String },
    Archive { file: PathBuf, tag: String },
    Registry(RegistryRef),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRef {
    /// `host[:port]`.
    pub host: String,
    /// `library/debian`.
    pub repo: String,
    /// A tag or a `sha256:` digest.
    pub reference: String,
}

impl RegistryRef {
    pub fn is_digest(&self) -> bool {
        self.reference.starts_with("sha256:")
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Layout { dir, tag } => write!(f, "oci:{}:{tag}", dir.display()),
            Reference::Archive { file, tag } => write!(f, "oci-archive:{}:{tag}", file.display()),
            Reference::Registry(r) if r.is_digest() => {
                write!(f, "{}/{}@{}", r.host, r.repo, r.reference)
            }
            Reference::Registry(r) => write!(f, "{}/{}:{}", r.host, r.repo, r.reference),
        }
    }
}

const DEFAULT_TAG: &str = "latest";

fn tag_ok(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn repo_ok(r: &str) -> bool {
    !r.is_empty()
        && r.split('/').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        })
}

/// `PATH[:TAG]`: the tag is what follows the last `:` when it is a valid
/// tag and no `/` follows it.
fn path_and_tag(s: &str) -> (PathBuf, String) {
    match s.rsplit_once(':') {
        Some((p, t)) if !p.is_empty() && tag_ok(t) => (PathBuf::from(p), t.to_string()),
        _ => (PathBuf::from(s), DEFAULT_TAG.to_string()),
    }
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, String> {
        if let Some(rest) = s.strip_prefix("oci:") {
            if rest.is_empty() {
                return Err("`oci:` needs a directory: oci:DIR[:TAG]".into());
            }
            let (dir, tag) = path_and_tag(rest);
            return Ok(Reference::Layout { dir, tag });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            if rest.is_empty() {
                return Err("`oci-archive:` needs a file: oci-archive:FILE[:TAG]".into());
            }
            let (file, tag) = path_and_tag(rest);
            return Ok(Reference::Archive { file, tag });
        }
        let rest = s.strip_prefix("docker://").unwrap_or(s);
        let Some((host, path)) = rest.split_once('/') else {
            return Err("a registry reference is HOST[:PORT]/REPO[:TAG], e.g. registry.example:5000/templates/debian-12:latest (or use oci:DIR or oci-archive:FILE)".into());
        };
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(format!(
                "`{host}` does not look like a registry host; name the registry in full, HOST[:PORT]/REPO[:TAG] (vzpkg has no default registry)"
            ));
        }
        let (repo, reference) = if let Some((r, d)) = path.split_once('@') {
            if crate::oci::image::sha256_hex(d).is_none() {
                return Err(format!("`{d}` is not a sha256:<64 hex digits> digest"));
            }
            (r, d.to_string())
        } else {
            match path.rsplit_once(':') {
                Some((r, t)) => {
                    if !tag_ok(t) {
                        return Err(format!("`{t}` is not a valid tag (letters, digits, `_`, `.`, `-`; at most 128)"));
                    }
                    (r, t.to_string())
                }
                None => (path, DEFAULT_TAG.to_string()),
            }
        };
        if !repo_ok(repo) {
            return Err(format!(
                "`{repo}` is not a valid repository name (lower-case letters, digits, `.`, `_`, `-`, separated by `/`)"
            ));
        }
        Ok(Reference::Registry(RegistryRef {
            host: host.to_string(),
            repo: repo.to_string(),
            reference,
        }))
    }

    /// Whether `s` reads as an image reference rather than a template name.
    pub fn looks_like(s: &str) -> bool {
        s.starts_with("oci:")
            || s.starts_with("oci-archive:")
            || s.starts_with("docker://")
            || s.split_once('/')
                .is_some_and(|(h, _)| h.contains('.') || h.contains(':') || h == "localhost")
    }

    /// A name for the template when the user gives none: the repository's
    /// last component, or the layout's directory name, and the tag.
    pub fn default_name(&self) -> String {
        let (base, tag) = match self {
            Reference::Layout { dir, tag } => (
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                tag.clone(),
            ),
            Reference::Archive { file, tag } => (
                file.file_stem()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                tag.clone(),
            ),
            Reference::Registry(r) => (
                r.repo.rsplit('/').next().unwrap_or(&r.repo).to_string(),
                if r.is_digest() {
                    String::from(DEFAULT_TAG)
                } else {
                    r.reference.clone()
                },
            ),
        };
        let base: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let base = base.trim_start_matches(['.', '-']).to_string();
        let base = if base.is_empty() {
            "image".to_string()
        } else {
            base
        };
        if tag == DEFAULT_TAG {
            base
        } else {
            format!("{base}-{tag}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            Reference::parse("oci:/tmp/x:v1").unwrap(),
            Reference::Layout {
                dir: "/tmp/x".into(),
                tag: "v1".into()
            }
        );
        assert_eq!(
            Reference::parse("oci:/tmp/x").unwrap(),
            Reference::Layout {
                dir: "/tmp/x".into(),
                tag: "latest".into()
            }
        );
        assert_eq!(
            Reference::parse("oci-archive:a.tar:t").unwrap(),
            Reference::Archive {
                file: "a.tar".into(),
                tag: "t".into()
            }
        );
        let r = Reference::parse("127.0.0.1:5000/t/debian-12:nightly").unwrap();
        assert_eq!(
            r,
            Reference::Registry(RegistryRef {
                host: "127.0.0.1:5000".into(),
                repo: "t/debian-12".into(),
                reference: "nightly".into()
            })
        );
        assert_eq!(r.default_name(), "debian-12-nightly");
        let d = format!("localhost/a@sha256:{}", "a".repeat(64));
        assert!(Reference::parse(&d).is_ok());
        assert!(Reference::parse("localhost/a@sha256:zz").is_err());
        assert!(Reference::parse("debian:12").is_err());
        assert!(Reference::parse("library/debian").is_err());
        assert!(Reference::parse("localhost/UPPER").is_err());
        assert!(Reference::looks_like("localhost:5000/x"));
        assert!(!Reference::looks_like("debian-12"));
    }
}
