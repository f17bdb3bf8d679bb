//! Properties every enctype must have, through the public API (RFC 3961 §3: decrypt(encrypt(p))
//! = p; any modification or a wrong key is an integrity error; no input panics).

use super::*;

const ALL: [EncType; 5] = [
    EncType::Aes128CtsHmacSha196,
    EncType::Aes256CtsHmacSha196,
    EncType::Aes128CtsHmacSha256128,
    EncType::Aes256CtsHmacSha384192,
    EncType::Rc4Hmac,
];

fn key(etype: EncType, seed: u8) -> Key {
    let bytes: Vec<u8> = (0..etype.key_len() as u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(seed))
        .collect();
    Key::new(etype, &bytes).unwrap()
}

fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

#[test]
fn every_enctype_roundtrips_plaintexts_of_0_to_64_bytes() {
    for etype in ALL {
        let k = UsageKeys::new(&key(etype, 1), 11);
        for len in 0..=64 {
            let p = plaintext(len);
            let ct = k.encrypt(&p);
            assert_eq!(
                k.decrypt(&ct).unwrap().as_slice(),
                p.as_slice(),
                "{etype:?} len {len}"
            );
        }
    }
}

#[test]
fn random_confounders_make_ciphertexts_differ() {
    for etype in ALL {
        let k = UsageKeys::new(&key(etype, 2), 2);
        assert_ne!(k.encrypt(b"same"), k.encrypt(b"same"), "{etype:?}");
    }
}

#[test]
fn every_single_bit_flip_is_an_integrity_error() {
    for etype in ALL {
        let k = UsageKeys::new(&key(etype, 3), 2);
        for len in [0usize, 1, 15, 16, 17, 33] {
            let ct = k.encrypt(&plaintext(len));
            for bit in 0..ct.len() * 8 {
                let mut bad = ct.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert_eq!(
                    k.decrypt(&bad),
                    Err(CryptoError::Integrity),
                    "{etype:?} len {len} bit {bit}"
                );
            }
        }
    }
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for etype in ALL {
        let k = UsageKeys::new(&key(etype, 4), 2);
        let ct = k.encrypt(&plaintext(40));
        for cut in 0..ct.len() {
            assert!(k.decrypt(&ct[..cut]).is_err(), "{etype:?} cut at {cut}");
        }
    }
}

#[test]
fn too_short_ciphertext_is_bad_length() {
    let minimum = [28usize, 28, 32, 40, 24];
    for (etype, min) in ALL.into_iter().zip(minimum) {
        let k = UsageKeys::new(&key(etype, 5), 2);
        assert!(
            matches!(k.decrypt(&vec![0u8; min - 1]), Err(CryptoError::BadLength { len, .. }) if len == min - 1),
            "{etype:?}"
        );
        assert_eq!(
            k.decrypt(&vec![0u8; min]),
            Err(CryptoError::Integrity),
            "{etype:?}"
        );
    }
}

#[test]
fn garbage_of_every_length_up_to_300_never_panics() {
    for etype in ALL {
        let k = UsageKeys::new(&key(etype, 6), 2);
        for len in 0..300 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 13 + len) as u8).collect();
            assert!(k.decrypt(&junk).is_err());
        }
    }
}

#[test]
fn wrong_key_is_an_integrity_error() {
    for etype in ALL {
        let ct = encrypt(&key(etype, 7), 2, b"ticket");
        assert_eq!(
            decrypt(&key(etype, 8), 2, &ct),
            Err(CryptoError::Integrity),
            "{etype:?}"
        );
    }
}

#[test]
fn wrong_usage_is_an_integrity_error() {
    for etype in ALL {
        let k = key(etype, 9);
        let ct = encrypt(&k, 2, b"ticket");
        assert_eq!(decrypt(&k, 11, &ct), Err(CryptoError::Integrity), "{etype:?}");
    }
}

