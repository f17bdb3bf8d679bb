//! rc4-hmac (enctype 23, RFC 4757) for legacy domains: K1 = HMAC-MD5(key, usage), checksum =
//! HMAC-MD5(K1, confounder‖plaintext), K3 = HMAC-MD5(K1, checksum), ciphertext = checksum ‖
//! RC4(K3, confounder(8)‖plaintext) (§4); and the hmac-md5 keyed checksum, type -138 (§4).

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use rc4::{consts::U16, KeyInit, Rc4, StreamCipher};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{hmac_with_key, CryptoError};

/// Length of the RC4-HMAC confounder.
pub(crate) const CONFOUNDER_LEN: usize = 8;
/// Length of the HMAC-MD5 checksum that leads the ciphertext.
pub(crate) const CHECKSUM_LEN: usize = 16;

/// RFC 4757 §3 key-usage translation: Microsoft's numbers for AS-REP (3 → 8), TGS-REP with a
/// subkey (9 → 8) and GSS wrap signatures (23 → 13); every other usage is unchanged.
pub(crate) fn translate_usage(usage: u32) -> u32 {
    match usage {
        3 => 8,
        9 => 8,
        23 => 13,
        u => u,
    }
}

/// A 16-byte key held as bytes, zeroized on drop.
type Key16 = Zeroizing<[u8; 16]>;

/// K1 and (on first checksum) Ksign for one key and usage, kept as key bytes (zeroized on drop;
/// the HMAC-MD5 states are keyed per use: rc4-hmac is for legacy domains, not the hot path).
#[derive(Clone)]
pub(crate) struct Rc4Keys {
    /// K1 = HMAC-MD5(key, usage as little-endian u32).
    k1: Key16,
    /// The base key, for deriving Ksign.
    base: Zeroizing<Vec<u8>>,
    /// Ksign = HMAC-MD5(key, "signaturekey\0"), on first checksum.
    ksign: OnceLock<Key16>,
    /// The translated usage, little-endian, for the checksum.
    usage_le: [u8; 4],
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> Key16 {
    let mut m: Hmac<Md5> = hmac_with_key(key);
    for p in parts {
        m.update(p);
    }
    Zeroizing::new(<[u8; 16]>::from(m.finalize().into_bytes()))
}

impl Rc4Keys {
    /// Derives K1 of a 16-byte rc4-hmac key for `usage`.
    pub(crate) fn new(key: &[u8], usage: u32) -> Self {
        let base = Zeroizing::new(key.to_vec());
        let usage_le = translate_usage(usage).to_le_bytes();
        Self {
            k1: hmac_md5(key, &[&usage_le]),
            base,
            ksign: OnceLock::new(),
            usage_le,
        }
    }

    fn rc4_with_k3(&self, checksum: &[u8]) -> Rc4<U16> {
        let k3 = hmac_md5(&self.k1[..], &[checksum]);
        Rc4::<U16>::new(&(*k3).into())
    }

    /// RFC 4757 §4 encryption with the given 8-byte confounder.
    pub(crate) fn encrypt(&self, confounder: &[u8; CONFOUNDER_LEN], plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(CHECKSUM_LEN + CONFOUNDER_LEN + plaintext.len());
        let checksum = *hmac_md5(&self.k1[..], &[confounder, plaintext]);
        out.extend_from_slice(&checksum);
        out.extend_from_slice(confounder);
        out.extend_from_slice(plaintext);
        self.rc4_with_k3(&checksum)
            .apply_keystream(&mut out[CHECKSUM_LEN..]);
        out
    }

    /// RFC 4757 §4 decryption: RC4-decrypts, checks the HMAC in constant time, strips the confounder.
    pub(crate) fn decrypt(
        &self,
        ciphertext: &[u8],
        etype: &'static str,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if ciphertext.len() < CHECKSUM_LEN + CONFOUNDER_LEN {
            return Err(CryptoError::BadLength {
                etype,
                len: ciphertext.len(),
            });
        }
        let (checksum, body) = ciphertext.split_at(CHECKSUM_LEN);
        let mut out = Zeroizing::new(body.to_vec());
        self.rc4_with_k3(checksum).apply_keystream(&mut out);
        let want = hmac_md5(&self.k1[..], &[&out[..]]);
        let ok: bool = want.as_slice().ct_eq(checksum).into();
        if !ok {
            return Err(CryptoError::Integrity);
        }
        out.drain(..CONFOUNDER_LEN);
        Ok(out)
    }

