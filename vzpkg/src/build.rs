//! The build pipeline. OWNER: lead.
