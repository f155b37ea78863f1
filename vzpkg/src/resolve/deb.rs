//! Debian resolution over Depends, Pre-Depends, alternatives, versions,
//! Provides, Conflicts/Breaks and multi-arch qualifiers.
//!
//! The index is handed to the `resolvo` SAT solver. Each real package name is
//! a solver name whose candidates are its versions (native architecture and
//! `all`). Each virtual name (anything named in a `Provides`) is a separate
//! solver name whose candidates are stand-ins, one per provider, each
//! requiring exactly that provider; several stand-ins may be chosen at once.
//! A dependency `a | b` becomes the ordered union of the version sets on the
//! real and virtual names of `a`, then of `b`, so the solver tries them in the
//! order written, as apt does. `Conflicts`/`Breaks` become constraints that
//! rule out the conflicting package versions (never the package itself).

use super::order::{Graph, Strength};
use super::relation::{self, display_group, Relation, VersionConstraint};
use crate::debversion;
use crate::package::DebPackage;
use resolvo::utils::{Pool, VersionSet};
use resolvo::{
    Candidates, Condition, ConditionId, ConditionalRequirement, Dependencies, DependencyProvider,
    Interner, KnownDependencies, NameId, Problem, Requirement, SolvableId, Solver, SolverCache,
    StringId, UnsolvableOrCancelled, VersionSetId, VersionSetUnionId,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Display;
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ResolveError {
    #[error("include {name:?}: no package or Provides of that name is in the index for {architecture}/all; check the spelling or add the component/suite that has it")]
    UnknownInclude { name: String, architecture: String },
    #[error("include {name:?}: the index has no version {version} (it has: {available}); change the version or drop `={version}`")]
    NoSuchVersion {
        name: String,
        version: String,
        available: String,
    },
    #[error("include {text:?}: expected `name` or `name=version`")]
    BadInclude { text: String },
    #[error("{name:?} is both included and excluded; remove it from one of the two lists")]
    IncludeExcluded { name: String },
    #[error("exclude {name:?}: no package of that name is in the index; remove it from exclude")]
    UnknownExclude { name: String },
    #[error("{needer} depends on `{relation}`, which no package in the index provides; add a source that has it, or exclude {needer_name}\n{explanation}")]
    MissingDependency {
        needer: String,
        needer_name: String,
        relation: String,
        explanation: String,
    },
    #[error("{needer} depends on `{relation}`, but {excluded} excluded; remove it from exclude, or exclude {needer_name} too\n{explanation}")]
    NeedsExcluded {
        needer: String,
        needer_name: String,
        relation: String,
        /// The excluded package(s), already phrased with "is"/"are".
        excluded: String,
        explanation: String,
    },
    #[error("the requested packages cannot be installed together; change the includes/excludes named below:\n{explanation}")]
    Unsatisfiable { explanation: String },
}

pub use crate::recipe::BaseSet;

#[derive(Debug, Clone)]
pub struct DebRequest {
    pub base: BaseSet,
    /// Package names, optionally `name=version`.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// The native architecture (`amd64`).
    pub architecture: String,
}

/// The package set, ordered so that each package comes after what it
/// (Pre-)Depends on; dependency cycles are broken deterministically.
pub fn resolve(
    index: &[DebPackage],
    request: &DebRequest,
) -> Result<Vec<DebPackage>, ResolveError> {
    let arch = request.architecture.as_str();
    let exclude: BTreeSet<&str> = request.exclude.iter().map(|s| s.trim()).collect();
    let usable = |p: &DebPackage| p.architecture == arch || p.architecture == "all";

    // Root names: the base set, then includes, deduplicated, in a fixed order.
    let mut roots: Vec<(String, Option<String>)> = Vec::new();
    let base: BTreeSet<&str> = index
        .iter()
        .filter(|p| usable(p))
        .filter(|p| match request.base {
            BaseSet::Minbase => {
                p.essential()
                    || p.priority()
                        .is_some_and(|v| v.eq_ignore_ascii_case("required"))
            }
            BaseSet::Essential => p.essential(),
            BaseSet::None => false,
        })
        .map(|p| p.name.as_str())
        .collect();
    let mut base: Vec<&str> = base.into_iter().collect();
    // apt is part of minbase, but a small fixture index may not carry it.
    if request.base == BaseSet::Minbase
        && !base.contains(&"apt")
        && index.iter().any(|p| usable(p) && p.name == "apt")
    {
        base.push("apt");
    }
    for name in base {
        if !exclude.contains(name) {
            roots.push((name.to_string(), None));
        }
    }
    let mut includes = Vec::new();
    for text in &request.include {
        let t = text.trim();
        let (name, version) = match t.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().to_string())),
            None => (t, None),
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.~:".contains(c))
        };
        if !valid(name) || version.as_deref().is_some_and(|v| !valid(v)) {
            return Err(ResolveError::BadInclude { text: text.clone() });
        }
        if exclude.contains(name) {
            return Err(ResolveError::IncludeExcluded { name: name.into() });
        }
        includes.push((name.to_string(), version));
    }

    let root_names: BTreeSet<&str> = roots
        .iter()
        .chain(includes.iter())
        .map(|(n, _)| n.as_str())
        .collect();
    let provider = DebProvider::new(index, arch, &exclude, &root_names);

    for name in &exclude {
        if provider.real(name).is_none() {
            return Err(ResolveError::UnknownExclude {
                name: (*name).into(),
            });
        }
    }
    for (name, version) in &includes {
        let slots = provider.by_name.get(name.as_str());
        if slots.is_none_or(|s| s.real.is_none() && s.virt.is_none()) {
            return Err(ResolveError::UnknownInclude {
                name: name.clone(),
                architecture: arch.into(),
            });
        }
        if let Some(v) = version {
            let versions: Vec<&str> = provider
                .real(name)
                .map(|n| provider.real_versions(n))
                .unwrap_or_default();
            if !versions
                .iter()
                .any(|have| debversion::compare(have, v).is_eq())
            {
                return Err(ResolveError::NoSuchVersion {
                    name: name.clone(),
                    version: v.clone(),
                    available: if versions.is_empty() {
                        "none, it is only a virtual package".into()
                    } else {
                        versions.join(", ")
                    },
                });
            }
        }
    }
    roots.extend(includes);

    let mut requirements = Vec::new();
    let mut seen = BTreeSet::new();
    for (name, version) in &roots {
        if !seen.insert((name.as_str(), version.as_deref())) {
            continue;
        }
        let vs = match version {
            Some(v) => Vs::Rel(VersionConstraint {
                op: relation::RelOp::Eq,
                version: v.clone(),
            }),
            None => Vs::Any,
        };
        // Validated above: the name is real or virtual.
        let Some(nid) = provider.real(name).or_else(|| provider.virt(name)) else {
            continue;
        };
        requirements.push(ConditionalRequirement::from(
            provider.pool.intern_version_set(nid, vs),
        ));
    }

    let mut solver = Solver::new(provider);
    let chosen = match solver.solve(Problem::new().requirements(requirements)) {
        Ok(chosen) => chosen,
        Err(UnsolvableOrCancelled::Unsolvable(conflict)) => {
            let explanation = conflict.display_user_friendly(&solver).to_string();
            let p = solver.provider();
            return Err(p.diagnose(&roots, explanation));
        }
        Err(UnsolvableOrCancelled::Cancelled(_)) => {
            return Err(ResolveError::Unsatisfiable {
                explanation: "the solver was cancelled".into(),
            })
        }
    };
    let p = solver.provider();
    let mut set: Vec<&DebPackage> = Vec::new();
    let mut root_pkgs: BTreeSet<&str> = BTreeSet::new();
    let mut chosen_providers: BTreeMap<&str, (u32, &str)> = BTreeMap::new();
    for s in &chosen {
        match &p.solvables[s.into_raw() as usize] {
            Solv::Real { pkg, .. } => set.push(&index[*pkg as usize]),
            Solv::Provider { pkg, name, .. } => {
                let virt = p.pool.resolve_package_name(*name).name.as_str();
                let this = (
                    p.rank[s.into_raw() as usize],
                    index[*pkg as usize].name.as_str(),
                );
                let slot = chosen_providers.entry(virt).or_insert(this);
                *slot = (*slot).min(this);
            }
        }
    }
    set.sort_by(|a, b| a.name.cmp(&b.name));
    for (name, _) in &roots {
        if set.iter().any(|q| &q.name == name) {
            root_pkgs.insert(name);
        } else if let Some((_, provider)) = chosen_providers.get(name.as_str()) {
            root_pkgs.insert(provider);
        }
    }
    let set = prune(&set, &root_pkgs, arch);
    Ok(install_order(&set, arch).into_iter().cloned().collect())
}

