//! Minting AP-REQs with a service key. A service key can issue tickets for its own SPNs (the
//! KDC's only role is to encrypt the ticket in that key), so kedge's bench client, its demo mode
//! and its unit tests make real RFC 4120 tokens locally, without a KDC. Nothing here is used by
//! the acceptor.

use rasn::types::{BitString, OctetString};
use rasn_kerberos::{
    ApOptions, ApRep, ApReq, Authenticator, AuthorizationDataValue, Checksum, EncApRepPart, EncTicketPart,
    EncryptedData, EncryptionKey, KerberosString, PrincipalName, Ticket, TicketFlags, TransitedEncoding,
};

use super::acceptor::{Framing, USAGE_AUTHENTICATOR};
use super::aprep::USAGE_AP_REP;
use super::crypto::{Key, UsageKeys};
use super::error::AuthError;
use super::gss::{self, TokenShape};
use super::gss_checksum;
use super::keyset::USAGE_TICKET;
use super::principal::Principal;
use super::spnego::{self, arcs, NegotiationToken};
use super::{authz, time};

/// What to mint.
pub struct MintRequest<'a> {
    /// The client principal.
    pub client: &'a Principal,
    /// The service principal (its realm is the ticket realm).
    pub service: &'a Principal,
    /// The service's key (ticket encryption).
    pub service_key: &'a Key,
    /// kvno to stamp on the ticket.
    pub kvno: u32,
    /// Ticket authtime and authenticator ctime (Unix seconds).
    pub now: i64,
    /// Microseconds of the authenticator time (vary it to make authenticators distinct).
    pub cusec: u32,
    /// Ticket lifetime, seconds.
    pub lifetime: i64,
    /// How to frame the token.
    pub framing: Framing,
    /// GSS flags in the 0x8003 checksum (`0x103e` for DCE style, `0x3e` typical).
    pub gss_flags: u32,
    /// Channel-binding application data (`tls-server-end-point:…`), if any.
    pub channel_binding: Option<&'a [u8]>,
    /// A PAC to embed (AD-IF-RELEVANT / AD-WIN2K-PAC), already signed with the service key.
    pub pac: Option<Vec<u8>>,
}

/// A minted token and what the client side needs to check the AP-REP or to send the ticket
/// again.
pub struct Minted {
    /// The initial context token.
    pub token: Vec<u8>,
    /// The ticket session key.
    pub session_key: Key,
    /// The service ticket, as a client keeps it for its next AP-REQs.
    pub ticket: Ticket,
}

impl Minted {
    /// A new token around the same ticket, as a client sends with its next request: a new
    /// authenticator of `req.client` at `req.now`/`req.cusec`, framed and flagged as `req`
    /// says (the ticket fields of `req` are not used).
    pub fn again(&self, req: &MintRequest<'_>) -> Vec<u8> {
        ap_req_token(req, self.ticket.clone(), &self.session_key)
    }
}

fn kstr(s: &str) -> KerberosString {
    KerberosString::from_bytes(s.as_bytes()).unwrap_or_default()
}

fn pname(p: &Principal) -> PrincipalName {
    PrincipalName {
        r#type: p.name_type,
        string: p.components.iter().map(|c| kstr(c)).collect(),
    }
}

fn flags32(bits: &[usize]) -> BitString {
    let mut b = BitString::repeat(false, 32);
    for i in bits {
        b.set(*i, true);
    }
    b
}

/// Mints an AP-REQ token for `req.client` to `req.service`.
pub fn mint(req: &MintRequest<'_>) -> Minted {
    let session_key = Key::random(req.service_key.etype());
    let realm = kstr(&req.service.realm);
    let crealm = kstr(&req.client.realm);
    let authorization_data = req.pac.as_ref().map(|pac| {
        let inner = vec![AuthorizationDataValue {
            r#type: authz::AD_WIN2K_PAC,
            data: OctetString::from(pac.clone()),
        }];
        let inner_der = rasn::der::encode(&inner).unwrap_or_default();
        vec![AuthorizationDataValue {
            r#type: authz::AD_IF_RELEVANT,
            data: OctetString::from(inner_der),
        }]
    });
    let enc = EncTicketPart {
        flags: TicketFlags(flags32(&[1, 8])), // forwardable, pre-authent
        key: EncryptionKey {
            r#type: session_key.etype().as_i32(),
            value: OctetString::from(session_key.expose_bytes().to_vec()),
        },
        crealm,
        cname: pname(req.client),
        transited: TransitedEncoding {
            r#type: 1,
            contents: OctetString::from_static(b""),
        },
        auth_time: time::krb_time(req.now),
        start_time: Some(time::krb_time(req.now)),
        end_time: time::krb_time(req.now + req.lifetime),
        renew_till: None,
        caddr: None,
        authorization_data,
    };
    let enc_der = rasn::der::encode(&enc).unwrap_or_default();
    let ticket = Ticket {
        tkt_vno: 5.into(),
        realm,
        sname: pname(req.service),
        enc_part: EncryptedData {
            etype: req.service_key.etype().as_i32(),
            kvno: Some(req.kvno),
            cipher: OctetString::from(UsageKeys::new(req.service_key, USAGE_TICKET).encrypt(&enc_der)),
        },
    };
    let token = ap_req_token(req, ticket.clone(), &session_key);
    Minted {
        token,
        session_key,
        ticket,
    }
}

