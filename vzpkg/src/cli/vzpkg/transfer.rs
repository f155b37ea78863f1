//! Templates in and out of the store: OpenVZ template caches (export,
//! import) and OCI images (push, pull).

use super::{human_bytes, print_ok_json, Ctx, ExportArgs, ImportArgs, PullArgs, PushArgs};

pub(super) fn export(ctx: &Ctx, a: ExportArgs) -> anyhow::Result<i32> {
    let store = ctx.store()?;
    let mut options = crate::export::ExportOptions::default();
    if let Some(l) = a.level {
        options.zstd_level = l as i32;
        options.xz_preset = l.min(9);
        options.gzip_level = l.min(9);
        options.bzip2_level = l.clamp(1, 9);
    }
    let t = std::time::Instant::now();
    let s = crate::cache::export(&store, &a.template, &a.output, &options)?;
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({"ok": true, "file": a.output, "entries": s.entries,
                "tar_bytes": s.uncompressed_bytes, "bytes": s.compressed_bytes,
                "seconds": t.elapsed().as_secs_f64()})
        );
    } else {
        println!(
            "{}: {} entries, {} ({} as tar) in {:.1}s",
            a.output.display(),
            s.entries,
            human_bytes(s.compressed_bytes),
            human_bytes(s.uncompressed_bytes),
            t.elapsed().as_secs_f64()
        );
    }
    Ok(0)
}

pub(super) fn import(ctx: &Ctx, a: ImportArgs) -> anyhow::Result<i32> {
    let store = ctx.store()?;
    let Some(name) = a.name.or_else(|| crate::cache::name_from_file(&a.cache)) else {
        anyhow::bail!(
            "{}: cannot tell a template name from the file name; pass --name",
            a.cache.display()
        );
    };
    let (id, s) = crate::cache::import(&store, &a.cache, &name)?;
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({"ok": true, "name": name, "template_id": id, "entries": s.entries, "bytes": s.bytes})
        );
    } else {
        println!("{name} {id} ({} entries)", s.entries);
    }
    Ok(0)
}

pub(super) fn push(ctx: &Ctx, a: PushArgs) -> anyhow::Result<i32> {
    let store = ctx.store()?;
    let _ = ctrlc::set_handler(crate::cancel::request);
    let options = crate::oci::PushOptions {
        compression: crate::oci::Compression::parse(&a.compression).unwrap_or_default(),
        tls_verify: a.oci.tls_verify,
        jobs: a.oci.jobs,
        sbom: !a.no_sbom,
    };
    let reporter = ctx.reporter();
    let r = crate::oci::push(
        &store,
        &a.template,
        &a.reference,
        &options,
        reporter.as_ref(),
    )
    .map_err(crate::Error::from)?;
    if ctx.json {
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
    Ok(0)
}

pub(super) fn pull(ctx: &Ctx, a: PullArgs) -> anyhow::Result<i32> {
    let store = ctx.store()?;
    let _ = ctrlc::set_handler(crate::cancel::request);
    let options = crate::oci::PullOptions {
        name: a.name,
        tls_verify: a.oci.tls_verify,
        jobs: a.oci.jobs,
        platform: a.platform,
    };
    let reporter = ctx.reporter();
    let r = crate::oci::pull(&store, &a.reference, &options, reporter.as_ref())
        .map_err(crate::Error::from)?;
    if ctx.json {
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
    Ok(0)
}
