//! PAC tests: real Windows PACs, builder round trips, malformed input, signatures.

mod malformed;
mod real_samples;
mod round_trip;
pub(crate) mod signatures;

/// A file under tests/testdata/pac/, compiled in.
pub(super) fn sample(name: &str) -> &'static [u8] {
    macro_rules! files {
        ($($n:literal),*) => {
            match name {
                $($n => include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata/pac/", $n, ".bin")),)*
                _ => panic!("no sample {name}"),
            }
        };
    }
    files!(
        "mit_saved_pac",
        "mit_s4u_pac_regular",
        "mit_s4u_pac_enterprise",
        "mit_s4u_pac_xrealm",
        "mit_s4u_pac_ent_xrealm",
        "mit_fuzz1",
        "mit_fuzz2"
    )
}

/// One of MIT's Windows 2008 S4U2Self PACs with what `t_pac.c` says about it.
pub(super) struct S4uSample {
    pub file: &'static str,
    pub authtime: i64,
    pub client_name: &'static str,
    /// Whether `s4u_tgt_srv_key` (cross-realm) rather than `s4u_srv_key` signed it.
    pub xrealm: bool,
}

pub(super) const S4U_SAMPLES: [S4uSample; 4] = [
    S4uSample {
        file: "mit_s4u_pac_regular",
        authtime: 1_538_430_362,
        client_name: "w2k8u",
        xrealm: false,
    },
    S4uSample {
        file: "mit_s4u_pac_enterprise",
        authtime: 1_538_437_551,
        client_name: "w2k8u@abc",
        xrealm: false,
    },
    S4uSample {
        file: "mit_s4u_pac_xrealm",
        authtime: 1_538_469_429,
        client_name: "w2k8u@ACME.COM",
        xrealm: true,
    },
    S4uSample {
        file: "mit_s4u_pac_ent_xrealm",
        authtime: 1_538_484_998,
        client_name: "w2k8u@abc@ACME.COM",
        xrealm: true,
    },
];
