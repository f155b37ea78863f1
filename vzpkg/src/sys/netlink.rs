//! A synchronous rtnetlink conversation: one request, then its answers up to
//! the kernel's acknowledgement (or the end of a dump).
//!
//! Synchronous on purpose: vzctl makes a handful of requests per VPS and
//! waits for each, so an async runtime would add threads and a dependency
//! tree for nothing. A socket belongs to the network namespace it was
//! opened in, so [`Netlink::open_in`] opens one in a VPS's namespace from
//! a short-lived thread that joins it (network namespaces are per thread)
//! and is gone before the socket is used.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::os::fd::AsFd;

pub use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};

/// An rtnetlink socket in one network namespace.
pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// A socket in the caller's network namespace.
    pub fn open() -> io::Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Errors carry the kernel's text (extended ack) where it has one.
        let _ = socket.set_ext_ack(true);
        Ok(Netlink {
            socket,
            seq: 0,
            buf: Vec::with_capacity(64 << 10),
        })
    }

    /// A socket in the network namespace of process `pid` (a VPS's init).
    pub fn open_in(pid: i32) -> io::Result<Netlink> {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
        std::thread::scope(|s| {
            s.spawn(|| {
                super::ns::setns(ns.as_fd(), super::ns::Namespace::Network)?;
                Netlink::open()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the netlink thread panicked")))
        })
    }

    /// Send `msg` with `flags` (NLM_F_CREATE, ...) and wait for the
    /// acknowledgement; a refusal comes back as the kernel's errno.
    /// Answers sent before the acknowledgement (a `Get`'s reply) are returned.
    pub fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK | flags)
    }

    /// Send a dump request and collect every answer.
    pub fn dump(&mut self, msg: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_DUMP)
    }

    fn exchange(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket.send(&out, 0)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut answers = Vec::new();
        loop {
            self.buf.clear();
            let n = self.socket.recv(&mut self.buf, 0)?;
            if n > self.buf.len() {
                return Err(io::Error::other("a netlink answer was truncated"));
            }
            let mut at = 0;
            while at < self.buf.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[at..])
                    .map_err(|e| io::Error::other(format!("a netlink answer: {e}")))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    break;
                }
                at += (len + 3) & !3;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(answers),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::InnerMessage(m) => {
                        answers.push(m);
                        if !dump {
                            // An echo before the ack: keep reading.
                            continue;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}