/// One (Pre-)Depends group of a package, seen from inside a package set.
struct GroupInSet {
    /// Members of the set that satisfy it, in the order of the alternatives.
    satisfiers: Vec<usize>,
    pre_depends: bool,
    text: String,
}

/// The (Pre-)Depends groups of each package in `set`, with their satisfiers
/// in `set`. Groups that do not apply to `arch` are left out.
fn groups_in_set(set: &[&DebPackage], arch: &str) -> Vec<Vec<GroupInSet>> {
    let mut real: HashMap<&str, usize> = HashMap::new();
    let mut provided: HashMap<String, Vec<(usize, Option<String>)>> = HashMap::new();
    for (i, p) in set.iter().enumerate() {
        real.insert(p.name.as_str(), i);
        if let Some(Ok(provides)) = p.field("Provides").map(relation::parse_provides) {
            for r in provides {
                let v = r
                    .version
                    .filter(|c| c.op == relation::RelOp::Eq)
                    .map(|c| c.version);
                provided.entry(r.name).or_default().push((i, v));
            }
        }
    }
    let satisfiers = |r: &Relation, out: &mut Vec<usize>| {
        if !r.qualifier_fits(arch) {
            return;
        }
        if let Some(&i) = real.get(r.name.as_str()) {
            if r.matches_version(&set[i].version) && !out.contains(&i) {
                out.push(i);
            }
        }
        let mut ps: Vec<usize> = provided
            .get(&r.name)
            .into_iter()
            .flatten()
            .filter(|(_, v)| match (&r.version, v) {
                (None, _) => true,
                (Some(c), Some(v)) => c.matches(v),
                (Some(_), None) => false,
            })
            .map(|(i, _)| *i)
            .collect();
        ps.sort_unstable();
        for i in ps {
            if !out.contains(&i) {
                out.push(i);
            }
        }
    };
    set.iter()
        .map(|p| {
            let mut out = Vec::new();
            for (field, pre_depends) in [("Pre-Depends", true), ("Depends", false)] {
                let Some(Ok(groups)) = p.field(field).map(relation::parse_relations) else {
                    continue;
                };
                for g in groups {
                    let alts: Vec<&Relation> = g
                        .iter()
                        .filter(|r| r.applies_to_arch(arch) && r.applies_to_profiles(&[]))
                        .collect();
                    if alts.is_empty() {
                        continue;
                    }
                    let mut sat = Vec::new();
                    for r in alts {
                        satisfiers(r, &mut sat);
                    }
                    out.push(GroupInSet {
                        satisfiers: sat,
                        pre_depends,
                        text: display_group(&g),
                    });
                }
            }
            out
        })
        .collect()
}

