//! Building real `.deb` files for tests: an `ar` archive with
//! `debian-binary` (`2.0\n`), `control.tar.*` (`./control`, `./md5sums`,
//! `./conffiles`, scripts) and `data.tar.*` with `./`-prefixed entries and
//! parent directories first, as `dpkg-deb --build` makes them.

use md5::{Digest, Md5};
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

impl Compression {
    fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
        }
    }

    /// Compress `data` with this method.
    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).expect("gzip");
                e.finish().expect("gzip")
            }
            Compression::Xz => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(data).expect("xz");
                e.finish().expect("xz")
            }
            Compression::Zstd => zstd::encode_all(data, 3).expect("zstd"),
        }
    }
}

/// What an archive entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    /// Target is an archive path (`./usr/bin/x` or `usr/bin/x`).
    Hardlink(String),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

/// One `data.tar` entry with all its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Exactly as stored in the tar (no `./` added).
    pub path: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    /// Stored as PAX `SCHILY.xattr.NAME` records.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

pub const DEFAULT_MTIME: u64 = 1_700_000_000;

pub struct DebBuilder {
    name: String,
    version: String,
    arch: String,
    fields: Vec<(String, String)>,
    entries: Vec<Entry>,
    conffiles: Vec<String>,
    control_members: Vec<(String, Vec<u8>, u32)>,
    compression: Compression,
    control_compression: Compression,
    md5sums: bool,
    mtime: u64,
}

/// `usr/bin/x` or `/usr/bin/x` or `./usr/bin/x` → `./usr/bin/x`.
fn archive_path(p: &str) -> String {
    let p = p.trim_start_matches("./").trim_start_matches('/');
    format!("./{p}")
}

impl DebBuilder {
    pub fn new(name: &str, version: &str, arch: &str) -> Self {
        DebBuilder {
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
            fields: Vec::new(),
            entries: Vec::new(),
            conffiles: Vec::new(),
            control_members: Vec::new(),
            compression: Compression::Xz,
            control_compression: Compression::Xz,
            md5sums: true,
            mtime: DEFAULT_MTIME,
        }
    }

    /// A control field (Depends, Provides, Essential, Priority, Multi-Arch, ...).
    pub fn field(mut self, k: &str, v: &str) -> Self {
        self.fields.retain(|(kk, _)| !kk.eq_ignore_ascii_case(k));
        self.fields.push((k.into(), v.into()));
        self
    }

