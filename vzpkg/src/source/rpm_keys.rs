//! The signing keys of an RPM repository (`gpgkey`): read or fetched, each
//! checked against the recipe's pinned fingerprints (`gpgkey_fingerprints`)
//! before anything is verified with it, then kept as one keyring file named
//! by its content.
//!
//! A key fetched over plain HTTP proves nothing by itself: whoever can alter
//! the packages on the way can alter the key too. The recipe refuses such a
//! key without a pin; here the pin is enforced.

use crate::http::{Http, HttpError};
use crate::openpgp::{Keyring, OpenPgpError};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RpmKeyError {
    #[error("repository {repo}: cannot fetch key {key}: {source}")]
    Fetch {
        repo: String,
        key: String,
        #[source]
        source: Box<HttpError>,
    },
    #[error("repository {repo}: cannot read key file {key}: {source}; fix gpgkey in the recipe")]
    Read {
        repo: String,
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("repository {repo}: key {key} is not usable: {source}")]
    Parse {
        repo: String,
        key: String,
        #[source]
        source: Box<OpenPgpError>,
    },
    #[error("repository {repo}: key {key} has fingerprint {actual}, but the recipe pins {pinned} (gpgkey_fingerprints): this is not the key the recipe trusts, so it was replaced on the way or the pin is wrong; compare with the fingerprint the distribution publishes and fix gpgkey or gpgkey_fingerprints")]
    PinMismatch {
        repo: String,
        key: String,
        /// The key's fingerprint, upper-case hex.
        actual: String,
        /// The pinned fingerprints, comma-separated.
        pinned: String,
    },
    #[error("cannot write keyring {path}: {source}; check that the cache directory is writable")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RpmKeyError {
    /// The key is not the one trusted (wrong fingerprint, or not a key).
    pub fn is_verification(&self) -> bool {
        matches!(
            self,
            RpmKeyError::PinMismatch { .. } | RpmKeyError::Parse { .. }
        )
    }

    pub fn is_network(&self) -> bool {
        matches!(self, RpmKeyError::Fetch { .. })
    }
}

/// What the recipe says about one repository's keys.
#[derive(Debug, Clone, Copy)]
pub struct RepoKeys<'a> {
    /// The repository's name, for messages.
    pub repo: &'a str,
    /// Paths or `file://`/`http(s)://` URLs.
    pub keys: &'a [String],
    /// Normalised fingerprints (upper-case hex); empty means no pin.
    pub pins: &'a [String],
}

/// Every key of `spec`, checked against its pins, in one keyring file under
/// `dir` named by its content; `None` when the recipe gives no key.
pub fn repo_keyring(
    http: &Http,
    spec: RepoKeys<'_>,
    dir: &Path,
) -> Result<Option<PathBuf>, RpmKeyError> {
    if spec.keys.is_empty() {
        return Ok(None);
    }
    let mut all = Vec::new();
    for key in spec.keys {
        let bytes = read_key(http, spec.repo, key)?;
        let bytes = check_pins(spec, key, &bytes)?.unwrap_or(bytes);
        all.extend_from_slice(&bytes);
        if !all.ends_with(b"\n") {
            all.push(b'\n');
        }
    }
    let path = dir.join(format!("{}.asc", hex::encode(Sha256::digest(&all))));
    if !path.is_file() {
        let io = |source| RpmKeyError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &all).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
    }
    Ok(Some(path))
}

fn read_key(http: &Http, repo: &str, key: &str) -> Result<Vec<u8>, RpmKeyError> {
    if key.starts_with("http://") || key.starts_with("https://") || key.starts_with("file://") {
        http.get(key).map_err(|source| RpmKeyError::Fetch {
            repo: repo.to_string(),
            key: key.to_string(),
            source: Box::new(source),
        })
    } else {
        std::fs::read(key).map_err(|source| RpmKeyError::Read {
            repo: repo.to_string(),
            key: key.to_string(),
            source,
        })
    }
}