/// Keep only what the roots need. The solver may satisfy `a | b` with `a`
/// before it learns that `b` is needed anyway; apt would use `b`. So groups
/// with a single way to be satisfied are followed first, and a group with
/// several is settled only when nothing else is pending, by a package
/// already kept if there is one, else by its first alternative.
fn prune<'a>(set: &[&'a DebPackage], roots: &BTreeSet<&str>, arch: &str) -> Vec<&'a DebPackage> {
    let groups = groups_in_set(set, arch);
    let mut keep = vec![false; set.len()];
    let mut pending: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    for (i, p) in set.iter().enumerate() {
        if roots.contains(p.name.as_str()) {
            keep[i] = true;
            pending.push_back(i);
        }
    }
    // (package, group index), in the order they were met.
    let mut choices: std::collections::VecDeque<(usize, usize)> = Default::default();
    loop {
        while let Some(i) = pending.pop_front() {
            for (g, group) in groups[i].iter().enumerate() {
                match group.satisfiers[..] {
                    [only] => {
                        if !keep[only] {
                            keep[only] = true;
                            pending.push_back(only);
                        }
                    }
                    [] => {}
                    _ => choices.push_back((i, g)),
                }
            }
        }
        let Some((i, g)) = choices.pop_front() else {
            break;
        };
        let sat = &groups[i][g].satisfiers;
        if sat.iter().any(|&s| keep[s]) {
            continue;
        }
        let first = sat[0];
        keep[first] = true;
        pending.push_back(first);
    }
    set.iter()
        .zip(keep)
        .filter_map(|(p, k)| k.then_some(*p))
        .collect()
}

/// The ordering graph: each package depends on the first satisfier of each
/// group, strongly for Pre-Depends; and the groups nothing in `set` satisfies.
fn dependency_graph<'a>(
    set: &[&'a DebPackage],
    arch: &str,
) -> (Graph<&'a str>, Vec<(usize, String)>) {
    let mut graph = Graph::new(set.iter().map(|p| p.name.as_str()).collect());
    let mut unsatisfied = Vec::new();
    for (i, groups) in groups_in_set(set, arch).into_iter().enumerate() {
        for g in groups {
            match g.satisfiers.first() {
                Some(&t) => graph.add_edge(i, t, Strength::strong_if(g.pre_depends)),
                None => unsatisfied.push((i, g.text)),
            }
        }
    }
    (graph, unsatisfied)
}

/// Dependencies of packages in `set` that `set` itself does not satisfy, as
/// `package_version_arch: relation`. Empty for a complete package set.
pub fn unsatisfied_dependencies(set: &[DebPackage], architecture: &str) -> Vec<String> {
    let refs: Vec<&DebPackage> = set.iter().collect();
    let (_, missing) = dependency_graph(&refs, architecture);
    missing
        .into_iter()
        .map(|(i, g)| format!("{}: {g}", set[i].id()))
        .collect()
}

/// Topological order over (Pre-)Depends, ties by name; inside a cycle,
/// Depends edges give way before Pre-Depends edges.
fn install_order<'a>(set: &[&'a DebPackage], arch: &str) -> Vec<&'a DebPackage> {
    let (graph, _) = dependency_graph(set, arch);
    graph.install_order().into_iter().map(|u| set[u]).collect()
}

/// A version set: which candidates of one solver name it admits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Vs {
    Any,
    /// A versioned relation; a stand-in matches only through a versioned Provides.
    Rel(VersionConstraint),
    /// Exactly this index entry (a stand-in's link to its provider).
    Only(u32),
    /// Every real candidate except these index entries (Conflicts/Breaks).
    NotIn(Vec<u32>),
}

impl VersionSet for Vs {
    type V = String;
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct NameKey {
    name: String,
    virt: bool,
}

enum Solv {
    Real {
        pkg: u32,
        name: NameId,
    },
    /// Stand-in for a virtual name, satisfied by installing `pkg`.
    Provider {
        pkg: u32,
        version: Option<String>,
        name: NameId,
    },
}

#[derive(Default, Clone, Copy)]
struct Slots {
    real: Option<NameId>,
    virt: Option<NameId>,
}

struct NameData {
    cands: Vec<SolvableId>,
    virt: bool,
    excluded: bool,
}

struct DebProvider<'a> {
    index: &'a [DebPackage],
    arch: &'a str,
    pool: Pool<Vs, NameKey>,
    /// Indexed by NameId for every name in the index; names interned later
    /// (missing dependencies) have no entry and no candidates.
    names: Vec<NameData>,
    by_name: HashMap<String, Slots>,
    solvables: Vec<Solv>,
    /// Position of each solvable in its name's preference order.
    rank: Vec<u32>,
    excluded_reason: StringId,
}

fn priority_rank(p: &DebPackage) -> u8 {
    match p.priority().map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("required") => 0,
        Some("important") => 1,
        Some("standard") => 2,
        Some("optional") => 3,
        _ => 4,
    }
}

