//! What one peer sends a server repo, after a valid `join`:
//! `holdfast_fuzz::targets::repo_frames` (the input format is described
//! there). libfuzzer-sys's panic hook aborts on every panic, also one the
//! core catches: with validation on, any panic is a finding.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| holdfast_fuzz::targets::repo_frames(data));
