//! The client side of the two KDC exchanges an ASA password roll needs, pure: bytes and `now`
//! in, bytes or typed errors out; the caller owns the sockets (`kedge::asa::kdc_io`).
//!
//! - [`as_req`]: an AS exchange (RFC 4120 §3.1) for `kadmin/changepw` with the ASA's current
//!   key and PA-ENC-TIMESTAMP pre-authentication (RFC 4120 §5.2.7.2), learning the salt from
//!   PA-ETYPE-INFO2 (RFC 4120 §5.2.7.5).
//! - [`kpasswd`]: the Kerberos change-password protocol (RFC 3244, version 1 framing as MIT and
//!   AD speak it): AP-REQ with a subkey, KRB-PRIV (RFC 4120 §5.7) carrying the new password.
//! - [`krb_error`]: KRB-ERROR (RFC 4120 §5.9.1) as a client reports it.

pub mod as_req;
pub mod kpasswd;
pub mod krb_error;

use rasn_kerberos::{KerberosString, PrincipalName};

use super::principal::Principal;

/// RFC 4120 §6.2 name type NT-PRINCIPAL.
pub const NT_PRINCIPAL: i32 = 1;
/// RFC 4120 §6.2 name type NT-SRV-INST (`kadmin/changepw`).
pub const NT_SRV_INST: i32 = 2;

fn kstr(s: &str) -> KerberosString {
    KerberosString::from_bytes(s.as_bytes()).unwrap_or_default()
}

fn text(s: &KerberosString) -> String {
    String::from_utf8_lossy(s.as_bytes()).into_owned()
}

fn pname(p: &Principal, name_type: i32) -> PrincipalName {
    PrincipalName {
        r#type: name_type,
        string: p.components.iter().map(|c| kstr(c)).collect(),
    }
}

fn principal_of(name: &PrincipalName, realm: &str) -> Principal {
    Principal {
        name_type: name.r#type,
        components: name.string.iter().map(text).collect(),
        realm: realm.to_string(),
    }
}

/// `kadmin/changepw@REALM`, the service the change-password protocol authenticates to
/// (RFC 3244 §2; MIT and AD both name it so).
pub fn changepw_principal(realm: &str) -> Principal {
    Principal {
        name_type: NT_SRV_INST,
        components: vec!["kadmin".into(), "changepw".into()],
        realm: realm.to_string(),
    }
}
