//! What the Debian and RPM configure stages share: the options, the
//! sandbox scripts run in, the recipe's post commands and how failures
//! are told.

use crate::cancel::Cancelled;
use crate::progress::{Reporter, Stage};
use crate::sandbox::{InitMode, RunOptions, Sandbox, SandboxError};
use std::io;
use std::path::{Path, PathBuf};

/// Lines of a failing script's or command's output kept in the error.
pub(super) const TAIL_LINES: usize = 30;

#[derive(Debug, Clone, Default)]
pub struct ConfigureOptions {
    /// Shell commands from the recipe, run inside the tree after all packages.
    pub post_commands: Vec<String>,
    /// Hostname seen by scripts inside the tree.
    pub hostname: String,
    /// `SOURCE_DATE_EPOCH` for the scripts, so tools that honour it
    /// (shadow's password dates, generated files) give the same bytes.
    pub source_date_epoch: Option<i64>,
}

pub(super) fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exit code {c}"),
        None => "killed by a signal".into(),
    }
}

/// True when a failing command's output says the file system is full.
pub(super) fn output_is_disk_full(output_tail: &str) -> bool {
    output_tail.contains("No space left on device")
}

pub(super) fn io_is_disk_full(source: &io::Error) -> bool {
    source.raw_os_error() == Some(libc::ENOSPC)
}

/// The error variants both configure stages have, so the shared code can
/// build either module's error.
pub(super) trait Failure: From<Cancelled> {
    fn io(action: &'static str, path: PathBuf, source: io::Error) -> Self;
    fn post_command(command: String, code: Option<i32>, output_tail: String) -> Self;
    fn post_command_sandbox(command: String, source: Box<SandboxError>) -> Self;

    /// For `map_err`: an I/O error while doing `action` to `path`.
    fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::io(action, path, source)
    }
}

/// Both modules' errors name these variants alike, so one impl serves them.
macro_rules! impl_failure {
    ($error:ident) => {
        impl $crate::configure::common::Failure for $error {
            fn io(action: &'static str, path: PathBuf, source: io::Error) -> Self {
                $error::Io {
                    action,
                    path,
                    source,
                }
            }

            fn post_command(command: String, code: Option<i32>, output_tail: String) -> Self {
                $error::PostCommand {
                    command,
                    code,
                    output_tail,
                }
            }

            fn post_command_sandbox(command: String, source: Box<SandboxError>) -> Self {
                $error::PostCommandSandbox { command, source }
            }
        }
    };
}
pub(super) use impl_failure;

/// `(name, value)` pairs as the sandbox's environment.
pub(super) fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The sandbox scripts run in: `env`, then `SOURCE_DATE_EPOCH` if set.
pub(super) fn sandbox(
    root: &Path,
    options: &ConfigureOptions,
    env: Vec<(String, String)>,
) -> Sandbox {
    let mut sandbox = Sandbox::new(root);
    sandbox.hostname = if options.hostname.is_empty() {
        "localhost".into()
    } else {
        options.hostname.clone()
    };
    sandbox.env = env;
    // Scripts must see a build chroot (`ischroot`), not a booted system.
    sandbox.init = InitMode::Chroot;
    if let Some(epoch) = options.source_date_epoch {
        sandbox
            .env
            .push(("SOURCE_DATE_EPOCH".into(), epoch.to_string()));
    }
    sandbox
}

/// The recipe's commands, each through `/bin/sh -c`, one progress step each.
pub(super) fn run_post_commands<E: Failure>(
    sandbox: &Sandbox,
    commands: &[String],
    reporter: &dyn Reporter,
) -> Result<(), E> {
    for command in commands {
        crate::cancel::check()?;
        let out = sandbox
            .run(&["/bin/sh", "-c", command], &RunOptions::default())
            .map_err(|source| E::post_command_sandbox(command.clone(), Box::new(source)))?;
        if !out.success() {
            // A command killed by Ctrl-C is a cancellation, not a failure.
            crate::cancel::check()?;
            return Err(E::post_command(
                command.clone(),
                out.status.code(),
                out.tail(TAIL_LINES),
            ));
        }
        reporter.advance(Stage::Configure, 1, command);
    }
    Ok(())
}
