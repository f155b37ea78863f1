//! `vzpkg`: the template store's front door. Parses the command line,
//! calls the library, prints what it returns and maps errors to vzpkg's
//! exit codes ([`crate::error::exit`]).

use crate::create::Paths;
use crate::error::exit;
use crate::progress::{Reporter, Silent};
use crate::store::Store;
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;

mod build;
mod store;
mod transfer;

#[derive(Parser)]
#[command(
    name = "vzpkg",
    version,
    about = "Build OS templates for VPS hosting from distribution packages"
)]
struct Cli {
    /// Where the store (ROOT/templates) and caches (ROOT/cache) live.
    /// Default: $VZPKG_ROOT, else the checkout vzpkg runs from, else /var/lib/vzpkg.
    #[arg(long, global = true, env = "VZPKG_ROOT")]
    root: Option<PathBuf>,
    /// Print one JSON result on stdout instead of progress.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a template from a recipe (a name in recipes/ or a .toml path).
    Create(CreateArgs),
    /// Rebuild templates whose package set changed upstream (the nightly job).
    /// Exit 0: nothing changed; 11: something was rebuilt; 12: something failed.
    Rebuild(RebuildArgs),
    /// Templates in the store.
    List,
    /// Write a full tree of a template into DIR.
    Checkout(CheckoutArgs),
    /// A template's layers, sizes, packages and build facts.
    Info(InfoArgs),
    /// Write a template as an OpenVZ template cache (.tar, .tar.gz, .tar.xz, .tar.zst).
    Export(ExportArgs),
    /// Commit an OpenVZ template cache (gz, bz2, xz, zst or plain tar) as a template.
    Import(ImportArgs),
    /// Write a template as an OCI image: REF is HOST[:PORT]/REPO[:TAG] (a registry),
    /// oci:DIR[:TAG] (an OCI layout) or oci-archive:FILE[:TAG].
    Push(PushArgs),
    /// Commit an OCI or Docker image as a template (REF as for push).
    Pull(PullArgs),
    /// Drop a template's name (its data stays until `gc`).
    Rm(RmArgs),
    /// Remove what no name reaches, and say how much was freed.
    Gc,
    /// Check every object's content and every layer against its manifest.
    Fsck,
    /// The VPS runtime, OpenVZ's way: `vzpkg vzctl create 101 --ostemplate debian-12`, ...
    /// (the binary called as `vzctl` does the same).
    #[command(alias = "vps", disable_help_flag = true)]
    Vzctl {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Disk quota, OpenVZ's way: `vzpkg vzquota stat 101`, ... (the binary
    /// called as `vzquota` does the same).
    #[command(disable_help_flag = true)]
    Vzquota {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

#[derive(clap::Args)]
struct CreateArgs {
    recipe: String,
    /// Mirror base URL, instead of the recipe's or the host's apt configuration.
    #[arg(long)]
    mirror: Option<String>,
    /// Parallel downloads.
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    /// Build exactly the packages in the recipe's lock file (NAME.lock beside it).
    #[arg(long)]
    locked: bool,
}

#[derive(clap::Args)]
struct RebuildArgs {
    /// Recipes to check (names in recipes/ or .toml paths).
    recipes: Vec<String>,
    /// Every recipe in recipes/.
    #[arg(long)]
    all: bool,
    /// Do nothing for a recipe whose resolved packages equal its lock.
    #[arg(long)]
    if_changed: bool,
    #[arg(long)]
    mirror: Option<String>,
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    /// OCI: push each rebuilt template (and nothing else) to
    /// REF-PREFIX/NAME:latest and REF-PREFIX/NAME:<first 16 digits of its id>.
    #[arg(long, value_name = "REF-PREFIX")]
    push: Option<String>,
    /// OCI: require HTTPS for --push (false: plain HTTP).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tls_verify: bool,
}

#[derive(clap::Args)]
struct CheckoutArgs {
    template: String,
    dir: PathBuf,
}

#[derive(clap::Args)]
struct InfoArgs {
    template: String,
}

#[derive(clap::Args)]
struct ExportArgs {
    template: String,
    /// The cache file; its suffix picks the compression.
    #[arg(short, long)]
    output: PathBuf,
    /// Compression level (zstd 1-19, xz 0-9, gzip 1-9); default: each tool's usual one.
    #[arg(long)]
    level: Option<u32>,
}

#[derive(clap::Args)]
struct ImportArgs {
    cache: PathBuf,
    /// The name to give it; default: the file name without its suffix.
    #[arg(long)]
    name: Option<String>,
}

#[derive(clap::Args)]
struct PushArgs {
    template: String,
    reference: String,
    #[command(flatten)]
    oci: OciArgs,
    /// Layer compression: zstd, or gzip for older clients.
    #[arg(long, default_value = "zstd", value_parser = ["zstd", "gzip"])]
    compression: String,
    /// Do not attach an SPDX SBOM of the template's packages.
    #[arg(long)]
    no_sbom: bool,
}

#[derive(clap::Args)]
struct PullArgs {
    reference: String,
    /// The template name; default: the repository's last part (and tag).
    #[arg(long)]
    name: Option<String>,
    /// OS/ARCH[/VARIANT] to take from a multi-platform image; default linux/this host's.
    #[arg(long)]
    platform: Option<String>,
    #[command(flatten)]
    oci: OciArgs,
}

#[derive(clap::Args)]
struct RmArgs {
    name: String,
}

/// Options shared by push and pull (image transfer).
#[derive(clap::Args)]
struct OciArgs {
    /// Require HTTPS with a verified certificate (false: plain HTTP, for a local registry).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tls_verify: bool,
    /// Blobs transferred at once.
    #[arg(long, default_value_t = 4)]
    jobs: usize,
}

/// Run vzpkg on `args` (`args[0]` is the program name); its exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let cli: Cli = match crate::cli::parse_or_exit(args, exit::USAGE) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let json = cli.json;
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let code = e
                .downcast_ref::<crate::Error>()
                .map_or(exit::FAILURE, |e| e.exit_code());
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "error": format!("{e:#}"), "exit_code": code})
                );
            }
            eprintln!("vzpkg: error: {e:#}");
            code
        }
    }
}

