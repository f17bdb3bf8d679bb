//! `kedge::krb::ap_req`'s borrowed AP-REQ and Authenticator readers against rasn (rasn may
//! refuse only for a name or realm byte in 0x80..=0xA0, which the readers take).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { kedge::fuzzing::ap_req(data); });