impl<'a> DebProvider<'a> {
    fn new(
        index: &'a [DebPackage],
        arch: &'a str,
        exclude: &BTreeSet<&str>,
        roots: &BTreeSet<&str>,
    ) -> Self {
        let pool: Pool<Vs, NameKey> = Pool::new();
        let mut names: Vec<NameData> = Vec::new();
        let mut by_name: HashMap<String, Slots> = HashMap::new();
        let mut solvables = Vec::new();
        let intern = |names: &mut Vec<NameData>, name: &str, virt: bool| {
            let id = pool.intern_package_name(NameKey {
                name: name.to_string(),
                virt,
            });
            if id.into_raw() as usize == names.len() {
                names.push(NameData {
                    cands: Vec::new(),
                    virt,
                    excluded: !virt && exclude.contains(name),
                });
            }
            id
        };
        let usable = |p: &DebPackage| p.architecture == arch || p.architecture == "all";
        for (i, p) in index.iter().enumerate() {
            if !usable(p) {
                continue;
            }
            let slots = by_name.entry(p.name.clone()).or_default();
            let id = *slots
                .real
                .get_or_insert_with(|| intern(&mut names, &p.name, false));
            names[id.into_raw() as usize]
                .cands
                .push(SolvableId::from_raw(solvables.len() as u32));
            solvables.push(Solv::Real {
                pkg: i as u32,
                name: id,
            });
        }
        for (i, p) in index.iter().enumerate() {
            if !usable(p) {
                continue;
            }
            // A malformed Provides only loses what it would have provided.
            let Some(Ok(provides)) = p.field("Provides").map(relation::parse_provides) else {
                continue;
            };
            for r in provides {
                if r.name == p.name || !r.qualifier_fits(arch) {
                    continue;
                }
                let slots = by_name.entry(r.name.clone()).or_default();
                let id = *slots
                    .virt
                    .get_or_insert_with(|| intern(&mut names, &r.name, true));
                let version = r
                    .version
                    .filter(|c| c.op == relation::RelOp::Eq)
                    .map(|c| c.version);
                names[id.into_raw() as usize]
                    .cands
                    .push(SolvableId::from_raw(solvables.len() as u32));
                solvables.push(Solv::Provider {
                    pkg: i as u32,
                    version,
                    name: id,
                });
            }
        }

        // Preference inside each name: highest version first for real
        // packages; for stand-ins, providers already requested first, then
        // by Priority, then by name, so choices are deterministic.
        let mut rank = vec![0u32; solvables.len()];
        for data in &mut names {
            data.cands.sort_by(|&a, &b| {
                let key = |s: SolvableId| match &solvables[s.into_raw() as usize] {
                    Solv::Real { pkg, .. } | Solv::Provider { pkg, .. } => {
                        let p = &index[*pkg as usize];
                        (!roots.contains(p.name.as_str()), priority_rank(p), p)
                    }
                };
                let (ra, pa, a_pkg) = key(a);
                let (rb, pb, b_pkg) = key(b);
                let by_version =
                    debversion::compare(&b_pkg.version, &a_pkg.version).then_with(|| {
                        (a_pkg.architecture == "all").cmp(&(b_pkg.architecture == "all"))
                    });
                if data.virt {
                    (ra, pa, &a_pkg.name)
                        .cmp(&(rb, pb, &b_pkg.name))
                        .then(by_version)
                } else {
                    by_version
                }
                .then(a.into_raw().cmp(&b.into_raw()))
            });
            for (pos, s) in data.cands.iter().enumerate() {
                rank[s.into_raw() as usize] = pos as u32;
            }
        }
        let excluded_reason = pool.intern_string("it is excluded by the request");
        DebProvider {
            index,
            arch,
            pool,
            names,
            by_name,
            solvables,
            rank,
            excluded_reason,
        }
    }

    fn real(&self, name: &str) -> Option<NameId> {
        self.by_name.get(name).and_then(|s| s.real)
    }

    fn virt(&self, name: &str) -> Option<NameId> {
        self.by_name.get(name).and_then(|s| s.virt)
    }

    fn data(&self, name: NameId) -> Option<&NameData> {
        self.names.get(name.into_raw() as usize)
    }

    fn solv(&self, s: SolvableId) -> &Solv {
        &self.solvables[s.into_raw() as usize]
    }

