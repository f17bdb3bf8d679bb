//! A scripted validator: tokens are text, `fake user=alice nonce=7 [svc=http] [mutual]
//! [groups=S-1,S-2] [ticket=T]`, so the connection machinery can be tested without a KDC. It
//! enforces the service, replay (by nonce) and group rules like the real acceptor, and records
//! the channel bindings it was given. Tokens of one user naming one `ticket` share that ticket's
//! PAC, as every acceptance of one kept ticket does with the real acceptor (its groups are
//! those of the first such token).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use kedge::edge::Authenticate;
use kedge::krb::acceptor::{AcceptCtx, Accepted, Framing, PacIdentity, Reply};
use kedge::krb::crypto::{EncType, Key};
use kedge::krb::error::AuthError;
use kedge::krb::principal::Principal;

pub const REALM: &str = "KEDGE.TEST";
pub const APREP: &[u8] = b"fake-ap-rep";

static NONCE: AtomicU64 = AtomicU64::new(1);

/// A fresh token for `user` with extra words (`mutual`, `svc=…`, `groups=…`).
pub fn token(user: &str, extra: &str) -> Vec<u8> {
    let n = NONCE.fetch_add(1, Ordering::Relaxed);
    format!("fake user={user} nonce={n} {extra}")
        .trim_end()
        .as_bytes()
        .to_vec()
}

/// `Negotiate <b64>` for a fresh token.
pub fn header(user: &str, extra: &str) -> String {
    negotiate(&token(user, extra))
}

/// `Negotiate <b64(token)>`.
pub fn negotiate(token: &[u8]) -> String {
    format!(
        "Negotiate {}",
        base64::engine::general_purpose::STANDARD.encode(token)
    )
}

/// The user a fake token names, if it is one.
pub fn user_of(token: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(token).ok()?.strip_prefix("fake ")?;
    text.split(' ')
        .find_map(|w| w.strip_prefix("user="))
        .map(|u| format!("{u}@{REALM}"))
}

/// The scripted validator.
#[derive(Default)]
pub struct FakeAuth {
    seen: Mutex<HashSet<String>>,
    /// The PAC of each kept `user/ticket`.
    kept: Mutex<HashMap<String, Arc<PacIdentity>>>,
    /// Channel bindings passed in, per call.
    pub bindings: Mutex<Vec<Option<Vec<u8>>>>,
}

impl Authenticate for FakeAuth {
    fn accept(&self, token: &[u8], ctx: &AcceptCtx<'_>) -> Result<Accepted, AuthError> {
        self.bindings
            .lock()
            .unwrap()
            .push(ctx.channel_binding.map(<[u8]>::to_vec));
        let text = std::str::from_utf8(token)
            .ok()
            .and_then(|t| t.strip_prefix("fake "))
            .ok_or_else(|| AuthError::malformed("gss", "not a fake token"))?;
        let (mut user, mut nonce, mut svc, mut mutual, mut groups, mut ticket) =
            (None, None, "http", false, None, None);
        for w in text.split(' ') {
            match w.split_once('=') {
                Some(("user", v)) => user = Some(v),
                Some(("nonce", v)) => nonce = Some(v),
                Some(("svc", v)) => svc = v,
                Some(("groups", v)) => groups = Some(v.split(',').map(String::from).collect::<Vec<_>>()),
                Some(("ticket", v)) => ticket = Some(v),
                None if w == "mutual" => mutual = true,
                _ => return Err(AuthError::malformed("gss", "unknown word")),
            }
        }
        let user = user.ok_or_else(|| AuthError::malformed("gss", "no user"))?;
        if !svc.eq_ignore_ascii_case(ctx.service) {
            return Err(AuthError::WrongSpn {
                got: format!("{svc}/kedge.test@{REALM}"),
                want: ctx.service.into(),
                protocol: "http".into(),
            });
        }
        let client =
            Principal::parse(user, REALM).map_err(|e| AuthError::malformed("ticket", e.to_string()))?;
        if ctx.check_replay
            && !self
                .seen
                .lock()
                .unwrap()
                .insert(format!("{user}/{}", nonce.unwrap_or("")))
        {
            return Err(AuthError::Replay {
                client: client.to_string(),
            });
        }
        let pac = groups.map(|g| {
            let made = || {
                Arc::new(PacIdentity::from_sids(
                    Some(format!("S-1-5-21-1-{}", 1000 + user.len())),
                    g,
                    Some("KEDGE".into()),
                ))
            };
            match ticket {
                Some(t) => self
                    .kept
                    .lock()
                    .unwrap()
                    .entry(format!("{user}/{t}"))
                    .or_insert_with(made)
                    .clone(),
                None => made(),
            }
        });
        if let Some(rules) = ctx.groups {
            let held: Vec<String> = pac.iter().flat_map(|p| p.group_sids()).collect();
            let has = |s: &String| held.contains(s);
            if rules.deny.iter().any(has) || (!rules.allow.is_empty() && !rules.allow.iter().any(has)) {
                return Err(AuthError::GroupDenied(client.to_string()));
            }
        }
        Ok(Accepted {
            service: Arc::new(Principal::parse(&format!("{svc}/kedge.test"), REALM).expect("spn")),
            client,
            etype: EncType::Aes256CtsHmacSha196,
            kvno: 1,
            authtime: 0,
            starttime: 0,
            endtime: i64::MAX,
            pac,
            session_key: Key::random(EncType::Aes256CtsHmacSha196),
            gss_flags: if mutual { 2 } else { 0 },
            mutual,
            dce_style: false,
            framing: Framing::Gss,
            replay_id: None,
            reply: if mutual {
                Reply::Fixed(APREP.to_vec())
            } else {
                Reply::None
            },
        })
    }
}
