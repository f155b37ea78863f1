//! The view as a FUSE file system: one read-only directory of the files in
//! [`super::FILES`]. Each open renders its file once, so a reader that
//! reads in pieces sees one consistent text; direct I/O, since the size is
//! known only then.

use super::{Source, FILES};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, Request,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Attributes never change: a file's content is made at each open.
const TTL: Duration = Duration::from_secs(3600);
const ROOT: u64 = 1;

pub struct ProcView {
    source: Arc<Source>,
    open: Mutex<HashMap<u64, Vec<u8>>>,
    next: AtomicU64,
    made: SystemTime,
}

impl ProcView {
    pub fn new(source: Arc<Source>) -> ProcView {
        ProcView {
            source,
            open: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            made: SystemTime::now(),
        }
    }

    fn attr(&self, ino: u64) -> FileAttr {
        let dir = ino == ROOT;
        FileAttr {
            ino: INodeNo(ino),
            size: 0,
            blocks: 0,
            atime: self.made,
            mtime: self.made,
            ctime: self.made,
            crtime: self.made,
            kind: if dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: if dir { 0o555 } else { 0o444 },
            nlink: if dir { 2 } else { 1 },
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }
}

/// A file's inode: its place in [`FILES`], after the root.
fn ino_of(name: &OsStr) -> Option<u64> {
    FILES
        .iter()
        .position(|(n, _)| OsStr::new(n) == name)
        .map(|i| i as u64 + 2)
}

fn name_of(ino: u64) -> Option<&'static str> {
    FILES.get(ino.checked_sub(2)? as usize).map(|(n, _)| *n)
}

impl Filesystem for ProcView {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match (parent.0, ino_of(name)) {
            (ROOT, Some(ino)) => reply.entry(&TTL, &self.attr(ino), Generation(0)),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino.0 == ROOT || name_of(ino.0).is_some() {
            reply.attr(&TTL, &self.attr(ino.0));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let Some(text) = name_of(ino.0).and_then(|n| self.source.render(n)) else {
            return reply.error(Errno::ENOENT);
        };
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut open) = self.open.lock() {
            open.insert(fh, text.into_bytes());
        }
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Ok(open) = self.open.lock() else {
            return reply.error(Errno::EIO);
        };
        let Some(data) = open.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let start = (offset as usize).min(data.len());
        let end = start.saturating_add(size as usize).min(data.len());
        reply.data(&data[start..end]);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&fh.0);
        }
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino.0 != ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        let mut entries = vec![
            (ROOT, FileType::Directory, "."),
            (ROOT, FileType::Directory, ".."),
        ];
        for (i, (name, _)) in FILES.iter().enumerate() {
            entries.push((i as u64 + 2, FileType::RegularFile, name));
        }
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}
