//! vzpkg: build OS templates for VPS hosting from distribution packages.
//!
//! The flow runs one way: `recipe` → `source` → `resolve` → `fetch` →
//! `unpack` → `configure` → `store`. Each stage takes a plain value and hands
//! the next one a plain value; `create` strings them together.

pub mod cache;
pub mod cancel;
pub mod cgroup;
pub mod checksum;
pub mod cli;
pub mod compress;
pub mod configure;
pub mod control;
pub mod create;
pub mod debversion;
pub mod error;
pub mod export;
pub mod fetch;
pub mod http;
pub mod layout;
pub mod lock;
pub mod net;
pub mod normalize;
pub mod oci;
pub mod openpgp;
pub mod package;
pub mod procview;
pub mod progress;
pub mod quota;
pub mod rebuild;
pub mod recipe;
pub mod resolve;
pub mod rpmversion;
pub mod sandbox;
pub mod simfs;
pub mod source;
pub mod store;
pub mod sys;
mod tarfmt;
pub mod terminal;
pub mod unpack;
pub mod vps;

pub use error::Error;
