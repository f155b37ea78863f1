//! The library's error: one variant per stage, each carrying that stage's
//! structured error, and the exit code the binary returns for it.

use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Recipe(#[from] crate::recipe::RecipeError),
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    #[error(transparent)]
    Source(#[from] crate::source::deb::SourceError),
    #[error(transparent)]
    Resolve(#[from] crate::resolve::deb::ResolveError),
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    #[error(transparent)]
    Unpack(#[from] crate::unpack::deb::UnpackError),
    #[error(transparent)]
    Configure(#[from] crate::configure::deb::ConfigureError),
    #[error(transparent)]
    Normalize(#[from] crate::normalize::NormalizeError),
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error(transparent)]
    RpmSource(#[from] crate::source::rpm::RpmSourceError),
    #[error(transparent)]
    RpmResolve(#[from] crate::resolve::rpm::RpmResolveError),
    #[error(transparent)]
    RpmUnpack(#[from] crate::unpack::rpm::RpmUnpackError),
    #[error(transparent)]
    RpmConfigure(#[from] crate::configure::rpm::RpmConfigureError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Oci(#[from] crate::oci::OciError),
    #[error("no Debian mirror: the recipe names none, --mirror was not given, and {etc_apt} has no `deb` source; pass --mirror URL")]
    NoMirror { etc_apt: PathBuf },
    #[error("{recipe}: building `kind = \"{kind}\"` recipes is not supported by this command yet")]
    Unsupported { recipe: PathBuf, kind: &'static str },
    #[error("staging tree {path}: {source}")]
    Staging {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "interrupted: the build was stopped and its staging tree removed; the store is unchanged"
    )]
    Cancelled(#[from] crate::cancel::Cancelled),
}

/// Exit codes, documented in the README.
pub mod exit {
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const RECIPE: i32 = 3;
    pub const VERIFY: i32 = 4;
    pub const RESOLVE: i32 = 5;
    pub const NETWORK: i32 = 6;
    pub const PACKAGE: i32 = 7;
    pub const CONFIGURE: i32 = 8;
    pub const STORE: i32 = 9;
    pub const DISK_FULL: i32 = 10;
    /// `rebuild`: at least one template was rebuilt, none failed.
    pub const REBUILT: i32 = 11;
    /// `rebuild`: at least one template failed.
    pub const REBUILD_FAILED: i32 = 12;
    pub const INTERRUPTED: i32 = 130;
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        if crate::cancel::is_requested() {
            return exit::INTERRUPTED;
        }
        if self.is_disk_full() {
            return exit::DISK_FULL;
        }
        match self {
            Error::Recipe(_) | Error::Unsupported { .. } => exit::RECIPE,
            Error::Http(_) | Error::NoMirror { .. } => exit::NETWORK,
            Error::Source(e) if e.is_verification() => exit::VERIFY,
            Error::Source(e) if e.is_network() => exit::NETWORK,
            Error::Source(_) => exit::FAILURE,
            Error::Resolve(_) => exit::RESOLVE,
            Error::Fetch(e) if e.is_verification() => exit::VERIFY,
            Error::Fetch(crate::fetch::FetchError::Http { .. }) => exit::NETWORK,
            Error::Fetch(_) => exit::FAILURE,
            Error::Unpack(_) => exit::PACKAGE,
            Error::Configure(_) => exit::CONFIGURE,
            Error::Lock(
                crate::lock::LockError::Missing { .. } | crate::lock::LockError::NotUpstream { .. },
            ) => exit::RESOLVE,
            Error::Lock(_) => exit::RECIPE,
            Error::RpmSource(e) if e.is_verification() => exit::VERIFY,
            Error::RpmSource(e) if e.is_network() => exit::NETWORK,
            Error::RpmSource(_) => exit::FAILURE,
            Error::RpmResolve(_) => exit::RESOLVE,
            Error::RpmUnpack(
                crate::unpack::rpm::RpmUnpackError::Signature { .. }
                | crate::unpack::rpm::RpmUnpackError::Unsigned { .. }
                | crate::unpack::rpm::RpmUnpackError::Keyring { .. }
                | crate::unpack::rpm::RpmUnpackError::HeaderDigest { .. },
            ) => exit::VERIFY,
            Error::RpmUnpack(_) => exit::PACKAGE,
            // The fix is the recipe's: add rpm to the package set.
            Error::RpmConfigure(
                crate::configure::rpm::RpmConfigureError::NoHostRpm { .. }
                | crate::configure::rpm::RpmConfigureError::HostCannotWrite { .. },
            ) => exit::RECIPE,
            Error::RpmConfigure(_) => exit::CONFIGURE,
            Error::Export(
                crate::export::ExportError::Corrupt { .. }
                | crate::export::ExportError::Unsafe { .. }
                | crate::export::ExportError::UnknownFormat { .. }
                | crate::export::ExportError::Unsupported { .. },
            ) => exit::PACKAGE,
            Error::Export(crate::export::ExportError::UnknownSuffix { .. }) => exit::USAGE,
            Error::Export(_) => exit::FAILURE,
            Error::Store(_) => exit::STORE,
            Error::Oci(e) if e.is_verification() => exit::VERIFY,
            Error::Oci(e) if e.is_network() => exit::NETWORK,
            Error::Oci(e) if e.is_bad_image() => exit::PACKAGE,
            Error::Oci(crate::oci::OciError::BadReference { .. }) => exit::USAGE,
            Error::Oci(crate::oci::OciError::Store(_)) => exit::STORE,
            Error::Oci(crate::oci::OciError::Cancelled) => exit::INTERRUPTED,
            Error::Oci(_) => exit::FAILURE,
            Error::Staging { .. } | Error::Normalize(_) => exit::FAILURE,
            Error::Cancelled(_) => exit::INTERRUPTED,
        }
    }

    /// ENOSPC anywhere in the chain of causes.
    pub fn is_disk_full(&self) -> bool {
        let mut cur: Option<&dyn std::error::Error> = Some(self);
        while let Some(e) = cur {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.raw_os_error() == Some(libc::ENOSPC) {
                    return true;
                }
            }
            cur = e.source();
        }
        false
    }
}
