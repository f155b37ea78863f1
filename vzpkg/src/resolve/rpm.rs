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

use super::order::{Graph, Strength};
use crate::rpmversion::{parse_evr, rpmvercmp};
use crate::source::comps::Comps;
use crate::source::rpm::{DepFlags, RpmDep, RpmFileList, RpmPackage};
use resolvo::utils::{Pool, VersionSet};
use resolvo::{
    Candidates, Condition, ConditionId, ConditionalRequirement, Dependencies, DependencyProvider,
    Interner, KnownDependencies, LogicalOperator, NameId, Problem, Requirement, SolvableId, Solver,
    SolverCache, StringId, UnsolvableOrCancelled, VersionSetId, VersionSetUnionId,
};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::{self, Display};
use thiserror::Error;

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

// ---------------------------------------------------------------------------
// Versions and capabilities

/// One side of a dependency comparison: flags and `[E:]V[-R]`.
#[derive(Debug, Clone, Copy)]
struct Range<'a> {
    flags: DepFlags,
    epoch: u32,
    version: Option<&'a str>,
    release: Option<&'a str>,
}

const LESS: u8 = 1;
const EQUAL: u8 = 2;
const GREATER: u8 = 4;

fn sense(flags: DepFlags) -> u8 {
    match flags {
        DepFlags::Any => 0,
        DepFlags::Lt => LESS,
        DepFlags::Le => LESS | EQUAL,
        DepFlags::Eq => EQUAL,
        DepFlags::Ge => GREATER | EQUAL,
        DepFlags::Gt => GREATER,
    }
}

/// Whether two ranges overlap, as rpm's `rpmdsCompare`: an unversioned side
/// matches everything, a missing epoch is 0, and a side without a release
/// matches any release when its range includes equality.
fn overlap(a: &Range<'_>, b: &Range<'_>) -> bool {
    let (fa, fb) = (sense(a.flags), sense(b.flags));
    if fa == 0 || fb == 0 {
        return true;
    }
    let (Some(va), Some(vb)) = (
        a.version.filter(|v| !v.is_empty()),
        b.version.filter(|v| !v.is_empty()),
    ) else {
        return true;
    };
    let mut ord = a.epoch.cmp(&b.epoch).then_with(|| rpmvercmp(va, vb));
    if ord == Ordering::Equal {
        let ra = a.release.filter(|r| !r.is_empty());
        let rb = b.release.filter(|r| !r.is_empty());
        match (ra, rb) {
            (Some(ra), Some(rb)) => ord = rpmvercmp(ra, rb),
            _ => {
                if (ra.is_some() && fb & EQUAL != 0) || (rb.is_some() && fa & EQUAL != 0) {
                    return true;
                }
            }
        }
    }
    match ord {
        Ordering::Less => fa & GREATER != 0 || fb & LESS != 0,
        Ordering::Greater => fa & LESS != 0 || fb & GREATER != 0,
        Ordering::Equal => fa & fb != 0,
    }
}

/// A simple dependency, owned (rich dependencies are parsed from text).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Atom {
    name: String,
    flags: DepFlags,
    epoch: u32,
    version: Option<String>,
    release: Option<String>,
}

impl Atom {
    fn of(d: &RpmDep) -> Atom {
        Atom {
            name: d.name.clone(),
            flags: d.flags,
            epoch: d.epoch.unwrap_or(0),
            version: d.version.clone(),
            release: d.release.clone(),
        }
    }

    fn range(&self) -> Range<'_> {
        Range {
            flags: self.flags,
            epoch: self.epoch,
            version: self.version.as_deref(),
            release: self.release.as_deref(),
        }
    }
}

fn flags_str(f: DepFlags) -> &'static str {
    match f {
        DepFlags::Any => "",
        DepFlags::Lt => "<",
        DepFlags::Le => "<=",
        DepFlags::Eq => "=",
        DepFlags::Ge => ">=",
        DepFlags::Gt => ">",
    }
}

