//! `vzpkg`: the template store's front door. Parses the command line,
//! calls the library, prints what it returns and maps errors to vzpkg's
//! exit codes ([`crate::error::exit`]).

use crate::create::{BuildOptions, Paths};
use crate::error::exit;
use crate::progress::{Reporter, Silent};
use crate::recipe::Recipe;
use crate::store::Store;
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;

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
    Create {
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
    },
    /// Rebuild templates whose package set changed upstream (the nightly job).
    /// Exit 0: nothing changed; 11: something was rebuilt; 12: something failed.
    Rebuild {
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
    },
    /// Templates in the store.
    List,
    /// Write a full tree of a template into DIR.
    Checkout { template: String, dir: PathBuf },
    /// A template's layers, sizes, packages and build facts.
    Info { template: String },
    /// Write a template as an OpenVZ template cache (.tar, .tar.gz, .tar.xz, .tar.zst).
    Export {
        template: String,
        /// The cache file; its suffix picks the compression.
        #[arg(short, long)]
        output: PathBuf,
        /// Compression level (zstd 1-19, xz 0-9, gzip 1-9); default: each tool's usual one.
        #[arg(long)]
        level: Option<u32>,
    },
    /// Commit an OpenVZ template cache (gz, bz2, xz, zst or plain tar) as a template.
    Import {
        cache: PathBuf,
        /// The name to give it; default: the file name without its suffix.
        #[arg(long)]
        name: Option<String>,
    },
    /// Write a template as an OCI image: REF is HOST[:PORT]/REPO[:TAG] (a registry),
    /// oci:DIR[:TAG] (an OCI layout) or oci-archive:FILE[:TAG].
    Push {
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
    },
    /// Commit an OCI or Docker image as a template (REF as for push).
    Pull {
        reference: String,
        /// The template name; default: the repository's last part (and tag).
        #[arg(long)]
        name: Option<String>,
        /// OS/ARCH[/VARIANT] to take from a multi-platform image; default linux/this host's.
        #[arg(long)]
        platform: Option<String>,
        #[command(flatten)]
        oci: OciArgs,
    },
    /// Drop a template's name (its data stays until `gc`).
    Rm { name: String },
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
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { 0 };
            let _ = e.print();
            return code;
        }
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

