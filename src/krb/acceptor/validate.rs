//! The checks of DESIGN.md §2 on a DER AP-REQ, in order, over one key set and the tickets it
//! opened: [`validate`] is what [`super::Acceptor::accept`] runs once the token is unframed.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use super::{
    AcceptCtx, Accepted, AcceptorConfig, ApRepParts, ChannelBindingPolicy, Framing, Reply, ANY_SERVICE,
};
use crate::krb::ap_req::{ApReqView, AuthenticatorView};
use crate::krb::crypto::{EncType, Key};
use crate::krb::der::{EncodedPrincipal, NameView};
use crate::krb::enc_ticket::EncTicketView;
use crate::krb::error::AuthError;
use crate::krb::keyset::KeySet;
use crate::krb::principal::Principal;
use crate::krb::replay::{ReplayCache, ReplayKey, ReplayVerdict};
use crate::krb::ticket_cache::{OpenedTicket, TicketCache};
use crate::krb::{authz, gss_checksum, time};

/// `name@realm` from a name as a ticket, AP-REQ or authenticator carries it.
fn principal_of_view(name: &NameView<'_>, realm: &str) -> Principal {
    Principal {
        name_type: name.name_type(),
        components: name
            .components()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect(),
        realm: realm.to_string(),
    }
}

/// The ticket's client, `cname@crealm`. Every component and the realm must be
/// UTF-8, as AD and MIT issue them: a lossy reading would make two names the KDC tells apart
/// (`a\x80`, `a\x81`) one identity here, with one affinity key, one replay key and one
/// asserted principal.
fn client_of(cname: &NameView<'_>, crealm: &[u8]) -> Result<Principal, AuthError> {
    let not_utf8 = || AuthError::malformed("ticket", "client name or realm is not UTF-8");
    let realm = std::str::from_utf8(crealm).map_err(|_| not_utf8())?.to_owned();
    let components = cname
        .components()
        .map(|c| std::str::from_utf8(c).map(str::to_owned))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| not_utf8())?;
    Ok(Principal {
        name_type: cname.name_type(),
        components,
        realm,
    })
}

/// The key set a validation uses and the tickets opened with it.
#[derive(Clone, Copy)]
pub(super) struct Keys<'a> {
    pub(super) set: &'a KeySet,
    pub(super) tickets: &'a TicketCache,
}

/// A ticket kept from an earlier AP-REQ, or one opened now (with the PAC found in its
/// authorization data, or why none could be, checked in its turn).
enum Opened {
    Kept(Arc<OpenedTicket>),
    Now(Box<OpenedTicket>, FoundPac),
}

/// The PAC bytes of a ticket just opened; an error for a malformed AD-IF-RELEVANT or more than
/// one PAC, reported at the PAC step (after the authenticator's checks, as before).
type FoundPac = Result<Option<Vec<u8>>, AuthError>;

impl std::ops::Deref for Opened {
    type Target = OpenedTicket;
    fn deref(&self) -> &OpenedTicket {
        match self {
            Opened::Kept(t) => t,
            Opened::Now(t, _) => t,
        }
    }
}

