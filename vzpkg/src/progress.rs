//! Progress reporting: the library calls a `Reporter`; how it is shown (bars on
//! a terminal, plain lines otherwise, nothing for `--json`) is the binary's job.

/// The stages a build goes through, in order; their names are what users see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Index,
    Resolve,
    Download,
    Unpack,
    Configure,
    Commit,
    /// Sending blobs to an image registry or layout (`push`).
    Upload,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Index => "index",
            Stage::Resolve => "resolve",
            Stage::Download => "download",
            Stage::Unpack => "unpack",
            Stage::Configure => "configure",
            Stage::Commit => "commit",
            Stage::Upload => "upload",
        }
    }
}

/// Called from worker threads: implementations must be cheap and thread-safe.
pub trait Reporter: Send + Sync {
    /// A stage starts; `total` is in the stage's unit (bytes for download, items otherwise).
    fn stage_start(&self, stage: Stage, total: u64);
    /// `delta` more units done; `what` names the item (a package, a file).
    fn advance(&self, stage: Stage, delta: u64, what: &str);
    fn stage_end(&self, stage: Stage);
    /// A line worth telling the user (a retry, a skipped step).
    fn message(&self, text: &str);
    /// Something the user asked for that the build leaves out: on stderr
    /// whatever the reporter, `--json` included (its output is stdout).
    fn warn(&self, text: &str) {
        eprintln!("vzpkg: warning: {text}");
    }
}

/// Reports nothing; for tests and `--json`.
pub struct Silent;

impl Reporter for Silent {
    fn stage_start(&self, _: Stage, _: u64) {}
    fn advance(&self, _: Stage, _: u64, _: &str) {}
    fn stage_end(&self, _: Stage) {}
    fn message(&self, _: &str) {}
}