    /// Compression of `data.tar` (default xz).
    pub fn compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }

    /// Compression of `control.tar` (default xz).
    pub fn control_compression(mut self, c: Compression) -> Self {
        self.control_compression = c;
        self
    }

    /// Leave `md5sums` out of the control tarball (old packages do).
    pub fn without_md5sums(mut self) -> Self {
        self.md5sums = false;
        self
    }

    /// The mtime used by the convenience methods below.
    pub fn mtime(mut self, t: u64) -> Self {
        self.mtime = t;
        self
    }

    fn ensure_parents(&mut self, path: &str) {
        let mut cur = String::from(".");
        let parts: Vec<&str> = path.trim_start_matches("./").split('/').collect();
        let mut wanted = vec!["./".to_string()];
        for p in &parts[..parts.len().saturating_sub(1)] {
            cur = format!("{cur}/{p}");
            wanted.push(format!("{cur}/"));
        }
        for w in wanted {
            if !self.entries.iter().any(|e| e.path == w.as_bytes()) {
                let mtime = self.mtime;
                self.entries.push(Entry {
                    path: w.into_bytes(),
                    kind: Kind::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    mtime,
                    xattrs: Vec::new(),
                });
            }
        }
    }

    /// Add an entry under a normal path (`usr/bin/x`), creating parent
    /// directory entries first as dpkg-deb archives have them.
    pub fn entry(mut self, mut e: Entry) -> Self {
        let p = archive_path(&String::from_utf8_lossy(&e.path));
        self.ensure_parents(&p);
        e.path = if e.kind == Kind::Dir {
            format!("{}/", p.trim_end_matches('/')).into_bytes()
        } else {
            p.into_bytes()
        };
        self.entries.retain(|x| x.path != e.path);
        self.entries.push(e);
        self
    }

    /// Add an entry exactly as given: the path is not normalised and no
    /// parents are added. For hostile archives (`../../etc/evil`, ...).
    pub fn raw_entry(mut self, e: Entry) -> Self {
        self.entries.push(e);
        self
    }

    /// A regular file with its path stored verbatim (`../../etc/evil`).
    pub fn raw_file(self, path: &str, data: &[u8], mode: u32) -> Self {
        let e = self.simple(path, Kind::File(data.to_vec()), mode);
        self.raw_entry(e)
    }

    fn simple(&self, path: &str, kind: Kind, mode: u32) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: self.mtime,
            xattrs: Vec::new(),
        }
    }

    pub fn file(self, path: &str, data: &[u8], mode: u32) -> Self {
        let e = self.simple(path, Kind::File(data.to_vec()), mode);
        self.entry(e)
    }

    pub fn dir(self, path: &str, mode: u32) -> Self {
        let e = self.simple(path, Kind::Dir, mode);
        self.entry(e)
    }

    pub fn symlink(self, path: &str, target: &str) -> Self {
        let e = self.simple(path, Kind::Symlink(target.into()), 0o777);
        self.entry(e)
    }

    /// `target` is a path of this archive (`usr/bin/x`).
    pub fn hardlink(self, path: &str, target: &str) -> Self {
        let e = self.simple(path, Kind::Hardlink(archive_path(target)), 0o644);
        self.entry(e)
    }

    /// A file listed in `conffiles` (mode 0644).
    pub fn conffile(mut self, path: &str, data: &[u8]) -> Self {
        let abs = format!("/{}", path.trim_start_matches("./").trim_start_matches('/'));
        self.conffiles.push(abs);
        self.file(path, data, 0o644)
    }

    /// A maintainer script (`preinst`, `postinst`, `prerm`, `postrm`, `config`), mode 0755.
    pub fn script(self, name: &str, text: &str) -> Self {
        self.control_member(name, text.as_bytes(), 0o755)
    }

    /// Any other control member (`templates`, `triggers`, `shlibs`, `symbols`, ...).
    pub fn control_member(mut self, name: &str, data: &[u8], mode: u32) -> Self {
        self.control_members
            .push((name.into(), data.to_vec(), mode));
        self
    }

    /// The `control` file as it goes into the package.
    pub fn control_text(&self) -> String {
        let mut s = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: Test Maintainer <test@example.org>\n",
            self.name, self.version, self.arch
        );
        let size: usize = self
            .entries
            .iter()
            .map(|e| match &e.kind {
                Kind::File(d) => d.len(),
                _ => 0,
            })
            .sum();
        s.push_str(&format!("Installed-Size: {}\n", size.div_ceil(1024)));
        for (k, v) in &self.fields {
            s.push_str(&format!("{k}: {v}\n"));
        }
        if !self
            .fields
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("Description"))
        {
            s.push_str(&format!("Description: test package {}\n", self.name));
        }
        s
    }

    /// `md5sums` as dh_md5sums writes it: regular files except conffiles.
    pub fn md5sums_text(&self) -> String {
        let mut s = String::new();
        for e in &self.entries {
            if let Kind::File(d) = &e.kind {
                let p = String::from_utf8_lossy(&e.path);
                let p = p.trim_start_matches("./");
                if self
                    .conffiles
                    .iter()
                    .any(|c| c.trim_start_matches('/') == p)
                {
                    continue;
                }
                s.push_str(&format!("{}  {}\n", hex::encode(Md5::digest(d)), p));
            }
        }
        s
    }

    fn control_tar(&self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_mtime(self.mtime);
        dir.set_size(0);
        append_raw(&mut b, dir, b"./", &[]);
        let mut members: Vec<(String, Vec<u8>, u32)> =
            vec![("control".into(), self.control_text().into_bytes(), 0o644)];
        if self.md5sums {
            members.push(("md5sums".into(), self.md5sums_text().into_bytes(), 0o644));
        }
        if !self.conffiles.is_empty() {
            let mut c = self.conffiles.join("\n");
            c.push('\n');
            members.push(("conffiles".into(), c.into_bytes(), 0o644));
        }
        members.extend(self.control_members.iter().cloned());
        for (name, data, mode) in members {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(mode);
            h.set_mtime(self.mtime);
            h.set_size(data.len() as u64);
            append_raw(&mut b, h, format!("./{name}").as_bytes(), &data);
        }
        b.into_inner().expect("control tar")
    }

    /// The uncompressed `data.tar`.
    pub fn data_tar(&self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in &self.entries {
            if !e.xattrs.is_empty() {
                let recs: Vec<(String, &[u8])> = e
                    .xattrs
                    .iter()
                    .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
                    .collect();
                b.append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), *v)))
                    .expect("pax");
            }
            let mut h = tar::Header::new_gnu();
            h.set_mode(e.mode);
            h.set_uid(e.uid);
            h.set_gid(e.gid);
            h.set_mtime(e.mtime);
            h.set_size(0);
            let mut data: &[u8] = &[];
            match &e.kind {
                Kind::File(d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                    data = d;
                }
                Kind::Dir => h.set_entry_type(tar::EntryType::Directory),
                Kind::Symlink(t) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    set_link(&mut h, t.as_bytes());
                }
                Kind::Hardlink(t) => {
                    h.set_entry_type(tar::EntryType::Link);
                    set_link(&mut h, t.as_bytes());
                }
                Kind::Char(ma, mi) | Kind::Block(ma, mi) => {
                    h.set_entry_type(if matches!(e.kind, Kind::Char(..)) {
                        tar::EntryType::Char
                    } else {
                        tar::EntryType::Block
                    });
                    h.set_device_major(*ma).expect("major");
                    h.set_device_minor(*mi).expect("minor");
                }
                Kind::Fifo => h.set_entry_type(tar::EntryType::Fifo),
            }
            append_raw(&mut b, h, &e.path, data);
        }
        b.into_inner().expect("data tar")
    }

    /// The `.deb` bytes.
    pub fn build(&self) -> Vec<u8> {
        let control = self.control_compression.compress(&self.control_tar());
        let data = self.compression.compress(&self.data_tar());
        ar_archive(&[
            ("debian-binary", b"2.0\n".to_vec()),
            (
                &format!("control.tar{}", self.control_compression.suffix()),
                control,
            ),
            (&format!("data.tar{}", self.compression.suffix()), data),
        ])
    }
}

