//! Authorization data in tickets (RFC 4120 §5.2.6): finding the Windows PAC inside
//! AD-IF-RELEVANT, checking it (MS-PAC §2.8 server signature, §2.7 client info) and applying
//! group rules.

use std::borrow::Cow;

use rasn_kerberos::AuthorizationData;

use super::acceptor::{GroupRules, PacIdentity};
use super::der::TypedSeq;
use super::error::AuthError;
use super::keyset::ServiceKey;

/// AD-IF-RELEVANT (RFC 4120 §5.2.6.1).
pub const AD_IF_RELEVANT: i32 = 1;
/// AD-WIN2K-PAC (RFC 4120 §7.5.4, MS-PAC).
pub const AD_WIN2K_PAC: i32 = 128;

/// Finds the PAC bytes in a ticket's authorization data: inside AD-IF-RELEVANT, as MS-KILE puts
/// it. More than one PAC is refused (MIT does the same). AD-IF-RELEVANT holds AuthorizationData
/// again, DER-encoded in its `ad-data`: walked in place (the PAC is borrowed from the ticket),
/// or decoded by rasn where it is not DER; what neither reads is a malformed ticket.
pub fn find_pac<'a>(ad: Option<&TypedSeq<'a>>) -> Result<Option<Cow<'a, [u8]>>, AuthError> {
    let Some(ad) = ad else { return Ok(None) };
    let mut found = None;
    let mut keep = |pac: Cow<'a, [u8]>| match found.replace(pac) {
        Some(_) => Err(AuthError::Pac("ticket carries more than one PAC".into())),
        None => Ok(()),
    };
    for el in ad.iter().filter(|el| el.r#type == AD_IF_RELEVANT) {
        match TypedSeq::read_whole(el.value) {
            Ok(inner) => {
                for pac in inner.iter().filter(|i| i.r#type == AD_WIN2K_PAC) {
                    keep(Cow::Borrowed(pac.value))?;
                }
            }
            Err(_) => {
                let inner: AuthorizationData = rasn::ber::decode(el.value).map_err(|_| {
                    AuthError::malformed("authorization-data", "AD-IF-RELEVANT does not decode")
                })?;
                for pac in inner.into_iter().filter(|i| i.r#type == AD_WIN2K_PAC) {
                    keep(Cow::Owned(pac.data.to_vec()))?;
                }
            }
        }
    }
    Ok(found)
}

/// Parses and checks a PAC: the server signature with the key that decrypted the ticket (when
/// `verify`), the client-info name and time against the ticket's, and extracts the identity.
pub fn check_pac(
    pac_bytes: &[u8],
    service_key: &ServiceKey,
    client_name: &str,
    client_realm: &str,
    authtime: i64,
    verify: bool,
) -> Result<PacIdentity, AuthError> {
    let pac = super::pac::Pac::parse_deferred(pac_bytes).map_err(|e| AuthError::Pac(e.to_string()))?;
    if verify {
        pac.verify_server_signature_with(service_key.pac_keys())
            .map_err(|e| AuthError::Pac(e.to_string()))?;
    }
    if let Some(ci) = pac.client_info() {
        // MS-PAC §2.7: the client's name (realm-qualified for enterprise and cross-realm names);
        // MIT compares it with the ticket's cname and the time with authtime.
        if !client_name_matches(&ci.name, client_name, client_realm) {
            return Err(AuthError::Pac(format!(
                "client info names {:?}, ticket names {client_name:?}",
                ci.name
            )));
        }
        if ci.logon_time_unix() != authtime {
            return Err(AuthError::Pac(
                "client info time differs from the ticket's authtime".into(),
            ));
        }
    }
    let id = PacIdentity::from_logon_info_raw(pac.logon_info_raw(), verify);
    Ok(id)
}

/// `name` as CLIENT_INFO carries it against the ticket's cname: equal, or equal once a trailing
/// `@realm` of the ticket's realm is removed (enterprise/cross-realm forms), case-insensitively.
fn client_name_matches(pac_name: &str, cname: &str, crealm: &str) -> bool {
    if pac_name.eq_ignore_ascii_case(cname) {
        return true;
    }
    let strip = |n: &str| -> String {
        match n.rsplit_once('@') {
            Some((user, realm)) if realm.eq_ignore_ascii_case(crealm) => user.to_string(),
            _ => n.to_string(),
        }
    };
    strip(pac_name).eq_ignore_ascii_case(&strip(cname))
}