/// With pins, every primary key in the file must be one of them: a file
/// that carries the pinned key plus another would otherwise smuggle the
/// other one in. Returns the keys to keep, re-armoured from what was read
/// and checked (a block the parser skipped is left out, so a verifier
/// with another parser cannot pick up an unchecked key); `None` without
/// pins.
pub fn check_pins(
    spec: RepoKeys<'_>,
    key: &str,
    bytes: &[u8],
) -> Result<Option<Vec<u8>>, RpmKeyError> {
    if spec.pins.is_empty() {
        return Ok(None);
    }
    let parse_err = |source| RpmKeyError::Parse {
        repo: spec.repo.to_string(),
        key: key.to_string(),
        source: Box::new(source),
    };
    let ring = Keyring::from_bytes(Path::new(key), bytes).map_err(parse_err)?;
    for actual in ring.fingerprints() {
        if !spec.pins.iter().any(|p| p.eq_ignore_ascii_case(&actual)) {
            return Err(RpmKeyError::PinMismatch {
                repo: spec.repo.to_string(),
                key: key.to_string(),
                actual,
                pinned: spec.pins.join(", "),
            });
        }
    }
    Ok(Some(ring.armored().map_err(parse_err)?.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vzpkg_testkit::signing::TestKey;

    #[test]
    fn pinned_keys_pass_and_others_are_named() {
        let good = TestKey::generate("Good <good@example.org>");
        let other = TestKey::generate("Other <other@example.org>");
        let fp = |k: &TestKey| {
            Keyring::from_bytes(Path::new("k"), &k.public_keyring())
                .unwrap()
                .fingerprints()
                .remove(0)
        };
        let pins = vec![fp(&good)];
        let spec = RepoKeys {
            repo: "os",
            keys: &[],
            pins: &pins,
        };
        let kept = check_pins(spec, "good.asc", good.public_keyring_armored().as_bytes())
            .unwrap()
            .unwrap();
        let ring = Keyring::from_bytes(Path::new("kept"), &kept).unwrap();
        assert_eq!(ring.fingerprints(), pins);
        check_pins(spec, "good.gpg", &good.public_keyring()).unwrap();

        let err = check_pins(
            spec,
            "http://x/key",
            other.public_keyring_armored().as_bytes(),
        )
        .unwrap_err();
        assert!(err.is_verification());
        let msg = err.to_string();
        assert!(
            msg.contains(&fp(&other)) && msg.contains(&fp(&good)) && msg.contains("http://x/key"),
            "{msg}"
        );

        // The pinned key and a second one in the same file: refused.
        let mut both = good.public_keyring_armored().into_bytes();
        both.push(b'\n');
        both.extend_from_slice(other.public_keyring_armored().as_bytes());
        assert!(check_pins(spec, "both.asc", &both).is_err());

        // Not a key at all, when a pin is asked for.
        let err = check_pins(spec, "junk", b"<html>moved</html>").unwrap_err();
        assert!(matches!(err, RpmKeyError::Parse { .. }), "{err}");

        // No pin: nothing to check here.
        let unpinned = RepoKeys { pins: &[], ..spec };
        assert!(check_pins(
            unpinned,
            "other.asc",
            other.public_keyring_armored().as_bytes()
        )
        .unwrap()
        .is_none());
    }

    #[test]
    fn a_pinned_keyring_still_verifies_package_signatures() {
        use crate::unpack::rpm::{testrpm, verify_signature};
        let key = TestKey::generate("Packager <p@example.org>");
        let work = tempfile::tempdir().unwrap();
        let armored = key
            .secret
            .to_armored_string(pgp::composed::ArmorOptions::default())
            .unwrap();
        let signer = rpm::signature::pgp::Signer::from_asc(&armored).unwrap();
        let pkg = testrpm::full("signed", "1.0")
            .build_and_sign(signer)
            .unwrap();
        let file = work.path().join("signed.rpm");
        pkg.write_file(&file).unwrap();

        let key_file = work.path().join("key.gpg");
        std::fs::write(&key_file, key.public_keyring()).unwrap();
        let keys = vec![key_file.to_string_lossy().into_owned()];
        let pins = Keyring::from_bytes(Path::new("k"), &key.public_keyring())
            .unwrap()
            .fingerprints();
        let spec = RepoKeys {
            repo: "os",
            keys: &keys,
            pins: &pins,
        };
        let ring = repo_keyring(&Http::new().unwrap(), spec, &work.path().join("keys"))
            .unwrap()
            .unwrap();
        verify_signature(&file, &ring).unwrap();
    }

    #[test]
    fn keyring_file_is_written_once_by_content() {
        let key = TestKey::generate("Good <good@example.org>");
        let work = tempfile::tempdir().unwrap();
        let file = work.path().join("key.asc");
        std::fs::write(&file, key.public_keyring_armored()).unwrap();
        let keys = vec![file.to_string_lossy().into_owned()];
        let spec = RepoKeys {
            repo: "os",
            keys: &keys,
            pins: &[],
        };
        let http = Http::new().unwrap();
        let dir = work.path().join("keys");
        let a = repo_keyring(&http, spec, &dir).unwrap().unwrap();
        let b = repo_keyring(&http, spec, &dir).unwrap().unwrap();
        assert_eq!(a, b);
        assert!(Keyring::load(&a).is_ok());
        let none = RepoKeys { keys: &[], ..spec };
        assert!(repo_keyring(&http, none, &dir).unwrap().is_none());
    }
}
