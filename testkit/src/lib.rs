//! The test kit every suite shares, the library's unit tests included: real
//! `.deb` and `.rpm` files and real OpenPGP keys and signatures, made by the
//! tests themselves. It depends on no part of vzpkg, so vzpkg can use it as a
//! dev-dependency.

pub mod debfile;
pub mod rpmtree;
pub mod signing;
