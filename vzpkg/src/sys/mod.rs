//! System calls: the one place for `unsafe` outside simfs's FUSE glue.

pub mod mem;
