//! The host's apt configuration (`sources.list` one-line format and deb822
//! `.sources`), used as the default Debian mirror.
//! OWNER: source helper — replace the stubs below.

use std::path::{Path, PathBuf};

/// One `deb` line or deb822 stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSource {
    pub uri: String,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    pub signed_by: Option<PathBuf>,
}

/// All `deb` (not `deb-src`) sources configured under `etc_apt`
/// (normally `/etc/apt`).
pub fn host_sources(etc_apt: &Path) -> Result<Vec<AptSource>, super::deb::SourceError> {
    let _ = etc_apt;
    Ok(Vec::new())
}

/// The mirror base URL to use for `suite`: a source that lists the suite, else
/// the first plain archive source (not `-security`/`-updates`/backports).
pub fn pick_mirror(sources: &[AptSource], suite: &str) -> Option<String> {
    let _ = (sources, suite);
    None
}
