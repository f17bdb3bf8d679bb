//! Assert mode: kedge completes the Kerberos handshake itself (its AP-REP goes back in
//! `WWW-Authenticate: Negotiate`), removes any identity header a client sent along with its
//! Authorization header, states the authenticated principal (and PAC group SIDs) in configured
//! headers, optionally HMAC-signed, and forwards over pooled backend connections.
//!
//! The signature header is `v2=<hex(HMAC-SHA256(key, message))>`, where the message is the
//! ASCII label `kedge-assert-v2` followed by six fields, each as a 4-byte big-endian length and
//! its bytes: the request method, the request target (path and query, as forwarded), the `Host`
//! header (empty when absent), the principal, the group SIDs comma-separated (empty without a
//! PAC) and the timestamp (Unix seconds, decimal; also sent in the timestamp header so the
//! backend can check freshness). Length prefixes keep the fields unambiguous, and binding the
//! method, target and host means a signed identity captured from one request cannot be
//! re-attached to another. The key file follows the keytab's permission rule
//! ([`crate::secret_file`]).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{HeaderName, HeaderValue, AUTHORIZATION, HOST, WWW_AUTHENTICATE};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;

pub use super::assert_pool::AssertPool;
use super::assert_pool::PooledBody;
use super::assert_signature::{SignatureMemo, Signed, SigningKey};
use super::body::AnyBody;
use super::error::{EdgeError, ErrorKind};
use super::forward_headers::{
    prepare_request, remove_identity_headers, strip_hop_by_hop, AddedHeaders, Forwarding,
};
use super::negotiate::Identity;
use super::routes::AssertRoute;
use super::wire_exchange::{exchange, request_framing};
use crate::config::AssertConfig;
use crate::krb::crypto::KeyedHmac;
use crate::observe::escaped;

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
    /// The HMAC key file could not be used (missing, empty, or writable by group or others).
    #[error("hmac_key_file {0}")]
    Key(#[from] crate::secret_file::SecretFileError),
}

/// The identity headers of an assert route, ready to use.
pub struct AssertHeaders {
    principal: HeaderName,
    groups: Option<HeaderName>,
    signature: Option<HeaderName>,
    timestamp: HeaderName,
    /// All of the above, for removing what a client sent.
    names: Vec<HeaderName>,
    /// The signing key's keyed HMAC-SHA256 state (zeroized on drop).
    key: Option<SigningKey>,
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
            Some(path) => Some(SigningKey::new(KeyedHmac::new(&crate::secret_file::read_secret(
                path,
                "the assert HMAC key",
            )?))),
        };
        let principal = header_name("principal_header", &cfg.principal_header)?;
        let groups = cfg
            .groups_header
            .as_deref()
            .map(|n| header_name("groups_header", n))
            .transpose()?;
        let signature = cfg
            .signature_header
            .as_deref()
            .map(|n| header_name("signature_header", n))
            .transpose()?;
        let timestamp = header_name("timestamp_header", &cfg.timestamp_header)?;
        let mut names = vec![principal.clone(), timestamp.clone()];
        names.extend(groups.iter().cloned());
        names.extend(signature.iter().cloned());
        Ok(Self {
            principal,
            groups,
            signature,
            timestamp,
            names,
            key,
        })
    }

    /// Every header name this route states identity in.
    pub fn names(&self) -> &[HeaderName] {
        &self.names
    }

    /// Removes every identity header the client sent (any case, and look-alikes with `_` or
    /// `.` for `-`: [`remove_identity_headers`]) and the Authorization header, then states `id`,
    /// if any, in `added`, signed over the request's method, target and host (`memo`: the
    /// connection's last signature, reused when this request's input is the same). A principal
    /// that cannot be a header value (a control character in the name the KDC issued; UTF-8 is
    /// stated as its bytes) is refused: the request never goes on without its identity.
    pub fn apply<'a, B>(
        &'a self,
        req: &mut Request<B>,
        added: &mut AddedHeaders<'a>,
        id: Option<&'a Identity>,
        (now, memo): (SystemTime, &SignatureMemo),
    ) -> Result<(), EdgeError> {
        let headers = req.headers_mut();
        headers.remove(AUTHORIZATION);
        remove_identity_headers(headers, &self.names);
        let Some(id) = id else { return Ok(()) };
        let principal = id.principal_value().ok_or_else(|| {
            EdgeError::client(
                ErrorKind::UnstatablePrincipal,
                format!(
                    "principal {} holds a control character and cannot be stated in {}",
                    escaped(&id.principal),
                    self.principal
                ),
            )
        })?;
        added.push_borrowed(&self.principal, principal);
        let groups = id.groups_joined();
        if let (Some(name), Some(v)) = (&self.groups, id.groups_value()) {
            added.push_borrowed(name, v);
        }
        if let (Some(name), Some(key)) = (&self.signature, &self.key) {
            let ts = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let host = req.headers().get(HOST).map_or(&b""[..], |h| h.as_bytes());
            let signed = Signed {
                method: req.method().as_str().as_bytes(),
                target: target.as_bytes(),
                host,
                principal: &id.principal,
                groups,
                timestamp: ts,
            };
            let mut digits = [0u8; 20];
            let digits = crate::krb::pac::decimal(ts, &mut digits);
            let sig = key.sign_with_digits(&signed, digits, Some(memo));
            let pushed = added
                .push_short(&self.timestamp, digits)
                .and_then(|()| added.push_short(name, &sig));
            debug_assert!(pushed.is_some(), "digits and hex are valid header values");
        }
        Ok(())
    }
}

