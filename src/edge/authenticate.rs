//! The seam between the edge and the Kerberos acceptor.
//!
//! The edge validates tokens through [`Authenticate`] rather than the concrete
//! [`Acceptor`](crate::krb::acceptor::Acceptor) so that the connection machinery (connection-bound
//! state, pinning, limits) can be exercised with a scripted validator as well as the real one.

use crate::krb::acceptor::{AcceptCtx, Accepted, Acceptor};
use crate::krb::error::AuthError;

/// Validates an initial context token (SPNEGO, RFC 4121 or bare AP-REQ) for a connection.
pub trait Authenticate: Send + Sync + 'static {
    /// Validates `token` in `ctx`; see [`Acceptor::accept`].
    fn accept(&self, token: &[u8], ctx: &AcceptCtx<'_>) -> Result<Accepted, AuthError>;
}

impl Authenticate for Acceptor {
    fn accept(&self, token: &[u8], ctx: &AcceptCtx<'_>) -> Result<Accepted, AuthError> {
        Acceptor::accept(self, token, ctx)
    }
}
