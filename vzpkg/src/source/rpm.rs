//! An RPM (yum/dnf) repository: `repodata/repomd.xml` (its detached
//! signature verified when a keyring is given), then `primary.xml` checked
//! against the checksum repomd lists before it is decompressed and parsed.
//! `filelists.xml` is loaded only on demand.

pub use crate::checksum::ChecksumKind;
use crate::compress::{self, Compression, Integrity};
use crate::http::{Http, HttpError};
use crate::openpgp::{Keyring, OpenPgpError};
use crate::progress::{Reporter, Stage};
pub use crate::rpmversion::{compare_evr, parse_evr, rpmvercmp};
use quick_xml::events::{BytesStart, Event};
use std::cmp::Ordering;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::time::SystemTime;
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RpmSourceError {
    /// The keyring itself could not be used.
    #[error(transparent)]
    OpenPgp(#[from] OpenPgpError),
    #[error("cannot fetch {url}: {source}")]
    Fetch {
        url: String,
        #[source]
        source: HttpError,
    },
    #[error("{url}: no signature (repomd.xml.asc is missing) although repo_gpgcheck is on: refusing an unsigned index; use a mirror that signs its metadata, or set repo_gpgcheck = false and rely on package signatures (gpgcheck)")]
    Unsigned { url: String },
    #[error("{url}: signature check failed: {source}")]
    Signature {
        url: String,
        #[source]
        source: OpenPgpError,
    },
    #[error("{url}: neither repo_gpgcheck nor gpgcheck is on, so nothing from this repository could be verified; give the repository's gpgkey and turn a check on, or, for a repository of your own that is not signed, write both gpgcheck = false and repo_gpgcheck = false in its recipe entry to build from it unverified")]
    Unverifiable { url: String },
    /// Boxed: the key errors carry an HTTP error and would make every
    /// result of this module large.
    #[error(transparent)]
    Key(Box<super::rpm_keys::RpmKeyError>),
    #[error(
        "{url}: malformed repository metadata ({reason}); the mirror is broken, use another mirror"
    )]
    BadMetadata { url: String, reason: String },
    #[error("{url}: repomd.xml lists no {kind:?} metadata; the mirror is incomplete, use another mirror")]
    MissingData { url: String, kind: String },
    #[error("{url}: checksum type {kind:?} is not supported (known: sha256, sha512, sha384, sha224, sha1/sha, md5); use another mirror")]
    UnsupportedChecksum { url: String, kind: String },
    #[error("{url}: size {actual} bytes, but repomd.xml says {expected}: the mirror is mid-update or corrupt; try again later or use another mirror")]
    SizeMismatch {
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error("{url}: {kind} {actual}, but repomd.xml says {expected}: the file was altered or the mirror is mid-update; try again later or use another mirror")]
    ChecksumMismatch {
        url: String,
        kind: String,
        expected: String,
        actual: String,
    },
    #[error("{url}: cannot decompress ({reason}); the mirror is broken, use another mirror")]
    Decompress { url: String, reason: String },
}

impl From<super::rpm_keys::RpmKeyError> for RpmSourceError {
    fn from(e: super::rpm_keys::RpmKeyError) -> Self {
        RpmSourceError::Key(Box::new(e))
    }
}

impl RpmSourceError {
    /// The index could not be trusted (signature, checksum, size).
    pub fn is_verification(&self) -> bool {
        matches!(
            self,
            RpmSourceError::Unsigned { .. }
                | RpmSourceError::Signature { .. }
                | RpmSourceError::Unverifiable { .. }
                | RpmSourceError::SizeMismatch { .. }
                | RpmSourceError::ChecksumMismatch { .. }
        ) || matches!(self, RpmSourceError::Key(k) if k.is_verification())
    }

    /// A key or index could not be fetched.
    pub fn is_network(&self) -> bool {
        matches!(self, RpmSourceError::Fetch { .. })
            || matches!(self, RpmSourceError::Key(k) if k.is_network())
    }

    /// Fill in the URL of an error from a pure parser.
    fn at(self, url: &str) -> Self {
        match self {
            RpmSourceError::BadMetadata { reason, .. } => RpmSourceError::BadMetadata {
                url: url.to_string(),
                reason,
            },
            RpmSourceError::UnsupportedChecksum { kind, .. } => {
                RpmSourceError::UnsupportedChecksum {
                    url: url.to_string(),
                    kind,
                }
            }
            other => other,
        }
    }
}

pub(super) fn bad(reason: impl Into<String>) -> RpmSourceError {
    RpmSourceError::BadMetadata {
        url: String::new(),
        reason: reason.into(),
    }
}

/// Where to read an RPM repository from.
#[derive(Debug, Clone)]
pub struct RpmRepo {
    /// The directory holding `repodata/`, without trailing slash.
    pub base_url: String,
    /// Keyring to verify `repomd.xml.asc` with; `None` for repositories that
    /// do not sign their metadata (CentOS), which then rely on `gpgcheck`.
    pub keyring: Option<PathBuf>,
    /// Packages are to be signature-checked when unpacked.
    pub gpgcheck: bool,
    /// The recipe asked for this repository to be used unverified (neither
    /// a keyring nor gpgcheck); refused otherwise.
    pub unverified: bool,
}

