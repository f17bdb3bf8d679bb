//! `kedge demo --config` runs the shipped Exchange configurations on loopback (the README's
//! demo): the printed requests work as printed — 401 Negotiate without credentials, the minted
//! token accepted and passed through to a demo CAS member — and the 2016 site's Autodiscover
//! certificate is chosen by SNI.

mod kedge_process;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kedge_process::{start_command, terminate, Running};

/// `kedge demo --config config/<name>` in a scratch directory, every port chosen by the system;
/// the running demo, its directory and what it printed.
fn demo(name: &str) -> (Running, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config").join(name);
    let out_path = dir.path().join("stdout");
    let out = std::fs::File::create(&out_path).unwrap();
    let demo_dir = dir.path().join("demo");
    let args: Vec<&OsStr> = vec![
        "demo".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--dir".as_ref(),
        demo_dir.as_os_str(),
        "--https-port".as_ref(),
        "0".as_ref(),
        "--http-port".as_ref(),
        "0".as_ref(),
        "--admin-port".as_ref(),
        "0".as_ref(),
    ];
    let k = start_command(&args, Stdio::from(out));
    let printed = std::fs::read_to_string(&out_path).unwrap();
    (k, dir, printed)
}

/// The printed `curl -ik …` line that carries a token: (token, the arguments after it).
fn printed_request(printed: &str) -> (String, Vec<String>) {
    let line = printed
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with("curl -ik -H 'Authorization: Negotiate ")
        })
        .unwrap_or_else(|| panic!("no authenticated request printed:\n{printed}"));
    let rest = line.split_once("Negotiate ").unwrap().1;
    let (token, args) = rest.split_once("' ").unwrap();
    (
        token.to_owned(),
        args.split_whitespace().map(String::from).collect(),
    )
}

/// `curl -sik <args>`: what it printed (headers and body).
fn curl(args: &[String]) -> String {
    let out = Command::new("curl")
        .args(["-sik", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl (scripts/install-test-deps installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn check_printed_requests(printed: &str) {
    let (token, args) = printed_request(printed);
    let anonymous = curl(&args);
    assert!(anonymous.starts_with("HTTP/1.1 401"), "{anonymous}");
    assert!(anonymous.contains("www-authenticate: Negotiate"), "{anonymous}");
    let mut with_token = vec!["-H".to_string(), format!("Authorization: Negotiate {token}")];
    with_token.extend(args);
    let reply = curl(&with_token);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("Authorization: present (passthrough)"), "{reply}");
}

#[test]
fn kedge_demo_runs_the_exchange_2010_config() {
    let (k, _dir, printed) = demo("exchange2010.toml");
    assert!(printed.contains("array outlook.contoso.com"), "{printed}");
    for rpc in ["epm", "mdb", "ab"] {
        assert!(
            printed.contains(&format!("rpc:      {rpc}: 127.0.0.1:")),
            "{printed}"
        );
    }
    check_printed_requests(&printed);
    terminate(k);
}

#[test]
fn kedge_demo_runs_the_exchange_2016_config_with_a_certificate_per_name() {
    let (k, dir, printed) = demo("exchange2016.toml");
    check_printed_requests(&printed);
    // Each name gets its own certificate: curl trusting only that certificate accepts it.
    let demo_dir: PathBuf = dir.path().join("demo");
    let port = k.http.port();
    let tls_to = |name: &str, trusted: &str| {
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--max-time", "10", "--cacert"])
            .arg(demo_dir.join(format!("{trusted}.pem")))
            .arg("--resolve")
            .arg(format!("{name}:{port}:127.0.0.1"))
            .arg(format!("https://{name}:{port}/autodiscover/"))
            .status()
            .unwrap()
            .success()
    };
    let (mail, autodiscover) = ("mail.contoso.com", "autodiscover.contoso.com");
    assert!(tls_to(mail, mail));
    assert!(tls_to(autodiscover, autodiscover));
    assert!(
        !tls_to(autodiscover, mail),
        "Autodiscover got the array's certificate"
    );
    terminate(k);
}