/// The checks of DESIGN.md §2 on a DER AP-REQ, in order.
pub(super) fn validate(
    cfg: &AcceptorConfig,
    keys: Keys<'_>,
    replay: &ReplayCache,
    ap_req_bytes: &[u8],
    framing: Framing,
    ctx: &AcceptCtx<'_>,
) -> Result<Accepted, AuthError> {
    let now = time::unix_secs(ctx.now);
    let skew = i64::try_from(cfg.skew.as_secs()).unwrap_or(300);

    // 1. The AP-REQ (read in place; rasn reads the forms the borrowed reader does not).
    let mut decoded = None;
    let req = ApReqView::read(ap_req_bytes, &mut decoded)
        .ok_or_else(|| AuthError::malformed("ap-req", "does not decode"))?;
    if req.pvno != 5 {
        return Err(AuthError::BadVersion(req.pvno));
    }
    if req.msg_type != 14 {
        return Err(AuthError::MsgType(req.msg_type));
    }
    if req.use_session_key {
        return Err(AuthError::Unsupported(
            "user-to-user (use-session-key) tickets".into(),
        ));
    }
    if req.tkt_vno != 5 {
        return Err(AuthError::BadVersion(req.tkt_vno));
    }

    // 2. Ticket: SPN, realm, key, decrypt (or the ticket as an earlier AP-REQ opened it). The
    // sname is checked as encoded; the owned name is made only for a ticket opened now, an
    // error, or a token naming its ticket's service otherwise than the one that opened it.
    let sname_of = || Arc::new(principal_of_view(&req.sname, &String::from_utf8_lossy(req.realm)));
    check_spn(cfg, &req.sname, ctx.service, || sname_of().name())?;
    if let Some(want) = &cfg.realm {
        if !want.as_bytes().eq_ignore_ascii_case(req.realm) {
            return Err(AuthError::WrongRealm {
                got: String::from_utf8_lossy(req.realm).into_owned(),
                want: want.clone(),
            });
        }
    }
    if keys.set.is_empty() {
        return Err(AuthError::NoKeys);
    }
    let etype_n = req.ticket.etype;
    let etype = EncType::from_i32(etype_n).ok_or_else(|| AuthError::NoKey {
        principal: sname_of().to_string(),
        etype: format!("enctype {etype_n}"),
    })?;
    if !keys.set.has_etype(etype, ctx.now) {
        return Err(AuthError::NoKey {
            principal: sname_of().to_string(),
            etype: etype.name().into(),
        });
    }
    let tkvno = req.ticket.kvno;
    let cipher: &[u8] = req.ticket.cipher;
    let kept = keys.tickets.get(etype_n, tkvno, cipher).filter(|t| {
        keys.set
            .keys()
            .get(t.key_index)
            .is_some_and(|k| k.usable(ctx.now))
    });
    let t = match kept {
        Some(t) => Opened::Kept(t),
        None => {
            let (t, found) = open_ticket(keys.set, sname_of(), etype, tkvno, cipher, ctx.now)?;
            Opened::Now(Box::new(t), found)
        }
    };
    // Sent in clear beside the ticket: a kept ticket's name stands only for the same bytes.
    let sname = if names(&req.sname, req.realm, &t.service) {
        t.service.clone()
    } else {
        sname_of()
    };
    let service_key = &keys.set.keys()[t.key_index];
    check_client_realm(cfg, &t.client.realm, &service_key.principal.realm)?;

    // 3. Times.
    if t.invalid {
        return Err(AuthError::TicketNotYetValid {
            starttime: t.authtime,
            now,
            skew,
        });
    }
    let (authtime, starttime, endtime) = (t.authtime, t.starttime, t.endtime);
    if starttime > now.saturating_add(skew) {
        return Err(AuthError::TicketNotYetValid { starttime, now, skew });
    }
    if endtime < now.saturating_sub(skew) {
        return Err(AuthError::TicketExpired { endtime, now, skew });
    }

    // 4. Authenticator.
    let auth_plain = t
        .authenticator_keys
        .decrypt(req.authenticator.cipher)
        .map_err(|_| AuthError::Modified {
            part: "authenticator",
        })?;
    let mut decoded = None;
    let auth = AuthenticatorView::read(&auth_plain, &mut decoded)
        .ok_or_else(|| AuthError::malformed("authenticator", "does not decode"))?;
    if auth.vno != 5 {
        return Err(AuthError::BadVersion(auth.vno));
    }
    if !auth.cname.is(&t.client_encoded) || auth.crealm != &*t.client_encoded.realm {
        let a = principal_of_view(&auth.cname, &String::from_utf8_lossy(auth.crealm));
        return Err(AuthError::BadMatch {
            ticket: t.client.to_string(),
            authenticator: a.to_string(),
        });
    }
    let ctime = auth.ctime;
    let delta = ctime.saturating_sub(now);
    if delta.abs() > skew {
        return Err(AuthError::Skew { ctime, delta, skew });
    }
    let cusec = u32::try_from(auth.cusec).ok().filter(|u| *u <= 999_999);
    let cusec = cusec.ok_or_else(|| AuthError::malformed("authenticator", "cusec out of range"))?;

    // GSS checksum 0x8003 and channel bindings.
    let cksum = auth
        .cksum
        .ok_or_else(|| AuthError::BadChecksum("authenticator has no GSS checksum".into()))?;
    if cksum.r#type != gss_checksum::CKSUM_GSS {
        return Err(AuthError::BadChecksum(format!(
            "checksum type {} is not the GSS type 0x8003",
            cksum.r#type
        )));
    }
    let gcs = gss_checksum::parse(cksum.value)?;
    check_bindings(cfg.channel_binding, &gcs, ctx.channel_binding)?;
    let dce_style = gcs.flags & gss_checksum::FLAG_DCE_STYLE != 0;
    let mutual = req.mutual_required || gcs.flags & gss_checksum::FLAG_MUTUAL != 0;

    // 6. PAC (verified once per ticket) and group rules (every time).
    let pac = match &t {
        Opened::Kept(t) => t.pac.clone(),
        Opened::Now(t, found) => match found.as_ref().map_err(Clone::clone)? {
            Some(bytes) => Some(Arc::new(authz::check_pac(
                bytes,
                service_key,
                &t.client.name(),
                &t.client.realm,
                authtime,
                cfg.verify_pac,
            )?)),
            None => None,
        },
    };
    if pac.is_none() && cfg.require_pac {
        return Err(AuthError::MissingPac);
    }
    if let Some(rules) = ctx.groups {
        authz::apply_group_rules(rules, pac.as_deref())?;
    }

    // 5. Replay, last, so that only authenticators that passed every other check take a slot.
    let mut replay_id = None;
    if ctx.check_replay {
        // Keyed on authenticated data only: never on sname, realm or framing, which travel
        // in clear (a re-labelled copy of a used token is the same authenticator).
        let key = ReplayKey {
            client: &t.client,
            ctime,
            cusec,
            authenticator: req.authenticator.cipher,
        };
        if cfg.shared_replay {
            replay_id = Some(key.shared_id());
        }
        match replay.check_and_insert(&key, now, 2 * skew) {
            ReplayVerdict::Fresh => {}
            ReplayVerdict::Replay => {
                return Err(AuthError::Replay {
                    client: t.client.to_string(),
                })
            }
            ReplayVerdict::Full => return Err(AuthError::ReplayCacheFull(replay.len())),
            ReplayVerdict::PrincipalShare => {
                return Err(AuthError::ReplayShareExceeded {
                    client: t.client.to_string(),
                    max: replay.max_per_principal().unwrap_or(usize::MAX),
                })
            }
        }
    }

    // 7. Result (the AP-REP is built on demand by `Accepted::response_token`). A ticket opened
    // now is kept for the client's next AP-REQ: every check passed.
    let kvno = service_key.kvno;
    let ticket = match t {
        Opened::Kept(t) => t,
        Opened::Now(mut t, _) => {
            t.pac = pac.clone();
            let t: Arc<OpenedTicket> = Arc::from(t);
            keys.tickets.insert(etype_n, tkvno, cipher, t.clone());
            t
        }
    };
    let context_key = match auth.subkey {
        Some(sub) => EncType::from_i32(sub.r#type)
            .and_then(|e| Key::new(e, sub.value).ok())
            .ok_or_else(|| AuthError::malformed("authenticator", "unusable subkey"))?,
        None => ticket.session_key.clone(),
    };
    Ok(Accepted {
        client: ticket.client.clone(),
        service: sname,
        etype,
        kvno,
        authtime,
        starttime,
        endtime,
        pac,
        session_key: context_key,
        gss_flags: gcs.flags,
        mutual,
        dce_style,
        framing,
        replay_id,
        reply: Reply::Kerberos(ApRepParts {
            ticket,
            ctime: time::krb_time(ctime),
            cusec,
        }),
    })
}

