//! kedge — a Kerberos-validating load balancer for Microsoft Exchange Client Access arrays.
//!
//! See `ARCHITECTURE.md` for the code map. The protocol cores (`krb`, `rpc`) are pure: bytes and
//! `now` in, values or typed errors out. The async edge (`edge`, `pool`, `replay_store`, `admin`)
//! owns sockets.
#![forbid(unsafe_code)]

pub mod admin;
pub mod asa;
pub mod benchclient;
pub mod cli;
pub mod config;
pub mod duration_field;
pub mod edge;
pub mod file_events;
pub mod fuzzing;
pub mod krb;
pub mod observe;
pub mod pool;
pub mod preflight;
pub mod replay_store;
pub mod rpc;
pub mod secret_file;
pub mod serve;
pub mod soak;
pub mod stripes;