/// Write the name bytes verbatim (the tar crate refuses `..`, which hostile
/// test archives need); long names go in a GNU long-name record.
fn append_raw(b: &mut tar::Builder<Vec<u8>>, mut h: tar::Header, path: &[u8], data: &[u8]) {
    if path.len() > 99 {
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::GNULongName);
        let name = b"././@LongLink";
        l.as_gnu_mut().expect("gnu").name[..name.len()].copy_from_slice(name);
        let mut body = path.to_vec();
        body.push(0);
        l.set_size(body.len() as u64);
        l.set_cksum();
        b.append(&l, &body[..]).expect("longname");
    }
    let n = path.len().min(99);
    let gnu = h.as_gnu_mut().expect("gnu header");
    gnu.name = [0; 100];
    gnu.name[..n].copy_from_slice(&path[..n]);
    h.set_cksum();
    b.append(&h, data).expect("append");
}

fn set_link(h: &mut tar::Header, target: &[u8]) {
    let gnu = h.as_gnu_mut().expect("gnu header");
    gnu.linkname = [0; 100];
    let n = target.len().min(100);
    gnu.linkname[..n].copy_from_slice(&target[..n]);
}

/// An `ar` archive (GNU names, even padding) of the given members.
pub fn ar_archive(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        out.extend_from_slice(
            format!(
                "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                name,
                0,
                0,
                0,
                "100644",
                data.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}
