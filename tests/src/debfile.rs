//! Building real `.deb` files for tests. OWNER: unpack helper.
