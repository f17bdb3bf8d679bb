//! Strong random passwords for the ASA: 40 characters from upper, lower, digits and symbols
//! (about 250 bits), with every class present so AD's complexity rule is met.

use rand::seq::SliceRandom;
use rand::Rng;
use zeroize::Zeroizing;

const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const DIGITS: &[u8] = b"23456789";
// No quote, backslash, space or `$`: the password may have to be typed into PowerShell.
const SYMBOLS: &[u8] = b"!#%&()*+,-./:;<=>?@[]^_{|}~";

/// Length of generated passwords.
pub const LENGTH: usize = 40;

/// A fresh random password from the OS CSPRNG, zeroized on drop.
pub fn generate() -> Zeroizing<String> {
    let mut rng = rand::rngs::OsRng;
    let classes = [UPPER, LOWER, DIGITS, SYMBOLS];
    let all: Vec<u8> = classes.concat();
    let mut chars: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::with_capacity(LENGTH));
    for c in classes {
        chars.push(c[rng.gen_range(0..c.len())]);
    }
    while chars.len() < LENGTH {
        chars.push(all[rng.gen_range(0..all.len())]);
    }
    chars.shuffle(&mut rng);
    Zeroizing::new(chars.iter().map(|&b| b as char).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_distinct_and_hold_every_character_class() {
        let a = generate();
        let b = generate();
        assert_ne!(*a, *b);
        assert_eq!(a.len(), LENGTH);
        for class in [UPPER, LOWER, DIGITS, SYMBOLS] {
            assert!(a.bytes().any(|c| class.contains(&c)));
        }
    }
}
