//! Dependency atoms, the overlap of version ranges, and rich boolean
//! dependencies (`(a if b)`) parsed and brought into conjunctive normal form.

use crate::rpmversion::{parse_evr, rpmvercmp};
use crate::source::rpm::{DepFlags, RpmDep};
use std::cmp::Ordering;
use std::fmt::{self, Display};

/// One side of a dependency comparison: flags and `[E:]V[-R]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Range<'a> {
    pub(super) flags: DepFlags,
    pub(super) epoch: u32,
    pub(super) version: Option<&'a str>,
    pub(super) release: Option<&'a str>,
}

pub(super) const LESS: u8 = 1;
pub(super) const EQUAL: u8 = 2;
pub(super) const GREATER: u8 = 4;

pub(super) fn sense(flags: DepFlags) -> u8 {
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
pub(super) fn overlap(a: &Range<'_>, b: &Range<'_>) -> bool {
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
pub(super) struct Atom {
    pub(super) name: String,
    pub(super) flags: DepFlags,
    pub(super) epoch: u32,
    pub(super) version: Option<String>,
    pub(super) release: Option<String>,
}

impl Atom {
    pub(super) fn of(d: &RpmDep) -> Atom {
        Atom {
            name: d.name.clone(),
            flags: d.flags,
            epoch: d.epoch.unwrap_or(0),
            version: d.version.clone(),
            release: d.release.clone(),
        }
    }

    pub(super) fn range(&self) -> Range<'_> {
        Range {
            flags: self.flags,
            epoch: self.epoch,
            version: self.version.as_deref(),
            release: self.release.as_deref(),
        }
    }
}

pub(super) fn flags_str(f: DepFlags) -> &'static str {
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
pub(super) enum Term {
    Dep(Atom),
    /// A single package satisfying both.
    With(Box<Term>, Box<Term>),
    /// A single package satisfying the first and not the second.
    Without(Box<Term>, Box<Term>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Rich {
    Term(Term),
    And(Vec<Rich>),
    Or(Vec<Rich>),
    /// `(then if cond [else otherwise])`
    If(Box<Rich>, Box<Rich>, Option<Box<Rich>>),
    /// `(then unless cond [else otherwise])`
    Unless(Box<Rich>, Box<Rich>, Option<Box<Rich>>),
}

pub(super) struct RichParser<'a> {
    pub(super) s: &'a str,
    pub(super) pos: usize,
}

pub(super) const OPERATORS: [&str; 7] = ["and", "or", "if", "unless", "else", "with", "without"];

impl<'a> RichParser<'a> {
    pub(super) fn skip_ws(&mut self) {
        while self.s[self.pos..].starts_with(|c: char| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    /// A word as rpm reads one: up to white space, `,` or a `)` that
    /// closes nothing opened inside the word (`libc.so.6()(64bit)`).
    pub(super) fn word(&mut self) -> &'a str {
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
    pub(super) fn group(&mut self) -> Result<Rich, String> {
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

    pub(super) fn operand(&mut self) -> Result<Rich, String> {
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

pub(super) fn term_of(r: Rich) -> Result<Term, String> {
    match r {
        Rich::Term(t) => Ok(t),
        _ => Err("`with`/`without` take simple dependencies only".into()),
    }
}

pub(super) fn parse_rich(text: &str) -> Result<Rich, String> {
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
pub(super) enum Form {
    Lit(usize, bool),
    And(Vec<Form>),
    Or(Vec<Form>),
}

pub(super) fn to_form(r: &Rich, positive: bool, terms: &mut Vec<Term>) -> Form {
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
pub(super) const MAX_CLAUSES: usize = 256;

/// Clauses of literals (term index, positive); tautologies dropped.
pub(super) fn cnf(f: &Form) -> Result<Vec<Vec<(usize, bool)>>, String> {
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
