//! The repository index as the resolver sees it: providers per capability,
//! file provides, and the architecture class of each package.

use super::rich::{cnf, overlap, parse_rich, to_form, Atom, Range, Rich, Term};
use crate::resolve::order::{Graph, Strength};
use crate::source::rpm::{DepFlags, RpmDep, RpmFileList, RpmPackage};
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};

/// `(multilib, preference)` of a package architecture for `target`, or
/// `None` when it cannot be installed there.
pub(super) fn arch_class(target: &str, arch: &str) -> Option<(bool, u8)> {
    const IA32: [&str; 4] = ["i386", "i486", "i586", "i686"];
    let ia32 = |a: &str| IA32.iter().position(|x| *x == a).map(|i| i as u8 + 2);
    if arch == "noarch" {
        return Some((false, 1));
    }
    if IA32.contains(&target) {
        return ia32(arch).map(|s| (false, s));
    }
    if arch == target {
        return Some((false, 10));
    }
    if target == "x86_64" {
        return ia32(arch).map(|s| (true, s));
    }
    None
}

/// Shell-style match with `*` and `?`.
pub(super) fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// One requirement clause: satisfied when some package of `pos` is
/// installed, or when, for some entry of `neg`, none of its packages is.
#[derive(Debug, Clone)]
pub(super) struct Clause {
    pub(super) text: String,
    pub(super) pre: bool,
    /// Whether the requirement is a single file path.
    pub(super) file: bool,
    /// Providers, in preference order.
    pub(super) pos: Vec<u32>,
    /// Providers of each negated atom, sorted by index.
    pub(super) neg: Vec<Vec<u32>>,
}

pub(super) struct Prov<'a> {
    pub(super) pkg: u32,
    pub(super) range: Range<'a>,
}

pub(super) struct Index<'a> {
    pub(super) pkgs: &'a [RpmPackage],
    pub(super) usable: Vec<bool>,
    pub(super) multilib: Vec<bool>,
    pub(super) arch_pref: Vec<u8>,
    pub(super) excluded: Vec<bool>,
    /// Provides, including each package's own `name = EVR`.
    pub(super) caps: HashMap<&'a str, Vec<Prov<'a>>>,
    pub(super) files: HashMap<&'a str, Vec<u32>>,
    pub(super) by_name: HashMap<&'a str, Vec<u32>>,
    pub(super) filelists_given: bool,
    /// Preference rank of each usable package (lower is better).
    pub(super) pref: Vec<u32>,
    /// Packages (other names) obsoleting each package.
    pub(super) obsoleted_by: HashMap<u32, Vec<u32>>,
}

