//! Which Kerberos service a bind needs, by the interfaces it asks for (MS-OXCRPC 1.9 for EMSMDB,
//! MS-OXNSPI 1.9 for NSPI, MS-OXABREF 1.9 for RFR, C706 Appendix O / MS-RPCE 2.2.1.2 for the
//! endpoint mapper).
//!
//! | interface | UUID | SPN service |
//! |---|---|---|
//! | EMSMDB (mailbox, RPC Client Access) | `a4f1db00-ca47-1067-b31f-00dd010662da` | `exchangeMDB` |
//! | NSPI (address book) | `f5cc5a18-4264-101a-8c59-08002b2f8426` | `exchangeAB` |
//! | RFR (address book referral) | `1544f5e0-613c-11d1-93df-00c04fd7bd09` | `exchangeRFR` |
//! | endpoint mapper | `e1af8308-5d1f-11c9-91a4-08002b14a0fa` | none (may bind without auth) |
//!
//! A bind may offer several presentation contexts (Windows adds NDR64 and bind-time feature
//! negotiation contexts for the same interface). Every context must need the same thing; an
//! interface outside the map, or a bind mixing services, is refused.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::bind::BindInfo;
use super::error::RpcError;
use super::uuid::Uuid;

/// EMSMDB, `a4f1db00-ca47-1067-b31f-00dd010662da` (MS-OXCRPC 1.9).
pub const EMSMDB: Uuid = Uuid::from_bytes([
    0xa4, 0xf1, 0xdb, 0x00, 0xca, 0x47, 0x10, 0x67, 0xb3, 0x1f, 0x00, 0xdd, 0x01, 0x06, 0x62, 0xda,
]);
/// NSPI, `f5cc5a18-4264-101a-8c59-08002b2f8426` (MS-OXNSPI 1.9).
pub const NSPI: Uuid = Uuid::from_bytes([
    0xf5, 0xcc, 0x5a, 0x18, 0x42, 0x64, 0x10, 0x1a, 0x8c, 0x59, 0x08, 0x00, 0x2b, 0x2f, 0x84, 0x26,
]);
/// RFR, `1544f5e0-613c-11d1-93df-00c04fd7bd09` (MS-OXABREF 1.9).
pub const RFR: Uuid = Uuid::from_bytes([
    0x15, 0x44, 0xf5, 0xe0, 0x61, 0x3c, 0x11, 0xd1, 0x93, 0xdf, 0x00, 0xc0, 0x4f, 0xd7, 0xbd, 0x09,
]);
/// The endpoint mapper, `e1af8308-5d1f-11c9-91a4-08002b14a0fa` (C706 Appendix O, MS-RPCE 2.2.1.2.1).
pub const EPM: Uuid = Uuid::from_bytes([
    0xe1, 0xaf, 0x83, 0x08, 0x5d, 0x1f, 0x11, 0xc9, 0x91, 0xa4, 0x08, 0x00, 0x2b, 0x14, 0xa0, 0xfa,
]);

/// What a bind needs before kedge forwards it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Requirement {
    /// No Kerberos credential is needed (the endpoint mapper; policy decides what to allow).
    NoAuth,
    /// A Kerberos ticket for `<service>/<array FQDN>`, e.g. `exchangeMDB`.
    Service(Arc<str>),
}

impl Requirement {
    /// The config spelling of "no credential needed".
    pub const NO_AUTH: &'static str = "no-auth";

    /// Parses a config value: `"no-auth"` (any case) or an SPN service class (ASCII letters,
    /// digits, `-`, `_`, `.`; 1–64 characters; no `/` or `@`).
    pub fn parse(s: &str) -> Result<Requirement, RpcError> {
        if s.eq_ignore_ascii_case(Self::NO_AUTH) {
            return Ok(Requirement::NoAuth);
        }
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(RpcError::BadService(s.chars().take(80).collect()));
        }
        Ok(Requirement::Service(Arc::from(s)))
    }

    /// The same requirement? SPN service classes compare case-insensitively, as in AD.
    pub fn same(&self, other: &Requirement) -> bool {
        match (self, other) {
            (Requirement::NoAuth, Requirement::NoAuth) => true,
            (Requirement::Service(a), Requirement::Service(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::NoAuth => f.write_str(Self::NO_AUTH),
            Requirement::Service(s) => f.write_str(s),
        }
    }
}

/// Interface UUID → [`Requirement`]: the Exchange defaults plus config extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceMap {
    map: HashMap<Uuid, Requirement>,
}

