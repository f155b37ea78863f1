//! The nightly job: for each recipe, read the signed index and resolve; when
//! the package set equals the lock and the template is in the store, do
//! nothing. Otherwise build, write the new lock, and report what changed.

use crate::create::{BuildOptions, Paths, Plan};
use crate::lock::Lock;
use crate::progress::Reporter;
use crate::recipe::Recipe;
use crate::store::{LockedPackage, Store};
use crate::Error;
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Unchanged,
    Rebuilt,
    Failed,
}

/// One recipe's result, as `rebuild --json` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RebuildReport {
    pub name: String,
    pub outcome: Outcome,
    pub old_id: Option<String>,
    pub new_id: Option<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// `name old -> new`.
    pub upgraded: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub exit_code: i32,
    pub seconds: f64,
}

impl RebuildReport {
    /// A recipe that could not even be read.
    pub fn failed(name: &str, e: &Error) -> RebuildReport {
        RebuildReport {
            name: name.to_string(),
            outcome: Outcome::Failed,
            old_id: None,
            new_id: None,
            added: Vec::new(),
            removed: Vec::new(),
            upgraded: Vec::new(),
            error: Some(error_chain(e)),
            exit_code: e.exit_code(),
            seconds: 0.0,
        }
    }
}

/// Rebuild one recipe; with `if_changed`, only when its resolved package set
/// differs from its lock (or the store lacks the template).
pub fn rebuild(
    recipe: &Recipe,
    paths: &Paths,
    options: &BuildOptions,
    if_changed: bool,
    reporter: &dyn Reporter,
) -> RebuildReport {
    let started = Instant::now();
    let mut report = RebuildReport {
        name: recipe.name.clone(),
        outcome: Outcome::Failed,
        old_id: None,
        new_id: None,
        added: Vec::new(),
        removed: Vec::new(),
        upgraded: Vec::new(),
        error: None,
        exit_code: 0,
        seconds: 0.0,
    };
    if let Err(e) = rebuild_inner(recipe, paths, options, if_changed, reporter, &mut report) {
        report.outcome = Outcome::Failed;
        report.exit_code = e.exit_code();
        report.error = Some(error_chain(&e));
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

fn rebuild_inner(
    recipe: &Recipe,
    paths: &Paths,
    options: &BuildOptions,
    if_changed: bool,
    reporter: &dyn Reporter,
    report: &mut RebuildReport,
) -> Result<(), Error> {
    let started = Instant::now();
    let store = Store::open(&paths.store)?;
    report.old_id = store.resolve(&recipe.name).ok();
    let lock = Lock::read(&crate::lock::lock_path(&recipe.path))?;
    // A changed recipe (post commands, volatile list) changes the tree too.
    let same_recipe = store
        .info(&recipe.name)
        .is_ok_and(|d| d.recipe == recipe.text);
    let fresh = if_changed && same_recipe && report.old_id.is_some();
    let (before, locked_index) = match lock {
        Some(l) => (l.packages, Some(l.index.inrelease_sha256)),
        None => (Vec::new(), None),
    };
    // The cheapest no-op: the signed index is byte for byte the one the lock
    // was resolved from, so nothing below it changed either.
    let snapshot_now = || crate::create::snapshot_now(recipe, options);
    if let (true, Some(locked_index)) = (fresh, &locked_index) {
        if snapshot_now()? == *locked_index {
            report.outcome = Outcome::Unchanged;
            report.new_id = report.old_id.clone();
            return Ok(());
        }
    }
    // Else resolve (cheap: nothing is downloaded) and compare with the lock.
    let unchanged = |now: &[LockedPackage], report: &mut RebuildReport| {
        diff(&before, now, report);
        let same = fresh && before == now;
        if same {
            report.outcome = Outcome::Unchanged;
            report.new_id = report.old_id.clone();
        }
        same
    };
    let plan = Plan::new(recipe, paths, options, reporter)?;
    if unchanged(&plan.locked(), report) {
        return Ok(());
    }
    let result = plan.build(recipe, paths, options, started, reporter)?;
    report.new_id = Some(result.template_id);
    report.outcome = Outcome::Rebuilt;
    Ok(())
}

/// Added, removed and upgraded packages between two locks.
fn diff(before: &[LockedPackage], after: &[LockedPackage], report: &mut RebuildReport) {
    let key = |p: &LockedPackage| (p.name.clone(), p.architecture.clone());
    let old: BTreeMap<_, _> = before.iter().map(|p| (key(p), p)).collect();
    let new: BTreeMap<_, _> = after.iter().map(|p| (key(p), p)).collect();
    for (k, p) in &new {
        match old.get(k) {
            None => report.added.push(format!("{} {}", p.name, p.version)),
            Some(o) if o.version != p.version || o.sha256 != p.sha256 => report
                .upgraded
                .push(format!("{} {} -> {}", p.name, o.version, p.version)),
            Some(_) => {}
        }
    }
    for (k, p) in &old {
        if !new.contains_key(k) {
            report.removed.push(format!("{} {}", p.name, p.version));
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, version: &str) -> LockedPackage {
        LockedPackage {
            name: name.into(),
            version: version.into(),
            architecture: "amd64".into(),
            sha256: format!("{name}{version}"),
        }
    }

    #[test]
    fn diff_names_added_removed_upgraded() {
        let mut r = rebuild_report();
        diff(
            &[p("a", "1"), p("b", "1")],
            &[p("a", "2"), p("c", "1")],
            &mut r,
        );
        assert_eq!(r.added, ["c 1"]);
        assert_eq!(r.removed, ["b 1"]);
        assert_eq!(r.upgraded, ["a 1 -> 2"]);
    }

    fn rebuild_report() -> RebuildReport {
        RebuildReport {
            name: "x".into(),
            outcome: Outcome::Failed,
            old_id: None,
            new_id: None,
            added: vec![],
            removed: vec![],
            upgraded: vec![],
            error: None,
            exit_code: 0,
            seconds: 0.0,
        }
    }
}
