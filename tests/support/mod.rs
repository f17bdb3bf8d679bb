//! Test harness: a real MIT Kerberos realm per test (or one per test process), real GSS
//! initiators (python3-gssapi, curl --negotiate) and MIT's own acceptor as a reference.
//!
//! ```ignore
//! mod support;
//! use support::{Kdc, Mech};
//!
//! let kdc = Kdc::shared();                       // or Kdc::start() for a realm of your own
//! let tokens = kdc.tokens("alice", "HTTP@outlook.contoso.com", Mech::Spnego, 10);
//! let keytab = std::fs::read(kdc.keytab_path()).unwrap();
//! ```
//!
//! Every process the harness starts dies with the value that started it, and with the test
//! process itself (a pipe-watching supervisor kills it when the test binary exits, even on
//! SIGKILL). Nothing touches system paths: each realm lives in its own temporary directory with
//! its own `krb5.conf`/`kdc.conf`, reached by children through [`Kdc::env`].
//!
//! [`RedisServer`] is a throwaway `redis-server` for the shared replay store, run the same way.
//!
//! Missing MIT tools make the harness panic with the package to install and the advice to run
//! `scripts/test`; a test never passes without a real KDC.
//!
//! [`SambaDc`] is a real Active Directory DC (Samba) in a network namespace of its own, one per
//! test process (see `samba.rs` for why a namespace, and how clients reach it).
#![allow(dead_code, unused_imports)]

mod daemon;
mod gss;
mod kdc;
mod redis;
mod samba;
mod watched;

pub use gss::{Initiator, Mech, MitAccepted, Step, TokenSpec, DCE_FLAGS, GSS_CLIENT, PYTHON};
pub use kdc::{Ccache, Kdc, Secret, ADMIN, ARRAY_FQDN, ASA_SERVICES, ENCTYPES, REALM, USERS, UTF8_USERS};
pub use redis::RedisServer;
pub use samba::{is_root, SambaDc, AD_ADMIN_PASSWORD, AD_DOMAIN, AD_REALM, AD_USER};
pub use watched::{accepted_kvno, http_ctx, output_text, wait_until, watch_keytab, Watched};
