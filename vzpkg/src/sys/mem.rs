//! The allocator's own calls.

/// Give the allocator's unused heap pages back to the kernel (glibc's
/// `malloc_trim`); a no-op elsewhere.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused pages of the allocator's own
    // heaps; it takes no pointers and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
