//! The bundled example config parses and validates, and bad configs name every problem's path.

use kedge::config::Config;

#[test]
fn bundled_example_config_is_valid() {
    let text = include_str!("../config/example.toml");
    let cfg = Config::from_toml(text, "config/example.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.http.len(), 1);
    assert_eq!(cfg.rpc.len(), 4);
    // Only the port-135 listener lets the endpoint mapper bind without authentication.
    for l in &cfg.rpc {
        let epm = l.listen.ends_with(":135");
        assert_eq!(l.endpoint_mapper, epm, "{}", l.name);
        assert_eq!(l.allows_unauthenticated_epm(), epm, "{}", l.name);
    }
    assert_eq!(cfg.kerberos.array, vec!["outlook.contoso.com"]);
}

#[test]
fn unknown_fields_and_bad_references_are_reported_with_their_path() {
    let e = Config::from_toml("[kerberos]\nkeytab = \"k\"\nskew = 5\n", "bad.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.toml") && e.contains("skew"), "{e}");
    let text = r#"
[kerberos]
keytab = "k"
[[http]]
listen = "nonsense"
routes = [{ prefix = "mapi", pool = "nowhere" }]
[members.cas1]
address = "127.0.0.1"
[pools.web]
members = ["cas1", "cas9"]
port = "http"
"#;
    let e = Config::from_toml(text, "bad.toml").unwrap_err().to_string();
    for want in [
        "http[0].listen",
        "http[0].routes[0].prefix",
        "http[0].routes[0].pool",
        "pools.web.members[0]: member \"cas1\" has no port",
        "pools.web.members[1]: no member named \"cas9\"",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
}

#[test]
fn runtime_section_defaults_to_per_core_and_rejects_bad_values() {
    use kedge::config::Scheduler;
    let text = include_str!("../config/example.toml");
    let cfg = Config::from_toml(text, "config/example.toml").unwrap();
    assert_eq!(cfg.runtime.scheduler, Scheduler::PerCore);
    assert!(cfg.runtime.worker_count() >= 1, "0 means one per CPU");

    let minimal = Config::from_toml("[kerberos]\nkeytab = \"k\"\n", "min.toml").unwrap();
    assert_eq!(minimal.runtime.scheduler, Scheduler::PerCore);
    assert_eq!(minimal.runtime.workers, 0);

    let ws = Config::from_toml(
        "[kerberos]\nkeytab = \"k\"\n[runtime]\nscheduler = \"work-stealing\"\nworkers = 3\n",
        "ws.toml",
    )
    .unwrap();
    assert_eq!(
        (ws.runtime.scheduler, ws.runtime.worker_count()),
        (Scheduler::WorkStealing, 3)
    );

    let e = Config::from_toml(
        "[kerberos]\nkeytab = \"k\"\n[runtime]\nscheduler = \"round-robin\"\n",
        "bad.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("bad.toml") && e.contains("round-robin") && e.contains("per-core"),
        "{e}"
    );
    let e = Config::from_toml(
        "[kerberos]\nkeytab = \"k\"\n[runtime]\nworkers = 5000\n",
        "bad.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("runtime.workers"), "{e}");
}

fn shipped(name: &str) -> Config {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    Config::from_toml(&text, name).unwrap_or_else(|e| panic!("{e}"))
}

fn route<'a>(cfg: &'a Config, prefix: &str) -> &'a kedge::config::RouteConfig {
    cfg.http[0]
        .routes
        .iter()
        .find(|r| r.prefix == prefix)
        .unwrap_or_else(|| panic!("no route {prefix}"))
}

#[test]
fn exchange_2010_config_serves_every_client_of_such_a_site() {
    use kedge::config::{NtlmPolicy, SchemePolicy};
    let cfg = shipped("exchange2010.toml");
    // Outlook Anywhere on 2010 is Basic or NTLM, never Kerberos.
    let rpc = route(&cfg, "/rpc/");
    assert_eq!(
        (rpc.ntlm, rpc.basic),
        (NtlmPolicy::Passthrough, SchemePolicy::Passthrough)
    );
    // OWA and ECP log on with forms; ActiveSync with Basic.
    assert!(route(&cfg, "/owa/").anonymous && route(&cfg, "/ecp/").anonymous);
    assert_eq!(
        route(&cfg, "/Microsoft-Server-ActiveSync").basic,
        SchemePolicy::Passthrough
    );
    // MAPI over RPC/TCP with the endpoint mapper only on port 135.
    let epm: Vec<bool> = cfg.rpc.iter().map(|l| l.allows_unauthenticated_epm()).collect();
    assert_eq!(epm, vec![true, false, false]);
    assert!(cfg.pools.values().filter(|p| p.port != "epm").all(|p| p.affinity));
}

