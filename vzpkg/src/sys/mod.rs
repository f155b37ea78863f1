//! System calls of the runtime and the build sandbox, behind a narrow, safe
//! API. Everything else in the crate calls these instead of `libc` or
//! `unsafe`; rustix carries the call wherever it has it.
//!
//! - [`process`]: fork, exec, wait and exit for forked children; sessions,
//!   closing inherited fds, stdio.
//! - [`ns`]: unshare, setns, pidfds.
//! - [`mount`]: mount propagation, procfs, pivot_root.
//! - [`signal`]: dispositions, masks, signalfd, an init's signal wait.
//! - [`poll`]: waiting until fds are readable.
//! - [`net`]: bringing up the loopback interface.
//! - [`fs`]: file calls rustix lacks (fchmodat2, sync_file_range).
//! - [`rand`]: random bytes.
//! - [`mem`]: returning the allocator's free pages.
//! - [`seccomp`], [`caps`]: a VPS's system-call filter and capabilities.
//! - [`console`]: a VPS's `/dev/console` and the keeper of its pty.
//! - [`resolve`]: paths opened inside a VPS's tree from the host.
//! - [`userns`]: user namespaces, id maps and idmapped mounts.
//! - [`netlink`], [`bpf`]: rtnetlink conversations (also in a VPS's
//!   network namespace), and eBPF programs: the source filter
//!   (networking) and the device policy on cgroup v2.
//! - [`fusemount`]: a FUSE mount attached nowhere (a VPS's `/proc` view).
//! - [`cgroup`]: joining a cgroup after a fork, signalling what is in one.
//!
//! A forked child of a process that may have other threads (a test, simfs)
//! must only make system calls on data prepared before the fork: the
//! functions here allocate nothing, so they are fit for that.

pub mod bpf;
pub mod caps;
pub mod cgroup;
pub mod console;
pub mod fs;
pub mod fusemount;
pub mod mem;
pub mod mount;
pub mod net;
pub mod netlink;
pub mod ns;
pub mod poll;
pub mod process;
pub mod rand;
pub mod resolve;
pub mod seccomp;
pub mod signal;
pub mod userns;
