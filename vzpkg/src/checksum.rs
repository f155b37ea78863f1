//! Digest algorithms that repository metadata names, for checking what is
//! downloaded whatever the format.

use sha2::digest::DynDigest;

/// Digest algorithms repository metadata uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumKind {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl ChecksumKind {
    pub fn parse(s: &str) -> Option<ChecksumKind> {
        Some(match s.to_ascii_lowercase().as_str() {
            "md5" => ChecksumKind::Md5,
            // CentOS 4-era createrepo wrote `sha` for SHA-1.
            "sha" | "sha1" => ChecksumKind::Sha1,
            "sha224" => ChecksumKind::Sha224,
            "sha256" => ChecksumKind::Sha256,
            "sha384" => ChecksumKind::Sha384,
            "sha512" => ChecksumKind::Sha512,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ChecksumKind::Md5 => "md5",
            ChecksumKind::Sha1 => "sha1",
            ChecksumKind::Sha224 => "sha224",
            ChecksumKind::Sha256 => "sha256",
            ChecksumKind::Sha384 => "sha384",
            ChecksumKind::Sha512 => "sha512",
        }
    }

    /// A streaming hasher for this algorithm.
    pub fn hasher(self) -> Box<dyn DynDigest + Send> {
        match self {
            ChecksumKind::Md5 => Box::new(md5::Md5::default()),
            ChecksumKind::Sha1 => sha1_hasher(),
            ChecksumKind::Sha224 => Box::new(sha2::Sha224::default()),
            ChecksumKind::Sha256 => Box::new(sha2::Sha256::default()),
            ChecksumKind::Sha384 => Box::new(sha2::Sha384::default()),
            ChecksumKind::Sha512 => Box::new(sha2::Sha512::default()),
        }
    }

    /// Lower-case hex digest of `data`.
    pub fn hex_digest(self, data: &[u8]) -> String {
        let mut h = self.hasher();
        h.update(data);
        hex::encode(h.finalize())
    }
}

/// SHA-1 through the OpenPGP library (with collision detection), so no
/// extra dependency is needed for old repositories.
fn sha1_hasher() -> Box<dyn DynDigest + Send> {
    match pgp::crypto::hash::HashAlgorithm::Sha1.new_hasher() {
        Ok(h) => h,
        // The OpenPGP library always has SHA-1; keep a defined fallback anyway.
        Err(_) => Box::new(sha2::Sha256::default()),
    }
}
