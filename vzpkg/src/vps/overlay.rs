//! The VPS root: an overlayfs with the template's layer trees as lower dirs
//! and the private area as upper dir, made with the new mount API. Whether
//! it is mounted is read from `/proc/self/mountinfo`, never remembered.

use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags};
use std::io;
use std::path::{Path, PathBuf};

/// One line of mountinfo, the fields the runtime needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    pub fs_type: String,
    /// The mount source (`/dev/simfs` for simfs).
    pub source: String,
    pub super_options: String,
}

impl MountEntry {
    /// The value of `key=` in the super options (overlay escapes `,` in paths).
    pub fn option(&self, key: &str) -> Option<String> {
        let mut parts = Vec::new();
        let mut cur = String::new();
        let mut chars = self.super_options.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
                ',' => parts.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        parts.push(cur);
        let prefix = format!("{key}=");
        parts
            .into_iter()
            .rev()
            .find_map(|p| p.strip_prefix(&prefix).map(str::to_string))
    }
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                out.push((oct[0] - b'0') * 64 + (oct[1] - b'0') * 8 + (oct[2] - b'0'));
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse mountinfo text (pure, for tests).
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let fs_type = r.next()?.to_string();
            let source = unescape_octal(r.next()?);
            let super_options = r.next().unwrap_or("").to_string();
            Some(MountEntry {
                mount_point: PathBuf::from(unescape_octal(mount_point)),
                fs_type,
                source,
                super_options,
            })
        })
        .collect()
}

/// Every mount stacked on `target` in this mount namespace, bottom first.
pub fn mounts_at(target: &Path) -> io::Result<Vec<MountEntry>> {
    if surely_unmounted(target) {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(parse_mountinfo(&text)
        .into_iter()
        .filter(|m| m.mount_point == target)
        .collect())
}

/// Whether nothing is mounted on `target`: it is on the same mount as its
/// parent (statx's mount id). The mount table grows by two lines per
/// mounted VPS and costs more to read than the rest of a `vzctl mount`
/// once hundreds are mounted; this answers the common case without it.
/// False whenever it cannot tell (an error, such as a dead FUSE mount's
/// ENOTCONN, or a kernel without mount ids).
fn surely_unmounted(target: &Path) -> bool {
    use rustix::fs::{AtFlags, StatxFlags, CWD};
    let mount_id = |p: &Path| -> Result<Option<u64>, rustix::io::Errno> {
        let st = rustix::fs::statx(CWD, p, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::MNT_ID)?;
        Ok(StatxFlags::from_bits_retain(st.stx_mask)
            .contains(StatxFlags::MNT_ID)
            .then_some(st.stx_mnt_id))
    };
    match (target.parent(), mount_id(target)) {
        // No such path (a VPS root before its first mount): nothing can be
        // mounted on it.
        (_, Err(rustix::io::Errno::NOENT)) => true,
        (Some(parent), Ok(Some(id))) => matches!(mount_id(parent), Ok(Some(p)) if p == id),
        _ => false,
    }
}

/// What is on the VPS root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountState {
    Unmounted,
    /// Our overlay with the expected upper dir and layers.
    Mounted,
    /// Something else, or an overlay on a private area or layers that are gone.
    Stale(String),
}

/// Judge the mounts at `target` against the overlay we would make.
pub fn state(target: &Path, upper: &Path, lowers_top_first: &[PathBuf]) -> io::Result<MountState> {
    let mounts = mounts_at(target)?;
    let Some(top) = mounts.last() else {
        return Ok(MountState::Unmounted);
    };
    if mounts.len() > 1 {
        return Ok(MountState::Stale(format!(
            "{} mounts stacked",
            mounts.len()
        )));
    }
    if top.fs_type != "overlay" {
        return Ok(MountState::Stale(format!("a {} mount", top.fs_type)));
    }
    if top.option("upperdir").as_deref().map(Path::new) != Some(upper) {
        return Ok(MountState::Stale(format!(
            "an overlay with upper dir {}",
            top.option("upperdir").unwrap_or_default()
        )));
    }
    if !upper.is_dir() || lowers_top_first.iter().any(|l| !l.is_dir()) {
        return Ok(MountState::Stale(
            "its private area or a layer is gone".into(),
        ));
    }
    // A root that cannot even be stat'ed (ENOTCONN, ESTALE) is stale too.
    if let Err(e) = std::fs::metadata(target) {
        return Ok(MountState::Stale(format!("stat fails: {e}")));
    }
    Ok(MountState::Mounted)
}

