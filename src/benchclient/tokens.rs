//! Fresh tokens the way a real client makes them: each user holds one service ticket (minted
//! once, at start, with the ASA key and optionally an AD-sized Windows PAC), and every token is a
//! new AP-REQ around that ticket with a new authenticator — current ctime, a cusec from a
//! process-wide counter, a random sequence number and a fresh confounder — so every token is
//! distinct and a replay cache accepts each one once (RFC 4120 §3.2.3).
//!
//! The acceptor's work per token is the same as for a ticket minted per token (it decrypts the
//! ticket, the authenticator and checks the PAC every time), but minting is several times
//! cheaper: no ticket encryption, and the session key's usage-11 keys are derived once per user.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::SystemTime;

use rasn::types::OctetString;
use rasn_kerberos::{ApReq, Authenticator, Checksum, EncryptedData, KerberosString};

use crate::krb::acceptor::{Framing, USAGE_AUTHENTICATOR};
use crate::krb::crypto::{EncType, Key, UsageKeys};
use crate::krb::gss_checksum::{self, CKSUM_GSS, FLAG_MUTUAL};
use crate::krb::mint::{mint, MintRequest, Minted};
use crate::krb::pac::{PacBuilder, Sid};
use crate::krb::principal::Principal;
use crate::krb::spnego::{self, arcs};
use crate::krb::{gss, time};

use super::credentials::ServiceCredential;
use super::{wire, BenchError};

/// GSS flags of a Windows HTTP client: mutual, replay, sequence, conf, integ (RFC 4121 §4.1.1.1).
pub const FLAGS_HTTP: u32 = 0x3e;
/// GSS flags of Microsoft RPC (DCE style added), as every captured bind carries.
pub const FLAGS_DCE: u32 = 0x103e;
/// The domain SID of minted PACs.
pub const BENCH_DOMAIN_SID: &str = "S-1-5-21-3623811015-3361044348-30300820";
/// Ticket lifetime of minted tickets: an AD default (10 h).
pub const TICKET_LIFETIME: i64 = 10 * 3600;

/// What the minter makes.
#[derive(Clone, Debug)]
pub struct TokenSpec {
    /// Number of distinct users (`user00000@REALM` …), each with its own ticket.
    pub user_count: u32,
    /// Token framing.
    pub framing: Framing,
    /// GSS checksum flags.
    pub gss_flags: u32,
    /// A Windows-like PAC with this many groups in every ticket (`None`: no PAC).
    pub pac_groups: Option<u32>,
}

/// One user's ticket, kept for the whole run as a client keeps its service ticket.
struct UserTicket {
    client: Principal,
    crealm: KerberosString,
    cname: rasn_kerberos::PrincipalName,
    /// The ticket's DER, spliced into every AP-REQ.
    ticket_der: Vec<u8>,
    session_key: Key,
    /// Usage-11 keys of the session key, derived once.
    auth_keys: UsageKeys,
}

/// A minted token.
pub struct Token {
    /// The initial context token (framed as asked).
    pub bytes: Vec<u8>,
    /// The ticket session key, to check the AP-REP of mutual authentication.
    pub session_key: Key,
    /// Index of the user it was minted for.
    pub user: u32,
}

/// Mints fresh tokens for `user_count` users; shareable between threads.
pub struct TokenMinter {
    spec: TokenSpec,
    users: Vec<UserTicket>,
    next_user: AtomicU32,
    cusec: AtomicU64,
    minted: AtomicU64,
}

impl TokenMinter {
    /// Mints one ticket per user (and its PAC, signed with the service key so the acceptor's PAC
    /// check passes) at `now` (Unix seconds).
    pub fn new(cred: &ServiceCredential, spec: TokenSpec, now: i64) -> Result<Self, BenchError> {
        if spec.user_count == 0 {
            return Err(BenchError::Invalid("user count must be at least 1".into()));
        }
        let realm = cred.spn.realm.clone();
        let domain: Sid = BENCH_DOMAIN_SID
            .parse()
            .map_err(|e| BenchError::Pac(format!("domain SID: {e:?}")))?;
        let kdc_key = Key::random(EncType::Aes256CtsHmacSha196);
        let mut users = Vec::with_capacity(spec.user_count as usize);
        for i in 0..spec.user_count {
            let name = format!("user{i:05}");
            let client =
                Principal::parse(&format!("{name}@{realm}"), &realm).map_err(|e| BenchError::Principal {
                    name: name.clone(),
                    msg: e.to_string(),
                })?;
            let pac = match spec.pac_groups {
                Some(groups) => Some(
                    PacBuilder::windows_like(&name, &realm, domain.clone(), 1100 + i, groups.max(1))
                        .logon_time(now)
                        .build(&cred.key, &kdc_key)
                        .map_err(|e| BenchError::Pac(e.to_string()))?,
                ),
                None => None,
            };
            users.push(user_ticket(cred, client, now, pac)?);
        }
        Ok(Self {
            spec,
            users,
            next_user: AtomicU32::new(0),
            cusec: AtomicU64::new(0),
            minted: AtomicU64::new(0),
        })
    }

