//! Repository sources: where packages come from and the verified index of them.

pub mod apt;
pub mod comps;
pub mod deb;
pub mod index_cache;
pub mod rpm;
pub mod rpm_keys;
