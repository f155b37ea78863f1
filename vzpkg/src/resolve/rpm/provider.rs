//! The `resolvo` dependency provider over the index: names per architecture
//! class, version sets, and requirements with conditions from rich dependencies.

use super::index::{Clause, Index};
use super::rich::{Atom, Term};
use super::RpmResolveError;
use crate::source::rpm::RpmPackage;
use resolvo::utils::{Pool, VersionSet};
use resolvo::{
    Candidates, Condition, ConditionId, ConditionalRequirement, Dependencies, DependencyProvider,
    Interner, KnownDependencies, LogicalOperator, NameId, Requirement, SolvableId, SolverCache,
    StringId, VersionSetId, VersionSetUnionId,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

/// Which candidates of one solver name a version set admits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Vs {
    /// These packages (sorted): the providers of `what` on this name.
    OneOf { pkgs: Vec<u32>, what: String },
    /// All but these packages (sorted): what `what` rules out.
    NotIn { pkgs: Vec<u32>, what: String },
}

impl VersionSet for Vs {
    type V = String;
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum NameKey {
    Pkg {
        name: String,
        multilib: bool,
    },
    /// A requirement nothing provides.
    Missing(String),
}

pub(super) struct RpmProvider<'a> {
    pub(super) ix: Index<'a>,
    pub(super) pool: Pool<Vs, NameKey>,
    /// Candidates by NameId, in preference order; names interned later
    /// (`Missing`) have none.
    pub(super) cands: Vec<Vec<SolvableId>>,
    pub(super) name_of_pkg: Vec<Option<NameId>>,
    pub(super) solv_pkg: Vec<u32>,
    pub(super) solv_name: Vec<NameId>,
    pub(super) excluded_reason: StringId,
}

impl<'a> RpmProvider<'a> {
    pub(super) fn new(ix: Index<'a>) -> Self {
        let pool: Pool<Vs, NameKey> = Pool::new();
        let mut cands: Vec<Vec<SolvableId>> = Vec::new();
        let mut name_of_pkg = vec![None; ix.pkgs.len()];
        let mut solv_pkg = Vec::new();
        let mut solv_name = Vec::new();
        let mut order: Vec<u32> = (0..ix.pkgs.len() as u32)
            .filter(|&i| ix.usable[i as usize])
            .collect();
        order.sort_by_key(|&i| ix.pref[i as usize]);
        for i in order {
            let p = &ix.pkgs[i as usize];
            let id = pool.intern_package_name(NameKey::Pkg {
                name: p.name.clone(),
                multilib: ix.multilib[i as usize],
            });
            let raw = id.into_raw() as usize;
            if raw == cands.len() {
                cands.push(Vec::new());
            }
            let s = SolvableId::from_raw(solv_pkg.len() as u32);
            cands[raw].push(s);
            solv_pkg.push(i);
            solv_name.push(id);
            name_of_pkg[i as usize] = Some(id);
        }
        let excluded_reason = pool.intern_string("it is excluded by the request");
        RpmProvider {
            ix,
            pool,
            cands,
            name_of_pkg,
            solv_pkg,
            solv_name,
            excluded_reason,
        }
    }

