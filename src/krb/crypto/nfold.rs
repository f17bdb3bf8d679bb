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
    // The replicated input R is lcm(inlen, outlen) bytes: copy k is the input rotated right by
    // 13·k bits. R is cut into outlen-byte chunks that are summed with end-around carry. The
    // walk goes from R's last byte to its first, carrying as MIT krb5's `krb5int_nfold` does,
    // with every index kept incrementally (no division per byte: this runs per session key).
    let lcm = inlen / gcd(inlen, outlen) * outlen;
    let inbits = inlen * 8;
    let step = 13 % inbits;
    // Position in R: copy k, byte j of that copy; rot = 13·k mod inbits; o = output byte.
    let mut j = inlen - 1;
    let mut rot = (13 * (lcm / inlen - 1)) % inbits;
    let mut o = outlen - 1;
    let mut carry: u32 = 0;
    for _ in 0..lcm {
        // Byte j of the input rotated right by `rot` bits starts at input bit (8j - rot) mod inbits.
        let mut src = 8 * j + inbits - rot;
        if src >= inbits {
            src -= inbits;
        }
        let b = src >> 3;
        let next = if b + 1 == inlen { 0 } else { b + 1 };
        let hi = u32::from(input.get(b).copied().unwrap_or(0));
        let lo = u32::from(input.get(next).copied().unwrap_or(0));
        let byte = ((hi << 8 | lo) >> (8 - (src & 7))) & 0xff;
        if let Some(slot) = out.get_mut(o) {
            carry += byte + u32::from(*slot);
            *slot = (carry & 0xff) as u8;
            carry >>= 8;
        }
        o = if o == 0 { outlen - 1 } else { o - 1 };
        if j == 0 {
            j = inlen - 1;
            rot = rot + inbits - step;
            if rot >= inbits {
                rot -= inbits;
            }
        } else {
            j -= 1;
        }
    }
    // End-around carry: add whatever overflowed back in at the least significant end.
    if carry != 0 {
        for slot in out.iter_mut().rev() {
            carry += u32::from(*slot);
            *slot = (carry & 0xff) as u8;
            carry >>= 8;
        }
    }
}

/// Usages below this have their three derivation constants folded at compile time.
const FOLDED_USAGES: usize = 64;

/// n-fold of the RFC 3961 §5.3 constants usage‖0x99, usage‖0xAA, usage‖0x55 to 128 bits for
/// usages 0..64, computed at compile time so per-token key derivation folds nothing.
static FOLDED: [[[u8; 16]; 3]; FOLDED_USAGES] = fold_table();

/// The 128-bit n-fold of usage (big-endian) ‖ `kind` (0x99, 0xAA or 0x55; RFC 3961 §5.3).
pub(crate) fn fold_usage_constant(usage: u32, kind: u8) -> [u8; 16] {
    let slot = match kind {
        0x99 => 0,
        0xAA => 1,
        0x55 => 2,
        _ => 3,
    };
    let cached = usize::try_from(usage)
        .ok()
        .and_then(|u| FOLDED.get(u))
        .and_then(|row| row.get(slot));
    match cached {
        Some(folded) => *folded,
        None => {
            let u = usage.to_be_bytes();
            let mut out = [0u8; 16];
            nfold(&[u[0], u[1], u[2], u[3], kind], &mut out);
            out
        }
    }
}

const fn fold_table() -> [[[u8; 16]; 3]; FOLDED_USAGES] {
    let mut table = [[[0u8; 16]; 3]; FOLDED_USAGES];
    let kinds = [0x99u8, 0xAA, 0x55];
    let mut usage = 0;
    while usage < FOLDED_USAGES {
        let mut k = 0;
        while k < 3 {
            table[usage][k] = nfold_5_to_16([0, 0, 0, usage as u8, kinds[k]]);
            k += 1;
        }
        usage += 1;
    }
    table
}

/// The same walk as [`nfold`], for a 5-byte input and 16-byte output, usable in const context.
const fn nfold_5_to_16(input: [u8; 5]) -> [u8; 16] {
    const INLEN: usize = 5;
    const OUTLEN: usize = 16;
    const LCM: usize = 80;
    const INBITS: usize = 40;
    let mut out = [0u8; OUTLEN];
    let mut i = LCM;
    let mut carry: u32 = 0;
    while i > 0 {
        i -= 1;
        let (k, j) = (i / INLEN, i % INLEN);
        let rot = (13 * k) % INBITS;
        let src = (8 * j + INBITS - rot) % INBITS;
        let b = src >> 3;
        let hi = input[b] as u32;
        let lo = input[(b + 1) % INLEN] as u32;
        let byte = ((hi << 8 | lo) >> (8 - (src & 7))) & 0xff;
        carry += byte + out[i % OUTLEN] as u32;
        out[i % OUTLEN] = (carry & 0xff) as u8;
        carry >>= 8;
    }
    let mut o = OUTLEN;
    while carry != 0 && o > 0 {
        o -= 1;
        carry += out[o] as u32;
        out[o] = (carry & 0xff) as u8;
        carry >>= 8;
    }
    out
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
    use super::{fold_usage_constant, nfold};

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
    fn compile_time_usage_folds_match_runtime_nfold() {
        for usage in [0u32, 1, 2, 11, 12, 17, 63, 64, 1024, u32::MAX] {
            for kind in [0x99u8, 0xAA, 0x55] {
                let u = usage.to_be_bytes();
                let mut want = [0u8; 16];
                nfold(&[u[0], u[1], u[2], u[3], kind], &mut want);
                assert_eq!(
                    fold_usage_constant(usage, kind),
                    want,
                    "usage {usage} kind {kind:#x}"
                );
            }
        }
    }

    #[test]
    fn empty_input_folds_to_zeros() {
        let mut out = [0xffu8; 16];
        nfold(&[], &mut out);
        assert_eq!(out, [0u8; 16]);
    }
}
