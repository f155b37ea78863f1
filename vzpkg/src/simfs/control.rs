//! The control protocol of a simfs process (`run/CTID.simfs.sock`): one
//! request line and one reply line per connection. vzctl uses it to change
//! limits live, read usage and unmount; vzquota to have the live figures
//! written to the quota file and to hand over new limits.
//!
//! Requests: `limits BSOFT BHARD ISOFT IHARD BGRACE IGRACE UGID`, `usage`,
//! `sync`, `reload [FILE]`, `umount`. Replies: `ok`, `ok BYTES INODES`,
//! `error WHY`, `busy WHY` (an unmount refused while the root is in use).

use crate::quota::{Limits, Usage};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest request or reply line read.
const MAX_LINE: u64 = 4096;

/// What a client asks of a simfs process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Set first-level limits and the ugid limit now; replies with usage.
    Limits { limits: Limits, ugid_limit: u64 },
    /// The usage it counts.
    Usage,
    /// Write the live figures into the quota file.
    Sync,
    /// Take the limits from `from` (a file beside the quota file), else
    /// re-read the quota file.
    Reload { from: Option<PathBuf> },
    /// Unmount, save the state and exit; replies with the final usage.
    Umount,
}

/// A simfs process's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Done,
    Usage(Usage),
    Error(String),
    Busy(String),
}

impl Request {
    /// The request line, without its newline.
    pub fn encode(&self) -> String {
        match self {
            Request::Limits {
                limits: l,
                ugid_limit,
            } => format!(
                "limits {} {} {} {} {} {} {}",
                l.block_soft,
                l.block_hard,
                l.inode_soft,
                l.inode_hard,
                l.block_grace,
                l.inode_grace,
                ugid_limit
            ),
            Request::Usage => "usage".into(),
            Request::Sync => "sync".into(),
            Request::Reload { from: None } => "reload".into(),
            Request::Reload { from: Some(f) } => format!("reload {}", f.display()),
            Request::Umount => "umount".into(),
        }
    }

    /// Parse a request line; the error is the reply's reason.
    pub fn decode(line: &str) -> Result<Request, String> {
        let line = line.trim();
        match line.split_once(' ').unwrap_or((line, "")) {
            ("limits", rest) => {
                parse_limits(rest).ok_or_else(|| "expected seven numbers".to_string())
            }
            ("usage", _) => Ok(Request::Usage),
            ("sync", _) => Ok(Request::Sync),
            ("reload", from) => Ok(Request::Reload {
                from: Some(from).filter(|f| !f.is_empty()).map(PathBuf::from),
            }),
            ("umount", _) => Ok(Request::Umount),
            _ => Err(format!("unknown request {line:?}")),
        }
    }
}

impl Reply {
    /// The reply line, without its newline.
    pub fn encode(&self) -> String {
        match self {
            Reply::Done => "ok".into(),
            Reply::Usage(u) => format!("ok {} {}", u.bytes, u.inodes),
            Reply::Error(why) => format!("error {why}"),
            Reply::Busy(why) => format!("busy {why}"),
        }
    }

    /// Parse a reply line. Anything but `ok`/`busy` is an error reply
    /// carrying the whole line, so nothing a server says is lost.
    pub fn decode(line: &str) -> Reply {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("ok") {
            let rest = rest.trim();
            if rest.is_empty() {
                return Reply::Done;
            }
            return match parse_usage(rest) {
                Some(u) => Reply::Usage(u),
                None => Reply::Error(format!("unexpected reply {line:?}")),
            };
        }
        if let Some(why) = line.strip_prefix("busy ") {
            return Reply::Busy(why.to_string());
        }
        Reply::Error(line.strip_prefix("error ").unwrap_or(line).to_string())
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Reply::Done | Reply::Usage(_))
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.encode())
    }
}

fn parse_usage(s: &str) -> Option<Usage> {
    let mut it = s.split_whitespace().map(|w| w.parse::<u64>().ok());
    let u = Usage {
        bytes: it.next()??,
        inodes: it.next()??,
    };
    it.next().is_none().then_some(u)
}