    /// The hmac-md5 checksum (type -138, RFC 4757 §4):
    /// HMAC-MD5(Ksign, MD5(usage as little-endian u32 ‖ data)).
    pub(crate) fn checksum(&self, data: &[u8]) -> Vec<u8> {
        sign(
            self.ksign.get_or_init(|| derive_ksign(&self.base[..])),
            self.usage_le,
            data,
        )
    }
}

fn sign(ksign: &Key16, usage_le: [u8; 4], data: &[u8]) -> Vec<u8> {
    let tmp = Md5::new().chain_update(usage_le).chain_update(data).finalize();
    hmac_md5(&ksign[..], &[&tmp]).to_vec()
}

/// One-shot hmac-md5 checksum (type -138, RFC 4757 §4) that derives only Ksign.
pub(crate) fn checksum_oneshot(key: &[u8], usage: u32, data: &[u8]) -> Vec<u8> {
    sign(&derive_ksign(key), translate_usage(usage).to_le_bytes(), data)
}

/// Ksign = HMAC-MD5(key, "signaturekey\0") (RFC 4757 §4).
fn derive_ksign(key: &[u8]) -> Key16 {
    hmac_md5(key, &[b"signaturekey\0"])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MIT krb5 `t_decrypt.c` rc4-hmac known answers: (key, usage, plaintext, ciphertext).
    const MIT_VECTORS: [(&str, u32, &str, &str); 5] = [
        ("f81fec39255f5784e850c4377c88bd85", 0, "", "02c1eb15586144122ec717763dd348bf00434ddc6585954c"),
        ("67d1300d281223867f9647ff48721273", 1, "1", "6156e0cc04e0a0874f9fda008f498a7adbbc80b70b14dddbc0"),
        (
            "3e40ab6093695281b3ac1a9304224d98",
            2,
            "9 bytesss",
            "0f9ad121d99d4a09448e4f1f718c4f5cbe6096262c66f29df232a87c9f98755d55",
        ),
        (
            "4ba2fbf0379faed87a254d3b353d5a7e",
            3,
            "13 bytes byte",
            "612c57568b17a70352bae8cf26fb9459a6f3353cd35fd439db3107cbec765d326dfc04c1dd",
        ),
        (
            "68f263db3fce15d031c9eab02d67107a",
            4,
            "30 bytes bytes bytes bytes byt",
            "95f9047c3ad75891c2e9b04b16566dc8b6eb9ce4231afb2542ef87a7b5a0f260a99f0460508de0cecc632d07c354124e46c5d2234eb8",
        ),
    ];

    #[test]
    fn mit_rc4_known_ciphertexts_decrypt_and_reencrypt_identically() {
        for (key, usage, plain, ct) in MIT_VECTORS {
            let k = Rc4Keys::new(&hex::decode(key).unwrap(), usage);
            let ct = hex::decode(ct).unwrap();
            assert_eq!(
                k.decrypt(&ct, "rc4").unwrap().as_slice(),
                plain.as_bytes(),
                "usage {usage}"
            );
            // The confounder is the first 8 bytes of the RC4-decrypted body.
            let mut raw = ct[CHECKSUM_LEN..].to_vec();
            k.rc4_with_k3(&ct[..CHECKSUM_LEN]).apply_keystream(&mut raw);
            let conf: [u8; 8] = raw[..8].try_into().unwrap();
            assert_eq!(k.encrypt(&conf, plain.as_bytes()), ct);
        }
    }

    #[test]
    fn mit_hmac_md5_checksum_minus_138_matches() {
        let k = Rc4Keys::new(&hex::decode("f7d3a155af5e238a0b7a871a96ba2ab2").unwrap(), 6);
        assert_eq!(
            hex::encode(k.checksum(b"seventeen eighteen nineteen twenty")),
            "eb38cc97e2230f59da4117dc5859d7ec"
        );
    }

    #[test]
    fn usage_translation_follows_rfc4757() {
        assert_eq!(translate_usage(3), 8);
        assert_eq!(translate_usage(9), 8);
        assert_eq!(translate_usage(23), 13);
        assert_eq!(translate_usage(11), 11);
        assert_eq!(translate_usage(2), 2);
    }
}
