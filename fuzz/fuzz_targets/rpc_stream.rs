//! A client RPC byte stream: first bind, then PduScanner and ContextPolicy::inspect on later binds, alter_contexts and auth3s.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { kedge::fuzzing::rpc_stream(data); });
