//! The one place that creates namespaces, mounts and chroots. Everything that
//! runs a program inside a tree (maintainer scripts, later VPS processes) goes
//! through here.
//! OWNER: configure helper — replace the stubs below.
