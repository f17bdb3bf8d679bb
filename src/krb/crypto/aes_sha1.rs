//! aes128-cts-hmac-sha1-96 and aes256-cts-hmac-sha1-96 (RFC 3962) under the RFC 3961 simplified
//! profile: DK key derivation (§5.1), encrypt = CTS(Ke, confounder‖plaintext) ‖
//! HMAC-SHA1(Ki, confounder‖plaintext)[..12], checksum = HMAC-SHA1(Kc, data)[..12].

use std::sync::OnceLock;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::cts::{AesCipher, BLOCK};
use super::hmac_state::{KeyedHmac, Sha1};
use super::nfold::{fold_usage_constant, nfold};
use super::CryptoError;

/// HMAC-SHA1 keyed once, zeroized on drop.
type HmacSha1 = KeyedHmac<Sha1>;

/// Length of the truncated HMAC-SHA1-96 tag.
pub(crate) const TAG_LEN: usize = 12;

/// RFC 3961 §5.1 DK for AES: DR(base, constant) = E(n-fold(constant)), E(that), … truncated
/// to `out.len()` (16 or 32) bytes; random-to-key is the identity for AES (RFC 3962 §6).
pub(crate) fn derive(base: &AesCipher, constant: &[u8], out: &mut [u8]) {
    let mut folded = [0u8; BLOCK];
    nfold(constant, &mut folded);
    derive_folded(base, folded, out);
}

