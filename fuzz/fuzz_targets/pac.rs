//! `kedge::krb::pac::Pac::parse` and the parsed PAC's accessors.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { kedge::fuzzing::pac(data); });
