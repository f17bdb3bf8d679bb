//! kedge's RFC 3961 crypto profile on RustCrypto primitives.
//!
//! - aes128/aes256-cts-hmac-sha1-96 (RFC 3962): required.
//! - aes128-cts-hmac-sha256-128 / aes256-cts-hmac-sha384-192 (RFC 8009): supported.
//! - rc4-hmac (RFC 4757): legacy domains only.
//! - DES: never.
//!
//! Keys are zeroized on drop and never formatted. [`UsageKeys`] caches the derived keys
//! (Ke/Ki, with the AES key schedule and keyed HMAC state) of one key and one usage, so the
//! hot path (ticket decryption with the service key, usage 2) derives nothing per token; every
//! cached state is zeroized on drop too (the AES schedules by the `aes` crate, the HMAC states
//! by `hmac_state`, the rc4-hmac keys as raw bytes).

mod aes_sha1;
mod aes_sha2;
mod cts;
mod hmac_state;
mod nfold;
mod rc4_hmac;
mod string_to_key;
#[cfg(test)]
mod tests;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// HMAC with its keyed state precomputed and zeroized on drop, for other keys kedge holds (the
/// assert-mode signing key).
pub(crate) use self::hmac_state::{KeyedHmac, Sha256 as HmacSha256};
pub use self::nfold::nfold;
pub use self::string_to_key::{
    derive_keys, AES_SHA1_DEFAULT_ITERATIONS, AES_SHA2_DEFAULT_ITERATIONS, MAX_ITERATIONS,
};

/// Kerberos encryption types kedge knows (RFC 3961 §8, RFC 3962, RFC 8009, RFC 4757).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EncType {
    /// aes128-cts-hmac-sha1-96 (17), RFC 3962.
    Aes128CtsHmacSha196,
    /// aes256-cts-hmac-sha1-96 (18), RFC 3962.
    Aes256CtsHmacSha196,
    /// aes128-cts-hmac-sha256-128 (19), RFC 8009.
    Aes128CtsHmacSha256128,
    /// aes256-cts-hmac-sha384-192 (20), RFC 8009.
    Aes256CtsHmacSha384192,
    /// rc4-hmac (23), RFC 4757.
    Rc4Hmac,
}

impl EncType {
    /// The enctype for its RFC 3961 number, `None` for unknown or refused (DES) types.
    pub fn from_i32(n: i32) -> Option<Self> {
        match n {
            17 => Some(Self::Aes128CtsHmacSha196),
            18 => Some(Self::Aes256CtsHmacSha196),
            19 => Some(Self::Aes128CtsHmacSha256128),
            20 => Some(Self::Aes256CtsHmacSha384192),
            23 => Some(Self::Rc4Hmac),
            _ => None,
        }
    }
    /// The RFC 3961 number.
    pub fn as_i32(self) -> i32 {
        match self {
            Self::Aes128CtsHmacSha196 => 17,
            Self::Aes256CtsHmacSha196 => 18,
            Self::Aes128CtsHmacSha256128 => 19,
            Self::Aes256CtsHmacSha384192 => 20,
            Self::Rc4Hmac => 23,
        }
    }
    /// MIT's name (`aes256-cts-hmac-sha1-96`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes128CtsHmacSha196 => "aes128-cts-hmac-sha1-96",
            Self::Aes256CtsHmacSha196 => "aes256-cts-hmac-sha1-96",
            Self::Aes128CtsHmacSha256128 => "aes128-cts-hmac-sha256-128",
            Self::Aes256CtsHmacSha384192 => "aes256-cts-hmac-sha384-192",
            Self::Rc4Hmac => "arcfour-hmac",
        }
    }
    /// Parses MIT names and common aliases (`aes256-cts`, `rc4-hmac`, `arcfour-hmac-md5`, numbers).
    pub fn from_name(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        if let Ok(n) = s.parse::<i32>() {
            return Self::from_i32(n);
        }
        match s.as_str() {
            "aes128-cts-hmac-sha1-96" | "aes128-cts" | "aes128-sha1" => Some(Self::Aes128CtsHmacSha196),
            "aes256-cts-hmac-sha1-96" | "aes256-cts" | "aes256-sha1" => Some(Self::Aes256CtsHmacSha196),
            "aes128-cts-hmac-sha256-128" | "aes128-sha2" => Some(Self::Aes128CtsHmacSha256128),
            "aes256-cts-hmac-sha384-192" | "aes256-sha2" => Some(Self::Aes256CtsHmacSha384192),
            "arcfour-hmac" | "rc4-hmac" | "arcfour-hmac-md5" | "rc4" => Some(Self::Rc4Hmac),
            _ => None,
        }
    }
    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128CtsHmacSha196 | Self::Aes128CtsHmacSha256128 | Self::Rc4Hmac => 16,
            Self::Aes256CtsHmacSha196 | Self::Aes256CtsHmacSha384192 => 32,
        }
    }
    /// The RFC 3961 checksum type that goes with this enctype (15, 16, 19, 20, or -138 for rc4).
    pub fn checksum_type(self) -> i32 {
        match self {
            Self::Aes128CtsHmacSha196 => 15,
            Self::Aes256CtsHmacSha196 => 16,
            Self::Aes128CtsHmacSha256128 => 19,
            Self::Aes256CtsHmacSha384192 => 20,
            Self::Rc4Hmac => -138,
        }
    }
}

