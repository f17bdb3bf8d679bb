//! `kedge::krb::keytab::Keytab::parse`, and the re-encoding round trip.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { kedge::fuzzing::keytab(data); });
