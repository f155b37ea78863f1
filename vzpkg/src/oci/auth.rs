//! Registry credentials, from the files container tools share, never from
//! the command line: `$REGISTRY_AUTH_FILE`, then containers' `auth.json`
//! (`$XDG_RUNTIME_DIR/containers/`, `~/.config/containers/`), then
//! `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. The first file
//! with an entry for the registry (or for the repository under it) wins.

use super::OciError;
use base64::Engine;
use std::path::{Path, PathBuf};

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
    /// The file they came from, for error messages.
    pub from: PathBuf,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({} from {})", self.user, self.from.display())
    }
}

/// The auth files to look in, in order.
pub fn auth_files() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut out = Vec::new();
    if let Some(p) = env("REGISTRY_AUTH_FILE") {
        out.push(p);
    }
    if let Some(d) = env("XDG_RUNTIME_DIR") {
        out.push(d.join("containers/auth.json"));
    }
    let home = env("HOME");
    if let Some(h) = &home {
        out.push(h.join(".config/containers/auth.json"));
    }
    if let Some(d) = env("DOCKER_CONFIG") {
        out.push(d.join("config.json"));
    } else if let Some(h) = &home {
        out.push(h.join(".docker/config.json"));
    }
    out
}

/// `https://host:5000/v1/` → `host:5000`; `host/repo` stays.
fn normalise_key(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.strip_suffix('/').unwrap_or(k);
    k.strip_suffix("/v1")
        .or_else(|| k.strip_suffix("/v2"))
        .unwrap_or(k)
}

/// The credentials for `host`/`repo` in the auth file text `json`.
pub fn find_in(
    json: &[u8],
    host: &str,
    repo: &str,
    from: &Path,
) -> Result<Option<Credentials>, OciError> {
    let bad = |why: String| OciError::AuthFile {
        path: from.to_path_buf(),
        why,
    };
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let full = format!("{host}/{repo}");
    // The most specific key that covers host/repo.
    let best = auths
        .iter()
        .filter(|(k, _)| {
            let k = normalise_key(k);
            k == host || full == k || full.starts_with(&format!("{k}/"))
        })
        .max_by_key(|(k, _)| normalise_key(k).len());
    let Some((key, entry)) = best else {
        return Ok(None);
    };
    let (user, password) = if let Some(a) = entry.get("auth").and_then(|a| a.as_str()) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .map_err(|_| bad(format!("the `auth` of `{key}` is not base64")))?;
        let text = String::from_utf8(raw)
            .map_err(|_| bad(format!("the `auth` of `{key}` is not UTF-8")))?;
        let (u, p) = text
            .split_once(':')
            .ok_or_else(|| bad(format!("the `auth` of `{key}` is not user:password")))?;
        (u.to_string(), p.to_string())
    } else if let (Some(u), Some(p)) = (
        entry.get("username").and_then(|u| u.as_str()),
        entry.get("password").and_then(|p| p.as_str()),
    ) {
        (u.to_string(), p.to_string())
    } else {
        return Ok(None);
    };
    Ok(Some(Credentials {
        user,
        password,
        from: from.to_path_buf(),
    }))
}

/// The credentials for `host`/`repo`, if any auth file has them.
pub fn lookup(host: &str, repo: &str) -> Result<Option<Credentials>, OciError> {
    for f in auth_files() {
        let bytes = match std::fs::read(&f) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(OciError::AuthFile {
                    path: f,
                    why: e.to_string(),
                })
            }
        };
        if let Some(c) = find_in(&bytes, host, repo, &f)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_entries() {
        let json = br#"{"auths":{
            "https://reg.example:5000/v1/":{"auth":"dTpw"},
            "reg.example:5000/team":{"username":"t","password":"s3"},
            "other.example":{}}}"#;
        let f = Path::new("auth.json");
        let c = find_in(json, "reg.example:5000", "x/y", f)
            .unwrap()
            .unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("u", "p"));
        let c = find_in(json, "reg.example:5000", "team/db", f)
            .unwrap()
            .unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("t", "s3"));
        assert!(find_in(json, "other.example", "a", f).unwrap().is_none());
        assert!(find_in(json, "none.example", "a", f).unwrap().is_none());
        assert!(find_in(b"{", "a", "b", f).is_err());
        assert!(find_in(
            br#"{"auths":{"h.example":{"auth":"!!"}}}"#,
            "h.example",
            "a",
            f
        )
        .is_err());
    }
}
