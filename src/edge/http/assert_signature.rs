//! The assert-mode signature: `v2=<hex(HMAC-SHA256(key, message))>` over the request's method,
//! target and host, the principal, its group SIDs and the timestamp (the format is in
//! `assert.rs`'s module documentation), and the per-connection memo that gives a repeated
//! request the signature it was given a moment ago.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::krb::crypto::{HmacSha256, KeyedHmac};

/// What an assert-mode signature covers.
#[derive(Clone, Copy, Debug)]
pub struct Signed<'a> {
    /// The request method.
    pub method: &'a [u8],
    /// The request target (path and query).
    pub target: &'a [u8],
    /// The `Host` header's bytes (empty when absent).
    pub host: &'a [u8],
    /// The principal stated.
    pub principal: &'a str,
    /// The group SIDs stated, comma-separated.
    pub groups: &'a [u8],
    /// Unix seconds.
    pub timestamp: u64,
}

/// The ASCII form of a signature: `v2=` and 64 hex digits.
pub type SignatureText = [u8; 67];

/// `v2=` and `hex(HMAC-SHA256(key, "kedge-assert-v2" ‖ len‖method ‖ len‖target ‖ len‖host ‖
/// len‖principal ‖ len‖groups ‖ len‖timestamp))`, lengths 4-byte big-endian.
pub fn signature(key: &[u8], s: &Signed<'_>) -> String {
    let sig = SigningKey::new(KeyedHmac::new(key)).sign(s, None);
    String::from_utf8_lossy(&sig).into_owned()
}

/// A route's signing key: its HMAC state, prepared once, and a number no other key loaded by
/// this process has (so a memo made under one key never answers for another, whatever a
/// reload installs).
pub struct SigningKey {
    id: u64,
    hmac: KeyedHmac<HmacSha256>,
}

static NEXT_KEY_ID: AtomicU64 = AtomicU64::new(1);

impl SigningKey {
    /// Wraps a prepared HMAC key (zeroized on drop, with it).
    pub fn new(hmac: KeyedHmac<HmacSha256>) -> Self {
        Self {
            id: NEXT_KEY_ID.fetch_add(1, Ordering::Relaxed),
            hmac,
        }
    }

    /// The signature of `s`, from `memo` when it holds the signature of exactly this input under
    /// this key, else computed (and remembered there).
    pub fn sign(&self, s: &Signed<'_>, memo: Option<&SignatureMemo>) -> SignatureText {
        let mut ts = [0u8; 20];
        self.sign_with_digits(s, crate::krb::pac::decimal(s.timestamp, &mut ts), memo)
    }

    /// [`SigningKey::sign`] with `s.timestamp` already in decimal (`ts`): assert routes state
    /// those digits in the timestamp header too, so they are formatted once per request.
    pub fn sign_with_digits(&self, s: &Signed<'_>, ts: &[u8], memo: Option<&SignatureMemo>) -> SignatureText {
        debug_assert_eq!(
            ts,
            crate::krb::pac::decimal(s.timestamp, &mut [0u8; 20]),
            "the digits are the timestamp's"
        );
        let fields = [s.method, s.target, s.host, s.principal.as_bytes(), s.groups, ts];
        let lengths = fields.map(|f| u32::try_from(f.len()).unwrap_or(u32::MAX).to_be_bytes());
        let mut parts: [&[u8]; 13] = [b"kedge-assert-v2"; 13];
        for (i, (len, field)) in lengths.iter().zip(fields).enumerate() {
            parts[1 + 2 * i] = len;
            parts[2 + 2 * i] = field;
        }
        let mut remembered = memo.map(|m| m.0.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(Some(last)) = remembered.as_deref() {
            if last.key_id == self.id && last.is_input(&parts) {
                return last.signature;
            }
        }
        let mut mac = [0u8; 32];
        self.hmac.mac_into(&parts, &mut mac);
        let mut out = [0u8; 67];
        out[..3].copy_from_slice(b"v2=");
        hex::encode_to_slice(mac, &mut out[3..]).expect("67 bytes hold v2= and 64 hex digits");
        if let Some(slot) = remembered.as_deref_mut() {
            Memo::keep(slot, self.id, &parts, out);
        }
        out
    }
}

/// The signature one client connection's last assert request was given, with the exact HMAC
/// input it was made from. A client repeating a request (one method, target and host, one
/// identity, within the same second) gets those bytes again without hashing its PAC's group
/// list anew: the memo answers only when the key and every input byte are the same, so its
/// answer is what signing again would give. One per connection: nothing is shared between
/// clients.
#[derive(Default)]
pub struct SignatureMemo(Mutex<Option<Memo>>);

impl std::fmt::Debug for SignatureMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignatureMemo")
    }
}

/// Inputs over this size are signed every time, not remembered: a connection keeps at most
/// this much (a principal in about 350 groups fits), however long a target its client sends.
const MEMO_MAX_INPUT: usize = 16 * 1024;

/// One remembered signature.
pub struct Memo {
    key_id: u64,
    input: Vec<u8>,
    signature: SignatureText,
}

impl Memo {
    /// Whether `parts`, one after another, are the remembered input.
    fn is_input(&self, parts: &[&[u8]]) -> bool {
        let mut rest = &self.input[..];
        for part in parts {
            match rest.split_at_checked(part.len()) {
                Some((head, tail)) if head == *part => rest = tail,
                _ => return false,
            }
        }
        rest.is_empty()
    }