    pub(super) fn pkg(&self, s: SolvableId) -> &'a RpmPackage {
        &self.ix.pkgs[self.solv_pkg[s.into_raw() as usize] as usize]
    }

    /// One version set per solver name, in the order of `pkgs`.
    pub(super) fn sets(&self, pkgs: &[u32], what: &str, not: bool) -> Vec<VersionSetId> {
        let mut groups: Vec<(NameId, Vec<u32>)> = Vec::new();
        for &p in pkgs {
            let Some(name) = self.name_of_pkg[p as usize] else {
                continue;
            };
            match groups.iter_mut().find(|(n, _)| *n == name) {
                Some((_, list)) => list.push(p),
                None => groups.push((name, vec![p])),
            }
        }
        groups
            .into_iter()
            .map(|(name, mut pkgs)| {
                pkgs.sort_unstable();
                let what = what.to_string();
                let vs = if not {
                    Vs::NotIn { pkgs, what }
                } else {
                    Vs::OneOf { pkgs, what }
                };
                self.pool.intern_version_set(name, vs)
            })
            .collect()
    }

    pub(super) fn requirement(&self, c: &Clause) -> ConditionalRequirement {
        let sets = self.sets(&c.pos, &c.text, false);
        let req = match sets.split_first() {
            None => {
                let name = self
                    .pool
                    .intern_package_name(NameKey::Missing(c.text.clone()));
                Requirement::Single(self.pool.intern_version_set(
                    name,
                    Vs::OneOf {
                        pkgs: Vec::new(),
                        what: c.text.clone(),
                    },
                ))
            }
            Some((&first, [])) => Requirement::Single(first),
            Some((&first, rest)) => Requirement::Union(
                self.pool
                    .intern_version_set_union(first, rest.iter().copied()),
            ),
        };
        let mut condition: Option<ConditionId> = None;
        for providers in &c.neg {
            let mut any: Option<ConditionId> = None;
            for vs in self.sets(providers, &c.text, false) {
                let this = self.pool.intern_condition(Condition::Requirement(vs));
                any = Some(match any {
                    None => this,
                    Some(prev) => self.pool.intern_condition(Condition::Binary(
                        LogicalOperator::Or,
                        prev,
                        this,
                    )),
                });
            }
            let Some(any) = any else { continue };
            condition = Some(match condition {
                None => any,
                Some(prev) => {
                    self.pool
                        .intern_condition(Condition::Binary(LogicalOperator::And, prev, any))
                }
            });
        }
        match condition {
            Some(cond) => req.with_condition(cond),
            None => req.into(),
        }
    }

    /// Conflicts (plain) and Obsoletes as constraints on the names hit.
    pub(super) fn constraints(&self, pkg: u32) -> Vec<VersionSetId> {
        let p = &self.ix.pkgs[pkg as usize];
        let mut hit: BTreeMap<(u32, String), Vec<u32>> = BTreeMap::new();
        let mut add = |list: Vec<u32>, what: String| {
            for q in list {
                // rpm ignores a package's conflicts with itself.
                if q == pkg {
                    continue;
                }
                if let Some(n) = self.name_of_pkg[q as usize] {
                    hit.entry((n.into_raw(), what.clone())).or_default().push(q);
                }
            }
        };
        for d in p.conflicts.iter().filter(|d| !d.name.starts_with('(')) {
            let atom = Atom::of(d);
            let what = format!("conflicts with {atom}");
            add(self.ix.providers(&Term::Dep(atom), false), what);
        }
        for d in p.obsoletes.iter().filter(|d| d.name != p.name) {
            add(self.ix.obsoleted(d), format!("obsoleted by {}", p.nevra()));
        }
        hit.into_iter()
            .map(|((name, what), mut pkgs)| {
                pkgs.sort_unstable();
                pkgs.dedup();
                self.pool
                    .intern_version_set(NameId::from_raw(name), Vs::NotIn { pkgs, what })
            })
            .collect()
    }

    /// After the solver failed: look for a requirement that is certainly
    /// needed and that nothing can satisfy, to name it plainly. Names are
    /// followed only when they have a single installable version, through
    /// requirements with a single provider name; a requirement counts as
    /// missing when every installable version of the needer has it.
    pub(super) fn diagnose(
        &self,
        roots: &[(String, Clause)],
        explanation: String,
    ) -> RpmResolveError {
        let ix = &self.ix;
        let usable = |list: &[u32]| -> Vec<u32> {
            list.iter()
                .copied()
                .filter(|&p| !ix.excluded[p as usize])
                .collect()
        };
        let single_name = |list: &[u32]| -> Option<NameId> {
            let mut names = list.iter().filter_map(|&p| self.name_of_pkg[p as usize]);
            let first = names.next()?;
            names.all(|n| n == first).then_some(first)
        };
        let mut queue: std::collections::VecDeque<NameId> = roots
            .iter()
            .filter_map(|(_, c)| single_name(&usable(&c.pos)))
            .collect();
        let mut seen: BTreeSet<u32> = queue.iter().map(|n| n.into_raw()).collect();
        while let Some(name) = queue.pop_front() {
            let Some(cands) = self.cands.get(name.into_raw() as usize) else {
                continue;
            };
            let versions: Vec<u32> = usable(
                &cands
                    .iter()
                    .map(|&s| self.solv_pkg[s.into_raw() as usize])
                    .collect::<Vec<_>>(),
            );
            let Some(&newest) = versions.first() else {
                continue;
            };
            let p = &ix.pkgs[newest as usize];
            let clauses = match ix.clauses_of(newest) {
                Ok(c) => c,
                Err(reason) => {
                    if versions.len() == 1 {
                        return RpmResolveError::BadDependency {
                            needer: p.nevra(),
                            needer_name: p.name.clone(),
                            reason,
                            explanation,
                        };
                    }
                    continue;
                }
            };
            let others: Vec<Vec<Clause>> = versions[1..]
                .iter()
                .map(|&v| ix.clauses_of(v).unwrap_or_default())
                .collect();
            for c in clauses.iter().filter(|c| c.neg.is_empty()) {
                let avail = usable(&c.pos);
                if !avail.is_empty() {
                    if versions.len() == 1 {
                        if let Some(n) = single_name(&avail) {
                            if seen.insert(n.into_raw()) {
                                queue.push_back(n);
                            }
                        }
                    }
                    continue;
                }
                let everywhere = others.iter().all(|cs| {
                    cs.iter()
                        .any(|o| o.text == c.text && o.neg.is_empty() && usable(&o.pos).is_empty())
                });
                if !everywhere {
                    continue;
                }
                let (needer, needer_name) = (p.nevra(), p.name.clone());
                return if !c.pos.is_empty() {
                    let names = ix.names_of(&c.pos);
                    RpmResolveError::NeedsExcluded {
                        needer,
                        needer_name,
                        requirement: c.text.clone(),
                        excluded: if names.len() == 1 {
                            format!("{} is", names[0])
                        } else {
                            format!("{} are", names.join(", "))
                        },
                        explanation,
                    }
                } else if c.file && !ix.filelists_given {
                    RpmResolveError::NeedsFilelists {
                        needer,
                        needer_name,
                        path: c.text.clone(),
                        explanation,
                    }
                } else {
                    RpmResolveError::MissingDependency {
                        needer,
                        needer_name,
                        requirement: c.text.clone(),
                        explanation,
                    }
                };
            }
        }
        RpmResolveError::Unsatisfiable { explanation }
    }
}

