//! The files under `deploy/` agree with the code: the Grafana dashboard is JSON, every metric
//! and reason label the alerts and dashboard name is one kedge emits, and the Kubernetes
//! ConfigMap carries a valid kedge.toml whose paths and ports match the Deployment and Service,
//! the alert rules pass promtool with their unit tests, and every Kubernetes manifest passes a
//! schema check (`kubernetes-validate --strict`). (Finer YAML checks are in `deploy/check`, with
//! PyYAML; no YAML crate here.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kedge::config::Config;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn text_files(rel: &str) -> Vec<(String, String)> {
    let mut paths = Vec::new();
    walk(&root().join(rel), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            Some((p.strip_prefix(root()).unwrap().display().to_string(), text))
        })
        .collect()
}

/// Every `kedge_…` word in `text`.
fn kedge_words(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(off) = text[i..].find("kedge_") {
        let start = i + off;
        let boundary = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start + "kedge_".len();
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase() || bytes[end].is_ascii_digit() || bytes[end] == b'_')
        {
            end += 1;
        }
        if boundary && end > start + "kedge_".len() {
            out.insert(text[start..end].trim_end_matches('_').to_owned());
        }
        i = end;
    }
    out
}

/// The `"kedge_…"` string literals of the given sources: the metric names kedge emits.
fn metric_literals(sources: &[(String, String)]) -> BTreeSet<String> {
    sources
        .iter()
        .flat_map(|(_, text)| {
            kedge_words(text)
                .into_iter()
                .filter(move |w| text.contains(&format!("\"{w}\"")))
        })
        .collect()
}

/// A name the exposition shows: the metric itself or a histogram's `_bucket`/`_sum`/`_count`.
fn is_known(word: &str, known: &BTreeSet<String>) -> bool {
    known.contains(word)
        || ["_bucket", "_sum", "_count"]
            .iter()
            .any(|s| word.strip_suffix(s).is_some_and(|base| known.contains(base)))
}

#[test]
fn grafana_dashboard_is_json_with_a_query_in_every_panel() {
    let dash: serde_json::Value = serde_json::from_str(&read("deploy/grafana/kedge-dashboard.json")).unwrap();
    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut queries = 0;
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate panel id {}",
            p["id"]
        );
        if p["type"] == "row" {
            continue;
        }
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{} has no targets", p["title"]));
        assert!(!targets.is_empty(), "{} has no queries", p["title"]);
        for t in targets {
            assert!(
                t["expr"].as_str().is_some_and(|e| e.contains("kedge_")),
                "{}: {t}",
                p["title"]
            );
            queries += 1;
        }
    }
    assert!(queries >= 15, "{queries} queries");
    assert_eq!(dash["uid"], "kedge-overview");
}

#[test]
fn alerts_and_dashboard_name_only_metrics_from_observe_names() {
    let names = metric_literals(&[("names.rs".into(), read("src/observe/names.rs"))]);
    assert!(names.len() >= 20, "{names:?}");
    for rel in [
        "deploy/prometheus/kedge-alerts.yml",
        "deploy/prometheus/kedge-alerts.test.yml",
        "deploy/grafana/kedge-dashboard.json",
    ] {
        let words = kedge_words(&read(rel));
        assert!(!words.is_empty(), "{rel} names no metric");
        let unknown: Vec<_> = words.iter().filter(|w| !is_known(w, &names)).collect();
        assert!(
            unknown.is_empty(),
            "{rel} names metrics not in src/observe/names.rs: {unknown:?}"
        );
    }
}

#[test]
fn every_kedge_metric_named_anywhere_in_deploy_is_emitted_by_kedge() {
    let known = metric_literals(&text_files("src"));
    for (path, text) in text_files("deploy") {
        let unknown: Vec<_> = kedge_words(&text)
            .into_iter()
            .filter(|w| !is_known(w, &known))
            .collect();
        assert!(
            unknown.is_empty(),
            "{path} names metrics kedge does not emit: {unknown:?}"
        );
    }
}

/// The values of `reason="…"`, `reason!="…"` and `reason=~"a|b"` matchers in `text`.
fn reason_values(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("reason") {
        let rest = &text[i + "reason".len()..];
        let rest = rest.trim_start_matches(['=', '!', '~']);
        if rest.len() == text.len() - i - "reason".len() {
            continue; // not a matcher
        }
        // In the dashboard's JSON the quotes are escaped (`reason=\"…\"`).
        let Some(body) = rest
            .strip_prefix("\\\"")
            .or_else(|| rest.strip_prefix('"'))
            .and_then(|r| r.split(['"', '\\']).next())
        else {
            continue;
        };
        out.extend(body.split('|').map(str::to_owned));
    }
    out
}

