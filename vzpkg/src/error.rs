//! The library's error: one variant per stage, each carrying that stage's
//! structured error, and the exit code the binary returns for it.

use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Source(#[from] crate::source::deb::SourceError),
    #[error(transparent)]
    Resolve(#[from] crate::resolve::deb::ResolveError),
    #[error(transparent)]
    Unpack(#[from] crate::unpack::deb::UnpackError),
    #[error(transparent)]
    Configure(#[from] crate::configure::deb::ConfigureError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("interrupted: the build was stopped and its staging tree removed; the store is unchanged")]
    Cancelled(#[from] crate::cancel::Cancelled),
}
