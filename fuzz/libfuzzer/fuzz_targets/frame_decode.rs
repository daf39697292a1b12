//! `wire::decode` on any bytes, and the encode/decode round trip of what
//! decodes: `holdfast_fuzz::targets::frame_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| holdfast_fuzz::targets::frame_decode(data));
