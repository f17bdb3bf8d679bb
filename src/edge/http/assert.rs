//! Assert mode: kedge completes the Kerberos handshake itself (its AP-REP goes back in
//! `WWW-Authenticate: Negotiate`), removes any identity header a client sent along with its
//! Authorization header, states the authenticated principal (and PAC group SIDs) in configured
//! headers, optionally HMAC-signed, and forwards over pooled backend connections.
//!
//! The signature is `hex(HMAC-SHA256(key, "<principal>|<groups>|<timestamp>"))`, with groups
//! comma-separated (empty without a PAC) and the timestamp in Unix seconds, which is sent in the
//! timestamp header so the backend can check freshness.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Request, Response, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::backend::{exchange_error, Backend, BackendLink};
use super::body::AnyBody;
use super::error::EdgeError;
use super::forward_headers::{prepare_request, strip_hop_by_hop};
use super::negotiate::Identity;
use super::passthrough::Origin;
use crate::config::AssertConfig;

/// Idle connections kept per member.
const MAX_IDLE_PER_MEMBER: usize = 64;
/// How long a pooled connection may take to be ready again before it is dropped.
const READY_WAIT: Duration = Duration::from_millis(200);

/// An assert route's header set-up could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AssertSetupError {
    /// A configured header name is not a valid HTTP header name.
    #[error("{field}: {name:?} is not a valid header name")]
    BadHeaderName {
        /// The config field.
        field: &'static str,
        /// The value.
        name: String,
    },
    /// The HMAC key file could not be read or is empty.
    #[error("hmac_key_file {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The identity headers of an assert route, ready to use.
pub struct AssertHeaders {
    principal: HeaderName,
    groups: Option<HeaderName>,
    signature: Option<HeaderName>,
    timestamp: HeaderName,
    key: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for AssertHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertHeaders")
            .field("principal", &self.principal)
            .field("groups", &self.groups)
            .field("signature", &self.signature)
            .field("timestamp", &self.timestamp)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

fn header_name(field: &'static str, name: &str) -> Result<HeaderName, AssertSetupError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| AssertSetupError::BadHeaderName {
        field,
        name: name.into(),
    })
}

