//! The routes of a listener: longest path prefix wins, compared ASCII case-insensitively as IIS
//! does (`/EWS/Exchange.asmx` and `/ews/` are one); paths that could mean something else to the
//! backend (dot segments, encoded slashes or dots) are refused, so a prefix rule cannot be
//! side-stepped with `/owa/healthcheck.htm/../`.

use std::sync::Arc;

use http::HeaderName;

use super::assert::{AssertHeaders, AssertPool};
use super::backend::Backend;
use super::error::{EdgeError, ErrorKind};
use super::{EdgeContext, ServeError};
use crate::config::{AssertConfig, HttpListenerConfig, NtlmPolicy, RouteConfig, RouteMode, SchemePolicy};
use crate::observe::{AuthSuccesses, RequestDurations};

/// Assert-mode set-up of a route.
#[derive(Debug)]
pub struct AssertRoute {
    /// The pooled backend connections.
    pub pool: Arc<AssertPool>,
    /// The identity headers.
    pub headers: AssertHeaders,
}

/// A route, ready to serve.
#[derive(Debug)]
pub struct Route {
    /// Its config.
    pub cfg: RouteConfig,
    /// Where it forwards.
    pub backend: Backend,
    /// Present in assert mode.
    pub assert: Option<AssertRoute>,
    /// Identity header names of every assert route of the listener: removed from every
    /// client request on every route, so no route can carry a spoofed one to a backend that
    /// trusts kedge's.
    pub identity_headers: Arc<[HeaderName]>,
    /// `kedge_http_request_duration_seconds` of this route (label: its prefix).
    pub durations: RequestDurations,
    /// `kedge_auth_attempts_total` and the validation time of tokens accepted here.
    pub auth_successes: AuthSuccesses,
}

impl Route {
    /// Whether NTLM is passed through here (and so offered in the 401).
    pub fn passes_ntlm(&self) -> bool {
        self.cfg.ntlm == NtlmPolicy::Passthrough && self.cfg.mode == RouteMode::Passthrough
    }

    /// Whether Basic is passed through here (and so offered in the 401).
    pub fn passes_basic(&self) -> bool {
        self.cfg.basic == SchemePolicy::Passthrough && self.cfg.mode == RouteMode::Passthrough
    }

    /// Whether OAuth bearer tokens are passed through here (and so offered in the 401).
    pub fn passes_bearer(&self) -> bool {
        self.cfg.bearer == SchemePolicy::Passthrough && self.cfg.mode == RouteMode::Passthrough
    }
}

/// The routes of one listener.
#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// Resolves pools, TLS clients and assert headers of every route.
    pub fn build(cfg: &HttpListenerConfig, ctx: &EdgeContext) -> Result<Self, ServeError> {
        let mut identity = vec![
            HeaderName::from_static("x-kedge-principal"),
            HeaderName::from_static("x-kedge-timestamp"),
        ];
        for (i, r) in cfg.routes.iter().enumerate() {
            if r.mode == RouteMode::Assert {
                let headers =
                    AssertHeaders::from_config(r.assert.as_ref().unwrap_or(&AssertConfig::default()))
                        .map_err(|e| ServeError::Route {
                            index: i,
                            reason: e.to_string(),
                        })?;
                identity.extend(headers.names().iter().cloned());
            }
        }
        identity.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        identity.dedup();
        let identity_headers: Arc<[HeaderName]> = identity.into();
        let mut routes = Vec::new();
        for (i, r) in cfg.routes.iter().enumerate() {
            let backend = ctx.backend(&r.pool).ok_or_else(|| ServeError::Route {
                index: i,
                reason: format!("no pool named {:?}", r.pool),
            })?;
            let assert = match r.mode {
                RouteMode::Passthrough => None,
                RouteMode::Assert => {
                    let headers =
                        AssertHeaders::from_config(r.assert.as_ref().unwrap_or(&AssertConfig::default()))
                            .map_err(|e| ServeError::Route {
                                index: i,
                                reason: e.to_string(),
                            })?;
                    let pool = ctx.assert_pool(&r.pool).ok_or_else(|| ServeError::Route {
                        index: i,
                        reason: format!("no pool named {:?}", r.pool),
                    })?;
                    Some(AssertRoute { pool, headers })
                }
            };
            routes.push(Arc::new(Route {
                cfg: r.clone(),
                backend,
                assert,
                identity_headers: identity_headers.clone(),
                durations: RequestDurations::new(&cfg.name, &r.prefix),
                auth_successes: AuthSuccesses::new("http", &r.service),
            }));
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.cfg.prefix.len()));
        Ok(Self { routes })
    }

    /// The route for `path`: the longest matching prefix.
    pub fn find(&self, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| {
            let p = r.cfg.prefix.as_bytes();
            path.len() >= p.len() && path.as_bytes()[..p.len()].eq_ignore_ascii_case(p)
        })
    }
}

/// Refuses paths a backend might resolve differently from kedge's prefix match.
pub fn check_path(path: &str) -> Result<(), EdgeError> {
    let bad = |why: &'static str| Err(EdgeError::client(ErrorKind::Malformed("suspicious_path"), why));
    if !path.starts_with('/') && path != "*" {
        return bad("path is not absolute");
    }
    // One walk: a backslash anywhere; every `%` with the two bytes after it, in either case
    // (no copy of the path); each segment as its `/` ends it, and the last at the end.
    let b = path.as_bytes();
    let dot = |seg: &[u8]| seg == b"." || seg == b"..";
    let mut segment = 0;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'\\' => return bad("backslash in path"),
            b'%' => {
                let encoded = b.get(i + 1..i + 3).is_some_and(|e| {
                    let pair = [e[0].to_ascii_lowercase(), e[1].to_ascii_lowercase()];
                    matches!(&pair, b"2e" | b"2f" | b"5c" | b"00")
                });
                if encoded {
                    return bad("encoded dot, slash, backslash or NUL in path");
                }
            }
            b'/' => {
                if dot(&b[segment..i]) {
                    return bad("dot segment in path");
                }
                segment = i + 1;
            }
            _ => {}
        }
    }
    if dot(&b[segment..]) {
        return bad("dot segment in path");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_and_encoded_separators_are_refused() {
        for p in [
            "/owa/../ecp/",
            "/owa/./x",
            "/owa/%2e%2e/ecp",
            "/owa%2Fecp",
            "/owa/%2E%2E/ecp",
            "/owa%5cecp",
            "/owa%5Cecp",
            "/owa%00.aspx",
            "/owa/%%2e",
            "/x%2f",
            "/owa\\..\\ecp",
            "/a/..",
            "/.",
            "/..",
            "/./",
            "/a/./",
            "//..//",
            "/a\\b",
        ] {
            assert!(check_path(p).is_err(), "{p}");
        }
        for p in [
            "/",
            "/rpc/rpcproxy.dll",
            "/owa/x.y/z..txt",
            "/mapi/emsmdb/",
            "/owa/%20name",
            "/owa/100%",
            "/owa/%2",
            "/owa/%e2%82%ac",
            "/...",
            "/.a",
            "/a./b",
            "/..b/",
            "//",
            "*",
        ] {
            assert!(check_path(p).is_ok(), "{p}");
        }
    }
}
