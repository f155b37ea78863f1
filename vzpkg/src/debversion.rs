//! Debian version comparison (deb-version(7)). OWNER: resolve helper.
