//! Unpacking packages into a staging tree, in parallel, keeping every file's
//! metadata and refusing paths that would leave the tree.

pub mod ar;
pub mod deb;
pub mod rpm;
pub mod tree;