impl AssertHeaders {
    /// Parses the header names and reads the HMAC key (trailing whitespace trimmed).
    pub fn from_config(cfg: &AssertConfig) -> Result<Self, AssertSetupError> {
        let key = match &cfg.hmac_key_file {
            None => None,
            Some(path) => {
                let mut bytes = Zeroizing::new(std::fs::read(path).map_err(|e| AssertSetupError::Key {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?);
                while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
                    bytes.pop();
                }
                if bytes.is_empty() {
                    return Err(AssertSetupError::Key {
                        path: path.display().to_string(),
                        reason: "empty".into(),
                    });
                }
                Some(bytes)
            }
        };
        Ok(Self {
            principal: header_name("principal_header", &cfg.principal_header)?,
            groups: cfg
                .groups_header
                .as_deref()
                .map(|n| header_name("groups_header", n))
                .transpose()?,
            signature: cfg
                .signature_header
                .as_deref()
                .map(|n| header_name("signature_header", n))
                .transpose()?,
            timestamp: header_name("timestamp_header", &cfg.timestamp_header)?,
            key,
        })
    }

    /// Every header name this route states identity in.
    pub fn names(&self) -> Vec<HeaderName> {
        let mut v = vec![self.principal.clone(), self.timestamp.clone()];
        v.extend(self.groups.iter().cloned());
        v.extend(self.signature.iter().cloned());
        v
    }

    /// Removes every identity header the client sent (any case: header names are compared
    /// case-insensitively) and the Authorization header, then states `id`, if any.
    pub fn apply(&self, headers: &mut HeaderMap, id: Option<&Identity>, now: SystemTime) {
        headers.remove(AUTHORIZATION);
        headers.remove(&self.principal);
        headers.remove(&self.timestamp);
        for name in [&self.groups, &self.signature].into_iter().flatten() {
            headers.remove(name);
        }
        let Some(id) = id else { return };
        let groups = id.groups().join(",");
        if let Ok(v) = HeaderValue::from_str(&id.principal) {
            headers.insert(self.principal.clone(), v);
        }
        if let (Some(name), true) = (&self.groups, id.has_pac()) {
            if let Ok(v) = HeaderValue::from_str(&groups) {
                headers.insert(name.clone(), v);
            }
        }
        if let (Some(name), Some(key)) = (&self.signature, &self.key) {
            let ts = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            headers.insert(self.timestamp.clone(), HeaderValue::from(ts));
            let sig = signature(key, &id.principal, &groups, ts);
            headers.insert(
                name.clone(),
                HeaderValue::try_from(sig).expect("hex is a valid header value"),
            );
        }
    }
}

/// `hex(HMAC-SHA256(key, "principal|groups|timestamp"))`.
pub fn signature(key: &[u8], principal: &str, groups: &str, timestamp: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("{principal}|{groups}|{timestamp}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Pooled backend connections of one pool for assert routes, kept per member.
#[derive(Debug)]
pub struct AssertPool {
    backend: Backend,
    idle: Mutex<HashMap<String, Vec<BackendLink>>>,
}

impl AssertPool {
    /// An empty pool over `backend`.
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            idle: Mutex::new(HashMap::new()),
        }
    }

    fn take_idle(&self, member: &str) -> Option<BackendLink> {
        let mut idle = self.idle.lock().expect("idle pool lock");
        let list = idle.get_mut(member)?;
        while let Some(link) = list.pop() {
            if !link.is_closed() {
                return Some(link);
            }
        }
        None
    }

    async fn checkout(&self, key: Option<&str>) -> Result<BackendLink, EdgeError> {
        let preferred = self.backend.pool.candidates(key).first().map(|m| m.name.clone());
        if let Some(member) = preferred {
            while let Some(mut link) = self.take_idle(&member) {
                if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, link.sender.ready()).await {
                    return Ok(link);
                }
            }
        }
        self.backend.open(key, "assert").await
    }

    fn checkin(&self, link: BackendLink) {
        if link.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("idle pool lock");
        let list = idle.entry(link.member().to_string()).or_default();
        if list.len() < MAX_IDLE_PER_MEMBER {
            list.push(link);
        }
    }
}

/// Forwards `req` for `id` (None on an anonymous route) over a pooled connection; `mutual`
/// is kedge's own `WWW-Authenticate: Negotiate <AP-REP>` for the request that authenticated.
pub async fn forward(
    pool: &Arc<AssertPool>,
    headers: &AssertHeaders,
    id: Option<&Identity>,
    mutual: Option<HeaderValue>,
    origin: Origin,
    mut req: Request<Incoming>,
) -> Result<Response<AnyBody>, EdgeError> {
    prepare_request(req.headers_mut(), origin.peer, origin.tls);
    headers.apply(req.headers_mut(), id, SystemTime::now());
    *req.version_mut() = Version::HTTP_11;
    let key = id.map(|i| i.principal.as_str());

    let mut link = pool.checkout(key).await?;
    let resp = match link.sender.try_send_request(req).await {
        Ok(resp) => resp,
        Err(mut e) => match e.take_message() {
            // The pooled connection was closed before a byte went: once more on a fresh one.
            Some(again) => {
                link = pool.backend.open(key, "assert").await?;
                link.sender.send_request(again).await.map_err(exchange_error)?
            }
            None => return Err(exchange_error(e.into_error())),
        },
    };
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Some(v) = mutual {
        parts.headers.append(WWW_AUTHENTICATE, v);
    }
    let body = PooledBody {
        inner: body,
        checkin: Some((pool.clone(), link)),
    };
    Ok(Response::from_parts(parts, body.boxed()))
}

/// A backend response body that gives its connection back to the pool once read to the end
/// (and closes it when dropped before).
struct PooledBody {
    inner: Incoming,
    checkin: Option<(Arc<AssertPool>, BackendLink)>,
}

