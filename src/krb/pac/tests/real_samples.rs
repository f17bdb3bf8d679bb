use super::super::*;

#[test]
fn dump() {
    for f in ["mit_saved_pac", "mit_s4u_pac_regular", "mit_s4u_pac_enterprise", "mit_s4u_pac_xrealm", "mit_s4u_pac_ent_xrealm"] {
        let b = std::fs::read(format!("tests/testdata/pac/{f}.bin")).unwrap();
        let p = Pac::parse(&b);
        println!("{f}: {:#?}", p);
        if let Ok(p) = p { let li = p.logon_info().unwrap(); println!("user {} groups {:?} all {:?}", li.user_sid(), li.group_sids(), li.all_group_sids()); }
    }
}