fn parse_limits(words: &str) -> Option<Request> {
    let v: Vec<u64> = words
        .split_whitespace()
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    let [bs, bh, is, ih, bg, ig, ugid] = v[..] else {
        return None;
    };
    Some(Request::Limits {
        limits: Limits {
            block_soft: bs,
            block_hard: bh,
            inode_soft: is,
            inode_hard: ih,
            block_grace: bg,
            inode_grace: ig,
        },
        ugid_limit: ugid,
    })
}

/// Send `req` to the simfs process listening on `sock`; its reply.
/// `read_timeout` bounds the wait for the reply (a `sync` or `umount` may
/// take a while), `write_timeout` the sending.
pub fn ask(
    sock: &Path,
    req: &Request,
    read_timeout: Duration,
    write_timeout: Duration,
) -> io::Result<Reply> {
    let stream = UnixStream::connect(sock)?;
    stream.set_read_timeout(Some(read_timeout))?;
    stream.set_write_timeout(Some(write_timeout))?;
    (&stream).write_all(format!("{}\n", req.encode()).as_bytes())?;
    let mut line = String::new();
    BufReader::new(&stream)
        .take(MAX_LINE)
        .read_line(&mut line)?;
    Ok(Reply::decode(&line))
}

/// Read one request from a client; `Err` inside is a request that does
/// not parse (to answer with [`Reply::Error`]).
pub fn read_request(stream: &UnixStream) -> io::Result<Result<Request, String>> {
    let mut line = String::new();
    BufReader::new(stream).take(MAX_LINE).read_line(&mut line)?;
    Ok(Request::decode(&line))
}

/// Answer a client.
pub fn send_reply(mut stream: &UnixStream, reply: &Reply) -> io::Result<()> {
    stream.write_all(format!("{}\n", reply.encode()).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            block_soft: 1,
            block_hard: 2,
            inode_soft: 3,
            inode_hard: 4,
            block_grace: 5,
            inode_grace: 6,
        }
    }

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::Limits {
                limits: limits(),
                ugid_limit: 7,
            },
            Request::Usage,
            Request::Sync,
            Request::Reload { from: None },
            Request::Reload {
                from: Some(PathBuf::from("/var/vzquota/quota.101.new-42")),
            },
            Request::Umount,
        ] {
            assert_eq!(
                Request::decode(&r.encode()),
                Ok(r.clone()),
                "{}",
                r.encode()
            );
        }
    }

    #[test]
    fn request_lines_are_as_before() {
        let r = Request::Limits {
            limits: limits(),
            ugid_limit: 7,
        };
        assert_eq!(r.encode(), "limits 1 2 3 4 5 6 7");
        assert_eq!(
            Request::decode("reload /a b"),
            Ok(Request::Reload {
                from: Some("/a b".into())
            })
        );
    }

    #[test]
    fn bad_requests_say_why() {
        assert_eq!(
            Request::decode("limits 1 2 3"),
            Err("expected seven numbers".to_string())
        );
        assert_eq!(
            Request::decode("limits 1 2 3 4 5 6 x"),
            Err("expected seven numbers".to_string())
        );
        assert_eq!(
            Request::decode("frobnicate now"),
            Err("unknown request \"frobnicate now\"".to_string())
        );
    }

    #[test]
    fn replies_round_trip() {
        for r in [
            Reply::Done,
            Reply::Usage(Usage {
                bytes: 4096,
                inodes: 3,
            }),
            Reply::Error("not mounted".into()),
            Reply::Busy("/vz/root/101 is in use".into()),
        ] {
            assert_eq!(Reply::decode(&r.encode()), r);
        }
        assert_eq!(
            Reply::decode("ok 10 2\n"),
            Reply::Usage(Usage {
                bytes: 10,
                inodes: 2
            })
        );
        assert!(!Reply::decode("ok ten").is_ok());
        assert_eq!(Reply::decode("garbled"), Reply::Error("garbled".into()));
    }

    #[test]
    fn a_server_and_a_client_talk_over_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let req = read_request(&stream).unwrap().unwrap();
            send_reply(
                &stream,
                &Reply::Usage(Usage {
                    bytes: 1,
                    inodes: 1,
                }),
            )
            .unwrap();
            req
        });
        let t = Duration::from_secs(5);
        let reply = ask(&sock, &Request::Sync, t, t).unwrap();
        assert_eq!(
            reply,
            Reply::Usage(Usage {
                bytes: 1,
                inodes: 1
            })
        );
        assert_eq!(server.join().unwrap(), Request::Sync);
    }
}
