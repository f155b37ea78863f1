//! OpenPGP verification of repository indexes (InRelease, Release.gpg,
//! repomd.xml.asc) against a keyring file. Checks key expiry, revocation and
//! signing-capable (sub)keys itself, since `pgp` leaves that to the caller.

use pgp::composed::{
    CleartextSignedMessage, Deserializable, DetachedSignature, SignedPublicKey, SignedPublicSubKey,
};
use pgp::packet::{Signature, SignatureType, SubpacketData};
use pgp::types::{KeyDetails, Tag};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// The advice every "we cannot trust this" error ends with.
const KEYRING_FIX: &str = "install debian-archive-keyring or set source.keyring in the recipe";

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OpenPgpError {
    #[error("cannot read keyring {path}: {source}; {KEYRING_FIX}")]
    ReadKeyring {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("keyring {path} holds no usable OpenPGP public key ({reason}); point source.keyring at a binary .gpg or armoured .asc keyring")]
    BadKeyring { path: PathBuf, reason: String },
    #[error("{what} is not a valid OpenPGP signed message ({reason}); the mirror served a broken file: try again or use another mirror")]
    Malformed { what: &'static str, reason: String },
    #[error("signed by key(s) {issuers}, none of which is in keyring {path}; {KEYRING_FIX}")]
    UnknownSigner { path: PathBuf, issuers: String },
    #[error("the signature by key {key_id} (from keyring {path}) does not match the data: the file was altered or damaged in transit; try again or use another mirror")]
    BadSignature { path: PathBuf, key_id: String },
    #[error("key {key_id} in keyring {path} expired on {expired}; install a newer debian-archive-keyring or set source.keyring in the recipe")]
    KeyExpired {
        path: PathBuf,
        key_id: String,
        expired: String,
    },
    #[error("key {key_id} in keyring {path} is revoked; {KEYRING_FIX}")]
    KeyRevoked { path: PathBuf, key_id: String },
    #[error("key {key_id} in keyring {path} is not a valid signing key ({reason}); {KEYRING_FIX}")]
    NotSigningKey {
        path: PathBuf,
        key_id: String,
        reason: String,
    },
    #[error("the signature by key {key_id} (keyring {path}) was made on {created}, in the future: check the system clock")]
    SignatureInFuture {
        path: PathBuf,
        key_id: String,
        created: String,
    },
    #[error("the signature by key {key_id} (keyring {path}) expired on {expired}: the mirror is stale, use another mirror")]
    SignatureExpired {
        path: PathBuf,
        key_id: String,
        expired: String,
    },
}

/// Public keys read from a keyring (binary `.gpg` or ASCII-armoured `.asc`).
pub struct Keyring {
    path: PathBuf,
    keys: Vec<SignedPublicKey>,
}

/// The key that made a signature: the primary key itself or one of its subkeys.
#[derive(Clone, Copy)]
enum Signer<'a> {
    Primary(&'a SignedPublicKey),
    Sub(&'a SignedPublicKey, &'a SignedPublicSubKey),
}

impl Signer<'_> {
    fn key_id(&self) -> String {
        match self {
            Signer::Primary(k) => key_id_hex(&k.primary_key),
            Signer::Sub(_, s) => key_id_hex(&s.key),
        }
    }

    fn verify(&self, sig: &Signature, data: &[u8]) -> bool {
        match self {
            Signer::Primary(k) => sig.verify(&k.primary_key, data).is_ok(),
            Signer::Sub(_, s) => sig.verify(&s.key, data).is_ok(),
        }
    }
}

impl Keyring {
    pub fn load(path: &Path) -> Result<Keyring, OpenPgpError> {
        let bytes = std::fs::read(path).map_err(|source| OpenPgpError::ReadKeyring {
            path: path.to_path_buf(),
            source,
        })?;
        Keyring::from_bytes(path, &bytes)
    }