/// Comparison of a dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DepFlags {
    Any,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl DepFlags {
    fn parse(s: &str) -> Option<DepFlags> {
        Some(match s {
            "LT" => DepFlags::Lt,
            "LE" => DepFlags::Le,
            "EQ" => DepFlags::Eq,
            "GE" => DepFlags::Ge,
            "GT" => DepFlags::Gt,
            _ => return None,
        })
    }
}

/// One provides/requires/conflicts/obsoletes entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RpmDep {
    pub name: String,
    pub flags: DepFlags,
    pub epoch: Option<u32>,
    pub version: Option<String>,
    pub release: Option<String>,
    /// `Requires(pre)`-style: needed before the package's scriptlets run.
    pub pre: bool,
}

/// A checksum as metadata states it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checksum {
    pub kind: ChecksumKind,
    /// Lower-case hex.
    pub hex: String,
}

impl Checksum {
    /// Check `data`; `url` names it in the error.
    pub fn check(&self, url: &str, data: &[u8]) -> Result<(), RpmSourceError> {
        let actual = self.kind.hex_digest(data);
        if actual != self.hex {
            return Err(RpmSourceError::ChecksumMismatch {
                url: url.to_string(),
                kind: self.kind.name().to_string(),
                expected: self.hex.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// One binary package from `primary.xml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmPackage {
    pub name: String,
    pub epoch: u32,
    pub version: String,
    pub release: String,
    /// `x86_64`, `noarch`, `i686`, ...
    pub arch: String,
    /// Path of the `.rpm` relative to the repository base (or to `location_base`).
    pub location_href: String,
    /// `xml:base` of the location, when the package lives elsewhere.
    pub location_base: Option<String>,
    /// Size of the `.rpm` file in bytes.
    pub size: u64,
    pub installed_size: u64,
    /// Checksum of the `.rpm` file, from the verified metadata.
    pub checksum: Checksum,
    pub provides: Vec<RpmDep>,
    pub requires: Vec<RpmDep>,
    pub conflicts: Vec<RpmDep>,
    pub obsoletes: Vec<RpmDep>,
    /// The subset of files `primary.xml` lists (`/etc/*`, `*bin/*`, ...).
    pub files: Vec<String>,
}

impl RpmPackage {
    /// `E:V-R`, the epoch left out when zero as rpm prints it.
    pub fn evr(&self) -> String {
        if self.epoch == 0 {
            format!("{}-{}", self.version, self.release)
        } else {
            format!("{}:{}-{}", self.epoch, self.version, self.release)
        }
    }

    /// `name-E:V-R.arch`, the key used in logs and in the lock file.
    pub fn nevra(&self) -> String {
        format!("{}-{}.{}", self.name, self.evr(), self.arch)
    }

    /// Whether any requirement must be met before `%pre` runs.
    pub fn has_pre_requires(&self) -> bool {
        self.requires.iter().any(|d| d.pre)
    }

    /// Compare by epoch, version, release as rpm does.
    pub fn cmp_evr(&self, other: &RpmPackage) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| rpmvercmp(&self.version, &other.version))
            .then_with(|| rpmvercmp(&self.release, &other.release))
    }

    /// URL of the package file below the repository `base_url`.
    pub fn url(&self, base_url: &str) -> String {
        let base = self.location_base.as_deref().unwrap_or(base_url);
        format!("{}/{}", base.trim_end_matches('/'), self.location_href)
    }
}

/// One `<data>` entry of repomd.xml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoData {
    /// `primary`, `filelists`, `other`, `primary_db`, ...
    pub kind: String,
    /// Relative to the repository base (`repodata/...-primary.xml.gz`).
    pub href: String,
    /// Of the file as stored (compressed).
    pub checksum: Checksum,
    /// Of the decompressed file.
    pub open_checksum: Option<Checksum>,
    pub size: Option<u64>,
    pub open_size: Option<u64>,
    pub timestamp: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoMd {
    pub revision: Option<String>,
    pub data: Vec<RepoData>,
}

impl RepoMd {
    pub fn get(&self, kind: &str) -> Option<&RepoData> {
        self.data.iter().find(|d| d.kind == kind)
    }
}

/// The verified index of one repository.
#[derive(Debug, Clone)]
pub struct RpmIndex {
    pub base_url: String,
    pub packages: Vec<RpmPackage>,
    /// SHA-256 of repomd.xml: the snapshot id.
    pub repomd_sha256: String,
    pub revision: Option<String>,
    /// Whether repomd.xml was signature-checked; when not, packages must be.
    pub signed: bool,
    pub gpgcheck: bool,
    /// The filelists entry, for `load_filelists`.
    pub filelists: Option<RepoData>,
    /// The package group entries (`group`, `group_gz`, ...), for
    /// `comps::load_comps`.
    pub groups: Vec<RepoData>,
}

/// Files of one package from `filelists.xml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmFileList {
    /// The package checksum (`pkgid`), matching `RpmPackage::checksum.hex`.
    pub pkgid: String,
    pub name: String,
    pub arch: String,
    pub epoch: u32,
    pub version: String,
    pub release: String,
    pub files: Vec<String>,
}

// ---------------------------------------------------------------------------
// XML parsing

pub(super) fn attr(e: &BytesStart<'_>, name: &str) -> Result<Option<String>, RpmSourceError> {
    for a in e.attributes().with_checks(false) {
        let a = a.map_err(|err| bad(format!("bad attribute in <{}>: {err}", e.name().as_ref())))?;
        if a.key.as_ref() == name {
            let v = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|err| bad(format!("bad attribute {name:?}: {err}")))?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

fn num_attr<T: std::str::FromStr>(
    e: &BytesStart<'_>,
    name: &str,
) -> Result<Option<T>, RpmSourceError> {
    match attr(e, name)? {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| bad(format!("attribute {name}={v:?} is not a number"))),
    }
}

fn checksum_of(kind: Option<String>, hex: &str) -> Result<Checksum, RpmSourceError> {
    let kind = kind.ok_or_else(|| bad("a <checksum> has no type"))?;
    let k = ChecksumKind::parse(&kind).ok_or(RpmSourceError::UnsupportedChecksum {
        url: String::new(),
        kind,
    })?;
    let hex = hex.trim().to_ascii_lowercase();
    if hex.is_empty() || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad(format!("checksum {hex:?} is not hex")));
    }
    Ok(Checksum { kind: k, hex })
}

