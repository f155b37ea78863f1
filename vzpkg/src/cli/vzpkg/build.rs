//! `create` and `rebuild`: recipes into templates, and the nightly job's
//! report and exit policy.

use super::{print_ok_json, CreateArgs, Ctx, RebuildArgs};
use crate::create::BuildOptions;
use crate::error::exit;
use crate::progress::Reporter;
use crate::rebuild::{Outcome, RebuildReport};
use crate::recipe::Recipe;
use crate::store::Store;

pub(super) fn create(ctx: &Ctx, a: CreateArgs) -> anyhow::Result<i32> {
    let recipe = Recipe::find(&a.recipe, &ctx.recipe_dir).map_err(crate::Error::from)?;
    let _ = ctrlc::set_handler(crate::cancel::request);
    let options = BuildOptions {
        mirror: a.mirror,
        jobs: a.jobs,
        locked: a.locked,
        ..BuildOptions::default()
    };
    let reporter = ctx.reporter();
    let result =
        crate::create::build(&recipe, &ctx.paths, &options, reporter.as_ref()).map_err(|e| {
            // A build stopped by Ctrl-C reports the cancel, not what the cancel broke.
            if crate::cancel::is_requested() {
                crate::Error::Cancelled(crate::cancel::Cancelled)
            } else {
                e
            }
        })?;
    if ctx.json {
        print_ok_json(&result)?;
    } else {
        println!(
            "{} {} ({} packages, {:.1}s)",
            result.name, result.template_id, result.packages, result.total_seconds
        );
    }
    Ok(0)
}

/// Exit 0: nothing changed; `REBUILT`: something was rebuilt;
/// `REBUILD_FAILED`: something failed (a failed push fails its recipe).
pub(super) fn rebuild(ctx: &Ctx, a: RebuildArgs) -> anyhow::Result<i32> {
    let mut names = a.recipes;
    if a.all {
        names.extend(crate::recipe::known_recipes(&ctx.recipe_dir));
    }
    if names.is_empty() {
        anyhow::bail!("rebuild: name recipes or pass --all");
    }
    let _ = ctrlc::set_handler(crate::cancel::request);
    let options = BuildOptions {
        mirror: a.mirror,
        jobs: a.jobs,
        index_cache: Some(ctx.paths.index_cache()),
        ..BuildOptions::default()
    };
    let reporter = ctx.reporter();
    let mut reports = Vec::new();
    for name in names {
        let report = match Recipe::find(&name, &ctx.recipe_dir) {
            Ok(recipe) => crate::rebuild::rebuild(
                &recipe,
                &ctx.paths,
                &options,
                a.if_changed,
                reporter.as_ref(),
            ),
            Err(e) => RebuildReport::failed(&name, &crate::Error::from(e)),
        };
        if !ctx.json {
            print_rebuild(&report);
        }
        reports.push(report);
    }
    let pushed = match &a.push {
        Some(prefix) => push_rebuilt(ctx, prefix, a.tls_verify, &mut reports, reporter.as_ref()),
        None => Vec::new(),
    };
    let code = if reports.iter().any(|r| r.outcome == Outcome::Failed) {
        exit::REBUILD_FAILED
    } else if reports.iter().any(|r| r.outcome == Outcome::Rebuilt) {
        exit::REBUILT
    } else {
        0
    };
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({"ok": code != exit::REBUILD_FAILED, "exit_code": code, "templates": reports, "pushed": pushed})
        );
    }
    Ok(code)
}

/// `rebuild --push`: push what was rebuilt; a failed push fails its recipe.
fn push_rebuilt(
    ctx: &Ctx,
    prefix: &str,
    tls_verify: bool,
    reports: &mut [RebuildReport],
    reporter: &dyn Reporter,
) -> Vec<crate::oci::PushReport> {
    let mut pushed = Vec::new();
    let store = match Store::open(&ctx.paths.store) {
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
                    if !ctx.json {
                        println!("{}: pushed {} {}", r.name, p.reference, p.digest);
                    }
                    pushed.push(p);
                }
                Err(e) => {
                    if !ctx.json {
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

fn print_rebuild(r: &RebuildReport) {
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
