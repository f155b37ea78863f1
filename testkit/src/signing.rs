//! Test OpenPGP keys and signatures: real keys generated per test, real
//! cleartext and detached signatures, and keys that are expired, revoked or
//! not allowed to sign, for the refusal paths.

use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, DetachedSignature, KeyType, SecretKeyParamsBuilder,
    SignedPublicKey, SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{KeyFlags, SignatureConfig, SignatureType, Subpacket, SubpacketData};
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, Password, Tag, Timestamp};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A signing key (Ed25519, primary key signs, as small archive keys do).
pub struct TestKey {
    pub secret: SignedSecretKey,
}

fn ts(t: SystemTime) -> Timestamp {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .expect("time after 1970")
        .as_secs();
    Timestamp::from_secs(u32::try_from(secs).expect("time before 2106"))
}

fn sub(data: SubpacketData) -> Subpacket {
    Subpacket::regular(data).expect("valid subpacket")
}

impl TestKey {
    /// A fresh key, created an hour ago so clock skew never makes it "future".
    pub fn generate(user_id: &str) -> TestKey {
        Self::generate_at(user_id, SystemTime::now() - Duration::from_secs(3600))
    }

    /// A fresh key with the given creation time.
    pub fn generate_at(user_id: &str, created: SystemTime) -> TestKey {
        let params = SecretKeyParamsBuilder::default()
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .created_at(ts(created))
            .primary_user_id(user_id.into())
            .build()
            .expect("key parameters");
        let secret = params.generate(rand::thread_rng()).expect("key generation");
        TestKey { secret }
    }

    /// A key created `age` ago whose self-signature gave it `lifetime`
    /// (shorter than `age`): expired now, valid back then.
    pub fn generate_expired(user_id: &str, age: Duration, lifetime: Duration) -> TestKey {
        assert!(lifetime < age, "an expired key needs lifetime < age");
        let created = SystemTime::now() - age;
        let mut k = Self::generate_at(user_id, created);
        k.resign(created, Some(lifetime), true);
        k
    }

    /// A key that expired yesterday after living one day.
    pub fn expired(user_id: &str) -> TestKey {
        Self::generate_expired(
            user_id,
            Duration::from_secs(2 * 86400),
            Duration::from_secs(86400),
        )
    }

    /// A key whose self-signature allows certification but not signing.
    pub fn certify_only(user_id: &str) -> TestKey {
        let mut k = Self::generate(user_id);
        k.resign(SystemTime::now() - Duration::from_secs(600), None, false);
        k
    }

    /// A key carrying a revocation signature by itself.
    pub fn revoked(user_id: &str) -> TestKey {
        let mut k = Self::generate(user_id);
        k.revoke();
        k
    }

    /// Add a revocation signature by the key itself.
    pub fn revoke(&mut self) {
        let key = &self.secret.primary_key;
        let mut cfg =
            SignatureConfig::from_key(rand::thread_rng(), key, SignatureType::KeyRevocation)
                .expect("revocation config");
        cfg.hashed_subpackets = vec![
            sub(SubpacketData::SignatureCreationTime(ts(SystemTime::now()))),
            sub(SubpacketData::IssuerFingerprint(key.fingerprint())),
        ];
        let sig = cfg
            .sign_key(key, &Password::empty(), key.public_key())
            .expect("revocation signature");
        self.secret.details.revocation_signatures.push(sig);
    }

    /// Replace the primary user id's self-signature: new creation time,
    /// optional lifetime, and the signing flag on or off.
    pub fn resign(&mut self, created: SystemTime, lifetime: Option<Duration>, can_sign: bool) {
        let key = &self.secret.primary_key;
        let mut flags = KeyFlags::default();
        flags.set_certify(true);
        flags.set_sign(can_sign);
        let mut cfg =
            SignatureConfig::from_key(rand::thread_rng(), key, SignatureType::CertPositive)
                .expect("certification config");
        cfg.hashed_subpackets = vec![
            sub(SubpacketData::SignatureCreationTime(ts(created))),
            sub(SubpacketData::IssuerFingerprint(key.fingerprint())),
            sub(SubpacketData::KeyFlags(flags)),
            sub(SubpacketData::IsPrimary(true)),
        ];
        if let Some(l) = lifetime {
            let d = pgp::types::Duration::try_from(l).expect("lifetime fits");
            cfg.hashed_subpackets
                .push(sub(SubpacketData::KeyExpirationTime(d)));
        }
        cfg.unhashed_subpackets = vec![sub(SubpacketData::IssuerKeyId(key.legacy_key_id()))];
        let user = &mut self.secret.details.users[0];
        let sig = cfg
            .sign_certification(
                key,
                key.public_key(),
                &Password::empty(),
                Tag::UserId,
                &user.id,
            )
            .expect("certification");
        user.signatures = vec![sig];
    }