/// Appends character data of the current element to a buffer.
pub(super) fn push_text(ev: &Event<'_>, out: &mut String) -> Result<(), RpmSourceError> {
    match ev {
        Event::Text(t) => out.push_str(&t.xml10_content()),
        Event::CData(t) => out.push_str(&t.xml10_content()),
        Event::GeneralRef(r) => {
            if let Some(c) = r
                .resolve_char_ref()
                .map_err(|e| bad(format!("bad character reference: {e}")))?
            {
                out.push(c);
            } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(r) {
                out.push_str(s);
            } else {
                return Err(bad(format!("unknown entity &{};", &**r)));
            }
        }
        _ => {}
    }
    Ok(())
}

pub(super) fn xml_err(e: quick_xml::Error, pos: u64) -> RpmSourceError {
    bad(format!("XML error at byte {pos}: {e}"))
}

/// Parse the text of repomd.xml (already verified).
pub fn parse_repomd(text: &str) -> Result<RepoMd, RpmSourceError> {
    let mut r = quick_xml::Reader::from_reader(text.as_bytes());
    let mut buf = Vec::new();
    let mut md = RepoMd::default();
    let mut seen_root = false;
    // Current <data>, the element whose text we collect, its attribute.
    let mut cur: Option<(String, Option<String>)> = None;
    let mut fields: Vec<(String, Option<String>, String)> = Vec::new();
    let mut text_of: Option<(String, Option<String>)> = None;
    let mut text = String::new();
    let mut in_revision = false;
    loop {
        let ev = r
            .read_event_into(&mut buf)
            .map_err(|e| xml_err(e, r.buffer_position()))?;
        match &ev {
            Event::Start(e) | Event::Empty(e) => {
                let empty = matches!(ev, Event::Empty(_));
                let name = e.local_name().as_ref().to_string();
                match name.as_str() {
                    "repomd" => seen_root = true,
                    "revision" if cur.is_none() => in_revision = !empty,
                    "data" => {
                        let kind = attr(e, "type")?.ok_or_else(|| bad("<data> without type"))?;
                        cur = Some((kind, None));
                        fields.clear();
                    }
                    "location" if cur.is_some() => {
                        let href =
                            attr(e, "href")?.ok_or_else(|| bad("<location> without href"))?;
                        if let Some(c) = cur.as_mut() {
                            c.1 = Some(href);
                        }
                    }
                    _ if cur.is_some() && !empty => {
                        text.clear();
                        text_of = Some((name, attr(e, "type")?));
                    }
                    _ => {}
                }
            }
            Event::End(e) => {
                let name = e.local_name().as_ref().to_string();
                if in_revision && name == "revision" {
                    md.revision = Some(text.trim().to_string());
                    text.clear();
                    in_revision = false;
                } else if name == "data" {
                    let Some((kind, href)) = cur.take() else {
                        continue;
                    };
                    md.data.push(repo_data(kind, href, &fields)?);
                } else if let Some((n, t)) = text_of.take() {
                    if n == name {
                        fields.push((n, t, std::mem::take(&mut text)));
                    } else {
                        text_of = Some((n, t));
                    }
                }
            }
            Event::Eof => break,
            other => {
                if text_of.is_some() || in_revision {
                    push_text(other, &mut text)?;
                }
            }
        }
        buf.clear();
    }
    if !seen_root {
        return Err(bad("no <repomd> element"));
    }
    Ok(md)
}

fn repo_data(
    kind: String,
    href: Option<String>,
    fields: &[(String, Option<String>, String)],
) -> Result<RepoData, RpmSourceError> {
    let href = href.ok_or_else(|| bad(format!("<data type={kind:?}> has no <location>")))?;
    let field = |n: &str| fields.iter().find(|f| f.0 == n);
    let number = |n: &str| -> Result<Option<u64>, RpmSourceError> {
        match field(n) {
            None => Ok(None),
            Some((_, _, v)) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| bad(format!("<{n}> {v:?} of {kind:?} is not a number"))),
        }
    };
    let (_, ctype, chex) =
        field("checksum").ok_or_else(|| bad(format!("<data type={kind:?}> has no <checksum>")))?;
    let checksum = checksum_of(ctype.clone(), chex)?;
    let open_checksum = match field("open-checksum") {
        Some((_, t, h)) => Some(checksum_of(t.clone(), h)?),
        None => None,
    };
    Ok(RepoData {
        size: number("size")?,
        open_size: number("open-size")?,
        timestamp: field("timestamp")
            .and_then(|f| f.2.trim().parse::<f64>().ok().map(|t| t as i64)),
        kind,
        href,
        checksum,
        open_checksum,
    })
}

