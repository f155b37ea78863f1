//! Dependency resolution: from a request (a base set, includes, excludes) and a
//! verified index to the exact package set, in install order.

pub mod deb;
mod order;
pub mod relation;
pub mod rpm;
