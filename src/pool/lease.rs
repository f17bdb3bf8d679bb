//! A backend session's hold on its member.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::member::Member;
use crate::observe::{self, SessionGuard};

/// Counts one session on a member for as long as it lives; a drained or removed member stays
/// usable through the leases it already gave out.
#[derive(Debug)]
pub struct MemberLease {
    member: Arc<Member>,
    _session: SessionGuard,
}

impl MemberLease {
    pub(super) fn new(member: Arc<Member>) -> Self {
        member.acquire();
        let session = observe::session_opened(member.pool_label());
        Self {
            member,
            _session: session,
        }
    }

    /// The member this session went to.
    pub fn member(&self) -> &Arc<Member> {
        &self.member
    }
}

impl Drop for MemberLease {
    fn drop(&mut self) {
        self.member.release();
    }
}

/// A connected backend stream with the lease of its member.
#[derive(Debug)]
pub struct BackendConn {
    /// The TCP stream (TLS, when the pool has TLS, is layered on by the caller with
    /// [`super::Pool::tls_for`] / [`super::Pool::tls`]).
    pub stream: TcpStream,
    /// The member's address actually connected.
    pub addr: SocketAddr,
    /// Keeps the member's session count.
    pub lease: MemberLease,
}
