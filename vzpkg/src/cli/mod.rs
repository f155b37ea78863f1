//! The front doors: one binary, three tools. Each door is a thin clap
//! layer over the library that ends in one map from errors to its exit
//! codes. Nothing below `cli` imports from it.
//!
//! - [`vzpkg`]: the template store (`vzpkg create|list|...`);
//! - [`vzctl`]: the VPS runtime, OpenVZ's `vzctl` (also `vzpkg vzctl`);
//! - [`vzquota`]: disk quota, OpenVZ's `vzquota` (also `vzpkg vzquota`).

pub mod vzctl;
pub mod vzpkg;
pub mod vzquota;

use std::ffi::{OsStr, OsString};
use std::path::Path;

/// `args` parsed as `C`, or the exit code once clap has had its say: help
/// and `--version` print to stdout and give 0, a mistake prints to stderr
/// and gives the door's own `usage` code. (vzquota writes into captured
/// streams and tells bad values apart, so it keeps its own.)
pub(crate) fn parse_or_exit<C: clap::Parser>(args: Vec<OsString>, usage: i32) -> Result<C, i32> {
    C::try_parse_from(args).map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            usage
        } else {
            0
        }
    })
}

/// The door `args[0]` names (`vzctl`, `vzquota`), else vzpkg's; its exit
/// code.
pub fn main(args: Vec<OsString>) -> i32 {
    let called = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(OsStr::to_os_string);
    match called.as_deref().and_then(OsStr::to_str) {
        Some("vzctl") => vzctl::vzctl_main(args),
        Some("vzquota") => vzquota::vzquota_main(args),
        _ => vzpkg::main(args),
    }
}