/// Applies allow/deny rules on the user's SIDs (user SID and group SIDs). Deny wins; a non-empty
/// allow list needs one match. Without a PAC, or with one that states no groups (MIT's), any
/// rule refuses (fail closed: such a ticket cannot show that its user holds no denied group).
pub fn apply_group_rules(rules: &GroupRules, id: Option<&PacIdentity>) -> Result<(), AuthError> {
    if rules.allow.is_empty() && rules.deny.is_empty() {
        return Ok(());
    }
    // Rules fail closed: without a PAC nobody can tell whether the user holds a denied group.
    let Some(id) = id else {
        return Err(AuthError::GroupDenied(
            "no PAC to check the group rules against".into(),
        ));
    };
    if let Err(e) = id.logon_info() {
        return Err(AuthError::Pac(format!("LOGON_INFO does not decode: {e}")));
    }
    if !id.has_groups() {
        return Err(AuthError::GroupDenied(
            "the PAC has no LOGON_INFO (no group membership) to check the group rules against".into(),
        ));
    }
    if let Some(d) = rules.deny.iter().find(|d| id.holds(d)) {
        return Err(AuthError::GroupDenied(format!("member of denied {d}")));
    }
    if !rules.allow.is_empty() && !rules.allow.iter().any(|a| id.holds(a)) {
        return Err(AuthError::GroupDenied(
            "member of none of the allowed groups".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rasn::types::OctetString;
    use rasn_kerberos::AuthorizationDataValue;

    fn entry(r#type: i32, data: &[u8]) -> AuthorizationDataValue {
        AuthorizationDataValue {
            r#type,
            data: OctetString::from(data.to_vec()),
        }
    }

    /// AD-IF-RELEVANT around `inner`, DER-encoded.
    fn if_relevant(inner: &[AuthorizationDataValue]) -> AuthorizationDataValue {
        entry(AD_IF_RELEVANT, &rasn::der::encode(&inner.to_vec()).unwrap())
    }

    /// A ticket's authorization-data as DER, and the PAC found in it.
    fn pac_in(ad: &[AuthorizationDataValue]) -> Result<Option<Vec<u8>>, AuthError> {
        let der = rasn::der::encode(&ad.to_vec()).unwrap();
        let seq = TypedSeq::read_whole(&der).expect("DER authorization-data");
        find_pac(Some(&seq)).map(|p| p.map(Cow::into_owned))
    }

    #[test]
    fn the_pac_is_found_inside_ad_if_relevant_and_borrowed_from_the_ticket() {
        let pac = vec![0x50; 300];
        let ad = [
            entry(0x8d, b"\x30\x00"),
            if_relevant(&[entry(0x8e, b"other"), entry(AD_WIN2K_PAC, &pac)]),
        ];
        let der = rasn::der::encode(&ad.to_vec()).unwrap();
        let seq = TypedSeq::read_whole(&der).unwrap();
        let found = find_pac(Some(&seq)).unwrap().expect("a PAC");
        assert!(matches!(found, Cow::Borrowed(_)), "walked in place");
        assert_eq!(&*found, &pac[..]);
        // A PAC outside AD-IF-RELEVANT is not where MS-KILE puts it; no data, no PAC.
        assert_eq!(pac_in(&[entry(AD_WIN2K_PAC, &pac)]), Ok(None));
        assert_eq!(find_pac(None), Ok(None));
    }

    #[test]
    fn more_than_one_pac_is_refused() {
        let two_inside = [if_relevant(&[
            entry(AD_WIN2K_PAC, b"one"),
            entry(AD_WIN2K_PAC, b"two"),
        ])];
        let two_elements = [
            if_relevant(&[entry(AD_WIN2K_PAC, b"one")]),
            if_relevant(&[entry(AD_WIN2K_PAC, b"two")]),
        ];
        for ad in [&two_inside[..], &two_elements[..]] {
            let e = pac_in(ad).unwrap_err();
            assert_eq!(e, AuthError::Pac("ticket carries more than one PAC".into()));
        }
    }

    #[test]
    fn a_malformed_ad_if_relevant_is_a_clear_error() {
        for bad in [
            &b""[..],
            b"\x30",
            b"\x30\x05\x30\x03\xa0\x01",
            b"\x04\x00",
            b"garbage",
        ] {
            let e = pac_in(&[entry(AD_IF_RELEVANT, bad)]).unwrap_err();
            assert_eq!(
                e,
                AuthError::malformed("authorization-data", "AD-IF-RELEVANT does not decode"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_ber_encoded_ad_if_relevant_is_read_by_rasn() {
        let pac = vec![0x50; 40];
        let der = rasn::der::encode(&vec![entry(AD_WIN2K_PAC, &pac)]).unwrap();
        // The SEQUENCE's length in a needless long form: BER, not DER.
        let mut ber = vec![der[0], 0x81, der[1]];
        ber.extend_from_slice(&der[2..]);
        assert!(TypedSeq::read_whole(&ber).is_err());
        let found = pac_in(&[entry(AD_IF_RELEVANT, &ber)]).unwrap();
        assert_eq!(found, Some(pac));
    }

    fn id(groups: &[&str]) -> PacIdentity {
        PacIdentity::from_sids(
            Some("S-1-5-21-1-2-3-1104".into()),
            groups.iter().map(|s| s.to_string()).collect(),
            None,
        )
    }

    #[test]
    fn deny_wins_over_allow() {
        let r = GroupRules {
            allow: vec!["S-1-5-21-1-2-3-513".into()],
            deny: vec!["S-1-5-21-1-2-3-666".into()],
        };
        assert!(apply_group_rules(&r, Some(&id(&["S-1-5-21-1-2-3-513"]))).is_ok());
        let groupless = PacIdentity::from_logon_info_raw(None, true);
        assert!(
            apply_group_rules(&r, Some(&groupless)).is_err(),
            "a PAC without LOGON_INFO"
        );
        assert!(apply_group_rules(&r, Some(&id(&["S-1-5-21-1-2-3-513", "S-1-5-21-1-2-3-666"]))).is_err());
        assert!(apply_group_rules(&r, Some(&id(&["S-1-5-21-1-2-3-512"]))).is_err());
        assert!(apply_group_rules(&r, None).is_err());
    }

    #[test]
    fn deny_rules_fail_closed_without_a_pac() {
        let r = GroupRules {
            allow: vec![],
            deny: vec!["S-1-5-21-1-2-3-512".into()],
        };
        let e = apply_group_rules(&r, None).unwrap_err();
        assert_eq!(e.reason(), "group_denied");
        assert!(apply_group_rules(&r, Some(&id(&["S-1-5-21-1-2-3-513"]))).is_ok());
        let groupless = PacIdentity::from_logon_info_raw(None, true);
        assert!(
            apply_group_rules(&r, Some(&groupless)).is_err(),
            "a PAC without LOGON_INFO"
        );
    }

    #[test]
    fn no_rules_allow_everyone() {
        assert!(apply_group_rules(&GroupRules::default(), None).is_ok());
    }
}
