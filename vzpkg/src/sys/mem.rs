//! The allocator's own memory.

/// Hand freed heap pages back to the kernel, so forks stop copying their
/// page tables (the allocator keeps small freed blocks mapped otherwise).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused pages of the allocator's own
    // heaps; it takes no pointers and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
