//! aes128-cts-hmac-sha256-128 and aes256-cts-hmac-sha384-192 (RFC 8009): KDF-HMAC-SHA2 key
//! derivation (§3), encrypt = C ‖ H with C = CTS(Ke, confounder‖plaintext) and
//! H = HMAC(Ki, IV‖C) truncated (§5; the IV is the all-zero cipher state), checksum =
//! HMAC(Kc, data) truncated (§6).

use std::sync::OnceLock;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::aes_sha1::usage_constant;
use super::cts::{AesCipher, BLOCK};
use super::hmac_state::{KeyedHmac, Sha256, Sha384};
use super::CryptoError;

/// The all-zero initial cipher state that RFC 8009 §5 feeds into the integrity HMAC.
const ZERO_IV: [u8; BLOCK] = [0u8; BLOCK];

/// An HMAC-SHA-256 or HMAC-SHA-384 already keyed (zeroized on drop).
#[derive(Clone)]
pub(crate) enum Sha2Mac {
    Sha256(KeyedHmac<Sha256>),
    Sha384(KeyedHmac<Sha384>),
}

impl Sha2Mac {
    /// Keys HMAC-SHA-256 (`sha384 == false`, enctype 19) or HMAC-SHA-384 (enctype 20).
    pub(crate) fn new(sha384: bool, key: &[u8]) -> Self {
        if sha384 {
            Self::Sha384(KeyedHmac::new(key))
        } else {
            Self::Sha256(KeyedHmac::new(key))
        }
    }

    /// HMAC over the concatenation of `parts`, written into `out` (truncated to its length,
    /// at most the hash length). Returns the number of bytes written.
    pub(crate) fn mac_into(&self, parts: &[&[u8]], out: &mut [u8]) -> usize {
        match self {
            Self::Sha256(m) => m.mac_into(parts, out),
            Self::Sha384(m) => m.mac_into(parts, out),
        }
    }
}

/// KDF-HMAC-SHA2(key, label, k) of RFC 8009 §3: the first `out.len()` bytes of
/// HMAC(key, 00000001 ‖ label ‖ 00 ‖ k-in-bits as 32-bit big-endian).
pub(crate) fn kdf(base: &Sha2Mac, label: &[u8], out: &mut [u8]) {
    let bits = u32::try_from(out.len().saturating_mul(8))
        .unwrap_or(u32::MAX)
        .to_be_bytes();
    base.mac_into(&[&1u32.to_be_bytes(), label, &[0u8], &bits], out);
}

/// Ke as an expanded cipher and Ki as a keyed HMAC for one base key and usage; Kc on first use.
#[derive(Clone)]
pub(crate) struct AesSha2Keys {
    base: Sha2Mac,
    sha384: bool,
    usage: u32,
    ke: AesCipher,
    ki: Sha2Mac,
    kc: OnceLock<Sha2Mac>,
}

impl AesSha2Keys {
    /// Derives Ke and Ki. aes128-sha256: 16-byte key, Ke/Ki 128 bits; aes256-sha384: 32-byte
    /// key, Ke 256 bits, Ki 192 bits (RFC 8009 §5). `None` for a key of another length.
    pub(crate) fn new(key: &[u8], usage: u32) -> Option<Self> {
        let sha384 = match key.len() {
            16 => false,
            32 => true,
            _ => return None,
        };
        let base = Sha2Mac::new(sha384, key);
        let mut buf = Zeroizing::new([0u8; 32]);
        let ke_bytes = buf.get_mut(..key.len())?;
        kdf(&base, &usage_constant(usage, 0xAA), ke_bytes);
        let ke = AesCipher::new(ke_bytes)?;
        let ki_bytes = buf.get_mut(..Self::tag_len_for(sha384))?;
        kdf(&base, &usage_constant(usage, 0x55), ki_bytes);
        let ki = Sha2Mac::new(sha384, ki_bytes);
        Some(Self {
            base,
            sha384,
            usage,
            ke,
            ki,
            kc: OnceLock::new(),
        })
    }

    fn tag_len_for(sha384: bool) -> usize {
        if sha384 {
            24
        } else {
            16
        }
    }

    /// Length of the truncated HMAC (16 or 24 bytes).
    pub(crate) fn tag_len(&self) -> usize {
        Self::tag_len_for(self.sha384)
    }

