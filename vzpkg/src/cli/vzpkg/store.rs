//! Commands over the store itself: list, checkout, info, rm, gc, fsck.

use super::{human_bytes, CheckoutArgs, Ctx, InfoArgs, RmArgs};
use crate::error::exit;
use anyhow::Context;

pub(super) fn list(ctx: &Ctx) -> anyhow::Result<i32> {
    let list = ctx.store()?.list().map_err(crate::Error::from)?;
    if ctx.json {
        println!("{}", serde_json::to_string(&list)?);
        return Ok(0);
    }
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
    Ok(0)
}

pub(super) fn checkout(ctx: &Ctx, a: CheckoutArgs) -> anyhow::Result<i32> {
    ctx.store()?
        .checkout(&a.template, &a.dir)
        .map_err(crate::Error::from)
        .with_context(|| format!("checking out {} into {}", a.template, a.dir.display()))?;
    if ctx.json {
        println!("{}", serde_json::json!({"ok": true, "dir": a.dir}));
    }
    Ok(0)
}

pub(super) fn info(ctx: &Ctx, a: InfoArgs) -> anyhow::Result<i32> {
    let d = ctx.store()?.info(&a.template).map_err(crate::Error::from)?;
    if ctx.json {
        println!("{}", serde_json::to_string(&d)?);
        return Ok(0);
    }
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
    Ok(0)
}

pub(super) fn rm(ctx: &Ctx, a: RmArgs) -> anyhow::Result<i32> {
    ctx.store()?
        .remove_tag(&a.name)
        .map_err(crate::Error::from)?;
    if ctx.json {
        println!("{}", serde_json::json!({"ok": true, "removed": a.name}));
    }
    Ok(0)
}

pub(super) fn gc(ctx: &Ctx) -> anyhow::Result<i32> {
    let r = ctx.store()?.gc().map_err(crate::Error::from)?;
    if ctx.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "removed {} templates, {} layers, {} objects, {} cached push blobs; freed {}",
            r.templates,
            r.layers,
            r.objects,
            r.blobs,
            human_bytes(r.bytes)
        );
    }
    Ok(0)
}

/// Exit `STORE` when anything is wrong, after listing every problem.
pub(super) fn fsck(ctx: &Ctx) -> anyhow::Result<i32> {
    let r = ctx.store()?.fsck().map_err(crate::Error::from)?;
    if ctx.json {
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
    Ok(if r.is_clean() { 0 } else { exit::STORE })
}