/// What every command needs: where the store and recipes are, and how to print.
struct Ctx {
    paths: Paths,
    recipe_dir: PathBuf,
    json: bool,
}

impl Ctx {
    fn store(&self) -> anyhow::Result<Store> {
        Ok(Store::open(&self.paths.store).map_err(crate::Error::from)?)
    }

    /// Bars on a terminal, lines otherwise, nothing under `--json`.
    fn reporter(&self) -> Box<dyn Reporter> {
        if self.json {
            Box::new(Silent)
        } else if std::io::stderr().is_terminal() {
            Box::new(crate::terminal::Bars::new())
        } else {
            Box::new(crate::terminal::Lines::new())
        }
    }
}

/// The command `cli` names; the exit code on success.
fn run(cli: Cli) -> anyhow::Result<i32> {
    let checkout = crate::layout::find_checkout();
    let root = crate::layout::store_root(cli.root.as_deref(), checkout.as_deref());
    let ctx = Ctx {
        paths: Paths::under(&root),
        recipe_dir: checkout
            .as_ref()
            .map(|c| c.join("recipes"))
            .unwrap_or_else(|| root.join("recipes")),
        json: cli.json,
    };
    match cli.command {
        Command::Create(a) => build::create(&ctx, a),
        Command::Rebuild(a) => build::rebuild(&ctx, a),
        Command::List => store::list(&ctx),
        Command::Checkout(a) => store::checkout(&ctx, a),
        Command::Info(a) => store::info(&ctx, a),
        Command::Rm(a) => store::rm(&ctx, a),
        Command::Gc => store::gc(&ctx),
        Command::Fsck => store::fsck(&ctx),
        Command::Export(a) => transfer::export(&ctx, a),
        Command::Import(a) => transfer::import(&ctx, a),
        Command::Push(a) => transfer::push(&ctx, a),
        Command::Pull(a) => transfer::pull(&ctx, a),
        Command::Vzctl { args } => {
            let mut argv = vec![OsString::from("vzctl")];
            argv.extend(args);
            let root = cli.root.or(checkout);
            Ok(super::vzctl::vzctl_main_with(argv, root))
        }
        Command::Vzquota { args } => {
            let mut argv = vec![OsString::from("vzquota")];
            argv.extend(args);
            Ok(super::vzquota::vzquota_main(argv))
        }
    }
}

/// A command's result as one JSON object, with `"ok": true` added.
fn print_ok_json(result: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut v = serde_json::to_value(result)?;
    v["ok"] = true.into();
    println!("{v}");
    Ok(())
}

/// `n` bytes in binary units, as the tables print them.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
