//! AES in CBC mode with ciphertext stealing, variant CS3 (RFC 3962 §5, NIST SP 800-38A
//! addendum), on a block cipher whose key schedule is computed once and reused.
//!
//! The `cts` crate would re-key per message (and its 0.7 line is built on `cipher` 0.5, which
//! does not fit `aes` 0.8), so the ~60 lines live here. Decryption runs the independent
//! CBC block decryptions through `decrypt_blocks_inout`, which uses the parallel AES-NI path.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::inout::InOutBuf;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};

/// The AES block size in bytes.
pub(crate) const BLOCK: usize = 16;

/// An expanded AES-128 or AES-256 key (encryption and decryption round keys), zeroized on drop.
// Inline on purpose: a Box would cost an allocation per session key (one per token).
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(crate) enum AesCipher {
    Aes128(aes::Aes128),
    Aes256(aes::Aes256),
}

impl AesCipher {
    /// Expands a 16- or 32-byte key; `None` for any other length.
    pub(crate) fn new(key: &[u8]) -> Option<Self> {
        match key.len() {
            16 => aes::Aes128::new_from_slice(key).ok().map(Self::Aes128),
            32 => aes::Aes256::new_from_slice(key).ok().map(Self::Aes256),
            _ => None,
        }
    }

    /// Encrypts one block in place (AES-ECB of one block).
    pub(crate) fn encrypt_block(&self, block: &mut [u8; BLOCK]) {
        let b = GenericArray::from_mut_slice(block);
        match self {
            Self::Aes128(c) => c.encrypt_block(b),
            Self::Aes256(c) => c.encrypt_block(b),
        }
    }

    /// Decrypts one block in place.
    fn decrypt_block(&self, block: &mut [u8; BLOCK]) {
        let b = GenericArray::from_mut_slice(block);
        match self {
            Self::Aes128(c) => c.decrypt_block(b),
            Self::Aes256(c) => c.decrypt_block(b),
        }
    }

    /// Decrypts whole blocks from `input` into `out` (same length, a multiple of 16), in parallel
    /// where the CPU allows. Trailing bytes beyond a whole block are left alone.
    fn decrypt_blocks(&self, input: &[u8], out: &mut [u8]) {
        let Ok(buf) = InOutBuf::new(input, out) else {
            return;
        };
        let (blocks, _tail) = buf.into_chunks();
        match self {
            Self::Aes128(c) => c.decrypt_blocks_inout(blocks),
            Self::Aes256(c) => c.decrypt_blocks_inout(blocks),
        }
    }

    /// CBC-CS3 encryption with a zero IV, in place (RFC 3962 §5). `data` shorter than one block
    /// is left unchanged: callers always prepend a 16-byte confounder.
    pub(crate) fn cts_encrypt(&self, data: &mut [u8]) {
        let n = data.len();
        if n < BLOCK {
            return;
        }
        // Number of blocks, the last one possibly partial (1..=16 bytes).
        let nblocks = n.div_ceil(BLOCK);
        let last_len = n - (nblocks - 1) * BLOCK;
        let mut prev = [0u8; BLOCK];
        for chunk in data.chunks_exact_mut(BLOCK).take(nblocks - 1) {
            xor_into(&mut prev, chunk);
            self.encrypt_block(&mut prev);
            chunk.copy_from_slice(&prev);
        }
        if nblocks == 1 {
            // Exactly one block: plain CBC with a zero IV, nothing to steal.
            let mut block = [0u8; BLOCK];
            block.copy_from_slice(&data[..BLOCK]);
            self.encrypt_block(&mut block);
            data.copy_from_slice(&block);
            return;
        }
        // `prev` is C(n-1). Encrypt the zero-padded last block chained on it, then swap:
        // output ... C(n-2) ‖ C(n) ‖ C(n-1)[..last_len].
        let tail_start = (nblocks - 1) * BLOCK;
        let mut last = [0u8; BLOCK];
        last[..last_len].copy_from_slice(&data[tail_start..]);
        xor_into(&mut last, &prev);
        self.encrypt_block(&mut last);
        data[tail_start - BLOCK..tail_start].copy_from_slice(&last);
        data[tail_start..].copy_from_slice(&prev[..last_len]);
    }

