//! Test OpenPGP keys and signatures. OWNER: source helper.
