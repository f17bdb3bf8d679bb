//! HTTP Negotiate (RFC 4559) on one connection: reading the Authorization header, the
//! connection's authentication state, and the challenge.
//!
//! Auth is connection-bound, as IIS and Outlook expect: once a connection is authenticated,
//! later requests on it need no header; a new header is validated again and replaces the identity
//! (a different principal gets its own backend connection); a refused one resets the connection
//! to unauthenticated.

use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};

use super::error::{EdgeError, ErrorKind};
use crate::krb::acceptor::{Accepted, GroupRules, PacIdentity};
use crate::krb::principal::Principal;

/// Standard base64, padding optional (some clients drop it). Decoding goes through
/// [`decode_token`] and encoding through base64-simd ([`negotiate_header`]); this engine is
/// their reference in the tests and words what a refused token got wrong.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The NTLMSSP signature that starts every NTLM message.
const NTLMSSP: &[u8] = b"NTLMSSP\0";

/// What the client presented.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential {
    /// No Authorization header.
    None,
    /// `Negotiate <token>` with a token that is not raw NTLMSSP (decoded).
    Negotiate(Vec<u8>),
    /// `NTLM …`, or `Negotiate` carrying a raw NTLMSSP message.
    Ntlm,
    /// `Basic …` (RFC 7617): a password, which kedge never checks itself.
    Basic,
    /// `Bearer …` (RFC 6750): an OAuth token, which kedge never checks itself.
    Bearer,
    /// Another scheme, by name.
    Other(String),
}

/// Reads the request's Authorization header. Tokens are measured before they are decoded.
pub fn parse_authorization(headers: &HeaderMap, max_token_bytes: usize) -> Result<Credential, EdgeError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(Credential::None);
    };
    if values.next().is_some() {
        return Err(EdgeError::client(
            ErrorKind::BadAuthorization("multiple_authorization"),
            "several Authorization headers",
        ));
    }
    let value = value.as_bytes();
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => (value, &[][..]),
    };
    let rest = rest.trim_ascii();
    if scheme.eq_ignore_ascii_case(b"NTLM") {
        return Ok(Credential::Ntlm);
    }
    if scheme.eq_ignore_ascii_case(b"Basic") {
        return Ok(Credential::Basic);
    }
    if scheme.eq_ignore_ascii_case(b"Bearer") {
        return Ok(Credential::Bearer);
    }
    if !scheme.eq_ignore_ascii_case(b"Negotiate") {
        return Ok(Credential::Other(String::from_utf8_lossy(scheme).into_owned()));
    }
    if rest.is_empty() {
        return Err(EdgeError::client(
            ErrorKind::AuthRefused("empty_token"),
            "Negotiate without a token",
        ));
    }
    if rest.len() / 4 * 3 > max_token_bytes.saturating_add(3) {
        return Err(EdgeError::client(
            ErrorKind::TooLarge,
            format!(
                "Negotiate token of {} base64 bytes over the {max_token_bytes}-byte limit",
                rest.len()
            ),
        ));
    }
    let token = decode_token(rest).map_err(|e| {
        EdgeError::client(
            ErrorKind::BadAuthorization("bad_base64"),
            format!("Negotiate token: {e}"),
        )
    })?;
    if token.len() > max_token_bytes {
        return Err(EdgeError::client(
            ErrorKind::TooLarge,
            format!(
                "Negotiate token of {} bytes over the {max_token_bytes}-byte limit",
                token.len()
            ),
        ));
    }
    if token.starts_with(NTLMSSP) {
        return Ok(Credential::Ntlm);
    }
    Ok(Credential::Negotiate(token))
}

/// Decodes a token's base64 exactly as [`B64`] does (standard alphabet, canonical final bits,
/// padding optional but correct where present), SIMD-fast: every authenticated request pays for
/// it. A refusal is worded by [`B64`] (the error path only).
fn decode_token(text: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    // Padding as the reference takes it: optional, never more than the final group needs.
    let pad = text.iter().rev().take_while(|&&b| b == b'=').count();
    let symbols = &text[..text.len() - pad];
    let pad_fits = match symbols.len() % 4 {
        0 => pad == 0,
        2 => pad <= 2,
        3 => pad <= 1,
        _ => false,
    };
    let fast = if pad_fits {
        base64_simd::STANDARD_NO_PAD.decode_to_vec(symbols).ok()
    } else {
        None
    };
    match fast {
        Some(v) => Ok(v),
        None => match B64.decode(text) {
            Err(e) => Err(e),
            // Never expected: the differential test holds the two to the same verdicts.
            Ok(_) => Err(base64::DecodeError::InvalidPadding),
        },
    }
}

