//! Real OpenPGP keys and signatures made by the tests (the shared test kit's),
//! checked here against vzpkg's own verifier.

pub use vzpkg_testkit::signing::*;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};
    use vzpkg::openpgp::{Keyring, OpenPgpError};

    const TEXT: &str = "Suite: stable\nCodename: test\n";

    fn ring(bytes: &[u8], name: &str) -> (tempfile::TempDir, Keyring) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let ring = Keyring::load(&path).unwrap();
        (dir, ring)
    }

    #[test]
    fn signatures_verify_with_the_library() {
        let k = TestKey::generate("Fixture <f@test.invalid>");
        let (_d, bin) = ring(&k.public_keyring(), "k.gpg");
        let (_e, asc) = ring(k.public_keyring_armored().as_bytes(), "k.asc");
        let now = SystemTime::now();
        assert_eq!(bin.verify_cleartext(&k.clearsign(TEXT), now).unwrap(), TEXT);
        assert_eq!(asc.verify_cleartext(&k.clearsign(TEXT), now).unwrap(), TEXT);
        bin.verify_detached(TEXT.as_bytes(), &k.sign_detached(TEXT.as_bytes()), now)
            .unwrap();
        bin.verify_detached(
            TEXT.as_bytes(),
            &k.sign_detached_binary(TEXT.as_bytes()),
            now,
        )
        .unwrap();
    }

    #[test]
    fn several_signers_and_a_partial_keyring() {
        let a = TestKey::generate("A <a@test.invalid>");
        let b = TestKey::generate("B <b@test.invalid>");
        let signed = TestKey::clearsign_many(&[&a, &b], TEXT);
        let (_d, only_b) = ring(&b.public_keyring(), "b.gpg");
        assert_eq!(
            only_b.verify_cleartext(&signed, SystemTime::now()).unwrap(),
            TEXT
        );
        let c = TestKey::generate("C <c@test.invalid>");
        let (_e, only_c) = ring(&keyring_of(&[&c]), "c.gpg");
        let err = only_c
            .verify_cleartext(&signed, SystemTime::now())
            .unwrap_err();
        assert!(matches!(err, OpenPgpError::UnknownSigner { .. }), "{err}");
        assert!(err.to_string().contains(&a.fingerprint()), "{err}");
    }

    #[test]
    fn bad_keys_are_refused() {
        let now = SystemTime::now();
        let old = TestKey::expired("Old <o@test.invalid>");
        let (_d, r) = ring(&old.public_keyring(), "old.gpg");
        let signed = old.clearsign_at(TEXT, now - Duration::from_secs(2 * 86400 - 60));
        let err = r.verify_cleartext(&signed, now).unwrap_err();
        assert!(matches!(err, OpenPgpError::KeyExpired { .. }), "{err}");

        let revoked = TestKey::revoked("Gone <g@test.invalid>");
        let (_e, r) = ring(&revoked.public_keyring(), "gone.gpg");
        let err = r
            .verify_cleartext(&revoked.clearsign(TEXT), now)
            .unwrap_err();
        assert!(matches!(err, OpenPgpError::KeyRevoked { .. }), "{err}");

        let certify = TestKey::certify_only("Cert <c@test.invalid>");
        let (_f, r) = ring(&certify.public_keyring(), "cert.gpg");
        let err = r
            .verify_cleartext(&certify.clearsign(TEXT), now)
            .unwrap_err();
        assert!(matches!(err, OpenPgpError::NotSigningKey { .. }), "{err}");
    }
}