#[test]
fn reasons_in_alerts_and_dashboard_are_labels_kedge_emits() {
    let sources: String = text_files("src").into_iter().map(|(_, t)| t).collect();
    let mut seen = 0;
    for rel in [
        "deploy/prometheus/kedge-alerts.yml",
        "deploy/grafana/kedge-dashboard.json",
    ] {
        for reason in reason_values(&read(rel)) {
            assert!(
                sources.contains(&format!("\"{reason}\"")),
                "{rel}: reason {reason:?} is never emitted"
            );
            seen += 1;
        }
    }
    assert!(seen >= 5, "only {seen} reason matchers found");
}

/// The `kedge.toml: |` block scalar of the ConfigMap, dedented.
fn configmap_toml() -> String {
    let text = read("deploy/kubernetes/configmap.yaml");
    let mut lines = text.lines().skip_while(|l| l.trim() != "kedge.toml: |").skip(1);
    let mut out = String::new();
    for l in lines.by_ref() {
        if !l.trim().is_empty() && !l.starts_with("    ") {
            break;
        }
        out.push_str(l.get(4..).unwrap_or(""));
        out.push('\n');
    }
    assert!(
        out.contains("[kerberos]"),
        "no kedge.toml block in configmap.yaml"
    );
    out
}

fn port(listen: &str) -> u16 {
    listen.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn kubernetes_configmap_holds_a_valid_config_matching_the_mounts_and_ports() {
    let cfg = Config::from_toml(&configmap_toml(), "deploy/kubernetes/configmap.yaml")
        .unwrap_or_else(|e| panic!("{e}"));
    let deployment = read("deploy/kubernetes/deployment.yaml");
    let service = read("deploy/kubernetes/service.yaml");
    let containerfile = read("deploy/container/Containerfile");

    assert_eq!(cfg.kerberos.keytab, Path::new("/etc/kedge/keytab/asa.keytab"));
    for mount in [
        "mountPath: /etc/kedge/keytab",
        "mountPath: /etc/kedge/config",
        "mountPath: /etc/kedge/tls",
    ] {
        assert!(deployment.contains(mount), "deployment.yaml lacks {mount}");
    }
    assert!(
        !deployment.contains("subPath:"),
        "a subPath mount never sees Secret updates"
    );
    assert!(deployment.contains("\"/etc/kedge/config/kedge.toml\""));

    let admin = cfg.admin.as_ref().expect("an admin listener for the probes");
    assert!(
        admin.listen.starts_with("0.0.0.0:"),
        "probes reach the pod IP, not loopback"
    );
    let admin_port = port(&admin.listen);
    assert!(deployment.contains(&format!("containerPort: {admin_port}")));
    assert!(deployment.contains("path: /readyz/https") && deployment.contains("path: /healthz"));
    assert!(
        !service.contains(&format!("port: {admin_port}")),
        "the admin port must not be published"
    );

    let listeners = cfg
        .http
        .iter()
        .map(|l| &l.listen)
        .chain(cfg.rpc.iter().map(|l| &l.listen));
    for listen in listeners {
        let p = port(listen);
        assert!(
            deployment.contains(&format!("containerPort: {p}")),
            "deployment.yaml lacks port {p}"
        );
        assert!(
            service.contains(&format!("port: {p}\n")),
            "service.yaml lacks port {p}"
        );
        let expose = containerfile.lines().find(|l| l.starts_with("EXPOSE")).unwrap();
        assert!(
            expose.split_whitespace().any(|w| w == p.to_string()),
            "Containerfile does not expose {p}"
        );
    }
}

#[test]
fn systemd_unit_runs_the_documented_command_hardened() {
    let unit = read("deploy/systemd/kedge.service");
    for line in [
        "ExecStart=/usr/local/bin/kedge run --config /etc/kedge/kedge.toml",
        "ExecStartPre=/usr/local/bin/kedge run --config /etc/kedge/kedge.toml --check",
        "ExecReload=/usr/local/bin/kedge run --config /etc/kedge/kedge.toml --check",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadOnlyPaths=/etc/kedge",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
        "LimitNOFILE=1048576",
        "Restart=on-failure",
    ] {
        assert!(unit.lines().any(|l| l == line), "kedge.service lacks {line:?}");
    }
}

/// The alert rules load in Prometheus and their unit tests pass (`promtool`, from Debian's
/// `prometheus` package, which `scripts/install-test-deps` installs).
#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = root().join("deploy/prometheus");
    for args in [
        vec!["check", "rules", "kedge-alerts.yml"],
        vec!["test", "rules", "kedge-alerts.test.yml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("promtool (Debian package prometheus)");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The kedge command lines a file runs, each as its words: `ExecStart=` lines of a unit naming
/// kedge, or the JSON-style `args: [...]` lists of a manifest (a container's `$(VAR)` and a
/// unit's `${VAR}` replaced by sample values).
fn kedge_commands(text: &str) -> Vec<Vec<String>> {
    let fill = |w: &str| {
        w.replace("${KEDGE_ASA_PRINCIPAL}", "EXCH2010ASA$@CONTOSO.COM")
            .replace("$(KEDGE_ASA_PRINCIPAL)", "EXCH2010ASA$@CONTOSO.COM")
            .replace("${KEDGE_KDC}", "dc01.contoso.com:88")
            .replace("$(KEDGE_KDC)", "dc01.contoso.com:88")
    };
    let mut out = Vec::new();
    for l in text.lines() {
        if let Some(cmd) = l.strip_prefix("ExecStart=/usr/local/bin/kedge ") {
            out.push(cmd.split_whitespace().map(fill).collect());
        }
    }
    let mut rest = text;
    while let Some(i) = rest.find("args: [") {
        let tail = &rest[i + "args: ".len()..];
        let end = tail.find(']').expect("args list ends");
        let words: Vec<String> = serde_json::from_str(&tail[..=end]).expect("args list is JSON");
        out.push(words.iter().map(|w| fill(w)).collect());
        rest = &tail[end..];
    }
    out
}

fn parses(words: &[String]) -> Result<(), String> {
    use clap::Parser;
    let argv = std::iter::once("kedge".to_string()).chain(words.iter().cloned());
    kedge::cli::Cli::try_parse_from(argv)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn scheduled_roll_for_systemd_runs_a_roll_then_a_prune_the_cli_accepts() {
    let service = read("deploy/systemd/kedge-asa-roll.service");
    let timer = read("deploy/systemd/kedge-asa-roll.timer");
    let cmds = kedge_commands(&service);
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    assert_eq!(cmds[0][..2], ["asa".to_string(), "roll".into()]);
    assert_eq!(cmds[1][..2], ["keytab".to_string(), "prune".into()]);
    for c in &cmds {
        parses(c).unwrap_or_else(|e| panic!("kedge {c:?}: {e}"));
    }
    for line in [
        "Type=oneshot",
        "User=kedge",
        "ReadWritePaths=/etc/kedge/keytab",
        "EnvironmentFile=/etc/kedge/asa-roll.env",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(
            service.lines().any(|l| l == line),
            "kedge-asa-roll.service lacks {line:?}"
        );
    }
    assert!(
        service.contains("Exchange-RollAsa"),
        "the unit warns about Exchange's own task"
    );
    for line in [
        "Unit=kedge-asa-roll.service",
        "Persistent=true",
        "WantedBy=timers.target",
    ] {
        assert!(
            timer.lines().any(|l| l == line),
            "kedge-asa-roll.timer lacks {line:?}"
        );
    }
    assert!(timer.lines().any(|l| l.starts_with("OnCalendar=")));
}

#[test]
fn kubernetes_cronjob_stages_publishes_waits_commits_and_prunes() {
    let text = read("deploy/kubernetes/asa-roll-cronjob.yaml");
    let cmds = kedge_commands(&text);
    let heads: Vec<String> = cmds.iter().map(|c| c[..3.min(c.len())].join(" ")).collect();
    assert_eq!(
        heads,
        [
            "asa roll prepare",
            "asa roll commit",
            "keytab prune /work/asa.keytab"
        ],
        "{cmds:?}"
    );
    for c in &cmds {
        parses(c).unwrap_or_else(|e| panic!("kedge {c:?}: {e}"));
    }
    let commit = &cmds[1];
    let wait = commit
        .iter()
        .position(|w| w == "--wait-replicas")
        .expect("commit waits for the replicas");
    assert_eq!(commit[wait + 1], "kedge-admin.kedge.svc:9180");
    // Order of the steps: fetch, prepare, publish the staged keytab, commit, prune, publish.
    let order: Vec<usize> = [
        "name: fetch",
        "name: prepare",
        "name: publish-staged",
        "name: commit",
        "name: prune",
        "name: publish\n",
    ]
    .iter()
    .map(|n| text.find(n).unwrap_or_else(|| panic!("no step {n:?}")))
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "steps out of order: {order:?}"
    );
    for need in [
        "kind: CronJob",
        "concurrencyPolicy: Forbid",
        "backoffLimit: 0",
        "medium: Memory",
        "resourceNames: [\"kedge-keytab\"]",
        "verbs: [\"get\", \"patch\"]",
        "clusterIP: None",
        "publishNotReadyAddresses: true",
        "app.kubernetes.io/name: kedge-asa-roll",
    ] {
        assert!(text.contains(need), "asa-roll-cronjob.yaml lacks {need:?}");
    }
    assert!(!text.contains("subPath:"));
    let kust = read("deploy/kubernetes/kustomization.yaml");
    assert!(
        !kust.contains("asa-roll-cronjob.yaml"),
        "the scheduled roll is opt-in (kedge-only deployments)"
    );
}

/// `kubernetes-validate` (PyPI; `scripts/install-test-deps` puts it in a venv of its own, by
/// default `/opt/kedge-test-tools`, or `$KEDGE_TEST_TOOLS`), else one on `PATH`.
fn kubernetes_validate() -> PathBuf {
    let tools = std::env::var_os("KEDGE_TEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/kedge-test-tools"));
    let venv = tools.join("bin/kubernetes-validate");
    if venv.exists() {
        return venv;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("kubernetes-validate"))
        .find(|p| p.exists());
    on_path.unwrap_or_else(|| {
        panic!(
            "kubernetes-validate not found in {} nor on PATH: run scripts/install-test-deps",
            venv.display()
        )
    })
}

/// Runs the schema check (`--strict`: unknown fields are errors too) over `files`: whether it
/// passed, and what it said.
fn schema_check(files: &[PathBuf]) -> (bool, String) {
    let out = std::process::Command::new(kubernetes_validate())
        .arg("--strict")
        .args(files)
        .output()
        .expect("kubernetes-validate runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

fn manifests() -> Vec<PathBuf> {
    let mut files = Vec::new();
    walk(&root().join("deploy/kubernetes"), &mut files);
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    files
}

/// Every manifest under deploy/kubernetes validates against the Kubernetes schemas; only the
/// kustomization and the Prometheus Operator's PodMonitor (a CRD) have no schema there.
#[test]
fn kubernetes_manifests_pass_the_schema_check() {
    let files = manifests();
    assert!(files.len() >= 9, "{files:?}");
    let (ok, said) = schema_check(&files);
    assert!(ok, "kubernetes-validate --strict:\n{said}");
    assert!(!said.contains("ERROR"), "{said}");
    let mut resources = 0;
    for f in &files {
        let shown = f.display().to_string();
        let passed = said
            .lines()
            .filter(|l| l.contains(&format!("{shown} passed for resource")))
            .count();
        let name = f.file_name().unwrap().to_string_lossy();
        if name == "kustomization.yaml" || name == "podmonitor.yaml" {
            assert!(said.contains(&format!("{shown} Couldn't find schema")), "{said}");
        } else {
            assert!(passed >= 1, "{shown} was not validated:\n{said}");
        }
        resources += passed;
    }
    assert!(resources >= 14, "{resources} resources validated:\n{said}");
}

/// The check can fail: copies of the Deployment with a string for a number, and with a
/// misspelt field, are refused with the field's path.
#[test]
fn the_schema_check_refuses_a_broken_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let deployment = read("deploy/kubernetes/deployment.yaml");
    for (name, from, to, says) in [
        ("replicas.yaml", "replicas: 3", "replicas: three", "spec.replicas"),
        (
            "misspelt.yaml",
            "readOnlyRootFilesystem:",
            "readOnlyRootFileSystem:",
            "readOnlyRootFileSystem",
        ),
    ] {
        assert!(deployment.contains(from), "deployment.yaml has {from:?}");
        let path = dir.path().join(name);
        std::fs::write(&path, deployment.replacen(from, to, 1)).unwrap();
        let (ok, said) = schema_check(&[path]);
        assert!(!ok, "{name} passed:\n{said}");
        assert!(said.contains(says), "{name}: {said}");
    }
}