impl Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        let Some(v) = self
            .version
            .as_deref()
            .filter(|_| self.flags != DepFlags::Any)
        else {
            return Ok(());
        };
        write!(f, " {} ", flags_str(self.flags))?;
        if self.epoch > 0 {
            write!(f, "{}:", self.epoch)?;
        }
        f.write_str(v)?;
        match self.release.as_deref() {
            Some(r) if !r.is_empty() => write!(f, "-{r}"),
            _ => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------
// Rich (boolean) dependencies

/// A package predicate: what one atom of a rich dependency stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Dep(Atom),
    /// A single package satisfying both.
    With(Box<Term>, Box<Term>),
    /// A single package satisfying the first and not the second.
    Without(Box<Term>, Box<Term>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rich {
    Term(Term),
    And(Vec<Rich>),
    Or(Vec<Rich>),
    /// `(then if cond [else otherwise])`
    If(Box<Rich>, Box<Rich>, Option<Box<Rich>>),
    /// `(then unless cond [else otherwise])`
    Unless(Box<Rich>, Box<Rich>, Option<Box<Rich>>),
}

struct RichParser<'a> {
    s: &'a str,
    pos: usize,
}

const OPERATORS: [&str; 7] = ["and", "or", "if", "unless", "else", "with", "without"];

impl<'a> RichParser<'a> {
    fn skip_ws(&mut self) {
        while self.s[self.pos..].starts_with(|c: char| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    /// A word as rpm reads one: up to white space, `,` or a `)` that
    /// closes nothing opened inside the word (`libc.so.6()(64bit)`).
    fn word(&mut self) -> &'a str {
        let start = self.pos;
        let mut depth = 0usize;
        for (i, c) in self.s[start..].char_indices() {
            match c {
                c if c.is_whitespace() || c == ',' => {
                    self.pos = start + i;
                    return &self.s[start..self.pos];
                }
                ')' if depth == 0 => {
                    self.pos = start + i;
                    return &self.s[start..self.pos];
                }
                ')' => depth -= 1,
                '(' => depth += 1,
                _ => {}
            }
        }
        self.pos = self.s.len();
        &self.s[start..]
    }

    /// After an opening `(`: operands joined by one operator, then `)`.
    fn group(&mut self) -> Result<Rich, String> {
        let first = self.operand()?;
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
            return Ok(first);
        }
        let op = self.word();
        let out = match op {
            "and" | "or" | "with" => {
                let mut items = vec![first, self.operand()?];
                loop {
                    self.skip_ws();
                    if self.peek() == Some(')') {
                        break;
                    }
                    let next = self.word();
                    if next != op {
                        return Err(format!("`{op}` and `{next}` are mixed without parentheses"));
                    }
                    items.push(self.operand()?);
                }
                match op {
                    "and" => Rich::And(items),
                    "or" => Rich::Or(items),
                    _ => {
                        let mut terms = items.into_iter().map(term_of);
                        let Some(first) = terms.next() else {
                            return Err("`with` without operands".into());
                        };
                        Rich::Term(terms.try_fold(first?, |acc, t| {
                            Ok::<_, String>(Term::With(Box::new(acc), Box::new(t?)))
                        })?)
                    }
                }
            }
            "without" => {
                let rhs = term_of(self.operand()?)?;
                Rich::Term(Term::Without(Box::new(term_of(first)?), Box::new(rhs)))
            }
            "if" | "unless" => {
                let cond = self.operand()?;
                self.skip_ws();
                let otherwise = if self.peek() == Some(')') {
                    None
                } else {
                    match self.word() {
                        "else" => Some(Box::new(self.operand()?)),
                        other => return Err(format!("expected `else` or `)`, found {other:?}")),
                    }
                };
                let (then, cond) = (Box::new(first), Box::new(cond));
                if op == "if" {
                    Rich::If(then, cond, otherwise)
                } else {
                    Rich::Unless(then, cond, otherwise)
                }
            }
            "" => return Err("missing `)`".into()),
            other => return Err(format!("unknown operator {other:?}")),
        };
        self.skip_ws();
        if self.peek() != Some(')') {
            return Err("missing `)`, or operators mixed without parentheses".into());
        }
        self.pos += 1;
        Ok(out)
    }

    fn operand(&mut self) -> Result<Rich, String> {
        self.skip_ws();
        match self.peek() {
            None => return Err("ends where an operand was expected".into()),
            Some('(') => {
                self.pos += 1;
                return self.group();
            }
            Some(')') => return Err("an operand is missing before `)`".into()),
            _ => {}
        }
        let name = self.word();
        if OPERATORS.contains(&name) {
            return Err(format!("operator `{name}` where a dependency was expected"));
        }
        let save = self.pos;
        self.skip_ws();
        let op_start = self.pos;
        let op = self.word();
        let flags = match op {
            "<" => DepFlags::Lt,
            "<=" | "=<" => DepFlags::Le,
            "=" | "==" => DepFlags::Eq,
            ">=" | "=>" => DepFlags::Ge,
            ">" => DepFlags::Gt,
            _ => {
                self.pos = if op.is_empty() { save } else { op_start };
                return Ok(Rich::Term(Term::Dep(Atom {
                    name: name.into(),
                    flags: DepFlags::Any,
                    epoch: 0,
                    version: None,
                    release: None,
                })));
            }
        };
        self.skip_ws();
        let evr = self.word();
        if evr.is_empty() {
            return Err(format!("no version after `{name} {op}`"));
        }
        let (epoch, version, release) = parse_evr(evr);
        Ok(Rich::Term(Term::Dep(Atom {
            name: name.into(),
            flags,
            epoch,
            version: Some(version.into()),
            release: release.map(String::from),
        })))
    }
}

fn term_of(r: Rich) -> Result<Term, String> {
    match r {
        Rich::Term(t) => Ok(t),
        _ => Err("`with`/`without` take simple dependencies only".into()),
    }
}

fn parse_rich(text: &str) -> Result<Rich, String> {
    let mut p = RichParser { s: text, pos: 0 };
    p.skip_ws();
    if p.peek() != Some('(') {
        return Err("a rich dependency starts with `(`".into());
    }
    p.pos += 1;
    let r = p.group()?;
    p.skip_ws();
    if p.pos != text.len() {
        return Err(format!(
            "unexpected {:?} after the closing `)`",
            &text[p.pos..]
        ));
    }
    Ok(r)
}

/// A formula in negation normal form over terms (by index).
enum Form {
    Lit(usize, bool),
    And(Vec<Form>),
    Or(Vec<Form>),
}

fn to_form(r: &Rich, positive: bool, terms: &mut Vec<Term>) -> Form {
    let mut f = |r: &Rich, p: bool| to_form(r, p, terms);
    // `and`/`or` swap under negation; `if`/`unless` are rewritten first.
    let junction = |items: Vec<Form>, conj: bool| {
        if conj == positive {
            Form::And(items)
        } else {
            Form::Or(items)
        }
    };
    match r {
        Rich::Term(t) => {
            let i = match terms.iter().position(|x| x == t) {
                Some(i) => i,
                None => {
                    terms.push(t.clone());
                    terms.len() - 1
                }
            };
            Form::Lit(i, positive)
        }
        Rich::And(xs) => junction(xs.iter().map(|x| f(x, positive)).collect(), true),
        Rich::Or(xs) => junction(xs.iter().map(|x| f(x, positive)).collect(), false),
        // a if c  ==  a or not c
        Rich::If(a, c, None) => junction(vec![f(a, positive), f(c, !positive)], false),
        // a if c else b  ==  (a or not c) and (c or b)
        Rich::If(a, c, Some(b)) => {
            let first = junction(vec![f(a, positive), f(c, !positive)], false);
            // The else branch first: it is what to install when c is not.
            let second = junction(vec![f(b, positive), f(c, positive)], false);
            junction(vec![first, second], true)
        }
        // a unless c  ==  a or c
        Rich::Unless(a, c, None) => junction(vec![f(a, positive), f(c, positive)], false),
        // a unless c else b  ==  b if c else a
        Rich::Unless(a, c, Some(b)) => {
            let first = junction(vec![f(b, positive), f(c, !positive)], false);
            let second = junction(vec![f(a, positive), f(c, positive)], false);
            junction(vec![first, second], true)
        }
    }
}

/// More clauses than this means a pathological rich dependency.
const MAX_CLAUSES: usize = 256;

/// Clauses of literals (term index, positive); tautologies dropped.
fn cnf(f: &Form) -> Result<Vec<Vec<(usize, bool)>>, String> {
    let out = match f {
        Form::Lit(i, p) => vec![vec![(*i, *p)]],
        Form::And(xs) => {
            let mut out = Vec::new();
            for x in xs {
                out.extend(cnf(x)?);
            }
            out
        }
        Form::Or(xs) => {
            let mut acc: Vec<Vec<(usize, bool)>> = vec![Vec::new()];
            for x in xs {
                let part = cnf(x)?;
                let mut next = Vec::new();
                for a in &acc {
                    for b in &part {
                        let mut c = a.clone();
                        for l in b {
                            if !c.contains(l) {
                                c.push(*l);
                            }
                        }
                        if !c.iter().any(|&(i, p)| c.contains(&(i, !p))) {
                            next.push(c);
                        }
                    }
                }
                if next.len() > MAX_CLAUSES {
                    return Err("the rich dependency is too complex".into());
                }
                acc = next;
            }
            acc
        }
    };
    if out.len() > MAX_CLAUSES {
        return Err("the rich dependency is too complex".into());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// The index seen from one architecture

/// `(multilib, preference)` of a package architecture for `target`, or
/// `None` when it cannot be installed there.
fn arch_class(target: &str, arch: &str) -> Option<(bool, u8)> {
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
fn glob(pattern: &str, name: &str) -> bool {
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
struct Clause {
    text: String,
    pre: bool,
    /// Whether the requirement is a single file path.
    file: bool,
    /// Providers, in preference order.
    pos: Vec<u32>,
    /// Providers of each negated atom, sorted by index.
    neg: Vec<Vec<u32>>,
}

struct Prov<'a> {
    pkg: u32,
    range: Range<'a>,
}

struct Index<'a> {
    pkgs: &'a [RpmPackage],
    usable: Vec<bool>,
    multilib: Vec<bool>,
    arch_pref: Vec<u8>,
    excluded: Vec<bool>,
    /// Provides, including each package's own `name = EVR`.
    caps: HashMap<&'a str, Vec<Prov<'a>>>,
    files: HashMap<&'a str, Vec<u32>>,
    by_name: HashMap<&'a str, Vec<u32>>,
    filelists_given: bool,
    /// Preference rank of each usable package (lower is better).
    pref: Vec<u32>,
    /// Packages (other names) obsoleting each package.
    obsoleted_by: HashMap<u32, Vec<u32>>,
}

impl<'a> Index<'a> {
    fn new(
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

    fn obsoletes_map(&self) -> HashMap<u32, Vec<u32>> {
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
    fn obsoleted(&self, d: &RpmDep) -> Vec<u32> {
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
    fn preference(&self, roots: &[&str]) -> Vec<u32> {
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
    fn providers(&self, term: &Term, prefer_native: bool) -> Vec<u32> {
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
    fn install_providers(&self, text: &str) -> Vec<u32> {
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
    fn ordered(&self, mut c: Clause) -> Clause {
        c.pos.sort_by_key(|&p| self.pref[p as usize]);
        c
    }

    fn names_of(&self, pkgs: &[u32]) -> Vec<String> {
        let names: BTreeSet<&str> = pkgs
            .iter()
            .map(|&p| self.pkgs[p as usize].name.as_str())
            .collect();
        names.into_iter().map(String::from).collect()
    }

    /// The requirement clauses of a package (rich Conflicts included, as
    /// the clauses of their negation). An error names what cannot be read.
    fn clauses_of(&self, pkg: u32) -> Result<Vec<Clause>, String> {
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

    fn rich_clauses(
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
    fn prune(&self, solution: &[bool], roots: Vec<Clause>) -> (Vec<u32>, Graph<usize>) {
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

fn collect_paths(terms: &[Term], out: &mut HashSet<String>) {
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

// ---------------------------------------------------------------------------
// The solver's view

/// Which candidates of one solver name a version set admits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Vs {
    /// These packages (sorted): the providers of `what` on this name.
    OneOf { pkgs: Vec<u32>, what: String },
    /// All but these packages (sorted): what `what` rules out.
    NotIn { pkgs: Vec<u32>, what: String },
}

impl VersionSet for Vs {
    type V = String;
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum NameKey {
    Pkg {
        name: String,
        multilib: bool,
    },
    /// A requirement nothing provides.
    Missing(String),
}

struct RpmProvider<'a> {
    ix: Index<'a>,
    pool: Pool<Vs, NameKey>,
    /// Candidates by NameId, in preference order; names interned later
    /// (`Missing`) have none.
    cands: Vec<Vec<SolvableId>>,
    name_of_pkg: Vec<Option<NameId>>,
    solv_pkg: Vec<u32>,
    solv_name: Vec<NameId>,
    excluded_reason: StringId,
}

impl<'a> RpmProvider<'a> {
    fn new(ix: Index<'a>) -> Self {
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

    fn pkg(&self, s: SolvableId) -> &'a RpmPackage {
        &self.ix.pkgs[self.solv_pkg[s.into_raw() as usize] as usize]
    }

    /// One version set per solver name, in the order of `pkgs`.
    fn sets(&self, pkgs: &[u32], what: &str, not: bool) -> Vec<VersionSetId> {
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

    fn requirement(&self, c: &Clause) -> ConditionalRequirement {
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
    fn constraints(&self, pkg: u32) -> Vec<VersionSetId> {
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
    fn diagnose(&self, roots: &[(String, Clause)], explanation: String) -> RpmResolveError {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::rpm::{Checksum, ChecksumKind};

    /// `name [op [E:]V[-R]]`, or a rich dependency as a whole.
    fn dep(text: &str) -> RpmDep {
        let mut d = RpmDep {
            name: text.to_string(),
            flags: DepFlags::Any,
            epoch: None,
            version: None,
            release: None,
            pre: false,
        };
        if text.starts_with('(') {
            return d;
        }
        let parts: Vec<&str> = text.split_whitespace().collect();
        if let [name, op, evr] = parts[..] {
            let (e, v, r) = parse_evr(evr);
            d.name = name.to_string();
            d.flags = match op {
                "<" => DepFlags::Lt,
                "<=" => DepFlags::Le,
                "=" => DepFlags::Eq,
                ">=" => DepFlags::Ge,
                ">" => DepFlags::Gt,
                _ => panic!("bad operator in {text:?}"),
            };
            d.epoch = evr.contains(':').then_some(e);
            d.version = Some(v.to_string());
            d.release = r.map(String::from);
        }
        d
    }

    struct P(RpmPackage);

    impl P {
        /// `evr` is `[E:]V-R`.
        fn new(name: &str, evr: &str) -> P {
            let (epoch, version, release) = parse_evr(evr);
            P(RpmPackage {
                name: name.into(),
                epoch,
                version: version.into(),
                release: release.unwrap_or("1").into(),
                arch: "x86_64".into(),
                location_href: format!("Packages/{name}.rpm"),
                location_base: None,
                size: 1,
                installed_size: 1,
                checksum: Checksum {
                    kind: ChecksumKind::Sha256,
                    hex: String::new(),
                },
                provides: Vec::new(),
                requires: Vec::new(),
                conflicts: Vec::new(),
                obsoletes: Vec::new(),
                files: Vec::new(),
            })
        }
        fn arch(mut self, a: &str) -> P {
            self.0.arch = a.into();
            self
        }
        fn req(mut self, d: &str) -> P {
            self.0.requires.push(dep(d));
            self
        }
        fn pre(mut self, d: &str) -> P {
            let mut d = dep(d);
            d.pre = true;
            self.0.requires.push(d);
            self
        }
        fn prov(mut self, d: &str) -> P {
            self.0.provides.push(dep(d));
            self
        }
        fn conflicts(mut self, d: &str) -> P {
            self.0.conflicts.push(dep(d));
            self
        }
        fn obsoletes(mut self, d: &str) -> P {
            self.0.obsoletes.push(dep(d));
            self
        }
        fn file(mut self, f: &str) -> P {
            self.0.files.push(f.into());
            self
        }
    }

    fn index(ps: Vec<P>) -> Vec<RpmPackage> {
        ps.into_iter()
            .map(|P(mut p)| {
                p.checksum.hex = ChecksumKind::Sha256.hex_digest(p.nevra().as_bytes());
                p
            })
            .collect()
    }

    fn req(install: &[&str], exclude: &[&str]) -> RpmRequest {
        RpmRequest {
            install: install.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            arch: "x86_64".into(),
        }
    }

    /// `name-evr.arch` in install order; every requirement of the result
    /// is checked to be met inside it.
    fn run_with(idx: &[RpmPackage], r: &RpmRequest, files: &[RpmFileList]) -> Vec<String> {
        let set = resolve_with_filelists(idx, r, files).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            unsatisfied_requirements(&set, &r.arch, files),
            Vec::<String>::new()
        );
        set.iter().map(|p| p.nevra()).collect()
    }

    fn run(idx: &[RpmPackage], r: &RpmRequest) -> Vec<String> {
        run_with(idx, r, &[])
    }

    fn names(v: &[String]) -> Vec<&str> {
        // nevra without -V-R.arch: cut the last two dashes.
        v.iter()
            .map(|s| {
                let mut it = s.rmatch_indices('-');
                it.next();
                let cut = it.next().map_or(s.len(), |(i, _)| i);
                &s[..cut]
            })
            .collect()
    }

    fn range(f: DepFlags, evr: &str) -> (DepFlags, u32, String, Option<String>) {
        let (e, v, r) = parse_evr(evr);
        (f, e, v.to_string(), r.map(String::from))
    }

    #[test]
    fn overlap_follows_rpm() {
        use DepFlags::*;
        // (provide, requirement, overlaps)
        let table = [
            ((Eq, "1.0-3"), (Ge, "1.0"), true),
            ((Eq, "1.0-3"), (Gt, "1.0"), false),
            ((Eq, "1.0-3"), (Lt, "1.0"), false),
            ((Eq, "1.0-3"), (Eq, "1.0"), true),
            ((Eq, "1.0"), (Eq, "1.0-3"), true),
            ((Eq, "1.0-3"), (Eq, "1.0-4"), false),
            ((Eq, "1.0-3"), (Lt, "1.0-4"), true),
            ((Eq, "1:0.5-1"), (Ge, "1.0"), true),
            ((Eq, "0.5-1"), (Ge, "0:0.4"), true),
            ((Eq, "2.0-1"), (Lt, "1:0"), true),
            ((Eq, "1:2.0-1"), (Lt, "1:0"), false),
            ((Any, ""), (Ge, "3"), true),
            ((Ge, "2"), (Lt, "3"), true),
            ((Ge, "3"), (Lt, "3"), false),
            ((Le, "3"), (Ge, "3"), true),
            ((Eq, "1.0~rc1-1"), (Ge, "1.0"), false),
        ];
        for ((pf, pe), (rf, re), want) in table {
            let (a, b) = (range(pf, pe), range(rf, re));
            let ra = Range {
                flags: a.0,
                epoch: a.1,
                version: Some(&a.2),
                release: a.3.as_deref(),
            };
            let rb = Range {
                flags: b.0,
                epoch: b.1,
                version: Some(&b.2),
                release: b.3.as_deref(),
            };
            assert_eq!(overlap(&ra, &rb), want, "{pf:?} {pe} vs {rf:?} {re}");
            assert_eq!(
                overlap(&rb, &ra),
                want,
                "symmetric: {pf:?} {pe} vs {rf:?} {re}"
            );
        }
    }

    #[test]
    fn versioned_provides_and_requires_with_epochs() {
        let idx = index(vec![
            P::new("b", "2.0-1"),
            P::new("b", "1:0.5-1"),
            P::new("b", "1.0-1"),
            P::new("lt2", "1-1").req("b < 1:0"),
            P::new("eq1", "1-1").req("b = 1.0"),
            P::new("old", "1-1").req("b < 1.0"),
            P::new("a", "1-1").req("abi >= 2"),
            P::new("versioned", "1-1").prov("abi = 2.1"),
            P::new("tooold", "1-1").prov("abi = 1.9"),
            P::new("c", "1-1").req("abi >= 3"),
        ]);
        // The epoch makes 1:0.5 the newest.
        assert_eq!(run(&idx, &req(&["b"], &[])), ["b-1:0.5-1.x86_64"]);
        assert_eq!(
            run(&idx, &req(&["lt2"], &[])),
            ["b-2.0-1.x86_64", "lt2-1-1.x86_64"]
        );
        // No release in the requirement: any release of 1.0 matches.
        assert_eq!(names(&run(&idx, &req(&["eq1"], &[])))[0], "b");
        assert!(run(&idx, &req(&["eq1"], &[]))[0].starts_with("b-1.0-1"));
        assert_eq!(names(&run(&idx, &req(&["a"], &[]))), ["versioned", "a"]);
        let err = resolve(&idx, &req(&["old"], &[])).unwrap_err();
        assert!(
            matches!(&err, RpmResolveError::MissingDependency { needer, requirement, .. }
                if needer == "old-1-1.x86_64" && requirement == "b < 1.0"),
            "{err}"
        );
        let err = resolve(&idx, &req(&["c"], &[])).unwrap_err();
        assert!(err.to_string().contains("abi >= 3"), "{err}");
        // An unversioned Provides satisfies any version, as in rpm.
        let mut idx2 = idx.clone();
        idx2.extend(index(vec![P::new("anyabi", "1-1").prov("abi")]));
        assert_eq!(names(&run(&idx2, &req(&["c"], &[]))), ["anyabi", "c"]);
    }

    #[test]
    fn file_requirements_from_primary_and_filelists() {
        let idx = index(vec![
            P::new("a", "1-1").req("/bin/sh"),
            P::new("bash", "5.1-1")
                .file("/bin/sh")
                .file("/usr/bin/bash"),
            P::new("tool", "1-1").req("/usr/libexec/helper"),
            P::new("helper", "1-1"),
        ]);
        assert_eq!(names(&run(&idx, &req(&["a"], &[]))), ["bash", "a"]);
        assert_eq!(names(&run(&idx, &req(&["/bin/sh"], &[]))), ["bash"]);
        let err = resolve(&idx, &req(&["tool"], &[])).unwrap_err();
        assert!(err.needs_filelists(), "{err}");
        assert!(
            matches!(&err, RpmResolveError::NeedsFilelists { needer, path, .. }
                if needer == "tool-1-1.x86_64" && path == "/usr/libexec/helper"),
            "{err}"
        );
        let helper = &idx[3];
        let lists = vec![RpmFileList {
            pkgid: helper.checksum.hex.clone(),
            name: helper.name.clone(),
            arch: helper.arch.clone(),
            epoch: 0,
            version: helper.version.clone(),
            release: helper.release.clone(),
            files: vec!["/usr/libexec".into(), "/usr/libexec/helper".into()],
        }];
        assert_eq!(
            names(&run_with(&idx, &req(&["tool"], &[]), &lists)),
            ["helper", "tool"]
        );
        // With the full lists, a path nobody has is a plain missing dependency.
        let idx3 = index(vec![P::new("t", "1-1").req("/nowhere")]);
        let err = resolve_with_filelists(&idx3, &req(&["t"], &[]), &lists).unwrap_err();
        assert!(
            matches!(&err, RpmResolveError::MissingDependency { requirement, .. } if requirement == "/nowhere"),
            "{err}"
        );
    }

    #[test]
    fn obsoletes_replace_and_exclude() {
        let idx = index(vec![
            P::new("oldfoo", "1.5-1"),
            P::new("newfoo", "2-1")
                .obsoletes("oldfoo < 2")
                .prov("oldfoo = 2"),
            P::new("renamed", "1-1").obsoletes("gone <= 1"),
            P::new("gone", "1-1"),
            P::new("user", "1-1").req("oldfoo"),
            P::new("keeps", "1-1").req("gone"),
        ]);
        // A requirement satisfied by both goes to the replacement.
        assert_eq!(names(&run(&idx, &req(&["user"], &[]))), ["newfoo", "user"]);
        // Asking for the obsoleted name installs what replaces it, as dnf does.
        assert_eq!(names(&run(&idx, &req(&["gone"], &[]))), ["renamed"]);
        assert_eq!(names(&run(&idx, &req(&["oldfoo"], &[]))), ["newfoo"]);
        // Never both.
        let err = resolve(&idx, &req(&["renamed", "keeps"], &[])).unwrap_err();
        eprintln!("{err}");
        assert!(
            matches!(err, RpmResolveError::Unsatisfiable { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("obsoleted by renamed"), "{err}");
        // An obsoletes range that misses the version leaves it installable.
        let idx2 = index(vec![
            P::new("gone", "3-1"),
            P::new("renamed", "1-1").obsoletes("gone <= 1"),
        ]);
        assert_eq!(
            names(&run(&idx2, &req(&["renamed", "gone"], &[]))),
            ["gone", "renamed"]
        );
    }

    #[test]
    fn conflicts_steer_the_choice() {
        let idx = index(vec![
            P::new("a", "1-1").req("MTA"),
            P::new("exim", "4-1").prov("MTA"),
            P::new("sendmail", "8-1").prov("MTA"),
            P::new("c", "1-1").conflicts("exim < 5"),
            P::new("d", "1-1").conflicts("MTA"),
            P::new("e", "1-1").conflicts("/usr/sbin/sendmail"),
            P::new("postfix", "3-1").file("/usr/sbin/sendmail"),
        ]);
        // The shorter provider name wins without conflicts.
        assert_eq!(names(&run(&idx, &req(&["a"], &[]))), ["exim", "a"]);
        assert_eq!(
            names(&run(&idx, &req(&["c", "a"], &[]))),
            ["c", "sendmail", "a"]
        );
        let err = resolve(&idx, &req(&["d", "a"], &[])).unwrap_err();
        assert!(
            matches!(err, RpmResolveError::Unsatisfiable { .. }),
            "{err}"
        );
        let err = resolve(&idx, &req(&["e", "postfix"], &[])).unwrap_err();
        assert!(err.to_string().contains("conflicts with"), "{err}");
        // A package conflicting with what it provides itself stays installable.
        let idx2 = index(vec![P::new("x", "1-1").prov("MTA").conflicts("MTA")]);
        assert_eq!(names(&run(&idx2, &req(&["x"], &[]))), ["x"]);
    }

    #[test]
    fn rich_dependencies() {
        let base = [
            P::new("a", "1-1"),
            P::new("b", "1-1"),
            P::new("c", "1-1"),
            P::new("foo", "0.9-1"),
            P::new("bar", "1-1"),
            P::new("baz", "2-1"),
            P::new("lib", "1-1").prov("cap(x)").prov("flavour = 2"),
            P::new("lib2", "1-1").prov("cap(x)"),
        ];
        let with = |extra: Vec<P>| {
            let mut all = index(base.iter().map(|p| P(p.0.clone())).collect());
            all.extend(index(extra));
            all
        };
        let set = |idx: &[RpmPackage], inst: &[&str]| {
            let mut n: Vec<String> = names(&run(idx, &req(inst, &[])))
                .into_iter()
                .map(String::from)
                .collect();
            n.sort();
            n
        };
        let idx = with(vec![
            P::new("or", "1-1").req("(a or b)"),
            P::new("and", "1-1").req("(a and b)"),
            P::new("if", "1-1").req("(a if b)"),
            P::new("ifelse", "1-1").req("(a if b else c)"),
            P::new("unless", "1-1").req("(a unless b)"),
            P::new("unlesselse", "1-1").req("(a unless b else c)"),
            P::new("nested", "1-1").req("(foo >= 1.0 or (bar and baz < 2))"),
            P::new("nested2", "1-1").req("(foo >= 0.5 or (bar and baz < 2))"),
            P::new("with", "1-1").req("(cap(x) with flavour >= 2)"),
            P::new("without", "1-1").req("(cap(x) without flavour)"),
            P::new("broken", "1-1").req("(a or"),
        ]);
        assert_eq!(set(&idx, &["or"]), ["a", "or"]);
        // b is wanted anyway, so it serves `a or b` too.
        assert_eq!(set(&idx, &["b", "or"]), ["b", "or"]);
        assert_eq!(set(&idx, &["and"]), ["a", "and", "b"]);
        assert_eq!(set(&idx, &["if"]), ["if"]);
        assert_eq!(set(&idx, &["if", "b"]), ["a", "b", "if"]);
        assert_eq!(set(&idx, &["ifelse"]), ["c", "ifelse"]);
        assert_eq!(set(&idx, &["ifelse", "b"]), ["a", "b", "ifelse"]);
        assert_eq!(set(&idx, &["unless"]), ["a", "unless"]);
        assert_eq!(set(&idx, &["unless", "b"]), ["b", "unless"]);
        assert_eq!(set(&idx, &["unlesselse"]), ["a", "unlesselse"]);
        assert_eq!(set(&idx, &["unlesselse", "b"]), ["b", "c", "unlesselse"]);
        // foo 0.9 is too old for the first branch; baz 2 too new for the second.
        let err = resolve(&idx, &req(&["nested"], &[])).unwrap_err();
        assert!(
            matches!(&err, RpmResolveError::MissingDependency { requirement, .. }
                if requirement == "(foo >= 1.0 or (bar and baz < 2))"),
            "{err}"
        );
        assert_eq!(set(&idx, &["nested2"]), ["foo", "nested2"]);
        assert_eq!(set(&idx, &["with"]), ["lib", "with"]);
        assert_eq!(set(&idx, &["without"]), ["lib2", "without"]);
        let err = resolve(&idx, &req(&["broken"], &[])).unwrap_err();
        assert!(
            matches!(&err, RpmResolveError::BadDependency { needer, .. } if needer == "broken-1-1.x86_64"),
            "{err}"
        );
        // A rich conflict: not both a and b.
        let idx = with(vec![P::new("rc", "1-1").conflicts("(a and b)")]);
        assert_eq!(set(&idx, &["rc", "a"]), ["a", "rc"]);
        assert!(resolve(&idx, &req(&["rc", "a", "b"], &[])).is_err());
        // A version inside stays attached to its name.
        let idx = with(vec![
            P::new("foo", "1.2-1"),
            P::new("v", "1-1").req("(foo >= 1.0 or bar)"),
        ]);
        assert_eq!(set(&idx, &["v"]), ["foo", "v"]);
        assert!(run(&idx, &req(&["v"], &[]))
            .iter()
            .any(|n| n == "foo-1.2-1.x86_64"));
    }

    #[test]
    fn rich_parser_shapes_and_errors() {
        let a = |n: &str| Rich::Term(Term::Dep(Atom::of(&dep(n))));
        assert_eq!(
            parse_rich("(a >= 1:2-3 or (b and libc.so.6()(64bit)))").unwrap(),
            Rich::Or(vec![
                a("a >= 1:2-3"),
                Rich::And(vec![a("b"), a("libc.so.6()(64bit)")])
            ])
        );
        assert_eq!(
            parse_rich("(perl(Foo::Bar) if x else y)").unwrap(),
            Rich::If(
                Box::new(a("perl(Foo::Bar)")),
                Box::new(a("x")),
                Some(Box::new(a("y")))
            )
        );
        for bad in [
            "(a or b and c)",
            "(a or",
            "(a >= )",
            "(a or b) x",
            "(or b)",
            "(a foo b)",
        ] {
            assert!(parse_rich(bad).is_err(), "{bad:?} should not parse");
        }
        let atom = Atom::of(&dep("x >= 1:2.0-3"));
        assert_eq!(atom.to_string(), "x >= 1:2.0-3");
    }

    #[test]
    fn multilib_arch_choice() {
        let idx = index(vec![
            P::new("glibc", "2.34-1").prov("libc.so.6()(64bit)"),
            P::new("glibc", "2.35-1").arch("i686").prov("libc.so.6"),
            P::new("app", "1-1").req("glibc").req("libc.so.6()(64bit)"),
            P::new("app32", "1-1").arch("i686").req("libc.so.6"),
            P::new("docs", "1-1").arch("noarch"),
            P::new("docs", "2-1").arch("aarch64"),
            P::new("only32", "1-1").arch("i686"),
            P::new("user32", "1-1").req("only32"),
        ]);
        // The native glibc, though the multilib one is newer.
        assert_eq!(
            run(&idx, &req(&["app"], &[])),
            ["glibc-2.34-1.x86_64", "app-1-1.x86_64"]
        );
        // libc.so.6 (32-bit) has only a multilib provider: both glibc.
        assert_eq!(
            run(&idx, &req(&["app32"], &[])),
            ["glibc-2.35-1.i686", "app32-1-1.i686"]
        );
        assert_eq!(
            run(&idx, &req(&["app32", "glibc"], &[])),
            ["glibc-2.35-1.i686", "app32-1-1.i686", "glibc-2.34-1.x86_64"]
        );
        assert_eq!(run(&idx, &req(&["docs"], &[])), ["docs-1-1.noarch"]);
        assert_eq!(
            run(&idx, &req(&["user32"], &[])),
            ["only32-1-1.i686", "user32-1-1.x86_64"]
        );
        assert_eq!(run(&idx, &req(&["glibc.i686"], &[])), ["glibc-2.35-1.i686"]);
        // An i386 target takes the best ia32 architecture, never x86_64.
        let idx = index(vec![
            P::new("k", "1-1").arch("i586"),
            P::new("k", "1-1").arch("i686"),
            P::new("k", "9-1"),
        ]);
        let mut r = req(&["k"], &[]);
        r.arch = "i386".into();
        assert_eq!(run(&idx, &r), ["k-1-1.i686"]);
        r.arch = "aarch64".into();
        assert!(matches!(
            resolve(&idx, &r),
            Err(RpmResolveError::UnknownInstall { name, arch }) if name == "k" && arch == "aarch64"
        ));
    }

    #[test]
    fn exclude_names_the_needer() {
        let idx = index(vec![
            P::new("top", "1-1").req("a"),
            P::new("a", "1-1").req("b"),
            P::new("b", "1-1"),
            P::new("sh1", "1-1").file("/bin/sh"),
            P::new("sh2", "1-1").file("/bin/sh"),
        ]);
        let err = resolve(&idx, &req(&["top"], &["b"])).unwrap_err();
        match &err {
            RpmResolveError::NeedsExcluded {
                needer,
                requirement,
                excluded,
                ..
            } => {
                assert_eq!(needer, "a-1-1.x86_64");
                assert_eq!(requirement, "b");
                assert_eq!(excluded, "b is");
            }
            other => panic!("unexpected: {other}"),
        }
        assert!(err.to_string().contains("exclude a too"), "{err}");
        // Globs; excluding one provider leaves the other.
        assert_eq!(names(&run(&idx, &req(&["/bin/sh"], &["sh1"]))), ["sh2"]);
        assert!(matches!(
            resolve(&idx, &req(&["/bin/sh"], &["sh*"])),
            Err(RpmResolveError::InstallNeedsExcluded { name, excluded })
                if name == "/bin/sh" && excluded == "sh1, sh2"
        ));
    }

    #[test]
    fn unsatisfiable_names_the_missing_thing() {
        let idx = index(vec![
            P::new("top", "1-1").req("a"),
            P::new("a", "1-1").req("glibc").req("nothere >= 2"),
            P::new("a", "2-1").req("nothere >= 2"),
            P::new("glibc", "1-1"),
        ]);
        let err = resolve(&idx, &req(&["top"], &[])).unwrap_err();
        assert!(
            matches!(&err, RpmResolveError::MissingDependency { needer, requirement, .. }
                if needer == "a-2-1.x86_64" && requirement == "nothere >= 2"),
            "{err}"
        );
        eprintln!("{err}");
        // The solver's own explanation is kept too.
        let explanation = err.to_string();
        assert!(explanation.lines().count() > 1, "{err}");
        assert!(explanation.contains("nothere"), "{err}");
    }

    #[test]
    fn groups_expand_to_what_the_index_has_and_the_recipe_allows() {
        let comps = crate::source::comps::parse_comps(
            &mut &br#"<comps><group><id>core</id><packagelist>
              <packagereq type="mandatory">a</packagereq>
              <packagereq>b</packagereq>
              <packagereq>gone</packagereq>
              <packagereq type="optional">c</packagereq>
            </packagelist></group></comps>"#[..],
        )
        .unwrap();
        let idx = index(vec![
            P::new("a", "1-1"),
            P::new("b", "1-1"),
            P::new("c", "1-1"),
        ]);
        let install = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (out, skipped) = expand_groups(
            &install(&["c", "@core", "a"]),
            &install(&["b*"]),
            Some(&comps),
            &idx,
        )
        .unwrap();
        assert_eq!(out, ["c", "a"]);
        assert_eq!(skipped, ["b", "gone"]);
        assert!(matches!(
            expand_groups(&install(&["@web"]), &[], Some(&comps), &idx),
            Err(RpmResolveError::UnknownGroup { entry, known }) if entry == "@web" && known == "core"
        ));
        assert!(matches!(
            expand_groups(&install(&["@core"]), &[], None, &idx),
            Err(RpmResolveError::NoGroups { entry }) if entry == "@core"
        ));
    }

    #[test]
    fn request_errors_name_the_entry() {
        let idx = index(vec![P::new("a", "1-1").prov("config(a)")]);
        assert!(matches!(
            resolve(&idx, &req(&["@core"], &[])),
            Err(RpmResolveError::NoGroups { entry }) if entry == "@core"
        ));
        assert!(matches!(
            resolve(&idx, &req(&["zz"], &[])),
            Err(RpmResolveError::UnknownInstall { name, .. }) if name == "zz"
        ));
        assert!(matches!(
            resolve(&idx, &req(&["a"], &["a"])),
            Err(RpmResolveError::InstallExcluded { name }) if name == "a"
        ));
        assert!(matches!(
            resolve(&idx, &req(&["a"], &["zz*"])),
            Err(RpmResolveError::UnknownExclude { pattern }) if pattern == "zz*"
        ));
        assert_eq!(run(&idx, &req(&["config(a)"], &[])), ["a-1-1.x86_64"]);
        assert!(run(&idx, &req(&[], &[])).is_empty());
        assert!(glob("lib*-devel", "libfoo-devel") && !glob("lib?", "libxy"));
    }

    #[test]
    fn install_order_with_pre_requires_cycles() {
        let idx = index(vec![
            P::new("a", "1-1")
                .pre("b")
                .req("rpmlib(PayloadIsZstd) <= 5.4.18-1"),
            P::new("b", "1-1").req("a"),
            P::new("c", "1-1").req("a"),
            P::new("base", "1-1"),
            P::new("y", "1-1").pre("x"),
            P::new("x", "1-1").pre("y").pre("base"),
            P::new("z", "1-1").req("base").req("y"),
        ]);
        // b's plain Requires on a is dropped, a's Requires(pre) on b kept.
        assert_eq!(names(&run(&idx, &req(&["c"], &[]))), ["b", "a", "c"]);
        // A Requires(pre)-only cycle: broken by name, after its own dependencies.
        assert_eq!(names(&run(&idx, &req(&["y"], &[]))), ["base", "x", "y"]);
        assert_eq!(
            names(&run(&idx, &req(&["z"], &[]))),
            ["base", "x", "y", "z"]
        );
        // The same input in another order gives the same result.
        let mut rev = idx.clone();
        rev.reverse();
        for inst in [&["c"][..], &["z", "c"], &["y"]] {
            assert_eq!(run(&rev, &req(inst, &[])), run(&idx, &req(inst, &[])));
        }
    }

    #[test]
    fn order_of_acyclic_chain_is_dependencies_first() {
        // Also checks the component order against a chain built at random.
        use rand::seq::SliceRandom;
        let mut names_: Vec<String> = (0..30).map(|i| format!("p{i:02}")).collect();
        names_.shuffle(&mut rand::thread_rng());
        let ps: Vec<P> = names_
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let p = P::new(n, "1-1");
                match names_.get(i + 1) {
                    Some(next) => p.req(next),
                    None => p,
                }
            })
            .collect();
        let idx = index(ps);
        let got = run(&idx, &req(&[&names_[0]], &[]));
        let mut want: Vec<&str> = names_.iter().map(|s| s.as_str()).collect();
        want.reverse();
        assert_eq!(names(&got), want);
    }

    fn decompressed(path: &std::path::Path) -> Vec<u8> {
        use std::io::Read;
        let data = std::fs::read(path).unwrap();
        if data.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&data[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        } else {
            data
        }
    }

    /// Real packages from the `rpm` crate's builder, indexed by createrepo_c.
    #[test]
    fn real_repository_from_createrepo() {
        use crate::source::rpm::{parse_filelists, parse_primary, parse_repomd};
        use rpm::{Dependency, FileOptions, PackageBuilder};
        use std::process::Command;
        if Command::new("createrepo_c")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipped: createrepo_c is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let pkgs = dir.path().join("Packages");
        std::fs::create_dir(&pkgs).unwrap();
        let write = |b: &mut PackageBuilder| {
            let pkg = b.build().unwrap();
            pkg.write_file(pkgs.join(pkg.canonical_filename().unwrap()))
                .unwrap();
        };
        let mut b = PackageBuilder::new("shell", "5.1", "MIT", "x86_64", "a shell");
        b.release("1")
            .with_file_contents("", FileOptions::new("/usr/bin/sh"))
            .unwrap();
        write(&mut b);
        for (v, e) in [("1.2.11", 0), ("1.2.13", 1)] {
            let mut b = PackageBuilder::new("libz", v, "MIT", "x86_64", "compression");
            b.epoch(e)
                .release("2")
                .with_file_contents("", FileOptions::new("/usr/lib64/libz.so.1"))
                .unwrap()
                .provides(Dependency::any("libz.so.1()(64bit)"));
            write(&mut b);
        }
        let mut b = PackageBuilder::new("helper-data", "1", "MIT", "noarch", "data");
        b.release("1")
            .with_file_contents("x", FileOptions::new("/usr/share/helper/data"))
            .unwrap();
        write(&mut b);
        let mut b = PackageBuilder::new("oldapp", "0.9", "MIT", "x86_64", "old");
        b.release("1");
        write(&mut b);
        let mut b = PackageBuilder::new("app", "1.0", "MIT", "x86_64", "the app");
        b.release("1")
            .with_file_contents("", FileOptions::new("/usr/bin/app"))
            .unwrap()
            .requires(Dependency::script_pre("/usr/bin/sh"))
            .requires(Dependency::greater_eq("libz", "1:1.2"))
            .requires(Dependency::any("(libz.so.1()(64bit) or libzz)"))
            .requires(Dependency::any("/usr/share/helper/data"))
            .provides(Dependency::eq("app-api", "2"))
            .obsoletes(Dependency::less("oldapp", "1"));
        write(&mut b);
        let out = Command::new("createrepo_c")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let repomd = dir.path().join("repodata/repomd.xml");
        let md = parse_repomd(&std::fs::read_to_string(repomd).unwrap()).unwrap();
        let file = |kind: &str| decompressed(&dir.path().join(&md.get(kind).unwrap().href));
        let idx = parse_primary(&file("primary")[..]).unwrap();
        assert_eq!(idx.len(), 6);
        let lists = parse_filelists(&file("filelists")[..]).unwrap();

        let r = req(&["app-api", "oldapp"], &[]);
        let err = resolve(&idx, &r).unwrap_err();
        assert!(err.needs_filelists(), "{err}");
        assert!(err.to_string().contains("/usr/share/helper/data"), "{err}");
        let got = run_with(&idx, &r, &lists);
        // oldapp is obsoleted by app; the epoch makes libz 1.2.13 the one.
        assert_eq!(
            got,
            [
                "helper-data-1-1.noarch",
                "libz-1:1.2.13-2.x86_64",
                "shell-5.1-1.x86_64",
                "app-1.0-1.x86_64",
            ]
        );
    }

    /// Resolution on a real primary.xml(.gz) named by `VZPKG_TEST_PRIMARY`
    /// (and its filelists in `VZPKG_TEST_FILELISTS`, if set); skipped when
    /// it is not set.
    #[test]
    fn real_primary() {
        use crate::source::rpm::{parse_filelists, parse_primary};
        let Some(path) = std::env::var_os("VZPKG_TEST_PRIMARY") else {
            eprintln!("skipped: set VZPKG_TEST_PRIMARY to a primary.xml(.gz) file");
            return;
        };
        let idx = parse_primary(&decompressed(path.as_ref())[..]).unwrap();
        let lists = match std::env::var_os("VZPKG_TEST_FILELISTS") {
            Some(p) => parse_filelists(&decompressed(p.as_ref())[..]).unwrap(),
            None => Vec::new(),
        };
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for p in idx.iter().filter(|p| p.arch != "noarch") {
            *counts.entry(p.arch.as_str()).or_default() += 1;
        }
        let arch = counts
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(a, _)| a.to_string())
            .unwrap();
        let install: Vec<String> = ["bash", "coreutils", "rpm", "dnf", "yum", "/bin/sh"]
            .iter()
            .filter(|n| idx.iter().any(|p| p.name == **n) || n.starts_with('/'))
            .map(|n| n.to_string())
            .collect();
        let r = RpmRequest {
            install,
            exclude: vec![],
            arch: arch.clone(),
        };
        let start = std::time::Instant::now();
        let set = match resolve_with_filelists(&idx, &r, &lists) {
            Ok(set) => set,
            Err(e) if e.needs_filelists() => {
                eprintln!("skipped: {e}\n(set VZPKG_TEST_FILELISTS to the filelists.xml)");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        eprintln!(
            "{:?} on {arch}: {} packages in {:?}",
            r.install,
            set.len(),
            start.elapsed()
        );
        let order: Vec<String> = set.iter().map(|p| p.nevra()).collect();
        eprintln!("{}", order.join(" "));
        assert_eq!(
            unsatisfied_requirements(&set, &arch, &lists),
            Vec::<String>::new()
        );
        let keys: BTreeSet<(&str, &str)> = set
            .iter()
            .map(|p| (p.name.as_str(), p.arch.as_str()))
            .collect();
        assert_eq!(keys.len(), set.len(), "one version per name and arch");
        // Deterministic for the same input.
        let again = resolve_with_filelists(&idx, &r, &lists).unwrap();
        assert_eq!(again, set);
    }

    #[test]
    fn large_random_index_is_closed_and_deterministic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let n = 3000;
        let ps: Vec<P> = (0..n)
            .map(|i| {
                let mut p = P::new(&format!("p{i}"), &format!("{}-1", rng.gen_range(1..4)))
                    .prov(&format!("cap{} = {}", i % 500, i % 7))
                    .file(&format!("/usr/bin/p{i}"));
                for _ in 0..4.min(i) {
                    let j = rng.gen_range(0..i);
                    p = match rng.gen_range(0..4) {
                        0 => p.req(&format!("cap{} >= 3", j % 500)),
                        1 => p.req(&format!("/usr/bin/p{j}")),
                        2 => p.pre(&format!("p{j}")),
                        _ => p.req(&format!("(p{j} or cap{})", (j * 7) % 500)),
                    };
                }
                p
            })
            .collect();
        let idx = index(ps);
        let inst: Vec<String> = (n - 20..n).map(|i| format!("p{i}")).collect();
        let inst: Vec<&str> = inst.iter().map(|s| s.as_str()).collect();
        let start = std::time::Instant::now();
        let got = run(&idx, &req(&inst, &[]));
        eprintln!("{} of {n} packages in {:?}", got.len(), start.elapsed());
        assert!(got.len() >= inst.len());
        assert_eq!(got, run(&idx, &req(&inst, &[])));
    }
}
