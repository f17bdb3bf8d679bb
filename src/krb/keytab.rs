//! MIT keytab files, format 0x0502 (and reading 0x0501), as documented in MIT krb5's
//! `doc/formats/keytab_file_format.rst`. Dependency-free reader and writer; keys are never printed.

use super::crypto::{derive_keys, CryptoError, EncType, Key};
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

#[cfg(test)]
mod tests {
    use super::*;

    const MIT_DEFAULT: &[u8] = include_bytes!("../../tests/testdata/keytab/mit_default_salt.keytab");
    const MIT_DEFAULT_KLIST: &str = include_str!("../../tests/testdata/keytab/mit_default_salt.klist.txt");
    const AD_SALT: &[u8] = include_bytes!("../../tests/testdata/keytab/ad_computer_salt.keytab");
    const AD_SALT_KLIST: &str = include_str!("../../tests/testdata/keytab/ad_computer_salt.klist.txt");
    const HOLE: &[u8] = include_bytes!("../../tests/testdata/keytab/hole.keytab");

    type Summary = (String, i32, u32, u32, i32, Vec<u8>);

    fn summary(kt: &Keytab) -> Vec<Summary> {
        kt.entries
            .iter()
            .map(|e| {
                let p = &e.principal;
                (
                    p.to_string(),
                    p.name_type,
                    e.timestamp,
                    e.kvno,
                    e.key.etype().as_i32(),
                    e.key.expose_bytes().to_vec(),
                )
            })
            .collect()
    }

    /// (kvno, principal, key bytes) of the supported enctypes in a `klist -kteK` listing.
    fn klist_keys(listing: &str) -> Vec<(u32, String, Vec<u8>)> {
        listing
            .lines()
            .filter(|l| l.contains("(0x") && !l.contains("camellia"))
            .map(|l| {
                let mut words = l.split_whitespace();
                let kvno = words.next().unwrap().parse().unwrap();
                let principal = words.nth(2).unwrap().to_string();
                let hex_key = l.rsplit("(0x").next().unwrap().trim_end_matches(')');
                (kvno, principal, hex::decode(hex_key).unwrap())
            })
            .collect()
    }

