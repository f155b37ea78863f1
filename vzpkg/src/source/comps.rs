//! Package groups (`comps.xml`, the `group` data of an rpm-md repository):
//! what `@core` or `@^minimal-environment` in a recipe stands for, as dnf
//! reads it.

use super::rpm::{attr, bad, fetch_data, parse_compressed, push_text, xml_err, RpmIndex};
use super::rpm::{RepoData, RpmSourceError};
use crate::http::Http;
use quick_xml::events::Event;
use std::io::BufRead;

/// How a group lists a package (`<packagereq type=…>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqKind {
    Mandatory,
    Default,
    Optional,
    /// Installed by dnf only beside the package it names (`requires=`).
    Conditional,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: String,
    /// The untranslated name (`<name>` without `xml:lang`).
    pub name: Option<String>,
    pub packages: Vec<(String, ReqKind)>,
    /// Other groups this one pulls in (`<grouplist><groupreq>`, old comps).
    pub groups: Vec<String>,
}

/// An environment group (`@^id`): a set of groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub id: String,
    pub name: Option<String>,
    /// `<grouplist>`; the `<optionlist>` is not installed by default.
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comps {
    pub groups: Vec<Group>,
    pub environments: Vec<Environment>,
}

impl Comps {
    /// Add another repository's groups; a group both define gets the
    /// members of both, as dnf merges them.
    pub fn merge(&mut self, other: Comps) {
        for g in other.groups {
            match self.groups.iter_mut().find(|h| h.id == g.id) {
                Some(h) => {
                    add_missing(&mut h.packages, g.packages, |a, b| a.0 == b.0);
                    add_missing(&mut h.groups, g.groups, |a, b| a == b);
                    h.name = h.name.take().or(g.name);
                }
                None => self.groups.push(g),
            }
        }
        for e in other.environments {
            match self.environments.iter_mut().find(|f| f.id == e.id) {
                Some(f) => add_missing(&mut f.groups, e.groups, |a, b| a == b),
                None => self.environments.push(e),
            }
        }
    }

    /// The packages a recipe entry `@group` or `@^environment` stands for:
    /// mandatory and default members, of the groups it pulls in too, in
    /// comps order. Groups are found by id or by name, ignoring case, as
    /// dnf does. `None`: no such group.
    pub fn expand(&self, entry: &str) -> Option<Vec<String>> {
        let want = entry.trim_start_matches('@');
        let same = |id: &str, name: &Option<String>, w: &str| {
            id.eq_ignore_ascii_case(w) || name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(w))
        };
        let mut todo: Vec<&str> = match want.strip_prefix('^') {
            Some(env) => {
                let e = self
                    .environments
                    .iter()
                    .find(|e| same(&e.id, &e.name, env))?;
                e.groups.iter().rev().map(String::as_str).collect()
            }
            None => vec![self
                .groups
                .iter()
                .find(|g| same(&g.id, &g.name, want))?
                .id
                .as_str()],
        };
        let mut seen: Vec<&str> = Vec::new();
        let mut out: Vec<String> = Vec::new();
        while let Some(id) = todo.pop() {
            if seen.contains(&id) {
                continue;
            }
            seen.push(id);
            // An environment naming a group no repository defines: dnf
            // skips it too.
            let Some(g) = self.groups.iter().find(|g| g.id == id) else {
                continue;
            };
            for (name, kind) in &g.packages {
                if matches!(kind, ReqKind::Mandatory | ReqKind::Default) && !out.contains(name) {
                    out.push(name.clone());
                }
            }
            todo.extend(g.groups.iter().rev().map(String::as_str));
        }
        Some(out)
    }

    /// Every group and environment id, for an error message.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.groups.iter().map(|g| g.id.clone()).collect();
        ids.extend(self.environments.iter().map(|e| format!("^{}", e.id)));
        ids
    }
}

