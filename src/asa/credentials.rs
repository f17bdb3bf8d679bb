//! The ASA credentials kedge holds, as status reports them (never any key material). Owned by
//! the ASA code that produces them; the admin view shows them.

use serde::{Deserialize, Serialize};

/// The Latest and Previous ASA credentials, as Exchange's
/// `Get-ClientAccessServer -IncludeAlternateServiceAccountCredentialStatus` shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialStatus {
    /// The newest key version.
    pub latest: Option<Credential>,
    /// The one before it (still accepted after a password roll).
    pub previous: Option<Credential>,
}

/// One credential (a principal at one kvno); never any key material.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// Principal, e.g. `EXCHASA$@CONTOSO.COM`.
    pub principal: String,
    /// Key version number.
    pub kvno: u32,
    /// Encryption types held, e.g. `aes256-cts-hmac-sha1-96`.
    pub enctypes: Vec<String>,
    /// When kedge loaded it, seconds since the Unix epoch.
    pub loaded_at: u64,
}
