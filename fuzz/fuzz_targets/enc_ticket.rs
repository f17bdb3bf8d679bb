//! `kedge::krb::enc_ticket`'s borrowed EncTicketPart reader (a decrypted ticket) against rasn
//! (rasn may refuse only for a name or realm byte in 0x80..=0xA0, which the reader takes).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { kedge::fuzzing::enc_ticket(data); });
