//! A whole initial context token through `Acceptor::accept` (test keytabs, capture-time `now`, replay off).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { kedge::fuzzing::acceptor(data); });
