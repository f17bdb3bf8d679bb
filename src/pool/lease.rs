//! A backend session's hold on its member.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::member::Member;
use crate::observe::{self, SessionGuard};

/// Counts one session on a member for as long as it lives; a drained or removed member stays
/// usable through the leases it already gave out. A lease is taken when the connect starts (so
/// least-connections sees members with connects in flight) and counts as a session in the
/// metrics only once the connect succeeded.
#[derive(Debug)]
pub struct MemberLease {
    member: Arc<Member>,
    session: Option<SessionGuard>,
}

impl MemberLease {
    pub(super) fn new(member: Arc<Member>) -> Self {
        member.acquire();
        Self {
            member,
            session: None,
        }
    }

    /// The connect succeeded: from now on this is a session (`kedge_backend_sessions_*`).
    pub(super) fn established(mut self) -> Self {
        if self.session.is_none() {
            self.session = Some(observe::session_opened(self.member.pool_label()));
        }
        self
    }

    /// The member this session went to.
    pub fn member(&self) -> &Arc<Member> {
        &self.member
    }

    /// A lease on a member of its own (pool `cas`, `127.0.0.1:443`), for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests(name: &str) -> Self {
        let member = Member::new(&Arc::from("cas"), name, "127.0.0.1", 443, 1, false, None);
        Self::new(Arc::new(member))
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
