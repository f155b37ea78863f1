//! Running maintainer scripts inside the staging tree, in a namespaced chroot.

pub mod deb;
pub mod rpm;
