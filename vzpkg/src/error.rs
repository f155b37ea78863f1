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
    Source(Box<ByFormat<crate::source::deb::SourceError, crate::source::rpm::RpmSourceError>>),
    #[error(transparent)]
    Resolve(Box<ByFormat<crate::resolve::deb::ResolveError, crate::resolve::rpm::RpmResolveError>>),
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    #[error(transparent)]
    Unpack(Box<ByFormat<crate::unpack::deb::UnpackError, crate::unpack::rpm::RpmUnpackError>>),
    #[error(transparent)]
    Configure(
        Box<
            ByFormat<
                crate::configure::deb::ConfigureError,
                crate::configure::rpm::RpmConfigureError,
            >,
        >,
    ),
    #[error(transparent)]
    Normalize(#[from] crate::normalize::NormalizeError),
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
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

/// A stage's error from the Debian or the RPM pipeline: `create::Plan`
/// chose the format once, and the stage's exit code does not depend on it.
#[derive(Debug, Error)]
pub enum ByFormat<D: std::error::Error + 'static, R: std::error::Error + 'static> {
    #[error(transparent)]
    Deb(D),
    #[error(transparent)]
    Rpm(R),
}

/// `?` on either format's stage error lands in that stage's variant
/// (boxed: a stage error is large and the error path is cold).
macro_rules! stage_from {
    ($variant:ident, $side:ident, $ty:ty) => {
        impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Error::$variant(Box::new(ByFormat::$side(e)))
            }
        }
    };
}
stage_from!(Source, Deb, crate::source::deb::SourceError);
stage_from!(Source, Rpm, crate::source::rpm::RpmSourceError);
stage_from!(Resolve, Deb, crate::resolve::deb::ResolveError);
stage_from!(Resolve, Rpm, crate::resolve::rpm::RpmResolveError);
stage_from!(Unpack, Deb, crate::unpack::deb::UnpackError);
stage_from!(Unpack, Rpm, crate::unpack::rpm::RpmUnpackError);
stage_from!(Configure, Deb, crate::configure::deb::ConfigureError);
stage_from!(Configure, Rpm, crate::configure::rpm::RpmConfigureError);

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
            Error::Source(e) => e.exit_code(),
            Error::Resolve(_) => exit::RESOLVE,
            Error::Fetch(e) if e.is_verification() => exit::VERIFY,
            Error::Fetch(crate::fetch::FetchError::Http { .. }) => exit::NETWORK,
            Error::Fetch(_) => exit::FAILURE,
            Error::Unpack(e) => e.exit_code(),
            Error::Configure(e) => e.exit_code(),
            Error::Lock(
                crate::lock::LockError::Missing { .. } | crate::lock::LockError::NotUpstream { .. },
            ) => exit::RESOLVE,
            Error::Lock(_) => exit::RECIPE,
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

/// Each format's error for a stage says its own exit code; `ByFormat`
/// passes the question to whichever format it holds.
trait StageExit {
    fn exit_code(&self) -> i32;
}

impl<D, R> StageExit for ByFormat<D, R>
where
    D: std::error::Error + StageExit + 'static,
    R: std::error::Error + StageExit + 'static,
{
    fn exit_code(&self) -> i32 {
        match self {
            ByFormat::Deb(e) => e.exit_code(),
            ByFormat::Rpm(e) => e.exit_code(),
        }
    }
}

/// An index that failed its signature or checksum, else a mirror that could not be reached.
fn source_exit(verification: bool, network: bool) -> i32 {
    if verification {
        exit::VERIFY
    } else if network {
        exit::NETWORK
    } else {
        exit::FAILURE
    }
}

impl StageExit for crate::source::deb::SourceError {
    fn exit_code(&self) -> i32 {
        source_exit(self.is_verification(), self.is_network())
    }
}

impl StageExit for crate::source::rpm::RpmSourceError {
    fn exit_code(&self) -> i32 {
        source_exit(self.is_verification(), self.is_network())
    }
}

impl StageExit for crate::unpack::deb::UnpackError {
    fn exit_code(&self) -> i32 {
        exit::PACKAGE
    }
}

impl StageExit for crate::unpack::rpm::RpmUnpackError {
    fn exit_code(&self) -> i32 {
        use crate::unpack::rpm::RpmUnpackError as E;
        match self {
            E::Signature { .. }
            | E::Unsigned { .. }
            | E::Keyring { .. }
            | E::HeaderDigest { .. } => exit::VERIFY,
            _ => exit::PACKAGE,
        }
    }
}

impl StageExit for crate::configure::deb::ConfigureError {
    fn exit_code(&self) -> i32 {
        exit::CONFIGURE
    }
}

impl StageExit for crate::configure::rpm::RpmConfigureError {
    fn exit_code(&self) -> i32 {
        use crate::configure::rpm::RpmConfigureError as E;
        match self {
            // The fix is the recipe's: add rpm to the package set.
            E::NoHostRpm { .. } | E::HostCannotWrite { .. } => exit::RECIPE,
            _ => exit::CONFIGURE,
        }
    }
}
