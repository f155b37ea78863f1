//! Splitting a tree into layers by path, and materialising a layer as a
//! directory of hardlinks into `objects/` (an overlayfs lower dir).

use super::manifest::{Entry, Kind, Meta};
use super::object::object_path;
use super::tree::{apply_meta, create_node, disk_path, set_mtime};
use super::StoreError;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;

/// Which paths go to which layer, bottom first; whatever no group claims
/// (and `/` itself) goes to a last layer on top.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerSplit {
    /// Each group is a list of absolute directory paths. A path claims its
    /// subtree only when it is a real directory in the tree (in a merged-/usr
    /// tree `/lib` is a symlink and stays with the rest).
    pub groups: Vec<Vec<String>>,
}

impl Default for LayerSplit {
    fn default() -> Self {
        LayerSplit {
            groups: vec![
                vec!["/usr".into()],
                ["/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ],
        }
    }
}

fn under(path: &[u8], prefix: &[u8]) -> bool {
    path == prefix || (path.starts_with(prefix) && path.get(prefix.len()) == Some(&b'/'))
}

fn parent(path: &[u8]) -> Option<&[u8]> {
    if path == b"/" {
        return None;
    }
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) => Some(b"/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// Split sorted `entries` into layers (bottom first), each sorted and with
/// the parent directories it needs. Groups that claim nothing are dropped;
/// the last layer (owning `/`) is always there.
pub fn split(entries: &[Entry], split: &LayerSplit) -> Vec<Vec<Entry>> {
    let by_path: HashMap<&[u8], &Entry> = entries.iter().map(|e| (&e.path[..], e)).collect();
    let claims: Vec<Vec<Vec<u8>>> = split
        .groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|p| p.trim_end_matches('/').as_bytes().to_vec())
                .filter(|p| {
                    !p.is_empty()
                        && by_path
                            .get(&p[..])
                            .is_some_and(|e| matches!(e.kind, Kind::Dir))
                })
                .collect()
        })
        .collect();
    let rest = claims.len();
    let mut owned: Vec<Vec<&Entry>> = vec![Vec::new(); rest + 1];
    for e in entries {
        let i = claims
            .iter()
            .position(|c| c.iter().any(|q| under(&e.path, q)))
            .unwrap_or(rest);
        owned[i].push(e);
    }
    let mut layers = Vec::new();
    for (i, own) in owned.into_iter().enumerate() {
        if own.is_empty() && i != rest {
            continue;
        }
        let mut map: std::collections::BTreeMap<Vec<u8>, Entry> =
            own.iter().map(|e| (e.path.clone(), (*e).clone())).collect();
        let mut wanted: Vec<Vec<u8>> = vec![b"/".to_vec()];
        for e in &own {
            let mut p = parent(&e.path);
            while let Some(pp) = p {
                wanted.push(pp.to_vec());
                p = parent(pp);
            }
        }
        for p in wanted {
            if map.contains_key(&p) {
                continue;
            }
            // Only mode and owner: the mtime and xattrs of a directory belong
            // to the layer that owns it, so this layer's id doesn't change
            // when files elsewhere do.
            let meta = match by_path.get(&p[..]) {
                Some(real) => Meta {
                    mode: real.meta.mode,
                    uid: real.meta.uid,
                    gid: real.meta.gid,
                    ..Meta::default()
                },
                None => Meta {
                    mode: 0o755,
                    ..Meta::default()
                },
            };
            map.insert(
                p.clone(),
                Entry {
                    path: p,
                    kind: Kind::Parent,
                    meta,
                    size: 0,
                },
            );
        }
        relink(&mut map, &own);
        layers.push(map.into_values().collect());
    }
    layers
}

/// Keep hardlinks within the layer only: a name whose first name went to
/// another layer is linked to the first of its names here instead (or is the
/// first itself), so a hardlink across layers becomes one file per layer.
fn relink(map: &mut std::collections::BTreeMap<Vec<u8>, Entry>, own: &[&Entry]) {
    let here: HashSet<&[u8]> = own
        .iter()
        .filter(|e| matches!(e.kind, Kind::File { .. }))
        .map(|e| &e.path[..])
        .collect();
    // First name in the committed tree -> first name in this layer.
    let mut anchors: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    for e in map.values_mut() {
        let Kind::File { link, .. } = &mut e.kind else {
            continue;
        };
        let Some(first) = link.take() else {
            continue;
        };
        if here.contains(&first[..]) {
            *link = Some(first);
        } else if let Some(anchor) = anchors.get(&first) {
            *link = Some(anchor.clone());
        } else {
            anchors.insert(first, e.path.clone());
        }
    }
}

