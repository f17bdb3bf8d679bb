//! `kedge::krb::spnego::inner_token` on a NegotiationToken body.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { kedge::fuzzing::spnego(data); });
