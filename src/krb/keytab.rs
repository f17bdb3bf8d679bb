//! MIT keytab files, format 0x0502 (and reading 0x0501), as documented in MIT krb5's
//! `doc/formats/keytab_file_format.rst`. Dependency-free reader and writer; keys are never printed.

use super::crypto::Key;
use super::principal::Principal;

/// One keytab entry.
#[derive(Clone, Debug)]
pub struct KeytabEntry {
    /// The principal the key belongs to.
    pub principal: Principal,
    /// Seconds since the Unix epoch when the entry was written.
    pub timestamp: u32,
    /// Key version number (the 32-bit field when present, else the 8-bit one).
    pub kvno: u32,
    /// The key itself.
    pub key: Key,
}

/// A parsed keytab.
#[derive(Clone, Debug, Default)]
pub struct Keytab {
    /// Entries in file order (deleted slots skipped; unknown enctypes skipped and counted).
    pub entries: Vec<KeytabEntry>,
    /// Entries whose enctype kedge does not support (DES, camellia, …), skipped.
    pub skipped_unsupported: usize,
}

/// Why a keytab could not be read. Offsets let an administrator find the damage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeytabError {
    /// The file is empty.
    #[error("keytab is empty")]
    Empty,
    /// Wrong first byte or version.
    #[error("not an MIT keytab: version bytes {0:02x}{1:02x}, want 0502 or 0501")]
    BadVersion(u8, u8),
    /// The file ends inside an entry (half-written?).
    #[error("keytab truncated at byte {offset}: {what}")]
    Truncated { offset: usize, what: &'static str },
    /// A structurally impossible field.
    #[error("keytab malformed at byte {offset}: {what}")]
    Malformed { offset: usize, what: String },
}

impl Keytab {
    /// Parses keytab bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, KeytabError> {
        let _ = bytes;
        unimplemented!("keytab: parse")
    }
    /// Serializes as format 0x0502.
    pub fn to_bytes(&self) -> Vec<u8> {
        unimplemented!("keytab: to_bytes")
    }
    /// Highest kvno of the entries for `principal`.
    pub fn max_kvno(&self, principal: &Principal) -> Option<u32> {
        self.entries
            .iter()
            .filter(|e| &e.principal == principal)
            .map(|e| e.kvno)
            .max()
    }
}

/// The AD salt of a computer account such as the ASA (MS-KILE §3.1.1.2):
/// `<REALM uppercase>host<name lowercase, without trailing $>.<realm lowercase>`.
pub fn ad_computer_salt(realm: &str, account: &str) -> String {
    let name = account.trim_end_matches('$').to_ascii_lowercase();
    format!(
        "{}host{}.{}",
        realm.to_ascii_uppercase(),
        name,
        realm.to_ascii_lowercase()
    )
}

/// The default MIT/RFC 4120 salt: the realm followed by each name component.
pub fn default_salt(p: &Principal) -> String {
    let mut s = p.realm.clone();
    for c in &p.components {
        s.push_str(c);
    }
    s
}
