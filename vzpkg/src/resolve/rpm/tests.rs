use super::rich::{overlap, parse_rich, Atom, Range, Rich, Term};
use super::*;
use crate::rpmversion::parse_evr;
use crate::source::rpm::{ChecksumKind, DepFlags, RpmDep};
use std::collections::{BTreeMap, BTreeSet};

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
            size: 1,
            installed_size: 1,
            ..RpmPackage::default()
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
