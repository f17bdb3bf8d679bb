//! n-fold (RFC 3961 §5.1): stretches or shrinks a constant to the cipher block size for key
//! derivation, by replicating it with 13-bit right rotations and adding the copies with
//! end-around carry (one's-complement addition).

/// Fills `out` with the `out.len() * 8`-bit n-fold of `input` (RFC 3961 §5.1).
///
/// An empty `input` or `out` leaves `out` zeroed; no input makes it panic.
pub fn nfold(input: &[u8], out: &mut [u8]) {
    out.fill(0);
    let inlen = input.len();
    let outlen = out.len();
    if inlen == 0 || outlen == 0 {
        return;
    }
    // The replicated input is lcm(inlen, outlen) bytes long: that many output bytes are summed.
    let lcm = inlen / gcd(inlen, outlen) * outlen;
    let inbits = inlen * 8;
    let mut carry: u32 = 0;
    for i in (0..lcm).rev() {
        // The bit of the rotated replica that lands on the most significant bit of byte i
        // (MIT krb5's formulation: copy number i / inlen is rotated right 13 bits that many times).
        let msbit = (inbits - 1 + (inbits + 13) * (i / inlen) + ((inlen - i % inlen) << 3)) % inbits;
        let hi = input
            .get((inlen - 1 - (msbit >> 3)) % inlen)
            .copied()
            .unwrap_or(0);
        let lo = input.get((inlen - (msbit >> 3)) % inlen).copied().unwrap_or(0);
        let byte = ((u32::from(hi) << 8 | u32::from(lo)) >> ((msbit & 7) + 1)) & 0xff;
        if let Some(o) = out.get_mut(i % outlen) {
            carry += byte + u32::from(*o);
            *o = (carry & 0xff) as u8;
            carry >>= 8;
        }
    }
    // End-around carry: add whatever overflowed back in at the least significant end.
    if carry != 0 {
        for o in out.iter_mut().rev() {
            carry += u32::from(*o);
            *o = (carry & 0xff) as u8;
            carry >>= 8;
        }
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::nfold;

    fn fold(input: &str, bits: usize) -> String {
        let mut out = vec![0u8; bits / 8];
        nfold(input.as_bytes(), &mut out);
        hex::encode(out)
    }

    #[test]
    fn rfc3961_a1_nfold_vectors_match() {
        let vectors = [
            ("012345", 64, "be072631276b1955"),
            ("password", 56, "78a07b6caf85fa"),
            ("Rough Consensus, and Running Code", 64, "bb6ed30870b7f0e0"),
            ("password", 168, "59e4a8ca7c0385c3c37b3f6d2000247cb6e6bd5b3e"),
            (
                "MASSACHVSETTS INSTITVTE OF TECHNOLOGY",
                192,
                "db3b0d8f0b061e603282b308a50841229ad798fab9540c1b",
            ),
            ("Q", 168, "518a54a215a8452a518a54a215a8452a518a54a215"),
            ("ba", 168, "fb25d531ae8974499f52fd92ea9857c4ba24cf297e"),
            ("kerberos", 64, "6b65726265726f73"),
            ("kerberos", 128, "6b65726265726f737b9b5b2b93132b93"),
            ("kerberos", 168, "8372c236344e5f1550cd0747e15d62ca7a5a3bcea4"),
            (
                "kerberos",
                256,
                "6b65726265726f737b9b5b2b93132b935c9bdcdad95c9899c4cae4dee6d6cae4",
            ),
        ];
        for (input, bits, want) in vectors {
            assert_eq!(fold(input, bits), want, "{bits}-fold({input:?})");
        }
    }

    #[test]
    fn mit_t_nfold_192_vectors_match() {
        assert_eq!(
            fold("basch", 192),
            "1aab6b42964b98b21f8cde2d2448ba3455d7862c9731643f"
        );
        assert_eq!(
            fold("eichin", 192),
            "65696368696e4b732b4b1b43da1a5b995a58d2c6d0d2dcca"
        );
        assert_eq!(
            fold("sommerfeld", 192),
            "2f7a98557c6ee4abadf4e71192dd442bd4ff5325a5def75c"
        );
    }

    #[test]
    fn empty_input_folds_to_zeros() {
        let mut out = [0xffu8; 16];
        nfold(&[], &mut out);
        assert_eq!(out, [0u8; 16]);
    }
}