/// Append the items of `from` that `into` has no `same` of, in order.
fn add_missing<T>(into: &mut Vec<T>, from: Vec<T>, same: impl Fn(&T, &T) -> bool) {
    for item in from {
        if !into.iter().any(|x| same(x, &item)) {
            into.push(item);
        }
    }
}

/// The repository's group data, checked against its verified repomd.xml;
/// `None` when it publishes none.
pub fn load_comps(http: &Http, index: &RpmIndex) -> Result<Option<Comps>, RpmSourceError> {
    let Some(d) = group_data(&index.groups) else {
        return Ok(None);
    };
    let (url, data) = fetch_data(http, &index.base_url, d)?;
    parse_compressed(&url, &data, |r| parse_comps(r)).map(Some)
}

/// The compressed copy when there is one: the same data, smaller.
fn group_data(entries: &[RepoData]) -> Option<&RepoData> {
    ["group_zst", "group_xz", "group_gz", "group"]
        .iter()
        .find_map(|k| entries.iter().find(|d| d.kind == *k))
}

/// Parse comps.xml.
pub fn parse_comps(input: &mut dyn BufRead) -> Result<Comps, RpmSourceError> {
    let mut r = quick_xml::Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut comps = Comps::default();
    let mut seen_root = false;
    // Where we are: inside <group> or <environment>, and in which list.
    let mut group: Option<Group> = None;
    let mut env: Option<Environment> = None;
    let mut in_option_list = false;
    // The element whose text we collect: (name, untranslated, req kind).
    let mut text_of: Option<(String, bool, Option<ReqKind>)> = None;
    let mut text = String::new();
    loop {
        let ev = r
            .read_event_into(&mut buf)
            .map_err(|e| xml_err(e, r.buffer_position()))?;
        match &ev {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_string();
                match name.as_str() {
                    "comps" => seen_root = true,
                    "group" if env.is_none() => {
                        group = Some(Group {
                            id: String::new(),
                            name: None,
                            packages: Vec::new(),
                            groups: Vec::new(),
                        })
                    }
                    "environment" if group.is_none() => {
                        env = Some(Environment {
                            id: String::new(),
                            name: None,
                            groups: Vec::new(),
                        })
                    }
                    "optionlist" => in_option_list = true,
                    "id" | "name" | "packagereq" | "groupreq" | "groupid"
                        if group.is_some() || env.is_some() =>
                    {
                        let kind = if name == "packagereq" {
                            Some(match attr(e, "type")?.as_deref() {
                                Some("mandatory") => ReqKind::Mandatory,
                                Some("optional") => ReqKind::Optional,
                                Some("conditional") => ReqKind::Conditional,
                                // dnf's default for a missing or unknown type.
                                _ => ReqKind::Default,
                            })
                        } else {
                            None
                        };
                        let plain = attr(e, "xml:lang")?.is_none();
                        text.clear();
                        text_of = Some((name, plain, kind));
                    }
                    _ => {}
                }
            }
            Event::End(e) => {
                let name = e.local_name().as_ref().to_string();
                match name.as_str() {
                    "group" if env.is_none() => {
                        if let Some(g) = group.take() {
                            if g.id.is_empty() {
                                return Err(bad("a <group> without <id>"));
                            }
                            comps.groups.push(g);
                        }
                    }
                    "environment" if group.is_none() => {
                        if let Some(e) = env.take() {
                            if e.id.is_empty() {
                                return Err(bad("an <environment> without <id>"));
                            }
                            comps.environments.push(e);
                        }
                    }
                    "optionlist" => in_option_list = false,
                    _ => {
                        let Some((n, plain, kind)) = text_of.take() else {
                            continue;
                        };
                        if n != name {
                            text_of = Some((n, plain, kind));
                            continue;
                        }
                        let v = std::mem::take(&mut text).trim().to_string();
                        if let Some(g) = group.as_mut() {
                            match (n.as_str(), kind) {
                                ("id", _) => g.id = v,
                                ("name", _) if plain => g.name = Some(v),
                                ("packagereq", Some(k)) if !v.is_empty() => g.packages.push((v, k)),
                                ("groupreq", _) if !v.is_empty() => g.groups.push(v),
                                _ => {}
                            }
                        } else if let Some(en) = env.as_mut() {
                            match n.as_str() {
                                "id" => en.id = v,
                                "name" if plain => en.name = Some(v),
                                "groupid" if !in_option_list && !v.is_empty() => en.groups.push(v),
                                _ => {}
                            }
                        }
                    }
                }
            }
            Event::Empty(e) => {
                if e.local_name().as_ref() == "comps" {
                    seen_root = true;
                }
            }
            Event::Eof => break,
            other => {
                if text_of.is_some() {
                    push_text(other, &mut text)?;
                }
            }
        }
        buf.clear();
    }
    if !seen_root {
        return Err(bad("no <comps> element"));
    }
    if group.is_some() || env.is_some() {
        return Err(bad("the file ends inside a <group> or <environment>"));
    }
    Ok(comps)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE comps PUBLIC "-//Red Hat, Inc.//DTD Comps info//EN" "comps.dtd">
