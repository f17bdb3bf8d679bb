//! A member's reply on a passthrough connection: the response head parser and the chunked
//! decoder (`edge::http::h1_frame`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { kedge::fuzzing::member_reply(data); });
