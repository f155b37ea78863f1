//! System calls the runtime and the build sandbox make, behind a narrow API.

pub mod userns;