    /// CBC-CS3 decryption with a zero IV from `input` into `out` (RFC 3962 §5). Both must have
    /// the same length of at least one block; otherwise `out` is left unchanged.
    pub(crate) fn cts_decrypt(&self, input: &[u8], out: &mut [u8]) {
        let n = input.len();
        if n < BLOCK || out.len() != n {
            return;
        }
        let nblocks = n.div_ceil(BLOCK);
        if nblocks == 1 {
            let mut block = [0u8; BLOCK];
            block.copy_from_slice(input);
            self.decrypt_block(&mut block);
            out.copy_from_slice(&block);
            return;
        }
        let last_len = n - (nblocks - 1) * BLOCK;
        // Blocks C1..C(n-2) are ordinary CBC: decrypt them all at once, then chain.
        let head = (nblocks - 2) * BLOCK;
        self.decrypt_blocks(&input[..head], &mut out[..head]);
        if head > BLOCK {
            for (o, c) in out[BLOCK..head]
                .chunks_exact_mut(BLOCK)
                .zip(input[..head - BLOCK].chunks_exact(BLOCK))
            {
                xor_into(o, c);
            }
        }
        // The swapped pair: X = C(n) (full), Y = C(n-1)[..last_len].
        let mut x = [0u8; BLOCK];
        x.copy_from_slice(&input[head..head + BLOCK]);
        let y = &input[head + BLOCK..];
        // D(X) = P(n)‖0… xor C(n-1): its tail past last_len is C(n-1)'s stolen tail.
        self.decrypt_block(&mut x);
        let mut cn1 = x;
        cn1[..last_len].copy_from_slice(y);
        for ((o, d), c) in out[head + BLOCK..].iter_mut().zip(&x[..last_len]).zip(y) {
            *o = d ^ c;
        }
        self.decrypt_block(&mut cn1);
        if head >= BLOCK {
            xor_into(&mut cn1, &input[head - BLOCK..head]);
        }
        out[head..head + BLOCK].copy_from_slice(&cn1);
    }
}

/// `dst ^= src` over the shorter of the two.
pub(crate) fn xor_into(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

#[cfg(test)]
mod tests {
    use super::AesCipher;

    const KEY: &[u8; 16] = b"chicken teriyaki";
    const INPUT: &[u8; 64] = b"I would like the General Gau's Chicken, please, and wonton soup.";

    /// RFC 3962 Appendix B: (input length, output).
    const VECTORS: [(usize, &str); 6] = [
        (17, "c6353568f2bf8cb4d8a580362da7ff7f97"),
        (31, "fc00783e0efdb2c1d445d4c8eff7ed2297687268d6ecccc0c07b25e25ecfe5"),
        (32, "39312523a78662d5be7fcbcc98ebf5a897687268d6ecccc0c07b25e25ecfe584"),
        (
            47,
            "97687268d6ecccc0c07b25e25ecfe584b3fffd940c16a18c1b5549d2f838029e39312523a78662d5be7fcbcc98ebf5",
        ),
        (
            48,
            "97687268d6ecccc0c07b25e25ecfe5849dad8bbb96c4cdc03bc103e1a194bbd839312523a78662d5be7fcbcc98ebf5a8",
        ),
        (
            64,
            "97687268d6ecccc0c07b25e25ecfe58439312523a78662d5be7fcbcc98ebf5a8\
             4807efe836ee89a526730dbc2f7bc8409dad8bbb96c4cdc03bc103e1a194bbd8",
        ),
    ];

    fn check_vector(index: usize) {
        let (len, want) = VECTORS[index];
        let cipher = AesCipher::new(KEY).unwrap();
        let mut data = INPUT[..len].to_vec();
        cipher.cts_encrypt(&mut data);
        assert_eq!(hex::encode(&data), want, "encrypt {len} bytes");
        let mut back = vec![0u8; len];
        cipher.cts_decrypt(&data, &mut back);
        assert_eq!(back, &INPUT[..len], "decrypt {len} bytes");
    }

    #[test]
    fn rfc3962_cts_vector_1_roundtrips() {
        check_vector(0);
    }
    #[test]
    fn rfc3962_cts_vector_2_roundtrips() {
        check_vector(1);
    }
    #[test]
    fn rfc3962_cts_vector_3_roundtrips() {
        check_vector(2);
    }
    #[test]
    fn rfc3962_cts_vector_4_roundtrips() {
        check_vector(3);
    }
    #[test]
    fn rfc3962_cts_vector_5_roundtrips() {
        check_vector(4);
    }
    #[test]
    fn rfc3962_cts_vector_6_roundtrips() {
        check_vector(5);
    }

    #[test]
    fn one_block_is_plain_ecb() {
        let cipher = AesCipher::new(KEY).unwrap();
        let mut data = INPUT[..16].to_vec();
        cipher.cts_encrypt(&mut data);
        let mut block = [0u8; 16];
        block.copy_from_slice(&INPUT[..16]);
        cipher.encrypt_block(&mut block);
        assert_eq!(data, block);
        let mut back = vec![0u8; 16];
        cipher.cts_decrypt(&data, &mut back);
        assert_eq!(back, &INPUT[..16]);
    }

    #[test]
    fn every_length_from_16_to_200_roundtrips_with_aes256() {
        let cipher = AesCipher::new(&[7u8; 32]).unwrap();
        let plain: Vec<u8> = (0..200u32).map(|i| (i * 31 % 251) as u8).collect();
        for len in 16..=200 {
            let mut data = plain[..len].to_vec();
            cipher.cts_encrypt(&mut data);
            assert_ne!(data, &plain[..len]);
            let mut back = vec![0u8; len];
            cipher.cts_decrypt(&data, &mut back);
            assert_eq!(back, &plain[..len], "length {len}");
        }
    }
}
