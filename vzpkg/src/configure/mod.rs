//! Running maintainer scripts inside the staging tree, in a namespaced chroot.

mod common;
pub mod deb;
pub mod rpm;
