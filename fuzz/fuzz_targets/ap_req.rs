//! `kedge::krb::ap_req`'s borrowed AP-REQ and Authenticator readers against rasn.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { kedge::fuzzing::ap_req(data); });