    /// Parse keyring bytes; `path` only names the keyring in messages.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Keyring, OpenPgpError> {
        let bad = |reason: String| OpenPgpError::BadKeyring {
            path: path.to_path_buf(),
            reason,
        };
        let mut keys = Vec::new();
        let mut last_err = None;
        if is_armored(bytes) {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| bad("armoured keyring is not UTF-8 text".into()))?;
            // An .asc file may hold several armour blocks one after another.
            for block in split_armor_blocks(text) {
                match SignedPublicKey::from_armor_many(block.as_bytes()) {
                    Ok((iter, _)) => collect_keys(iter, &mut keys, &mut last_err),
                    Err(e) => last_err = Some(e.to_string()),
                }
            }
        } else {
            match SignedPublicKey::from_bytes_many(Cursor::new(bytes)) {
                Ok(iter) => collect_keys(iter, &mut keys, &mut last_err),
                Err(e) => last_err = Some(e.to_string()),
            }
        }
        if keys.is_empty() {
            return Err(bad(
                last_err.unwrap_or_else(|| "the file contains no public key".into())
            ));
        }
        Ok(Keyring {
            path: path.to_path_buf(),
            keys,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of primary keys in the ring.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every key read, ASCII-armoured: only what this parser understood,
    /// so nothing it skipped can be used by a verifier reading the result.
    pub fn armored(&self) -> Result<String, OpenPgpError> {
        let mut out = String::new();
        for k in &self.keys {
            let text = k
                .to_armored_string(pgp::composed::ArmorOptions::default())
                .map_err(|e| OpenPgpError::BadKeyring {
                    path: self.path.clone(),
                    reason: e.to_string(),
                })?;
            out.push_str(&text);
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        Ok(out)
    }

    /// Upper-case hex fingerprints of the primary keys.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| hex::encode_upper(k.primary_key.fingerprint().as_bytes()))
            .collect()
    }

    /// Verify a cleartext-signed message (InRelease) and return the signed text.
    pub fn verify_cleartext(&self, text: &str, now: SystemTime) -> Result<String, OpenPgpError> {
        let (msg, _) =
            CleartextSignedMessage::from_string(text).map_err(|e| OpenPgpError::Malformed {
                what: "cleartext-signed message",
                reason: e.to_string(),
            })?;
        let signed = msg.signed_text();
        self.verify_any(msg.signatures(), signed.as_bytes(), now)?;
        // `signed_text` is the hashed form (CRLF line ends); hand back LF text.
        let mut out = signed.replace("\r\n", "\n");
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        Ok(out)
    }

    /// Verify a detached signature (armoured or binary) over `data`.
    pub fn verify_detached(
        &self,
        data: &[u8],
        signature: &[u8],
        now: SystemTime,
    ) -> Result<(), OpenPgpError> {
        let malformed = |reason: String| OpenPgpError::Malformed {
            what: "detached signature",
            reason,
        };
        let parsed: Vec<_> = if is_armored(signature) {
            DetachedSignature::from_armor_many(signature)
                .map_err(|e| malformed(e.to_string()))?
                .0
                .collect()
        } else {
            DetachedSignature::from_bytes_many(Cursor::new(signature))
                .map_err(|e| malformed(e.to_string()))?
                .collect()
        };
        let mut sigs = Vec::new();
        for s in parsed {
            sigs.push(s.map_err(|e| malformed(e.to_string()))?.signature);
        }
        self.verify_any(&sigs, data, now)
    }

    /// Accept when at least one signature verifies with a usable key of the ring.
    /// On failure report the most telling reason: a problem with a key we hold
    /// beats "signed by a key we do not know".
    fn verify_any(
        &self,
        sigs: &[Signature],
        data: &[u8],
        now: SystemTime,
    ) -> Result<(), OpenPgpError> {
        if sigs.is_empty() {
            return Err(OpenPgpError::Malformed {
                what: "signed message",
                reason: "it carries no signature".into(),
            });
        }
        let mut unknown = Vec::new();
        let mut best: Option<OpenPgpError> = None;
        for sig in sigs {
            match self.verify_one(sig, data, now) {
                Ok(()) => return Ok(()),
                Err(OpenPgpError::UnknownSigner { issuers, .. }) => unknown.push(issuers),
                Err(e) => {
                    if best.is_none() {
                        best = Some(e);
                    }
                }
            }
        }
        Err(best.unwrap_or_else(|| OpenPgpError::UnknownSigner {
            path: self.path.clone(),
            issuers: unknown.join(", "),
        }))
    }

    fn verify_one(
        &self,
        sig: &Signature,
        data: &[u8],
        now: SystemTime,
    ) -> Result<(), OpenPgpError> {
        if !matches!(
            sig.typ(),
            Some(SignatureType::Binary) | Some(SignatureType::Text)
        ) {
            return Err(OpenPgpError::Malformed {
                what: "data signature",
                reason: format!("unexpected signature type {:?}", sig.typ()),
            });
        }
        let candidates = self.candidates(sig);
        if candidates.is_empty() {
            return Err(OpenPgpError::UnknownSigner {
                path: self.path.clone(),
                issuers: issuer_names(sig),
            });
        }
        let Some(signer) = candidates.into_iter().find(|c| c.verify(sig, data)) else {
            return Err(OpenPgpError::BadSignature {
                path: self.path.clone(),
                key_id: issuer_names(sig),
            });
        };
        let key_id = signer.key_id();
        let created = sig.created().map(|t| secs_to_time(u64::from(t.as_secs())));
        let Some(created) = created else {
            return Err(OpenPgpError::Malformed {
                what: "data signature",
                reason: format!("the signature by key {key_id} has no creation time"),
            });
        };
        if created > now {
            return Err(OpenPgpError::SignatureInFuture {
                path: self.path.clone(),
                key_id,
                created: fmt_time(created),
            });
        }
        if let Some(exp) = nonzero(sig.signature_expiration_time()) {
            let expired = created + exp;
            if now >= expired {
                return Err(OpenPgpError::SignatureExpired {
                    path: self.path.clone(),
                    key_id,
                    expired: fmt_time(expired),
                });
            }
        }
        self.check_signer(signer, now)
    }

    /// Keys and subkeys named by the signature's issuer subpackets; every key
    /// when the signature names none (then the cryptography decides).
    fn candidates(&self, sig: &Signature) -> Vec<Signer<'_>> {
        let fps = sig.issuer_fingerprint();
        let ids = sig.issuer_key_id();
        let matches = |k: &dyn KeyDetailsDyn| {
            (fps.is_empty() && ids.is_empty())
                || fps.iter().any(|f| **f == k.fp())
                || ids.iter().any(|i| **i == k.kid())
        };
        let mut out = Vec::new();
        for key in &self.keys {
            if matches(&key.primary_key) {
                out.push(Signer::Primary(key));
            }
            for sub in &key.public_subkeys {
                if matches(&sub.key) {
                    out.push(Signer::Sub(key, sub));
                }
            }
        }
        out
    }

    /// The key that made a good signature must still be valid at `now`.
    fn check_signer(&self, signer: Signer<'_>, now: SystemTime) -> Result<(), OpenPgpError> {
        let (key, sub) = match signer {
            Signer::Primary(k) => (k, None),
            Signer::Sub(k, s) => (k, Some(s)),
        };
        let primary = &key.primary_key;
        let primary_id = key_id_hex(primary);
        let path = || self.path.clone();

        if key
            .details
            .revocation_signatures
            .iter()
            .any(|r| r.verify_key(primary).is_ok())
        {
            return Err(OpenPgpError::KeyRevoked {
                path: path(),
                key_id: primary_id,
            });
        }
        let Some(selfsig) = latest_self_signature(key, now) else {
            return Err(OpenPgpError::NotSigningKey {
                path: path(),
                key_id: primary_id,
                reason: "it carries no valid self-signature".into(),
            });
        };
        check_expiry(
            &self.path,
            &primary_id,
            primary.created_at().as_secs(),
            selfsig,
            now,
        )?;

        let Some(sub) = sub else {
            // Keys without a flags subpacket predate flags and may sign.
            if has_key_flags(selfsig) && !selfsig.key_flags().sign() {
                return Err(OpenPgpError::NotSigningKey {
                    path: path(),
                    key_id: primary_id,
                    reason: "the primary key is not flagged for signing".into(),
                });
            }
            return Ok(());
        };

        let sub_id = key_id_hex(&sub.key);
        if sub.signatures.iter().any(|s| {
            s.typ() == Some(SignatureType::SubkeyRevocation)
                && s.verify_subkey_binding(primary, &sub.key).is_ok()
        }) {
            return Err(OpenPgpError::KeyRevoked {
                path: path(),
                key_id: sub_id,
            });
        }
        let binding = sub
            .signatures
            .iter()
            .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding))
            .filter(|s| created_secs(s).is_some_and(|c| secs_to_time(c) <= now))
            .filter(|s| s.verify_subkey_binding(primary, &sub.key).is_ok())
            .max_by_key(|s| created_secs(s));
        let Some(binding) = binding else {
            return Err(OpenPgpError::NotSigningKey {
                path: path(),
                key_id: sub_id,
                reason: "the subkey has no valid binding signature".into(),
            });
        };
        if !binding.key_flags().sign() {
            return Err(OpenPgpError::NotSigningKey {
                path: path(),
                key_id: sub_id,
                reason: "the subkey is not flagged for signing".into(),
            });
        }
        // A signing subkey must sign the primary back, or anyone could claim it.
        let backsig_ok = binding
            .embedded_signature()
            .is_some_and(|b| b.verify_primary_key_binding(&sub.key, primary).is_ok());
        if !backsig_ok {
            return Err(OpenPgpError::NotSigningKey {
                path: path(),
                key_id: sub_id,
                reason: "the subkey lacks a valid primary-key binding (back-signature)".into(),
            });
        }
        check_expiry(
            &self.path,
            &sub_id,
            sub.key.created_at().as_secs(),
            binding,
            now,
        )
    }
}