/// Encodes a response token for `WWW-Authenticate: Negotiate <b64>`.
pub fn negotiate_header(token: &[u8]) -> HeaderValue {
    const SCHEME: &[u8] = b"Negotiate ";
    // SIMD, like the decoding of the request's token: an AP-REP is written for every fresh
    // token an assert route accepts.
    let b64 = base64_simd::STANDARD;
    let encoded_len = b64.encoded_length(token.len());
    let mut text = vec![0u8; SCHEME.len() + encoded_len];
    let (scheme, encoded) = text.split_at_mut(SCHEME.len());
    scheme.copy_from_slice(SCHEME);
    let written = b64.encode(token, base64_simd::Out::from_slice(encoded)).len();
    debug_assert_eq!(written, encoded_len);
    HeaderValue::from_maybe_shared(bytes::Bytes::from(text)).expect("base64 is a valid header value")
}

/// Which schemes besides Negotiate a route's 401 offers: the ones it passes through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offer {
    /// `NTLM`.
    pub ntlm: bool,
    /// `Basic`.
    pub basic: bool,
    /// `Bearer` (with an empty `authorization_uri`, as Exchange answers before hybrid OAuth).
    pub bearer: bool,
}

/// The `WWW-Authenticate` values of a 401: Negotiate, then what the route passes through.
pub fn challenge(offer: Offer) -> Vec<HeaderValue> {
    let mut v = vec![HeaderValue::from_static("Negotiate")];
    if offer.ntlm {
        v.push(HeaderValue::from_static("NTLM"));
    }
    if offer.basic {
        v.push(HeaderValue::from_static(
            "Basic realm=\"Exchange\", charset=\"UTF-8\"",
        ));
    }
    if offer.bearer {
        v.push(HeaderValue::from_static("Bearer authorization_uri=\"\""));
    }
    v
}

/// An authenticated Kerberos identity, kept for the life of the connection. PAC SIDs stay in
/// parsed form and are formatted only where a route states them (assert-mode headers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// `user@REALM`.
    pub principal: String,
    /// The SPN service the ticket was for (`http`).
    pub service: String,
    /// The PAC identity, when the ticket carried a PAC.
    pub pac: Option<Arc<PacIdentity>>,
    /// The principal and the groups as header values, made once (a clone is a reference
    /// count; the groups of a 30-group PAC are 1.3 KB).
    stated: OnceLock<(Option<HeaderValue>, Option<HeaderValue>)>,
}

impl Identity {
    /// An identity of `principal` for `service`, with the PAC's identity if the ticket had one.
    pub fn new(principal: String, service: String, pac: Option<Arc<PacIdentity>>) -> Self {
        Self {
            principal,
            service,
            pac,
            stated: OnceLock::new(),
        }
    }

    /// The identity of a validated token; `service` is what the route asked for.
    pub fn from_accepted(acc: &Accepted, service: &str) -> Self {
        Self::new(acc.client.canonical(), service.to_string(), acc.pac.clone())
    }

    /// Whether an acceptance of `client`'s token with `pac`, for `service`, is this identity:
    /// the same canonical principal, the same service and the very same PAC (every acceptance
    /// of one kept ticket shares it), so [`Identity::from_accepted`] would make an equal one. A
    /// connection presenting a fresh token of the ticket it authenticated with keeps its
    /// identity, and the header values made for it, instead of building them again.
    pub fn is_of(&self, client: &Principal, pac: Option<&Arc<PacIdentity>>, service: &str) -> bool {
        let same_pac = match (&self.pac, pac) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        same_pac && self.service == service && client.is_canonical(&self.principal)
    }

    /// The group SIDs comma-separated (empty without a PAC), as assert routes state them.
    /// The PAC keeps them formatted: every identity made from one kept ticket shares them.
    pub fn groups_joined(&self) -> &[u8] {
        self.pac.as_ref().map_or(&[], |p| p.group_sids_joined_bytes())
    }

    /// The principal as a header value (`None` if it cannot be one).
    pub fn principal_value(&self) -> Option<&HeaderValue> {
        self.stated_values().0.as_ref()
    }

    /// The group SIDs as a header value (`None` without a PAC).
    pub fn groups_value(&self) -> Option<&HeaderValue> {
        self.stated_values().1.as_ref()
    }

    fn stated_values(&self) -> &(Option<HeaderValue>, Option<HeaderValue>) {
        self.stated.get_or_init(|| {
            let principal = HeaderValue::from_str(&self.principal).ok();
            let groups = self
                .pac
                .as_ref()
                .and_then(|p| HeaderValue::from_maybe_shared(p.group_sids_joined_bytes().clone()).ok());
            (principal, groups)
        })
    }

    /// Whether the ticket carried a PAC.
    pub fn has_pac(&self) -> bool {
        self.pac.is_some()
    }

