//! The PROXY protocol v1/v2 header parser (`edge::proxy_protocol::header::parse`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { kedge::fuzzing::proxy_header(data); });
