//! Passthrough mode (the default, for Exchange): each authenticated client connection gets one
//! dedicated backend connection, pinned for the connection's life and never reused for another
//! client connection or another principal. Requests go byte for byte with the client's
//! Authorization header, so the backend completes its own (connection-bound) logon; its reply,
//! AP-REP included, comes back untouched.

use std::net::SocketAddr;

use http::header::{HeaderValue, CONNECTION};
use http::{Request, Response, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::backend::{exchange_error, Backend, BackendLink};
use super::body::AnyBody;
use super::error::{EdgeError, ErrorKind};
use super::forward_headers::{prepare_request, strip_hop_by_hop, wants_close, Forwarding};
use super::negotiate::Owner;

/// The backend connection pinned to a client connection, with whose it is.
#[derive(Debug)]
pub struct Pinned {
    pool: String,
    owner: Owner,
    link: BackendLink,
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
    pub fn member(&self) -> &std::sync::Arc<crate::pool::Member> {
        self.link.member_ref()
    }
}

async fn ensure_pinned<'a>(
    slot: &'a mut Option<Pinned>,
    backend: &Backend,
    owner: &Owner,
) -> Result<&'a mut Pinned, EdgeError> {
    let fits =
        matches!(slot, Some(p) if p.pool == backend.pool.name() && p.owner == *owner && !p.link.is_closed());
    if !fits {
        // The old connection is closed before another owner's is opened: never two at once,
        // never one reused.
        *slot = None;
        let key = match owner {
            Owner::Principal(p) => Some(p.as_str()),
            Owner::Anonymous | Owner::Ntlm | Owner::Unverified => None,
        };
        let link = backend.open(key, "passthrough").await?;
        tracing::debug!(
            member = link.member(),
            pool = backend.pool.name(),
            ?owner,
            "pinned backend connection"
        );
        *slot = Some(Pinned {
            pool: backend.pool.name().to_string(),
            owner: owner.clone(),
            link,
        });
    }
    Ok(slot.as_mut().expect("just pinned"))
}

/// Forwards `req` on the client connection's pinned backend connection (opening it for `owner`
/// when there is none, or when the one there belongs to someone else or has closed).
pub async fn forward(
    slot: &mut Option<Pinned>,
    backend: &Backend,
    owner: Owner,
    forwarding: &Forwarding,
    mut req: Request<Incoming>,
) -> Result<Response<AnyBody>, EdgeError> {
    prepare_request(req.headers_mut(), forwarding);
    *req.version_mut() = Version::HTTP_11;

    let mut retried = false;
    let resp = loop {
        let pinned = ensure_pinned(slot, backend, &owner).await?;
        if pinned.link.sender.ready().await.is_err() {
            *slot = None;
            if retried {
                return Err(EdgeError::backend(ErrorKind::Io, "pinned connection closed"));
            }
            retried = true;
            continue;
        }
        let member = pinned.link.member_ref().clone();
        let sent = pinned.link.sender.try_send_request(req);
        let sent = match backend.response_head(&member, sent).await {
            Ok(sent) => sent,
            Err(e) => {
                // The request went (or may have): never retried; the member is ejected.
                *slot = None;
                return Err(e);
            }
        };
        match sent {
            Ok(resp) => break resp,
            Err(mut e) => {
                *slot = None;
                match e.take_message() {
                    // Not a byte was sent: the member closed the idle connection; one more try
                    // on a fresh connection for the same owner.
                    Some(again) if !retried => {
                        retried = true;
                        req = again;
                    }
                    _ => return Err(exchange_error(e.into_error())),
                }
            }
        }
    };

    let (mut parts, body) = resp.into_parts();
    let close = wants_close(&parts.headers);
    strip_hop_by_hop(&mut parts.headers);
    if close {
        // The member ends its side, and with it its logon: the client must see the same.
        // (The link stays until this body is through; it is not reused after.)
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(Response::from_parts(parts, body.boxed()))
}