/// The command `cli` names; the exit code on success.
fn run(cli: Cli) -> anyhow::Result<i32> {
    let checkout = crate::layout::find_checkout();
    let root = crate::layout::store_root(cli.root.as_deref(), checkout.as_deref());
    let paths = Paths::under(&root);
    let recipe_dir = checkout
        .as_ref()
        .map(|c| c.join("recipes"))
        .unwrap_or_else(|| root.join("recipes"));
    match cli.command {
        Command::Create {
            recipe,
            mirror,
            jobs,
            locked,
        } => {
            let recipe = Recipe::find(&recipe, &recipe_dir).map_err(crate::Error::from)?;
            let _ = ctrlc::set_handler(crate::cancel::request);
            let options = BuildOptions {
                mirror,
                jobs,
                locked,
                ..BuildOptions::default()
            };
            let reporter = reporter_for(cli.json);
            let result = crate::create::build(&recipe, &paths, &options, reporter.as_ref())
                .map_err(|e| {
                    if crate::cancel::is_requested() {
                        crate::Error::Cancelled(crate::cancel::Cancelled)
                    } else {
                        e
                    }
                })?;
            if cli.json {
                print_ok_json(&result)?;
            } else {
                println!(
                    "{} {} ({} packages, {:.1}s)",
                    result.name, result.template_id, result.packages, result.total_seconds
                );
            }
        }
        Command::Rebuild {
            recipes,
            all,
            if_changed,
            mirror,
            jobs,
            push,
            tls_verify,
        } => {
            let mut names = recipes;
            if all {
                names.extend(crate::recipe::known_recipes(&recipe_dir));
            }
            if names.is_empty() {
                anyhow::bail!("rebuild: name recipes or pass --all");
            }
            let _ = ctrlc::set_handler(crate::cancel::request);
            let options = BuildOptions {
                mirror,
                jobs,
                index_cache: Some(paths.index_cache()),
                ..BuildOptions::default()
            };
            let reporter = reporter_for(cli.json);
            let mut reports = Vec::new();
            for name in names {
                let report = match Recipe::find(&name, &recipe_dir) {
                    Ok(recipe) => crate::rebuild::rebuild(
                        &recipe,
                        &paths,
                        &options,
                        if_changed,
                        reporter.as_ref(),
                    ),
                    Err(e) => crate::rebuild::RebuildReport::failed(&name, &crate::Error::from(e)),
                };
                if !cli.json {
                    print_rebuild(&report);
                }
                reports.push(report);
            }
            let pushed = match &push {
                Some(prefix) => push_rebuilt(
                    &paths,
                    prefix,
                    tls_verify,
                    &mut reports,
                    cli.json,
                    reporter.as_ref(),
                ),
                None => Vec::new(),
            };
            let code = if reports
                .iter()
                .any(|r| r.outcome == crate::rebuild::Outcome::Failed)
            {
                exit::REBUILD_FAILED
            } else if reports
                .iter()
                .any(|r| r.outcome == crate::rebuild::Outcome::Rebuilt)
            {
                exit::REBUILT
            } else {
                0
            };
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"ok": code != exit::REBUILD_FAILED, "exit_code": code, "templates": reports, "pushed": pushed})
                );
            }
            return Ok(code);
        }
        Command::List => {
            let store = Store::open(&paths.store).map_err(crate::Error::from)?;
            let list = store.list().map_err(crate::Error::from)?;
            if cli.json {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                println!(
                    "{:<20} {:<16} {:>9} {:>10}",
                    "NAME", "ID", "PACKAGES", "SIZE"
                );
                for t in list {
                    let names = if t.names.is_empty() {
                        "-".to_string()
                    } else {
                        t.names.join(",")
                    };
                    println!(
                        "{:<20} {:<16} {:>9} {:>10}",
                        names,
                        t.id.get(..16).unwrap_or(&t.id),
                        t.packages,
                        human_bytes(t.bytes)
                    );
                }
            }
        }
        Command::Checkout { template, dir } => {
            let store = Store::open(&paths.store).map_err(crate::Error::from)?;
            store
                .checkout(&template, &dir)
                .map_err(crate::Error::from)
                .with_context(|| format!("checking out {template} into {}", dir.display()))?;
            if cli.json {
                println!("{}", serde_json::json!({"ok": true, "dir": dir}));
            }
        }
        Command::Info { template } => {
            let store = Store::open(&paths.store).map_err(crate::Error::from)?;
            let d = store.info(&template).map_err(crate::Error::from)?;
            if cli.json {
                println!("{}", serde_json::to_string(&d)?);
            } else {
                println!("id:       {}", d.info.id);
                println!("names:    {}", d.info.names.join(", "));
                println!("packages: {}", d.info.packages);
                println!("size:     {}", human_bytes(d.info.bytes));
                if !d.info.unverified.is_empty() {
                    println!(
                        "verified: NO, built unverified from repositories: {}",
                        d.info.unverified.join(", ")
                    );
                }
                println!("layers (bottom first):");
                for l in &d.layers {
                    println!(
                        "  {}  {:>10}  {:>6} files",
                        l.id.get(..16).unwrap_or(&l.id),
                        human_bytes(l.bytes),
                        l.files
                    );
                }
                for (k, v) in &d.facts {
                    println!("{k}: {v}");
                }
            }
        }
        Command::Export {
            template,
            output,
            level,
        } => {
            let store = Store::open(&paths.store).map_err(crate::Error::from)?;
            let mut options = crate::export::ExportOptions::default();
            if let Some(l) = level {
                options.zstd_level = l as i32;
                options.xz_preset = l.min(9);
                options.gzip_level = l.min(9);
                options.bzip2_level = l.clamp(1, 9);
            }
            let t = std::time::Instant::now();
            let s = crate::cache::export(&store, &template, &output, &options)?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "file": output, "entries": s.entries,
                        "tar_bytes": s.uncompressed_bytes, "bytes": s.compressed_bytes,
                        "seconds": t.elapsed().as_secs_f64()})
                );
            } else {
                println!(
                    "{}: {} entries, {} ({} as tar) in {:.1}s",
                    output.display(),
                    s.entries,
                    human_bytes(s.compressed_bytes),
                    human_bytes(s.uncompressed_bytes),
                    t.elapsed().as_secs_f64()
                );
            }
        }
        Command::Import { cache, name } => {
            let store = Store::open(&paths.store).map_err(crate::Error::from)?;
            let name = match name.or_else(|| crate::cache::name_from_file(&cache)) {
                Some(n) => n,
                None => anyhow::bail!(
                    "{}: cannot tell a template name from the file name; pass --name",
                    cache.display()
                ),
            };
            let (id, s) = crate::cache::import(&store, &cache, &name)?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "name": name, "template_id": id, "entries": s.entries, "bytes": s.bytes})
                );
            } else {
                println!("{name} {id} ({} entries)", s.entries);
            }
        }
        Command::Push {
            template,
            reference,
            oci,
            compression,
            no_sbom,
        } => {
            let store = Store::open(&paths.store).map_err(crate::Error::from)?;
            let _ = ctrlc::set_handler(crate::cancel::request);
            let options = crate::oci::PushOptions {
                compression: crate::oci::Compression::parse(&compression).unwrap_or_default(),
                tls_verify: oci.tls_verify,
                jobs: oci.jobs,
                sbom: !no_sbom,
            };
            let reporter = reporter_for(cli.json);
            let r = crate::oci::push(&store, &template, &reference, &options, reporter.as_ref())
                .map_err(crate::Error::from)?;
            if cli.json {
                print_ok_json(&r)?;
            } else {
                println!(
                    "{} {} ({} blobs sent, {} present, {}, {:.1}s)",
                    r.reference,
                    r.digest,
                    r.blobs_pushed,
                    r.blobs_skipped,
                    human_bytes(r.bytes_pushed),
                    r.seconds
                );
            }
        }
        Command::Pull {
            reference,
            name,
            platform,
            oci,
        } => {
            let store = Store::open(&paths.store).map_err(crate::Error::from)?;
            let _ = ctrlc::set_handler(crate::cancel::request);
            let options = crate::oci::PullOptions {
                name,
                tls_verify: oci.tls_verify,
                jobs: oci.jobs,
                platform,
            };
            let reporter = reporter_for(cli.json);
            let r = crate::oci::pull(&store, &reference, &options, reporter.as_ref())
                .map_err(crate::Error::from)?;
            if cli.json {
                print_ok_json(&r)?;
            } else {
                println!(
                    "{} {} ({} layers, {} already here, {} fetched, {:.1}s)",
                    r.name,
                    r.template_id,
                    r.layers,
                    r.layers_present,
                    human_bytes(r.bytes_fetched),
                    r.seconds
                );
            }
        }
        Command::Rm { name } => {
            let store = Store::open(&paths.store).map_err(crate::Error::from)?;
            store.remove_tag(&name).map_err(crate::Error::from)?;
            if cli.json {
                println!("{}", serde_json::json!({"ok": true, "removed": name}));
            }
        }
        Command::Gc => {
            let store = Store::open(&paths.store).map_err(crate::Error::from)?;
            let r = store.gc().map_err(crate::Error::from)?;
            if cli.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "removed {} templates, {} layers, {} objects; freed {}",
                    r.templates,
                    r.layers,
                    r.objects,
                    human_bytes(r.bytes)
                );
            }
        }
        Command::Vzctl { args } => {
            let mut argv = vec![std::ffi::OsString::from("vzctl")];
            argv.extend(args);
            let root = cli.root.clone().or(checkout.clone());
            return Ok(super::vzctl::vzctl_main_with(argv, root));
        }
        Command::Vzquota { args } => {
            let mut argv = vec![std::ffi::OsString::from("vzquota")];
            argv.extend(args);
            return Ok(super::vzquota::vzquota_main(argv));
        }
        Command::Fsck => {
            let store = Store::open(&paths.store).map_err(crate::Error::from)?;
            let r = store.fsck().map_err(crate::Error::from)?;
            if cli.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                for p in &r.problems {
                    println!("{p}");
                }
                println!(
                    "{} objects, {} layers, {} templates, {} tags: {}",
                    r.objects,
                    r.layers,
                    r.templates,
                    r.tags,
                    if r.is_clean() {
                        "clean".to_string()
                    } else {
                        format!("{} problems", r.problems.len())
                    }
                );
            }
            if !r.is_clean() {
                return Ok(exit::STORE);
            }
        }
    }
    Ok(0)
}

