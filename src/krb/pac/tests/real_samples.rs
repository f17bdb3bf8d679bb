//! Real Windows PACs from MIT krb5's `t_pac.c` (see tests/testdata/pac/README.md), checked
//! against MS-PAC's layout without any crypto.

use super::super::*;
use super::{sample, S4U_SAMPLES};

#[test]
fn windows_2003_pac_has_the_documented_buffer_table() {
    let pac = Pac::parse(sample("mit_saved_pac")).unwrap();
    let table: Vec<(u32, u32, u64)> = pac
        .buffers()
        .iter()
        .map(|b| (b.buffer_type, b.size, b.offset))
        .collect();
    assert_eq!(
        table,
        [
            (PAC_LOGON_INFO, 472, 72),
            (PAC_CLIENT_INFO, 32, 544),
            (PAC_SERVER_CHECKSUM, 20, 576),
            (PAC_PRIVSVR_CHECKSUM, 20, 600)
        ]
    );
    assert_eq!(pac.as_bytes().len(), 624);
}

#[test]
fn windows_2003_logon_info_decodes_every_field() {
    let pac = Pac::parse(sample("mit_saved_pac")).unwrap();
    let li = pac.logon_info().unwrap();
    assert_eq!(li.effective_name(), "W2003FINAL$");
    assert_eq!(li.full_name(), "");
    assert_eq!(li.logon_server(), "W2003FINAL");
    assert_eq!(li.logon_domain_name(), "WIN2K3THINK");
    assert_eq!(li.logon_count(), 101);
    assert_eq!(li.user_id(), 1005);
    assert_eq!(li.primary_group_id(), 516);
    assert_eq!(li.user_flags(), LOGON_EXTRA_SIDS);
    assert_eq!(li.user_account_control(), 0x2100);
    assert_eq!(li.logoff_time(), FileTime::NEVER);
    let domain: Sid = "S-1-5-21-3048156945-3961193616-3706469200".parse().unwrap();
    assert_eq!(li.domain_sid(), &domain);
    assert_eq!(
        li.user_sid().to_string(),
        "S-1-5-21-3048156945-3961193616-3706469200-1005"
    );
    assert_eq!(
        li.group_ids(),
        &[GroupMembership {
            rid: 516,
            attributes: SE_GROUP_DEFAULT
        }]
    );
    assert_eq!(li.group_sids(), vec![domain.with_rid(516).unwrap()]);
    assert_eq!(li.extra_sids(), vec!["S-1-5-9".parse::<Sid>().unwrap()]);
    assert_eq!(li.extra_sids_with_attributes()[0].attributes, SE_GROUP_DEFAULT);
    assert!(li.resource_group_sids().is_empty());
    assert_eq!(
        li.all_group_sids(),
        vec![domain.with_rid(516).unwrap(), "S-1-5-9".parse().unwrap()]
    );
}

#[test]
fn windows_2003_client_info_names_the_client_at_authtime() {
    let pac = Pac::parse(sample("mit_saved_pac")).unwrap();
    let ci = pac.client_info().unwrap();
    assert_eq!(ci.name, "w2003final$");
    assert_eq!(ci.logon_time_unix(), 1_120_440_609);
    let server = pac.server_signature().unwrap();
    assert_eq!((server.signature_type, server.signature.len()), (-138, 16));
    let kdc = pac.kdc_signature().unwrap();
    assert_eq!(
        (kdc.signature_type, kdc.signature.len(), kdc.rodc_identifier),
        (-138, 16, None)
    );
}

#[test]
fn windows_2008_s4u_pacs_decode() {
    for s in S4U_SAMPLES {
        let pac = Pac::parse(sample(s.file)).unwrap();
        let li = pac.logon_info().unwrap();
        assert_eq!(li.effective_name(), "w2k8u", "{}", s.file);
        assert_eq!(li.full_name(), "w2k8u");
        assert_eq!(li.logon_server(), "WDC");
        assert_eq!(li.logon_domain_name(), "ACME");
        assert_eq!(
            li.user_sid().to_string(),
            "S-1-5-21-9281652-3921847615-585208160-1142"
        );
        assert_eq!(
            li.group_sids(),
            vec!["S-1-5-21-9281652-3921847615-585208160-513".parse().unwrap()]
        );
        assert_eq!(li.user_account_control(), 0x210);
        let ci = pac.client_info().unwrap();
        assert_eq!(ci.name, s.client_name, "{}", s.file);
        assert_eq!(ci.logon_time_unix(), s.authtime, "{}", s.file);
        let upn = pac.upn_dns_info().unwrap();
        assert_eq!(
            (upn.upn.as_str(), upn.dns_domain.as_str()),
            ("w2k8u@abc", "ACME.COM")
        );
        assert_eq!((upn.flags, &upn.sam_name, &upn.sid), (0, &None, &None));
        let server = pac.server_signature().unwrap();
        assert_eq!(
            (server.signature_type, server.signature.len()),
            (16, 12),
            "aes256 server signature"
        );
        assert_eq!(pac.kdc_signature().unwrap().signature_type, -138);
        assert_eq!(pac.requestor_sid(), None);
    }
}

#[test]
fn logon_info_of_windows_pacs_reencodes_to_the_same_bytes() {
    for file in ["mit_saved_pac"]
        .into_iter()
        .chain(S4U_SAMPLES.iter().map(|s| s.file))
    {
        let pac = Pac::parse(sample(file)).unwrap();
        let encoded = logon_info::encode(pac.logon_info().unwrap()).unwrap();
        assert_eq!(encoded, pac.buffer(PAC_LOGON_INFO).unwrap(), "{file}");
    }
}

#[test]
fn client_and_upn_info_of_windows_pacs_reencode_to_the_same_bytes() {
    for s in S4U_SAMPLES {
        let pac = Pac::parse(sample(s.file)).unwrap();
        let ci = client_info::encode(pac.client_info().unwrap()).unwrap();
        assert_eq!(ci, pac.buffer(PAC_CLIENT_INFO).unwrap(), "{}", s.file);
        let upn = upn_dns_info::encode(pac.upn_dns_info().unwrap()).unwrap();
        assert_eq!(upn, pac.buffer(PAC_UPN_DNS_INFO).unwrap(), "{}", s.file);
    }
}

#[test]
fn pacs_found_by_fuzzing_mit_are_refused() {
    assert!(Pac::parse(sample("mit_fuzz1")).is_err());
    assert!(Pac::parse(sample("mit_fuzz2")).is_err());
}
