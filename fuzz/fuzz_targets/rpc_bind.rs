//! `kedge::rpc::parse_bind`, and the re-encoding round trip.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { kedge::fuzzing::rpc_bind(data); });
