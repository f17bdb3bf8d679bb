//! The HTTP edge's `Authorization` parsing (`edge::http::negotiate::parse_authorization`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { kedge::fuzzing::negotiate_header(data); });
