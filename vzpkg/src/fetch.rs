//! Parallel verified downloads into the package cache. OWNER: lead.
