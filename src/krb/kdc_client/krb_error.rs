//! KRB-ERROR (RFC 4120 §5.9.1) as a client of the KDC or of kpasswd reports it: the code with
//! its RFC 4120 §7.5.9 name, the KDC's text, and the e-data for callers that need it
//! (METHOD-DATA with PA-ETYPE-INFO2 after KDC_ERR_PREAUTH_REQUIRED).

use rasn_kerberos::KrbError;

/// A KRB-ERROR from a KDC or kpasswd server. Holds no key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KdcError {
    /// RFC 4120 §7.5.9 error code.
    pub code: i32,
    /// The server's e-text, if any.
    pub text: Option<String>,
    /// The server's e-data (METHOD-DATA for pre-authentication errors; the kpasswd result for
    /// kpasswd errors).
    pub e_data: Option<Vec<u8>>,
    /// The server's time (Unix seconds), useful for diagnosing KRB_AP_ERR_SKEW.
    pub stime: i64,
}

/// RFC 4120 §7.5.9: KDC_ERR_C_PRINCIPAL_UNKNOWN.
pub const KDC_ERR_C_PRINCIPAL_UNKNOWN: i32 = 6;
/// RFC 4120 §7.5.9: KDC_ERR_PREAUTH_FAILED.
pub const KDC_ERR_PREAUTH_FAILED: i32 = 24;
/// RFC 4120 §7.5.9: KDC_ERR_PREAUTH_REQUIRED.
pub const KDC_ERR_PREAUTH_REQUIRED: i32 = 25;
/// RFC 4120 §7.5.9: KRB_AP_ERR_BAD_INTEGRITY.
pub const KRB_AP_ERR_BAD_INTEGRITY: i32 = 31;

/// The RFC 4120 §7.5.9 name of an error code (`"KDC_ERR_PREAUTH_FAILED"`), or `"KRB_ERR_<n>"`.
pub fn error_name(code: i32) -> std::borrow::Cow<'static, str> {
    let s = match code {
        0 => "KDC_ERR_NONE",
        1 => "KDC_ERR_NAME_EXP",
        2 => "KDC_ERR_SERVICE_EXP",
        3 => "KDC_ERR_BAD_PVNO",
        6 => "KDC_ERR_C_PRINCIPAL_UNKNOWN",
        7 => "KDC_ERR_S_PRINCIPAL_UNKNOWN",
        8 => "KDC_ERR_PRINCIPAL_NOT_UNIQUE",
        9 => "KDC_ERR_NULL_KEY",
        12 => "KDC_ERR_POLICY",
        13 => "KDC_ERR_BADOPTION",
        14 => "KDC_ERR_ETYPE_NOSUPP",
        18 => "KDC_ERR_CLIENT_REVOKED",
        23 => "KDC_ERR_KEY_EXPIRED",
        24 => "KDC_ERR_PREAUTH_FAILED",
        25 => "KDC_ERR_PREAUTH_REQUIRED",
        31 => "KRB_AP_ERR_BAD_INTEGRITY",
        32 => "KRB_AP_ERR_TKT_EXPIRED",
        34 => "KRB_AP_ERR_REPEAT",
        37 => "KRB_AP_ERR_SKEW",
        41 => "KRB_AP_ERR_MODIFIED",
        60 => "KRB_ERR_GENERIC",
        68 => "KDC_ERR_WRONG_REALM",
        _ => return format!("KRB_ERR_{code}").into(),
    };
    s.into()
}

impl KdcError {
    /// Decodes a DER KRB-ERROR (`[APPLICATION 30]`); `None` when `bytes` is not one.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.first() != Some(&0x7e) {
            return None;
        }
        let e: KrbError = rasn::der::decode(bytes)
            .or_else(|_| rasn::ber::decode(bytes))
            .ok()?;
        Some(Self {
            code: e.error_code,
            text: e.e_text.as_ref().map(super::text).filter(|t| !t.is_empty()),
            e_data: e.e_data.map(|d| d.to_vec()),
            stime: super::super::time::krb_secs(&e.stime),
        })
    }

    /// The error's RFC 4120 name.
    pub fn name(&self) -> std::borrow::Cow<'static, str> {
        error_name(self.code)
    }
}

impl std::fmt::Display for KdcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.code)?;
        if let Some(t) = &self.text {
            write!(f, ": {t}")?;
        }
        Ok(())
    }
}

impl std::error::Error for KdcError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_error_bytes_are_not_a_krb_error() {
        assert_eq!(KdcError::parse(b""), None);
        assert_eq!(KdcError::parse(&[0x6b, 0x00]), None);
        assert_eq!(KdcError::parse(&[0x7e, 0x82, 0xff]), None);
    }

    #[test]
    fn unknown_codes_are_named_by_number() {
        assert_eq!(error_name(24), "KDC_ERR_PREAUTH_FAILED");
        assert_eq!(error_name(999), "KRB_ERR_999");
    }
}