/// Which text field of a package is being read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PText {
    Name,
    Arch,
    Checksum,
    File,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DepList {
    Provides,
    Requires,
    Conflicts,
    Obsoletes,
}

fn dep_from(e: &BytesStart<'_>) -> Result<RpmDep, RpmSourceError> {
    let name = attr(e, "name")?.ok_or_else(|| bad("<rpm:entry> without name"))?;
    let flags = match attr(e, "flags")? {
        None => DepFlags::Any,
        Some(f) => DepFlags::parse(&f)
            .ok_or_else(|| bad(format!("dependency {name:?} has unknown flags {f:?}")))?,
    };
    let pre = matches!(attr(e, "pre")?.as_deref(), Some("1") | Some("true"));
    Ok(RpmDep {
        epoch: num_attr(e, "epoch")?,
        version: attr(e, "ver")?,
        release: attr(e, "rel")?,
        name,
        flags,
        pre,
    })
}

/// A package with nothing known yet, filled in as primary.xml is read.
impl Default for RpmPackage {
    fn default() -> RpmPackage {
        RpmPackage {
            name: String::new(),
            epoch: 0,
            version: String::new(),
            release: String::new(),
            arch: String::new(),
            location_href: String::new(),
            location_base: None,
            size: 0,
            installed_size: 0,
            checksum: Checksum {
                kind: ChecksumKind::Sha256,
                hex: String::new(),
            },
            provides: Vec::new(),
            requires: Vec::new(),
            conflicts: Vec::new(),
            obsoletes: Vec::new(),
            files: Vec::new(),
        }
    }
}

/// Parse a (decompressed) primary.xml stream. Source packages are skipped.
pub fn parse_primary<R: BufRead>(input: R) -> Result<Vec<RpmPackage>, RpmSourceError> {
    let mut r = quick_xml::Reader::from_reader(input);
    let mut buf = Vec::with_capacity(4096);
    let mut out = Vec::new();
    let mut seen_root = false;
    let mut pkg: Option<RpmPackage> = None;
    let mut ctype: Option<String> = None;
    let mut list: Option<DepList> = None;
    let mut text_of: Option<PText> = None;
    let mut text = String::new();
    loop {
        let ev = r
            .read_event_into(&mut buf)
            .map_err(|e| xml_err(e, r.buffer_position()))?;
        match &ev {
            Event::Start(e) | Event::Empty(e) => {
                let empty = matches!(ev, Event::Empty(_));
                let local = e.local_name();
                let name = local.as_ref();
                if name == "metadata" {
                    seen_root = true;
                    continue;
                }
                if name == "package" {
                    pkg = Some(RpmPackage::default());
                    continue;
                }
                let Some(p) = pkg.as_mut() else { continue };
                match name {
                    "name" | "arch" | "checksum" | "file" if !empty => {
                        text.clear();
                        text_of = Some(match name {
                            "name" => PText::Name,
                            "arch" => PText::Arch,
                            "checksum" => {
                                ctype = attr(e, "type")?;
                                PText::Checksum
                            }
                            _ => PText::File,
                        });
                    }
                    "version" => {
                        p.epoch = num_attr(e, "epoch")?.unwrap_or(0);
                        p.version = attr(e, "ver")?.unwrap_or_default();
                        p.release = attr(e, "rel")?.unwrap_or_default();
                    }
                    "size" => {
                        p.size = num_attr(e, "package")?.unwrap_or(0);
                        p.installed_size = num_attr(e, "installed")?.unwrap_or(0);
                    }
                    "location" => {
                        p.location_href = attr(e, "href")?.ok_or_else(|| {
                            bad(format!("package {:?}: <location> without href", p.name))
                        })?;
                        p.location_base = attr(e, "xml:base")?;
                    }
                    "provides" if !empty => list = Some(DepList::Provides),
                    "requires" if !empty => list = Some(DepList::Requires),
                    "conflicts" if !empty => list = Some(DepList::Conflicts),
                    "obsoletes" if !empty => list = Some(DepList::Obsoletes),
                    // recommends, suggests, ...: not used for a minimal install.
                    "recommends" | "suggests" | "supplements" | "enhances" => list = None,
                    "entry" => {
                        if let Some(l) = list {
                            let d = dep_from(e)?;
                            match l {
                                DepList::Provides => p.provides.push(d),
                                DepList::Requires => p.requires.push(d),
                                DepList::Conflicts => p.conflicts.push(d),
                                DepList::Obsoletes => p.obsoletes.push(d),
                            }
                        }
                    }
                    _ => {}
                }
            }
            Event::End(e) => {
                let local = e.local_name();
                let name = local.as_ref();
                match name {
                    "provides" | "requires" | "conflicts" | "obsoletes" | "recommends"
                    | "suggests" | "supplements" | "enhances" => list = None,
                    "package" => {
                        if let Some(p) = pkg.take() {
                            finish_package(p, &mut out)?;
                        }
                    }
                    _ => {
                        if let (Some(t), Some(p)) = (text_of.take(), pkg.as_mut()) {
                            let v = std::mem::take(&mut text);
                            match t {
                                PText::Name => p.name = v.trim().to_string(),
                                PText::Arch => p.arch = v.trim().to_string(),
                                PText::Checksum => {
                                    p.checksum =
                                        checksum_of(ctype.take(), &v).map_err(|err| match err {
                                            RpmSourceError::BadMetadata { reason, .. } => {
                                                bad(format!("package {:?}: {reason}", p.name))
                                            }
                                            other => other,
                                        })?
                                }
                                PText::File => p.files.push(v),
                            }
                        }
                    }
                }
            }
            Event::Eof => break,
            other => {
                if text_of.is_some() {
                    push_text(other, &mut text)?;
                }
            }
        }
        buf.clear();
    }
    if !seen_root {
        return Err(bad("no <metadata> element"));
    }
    if pkg.is_some() {
        return Err(bad("the file ends inside a <package>"));
    }
    Ok(out)
}

