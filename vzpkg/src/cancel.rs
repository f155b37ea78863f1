//! Cooperative cancellation: Ctrl-C sets a flag that long stages check between
//! items, so a build stops at a clean point and its guards remove the staging
//! tree.

use std::sync::atomic::{AtomicBool, Ordering};

static CANCELLED: AtomicBool = AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Cancelled;

pub fn request() {
    CANCELLED.store(true, Ordering::SeqCst);
}

pub fn is_requested() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

/// `Err(Cancelled)` once Ctrl-C was pressed.
pub fn check() -> Result<(), Cancelled> {
    if is_requested() {
        Err(Cancelled)
    } else {
        Ok(())
    }
}