    /// The spec this minter was built with.
    pub fn spec(&self) -> &TokenSpec {
        &self.spec
    }

    /// The principal of user `i`.
    pub fn user(&self, i: u32) -> Option<&Principal> {
        self.users.get(i as usize).map(|u| &u.client)
    }

    /// Tokens minted so far.
    pub fn minted(&self) -> u64 {
        self.minted.load(Ordering::Relaxed)
    }

    /// A fresh token for the next user (round robin), authenticator time `now`.
    pub fn mint_at(&self, now: SystemTime) -> Token {
        let n = self.next_user.fetch_add(1, Ordering::Relaxed);
        self.mint_user_at(n, now)
    }

    /// Number of users.
    pub fn user_count(&self) -> u32 {
        self.spec.user_count
    }

    /// A fresh token for user `user` (modulo the user count), authenticator time `now`.
    pub fn mint_user_at(&self, user: u32, now: SystemTime) -> Token {
        let user = user % self.spec.user_count;
        // Distinct cusec for every token of a second as long as fewer than 10^6 are minted per
        // second; the random confounder makes the ciphertext (and the replay tag) distinct anyway.
        let cusec = (self.cusec.fetch_add(1, Ordering::Relaxed) % 1_000_000) as u32;
        self.minted.fetch_add(1, Ordering::Relaxed);
        let u = &self.users[user as usize];
        let bytes = self.ap_req(u, time::unix_secs(now), cusec);
        Token {
            bytes,
            session_key: u.session_key.clone(),
            user,
        }
    }

    /// A fresh token now.
    pub fn mint(&self) -> Token {
        self.mint_at(SystemTime::now())
    }

    fn ap_req(&self, u: &UserTicket, now: i64, cusec: u32) -> Vec<u8> {
        let auth = Authenticator {
            authenticator_vno: 5.into(),
            crealm: u.crealm.clone(),
            cname: u.cname.clone(),
            cksum: Some(Checksum {
                r#type: CKSUM_GSS,
                checksum: OctetString::from(gss_checksum::build([0u8; 16], self.spec.gss_flags)),
            }),
            cusec: cusec.into(),
            ctime: time::krb_time(now),
            subkey: None,
            seq_number: Some(rand::random::<u32>() & 0x7fff_ffff),
            authorization_data: None,
        };
        let auth_der = rasn::der::encode(&auth).unwrap_or_default();
        let enc = EncryptedData {
            etype: u.session_key.etype().as_i32(),
            kvno: None,
            cipher: OctetString::from(u.auth_keys.encrypt(&auth_der)),
        };
        let enc_der = rasn::der::encode(&enc).unwrap_or_default();
        let mutual = self.spec.gss_flags & FLAG_MUTUAL != 0;
        // AP options: mutual-required (bit 2) when the client asks for mutual authentication.
        let ap_options = if mutual { [0x20, 0, 0, 0] } else { [0; 4] };
        wire::ap_req_token(self.spec.framing, ap_options, &u.ticket_der, &enc_der)
    }
}

/// Frames a DER AP-REQ as asked (RFC 4121 §4.1 GSS token, RFC 4178 SPNEGO with Microsoft's OID
/// first as Windows sends it, or bare as DCE-style RPC sends it).
pub fn frame(framing: Framing, ap_req: &[u8]) -> Vec<u8> {
    match framing {
        Framing::Bare => ap_req.to_vec(),
        Framing::Gss => gss::wrap_krb5(gss::OID_KRB5, gss::TOK_AP_REQ, ap_req),
        Framing::Spnego { legacy_oid } => {
            let (oid, mechs): (&[u8], &[&[u32]]) = if legacy_oid {
                (gss::OID_MS_KRB5, &[arcs::MS_KRB5, arcs::KRB5, arcs::NTLM])
            } else {
                (gss::OID_KRB5, &[arcs::KRB5, arcs::NTLM])
            };
            spnego::init_token(mechs, &gss::wrap_krb5(oid, gss::TOK_AP_REQ, ap_req))
        }
    }
}