/// Bars on a terminal, lines otherwise, nothing under `--json`.
/// A command's result as one JSON object, with `"ok": true` added.
fn print_ok_json(result: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut v = serde_json::to_value(result)?;
    v["ok"] = true.into();
    println!("{v}");
    Ok(())
}

fn reporter_for(json: bool) -> Box<dyn Reporter> {
    if json {
        Box::new(Silent)
    } else if std::io::stderr().is_terminal() {
        Box::new(crate::terminal::Bars::new())
    } else {
        Box::new(crate::terminal::Lines::new())
    }
}

/// `rebuild --push`: push what was rebuilt; a failed push fails its recipe.
fn push_rebuilt(
    paths: &Paths,
    prefix: &str,
    tls_verify: bool,
    reports: &mut [crate::rebuild::RebuildReport],
    json: bool,
    reporter: &dyn Reporter,
) -> Vec<crate::oci::PushReport> {
    use crate::rebuild::Outcome;
    let mut pushed = Vec::new();
    let store = match Store::open(&paths.store) {
        Ok(s) => s,
        Err(e) => {
            for r in reports.iter_mut().filter(|r| r.outcome == Outcome::Rebuilt) {
                r.outcome = Outcome::Failed;
                r.error = Some(format!("push: {e}"));
            }
            return pushed;
        }
    };
    let options = crate::oci::PushOptions {
        tls_verify,
        ..crate::oci::PushOptions::default()
    };
    let prefix = prefix.trim_end_matches('/');
    for r in reports.iter_mut().filter(|r| r.outcome == Outcome::Rebuilt) {
        let Some(id) = r.new_id.clone() else { continue };
        let short = id.get(..16).unwrap_or(&id);
        for tag in ["latest", short] {
            let to = format!("{prefix}/{}:{tag}", r.name);
            match crate::oci::push(&store, &id, &to, &options, reporter) {
                Ok(p) => {
                    if !json {
                        println!("{}: pushed {} {}", r.name, p.reference, p.digest);
                    }
                    pushed.push(p);
                }
                Err(e) => {
                    if !json {
                        println!("{}: push to {to} failed: {e}", r.name);
                    }
                    r.outcome = Outcome::Failed;
                    r.error = Some(format!("push to {to}: {e}"));
                    break;
                }
            }
        }
    }
    pushed
}

fn print_rebuild(r: &crate::rebuild::RebuildReport) {
    use crate::rebuild::Outcome;
    let short = |id: &Option<String>| {
        id.as_deref()
            .map(|i| i.get(..16).unwrap_or(i).to_string())
            .unwrap_or_else(|| "-".into())
    };
    match r.outcome {
        Outcome::Unchanged => println!(
            "{}: unchanged ({}) in {:.2}s",
            r.name,
            short(&r.old_id),
            r.seconds
        ),
        Outcome::Rebuilt => {
            println!(
                "{}: rebuilt {} -> {} in {:.1}s",
                r.name,
                short(&r.old_id),
                short(&r.new_id),
                r.seconds
            );
            for a in &r.added {
                println!("  + {a}");
            }
            for u in &r.upgraded {
                println!("  ~ {u}");
            }
            for d in &r.removed {
                println!("  - {d}");
            }
        }
        Outcome::Failed => println!(
            "{}: failed: {}",
            r.name,
            r.error.as_deref().unwrap_or("unknown error")
        ),
    }
}

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