/// Mount overlayfs on `target`. `step` names what failed. With `idmap` (a
/// user namespace), each lower layer is an idmapped clone of its tree made
/// with that namespace, handed to overlayfs by fd: the store's files keep
/// their owners and inodes, and the VPS sees them owned by its range.
pub fn mount(
    target: &Path,
    lowers_top_first: &[PathBuf],
    upper: &Path,
    work: &Path,
    idmap: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<(), (&'static str, io::Error)> {
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| ("fsopen(\"overlay\")", e.into()))?;
    // Open until the overlay is made: closing the last fd of a detached
    // mount dissolves it, and overlayfs clones the layers at create.
    let mut trees = Vec::new();
    if let Some(ns) = idmap {
        for l in lowers_top_first {
            let tree = crate::sys::userns::idmapped_tree(l, ns)
                .map_err(|e| ("make an idmapped mount of a template layer", e))?;
            // Layers by fd: Linux 6.13+ (overlayfs keeps its own clone).
            rustix::mount::fsconfig_set_fd(&fs, "lowerdir+", &tree)
                .map_err(|e| ("fsconfig lowerdir+ (an idmapped layer by fd)", e.into()))?;
            trees.push(tree);
        }
    }
    // One lower dir per call (Linux 6.8+): no length limit and no escaping.
    let mut appended = true;
    for (i, l) in lowers_top_first.iter().enumerate() {
        if idmap.is_some() {
            break;
        }
        match rustix::mount::fsconfig_set_string(&fs, "lowerdir+", l) {
            Ok(()) => {}
            Err(rustix::io::Errno::INVAL) if i == 0 => {
                appended = false;
                break;
            }
            Err(e) => return Err(("fsconfig lowerdir+", e.into())),
        }
    }
    if !appended && idmap.is_none() {
        let joined = lowers_top_first
            .iter()
            .map(|l| {
                l.to_string_lossy()
                    .replace('\\', "\\\\")
                    .replace(':', "\\:")
            })
            .collect::<Vec<_>>()
            .join(":");
        rustix::mount::fsconfig_set_string(&fs, "lowerdir", joined.as_str())
            .map_err(|e| ("fsconfig lowerdir", e.into()))?;
    }
    // As OpenVZ's simfs shows a VPS's root, inside and out.
    rustix::mount::fsconfig_set_string(&fs, "source", super::daemon::SOURCE)
        .map_err(|e| ("fsconfig source", e.into()))?;
    rustix::mount::fsconfig_set_string(&fs, "upperdir", upper)
        .map_err(|e| ("fsconfig upperdir", e.into()))?;
    rustix::mount::fsconfig_set_string(&fs, "workdir", work)
        .map_err(|e| ("fsconfig workdir", e.into()))?;
    rustix::mount::fsconfig_create(&fs).map_err(|e| ("fsconfig create", e.into()))?;
    drop(trees);
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(|e| ("fsmount", e.into()))?;
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| ("move_mount", e.into()))?;
    Ok(())
}

/// Unmount everything stacked on `target`; `lazy` detaches a busy mount.
pub fn unmount_all(target: &Path, lazy: bool) -> io::Result<()> {
    let flags = if lazy {
        UnmountFlags::DETACH
    } else {
        UnmountFlags::empty()
    };
    while !mounts_at(target)?.is_empty() {
        rustix::mount::unmount(target, flags)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_point_is_told_without_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("m");
        assert!(surely_unmounted(&at), "a path that is not there");
        std::fs::create_dir(&at).unwrap();
        assert!(surely_unmounted(&at));
        assert!(mounts_at(&at).unwrap().is_empty());
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped the mounted half: it needs root");
            return;
        }
        rustix::mount::mount(
            "none",
            &at,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .unwrap();
        struct Unmount<'a>(&'a Path);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                let _ = rustix::mount::unmount(self.0, rustix::mount::UnmountFlags::DETACH);
            }
        }
        let _u = Unmount(&at);
        assert!(!surely_unmounted(&at));
        let m = mounts_at(&at).unwrap();
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].fs_type, "tmpfs");
    }

    #[test]
    fn mountinfo_lines() {
        let text = "36 35 98:0 / /mnt/a\\040b rw,noatime master:1 - overlay overlay rw,lowerdir+=/l/1,lowerdir+=/l/2,upperdir=/p/x\\,y/fs,workdir=/p/w\n\
                    37 35 98:0 / / rw - ext4 /dev/vda rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, Path::new("/mnt/a b"));
        assert_eq!(m[0].fs_type, "overlay");
        assert_eq!(m[0].option("upperdir").as_deref(), Some("/p/x,y/fs"));
        assert_eq!(m[0].option("lowerdir+").as_deref(), Some("/l/2"));
        assert_eq!(m[1].mount_point, Path::new("/"));
        assert_eq!(m[1].source, "/dev/vda");
        assert_eq!(m[1].option("upperdir"), None);
    }
}