impl PooledBody {
    fn give_back(&mut self) {
        if let Some((pool, link)) = self.checkin.take() {
            pool.checkin(link);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let res = Pin::new(&mut self.inner).poll_frame(cx);
        match &res {
            Poll::Ready(None) => self.give_back(),
            Poll::Ready(Some(Err(_))) => self.checkin = None,
            _ => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.give_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AssertConfig {
        AssertConfig {
            groups_header: Some("X-Kedge-Groups".into()),
            ..AssertConfig::default()
        }
    }

    fn kedge_pac() -> crate::krb::acceptor::PacIdentity {
        crate::krb::acceptor::PacIdentity::from_sids(
            Some("S-1-5-21-1-1001".into()),
            vec!["S-1-5-21-1-513".into(), "S-1-5-21-1-512".into()],
            None,
        )
    }

    fn alice() -> Identity {
        Identity {
            principal: "alice@KEDGE.TEST".into(),
            service: "http".into(),
            pac: Some(std::sync::Arc::new(kedge_pac())),
        }
    }

    #[test]
    fn spoofed_identity_headers_are_replaced() {
        let h = AssertHeaders::from_config(&cfg()).expect("setup");
        let mut m = HeaderMap::new();
        m.insert("x-kedge-principal", HeaderValue::from_static("admin@EVIL"));
        m.append("X-KEDGE-PRINCIPAL", HeaderValue::from_static("root@EVIL"));
        m.insert("x-kedge-groups", HeaderValue::from_static("S-1-5-32-544"));
        m.insert(AUTHORIZATION, HeaderValue::from_static("Negotiate YWJj"));
        h.apply(&mut m, Some(&alice()), SystemTime::now());
        assert_eq!(
            m.get_all("x-kedge-principal").iter().collect::<Vec<_>>(),
            vec!["alice@KEDGE.TEST"]
        );
        assert_eq!(
            m.get("x-kedge-groups").expect("groups"),
            "S-1-5-21-1-513,S-1-5-21-1-512"
        );
        assert!(m.get(AUTHORIZATION).is_none());
    }

    #[test]
    fn anonymous_requests_carry_no_identity() {
        let h = AssertHeaders::from_config(&cfg()).expect("setup");
        let mut m = HeaderMap::new();
        m.insert("x-kedge-principal", HeaderValue::from_static("admin@EVIL"));
        h.apply(&mut m, None, SystemTime::now());
        assert!(m.get("x-kedge-principal").is_none());
    }

    #[test]
    fn signature_covers_principal_groups_and_time() {
        let a = signature(b"k", "alice@R", "S-1", 100);
        assert_eq!(a.len(), 64);
        assert_ne!(a, signature(b"k", "bob@R", "S-1", 100));
        assert_ne!(a, signature(b"k", "alice@R", "S-2", 100));
        assert_ne!(a, signature(b"k", "alice@R", "S-1", 101));
        assert_ne!(a, signature(b"j", "alice@R", "S-1", 100));
    }

    #[test]
    fn signed_requests_carry_signature_and_timestamp() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("key");
        std::fs::write(&path, "s3cret\n").expect("write");
        let cfg = AssertConfig {
            signature_header: Some("X-Kedge-Signature".into()),
            hmac_key_file: Some(path),
            ..cfg()
        };
        let h = AssertHeaders::from_config(&cfg).expect("setup");
        let mut m = HeaderMap::new();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        h.apply(&mut m, Some(&alice()), now);
        assert_eq!(m.get("x-kedge-timestamp").expect("ts"), "1700000000");
        let want = signature(
            b"s3cret",
            "alice@KEDGE.TEST",
            "S-1-5-21-1-513,S-1-5-21-1-512",
            1_700_000_000,
        );
        assert_eq!(
            m.get("x-kedge-signature").expect("sig").to_str().expect("ascii"),
            want
        );
    }
}