#[test]
fn exchange_2016_config_speaks_mapi_over_http_and_needs_no_affinity() {
    use kedge::config::{NtlmPolicy, SchemePolicy};
    let cfg = shipped("exchange2016.toml");
    assert!(cfg.rpc.is_empty(), "no RPC/TCP for clients since Exchange 2013");
    let mapi = route(&cfg, "/mapi/");
    assert!(!mapi.anonymous, "Negotiate validated at the edge");
    assert_eq!(
        (mapi.ntlm, mapi.bearer),
        (NtlmPolicy::Passthrough, SchemePolicy::Passthrough)
    );
    assert_eq!(
        route(&cfg, "/Microsoft-Server-ActiveSync").basic,
        SchemePolicy::Passthrough
    );
    assert!(route(&cfg, "/owa/").anonymous);
    assert!(cfg.pools.values().all(|p| !p.affinity));
    for (name, pool) in &cfg.pools {
        assert!(
            pool.health.path.ends_with("/healthcheck.htm"),
            "{name}: {}",
            pool.health.path
        );
    }
}

#[test]
fn replay_store_section_is_optional_validated_and_beside_the_old_keys() {
    use kedge::replay_store::FailPolicy;
    // Configs written before [kerberos.replay] existed load unchanged: no store.
    let old = Config::from_toml(
        "[kerberos]\nkeytab = \"k\"\nreplay_max_entries = 500000\n",
        "old.toml",
    )
    .unwrap();
    assert_eq!(old.kerberos.replay_max_entries, 500_000);
    assert_eq!(old.kerberos.replay.store, None);

    let text = "[kerberos]\nkeytab = \"k\"\nreplay_max_entries = 500000\n\n[kerberos.replay]\n\
                store = \"redis://:pw@10.0.0.5:6379/2\"\nfail = \"local\"\ntimeout_ms = 50\n";
    let cfg = Config::from_toml(text, "new.toml").unwrap();
    let r = &cfg.kerberos.replay;
    assert_eq!(r.store.as_deref(), Some("redis://:pw@10.0.0.5:6379/2"));
    assert_eq!(
        (r.fail, r.timeout_ms, r.key_prefix.as_str()),
        (FailPolicy::Local, 50, "kedge:replay:")
    );
    assert_eq!(cfg.kerberos.replay_max_entries, 500_000);

    let e = Config::from_toml(
        "[kerberos]\nkeytab = \"k\"\n[kerberos.replay]\nstore = \"memcached://:hunter2@x:11211\"\ntimeout_ms = 0\n",
        "bad.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("kerberos.replay.store: scheme \"memcached\""), "{e}");
    assert!(e.contains("kerberos.replay.timeout_ms"), "{e}");
    assert!(
        !e.contains("hunter2"),
        "the store URL's password is never repeated: {e}"
    );
    let e = Config::from_toml(
        "[kerberos]\nkeytab = \"k\"\n[kerberos.replay]\nfail = \"open\"\n",
        "bad.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("open"), "{e}");
}

#[test]
fn the_commented_replay_store_example_is_valid_once_uncommented() {
    let text = include_str!("../config/example.toml");
    let mut out = String::new();
    let mut in_block = false;
    for line in text.lines() {
        if line == "# [kerberos.replay]" {
            in_block = true;
        } else if line.trim().is_empty() {
            in_block = false;
        }
        // ca_file goes with a rediss:// store only.
        let uncomment = in_block && !line.starts_with("# ca_file");
        out.push_str(if uncomment {
            line.strip_prefix("# ").unwrap_or(line)
        } else {
            line
        });
        out.push('\n');
    }
    let cfg = Config::from_toml(&out, "example uncommented").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.kerberos.replay.store.as_deref(),
        Some("redis://10.0.0.5:6379/0")
    );
}