impl Default for InterfaceMap {
    /// The Exchange defaults (see the module table).
    fn default() -> Self {
        let mut map = HashMap::new();
        map.insert(EMSMDB, Requirement::Service(Arc::from("exchangeMDB")));
        map.insert(NSPI, Requirement::Service(Arc::from("exchangeAB")));
        map.insert(RFR, Requirement::Service(Arc::from("exchangeRFR")));
        map.insert(EPM, Requirement::NoAuth);
        InterfaceMap { map }
    }
}

impl InterfaceMap {
    /// A map with no entry at all (every bind is refused until entries are added).
    pub fn empty() -> Self {
        InterfaceMap { map: HashMap::new() }
    }

    /// The Exchange defaults extended (or overridden) by config entries `uuid string → service |
    /// "no-auth"`; the first bad entry is reported.
    pub fn with_extensions<'a, I>(entries: I) -> Result<Self, RpcError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut m = InterfaceMap::default();
        for (uuid, requirement) in entries {
            m.insert(uuid.parse()?, Requirement::parse(requirement)?);
        }
        Ok(m)
    }

    /// Adds or replaces one entry; returns the one it replaced.
    pub fn insert(&mut self, uuid: Uuid, requirement: Requirement) -> Option<Requirement> {
        self.map.insert(uuid, requirement)
    }

    /// What binding to `uuid` needs, if the interface is known.
    pub fn get(&self, uuid: &Uuid) -> Option<&Requirement> {
        self.map.get(uuid)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// What the whole bind needs: every presentation context's abstract syntax must be in the map
    /// and all must need the same thing (C706 12.6.4.3 `p_cont_list`). A bind with no context, an
    /// unknown interface or a mix of services is an error.
    pub fn required_service(&self, bind: &BindInfo) -> Result<Requirement, RpcError> {
        let mut found: Option<&Requirement> = None;
        for c in &bind.contexts {
            let s = &c.abstract_syntax;
            let req = self.map.get(&s.uuid).ok_or(RpcError::UnknownInterface {
                uuid: s.uuid,
                major: s.major,
                minor: s.minor,
            })?;
            match found {
                None => found = Some(req),
                Some(first) if first.same(req) => {}
                Some(first) => {
                    return Err(RpcError::MixedServices {
                        first: first.to_string(),
                        second: req.to_string(),
                    })
                }
            }
        }
        found.cloned().ok_or(RpcError::NoContexts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::bind::{PresentationContext, SyntaxId};
    use crate::rpc::header::{Drep, PacketType};

    fn bind_to(uuids: &[Uuid]) -> BindInfo {
        BindInfo {
            ptype: PacketType::Bind,
            rpc_vers_minor: 0,
            pfc_flags: 3,
            call_id: 1,
            drep: Drep::LITTLE_ENDIAN,
            max_xmit_frag: 4280,
            max_recv_frag: 4280,
            assoc_group_id: 0,
            contexts: uuids
                .iter()
                .enumerate()
                .map(|(i, u)| PresentationContext {
                    context_id: i as u16,
                    abstract_syntax: SyntaxId {
                        uuid: *u,
                        major: 1,
                        minor: 0,
                    },
                    transfer_syntaxes: vec![SyntaxId::NDR],
                })
                .collect(),
            auth: None,
        }
    }

    fn service(s: &str) -> Requirement {
        Requirement::Service(Arc::from(s))
    }

    #[test]
    fn constants_match_their_string_forms() {
        assert_eq!(EMSMDB.to_string(), "a4f1db00-ca47-1067-b31f-00dd010662da");
        assert_eq!(NSPI.to_string(), "f5cc5a18-4264-101a-8c59-08002b2f8426");
        assert_eq!(RFR.to_string(), "1544f5e0-613c-11d1-93df-00c04fd7bd09");
        assert_eq!(EPM.to_string(), "e1af8308-5d1f-11c9-91a4-08002b14a0fa");
    }

    #[test]
    fn exchange_interfaces_need_their_spn_service() {
        let m = InterfaceMap::default();
        assert_eq!(
            m.required_service(&bind_to(&[EMSMDB])),
            Ok(service("exchangeMDB"))
        );
        assert_eq!(m.required_service(&bind_to(&[NSPI])), Ok(service("exchangeAB")));
        assert_eq!(m.required_service(&bind_to(&[RFR])), Ok(service("exchangeRFR")));
    }

    #[test]
    fn endpoint_mapper_needs_no_auth() {
        assert_eq!(
            InterfaceMap::default().required_service(&bind_to(&[EPM])),
            Ok(Requirement::NoAuth)
        );
    }

    #[test]
    fn several_contexts_for_one_interface_agree() {
        let m = InterfaceMap::default();
        assert_eq!(
            m.required_service(&bind_to(&[EMSMDB, EMSMDB, EMSMDB])),
            Ok(service("exchangeMDB"))
        );
    }

    #[test]
    fn mixing_services_is_refused() {
        let err = InterfaceMap::default()
            .required_service(&bind_to(&[EMSMDB, NSPI]))
            .unwrap_err();
        assert_eq!(
            err,
            RpcError::MixedServices {
                first: "exchangeMDB".into(),
                second: "exchangeAB".into()
            }
        );
    }

    #[test]
    fn mixing_no_auth_with_a_service_is_refused() {
        let err = InterfaceMap::default()
            .required_service(&bind_to(&[EPM, EMSMDB]))
            .unwrap_err();
        assert!(matches!(err, RpcError::MixedServices { .. }));
    }

    #[test]
    fn unknown_interface_is_refused_by_name() {
        let samr: Uuid = "12345778-1234-abcd-ef00-0123456789ac".parse().unwrap();
        let err = InterfaceMap::default()
            .required_service(&bind_to(&[EMSMDB, samr]))
            .unwrap_err();
        assert_eq!(
            err,
            RpcError::UnknownInterface {
                uuid: samr,
                major: 1,
                minor: 0
            }
        );
        assert!(err.to_string().contains("12345778-1234-abcd-ef00-0123456789ac"));
    }

    #[test]
    fn bind_without_contexts_is_refused() {
        assert_eq!(
            InterfaceMap::default().required_service(&bind_to(&[])),
            Err(RpcError::NoContexts)
        );
    }

    #[test]
    fn config_extensions_add_and_override_entries() {
        let m = InterfaceMap::with_extensions([
            ("12345778-1234-ABCD-EF00-0123456789AC", "exchangeMDB"),
            ("e1af8308-5d1f-11c9-91a4-08002b14a0fa", "HOST"),
            ("f5cc5a18-4264-101a-8c59-08002b2f8426", "No-Auth"),
        ])
        .unwrap();
        assert_eq!(m.len(), 5);
        let samr: Uuid = "12345778-1234-abcd-ef00-0123456789ac".parse().unwrap();
        assert_eq!(
            m.required_service(&bind_to(&[samr, EMSMDB])),
            Ok(service("exchangeMDB"))
        );
        assert_eq!(m.get(&EPM), Some(&service("HOST")));
        assert_eq!(m.get(&NSPI), Some(&Requirement::NoAuth));
    }

    #[test]
    fn service_classes_compare_case_insensitively() {
        let m =
            InterfaceMap::with_extensions([("12345778-1234-abcd-ef00-0123456789ac", "EXCHANGEMDB")]).unwrap();
        let samr: Uuid = "12345778-1234-abcd-ef00-0123456789ac".parse().unwrap();
        assert_eq!(
            m.required_service(&bind_to(&[EMSMDB, samr])),
            Ok(service("exchangeMDB"))
        );
    }

    #[test]
    fn bad_config_entries_are_refused() {
        assert!(matches!(
            InterfaceMap::with_extensions([("not-a-uuid", "exchangeMDB")]),
            Err(RpcError::BadUuid(_))
        ));
        for bad in ["", "exchangeMDB/outlook", "a@b", "two words"] {
            let r = InterfaceMap::with_extensions([("12345778-1234-abcd-ef00-0123456789ac", bad)]);
            assert!(matches!(r, Err(RpcError::BadService(_))), "{bad:?}");
        }
    }

    #[test]
    fn empty_map_refuses_everything() {
        let m = InterfaceMap::empty();
        assert!(m.is_empty());
        assert!(matches!(
            m.required_service(&bind_to(&[EPM])),
            Err(RpcError::UnknownInterface { .. })
        ));
    }
}
