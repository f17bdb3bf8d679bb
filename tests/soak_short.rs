//! The soak of issue 11, short: `kedge-soak` for 40 s against a real `kedge run` (debug build),
//! with every assertion of the full 10-minute run (scripts/soak, README "Soak"): zero panics,
//! RSS within the bound after warm-up, every valid request answered 2xx or a documented failover,
//! every invalid one refused with its counted reason, no member seeing a refused request, two
//! keytab rolls, member m2 killed and restarted. A failed assertion makes `kedge-soak` exit 1
//! and this test print its report.

use std::process::Command;

#[test]
fn a_short_soak_passes_every_assertion() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.md");
    let out = Command::new(env!("CARGO_BIN_EXE_kedge-soak"))
        .args(["--kedge", env!("CARGO_BIN_EXE_kedge")])
        .args([
            "--duration",
            "40s",
            "--scale",
            "0.4",
            "--warmup",
            "12s",
            "--flap-every",
            "9s",
        ])
        // A debug build's heap moves more than a release build's; the full run keeps 32 MiB.
        .args(["--rss-bound-mib", "64"])
        .arg("--workdir")
        .arg(dir.path().join("work"))
        .arg("--report")
        .arg(&report)
        .output()
        .expect("run kedge-soak");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kedge-soak failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.ends_with("PASS\n"), "{text}");
    for want in [
        "keytab rolls: 3→4, 4→5",
        "panics: 0; kedge alive at the end: true",
        "| http previous kvno |",
    ] {
        assert!(text.contains(want), "report lacks {want:?}:\n{text}");
    }
}