    /// The user SID from the PAC.
    pub fn user_sid(&self) -> Option<String> {
        self.pac.as_ref().and_then(|p| p.user_sid())
    }

    /// Whether `rules` let this identity in: deny wins; an empty allow list allows all; the
    /// user SID counts as held, like the groups; without a PAC that states groups any rule
    /// refuses (fail closed),
    /// as in [`crate::krb::authz::apply_group_rules`].
    pub fn permitted_by(&self, rules: &GroupRules) -> bool {
        if rules.allow.is_empty() && rules.deny.is_empty() {
            return true;
        }
        let Some(pac) = self.pac.as_ref().filter(|p| p.has_groups()) else {
            return false;
        };
        if rules.deny.iter().any(|sid| pac.holds(sid)) {
            return false;
        }
        rules.allow.is_empty() || rules.allow.iter().any(|sid| pac.holds(sid))
    }
}

/// The authentication state of one client connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ConnAuth {
    /// Not authenticated.
    #[default]
    Anonymous,
    /// Authenticated with Kerberos.
    Kerberos(Arc<Identity>),
    /// NTLM passed through: the backend judges, kedge only keeps the connection pinned.
    Ntlm,
}

/// Who a backend connection belongs to; a pinned backend connection is never reused for another.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    /// No authentication (anonymous routes).
    Anonymous,
    /// A Kerberos principal.
    Principal(String),
    /// An NTLM exchange kedge did not check.
    Ntlm,
    /// Basic or Bearer credentials kedge did not check (per request).
    Unverified,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(v).expect("value"));
        h
    }

    #[test]
    fn no_header_is_no_credential() {
        assert!(matches!(
            parse_authorization(&HeaderMap::new(), 100),
            Ok(Credential::None)
        ));
    }

    #[test]
    fn negotiate_token_is_decoded_case_insensitively() {
        let c = parse_authorization(&headers("negotiate YWJj"), 100).expect("ok");
        assert_eq!(c, Credential::Negotiate(b"abc".to_vec()));
    }

    #[test]
    fn unpadded_base64_is_accepted() {
        let c = parse_authorization(&headers("Negotiate YWJjZA"), 100).expect("ok");
        assert_eq!(c, Credential::Negotiate(b"abcd".to_vec()));
    }

    /// The fast decoder and the reference engine give the same verdict and bytes on every text
    /// (random texts over the alphabet, padding and a few strays, every length to 64).
    #[test]
    fn the_fast_decoder_agrees_with_the_reference_engine() {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n.";
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut accepted = 0;
        for round in 0..200_000 {
            let len = (next() % 65) as usize;
            // Mostly the 64 symbols (so that many texts decode), now and then padding or a stray.
            let text: Vec<u8> = (0..len)
                .map(|i| {
                    let r = next();
                    let tail = i + 2 >= len && round % 3 == 0;
                    if tail && r % 2 == 0 {
                        b'='
                    } else if r % 97 == 0 {
                        alphabet[64 + (r as usize / 97) % (alphabet.len() - 64)]
                    } else {
                        alphabet[(r >> 8) as usize % 64]
                    }
                })
                .collect();
            let fast = decode_token(&text);
            let reference = B64.decode(&text);
            assert_eq!(
                fast.is_ok(),
                reference.is_ok(),
                "{:?}",
                String::from_utf8_lossy(&text)
            );
            if let (Ok(f), Ok(r)) = (&fast, &reference) {
                assert_eq!(f, r);
                accepted += 1;
            }
        }
        assert!(
            accepted > 30_000,
            "only {accepted} texts decoded: the test says little"
        );
    }

    #[test]
    fn non_canonical_and_misplaced_padding_are_refused() {
        for bad in [
            "QR==", "QR", "QUJ=x", "QUI==", "Q===", "QQ==QQ==", "=QUJD", "QUJD=", "QU JD",
        ] {
            let e = parse_authorization(&headers(&format!("Negotiate {bad}")), 100).unwrap_err();
            assert_eq!(e.kind, ErrorKind::BadAuthorization("bad_base64"), "{bad}");
        }
        let c = parse_authorization(&headers("Negotiate QUI="), 100).expect("ok");
        assert_eq!(c, Credential::Negotiate(b"AB".to_vec()));
        // Fewer pads than the final group needs is still the padding-optional form.
        let c = parse_authorization(&headers("Negotiate QQ="), 100).expect("ok");
        assert_eq!(c, Credential::Negotiate(b"A".to_vec()));
    }

    #[test]
    fn garbage_base64_is_a_bad_request() {
        let e = parse_authorization(&headers("Negotiate !!!not*base64"), 100).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadAuthorization("bad_base64"));
    }

    #[test]
    fn an_oversized_token_is_refused_before_decoding() {
        let big = "A".repeat(4000);
        let e = parse_authorization(&headers(&format!("Negotiate {big}")), 1000).unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooLarge);
    }

    #[test]
    fn ntlm_in_either_scheme_is_recognised() {
        assert_eq!(
            parse_authorization(&headers("NTLM TlRMTVNTUAABAAAA"), 100).expect("ok"),
            Credential::Ntlm
        );
        assert_eq!(
            parse_authorization(&headers("Negotiate TlRMTVNTUAABAAAA"), 100).expect("ok"),
            Credential::Ntlm
        );
    }

    #[test]
    fn other_schemes_are_named() {
        assert_eq!(
            parse_authorization(&headers("Basic YTpi"), 100).expect("ok"),
            Credential::Basic
        );
        assert_eq!(
            parse_authorization(&headers("Bearer eyJ0"), 100).expect("ok"),
            Credential::Bearer
        );
        assert_eq!(
            parse_authorization(&headers("Digest x"), 100).expect("ok"),
            Credential::Other("Digest".into())
        );
    }

    #[test]
    fn two_authorization_headers_are_refused() {
        let mut h = headers("Negotiate YWJj");
        h.append(AUTHORIZATION, HeaderValue::from_static("Negotiate YWJj"));
        assert!(parse_authorization(&h, 100).is_err());
    }

    #[test]
    fn a_response_token_is_standard_padded_base64_after_the_scheme() {
        for len in 0..=67 {
            let token: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            let want = format!(
                "Negotiate {}",
                base64::engine::general_purpose::STANDARD.encode(&token)
            );
            assert_eq!(
                negotiate_header(&token).as_bytes(),
                want.as_bytes(),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn an_identity_is_kept_only_for_its_principal_service_and_very_pac() {
        let pac = |sid: &str| {
            Arc::new(PacIdentity::from_sids(
                Some("S-1-5-21-1-1001".into()),
                vec![sid.into()],
                None,
            ))
        };
        let kept = pac("S-1-5-21-1-513");
        let id = Identity::new("alice@R".into(), "http".into(), Some(kept.clone()));
        let alice = Principal::parse("Alice@r", "X").expect("principal");
        assert!(id.is_of(&alice, Some(&kept), "http"), "the same ticket's PAC");
        let bob = Principal::parse("bob@R", "X").expect("principal");
        assert!(!id.is_of(&bob, Some(&kept), "http"), "another principal");
        let alice_r2 = Principal::parse("alice@R2", "X").expect("principal");
        assert!(!id.is_of(&alice_r2, Some(&kept), "http"), "another realm");
        assert!(!id.is_of(&alice, Some(&kept), "exchangeMDB"), "another service");
        // Another ticket's PAC is another identity, even with the same groups: its header
        // values are made from it.
        assert!(!id.is_of(&alice, Some(&pac("S-1-5-21-1-513")), "http"));
        assert!(!id.is_of(&alice, None, "http"), "no PAC now");
        let no_pac = Identity::new("alice@R".into(), "http".into(), None);
        assert!(no_pac.is_of(&alice, None, "http"));
        assert!(!no_pac.is_of(&alice, Some(&kept), "http"), "a PAC now");
    }

    #[test]
    fn deny_wins_and_empty_allow_allows() {
        let id = Identity::new(
            "alice@R".into(),
            "http".into(),
            Some(Arc::new(PacIdentity::from_sids(
                Some("S-1-5-21-1-1001".into()),
                vec!["S-1-5-21-1-513".into()],
                None,
            ))),
        );
        assert_eq!(id.groups_joined(), b"S-1-5-21-1-513");
        assert!(id.permitted_by(&GroupRules::default()));
        let allow = GroupRules {
            allow: vec!["S-1-5-21-1-513".into()],
            deny: vec![],
        };
        assert!(id.permitted_by(&allow));
        let deny = GroupRules {
            allow: vec!["S-1-5-21-1-513".into()],
            deny: vec!["S-1-5-21-1-1001".into()],
        };
        assert!(!id.permitted_by(&deny));
        let other = GroupRules {
            allow: vec!["S-1-5-21-1-512".into()],
            deny: vec![],
        };
        assert!(!id.permitted_by(&other));
        let no_pac = Identity::new(id.principal.clone(), id.service.clone(), None);
        assert_eq!(no_pac.groups_joined(), b"");
        assert!(no_pac.permitted_by(&GroupRules::default()));
        let deny_only = GroupRules {
            allow: vec![],
            deny: vec!["S-1-5-21-1-512".into()],
        };
        assert!(
            !no_pac.permitted_by(&deny_only),
            "deny rules fail closed without a PAC"
        );
    }
}
