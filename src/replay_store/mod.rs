//! The replay store shared by replicas (DESIGN.md §2 step 5, §8): behind an L4 balancer a token
//! captured on one replica could otherwise be replayed to another within the skew window, and
//! in assert mode kedge is the only verifier.
//!
//! The local cache ([`crate::krb::replay`]) decides first, inside the acceptor; an
//! authenticator it accepted is then recorded here with `SET <prefix><hex id> 1 NX PX <2 × skew>`
//! (`OK`: fresh, nil: another replica saw it). The id is [`ReplayKey::shared_id`], a 128-bit
//! digest: the store never sees a token, a principal or a key. When the store gives no verdict
//! in time, [`FailPolicy`] decides. The edges reach all of this through
//! [`crate::edge::authenticate::confirm_shared`].
//!
//! Client: the `redis` crate (redis-rs 1.x, BSD-3-Clause), the reference Rust client for Redis
//! and Valkey: its `MultiplexedConnection` pipelines concurrent calls over one socket, it runs on
//! tokio, and its `tokio-rustls-comp` TLS uses rustls without a crypto provider of its own (kedge's
//! `ring`), with no open advisory in the snapshot `scripts/check-advisories` reads. kedge uses
//! neither its connection manager nor its cluster support: [`ReplayStore::maintain`] owns
//! reconnection, so the up/down state and its metrics are exact and calls never wait for a
//! connect.
//!
//! | file | holds |
//! |---|---|
//! | `config.rs` | `[kerberos.replay]`: store URL, `fail`, `timeout_ms`, `key_prefix`; validation |
//! | `store.rs` | [`ReplayStore::check`]: the `SET NX PX` call, its verdict, counts and `/status` |
//! | `maintain.rs` | [`ReplayStore::maintain`]: the one connection, health pings, reconnect with backoff |
//!
//! [`ReplayKey::shared_id`]: crate::krb::replay::ReplayKey::shared_id

pub mod config;
mod maintain;
mod store;

pub use config::{FailPolicy, ReplayConfig};
pub use store::{key, verdict, ReplayStore, Seen, StoreError, StoreSetupError};
