//! System calls behind a narrow API: the rest of the crate asks for what it
//! needs (a netlink conversation, a namespace joined, a program loaded)
//! and never touches raw descriptors or `unsafe` itself.

pub mod bpf;
pub mod netlink;
