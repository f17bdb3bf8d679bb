//! string-to-key (RFC 3961 §3): passwords to keys. AES-SHA1 per RFC 3962 §4 (PBKDF2-HMAC-SHA1,
//! then DK(tkey, "kerberos")), AES-SHA2 per RFC 8009 §4 (PBKDF2-HMAC-SHA256/384 over
//! enctype-name‖0x00‖salt, then KDF(tkey, "kerberos")), rc4-hmac per RFC 4757 §2
//! (MD4 of the UTF-16LE password, salt ignored).

use md4::{Digest, Md4};
use sha1::Sha1;
use sha2::{Sha256, Sha384};
use zeroize::Zeroizing;

use super::aes_sha1;
use super::aes_sha2::{self, Sha2Mac};
use super::cts::AesCipher;
use super::{CryptoError, EncType, Key};

/// RFC 3962 §4 default PBKDF2 iteration count for aes-sha1.
pub const AES_SHA1_DEFAULT_ITERATIONS: u32 = 4096;
/// RFC 8009 §4 default PBKDF2 iteration count for aes-sha2.
pub const AES_SHA2_DEFAULT_ITERATIONS: u32 = 32768;
/// The largest iteration count accepted, as in MIT krb5 (`s2k_pbkdf2.c`: below 2^24). A count
/// of 0 means 2^32 in RFC 3962 and is refused too: both would stall the caller for minutes.
pub const MAX_ITERATIONS: u32 = 0x00ff_ffff;

/// The string-to-key of RFC 3961 §3 for `etype`; see [`super::string_to_key`].
pub(crate) fn string_to_key(
    etype: EncType,
    password: &[u8],
    salt: &[u8],
    iterations: Option<u32>,
) -> Result<Key, CryptoError> {
    match etype {
        EncType::Aes128CtsHmacSha196 | EncType::Aes256CtsHmacSha196 => {
            let iter = check_iterations(iterations.unwrap_or(AES_SHA1_DEFAULT_ITERATIONS))?;
            let len = etype.key_len();
            let mut tkey = Zeroizing::new([0u8; 32]);
            let tkey = &mut tkey[..len];
            pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iter, tkey);
            let base = AesCipher::new(tkey).ok_or(CryptoError::Unsupported(etype.as_i32()))?;
            let mut key = Zeroizing::new([0u8; 32]);
            aes_sha1::derive(&base, b"kerberos", &mut key[..len]);
            Key::new(etype, &key[..len])
        }
        EncType::Aes128CtsHmacSha256128 | EncType::Aes256CtsHmacSha384192 => {
            let iter = check_iterations(iterations.unwrap_or(AES_SHA2_DEFAULT_ITERATIONS))?;
            let len = etype.key_len();
            let sha384 = etype == EncType::Aes256CtsHmacSha384192;
            let mut saltp = Zeroizing::new(Vec::with_capacity(etype.name().len() + 1 + salt.len()));
            saltp.extend_from_slice(etype.name().as_bytes());
            saltp.push(0);
            saltp.extend_from_slice(salt);
            let mut tkey = Zeroizing::new([0u8; 32]);
            let tkey = &mut tkey[..len];
            if sha384 {
                pbkdf2::pbkdf2_hmac::<Sha384>(password, &saltp, iter, tkey);
            } else {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, &saltp, iter, tkey);
            }
            let mut key = Zeroizing::new([0u8; 32]);
            aes_sha2::kdf(&Sha2Mac::new(sha384, tkey), b"kerberos", &mut key[..len]);
            Key::new(etype, &key[..len])
        }
        EncType::Rc4Hmac => {
            let password = std::str::from_utf8(password)
                .map_err(|_| CryptoError::StringToKey("password is not UTF-8"))?;
            let mut md4 = Md4::new();
            for unit in password.encode_utf16() {
                md4.update(unit.to_le_bytes());
            }
            let key = Zeroizing::new(<[u8; 16]>::from(md4.finalize()));
            Key::new(etype, &key[..])
        }
    }
}

fn check_iterations(iter: u32) -> Result<u32, CryptoError> {
    if iter == 0 || iter > MAX_ITERATIONS {
        Err(CryptoError::StringToKey(
            "PBKDF2 iteration count is 0 or above 2^24 - 1",
        ))
    } else {
        Ok(iter)
    }
}