/// An AP-REQ around `ticket` with a new authenticator, framed as `req` asks.
fn ap_req_token(req: &MintRequest<'_>, ticket: Ticket, session_key: &Key) -> Vec<u8> {
    let crealm = kstr(&req.client.realm);
    let bindings = req
        .channel_binding
        .map(gss_checksum::bindings_hash)
        .unwrap_or([0u8; 16]);
    let auth = Authenticator {
        authenticator_vno: 5.into(),
        crealm,
        cname: pname(req.client),
        cksum: Some(Checksum {
            r#type: gss_checksum::CKSUM_GSS,
            checksum: OctetString::from(gss_checksum::build(bindings, req.gss_flags)),
        }),
        cusec: req.cusec.into(),
        ctime: time::krb_time(req.now),
        subkey: None,
        seq_number: Some(rand::random::<u32>() & 0x7fff_ffff),
        authorization_data: None,
    };
    let auth_der = rasn::der::encode(&auth).unwrap_or_default();
    let mutual = req.gss_flags & gss_checksum::FLAG_MUTUAL != 0;
    let ap_req = ApReq {
        pvno: 5.into(),
        msg_type: 14.into(),
        ap_options: ApOptions(flags32(if mutual { &[2] } else { &[] })),
        ticket,
        authenticator: EncryptedData {
            etype: session_key.etype().as_i32(),
            kvno: None,
            cipher: OctetString::from(UsageKeys::new(session_key, USAGE_AUTHENTICATOR).encrypt(&auth_der)),
        },
    };
    let ap_der = rasn::der::encode(&ap_req).unwrap_or_default();
    match req.framing {
        Framing::Bare => ap_der,
        Framing::Gss => gss::wrap_krb5(gss::OID_KRB5, gss::TOK_AP_REQ, &ap_der),
        Framing::Spnego { legacy_oid } => {
            let mech = if legacy_oid {
                gss::OID_MS_KRB5
            } else {
                gss::OID_KRB5
            };
            let inner = gss::wrap_krb5(mech, gss::TOK_AP_REQ, &ap_der);
            let mechs: &[&[u32]] = if legacy_oid {
                &[arcs::MS_KRB5, arcs::KRB5, arcs::NTLM]
            } else {
                &[arcs::KRB5, arcs::NTLM]
            };
            spnego::init_token(mechs, &inner)
        }
    }
}

/// Client side of mutual authentication: checks an acceptor's response (SPNEGO NegTokenResp,
/// GSS-framed or bare AP-REP) against the session key; returns the AP-REP's ctime (Unix seconds).
pub fn verify_response(response: &[u8], session_key: &Key) -> Result<i64, AuthError> {
    let rep_bytes: Vec<u8> = match gss::shape(response) {
        TokenShape::SpnegoResp => {
            let tok: NegotiationToken = rasn::ber::decode(response)
                .map_err(|_| AuthError::malformed("spnego", "response does not decode"))?;
            let NegotiationToken::Resp(resp) = tok else {
                return Err(AuthError::malformed("spnego", "not a NegTokenResp"));
            };
            let rt = resp
                .response_token
                .ok_or_else(|| AuthError::malformed("spnego", "no responseToken"))?;
            let (_, inner) = gss::unwrap_initial(&rt)?;
            inner
                .strip_prefix(&gss::TOK_AP_REP[..])
                .ok_or_else(|| AuthError::malformed("gss", "not an AP-REP"))?
                .to_vec()
        }
        TokenShape::Gss => {
            let (_, inner) = gss::unwrap_initial(response)?;
            inner
                .strip_prefix(&gss::TOK_AP_REP[..])
                .ok_or_else(|| AuthError::malformed("gss", "not an AP-REP"))?
                .to_vec()
        }
        _ => response.to_vec(),
    };
    let rep: ApRep =
        rasn::ber::decode(&rep_bytes).map_err(|_| AuthError::malformed("ap-rep", "does not decode"))?;
    let plain = UsageKeys::new(session_key, USAGE_AP_REP)
        .decrypt(&rep.enc_part.cipher)
        .map_err(|_| AuthError::Modified { part: "ap-rep" })?;
    let part: EncApRepPart =
        rasn::ber::decode(&plain).map_err(|_| AuthError::malformed("ap-rep", "enc-part does not decode"))?;
    Ok(time::krb_secs(&part.ctime))
}
