//! The bounded soak behind `kedge-soak` and `scripts/soak` (issue 11): a real `kedge run`
//! process with an HTTP and an RPC listener in front of three in-process members, driven on
//! loopback with a mix of valid and hostile traffic while members are killed and restarted, one
//! member hangs and the keytab is rolled twice; then judged.
//!
//! Code map:
//! - [`members`]: the backend members; they record the soak id of everything they see.
//! - [`traffic`]: one client operation per traffic class.
//! - [`plan`]: the rates of the classes, the send loop, the kedge config.
//! - [`ledger`]: what was sent and how it ended; which `/metrics` counter each refusal moves.
//! - [`verdict`]: the assertions and the report table.
//!
//! The process work (starting kedge, rolling the keytab, sampling RSS) is in
//! `src/bin/kedge-soak.rs`.

pub mod ledger;
pub mod members;
pub mod plan;
pub mod traffic;
pub mod verdict;