    /// RFC 8009 §5 encryption with the given 16-byte confounder.
    pub(crate) fn encrypt(&self, confounder: &[u8; BLOCK], plaintext: &[u8]) -> Vec<u8> {
        let tag_len = self.tag_len();
        let mut out = Vec::with_capacity(BLOCK + plaintext.len() + tag_len);
        out.extend_from_slice(confounder);
        out.extend_from_slice(plaintext);
        self.ke.cts_encrypt(&mut out);
        let mut tag = [0u8; 24];
        let n = self.ki.mac_into(&[&ZERO_IV, &out], &mut tag[..tag_len]);
        out.extend_from_slice(&tag[..n]);
        out
    }

    /// RFC 8009 §5 decryption: checks the HMAC over IV‖C in constant time first (encrypt-then-MAC),
    /// then CTS-decrypts and strips the confounder.
    pub(crate) fn decrypt(
        &self,
        ciphertext: &[u8],
        etype: &'static str,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let tag_len = self.tag_len();
        if ciphertext.len() < BLOCK + tag_len {
            return Err(CryptoError::BadLength {
                etype,
                len: ciphertext.len(),
            });
        }
        let (body, tag) = ciphertext.split_at(ciphertext.len() - tag_len);
        let mut want = [0u8; 24];
        let n = self.ki.mac_into(&[&ZERO_IV, body], &mut want[..tag_len]);
        let ok: bool = want[..n].ct_eq(tag).into();
        if !ok {
            return Err(CryptoError::Integrity);
        }
        let mut out = Zeroizing::new(vec![0u8; body.len()]);
        self.ke.cts_decrypt(body, &mut out);
        out.drain(..BLOCK);
        Ok(out)
    }

    /// hmac-sha256-128-aes128 / hmac-sha384-192-aes256 (checksum types 19, 20; RFC 8009 §6).
    pub(crate) fn checksum(&self, data: &[u8]) -> Vec<u8> {
        let kc = self
            .kc
            .get_or_init(|| derive_kc(&self.base, self.sha384, self.usage));
        mac_truncated(kc, self.tag_len(), data)
    }
}

/// Kc = KDF-HMAC-SHA2(base, usage‖0x99, 128 or 192) as keyed HMAC state (RFC 8009 §5).
fn derive_kc(base: &Sha2Mac, sha384: bool, usage: u32) -> Sha2Mac {
    let mut buf = Zeroizing::new([0u8; 24]);
    let kc_bytes = &mut buf[..AesSha2Keys::tag_len_for(sha384)];
    kdf(base, &usage_constant(usage, 0x99), kc_bytes);
    Sha2Mac::new(sha384, kc_bytes)
}

fn mac_truncated(kc: &Sha2Mac, tag_len: usize, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; tag_len];
    let n = kc.mac_into(&[data], &mut out);
    out.truncate(n);
    out
}

