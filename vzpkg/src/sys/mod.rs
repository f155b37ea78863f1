//! System calls behind a narrow API: the only place (with simfs's FUSE
//! glue) where the runtime talks to the kernel without a safe wrapper.

pub mod caps;
pub mod console;
pub mod resolve;
pub mod seccomp;
