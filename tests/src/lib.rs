//! Test fixtures: real `.deb` files, real OpenPGP keys and signatures, and a
//! Debian-style mirror served over loopback HTTP.

pub mod debfile;
pub mod fixture;
pub mod mirror;
pub mod rpmtree;
pub mod server;
pub mod signing;