/// Fingerprint and key id of a key packet, behind one object-safe face.
trait KeyDetailsDyn {
    fn fp(&self) -> pgp::types::Fingerprint;
    fn kid(&self) -> pgp::types::KeyId;
}

impl<T: KeyDetails> KeyDetailsDyn for T {
    fn fp(&self) -> pgp::types::Fingerprint {
        self.fingerprint()
    }
    fn kid(&self) -> pgp::types::KeyId {
        self.legacy_key_id()
    }
}

fn collect_keys(
    iter: impl Iterator<Item = pgp::errors::Result<SignedPublicKey>>,
    keys: &mut Vec<SignedPublicKey>,
    last_err: &mut Option<String>,
) {
    for k in iter {
        match k {
            Ok(k) => keys.push(k),
            // One unreadable key (an unsupported algorithm) must not hide the rest.
            Err(e) => *last_err = Some(e.to_string()),
        }
    }
}

fn is_armored(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    bytes[start..].starts_with(b"-----BEGIN PGP")
}

fn split_armor_blocks(text: &str) -> Vec<&str> {
    let marker = "-----BEGIN PGP";
    let starts: Vec<usize> = text.match_indices(marker).map(|(i, _)| i).collect();
    starts
        .iter()
        .enumerate()
        .map(|(n, &s)| {
            let end = starts.get(n + 1).copied().unwrap_or(text.len());
            &text[s..end]
        })
        .collect()
}