    fn pkg_of(&self, s: SolvableId) -> &'a DebPackage {
        match self.solv(s) {
            Solv::Real { pkg, .. } | Solv::Provider { pkg, .. } => &self.index[*pkg as usize],
        }
    }

    fn real_versions(&self, name: NameId) -> Vec<&'a str> {
        self.data(name)
            .map(|d| {
                d.cands
                    .iter()
                    .map(|&s| self.pkg_of(s).version.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn matches(&self, s: SolvableId, vs: &Vs) -> bool {
        match (self.solv(s), vs) {
            (_, Vs::Any) => true,
            (Solv::Real { pkg, .. }, Vs::Rel(c)) => c.matches(&self.index[*pkg as usize].version),
            (Solv::Provider { version, .. }, Vs::Rel(c)) => {
                version.as_deref().is_some_and(|v| c.matches(v))
            }
            (Solv::Real { pkg, .. }, Vs::Only(i)) => pkg == i,
            (Solv::Provider { .. }, Vs::Only(_)) => false,
            (Solv::Real { pkg, .. }, Vs::NotIn(list)) => list.binary_search(pkg).is_err(),
            (Solv::Provider { .. }, Vs::NotIn(_)) => true,
        }
    }

    /// The version sets one alternative stands for; empty if the
    /// alternative does not apply to this architecture at all.
    fn alternative_sets(&self, r: &Relation, out: &mut Vec<VersionSetId>) {
        let vs = match &r.version {
            Some(c) => Vs::Rel(c.clone()),
            None => Vs::Any,
        };
        if !r.qualifier_fits(self.arch) {
            // Another architecture's package: never available here.
            let id = self.pool.intern_package_name(NameKey {
                name: format!("{}:{}", r.name, r.arch_qualifier.as_deref().unwrap_or("")),
                virt: false,
            });
            out.push(self.pool.intern_version_set(id, vs));
            return;
        }
        let slots = self
            .by_name
            .get(r.name.as_str())
            .copied()
            .unwrap_or_default();
        if let Some(id) = slots.real {
            out.push(self.pool.intern_version_set(id, vs.clone()));
        }
        if let Some(id) = slots.virt {
            out.push(self.pool.intern_version_set(id, vs.clone()));
        }
        if slots.real.is_none() && slots.virt.is_none() {
            let id = self.pool.intern_package_name(NameKey {
                name: r.name.clone(),
                virt: false,
            });
            out.push(self.pool.intern_version_set(id, vs));
        }
    }

    fn real_dependencies(&self, pkg: u32) -> Result<KnownDependencies, String> {
        let p = &self.index[pkg as usize];
        let mut deps = KnownDependencies::default();
        for field in ["Pre-Depends", "Depends"] {
            let Some(text) = p.field(field) else { continue };
            let groups = relation::parse_relations(text)
                .map_err(|e| format!("its {field} field cannot be read: {e}"))?;
            for g in groups {
                let mut sets = Vec::new();
                for r in g
                    .iter()
                    .filter(|r| r.applies_to_arch(self.arch) && r.applies_to_profiles(&[]))
                {
                    self.alternative_sets(r, &mut sets);
                }
                let Some((&first, rest)) = sets.split_first() else {
                    continue;
                };
                let req = if rest.is_empty() {
                    Requirement::Single(first)
                } else {
                    Requirement::Union(
                        self.pool
                            .intern_version_set_union(first, rest.iter().copied()),
                    )
                };
                deps.requirements.push(req.into());
            }
        }
        // Conflicts and Breaks both mean: not installed together. The
        // package itself is never hit, so conflicting with a virtual it
        // provides (an exclusive provider) stays installable.
        let mut hit: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for field in ["Conflicts", "Breaks"] {
            let Some(text) = p.field(field) else { continue };
            let groups = relation::parse_relations(text)
                .map_err(|e| format!("its {field} field cannot be read: {e}"))?;
            for r in groups.iter().flatten() {
                if !r.applies_to_arch(self.arch) || !r.qualifier_fits(self.arch) {
                    continue;
                }
                let slots = self
                    .by_name
                    .get(r.name.as_str())
                    .copied()
                    .unwrap_or_default();
                for s in slots
                    .real
                    .iter()
                    .chain(slots.virt.iter())
                    .filter_map(|&n| self.data(n))
                    .flat_map(|d| d.cands.iter().copied())
                {
                    let (other, matched) = match self.solv(s) {
                        Solv::Real { pkg: o, .. } => {
                            (*o, r.matches_version(&self.index[*o as usize].version))
                        }
                        Solv::Provider {
                            pkg: o, version, ..
                        } => (
                            *o,
                            match (&r.version, version) {
                                (None, _) => true,
                                (Some(c), Some(v)) => c.matches(v),
                                (Some(_), None) => false,
                            },
                        ),
                    };
                    if matched && other != pkg {
                        if let Some(n) = self.real(&self.index[other as usize].name) {
                            hit.entry(n.into_raw()).or_default().push(other);
                        }
                    }
                }
            }
        }
        for (name, mut list) in hit {
            list.sort_unstable();
            list.dedup();
            deps.constrains.push(
                self.pool
                    .intern_version_set(NameId::from_raw(name), Vs::NotIn(list)),
            );
        }
        Ok(deps)
    }

    /// After the solver failed: look for a dependency that is certainly
    /// needed and that nothing can satisfy, to name it plainly. Only names
    /// with a single installable version are followed, and only through
    /// groups with a single way to satisfy them, so what is found is a real
    /// cause. Otherwise the solver's own explanation is returned.
    fn diagnose(&self, roots: &[(String, Option<String>)], explanation: String) -> ResolveError {
        let mut queue: std::collections::VecDeque<NameId> =
            roots.iter().filter_map(|(n, _)| self.real(n)).collect();
        let mut seen: BTreeSet<u32> = queue.iter().map(|n| n.into_raw()).collect();
        while let Some(name) = queue.pop_front() {
            let Some(data) = self.data(name) else {
                continue;
            };
            if data.excluded || data.cands.len() != 1 {
                continue;
            }
            let p = self.pkg_of(data.cands[0]);
            for field in ["Pre-Depends", "Depends"] {
                let Some(Ok(groups)) = p.field(field).map(relation::parse_relations) else {
                    continue;
                };
                for g in groups {
                    let alts: Vec<&Relation> = g
                        .iter()
                        .filter(|r| r.applies_to_arch(self.arch) && r.applies_to_profiles(&[]))
                        .collect();
                    if alts.is_empty() {
                        continue;
                    }
                    let mut available: Vec<(NameId, bool)> = Vec::new();
                    let mut excluded: BTreeSet<&str> = BTreeSet::new();
                    for r in &alts {
                        let mut sets = Vec::new();
                        self.alternative_sets(r, &mut sets);
                        for vs in sets {
                            let n = self.pool.resolve_version_set_package_name(vs);
                            let set = self.pool.resolve_version_set(vs);
                            let Some(d) = self.data(n) else { continue };
                            for &s in d.cands.iter().filter(|&&s| self.matches(s, set)) {
                                let target = self.pkg_of(s);
                                let excl = self
                                    .real(&target.name)
                                    .and_then(|t| self.data(t))
                                    .is_some_and(|t| t.excluded);
                                if excl {
                                    excluded.insert(target.name.as_str());
                                } else {
                                    available.push((n, d.virt));
                                }
                            }
                        }
                    }
                    let needer_name = p.name.clone();
                    if available.is_empty() {
                        let relation = display_group(&g);
                        return if excluded.is_empty() {
                            ResolveError::MissingDependency {
                                needer: p.id(),
                                needer_name,
                                relation,
                                explanation,
                            }
                        } else {
                            let list: Vec<&str> = excluded.into_iter().collect();
                            ResolveError::NeedsExcluded {
                                needer: p.id(),
                                needer_name,
                                relation,
                                excluded: if list.len() == 1 {
                                    format!("{} is", list[0])
                                } else {
                                    format!("{} are", list.join(", "))
                                },
                                explanation,
                            }
                        };
                    }
                    available.dedup();
                    if let [(n, false)] = available[..] {
                        if seen.insert(n.into_raw()) {
                            queue.push_back(n);
                        }
                    }
                }
            }
        }
        ResolveError::Unsatisfiable { explanation }
    }
}

impl Interner for DebProvider<'_> {
    type NameId = NameId;
    type SolvableId = SolvableId;

    fn display_solvable(&self, solvable: SolvableId) -> impl Display + '_ {
        let p = self.pkg_of(solvable);
        match self.solv(solvable) {
            Solv::Real { .. } => format!("{} {}", p.name, p.version),
            Solv::Provider { version, name, .. } => {
                let virt = &self.pool.resolve_package_name(*name).name;
                match version {
                    Some(v) => format!("{virt} {v} (provided by {} {})", p.name, p.version),
                    None => format!("{virt} (provided by {} {})", p.name, p.version),
                }
            }
        }
    }

    fn display_merged_solvables(&self, solvables: &[SolvableId]) -> impl Display + '_ {
        solvables
            .iter()
            .map(|&s| self.display_solvable(s).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn display_name(&self, name: NameId) -> impl Display + '_ {
        let key = self.pool.resolve_package_name(name);
        if key.virt {
            format!("{} (virtual)", key.name)
        } else {
            key.name.clone()
        }
    }

    fn display_version_set(&self, version_set: VersionSetId) -> impl Display + '_ {
        match self.pool.resolve_version_set(version_set) {
            Vs::Any => "*".to_string(),
            Vs::Rel(c) => format!("{} {}", c.op, c.version),
            Vs::Only(i) => format!("= {}", self.index[*i as usize].version),
            Vs::NotIn(list) => format!(
                "other than {}",
                list.iter()
                    .map(|&i| self.index[i as usize].version.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn display_string(&self, string_id: StringId) -> impl Display + '_ {
        self.pool.resolve_string(string_id).to_string()
    }

    fn version_set_name(&self, version_set: VersionSetId) -> NameId {
        self.pool.resolve_version_set_package_name(version_set)
    }

    fn solvable_name(&self, solvable: SolvableId) -> NameId {
        match self.solv(solvable) {
            Solv::Real { name, .. } | Solv::Provider { name, .. } => *name,
        }
    }

    fn version_sets_in_union(
        &self,
        version_set_union: VersionSetUnionId,
    ) -> impl Iterator<Item = VersionSetId> {
        self.pool.resolve_version_set_union(version_set_union)
    }

    fn resolve_condition(&self, condition: ConditionId) -> Condition {
        self.pool.resolve_condition(condition).clone()
    }
}

impl DependencyProvider for DebProvider<'_> {
    async fn filter_candidates(
        &self,
        candidates: &[SolvableId],
        version_set: VersionSetId,
        inverse: bool,
    ) -> Vec<SolvableId> {
        let vs = self.pool.resolve_version_set(version_set);
        candidates
            .iter()
            .copied()
            .filter(|&s| self.matches(s, vs) != inverse)
            .collect()
    }

    async fn get_candidates(&self, name: NameId) -> Option<Candidates> {
        let Some(data) = self.data(name) else {
            return Some(Candidates::default());
        };
        Some(Candidates {
            candidates: data.cands.clone(),
            excluded: if data.excluded {
                data.cands
                    .iter()
                    .map(|&s| (s, self.excluded_reason))
                    .collect()
            } else {
                Vec::new()
            },
            allow_multiple: data.virt,
            ..Candidates::default()
        })
    }

    async fn sort_candidates(&self, _solver: &SolverCache<Self>, solvables: &mut [SolvableId]) {
        solvables.sort_by_key(|s| self.rank[s.into_raw() as usize]);
    }

    async fn get_dependencies(&self, solvable: SolvableId) -> Dependencies {
        match self.solv(solvable) {
            Solv::Real { pkg, .. } => match self.real_dependencies(*pkg) {
                Ok(deps) => Dependencies::Known(deps),
                Err(why) => Dependencies::Unknown(self.pool.intern_string(why)),
            },
            Solv::Provider { pkg, .. } => {
                let mut deps = KnownDependencies::default();
                if let Some(n) = self.real(&self.index[*pkg as usize].name) {
                    deps.requirements
                        .push(self.pool.intern_version_set(n, Vs::Only(*pkg)).into());
                }
                Dependencies::Known(deps)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::parse_paragraphs;

    fn index(text: &str) -> Vec<DebPackage> {
        parse_paragraphs(text)
            .unwrap()
            .into_iter()
            .map(|c| DebPackage {
                name: c.get("Package").unwrap().to_string(),
                version: c.get("Version").unwrap_or("1").to_string(),
                architecture: c.get("Architecture").unwrap_or("amd64").to_string(),
                filename: String::new(),
                size: 0,
                sha256: String::new(),
                control: c,
            })
            .collect()
    }

    fn req(include: &[&str], exclude: &[&str]) -> DebRequest {
        DebRequest {
            base: BaseSet::None,
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            architecture: "amd64".into(),
        }
    }

    /// `name=version` in install order.
    fn run(idx: &[DebPackage], r: &DebRequest) -> Vec<String> {
        let set = resolve(idx, r).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            unsatisfied_dependencies(&set, "amd64").is_empty(),
            "{:?}",
            unsatisfied_dependencies(&set, "amd64")
        );
        set.iter()
            .map(|p| format!("{}={}", p.name, p.version))
            .collect()
    }

    fn names(v: &[String]) -> Vec<&str> {
        v.iter().map(|s| s.split('=').next().unwrap()).collect()
    }

    #[test]
    fn alternatives_prefer_first_and_already_chosen() {
        let idx = index(
            "Package: a\nDepends: x | y\n\nPackage: x\n\nPackage: y\n\nPackage: b\nDepends: y\n",
        );
        assert_eq!(names(&run(&idx, &req(&["a"], &[]))), ["x", "a"]);
        // y is needed anyway, so it also serves a's `x | y`.
        let got = run(&idx, &req(&["b", "a"], &[]));
        assert_eq!(names(&got), ["y", "a", "b"]);
        // A first alternative that does not exist falls through to the next.
        let idx = index("Package: a\nDepends: nothere | y\n\nPackage: y\n");
        assert_eq!(names(&run(&idx, &req(&["a"], &[]))), ["y", "a"]);
    }

    #[test]
    fn virtual_packages_unversioned() {
        let idx = index(
            "Package: a\nDepends: awk\n\n\
             Package: gawk\nPriority: optional\nProvides: awk\n\n\
             Package: mawk\nPriority: required\nProvides: awk\n",
        );
        assert_eq!(names(&run(&idx, &req(&["a"], &[]))), ["mawk", "a"]);
        // Excluding one provider leaves the other.
        assert_eq!(names(&run(&idx, &req(&["a"], &["mawk"]))), ["gawk", "a"]);
        // An include of a purely virtual name picks a provider.
        assert_eq!(names(&run(&idx, &req(&["awk"], &[]))), ["mawk"]);
    }

    #[test]
    fn versioned_provides_satisfy_versioned_deps_only() {
        let idx = index(
            "Package: a\nDepends: abi (>= 2)\n\n\
             Package: plain\nProvides: abi\n\n\
             Package: versioned\nProvides: abi (= 2.1)\n\n\
             Package: c\nDepends: abi (>= 3)\n",
        );
        assert_eq!(names(&run(&idx, &req(&["a"], &[]))), ["versioned", "a"]);
        let err = resolve(&idx, &req(&["c"], &[])).unwrap_err();
        assert!(
            matches!(&err, ResolveError::MissingDependency { needer_name, relation, .. }
                if needer_name == "c" && relation == "abi (>= 3)"),
            "{err}"
        );
        assert!(err.to_string().contains("abi (>= 3)"), "{err}");
    }

    #[test]
    fn versioned_dependencies_choose_and_reject_versions() {
        let idx = index(
            "Package: b\nVersion: 2.0-1\n\nPackage: b\nVersion: 1.0-1\n\n\
             Package: b\nVersion: 1:0.5\n\n\
             Package: a\nDepends: b (<< 2.0)\n\n\
             Package: old\nDepends: b (<< 1.0)\n\n\
             Package: c\nConflicts: b (>= 1:0)\n",
        );
        assert_eq!(run(&idx, &req(&["b"], &[])), ["b=1:0.5"]);
        // 2.0-1 is later than 2.0 and 1:0.5 later still.
        assert_eq!(run(&idx, &req(&["a"], &[])), ["b=1.0-1", "a=1"]);
        assert_eq!(run(&idx, &req(&["b=1.0-1"], &[])), ["b=1.0-1"]);
        // c rules out the epoch version, so the next highest is taken.
        assert_eq!(run(&idx, &req(&["c", "b"], &[])), ["b=2.0-1", "c=1"]);
        let err = resolve(&idx, &req(&["old"], &[])).unwrap_err();
        assert!(err.to_string().contains("b (<< 1.0)"), "{err}");
        let err = resolve(&idx, &req(&["b=3"], &[])).unwrap_err();
        assert!(
            matches!(&err, ResolveError::NoSuchVersion { available, .. } if available.contains("1:0.5")),
            "{err}"
        );
    }

    #[test]
    fn conflicts_force_the_second_alternative() {
        let idx = index(
            "Package: a\nDepends: x | y\n\nPackage: x\n\nPackage: y\n\n\
             Package: c\nConflicts: x\n",
        );
        assert_eq!(names(&run(&idx, &req(&["a", "c"], &[]))), ["c", "y", "a"]);
        let err = resolve(&idx, &req(&["x", "c"], &[])).unwrap_err();
        assert!(matches!(err, ResolveError::Unsatisfiable { .. }), "{err}");
    }

    #[test]
    fn breaks_keep_packages_apart_in_both_directions() {
        let idx = index(
            "Package: a\nDepends: x | y\n\nPackage: x\nBreaks: c (<< 2)\n\n\
             Package: y\n\nPackage: c\nVersion: 1\n",
        );
        assert_eq!(names(&run(&idx, &req(&["c", "a"], &[]))), ["c", "y", "a"]);
        let idx2 = index(
            "Package: a\nDepends: x | y\n\nPackage: x\nBreaks: c (<< 2)\n\n\
             Package: y\n\nPackage: c\nVersion: 2\n",
        );
        assert_eq!(names(&run(&idx2, &req(&["c", "a"], &[]))), ["c", "x", "a"]);
    }

    #[test]
    fn exclusive_provider_conflicting_with_its_own_virtual() {
        let idx = index(
            "Package: a\nDepends: mail-transport-agent\n\n\
             Package: exim\nProvides: mail-transport-agent\nConflicts: mail-transport-agent\n\n\
             Package: postfix\nProvides: mail-transport-agent\nConflicts: mail-transport-agent\n",
        );
        let got = run(&idx, &req(&["a"], &[]));
        assert_eq!(names(&got), ["exim", "a"]);
        assert_eq!(
            names(&run(&idx, &req(&["postfix", "a"], &[]))),
            ["postfix", "a"]
        );
        let err = resolve(&idx, &req(&["exim", "postfix"], &[])).unwrap_err();
        eprintln!("{err}");
        assert!(matches!(err, ResolveError::Unsatisfiable { .. }), "{err}");
    }

    #[test]
    fn multiarch_qualifiers() {
        let idx = index(
            "Package: a\nDepends: perl:any (>= 5), libc6:amd64\n\n\
             Package: perl\nVersion: 5.36\nMulti-Arch: allowed\n\n\
             Package: libc6\nArchitecture: amd64\n\n\
             Package: libc6\nArchitecture: i386\nVersion: 9\n\n\
             Package: b\nDepends: libc6:i386\n\n\
             Package: tool\nArchitecture: all\nDepends: perl:native\n",
        );
        assert_eq!(
            run(&idx, &req(&["a", "tool"], &[])),
            ["libc6=1", "perl=5.36", "a=1", "tool=1"]
        );
        let err = resolve(&idx, &req(&["b"], &[])).unwrap_err();
        assert!(err.to_string().contains("libc6:i386"), "{err}");
    }

    #[test]
    fn exclude_names_the_needer() {
        let idx = index("Package: a\nDepends: b\n\nPackage: b\n\nPackage: top\nDepends: a\n");
        let err = resolve(&idx, &req(&["top"], &["b"])).unwrap_err();
        match &err {
            ResolveError::NeedsExcluded {
                needer, excluded, ..
            } => {
                assert_eq!(needer, "a_1_amd64");
                assert_eq!(excluded, "b is");
            }
            other => panic!("unexpected: {other}"),
        }
        assert!(
            err.to_string().contains("a_1_amd64 depends on `b`"),
            "{err}"
        );
        eprintln!("{err}");
    }

    #[test]
    fn unsatisfiable_names_the_missing_thing() {
        let idx = index("Package: a\nDepends: libc6, nothere | alsonot (>= 2)\n\nPackage: libc6\n");
        let err = resolve(&idx, &req(&["a"], &[])).unwrap_err();
        assert!(
            matches!(&err, ResolveError::MissingDependency { needer, relation, .. }
                if needer == "a_1_amd64" && relation == "nothere | alsonot (>= 2)"),
            "{err}"
        );
        // The solver's own explanation is kept too.
        assert!(err.to_string().contains("nothere"), "{err}");
    }

    #[test]
    fn request_errors_name_the_package() {
        let idx = index("Package: a\n\nPackage: v\nProvides: virt\n");
        assert!(matches!(
            resolve(&idx, &req(&["zz"], &[])),
            Err(ResolveError::UnknownInclude { name, .. }) if name == "zz"
        ));
        assert!(matches!(
            resolve(&idx, &req(&["a"], &["a"])),
            Err(ResolveError::IncludeExcluded { name }) if name == "a"
        ));
        assert!(matches!(
            resolve(&idx, &req(&["a"], &["zz"])),
            Err(ResolveError::UnknownExclude { name }) if name == "zz"
        ));
        assert!(matches!(
            resolve(&idx, &req(&["a b"], &[])),
            Err(ResolveError::BadInclude { .. })
        ));
        assert_eq!(run(&idx, &req(&["virt"], &[])), ["v=1"]);
    }

    #[test]
    fn install_order_breaks_cycles_depends_first() {
        let idx = index(
            "Package: a\nPre-Depends: b\n\nPackage: b\nDepends: a\n\n\
             Package: c\nDepends: a\n\nPackage: base\n\n\
             Package: y\nPre-Depends: x\n\nPackage: x\nPre-Depends: y, base\n",
        );
        // b Depends a is dropped, a Pre-Depends b kept.
        assert_eq!(names(&run(&idx, &req(&["c"], &[]))), ["b", "a", "c"]);
        // A Pre-Depends-only cycle: broken by name, after its own dependencies.
        assert_eq!(names(&run(&idx, &req(&["y"], &[]))), ["base", "x", "y"]);
    }

    #[test]
    fn base_sets_and_determinism() {
        let text = "Package: dpkg\nEssential: yes\nPriority: required\nDepends: libc6\n\n\
             Package: libc6\nPriority: required\n\n\
             Package: apt\nPriority: important\nDepends: libc6\n\n\
             Package: sed\nEssential: yes\nPriority: required\n\n\
             Package: extra\nPriority: optional\n\n\
             Package: other-arch\nEssential: yes\nArchitecture: arm64\n";
        let idx = index(text);
        let mut r = req(&[], &[]);
        r.base = BaseSet::Minbase;
        let minbase = run(&idx, &r);
        assert_eq!(names(&minbase), ["libc6", "apt", "dpkg", "sed"]);
        r.exclude = vec!["sed".into()];
        assert_eq!(names(&run(&idx, &r)), ["libc6", "apt", "dpkg"]);
        r.base = BaseSet::Essential;
        r.exclude.clear();
        assert_eq!(names(&run(&idx, &r)), ["libc6", "dpkg", "sed"]);
        r.base = BaseSet::None;
        assert!(run(&idx, &r).is_empty());
        // The same input in another index order gives the same result.
        let mut reversed = idx.clone();
        reversed.reverse();
        r.base = BaseSet::Minbase;
        assert_eq!(run(&reversed, &r), minbase);
    }

    /// Minbase from a real, uncompressed `Packages` file named by
    /// `VZPKG_TEST_PACKAGES`; skipped when it is not set.
    #[test]
    fn real_index_minbase() {
        let Some(path) = std::env::var_os("VZPKG_TEST_PACKAGES") else {
            eprintln!("skipped: set VZPKG_TEST_PACKAGES to an uncompressed Packages file");
            return;
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("skipped: cannot read {}", path.to_string_lossy());
            return;
        };
        let idx = index(&text);
        let arch = idx
            .iter()
            .map(|p| p.architecture.as_str())
            .find(|a| *a != "all")
            .unwrap()
            .to_string();
        let r = DebRequest {
            base: BaseSet::Minbase,
            include: vec![],
            exclude: vec![],
            architecture: arch.clone(),
        };
        let start = std::time::Instant::now();
        let set = resolve(&idx, &r).unwrap_or_else(|e| panic!("{e}"));
        let took = start.elapsed();
        eprintln!("minbase: {} packages in {took:?}", set.len());
        let order: Vec<&str> = set.iter().map(|p| p.name.as_str()).collect();
        eprintln!("{}", order.join(" "));
        assert_eq!(unsatisfied_dependencies(&set, &arch), Vec::<String>::new());
        let set_names: BTreeSet<&str> = set.iter().map(|p| p.name.as_str()).collect();
        for want in ["dpkg", "apt", "base-files", "libc6"] {
            assert!(set_names.contains(want), "{want} missing");
        }
        assert_eq!(set_names.len(), set.len(), "one version per name");
        // Every Pre-Depends target comes earlier unless it is in a cycle.
        let pos: HashMap<&str, usize> = set
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), i))
            .collect();
        let libc = pos["libc6"];
        assert!(pos["dpkg"] > libc && pos["apt"] > libc);

        // Asking for the second alternative of `usrmerge | usr-is-merged`
        // makes the first one (and the perl it pulls in) unnecessary.
        let with = DebRequest {
            include: vec!["usr-is-merged".into()],
            ..r
        };
        let start = std::time::Instant::now();
        let merged = resolve(&idx, &with).unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "minbase + usr-is-merged: {} packages in {:?}",
            merged.len(),
            start.elapsed()
        );
        assert_eq!(
            unsatisfied_dependencies(&merged, &arch),
            Vec::<String>::new()
        );
        assert!(merged.iter().any(|p| p.name == "usr-is-merged"));
        assert!(!merged.iter().any(|p| p.name == "usrmerge"));
    }
}
