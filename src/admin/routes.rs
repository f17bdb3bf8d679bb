//! Request routing of the admin API.

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;

use std::net::SocketAddr;

use super::guard::Refusal;
use super::status::MemberStatus;
use super::AdminState;
use crate::observe::{self, escaped};

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

fn text(status: StatusCode, body: impl Into<String>) -> Reply {
    reply(status, "text/plain; charset=utf-8", body.into())
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Reply {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => reply(status, "application/json", body),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("serializing: {e}\n")),
    }
}

/// Answers one request from `peer` (the body, if any, is ignored).
pub(super) async fn handle<B>(state: &AdminState, peer: SocketAddr, req: Request<B>) -> Reply {
    let path = req.uri().path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method();
    match (segments.as_slice(), method) {
        (["metrics"], &Method::GET) => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            observe::render(),
        ),
        (["healthz"], &Method::GET) => match state.liveness().await {
            Ok(()) => text(StatusCode::OK, "ok\n"),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not alive: {}\n", why.join("; ")),
            ),
        },
        (["readyz"], &Method::GET) => readiness(state.readiness()),
        (["readyz", listener], &Method::GET) => match state.listener_readiness(listener) {
            Some(r) => readiness(r),
            None => text(StatusCode::NOT_FOUND, format!("no listener named {listener:?}\n")),
        },
        (["status"], &Method::GET) => json(StatusCode::OK, &state.status()),
        ([verb @ ("drain" | "undrain"), pool, member], &Method::POST) => {
            match state.guard().admit(req.headers()) {
                Ok(()) => {
                    tracing::info!(%peer, pool = %escaped(pool), member = %escaped(member), verb, "admin request");
                    drain(state, pool, member, *verb == "drain")
                }
                Err(refusal) => refuse(peer, path, refusal),
            }
        }
        (["metrics" | "healthz" | "readyz" | "status"], _)
        | (["readyz", _], _)
        | (["drain" | "undrain", _, _], _) => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            let allow = if segments[0].ends_with("drain") {
                "POST"
            } else {
                "GET"
            };
            r.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static(allow));
            r
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn readiness(r: Result<(), Vec<String>>) -> Reply {
    match r {
        Ok(()) => text(StatusCode::OK, "ready\n"),
        Err(why) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", why.join("; ")),
        ),
    }
}

/// Answers a refused mutating request and logs it.
fn refuse(peer: SocketAddr, path: &str, r: Refusal) -> Reply {
    tracing::warn!(%peer, path = %escaped(path), reason = r.reason, "admin request refused");
    let mut resp = text(r.status, r.message);
    if r.status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"kedge-admin\""),
        );
    }
    resp
}

fn drain(state: &AdminState, pool: &str, member: &str, on: bool) -> Reply {
    let Some(p) = state.pools().get(pool) else {
        return text(StatusCode::NOT_FOUND, format!("no pool named {pool:?}\n"));
    };
    if let Err(e) = p.drain(member, on) {
        return text(StatusCode::NOT_FOUND, format!("{e}\n"));
    }
    match p.member(member) {
        Some(m) => json(StatusCode::OK, &MemberStatus::of(&m)),
        None => text(StatusCode::NOT_FOUND, format!("no member named {member:?}\n")),
    }
}