/// The newest valid self-certification or direct-key signature at `now`: it
/// carries the primary key's current expiry and flags.
fn latest_self_signature(key: &SignedPublicKey, now: SystemTime) -> Option<&Signature> {
    let primary = &key.primary_key;
    let not_future = |s: &&Signature| created_secs(s).is_some_and(|c| secs_to_time(c) <= now);
    let certs = key.details.users.iter().flat_map(|u| {
        u.signatures
            .iter()
            .filter(|s| s.is_certification())
            .filter(not_future)
            .filter(move |s| s.verify_certification(primary, Tag::UserId, &u.id).is_ok())
    });
    let direct = key
        .details
        .direct_signatures
        .iter()
        .filter(|s| s.typ() == Some(SignatureType::Key))
        .filter(not_future)
        .filter(|s| s.verify_key(primary).is_ok());
    certs.chain(direct).max_by_key(|s| created_secs(s))
}

fn check_expiry(
    path: &Path,
    key_id: &str,
    key_created: u32,
    sig: &Signature,
    now: SystemTime,
) -> Result<(), OpenPgpError> {
    if let Some(exp) = nonzero(sig.key_expiration_time()) {
        let expired = secs_to_time(u64::from(key_created)) + exp;
        if now >= expired {
            return Err(OpenPgpError::KeyExpired {
                path: path.to_path_buf(),
                key_id: key_id.to_string(),
                expired: fmt_time(expired),
            });
        }
    }
    Ok(())
}

fn has_key_flags(sig: &Signature) -> bool {
    sig.config().is_some_and(|c| {
        c.hashed_subpackets()
            .any(|p| matches!(p.data, SubpacketData::KeyFlags(_)))
    })
}

fn nonzero(d: Option<pgp::types::Duration>) -> Option<Duration> {
    d.map(Duration::from).filter(|d| !d.is_zero())
}

fn created_secs(sig: &Signature) -> Option<u64> {
    sig.created().map(|t| u64::from(t.as_secs()))
}