/// One-shot RFC 8009 §6 checksum that derives only Kc; `None` for a key not of 16 or 32 bytes.
pub(crate) fn checksum_oneshot(key: &[u8], usage: u32, data: &[u8]) -> Option<Vec<u8>> {
    let sha384 = match key.len() {
        16 => false,
        32 => true,
        _ => return None,
    };
    let kc = derive_kc(&Sha2Mac::new(sha384, key), sha384, usage);
    Some(mac_truncated(&kc, AesSha2Keys::tag_len_for(sha384), data))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY128: &str = "3705d96080c17728a0e800eab6e0d23c";
    const KEY256: &str = "6d404d37faf79f9df0d33568d320669800eb4836472ea8a026d16b7182460c52";

    fn derive_hex(key: &str, constant: [u8; 5], len: usize) -> String {
        let key = hex::decode(key).unwrap();
        let base = Sha2Mac::new(key.len() == 32, &key);
        let mut out = vec![0u8; len];
        kdf(&base, &constant, &mut out);
        hex::encode(out)
    }

    #[test]
    fn rfc8009_a_aes128_sha256_key_derivation_matches() {
        assert_eq!(
            derive_hex(KEY128, usage_constant(2, 0x99), 16),
            "b31a018a48f54776f403e9a396325dc3"
        );
        assert_eq!(
            derive_hex(KEY128, usage_constant(2, 0xAA), 16),
            "9b197dd1e8c5609d6e67c3e37c62c72e"
        );
        assert_eq!(
            derive_hex(KEY128, usage_constant(2, 0x55), 16),
            "9fda0e56ab2d85e1569a688696c26a6c"
        );
    }

    #[test]
    fn rfc8009_a_aes256_sha384_key_derivation_matches() {
        assert_eq!(
            derive_hex(KEY256, usage_constant(2, 0x99), 24),
            "ef5718be86cc84963d8bbb5031e9f5c4ba41f28faf69e73d"
        );
        assert_eq!(
            derive_hex(KEY256, usage_constant(2, 0xAA), 32),
            "56ab22bee63d82d7bc5227f6773f8ea7a5eb1c825160c38312980c442e5c7e49"
        );
        assert_eq!(
            derive_hex(KEY256, usage_constant(2, 0x55), 24),
            "69b16514e3cd8e56b82010d5c73012b622c4d00ffc23ed1f"
        );
    }

    /// RFC 8009 Appendix A sample encryptions, key usage 2: (key, plaintext, confounder, ciphertext).
    const SAMPLES: [(&str, &str, &str, &str); 8] = [
        (KEY128, "", "7e5895eaf2672435bad817f545a37148", "ef85fb890bb8472f4dab20394dca781dad877eda39d50c870c0d5a0a8e48c718"),
        (
            KEY128,
            "000102030405",
            "7bca285e2fd4130fb55b1a5c83bc5b24",
            "84d7f30754ed987bab0bf3506beb09cfb55402cef7e6877ce99e247e52d16ed4421dfdf8976c",
        ),
        (
            KEY128,
            "000102030405060708090a0b0c0d0e0f",
            "56ab21713ff62c0a1457200f6fa9948f",
            "3517d640f50ddc8ad3628722b3569d2ae07493fa8263254080ea65c1008e8fc295fb4852e7d83e1e7c48c37eebe6b0d3",
        ),
        (
            KEY128,
            "000102030405060708090a0b0c0d0e0f1011121314",
            "a7a4e29a4728ce10664fb64e49ad3fac",
            "720f73b18d9859cd6ccb4346115cd336c70f58edc0c4437c5573544c31c813bce1e6d072c186b39a413c2f92ca9b8334a287ffcbfc",
        ),
        (
            KEY256,
            "",
            "f764e9fa15c276478b2c7d0c4e5f58e4",
            "41f53fa5bfe7026d91faf9be959195a058707273a96a40f0a01960621ac612748b9bbfbe7eb4ce3c",
        ),
        (
            KEY256,
            "000102030405",
            "b80d3251c1f6471494256ffe712d0b9a",
            "4ed7b37c2bcac8f74f23c1cf07e62bc7b75fb3f637b9f559c7f664f69eab7b6092237526ea0d1f61cb20d69d10f2",
        ),
        (
            KEY256,
            "000102030405060708090a0b0c0d0e0f",
            "53bf8a0d105265d4e276428624ce5e63",
            "bc47ffec7998eb91e8115cf8d19dac4bbbe2e163e87dd37f49beca92027764f68cf51f14d798c2273f35df574d1f932e40c4ff255b36a266",
        ),
        (
            KEY256,
            "000102030405060708090a0b0c0d0e0f1011121314",
            "763e65367e864f02f55153c7e3b58af1",
            "40013e2df58e8751957d2878bcd2d6fe101ccfd556cb1eae79db3c3ee86429f2b2a602ac86fef6ecb647d6295fae077a1feb517508d2c16b4192e01f62",
        ),
    ];

    #[test]
    fn rfc8009_a_sample_encryptions_match_with_their_confounders() {
        for (key, plain, conf, ct) in SAMPLES {
            let k = AesSha2Keys::new(&hex::decode(key).unwrap(), 2).unwrap();
            let plain = hex::decode(plain).unwrap();
            let conf: [u8; 16] = hex::decode(conf).unwrap().try_into().unwrap();
            let got = k.encrypt(&conf, &plain);
            assert_eq!(hex::encode(&got), ct);
            assert_eq!(k.decrypt(&got, "aes-sha2").unwrap().as_slice(), plain.as_slice());
        }
    }

    #[test]
    fn rfc8009_a_checksums_match() {
        let data = hex::decode("000102030405060708090a0b0c0d0e0f1011121314").unwrap();
        let k128 = AesSha2Keys::new(&hex::decode(KEY128).unwrap(), 2).unwrap();
        assert_eq!(
            hex::encode(k128.checksum(&data)),
            "d78367186643d67b411cba9139fc1dee"
        );
        let k256 = AesSha2Keys::new(&hex::decode(KEY256).unwrap(), 2).unwrap();
        assert_eq!(
            hex::encode(k256.checksum(&data)),
            "45ee791567eefca37f4ac1e0222de80d43c3bfa06699672a"
        );
    }
}
