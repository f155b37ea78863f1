//! RPM resolution over Requires (plain, `Requires(pre)`, file and rich
//! boolean dependencies), Provides, Conflicts and Obsoletes, with multilib
//! architecture choice.
//!
//! Like the Debian resolver, the index goes to the `resolvo` SAT solver:
//! each package name (per architecture class: native or multilib) is a
//! solver name whose candidates are its versions, one of which may be chosen.
//! A capability (a Provides, a package name, a file) is not a solver name of
//! its own here: a requirement becomes the ordered union of "one of these
//! packages" sets on the names of its providers. The Debian resolver's
//! stand-ins are only chosen when something requires them, so they cannot
//! tell whether a capability is installed; rich dependencies (`(a if b)`)
//! need exactly that, as solver conditions over the providers of `b`.
//! Rich dependencies are brought into conjunctive normal form; a clause's
//! negated atoms become the condition of its requirement.

use crate::source::comps::Comps;
use crate::source::rpm::{RpmFileList, RpmPackage};
use resolvo::{Problem, Solver, UnsolvableOrCancelled};
use std::collections::HashSet;
use thiserror::Error;

mod index;
mod provider;
mod rich;

use index::{glob, Clause, Index};
use provider::RpmProvider;
#[cfg(test)]
mod tests;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RpmResolveError {
    #[error("install {entry:?}: the repositories publish no package groups (comps); list the packages by name instead")]
    NoGroups { entry: String },
    #[error("install {entry:?}: no such package group in the repositories (they have: {known}); check the id or name")]
    UnknownGroup { entry: String, known: String },
    #[error("install {name:?}: no package, Provides or file of that name is in the index for {arch} (or noarch); check the spelling or add the repository that has it")]
    UnknownInstall { name: String, arch: String },
    #[error("{name:?} is both installed and excluded; remove it from one of the two lists")]
    InstallExcluded { name: String },
    #[error("install {name:?}: every package that provides it is excluded ({excluded}); remove one of them from exclude, or drop {name:?} from install")]
    InstallNeedsExcluded { name: String, excluded: String },
    #[error(
        "exclude {pattern:?}: no package of that name is in the index; remove it from exclude"
    )]
    UnknownExclude { pattern: String },
    #[error("{needer} requires `{requirement}`, which no package in the index provides; add the repository that has it, or exclude {needer_name}\n{explanation}")]
    MissingDependency {
        needer: String,
        needer_name: String,
        requirement: String,
        explanation: String,
    },
    #[error("{needer} requires the file {path}, which no package lists in primary.xml (it names only files under /etc, in *bin/ and /usr/lib/sendmail); load filelists.xml (source::rpm::load_filelists) and resolve again with resolve_with_filelists, or exclude {needer_name}\n{explanation}")]
    NeedsFilelists {
        needer: String,
        needer_name: String,
        path: String,
        explanation: String,
    },
    #[error("{needer} requires `{requirement}`, but {excluded} excluded; remove it from exclude, or exclude {needer_name} too\n{explanation}")]
    NeedsExcluded {
        needer: String,
        needer_name: String,
        requirement: String,
        /// The excluded package(s), already phrased with "is"/"are".
        excluded: String,
        explanation: String,
    },
    #[error("{needer} has a dependency that cannot be read ({reason}); the repository metadata is broken or uses syntax not supported here: exclude {needer_name} or use another mirror\n{explanation}")]
    BadDependency {
        needer: String,
        needer_name: String,
        reason: String,
        explanation: String,
    },
    #[error("the requested packages cannot be installed together; change the install/exclude lists as the lines below suggest:\n{explanation}")]
    Unsatisfiable { explanation: String },
}

impl RpmResolveError {
    /// The caller should load filelists.xml and resolve again with
    /// [`resolve_with_filelists`].
    pub fn needs_filelists(&self) -> bool {
        matches!(self, RpmResolveError::NeedsFilelists { .. })
    }
}

/// What to install.
#[derive(Debug, Clone, Default)]
pub struct RpmRequest {
    /// Package names, capabilities (`/bin/sh`, `config(x)`) or `name.arch`.
    pub install: Vec<String>,
    /// Package names; `*` and `?` match as in shell globs.
    pub exclude: Vec<String>,
    /// The target architecture (`x86_64`, `i386`, `aarch64`).
    pub arch: String,
}

