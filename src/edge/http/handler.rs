//! One request on one client connection: route, credentials, the connection's auth state, and
//! dispatch to passthrough or assert forwarding. A refused token is answered here and never
//! forwarded.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::header::{HeaderValue, AUTHORIZATION, CONNECTION, WWW_AUTHENTICATE};
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::Mutex;

use super::assert_signature::SignatureMemo;
use super::body::{self, AnyBody, EdgeBody, PendingLine};
use super::error::{EdgeError, ErrorKind, Side};
use super::forward_headers::{remove_identity_headers, Forwarding};
use super::limits::{ConnClock, ExchangeGuard};
use super::negotiate::{self, ConnAuth, Credential, Identity, Owner};
use super::passthrough::{self, Origin, Pinned};
use super::routes::{self, Route, RouteTable};
use super::tls::ServerTls;
use crate::config::HttpListenerConfig;
use crate::edge::authenticate::authenticate;
use crate::edge::metrics;
use crate::edge::Authenticate;
use crate::krb::acceptor::{AcceptCtx, Accepted};
use crate::krb::error::AuthError;
use crate::observe::access_log::{AccessLog, Entry, Kind};
use crate::observe::{escaped, ByteMeter, RequestDurations, ResponseCounters};
use crate::pool::Member;

/// What every connection of a listener shares.
pub struct ListenerShared {
    /// Listener name (metrics, logs).
    pub name: String,
    /// Its config.
    pub cfg: Arc<HttpListenerConfig>,
    /// Its routes.
    pub routes: RouteTable,
    /// The validator.
    pub auth: Arc<dyn Authenticate>,
    /// TLS, when the listener terminates it.
    pub tls: Option<ServerTls>,
    /// The access log, where one is written.
    pub access_log: Option<Arc<AccessLog>>,
    /// The listener's name for access-log lines.
    pub label: Arc<str>,
    /// `kedge_http_request_duration_seconds` of requests no route matched.
    pub no_route: RequestDurations,
    /// `kedge_http_responses_total` of this listener.
    pub responses: ResponseCounters,
    /// Its byte meters (client → kedge, kedge → client), looked up once for every connection.
    pub bytes: (ByteMeter, ByteMeter),
}

/// What the access log needs of a request, taken before it is forwarded: no copy (the method
/// and header value share the parsed head's bytes).
struct Asked {
    method: http::Method,
    user_agent: Option<HeaderValue>,
    /// What the connection had read before this request (`ConnClock::request_mark`).
    mark_in: u64,
}

/// What serving a request found out, for its access-log line and latency histogram.
#[derive(Debug, Default)]
struct Served<'a> {
    /// Borrowed from the listener's table: no reference count every worker would write.
    route: Option<&'a Route>,
    auth: Option<&'static str>,
    identity: Option<Arc<Identity>>,
    member: Option<Arc<Member>>,
}

/// Auth state and pinned backend connection of one client connection.
#[derive(Debug, Default)]
struct ConnState {
    auth: ConnAuth,
    pinned: Option<Pinned>,
    /// Requests refused while the connection was not authenticated.
    refused: u32,
}

impl ConnState {
    /// Back to unauthenticated; the pinned backend connection (carrying the old logon) goes.
    fn reset(&mut self) {
        self.auth = ConnAuth::Anonymous;
        self.pinned = None;
    }
}

/// One client connection.
pub struct Session {
    listener: Arc<ListenerShared>,
    origin: Origin,
    /// The forwarding headers of `origin`, formatted once.
    forwarding: Forwarding,
    /// The last signature this connection's assert requests were given.
    signatures: SignatureMemo,
    /// The balancer's address, where a PROXY header named the client (`origin.peer`).
    via: Option<SocketAddr>,
    clock: Arc<ConnClock>,
    /// The RFC 5929 binding of the certificate this TLS connection was served.
    channel_binding: Option<Arc<[u8]>>,
    state: Mutex<ConnState>,
}

impl Session {
    /// A new, unauthenticated connection; `via` is the balancer that named `origin.peer` in a
    /// PROXY header, `channel_binding` that of the certificate it was served (TLS only).
    pub fn new(
        listener: Arc<ListenerShared>,
        origin: Origin,
        via: Option<SocketAddr>,
        clock: Arc<ConnClock>,
        channel_binding: Option<Arc<[u8]>>,
    ) -> Self {
        Self {
            listener,
            forwarding: Forwarding::new(origin.peer, origin.tls),
            signatures: SignatureMemo::default(),
            origin,
            via,
            clock,
            channel_binding,
            state: Mutex::new(ConnState::default()),
        }
    }