/// Build `dir/tree` and `dir/manifest` for a layer whose objects exist.
pub fn build(
    dir: &Path,
    entries: &[Entry],
    manifest: &[u8],
    objects: &Path,
) -> Result<(), StoreError> {
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).map_err(|source| StoreError::Io {
        op: "create",
        path: tree.clone(),
        source,
    })?;
    // Directories first, in order (parents before children); then the
    // rest, which only needs its directory, in parallel: thousands of
    // links and symlinks spread over many directories.
    for e in entries.iter().filter(|e| e.is_dir()) {
        crate::cancel::check()?;
        let path = disk_path(&tree, e);
        create_node(&path, e)?;
        apply_meta(&path, e, false)?;
    }
    entries
        .par_iter()
        .filter(|e| !e.is_dir())
        .try_for_each(|e| -> Result<(), StoreError> {
            crate::cancel::check()?;
            let path = disk_path(&tree, e);
            match &e.kind {
                Kind::File { object, .. } => {
                    let obj = object_path(objects, object);
                    std::fs::hard_link(&obj, &path).map_err(|source| StoreError::Io {
                        op: "hardlink an object into the layer at",
                        path: path.clone(),
                        source,
                    })
                }
                _ => {
                    create_node(&path, e)?;
                    apply_meta(&path, e, true)
                }
            }
        })?;
    // Children change their directory's mtime, so directories get theirs last.
    for e in entries.iter().rev().filter(|e| e.is_dir()) {
        set_mtime(&disk_path(&tree, e), &e.meta)?;
    }
    let mpath = dir.join("manifest");
    let io = |source| StoreError::Io {
        op: "write",
        path: mpath.clone(),
        source,
    };
    let mut f = std::fs::File::create(&mpath).map_err(io)?;
    f.write_all(manifest).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(())
}

/// Bytes and count of the regular files a layer owns.
pub fn file_bytes(entries: &[Entry]) -> (u64, u64) {
    entries
        .iter()
        .filter(|e| matches!(e.kind, Kind::File { .. }))
        .fold((0, 0), |(b, n), e| (b + e.size, n + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str, kind: Kind) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind,
            meta: Meta {
                mode: 0o755,
                mtime: 99,
                ..Meta::default()
            },
            size: 0,
        }
    }

    #[test]
    fn split_merged_and_split_usr() {
        let link = |t: &str| Kind::Symlink {
            target: t.as_bytes().to_vec(),
        };
        let merged = vec![
            e("/", Kind::Dir),
            e("/bin", link("usr/bin")),
            e("/etc", Kind::Dir),
            e("/lib", link("usr/lib")),
            e("/usr", Kind::Dir),
            e("/usr/bin", Kind::Dir),
        ];
        let layers = split(&merged, &LayerSplit::default());
        assert_eq!(layers.len(), 2);
        let paths = |l: &Vec<Entry>| -> Vec<String> {
            l.iter()
                .map(|e| String::from_utf8_lossy(&e.path).into_owned())
                .collect()
        };
        assert_eq!(paths(&layers[0]), ["/", "/usr", "/usr/bin"]);
        assert_eq!(layers[0][0].kind, Kind::Parent);
        assert_eq!(layers[0][0].meta.mtime, 0);
        assert_eq!(paths(&layers[1]), ["/", "/bin", "/etc", "/lib"]);
        assert_eq!(layers[1][0].kind, Kind::Dir);

        let split_usr = vec![
            e("/", Kind::Dir),
            e("/bin", Kind::Dir),
            e("/etc", Kind::Dir),
            e("/lib", Kind::Dir),
            e("/lib/x", Kind::Fifo),
            e("/libfoo", Kind::Dir),
            e("/usr", Kind::Dir),
        ];
        let layers = split(&split_usr, &LayerSplit::default());
        assert_eq!(layers.len(), 3);
        assert_eq!(paths(&layers[0]), ["/", "/usr"]);
        assert_eq!(paths(&layers[1]), ["/", "/bin", "/lib", "/lib/x"]);
        assert_eq!(paths(&layers[2]), ["/", "/etc", "/libfoo"]);
    }

    #[test]
    fn hardlinks_across_layers_are_split() {
        let file = |link: Option<&str>| Kind::File {
            object: "a".repeat(64),
            link: link.map(|l| l.as_bytes().to_vec()),
        };
        // One inode named /etc/a, /etc/b, /usr/x, /usr/y, /usr/z.
        let tree = vec![
            e("/", Kind::Dir),
            e("/etc", Kind::Dir),
            e("/etc/a", file(None)),
            e("/etc/b", file(Some("/etc/a"))),
            e("/usr", Kind::Dir),
            e("/usr/x", file(Some("/etc/a"))),
            e("/usr/y", file(Some("/etc/a"))),
            e("/usr/z", file(Some("/etc/a"))),
        ];
        let layers = split(&tree, &LayerSplit::default());
        let link = |l: &Vec<Entry>, p: &str| -> Option<String> {
            let e = l.iter().find(|e| e.path == p.as_bytes()).unwrap();
            match &e.kind {
                Kind::File { link, .. } => link.as_ref().map(|l| String::from_utf8_lossy(l).into()),
                _ => panic!("{p} is not a file"),
            }
        };
        assert_eq!(link(&layers[0], "/usr/x"), None);
        assert_eq!(link(&layers[0], "/usr/y").as_deref(), Some("/usr/x"));
        assert_eq!(link(&layers[0], "/usr/z").as_deref(), Some("/usr/x"));
        assert_eq!(link(&layers[1], "/etc/a"), None);
        assert_eq!(link(&layers[1], "/etc/b").as_deref(), Some("/etc/a"));
        for l in &layers {
            super::super::manifest::decode(&super::super::manifest::encode(l), Path::new("m"))
                .unwrap();
        }
    }
}
