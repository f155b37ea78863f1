//! A binary package as a repository index describes it: the value handed from
//! `source` to `resolve`, `fetch`, `unpack` and `configure`.

use crate::control::Paragraph;

/// One `.deb` from a `Packages` index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    /// `amd64`, `all`, ...
    pub architecture: String,
    /// Path of the file below the mirror root (`pool/main/...`).
    pub filename: String,
    pub size: u64,
    /// Lower-case hex SHA-256 of the `.deb`, from the verified index.
    pub sha256: String,
    /// The whole index paragraph (Depends, Provides, Multi-Arch, Essential, ...).
    pub control: Paragraph,
}

impl DebPackage {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.control.get(name)
    }

    pub fn essential(&self) -> bool {
        self.field("Essential")
            .is_some_and(|v| v.eq_ignore_ascii_case("yes"))
    }

    pub fn priority(&self) -> Option<&str> {
        self.field("Priority")
    }

    /// `name_version_arch`, the key used in logs and in the lock file.
    pub fn id(&self) -> String {
        format!("{}_{}_{}", self.name, self.version, self.architecture)
    }
}
