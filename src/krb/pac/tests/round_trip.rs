//! PacBuilder → Pac::parse gives back every field (no crypto: `build_unsigned`).

use super::super::*;
use crate::krb::crypto::EncType;

const AES256: EncType = EncType::Aes256CtsHmacSha196;

fn domain() -> Sid {
    "S-1-5-21-1004336348-1177238915-682003330".parse().unwrap()
}

fn full_builder() -> PacBuilder {
    PacBuilder::new("alice", domain(), 1105)
        .full_name("Alice Liddell")
        .logon_domain("CONTOSO", "CONTOSO.COM")
        .logon_server("DC01")
        .logon_script("logon.cmd")
        .profile_path("\\\\fs\\profiles\\alice")
        .home_directory("\\\\fs\\home\\alice", "H:")
        .logon_time(1_700_000_000)
        .password_last_set(1_690_000_000)
        .counts(42, 1)
        .user_account_control(0x10200)
        .user_flags(0x20 | 0x100)
        .primary_group(1120)
        .group(1121, 7)
        .group(1122, 0x20000007)
        .extra_sid("S-1-18-1".parse().unwrap(), 7)
        .extra_sid("S-1-5-21-9-8-7-1234".parse().unwrap(), 0x20000007)
        .resource_groups(
            "S-1-5-21-5-6-7".parse().unwrap(),
            [
                GroupMembership {
                    rid: 2001,
                    attributes: 0x20000007,
                },
                GroupMembership {
                    rid: 2002,
                    attributes: 0x20000007,
                },
            ],
        )
        .client_name("alice")
        .upn("alice.liddell@contoso.com")
}

#[test]
fn builder_round_trips_every_logon_info_field() {
    let pac = Pac::parse(&full_builder().build_unsigned(AES256, AES256).unwrap()).unwrap();
    let li = pac.logon_info().unwrap();
    assert_eq!(li.effective_name(), "alice");
    assert_eq!(li.full_name(), "Alice Liddell");
    assert_eq!(li.logon_script(), "logon.cmd");
    assert_eq!(li.profile_path(), "\\\\fs\\profiles\\alice");
    assert_eq!(li.home_directory(), "\\\\fs\\home\\alice");
    assert_eq!(li.home_directory_drive(), "H:");
    assert_eq!(li.logon_domain_name(), "CONTOSO");
    assert_eq!(li.logon_server(), "DC01");
    assert_eq!(li.logon_time().to_unix(), 1_700_000_000);
    assert_eq!(li.password_last_set().to_unix(), 1_690_000_000);
    assert_eq!(li.password_can_change().to_unix(), 1_690_086_400);
    assert!(
        li.logoff_time().is_never() && li.kick_off_time().is_never() && li.password_must_change().is_never()
    );
    assert_eq!((li.logon_count(), li.bad_password_count()), (42, 1));
    assert_eq!(li.user_account_control(), 0x10200);
    assert_eq!(li.user_flags(), 0x20 | 0x100 | LOGON_RESOURCE_GROUPS);
    assert_eq!(li.user_id(), 1105);
    assert_eq!(li.primary_group_id(), 1120);
    assert_eq!(li.domain_sid(), &domain());
    assert_eq!(li.user_sid(), domain().with_rid(1105).unwrap());
    let rids: Vec<(u32, u32)> = li.group_ids().iter().map(|g| (g.rid, g.attributes)).collect();
    assert_eq!(rids, [(513, 7), (1120, 7), (1121, 7), (1122, 0x20000007)]);
    let groups: Vec<String> = li.group_sids().iter().map(Sid::to_string).collect();
    assert_eq!(groups[0], "S-1-5-21-1004336348-1177238915-682003330-513");
    assert_eq!(groups[3], "S-1-5-21-1004336348-1177238915-682003330-1122");
    assert_eq!(
        li.extra_sids(),
        vec![
            "S-1-18-1".parse::<Sid>().unwrap(),
            "S-1-5-21-9-8-7-1234".parse().unwrap()
        ]
    );
    assert_eq!(li.extra_sids_with_attributes()[1].attributes, 0x20000007);
    assert_eq!(
        li.resource_group_domain_sid(),
        Some(&"S-1-5-21-5-6-7".parse().unwrap())
    );
    assert_eq!(
        li.resource_group_sids(),
        vec![
            "S-1-5-21-5-6-7-2001".parse::<Sid>().unwrap(),
            "S-1-5-21-5-6-7-2002".parse().unwrap()
        ]
    );
    assert_eq!(li.all_group_sids().len(), 4 + 2 + 2);
    let all: Vec<String> = li.all_group_sids().iter().map(Sid::to_string).collect();
    assert_eq!(li.all_group_sids_joined(), all.join(","));
}