    /// Answers one request (hyper calls this once per request, one at a time per connection);
    /// every outcome is a response.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<EdgeBody>, Infallible> {
        let asked = self.listener.access_log.as_ref().map(|_| Asked {
            method: req.method().clone(),
            user_agent: req.headers().get(http::header::USER_AGENT).cloned(),
            mark_in: self.clock.request_mark(),
        });
        let guard = ExchangeGuard::start(self.clock.clone());
        let started = Instant::now();
        let path = req.uri().path().to_string();
        let mut served = Served::default();
        let mut reason = None;
        let resp = match self.serve(req, &mut served).await {
            Ok(resp) => resp,
            Err(e) => {
                let client_side = e.side == Side::Client;
                reason = Some(e.disposition().label);
                let mut resp = self.error_response(e, &path);
                if client_side {
                    self.spend_budget(&mut resp).await;
                }
                resp
            }
        };
        let status = resp.status().as_u16();
        self.listener.responses.count(status);
        let durations = served
            .route
            .as_ref()
            .map_or(&self.listener.no_route, |r| &r.durations);
        durations.record(status, started.elapsed().as_secs_f64());
        let line = asked.and_then(|asked| self.access_line(asked, served, path, status, reason, started));
        Ok(resp.map(|b| EdgeBody::new(b, guard, line)))
    }

    /// The request's access-log line, unless it is a success the sampling leaves out (decided
    /// before anything is built).
    fn access_line(
        &self,
        asked: Asked,
        served: Served<'_>,
        path: String,
        status: u16,
        reason: Option<&'static str>,
        started: Instant,
    ) -> Option<Box<PendingLine>> {
        let log = self.listener.access_log.as_ref()?;
        if reason.is_none() && status < 400 && !log.sample_success() {
            return None;
        }
        let mut e = Entry::new(
            Kind::Http,
            self.listener.label.clone(),
            self.origin.peer,
            began(started),
        );
        e.via = self.via;
        e.route = Some(
            served
                .route
                .map_or_else(|| "-".to_owned(), |r| r.cfg.prefix.clone()),
        );
        e.method = Some(asked.method);
        e.path = Some(path);
        e.auth = served.auth;
        e.principal = served.identity.map(|id| id.principal.clone());
        e.member = served.member.map(|m| m.name.clone());
        e.status = Some(status);
        e.reason = reason.map(str::to_owned);
        e.user_agent = asked.user_agent;
        Some(PendingLine::new(
            log.clone(),
            e,
            self.clock.clone(),
            started,
            asked.mark_in,
        ))
    }

    async fn serve<'a>(
        &'a self,
        req: Request<Incoming>,
        served: &mut Served<'a>,
    ) -> Result<Response<AnyBody>, EdgeError> {
        routes::check_path(req.uri().path())?;
        let route: &'a Route = self
            .listener
            .routes
            .find(req.uri().path())
            .map(|r| &**r)
            .ok_or_else(|| EdgeError::client(ErrorKind::NoRoute, "no route for the path"))?;
        served.route = Some(route);
        let limits = &self.listener.cfg.limits;
        let credential = negotiate::parse_authorization(req.headers(), limits.max_token_bytes);

        let mut st = self.state.lock().await;
        let credential = match credential {
            Ok(c) => c,
            Err(e) => {
                if e.kind == ErrorKind::TooLarge {
                    metrics::limit_exceeded(&self.listener.name, "token_bytes");
                }
                metrics::auth_attempt("http", &route.cfg.service, "refused", e.disposition().label, None);
                st.reset();
                return Err(e);
            }
        };
        let mut mutual = None;
        let (mut unverified, mut strip_authorization) = (false, false);
        match credential {
            Credential::Negotiate(token) => match self.validate(&token, route).await {
                Ok(acc) => {
                    let service = &route.cfg.service;
                    let id = match &st.auth {
                        // A fresh token of the ticket the connection holds: the same identity.
                        ConnAuth::Kerberos(old) if old.is_of(&acc.client, acc.pac.as_ref(), service) => {
                            old.clone()
                        }
                        held => {
                            let id = Identity::from_accepted(&acc, service);
                            if let ConnAuth::Kerberos(old) = held {
                                if old.principal != id.principal {
                                    tracing::info!(
                                        peer = %self.origin.peer, old = %escaped(&old.principal),
                                        new = %escaped(&id.principal),
                                        "connection re-authenticated as another principal"
                                    );
                                }
                            }
                            Arc::new(id)
                        }
                    };
                    st.auth = ConnAuth::Kerberos(id);
                    self.authenticated(&mut st);
                    if route.assert.is_some() {
                        mutual = acc.response_token().as_deref().map(negotiate::negotiate_header);
                    }
                }
                Err(AuthError::Ntlm) => self.ntlm(&mut st, route)?,
                Err(e) => {
                    st.reset();
                    return Err(match e {
                        AuthError::GroupDenied(_) => EdgeError::client(ErrorKind::Forbidden, e.to_string()),
                        AuthError::ReplayStoreUnavailable(_) => {
                            EdgeError::internal(ErrorKind::ReplayStoreUnavailable, e.to_string())
                        }
                        _ => EdgeError::client(ErrorKind::AuthRefused(e.reason()), e.to_string()),
                    });
                }
            },
            Credential::Ntlm => self.ntlm(&mut st, route)?,
            Credential::Basic if route.passes_basic() => {
                self.authenticated(&mut st);
                unverified = true;
                served.auth = Some("basic");
            }
            Credential::Bearer if route.passes_bearer() => {
                self.authenticated(&mut st);
                unverified = true;
                served.auth = Some("bearer");
            }
            // Anonymous routes forward no credential kedge did not check (password spraying
            // against Autodiscover through the edge): the header goes, the request goes on.
            Credential::Basic | Credential::Bearer | Credential::Other(_) if route.cfg.anonymous => {
                strip_authorization = true
            }
            Credential::Basic => return Err(refuse_scheme(route, "basic_refused", "Basic")),
            Credential::Bearer => return Err(refuse_scheme(route, "bearer_refused", "Bearer")),
            Credential::Other(scheme) => return Err(refuse_scheme(route, "unsupported_scheme", &scheme)),
            Credential::None => {}
        }
        let (owner, identity) = if unverified {
            // A password or token for the member to check: the connection's Kerberos identity
            // (and its pinned backend connection) must not carry it.
            if st.auth != ConnAuth::Anonymous {
                st.reset();
            }
            (Owner::Unverified, None)
        } else {
            authorize(&st.auth, route)?
        };
        if served.auth.is_none() {
            served.auth = Some(match &owner {
                Owner::Principal(_) => "kerberos",
                Owner::Ntlm => "ntlm",
                Owner::Anonymous => "anonymous",
                Owner::Unverified => "unverified",
            });
        }
        served.identity.clone_from(&identity);
        let mut req = req;
        remove_identity_headers(req.headers_mut(), &route.identity_headers);
        if strip_authorization {
            req.headers_mut().remove(AUTHORIZATION);
        }

        match &route.assert {
            None => {
                let resp =
                    passthrough::forward(&mut st.pinned, &route.backend, owner, &self.forwarding, req).await;
                // For the access log only: the member's count is every worker's to write.
                if self.listener.access_log.is_some() {
                    served.member = st.pinned.as_ref().map(|p| p.member().clone());
                }
                resp
            }
            Some(a) => {
                drop(st);
                let id = identity.as_deref();
                let conn = (&self.forwarding, &self.signatures);
                // The answering member is kept for the access log only (see passthrough).
                let member = self.listener.access_log.is_some().then_some(&mut served.member);
                super::assert::forward(a, id, mutual, conn, req, member).await
            }
        }
    }

    /// Validates a Negotiate token for `route` (and consults the shared replay store, where
    /// there is one), counting and logging the outcome.
    async fn validate(&self, token: &[u8], route: &Route) -> Result<Accepted, AuthError> {
        let started = Instant::now();
        let channel_binding = self.channel_binding.as_deref();
        let ctx = AcceptCtx {
            now: SystemTime::now(),
            service: &route.cfg.service,
            channel_binding,
            groups: route.cfg.groups.as_ref(),
            check_replay: true,
        };
        let res = authenticate(&*self.listener.auth, token, &ctx, "http").await;
        let secs = started.elapsed().as_secs_f64();
        match &res {
            Ok(acc) => {
                route.auth_successes.record(secs);
                tracing::debug!(
                    listener = %self.listener.name, peer = %self.origin.peer, principal = %escaped(&acc.client),
                    service = %route.cfg.service, mutual = acc.mutual, "Negotiate token accepted"
                );
            }
            // Counted where NTLM policy is applied.
            Err(AuthError::Ntlm) => {}
            // Logged once, as the request's refusal (`error_response`).
            Err(e) => metrics::auth_attempt("http", &route.cfg.service, "refused", e.reason(), Some(secs)),
        }
        res
    }

    /// NTLM on `route`: passed through where policy says so, otherwise refused and counted.
    fn ntlm(&self, st: &mut ConnState, route: &Route) -> Result<(), EdgeError> {
        if route.passes_ntlm() {
            st.auth = ConnAuth::Ntlm;
            self.authenticated(st);
            return Ok(());
        }
        st.reset();
        metrics::ntlm_rejected("http");
        metrics::auth_attempt("http", &route.cfg.service, "refused", "ntlm", None);
        Err(EdgeError::client(
            ErrorKind::NtlmRejected,
            "NTLM refused by policy",
        ))
    }

    /// The connection carries a credential kedge accepted (or passes to the member): the
    /// unauthenticated budget is reset.
    fn authenticated(&self, st: &mut ConnState) {
        st.refused = 0;
        self.clock.clear_unauthenticated_deadline();
    }

    /// A request of this connection was refused for something the client did. A connection
    /// that is not authenticated has `unauthenticated_timeout_ms` from its first refusal to
    /// authenticate, and at most `max_failed_auth` refusals: the last is answered with
    /// `Connection: close`. (Today such a connection would otherwise idle for 20 minutes.)
    async fn spend_budget(&self, resp: &mut Response<AnyBody>) {
        let mut st = self.state.lock().await;
        if st.auth != ConnAuth::Anonymous {
            return;
        }
        let limits = &self.listener.cfg.limits;
        st.refused = st.refused.saturating_add(1);
        self.clock
            .start_unauthenticated_deadline(Duration::from_millis(limits.unauthenticated_timeout_ms));
        if limits.max_failed_auth != 0 && st.refused >= limits.max_failed_auth {
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            metrics::limit_exceeded(&self.listener.name, "max_failed_auth");
        }
    }

    fn error_response(&self, e: EdgeError, path: &str) -> Response<AnyBody> {
        let d = e.disposition();
        metrics::edge_error(&self.listener.name, e.side.label(), d.label);
        macro_rules! log {
            ($lvl:expr) => {
                tracing::event!(
                    $lvl, listener = %self.listener.name, peer = %self.origin.peer, path = %escaped(path),
                    status = d.status.as_u16(),
                    reason = d.label, side = e.side.label(), detail = %e.detail, "request refused"
                )
            };
        }
        match d.level {
            tracing::Level::ERROR => log!(tracing::Level::ERROR),
            tracing::Level::WARN => log!(tracing::Level::WARN),
            tracing::Level::INFO => log!(tracing::Level::INFO),
            _ => log!(tracing::Level::DEBUG),
        }
        let text = match e.kind {
            ErrorKind::ReplayStoreUnavailable => {
                "Service Unavailable: the shared replay store is unreachable"
            }
            _ => d.status.canonical_reason().unwrap_or("error"),
        };
        let mut resp = Response::new(body::text(text));
        *resp.status_mut() = d.status;
        if e.kind == ErrorKind::ReplayStoreUnavailable {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if d.status == http::StatusCode::UNAUTHORIZED {
            let route = self.listener.routes.find(path);
            let offer = negotiate::Offer {
                ntlm: route.is_some_and(|r| r.passes_ntlm()),
                basic: route.is_some_and(|r| r.passes_basic()),
                bearer: route.is_some_and(|r| r.passes_bearer()),
            };
            for v in negotiate::challenge(offer) {
                resp.headers_mut().append(WWW_AUTHENTICATE, v);
            }
        }
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    }
}