fn secs_to_time(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn key_id_hex<K: KeyDetails>(k: &K) -> String {
    hex::encode_upper(k.legacy_key_id().as_ref())
}

fn issuer_names(sig: &Signature) -> String {
    let mut names: Vec<String> = sig
        .issuer_fingerprint()
        .iter()
        .map(|f| hex::encode_upper(f.as_bytes()))
        .collect();
    if names.is_empty() {
        names = sig
            .issuer_key_id()
            .iter()
            .map(|k| hex::encode_upper(k.as_ref()))
            .collect();
    }
    if names.is_empty() {
        "(unnamed issuer)".into()
    } else {
        names.join("/")
    }
}

/// `2024-06-01 12:00:00 UTC`, for messages.
pub(crate) fn fmt_time(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(dt) => dt.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => format!("{secs} seconds after 1970"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vzpkg_testkit::signing::TestKey;

    const RELEASE: &str = "Origin: Test\nSuite: stable\nCodename: test\n";

    fn ring(keys: &[&TestKey]) -> (tempfile::TempDir, Keyring) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring.gpg");
        let mut bytes = Vec::new();
        for k in keys {
            bytes.extend(k.public_keyring());
        }
        std::fs::write(&path, bytes).unwrap();
        let ring = Keyring::load(&path).unwrap();
        (dir, ring)
    }

    #[test]
    fn good_cleartext_signature_returns_text() {
        let k = TestKey::generate("Test <t@example.org>");
        let other = TestKey::generate("Other <o@example.org>");
        let (_d, ring) = ring(&[&other, &k]);
        assert_eq!(ring.len(), 2);
        let signed = k.clearsign(RELEASE);
        let text = ring.verify_cleartext(&signed, SystemTime::now()).unwrap();
        assert_eq!(text, RELEASE);
    }

    #[test]
    fn armored_keyring_loads() {
        let a = TestKey::generate("A <a@example.org>");
        let b = TestKey::generate("B <b@example.org>");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring.asc");
        std::fs::write(
            &path,
            format!(
                "{}\n{}",
                a.public_keyring_armored(),
                b.public_keyring_armored()
            ),
        )
        .unwrap();
        let ring = Keyring::load(&path).unwrap();
        assert_eq!(ring.len(), 2);
        ring.verify_cleartext(&b.clearsign(RELEASE), SystemTime::now())
            .unwrap();
    }

    #[test]
    fn wrong_key_is_unknown_signer() {
        let k = TestKey::generate("Test <t@example.org>");
        let other = TestKey::generate("Other <o@example.org>");
        let (_d, ring) = ring(&[&other]);
        let err = ring
            .verify_cleartext(&k.clearsign(RELEASE), SystemTime::now())
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, OpenPgpError::UnknownSigner { .. }), "{msg}");
        assert!(
            msg.contains("ring.gpg") && msg.contains("debian-archive-keyring"),
            "{msg}"
        );
        let fp = hex::encode_upper(k.secret.primary_key.fingerprint().as_bytes());
        assert!(msg.contains(&fp), "{msg}");
    }

    #[test]
    fn tampered_text_is_rejected() {
        let k = TestKey::generate("Test <t@example.org>");
        let (_d, ring) = ring(&[&k]);
        let signed = k
            .clearsign(RELEASE)
            .replace("Codename: test", "Codename: evil");
        let err = ring
            .verify_cleartext(&signed, SystemTime::now())
            .unwrap_err();
        assert!(matches!(err, OpenPgpError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn several_signatures_one_known_is_accepted() {
        let known = TestKey::generate("Known <k@example.org>");
        let stranger = TestKey::generate("Stranger <s@example.org>");
        let (_d, ring) = ring(&[&known]);
        // Build a message carrying both signatures, stranger's first, as Debian does.
        let a = CleartextSignedMessage::from_string(&stranger.clearsign(RELEASE))
            .unwrap()
            .0;
        let b = CleartextSignedMessage::from_string(&known.clearsign(RELEASE))
            .unwrap()
            .0;
        let both = CleartextSignedMessage::new_many(RELEASE, |_| {
            Ok(vec![a.signatures()[0].clone(), b.signatures()[0].clone()])
        })
        .unwrap()
        .to_armored_string(Default::default())
        .unwrap();
        let text = ring.verify_cleartext(&both, SystemTime::now()).unwrap();
        assert_eq!(text, RELEASE);
    }

    #[test]
    fn expired_key_is_rejected() {
        let k = TestKey::expired("Old <old@example.org>");
        let (_d, ring) = ring(&[&k]);
        // Signed while the key was still valid, checked now.
        let signed = k.clearsign_at(
            RELEASE,
            SystemTime::now() - Duration::from_secs(2 * 86400 - 60),
        );
        let err = ring
            .verify_cleartext(&signed, SystemTime::now())
            .unwrap_err();
        assert!(matches!(err, OpenPgpError::KeyExpired { .. }), "{err}");
        assert!(err.to_string().contains("expired on"), "{err}");
        // The same signature was fine back then.
        let then = SystemTime::now() - Duration::from_secs(2 * 86400 - 120);
        let signed_then = k.clearsign_at(RELEASE, then - Duration::from_secs(10));
        ring.verify_cleartext(&signed_then, then).unwrap();
    }

    #[test]
    fn revoked_key_is_rejected() {
        let mut k = TestKey::generate("Revoked <r@example.org>");
        k.revoke();
        let (_d, ring) = ring(&[&k]);
        let err = ring
            .verify_cleartext(&k.clearsign(RELEASE), SystemTime::now())
            .unwrap_err();
        assert!(matches!(err, OpenPgpError::KeyRevoked { .. }), "{err}");
    }

    #[test]
    fn key_without_signing_flag_is_rejected() {
        let mut k = TestKey::generate("Certify <c@example.org>");
        k.resign(SystemTime::now() - Duration::from_secs(600), None, false);
        let (_d, ring) = ring(&[&k]);
        let err = ring
            .verify_cleartext(&k.clearsign(RELEASE), SystemTime::now())
            .unwrap_err();
        assert!(matches!(err, OpenPgpError::NotSigningKey { .. }), "{err}");
    }

    #[test]
    fn signature_from_the_future_is_rejected() {
        let k = TestKey::generate("Test <t@example.org>");
        let (_d, ring) = ring(&[&k]);
        let signed = k.clearsign_at(RELEASE, SystemTime::now() + Duration::from_secs(3600));
        let err = ring
            .verify_cleartext(&signed, SystemTime::now())
            .unwrap_err();
        assert!(
            matches!(err, OpenPgpError::SignatureInFuture { .. }),
            "{err}"
        );
    }

    #[test]
    fn detached_armored_and_binary() {
        let k = TestKey::generate("Test <t@example.org>");
        let (_d, ring) = ring(&[&k]);
        let data = b"Suite: stable\n";
        let armored = k.sign_detached(data);
        ring.verify_detached(data, &armored, SystemTime::now())
            .unwrap();
        let (sig, _) = DetachedSignature::from_armor_single(&armored[..]).unwrap();
        let binary = pgp::ser::Serialize::to_bytes(&sig).unwrap();
        ring.verify_detached(data, &binary, SystemTime::now())
            .unwrap();
        let err = ring
            .verify_detached(b"Suite: other\n", &binary, SystemTime::now())
            .unwrap_err();
        assert!(matches!(err, OpenPgpError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn garbage_keyring_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.gpg");
        std::fs::write(&path, b"not a keyring at all").unwrap();
        let err = Keyring::load(&path).err().unwrap();
        assert!(matches!(err, OpenPgpError::BadKeyring { .. }), "{err}");
        assert!(err.to_string().contains("junk.gpg"));
        let missing = Keyring::load(&dir.path().join("none.gpg")).err().unwrap();
        assert!(matches!(missing, OpenPgpError::ReadKeyring { .. }));
    }

    #[test]
    fn host_debian_keyring_loads() {
        let path = Path::new("/usr/share/keyrings/debian-archive-keyring.gpg");
        if !path.exists() {
            eprintln!("skipped: {} is not installed", path.display());
            return;
        }
        let ring = Keyring::load(path).unwrap();
        assert!(ring.len() >= 3, "only {} keys", ring.len());
        assert!(ring.fingerprints().iter().all(|f| f.len() == 40));
    }

    /// Real InRelease files apt left on this host, checked against the real
    /// Debian keyring: several signatures, some by keys we may not hold.
    #[test]
    fn host_apt_inrelease_verifies() {
        let ring_path = Path::new("/usr/share/keyrings/debian-archive-keyring.gpg");
        let Ok(entries) = std::fs::read_dir("/var/lib/apt/lists") else {
            eprintln!("skipped: no apt lists");
            return;
        };
        if !ring_path.exists() {
            eprintln!("skipped: no debian-archive-keyring");
            return;
        }
        let ring = Keyring::load(ring_path).unwrap();
        let mut checked = 0;
        for e in entries {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with("_InRelease") || !name.contains("debian") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let signed = ring.verify_cleartext(&text, SystemTime::now()).unwrap();
            assert!(signed.starts_with("Origin:"), "{name}");
            assert!(!signed.contains("BEGIN PGP"), "{name}");
            let tampered = text.replacen("Codename:", "Codename: x", 1);
            assert!(ring.verify_cleartext(&tampered, SystemTime::now()).is_err());
            checked += 1;
        }
        eprintln!("verified {checked} InRelease files");
    }
}