#[test]
fn builder_round_trips_client_upn_and_requestor_buffers() {
    let pac = Pac::parse(&full_builder().build_unsigned(AES256, EncType::Rc4Hmac).unwrap()).unwrap();
    let types: Vec<u32> = pac.buffers().iter().map(|b| b.buffer_type).collect();
    assert_eq!(
        types,
        [
            PAC_LOGON_INFO,
            PAC_CLIENT_INFO,
            PAC_UPN_DNS_INFO,
            PAC_ATTRIBUTES_INFO,
            PAC_REQUESTOR,
            PAC_SERVER_CHECKSUM,
            PAC_PRIVSVR_CHECKSUM
        ]
    );
    assert!(pac.buffers().iter().all(|b| b.offset % 8 == 0));
    let ci = pac.client_info().unwrap();
    assert_eq!((ci.name.as_str(), ci.logon_time_unix()), ("alice", 1_700_000_000));
    let upn = pac.upn_dns_info().unwrap();
    assert_eq!(upn.upn, "alice.liddell@contoso.com");
    assert_eq!(upn.dns_domain, "CONTOSO.COM");
    assert_eq!(upn.flags, UPN_EXTENDED);
    assert_eq!(upn.sam_name.as_deref(), Some("alice"));
    assert_eq!(upn.sid, Some(domain().with_rid(1105).unwrap()));
    assert_eq!(pac.requestor_sid(), Some(&domain().with_rid(1105).unwrap()));
    let server = pac.server_signature().unwrap();
    assert_eq!(
        (server.signature_type, server.signature.as_slice()),
        (16, &[0u8; 12][..])
    );
    let kdc = pac.kdc_signature().unwrap();
    assert_eq!((kdc.signature_type, kdc.signature.len()), (-138, 16));
}

#[test]
fn default_upn_is_constructed_from_user_and_dns_domain() {
    let bytes = PacBuilder::new("bob", domain(), 1106)
        .logon_domain("CONTOSO", "CONTOSO.COM")
        .sam_name_and_sid(false)
        .attributes_and_requestor(false)
        .build_unsigned(AES256, AES256)
        .unwrap();
    let pac = Pac::parse(&bytes).unwrap();
    let upn = pac.upn_dns_info().unwrap();
    assert_eq!(
        (upn.upn.as_str(), upn.flags),
        ("bob@contoso.com", UPN_CONSTRUCTED)
    );
    assert_eq!((&upn.sam_name, &upn.sid), (&None, &None));
    assert_eq!(pac.buffers().len(), 5);
    assert_eq!(pac.requestor_sid(), None);
    assert_eq!(pac.client_info().unwrap().name, "bob");
}

#[test]
fn windows_like_pac_has_the_size_of_a_real_users() {
    for (groups, min, max) in [(20u32, 900, 1400), (40, 1000, 1600)] {
        let bytes = PacBuilder::windows_like("jdoe", "contoso.com", domain(), 1234, groups)
            .logon_time(1_700_000_000)
            .build_unsigned(AES256, AES256)
            .unwrap();
        assert!(
            (min..max).contains(&bytes.len()),
            "{groups} groups: {} bytes",
            bytes.len()
        );
        let pac = Pac::parse(&bytes).unwrap();
        let li = pac.logon_info().unwrap();
        assert_eq!(li.group_ids().len(), groups as usize);
        assert_eq!(li.logon_domain_name(), "CONTOSO");
        assert_eq!(pac.upn_dns_info().unwrap().dns_domain, "CONTOSO.COM");
        assert_eq!(li.extra_sids(), vec!["S-1-18-1".parse::<Sid>().unwrap()]);
        assert_eq!(li.all_group_sids().len(), groups as usize + 1);
        let all: Vec<String> = li.all_group_sids().iter().map(Sid::to_string).collect();
        assert_eq!(li.all_group_sids_joined(), all.join(","));
    }
}

#[test]
fn builder_output_reencodes_identically() {
    let bytes = full_builder().build_unsigned(AES256, AES256).unwrap();
    let pac = Pac::parse(&bytes).unwrap();
    let li = pac.logon_info().unwrap();
    assert_eq!(
        logon_info::encode(li).unwrap(),
        pac.buffer(PAC_LOGON_INFO).unwrap()
    );
}

#[test]
fn names_outside_the_basic_multilingual_plane_round_trip() {
    let bytes = PacBuilder::new("Zoë", domain(), 1107)
        .full_name("Zoë 🦀 Ångström")
        .build_unsigned(AES256, AES256)
        .unwrap();
    let pac = Pac::parse(&bytes).unwrap();
    assert_eq!(pac.logon_info().unwrap().full_name(), "Zoë 🦀 Ångström");
    assert_eq!(pac.client_info().unwrap().name, "Zoë");
}

#[test]
fn builder_refuses_what_cannot_be_encoded() {
    let long = "x".repeat(40_000);
    assert!(matches!(
        PacBuilder::new(&long, domain(), 1).build_unsigned(AES256, AES256),
        Err(PacError::Encode(_))
    ));
    let full: Sid = format!("S-1-5{}", "-1".repeat(15)).parse().unwrap();
    assert!(PacBuilder::new("a", full, 1)
        .build_unsigned(AES256, AES256)
        .is_err());
}

#[test]
fn empty_group_list_encodes_a_null_array() {
    let bytes = PacBuilder::new("svc", domain(), 1108)
        .groups([])
        .build_unsigned(AES256, AES256)
        .unwrap();
    let li = Pac::parse(&bytes).unwrap().logon_info().unwrap().clone();
    assert!(li.group_ids().is_empty() && li.group_sids().is_empty() && li.all_group_sids().is_empty());
}

#[test]
fn duplicate_group_sids_are_listed_once() {
    let bytes = PacBuilder::new("dup", domain(), 1109)
        .group(513, 7)
        .extra_sid(domain().with_rid(513).unwrap(), 7)
        .resource_groups(
            domain(),
            [GroupMembership {
                rid: 513,
                attributes: 7,
            }],
        )
        .build_unsigned(AES256, AES256)
        .unwrap();
    let pac = Pac::parse(&bytes).unwrap();
    assert_eq!(
        pac.logon_info().unwrap().all_group_sids(),
        vec![domain().with_rid(513).unwrap()]
    );
    assert_eq!(
        pac.logon_info().unwrap().all_group_sids_joined(),
        domain().with_rid(513).unwrap().to_string()
    );
}
