//! `kedge::rpc::parse_auth3` (rpc_auth_3 PDU) and its re-encoding round trip.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { kedge::fuzzing::rpc_auth3(data); });
