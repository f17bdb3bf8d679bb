//! The seam between the edge and the Kerberos acceptor, and the one place a Kerberos admission
//! is decided: [`authenticate`] (validate, then consult the replay store shared with other
//! replicas) and [`confirm_shared`] (the second half, for admission paths that validated
//! already).
//!
//! The edge validates tokens through [`Authenticate`] rather than the concrete
//! [`crate::krb::acceptor::Acceptor`] so that the connection machinery (connection-bound
//! state, pinning, limits) can be exercised with a scripted validator as well as the real one.

use std::sync::Arc;

use crate::krb::acceptor::{AcceptCtx, Accepted, Acceptor};
use crate::krb::error::AuthError;
use crate::krb::replay::ReplayId;
use crate::observe;
use crate::replay_store::{FailPolicy, ReplayStore, Seen};

/// Validates an initial context token (SPNEGO, RFC 4121 or bare AP-REQ) for a connection.
pub trait Authenticate: Send + Sync + 'static {
    /// Validates `token` in `ctx`; see [`Acceptor::accept`]. Synchronous and local: the local
    /// replay cache has spoken, the shared store not yet (see [`authenticate`]).
    fn accept(&self, token: &[u8], ctx: &AcceptCtx<'_>) -> Result<Accepted, AuthError>;

    /// The replay store shared with other replicas, where one is configured.
    fn shared_replay(&self) -> Option<&ReplayStore> {
        None
    }
}

impl Authenticate for Acceptor {
    fn accept(&self, token: &[u8], ctx: &AcceptCtx<'_>) -> Result<Accepted, AuthError> {
        Acceptor::accept(self, token, ctx)
    }
}

/// The acceptor of a replica that shares replay state with others through a store (its
/// [`AcceptorConfig::shared_replay`](crate::krb::acceptor::AcceptorConfig::shared_replay) must
/// be on, so that acceptances carry their replay id).
pub struct SharedReplay {
    acceptor: Arc<Acceptor>,
    store: Arc<ReplayStore>,
}

impl SharedReplay {
    /// `acceptor`'s acceptances, also recorded in `store`.
    pub fn new(acceptor: Arc<Acceptor>, store: Arc<ReplayStore>) -> Self {
        Self { acceptor, store }
    }
}

impl Authenticate for SharedReplay {
    fn accept(&self, token: &[u8], ctx: &AcceptCtx<'_>) -> Result<Accepted, AuthError> {
        self.acceptor.accept(token, ctx)
    }

    fn shared_replay(&self) -> Option<&ReplayStore> {
        Some(&self.store)
    }
}

/// Validates `token` and, where replicas share replay state, records its authenticator in the
/// shared store: the whole admission of a Kerberos token, for every edge. `protocol` labels the
/// metrics (`http`, `rpc`).
pub async fn authenticate(
    auth: &dyn Authenticate,
    token: &[u8],
    ctx: &AcceptCtx<'_>,
    protocol: &'static str,
) -> Result<Accepted, AuthError> {
    let accepted = auth.accept(token, ctx)?;
    confirm_shared(
        auth.shared_replay(),
        accepted.replay_id.as_ref(),
        &accepted.client,
        protocol,
    )
    .await?;
    Ok(accepted)
}

/// The shared store's word on an authenticator the local cache accepted: `Ok` when there is no
/// store, no replay id (a validator that computes none, or replay checks off), or the store
/// recorded it as fresh; [`AuthError::Replay`] when some replica saw it (counted by the caller
/// as a replay, like a local one). Without a verdict (store down, slow or failing) the store's
/// [`FailPolicy`] decides, counted in `kedge_replay_store_degraded_total`: `closed` refuses with
/// [`AuthError::ReplayStoreUnavailable`], `local` accepts on the local cache's verdict alone.
pub async fn confirm_shared(
    store: Option<&ReplayStore>,
    replay_id: Option<&ReplayId>,
    client: &(dyn std::fmt::Display + Sync),
    protocol: &'static str,
) -> Result<(), AuthError> {
    let (Some(store), Some(id)) = (store, replay_id) else {
        return Ok(());
    };
    // Boxed: the store's round trip is a large future, and inline it would be part of every
    // request's future on every edge, copied at each await, store or not.
    match Box::pin(store.check(id)).await {
        Ok(Seen::Fresh) => Ok(()),
        Ok(Seen::Replay) => Err(AuthError::Replay {
            client: client.to_string(),
        }),
        Err(e) => {
            let fail = store.fail_policy();
            observe::replay_store_degraded(protocol, fail.as_str());
            match fail {
                FailPolicy::Closed => Err(AuthError::ReplayStoreUnavailable(e.to_string())),
                FailPolicy::Local => {
                    tracing::debug!(protocol, %client, error = %e,
                        "replay store gave no verdict; accepted on the local replay cache (fail = local)");
                    Ok(())
                }
            }
        }
    }
}