    /// Remembers `signature` for `parts` in `slot` (its buffer reused), unless the input is
    /// over [`MEMO_MAX_INPUT`].
    fn keep(slot: &mut Option<Memo>, key_id: u64, parts: &[&[u8]], signature: SignatureText) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > MEMO_MAX_INPUT {
            *slot = None;
            return;
        }
        let memo = slot.get_or_insert_with(|| Memo {
            key_id,
            input: Vec::with_capacity(len),
            signature,
        });
        memo.key_id = key_id;
        memo.signature = signature;
        memo.input.clear();
        for part in parts {
            memo.input.extend_from_slice(part);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed<'a>() -> Signed<'a> {
        Signed {
            method: b"POST",
            target: b"/ews/Exchange.asmx?x=1",
            host: b"outlook.contoso.com",
            principal: "alice@R",
            groups: b"S-1",
            timestamp: 100,
        }
    }

    /// Every way of changing one signed field (and of moving a byte between two).
    fn variants<'a>(base: Signed<'a>) -> Vec<Signed<'a>> {
        vec![
            Signed {
                method: b"GET",
                ..base
            },
            Signed {
                target: b"/ecp/",
                ..base
            },
            Signed {
                host: b"evil.example",
                ..base
            },
            Signed {
                principal: "bob@R",
                ..base
            },
            Signed {
                groups: b"S-2",
                ..base
            },
            Signed {
                timestamp: 101,
                ..base
            },
            // Moving a byte between adjacent fields changes the signature (length prefixes).
            Signed {
                principal: "alice@RS-",
                groups: b"1",
                ..base
            },
        ]
    }

    #[test]
    fn signature_is_hmac_sha256_over_the_length_prefixed_fields() {
        use hmac::{Hmac, Mac};
        let reference = |key: &[u8]| {
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
            m.update(b"kedge-assert-v2");
            for f in [
                &b"POST"[..],
                b"/ews/Exchange.asmx?x=1",
                b"outlook.contoso.com",
                b"alice@R",
                b"S-1",
                b"100",
            ] {
                m.update(&u32::try_from(f.len()).unwrap().to_be_bytes());
                m.update(f);
            }
            format!("v2={}", hex::encode(m.finalize().into_bytes()))
        };
        assert_eq!(signature(b"k", &signed()), reference(b"k"));
        // A key longer than SHA-256's block is hashed first (RFC 2104 §2).
        let long = [7u8; 100];
        assert_eq!(signature(&long, &signed()), reference(&long));
    }

    #[test]
    fn signature_covers_every_field_unambiguously() {
        let a = signature(b"k", &signed());
        assert!(a.starts_with("v2=") && a.len() == 67, "{a}");
        for other in variants(signed()) {
            assert_ne!(a, signature(b"k", &other), "{other:?}");
        }
        assert_ne!(a, signature(b"j", &signed()));
    }

    #[test]
    fn the_memo_answers_only_for_the_same_input_under_the_same_key() {
        let key = SigningKey::new(KeyedHmac::new(b"k"));
        let memo = SignatureMemo::default();
        let fresh = |s: &Signed<'_>| key.sign(s, None);
        // Alternating between the base request and each variant: every answer, memo or not,
        // is the one signing without a memo gives.
        for other in variants(signed()) {
            for s in [signed(), other, other, signed(), signed()] {
                assert_eq!(key.sign(&s, Some(&memo)), fresh(&s), "{s:?}");
            }
        }
        // Another key (a reload's) never takes the memo's answer, even for the same input.
        let reloaded = SigningKey::new(KeyedHmac::new(b"j"));
        key.sign(&signed(), Some(&memo));
        assert_eq!(
            reloaded.sign(&signed(), Some(&memo)),
            reloaded.sign(&signed(), None)
        );
        assert_ne!(key.sign(&signed(), Some(&memo)), reloaded.sign(&signed(), None));
    }

    #[test]
    fn the_memo_is_the_whole_input_not_a_prefix() {
        let key = SigningKey::new(KeyedHmac::new(b"k"));
        let memo = SignatureMemo::default();
        let long = Signed {
            groups: b"S-1,S-2",
            ..signed()
        };
        key.sign(&long, Some(&memo));
        // A shorter input that is a prefix of the remembered one is signed anew.
        let short = Signed {
            groups: b"S-1",
            ..signed()
        };
        assert_eq!(key.sign(&short, Some(&memo)), key.sign(&short, None));
        assert_ne!(key.sign(&short, Some(&memo)), key.sign(&long, None));
    }

    #[test]
    fn inputs_over_the_limit_are_signed_every_time_and_not_kept() {
        let key = SigningKey::new(KeyedHmac::new(b"k"));
        let memo = SignatureMemo::default();
        let groups = "S".repeat(MEMO_MAX_INPUT);
        let big = Signed {
            groups: groups.as_bytes(),
            ..signed()
        };
        assert_eq!(key.sign(&big, Some(&memo)), key.sign(&big, None));
        assert!(memo.0.lock().unwrap().is_none());
        key.sign(&signed(), Some(&memo));
        assert!(memo.0.lock().unwrap().is_some());
    }
}
