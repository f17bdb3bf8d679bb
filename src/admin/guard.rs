//! Who may change things through the admin API (`POST /drain/…`, `POST /undrain/…`).
//!
//! - A bearer token from `admin.token_file` (read under the secret-file permission rule on
//!   every mutating request, so a rotated token needs no restart; compared in constant time).
//!   Without a token file the mutating endpoints are off.
//! - No cross-site requests: a request carrying `Origin`, or a `Sec-Fetch-Site` other than
//!   `none` / `same-origin`, is refused. kedge's own client and curl send neither; a browser
//!   tricked into a cross-site POST sends both. No CORS header is ever sent, so a browser
//!   cannot even make the preflight succeed.
//!
//! Read-only endpoints (`/metrics`, `/healthz`, `/readyz`, `/status`) stay open for probes and
//! Prometheus: keep the listener on loopback or a private network (kedge warns at start when it
//! is not on loopback).

use std::path::{Path, PathBuf};

use http::{header, HeaderMap, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret_file::{read_secret, SecretFileError};

/// Why a mutating request was refused: the status, the `reason` logged and the body sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Status sent.
    pub status: StatusCode,
    /// Stable label for the log.
    pub reason: &'static str,
    /// Body sent (no detail an attacker could use).
    pub message: &'static str,
}

const CROSS_SITE: Refusal = Refusal {
    status: StatusCode::FORBIDDEN,
    reason: "cross_site",
    message: "cross-site requests are refused\n",
};
const OFF: Refusal = Refusal {
    status: StatusCode::FORBIDDEN,
    reason: "no_token_file",
    message: "mutating endpoints are off: set admin.token_file\n",
};
const NO_TOKEN: Refusal = Refusal {
    status: StatusCode::UNAUTHORIZED,
    reason: "no_token",
    message: "a bearer token is required\n",
};
const BAD_TOKEN: Refusal = Refusal {
    status: StatusCode::UNAUTHORIZED,
    reason: "bad_token",
    message: "the bearer token does not match\n",
};
const TOKEN_FILE: Refusal = Refusal {
    status: StatusCode::SERVICE_UNAVAILABLE,
    reason: "token_file_unusable",
    message: "the admin token file cannot be used; see kedge's log\n",
};

/// The mutating-request policy of an admin listener.
#[derive(Clone, Debug, Default)]
pub struct MutationGuard {
    token_file: Option<PathBuf>,
}

impl MutationGuard {
    /// Mutations need the bearer token in `token_file` (`None`: mutations are off).
    pub fn new(token_file: Option<PathBuf>) -> Self {
        Self { token_file }
    }

    /// Whether a token file is configured.
    pub fn enabled(&self) -> bool {
        self.token_file.is_some()
    }

    /// Checks that the token file can be used (at start, so a bad file stops kedge early).
    pub fn check_file(&self) -> Result<(), SecretFileError> {
        match &self.token_file {
            Some(p) => read_token(p).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Admits a mutating request with `headers`, or says why not.
    pub fn admit(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        if cross_site(headers) {
            return Err(CROSS_SITE);
        }
        let Some(path) = &self.token_file else {
            return Err(OFF);
        };
        let Some(given) = bearer(headers) else {
            return Err(NO_TOKEN);
        };
        let want = read_token(path).map_err(|e| {
            tracing::error!(error = %e, "admin token file unusable; mutating admin requests are refused");
            TOKEN_FILE
        })?;
        // Digests first, so the comparison takes the same time whatever the lengths.
        let (a, b) = (Sha256::digest(given), Sha256::digest(&want[..]));
        if bool::from(a.ct_eq(&b)) {
            Ok(())
        } else {
            Err(BAD_TOKEN)
        }
    }
}

fn read_token(path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>, SecretFileError> {
    read_secret(path, "the admin token file")
}

/// A request a browser made on another site's behalf (or any browser request with an origin:
/// the admin API has no page of its own).
fn cross_site(headers: &HeaderMap) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .map(|v| v.as_bytes().to_ascii_lowercase());
    headers.contains_key(header::ORIGIN) || fetch_site.is_some_and(|s| s != b"none" && s != b"same-origin")
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let v = all.next()?;
    if all.next().is_some() {
        return None;
    }
    let v = v.as_bytes();
    let (scheme, token) = v.split_at(v.iter().position(|b| *b == b' ')?);
    let token = token.trim_ascii();
    (scheme.eq_ignore_ascii_case(b"Bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn guard(mode: u32) -> (tempfile::TempDir, MutationGuard) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret-token\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, MutationGuard::new(Some(path)))
    }

    #[test]
    fn the_right_bearer_token_is_admitted() {
        let (_d, g) = guard(0o600);
        assert_eq!(
            g.admit(&headers(&[("authorization", "Bearer s3cret-token")])),
            Ok(())
        );
        assert_eq!(
            g.admit(&headers(&[("authorization", "bearer  s3cret-token ")])),
            Ok(())
        );
    }

    #[test]
    fn a_missing_or_wrong_token_is_refused() {
        let (_d, g) = guard(0o600);
        assert_eq!(g.admit(&headers(&[])), Err(NO_TOKEN));
        assert_eq!(
            g.admit(&headers(&[("authorization", "Basic s3cret-token")])),
            Err(NO_TOKEN)
        );
        assert_eq!(
            g.admit(&headers(&[("authorization", "Bearer s3cret")])),
            Err(BAD_TOKEN)
        );
        assert_eq!(
            g.admit(&headers(&[
                ("authorization", "Bearer s3cret-token"),
                ("authorization", "Bearer x")
            ])),
            Err(NO_TOKEN),
            "two Authorization headers are ambiguous"
        );
    }

    #[test]
    fn cross_site_requests_are_refused_even_with_the_token() {
        let (_d, g) = guard(0o600);
        for extra in [
            ("origin", "https://evil.example"),
            ("origin", "null"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-site", "same-site"),
        ] {
            let h = headers(&[("authorization", "Bearer s3cret-token"), extra]);
            assert_eq!(g.admit(&h), Err(CROSS_SITE), "{extra:?}");
        }
        let typed = headers(&[
            ("authorization", "Bearer s3cret-token"),
            ("sec-fetch-site", "none"),
        ]);
        assert_eq!(g.admit(&typed), Ok(()));
    }

    #[test]
    fn without_a_token_file_mutations_are_off() {
        let g = MutationGuard::new(None);
        assert_eq!(
            g.admit(&headers(&[("authorization", "Bearer anything")])),
            Err(OFF)
        );
    }

    #[test]
    fn a_token_file_others_may_write_is_not_used() {
        let (_d, g) = guard(0o622);
        assert!(g.check_file().is_err());
        assert_eq!(
            g.admit(&headers(&[("authorization", "Bearer s3cret-token")])),
            Err(TOKEN_FILE)
        );
    }
}
