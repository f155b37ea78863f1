//! Test fixtures: a Debian-style mirror served over loopback HTTP, the
//! binary's runs, a VZ host for the `vzctl` front door; real `.deb` and
//! `.rpm` files and OpenPGP keys come from the shared test kit
//! (`vzpkg-testkit`).

pub mod fixture;
pub mod mirror;
pub mod registry;
pub mod server;
pub mod signing;
pub mod vzhost;

pub use vzpkg_testkit::{debfile, rpmtree};
