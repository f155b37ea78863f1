//! Test fixtures: real `.deb` files, real OpenPGP keys and signatures, and a
//! Debian-style mirror served over loopback HTTP; a VZ host for the `vzctl`
//! front door.

pub mod debfile;
pub mod fixture;
pub mod mirror;
pub mod registry;
pub mod rpmtree;
pub mod server;
pub mod signing;
pub mod vzhost;
