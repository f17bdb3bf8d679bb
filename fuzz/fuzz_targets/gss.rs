//! `kedge::krb::gss::unwrap_initial` (RFC 2743 §3.1 framing).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { kedge::fuzzing::gss(data); });