fn finish_package(p: RpmPackage, out: &mut Vec<RpmPackage>) -> Result<(), RpmSourceError> {
    if p.arch == "src" || p.arch == "nosrc" {
        return Ok(());
    }
    let missing = if p.name.is_empty() {
        Some("name")
    } else if p.version.is_empty() {
        Some("version")
    } else if p.arch.is_empty() {
        Some("arch")
    } else if p.location_href.is_empty() {
        Some("location")
    } else if p.checksum.hex.is_empty() {
        Some("checksum")
    } else {
        None
    };
    if let Some(field) = missing {
        return Err(bad(format!("package {:?} has no {field}", p.name)));
    }
    out.push(p);
    Ok(())
}

/// Parse a (decompressed) filelists.xml stream.
pub fn parse_filelists<R: BufRead>(input: R) -> Result<Vec<RpmFileList>, RpmSourceError> {
    let mut r = quick_xml::Reader::from_reader(input);
    let mut buf = Vec::with_capacity(4096);
    let mut out = Vec::new();
    let mut seen_root = false;
    let mut cur: Option<RpmFileList> = None;
    let mut in_file = false;
    let mut text = String::new();
    loop {
        let ev = r
            .read_event_into(&mut buf)
            .map_err(|e| xml_err(e, r.buffer_position()))?;
        match &ev {
            Event::Start(e) | Event::Empty(e) => {
                let empty = matches!(ev, Event::Empty(_));
                match e.local_name().as_ref() {
                    "filelists" => seen_root = true,
                    "package" => {
                        cur = Some(RpmFileList {
                            pkgid: attr(e, "pkgid")?
                                .ok_or_else(|| bad("<package> without pkgid"))?
                                .to_ascii_lowercase(),
                            name: attr(e, "name")?.unwrap_or_default(),
                            arch: attr(e, "arch")?.unwrap_or_default(),
                            epoch: 0,
                            version: String::new(),
                            release: String::new(),
                            files: Vec::new(),
                        })
                    }
                    "version" => {
                        if let Some(c) = cur.as_mut() {
                            c.epoch = num_attr(e, "epoch")?.unwrap_or(0);
                            c.version = attr(e, "ver")?.unwrap_or_default();
                            c.release = attr(e, "rel")?.unwrap_or_default();
                        }
                    }
                    "file" if !empty => {
                        in_file = true;
                        text.clear();
                    }
                    _ => {}
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                "file" if in_file => {
                    in_file = false;
                    if let Some(c) = cur.as_mut() {
                        c.files.push(std::mem::take(&mut text));
                    }
                }
                "package" => {
                    if let Some(c) = cur.take() {
                        out.push(c);
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            other => {
                if in_file {
                    push_text(other, &mut text)?;
                }
            }
        }
        buf.clear();
    }
    if !seen_root {
        return Err(bad("no <filelists> element"));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Loading

/// A decompressing reader chosen by magic bytes, else by file suffix.
fn decompressor<'a>(url: &str, data: &'a [u8]) -> Result<Box<dyn Read + 'a>, RpmSourceError> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let kind = Compression::detect(path.as_bytes(), data);
    compress::reader(kind, data, Integrity::Check).map_err(|e| RpmSourceError::Decompress {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

/// Fetch one metadata file and check its size and checksum before anything
/// reads it.
pub(super) fn fetch_data(
    http: &Http,
    base: &str,
    d: &RepoData,
) -> Result<(String, Vec<u8>), RpmSourceError> {
    let url = format!("{base}/{}", d.href.trim_start_matches('/'));
    let data = http.get(&url).map_err(|source| RpmSourceError::Fetch {
        url: url.clone(),
        source,
    })?;
    if let Some(expected) = d.size {
        if data.len() as u64 != expected {
            return Err(RpmSourceError::SizeMismatch {
                url,
                expected,
                actual: data.len() as u64,
            });
        }
    }
    d.checksum.check(&url, &data)?;
    Ok((url, data))
}

/// Decompression errors surface as I/O errors inside the XML reader; name
/// them as such.
pub(super) fn parse_compressed<T>(
    url: &str,
    data: &[u8],
    parse: impl FnOnce(&mut dyn BufRead) -> Result<T, RpmSourceError>,
) -> Result<T, RpmSourceError> {
    let dec = decompressor(url, data)?;
    let mut reader = BufReader::with_capacity(1 << 16, dec);
    parse(&mut reader).map_err(|e| match e {
        RpmSourceError::BadMetadata { reason, .. } if reason.contains("I/O error") => {
            RpmSourceError::Decompress {
                url: url.to_string(),
                reason,
            }
        }
        other => other.at(url),
    })
}

/// SHA-256 of the repository's `repomd.xml` as served now (the snapshot id
/// `load_repo` gives), unverified: only equality with a verified one counts.
pub fn repomd_sha256(http: &Http, base_url: &str) -> Result<String, RpmSourceError> {
    let url = format!("{}/repodata/repomd.xml", base_url.trim_end_matches('/'));
    let body = http
        .get(&url)
        .map_err(|source| RpmSourceError::Fetch { url, source })?;
    Ok(ChecksumKind::Sha256.hex_digest(&body))
}

/// Fetch and verify repomd.xml and primary.xml of `repo`.
pub fn load_repo(
    http: &Http,
    repo: &RpmRepo,
    now: SystemTime,
    reporter: &dyn Reporter,
) -> Result<RpmIndex, RpmSourceError> {
    let base = repo.base_url.trim_end_matches('/');
    let repomd_url = format!("{base}/repodata/repomd.xml");
    if repo.keyring.is_none() && !repo.gpgcheck && !repo.unverified {
        return Err(RpmSourceError::Unverifiable { url: repomd_url });
    }
    let keyring = match &repo.keyring {
        Some(path) => Some(Keyring::load(path)?),
        None => None,
    };
    reporter.stage_start(Stage::Index, 2);
    let repomd = http
        .get(&repomd_url)
        .map_err(|source| RpmSourceError::Fetch {
            url: repomd_url.clone(),
            source,
        })?;
    if let Some(ring) = &keyring {
        let sig_url = format!("{repomd_url}.asc");
        let sig = match http.get(&sig_url) {
            Ok(s) => s,
            Err(e) if e.is_not_found() => return Err(RpmSourceError::Unsigned { url: repomd_url }),
            Err(source) => {
                return Err(RpmSourceError::Fetch {
                    url: sig_url,
                    source,
                })
            }
        };
        ring.verify_detached(&repomd, &sig, now)
            .map_err(|source| RpmSourceError::Signature {
                url: repomd_url.clone(),
                source,
            })?;
    }
    let repomd_sha256 = ChecksumKind::Sha256.hex_digest(&repomd);
    let text = std::str::from_utf8(&repomd).map_err(|_| RpmSourceError::BadMetadata {
        url: repomd_url.clone(),
        reason: "not UTF-8 text".into(),
    })?;
    let md = parse_repomd(text).map_err(|e| e.at(&repomd_url))?;
    reporter.advance(Stage::Index, 1, &repomd_url);

    let primary = md
        .get("primary")
        .ok_or_else(|| RpmSourceError::MissingData {
            url: repomd_url.clone(),
            kind: "primary".into(),
        })?;
    let (primary_url, data) = fetch_data(http, base, primary)?;
    let packages = parse_compressed(&primary_url, &data, |r| parse_primary(r))?;
    reporter.advance(Stage::Index, 1, &primary_url);
    reporter.message(&format!("{} packages in {base}", packages.len()));
    reporter.stage_end(Stage::Index);
    Ok(RpmIndex {
        base_url: base.to_string(),
        packages,
        repomd_sha256,
        revision: md.revision.clone(),
        signed: keyring.is_some(),
        gpgcheck: repo.gpgcheck,
        filelists: md.get("filelists").cloned(),
        groups: md
            .data
            .iter()
            .filter(|d| d.kind == "group" || d.kind.starts_with("group_"))
            .cloned()
            .collect(),
    })
}

/// Fetch filelists.xml of a loaded repository, checked against the verified
/// repomd.xml it came with.
pub fn load_filelists(http: &Http, index: &RpmIndex) -> Result<Vec<RpmFileList>, RpmSourceError> {
    let d = index
        .filelists
        .as_ref()
        .ok_or_else(|| RpmSourceError::MissingData {
            url: format!("{}/repodata/repomd.xml", index.base_url),
            kind: "filelists".into(),
        })?;
    let (url, data) = fetch_data(http, &index.base_url, d)?;
    parse_compressed(&url, &data, |r| parse_filelists(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use crate::unpack::rpm::testrpm;
    use std::process::Command;
    use vzpkg_testkit::signing::TestKey;

    #[test]
    fn repomd_with_old_sha_type_parses() {
        // The shape CentOS 4-era createrepo wrote.
        let text = r#"<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo">
  <data type="other">
    <location href="repodata/other.xml.gz"/>
    <checksum type="sha">0a1b2c3d4e5f60718293a4b5c6d7e8f901234567</checksum>
    <timestamp>1140000000</timestamp>
    <open-checksum type="sha">1111111111111111111111111111111111111111</open-checksum>
  </data>
  <data type="primary">
    <location href="repodata/primary.xml.gz"/>
    <checksum type="sha">ABCDEF0123456789abcdef0123456789abcdef01</checksum>
    <timestamp>1140000001</timestamp>
    <open-checksum type="sha">2222222222222222222222222222222222222222</open-checksum>
  </data>
</repomd>"#;
        let md = parse_repomd(text).unwrap();
        let p = md.get("primary").unwrap();
        assert_eq!(p.href, "repodata/primary.xml.gz");
        assert_eq!(p.checksum.kind, ChecksumKind::Sha1);
        assert_eq!(p.checksum.hex, "abcdef0123456789abcdef0123456789abcdef01");
        assert_eq!(p.size, None);
        assert_eq!(p.timestamp, Some(1140000001));
        assert!(md.get("filelists").is_none());
        assert!(parse_repomd("<other/>").is_err());
        let bad_kind = text.replace("type=\"sha\"", "type=\"crc32\"");
        assert!(matches!(
            parse_repomd(&bad_kind),
            Err(RpmSourceError::UnsupportedChecksum { .. })
        ));
    }

    #[test]
    fn sha1_is_sha1() {
        assert_eq!(
            ChecksumKind::Sha1.hex_digest(b"abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn primary_entities_and_deps() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="2">
<package type="rpm">
  <name>a&amp;b</name><arch>noarch</arch>
  <version epoch="2" ver="1.0" rel="3"/>
  <checksum type="sha256" pkgid="YES">AA</checksum>
  <summary>x &lt; y</summary>
  <size package="10" installed="20" archive="30"/>
  <location xml:base="http://elsewhere/r" href="Packages/a.rpm"/>
  <format>
    <rpm:provides><rpm:entry name="a&amp;b" flags="EQ" epoch="2" ver="1.0" rel="3"/></rpm:provides>
    <rpm:requires><rpm:entry name="/bin/sh" pre="1"/><rpm:entry name="c" flags="GE" epoch="0" ver="1"/></rpm:requires>
    <rpm:recommends><rpm:entry name="ignored"/></rpm:recommends>
    <file>/usr/bin/a&#38;b</file>
  </format>
</package>
<package type="rpm"><name>a</name><arch>src</arch><version epoch="0" ver="1" rel="1"/>
  <checksum type="sha256">bb</checksum><location href="a.src.rpm"/></package>
</metadata>"#;
        let pkgs = parse_primary(xml.as_bytes()).unwrap();
        assert_eq!(pkgs.len(), 1, "source packages are skipped");
        let p = &pkgs[0];
        assert_eq!(p.name, "a&b");
        assert_eq!(p.nevra(), "a&b-2:1.0-3.noarch");
        assert_eq!(p.checksum.hex, "aa");
        assert_eq!(p.url("file:///repo"), "http://elsewhere/r/Packages/a.rpm");
        assert_eq!(p.files, vec!["/usr/bin/a&b".to_string()]);
        assert!(p.has_pre_requires());
        assert_eq!(p.requires.len(), 2);
        assert_eq!(p.requires[1].flags, DepFlags::Ge);
        assert_eq!(p.requires[1].version.as_deref(), Some("1"));
        assert_eq!(p.provides[0].epoch, Some(2));
        let truncated = &xml[..xml.find("</package>").unwrap()];
        assert!(parse_primary(truncated.as_bytes()).is_err());
    }

    struct Repo {
        dir: tempfile::TempDir,
        key: TestKey,
    }

    impl Repo {
        fn base_url(&self) -> String {
            format!("file://{}", self.dir.path().display())
        }

        fn keyring(&self, key: &TestKey) -> PathBuf {
            let p = self.dir.path().join("keyring.gpg");
            std::fs::write(&p, key.public_keyring()).unwrap();
            p
        }

        fn repomd(&self) -> PathBuf {
            self.dir.path().join("repodata/repomd.xml")
        }

        fn sign(&self, key: &TestKey) {
            let data = std::fs::read(self.repomd()).unwrap();
            std::fs::write(
                self.dir.path().join("repodata/repomd.xml.asc"),
                key.sign_detached(&data),
            )
            .unwrap();
        }

        fn repo(&self, keyring: Option<PathBuf>) -> RpmRepo {
            RpmRepo {
                base_url: self.base_url(),
                keyring,
                gpgcheck: true,
                unverified: false,
            }
        }
    }

    /// Two packages and a signed repomd, made by createrepo_c; `None` when
    /// createrepo_c is not installed.
    fn make_repo(extra_args: &[&str]) -> Option<Repo> {
        if Command::new("createrepo_c")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("createrepo_c is not installed; skipping this repository test");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let pkgs = dir.path().join("Packages");
        std::fs::create_dir(&pkgs).unwrap();
        testrpm::write(&mut testrpm::full("hello", "1.0"), &pkgs);
        let mut b = rpm::PackageBuilder::new("libfoo", "2.3", "MIT", "x86_64", "a library");
        b.epoch(1)
            .release("4")
            .with_file_contents("lib", rpm::FileOptions::new("/usr/lib64/libfoo.so.2"))
            .unwrap()
            .provides(rpm::Dependency::eq("libfoo.so.2()(64bit)", ""))
            .conflicts(rpm::Dependency::less("hello", "1.0"))
            .obsoletes(rpm::Dependency::less_eq("oldfoo", "1.0-1"));
        testrpm::write(&mut b, &pkgs);
        let out = Command::new("createrepo_c")
            .args(extra_args)
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let repo = Repo {
            dir,
            key: TestKey::generate("Repo <repo@example.org>"),
        };
        repo.sign(&repo.key);
        Some(repo)
    }

    fn load(repo: &RpmRepo) -> Result<RpmIndex, RpmSourceError> {
        load_repo(&Http::new().unwrap(), repo, SystemTime::now(), &Silent)
    }

    #[test]
    fn signed_repository_loads_with_deps() {
        let Some(r) = make_repo(&[]) else { return };
        let idx = load(&r.repo(Some(r.keyring(&r.key)))).unwrap();
        assert!(idx.signed);
        assert_eq!(idx.packages.len(), 2);
        let hello = idx.packages.iter().find(|p| p.name == "hello").unwrap();
        assert_eq!(hello.evr(), "1.0-1.el9");
        assert_eq!(hello.arch, "x86_64");
        assert_eq!(hello.checksum.kind, ChecksumKind::Sha256);
        let file = r.dir.path().join(&hello.location_href);
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(hello.size, bytes.len() as u64);
        hello.checksum.check("test", &bytes).unwrap();
        assert!(hello.provides.iter().any(|d| d.name == "hello-api"
            && d.flags == DepFlags::Eq
            && d.version.as_deref() == Some("2")));
        let glibc = hello.requires.iter().find(|d| d.name == "glibc").unwrap();
        assert_eq!(
            (glibc.flags, glibc.version.as_deref()),
            (DepFlags::Ge, Some("2.34"))
        );
        assert!(hello.requires.iter().any(|d| d.name == "/bin/sh" && d.pre));
        assert!(hello.files.iter().any(|f| f == "/usr/bin/hello"));
        assert!(hello.files.iter().any(|f| f == "/etc/hello.conf"));

        let foo = idx.packages.iter().find(|p| p.name == "libfoo").unwrap();
        assert_eq!(foo.nevra(), "libfoo-1:2.3-4.x86_64");
        assert_eq!(foo.conflicts[0].flags, DepFlags::Lt);
        assert_eq!(foo.obsoletes[0].name, "oldfoo");
        assert_eq!(foo.obsoletes[0].release.as_deref(), Some("1"));
        assert_eq!(foo.cmp_evr(hello), Ordering::Greater);

        let lists = load_filelists(&Http::new().unwrap(), &idx).unwrap();
        let fl = lists.iter().find(|l| l.name == "libfoo").unwrap();
        assert_eq!(fl.pkgid, foo.checksum.hex);
        assert_eq!(fl.files, vec!["/usr/lib64/libfoo.so.2".to_string()]);
    }

    #[test]
    fn bad_or_missing_repomd_signature_is_refused() {
        let Some(r) = make_repo(&[]) else { return };
        let other = TestKey::generate("Other <other@example.org>");
        r.sign(&other);
        let err = load(&r.repo(Some(r.keyring(&r.key)))).unwrap_err();
        assert!(matches!(err, RpmSourceError::Signature { .. }), "{err}");
        assert!(err.is_verification());

        // Signed correctly, then repomd.xml changed afterwards.
        r.sign(&r.key);
        let mut md = std::fs::read_to_string(r.repomd()).unwrap();
        md = md.replacen("<revision>", "<revision>9", 1);
        std::fs::write(r.repomd(), md).unwrap();
        let err = load(&r.repo(Some(r.keyring(&r.key)))).unwrap_err();
        assert!(matches!(err, RpmSourceError::Signature { .. }), "{err}");

        std::fs::remove_file(r.dir.path().join("repodata/repomd.xml.asc")).unwrap();
        let err = load(&r.repo(Some(r.keyring(&r.key)))).unwrap_err();
        assert!(matches!(err, RpmSourceError::Unsigned { .. }), "{err}");

        // Without a keyring, gpgcheck must be on.
        let mut unsigned = r.repo(None);
        assert!(load(&unsigned).unwrap().packages.len() == 2);
        unsigned.gpgcheck = false;
        let err = load(&unsigned).unwrap_err();
        assert!(matches!(err, RpmSourceError::Unverifiable { .. }), "{err}");
        assert!(err.is_verification());
        // ... unless the recipe asked for exactly that.
        unsigned.unverified = true;
        let idx = load(&unsigned).unwrap();
        assert!(!idx.signed && !idx.gpgcheck);
    }

    #[test]
    fn tampered_primary_is_refused() {
        let Some(r) = make_repo(&[]) else { return };
        let md = parse_repomd(&std::fs::read_to_string(r.repomd()).unwrap()).unwrap();
        let primary = r.dir.path().join(&md.get("primary").unwrap().href);
        let mut bytes = std::fs::read(&primary).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        std::fs::write(&primary, bytes).unwrap();
        let err = load(&r.repo(Some(r.keyring(&r.key)))).unwrap_err();
        assert!(
            matches!(err, RpmSourceError::ChecksumMismatch { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("primary"), "{err}");
    }

    #[test]
    fn sha1_xz_repository_loads() {
        // Old repositories: SHA-1 checksums; also another compression.
        let Some(r) = make_repo(&["-s", "sha1", "--general-compress-type", "xz"]) else {
            return;
        };
        let idx = load(&r.repo(Some(r.keyring(&r.key)))).unwrap();
        assert_eq!(idx.packages.len(), 2);
        assert!(idx
            .packages
            .iter()
            .all(|p| p.checksum.kind == ChecksumKind::Sha1 && p.checksum.hex.len() == 40));
        let md = parse_repomd(&std::fs::read_to_string(r.repomd()).unwrap()).unwrap();
        assert!(md.get("primary").unwrap().href.ends_with(".xz"));
    }
}
