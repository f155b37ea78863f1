//! The host's apt configuration (`sources.list` one-line format and deb822
//! `.sources`), used as the default Debian mirror.

use super::deb::SourceError;
use crate::control::parse_paragraphs;
use std::path::{Path, PathBuf};

/// One `deb` line or deb822 stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSource {
    pub uri: String,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    pub signed_by: Option<PathBuf>,
}

/// All `deb` (not `deb-src`) sources configured under `etc_apt`
/// (normally `/etc/apt`). Missing files are fine; an unreadable or
/// malformed one is an error naming it.
pub fn host_sources(etc_apt: &Path) -> Result<Vec<AptSource>, SourceError> {
    let mut out = Vec::new();
    let main = etc_apt.join("sources.list");
    if let Some(text) = read_optional(&main)? {
        out.extend(parse_one_line(&text));
    }
    let dir = etc_apt.join("sources.list.d");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(read_error(&dir, e)),
    };
    // apt reads the directory in name order.
    files.sort();
    for path in files {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".list") {
            if let Some(text) = read_optional(&path)? {
                out.extend(parse_one_line(&text));
            }
        } else if name.ends_with(".sources") {
            if let Some(text) = read_optional(&path)? {
                out.extend(
                    parse_deb822(&text).map_err(|reason| SourceError::AptConfig {
                        path: path.clone(),
                        reason,
                    })?,
                );
            }
        }
    }
    Ok(out)
}

fn read_error(path: &Path, e: std::io::Error) -> SourceError {
    SourceError::AptConfig {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, SourceError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_error(path, e)),
    }
}

/// Parse the one-line `sources.list` format. Lines apt itself would reject
/// are skipped: this only picks a default mirror, apt remains the judge.
pub fn parse_one_line(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb") else {
            continue;
        };
        // `deb-src` and anything else starting with "deb" is not for us.
        if !rest.starts_with([' ', '\t']) {
            continue;
        }
        let rest = rest.trim_start();
        let (options, rest) = match rest.strip_prefix('[') {
            Some(r) => match r.split_once(']') {
                Some((opts, after)) => (opts, after),
                None => continue,
            },
            None => ("", rest),
        };
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        let mut signed_by = None;
        for opt in options.split_whitespace() {
            if let Some((k, v)) = opt.split_once('=') {
                if k == "signed-by" && v.starts_with('/') {
                    signed_by = Some(PathBuf::from(v));
                }
            }
        }
        out.push(AptSource {
            uri: uri.trim_end_matches('/').to_string(),
            suites: vec![suite.to_string()],
            components: words.map(str::to_string).collect(),
            signed_by,
        });
    }
    out
}

