//! A small HTTP/1.1 file server on loopback for the fixture mirror. It logs
//! every request so tests can tell what a build downloaded, and can be told to
//! slow down or fail.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct State {
    log: Mutex<Vec<String>>,
    /// Milliseconds to wait before answering a `.deb` request.
    deb_delay_ms: AtomicU64,
    stop: AtomicBool,
}

/// Serves `dir` at `http://127.0.0.1:PORT/`.
pub struct Server {
    pub url: String,
    state: Arc<State>,
    addr: std::net::SocketAddr,
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State::default());
        let dir = dir.to_path_buf();
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                let dir = dir.clone();
                std::thread::spawn(move || serve(conn, &dir, &st));
            }
        });
        Server {
            url: format!("http://{addr}"),
            state,
            addr,
        }
    }

    /// Paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn clear_log(&self) {
        if let Ok(mut l) = self.state.log.lock() {
            l.clear();
        }
    }

    pub fn deb_requests(&self) -> usize {
        self.requests()
            .iter()
            .filter(|p| p.ends_with(".deb"))
            .count()
    }

    pub fn set_deb_delay(&self, d: Duration) {
        self.state
            .deb_delay_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(conn: TcpStream, dir: &Path, st: &State) {
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("/").to_string();
        // Skip the headers.
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" || h == "\n" {
                break;
            }
        }
        if let Ok(mut l) = st.log.lock() {
            l.push(path.clone());
        }
        if path.ends_with(".deb") {
            let ms = st.deb_delay_ms.load(Ordering::SeqCst);
            if ms > 0 {
                std::thread::sleep(Duration::from_millis(ms));
            }
        }
        let file = resolve(dir, &path);
        let body = file.and_then(|f| std::fs::read(f).ok());
        let r = match body {
            Some(b) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
                    b.len()
                );
                out.write_all(head.as_bytes()).and_then(|()| {
                    if method == "HEAD" {
                        Ok(())
                    } else {
                        out.write_all(&b)
                    }
                })
            }
            None => out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        };
        if r.is_err() {
            return;
        }
    }
}

fn resolve(dir: &Path, url_path: &str) -> Option<PathBuf> {
    let rel = url_path.split('?').next()?.trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return None;
    }
    let p = dir.join(rel);
    p.is_file().then_some(p)
}