/// Forwards `req` for `id` (None on an anonymous route) over one of `route`'s pooled
/// connections; `mutual`
/// is kedge's own `WWW-Authenticate: Negotiate <AP-REP>` for the request that authenticated.
/// `member`, where given (for the access log), is set to the member that answered.
pub async fn forward(
    route: &AssertRoute,
    id: Option<&Identity>,
    mutual: Option<HeaderValue>,
    (forwarding, memo): (&Forwarding, &SignatureMemo),
    mut req: Request<Incoming>,
    member: Option<&mut Option<Arc<crate::pool::Member>>>,
) -> Result<Response<AnyBody>, EdgeError> {
    let pool = &route.pool;
    let mut added = prepare_request(req.headers_mut(), forwarding);
    route
        .headers
        .apply(&mut req, &mut added, id, (SystemTime::now(), memo))?;
    let key = id.map(|i| i.principal.as_str());
    let (parts, body) = req.into_parts();
    let framing = request_framing(&parts.headers)?;

    let (link, conn) = pool.checkout(key).await?;
    let backend = pool.backend();
    let answer = exchange(conn, (&parts, &added), body, framing, backend.head_timeout());
    let (head, body) = backend.response_head(link.member_ref(), answer).await?;
    if let Some(m) = member {
        *m = Some(link.member_ref().clone());
    }
    let mut headers = head.headers;
    strip_hop_by_hop(&mut headers);
    if let Some(v) = mutual {
        headers.append(WWW_AUTHENTICATE, v);
    }
    let body = PooledBody::new(body, pool, link);
    let mut resp = Response::new(body.boxed_unsync());
    *resp.status_mut() = head.status;
    *resp.headers_mut() = headers;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        Identity::new(
            "alice@KEDGE.TEST".into(),
            "http".into(),
            Some(std::sync::Arc::new(kedge_pac())),
        )
    }

    fn request(headers: &[(&str, &'static str)]) -> Request<()> {
        let mut b = Request::builder()
            .method("POST")
            .uri("/ews/Exchange.asmx?x=1")
            .header(HOST, "outlook.contoso.com");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).expect("request")
    }

    /// The headers the member gets: the client's that `apply` left, then those it added.
    fn stated(
        h: &AssertHeaders,
        r: &mut Request<()>,
        id: Option<&Identity>,
        now: SystemTime,
    ) -> http::HeaderMap {
        let mut added = AddedHeaders::new();
        h.apply(r, &mut added, id, (now, &SignatureMemo::default()))
            .expect("a statable identity");
        let mut m = r.headers().clone();
        for (n, v) in added.iter() {
            m.append(n.clone(), HeaderValue::from_bytes(v).expect("a header value"));
        }
        m
    }

    #[test]
    fn spoofed_identity_headers_are_replaced() {
        let h = AssertHeaders::from_config(&cfg()).expect("setup");
        let mut r = request(&[
            ("x-kedge-principal", "admin@EVIL"),
            ("X-KEDGE-PRINCIPAL", "root@EVIL"),
            ("X_Kedge_Principal", "administrator@EVIL"),
            ("x-kedge-groups", "S-1-5-32-544"),
            ("x_kedge.groups", "S-1-5-32-544"),
            ("authorization", "Negotiate YWJj"),
        ]);
        let m = stated(&h, &mut r, Some(&alice()), SystemTime::now());
        assert_eq!(
            m.get_all("x-kedge-principal").iter().collect::<Vec<_>>(),
            vec!["alice@KEDGE.TEST"]
        );
        assert!(m.get("x_kedge_principal").is_none());
        assert!(m.get("x_kedge.groups").is_none());
        assert_eq!(
            m.get("x-kedge-groups").expect("groups"),
            "S-1-5-21-1-513,S-1-5-21-1-512"
        );
        assert!(m.get(AUTHORIZATION).is_none());
    }

    #[test]
    fn a_utf8_principal_is_stated_as_its_bytes() {
        let h = AssertHeaders::from_config(&cfg()).expect("setup");
        let weiss = Identity::new("weiß@KEDGE.TEST".into(), "http".into(), None);
        let m = stated(&h, &mut request(&[]), Some(&weiss), SystemTime::now());
        assert_eq!(
            m.get("x-kedge-principal").expect("principal").as_bytes(),
            "weiß@KEDGE.TEST".as_bytes()
        );
    }

    #[test]
    fn a_principal_with_a_control_character_is_refused_not_omitted() {
        let h = AssertHeaders::from_config(&cfg()).expect("setup");
        for name in [
            "eve\r\nx-kedge-groups: S-1-5-32-544@KEDGE.TEST",
            "eve\n@KEDGE.TEST",
            "eve\x00@KEDGE.TEST",
            "eve\x7f@KEDGE.TEST",
        ] {
            let id = Identity::new(name.into(), "http".into(), Some(std::sync::Arc::new(kedge_pac())));
            let mut r = request(&[("x-kedge-principal", "admin@EVIL")]);
            let mut added = AddedHeaders::new();
            let e = h
                .apply(
                    &mut r,
                    &mut added,
                    Some(&id),
                    (SystemTime::now(), &SignatureMemo::default()),
                )
                .expect_err(name);
            assert_eq!(e.kind, ErrorKind::UnstatablePrincipal);
            let d = e.disposition();
            assert_eq!(
                (d.status, d.label),
                (http::StatusCode::FORBIDDEN, "principal_unstatable")
            );
            assert!(!e.detail.contains(['\r', '\n', '\0', '\x7f']), "{:?}", e.detail);
            assert_eq!(added.iter().count(), 0, "nothing stated");
            assert!(
                r.headers().get("x-kedge-principal").is_none(),
                "the spoof is gone"
            );
        }
    }

    #[test]
    fn anonymous_requests_carry_no_identity() {
        let h = AssertHeaders::from_config(&cfg()).expect("setup");
        let mut r = request(&[("x-kedge-principal", "admin@EVIL"), ("x_kedge_principal", "x")]);
        let m = stated(&h, &mut r, None, SystemTime::now());
        assert!(m.get("x-kedge-principal").is_none());
        assert!(m.get("x_kedge_principal").is_none());
    }

    #[test]
    fn signed_requests_carry_signature_and_timestamp() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("key");
        std::fs::write(&path, "s3cret\n").expect("write");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
        let cfg = AssertConfig {
            signature_header: Some("X-Kedge-Signature".into()),
            hmac_key_file: Some(path),
            ..cfg()
        };
        let h = AssertHeaders::from_config(&cfg).expect("setup");
        let mut r = request(&[]);
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let m = stated(&h, &mut r, Some(&alice()), now);
        assert_eq!(m.get("x-kedge-timestamp").expect("ts"), "1700000000");
        let want = super::super::assert_signature::signature(
            b"s3cret",
            &Signed {
                method: b"POST",
                target: b"/ews/Exchange.asmx?x=1",
                host: b"outlook.contoso.com",
                principal: "alice@KEDGE.TEST",
                groups: b"S-1-5-21-1-513,S-1-5-21-1-512",
                timestamp: 1_700_000_000,
            },
        );
        assert_eq!(
            m.get("x-kedge-signature").expect("sig").to_str().expect("ascii"),
            want
        );
    }

    #[test]
    fn a_key_file_others_may_write_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("key");
        std::fs::write(&path, "s3cret").expect("write");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666)).expect("chmod");
        let cfg = AssertConfig {
            signature_header: Some("X-Kedge-Signature".into()),
            hmac_key_file: Some(path),
            ..cfg()
        };
        let e = AssertHeaders::from_config(&cfg).unwrap_err();
        assert!(e.to_string().contains("group or others may write"), "{e}");
    }
}
