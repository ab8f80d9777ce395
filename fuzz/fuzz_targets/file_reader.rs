//! Parquet and CSV bytes → a table → read every row and column.
//! `cargo +nightly fuzz run file_reader` (see docs/robustness.md).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    quarry_fuzz::check_file(data);
});