/// Failures of the crypto layer. None of them carries key or plaintext bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The integrity check failed: wrong key, or modified ciphertext (KRB_AP_ERR_BAD_INTEGRITY).
    #[error("integrity check failed (wrong key or modified data)")]
    Integrity,
    /// Ciphertext too short or of an impossible length for the enctype.
    #[error("ciphertext of {len} bytes is too short for {etype}")]
    BadLength { etype: &'static str, len: usize },
    /// An enctype or checksum type kedge does not implement.
    #[error("unsupported encryption or checksum type {0}")]
    Unsupported(i32),
    /// A key of the wrong length for its enctype.
    #[error("key of {got} bytes, {etype} needs {want}")]
    KeyLength {
        etype: &'static str,
        got: usize,
        want: usize,
    },
    /// string-to-key parameters refused (RFC 3961 §3): an iteration count of 0 (2^32 per RFC
    /// 3962) or above MIT's limit of 2^24 - 1, or a non-UTF-8 password for rc4-hmac.
    #[error("string-to-key refused: {0}")]
    StringToKey(&'static str),
}

/// A Kerberos key. Zeroized on drop; `Debug` shows the enctype only.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key {
    #[zeroize(skip)]
    etype: EncType,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({}, <redacted>)", self.etype.name())
    }
}

impl Key {
    /// Wraps raw key bytes, checking the length for the enctype.
    pub fn new(etype: EncType, bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != etype.key_len() {
            return Err(CryptoError::KeyLength {
                etype: etype.name(),
                got: bytes.len(),
                want: etype.key_len(),
            });
        }
        Ok(Self {
            etype,
            bytes: bytes.to_vec(),
        })
    }
    /// The key's enctype.
    pub fn etype(&self) -> EncType {
        self.etype
    }
    /// The raw key bytes: for encoding into a keytab or an EncryptionKey only; never log them.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// A fresh random key of the enctype (RFC 3961 random-to-key).
    pub fn random(etype: EncType) -> Self {
        let mut bytes = vec![0u8; etype.key_len()];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        Self { etype, bytes }
    }
}

/// RFC 3961 string-to-key: RFC 3962 PBKDF2-HMAC-SHA1 (default 4096 iterations) + DK(tkey,
/// "kerberos") for AES, RFC 8009 PBKDF2-HMAC-SHA256/384 (32768) + KDF for aes-sha2, and
/// MD4(UTF-16LE(password)) for rc4-hmac (salt ignored). `iterations` overrides the default.
pub fn string_to_key(
    etype: EncType,
    password: &[u8],
    salt: &[u8],
    iterations: Option<u32>,
) -> Result<Key, CryptoError> {
    string_to_key::string_to_key(etype, password, salt, iterations)
}

/// Keys an HMAC (any key length is valid for HMAC, RFC 2104 §2, so this never fails).
pub(crate) fn hmac_with_key<M: hmac::digest::KeyInit>(key: &[u8]) -> M {
    M::new_from_slice(key).unwrap_or_else(|_| M::new(&Default::default()))
}

/// Derived keys of one base key for one key usage, cached for repeated use (RFC 3961 §5.3:
/// Ke and Ki for encryption, Kc for checksums; RFC 4757 §4: K1 and Ksign for rc4-hmac).
///
/// Holds the expanded AES key schedule of Ke and the HMAC state already keyed with Ki, so
/// `decrypt` and `encrypt` derive nothing. Kc is derived on the first `checksum` call and kept.
/// `Send + Sync`: share one per (key, usage) across threads.
#[derive(Clone)]
pub struct UsageKeys {
    etype: EncType,
    inner: Inner,
}

// Inline on purpose: `UsageKeys::new` runs per token for the session key (usage 11), and a
// Box would add an allocation there.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Inner {
    AesSha1(aes_sha1::AesSha1Keys),
    AesSha2(aes_sha2::AesSha2Keys),
    Rc4(rc4_hmac::Rc4Keys),
}

// Every part of a `UsageKeys` wipes itself when dropped: the AES key schedules (`aes` with
// its `zeroize` feature), the keyed HMAC states (`hmac_state::KeyedHmac`), the rc4-hmac keys
// (`Zeroizing` bytes). `cached_key_states_are_wiped_on_drop` checks each part.
impl ZeroizeOnDrop for UsageKeys {}

impl std::fmt::Debug for UsageKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UsageKeys({}, <redacted>)", self.etype.name())
    }
}

/// Copies a caller's confounder into the fixed size the enctype uses.
fn confounder_array<const N: usize>(c: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    let n = c.len().min(N);
    a[..n].copy_from_slice(&c[..n]);
    a
}