/// Decrypts and reads a ticket with the first candidate key that opens it, and finds its PAC.
fn open_ticket(
    keys: &KeySet,
    sname: Arc<Principal>,
    etype: EncType,
    tkvno: Option<u32>,
    cipher: &[u8],
    now: SystemTime,
) -> Result<(OpenedTicket, FoundPac), AuthError> {
    let mut decrypted = None;
    for sk in keys.candidates(&sname, etype, tkvno, now) {
        if let Ok(plain) = sk.ticket_keys().decrypt(cipher) {
            decrypted = Some((sk, plain));
            break;
        }
    }
    let Some((service_key, plain)) = decrypted else {
        let loaded = keys.kvnos();
        let kv_known = tkvno.is_none_or(|v| loaded.contains(&v));
        return Err(if kv_known {
            AuthError::Modified { part: "ticket" }
        } else {
            let v = tkvno.unwrap_or(0);
            AuthError::BadKeyVersion {
                ticket_kvno: v,
                stale: loaded.iter().all(|k| *k < v),
                loaded,
            }
        });
    };
    let key_index = keys
        .keys()
        .iter()
        .position(|k| std::ptr::eq(k, service_key))
        .unwrap_or_default();
    // Read in place (rasn reads the forms the borrowed reader does not); the names take any
    // byte, so UTF-8 client names (AD's and MIT's) are read whatever bytes they hold.
    let mut decoded = None;
    let enc = EncTicketView::read(&plain, &mut decoded)
        .ok_or_else(|| AuthError::malformed("ticket", "enc-part does not decode"))?;
    let client = client_of(&enc.cname, enc.crealm)?;
    let (authtime, endtime) = (enc.authtime, enc.endtime);
    let starttime = enc.starttime.unwrap_or(authtime);
    let session_key = Key::new(
        EncType::from_i32(enc.key.r#type)
            .ok_or_else(|| AuthError::Unsupported(format!("session key enctype {}", enc.key.r#type)))?,
        enc.key.value,
    )
    .map_err(|_| AuthError::malformed("ticket", "session key of the wrong length"))?;
    // Found while the plaintext is at hand (the PAC is copied out of it); checked later.
    let found = authz::find_pac(enc.authorization_data.as_ref()).map(|p| p.map(Cow::into_owned));
    let ticket = OpenedTicket::new(
        key_index,
        sname,
        client,
        EncodedPrincipal::of(&enc.cname, enc.crealm),
        enc.invalid(),
        [authtime, starttime, endtime],
        session_key,
    );
    Ok((ticket, found))
}

/// The ticket must name the service this listener serves, on one of the array's host names
/// (compared as encoded; `got` makes the name for the error).
/// Note: the ticket's sname travels in clear and is not covered by the ticket's encryption, and
/// an ASA's SPNs all share one key, so this is a policy check against misdirected clients, not a
/// cryptographic boundary between protocols (ARCHITECTURE.md, invariants).
fn check_spn(
    cfg: &AcceptorConfig,
    sname: &NameView<'_>,
    service: &str,
    got: impl FnOnce() -> String,
) -> Result<(), AuthError> {
    let mut parts = sname.components();
    let (first, second, more) = (parts.next(), parts.next(), parts.next());
    let (svc, host) = match (first, second, more) {
        (Some(s), Some(h), None) => (Some(s), Some(h)),
        _ => (None, None),
    };
    let ok_service =
        service == ANY_SERVICE || svc.is_some_and(|s| s.eq_ignore_ascii_case(service.as_bytes()));
    let ok_host = cfg.hosts.is_empty()
        || host.is_some_and(|h| cfg.hosts.iter().any(|a| a.as_bytes().eq_ignore_ascii_case(h)));
    if ok_service && ok_host {
        return Ok(());
    }
    let want = match cfg.hosts.first() {
        Some(h) => format!("{service}/{h}"),
        None => format!("{service}/<array>"),
    };
    Err(AuthError::WrongSpn {
        got: got(),
        want,
        protocol: service.to_string(),
    })
}

/// Whether `name@realm`, as encoded, is `p` exactly (every component and the realm byte for
/// byte, and the name type).
fn names(name: &NameView<'_>, realm: &[u8], p: &Principal) -> bool {
    name.name_type() == p.name_type
        && realm == p.realm.as_bytes()
        && name.components().eq(p.components.iter().map(String::as_bytes))
}

/// The client's realm must be one whose users may log on: the listed realms, or without a list
/// the service's own (the configured realm, else the realm of the key that decrypted).
fn check_client_realm(cfg: &AcceptorConfig, crealm: &str, key_realm: &str) -> Result<(), AuthError> {
    let own = cfg.realm.as_deref().unwrap_or(key_realm);
    let ok = if cfg.client_realms.is_empty() {
        crealm.eq_ignore_ascii_case(own)
    } else {
        cfg.client_realms.iter().any(|r| r.eq_ignore_ascii_case(crealm))
    };
    if ok {
        return Ok(());
    }
    Err(AuthError::ClientRealmNotAllowed {
        realm: crealm.to_string(),
        allowed: if cfg.client_realms.is_empty() {
            own.to_string()
        } else {
            cfg.client_realms.join(", ")
        },
    })
}

/// Extended Protection: compare the client's `Bnd` with this connection's bindings.
fn check_bindings(
    policy: ChannelBindingPolicy,
    cs: &gss_checksum::GssChecksum,
    conn: Option<&[u8]>,
) -> Result<(), AuthError> {
    match (policy, conn, cs.has_bindings()) {
        (ChannelBindingPolicy::Ignore, _, _) => Ok(()),
        (ChannelBindingPolicy::Require, _, false) => Err(AuthError::MissingBindings),
        (ChannelBindingPolicy::Require, None, true) => Err(AuthError::BadBindings),
        (_, Some(app), true) => {
            let want = gss_checksum::bindings_hash(app);
            if subtle::ConstantTimeEq::ct_eq(&want[..], &cs.bindings[..]).into() {
                Ok(())
            } else {
                Err(AuthError::BadBindings)
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PrincipalName's contents (type 1) holding one KerberosString of `name`'s bytes.
    fn name_der(name: &[u8]) -> Vec<u8> {
        let n = u8::try_from(name.len()).expect("short name");
        let mut der = vec![0xA0, 3, 0x02, 1, 1, 0xA1, n + 4, 0x30, n + 2, 0x1B, n];
        der.extend_from_slice(name);
        der
    }

    fn client(name: &[u8], realm: &[u8]) -> Result<Principal, AuthError> {
        let der = name_der(name);
        let view = NameView::read(&der).expect("DER name");
        client_of(&view, realm)
    }

    #[test]
    fn utf8_client_names_are_read_as_issued() {
        let p = client("weiß".as_bytes(), b"KEDGE.TEST").expect("UTF-8 name");
        assert_eq!(p.to_string(), "weiß@KEDGE.TEST");
        assert_eq!(p.realm, "KEDGE.TEST");
        let p = client("рябов".as_bytes(), b"KEDGE.TEST").expect("UTF-8 name");
        assert_eq!(p.to_string(), "рябов@KEDGE.TEST");
    }

    #[test]
    fn client_names_that_are_not_utf8_are_refused_not_merged() {
        // Latin-1 café, and two names a lossy reading would make one.
        for name in [&b"caf\xE9"[..], b"a\x80", b"a\x81"] {
            let e = client(name, b"KEDGE.TEST").expect_err("not UTF-8");
            assert_eq!(e.reason(), "malformed", "{e}");
            assert!(e.to_string().contains("not UTF-8"), "{e}");
        }
        let e = client(b"alice", b"KEDGE\xFF").expect_err("realm not UTF-8");
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }
}