/// Mints the user's ticket with [`crate::krb::mint::mint`] and keeps its parts.
fn user_ticket(
    cred: &ServiceCredential,
    client: Principal,
    now: i64,
    pac: Option<Vec<u8>>,
) -> Result<UserTicket, BenchError> {
    let m = mint(&MintRequest {
        client: &client,
        service: &cred.spn,
        service_key: &cred.key,
        kvno: cred.kvno,
        now,
        cusec: 0,
        lifetime: TICKET_LIFETIME,
        framing: Framing::Bare,
        gss_flags: FLAGS_HTTP,
        channel_binding: None,
        pac,
    });
    let ap: ApReq = rasn::der::decode(&m.token)
        .map_err(|e| BenchError::Invalid(format!("minted AP-REQ does not decode: {e}")))?;
    let auth_keys = UsageKeys::new(&m.session_key, USAGE_AUTHENTICATOR);
    let crealm = KerberosString::from_bytes(client.realm.as_bytes()).unwrap_or_default();
    let cname = rasn_kerberos::PrincipalName {
        r#type: client.name_type,
        string: client
            .components
            .iter()
            .map(|c| KerberosString::from_bytes(c.as_bytes()).unwrap_or_default())
            .collect(),
    };
    Ok(UserTicket {
        client,
        crealm,
        cname,
        ticket_der: rasn::der::encode(&ap.ticket)
            .map_err(|e| BenchError::Invalid(format!("ticket does not re-encode: {e}")))?,
        session_key: m.session_key,
        auth_keys,
    })
}

/// Framing names for the command line: `spnego` (Microsoft OID first, as Windows sends),
/// `spnego-mit` (RFC OID first), `gss`, `bare`.
pub fn parse_framing(s: &str) -> Result<Framing, BenchError> {
    match s.to_ascii_lowercase().as_str() {
        "spnego" => Ok(Framing::Spnego { legacy_oid: true }),
        "spnego-mit" => Ok(Framing::Spnego { legacy_oid: false }),
        "gss" | "krb5" => Ok(Framing::Gss),
        "bare" => Ok(Framing::Bare),
        _ => Err(BenchError::Invalid(format!(
            "framing {s:?}: want spnego, spnego-mit, gss or bare"
        ))),
    }
}

/// Tokens for `kedge-bench mint`: `count` tokens for one named user, spread round robin over
/// `tickets` service tickets (as `kvno`-stamped by a KDC; at least one, at most `count`), each
/// token a new authenticator around its ticket, the PAC built for that user when `pac_groups`
/// is set.
pub fn mint_for_user(
    cred: &ServiceCredential,
    user: &Principal,
    framing: Framing,
    gss_flags: u32,
    pac_groups: Option<u32>,
    count: u32,
    tickets: u32,
) -> Result<Vec<Vec<u8>>, BenchError> {
    let now = time::unix_secs(SystemTime::now());
    let kdc_key = Key::random(EncType::Aes256CtsHmacSha196);
    let domain: Sid = BENCH_DOMAIN_SID
        .parse()
        .map_err(|e| BenchError::Pac(format!("domain SID: {e:?}")))?;
    let pac = match pac_groups {
        Some(g) => Some(
            PacBuilder::windows_like(&user.components.join("/"), &user.realm, domain, 1100, g.max(1))
                .logon_time(now)
                .build(&cred.key, &kdc_key)
                .map_err(|e| BenchError::Pac(e.to_string()))?,
        ),
        None => None,
    };
    let request = |cusec: u32| MintRequest {
        client: user,
        service: &cred.spn,
        service_key: &cred.key,
        kvno: cred.kvno,
        now,
        cusec: cusec % 1_000_000,
        lifetime: TICKET_LIFETIME,
        framing,
        gss_flags,
        channel_binding: None,
        pac: pac.clone(),
    };
    let minted: Vec<Minted> = (0..tickets.clamp(1, count.max(1)))
        .map(|i| mint(&request(i)))
        .collect();
    Ok((0..count)
        .map(|i| {
            let t = &minted[i as usize % minted.len()];
            if i < minted.len() as u32 {
                t.token.clone()
            } else {
                t.again(&request(i))
            }
        })
        .collect())
}