#[test]
fn durations_take_numbers_in_their_unit_or_human_strings() {
    let text = r#"
[kerberos]
keytab = "k"
skew_secs = "5m"
previous_key_retire_secs = "7days"
keytab_poll_ms = "2s"
[[http]]
listen = "127.0.0.1:0"
routes = [{ prefix = "/", pool = "web" }]
limits = { header_timeout_ms = "15s", idle_timeout_secs = "20m", shutdown_grace_secs = 30 }
[[rpc]]
name = "mdb"
listen = "127.0.0.1:0"
pool = "web"
bind_timeout_ms = "10s"
idle_timeout_secs = "2h"
[members.cas1]
address = "127.0.0.1"
ports = { http = 80 }
[pools.web]
members = ["cas1"]
port = "http"
connect_timeout_ms = "2s"
health = { kind = "tcp", interval_ms = "5s", timeout_ms = "1500ms" }
"#;
    let cfg = Config::from_toml(text, "d.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.kerberos.skew_secs, 300);
    assert_eq!(cfg.kerberos.previous_key_retire_secs, 7 * 86_400);
    assert_eq!(cfg.kerberos.keytab_poll_ms, 2_000);
    assert_eq!(cfg.http[0].limits.header_timeout_ms, 15_000);
    assert_eq!(cfg.http[0].limits.idle_timeout_secs, 1_200);
    assert_eq!(cfg.http[0].limits.shutdown_grace_secs, 30);
    assert_eq!(
        (cfg.rpc[0].bind_timeout_ms, cfg.rpc[0].idle_timeout_secs),
        (10_000, 7_200)
    );
    let web = &cfg.pools["web"];
    assert_eq!(web.connect_timeout_ms, 2_000);
    assert_eq!((web.health.interval_ms, web.health.timeout_ms), (5_000, 1_500));
    // A fraction of the field's unit is an error with the file, line and field, not a rounding.
    let e = Config::from_toml(&text.replace("\"5m\"", "\"90500ms\""), "d.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("d.toml") && e.contains("line 4") && e.contains("whole number of seconds"),
        "{e}"
    );
}

#[test]
fn tls_takes_one_certificate_or_several_by_sni_and_names_what_is_missing() {
    let listener = |tls: &str| {
        format!(
            "[kerberos]\nkeytab = \"k\"\n[[http]]\nlisten = \"127.0.0.1:0\"\nroutes = [{{ prefix = \"/\", pool = \"web\" }}]\n{tls}\n\
             [members.cas1]\naddress = \"127.0.0.1\"\nports = {{ http = 80 }}\n[pools.web]\nmembers = [\"cas1\"]\nport = \"http\"\n"
        )
    };
    // The single-certificate form of earlier versions.
    let cfg = Config::from_toml(
        &listener("tls = { cert = \"a.pem\", key = \"a.key\" }"),
        "one.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tls = cfg.http[0].tls.as_ref().unwrap();
    assert_eq!((tls.all_certificates().len(), tls.poll_secs), (1, 60));
    // A default and one more by SNI, or only a list (its first is the default).
    let several = "[http.tls]\ncert = \"a.pem\"\nkey = \"a.key\"\npoll_secs = \"5m\"\n\
                   [[http.tls.certificates]]\ncert = \"b.pem\"\nkey = \"b.key\"\nnames = [\"autodiscover.contoso.com\", \"*.contoso.com\"]\n";
    let cfg = Config::from_toml(&listener(several), "two.toml").unwrap_or_else(|e| panic!("{e}"));
    let tls = cfg.http[0].tls.as_ref().unwrap();
    let all = tls.all_certificates();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].names, ["autodiscover.contoso.com", "*.contoso.com"]);
    assert_eq!(tls.poll_secs, 300);
    let list_only = "[http.tls]\n[[http.tls.certificates]]\ncert = \"b.pem\"\nkey = \"b.key\"\n";
    assert!(Config::from_toml(&listener(list_only), "list.toml").is_ok());

    for (tls, want) in [
        ("tls = { cert = \"a.pem\" }", "http[0].tls.key: cert is set but key is not"),
        ("tls = {}", "http[0].tls: no certificate"),
        (
            "[http.tls]\n[[http.tls.certificates]]\ncert = \"b.pem\"\nkey = \"b.key\"\nnames = [\"*.*.contoso.com\"]\n",
            "http[0].tls.certificates[0].names[0]: \"*.*.contoso.com\" is not a host name",
        ),
        ("tls = { cert = \"a.pem\", key = \"a.key\", poll_secs = 0 }", "http[0].tls.poll_secs: 0"),
    ] {
        let e = Config::from_toml(&listener(tls), "bad.toml").unwrap_err().to_string();
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
}

#[test]
fn the_commented_sni_example_is_valid_once_uncommented() {
    let text = include_str!("../config/example.toml");
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("tls = { cert") {
            continue; // replaced by the [http.tls] table below
        }
        out.push_str(line.strip_prefix("#   ").unwrap_or(line));
        out.push('\n');
    }
    let cfg = Config::from_toml(&out, "example uncommented").unwrap_or_else(|e| panic!("{e}"));
    let all = cfg.http[0].tls.as_ref().expect("tls").all_certificates();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].names, ["autodiscover.contoso.com"]);
}
