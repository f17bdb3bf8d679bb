//! MIT keytab files, format 0x0502 (and reading 0x0501), as documented in MIT krb5's
//! `doc/formats/keytab_file_format.rst`. Dependency-free reader and writer; keys are never printed.

use super::crypto::{derive_keys, CryptoError, EncType, Key};
use super::principal::Principal;

pub use super::ad_account::{ad_computer_salt, ad_user_salt};

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

/// Keytab file format versions (first byte 5, then 1 or 2).
const VERSION_1: u8 = 1;
const VERSION_2: u8 = 2;

/// A bounds-checked cursor over keytab bytes that reports absolute offsets. `limit` is the end of
/// the region being read: the file, or one entry.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    limit: usize,
    little_endian: bool,
}

impl<'a> Reader<'a> {
    /// The next `n` bytes. Past the file end: `Truncated`; past the entry end: `Malformed`.
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], KeytabError> {
        let offset = self.pos;
        let end = offset.checked_add(n).filter(|&e| e <= self.limit);
        match end.and_then(|e| self.buf.get(offset..e).map(|b| (b, e))) {
            Some((bytes, e)) => {
                self.pos = e;
                Ok(bytes)
            }
            None if self.limit >= self.buf.len() => Err(KeytabError::Truncated { offset, what }),
            None => Err(KeytabError::Malformed {
                offset,
                what: format!("{what} runs past the end of its entry (byte {})", self.limit),
            }),
        }
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], KeytabError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, KeytabError> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, KeytabError> {
        let a = self.array(what)?;
        Ok(if self.little_endian {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        })
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, KeytabError> {
        let a = self.array(what)?;
        Ok(if self.little_endian {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    }
    /// A u16-counted octet string, as UTF-8 text (principal names are).
    fn counted_string(&mut self, what: &'static str) -> Result<String, KeytabError> {
        let offset = self.pos;
        let len = usize::from(self.u16(what)?);
        if len == 0 {
            return Err(KeytabError::Malformed {
                offset,
                what: format!("empty {what}"),
            });
        }
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| KeytabError::Malformed {
            offset,
            what: format!("{what} is not UTF-8"),
        })
    }
}

/// What one record held: a usable entry, or a key of an enctype kedge does not implement.
enum Record {
    Entry(KeytabEntry),
    Unsupported,
}

/// Parses the body of one entry, `r.pos..r.limit` (MIT `keytab_file_format.rst`, "entry").
fn parse_entry(r: &mut Reader<'_>, version: u8) -> Result<Record, KeytabError> {
    let count_offset = r.pos;
    let mut count = r.u16("component count")?;
    if version == VERSION_1 {
        // Version 1 counts the realm as a component.
        count = count.saturating_sub(1);
    }
    if count == 0 {
        return Err(KeytabError::Malformed {
            offset: count_offset,
            what: "principal without name components".into(),
        });
    }
    let realm = r.counted_string("realm")?;
    let components = (0..count)
        .map(|_| r.counted_string("name component"))
        .collect::<Result<Vec<_>, _>>()?;
    // Version 1 has no name type; MIT reads it as KRB5_NT_UNKNOWN (0).
    let name_type = if version == VERSION_1 {
        0
    } else {
        r.u32("name type")? as i32
    };
    let timestamp = r.u32("timestamp")?;
    let vno8 = r.u8("8-bit kvno")?;
    let enctype_offset = r.pos;
    let enctype = r.u16("enctype")?;
    let key_len = usize::from(r.u16("key length")?);
    let key_bytes = r.take(key_len, "key")?;
    // The 32-bit kvno extension, when four or more bytes remain; zero means zero-fill.
    let mut kvno = u32::from(vno8);
    if r.limit.saturating_sub(r.pos) >= 4 {
        let vno32 = r.u32("32-bit kvno")?;
        if vno32 != 0 {
            kvno = vno32;
        }
    }
    let Some(etype) = EncType::from_i32(i32::from(enctype)) else {
        return Ok(Record::Unsupported);
    };
    let key = Key::new(etype, key_bytes).map_err(|e| KeytabError::Malformed {
        offset: enctype_offset,
        what: e.to_string(),
    })?;
    Ok(Record::Entry(KeytabEntry {
        principal: Principal {
            name_type,
            components,
            realm,
        },
        timestamp,
        kvno,
        key,
    }))
}

impl Keytab {
    /// Parses keytab bytes: format 0x0502 (big-endian) or 0x0501 (little-endian, realm counted
    /// as a component, no name type), as in MIT krb5 `doc/formats/keytab_file_format.rst`.
    ///
    /// Deleted slots (negative sizes) are skipped; a zero size ends the keytab, as in MIT
    /// (`kt_file.c`). Entries of enctypes kedge does not implement are skipped and counted.
    /// Never panics: damage is reported as `Truncated` or `Malformed` with its byte offset.
    pub fn parse(bytes: &[u8]) -> Result<Self, KeytabError> {
        let (&first, rest) = bytes.split_first().ok_or(KeytabError::Empty)?;
        let &second = rest.first().ok_or(KeytabError::Truncated {
            offset: 1,
            what: "version",
        })?;
        if first != 5 || !(second == VERSION_1 || second == VERSION_2) {
            return Err(KeytabError::BadVersion(first, second));
        }
        let mut r = Reader {
            buf: bytes,
            pos: 2,
            limit: bytes.len(),
            little_endian: second == VERSION_1,
        };
        let mut keytab = Keytab::default();
        while r.pos < bytes.len() {
            let size_offset = r.pos;
            let size = r.u32("entry size")? as i32;
            if size == 0 {
                break;
            }
            let len = size.unsigned_abs() as usize;
            if size < 0 {
                r.take(len, "deleted entry")?;
                continue;
            }
            let start = r.pos;
            let end = start
                .checked_add(len)
                .filter(|&e| e <= bytes.len())
                .ok_or(KeytabError::Truncated {
                    offset: size_offset,
                    what: "entry (its size runs past the end of the file)",
                })?;
            let mut entry = Reader {
                buf: bytes,
                pos: start,
                limit: end,
                little_endian: r.little_endian,
            };
            match parse_entry(&mut entry, second)? {
                Record::Entry(e) => keytab.entries.push(e),
                Record::Unsupported => keytab.skipped_unsupported += 1,
            }
            r.pos = end;
        }
        Ok(keytab)
    }

    /// Serializes as format 0x0502, each entry with the 32-bit kvno extension. Entries that
    /// cannot be encoded (a name part over 65,535 bytes or over 65,535 components) are left out.
    /// The result holds key bytes: write it to a file with mode 0600 and never log it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![5, VERSION_2];
        for e in &self.entries {
            let start = out.len();
            out.extend_from_slice(&[0; 4]);
            if write_entry(&mut out, e).is_none() {
                out.truncate(start);
                continue;
            }
            let size = i32::try_from(out.len() - start - 4).unwrap_or(i32::MAX);
            out[start..start + 4].copy_from_slice(&size.to_be_bytes());
        }
        out
    }

    /// Adds one entry per enctype for `principal` at `kvno`, with keys derived from `password`
    /// and `salt` (RFC 3961 §3 string-to-key, default iteration counts): what a password
    /// change of the ASA writes next to the previous kvno's keys.
    pub fn add_password_keys(
        &mut self,
        principal: &Principal,
        kvno: u32,
        timestamp: u32,
        password: &[u8],
        salt: &[u8],
        enctypes: &[EncType],
    ) -> Result<(), CryptoError> {
        for key in derive_keys(password, salt, enctypes)? {
            self.entries.push(KeytabEntry {
                principal: principal.clone(),
                timestamp,
                kvno,
                key,
            });
        }
        Ok(())
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

/// Writes one 0x0502 entry body; `None` when a length does not fit its u16 field.
fn write_entry(out: &mut Vec<u8>, e: &KeytabEntry) -> Option<()> {
    let counted = |out: &mut Vec<u8>, b: &[u8]| -> Option<()> {
        out.extend_from_slice(&u16::try_from(b.len()).ok()?.to_be_bytes());
        out.extend_from_slice(b);
        Some(())
    };
    out.extend_from_slice(&u16::try_from(e.principal.components.len()).ok()?.to_be_bytes());
    counted(out, e.principal.realm.as_bytes())?;
    for c in &e.principal.components {
        counted(out, c.as_bytes())?;
    }
    out.extend_from_slice(&(e.principal.name_type as u32).to_be_bytes());
    out.extend_from_slice(&e.timestamp.to_be_bytes());
    out.push(e.kvno as u8);
    out.extend_from_slice(&(e.key.etype().as_i32() as u16).to_be_bytes());
    counted(out, e.key.expose_bytes())?;
    out.extend_from_slice(&e.kvno.to_be_bytes());
    Some(())
}

/// The default MIT/RFC 4120 salt: the realm followed by each name component.
pub fn default_salt(p: &Principal) -> String {
    let mut s = p.realm.clone();
    for c in &p.components {
        s.push_str(c);
    }
    s
}

mod prune;
pub use prune::Removed;

#[cfg(test)]
mod tests;
