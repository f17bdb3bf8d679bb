//! HMAC (RFC 2104) with its keyed state precomputed and zeroized on drop.
//!
//! A cached HMAC key is worth the key itself: the hash states after absorbing `K ⊕ ipad` and
//! `K ⊕ opad` let anyone compute the MAC. The `hmac` crate's keyed types cannot be wiped, so the
//! derived keys kedge keeps for the life of a key set (Ki, Kc of the ASA keys) hold these two
//! states as plain word arrays here, zeroized when dropped, and hash from them with the hash
//! crates' block functions (`sha1::compress`, `sha2::compress256` / `compress512`: SHA-NI where
//! the CPU has it). Each MAC's working state and intermediate digest are wiped as well.

use sha1::digest::generic_array::GenericArray;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A Merkle–Damgård hash given by its block function (FIPS 180-4).
pub(crate) trait BlockHash {
    /// Chaining state.
    type State: Copy + Zeroize;
    /// Block size in bytes (64 or 128).
    const BLOCK: usize;
    /// Digest length in bytes.
    const OUT: usize;
    /// Bytes of the length field that ends the padding (8 or 16).
    const LEN_BYTES: usize;
    /// The initial chaining value.
    fn init() -> Self::State;
    /// Absorbs one block (exactly `BLOCK` bytes).
    fn compress(state: &mut Self::State, block: &[u8]);
    /// Writes the big-endian digest (first `out.len()` bytes, at most `OUT`).
    fn output(state: &Self::State, out: &mut [u8]);
}

/// SHA-1.
pub(crate) struct Sha1;
/// SHA-256.
pub(crate) struct Sha256;
/// SHA-384.
pub(crate) struct Sha384;

fn out_words_u32(state: &[u32], out: &mut [u8]) {
    for (chunk, w) in out.chunks_mut(4).zip(state) {
        chunk.copy_from_slice(&w.to_be_bytes()[..chunk.len()]);
    }
}

impl BlockHash for Sha1 {
    type State = [u32; 5];
    const BLOCK: usize = 64;
    const OUT: usize = 20;
    const LEN_BYTES: usize = 8;
    fn init() -> Self::State {
        [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0]
    }
    fn compress(state: &mut Self::State, block: &[u8]) {
        sha1::compress(state, std::slice::from_ref(GenericArray::from_slice(block)));
    }
    fn output(state: &Self::State, out: &mut [u8]) {
        out_words_u32(state, out)
    }
}

impl BlockHash for Sha256 {
    type State = [u32; 8];
    const BLOCK: usize = 64;
    const OUT: usize = 32;
    const LEN_BYTES: usize = 8;
    fn init() -> Self::State {
        [
            0x6a09_e667,
            0xbb67_ae85,
            0x3c6e_f372,
            0xa54f_f53a,
            0x510e_527f,
            0x9b05_688c,
            0x1f83_d9ab,
            0x5be0_cd19,
        ]
    }
    fn compress(state: &mut Self::State, block: &[u8]) {
        sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
    }
    fn output(state: &Self::State, out: &mut [u8]) {
        out_words_u32(state, out)
    }
}

impl BlockHash for Sha384 {
    type State = [u64; 8];
    const BLOCK: usize = 128;
    const OUT: usize = 48;
    const LEN_BYTES: usize = 16;
    fn init() -> Self::State {
        [
            0xcbbb_9d5d_c105_9ed8,
            0x629a_292a_367c_d507,
            0x9159_015a_3070_dd17,
            0x152f_ecd8_f70e_5939,
            0x6733_2667_ffc0_0b31,
            0x8eb4_4a87_6858_1511,
            0xdb0c_2e0d_64f9_8fa7,
            0x47b5_481d_befa_4fa4,
        ]
    }
    fn compress(state: &mut Self::State, block: &[u8]) {
        sha2::compress512(state, std::slice::from_ref(GenericArray::from_slice(block)));
    }
    fn output(state: &Self::State, out: &mut [u8]) {
        for (chunk, w) in out.chunks_mut(8).zip(state) {
            chunk.copy_from_slice(&w.to_be_bytes()[..chunk.len()]);
        }
    }
}

