//! A blob read while it downloads: the fetch writes its file (which a later
//! run resumes) and says how far it got; the reader follows it, so a layer
//! is unpacked as it arrives instead of after.

use std::fs::File;
use std::io::Read;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

#[derive(Default)]
struct State {
    /// Bytes the writer reported; a hint only: the file is what is read.
    written: u64,
    /// Some(true) once the blob is whole and verified, Some(false) if the
    /// fetch gave up.
    done: Option<bool>,
}

/// What the writer tells the reader.
#[derive(Default)]
pub(crate) struct Growth {
    state: Mutex<State>,
    moved: Condvar,
}

impl Growth {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `n` more bytes are in the file.
    pub fn grew(&self, n: u64) {
        self.lock().written += n;
        self.moved.notify_all();
    }

    /// The fetch has ended: `ok` if the file holds the verified blob.
    pub fn finish(&self, ok: bool) {
        self.lock().done = Some(ok);
        self.moved.notify_all();
    }

    /// Says the fetch failed when dropped before [`Growth::finish`]: a
    /// writer that panics must not leave its reader waiting.
    pub fn failed_unless_finished(&self) -> impl Drop + '_ {
        struct Guard<'a>(&'a Growth);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                let mut state = self.0.lock();
                if state.done.is_none() {
                    state.done = Some(false);
                    drop(state);
                    self.0.moved.notify_all();
                }
            }
        }
        Guard(self)
    }
}

/// Reads a file as `growth` says it grows; the end of the file is the end
/// of the blob only once the fetch has finished well.
pub(crate) struct GrowingReader<'a> {
    file: File,
    pos: u64,
    growth: &'a Growth,
}

impl<'a> GrowingReader<'a> {
    /// Read `file` from its start as `growth` reports.
    pub fn new(file: File, growth: &'a Growth) -> Self {
        GrowingReader {
            file,
            pos: 0,
            growth,
        }
    }
}

impl Read for GrowingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            // The outcome is read before the file: a fetch that finished
            // well had written everything before it said so.
            let done = self.growth.lock().done;
            let k = self.file.read(buf)?;
            if k > 0 || buf.is_empty() {
                self.pos += k as u64;
                return Ok(k);
            }
            match done {
                Some(true) => return Ok(0),
                Some(false) => {
                    return Err(std::io::Error::other("the download of this blob failed"))
                }
                None => {}
            }
            crate::cancel::check().map_err(|_| std::io::Error::other("cancelled"))?;
            let state = self.growth.lock();
            if state.done.is_none() && state.written <= self.pos {
                // A timeout as well: a restarted download rewrites bytes it
                // had counted, so the count may run ahead of the file.
                let _ = self
                    .growth
                    .moved
                    .wait_timeout(state, Duration::from_millis(50));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// What a reader of `p` gets while `write` runs beside it.
    fn follow(
        p: &std::path::Path,
        growth: &Growth,
        write: impl FnOnce(),
    ) -> std::io::Result<Vec<u8>> {
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut out = Vec::new();
                GrowingReader::new(File::open(p).unwrap(), growth)
                    .read_to_end(&mut out)
                    .map(|_| out)
            });
            write();
            reader.join().unwrap()
        })
    }

    #[test]
    fn the_reader_follows_the_writer_and_ends_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("blob");
        let mut w = File::create(&p).unwrap();
        let growth = Growth::default();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let got = follow(&p, &growth, || {
            for chunk in data.chunks(7_000) {
                w.write_all(chunk).unwrap();
                growth.grew(chunk.len() as u64);
                std::thread::sleep(Duration::from_micros(200));
            }
            growth.finish(true);
        });
        assert_eq!(got.unwrap(), data);
    }

    #[test]
    fn a_writer_that_panics_ends_its_reader() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("blob");
        std::fs::write(&p, b"").unwrap();
        let growth = Growth::default();
        let got = follow(&p, &growth, || {
            let _ = std::thread::scope(|s| {
                s.spawn(|| {
                    let _guard = growth.failed_unless_finished();
                    panic!("the writer's panic, on purpose");
                })
                .join()
            });
        });
        assert!(got.is_err());
    }

    #[test]
    fn a_failed_fetch_is_an_error_not_an_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("blob");
        std::fs::write(&p, b"partial").unwrap();
        let growth = Growth::default();
        growth.grew(7);
        let got = follow(&p, &growth, || {
            std::thread::sleep(Duration::from_millis(100));
            growth.finish(false);
        });
        assert!(got.unwrap_err().to_string().contains("download"));
    }
}