/// Parse deb822 `.sources` text: one source per stanza whose Types include
/// `deb` and that is not `Enabled: no`. A `Signed-By` holding an inline key
/// (not a path) leaves `signed_by` empty.
pub fn parse_deb822(text: &str) -> Result<Vec<AptSource>, String> {
    let paras = parse_paragraphs(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for p in paras {
        let words = |name: &str| -> Vec<String> {
            p.get(name)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        if !words("Types").iter().any(|t| t == "deb") {
            continue;
        }
        if p.get("Enabled")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("no"))
        {
            continue;
        }
        let suites = words("Suites");
        if suites.is_empty() {
            return Err("a stanza with Types: deb has no Suites field".into());
        }
        let signed_by = p
            .get("Signed-By")
            .map(str::trim)
            .filter(|v| v.starts_with('/') && !v.contains('\n'))
            .map(|v| PathBuf::from(v.split_whitespace().next().unwrap_or(v)));
        let uris = words("URIs");
        if uris.is_empty() {
            return Err("a stanza with Types: deb has no URIs field".into());
        }
        for uri in uris {
            out.push(AptSource {
                uri: uri.trim_end_matches('/').to_string(),
                suites: suites.clone(),
                components: words("Components"),
                signed_by: signed_by.clone(),
            });
        }
    }
    Ok(out)
}

/// A suite that only carries updates on top of a release.
fn is_overlay_suite(s: &str) -> bool {
    ["-security", "-updates", "-backports", "-proposed-updates"]
        .iter()
        .any(|suf| s.ends_with(suf))
}

fn is_security_uri(uri: &str) -> bool {
    let u = uri.to_ascii_lowercase();
    u.contains("security") || u.ends_with("-security")
}

/// The mirror base URL to use for `suite`: a source that lists the suite, else
/// the first plain archive source (not `-security`/`-updates`/backports).
pub fn pick_mirror(sources: &[AptSource], suite: &str) -> Option<String> {
    // cdrom: and other apt-only methods cannot be fetched by us.
    let usable = |s: &&AptSource| {
        ["http://", "https://", "file://"]
            .iter()
            .any(|p| s.uri.starts_with(p))
    };
    if let Some(s) = sources
        .iter()
        .filter(usable)
        .find(|s| s.suites.iter().any(|x| x == suite))
    {
        return Some(s.uri.clone());
    }
    sources
        .iter()
        .filter(usable)
        .filter(|s| !is_security_uri(&s.uri))
        .find(|s| s.suites.iter().any(|x| !is_overlay_suite(x)))
        .map(|s| s.uri.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_format() {
        let text = "\
# a comment
deb http://mirror.example/debian/ bookworm main contrib # trailing
deb-src http://mirror.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] https://repo.example/apt stable main
debx http://nope bookworm main
deb http://incomplete
  deb\thttp://mirror.example/debian-security bookworm-security main
";
        let s = parse_one_line(text);
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(
            s[0],
            AptSource {
                uri: "http://mirror.example/debian".into(),
                suites: vec!["bookworm".into()],
                components: vec!["main".into(), "contrib".into()],
                signed_by: None,
            }
        );
        assert_eq!(s[1].uri, "https://repo.example/apt");
        assert_eq!(
            s[1].signed_by,
            Some(PathBuf::from("/usr/share/keyrings/x.gpg"))
        );
        assert_eq!(s[2].suites, ["bookworm-security"]);
    }

    #[test]
    fn deb822_format() {
        let text = "\
Types: deb deb-src
# a comment inside
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://mirror.example/debian
Suites: trixie
Components: main

Types: deb
URIs: http://disabled.example/debian
Suites: sid
Components: main
Enabled: no

Types: deb
URIs: http://inline.example/debian
Suites: trixie
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mDMEZ
 -----END PGP PUBLIC KEY BLOCK-----
";
        let s = parse_deb822(text).unwrap();
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(s[0].components, ["main", "non-free-firmware"]);
        assert_eq!(
            s[0].signed_by.as_deref(),
            Some(Path::new("/usr/share/keyrings/debian-archive-keyring.gpg"))
        );
        assert_eq!(s[1].uri, "http://inline.example/debian");
        assert_eq!(s[1].signed_by, None);
        assert!(parse_deb822("Types: deb\nURIs: http://x\n").is_err());
    }

    fn src(uri: &str, suites: &[&str]) -> AptSource {
        AptSource {
            uri: uri.into(),
            suites: suites.iter().map(|s| s.to_string()).collect(),
            components: vec!["main".into()],
            signed_by: None,
        }
    }

    #[test]
    fn picks_the_suite_then_a_plain_archive() {
        let sources = vec![
            src("http://sec.example/debian-security", &["bookworm-security"]),
            src(
                "http://up.example/debian",
                &["bookworm-updates", "bookworm-backports"],
            ),
            src("http://main.example/debian", &["bookworm"]),
            src("http://old.example/debian", &["bullseye"]),
        ];
        assert_eq!(
            pick_mirror(&sources, "bullseye").as_deref(),
            Some("http://old.example/debian")
        );
        assert_eq!(
            pick_mirror(&sources, "trixie").as_deref(),
            Some("http://main.example/debian")
        );
        assert_eq!(pick_mirror(&sources[..2], "trixie"), None);
        assert_eq!(
            pick_mirror(&sources, "bookworm-security").as_deref(),
            Some("http://sec.example/debian-security")
        );
        let cdrom = [
            src("cdrom:[Debian 12]/", &["bookworm"]),
            src("http://m.example/d", &["bookworm"]),
        ];
        assert_eq!(
            pick_mirror(&cdrom, "bookworm").as_deref(),
            Some("http://m.example/d")
        );
        assert_eq!(pick_mirror(&[], "bookworm"), None);
    }

    #[test]
    fn host_configuration() {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path();
        std::fs::create_dir(etc.join("sources.list.d")).unwrap();
        std::fs::write(
            etc.join("sources.list"),
            "deb http://a.example/debian bookworm main\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("sources.list.d/b.sources"),
            "Types: deb\nURIs: http://b.example/debian\nSuites: trixie\nComponents: main\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("sources.list.d/c.list.disabled"),
            "deb http://c.example/ x main\n",
        )
        .unwrap();
        let s = host_sources(etc).unwrap();
        let uris: Vec<&str> = s.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, ["http://a.example/debian", "http://b.example/debian"]);
        assert_eq!(
            pick_mirror(&s, "trixie").as_deref(),
            Some("http://b.example/debian")
        );

        std::fs::write(
            etc.join("sources.list.d/bad.sources"),
            "Types: deb\nSuites x\n",
        )
        .unwrap();
        let err = host_sources(etc).unwrap_err();
        assert!(err.to_string().contains("bad.sources"), "{err}");

        // An empty /etc/apt is no error, just no sources.
        let empty = tempfile::tempdir().unwrap();
        assert!(host_sources(empty.path()).unwrap().is_empty());
    }

    /// This machine's real apt configuration.
    #[test]
    fn real_etc_apt() {
        let etc = Path::new("/etc/apt");
        if !etc.exists() {
            return;
        }
        let s = host_sources(etc).unwrap();
        eprintln!("{s:?}");
        for src in &s {
            assert!(!src.uri.is_empty() && !src.suites.is_empty());
        }
        if let Some(debian) = s.iter().find(|s| s.suites.iter().any(|x| x == "bookworm")) {
            assert_eq!(
                pick_mirror(&s, "bookworm").as_deref(),
                Some(debian.uri.as_str())
            );
            let m = pick_mirror(&s, "trixie").unwrap();
            assert!(!m.contains("security"), "{m}");
        }
    }
}