impl Interner for RpmProvider<'_> {
    type NameId = NameId;
    type SolvableId = SolvableId;

    fn display_solvable(&self, solvable: SolvableId) -> impl Display + '_ {
        self.pkg(solvable).nevra()
    }

    fn display_merged_solvables(&self, solvables: &[SolvableId]) -> impl Display + '_ {
        solvables
            .iter()
            .map(|&s| self.pkg(s).nevra())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn display_name(&self, name: NameId) -> impl Display + '_ {
        match self.pool.resolve_package_name(name) {
            NameKey::Pkg {
                name,
                multilib: false,
            } => name.clone(),
            NameKey::Pkg {
                name,
                multilib: true,
            } => format!("{name} (multilib)"),
            NameKey::Missing(what) => format!("`{what}`"),
        }
    }

    fn display_version_set(&self, version_set: VersionSetId) -> impl Display + '_ {
        match self.pool.resolve_version_set(version_set) {
            Vs::OneOf { pkgs, what } => {
                let name = self.pool.resolve_version_set_package_name(version_set);
                match self.pool.resolve_package_name(name) {
                    NameKey::Pkg { name, .. } if !pkgs.is_empty() && name != what => {
                        format!("(for `{what}`)")
                    }
                    _ => String::new(),
                }
            }
            Vs::NotIn { what, .. } => format!("({what})"),
        }
    }

    fn display_string(&self, string_id: StringId) -> impl Display + '_ {
        self.pool.resolve_string(string_id).to_string()
    }

    fn version_set_name(&self, version_set: VersionSetId) -> NameId {
        self.pool.resolve_version_set_package_name(version_set)
    }

    fn solvable_name(&self, solvable: SolvableId) -> NameId {
        self.solv_name[solvable.into_raw() as usize]
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

impl DependencyProvider for RpmProvider<'_> {
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
            .filter(|&s| {
                let pkg = self.solv_pkg[s.into_raw() as usize];
                let inside = match vs {
                    Vs::OneOf { pkgs, .. } => pkgs.binary_search(&pkg).is_ok(),
                    Vs::NotIn { pkgs, .. } => pkgs.binary_search(&pkg).is_err(),
                };
                inside != inverse
            })
            .collect()
    }

    async fn get_candidates(&self, name: NameId) -> Option<Candidates> {
        let Some(cands) = self.cands.get(name.into_raw() as usize) else {
            return Some(Candidates::default());
        };
        Some(Candidates {
            candidates: cands.clone(),
            excluded: cands
                .iter()
                .filter(|&&s| self.ix.excluded[self.solv_pkg[s.into_raw() as usize] as usize])
                .map(|&s| (s, self.excluded_reason))
                .collect(),
            ..Candidates::default()
        })
    }

    async fn sort_candidates(&self, _solver: &SolverCache<Self>, solvables: &mut [SolvableId]) {
        solvables.sort_by_key(|&s| self.ix.pref[self.solv_pkg[s.into_raw() as usize] as usize]);
    }

    async fn get_dependencies(&self, solvable: SolvableId) -> Dependencies {
        let pkg = self.solv_pkg[solvable.into_raw() as usize];
        let clauses = match self.ix.clauses_of(pkg) {
            Ok(c) => c,
            Err(why) => return Dependencies::Unknown(self.pool.intern_string(why)),
        };
        let mut deps = KnownDependencies::default();
        for c in &clauses {
            deps.requirements.push(self.requirement(c));
        }
        deps.constrains = self.constraints(pkg);
        Dependencies::Known(deps)
    }
}
