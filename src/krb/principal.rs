//! Kerberos principal names (RFC 4120 §6.2) as kedge handles them: components plus realm.

use std::fmt;

/// A principal: name components and realm, e.g. `http/outlook.contoso.com@CONTOSO.COM`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal {
    /// RFC 4120 name type (1 = NT-PRINCIPAL, 2 = NT-SRV-INST, 3 = NT-SRV-HST).
    pub name_type: i32,
    /// Name components, e.g. `["http", "outlook.contoso.com"]`.
    pub components: Vec<String>,
    /// The realm, e.g. `CONTOSO.COM`.
    pub realm: String,
}

/// Errors parsing a textual principal name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    /// Empty name or empty component.
    #[error("principal name {0:?} is empty or has an empty component")]
    Empty(String),
}

impl Principal {
    /// Parses `a/b@REALM` (backslash escapes `\/`, `\@`, `\\` as MIT does). Without `@`, the realm is
    /// `default_realm`.
    pub fn parse(s: &str, default_realm: &str) -> Result<Self, PrincipalError> {
        let mut components = vec![String::new()];
        let mut realm: Option<String> = None;
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            match c {
                '/' if realm.is_none() => components.push(String::new()),
                '@' if realm.is_none() => realm = Some(String::new()),
                _ => {
                    let ch = if c == '\\' {
                        chars.next().unwrap_or('\\')
                    } else {
                        c
                    };
                    match realm.as_mut() {
                        Some(r) => r.push(ch),
                        None => components.last_mut().expect("never empty").push(ch),
                    }
                }
            }
        }
        let realm = realm.unwrap_or_else(|| default_realm.to_string());
        if components.iter().any(|c| c.is_empty()) {
            return Err(PrincipalError::Empty(s.to_string()));
        }
        let name_type = if components.len() > 1 { 2 } else { 1 };
        Ok(Self {
            name_type,
            components,
            realm,
        })
    }

    /// The service part of a two-component service principal (`http` of `http/host`).
    pub fn service(&self) -> Option<&str> {
        (self.components.len() == 2).then(|| self.components[0].as_str())
    }

    /// The host part of a two-component service principal.
    pub fn host(&self) -> Option<&str> {
        (self.components.len() == 2).then(|| self.components[1].as_str())
    }

    /// The name without the realm (`http/outlook.contoso.com`).
    pub fn name(&self) -> String {
        self.components.join("/")
    }

    /// The one form kedge compares, hashes and states principals in (affinity, replay keys,
    /// "same principal" checks, identity headers): components lower-cased, the realm
    /// upper-cased, and `\`, `/` and `@` inside a component escaped as MIT writes them, so two
    /// different principals never share a canonical form. Active Directory compares account
    /// names and realms case-insensitively (MS-KILE §3.3.5.1.1), so `Alice@contoso.com` and
    /// `alice@CONTOSO.COM` are one account and must be one principal to kedge too.
    pub fn canonical(&self) -> String {
        match self.plain_canonical_bytes() {
            Some(bytes) => bytes.map(char::from).collect(),
            None => self.canonical_chars().collect(),
        }
    }

    /// Whether `s` is [`Principal::canonical`] of this principal, compared without building it
    /// (a connection presenting a fresh token for the principal it already holds).
    pub fn is_canonical(&self, s: &str) -> bool {
        match self.plain_canonical_bytes() {
            Some(bytes) => bytes.eq(s.bytes()),
            None => self.canonical_chars().eq(s.chars()),
        }
    }

    /// The bytes of [`Principal::canonical`] by an ASCII case mapping, where the principal is
    /// plain ([`Principal::is_plain`]); `None` otherwise. The identity headers and the replay
    /// key both take this path for nearly every principal.
    pub(crate) fn plain_canonical_bytes(&self) -> Option<impl Iterator<Item = u8> + '_> {
        if !self.is_plain() {
            return None;
        }
        let parts = self.components.iter().enumerate();
        let name = parts.flat_map(|(i, c)| (i > 0).then_some(b'/').into_iter().chain(c.bytes()));
        Some(
            name.map(|b| b.to_ascii_lowercase())
                .chain(std::iter::once(b'@'))
                .chain(self.realm.bytes().map(|b| b.to_ascii_uppercase())),
        )
    }

    /// Whether [`Principal::canonical`] is only an ASCII case mapping of the name's bytes: no
    /// character outside ASCII and nothing to escape (nearly every principal; the per-character
    /// Unicode case mapping is then skipped).
    pub(crate) fn is_plain(&self) -> bool {
        let plain = |c: &String| {
            c.bytes()
                .all(|b| b.is_ascii() && !matches!(b, b'\\' | b'/' | b'@'))
        };
        self.components.iter().all(plain) && self.realm.is_ascii()
    }

    /// The characters of [`Principal::canonical`], without building the string (replay keys
    /// hash them per token).
    pub fn canonical_chars(&self) -> impl Iterator<Item = char> + '_ {
        let name = self.components.iter().enumerate().flat_map(|(i, c)| {
            let sep = (i > 0).then_some('/');
            let body = c.chars().flat_map(char::to_lowercase).flat_map(|ch| {
                let esc = matches!(ch, '\\' | '/' | '@').then_some('\\');
                esc.into_iter().chain(std::iter::once(ch))
            });
            sep.into_iter().chain(body)
        });
        name.chain(std::iter::once('@'))
            .chain(self.realm.chars().flat_map(char::to_uppercase))
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.components.join("/"), self.realm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_ascii_path_gives_the_canonical_characters() {
        for (name, realm) in [
            ("Alice", "contoso.com"),
            ("HTTP/Outlook.Contoso.COM", "Contoso.Com"),
            ("a\\/b", "R"),
            ("a\\@b/c", "r@x"),
            ("Émile", "CONTOSO.COM"),
            ("alice", "contoso.cöm"),
            ("ΣΊΣΥΦΟΣ", "ΑΘΉΝΑ"),
        ] {
            let p = Principal::parse(&format!("{name}@{realm}"), "X").unwrap();
            let chars: String = p.canonical_chars().collect();
            assert_eq!(p.canonical(), chars, "{name}@{realm}");
            let canonical = p.canonical();
            assert!(p.is_canonical(&canonical), "{name}@{realm}");
            // Not the canonical form: as written, one character longer, shorter or changed.
            for other in [
                format!("{name}@{realm}"),
                format!("{canonical}x"),
                canonical.chars().take(canonical.chars().count() - 1).collect(),
                canonical.replacen('@', "@@", 1),
                canonical.to_uppercase(),
            ] {
                if other != canonical {
                    assert!(!p.is_canonical(&other), "{other:?} for {name}@{realm}");
                }
            }
        }
        let p = Principal::parse("Alice@contoso.com", "X").unwrap();
        assert!(p.is_plain());
        assert_eq!(p.canonical(), "alice@CONTOSO.COM");
        assert!(!Principal::parse("a\\/b@R", "X").unwrap().is_plain());
        assert!(!Principal::parse("Émile@R", "X").unwrap().is_plain());
    }

    #[test]
    fn parses_service_principal_with_realm() {
        let p = Principal::parse("http/outlook.contoso.com@CONTOSO.COM", "X").unwrap();
        assert_eq!(p.components, vec!["http", "outlook.contoso.com"]);
        assert_eq!(p.realm, "CONTOSO.COM");
        assert_eq!(p.service(), Some("http"));
        assert_eq!(p.to_string(), "http/outlook.contoso.com@CONTOSO.COM");
    }

    #[test]
    fn default_realm_applies_without_at() {
        let p = Principal::parse("alice", "CONTOSO.COM").unwrap();
        assert_eq!(p.realm, "CONTOSO.COM");
        assert_eq!(p.name_type, 1);
    }

    #[test]
    fn canonical_form_folds_case_and_escapes_separators() {
        let a = Principal::parse("Alice@contoso.com", "X").unwrap();
        let b = Principal::parse("alice@CONTOSO.COM", "X").unwrap();
        assert_eq!(a.canonical(), "alice@CONTOSO.COM");
        assert_eq!(a.canonical(), b.canonical());
        let svc = Principal::parse("HTTP/Outlook.Contoso.com@contoso.com", "X").unwrap();
        assert_eq!(svc.canonical(), "http/outlook.contoso.com@CONTOSO.COM");
        // One component holding '/' is not the two-component name it would print as.
        let one = Principal {
            name_type: 1,
            components: vec!["a/b".into()],
            realm: "R".into(),
        };
        let two = Principal::parse("a/b@R", "R").unwrap();
        assert_eq!(one.canonical(), "a\\/b@R");
        assert_ne!(one.canonical(), two.canonical());
        // An enterprise name keeps its '@' escaped.
        let ent = Principal {
            name_type: 10,
            components: vec!["bob@contoso.com".into()],
            realm: "CONTOSO.COM".into(),
        };
        assert_eq!(ent.canonical(), "bob\\@contoso.com@CONTOSO.COM");
    }

    /// UTF-8 names as KDCs issue them (`ß` is C3 9F, `Р` D0 A0): shown as issued, compared
    /// and hashed with the per-character case mapping.
    #[test]
    fn utf8_names_display_as_issued_and_fold_case_per_character() {
        for (name, realm, canonical) in [
            ("weiß", "KEDGE.TEST", "weiß@KEDGE.TEST"),
            ("Weiß", "kedge.test", "weiß@KEDGE.TEST"),
            ("Рябов", "KEDGE.TEST", "рябов@KEDGE.TEST"),
            ("Łukasz/admin", "Łódź.pl", "łukasz/admin@ŁÓDŹ.PL"),
        ] {
            let p = Principal::parse(&format!("{name}@{realm}"), "X").unwrap();
            assert_eq!(p.to_string(), format!("{name}@{realm}"));
            assert!(!p.is_plain(), "{name}");
            assert_eq!(p.canonical(), canonical);
        }
    }

    #[test]
    fn empty_component_is_refused() {
        assert!(Principal::parse("http//x@R", "R").is_err());
        assert!(Principal::parse("", "R").is_err());
    }
}
