//! System calls behind a narrow API.

pub mod fusemount;
