//! The `quarry` command line; see `quarry_cli`.

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    quarry_cli::main()
}

/// glibc's malloc hands memory back to the kernel as soon as a megabyte or
/// two lies free (and maps anything over its threshold on its own), so the
/// buffers of every batch — Parquet's dictionaries, packed group keys —
/// came back as fresh pages the kernel had to fault in and zero: 18 % of
/// TPC-H Q1's time. Kept up to 256 MiB per arena, they are reused instead;
/// the memory budget counts reservations, not this slack.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters, before any thread
    // is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}