impl UsageKeys {
    /// Derives (once) everything `decrypt`/`encrypt` need for `usage`: for AES, Ke and Ki with
    /// DK (RFC 3961 §5.1, RFC 3962) or KDF-HMAC-SHA2 (RFC 8009 §5); for rc4-hmac, K1 and
    /// Ksign (RFC 4757 §4).
    pub fn new(key: &Key, usage: u32) -> Self {
        let bytes = key.expose_bytes();
        let inner = match key.etype {
            EncType::Aes128CtsHmacSha196 | EncType::Aes256CtsHmacSha196 => Inner::AesSha1(
                aes_sha1::AesSha1Keys::new(bytes, usage).expect("Key::new checks the length for the enctype"),
            ),
            EncType::Aes128CtsHmacSha256128 | EncType::Aes256CtsHmacSha384192 => Inner::AesSha2(
                aes_sha2::AesSha2Keys::new(bytes, usage).expect("Key::new checks the length for the enctype"),
            ),
            EncType::Rc4Hmac => Inner::Rc4(rc4_hmac::Rc4Keys::new(bytes, usage)),
        };
        Self {
            etype: key.etype,
            inner,
        }
    }
    /// The enctype of the base key.
    pub fn etype(&self) -> EncType {
        self.etype
    }
    /// RFC 3961 decrypt: checks integrity (in constant time, before any plaintext is returned),
    /// strips the confounder, returns the plaintext. Errors: `BadLength` for ciphertext shorter
    /// than confounder + tag, `Integrity` for a wrong key or modified data.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
        let name = self.etype.name();
        match &self.inner {
            Inner::AesSha1(k) => k.decrypt(ciphertext, name),
            Inner::AesSha2(k) => k.decrypt(ciphertext, name),
            Inner::Rc4(k) => k.decrypt(ciphertext, name),
        }
    }
    /// RFC 3961 encrypt with the given confounder (its length is the cipher block size, 16; 8 for rc4).
    /// A confounder of another length is cut or zero-padded to that size.
    pub fn encrypt_with_confounder(&self, plaintext: &[u8], confounder: &[u8]) -> Vec<u8> {
        match &self.inner {
            Inner::AesSha1(k) => k.encrypt(&confounder_array(confounder), plaintext),
            Inner::AesSha2(k) => k.encrypt(&confounder_array(confounder), plaintext),
            Inner::Rc4(k) => k.encrypt(&confounder_array(confounder), plaintext),
        }
    }
    /// RFC 3961 encrypt with a random confounder (from the thread-local CSPRNG).
    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut confounder = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut confounder);
        self.encrypt_with_confounder(plaintext, &confounder)
    }
    /// The keyed checksum of `data` (get_mic) for this usage: hmac-sha1-96 for aes-sha1,
    /// RFC 8009 hmac-sha256-128 / sha384-192, HMAC-MD5 (-138) for rc4.
    pub fn checksum(&self, data: &[u8]) -> Vec<u8> {
        match &self.inner {
            Inner::AesSha1(k) => k.checksum(data),
            Inner::AesSha2(k) => k.checksum(data),
            Inner::Rc4(k) => k.checksum(data),
        }
    }
}

/// One-shot decrypt (derives keys each call; cache a [`UsageKeys`] on hot paths).
pub fn decrypt(key: &Key, usage: u32, ciphertext: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
    UsageKeys::new(key, usage).decrypt(ciphertext)
}

/// One-shot encrypt with a random confounder.
pub fn encrypt(key: &Key, usage: u32, plaintext: &[u8]) -> Vec<u8> {
    UsageKeys::new(key, usage).encrypt(plaintext)
}

/// Keyed checksum of `cksumtype` (15, 16, 19, 20, -138) with `key` for `usage`.
/// Errors with `Unsupported` when the checksum type does not belong to the key's enctype.
pub fn checksum(key: &Key, cksumtype: i32, usage: u32, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if cksumtype != key.etype.checksum_type() {
        return Err(CryptoError::Unsupported(cksumtype));
    }
    let bytes = key.expose_bytes();
    let sum = match key.etype {
        EncType::Aes128CtsHmacSha196 | EncType::Aes256CtsHmacSha196 => {
            aes_sha1::checksum_oneshot(bytes, usage, data)
        }
        EncType::Aes128CtsHmacSha256128 | EncType::Aes256CtsHmacSha384192 => {
            aes_sha2::checksum_oneshot(bytes, usage, data)
        }
        EncType::Rc4Hmac => Some(rc4_hmac::checksum_oneshot(bytes, usage, data)),
    };
    sum.ok_or(CryptoError::KeyLength {
        etype: key.etype.name(),
        got: bytes.len(),
        want: key.etype.key_len(),
    })
}

/// Verifies a keyed checksum in constant time.
pub fn verify_checksum(
    key: &Key,
    cksumtype: i32,
    usage: u32,
    data: &[u8],
    expected: &[u8],
) -> Result<(), CryptoError> {
    let got = checksum(key, cksumtype, usage, data)?;
    if got.len() == expected.len() && subtle::ConstantTimeEq::ct_eq(got.as_slice(), expected).into() {
        Ok(())
    } else {
        Err(CryptoError::Integrity)
    }
}