/// DK from an already n-folded constant (see [`fold_usage_constant`]).
fn derive_folded(base: &AesCipher, folded: [u8; BLOCK], out: &mut [u8]) {
    let mut block = Zeroizing::new(folded);
    for chunk in out.chunks_mut(BLOCK) {
        base.encrypt_block(&mut block);
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

/// DK(base, usage‖kind), the usage constants of RFC 3961 §5.3.
fn derive_usage(base: &AesCipher, usage: u32, kind: u8, out: &mut [u8]) {
    derive_folded(base, fold_usage_constant(usage, kind), out);
}

/// The 5-byte well-known constant of RFC 3961 §5.3: usage (big-endian) ‖ 0x99 / 0xAA / 0x55.
pub(crate) fn usage_constant(usage: u32, kind: u8) -> [u8; 5] {
    let u = usage.to_be_bytes();
    [u[0], u[1], u[2], u[3], kind]
}

/// Ke as an expanded cipher and Ki as a keyed HMAC, derived once for one base key and usage;
/// Kc is derived on the first checksum.
#[derive(Clone)]
pub(crate) struct AesSha1Keys {
    base: AesCipher,
    key_len: usize,
    usage: u32,
    ke: AesCipher,
    ki: HmacSha1,
    kc: OnceLock<HmacSha1>,
}

impl AesSha1Keys {
    /// Derives Ke and Ki of a 16- or 32-byte base key for `usage`; `None` for other lengths.
    pub(crate) fn new(key: &[u8], usage: u32) -> Option<Self> {
        let base = AesCipher::new(key)?;
        let key_len = key.len();
        let mut buf = Zeroizing::new([0u8; 32]);
        let derived = buf.get_mut(..key_len)?;
        derive_usage(&base, usage, 0xAA, derived);
        let ke = AesCipher::new(derived)?;
        derive_usage(&base, usage, 0x55, derived);
        let ki = HmacSha1::new(derived);
        Some(Self {
            base,
            key_len,
            usage,
            ke,
            ki,
            kc: OnceLock::new(),
        })
    }

    /// RFC 3962 encryption with the given 16-byte confounder.
    pub(crate) fn encrypt(&self, confounder: &[u8; BLOCK], plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(BLOCK + plaintext.len() + TAG_LEN);
        out.extend_from_slice(confounder);
        out.extend_from_slice(plaintext);
        let mut tag = [0u8; TAG_LEN];
        self.ki.mac_into(&[&out], &mut tag);
        self.ke.cts_encrypt(&mut out);
        out.extend_from_slice(&tag);
        out
    }

    /// RFC 3962 decryption: CTS-decrypts, checks the HMAC in constant time, strips the confounder.
    pub(crate) fn decrypt(
        &self,
        ciphertext: &[u8],
        etype: &'static str,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let bad_len = || CryptoError::BadLength {
            etype,
            len: ciphertext.len(),
        };
        if ciphertext.len() < BLOCK + TAG_LEN {
            return Err(bad_len());
        }
        let (body, tag) = ciphertext.split_at(ciphertext.len() - TAG_LEN);
        let mut out = Zeroizing::new(vec![0u8; body.len()]);
        self.ke.cts_decrypt(body, &mut out);
        let mut want = [0u8; TAG_LEN];
        self.ki.mac_into(&[&out], &mut want);
        let ok: bool = want.ct_eq(tag).into();
        if !ok {
            return Err(CryptoError::Integrity);
        }
        out.drain(..BLOCK);
        Ok(out)
    }

    /// hmac-sha1-96-aes128 / -aes256 (checksum types 15, 16; RFC 3962 §7).
    pub(crate) fn checksum(&self, data: &[u8]) -> Vec<u8> {
        let kc = self
            .kc
            .get_or_init(|| derive_kc(&self.base, self.key_len, self.usage));
        mac_96(kc, data)
    }
}

/// Kc = DK(base, usage‖0x99) as keyed HMAC state (RFC 3961 §5.3).
fn derive_kc(base: &AesCipher, key_len: usize, usage: u32) -> HmacSha1 {
    let mut buf = Zeroizing::new([0u8; 32]);
    let derived = &mut buf[..key_len.min(32)];
    derive_usage(base, usage, 0x99, derived);
    HmacSha1::new(derived)
}

fn mac_96(kc: &HmacSha1, data: &[u8]) -> Vec<u8> {
    let mut tag = vec![0u8; TAG_LEN];
    kc.mac_into(&[data], &mut tag);
    tag
}

/// One-shot hmac-sha1-96-aes checksum that derives only Kc (RFC 3962 §7); `None` for a key
/// that is not 16 or 32 bytes.
pub(crate) fn checksum_oneshot(key: &[u8], usage: u32, data: &[u8]) -> Option<Vec<u8>> {
    let base = AesCipher::new(key)?;
    Some(mac_96(&derive_kc(&base, key.len(), usage), data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(key_hex: &str, usage: u32) -> AesSha1Keys {
        AesSha1Keys::new(&hex::decode(key_hex).unwrap(), usage).unwrap()
    }

    /// MIT krb5 `t_decrypt.c` known answers: (key, usage, plaintext, ciphertext).
    const MIT_VECTORS: [(&str, u32, &str, &str); 10] = [
        ("5a5c0f0ba54f3828b2195e66ca24a289", 0, "", "49ff8e11c173d9583a3254fbe7b1f1df36c538e8416784a1672e6676"),
        ("98450e3f3baa13f5c99beb936981b06f", 1, "1", "f86742f537b35dc2174a4dbaa920faf9042090b065e1ebb1cad9a65394"),
        (
            "9062430c8cda3388922e6d6a509f5b7a",
            2,
            "9 bytesss",
            "68fb9679601f45c78857b2bf820fd6e53eca8d42fd4b1d7024a09205abb7cd2ec26c355d2f",
        ),
        (
            "033ee6502c54fd23e27791e987983827",
            3,
            "13 bytes byte",
            "ec366d0327a933bf49330e650e49bc6b974637fe80bf532fe51795b4809718e6194724db948d1fd637",
        ),
        (
            "dceeb70b3de76562e689226c76429148",
            4,
            "30 bytes bytes bytes bytes byt",
            "c96081032d5d8eeb7e32b4089f789d0faa481dea74c0f97cbf3146ddfcf8e800156ecb532fc203e30ff600b63b350939fece510f02d7ff1e7bac",
        ),
        (
            "17f275f2954f2ed1f90c377ba7f4d6a369aa0136e0bf0c927ad6133c693759a9",
            0,
            "",
            "e5094c55ee7b38262e2b044280b069379a95bf95bd8376fb3281b435",
        ),
        (
            "b9477e1ff0329c0050e20ce6c72d2dff27e8fe541ab0954429a9cb5b4f7b1e2a",
            1,
            "1",
            "406150b97aeb76d43b36b62cc1ecdfbe6f40e95755e0beb5c27825f3a4",
        ),
        (
            "b1ae4cd8462aff1677053cc9279aac30b796fb81ce21474dd3ddbcfea4ec76d7",
            2,
            "9 bytesss",
            "09957aa25fcaf88f7b39e4406e633012d5fea21853f6478da7065caef41fd454a40824eec5",
        ),
        (
            "e5a72be9b7926c1225bafef9c1872e7ba4cdb2b17893d84abd90acdd8764d966",
            3,
            "13 bytes byte",
            "d8f1aafeec84587cc3e700a774e56651a6d693e174ec4473b5e6d96f80297a653fb818ad893e719f96",
        ),
        (
            "f1c795e9248a09338d82c3f8d5b567040b0110736845041347235b1404231398",
            4,
            "30 bytes bytes bytes bytes byt",
            "d1137a4d634cfece924dbc3bf6790648bd5cff7de0e7b99460211d0daef3d79a295c688858f3b34b9cbd6eebae81daf6b734d4d498b6714f1c1d",
        ),
    ];

    #[test]
    fn mit_known_ciphertexts_decrypt_and_reencrypt_identically() {
        for (key, usage, plain, ct) in MIT_VECTORS {
            let k = keys(key, usage);
            let ct = hex::decode(ct).unwrap();
            let got = k.decrypt(&ct, "aes-sha1").unwrap();
            assert_eq!(got.as_slice(), plain.as_bytes(), "usage {usage}");
            // Recover the confounder through the raw CTS layer and encrypt again.
            let mut raw = vec![0u8; ct.len() - TAG_LEN];
            k.ke.cts_decrypt(&ct[..ct.len() - TAG_LEN], &mut raw);
            let conf: [u8; 16] = raw[..16].try_into().unwrap();
            assert_eq!(k.encrypt(&conf, plain.as_bytes()), ct);
        }
    }

    #[test]
    fn mit_hmac_sha1_96_aes128_checksum_matches() {
        let k = keys("9062430c8cda3388922e6d6a509f5b7a", 3);
        let sum = k.checksum(b"eight nine ten eleven twelve thirteen");
        assert_eq!(hex::encode(sum), "01a4b088d45628f6946614e3");
    }

    #[test]
    fn mit_hmac_sha1_96_aes256_checksum_matches() {
        let k = keys(
            "b1ae4cd8462aff1677053cc9279aac30b796fb81ce21474dd3ddbcfea4ec76d7",
            4,
        );
        assert_eq!(hex::encode(k.checksum(b"fourteen")), "e08739e3279e2903ec8e3836");
    }

    #[test]
    fn exactly_one_block_of_ciphertext_body_decrypts() {
        let k = keys("9062430c8cda3388922e6d6a509f5b7a", 2);
        let ct = k.encrypt(&[9u8; 16], b"");
        assert_eq!(ct.len(), 16 + TAG_LEN);
        assert!(k.decrypt(&ct, "aes128").unwrap().is_empty());
    }
}