#[test]
fn cached_and_one_shot_checksums_agree_and_verify() {
    for etype in ALL {
        let k = key(etype, 10);
        let cached = UsageKeys::new(&k, 17).checksum(b"pac data");
        let oneshot = checksum(&k, etype.checksum_type(), 17, b"pac data").unwrap();
        assert_eq!(cached, oneshot, "{etype:?}");
        assert!(verify_checksum(&k, etype.checksum_type(), 17, b"pac data", &cached).is_ok());
        let mut bad = cached.clone();
        bad[0] ^= 1;
        assert_eq!(
            verify_checksum(&k, etype.checksum_type(), 17, b"pac data", &bad),
            Err(CryptoError::Integrity)
        );
        assert_eq!(
            verify_checksum(
                &k,
                etype.checksum_type(),
                17,
                b"pac data",
                &cached[..cached.len() - 1]
            ),
            Err(CryptoError::Integrity)
        );
    }
}

#[test]
fn checksum_lengths_follow_the_checksum_type() {
    let want = [12usize, 12, 16, 24, 16];
    for (etype, len) in ALL.into_iter().zip(want) {
        assert_eq!(
            UsageKeys::new(&key(etype, 11), 3).checksum(b"x").len(),
            len,
            "{etype:?}"
        );
    }
}

#[test]
fn checksum_type_of_another_enctype_is_unsupported() {
    let k = key(EncType::Aes256CtsHmacSha196, 12);
    assert_eq!(checksum(&k, 15, 17, b"x"), Err(CryptoError::Unsupported(15)));
    assert_eq!(checksum(&k, -138, 17, b"x"), Err(CryptoError::Unsupported(-138)));
    assert_eq!(checksum(&k, 16, 17, b"x").unwrap().len(), 12);
}

#[test]
fn usage_keys_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<UsageKeys>();
    assert_send_sync::<Key>();
}

#[test]
fn debug_output_never_shows_key_bytes() {
    let k = Key::new(EncType::Aes128CtsHmacSha196, &[0xAB; 16]).unwrap();
    let shown = format!("{k:?} {:?}", UsageKeys::new(&k, 2));
    assert!(!shown.to_ascii_lowercase().contains("ab, ") && !shown.contains("171"));
    assert!(shown.contains("redacted"));
}

#[test]
fn rc4_confounder_is_8_bytes_and_aes_confounder_16() {
    let p = b"abc";
    let rc4 = UsageKeys::new(&key(EncType::Rc4Hmac, 13), 2);
    assert_eq!(rc4.encrypt_with_confounder(p, &[1; 8]).len(), 16 + 8 + 3);
    let aes = UsageKeys::new(&key(EncType::Aes256CtsHmacSha196, 13), 2);
    assert_eq!(aes.encrypt_with_confounder(p, &[1; 16]).len(), 16 + 3 + 12);
}

#[test]
fn random_keys_have_the_enctype_length() {
    for etype in ALL {
        assert_eq!(Key::random(etype).expose_bytes().len(), etype.key_len());
    }
}

#[test]
fn cached_key_states_are_wiped_on_drop() {
    fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    // The parts a UsageKeys caches (aes-sha1 and aes-sha2: schedules and HMAC states; rc4:
    // key bytes), and the base key.
    wiped_on_drop::<aes::Aes128>();
    wiped_on_drop::<aes::Aes256>();
    wiped_on_drop::<super::hmac_state::KeyedHmac<super::hmac_state::Sha1>>();
    wiped_on_drop::<super::hmac_state::KeyedHmac<super::hmac_state::Sha256>>();
    wiped_on_drop::<super::hmac_state::KeyedHmac<super::hmac_state::Sha384>>();
    wiped_on_drop::<zeroize::Zeroizing<[u8; 16]>>();
    wiped_on_drop::<zeroize::Zeroizing<Vec<u8>>>();
    wiped_on_drop::<super::Key>();
    wiped_on_drop::<super::UsageKeys>();
}
