//! The SQL front end: parse → bind → optimize → lower, no execution.
//! `cargo +nightly fuzz run sql_frontend` (see docs/robustness.md).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    quarry_fuzz::check_frontend(data);
});