<comps>
  <group>
    <id>core</id>
    <name>Core</name>
    <name xml:lang="de">Kern</name>
    <packagelist>
      <packagereq type="mandatory">bash</packagereq>
      <packagereq type="default">vim-minimal</packagereq>
      <packagereq type="optional">tmux</packagereq>
      <packagereq type="conditional" requires="ruby">ruby-doc</packagereq>
      <packagereq>coreutils</packagereq>
    </packagelist>
  </group>
  <group>
    <id>base</id>
    <name>Base &amp; more</name>
    <grouplist><groupreq>core</groupreq></grouplist>
    <packagelist>
      <packagereq type="mandatory">rsync</packagereq>
      <packagereq type="mandatory">bash</packagereq>
    </packagelist>
  </group>
  <environment>
    <id>minimal-environment</id>
    <name>Minimal Install</name>
    <grouplist><groupid>core</groupid><groupid>gone</groupid></grouplist>
    <optionlist><groupid>base</groupid></optionlist>
  </environment>
</comps>
"#;

    fn comps() -> Comps {
        parse_comps(&mut COMPS.as_bytes()).unwrap()
    }

    #[test]
    fn groups_expand_to_mandatory_and_default_members() {
        let c = comps();
        assert_eq!(c.groups[0].name.as_deref(), Some("Core"));
        assert_eq!(c.groups[1].name.as_deref(), Some("Base & more"));
        assert_eq!(
            c.expand("@core").unwrap(),
            ["bash", "vim-minimal", "coreutils"]
        );
        // By name, any case; required groups too, each package once.
        assert_eq!(
            c.expand("@base & MORE").unwrap(),
            ["rsync", "bash", "vim-minimal", "coreutils"]
        );
        assert_eq!(c.expand("@nope"), None);
        assert_eq!(c.ids(), ["core", "base", "^minimal-environment"]);
    }

    #[test]
    fn environments_expand_their_group_list_not_their_options() {
        let c = comps();
        assert_eq!(
            c.expand("@^Minimal Install").unwrap(),
            ["bash", "vim-minimal", "coreutils"]
        );
        assert_eq!(c.expand("@^core"), None);
    }

    #[test]
    fn merged_groups_get_the_members_of_both() {
        let mut c = comps();
        let mut other = Comps::default();
        other.groups.push(Group {
            id: "core".into(),
            name: None,
            packages: vec![
                ("less".into(), ReqKind::Default),
                ("bash".into(), ReqKind::Optional),
            ],
            groups: Vec::new(),
        });
        c.merge(other);
        assert_eq!(
            c.expand("@core").unwrap(),
            ["bash", "vim-minimal", "coreutils", "less"]
        );
    }

    #[test]
    fn broken_comps_are_refused() {
        for bad in [
            "<comps><group><name>x</name></group></comps>",
            "<other/>",
            "<comps><group>",
        ] {
            assert!(parse_comps(&mut bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