/// The largest block of the hashes above.
const MAX_BLOCK: usize = 128;
/// The largest digest of the hashes above.
const MAX_OUT: usize = 48;

/// A hash in progress from a given state; wiped when dropped.
struct Running<H: BlockHash> {
    state: H::State,
    buf: [u8; MAX_BLOCK],
    fill: usize,
    total: u64,
}

impl<H: BlockHash> Running<H> {
    fn from(state: H::State, already: u64) -> Self {
        Self {
            state,
            buf: [0; MAX_BLOCK],
            fill: 0,
            total: already,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.fill > 0 {
            let take = (H::BLOCK - self.fill).min(data.len());
            self.buf[self.fill..self.fill + take].copy_from_slice(&data[..take]);
            self.fill += take;
            data = &data[take..];
            if self.fill < H::BLOCK {
                return;
            }
            H::compress(&mut self.state, &self.buf[..H::BLOCK]);
            self.fill = 0;
        }
        let mut blocks = data.chunks_exact(H::BLOCK);
        for b in &mut blocks {
            H::compress(&mut self.state, b);
        }
        let rest = blocks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.fill = rest.len();
    }

    /// Pads, and writes the digest into `out` (at most `OUT` bytes).
    fn finish(mut self, out: &mut [u8]) {
        let bits = u128::from(self.total) * 8;
        self.buf[self.fill] = 0x80;
        self.buf[self.fill + 1..H::BLOCK].fill(0);
        if self.fill + 1 > H::BLOCK - H::LEN_BYTES {
            H::compress(&mut self.state, &self.buf[..H::BLOCK]);
            self.buf[..H::BLOCK].fill(0);
        }
        let len = bits.to_be_bytes();
        self.buf[H::BLOCK - H::LEN_BYTES..H::BLOCK].copy_from_slice(&len[16 - H::LEN_BYTES..]);
        H::compress(&mut self.state, &self.buf[..H::BLOCK]);
        H::output(&self.state, out);
    }
}

impl<H: BlockHash> Drop for Running<H> {
    fn drop(&mut self) {
        self.state.zeroize();
        self.buf.zeroize();
    }
}

/// HMAC-H keyed once: the states after `K ⊕ ipad` and `K ⊕ opad`. Zeroized on drop.
pub(crate) struct KeyedHmac<H: BlockHash> {
    inner: H::State,
    outer: H::State,
}

impl<H: BlockHash> Clone for KeyedHmac<H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner,
            outer: self.outer,
        }
    }
}

impl<H: BlockHash> Zeroize for KeyedHmac<H> {
    fn zeroize(&mut self) {
        self.inner.zeroize();
        self.outer.zeroize();
    }
}

impl<H: BlockHash> Drop for KeyedHmac<H> {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl<H: BlockHash> ZeroizeOnDrop for KeyedHmac<H> {}

impl<H: BlockHash> KeyedHmac<H> {
    /// Keys HMAC-H with `key` (a key longer than the block is hashed first, RFC 2104 §2).
    pub(crate) fn new(key: &[u8]) -> Self {
        let mut block = zeroize::Zeroizing::new([0u8; MAX_BLOCK]);
        if key.len() > H::BLOCK {
            let mut h = Running::<H>::from(H::init(), 0);
            h.update(key);
            h.finish(&mut block[..H::OUT]);
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let mut pad = zeroize::Zeroizing::new([0u8; MAX_BLOCK]);
        let keyed = |xor: u8, pad: &mut [u8; MAX_BLOCK]| {
            for (p, k) in pad.iter_mut().zip(block.iter()).take(H::BLOCK) {
                *p = k ^ xor;
            }
            let mut state = H::init();
            H::compress(&mut state, &pad[..H::BLOCK]);
            state
        };
        let inner = keyed(0x36, &mut pad);
        let outer = keyed(0x5c, &mut pad);
        Self { inner, outer }
    }

    /// HMAC over the concatenation of `parts`, written into `out` (truncated to its length, at
    /// most the digest length). Returns the number of bytes written.
    pub(crate) fn mac_into(&self, parts: &[&[u8]], out: &mut [u8]) -> usize {
        let mut inner = Running::<H>::from(self.inner, H::BLOCK as u64);
        for p in parts {
            inner.update(p);
        }
        let mut digest = zeroize::Zeroizing::new([0u8; MAX_OUT]);
        inner.finish(&mut digest[..H::OUT]);
        let mut outer = Running::<H>::from(self.outer, H::BLOCK as u64);
        outer.update(&digest[..H::OUT]);
        outer.finish(&mut digest[..H::OUT]);
        let n = out.len().min(H::OUT);
        out[..n].copy_from_slice(&digest[..n]);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};

    fn reference<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).unwrap();
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().to_vec()
    }