/// Derives one key per enctype from a password and salt with the default iteration counts
/// (RFC 3962 §4, RFC 8009 §4, RFC 4757 §2), in the order given: what a keytab writer needs
/// after a password change.
pub fn derive_keys(password: &[u8], salt: &[u8], enctypes: &[EncType]) -> Result<Vec<Key>, CryptoError> {
    enctypes
        .iter()
        .map(|&e| string_to_key(e, password, salt, None))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s2k(etype: EncType, password: &str, salt: &[u8], iter: u32) -> String {
        hex::encode(
            string_to_key(etype, password.as_bytes(), salt, Some(iter))
                .unwrap()
                .expose_bytes(),
        )
    }

    /// RFC 3962 Appendix B: (iterations, passphrase, salt, aes128 key, aes256 key).
    const RFC3962_B: [(u32, &str, &[u8], &str, &str); 6] = [
        (
            1,
            "password",
            b"ATHENA.MIT.EDUraeburn",
            "42263c6e89f4fc28b8df68ee09799f15",
            "fe697b52bc0d3ce14432ba036a92e65bbb52280990a2fa27883998d72af30161",
        ),
        (
            2,
            "password",
            b"ATHENA.MIT.EDUraeburn",
            "c651bf29e2300ac27fa469d693bdda13",
            "a2e16d16b36069c135d5e9d2e25f896102685618b95914b467c67622225824ff",
        ),
        (
            1200,
            "password",
            b"ATHENA.MIT.EDUraeburn",
            "4c01cd46d632d01e6dbe230a01ed642a",
            "55a6ac740ad17b4846941051e1e8b0a7548d93b0ab30a8bc3ff16280382b8c2a",
        ),
        (
            5,
            "password",
            b"\x12\x34\x56\x78\x78\x56\x34\x12",
            "e9b23d52273747dd5c35cb55be619d8e",
            "97a4e786be20d81a382d5ebc96d5909cabcdadc87ca48f574504159f16c36e31",
        ),
        (
            1200,
            "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
            b"pass phrase equals block size",
            "59d1bb789a828b1aa54ef9c2883f69ed",
            "89adee3608db8bc71f1bfbfe459486b05618b70cbae22092534e56c553ba4b34",
        ),
        (
            1200,
            "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
            b"pass phrase exceeds block size",
            "cb8005dc5f90179a7f02104c0018751d",
            "d78c5c9cb872a8c9dad4697f0bb5b2d21496c82beb2caeda2112fceea057401b",
        ),
    ];

    #[test]
    fn rfc3962_b_string_to_key_vectors_match() {
        for (iter, pw, salt, k128, k256) in RFC3962_B {
            assert_eq!(
                s2k(EncType::Aes128CtsHmacSha196, pw, salt, iter),
                k128,
                "aes128 iter {iter}"
            );
            assert_eq!(
                s2k(EncType::Aes256CtsHmacSha196, pw, salt, iter),
                k256,
                "aes256 iter {iter}"
            );
        }
    }

    #[test]
    fn rfc3962_b_g_clef_passphrase_matches() {
        let pw = "\u{1D11E}";
        let salt = b"EXAMPLE.COMpianist";
        assert_eq!(
            s2k(EncType::Aes128CtsHmacSha196, pw, salt, 50),
            "f149c1f2e154a73452d43e7fe62a56e5"
        );
        assert_eq!(
            s2k(EncType::Aes256CtsHmacSha196, pw, salt, 50),
            "4b6d9839f84406df1f09cc166db4b83c571848b784a3d6bdc346589a3e393f9e"
        );
    }

    #[test]
    fn rfc8009_a_string_to_key_vectors_match() {
        let mut salt = hex::decode("10df9dd783e5bc8acea1730e74355f61").unwrap();
        salt.extend_from_slice(b"ATHENA.MIT.EDUraeburn");
        assert_eq!(
            s2k(EncType::Aes128CtsHmacSha256128, "password", &salt, 32768),
            "089bca48b105ea6ea77ca5d2f39dc5e7"
        );
        assert_eq!(
            s2k(EncType::Aes256CtsHmacSha384192, "password", &salt, 32768),
            "45bd806dbf6a833a9cffc1c94589a222367a79bc21c413718906e9f578a78467"
        );
    }

    #[test]
    fn rc4_key_is_md4_of_utf16le_password() {
        // The NT hash of "password" (a well-known value), and MD4("") for the empty password.
        assert_eq!(
            s2k(EncType::Rc4Hmac, "password", b"ignored", 1),
            "8846f7eaee8fb117ad06bdd830b7586c"
        );
        assert_eq!(
            s2k(EncType::Rc4Hmac, "", b"", 1),
            "31d6cfe0d16ae931b73c59d7e0c089c0"
        );
    }

    #[test]
    fn rc4_refuses_a_non_utf8_password() {
        assert!(string_to_key(EncType::Rc4Hmac, b"\xff\xfe", b"", None).is_err());
    }

    #[test]
    fn zero_and_huge_iteration_counts_are_refused() {
        for iter in [0, MAX_ITERATIONS + 1, u32::MAX] {
            let r = string_to_key(EncType::Aes256CtsHmacSha196, b"pw", b"salt", Some(iter));
            assert!(matches!(r, Err(CryptoError::StringToKey(_))), "iterations {iter}");
        }
    }

    #[test]
    fn derive_keys_gives_one_key_per_enctype_in_order() {
        let etypes = [EncType::Rc4Hmac, EncType::Aes128CtsHmacSha196];
        let keys = derive_keys(b"password", b"ATHENA.MIT.EDUraeburn", &etypes).unwrap();
        assert_eq!(keys.iter().map(Key::etype).collect::<Vec<_>>(), etypes);
    }
}