impl<'a> Index<'a> {
    pub(super) fn new(
        pkgs: &'a [RpmPackage],
        arch: &str,
        exclude: &[&str],
        roots: &[&str],
        filelists: &'a [RpmFileList],
    ) -> Index<'a> {
        let n = pkgs.len();
        let mut usable = vec![false; n];
        let mut multilib = vec![false; n];
        let mut arch_pref = vec![0u8; n];
        let mut caps: HashMap<&str, Vec<Prov<'_>>> = HashMap::new();
        let mut files: HashMap<&str, Vec<u32>> = HashMap::new();
        let mut by_name: HashMap<&str, Vec<u32>> = HashMap::new();
        for (i, p) in pkgs.iter().enumerate() {
            let Some((ml, pref)) = arch_class(arch, &p.arch) else {
                continue;
            };
            let pkg = i as u32;
            (usable[i], multilib[i], arch_pref[i]) = (true, ml, pref);
            by_name.entry(&p.name).or_default().push(pkg);
            caps.entry(&p.name).or_default().push(Prov {
                pkg,
                range: Range {
                    flags: DepFlags::Eq,
                    epoch: p.epoch,
                    version: Some(&p.version),
                    release: Some(&p.release),
                },
            });
            for d in &p.provides {
                caps.entry(&d.name).or_default().push(Prov {
                    pkg,
                    range: Range {
                        flags: d.flags,
                        epoch: d.epoch.unwrap_or(0),
                        version: d.version.as_deref(),
                        release: d.release.as_deref(),
                    },
                });
            }
            for f in &p.files {
                files.entry(f).or_default().push(pkg);
            }
        }
        if !filelists.is_empty() {
            // Only paths something asks for are kept: full lists are large.
            let mut wanted: HashSet<String> = roots
                .iter()
                .filter(|r| r.starts_with('/'))
                .map(|r| r.to_string())
                .collect();
            for (_, p) in pkgs.iter().enumerate().filter(|(i, _)| usable[*i]) {
                for d in p.requires.iter().chain(&p.conflicts) {
                    if d.name.starts_with('/') {
                        wanted.insert(d.name.clone());
                    } else if d.name.starts_with('(') {
                        if let Ok(r) = parse_rich(&d.name) {
                            let mut terms = Vec::new();
                            to_form(&r, true, &mut terms);
                            collect_paths(&terms, &mut wanted);
                        }
                    }
                }
            }
            let mut by_id: HashMap<&str, Vec<u32>> = HashMap::new();
            let mut by_nevra: HashMap<(&str, &str, u32, &str, &str), Vec<u32>> = HashMap::new();
            for (i, p) in pkgs.iter().enumerate().filter(|(i, _)| usable[*i]) {
                by_id.entry(&p.checksum.hex).or_default().push(i as u32);
                by_nevra
                    .entry((&p.name, &p.arch, p.epoch, &p.version, &p.release))
                    .or_default()
                    .push(i as u32);
            }
            for fl in filelists {
                let owners = by_id.get(fl.pkgid.as_str()).or_else(|| {
                    by_nevra.get(&(
                        fl.name.as_str(),
                        fl.arch.as_str(),
                        fl.epoch,
                        fl.version.as_str(),
                        fl.release.as_str(),
                    ))
                });
                let Some(owners) = owners else { continue };
                for f in fl.files.iter().filter(|f| wanted.contains(f.as_str())) {
                    files.entry(f).or_default().extend(owners);
                }
            }
        }
        for list in files.values_mut() {
            list.sort_unstable();
            list.dedup();
        }
        let excluded = pkgs
            .iter()
            .map(|p| exclude.iter().any(|pat| glob(pat, &p.name)))
            .collect();
        let mut ix = Index {
            pkgs,
            usable,
            multilib,
            arch_pref,
            excluded,
            caps,
            files,
            by_name,
            filelists_given: !filelists.is_empty(),
            pref: Vec::new(),
            obsoleted_by: HashMap::new(),
        };
        ix.obsoleted_by = ix.obsoletes_map();
        ix.pref = ix.preference(roots);
        ix
    }

    pub(super) fn obsoletes_map(&self) -> HashMap<u32, Vec<u32>> {
        let mut out: HashMap<u32, Vec<u32>> = HashMap::new();
        for (i, p) in self
            .pkgs
            .iter()
            .enumerate()
            .filter(|(i, _)| self.usable[*i])
        {
            for d in &p.obsoletes {
                if d.name == p.name {
                    continue;
                }
                for q in self.obsoleted(d) {
                    out.entry(q).or_default().push(i as u32);
                }
            }
        }
        out
    }

    /// Packages an Obsoletes entry hits: by package name and EVR.
    pub(super) fn obsoleted(&self, d: &RpmDep) -> Vec<u32> {
        let atom = Atom::of(d);
        let want = atom.range();
        self.by_name
            .get(d.name.as_str())
            .into_iter()
            .flatten()
            .copied()
            .filter(|&q| {
                let q = &self.pkgs[q as usize];
                let have = Range {
                    flags: DepFlags::Eq,
                    epoch: q.epoch,
                    version: Some(&q.version),
                    release: Some(&q.release),
                };
                overlap(&have, &want)
            })
            .collect()
    }

    /// Global preference: names not obsoleted first, then requested names,
    /// native before multilib, shorter names, by name; inside a name the
    /// newest EVR, then the best architecture.
    pub(super) fn preference(&self, roots: &[&str]) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.pkgs.len() as u32)
            .filter(|&i| self.usable[i as usize])
            .collect();
        // A name counts as obsoleted when its newest version is.
        let mut newest: HashMap<(&str, bool), u32> = HashMap::new();
        for &i in &order {
            let p = &self.pkgs[i as usize];
            let key = (p.name.as_str(), self.multilib[i as usize]);
            match newest.get(&key) {
                Some(&j) if self.pkgs[j as usize].cmp_evr(p) != Ordering::Less => {}
                _ => {
                    newest.insert(key, i);
                }
            }
        }
        let obsoleted = |i: u32| {
            let p = &self.pkgs[i as usize];
            newest
                .get(&(p.name.as_str(), self.multilib[i as usize]))
                .is_some_and(|j| self.obsoleted_by.contains_key(j))
        };
        order.sort_by(|&a, &b| {
            let (pa, pb) = (&self.pkgs[a as usize], &self.pkgs[b as usize]);
            let key = |i: u32, p: &'a RpmPackage| {
                (
                    obsoleted(i),
                    !roots.contains(&p.name.as_str()),
                    self.multilib[i as usize],
                    p.name.len(),
                    p.name.as_str(),
                )
            };
            key(a, pa)
                .cmp(&key(b, pb))
                .then_with(|| pb.cmp_evr(pa))
                .then_with(|| self.arch_pref[b as usize].cmp(&self.arch_pref[a as usize]))
                .then(a.cmp(&b))
        });
        let mut pref = vec![u32::MAX; self.pkgs.len()];
        for (rank, &i) in order.iter().enumerate() {
            pref[i as usize] = rank as u32;
        }
        pref
    }

    /// Packages satisfying `term`, sorted by index. With `prefer_native`,
    /// multilib providers count only when no native package provides.
    pub(super) fn providers(&self, term: &Term, prefer_native: bool) -> Vec<u32> {
        let mut out = match term {
            Term::Dep(atom) => {
                let want = atom.range();
                let mut out: Vec<u32> = self
                    .caps
                    .get(atom.name.as_str())
                    .into_iter()
                    .flatten()
                    .filter(|p| overlap(&p.range, &want))
                    .map(|p| p.pkg)
                    .collect();
                if atom.name.starts_with('/') {
                    out.extend(self.files.get(atom.name.as_str()).into_iter().flatten());
                }
                out.sort_unstable();
                out.dedup();
                out
            }
            Term::With(a, b) => {
                let b = self.providers(b, false);
                let mut a = self.providers(a, false);
                a.retain(|p| b.binary_search(p).is_ok());
                a
            }
            Term::Without(a, b) => {
                let b = self.providers(b, false);
                let mut a = self.providers(a, false);
                a.retain(|p| b.binary_search(p).is_err());
                a
            }
        };
        if prefer_native && out.iter().any(|&p| !self.multilib[p as usize]) {
            out.retain(|&p| !self.multilib[p as usize]);
        }
        out
    }

    /// Providers of an install entry: a capability (packages obsoleting a
    /// named package included, as dnf replaces it), else `name.arch`.
    pub(super) fn install_providers(&self, text: &str) -> Vec<u32> {
        let atom = Atom {
            name: text.into(),
            flags: DepFlags::Any,
            epoch: 0,
            version: None,
            release: None,
        };
        let mut out = self.providers(&Term::Dep(atom), true);
        for q in self.by_name.get(text).into_iter().flatten() {
            out.extend(self.obsoleted_by.get(q).into_iter().flatten());
        }
        if out.is_empty() {
            if let Some((name, arch)) = text.rsplit_once('.') {
                out.extend(
                    self.by_name
                        .get(name)
                        .into_iter()
                        .flatten()
                        .filter(|&&p| self.pkgs[p as usize].arch == arch),
                );
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// `pos` in preference order.
    pub(super) fn ordered(&self, mut c: Clause) -> Clause {
        c.pos.sort_by_key(|&p| self.pref[p as usize]);
        c
    }

    pub(super) fn names_of(&self, pkgs: &[u32]) -> Vec<String> {
        let names: BTreeSet<&str> = pkgs
            .iter()
            .map(|&p| self.pkgs[p as usize].name.as_str())
            .collect();
        names.into_iter().map(String::from).collect()
    }

    /// The requirement clauses of a package (rich Conflicts included, as
    /// the clauses of their negation). An error names what cannot be read.
    pub(super) fn clauses_of(&self, pkg: u32) -> Result<Vec<Clause>, String> {
        let p = &self.pkgs[pkg as usize];
        let mut out = Vec::new();
        for d in &p.requires {
            if d.name.is_empty() || d.name.starts_with("rpmlib(") {
                continue;
            }
            if d.name.starts_with('(') {
                let r = parse_rich(&d.name).map_err(|e| format!("`{}`: {e}", d.name))?;
                self.rich_clauses(&r, true, &d.name, d.pre, &mut out)
                    .map_err(|e| format!("`{}`: {e}", d.name))?;
                continue;
            }
            let atom = Atom::of(d);
            let text = atom.to_string();
            let pos = self.providers(&Term::Dep(atom), true);
            out.push(self.ordered(Clause {
                file: d.name.starts_with('/'),
                text,
                pre: d.pre,
                pos,
                neg: Vec::new(),
            }));
        }
        for d in p.conflicts.iter().filter(|d| d.name.starts_with('(')) {
            let r = parse_rich(&d.name).map_err(|e| format!("conflict `{}`: {e}", d.name))?;
            self.rich_clauses(&r, false, &d.name, false, &mut out)
                .map_err(|e| format!("conflict `{}`: {e}", d.name))?;
        }
        Ok(out)
    }

    pub(super) fn rich_clauses(
        &self,
        r: &Rich,
        positive: bool,
        text: &str,
        pre: bool,
        out: &mut Vec<Clause>,
    ) -> Result<(), String> {
        let mut terms = Vec::new();
        let form = to_form(r, positive, &mut terms);
        let providers: Vec<Vec<u32>> = terms.iter().map(|t| self.providers(t, true)).collect();
        // Providers in the order the dependency names them, as written.
        let ranked: Vec<Vec<u32>> = providers
            .iter()
            .map(|list| {
                let mut list = list.clone();
                list.sort_by_key(|&p| self.pref[p as usize]);
                list
            })
            .collect();
        'clause: for lits in cnf(&form)? {
            let mut c = Clause {
                text: text.into(),
                pre,
                file: false,
                pos: Vec::new(),
                neg: Vec::new(),
            };
            for (t, positive) in lits {
                if positive {
                    for &p in &ranked[t] {
                        if !c.pos.contains(&p) {
                            c.pos.push(p);
                        }
                    }
                } else if providers[t].is_empty() {
                    // `not x` with nothing providing x always holds.
                    continue 'clause;
                } else {
                    c.neg.push(providers[t].clone());
                }
            }
            out.push(c);
        }
        Ok(())
    }

    /// Keep what the roots need of a solution. The solver may satisfy a
    /// requirement with one provider before it learns that another is
    /// needed anyway; dnf would use that one. So requirements with a single
    /// way to be met are followed first, and one with several is settled
    /// only when nothing else is pending, by its most preferred provider.
    /// Returns the kept packages by name and the ordering graph over their
    /// positions, with `Requires(pre)` as strong edges.
    pub(super) fn prune(&self, solution: &[bool], roots: Vec<Clause>) -> (Vec<u32>, Graph<usize>) {
        let mut keep = vec![false; self.pkgs.len()];
        let mut kept: Vec<u32> = Vec::new();
        let mut clauses: Vec<(Option<u32>, Clause)> =
            roots.into_iter().map(|c| (None, c)).collect();
        let mut loaded = 0;
        let active =
            |c: &Clause, keep: &[bool]| c.neg.iter().all(|n| n.iter().any(|&p| keep[p as usize]));
        loop {
            while loaded < kept.len() {
                let p = kept[loaded];
                clauses.extend(
                    self.clauses_of(p)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|c| (Some(p), c)),
                );
                loaded += 1;
            }
            let mut progress = false;
            let mut choice = None;
            for (_, c) in &clauses {
                if !active(c, &keep) || c.pos.iter().any(|&p| keep[p as usize]) {
                    continue;
                }
                let mut sat = c.pos.iter().copied().filter(|&p| solution[p as usize]);
                match (sat.next(), sat.next()) {
                    (Some(p), None) => {
                        keep[p as usize] = true;
                        kept.push(p);
                        progress = true;
                    }
                    (Some(p), Some(_)) if choice.is_none() => choice = Some(p),
                    _ => {}
                }
            }
            if progress {
                continue;
            }
            let Some(p) = choice else { break };
            keep[p as usize] = true;
            kept.push(p);
        }
        kept.sort_by(|&a, &b| {
            let (pa, pb) = (&self.pkgs[a as usize], &self.pkgs[b as usize]);
            (&pa.name, &pa.arch)
                .cmp(&(&pb.name, &pb.arch))
                .then_with(|| pa.cmp_evr(pb))
                .then(a.cmp(&b))
        });
        let pos: HashMap<u32, usize> = kept.iter().enumerate().map(|(i, &p)| (p, i)).collect();
        // Positions as keys: the sort above is the tie-break order, and EVR
        // order is not a plain key.
        let mut graph = Graph::new((0..kept.len()).collect());
        for (owner, c) in &clauses {
            let Some(&u) = owner.as_ref().and_then(|o| pos.get(o)) else {
                continue;
            };
            if !active(c, &keep) {
                continue;
            }
            if let Some(&v) = c.pos.iter().find_map(|p| pos.get(p)) {
                graph.add_edge(u, v, Strength::strong_if(c.pre));
            }
        }
        (kept, graph)
    }
}

pub(super) fn collect_paths(terms: &[Term], out: &mut HashSet<String>) {
    for t in terms {
        match t {
            Term::Dep(a) if a.name.starts_with('/') => {
                out.insert(a.name.clone());
            }
            Term::Dep(_) => {}
            Term::With(a, b) | Term::Without(a, b) => {
                collect_paths(&[(**a).clone(), (**b).clone()], out)
            }
        }
    }
}