    pub fn public_key(&self) -> SignedPublicKey {
        self.secret.to_public_key()
    }

    /// Upper-case hex fingerprint.
    pub fn fingerprint(&self) -> String {
        hex::encode_upper(self.secret.primary_key.fingerprint().as_bytes())
    }

    /// The public key as a binary keyring file (`.gpg`, as apt keeps them).
    pub fn public_keyring(&self) -> Vec<u8> {
        self.public_key().to_bytes().expect("serialise key")
    }

    /// The public key ASCII-armoured (`.asc`).
    pub fn public_keyring_armored(&self) -> String {
        self.public_key()
            .to_armored_string(ArmorOptions::default())
            .expect("armour key")
    }

    fn data_config(&self, typ: SignatureType, created: SystemTime) -> SignatureConfig {
        let key = &self.secret.primary_key;
        let mut cfg = SignatureConfig::from_key(rand::thread_rng(), key, typ).expect("config");
        cfg.hash_alg = HashAlgorithm::Sha512;
        cfg.hashed_subpackets = vec![
            sub(SubpacketData::SignatureCreationTime(ts(created))),
            sub(SubpacketData::IssuerFingerprint(key.fingerprint())),
        ];
        cfg.unhashed_subpackets = vec![sub(SubpacketData::IssuerKeyId(key.legacy_key_id()))];
        cfg
    }

    /// An InRelease-style cleartext-signed message, signed a minute ago.
    pub fn clearsign(&self, text: &str) -> String {
        self.clearsign_at(text, SystemTime::now() - Duration::from_secs(60))
    }

    /// Cleartext-signed with the given signature creation time.
    pub fn clearsign_at(&self, text: &str, created: SystemTime) -> String {
        let cfg = self.data_config(SignatureType::Text, created);
        CleartextSignedMessage::new(text, cfg, &self.secret.primary_key, &Password::empty())
            .expect("clearsign")
            .to_armored_string(ArmorOptions::default())
            .expect("armour message")
    }

    /// One message signed by several keys, in the order given (Debian's
    /// InRelease carries signatures by more than one archive key).
    pub fn clearsign_many(keys: &[&TestKey], text: &str) -> String {
        let created = SystemTime::now() - Duration::from_secs(60);
        CleartextSignedMessage::new_many(text, |normalized| {
            keys.iter()
                .map(|k| {
                    k.data_config(SignatureType::Text, created).sign(
                        &k.secret.primary_key,
                        &Password::empty(),
                        normalized.as_bytes(),
                    )
                })
                .collect()
        })
        .expect("clearsign")
        .to_armored_string(ArmorOptions::default())
        .expect("armour message")
    }

    /// An armoured detached signature (Release.gpg, repomd.xml.asc).
    pub fn sign_detached(&self, data: &[u8]) -> Vec<u8> {
        self.detached(data)
            .to_armored_bytes(ArmorOptions::default())
            .expect("armour signature")
    }

    /// A binary detached signature.
    pub fn sign_detached_binary(&self, data: &[u8]) -> Vec<u8> {
        self.detached(data).to_bytes().expect("serialise signature")
    }

    fn detached(&self, data: &[u8]) -> DetachedSignature {
        let cfg = self.data_config(
            SignatureType::Binary,
            SystemTime::now() - Duration::from_secs(60),
        );
        let sig = cfg
            .sign(&self.secret.primary_key, &Password::empty(), data)
            .expect("sign");
        DetachedSignature::new(sig)
    }
}

/// Several keys as one binary keyring file.
pub fn keyring_of(keys: &[&TestKey]) -> Vec<u8> {
    keys.iter().flat_map(|k| k.public_keyring()).collect()
}