/// The wall-clock time of `started`.
fn began(started: Instant) -> SystemTime {
    let now = SystemTime::now();
    now.checked_sub(started.elapsed()).unwrap_or(now)
}

/// Counts and refuses an Authorization scheme the route does not take.
fn refuse_scheme(route: &Route, reason: &'static str, scheme: &str) -> EdgeError {
    metrics::auth_attempt("http", &route.cfg.service, "refused", reason, None);
    EdgeError::client(
        ErrorKind::AuthRefused(reason),
        format!(
            "Authorization scheme \"{}\" is not accepted on this route",
            escaped(scheme)
        ),
    )
}

/// Whether the connection's identity may use `route`, and as whom its backend connection runs.
fn authorize(auth: &ConnAuth, route: &Route) -> Result<(Owner, Option<Arc<Identity>>), EdgeError> {
    let cfg = &route.cfg;
    match auth {
        ConnAuth::Kerberos(id) => {
            if !cfg.anonymous {
                if !id.service.eq_ignore_ascii_case(&cfg.service) {
                    return Err(EdgeError::client(
                        ErrorKind::NoCredentials,
                        format!(
                            "{} authenticated for {}, route needs {}",
                            escaped(&id.principal),
                            escaped(&id.service),
                            cfg.service
                        ),
                    ));
                }
                if let Some(rules) = &cfg.groups {
                    if !id.permitted_by(rules) {
                        return Err(EdgeError::client(
                            ErrorKind::Forbidden,
                            format!("{} by group rules", escaped(&id.principal)),
                        ));
                    }
                }
            }
            Ok((Owner::Principal(id.principal.clone()), Some(id.clone())))
        }
        ConnAuth::Ntlm if route.passes_ntlm() || cfg.anonymous => Ok((Owner::Ntlm, None)),
        ConnAuth::Anonymous if cfg.anonymous => Ok((Owner::Anonymous, None)),
        ConnAuth::Ntlm | ConnAuth::Anonymous => {
            Err(EdgeError::client(ErrorKind::NoCredentials, "no credentials"))
        }
    }
}
