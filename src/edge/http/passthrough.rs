//! Passthrough mode (the default, for Exchange): each authenticated client connection gets one
//! dedicated backend connection, pinned for the connection's life and never reused for another
//! client connection or another principal. Requests go byte for byte with the client's
//! Authorization header, so the backend completes its own (connection-bound) logon; its reply,
//! AP-REP included, comes back untouched. kedge speaks HTTP/1.1 on that connection itself
//! (`wire_exchange.rs`): the head hyper parsed is written once and both bodies are copied.

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{HeaderValue, CONNECTION};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::backend::Backend;
use super::body::AnyBody;
use super::error::EdgeError;
use super::forward_headers::{prepare_request, strip_hop_by_hop, Forwarding};
use super::negotiate::Owner;
use super::wire_exchange::{exchange, request_framing};
use super::wire_link::{Checkout, WireLink};
use crate::pool::Member;

/// The backend connection pinned to a client connection, with whose it is.
#[derive(Debug)]
pub struct Pinned {
    pool: String,
    owner: Owner,
    link: WireLink,
}

/// Where the request came from.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    /// The client's address.
    pub peer: SocketAddr,
    /// Whether the client connection is TLS.
    pub tls: bool,
}

impl Pinned {
    /// The member this connection is pinned to.
    pub fn member(&self) -> &Arc<Member> {
        self.link.member_ref()
    }
}

/// The pinned connection for `owner`, checked out for one exchange: the one there when it is
/// `owner`'s and parked, else a new one. The old connection is closed before another is opened
/// (never two at once, never one reused for another owner); one the member closed while idle
/// (not a byte of this request went) is replaced the same way.
async fn checkout(
    slot: &mut Option<Pinned>,
    backend: &Backend,
    owner: &Owner,
) -> Result<(Checkout, Arc<Member>), EdgeError> {
    if let Some(p) = slot.as_ref() {
        if p.pool == backend.pool.name() && p.owner == *owner {
            if let Some(conn) = p.link.checkout() {
                return Ok((conn, p.member().clone()));
            }
        }
    }
    *slot = None;
    let key = match owner {
        Owner::Principal(p) => Some(p.as_str()),
        Owner::Anonymous | Owner::Ntlm | Owner::Unverified => None,
    };
    let (link, conn) = backend.open_wire(key, "passthrough").await?;
    tracing::debug!(
        member = %link.member_ref().name,
        pool = backend.pool.name(),
        ?owner,
        "pinned backend connection"
    );
    let member = link.member_ref().clone();
    *slot = Some(Pinned {
        pool: backend.pool.name().to_string(),
        owner: owner.clone(),
        link,
    });
    Ok((conn, member))
}

/// Forwards `req` on the client connection's pinned backend connection (opening it for `owner`
/// when there is none, or when the one there belongs to someone else or has closed).
pub async fn forward(
    slot: &mut Option<Pinned>,
    backend: &Backend,
    owner: Owner,
    forwarding: &Forwarding,
    req: Request<Incoming>,
) -> Result<Response<AnyBody>, EdgeError> {
    let (mut parts, body) = req.into_parts();
    let added = prepare_request(&mut parts.headers, forwarding);
    let framing = request_framing(&parts.headers)?;
    let (conn, member) = checkout(slot, backend, &owner).await?;
    let answer = exchange(conn, (&parts, &added), body, framing, backend.head_timeout());
    let (head, body) = match backend.response_head(&member, answer).await {
        Ok(answer) => answer,
        // The request went (or may have): never retried; on a timeout the member is ejected.
        Err(e) => {
            *slot = None;
            return Err(e);
        }
    };
    let mut resp = Response::new(body.boxed_unsync());
    *resp.status_mut() = head.status;
    let mut headers = head.headers;
    strip_hop_by_hop(&mut headers);
    // Not reusable: the member asked to close, or its reply was the connection's last.
    if !head.reusable {
        // The member ends its side, and with it its logon: the client must see the same.
        // (The link stays until this body is through; it is not reused after.)
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    *resp.headers_mut() = headers;
    Ok(resp)
}