/// The install list with every `@group` (or `@^environment`) replaced by the
/// packages it stands for (see [`Comps::expand`]). Members no package in
/// `index` is named after, and members `exclude` matches, are left out, as
/// dnf leaves them; they come back second, for a warning.
pub fn expand_groups(
    install: &[String],
    exclude: &[String],
    comps: Option<&Comps>,
    index: &[RpmPackage],
) -> Result<(Vec<String>, Vec<String>), RpmResolveError> {
    let names: HashSet<&str> = index.iter().map(|p| p.name.as_str()).collect();
    let mut out: Vec<String> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for entry in install {
        let t = entry.trim();
        if !t.starts_with('@') {
            if !out.iter().any(|o| o == t) {
                out.push(t.to_string());
            }
            continue;
        }
        let comps = comps.ok_or_else(|| RpmResolveError::NoGroups { entry: t.into() })?;
        let members = comps
            .expand(t)
            .ok_or_else(|| RpmResolveError::UnknownGroup {
                entry: t.into(),
                known: comps.ids().join(", "),
            })?;
        for m in members {
            let excluded = exclude.iter().any(|p| glob(p.trim(), &m));
            if !names.contains(m.as_str()) || excluded {
                if !skipped.contains(&m) {
                    skipped.push(m);
                }
            } else if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    Ok((out, skipped))
}

/// The package set for `request`, in install order: each package after
/// what it requires (`Requires(pre)` first of all); cycles are broken
/// deterministically. File requirements are matched against the files
/// primary.xml lists; see [`resolve_with_filelists`] for the others.
pub fn resolve(
    index: &[RpmPackage],
    request: &RpmRequest,
) -> Result<Vec<RpmPackage>, RpmResolveError> {
    resolve_with_filelists(index, request, &[])
}

/// As [`resolve`], with the full file lists of the repositories (from
/// `filelists.xml`) for file requirements primary.xml does not cover.
/// Entries are matched to packages by `pkgid` (the package checksum), else
/// by name, arch and EVR.
pub fn resolve_with_filelists(
    index: &[RpmPackage],
    request: &RpmRequest,
    filelists: &[RpmFileList],
) -> Result<Vec<RpmPackage>, RpmResolveError> {
    let arch = request.arch.trim();
    let patterns: Vec<&str> = request
        .exclude
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    for pattern in &patterns {
        if !index.iter().any(|p| glob(pattern, &p.name)) {
            return Err(RpmResolveError::UnknownExclude {
                pattern: (*pattern).into(),
            });
        }
    }
    let mut installs: Vec<&str> = Vec::new();
    for entry in &request.install {
        let t = entry.trim();
        if t.is_empty() || installs.contains(&t) {
            continue;
        }
        if t.starts_with('@') {
            // `expand_groups` replaces these first.
            return Err(RpmResolveError::NoGroups { entry: t.into() });
        }
        if patterns.iter().any(|p| glob(p, t)) {
            return Err(RpmResolveError::InstallExcluded { name: t.into() });
        }
        installs.push(t);
    }

    let ix = Index::new(index, arch, &patterns, &installs, filelists);
    let provider = RpmProvider::new(ix);
    let mut roots: Vec<(String, Clause)> = Vec::new();
    let mut requirements = Vec::new();
    for &name in &installs {
        let pos = provider.ix.install_providers(name);
        if pos.is_empty() {
            return Err(RpmResolveError::UnknownInstall {
                name: name.into(),
                arch: arch.into(),
            });
        }
        if pos.iter().all(|&p| provider.ix.excluded[p as usize]) {
            return Err(RpmResolveError::InstallNeedsExcluded {
                name: name.into(),
                excluded: provider.ix.names_of(&pos).join(", "),
            });
        }
        let clause = provider.ix.ordered(Clause {
            text: name.into(),
            pre: false,
            file: false,
            pos,
            neg: Vec::new(),
        });
        requirements.push(provider.requirement(&clause));
        roots.push((name.into(), clause));
    }

    let mut solver = Solver::new(provider);
    let chosen = match solver.solve(Problem::new().requirements(requirements)) {
        Ok(chosen) => chosen,
        Err(UnsolvableOrCancelled::Unsolvable(conflict)) => {
            let explanation = conflict.display_user_friendly(&solver).to_string();
            return Err(solver.provider().diagnose(&roots, explanation));
        }
        Err(UnsolvableOrCancelled::Cancelled(_)) => {
            return Err(RpmResolveError::Unsatisfiable {
                explanation: "the solver was cancelled".into(),
            })
        }
    };
    let p = solver.provider();
    let mut in_solution = vec![false; index.len()];
    for s in &chosen {
        in_solution[p.solv_pkg[s.into_raw() as usize] as usize] = true;
    }
    let root_clauses: Vec<Clause> = roots.into_iter().map(|(_, c)| c).collect();
    let (kept, graph) = p.ix.prune(&in_solution, root_clauses);
    Ok(graph
        .install_order()
        .into_iter()
        .map(|i| index[kept[i] as usize].clone())
        .collect())
}

/// Requirements of packages in `set` that `set` itself does not satisfy, as
/// `nevra: requirement`; empty for a complete package set. File
/// requirements count as satisfied when `set` lists the file, or when the
/// file is in `filelists` for a package of `set`.
pub fn unsatisfied_requirements(
    set: &[RpmPackage],
    arch: &str,
    filelists: &[RpmFileList],
) -> Vec<String> {
    let ix = Index::new(set, arch, &[], &[], filelists);
    let mut out = Vec::new();
    for (i, p) in set.iter().enumerate() {
        if !ix.usable[i] {
            continue;
        }
        match ix.clauses_of(i as u32) {
            Ok(clauses) => {
                for c in clauses {
                    // Clauses whose condition cannot hold are already left out.
                    if c.pos.is_empty() {
                        out.push(format!("{}: {}", p.nevra(), c.text));
                    }
                }
            }
            Err(why) => out.push(format!("{}: {why}", p.nevra())),
        }
    }
    out
}