    fn ours<H: BlockHash>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![0u8; H::OUT];
        assert_eq!(KeyedHmac::<H>::new(key).mac_into(parts, &mut out), H::OUT);
        out
    }

    /// Every length around the block and padding boundaries, keys short and over-long, data
    /// split at every point: the same MACs as the `hmac` crate.
    #[test]
    fn matches_the_hmac_crate_for_sha1_sha256_and_sha384() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for key_len in [0, 1, 16, 20, 32, 63, 64, 65, 127, 128, 129, 200] {
            let key: Vec<u8> = (0..key_len).map(|i| (i * 13 + 1) as u8).collect();
            for len in [
                0, 1, 55, 56, 63, 64, 65, 111, 112, 119, 120, 127, 128, 129, 255, 300,
            ] {
                let msg = &data[..len];
                let split = len / 3;
                let parts: [&[u8]; 2] = [&msg[..split], &msg[split..]];
                assert_eq!(
                    ours::<Sha1>(&key, &parts),
                    reference::<Hmac<sha1::Sha1>>(&key, &parts)
                );
                assert_eq!(
                    ours::<Sha256>(&key, &parts),
                    reference::<Hmac<sha2::Sha256>>(&key, &parts)
                );
                assert_eq!(
                    ours::<Sha384>(&key, &parts),
                    reference::<Hmac<sha2::Sha384>>(&key, &parts)
                );
            }
        }
    }

    /// RFC 2202 test case 2 (HMAC-SHA1) and RFC 4231 test case 2 (HMAC-SHA-256/384).
    #[test]
    fn rfc_known_answers() {
        let parts: [&[u8]; 1] = [b"what do ya want for nothing?"];
        assert_eq!(
            hex::encode(ours::<Sha1>(b"Jefe", &parts)),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            hex::encode(ours::<Sha256>(b"Jefe", &parts)),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(ours::<Sha384>(b"Jefe", &parts)),
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"
        );
    }

    #[test]
    fn a_keyed_state_is_wiped_on_drop() {
        fn wiped_on_drop<T: ZeroizeOnDrop>() {}
        wiped_on_drop::<KeyedHmac<Sha1>>();
        wiped_on_drop::<KeyedHmac<Sha256>>();
        wiped_on_drop::<KeyedHmac<Sha384>>();
        // Drop runs `zeroize`, which clears both states.
        let mut h = KeyedHmac::<Sha256>::new(b"a derived key");
        assert_ne!(h.inner, [0; 8]);
        h.zeroize();
        assert_eq!((h.inner, h.outer), ([0; 8], [0; 8]));
    }

    #[test]
    fn truncated_output() {
        let mut tag = [0u8; 12];
        assert_eq!(KeyedHmac::<Sha1>::new(b"k").mac_into(&[b"m"], &mut tag), 12);
        assert_eq!(&tag[..], &ours::<Sha1>(b"k", &[b"m"])[..12]);
    }
}
