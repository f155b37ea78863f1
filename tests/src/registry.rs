//! A real image registry for tests: Debian's `docker-registry` (distribution
//! v2) on a loopback port, stopped on drop; and a loopback TCP relay in front
//! of it that counts the bytes it carries, can slow them down, and can be
//! pointed at a restarted registry.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const BINARY: &str = "/usr/bin/docker-registry";

/// Whether the registry is installed (`scripts/setup.sh` installs it).
pub fn available() -> bool {
    Path::new(BINARY).is_file()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub struct Registry {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    htpasswd: Option<PathBuf>,
}

impl Registry {
    /// A registry storing under `dir`; with `htpasswd`, basic auth is required.
    pub fn start(dir: &Path, htpasswd: Option<&Path>) -> Registry {
        let mut r = Registry {
            child: None,
            port: 0,
            dir: dir.to_path_buf(),
            htpasswd: htpasswd.map(Path::to_path_buf),
        };
        r.restart();
        r
    }

    /// Start again on a fresh port over the same storage.
    pub fn restart(&mut self) {
        self.stop();
        std::fs::create_dir_all(self.dir.join("data")).unwrap();
        for _ in 0..5 {
            let port = free_port();
            let auth = match &self.htpasswd {
                Some(p) => format!(
                    "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                    p.display()
                ),
                None => String::new(),
            };
            let config = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
                self.dir.join("data").display()
            );
            let cfg = self.dir.join("config.yml");
            std::fs::write(&cfg, config).unwrap();
            let log = std::fs::File::create(self.dir.join("log")).unwrap();
            let child = Command::new(BINARY)
                .arg("serve")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            self.child = Some(child);
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    self.port = port;
                    return;
                }
                if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                    break; // the port was taken meanwhile: try another
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            self.stop();
        }
        panic!(
            "docker-registry did not start: {}",
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
    }

    /// Kill it (SIGKILL, as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The file holding blob `digest` (`sha256:...`) in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback TCP relay to a registry: counts the bytes it sends back to
/// clients, optionally at a limited rate, and follows `retarget`.
pub struct Relay {
    pub port: u16,
    upstream: Arc<AtomicU16>,
    down: Arc<AtomicU64>,
    /// Bytes per second towards the client; 0 for no limit.
    rate: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

fn pump(mut from: TcpStream, mut to: TcpStream, count: Option<(Arc<AtomicU64>, Arc<AtomicU64>)>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((down, rate)) = &count {
            let r = rate.load(Ordering::Relaxed);
            if r > 0 {
                std::thread::sleep(Duration::from_secs_f64(n as f64 / r as f64));
            }
            down.fetch_add(n as u64, Ordering::Relaxed);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

impl Relay {
    pub fn start(upstream_port: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let port = listener.local_addr().unwrap().port();
        let relay = Relay {
            port,
            upstream: Arc::new(AtomicU16::new(upstream_port)),
            down: Arc::new(AtomicU64::new(0)),
            rate: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (up, down, rate, stop) = (
            relay.upstream.clone(),
            relay.down.clone(),
            relay.rate.clone(),
            relay.stop.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let server = match TcpStream::connect(("127.0.0.1", up.load(Ordering::Relaxed))) {
                    Ok(s) => s,
                    Err(_) => {
                        // As a dead registry looks: the connection just closes.
                        drop(client);
                        continue;
                    }
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let count = Some((down.clone(), rate.clone()));
                std::thread::spawn(move || pump(client, server, None));
                std::thread::spawn(move || pump(s2, c2, count));
            }
        });
        relay
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Bytes sent back to clients so far.
    pub fn bytes_down(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }

    pub fn set_rate(&self, bytes_per_second: u64) {
        self.rate.store(bytes_per_second, Ordering::Relaxed);
    }

    pub fn retarget(&self, upstream_port: u16) {
        self.upstream.store(upstream_port, Ordering::Relaxed);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so its thread ends.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A bearer-token front for a registry, as token-auth registries behave:
/// requests without `Authorization: Bearer <token>` get 401 with a
/// `WWW-Authenticate: Bearer realm=...` challenge; `GET /token` hands out
/// the token to a client presenting the right basic credentials. Accepted
/// requests are passed to the registry one per connection.
pub struct TokenGate {
    pub port: u16,
    /// Tokens handed out so far.
    issued: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).ok()? == 0 || head.len() > 64 << 10 {
            return None;
        }
        head.push(b[0]);
    }
    Some(head)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

impl TokenGate {
    /// In front of the registry on `upstream_port`; `basic` is the base64
    /// `user:password` the token endpoint accepts.
    pub fn start(upstream_port: u16, basic: &str, token: &str) -> TokenGate {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the token gate");
        let port = listener.local_addr().unwrap().port();
        let gate = TokenGate {
            port,
            issued: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (issued, stop) = (gate.issued.clone(), gate.stop.clone());
        let basic = format!("Basic {basic}");
        let bearer = format!("Bearer {token}");
        let token = token.to_string();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut client) = client else { continue };
                let (issued, basic, bearer, token) =
                    (issued.clone(), basic.clone(), bearer.clone(), token.clone());
                std::thread::spawn(move || {
                    let Some(head) = read_head(&mut client) else {
                        return;
                    };
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let path = text.split(' ').nth(1).unwrap_or("").to_string();
                    let auth = header(&text, "authorization").unwrap_or("");
                    let reply = |c: &mut TcpStream, status: &str, extra: &str, body: &str| {
                        let _ = write!(
                            c,
                            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
                            body.len()
                        );
                    };
                    if path.starts_with("/token") {
                        if auth == basic {
                            issued.fetch_add(1, Ordering::Relaxed);
                            reply(
                                &mut client,
                                "200 OK",
                                "",
                                &format!("{{\"token\":\"{token}\"}}"),
                            );
                        } else {
                            reply(&mut client, "401 Unauthorized", "", "{}");
                        }
                        return;
                    }
                    if auth != bearer {
                        let challenge = format!(
                            "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"test-registry\"\r\n"
                        );
                        reply(
                            &mut client,
                            "401 Unauthorized",
                            &challenge,
                            "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}",
                        );
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                        return;
                    };
                    // One request per connection: the registry closes after it.
                    let mut fwd = String::new();
                    for l in text.trim_end().lines() {
                        let lower = l.to_ascii_lowercase();
                        if !lower.starts_with("connection:") && !lower.starts_with("authorization:")
                        {
                            fwd.push_str(l);
                            fwd.push_str("\r\n");
                        }
                    }
                    fwd.push_str("Connection: close\r\n\r\n");
                    if server.write_all(fwd.as_bytes()).is_err() {
                        return;
                    }
                    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let up = std::thread::spawn(move || pump(client, server, None));
                    pump(s2, c2, None);
                    let _ = up.join();
                });
            }
        });
        gate
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn tokens_issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }
}

impl Drop for TokenGate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