    fn record_boundaries(bytes: &[u8]) -> Vec<usize> {
        let mut at = vec![2];
        let mut pos = 2;
        while pos + 4 <= bytes.len() {
            let size = i32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap());
            pos += 4 + size.unsigned_abs() as usize;
            at.push(pos);
        }
        at
    }

    #[test]
    fn mit_ktutil_keytab_parses_with_every_principal_kvno_and_key() {
        let kt = Keytab::parse(MIT_DEFAULT).unwrap();
        assert_eq!(kt.entries.len(), 9);
        assert_eq!(
            kt.skipped_unsupported, 1,
            "camellia128-cts-cmac is skipped and counted"
        );
        let got: Vec<_> = kt
            .entries
            .iter()
            .map(|e| (e.kvno, e.principal.to_string(), e.key.expose_bytes().to_vec()))
            .collect();
        assert_eq!(got, klist_keys(MIT_DEFAULT_KLIST));
        let http = Principal::parse("HTTP/outlook.contoso.com@CONTOSO.COM", "").unwrap();
        assert_eq!(kt.entries[0].principal.components, http.components);
        assert_eq!(kt.entries[0].principal.name_type, 1);
    }

    #[test]
    fn kvno_above_255_comes_from_the_32_bit_field() {
        let kt = Keytab::parse(MIT_DEFAULT).unwrap();
        let mdb = Principal::parse("exchangeMDB/outlook.contoso.com@CONTOSO.COM", "").unwrap();
        let http = Principal::parse("HTTP/outlook.contoso.com@CONTOSO.COM", "").unwrap();
        assert_eq!(kt.max_kvno(&Principal { name_type: 1, ..mdb }), Some(300));
        assert_eq!(kt.max_kvno(&Principal { name_type: 1, ..http }), Some(6));
    }

    #[test]
    fn mit_default_salt_keys_match_string_to_key() {
        let kt = Keytab::parse(MIT_DEFAULT).unwrap();
        for e in &kt.entries {
            let password: &[u8] = match (e.principal.components[0].as_str(), e.kvno) {
                ("HTTP", 5) => b"Passw0rd-kvno5",
                ("HTTP", 6) => b"Passw0rd-kvno6",
                ("exchangeMDB", 300) => b"Mdb-Secret!7",
                other => panic!("unexpected entry {other:?}"),
            };
            let salt = default_salt(&e.principal);
            let derived =
                crate::krb::crypto::string_to_key(e.key.etype(), password, salt.as_bytes(), None).unwrap();
            assert_eq!(
                derived.expose_bytes(),
                e.key.expose_bytes(),
                "{} kvno {} {:?}",
                e.principal,
                e.kvno,
                e.key
            );
        }
    }

    #[test]
    fn ad_computer_salt_keys_match_string_to_key() {
        let salt = ad_computer_salt("CONTOSO.COM", "EXCH2010ASA$");
        assert_eq!(salt, "CONTOSO.COMhostexch2010asa.contoso.com");
        let kt = Keytab::parse(AD_SALT).unwrap();
        assert_eq!(kt.entries.len(), 3);
        let etypes: Vec<_> = kt.entries.iter().map(|e| e.key.etype()).collect();
        let derived = derive_keys(b"Asa-Pa55word!", salt.as_bytes(), &etypes).unwrap();
        for (e, d) in kt.entries.iter().zip(&derived) {
            assert_eq!(e.principal.to_string(), "EXCH2010ASA$@CONTOSO.COM");
            assert_eq!(e.kvno, 3);
            assert_eq!(d.expose_bytes(), e.key.expose_bytes(), "{:?}", e.key);
        }
        let listed: Vec<_> = klist_keys(AD_SALT_KLIST).into_iter().map(|(_, _, k)| k).collect();
        assert_eq!(
            derived
                .iter()
                .map(|k| k.expose_bytes().to_vec())
                .collect::<Vec<_>>(),
            listed
        );
    }

    #[test]
    fn add_password_keys_writes_what_mit_wrote() {
        let mit = Keytab::parse(AD_SALT).unwrap();
        let mut kt = Keytab::default();
        let first = &mit.entries[0];
        let etypes: Vec<_> = mit.entries.iter().map(|e| e.key.etype()).collect();
        let salt = ad_computer_salt("CONTOSO.COM", "EXCH2010ASA$");
        kt.add_password_keys(
            &first.principal,
            3,
            first.timestamp,
            b"Asa-Pa55word!",
            salt.as_bytes(),
            &etypes,
        )
        .unwrap();
        assert_eq!(kt.to_bytes(), AD_SALT, "byte-identical to ktutil's file");
    }

    #[test]
    fn mit_keytab_reserializes_byte_identically() {
        assert_eq!(Keytab::parse(AD_SALT).unwrap().to_bytes(), AD_SALT);
    }

    #[test]
    fn parse_to_bytes_parse_roundtrips() {
        for bytes in [MIT_DEFAULT, AD_SALT, HOLE] {
            let kt = Keytab::parse(bytes).unwrap();
            let again = Keytab::parse(&kt.to_bytes()).unwrap();
            assert_eq!(summary(&again), summary(&kt));
            assert_eq!(again.skipped_unsupported, 0);
        }
    }

    #[test]
    fn deleted_slot_is_skipped() {
        assert!(
            i32::from_be_bytes(HOLE[2..6].try_into().unwrap()) < 0,
            "test data starts with a hole"
        );
        let kt = Keytab::parse(HOLE).unwrap();
        assert_eq!(kt.entries.len(), 1);
        assert_eq!(kt.entries[0].kvno, 2);
        assert_eq!(
            kt.entries[0].principal.to_string(),
            "host/hole.contoso.com@CONTOSO.COM"
        );
    }

    #[test]
    fn every_truncation_is_an_error_or_a_shorter_keytab_never_a_panic() {
        for bytes in [MIT_DEFAULT, AD_SALT, HOLE] {
            let boundaries = record_boundaries(bytes);
            for cut in 0..bytes.len() {
                let r = Keytab::parse(&bytes[..cut]);
                if boundaries.contains(&cut) {
                    assert!(r.is_ok(), "cut at record boundary {cut}");
                } else {
                    assert!(r.is_err(), "cut at {cut} must be refused");
                }
            }
        }
        assert_eq!(Keytab::parse(&[]).unwrap_err(), KeytabError::Empty);
        assert!(matches!(
            Keytab::parse(&MIT_DEFAULT[..40]),
            Err(KeytabError::Truncated { offset: 2, .. })
        ));
    }

    #[test]
    fn mutated_keytabs_never_panic() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut bytes = MIT_DEFAULT.to_vec();
            let at = (state as usize) % bytes.len();
            bytes[at] = (state >> 32) as u8;
            let at2 = ((state >> 16) as usize) % bytes.len();
            bytes[at2] ^= 0x80;
            let _ = Keytab::parse(&bytes);
        }
    }

    #[test]
    fn wrong_version_is_refused() {
        assert_eq!(Keytab::parse(&[5, 3]).unwrap_err(), KeytabError::BadVersion(5, 3));
        assert_eq!(
            Keytab::parse(&[4, 2, 0]).unwrap_err(),
            KeytabError::BadVersion(4, 2)
        );
        assert!(matches!(
            Keytab::parse(&[5]),
            Err(KeytabError::Truncated { offset: 1, .. })
        ));
        assert_eq!(Keytab::parse(&[5, 2]).unwrap().entries.len(), 0);
    }

    #[test]
    fn zero_size_ends_the_keytab_as_in_mit() {
        let mut bytes = AD_SALT.to_vec();
        let second = record_boundaries(AD_SALT)[1];
        bytes.truncate(second);
        bytes.extend_from_slice(&[0u8; 64]);
        assert_eq!(Keytab::parse(&bytes).unwrap().entries.len(), 1);
    }

    /// One version-1 entry: little-endian, realm counted among the components, no name type.
    fn v1_keytab(with_vno32: bool) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&3u16.to_le_bytes()); // realm + 2 components
        for part in ["CONTOSO.COM", "HTTP", "outlook.contoso.com"] {
            body.extend_from_slice(&(part.len() as u16).to_le_bytes());
            body.extend_from_slice(part.as_bytes());
        }
        body.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        body.push(4);
        body.extend_from_slice(&17u16.to_le_bytes());
        body.extend_from_slice(&16u16.to_le_bytes());
        body.extend_from_slice(&[0x42; 16]);
        if with_vno32 {
            body.extend_from_slice(&260u32.to_le_bytes());
        }
        let mut out = vec![5, 1];
        out.extend_from_slice(&(body.len() as i32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn version_1_little_endian_keytab_parses() {
        let kt = Keytab::parse(&v1_keytab(false)).unwrap();
        let e = &kt.entries[0];
        assert_eq!(e.principal.to_string(), "HTTP/outlook.contoso.com@CONTOSO.COM");
        assert_eq!(
            (e.principal.name_type, e.timestamp, e.kvno),
            (0, 1_700_000_000, 4)
        );
        assert_eq!(e.key.etype(), EncType::Aes128CtsHmacSha196);
        assert_eq!(Keytab::parse(&v1_keytab(true)).unwrap().entries[0].kvno, 260);
    }

    #[test]
    fn key_of_wrong_length_for_its_enctype_is_malformed() {
        let mut bytes = v1_keytab(false);
        let etype_at = bytes.len() - 20;
        bytes[etype_at..etype_at + 2].copy_from_slice(&18u16.to_le_bytes()); // aes256 with 16 bytes
        assert!(
            matches!(Keytab::parse(&bytes), Err(KeytabError::Malformed { offset, .. }) if offset == etype_at)
        );
    }

    #[test]
    fn entry_shorter_than_its_fields_is_malformed() {
        let mut bytes = AD_SALT.to_vec();
        let size = i32::from_be_bytes(bytes[2..6].try_into().unwrap());
        bytes[2..6].copy_from_slice(&(size - 20).to_be_bytes());
        assert!(matches!(
            Keytab::parse(&bytes),
            Err(KeytabError::Malformed { .. })
        ));
    }

    #[test]
    fn error_messages_name_the_offset_and_never_key_bytes() {
        let msg = Keytab::parse(&MIT_DEFAULT[..100]).unwrap_err().to_string();
        assert!(msg.contains("byte"), "{msg}");
        let shown = format!("{:?}", Keytab::parse(AD_SALT).unwrap());
        let key_hex = hex::encode(Keytab::parse(AD_SALT).unwrap().entries[0].key.expose_bytes());
        assert!(!shown.contains(&key_hex[..8]) && shown.contains("redacted"));
    }
}
